"""``RUN/stages.json``: what each stage of a run was computed from, and whether it is current.

Every stage has a *hash*: :func:`supernet.config.config_hash` of its resolved config together
with the hashes of the stages it reads from. Hashes are computed from configs alone, before
anything runs, so a changed setting changes the hash of its stage and of everything downstream.

    {"format": "supernet-run-stages/1",
     "stages": {"fit": {"hash": "...", "deps": {"corpus": "..."}, "status": "done",
                        "started": "...", "finished": "...", "seconds": 412.3, "cpu_seconds": 801.0,
                        "outputs": ["fit/supernet.ckpt", ...], "attempts": 1}, ...}}

A stage is *current* when its entry is ``done`` with the same hash and all its outputs exist; a
rerun skips it. An entry ``running`` with the same hash is a stage that was interrupted (killed,
Ctrl-C); an entry ``failed`` raised an error, kept in its ``error`` field. Either resumes where it
can on the next run (fit from its last checkpoint, search from its study DB). The file is
rewritten atomically after every change.
"""

from __future__ import annotations

import json
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from supernet.config import ConfigError, config_hash
from supernet.utils import atomic_write_json

__all__ = ["FORMAT", "STAGES_FILE", "stage_hash", "Ledger", "cpu_seconds"]

FORMAT = "supernet-run-stages/1"
STAGES_FILE = "stages.json"
# Fields that say where or how verbosely a stage runs, not what it computes.
_NOT_HASHED = frozenset({"out_dir", "progress", "storage", "study_name"})


def _hashable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _hashable(v) for k, v in obj.items() if k not in _NOT_HASHED}
    if isinstance(obj, list):
        return [_hashable(v) for v in obj]
    return obj


def stage_hash(config: Any, deps: dict[str, str]) -> str:
    """Hash of a stage: its resolved config (plain dict; location fields left out) and its deps' hashes."""
    return config_hash({"config": _hashable(config), "deps": dict(sorted(deps.items()))})


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (e.g. espeak-ng)."""
    own = time.process_time()
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + ch.ru_utime + ch.ru_stime


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Decision:
    """What to do with a stage: ``skip`` (current), ``resume`` (interrupted, same hash) or ``run``."""

    action: str
    reason: str


class Ledger:
    """Reads and writes ``RUN/stages.json``.

    Args:
        run_dir: the run directory.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STAGES_FILE
        self.stages: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{self.path}: not valid JSON ({e}); delete it to recompute every stage") from None
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ConfigError(f"{self.path}: not a stages file of format {FORMAT}; delete it to recompute every stage")
            self.stages = dict(data.get("stages", {}))

    def save(self) -> None:
        atomic_write_json(self.path, {"format": FORMAT, "stages": self.stages})

    def decide(self, name: str, hash_: str, outputs: list[str]) -> Decision:
        """Whether stage ``name`` with ``hash_`` is current, can resume, or must run."""
        entry = self.stages.get(name)
        if entry is None:
            return Decision("run", "never run")
        if entry.get("hash") != hash_:
            return Decision("run", f"config changed (hash {entry.get('hash')} -> {hash_})")
        if entry.get("status") == "done":
            missing = [o for o in outputs if not (self.run_dir / o).exists()]
            if not missing:
                return Decision("skip", "current")
            return Decision("run", f"output(s) missing: {', '.join(missing)}")
        if entry.get("status") == "failed":
            return Decision("resume", f"failed before: {entry.get('error', '?')}")
        return Decision("resume", "interrupted")

    @contextmanager
    def record(self, name: str, hash_: str, deps: dict[str, str], outputs: list[str]) -> Iterator[dict[str, Any]]:
        """Mark ``name`` running (saved at once), run the block, then mark it done with its times.

        The yielded dict may receive extra fields (e.g. ``resumed``, ``note``). On an error the
        entry becomes ``failed`` with the message in ``error``; on an interruption (Ctrl-C, a
        signal) it stays ``running``; either way it keeps the time spent so far, and the next run
        resumes it.
        """
        prev = self.stages.get(name, {})
        same = prev.get("hash") == hash_
        entry: dict[str, Any] = {"hash": hash_, "deps": deps, "status": "running", "started": _now(),
                                 "attempts": (prev.get("attempts", 0) if same else 0) + 1,
                                 # time spent by earlier, interrupted attempts of the same config
                                 "seconds": prev.get("seconds", 0.0) if same and prev.get("status") != "done" else 0.0,
                                 "cpu_seconds": prev.get("cpu_seconds", 0.0) if same and prev.get("status") != "done" else 0.0,
                                 "outputs": outputs, "pid": os.getpid()}
        self.stages[name] = entry
        self.save()
        t0, c0 = time.monotonic(), cpu_seconds()
        try:
            yield entry
        except Exception as e:
            entry["status"] = "failed"
            entry["error"] = f"{type(e).__name__}: {e}"
            raise
        finally:
            entry["seconds"] = round(entry["seconds"] + time.monotonic() - t0, 2)
            entry["cpu_seconds"] = round(entry["cpu_seconds"] + cpu_seconds() - c0, 2)
            self.save()
        entry["status"] = "done"
        entry["finished"] = _now()
        entry.pop("pid", None)
        entry.pop("error", None)
        self.save()

    def forget(self, name: str) -> None:
        """Drop a stage's entry (its outputs were removed)."""
        if self.stages.pop(name, None) is not None:
            self.save()

    def total(self, key: str = "seconds") -> float:
        return round(sum(float(e.get(key, 0.0)) for e in self.stages.values()), 1)
