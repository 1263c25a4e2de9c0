"""Dropout whose mask costs about a quarter of torch's on the CPU (a whole call about half).

On the CPU, ``torch.nn.functional.dropout`` draws one Mersenne-Twister number per element
(``bernoulli_``), single-threaded: about 10 ms for a (16, 200, 384) activation on this project's
2-core machine, and 18 % of a baseline Conformer-CTC training step's CPU time in a torch-profiler
profile (``bench/dropout.py`` measures the per-call and per-step savings; figures in
BENCHMARKS.md). Here one number is drawn from torch's generator
per call, and the mask is a counter-based hash of it (SplitMix64's finaliser over a counter,
vectorised integer ops on all threads); each 64-bit hash gives four 16-bit lanes, so ``p`` is
quantised to 1/65536. The masks are as random as dropout needs (rate, independence of
neighbours: tested) and reproducible under ``torch.manual_seed``, as ``nn.Dropout``'s are, though
they are different masks. Identity in eval mode, so exported graphs do not contain it.
"""

import torch
from torch import Tensor, nn

__all__ = ["Dropout", "keep_mask", "fast_dropout", "replace_dropout"]

# SplitMix64 (Steele et al., 2014) constants, as signed int64 (torch has no uint64 arithmetic).
_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15
_MIX1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX2 = -7723592293110705685  # 0x94D049BB133111EB


def _shift_right(z: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def keep_mask(shape: list[int], p: float, device: torch.device | None = None) -> Tensor:
    """Bool mask of ``shape``, each element False with probability ``p`` (to 1/65536).

    Draws one number from torch's default generator (so ``torch.manual_seed`` fixes the mask).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    n = 1
    for s in shape:
        n *= s
    seed = int(torch.randint(0, 2**62, (1,)).item())
    z = torch.arange(seed, seed + (n + 3) // 4, dtype=torch.int64, device=device) * _GOLDEN
    z = (z ^ _shift_right(z, 30)) * _MIX1
    z = (z ^ _shift_right(z, 27)) * _MIX2
    z = z ^ _shift_right(z, 31)
    lanes = z.view(torch.int16)[:n]  # four uniform 16-bit lanes per hash, in [-32768, 32767]
    return (lanes >= round(p * 65536) - 32768).view(shape)


def fast_dropout(x: Tensor, p: float) -> Tensor:
    """Training-mode dropout of ``x`` with :func:`keep_mask`: kept elements scaled by 1 / (1 - p)."""
    if p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    scale = keep_mask(list(x.shape), p, x.device).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`fast_dropout` masks; the same module otherwise (p, eval identity).

    Shapes:
        forward(x (...)) -> (...)
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return self._drop(x)

    @torch.jit.unused
    def _drop(self, x: Tensor) -> Tensor:
        # Exported graphs run in eval mode and never reach this (TorchScript leaves it out).
        return fast_dropout(x, self.p)


def replace_dropout(module: nn.Module) -> int:
    """Swap every plain ``nn.Dropout`` inside ``module`` for :class:`Dropout` (same p); returns how many.

    For third-party layers (torchaudio's Conformer). Dropout applied functionally inside a
    layer (``nn.MultiheadAttention``'s attention weights) is not reached.
    """
    count = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                new = Dropout(child.p)
                new.train(child.training)
                setattr(parent, name, new)
                count += 1
    return count
