"""``supernet rank-check``: does the supernet rank archs as standalone training would?

Public entry point; the implementation lives in :mod:`supernet.evaluation.rank_check`.

    supernet rank-check -c configs/rank_check/tiny.yaml
    supernet rank-check -c configs/rank_check/fsdd.yaml supernet=runs/fit/sandwich/supernet.ckpt num_archs=12

Samples K archs stratified by parameter count, trains each standalone from scratch on the same
data until dev loss stops improving (patience, under a step / time cap), and compares the
standalone dev WER and loss with the supernet's inherited-weight ones: Kendall tau and Spearman
rho with bootstrap confidence intervals, a scatter plot, the references' learning curves, and a
JSON + markdown report in the output folder. Several ``-c`` files merge in order and
``key.sub=value`` overrides apply last, as in ``supernet fit``.

    from supernet.rank_check import load_rank_check_config, run
    result = run(load_rank_check_config("configs/rank_check/tiny.yaml"))
    result.report["correlations"]["wer"]["kendall_tau"]

Importing this module is cheap (the CLI imports it for ``--help``); names load on first use.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_NAMES = ["RankCheckConfig", "RankCheckResult", "load_rank_check_config", "rank_check", "run", "format_stat", "TARGET_TAU",
          "TARGET_K"]

__all__ = sorted([*_NAMES, "register", "resolve_config"])


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module("supernet.evaluation.rank_check"), name)
    raise AttributeError(f"module 'supernet.rank_check' has no attribute {name!r}")


def resolve_config(configs: list[str], overrides: list[str] = (), out: str | None = None):
    """Merge YAML files and ``key=value`` overrides into a ``RankCheckConfig``."""
    from supernet.config import from_dict, merged_config  # `supernet fit`'s syntax
    from supernet.evaluation.rank_check import RankCheckConfig

    data, where = merged_config(configs, overrides, out)
    return from_dict(RankCheckConfig, data, where=where)


def _cmd(args: argparse.Namespace) -> int:
    from supernet.evaluation.rank_check import TARGET_K, TARGET_TAU, run

    cfg = resolve_config(args.config, args.overrides, args.out)
    res = run(cfg)
    r = res.report
    if "shard" in r:  # a shard trains references only; the run without `shard` writes the report
        done = ", ".join(f"{x['arch_id']} (step {x['final_step']}, {x['stopped']}, WER {x['best']['wer']:.3f})"
                         for x in r["references"])
        print(f"shard {r['shard']}: {len(r['references'])} references in {res.out_dir / 'references'}: {done}")
        return 0
    from supernet.evaluation.rank_check import format_stat

    for metric in ("wer", "loss"):
        c = r["correlations"][metric]
        print(f"dev {metric:4s}  Kendall tau {format_stat(c['kendall_tau'])}  Spearman {format_stat(c['spearman'])}  "
              f"({r['confidence']:.0%} bootstrap CI, K={r['num_archs']})")
    verdict = "met" if r["target"]["met"] else "not met"
    if not r["target"]["valid"]:
        verdict += " (not a valid test: too few archs or unconverged references)"
    print(f"references converged: {r['converged']}/{r['num_archs']}; target tau >= {TARGET_TAU} with K >= {TARGET_K}: {verdict}")
    print(f"report: {res.out_dir / 'report.md'}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet rank-check``."""
    p = subparsers.add_parser("rank-check", help="compare the supernet's ranking of archs with standalone-trained ones",
                              description=__doc__.split("\n\n    from")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", action="append", default=[], metavar="YAML", required=True,
                   help="rank-check config (configs/rank_check/*.yaml); repeat to merge several")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override a field, e.g. num_archs=4 reference.max_steps=50")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/rank_check/<name>)")
    p.set_defaults(func=_cmd)
