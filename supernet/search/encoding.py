"""Arch <-> Optuna parameters: one flat, fixed set of distributions per space.

Every trial of a study stores the arch it evaluated as Optuna ``params`` under the same
distributions, whichever strategy proposed it, so that Optuna's samplers (TPE, GP, NSGA-II) learn
from every trial in the study, including those of random search, evolution or a resumed run.

Ordinal decisions (width, depth, heads, kernel, ...) are integer parameters holding the *index*
of the value (``None`` first where the decision can be inactive), so that TPE and the GP model
them as ordered and the GP's acquisition optimiser stays fast; categorical ones (feature, block,
attention, decoder) are categorical. The arch itself is in each trial's ``arch`` attribute.

Why flat and not define-by-run: the valid values of a decision depend on earlier ones (heads
must divide the width, ``blstm`` needs full context, depth decides which layers exist).
Define-by-run names per context would make the GP's and NSGA-II's search space (the
intersection over trials) shrink to a handful of dimensions. Instead each decision is one
parameter over every value it can ever take, plus ``None`` where the decision can be inactive (the attention of an LSTM layer, the layers past the depth, the look-ahead of a
full-context arch):

- :meth:`ArchCodec.params` is canonical: an arch has exactly one parameter dict, with ``None``
  for every inactive decision. Equal dicts <=> equal archs.
- :meth:`ArchCodec.decode` accepts any dict (what a sampler proposes) and *repairs* it into a
  valid arch, decision by decision in the space's own order: a value that is not valid in its
  context becomes the nearest valid one (ordinal dimensions) or the first valid one. Several
  proposals can therefore decode to one arch: the search loop dedupes by ``arch.id``.

The decision walk is the space's (``SearchSpace.generate``); :func:`arch_value` reads an arch's
value at one of its decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from supernet.space import BLOCK_FIELDS, LAYER_FIELDS, Arch, SearchSpace

__all__ = ["Slot", "ArchCodec", "arch_value", "slot_name"]

Key = tuple

# Dimensions whose values are ordered (a repair takes the nearest value, not the first).
_ORDINAL = {"subsampling", "width", "depth", "lookahead", "decoder_layers", "decoder_width", "heads", "ffn_ratio", "kernel", "chunk"}


def arch_value(arch: Arch, key: Key) -> Any:
    """The value ``arch`` takes at decision ``key`` (``None`` when inactive, skipped layers included)."""
    if key[0] == "layers" and key[1] < len(arch.layers) and arch.layers[key[1]].block == "skip":
        return None
    return SearchSpace.value(arch, key)


def slot_name(key: Key) -> str:
    """Readable parameter name of a decision key, e.g. ``layers.3.kernel``."""
    return ".".join(map(str, key))


@dataclass(frozen=True)
class Slot:
    """One decision as an Optuna parameter.

    Args:
        key: decision key of the walk.
        name: parameter name (``slot_name(key)``).
        values: every value the decision can take, ``None`` first when it can be inactive.
        ordinal: whether values are ordered numbers (repairs take the nearest).
    """

    key: Key
    name: str
    values: tuple
    ordinal: bool

    @property
    def distribution(self) -> BaseDistribution:
        """Ordinal decisions: the index into ``values`` (an integer Optuna can model as ordered);
        categorical ones: the values themselves."""
        if self.ordinal:
            return IntDistribution(0, len(self.values) - 1)
        return CategoricalDistribution(self.values)

    def encode(self, value: Any) -> Any:
        return self.values.index(value) if self.ordinal else value

    def decode(self, param: Any) -> Any:
        if self.ordinal:
            return self.values[int(param)] if isinstance(param, int) and 0 <= param < len(self.values) else None
        return param


def _slots(space: SearchSpace) -> list[Slot]:
    sp = space.spec
    chunks = tuple(dict.fromkeys(c for c, _ in sp.streams))
    lookaheads = tuple(sorted({la for _, la in sp.streams if la is not None}))
    decoders = tuple(dict.fromkeys(d for d, _, _ in sp.decoders))
    ctc = any(d == "ctc" for d in decoders)
    raw: list[tuple[Key, tuple, bool]] = [
        (("feature",), tuple(sp.features), False),
        (("subsampling",), tuple(sp.subsamplings), False),
        (("width",), tuple(sp.widths), False),
        (("chunk",), chunks, False),
        (("lookahead",), lookaheads, any(la is None for _, la in sp.streams)),
        (("depth",), tuple(sp.depths), False),
    ]
    min_depth = min(sp.depths)
    for i in range(space.num_layers):
        ch = space.spec.layers[i]
        inactive = i >= min_depth
        raw.append((("layers", i, "block"), tuple(ch.block), inactive))
        for f in LAYER_FIELDS:
            users = [b for b in ch.block if f in BLOCK_FIELDS[b]]
            if users:
                raw.append((("layers", i, f), tuple(getattr(ch, f)), inactive or len(users) < len(ch.block)))
    raw += [
        (("decoder",), decoders, False),
        (("decoder_layers",), tuple(sorted({d for _, d, _ in sp.decoders if d})), ctc),
        (("decoder_width",), tuple(sorted({d for _, _, d in sp.decoders if d})), ctc),
    ]
    out = []
    for key, values, optional in raw:
        values = ((None,) if optional else ()) + tuple(values)
        if len(values) > 1:  # constant decisions are never asked by the walk
            out.append(Slot(key, slot_name(key), values, key[-1] in _ORDINAL))
    return out


class ArchCodec:
    """Flat categorical encoding of a :class:`~supernet.space.SearchSpace` for Optuna.

    Args:
        space: the search space.

    Example:
        >>> codec = ArchCodec(space)
        >>> params = codec.params(arch)            # {"feature": "logmel40", "width": 48, ...}
        >>> codec.decode(params) == arch
        True
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.slots = _slots(space)
        self._by_key = {s.key: s for s in self.slots}
        self.distributions: dict[str, BaseDistribution] = {s.name: s.distribution for s in self.slots}

    def values(self, arch: Arch) -> dict[str, Any]:
        """The value of ``arch`` at every slot (``None`` for inactive decisions)."""
        self.space.validate(arch)
        return {s.name: arch_value(arch, s.key) for s in self.slots}

    def params(self, arch: Arch) -> dict[str, Any]:
        """Canonical Optuna parameters of ``arch`` (ordinal slots as indices into ``values``)."""
        return {s.name: s.encode(v) for s, v in zip(self.slots, self.values(arch).values())}

    def decode(self, params: Mapping[str, Any]) -> Arch:
        """The valid arch closest to Optuna ``params`` (see the module docstring for the repair)."""
        return self.decode_values({s.name: s.decode(params[s.name]) for s in self.slots if s.name in params})

    def decode_values(self, values_by_name: Mapping[str, Any]) -> Arch:
        """The valid arch closest to plain slot values (``{"width": 144, ...}``; not indices).

        Missing names count as ``None`` (inactive or unknown: the first valid value is used).
        A numeric value of an ordinal slot need not be one of its values (compound scaling asks
        for ``width = 130.5``): the nearest valid value is taken.
        """
        params = values_by_name

        def choose(key: Key, values: list) -> Any:
            slot = self._by_key.get(key)
            v = params.get(slot.name) if slot is not None else None
            if v in values:
                return values[values.index(v)]  # the space's own value (96, not 96.0)
            if v is not None and slot is not None and slot.ordinal and all(isinstance(x, (int, float)) for x in values):
                return min(values, key=lambda x: (abs(x - v), x))
            return values[0]

        return self.space.generate(choose)

    def suggest(self, trial: Any) -> Arch:
        """Let an Optuna ``trial`` suggest every parameter, then decode (repair) the arch."""
        params = {
            s.name: trial.suggest_int(s.name, 0, len(s.values) - 1) if s.ordinal else trial.suggest_categorical(s.name, list(s.values))
            for s in self.slots
        }
        return self.decode(params)

    def __len__(self) -> int:
        return len(self.slots)
