"""Acoustic features for padded batches: log-mel / MFCC with lengths, and SpecAugment.

Features are computed inside the model's forward (on the batch's device) but stay outside
exported graphs: an exported model takes features, not audio.

Padding must not leak into an utterance's features: the STFT pads each frame with zeros (not
reflection) and audio beyond each length is zeroed first, so every valid frame of an utterance
in a padded batch sees exactly the samples it would see alone; statistics for normalisation are
taken over valid frames only.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Literal

import torch
import torchaudio
from torch import nn

from supernet.config import NEW_OPTION

__all__ = ["FeatureConfig", "SpecAugmentConfig", "FeatureExtractor", "SpecAugment", "num_frames", "lengths_to_mask"]

_LOG_FLOOR = 1e-6  # same floor as torchaudio.transforms.MFCC(log_mels=True)


@dataclass
class FeatureConfig:
    """Acoustic front-end.

    Args:
        kind: "logmel" (log mel filterbank energies) or "mfcc".
        n_mels: mel bands (also the filterbank that MFCCs are computed from).
        n_mfcc: cepstral coefficients kept when kind == "mfcc".
        sample_rate: audio rate in Hz.
        win_ms: analysis window; the FFT size is the window length in samples.
        hop_ms: frame shift.
        f_min: lowest mel filter edge in Hz.
        f_max: highest mel filter edge in Hz (None: Nyquist).
        normalize: "utterance" (mean/variance per utterance and feature over valid frames) or "none".
        floor_db: log-mel only: clamp every bin at (the utterance's loudest bin - floor_db dB)
            before normalising (None: no clamp). Digital silence, a quiet room and a noisy room
            then look alike, so a speaker recorded more cleanly than the training speakers is
            not out of distribution (Whisper clamps at 80 dB the same way).
    """

    kind: Literal["logmel", "mfcc"] = "logmel"
    n_mels: int = 80
    n_mfcc: int = 40
    sample_rate: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 0.0
    f_max: float | None = None
    normalize: Literal["utterance", "none"] = "utterance"
    floor_db: float | None = None

    def __post_init__(self) -> None:
        if self.floor_db is not None and (self.floor_db <= 0 or self.kind != "logmel"):
            raise ValueError(f"floor_db needs kind 'logmel' and a value > 0, got {self.floor_db} with kind {self.kind!r}")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        if self.hop_length > self.win_length:
            raise ValueError(f"hop_ms ({self.hop_ms}) must not exceed win_ms ({self.win_ms})")

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def dim(self) -> int:
        """Feature dimension F."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @classmethod
    def from_name(cls, name: str, **kw) -> "FeatureConfig":
        """Config for a front-end name of the search space (``supernet.space.FEATURES``).

        "logmel80" -> 80 log-mels, "mfcc40" -> 40 MFCCs, ...; "learnable" is a model-side
        front-end and has no fixed config here.
        """
        for kind in ("logmel", "mfcc"):
            if name.startswith(kind) and name[len(kind):].isdigit():
                n = int(name[len(kind):])
                if kind == "logmel":
                    return cls(kind="logmel", n_mels=n, **kw)
                n_mels = max(n, kw.pop("n_mels", 80))
                return cls(kind="mfcc", n_mfcc=n, n_mels=n_mels, **kw)
        raise ValueError(f"unknown feature name {name!r}; expected logmel<N> or mfcc<N> (e.g. logmel80, mfcc40)")


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool mask, True on valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def num_frames(audio_lengths: torch.Tensor, hop_length: int = 160) -> torch.Tensor:
    """Valid feature frames for audio of these lengths (centred frames, zero padded).

    Args:
        audio_lengths: (B,) samples.
        hop_length: frame shift in samples (``FeatureConfig.hop_length``).

    Returns:
        (B,) int64 frames: ``S // hop + 1``.
    """
    return torch.div(audio_lengths, hop_length, rounding_mode="floor").long() + 1


class FeatureExtractor(nn.Module):
    """Audio batch -> feature batch with lengths.

    Args:
        cfg: :class:`FeatureConfig`.

    Shapes:
        forward(audio (B, S), audio_lengths (B,)) -> feats (B, T, F), feat_lengths (B,);
        frames at or beyond ``feat_lengths[b]`` are 0.
    """

    def __init__(self, cfg: FeatureConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FeatureConfig()
        melkw = dict(
            n_fft=cfg.win_length,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            center=True,
            pad_mode="constant",  # zeros, so padding in a batch looks like the edge of the utterance
            power=2.0,
        )
        if cfg.kind == "mfcc":
            self.transform = torchaudio.transforms.MFCC(
                sample_rate=cfg.sample_rate, n_mfcc=cfg.n_mfcc, log_mels=True, melkwargs=melkw
            )
        else:
            self.transform = torchaudio.transforms.MelSpectrogram(sample_rate=cfg.sample_rate, **melkw)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def num_frames(self, audio_lengths: torch.Tensor) -> torch.Tensor:
        return num_frames(audio_lengths, self.cfg.hop_length)

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S = audio.shape
        audio = audio.masked_fill(~lengths_to_mask(audio_lengths, S), 0.0)
        x = self.transform(audio.float())  # (B, F, T)
        if self.cfg.kind == "logmel":
            x = torch.log(x + _LOG_FLOOR)
        x = x.transpose(1, 2)  # (B, T, F)
        feat_lengths = self.num_frames(audio_lengths).clamp(max=x.shape[1])
        mask = lengths_to_mask(feat_lengths, x.shape[1]).unsqueeze(-1)  # (B, T, 1)
        if self.cfg.floor_db is not None:
            top = x.masked_fill(~mask, float("-inf")).amax(dim=(1, 2), keepdim=True)
            x = torch.maximum(x, top - self.cfg.floor_db * math.log(10.0) / 10.0)  # dB -> natural-log power
        if self.cfg.normalize == "utterance":
            n = feat_lengths.clamp(min=1).to(x.dtype)[:, None, None]
            mean = (x * mask).sum(1, keepdim=True) / n
            var = (((x - mean) * mask) ** 2).sum(1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-5)
        return x.masked_fill(~mask, 0.0), feat_lengths


@dataclass
class SpecAugmentConfig:
    """SpecAugment masks (Park et al., 2019), sized for short utterances.

    Args:
        freq_masks: number of frequency masks.
        freq_width: maximum width of a frequency mask, in feature bins.
        time_masks: number of time masks.
        time_width: maximum width of a time mask, in frames.
        max_time_ratio: a time mask covers at most this fraction of the utterance's own length.
        warp: (low, high) range of a per-utterance frequency-warp factor (vocal tract length
            perturbation, Jaitly & Hinton 2013, applied to the feature bins): bin f of the output
            reads bin f / alpha of the input (linear interpolation, clamped at the top bin), so
            alpha > 1 moves formants up, as a shorter vocal tract does. (1, 1): off.
    """

    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width: int = 20
    max_time_ratio: float = 0.2
    warp: tuple[float, float] = field(default=(1.0, 1.0), metadata=NEW_OPTION)

    def __post_init__(self) -> None:
        lo, hi = self.warp
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(f"warp must be (low, high) with 0.5 <= low <= high <= 2.0, got {tuple(self.warp)}")


class SpecAugment(nn.Module):
    """Frequency and time masking that respects lengths and draws from an explicit generator.

    Written here rather than taken from torchaudio.transforms.TimeMasking because that one
    draws from the global RNG and places masks over padding as well as speech. Masked values
    are set to 0 (the mean after utterance normalisation). Identity in eval mode.

    Args:
        cfg: :class:`SpecAugmentConfig`.
        seed: seeds the module's own generator (used when forward gets none).

    Shapes:
        forward(feats (B, T, F), feat_lengths (B,), generator=None) -> (B, T, F)
    """

    def __init__(self, cfg: SpecAugmentConfig | None = None, seed: int = 0):
        super().__init__()
        self.cfg = cfg or SpecAugmentConfig()
        self.generator = torch.Generator().manual_seed(seed)

    def _spans(self, n: int, B: int, width: torch.Tensor, extent: torch.Tensor, g: torch.Generator):
        """n random spans per row: start (B, n), width (B, n), each inside [0, extent)."""
        w = (torch.rand(B, n, generator=g) * (width[:, None] + 1)).long()
        w = torch.minimum(w, extent[:, None])
        start = (torch.rand(B, n, generator=g) * (extent[:, None] - w + 1)).long()
        return start, w

    def forward(self, feats: torch.Tensor, feat_lengths: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return feats
        g = generator or self.generator
        B, T, F = feats.shape
        c = self.cfg
        lengths = feat_lengths.detach().cpu().long()
        mask = torch.zeros(B, T, F, dtype=torch.bool)
        if c.freq_masks > 0 and c.freq_width > 0:
            start, w = self._spans(c.freq_masks, B, torch.full((B,), c.freq_width), torch.full((B,), F), g)
            f = torch.arange(F)[None, None, :]
            band = ((f >= start[..., None]) & (f < (start + w)[..., None])).any(1)  # (B, F)
            mask |= band[:, None, :]
        if c.time_masks > 0 and c.time_width > 0:
            cap = torch.clamp((lengths.float() * c.max_time_ratio).long(), max=c.time_width)
            start, w = self._spans(c.time_masks, B, cap, lengths, g)
            t = torch.arange(T)[None, None, :]
            span = ((t >= start[..., None]) & (t < (start + w)[..., None])).any(1)  # (B, T)
            mask |= span[:, :, None]
        lo, hi = c.warp
        if (lo, hi) != (1.0, 1.0):  # drawn after the masks: configs without a warp draw what they always drew
            alpha = lo + (hi - lo) * torch.rand(B, generator=g)
            src = (torch.arange(F, dtype=torch.float32)[None, :] / alpha[:, None]).clamp(0, F - 1)  # (B, F)
            i0 = src.floor().long()
            i1 = (i0 + 1).clamp(max=F - 1)
            frac = (src - i0).to(feats)[:, None, :]
            i0, i1 = (i[:, None, :].expand(B, T, F).to(feats.device) for i in (i0, i1))
            feats = feats.gather(2, i0) * (1 - frac) + feats.gather(2, i1) * frac
        return feats.masked_fill(mask.to(feats.device), 0.0)
