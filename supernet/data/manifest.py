"""JSONL manifests (the NeMo convention) and the checks every corpus goes through.

One utterance per line::

    {"audio_filepath": "wav/a.wav", "duration": 1.93, "text": "three one four", "lang": "en"}

Required: ``audio_filepath``, ``duration`` (seconds), ``text``. Optional: ``id`` (default
``<manifest stem>-<line>``), ``lang`` (default "en"), ``speaker``. Other keys are ignored, so
NeMo manifests work as they are. Relative audio paths are relative to the manifest's folder.

:func:`inspect_manifest` finds every entry that cannot be used, with one reason per line, so that
``supernet data check`` and training refuse bad data with the same messages.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from supernet.data.audio import AudioError, probe_audio
from supernet.data.tokenizer import CharTokenizer, Tokenizer, normalize_text

__all__ = [
    "Utterance",
    "Problem",
    "ManifestError",
    "ManifestReport",
    "read_manifest",
    "write_manifest",
    "inspect_manifest",
    "check_manifest",
    "import_kaldi",
]

# Manifest duration and real audio length may differ this much before a note is written.
_DURATION_TOLERANCE_S = 0.05


class ManifestError(ValueError):
    """A manifest (or Kaldi data dir) is malformed; the message names file:line and the field."""


@dataclass(frozen=True)
class Utterance:
    """One manifest entry; ``audio_filepath`` is absolute once read."""

    id: str
    audio_filepath: str
    duration: float
    text: str
    lang: str = "en"
    speaker: str | None = None


@dataclass(frozen=True)
class Problem:
    """Why manifest line ``line`` cannot be used (or, as a note, what will happen to it).

    ``str(problem)`` is the line ``supernet data check`` prints: ``MANIFEST:LINE: FILE: REASON``.
    """

    line: int
    file: str
    reason: str
    manifest: str = ""

    def __str__(self) -> str:
        return f"{self.manifest}:{self.line}: {self.file}: {self.reason}"


@dataclass
class ManifestReport:
    """Result of :func:`inspect_manifest`.

    Attributes:
        path: the manifest.
        entries: (line, Utterance) of every usable entry, in file order.
        problems: one :class:`Problem` per unusable line.
        notes: things that are fine but worth saying (resampling, mixing down, wrong duration).
        raw_lines: line number -> raw text of each problem line (to list skipped entries).
    """

    path: Path
    entries: list[tuple[int, Utterance]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    raw_lines: dict[int, str] = field(default_factory=dict)

    @property
    def utterances(self) -> list[Utterance]:
        return [u for _, u in self.entries]

    @property
    def ok(self) -> bool:
        return not self.problems


def _type_error(name: str, want: str, value: object) -> str:
    return f"field '{name}' must be {want}, got {value!r}"


def _parse_line(raw: bytes, lineno: int, path: Path) -> tuple[Utterance | None, list[str], str]:
    """Parse one line. Returns (utterance or None, reasons it is bad, decoded text)."""
    encoding: list[str] = []
    reasons: list[str] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        encoding.append(
            f"text is not valid UTF-8 (byte 0x{raw[e.start]:02X} at column {e.start + 1}); "
            "re-encode the manifest as UTF-8"
        )
        text = raw.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        why = f"malformed JSON ({e.msg} at column {e.colno}); each line must be one JSON object"
        return None, encoding + [why], text
    if not isinstance(obj, dict):
        why = f"line is JSON {type(obj).__name__}, not an object with audio_filepath/duration/text"
        return None, encoding + [why], text
    for name in ("audio_filepath", "duration", "text"):
        if name not in obj:
            reasons.append(f"missing field '{name}'")
    fp, dur, txt = obj.get("audio_filepath"), obj.get("duration"), obj.get("text")
    if "audio_filepath" in obj and (not isinstance(fp, str) or not fp):
        reasons.append(_type_error("audio_filepath", "a non-empty string", fp))
    if "duration" in obj and (isinstance(dur, bool) or not isinstance(dur, (int, float))
                              or not math.isfinite(dur) or dur < 0):
        reasons.append(_type_error("duration", "a number of seconds >= 0", dur))
    if "text" in obj and not isinstance(txt, str):
        reasons.append(_type_error("text", "a string", txt))
    uid, lang, spk = obj.get("id"), obj.get("lang", "en"), obj.get("speaker")
    if uid is not None and not isinstance(uid, (str, int)):
        reasons.append(_type_error("id", "a string", uid))
    if not isinstance(lang, str) or not lang:
        reasons.append(_type_error("lang", "a language code string such as 'en'", lang))
    if spk is not None and not isinstance(spk, (str, int)):
        reasons.append(_type_error("speaker", "a string or null", spk))
    if reasons:
        return None, encoding + reasons, text
    audio = Path(os.path.expanduser(fp))
    if not audio.is_absolute():
        audio = path.parent / audio
    utt = Utterance(
        id=str(uid) if uid is not None else f"{path.stem}-{lineno}",
        audio_filepath=str(audio.resolve()),
        duration=float(dur),
        text=txt,
        lang=lang,
        speaker=None if spk is None else str(spk),
    )
    # Bad bytes make the entry unusable but the rest of it can still be checked.
    return utt, encoding, text


def _lines(path: Path) -> Iterable[tuple[int, bytes]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a directory, expected a JSONL manifest file") from None
    for i, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if raw.strip():
            yield i, raw


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSONL manifest; the first malformed line raises :class:`ManifestError`.

    Only the format is checked here (JSON, fields, types, unique ids), not the audio: use
    :func:`check_manifest` for that.
    """
    path = Path(path)
    out: list[Utterance] = []
    seen: dict[str, int] = {}
    for lineno, raw in _lines(path):
        utt, reasons, _ = _parse_line(raw, lineno, path)
        if reasons:
            raise ManifestError(f"{path}:{lineno}: {'; '.join(reasons)}")
        if utt.id in seen:
            raise ManifestError(
                f"{path}:{lineno}: duplicate id {utt.id!r} (first on line {seen[utt.id]}); ids must be unique")
        seen[utt.id] = lineno
        out.append(utt)
    return out


