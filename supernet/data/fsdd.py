"""FSDD connected digits: real English speech, sentence-level ASR in the spirit of TIDIGITS.

The Free Spoken Digit Dataset has one digit per file (``{digit}_{speaker}_{take}.wav``, 8 kHz).
Utterances here concatenate 2..7 recordings of one speaker with random silences between them,
so word error rate is meaningful. Training speakers and the test speaker are disjoint
(speaker-independent test); the dev set uses held-out takes of the training speakers.

The default sizes suit a ~10-minute CPU training run: utterances average ~4.5 digits, about
2.5 s, so 1500 training utterances are ~1 h of audio (each recording reused ~4 times in new
contexts), which a small model passes over ~10 times in 10 minutes on 2 cores; 200 dev
utterances (~8 min) keep search evaluations quick while giving ~900 scored words; 300 test
utterances (~1350 words) make a 1% WER difference about 13 words.

Source data: CC BY-SA 4.0, Jakobovski/free-spoken-digit-dataset; keep the attribution.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from supernet.data.corpus import CorpusError, finish_build, find_build, staged_build

__all__ = [
    "FSDDConfig",
    "build_fsdd_corpus",
    "download_fsdd",
    "fsdd_corpus_key",
    "default_fsdd_dir",
    "DIGIT_WORDS",
    "PINNED_URL",
    "PINNED_SHA256",
    "PINNED_SHA",
]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Release v1.0.9 (5 speakers, 2,500 recordings: the set in shared/data/fsdd). The checksum is the
# one tensorflow/datasets pins for this URL (tensorflow_datasets/audio/spoken_digit/checksums.tsv,
# 11,975,353 bytes). It could NOT be verified here: this machine cannot reach GitHub. If GitHub
# regenerates its archives the hash changes; download_fsdd then refuses with both hashes shown.
PINNED_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz"
PINNED_SHA256 = "8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0"
PINNED_SHA = PINNED_SHA256

_BUILDER_VERSION = 1  # bump when the build procedure changes the output
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def default_fsdd_dir() -> str:
    """$SUPERNET_FSDD_DIR, else ``../shared/data/fsdd`` beside the repository root."""
    env = os.environ.get("SUPERNET_FSDD_DIR")
    return env or str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd")


@dataclass
class FSDDConfig:
    """Connected-digit corpus built from FSDD recordings.

    Args:
        fsdd_dir: FSDD folder (holding ``recordings/``) or the recordings folder itself.
        sample_rate: rate of the written WAVs (FSDD is 8 kHz; resampled up).
        min_digits, max_digits: digits per utterance, uniform.
        gap_ms: (low, high) silence between digits, uniform.
        edge_ms: (low, high) silence before the first and after the last digit.
        train_speakers: speakers of train and dev.
        test_speakers: speakers of test (disjoint from train_speakers).
        dev_takes: [low, high) take indices held out from training for the dev set.
        num_train, num_dev, num_test: utterances per split.
        seed: everything random derives from it.
    """

    fsdd_dir: str = field(default_factory=default_fsdd_dir)
    sample_rate: int = 16000
    min_digits: int = 2
    max_digits: int = 7
    gap_ms: tuple[float, float] = (50.0, 300.0)
    edge_ms: tuple[float, float] = (50.0, 200.0)
    train_speakers: tuple[str, ...] = ("george", "jackson", "nicolas", "theo")
    test_speakers: tuple[str, ...] = ("yweweler",)
    dev_takes: tuple[int, int] = (45, 50)
    num_train: int = 1500
    num_dev: int = 200
    num_test: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}")
        for name in ("gap_ms", "edge_ms"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if not self.train_speakers or not self.test_speakers:
            raise ValueError("train_speakers and test_speakers must not be empty")
        both = set(self.train_speakers) & set(self.test_speakers)
        if both:
            raise ValueError(f"speakers {sorted(both)} are in both train_speakers and test_speakers; "
                             "the test must be speaker-independent")
        lo, hi = self.dev_takes
        if not 0 < lo < hi:
            raise ValueError(f"dev_takes must be [low, high) with 0 < low < high, got {self.dev_takes}")
        if min(self.num_train, self.num_dev, self.num_test) < 0:
            raise ValueError("num_train, num_dev and num_test must be >= 0")


def _recordings_dir(fsdd_dir: str | Path) -> Path:
    d = Path(fsdd_dir)
    for cand in (d / "recordings", d):
        if cand.is_dir() and any(cand.glob("*_*_*.wav")):
            return cand
    raise CorpusError(
        f"{d}: no FSDD recordings found (expected {d}/recordings/{{digit}}_{{speaker}}_{{take}}.wav); set "
        "fsdd.fsdd_dir or SUPERNET_FSDD_DIR to the FSDD folder, or fetch it with `supernet data download-fsdd DEST`"
    )


def _index(rec_dir: Path) -> dict[tuple[str, int], dict[int, Path]]:
    """{(speaker, digit): {take: path}} of every recording."""
    out: dict[tuple[str, int], dict[int, Path]] = {}
    for p in sorted(rec_dir.iterdir()):
        m = _NAME.match(p.name)
        if m:
            out.setdefault((m.group(2), int(m.group(1))), {})[int(m.group(3))] = p
    return out


def fsdd_corpus_key(cfg: FSDDConfig) -> str:
    """Cache key: the config without its path, plus a fingerprint of the recordings used."""
    from supernet.config import config_hash, to_dict

    rec_dir = _recordings_dir(cfg.fsdd_dir)
    speakers = set(cfg.train_speakers) | set(cfg.test_speakers)
    h = hashlib.sha256()
    for (spk, _), takes in sorted(_index(rec_dir).items()):
        if spk in speakers:
            for _, p in sorted(takes.items()):
                h.update(f"{p.name}:{p.stat().st_size};".encode())
    d = to_dict(cfg)
    d.pop("fsdd_dir")
    d.update(builder=_BUILDER_VERSION, recordings=h.hexdigest())
    return config_hash(d)


def _pools(cfg: FSDDConfig, index) -> dict[str, tuple[list[str], dict[tuple[str, int], list[Path]]]]:
    """Per split: speakers and the recordings each (speaker, digit) may draw from."""
    lo, hi = cfg.dev_takes
    known = sorted({s for s, _ in index})
    splits = {"train": (cfg.train_speakers, lambda t: not lo <= t < hi),
              "dev": (cfg.train_speakers, lambda t: lo <= t < hi),
              "test": (cfg.test_speakers, lambda t: True)}
    out = {}
    for split, (speakers, keep) in splits.items():
        pool = {}
        for spk in speakers:
            if spk not in known:
                raise CorpusError(f"{cfg.fsdd_dir}: speaker {spk!r} has no recordings; available: {known}")
            for d in range(10):
                takes = [p for t, p in sorted(index.get((spk, d), {}).items()) if keep(t)]
                if not takes:
                    raise CorpusError(f"{cfg.fsdd_dir}: no recordings of digit {d} by {spk!r} for the {split} "
                                      f"split (dev_takes={cfg.dev_takes}); check dev_takes and the recordings")
                pool[(spk, d)] = takes
        out[split] = (list(speakers), pool)
    return out


class _Recordings:
    """Loads each FSDD file once, resampled to the corpus rate."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self._cache: dict[Path, np.ndarray] = {}

    def __call__(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            from supernet.data.audio import load_audio

            self._cache[path] = load_audio(path, self.sample_rate).numpy()
        return self._cache[path]


def _silence(ms: float, sr: int) -> np.ndarray:
    return np.zeros(int(round(ms * sr / 1000)), dtype=np.float32)


def build_fsdd_corpus(cfg: FSDDConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Path]:
    """Build (or find cached) connected-digit WAVs and train/dev/test manifests.

    Deterministic: the same config and recordings give byte-identical manifests and WAVs. If
    ``out_dir`` already holds the build with this config's key it is returned as it is.

    Args:
        cfg: :class:`FSDDConfig`.
        out_dir: corpus folder (created; must be empty or hold this very build).
        progress: show a progress bar.

    Returns:
        {"train": path, "dev": path, "test": path} of the JSONL manifests.
    """
    from tqdm import tqdm

    from supernet.data.audio import write_wav
    from supernet.data.manifest import Utterance, write_manifest
    from supernet.utils import provenance

    key = fsdd_corpus_key(cfg)
    found = find_build(out_dir, key)
    if found is not None:
        return found
    pools = _pools(cfg, _index(_recordings_dir(cfg.fsdd_dir)))
    recs = _Recordings(cfg.sample_rate)
    sr = cfg.sample_rate
    sizes = {"train": cfg.num_train, "dev": cfg.num_dev, "test": cfg.num_test}
    bar = tqdm(total=sum(sizes.values()), desc="building FSDD corpus", unit="utt", disable=not progress)
    with staged_build(out_dir, key) as tmp:
        manifests = {}
        for split, n in sizes.items():
            speakers, pool = pools[split]
            rng = random.Random(f"fsdd/{cfg.seed}/{split}")  # str seeds are hashed stably
            utts = []
            for i in range(n):
                spk = speakers[i % len(speakers)]
                digits = [rng.randrange(10) for _ in range(rng.randint(cfg.min_digits, cfg.max_digits))]
                parts = [_silence(rng.uniform(*cfg.edge_ms), sr)]
                for j, d in enumerate(digits):
                    if j:
                        parts.append(_silence(rng.uniform(*cfg.gap_ms), sr))
                    parts.append(recs(rng.choice(pool[(spk, d)])))
                parts.append(_silence(rng.uniform(*cfg.edge_ms), sr))
                audio = np.concatenate(parts)
                uid = f"fsdd-{split}-{i:05d}"
                wav = tmp / "wav" / split / f"{uid}.wav"
                write_wav(wav, audio, sr)
                utts.append(Utterance(id=uid, audio_filepath=str(wav), duration=round(len(audio) / sr, 4),
                                      text=" ".join(DIGIT_WORDS[d] for d in digits), lang="en", speaker=spk))
                bar.update()
            write_manifest(tmp / f"{split}.jsonl", utts)
            manifests[split] = f"{split}.jsonl"
        bar.close()
        prov = provenance(cfg, seed=cfg.seed)
        prov.update(corpus="fsdd", source=str(Path(cfg.fsdd_dir).resolve()),
                    license="FSDD recordings: CC BY-SA 4.0, Jakobovski/free-spoken-digit-dataset")
        return finish_build(tmp, out_dir, key, manifests, prov)


# ----------------------------------------------------------------------------- download


def _fetch(url: str, dest_file: Path, progress: bool) -> str:
    """Stream ``url`` into ``dest_file``; return its SHA-256."""
    from tqdm import tqdm

    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as r, open(dest_file, "wb") as f:
        total = int(r.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="download FSDD", disable=not progress) as bar:
            while chunk := r.read(1 << 20):
                f.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    return h.hexdigest()


def _is_recording(name: str) -> bool:
    """``[<top folder>/]recordings/<digit>_<speaker>_<take>.wav``, nothing above or beside it."""
    parts = name.split("/")
    return (2 <= len(parts) <= 3 and parts[-2] == "recordings" and bool(_NAME.match(parts[-1]))
            and not name.startswith("/") and ".." not in parts)


def _extract_recordings(archive: Path, out: Path) -> int:
    """Copy the recordings (by file name only: no path in the archive can escape ``out``)."""
    n = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                parts = name.split("/")
                if _is_recording(name):
                    with z.open(name) as src, open(out / parts[-1], "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    n += 1
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            for m in t:
                parts = m.name.split("/")
                if m.isfile() and _is_recording(m.name):
                    with t.extractfile(m) as src, open(out / parts[-1], "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    n += 1
    else:
        raise CorpusError(f"{archive}: neither a zip nor a tar archive")
    return n


def download_fsdd(dest: str | Path, url: str = PINNED_URL, sha256: str | None = PINNED_SHA256,
                  progress: bool = True) -> Path:
    """Download the FSDD archive, verify its SHA-256, extract ``recordings/`` into ``dest``.

    Needs internet (nothing in supernet downloads at run time otherwise). On a checksum
    mismatch nothing is left behind. ``url`` may be ``file://`` (tests use a local zip).

    Args:
        dest: folder to create; the recordings go to ``dest/recordings``.
        url: archive URL (zip or tar.gz with a ``recordings/`` folder).
        sha256: expected SHA-256 of the archive; None skips verification (with a warning).

    Returns:
        ``dest``, usable as ``fsdd_dir`` / SUPERNET_FSDD_DIR.
    """
    import warnings

    dest = Path(dest)
    rec = dest / "recordings"
    if rec.is_dir() and any(rec.glob("*.wav")):
        return dest
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fsdd-download.", dir=dest))
    try:
        archive = work / "archive"
        try:
            got = _fetch(url, archive, progress)
        except OSError as e:
            raise CorpusError(f"cannot download {url}: {e}; check the URL and your connection") from None
        if sha256 is None:
            warnings.warn(f"{url}: no SHA-256 given, archive not verified (it has sha256 {got})", stacklevel=2)
        elif got != sha256.lower():
            raise CorpusError(
                f"{url}: SHA-256 mismatch: expected {sha256}, got {got}; the download is corrupt or the "
                "archive changed. Nothing was extracted; pass the right --sha256 if you trust this archive"
            )
        staging = work / "recordings"
        staging.mkdir()
        n = _extract_recordings(archive, staging)
        if n == 0:
            raise CorpusError(f"{url}: the archive has no recordings/{{digit}}_{{speaker}}_{{take}}.wav files")
        if rec.exists():  # an empty leftover folder (a full one returned early)
            shutil.rmtree(rec)
        os.replace(staging, rec)
        (dest / "SOURCE.txt").write_text(
            f"Free Spoken Digit Dataset, {n} recordings\nurl: {url}\nsha256: {got}\n"
            "license: CC BY-SA 4.0 (Jakobovski/free-spoken-digit-dataset); keep this attribution\n",
            encoding="utf-8",
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return dest
