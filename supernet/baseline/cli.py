"""``supernet baseline fit|eval``: train a hand-designed baseline, score a checkpoint."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["register"]


def _fit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from supernet.baseline.config import load_baseline_config
    from supernet.baseline.train import fit

    cfg = load_baseline_config(args.config)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed, data=replace(cfg.data, seed=args.seed))
    if args.max_minutes is not None:
        cfg = replace(cfg, trainer=replace(cfg.trainer, max_minutes=args.max_minutes))
    if args.max_steps is not None:
        cfg = replace(cfg, trainer=replace(cfg.trainer, max_steps=args.max_steps))
    if args.threads is not None:
        cfg = replace(cfg, trainer=replace(cfg.trainer, num_threads=args.threads))
    out = Path(args.out) if args.out else Path("runs/baseline") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    m = fit(cfg, out, progress=not args.no_progress)
    print(f"\n{cfg.name}: {m['num_parameters'] / 1e6:.2f}M params, {m['steps']} steps in "
          f"{m['train_seconds'] / 60:.1f} min ({m['steps_per_second']} steps/s, stopped by {m['stopped_by']})")
    for split in ("dev", "test"):
        for name, r in m[split].items():
            print(f"  {name:<12} WER {100 * r['wer']:6.2f}%   CER {100 * r['cer']:6.2f}%")
        if len(m[split]) > 1:
            print(f"  {split + ' mean':<12} WER {100 * m[split + '_mean']['wer']:6.2f}%")
    print(f"run folder: {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from supernet.baseline.train import evaluate

    overrides = {"cache_dir": args.cache_dir} if args.cache_dir else None
    res = evaluate(args.checkpoint, split=args.split, data_overrides=overrides, progress=not args.no_progress)
    for name, r in res["sets"].items():
        print(f"{name:<12} WER {100 * r['wer']:6.2f}%   CER {100 * r['cer']:6.2f}%   loss {r['loss']:.3f}")
    if len(res["sets"]) > 1:
        print(f"{'mean':<12} WER {100 * res['mean']['wer']:6.2f}%")
    if args.json:
        from supernet.utils import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``baseline fit`` and ``baseline eval`` to the ``supernet`` command."""
    p = subparsers.add_parser("baseline", help="train / evaluate a hand-designed baseline (Conformer-CTC, LSTM-CTC)",
                              description="Hand-designed CTC baselines: the references every searched model must beat.")
    sub = p.add_subparsers(dest="baseline_command", metavar="{fit,eval}")
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])

    f = sub.add_parser("fit", help="train a baseline from a config",
                       description="Train a baseline; writes checkpoint, resolved config, provenance and metrics "
                                   "into the run folder and prints dev and test WER.")
    f.add_argument("-c", "--config", required=True, help="baseline YAML (configs/baseline/*.yaml)")
    f.add_argument("--out", help="run folder (default runs/baseline/<name>-<time>)")
    f.add_argument("--max-minutes", type=float, help="wall-clock training budget (overrides trainer.max_minutes)")
    f.add_argument("--max-steps", type=int, help="optimiser steps (overrides trainer.max_steps)")
    f.add_argument("--seed", type=int, help="seed of weights, augmentation and batch order")
    f.add_argument("--threads", type=int, help="torch CPU threads (overrides trainer.num_threads)")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")
    f.set_defaults(func=_fit)

    e = sub.add_parser("eval", help="score a baseline checkpoint on dev or test",
                       description="Rebuild a baseline from its checkpoint alone and score it.")
    e.add_argument("checkpoint", help="model.ckpt of a `baseline fit` run")
    e.add_argument("--split", choices=("dev", "test"), default="dev")
    e.add_argument("--cache-dir", help="corpus cache folder, if not the one used in training")
    e.add_argument("--json", help="also write the results to this JSON file")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_eval)


if __name__ == "__main__":  # pragma: no cover
    from supernet.cli import main

    sys.exit(main(["baseline", *sys.argv[1:]]))
