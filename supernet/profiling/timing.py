"""Latency measurement: fixed thread count, warm-up, many repeats, median and p90.

Everything here times a zero-argument callable with :class:`torch.utils.benchmark.Timer`, which
pins ``torch.set_num_threads`` for the timed region; :func:`num_threads` does the same around our
own warm-up and restores the caller's setting afterwards, whatever happens.

The device string names the CPU model (``/proc/cpuinfo``, else ``platform``), so that latency
tables measured elsewhere can be told apart.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["LatencyStats", "num_threads", "measure_latency", "fastest_over_rounds", "settle_allocator", "device_name", "CLOCKS"]


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of one timed call, in milliseconds.

    Args:
        median_ms, p90_ms, mean_ms: statistics over the timed samples.
        samples: number of timed samples.
        calls_per_sample: calls averaged inside one sample. ``torch.utils.benchmark`` groups calls
            that take well under a millisecond into blocks so that timer overhead stays negligible;
            the quantiles are then over block means (1 for anything slower).
        clock: "wall" or "cpu" (see :func:`measure_latency`).
    """

    median_ms: float
    p90_ms: float
    mean_ms: float
    samples: int
    calls_per_sample: int = 1
    clock: str = "wall"


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Set ``torch.set_num_threads(n)`` inside the block; restore the previous count after."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# glibc's largest dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX) is 32 MiB.
_SETTLE_BYTES = 31 * 1024 * 1024


def settle_allocator() -> None:
    """Put the C allocator in the state a long-running process reaches: allocate and free a 31 MiB block.

    glibc serves large allocations with ``mmap`` (page faults on every first touch) until it has
    seen one freed, then raises its threshold to that size. Inside a full model the encoder's
    large activations raise it early; a part timed alone may never do so, and then every
    temporary above the threshold page-faults: measured here, a 2-layer 256-unit LSTM predictor
    (oneDNN reorders its weights into fresh ~2 MB buffers each call) ran at 230 ms alone with
    47,000 page faults per call, and at 125 ms with none after this call. Cheap (the block is
    never touched) and harmless with other allocators.
    """
    block = torch.empty(_SETTLE_BYTES // 4, dtype=torch.float32)
    del block


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def measure_latency(
    fn: Callable[[], object],
    *,
    threads: int,
    warmup: int = 3,
    repeats: int = 30,
    min_run_time: float = 0.2,
    max_run_time: float = 30.0,
    clock: str = "wall",
) -> LatencyStats:
    """Time ``fn()`` at ``threads`` intra-op threads.

    Args:
        fn: the work, already bound to its inputs (e.g. ``lambda: model(audio, lengths)``).
        threads: torch intra-op threads during warm-up and measurement; restored afterwards.
        warmup: untimed calls first (allocator pools, oneDNN primitive caches, lazy init);
            before them :func:`settle_allocator` puts the C allocator in its steady state.
        repeats: aim for at least this many timed samples.
        min_run_time: measure for at least this long (seconds).
        max_run_time: but stop adding samples after this long (seconds), for slow calls.
        clock: "wall" (``time.perf_counter``: latency, what a user waits) or "cpu"
            (``time.process_time``: CPU time of this process). With one thread on an idle machine
            the two agree; on a shared machine the wall clock also measures the neighbours, the CPU
            clock does not. "cpu" requires ``threads == 1`` (it adds up the time of all threads).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and threads != 1:
        raise ValueError(f"clock='cpu' sums the CPU time of all threads; it measures latency only with threads=1, got {threads}")
    # Imported here: torch.utils.benchmark pulls in cpp_extension, which warns about CUDA on import.
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=CLOCKS[clock])
    settle_allocator()
    with num_threads(threads):
        for _ in range(warmup):
            fn()
        # One more call sizes the measurement: enough time for `repeats` samples.
        start = CLOCKS[clock]()
        fn()
        one = CLOCKS[clock]() - start
        run_time = min(max(min_run_time, 1.1 * repeats * one), max(max_run_time, one))
        m = timer.blocked_autorange(min_run_time=run_time)
        times = list(m.times)
        # Calls well under a millisecond are timed in blocks of 10, 100 ... calls; top up so that
        # there are `repeats` samples (block means) unless that takes longer than max_run_time.
        missing = repeats - len(times)
        if missing > 0:
            extra = 1.1 * missing * m.number_per_run * m.median
            if sum(times) * m.number_per_run + extra <= max_run_time:
                times += timer.blocked_autorange(min_run_time=extra).times
    times_ms = [t * 1e3 for t in times]
    return LatencyStats(
        median_ms=float(statistics.median(times_ms)),
        p90_ms=float(np.quantile(times_ms, 0.9)),
        mean_ms=float(statistics.fmean(times_ms)),
        samples=len(times_ms),
        calls_per_sample=int(m.number_per_run),
        clock=clock,
    )


def fastest_over_rounds(
    items: Sequence[Any], measure: Callable[[Any], LatencyStats], rounds: int, desc: str, progress: bool
) -> list[LatencyStats]:
    """Measure every item ``rounds`` times, round-robin, and keep each item's fastest median.

    Interference from other processes only ever slows a measurement down, and on a shared
    machine it comes and goes over minutes; visiting every item once per round spreads each
    item's measurements over the whole run, and the fastest round is the one least disturbed.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    best: list[LatencyStats | None] = [None] * len(items)
    with tqdm(total=rounds * len(items), desc=desc, unit="run", disable=not progress) as bar:
        for _ in range(rounds):
            for i, item in enumerate(items):
                stats = measure(item)
                if best[i] is None or stats.median_ms < best[i].median_ms:
                    best[i] = stats
                bar.update()
    return best  # type: ignore[return-value]


def device_name() -> str:
    """The CPU model (e.g. "AMD EPYC 7B13") plus logical CPU count; platform info as fallback."""
    model = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    if not model:
        model = platform.processor() or platform.machine() or "unknown cpu"
    return f"{model} ({os.cpu_count()} logical CPUs, {platform.system()})"
