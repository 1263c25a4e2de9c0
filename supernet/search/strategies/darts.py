"""DARTS-derived proposals: the argmax of alpha, the best arch of alpha under each budget, then
samples of alpha.

A supernet trained with relaxed (DARTS) or Gumbel (GDAS) choices ends with a probability
distribution per decision, ``softmax(alpha)`` (``SpeechSupernet.alpha_distributions()``:
``{"feature": {...}, "layers.3.block": {"conformer": 0.4, ...}, ...}``). This strategy turns it
into archs:

1. the argmax: the arch of highest summed log-probability (exact, by the space's DP with zero
   costs, so it is always a valid arch: heads divide the width, skips form a suffix);
2. for each budget (e.g. the target's params or latency limit), the arch of highest summed
   log-probability whose additive cost fits (:meth:`~supernet.space.SearchSpace.best_arch`);
3. then samples from alpha (temperature ``T``: ``p ** (1 / T)``), so a search can go on around
   the derived archs.

Decisions alpha does not cover (subsampling, width, decoder, streaming in the current supernet)
are fixed by ``base`` (default: the space's largest arch, the supernet's default for relaxed
forwards); with ``base=None`` they are free and the DP picks them by cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from supernet.search.objectives import Fitness
from supernet.search.strategies.base import Strategy, register_strategy
from supernet.space import BLOCK_FIELDS, Arch, LayerArch, SearchSpace

__all__ = ["Budget", "CostTable", "ParamsCost", "LUTCost", "DartsDerived", "load_alphas"]

_HEAD_FIELDS = ("feature", "subsampling", "width", "decoder", "decoder_layers", "decoder_width", "chunk", "lookahead")


class CostTable(Protocol):
    """Additive costs: an arch costs ``head_cost(head) + sum(layer_cost(i, layer, head))``."""

    def head_cost(self, metric: str, head: Arch) -> float: ...
    def layer_cost(self, metric: str, i: int, layer: LayerArch, head: Arch) -> float: ...


@dataclass(frozen=True)
class Budget:
    """Upper bound on an additive cost: ``metric`` (``params`` or ``latency_ms``) <= ``limit``."""

    metric: str
    limit: float

    @property
    def resolution(self) -> float:
        return 1.0 if self.metric == "params" else 1e-3  # whole parameters; microseconds


class ParamsCost:
    """Exact parameter counts from the space's cost model (``supernet.nn.params``)."""

    def __init__(self, space: SearchSpace, vocab_size: int) -> None:
        self.space, self.vocab_size = space, vocab_size

    def head_cost(self, metric: str, head: Arch) -> float:
        self._check(metric)
        cm = self.space.cost_model
        return float(cm.frontend_params(head.feature, head.subsampling, head.width)
                     + cm.decoder_params(head.decoder, head.decoder_layers, head.decoder_width, head.width, self.vocab_size))

    def layer_cost(self, metric: str, i: int, layer: LayerArch, head: Arch) -> float:
        self._check(metric)
        return float(self.space.cost_model.layer_params(layer, head.width))

    @staticmethod
    def _check(metric: str) -> None:
        if metric != "params":
            raise ValueError(f"ParamsCost gives params, not {metric!r}")


class LUTCost:
    """Latency from a measured lookup table (``supernet.profile.LatencyLUT``)."""

    def __init__(self, lut: Any) -> None:
        self.lut = lut

    def head_cost(self, metric: str, head: Arch) -> float:
        self._check(metric)
        return self.lut.head_ms(head)

    def layer_cost(self, metric: str, i: int, layer: LayerArch, head: Arch) -> float:
        self._check(metric)
        return self.lut.layer_ms(layer, head)

    @staticmethod
    def _check(metric: str) -> None:
        if metric != "latency_ms":
            raise ValueError(f"LUTCost gives latency_ms, not {metric!r}")


