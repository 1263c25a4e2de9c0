"""Fit and evaluate a baseline: the functions behind ``supernet baseline fit|eval``.

A run folder holds, each written atomically::

    model.ckpt        Lightning checkpoint; config, tokenizer, seed, versions inside
    config.yaml       the resolved config (every default filled in)
    tokenizer.json    the vocabulary
    provenance.json   config, seed, versions, machine
    metrics.json      params, steps, time, steps/s, dev and test WER/CER/loss per set
    logs/             Lightning CSV logs (training curve)
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from supernet.baseline.config import BaselineConfig
from supernet.baseline.module import BaselineModule

__all__ = ["fit", "evaluate", "make_trainer", "setup_torch", "summarize"]

log = logging.getLogger(__name__)


def setup_torch(num_threads: int | None) -> None:
    """Process-wide torch settings for CPU training (entry points only, never library code).

    Denormal floats (AdamW's squared tiny gradients, far tails of softmax) make x86 float
    arithmetic several times slower; flushing them to zero changed one 2-core training step from
    ~4.7 s to ~0.9 s here, and is numerically harmless for training.
    """
    torch.set_flush_denormal(True)
    if num_threads is not None:
        torch.set_num_threads(num_threads)


def make_trainer(cfg: BaselineConfig, out_dir: Path | None = None, progress: bool | None = None, **overrides: Any):
    """The Lightning Trainer for ``cfg``.

    Args:
        cfg: run config (budget, precision, clipping, validation interval).
        out_dir: CSV logs go to ``out_dir/logs``; None: no logger.
        progress: progress bar (None: ``cfg.trainer.progress``).
        overrides: any other ``lightning.Trainer`` argument.
    """
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    t = cfg.trainer
    progress = t.progress if progress is None else progress
    kw: dict[str, Any] = dict(
        accelerator=t.accelerator,
        devices=1,
        precision=t.precision,
        max_steps=t.max_steps,
        max_epochs=-1,
        max_time=timedelta(minutes=wall) if (wall := _wall_stop(t)) is not None else None,
        gradient_clip_val=cfg.optim.grad_clip or None,
        log_every_n_steps=t.log_every_steps,
        enable_progress_bar=progress,
        enable_model_summary=False,
        enable_checkpointing=False,  # fit() writes the one checkpoint itself, atomically
        num_sanity_val_steps=0,
        logger=CSVLogger(str(out_dir), name="logs", version="") if out_dir is not None else False,
        # tqdm, not Rich: one line per refresh reads well in logs and CI too.
        callbacks=[TQDMProgressBar(refresh_rate=10)] if progress else None,
    )
    if t.val_every_steps is None:
        kw["limit_val_batches"] = 0
    else:
        kw.update(val_check_interval=t.val_every_steps, check_val_every_n_epoch=None)
    extra = overrides.pop("callbacks", None) or []
    kw.update(overrides)
    kw["callbacks"] = (kw["callbacks"] or []) + list(extra)
    return L.Trainer(**kw)


def _wall_stop(t: Any) -> float | None:
    """Minutes after which the run stops: the earlier of the budget (``max_minutes``, which also
    steers the schedule) and the stop-only guard (``time_limit_minutes``); None: steps only."""
    limits = [m for m in (t.max_minutes, t.time_limit_minutes) if m is not None]
    return min(limits) if limits else None


def _quiet_lightning() -> None:
    # "GPU available: False ..." and tips on every Trainer: noise in a CLI's output.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _eval_sets(trainer, module: BaselineModule, dm, split: str) -> dict[str, dict[str, float]]:
    module.eval_results.pop("dev" if split == "dev" else "test", None)
    if split == "dev":
        trainer.validate(module, dataloaders=dm.val_dataloader(), verbose=False)
        return module.eval_results["dev"]
    trainer.test(module, dataloaders=dm.test_dataloader(), verbose=False)
    return module.eval_results["test"]


def summarize(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean WER / CER / loss over sets (multilingual fitness is the mean WER)."""
    n = len(results)
    return {m: sum(r[m] for r in results.values()) / n for m in ("wer", "cer", "loss")} if n else {}


def fit(cfg: BaselineConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train ``cfg`` and write the run folder (see module docstring); return the metrics.

    Args:
        cfg: the resolved config.
        out_dir: run folder; must not already hold a finished run.
        progress: progress bars (corpus build and training).

    Returns:
        The metrics dict also written to ``metrics.json``.
    """
    import yaml

    from supernet.config import ConfigError, to_dict
    from supernet.data.datamodule import SpeechDataModule
    from supernet.utils import atomic_path, atomic_write_json, atomic_write_text, provenance, seed_everything

    out_dir = Path(out_dir)
    if (out_dir / "metrics.json").exists() or (out_dir / "model.ckpt").exists():
        raise ConfigError(f"{out_dir}: already holds a finished run; pass another --out or delete it")
    out_dir.mkdir(parents=True, exist_ok=True)
    _quiet_lightning()
    setup_torch(cfg.trainer.num_threads)
    seed_everything(cfg.seed)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))

    dm = SpeechDataModule(cfg.data, progress=progress)
    dm.prepare_data()
    dm.setup("fit")
    dm.tokenizer.save(out_dir / "tokenizer.json")
    module = BaselineModule(cfg, dm.tokenizer, set_names={"dev": dm.dev_names, "test": dm.test_names})
    trainer = make_trainer(cfg, out_dir, progress=cfg.trainer.progress and progress)

    t0, c0 = time.monotonic(), time.process_time()
    trainer.fit(module, datamodule=dm)
    train_seconds = time.monotonic() - t0
    train_cpu = time.process_time() - c0
    steps = int(module.global_step)

    with atomic_path(out_dir / "model.ckpt") as tmp:
        trainer.save_checkpoint(tmp, weights_only=False)  # said, not defaulted: Lightning logs its default at every save
    # Final scores on every dev and test set, with a trainer that validates whatever the config says.
    scorer = make_trainer(cfg, None, progress=cfg.trainer.progress and progress, limit_val_batches=None)
    dev = _eval_sets(scorer, module, dm, "dev")
    test = _eval_sets(scorer, module, dm, "test")
    metrics = {
        "name": cfg.name,
        "num_parameters": module.num_parameters,
        "steps": steps,
        "train_seconds": round(train_seconds, 1),
        "steps_per_second": round(steps / train_seconds, 3) if train_seconds > 0 else None,
        "stopped_by": "max_steps" if steps >= cfg.trainer.max_steps else (
            "time_limit" if _wall_stop(cfg.trainer) == cfg.trainer.time_limit_minutes else "max_minutes"),
        "torch_threads": torch.get_num_threads(),
        # CPU seconds this process got while training, and that as a share of threads x wall time:
        # ~1 on an idle machine, lower when other processes compete for the cores.
        "train_cpu_seconds": round(train_cpu, 1),
        "cpu_share": round(train_cpu / (train_seconds * torch.get_num_threads()), 3) if train_seconds > 0 else None,
        "dev": dev,
        "test": test,
        "dev_mean": summarize(dev),
        "test_mean": summarize(test),
    }
    atomic_write_json(out_dir / "provenance.json", provenance(cfg, cfg.seed))
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics


def evaluate(ckpt: str | Path, split: str = "dev", data_overrides: dict | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Score a checkpoint on its own corpus's dev or test sets.

    Args:
        ckpt: checkpoint of a baseline run.
        split: "dev" or "test".
        data_overrides: replace fields of the checkpoint's data config (e.g. ``cache_dir``).
        progress: progress bars.

    Returns:
        {"split", "sets": {name: {wer, cer, loss}}, "mean": {...}, "num_parameters"}.
    """
    from dataclasses import replace

    from supernet.baseline.module import load_baseline
    from supernet.data.datamodule import SpeechDataModule

    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}")
    _quiet_lightning()
    setup_torch(None)
    module = load_baseline(ckpt)
    data_cfg = replace(module.cfg.data, **(data_overrides or {}))
    dm = SpeechDataModule(data_cfg, tokenizer=module.tokenizer, progress=progress)
    dm.prepare_data()
    dm.setup("validate" if split == "dev" else "test")
    module._set_names = {"dev": dm.dev_names, "test": dm.test_names}
    trainer = make_trainer(module.cfg, None, progress=progress, limit_val_batches=None)
    sets = _eval_sets(trainer, module, dm, split)
    return {"split": split, "sets": sets, "mean": summarize(sets), "num_parameters": module.num_parameters}
