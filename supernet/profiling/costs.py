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
import statistics
from typing import Any, Callable

from supernet.space import Arch

__all__ = ["threads_for", "timing_clock", "profile_metrics", "MeasuredCosts", "capped_target", "paired_latency",
           "BaselineLatency"]


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

    def measure(self, model: Any) -> dict[str, float]:
        """The metrics of a static subnet (what :meth:`__call__` gives for its arch)."""
        from supernet.profile import profile_subnet

        result = profile_subnet(model, threads=self.threads, lengths=(self.target.reference_seconds,),
                                chunk_left=self.chunk_left, **self.timing)
        m = profile_metrics(result, model.arch, self.target.reference_seconds)
        m.pop("latency_p90_ms", None)
        m.pop("chunk_latency_p90_ms", None)
        return m

    def __call__(self, arch: Arch) -> dict[str, float]:
        from supernet.subnet import extract

        return self.measure(extract(self.supernet, arch).eval())


def capped_target(target: Any) -> Any:
    """``target`` with its threads capped at this machine's cores (for runtimes that take a target)."""
    return dataclasses.replace(target, threads=threads_for(target))


def paired_latency(measure_pick: Callable[[], float], measure_baseline: Callable[[], float], rounds: int,
                   factor: float = 1.0) -> dict[str, Any]:
    """Alternate two latency measurements ``rounds`` times (the pick first in odd rounds, the
    baseline first in even ones), so that drift and neighbours weigh on both alike; the verdict
    compares the medians of the per-round figures (``ratio`` = pick / baseline): ``no_higher``
    (ratio <= 1) and ``ok`` (ratio <= ``factor``)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    pick: list[float] = []
    base: list[float] = []
    for i in range(rounds):
        order = [(pick, measure_pick), (base, measure_baseline)]
        for store, measure in order if i % 2 == 0 else order[::-1]:
            store.append(float(measure()))
    p50, b50 = statistics.median(pick), statistics.median(base)
    ratio = p50 / b50 if b50 > 0 else float("inf")
    return {"rounds": rounds, "pick_ms": [round(v, 3) for v in pick], "baseline_ms": [round(v, 3) for v in base],
            "pick_median_ms": round(p50, 3), "baseline_median_ms": round(b50, 3),
            "ratio": round(ratio, 4), "no_higher": p50 <= b50, "factor": factor, "ok": ratio <= factor}


class BaselineLatency:
    """The hand-designed baseline's latency as a target's ``latency_ms`` limit.

    The baseline is timed exactly as the search times a candidate (``costs``: the target's
    threads, reference length, clock and repeats); :meth:`reference` gives the limit before the
    search, :meth:`confirm` checks a selected subnet against the baseline in a paired
    measurement, since a candidate's single profile during the search can be off by a third.

    What the two timings include differs in one point, in the baseline's favour: a subnet is timed
    with the decoding workload of ``supernet.profile`` (about 2 % of a CTC subnet's time,
    BENCHMARKS.md), the baseline with its forward only; so a confirmed pick is, if anything,
    faster than measured relative to the baseline.

    Args:
        baseline: the baseline model (forward ``(audio, audio_lengths)``).
        costs: the search's :class:`MeasuredCosts` (target and timing settings).
        factor: the limit is ``factor`` x the baseline's median latency (1.0: no slower).
        rounds: measurements of the reference (median) and paired rounds of a confirmation.
    """

    def __init__(self, baseline: Any, costs: MeasuredCosts, *, factor: float = 1.0, rounds: int = 5) -> None:
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.baseline = baseline.eval()
        self.costs = costs
        self.factor = float(factor)
        self.rounds = int(rounds)

    def measure(self) -> float:
        """One latency of the baseline (ms) at the target's reference length."""
        from supernet.profile import profile_model

        t = self.costs.target
        result = profile_model(self.baseline, threads=self.costs.threads, lengths=(t.reference_seconds,), **self.costs.timing)
        return profile_metrics(result, None, t.reference_seconds)["latency_ms"]

    def reference(self) -> dict[str, Any]:
        """The baseline's median latency over ``rounds`` measurements and the limit it gives."""
        values = [self.measure() for _ in range(self.rounds)]
        median = statistics.median(values)
        return {"factor": self.factor, "rounds": self.rounds, "baseline_ms": values,
                "baseline_median_ms": median, "latency_ms": self.factor * median, **self.costs.describe()}

    def confirm(self, model: Any) -> dict[str, Any]:
        """:func:`paired_latency` of a static subnet against the baseline; ``ok``: ratio <= factor."""
        out = paired_latency(lambda: self.costs.measure(model)["latency_ms"], self.measure, self.rounds, self.factor)
        out["summary"] = (f"{out['pick_median_ms']:.2f} vs the baseline's {out['baseline_median_ms']:.2f} ms "
                          f"(x{out['ratio']:.3f}, limit x{self.factor:g}, {self.rounds} paired rounds)")
        return out
