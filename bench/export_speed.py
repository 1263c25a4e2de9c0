"""Export speed: ONNX Runtime vs eager PyTorch on 1 thread, for the same subnets.

For each subnet (a mobile-like streaming Conformer-CTC and an LSTM RNN-T; random weights: speed
does not depend on their values) this exports the model directory and times, at several
utterance lengths, with ``supernet.profiling.timing.measure_latency`` (1 thread, warm-up,
median and p90 of many repeats; process CPU time by default, which on one thread equals the
latency of an idle machine and is not inflated by neighbours; ``--clock wall`` for wall time):

- ``encoder``: the encoder graph alone on precomputed features (batch 1): eager ``nn.Module``,
  TorchScript and ONNX Runtime run the very same graph;
- ``end_to_end``: ``Recognizer.recognize`` (host features + encoder + greedy search), eager vs
  ONNX Runtime: what ``supernet transcribe`` pays per utterance.

Target: ONNX Runtime >= 1.5x faster than eager on the encoder. Writes
bench/results/export_speed.json. The machine may be shared: the result records the load and the
CPU share this process got; compare numbers from one run only.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python bench/export_speed.py [--seconds 1 2 4] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import Contention, pin_threads, write_result

TARGET_SPEEDUP = 1.5


def archs():
    from supernet.space import Arch, LayerArch

    conf = LayerArch("conformer", "mha", 4, 2, 15)
    return {
        # mobile-like: 4 streaming Conformer layers, 160 ms chunks (4 frames of 40 ms), 80 ms look-ahead
        "mobile_conformer_ctc": Arch("logmel40", 4, 96, (conf,) * 4, "ctc", chunk=4, lookahead=2),
        # recurrent encoder and transducer head (exported with the TorchScript-based ONNX exporter)
        "lstm_rnnt": Arch("logmel40", 4, 96, (LayerArch("lstm"),) * 3, "rnnt", 1, 96),
    }


def bench_arch(name, arch, seconds, timing, work: Path) -> dict:
    import torch

    from supernet.data.tokenizer import CharTokenizer
    from supernet.export import ExportConfig, export_subnet
    from supernet.nn.config import NetConfig
    from supernet.profiling.timing import measure_latency
    from supernet.runtime import Recognizer
    from supernet.subnet import SubnetModel

    tok = CharTokenizer(list(" efghinorstuvwxz"))  # the digit words' letters
    torch.manual_seed(0)
    model = SubnetModel(arch, tok.vocab_size, NetConfig(dropout=0.0, subsampler_channels=64)).eval()
    d = work / name
    meta = export_subnet(model, d, tok, ExportConfig())
    eager = Recognizer.from_model(model, tok)
    recs = {"eager": eager, "torchscript": Recognizer.load(d, "torchscript"), "onnx": Recognizer.load(d, "onnx", threads=1)}
    rows = []
    for s in seconds:
        n = int(s * 16000)
        audio = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(1))
        lengths = torch.tensor([n])
        feats, feat_lengths = eager.features(audio, lengths)
        row = {"seconds": s, "encoder_ms": {}, "end_to_end_ms": {}}
        for backend, rec in recs.items():
            st = measure_latency(lambda rec=rec: rec.encode(feats, feat_lengths), threads=1, **timing)
            row["encoder_ms"][backend] = {"median": st.median_ms, "p90": st.p90_ms, "samples": st.samples}
        for backend in ("eager", "onnx"):
            rec = recs[backend]
            st = measure_latency(lambda rec=rec: rec.recognize(audio, lengths), threads=1, **timing)
            row["end_to_end_ms"][backend] = {"median": st.median_ms, "p90": st.p90_ms, "samples": st.samples}
        e, o = row["encoder_ms"]["eager"]["median"], row["encoder_ms"]["onnx"]["median"]
        row["encoder_speedup_onnx_vs_eager"] = e / o
        row["end_to_end_speedup_onnx_vs_eager"] = row["end_to_end_ms"]["eager"]["median"] / row["end_to_end_ms"]["onnx"]["median"]
        print(f"{name} {s:g}s: encoder eager {e:.2f} ms, torchscript {row['encoder_ms']['torchscript']['median']:.2f} ms, "
              f"onnx {o:.2f} ms (x{e / o:.2f}); end to end x{row['end_to_end_speedup_onnx_vs_eager']:.2f}", flush=True)
        rows.append(row)
    speedups = [r["encoder_speedup_onnx_vs_eager"] for r in rows]
    return {"arch": arch.to_dict(), "describe": arch.describe(), "params": meta["params"],
            "onnx_exporter": meta["export"]["onnx_exporter"], "parity_max_abs_diff": meta["parity"]["max_abs_diff"],
            "lengths": rows, "median_encoder_speedup": statistics.median(speedups),
            "meets_target": statistics.median(speedups) >= TARGET_SPEEDUP}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0, 4.0], help="utterance lengths")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--name", default="export_speed")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu (default): process CPU time, robust to neighbours on a shared machine (1 thread: "
                         "equals latency on an idle one); wall: latency as a user waits")
    args = ap.parse_args(argv)
    pin_threads(1)
    timing = dict(warmup=3, repeats=10 if args.quick else 30, min_run_time=0.2 if args.quick else 1.0, max_run_time=10.0,
                  clock=args.clock)
    contention = Contention(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arch in archs().items():
            results[name] = bench_arch(name, arch, args.seconds, timing, Path(tmp))
    payload = {
        "what": f"median latency ({args.clock} clock) at 1 thread (batch 1); encoder = the same graph in each runtime; "
                "end_to_end = host features + encoder + greedy search",
        "target": f"ONNX Runtime >= {TARGET_SPEEDUP}x faster than eager PyTorch on the encoder",
        "timing": timing, "models": results, "contention": contention.report(),
        "caveat": "shared 2-core machine, other jobs running: absolute times are noisy; the ratio is measured "
                  "back to back in one process",
    }
    path = write_result(args.name, payload, config={"seconds": args.seconds, **timing})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
