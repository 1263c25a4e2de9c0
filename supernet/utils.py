"""Small shared helpers: atomic writes, seeding, provenance of every output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_dir", "seed_everything", "versions", "provenance",
           "cpu_model"]


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_dir(out: str | Path, fill: Callable[[Path], None], force: bool = False) -> None:
    """Build a directory under a temporary name beside ``out`` with ``fill(tmp)``, then swap it in.

    Readers see the old directory or the complete new one, never a mix; a failing ``fill``
    leaves ``out`` untouched. An existing non-empty ``out`` is replaced only with ``force``.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory; choose another output path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out}: directory is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        fill(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it 0o700; give it the mode a mkdir would
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }
