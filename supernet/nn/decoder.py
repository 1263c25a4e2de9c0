"""Attention decoder head: a Transformer decoder trained jointly with CTC (Watanabe et al., 2017).

The decoder reads tokens with ``<sos>`` prepended and predicts them with ``<eos>`` appended; both
are the extra id ``vocab_size`` (so the decoder has V + 1 classes while the CTC branch has V).
Loss: ``ctc_weight * CTC + (1 - ctc_weight) * cross-entropy`` (label smoothing), both per token.
Greedy decoding is autoregressive with the decoder alone.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernet.nn.attention import attend
from supernet.nn.ctc import ctc_loss
from supernet.nn.dropout import Dropout
from supernet.nn.feedforward import FeedForward
from supernet.nn.masks import lengths_to_mask, sinusoid

__all__ = ["AttentionHead", "DecoderLayer", "DecoderAttention"]

_IGNORE = -100


class DecoderAttention(nn.Module):
    """Pre-norm multi-head attention branch; self-attention when ``memory`` is None.

    Args:
        d_model: decoder width W.
        d_memory: width of the memory (encoder D) for cross-attention.
        heads: number of heads (divides W).
        dropout: attention and output dropout.

    Shapes:
        forward(x (B, U, W), memory (B, T, D) | None, allowed (B|1, 1, U, T|U) bool) -> (B, U, W)
    """

    def __init__(self, d_model: int, d_memory: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"decoder heads ({heads}) must divide the decoder width ({d_model})")
        self.heads = heads
        self.attn_dropout = dropout
        self.norm = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_memory, d_model)
        self.v = nn.Linear(d_memory, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, memory: Optional[Tensor], allowed: Tensor) -> Tensor:
        h = self.norm(x)
        src = h if memory is None else memory
        dk = self.q.out_features // self.heads
        q = self.q(h).unflatten(-1, (self.heads, dk)).transpose(1, 2)
        k = self.k(src).unflatten(-1, (self.heads, dk)).transpose(1, 2)
        v = self.v(src).unflatten(-1, (self.heads, dk)).transpose(1, 2)
        y = attend(q, k, v, allowed, self.attn_dropout if self.training else 0.0)
        return self.dropout(self.out(y.transpose(1, 2).flatten(2)))


class DecoderLayer(nn.Module):
    """Pre-norm Transformer decoder layer: causal self-attention, cross-attention, FFN (4W)."""

    def __init__(self, d_model: int, d_memory: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = DecoderAttention(d_model, d_model, heads, dropout)
        self.cross_attn = DecoderAttention(d_model, d_memory, heads, dropout)
        self.ffn = FeedForward(d_model, 4 * d_model, dropout)

    def forward(self, x: Tensor, memory: Tensor, self_allowed: Tensor, cross_allowed: Tensor, x_mask: Tensor,
                x_lengths: Tensor) -> Tensor:
        x = x + self.self_attn(x, None, self_allowed)
        x = x + self.cross_attn(x, memory, cross_allowed)
        return x + self.ffn(x, x_mask, None, x_lengths)


class AttentionHead(nn.Module):
    """CTC branch + Transformer decoder over the encoder output.

    Args:
        d_model: encoder width D.
        vocab_size: V, blank (0) included; ``<sos>``/``<eos>`` is id V.
        layers: decoder layers.
        width: decoder width W.
        heads: decoder attention heads.
        dropout: decoder dropout.
        ctc_weight: weight of the CTC loss.
        label_smoothing: of the decoder cross-entropy.
        blank: CTC blank id (never produced by the decoder).

    Shapes:
        forward(enc (B, T, D), enc_lengths (B,), targets (B, U), target_lengths (B,))
        -> (CTC log-probs (B, T, V), decoder logits (B, U + 1, V + 1)).
    """

    def __init__(self, d_model: int, vocab_size: int, layers: int, width: int, heads: int = 4, dropout: float = 0.0,
                 ctc_weight: float = 0.3, label_smoothing: float = 0.1, blank: int = 0) -> None:
        super().__init__()
        self.blank = blank
        self.eos = vocab_size
        self.width = width
        self.ctc_weight = ctc_weight
        self.label_smoothing = label_smoothing
        self.ctc = nn.Linear(d_model, vocab_size)
        self.embed = nn.Embedding(vocab_size + 1, width)
        self.layers = nn.ModuleList(DecoderLayer(width, d_model, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, vocab_size + 1)

    def forward(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> tuple[Tensor, Tensor]:
        ys = F.pad(targets, [1, 0], value=float(self.eos))  # <sos> y1 ... yU
        return F.log_softmax(self.ctc(enc), dim=-1), self.decoder_logits(ys, target_lengths + 1, enc, enc_lengths)

    def decoder_logits(self, ys: Tensor, ys_lengths: Tensor, enc: Tensor, enc_lengths: Tensor) -> Tensor:
        """Token ids (B, U) -> logits (B, U, V + 1), each position seeing only earlier tokens."""
        U = ys.size(1)
        x = self.embed(ys) + sinusoid(torch.arange(U, device=ys.device), self.width).to(enc.dtype)[None]
        causal = torch.ones(U, U, dtype=torch.bool, device=ys.device).tril()[None, None]
        cross = lengths_to_mask(enc_lengths, enc.size(1))[:, None, None, :]
        y_mask = lengths_to_mask(ys_lengths, U)
        for layer in self.layers:
            x = layer(x, enc, causal, cross, y_mask, ys_lengths)
        return self.out(self.norm(x))

    def loss(self, outputs: tuple[Tensor, Tensor], enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        ctc_log_probs, logits = outputs
        B, U = targets.shape
        gold = F.pad(targets, [0, 1], value=_IGNORE).scatter(1, target_lengths[:, None], self.eos)  # y1 ... yU <eos>
        gold = gold.masked_fill(~lengths_to_mask(target_lengths + 1, U + 1), _IGNORE)
        ce = F.cross_entropy(logits.transpose(1, 2).float(), gold, ignore_index=_IGNORE,
                             label_smoothing=self.label_smoothing)
        if self.ctc_weight == 0.0:
            return ce
        ctc = ctc_loss(ctc_log_probs, enc_lengths, targets, target_lengths, self.blank)
        return self.ctc_weight * ctc + (1.0 - self.ctc_weight) * ce

    @torch.no_grad()
    def decode(self, enc: Tensor, enc_lengths: Tensor, max_len: int | None = None) -> list[list[int]]:
        """Greedy autoregressive decoding, at most ``max_len`` tokens (default: encoder frames)."""
        B = enc.size(0)
        steps = max_len if max_len is not None else int(enc_lengths.max())
        ys = torch.full((B, 1), self.eos, dtype=torch.long, device=enc.device)
        done = torch.zeros(B, dtype=torch.bool, device=enc.device)
        for _ in range(steps):
            logits = self.decoder_logits(ys, torch.full((B,), ys.size(1), device=enc.device), enc, enc_lengths)[:, -1]
            logits[:, self.blank] = float("-inf")  # blank is CTC's, not a token
            nxt = torch.where(done, torch.full_like(done, self.eos, dtype=torch.long), logits.argmax(dim=-1))
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            done |= nxt == self.eos
            if bool(done.all()):
                break
        out = []
        for row in ys[:, 1:].tolist():
            out.append(row[: row.index(self.eos)] if self.eos in row else row)
        return out
