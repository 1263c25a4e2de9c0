"""Profile one speech model: params, FLOPs/MACs, peak memory, latency, RTF, chunk latency.

Works with any module whose forward is ``model(audio (B, S) float32 at 16 kHz, audio_lengths (B,))``
(a :class:`supernet.subnet.SubnetModel`, a baseline, a toy module). All measurements use batch 1.

What the latency includes, by default: one call of ``model(audio, audio_lengths)`` in eval mode
under ``torch.inference_mode`` on a random waveform already in memory (no file I/O, no resampling),
at a fixed intra-op thread count. For a SubnetModel that is feature extraction + encoder + the
decoder head's output; pass ``run=`` (and say what it includes in ``what_timing_includes=``) to
time something else, e.g. forward + greedy decoding.

RTF = median processing time / audio duration; below 1 is faster than real time.

Chunk latency (streaming archs): until the models get a stateful streaming API, we time the
forward on one window of ``left context + chunk + look-ahead`` samples: the cost of recomputing
a chunk with bounded left context, an upper bound on a cached streaming step. The window is a
:class:`ChunkSpec`; swap ``chunk_run=`` for the streaming step when it exists.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from supernet.profiling.flops import activation_peak_bytes, count_flops, count_params, weights_bytes
from supernet.profiling.timing import LatencyStats, device_name, measure_latency, num_threads
from supernet.utils import atomic_write_json, versions

__all__ = ["ChunkSpec", "ChunkLatency", "ProfileResult", "profile_model", "length_key", "DEFAULT_TIMING_INCLUDES"]

SAMPLE_RATE = 16000
DEFAULT_TIMING_INCLUDES = (
    "one model(audio, audio_lengths) call: batch 1, eval mode, torch.inference_mode, waveform already "
    "in memory (no I/O, no resampling); for a SubnetModel: feature extraction + encoder + decoder head output"
)
_MB = 1024 * 1024


def length_key(seconds: float) -> str:
    """Key of an utterance length in ``ProfileResult.latency`` / ``rtf``: ``1.0 -> "1"``, ``0.5 -> "0.5"``."""
    return f"{float(seconds):g}"


@dataclass(frozen=True)
class ChunkSpec:
    """One streaming step as a window of samples (see the module docstring).

    Args:
        chunk_samples: new audio the step consumes (its duration is what RTF divides by).
        left_samples: left context recomputed with it.
        right_samples: look-ahead it must wait for.
    """

    chunk_samples: int
    left_samples: int = 0
    right_samples: int = 0

    @property
    def window_samples(self) -> int:
        return self.left_samples + self.chunk_samples + self.right_samples

    @classmethod
    def for_arch(cls, arch: Any, *, hop_samples: int = 160, left_chunks: int = 4) -> "ChunkSpec":
        """Window of a streaming :class:`supernet.space.Arch`.

        ``arch.chunk`` / ``arch.lookahead`` count encoder frames, i.e. ``subsampling * hop_samples``
        samples each; ``left_chunks`` chunks of history are recomputed with every chunk.
        """
        if not arch.chunk:
            raise ValueError(f"arch {arch.id} is not streaming (chunk == 0): it has no chunk latency")
        frame = arch.subsampling * hop_samples
        return cls(arch.chunk * frame, left_chunks * arch.chunk * frame, (arch.lookahead or 0) * frame)


@dataclass(frozen=True)
class ChunkLatency:
    """Latency of one streaming step (window described by ``spec``)."""

    spec: ChunkSpec
    latency: LatencyStats
    rtf: float  # median step time / chunk duration
    what_timing_includes: str


@dataclass
class ProfileResult:
    """Costs of one model on one device at one thread count.

    Args:
        params: parameter count.
        flops, macs: of one timed call on ``cost_seconds`` of audio (see ``supernet.profiling.flops``).
        peak_mem_mb: weights + buffers + the highest activation memory during that call.
        activation_mem_mb: the activation part alone.
        cost_seconds: utterance length the FLOPs and memory refer to.
        latency: per utterance length (key ``length_key(seconds)``), full-utterance latency.
        rtf: per utterance length, median latency / duration.
        chunk: per-chunk latency for streaming models, else None.
        threads: intra-op threads used for every measurement.
        device: CPU model the numbers were measured on.
        what_timing_includes: what one timed call does.
        versions: library versions.
        arch: the Arch as a dict, when known.
    """

    params: int
    flops: int
    macs: int
    peak_mem_mb: float
    activation_mem_mb: float
    cost_seconds: float
    latency: dict[str, LatencyStats]
    rtf: dict[str, float]
    threads: int
    device: str
    what_timing_includes: str
    chunk: ChunkLatency | None = None
    versions: dict[str, str] = field(default_factory=dict)
    arch: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProfileResult":
        d = dict(d)
        missing = [f for f in ("params", "flops", "latency", "threads") if f not in d]
        if missing:
            raise ValueError(f"not a ProfileResult: missing field(s) {missing}")
        d["latency"] = {k: LatencyStats(**v) for k, v in d["latency"].items()}
        if d.get("chunk") is not None:
            c = dict(d["chunk"])
            c["spec"] = ChunkSpec(**c["spec"])
            c["latency"] = LatencyStats(**c["latency"])
            d["chunk"] = ChunkLatency(**c)
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "ProfileResult":
        return cls.from_dict(json.loads(s))

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "ProfileResult":
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path}: not a valid profile result ({e}); re-run `supernet profile`") from e

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"params {self.params:,}  FLOPs {self.flops / 1e6:.1f} M  MACs {self.macs / 1e6:.1f} M "
            f"(on {self.cost_seconds:g} s)  peak memory {self.peak_mem_mb:.1f} MB",
            f"device {self.device}, {self.threads} thread(s)",
        ]
        for k, lat in self.latency.items():
            lines.append(f"  {k:>4} s: median {lat.median_ms:8.2f} ms  p90 {lat.p90_ms:8.2f} ms  RTF {self.rtf[k]:.4f}")
        if self.chunk is not None:
            c = self.chunk
            lines.append(
                f"  chunk {c.spec.chunk_samples / SAMPLE_RATE * 1e3:.0f} ms (+{c.spec.left_samples / SAMPLE_RATE * 1e3:.0f} ms left, "
                f"+{c.spec.right_samples / SAMPLE_RATE * 1e3:.0f} ms look-ahead): median {c.latency.median_ms:.2f} ms "
                f"p90 {c.latency.p90_ms:.2f} ms  RTF {c.rtf:.4f}"
            )
        lines.append(f"timing includes: {self.what_timing_includes}")
        return "\n".join(lines)


def _audio(seconds: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(round(seconds * SAMPLE_RATE))
    if n < 1:
        raise ValueError(f"utterance length must be positive, got {seconds} s")
    # Speech-like level: a unit-variance signal would clip; the model's cost does not care.
    audio = 0.1 * torch.randn(1, n, generator=generator)
    return audio, torch.tensor([n])


def _forward(model: nn.Module, audio: torch.Tensor, lengths: torch.Tensor) -> Any:
    return model(audio, lengths)


class _Bound:
    """``run`` bound to ``model``: a callable ``(audio, lengths)`` for the FLOP and memory counters."""

    def __init__(self, model: nn.Module, run: Callable[[nn.Module, torch.Tensor, torch.Tensor], Any]) -> None:
        self.model, self.run = model, run

    def __call__(self, audio: torch.Tensor, lengths: torch.Tensor) -> Any:
        return self.run(self.model, audio, lengths)


def profile_model(
    model: nn.Module,
    *,
    threads: int,
    lengths: Sequence[float] = (1.0, 4.0, 8.0),
    cost_seconds: float | None = None,
    chunk: ChunkSpec | None = None,
    run: Callable[[nn.Module, torch.Tensor, torch.Tensor], Any] | None = None,
    chunk_run: Callable[[nn.Module, torch.Tensor, torch.Tensor], Any] | None = None,
    what_timing_includes: str | None = None,
    warmup: int = 3,
    repeats: int = 30,
    min_run_time: float = 0.2,
    clock: str = "wall",
    seed: int = 0,
    arch: Any = None,
) -> ProfileResult:
    """Measure every cost of ``model`` on this machine.

    Args:
        model: forward ``(audio (B, S), audio_lengths (B,))``; switched to eval mode.
        threads: intra-op threads (from the deployment target); restored afterwards.
        lengths: full-utterance lengths to time, in seconds.
        cost_seconds: utterance length for FLOPs and memory (default: the longest of ``lengths``);
            both are measured on the same call that is timed (``run``).
        chunk: window of one streaming step; None for no chunk latency.
        run: what to time, ``run(model, audio, lengths)``; default one forward.
        chunk_run: what to time per chunk; default ``run``.
        what_timing_includes: description stored with the result (required with a custom ``run``).
        warmup, repeats, min_run_time, clock: see :func:`supernet.profiling.timing.measure_latency`.
        seed: of the random input waveforms.
        arch: the model's Arch, recorded in the result.
    """
    if not lengths:
        raise ValueError("lengths must name at least one utterance length")
    if run is not None and what_timing_includes is None:
        raise ValueError("a custom `run` needs `what_timing_includes` saying what it times")
    run = run or _forward
    chunk_run = chunk_run or run
    includes = what_timing_includes or DEFAULT_TIMING_INCLUDES
    cost_seconds = float(cost_seconds if cost_seconds is not None else max(lengths))
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with num_threads(threads), torch.inference_mode():
            audio, alen = _audio(cost_seconds, g)
            timed = _Bound(model, run)  # FLOPs and memory of the very call that is timed
            flops = count_flops(timed, audio, alen)
            act = activation_peak_bytes(timed, audio, alen)
            latency: dict[str, LatencyStats] = {}
            rtf: dict[str, float] = {}
            for seconds in lengths:
                audio, alen = _audio(seconds, g)
                stats = measure_latency(
                    lambda: run(model, audio, alen), threads=threads, warmup=warmup, repeats=repeats, min_run_time=min_run_time,
                    clock=clock,
                )
                latency[length_key(seconds)] = stats
                rtf[length_key(seconds)] = stats.median_ms / 1e3 / seconds
            chunk_latency = None
            if chunk is not None:
                audio, alen = _audio(chunk.window_samples / SAMPLE_RATE, g)
                stats = measure_latency(
                    lambda: chunk_run(model, audio, alen), threads=threads, warmup=warmup, repeats=repeats, min_run_time=min_run_time,
                    clock=clock,
                )
                chunk_latency = ChunkLatency(
                    spec=chunk,
                    latency=stats,
                    rtf=stats.median_ms / 1e3 / (chunk.chunk_samples / SAMPLE_RATE),
                    what_timing_includes=f"{includes}; on one window of left context + chunk + look-ahead "
                    "samples (recomputed, no cached state)",
                )
    finally:
        model.train(was_training)
    wmb = weights_bytes(model) / _MB
    return ProfileResult(
        params=count_params(model),
        flops=flops,
        macs=flops // 2,
        peak_mem_mb=wmb + act / _MB,
        activation_mem_mb=act / _MB,
        cost_seconds=cost_seconds,
        latency=latency,
        rtf=rtf,
        threads=threads,
        device=device_name(),
        what_timing_includes=includes,
        chunk=chunk_latency,
        versions=versions(),
        arch=json.loads(arch.to_json()) if hasattr(arch, "to_json") else arch,
    )
