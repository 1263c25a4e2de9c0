"""Typed configuration of a baseline run: model, augmentation, optimiser, data, trainer.

YAML files in ``configs/baseline/`` map one to one onto :class:`BaselineConfig`; load them with
:func:`load_baseline_config` (unknown or ill-typed fields are errors naming the file and field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from supernet.baseline.augment import AugmentConfig
from supernet.baseline.models import ModelConfig
from supernet.config import NEW_OPTION, check_minutes
from supernet.data.datamodule import DataConfig
from supernet.data.features import SpecAugmentConfig

__all__ = ["OptimConfig", "TrainerConfig", "BaselineConfig", "load_baseline_config"]


@dataclass
class OptimConfig:
    """AdamW with a warm-up then a decay, and gradient clipping.

    The schedule follows the run's *progress* in [0, 1]: the larger of steps / max_steps and
    elapsed / max_minutes, so a wall-clock-budgeted run still anneals to its end whatever speed
    the machine has.

    Args:
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        betas: AdamW betas.
        eps: AdamW epsilon.
        schedule: "cosine" (warm-up, then cosine to min_lr_ratio * lr), "linear" (warm-up, then
            linear decay: the OneCycle shape) or "constant" (warm-up, then flat).
        warmup: fraction of the run spent warming up linearly from 0.
        min_lr_ratio: final learning rate as a fraction of lr.
        grad_clip: clip the global gradient norm to this (0 disables).
    """

    lr: float = 2e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup: float = 0.05
    min_lr_ratio: float = 0.0
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the run in [0, 1), got {self.warmup}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 disables), got {self.grad_clip}")

    def lr_factor(self, progress: float) -> float:
        """Multiplier of ``lr`` at ``progress`` in [0, 1]."""
        import math

        p = min(max(progress, 0.0), 1.0)
        if p < self.warmup:
            return p / self.warmup
        if self.schedule == "constant":
            return 1.0
        q = (p - self.warmup) / (1.0 - self.warmup)
        decay = 0.5 * (1.0 + math.cos(math.pi * q)) if self.schedule == "cosine" else 1.0 - q
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * decay


@dataclass
class TrainerConfig:
    """How long and how a run trains.

    Args:
        max_steps: optimiser steps (the run stops at whichever of max_steps / max_minutes /
            time_limit_minutes comes first).
        max_minutes: wall-clock training budget in minutes (None: steps only, fully reproducible);
            part of the schedule (see :class:`OptimConfig`), so it changes the warm-up on a slow
            machine even when the run never reaches it.
        time_limit_minutes: a wall-clock guard that only stops the run (None: off); it never
            enters the schedule, so a run that ends before it repeats exactly.
        val_every_steps: validate on the dev sets every N steps (None: only at the end).
        log_every_steps: how often the training loss is logged.
        num_threads: torch CPU threads (None: leave torch's default / OMP_NUM_THREADS).
        accelerator: Lightning accelerator ("cpu", "gpu", "auto").
        precision: Lightning precision ("32-true", "bf16-mixed", ...).
        progress: show Lightning's progress bar.
    """

    max_steps: int = 2000
    max_minutes: float | None = None
    time_limit_minutes: float | None = field(default=None, metadata=NEW_OPTION)
    val_every_steps: int | None = None
    log_every_steps: int = 25
    num_threads: int | None = None
    accelerator: str = "cpu"
    precision: str = "32-true"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        check_minutes(self, "max_minutes", "time_limit_minutes")
        if self.val_every_steps is not None and self.val_every_steps < 1:
            raise ValueError(f"val_every_steps must be >= 1 or null, got {self.val_every_steps}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or null, got {self.num_threads}")


@dataclass
class BaselineConfig:
    """A whole baseline run.

    Args:
        name: run name (names the output folder).
        seed: seeds weights, augmentation, dropout and batch order.
        model: architecture (:class:`ModelConfig`).
        augment: waveform augmentation (:class:`AugmentConfig`).
        specaugment: feature masking (:class:`SpecAugmentConfig`); ``null`` in YAML disables it.
        optim: optimiser and schedule (:class:`OptimConfig`).
        data: corpus and batching (:class:`supernet.data.datamodule.DataConfig`).
        trainer: budget and loop (:class:`TrainerConfig`).
    """

    name: str = "baseline"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    specaugment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        sr = self.model.features.sample_rate
        if sr != self.data.sample_rate:
            raise ValueError(f"model.features.sample_rate ({sr}) must equal data.sample_rate "
                             f"({self.data.sample_rate}); set both to the same rate")


def load_baseline_config(source: str | Path | dict, **overrides: Any) -> BaselineConfig:
    """Build a :class:`BaselineConfig` from a YAML file or dict (``overrides`` replace top-level keys)."""
    from supernet.config import load_config

    return load_config(BaselineConfig, source, **overrides)
