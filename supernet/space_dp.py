"""Exact dynamic programming over layers: counting and best choice under an additive budget.

An encoder is a sequence of layer slots, each with a finite list of options; costs (params,
latency) and scores (log-probabilities, accuracy proxies) add up over the layers. Two questions
come back again and again, and both are answered like counting paths in a grid, by DP over
(layer, cost so far), never by enumeration:

- how many paths cost at most ``B`` (:func:`count_under_budget`);
- which path maximises the summed score with cost at most ``B`` (:func:`best_under_budget`,
  :class:`LayerDP` when one DP must answer many budgets).

States are keyed by the exact reachable partial cost (sparse: only sums that occur, never a
dense grid of budget steps), so any integer cost works, and states above the budget are
dropped as soon as they appear. Counting keeps each table as two sorted NumPy arrays (cost,
number of paths) and meets in the middle of the layer stack; the max-score DP keeps dicts with
back-pointers.
Costs must be non-negative integers; float costs (latency in ms) are turned into integer units
first by :func:`to_units` (rounded *up*) and the budget by :func:`budget_units` (rounded
*down*). The DP is exact on those units, and whatever it returns also fits the float budget,
because the true cost is never above the rounded one. With ``resolution=1e-3`` on costs in
milliseconds, the units are microseconds.

Elastic depth: ``exits`` maps a prefix length ``d`` to the cost (and score) of stopping after
``d`` layers, i.e. of the skipped suffix; a path may stop at any listed prefix length.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["to_units", "budget_units", "count_under_budget", "best_under_budget", "LayerDP", "DPResult"]

_EPS = 1e-9


def to_units(cost: float, resolution: float = 1.0) -> int:
    """A non-negative cost in integer units of ``resolution``, rounded up (never under-counts).

    A value within 1e-9 (relative) of a whole number of units counts as that number, so that
    ``0.1 ms`` at ``resolution=1e-3`` is 100 units, not 101 because of float noise.
    """
    if isinstance(cost, int) and not isinstance(cost, bool) and resolution == 1:
        q: float = cost
    else:
        if not math.isfinite(cost):
            raise ValueError(f"cost must be finite, got {cost}")
        q = cost / resolution
        nearest = round(q)
        q = nearest if abs(q - nearest) <= _EPS * max(1.0, abs(q)) else math.ceil(q)
    if q < 0:
        raise ValueError(f"costs must be non-negative for budget pruning, got {cost}")
    return int(q)


def budget_units(budget: float, resolution: float = 1.0) -> int:
    """A budget in integer units of ``resolution``, rounded down (what fits it, fits the budget)."""
    if isinstance(budget, int) and not isinstance(budget, bool) and resolution == 1:
        return budget
    q = budget / resolution
    nearest = round(q)
    return int(nearest if abs(q - nearest) <= _EPS * max(1.0, abs(q)) else math.floor(q))


def _min_completion(per_layer: Sequence[Mapping[int, int]], exits: Mapping[int, int]) -> list[float]:
    """For each prefix length i: the cheapest way to finish (more layers, then an exit)."""
    n = max(exits)
    lo = [math.inf] * (n + 1)
    for i in range(n, -1, -1):
        if i < n and per_layer[i]:
            lo[i] = lo[i + 1] + min(per_layer[i])
        if i in exits:
            lo[i] = min(lo[i], exits[i])
    return lo


Table = tuple[np.ndarray, np.ndarray]  # (reachable costs, ascending int64; how many paths reach each)


def _table(mapping: Mapping[int, int], dtype: Any) -> Table:
    costs = np.array(sorted(mapping), dtype=np.int64)
    return costs, np.array([mapping[c] for c in costs.tolist()], dtype=dtype)


def _forward(table: Table, layer: Table, limit: float) -> Table:
    """One DP step: every reachable cost after one more layer (merged), pruned above ``limit``."""
    (costs, counts), (step, mult) = table, layer
    c = (costs[:, None] + step[None, :]).ravel()
    n = (counts[:, None] * mult[None, :]).ravel()
    keep = c <= limit
    c, n = c[keep], n[keep]
    if not len(c):
        return c, n
    order = np.argsort(c, kind="stable")
    c, n = c[order], n[order]
    first = np.flatnonzero(np.concatenate([[True], c[1:] != c[:-1]]))
    return c[first], np.add.reduceat(n, first)


def _cumulative(table: Table) -> Table:
    """Costs ascending, and ``cum[k]`` = how many paths cost at most ``costs[k - 1]``."""
    costs, counts = table
    return costs, np.concatenate([np.zeros(1, dtype=counts.dtype), np.cumsum(counts, dtype=counts.dtype)])


def _count_pairs(a: Table, b_cumulative: Table, limit: int) -> int:
    """Sum of ``n_x * n_y`` over ``x`` in ``a``, ``y`` in ``b`` with ``x + y <= limit``."""
    (x, n), (b_costs, b_cum) = a, b_cumulative
    idx = np.searchsorted(b_costs, limit - x, side="right")
    return int((n * b_cum[idx]).sum())


def count_under_budget(
    per_layer: Sequence[Mapping[int, int] | Sequence[int]],
    budget: int,
    *,
    start: Mapping[int, int] | None = None,
    exits: Mapping[int, int] | None = None,
) -> int:
    """Number of (start, path, exit) combinations whose summed cost is at most ``budget``.

    Args:
        per_layer: for each layer slot, its options' costs: a mapping cost -> how many options
            have that cost, or a plain list of costs.
        budget: the integer budget.
        start: costs already spent before layer 0 (front-end, decoder): cost -> multiplicity.
            Default ``{0: 1}``.
        exits: prefix length -> cost of stopping there (the skipped suffix). Default: only the
            full depth, at no extra cost.

    Returns:
        The exact count (a Python int).

    Each DP table maps every reachable partial cost to the number of partial paths that reach
    it (kept as two sorted arrays), and is pruned as soon as a cost's cheapest completion
    exceeds the budget. The DP runs from both ends of the layer stack and meets in the middle:
    tables of the first ``n // 2`` layers, and of layers ``n // 2 .. d`` for every exit ``d``;
    then, per exit, the pairs of partial sums that fit are counted by binary search over
    cumulative counts. Tables stay as small as the distinct sums of half the layers, and the
    start costs are never multiplied into a table. Counts are exact: int64 when the number of
    all combinations fits in it (so no partial count can overflow), Python ints otherwise.
    """
    layers = [c if isinstance(c, Mapping) else Counter(c) for c in per_layer]
    exits = {len(layers): 0} if exits is None else dict(exits)
    start = dict(start) if start is not None else {0: 1}
    if not exits or not start:
        return 0
    n, h = max(exits), max(exits) // 2
    everything = sum(start.values()) * sum(math.prod(sum(layer.values()) for layer in layers[:d]) for d in exits)
    dtype = np.int64 if everything < 2**63 else object
    lo, smin = _min_completion(layers, exits), min(start)
    steps = [_table(layer, dtype) for layer in layers[:n]]
    empty = _table({0: 1}, dtype)
    front = [empty]
    for i in range(h):
        front.append(_forward(front[-1], steps[i], budget - smin - lo[i + 1]))
    start_table = _table(start, dtype)
    total = 0
    for d, e in exits.items():
        if d <= h and len(front[d][0]):
            total += _count_pairs(start_table, _cumulative(front[d]), budget - e)
    if n == h or not len(front[h][0]):
        return total
    # Second half: layers h..d-1, paired with (start + first half) per exit.
    fmin = int(front[h][0][0])
    front_h = _cumulative(front[h])
    back = empty
    for d in range(h + 1, n + 1):
        back = _forward(back, steps[d - 1], budget - smin - fmin - lo[d])
        if d in exits and len(back[0]):
            for s, ns in start.items():
                total += ns * _count_pairs(back, front_h, budget - exits[d] - s)
    return total


@dataclass(frozen=True)
class DPResult:
    """Best path found: summed score, summed integer cost, the chosen options and the exit."""

    score: float
    cost: int
    choices: tuple[Any, ...]
    exit: int


class LayerDP:
    """Max-score paths under a budget: one DP over layers, queried for any budget up to ``budget``.

    Each table maps a reachable partial cost to ``(score, previous cost, option index)`` for the
    best partial path of that cost. Tables keep only Pareto states: a state is dropped when a
    cheaper one scores at least as well, since the remaining layers add the same to both. That is
    exact for maximisation and keeps the tables small.

    Args:
        per_layer_options: for each layer slot, a list of ``(option, score, cost)`` with integer
            ``cost >= 0``; options scored ``-inf`` are forbidden and dropped.
        budget: the largest integer budget that will be queried.
        exits: prefix length -> ``(score, cost)`` of stopping there. Default: full depth only.
    """

    def __init__(
        self,
        per_layer_options: Sequence[Sequence[tuple[Any, float, int]]],
        budget: int,
        exits: Mapping[int, tuple[float, int]] | None = None,
    ) -> None:
        self.options = [[o for o in layer if o[1] != -math.inf] for layer in per_layer_options]
        for layer in self.options:
            for _, score, cost in layer:
                if math.isnan(score) or cost < 0:
                    raise ValueError(f"scores must not be NaN and costs must be >= 0, got score={score}, cost={cost}")
        exits = {len(self.options): (0.0, 0)} if exits is None else dict(exits)
        self.exits = {d: e for d, e in exits.items() if e[0] != -math.inf}
        last = max(self.exits, default=0)
        self.tables: list[dict[int, tuple[float, int, int]]] = [{0: (0.0, -1, -1)}]
        for i in range(last):
            table: dict[int, tuple[float, int, int]] = {}
            for prev, (score, _, _) in self.tables[-1].items():
                for j, (_, s, c) in enumerate(self.options[i]):
                    cost, total = prev + c, score + s
                    if cost <= budget and (cost not in table or total > table[cost][0]):
                        table[cost] = (total, prev, j)
            self.tables.append(_pareto(table))
        finals = {}
        for d, (es, ec) in sorted(self.exits.items()):
            for cost, (score, _, _) in self.tables[d].items():
                c, s = cost + ec, score + es
                if c <= budget and (c not in finals or s > finals[c][0]):
                    finals[c] = (s, cost, d)
        # Frontier sorted by cost with strictly increasing score: the best under any budget is the
        # last entry that fits.
        self.frontier = sorted(_pareto(finals).items())
        self._costs = [c for c, _ in self.frontier]

    def best(self, budget: int) -> DPResult | None:
        """The highest-scoring path with cost ``<= budget`` (cheapest among equal scores)."""
        k = bisect.bisect_right(self._costs, budget) - 1
        if k < 0:
            return None
        cost, (score, path_cost, d) = self.frontier[k]
        return DPResult(score=score, cost=cost, choices=self._path(d, path_cost), exit=d)

    def _path(self, depth: int, cost: int) -> tuple[Any, ...]:
        out = []
        for i in range(depth, 0, -1):
            _, prev, j = self.tables[i][cost]
            out.append(self.options[i - 1][j][0])
            cost = prev
        return tuple(reversed(out))


def _pareto(table: dict[int, tuple]) -> dict[int, tuple]:
    """Keep the states that score strictly better than every cheaper state."""
    out, best = {}, -math.inf
    for cost in sorted(table):
        if table[cost][0] > best:
            out[cost] = table[cost]
            best = table[cost][0]
    return out


def best_under_budget(
    per_layer_options: Sequence[Sequence[tuple[Any, float, int]]],
    fixed_cost: int,
    budget: int,
    *,
    exits: Mapping[int, tuple[float, int]] | None = None,
) -> DPResult | None:
    """Exact argmax of the summed score subject to ``fixed_cost + summed cost <= budget``.

    Args:
        per_layer_options: for each layer, a list of ``(option, score, cost)``; integer costs
            ``>= 0`` (see :func:`to_units` for floats); ``-inf`` scores forbid an option.
        fixed_cost: cost spent outside the layers (front-end, decoder).
        budget: integer budget.
        exits: elastic depth, see :class:`LayerDP`.

    Returns:
        :class:`DPResult` (its ``cost`` includes ``fixed_cost``), or None when nothing fits.
    """
    room = budget - fixed_cost
    if room < 0:
        return None
    res = LayerDP(per_layer_options, room, exits).best(room)
    if res is None:
        return None
    return DPResult(score=res.score, cost=res.cost + fixed_cost, choices=res.choices, exit=res.exit)
