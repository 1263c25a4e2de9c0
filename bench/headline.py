"""Headline benchmark (issue #8): searched models against the hand-designed baseline on FSDD.

One command, on 2 CPU threads, FSDD connected digits (test speaker unseen in training):

1. ``supernet run -c configs/run/headline_fsdd.yaml`` (in-process; a rerun skips the stages that
   are current): baseline Conformer-CTC, one supernet (progressive shrinking), then per target
   (mobile, edge, server) search, fine-tune, export and test-set scoring.
2. Per target, the selected and fine-tuned model against the baseline: test WER (whole unseen
   speaker test set, through the exported graph's eager twin, as ``RUN/eval`` scores it; for a
   streaming arch this is streaming WER, chunk masks included) and latency at the target's
   threads on this machine (4 s of audio; the pick: features + encoder + a greedy-decoding
   workload, the baseline: its forward, without decoding, ~2 % less work). The mobile
   target's criterion: WER <= 0.9 x the baseline's, at a latency no higher than the baseline's.
   The baseline trained standalone for the run's per-model budget (see the run config).
   The latency verdict comes from a paired measurement (``--latency-rounds``, default 5): the
   pick and the baseline profiled in alternation at the target's threads, the pick first in
   odd rounds, and the medians of the per-round figures compared, because one profile of the
   same model varies by ~30 % between runs on the dev VM (BENCHMARKS.md, session 20).
3. Cost of specialising: the wall seconds of the supernet fit plus each target's search and
   fine-tuning (from ``RUN/stages.json``), against training each selected arch standalone from
   scratch until its dev WER reaches the fine-tuned model's dev WER (the same dev set and scoring
   code; ``TrainConfig.stop_at``), capped at ``--cap-minutes``. A standalone run that does not
   reach it within the cap counts as the cap: the ratio is then an upper bound. Target: <= 0.5.
4. Total CPU-hours of the run (process CPU of every stage) beside the models it produced.

Export and test-set scoring are not counted as "specialising" (both sides would need them).
The standalone runs are cached under ``RUN/standalone/`` keyed by arch, threshold and settings.

Usage: .venv/bin/python bench/headline.py [--config configs/run/headline_fsdd.yaml] [--cap-minutes 8] [KEY=VALUE ...]
Writes bench/results/headline.json and, beside it, headline_standalone.png (standalone learning
curves against the thresholds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import ROOT, RESULTS, Contention, pin_threads, write_result

WER_RATIO_TARGET = 0.9
COST_RATIO_TARGET = 0.5


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing; the run did not finish (rerun this command to resume it)")
    return json.loads(path.read_text(encoding="utf-8"))


def standalone_time_to_wer(run_dir: Path, target: str, threshold: float, r: Any, cap_minutes: float,
                           finetune_hash: str) -> dict[str, Any]:
    """Train the selected arch of ``target`` from scratch until its dev WER <= ``threshold`` (cached)."""
    import torch

    from supernet.baseline.config import OptimConfig
    from supernet.config import config_hash, to_dict
    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluation.batches import make_batches
    from supernet.evaluation.training import TrainConfig, train_subnet
    from supernet.extraction import read_subnet
    from supernet.finetune import score_subnet
    from supernet.subnet import SubnetModel
    from supernet.utils import atomic_write_json

    sub = read_subnet(run_dir / "finetune" / target / "extracted.pt")
    arch = sub.model.arch
    cfg = TrainConfig(max_steps=10**6, max_minutes=cap_minutes, eval_every=50, patience=10**6, monitor="wer",
                      stop_at=threshold, batch_size=r.data.batch_size, seed=r.run.seed, specaugment=r.fit.specaugment,
                      optim=OptimConfig(lr=r.fit.optim.lr, schedule="constant", warmup=0.05,
                                        weight_decay=r.fit.optim.weight_decay, grad_clip=r.fit.optim.grad_clip))
    key = config_hash({"arch": arch.to_dict(), "threshold": threshold, "train": to_dict(cfg), "finetune": finetune_hash,
                       "net": to_dict(sub.model.net)})
    path = run_dir / "standalone" / f"{target}.json"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            print(f"[headline] standalone {target}: reusing {path}", flush=True)
            return saved
    dm = SpeechDataModule(r.data, tokenizer=sub.tokenizer, progress=True)
    dm.prepare_data()
    dm.setup("fit")
    batches = make_batches(dm.dev_sets, 16, "cpu", sample_rate=r.data.sample_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r.run.seed)
        model = SubnetModel(arch, sub.model.vocab_size, sub.model.net)
    print(f"[headline] standalone {target}: {arch.describe()} from scratch until dev WER <= {threshold:.4f} "
          f"(cap {cap_minutes} min)", flush=True)
    cont = Contention(torch.get_num_threads())
    res = train_subnet(model, dm.train_set, cfg, lambda m: score_subnet(m, batches, sub.tokenizer, label=arch.id),
                       progress=True, label=f"standalone {target}")
    reached = res.stopped == "reached"
    row = {"key": key, "target": target, "arch": arch.to_dict(), "describe": arch.describe(), "threshold_dev_wer": threshold,
           "reached": reached, "seconds_to_threshold": res.curve[-1]["seconds"] if reached else None,
           "seconds_counted": res.curve[-1]["seconds"] if reached else 60.0 * cap_minutes, "cap_minutes": cap_minutes,
           "steps": res.final_step, "best_dev_wer": float(res.best["wer"]), "curve": res.curve, "train_config": to_dict(cfg),
           "contention": cont.report()}
    atomic_write_json(path, row)
    return row


def measure_latencies(run_dir: Path, r: Any, rounds: int) -> dict[str, dict[str, Any]]:
    """:func:`supernet.pipeline.scoring.latency_against_baseline` of each target's fine-tuned pick:
    paired rounds at the target's threads and reference length, the run's evaluate.profile settings."""
    from supernet.baseline.module import load_baseline
    from supernet.extraction import read_subnet
    from supernet.pipeline.scoring import latency_against_baseline

    baseline = load_baseline(run_dir / "baseline" / "model.ckpt").model.eval()
    out: dict[str, dict[str, Any]] = {}
    for name, target in r.targets.items():
        pick = read_subnet(run_dir / "finetune" / name / "subnet.pt").model.eval()
        print(f"[headline] latency {name}: pick and baseline in alternation, {rounds} rounds", flush=True)
        out[name] = latency_against_baseline(pick, baseline, target, r.run.evaluate.profile, rounds)
    return out


def _plot(rows: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for t, row in rows.items():
        xs = [p["seconds"] / 60 for p in row["curve"]]
        line, = ax.plot(xs, [p["wer"] for p in row["curve"]], label=f"{t}: standalone {row['describe'][:40]}")
        ax.axhline(row["threshold_dev_wer"], color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("minutes of standalone training (2 threads)")
    ax.set_ylabel("dev WER")
    ax.set_ylim(0, 1.05)
    ax.set_title("Standalone from scratch vs the specialised model's dev WER (dashed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/run/headline_fsdd.yaml"))
    ap.add_argument("--out", help="run directory (default: the config's out_dir)")
    ap.add_argument("--cap-minutes", type=float, default=8.0, help="cap of each standalone time-to-WER run")
    ap.add_argument("--result", default=str(RESULTS / "headline.json"))
    ap.add_argument("--stages", help="run only these stages of the run (comma-separated, e.g. baseline,eval/baseline to "
                                     "redo the baseline); the others are read as they are")
    ap.add_argument("--latency-rounds", type=int, default=5,
                    help="paired pick/baseline latency rounds per target (0: compare the run's single profiles)")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="run config overrides, as `supernet run` takes them")
    args = ap.parse_args(argv)
    if args.cap_minutes <= 0:
        ap.error(f"--cap-minutes must be > 0, got {args.cap_minutes}")
    if args.latency_rounds < 0:
        ap.error(f"--latency-rounds must be >= 0, got {args.latency_rounds}")

    from supernet.pipeline.config import load_run_config, resolve_run
    from supernet.pipeline.run import check_inputs, run_pipeline
    from supernet.pipeline.stages import StageError

    run, raw = load_run_config(args.config, args.overrides, args.out)
    r = resolve_run(run, args.config)
    check_inputs(r)
    threads = pin_threads(r.run.threads)
    try:
        run_pipeline(r, raw, only=(lambda name: name in set(args.stages.split(","))) if args.stages else None)
    except StageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    run_dir = r.out
    stages = _load(run_dir / "stages.json")["stages"]
    base = _load(run_dir / "eval" / "baseline.json")

    per_target: dict[str, Any] = {}
    standalone: dict[str, dict] = {}
    paired = measure_latencies(run_dir, r, args.latency_rounds) if args.latency_rounds else {}
    for t in r.targets:
        ev = _load(run_dir / "eval" / f"{t}.json")
        ft = _load(run_dir / "finetune" / t / "finetune.json")
        b = base["targets"][t]
        ratio = ev["wer"] / base["wer"] if base["wer"] > 0 else float("inf")
        latency_ok = paired[t]["no_higher"] if t in paired else ev["latency_ms"] <= b["latency_ms"]
        threshold = float(ft["best"]["wer"])
        standalone[t] = standalone_time_to_wer(run_dir, t, threshold, r, args.cap_minutes, stages[f"finetune/{t}"]["hash"])
        spec_s = stages[f"search/{t}"]["seconds"] + stages[f"finetune/{t}"]["seconds"]
        per_target[t] = {
            "selected": ev["describe"], "params": ev["params"], "streaming_arch": ev["streaming_arch"],
            "test_wer": ev["wer"], "baseline_test_wer": base["wer"], "wer_ratio": round(ratio, 4),
            "latency_ms": round(ev["latency_ms"], 2), "baseline_latency_ms": round(b["latency_ms"], 2),
            "latency_threads": ev["threads"], "latency_clock": ev["clock"], "latency_no_higher": latency_ok,
            "latency_verdict_from": "paired" if t in paired else "the run's single profiles", "latency_paired": paired.get(t),
            "meets_target_limits": ev["meets_target"]["ok"], "streaming_wer_sample": ev.get("streaming_wer"),
            "chunk_latency_ms": ev.get("chunk_latency_ms"),
            "dev_wer_finetuned": threshold, "search_plus_finetune_seconds": round(spec_s, 1),
            "standalone_seconds_to_same_dev_wer": standalone[t]["seconds_to_threshold"],
            "standalone_reached": standalone[t]["reached"], "standalone_best_dev_wer": standalone[t]["best_dev_wer"],
        }  # fmt: skip
    mobile = per_target.get("mobile")
    headline_wer = None
    if mobile is not None:
        headline_wer = {"wer_ratio": mobile["wer_ratio"], "latency_no_higher": mobile["latency_no_higher"],
                        "met": mobile["wer_ratio"] <= WER_RATIO_TARGET and mobile["latency_no_higher"]}
    fit_s = stages["fit"]["seconds"]
    spec_total = fit_s + sum(p["search_plus_finetune_seconds"] for p in per_target.values())
    stand_total = sum(s["seconds_counted"] for s in standalone.values())
    all_reached = all(s["reached"] for s in standalone.values())
    cost = {"specialise_seconds": round(spec_total, 1), "fit_seconds": round(fit_s, 1),
            "standalone_seconds": round(stand_total, 1), "all_standalone_reached": all_reached,
            "ratio": round(spec_total / stand_total, 4),
            "ratio_is": "exact" if all_reached else "an upper bound (a standalone run hit the cap; its cost counts as the cap)",
            "met": spec_total / stand_total <= COST_RATIO_TARGET}
    run_cpu = sum(s.get("cpu_seconds") or 0.0 for s in stages.values())
    search_cpu = stages["fit"]["cpu_seconds"] + sum(stages[f"{k}/{t}"]["cpu_seconds"] for t in r.targets for k in ("search", "finetune"))
    compute = {"run_cpu_hours": round(run_cpu / 3600, 3), "search_cpu_hours": round(search_cpu / 3600, 3),
               "run_wall_hours": round(sum(s.get("seconds") or 0.0 for s in stages.values()) / 3600, 3),
               "standalone_cpu_note": "the standalone runs' CPU is in standalone[*].contention",
               "per_stage": {k: {"seconds": v.get("seconds"), "cpu_seconds": v.get("cpu_seconds")} for k, v in stages.items()}}
    result = Path(args.result)
    _plot(standalone, result.with_name(result.stem + "_standalone.png"))
    payload = {"setting": {"config": args.config, "overrides": args.overrides, "run_dir": str(run_dir), "threads": threads,
                           "targets": list(r.targets), "baseline_train_seconds": base.get("train_seconds"),
                           "baseline": base.get("name"), "baseline_params": base.get("params"),
                           "cap_minutes": args.cap_minutes},
               "targets": {"wer_ratio_at_most": WER_RATIO_TARGET, "cost_ratio_at_most": COST_RATIO_TARGET},
               "mobile_vs_baseline": headline_wer, "per_target": per_target, "cost": cost, "compute": compute,
               "standalone": standalone}
    out = write_result("headline", payload, config=raw, seed=r.run.seed, path=result)
    print(f"\nheadline ({run_dir}, {threads} threads):")
    for t, p in per_target.items():
        print(f"  {t:7s} {p['selected']}\n          test WER {p['test_wer']:.4f} vs baseline {p['baseline_test_wer']:.4f} "
              f"(x{p['wer_ratio']:.2f}); latency {p['latency_ms']:.1f} vs {p['baseline_latency_ms']:.1f} ms"
              + (f" (paired, median of {p['latency_paired']['rounds']}: {p['latency_paired']['pick_median_ms']:.1f} vs "
                 f"{p['latency_paired']['baseline_median_ms']:.1f} ms)" if p["latency_paired"] else "") + "; "
              f"standalone to dev WER {p['dev_wer_finetuned']:.4f}: "
              f"{p['standalone_seconds_to_same_dev_wer'] if p['standalone_reached'] else f'not within {args.cap_minutes} min'}")
    if headline_wer:
        print(f"  mobile target (WER <= {WER_RATIO_TARGET}x baseline at <= its latency): {'met' if headline_wer['met'] else 'NOT met'}")
    print(f"  cost: specialise {spec_total:.0f} s vs standalone {stand_total:.0f} s -> x{cost['ratio']:.2f} ({cost['ratio_is']}); "
          f"target <= {COST_RATIO_TARGET}: {'met' if cost['met'] else 'NOT met'}")
    print(f"  compute: run {compute['run_cpu_hours']:.2f} CPU-h ({compute['search_cpu_hours']:.2f} CPU-h fit + search + fine-tune)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
