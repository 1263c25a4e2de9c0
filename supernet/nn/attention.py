"""Self-attention variants of the encoder, elastic in width and heads.

Every variant is a pre-norm residual *branch*: ``forward(x, mask, attn_mask, lengths)`` returns
``dropout(out(attention(norm(x))))`` and the block adds it to ``x``. The number of heads does not
change any weight shape (it only changes how the width is split), so heads are elastic for free.

- ``mha``: multi-head attention with absolute sinusoidal positions added to queries and keys.
- ``relpos``: relative positional attention as Transformer-XL / Conformer (Dai et al., 2019):
  content and position terms with learned biases u and v.
- ``local``: ``mha`` restricted to a window of frames on each side.
- ``linear``: kernelised linear attention (Katharopoulos et al., 2020), feature map elu + 1;
  O(T) without an attention mask, masked O(T^2) form when streaming.

Masks: ``mask`` (B, T) is True on valid frames (keys beyond a length are ignored);
``attn_mask`` (T, T) is True where query t may see key s (streaming chunks) or None.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernet.nn.dropout import Dropout
from supernet.nn.masks import band_mask, sinusoid

__all__ = ["MultiHeadAttention", "RelPositionAttention", "LocalAttention", "LinearAttention", "ATTENTION_CLASSES",
           "attend"]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, dropout: float) -> Tensor:
    """Scaled dot-product attention over heads.

    Args:
        q: (B, H, Tq, dk); k, v: (B, H, Tk, dk).
        mask: bool (broadcastable to (B, H, Tq, Tk)), True where attention is allowed, or a float
            additive bias of that shape.
        dropout: attention dropout probability (0 in eval mode).

    Returns:
        (B, H, Tq, dk).
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def _allowed(mask: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
    """(B, 1, T, T) bool: key is valid and (if given) the attention mask allows it."""
    allowed = mask[:, None, None, :]
    if attn_mask is not None:
        allowed = allowed & attn_mask[None, None, :, :]
    return allowed


class _SelfAttention(nn.Module):
    """Shared parts: pre-norm, q/k/v/out projections, head split and merge."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if heads < 1 or d_model % heads:
            raise ValueError(f"{type(self).__name__}: heads ({heads}) must divide d_model ({d_model})")
        self.d_model = d_model
        self.heads = heads
        self.head_dim = d_model // heads
        self.attn_dropout = dropout
        self.norm = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, dk)."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def _merge(self, x: Tensor) -> Tensor:
        """(B, H, T, dk) -> (B, T, D)."""
        return x.transpose(1, 2).flatten(2)

    def _p(self) -> float:
        return self.attn_dropout if self.training else 0.0

    def _absolute_qkv(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries and keys see absolute positions; values do not."""
        pos = sinusoid(torch.arange(h.size(1), device=h.device), self.d_model).to(h.dtype)
        hp = h + pos[None]
        return self._split(self.q(hp)), self._split(self.k(hp)), self._split(self.v(h))


class MultiHeadAttention(_SelfAttention):
    """Multi-head self-attention with absolute sinusoidal positions.

    Args:
        d_model: width D.
        heads: number of heads (divides D).
        dropout: attention and output dropout.

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask (T, T) | None, lengths (B,)) -> (B, T, D)
    """

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        q, k, v = self._absolute_qkv(self.norm(x))
        y = attend(q, k, v, _allowed(mask, attn_mask), self._p())
        return self.dropout(self.out(self._merge(y)))


class LocalAttention(_SelfAttention):
    """Windowed self-attention: frame t sees frames within ``window`` on each side.

    Args:
        d_model, heads, dropout: as :class:`MultiHeadAttention`.
        window: frames on each side.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, window: int = 16) -> None:
        super().__init__(d_model, heads, dropout)
        self.window = window

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        q, k, v = self._absolute_qkv(self.norm(x))
        allowed = _allowed(mask, attn_mask) & band_mask(x.size(1), self.window, x.device)[None, None]
        y = attend(q, k, v, allowed, self._p())
        return self.dropout(self.out(self._merge(y)))


class RelPositionAttention(_SelfAttention):
    """Relative positional multi-head attention (Transformer-XL; Conformer's MHSA).

    score(t, s) = (q_t + u) . k_s + (q_t + v) . p_{t-s}, scaled by 1/sqrt(dk), where p_r is a
    projection of the sinusoidal encoding of the distance r. The biases u and v are stored flat,
    (D,), so that a smaller width or another head count is a slice of them.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__(d_model, heads, dropout)
        self.pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(d_model))
        self.pos_bias_v = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        h = self.norm(x)
        B, T, _ = h.shape
        q, k, v = self._split(self.q(h)), self._split(self.k(h)), self._split(self.v(h))
        u = self.pos_bias_u.view(1, self.heads, 1, self.head_dim)
        w = self.pos_bias_v.view(1, self.heads, 1, self.head_dim)
        # distances T-1 ... -(T-1); entry (t, s) of the score needs distance t - s
        rel = torch.arange(T - 1, -T, -1, device=h.device)
        p = self._split(self.pos(sinusoid(rel, self.d_model).to(h.dtype))[None])  # (1, H, 2T-1, dk)
        bd = torch.matmul(q + w, p.transpose(-1, -2))  # (B, H, T, 2T-1)
        t = torch.arange(T, device=h.device)
        idx = (T - 1) - t[:, None] + t[None, :]  # (T, T) column of distance t - s
        bd = bd.gather(-1, idx[None, None].expand(B, self.heads, T, T)) / math.sqrt(self.head_dim)
        bias = bd.masked_fill(~_allowed(mask, attn_mask), -1e9)  # exp underflows to 0; no row is fully masked
        y = attend(q + u, k, v, bias, self._p())
        return self.dropout(self.out(self._merge(y)))


class LinearAttention(_SelfAttention):
    """Linear attention with feature map elu(x) + 1 and absolute positions.

    Without an attention mask it costs O(T): sum_s phi(k_s) v_s^T is formed once. With a
    (streaming) mask it uses the equivalent masked O(T^2) form, which gives the same result for
    the frames each query may see.
    """

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        q, k, v = self._absolute_qkv(self.norm(x))
        q = F.elu(q) + 1.0
        k = F.elu(k) + 1.0
        eps = 1e-6
        if attn_mask is None:
            k = k * mask[:, None, :, None].to(k.dtype)
            kv = torch.matmul(k.transpose(-1, -2), v)  # (B, H, dk, dk)
            z = torch.matmul(q, k.sum(dim=2, keepdim=True).transpose(-1, -2))  # (B, H, T, 1)
            y = torch.matmul(q, kv) / (z + eps)
        else:
            a = torch.matmul(q, k.transpose(-1, -2)) * _allowed(mask, attn_mask).to(q.dtype)
            y = torch.matmul(a, v) / (a.sum(dim=-1, keepdim=True) + eps)
        return self.dropout(self.out(self._merge(y)))


ATTENTION_CLASSES: dict[str, type[_SelfAttention]] = {
    "mha": MultiHeadAttention,
    "relpos": RelPositionAttention,
    "local": LocalAttention,
    "linear": LinearAttention,
}
