"""Alpha over training: entropy, a history of softmax(alpha) per decision, and its plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from supernet.utils import atomic_path

__all__ = ["entropy", "flatten", "plot_alpha_history"]


def entropy(dist: dict[Any, float]) -> float:
    """Shannon entropy (nats) of one decision's probabilities."""
    return -sum(p * math.log(p) for p in dist.values() if p > 0)


def flatten(distributions: dict[str, dict[Any, float]]) -> dict[str, float]:
    """``{"layers.0.block": {"conformer": 0.6}}`` -> ``{"alpha/layers.0.block=conformer": 0.6}``."""
    return {f"alpha/{name}={value}": p for name, dist in distributions.items() for value, p in dist.items()}


def plot_alpha_history(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """One panel per decision: probability of each candidate against the training step.

    Args:
        history: ``[{"step": int, "probs": {decision: {value: p}}}, ...]`` in step order.
        path: PNG to write (atomically).
        title: figure title.

    Returns:
        ``path``, or None when the history is empty (nothing to plot).
    """
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe on servers and in DDP workers
    import matplotlib.pyplot as plt

    names = list(history[-1]["probs"])
    cols = min(3, len(names)) or 1
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False, sharex=True)
    steps = [h["step"] for h in history]
    for ax, name in zip(axes.flat, names):
        for value in history[-1]["probs"][name]:
            ax.plot(steps, [h["probs"].get(name, {}).get(value, float("nan")) for h in history], label=str(value))
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0.0, 1.0)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.97 if title else 1.0))  # leave room for the title
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
