"""Search space and architectures.

An :class:`Arch` is one point of a :class:`SearchSpace`: a frozen, hashable dataclass with a
canonical JSON form and a stable ``id``. It is passed explicitly to ``forward``; no module keeps
a hidden "active subnet".

Canonical form (so that counting counts distinct networks, not spellings of one network):
- fields that do not apply are ``None`` (an LSTM layer has no attention, heads, FFN or kernel; a
  CTC decoder has no decoder layers or width; a full-context arch has no look-ahead);
- ``skip`` layers (elastic depth) only appear as a suffix of ``layers``.
``Arch`` and ``LayerArch`` check this form when built (``ValueError``), whatever space they are in.

A :class:`SearchSpace` (loaded from ``configs/space/*.yaml``, format in ``supernet.space_yaml``)
adds the space's own rules, checked by :meth:`SearchSpace.validate`:
- every value is one of the YAML's choices for its dimension (per-layer lists after overrides);
- attention ``heads`` divide the encoder ``width``;
- blocks in ``constraints.full_context_blocks`` (default ``blstm``) only appear with ``chunk: 0``;
- with ``constraints.lookahead_below_chunk`` (default true) the look-ahead is smaller than the
  chunk: a look-ahead of a whole chunk or more gives up the latency that chunking buys.

Sampling is uniform per choice, one dimension after another (front-end, width, chunk and
look-ahead, depth, then per layer block, attention, heads, FFN ratio, kernel, then decoder),
each among the values that still lead to a valid arch: depth is uniform over the allowed depths,
not weighted by how many archs each depth holds. Counting and constrained derivation are exact
dynamic programming over layers (``supernet.space_dp``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Protocol

from supernet.config import ConfigError, config_hash, load_yaml
from supernet.space_dp import DPResult, LayerDP, budget_units, count_under_budget, to_units
from supernet.space_yaml import LayerChoices, SpaceSpec, parse_space

__all__ = [
    "LayerArch", "Arch", "BLOCKS", "ATTENTIONS", "FEATURES", "DECODERS", "BLOCK_FIELDS", "DECODER_FIELDS",
    "SUBSAMPLINGS", "LAYER_FIELDS", "SKIP", "ArchError", "CostModel", "BestArch", "LayerChoices", "SearchSpace",
]  # fmt: skip

FEATURES = ("logmel80", "logmel40", "mfcc40", "learnable")
BLOCKS = ("conformer", "transformer", "lstm", "blstm", "cnn", "skip")
ATTENTIONS = ("mha", "relpos", "local", "linear")
DECODERS = ("ctc", "rnnt", "attention")
SUBSAMPLINGS = (4, 6, 8)
LAYER_FIELDS = ("attention", "heads", "ffn_ratio", "kernel")

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


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class LayerArch:
    """One encoder layer's choices (canonical form checked on construction)."""

    block: str
    attention: str | None = None
    heads: int | None = None
    ffn_ratio: int | None = None
    kernel: int | None = None

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"block {self.block!r} is unknown; allowed values: {', '.join(BLOCKS)}")
        used = BLOCK_FIELDS[self.block]
        for f in LAYER_FIELDS:
            v = getattr(self, f)
            if f in used and v is None:
                raise ValueError(f"a {self.block} layer needs {f} (got None)")
            if f not in used and v is not None:
                raise ValueError(f"{f} does not apply to a {self.block} layer; it must be None (canonical form), got {v!r}")
        if self.attention is not None and self.attention not in ATTENTIONS:
            raise ValueError(f"attention {self.attention!r} is unknown; allowed values: {', '.join(ATTENTIONS)}")
        for f in ("heads", "ffn_ratio", "kernel"):
            if getattr(self, f) is not None:
                _check_int(f, getattr(self, f), 1)


SKIP = LayerArch("skip")


