"""The supernet's layer slot: every block type and attention type, elastic in every size.

A :class:`MixedLayer` holds one candidate module per block type (and, inside attention units,
one per attention type), each an :class:`~supernet.nn.elastic.Elastic` unit at the largest width,
heads, FFN ratio and kernel. It is used two ways:

- discrete: :meth:`MixedLayer.plan` tells which elastic unit supplies the weights of each unit of
  the static :class:`~supernet.nn.blocks.EncoderLayer` of a ``LayerArch``; the supernet runs that
  static layer on the sliced weights (so discrete forward == extracted forward);
- relaxed / sampled: :meth:`MixedLayer.forward` follows :data:`~supernet.nn.blocks.BLOCK_UNITS`
  and mixes candidates where each decision acts: block outputs by the block decision, attention
  branches by attention type and heads, FFN branches by FFN ratio, convolution branches by kernel.
  A :class:`Decision` with an ``index`` (a hard Gumbel sample) runs only that candidate.

A :class:`Mixture` holds the decisions of one relaxed or sampled forward, by name, and turns them
into a hard :class:`~supernet.space.Arch`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Optional

from torch import Tensor, nn

from supernet.nn.blocks import BLOCK_UNITS, FINAL_NORM_BLOCKS, unit_spec
from supernet.nn.config import NetConfig
from supernet.nn.elastic import Elastic
from supernet.space import BLOCK_FIELDS, SKIP, Arch, LayerArch, LayerChoices

__all__ = ["Decision", "Mixture", "MixedLayer"]


@dataclass
class Decision:
    """One decision of a relaxed or sampled forward.

    Args:
        values: the candidate values, e.g. ``("conformer", "lstm", "skip")``.
        weights: (n,) mixing weights (softmax(alpha), or a straight-through one-hot).
        index: a hard sample (GDAS): only ``values[index]`` runs, scaled by ``weights[index]``
            (1 in value, carrying the gradient to alpha). None: every candidate runs (DARTS).
    """

    values: tuple
    weights: Tensor
    index: Optional[int] = None

    def mix(self, fn: Callable[[Any], Tensor]) -> Tensor:
        """sum_i weights[i] * fn(values[i]) (only the sampled term when ``index`` is set)."""
        if self.index is not None:
            return self.weights[self.index] * fn(self.values[self.index])
        out: Optional[Tensor] = None
        for value, w in zip(self.values, self.weights):
            y = w * fn(value)
            out = y if out is None else out + y
        if out is None:
            raise ValueError("a decision with no candidates cannot be mixed")
        return out

    @property
    def best(self) -> Any:
        """The sampled value, or the one of largest weight."""
        return self.values[self.index if self.index is not None else int(self.weights.argmax())]


@dataclass
class Mixture:
    """The decisions of one relaxed or sampled forward, by name (see ``SupernetConfig.decisions``)."""

    decisions: dict[str, Decision]

    def layer(self, i: int) -> dict[str, Decision]:
        """Slot ``i``'s decisions by field ("block", "attention", ...)."""
        prefix = f"layers.{i}."
        return {k[len(prefix):]: d for k, d in self.decisions.items() if k.startswith(prefix)}

    def arch(self, base: Arch) -> Arch:
        """The hard architecture: sampled (gumbel) or largest-weight (relaxed) value per decision.

        Subsampling, width, decoder, chunk and look-ahead come from ``base``. Slots after the
        first ``skip`` are skipped.
        """
        layers: list[LayerArch] = []
        n = sum(1 for k in self.decisions if k.endswith(".block"))
        for i in range(n):
            d = self.layer(i)
            block = d["block"].best
            if block == "skip" or (layers and layers[-1].block == "skip"):
                layers.append(SKIP)
                continue
            layers.append(LayerArch(block, **{f: d[f].best for f in BLOCK_FIELDS[block]}))
        return replace(base, feature=self.decisions["feature"].best, layers=tuple(layers))


