"""Random search and regularized (aging) evolution.

Regularized evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019): keep a population of the ``population`` most recent archs; to propose, draw
``sample`` of them at random, take the fittest as parent, mutate it (optionally cross it with the
second fittest first). Every told arch joins the population and the *oldest* one leaves, whatever
its fitness: ageing keeps the search from clinging to one lucky early evaluation.
"""

from __future__ import annotations

from collections import deque
from typing import Mapping

from supernet.search.objectives import Fitness
from supernet.search.strategies.base import Strategy, register_strategy
from supernet.space import Arch, SearchSpace

__all__ = ["RandomSearch", "RegularizedEvolution"]


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform samples of the space (per choice, see ``SearchSpace.sample``)."""

    name = "random"

    def ask(self) -> Arch:
        return self.space.sample(self.rng)

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        pass  # random search learns nothing


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    """Regularized (aging) evolution.

    Args:
        space, fitness, seed: see :class:`~supernet.search.strategies.base.Strategy`.
        population: how many recent archs compete (P).
        sample: tournament size (S <= P).
        mutation_prob: per-decision change probability of ``SearchSpace.mutate`` (at least one
            decision always changes).
        crossover_prob: probability of crossing the two fittest of the tournament before mutating.
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, population: int = 20, sample: int = 5,
                 mutation_prob: float = 0.1, crossover_prob: float = 0.0) -> None:
        super().__init__(space, fitness, seed)
        if population < 2 or not 1 <= sample <= population:
            raise ValueError(f"need population >= 2 and 1 <= sample <= population, got population={population}, sample={sample}")
        if not 0.0 < mutation_prob <= 1.0 or not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"mutation_prob must be in (0, 1] and crossover_prob in [0, 1], got {mutation_prob}, {crossover_prob}")
        self.population_size, self.sample_size = population, sample
        self.mutation_prob, self.crossover_prob = mutation_prob, crossover_prob
        self.population: deque[tuple[Arch, float]] = deque(maxlen=population)

    def ask(self) -> Arch:
        if len(self.population) < self.population_size:
            return self.space.sample(self.rng)  # fill the first population at random
        contenders = sorted(self.rng.sample(list(self.population), self.sample_size), key=lambda af: af[1])
        parent = contenders[0][0]
        if len(contenders) > 1 and self.rng.random() < self.crossover_prob:
            parent = self.space.crossover(parent, contenders[1][0], self.rng)
        return self.space.mutate(parent, self.rng, self.mutation_prob)

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self.population.append((arch, self.score(arch, metrics)))  # the oldest leaves: ageing
