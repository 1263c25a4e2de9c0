"""The strategy interface: ``ask() -> Arch``, ``tell(arch, metrics)``.

A strategy proposes; it never evaluates and never stores. The search loop
(:func:`supernet.search.loop.run_search`) claims each proposal in the study database, evaluates
it (or finds it already evaluated) and tells the strategy. Strategies must cope with:

- tells of archs they did not propose (results of other workers, or of an earlier run replayed
  on restart): they update their state as if they had proposed them;
- proposals that are never told (another worker is evaluating the arch; a pre-screen dropped
  it): :meth:`Strategy.forget` is called;
- repeated tells of one arch (a proposal that was already evaluated is told its stored result).

Randomness comes from the ``seed`` given to the constructor (``random.Random(seed)``), never
from global state, so that one seed on one worker gives one sequence of proposals.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Mapping

from supernet.search.objectives import Fitness
from supernet.space import Arch, SearchSpace

__all__ = ["Strategy", "STRATEGIES", "register_strategy"]


class Strategy(ABC):
    """Base class of search strategies.

    Args:
        space: the (target-restricted) search space.
        fitness: scalar to minimise for single-objective strategies.
        seed: seeds ``self.rng``.
    """

    name: ClassVar[str] = "strategy"
    #: whether ask() is free (no side effects): a pre-screen may ask many and keep one.
    cheap_ask: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0) -> None:
        self.space, self.fitness, self.seed = space, fitness, seed
        self.rng = random.Random(seed)

    def bind(self, db: Any) -> None:
        """Called once by the search loop with the study database, before the first ask."""

    @abstractmethod
    def ask(self) -> Arch:
        """The next arch to evaluate."""

    @abstractmethod
    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        """The result of ``arch`` (proposed by this strategy or not)."""

    def forget(self, arch: Arch) -> None:
        """``arch`` was proposed but will not be told (see the module docstring)."""

    def on_duplicate(self, arch: Arch) -> None:
        """``arch`` (just proposed) had been evaluated before; its stored result was told."""

    def stage(self, arch: Arch) -> str:
        """Label of the proposal stored on its trial (e.g. ``seed`` for transfer seeds)."""
        return "search"

    def trial_number(self, arch: Arch) -> int | None:
        """The RUNNING Optuna trial that already holds this proposal, if the strategy made one."""
        return None

    def score(self, arch: Arch, metrics: Mapping[str, float]) -> float:
        return self.fitness(arch, metrics)


STRATEGIES: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str) -> Callable[[Callable[..., Strategy]], Callable[..., Strategy]]:
    """Decorator: make a strategy class (or factory) available by ``name``."""

    def deco(factory: Callable[..., Strategy]) -> Callable[..., Strategy]:
        STRATEGIES[name] = factory
        return factory

    return deco
