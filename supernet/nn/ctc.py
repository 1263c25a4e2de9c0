"""CTC head: a linear layer over encoder frames, CTC loss, greedy decoding.

Every decoder head (``supernet.nn.heads``) has the same three calls:
``forward(enc, enc_lengths, targets, target_lengths) -> outputs`` (what the loss needs; the
only call that reads weights during training), ``loss(outputs, enc_lengths, targets,
target_lengths) -> scalar`` (reads no weights) and ``decode(enc, enc_lengths) -> list[list[int]]``.
Token 0 is the CTC blank.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CTCHead", "ctc_loss", "ctc_greedy"]


def ctc_loss(log_probs: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor, blank: int = 0) -> Tensor:
    """CTC loss per target token, averaged over utterances.

    Utterances too short for their transcript (impossible alignments) give 0, not inf
    (``zero_infinity``), so one of them cannot turn a whole batch's gradient into NaN.

    Args:
        log_probs: (B, T, V) log-probabilities.
        lengths: (B,) valid frames.
        targets: (B, U) zero-padded token ids.
        target_lengths: (B,).
    """
    return F.ctc_loss(log_probs.transpose(0, 1).float(), targets, lengths, target_lengths, blank=blank,
                      reduction="mean", zero_infinity=True)


def ctc_greedy(log_probs: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks.

    Args:
        log_probs: (B, T, V).
        lengths: (B,) valid frames.
    """
    best = log_probs.argmax(dim=-1).cpu()
    out = []
    for b, n in enumerate(lengths.cpu().tolist()):
        path = best[b, :n]
        keep = torch.ones_like(path, dtype=torch.bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(t) for t in path[keep & (path != blank)]])
    return out


class CTCHead(nn.Module):
    """Linear projection of encoder frames to the vocabulary, trained with CTC.

    Args:
        d_model: encoder width D.
        vocab_size: V, blank (0) included.
        blank: blank id.

    Shapes:
        forward(enc (B, T, D), enc_lengths, targets, target_lengths) -> log-probs (B, T, V)
        (targets are not used; they are in the signature every head shares).
    """

    def __init__(self, d_model: int, vocab_size: int, blank: int = 0) -> None:
        super().__init__()
        self.blank = blank
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        return self.log_probs(enc)

    def log_probs(self, enc: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, V) log-probabilities."""
        return F.log_softmax(self.proj(enc), dim=-1)

    def loss(self, outputs: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        return ctc_loss(outputs, enc_lengths, targets, target_lengths, self.blank)

    @torch.no_grad()
    def decode(self, enc: Tensor, enc_lengths: Tensor) -> list[list[int]]:
        return ctc_greedy(self.log_probs(enc), enc_lengths, self.blank)
