"""Chunk-by-chunk recognition with the arch's look-ahead, and streaming WER / chunk latency.

A streaming arch (``chunk > 0``) restricts every encoder frame to input up to the end of its own
chunk plus ``lookahead`` encoder frames (chunk attention masks, causal convolutions and LSTMs,
the look-ahead applied once in the subsampler). So once enough audio has arrived, the outputs of
a whole chunk are final: no later audio changes them.

:class:`StreamingSession` uses exactly that. Audio arrives in pieces of ``chunk_ms``; after each
piece the encoder graph runs on the whole prefix received so far (features included), and only
the frames that are final (:func:`final_frames`) are handed to the greedy search, which keeps
its state between pieces. At the end the rest is flushed. Hence the frames it emits equal the
frames of one full-utterance forward with the same masks, and the final text equals the
whole-utterance transcript (``tests/test_streaming.py`` checks both).

The price of re-running the prefix: the work per piece grows with the utterance (all past
frames are recomputed, as the unlimited left context of the chunk masks and the LSTM state
require). That is fine for utterances of seconds; a stateful cache (per-layer keys/values,
convolution tails, LSTM state) would make it constant and is the next step.

Decoders: CTC and RNN-T are frame-synchronous, so partial results grow frame by frame and are
prefixes of the final one. An attention decoder needs the whole encoder output: partial results
come from its CTC branch, the final one from the attention decoder at the end of the utterance.

:func:`evaluate_streaming` measures streaming WER and per-piece processing time over a set of
utterances (the report's figures per target).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from supernet.runtime import CTCSearch, Recognizer, attention_greedy

__all__ = ["final_frames", "StreamingSession", "Partial", "StreamResult", "stream", "evaluate_streaming",
           "StreamingEvaluation", "evaluate_for_target"]


def final_frames(samples: int, *, chunk: int, lookahead: int, subsampling: int, hop_length: int, win_length: int) -> int:
    """Leading encoder frames whose outputs no audio after ``samples`` can change (whole chunks only).

    Encoder frame t reads feature frames up to ``(t + lookahead) * subsampling``; feature frame m
    reads samples below ``m * hop_length + win_length // 2`` (centred windows). Attention lets a
    frame see the rest of its chunk, so a chunk is final when its last frame is.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 for streaming, got {chunk} (a full-context arch cannot stream)")
    reach = samples - win_length // 2
    if reach < 0:
        return 0
    last = reach // (subsampling * hop_length) - lookahead  # last frame index all of whose input is here
    return max(0, (last + 1) // chunk * chunk)


@dataclass
class Partial:
    """What one call of :meth:`StreamingSession.accept` / ``finish`` produced.

    Attributes:
        text: the transcript so far (final after ``finish``).
        frames: encoder frames final so far.
        seconds: audio received so far.
        ms: processing time of this call (features, encoder on the prefix, search), wall clock.
        cpu_ms: the same as process CPU time: on one thread, the latency an idle machine would
            show (a busy, shared machine inflates ``ms`` but not this).
    """

    text: str
    frames: int
    seconds: float
    ms: float
    cpu_ms: float = float("nan")


class StreamingSession:
    """One utterance recognised chunk by chunk (see the module docstring).

    Args:
        recognizer: an exported (or eager) model of a streaming arch.
        record: keep the emitted encoder outputs (``outputs``), e.g. to compare them with a
            full-utterance forward.

    Raises:
        ValueError: the arch is full-context (``chunk == 0``).
    """

    def __init__(self, recognizer: Recognizer, record: bool = False) -> None:
        arch = recognizer.arch
        if not arch.streaming:
            raise ValueError(f"arch {arch.id} ({arch.describe()}) is full-context (chunk 0): it sees the whole utterance "
                             "and cannot stream; export a streaming arch (chunk > 0)")
        self.rec = recognizer
        self.record = record
        net = recognizer.meta["net"]
        f = recognizer.meta["features"]
        self._geometry = dict(chunk=arch.chunk, lookahead=arch.lookahead or 0, subsampling=arch.subsampling,
                              hop_length=int(f["hop_length"]), win_length=int(f["win_length"]))
        self.sample_rate = int(net["sample_rate"])
        self._pieces: list[Tensor] = []
        self.samples = 0
        self.emitted = 0
        self.outputs: list[dict[str, Tensor]] = []
        self.partials: list[Partial] = []
        kind = arch.decoder
        blank = recognizer.decoder["blank"]
        self._ctc = CTCSearch(blank) if kind in ("ctc", "attention") else None
        self._rnnt = recognizer.transducer_search(1) if kind == "rnnt" else None
        self._final_text: str | None = None

    # ------------------------------------------------------------------ internals
    def _audio(self) -> Tensor:
        if len(self._pieces) > 1:
            self._pieces = [torch.cat(self._pieces)]
        return self._pieces[0]

    def _encode_prefix(self) -> dict[str, Tensor]:
        audio = self._audio()[None]
        feats, feat_lengths = self.rec.features(audio, torch.tensor([audio.size(1)]))
        return self.rec.encode(feats, feat_lengths)

    def _emit(self, encoded: dict[str, Tensor], upto: int) -> None:
        new = {k: v[:, self.emitted: upto] for k, v in encoded.items() if k != "enc_lengths"}
        if self.record:
            self.outputs.append(new)
        kind = self.rec.arch.decoder
        if kind == "ctc":
            self._ctc.advance(new["log_probs"][0])
        elif kind == "rnnt":
            self._rnnt.advance(new["enc_proj"])
        else:
            self._ctc.advance(new["ctc_log_probs"][0])
        self.emitted = upto

    def _tokens(self) -> list[int]:
        return self._rnnt.hyps[0] if self._rnnt is not None else self._ctc.tokens

    # ------------------------------------------------------------------ API
    @property
    def text(self) -> str:
        return self._final_text if self._final_text is not None else self.rec.text(self._tokens())

    def accept(self, piece: Tensor) -> Partial:
        """Take the next piece of audio ((S,) float at the model's rate); return the partial result."""
        if self._final_text is not None:
            raise RuntimeError("accept() after finish(): start a new StreamingSession for the next utterance")
        t0, c0 = time.perf_counter(), time.process_time()
        piece = piece.reshape(-1).float()
        if piece.numel():
            self._pieces.append(piece)
            self.samples += piece.numel()
        ready = final_frames(self.samples, **self._geometry)
        if ready > self.emitted:  # otherwise no new frame can be final: skip the encoder
            encoded = self._encode_prefix()
            upto = min(ready, int(encoded["enc_lengths"][0]))
            if upto > self.emitted:
                self._emit(encoded, upto)
        p = Partial(self.text, self.emitted, self.samples / self.sample_rate, 1e3 * (time.perf_counter() - t0),
                    1e3 * (time.process_time() - c0))
        self.partials.append(p)
        return p

    def finish(self) -> Partial:
        """End of the utterance: emit the remaining frames; the text is final."""
        if self._final_text is not None:
            return self.partials[-1]
        t0, c0 = time.perf_counter(), time.process_time()
        if self.samples == 0:
            raise ValueError("finish() before any audio: nothing to recognise")
        encoded = self._encode_prefix()
        total = int(encoded["enc_lengths"][0])
        if total > self.emitted:
            self._emit(encoded, total)
        if self.rec.arch.decoder == "attention":
            d = self.rec.decoder
            ids = attention_greedy(self.rec.run, encoded["enc"], encoded["enc_lengths"], d["blank"], d["eos"])[0]
            self._final_text = self.rec.text(ids)
        else:
            self._final_text = self.rec.text(self._tokens())
        p = Partial(self._final_text, self.emitted, self.samples / self.sample_rate, 1e3 * (time.perf_counter() - t0),
                    1e3 * (time.process_time() - c0))
        self.partials.append(p)
        return p

    def emitted_outputs(self) -> dict[str, Tensor]:
        """The recorded encoder outputs concatenated over time (needs ``record=True``)."""
        if not self.record:
            raise RuntimeError("outputs were not recorded; create the session with record=True")
        return {k: torch.cat([o[k] for o in self.outputs], dim=1) for k in self.outputs[0]}


@dataclass
class StreamResult:
    """One utterance streamed: final text, partial results, per-piece processing times."""

    text: str
    partials: list[Partial]
    chunk_ms: float

    @property
    def step_ms(self) -> list[float]:
        """Processing time of every piece (the final flush excluded)."""
        return [p.ms for p in self.partials[:-1]]

    @property
    def step_cpu_ms(self) -> list[float]:
        """CPU time of every piece (the final flush excluded)."""
        return [p.cpu_ms for p in self.partials[:-1]]

    @property
    def flush_ms(self) -> float:
        return self.partials[-1].ms


def _default_chunk_ms(rec: Recognizer) -> float:
    return float(rec.meta["streaming"]["chunk_ms"])


def stream(recognizer: Recognizer, wave: Tensor, chunk_ms: float | None = None,
           on_partial: Callable[[Partial], None] | None = None) -> StreamResult:
    """Recognise ``wave`` ((S,) at the model's rate) in pieces of ``chunk_ms`` (default: the arch's chunk).

    Args:
        recognizer: the model (streaming arch).
        wave: the audio.
        chunk_ms: audio per piece; pieces are fed as they would arrive from a microphone.
        on_partial: called after every piece and after the flush (e.g. to print partial results).
    """
    chunk_ms = _default_chunk_ms(recognizer) if chunk_ms is None else float(chunk_ms)
    if chunk_ms <= 0:
        raise ValueError(f"chunk_ms must be > 0, got {chunk_ms}")
    session = StreamingSession(recognizer)
    step = max(1, int(round(chunk_ms * session.sample_rate / 1000)))
    wave = wave.reshape(-1)
    for start in range(0, wave.numel(), step):
        p = session.accept(wave[start: start + step])
        if on_partial:
            on_partial(p)
    p = session.finish()
    if on_partial:
        on_partial(p)
    return StreamResult(session.text, session.partials, chunk_ms)


@dataclass
class StreamingEvaluation:
    """Streaming WER and per-piece latency of one model over a set of utterances.

    Attributes:
        wer, cer: of the streamed transcripts.
        full_wer, full_cer: of whole-utterance recognition with the same model (equal masks).
        same_as_full: share of utterances whose streamed transcript equals the whole-utterance one.
        chunk_ms: audio per piece.
        step_ms: median / p90 / max processing time per piece (wall clock, 1 call = features +
            encoder on the prefix + search), over every piece of every utterance.
        step_cpu_ms: the same in process CPU time (robust to a shared machine; 1 thread).
        flush_ms: median time of the end-of-utterance flush.
        rtf: median step time / chunk duration (below 1: keeps up with real time).
        utterances, backend, threads: what was measured.
    """

    wer: float
    cer: float
    full_wer: float
    full_cer: float
    same_as_full: float
    chunk_ms: float
    step_ms: dict[str, float]
    step_cpu_ms: dict[str, float]
    flush_ms: float
    rtf: float
    utterances: int
    backend: str
    threads: int
    what_timing_includes: str = "host features + encoder graph on the audio prefix + greedy search, per piece"
    hyps: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "hyps"}
        return d


