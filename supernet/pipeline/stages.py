"""The stages of a run, each a thin call of the stage's own library function.

Every function takes the resolved run (:class:`~supernet.pipeline.config.ResolvedRun`) and the
run directory, writes its outputs below it (layout in :mod:`supernet.pipeline.run`), and is
safe to call again after an interruption: ``resume=True`` continues what can be continued
(training from ``fit/checkpoints/last.ckpt``, a search from its study DB); everything else
starts again from a clean folder.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from supernet.config import ConfigError, to_dict
from supernet.utils import atomic_write_json

__all__ = ["StageError", "clean", "corpus_stage", "baseline_stage", "fit_stage", "search_stage", "finetune_stage",
           "export_stage"]


class StageError(RuntimeError):
    """A stage ran but could not produce its outputs (e.g. no searched arch meets the target)."""


def clean(path: Path) -> None:
    """Remove a stage's old outputs before it runs again from scratch."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- corpus
def corpus_fields(data: Any) -> dict[str, Any]:
    """The fields of a DataConfig that decide the corpus (not how it is batched)."""
    d = to_dict(data)
    keep = {"corpus", "cache_dir", "sample_rate", "train_manifest", "dev_manifests", "test_manifests", "mono", "skip_bad"}
    if data.corpus in ("espeak", "fsdd"):
        keep.add(data.corpus)
    return {k: v for k, v in d.items() if k in keep}


