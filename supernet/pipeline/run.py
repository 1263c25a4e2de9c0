"""`supernet run`: corpus -> baseline -> supernet fit -> per target: search, fine-tune, export, evaluate -> report.

    supernet run -c configs/run/quickstart.yaml                 # RUN = out_dir of the config
    supernet run -c configs/run/quickstart.yaml --out runs/q2 search.set.n_trials=20 targets=[server]

The run directory::

    RUN/run.yaml              the resolved run config (every stage's resolved config under `stages:`)
    RUN/provenance.json       seed, library versions, machine
    RUN/stages.json           per stage: hash, deps, status, started/finished, seconds, CPU seconds
    RUN/corpus/corpus.json    where the corpus is (it lives in the cache_dir), its sets and sizes
    RUN/baseline/             `supernet baseline fit` output (model.ckpt, metrics.json, ...)
    RUN/fit/                  `supernet fit` output (supernet.ckpt, summary.json, checkpoints/, ...)
    RUN/search/<target>/      study.db, front.json, summary.json, selected.json, evaluations.jsonl, plots
    RUN/finetune/<target>/    extracted.pt (the selected arch as extracted), subnet.pt, finetune.json
    RUN/export/<target>/      the model directory (ONNX + TorchScript + metadata.json with parity)
    RUN/eval/<target>.json    test WER per set and language, costs, streaming, parity, hypotheses
    RUN/eval/baseline.json    the baseline's test WER and its costs at each target's threads
    RUN/report/               written by supernet.report (when installed)

Stages and what they read (a stage's hash covers its config and these stages' hashes)::

    corpus <- data            baseline <- corpus          fit <- corpus
    search/T <- fit           finetune/T <- search/T      export/T <- finetune/T
    eval/T <- export/T        eval/baseline <- baseline   report <- every eval
    (with ``search.latency_vs_baseline``, search/T and eval/T also read the baseline: they time it)

A rerun skips current stages, resumes an interrupted one and reruns changed ones with everything
downstream (see :mod:`supernet.pipeline.ledger`). One line per stage says which.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from supernet.config import ConfigError, hash_view, to_dict
from supernet.pipeline import stages as S
from supernet.pipeline.config import ResolvedRun, stage_configs
from supernet.pipeline.ledger import Ledger, stage_hash
from supernet.utils import atomic_write_json, atomic_write_text, provenance

__all__ = ["Stage", "plan", "run_pipeline", "RunSummary", "results_lines"]


@dataclass
class Stage:
    """One step of the plan: name, hash, deps, outputs (relative to RUN), and the call that makes them."""

    name: str
    config: Any
    deps: dict[str, str]
    outputs: list[str]
    call: Callable[[bool], Any]
    resume_from: str | None = None  # the output (relative to RUN) an interrupted attempt continues from
    hash: str = ""

    def __post_init__(self) -> None:
        self.hash = stage_hash(self.config, self.deps)


@dataclass
class RunSummary:
    """What :func:`run_pipeline` did: per stage ``skipped`` / ``ran`` / ``resumed`` and seconds."""

    run_dir: Path
    actions: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plan(r: ResolvedRun) -> list[Stage]:
    """The stages of ``r`` in order, with their hashes (computed from configs; nothing runs)."""
    run_dir = r.out
    cfgs = stage_configs(r, hash_view)
    out: list[Stage] = []

    def add(name: str, config: Any, deps: list[str], outputs: list[str], call: Callable[[bool], Any],
            resume_from: str | None = None) -> Stage:
        hashes = {d: next(s.hash for s in out if s.name == d) for d in deps}
        st = Stage(name, config, hashes, outputs, call, resume_from)
        out.append(st)
        return st

    add("corpus", S.corpus_fields(r.data), [], ["corpus/corpus.json"], lambda resume: S.corpus_stage(r, run_dir, resume))
    if r.baseline is not None:
        add("baseline", cfgs["baseline"], ["corpus"], ["baseline/model.ckpt", "baseline/metrics.json"],
            lambda resume: S.baseline_stage(r, run_dir, resume))
    add("fit", cfgs["fit"], ["corpus"], ["fit/supernet.ckpt", "fit/summary.json"], lambda resume: S.fit_stage(r, run_dir, resume),
        resume_from="fit/checkpoints/last.ckpt")
    search_cfg = {"search": cfgs["search"], "run": hash_view(r.run.search)}
    vs_base = ["baseline"] if r.run.search.latency_vs_baseline is not None else []  # searches and evals time the baseline
    search_cfg["run"].pop("set", None)
    search_cfg["run"].pop("config", None)
    evals = []
    for t in r.targets:
        tcfg = cfgs["targets"][t]

        def bind(fn: Callable, t: str = t) -> Callable[[bool], Any]:
            return lambda resume: fn(r, run_dir, t, resume)

        add(f"search/{t}", {**search_cfg, "target": tcfg}, ["fit", *vs_base],
            [f"search/{t}/study.db", f"search/{t}/summary.json", f"search/{t}/selected.json"], bind(S.search_stage),
            resume_from=f"search/{t}/study.db")
        add(f"finetune/{t}", cfgs["finetune"], [f"search/{t}"], [f"finetune/{t}/subnet.pt", f"finetune/{t}/finetune.json"],
            bind(S.finetune_stage))
        add(f"export/{t}", cfgs["export"], [f"finetune/{t}"], [f"export/{t}/metadata.json"], bind(S.export_stage))
        from supernet.pipeline.scoring import evaluate_target

        add(f"eval/{t}", {"evaluate": to_dict(r.run.evaluate), "target": tcfg, **({"vs_baseline": search_cfg["run"]["latency_vs_baseline"]}
            if vs_base else {})}, [f"export/{t}", *vs_base], [f"eval/{t}.json"],
            lambda resume, t=t: evaluate_target(r, run_dir, t))
        evals.append(f"eval/{t}")
    if r.baseline is not None:
        from supernet.pipeline.scoring import evaluate_baseline

        add("eval/baseline", {"evaluate": to_dict(r.run.evaluate), "targets": cfgs["targets"]}, ["baseline"],
            ["eval/baseline.json"], lambda resume: evaluate_baseline(r, run_dir))
        evals.append("eval/baseline")
    if r.run.report:
        add("report", {"report": 1}, evals, ["report"], lambda resume: _report(run_dir))
    return out


class ReportUnavailable(Exception):
    """``supernet.report`` is not installed: the report stage is skipped (and retried next run)."""


def _report(run_dir: Path) -> Any:
    try:
        from supernet.report import write_report
    except ImportError as e:
        raise ReportUnavailable(f"supernet.report is not available ({e}); the run's results are in {run_dir}") from None
    return write_report(run_dir)


def _write_run_files(r: ResolvedRun, raw: dict) -> None:
    r.out.mkdir(parents=True, exist_ok=True)
    doc = {**to_dict(r.run), "stages": {k: v for k, v in stage_configs(r).items()}}
    atomic_write_text(r.out / "run.yaml", "# resolved by `supernet run` from " + r.where + "\n"
                      + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    prov = provenance(r.run, r.run.seed)
    prov["config_file"] = r.where
    prov["raw_config"] = raw
    atomic_write_json(r.out / "provenance.json", prov)


def run_pipeline(r: ResolvedRun, raw: dict | None = None, only: Callable[[str], bool] | None = None) -> RunSummary:
    """Run every stage of ``r`` that is not current (see the module docstring).

    Args:
        r: the resolved run (:func:`supernet.pipeline.config.resolve_run`).
        raw: the run config as read (recorded in provenance.json).
        only: run only stages for which this returns True (the others are left as they are).

    Raises:
        StageError, ConfigError: a stage failed; its entry is ``failed`` (with the error) and the next run resumes it.
    """
    t_start = time.monotonic()
    stages = plan(r)
    _write_run_files(r, raw or {})
    ledger = Ledger(r.out)
    summary = RunSummary(r.out)
    redone: set[str] = set()
    for st in stages:
        if only is not None and not only(st.name):
            continue
        d = ledger.decide(st.name, st.hash, st.outputs)
        if any(dep in redone for dep in st.deps) and d.action == "skip":
            # same config, but an input was recomputed (e.g. its outputs had been deleted): a
            # time-budgeted training is not bit-for-bit repeatable, so what read it is stale
            d.action, d.reason = "run", "an input stage was recomputed"
        if d.action == "skip":
            _say(f"[run] {st.name}: skipped (current, hash {st.hash})")
            summary.actions[st.name] = "skipped"
            continue
        # an interrupted stage continues only from what its attempt left (a checkpoint, a study);
        # without it, it starts again, and the ledger says so (resumed: false)
        resume = d.action == "resume" and st.resume_from is not None and (r.out / st.resume_from).exists()
        reason = d.reason
        if d.action == "resume" and not resume and st.resume_from:
            reason += f"; nothing to resume from, {st.resume_from} is missing"
        _say(f"[run] {st.name}: {'resuming' if resume else 'started'} ({reason})")
        t0 = time.monotonic()
        try:
            with ledger.record(st.name, st.hash, st.deps, st.outputs) as entry:
                entry["resumed"] = resume
                clocked = stopped_by_clock(st.call(resume))
                if clocked:
                    entry["stopped_by"] = clocked
        except ReportUnavailable as e:
            ledger.forget(st.name)
            _say(f"[run] {st.name}: skipped: {e}")
            summary.actions[st.name] = "unavailable"
            continue
        except BaseException:
            _say(f"[run] {st.name}: FAILED after {time.monotonic() - t0:.0f} s (rerun `supernet run` to resume)")
            raise
        missing = [o for o in st.outputs if not (r.out / o).exists()]
        if missing:
            raise S.StageError(f"stage {st.name} finished without writing {', '.join(missing)}")
        summary.actions[st.name] = "resumed" if resume else "ran"
        summary.seconds[st.name] = time.monotonic() - t0
        redone.add(st.name)
        _say(f"[run] {st.name}: done in {summary.seconds[st.name]:.0f} s")
        if clocked:
            _say(f"[run] {st.name}: ended by its {clocked} before its step budget, so its result depends "
                 f"on this machine's speed; raise {clocked} for a run that repeats exactly")
    summary.wall_seconds = time.monotonic() - t_start
    _say(f"[run] {r.out}: {sum(a in ('ran', 'resumed') for a in summary.actions.values())} stage(s) ran, "
         f"{sum(a == 'skipped' for a in summary.actions.values())} current; this call {summary.wall_seconds:.0f} s; "
         f"all stages {ledger.total('seconds'):.0f} s wall, {ledger.total('cpu_seconds'):.0f} s CPU")
    return summary


def stopped_by_clock(result: Any) -> str | None:
    """Which wall clock ended a stage's training or search before its steps: "max_minutes" (the
    budget, which also steers the schedule), "time_limit_minutes" (the stop-only guard), or None.

    Baseline, fit and search summaries say ``stopped_by``; fine-tuning says ``stopped``.
    """
    if not isinstance(result, dict):
        return None
    why = result.get("stopped_by", result.get("stopped"))
    return {"max_minutes": "max_minutes", "time_limit": "time_limit_minutes"}.get(why)


def results_lines(out: str | Path, targets: list[str] | tuple[str, ...] = ()) -> list[str]:
    """What a run produced, for the terminal: the baseline's and each target's test WER (mean over
    the test sets), streaming WER, parameters, latency and whether the pick meets its target,
    read from ``RUN/eval/*.json``; then where the report is. A missing file is said, not skipped."""
    import json

    out = Path(out)

    def pct(x: Any) -> str:
        return f"{100 * x:6.1f} %" if isinstance(x, (int, float)) else "     – "

    def read(name: str) -> dict | None:
        path = out / "eval" / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    lines = [f"results: test WER, mean over the test sets ({out / 'eval'})"]
    base = read("baseline")
    if base is None:
        lines.append("  baseline  no eval/baseline.json")
    else:
        lines.append(f"  {'baseline':<10}{pct(base.get('wer'))}{'':<22}{base.get('params', 0) / 1e6:5.2f} M params")
    for name in targets:
        e = read(name)
        if e is None:
            lines.append(f"  {name:<10}no eval/{name}.json (its stages did not finish)")
            continue
        stream = f"streaming {pct(e.get('streaming_wer')).strip():>7}" if e.get("streaming_arch") else ""
        ok = (e.get("meets_target") or {}).get("ok")
        lines.append(f"  {name:<10}{pct(e.get('wer'))}  {stream:<20}{e.get('params', 0) / 1e6:5.2f} M params  "
                     f"{e.get('latency_ms', float('nan')):6.1f} ms  {'meets' if ok else 'misses'} the target  {e.get('describe', '')}")
    report = out / "report" / "report.md"
    lines.append(f"report: {report}" if report.is_file() else "report: not written (see the report stage above)")
    return lines


def check_inputs(r: ResolvedRun) -> None:
    """Files a run reads that no stage writes (configs were checked by resolve_run)."""
    if r.fit.init_from and not Path(r.fit.init_from).is_file():
        raise ConfigError(f"{r.where}: field 'fit.set.init_from': {r.fit.init_from} not found; give a `supernet fit` "
                          "checkpoint or remove the field")
    d = r.finetune.distill
    if d is not None and d.teacher and not Path(d.teacher).is_file():
        raise ConfigError(f"{r.where}: field 'finetune.set.distill.teacher': {d.teacher} not found; leave it null "
                          "(the run's supernet) or give an existing checkpoint")
