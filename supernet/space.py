"""Search space and architectures.

An :class:`Arch` is one point of a :class:`SearchSpace`: a frozen, hashable dataclass with a
canonical JSON form and a stable ``id``. It is passed explicitly to ``forward``; no module keeps
a hidden "active subnet".

Canonical form (so that counting counts distinct networks, not spellings of one network):
- fields that do not apply are ``None`` (an LSTM layer has no attention, heads, FFN or kernel; a
  CTC decoder has no decoder layers or width; a full-context arch has no look-ahead);
- ``skip`` layers (elastic depth) only appear as a suffix of ``layers``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

__all__ = ["LayerArch", "Arch", "BLOCKS", "ATTENTIONS", "FEATURES", "DECODERS", "BLOCK_FIELDS", "DECODER_FIELDS"]

FEATURES = ("logmel80", "logmel40", "mfcc40", "learnable")
BLOCKS = ("conformer", "transformer", "lstm", "blstm", "cnn", "skip")
ATTENTIONS = ("mha", "relpos", "local", "linear")
DECODERS = ("ctc", "rnnt", "attention")

# Which per-layer fields a block type uses; the others are None in canonical form.
BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "conformer": ("attention", "heads", "ffn_ratio", "kernel"),
    "transformer": ("attention", "heads", "ffn_ratio"),
    "lstm": (),
    "blstm": (),
    "cnn": ("kernel",),
    "skip": (),
}
# Which decoder fields a decoder type uses.
DECODER_FIELDS: dict[str, tuple[str, ...]] = {
    "ctc": (),
    "rnnt": ("decoder_layers", "decoder_width"),
    "attention": ("decoder_layers", "decoder_width"),
}


@dataclass(frozen=True)
class LayerArch:
    """One encoder layer's choices."""

    block: str
    attention: str | None = None
    heads: int | None = None
    ffn_ratio: int | None = None
    kernel: int | None = None


@dataclass(frozen=True)
class Arch:
    """One architecture of the space.

    Args:
        feature: front-end, one of FEATURES.
        subsampling: time reduction of the front-end (4, 6 or 8).
        width: encoder model dimension D.
        layers: one LayerArch per layer slot (max depth); skips only as a suffix.
        decoder: one of DECODERS.
        decoder_layers, decoder_width: RNN-T predictor / attention decoder size (None for CTC).
        chunk: streaming chunk size in encoder frames (after subsampling); 0 = full context.
        lookahead: encoder frames of right context a chunk may see (None when chunk == 0).
    """

    feature: str
    subsampling: int
    width: int
    layers: tuple[LayerArch, ...]
    decoder: str = "ctc"
    decoder_layers: int | None = None
    decoder_width: int | None = None
    chunk: int = 0
    lookahead: int | None = None

    @property
    def depth(self) -> int:
        """Number of non-skip layers."""
        return sum(1 for layer in self.layers if layer.block != "skip")

    @property
    def streaming(self) -> bool:
        return self.chunk > 0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace; the basis of ``id``."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        d = dict(d)
        d["layers"] = tuple(LayerArch(**layer) for layer in d["layers"])
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> "Arch":
        return cls.from_dict(json.loads(s))

    @property
    def id(self) -> str:
        """Stable 12-hex-digit id of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]