def evaluate_streaming(recognizer: Recognizer, utterances: Iterable[tuple[Tensor, str]], *, chunk_ms: float | None = None,
                       threads: int = 1, progress: bool = False) -> StreamingEvaluation:
    """Stream every utterance and score it; also score whole-utterance recognition for comparison.

    Args:
        recognizer: the model (streaming arch); its backend decides what is timed.
        utterances: (wave (S,) at the model's rate, reference text) pairs.
        chunk_ms: audio per piece (default: the arch's chunk, e.g. 160 ms).
        threads: torch intra-op threads during the run (ONNX Runtime's come from the recognizer).
        progress: progress bar.
    """
    from tqdm import tqdm

    from supernet.metrics import cer, wer
    from supernet.profiling.timing import num_threads

    items = list(utterances)
    if not items:
        raise ValueError("evaluate_streaming needs at least one utterance")
    chunk_ms = _default_chunk_ms(recognizer) if chunk_ms is None else float(chunk_ms)
    hyps, full, refs, steps, cpu, flushes = [], [], [], [], [], []
    with num_threads(threads):
        stream(recognizer, items[0][0], chunk_ms)  # warm-up: sessions load lazily, allocators fill
        for wave, ref in tqdm(items, desc="stream", unit="utt", disable=not progress):
            res = stream(recognizer, wave, chunk_ms)
            hyps.append(res.text)
            steps += res.step_ms
            cpu += res.step_cpu_ms
            flushes.append(res.flush_ms)
            full.append(recognizer.transcribe([wave])[0])
            refs.append(ref)
    med = statistics.median(steps) if steps else float("nan")

    def stats(xs: list[float]) -> dict[str, float]:
        nan = float("nan")
        return {"median": statistics.median(xs) if xs else nan, "p90": float(np.quantile(xs, 0.9)) if xs else nan,
                "max": max(xs) if xs else nan}

    return StreamingEvaluation(
        wer=wer(hyps, refs), cer=cer(hyps, refs), full_wer=wer(full, refs), full_cer=cer(full, refs),
        same_as_full=sum(h == f for h, f in zip(hyps, full)) / len(items), chunk_ms=chunk_ms,
        step_ms=stats(steps), step_cpu_ms=stats(cpu),
        flush_ms=statistics.median(flushes), rtf=med / chunk_ms, utterances=len(items), backend=recognizer.backend,
        threads=threads, hyps=hyps,
    )


