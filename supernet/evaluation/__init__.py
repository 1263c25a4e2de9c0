"""Scoring archs: the supernet as a shared evaluator, predictors' data, progressive evaluation.

- :mod:`supernet.evaluation.results`     ``Metrics`` (flat metric mapping), ``Score``, ``summarize``
- :mod:`supernet.evaluation.batches`     dev batches and the per-front-end ``FeatureCache``
- :mod:`supernet.evaluation.store`       ``ResultStore``: results on disk (JSON lines)
- :mod:`supernet.evaluation.evaluator`   ``Evaluator`` (inherited weights, cached by ``arch.id``)
- :mod:`supernet.evaluation.training`    ``train_subnet``: fine-tune / train a static subnet with early stopping
- :mod:`supernet.evaluation.progressive` ``progressive_evaluate``: successive halving over fidelity stages
- :mod:`supernet.evaluation.ranking`     rank correlations with bootstrap intervals, size-stratified sampling
- :mod:`supernet.evaluation.rank_check`  the rank check behind ``supernet rank-check`` (``supernet.rank_check``)

``supernet.evaluate`` is the public entry point; importing this package is cheap (names load on
first use).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "results": ["Score", "Metrics", "GroupOutput", "summarize"],
    "batches": ["EvalBatch", "make_batches", "FeatureCache"],
    "store": ["ResultStore"],
    "evaluator": ["Evaluator", "score_subnet", "score_batches", "utterance_losses", "batch_stat_modules",
                  "recalibrate_batch_stats"],
    "training": ["TrainConfig", "TrainResult", "train_subnet"],
    "progressive": ["StageConfig", "ProgressiveConfig", "ProgressiveResult", "successive_halving",
                    "progressive_evaluate"],
    "ranking": ["RankStat", "rank_correlations", "bootstrap_ci", "stratified_sample"],
    "rank_check": ["RankCheckConfig", "RankCheckResult", "load_rank_check_config", "rank_check", "format_stat"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"supernet.evaluation.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'supernet.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
