"""Predict an arch's dev WER from its encoding, fitted on archs already evaluated.

A search that has evaluated a few dozen archs can rank thousands more by a predictor before
spending evaluations on them (predictor-guided evolution, BO acquisition, pre-screening).
:class:`WERPredictor` maps ``space.encode(arch)`` (one-hot categorical and scaled ordinal
choices) to dev WER with scikit-learn.

Model choice (``kind``), default ``"ensemble"``: the mean of a Gaussian process and gradient-
boosted trees.

- A GP (constant x RBF + white noise, ``normalize_y``) does well with few labelled archs and
  gives a predictive standard deviation for acquisition functions; it is smooth in the
  encoding, so it misses sharp interactions.
- Gradient boosting (shallow trees) picks up interactions (block type x width, decoder x
  streaming) but overfits when few archs are labelled.
- Their mean was the best of the four kinds at every training size tried: 5-fold CV Kendall tau
  on the default space labelled by ``supernet.search.evaluators.SyntheticEvaluator`` (a rugged
  synthetic landscape, not speech), ridge / gp / gbm / ensemble = 0.61 / 0.62 / 0.69 / 0.72 with
  30 archs, 0.77 / 0.78 / 0.82 / 0.84 with 100, 0.88 / 0.90 / 0.87 / 0.91 with 300. White et
  al. ("How Powerful are Performance Predictors in Neural Architecture Search?", NeurIPS 2021)
  likewise find that the best predictor family depends on how many archs are labelled and that
  combining families helps. ``"gp"``, ``"gbm"`` and ``"ridge"`` are available
  alone; compare them on your own evaluations with :meth:`WERPredictor.cross_validate`.

What a ranking needs is order, so the figure of merit is Kendall's tau between predicted and
measured WER on held-out archs (k-fold cross-validation; ``scipy.stats.kendalltau``).

``save`` / ``load`` pickle the fitted scikit-learn models with the space hash and encoding names,
so a predictor is never applied to another space's encoding. As with any pickle, load only files
you wrote.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from supernet.space import Arch
from supernet.utils import atomic_write

__all__ = ["KINDS", "CVResult", "WERPredictor"]

KINDS = ("ensemble", "gp", "gbm", "ridge")
FORMAT = "supernet-predictor/1"


def _make(kind: str, dim: int, seed: int) -> list[Any]:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.linear_model import RidgeCV

    def gp() -> Any:
        # Length scale starts at sqrt(dim): two archs differing in a handful of one-hot entries are close.
        kernel = ConstantKernel(1.0, (1e-3, 1e5)) * RBF(math.sqrt(max(dim, 1)), (1e-2, 1e4)) + WhiteKernel(1e-2, (1e-6, 1.0))
        return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed)

    def gbm() -> Any:
        return GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                         min_samples_leaf=2, random_state=seed)

    def ridge() -> Any:
        return RidgeCV(alphas=np.logspace(-3, 3, 13))

    return {"ensemble": lambda: [gp(), gbm()], "gp": lambda: [gp()], "gbm": lambda: [gbm()], "ridge": lambda: [ridge()]}[kind]()


@dataclass(frozen=True)
class CVResult:
    """Cross-validated quality of a predictor.

    Attributes:
        kendall_tau: tau between out-of-fold predictions and measured WER, all archs pooled.
        spearman: Spearman's rho, pooled likewise.
        fold_tau_mean, fold_tau_std: tau within each fold, mean and standard deviation.
        mae: mean absolute error of the out-of-fold predictions.
        folds: number of folds.
        n: archs.
        predictions: out-of-fold prediction per arch (input order).
    """

    kendall_tau: float
    spearman: float
    fold_tau_mean: float
    fold_tau_std: float
    mae: float
    folds: int
    n: int
    predictions: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WERPredictor:
    """Dev-WER predictor over a search space's encoding (see the module docstring).

    Args:
        space: the :class:`~supernet.space.SearchSpace` whose ``encode`` gives the features.
        kind: "ensemble" (GP + gradient boosting, default), "gp", "gbm" or "ridge".
        seed: seeds the models (GP optimiser restarts, boosting subsamples).

    Example:
        >>> pred = WERPredictor(space).fit(archs, [m.wer for m in metrics])
        >>> pred.cross_validate(archs, wers).kendall_tau
        >>> ranked = sorted(candidates, key=lambda a: pred.predict([a])[0])
    """

    def __init__(self, space: Any, kind: str = "ensemble", seed: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"predictor kind {kind!r} is unknown; allowed values: {', '.join(KINDS)}")
        self.space = space
        self.kind = kind
        self.seed = seed
        self.models: list[Any] = []
        self.n_train = 0
        self._names = list(space.encode_names())

    # ------------------------------------------------------------------ data
    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        """(N, D) encodings; an arch outside the space raises the space's error."""
        archs = list(archs)
        if not archs:
            return np.zeros((0, len(self._names)))
        return np.asarray([self.space.encode(a) for a in archs], dtype=float)

    @staticmethod
    def _targets(archs: Sequence[Arch], wers: Sequence[float]) -> np.ndarray:
        y = np.asarray(list(wers), dtype=float)
        if len(y) != len(archs):
            raise ValueError(f"{len(archs)} archs but {len(y)} WERs; they must pair up")
        if len(y) < 2:
            raise ValueError(f"a predictor needs at least 2 evaluated archs, got {len(y)}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"WERs must be finite; got {[v for v in y.tolist() if not math.isfinite(v)][:3]}")
        return y

    # ------------------------------------------------------------------ fit / predict
    def fit(self, archs: Sequence[Arch], wers: Sequence[float]) -> "WERPredictor":
        """Fit on evaluated archs and their dev WERs. Returns self."""
        archs = list(archs)
        y = self._targets(archs, wers)
        x = self.encode(archs)
        self.models = _make(self.kind, x.shape[1], self.seed)
        for m in self.models:
            m.fit(x, y)
        self.n_train = len(y)
        return self

    def predict(self, archs: Sequence[Arch], return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted WER per arch; with ``return_std`` also the GP's standard deviation
        (kinds "gp" and "ensemble" only)."""
        if not self.models:
            raise RuntimeError("predict() before fit(); fit the predictor on evaluated archs first")
        x = self.encode(archs)
        if len(x) == 0:
            return (np.zeros(0), np.zeros(0)) if return_std else np.zeros(0)
        preds = [m.predict(x) for m in self.models]
        mean = np.mean(preds, axis=0)
        if not return_std:
            return mean
        if self.kind not in ("gp", "ensemble"):
            raise ValueError(f"return_std needs a Gaussian process (kind 'gp' or 'ensemble'), not {self.kind!r}")
        _, std = self.models[0].predict(x, return_std=True)
        return mean, std

    def cross_validate(self, archs: Sequence[Arch], wers: Sequence[float], folds: int = 5, seed: int = 0) -> CVResult:
        """k-fold cross-validated Kendall tau of this kind of predictor (``self`` stays unfitted by it).

        Args:
            archs, wers: evaluated archs and their dev WERs (at least ``folds`` x 2 of them is sensible).
            folds: number of folds (capped at the number of archs).
            seed: shuffles the folds.
        """
        from sklearn.model_selection import KFold

        archs = list(archs)
        y = self._targets(archs, wers)
        k = min(folds, len(y))
        if k < 2:
            raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
        oof = np.zeros(len(y))
        taus = []
        for train, test in KFold(k, shuffle=True, random_state=seed).split(y):
            fold = WERPredictor(self.space, self.kind, self.seed).fit([archs[i] for i in train], y[train])
            oof[test] = fold.predict([archs[i] for i in test])
            if len(test) >= 2 and len(np.unique(y[test])) > 1:
                taus.append(float(stats.kendalltau(oof[test], y[test]).statistic))
        tau = float(stats.kendalltau(oof, y).statistic)
        rho = float(stats.spearmanr(oof, y).statistic)
        taus_arr = np.asarray([t for t in taus if math.isfinite(t)])
        return CVResult(tau, rho, float(taus_arr.mean()) if len(taus_arr) else math.nan,
                        float(taus_arr.std()) if len(taus_arr) else math.nan, float(np.mean(np.abs(oof - y))), k, len(y),
                        tuple(float(v) for v in oof))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fitted predictor atomically (pickle with the space hash and encoding names)."""
        import sklearn

        if not self.models:
            raise RuntimeError("save() before fit(); there is nothing to save")
        payload = {"format": FORMAT, "kind": self.kind, "seed": self.seed, "space_hash": self.space.hash,
                   "encode_names": self._names, "n_train": self.n_train, "sklearn": sklearn.__version__, "models": self.models}
        path = Path(path)
        with atomic_write(path, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    @classmethod
    def load(cls, path: str | Path, space: Any) -> "WERPredictor":
        """Load a predictor written by :meth:`save` for ``space`` (refused for another space)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such predictor file (write one with WERPredictor.save)")
        try:
            with open(path, "rb") as f:
                payload = pickle.load(f)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our file"
            raise ValueError(f"{path}: not a readable predictor file ({type(e).__name__}: {e})") from e
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file; write it with WERPredictor.save")
        if payload["space_hash"] != space.hash or payload["encode_names"] != list(space.encode_names()):
            raise ValueError(f"{path}: fitted on another search space (hash {payload['space_hash']}, this one "
                             f"{space.hash}); refit the predictor on archs of this space")
        pred = cls(space, payload["kind"], payload["seed"])
        pred.models = payload["models"]
        pred.n_train = payload["n_train"]
        return pred
