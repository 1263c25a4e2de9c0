"""Masks, lengths and positions for variable-length batches.

Conventions used by every module of ``supernet.nn``:
- ``mask``: (B, T) bool, True on valid frames (``lengths_to_mask``);
- ``attn_mask``: (T, T) bool, True where query t may attend to key s, or None for full
  context (streaming archs pass a chunk mask);
- padded frames may hold any value inside a module but never leak into valid ones.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from supernet.data.features import lengths_to_mask

__all__ = ["lengths_to_mask", "chunk_mask", "band_mask", "encoder_masks", "reverse_padded", "sinusoid"]


def chunk_mask(T: int, chunk: int, device: torch.device) -> Tensor:
    """Streaming mask: frame t sees every frame up to the end of its own chunk.

    Left context is unlimited; right context ends at the chunk boundary, so the output of a chunk
    depends on no later input (look-ahead is added once, by the subsampler, so it does not grow
    with depth as a per-layer right context would).

    Args:
        T: frames.
        chunk: frames per chunk (>= 1).

    Returns:
        (T, T) bool, True where query t may attend to key s.
    """
    idx = torch.arange(T, device=device) // chunk
    return idx[None, :] <= idx[:, None]


def band_mask(T: int, window: int, device: torch.device) -> Tensor:
    """(T, T) bool, True where |t - s| <= window (local attention)."""
    pos = torch.arange(T, device=device)
    return (pos[None, :] - pos[:, None]).abs() <= window


def encoder_masks(lengths: Tensor, T: int, chunk: int) -> tuple[Tensor, Optional[Tensor]]:
    """Padding mask (B, T) and attention mask ((T, T) chunk mask, or None when chunk == 0)."""
    mask = lengths_to_mask(lengths, T)
    attn_mask: Optional[Tensor] = None
    if chunk > 0:
        attn_mask = chunk_mask(T, chunk, lengths.device)
    return mask, attn_mask


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its own length; padded frames stay in place.

    Args:
        x: (B, T, D).
        lengths: (B,).

    Returns:
        (B, T, D) with ``out[b, t] = x[b, lengths[b] - 1 - t]`` for t < lengths[b].
    """
    T = x.size(1)
    t = torch.arange(T, device=x.device)[None, :]
    n = lengths[:, None].to(t.dtype)
    idx = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, idx[:, :, None].expand(-1, -1, x.size(2)))


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal encodings (Vaswani et al.) of (possibly negative) positions.

    Args:
        positions: (N,) integer or float positions.
        dim: encoding size.

    Returns:
        (N, dim) float32: sines then cosines.
    """
    half = (dim + 1) // 2
    freq = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * (-math.log(10000.0) / half))
    angle = positions.to(torch.float32)[:, None] * freq[None, :]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)[:, :dim]
