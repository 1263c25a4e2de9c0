"""How many evaluations each search strategy needs to match random search's best of 200.

Two evaluators, the same protocol:

- ``--checkpoint CKPT`` (the issue's setting): a TRAINED speech supernet. Each arch is scored
  with inherited weights (``supernet.evaluate.Evaluator``) on ``--dev-utterances`` utterances of
  the checkpoint's own dev set (a seeded sample, as ``supernet run``'s search stage takes), so
  its WER is real; the target is a params budget (``--params-limit``, counted exactly on the
  extracted subnet), which makes the best arch a trade-off rather than "the largest". Measured
  costs (latency) are left out: they would cost seconds per arch and add timing noise to a
  benchmark of evaluation counts. Results: bench/results/search_strategies_supernet.json.
- without it: the SYNTHETIC stand-in (supernet.search.evaluators.SyntheticEvaluator) on the
  default space (configs/space/default.yaml, ~1.5e18 archs), target ``edge`` (latency <= 30 ms,
  params <= 4M, memory <= 128 MB): a documented formula with a rugged per-choice landscape, NOT a
  speech model; it measures search efficiency on a landscape of that shape. Results:
  bench/results/search_strategies.json.

Either way evaluations go through a cached table (JSONL arch -> metrics under runs/bench/),
filled on demand, so an arch two strategies (or seeds) both propose is scored once, and a rerun
reuses every evaluation already made. Infeasible archs count as failures.

Protocol: random search runs 200 evaluations for each of 5 seeds; the reference is the median
over seeds of its best feasible WER after 200. Every other strategy runs with the same 5 seeds
until its best feasible WER reaches the reference or it has spent ``cap`` evaluations (200; GP:
100, because its acquisition optimisation costs seconds per proposal on 2 cores and the target is
"at most 100" anyway). Reported per strategy: evaluations per seed (None = not reached), median,
and whether the median is at most half of 200 (the target for evolution and BO).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python bench/search_strategies.py --checkpoint runs/fit/gpu_prog/supernet.ckpt
    OMP_NUM_THREADS=1 .venv/bin/python bench/search_strategies.py [--seeds 5] [--strategies evolution,tpe]   # synthetic
"""

from __future__ import annotations

import argparse
import hashlib
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
from supernet.search.evaluators import MetricsAdapter, SyntheticEvaluator, TableEvaluator  # noqa: E402
from supernet.search.loop import run_search  # noqa: E402
from supernet.search.objectives import INFEASIBLE, Fitness  # noqa: E402
from supernet.search.storage import StudyDB  # noqa: E402
from supernet.search.targets import Limits, Target, load_target  # noqa: E402
from supernet.space import SearchSpace  # noqa: E402
from supernet.utils import atomic_write_json, provenance  # noqa: E402

RANDOM_BUDGET = 200
CAPS = {"gp": 100}
STRATEGIES = ["evolution", "tpe", "gp", "reinforce", "nsga2", "transfer", "evolution+prescreen"]


def supernet_setting(checkpoint: Path, dev_utterances: int, params_limit: int):
    """(space, target, evaluator, setting) for the trained-supernet evaluator."""
    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluate import Evaluator
    from supernet.pipeline.stages import dev_subset
    from supernet.train import load_supernet

    net, space, tokenizer, meta = load_supernet(checkpoint)
    dm = SpeechDataModule(meta["config"].data, tokenizer=tokenizer, progress=True)
    dm.setup("validate")
    dev = dev_subset(dm.dev_sets, dev_utterances, 0)
    target = Target(name=f"params<={params_limit}", limits=Limits(params=params_limit), objectives=["wer"],
                    description="bench: a params budget only")
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    setting = {"space": f"the checkpoint's ({space.spec.name})", "space_archs": space.count(),
               "feasible_archs": space.count(max_params=params_limit, vocab_size=tokenizer.vocab_size), "checkpoint": str(checkpoint),
               "checkpoint_sha256": sha, "target": target.name, "objective": "dev wer with inherited weights (feasible archs only)",
               "evaluator": f"trained supernet (supernet.evaluate.Evaluator), {sum(len(v) for v in dev.values())} dev utterances "
                            f"({', '.join(dev)}, seeded sample 0), batch 32; no measured costs", "corpus": meta["config"].data.corpus}
    table = REPO / f"runs/bench/search_table_{sha[:12]}_dev{dev_utterances}.jsonl"
    return space, target, MetricsAdapter(Evaluator(net, dev, tokenizer, batch_size=32)), setting, table


def run_one(name: str, seed: int, space, target, evaluator, n_trials: int, threshold: float | None) -> dict:
    strategy_name, _, extra = name.partition("+")
    # Only the strategy settings of the config matter here: the space, target and evaluator are passed in.
    cfg = SearchConfig(strategy=strategy_name, seed=seed)
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
    ap.add_argument("--checkpoint", type=Path, help="a trained supernet (`supernet fit`'s supernet.ckpt); default: the synthetic stand-in")
    ap.add_argument("--dev-utterances", type=int, default=50, help="with --checkpoint: dev utterances per evaluation")
    ap.add_argument("--params-limit", type=int, default=1_500_000, help="with --checkpoint: the target's params budget")
    ap.add_argument("--table", help="the evaluation cache (default: under runs/bench/, keyed by evaluator)")
    ap.add_argument("--out", help="default: bench/results/search_strategies[_supernet].json")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    seeds = list(range(args.seeds))
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            ap.error(f"--checkpoint {args.checkpoint}: not found; train one with `supernet fit` (e.g. configs/fit/progressive_fsdd.yaml)")
        if args.dev_utterances < 1:
            ap.error(f"--dev-utterances must be >= 1, got {args.dev_utterances}")
        space, target, fallback, setting, table = supernet_setting(args.checkpoint, args.dev_utterances, args.params_limit)
        out_path = args.out or str(REPO / "bench/results/search_strategies_supernet.json")
    else:
        target = load_target("edge")
        space = target.restrict(SearchSpace.from_yaml(REPO / "configs/space/default.yaml"))
        fallback, table = SyntheticEvaluator(seed=0), REPO / "runs/bench/search_table.jsonl"
        setting = {"space": "configs/space/default.yaml", "target": "edge", "objective": "wer (feasible archs only)",
                   "evaluator": "SYNTHETIC stand-in (supernet.search.evaluators.SyntheticEvaluator, seed 0) via a cached "
                                "JSONL table; not a speech model"}
        out_path = args.out or str(REPO / "bench/results/search_strategies.json")
    evaluator = TableEvaluator(args.table or table, fallback=fallback)
    out: dict = {"setting": {**setting, "table": str(evaluator.path), "random_budget": RANDOM_BUDGET, "caps": CAPS, "seeds": seeds},
                 "strategies": {}}
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
        atomic_write_json(out_path, out)  # after each strategy, so a long run leaves partial results
    evaluator.save()
    out["table_rows"] = len(evaluator)
    out["provenance"] = provenance(None, None)
    atomic_write_json(out_path, out)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
