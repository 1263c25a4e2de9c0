"""Decoder heads: CTC greedy collapse, losses over padded targets, greedy decoding."""

from __future__ import annotations

import pytest
import torch

from supernet.nn.config import NetConfig
from supernet.nn.ctc import ctc_greedy
from supernet.nn.heads import HEADS, head_spec

V, D = 7, 12


def _head(decoder: str):
    torch.manual_seed(0)
    cls, kw = head_spec(decoder, 2, 8, D, V, NetConfig(dropout=0.0, decoder_heads=2))
    return cls(**kw)


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    path = torch.tensor([[1, 1, 0, 2, 2, 0, 0, 2, 3, 3], [4, 0, 4, 4, 5, 5, 5, 5, 5, 5]])
    log_probs = torch.nn.functional.one_hot(path, V).float().log()
    assert ctc_greedy(log_probs, torch.tensor([10, 4])) == [[1, 2, 2, 3], [4, 4]]


@pytest.mark.parametrize("decoder", list(HEADS))
def test_head_learns_and_ignores_target_padding(decoder):
    head = _head(decoder)
    g = torch.Generator().manual_seed(1)
    enc = torch.randn(2, 9, D, generator=g)
    enc_lengths = torch.tensor([9, 6])
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    target_lengths = torch.tensor([3, 2])
    loss = head.loss(head(enc, enc_lengths, targets, target_lengths), enc_lengths, targets, target_lengths)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # padding of the targets (value and extra columns) does not change the loss
    wide = torch.cat([targets.masked_fill(targets == 0, 6), torch.full((2, 2), 6)], dim=1)
    wide[0, 3:] = 6
    wide_loss = head.loss(head(enc, enc_lengths, wide, target_lengths), enc_lengths, wide, target_lengths)
    assert abs(loss.item() - wide_loss.item()) < 1e-5
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    for _ in range(200):  # overfit two utterances
        opt.zero_grad()
        step = head.loss(head(enc, enc_lengths, targets, target_lengths), enc_lengths, targets, target_lengths)
        if step.item() < 0.01 * loss.item():
            break
        step.backward()
        opt.step()
    assert step.item() < 0.2 * loss.item()  # the attention decoder's floor is set by label smoothing
    head.eval()
    assert head.decode(enc, enc_lengths) == [[1, 2, 3], [4, 5]]


def test_head_spec_errors():
    with pytest.raises(ValueError, match="decoder 'lm'"):
        head_spec("lm", 1, 8, D, V, NetConfig())
    with pytest.raises(ValueError, match="decoder_layers and decoder_width"):
        head_spec("rnnt", None, None, D, V, NetConfig())
    with pytest.raises(ValueError, match="vocab_size"):
        head_spec("ctc", None, None, D, 1, NetConfig())
