"""RNN-T head (Graves, 2012): LSTM predictor + additive joiner, ``torchaudio`` RNN-T loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from supernet.nn.dropout import Dropout

__all__ = ["TransducerHead"]


class TransducerHead(nn.Module):
    """RNN transducer head on top of an encoder.

    Predictor: embedding of the previous token (blank = start) -> ``layers``-layer LSTM of
    ``width`` units. Joiner: ``out(tanh(enc_proj(enc_t) + pred_proj(g_u)))``. Elastic in the
    encoder width, ``width`` and ``layers`` (the first layers of the stack).

    Args:
        d_model: encoder width D.
        vocab_size: V, blank (0) included.
        layers: predictor LSTM layers.
        width: predictor and joiner width.
        dropout: on the predictor output.
        blank: blank id.
        max_symbols: greedy decoding emits at most this many tokens per frame.

    Shapes:
        forward(enc (B, T, D), enc_lengths (B,), targets (B, U), target_lengths (B,))
        -> joint logits (B, T, U + 1, V).
    """

    def __init__(self, d_model: int, vocab_size: int, layers: int, width: int, dropout: float = 0.0,
                 blank: int = 0, max_symbols: int = 5) -> None:
        super().__init__()
        self.blank = blank
        self.max_symbols = max_symbols
        self.embed = nn.Embedding(vocab_size, width)
        self.predictor = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.enc_proj = nn.Linear(d_model, width)
        self.pred_proj = nn.Linear(width, width)
        self.out = nn.Linear(width, vocab_size)
        self.dropout = Dropout(dropout)

    def joint(self, e: Tensor, g: Tensor) -> Tensor:
        """Projected encoder (B, T, W) and predictor (B, U, W) -> logits (B, T, U, V)."""
        return self.out(torch.tanh(e[:, :, None, :] + g[:, None, :, :]))

    def forward(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        ys = F.pad(targets, [1, 0], value=float(self.blank))  # (B, U + 1): blank starts every sequence
        g, _ = self.predictor(self.embed(ys))
        return self.joint(self.enc_proj(enc), self.pred_proj(self.dropout(g)))

    def loss(self, outputs: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """RNN-T loss per target token, averaged over utterances (as :func:`~supernet.nn.ctc.ctc_loss`)."""
        T, U = int(enc_lengths.max()), int(target_lengths.max())
        per_utt = torchaudio.functional.rnnt_loss(
            outputs[:, :T, : U + 1].float().contiguous(), targets[:, :U].int().contiguous(),
            enc_lengths.int(), target_lengths.int(), blank=self.blank, reduction="none",
        )
        return (per_utt / target_lengths.clamp(min=1).to(per_utt.dtype)).mean()

    @torch.no_grad()
    def decode(self, enc: Tensor, enc_lengths: Tensor) -> list[list[int]]:
        """Batched greedy search: per frame, emit argmax tokens until blank (at most ``max_symbols``)."""
        B, T, _ = enc.shape
        e = self.enc_proj(enc)
        start = torch.full((B, 1), self.blank, dtype=torch.long, device=enc.device)
        g, state = self.predictor(self.embed(start))
        g = self.pred_proj(g[:, 0])
        hyps: list[list[int]] = [[] for _ in range(B)]
        for t in range(T):
            active = t < enc_lengths
            for _ in range(self.max_symbols):
                k = self.joint(e[:, t : t + 1], g[:, None])[:, 0, 0].argmax(dim=-1)
                emit = active & (k != self.blank)
                if not bool(emit.any()):
                    break
                g_new, state_new = self.predictor(self.embed(k[:, None]), state)
                g = torch.where(emit[:, None], self.pred_proj(g_new[:, 0]), g)
                state = tuple(torch.where(emit[None, :, None], n, o) for n, o in zip(state_new, state))
                for b in emit.nonzero().flatten().tolist():
                    hyps[b].append(int(k[b]))
        return hyps
