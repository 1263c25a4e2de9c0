"""Assemble ``RUN/report/``: ``report.md`` and its PNGs, written as one directory swap.

:func:`write_report` reads the run (:func:`~supernet.report.rundir.load_run`), draws every figure,
computes the analyses and writes the Markdown. The whole folder is built under a temporary name
and renamed into place, so a report is always complete (never a new Markdown beside old PNGs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supernet.report import analysis, plots
from supernet.report.diagram import plot_archs
from supernet.report.rundir import RunData, TargetRun, load_run
from supernet.report.tables import NA, fmt, header_lines, md_table, selected_table, top_archs_table

__all__ = ["write_report", "render_report"]


def _img(name: str | None, alt: str, why: str) -> str:
    return f"![{alt}]({name})" if name else f"_({alt}: {why})_"


def _latency_metric(t: TargetRun) -> str:
    """``latency_ms`` when the search measured it, else the streaming ``chunk_latency_ms``."""
    for m in ("latency_ms", "chunk_latency_ms"):
        if t.records and all(m in r.metrics for r in t.records):
            return m
    return "latency_ms"


def _pareto_section(run: RunData, out: Path) -> list[str]:
    lines = ["## Pareto fronts", "",
             "Every arch each search evaluated (dev WER with inherited weights), the feasible Pareto front, the "
             "arch selected for the target (star) and the hand-designed baseline (X, dev WER of `baseline/`) where "
             "the baseline has both figures.", ""]  # fmt: skip
    for name, t in run.targets.items():
        base = plots.baseline_point(run.baseline, t.wer_metric, run.baseline_eval, name)
        lines.append(f"### {name}")
        for cost in (_latency_metric(t), "params"):
            png = plots.plot_target_pareto(t, cost, out / f"pareto_{name}_{cost}.png", baseline=base)
            why = f"the search recorded no {cost!r}"
            lines.append(_img(png and png.name, f"{name}: WER vs {cost}", why))
            if png and cost not in base:
                why = "baseline/metrics.json is missing" if not base else f"neither baseline/metrics.json nor eval/baseline.json records its {cost}"
                lines.append(f"_baseline not drawn: {why}_")
        lines.append("")
    return lines


def _selected_section(run: RunData) -> list[str]:
    lines = ["## Selected model per target", "",
             "Test-set figures of the fine-tuned model selected for each target (`eval/<target>.json`); `n/a`: "
             "the run did not record that figure.", "", selected_table(run.targets, run.baseline_eval), ""]  # fmt: skip
    for name, t in run.targets.items():
        sel = t.summary.get("selected")
        if sel:
            lines.append(f"- **{name}** ({t.target.device}): `{sel.get('describe')}` (trial {sel.get('number')}, "
                         f"strategy {sel.get('strategy') or NA})")  # fmt: skip
        else:
            lines.append(f"- **{name}**: no arch met the target: {t.summary.get('selection_error', NA)}")
        if t.eval is None:
            lines.append(f"  - `eval/{name}.json` missing: the evaluation stage has not run for this target")
        if t.finetune:
            best = (t.finetune.get("best") or {}).get("wer")
            lines.append(f"  - fine-tune: best dev WER {fmt(best, 'pct')} at step {t.finetune.get('best_step', NA)}, "
                         f"stopped by {t.finetune.get('stopped', NA)}")  # fmt: skip
        lines += _against_baseline_lines(t)
    return lines + [""]


def _against_baseline_lines(t: TargetRun) -> list[str]:
    """The latency limit taken from the baseline (``search.latency_vs_baseline``), its paired
    confirmations in the search and at test time, and whether the target's limits were met."""
    lines = []
    lv = t.summary.get("latency_vs_baseline")
    if lv:
        ref, checks = lv.get("reference", {}), lv.get("confirmations", [])
        refused = [c for c in checks if not c.get("ok")]
        lines.append(f"  - latency limit from the baseline: {fmt(lv.get('limit_ms'))} ms (x{ref.get('factor', NA)} its median "
                     f"{fmt(ref.get('baseline_median_ms'))} ms over {ref.get('rounds', NA)} profiles, {ref.get('threads', NA)} "
                     f"thread(s)); {len(refused)} pick(s) refused by the paired confirmation"
                     + "".join(f"; `{c.get('arch_id')}`: {c.get('summary', NA)}" for c in refused))  # fmt: skip
    vs = (t.eval or {}).get("latency_vs_baseline")
    if vs:
        lines.append(f"  - test-time latency against the baseline ({vs.get('rounds')} paired rounds, {vs.get('threads')} "
                     f"thread(s)): {fmt(vs.get('pick_median_ms'))} vs {fmt(vs.get('baseline_median_ms'))} ms "
                     f"(x{fmt(vs.get('ratio'))}), {'within' if vs.get('ok') else 'over'} the limit x{vs.get('factor')}")  # fmt: skip
    meets = (t.eval or {}).get("meets_target")
    if meets:
        said = "yes" if meets.get("ok") else ("not checked: " + meets["note"] if meets.get("ok") is None
                                             else "no: " + "; ".join(meets.get("violations", [])))
        lines.append(f"  - meets the target's limits on the test-time measurements: {said}")
    return lines


