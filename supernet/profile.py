"""Costs of a model, measured then predicted: params, FLOPs/MACs, memory, latency, RTF, LUT.

Public entry point of the profiler (the implementation lives in :mod:`supernet.profiling`).

- :func:`profile_model` measures any model with forward ``(audio (B, S) at 16 kHz, audio_lengths (B,))``
  and returns a :class:`ProfileResult` (JSON round trip with ``save`` / ``load``).
- :class:`LatencyLUT` measures every part of a search space on this device at a fixed thread
  count and predicts an arch's latency as the sum of its parts plus a calibrated overhead.

Command line::

    supernet profile SUBNET_FILE [--threads N] [--lengths 1,4,8] [--decode workload|greedy|none] [--out result.json]
    supernet profile lut -c configs/space/X.yaml --vocab-size V --threads N --out lut.json [--ref-seconds 4]
        [--net-from configs/fit/NAME.yaml]   # the subsampler channels etc. the supernet is trained with

What a subnet's timing includes, by ``decode``:
- ``workload`` (default): feature extraction + encoder + greedy decoding that emits a fixed
  number of tokens per second of audio (``supernet.profiling.decoding``), so that RNN-T and
  attention decoders cost what they cost on speech, not what random or inherited weights happen
  to emit. This is also what :class:`LatencyLUT` predicts.
- ``greedy``: ``model.transcribe``, the head's own greedy decoding (cost depends on the weights).
- ``none``: ``model(audio, lengths)``, feature extraction + encoder only.
Always batch 1, eval mode, inference mode, a random waveform already in memory (no I/O).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from supernet.profiling.decoding import DEFAULT_TOKENS_PER_SECOND, SubnetWithDecoding
from supernet.profiling.flops import activation_peak_bytes, count_flops, count_params, weights_bytes
from supernet.profiling.lut import LUT_FORMAT, LatencyLUT, LUTMismatchError, Part, PartProvider, arch_parts
from supernet.profiling.measure import (
    DEFAULT_TIMING_INCLUDES,
    ChunkLatency,
    ChunkSpec,
    ProfileResult,
    length_key,
    profile_model,
)
from supernet.profiling.parts import SupernetParts
from supernet.profiling.timing import LatencyStats, device_name, fastest_over_rounds, measure_latency, num_threads

__all__ = [
    "profile_model",
    "profile_subnet",
    "ProfileResult",
    "ChunkSpec",
    "ChunkLatency",
    "LatencyStats",
    "LatencyLUT",
    "LUTMismatchError",
    "Part",
    "PartProvider",
    "arch_parts",
    "SupernetParts",
    "SubnetWithDecoding",
    "fastest_over_rounds",
    "count_params",
    "count_flops",
    "weights_bytes",
    "activation_peak_bytes",
    "measure_latency",
    "num_threads",
    "device_name",
    "length_key",
    "DEFAULT_TIMING_INCLUDES",
    "LUT_FORMAT",
    "register",
]


DECODE_MODES = ("workload", "greedy", "none")


def profile_subnet(
    model: Any,
    *,
    threads: int,
    lengths: Sequence[float] = (1.0, 4.0, 8.0),
    decode: str = "workload",
    tokens_per_second: float = DEFAULT_TOKENS_PER_SECOND,
    chunk_left: int = 4,
    **kw: Any,
) -> ProfileResult:
    """:func:`profile_model` of a :class:`supernet.subnet.SubnetModel`, chunk latency included for
    streaming archs.

    Args:
        model: the subnet.
        threads: intra-op threads of the target.
        lengths: utterance seconds to time.
        decode: "workload", "greedy" or "none" (see the module docstring).
        tokens_per_second: emitted tokens of the "workload" decoding.
        chunk_left: chunks of left context recomputed per streaming step (see :class:`ChunkSpec`).
        kw: passed to :func:`profile_model` (warmup, repeats, min_run_time, seed ...).
    """
    from supernet.profiling.decoding import decoding_description

    arch = model.arch
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    base = "feature extraction + encoder"
    if decode == "workload":
        target = SubnetWithDecoding(model, tokens_per_second)
        includes = f"{base} + {decoding_description(tokens_per_second)}"
    elif decode == "greedy":
        target = _Transcribe(model)
        includes = f"{base} + the {arch.decoder} head's greedy decoding (model.transcribe; cost depends on what the weights emit)"
    else:
        target, includes = model, f"{base} (model.forward; no decoding)"
    includes += "; batch 1, eval mode, inference mode, random waveform in memory (no I/O)"
    chunk = ChunkSpec.for_arch(arch, hop_samples=model.net.hop_length, left_chunks=chunk_left) if arch.streaming else None
    model.eval()
    return profile_model(target, threads=threads, lengths=lengths, chunk=chunk, run=lambda m, a, n: m(a, n),
                         what_timing_includes=includes, arch=arch, **kw)


class _Transcribe(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio, audio_lengths):
        return self.model.transcribe(audio, audio_lengths)


def _lengths(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lengths takes seconds separated by commas, e.g. 1,4,8; got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--lengths needs positive seconds, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet profile``."""
    p = subparsers.add_parser(
        "profile",
        help="measure a subnet's costs, or build a latency lookup table",
        description="`supernet profile SUBNET_FILE` measures params, FLOPs, peak memory, latency and RTF of a "
        "saved subnet; `supernet profile lut -c SPACE.yaml` measures the latency lookup table of a search space "
        "on this machine.",
    )
    p.add_argument("subnet", metavar="SUBNET_FILE|lut", help="a saved subnet (from `supernet extract`), or `lut`")
    p.add_argument("--threads", type=_positive_int, default=1, help="intra-op threads, as on the target (default 1)")
    p.add_argument("--out", type=Path, help="write the result as JSON here (atomically)")
    p.add_argument("--warmup", type=_positive_int, default=3, help="untimed calls before timing (default 3)")
    p.add_argument("--repeats", type=_positive_int, default=30, help="timed samples to aim for (default 30)")
    g = p.add_argument_group("subnet")
    g.add_argument("--lengths", type=_lengths, default=(1.0, 4.0, 8.0), help="utterance seconds to time (default 1,4,8)")
    g.add_argument("--chunk-left", type=int, default=4, help="chunks of left context per streaming step (default 4)")
    g.add_argument("--decode", choices=DECODE_MODES, default="workload",
                   help="what the timing includes after the encoder (default: workload; see `pydoc supernet.profile`)")
    g.add_argument("--tokens-per-second", type=float, default=DEFAULT_TOKENS_PER_SECOND,
                   help=f"tokens the decoding workload emits per second of audio (default {DEFAULT_TOKENS_PER_SECOND:g})")
    g = p.add_argument_group("lut")
    g.add_argument("-c", "--config", type=Path, help="search space YAML (configs/space/*.yaml)")
    g.add_argument("--vocab-size", type=_positive_int, help="decoder output classes, blank included (required)")
    g.add_argument("--ref-seconds", type=float, default=4.0, help="utterance length every part is timed at (default 4)")
    g.add_argument("--calibrate", type=int, default=5, help="whole random subnets timed to calibrate the overhead (default 5)")
    g.add_argument("--seed", type=int, default=0, help="seed of the calibration archs and random weights")
    g.add_argument("--net-from", type=Path, metavar="FIT_YAML",
                   help="fit config (configs/fit/*.yaml, or a run's config.yaml) whose `net` section (subsampler "
                        "channels, ...) the parts are built with; default: NetConfig's defaults")
    g.add_argument("--rounds", type=_positive_int, default=1,
                   help="measure every part this many times, round-robin, keep the fastest (for shared machines; default 1)")
    g.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall (default: latency) or cpu (process CPU time, --threads 1 only: ignores other processes)")
    p.set_defaults(func=_main)


