"""Data of a supernet run: endless, resumable training batches and the held-out alpha split.

Wraps :class:`~supernet.data.datamodule.SpeechDataModule` (corpus, tokenizer, dev sets) and
changes how training batches are served:

- The training stream is *endless* and indexed by a global batch number k: batch k is batch
  ``k % n`` of epoch ``k // n`` of a :class:`~supernet.data.datamodule.LengthBucketSampler`
  seeded by (seed, epoch). A run is therefore measured in steps, not epochs, and resuming at
  step s serves exactly the batches an uninterrupted run would (the loader starts at the
  module's ``batches_seen``; Lightning alone would restart the epoch from its beginning).
- Under DDP, rank r of W takes stream batches ``k * W + r``: different data per rank, no
  DistributedSampler (the Trainer runs with ``use_distributed_sampler=False``).
- darts / gdas: ``bilevel_fraction`` of the training utterances (a seeded split) form the
  ``arch`` split that alpha steps on; the loaders are combined as ``{"train", "arch"}``.
"""

from __future__ import annotations

import bisect
import random
from typing import Iterator, Sequence

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Sampler, Subset

from supernet.data.datamodule import DataConfig, LengthBucketSampler, SpeechDataModule, SpeechDataset, collate
from supernet.data.tokenizer import Tokenizer

__all__ = ["StreamBatchSampler", "FitDataModule", "split_indices", "batch_size"]


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``range(n)`` into (train, held-out) with ``round(fraction * n)`` held out (>= 1)."""
    if n < 2:
        raise ValueError(f"cannot hold out part of a training set of {n} utterance(s); add data")
    k = min(n - 1, max(1, round(fraction * n)))
    order = list(range(n))
    random.Random(f"split/{seed}").shuffle(order)
    held = sorted(order[:k])
    keep = sorted(order[k:])
    return keep, held


class StreamBatchSampler(Sampler[list[int]]):
    """Endless batches of similar-length utterances, starting at global batch ``start``.

    Args:
        durations: seconds per utterance (of the dataset the loader reads).
        cfg: batching settings (batch_size, max_batch_seconds, num_buckets).
        seed: base seed of the shuffles.
        start: first global batch number to serve (resume).
        rank, world_size: this process's share (batches ``k * world_size + rank``).
    """

    def __init__(self, durations: Sequence[float], cfg: DataConfig, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if not durations:
            raise ValueError("no utterances to train on")
        self.epochs = LengthBucketSampler(durations, batch_size=cfg.batch_size, max_batch_seconds=cfg.max_batch_seconds,
                                          num_buckets=cfg.num_buckets, shuffle=True, seed=seed)
        self._ends: list[int] = []  # cumulative batch count at the end of each epoch seen so far
        self.start = start
        self.rank = rank
        self.world_size = world_size

    def batch(self, k: int) -> list[int]:
        """Global stream batch ``k`` (indices into the loader's dataset)."""
        # Epoch lengths can differ (max_batch_seconds packs by duration), so walk them.
        while not self._ends or self._ends[-1] <= k:
            self.epochs.set_epoch(len(self._ends))
            self._ends.append((self._ends[-1] if self._ends else 0) + len(self.epochs.batches()))
        epoch = bisect.bisect_right(self._ends, k)
        self.epochs.set_epoch(epoch)
        return self.epochs.batches()[k - (self._ends[epoch - 1] if epoch else 0)]

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start
        while True:
            yield self.batch(k * self.world_size + self.rank)
            k += 1


class FitDataModule(L.LightningDataModule):
    """The corpus of :class:`SpeechDataModule` served as a supernet run needs it.

    Args:
        cfg: data config.
        bilevel_fraction: hold this share of training utterances out for alpha steps (None: no split).
        seed: seed of the split and of the batch order (default ``cfg.seed``).
        tokenizer: reuse this tokenizer (e.g. a checkpoint's).
        progress: progress bars while building/loading.

    ``train_dataloader()`` starts at ``start_batch`` (set it, or attach to a trainer whose module
    has ``batches_seen``).
    """

    def __init__(self, cfg: DataConfig, bilevel_fraction: float | None = None, seed: int | None = None,
                 tokenizer: Tokenizer | None = None, progress: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.speech = SpeechDataModule(cfg, tokenizer=tokenizer, progress=progress)
        self.bilevel_fraction = bilevel_fraction
        self.seed = cfg.seed if seed is None else seed
        self.start_batch = 0
        self.train_part: Subset | None = None
        self.arch_part: Subset | None = None

    # ---------------------------------------------------------------- setup
    def prepare_data(self) -> None:
        self.speech.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.speech.setup("fit" if stage in (None, "fit") else stage)
        if self.speech.train_set is not None and self.train_part is None:
            ds = self.speech.train_set
            if self.bilevel_fraction is None:
                self.train_part, self.arch_part = Subset(ds, list(range(len(ds)))), None
            else:
                keep, held = split_indices(len(ds), self.bilevel_fraction, self.seed)
                self.train_part, self.arch_part = Subset(ds, keep), Subset(ds, held)

    @property
    def tokenizer(self) -> Tokenizer:
        return self.speech.tokenizer

    @property
    def dev_names(self) -> list[str]:
        return list(self.speech.dev_sets) or self.speech.dev_names

    # ---------------------------------------------------------------- loaders
    def _start(self) -> int:
        trainer = getattr(self, "trainer", None)
        module = trainer.lightning_module if trainer is not None else None
        return int(getattr(module, "batches_seen", self.start_batch))

    def _stream(self, part: Subset, stream: str) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        durations = [part.dataset.durations[i] for i in part.indices]
        seed = random.Random(f"{self.seed}/{stream}").getrandbits(31)
        sampler = StreamBatchSampler(durations, self.cfg, seed, start=self._start(), rank=rank, world_size=world)
        return DataLoader(part, batch_sampler=sampler, collate_fn=collate, num_workers=self.cfg.num_workers,
                          persistent_workers=self.cfg.num_workers > 0)

    def train_dataloader(self):
        if self.train_part is None:
            self.setup("fit")
        train = self._stream(self.train_part, "train")
        if self.arch_part is None:
            return train
        # Both streams are endless; "min_size" never runs one out and never cycles.
        return CombinedLoader({"train": train, "arch": self._stream(self.arch_part, "arch")}, mode="min_size")

    def val_dataloader(self) -> list[DataLoader]:
        return self.speech.val_dataloader()

    def test_dataloader(self) -> list[DataLoader]:
        return self.speech.test_dataloader()

    def dev_sets(self) -> dict[str, SpeechDataset]:
        return self.speech.dev_sets


def batch_size(batch: dict) -> int:
    """Utterances in a batch dict."""
    return int(batch["audio"].size(0)) if isinstance(batch.get("audio"), torch.Tensor) else len(batch["texts"])
