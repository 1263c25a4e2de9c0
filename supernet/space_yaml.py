"""The YAML format of a search space: a typed schema, then checks that name the file and dimension.

A space file lists, for every dimension, the finite set of choices (see README, "Search space"):

    name: default
    frontend: {feature: [logmel80, mfcc40], subsampling: [4, 8]}
    encoder:
      width: [96, 144, 192]
      layers: 8                 # layer slots = the largest depth
      min_depth: 2              # or depth: [2, 4, 8]
      layer:                    # choices of every layer ...
        block: [conformer, transformer, lstm, blstm, cnn]
        attention: [mha, relpos, local, linear]
        heads: [2, 4]
        ffn_ratio: [2, 4]
        kernel: [7, 15, 31]
      overrides:                # ... replaced for some layers (0-based index or "first-last")
        0: {block: [conformer, cnn]}
    decoder: {type: [ctc, rnnt], layers: [1, 2], width: [128, 256]}
    streaming: {chunk: [0, 8, 16], lookahead: [0, 2, 4]}
    constraints: {full_context_blocks: [blstm], lookahead_below_chunk: true}

:func:`parse_space` turns the mapping into a :class:`SpaceSpec` (plain resolved tuples) or raises
:class:`~supernet.config.ConfigError` naming the file, the dimension and the allowed values.
Cross-dimension checks (a choice no architecture can use) are done by ``SearchSpace``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from supernet.config import ConfigError, from_dict

__all__ = ["LayerChoices", "SpaceSpec", "SpaceYaml", "parse_space", "one_arch_space"]


# ----------------------------------------------------------------------------- YAML schema
@dataclass
class LayerYaml:
    block: tuple[str, ...] | None = None
    attention: tuple[str, ...] | None = None
    heads: tuple[int, ...] | None = None
    ffn_ratio: tuple[int, ...] | None = None
    kernel: tuple[int, ...] | None = None


@dataclass
class FrontendYaml:
    feature: tuple[str, ...]
    subsampling: tuple[int, ...]


@dataclass
class EncoderYaml:
    width: tuple[int, ...]
    layers: int
    layer: LayerYaml
    min_depth: int | None = None
    depth: tuple[int, ...] | None = None
    overrides: dict[Any, LayerYaml] = field(default_factory=dict)


@dataclass
class DecoderYaml:
    type: tuple[str, ...] = ("ctc",)
    layers: tuple[int, ...] | None = None
    width: tuple[int, ...] | None = None


@dataclass
class StreamingYaml:
    chunk: tuple[int, ...] = (0,)
    lookahead: tuple[int, ...] | None = None


@dataclass
class ConstraintsYaml:
    full_context_blocks: tuple[str, ...] = ("blstm",)
    lookahead_below_chunk: bool = True


@dataclass
class SpaceYaml:
    frontend: FrontendYaml
    encoder: EncoderYaml
    name: str = "space"  # default: the file name without .yaml
    description: str = ""
    decoder: DecoderYaml = field(default_factory=DecoderYaml)
    streaming: StreamingYaml = field(default_factory=StreamingYaml)
    constraints: ConstraintsYaml = field(default_factory=ConstraintsYaml)


# ----------------------------------------------------------------------------- resolved spec
@dataclass(frozen=True)
class LayerChoices:
    """The choices of one layer slot; ``block`` lists ``skip`` when the slot can be skipped."""

    block: tuple[str, ...]
    attention: tuple[str, ...] = ()
    heads: tuple[int, ...] = ()
    ffn_ratio: tuple[int, ...] = ()
    kernel: tuple[int, ...] = ()


@dataclass(frozen=True)
class SpaceSpec:
    """A parsed, value-checked space: every dimension as a tuple of choices, in YAML order."""

    where: str
    name: str
    features: tuple[str, ...]
    subsamplings: tuple[int, ...]
    widths: tuple[int, ...]
    depths: tuple[int, ...]  # allowed numbers of non-skip layers, ascending; max == len(layers)
    layers: tuple[LayerChoices, ...]  # per slot; ``block`` without skip
    layer_sources: tuple[dict[str, str], ...]  # per slot: field -> the YAML path that set it
    decoders: tuple[tuple[str, int | None, int | None], ...]  # (type, layers, width)
    streams: tuple[tuple[int, int | None], ...]  # (chunk, lookahead)
    full_context_blocks: tuple[str, ...]
    lookahead_below_chunk: bool
    raw: dict


def parse_space(data: dict, where: str = "<space>", default_name: str = "space") -> SpaceSpec:
    """Check a space mapping (from YAML) and resolve per-layer overrides.

    Raises:
        ConfigError: unknown key, value outside the allowed set, duplicate, missing dimension,
            or a choice that is listed but can never be used.
    """
    from supernet.space import ATTENTIONS, BLOCK_FIELDS, BLOCKS, DECODERS, FEATURES, SUBSAMPLINGS

    data = copy.deepcopy(data)  # the spec keeps it (for its hash); later edits must not leak in
    y: SpaceYaml = from_dict(SpaceYaml, {"name": default_name, **data}, where=where)
    chk = _Checker(where)
    features = chk.choices("frontend.feature", y.frontend.feature, FEATURES)
    subsamplings = chk.choices("frontend.subsampling", y.frontend.subsampling, SUBSAMPLINGS)
    widths = chk.ints("encoder.width", y.encoder.width)
    n = y.encoder.layers
    if n < 1:
        chk.fail("encoder.layers", f"must be at least 1, got {n}")
    depths = _depths(chk, y.encoder, n)

    blocks = tuple(b for b in BLOCKS if b != "skip")
    per_layer, explicit = _resolve_layers(chk, y.encoder, n)
    layers = []
    for i, (spec, given) in enumerate(zip(per_layer, explicit)):
        dim = _dim(given, "block")
        if spec.block is None:
            chk.fail(dim, "is missing; give the allowed block types in encoder.layer.block")
        if "skip" in spec.block:
            chk.fail(dim, f"'skip' is not listed as a block: elastic depth comes from encoder.min_depth or encoder.depth; allowed values: {', '.join(blocks)}")
        block = chk.choices(dim, spec.block, blocks)
        needed = {f for b in block for f in BLOCK_FIELDS[b]}
        vals: dict[str, tuple] = {}
        for f in ("attention", "heads", "ffn_ratio", "kernel"):
            v = getattr(spec, f)
            d = _dim(given, f)
            if f not in needed:
                if f in given:  # an explicit override that no block here uses
                    chk.fail(d, f"is given but no block of layer {i} ({', '.join(block)}) uses it")
                continue
            if v is None:
                users = [b for b in block if f in BLOCK_FIELDS[b]]
                chk.fail(d, f"is missing; block(s) {', '.join(users)} of layer {i} need it")
            if f == "attention":
                vals[f] = chk.choices(d, v, ATTENTIONS)
            else:
                vals[f] = chk.ints(d, v, odd=(f == "kernel"))
        layers.append(LayerChoices(block=block, **vals))
    _check_defaults_used(chk, y.encoder, layers, explicit)
    odd = [w for w in widths if w % 2]
    if odd and any("blstm" in c.block for c in layers):
        chk.fail("encoder.width", f"{odd[0]} is odd, but blstm splits the width between its two directions (D/2 each); use even widths or drop blstm")

    decoders = _decoders(chk, y.decoder, DECODERS)
    streams = _streams(chk, y.streaming, y.constraints)
    full_context = chk.choices("constraints.full_context_blocks", y.constraints.full_context_blocks, blocks, allow_empty=True)
    return SpaceSpec(
        where=where,
        name=y.name,
        features=features,
        subsamplings=subsamplings,
        widths=widths,
        depths=depths,
        layers=tuple(layers),
        layer_sources=tuple({f: _dim(g, f) for f in ("block", "attention", "heads", "ffn_ratio", "kernel")} for g in explicit),
        decoders=decoders,
        streams=streams,
        full_context_blocks=full_context,
        lookahead_below_chunk=y.constraints.lookahead_below_chunk,
        raw=data,
    )


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, dim: str, problem: str) -> None:
        raise ConfigError(f"{self.where}: {dim}: {problem}")

    def choices(self, dim: str, values: tuple | None, allowed: tuple, allow_empty: bool = False) -> tuple:
        values = tuple(values or ())
        if not values and not allow_empty:
            self.fail(dim, f"needs at least one choice; allowed values: {', '.join(map(str, allowed))}")
        for v in values:
            if v not in allowed:
                self.fail(dim, f"{v!r} is not allowed; allowed values: {', '.join(map(str, allowed))}")
        self._no_duplicates(dim, values)
        return values

    def ints(self, dim: str, values: tuple | None, odd: bool = False, minimum: int = 1) -> tuple:
        values = tuple(values or ())
        if not values:
            self.fail(dim, "needs at least one choice (a list of integers)")
        for v in values:
            if v < minimum:
                self.fail(dim, f"{v} is not allowed; values must be integers >= {minimum}")
            if odd and v % 2 == 0:
                self.fail(dim, f"{v} is not allowed; convolution kernels must be odd (e.g. 7, 15, 31)")
        self._no_duplicates(dim, values)
        return values

    def _no_duplicates(self, dim: str, values: tuple) -> None:
        dup = sorted({str(v) for v in values if values.count(v) > 1})
        if dup:
            self.fail(dim, f"{', '.join(dup)} listed more than once")


def _dim(given: dict[str, str], f: str) -> str:
    """The YAML path that set field ``f`` of layer ``i`` (override or defaults)."""
    return given.get(f, f"encoder.layer.{f}")


def _depths(chk: _Checker, enc: EncoderYaml, n: int) -> tuple[int, ...]:
    if enc.depth is not None and enc.min_depth is not None:
        chk.fail("encoder.depth", "give either encoder.depth (a list) or encoder.min_depth, not both")
    if enc.min_depth is not None:
        if not 1 <= enc.min_depth <= n:
            chk.fail("encoder.min_depth", f"{enc.min_depth} is not allowed; allowed values: 1..{n} (encoder.layers)")
        return tuple(range(enc.min_depth, n + 1))
    if enc.depth is None:
        return (n,)
    depths = chk.ints("encoder.depth", enc.depth)
    for d in depths:
        if d > n:
            chk.fail("encoder.depth", f"{d} is not allowed; allowed values: 1..{n} (encoder.layers)")
    if max(depths) != n:
        chk.fail("encoder.depth", f"the largest depth is {max(depths)} but encoder.layers is {n}; set encoder.layers: {max(depths)}")
    return tuple(sorted(depths))


def _override_indices(chk: _Checker, key: Any, n: int) -> list[int]:
    """Layer indices named by an override key: ``3`` or ``"0-2"`` (inclusive, 0-based)."""
    text = str(key).strip()
    m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
    if isinstance(key, bool) or m is None:
        chk.fail(f"encoder.overrides.{key}", f"keys are layer indices 0..{n - 1} or ranges like '0-2'")
    first, last = int(m.group(1)), int(m.group(2) or m.group(1))
    if not 0 <= first <= last < n:
        chk.fail(f"encoder.overrides.{key}", f"layers {first}..{last} are outside 0..{n - 1} (encoder.layers: {n})")
    return list(range(first, last + 1))


def _resolve_layers(chk: _Checker, enc: EncoderYaml, n: int) -> tuple[list[LayerYaml], list[dict[str, str]]]:
    """Per slot: the effective LayerYaml and, per field, the override path that set it."""
    fields = ("block", "attention", "heads", "ffn_ratio", "kernel")
    per = [LayerYaml(**{f: getattr(enc.layer, f) for f in fields}) for _ in range(n)]
    given: list[dict[str, str]] = [{} for _ in range(n)]
    owner: dict[int, Any] = {}
    for key, ov in enc.overrides.items():
        for i in _override_indices(chk, key, n):
            if i in owner:
                chk.fail(f"encoder.overrides.{key}", f"layer {i} is also overridden by key {owner[i]!r}; each layer may appear once")
            owner[i] = key
            for f in fields:
                if getattr(ov, f) is not None:
                    setattr(per[i], f, getattr(ov, f))
                    given[i][f] = f"encoder.overrides.{key}.{f}"
    return per, given


def _check_defaults_used(chk: _Checker, enc: EncoderYaml, layers: list[LayerChoices], given: list[dict]) -> None:
    """A field of encoder.layer that no layer uses is a mistake (e.g. kernels for lstm-only)."""
    for f in ("attention", "heads", "ffn_ratio", "kernel"):
        if getattr(enc.layer, f) is None:
            continue
        if not any(getattr(c, f) and f not in g for c, g in zip(layers, given)):
            chk.fail(f"encoder.layer.{f}", "is given but no layer uses it (no block type listed for those layers needs it); remove it")


def _decoders(chk: _Checker, dec: DecoderYaml, allowed: tuple) -> tuple:
    types = chk.choices("decoder.type", dec.type, allowed)
    sized = [t for t in types if t != "ctc"]
    if not sized:
        for f in ("layers", "width"):
            if getattr(dec, f) is not None:
                chk.fail(f"decoder.{f}", "is given but only ctc is listed in decoder.type, which has no layers or width; remove it")
        return (("ctc", None, None),)
    for f in ("layers", "width"):
        if getattr(dec, f) is None:
            chk.fail(f"decoder.{f}", f"is missing; decoder(s) {', '.join(sized)} need it (e.g. [1, 2])")
    nl, nw = chk.ints("decoder.layers", dec.layers), chk.ints("decoder.width", dec.width)
    out = []
    for t in types:
        if t == "ctc":
            out.append(("ctc", None, None))
        else:
            out.extend((t, layers, width) for layers in nl for width in nw)
    return tuple(out)


def _streams(chk: _Checker, st: StreamingYaml, cons: ConstraintsYaml) -> tuple:
    chunks = chk.ints("streaming.chunk", st.chunk, minimum=0)
    positive = [c for c in chunks if c > 0]
    if not positive:
        if st.lookahead is not None:
            chk.fail("streaming.lookahead", "is given but streaming.chunk has no positive chunk (0 = full context has no look-ahead); remove it")
        return ((0, None),)
    lookaheads = chk.ints("streaming.lookahead", st.lookahead if st.lookahead is not None else (0,), minimum=0)
    out = []
    for c in chunks:
        if c == 0:
            out.append((0, None))
            continue
        ok = [la for la in lookaheads if la < c or not cons.lookahead_below_chunk]
        if not ok:
            chk.fail("streaming.chunk", f"{c} has no allowed look-ahead: constraints.lookahead_below_chunk needs a look-ahead smaller than the chunk; streaming.lookahead: {list(lookaheads)}")
        out.extend((c, la) for la in ok)
    used = {la for _, la in out}
    for la in lookaheads:
        if la not in used:
            chk.fail("streaming.lookahead", f"{la} can never be used: constraints.lookahead_below_chunk needs it smaller than some chunk; chunks: {positive}")
    return tuple(out)


def one_arch_space(arch: Any, name: str) -> dict:
    """The space-file mapping (this module's format) of a space that holds exactly ``arch``.

    ``supernet fit`` on it trains that one arch standalone (strategy ``spos``), with the same
    module names as in a supernet holding it (and the same shapes when ``arch`` is that
    supernet's largest), so its checkpoint can warm-start the supernet (``init_from``). Every
    layer must use the same block fields (e.g. all Conformer).
    """
    from supernet.space import BLOCK_FIELDS

    layers = [la for la in arch.layers if la.block != "skip"]

    def choices(la: Any) -> dict:
        return {"block": [la.block], **{f: [getattr(la, f)] for f in BLOCK_FIELDS[la.block]}}

    first = choices(layers[0])
    overrides = {}
    for i, la in enumerate(layers[1:], start=1):
        c = choices(la)
        if set(c) != set(first):
            raise ValueError(f"layer {i} ({la.block}) uses other fields than layer 0 ({layers[0].block}); "
                             "a one-arch space needs the same fields in every layer")
        if c != first:
            overrides[i] = c
    data: dict[str, Any] = {
        "name": name,
        "frontend": {"feature": [arch.feature], "subsampling": [arch.subsampling]},
        "encoder": {"width": [arch.width], "layers": len(layers), "min_depth": len(layers), "layer": first,
                    "overrides": overrides},
        "decoder": {"type": [arch.decoder]},
        "streaming": {"chunk": [arch.chunk]},
    }
    if arch.decoder != "ctc":
        data["decoder"].update(layers=[arch.decoder_layers], width=[arch.decoder_width])
    if arch.chunk:
        data["streaming"]["lookahead"] = [arch.lookahead]
    return data
