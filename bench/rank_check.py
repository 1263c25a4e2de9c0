"""Ranking fidelity (issue #5): supernet inherited-weight WER vs standalone training, K = 12.

Trains the supernet if its checkpoint is missing (``supernet fit -c configs/fit/progressive.yaml``:
progressive shrinking on the elastic Conformer space, the strategy that keeps subnets closest to
standalone quality), then runs ``supernet rank-check -c configs/rank_check/conformer.yaml``:
12 archs stratified by parameter count, each trained standalone from scratch on the same corpus
until its dev loss stops improving (patience 5 evaluations, one every 100 steps; capped at
4000 steps / 20 minutes), and reports Kendall tau and Spearman rho on dev WER and loss with 95 %
bootstrap intervals. Target: tau >= 0.8 on WER, with every reference converged.

Long: up to 12 x 20 minutes of reference training on 2 cores plus the supernet's training. The
references are saved one by one (runs/rank_check/conformer/references/), so an interrupted run
picks up where it stopped when started again.

Writes bench/results/rank_check.json (the correlations, convergence, budget, machine, load) and
keeps the full report in runs/rank_check/conformer/ (report.md, scatter.png, curves.png).

Usage (on an otherwise idle machine):
    OMP_NUM_THREADS=2 .venv/bin/python bench/rank_check.py [--fit-config configs/fit/progressive.yaml]
        [--fit-override trainer.max_minutes=null ...] [--config configs/rank_check/conformer.yaml] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import ROOT, Contention, pin_threads, write_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs/rank_check/conformer.yaml")
    ap.add_argument("--fit-config", type=Path, default=ROOT / "configs/fit/progressive.yaml",
                    help="trains the supernet when the config's checkpoint does not exist yet")
    ap.add_argument("--fit-override", action="append", default=None, metavar="KEY=VALUE",
                    help="override of the fit config (repeatable); default trainer.max_minutes=null: every phase runs "
                         "to its step count instead of stopping at the config's 5-minute smoke budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="rank-check config overrides")
    args = ap.parse_args(argv)

    threads = pin_threads(args.threads)
    from supernet.config import to_dict
    from supernet.rank_check import format_stat, resolve_config, run

    cfg = resolve_config([str(args.config)], [*args.overrides, f"num_threads={threads}"])
    contention = Contention(threads)
    fit_info = None
    if cfg.supernet is not None and not Path(cfg.supernet).is_file():
        from supernet.fit_cli import resolve_config as resolve_fit
        from supernet.training.run import fit

        fit_overrides = args.fit_override if args.fit_override is not None else ["trainer.max_minutes=null"]
        fit_cfg = resolve_fit([str(args.fit_config)], [*fit_overrides, f"trainer.num_threads={threads}"],
                              out=str(Path(cfg.supernet).parent))
        print(f"{cfg.supernet} not found: training the supernet with {args.fit_config}", file=sys.stderr, flush=True)
        result = fit(fit_cfg)
        fit_info = {"config": str(args.fit_config), "overrides": fit_overrides, "summary": result.summary}
    res = run(cfg)
    load = contention.report()
    r = res.report
    payload = {
        "report_dir": str(res.out_dir),
        "num_archs": r["num_archs"], "converged": r["converged"], "target": r["target"],
        "correlations": r["correlations"], "reference_budget": r["reference_budget"],
        "reference_seconds": r["reference_seconds"], "supernet": r["supernet"], "supernet_training": fit_info,
        "archs": [{k: a[k] for k in ("arch_id", "describe", "params", "supernet", "reference", "best_step", "final_step",
                                     "stopped")} for a in r["archs"]],
        "contention": load,
    }
    out = write_result("rank_check", payload, config=to_dict(cfg), seed=cfg.seed)
    for metric in ("wer", "loss"):
        c = r["correlations"][metric]
        print(f"dev {metric:4s}: Kendall tau {format_stat(c['kendall_tau'])}, Spearman {format_stat(c['spearman'])}")
    print(f"references converged: {r['converged']}/{r['num_archs']}; target met: {r['target']['met']} "
          f"(valid test: {r['target']['valid']}); wrote {out} and {res.out_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