def _training_section(run: RunData, out: Path) -> list[str]:
    png, what = plots.plot_training(run, out / "training.png")
    strategy = (run.fit_summary or {}).get("strategy", NA)
    lines = ["## Supernet training", ""]
    if what == "alpha":
        lines.append(f"Strategy {strategy}: softmax(alpha) of each decision over training (`fit/alpha_history.json`).")
    elif what == "curves":
        lines.append(f"Strategy {strategy} has no alpha: dev WER of the largest / smallest paths over training (`fit/metrics.csv`).")
    lines.append(_img(png and png.name, "training", "fit/ holds neither alpha_history.json nor dev WER in metrics.csv"))
    dev = (run.fit_summary or {}).get("dev") or {}
    if dev:
        rows = [[p, fmt(v.get("wer"), "pct")] for p, v in dev.items()]
        lines += ["", "Final dev WER of the scored paths (inherited weights):", "", md_table(["path", "dev WER"], rows)]
    return lines + [""]


def _understanding_section(run: RunData, out: Path, top_n: int) -> tuple[list[str], dict[str, Any]]:
    lines = ["## Selected architectures", ""]
    archs = {f"{n}: {t.selected.arch.id}": t.selected.arch for n, t in run.targets.items() if t.selected is not None}
    if archs:
        plot_archs(archs, out / "architectures.png")
        lines.append(_img("architectures.png", "selected architectures", ""))
    else:
        lines.append("_(no target has a selected arch)_")
    lines += ["", f"## Top {top_n} archs per target", ""]
    for name, t in run.targets.items():
        metrics = [m for m in (t.wer_metric, "latency_ms", "chunk_latency_ms", "params", "flops", "rtf") if
                   any(m in r.metrics for r in t.records)]  # fmt: skip
        table, _ = top_archs_table(t.records, t.fitness(), list(dict.fromkeys(metrics)), n=top_n)
        lines += [f"### {name}", "", table, ""]
    lines += ["## Which choices matter", "",
              "Optuna's fANOVA parameter importances for the first objective (WER) of each study; decisions are "
              "the flat arch encoding (`supernet.search.encoding`).", ""]  # fmt: skip
    imps: dict[str, dict[str, float]] = {}
    for name, t in run.targets.items():
        imp, why = analysis.param_importances(t.study)
        imps[name] = imp
        if why:
            lines.append(f"- {name}: {why}")
        else:
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in list(imp.items())[:5]))
    png = plots.plot_importances(imps, out / "importances.png")
    lines += ["", _img(png and png.name, "parameter importances", "no study had enough trials"), ""]
    return lines, imps


def _errors_section(run: RunData, out: Path) -> list[str]:
    lines = ["## Error analysis of the selected models", "",
             "From the per-utterance hypotheses in `eval/<target>.json` (jiwer word alignment).", ""]  # fmt: skip
    for name, t in run.targets.items():
        utts = (t.eval or {}).get("utterances")
        lines.append(f"### {name}")
        if not utts:
            lines += [f"_(no per-utterance results in eval/{name}.json)_", ""]
            continue
        errs = analysis.utterance_errors(utts, where=f"eval/{name}.json: utterances")
        subs = analysis.top_substitutions(errs, 10)
        by_len = analysis.wer_by_length(errs)
        by_lang = analysis.wer_by_group(errs, "lang")
        png = plots.plot_errors(by_len, by_lang, out / f"errors_{name}.png", title=f"{name}: WER by length and language")
        lines += [f"{len(errs)} utterances, {sum(e.words for e in errs)} reference words.", "",
                  "Most frequent substitutions:", "",
                  md_table(["reference", "recognised", "count"], subs) if subs else "_(no substitutions)_", "",
                  md_table(["length", "utterances", "words", "WER"],
                           [[r["bucket"], r["utterances"], r["words"], fmt(r["wer"], "pct")] for r in by_len]), "",
                  md_table(["language", "utterances", "words", "WER"],
                           [[k, v["utterances"], v["words"], fmt(v["wer"], "pct")] for k, v in by_lang.items()]), "",
                  _img(png and png.name, "errors", "nothing to plot"), ""]  # fmt: skip
    return lines