def corpus_stage(r: Any, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Build (or find in the cache) the corpus; record where it is in ``corpus/corpus.json``."""
    from supernet.data.datamodule import SpeechDataModule

    dm = SpeechDataModule(r.data, progress=True)
    manifests = dm.manifests()
    counts = {}
    for name, path in manifests.items():
        with open(path, encoding="utf-8") as f:
            counts[name] = sum(1 for line in f if line.strip())
    record = {"corpus": r.data.corpus, "dir": str(dm.corpus_dir()) if dm.corpus_dir() else None,
              "manifests": {k: str(v) for k, v in manifests.items()}, "utterances": counts,
              "dev_sets": dm.dev_names, "test_sets": dm.test_names, "config": corpus_fields(r.data)}
    atomic_write_json(run_dir / "corpus" / "corpus.json", record)
    return record


# ---------------------------------------------------------------------------- baseline
def baseline_stage(r: Any, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train the hand-designed baseline (``supernet baseline fit``) into ``baseline/``."""
    from supernet.baseline.train import fit

    out = run_dir / "baseline"
    clean(out)  # the baseline trains in one go (no resume): an interrupted one starts again
    return fit(r.baseline, out, progress=True)


# ---------------------------------------------------------------------------- fit
def fit_stage(r: Any, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train the supernet (``supernet fit``) into ``fit/``; resume from ``fit/checkpoints/last.ckpt``."""
    from supernet.training.run import fit

    out = run_dir / "fit"
    cfg = dataclasses.replace(r.fit, out_dir=str(out))
    last = out / "checkpoints" / "last.ckpt"
    ckpt = last if resume and last.is_file() else None
    if ckpt is None:
        clean(out)
    else:
        _say(f"[run] fit: resuming from {ckpt}")
    result = fit(cfg, resume=ckpt)
    return result.summary


# ---------------------------------------------------------------------------- search
def dev_subset(dev_sets: dict[str, Any], n: int | None, seed: int) -> dict[str, Any]:
    """``n`` utterances of each dev set (a seeded sample kept in corpus order), or all of them."""
    out = {}
    for name, ds in dev_sets.items():
        idx = list(range(len(ds)))
        if n is not None and n < len(idx):
            idx = sorted(random.Random(f"{seed}/{name}").sample(idx, n))
        out[name] = [ds[i] for i in idx]
    return out


def search_stage(r: Any, run_dir: Path, target_name: str, resume: bool = False) -> dict[str, Any]:
    """Search the trained supernet for one target into ``search/<target>/`` and select its arch.

    The evaluator scores dev WER with inherited weights on ``search.dev_utterances`` per dev
    set and attaches costs measured on this machine (:class:`~supernet.profiling.costs.MeasuredCosts`).
    ``selected.json`` holds the arch :func:`~supernet.search.targets.select_for_target` picks.
    """
    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluation.evaluator import Evaluator
    from supernet.profiling.costs import MeasuredCosts
    from supernet.search.config import build_strategy
    from supernet.search.evaluators import MetricsAdapter
    from supernet.search.loop import run_search
    from supernet.search.objectives import Fitness
    from supernet.search.storage import StudyDB
    from supernet.search_cli import write_outputs
    from supernet.training.run import load_supernet

    sec = r.run.search
    out = run_dir / "search" / target_name
    if not resume:
        clean(out)
    out.mkdir(parents=True, exist_ok=True)
    target = r.targets[target_name]
    net, space, tokenizer, meta = load_supernet(run_dir / "fit" / "supernet.ckpt")
    space = target.restrict(space)
    storage = f"sqlite:///{out / 'study.db'}"
    cfg = dataclasses.replace(r.search, target=target_name, storage=storage, out_dir=str(run_dir / "search"),
                              study_name=f"{r.run.name}-{target_name}-{r.search.strategy}")
    dm = SpeechDataModule(meta["config"].data, tokenizer=tokenizer, progress=False)
    dm.setup("validate")
    dev = dev_subset(dm.dev_sets, sec.dev_utterances, cfg.seed)
    p = sec.profile
    costs = MeasuredCosts(net, target, warmup=p.warmup, repeats=p.repeats, min_run_time=p.min_run_time, chunk_left=p.chunk_left,
                          clock=p.clock)
    ev = Evaluator(net, dev, tokenizer, batch_size=sec.batch_size, costs=costs, cache_path=out / "evaluations.jsonl")
    confirm, reference, tries = None, None, 5
    if sec.latency_vs_baseline is not None:
        from supernet.baseline.module import load_baseline
        from supernet.profiling.costs import BaselineLatency

        lv = sec.latency_vs_baseline
        tries = lv.tries
        vs_base = BaselineLatency(load_baseline(require(run_dir / "baseline" / "model.ckpt", "the baseline")).model, costs,
                                  factor=lv.factor, rounds=lv.rounds)
        reference = vs_base.reference()
        target = target.tightened(latency_ms=reference["latency_ms"])
        _say(f"[run] search {target_name}: the baseline takes {reference['baseline_median_ms']:.2f} ms (median of {lv.rounds}, "
             f"{costs.threads} thread(s), {target.reference_seconds:g} s); latency_ms limit {target.limits.latency_ms:.2f} ms")

        def confirm(rec: Any) -> dict[str, Any]:
            from supernet.subnet import extract

            said = vs_base.confirm(extract(net, rec.arch).eval())
            _say(f"[run] search {target_name}: confirmation of {rec.arch.id}: {'ok' if said['ok'] else 'refused'} ({said['summary']})")
            return said
    objectives = cfg.resolved_objectives(target)
    fitness = Fitness(objectives, target)
    db = StudyDB(storage, cfg.study_name, space, objectives)
    strategy = build_strategy(cfg, space, fitness)
    before = len(db.records())
    _say(f"[run] search {target_name}: {before} archs in the study so far; objectives {list(objectives)}; "
         f"strategy {strategy.name}; {sum(len(d) for d in dev.values())} dev utterances; costs at {costs.threads} thread(s)")
    deadline = None if sec.max_minutes is None else time.monotonic() + 60.0 * sec.max_minutes
    stop = None if deadline is None else (lambda rec, f: time.monotonic() >= deadline)
    result = run_search(strategy, MetricsAdapter(ev), db, n_trials=cfg.n_trials, seed=cfg.seed, progress=True, stop_when=stop)
    status = write_outputs(cfg, out, db, result, space, target, objectives, fitness, storage=storage, plots=sec.plots,
                           confirm=confirm, confirm_tries=tries)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary["cost_measurement"] = costs.describe()
    if reference is not None:
        summary["latency_vs_baseline"] = {"reference": reference, "limit_ms": target.limits.latency_ms,
                                          "confirmations": summary.pop("confirmations", [])}
    summary["dev_utterances"] = {k: len(v) for k, v in dev.items()}
    summary["stopped_by"] = "n_trials" if len(result.records) >= cfg.n_trials else ("exhausted" if result.exhausted else "max_minutes")
    atomic_write_json(out / "summary.json", summary)
    if status != 0 or not summary.get("selected"):
        raise StageError(f"search {target_name}: {summary.get('selection_error', 'no arch selected')}")
    sel = summary["selected"]
    atomic_write_json(out / "selected.json", {"target": target_name, "arch": sel["arch"], "arch_id": sel.get("arch_id"),
                                              "metrics": sel.get("metrics", {}), "record": sel,
                                              "cost_measurement": costs.describe(),
                                              "latency_vs_baseline": summary.get("latency_vs_baseline")})
    return summary


# ---------------------------------------------------------------------------- finetune
def finetune_stage(r: Any, run_dir: Path, target_name: str, resume: bool = False) -> dict[str, Any]:
    """Extract the selected arch and fine-tune it (``supernet finetune``) into ``finetune/<target>/``."""
    from supernet.extraction import extract_from_checkpoint
    from supernet.finetune import finetune
    from supernet.space import Arch

    out = run_dir / "finetune" / target_name
    clean(out)
    sel = json.loads((run_dir / "search" / target_name / "selected.json").read_text(encoding="utf-8"))
    arch = Arch.from_dict(sel["arch"])
    extracted = extract_from_checkpoint(run_dir / "fit" / "supernet.ckpt", arch, out / "extracted.pt")
    return finetune(extracted, r.finetune, out)


# ---------------------------------------------------------------------------- export
def export_stage(r: Any, run_dir: Path, target_name: str, resume: bool = False) -> dict[str, Any]:
    """Export the fine-tuned subnet (``supernet export``: TorchScript + ONNX, parity checked) into ``export/<target>/``."""
    from supernet.export import export_subnet
    from supernet.extraction import read_subnet

    sub = read_subnet(run_dir / "finetune" / target_name / "subnet.pt")
    return export_subnet(sub.model, run_dir / "export" / target_name, sub.tokenizer, r.export, force=True,
                         source={"subnet": str(sub.path), **sub.extra.get("source", {})}, progress=True)


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a ConfigError naming it and the stage that writes it."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found; rerun `supernet run` (the stage that writes it reruns)")
    return path
