"""Small shared helpers: atomic writes, seeding, provenance of every output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "seed_everything", "versions", "provenance"]


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kw: Any) -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash or exception never leaves a half-written output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kw) as f:
            yield f
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600; outputs should be as readable as open() makes them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write (e.g. by a library taking a filename); rename on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator for code that takes one explicitly.

    Library code should take an injected ``random.Random`` / ``torch.Generator``; this exists for
    entry points (CLI, Lightning) where third-party code draws from the global RNGs.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def versions() -> dict[str, str]:
    """Versions of the libraries that decide numerical results (read from metadata: no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("torchaudio", "lightning", "torchmetrics", "optuna", "onnxruntime", "supernet"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def provenance(config: Any = None, seed: int | None = None) -> dict[str, Any]:
    """What to record beside every output: config, seed, versions, machine."""
    from supernet.config import to_dict

    return {
        "config": to_dict(config) if config is not None else None,
        "seed": seed,
        "versions": versions(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }
