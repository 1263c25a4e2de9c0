"""The report's figures (matplotlib Agg, PNG, written atomically).

Pareto fronts and search progress are drawn by the search's own helpers
(:mod:`supernet.search.plots`), alpha by the training's (:mod:`supernet.training.alpha`); this
module adds what only the report shows: training curves, diversity (choice entropy over trials),
parameter importances and the error analysis. Every function takes data already read
(:mod:`supernet.report.rundir`) and a path, and returns the path, or None when there is nothing
to draw (the caller says why in the report).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from supernet.utils import atomic_path  # noqa: E402

__all__ = ["baseline_point", "plot_target_pareto", "plot_progress", "plot_training", "plot_training_curves",
           "plot_entropy", "plot_importances", "plot_errors"]  # fmt: skip


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def baseline_point(baseline: Mapping[str, Any] | None, wer_metric: str = "wer", baseline_eval: Mapping[str, Any] | None = None,
                   target: str | None = None) -> dict[str, float]:
    """The hand-designed baseline in search-metric names: dev WER (what the search measures) and
    ``params`` from ``baseline/metrics.json``; latency, RTF and chunk latency measured at the
    target's threads from ``eval/baseline.json`` (``targets.<target>``) when the run has it."""
    if not baseline and not baseline_eval:
        return {}
    out: dict[str, float] = {}
    costs = ((baseline_eval or {}).get("targets") or {}).get(target or "", {})
    for k in ("latency_ms", "chunk_latency_ms", "rtf", "params"):
        if isinstance(costs.get(k), (int, float)):
            out[k] = float(costs[k])
    if baseline_eval and baseline_eval.get("dev_wer") is not None:
        out["wer"] = out["wer_mean"] = out[wer_metric] = float(baseline_eval["dev_wer"])
    baseline = baseline or {}
    dev = (baseline.get("dev_mean") or {}).get("wer")
    if dev is not None:
        out["wer"] = out["wer_mean"] = out[wer_metric] = float(dev)
    params = baseline.get("params", baseline.get("num_parameters"))
    if params is not None:
        out["params"] = float(params)
    for k in ("latency_ms", "chunk_latency_ms", "rtf"):
        if k not in out and isinstance(baseline.get(k), (int, float)):
            out[k] = float(baseline[k])
    return out


def plot_target_pareto(t: Any, cost: str, path: str | Path, baseline: Mapping[str, float] | None = None) -> Path | None:
    """WER vs ``cost`` (``latency_ms``, ``params``, ...) of every arch one target's search
    evaluated, its feasible front, the selected arch and the baseline (when it has both figures).
    None when the archs lack ``cost``."""
    from supernet.search.objectives import with_derived
    from supernet.search.plots import plot_pareto

    wer = t.wer_metric
    if not t.records or any(cost not in with_derived(r.metrics) or wer not in with_derived(r.metrics) for r in t.records):
        return None
    return plot_pareto(t.records, (wer, cost), path, fitness=t.fitness(), baseline=baseline, selected=t.selected,
                       title=f"{t.name}: {wer} vs {cost} ({len(t.records)} archs)")  # fmt: skip


def plot_progress(targets: Mapping[str, Any], path: str | Path) -> Path | None:
    """Best feasible WER so far against evaluations, one line per target."""
    from supernet.search.plots import plot_best_so_far

    series = {}
    for name, t in targets.items():
        fit = t.fitness()
        series[f"{name} ({t.wer_metric})"] = [fit(r.arch, r.metrics) for r in t.records]
    if not any(series.values()):
        return None
    return plot_best_so_far(series, path, ylabel="best feasible dev WER", title="search progress")


