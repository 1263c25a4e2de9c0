"""Encoder blocks as residual stacks of units; the one definition of each block type.

A block is a list of (unit, residual scale): ``x <- x + scale * unit(x)``, then an optional final
LayerNorm. :data:`BLOCK_UNITS` is read both by the static :class:`EncoderLayer` and by the
supernet's mixed layer (``supernet.nn.mixed``), so the two cannot drift apart; :func:`unit_spec`
gives the static class and constructor arguments of a unit for a choice.

- conformer: macaron FFN (1/2), self-attention, convolution module, FFN (1/2), LayerNorm.
- transformer: self-attention, FFN (pre-norm).
- lstm / blstm: one (bi)LSTM branch.
- cnn: one ContextNet-style depthwise-separable convolution branch with squeeze-and-excitation.
- skip: no layer (elastic depth).

Every unit has the signature ``unit(x (B, T, D), mask (B, T), attn_mask (T, T) | None,
lengths (B,)) -> (B, T, D)``.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn

from supernet.nn.attention import ATTENTION_CLASSES
from supernet.nn.config import NetConfig
from supernet.nn.convolution import ConvModule, ConvSE
from supernet.nn.feedforward import FeedForward
from supernet.nn.recurrent import BLSTMUnit, LSTMUnit
from supernet.space import LayerArch

__all__ = ["BLOCK_UNITS", "FINAL_NORM_BLOCKS", "CAUSAL_BLOCKS", "unit_spec", "layer_units", "EncoderLayer"]

# (unit kind, residual scale) per block type, in order.
BLOCK_UNITS: dict[str, tuple[tuple[str, float], ...]] = {
    "conformer": (("ffn", 0.5), ("attention", 1.0), ("conv", 1.0), ("ffn", 0.5)),
    "transformer": (("attention", 1.0), ("ffn", 1.0)),
    "lstm": (("lstm", 1.0),),
    "blstm": (("blstm", 1.0),),
    "cnn": (("convse", 1.0),),
}
FINAL_NORM_BLOCKS = frozenset({"conformer"})
# Blocks that can run in a streaming (chunked) encoder; blstm needs the whole utterance.
CAUSAL_BLOCKS = frozenset({"conformer", "transformer", "lstm", "cnn"})


def unit_spec(kind: str, width: int, causal: bool, net: NetConfig, *, attention: str | None = None,
              heads: int | None = None, ffn_ratio: int | None = None, kernel: int | None = None,
              chunk: int = 0) -> tuple[type[nn.Module], dict[str, Any]]:
    """Static class and constructor arguments of one unit.

    Args:
        kind: "ffn", "attention", "conv", "convse", "lstm" or "blstm".
        width: encoder width D.
        causal: streaming arch (causal convolutions; full-context archs' are causal too when
            ``net.causal_full_context``).
        net: fixed hyper-parameters.
        attention, heads, ffn_ratio, kernel: the choices the unit kind uses.
        chunk: the streaming arch's chunk in encoder frames (only ``net.causal_conv: chunk``
            convolutions use it; it enters their arguments only then).
    """
    p = net.dropout
    if kind == "ffn":
        return FeedForward, {"d_model": width, "hidden": width * _need(ffn_ratio, "ffn_ratio", kind), "dropout": p}
    if kind == "attention":
        name = _need(attention, "attention", kind)
        if name not in ATTENTION_CLASSES:
            raise ValueError(f"attention {name!r} is unknown; allowed values: {', '.join(ATTENTION_CLASSES)}")
        kw: dict[str, Any] = {"d_model": width, "heads": _need(heads, "heads", kind), "dropout": p}
        if name == "local":
            kw["window"] = net.local_window
        return ATTENTION_CLASSES[name], kw
    if kind in ("conv", "convse"):
        kw = {"d_model": width, "kernel": _need(kernel, "kernel", kind), "causal": net.causal(causal), "dropout": p}
        if kind == "convse":
            kw["se_reduction"] = net.se_reduction
        kw["causal_mode"] = net.causal_conv
        if causal and net.causal_conv == "chunk":
            kw["chunk"] = chunk
        return (ConvModule if kind == "conv" else ConvSE), kw
    if kind == "lstm":
        return LSTMUnit, {"d_model": width, "dropout": p}
    if kind == "blstm":
        if causal:
            raise ValueError("blstm reads the whole utterance and cannot be used in a streaming arch (chunk > 0)")
        return BLSTMUnit, {"d_model": width, "dropout": p}
    raise ValueError(f"unknown unit kind {kind!r}")


def _need(value: Any, field: str, kind: str) -> Any:
    if value is None:
        raise ValueError(f"a {kind} unit needs {field} (got None)")
    return value


def layer_units(layer: LayerArch, width: int, causal: bool, net: NetConfig, chunk: int = 0
                ) -> list[tuple[type[nn.Module], dict[str, Any], float]]:
    """(class, kwargs, residual scale) of every unit of a non-skip layer (``chunk``: see unit_spec)."""
    if layer.block not in BLOCK_UNITS:
        raise ValueError(f"block {layer.block!r} has no units (skip layers are dropped, not built)")
    return [
        (*unit_spec(kind, width, causal, net, attention=layer.attention, heads=layer.heads,
                    ffn_ratio=layer.ffn_ratio, kernel=layer.kernel, chunk=chunk), scale)
        for kind, scale in BLOCK_UNITS[layer.block]
    ]


class EncoderLayer(nn.Module):
    """One static encoder layer: residual units, then an optional LayerNorm.

    Args:
        units: the branch modules, each ``unit(x, mask, attn_mask, lengths) -> (B, T, D)``.
        scales: residual scale of each unit.
        d_model: width D.
        final_norm: end with a LayerNorm (Conformer).

    Shapes:
        forward(x (B, T, D), mask (B, T), attn_mask (T, T) | None, lengths (B,)) -> (B, T, D)
    """

    def __init__(self, units: list[nn.Module], scales: list[float], d_model: int, final_norm: bool = False) -> None:
        super().__init__()
        if len(units) != len(scales):
            raise ValueError(f"{len(units)} units but {len(scales)} scales")
        self.units = nn.ModuleList(units)
        self.scales = [float(s) for s in scales]
        self.norm = nn.LayerNorm(d_model) if final_norm else nn.Identity()

    @classmethod
    def from_arch(cls, layer: LayerArch, width: int, causal: bool, net: NetConfig, chunk: int = 0) -> "EncoderLayer":
        """The static layer of one (non-skip) ``LayerArch`` (``chunk``: the streaming arch's, see unit_spec)."""
        units = layer_units(layer, width, causal, net, chunk)
        return cls([c(**kw) for c, kw, _ in units], [s for _, _, s in units], width, layer.block in FINAL_NORM_BLOCKS)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor) -> Tensor:
        for i, unit in enumerate(self.units):
            x = x + self.scales[i] * unit(x, mask, attn_mask, lengths)
        return self.norm(x)
