"""Position-wise feed-forward branch (Transformer / Conformer macaron halves)."""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from supernet.nn.dropout import Dropout

__all__ = ["FeedForward"]


class FeedForward(nn.Module):
    """Pre-norm feed-forward branch: norm -> Linear(D, H) -> SiLU -> Linear(H, D).

    Elastic in D and in the hidden size H (``ffn_ratio * D``): a smaller choice uses the first
    rows/columns of the largest weights.

    Args:
        d_model: width D.
        hidden: hidden size H.
        dropout: dropout after the activation and on the output.

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask, lengths (B,)) -> (B, T, D); the masks are
        unused (every frame is processed on its own) and kept for a uniform unit signature.
    """

    def __init__(self, d_model: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        return self.dropout(self.fc2(self.dropout(F.silu(self.fc1(self.norm(x))))))
