"""The built-in multilingual corpus: speech synthesised offline with the ``espeak-ng`` binary.

Content per language: digit strings of 2..5 digits spoken as words ("drei eins vier") and a
small closed set of short phrases. Variety comes from espeak-ng voice variants (``-v de+m3``),
speaking rate (``-s``), pitch (``-p``) and additive white or pink noise at a random SNR. The
test split uses voice variants held out from train and dev, so it is "speaker"-independent.

It needs no download and builds in seconds, which is what tests and the quickstart need; it is
not natural speech, so absolute WERs on it say little about real data (use FSDD or your own).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supernet.data.corpus import CorpusError, finish_build, find_build, staged_build

__all__ = ["EspeakConfig", "build_espeak_corpus", "espeak_corpus_key", "espeak_version", "DIGITS", "PHRASES",
           "VOICES"]

DIGITS: dict[str, tuple[str, ...]] = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
    "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
    "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"),
}

# Already normalised (lowercase, no punctuation), so the audio says exactly the transcript.
PHRASES: dict[str, tuple[str, ...]] = {
    "en": ("hello world", "good morning", "thank you very much", "see you tomorrow",
           "the weather is nice today", "open the door", "turn on the light", "what time is it",
           "i would like some coffee", "where is the station", "please call me later", "the cat is sleeping"),
    "de": ("hallo welt", "guten morgen", "vielen dank", "bis morgen", "das wetter ist schön heute",
           "öffne die tür", "mach das licht an", "wie spät ist es", "ich möchte einen kaffee",
           "wo ist der bahnhof", "grüße aus münchen", "die katze schläft"),
    "es": ("hola mundo", "buenos días", "muchas gracias", "hasta mañana", "hace buen tiempo hoy",
           "abre la puerta", "enciende la luz", "qué hora es", "quiero un café", "dónde está la estación",
           "llámame más tarde", "el gato está durmiendo"),
    "fr": ("bonjour tout le monde", "merci beaucoup", "à demain", "il fait beau aujourd'hui", "ouvre la porte",
           "allume la lumière", "quelle heure est il", "je voudrais un café", "où est la gare",
           "appelle moi plus tard", "le chat dort", "c'est très bien"),
}

# espeak-ng voice per language code.
VOICES = {"en": "en-us", "de": "de", "es": "es", "fr": "fr-fr"}

_BUILDER_VERSION = 1
_ESPEAK_RATE = 22050  # espeak-ng's native output rate


@dataclass
class EspeakConfig:
    """Synthetic multilingual corpus.

    Args:
        languages: language codes (each needs DIGITS, PHRASES and VOICES entries).
        num_train, num_dev, num_test: utterances per language per split.
        variants: espeak-ng voice variants for train and dev ("m1" -> ``-v de+m1``).
        test_variants: variants for test only (held out, like unseen speakers).
        rate: (low, high) speaking rate in words per minute (``-s``), uniform.
        pitch: (low, high) pitch 0..99 (``-p``), uniform.
        snr_db: (low, high) SNR of additive noise, uniform; None for clean audio.
        noise: noise colours to pick from: "white", "pink".
        min_digits, max_digits: digits per digit-string utterance.
        phrase_fraction: share of utterances that are phrases rather than digit strings.
        sample_rate: rate of the written WAVs.
        workers: synthesis threads (does not change the output).
        seed: everything random derives from it.
    """

    languages: tuple[str, ...] = ("en", "de", "es", "fr")
    num_train: int = 250
    num_dev: int = 40
    num_test: int = 40
    variants: tuple[str, ...] = ("m1", "m2", "m3", "f1", "f2")
    test_variants: tuple[str, ...] = ("m4", "f3")
    rate: tuple[int, int] = (130, 190)
    pitch: tuple[int, int] = (30, 70)
    snr_db: tuple[float, float] | None = (10.0, 30.0)
    noise: tuple[str, ...] = ("white", "pink")
    min_digits: int = 2
    max_digits: int = 5
    phrase_fraction: float = 0.3
    sample_rate: int = 16000
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [lang for lang in self.languages if lang not in DIGITS]
        if unknown or not self.languages:
            raise ValueError(f"languages {unknown or '[]'} not supported; choose from {sorted(DIGITS)} "
                             "(add DIGITS, PHRASES and VOICES entries in supernet/data/espeak.py for more)")
        if not self.variants or not self.test_variants:
            raise ValueError("variants and test_variants must not be empty")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}")
        for name in ("rate", "pitch", "snr_db"):
            v = getattr(self, name)
            if v is not None and v[0] > v[1]:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {v}")
        bad = [n for n in self.noise if n not in ("white", "pink")]
        if bad or not self.noise:
            raise ValueError(f"noise must list 'white' and/or 'pink', got {list(self.noise)}")
        if not 0.0 <= self.phrase_fraction <= 1.0:
            raise ValueError(f"phrase_fraction must be in [0, 1], got {self.phrase_fraction}")
        if min(self.num_train, self.num_dev, self.num_test) < 0:
            raise ValueError("num_train, num_dev and num_test must be >= 0")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


def _espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise CorpusError("espeak-ng not found on PATH; install it (Debian/Ubuntu: sudo apt-get install espeak-ng, "
                          "macOS: brew install espeak-ng) or use another corpus (corpus: fsdd)")
    return exe


@functools.cache
def espeak_version() -> str:
    """``espeak-ng --version`` (part of the cache key: another version speaks differently)."""
    out = subprocess.run([_espeak_binary(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def espeak_corpus_key(cfg: EspeakConfig) -> str:
    from supernet.config import config_hash, to_dict

    d = to_dict(cfg)
    d.pop("workers")
    d.update(builder=_BUILDER_VERSION, espeak=espeak_version())
    return config_hash(d)


@dataclass(frozen=True)
class _Job:
    uid: str
    text: str
    voice: str
    rate: int
    pitch: int
    snr_db: float | None
    noise: str
    noise_seed: int
    wav: Path


def _plan(cfg: EspeakConfig, split: str, lang: str, n: int, out: Path) -> list[_Job]:
    """Draw every random choice up front, in order, so threads cannot change the result."""
    rng = random.Random(f"espeak/{cfg.seed}/{split}/{lang}")
    variants = cfg.test_variants if split == "test" else cfg.variants
    jobs = []
    for i in range(n):
        if rng.random() < cfg.phrase_fraction:
            text = rng.choice(PHRASES[lang])
        else:
            k = rng.randint(cfg.min_digits, cfg.max_digits)
            text = " ".join(DIGITS[lang][rng.randrange(10)] for _ in range(k))
        uid = f"espeak-{split}-{lang}-{i:05d}"
        jobs.append(_Job(
            uid=uid,
            text=text,
            voice=f"{VOICES[lang]}+{rng.choice(variants)}",
            rate=rng.randint(*cfg.rate),
            pitch=rng.randint(*cfg.pitch),
            snr_db=rng.uniform(*cfg.snr_db) if cfg.snr_db is not None else None,
            noise=rng.choice(cfg.noise),
            noise_seed=rng.getrandbits(32),
            wav=out / "wav" / split / lang / f"{uid}.wav",
        ))
    return jobs


def _synthesize(job: _Job) -> np.ndarray:
    """espeak-ng -> temporary WAV -> float32 samples at espeak's rate."""
    import soundfile as sf

    fd, tmp = tempfile.mkstemp(suffix=".wav", prefix="supernet-espeak-")
    os.close(fd)
    try:
        cmd = [_espeak_binary(), "-b", "1", "-v", job.voice, "-s", str(job.rate), "-p", str(job.pitch), "-w", tmp,
               job.text]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0 or os.path.getsize(tmp) <= 44:
            raise CorpusError(f"espeak-ng failed for {job.uid} ({' '.join(cmd[1:-1])} {job.text!r}): "
                              f"{r.stderr.strip() or 'no audio written'}")
        samples, _ = sf.read(tmp, dtype="float32", always_2d=True)
    finally:
        os.unlink(tmp)
    return samples[:, 0]


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    # Pink: shape the white spectrum by 1/sqrt(f) (power ~ 1/f), DC removed.
    spec = np.fft.rfft(white)
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec = spec / np.sqrt(f)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


