"""The supernet as a shared evaluator: dev WER, CER and loss of any arch with inherited weights.

:class:`Evaluator` scores an :class:`~supernet.space.Arch` on one or more dev sets with the
weights it inherits from a trained :class:`~supernet.model.SpeechSupernet` (eval mode, no
gradients, batched), per set and per language, and caches the result by ``arch.id``. Search
strategies call it thousands of times, so everything that does not depend on the arch is done
once (:mod:`supernet.evaluation.batches`): padded batches, and features per front-end.

Per arch, the encoder and head are rebuilt as ordinary static modules (the classes
``supernet.subnet.extract`` builds) directly on the supernet's weight slices: shape-only
construction on the ``meta`` device, then ``load_state_dict(assign=True)`` of
``supernet.static_state_dict(arch)``. That skips the random initialisation ``extract`` pays for,
and computes exactly what the extracted model computes (tests check it). The static encoder
takes features, so the cached ones feed it directly.

Batch statistics: the supernet uses LayerNorm everywhere and no BatchNorm
(``supernet.nn.convolution``), so an arch's output does not depend on the batch or on which
other paths were trained, and no recalibration is needed; :func:`batch_stat_modules` checks it
at construction. A network with BatchNorm (running statistics shared by every subnet) is only
accepted with ``calibration_sets``, on which each subnet's statistics are re-estimated
(:func:`recalibrate_batch_stats`, as Once-for-All does) before it is scored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from supernet.evaluation.batches import EvalBatch, FeatureCache, make_batches
from supernet.evaluation.results import GroupOutput, Metrics, summarize
from supernet.evaluation.store import ResultStore
from supernet.nn.encoder import Encoder
from supernet.nn.frontend import feature_dim
from supernet.nn.heads import build_head
from supernet.space import Arch

__all__ = ["Evaluator", "score_subnet", "score_batches", "utterance_losses", "batch_stat_modules",
           "recalibrate_batch_stats"]

log = logging.getLogger(__name__)

FORMAT = "supernet-eval/1"  # part of the fingerprint: bump when scoring changes meaning


def batch_stat_modules(module: nn.Module) -> list[str]:
    """Names of submodules whose eval-mode output depends on batch statistics.

    BatchNorm of any kind (running statistics, or batch statistics when it tracks none), and
    instance norms that track running statistics.
    """
    out = []
    for name, m in module.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) or (
                isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats):
            out.append(name or type(m).__name__)
    return out


@torch.no_grad()
def recalibrate_batch_stats(module: nn.Module, run: Callable[[], Any]) -> int:
    """Re-estimate the running statistics of ``module``'s batch-norm layers.

    Resets them, switches those layers (only) to training mode with a cumulative average
    (``momentum=None``), calls ``run()`` (forward passes over calibration data), then restores
    their momentum and mode. Other layers keep their mode (no dropout).

    Returns:
        The number of layers recalibrated.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        run()
    finally:
        for m, (momentum, training) in zip(norms, saved):
            m.momentum = momentum
            m.train(training)
    return len(norms)


def _select(outputs: Any, i: int) -> Any:
    """Utterance ``i`` of a head's outputs (a tensor with batch first, or a tuple / list of them)."""
    if isinstance(outputs, Tensor):
        return outputs[i:i + 1]
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_select(o, i) for o in outputs)
    raise TypeError(f"cannot split head outputs of type {type(outputs).__name__} per utterance")


