"""Front-ends: waveform -> frames (B, T, F) at 10 ms, then a per-feature projection to C channels.

Four front-ends share one frame grid (``T = S // hop + 1``, centred windows, zero padding), so
relaxed mixing can add their outputs frame by frame:

- ``logmel80``, ``logmel40``, ``mfcc40``: ``supernet.data.features.FeatureExtractor`` with
  ``normalize="none"``;
- ``learnable``: a strided 1-D convolution on the waveform (a learned filterbank, one window
  per frame) with log compression.

Why no per-utterance normalisation: its statistics span the whole utterance, so a streaming arch
would see the future, and archs that share the front-end weights must see the same features.
Instead the log features go in as they are (``NetConfig.frame_norm=False``, every shipped fit
config) or, as the first supernets did, normalised per frame across their features (LayerNorm):
causal and independent of padding either way. Per-frame normalisation makes silence look as loud
as speech, and subnets built with it were slow and unreliable to leave the CTC blank plateau.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernet.data.features import FeatureConfig, FeatureExtractor, lengths_to_mask, num_frames
from supernet.nn.config import NetConfig

__all__ = ["LearnableFrontEnd", "FrontEnd", "make_features", "feature_dim", "resampling_matrix", "frontend_options"]


class LearnableFrontEnd(nn.Module):
    """Learned filterbank on the waveform: ``log(1 + |conv(audio)|)``.

    One convolution with a window of ``win_length`` samples and a stride of ``hop_length``,
    padded by half a window on both sides like a centred STFT, so frame t covers samples
    [t*hop - win/2, t*hop + win/2) and the frame count matches the log-mel front-ends.

    Args:
        filters: output channels F.
        win_length, hop_length: window and stride in samples.

    Shapes:
        forward(audio (B, S), audio_lengths (B,)) -> feats (B, T, F), feat_lengths (B,);
        frames at or beyond ``feat_lengths`` are 0.
    """

    def __init__(self, filters: int = 80, win_length: int = 400, hop_length: int = 160) -> None:
        super().__init__()
        self.filters = filters
        self.win_length = win_length
        self.hop_length = hop_length
        self.conv = nn.Conv1d(1, filters, win_length, stride=hop_length, bias=False)

    @property
    def dim(self) -> int:
        return self.filters

    def forward(self, audio: Tensor, audio_lengths: Tensor) -> tuple[Tensor, Tensor]:
        audio = audio.masked_fill(~lengths_to_mask(audio_lengths, audio.size(1)), 0.0)
        half = self.win_length // 2
        x = self.conv(F.pad(audio[:, None, :], [half, half]))  # (B, F, T)
        x = torch.log1p(x.abs()).transpose(1, 2)
        lengths = num_frames(audio_lengths, self.hop_length).clamp(max=x.size(1))
        return x.masked_fill(~lengths_to_mask(lengths, x.size(1))[:, :, None], 0.0), lengths


def make_features(name: str, net: NetConfig) -> nn.Module:
    """The feature module of front-end ``name`` (one of ``supernet.space.FEATURES``).

    Returns a module ``(audio (B, S), audio_lengths (B,)) -> (feats (B, T, F), feat_lengths)``
    with a ``dim`` attribute (F).
    """
    if name == "learnable":
        return LearnableFrontEnd(net.learnable_filters, net.win_length, net.hop_length)
    cfg = FeatureConfig.from_name(name, sample_rate=net.sample_rate, win_ms=net.win_ms, hop_ms=net.hop_ms,
                                  normalize="none")
    return FeatureExtractor(cfg)


def feature_dim(name: str, net: NetConfig) -> int:
    """Feature dimension F of front-end ``name``."""
    if name == "learnable":
        return net.learnable_filters
    return FeatureConfig.from_name(name).dim


def resampling_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) linear interpolation of n_in ordered values at n_out evenly spaced points
    (end points kept); the identity when n_in == n_out."""
    pos = torch.linspace(0, n_in - 1, n_out)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = pos - lo
    m = torch.zeros(n_out, n_in)
    m[torch.arange(n_out), lo] += 1 - frac
    m[torch.arange(n_out), hi] += frac
    return m


def frontend_options(net: NetConfig) -> dict:
    """:class:`FrontEnd` arguments that ``net`` decides (every builder passes these)."""
    return {"channels": net.frontend_channels, "frame_norm": net.frame_norm, "resample_init": net.subsampler == "conv2d"}


class FrontEnd(nn.Module):
    """Per-feature projection: Linear(F, C), after a LayerNorm over each frame's F features
    when ``frame_norm``.

    Args:
        feat_dim: F.
        channels: C (the subsampler's channels).
        frame_norm: normalise each frame first (``NetConfig.frame_norm``).
        resample_init: start the projection as a linear resampling of the F features to C rows
            (the identity when F == C) with zero bias, for the conv2d subsampler, whose filters
            slide along the rows as along frequency (``NetConfig.subsampler``).

    Shapes:
        forward(feats (B, T, F)) -> (B, T, C)
    """

    def __init__(self, feat_dim: int, channels: int, frame_norm: bool = True, resample_init: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(feat_dim) if frame_norm else nn.Identity()
        self.proj = nn.Linear(feat_dim, channels)
        if resample_init and not self.proj.weight.is_meta:
            with torch.no_grad():
                self.proj.weight.copy_(resampling_matrix(feat_dim, channels))
                self.proj.bias.zero_()

    def forward(self, feats: Tensor) -> Tensor:
        return self.proj(self.norm(feats))
