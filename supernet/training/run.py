"""Run a supernet training end to end, and load what it wrote.

:func:`fit` builds the corpus, the supernet, the strategy and the Lightning Trainer from a
:class:`FitConfig`, trains, then scores and writes the run folder::

    runs/fit/<name>/
      config.yaml          the resolved config (every default filled in; reusable with -c)
      space.yaml           the search space the supernet holds
      provenance.json      seed, library versions, machine
      checkpoints/         step=N.ckpt (periodic, newest kept) and last.ckpt; resume from these
      supernet.ckpt        the final supernet (Lightning checkpoint + our metadata)
      metrics.csv          everything logged (CSV logger; TensorBoard under tb/ when installed)
      alpha_history.json   softmax(alpha) per decision over training (darts / gdas)
      alpha.png            its plot
      alphas.json          the final softmax(alpha) per decision (darts / gdas): `supernet search
                           --strategy darts` reads it as darts.alphas
      summary.json         final dev WER/CER of the largest/smallest (and derived) paths,
                           steps, skipped non-finite steps, derived archs

:func:`load_supernet` rebuilds the trained supernet from ``supernet.ckpt`` alone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import lightning as L
import torch
import yaml

from supernet.config import ConfigError, to_dict
from supernet.data.tokenizer import Tokenizer, tokenizer_from_dict
from supernet.nn.config import NetConfig
from supernet.space import Arch, SearchSpace
from supernet.training.config import FitConfig, load_fit_config
from supernet.training.data import FitDataModule
from supernet.training.module import CKPT_KEY, SupernetModule, transcribe
from supernet.utils import atomic_write_json, atomic_write_text, provenance, seed_everything

__all__ = ["FitResult", "fit", "build_module", "make_trainer", "load_supernet", "evaluate_archs", "PeriodicCheckpoint"]


@dataclass
class FitResult:
    """What :func:`fit` returns on rank 0 (other DDP ranks get None)."""

    run_dir: Path
    checkpoint: Path
    summary: dict[str, Any]
    module: SupernetModule


# ---------------------------------------------------------------------------- building
def _expected_cost(cfg: FitConfig, space: SearchSpace, vocab_size: int):
    from supernet.training.losses import ExpectedCost, latency_cost, params_cost

    if not cfg.hardware.enabled:
        return None
    if cfg.hardware.cost == "params":
        return ExpectedCost(*params_cost(vocab_size, cfg.net))
    return ExpectedCost(*latency_cost(_load_lut(cfg, space)))


# NetConfig fields that change training only, not what a latency table times
_TRAINING_ONLY = {"dropout", "ctc_weight", "label_smoothing"}


def _load_lut(cfg: FitConfig, space: SearchSpace):
    from supernet.profiling.lut import LatencyLUT

    lut = LatencyLUT.load(cfg.hardware.lut, space=space, strict=False)
    if "net" in lut.provider_config:
        # NetConfig(**...) fills options newer than the table with their defaults (what it was timed with)
        measured = NetConfig(**lut.provider_config["net"])
        differ = [f"{f.name} {getattr(measured, f.name)!r} (this supernet: {getattr(cfg.net, f.name)!r})"
                  for f in dataclasses.fields(NetConfig)
                  if f.name not in _TRAINING_ONLY and getattr(measured, f.name) != getattr(cfg.net, f.name)]
        if differ:
            warnings.warn(f"{cfg.hardware.lut}: measured with {', '.join(differ)}: its latencies are off; rebuild "
                          f"it with `supernet profile lut --net-from <this fit config>`", stacklevel=2)
    return lut


def build_module(cfg: FitConfig, space: SearchSpace, tokenizer: Tokenizer, set_names: Optional[list[str]] = None,
                 checkpoint_hint: str = "") -> SupernetModule:
    """The supernet of ``space`` (seeded by ``cfg.seed``) wrapped in a :class:`SupernetModule`."""
    from supernet.model import SpeechSupernet
    from supernet.training.strategies import build_strategy

    torch.manual_seed(cfg.seed)  # weight initialisation
    net = SpeechSupernet.from_space(space, tokenizer.vocab_size, net=cfg.net)
    init_report = warm_start(net, cfg.init_from) if cfg.init_from else None
    strategy = build_strategy(cfg, space, net, _expected_cost(cfg, space, tokenizer.vocab_size))
    module = SupernetModule(net, space, cfg, tokenizer, strategy, set_names=set_names, checkpoint_hint=checkpoint_hint)
    module.init_report = init_report
    return module


def warm_start(net: torch.nn.Module, path: str | Path) -> dict[str, Any]:
    """Copy into ``net`` every weight of a ``supernet fit`` checkpoint whose name and shape match.

    The checkpoint may hold another space: a one-arch space (a standalone model trained by
    ``supernet fit``, e.g. the largest arch, as Once-for-All starts from a trained full network)
    or a smaller or larger supernet. Weights with no counterpart, or another shape, keep their
    fresh initialisation. The checkpoint's tokenizer must be the run's (``fit`` uses it).

    Returns:
        A report: tensors and parameters loaded, and the names left at their initialisation
        (``not_in_checkpoint``), skipped for their shape (``shape_mismatch``, with both shapes)
        or unused from the checkpoint (``unused``).

    Raises:
        ConfigError: unreadable checkpoint, or not one weight matched (wrong file).
    """
    source = {k[len("net."):]: v for k, v in _read_checkpoint(path)["state_dict"].items() if k.startswith("net.")}
    target = net.state_dict()
    loaded, mismatch, missing = {}, {}, []
    for name, value in target.items():
        if name not in source:
            missing.append(name)
        elif source[name].shape != value.shape:
            mismatch[name] = {"checkpoint": list(source[name].shape), "net": list(value.shape)}
        else:
            loaded[name] = source[name]
    if not loaded:
        raise ConfigError(f"{path}: field 'init_from': no weight of this checkpoint matches the supernet by name and shape; "
                          "give a `supernet fit` checkpoint of the same network family (same net: settings)")
    net.load_state_dict(loaded, strict=False)
    params = dict(net.named_parameters())
    report = {
        "checkpoint": str(path),
        "loaded_tensors": len(loaded), "total_tensors": len(target),
        "loaded_params": sum(v.numel() for k, v in loaded.items() if k in params),
        "total_params": sum(p.numel() for p in params.values()),
        "not_in_checkpoint": missing, "shape_mismatch": mismatch,
        "unused": sorted(set(source) - set(target)),
    }
    print(f"init_from {path}: loaded {report['loaded_tensors']}/{report['total_tensors']} tensors "
          f"({report['loaded_params']:,}/{report['total_params']:,} parameters); {len(missing)} not in the checkpoint, "
          f"{len(mismatch)} with another shape, {len(report['unused'])} checkpoint tensors unused", flush=True)
    return report


class PeriodicCheckpoint(L.Callback):
    """``checkpoints/step=N.ckpt`` every ``every`` steps (newest ``keep`` kept) plus ``last.ckpt``;
    ``final`` at the end of training. Files are written under a temporary name and renamed, so a
    crash never leaves a half-written checkpoint, and a run stopped by an error keeps the last
    good one."""

    def __init__(self, dirpath: Path, every: int, keep: int, final: Path) -> None:
        self.dirpath = Path(dirpath)
        self.every = every
        self.keep = keep
        self.final = Path(final)

    def _save(self, trainer: L.Trainer, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # the whole state, for resuming; every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, path)

    def on_train_batch_end(self, trainer: L.Trainer, module: SupernetModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = module.batches_seen
        # The final state is written by on_train_end; after a skipped (non-finite) step nothing
        # is written, so that the newest checkpoint is the state after the last good step.
        if n % self.every or trainer.should_stop or module.nonfinite_run > 0:
            return
        path = self.dirpath / f"step={n:06d}.ckpt"
        self._save(trainer, path)
        if trainer.is_global_zero:
            _copy_atomic(path, self.dirpath / "last.ckpt")
            for old in sorted(self.dirpath.glob("step=*.ckpt"))[: -self.keep]:
                old.unlink(missing_ok=True)

    def on_train_end(self, trainer: L.Trainer, module: SupernetModule) -> None:
        self._save(trainer, self.final)
        if trainer.is_global_zero:
            _copy_atomic(self.final, self.dirpath / "last.ckpt")


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _loggers(cfg: FitConfig, run_dir: Path) -> list:
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False))
    return loggers


def make_trainer(cfg: FitConfig, run_dir: Path, callbacks: Iterable[L.Callback] = (), logger: bool = True) -> L.Trainer:
    """The Lightning Trainer of a run (manual stopping at the run's end; see SupernetModule)."""
    from lightning.pytorch.strategies import DDPStrategy

    t = cfg.trainer
    strategy: Any = t.strategy
    if t.strategy in ("ddp", "ddp_spawn"):
        # find_unused_parameters: a path touches a fraction of the weights (see SupernetModule).
        strategy = DDPStrategy(find_unused_parameters=True, start_method="spawn" if t.strategy == "ddp_spawn" else "popen",
                               process_group_backend="gloo" if t.accelerator == "cpu" else None)
    validate = t.val_every_steps is not None
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, strategy=strategy, precision=t.precision,
        max_steps=cfg.total_steps, max_epochs=-1,
        val_check_interval=t.val_every_steps if validate else None, check_val_every_n_epoch=None,
        limit_val_batches=(t.limit_val_batches or 1.0) if validate else 0, num_sanity_val_steps=0,
        logger=_loggers(cfg, run_dir) if logger else False, log_every_n_steps=t.log_every_steps,
        callbacks=[PeriodicCheckpoint(run_dir / "checkpoints", t.ckpt_every_steps, t.keep_checkpoints, run_dir / "supernet.ckpt"),
                   *callbacks],
        enable_checkpointing=False, enable_progress_bar=t.progress, enable_model_summary=False,
        use_distributed_sampler=False, default_root_dir=str(run_dir),
    )