@functools.cache
def _resampler(orig: int, new: int):
    # The transform computes its sinc kernel once (the functional form redoes it every call,
    # which was a fifth of the build time); its forward is read-only, so threads can share it.
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


def _render(job: _Job, sample_rate: int) -> float:
    """Synthesise, resample, add noise, write; returns the duration in seconds."""
    import torch

    from supernet.data.audio import write_wav

    x = _synthesize(job)
    if sample_rate != _ESPEAK_RATE:
        with torch.no_grad():
            x = _resampler(_ESPEAK_RATE, sample_rate)(torch.from_numpy(x)).numpy()
    x = x.astype(np.float64)
    if job.snr_db is not None and len(x):
        noise = _noise(job.noise, len(x), np.random.default_rng(job.noise_seed))
        p_sig = np.mean(x**2)
        p_noise = np.mean(noise**2) or 1.0
        x = x + noise * np.sqrt(p_sig / (p_noise * 10 ** (job.snr_db / 10)))
    write_wav(job.wav, x, sample_rate)
    return round(len(x) / sample_rate, 4)


def build_espeak_corpus(cfg: EspeakConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Path]:
    """Build (or find cached) the espeak-ng corpus.

    Deterministic for a config (byte-identical WAVs and manifests for the same espeak-ng
    version); a finished build with the same key in ``out_dir`` is returned as it is.

    Args:
        cfg: :class:`EspeakConfig`.
        out_dir: corpus folder (created; must be empty or hold this very build).
        progress: show a progress bar.

    Returns:
        Manifests {"train", "dev", "test", "dev.<lang>", "test.<lang>" ...: path}.
    """
    from tqdm import tqdm

    from supernet.data.manifest import Utterance, write_manifest
    from supernet.utils import provenance

    key = espeak_corpus_key(cfg)
    found = find_build(out_dir, key)
    if found is not None:
        return found
    sizes = {"train": cfg.num_train, "dev": cfg.num_dev, "test": cfg.num_test}
    with staged_build(out_dir, key) as tmp:
        plan = {(s, lang): _plan(cfg, s, lang, n, tmp) for s, n in sizes.items() for lang in cfg.languages}
        jobs = [j for js in plan.values() for j in js]
        with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
            durations = dict(zip(
                (j.uid for j in jobs),
                tqdm(pool.map(functools.partial(_render, sample_rate=cfg.sample_rate), jobs), total=len(jobs),
                     desc="synthesising espeak-ng corpus", unit="utt", disable=not progress),
            ))
        manifests: dict[str, str] = {}
        for split in sizes:
            per_split = []
            for lang in cfg.languages:
                utts = [Utterance(id=j.uid, audio_filepath=str(j.wav), duration=durations[j.uid], text=j.text,
                                  lang=lang, speaker=j.voice) for j in plan[(split, lang)]]
                per_split += utts
                if split != "train":
                    write_manifest(tmp / f"{split}.{lang}.jsonl", utts)
                    manifests[f"{split}.{lang}"] = f"{split}.{lang}.jsonl"
            write_manifest(tmp / f"{split}.jsonl", per_split)
            manifests[split] = f"{split}.jsonl"
        prov = provenance(cfg, seed=cfg.seed)
        prov.update(corpus="espeak", espeak=espeak_version())
        return finish_build(tmp, out_dir, key, manifests, prov)
