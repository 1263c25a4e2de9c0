"""What a search asks for an arch's metrics, and three ways to answer.

- :class:`ArchEvaluator` is the protocol: ``evaluate(arch) -> {metric: float}`` (names in
  :mod:`supernet.search.objectives`). The supernet evaluator (``supernet.evaluate.Evaluator``,
  inherited weights + profiler costs) fits it through :class:`MetricsAdapter`, which flattens
  whatever result object it returns.
- :class:`TableEvaluator`: a cached table of evaluations (JSONL, one ``{"arch": ..., "metrics":
  ...}`` per line), optionally filled on demand from a fallback evaluator and saved atomically.
  Benchmarks and tests replay searches on it without touching a network.
- :class:`SyntheticEvaluator`: a cheap, deterministic stand-in with a documented formula (below).
  It is NOT a speech model: it exists so that search strategies, storage and plots can be
  tested and benchmarked in milliseconds. Its costs are additive over parts
  (:meth:`SyntheticEvaluator.head_cost`, :meth:`SyntheticEvaluator.layer_cost`) so the
  DP of :meth:`~supernet.space.SearchSpace.best_arch` can use them.

The synthetic formula, for an arch with width ``w`` and ``T = 100 * reference_seconds /
subsampling`` encoder frames:

- params: analytic per part (conformer ``4 f w^2 + 7 w^2 + k w``, transformer ``(4 + 2 f) w^2``,
  LSTM ``8 w^2``, BLSTM ``6 w^2``, CNN ``2 w^2 + k w``; front-end and decoder heads likewise);
- latency: ``2 * params * T`` FLOPs per layer (recurrent layers x3 for their sequential
  steps) plus attention's ``2 T^2 w`` (local: window 32; linear: ``2 T w^2 / heads``) at
  ``gflops`` GFLOP/s, plus 0.05 ms per layer and 0.5 ms per forward; RTF = latency / duration;
  chunk latency = one chunk of ``chunk + lookahead`` frames (attending 4 chunks back) plus the
  look-ahead's audio duration (full context: the whole-utterance latency);
- WER: ``0.035 + 0.55 exp(-capacity / 1.6)``, where capacity sums a per-layer quality
  (block type, width, FFN ratio, attention type, kernel) with a seeded per-(layer, choice)
  perturbation (``+-6 %``: a rugged landscape a search must learn), times factors for the
  front-end, subsampling, decoder and streaming (smaller chunks, less look-ahead: worse), times
  ``1 +- noise`` per arch; per language a seeded sensitivity; CER = 0.45 WER.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

from supernet.config import ConfigError
from supernet.space import Arch, LayerArch
from supernet.utils import atomic_write

__all__ = ["ArchEvaluator", "MetricsAdapter", "as_metrics", "TableEvaluator", "write_table", "SyntheticEvaluator"]


@runtime_checkable
class ArchEvaluator(Protocol):
    """Anything that scores an arch: ``evaluate(arch) -> {metric name: float}``."""

    def evaluate(self, arch: Arch) -> Mapping[str, float]: ...


def as_metrics(result: Any, prefix: str = "") -> dict[str, float]:
    """Flatten an evaluator's result into ``{name: float}``.

    Accepts a mapping (nested mappings join keys with ``/``: ``{"wer": {"set": {"dev": x}}}`` ->
    ``wer/set/dev``), a dataclass, or an object with ``to_dict()``. Non-numeric leaves (strings,
    None) are dropped: they are not metrics.
    """
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    elif not isinstance(result, Mapping) and hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, Mapping):
        raise TypeError(f"an evaluator returned {type(result).__name__}; expected a mapping of metric name to number")
    out: dict[str, float] = {}
    for k, v in result.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
            out.update(as_metrics(v, prefix=f"{name}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = float(v)
    return out


class MetricsAdapter:
    """Wrap an evaluator whose ``evaluate(arch)`` returns a result object into the protocol."""

    def __init__(self, evaluator: Any) -> None:
        self.evaluator = evaluator

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return as_metrics(self.evaluator.evaluate(arch))


# ---------------------------------------------------------------------------- table
class TableEvaluator:
    """Evaluations cached in a JSONL table; misses go to ``fallback`` (or are an error).

    Args:
        path: the table (``{"arch": <Arch dict>, "metrics": {...}}`` per line). A missing file is
            an empty table when a fallback is given, an error otherwise.
        fallback: evaluator for archs not in the table; new rows are kept and written by
            :meth:`save` (atomically, whole file).
    """

    def __init__(self, path: str | Path, fallback: ArchEvaluator | None = None) -> None:
        self.path = Path(path)
        self.fallback = fallback
        self.rows: dict[str, tuple[Arch, dict[str, float]]] = {}
        self.hits = self.misses = 0
        self._dirty = False
        if self.path.is_file():
            self._load()
        elif fallback is None:
            raise ConfigError(f"{self.path}: evaluation table not found; build it (bench/search_strategies.py writes one) or give a fallback evaluator")

    def _load(self) -> None:
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                arch = Arch.from_dict(row["arch"])
                metrics = {k: float(v) for k, v in row["metrics"].items()}
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"{self.path}:{n}: not a table row {{\"arch\": {{...}}, \"metrics\": {{...}}}}: {e}") from e
            self.rows[arch.id] = (arch, metrics)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        hit = self.rows.get(arch.id)
        if hit is not None:
            self.hits += 1
            return dict(hit[1])
        if self.fallback is None:
            raise ConfigError(f"{self.path}: arch {arch.id} ({arch.describe()}) is not in the table ({len(self.rows)} rows) and there is no fallback evaluator")
        self.misses += 1
        metrics = {k: float(v) for k, v in self.fallback.evaluate(arch).items()}
        self.rows[arch.id] = (arch, metrics)
        self._dirty = True
        return dict(metrics)

    def save(self, path: str | Path | None = None) -> Path:
        """Write every row (atomically). Returns the path."""
        out = Path(path) if path is not None else self.path
        write_table(out, self.rows.values())
        self._dirty = False
        return out

    def __len__(self) -> int:
        return len(self.rows)


def write_table(path: str | Path, rows: Iterable[tuple[Arch, Mapping[str, float]]]) -> None:
    """Write ``(arch, metrics)`` rows as a JSONL evaluation table, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        for arch, metrics in rows:
            f.write(json.dumps({"arch": arch.to_dict(), "metrics": dict(metrics)}, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------- synthetic
_FEATURE_DIM = {"logmel80": 80, "logmel40": 40, "mfcc40": 40, "learnable": 80}
_BLOCK_QUALITY = {"conformer": 1.0, "transformer": 0.85, "blstm": 0.8, "lstm": 0.62, "cnn": 0.5}
_ATTN_QUALITY = {"relpos": 1.06, "mha": 1.0, "local": 0.96, "linear": 0.88}
_FEATURE_FACTOR = {"logmel80": 1.0, "logmel40": 1.04, "mfcc40": 1.07, "learnable": 0.98}
_SUB_FACTOR = {4: 1.0, 6: 1.03, 8: 1.10}


class SyntheticEvaluator:
    """Deterministic stand-in evaluator (formula in the module docstring).

    Args:
        seed: seeds the per-choice perturbations and the per-arch noise (two evaluators with the
            same seed agree in every process: hashing, not a global RNG).
        vocab_size: output classes of the decoder heads.
        reference_seconds: utterance length the latency refers to.
        languages: per-language WERs ``wer/lang/CODE`` (``wer`` is their mean); empty: one language.
        noise: relative per-arch noise of the WER.
        gflops: assumed throughput in GFLOP/s (sets the latency scale).
    """

    def __init__(self, *, seed: int = 0, vocab_size: int = 32, reference_seconds: float = 4.0,
                 languages: tuple[str, ...] = ("en", "de"), noise: float = 0.01, gflops: float = 8.0) -> None:
        self.seed, self.vocab_size, self.reference_seconds = seed, vocab_size, reference_seconds
        self.languages, self.noise, self.gflops = tuple(languages), noise, gflops
        self.calls = 0

    def _u(self, *key: Any) -> float:
        """Uniform in [-1, 1], a pure function of (seed, key)."""
        h = hashlib.sha256(repr((self.seed,) + key).encode()).digest()
        return int.from_bytes(h[:8], "little") / 2**63 - 1.0

    # ------------------------------------------------------------------ params
    def head_params(self, head: Arch) -> float:
        w, v, f = head.width, self.vocab_size, _FEATURE_DIM[head.feature]
        front = f * 64 + 9 * 64 * 64 + 64 * (f // 4) * w + 2 * w + (400 * f if head.feature == "learnable" else 0)
        if head.decoder == "ctc":
            dec = w * v
        elif head.decoder == "rnnt":
            dw = head.decoder_width
            dec = v * dw + head.decoder_layers * 8 * dw * dw + (w + dw) * dw + dw * v
        else:
            dw = head.decoder_width
            dec = head.decoder_layers * 12 * dw * dw + 2 * v * dw + w * v
        return float(front + dec)

    @staticmethod
    def layer_params(layer: LayerArch, width: int) -> float:
        w, b = width, layer.block
        if b == "conformer":
            return float(4 * layer.ffn_ratio * w * w + 7 * w * w + layer.kernel * w + 10 * w)
        if b == "transformer":
            return float((4 + 2 * layer.ffn_ratio) * w * w + 6 * w)
        if b == "lstm":
            return float(8 * w * w + 8 * w)
        if b == "blstm":
            return float(6 * w * w + 8 * w)
        if b == "cnn":
            return float(2 * w * w + layer.kernel * w + 4 * w)
        return 0.0  # skip

    # ------------------------------------------------------------------ latency
    def _frames(self, head: Arch) -> float:
        return 100.0 * self.reference_seconds / head.subsampling

    def _layer_flops(self, layer: LayerArch, width: int, frames: float, context: float) -> float:
        if layer.block == "skip":
            return 0.0
        flops = 2.0 * self.layer_params(layer, width) * frames
        if layer.block in ("lstm", "blstm"):
            flops *= 3.0  # sequential steps use the CPU badly
        if layer.attention is not None:
            a = layer.attention
            if a in ("mha", "relpos"):
                flops += 2.0 * frames * context * width * (1.3 if a == "relpos" else 1.0)
            elif a == "local":
                flops += 2.0 * frames * min(context, 32.0) * width
            else:
                flops += 2.0 * frames * width * width / layer.heads
        return flops

    def head_cost(self, metric: str, head: Arch) -> float:
        """Additive cost of the head (front-end, decoder) for ``metric`` in {params, latency_ms}."""
        if metric == "params":
            return self.head_params(head)
        if metric == "latency_ms":
            t = self._frames(head)
            flops = 2.0 * self.head_params(head) * t
            return 0.5 + flops / (self.gflops * 1e6)
        raise ValueError(f"no additive synthetic cost for {metric!r}; use params or latency_ms")

    def layer_cost(self, metric: str, i: int, layer: LayerArch, head: Arch) -> float:
        """Additive cost of one layer slot (``skip``: 0) for ``metric`` in {params, latency_ms}."""
        if metric == "params":
            return self.layer_params(layer, head.width)
        if metric == "latency_ms":
            if layer.block == "skip":
                return 0.0
            t = self._frames(head)
            return 0.05 + self._layer_flops(layer, head.width, t, t) / (self.gflops * 1e6)
        raise ValueError(f"no additive synthetic cost for {metric!r}; use params or latency_ms")

    # ------------------------------------------------------------------ WER
    def _capacity(self, arch: Arch) -> float:
        cap = 0.0
        for i, la in enumerate(arch.layers):
            if la.block == "skip":
                continue
            q = _BLOCK_QUALITY[la.block] * (arch.width / 192.0) ** 0.4
            q *= 1.0 + 0.06 * self._u("block", i, la.block)
            if la.ffn_ratio is not None:
                q *= 1.0 + 0.04 * (la.ffn_ratio - 2) / 2 + 0.03 * self._u("ffn", i, la.ffn_ratio)
            if la.attention is not None:
                q *= _ATTN_QUALITY[la.attention] * (1.0 + 0.03 * self._u("attention", i, la.attention))
            if la.kernel is not None:
                q *= 1.0 - 0.04 * abs(math.log2(la.kernel / 15.0)) + 0.03 * self._u("kernel", i, la.kernel)
            if la.heads is not None:
                q *= 1.0 + 0.02 * self._u("heads", i, la.heads)
            cap += q / (1.0 + 0.15 * i)  # deeper layers add less
        return cap

    def _wer(self, arch: Arch) -> float:
        wer = 0.035 + 0.55 * math.exp(-self._capacity(arch) / 1.6)
        wer *= _FEATURE_FACTOR[arch.feature] * _SUB_FACTOR.get(arch.subsampling, 1.0)
        if arch.decoder == "rnnt":
            wer *= 0.9 - 0.02 * (arch.decoder_layers - 1) - 0.01 * (arch.decoder_width >= 256)
        elif arch.decoder == "attention":
            wer *= 0.94 - 0.01 * (arch.decoder_layers - 1)
        if arch.streaming:
            wer *= 1.0 + 1.2 / (arch.chunk + 2 * (arch.lookahead or 0) + 2)
        return wer * (1.0 + self.noise * self._u("noise", arch.id))

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Every metric of ``supernet.search.objectives`` for ``arch``."""
        self.calls += 1
        head = dataclasses.replace(arch, layers=())
        params = self.head_params(head) + sum(self.layer_params(la, arch.width) for la in arch.layers)
        latency = self.head_cost("latency_ms", head) + sum(self.layer_cost("latency_ms", i, la, head) for i, la in enumerate(arch.layers))
        t = self._frames(head)
        if arch.streaming:
            step = arch.chunk + (arch.lookahead or 0)
            ctx = 5.0 * arch.chunk
            chunk_flops = 2.0 * self.head_params(head) * step + sum(self._layer_flops(la, arch.width, step, ctx) for la in arch.layers)
            chunk_ms = 0.5 + 0.05 * arch.depth + chunk_flops / (self.gflops * 1e6) + (arch.lookahead or 0) * arch.subsampling * 10.0
        else:
            chunk_ms = latency
        base = self._wer(arch)
        out: dict[str, float] = {}
        if self.languages:
            for lang in self.languages:
                sens = 1.0 + 0.25 * (self._u("lang", lang) + 1.0) * (192.0 / arch.width) ** 0.3 - 0.25
                out[f"wer/lang/{lang}"] = min(1.0, base * sens * (1.0 + 0.02 * self._u("lang-noise", lang, arch.id)))
            wer = sum(out.values()) / len(out)
            out["wer_mean"] = wer
        else:
            wer = min(1.0, base)
        out.update({
            "wer": wer,
            "wer/set/dev": wer,
            "wer/set/test": min(1.0, wer * 1.05),
            "cer": 0.45 * wer,
            "loss": 0.1 + 2.5 * wer,
            "params": params,
            "flops": 2.0 * params * t,
            "latency_ms": latency,
            "rtf": latency / (1000.0 * self.reference_seconds),
            "chunk_latency_ms": chunk_ms,
            "memory_mb": (4.0 * params + 4.0 * t * arch.width * 8) / 1e6,
        })  # fmt: skip
        return out

    def __repr__(self) -> str:
        return f"SyntheticEvaluator(seed={self.seed}, vocab_size={self.vocab_size}, languages={self.languages})"

