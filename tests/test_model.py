"""SpeechSupernet: discrete / relaxed (DARTS) / gumbel (GDAS) forwards, alphas, derivation, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from supernet.model import SpeechSupernet, SupernetConfig, uniform_layers
from supernet.nn.config import NetConfig
from supernet.space import Arch, LayerArch, SearchSpace

REPO = Path(__file__).resolve().parents[1]
VOCAB = 9

SPACE = {
    "name": "test-model",
    "frontend": {"feature": ["logmel40", "mfcc40", "learnable"], "subsampling": [4, 8]},
    "encoder": {"width": [16, 32], "layers": 3, "min_depth": 1,
                "layer": {"block": ["conformer", "transformer", "lstm", "blstm", "cnn"],
                          "attention": ["mha", "relpos", "local", "linear"], "heads": [2, 4], "ffn_ratio": [2, 4],
                          "kernel": [3, 5]}},
    "decoder": {"type": ["ctc", "rnnt", "attention"], "layers": [1, 2], "width": [16]},
    "streaming": {"chunk": [0, 4], "lookahead": [0, 1]},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE)


@pytest.fixture()
def supernet(space) -> SpeechSupernet:
    torch.manual_seed(0)
    return SpeechSupernet.from_space(space, VOCAB, NetConfig(dropout=0.0, local_window=3)).eval()


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([8000, 5000])
    audio = 0.1 * torch.randn(2, 8000, generator=g)
    audio = audio.masked_fill(torch.arange(8000)[None] >= lengths[:, None], 0.0)
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    return audio, lengths, targets, torch.tensor([3, 2])


def test_from_space_maps_every_candidate():
    space = SearchSpace.from_yaml(REPO / "configs/space/default.yaml")
    cfg = SupernetConfig.from_space(space)
    assert cfg.features == space.spec.features and cfg.widths == space.spec.widths
    assert len(cfg.layers) == space.num_layers == 8
    assert "skip" not in cfg.layers[0].block and "skip" in cfg.layers[7].block  # min_depth 2
    assert cfg.decoders == ("ctc", "rnnt", "attention") and cfg.decoder_layers == (1, 2)
    assert cfg.decoder_widths == (128, 256)
    names = cfg.decisions()
    assert names["feature"] == ("logmel80", "logmel40", "mfcc40", "learnable")
    assert names["layers.3.attention"] == ("mha", "relpos", "local", "linear")
    assert {k.split(".")[-1] for k in names if k.startswith("layers.0.")} == {"block", "attention", "heads",
                                                                              "ffn_ratio", "kernel"}


def test_config_rejects_bad_candidates():
    with pytest.raises(ValueError, match="features"):
        SupernetConfig(features=("spectrogram",))
    with pytest.raises(ValueError, match="kernel must be odd"):
        SupernetConfig(layers=uniform_layers(2, 1, kernels=(4,)))
    with pytest.raises(ValueError, match="widths"):
        SupernetConfig(widths=())


def test_arch_and_weight_parameters_partition_all_parameters(supernet):
    arch_ids = [id(p) for p in supernet.arch_parameters()]
    weight_ids = [id(p) for p in supernet.weight_parameters()]
    assert arch_ids and weight_ids
    assert not set(arch_ids) & set(weight_ids)
    assert sorted(arch_ids + weight_ids) == sorted(id(p) for p in supernet.parameters())
    # one alpha per decision with several candidates, sized by its candidates
    dists = supernet.alpha_distributions()
    assert len(dists) == len(arch_ids)
    for name, dist in dists.items():
        assert name == "feature" or name.startswith("layers.")
        assert abs(sum(dist.values()) - 1.0) < 1e-6
    assert list(dists["layers.2.block"]) == ["conformer", "transformer", "lstm", "blstm", "cnn", "skip"]


def test_discrete_forward_runs_only_its_path(space, supernet):
    audio, lengths, targets, target_lengths = _batch()
    arch = space.largest(block="cnn", feature="mfcc40", subsampling=8)
    supernet.train()
    enc, enc_lengths = supernet(audio, lengths, arch)
    supernet.loss(enc, enc_lengths, targets, target_lengths, arch).backward()
    grads = {n for n, p in supernet.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("layers.0.blocks.cnn.") for n in grads)
    assert any(n.startswith("frontends.mfcc40.") for n in grads) and any(n.startswith("subsamplers.8.") for n in grads)
    assert not any(n.startswith(("layers.0.blocks.conformer.", "layers.0.blocks.lstm.", "frontends.logmel40.",
                                 "subsamplers.4.", "heads.rnnt.", "alphas.")) for n in grads)
    # elastic width: a 16-wide arch uses only the first 16 rows and columns of a 32-wide weight
    w = supernet.layers[0].blocks["cnn"].units[0].full.pw1.weight
    assert arch.width == 32 and w.grad.abs().sum() > 0
    small = replace(arch, width=16)
    supernet.zero_grad()
    enc, enc_lengths = supernet(audio, lengths, small)
    assert enc.shape[-1] == 16
    supernet.loss(enc, enc_lengths, targets, target_lengths, small).backward()
    assert w.grad[16:].abs().sum() == 0 and w.grad[:, 16:].abs().sum() == 0 and w.grad[:16, :16].abs().sum() > 0


@pytest.mark.parametrize("decoder", ["ctc", "rnnt", "attention"])
def test_relaxed_forward_reaches_every_alpha(space, supernet, decoder):
    audio, lengths, targets, target_lengths = _batch()
    base = space.largest(decoder=decoder)
    enc, enc_lengths = supernet(audio, lengths, base, mode="relaxed")
    assert enc.shape == (2, int(enc_lengths.max()), base.width)
    loss = supernet.loss(enc, enc_lengths, targets, target_lengths, base)
    assert torch.isfinite(loss)
    loss.backward()
    for name, alpha in supernet.alphas.items():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0, name


def test_relaxed_streaming_leaves_out_full_context_blocks(space, supernet):
    audio, lengths, targets, target_lengths = _batch()
    base = space.largest(chunk=4, lookahead=1)
    mix = supernet.sample_mixture("relaxed", base)
    assert "blstm" not in mix.decisions["layers.0.block"].values
    enc, enc_lengths = supernet(audio, lengths, base, mode="relaxed", mixture=mix)
    supernet.loss(enc, enc_lengths, targets, target_lengths, base).backward()
    blstm = supernet.alphas["layers__0__block"].grad[3]
    assert blstm == 0 and supernet.alphas["layers__0__block"].grad.abs().sum() > 0


def _peak(supernet: SpeechSupernet, arch: Arch) -> None:
    """Put (almost) all softmax mass of every decision on ``arch``'s choices."""
    with torch.no_grad():
        for alpha in supernet.arch_parameters():
            alpha.fill_(0.0)
        chosen = {"feature": arch.feature}
        for i, layer in enumerate(arch.layers):
            chosen[f"layers.{i}.block"] = layer.block
            for f in ("attention", "heads", "ffn_ratio", "kernel"):
                if getattr(layer, f) is not None:
                    chosen[f"layers.{i}.{f}"] = getattr(layer, f)
        for name, value in chosen.items():
            key = name.replace(".", "__")
            if key in supernet.alphas:
                values = supernet.config.decisions()[name]
                supernet.alphas[key][values.index(value)] = 60.0


def test_relaxed_with_peaked_alphas_equals_discrete(space, supernet):
    """The mixed path composes units exactly as the static layers do."""
    audio, lengths, _, _ = _batch()
    for arch in (space.largest(), space.largest(block="cnn", chunk=4, lookahead=1), space.smallest(feature="learnable"),
                 space.largest(block="transformer", attention="relpos")):
        _peak(supernet, arch)
        with torch.no_grad():
            a, la = supernet(audio, lengths, arch)
            b, lb = supernet(audio, lengths, arch, mode="relaxed")
        assert torch.equal(la, lb)
        assert (a - b).abs().max().item() <= 1e-5, arch.describe()
        assert supernet.derive_argmax(arch) == arch


def test_relaxed_equals_discrete_with_causal_full_context(space):
    """``NetConfig.causal_full_context``: the mixed path makes a full-context arch's subsampler and
    convolutions causal exactly as the static layers do."""
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(space, VOCAB, NetConfig(dropout=0.0, local_window=3, causal_full_context=True)).eval()
    audio, lengths, _, _ = _batch()
    for arch in (space.largest(), space.largest(block="cnn")):
        _peak(net, arch)
        with torch.no_grad():
            a, _ = net(audio, lengths, arch)
            b, _ = net(audio, lengths, arch, mode="relaxed")
        assert (a - b).abs().max().item() <= 1e-5, arch.describe()


def test_gumbel_is_reproducible_and_straight_through(space, supernet):
    audio, lengths, targets, target_lengths = _batch()
    base = space.largest(decoder="rnnt")
    outs, archs = [], []
    for _ in range(2):
        supernet.zero_grad()
        g = torch.Generator().manual_seed(7)
        mix = supernet.sample_mixture("gumbel", base, tau=0.5, generator=g)
        enc, enc_lengths = supernet(audio, lengths, base, mode="gumbel", mixture=mix)
        loss = supernet.loss(enc, enc_lengths, targets, target_lengths, base)
        assert torch.isfinite(loss)
        loss.backward()
        outs.append(enc.detach())
        archs.append(mix.arch(base))
    assert torch.equal(outs[0], outs[1]) and archs[0] == archs[1]
    assert space.contains(archs[0])
    # gradients reach the alpha of every sampled decision through the straight-through weights
    assert supernet.alphas["feature"].grad.abs().sum() > 0
    assert supernet.alphas["layers__0__block"].grad.abs().sum() > 0
    # only the sampled block of slot 0 ran
    sampled = archs[0].layers[0].block
    for block, cand in supernet.layers[0].blocks.items():
        touched = any(p.grad is not None and p.grad.abs().sum() > 0 for p in cand.parameters())
        assert touched == (block == sampled), block
    # the forward draws its own sample from the generator it is given
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    with torch.no_grad():
        a = supernet(audio, lengths, base, mode="gumbel", tau=0.5, generator=g1)[0]
        b = supernet(audio, lengths, base, mode="gumbel", tau=0.5, generator=g2)[0]
    assert torch.equal(a, b)
    seen = {supernet.sample_mixture("gumbel", base, generator=torch.Generator().manual_seed(s)).arch(base) for s in range(6)}
    assert len(seen) > 1


def test_gumbel_needs_a_generator_and_valid_mode(supernet):
    audio, lengths, _, _ = _batch()
    with pytest.raises(ValueError, match="Generator"):
        supernet(audio, lengths, mode="gumbel")
    with pytest.raises(ValueError, match="mode"):
        supernet(audio, lengths, mode="sometimes")
    with pytest.raises(ValueError, match="needs an arch"):
        supernet(audio, lengths)


def test_derive_argmax_follows_alphas_and_truncates_at_skip(space, supernet):
    base = space.largest(decoder="attention")
    with torch.no_grad():
        supernet.alphas["feature"][2] = 5.0  # learnable
        supernet.alphas["layers__0__block"][4] = 5.0  # cnn
        supernet.alphas["layers__0__kernel"][0] = 5.0  # 3
        supernet.alphas["layers__1__block"][5] = 5.0  # skip
        supernet.alphas["layers__2__block"][1] = 5.0  # transformer, but after a skip
    arch = supernet.derive_argmax(base)
    assert arch.feature == "learnable"
    assert arch.layers == (LayerArch("cnn", kernel=3), LayerArch("skip"), LayerArch("skip"))
    assert (arch.decoder, arch.width, arch.subsampling) == (base.decoder, base.width, base.subsampling)
    assert space.contains(arch)
    assert supernet.alpha_distributions()["layers.0.block"]["cnn"] > 0.5


def test_check_arch_names_the_field(space, supernet):
    audio, lengths, _, _ = _batch()
    arch = space.largest()
    with pytest.raises(ValueError, match="width = 64"):
        supernet(audio, lengths, replace(arch, width=64))
    with pytest.raises(ValueError, match=r"layers\[0\]\.block.*blstm"):
        supernet(audio, lengths, replace(space.largest(chunk=4), layers=(LayerArch("blstm"),) + arch.layers[1:]))
    with pytest.raises(ValueError, match=r"layers\[1\]\.kernel = 31"):
        supernet(audio, lengths, replace(arch, layers=arch.layers[:1] + (replace(arch.layers[1], kernel=31),) + arch.layers[2:]))
    with pytest.raises(ValueError, match="decoder_width = 64"):
        supernet.static_state_dict(replace(space.largest(decoder="rnnt"), decoder_width=64))


def test_augment_hook_sees_features(space, supernet):
    audio, lengths, _, _ = _batch()
    arch = space.smallest()
    seen = []

    def augment(feats, feat_lengths):
        seen.append((feats.shape, feat_lengths.tolist()))
        return torch.zeros_like(feats)

    with torch.no_grad():
        plain = supernet(audio, lengths, arch)[0]
        masked = supernet(audio, lengths, arch, augment=augment)[0]
    assert seen == [((2, 51, 40), [51, 32])]
    assert not torch.allclose(plain, masked)


def test_decode_returns_token_lists_for_every_head(space, supernet):
    audio, lengths, _, _ = _batch()
    for decoder in ("ctc", "rnnt", "attention"):
        arch = space.smallest(decoder=decoder)
        with torch.no_grad():
            enc, enc_lengths = supernet(audio, lengths, arch)
        hyps = supernet.decode(enc, enc_lengths, arch)
        assert len(hyps) == 2
        assert all(isinstance(t, int) and 1 <= t < VOCAB for h in hyps for t in h), (decoder, hyps)


_MEMORY_SCRIPT = r"""
import json, resource, time, torch
from supernet.model import SpeechSupernet
from supernet.space import SearchSpace
torch.manual_seed(0)
space = SearchSpace.from_yaml("configs/space/default.yaml")
net = SpeechSupernet.from_space(space, 32).train()
arch = space.largest()
g = torch.Generator().manual_seed(0)
B, S = 16, 8 * 16000
audio = 0.1 * torch.randn(B, S, generator=g)
lengths = torch.full((B,), S)
targets = torch.randint(1, 32, (B, 40), generator=g)
target_lengths = torch.full((B,), 40)
opt = torch.optim.SGD(net.weight_parameters(), lr=1e-3)
t0 = time.perf_counter()
enc, enc_lengths = net(audio, lengths, arch)
loss = net.loss(enc, enc_lengths, targets, target_lengths, arch)
loss.backward()
opt.step()
step = time.perf_counter() - t0
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "step_s": step,
                  "loss": loss.item(), "width": arch.width, "depth": arch.depth}))
"""


def test_default_supernet_trains_one_step_in_4_gib():
    """Largest arch of the default space (width 192, 8 conformer layers), 16 x 8 s, forward + backward + step.

    Measured on the 2-core dev machine with 1 thread: peak RSS about 2.4 GiB, about 13 s in all.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert (out["width"], out["depth"]) == (192, 8)
    assert out["loss"] == out["loss"] and out["loss"] > 0  # finite, not NaN
    assert out["peak_rss_mib"] < 4096, out
