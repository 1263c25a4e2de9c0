"""What dropout costs a CPU training step: torch's masks against supernet.nn.dropout's.

On the CPU, ``torch.nn.functional.dropout`` draws every mask element from the Mersenne Twister
(``bernoulli_``, one thread); ``supernet.nn.dropout`` draws one number per call and hashes a
counter (vectorised). Two measurements, both at ``--threads`` threads, "torch" and "ours"
interleaved ``--repeats`` times, medians reported:

- **per call**: forward + backward of one dropout (p 0.1) at the activation shapes of the mobile
  Conformer (batch 16, 100 frames = 4 s at 40 ms; width 96, its feed-forward hidden 384) and of a
  larger batch.
- **per training step**: forward, CTC loss, backward and AdamW step of the baseline Conformer-CTC
  (configs/baseline/conformer_ctc.yaml, dropout 0.05; torchaudio's layers with their dropout
  modules swapped, the attention-weight dropout inside ``nn.MultiheadAttention`` stays torch's)
  and of the mobile subnet w96 x 4 at the fit configs' dropout 0.1, on synthetic 16 x 3 s batches.
  "torch" runs the same modules with ``F.dropout`` in place of our mask.

    OMP_NUM_THREADS=2 .venv/bin/python bench/dropout.py          # ~2 min
Writes bench/results/dropout.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from common import Contention, pin_threads, write_result
from train_step import synthetic_batch

SHAPES = {"mobile d96 (16x100x96)": (16, 100, 96), "mobile ffn (16x100x384)": (16, 100, 384),
          "batch 32, 8 s, ffn (32x200x384)": (32, 200, 384)}


def _interleaved(fns: dict, repeats: int, inner: int) -> dict[str, float]:
    """Median ms per call of each fn, runs interleaved so that drift hits every fn alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            times[k].append((time.perf_counter() - t0) / inner * 1000)
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def per_call(repeats: int) -> dict:
    from supernet.nn.dropout import fast_dropout

    out = {}
    for name, shape in SHAPES.items():
        x = torch.randn(*shape, requires_grad=True)
        ms = _interleaved({"torch": lambda: F.dropout(x, 0.1, True).sum().backward(),
                           "ours": lambda: fast_dropout(x, 0.1).sum().backward()}, repeats, 20)
        out[name] = {**ms, "speedup": round(ms["torch"] / ms["ours"], 2)}
        print(f"  per call {name}: torch {ms['torch']:.2f} ms, ours {ms['ours']:.2f} ms ({out[name]['speedup']}x)", flush=True)
    return out


def per_step(repeats: int) -> dict:
    from streaming import mobile_arch

    import supernet.nn.dropout as D
    from supernet.baseline.config import load_baseline_config
    from supernet.baseline.models import build_model
    from supernet.nn.config import NetConfig
    from supernet.subnet import SubnetModel

    vocab = 12
    batches = [synthetic_batch(16, 3.0, vocab, seed=i) for i in range(4)]
    torch.manual_seed(0)
    models = {
        "baseline conformer_ctc (dropout 0.05)": build_model(load_baseline_config("configs/baseline/conformer_ctc.yaml").model, vocab),
        "mobile subnet w96 x 4 (dropout 0.1)": SubnetModel(mobile_arch(chunk=0, lookahead=None), vocab,
                                                           NetConfig(dropout=0.1, subsampler_channels=64)),
    }
    ours, theirs = D.Dropout._drop, lambda self, x: F.dropout(x, self.p, True)
    out = {}
    for name, model in models.items():
        model.train()
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        n_modules = sum(isinstance(m, D.Dropout) for m in model.modules())

        def step(impl):
            def run():
                D.Dropout._drop = impl
                for b in batches:
                    log_probs, lengths = model(b["audio"], b["audio_lengths"])[:2]
                    loss = F.ctc_loss(log_probs.transpose(0, 1), b["targets"], lengths, b["target_lengths"], zero_infinity=True)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            return run

        try:
            ms = _interleaved({"torch": step(theirs), "ours": step(ours)}, repeats, 1)
        finally:
            D.Dropout._drop = ours
        ms = {k: round(v / len(batches), 1) for k, v in ms.items()}
        out[name] = {**ms, "saved_share": round(1 - ms["ours"] / ms["torch"], 3), "dropout_modules": n_modules}
        print(f"  per step {name}: torch {ms['torch']} ms, ours {ms['ours']} ms "
              f"({100 * out[name]['saved_share']:.1f} % less; {n_modules} dropout modules)", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--name", default="dropout")
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    contention = Contention(args.threads)
    payload = {"per_call_ms_fwd_bwd": per_call(args.repeats), "per_step_ms": per_step(args.repeats)}
    payload["contention"] = contention.report()
    print(f"wrote {write_result(args.name, payload, config=vars(args))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
