"""Convolution branches: the Conformer convolution module and the ContextNet-style cnn block.

Both use LayerNorm where the originals use BatchNorm: batch statistics would make a subnet's
output depend on which other subnets were trained and on the batch, which breaks evaluation with
inherited weights and exact extraction. Depthwise convolutions are centred (full context) or
causal (streaming); the same weights serve both. How a causal convolution uses the centred
kernel is ``NetConfig.causal_conv``:

- ``shift``: the whole kernel moves into the past (frame t sees frames t-k+1..t). Tap j, which
  looks (k-1)/2 - j frames back in the full-context arch, looks (k-1) - j frames back here, so a
  streaming arch inherits weights that meant something else.
- ``mask``: the future taps are dropped (frame t sees t-(k-1)/2..t through taps 0..(k-1)/2).
  Every kept tap looks at the same offset as in the full-context arch, so streaming and
  full-context archs share what the weights mean, as dual-mode ASR does (Yu et al., 2021); it
  costs half the taps and half the left context. Measured, that cost wins: from the same
  full-context weights a streaming arch adapted far worse with ``mask`` than with ``shift``
  (16.4 % against 3.0 % dev WER after 4 minutes; BENCHMARKS.md, session 8), so ``shift`` stays
  the default.
- ``chunk``: the centred kernel, with each frame's future taps cut at the end of its own chunk
  (dynamic chunk convolution, Li et al., ICASSP 2023): frame t of the chunk [cS, cS + S) sees
  t-(k-1)/2 .. min(t+(k-1)/2, cS+S-1), the same right edge as the chunk attention mask. Every
  tap keeps its full-context offset and a chunk still depends on no later frame, so chunk-by-
  chunk decoding is unchanged (``supernet.streaming``). Needs the arch's chunk S. Measured with
  dynamic-chunk training (12 minutes from scratch, chunk 4, kernel 15; BENCHMARKS.md, session
  14) it lost to ``shift`` in both modes (12.9 % against 4.2 % streaming dev WER): a frame keeps
  only (k-1)/2 past taps, as with ``mask``.

A smaller kernel is the centre of the largest one (``supernet.nn.elastic``). Padded frames are
zeroed before each convolution so they never leak into valid ones.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernet.nn.config import CAUSAL_CONV_MODES
from supernet.nn.dropout import Dropout

__all__ = ["ConvModule", "ConvSE", "pad_for_conv", "depthwise_conv"]


def pad_for_conv(x: Tensor, mask: Tensor, kernel: int, causal: bool) -> Tensor:
    """Zero padded frames and pad time for an unpadded convolution of ``kernel`` taps.

    Args:
        x: (B, T, D).
        mask: (B, T) True on valid frames.
        kernel: kernel size (odd).
        causal: pad on the left only (frame t sees t-k+1..t), else on both sides.

    Returns:
        (B, D, T + kernel - 1), channels first for ``nn.Conv1d``.
    """
    h = x.masked_fill(~mask[:, :, None], 0.0).transpose(1, 2)
    if causal:
        return F.pad(h, [kernel - 1, 0])
    return F.pad(h, [(kernel - 1) // 2, (kernel - 1) // 2])


def depthwise_conv(x: Tensor, mask: Tensor, weight: Tensor, bias: Optional[Tensor], kernel: int, causal: bool,
                   causal_mode: str = "shift", chunk: int = 0) -> Tensor:
    """Depthwise convolution of ``x`` (B, T, D) -> (B, D, T) by ``weight`` (D, 1, kernel), padded
    frames zeroed first (takes tensors, not the module, so that TorchScript can script it).

    Centred unless ``causal``; causal per ``causal_mode`` (module docstring): "shift" pads k-1
    frames on the left; "mask" keeps the centre and past taps of the same weight; "chunk" adds
    the future taps that stay inside the frame's chunk of ``chunk`` frames.
    """
    if causal and causal_mode != "shift":
        half = (kernel - 1) // 2
        h = x.masked_fill(~mask[:, :, None], 0.0).transpose(1, 2)
        out = F.conv1d(F.pad(h, [half, 0]), weight[:, :, : half + 1], bias, groups=weight.size(0))
        if causal_mode == "chunk":
            if chunk < 1:
                raise ValueError(f"causal_mode 'chunk' needs the arch's chunk (>= 1 frames), got {chunk}")
            pos = torch.arange(h.size(2), device=h.device) % chunk  # frame's place in its chunk
            for o in range(1, min(half, chunk - 1) + 1):  # future offset o: only inside the chunk
                future = F.pad(h[:, :, o:], [0, o])  # frame t + o (0 past the end)
                out = out + weight[:, :, half + o] * future * (pos < chunk - o).to(h.dtype)
        return out
    return F.conv1d(pad_for_conv(x, mask, kernel, causal), weight, bias, groups=weight.size(0))


def _check_mode(causal_mode: str, causal: bool, chunk: int) -> None:
    if causal_mode not in CAUSAL_CONV_MODES:
        raise ValueError(f"causal_mode must be one of {', '.join(CAUSAL_CONV_MODES)}, got {causal_mode!r}")
    if causal and causal_mode == "chunk" and chunk < 1:
        raise ValueError(f"causal_mode 'chunk' needs the streaming arch's chunk (>= 1 encoder frames), got chunk={chunk}")


def _check_kernel(kernel: int) -> None:
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be odd and >= 1 (a centred kernel), got {kernel}")


class ConvModule(nn.Module):
    """Conformer convolution branch (Gulati et al., 2020).

    norm -> pointwise GLU (value * sigmoid(gate)) -> depthwise conv (k) -> LayerNorm -> SiLU ->
    pointwise -> dropout. The GLU halves are two Linear layers so that a smaller width slices
    each half, not the first half of both.

    Args:
        d_model: width D.
        kernel: depthwise kernel size (odd).
        causal: streaming convolution.
        dropout: output dropout.
        causal_mode: how a causal convolution uses the kernel, "shift", "mask" or "chunk" (module
            docstring).
        chunk: the streaming arch's chunk in frames ("chunk" mode only).

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask, lengths (B,)) -> (B, T, D)
    """

    def __init__(self, d_model: int, kernel: int, causal: bool = False, dropout: float = 0.0,
                 causal_mode: str = "shift", chunk: int = 0) -> None:
        super().__init__()
        _check_kernel(kernel)
        _check_mode(causal_mode, causal, chunk)
        self.kernel = kernel
        self.causal = causal
        self.causal_mode = causal_mode
        self.chunk = chunk
        self.norm = nn.LayerNorm(d_model)
        self.value = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(d_model, d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.conv_norm = nn.LayerNorm(d_model)
        self.pointwise = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        h = self.norm(x)
        h = self.value(h) * torch.sigmoid(self.gate(h))
        h = depthwise_conv(h, mask, self.depthwise.weight, self.depthwise.bias, self.kernel, self.causal,
                           self.causal_mode, self.chunk).transpose(1, 2)
        return self.dropout(self.pointwise(F.silu(self.conv_norm(h))))


class ConvSE(nn.Module):
    """ContextNet-style branch (Han et al., 2020): two depthwise-separable convolutions and
    squeeze-and-excitation.

    norm -> [depthwise conv (k) -> pointwise -> LayerNorm -> SiLU] x 2 -> SE -> dropout. The SE
    context is the mean over the utterance's valid frames; when ``causal``, the running mean up
    to each frame (so no future frame leaks in while streaming).

    Args:
        d_model: width D.
        kernel: depthwise kernel size (odd).
        causal: streaming convolutions and running-mean SE.
        dropout: output dropout.
        se_reduction: SE bottleneck is D // se_reduction.
        causal_mode: how a causal convolution uses the kernels, "shift", "mask" or "chunk" (module
            docstring).
        chunk: the streaming arch's chunk in frames ("chunk" mode only).

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask, lengths (B,)) -> (B, T, D)
    """

    def __init__(self, d_model: int, kernel: int, causal: bool = False, dropout: float = 0.0,
                 se_reduction: int = 8, causal_mode: str = "shift", chunk: int = 0) -> None:
        super().__init__()
        _check_kernel(kernel)
        _check_mode(causal_mode, causal, chunk)
        self.kernel = kernel
        self.causal = causal
        self.causal_mode = causal_mode
        self.chunk = chunk
        self.norm = nn.LayerNorm(d_model)
        self.dw1 = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.pw1 = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.dw2 = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.pw2 = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        squeeze = max(1, d_model // se_reduction)
        self.se_down = nn.Linear(d_model, squeeze)
        self.se_up = nn.Linear(squeeze, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        h = self.norm(x)
        h = depthwise_conv(h, mask, self.dw1.weight, self.dw1.bias, self.kernel, self.causal, self.causal_mode, self.chunk)
        h = F.silu(self.norm1(self.pw1(h.transpose(1, 2))))
        h = depthwise_conv(h, mask, self.dw2.weight, self.dw2.bias, self.kernel, self.causal, self.causal_mode, self.chunk)
        h = F.silu(self.norm2(self.pw2(h.transpose(1, 2))))
        m = mask[:, :, None].to(h.dtype)
        if self.causal:
            context = torch.cumsum(h * m, dim=1) / torch.cumsum(m, dim=1).clamp(min=1.0)
        else:
            context = (h * m).sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp(min=1.0)
        scale = torch.sigmoid(self.se_up(F.silu(self.se_down(context))))
        return self.dropout(h * scale)
