"""Decoder heads by name, and how an arch's decoder fields map to their constructors.

A head sits on the encoder output (B, T', D) and has three calls (see ``supernet.nn.ctc``):
``forward(enc, enc_lengths, targets, target_lengths)``, ``loss(outputs, ...)`` (no weights),
``decode(enc, enc_lengths)``. New tasks (e.g. a TTS mel decoder) add an entry to :data:`HEADS`
and :func:`head_spec`; the encoder does not change.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from supernet.nn.config import NetConfig
from supernet.nn.ctc import CTCHead
from supernet.nn.decoder import AttentionHead
from supernet.nn.transducer import TransducerHead
from supernet.space import Arch

__all__ = ["HEADS", "head_spec", "build_head"]

HEADS: dict[str, type[nn.Module]] = {"ctc": CTCHead, "rnnt": TransducerHead, "attention": AttentionHead}


def head_spec(decoder: str, decoder_layers: int | None, decoder_width: int | None, width: int, vocab_size: int,
              net: NetConfig) -> tuple[type[nn.Module], dict[str, Any]]:
    """Class and constructor arguments of a decoder head.

    Args:
        decoder: "ctc", "rnnt" or "attention".
        decoder_layers, decoder_width: predictor / decoder size (ignored for CTC).
        width: encoder width D.
        vocab_size: V, blank (0) included.
        net: fixed hyper-parameters.
    """
    if decoder not in HEADS:
        raise ValueError(f"decoder {decoder!r} is unknown; allowed values: {', '.join(HEADS)}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2 (blank + at least one token), got {vocab_size}")
    if decoder == "ctc":
        return CTCHead, {"d_model": width, "vocab_size": vocab_size}
    if decoder_layers is None or decoder_width is None:
        raise ValueError(f"a {decoder} decoder needs decoder_layers and decoder_width (got {decoder_layers}, {decoder_width})")
    if decoder == "rnnt":
        return TransducerHead, {"d_model": width, "vocab_size": vocab_size, "layers": decoder_layers,
                                "width": decoder_width, "dropout": net.dropout, "max_symbols": net.max_symbols}
    return AttentionHead, {"d_model": width, "vocab_size": vocab_size, "layers": decoder_layers, "width": decoder_width,
                           "heads": net.decoder_heads, "dropout": net.dropout, "ctc_weight": net.ctc_weight,
                           "label_smoothing": net.label_smoothing}


def build_head(arch: Arch, vocab_size: int, net: NetConfig) -> nn.Module:
    """The static decoder head of ``arch``."""
    cls, kw = head_spec(arch.decoder, arch.decoder_layers, arch.decoder_width, arch.width, vocab_size, net)
    return cls(**kw)
