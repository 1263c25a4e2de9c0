"""Strategies: reproducible proposals per seed, and what each one is for."""

from __future__ import annotations

import dataclasses
import math
import random
import warnings
from pathlib import Path

import pytest

from supernet.search.evaluators import SyntheticEvaluator
from supernet.search.loop import run_search
from supernet.search.objectives import Fitness
from supernet.search.storage import StudyDB
from supernet.search.strategies import (STRATEGIES, Budget, DartsDerived, PredictorScreen, RandomSearch, RegularizedEvolution,
                                        Reinforce, TransferSeeded, compound_scaling, project, top_archs)
from supernet.search.targets import Limits, Target
from supernet.space import BLOCK_FIELDS, SearchSpace

REPO = Path(__file__).resolve().parents[1]
OBJ = ("wer", "latency_ms")


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return SearchSpace.from_yaml(REPO / "configs/space/tiny.yaml")


@pytest.fixture(scope="module")
def target() -> Target:
    return Target(name="t", limits=Limits(latency_ms=6.0), objectives=list(OBJ))


def _alphas(space: SearchSpace, seed: int = 0) -> dict:
    """A made-up softmax(alpha) per decision (what SpeechSupernet.alpha_distributions() returns)."""
    rng = random.Random(seed)
    out = {"feature": {f: 1.0 / len(space.spec.features) for f in space.spec.features}}
    for i in range(space.num_layers):
        ch = space.choices_for(i)
        for f in ("block", "heads", "kernel"):
            w = [rng.random() + 0.05 for _ in getattr(ch, f)]
            out[f"layers.{i}.{f}"] = {v: x / sum(w) for v, x in zip(getattr(ch, f), w)}
    return out


def _make(name: str, space: SearchSpace, fitness: Fitness, seed: int):
    small = {"evolution": dict(population=6, sample=3), "tpe": dict(n_startup_trials=4), "gp": dict(n_startup_trials=4),
             "nsga2": dict(population=4)}  # fmt: skip
    if name == "darts":
        return DartsDerived(space, fitness, seed, alphas=_alphas(space))
    if name == "transfer":
        inner = RegularizedEvolution(space, fitness, seed, population=6, sample=3)
        return TransferSeeded(space, fitness, seed, inner=inner, seeds=[("compound", a) for a in compound_scaling(space)])
    if name == "prescreen":
        return PredictorScreen(space, fitness, seed, inner=RegularizedEvolution(space, fitness, seed, population=6, sample=3),
                               candidates=4, min_history=4, refit_every=2)  # fmt: skip
    return STRATEGIES[name](space, fitness, seed, **small.get(name, {}))


def _proposals(name, space, target, seed, n):
    fitness = Fitness(OBJ, target)
    db = StudyDB(None, f"{name}-{seed}", space, OBJ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_search(_make(name, space, fitness, seed), SyntheticEvaluator(seed=0), db, n_trials=n, seed=seed, progress=False)
    assert len(res.records) == n and len({r.arch.id for r in res.records}) == n  # no arch evaluated twice
    return [a.id for a in res.proposals]


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce", "tpe", "nsga2", "darts", "transfer", "prescreen",
                                  pytest.param("gp", marks=pytest.mark.slow)])  # GP: seconds to minutes per proposal on 2 cores
def test_same_seed_same_proposals(name, tiny, target):
    n = 6 if name == "gp" else 14
    a = _proposals(name, tiny, target, seed=1, n=n)
    assert a == _proposals(name, tiny, target, seed=1, n=n)
    if name != "darts":  # darts starts with the same derived archs whatever the seed
        assert a != _proposals(name, tiny, target, seed=2, n=n)


def test_evolution_ages_and_mutates_fittest(tiny, target):
    fitness = Fitness(OBJ, target)
    evo = RegularizedEvolution(tiny, fitness, 0, population=4, sample=4, mutation_prob=0.5)
    ev = SyntheticEvaluator(seed=0)
    archs = [tiny.sample(random.Random(i)) for i in range(5)]
    for a in archs:
        evo.tell(a, ev.evaluate(a))
    assert [a for a, _ in evo.population] == archs[1:]  # the oldest left, whatever its fitness
    best = min(evo.population, key=lambda af: af[1])[0]
    child = evo.ask()  # tournament of the whole population: the fittest is the parent
    assert child != best and tiny.contains(child)
    diff = sum(x != y for x, y in zip(tiny.encode(child), tiny.encode(best)))
    assert 0 < diff


