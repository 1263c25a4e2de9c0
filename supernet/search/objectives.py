"""Metrics, objectives and the scalar fitness of single-objective strategies.

Metric names (what an evaluator returns, one flat ``{name: float}`` per arch):

==================  ============================================================================
``wer``             dev word error rate (a fraction, 0.12 = 12 %). For a streaming arch
                    (``chunk > 0``) it is the *streaming* WER: decoded chunk by chunk.
``cer``, ``loss``   dev character error rate, dev loss.
``wer/set/NAME``    WER of one dev/test set.
``wer/lang/CODE``   WER of one language (multilingual corpora).
``wer_mean``        mean of the ``wer/lang/*`` entries (derived here when absent).
``params``          parameter count.
``flops``           FLOPs of one forward at the reference length.
``latency_ms``      median full-utterance latency at the reference length on the target.
``rtf``             real-time factor: processing time / audio duration (< 1: faster than real time).
``chunk_latency_ms``  streaming: time from a chunk's last sample to its output (compute + look-ahead).
``memory_mb``       peak memory of one forward.
==================  ============================================================================

Every objective is minimised. Presets name the pairs the issue asks for (:data:`PRESETS`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from supernet.config import ConfigError

__all__ = ["PRESETS", "RESERVED", "resolve_objectives", "with_derived", "objective_values", "Fitness", "INFEASIBLE"]

PRESETS: dict[str, tuple[str, ...]] = {
    "wer_latency": ("wer", "latency_ms"),
    "wer_params": ("wer", "params"),
    "wer_rtf": ("wer", "rtf"),
    "multilingual_params": ("wer_mean", "params"),
    "streaming": ("wer", "chunk_latency_ms"),
}
# Trial user attributes that are not metrics (so a metric may not take these names).
RESERVED = frozenset({"arch", "arch_id", "describe", "strategy", "stage", "seed", "worker", "error", "duplicate_of"})
# Fitness of an infeasible arch starts here, so it is worse than any feasible one.
INFEASIBLE = 1e6


def resolve_objectives(spec: str | Sequence[str], where: str = "objectives") -> tuple[str, ...]:
    """A preset name (``"wer_latency"``) or a list of metric names -> tuple of metric names."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]
        names: tuple[str, ...] = (spec,)
    else:
        names = tuple(spec)
    if not names:
        raise ConfigError(f"{where}: needs at least one objective; presets: {', '.join(PRESETS)}")
    for n in names:
        if not isinstance(n, str) or n in RESERVED:
            raise ConfigError(f"{where}: {n!r} is not a metric name; use metric names like wer, latency_ms, params or a preset ({', '.join(PRESETS)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: objectives repeat a metric: {list(names)}")
    return names


def with_derived(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``metrics`` as floats, plus ``wer_mean`` (mean over ``wer/lang/*``) when it can be derived."""
    out = {k: float(v) for k, v in metrics.items()}
    langs = [v for k, v in out.items() if k.startswith("wer/lang/")]
    if "wer_mean" not in out and langs:
        out["wer_mean"] = sum(langs) / len(langs)
    return out


def objective_values(metrics: Mapping[str, float], objectives: Sequence[str]) -> list[float]:
    """The objective values in order; a clear error when the evaluator did not give one."""
    m = with_derived(metrics)
    missing = [o for o in objectives if o not in m]
    if missing:
        raise ConfigError(
            f"objective(s) {missing} not among the evaluator's metrics ({', '.join(sorted(m)) or 'none'}); "
            "pick objectives the evaluator measures (e.g. a latency objective needs a profiler or a latency table)"
        )
    values = [m[o] for o in objectives]
    bad = [o for o, v in zip(objectives, values) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"objective(s) {bad} are not finite: {dict(zip(objectives, values))}")
    return values


class Fitness:
    """Scalar to minimise for single-objective strategies: the first objective if the arch meets
    the target's limits, else :data:`INFEASIBLE` plus the summed relative excess (so that among
    infeasible archs, the closer ones rank better).

    Args:
        objectives: metric names; the first one is optimised.
        target: a :class:`~supernet.search.targets.Target` (or None: no limits).
    """

    def __init__(self, objectives: Sequence[str], target: Any = None) -> None:
        self.objectives = tuple(objectives)
        self.target = target

    @property
    def primary(self) -> str:
        return self.objectives[0]

    def __call__(self, arch: Any, metrics: Mapping[str, float]) -> float:
        value = objective_values(metrics, self.objectives[:1])[0]
        if self.target is None:
            return value
        violations = self.target.violations(arch, metrics)
        if not violations:
            return value
        return INFEASIBLE + sum(v.excess for v in violations)

    def feasible(self, arch: Any, metrics: Mapping[str, float]) -> bool:
        return self.target is None or not self.target.violations(arch, metrics)
