"""Datasets, batching and the Lightning DataModule every model trains from.

Every model consumes the batch dict made by :func:`collate`::

    audio           (B, S)  float32, zero-padded
    audio_lengths   (B,)    int64 samples
    targets         (B, U)  int64 token ids, zero-padded (0 is also the blank)
    target_lengths  (B,)    int64
    texts           list[str]  normalised transcripts (what WER is scored against)
    langs           list[str]
    ids             list[str]
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from supernet.config import NEW_OPTION
from supernet.data.espeak import EspeakConfig
from supernet.data.fsdd import FSDDConfig
from supernet.data.manifest import ManifestError, Utterance, inspect_manifest
from supernet.data.tokenizer import TOKENIZER_KINDS, Tokenizer, build_tokenizer, normalize_text, tokenizer_from_dict

__all__ = ["DataConfig", "SpeechDataset", "collate", "LengthBucketSampler", "SpeechDataModule"]

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """Where the data comes from and how it is batched.

    Args:
        corpus: "espeak" (built-in, synthesised), "fsdd" (connected digits) or "manifest" (yours).
        fsdd: FSDD corpus config (corpus: fsdd).
        espeak: espeak-ng corpus config (corpus: espeak).
        train_manifest: training manifest (corpus: manifest).
        dev_manifests: {name: manifest} of dev sets (corpus: manifest); names label results.
        test_manifests: {name: manifest} of test sets (corpus: manifest).
        cache_dir: built corpora go to ``cache_dir/<corpus>-<config hash>``.
        batch_size: utterances per batch (ignored when max_batch_seconds is set).
        max_batch_seconds: batch by padded audio seconds (batch size x longest utterance) instead.
        num_buckets: duration buckets of the training sampler.
        num_workers: DataLoader workers (0: load in the main process; audio is in memory anyway).
        sample_rate: rate audio is read at (other rates are resampled).
        mono: "mix" averages channels of multi-channel files; "error" refuses them.
        skip_bad: train without unusable entries (listed in ``<manifest stem>.skipped.jsonl``)
            instead of refusing to start.
        seed: seed of batch shuffling.
        tokenizer: output units, built from the training text: "char" (characters; any word
            they spell) or "word" (one id per training word; for closed vocabularies such as
            digits, where a greedy decoder then cannot misspell). See
            :mod:`supernet.data.tokenizer`.
    """

    corpus: Literal["espeak", "fsdd", "manifest"] = "espeak"
    fsdd: FSDDConfig = field(default_factory=FSDDConfig)
    espeak: EspeakConfig = field(default_factory=EspeakConfig)
    train_manifest: str | None = None
    dev_manifests: dict[str, str] = field(default_factory=dict)
    test_manifests: dict[str, str] = field(default_factory=dict)
    cache_dir: str = "cache/corpora"
    batch_size: int = 16
    max_batch_seconds: float | None = None
    num_buckets: int = 10
    num_workers: int = 0
    sample_rate: int = 16000
    mono: Literal["mix", "error"] = "mix"
    skip_bad: bool = False
    seed: int = 0
    tokenizer: Literal["char", "word"] = field(default="char", metadata=NEW_OPTION)

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZER_KINDS)}, got {self.tokenizer!r}")
        if self.corpus == "manifest" and (not self.train_manifest or not self.dev_manifests):
            raise ValueError("corpus: manifest needs train_manifest and dev_manifests ({name: path}); "
                             "see configs/data/manifest_example.yaml")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_batch_seconds is not None and self.max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {self.max_batch_seconds}")


class SpeechDataset(Dataset):
    """Utterances with their audio loaded once into memory (corpora here are small).

    Args:
        utterances: manifest entries (already checked).
        tokenizer: encodes the normalised transcripts.
        sample_rate: rate audio is read at.
        mono: see :func:`supernet.data.audio.load_audio`.
        name: label of the set ("dev.de"), for progress and messages.
        progress: show a progress bar while loading.

    Each item: {"audio": (S,) float32, "target": (U,) int64, "text", "lang", "id"}.
    """

    def __init__(self, utterances: Sequence[Utterance], tokenizer: Tokenizer, sample_rate: int = 16000,
                 mono: Literal["mix", "error"] = "mix", name: str = "", progress: bool = False):
        from tqdm import tqdm

        from supernet.data.audio import load_audio

        self.name = name
        self.utterances = list(utterances)
        self.sample_rate = sample_rate
        self.texts = [normalize_text(u.text) for u in self.utterances]
        self.targets = [torch.tensor(tokenizer.encode(t, normalize=False), dtype=torch.long) for t in self.texts]
        it = tqdm(self.utterances, desc=f"loading {name or 'audio'}", unit="utt", leave=False, disable=not progress)
        self.audio = [load_audio(u.audio_filepath, sample_rate, mono=mono) for u in it]
        # Real lengths, not the manifest's durations (which may be off; check_manifest notes it).
        self.durations = [len(a) / sample_rate for a in self.audio]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> dict:
        u = self.utterances[i]
        return {"audio": self.audio[i], "target": self.targets[i], "text": self.texts[i], "lang": u.lang, "id": u.id}

    @property
    def langs(self) -> list[str]:
        return sorted({u.lang for u in self.utterances})


def collate(items: Sequence[dict]) -> dict:
    """List of dataset items -> the batch dict (see module docstring)."""
    pad = torch.nn.utils.rnn.pad_sequence
    return {
        "audio": pad([it["audio"] for it in items], batch_first=True, padding_value=0.0),
        "audio_lengths": torch.tensor([len(it["audio"]) for it in items], dtype=torch.long),
        "targets": pad([it["target"] for it in items], batch_first=True, padding_value=0),
        "target_lengths": torch.tensor([len(it["target"]) for it in items], dtype=torch.long),
        "texts": [it["text"] for it in items],
        "langs": [it["lang"] for it in items],
        "ids": [it["id"] for it in items],
    }


class _EpochHook:
    """Lightning calls ``set_epoch`` on ``batch_sampler.sampler``, not on the batch sampler."""

    def __init__(self, owner: "LengthBucketSampler"):
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length utterances, so little of each batch is padding.

    Indices are sorted by duration and cut into ``num_buckets`` buckets. With ``shuffle``, each
    bucket is shuffled, batches are cut from it, and the batch order is shuffled; all from a
    generator seeded by (seed, epoch), so an epoch's batches are reproducible. Without
    ``shuffle`` batches follow the duration order (evaluation).

    Args:
        durations: seconds per utterance.
        batch_size: utterances per batch (used when max_batch_seconds is None).
        max_batch_seconds: cap on batch size x longest utterance in the batch; an utterance longer
            than the cap gets a batch of its own.
        num_buckets: duration buckets.
        shuffle: shuffle within buckets and the batch order.
        seed: base seed.
        drop_last: drop a final partial batch of a bucket (training on fixed batch sizes).
    """

    def __init__(self, durations: Sequence[float], batch_size: int = 16, max_batch_seconds: float | None = None,
                 num_buckets: int = 10, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if batch_size < 1 or num_buckets < 1:
            raise ValueError("batch_size and num_buckets must be >= 1")
        self.durations = [float(d) for d in durations]
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.num_buckets = num_buckets
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.sampler = _EpochHook(self)
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pack(self, order: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        cur: list[int] = []
        longest = 0.0
        for i in order:
            d = self.durations[i]
            if self.max_batch_seconds is None:
                full = len(cur) >= self.batch_size
            else:
                full = bool(cur) and (len(cur) + 1) * max(longest, d) > self.max_batch_seconds
            if full:
                batches.append(cur)
                cur, longest = [], 0.0
            cur.append(i)
            longest = max(longest, d)
        if cur and not (self.drop_last and self.max_batch_seconds is None and len(cur) < self.batch_size):
            batches.append(cur)
        return batches

    def batches(self) -> list[list[int]]:
        """This epoch's batches (lists of dataset indices)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        order = sorted(range(len(self.durations)), key=lambda i: (self.durations[i], i))
        if not self.shuffle:
            out = self._pack(order)
        else:
            rng = random.Random(f"bucket/{self.seed}/{self.epoch}")
            n, k = len(order), min(self.num_buckets, max(1, len(order)))
            out = []
            for b in range(k):
                bucket = order[b * n // k:(b + 1) * n // k]
                rng.shuffle(bucket)
                out += self._pack(bucket)
            rng.shuffle(out)
        self._cache = (self.epoch, out)
        return out

    def __iter__(self):
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches())


def _skipped_path(manifest: Path) -> Path:
    return manifest.with_suffix(".skipped.jsonl")


class SpeechDataModule(L.LightningDataModule):
    """Builds or locates the corpus, refuses bad entries, and serves batches.

    Args:
        cfg: :class:`DataConfig`.
        tokenizer: use this tokenizer (e.g. from a checkpoint) instead of building one from the
            training text.

    After ``setup()``: ``tokenizer``, ``train_set``, ``dev_sets`` and ``test_sets``
    ({name: SpeechDataset}). ``val_dataloader()`` / ``test_dataloader()`` return one loader per
    set, in the order of ``dev_sets`` / ``test_sets``. For the espeak corpus the dev/test sets
    are per language ("dev.en", "dev.de", ...), so multilingual scores are a mean over sets.
    """

    def __init__(self, cfg: DataConfig | None = None, tokenizer: Tokenizer | None = None, progress: bool = True):
        super().__init__()
        self.cfg = cfg or DataConfig()
        self._tokenizer = tokenizer
        self.progress = progress
        self.train_set: SpeechDataset | None = None
        self.dev_sets: dict[str, SpeechDataset] = {}
        self.test_sets: dict[str, SpeechDataset] = {}
        self.skipped: dict[str, int] = {}  # manifest -> entries skipped (skip_bad)
        self._manifests: dict[str, Path] | None = None
        self._train_utts: list[Utterance] | None = None

    # --------------------------------------------------------------- corpus

    def corpus_dir(self) -> Path | None:
        """Folder of the built corpus (None for corpus: manifest)."""
        c = self.cfg
        if c.corpus == "fsdd":
            from supernet.data.fsdd import fsdd_corpus_key

            return Path(c.cache_dir) / f"fsdd-{fsdd_corpus_key(c.fsdd)}"
        if c.corpus == "espeak":
            from supernet.data.espeak import espeak_corpus_key

            return Path(c.cache_dir) / f"espeak-{espeak_corpus_key(c.espeak)}"
        return None

    def manifests(self) -> dict[str, Path]:
        """{"train": path, <dev set name>: path, <test set name>: path}; builds the corpus if needed."""
        if self._manifests is not None:
            return self._manifests
        c = self.cfg
        if c.corpus == "manifest":
            m = {"train": Path(c.train_manifest)}
            m.update({k: Path(v) for k, v in c.dev_manifests.items()})
            m.update({k: Path(v) for k, v in c.test_manifests.items()})
            self._dev_names, self._test_names = list(c.dev_manifests), list(c.test_manifests)
        else:
            if c.corpus == "fsdd":
                from supernet.data.fsdd import build_fsdd_corpus as build
            else:
                from supernet.data.espeak import build_espeak_corpus as build
            sub = c.fsdd if c.corpus == "fsdd" else c.espeak
            m = build(sub, self.corpus_dir(), progress=self.progress)
            per_lang = sorted(k for k in m if k.count(".") == 1)
            self._dev_names = [k for k in per_lang if k.startswith("dev.")] or ["dev"]
            self._test_names = [k for k in per_lang if k.startswith("test.")] or ["test"]
        self._manifests = m
        return m

    def prepare_data(self) -> None:
        self.manifests()

    # --------------------------------------------------------------- setup

    def _checked(self, path: Path, tokenizer: Tokenizer | None) -> list[Utterance]:
        """Usable entries of a manifest; refuses problems unless skip_bad (then lists them)."""
        report = inspect_manifest(path, sample_rate=self.cfg.sample_rate, vocab=tokenizer, mono=self.cfg.mono)
        if report.problems and not self.cfg.skip_bad:
            n = len(report.problems)
            lines = "\n".join(str(p) for p in report.problems[:50])
            more = f"\n... and {n - 50} more" if n > 50 else ""
            raise ManifestError(
                f"{path}: {n} unusable entr{'y' if n == 1 else 'ies'}:\n{lines}{more}\n"
                f"Fix or remove them (`supernet data check {path}` lists them), or set skip_bad: true to train "
                "without them."
            )
        if report.problems:
            self._write_skipped(path, report)
        if not report.entries:
            raise ManifestError(f"{path}: no usable entries")
        return report.utterances

    def _write_skipped(self, path: Path, report) -> None:
        from supernet.utils import atomic_write_text

        rows = [json.dumps({"line": p.line, "file": p.file, "reason": p.reason, "entry": report.raw_lines.get(p.line)},
                           ensure_ascii=False) for p in report.problems]
        out = _skipped_path(path)
        try:
            atomic_write_text(out, "\n".join(rows) + "\n")
        except OSError:  # read-only data folder: keep the list in the cache instead
            out = Path(self.cfg.cache_dir) / "skipped" / _skipped_path(Path(path.name)).name
            atomic_write_text(out, "\n".join(rows) + "\n")
        n, total = len(report.problems), len(report.problems) + len(report.entries)
        self.skipped[str(path)] = n
        log.warning("skip_bad: skipped %d of %d entries of %s (list: %s)", n, total, path, out)

    def _dataset(self, name: str) -> SpeechDataset:
        path = self.manifests()[name]
        utts = self._train_utts if name == "train" and self._train_utts is not None else self._checked(path, self.tokenizer)
        return SpeechDataset(utts, self.tokenizer, self.cfg.sample_rate, self.cfg.mono, name=name,
                             progress=self.progress and len(utts) > 200)

    def setup(self, stage: str | None = None) -> None:
        m = self.manifests()
        if self._tokenizer is None:
            # Checked once here; the vocabulary built from it cannot reject any of it later.
            self._train_utts = self._checked(m["train"], None)
            self._tokenizer = build_tokenizer(self.cfg.tokenizer, (u.text for u in self._train_utts))
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset("train")
        if stage in (None, "fit", "validate") and not self.dev_sets:
            self.dev_sets = {n: self._dataset(n) for n in self._dev_names}
        if stage in (None, "test") and not self.test_sets:
            self.test_sets = {n: self._dataset(n) for n in self._test_names}

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise RuntimeError("the tokenizer is built in setup(); call setup() first or pass tokenizer=")
        return self._tokenizer

    @property
    def dev_names(self) -> list[str]:
        self.manifests()
        return list(self._dev_names)

    @property
    def test_names(self) -> list[str]:
        self.manifests()
        return list(self._test_names)

    # --------------------------------------------------------------- loaders

    def loader(self, ds: SpeechDataset, train: bool = False) -> DataLoader:
        """A DataLoader over ``ds`` batched by length (shuffled when ``train``)."""
        c = self.cfg
        sampler = LengthBucketSampler(ds.durations, batch_size=c.batch_size, max_batch_seconds=c.max_batch_seconds,
                                      num_buckets=c.num_buckets, shuffle=train, seed=c.seed)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=c.num_workers,
                          persistent_workers=c.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return self.loader(self.train_set, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        if not self.dev_sets:
            self.setup("validate")
        return [self.loader(ds) for ds in self.dev_sets.values()]

    def test_dataloader(self) -> list[DataLoader]:
        if not self.test_sets:
            self.setup("test")
        return [self.loader(ds) for ds in self.test_sets.values()]

    # Lightning stores this in checkpoints: a resumed run keeps the same token ids.
    def state_dict(self) -> dict:
        return {"tokenizer": self._tokenizer.to_dict()} if self._tokenizer is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "tokenizer" in state:
            self._tokenizer = tokenizer_from_dict(state["tokenizer"])
