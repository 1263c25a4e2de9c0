"""Train a speech supernet: sandwich (BigNAS), SPOS, progressive shrinking (Once-for-All),
DARTS and GDAS, in one LightningModule with the network injected.

Public entry point; the implementation lives in :mod:`supernet.training`.

    from supernet.train import load_fit_config, fit, load_supernet
    result = fit(load_fit_config("configs/fit/sandwich.yaml"))     # writes runs/fit/sandwich/
    net, space, tokenizer, meta = load_supernet(result.checkpoint)

Command line: ``supernet fit -c configs/fit/sandwich.yaml [key.sub=value ...] [--print_config]``.
"""

from __future__ import annotations

from supernet.training.config import (DIMENSIONS, STRATEGIES, BilevelConfig, FitConfig, FitTrainerConfig, HardwareConfig,
                                      PhaseConfig, ProgressiveConfig, SandwichConfig, load_fit_config)
from supernet.training.data import FitDataModule, StreamBatchSampler
from supernet.training.derive import alpha_scorers, arch_log_prob, decision_log_probs, derive_argmax, derive_under_budget
from supernet.training.losses import ExpectedCost, distill_loss, latency_cost, params_cost, posterior_parts
from supernet.training.module import CKPT_KEY, NonFiniteLossError, SupernetModule, transcribe
from supernet.training.paths import PathSampler, step_rng, step_seed
from supernet.training.run import FitResult, build_module, evaluate_archs, fit, load_supernet, make_trainer
from supernet.training.strategies import BilevelStrategy, PathStrategy, Strategy, build_strategy

__all__ = [
    "FitConfig", "SandwichConfig", "ProgressiveConfig", "PhaseConfig", "BilevelConfig", "HardwareConfig",
    "FitTrainerConfig", "STRATEGIES", "DIMENSIONS", "load_fit_config",
    "fit", "FitResult", "build_module", "make_trainer", "load_supernet", "evaluate_archs",
    "SupernetModule", "NonFiniteLossError", "CKPT_KEY", "transcribe",
    "Strategy", "PathStrategy", "BilevelStrategy", "build_strategy",
    "FitDataModule", "StreamBatchSampler", "PathSampler", "step_rng", "step_seed",
    "ExpectedCost", "params_cost", "latency_cost", "distill_loss", "posterior_parts",
    "derive_argmax", "derive_under_budget", "decision_log_probs", "alpha_scorers", "arch_log_prob",
]  # fmt: skip
