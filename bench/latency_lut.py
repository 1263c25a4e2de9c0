"""How well does a summed latency lookup table predict measured latency? (target: MAPE <= 5%)

1. Build a latency table for a search space on this machine at a fixed thread count: every part
   (features, encoder-io, each distinct layer, each decoder workload) timed at the reference
   length, the per-forward overhead calibrated on 5 random archs (seed 0) timed whole in the same
   rounds. Every part and arch is measured ``--rounds`` times round-robin; the fastest median
   counts (interference on a shared machine only ever slows things down).
2. Build the supernet of that space and extract 30 *other* random subnets (seed 1).
3. Time each extracted subnet whole (forward + decoding workload, batch 1, reference length;
   also ``--rounds`` times round-robin) and compare with ``lut.predict(arch)``: absolute
   percentage error per arch, mean (MAPE).

Writes bench/results/latency_lut.json (and the table itself, bench/results/latency_lut.table.json).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python bench/latency_lut.py [--space configs/space/default.yaml]
        [--threads 1] [--archs 30] [--ref-seconds 4] [--rounds 3] [--clock cpu|wall] [--full-table]

Without ``--full-table`` only the parts the calibration and evaluation archs use are measured
(the entries are the same measurements a full table would hold; it saves time). Timing is
noisy on a shared machine: run it on an idle one, or keep the default ``--clock cpu`` (process
CPU time, one thread), which does not count the time other processes hold the CPU.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supernet.model import SpeechSupernet  # noqa: E402
from supernet.profiling.lut import LatencyLUT  # noqa: E402
from supernet.profiling.parts import SupernetParts, load_space  # noqa: E402
from supernet.profiling.timing import fastest_over_rounds, measure_latency, num_threads  # noqa: E402
from supernet.subnet import extract  # noqa: E402
from supernet.utils import atomic_write_json, provenance  # noqa: E402

VOCAB = 32  # a character vocabulary (blank, letters, space, apostrophe, ...); hardly changes latency


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", type=Path, default=ROOT / "configs/space/default.yaml")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--calibrate", type=int, default=5)
    ap.add_argument("--ref-seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3,
                    help="measure everything this many times, round-robin, keep the fastest (shared machines)")
    ap.add_argument("--full-table", action="store_true", help="measure every part of the space")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu (default; one thread; robust to other processes on a shared machine) or wall")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/latency_lut.json")
    args = ap.parse_args(argv)

    space = load_space(args.space)
    provider = SupernetParts(space, vocab_size=VOCAB, ref_seconds=args.ref_seconds, seed=0)
    rng_cal, rng_eval = random.Random(0), random.Random(1)
    calib_archs = [space.sample(rng_cal) for _ in range(args.calibrate)]
    eval_archs = [space.sample(rng_eval) for _ in range(args.archs)]
    timing = dict(warmup=2, repeats=args.repeats, min_run_time=0.05, max_run_time=1.5, clock=args.clock)

    t0 = time.perf_counter()
    # The table samples its calibration archs with random.Random(seed=0): the same as calib_archs.
    lut = LatencyLUT.build(
        space, threads=args.threads, provider=provider, calibrate=args.calibrate, seed=0,
        archs=None if args.full_table else calib_archs + eval_archs, rounds=args.rounds, **timing,
    )
    assert [c["arch_id"] for c in lut.calibration] == [a.id for a in calib_archs]
    build_s = time.perf_counter() - t0
    lut.save(args.out.with_suffix(".table.json"))
    print(f"table: {len(lut.entries)} parts, overhead {lut.overhead_ms:+.2f} ms, built in {build_s:.0f} s")

    torch.manual_seed(0)
    supernet = SpeechSupernet.from_space(space, VOCAB).eval()
    audio, lengths = provider.reference_input()

    def measure(arch):
        # Extracted afresh each round (30 subnets held at once would take gigabytes).
        model = provider.wrap(extract(supernet, arch).eval())
        with torch.inference_mode():
            return measure_latency(lambda: model(audio, lengths), threads=args.threads, **timing)

    with num_threads(args.threads):
        measured = fastest_over_rounds(eval_archs, measure, args.rounds, "subnets", True)
    rows = []
    for i, (arch, m) in enumerate(zip(eval_archs, measured), 1):
        predicted = lut.predict(arch)
        ape = abs(predicted - m.median_ms) / m.median_ms
        rows.append({
            "arch": arch.describe(), "arch_id": arch.id, "decoder": arch.decoder,
            "measured_ms": m.median_ms, "measured_p90_ms": m.p90_ms,
            "predicted_ms": predicted, "summed_ms": lut.sum_parts(arch), "ape": ape,
        })
        print(f"[{i:2d}/{len(eval_archs)}] measured {m.median_ms:8.2f} ms  predicted {predicted:8.2f} ms  "
              f"error {100 * ape:5.1f}%  {arch.describe()}", flush=True)

    apes = [r["ape"] for r in rows]
    by_decoder = {d: statistics.fmean(r["ape"] for r in rows if r["decoder"] == d)
                  for d in sorted({r["decoder"] for r in rows})}
    summary = {
        "mape": statistics.fmean(apes),
        "median_ape": statistics.median(apes),
        "max_ape": max(apes),
        "mape_by_decoder": by_decoder,
        "mape_without_overhead": statistics.fmean(abs(r["summed_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows),
        "target_mape": 0.05,
    }
    result = {
        "benchmark": "latency_lut",
        "space": str(args.space.relative_to(ROOT) if args.space.is_relative_to(ROOT) else args.space),
        "threads": args.threads,
        "clock": args.clock,
        "device": lut.device,
        "ref_seconds": args.ref_seconds,
        "vocab_size": VOCAB,
        "timed_unit": "SubnetModel forward (features + encoder) + greedy decoding workload "
                      f"({provider.tokens} tokens), batch 1, inference mode, no I/O",
        "rounds": args.rounds,
        "table": {"parts": len(lut.entries), "full": args.full_table, "overhead_ms": lut.overhead_ms,
                  "calibration": lut.calibration, "build_seconds": build_s},
        "timing": timing,
        "summary": summary,
        "archs": rows,
        "provenance": provenance(seed=1),
    }
    atomic_write_json(args.out, result)
    print(f"{args.clock} clock, {args.threads} thread(s): MAPE {100 * summary['mape']:.2f}% (median {100 * summary['median_ape']:.2f}%, max {100 * summary['max_ape']:.2f}%, "
          f"without overhead {100 * summary['mape_without_overhead']:.2f}%); by decoder "
          + ", ".join(f"{d} {100 * v:.1f}%" for d, v in by_decoder.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
