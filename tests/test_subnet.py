"""Extraction: static subnets equal the supernet's discrete forward, stream, save and load alone."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from supernet.model import SpeechSupernet
from supernet.nn.config import NetConfig
from supernet.nn.params import arch_params
from supernet.space import SearchSpace
from supernet.subnet import FORMAT, SubnetModel, extract, load_subnet, save_subnet

REPO = Path(__file__).resolve().parents[1]
VOCAB = 11
ATOL = 1e-5

# Every feature, subsampling, block, attention and decoder type at tiny widths.
SPACE = {
    "name": "test-all-types",
    "frontend": {"feature": ["logmel80", "logmel40", "mfcc40", "learnable"], "subsampling": [4, 6, 8]},
    "encoder": {"width": [16, 32], "layers": 3, "min_depth": 1,
                "layer": {"block": ["conformer", "transformer", "lstm", "blstm", "cnn"],
                          "attention": ["mha", "relpos", "local", "linear"], "heads": [2, 4], "ffn_ratio": [2, 4],
                          "kernel": [3, 7]}},
    "decoder": {"type": ["ctc", "rnnt", "attention"], "layers": [1, 2], "width": [16, 32]},
    "streaming": {"chunk": [0, 4], "lookahead": [0, 2]},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE)


# both subsamplers (NetConfig.subsampler): the 2-D one with few channels and frequency rows
SUBSAMPLERS = {"conv1d": {}, "conv2d": {"subsampler": "conv2d", "subsampler_channels": 8, "subsampler_bins": 24}}


@pytest.fixture(scope="module", params=list(SUBSAMPLERS))
def supernet(space, request) -> SpeechSupernet:
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(space, VOCAB, NetConfig(dropout=0.0, local_window=3, **SUBSAMPLERS[request.param])).eval()
    with torch.no_grad():  # non-trivial values everywhere (alphas and zero-initialised biases too)
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return net


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([16000, 9100, 4321])
    audio = 0.1 * torch.randn(3, 16000, generator=g)
    audio = audio.masked_fill(torch.arange(16000)[None] >= lengths[:, None], 0.0)
    targets = torch.randint(1, VOCAB, (3, 4), generator=g)
    target_lengths = torch.tensor([4, 2, 1])
    targets = targets.masked_fill(torch.arange(4)[None] >= target_lengths[:, None], 0)
    return audio, lengths, targets, target_lengths


def _archs(space: SearchSpace) -> list:
    rng = random.Random(1234)
    archs = [space.largest(), space.smallest()]
    archs += [space.sample(rng) for _ in range(20)]
    # pin each type so that every one is covered whatever the samples are
    archs += [space.largest(block=b) for b in ("transformer", "lstm", "blstm", "cnn")]
    archs += [space.largest(attention=a) for a in ("relpos", "local", "linear")]
    archs += [space.smallest(feature=f) for f in ("logmel40", "mfcc40", "learnable")]
    archs += [space.largest(decoder=d) for d in ("rnnt", "attention")]
    archs += [space.largest(chunk=4, block=b) for b in ("conformer", "transformer", "cnn")]
    return archs


def _close(a, b) -> float:
    if isinstance(a, tuple):
        return max(_close(x, y) for x, y in zip(a, b))
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def test_archs_cover_every_type(space):
    archs = _archs(space)
    layers = [la for a in archs for la in a.layers]
    assert {la.block for la in layers} >= {"conformer", "transformer", "lstm", "blstm", "cnn", "skip"}
    assert {la.attention for la in layers} >= {"mha", "relpos", "local", "linear"}
    assert {a.feature for a in archs} == {"logmel80", "logmel40", "mfcc40", "learnable"}
    assert {a.decoder for a in archs} == {"ctc", "rnnt", "attention"}
    assert {a.subsampling for a in archs} == {4, 6, 8}
    assert any(a.streaming and a.lookahead for a in archs) and any(not a.streaming for a in archs)


def test_extraction_is_exact(space, supernet):
    audio, lengths, targets, target_lengths = _batch()
    for arch in _archs(space):
        with torch.no_grad():
            enc, enc_lengths = supernet(audio, lengths, arch)
            model = extract(supernet, arch)
            enc2, enc_lengths2 = model(audio, lengths)
            assert torch.equal(enc_lengths, enc_lengths2)
            assert enc.shape == (3, int(enc_lengths.max()), arch.width)
            assert _close(enc, enc2) <= ATOL, arch.describe()
            out = supernet.head_outputs(enc, enc_lengths, targets, target_lengths, arch)
            out2 = model.head_outputs(enc2, enc_lengths2, targets, target_lengths)
            assert _close(out, out2) <= ATOL, arch.describe()
            loss = supernet.loss(enc, enc_lengths, targets, target_lengths, arch)
            assert torch.isfinite(loss)
            assert abs(loss.item() - model.loss(enc2, enc_lengths2, targets, target_lengths).item()) <= 1e-4
            assert supernet.decode(enc, enc_lengths, arch) == model.decode(enc2, enc_lengths2)
        assert sum(p.numel() for p in model.parameters()) == arch_params(arch, VOCAB, supernet.net), arch.describe()


def test_extracted_model_is_plain_and_independent(space, supernet):
    arch = space.largest(decoder="rnnt")
    model = extract(supernet, arch)
    assert isinstance(model, SubnetModel) and model.arch == arch
    assert not any("supernet.nn.elastic" in type(m).__module__ or "supernet.nn.mixed" in type(m).__module__
                   for m in model.modules())
    assert any(isinstance(m, nn.LSTM) for m in model.modules())
    ptrs = {p.data_ptr() for p in supernet.parameters()}
    assert not any(p.data_ptr() in ptrs for p in model.parameters())
    with torch.no_grad():  # changing the copy leaves the supernet alone
        before = supernet(*_batch()[:2], arch)[0].clone()
        for p in model.parameters():
            p.zero_()
        assert torch.equal(supernet(*_batch()[:2], arch)[0], before)


def test_padding_invariance(space, supernet):
    audio, lengths, _, _ = _batch()
    archs = [space.largest(block=b) for b in ("conformer", "transformer", "lstm", "blstm", "cnn")]
    archs += [space.largest(attention=a) for a in ("relpos", "local", "linear")]
    archs += [space.smallest(feature="learnable"), space.largest(chunk=4, subsampling=6)]
    for arch in archs:
        model = extract(supernet, arch)
        with torch.no_grad():
            enc, enc_lengths = model(audio, lengths)
            for b in (1, 2):
                n = int(lengths[b])
                alone, alone_lengths = model(audio[b : b + 1, :n], lengths[b : b + 1])
                assert alone_lengths.item() == enc_lengths[b].item()
                t = int(alone_lengths)
                assert (alone[0] - enc[b, :t]).abs().max().item() <= ATOL, arch.describe()
                assert enc[b, t:].abs().max().item() == 0.0  # padded frames are zero


def _first_dependent_sample(arch, net: NetConfig, t_end: int) -> int:
    """First audio sample that encoder frames <= t_end may NOT depend on: the subsampler sees feature
    frames up to (t_end + lookahead) * factor; a feature frame m covers samples < m * hop + win / 2."""
    last_frame = (t_end + arch.lookahead) * arch.subsampling
    return last_frame * net.hop_length + net.win_length // 2


def test_streaming_outputs_ignore_the_future(space, supernet):
    net = supernet.net
    archs = [space.largest(chunk=4, block=b, attention=a) for b in ("conformer", "transformer")
             for a in ("mha", "relpos", "local", "linear")]
    archs += [space.largest(chunk=4, block=b) for b in ("lstm", "cnn")]
    archs += [space.smallest(chunk=4, lookahead=2, feature="learnable"), space.largest(chunk=4, lookahead=0)]
    g = torch.Generator().manual_seed(5)
    audio = 0.1 * torch.randn(1, 32000, generator=g)
    lengths = torch.tensor([32000])
    for arch in archs:
        assert arch.streaming
        model = extract(supernet, arch)
        t_end = 2 * arch.chunk - 1  # last frame of the second chunk
        start = _first_dependent_sample(arch, net, t_end)
        perturbed = audio.clone()
        perturbed[:, start:] += 0.5 * torch.randn(1, 32000 - start, generator=g)
        with torch.no_grad():
            a, _ = model(audio, lengths)
            b, _ = model(perturbed, lengths)
            sa, _ = supernet(audio, lengths, arch)
            sb, _ = supernet(perturbed, lengths, arch)
        assert (a[:, : t_end + 1] - b[:, : t_end + 1]).abs().max().item() <= 1e-6, arch.describe()
        assert (sa[:, : t_end + 1] - sb[:, : t_end + 1]).abs().max().item() <= 1e-6, arch.describe()
        # the perturbation is seen later, so the check above can fail
        assert (a[:, t_end + 1 :] - b[:, t_end + 1 :]).abs().max().item() > 1e-3, arch.describe()
        if arch.lookahead:  # the look-ahead is real: the last frames before the bound reach t_end
            near = audio.clone()
            near[:, start - net.hop_length * arch.subsampling : start] += 0.5
            with torch.no_grad():
                c, _ = model(near, lengths)
            assert (a[:, t_end] - c[:, t_end]).abs().max().item() > 1e-4, arch.describe()


def test_full_context_outputs_see_the_future(space, supernet):
    arch = space.largest()  # chunk 0: the first frame depends on the end of the utterance
    model = extract(supernet, arch)
    audio = 0.1 * torch.randn(1, 32000, generator=torch.Generator().manual_seed(3))
    perturbed = audio.clone()
    perturbed[:, 24000:] += 0.5
    with torch.no_grad():
        a, b = model(audio, torch.tensor([32000]))[0], model(perturbed, torch.tensor([32000]))[0]
    assert (a[:, :2] - b[:, :2]).abs().max().item() > 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_encoder_and_heads_script_like_eager(space, supernet):
    """Static modules stay exportable: TorchScript compiles them and matches eager mode."""
    audio, lengths, targets, target_lengths = _batch()
    lstm = space.largest(block="lstm").layers[0]
    archs = [space.largest(decoder="rnnt", chunk=4, lookahead=2), space.largest(decoder="attention", attention="relpos")]
    for arch in archs:
        arch = replace(arch, layers=(lstm,) + arch.layers[1:])  # mix block types in one encoder
        model = extract(supernet, arch)
        with torch.no_grad():
            feats, feat_lengths = model.features(audio, lengths)
            enc, enc_lengths = model.encoder(feats, feat_lengths)
            senc, senc_lengths = torch.jit.script(model.encoder)(feats, feat_lengths)
            assert torch.equal(enc_lengths, senc_lengths) and _close(enc, senc) <= ATOL
            out = torch.jit.script(model.head)(enc, enc_lengths, targets, target_lengths)
            assert _close(out, model.head(enc, enc_lengths, targets, target_lengths)) <= ATOL


def test_save_and_load_in_a_fresh_process(space, supernet, tmp_path):
    arch = space.largest(decoder="attention", feature="learnable")
    model = extract(supernet, arch)
    path = save_subnet(model, tmp_path / "sub" / "model.pt", extra={"note": "test"})
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    audio, lengths, _, _ = _batch()
    with torch.no_grad():
        expected = model(audio, lengths)[0]
    torch.save({"audio": audio, "lengths": lengths, "expected": expected}, tmp_path / "io.pt")
    script = f"""
