"""`supernet fit`: train a supernet from a YAML config (configs/fit/*.yaml).

    supernet fit -c configs/fit/sandwich.yaml                       # writes runs/fit/sandwich/
    supernet fit -c configs/fit/darts.yaml trainer.max_steps=50 seed=1
    supernet fit -c configs/fit/sandwich.yaml --print_config > my.yaml   # every default filled in
    supernet fit -c my.yaml --resume runs/fit/sandwich/checkpoints/last.ckpt

As LightningCLI: several ``-c`` files merge in order (later keys win, mappings merge key by
key), ``key.sub=value`` overrides apply last (values are read as YAML: ``5``, ``null``,
``[a, b]``), and ``--print_config`` prints the resolved config and exits.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "resolve_config"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet fit``."""
    p = subparsers.add_parser("fit", help="train a supernet (sandwich, spos, progressive, darts, gdas)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", action="append", default=[], metavar="YAML",
                   help="fit config (configs/fit/*.yaml); repeat to merge several")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a config field, e.g. trainer.max_steps=20")
    p.add_argument("--print_config", "--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue from a checkpoint of this run (checkpoints/last.ckpt)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/fit/<name>)")
    p.set_defaults(func=_fit)


def resolve_config(configs: list[str], overrides: list[str] = (), out: str | None = None):
    """Merge the YAML files and ``key=value`` overrides into a :class:`FitConfig`."""
    from supernet.config import from_dict, merged_config
    from supernet.training.config import FitConfig

    data, where = merged_config(configs, overrides, out)
    return from_dict(FitConfig, data, where=where)


def _fit(args: argparse.Namespace) -> int:
    import yaml

    from supernet.config import to_dict

    cfg = resolve_config(args.config, args.overrides, args.out)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
        return 0
    from supernet.training.module import NonFiniteLossError
    from supernet.training.run import fit

    try:
        result = fit(cfg, resume=args.resume)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result is None:  # a DDP rank other than 0
        return 0
    dev = result.summary["dev"]
    print(f"run folder: {result.run_dir}")
    print(f"checkpoint: {result.checkpoint}")
    for path, r in dev.items():
        print(f"dev WER {path:9s} {100 * r['wer']:6.2f}%  ({result.summary['archs'][path]['describe']})")
    if result.summary.get("nonfinite_steps"):
        print(f"skipped {result.summary['nonfinite_steps']} non-finite step(s)")
    return 0