def test_reinforce_moves_towards_rewarded_choice(tiny):
    # reward: WER low when layer 0 is a cnn; the policy must learn it
    class Fit(Fitness):
        def __call__(self, arch, metrics):
            return 0.1 if arch.layers[0].block == "cnn" else 0.5

    rl = Reinforce(tiny, Fit(("wer",)), 0, lr=0.5)
    before = rl.probabilities()["layers.0.block"]["cnn"]
    for _ in range(60):
        a = rl.ask()
        rl.tell(a, {"wer": 0.0})
    after = rl.probabilities()["layers.0.block"]["cnn"]
    assert before == pytest.approx(0.25) and after > 0.6


def test_darts_argmax_and_budget_are_exact(tiny, target):
    alphas = _alphas(tiny)
    ev = SyntheticEvaluator(seed=0)
    strat = DartsDerived(tiny, Fitness(OBJ, target), 0, alphas=alphas, base=None)

    def logp(arch):
        s = math.log(alphas["feature"][arch.feature])
        for i, la in enumerate(arch.layers):
            s += math.log(alphas[f"layers.{i}.block"][la.block])
            s += sum(math.log(alphas[f"layers.{i}.{f}"][getattr(la, f)]) for f in BLOCK_FIELDS[la.block] if f in ("heads", "kernel"))
        return s

    def params(arch):
        head = dataclasses.replace(arch, layers=())
        return ev.head_cost("params", head) + sum(ev.layer_cost("params", i, la, head) for i, la in enumerate(arch.layers))

    everything = list(tiny.enumerate())  # 5,528 archs: brute force is the reference
    best = max(logp(a) for a in everything)
    assert logp(strat.derive()) == pytest.approx(best)
    cost = sorted(params(a) for a in everything)
    budget = Budget("params", cost[len(cost) // 20])
    strat = DartsDerived(tiny, Fitness(OBJ, target), 0, alphas=alphas, budgets=[budget], costs={"params": ev}, base=None)
    derived = dict(strat.derived)[f"params<={budget.limit:g}"]
    fits = [a for a in everything if params(a) <= budget.limit]
    assert params(derived) <= budget.limit
    assert logp(derived) == pytest.approx(max(logp(a) for a in fits))
    assert [strat.ask(), strat.ask()] == [a for _, a in strat.derived]  # derived archs first
    assert strat.stage(derived).startswith("derived:")
    with pytest.raises(ValueError, match="needs a cost table"):
        DartsDerived(tiny, Fitness(OBJ, target), 0, alphas=alphas, budgets=[Budget("latency_ms", 3.0)])


def test_compound_scaling_grows_depth_and_width():
    space = SearchSpace.from_yaml(REPO / "configs/space/default.yaml")
    seeds = compound_scaling(space)
    assert seeds[0] == space.smallest()
    depths, widths = [a.depth for a in seeds], [a.width for a in seeds]
    assert depths == sorted(depths) and widths == sorted(widths)
    assert depths[-1] == max(space.spec.depths) and widths[-1] == max(space.spec.widths)
    assert len({a.id for a in seeds}) == len(seeds) and all(space.contains(a) for a in seeds)


def test_transfer_from_another_study(tmp_path, tiny, target):
    fitness = Fitness(OBJ, target)
    db = StudyDB(None, "edge-run", tiny, OBJ)
    url = db.storage  # top_archs takes a storage URL or an Optuna storage
    run_search(RandomSearch(tiny, fitness, 0), SyntheticEvaluator(seed=0), db, n_trials=12, progress=False)
    recs = sorted(db.records(), key=lambda r: (not r.feasible, r.values[0]))
    top = top_archs(url, "edge-run", 3, tiny)
    assert top == [r.arch for r in recs[:3]]
    # projected onto a space without streaming: every seed is valid there
    full = Target(name="full", streaming=False, objectives=list(OBJ)).restrict(tiny)
    assert all(full.contains(a) for a in top_archs(url, "edge-run", 5, full))
    assert project(tiny, recs[0].arch) == recs[0].arch
    strat = TransferSeeded(tiny, fitness, 0, inner=RegularizedEvolution(tiny, fitness, 0, population=4, sample=2),
                           seeds=[("transfer", a) for a in top])  # fmt: skip
    assert [strat.ask() for _ in range(3)] == top and strat.stage(top[0]) == "seed:transfer"


def test_prescreen_evaluates_best_predicted(tiny, target):
    class Oracle:  # a "predictor" that knows the synthetic WER
        def __init__(self):
            self.ev = SyntheticEvaluator(seed=0)

        def encode(self, archs):
            return archs

        def predict(self, archs):
            return [self.ev.evaluate(a)["wer"] for a in archs]

    fitness = Fitness(OBJ, target)
    inner = RandomSearch(tiny, fitness, 0)
    ps = PredictorScreen(tiny, fitness, 0, inner=inner, predictor=Oracle(), candidates=8)
    twin = RandomSearch(tiny, fitness, 0)  # same seed: proposes the same candidates
    pick = ps.ask()
    pool = [twin.ask() for _ in range(8)]
    assert pick in pool and Oracle().predict([pick])[0] == min(Oracle().predict(pool))
    from supernet.search.strategies import TPE

    with pytest.raises(ValueError, match="ask\\(\\) is free"):
        PredictorScreen(tiny, fitness, 0, inner=TPE(tiny, fitness, 0))


def test_optuna_strategy_escapes_repeated_duplicates(tiny, target):
    from supernet.search.strategies import TPE

    fitness = Fitness(OBJ, target)
    db = StudyDB(None, "dups", tiny, OBJ)
    tpe = TPE(tiny, fitness, 0, n_startup_trials=2)
    tpe.bind(db)
    first = tpe.ask()
    tpe.trial_number(first)
    for _ in range(tpe.max_repeats):
        tpe.on_duplicate(first)
    fallback = tpe.ask()  # a seeded uniform sample, without an Optuna trial of its own
    assert tiny.contains(fallback) and tpe.trial_number(fallback) is None
    assert fallback == RandomSearch(tiny, fitness, 0).ask()


def test_darts_takes_the_latency_table_from_the_target_when_its_own_is_unset(tiny, tmp_path):
    import json

    from supernet.profile import LatencyLUT
    from supernet.search.config import DartsConfig, EvaluatorConfig, SearchConfig, build_strategy

    lut = LatencyLUT.build(tiny, vocab_size=8, threads=1, ref_seconds=0.25, calibrate=0, warmup=1, repeats=2,
                           min_run_time=0.0, progress=False)
    lut_path, alphas_path = tmp_path / "lut.json", tmp_path / "alphas.json"
    lut.save(lut_path)
    alphas_path.write_text(json.dumps({d: {str(v): p for v, p in probs.items()} for d, probs in _alphas(tiny).items()}))
    budget_ms = sorted(lut.predict(a) for a in (tiny.smallest(), tiny.largest()))[0] * 1.5
    cfg = SearchConfig(strategy="darts", darts=DartsConfig(alphas=str(alphas_path)),
                       evaluator=EvaluatorConfig(kind="synthetic", vocab_size=8))
    with_lut = Target(name="t", limits=Limits(latency_ms=budget_ms), objectives=list(OBJ), latency_lut=str(lut_path))
    without = dataclasses.replace(with_lut, latency_lut=None)
    derived = dict(build_strategy(cfg, tiny, Fitness(OBJ, with_lut)).derived)
    assert f"latency_ms<={budget_ms:g}" in derived and lut.predict(derived[f"latency_ms<={budget_ms:g}"]) <= budget_ms
    assert not any(k.startswith("latency_ms") for k in dict(build_strategy(cfg, tiny, Fitness(OBJ, without)).derived))
