"""Optuna's samplers as strategies: NSGA-II (several objectives), TPE and GP Bayesian optimisation.

These strategies keep no state of their own: the study *is* their memory. ``ask`` opens a trial
on the study with the strategy's sampler, lets it suggest every parameter of the flat encoding
(:class:`~supernet.search.encoding.ArchCodec`) and decodes (repairs) the arch. The search loop
then claims that very trial for the arch (``trial_number``); when the arch turns out to be
evaluated already, the trial is closed as FAIL with ``duplicate_of`` and the sampler proposes
again. A sampler whose acquisition has converged can keep proposing one evaluated arch (FAIL
trials are invisible to it): after ``max_repeats`` duplicates in a row the next proposal is a
uniform sample of the space (seeded), which also gives the model a new point. Because every trial of the study carries the same params, the samplers also learn from
trials of other strategies, other workers, and runs before a restart.

Objectives are the study's (all minimised); the target's metric limits reach the samplers as
Optuna constraints (``trial.constraints``: ``value / bound - 1 <= 0`` is feasible), stored on
every trial by :meth:`~supernet.search.storage.StudyDB.finish`; Optuna 5's samplers read them
without a ``constraints_func``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import optuna

from supernet.search.encoding import ArchCodec
from supernet.search.objectives import Fitness
from supernet.search.strategies.base import Strategy, register_strategy
from supernet.space import Arch, SearchSpace

__all__ = ["OptunaStrategy", "TPE", "GP", "NSGA2"]


class OptunaStrategy(Strategy):
    """A strategy whose proposals come from an Optuna sampler on the study itself."""

    cheap_ask = False  # each ask opens a trial

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0) -> None:
        super().__init__(space, fitness, seed)
        self.codec = ArchCodec(space)
        self.study: optuna.Study | None = None
        self._pending: dict[str, int] = {}
        self.max_repeats = 3
        self._streak, self._last_duplicate = 0, False

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def bind(self, db: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.sampler = self.make_sampler()
        self.study = optuna.load_study(study_name=db.study_name, storage=db.storage, sampler=self.sampler)

    def ask(self) -> Arch:
        if self.study is None:
            raise RuntimeError(f"{self.name}: bind(db) must be called before ask() (run_search does it)")
        self._streak = self._streak if self._last_duplicate else 0
        self._last_duplicate = False
        if self._streak >= self.max_repeats:
            self._streak = 0
            return self.space.sample(self.rng)  # no trial opened: the study records it like any proposal
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # "independent sampling" notices on categorical spaces
            trial = self.study.ask()
            arch = self.codec.suggest(trial)
        self._pending[arch.id] = trial.number
        return arch

    def trial_number(self, arch: Arch) -> int | None:
        return self._pending.pop(arch.id, None)

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self._pending.pop(arch.id, None)  # the sampler reads results from the study

    def forget(self, arch: Arch) -> None:
        self._pending.pop(arch.id, None)

    def on_duplicate(self, arch: Arch) -> None:
        self._last_duplicate = True
        self._streak += 1


@register_strategy("tpe")
class TPE(OptunaStrategy):
    """Tree-structured Parzen estimator (multivariate, constant liar for parallel workers)."""

    name = "tpe"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, n_startup_trials: int = 10,
                 n_ei_candidates: int = 24, multivariate: bool = True) -> None:
        super().__init__(space, fitness, seed)
        self.n_startup_trials, self.n_ei_candidates, self.multivariate = n_startup_trials, n_ei_candidates, multivariate

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            seed=self.seed, n_startup_trials=self.n_startup_trials, n_ei_candidates=self.n_ei_candidates,
            multivariate=self.multivariate, constant_liar=True,
        )  # fmt: skip


@register_strategy("gp")
class GP(OptunaStrategy):
    """Gaussian-process Bayesian optimisation (Optuna's GPSampler; log-EI / log-EHVI)."""

    name = "gp"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, n_startup_trials: int = 10,
                 deterministic_objective: bool = False) -> None:
        super().__init__(space, fitness, seed)
        self.n_startup_trials, self.deterministic_objective = n_startup_trials, deterministic_objective

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(
            seed=self.seed, n_startup_trials=self.n_startup_trials, deterministic_objective=self.deterministic_objective,
            warn_independent_sampling=False,
        )  # fmt: skip


@register_strategy("nsga2")
class NSGA2(OptunaStrategy):
    """NSGA-II (Optuna's NSGAIISampler) over the study's objectives, constrained by the target."""

    name = "nsga2"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, population: int = 20,
                 mutation_prob: float | None = None, crossover_prob: float = 0.9) -> None:
        super().__init__(space, fitness, seed)
        if population < 2:
            raise ValueError(f"nsga2: population must be >= 2, got {population}")
        self.population, self.mutation_prob, self.crossover_prob = population, mutation_prob, crossover_prob

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(
            population_size=self.population, mutation_prob=self.mutation_prob, crossover_prob=self.crossover_prob,
            seed=self.seed,
        )  # fmt: skip