def load_alphas(path: str) -> dict[str, dict[str, float]]:
    """Read ``{decision: {value: probability}}`` from JSON (keys of values are strings there)."""
    import json
    from pathlib import Path

    from supernet.config import ConfigError

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p}: cannot read alpha distributions ({e}); write them with SpeechSupernet.alpha_distributions()") from e
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{p}: expected {{decision: {{value: probability}}}}, e.g. {{\"layers.0.block\": {{\"conformer\": 0.7, \"lstm\": 0.3}}}}")
    return data


@register_strategy("darts")
class DartsDerived(Strategy):
    """Archs derived from alpha (see the module docstring).

    Args:
        space, fitness, seed: see :class:`~supernet.search.strategies.base.Strategy`.
        alphas: ``{decision: {value: probability}}``; values may be given as strings.
        budgets: derive one arch per budget (needs ``costs``).
        costs: additive cost table(s) per metric, e.g. ``{"params": ParamsCost(...),
            "latency_ms": LUTCost(lut)}`` (any object with ``head_cost``/``layer_cost``).
        base: fixes the decisions alpha does not cover; ``"largest"`` (default) or an Arch or None.
        temperature: of the samples after the derived archs.
    """

    name = "darts"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, alphas: Mapping[str, Mapping[Any, float]],
                 budgets: Sequence[Budget] = (), costs: Mapping[str, CostTable] | None = None, base: Arch | str | None = "largest",
                 temperature: float = 1.0) -> None:
        super().__init__(space, fitness, seed)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.alphas = {k: {str(v): float(p) for v, p in d.items()} for k, d in alphas.items()}
        self.base = space.largest() if base == "largest" else base
        self.temperature, self.costs = temperature, dict(costs or {})
        for b in budgets:
            if b.metric not in self.costs:
                raise ValueError(f"darts: a {b.metric} budget needs a cost table for {b.metric} (have: {sorted(self.costs) or 'none'})")
        self.derived: list[tuple[str, Arch | None]] = [("argmax", self.derive())]
        self.derived += [(f"{b.metric}<={b.limit:g}", self.derive(b)) for b in budgets]
        self._queue = [a for _, a in self.derived if a is not None]
        self._stages: dict[str, str] = {}
        for label, a in reversed(self.derived):
            if a is not None:
                self._stages[a.id] = f"derived:{label}"

    def logp(self, decision: str, value: Any) -> float:
        """log-probability of ``value`` at ``decision`` (0 when alpha does not cover it)."""
        d = self.alphas.get(decision)
        if d is None:
            return 0.0
        return math.log(max(d.get(str(value), 0.0), 1e-12))

    def _fixed(self, head: Arch) -> bool:
        if self.base is None:
            return True
        return all(getattr(head, f) == getattr(self.base, f) for f in _HEAD_FIELDS if f not in self.alphas)

    def _head_score(self, head: Arch) -> float:
        if not self._fixed(head):
            return -math.inf
        return sum(self.logp(f, getattr(head, f)) for f in _HEAD_FIELDS)

    def _layer_score(self, i: int, layer: LayerArch, head: Arch) -> float:
        s = self.logp(f"layers.{i}.block", layer.block)
        return s + sum(self.logp(f"layers.{i}.{f}", getattr(layer, f)) for f in BLOCK_FIELDS[layer.block])

    def derive(self, budget: Budget | None = None) -> Arch | None:
        """The most probable arch, within ``budget`` if given (None: nothing fits)."""
        if budget is None:
            res = self.space.best_arch(self._layer_score, lambda i, la, h: 0.0, 0.0, head_score=self._head_score)
        else:
            cost = self.costs[budget.metric]
            res = self.space.best_arch(
                self._layer_score, lambda i, la, h: cost.layer_cost(budget.metric, i, la, h), budget.limit,
                head_score=self._head_score, head_cost=lambda h: cost.head_cost(budget.metric, h), resolution=budget.resolution,
            )  # fmt: skip
        return None if res is None else res.arch

    def _sample(self) -> Arch:
        def choose(key: tuple, values: list) -> Any:
            name = ".".join(map(str, key))
            if key[0] != "layers" and name not in self.alphas and self.base is not None and key[0] != "depth":
                fixed = getattr(self.base, key[0])
                if fixed in values:
                    return fixed
            if key == ("depth",):  # alpha has per-slot skip probabilities: P(depth = d) from them
                w = [self._depth_weight(d) for d in values]
            else:
                w = [math.exp(self.logp(name, v) / self.temperature) for v in values]
            return self.rng.choices(values, weights=w)[0] if sum(w) > 0 else self.rng.choice(values)

        return self.space.generate(choose)

    def _depth_weight(self, depth: int) -> float:
        lp = sum(self.logp(f"layers.{i}.block", "skip") for i in range(depth, self.space.num_layers))
        lp += sum(math.log(max(1.0 - math.exp(self.logp(f"layers.{i}.block", "skip")), 1e-12)) for i in range(depth)
                  if f"layers.{i}.block" in self.alphas)
        return math.exp(lp / self.temperature)

    def ask(self) -> Arch:
        if self._queue:
            return self._queue.pop(0)
        return self._sample()

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        pass  # alpha is fixed; the derived archs and samples do not depend on results

    def stage(self, arch: Arch) -> str:
        return self._stages.get(arch.id, "sampled")

