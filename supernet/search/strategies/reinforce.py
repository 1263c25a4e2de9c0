"""REINFORCE controller: independent categorical policies over the space's decisions.

The controller holds one logit vector per decision (the slots of
:class:`~supernet.search.encoding.ArchCodec`). It samples an arch decision by decision in the
space's own order, each time among the values still valid (softmax over their logits only), so
every sample is a valid arch. Learning is REINFORCE (Williams 1992) with a moving-average
baseline, as in Zoph & Le's NAS controller but without the RNN: for the decisions ``d`` of a
told arch,

    logits[d] += lr * clip(A / std) * (onehot(choice) - softmax(logits[d][valid]))

with reward ``R = -log(fitness)`` (an infeasible arch counts as 1.5x the worst feasible fitness
seen, so that the penalty does not swamp the baseline), advantage ``A = R - baseline``, ``baseline <- m * baseline + (1 - m) * R`` and a
moving standard deviation to keep step sizes comparable across objectives. Tells of archs this
controller did not sample (other workers, replay) use the same update (off-policy, biased but
useful). NumPy only; the seed drives every draw.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from supernet.search.encoding import ArchCodec, arch_value
from supernet.search.objectives import INFEASIBLE, Fitness
from supernet.search.strategies.base import Strategy, register_strategy
from supernet.space import Arch, SearchSpace

__all__ = ["Reinforce"]


@register_strategy("reinforce")
class Reinforce(Strategy):
    """REINFORCE over independent categorical decisions (see the module docstring).

    Args:
        space, fitness, seed: see :class:`~supernet.search.strategies.base.Strategy`.
        lr: step size on the logits.
        baseline_momentum: m of the moving-average baseline (and of the moving variance).
        entropy: weight of an entropy bonus (keeps exploring; 0 = none).
        temperature: sampling temperature (> 1 explores more).
        clip: advantages are clipped to ``[-clip, clip]`` standard deviations.
    """

    name = "reinforce"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, lr: float = 1.0, baseline_momentum: float = 0.9,
                 entropy: float = 0.0, temperature: float = 1.0, clip: float = 3.0) -> None:
        super().__init__(space, fitness, seed)
        if lr <= 0 or not 0 <= baseline_momentum < 1 or temperature <= 0:
            raise ValueError(f"need lr > 0, 0 <= baseline_momentum < 1, temperature > 0; got {lr}, {baseline_momentum}, {temperature}")
        self.lr, self.momentum, self.entropy, self.temperature, self.clip = lr, baseline_momentum, entropy, temperature, clip
        self.codec = ArchCodec(space)
        self._index = {s.key: {v: j for j, v in enumerate(s.values)} for s in self.codec.slots}
        self.logits: dict[tuple, np.ndarray] = {s.key: np.zeros(len(s.values)) for s in self.codec.slots}
        self.baseline: float | None = None
        self._worst = 0.0
        self.variance = 1.0
        self.updates = 0

    def _probs(self, key: tuple, values: list) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([self._index[key][v] for v in values])
        z = self.logits[key][idx] / self.temperature
        p = np.exp(z - z.max())
        return idx, p / p.sum()

    def probabilities(self) -> dict[str, dict[Any, float]]:
        """The current policy per decision over its non-None values (for inspection and plots)."""
        out = {}
        for s in self.codec.slots:
            values = [v for v in s.values if v is not None]
            out[s.name] = dict(zip(values, self._probs(s.key, values)[1].tolist()))
        return out

    def ask(self) -> Arch:
        def choose(key: tuple, values: list) -> Any:
            if key not in self.logits:
                return values[self.rng.randrange(len(values))]
            _, p = self._probs(key, values)
            u, acc = self.rng.random(), 0.0
            for v, pv in zip(values, p):
                acc += pv
                if u < acc:
                    return v
            return values[-1]

        return self.space.generate(choose)

    def _reward(self, arch: Arch, metrics: Mapping[str, float]) -> float:
        f = self.score(arch, metrics)
        if f < INFEASIBLE:
            self._worst = max(self._worst, f)
        else:  # infeasible: a bit worse than the worst feasible arch, not 1e6 (it would swamp the baseline)
            f = 1.5 * self._worst if self._worst > 0 else 1.0
        return -math.log(f + 1e-6) if f > 0 else -f

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        r = self._reward(arch, metrics)
        if self.baseline is None:
            self.baseline = r
        adv = r - self.baseline
        self.variance = self.momentum * self.variance + (1 - self.momentum) * adv * adv
        self.baseline = self.momentum * self.baseline + (1 - self.momentum) * r
        a = float(np.clip(adv / (math.sqrt(self.variance) + 1e-8), -self.clip, self.clip))

        def update(key: tuple, values: list) -> Any:
            v = arch_value(arch, key)
            if key in self.logits:
                idx, p = self._probs(key, values)
                step = -a * p
                step[values.index(v)] += a  # a * d log p(choice) / d logits
                if self.entropy:  # + entropy * d H / d logits
                    logp = np.log(p + 1e-12)
                    step -= self.entropy * p * (logp - (p * logp).sum())
                self.logits[key][idx] += self.lr * step
            return v

        self.space.generate(update)
        self.updates += 1