class _BlockCandidates(nn.Module):
    """Elastic units of one block type in one slot (attention units: one per attention type)."""

    def __init__(self, block: str, choices: LayerChoices, width: int, net: NetConfig) -> None:
        super().__init__()
        big = {"ffn_ratio": max(choices.ffn_ratio, default=None), "kernel": max(choices.kernel, default=None)}
        # heads=1 for the stored attention: heads change no weight shape, and 1 divides any width
        self.units = nn.ModuleList()
        for kind, _ in BLOCK_UNITS[block]:
            if kind == "attention":
                self.units.append(nn.ModuleDict({a: _elastic(kind, width, net, attention=a, heads=1) for a in choices.attention}))
            else:
                self.units.append(_elastic(kind, width, net, ffn_ratio=big["ffn_ratio"], kernel=big["kernel"]))
        self.norm = Elastic(nn.LayerNorm, normalized_shape=width) if block in FINAL_NORM_BLOCKS else None


def _elastic(kind: str, width: int, net: NetConfig, **choice: Any) -> Elastic:
    cls, kw = unit_spec(kind, width, False, net, **choice)
    return Elastic(cls, **kw)


class MixedLayer(nn.Module):
    """One encoder layer slot of the supernet.

    Args:
        choices: the slot's candidates (``block`` lists ``skip`` if the slot can be skipped).
        width: largest encoder width D.
        net: fixed hyper-parameters.
    """

    def __init__(self, choices: LayerChoices, width: int, net: NetConfig) -> None:
        super().__init__()
        self.choices = choices
        self.net = net
        self.blocks = nn.ModuleDict({b: _BlockCandidates(b, choices, width, net) for b in choices.block if b != "skip"})

    def plan(self, layer: LayerArch, prefix: str) -> list[tuple[str, Elastic]]:
        """(name in the static ``EncoderLayer``, elastic unit holding its weights) for ``layer``."""
        if layer.block not in self.blocks:
            raise ValueError(f"block {layer.block!r} is not a candidate of this slot; allowed: {list(self.blocks)}")
        cand = self.blocks[layer.block]
        out = []
        for j, (kind, _) in enumerate(BLOCK_UNITS[layer.block]):
            unit = cand.units[j]
            if kind == "attention":
                if layer.attention not in unit:
                    raise ValueError(f"attention {layer.attention!r} is not a candidate of this slot; allowed: {list(unit)}")
                unit = unit[layer.attention]
            out.append((f"{prefix}.units.{j}", unit))
        if cand.norm is not None:
            out.append((f"{prefix}.norm", cand.norm))
        return out

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor,
                decisions: Mapping[str, Decision], width: int, causal: bool, chunk: int = 0) -> Tensor:
        """Relaxed / sampled layer.

        Args:
            x: (B, T, D) with D = ``width``.
            mask, attn_mask, lengths: as every unit takes them.
            decisions: this slot's decisions by field: "block" and, where used, "attention",
                "heads", "ffn_ratio", "kernel".
            width: encoder width of this forward.
            causal: streaming (causal convolutions).
            chunk: the streaming arch's chunk in frames (``causal_conv: chunk`` convolutions).

        Returns:
            (B, T, D): sum over blocks of weight * block output (``skip``: x itself).
        """
        def run_block(block: str) -> Tensor:
            if block == "skip":
                return x
            return self._block(block, x, mask, attn_mask, lengths, decisions, width, causal, chunk)

        return decisions["block"].mix(run_block)

    def _block(self, block: str, x: Tensor, mask: Tensor, attn_mask: Optional[Tensor], lengths: Tensor,
               d: Mapping[str, Decision], width: int, causal: bool, chunk: int = 0) -> Tensor:
        cand = self.blocks[block]
        for j, (kind, scale) in enumerate(BLOCK_UNITS[block]):
            unit = cand.units[j]

            def run(unit: nn.Module = unit, kind: str = kind, h: Tensor = x, **choice: Any) -> Tensor:
                _, kw = unit_spec(kind, width, causal, self.net, chunk=chunk, **choice)
                elastic = unit[choice["attention"]] if kind == "attention" else unit
                return elastic(kw, h, mask, attn_mask, lengths)

            if kind == "attention":
                branch = d["attention"].mix(lambda a: d["heads"].mix(lambda n: run(attention=a, heads=n)))
            elif kind == "ffn":
                branch = d["ffn_ratio"].mix(lambda r: run(ffn_ratio=r))
            elif kind in ("conv", "convse"):
                branch = d["kernel"].mix(lambda k: run(kernel=k))
            else:
                branch = run()
            x = x + scale * branch
        if cand.norm is not None:
            x = cand.norm({"normalized_shape": width}, x)
        return x