@dataclass(frozen=True)
class Arch:
    """One architecture of the space.

    Args:
        feature: front-end, one of FEATURES.
        subsampling: time reduction of the front-end (4, 6 or 8).
        width: encoder model dimension D.
        layers: one LayerArch per layer slot (max depth); skips only as a suffix. A list is
            turned into a tuple (so the arch stays hashable).
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

    def __post_init__(self) -> None:
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.feature not in FEATURES:
            raise ValueError(f"feature {self.feature!r} is unknown; allowed values: {', '.join(FEATURES)}")
        _check_int("subsampling", self.subsampling, 1)
        _check_int("width", self.width, 1)
        if not all(isinstance(layer, LayerArch) for layer in self.layers):
            raise ValueError("layers must be LayerArch objects")
        blocks = [layer.block for layer in self.layers]
        if "skip" in blocks and any(b != "skip" for b in blocks[blocks.index("skip") :]):
            raise ValueError(f"skip layers must form a suffix of layers (canonical form), got {blocks}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder {self.decoder!r} is unknown; allowed values: {', '.join(DECODERS)}")
        for f in ("decoder_layers", "decoder_width"):
            v = getattr(self, f)
            if f in DECODER_FIELDS[self.decoder]:
                _check_int(f, v, 1)
            elif v is not None:
                raise ValueError(f"{f} does not apply to a {self.decoder} decoder; it must be None, got {v!r}")
        _check_int("chunk", self.chunk, 0)
        if self.chunk == 0 and self.lookahead is not None:
            raise ValueError(f"lookahead must be None for a full-context arch (chunk 0), got {self.lookahead!r}")
        if self.chunk > 0:
            _check_int("lookahead", self.lookahead, 0)

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

    def describe(self) -> str:
        """One readable line, e.g. ``logmel80/4 w144 [conformer(mha,h4,f4,k15) x2, lstm] ctc full``."""
        def layer(la: LayerArch) -> str:
            args = [str(getattr(la, f)) if f == "attention" else f"{f[0]}{getattr(la, f)}" for f in BLOCK_FIELDS[la.block]]
            return la.block + (f"({','.join(args)})" if args else "")

        groups = [(k, len(list(g))) for k, g in itertools.groupby(layer(la) for la in self.layers if la.block != "skip")]
        enc = ", ".join(k if n == 1 else f"{k} x{n}" for k, n in groups)
        dec = self.decoder if self.decoder == "ctc" else f"{self.decoder}(l{self.decoder_layers},w{self.decoder_width})"
        stream = "full" if self.chunk == 0 else f"chunk{self.chunk}+{self.lookahead}"
        return f"{self.feature}/{self.subsampling} w{self.width} [{enc}] {dec} {stream}"


class ArchError(ConfigError):
    """An architecture is not in the space; the message names the dimension and allowed values."""


class CostModel(Protocol):
    """Parameter counts per part; ``supernet.nn.params`` is the default implementation."""

    def frontend_params(self, feature: str, subsampling: int, width: int) -> int: ...
    def layer_params(self, layer: LayerArch, width: int) -> int: ...
    def decoder_params(self, decoder: str, decoder_layers: int | None, decoder_width: int | None, width: int, vocab_size: int) -> int: ...


@dataclass(frozen=True)
class BestArch:
    """Result of :meth:`SearchSpace.best_arch`: the arch, its summed score and its cost.

    ``cost`` is the discretised cost the DP used (whole units of ``resolution``), never below the
    true summed cost.
    """

    arch: Arch
    score: float
    cost: float


# Which direction is "larger" for largest()/smallest(); other dimensions are categorical and take
# the first value listed in the YAML (so list the reference choice first).
_SIZE_FIELDS = {"width", "depth", "heads", "ffn_ratio", "kernel", "decoder_layers", "decoder_width", "lookahead"}
_INVERSE_SIZE_FIELDS = {"subsampling"}  # less subsampling = more frames = more compute
_DECODER_KEYS = ("decoder", "decoder_layers", "decoder_width")
_LAYER_KEYS = ("block",) + LAYER_FIELDS

Chooser = Callable[[tuple, list], Any]


class SearchSpace:
    """A finite space of architectures with exact counting and DP derivation.

    Build it with :meth:`from_yaml` (or :meth:`from_dict`). Parameter counts come from a
    ``cost_model`` (see :class:`CostModel`); the default, ``supernet.nn.params``, is imported
    the first time it is needed.
    """

    def __init__(self, spec: SpaceSpec, cost_model: CostModel | None = None) -> None:
        self.spec = spec
        self._cost_model = cost_model
        self.classes = tuple(sorted({c > 0 for c, _ in spec.streams}))  # False: full, True: streaming
        self._options: dict[tuple[int, int, bool], tuple[LayerArch, ...]] = {
            (i, w, s): self._layer_options(i, w, s) for i in range(self.num_layers) for w in spec.widths for s in self.classes
        }
        self._depths: dict[tuple[int, bool], tuple[int, ...]] = {}
        for w, s in itertools.product(spec.widths, self.classes):
            reach = next((i for i in range(self.num_layers) if not self._options[(i, w, s)]), self.num_layers)
            self._depths[(w, s)] = tuple(d for d in spec.depths if d <= reach)
        self._check_alive()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path, cost_model: CostModel | None = None) -> "SearchSpace":
        """Load ``configs/space/*.yaml``; errors name the file, the dimension and the fix."""
        return cls(parse_space(load_yaml(path), where=str(path), default_name=Path(path).stem), cost_model)

    @classmethod
    def from_dict(cls, data: dict, where: str = "<space>", cost_model: CostModel | None = None) -> "SearchSpace":
        return cls(parse_space(data, where=where), cost_model)

    def _layer_options(self, i: int, width: int, streaming: bool) -> tuple[LayerArch, ...]:
        spec = self.spec.layers[i]
        out = []
        for block in spec.block:
            if streaming and block in self.spec.full_context_blocks:
                continue
            used = BLOCK_FIELDS[block]
            lists = [self._field_values(spec, f, width) if f in used else (None,) for f in LAYER_FIELDS]
            out.extend(LayerArch(block, *vals) for vals in itertools.product(*lists))
        return tuple(out)

    @staticmethod
    def _field_values(spec: LayerChoices, f: str, width: int) -> tuple:
        values = getattr(spec, f)
        return tuple(h for h in values if width % h == 0) if f == "heads" else values

    def _check_alive(self) -> None:
        """Every listed choice must appear in at least one arch, or the YAML has a mistake."""
        where = self.spec.where
        if not any(self._depths.values()):
            raise ConfigError(f"{where}: the space is empty: no width has a valid choice in every layer up to the smallest depth (check encoder.layer.heads against encoder.width)")
        for w in self.spec.widths:
            if not any(self._depths[(w, s)] for s in self.classes):
                raise ConfigError(f"{where}: encoder.width: {w} can never be used: some layer has no valid choice at this width (heads must divide the width)")
        for s in self.classes:
            if not any(self._depths[(w, s)] for w in self.spec.widths):
                dim = "streaming.chunk" if s else "streaming.chunk: 0"
                raise ConfigError(f"{where}: {dim}: no arch can use it: some layer has only blocks from constraints.full_context_blocks {list(self.spec.full_context_blocks)}")
        for i, spec in enumerate(self.spec.layers):
            seen: dict[str, set] = {f: set() for f in _LAYER_KEYS}
            for (j, w, s), opts in self._options.items():
                if j == i and any(d > i for d in self._depths[(w, s)]):
                    for o in opts:
                        for f in _LAYER_KEYS:
                            seen[f].add(getattr(o, f))
            for f in _LAYER_KEYS:
                dead = [v for v in getattr(spec, f) if v not in seen[f]]
                if dead:
                    raise ConfigError(
                        f"{where}: {self.spec.layer_sources[i][f]}: {dead[0]!r} can never be used in layer {i}{self._why_dead(f, dead[0])}; "
                        f"usable values there: {', '.join(str(v) for v in getattr(spec, f) if v in seen[f]) or 'none'}"
                    )

    def _why_dead(self, f: str, value: Any) -> str:
        if f == "heads" or (f == "block" and "heads" in BLOCK_FIELDS[value]):
            return f" (heads must divide a width of encoder.width {list(self.spec.widths)})"
        if f == "block" and value in self.spec.full_context_blocks:
            return " (constraints.full_context_blocks lists it, so it needs chunk 0 in streaming.chunk)"
        return ""

    # ------------------------------------------------------------------ dimensions
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_layers(self) -> int:
        """Layer slots (= the largest depth); every Arch of the space has this many ``layers``."""
        return len(self.spec.layers)

    @property
    def hash(self) -> str:
        """Stable hash of the space definition, to record beside search results."""
        return config_hash(self.spec.raw)

    def choices_for(self, layer_index: int) -> LayerChoices:
        """Choices of one layer slot (all widths), with ``skip`` in ``block`` if it can be skipped."""
        if not 0 <= layer_index < self.num_layers:
            raise IndexError(f"layer_index {layer_index} outside 0..{self.num_layers - 1}")
        spec = self.spec.layers[layer_index]
        if layer_index >= min(self.spec.depths):
            spec = replace(spec, block=spec.block + ("skip",))
        return spec

    def layer_options(self, layer_index: int, width: int, chunk: int = 0) -> tuple[LayerArch, ...]:
        """Every valid (non-skip) LayerArch of one slot for this width and chunk."""
        return self._options.get((layer_index, width, chunk > 0), ())

    def heads(self) -> Iterator[Arch]:
        """Every valid arch *without* its encoder layers (``layers == ()``): front-end, width,
        streaming and decoder. The unit over which :meth:`best_arch` adds per-layer choices."""
        for (f, sub), w, (c, la), (d, dl, dw) in itertools.product(
            itertools.product(self.spec.features, self.spec.subsamplings), self.spec.widths, self.spec.streams, self.spec.decoders
        ):
            if self._depths[(w, c > 0)]:
                yield Arch(f, sub, w, (), d, dl, dw, c, la)

    # ------------------------------------------------------------------ membership
    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError` naming the first dimension of ``arch`` outside the space."""
        if not isinstance(arch, Arch):
            raise ArchError(f"{self.spec.where}: expected an Arch, got {type(arch).__name__}")

        def fail(dim: str, value: Any, allowed: Any, why: str = "") -> None:
            allowed = ", ".join(map(str, allowed)) if isinstance(allowed, (list, tuple)) else allowed
            raise ArchError(f"{self.spec.where}: arch {arch.id}: {dim} = {value!r} is not in the space{why}; allowed values: {allowed}")

        for dim, value, allowed in (("feature", arch.feature, self.spec.features), ("subsampling", arch.subsampling, self.spec.subsamplings), ("width", arch.width, self.spec.widths)):
            if value not in allowed:
                fail(dim, value, allowed)
        chunks = list(dict.fromkeys(c for c, _ in self.spec.streams))
        if arch.chunk not in chunks:
            fail("chunk", arch.chunk, chunks)
        if (arch.chunk, arch.lookahead) not in self.spec.streams:
            fail("lookahead", arch.lookahead, [la for c, la in self.spec.streams if c == arch.chunk], f" for chunk {arch.chunk}")
        dec = (arch.decoder, arch.decoder_layers, arch.decoder_width)
        if dec not in self.spec.decoders:
            for k, key in enumerate(_DECODER_KEYS):
                allowed = list(dict.fromkeys(d[k] for d in self.spec.decoders if d[:k] == dec[:k]))
                if dec[k] not in allowed:
                    fail(key, dec[k], allowed)
        if len(arch.layers) != self.num_layers:
            fail("len(layers)", len(arch.layers), [self.num_layers], " (pad with skip layers)")
        depths = self._depths[(arch.width, arch.streaming)]
        if arch.depth not in depths:
            fail("depth", arch.depth, depths)
        for i, layer in enumerate(arch.layers[: arch.depth]):
            if layer not in self._options[(i, arch.width, arch.streaming)]:
                self._explain_layer(i, layer, arch, fail)

    def _explain_layer(self, i: int, layer: LayerArch, arch: Arch, fail: Callable) -> None:
        spec = self.spec.layers[i]
        if layer.block not in spec.block:
            fail(f"layers[{i}].block", layer.block, spec.block)
        if arch.streaming and layer.block in self.spec.full_context_blocks:
            fail(f"layers[{i}].block", layer.block, [b for b in spec.block if b not in self.spec.full_context_blocks], f" with chunk {arch.chunk} (constraints.full_context_blocks)")
        for f in BLOCK_FIELDS[layer.block]:
            allowed = self._field_values(spec, f, arch.width)
            if getattr(layer, f) not in allowed:
                why = f" (heads must divide width {arch.width})" if f == "heads" and getattr(layer, f) in spec.heads else ""
                fail(f"layers[{i}].{f}", getattr(layer, f), allowed, why)

    def contains(self, arch: Any) -> bool:
        try:
            self.validate(arch)
        except ArchError:
            return False
        return True

    __contains__ = contains

    # ------------------------------------------------------------------ sampling and variation
    def _pick(self, choose: Chooser, key: tuple, values: list) -> Any:
        if len(values) == 1:
            return values[0]
        value = choose(key, values)
        assert value in values, (key, value, values)
        return value

    def _pick_record(self, choose: Chooser, prefix: tuple, records: list, keys: tuple[str, ...]) -> Any:
        """Pick one record (a LayerArch or a plain tuple with fields ``keys``) field by field,
        each field among the values the records still left allow."""
        for k, key in enumerate(keys):
            get = (lambda r: r[k]) if isinstance(records[0], tuple) else (lambda r: getattr(r, key))
            v = self._pick(choose, prefix + (key,), list(dict.fromkeys(get(r) for r in records)))
            records = [r for r in records if get(r) == v]
        return records[0]

    def generate(self, choose: Chooser) -> Arch:
        """Build an arch one decision at a time; ``choose(key, values)`` makes each decision.

        Decisions come in the sampling order of the module docstring, each with the values still
        valid given the earlier ones, so every result is a valid arch of this space. Keys are
        ``("feature",)``, ``("width",)``, ``("chunk",)``, ``("depth",)``, ``("layers", i, "block")``,
        ...; a decision with a single valid value is not asked. ``sample``, ``mutate``, the
        supernet's path samplers and the search's arch codec are all built on it.
        """
        feature = self._pick(choose, ("feature",), list(self.spec.features))
        subsampling = self._pick(choose, ("subsampling",), list(self.spec.subsamplings))
        width = self._pick(choose, ("width",), [w for w in self.spec.widths if any(self._depths[(w, s)] for s in self.classes)])
        streams = [st for st in self.spec.streams if self._depths[(width, st[0] > 0)]]
        chunk, lookahead = self._pick_record(choose, (), streams, ("chunk", "lookahead"))
        depth = self._pick(choose, ("depth",), list(self._depths[(width, chunk > 0)]))
        layers = tuple(
            self._pick_record(choose, ("layers", i), list(self._options[(i, width, chunk > 0)]), _LAYER_KEYS) if i < depth else SKIP
            for i in range(self.num_layers)
        )
        decoder = self._pick_record(choose, (), list(self.spec.decoders), _DECODER_KEYS)
        return Arch(feature, subsampling, width, layers, *decoder, chunk=chunk, lookahead=lookahead)

    @staticmethod
    def value(arch: Arch, key: tuple) -> Any:
        """The value ``arch`` takes at decision ``key`` (a key :meth:`generate` passes): e.g.
        ``("width",)`` -> ``arch.width``, ``("layers", 2, "kernel")`` -> that layer's kernel (None past
        the arch's layers). ``space.generate(lambda key, values: space.value(arch, key)) == arch``."""
        if key[0] == "layers":
            return getattr(arch.layers[key[1]], key[2]) if key[1] < len(arch.layers) else None
        return arch.depth if key == ("depth",) else getattr(arch, key[0])

    def sample(self, rng: random.Random) -> Arch:
        """A random arch: uniform per choice, in the order given in the module docstring."""
        return self.generate(lambda key, values: rng.choice(values))

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.1) -> Arch:
        """A copy of ``arch`` where each decision changes with probability ``prob``.

        A changed decision takes another valid value uniformly; decisions that a change made
        invalid (e.g. heads after a width change) are redrawn. If nothing changed, one decision
        with an alternative (uniform among them) is forced to change, so the result differs
        from ``arch`` whenever the space has more than one arch.
        """
        if not 0.0 < prob <= 1.0:
            raise ValueError(f"prob must be in (0, 1], got {prob}")
        self.validate(arch)

        def choose(key: tuple, values: list) -> Any:
            base = self.value(arch, key)
            if base not in values:
                return rng.choice(values)
            if rng.random() < prob:
                return rng.choice([v for v in values if v != base])
            return base

        child = self.generate(choose)
        if child != arch:
            return child
        options: list[tuple] = []
        self.generate(lambda key, values: options.append(key) or self.value(arch, key))
        if not options:
            return arch  # a space of one arch
        forced = rng.choice(options)

        def force(key: tuple, values: list) -> Any:
            base = self.value(arch, key)
            if base not in values:
                return rng.choice(values)
            return rng.choice([v for v in values if v != base]) if key == forced else base

        return self.generate(force)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Uniform crossover: each decision comes from ``a`` or ``b`` with probability 1/2.

        When the chosen parent's value is not valid in the child (e.g. ``b``'s heads after
        ``a``'s width, or a layer that one parent skips), the other parent's value is used, and
        if neither fits, a uniform draw.
        """
        self.validate(a)
        self.validate(b)

        def choose(key: tuple, values: list) -> Any:
            parents = [self.value(a, key), self.value(b, key)]
            if rng.random() < 0.5:
                parents.reverse()
            for v in parents:
                if v in values:
                    return v
            return rng.choice(values)

        return self.generate(choose)

    def _extreme(self, larger: bool | float, fixed: dict[str, Any]) -> Arch:
        """The arch whose every size dimension sits at ``larger`` of its range (True / 1.0: the
        maximum, False / 0.0: the minimum, 0.5: the middle value, the lower one of an even
        count); categorical dimensions take their first value; ``fixed`` pins any of them."""
        known = {f.name for f in fields(Arch)} | {f.name for f in fields(LayerArch)} | {"depth"}
        unknown = sorted(set(fixed) - known - {"layers"})
        if unknown or "layers" in fixed:
            raise ValueError(f"cannot pin {', '.join(unknown) or 'layers'}; pin one of {', '.join(sorted(known))}")

        def choose(key: tuple, values: list) -> Any:
            f = key[-1]
            if f in fixed:
                if fixed[f] not in values:
                    raise ValueError(f"{f}={fixed[f]!r} is not available at {'.'.join(map(str, key))}; available: {values}")
                return fixed[f]
            if f in _SIZE_FIELDS or f in _INVERSE_SIZE_FIELDS:
                ordered = sorted(values, reverse=f in _INVERSE_SIZE_FIELDS)  # smallest compute first
                return ordered[math.floor((len(ordered) - 1) * float(larger))]
            return values[0]

        return self.generate(choose)

    def largest(self, **fixed: Any) -> Arch:
        """The largest arch: widest, deepest, largest heads/FFN/kernel/decoder and look-ahead,
        least subsampling. Categorical dimensions (feature, block, attention, decoder type,
        chunk) take the first value listed in the YAML unless pinned, e.g.
        ``largest(block="transformer")``."""
        return self._extreme(True, fixed)

    def smallest(self, **fixed: Any) -> Arch:
        """The smallest arch: as :meth:`largest` with every size dimension at its minimum."""
        return self._extreme(False, fixed)

    def middle(self, **fixed: Any) -> Arch:
        """The middle arch: as :meth:`largest` with every size dimension at the middle of its
        values (the lower middle of an even count: heads 2 of 2/4, depth 4 of 2-6). A third
        point between the two extremes for quality checks (issue #9's median subnet)."""
        return self._extreme(0.5, fixed)

    def enumerate(self) -> Iterator[Arch]:
        """Every arch of the space, in a fixed order. Only for small spaces (see :meth:`count`)."""
        for head in self.heads():
            s = head.streaming
            for depth in self._depths[(head.width, s)]:
                prefix = [self._options[(i, head.width, s)] for i in range(depth)]
                for layers in itertools.product(*prefix):
                    yield replace(head, layers=layers + (SKIP,) * (self.num_layers - depth))

    # ------------------------------------------------------------------ encoding
    @functools.cached_property
    def _encoding_slots(self) -> list[tuple[tuple, str, tuple, bool]]:
        """(key, kind, values, may_be_none) per encoded dimension; constant dimensions left out."""
        sp = self.spec
        chunks = tuple(dict.fromkeys(c for c, _ in sp.streams))
        lookaheads = tuple(sorted({la for _, la in sp.streams if la is not None}))
        ctc = any(d == "ctc" for d, _, _ in sp.decoders)
        slots = [
            (("feature",), "onehot", sp.features, False),
            (("subsampling",), "ordinal", sp.subsamplings, False),
            (("width",), "ordinal", sp.widths, False),
            (("depth",), "ordinal", sp.depths, False),
            (("chunk",), "onehot", chunks, False),
            (("lookahead",), "ordinal", lookaheads, 0 in chunks),
            (("decoder",), "onehot", tuple(dict.fromkeys(d for d, _, _ in sp.decoders)), False),
            (("decoder_layers",), "ordinal", tuple(sorted({d for _, d, _ in sp.decoders if d})), ctc),
            (("decoder_width",), "ordinal", tuple(sorted({d for _, _, d in sp.decoders if d})), ctc),
        ]
        for i in range(self.num_layers):
            ch = self.choices_for(i)
            skippable = "skip" in ch.block
            slots.append((("layers", i, "block"), "onehot", ch.block, False))
            for f in LAYER_FIELDS:
                users = [b for b in ch.block if f in BLOCK_FIELDS[b]]
                if users:
                    none = skippable or len(users) < len(ch.block)
                    slots.append((("layers", i, f), "onehot" if f == "attention" else "ordinal", getattr(ch, f), none))
        return [s for s in slots if len(s[2]) > 1 or (s[3] and len(s[2]) == 1)]

    def encode_names(self) -> list[str]:
        """Names of the :meth:`encode` entries, e.g. ``feature=mfcc40``, ``layers.3.kernel``."""
        names = []
        for key, kind, values, _ in self._encoding_slots:
            base = ".".join(map(str, key))
            names.extend(f"{base}={v}" for v in values) if kind == "onehot" else names.append(base)
        return names

    def encode(self, arch: Arch) -> list[float]:
        """Fixed-length numeric vector of ``arch`` for predictors and Bayesian optimisation.

        Categorical dimensions are one-hot (all zeros when the field is None, e.g. the attention
        of an LSTM layer); ordinal ones are scaled min-max into [0.5, 1], 0 when None. Per
        layer: block (``skip`` included), attention, heads, FFN ratio, kernel. Dimensions with a
        single possible value are left out. :meth:`encode_names` names each entry.
        """
        self.validate(arch)
        out: list[float] = []
        for key, kind, values, _ in self._encoding_slots:
            v = self.value(arch, key)
            if kind == "onehot":
                out.extend(1.0 if v == c else 0.0 for c in values)
            elif v is None:
                out.append(0.0)
            else:  # min-max into [0.5, 1] so that the smallest value stays apart from None
                lo, hi = min(values), max(values)
                out.append(1.0 if hi == lo else 0.5 + 0.5 * (v - lo) / (hi - lo))
        return out

    # ------------------------------------------------------------------ parameters and counting
    @property
    def cost_model(self) -> CostModel:
        if self._cost_model is None:
            import importlib

            self._cost_model = importlib.import_module("supernet.nn.params")
        return self._cost_model

    def params(self, arch: Arch, vocab_size: int) -> int:
        """Parameter count of ``arch`` from the cost model (``arch_params`` if it has one)."""
        cm = self.cost_model
        if hasattr(cm, "arch_params"):
            return cm.arch_params(arch, vocab_size)
        return (
            cm.frontend_params(arch.feature, arch.subsampling, arch.width)
            + sum(cm.layer_params(layer, arch.width) for layer in arch.layers)
            + cm.decoder_params(arch.decoder, arch.decoder_layers, arch.decoder_width, arch.width, vocab_size)
        )

    def count(self, max_params: int | None = None, vocab_size: int | None = None) -> int:
        """Exact number of archs, optionally only those with at most ``max_params`` parameters.

        Never enumerates: without a budget, DP over layers multiplies the number of options per
        layer and sums over depths; with a budget, DP over (layer, params so far) keyed by the
        exact reachable sums (``supernet.space_dp.count_under_budget``), started from the
        front-end + decoder costs of each width.
        """
        n_front = len(self.spec.features) * len(self.spec.subsamplings)
        n_stream = Counter(c > 0 for c, _ in self.spec.streams)
        if max_params is None:
            total = 0
            for (w, s), depths in self._depths.items():
                sizes = [len(self._options[(i, w, s)]) for i in range(self.num_layers)]
                total += n_stream[s] * sum(math.prod(sizes[:d]) for d in depths)
            return total * n_front * len(self.spec.decoders)
        if vocab_size is None:
            raise ValueError("count(max_params=...) needs vocab_size: the decoder's output layer depends on it")
        cm, total = self.cost_model, 0
        for w in self.spec.widths:
            front = Counter(cm.frontend_params(f, sub, w) for f in self.spec.features for sub in self.spec.subsamplings)
            dec = Counter(cm.decoder_params(d, dl, dw, w, vocab_size) for d, dl, dw in self.spec.decoders)
            start = Counter()
            for (a, na), (b, nb) in itertools.product(front.items(), dec.items()):
                if a + b <= max_params:
                    start[a + b] += na * nb
            if not start:
                continue
            layer_cost = {o: cm.layer_params(o, w) for s in self.classes for i in range(self.num_layers) for o in self._options[(i, w, s)]}
            skip = cm.layer_params(SKIP, w)
            for s in self.classes:
                if not self._depths[(w, s)]:
                    continue
                per_layer = [Counter(layer_cost[o] for o in self._options[(i, w, s)]) for i in range(self.num_layers)]
                exits = {d: skip * (self.num_layers - d) for d in self._depths[(w, s)]}
                total += n_stream[s] * count_under_budget(per_layer, max_params, start=start, exits=exits)
        return total

    # ------------------------------------------------------------------ DP derivation
    def best_arch(
        self,
        layer_score: Callable[[int, LayerArch, Arch], float],
        layer_cost: Callable[[int, LayerArch, Arch], float],
        budget: float,
        *,
        head_score: Callable[[Arch], float] | None = None,
        head_cost: Callable[[Arch], float] | None = None,
        context: Callable[[Arch], Hashable] | None = None,
        resolution: float = 1.0,
    ) -> BestArch | None:
        """The exact best arch under a budget: maximise the summed score subject to the summed cost.

        Score and cost are sums of a *head* term (front-end, width, streaming, decoder: an Arch
        with ``layers == ()``, see :meth:`heads`) and one term per layer slot, ``skip`` slots
        included (a DARTS derivation scores ``skip`` with its log-probability too). A score of
        ``-inf`` forbids a choice (e.g. a chunk the target does not allow).

        Args:
            layer_score, layer_cost: ``f(layer_index, layer, head) -> float``; costs ``>= 0``.
            budget: the largest allowed summed cost.
            head_score, head_cost: ``f(head) -> float``; default 0.
            context: the part of the head that the layer functions depend on (e.g.
                ``lambda h: (h.subsampling, h.chunk)`` for a latency table); one DP over layers
                runs per distinct (width, streaming, context). Default: the whole head, which is
                always right but runs one DP per head.
            resolution: cost unit of the DP. Costs are rounded *up* to whole units and the budget
                *down*, so the DP is exact on the discretised costs and the result also fits the
                float budget. Use 1 for parameter counts, 1e-3 for milliseconds (= microseconds).

        Returns:
            :class:`BestArch`, or None when no arch fits. Ties go to the cheaper arch, then to
            the first in :meth:`heads` order.
        """
        units = budget_units(budget, resolution)
        groups: dict[Hashable, list[tuple[Arch, float, int]]] = {}
        for head in self.heads():
            hs = head_score(head) if head_score else 0.0
            hc = to_units(head_cost(head), resolution) if head_cost else 0
            if hs != -math.inf and hc <= units:
                key = (head.width, head.streaming, context(head) if context else head)
                groups.setdefault(key, []).append((head, hs, hc))
        best: tuple[float, int, Arch, DPResult] | None = None
        for members in groups.values():
            h0 = members[0][0]
            w, s = h0.width, h0.streaming
            depths = self._depths[(w, s)]
            options = [[(o, layer_score(i, o, h0), to_units(layer_cost(i, o, h0), resolution)) for o in self._options[(i, w, s)]] for i in range(max(depths))]
            skip = [(layer_score(i, SKIP, h0), to_units(layer_cost(i, SKIP, h0), resolution)) for i in range(self.num_layers)]
            exits = {d: (sum(x[0] for x in skip[d:]), sum(x[1] for x in skip[d:])) for d in depths}
            dp = LayerDP(options, units - min(m[2] for m in members), exits)
            for head, hs, hc in members:
                res = dp.best(units - hc)
                if res is None:
                    continue
                total, cost = hs + res.score, hc + res.cost
                if best is None or total > best[0] or (total == best[0] and cost < best[1]):
                    best = (total, cost, head, res)
        if best is None:
            return None
        total, cost, head, res = best
        layers = res.choices + (SKIP,) * (self.num_layers - res.exit)
        return BestArch(arch=replace(head, layers=layers), score=total, cost=cost * resolution)

    def __repr__(self) -> str:
        return f"SearchSpace(name={self.name!r}, where={self.spec.where!r}, layers={self.num_layers})"