def plot_training_curves(rows: Sequence[Mapping[str, str]], path: str | Path, title: str = "") -> Path | None:
    """Dev WER of each scored path (largest, smallest, ...) against the training step, from
    ``fit/metrics.csv`` (columns ``dev/<path>/wer``). None when the log holds no dev WER."""
    cols = sorted({k for r in rows for k in r if k.startswith("dev/") and k.endswith("/wer") and k.count("/") == 2})
    if not cols:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for c in cols:
        pts = [(float(r["step"]), float(r[c])) for r in rows if r.get(c) not in (None, "") and r.get("step") not in (None, "")]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=c.split("/")[1])
    ax.set_xlabel("step")
    ax.set_ylabel("dev WER")
    ax.set_title(title or "supernet training: dev WER per path")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_training(run: Any, path: str | Path) -> tuple[Path | None, str]:
    """Alpha over training (darts / gdas: ``fit/alpha_history.json``) or, for weight-sharing
    strategies without alpha, the dev-WER curves of the scored paths. Returns (path, what)."""
    if run.alpha_history:
        from supernet.training.alpha import plot_alpha_history

        strategy = (run.fit_summary or {}).get("strategy", "")
        return plot_alpha_history(run.alpha_history, path, title=f"{strategy}: softmax(alpha) per decision"), "alpha"
    if run.fit_metrics:
        return plot_training_curves(run.fit_metrics, path), "curves"
    return None, "none"


def plot_entropy(entropies: Mapping[str, Mapping[str, Any]], path: str | Path, top: int = 8) -> Path | None:
    """Per target: normalised entropy (H / log #values) of the ``top`` most varied decisions
    against trials (1 = uniform exploration, 0 = one value only)."""
    entropies = {k: v for k, v in entropies.items() if v["entropy"]}
    if not entropies:
        return None
    fig, axes = plt.subplots(1, len(entropies), figsize=(5.2 * len(entropies), 3.8), squeeze=False)
    for ax, (name, e) in zip(axes[0], entropies.items()):
        norm = {k: [h / e["max"][k] for h in hs] for k, hs in e["entropy"].items()}
        keep = sorted(norm, key=lambda k: -sum(norm[k]))[:top]
        for k in keep:
            ax.plot(e["ends"], norm[k], marker="o", ms=3, label=k)
        mean = [sum(v[i] for v in norm.values()) / len(norm) for i in range(len(e["ends"]))]
        ax.plot(e["ends"], mean, color="k", lw=2.2, label="mean over decisions")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"trials (windows of {e['window']})")
        ax.set_ylabel("entropy / max")
        ax.set_title(f"{name}: diversity of explored choices", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left")
    return _save(fig, path)


def plot_importances(importances: Mapping[str, Mapping[str, float]], path: str | Path, top: int = 10) -> Path | None:
    """Horizontal bars of the ``top`` parameter importances, one panel per target."""
    importances = {k: v for k, v in importances.items() if v}
    if not importances:
        return None
    fig, axes = plt.subplots(1, len(importances), figsize=(5.0 * len(importances), 0.32 * top + 1.4), squeeze=False)
    for ax, (name, imp) in zip(axes[0], importances.items()):
        items = list(imp.items())[:top][::-1]
        ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
        ax.set_xlabel("importance (fANOVA, first objective)")
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def plot_errors(by_length: Sequence[Mapping[str, Any]], by_lang: Mapping[str, Mapping[str, float]], path: str | Path,
                title: str = "") -> Path | None:
    """Two bar charts: WER per utterance-length bucket and per language."""
    if not by_length and not by_lang:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for ax, labels, vals, xl in ((a, [r["bucket"] for r in by_length], [r["wer"] for r in by_length], "utterance length"),
                                 (b, list(by_lang), [v["wer"] for v in by_lang.values()], "language")):  # fmt: skip
        vals = [100 * v if v is not None and not math.isnan(v) else 0.0 for v in vals]
        ax.bar(range(len(vals)), vals, color="tab:orange")
        ax.set_xticks(range(len(vals)), labels, fontsize=7, rotation=20)
        ax.set_xlabel(xl)
        ax.set_ylabel("WER (%)")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title or "error analysis", fontsize=10)
    return _save(fig, path)