import sys, torch
from supernet.subnet import load_subnet
m = load_subnet({str(path)!r})
io = torch.load({str(tmp_path / 'io.pt')!r})
with torch.no_grad():
    out, _ = m(io["audio"], io["lengths"])
assert (out - io["expected"]).abs().max().item() <= {ATOL}, "outputs differ"
assert not m.training
assert "supernet.model" not in sys.modules, "loading imported supernet.model"
print("OK", m.arch.id)
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["OK", arch.id]
    loaded = load_subnet(path)
    assert loaded.arch == arch and loaded.vocab_size == VOCAB and loaded.net == supernet.net


def test_load_subnet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such subnet file"):
        load_subnet(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=FORMAT):
        load_subnet(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt"):
        load_subnet(tmp_path / "junk.pt")


def test_writing_a_subnet_back_into_the_supernet(space):
    """load_static_state_dict is the inverse of extraction (warm starts, progressive shrinking)."""
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(space, VOCAB, NetConfig(dropout=0.0)).eval()
    lstm, cnn = space.largest(block="lstm").layers[0], space.smallest(block="cnn").layers[0]
    arch = replace(space.smallest(decoder="rnnt", feature="learnable"), layers=(lstm, cnn, space.largest().layers[2]))
    model = extract(net, arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape))
    untouched = {k: v.clone() for k, v in net.static_state_dict(space.largest(block="transformer")).items()}
    net.load_static_state_dict(arch, model.state_dict())
    again = extract(net, arch)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    # weights outside the arch's slices did not move (the largest transformer path shares the front-end only)
    after = net.static_state_dict(space.largest(block="transformer"))
    assert all(torch.equal(after[k], v) for k, v in untouched.items() if ".layers." in k)
    bad = dict(model.state_dict())
    bad.pop(next(iter(bad)))
    with pytest.raises(ValueError, match="missing or unexpected keys"):
        net.load_static_state_dict(arch, bad)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_shipped_spaces_extract_exactly(name):
    space = SearchSpace.from_yaml(REPO / f"configs/space/{name}.yaml")
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(space, VOCAB).eval()
    audio, lengths, _, _ = _batch(1)
    rng = random.Random(7)
    for arch in [space.sample(rng) for _ in range(6 if name == "tiny" else 1)] + [space.smallest()]:
        assert space.contains(arch)
        model = extract(net, arch)
        with torch.no_grad():
            assert _close(net(audio, lengths, arch)[0], model(audio, lengths)[0]) <= ATOL, arch.describe()
        assert sum(p.numel() for p in model.parameters()) == space.params(arch, VOCAB)


