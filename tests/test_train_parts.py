"""Pieces of supernet training that need no training run: derivation, expected cost,
distillation, path sampling, the resumable batch stream, phases, the alpha plot."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
VOCAB = 12


@pytest.fixture(scope="module")
def space():
    from supernet.space import SearchSpace

    return SearchSpace.from_yaml(REPO / "configs/space/tiny.yaml")


@pytest.fixture(scope="module")
def net(space):
    from supernet.model import SpeechSupernet
    from supernet.nn.config import NetConfig

    torch.manual_seed(0)
    return SpeechSupernet.from_space(space, VOCAB, net=NetConfig(subsampler_channels=16, learnable_filters=16)).eval()


@pytest.fixture
def random_alpha(net):
    """Random alpha for the test, zeros again afterwards."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for a in net.arch_parameters():
            a.copy_(2.0 * torch.randn(a.shape, generator=g))
    yield net
    with torch.no_grad():
        for a in net.arch_parameters():
            a.zero_()


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([8000, 6400, 4800])
    audio = 0.1 * torch.randn(3, 8000, generator=g) * (torch.arange(8000)[None] < lengths[:, None])
    targets = torch.randint(1, VOCAB, (3, 4), generator=g)
    return audio, lengths, targets, torch.tensor([4, 3, 2])


# ----------------------------------------------------------------------------- derivation
def test_budget_derivation_matches_brute_force(space, random_alpha):
    """The DP's arch has the best summed log-probability of every arch within the budget."""
    from supernet.training.derive import alpha_scorers, derive_under_budget
    from supernet.training.losses import params_cost

    net = random_alpha
    base = net.largest_arch()
    head_cost, layer_cost = params_cost(VOCAB, net.net)
    head_score, layer_score = alpha_scorers(net, base)
    rows = []
    for arch in space.enumerate():
        head = replace(arch, layers=())
        hs = head_score(head)
        if hs == -math.inf:
            continue
        score = hs + sum(layer_score(i, la, head) for i, la in enumerate(arch.layers))
        cost = head_cost(head) + sum(layer_cost(la, head) for la in arch.layers)
        assert cost == _params(arch, net)  # the DP's per-part costs add up to the whole arch's
        rows.append((score, cost, arch))
    assert len(rows) > 100
    costs = sorted(c for _, c, _ in rows)
    for q in (0.0, 0.1, 0.35, 0.7, 1.0):
        budget = costs[int(q * (len(costs) - 1))]
        best = derive_under_budget(net, space, budget, head_cost, layer_cost, base=base)
        brute = max(s for s, c, _ in rows if c <= budget)
        assert best is not None
        assert best.score == pytest.approx(brute, abs=1e-9)
        got = next(c for s, c, a in rows if a == best.arch)
        assert got <= budget
    assert derive_under_budget(net, space, costs[0] - 1, head_cost, layer_cost, base=base) is None


def test_argmax_is_most_likely_value_per_decision(random_alpha):
    from supernet.training.derive import decision_log_probs

    net = random_alpha
    arch = net.derive_argmax()
    lp = decision_log_probs(net, net.largest_arch())
    assert arch.feature == max(lp["feature"], key=lp["feature"].get)
    first = arch.layers[0]
    assert first.block == max(lp["layers.0.block"], key=lp["layers.0.block"].get)


# ----------------------------------------------------------------------------- expected cost
def test_expected_cost_is_exact_for_peaked_alpha_and_differentiable(space, net):
    from supernet.training.losses import ExpectedCost, params_cost

    base = net.largest_arch()
    cost = ExpectedCost(*params_cost(VOCAB, net.net))
    # Uniform alpha: a value strictly between the cheapest and the dearest arch, with gradients.
    uniform = cost(net.sample_mixture("relaxed", base), base)
    uniform.backward()
    assert any(a.grad is not None and a.grad.abs().sum() > 0 for a in net.arch_parameters())
    net.zero_grad(set_to_none=True)
    # Peaked alpha on one arch's choices: the expectation is that arch's parameter count.
    target = space.largest(block="lstm")  # width and other fixed fields as base; lstm in every slot
    with torch.no_grad():
        for name, values in net.config.decisions().items():
            key = name.replace(".", "__")
            if key not in net.alphas:
                continue
            i, field = (int(name.split(".")[1]), name.split(".")[2]) if name.startswith("layers.") else (None, name)
            want = getattr(target.layers[i], field) if i is not None else getattr(target, field)
            if want is None:  # a field the block does not use: any value
                want = values[0]
            net.alphas[key].copy_(torch.tensor([40.0 if v == want else 0.0 for v in values]))
    try:
        peaked = float(cost(net.sample_mixture("relaxed", base), base))
        assert peaked == pytest.approx(_params(target, net), rel=1e-6)
        assert _params(space.smallest(), net) < float(uniform) < _params(space.largest(), net)
    finally:
        with torch.no_grad():
            for a in net.arch_parameters():
                a.zero_()


