"""The `supernet` command line.

Each stage lives in its own module, which contributes its subcommand through
``register(subparsers)``; the handler is stored as ``func`` and called with the parsed args.
A handler returns an exit status (0 ok, 1 the input was bad, 2 usage error).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "supernet.data.cli",  # supernet data build|check|import-kaldi|download-fsdd
    "supernet.baseline",  # supernet baseline fit|eval
    "supernet.space_cli",  # supernet space count|sample|show
    "supernet.fit_cli",  # supernet fit
    "supernet.profile",  # supernet profile SUBNET_FILE | profile lut
    "supernet.extraction",  # supernet extract CKPT --arch ARCH --out subnet.pt
    "supernet.finetune",  # supernet finetune SUBNET -c configs/finetune/*.yaml --out DIR
    "supernet.export",  # supernet export SUBNET -o MODEL_DIR
    "supernet.transcribe",  # supernet transcribe MODEL_DIR FILE... [--stream --chunk-ms N]
    "supernet.evaluate",  # supernet evaluate CKPT
    "supernet.rank_check",  # supernet rank-check
    "supernet.search_cli",  # supernet search
    "supernet.pipeline.cli",  # supernet run -c configs/run/*.yaml
    "supernet.report.cli",  # supernet report RUN_DIR
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supernet",
        description="Speech architecture search: train one supernet, search it per target, export the winners.",
    )
    from supernet import __version__

    parser.add_argument("--version", action="version", version=f"supernet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from supernet.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