def test_frame_norm_off_keeps_frame_energy_and_extracts_exactly(space, tmp_path):
    """``NetConfig.frame_norm=False``: no per-frame LayerNorm before the encoder layers; extraction,
    parameter counts and save/load hold as with it on; the option stays out of config hashes at
    its default, so caches keyed before it existed keep their keys."""
    from supernet.config import config_hash, hash_view

    net_cfg = NetConfig(dropout=0.0, local_window=3, frame_norm=False)
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(space, VOCAB, net_cfg).eval()
    audio, lengths, _, _ = _batch(2)
    for arch in _archs(space)[:6]:
        model = extract(net, arch)
        before_layers = [*model.encoder.frontend.modules(), *model.encoder.subsampler.modules()]
        assert not any(isinstance(m, nn.LayerNorm) for m in before_layers), arch.describe()
        with torch.no_grad():
            assert _close(net(audio, lengths, arch)[0], model(audio, lengths)[0]) <= ATOL, arch.describe()
        assert sum(p.numel() for p in model.parameters()) == arch_params(arch, VOCAB, net_cfg)
        assert arch_params(arch, VOCAB, net_cfg) < arch_params(arch, VOCAB, replace(net_cfg, frame_norm=True))
    path = save_subnet(model, tmp_path / "m.pt")
    loaded = load_subnet(path)
    assert loaded.net.frame_norm is False
    with torch.no_grad():
        assert torch.equal(loaded.eval()(audio, lengths)[0], model(audio, lengths)[0])
    # a louder frame stays louder (the front-end is affine); with frame_norm it looks the same
    fe_off = SubnetModel(arch, VOCAB, net_cfg).encoder.frontend
    fe_on = SubnetModel(arch, VOCAB, replace(net_cfg, frame_norm=True)).encoder.frontend
    feats = torch.randn(1, 5, fe_off.proj.in_features)
    with torch.no_grad():
        zero = fe_off(torch.zeros_like(feats))
        assert torch.allclose(fe_off(10 * feats) - zero, 10 * (fe_off(feats) - zero), atol=1e-4)
        assert torch.allclose(fe_on(10 * feats), fe_on(feats), atol=1e-4)
    assert "frame_norm" not in hash_view(NetConfig())
    assert config_hash(NetConfig()) != config_hash(NetConfig(frame_norm=False))
    with pytest.raises(ValueError, match="frame_norm"):
        NetConfig(frame_norm="no")


