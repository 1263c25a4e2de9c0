"""Run an exported model directory: graphs in a backend, features and greedy search in host code.

:class:`Recognizer` is the one inference path behind ``supernet transcribe``, streaming
(``supernet.streaming``), the export parity checks and the benchmarks. It combines

- a *backend* that runs the graphs of ``supernet.graphs`` by name: ``"onnx"`` (ONNX Runtime,
  CPU), ``"torchscript"`` (``torch.jit.load``) or ``"eager"`` (the PyTorch modules themselves,
  :meth:`Recognizer.from_model`);
- host feature extraction (log-mel / MFCC from the feature config in the metadata; the learnable
  front-end is a graph);
- greedy search in host code, written to compute exactly what the eager heads' ``decode`` does:
  CTC best path, RNN-T frame-synchronous greedy (at most ``max_symbols`` tokens per frame) and
  attention-decoder label-synchronous greedy.

:class:`TransducerSearch` and :class:`CTCSearch` keep their state between calls, so streaming
feeds them encoder frames chunk by chunk and gets the same tokens as one call on all frames.

Example:
    >>> rec = Recognizer.load("models/mobile", backend="onnx", threads=1)
    >>> rec.transcribe([load_audio("a.wav", rec.sample_rate)])
    ['one two three']
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from supernet.data.features import FeatureConfig, FeatureExtractor, lengths_to_mask
from supernet.metrics import ctc_greedy_decode

__all__ = ["BACKENDS", "Recognizer", "CTCSearch", "TransducerSearch", "attention_greedy", "backend_runner",
           "read_metadata", "ModelDirError"]

BACKENDS = ("onnx", "torchscript", "eager")
Runner = Callable[[str, Sequence[Tensor]], list[Tensor]]


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or of another format."""


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """``metadata.json`` of a model directory written by ``supernet export``."""
    from supernet.export import FORMAT, METADATA

    d = Path(model_dir)
    path = d / METADATA
    if not path.is_file():
        raise ModelDirError(f"{d}: no {METADATA}; pass a model directory written by `supernet export`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path}: not valid JSON ({e}); re-run `supernet export`") from None
    if meta.get("format") != FORMAT:
        raise ModelDirError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}; re-run `supernet export`")
    return meta


# ---------------------------------------------------------------------------- backends
def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def backend_runner(model_dir: str | Path, meta: dict[str, Any], backend: str, threads: int = 1) -> Runner:
    """A function ``run(graph name, inputs) -> outputs`` over the files of ``model_dir``.

    Args:
        model_dir: the model directory (its files are opened once, on first use of each graph).
        meta: its metadata.
        backend: "onnx" or "torchscript" ("eager" needs the model: :meth:`Recognizer.from_model`).
        threads: ONNX Runtime intra-op threads (TorchScript uses torch's setting).
    """
    if backend not in ("onnx", "torchscript"):
        raise ValueError(f"backend {backend!r}: a model directory runs with 'onnx' or 'torchscript'")
    d = Path(model_dir)
    loaded: dict[str, Any] = {}

    def load(name: str) -> Any:
        if name not in loaded:
            entry = meta["graphs"].get(name, {}).get(backend)
            if entry is None:
                raise ModelDirError(f"{d}: graph {name!r} was not exported as {backend} (formats: "
                                    f"{meta['export']['formats']}); re-export with --formats including {backend}")
            path = d / entry["file"]
            if not path.is_file():
                raise ModelDirError(f"{path}: missing; the model directory is incomplete, re-run `supernet export`")
            if backend == "onnx":
                loaded[name] = _ort_session(path, threads)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                    loaded[name] = torch.jit.load(str(path)).eval()
        return loaded[name]

    if backend == "onnx":
        def run(name: str, inputs: Sequence[Tensor]) -> list[Tensor]:
            sess = load(name)
            # by name: the exporter drops inputs a graph does not read, so positions may shift
            wanted = {i.name for i in sess.get_inputs()}
            feed = {n: x.detach().cpu().contiguous().numpy() for n, x in zip(meta["graphs"][name]["inputs"], inputs)
                    if n in wanted}
            return [torch.from_numpy(o) for o in sess.run(None, feed)]
    else:
        def run(name: str, inputs: Sequence[Tensor]) -> list[Tensor]:
            with torch.inference_mode():
                out = load(name)(*inputs)
            return list(out) if isinstance(out, (tuple, list)) else [out]
    return run


