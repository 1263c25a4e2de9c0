"""`supernet search`: search a trained supernet for one deployment target.

    supernet search -c configs/search/tiny_synthetic.yaml --strategy evolution --target mobile \\
        [--storage postgresql://user@host/db] [--n-trials 100] [--seed 0] [--study-name NAME]

Writes into ``<out_dir>/<study>/`` (``out_dir`` from the config, default ``runs/search``):
``study.db`` (unless ``--storage``), ``pareto.png``, ``best_so_far.png``, ``choices.png``,
``front.json`` (the feasible Pareto front), ``summary.json`` (best and selected arch,
hypervolume, provenance). Running the same command again resumes the study; several
processes with one ``--storage`` (and different ``--seed``) search it together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet search``."""
    p = subparsers.add_parser(
        "search",
        help="search the supernet for a deployment target (study DB, Pareto front, plots)",
        description="Search a space with one strategy for one target; results go to an Optuna study "
        "(SQLite by default, PostgreSQL for many workers). Re-running resumes.",
    )
    p.add_argument("-c", "--config", required=True, type=Path, help="search config YAML (configs/search/*.yaml)")
    p.add_argument("--strategy", help="random | evolution | reinforce | tpe | gp | nsga2 | darts | transfer")
    p.add_argument("--target", help="target name (configs/targets/NAME.yaml) or YAML path")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///<out_dir>/<study>/study.db)")
    p.add_argument("--study-name", help="study to create or resume (default NAME-TARGET-STRATEGY)")
    p.add_argument("--n-trials", type=int, help="evaluated archs the study should hold at the end")
    p.add_argument("--seed", type=int, help="seed of the strategy (give each parallel worker its own)")
    p.add_argument("--out-dir", help="output folder (default from the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=_main)


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL: nothing to hide
        return url


def _main(args: argparse.Namespace) -> int:
    from supernet.config import load_config
    from supernet.search.config import SearchConfig, build_evaluator, build_strategy, default_storage, study_name
    from supernet.search.evaluators import TableEvaluator
    from supernet.search.loop import run_search
    from supernet.search.objectives import Fitness
    from supernet.search.storage import StudyDB
    from supernet.space import SearchSpace

    overrides = {"strategy": args.strategy, "target": args.target, "storage": args.storage, "study_name": args.study_name,
                 "n_trials": args.n_trials, "seed": args.seed, "out_dir": args.out_dir}  # fmt: skip
    cfg = load_config(SearchConfig, args.config, **overrides)
    target = cfg.load_target()
    space = target.restrict(SearchSpace.from_yaml(cfg.space))
    objectives = cfg.resolved_objectives(target)
    fitness = Fitness(objectives, target)
    storage, name = default_storage(cfg), study_name(cfg)
    db = StudyDB(storage, name, space, objectives)
    evaluator = build_evaluator(cfg.evaluator, target)
    strategy = build_strategy(cfg, space, fitness)
    print(f"study {name} in {_redact(storage)}: {len(db.records())} archs so far; target {target.name} ({target.device}); "
          f"objectives {list(objectives)}; strategy {strategy.name}, seed {cfg.seed}", file=sys.stderr)  # fmt: skip
    result = run_search(strategy, evaluator, db, n_trials=cfg.n_trials, seed=cfg.seed, progress=not args.no_progress)
    if isinstance(evaluator, TableEvaluator) and evaluator.fallback is not None:
        evaluator.save()
    out = Path(cfg.out_dir) / name
    return write_outputs(cfg, out, db, result, space, target, objectives, fitness, storage=_redact(storage), plots=not args.no_plots)


def write_outputs(cfg, out: Path, db, result, space, target, objectives, fitness, *, storage: str, plots: bool = True,
                  confirm=None, confirm_tries: int = 5) -> int:
    """Front, summary and plots of a finished search; returns the exit status (1: nothing fits).

    ``confirm(record) -> {"ok": bool, ...}``: a second check of each pick
    (:func:`~supernet.search.targets.select_confirmed`); its records go to ``summary["confirmations"]``.
    """
    import numpy as np

    from supernet.config import to_dict
    from supernet.search.objectives import objective_values
    from supernet.search.pareto import hypervolume, pareto_front, reference_point
    from supernet.search.targets import InfeasibleTargetError, select_confirmed, select_for_target
    from supernet.utils import atomic_write_json, provenance

    records = result.records
    feasible = [r for r in records if fitness.feasible(r.arch, r.metrics)]
    front = pareto_front(feasible, objectives)
    summary: dict = {"study": db.study_name, "storage": storage, "strategy": cfg.strategy, "target": target.name,
                     "objectives": list(objectives), "n_archs": len(records), "n_feasible": len(feasible),
                     "evaluated_now": len(result.evaluated), "duplicates": result.duplicates, "busy": result.busy,
                     "exhausted": result.exhausted, "front_size": len(front)}  # fmt: skip
    if records:
        values = np.array([objective_values(r.metrics, objectives) for r in records])
        ref = reference_point(values)
        summary["hypervolume"] = {"value": hypervolume([objective_values(r.metrics, objectives) for r in front], ref) if front else 0.0,
                                  "reference": ref.tolist(), "of": "feasible Pareto front"}  # fmt: skip
    status, selected = 0, None
    try:
        if confirm is None:
            selected = select_for_target(records, target)
        else:
            summary["confirmations"] = []
            selected, _ = select_confirmed(records, target, confirm, tries=confirm_tries, checks=summary["confirmations"])
        summary["selected"] = selected.to_dict()
        print(f"selected for {target.name}: {selected.arch.id} {selected.arch.describe()}  "
              + "  ".join(f"{o}={selected.metrics[o]:.4g}" for o in objectives if o in selected.metrics))  # fmt: skip
    except (InfeasibleTargetError, ValueError) as e:
        summary["selected"] = None
        summary["selection_error"] = str(e)
        print(f"error: {e}", file=sys.stderr)
        status = 1
    summary["provenance"] = provenance(cfg, cfg.seed)
    summary["provenance"]["target"] = to_dict(target)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "front.json", [r.to_dict() for r in front])
    atomic_write_json(out / "summary.json", summary)
    if plots and records:
        from supernet.search.plots import plot_best_so_far, plot_choice_frequencies, plot_pareto

        if len(objectives) >= 2:
            plot_pareto(records, objectives, out / "pareto.png", fitness=fitness, baseline=cfg.baseline, selected=selected,
                        title=f"{db.study_name}: {objectives[0]} vs {objectives[1]}")  # fmt: skip
        plot_best_so_far({cfg.strategy: [fitness(r.arch, r.metrics) for r in records]}, out / "best_so_far.png",
                         ylabel=f"best feasible {objectives[0]}", title=db.study_name)  # fmt: skip
        top = sorted(records, key=lambda r: fitness(r.arch, r.metrics))[: cfg.top_k]
        plot_choice_frequencies(top, space, out / "choices.png", title=f"choices among the top {len(top)} archs")
    print(f"wrote {out}/ (front.json, summary.json{', plots' if plots and records else ''})", file=sys.stderr)
    return status
