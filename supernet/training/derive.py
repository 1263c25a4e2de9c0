"""Architectures derived from alpha: argmax, and the exact best arch under a budget.

Under alpha, an arch scores the sum of the log-probabilities of its decisions (the front-end
feature, then per layer slot the block, and the attention, heads, FFN ratio and kernel that the
block uses; a skipped slot scores log p(skip)). :func:`derive_under_budget` maximises that sum
subject to the summed predicted cost (latency from a lookup table, or parameters) with the
search space's dynamic programme over layers (``SearchSpace.best_arch``), so it is exact, not
greedy. The fields alpha does not relax (width, subsampling, streaming, decoder) are those of
``base``, as in training.

Note the argmax and the unconstrained DP can differ in depth: the argmax stops at the first
slot whose most likely block is ``skip`` (skips form a suffix), while the DP scores every
skipped slot with its own log p(skip), as the relaxed forward treats every slot's skip alone.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Optional

import torch

from supernet.space import BLOCK_FIELDS, Arch, BestArch, LayerArch, SearchSpace

__all__ = ["decision_log_probs", "alpha_scorers", "arch_log_prob", "derive_argmax", "derive_under_budget"]

# Fields of a head that alpha does not relax: a derived arch keeps base's values.
_FIXED = ("subsampling", "width", "chunk", "lookahead", "decoder", "decoder_layers", "decoder_width")


def decision_log_probs(net: Any, base: Arch) -> dict[str, dict[Any, float]]:
    """log softmax(alpha) per decision, over the candidates valid for ``base`` (width, streaming)."""
    with torch.no_grad():
        mixture = net.sample_mixture("relaxed", base)
    return {name: {v: _log(float(w)) for v, w in zip(d.values, d.weights)} for name, d in mixture.decisions.items()}


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def alpha_scorers(net: Any, base: Arch) -> tuple[Callable[[Arch], float], Callable[[int, LayerArch, Arch], float]]:
    """(head_score, layer_score) under alpha, in the form ``SearchSpace.best_arch`` takes.

    ``head_score(head)`` is log p(feature), or -inf when a field alpha does not relax differs
    from ``base``; ``layer_score(i, layer, head)`` sums the log-probabilities of the layer's block
    and of the fields that block uses.
    """
    lp = decision_log_probs(net, base)

    def head_score(head: Arch) -> float:
        if any(getattr(head, f) != getattr(base, f) for f in _FIXED):
            return -math.inf
        return lp["feature"].get(head.feature, -math.inf)

    def layer_score(i: int, layer: LayerArch, head: Arch) -> float:
        block = lp.get(f"layers.{i}.block")
        if block is None:
            return -math.inf
        if layer.block == "skip" and "skip" not in block:
            return 0.0  # a slot that cannot be skipped; the DP never ends the arch before it
        s = block.get(layer.block, -math.inf)
        for f in BLOCK_FIELDS[layer.block]:
            s += lp.get(f"layers.{i}.{f}", {}).get(getattr(layer, f), -math.inf)
        return s

    return head_score, layer_score


def arch_log_prob(net: Any, arch: Arch, base: Optional[Arch] = None) -> float:
    """The score :func:`derive_under_budget` maximises, for one arch (-inf if alpha cannot give it)."""
    base = base if base is not None else net.largest_arch()
    head_score, layer_score = alpha_scorers(net, base)
    head = replace(arch, layers=())
    return head_score(head) + sum(layer_score(i, la, head) for i, la in enumerate(arch.layers))


def derive_argmax(net: Any, base: Optional[Arch] = None) -> Arch:
    """The most likely value of every decision (``SpeechSupernet.derive_argmax``)."""
    return net.derive_argmax(base)


def derive_under_budget(net: Any, space: SearchSpace, budget: float, head_cost: Callable[[Arch], float],
                        layer_cost: Callable[[LayerArch, Arch], float], base: Optional[Arch] = None,
                        resolution: float = 1.0) -> Optional[BestArch]:
    """The arch of highest summed log-probability whose summed cost fits ``budget``.

    Args:
        net: the trained supernet (its alpha).
        space: the search space it was trained on.
        budget: largest allowed cost (same units as the cost functions).
        head_cost: ``f(head) -> cost`` of the front-end and decoder (e.g. ``LatencyLUT.head_ms``).
        layer_cost: ``f(layer, head) -> cost`` of one layer (e.g. ``LatencyLUT.layer_ms``).
        base: fixed fields (default: the supernet's largest arch).
        resolution: DP cost unit (1 for parameters, 1e-3 for milliseconds).

    Returns:
        :class:`~supernet.space.BestArch` (arch, score = summed log-probability, cost), or None
        when nothing fits.
    """
    base = base if base is not None else net.largest_arch()
    head_score, layer_score = alpha_scorers(net, base)
    return space.best_arch(layer_score, lambda i, la, h: layer_cost(la, h), budget, head_score=head_score,
                           head_cost=head_cost, resolution=resolution)
