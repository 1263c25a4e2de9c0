"""Latency lookup table: measure each part of the space once, predict an arch by summing.

A model is timed as a chain of **parts** — the front-end, each encoder layer, the decoder head —
each a static module fed the input it sees inside the full model (the same number of frames,
the same width). Every distinct part of a space is timed once on this device at a fixed thread
count and one reference utterance length; an arch's latency is then predicted as

    predict(arch) = overhead_ms + sum(entries[part.key] for part in parts(arch))

``overhead_ms`` is what the parts do not see: the model's glue (Python calls between parts)
and the difference between warm isolated timings and a chained forward. It is calibrated on a
few random archs timed whole, in the same measurement rounds as the parts: the weighted median
of ``measured - summed`` that minimises their mean absolute percentage error.

What makes the sum accurate (see also ``bench/latency_lut.py``):
- each part is timed at the shape it sees in the full model, not at a generic shape;
- the same thread count as the target, restored afterwards; the table records it, and loading
  a table measured with other threads or on another CPU fails with an error naming the mismatch;
- warm-up before timing; medians over many samples (the machine may be shared);
- the fixed per-forward overhead is a separate, calibrated term instead of being smeared over parts.

What is a part, how its key reads and how it is built comes from a :class:`PartProvider`, so the
table does not depend on how the network is written (``supernet.profiling.parts`` provides the
one for :mod:`supernet.nn`).
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import torch
from torch import nn

from supernet.profiling.timing import LatencyStats, device_name, fastest_over_rounds, measure_latency, num_threads
from supernet.utils import atomic_write_json, versions

__all__ = ["Part", "PartProvider", "arch_parts", "LatencyLUT", "LUTMismatchError", "LUT_FORMAT"]

LUT_FORMAT = "supernet-latency-lut/1"
SAMPLE_RATE = 16000


class LUTMismatchError(ValueError):
    """A table measured under other conditions (threads, device, space) than it is used for."""


@dataclass(frozen=True)
class Part:
    """One separately timed piece of a model.

    Args:
        key: canonical name; equal keys must mean equal work (module and input shape).
        build: makes ``(module, inputs)``: a static module and the positional inputs it gets in
            the full model at the reference length. Called only when the part is measured.
    """

    key: str
    build: Callable[[], tuple[nn.Module, tuple[Any, ...]]]


class PartProvider(Protocol):
    """How a family of models decomposes into timed parts.

    An arch is a *head* (front-end, width, streaming, decoder: ``arch`` with ``layers == ()``, see
    :meth:`supernet.space.SearchSpace.heads`) plus one part per non-skip layer, so that the table
    plugs into the space's DP (:meth:`supernet.space.SearchSpace.best_arch`).

    ``name`` and ``config`` are stored in the table so that :meth:`LatencyLUT.load` can tell
    whether a table fits (e.g. the vocabulary size and reference length the parts were built for).
    """

    name: str
    config: dict[str, Any]

    def head_parts(self, head: Any) -> list[Part]:
        """Parts every arch with this head runs, whatever its layers (front-end, decoder, glue)."""
        ...

    def layer_part(self, layer: Any, head: Any) -> Part | None:
        """The part of one encoder layer under ``head``; None for a layer that costs nothing (skip)."""
        ...

    def space_parts(self, space: Any) -> list[Part]:
        """Every distinct part of ``space`` (duplicates allowed; the table keeps one per key)."""
        ...

    def full_model(self, arch: Any) -> tuple[nn.Module, tuple[Any, ...]]:
        """The whole model of ``arch`` and its inputs at the reference length (for calibration)."""
        ...


def arch_parts(provider: PartProvider, arch: Any) -> list[Part]:
    """The parts ``arch`` runs: its head's parts, then its non-skip layers in order."""
    head = replace(arch, layers=())
    layers = [provider.layer_part(layer, head) for layer in arch.layers]
    return provider.head_parts(head) + [p for p in layers if p is not None]