def utterance_losses(head: nn.Module, outputs: Any, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> list[float]:
    """The head's loss of each utterance of a batch on its own.

    A head's ``loss`` reduces over the batch, and not always per utterance (the attention head's
    cross-entropy averages over all tokens of the batch), so a batch mean depends on how
    utterances were batched. Scoring utterance by utterance makes the dev loss a property of
    the model and the data alone.
    """
    return [float(head.loss(_select(outputs, i), enc_lengths[i:i + 1], targets[i:i + 1], target_lengths[i:i + 1]))
            for i in range(len(enc_lengths))]


def score_batches(encode: Callable[[int, EvalBatch], tuple[Tensor, Tensor]], head: nn.Module,
                  batches: Sequence[EvalBatch], tokenizer: Any) -> list[GroupOutput]:
    """Encode, score and greedily decode every batch; raw outputs grouped by (set, language).

    Args:
        encode: ``f(batch index, batch) -> (enc (B, T', D), enc_lengths (B,))``.
        head: the decoder head (``forward``, ``loss``, ``decode``), in eval mode.
        batches: from :func:`~supernet.evaluation.batches.make_batches`.
        tokenizer: ids -> text.
    """
    groups: dict[tuple[str, str], GroupOutput] = {}
    with torch.inference_mode():
        for i, b in enumerate(batches):
            enc, enc_lengths = encode(i, b)
            outputs = head(enc, enc_lengths, b.targets, b.target_lengths)
            losses = utterance_losses(head, outputs, enc_lengths, b.targets, b.target_lengths)
            hyps = [tokenizer.decode(ids) for ids in head.decode(enc, enc_lengths)]
            g = groups.setdefault((b.set_name, b.lang), GroupOutput(b.set_name, b.lang))
            g.hyps += hyps
            g.refs += b.texts
            g.loss_sum += sum(losses)
    return list(groups.values())


def score_subnet(model: nn.Module, batches: Sequence[EvalBatch], tokenizer: Any, label: str = "subnet",
                 features: Sequence[tuple[Tensor, Tensor]] | None = None) -> Metrics:
    """Dev WER/CER/loss of a static subnet on prepared batches, without a supernet.

    The scoring every stage shares (the evaluator, progressive evaluation, rank-check
    references, fine-tuning), so their numbers compare.

    Args:
        model: the :class:`~supernet.subnet.SubnetModel` interface (``features``, ``encoder``,
            ``head``); put in eval mode for the call, its mode restored after.
        batches: from :func:`~supernet.evaluation.batches.make_batches`.
        tokenizer: ids -> text.
        label: the ``arch_id`` of the result.
        features: precomputed (feats, lengths) per batch (else ``model.features`` computes them).
    """
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        if features is None:
            with torch.inference_mode():
                features = [model.features(b.audio, b.audio_lengths) for b in batches]
        groups = score_batches(lambda i, b: model.encoder(*features[i]), model.head, batches, tokenizer)
    finally:
        model.train(was_training)
    costs = {"params": float(sum(p.numel() for p in model.parameters()))}
    return Metrics(label, *summarize(groups), costs=costs, seconds=time.perf_counter() - t0)


def _prefixed(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class Evaluator:
    """Scores archs with the supernet's inherited weights on dev sets; results cached by ``arch.id``.

    Args:
        supernet: a trained :class:`~supernet.model.SpeechSupernet`; its weights are only read.
        dev_sets: {name: dataset}, items ``{"audio", "target", "text", "lang", "id"}`` (e.g.
            ``SpeechDataModule.dev_sets``; per-language espeak sets like ``dev.de``).
        tokenizer: turns decoded ids into text (a tokenizer, ``supernet.data.tokenizer``).
        batch_size: utterances per batch.
        max_batch_seconds: also cap padded seconds per batch (bounds memory on long sets).
        costs: ``f(arch) -> {name: number}`` attached to every result (e.g. a latency table's
            prediction). ``params`` (the static model's parameter count) is always attached.
        cache_path: also keep results in this JSON-lines file (:class:`ResultStore`), so a later
            process with the same supernet and dev data reuses them.
        calibration_sets: {name: dataset} of training utterances, required only when the
            network has batch-statistics layers (see the module docstring).
        progress: show a progress bar in :meth:`evaluate_many`.

    Counters: ``forwards`` (archs actually run over the dev data), ``hits`` (answered from a
    cache).

    Example:
        >>> ev = Evaluator(net, dm.dev_sets, dm.tokenizer, batch_size=32, cache_path="runs/eval.jsonl")
        >>> m = ev.evaluate(space.sample(random.Random(0)))
        >>> m.wer, m["wer/set/dev.de"], m["wer/lang/de"], m["params"]
    """

    def __init__(self, supernet: nn.Module, dev_sets: Mapping[str, Any], tokenizer: Any, batch_size: int = 16, *,
                 max_batch_seconds: float | None = None, costs: Callable[[Arch], Mapping[str, float]] | None = None,
                 cache_path: str | Path | None = None, calibration_sets: Mapping[str, Any] | None = None,
                 progress: bool = False) -> None:
        self.supernet = supernet
        self.tokenizer = tokenizer
        self.costs = costs
        self.progress = progress
        self.device = next(supernet.parameters()).device
        rate = supernet.config.net.sample_rate
        self.batches: list[EvalBatch] = make_batches(dev_sets, batch_size, self.device, max_batch_seconds, rate)
        self.set_names = list(dev_sets)
        self.features = FeatureCache(supernet.features, self.batches)
        self.batch_stat_layers = batch_stat_modules(supernet)
        self._calibration: FeatureCache | None = None
        if self.batch_stat_layers:
            if not calibration_sets:
                raise ValueError(f"the supernet has batch-statistics layers {self.batch_stat_layers[:5]}: each subnet "
                                 "needs its own statistics; pass calibration_sets={name: training dataset}")
            cal = make_batches(calibration_sets, batch_size, self.device, max_batch_seconds, rate)
            self._calibration = FeatureCache(supernet.features, cal)
        self._cache_path = Path(cache_path) if cache_path is not None else None
        self._results: dict[str, Metrics] = {}
        self._store: ResultStore | None = None
        self._fingerprint: str | None = None
        self._data_fingerprint: str | None = None
        # Captured once: walking the module tree per call would cost more than a cache hit should.
        self._tensors = list(supernet.state_dict(keep_vars=True).values())
        self._weights_key = self._weights_version()
        self.forwards = 0
        self.hits = 0

    # ------------------------------------------------------------------ caching
    def _weights_version(self) -> tuple:
        # In-place updates (optimiser steps, load_state_dict) bump a tensor's version counter.
        return tuple((t.data_ptr(), t._version) for t in self._tensors)

    def _check_weights(self) -> None:
        """Drop cached results when the supernet's weights changed since they were computed."""
        key = self._weights_version()
        if key != self._weights_key:
            log.info("supernet weights changed: cached results dropped")
            self._weights_key = key
            self._results.clear()
            self._fingerprint = None
            self._store = None

    @property
    def data_fingerprint(self) -> str:
        """Hash of the dev data as scored (ids, texts, audio, batching) and the tokenizer."""
        if self._data_fingerprint is None:
            h = hashlib.sha256(FORMAT.encode())
            h.update(json.dumps(self.tokenizer.to_dict(), sort_keys=True).encode())
            for b in self.batches:
                h.update(json.dumps([b.set_name, b.lang, b.ids, b.texts]).encode())
                h.update(b.audio.detach().cpu().contiguous().numpy())
            self._data_fingerprint = h.hexdigest()[:16]
        return self._data_fingerprint

    @property
    def fingerprint(self) -> str:
        """Hash of what a result depends on: supernet weights and network config, dev data, tokenizer."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.data_fingerprint.encode())
            h.update(repr((self.supernet.config.net, self.supernet.vocab_size)).encode())
            for name, t in sorted(self.supernet.state_dict().items()):
                h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @property
    def store(self) -> ResultStore | None:
        """The on-disk results of this fingerprint (None without ``cache_path``)."""
        if self._cache_path is not None and self._store is None:
            self._store = ResultStore(self._cache_path, self.fingerprint)
        return self._store

    def cached(self, arch: Arch) -> Metrics | None:
        """The cached result of ``arch`` (memory, then disk), or None."""
        self._check_weights()
        hit = self._results.get(arch.id)
        if hit is None and self.store is not None:
            hit = self.store.get(arch.id)
            if hit is not None:
                self._results[arch.id] = hit
        return hit

    def clear_cache(self) -> None:
        """Forget in-memory results (the file, if any, is kept)."""
        self._results.clear()

    # ------------------------------------------------------------------ evaluation
    def static_parts(self, arch: Arch) -> tuple[nn.Module, nn.Module]:
        """``arch``'s static encoder (features -> (B, T', D)) and head, on copies of the supernet's
        weight slices, in eval mode."""
        state = self.supernet.static_state_dict(arch)  # checks the arch against the supernet
        net = self.supernet.config.net
        with torch.device("meta"):
            encoder = Encoder(arch, feature_dim(arch.feature, net), net)
            head = build_head(arch, self.supernet.vocab_size, net)
        encoder.load_state_dict(_prefixed(state, "encoder."), strict=True, assign=True)
        head.load_state_dict(_prefixed(state, "head."), strict=True, assign=True)
        return encoder.eval(), head.eval()

    def evaluate(self, arch: Arch) -> Metrics:
        """Dev WER/CER/loss of ``arch`` with inherited weights, per set and language (cached)."""
        if not isinstance(arch, Arch):
            raise TypeError(f"evaluate() takes an Arch, got {type(arch).__name__}")
        hit = self.cached(arch)
        if hit is not None:
            self.hits += 1
            return hit
        t0 = time.perf_counter()
        encoder, head = self.static_parts(arch)
        feats = self.features.get(arch.feature)
        if self._calibration is not None:
            cal = self._calibration.get(arch.feature)
            recalibrate_batch_stats(encoder, lambda: [encoder(*f) for f in cal])
        groups = score_batches(lambda i, b: encoder(*feats[i]), head, self.batches, self.tokenizer)
        feature_params = sum(p.numel() for p in self.supernet.features[arch.feature].parameters())
        costs = {"params": float(sum(p.numel() for m in (encoder, head) for p in m.parameters()) + feature_params)}
        if self.costs is not None:
            costs.update({k: float(v) for k, v in self.costs(arch).items()})
        metrics = Metrics(arch.id, *summarize(groups), costs=costs, seconds=time.perf_counter() - t0)
        self.forwards += 1
        self._results[arch.id] = metrics
        if self.store is not None:
            self.store.put(arch, metrics)
        return metrics

    def evaluate_many(self, archs: Iterable[Arch]) -> list[Metrics]:
        """:meth:`evaluate` each arch in order (progress bar when ``progress``)."""
        from tqdm import tqdm

        archs = list(archs)
        return [self.evaluate(a) for a in tqdm(archs, desc="evaluate", unit="arch", disable=not self.progress)]

    def score_model(self, model: nn.Module, label: str = "model") -> Metrics:
        """Score any static model on the same dev batches with the same code (not cached).

        ``model`` has the :class:`~supernet.subnet.SubnetModel` interface (``features``,
        ``encoder``, ``head``): an extracted, fine-tuned or standalone-trained subnet. Its
        features come from the cache when its front-end has no parameters and it was built with
        the supernet's network config (then they are the same function of the audio).
        """
        arch = getattr(model, "arch", None)
        fixed = (arch is not None and getattr(model, "net", None) == self.supernet.config.net
                 and arch.feature in self.features.modules and not any(True for _ in model.features.parameters()))
        feats = self.features.get(arch.feature) if fixed else None
        return score_subnet(model, self.batches, self.tokenizer, label, feats)