def write_manifest(path: str | Path, utts: Iterable[Utterance], relative: bool = True) -> Path:
    """Write utterances as JSONL, atomically.

    Args:
        path: output manifest.
        utts: utterances.
        relative: write audio paths inside the manifest's folder relative to it, so that a
            corpus folder can be moved as a whole.

    Relative ``audio_filepath`` values are taken relative to the current directory (as ``open``
    does) and resolved first, since the manifest's readers resolve against its own folder.
    """
    from supernet.utils import atomic_write

    path = Path(path)
    base = path.parent.resolve()
    with atomic_write(path, "w", encoding="utf-8") as f:
        for u in utts:
            fp = Path(u.audio_filepath).resolve()
            if relative and fp.is_absolute() and fp.is_relative_to(base):
                fp = fp.relative_to(base)
            row = {"id": u.id, "audio_filepath": fp.as_posix(), "duration": u.duration, "text": u.text,
                   "lang": u.lang}
            if u.speaker is not None:
                row["speaker"] = u.speaker
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _check_text(text: str, tokenizer: Tokenizer | None) -> list[str]:
    if not text.strip():
        return ["empty text (the transcript is blank); add the transcript or remove the entry"]
    norm = normalize_text(text)
    if not norm:
        return [f"empty text after normalisation ({text!r} has no letters or digits)"]
    if tokenizer is None or not tokenizer.unknown(norm):
        return []
    fix = ("fix the transcript, or build the word tokenizer from training text that contains them (or use "
           "`tokenizer: char`)" if tokenizer.unit == "word" else
           "fix the transcript or build the tokenizer from training text that contains them")
    return [f"{tokenizer.unit}s not in the vocabulary (after normalisation): {tokenizer.describe_unknown(norm)}; {fix}"]


