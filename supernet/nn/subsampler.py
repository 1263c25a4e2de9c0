"""Convolutional time subsampling (x4, x6, x8) of frames before the encoder layers.

Strided 1-D convolutions over time (frame features as channels), each followed by GELU (after a
per-frame LayerNorm when ``NetConfig.frame_norm``), then a projection to the encoder width D. Stride 2 uses kernel 3, stride 3 kernel 5.
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

from supernet.nn.masks import lengths_to_mask

__all__ = ["Subsampler", "SUBSAMPLING_STRIDES", "subsampled_lengths"]

SUBSAMPLING_STRIDES: dict[int, tuple[int, ...]] = {4: (2, 2), 6: (2, 3), 8: (2, 2, 2)}


def subsampled_lengths(lengths: Tensor, factor: int) -> Tensor:
    """Encoder frames of inputs with ``lengths`` frames: ceil per stage."""
    for s in SUBSAMPLING_STRIDES[factor]:
        lengths = (lengths + s - 1) // s
    return lengths


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
        if self.causal:
            h = F.pad(h, [self.kernel - 1, 0])
        else:
            h = F.pad(h, [(self.kernel - 1) // 2, (self.kernel - 1) // 2])
        h = F.gelu(self.norm(self.conv(h).transpose(1, 2)))
        return h, (lengths + self.stride - 1) // self.stride


class Subsampler(nn.Module):
    """Subsample frames by ``factor`` and project to the encoder width.

    Args:
        factor: 4, 6 or 8.
        channels: C, the channels of the input and of every stage.
        d_model: output width D.
        causal: streaming (left-padded convolutions).
        lookahead: encoder frames of future each output frame may see (streaming only).
        frame_norm: LayerNorm over channels after each convolution (``NetConfig.frame_norm``).

    Shapes:
        forward(x (B, T, C), lengths (B,)) -> (B, ceil(T / factor), D), lengths (B,);
        frames at or beyond the output lengths are 0.
    """

    def __init__(self, factor: int, channels: int, d_model: int, causal: bool = False, lookahead: int = 0,
                 frame_norm: bool = True) -> None:
        super().__init__()
        if factor not in SUBSAMPLING_STRIDES:
            raise ValueError(f"subsampling {factor} is not supported; allowed values: {sorted(SUBSAMPLING_STRIDES)}")
        if lookahead < 0 or (lookahead and not causal):
            raise ValueError(f"lookahead ({lookahead}) must be >= 0 and only given to a causal (streaming) subsampler")
        self.factor = factor
        self.shift = lookahead * factor
        self.stages = nn.ModuleList(_Stage(channels, s, causal, frame_norm) for s in SUBSAMPLING_STRIDES[factor])
        self.proj = nn.Linear(channels, d_model)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.shift > 0:
            # look-ahead: frame t is computed from inputs shifted `shift` frames earlier
            x = x.masked_fill(~lengths_to_mask(lengths, x.size(1))[:, :, None], 0.0)
            x = F.pad(x, [0, 0, 0, self.shift])[:, self.shift:]
        for stage in self.stages:
            x, lengths = stage(x, lengths)
        x = self.proj(x)
        return x.masked_fill(~lengths_to_mask(lengths, x.size(1))[:, :, None], 0.0), lengths
