"""Evaluation results on disk: a JSON-lines file that outlives the process.

One line per evaluated arch: ``{"fingerprint": ..., "arch_id": ..., "arch": {...}, "metrics":
{...}}``. The fingerprint names what the numbers depend on (supernet weights, dev data,
tokenizer, evaluation settings; see ``Evaluator.fingerprint``), so one file can collect results
of several supernets and a stale result is never served: rows with another fingerprint are left
in the file and not loaded (their count is logged).

Why append rather than rewrite the file atomically like every other output: results arrive one
at a time for hours, and rewriting a growing file per result is quadratic. Each row is written
with a single ``write`` of a whole line on a file opened for appending, then flushed; a crash can
at worst leave the last line incomplete, which the reader reports and ignores and the next write
cuts off. Any other malformed line is an error naming the file and line. One process writes a
file at a time (give parallel workers a file each; the study database is the shared record).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from supernet.config import ConfigError
from supernet.evaluation.results import Metrics
from supernet.space import Arch

__all__ = ["ResultStore"]

log = logging.getLogger(__name__)


class ResultStore:
    """Results of one fingerprint, read from and appended to ``path``.

    Args:
        path: the JSONL file (created with its folder on the first :meth:`put`).
        fingerprint: only rows with this fingerprint are loaded and served.
    """

    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.rows: dict[str, Metrics] = {}
        self.other_fingerprints = 0
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").split("\n")
        complete = lines[-1] == ""  # a file of whole lines ends with a newline
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                fp = row["fingerprint"]
                metrics = Metrics.from_dict(row["metrics"]) if fp == self.fingerprint else None
            except (ValueError, KeyError, TypeError) as e:
                if n == len(lines) and not complete:
                    log.warning("%s:%d: incomplete last line (an interrupted write) ignored", self.path, n)
                    continue
                raise ConfigError(f"{self.path}:{n}: not a result row {{\"fingerprint\", \"arch_id\", \"arch\", "
                                  f"\"metrics\"}}: {e}; delete the line or the file to re-evaluate") from e
            if metrics is None:
                self.other_fingerprints += 1
            else:
                self.rows[metrics.arch_id] = metrics
        if self.other_fingerprints:
            log.info("%s: %d result(s) of other supernets/dev sets not loaded (fingerprint differs)", self.path,
                     self.other_fingerprints)

    def get(self, arch_id: str) -> Metrics | None:
        return self.rows.get(arch_id)

    def put(self, arch: Arch, metrics: Metrics) -> None:
        """Remember ``metrics`` and append its row to the file."""
        self.rows[arch.id] = metrics
        row = {"fingerprint": self.fingerprint, "arch_id": arch.id, "arch": arch.to_dict(), "metrics": metrics.to_dict()}
        line = json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            self._drop_incomplete_tail(f)
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def _drop_incomplete_tail(self, f) -> None:
        """Cut an interrupted last line (no final newline) so the new row starts a line of its own."""
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        keep = f.read().rfind(b"\n") + 1
        f.truncate(keep)
        log.warning("%s: dropped an incomplete last line (an interrupted write)", self.path)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, arch_id: object) -> bool:
        return arch_id in self.rows