def _check_audio(utt: Utterance, sample_rate: int, mono: str) -> tuple[list[str], list[str]]:
    try:
        info = probe_audio(utt.audio_filepath)
    except AudioError as e:
        return [e.reason], []
    if info.frames == 0:
        return ["zero-length audio (no samples)"], []
    problems, notes = [], []
    if info.channels > 1:
        if mono == "error":
            problems.append(f"has {info.channels} channels; mono='error' refuses multi-channel audio "
                            "(use --mono mix / mono: mix to average the channels)")
        else:
            notes.append(f"has {info.channels} channels: will be mixed down to mono (channel average)")
    if info.sample_rate != sample_rate:
        notes.append(f"sample rate {info.sample_rate} Hz: will be resampled to {sample_rate} Hz")
    if abs(info.duration - utt.duration) > max(_DURATION_TOLERANCE_S, 0.05 * info.duration):
        notes.append(f"manifest duration {utt.duration:.3f} s but the audio lasts {info.duration:.3f} s; "
                     "the audio length is used")
    return problems, notes


def inspect_manifest(
    path: str | Path,
    sample_rate: int = 16000,
    vocab: set[str] | Tokenizer | None = None,
    mono: Literal["mix", "error"] = "mix",
    progress: bool = False,
) -> ManifestReport:
    """Check every entry of a manifest: format, audio and text.

    Problems (entry unusable): malformed JSON / missing or ill-typed field, non-UTF-8 bytes,
    duplicate id, missing file, unreadable or truncated audio, zero-length audio, several
    channels when ``mono="error"``, empty text, characters (or words) outside ``vocab`` after normalisation.
    Notes (entry usable): another sample rate (resampled), several channels with ``mono="mix"``
    (mixed down), manifest duration differing from the audio.

    Args:
        path: JSONL manifest.
        sample_rate: the rate training reads audio at.
        vocab: if given, the tokenizer the text must fit (or a set of the characters it knows).
        mono: "mix" or "error", as :func:`supernet.data.audio.load_audio`.
        progress: show a progress bar.
    """
    if mono not in ("mix", "error"):
        raise ValueError(f"mono must be 'mix' or 'error', got {mono!r}")
    tokenizer = CharTokenizer(sorted(vocab)) if isinstance(vocab, (set, frozenset)) else vocab
    path = Path(path)
    report = ManifestReport(path=path)
    seen: dict[str, int] = {}
    lines = list(_lines(path))
    if progress:
        from tqdm import tqdm

        lines = tqdm(lines, desc=f"check {path.name}", unit="utt", leave=False)
    for lineno, raw in lines:
        utt, reasons, text = _parse_line(raw, lineno, path)
        notes: list[str] = []
        if utt is not None:
            if utt.id in seen:
                reasons.append(f"duplicate id {utt.id!r} (first on line {seen[utt.id]}); ids must be unique")
            seen.setdefault(utt.id, lineno)
            audio_problems, notes = _check_audio(utt, sample_rate, mono)
            reasons += audio_problems + _check_text(utt.text, tokenizer)
        file = utt.audio_filepath if utt is not None else "-"
        if reasons:
            report.problems.append(Problem(lineno, file, "; ".join(reasons), str(path)))
            report.raw_lines[lineno] = text
        else:
            report.entries.append((lineno, utt))
            report.notes += [Problem(lineno, file, n, str(path)) for n in notes]
    return report


def check_manifest(
    path: str | Path,
    sample_rate: int = 16000,
    vocab: set[str] | Tokenizer | None = None,
    mono: Literal["mix", "error"] = "mix",
) -> list[Problem]:
    """Problems of a manifest, one per unusable line (empty list: every entry is usable).

    See :func:`inspect_manifest` for what is checked and for the notes.
    """
    return inspect_manifest(path, sample_rate=sample_rate, vocab=vocab, mono=mono).problems


# ----------------------------------------------------------------------------- Kaldi import


