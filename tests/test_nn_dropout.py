"""supernet.nn.dropout: the CPU-cheap dropout every block of supernet.nn (and the baseline) uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supernet.nn.dropout import Dropout, fast_dropout, keep_mask, replace_dropout


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_drop_rate_and_expected_value(p):
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, p)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 4 * (p * (1 - p) / x.numel()) ** 0.5 + 1 / 65536
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))  # inverted dropout: E[y] = x
    assert abs(y.mean().item() - 1.0) < 0.01


def test_neighbouring_elements_are_independent():
    torch.manual_seed(1)
    m = keep_mask([400_000], 0.5).float()
    for lag in (1, 2, 3, 4, 5, 8, 96):  # within one hash's four lanes, across hashes, across a row of width 96
        c = torch.corrcoef(torch.stack([m[:-lag], m[lag:]]))[0, 1].item()
        assert abs(c) < 0.01, (lag, c)
    rows = keep_mask([1000, 96], 0.5).float()
    assert rows.mean(1).std().item() < 0.1  # no row all kept or all dropped


def test_seeded_masks_repeat_and_successive_masks_differ():
    torch.manual_seed(3)
    a, b = keep_mask([4, 50, 8], 0.3), keep_mask([4, 50, 8], 0.3)
    torch.manual_seed(3)
    assert torch.equal(keep_mask([4, 50, 8], 0.3), a)
    assert not torch.equal(a, b)
    assert a.shape == (4, 50, 8) and a.dtype == torch.bool


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(0)
    x = torch.randn(3, 40, 16, requires_grad=True)
    y = fast_dropout(x, 0.2)
    y.sum().backward()
    expected = (y.detach() != 0).float() / 0.8
    assert torch.allclose(x.grad, expected)


def test_module_is_identity_in_eval_and_when_p_is_zero():
    x = torch.randn(2, 10, 8)
    d = Dropout(0.3).eval()
    assert d(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    y = Dropout(0.3).train()(x)
    assert y.shape == x.shape and not torch.equal(y, x)


def test_bad_probability_is_refused():
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\], got 1.5"):
        keep_mask([4], 1.5)


def test_scripts_for_export():
    net = nn.Sequential(nn.Linear(8, 8), Dropout(0.1)).eval()
    scripted = torch.jit.script(net)
    x = torch.randn(3, 8)
    assert torch.equal(scripted(x), net(x))


def test_replace_dropout_reaches_torchaudio_layers():
    from torchaudio.models import Conformer

    model = Conformer(input_dim=16, num_heads=2, ffn_dim=32, num_layers=2, depthwise_conv_kernel_size=3, dropout=0.1)
    plain = sum(type(m) is nn.Dropout for m in model.modules())
    assert plain > 0
    assert replace_dropout(model) == plain
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert all(m.p == 0.1 for m in model.modules() if isinstance(m, Dropout))


def test_supernet_and_baseline_blocks_use_it():
    from supernet.baseline.models import ModelConfig, build_model

    baseline = build_model(ModelConfig(kind="conformer", d_model=32, num_layers=1, num_heads=2, ffn_dim=64), 12)
    assert not any(type(m) is nn.Dropout for m in baseline.modules())
    assert any(isinstance(m, Dropout) for m in baseline.modules())
