"""Loss terms of supernet training besides the heads' own: distillation and expected cost.

- :func:`distill_loss`: in-place distillation (BigNAS) of a path from the largest path's output
  posteriors, a KL divergence per valid output position (frames for CTC; lattice nodes for
  RNN-T; frames and decoder positions for the attention head), teacher detached.
- :class:`ExpectedCost`: E_alpha[cost] of the relaxed architecture, differentiable in alpha,
  from a latency lookup table or exact parameter counts (the hardware-aware term of FBNet /
  ProxylessNAS, summed per layer as the search space's DP does).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from supernet.space import BLOCK_FIELDS, Arch, LayerArch

__all__ = ["posterior_parts", "distill_loss", "ExpectedCost", "params_cost", "latency_cost"]


def _frame_mask(lengths: Tensor, T: int) -> Tensor:
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def posterior_parts(decoder: str, outputs: Any, enc_lengths: Tensor, target_lengths: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(scores, mask) pairs whose softmax over the last dimension are a head's output posteriors.

    Args:
        decoder: the head type ("ctc", "rnnt", "attention").
        outputs: what ``SpeechSupernet.head_outputs`` returned.
        enc_lengths: (B,) encoder frames; target_lengths: (B,) tokens.

    Returns:
        ctc: [(log-probs (B, T, V), frame mask (B, T))]; rnnt: [(joint (B, T, U+1, V), (B, T, U+1))];
        attention: the CTC branch and the decoder logits (B, U+1, V+1) with their masks.
    """
    if decoder == "ctc":
        return [(outputs, _frame_mask(enc_lengths, outputs.size(1)))]
    if decoder == "rnnt":
        T, U1 = outputs.shape[1:3]
        mask = _frame_mask(enc_lengths, T)[:, :, None] & _frame_mask(target_lengths + 1, U1)[:, None, :]
        return [(outputs, mask)]
    if decoder == "attention":
        ctc, logits = outputs
        return [(ctc, _frame_mask(enc_lengths, ctc.size(1))), (logits, _frame_mask(target_lengths + 1, logits.size(1)))]
    raise ValueError(f"decoder {decoder!r} has no known posteriors; allowed: ctc, rnnt, attention")


def distill_loss(student: list[tuple[Tensor, Tensor]], teacher: list[tuple[Tensor, Tensor]],
                 temperature: float = 1.0) -> Optional[Tensor]:
    """Mean over valid positions of KL(teacher || student), times T^2 (Hinton et al.).

    Returns None when the two do not line up (another decoder, frame rate or vocabulary):
    the caller trains that path on labels alone and counts it.
    """
    if len(student) != len(teacher) or any(s.shape != t.shape for (s, _), (t, _) in zip(student, teacher)):
        return None
    total = None
    for (s, mask), (t, _) in zip(student, teacher):
        log_s = F.log_softmax(s.float() / temperature, dim=-1)
        log_t = F.log_softmax(t.detach().float() / temperature, dim=-1)
        kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (B, ...) per position
        m = mask.to(kl.dtype)
        term = (kl * m).sum() / m.sum().clamp(min=1.0)
        total = term if total is None else total + term
    return total * temperature**2 / len(student)


# ---------------------------------------------------------------------------- expected cost
LayerCost = Callable[[LayerArch, Arch], float]
HeadCost = Callable[[Arch], float]


def params_cost(vocab_size: int, net: Any = None) -> tuple[HeadCost, LayerCost]:
    """(head_cost, layer_cost) in parameters, from :mod:`supernet.nn.params` (exact counts)."""
    from supernet.nn import params

    kw = {} if net is None else {"net": net}

    def head(h: Arch) -> float:
        return float(params.frontend_params(h.feature, h.subsampling, h.width, **kw)
                     + params.decoder_params(h.decoder, h.decoder_layers, h.decoder_width, h.width, vocab_size, **kw))

    def layer(la: LayerArch, h: Arch) -> float:
        return float(params.layer_params(la, h.width, **kw))

    return head, layer


def latency_cost(lut: Any) -> tuple[HeadCost, LayerCost]:
    """(head_cost, layer_cost) in ms from a :class:`~supernet.profiling.lut.LatencyLUT`."""
    return lut.head_ms, lambda la, h: lut.layer_ms(la, h)


class ExpectedCost:
    """E_alpha[cost] of the relaxed supernet, differentiable in alpha.

    With the mixture's independent decisions (``SpeechSupernet.sample_mixture("relaxed")``):

        E = sum_f p(feature=f) head(f) + sum_slots (1 - p_skip) sum_layers p(layer | not skip) cost(layer)

    where p(layer) multiplies the probabilities of its block and of each field the block uses.
    That is what the relaxed forward computes: every slot's skip is its own decision.
    Layer costs are looked up once per (slot, layer, head) and cached.

    Args:
        head_cost, layer_cost: cost functions (:func:`params_cost`, :func:`latency_cost`).
    """

    def __init__(self, head_cost: HeadCost, layer_cost: LayerCost) -> None:
        self.head_cost = head_cost
        self.layer_cost = layer_cost
        self._cache: dict[tuple, float] = {}

    def _cost(self, key: tuple, fn: Callable[[], float]) -> float:
        if key not in self._cache:
            self._cache[key] = float(fn())
        return self._cache[key]

    def __call__(self, mixture: Any, base: Arch) -> Tensor:
        """Expected cost of ``mixture`` (a ``Mixture``) with fixed fields from ``base``."""
        head = replace(base, layers=())
        feat = mixture.decisions["feature"]
        total = sum(w * self._cost(("head", replace(head, feature=f)), lambda f=f: self.head_cost(replace(head, feature=f)))
                    for f, w in zip(feat.values, feat.weights))
        i = 0
        while True:
            d = mixture.layer(i)
            if not d:
                break
            block = d["block"]
            for b, pb in zip(block.values, block.weights):
                if b == "skip":
                    continue
                total = total + pb * self._block_cost(i, b, d, head)
            i += 1
        return total

    def _block_cost(self, i: int, block: str, d: dict, head: Arch) -> Tensor:
        fields = BLOCK_FIELDS[block]
        out = 0.0
        # Enumerate the block's field combinations with their joint probability.
        combos: list[tuple[dict, Any]] = [({}, 1.0)]
        for f in fields:
            dec = d[f]
            combos = [({**c, f: v}, p * w) for c, p in combos for v, w in zip(dec.values, dec.weights)]
        for choice, p in combos:
            la = LayerArch(block, **choice)
            out = out + p * self._cost(("layer", i, la, head), lambda la=la: self.layer_cost(la, head))
        return out