def evaluate_for_target(model_dir: str, target: Any, utterances: Sequence[tuple[Tensor, str]], *,
                        backend: str = "onnx", chunk_ms: float | None = None) -> dict[str, Any]:
    """:func:`evaluate_streaming` on ``target``'s thread count, with its chunk-latency limit checked.

    Args:
        model_dir: the exported model.
        target: a :class:`supernet.search.targets.Target` (``threads``, ``limits.chunk_latency_ms``).
        utterances: (wave, reference) pairs at the model's rate.
        backend: "onnx" (what deployment runs) or "torchscript".
        chunk_ms: audio per piece (default: the arch's chunk).

    Returns:
        ``StreamingEvaluation.to_dict()`` plus ``target``, ``chunk_latency_limit_ms`` and
        ``meets_chunk_latency`` (p90 step time within the limit; None without a limit).
    """
    rec = Recognizer.load(model_dir, backend=backend, threads=target.threads)
    ev = evaluate_streaming(rec, utterances, chunk_ms=chunk_ms, threads=target.threads).to_dict()
    limit = getattr(target.limits, "chunk_latency_ms", None)
    ev.update(target=target.name, chunk_latency_limit_ms=limit,
              meets_chunk_latency=None if limit is None else ev["step_ms"]["p90"] <= limit)
    return ev
