"""Pre-screening with a predictor: propose M candidates, evaluate the best predicted one.

Wraps a strategy whose ``ask`` is free (random, evolution, reinforce): each ask draws ``M``
distinct, not yet evaluated candidates from it, scores them with a predictor on
``space.encode(arch)`` and returns the best; the others are forgotten. The predictor is either

- a fitted model, lower = better: ``supernet.predictor.WERPredictor`` (``predict(archs)``) or any
  scikit-learn style regressor on the encoding (``predict(X)``);
- ``"online"``: a random forest refitted every ``refit_every`` results on what the search has
  seen so far (``log`` of the fitness, infeasible archs clipped to 1.5x the worst feasible one,
  so they count as bad without dominating the fit);
- ``"wer"``: ``WERPredictor`` refitted the same way on the first objective (WER) alone, blind
  to the target's limits.

Online predictors start once ``min_history`` results exist; before that the inner strategy's
own proposal is used.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from supernet.search.objectives import INFEASIBLE, Fitness
from supernet.search.strategies.base import Strategy
from supernet.space import Arch, SearchSpace

__all__ = ["PredictorScreen"]


class PredictorScreen(Strategy):
    """Predictor pre-screening around ``inner`` (see the module docstring).

    Args:
        space, fitness, seed: see :class:`~supernet.search.strategies.base.Strategy`.
        inner: the proposing strategy (``cheap_ask`` must be true).
        predictor: a fitted model with ``predict``, or ``"online"``.
        candidates: M, proposals scored per ask.
        min_history, refit_every: for the online predictor.
        is_known: ``f(arch) -> bool``, candidates already evaluated are skipped (the search loop
            binds it to the study).
    """

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, inner: Strategy, predictor: Any = "online",
                 candidates: int = 10, min_history: int = 10, refit_every: int = 5) -> None:
        super().__init__(space, fitness, seed)
        if not inner.cheap_ask:
            raise ValueError(f"predictor pre-screening needs a strategy whose ask() is free (random, evolution, reinforce), not {inner.name!r}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.inner, self.predictor, self.candidates = inner, predictor, candidates
        self.min_history, self.refit_every = min_history, refit_every
        self.name = f"{inner.name}+prescreen"  # type: ignore[misc]
        self._X: list[list[float]] = []
        self._y: list[float] = []
        self._model: Any = None if predictor in ("online", "wer") else predictor
        self._archs: list[Arch] = []
        self._wer: list[float] = []
        self._since_fit = 0
        self.is_known = lambda arch: False

    def bind(self, db: Any) -> None:
        self.inner.bind(db)
        self.is_known = lambda arch: db.lookup(arch) is not None

    def _refit(self) -> None:
        if self.predictor == "wer":
            from supernet.predictor import WERPredictor

            self._model = WERPredictor(self.space, seed=self.seed).fit(self._archs, self._wer)
        else:
            from sklearn.ensemble import RandomForestRegressor

            # Infeasible archs have fitness INFEASIBLE + excess: fitted as is, they would swamp the
            # regression and steer it towards small, feasible but poor archs. Clip them just above
            # the worst feasible fitness instead, so the forest ranks the feasible region.
            f = np.asarray(self._y)
            feasible = f[f < INFEASIBLE]
            cap = 1.5 * float(feasible.max()) if len(feasible) else 1.0
            y = np.log(np.minimum(f, cap) + 1e-6)
            self._model = RandomForestRegressor(n_estimators=60, min_samples_leaf=2, random_state=self.seed, n_jobs=1)
            self._model.fit(np.asarray(self._X), y)
        self._since_fit = 0

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        if hasattr(self._model, "encode"):  # WERPredictor: takes archs
            return np.asarray(self._model.predict(archs), dtype=float)
        return np.asarray(self._model.predict(np.asarray([self.space.encode(a) for a in archs])), dtype=float)

    def ask(self) -> Arch:
        if self._model is None:
            return self.inner.ask()
        pool: dict[str, Arch] = {}
        for _ in range(4 * self.candidates):  # a few extra draws to get past duplicates
            a = self.inner.ask()
            if a.id in pool or self.is_known(a):
                self.inner.forget(a)
                continue
            pool[a.id] = a
            if len(pool) == self.candidates:
                break
        if not pool:
            return self.inner.ask()
        archs = list(pool.values())
        scores = self._predict(archs)
        best = int(np.argmin(scores))
        for i, a in enumerate(archs):
            if i != best:
                self.inner.forget(a)
        return archs[best]

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self.inner.tell(arch, metrics)
        if self.predictor not in ("online", "wer"):
            return
        f = self.score(arch, metrics)
        self._X.append(self.space.encode(arch))
        self._y.append(f)
        self._archs.append(arch)
        self._wer.append(float(metrics[self.fitness.primary]) if self.fitness.primary in metrics else f)
        self._since_fit += 1
        if len(self._y) >= self.min_history and (self._model is None or self._since_fit >= self.refit_every):
            self._refit()

    def forget(self, arch: Arch) -> None:
        self.inner.forget(arch)

    def on_duplicate(self, arch: Arch) -> None:
        self.inner.on_duplicate(arch)

    def stage(self, arch: Arch) -> str:
        return self.inner.stage(arch)
