"""Rank agreement between two scorings of the same archs, and size-stratified arch samples.

:func:`rank_correlations` gives Kendall's tau (``scipy.stats.kendalltau``, tau-b) and Spearman's
rho with percentile bootstrap confidence intervals: resample the archs (pairs) with replacement,
recompute, take the (1 - c)/2 and (1 + c)/2 quantiles. Written out rather than with
``scipy.stats.bootstrap`` because at the sizes a rank check affords (K ~ 4-20) some resamples
hold a single distinct arch and the statistic is undefined; those are dropped and counted
(``RankStat.undefined``) instead of turning the whole interval into NaN.

:func:`stratified_sample` draws archs across the size range: a pool of random archs is sorted by
size (parameters) and cut into K equal-count strata, one arch drawn from each.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["RankStat", "bootstrap_ci", "rank_correlations", "stratified_sample"]

STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "kendall_tau": lambda x, y: float(stats.kendalltau(x, y).statistic),
    "spearman": lambda x, y: float(stats.spearmanr(x, y).statistic),
}


@dataclass(frozen=True)
class RankStat:
    """A rank correlation with its bootstrap interval.

    Attributes:
        value: the point estimate on all pairs (NaN when undefined, e.g. a constant input).
        low, high: the percentile bootstrap interval.
        confidence: its level (0.95).
        samples: bootstrap resamples drawn.
        undefined: resamples where the statistic was undefined (dropped).
        n: number of pairs.
    """

    value: float
    low: float
    high: float
    confidence: float
    samples: int
    undefined: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}] ({self.confidence:.0%} CI, n={self.n})"


def _defined(stat: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray) -> float:
    if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return math.nan  # a constant input has no ranking (scipy would warn and return NaN)
    return stat(x, y)


def bootstrap_ci(x: Sequence[float], y: Sequence[float], stat: Callable[[np.ndarray, np.ndarray], float], *,
                 samples: int = 2000, confidence: float = 0.95, seed: int = 0) -> RankStat:
    """Point estimate and percentile bootstrap interval of ``stat(x, y)`` over resampled pairs.

    Args:
        x, y: paired values (same length, at least 2).
        stat: a statistic of two arrays (e.g. Kendall's tau).
        samples: bootstrap resamples.
        confidence: interval level in (0, 1).
        seed: seeds the resampling (``numpy.random.default_rng``).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and paired, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"a rank correlation needs at least 2 pairs, got {len(x)}")
    if samples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need samples >= 1 and 0 < confidence < 1, got {samples}, {confidence}")
    value = _defined(stat, x, y)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(samples, len(x)))
    values = np.array([_defined(stat, x[i], y[i]) for i in draws])
    ok = values[~np.isnan(values)]
    if len(ok):
        low, high = np.quantile(ok, [(1 - confidence) / 2, (1 + confidence) / 2])
    else:
        low = high = math.nan
    return RankStat(value, float(low), float(high), confidence, samples, int(len(values) - len(ok)), len(x))


def rank_correlations(x: Sequence[float], y: Sequence[float], *, samples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> dict[str, RankStat]:
    """Kendall's tau and Spearman's rho of paired scores, each with a bootstrap interval."""
    return {name: bootstrap_ci(x, y, fn, samples=samples, confidence=confidence, seed=seed)
            for name, fn in STATISTICS.items()}


def stratified_sample(space: Any, k: int, rng: random.Random, size: Callable[[Any], float], pool: int | None = None) -> list[Any]:
    """``k`` distinct archs spread over the size range of ``space``.

    Draws ``pool`` archs (default ``20 k``; duplicates dropped), sorts them by ``size(arch)``,
    cuts the order into ``k`` strata of (nearly) equal count and draws one arch per stratum.
    Returned smallest stratum first.

    Raises:
        ValueError: the space holds fewer than ``k`` distinct archs in the pool.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pool = pool or 20 * k
    seen: dict[str, Any] = {}
    for _ in range(pool):
        a = space.sample(rng)
        seen.setdefault(a.id, a)
    archs = sorted(seen.values(), key=lambda a: (size(a), a.id))
    if len(archs) < k:
        raise ValueError(f"drew only {len(archs)} distinct archs from {pool} samples, fewer than k={k}; "
                         "raise the pool size or lower k")
    out = []
    for s in range(k):
        stratum = archs[s * len(archs) // k:(s + 1) * len(archs) // k]
        out.append(rng.choice(stratum))
    return out
