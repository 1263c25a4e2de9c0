"""Hand-designed baselines: the references every searched architecture must beat.

- :mod:`supernet.baseline.models`  ``CTCModel`` (features -> encoder -> CTC head), Conformer and LSTM encoders
- :mod:`supernet.baseline.augment` speed / gain / noise perturbation of audio batches
- :mod:`supernet.baseline.config`  ``BaselineConfig`` (model, augment, specaugment, optim, data, trainer)
- :mod:`supernet.baseline.module`  ``BaselineModule`` (LightningModule), ``load_baseline(ckpt)``
- :mod:`supernet.baseline.train`   ``fit(cfg, out_dir)``, ``evaluate(ckpt, split)``
- :mod:`supernet.baseline.cli`     ``supernet baseline fit|eval``

Importing this package is cheap (the CLI imports it for ``--help``); names load on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "models": ["ModelConfig", "CTCModel", "ConvSubsampler", "ConformerEncoder", "LSTMEncoder", "build_model",
               "count_parameters"],
    "augment": ["AugmentConfig", "WaveAugment"],
    "config": ["BaselineConfig", "OptimConfig", "TrainerConfig", "load_baseline_config"],
    "module": ["BaselineModule", "load_baseline"],
    "train": ["fit", "evaluate"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "register"])


def register(subparsers) -> None:
    """Add ``supernet baseline fit|eval`` (see :mod:`supernet.baseline.cli`)."""
    from supernet.baseline.cli import register as _register

    _register(subparsers)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"supernet.baseline.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'supernet.baseline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
