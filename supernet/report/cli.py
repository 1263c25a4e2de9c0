"""`supernet report RUN_DIR`: write RUN_DIR/report/report.md and its PNGs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet report``."""
    p = subparsers.add_parser(
        "report",
        help="write a run's report (Markdown + PNG): Pareto fronts, selected models, error analysis, compute",
        description="Read a run directory written by `supernet run` and write RUN_DIR/report/report.md with its plots.",
    )
    p.add_argument("run_dir", type=Path, help="run directory (e.g. runs/quickstart)")
    p.add_argument("-o", "--out", type=Path, help="output folder (default RUN_DIR/report; replaced as a whole)")
    p.add_argument("--top", type=int, default=5, help="archs per target in the side-by-side table (default 5)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from supernet.report import write_report

    if args.top < 1:
        print(f"error: --top must be >= 1, got {args.top}", file=sys.stderr)
        return 2
    path = write_report(args.run_dir, args.out, top_n=args.top)
    print(f"wrote {path}", file=sys.stderr)
    return 0
