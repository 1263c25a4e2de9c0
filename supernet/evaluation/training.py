"""Train a static subnet on the training set, with early stopping on the shared dev scoring.

One loop serves two purposes:

- rank-check references: a fresh ``SubnetModel`` trained from scratch until its dev loss stops
  improving (``supernet.rank_check``);
- progressive evaluation: an extracted subnet fine-tuned from its inherited weights, stopped on
  dev WER (``supernet.evaluation.progressive``).

Dev scores come from a callback, in practice :meth:`Evaluator.score_model
<supernet.evaluation.evaluator.Evaluator.score_model>`, so references, fine-tuned subnets and
the supernet are scored by the same code on the same batches. A plain PyTorch loop rather than a
Lightning Trainer: the model is a small static module, validation is that callback, and early
stopping restores the best weights, so the loop stays one screen long.

Randomness: initialisation is the caller's; batch order comes from ``LengthBucketSampler``
seeded by ``seed``, SpecAugment from a ``torch.Generator``, and dropout from the global torch
RNG inside ``torch.random.fork_rng`` seeded by ``seed`` (the caller's RNG state is untouched).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from supernet.baseline.augment import AugmentConfig, WaveAugment
from supernet.baseline.config import OptimConfig
from supernet.config import NEW_OPTION, check_minutes
from supernet.data.datamodule import LengthBucketSampler, collate
from supernet.data.features import SpecAugment, SpecAugmentConfig

__all__ = ["TrainConfig", "TrainResult", "train_subnet"]

log = logging.getLogger(__name__)

# A run has learned when its best dev WER is at least this far below min(start WER, 1).
STALL_MARGIN = 0.1


def _constant_optim() -> OptimConfig:
    # Early stopping decides the length, so the schedule must not anneal towards a fixed end.
    return OptimConfig(lr=1e-3, schedule="constant", warmup=0.05)


@dataclass
class TrainConfig:
    """Budget, early stopping and optimiser of :func:`train_subnet`.

    Args:
        max_steps: cap on optimiser steps.
        max_minutes: cap on wall-clock training time (None: steps only, reproducible); part of
            the schedule's progress (see ``optim``).
        time_limit_minutes: a wall-clock guard that only stops the run (``stopped =
            "time_limit"``); it never enters the schedule, so a run that ends before it repeats.
        eval_every: steps between dev evaluations.
        patience: stop after this many evaluations without improvement of ``monitor``.
        decay_patience: "newbob" learning-rate decay (as Kaldi and ESPnet recipes train to
            convergence): after this many evaluations without improvement the best weights are
            restored and the learning rate is multiplied by ``decay_factor``, at most
            ``max_decays`` times, before ``patience`` may stop the run (None: no decay).
        min_steps: evaluations before this step never count against the run (no decay, no
            early stop): deep CTC models can sit on the all-blank plateau for a while before
            they start to learn.
        decay_factor: learning-rate multiplier of each decay.
        max_decays: decays before early stopping applies.
        min_delta: an improvement must exceed this.
        monitor: "loss" (dev loss) or "wer" (dev WER).
        stop_at: stop as soon as an evaluation's ``monitor`` is at or below this (``stopped =
            "reached"``): time-to-quality measurements (bench/headline.py). None: off.
        batch_size: training utterances per batch.
        train_fraction: share of the training set used (a seeded subset).
        optim: AdamW settings; the schedule's progress is max(step / max_steps, elapsed /
            max_minutes); keep it "constant" when early stopping decides the length.
        specaugment: feature masking during training (None: off).
        augment: waveform augmentation during training (speed, gain, noise; the baseline's
            :class:`~supernet.baseline.augment.AugmentConfig`; default off).
        seed: batch order, subset, SpecAugment, waveform augmentation and dropout.
    """

    max_steps: int = 2000
    max_minutes: float | None = None
    time_limit_minutes: float | None = field(default=None, metadata=NEW_OPTION)
    eval_every: int = 50
    patience: int = 4
    decay_patience: int | None = None
    min_steps: int = 0
    decay_factor: float = 0.5
    max_decays: int = 3
    min_delta: float = 0.0
    monitor: Literal["loss", "wer"] = "loss"
    stop_at: float | None = field(default=None, metadata=NEW_OPTION)
    batch_size: int = 16
    train_fraction: float = 1.0
    optim: OptimConfig = field(default_factory=_constant_optim)
    specaugment: SpecAugmentConfig | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata=NEW_OPTION)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_steps", "eval_every", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.decay_patience is not None and not (1 <= self.decay_patience < self.patience):
            raise ValueError(f"decay_patience must be in [1, patience) = [1, {self.patience}) or null, "
                             f"got {self.decay_patience}")
        if not 0.0 < self.decay_factor < 1.0 or self.max_decays < 0:
            raise ValueError(f"decay_factor must be in (0, 1) and max_decays >= 0, got {self.decay_factor}, "
                             f"{self.max_decays}")
        check_minutes(self, "max_minutes", "time_limit_minutes")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction is a share of the training set in (0, 1], got {self.train_fraction}")
        if self.monitor not in ("loss", "wer"):
            raise ValueError(f"monitor must be 'loss' or 'wer', got {self.monitor!r}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")


@dataclass
class TrainResult:
    """What :func:`train_subnet` did.

    Attributes:
        curve: one point per dev evaluation: ``{"step", "seconds", "train_loss", "loss", "wer", "cer"}``
            (``train_loss``: mean since the previous point; step 0 is the starting model).
        best_step: step of the best ``monitor`` value; the model holds those weights on return.
        final_step: steps taken.
        stopped: "patience" (the early-stopping rule ended it), "reached" (``stop_at``), "max_steps",
            "time_limit" (the stop-only guard) or "max_minutes".
        best: the dev metrics at ``best_step``.
        seconds: training wall time (evaluations included).
        skipped_steps: steps skipped because the loss or gradient was not finite.
    """

    curve: list[dict[str, float]]
    best_step: int
    final_step: int
    stopped: str
    best: Mapping[str, float]
    seconds: float
    skipped_steps: int = 0
    decays: int = 0

    @property
    def converged(self) -> bool:
        """Early stopping ended the run, and the model had learned by then.

        A run whose dev WER never fell clearly below its starting value (a CTC model still
        emitting only blanks) also stops by patience, but it stalled; ranking such runs measures
        how fast archs start learning, not how good they become.
        """
        start = self.curve[0].get("wer", math.nan) if self.curve else math.nan
        learned = float(self._best_dict().get("wer", math.nan)) <= min(start, 1.0) - STALL_MARGIN
        return self.stopped == "patience" and learned

    def _best_dict(self) -> dict[str, Any]:
        return self.best.to_dict() if hasattr(self.best, "to_dict") else dict(self.best)

    def to_dict(self) -> dict[str, Any]:
        best = self._best_dict()
        return {"curve": self.curve, "best_step": self.best_step, "final_step": self.final_step, "stopped": self.stopped,
                "converged": self.converged, "best": best, "seconds": self.seconds, "skipped_steps": self.skipped_steps,
                "lr_decays": self.decays}


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)  # biases and norm gains are not decayed
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_subnet(model: nn.Module, train_set: Any, cfg: TrainConfig, evaluate: Callable[[nn.Module], Mapping[str, float]],
                 *, progress: bool = False, label: str = "") -> TrainResult:
    """Train ``model`` on ``train_set`` until ``cfg.monitor`` stops improving or a cap is hit.

    Args:
        model: a static subnet with the :class:`~supernet.subnet.SubnetModel` interface
            (``features``, ``encoder``, ``loss``); trained in place and left with the best weights
            seen (in eval mode).
        train_set: a dataset of ``{"audio", "target", "text", "lang", "id"}`` items with
            ``durations`` (``SpeechDataset``).
        cfg: budget, early stopping, optimiser.
        evaluate: ``f(model) -> metrics`` with "loss" and "wer" (e.g. ``Evaluator.score_model``).
        progress: show a progress bar.
        label: names the run in the progress bar and logs.
    """
    from tqdm import tqdm

    n = len(train_set)
    if n == 0:
        raise ValueError("train_set is empty")
    rng = random.Random(f"train/{cfg.seed}")
    subset = sorted(rng.sample(range(n), max(1, round(cfg.train_fraction * n)))) if cfg.train_fraction < 1 else list(range(n))
    durations = getattr(train_set, "durations", None) or [len(train_set[i]["audio"]) for i in range(n)]
    sampler = LengthBucketSampler([durations[i] for i in subset], batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
    spec = SpecAugment(cfg.specaugment, seed=cfg.seed) if cfg.specaugment is not None else None
    wave = WaveAugment(cfg.augment, seed=cfg.seed * 1000 + 1) if cfg.augment.active else None
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr * cfg.optim.lr_factor(0.0),
                            betas=cfg.optim.betas, eps=cfg.optim.eps)
    device = next(model.parameters()).device
    sign = 1.0  # both monitored values are minimised

    def score(step: int, train_losses: list[float], t0: float) -> tuple[dict[str, float], Mapping[str, float]]:
        m = evaluate(model)
        point = {"step": step, "seconds": round(time.monotonic() - t0, 3),
                 "train_loss": sum(train_losses) / len(train_losses) if train_losses else math.nan,
                 "loss": float(m["loss"]), "wer": float(m["wer"]), "cer": float(m["cer"])}
        return point, m

    t0 = time.monotonic()
    point, best_metrics = score(0, [], t0)
    curve = [point]
    best_value, best_step, best_state, bad = sign * point[cfg.monitor], 0, copy.deepcopy(model.state_dict()), 0
    step, epoch, skipped, stopped = 0, 0, 0, ""
    lr_scale, decays = 1.0, 0
    train_losses: list[float] = []
    bar = tqdm(total=cfg.max_steps, desc=f"train {label}".strip(), unit="step", disable=not progress, leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # dropout
        while not stopped:
            sampler.set_epoch(epoch)
            epoch += 1
            for idx in sampler:
                elapsed = time.monotonic() - t0
                prog = step / cfg.max_steps
                if cfg.max_minutes is not None:
                    prog = max(prog, elapsed / (60 * cfg.max_minutes))
                for g in opt.param_groups:
                    g["lr"] = cfg.optim.lr * cfg.optim.lr_factor(prog) * lr_scale
                batch = collate([train_set[subset[i]] for i in idx])
                audio, audio_lengths = batch["audio"], batch["audio_lengths"]
                if wave is not None:
                    with torch.no_grad():
                        audio, audio_lengths = wave(audio, audio_lengths)
                model.train()
                feats, feat_lengths = model.features(audio.to(device), audio_lengths.to(device))
                if spec is not None:
                    feats = spec(feats, feat_lengths, generator=gen)
                enc, enc_lengths = model.encoder(feats, feat_lengths)
                loss = model.loss(enc, enc_lengths, batch["targets"].to(device), batch["target_lengths"].to(device))
                opt.zero_grad(set_to_none=True)
                if torch.isfinite(loss):
                    loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
                    if torch.isfinite(norm):
                        opt.step()
                        train_losses.append(loss.item())
                    else:
                        skipped += 1
                else:
                    skipped += 1
                step += 1
                bar.update(1)
                elapsed = time.monotonic() - t0
                over_time = cfg.max_minutes is not None and elapsed >= 60 * cfg.max_minutes
                over_limit = cfg.time_limit_minutes is not None and elapsed >= 60 * cfg.time_limit_minutes
                if step % cfg.eval_every == 0 or step >= cfg.max_steps or over_time or over_limit:
                    point, metrics = score(step, train_losses, t0)
                    train_losses = []
                    curve.append(point)
                    bar.set_postfix(loss=f"{point['loss']:.3f}", wer=f"{point['wer']:.3f}")
                    if sign * point[cfg.monitor] < best_value - cfg.min_delta:
                        best_value, best_step, best_metrics, bad = sign * point[cfg.monitor], step, metrics, 0
                        best_state = copy.deepcopy(model.state_dict())
                    elif step >= cfg.min_steps:
                        bad += 1
                    if cfg.decay_patience is not None and bad >= cfg.decay_patience and decays < cfg.max_decays:
                        model.load_state_dict(best_state)  # newbob: back to the best weights, smaller steps
                        lr_scale *= cfg.decay_factor
                        decays, bad = decays + 1, 0
                    elif bad >= cfg.patience:
                        stopped = "patience"
                    if cfg.stop_at is not None and point[cfg.monitor] <= cfg.stop_at:
                        stopped = "reached"
                if not stopped and step >= cfg.max_steps:
                    stopped = "max_steps"
                if not stopped and over_limit:
                    stopped = "time_limit"
                if not stopped and over_time:
                    stopped = "max_minutes"
                if stopped:
                    break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    if skipped:
        log.warning("%s: %d of %d steps skipped (non-finite loss or gradient)", label or "train_subnet", skipped, step)
    return TrainResult(curve, best_step, step, stopped, best_metrics, round(time.monotonic() - t0, 3), skipped, decays)
