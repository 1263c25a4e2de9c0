"""The README's set-up (`make install`, run by `make demo` and `make test`)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_install_stops_before_creating_venv_when_the_disk_is_short(tmp_path):
    # A fresh checkout (no .venv) on a disk with less free space than MIN_FREE_GB: the install
    # stops with a message naming the folder and the fix, and leaves no half-built .venv.
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    r = subprocess.run(["make", ".venv/.installed", "MIN_FREE_GB=1000000000"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert str(tmp_path) in r.stdout
    assert "MIN_FREE_GB=1000000000" in r.stdout and "Free disk space" in r.stdout
    assert not (tmp_path / ".venv").exists()
