"""Progressive evaluation: cheap scores for many archs, costly ones for the few that deserve them.

Stages of rising fidelity (and cost), with successive halving between them (Jamieson &
Talwalkar, 2016; the building block of Hyperband):

- stage 0: inherited weights, no training (the :class:`~supernet.evaluation.evaluator.Evaluator`);
- stage 1: a short fine-tune of the extracted subnet on a subset of the training data;
- stage 2: a longer fine-tune on all of it, continuing from stage 1's weights.

After each stage only the best ``keep`` fraction (by dev WER) goes on. Fine-tuning stops early
when dev WER stops improving (:func:`~supernet.evaluation.training.train_subnet`) and keeps the
best weights. Every stage is scored by the same evaluator on the same dev batches, so WERs of
different stages are comparable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from supernet.evaluation.training import TrainConfig, train_subnet
from supernet.space import Arch

__all__ = ["StageConfig", "ProgressiveConfig", "ProgressiveResult", "successive_halving", "progressive_evaluate"]


@dataclass
class StageConfig:
    """One fidelity stage.

    Args:
        name: label in the results.
        train: fine-tuning of this stage; None: inherited weights only (stage 0).
        keep: fraction of this stage's archs that go on to the next stage (at least one).
    """

    name: str
    train: TrainConfig | None = None
    keep: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.keep <= 1.0:
            raise ValueError(f"stage {self.name!r}: keep is a fraction in (0, 1], got {self.keep}")


def _default_stages() -> tuple[StageConfig, ...]:
    return (
        StageConfig("inherited", None, keep=0.25),
        StageConfig("short", TrainConfig(max_steps=200, eval_every=50, patience=2, monitor="wer", train_fraction=0.25), keep=0.5),
        StageConfig("long", TrainConfig(max_steps=2000, eval_every=100, patience=3, monitor="wer", train_fraction=1.0), keep=1.0),
    )


@dataclass
class ProgressiveConfig:
    """Stages of :func:`progressive_evaluate`, in order of rising fidelity."""

    stages: tuple[StageConfig, ...] = field(default_factory=_default_stages)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("progressive evaluation needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if any(s.train is None for s in self.stages[1:]):
            raise ValueError("only the first stage may be 'inherited weights' (train: null); later stages fine-tune")


def successive_halving(items: Sequence[Any], scores: Sequence[float], keep: float) -> list[Any]:
    """The best ``ceil(keep * n)`` items (lowest score first; ties keep the input order), at least one."""
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} items but {len(scores)} scores")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep is a fraction in (0, 1], got {keep}")
    if not items:
        return []
    n = max(1, math.ceil(keep * len(items) - 1e-9))
    order = sorted(range(len(items)), key=lambda i: (scores[i], i))
    return [items[i] for i in order[:n]]


@dataclass
class ProgressiveResult:
    """Per-arch scores by stage and the final ranking.

    Attributes:
        stages: stage names in order.
        scores: {arch id: {stage name: {"wer", "cer", "loss", "steps", "best_step", "stopped"}}}
            for the stages the arch took part in.
        ranking: every arch, best first: archs that reached a later stage rank above those
            dropped earlier; within a stage, by that stage's dev WER.
        archs: {arch id: Arch}.
    """

    stages: list[str]
    scores: dict[str, dict[str, dict[str, Any]]]
    ranking: list[Arch]
    archs: dict[str, Arch]

    @property
    def best(self) -> Arch:
        return self.ranking[0]

    def to_dict(self) -> dict[str, Any]:
        return {"stages": self.stages, "ranking": [a.id for a in self.ranking], "scores": self.scores,
                "archs": {k: a.to_dict() for k, a in self.archs.items()}}


def progressive_evaluate(evaluator: Any, archs: Sequence[Arch], train_set: Any, cfg: ProgressiveConfig | None = None,
                         *, progress: bool = False) -> ProgressiveResult:
    """Score ``archs`` in stages of rising fidelity, keeping the best fraction after each.

    Args:
        evaluator: an :class:`~supernet.evaluation.evaluator.Evaluator` (inherited weights and
            dev scoring of fine-tuned models).
        archs: candidates (duplicates by id are scored once).
        train_set: training utterances for fine-tuning (``SpeechDataset``).
        cfg: the stages (default: inherited, short on 25 % of the data, long on all of it).
        progress: progress bars.
    """
    from supernet.subnet import extract

    cfg = cfg or ProgressiveConfig()
    unique = {a.id: a for a in archs}
    if not unique:
        raise ValueError("progressive_evaluate needs at least one arch")
    alive = list(unique.values())
    models: dict[str, Any] = {}
    scores: dict[str, dict[str, dict[str, Any]]] = {a: {} for a in unique}
    dropped: list[list[Arch]] = []  # archs dropped after each stage, best first
    for stage in cfg.stages:
        for arch in alive:
            if stage.train is None:
                m = evaluator.evaluate(arch)
                row = {"wer": m.wer, "cer": m.cer, "loss": m.loss, "steps": 0, "best_step": 0, "stopped": "inherited"}
            else:
                model = models.get(arch.id) or extract(evaluator.supernet, arch)
                res = train_subnet(model, train_set, stage.train, lambda mod, a=arch: evaluator.score_model(mod, a.id),
                                   progress=progress, label=f"{stage.name} {arch.id}")
                models[arch.id] = model
                row = {"wer": float(res.best["wer"]), "cer": float(res.best["cer"]), "loss": float(res.best["loss"]),
                       "steps": res.final_step, "best_step": res.best_step, "stopped": res.stopped}
            scores[arch.id][stage.name] = row
        wers = [scores[a.id][stage.name]["wer"] for a in alive]
        ranked = successive_halving(alive, wers, 1.0)
        kept = successive_halving(alive, wers, stage.keep) if stage is not cfg.stages[-1] else ranked
        dropped.append([a for a in ranked if a not in kept])
        for a in dropped[-1]:
            models.pop(a.id, None)
        alive = kept
    ranking = alive + [a for group in reversed(dropped) for a in group]
    return ProgressiveResult([s.name for s in cfg.stages], scores, ranking, unique)
