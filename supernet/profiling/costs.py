"""Measured costs of an arch for a target: the numbers a target's limits and objectives name.

The search's evaluator scores WER with inherited weights; a target also limits latency, RTF,
chunk latency, parameters and memory. :class:`MeasuredCosts` extracts the arch as a static
subnet and profiles it (:func:`supernet.profile.profile_subnet`) at the target's thread count
and reference length, and turns the :class:`~supernet.profile.ProfileResult` into metric names
(:func:`profile_metrics`). Each evaluation costs a few forwards, so the number of repeats is
small during a search and larger for the final evaluation.

Threads: a target may name more threads than this machine has cores (the server target names 8);
timing oversubscribed threads measures contention, not the model, so the count is capped at
the cores and the cap is recorded. With one thread the process CPU clock is used: on a shared
machine it does not count the neighbours' work, the wall clock does.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from supernet.space import Arch

__all__ = ["threads_for", "timing_clock", "profile_metrics", "MeasuredCosts", "capped_target"]


def threads_for(target: Any, clock: str = "auto") -> int:
    """The target's thread count, capped at this machine's cores (1 with the CPU clock)."""
    return 1 if clock == "cpu" else max(1, min(int(target.threads), os.cpu_count() or 1))


def timing_clock(threads: int, clock: str = "auto") -> str:
    """The clock of :func:`supernet.profiling.timing.measure_latency` for ``clock`` (auto: cpu at 1 thread)."""
    return ("cpu" if threads == 1 else "wall") if clock == "auto" else clock


def profile_metrics(result: Any, arch: Arch | None, reference_seconds: float, hop_length: int = 160) -> dict[str, float]:
    """Metric names of :mod:`supernet.search.objectives` from a ProfileResult.

    ``latency_ms`` / ``latency_p90_ms`` / ``rtf`` at ``reference_seconds``; ``flops``,
    ``memory_mb``; for a streaming arch ``chunk_latency_ms`` = median compute of one chunk step
    + the look-ahead audio it waits for (``chunk_compute_ms``, ``chunk_rtf`` beside it). A
    full-context arch answers after the whole utterance: its chunk latency is the full latency.
    """
    from supernet.profile import length_key

    lat = result.latency[length_key(reference_seconds)]
    out = {"latency_ms": lat.median_ms, "latency_p90_ms": lat.p90_ms, "rtf": result.rtf[length_key(reference_seconds)],
           "flops": float(result.flops), "memory_mb": float(result.peak_mem_mb)}
    if result.chunk is not None:
        spec = result.chunk.spec
        wait_ms = 1e3 * spec.right_samples / 16000
        out.update(chunk_latency_ms=result.chunk.latency.median_ms + wait_ms, chunk_latency_p90_ms=result.chunk.latency.p90_ms + wait_ms,
                   chunk_compute_ms=result.chunk.latency.median_ms, chunk_rtf=result.chunk.rtf)
    else:
        out["chunk_latency_ms"] = lat.median_ms
    return out


class MeasuredCosts:
    """``costs(arch) -> {metric: value}`` measured on this machine for ``target``.

    Args:
        supernet: the trained SpeechSupernet archs are extracted from.
        target: the :class:`~supernet.search.targets.Target` (threads, reference length).
        warmup, repeats, min_run_time: timing settings (see ``supernet.profiling.timing``).
        chunk_left: chunks of left context recomputed per streaming step.
        clock: "auto", "wall" or "cpu" (see :class:`supernet.pipeline.config.ProfileSection`).
    """

    def __init__(self, supernet: Any, target: Any, *, warmup: int = 1, repeats: int = 5, min_run_time: float = 0.05,
                 chunk_left: int = 4, clock: str = "auto") -> None:
        self.supernet = supernet
        self.target = target
        self.threads = threads_for(target, clock)
        self.timing = dict(warmup=warmup, repeats=repeats, min_run_time=min_run_time, clock=timing_clock(self.threads, clock))
        self.chunk_left = chunk_left

    def describe(self) -> dict[str, Any]:
        """What the numbers are (recorded with the search)."""
        return {"threads": self.threads, "target_threads": self.target.threads, "reference_seconds": self.target.reference_seconds,
                **self.timing, "chunk_left": self.chunk_left}

    def __call__(self, arch: Arch) -> dict[str, float]:
        from supernet.profile import profile_subnet
        from supernet.subnet import extract

        model = extract(self.supernet, arch).eval()
        result = profile_subnet(model, threads=self.threads, lengths=(self.target.reference_seconds,),
                                chunk_left=self.chunk_left, **self.timing)
        m = profile_metrics(result, arch, self.target.reference_seconds)
        m.pop("latency_p90_ms", None)
        m.pop("chunk_latency_p90_ms", None)
        return m


def capped_target(target: Any) -> Any:
    """``target`` with its threads capped at this machine's cores (for runtimes that take a target)."""
    return dataclasses.replace(target, threads=threads_for(target))
