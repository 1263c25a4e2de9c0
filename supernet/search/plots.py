"""Search plots (matplotlib, PNG, written atomically).

- :func:`plot_pareto`: every evaluated arch on the first two objectives, the Pareto front as a
  step line, infeasible archs hollow, the selected arch and a baseline point when given.
- :func:`plot_best_so_far`: best fitness (first objective among feasible archs) against the
  number of evaluations.
- :func:`plot_choice_frequencies`: how often each value of each decision appears among the top
  archs (a heat map, one row per decision).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from supernet.search.encoding import ArchCodec  # noqa: E402
from supernet.search.objectives import INFEASIBLE, Fitness, with_derived  # noqa: E402
from supernet.search.pareto import pareto_front  # noqa: E402
from supernet.search.storage import Record  # noqa: E402
from supernet.space import SearchSpace  # noqa: E402
from supernet.utils import atomic_path  # noqa: E402

__all__ = ["plot_pareto", "plot_best_so_far", "plot_choice_frequencies"]


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_pareto(records: Sequence[Record], objectives: Sequence[str], path: str | Path, *, fitness: Fitness | None = None,
                baseline: Mapping[str, float] | None = None, selected: Record | None = None, title: str = "") -> Path:
    """Scatter of the first two objectives with the (feasible) Pareto front."""
    if len(objectives) < 2:
        raise ValueError(f"a Pareto plot needs two objectives, got {list(objectives)}")
    x, y = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    feas = [r for r in records if fitness is None or fitness.feasible(r.arch, r.metrics)]
    infeas = [r for r in records if r not in feas]
    get = lambda r, k: with_derived(r.metrics)[k]  # noqa: E731
    if infeas:
        ax.scatter([get(r, y) for r in infeas], [get(r, x) for r in infeas], s=14, facecolors="none", edgecolors="0.6", label="infeasible")
    ax.scatter([get(r, y) for r in feas], [get(r, x) for r in feas], s=14, color="tab:blue", alpha=0.6, label="feasible")
    front = pareto_front(feas, objectives[:2])
    if front:
        ax.step([get(r, y) for r in front][::-1], [get(r, x) for r in front][::-1], where="post", color="tab:red", lw=1.5, label="Pareto front")
        ax.scatter([get(r, y) for r in front], [get(r, x) for r in front], s=22, color="tab:red", zorder=3)
    if selected is not None:
        ax.scatter([get(selected, y)], [get(selected, x)], s=140, marker="*", color="gold", edgecolors="k", zorder=4, label="selected")
    if baseline and x in baseline and y in baseline:
        ax.scatter([baseline[y]], [baseline[x]], s=90, marker="X", color="k", zorder=4, label="baseline")
    ax.set_xlabel(y)
    ax.set_ylabel(x)
    if _log_scale(records, y):
        ax.set_xscale("log")
    ax.set_title(title or f"{x} vs {y} ({len(records)} archs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _log_scale(records: Sequence[Record], key: str) -> bool:
    """Whether ``key`` spans more than a decade of positive values (then a log axis reads better)."""
    v = [with_derived(r.metrics)[key] for r in records]
    return bool(v) and min(v) > 0 and max(v) / min(v) > 10


def plot_best_so_far(series: Mapping[str, Sequence[float]], path: str | Path, *, ylabel: str = "best fitness",
                     reference: float | None = None, title: str = "") -> Path:
    """One line per run: best fitness after each evaluation (infeasible values are not drawn)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, fit in series.items():
        best, ys = float("inf"), []
        for f in fit:
            best = min(best, f)
            ys.append(best if best < INFEASIBLE else float("nan"))
        ax.plot(range(1, len(ys) + 1), ys, label=label, lw=1.4)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label="reference")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "best so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_choice_frequencies(records: Sequence[Record], space: SearchSpace, path: str | Path, *, title: str = "") -> Path:
    """Heat map: share of the given (top) archs taking each value of each decision."""
    codec = ArchCodec(space)
    counts = {s.name: Counter(codec.values(r.arch)[s.name] for r in records) for s in codec.slots}
    if not records:
        raise ValueError("plot_choice_frequencies needs at least one record")
    rows = codec.slots
    grid = [[counts[s.name].get(v, 0) / len(records) for v in s.values] for s in rows]
    width = max(len(s.values) for s in rows)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * width, 0.28 * len(rows) + 1.2))
    matrix = [[row[j] if j < len(row) else float("nan") for j in range(width)] for row in grid]
    im = ax.imshow(matrix, aspect="auto", cmap="Blues", vmin=0, vmax=1)
    for i, s in enumerate(rows):
        for j, v in enumerate(s.values):
            ax.text(j, i, "-" if v is None else str(v), ha="center", va="center", fontsize=6,
                    color="white" if matrix[i][j] > 0.6 else "black")  # fmt: skip
    ax.set_yticks(range(len(rows)), [s.name for s in rows], fontsize=7)
    ax.set_xticks([])
    ax.set_title(title or f"choices among the top {len(records)} archs")
    fig.colorbar(im, ax=ax, fraction=0.03, label="share")
    return _save(fig, path)
