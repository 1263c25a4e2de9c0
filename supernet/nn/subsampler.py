"""Convolutional time subsampling (x4, x6, x8) of frames before the encoder layers.

Two kinds (``NetConfig.subsampler``):

- ``conv1d`` (the default): strided 1-D convolutions over time (frame features as channels), each
  followed by GELU (after a per-frame LayerNorm when ``NetConfig.frame_norm``), then a projection
  to the encoder width D.
- ``conv2d``: strided 2-D convolutions over (time, frequency), as the Conformer's own subsampling
  (and the baseline's, ``supernet.baseline.models.ConvSubsampler``): the input's features are
  frequency rows (``bins`` of them), each stage halves them (kernel 3, stride 2, no padding) and
  is followed by ReLU (after a LayerNorm over the channels of each time-frequency cell when
  ``frame_norm``); the channels of every cell of the last stage are flattened into the projection.
  Local spectro-temporal filters that slide along frequency: a formant or pitch shifted by a few
  bins meets the same filter. Measured on FSDD (BENCHMARKS.md, issue #8, session 24): the
  baseline's shape trained alone for 9 minutes with the baseline's recipe reached 5.9 % dev /
  19.6 % unseen-speaker test WER with ``conv1d`` and 3.3 / 10.4 % with ``conv2d`` (32 channels),
  against the baseline's 1.6 / 13.5 %.

Stride 2 uses kernel 3 in time, stride 3 kernel 5, in both kinds.
Each stage maps T frames to ceil(T / stride), both centred and causal (left-padded), so lengths
are ``ceil(lengths / factor)`` in both modes.

Streaming (``causal=True``): output frame t depends on input frames up to t * factor, plus the
look-ahead: the input is shifted ``lookahead * factor`` frames earlier, so frame t also sees
``lookahead`` encoder frames of future. Look-ahead lives here, once, instead of in every
attention layer, where a per-layer right context would grow with depth.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from supernet.nn.config import NetConfig
from supernet.nn.masks import lengths_to_mask

__all__ = ["Subsampler", "SUBSAMPLING_STRIDES", "subsampled_lengths", "conv2d_rows", "subsampler_options"]

SUBSAMPLING_STRIDES: dict[int, tuple[int, ...]] = {4: (2, 2), 6: (2, 3), 8: (2, 2, 2)}


def subsampled_lengths(lengths: Tensor, factor: int) -> Tensor:
    """Encoder frames of inputs with ``lengths`` frames: ceil per stage."""
    for s in SUBSAMPLING_STRIDES[factor]:
        lengths = (lengths + s - 1) // s
    return lengths


def _time_padding(kernel: int, causal: bool) -> tuple[int, int]:
    """(left, right) frames of padding in time: all on the left when causal, centred otherwise,
    so a stage of stride s maps T frames to ceil(T / s) either way."""
    if causal:
        return kernel - 1, 0
    return (kernel - 1) // 2, (kernel - 1) // 2


def subsampler_options(net: NetConfig) -> dict:
    """:class:`Subsampler` arguments that ``net`` decides (every builder passes these)."""
    return {"channels": net.subsampler_channels, "frame_norm": net.frame_norm, "bins": net.conv2d_bins}


class _Stage(nn.Module):
    """One strided convolution stage: conv -> (LayerNorm) -> GELU, padded frames zeroed."""

    def __init__(self, channels: int, stride: int, causal: bool, frame_norm: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.kernel = 2 * stride - 1
        self.causal = causal
        self.conv = nn.Conv1d(channels, channels, self.kernel, stride=stride)
        self.norm = nn.LayerNorm(channels) if frame_norm else nn.Identity()

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = x.masked_fill(~lengths_to_mask(lengths, x.size(1))[:, :, None], 0.0).transpose(1, 2)
        left, right = _time_padding(self.kernel, self.causal)
        h = F.pad(h, [left, right])
        h = F.gelu(self.norm(self.conv(h).transpose(1, 2)))
        return h, (lengths + self.stride - 1) // self.stride


class _Stage2d(nn.Module):
    """One strided 2-D stage over (time, frequency): conv -> (LayerNorm over channels) -> ReLU,
    padded frames zeroed. Time is padded as in :class:`_Stage` (so T -> ceil(T / stride)),
    frequency is not (F -> (F - 3) // 2 + 1)."""

    def __init__(self, in_channels: int, channels: int, stride: int, causal: bool, frame_norm: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.kernel = 2 * stride - 1
        self.causal = causal
        self.conv = nn.Conv2d(in_channels, channels, (self.kernel, 3), stride=(stride, 2))
        self.frame_norm = frame_norm
        self.norm = nn.LayerNorm(channels) if frame_norm else nn.Identity()

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        # x: (B, C, T, F)
        h = x.masked_fill(~lengths_to_mask(lengths, x.size(2))[:, None, :, None], 0.0)
        left, right = _time_padding(self.kernel, self.causal)
        h = self.conv(F.pad(h, [0, 0, left, right]))  # time is dim 2
        if self.frame_norm:  # over the channels of each cell
            h = self.norm(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        h = F.relu(h)
        return h, (lengths + self.stride - 1) // self.stride


def conv2d_rows(bins: int, factor: int) -> int:
    """Frequency rows left after the ``conv2d`` stages of subsampling ``factor`` from ``bins``."""
    for _ in SUBSAMPLING_STRIDES[factor]:
        bins = (bins - 3) // 2 + 1
    return bins


class Subsampler(nn.Module):
    """Subsample frames by ``factor`` and project to the encoder width.

    Args:
        factor: 4, 6 or 8.
        channels: C, the channels of the input and of every stage.
        d_model: output width D.
        causal: streaming (left-padded convolutions).
        lookahead: encoder frames of future each output frame may see (streaming only).
        frame_norm: LayerNorm over channels after each convolution (``NetConfig.frame_norm``).
        bins: None for ``conv1d`` (the input has C channels); for ``conv2d``, the input's features
            are this many frequency rows, and C is the channels of the 2-D convolutions.

    Shapes:
        forward(x (B, T, C or bins), lengths (B,)) -> (B, ceil(T / factor), D), lengths (B,);
        frames at or beyond the output lengths are 0.
    """

    def __init__(self, factor: int, channels: int, d_model: int, causal: bool = False, lookahead: int = 0,
                 frame_norm: bool = True, bins: int | None = None) -> None:
        super().__init__()
        if factor not in SUBSAMPLING_STRIDES:
            raise ValueError(f"subsampling {factor} is not supported; allowed values: {sorted(SUBSAMPLING_STRIDES)}")
        if lookahead < 0 or (lookahead and not causal):
            raise ValueError(f"lookahead ({lookahead}) must be >= 0 and only given to a causal (streaming) subsampler")
        self.factor = factor
        self.shift = lookahead * factor
        self.conv2d = bins is not None
        if self.conv2d:
            rows = conv2d_rows(bins, factor)
            if rows < 1:
                need = next(b for b in range(1, 64) if conv2d_rows(b, factor) >= 1)
                raise ValueError(f"NetConfig.subsampler_bins = {bins} is too few frequency rows for the conv2d subsampler of "
                                 f"factor {factor} (each stage halves them); use at least {need}")
            strides = SUBSAMPLING_STRIDES[factor]
            self.stages = nn.ModuleList(_Stage2d(1 if i == 0 else channels, channels, s, causal, frame_norm)
                                        for i, s in enumerate(strides))
            self.proj = nn.Linear(channels * rows, d_model)
        else:
            self.stages = nn.ModuleList(_Stage(channels, s, causal, frame_norm) for s in SUBSAMPLING_STRIDES[factor])
            self.proj = nn.Linear(channels, d_model)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.shift > 0:
            # look-ahead: frame t is computed from inputs shifted `shift` frames earlier
            x = x.masked_fill(~lengths_to_mask(lengths, x.size(1))[:, :, None], 0.0)
            x = F.pad(x, [0, 0, 0, self.shift])[:, self.shift:]
        if self.conv2d:
            x = x[:, None]  # (B, 1, T, bins)
        for stage in self.stages:
            x, lengths = stage(x, lengths)
        if self.conv2d:
            x = x.permute(0, 2, 1, 3).flatten(2)  # (B, T', C * rows)
        x = self.proj(x)
        return x.masked_fill(~lengths_to_mask(lengths, x.size(1))[:, :, None], 0.0), lengths