def _params(arch, net):
    from supernet.nn import params

    return params.arch_params(arch, VOCAB, net.net)


# ----------------------------------------------------------------------------- distillation
def test_head_loss_equals_supernet_loss(space, net):
    from supernet.training.strategies import head_loss

    audio, lengths, targets, tl = _batch()
    for arch in (space.largest(), space.smallest(), space.largest(decoder="rnnt")):
        enc, el = net(audio, lengths, arch)
        outputs = net.head_outputs(enc, el, targets, tl, arch)
        assert torch.allclose(head_loss(net, arch, outputs, el, targets, tl), net.loss(enc, el, targets, tl, arch))


def test_distill_loss_zero_on_itself_positive_otherwise_none_when_shapes_differ(space, net):
    from supernet.training.losses import distill_loss, posterior_parts

    audio, lengths, targets, tl = _batch()
    outs = {}
    for name, arch in (("big", space.largest()), ("small", space.smallest()), ("rnnt", space.largest(decoder="rnnt"))):
        enc, el = net(audio, lengths, arch)
        outs[name] = posterior_parts(arch.decoder, net.head_outputs(enc, el, targets, tl, arch), el, tl)
    assert float(distill_loss(outs["big"], outs["big"])) == pytest.approx(0.0, abs=1e-6)
    kd = distill_loss(outs["small"], outs["big"], temperature=2.0)
    assert kd is not None and float(kd) > 0
    assert distill_loss(outs["rnnt"], outs["big"]) is None  # another decoder: not comparable
    # Padding does not count: changing scores past an utterance's length leaves the loss alone.
    (s, mask), = outs["small"]
    s2 = s.clone()
    s2[~mask] = torch.randn(int((~mask).sum()), s.size(-1)).log_softmax(-1)
    assert mask.sum() < mask.numel()  # the batch has padding
    assert torch.allclose(distill_loss([(s2, mask)], outs["big"]), distill_loss(outs["small"], outs["big"]))


# ----------------------------------------------------------------------------- paths and data
def test_path_sampler_seeded_closed_dimensions_at_largest(space):
    from supernet.training.paths import PathSampler, step_rng

    full = PathSampler(space)
    assert [full.sample(step_rng(0, 5)) for _ in range(3)] == [full.sample(step_rng(0, 5)) for _ in range(3)]
    assert full.smallest() == space.smallest() and full.largest() == space.largest()
    kernel = PathSampler(space, ["kernel"])
    big = space.largest()
    draws = [kernel.sample(step_rng(1, s)) for s in range(30)]
    for a in draws:
        assert a in space
        assert (a.width, a.depth, a.decoder, a.chunk) == (big.width, big.depth, big.decoder, big.chunk)
        assert [la.block for la in a.layers] == [la.block for la in big.layers]
    assert len({tuple(la.kernel for la in a.layers) for a in draws}) > 1  # kernels do vary
    small = kernel.smallest()
    assert all(la.kernel == min(space.spec.layers[0].kernel) for la in small.layers) and small.width == big.width
    assert PathSampler(space, []).sample(random.Random(0)) == big