def _diversity_section(run: RunData, out: Path) -> list[str]:
    from optuna.trial import TrialState

    ent = {n: analysis.choice_entropy(t.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) for n, t in run.targets.items()}
    png = plots.plot_entropy(ent, out / "diversity.png")
    return ["## Diversity of exploration", "",
            "Entropy of each decision's values among consecutive windows of evaluated archs, divided by its maximum "
            "(1: every value equally often; falling lines: the search concentrates).", "",
            _img(png and png.name, "diversity", "no decision varied"), ""]  # fmt: skip


def _compute_section(run: RunData) -> list[str]:
    lines = ["## Compute used", ""]
    rows = analysis.stage_compute(run.stages)
    if rows:
        total = [r["cpu_hours"] for r in rows if r["cpu_hours"] is not None]
        lines += [md_table(["stage", "status", "wall (s)", "CPU (s)", "CPU-hours"],
                           [[r["stage"], r["status"] or NA, fmt(r["seconds"]), fmt(r["cpu_seconds"]), fmt(r["cpu_hours"])]
                            for r in rows]), "",
                  f"Total: {fmt(sum(total)) if total else NA} CPU-hours over the stages that recorded CPU time.", ""]  # fmt: skip
    else:
        lines += ["_(stages.json missing: no per-stage time recorded)_", ""]
    trows = []
    for name, t in run.targets.items():
        c = analysis.trial_counts(t.study)
        stopped = c["pruned"]
        share = f"{100 * stopped / c['total']:.1f}%" if c["total"] else NA
        ft = (t.finetune or {}).get("stopped", NA)
        trows.append([name, c["evaluated"], c["pruned"], share, c["duplicates"], c["failed"], ft])
    lines += [md_table(["target", "evaluations", "pruned (stopped early)", "share stopped early", "duplicate proposals",
                        "failed", "fine-tune stopped by"], trows), ""]  # fmt: skip
    return lines


def render_report(run: RunData, out: Path, top_n: int = 5) -> str:
    """Draw every figure into ``out`` and return the Markdown (relative image links)."""
    lines = [f"# Run report: {run.root.name}", ""]
    lines += header_lines(run.provenance, run.config_hash) + [""]
    missing = [p for p in ("run.yaml", "provenance.json", "stages.json", "baseline/metrics.json", "fit/summary.json")
               if not (run.root / p).is_file()]  # fmt: skip
    if missing:
        lines += ["Missing from the run directory (their sections say n/a): " + ", ".join(f"`{m}`" for m in missing), ""]
    lines += _selected_section(run)
    lines += _pareto_section(run, out)
    png = plots.plot_progress(run.targets, out / "progress.png")
    lines += ["## Search progress", "", _img(png and png.name, "search progress", "no evaluated archs"), ""]
    lines += _training_section(run, out)
    understanding, _ = _understanding_section(run, out, top_n)
    lines += understanding
    lines += _errors_section(run, out)
    lines += _diversity_section(run, out)
    lines += _compute_section(run)
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *, top_n: int = 5) -> Path:
    """Write ``RUN/report/report.md`` and its PNGs (see the module docstring).

    Args:
        run_dir: the run directory (``runs/quickstart``).
        out_dir: where to write (default ``RUN/report``); replaced as a whole.
        top_n: archs per target in the side-by-side table.

    Returns:
        The path of ``report.md``.

    Raises:
        ReportError: the run directory or a stage output the report needs is missing (names the path).
    """
    from supernet.utils import atomic_dir
    from supernet.utils import atomic_write_text

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.root / "report"

    def fill(tmp: Path) -> None:
        atomic_write_text(tmp / "report.md", render_report(run, tmp, top_n))

    atomic_dir(out, fill, force=True)
    return out / "report.md"