def _time_module(module: nn.Module, inputs: tuple, *, threads: int, **timing: Any) -> LatencyStats:
    module.eval()
    with torch.inference_mode():
        return measure_latency(lambda: module(*inputs), threads=threads, **timing)


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value ``x`` minimising ``sum(w * |v - x|)`` (lower weighted median)."""
    pairs = sorted(zip(values, weights))
    half, acc = sum(weights) / 2, 0.0
    for v, w in pairs:
        acc += w
        if acc >= half:
            return float(v)
    raise ValueError("weighted_median needs at least one value with positive weight")


def _unique(parts: Iterable[Part]) -> list[Part]:
    seen: dict[str, Part] = {}
    for p in parts:
        seen.setdefault(p.key, p)
    return list(seen.values())


@dataclass
class LatencyLUT:
    """Measured per-part latencies (ms) for one device, thread count and reference length.

    Args:
        entries: part key -> latency statistics of that part alone.
        overhead_ms: calibrated per-forward term added to every prediction.
        threads: intra-op threads of every measurement.
        clock: "wall" or "cpu" clock of every measurement.
        device: CPU model measured on (``supernet.profiling.timing.device_name``).
        provider: name of the PartProvider whose keys these are.
        provider_config: its settings (reference length, vocabulary size, ...).
        calibration: per calibration arch: id, measured and summed ms.
        versions: library versions.
        rounds: measurements per part (the fastest median is kept).
    """

    entries: dict[str, LatencyStats]
    overhead_ms: float
    threads: int
    clock: str
    device: str
    provider: str
    provider_config: dict[str, Any]
    calibration: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    rounds: int = 1
    _parts: PartProvider | None = field(default=None, repr=False, compare=False)

    # ---- building ----

    @classmethod
    def build(
        cls,
        space: Any,
        vocab_size: int | None = None,
        threads: int = 1,
        *,
        provider: PartProvider | None = None,
        ref_seconds: float = 4.0,
        tokens_per_second: float | None = None,
        net: Any = None,
        archs: Sequence[Any] | None = None,
        calibrate: int = 5,
        seed: int = 0,
        warmup: int = 3,
        repeats: int = 20,
        min_run_time: float = 0.1,
        max_run_time: float = 3.0,
        clock: str = "wall",
        rounds: int = 1,
        progress: bool = True,
    ) -> "LatencyLUT":
        """Measure every part of ``space`` (or only those of ``archs``) on this machine.

        Args:
            space: a :class:`supernet.space.SearchSpace`.
            vocab_size: output vocabulary of the decoder heads (for the default provider).
            threads: intra-op threads, as on the target; restored afterwards.
            provider: how models decompose; default :class:`supernet.profiling.parts.SupernetParts`.
            ref_seconds: utterance length every part is measured at (default provider).
            tokens_per_second: emitted tokens of the decoding workload (default provider; see
                ``supernet.profiling.decoding``).
            net: the :class:`~supernet.nn.config.NetConfig` the supernet is built with (default
                provider; None: ``NetConfig()``). Its subsampler channels change the latency, so
                pass the fit config's ``net`` (``supernet profile lut --net-from FIT.yaml``).
            archs: measure only the parts these archs use (a partial table).
            calibrate: number of random archs (``space.sample(random.Random(seed))``) timed whole
                to calibrate ``overhead_ms``; 0 keeps it at 0.
            seed: of the calibration archs, random weights and inputs.
            warmup, repeats, min_run_time, max_run_time: timing of each part
                (:func:`supernet.profiling.timing.measure_latency`); slow parts (attention
                decoders) stop after ``max_run_time`` seconds with fewer samples.
            clock: "wall" or "cpu" (one thread only; robust to other processes on a shared
                machine, see :func:`supernet.profiling.timing.measure_latency`).
            rounds: measure every part (and calibration arch) this many times, round-robin,
                keeping the fastest median: for shared machines, where interference comes and
                goes; 1 on a quiet device.
            progress: show a progress bar.
        """
        if provider is None:
            from supernet.profiling.parts import SupernetParts

            if vocab_size is None:
                raise ValueError("vocab_size is required to build the decoder parts")
            kw = {} if tokens_per_second is None else {"tokens_per_second": tokens_per_second}
            provider = SupernetParts(space, vocab_size=vocab_size, ref_seconds=ref_seconds, seed=seed, net=net, **kw)
        if archs is not None:
            parts = _unique(p for a in archs for p in arch_parts(provider, a))
        else:
            parts = _unique(provider.space_parts(space))
        timing = dict(warmup=warmup, repeats=repeats, min_run_time=min_run_time, max_run_time=max_run_time, clock=clock)

        calib_archs: list[Any] = []
        if calibrate > 0:
            rng = random.Random(seed)
            calib_archs = [space.sample(rng) for _ in range(calibrate)]
        # Calibration archs are timed in the same rounds as the parts, spread evenly among them,
        # so that a machine that gets slower or faster during the build shifts both alike
        # instead of showing up as "overhead".
        items: list[tuple[str, Any]] = [("part", p) for p in parts]
        for j, arch in enumerate(calib_archs):
            items.insert((j + 1) * len(items) // (len(calib_archs) + 1), ("arch", arch))

        def measure(item: tuple[str, Any]) -> LatencyStats:
            # Built afresh each round: holding every part of a large space would take gigabytes.
            kind, what = item
            module, inputs = what.build() if kind == "part" else provider.full_model(what)
            return _time_module(module, inputs, threads=threads, **timing)

        with num_threads(threads):
            stats = fastest_over_rounds(items, measure, rounds, "latency table", progress)
        lut = cls(
            entries={what.key: st for (kind, what), st in zip(items, stats) if kind == "part"},
            overhead_ms=0.0,
            threads=threads,
            clock=clock,
            device=device_name(),
            provider=provider.name,
            provider_config=dict(provider.config),
            versions=versions(),
            rounds=rounds,
            _parts=provider,
        )
        lut._set_calibration(calib_archs, [st for (kind, _), st in zip(items, stats) if kind == "arch"])
        return lut

    def calibrate(
        self, archs: Sequence[Any], *, threads: int | None = None, rounds: int | None = None, progress: bool = False,
        **timing: Any,
    ) -> None:
        """Re-calibrate ``overhead_ms`` on ``archs`` timed whole now (see :meth:`_set_calibration`).

        Each arch is timed ``rounds`` times (default: as many as the table's parts), keeping the
        fastest median, like the parts. :meth:`build` calibrates in the same rounds as the parts,
        which is more robust to a machine whose speed drifts.
        """
        threads = threads or self.threads
        if threads != self.threads:
            raise LUTMismatchError(f"calibrating a {self.threads}-thread table at {threads} threads")
        clock = timing.setdefault("clock", self.clock)
        if clock != self.clock:
            raise LUTMismatchError(f"calibrating a table timed with the {self.clock} clock with the {clock} clock")

        def measure(arch: Any) -> LatencyStats:
            model, inputs = self.parts_provider.full_model(arch)
            return _time_module(model, inputs, threads=threads, **timing)

        with num_threads(threads):
            stats = fastest_over_rounds(list(archs), measure, rounds or self.rounds, "calibration", progress)
        self._set_calibration(list(archs), stats)

    def _set_calibration(self, archs: Sequence[Any], measured: Sequence[LatencyStats]) -> None:
        """``overhead_ms`` = the weighted median of (measured - summed) with weights 1 / measured.

        That is the constant minimising the mean absolute *percentage* error on the calibration
        archs. The true glue costs well under a millisecond, while a big model's difference is
        dominated by timing noise of a few percent of hundreds of milliseconds; weighting by
        1 / measured lets the small models, whose difference is mostly overhead, decide.
        """
        self.calibration = [
            {"arch_id": getattr(a, "id", str(a)), "measured_ms": m.median_ms, "summed_ms": self.sum_parts(a)}
            for a, m in zip(archs, measured)
        ]
        diffs = [r["measured_ms"] - r["summed_ms"] for r in self.calibration]
        weights = [1.0 / r["measured_ms"] for r in self.calibration]
        self.overhead_ms = weighted_median(diffs, weights) if diffs else 0.0

    # ---- predicting ----

    @property
    def parts_provider(self) -> PartProvider:
        if self._parts is None:
            raise RuntimeError("this table has no PartProvider attached; load it with LatencyLUT.load(path, space=...)")
        return self._parts

    def keys(self, arch: Any) -> list[str]:
        """Part keys of ``arch`` (a key may repeat: identical layers)."""
        return [p.key for p in arch_parts(self.parts_provider, arch)]

    def _sum(self, keys: Sequence[str], what: Any) -> float:
        missing = sorted({k for k in keys if k not in self.entries})
        if missing:
            raise KeyError(
                f"latency table has no entry for {len(missing)} part(s) of {what}: "
                f"{missing[:5]}{' ...' if len(missing) > 5 else ''}; it was built for another space or only "
                "for some archs: rebuild it with `supernet profile lut`"
            )
        return float(sum(self.entries[k].median_ms for k in keys))

    def sum_parts(self, arch: Any) -> float:
        """Sum of the part medians of ``arch`` in ms, without the overhead."""
        return self._sum(self.keys(arch), f"arch {getattr(arch, 'id', arch)}")

    def predict(self, arch: Any) -> float:
        """Predicted latency of ``arch`` in ms at the reference length: overhead + sum of parts."""
        return self.overhead_ms + self.sum_parts(arch)

    def head_ms(self, head: Any) -> float:
        """Overhead + the head's parts (ms): ``head_cost`` for ``SearchSpace.best_arch``."""
        head = replace(head, layers=())
        return self.overhead_ms + self._sum([p.key for p in self.parts_provider.head_parts(head)], f"head {head}")

    def layer_ms(self, layer: Any, head: Any) -> float:
        """One layer's part (ms; 0 for skip): ``layer_cost`` for ``SearchSpace.best_arch``.

        ``predict(arch) == head_ms(arch) + sum(layer_ms(layer, arch) for layer in arch.layers)``.
        """
        part = self.parts_provider.layer_part(layer, replace(head, layers=()))
        return 0.0 if part is None else self._sum([part.key], f"layer {layer}")

    # ---- persistence ----

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(self): it would deep-copy the attached provider (which may hold a supernet).
        return {
            "format": LUT_FORMAT,
            "entries": {k: asdict(v) for k, v in self.entries.items()},
            "overhead_ms": self.overhead_ms,
            "threads": self.threads,
            "clock": self.clock,
            "device": self.device,
            "provider": self.provider,
            "provider_config": self.provider_config,
            "calibration": self.calibration,
            "versions": self.versions,
            "rounds": self.rounds,
        }

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, provider: PartProvider | None = None) -> "LatencyLUT":
        if d.get("format") != LUT_FORMAT:
            raise ValueError(f"not a latency table (format {d.get('format')!r}, expected {LUT_FORMAT!r})")
        d = {k: v for k, v in d.items() if k != "format"}
        d["entries"] = {k: LatencyStats(**v) for k, v in d["entries"].items()}
        return cls(**d, _parts=provider)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        threads: int | None = None,
        device: str | None = None,
        space: Any = None,
        provider: PartProvider | None = None,
        strict: bool = True,
    ) -> "LatencyLUT":
        """Read a table and check that it fits where it will be used.

        Args:
            path: JSON written by :meth:`save`.
            threads: thread count of the target; a different one in the table is an error.
            device: CPU the predictions are for; default this machine's. A table from another
                CPU raises (``strict``) or warns (``strict=False``).
            space: the search space, to attach the default provider with the table's settings.
            provider: attach this provider instead (its name and config must match the table's).
            strict: raise on a device mismatch instead of warning.
        """
        path = Path(path)
        try:
            lut = cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a valid latency table ({e}); rebuild it with `supernet profile lut`") from e
        if threads is not None and threads != lut.threads:
            raise LUTMismatchError(
                f"{path}: measured with threads={lut.threads}, used with threads={threads}; "
                f"rebuild it with `supernet profile lut --threads {threads}`"
            )
        here = device if device is not None else device_name()
        if here != lut.device:
            msg = f"{path}: measured on device {lut.device!r}, used for {here!r}; its latencies do not transfer"
            if strict:
                raise LUTMismatchError(msg + " (rebuild it on that device, or pass strict=False to use it anyway)")
            warnings.warn(msg, stacklevel=2)
        if lut.versions.get("torch") and lut.versions.get("torch") != torch.__version__:
            warnings.warn(f"{path}: measured with torch {lut.versions['torch']}, running {torch.__version__}", stacklevel=2)
        if provider is None and space is not None:
            from supernet.profiling.parts import SupernetParts

            if lut.provider != SupernetParts.name:
                raise LUTMismatchError(f"{path}: measured with parts {lut.provider!r}; pass that provider= to load it")
            provider = SupernetParts.from_config(space, lut.provider_config)
        if provider is not None:
            lut.attach(provider, source=str(path))
        return lut

    def attach(self, provider: PartProvider, *, source: str = "table") -> None:
        """Use ``provider`` to decompose archs; it must be the one the table was measured with."""
        if provider.name != self.provider or dict(provider.config) != self.provider_config:
            raise LUTMismatchError(
                f"{source}: measured with parts {self.provider} {self.provider_config}, "
                f"asked to predict with {provider.name} {dict(provider.config)}; rebuild the table for these settings"
            )
        self._parts = provider
