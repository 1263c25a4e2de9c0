"""Pareto fronts and hypervolume, from Optuna's implementations (not written by hand).

Optuna 5.0 has no public function for a Pareto front of arbitrary points or for a hypervolume;
the implementations it uses itself (``Study.best_trials``, NSGA-II, ``plot_hypervolume_history``)
live in ``optuna.study._multi_objective`` (fast non-dominated sort) and ``optuna._hypervolume``
(WFG / exact 2-D and 3-D). They are imported here, in one place, and pinned by tests
(``tests/test_search_pareto.py``), so an Optuna upgrade that moves them fails loudly here.

Every objective is minimised (``supernet.search.objectives``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import numpy as np

try:  # Optuna's own non-dominated sorting and hypervolume (see the module docstring)
    from optuna._hypervolume import compute_hypervolume as _compute_hypervolume
    from optuna.study._multi_objective import _fast_non_domination_rank
except ImportError as e:  # pragma: no cover - only on an Optuna that moved them
    raise ImportError(f"supernet.search.pareto needs optuna's non-dominated sort and hypervolume (optuna 4-5): {e}") from e

__all__ = ["nondominated_ranks", "pareto_mask", "pareto_front", "hypervolume", "reference_point"]

T = TypeVar("T")


def _as_array(values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"expected an (N, M) array of objective values, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("objective values must be finite")
    return a


def nondominated_ranks(values: Any) -> np.ndarray:
    """Front index of every point: 0 = Pareto-optimal, 1 = optimal once front 0 is removed, ...

    Args:
        values: (N, M) objective values, all minimised.

    Returns:
        (N,) int ranks.
    """
    a = _as_array(values)
    return _fast_non_domination_rank(a) if len(a) else np.zeros(0, dtype=int)


def pareto_mask(values: Any) -> np.ndarray:
    """(N,) bool: which points no other point dominates (duplicates of an optimal point included)."""
    return nondominated_ranks(values) == 0


def pareto_front(items: Sequence[T], objectives: Sequence[str], *, values: Callable[[T], Sequence[float]] | None = None) -> list[T]:
    """The Pareto-optimal items, sorted by the first objective.

    Args:
        items: anything with objective values: search Records (``.metrics``) by default.
        objectives: metric names (for Records) — also fixes M.
        values: ``f(item) -> [v_1, ..., v_M]`` to read the values another way.
    """
    if not items:
        return []
    from supernet.search.objectives import objective_values

    get = values or (lambda r: objective_values(r.metrics, objectives))
    vals = np.array([list(get(it)) for it in items], dtype=float)
    mask = pareto_mask(vals)
    order = np.lexsort(vals.T[::-1])  # by first objective, then the next
    return [items[i] for i in order if mask[i]]


def reference_point(values: Any, margin: float = 0.1) -> np.ndarray:
    """A reference point just worse than every point: max + margin * range (per objective)."""
    a = _as_array(values)
    hi, lo = a.max(axis=0), a.min(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return hi + margin * span


def hypervolume(values: Any, reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``values`` (minimised) and bounded by ``reference``.

    Points not strictly better than the reference in every objective add nothing and are left
    out (Optuna's routine refuses them).
    """
    a = _as_array(values) if len(values) else np.zeros((0, len(reference)))
    ref = np.asarray(reference, dtype=float)
    if a.shape[1] != ref.shape[0]:
        raise ValueError(f"reference has {ref.shape[0]} objectives, values have {a.shape[1]}")
    a = a[(a < ref).all(axis=1)]
    if not len(a):
        return 0.0
    return float(_compute_hypervolume(a, ref))
