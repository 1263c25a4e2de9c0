"""Elastic ops: sliced max-size weights, static twins, gradients into the slice only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supernet.nn.elastic import Elastic, slice_like, sliced_state
from supernet.nn.feedforward import FeedForward


def test_linear_slices_first_rows_and_columns():
    torch.manual_seed(0)
    lin = Elastic(nn.Linear, in_features=8, out_features=6)
    x = torch.randn(3, 5)
    choice = {"in_features": 5, "out_features": 4}
    y = lin(choice, x)
    static = lin.to_static(choice)
    assert type(static) is nn.Linear and static.weight.shape == (4, 5)
    assert torch.equal(static.weight, lin.full.weight[:4, :5]) and torch.equal(static.bias, lin.full.bias[:4])
    assert torch.allclose(static(x), y, atol=1e-6)
    y.sum().backward()
    g = lin.full.weight.grad
    assert g[:4, :5].abs().sum() > 0 and g[4:].abs().sum() == 0 and g[:, 5:].abs().sum() == 0


def test_conv_kernel_is_the_centre_of_the_largest():
    conv = Elastic(nn.Conv1d, in_channels=4, out_channels=4, kernel_size=7, groups=4)
    small = conv.to_static({"in_channels": 2, "out_channels": 2, "kernel_size": 3, "groups": 2})
    assert type(small) is nn.Conv1d and small.weight.shape == (2, 1, 3)
    assert torch.equal(small.weight, conv.full.weight[:2, :, 2:5])
    x = torch.randn(1, 2, 9)
    assert torch.allclose(conv({"in_channels": 2, "out_channels": 2, "kernel_size": 3, "groups": 2}, x), small(x))


def test_layernorm_and_lstm_static_twins():
    torch.manual_seed(0)
    ln = Elastic(nn.LayerNorm, normalized_shape=8)
    with torch.no_grad():
        ln.full.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 4)
    assert torch.allclose(ln({"normalized_shape": 4}, x), ln.to_static({"normalized_shape": 4})(x), atol=1e-6)

    lstm = Elastic(nn.LSTM, input_size=8, hidden_size=6, num_layers=2, batch_first=True)
    choice = {"input_size": 4, "hidden_size": 3, "num_layers": 1}
    static = lstm.to_static(choice)
    assert type(static) is nn.LSTM and static.num_layers == 1 and static.hidden_size == 3
    rows = torch.cat([torch.arange(g * 6, g * 6 + 3) for g in range(4)])  # first 3 units of each gate
    assert torch.equal(static.weight_ih_l0, lstm.full.weight_ih_l0[rows, :4])
    assert torch.equal(static.weight_hh_l0, lstm.full.weight_hh_l0[rows, :3])
    assert torch.equal(static.bias_hh_l0, lstm.full.bias_hh_l0[rows])
    x = torch.randn(2, 5, 4)
    y, _ = lstm(choice, x)
    assert torch.allclose(y, static(x)[0], atol=1e-6)
    y.sum().backward()
    assert lstm.full.weight_ih_l1.grad is None  # the second layer was not used
    assert lstm.full.weight_hh_l0.grad[rows][:, :3].abs().sum() > 0


def test_composite_module_and_train_mode():
    torch.manual_seed(0)
    ffn = Elastic(FeedForward, d_model=8, hidden=32, dropout=0.5)
    choice = {"d_model": 4, "hidden": 8}
    x, mask = torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    ffn.eval()
    static = ffn.to_static(choice)
    assert not static.training
    assert torch.allclose(ffn(choice, x, mask, None, torch.tensor([3, 3])), static(x, mask, None, torch.tensor([3, 3])),
                          atol=1e-6)
    ffn.train()
    assert ffn.skeleton(choice) is ffn.skeleton(dict(choice))  # shape-only modules are cached per choice
    assert ffn.skeleton(choice).fc1.weight.device.type == "meta"


def test_choices_beyond_the_maximum_are_errors():
    lin = Elastic(nn.Linear, in_features=8, out_features=6)
    with pytest.raises(ValueError, match="exceeds the supernet's maximum"):
        lin({"in_features": 8, "out_features": 7}, torch.randn(1, 8))
    with pytest.raises(ValueError, match="unknown choice argument"):
        lin({"width": 4}, torch.randn(1, 8))
    with pytest.raises(ValueError, match="exceeds"):
        slice_like(torch.zeros(4, 4), (2, 2, 2))


def test_sliced_state_keeps_autograd_link():
    full = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    target = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    state = sliced_state(full, target)
    assert set(state) == set(target.state_dict())
    sum(v.sum() for v in state.values()).backward()
    assert full[0].weight.grad[:2, :3].eq(1).all() and full[0].weight.grad[2:].eq(0).all()
