"""Search building blocks: encoding, objectives, Pareto/hypervolume, targets, evaluators."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from supernet.config import ConfigError
from supernet.search.encoding import ArchCodec
from supernet.search.evaluators import SyntheticEvaluator, TableEvaluator, as_metrics, write_table
from supernet.search.objectives import INFEASIBLE, PRESETS, Fitness, objective_values, resolve_objectives, with_derived
from supernet.search.pareto import hypervolume, nondominated_ranks, pareto_front, pareto_mask, reference_point
from supernet.search.targets import InfeasibleTargetError, Limits, Target, load_target, select_confirmed, select_for_target
from supernet.space import SearchSpace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return SearchSpace.from_yaml(REPO / "configs/space/tiny.yaml")


@pytest.fixture(scope="module")
def default_space() -> SearchSpace:
    return SearchSpace.from_yaml(REPO / "configs/space/default.yaml")


# ---------------------------------------------------------------------------- encoding
@pytest.mark.parametrize("space_name", ["tiny", "default_space"])
def test_codec_round_trip_and_repair(space_name, request):
    space = request.getfixturevalue(space_name)
    codec = ArchCodec(space)
    rng = random.Random(0)
    for _ in range(200):
        arch = space.sample(rng)
        params = codec.params(arch)
        assert set(params) == set(codec.distributions)
        for name, value in params.items():  # every param fits its Optuna distribution
            dist = codec.distributions[name]
            assert dist._contains(dist.to_internal_repr(value))
        assert codec.decode(params) == arch
        # any assignment of the distributions decodes (repairs) to a valid arch
        raw = {s.name: s.encode(rng.choice(s.values)) for s in codec.slots}
        space.validate(codec.decode(raw))


def test_codec_params_canonical_none_for_inactive(tiny):
    codec = ArchCodec(tiny)
    arch = tiny.smallest(block="lstm")
    params = codec.values(arch)
    assert arch.depth == 1
    assert params["layers.0.block"] == "lstm" and params["layers.0.heads"] is None
    assert params["layers.1.block"] is None and params["layers.2.kernel"] is None  # skipped layers


def test_codec_repairs_to_nearest_ordinal(default_space):
    codec = ArchCodec(default_space)
    arch = codec.decode_values({"width": 150, "depth": 2.6, "layers.0.block": "conformer", "layers.0.kernel": 20})
    assert arch.width == 144 and arch.depth == 3 and arch.layers[0].kernel == 15


# ---------------------------------------------------------------------------- objectives
def test_objectives_presets_and_errors():
    assert resolve_objectives("wer_latency") == ("wer", "latency_ms")
    assert resolve_objectives(["wer", "params"]) == ("wer", "params")
    assert set(PRESETS) >= {"wer_latency", "wer_params", "wer_rtf", "multilingual_params", "streaming"}
    with pytest.raises(ConfigError, match="not a metric name"):
        resolve_objectives(["wer", "arch"])
    with pytest.raises(ConfigError, match="repeat"):
        resolve_objectives(["wer", "wer"])
    m = with_derived({"wer/lang/en": 0.1, "wer/lang/de": 0.3, "params": 5})
    assert m["wer_mean"] == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="latency_ms"):
        objective_values({"wer": 0.1}, ["wer", "latency_ms"])


# ---------------------------------------------------------------------------- Pareto
def _brute_front(v: np.ndarray) -> np.ndarray:
    dom = [(np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)).any() for i in range(len(v))]
    return ~np.array(dom)


def test_pareto_matches_brute_force():
    rng = np.random.default_rng(0)
    for m in (2, 3):
        v = rng.integers(0, 6, size=(60, m)).astype(float)  # many ties and duplicates
        assert np.array_equal(pareto_mask(v), _brute_front(v))
        ranks = nondominated_ranks(v)
        rest = v[ranks > 0]
        assert np.array_equal(nondominated_ranks(rest) == 0, ranks[ranks > 0] == 1)


def test_pareto_front_sorted_and_hypervolume():
    items = [{"wer": 0.3, "lat": 1.0}, {"wer": 0.2, "lat": 2.0}, {"wer": 0.25, "lat": 2.5}, {"wer": 0.1, "lat": 4.0}]
    front = pareto_front(items, ["wer", "lat"], values=lambda d: [d["wer"], d["lat"]])
    assert [d["wer"] for d in front] == [0.1, 0.2, 0.3]
    # 2-D hypervolume by hand: reference (1, 5)
    pts = [[0.1, 4.0], [0.2, 2.0], [0.3, 1.0]]
    expected = (1 - 0.1) * (5 - 4) + (1 - 0.2) * (4 - 2) + (1 - 0.3) * (2 - 1)
    assert hypervolume(pts, [1.0, 5.0]) == pytest.approx(expected)
    assert hypervolume(pts + [[2.0, 0.5]], [1.0, 5.0]) == pytest.approx(expected)  # outside the reference: ignored
    ref = reference_point(pts)
    assert np.all(ref > np.max(pts, axis=0))


# ---------------------------------------------------------------------------- targets
def test_shipped_targets_load():
    for name in ("mobile", "edge", "server"):
        t = load_target(name)
        assert t.name == name and t.threads >= 1 and len(t.objectives) == 2
    assert load_target("mobile").streaming is True
    assert load_target("server").objectives == ("wer_mean", "params")
    with pytest.raises(ConfigError, match="shipped targets: edge, mobile, server"):
        load_target("watch")


def test_target_yaml_errors(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("name: t\nlimits: {latency: 3}\n")
    with pytest.raises(ConfigError, match=r"t.yaml.*limits.latency"):
        load_target(p)
    p.write_text("name: t\nobjectives: [wer, arch]\n")
    with pytest.raises(ConfigError, match="not a metric name"):
        load_target(p)


def test_target_restrict_streaming(default_space, tiny):
    mobile = load_target("mobile")
    sub = mobile.restrict(default_space)
    assert {c for c, _ in sub.spec.streams} == {8, 16}
    assert all(la <= 2 for _, la in sub.spec.streams)
    assert "blstm" not in sub.spec.layers[0].block  # needs full context
    rng = random.Random(0)
    assert all(not mobile.violations(sub.sample(rng), {"chunk_latency_ms": 0, "params": 0, "memory_mb": 0}) for _ in range(50))
    with pytest.raises(ConfigError, match="target mobile: no \\(chunk, look-ahead\\)"):
        mobile.restrict(tiny)  # the tiny space only has chunk 4


def test_select_for_target_best_feasible_and_error(tiny):
    ev = SyntheticEvaluator(seed=0)
    rng = random.Random(1)
    cands = [(a, ev.evaluate(a)) for a in (tiny.sample(rng) for _ in range(80))]
    lat = sorted(m["latency_ms"] for _, m in cands)
    target = Target(name="t", limits=Limits(latency_ms=lat[len(lat) // 2]), objectives=["wer", "latency_ms"])
    arch, metrics = select_for_target(cands, target)
    feasible = [m for _, m in cands if m["latency_ms"] <= target.limits.latency_ms]
    assert metrics["wer"] == min(m["wer"] for m in feasible)
    tight = Target(name="tight", limits=Limits(latency_ms=lat[0] * 0.5, params=10), objectives=["wer", "latency_ms"])
    with pytest.raises(InfeasibleTargetError) as e:
        select_for_target(cands, tight)
    msg = str(e.value)
    assert "no candidate meets target 'tight'" in msg and "latency_ms" in msg and "params" in msg and "%" in msg
    assert len(e.value.closest) == 3
    (closest_arch, _), violations = e.value.closest[0]
    assert closest_arch.id in msg and {v.limit for v in violations} == {"latency_ms", "params"}
    with pytest.raises(ValueError, match="no candidates"):
        select_for_target([], target)


def test_tightened_target_takes_the_smaller_limit():
    t = Target(name="t", limits=Limits(latency_ms=10.0, params=100))
    assert t.tightened(latency_ms=8.0).limits.latency_ms == 8.0
    assert t.tightened(latency_ms=12.0).limits.latency_ms == 10.0  # the target's own limit is smaller
    assert Target(name="u").tightened(latency_ms=12.0).limits.latency_ms == 12.0
    assert t.limits.latency_ms == 10.0 and t.tightened(latency_ms=1.0).limits.params == 100  # a copy
    with pytest.raises(ValueError, match="not metric limits"):
        t.tightened(lookahead=2)


def test_select_confirmed_takes_the_next_best_when_a_pick_is_refused(tiny):
    ev = SyntheticEvaluator(seed=0)
    rng = random.Random(1)
    cands = [(a, ev.evaluate(a)) for a in (tiny.sample(rng) for _ in range(40))]
    target = Target(name="t", objectives=["wer", "latency_ms"])
    by_wer = sorted(cands, key=lambda c: (c[1]["wer"], c[1]["latency_ms"]))
    refuse = {by_wer[0][0].id, by_wer[1][0].id}
    seen = []

    def confirm(c):
        seen.append(c[0].id)
        return {"ok": c[0].id not in refuse, "summary": "slower" if c[0].id in refuse else "fine"}

    pick, checks = select_confirmed(cands, target, confirm, tries=5)
    assert seen == [by_wer[0][0].id, by_wer[1][0].id, pick[0].id] and pick[0].id == by_wer[2][0].id
    assert [c["ok"] for c in checks] == [False, False, True] and checks[0]["arch_id"] == by_wer[0][0].id
    assert select_confirmed(cands, target, lambda c: {"ok": True})[0] is select_for_target(cands, target)
    kept: list = []
    with pytest.raises(InfeasibleTargetError, match="stopped after 2 tries") as e:
        select_confirmed(cands, target, confirm, tries=2, checks=kept)
    assert by_wer[0][0].id in str(e.value) and "slower" in str(e.value)
    assert [c["arch_id"] for c in kept] == [by_wer[0][0].id, by_wer[1][0].id]  # the caller keeps the refusals
    with pytest.raises(InfeasibleTargetError, match="no feasible candidate is left"):
        select_confirmed(cands[:3], target, lambda c: {"ok": False}, tries=10)
    with pytest.raises(InfeasibleTargetError, match="no candidate meets"):  # nothing feasible: no confirmation at all
        select_confirmed(cands, Target(name="x", limits=Limits(params=1)), confirm)
    with pytest.raises(ValueError, match="tries"):
        select_confirmed(cands, target, confirm, tries=0)


def test_fitness_penalises_infeasible(tiny):
    t = Target(name="t", limits=Limits(params=1000), objectives=["wer", "params"])
    f = Fitness(t.objectives, t)
    a = tiny.smallest()
    assert f(a, {"wer": 0.2, "params": 900}) == 0.2
    assert f(a, {"wer": 0.1, "params": 2000}) == pytest.approx(INFEASIBLE + 1.0)
    assert t.constraint_values({"wer": 0.1, "params": 2000}) == {"params": pytest.approx(1.0)}


# ---------------------------------------------------------------------------- evaluators
def test_synthetic_evaluator_deterministic_and_additive(default_space):
    a, b = SyntheticEvaluator(seed=3), SyntheticEvaluator(seed=3)
    rng = random.Random(0)
    archs = [default_space.sample(rng) for _ in range(20)]
    for arch in archs:
        m = a.evaluate(arch)
        assert m == b.evaluate(arch)
        assert 0 < m["wer"] <= 1 and m["params"] > 0 and m["latency_ms"] > 0
        assert m["wer"] == pytest.approx((m["wer/lang/en"] + m["wer/lang/de"]) / 2)
        head = arch.__class__(**{**arch.__dict__, "layers": ()})
        for metric in ("params", "latency_ms"):
            parts = a.head_cost(metric, head) + sum(a.layer_cost(metric, i, la, head) for i, la in enumerate(arch.layers))
            assert parts == pytest.approx(m[metric])
    assert SyntheticEvaluator(seed=4).evaluate(archs[0])["wer"] != a.evaluate(archs[0])["wer"]
    # bigger is better on this landscape, on average
    assert a.evaluate(default_space.largest())["wer"] < a.evaluate(default_space.smallest())["wer"]


def test_table_evaluator(tmp_path, tiny):
    ev = SyntheticEvaluator(seed=0)
    rng = random.Random(0)
    archs = [tiny.sample(rng) for _ in range(5)]
    path = tmp_path / "table.jsonl"
    write_table(path, [(a, ev.evaluate(a)) for a in archs[:3]])
    table = TableEvaluator(path)
    assert len(table) == 3 and table.evaluate(archs[0]) == ev.evaluate(archs[0])
    with pytest.raises(ConfigError, match="not in the table"):
        table.evaluate(archs[4])
    filling = TableEvaluator(path, fallback=ev)
    assert filling.evaluate(archs[4]) == ev.evaluate(archs[4]) and filling.misses == 1
    filling.save()
    assert len(TableEvaluator(path)) == 4
    path.write_text(path.read_text() + '{"arch": {"feature": "x"}}\n')
    with pytest.raises(ConfigError, match=r"table.jsonl:5: not a table row"):
        TableEvaluator(path)
    with pytest.raises(ConfigError, match="not found"):
        TableEvaluator(tmp_path / "missing.jsonl")


def test_as_metrics_flattens():
    from dataclasses import dataclass

    @dataclass
    class R:
        wer: float
        note: str

    assert as_metrics({"wer": {"set": {"dev": 0.2}}}) == {"wer/set/dev": 0.2}
    assert as_metrics({"wer": 0.1, "sets": {"dev": {"wer": 0.2}}, "name": "x", "ok": True}) == {"wer": 0.1, "sets/dev/wer": 0.2}
    assert as_metrics(R(0.3, "n")) == {"wer": 0.3}
    with pytest.raises(TypeError):
        as_metrics(3.0)
    assert json.dumps(as_metrics({"params": 5}))
