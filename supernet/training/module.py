"""The LightningModule that trains a speech supernet.

The network (:class:`~supernet.model.SpeechSupernet`) is injected; the training strategy
(:mod:`supernet.training.strategies`) decides what a step runs. This module owns what every
strategy shares:

- manual optimisation: AdamW for the weights (the baseline's schedule, driven by the run's
  progress), Adam for alpha (darts / gdas); gradients clipped through ``self.clip_gradients``;
- a non-finite loss or gradient skips the step (no update) and is counted; after
  ``trainer.max_nonfinite`` in a row, :class:`NonFiniteLossError` stops the run and the last
  checkpoint written stays the last good one. The decision is reduced over DDP ranks, so every
  rank skips the same steps;
- randomness per step from (seed, step) alone: paths (``step_rng``), Gumbel noise and
  SpecAugment (``generator``) and dropout (the global torch RNG is re-seeded per step and rank).
  Hence identical runs for one seed, identical paths on every rank, and a resumed run equal to
  an uninterrupted one;
- validation: dev WER/CER of the largest and smallest paths (and the alpha argmax for darts /
  gdas) per dev set and as a mean (``dev/<path>/wer``);
- alpha logging: entropy, softmax(alpha) per candidate (``alpha/<decision>=<value>``) and a
  history stored in the checkpoint (plotted at the end of the run).

DDP: every rank draws the same paths, so a weight is used or unused on every rank alike; the
Trainer runs DDP with ``find_unused_parameters=True`` and a weight no path of the step touched
keeps ``grad = None`` on every rank, which AdamW leaves alone (as in a single process).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import lightning as L
import torch
from torch import Tensor

from supernet.baseline.augment import WaveAugment
from supernet.config import to_dict
from supernet.data.features import SpecAugment
from supernet.data.tokenizer import Tokenizer
from supernet.metrics import ErrorRates
from supernet.space import Arch, SearchSpace
from supernet.training.alpha import entropy, flatten
from supernet.training.config import FitConfig
from supernet.training.data import batch_size
from supernet.training.paths import step_seed
from supernet.training.strategies import Strategy

__all__ = ["SupernetModule", "NonFiniteLossError", "CKPT_KEY"]

CKPT_KEY = "supernet_fit"  # our metadata inside a Lightning checkpoint


class NonFiniteLossError(RuntimeError):
    """Too many non-finite training steps in a row."""


class SupernetModule(L.LightningModule):
    """Trains a :class:`~supernet.model.SpeechSupernet` with one of the strategies.

    Args:
        net: the supernet (injected).
        space: the search space it holds.
        cfg: the resolved :class:`FitConfig`.
        tokenizer: decodes hypotheses for WER (its size fixed the heads).
        strategy: what a step does (:func:`supernet.training.strategies.build_strategy`).
        set_names: dev set names in the order of the validation loaders.
        checkpoint_hint: where periodic checkpoints go (named in errors).
    """

    def __init__(self, net: torch.nn.Module, space: SearchSpace, cfg: FitConfig, tokenizer: Tokenizer,
                 strategy: Strategy, set_names: Optional[list[str]] = None, checkpoint_hint: str = "") -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = net
        self.space = space
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.strategy = strategy
        self.set_names = set_names
        self.checkpoint_hint = checkpoint_hint
        # Training state (saved in checkpoints).
        self.batches_seen = 0
        self.nonfinite_total = 0
        self.nonfinite_run = 0
        self.kd_unmatched = 0
        self.alpha_history: list[dict[str, Any]] = []
        self.elapsed_before = 0.0
        self.current_lr = cfg.optim.lr
        self._t0: Optional[float] = None
        self._bad_step = False
        self._rates: dict[tuple[str, int], ErrorRates] = {}
        self.eval_results: dict[str, dict[str, dict[str, float]]] = {}
        self.init_report: Optional[dict[str, Any]] = None  # what a warm start loaded (build_module)

    # ------------------------------------------------------------------ randomness and progress
    def seed_for(self, step: int, stream: str) -> int:
        return step_seed(self.cfg.seed, step, stream)

    def generator(self, step: int, stream: str) -> torch.Generator:
        """A CPU generator seeded from (seed, step, stream): the same on every rank and run."""
        return torch.Generator().manual_seed(self.seed_for(step, stream))

    def augmenter(self, step: int) -> Optional[Callable[[Tensor, Tensor], Tensor]]:
        """SpecAugment of this step; every path of the step sees the same masks."""
        if self.cfg.specaugment is None:
            return None
        # Built per step, not kept: SpecAugment holds a torch.Generator, which cannot be pickled
        # into spawned DDP workers. The generator passed in makes its own unused.
        spec_augment = SpecAugment(self.cfg.specaugment)
        seed = self.seed_for(step, "specaugment")
        return lambda feats, lengths: spec_augment(feats, lengths, generator=torch.Generator().manual_seed(seed))

    def wave_augment(self, batch: dict, step: int) -> dict:
        """``batch`` with this step's waveform augmentation (``cfg.augment``) applied to its
        training audio; the same batch when augmentation is off. Seeded by (seed, step)."""
        if not self.cfg.augment.active:
            return batch
        if "train" in batch:  # bilevel: the alpha split stays clean
            return {**batch, "train": self.wave_augment(batch["train"], step)}
        with torch.no_grad():  # built per step, like SpecAugment: a torch.Generator does not pickle into DDP workers
            audio, lengths = WaveAugment(self.cfg.augment)(batch["audio"], batch["audio_lengths"],
                                                            generator=self.generator(step, "wave"))
        return {**batch, "audio": audio, "audio_lengths": lengths}

    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._t0 if self._t0 is not None else 0.0)

    def over_time_limit(self) -> bool:
        """Whether the stop-only guard ``trainer.time_limit_minutes`` has been reached."""
        limit = self.cfg.trainer.time_limit_minutes
        return limit is not None and self.elapsed() >= 60.0 * limit

    def stopped_by(self) -> str:
        """What ended (or would end) the run: "max_steps", "time_limit" or "max_minutes"."""
        if self.batches_seen >= self.cfg.total_steps:
            return "max_steps"
        return "time_limit" if self.over_time_limit() else "max_minutes"

    def progress(self) -> float:
        """Fraction of the run done: max(steps / total steps, elapsed / max_minutes), in [0, 1].

        ``trainer.time_limit_minutes`` is not part of it: that guard only stops the run."""
        p = self.batches_seen / self.cfg.total_steps
        if self.cfg.trainer.max_minutes is not None:
            p = max(p, self.elapsed() / (60.0 * self.cfg.trainer.max_minutes))
        return min(p, 1.0)

    # ------------------------------------------------------------------ optimisers
    def configure_optimizers(self):
        o = self.cfg.optim
        decay, no_decay = [], []
        for p in self.net.weight_parameters():
            (no_decay if p.ndim < 2 else decay).append(p)  # biases and norm gains are not shrunk
        groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # fused: one kernel for all tensors; on CPU 3-7x faster than the per-tensor loop, which
        # matters here because a step updates the whole supernet after small per-path graphs.
        weights = torch.optim.AdamW(groups, lr=self.strategy.lr(0.0), betas=o.betas, eps=o.eps, fused=True)
        if not self.strategy.bilevel:
            return weights
        b = self.cfg.bilevel
        alpha = torch.optim.Adam(self.net.arch_parameters(), lr=b.arch_lr, betas=b.arch_betas, weight_decay=b.arch_weight_decay,
                                 fused=True)
        return [weights, alpha]

    def _optimizers(self) -> tuple[Any, Optional[torch.optim.Optimizer]]:
        opts = self.optimizers()
        if isinstance(opts, list):
            # alpha steps bypass the LightningOptimizer wrapper so that trainer.global_step counts
            # weight steps only (Lightning adds one per wrapped optimizer step).
            return opts[0], opts[1].optimizer
        return opts, None

    def _any_rank(self, flag: bool) -> bool:
        t = torch.tensor(1.0 if flag else 0.0, device=self.device)
        return bool(self.trainer.strategy.reduce(t, reduce_op="sum") > 0)

    @staticmethod
    def _finite(losses: list[Tensor], grads: list[Optional[Tensor]]) -> bool:
        if not all(bool(torch.isfinite(x).all()) for x in losses):
            return False
        gs = [g for g in grads if g is not None]
        return not gs or bool(torch.isfinite(torch.nn.utils.get_total_norm(gs)))

    def weight_step(self, losses: list[Tensor]) -> bool:
        """Clip and apply the accumulated weight gradients, or skip a non-finite step."""
        opt, _ = self._optimizers()
        params = self.net.weight_parameters()
        if self._any_rank(not self._finite(losses, [p.grad for p in params])):
            self._bad_step = True
            opt.zero_grad(set_to_none=True)
            return False
        if self.cfg.optim.grad_clip > 0:
            self.clip_gradients(opt, gradient_clip_val=self.cfg.optim.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad(set_to_none=True)
        for a in self.net.arch_parameters():  # the weight step's backward reached alpha too
            a.grad = None
        return True

    def alpha_step(self, grads: list[Optional[Tensor]], losses: list[Tensor]) -> bool:
        """Average alpha gradients over ranks and step Adam, or skip a non-finite step."""
        _, opt = self._optimizers()
        alphas = self.net.arch_parameters()
        grads = [torch.zeros_like(a) if g is None else g.detach() for g, a in zip(grads, alphas)]
        if self._any_rank(not self._finite(losses, grads)):
            self._bad_step = True
            return False
        if self.trainer.world_size > 1:  # computed with autograd.grad: DDP did not average them
            grads = [self.trainer.strategy.reduce(g, reduce_op="mean") for g in grads]
        for a, g in zip(alphas, grads):
            a.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        return True

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        if self.cfg.trainer.num_threads:  # here too: spawned DDP workers do not inherit the parent's setting
            torch.set_num_threads(self.cfg.trainer.num_threads)

    def on_train_start(self) -> None:
        self._t0 = time.monotonic()

    def training_step(self, batch: dict, batch_idx: int) -> None:
        step = self.batches_seen
        # Dropout draws from the global RNG: re-seed it per (step, rank) so that the step does
        # not depend on what ran before it (resume, validation, data loading).
        torch.manual_seed(self.seed_for(step, f"torch/{self.global_rank}"))
        progress = self.progress()
        self.current_lr = self.strategy.lr(progress)
        opt, _ = self._optimizers()
        for group in opt.optimizer.param_groups if hasattr(opt, "optimizer") else opt.param_groups:
            group["lr"] = self.current_lr
        self._bad_step = False
        logs = self.strategy.step(self, self.wave_augment(batch, step), step)
        self.batches_seen += 1
        self._after_step(step)
        bs = batch_size(batch["train"] if "train" in batch else batch)
        # Logged every step (Lightning would repeat a value not re-logged); the Trainer writes a
        # row every trainer.log_every_steps.
        self._log_step(logs, step, bs)
        self.log("train/loss", logs["train/loss"], prog_bar=True, batch_size=bs, on_step=True, on_epoch=False)
        if self.progress() >= 1.0 or self.over_time_limit():
            self.trainer.should_stop = True

    def _after_step(self, step: int) -> None:
        if not self._bad_step:
            self.nonfinite_run = 0
            return
        self.nonfinite_total += 1
        self.nonfinite_run += 1
        k = self.cfg.trainer.max_nonfinite
        if self.nonfinite_run >= k:
            where = f" The last good checkpoint is in {self.checkpoint_hint}." if self.checkpoint_hint else ""
            raise NonFiniteLossError(
                f"{k} training steps in a row (steps {step - k + 1}..{step}) had a non-finite loss or gradient "
                f"({self.nonfinite_total} in all); training stopped.{where} Lower optim.lr, keep optim.grad_clip > 0, "
                "or check the data (`supernet data check`)."
            )

    def _log_step(self, logs: dict[str, Tensor], step: int, bs: int) -> None:
        values = {k: v for k, v in logs.items() if k != "train/loss"}
        values.update({"train/lr": self.current_lr, "train/nonfinite": float(self.nonfinite_total),
                       "train/kd_unmatched": float(self.kd_unmatched), **self.strategy.describe(self.progress())})
        if self.strategy.bilevel:
            dists = self.net.alpha_distributions()
            values.update(flatten(dists))
            values["alpha/entropy"] = sum(entropy(d) for d in dists.values()) / max(len(dists), 1)
            if step % self.cfg.trainer.log_every_steps == 0 or self.progress() >= 1.0:
                probs = {n: {str(v): p for v, p in d.items()} for n, d in dists.items()}
                self.alpha_history.append({"step": step + 1, "probs": probs})
        self.log_dict({k: float(v) for k, v in values.items()}, batch_size=bs, on_step=True, on_epoch=False)

    # ------------------------------------------------------------------ validation
    def _names(self, n: int) -> list[str]:
        if self.set_names and len(self.set_names) == n:
            return list(self.set_names)
        return [f"dev{i}" for i in range(n)]

    def on_validation_epoch_start(self) -> None:
        self._rates = {}
        self._eval_archs = self.strategy.eval_archs(self)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        for name, arch in self._eval_archs.items():
            hyps = transcribe(self.net, arch, batch, self.tokenizer)
            key = (name, dataloader_idx)
            if key not in self._rates:
                self._rates[key] = ErrorRates(normalize=False)  # dataset texts are normalised already
            self._rates[key].update(hyps, batch["texts"])

    def on_validation_epoch_end(self) -> None:
        n = 1 + max((i for _, i in self._rates), default=-1)
        names = self._names(n)
        results: dict[str, dict[str, dict[str, float]]] = {}
        for (path, i), rates in sorted(self._rates.items()):
            r = rates.compute()
            results.setdefault(path, {})[names[i]] = r
            for metric, value in r.items():
                self.log(f"dev/{names[i]}/{path}/{metric}", value, add_dataloader_idx=False)
        for path, per_set in results.items():
            mean = sum(r["wer"] for r in per_set.values()) / len(per_set)
            self.log(f"dev/{path}/wer", mean, prog_bar=path in ("largest", "smallest"), add_dataloader_idx=False)
        self.eval_results = results
        self._rates = {}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from supernet.utils import versions

        checkpoint[CKPT_KEY] = {
            "format": 1,
            "config": to_dict(self.cfg),
            "space": self.space.spec.raw,
            "space_name": self.space.name,
            "tokenizer": self.tokenizer.to_dict(),
            "vocab_size": self.tokenizer.vocab_size,
            "seed": self.cfg.seed,
            "versions": {k: str(v) for k, v in versions().items()},  # plain strings: weights_only loading
            "state": {
                "batches_seen": self.batches_seen,
                "nonfinite_total": self.nonfinite_total,
                "nonfinite_run": self.nonfinite_run,
                "kd_unmatched": self.kd_unmatched,
                "elapsed_s": self.elapsed(),
                "alpha_history": self.alpha_history,
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CKPT_KEY, {}).get("state")
        if state is None:
            return
        self.batches_seen = int(state["batches_seen"])
        self.nonfinite_total = int(state["nonfinite_total"])
        self.nonfinite_run = int(state["nonfinite_run"])
        self.kd_unmatched = int(state["kd_unmatched"])
        self.elapsed_before = float(state["elapsed_s"])
        self._t0 = None  # the loaded time is all of it so far; on_train_start restarts the clock
        self.alpha_history = list(state["alpha_history"])


@torch.no_grad()
def transcribe(net: torch.nn.Module, arch: Arch, batch: dict, tokenizer: Tokenizer) -> list[str]:
    """Greedy transcripts of ``arch`` (inherited weights) for a batch dict."""
    enc, lengths = net(batch["audio"], batch["audio_lengths"], arch)
    return [tokenizer.decode(ids) for ids in net.decode(enc, lengths, arch)]
