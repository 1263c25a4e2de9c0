"""Recurrent branches: unidirectional LSTM (streams) and bidirectional LSTM (full context)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from supernet.nn.dropout import Dropout
from supernet.nn.masks import reverse_padded

__all__ = ["LSTMUnit", "BLSTMUnit"]


class LSTMUnit(nn.Module):
    """Pre-norm unidirectional LSTM branch with D hidden units (causal: it can stream).

    Padded frames come after the valid ones, so they cannot affect valid outputs.

    Args:
        d_model: width D (input and hidden size).
        dropout: output dropout.

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask, lengths (B,)) -> (B, T, D)
    """

    def __init__(self, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.lstm = nn.LSTM(d_model, d_model, batch_first=True)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        y, _ = self.lstm(self.norm(x))
        return self.dropout(y)


class BLSTMUnit(nn.Module):
    """Pre-norm bidirectional LSTM branch: D/2 hidden units per direction, outputs concatenated.

    The backward direction runs on each sequence reversed *within its length*
    (``reverse_padded``) rather than on the padded tensor, so padding never reaches a valid
    frame; two single-direction ``nn.LSTM`` modules keep that exportable (no PackedSequence).

    Args:
        d_model: width D (even).
        dropout: output dropout.

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask, lengths (B,)) -> (B, T, D)
    """

    def __init__(self, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % 2:
            raise ValueError(f"BLSTMUnit needs an even d_model (D/2 units per direction), got {d_model}")
        self.norm = nn.LayerNorm(d_model)
        self.forward_lstm = nn.LSTM(d_model, d_model // 2, batch_first=True)
        self.backward_lstm = nn.LSTM(d_model, d_model // 2, batch_first=True)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        h = self.norm(x)
        yf, _ = self.forward_lstm(h)
        yb, _ = self.backward_lstm(reverse_padded(h, lengths))
        return self.dropout(torch.cat([yf, reverse_padded(yb, lengths)], dim=-1))