def net_from_fit_config(path: Path) -> Any:
    """The :class:`~supernet.nn.config.NetConfig` of a fit config (``configs/fit/*.yaml`` or a
    run's ``config.yaml``). Raises ConfigError (a ValueError) naming the file and field."""
    from supernet.training.config import load_fit_config

    return load_fit_config(path).net


def _main(args: argparse.Namespace) -> int:
    if args.subnet == "lut":
        return _main_lut(args)
    if args.config is not None:
        print("error: -c/--config belongs to `supernet profile lut`; a subnet file carries its own arch", file=sys.stderr)
        return 2
    path = Path(args.subnet)
    if not path.is_file():
        print(f"error: {path}: no such subnet file (write one with `supernet extract`)", file=sys.stderr)
        return 1
    from supernet.subnet import load_subnet

    try:
        model = load_subnet(path)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    result = profile_subnet(
        model, threads=args.threads, lengths=args.lengths, decode=args.decode, tokens_per_second=args.tokens_per_second,
        chunk_left=args.chunk_left, warmup=args.warmup, repeats=args.repeats,
    )
    print(result.summary())
    if args.out:
        result.save(args.out)
        print(f"wrote {args.out}")
    return 0


def _main_lut(args: argparse.Namespace) -> int:
    if args.config is None:
        print("error: `supernet profile lut` needs -c/--config SPACE.yaml", file=sys.stderr)
        return 2
    if args.out is None or args.vocab_size is None:
        print("error: `supernet profile lut` needs --out lut.json and --vocab-size V", file=sys.stderr)
        return 2
    if args.clock == "cpu" and args.threads != 1:
        print(f"error: --clock cpu sums the CPU time of all threads, so it measures latency only with --threads 1 "
              f"(got {args.threads}); use --clock wall for more threads", file=sys.stderr)
        return 2
    from supernet.profiling.parts import load_space

    try:
        net = net_from_fit_config(args.net_from) if args.net_from is not None else None
    except ValueError as e:
        print(f"error: --net-from: {e}", file=sys.stderr)
        return 2
    space = load_space(args.config)
    lut = LatencyLUT.build(
        space,
        net=net,
        vocab_size=args.vocab_size,
        threads=args.threads,
        ref_seconds=args.ref_seconds,
        tokens_per_second=args.tokens_per_second,
        calibrate=args.calibrate,
        seed=args.seed,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        clock=args.clock,
    )
    lut.save(args.out)
    print(
        f"wrote {args.out}: {len(lut.entries)} parts, overhead {lut.overhead_ms:.2f} ms, "
        f"{lut.threads} thread(s), {lut.clock} clock, {lut.device}"
    )
    return 0