# ---------------------------------------------------------------------------- fit
def _write_run_files(cfg: FitConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    shutil.copyfile(cfg.space, run_dir / ".space.yaml.tmp")
    os.replace(run_dir / ".space.yaml.tmp", run_dir / "space.yaml")
    atomic_write_json(run_dir / "provenance.json", provenance(cfg, cfg.seed))


def fit(cfg: FitConfig, resume: str | Path | None = None, callbacks: Iterable[L.Callback] = (),
        logger: bool = True) -> Optional[FitResult]:
    """Train a supernet as ``cfg`` says and write the run folder (see the module docstring).

    Args:
        cfg: the resolved config.
        resume: a checkpoint of this run (``checkpoints/last.ckpt``) to continue from; the run
            then ends exactly where the uninterrupted run would have.
        callbacks: extra Lightning callbacks.
        logger: write metrics.csv (and TensorBoard logs).

    Returns:
        :class:`FitResult` on rank 0, None on the other DDP ranks.

    Raises:
        NonFiniteLossError: too many non-finite steps in a row (the last good checkpoint stays).
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    run_dir = cfg.run_dir
    seed_everything(cfg.seed)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    space = SearchSpace.from_yaml(cfg.space)
    tokenizer = None
    if resume is not None or cfg.init_from:  # same token ids as the weights it loads
        tokenizer = tokenizer_from_dict(_read_checkpoint(resume or cfg.init_from)[CKPT_KEY]["tokenizer"])
    dm = FitDataModule(cfg.data, cfg.bilevel.arch_fraction if cfg.bilevel_strategy else None, seed=cfg.seed,
                       tokenizer=tokenizer, progress=cfg.trainer.progress)
    dm.prepare_data()
    dm.setup("fit")
    if rank_zero_only.rank == 0:
        _write_run_files(cfg, run_dir)
    module = build_module(cfg, space, dm.tokenizer, set_names=dm.dev_names, checkpoint_hint=str(run_dir / "checkpoints"))
    trainer = make_trainer(cfg, run_dir, callbacks, logger)
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume is not None else None)
    if not trainer.is_global_zero:
        return None
    final = run_dir / "supernet.ckpt"
    if resume is not None and not final.is_file():
        # The resumed checkpoint was already at the end of the run: no step ran, so the Trainer
        # wrote nothing, and that checkpoint is the final state.
        _copy_atomic(Path(resume), final)
    return finish(cfg, run_dir, space, dm, module)


def finish(cfg: FitConfig, run_dir: Path, space: SearchSpace, dm: FitDataModule, module: SupernetModule) -> FitResult:
    """After training: reload the final weights, score the paths on the dev sets, derive archs
    (darts / gdas), plot alpha, write ``summary.json``."""
    from supernet.training.alpha import plot_alpha_history

    ckpt_path = run_dir / "supernet.ckpt"
    ckpt = _read_checkpoint(ckpt_path)
    module.load_state_dict(ckpt["state_dict"])  # in a spawned DDP run the parent holds stale weights
    module.on_load_checkpoint(ckpt)
    net = module.net.eval()
    archs = module.strategy.eval_archs(module)
    dev = evaluate_archs(net, archs, dm.speech.val_dataloader(), dm.dev_names, dm.tokenizer)  # whole dev sets
    summary: dict[str, Any] = {
        "strategy": cfg.strategy,
        "steps": module.batches_seen,
        "total_steps": cfg.total_steps,
        # a wall-clock budget ends the run before its steps: then the result depends on the machine's speed
        "stopped_by": module.stopped_by(),
        "nonfinite_steps": module.nonfinite_total,
        "kd_unmatched": module.kd_unmatched,
        "elapsed_s": round(module.elapsed_before, 1),
        "archs": {name: {"id": a.id, "describe": a.describe(), "arch": a.to_dict()} for name, a in archs.items()},
        "dev": dev,
        "checkpoint": str(ckpt_path),
    }
    if getattr(module, "init_report", None) is not None:
        summary["init_from"] = module.init_report
    if module.strategy.bilevel:
        summary["derived"] = derive_all(cfg, space, module)
        atomic_write_json(run_dir / "alpha_history.json", module.alpha_history)
        atomic_write_json(run_dir / "alphas.json", {d: {str(v): p for v, p in probs.items()}
                                                    for d, probs in module.net.alpha_distributions().items()})
        plot_alpha_history(module.alpha_history, run_dir / "alpha.png", title=f"{cfg.name}: softmax(alpha) per decision")
    atomic_write_json(run_dir / "summary.json", summary)
    return FitResult(run_dir, ckpt_path, summary, module)


def derive_all(cfg: FitConfig, space: SearchSpace, module: SupernetModule) -> dict[str, Any]:
    """The argmax arch and, with ``derive_budget``, the exact best arch under that budget."""
    from supernet.training.derive import derive_under_budget
    from supernet.training.losses import latency_cost, params_cost

    base = module.strategy.base
    argmax = module.net.derive_argmax(base)
    out: dict[str, Any] = {"argmax": {"id": argmax.id, "describe": argmax.describe(), "arch": argmax.to_dict()}}
    if cfg.derive_budget is not None:
        if cfg.derive_cost == "params":
            costs, resolution = params_cost(module.tokenizer.vocab_size, cfg.net), 1.0
        else:
            costs, resolution = latency_cost(_load_lut(cfg, space)), 1e-3
        best = derive_under_budget(module.net, space, cfg.derive_budget, *costs, base=base, resolution=resolution)
        out["budget"] = {"cost": cfg.derive_cost, "budget": cfg.derive_budget,
                         "arch": None if best is None else best.arch.to_dict(),
                         "describe": None if best is None else best.arch.describe(),
                         "log_prob": None if best is None else best.score, "predicted_cost": None if best is None else best.cost}
    return out


@torch.no_grad()
def evaluate_archs(net: torch.nn.Module, archs: dict[str, Arch], loaders: list, names: list[str], tokenizer: Tokenizer,
                   limit_batches: Optional[int] = None) -> dict[str, Any]:
    """Dev WER/CER per path and set with inherited weights: ``{path: {set: {wer, cer}, "wer": mean}}``."""
    from supernet.metrics import ErrorRates

    net.eval()
    out: dict[str, Any] = {}
    for path, arch in archs.items():
        per_set = {}
        for name, loader in zip(names, loaders):
            rates = ErrorRates(normalize=False)
            for i, batch in enumerate(loader):
                if limit_batches is not None and i >= limit_batches:
                    break
                rates.update(transcribe(net, arch, batch, tokenizer), batch["texts"])
            per_set[name] = rates.compute()
        out[path] = {**per_set, "wer": sum(r["wer"] for r in per_set.values()) / len(per_set)}
    return out


# ---------------------------------------------------------------------------- loading
def _read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found; pass supernet.ckpt or checkpoints/last.ckpt of a `supernet fit` run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        raise ConfigError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or CKPT_KEY not in ckpt or "state_dict" not in ckpt:
        raise ConfigError(f"{path}: not a supernet checkpoint (no '{CKPT_KEY}' entry); it must come from `supernet fit`")
    return ckpt


def load_supernet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Any, SearchSpace, Tokenizer, dict]:
    """Rebuild a trained supernet from a ``supernet fit`` checkpoint alone.

    Returns:
        (SpeechSupernet in eval mode, SearchSpace, Tokenizer, metadata) where metadata holds
        the resolved ``config`` (a :class:`FitConfig`), ``seed``, ``versions`` and training ``state``.
    """
    from supernet.model import SpeechSupernet

    ckpt = _read_checkpoint(path)
    meta = dict(ckpt[CKPT_KEY])
    space = SearchSpace.from_dict(meta["space"], where=f"{path} (space)")
    tokenizer = tokenizer_from_dict(meta["tokenizer"])
    cfg = load_fit_config(meta["config"])
    net = SpeechSupernet.from_space(space, tokenizer.vocab_size, net=NetConfig(**dataclasses.asdict(cfg.net)))
    net.load_state_dict({k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}, strict=True)
    meta["config"] = cfg
    return net.to(map_location).eval(), space, tokenizer, meta
