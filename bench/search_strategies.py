"""How many evaluations each search strategy needs to match random search's best of 200.

Setting: the default space (configs/space/default.yaml, ~1.5e18 archs), target ``edge``
(latency <= 30 ms, params <= 4M, memory <= 128 MB), objective: dev WER of archs that meet the
target (infeasible archs count as failures). Evaluations come from a cached table
(``runs/bench/search_table.jsonl``, JSONL arch -> metrics) filled on demand by the SYNTHETIC
stand-in evaluator (supernet.search.evaluators.SyntheticEvaluator): a documented formula with a
rugged per-choice landscape, NOT a trained speech supernet (none is trained and fast enough to
label thousands of archs on this machine). What this measures is search efficiency on a
landscape of that shape, not speech quality.

Protocol: random search runs 200 evaluations for each of 5 seeds; the reference is the median
over seeds of its best feasible WER after 200. Every other strategy runs with the same 5 seeds
until its best feasible WER reaches the reference or it has spent ``cap`` evaluations (200; GP:
100, because its acquisition optimisation costs seconds per proposal on 2 cores and the target is
"at most 100" anyway). Reported per strategy: evaluations per seed (None = not reached), median,
and whether the median is at most half of 200 (the target for evolution and BO).

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/search_strategies.py [--seeds 5] [--strategies evolution,tpe]
Writes bench/results/search_strategies.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from supernet.search.config import SearchConfig, build_strategy  # noqa: E402
from supernet.search.evaluators import SyntheticEvaluator, TableEvaluator  # noqa: E402
from supernet.search.loop import run_search  # noqa: E402
from supernet.search.objectives import INFEASIBLE, Fitness  # noqa: E402
from supernet.search.storage import StudyDB  # noqa: E402
from supernet.search.targets import load_target  # noqa: E402
from supernet.space import SearchSpace  # noqa: E402
from supernet.utils import atomic_write_json, provenance  # noqa: E402

RANDOM_BUDGET = 200
CAPS = {"gp": 100}
STRATEGIES = ["evolution", "tpe", "gp", "reinforce", "nsga2", "transfer", "evolution+prescreen"]


def run_one(name: str, seed: int, space, target, evaluator, n_trials: int, threshold: float | None) -> dict:
    strategy_name, _, extra = name.partition("+")
    cfg = SearchConfig(space="configs/space/default.yaml", target="edge", strategy=strategy_name, seed=seed)
    cfg.prescreen.enabled = extra == "prescreen"
    fitness = Fitness(("wer",), target)
    db = StudyDB(None, f"{name}-{seed}", space, ("wer",))
    strategy = build_strategy(cfg, space, fitness, seed)
    curve: list[float] = []

    def stop(rec, f) -> bool:
        curve.append(f)
        return threshold is not None and min(curve) <= threshold

    t0 = time.perf_counter()
    res = run_search(strategy, evaluator, db, n_trials=n_trials, seed=seed, progress=False, stop_when=stop)
    best = min(curve) if curve else float("inf")
    reached = threshold is not None and best <= threshold
    return {"seed": seed, "evaluations": len(curve), "reached_at": len(curve) if reached else None,
            "best_wer": best if best < INFEASIBLE else None, "duplicates": res.duplicates, "seconds": time.perf_counter() - t0,
            "curve": [round(c, 5) if c < INFEASIBLE else None for c in curve]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--table", default=str(REPO / "runs/bench/search_table.jsonl"))
    ap.add_argument("--out", default=str(REPO / "bench/results/search_strategies.json"))
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    target = load_target("edge")
    space = target.restrict(SearchSpace.from_yaml(REPO / "configs/space/default.yaml"))
    evaluator = TableEvaluator(args.table, fallback=SyntheticEvaluator(seed=0))
    seeds = list(range(args.seeds))
    out: dict = {"setting": {"space": "configs/space/default.yaml", "target": "edge", "objective": "wer (feasible archs only)",
                             "evaluator": "SYNTHETIC stand-in (supernet.search.evaluators.SyntheticEvaluator, seed 0) via a cached "
                                          "JSONL table; not a speech model", "random_budget": RANDOM_BUDGET, "caps": CAPS,
                             "seeds": seeds}, "strategies": {}}  # fmt: skip
    print(f"random search, {RANDOM_BUDGET} evaluations x {len(seeds)} seeds", flush=True)
    rand = [run_one("random", s, space, target, evaluator, RANDOM_BUDGET, None) for s in seeds]
    bests = [r["best_wer"] for r in rand]
    threshold = statistics.median(bests)
    out["reference"] = {"random_best_of_200_per_seed": bests, "threshold_wer": threshold}
    out["strategies"]["random"] = {"runs": rand, "median_evaluations": None}
    print(f"  best of 200 per seed {[round(b, 4) for b in bests]}; reference (median) {threshold:.4f}", flush=True)
    for name in [s for s in args.strategies.split(",") if s]:
        cap = CAPS.get(name.partition("+")[0], RANDOM_BUDGET)
        runs = []
        for s in seeds:
            r = run_one(name, s, space, target, evaluator, cap, threshold)
            runs.append(r)
            print(f"  {name} seed {s}: {r['reached_at'] or f'>{cap}'} evaluations ({r['seconds']:.0f} s)", flush=True)
        need = [r["reached_at"] if r["reached_at"] is not None else float("inf") for r in runs]
        med = statistics.median(need)
        out["strategies"][name] = {
            "cap": cap, "runs": runs, "evaluations_to_reference": [r["reached_at"] for r in runs],
            "median_evaluations": med if med != float("inf") else None, "reached": sum(r["reached_at"] is not None for r in runs),
            "at_most_half_of_random": med <= RANDOM_BUDGET / 2,
        }  # fmt: skip
        print(f"{name}: median {med} evaluations (random: {RANDOM_BUDGET}); at most half: {med <= RANDOM_BUDGET / 2}", flush=True)
        evaluator.save()
        out["provenance"] = provenance(None, None)
        atomic_write_json(args.out, out)  # after each strategy, so a long run leaves partial results
    evaluator.save()
    out["table_rows"] = len(evaluator)
    out["provenance"] = provenance(None, None)
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