def test_conv2d_subsampler_options():
    """``NetConfig.subsampler="conv2d"``: the front-end starts as a resampling of the feature axis
    (the identity when the sizes agree), the 2-D stages halve the frequency rows, too few rows and
    unknown kinds are refused naming the field, and the options stay out of the hash at their
    defaults (extraction, padding, streaming and TorchScript: the parametrised tests above)."""
    from supernet.config import config_hash, hash_view
    from supernet.nn.frontend import FrontEnd, resampling_matrix
    from supernet.nn.subsampler import Subsampler, conv2d_rows

    assert torch.equal(resampling_matrix(40, 40), torch.eye(40))
    m = resampling_matrix(80, 40)
    assert m.shape == (40, 80) and torch.allclose(m.sum(1), torch.ones(40))
    assert m[0, 0] == 1 and m[-1, -1] == 1  # the end points are kept
    ramp = torch.arange(80, dtype=torch.float32)
    assert torch.allclose(m @ ramp, torch.linspace(0, 79, 40), atol=1e-5)  # a linear interpolation
    fe = FrontEnd(40, 40, frame_norm=False, resample_init=True)
    x = torch.randn(2, 7, 40)
    with torch.no_grad():
        assert torch.allclose(fe(x), x)
    assert conv2d_rows(40, 4) == 9 and conv2d_rows(40, 8) == 4 and conv2d_rows(40, 6) == 9
    sub = Subsampler(4, 8, 16, bins=40)
    y, n = sub(torch.randn(2, 101, 40), torch.tensor([101, 57]))
    assert y.shape == (2, 26, 16) and n.tolist() == [26, 15]
    assert sub.proj.in_features == 8 * 9
    with pytest.raises(ValueError, match="subsampler_bins = 10 is too few .* factor 8 .* at least 15"):
        Subsampler(8, 8, 16, bins=10)
    with pytest.raises(ValueError, match="NetConfig.subsampler must be 'conv1d' or 'conv2d'"):
        NetConfig(subsampler="conv3d")
    with pytest.raises(ValueError, match="NetConfig.subsampler_bins must be an integer >= 1"):
        NetConfig(subsampler_bins=0)
    assert "subsampler" not in hash_view(NetConfig()) and "subsampler_bins" not in hash_view(NetConfig())
    assert config_hash(NetConfig()) != config_hash(NetConfig(subsampler="conv2d"))
    assert NetConfig(subsampler="conv2d", subsampler_bins=24).frontend_channels == 24
    assert NetConfig(subsampler_channels=64).frontend_channels == 64