def _read_kaldi_map(path: Path, required: bool) -> dict[str, tuple[int, str]]:
    """Kaldi 'key value...' file -> {key: (line, value)}."""
    if not path.is_file():
        if required:
            raise ManifestError(f"{path}: missing; a Kaldi data dir needs wav.scp and text")
        return {}
    out: dict[str, tuple[int, str]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if key in out:
            raise ManifestError(f"{path}:{i}: duplicate key {key!r} (first on line {out[key][0]})")
        out[key] = (i, value.strip())
    return out


def _is_ark_offset(rx: str) -> bool:
    head, sep, tail = rx.rpartition(":")
    return bool(sep) and tail.isdigit() and head.endswith(".ark")


def import_kaldi(data_dir: str | Path, out_manifest: str | Path, lang: str = "en",
                 root: str | Path | None = None) -> list[Utterance]:
    """Convert a Kaldi data directory to a JSONL manifest.

    Reads ``wav.scp`` (plain file paths only), ``text``, and optionally ``utt2spk`` and
    ``utt2lang``; durations are computed from the audio with soundfile. Nothing is written if any
    entry is bad.

    Args:
        data_dir: Kaldi data dir.
        out_manifest: JSONL manifest to write.
        lang: language of utterances without a ``utt2lang`` entry.
        root: folder that relative wav.scp paths are relative to; Kaldi's convention is the
            recipe directory, i.e. the current directory (default).

    Raises:
        ManifestError: piped commands or ark offsets in wav.scp, a ``segments`` file, missing
            audio, utterances without transcript (or the reverse).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ManifestError(f"{data_dir}: not a directory; pass a Kaldi data dir holding wav.scp and text")
    if (data_dir / "segments").exists():
        raise ManifestError(
            f"{data_dir / 'segments'}: segment files are not supported (manifests hold whole files); "
            "cut the segments into separate audio files first (e.g. Kaldi extract-segments or sox trim)"
        )
    root = Path(root) if root is not None else Path.cwd()
    wavs = _read_kaldi_map(data_dir / "wav.scp", required=True)
    texts = _read_kaldi_map(data_dir / "text", required=True)
    spk = _read_kaldi_map(data_dir / "utt2spk", required=False)
    langs = _read_kaldi_map(data_dir / "utt2lang", required=False)
    errors: list[str] = []
    scp = data_dir / "wav.scp"
    for utt in sorted(set(texts) - set(wavs)):
        errors.append(f"{data_dir / 'text'}:{texts[utt][0]}: utterance {utt!r} has a transcript but no wav.scp entry")
    utts: list[Utterance] = []
    for utt in sorted(wavs):
        line, rx = wavs[utt]
        if rx.endswith("|") or rx.startswith("-") or " |" in rx:
            errors.append(f"{scp}:{line}: utterance {utt!r} is a piped command ({rx!r}); only plain audio file "
                          "paths are supported: write the audio to files first (e.g. with sox or wav-copy)")
            continue
        if _is_ark_offset(rx):
            errors.append(f"{scp}:{line}: utterance {utt!r} points into an archive ({rx!r}); only plain audio "
                          "file paths are supported: extract the audio with wav-copy first")
            continue
        if utt not in texts:
            errors.append(f"{scp}:{line}: utterance {utt!r} has no transcript in {data_dir / 'text'}")
            continue
        audio = Path(rx) if Path(rx).is_absolute() else root / rx
        try:
            info = probe_audio(audio)
        except AudioError as e:
            errors.append(f"{scp}:{line}: utterance {utt!r}: {e}")
            continue
        utts.append(Utterance(
            id=utt,
            audio_filepath=str(audio.resolve()),
            duration=round(info.duration, 4),
            text=texts[utt][1],
            lang=langs[utt][1] if utt in langs else lang,
            speaker=spk[utt][1] if utt in spk else None,
        ))
    if errors:
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else "")
        n = len(errors)
        raise ManifestError(f"{data_dir}: cannot import {n} entr{'y' if n == 1 else 'ies'}:\n  {shown}")
    write_manifest(out_manifest, utts)
    return utts
