"""Small helpers shared by the benchmarks in bench/: thread pinning, contention, result files.

Every benchmark writes ``bench/results/NAME.json`` through :func:`write_result`, which adds the
date, machine, library versions, git commit and the load the machine was under, and writes
atomically (a crashed run never leaves half a result). Timing numbers mean little without
those, so the helper adds them rather than each script.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["ROOT", "RESULTS", "pin_threads", "cpu_model", "git_state", "Contention", "write_result"]


def pin_threads(n: int) -> int:
    """Use ``n`` torch intra-op threads (and one inter-op thread when still possible).

    ``OMP_NUM_THREADS`` should match (set it on the command line: it must be set before torch
    starts its thread pool); a mismatch is reported in the result rather than silently ignored.
    """
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set or parallel work already ran: keep what is there
        pass
    return torch.get_num_threads()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state() -> dict[str, Any]:
    """Commit of the working tree and whether it has uncommitted changes (None outside git).

    The benchmarks' own outputs (``bench/results/``) do not count: a result written beside an
    earlier one (the headline's plot before its JSON) would otherwise mark every run dirty."""
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--", ".", ":(exclude)bench/results")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


class Contention:
    """Measures how much of the machine a benchmark actually got.

    ``cpu_share`` = process CPU seconds / (wall seconds x threads): about 0.9-1.0 on an idle
    machine for well-parallelised work, lower when other processes take the cores. Load
    averages before and after are recorded too.
    """

    def __init__(self, threads: int):
        self.threads = threads
        self.load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()

    def report(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall0
        cpu = time.process_time() - self._cpu0
        return {
            "threads": self.threads,
            "wall_seconds": round(wall, 1),
            "process_cpu_seconds": round(cpu, 1),
            "cpu_share": round(cpu / (wall * self.threads), 3) if wall > 0 else None,
            "load_average_before": self.load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "cpu_count": os.cpu_count(),
        }


def write_result(name: str, payload: dict[str, Any], config: Any = None, seed: int | None = None,
                 path: str | Path | None = None) -> Path:
    """Write ``bench/results/NAME.json`` (or ``path``) atomically with date, machine and versions.

    Args:
        name: benchmark name (file stem).
        payload: the benchmark's own numbers.
        config: the configuration measured (dataclass or dict), recorded in full.
        seed: the seed used.
        path: write here instead of bench/results/NAME.json.

    Returns:
        The path written.
    """
    from supernet.utils import atomic_write_json, provenance

    prov = provenance(config, seed)
    prov["machine"]["cpu_model"] = cpu_model()
    prov["machine"]["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    doc = {
        "benchmark": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": git_state(),
        **payload,
        "provenance": prov,
    }
    out = Path(path) if path is not None else RESULTS / f"{name}.json"
    atomic_write_json(out, doc)
    return out