def test_stream_batches_resume_and_split_over_ranks():
    from supernet.data.datamodule import DataConfig
    from supernet.training.data import StreamBatchSampler, split_indices

    durations = [1.0 + 0.1 * i for i in range(11)]
    cfg = DataConfig(batch_size=3, num_buckets=2)
    full = StreamBatchSampler(durations, cfg, seed=4)
    it = iter(full)
    first = [next(it) for _ in range(12)]  # crosses several epochs
    assert sorted(i for b in first[:4] for i in b) == list(range(11))  # one epoch covers every utterance once
    later = iter(StreamBatchSampler(durations, cfg, seed=4, start=5))
    assert [next(later) for _ in range(7)] == first[5:]
    r0 = iter(StreamBatchSampler(durations, cfg, seed=4, rank=0, world_size=2))
    r1 = iter(StreamBatchSampler(durations, cfg, seed=4, rank=1, world_size=2))
    assert [next(r0) for _ in range(3)] == first[0:6:2] and [next(r1) for _ in range(3)] == first[1:6:2]
    keep, held = split_indices(20, 0.25, seed=0)
    assert len(held) == 5 and sorted(keep + held) == list(range(20)) and split_indices(20, 0.25, 0) == (keep, held)
    with pytest.raises(ValueError, match="cannot hold out"):
        split_indices(1, 0.5, 0)


def test_progressive_phases_share_the_run_with_own_schedule(space):
    from supernet.training.config import PhaseConfig, load_fit_config
    from supernet.training.strategies import PathStrategy

    cfg = load_fit_config(REPO / "configs/fit/tiny.yaml", strategy="progressive",
                          progressive={"phases": [{"name": "a", "steps": 30, "lr": 0.01},
                                                  {"name": "b", "open": ["kernel"], "steps": 10}]},
                          optim={"lr": 0.002, "warmup": 0.0, "schedule": "linear"})
    s = PathStrategy(cfg, space)
    assert s.phase_at(0.0) == (0, 0.0) and s.phase_at(0.5)[0] == 0 and s.phase_at(0.75) == (1, 0.0)
    assert s.lr(0.0) == pytest.approx(0.01) and s.lr(0.75) == pytest.approx(0.002) and s.lr(1.0) == pytest.approx(0.0)
    assert [t for t, _ in s.paths(0.1, 0)] == ["largest"]
    assert [t for t, _ in s.paths(0.9, 0)] == ["largest", "smallest", "random", "random"]
    with pytest.raises(ValueError, match="not a dimension"):
        PhaseConfig("x", ("kernels",))
    # A phase may override the decay and the warm-up: a constant first phase, no warm-up after it.
    cfg = load_fit_config(REPO / "configs/fit/tiny.yaml", strategy="progressive",
                          progressive={"phases": [{"name": "a", "steps": 30, "schedule": "constant", "warmup": 0.5},
                                                  {"name": "b", "open": ["kernel"], "steps": 10, "warmup": 0.0}]},
                          optim={"lr": 0.002, "warmup": 0.2, "schedule": "linear"})
    s = PathStrategy(cfg, space)
    assert s.lr(0.1875) == pytest.approx(0.001) and s.lr(0.5) == pytest.approx(0.002) and s.lr(0.74) == pytest.approx(0.002)
    assert s.lr(0.75) == pytest.approx(0.002) and s.lr(0.875) == pytest.approx(0.001)  # linear decay, no warm-up
    with pytest.raises(ValueError, match="schedule must be one of"):
        PhaseConfig("x", (), schedule="step")
    with pytest.raises(ValueError, match="warmup must be in"):
        PhaseConfig("x", (), warmup=1.0)