def _against_default(space, option: dict, n_streaming: int, n_full: int):
    """Supernets with the default NetConfig and with ``option``, the same weights: every compared
    arch (with convolutions) extracts exactly under ``option``; returns (default net, option net,
    {arch: whether its output differs from the default's}). ``option`` stays out of the hash at
    its default and changes it otherwise."""
    from dataclasses import replace

    from supernet.config import config_hash, hash_view

    torch.manual_seed(0)
    base = NetConfig(dropout=0.0, local_window=3)
    default = SpeechSupernet.from_space(space, VOCAB, base).eval()
    net = SpeechSupernet.from_space(space, VOCAB, replace(base, **option)).eval()
    net.load_state_dict(default.state_dict())
    audio, lengths, _, _ = _batch(2)
    streaming = [a for a in _archs(space) if a.chunk and any(l.kernel for l in a.layers)][:n_streaming]
    full = [a for a in _archs(space) if not a.chunk and any(l.kernel for l in a.layers)][:n_full]
    assert streaming and full
    changed = {}
    with torch.no_grad():
        for arch in streaming + full:
            out = net(audio, lengths, arch)[0]
            assert _close(out, extract(net, arch)(audio, lengths)[0]) <= ATOL, arch.describe()
            changed[arch] = _close(out, default(audio, lengths, arch)[0]) > ATOL
    for name in option:
        assert name not in hash_view(NetConfig())
    assert config_hash(NetConfig()) != config_hash(NetConfig(**option))
    return default, net, changed


def test_masked_causal_conv_extracts_exactly(space):
    """``NetConfig.causal_conv="mask"``: streaming archs (elastic kernels sliced, then their future
    taps dropped) extract exactly; full-context archs are unchanged; the option stays out of the
    hash at its default."""
    _, _, changed = _against_default(space, {"causal_conv": "mask"}, 4, 2)
    for arch, differs in changed.items():
        assert differs == (arch.chunk > 0), arch.describe()


def test_causal_full_context_extracts_exactly_and_streams_the_same(space):
    """``NetConfig.causal_full_context``: full-context archs get the causal subsampler and
    convolutions (a change after the first frames' audio reaches them only through attention, so
    an lstm/cnn full-context arch ignores the future), extract exactly, and streaming archs are
    unchanged; the option stays out of the hash at its default and refuses "chunk" convolutions
    (the relaxed path: tests/test_model.py)."""
    centred, net, changed = _against_default(space, {"causal_full_context": True}, 3, 3)
    for arch, differs in changed.items():
        assert differs == (arch.chunk == 0), arch.describe()
    with torch.no_grad():
        # a full-context arch of causal blocks only is causal end to end
        for block in ("cnn", "lstm"):
            arch = space.largest(block=block)
            assert not arch.streaming
            g = torch.Generator().manual_seed(5)
            x = 0.1 * torch.randn(1, 32000, generator=g)
            model = extract(net, arch)
            t_end = 5
            start = (t_end + 1) * arch.subsampling * net.net.hop_length + net.net.win_length // 2
            later = x.clone()
            later[:, start:] += 0.5 * torch.randn(1, 32000 - start, generator=g)
            a, b = model(x, torch.tensor([32000]))[0], model(later, torch.tensor([32000]))[0]
            assert (a[:, : t_end + 1] - b[:, : t_end + 1]).abs().max().item() <= 1e-6, block
            assert (a[:, t_end + 1:] - b[:, t_end + 1:]).abs().max().item() > 1e-3, block
            c = extract(centred, arch)(x, torch.tensor([32000]))[0]
            assert (a - c).abs().max().item() > 1e-4, block  # the centred twin is not causal
    with pytest.raises(ValueError, match="causal_full_context needs causal_conv 'shift' or 'mask'"):
        NetConfig(causal_full_context=True, causal_conv="chunk")
    with pytest.raises(ValueError, match="causal_full_context must be true or false"):
        NetConfig(causal_full_context="yes")
