"""What every built corpus shares: a cache keyed by config hash, and atomic (staged) builds.

A corpus folder holds its audio, one JSONL manifest per split and ``provenance.json`` (the
config, the cache key, seed and library versions). A build is written to a hidden staging
folder beside ``out_dir`` and renamed into place only when complete, so an interrupted build
never looks like a finished one, and two processes building the same corpus do not clash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["CorpusError", "PROVENANCE", "find_build", "staged_build", "finish_build"]

PROVENANCE = "provenance.json"


class CorpusError(ValueError):
    """A corpus cannot be built (missing source data or tool, or an occupied output folder)."""


def find_build(out_dir: str | Path, key: str) -> dict[str, Path] | None:
    """Manifests {split name: path} of a finished build with cache key ``key`` in ``out_dir``."""
    stamp = Path(out_dir) / PROVENANCE
    try:
        prov = json.loads(stamp.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if prov.get("key") != key:
        return None
    manifests = {name: Path(out_dir) / rel for name, rel in prov.get("manifests", {}).items()}
    if not manifests or not all(p.is_file() for p in manifests.values()):
        return None
    return manifests


def _occupied_error(out_dir: Path, key: str) -> CorpusError:
    try:
        other = json.loads((out_dir / PROVENANCE).read_text(encoding="utf-8")).get("key")
    except (OSError, json.JSONDecodeError):
        other = None
    what = f"a different corpus build (key {other})" if other else "other files"
    return CorpusError(
        f"{out_dir}: already holds {what}, not the build with key {key}; pass another output folder "
        "or delete this one"
    )


@contextlib.contextmanager
def staged_build(out_dir: str | Path, key: str) -> Iterator[Path]:
    """Yield an empty staging folder; :func:`finish_build` inside the block publishes it.

    Raises :class:`CorpusError` up front if ``out_dir`` exists, is not empty, and is not this build.
    """
    out_dir = Path(out_dir).absolute()  # builders write absolute audio paths into the staging folder
    if out_dir.exists() and any(out_dir.iterdir()) and find_build(out_dir, key) is None:
        raise _occupied_error(out_dir, key)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".building", dir=out_dir.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished corpus is an ordinary folder
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def finish_build(tmp: Path, out_dir: str | Path, key: str, manifests: dict[str, str],
                 provenance: dict[str, Any]) -> dict[str, Path]:
    """Write provenance into the staging folder and rename it to ``out_dir``."""
    from supernet.utils import atomic_write_json

    out_dir = Path(out_dir)
    atomic_write_json(tmp / PROVENANCE, {**provenance, "key": key, "manifests": manifests})
    with contextlib.suppress(OSError):
        out_dir.rmdir()  # only succeeds if it is an empty folder
    try:
        os.rename(tmp, out_dir)
    except OSError:
        # Another process finished the same build first: use theirs.
        found = find_build(out_dir, key)
        if found is None:
            raise _occupied_error(out_dir, key) from None
        return found
    found = find_build(out_dir, key)
    assert found is not None
    return found