def test_dynamic_chunk_steps_stream_every_path_with_one_drawn_chunk(space):
    """streaming_prob (U2): some steps run every path chunked, the rest full context; seeded by step."""
    from supernet.space import SearchSpace
    from supernet.training.config import PhaseConfig, load_fit_config
    from supernet.training.strategies import PathStrategy

    def strategy(prob: float, sp=space) -> PathStrategy:
        phases = [{"name": "a", "steps": 10, "streaming_prob": prob},
                  {"name": "b", "open": ["kernel", "depth"], "steps": 10, "streaming_prob": prob, "num_random": 1}]
        return PathStrategy(load_fit_config(REPO / "configs/fit/tiny.yaml", strategy="progressive",
                                            progressive={"phases": phases}), sp)

    s, plain = strategy(0.5), strategy(0.0)
    assert space.largest().chunk == 0
    for progress in (0.1, 0.9):
        steps = [s.paths(progress, step) for step in range(40)]
        assert steps == [s.paths(progress, step) for step in range(40)]  # (seed, step) decide
        modes = []
        for step, paths in enumerate(steps):
            streams = {(a.chunk, a.lookahead) for _, a in paths}
            assert len(streams) == 1  # teacher and students in the same mode
            assert all(a in space for _, a in paths)
            # only the streaming fields move: the paths of the same step without dynamic chunks
            assert [(t, replace(a, chunk=0, lookahead=None)) for t, a in paths] == plain.paths(progress, step)
            modes.append(streams.pop())
        chunked = [m for m in modes if m[0] > 0]
        assert 8 <= len(chunked) <= 32 and {la for _, la in chunked} == {0, 2}  # both look-aheads drawn
        assert all(c == 4 for c, _ in chunked)
    with pytest.raises(ValueError, match="streaming_prob applies only while 'streaming' is closed"):
        PhaseConfig("x", ("all",), streaming_prob=0.5)
    with pytest.raises(ValueError, match="streaming_prob must be in"):
        PhaseConfig("x", (), streaming_prob=1.5)
    no_stream = SearchSpace(replace(space.spec, streams=tuple(st for st in space.spec.streams if st[0] == 0)))
    with pytest.raises(ValueError, match="needs a streaming chunk"):
        strategy(0.5, no_stream)


def test_smallest_share_trains_the_small_end_alone_on_some_steps(space):
    """smallest_share: that share of a phase's steps runs the phase's smallest path alone (no
    teacher); the other steps are the same sandwich steps as without it; seeded by (seed, step)."""
    from supernet.training.config import PhaseConfig, load_fit_config
    from supernet.training.strategies import PathStrategy

    def strategy(share: float, seed: int = 0) -> PathStrategy:
        phases = [{"name": "a", "steps": 10},
                  {"name": "b", "open": ["kernel", "depth"], "steps": 10, "num_random": 1, "smallest_share": share}]
        return PathStrategy(load_fit_config(REPO / "configs/fit/tiny.yaml", strategy="progressive", seed=seed,
                                            progressive={"phases": phases}), space)

    s, plain = strategy(0.75), strategy(0.0)
    assert [s.paths(0.1, step) for step in range(20)] == [[("largest", space.largest())]] * 20  # phase 0 untouched
    steps = [s.paths(0.9, step) for step in range(200)]
    again, seed1 = strategy(0.75), strategy(0.75, seed=1)
    assert steps == [again.paths(0.9, step) for step in range(200)]  # (seed, step) decide
    alone = [step for step, paths in enumerate(steps) if len(paths) == 1]
    assert 120 <= len(alone) <= 180  # about 75 % of the steps
    smallest = s.samplers[1].smallest()
    assert smallest != space.largest() and smallest.depth < space.largest().depth
    assert all(steps[i] == [("smallest", smallest)] for i in alone)
    # the other steps are exactly the sandwich steps the phase runs without the option
    assert all(paths == plain.paths(0.9, step) for step, paths in enumerate(steps) if step not in alone)
    assert [len(p) for p in steps if len(p) > 1] == [3] * (200 - len(alone))  # largest, smallest, 1 random
    other = [seed1.paths(0.9, step) for step in range(200)]
    assert [len(p) == 1 for p in other] != [len(p) == 1 for p in steps]  # another seed, other steps
    with pytest.raises(ValueError, match="smallest_share must be in"):
        PhaseConfig("x", ("kernel",), smallest_share=1.0)
    with pytest.raises(ValueError, match="needs an open dimension"):
        PhaseConfig("x", (), smallest_share=0.5)


def test_alpha_plot_written(tmp_path):
    from supernet.training.alpha import entropy, plot_alpha_history

    hist = [{"step": s, "probs": {"layers.0.block": {"conformer": 0.5 + 0.01 * s, "lstm": 0.5 - 0.01 * s}}} for s in range(5)]
    out = plot_alpha_history(hist, tmp_path / "alpha.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_alpha_history([], tmp_path / "none.png") is None
    assert entropy({"a": 0.5, "b": 0.5}) == pytest.approx(math.log(2))
