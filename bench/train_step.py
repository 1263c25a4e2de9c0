"""Cost of a supernet training step against the networks it trains.

Two ratios (targets from issue #4), and the peak memory of each step:

- **sandwich**: the real training step (``SupernetModule.training_step`` under a Lightning Trainer:
  largest + smallest + N random paths, in-place distillation, one AdamW step over the
  supernet's weights) against the sum, over the same paths, of one step of that path's subnet
  *extracted* (``supernet.subnet.extract``) and trained standalone (forward, loss, backward,
  clipping, AdamW). Target: at most 1.3x per sampled path.
- **darts**: the relaxed forward + backward (every candidate runs, mixed by softmax(alpha))
  against the sum of its candidate ops run one by one: every elastic unit and front-end the
  relaxed forward called is replayed alone on the same inputs (forward + backward), and their
  times are summed. Target: at most 1.1x. The whole darts training step (alpha step + weight
  step) is reported too.

Peak memory is the highest running total of the torch CPU allocator during one step (torch
profiler allocation records), on top of what lived before (weights, optimiser state).
Timings are medians over ``--repeats`` steps after a warm-up, at ``--threads`` threads.

    OMP_NUM_THREADS=2 .venv/bin/python bench/train_step.py                     # conformer_elastic, ~10 min
    OMP_NUM_THREADS=2 .venv/bin/python bench/train_step.py --space configs/space/tiny.yaml --repeats 3 --quick
Writes bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synthetic_batch(batch: int, seconds: float, vocab: int, seed: int = 0) -> dict:
    """Noise audio of lengths spread over [0.7, 1] x seconds, random transcripts (timing only)."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    lengths = (n * (0.7 + 0.3 * torch.rand(batch, generator=g))).long()
    lengths[0] = n
    audio = 0.1 * torch.randn(batch, n, generator=g) * (torch.arange(n)[None] < lengths[:, None])
    tl = torch.randint(3, max(4, int(seconds * 4)), (batch,), generator=g)
    targets = torch.randint(1, vocab, (batch, int(tl.max())), generator=g) * (torch.arange(int(tl.max()))[None] < tl[:, None])
    return {"audio": audio, "audio_lengths": lengths, "targets": targets, "target_lengths": tl,
            "texts": ["x"] * batch, "langs": ["en"] * batch, "ids": [str(i) for i in range(batch)]}


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Highest running total of torch CPU allocations during ``fn()`` (what it adds on top)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        if e.device_type() == torch.autograd.DeviceType.CPU:
            running += e.nbytes()
            peak = max(peak, running)
    return peak


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# ----------------------------------------------------------------------------- lightning step
class StepTimer(L.Callback):
    """Wall time of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, *a: Any) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, *a: Any) -> None:
        self.times.append(time.perf_counter() - self._t)


def lightning_steps(cfg: Any, space: Any, batch: dict, tokenizer: Any, steps: int) -> tuple[Any, list[float], int]:
    """Run ``steps`` real training steps on a repeated batch under a Trainer.

    Returns the module, every step's wall time and the peak bytes of one more strategy step
    (the training step without Lightning's logging; the trainer is still attached).
    """
    from torch.utils.data import DataLoader

    from supernet.training.run import build_module

    module = build_module(cfg, space, tokenizer)
    feed = {"train": batch, "arch": batch} if cfg.bilevel_strategy else batch
    loader = DataLoader([feed] * (steps + 1), batch_size=None, collate_fn=lambda x: x)
    timer = StepTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=loader)
    module.train()
    peak = peak_bytes(lambda: module.strategy.step(module, feed, steps))
    return module, timer.times, peak


# ----------------------------------------------------------------------------- sandwich
def standalone_step(subnet: torch.nn.Module, batch: dict, clip: float) -> Callable[[], None]:
    opt = torch.optim.AdamW(subnet.parameters(), lr=1e-4, fused=True)  # as the supernet module does
    subnet.train()

    def step() -> None:
        enc, lengths = subnet(batch["audio"], batch["audio_lengths"])
        loss = subnet.loss(enc, lengths, batch["targets"], batch["target_lengths"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(subnet.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_sandwich(cfg: Any, space: Any, batch: dict, tokenizer: Any, repeats: int) -> dict:
    from supernet.subnet import extract

    module, times, peak = lightning_steps(cfg, space, batch, tokenizer, repeats + 1)
    strategy = module.strategy
    alone: dict[Any, float] = {}  # arch -> median standalone step time
    per_step = []
    for s in range(1, repeats + 1):  # step 0 is the warm-up
        paths = [a for _, a in strategy.paths(s / cfg.total_steps, s)]
        for arch in paths:
            if arch not in alone:
                alone[arch] = timed(standalone_step(extract(module.net, arch), batch, cfg.optim.grad_clip), repeats=3)
        total = sum(alone[a] for a in paths)
        per_step.append({"step_s": times[s], "standalone_sum_s": total, "paths": len(paths), "ratio": times[s] / total,
                         "archs": [a.describe() for a in paths]})
    largest = extract(module.net, space.largest())
    return {
        "per_step": per_step,
        "median_ratio": statistics.median(r["ratio"] for r in per_step),
        "target_ratio": 1.3,
        "median_step_s": statistics.median(r["step_s"] for r in per_step),
        "peak_bytes_sandwich_step": peak,
        "peak_bytes_largest_standalone_step": peak_bytes(standalone_step(largest, batch, cfg.optim.grad_clip)),
    }


# ----------------------------------------------------------------------------- darts
def capture_candidate_calls(net: torch.nn.Module, run: Callable[[], Any]) -> list[tuple[torch.nn.Module, tuple, dict]]:
    """Every call of an elastic unit or front-end during ``run()``: (module, args, kwargs)."""
    from supernet.nn.elastic import Elastic

    calls: list[tuple[torch.nn.Module, tuple, dict]] = []

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        def keep(x: Any) -> Any:
            return x.detach().clone() if isinstance(x, torch.Tensor) else x
        calls.append((module, tuple(keep(a) for a in args), {k: keep(v) for k, v in kwargs.items()}))

    mods = [m for m in net.modules() if isinstance(m, Elastic)] + list(net.features.values())
    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in mods]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return calls


def replay(calls: list[tuple[torch.nn.Module, tuple, dict]]) -> Callable[[], None]:
    """Run every captured call alone: forward on fresh leaf inputs, backward of its float outputs."""
    def grad_leaf(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return x.clone().requires_grad_(True)
        return x

    def run() -> None:
        for module, args, kwargs in calls:
            out = module(*(grad_leaf(a) for a in args), **{k: grad_leaf(v) for k, v in kwargs.items()})
            outs = out if isinstance(out, (tuple, list)) else (out,)
            total = sum(o.float().sum() for o in outs if isinstance(o, torch.Tensor) and o.requires_grad)
            if isinstance(total, torch.Tensor):
                total.backward()
        for module, _, _ in calls:
            module.zero_grad(set_to_none=True)

    return run


def bench_darts(cfg: Any, space: Any, batch: dict, tokenizer: Any, repeats: int) -> dict:
    module, times, peak_step = lightning_steps(cfg, space, batch, tokenizer, repeats + 1)
    net = module.net.train()
    base = module.strategy.base

    def relaxed() -> None:
        enc, lengths = net(batch["audio"], batch["audio_lengths"], base, mode="relaxed")
        net.loss(enc, lengths, batch["targets"], batch["target_lengths"], base).backward()
        net.zero_grad(set_to_none=True)

    calls = capture_candidate_calls(net, lambda: net(batch["audio"], batch["audio_lengths"], base, mode="relaxed"))
    t_relaxed = timed(relaxed, repeats)
    t_ops = timed(replay(calls), repeats)
    return {
        "relaxed_fwd_bwd_s": t_relaxed,
        "candidate_ops_sum_s": t_ops,
        "candidate_calls": len(calls),
        "ratio": t_relaxed / t_ops,
        "target_ratio": 1.1,
        "darts_training_step_s": statistics.median(times[1:]),
        "peak_bytes_relaxed_fwd_bwd": peak_bytes(relaxed),
        "peak_bytes_darts_step": peak_step,
        "base": base.describe(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="configs/space/conformer_elastic.yaml")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0, help="longest utterance of the batch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num-random", type=int, default=2)
    p.add_argument("--subsampler-channels", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="smaller batch (4) and 1 s utterances: checks the script runs")
    p.add_argument("--out", default=str(REPO / "bench/results/train_step.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.seconds = 4, 1.0

    from supernet.data.tokenizer import CharTokenizer
    from supernet.space import SearchSpace
    from supernet.training.config import load_fit_config
    from supernet.utils import atomic_write_json, provenance

    torch.set_num_threads(args.threads)
    space = SearchSpace.from_yaml(REPO / args.space)
    tokenizer = CharTokenizer.build(["abcdefghijklmnopqrstuvwxyz '"])
    batch = synthetic_batch(args.batch, args.seconds, tokenizer.vocab_size)
    common = {"space": str(REPO / args.space), "specaugment": None, "net": {"subsampler_channels": args.subsampler_channels},
              "trainer": {"max_steps": 1000, "progress": False}}
    sandwich_cfg = load_fit_config({**common, "strategy": "sandwich", "sandwich": {"num_random": args.num_random}})
    darts_cfg = load_fit_config({**common, "strategy": "darts"})
    t0 = time.perf_counter()
    result = {
        "settings": vars(args),
        "sandwich": bench_sandwich(sandwich_cfg, space, batch, tokenizer, args.repeats),
        "darts": bench_darts(darts_cfg, space, batch, tokenizer, args.repeats),
        "provenance": provenance(None, 0),
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(args.out, result)
    s, d = result["sandwich"], result["darts"]
    mb = 2**20
    print(f"sandwich step / sum of standalone path steps: {s['median_ratio']:.2f}x (target <= 1.3x), "
          f"step {s['median_step_s']:.2f} s, peak {s['peak_bytes_sandwich_step'] / mb:.0f} MiB "
          f"(largest alone {s['peak_bytes_largest_standalone_step'] / mb:.0f} MiB)")
    print(f"darts relaxed fwd+bwd / sum of {d['candidate_calls']} candidate ops: {d['ratio']:.2f}x (target <= 1.1x), "
          f"{d['relaxed_fwd_bwd_s']:.2f} s vs {d['candidate_ops_sum_s']:.2f} s, "
          f"peak {d['peak_bytes_relaxed_fwd_bwd'] / mb:.0f} MiB; "
          f"whole darts step {d['darts_training_step_s']:.2f} s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
