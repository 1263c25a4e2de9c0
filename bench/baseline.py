"""Baseline benchmark: Conformer-CTC on FSDD connected digits, 2 CPU threads, fixed wall budget.

Trains ``configs/baseline/conformer_ctc.yaml`` for ``--minutes`` of wall-clock time (default 10)
with 2 torch threads, then reports parameters, steps, dev WER (held-in speakers, held-out takes)
and test WER (the unseen speaker, yweweler). Target: unseen-speaker WER <= 15%.

Writes bench/results/baseline.json (with date, machine, versions and the contention observed)
and keeps the run folder (checkpoint, config, logs) under runs/bench/.

Usage (exactly this, on an otherwise idle machine):
    OMP_NUM_THREADS=2 .venv/bin/python bench/baseline.py [--minutes 10] [--config ...] [--seed 0] [KEY=VALUE ...]

``KEY=VALUE`` overrides the config (the value read as YAML, as ``supernet fit`` takes them),
e.g. the supernet's raw front-end (no per-utterance normalisation, no floor, mel filters up to
Nyquist):
    ... bench/baseline.py --name baseline_rawfeat model.features.normalize=none \
        model.features.floor_db=null model.features.f_max=null
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, Contention, pin_threads, write_result

TARGET_TEST_WER = 0.15


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs/baseline/conformer_ctc.yaml")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="baseline", help="result name: bench/results/NAME.json")
    ap.add_argument("--run-dir", type=Path, help="run folder (default runs/bench/NAME-<time>)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (value read as YAML)")
    args = ap.parse_args(argv)

    threads = pin_threads(args.threads)
    from supernet.baseline.config import BaselineConfig
    from supernet.baseline.train import fit
    from supernet.config import from_dict, merged_config

    data, where = merged_config([args.config], args.overrides)
    cfg = from_dict(BaselineConfig, data, where=where)
    cfg = replace(
        cfg, seed=args.seed, data=replace(cfg.data, seed=args.seed),
        # The wall budget ends the run; max_steps only guards against a runaway config.
        trainer=replace(cfg.trainer, max_minutes=args.minutes, max_steps=max(cfg.trainer.max_steps, 10**6),
                        num_threads=threads),
    )
    run_dir = args.run_dir or ROOT / "runs/bench" / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    contention = Contention(threads)
    m = fit(cfg, run_dir, progress=not args.no_progress)
    load = contention.report()

    dev = m["dev_mean"]
    test = m["test_mean"]
    result = {
        "config_file": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
        "overrides": args.overrides,
        "budget_minutes": args.minutes,
        "num_parameters": m["num_parameters"],
        "steps": m["steps"],
        "train_seconds": m["train_seconds"],
        "steps_per_second": m["steps_per_second"],
        "dev_wer": dev["wer"],
        "dev_cer": dev["cer"],
        "test_wer": test["wer"],
        "test_cer": test["cer"],
        "dev_sets": m["dev"],
        "test_sets": m["test"],
        "target_test_wer": TARGET_TEST_WER,
        "target_met": test["wer"] <= TARGET_TEST_WER,
        "contention": load,
        "run_dir": str(run_dir),
    }
    out = write_result(args.name, result, config=cfg, seed=args.seed)
    print(f"\n{cfg.name}: {m['num_parameters'] / 1e6:.2f}M params, {m['steps']} steps in {m['train_seconds'] / 60:.1f} min "
          f"({m['steps_per_second']} steps/s, {threads} threads, CPU share {load['cpu_share']}, "
          f"load {load['load_average_before'][0] if load['load_average_before'] else '?'})")
    print(f"dev WER (held-in speakers): {100 * dev['wer']:.2f}%   CER {100 * dev['cer']:.2f}%")
    print(f"test WER (unseen speaker):  {100 * test['wer']:.2f}%   CER {100 * test['cer']:.2f}%   "
          f"target <= {100 * TARGET_TEST_WER:.0f}%: {'met' if result['target_met'] else 'NOT met'}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
