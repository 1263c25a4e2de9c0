"""Shared fixtures.

Data fixtures (owned by the data pipeline; reuse them in any test):
- ``fsdd_dir``: the FSDD recordings (../shared/data/fsdd, or $SUPERNET_FSDD_DIR); skips if absent.
- ``corpus_cache_dir``: one session-wide cache folder for built corpora.
- ``tiny_fsdd_config`` / ``tiny_corpus``: a 24/6/6-utterance FSDD connected-digit corpus,
  built once per session; ``tiny_corpus`` is {"train", "dev", "test": manifest path}.
- ``tiny_espeak_config`` / ``tiny_espeak_corpus``: 2 languages x 6/2/2 utterances of espeak-ng.
- ``tiny_data_config``: a DataConfig on the tiny FSDD corpus (batch 4), sharing the cache, so
  ``SpeechDataModule(tiny_data_config)`` finds the corpus already built.
- ``write_wav_file``: helper to write a small WAV (any rate/channels) for bad-input tests.
- ``bad_manifest``: a manifest with one entry per kind of bad (and tolerated) input.
- ``load_bench``: ``load_bench("name")`` imports ``bench/name.py`` as a module (bench scripts are
  not a package).
Heavy imports happen inside fixtures so that collecting tests stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    d = Path(os.environ.get("SUPERNET_FSDD_DIR") or Path(__file__).resolve().parents[2] / "shared/data/fsdd")
    if not (d / "recordings").is_dir():
        pytest.skip(f"FSDD recordings not found in {d} (set SUPERNET_FSDD_DIR)")
    return d


@pytest.fixture(scope="session")
def corpus_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpora")


@pytest.fixture(scope="session")
def tiny_fsdd_config(fsdd_dir):
    from supernet.data.fsdd import FSDDConfig

    return FSDDConfig(fsdd_dir=str(fsdd_dir), num_train=24, num_dev=6, num_test=6, max_digits=4, seed=0)


@pytest.fixture(scope="session")
def tiny_corpus(tiny_fsdd_config, corpus_cache_dir) -> dict[str, Path]:
    from supernet.data.fsdd import build_fsdd_corpus, fsdd_corpus_key

    out = corpus_cache_dir / f"fsdd-{fsdd_corpus_key(tiny_fsdd_config)}"  # where SpeechDataModule looks
    return build_fsdd_corpus(tiny_fsdd_config, out, progress=False)


@pytest.fixture(scope="session")
def tiny_espeak_config():
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from supernet.data.espeak import EspeakConfig

    return EspeakConfig(languages=("en", "de"), num_train=6, num_dev=2, num_test=2, seed=0)


@pytest.fixture(scope="session")
def tiny_espeak_corpus(tiny_espeak_config, corpus_cache_dir) -> dict[str, Path]:
    from supernet.data.espeak import build_espeak_corpus, espeak_corpus_key

    out = corpus_cache_dir / f"espeak-{espeak_corpus_key(tiny_espeak_config)}"
    return build_espeak_corpus(tiny_espeak_config, out, progress=False)


@pytest.fixture
def tiny_data_config(tiny_fsdd_config, tiny_corpus, corpus_cache_dir):
    from supernet.data.datamodule import DataConfig

    return DataConfig(corpus="fsdd", fsdd=tiny_fsdd_config, cache_dir=str(corpus_cache_dir), batch_size=4, seed=0)


@pytest.fixture
def write_wav_file():
    """write_wav_file(path, seconds=0.5, sample_rate=16000, channels=1, seed=0) -> path (PCM_16 noise)."""
    import numpy as np
    import soundfile as sf

    def write(path, seconds: float = 0.5, sample_rate: int = 16000, channels: int = 1, seed: int = 0) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        x = np.random.default_rng(seed).uniform(-0.3, 0.3, size=(int(seconds * sample_rate), channels))
        sf.write(str(path), x, sample_rate, subtype="PCM_16")
        return path

    return write


@pytest.fixture
def bad_manifest(tmp_path, write_wav_file):
    """A manifest with one entry per kind of input: (path, {line: expected problem}, good wav).

    Lines without an expected problem: 1 good, 6 stereo (a note; a problem with mono="error"),
    7 at 8 kHz (a note), 10 "Grüße" (a problem only with a vocabulary lacking ü/ß).
    """
    import json

    import numpy as np
    import soundfile as sf

    d = tmp_path / "bad"
    good = write_wav_file(d / "good.wav")
    stereo = write_wav_file(d / "stereo.wav", channels=2)
    rate8k = write_wav_file(d / "8k.wav", sample_rate=8000)
    sf.write(str(d / "empty.wav"), np.zeros(0), 16000, subtype="PCM_16")
    sf.write(str(tmp_path / "full.wav"), np.zeros(16000), 16000, subtype="PCM_16")  # 1 s
    data = (tmp_path / "full.wav").read_bytes()
    (d / "trunc.wav").write_bytes(data[: len(data) // 2])
    (d / "junk.wav").write_bytes(b"RIFF but not really a wav file at all" * 3)

    def row(fp, text="one two", **kw):
        return json.dumps({"audio_filepath": fp, "duration": 0.5, "text": text, **kw}).encode()

    lines = [
        (row("good.wav"), None),
        (row("missing.wav"), "audio file not found"),
        (row("junk.wav"), "unreadable audio"),
        (row("trunc.wav"), "truncated audio: the header declares 16000 frames but the file holds 7989"),
        (row("empty.wav"), "zero-length audio"),
        (row(str(stereo)), None),                      # mixed down (a note), or a problem with mono=error
        (row(str(rate8k)), None),                      # resampled (a note)
        (row("good.wav", text="  "), "empty text"),
        (row("good.wav", text="x").replace(b'"x"', b'"caf\xe9"'), "not valid UTF-8 (byte 0xE9"),
        (row("good.wav", text="Grüße"), None),         # fine unless a vocabulary lacks ü/ß
        (b'{"audio_filepath": "good.wav", "duration": 0.5, "text": "a"', "malformed JSON"),
        (b'{"audio_filepath": "good.wav", "text": "a"}', "missing field 'duration'"),
    ]
    m = d / "train.jsonl"
    m.write_bytes(b"\n".join(x for x, _ in lines) + b"\n")
    return m, {i + 1: reason for i, (_, reason) in enumerate(lines) if reason}, good


@pytest.fixture
def load_bench():
    """``load_bench("supernet_quality")``: ``bench/supernet_quality.py`` imported as a module, with
    ``bench/`` on ``sys.path`` as when the script runs (the scripts import ``bench/common.py``)."""
    import importlib.util
    import sys

    def load(name: str):
        if str(REPO / "bench") not in sys.path:
            sys.path.insert(0, str(REPO / "bench"))
        spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
