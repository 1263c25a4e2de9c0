"""Test-set scores of a run's models: ``RUN/eval/<target>.json`` and ``RUN/eval/baseline.json``.

Per target, the fine-tuned subnet that was exported is scored on every test set (the
evaluator's code: :func:`supernet.evaluation.evaluator.score_batches`, so test and dev numbers
compare), per set and per language, with every utterance's hypothesis kept for error analysis.
Its costs are measured at the target's thread count (capped at this machine's cores):
params, FLOPs, peak memory, latency median / p90 and RTF at several lengths, and per-chunk
latency for a streaming arch. A streaming arch is also streamed chunk by chunk through the
exported model (:func:`supernet.streaming.evaluate_for_target`): streaming WER and measured
step latency. The export's parity figures are copied from its metadata.

The baseline is scored from its own test results (``baseline/metrics.json``) and profiled at
each target's thread count, so that the report can place it on each target's Pareto plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from supernet.profiling.costs import capped_target, profile_metrics, threads_for, timing_clock
from supernet.utils import atomic_write_json, provenance

__all__ = ["score_test_sets", "evaluate_target", "evaluate_baseline", "profile_settings", "latency_against_baseline"]


def _lengths(target: Any, extra: list[float]) -> tuple[float, ...]:
    return tuple(sorted({float(target.reference_seconds), *map(float, extra)}))


def profile_settings(target: Any, profile: Any, lengths: tuple[float, ...]) -> dict[str, Any]:
    """Keyword arguments of :func:`supernet.profile.profile_model` (and ``profile_subnet``) for
    ``target`` under a run's ``evaluate.profile`` section: the target's threads (capped at this
    machine's cores), the clock they imply, and the section's warm-up and repeats."""
    threads = threads_for(target, profile.clock)
    return {"threads": threads, "lengths": lengths, "warmup": profile.warmup, "repeats": profile.repeats,
            "min_run_time": profile.min_run_time, "clock": timing_clock(threads, profile.clock)}


def latency_against_baseline(pick: Any, baseline: Any, target: Any, profile: Any, rounds: int, factor: float = 1.0) -> dict[str, Any]:
    """:func:`~supernet.profiling.costs.paired_latency` of a fine-tuned subnet against the baseline
    model at ``target``'s threads and reference length under a ``profile`` section (the pick is
    timed as the eval stage times it, the baseline by its forward)."""
    from supernet.profile import profile_model, profile_subnet
    from supernet.profiling.costs import paired_latency

    kw = profile_settings(target, profile, (float(target.reference_seconds),))

    def one_pick() -> float:
        return profile_metrics(profile_subnet(pick, chunk_left=profile.chunk_left, **kw), pick.arch, target.reference_seconds)["latency_ms"]

    def one_base() -> float:
        return profile_metrics(profile_model(baseline, **kw), None, target.reference_seconds)["latency_ms"]

    return {**paired_latency(one_pick, one_base, rounds, factor), "threads": kw["threads"], "clock": kw["clock"],
            "audio_seconds": float(target.reference_seconds)}


def score_test_sets(model: torch.nn.Module, test_sets: dict[str, Any], tokenizer: Any, batch_size: int = 16) -> dict[str, Any]:
    """WER/CER/loss of a static subnet per test set and per language, and every utterance's hypothesis.

    Returns:
        ``{"wer", "cer", "loss" (means over sets), "sets": {name: Score dict}, "langs": {...},
        "utterances": [{"set", "lang", "id", "duration" (s), "ref", "hyp"}, ...]}``
    """
    from dataclasses import asdict

    from supernet.evaluation.batches import make_batches
    from supernet.evaluation.evaluator import score_batches
    from supernet.evaluation.results import summarize

    batches = make_batches(test_sets, batch_size, "cpu", sample_rate=model.net.sample_rate)
    model.eval()
    with torch.inference_mode():
        groups = score_batches(lambda i, b: model.encoder(*model.features(b.audio, b.audio_lengths)), model.head, batches, tokenizer)
    sets, langs = summarize(groups)
    # score_batches appends a group's hypotheses batch by batch, in batch order: pair them with the ids.
    rate = model.net.sample_rate
    ids: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for b in batches:
        ids.setdefault((b.set_name, b.lang), []).extend(zip(b.ids, (round(int(n) / rate, 3) for n in b.audio_lengths)))
    rows = [{"set": g.set_name, "lang": g.lang, "id": i, "duration": dur, "ref": ref, "hyp": hyp}
            for g in groups for (i, dur), ref, hyp in zip(ids[(g.set_name, g.lang)], g.refs, g.hyps)]
    n = len(sets)
    return {"wer": sum(s.wer for s in sets.values()) / n, "cer": sum(s.cer for s in sets.values()) / n,
            "loss": sum(s.loss for s in sets.values()) / n, "sets": {k: asdict(v) for k, v in sets.items()},
            "langs": {k: asdict(v) for k, v in langs.items()}, "utterances": rows}


def _stream_items(test_sets: dict[str, Any], n: int | None) -> list[tuple[torch.Tensor, str]]:
    """Up to ``n`` test utterances spread over the sets (round robin), as (wave, text)."""
    pools = [[ds[i] for i in range(len(ds))] for ds in test_sets.values()]
    items: list[tuple[torch.Tensor, str]] = []
    k = 0
    while any(k < len(p) for p in pools) and (n is None or len(items) < n):
        for p in pools:
            if k < len(p) and (n is None or len(items) < n):
                items.append((p[k]["audio"], p[k]["text"]))
        k += 1
    return items


def evaluate_target(r: Any, run_dir: Path, target_name: str) -> dict[str, Any]:
    """Score the exported model of ``target_name``; write ``eval/<target>.json`` (see the module docstring)."""
    from supernet.config import load_config
    from supernet.data.datamodule import DataConfig, SpeechDataModule
    from supernet.extraction import read_subnet
    from supernet.profile import profile_subnet
    from supernet.runtime import read_metadata

    sec = r.run.evaluate
    target = r.targets[target_name]
    sub = read_subnet(run_dir / "finetune" / target_name / "subnet.pt")
    model, tokenizer = sub.model.eval(), sub.tokenizer
    export_dir = run_dir / "export" / target_name
    meta = read_metadata(export_dir)
    data = load_config(DataConfig, sub.extra["data"])
    dm = SpeechDataModule(data, tokenizer=tokenizer, progress=False)
    dm.setup("test")
    test = score_test_sets(model, dm.test_sets, tokenizer, sec.batch_size)
    p = sec.profile
    kw = profile_settings(target, p, _lengths(target, sec.lengths))
    prof = profile_subnet(model, chunk_left=p.chunk_left, **kw)
    arch = model.arch
    streaming = None
    if arch.streaming:
        from supernet.streaming import evaluate_for_target

        streaming = evaluate_for_target(str(export_dir), capped_target(target), _stream_items(dm.test_sets, sec.stream_utterances),
                                        backend=sec.backend)
    sel = json.loads((run_dir / "search" / target_name / "selected.json").read_text(encoding="utf-8"))
    ft = json.loads((run_dir / "finetune" / target_name / "finetune.json").read_text(encoding="utf-8"))
    parity = meta.get("parity", {})
    worst = max((d for v in parity.get("max_abs_diff", {}).values() for g in v.values() for d in g.values()), default=None)
    costs = profile_metrics(prof, arch, target.reference_seconds)
    vs_base = None
    lv = r.run.search.latency_vs_baseline
    if lv is not None:
        from supernet.baseline.module import load_baseline

        baseline = load_baseline(run_dir / "baseline" / "model.ckpt").model.eval()
        vs_base = latency_against_baseline(model, baseline, target, p, lv.rounds, lv.factor)
    result = {
        "target": target_name, "device": prof.device, "threads": kw["threads"], "target_threads": target.threads,
        "clock": kw["clock"],
        "arch": arch.to_dict(), "arch_id": arch.id, "describe": arch.describe(), "streaming_arch": arch.streaming,
        "test": {k: v for k, v in test.items() if k != "utterances"},
        "wer": test["wer"], "wer_per_set": {k: v["wer"] for k, v in test["sets"].items()},
        "wer_per_language": {k: v["wer"] for k, v in test["langs"].items()},
        "params": prof.params, "flops": prof.flops, "macs": prof.macs, "memory_mb": prof.peak_mem_mb,
        "cost_seconds": prof.cost_seconds,
        "latency": {k: {"p50_ms": s.median_ms, "p90_ms": s.p90_ms, "rtf": prof.rtf[k]} for k, s in prof.latency.items()},
        "latency_ms": costs["latency_ms"], "latency_p90_ms": costs["latency_p90_ms"], "rtf": costs["rtf"],
        "reference_seconds": target.reference_seconds,
        "chunk_latency_ms": costs.get("chunk_latency_ms") if arch.streaming else None,
        "chunk_latency_p90_ms": costs.get("chunk_latency_p90_ms") if arch.streaming else None,
        "streaming": streaming, "streaming_wer": streaming["wer"] if streaming else None,
        "export": {"dir": str(export_dir), "formats": meta.get("export", {}).get("formats"), "parity": parity,
                   "parity_max_abs_diff": worst, "graphs": list(meta.get("graphs", {}))},
        "latency_vs_baseline": vs_base,
        "search": {"dev_metrics": sel.get("metrics", {}), "cost_measurement": sel.get("cost_measurement"),
                   "latency_vs_baseline": sel.get("latency_vs_baseline")},
        "finetune": {"start": ft.get("start"), "best": ft.get("best"), "best_step": ft.get("best_step"),
                     "final_step": ft.get("final_step"), "stopped": ft.get("stopped"), "seconds": ft.get("seconds")},
        "what_timing_includes": prof.what_timing_includes,
        "limits": {k: v for k, v in vars(target.limits).items() if v is not None},
        "objectives": list(target.objectives),
        "utterances": test["utterances"],
        "provenance": provenance(None, r.run.seed),
    }
    result["meets_target"] = _meets(target, arch, result)
    atomic_write_json(run_dir / "eval" / f"{target_name}.json", result)
    return result


def _meets(target: Any, arch: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The target's limits checked on the test-time measurements (violations listed)."""
    metrics = {k: result[k] for k in ("latency_ms", "rtf", "memory_mb") if result.get(k) is not None}
    metrics["params"] = float(result["params"])
    metrics["chunk_latency_ms"] = result["chunk_latency_ms"] if result["chunk_latency_ms"] is not None else result["latency_ms"]
    try:
        violations = [str(v) for v in target.violations(arch, metrics)]
    except Exception as e:  # noqa: BLE001 - a limit the final measurement does not cover is reported, not fatal
        return {"ok": None, "note": str(e)}
    vs = result.get("latency_vs_baseline")
    if vs is not None and not vs["ok"]:
        violations.append(f"latency {vs['pick_median_ms']:.3g} ms > x{vs['factor']:g} the baseline's {vs['baseline_median_ms']:.3g} ms "
                          f"(x{vs['ratio']:.3f}, {vs['rounds']} paired rounds)")
    return {"ok": not violations, "violations": violations}


