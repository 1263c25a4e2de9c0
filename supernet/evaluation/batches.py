"""Dev data prepared once for many evaluations: padded batches and cached features.

Scoring thousands of archs on the same dev sets repeats two things that do not depend on the
arch: collating utterances into padded batches, and computing the front-end features. Both are
done once here.

- :func:`make_batches` cuts every dev set into batches of one language each (so per-language
  scores need no per-utterance bookkeeping), sorted by length (little padding).
- :class:`FeatureCache` keeps the features of every batch per front-end. A front-end without
  parameters (log-mel, MFCC) is a fixed function of the audio and is computed once. One with
  parameters (the learnable filterbank) is recomputed when its parameters change: torch bumps a
  tensor's version counter on every in-place update (optimiser steps and ``load_state_dict``
  included), and the cache key holds those versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from supernet.data.datamodule import collate

__all__ = ["EvalBatch", "make_batches", "FeatureCache"]

_ITEM_KEYS = ("audio", "target", "text", "lang", "id")


@dataclass
class EvalBatch:
    """One padded dev batch, all of one set and one language.

    Shapes: audio (B, S) float32 zero-padded, audio_lengths (B,), targets (B, U) zero-padded,
    target_lengths (B,).
    """

    set_name: str
    lang: str
    audio: Tensor
    audio_lengths: Tensor
    targets: Tensor
    target_lengths: Tensor
    texts: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _items(name: str, ds: Any) -> list[dict]:
    try:
        n = len(ds)
    except TypeError:
        raise TypeError(f"dev set {name!r}: {type(ds).__name__} has no len(); give a Dataset or a list of items") from None
    if n == 0:
        raise ValueError(f"dev set {name!r} is empty; remove it or give it utterances")
    items = [ds[i] for i in range(n)]
    for i, it in enumerate(items):
        missing = [k for k in _ITEM_KEYS if not isinstance(it, Mapping) or k not in it]
        if missing:
            raise ValueError(f"dev set {name!r} item {i}: missing {missing}; items must be dicts with {list(_ITEM_KEYS)} "
                             "(as supernet.data.SpeechDataset returns)")
    return items


def make_batches(dev_sets: Mapping[str, Any], batch_size: int = 16, device: torch.device | str = "cpu",
                 max_batch_seconds: float | None = None, sample_rate: int = 16000) -> list[EvalBatch]:
    """Padded batches of every dev set, one language per batch, in a fixed order.

    Args:
        dev_sets: {name: dataset}; an item is ``{"audio": (S,), "target": (U,), "text", "lang", "id"}``.
        batch_size: utterances per batch.
        max_batch_seconds: also cap batch size x longest utterance (seconds of padded audio).
        device: where the tensors live.
        sample_rate: of the audio (for ``max_batch_seconds``).

    Order: sets as given, languages sorted, utterances longest first (the first batch shows the
    peak memory at once), ties broken by id.
    """
    if not dev_sets:
        raise ValueError("no dev sets given; pass {name: dataset}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out: list[EvalBatch] = []
    for name, ds in dev_sets.items():
        items = _items(name, ds)
        for lang in sorted({str(it["lang"]) for it in items}):
            group = sorted((it for it in items if str(it["lang"]) == lang), key=lambda it: (-len(it["audio"]), str(it["id"])))
            start = 0
            while start < len(group):
                n = 1
                while start + n < len(group) and n < batch_size and (
                        max_batch_seconds is None or (n + 1) * len(group[start]["audio"]) / sample_rate <= max_batch_seconds):
                    n += 1
                b = collate(group[start:start + n])
                out.append(EvalBatch(name, lang, b["audio"].to(device), b["audio_lengths"].to(device),
                                     b["targets"].to(device), b["target_lengths"].to(device), b["texts"], b["ids"]))
                start += n
    return out


class FeatureCache:
    """Features of every dev batch, per front-end, computed once (see the module docstring).

    Args:
        modules: {feature name: module ``(audio (B, S), audio_lengths (B,)) -> (feats (B, T, F), lengths)``},
            e.g. ``supernet.features``.
        batches: the dev batches.

    ``computed[name]`` counts how often a front-end's features were (re)computed.
    """

    def __init__(self, modules: Mapping[str, nn.Module], batches: Sequence[EvalBatch]) -> None:
        self.modules = modules
        self.batches = batches
        self._cache: dict[str, tuple[tuple, list[tuple[Tensor, Tensor]]]] = {}
        self.computed: dict[str, int] = {}

    @staticmethod
    def _key(module: nn.Module) -> tuple:
        # Parameter identity and in-place version: changes exactly when the weights do.
        return tuple((p.data_ptr(), p._version) for p in module.parameters())

    def get(self, name: str) -> list[tuple[Tensor, Tensor]]:
        """(feats (B, T, F), feat_lengths (B,)) per batch for front-end ``name``."""
        if name not in self.modules:
            raise KeyError(f"front-end {name!r} is not in the supernet (it has {sorted(self.modules)})")
        module = self.modules[name]
        key = self._key(module)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                feats = [module(b.audio, b.audio_lengths) for b in self.batches]
        finally:
            module.train(was_training)
        self._cache[name] = (key, feats)
        self.computed[name] = self.computed.get(name, 0) + 1
        return feats

    def clear(self) -> None:
        self._cache.clear()
