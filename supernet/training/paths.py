"""Which paths (architectures) a training step runs.

A :class:`PathSampler` draws archs from the search space with some dimensions *open* (sampled
uniformly, as ``SearchSpace.sample`` does) and the others *closed* at the largest arch's value.
Sandwich and SPOS open every dimension; progressive shrinking opens them phase by phase.

Every draw takes an explicit ``random.Random``. The training module seeds it from (seed, step)
alone, so every DDP rank draws the same paths, a resumed run draws what the uninterrupted run
drew, and nothing depends on a global RNG.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Iterable

from supernet.space import Arch, SearchSpace

__all__ = ["PathSampler", "step_rng", "step_seed"]

# The search-space decision (last element of a SearchSpace decision key) -> dimension name.
_KEY_DIMENSION = {"decoder_layers": "decoder", "decoder_width": "decoder", "chunk": "streaming", "lookahead": "streaming"}
_SIZE = {"width", "depth", "heads", "ffn_ratio", "kernel", "decoder_layers", "decoder_width", "lookahead"}
_INVERSE_SIZE = {"subsampling"}


def step_seed(seed: int, step: int, stream: str) -> int:
    """A 63-bit seed for (run seed, step, stream name), the same on every rank and every run."""
    return random.Random(f"{seed}/{step}/{stream}").getrandbits(63)


def step_rng(seed: int, step: int, stream: str = "paths") -> random.Random:
    """The ``random.Random`` of one step's path draws."""
    return random.Random(step_seed(seed, step, stream))


def _dimension(key: tuple) -> str:
    return _KEY_DIMENSION.get(key[-1], key[-1])


class PathSampler:
    """Draws archs of ``space`` with only the ``open`` dimensions varying.

    Args:
        space: the search space.
        open: dimension names (``supernet.training.config.DIMENSIONS``), or ``("all",)``.
    """

    def __init__(self, space: SearchSpace, open: Iterable[str] = ("all",)) -> None:
        self.space = space
        open = tuple(open)
        self.open_all = "all" in open
        self.open = frozenset(open)
        self._largest = space.largest()

    def _is_open(self, key: tuple) -> bool:
        return self.open_all or _dimension(key) in self.open

    def streamed(self, arch: Arch, chunk: int, lookahead: int | None) -> Arch:
        """``arch`` with this streaming (chunk, look-ahead), or ``arch`` itself where the space
        does not allow it (e.g. a block that needs the whole utterance)."""
        other = dataclasses.replace(arch, chunk=chunk, lookahead=lookahead)
        return other if other in self.space else arch

    def _largest_value(self, key: tuple, values: list) -> Any:
        v = SearchSpace.value(self._largest, key)
        if v in values:
            return v
        return _extreme(key, values, larger=True)  # the largest's value is not valid here (e.g. heads)

    def sample(self, rng: random.Random) -> Arch:
        """A random arch: open decisions uniform (as ``SearchSpace.sample``), closed ones largest."""
        if self.open_all:
            return self.space.sample(rng)
        return self.space.generate(lambda key, values: rng.choice(values) if self._is_open(key) else self._largest_value(key, values))

    def largest(self) -> Arch:
        """The largest arch (the same whatever is open)."""
        return self._largest

    def smallest(self) -> Arch:
        """Open size dimensions at their minimum, open categorical ones at their first value,
        closed ones at the largest's value. With everything open: ``space.smallest()``."""
        if self.open_all:
            return self.space.smallest()

        def choose(key: tuple, values: list) -> Any:
            if not self._is_open(key):
                return self._largest_value(key, values)
            return _extreme(key, values, larger=False)

        return self.space.generate(choose)

    def paths(self, rng: random.Random, num_random: int, sandwich: bool = True) -> list[Arch]:
        """The paths of one step: [largest, smallest] + ``num_random`` draws (sandwich), else the draws."""
        drawn = [self.sample(rng) for _ in range(num_random)]
        return [self.largest(), self.smallest(), *drawn] if sandwich else drawn

    def __repr__(self) -> str:
        return f"PathSampler(open={'all' if self.open_all else sorted(self.open)})"


def _extreme(key: tuple, values: list, larger: bool) -> Any:
    f = key[-1]
    if f in _SIZE:
        return max(values) if larger else min(values)
    if f in _INVERSE_SIZE:
        return min(values) if larger else max(values)
    return values[0]
