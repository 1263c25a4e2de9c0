"""Evaluate archs with the supernet's inherited weights: the shared evaluator of every search.

Public entry point; the implementation lives in :mod:`supernet.evaluation`.

    from supernet.evaluate import Evaluator
    ev = Evaluator(net, dm.dev_sets, dm.tokenizer, batch_size=32, cache_path="runs/eval/cache.jsonl")
    m = ev.evaluate(arch)        # Metrics: a mapping {"wer", "cer", "loss", "wer/set/dev.de", "wer/lang/de", "params", ...}
    m.wer, m.sets["dev.de"].cer, m.to_dict()

- :class:`Evaluator`: WER/CER/loss per dev set and language (mean over sets = multilingual
  fitness), batched, features cached per front-end, results cached by ``arch.id`` (memory and
  optionally a JSON-lines file); ``score_model`` scores any static subnet with the same code.
- :func:`score_subnet`: that scoring without a supernet (fine-tuned or standalone subnets).
- :func:`progressive_evaluate`: inherited weights -> short fine-tune -> long fine-tune, with
  successive halving between stages.
- :func:`rank_correlations`: Kendall tau / Spearman with bootstrap intervals.
- :func:`train_subnet`: train or fine-tune a static subnet with early stopping.

Importing this module is cheap (the CLI imports it for ``--help``); names load on first use.

Command line::

    supernet evaluate CKPT (--archs FILE | --sample N [--seed S]) [--split dev|test] [--batch-size B]
                      [--cache FILE] [--out results.jsonl] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
from pathlib import Path

from supernet.config import ConfigError

_EXPORTS = {
    "results": ["Score", "Metrics", "GroupOutput", "summarize"],
    "batches": ["EvalBatch", "make_batches", "FeatureCache"],
    "store": ["ResultStore"],
    "evaluator": ["Evaluator", "score_subnet", "score_batches", "utterance_losses", "batch_stat_modules",
                  "recalibrate_batch_stats"],
    "training": ["TrainConfig", "TrainResult", "train_subnet"],
    "progressive": ["StageConfig", "ProgressiveConfig", "ProgressiveResult", "successive_halving",
                    "progressive_evaluate"],
    "ranking": ["RankStat", "bootstrap_ci", "rank_correlations", "stratified_sample"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "read_archs", "register"])


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"supernet.evaluation.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'supernet.evaluate' has no attribute {name!r}")


def read_archs(path: str | Path) -> list:
    """Archs from a JSON-lines file: one arch dict per line, or rows with an ``"arch"`` entry
    (as the evaluator's cache, the search's tables and ``supernet space sample`` write)."""
    from supernet.space import Arch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: archs file not found")
    archs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            archs.append(Arch.from_dict(row["arch"] if "arch" in row else row))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}:{n}: not an arch (a JSON object with the Arch fields, or {{\"arch\": ...}}): {e}") from e
    if not archs:
        raise ConfigError(f"{path}: no archs in the file")
    return archs


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluation.evaluator import Evaluator
    from supernet.train import load_supernet
    from supernet.utils import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    net, space, tokenizer, meta = load_supernet(args.checkpoint)
    if args.archs:
        archs = read_archs(args.archs)
    else:
        rng = random.Random(args.seed)
        archs = [space.sample(rng) for _ in range(args.sample)]
    for a in archs:
        net.check_arch(a)
    if args.predictor_cv is not None and (args.predictor_cv < 2 or len(archs) < 2 * args.predictor_cv):
        print(f"error: --predictor-cv {args.predictor_cv}: give at least 2 folds and twice as many archs as folds "
              f"(got {len(archs)} archs); raise --sample or lower the folds", file=sys.stderr)
        return 2
    dm = SpeechDataModule(meta["config"].data, tokenizer=tokenizer, progress=True)
    dm.setup("validate" if args.split == "dev" else "test")
    sets = dm.dev_sets if args.split == "dev" else dm.test_sets
    ev = Evaluator(net, sets, tokenizer, batch_size=args.batch_size, cache_path=args.cache, progress=True)
    results = ev.evaluate_many(archs)
    rows = [json.dumps({"arch_id": a.id, "describe": a.describe(), "arch": a.to_dict(), "metrics": m.to_dict()},
                       sort_keys=True) for a, m in zip(archs, results)]
    for a, m in zip(archs, results):
        print(f"{a.id}  wer {m.wer:.4f}  cer {m.cer:.4f}  loss {m.loss:.4f}  params {m['params']:.0f}  {a.describe()}")
    if args.out:
        atomic_write_text(args.out, "\n".join(rows) + "\n")
        print(f"wrote {args.out}")
    print(f"{ev.forwards} evaluated, {ev.hits} from the cache", file=sys.stderr)
    if args.predictor_cv:
        from supernet.predictor import WERPredictor

        cv = WERPredictor(space, seed=args.seed).cross_validate(archs, [m.wer for m in results], folds=args.predictor_cv,
                                                                seed=args.seed)
        print(f"WER predictor, {cv.folds}-fold cross-validation over {cv.n} archs: Kendall tau {cv.kendall_tau:+.3f} "
              f"(per fold {cv.fold_tau_mean:+.3f} +- {cv.fold_tau_std:.3f}), Spearman {cv.spearman:+.3f}, MAE {cv.mae:.4f}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet evaluate``."""
    p = subparsers.add_parser("evaluate", help="score archs with a trained supernet's inherited weights (dev WER/CER/loss)",
                              description="Score archs on the dev (or test) sets of a trained supernet's corpus with "
                                          "inherited weights; per set and per language.")
    p.add_argument("checkpoint", help="supernet.ckpt of a `supernet fit` run")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs", help="JSON-lines file of archs (arch dicts, or rows with an 'arch' entry)")
    which.add_argument("--sample", type=int, help="evaluate N random archs of the supernet's space")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--split", choices=("dev", "test"), default="dev")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cache", help="JSON-lines result cache, reused across runs")
    p.add_argument("--out", help="write the results here (JSON lines)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--predictor-cv", type=int, metavar="FOLDS",
                   help="also fit the WER predictor (supernet.predictor) on these results and print its FOLDS-fold "
                        "cross-validated Kendall tau")
    p.set_defaults(func=_cmd_evaluate)
