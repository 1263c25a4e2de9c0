"""Run every benchmark in bench/ (each writes bench/results/NAME.json), one after another.

Usage: `make bench` or `OMP_NUM_THREADS=2 .venv/bin/python bench/run_all.py [NAME ...]`.
Benchmarks time things, so run them on an otherwise idle machine; BENCHMARKS.md summarises the
results with machine and date.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py", "common.py"}
# Hours long (K standalone references to convergence; the headline's whole run): run only when named.
ONLY_WHEN_NAMED = {"rank_check.py", "headline.py"}


def main(argv: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_"))
    if argv:
        wanted = {a.removesuffix(".py") for a in argv}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            print(f"unknown benchmark(s) {sorted(unknown)}; available: {[p.stem for p in scripts]}", file=sys.stderr)
            return 2
        scripts = [p for p in scripts if p.stem in wanted]
    else:
        scripts = [p for p in scripts if p.name not in ONLY_WHEN_NAMED]
    failed = []
    for i, script in enumerate(scripts, 1):
        print(f"[{i}/{len(scripts)}] {script.name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"[{i}/{len(scripts)}] {script.name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
