"""`supernet run -c configs/run/NAME.yaml [--out RUN] [KEY=VALUE ...]`: the whole chain in one command.

    supernet run -c configs/run/quickstart.yaml                        # what `make demo` runs
    supernet run -c configs/run/quickstart.yaml search.set.n_trials=60 # reruns search and what follows
    supernet run -c configs/run/tiny.yaml --out /tmp/tiny --print_config

Every stage's config is resolved and checked before the first stage starts. Running the same
command again skips the stages that are current and resumes an interrupted one (see
``pydoc supernet.pipeline.run`` for the run directory and the stages).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet run``."""
    p = subparsers.add_parser("run", help="the whole chain: corpus, baseline, fit, search, fine-tune, export, eval, report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, metavar="YAML", help="run config (configs/run/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a run config field, e.g. search.max_minutes=1")
    p.add_argument("--out", default=None, metavar="RUN", help="run directory (default: out_dir of the config)")
    p.add_argument("--print_config", "--print-config", action="store_true",
                   help="print the resolved run config and every stage's resolved config, then exit")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import yaml

    from supernet.config import to_dict
    from supernet.pipeline.config import load_run_config, resolve_run, stage_configs
    from supernet.pipeline.run import check_inputs, results_lines, run_pipeline
    from supernet.pipeline.stages import StageError

    run, raw = load_run_config(args.config, args.overrides, args.out)
    where = args.config + (f" (overrides: {' '.join(args.overrides)})" if args.overrides else "")
    resolved = resolve_run(run, where)
    check_inputs(resolved)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump({**to_dict(run), "stages": stage_configs(resolved)}, sort_keys=False, allow_unicode=True))
        return 0
    try:
        run_pipeline(resolved, raw)
    except StageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(results_lines(resolved.out, list(resolved.targets))))
    return 0
