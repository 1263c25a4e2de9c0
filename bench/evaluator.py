"""Evaluator throughput: subnets scored per minute with inherited weights, 2 CPU threads.

Scores random archs of a search space (default: configs/space/default.yaml) on the 200 FSDD
connected-digit dev utterances (about 9 minutes of audio) with ``supernet.evaluate.Evaluator``,
one arch after another, and reports subnets per minute overall and per decoder type, with the
per-arch seconds. Target (issue #5): at least 20 subnets per minute.

What the time includes, per arch: building the static encoder and head on the supernet's weight
slices, the encoder over every dev batch (features come from the per-front-end cache, filled
once before timing starts and reported separately), the loss of every utterance, greedy
decoding, and WER/CER. Weights are random unless ``--checkpoint`` gives a trained supernet: on
random weights the RNN-T and attention decoders emit until their caps (``max_symbols`` per
frame, one token per encoder frame), the worst case of their greedy search; a trained supernet
decodes them faster. The CTC-only figure has no such dependence.

Each arch's wall and process CPU seconds are recorded. On a shared machine the wall rate swings
with the load (and OpenMP's default spin-waiting makes 2 threads much slower than 1 when the
cores are oversubscribed: run with OMP_WAIT_POLICY=PASSIVE there); the "idle estimate" (CPU
seconds spread over the threads) is an upper bound of the rate on an idle machine.

Writes bench/results/NAME.json (date, machine, versions, the contention observed).

Usage (on an otherwise idle machine):
    OMP_NUM_THREADS=2 .venv/bin/python bench/evaluator.py [--archs 30] [--decoders ctc] [--checkpoint runs/fit/X/supernet.ckpt]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from common import ROOT, Contention, pin_threads, write_result

TARGET_PER_MINUTE = 20.0


def _summary(rows: list[dict], threads: int) -> dict:
    secs = [r["seconds"] for r in rows]
    cpu = [r["cpu_seconds"] for r in rows]
    return {"archs": len(rows), "subnets_per_minute": round(60.0 * len(rows) / sum(secs), 2),
            "mean_seconds": round(statistics.mean(secs), 3), "median_seconds": round(statistics.median(secs), 3),
            "max_seconds": round(max(secs), 3), "mean_cpu_seconds": round(statistics.mean(cpu), 3),
            # What the rate would be if the threads had the cores to themselves and scaled perfectly:
            # an upper bound, recorded because this machine is shared and wall times swing with its load.
            "idle_estimate_subnets_per_minute": round(60.0 * len(rows) * threads / sum(cpu), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", type=Path, default=ROOT / "configs/space/default.yaml")
    ap.add_argument("--checkpoint", type=Path, help="a trained supernet (supernet.ckpt); default: random weights")
    ap.add_argument("--archs", type=int, default=30, help="random archs to score")
    ap.add_argument("--decoders", nargs="+", help="only archs with these decoders (default: any), e.g. ctc")
    ap.add_argument("--num-dev", type=int, default=200, help="FSDD dev utterances")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=64, help="subsampler channels (configs/fit use 64)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="evaluator", help="result name: bench/results/NAME.json")
    args = ap.parse_args(argv)

    threads = pin_threads(args.threads)
    import torch

    from supernet.data.datamodule import DataConfig, SpeechDataModule
    from supernet.data.fsdd import FSDDConfig
    from supernet.evaluate import Evaluator
    from supernet.model import SpeechSupernet
    from supernet.nn.config import NetConfig
    from supernet.space import SearchSpace

    torch.set_flush_denormal(True)  # as training entry points do; denormals slow x86 float math
    data = DataConfig(corpus="fsdd", fsdd=FSDDConfig(num_dev=args.num_dev), cache_dir=str(ROOT / "cache/corpora"))
    if args.checkpoint:
        from supernet.train import load_supernet

        net, space, tokenizer, meta = load_supernet(args.checkpoint)
        data = meta["config"].data
    else:
        space = SearchSpace.from_yaml(args.space)
    dm = SpeechDataModule(data, tokenizer=tokenizer if args.checkpoint else None, progress=True)
    dm.setup("validate")
    if not args.checkpoint:
        tokenizer = dm.tokenizer
        torch.manual_seed(args.seed)
        net = SpeechSupernet.from_space(space, tokenizer.vocab_size, NetConfig(subsampler_channels=args.channels)).eval()
    dev_utts = sum(len(ds) for ds in dm.dev_sets.values())
    dev_seconds = sum(sum(ds.durations) for ds in dm.dev_sets.values())
    print(f"dev: {dev_utts} utterances, {dev_seconds:.0f} s of audio; supernet "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters", file=sys.stderr)

    contention = Contention(threads)
    t0 = time.perf_counter()
    ev = Evaluator(net, dm.dev_sets, tokenizer, batch_size=args.batch_size)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in net.config.features:
        ev.features.get(f)
    feature_s = time.perf_counter() - t0

    rng = random.Random(args.seed)
    rows = []
    for i in range(args.archs):
        arch = space.sample(rng)
        while args.decoders and arch.decoder not in args.decoders:
            arch = space.sample(rng)
        t, c = time.perf_counter(), time.process_time()
        m = ev.evaluate(arch)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        rows.append({"arch_id": arch.id, "describe": arch.describe(), "decoder": arch.decoder, "params": m["params"],
                     "seconds": round(dt, 3), "cpu_seconds": round(dc, 3), "wer": m.wer})
        print(f"[{i + 1}/{args.archs}] {dt:6.2f} s  {arch.describe()}", file=sys.stderr, flush=True)
    load = contention.report()

    overall = _summary(rows, threads)
    by_decoder = {d: _summary([r for r in rows if r["decoder"] == d], threads) for d in sorted({r["decoder"] for r in rows})}
    result = {
        "space": str(args.space.relative_to(ROOT) if args.space.is_relative_to(ROOT) else args.space),
        "weights": str(args.checkpoint) if args.checkpoint else f"random (seed {args.seed})",
        "dev_utterances": dev_utts, "dev_audio_seconds": round(dev_seconds, 1), "batch_size": args.batch_size,
        "evaluator_setup_seconds": round(setup_s, 2), "feature_cache_seconds": round(feature_s, 2),
        "overall": overall, "by_decoder": by_decoder,
        "target_subnets_per_minute": TARGET_PER_MINUTE, "target_met": overall["subnets_per_minute"] >= TARGET_PER_MINUTE,
        "decoders": args.decoders or "any", "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "contention": load, "archs": rows,
    }
    out = write_result(args.name, result, config=vars(args), seed=args.seed)
    print(f"overall: {overall['subnets_per_minute']:.1f} subnets/min (median {overall['median_seconds']:.2f} s/arch; "
          f"target {TARGET_PER_MINUTE:.0f}/min: {'met' if result['target_met'] else 'not met'}); "
          f"idle estimate from CPU time {overall['idle_estimate_subnets_per_minute']:.1f}/min")
    for d, s in by_decoder.items():
        print(f"  {d:9s}: {s['subnets_per_minute']:.1f} subnets/min over {s['archs']} archs "
              f"(idle estimate {s['idle_estimate_subnets_per_minute']:.1f})")
    print(f"cpu share {load['cpu_share']} (1.0 = the {threads} threads had the cores to themselves); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
