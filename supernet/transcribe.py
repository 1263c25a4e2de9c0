"""`supernet transcribe`: recognise audio files with an exported model (ONNX Runtime).

    supernet transcribe models/mobile a.wav b.flac            # prints "path<TAB>text" per file
    supernet transcribe models/mobile a.wav --stream --chunk-ms 160

Every file is read with soundfile, mixed to mono and resampled to the model's rate (any input
rate). A file that cannot be read is named in an error on stderr and the other files are still
transcribed; the exit status is then 1.

``--stream`` feeds each file in pieces of ``--chunk-ms`` (default: the arch's chunk) through
:class:`supernet.streaming.StreamingSession`: partial results and the processing time of each
piece go to stderr, the final transcript to stdout as above, and a summary line per file gives
the median / max time per piece and its real-time factor (time / piece duration).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

__all__ = ["register", "transcribe_files"]


def transcribe_files(model_dir: str | Path, files: list[str], *, backend: str = "onnx", threads: int = 1,
                     stream_ms: float | None = None, streaming: bool = False, out=None, err=None) -> int:
    """Transcribe ``files``; print ``path<TAB>text`` lines to ``out``; return the exit status.

    Args:
        model_dir: a model directory of ``supernet export``.
        files: audio files.
        backend: "onnx" (default) or "torchscript".
        threads: intra-op threads (ONNX Runtime and torch).
        streaming: chunk-by-chunk recognition with partial results on ``err``.
        stream_ms: audio per piece when streaming (default: the arch's chunk).
        out, err: streams (default stdout / stderr).
    """
    import torch

    from supernet.data.audio import AudioError, load_audio
    from supernet.runtime import ModelDirError, Recognizer

    out = out or sys.stdout
    err = err or sys.stderr
    torch.set_num_threads(threads)
    try:
        rec = Recognizer.load(model_dir, backend=backend, threads=threads)
    except ModelDirError as e:
        print(f"error: {e}", file=err)
        return 1
    if streaming and not rec.arch.streaming:
        print(f"error: {model_dir}: arch {rec.arch.describe()} is full-context (chunk 0) and cannot stream; "
              "drop --stream or export a streaming arch", file=err)
        return 1
    failed = 0
    for f in files:
        try:
            wave = load_audio(f, rec.sample_rate)
        except AudioError as e:
            print(f"error: {e}", file=err)
            failed += 1
            continue
        if streaming:
            text = _stream_one(rec, f, wave, stream_ms, err)
        else:
            text = rec.transcribe([wave])[0]
        print(f"{f}\t{text}", file=out, flush=True)
    if failed:
        print(f"error: {failed} of {len(files)} file(s) could not be read", file=err)
    return 1 if failed else 0


def _stream_one(rec, path: str, wave, chunk_ms: float | None, err) -> str:
    from supernet.streaming import stream

    def show(p) -> None:
        print(f"{path}\t{p.seconds:7.2f}s\t{p.ms:7.1f} ms\t{p.text}", file=err, flush=True)

    res = stream(rec, wave, chunk_ms, on_partial=show)
    steps = res.step_ms
    if steps:
        med = statistics.median(steps)
        cpu = statistics.median(res.step_cpu_ms)
        print(f"{path}\tper {res.chunk_ms:g} ms piece: median {med:.1f} ms (CPU {cpu:.1f} ms), max {max(steps):.1f} ms, "
              f"RTF {med / res.chunk_ms:.3f}; final flush {res.flush_ms:.1f} ms", file=err, flush=True)
    return res.text


def _positive(kind):
    def parse(text: str):
        v = kind(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet transcribe``."""
    p = subparsers.add_parser("transcribe", help="transcribe audio files with an exported model (ONNX Runtime)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="MODEL_DIR", help="model directory written by `supernet export`")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (any rate; mixed to mono)")
    p.add_argument("--backend", choices=("onnx", "torchscript"), default="onnx", help="graph runtime (default onnx)")
    p.add_argument("--threads", type=_positive(int), default=1, help="intra-op threads (default 1)")
    p.add_argument("--stream", action="store_true", help="chunk-by-chunk recognition with partial results on stderr")
    p.add_argument("--chunk-ms", type=_positive(float), default=None, help="audio per piece when streaming (default: the arch's chunk)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.chunk_ms is not None and not args.stream:
        print("error: --chunk-ms needs --stream", file=sys.stderr)
        return 2
    return transcribe_files(args.model_dir, args.files, backend=args.backend, threads=args.threads,
                            streaming=args.stream, stream_ms=args.chunk_ms)
