"""Audio reading: soundfile for I/O, torchaudio for resampling.

torchaudio >= 2.9 has no audio I/O, so files are read with ``soundfile`` (libsndfile) and
resampled with ``torchaudio.functional.resample``. Every failure is an :class:`AudioError`
naming the file and the reason.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    import torch

__all__ = ["AudioError", "AudioInfo", "probe_audio", "read_audio", "load_audio", "write_wav"]

Mono = Literal["mix", "error"]


class AudioError(ValueError):
    """An audio file is missing, unreadable, truncated, empty or has an unusable layout."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says, after the truncation check."""

    sample_rate: int
    frames: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _wav_declared_frames(path: Path) -> tuple[int, int] | None:
    """(declared data bytes, bytes present) of a RIFF/WAVE file, or None if not applicable.

    libsndfile silently shortens a WAV whose ``data`` chunk claims more bytes than the file
    holds (an interrupted copy), so the header is compared with the file size here.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                present = size - (pos + 8)
                # 0 / 0xFFFFFFFF are "unknown length" markers written by streaming encoders.
                if csize in (0, 0xFFFFFFFF) and present > 0:
                    return None
                return csize, present
            pos += 8 + csize + (csize & 1)  # chunks are word aligned


def probe_audio(path: str | Path) -> AudioInfo:
    """Header information of an audio file; raises :class:`AudioError` if it is not usable.

    Detects: missing file, unreadable/unknown format, truncated WAV (header declares more
    frames than the file holds), and for compressed formats (FLAC, OGG, ...) a decode error
    anywhere in the stream (the file is decoded once to find out).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "audio file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(path, f"unreadable audio ({e})") from None
    frames = info.frames
    if info.format == "WAV":
        declared = _wav_declared_frames(path)
        if declared is not None:
            want, have = declared
            bpf = _bytes_per_frame(info)
            if want > have:
                raise AudioError(
                    path,
                    f"truncated audio: the header declares {want // bpf} frames but the file holds "
                    f"{have // bpf}; re-copy or re-export the file",
                )
    elif frames > 0:
        try:
            with sf.SoundFile(str(path)) as f:
                for _ in f.blocks(blocksize=1 << 16, dtype="int16"):
                    pass
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(path, f"unreadable or truncated audio ({e})") from None
    return AudioInfo(sample_rate=info.samplerate, frames=frames, channels=info.channels, format=info.format)


def _bytes_per_frame(info) -> int:
    bits = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
            "ULAW": 8, "ALAW": 8}.get(info.subtype, 16)
    return max(1, bits // 8 * info.channels)


def read_audio(path: str | Path, mono: Mono = "mix") -> tuple[np.ndarray, int]:
    """Read a whole file as float32 mono at its own rate.

    Args:
        path: audio file (anything libsndfile reads: WAV, FLAC, OGG, ...).
        mono: "mix" averages channels; "error" refuses multi-channel files.

    Returns:
        (samples (S,) float32 in [-1, 1], sample rate)
    """
    info = probe_audio(path)
    if info.frames == 0:
        raise AudioError(path, "zero-length audio (no samples)")
    if info.channels > 1 and mono == "error":
        raise AudioError(path, f"has {info.channels} channels and mono='error' refuses multi-channel "
                               "audio; use mono='mix' to average the channels, or split the file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"unreadable audio ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "zero-length audio (no samples)")
    # Averaging keeps the level of a dual-mono file unchanged.
    samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(samples, dtype=np.float32), sr


def load_audio(path: str | Path, sample_rate: int, mono: Mono = "mix") -> "torch.Tensor":
    """Read a file as a mono float32 tensor at ``sample_rate``.

    Args:
        path: audio file.
        sample_rate: target rate; other rates are resampled (torchaudio sinc interpolation).
        mono: "mix" averages channels; "error" raises :class:`AudioError` on multi-channel files.

    Returns:
        audio (S,) float32.
    """
    import torch
    import torchaudio.functional as AF

    samples, sr = read_audio(path, mono=mono)
    wave = torch.from_numpy(samples)
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave.contiguous()


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit PCM WAV atomically, clipping to [-1, 1] first.

    The int16 conversion is done here (not by libsndfile) so that clipping is explicit and the
    bytes depend only on the samples: corpus builds are byte-identical for a seed.
    """
    from supernet.utils import atomic_path

    x = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    pcm = np.round(x * 32767.0).astype("<i2")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, sample_rate, subtype="PCM_16", format="WAV")
