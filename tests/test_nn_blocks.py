"""Encoder units and blocks: shapes, masks, padding invariance, streaming causality."""

from __future__ import annotations

import pytest
import torch

from supernet.nn.attention import ATTENTION_CLASSES
from supernet.nn.blocks import BLOCK_UNITS, EncoderLayer, unit_spec
from supernet.nn.config import NetConfig
from supernet.nn.masks import chunk_mask, lengths_to_mask, reverse_padded, sinusoid
from supernet.nn.subsampler import Subsampler, subsampled_lengths
from supernet.space import LayerArch

NET = NetConfig(dropout=0.0, local_window=2)
D = 16


def _unit(kind: str, causal: bool = False, **choice):
    torch.manual_seed(0)
    cls, kw = unit_spec(kind, D, causal, NET, **choice)
    return cls(**kw).eval()


UNITS = [("ffn", {"ffn_ratio": 2}), ("conv", {"kernel": 5}), ("convse", {"kernel": 3}), ("lstm", {}), ("blstm", {})]
UNITS += [("attention", {"attention": a, "heads": 4}) for a in ATTENTION_CLASSES]


def test_masks_and_helpers():
    assert chunk_mask(5, 2, torch.device("cpu")).int().tolist() == [
        [1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    x = torch.arange(8.0).view(2, 4, 1)
    assert reverse_padded(x, torch.tensor([4, 2]))[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    pe = sinusoid(torch.arange(-3, 4), 6)
    assert pe.shape == (7, 6) and torch.allclose(pe[3], torch.tensor([0.0, 0, 0, 1, 1, 1]))
    assert subsampled_lengths(torch.tensor([100, 7, 1]), 6).tolist() == [17, 2, 1]


@pytest.mark.parametrize(("kind", "choice"), UNITS, ids=[f"{k}-{c.get('attention', '')}" for k, c in UNITS])
def test_unit_is_padding_invariant(kind, choice):
    unit = _unit(kind, **choice)
    lengths = torch.tensor([9, 5])
    x = torch.randn(2, 9, D)
    mask = lengths_to_mask(lengths, 9)
    garbage = x.masked_fill(mask[:, :, None], 0.0) * 100  # padded frames hold anything
    with torch.no_grad():
        y = unit(x + garbage, mask, None, lengths)
        alone = unit(x[1:, :5], mask[1:, :5], None, lengths[1:])
    assert y.shape == (2, 9, D)
    assert (y[1, :5] - alone[0]).abs().max() < 1e-5


@pytest.mark.parametrize(("kind", "choice"), [u for u in UNITS if u[0] != "blstm"],
                         ids=[f"{k}-{c.get('attention', '')}" for k, c in UNITS if k != "blstm"])
def test_streaming_unit_ignores_later_chunks(kind, choice):
    unit = _unit(kind, causal=True, **choice)
    T, chunk = 12, 4
    x = torch.randn(1, T, D)
    later = x.clone()
    later[:, 8:] += torch.randn(1, 4, D)  # change the third chunk only
    lengths, mask, attn = torch.tensor([T]), torch.ones(1, T, dtype=torch.bool), chunk_mask(T, chunk, x.device)
    with torch.no_grad():
        a, b = unit(x, mask, attn, lengths), unit(later, mask, attn, lengths)
    assert (a[:, :8] - b[:, :8]).abs().max() < 1e-6
    assert (a[:, 8:] - b[:, 8:]).abs().max() > 1e-4


@pytest.mark.parametrize("kind", ["conv", "convse"])
def test_causal_conv_modes(kind):
    """``causal_conv``: "mask" is the centred convolution with its future taps zeroed (every past tap
    keeps its offset); "shift" moves the whole kernel into the past. Both ignore the future."""
    from dataclasses import replace

    torch.manual_seed(0)
    k, T = 5, 10
    x = torch.randn(1, T, D)
    args = (torch.ones(1, T, dtype=torch.bool), None, torch.tensor([T]))
    cls, kw = unit_spec(kind, D, False, NET, kernel=k)
    full = cls(**kw).eval()
    units = {}
    for mode in ("shift", "mask"):
        cls, kw = unit_spec(kind, D, True, replace(NET, causal_conv=mode), kernel=k)
        assert kw["causal_mode"] == mode
        units[mode] = cls(**kw).eval()
        units[mode].load_state_dict(full.state_dict())  # the same weights serve every mode
    zeroed = cls(**{**kw, "causal": False}).eval()
    zeroed.load_state_dict(full.state_dict())
    with torch.no_grad():
        for name, p in zeroed.named_parameters():
            if p.dim() == 3:  # depthwise kernels: drop the taps that look ahead
                p[:, :, k // 2 + 1:] = 0.0
        masked, shifted, centred = units["mask"](x, *args), units["shift"](x, *args), zeroed(x, *args)
        if kind == "conv":  # (the cnn block's SE context is a running mean when causal, so only conv compares)
            assert (masked - centred).abs().max() < 1e-5
        assert (shifted - masked).abs().max() > 1e-3
        later = x.clone()
        later[:, 6:] += torch.randn(1, 4, D)
        for unit in units.values():
            assert (unit(later, *args)[:, :6] - unit(x, *args)[:, :6]).abs().max() < 1e-6
    with pytest.raises(ValueError, match="causal_conv must be 'shift', 'mask' or 'chunk'"):
        NetConfig(causal_conv="future")


@pytest.mark.parametrize("kind", ["conv", "convse"])
def test_chunk_convolution_sees_to_the_end_of_its_chunk(kind):
    """``causal_conv: chunk``: frame t of chunk c is the centred convolution with every frame after
    c's last one treated as padding; a change in a later chunk changes nothing before it, a change
    late in the same chunk reaches its earlier frames (which "mask" and "shift" never allow)."""
    from dataclasses import replace

    torch.manual_seed(0)
    k, T, S = 7, 13, 4  # half 3 > S - 1: the chunk edge, not the kernel, limits the future taps
    net = replace(NET, causal_conv="chunk")
    cls, kw = unit_spec(kind, D, True, net, kernel=k, chunk=S)
    assert kw["chunk"] == S and kw["causal_mode"] == "chunk"
    unit = cls(**kw).eval()
    assert "chunk" not in unit_spec(kind, D, False, net, kernel=k, chunk=S)[1]  # full context: no chunk argument
    assert "chunk" not in unit_spec(kind, D, True, NET, kernel=k, chunk=S)[1]  # nor in another mode
    cls_full, kw_full = unit_spec(kind, D, False, NET, kernel=k)
    centred = cls_full(**kw_full).eval()
    centred.load_state_dict(unit.state_dict())
    x = torch.randn(1, T, D)
    lengths, mask = torch.tensor([T]), torch.ones(1, T, dtype=torch.bool)
    with torch.no_grad():
        out = unit(x, mask, None, lengths)
        if kind == "conv":  # (the cnn block's SE is a running mean when causal)
            for c in range(0, T, S):
                end = min(c + S, T)
                cut = torch.arange(T)[None] < end
                want = centred(x, cut, None, torch.tensor([end]))[:, c:end]
                assert (out[:, c:end] - want).abs().max() < 1e-5, c
        later = x.clone()
        later[:, 7] += torch.randn(D)  # the last frame of chunk 1 (frames 4..7)
        changed = (unit(later, mask, None, lengths) - out).abs().amax(dim=-1)[0]
    assert changed[:4].max() < 1e-6  # chunk 0 cannot see it
    assert changed[4:7].min() > 1e-6  # chunk 1's earlier frames do (future taps inside the chunk)
    with pytest.raises(ValueError, match="needs the streaming arch's chunk"):
        cls(**{**kw, "chunk": 0})


def test_full_context_attention_sees_everything_but_local_sees_a_window():
    T = 12
    x = torch.randn(1, T, D)
    later = x.clone()
    later[:, -1] += 3.0 * torch.randn(D)  # not a constant: LayerNorm would remove it
    args = (torch.ones(1, T, dtype=torch.bool), None, torch.tensor([T]))
    for name in ATTENTION_CLASSES:
        unit = _unit("attention", attention=name, heads=2)
        with torch.no_grad():
            change = (unit(x, *args) - unit(later, *args)).abs().amax(dim=-1)[0]
        if name == "local":  # window 2: frame 11 reaches frames 9..11 only
            assert change[:9].max() < 1e-6 and change[9:].min() > 1e-6
        else:
            assert change[0] > 1e-6, name


def test_layers_of_every_block_type():
    x = torch.randn(2, 7, D)
    lengths = torch.tensor([7, 4])
    mask = lengths_to_mask(lengths, 7)
    for block in BLOCK_UNITS:
        fields = {"conformer": dict(attention="relpos", heads=2, ffn_ratio=2, kernel=3),
                  "transformer": dict(attention="linear", heads=4, ffn_ratio=4), "cnn": dict(kernel=3)}.get(block, {})
        layer = EncoderLayer.from_arch(LayerArch(block, **fields), D, False, NET).eval()
        assert len(layer.units) == len(BLOCK_UNITS[block])
        assert layer(x, mask, None, lengths).shape == x.shape
    with pytest.raises(ValueError, match="streaming"):
        EncoderLayer.from_arch(LayerArch("blstm"), D, True, NET)
    with pytest.raises(ValueError, match="heads"):
        unit_spec("attention", 18, False, NET, attention="mha", heads=4)[0](d_model=18, heads=4)


@pytest.mark.parametrize("factor", [4, 6, 8])
def test_subsampler_lengths_and_causality(factor):
    torch.manual_seed(0)
    x = torch.randn(2, 50, 8)
    lengths = torch.tensor([50, 23])
    for causal, lookahead in ((False, 0), (True, 0), (True, 2)):
        sub = Subsampler(factor, 8, D, causal=causal, lookahead=lookahead).eval()
        with torch.no_grad():
            y, out_lengths = sub(x, lengths)
            alone, _ = sub(x[1:, :23], lengths[1:])
        assert out_lengths.tolist() == [-(-50 // factor), -(-23 // factor)] == subsampled_lengths(lengths, factor).tolist()
        assert y.shape == (2, out_lengths[0], D) and y[1, out_lengths[1]:].abs().max() == 0
        assert (y[1, : out_lengths[1]] - alone[0]).abs().max() < 1e-5
        if causal:  # frame t sees input frames up to (t + lookahead) * factor
            t = 2
            later = x.clone()
            later[:, (t + lookahead) * factor + 1 :] += 1.0
            with torch.no_grad():
                z, _ = sub(later, lengths)
            assert (z[:, : t + 1] - y[:, : t + 1]).abs().max() < 1e-6
            assert (z[0, t + 1] - y[0, t + 1]).abs().max() > 1e-5
    with pytest.raises(ValueError, match="subsampling 5"):
        Subsampler(5, 8, D)