def evaluate_baseline(r: Any, run_dir: Path) -> dict[str, Any]:
    """The baseline's test scores and its costs at each target's threads; writes ``eval/baseline.json``."""
    from supernet.baseline.module import load_baseline
    from supernet.profile import profile_model

    metrics = json.loads((run_dir / "baseline" / "metrics.json").read_text(encoding="utf-8"))
    module = load_baseline(run_dir / "baseline" / "model.ckpt")
    model = module.model.eval()
    sec = r.run.evaluate
    p = sec.profile
    per_target: dict[str, Any] = {}
    for name, target in r.targets.items():
        kw = profile_settings(target, p, _lengths(target, sec.lengths))
        prof = profile_model(model, **kw)
        costs = profile_metrics(prof, None, target.reference_seconds)
        per_target[name] = {"threads": prof.threads, "target_threads": target.threads, "device": prof.device,
                            "clock": kw["clock"],
                            **costs, "params": prof.params,
                            "latency": {k: {"p50_ms": s.median_ms, "p90_ms": s.p90_ms, "rtf": prof.rtf[k]}
                                        for k, s in prof.latency.items()},
                            "what_timing_includes": prof.what_timing_includes}
    test = metrics.get("test", {})
    langs = {name.split(".", 1)[1]: v["wer"] for name, v in test.items() if "." in name}
    result = {"name": metrics.get("name"), "kind": "baseline", "model": r.baseline.model.kind if r.baseline else None,
              "params": metrics.get("num_parameters"), "wer": metrics.get("test_mean", {}).get("wer"),
              "wer_per_set": {k: v["wer"] for k, v in test.items()}, "wer_per_language": langs,
              "dev_wer": metrics.get("dev_mean", {}).get("wer"), "test": test, "train_seconds": metrics.get("train_seconds"),
              "train_cpu_seconds": metrics.get("train_cpu_seconds"), "steps": metrics.get("steps"),
              "streaming_arch": False, "targets": per_target, "provenance": provenance(None, r.run.seed)}
    atomic_write_json(run_dir / "eval" / "baseline.json", result)
    return result