def _eager_runner(graphs: dict[str, nn.Module]) -> Runner:
    def run(name: str, inputs: Sequence[Tensor]) -> list[Tensor]:
        with torch.inference_mode():
            out = graphs[name](*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]
    return run


# ---------------------------------------------------------------------------- greedy search
class CTCSearch:
    """Best-path CTC over frames given in pieces (one utterance): argmax, merge repeats, drop blanks.

    ``advance(log_probs (T, V))`` consumes frames; ``tokens`` is the result so far. Feeding the
    frames in any split gives the tokens of :func:`supernet.metrics.ctc_greedy_decode` on all.
    """

    def __init__(self, blank: int = 0) -> None:
        self.blank = blank
        self.prev = -1
        self.tokens: list[int] = []

    def advance(self, log_probs: Tensor) -> list[int]:
        for k in log_probs.argmax(dim=-1).tolist():
            if k != self.blank and k != self.prev:
                self.tokens.append(k)
            self.prev = k
        return self.tokens


class TransducerSearch:
    """Frame-synchronous greedy RNN-T search over a batch, resumable between frame pieces.

    Mirrors ``TransducerHead.decode``: per frame, emit the joiner's argmax and advance the
    predictor until it says blank, at most ``max_symbols`` times.

    Args:
        run: the backend runner (graphs ``predictor`` and ``joiner``).
        batch: B.
        layers, width: predictor LSTM size.
        blank: blank id.
        max_symbols: tokens per frame at most.
    """

    def __init__(self, run: Runner, batch: int, layers: int, width: int, blank: int = 0, max_symbols: int = 5) -> None:
        self.run = run
        self.blank = blank
        self.max_symbols = max_symbols
        start = torch.full((batch, 1), blank, dtype=torch.long)
        zeros = torch.zeros(layers, batch, width)
        self.g, self.h, self.c = run("predictor", (start, zeros, zeros.clone()))
        self.hyps: list[list[int]] = [[] for _ in range(batch)]

    def advance(self, enc_proj: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
        """Consume frames ``enc_proj`` (B, T, W); ``lengths`` (B,) valid frames of this piece."""
        B, T, _ = enc_proj.shape
        lengths = torch.full((B,), T) if lengths is None else lengths
        for t in range(T):
            active = t < lengths
            for _ in range(self.max_symbols):
                (logits,) = self.run("joiner", (enc_proj[:, t].contiguous(), self.g))
                k = logits.argmax(dim=-1)
                emit = active & (k != self.blank)
                if not bool(emit.any()):
                    break
                g, h, c = self.run("predictor", (k[:, None], self.h, self.c))
                self.g = torch.where(emit[:, None], g, self.g)
                self.h = torch.where(emit[None, :, None], h, self.h)
                self.c = torch.where(emit[None, :, None], c, self.c)
                for b in emit.nonzero().flatten().tolist():
                    self.hyps[b].append(int(k[b]))
        return self.hyps


def attention_greedy(run: Runner, enc: Tensor, enc_lengths: Tensor, blank: int, eos: int,
                     max_len: int | None = None) -> list[list[int]]:
    """Label-synchronous greedy decoding with the ``decoder`` graph (as ``AttentionHead.decode``)."""
    B = enc.size(0)
    steps = max_len if max_len is not None else int(enc_lengths.max()) if B else 0
    ys = torch.full((B, 1), eos, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for _ in range(steps):
        (logits,) = run("decoder", (ys, enc, enc_lengths))
        logits = logits.clone()
        logits[:, blank] = float("-inf")  # blank is CTC's, not a token
        nxt = torch.where(done, torch.full_like(done, eos, dtype=torch.long), logits.argmax(dim=-1))
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == eos
        if bool(done.all()):
            break
    return [row[: row.index(eos)] if eos in row else row for row in ys[:, 1:].tolist()]


# ---------------------------------------------------------------------------- recognizer
class Recognizer:
    """Features -> encoder graph -> greedy search -> text, for one exported (or eager) model.

    Args:
        meta: the model directory's metadata (``supernet.export``).
        run: backend runner (:func:`backend_runner`).
        backend: its name (recorded in results).
    """

    def __init__(self, meta: dict[str, Any], run: Runner, backend: str) -> None:
        from supernet.data.tokenizer import tokenizer_from_dict
        from supernet.space import Arch

        self.meta = meta
        self.run = run
        self.backend = backend
        self.arch = Arch.from_dict(meta["arch"])
        self.tokenizer = tokenizer_from_dict(meta["tokenizer"])
        self.decoder = meta["decoder"]
        f = meta["features"]
        self.sample_rate = int(f["sample_rate"])
        self._features = None if f["graph"] else FeatureExtractor(FeatureConfig(**f["config"])).eval()

    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "onnx", threads: int = 1) -> "Recognizer":
        """Open a model directory with the ``onnx`` or ``torchscript`` backend."""
        meta = read_metadata(model_dir)
        return cls(meta, backend_runner(model_dir, meta, backend, threads), backend)

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer: Any) -> "Recognizer":
        """The eager PyTorch model behind the same host code (reference for parity and benchmarks)."""
        from dataclasses import asdict

        from supernet.export import decoder_metadata, feature_metadata, streaming_metadata
        from supernet.graphs import build_graphs

        model = model.eval()
        meta = {"arch": model.arch.to_dict(), "tokenizer": tokenizer.to_dict(), "net": asdict(model.net),
                "features": feature_metadata(model), "decoder": decoder_metadata(model),
                "streaming": streaming_metadata(model), "vocab_size": model.vocab_size}
        return cls(meta, _eager_runner(build_graphs(model)), "eager")

    # ------------------------------------------------------------------ stages
    def features(self, audio: Tensor, audio_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Waveforms (B, S) at ``sample_rate`` -> feats (B, T, F), feat_lengths (B,)."""
        if self._features is None:
            feats, lengths = self.run("features", (audio, audio_lengths))
            return feats, lengths
        with torch.inference_mode():
            return self._features(audio, audio_lengths)

    def encode(self, feats: Tensor, feat_lengths: Tensor) -> dict[str, Tensor]:
        """Run the encoder graph; outputs by name (``log_probs`` / ``enc_proj`` / ``enc``, ``enc_lengths`` ...)."""
        from supernet.graphs import io_names

        outs = self.run("encoder", (feats, feat_lengths.long()))
        return dict(zip(io_names("encoder", self.arch.decoder)[1], outs))

    def transducer_search(self, batch: int) -> TransducerSearch:
        d = self.decoder
        return TransducerSearch(self.run, batch, d["predictor_layers"], d["predictor_width"], d["blank"], d["max_symbols"])

    def decode(self, encoded: dict[str, Tensor]) -> list[list[int]]:
        """Greedy token ids per utterance from the encoder outputs."""
        kind, lengths = self.arch.decoder, encoded["enc_lengths"]
        if kind == "ctc":
            return ctc_greedy_decode(encoded["log_probs"], lengths, self.decoder["blank"])
        if kind == "rnnt":
            return self.transducer_search(lengths.numel()).advance(encoded["enc_proj"], lengths)
        return attention_greedy(self.run, encoded["enc"], lengths, self.decoder["blank"], self.decoder["eos"])

    def text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    # ------------------------------------------------------------------ whole utterances
    def recognize(self, audio: Tensor, audio_lengths: Tensor) -> list[list[int]]:
        """Padded waveforms (B, S), lengths (B,) -> token ids per utterance."""
        return self.decode(self.encode(*self.features(audio, audio_lengths)))

    def transcribe(self, waves: Sequence[Tensor]) -> list[str]:
        """Texts of mono waveforms (each (S,), at ``sample_rate``), batched together."""
        if not waves:
            return []
        lengths = torch.tensor([w.numel() for w in waves], dtype=torch.long)
        audio = torch.zeros(len(waves), int(lengths.max()))
        for i, w in enumerate(waves):
            audio[i, : w.numel()] = w
        audio = audio.masked_fill(~lengths_to_mask(lengths, audio.size(1)), 0.0)
        return [self.text(ids) for ids in self.recognize(audio, lengths)]
