"""The LightningModule that trains and scores a baseline, and checkpoint loading.

The network is injected (a :class:`~supernet.baseline.models.CTCModel` built from the config);
this module adds what training needs around it: waveform augmentation and SpecAugment (training
only, from explicit generators), the CTC loss, AdamW with a progress-driven schedule, greedy
decoding and WER/CER per dev / test set. A checkpoint carries everything needed to rebuild the
model without the config file or the corpus: the resolved config, the tokenizer, seed, versions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from supernet.baseline.augment import WaveAugment
from supernet.baseline.config import BaselineConfig
from supernet.baseline.models import CTCModel, build_model, count_parameters
from supernet.data.features import SpecAugment
from supernet.data.tokenizer import Tokenizer, tokenizer_from_dict
from supernet.metrics import ErrorRates, ctc_greedy_decode

__all__ = ["BaselineModule", "load_baseline", "CKPT_KEY"]

CKPT_KEY = "supernet_baseline"  # where our own metadata lives inside a Lightning checkpoint


class BaselineModule(L.LightningModule):
    """Trains a CTC baseline.

    Args:
        cfg: the resolved :class:`BaselineConfig`.
        tokenizer: character tokenizer (blank id 0); fixes the output layer's size.
        set_names: names of the dev and test sets, in the order of the DataModule's loaders
            (``{"dev": [...], "test": [...]}``); defaults to the attached DataModule's names.

    Logged: ``train/loss``, ``train/lr``; ``dev/<set>/{loss,wer,cer}`` and ``dev/wer`` (mean over
    sets, the number model selection and search use); the same under ``test/``.
    """

    def __init__(self, cfg: BaselineConfig, tokenizer: Tokenizer,
                 set_names: dict[str, list[str]] | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.model: CTCModel = build_model(cfg.model, tokenizer.vocab_size)
        # Separate streams so that turning one augmentation off does not change the others' draws.
        self.wave_augment = WaveAugment(cfg.augment, seed=cfg.seed * 1000 + 1)
        self.spec_augment = SpecAugment(cfg.specaugment, seed=cfg.seed * 1000 + 2) if cfg.specaugment else None
        self.ctc = torch.nn.CTCLoss(blank=tokenizer.blank_id, zero_infinity=True)
        self._set_names = set_names
        self._rates: dict[str, ErrorRates] = {}
        self._losses: dict[str, tuple[float, int]] = {}  # set -> (sum of losses, utterances)
        self._t0: float | None = None
        self.eval_results: dict[str, dict[str, dict[str, float]]] = {}

    # ------------------------------------------------------------------ model

    def forward(self, audio: Tensor, audio_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) audio -> (B, T', V) log-probs and (B,) lengths (no augmentation)."""
        return self.model(audio, audio_lengths)

    @torch.no_grad()
    def transcribe(self, audio: Tensor, audio_lengths: Tensor) -> list[str]:
        """Greedy CTC transcripts of a padded (B, S) audio batch."""
        log_probs, lengths = self.model(audio, audio_lengths)
        return [self.tokenizer.decode(ids) for ids in ctc_greedy_decode(log_probs, lengths, self.tokenizer.blank_id)]

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def _ctc_loss(self, log_probs: Tensor, lengths: Tensor, batch: dict) -> Tensor:
        # cuDNN/CPU CTC wants (T, B, V) float32 log-probs.
        return self.ctc(log_probs.transpose(0, 1).float(), batch["targets"], lengths, batch["target_lengths"])

    # ------------------------------------------------------------------ training

    def progress(self) -> float:
        """Fraction of the run done: max(step / max_steps, elapsed / max_minutes)."""
        t = self.cfg.trainer
        p = self.global_step / t.max_steps
        if t.max_minutes is not None and self._t0 is not None:
            p = max(p, (time.monotonic() - self._t0) / (60.0 * t.max_minutes))
        return min(p, 1.0)

    def on_train_start(self) -> None:
        self._t0 = time.monotonic()

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        lr = self.cfg.optim.lr * self.cfg.optim.lr_factor(self.progress())
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        audio, lengths = self.wave_augment(batch["audio"], batch["audio_lengths"])
        feats, feat_lengths = self.model.frontend(audio, lengths)
        if self.spec_augment is not None:
            feats = self.spec_augment(feats, feat_lengths)
        log_probs, out_lengths = self.model.from_features(feats, feat_lengths)
        loss = self._ctc_loss(log_probs, out_lengths, batch)
        bs = len(batch["texts"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        return loss

    def configure_optimizers(self):
        o = self.cfg.optim
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            # Biases and norm gains are not weights to shrink.
            (no_decay if p.ndim < 2 else decay).append(p)
        groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # lr starts at the schedule's value for step 0; on_train_batch_start sets it every step.
        return torch.optim.AdamW(groups, lr=o.lr * o.lr_factor(0.0), betas=o.betas, eps=o.eps)

    # ------------------------------------------------------------------ evaluation

    def _names(self, stage: str, n: int) -> list[str]:
        if self._set_names and stage in self._set_names:
            return list(self._set_names[stage])
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(dm, f"{stage}_names", None) if dm is not None else None
        return list(names) if names and len(names) == n else [f"{stage}{i}" for i in range(n)]

    def _eval_step(self, stage: str, batch: dict, dataloader_idx: int) -> None:
        log_probs, lengths = self.model(batch["audio"], batch["audio_lengths"])
        key = f"{stage}/{dataloader_idx}"
        n = len(batch["texts"])
        total, count = self._losses.get(key, (0.0, 0))
        self._losses[key] = (total + float(self._ctc_loss(log_probs, lengths, batch)) * n, count + n)
        hyps = [self.tokenizer.decode(ids) for ids in ctc_greedy_decode(log_probs, lengths, self.tokenizer.blank_id)]
        # Hypotheses are normalised like the references (e.g. a doubled space is no character error).
        if key not in self._rates:
            self._rates[key] = ErrorRates(normalize=True)
        self._rates[key].update(hyps, batch["texts"])

    def _eval_end(self, stage: str) -> None:
        keys = sorted((k for k in self._rates if k.startswith(f"{stage}/")), key=lambda k: int(k.split("/")[1]))
        names = self._names(stage, len(keys))
        results = {}
        for name, key in zip(names, keys):
            r = self._rates.pop(key).compute()
            total, count = self._losses.pop(key)
            r["loss"] = total / count  # mean over utterances of the CTC loss per target token
            results[name] = r
            for metric, value in r.items():
                self.log(f"{stage}/{name}/{metric}", value, add_dataloader_idx=False)
        if results:
            mean = sum(r["wer"] for r in results.values()) / len(results)
            self.log(f"{stage}/wer", mean, prog_bar=True, add_dataloader_idx=False)
            self.eval_results[stage] = results

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("dev", batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("test", batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("dev")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from supernet.utils import provenance

        checkpoint[CKPT_KEY] = {
            "format": 1,
            "tokenizer": self.tokenizer.to_dict(),
            **provenance(self.cfg, self.cfg.seed),
            "num_parameters": self.num_parameters,
        }


def load_baseline(path: str | Path, map_location: str | torch.device = "cpu") -> BaselineModule:
    """Rebuild a trained baseline from its checkpoint alone (config and vocabulary are inside).

    Args:
        path: a checkpoint written by ``supernet baseline fit`` (Lightning ``.ckpt``).
        map_location: device for the weights.

    Returns:
        The :class:`BaselineModule` in eval mode; ``.tokenizer`` and ``.cfg`` as trained.
    """
    from supernet.baseline.config import load_baseline_config
    from supernet.config import ConfigError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; pass the model.ckpt of a `supernet baseline fit` run")
    try:
        # Lightning records its torch version as a TorchVersion (a str subclass): safe to allow.
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        raise ConfigError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    meta = ckpt.get(CKPT_KEY) if isinstance(ckpt, dict) else None
    if meta is None or "state_dict" not in ckpt:
        raise ConfigError(f"{path}: not a baseline checkpoint (no '{CKPT_KEY}' entry); "
                          "it must come from `supernet baseline fit`")
    cfg = load_baseline_config(meta["config"])
    tokenizer = tokenizer_from_dict(meta["tokenizer"])
    module = BaselineModule(cfg, tokenizer)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
