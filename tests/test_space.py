"""Search space: YAML format and errors, Arch canonical form, sampling/variation, encoding, and
exact counting / DP derivation checked against brute-force enumeration."""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from supernet import space_cli
from supernet.config import ConfigError
from supernet.space import SKIP, Arch, ArchError, LayerArch, SearchSpace
from supernet.space_dp import best_under_budget, budget_units, count_under_budget, to_units

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "configs" / "space"
FEAT = {"logmel80": 80, "logmel40": 40, "mfcc40": 40, "learnable": 80}


class ToyCost:
    """Parameter formulas shaped like the real blocks (same terms), independent of supernet.nn."""

    @staticmethod
    def frontend_params(feature, subsampling, width):
        n_conv = {4: 2, 6: 2, 8: 3}[subsampling]
        p = 10 * width + (n_conv - 1) * (9 * width * width + width) + (FEAT[feature] // subsampling) * width * width
        return p + (400 * 80 if feature == "learnable" else 0)

    @staticmethod
    def layer_params(layer, w):
        ffn = lambda r: 2 * w * r * w + r * w + 3 * w  # noqa: E731
        attn = lambda a: 4 * (w * w + w) + 2 * w + (w * w + 2 * w if a == "relpos" else 0)  # noqa: E731
        conv = lambda k: 3 * w * w + w * k + 8 * w  # noqa: E731
        return {
            "skip": lambda: 0,
            "conformer": lambda: 2 * ffn(layer.ffn_ratio) + attn(layer.attention) + conv(layer.kernel) + 2 * w,
            "transformer": lambda: ffn(layer.ffn_ratio) + attn(layer.attention) + 2 * w,
            "lstm": lambda: 4 * (2 * w * w + 2 * w),
            "blstm": lambda: 8 * (2 * w * w + 2 * w) + 2 * w * w + w,
            "cnn": lambda: conv(layer.kernel),
        }[layer.block]()

    @staticmethod
    def decoder_params(decoder, decoder_layers, decoder_width, width, vocab_size):
        V, d = vocab_size, decoder_width
        if decoder == "ctc":
            return width * V + V
        return V * d + decoder_layers * 8 * d * d + width * d + d * V + V


# A small space that exercises every rule: heads 4 does not divide width 30, blstm is full-context
# only, look-ahead must stay below the chunk, a depth list with a gap, and per-layer overrides.
CONSTRAINED = {
    "name": "constrained",
    "frontend": {"feature": ["logmel40"], "subsampling": [4, 8]},
    "encoder": {
        "width": [30, 32],
        "layers": 3,
        "depth": [1, 3],
        "layer": {
            "block": ["conformer", "transformer", "lstm", "blstm", "cnn"],
            "attention": ["mha", "relpos"],
            "heads": [2, 4],
            "ffn_ratio": [2],
            "kernel": [3, 7],
        },
        "overrides": {0: {"block": ["conformer", "blstm"]}, "1-2": {"kernel": [7]}},
    },
    "decoder": {"type": ["ctc", "attention"], "layers": [1, 2], "width": [16]},
    "streaming": {"chunk": [0, 2, 4], "lookahead": [0, 1, 2]},
}


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return SearchSpace.from_yaml(SPACES / "tiny.yaml", cost_model=ToyCost())


@pytest.fixture(scope="module")
def constrained() -> SearchSpace:
    return SearchSpace.from_dict(CONSTRAINED, where="constrained.yaml", cost_model=ToyCost())


@pytest.fixture(scope="module")
def constrained_archs(constrained) -> list[Arch]:
    return list(constrained.enumerate())


def known_arch() -> Arch:
    return Arch("logmel80", 4, 144, (LayerArch("conformer", "relpos", 4, 4, 15), LayerArch("lstm"), SKIP), "rnnt", 1, 256, chunk=16, lookahead=4)


# ----------------------------------------------------------------------------- Arch contract
def test_arch_json_round_trip_and_hashable():
    a = known_arch()
    assert Arch.from_json(a.to_json()) == a
    assert Arch.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.depth == 2 and a.streaming
    b = Arch("logmel80", 4, 144, list(a.layers), "rnnt", 1, 256, chunk=16, lookahead=4)  # a list becomes a tuple
    assert b == a and hash(b) == hash(a) and len({a, b}) == 1


def test_arch_id_is_stable_across_processes():
    a = known_arch()
    code = (
        "from supernet.space import *; "
        "print(Arch('logmel80', 4, 144, (LayerArch('conformer', 'relpos', 4, 4, 15), LayerArch('lstm'), SKIP), "
        "'rnnt', 1, 256, chunk=16, lookahead=4).id)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()
    assert other == a.id
    # Golden value: the canonical JSON (and so every stored arch id) must not change silently.
    assert a.id == "2078e1ccf6dd"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: LayerArch("lstm", heads=2), "heads does not apply to a lstm layer"),
        (lambda: LayerArch("conformer", "mha", 4, 4), "needs kernel"),
        (lambda: LayerArch("gru"), "allowed values"),
        (lambda: LayerArch("cnn", kernel=0), "kernel must be an integer >= 1"),
        (lambda: Arch("logmel80", 4, 96, (SKIP, LayerArch("lstm"))), "suffix"),
        (lambda: Arch("logmel80", 4, 96, (LayerArch("lstm"),), decoder_layers=2), "decoder_layers does not apply"),
        (lambda: Arch("logmel80", 4, 96, (LayerArch("lstm"),), decoder="rnnt"), "decoder_layers must be an integer"),
        (lambda: Arch("logmel80", 4, 96, (LayerArch("lstm"),), lookahead=0), "lookahead must be None"),
        (lambda: Arch("logmel80", 4, 96, (LayerArch("lstm"),), chunk=8), "lookahead must be an integer"),
        (lambda: Arch("fbank", 4, 96, (LayerArch("lstm"),)), "feature 'fbank' is unknown"),
    ],
)
def test_arch_rejects_non_canonical_forms(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ----------------------------------------------------------------------------- YAML format
@pytest.mark.parametrize("name", ["default", "tiny", "conformer_elastic"])
def test_shipped_spaces_load_and_sample(name):
    space = SearchSpace.from_yaml(SPACES / f"{name}.yaml")
    rng = random.Random(0)
    for _ in range(20):
        space.validate(space.sample(rng))
    assert space.count() > 0 and space.name == name


def test_conformer_elastic_dimensions():
    space = SearchSpace.from_yaml(SPACES / "conformer_elastic.yaml")
    assert space.num_layers == 6 and space.spec.depths == (2, 3, 4, 5, 6)
    ch = space.choices_for(5)
    assert ch.block == ("conformer", "skip") and ch.ffn_ratio == (2, 4) and ch.kernel == (7, 15, 31)
    assert space.choices_for(0).block == ("conformer",)


def test_tiny_count_matches_closed_form(tiny):
    # Per layer at width 32 and 48 (heads 2 and 4 both divide): conformer 2 heads x 2 kernels,
    # lstm, blstm, cnn x 2 kernels = 8 options; 7 when streaming (no blstm). Depth 1..3.
    full, streaming = sum(8**d for d in (1, 2, 3)), sum(7**d for d in (1, 2, 3))
    heads = 1 * 1 * 2 * 2  # features x subsamplings x widths x decoders (ctc, rnnt 1x1)
    assert tiny.count() == heads * (full + 2 * streaming)  # chunk 4 with look-ahead 0 or 2
    assert tiny.count() == sum(1 for _ in tiny.enumerate())


def write_space(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tiny_dict() -> dict:
    return yaml.safe_load((SPACES / "tiny.yaml").read_text())


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d["encoder"].update(widht=[3]), ["unknown field", "encoder.widht", "known fields"]),
        (lambda d: d["encoder"]["layer"].update(block=["conformer", "gru"]), ["encoder.layer.block", "'gru'", "allowed values: conformer, transformer, lstm, blstm, cnn"]),
        (lambda d: d["encoder"]["layer"].update(block=["conformer", "skip"]), ["encoder.layer.block", "min_depth"]),
        (lambda d: d["frontend"].update(feature=["logmel64"]), ["frontend.feature", "allowed values: logmel80, logmel40, mfcc40, learnable"]),
        (lambda d: d["frontend"].update(subsampling=[3]), ["frontend.subsampling", "allowed values: 4, 6, 8"]),
        (lambda d: d["encoder"]["layer"].update(heads=[2, 5]), ["encoder.layer.heads", "5 can never be used", "divide", "usable values there: 2"]),
        (lambda d: d["encoder"]["layer"].update(kernel=[8]), ["encoder.layer.kernel", "odd"]),
        (lambda d: d["streaming"].update(chunk=[4]), ["encoder.layer.block", "'blstm'", "full_context_blocks"]),
        (lambda d: d["streaming"].update(lookahead=[0, 4]), ["streaming.lookahead", "4 can never be used", "smaller"]),
        (lambda d: d["streaming"].update(chunk=[0, 2], lookahead=[2]), ["streaming.chunk", "2 has no allowed look-ahead"]),
        (lambda d: d["decoder"].pop("layers"), ["decoder.layers", "missing", "rnnt"]),
        (lambda d: d["decoder"].update(type=["ctc"]), ["decoder.layers", "only ctc"]),
        (lambda d: d["encoder"].update(overrides={5: {"block": ["lstm"]}}), ["encoder.overrides.5", "outside 0..2"]),
        (lambda d: d["encoder"].update(overrides={0: {"block": ["lstm"], "kernel": [7]}}), ["encoder.overrides.0.kernel", "no block of layer 0"]),
        (lambda d: d["encoder"].update(overrides={"0-1": {"block": ["lstm"]}, 1: {"block": ["cnn"]}}), ["encoder.overrides.1", "also overridden"]),
        (lambda d: d["encoder"].update(width=[32, 32]), ["encoder.width", "more than once"]),
        (lambda d: d["encoder"].update(width=[32, 45]), ["encoder.width", "45 is odd", "blstm"]),
        (lambda d: d["encoder"].update(width=32), ["encoder.width", "must be a list"]),
        (lambda d: d["encoder"].update(depth=[1, 3]), ["encoder.depth", "not both"]),
        (lambda d: d["encoder"]["layer"].update(block=["lstm"]), ["encoder.layer.attention", "no layer uses it"]),
        (lambda d: d["encoder"]["layer"].pop("kernel"), ["encoder.layer.kernel", "missing", "conformer, cnn"]),
        (lambda d: d["encoder"].update(width=[30]) or d["encoder"]["layer"].update(heads=[4]), ["'conformer' can never be used", "width"]),
        (lambda d: d["constraints"].update(full_context_blocks=["gru"]) if "constraints" in d else d.update(constraints={"full_context_blocks": ["gru"]}), ["constraints.full_context_blocks", "'gru'"]),
    ],
)
def test_yaml_errors_name_file_dimension_and_allowed_values(tmp_path, edit, expected):
    data = tiny_dict()
    edit(data)
    path = write_space(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_yaml(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, message


def test_overrides_by_index_and_range(constrained):
    assert constrained.choices_for(0).block == ("conformer", "blstm")
    assert constrained.choices_for(0).kernel == (3, 7)
    assert constrained.choices_for(1).kernel == (7,) and constrained.choices_for(2).kernel == (7,)
    assert "skip" in constrained.choices_for(1).block and "skip" not in constrained.choices_for(0).block
    with pytest.raises(IndexError):
        constrained.choices_for(3)


# ----------------------------------------------------------------------------- membership
def test_enumerated_archs_are_valid_distinct_and_respect_rules(constrained, constrained_archs):
    assert len(set(constrained_archs)) == len(constrained_archs) == constrained.count()
    for a in constrained_archs:
        assert a in constrained
        assert a.depth in (1, 3)
        for layer in a.layers:
            assert layer.heads is None or a.width % layer.heads == 0
            assert not (a.streaming and layer.block == "blstm")
        assert a.lookahead is None or a.lookahead < a.chunk


@pytest.mark.parametrize(
    "change, dimension",
    [
        (dict(feature="mfcc40"), "feature = 'mfcc40'"),
        (dict(width=64), "width = 64"),
        (dict(chunk=2, lookahead=2), "lookahead = 2"),
        (dict(chunk=3, lookahead=0), "chunk = 3"),
        (dict(decoder="rnnt", decoder_layers=1, decoder_width=16), "decoder = 'rnnt'"),
        (dict(decoder="attention", decoder_layers=3, decoder_width=16), "decoder_layers = 3"),
    ],
)
def test_validate_names_the_dimension(constrained, change, dimension):
    base = Arch("logmel40", 4, 30, (LayerArch("conformer", "mha", 2, 2, 3), SKIP, SKIP))
    constrained.validate(base)
    bad = Arch.from_dict({**base.to_dict(), **change})
    with pytest.raises(ArchError, match="allowed values") as err:
        constrained.validate(bad)
    assert dimension in str(err.value) and "constrained.yaml" in str(err.value)
    assert not constrained.contains(bad)


@pytest.mark.parametrize(
    "layers, chunk, expected",
    [
        ((LayerArch("conformer", "mha", 4, 2, 3), SKIP, SKIP), 0, "heads must divide width 30"),
        ((LayerArch("blstm"), SKIP, SKIP), 2, "full_context_blocks"),
        ((LayerArch("lstm"), SKIP, SKIP), 0, "layers[0].block = 'lstm'"),
        ((LayerArch("conformer", "mha", 2, 2, 3), LayerArch("cnn", kernel=3), LayerArch("lstm")), 0, "layers[1].kernel = 3"),
        ((LayerArch("conformer", "mha", 2, 2, 3), LayerArch("lstm"), SKIP), 0, "depth = 2"),
        ((LayerArch("conformer", "mha", 2, 2, 3), SKIP), 0, "len(layers)"),
    ],
)
def test_validate_explains_layer_problems(constrained, layers, chunk, expected):
    arch = Arch("logmel40", 4, 30, layers, chunk=chunk, lookahead=0 if chunk else None)
    with pytest.raises(ArchError) as err:
        constrained.validate(arch)
    assert expected in str(err.value)


# ----------------------------------------------------------------------------- sampling, variation
def test_sampling_is_reproducible_and_valid(tiny):
    def draw(seed: int) -> list[Arch]:
        rng = random.Random(seed)
        return [tiny.sample(rng) for _ in range(30)]

    first = draw(7)
    assert first == draw(7)
    assert first != draw(8)
    assert all(a in tiny for a in first)


def test_generate_asks_only_open_decisions_and_builds_valid_archs(constrained, constrained_archs):
    asked = []

    def first(key, values):
        asked.append((key, list(values)))
        return values[0]

    arch = constrained.generate(first)
    assert arch in constrained
    assert asked and all(len(values) > 1 for _, values in asked)  # single-valued decisions are not asked
    # replaying an arch's own values rebuilds it, for every arch of the space
    for arch in constrained_archs:
        assert constrained.generate(lambda key, values: constrained.value(arch, key)) == arch


def test_sampling_is_uniform_per_choice(tiny):
    rng = random.Random(0)
    archs = [tiny.sample(rng) for _ in range(3000)]
    depth = Counter(a.depth for a in archs)
    width = Counter(a.width for a in archs)
    full_blocks = Counter(a.layers[0].block for a in archs if not a.streaming)
    for counter, n in ((depth, 3), (width, 2), (full_blocks, 4)):
        total = sum(counter.values())
        assert len(counter) == n
        assert all(abs(c / total - 1 / n) < 0.05 for c in counter.values()), counter


def test_mutate_changes_and_stays_valid(constrained):
    rng = random.Random(1)
    for prob in (0.01, 0.3, 1.0):
        for _ in range(40):
            parent = constrained.sample(rng)
            child = constrained.mutate(parent, rng, prob)
            assert child != parent and child in constrained
    parent = constrained.sample(random.Random(3))
    assert constrained.mutate(parent, random.Random(5), 0.2) == constrained.mutate(parent, random.Random(5), 0.2)
    with pytest.raises(ValueError):
        constrained.mutate(parent, rng, 0.0)


def test_mutate_small_prob_changes_few_dimensions(tiny):
    rng = random.Random(2)
    changed = []
    for _ in range(200):
        a = tiny.sample(rng)
        b = tiny.mutate(a, rng, 0.05)
        changed.append(sum(x != y for x, y in zip(tiny.encode(a), tiny.encode(b))))
    assert sorted(changed)[len(changed) // 2] <= 4  # typically one decision (a one-hot swap is 2 entries)


def test_mutate_on_a_single_arch_space_returns_it():
    data = {
        "frontend": {"feature": ["logmel40"], "subsampling": [4]},
        "encoder": {"width": [32], "layers": 1, "layer": {"block": ["lstm"]}},
    }
    space = SearchSpace.from_dict(data)
    assert space.count() == 1
    only = next(space.enumerate())
    assert space.mutate(only, random.Random(0), 0.5) == only


def test_crossover_takes_values_from_parents(constrained):
    rng = random.Random(4)
    for _ in range(60):
        a, b = constrained.sample(rng), constrained.sample(rng)
        child = constrained.crossover(a, b, rng)
        assert child in constrained
        for f in ("feature", "subsampling", "width", "chunk", "decoder"):
            assert getattr(child, f) in (getattr(a, f), getattr(b, f))
        assert child.depth in (a.depth, b.depth)
        assert constrained.crossover(a, a, rng) == a


def test_largest_and_smallest(constrained, tiny):
    big, small = constrained.largest(), constrained.smallest()
    assert big in constrained and small in constrained
    assert big.width == 32 and big.depth == 3 and big.subsampling == 4 and big.layers[0].heads == 4
    assert small.width == 30 and small.depth == 1 and small.subsampling == 8
    lstm = tiny.largest(block="lstm")
    assert all(la.block == "lstm" for la in lstm.layers) and lstm.width == 48
    with pytest.raises(ValueError, match="not available"):
        tiny.largest(block="transformer")
    with pytest.raises(ValueError, match="cannot pin"):
        tiny.largest(colour="red")


def test_middle_sits_between_the_extremes():
    space = SearchSpace.from_yaml(SPACES / "conformer_elastic.yaml", cost_model=ToyCost())
    mid = space.middle()
    assert mid in space
    # width 96/144/192, depth 2-6, heads 2/4, FFN 2/4, kernel 7/15/31: the middle value, the lower of two
    assert (mid.width, mid.depth) == (144, 4)
    assert {(la.heads, la.ffn_ratio, la.kernel) for la in mid.layers[:mid.depth]} == {(2, 2, 15)}
    assert space.params(space.smallest(), 32) < space.params(mid, 32) < space.params(space.largest(), 32)
    assert space.middle(depth=6).depth == 6


def test_largest_is_the_params_maximum_of_the_elastic_conformer():
    space = SearchSpace.from_yaml(SPACES / "conformer_elastic.yaml", cost_model=ToyCost())
    cm = ToyCost()
    head_params = lambda h: cm.frontend_params(h.feature, h.subsampling, h.width) + cm.decoder_params(h.decoder, None, None, h.width, 32)  # noqa: E731
    layer_params = lambda i, la, h: cm.layer_params(la, h.width)  # noqa: E731
    zero = lambda *args: 0  # noqa: E731
    most = space.best_arch(layer_params, zero, 0, head_score=head_params, context=lambda h: None)
    least = space.best_arch(lambda *a: -layer_params(*a), zero, 0, head_score=lambda h: -head_params(h), context=lambda h: None)
    assert space.params(space.largest(), 32) == most.score == space.params(most.arch, 32)
    assert space.params(space.smallest(), 32) == -least.score


def test_encode_is_fixed_length_bounded_and_injective(tiny):
    names = tiny.encode_names()
    vectors = {tuple(tiny.encode(a)) for a in tiny.enumerate()}
    assert len(vectors) == tiny.count()
    assert all(len(v) == len(names) for v in vectors)
    assert all(0.0 <= x <= 1.0 for v in vectors for x in v)
    assert "layers.1.block=skip" in names and "width" in names


def test_encode_handles_a_single_zero_lookahead():
    data = tiny_dict()
    data["streaming"] = {"chunk": [0, 4], "lookahead": [0]}
    space = SearchSpace.from_dict(data)
    full = next(a for a in space.enumerate() if not a.streaming and all(la.block != "blstm" for la in a.layers))
    streaming = Arch.from_dict({**full.to_dict(), "chunk": 4, "lookahead": 0})
    names = space.encode_names()
    assert space.encode(full)[names.index("lookahead")] == 0.0
    assert space.encode(streaming)[names.index("lookahead")] == 1.0


def test_encode_of_default_space():
    space = SearchSpace.from_yaml(SPACES / "default.yaml")
    rng = random.Random(0)
    lengths = {len(space.encode(space.sample(rng))) for _ in range(50)}
    assert lengths == {len(space.encode_names())}


# ----------------------------------------------------------------------------- exact DP
def test_count_equals_brute_force_on_constrained_space(constrained, constrained_archs):
    assert constrained.count() == len(constrained_archs)
    params = sorted(constrained.params(a, 11) for a in constrained_archs)
    for q in (0.0, 0.01, 0.2, 0.5, 0.77, 0.99, 1.0):
        n = params[min(int(q * len(params)), len(params) - 1)]
        for budget in (n - 1, n, n + 1):
            assert constrained.count(max_params=budget, vocab_size=11) == sum(p <= budget for p in params)
    assert constrained.count(max_params=0, vocab_size=11) == 0
    with pytest.raises(ValueError, match="vocab_size"):
        constrained.count(max_params=10**6)


def test_count_under_budget_brute_force():
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 5)
        layers = [[rng.randint(0, 9) for _ in range(rng.randint(1, 3))] for _ in range(n)]
        start = {rng.randint(0, 5): rng.randint(1, 3) for _ in range(rng.randint(1, 3))}
        exits = {d: rng.randint(0, 4) for d in rng.sample(range(n + 1), rng.randint(1, n + 1))}
        for budget in range(0, 40, 3):
            brute = sum(
                m
                for s, m in start.items()
                for d, e in exits.items()
                for path in itertools.product(*layers[:d])
                if s + sum(path) + e <= budget
            )
            assert count_under_budget(layers, budget, start=start, exits=exits) == brute


def test_count_under_budget_is_exact_beyond_int64():
    rng = random.Random(0)
    layers = [[rng.randint(0, 50) for _ in range(12)] for _ in range(24)]  # 12**24 paths > 2**63
    for budget in (100, 600, 1200):
        table = {0: 1}  # plain one-directional dict DP as the reference
        for layer in layers:
            nxt: dict[int, int] = {}
            for cost, n in table.items():
                for step in layer:
                    if cost + step <= budget:
                        nxt[cost + step] = nxt.get(cost + step, 0) + n
            table = nxt
        assert count_under_budget(layers, budget) == sum(table.values())
    assert count_under_budget(layers, 10**9) == 12**24


def test_best_under_budget_brute_force():
    rng = random.Random(1)
    for _ in range(60):
        n = rng.randint(1, 4)
        opts = [[(f"l{i}o{j}", rng.choice([rng.uniform(-3, 1), -math.inf]) if j else rng.uniform(-3, 1), rng.randint(0, 9)) for j in range(rng.randint(1, 4))] for i in range(n)]
        exits = {d: (rng.uniform(-1, 0), rng.randint(0, 3)) for d in rng.sample(range(n + 1), rng.randint(1, n + 1))}
        fixed = rng.randint(0, 5)
        for budget in range(0, 40, 4):
            best = None
            for d, (es, ec) in exits.items():
                for path in itertools.product(*opts[:d]):
                    cost, score = fixed + ec + sum(p[2] for p in path), es + sum(p[1] for p in path)
                    if cost <= budget and score > -math.inf and (best is None or score > best + 1e-12):
                        best = score
            res = best_under_budget(opts, fixed, budget, exits=exits)
            if best is None:
                assert res is None
                continue
            assert res.score == pytest.approx(best)
            chosen = {o[0]: o for layer in opts for o in layer}
            path = [chosen[c] for c in res.choices]
            assert len(path) == res.exit and res.cost <= budget
            assert res.cost == fixed + exits[res.exit][1] + sum(p[2] for p in path)


def test_units_round_costs_up_and_budgets_down():
    assert to_units(0.1, 1e-3) == 100 and to_units(0.1004, 1e-3) == 101 and to_units(7, 1) == 7
    assert budget_units(0.1, 1e-3) == 100 and budget_units(0.1009, 1e-3) == 100
    with pytest.raises(ValueError):
        to_units(-1.0, 1e-3)


def test_best_arch_equals_brute_force_with_float_costs(tiny):
    rng = random.Random(3)
    layer_table: dict = {}
    head_table: dict = {}

    def layer_score(i, layer, head):  # like log-probabilities of DARTS alphas; depend on the chunk
        return layer_table.setdefault((i, layer, head.chunk), math.log(rng.random()))

    def head_score(head):
        return head_table.setdefault(head, math.log(rng.random()))

    def layer_cost(i, layer, head):  # latency-like, in ms
        return 0.0 if layer.block == "skip" else 0.37 * (head.width / 32) * (1 + (layer.kernel or 3) / 10) + (0.2 if head.chunk else 0.0)

    def head_cost(head):
        return 0.11 + (0.05 if head.decoder == "rnnt" else 0.0)

    archs = list(tiny.enumerate())
    resolution = 1e-3
    scored = []
    for a in archs:
        head = Arch(a.feature, a.subsampling, a.width, (), a.decoder, a.decoder_layers, a.decoder_width, a.chunk, a.lookahead)
        score = head_score(head) + sum(layer_score(i, la, head) for i, la in enumerate(a.layers))
        units = to_units(head_cost(head), resolution) + sum(to_units(layer_cost(i, la, head), resolution) for i, la in enumerate(a.layers))
        scored.append((score, units, a))
    for budget in (0.3, 0.9, 1.7, 3.0, 10.0):
        fit = [s for s in scored if s[1] <= budget_units(budget, resolution)]
        got = tiny.best_arch(layer_score, layer_cost, budget, head_score=head_score, head_cost=head_cost, context=lambda h: h.chunk, resolution=resolution)
        if not fit:
            assert got is None
            continue
        best = max(fit, key=lambda s: s[0])
        assert got.score == pytest.approx(best[0]) and got.arch in tiny and got.cost <= budget + 1e-9
        assert got.arch == best[2]  # random float scores: the argmax is unique
        again = tiny.best_arch(layer_score, layer_cost, budget, head_score=head_score, head_cost=head_cost, resolution=resolution)
        assert again.arch == got.arch  # the default context (every head) agrees


def test_best_arch_respects_forbidden_choices(tiny):
    def layer_score(i, layer, head):
        return -math.inf if layer.block == "cnn" else (1.0 if layer.block != "skip" else 0.0)

    got = tiny.best_arch(layer_score, lambda *a: 0, 0, head_score=lambda h: -math.inf if h.chunk == 0 else 0.0)
    assert got.arch.streaming and got.arch.depth == 3
    assert all(la.block != "cnn" for la in got.arch.layers)


# ----------------------------------------------------------------------------- real parameter counts
def test_count_with_real_params_matches_brute_force():
    params = pytest.importorskip("supernet.nn.params", reason="supernet/nn/params.py not written yet")
    space = SearchSpace.from_yaml(SPACES / "tiny.yaml", cost_model=params)
    archs = list(space.enumerate())
    vocab = 12
    counts = []
    for a in archs:
        parts = (
            params.frontend_params(a.feature, a.subsampling, a.width)
            + sum(params.layer_params(la, a.width) for la in a.layers)
            + params.decoder_params(a.decoder, a.decoder_layers, a.decoder_width, a.width, vocab)
        )
        total = params.arch_params(a, vocab)
        assert total == parts, f"arch_params is not the sum of its parts for {a.describe()}: the DP needs additivity"
        counts.append(total)
    counts.sort()
    for q in (0.0, 0.1, 0.5, 0.9, 1.0):
        n = counts[min(int(q * len(counts)), len(counts) - 1)]
        assert space.count(max_params=n, vocab_size=vocab) == sum(c <= n for c in counts)


# ----------------------------------------------------------------------------- CLI
def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="supernet")
    space_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_count_sample_show(capsys):
    cfg = str(SPACES / "tiny.yaml")
    rc, out, _ = run_cli(["space", "count", "-c", cfg], capsys)
    assert rc == 0 and int(out) == SearchSpace.from_yaml(cfg).count()
    rc, out, _ = run_cli(["space", "sample", "-c", cfg, "-n", "4", "--seed", "9"], capsys)
    lines = out.strip().splitlines()
    space = SearchSpace.from_yaml(cfg)
    assert rc == 0 and len(lines) == 4 and all(Arch.from_json(line) in space for line in lines)
    assert run_cli(["space", "sample", "-c", cfg, "-n", "4", "--seed", "9"], capsys)[1] == out
    rc, out, _ = run_cli(["space", "show", "-c", cfg], capsys)
    assert rc == 0 and "encoder.width" in out and "32, 48" in out and "5528 architectures" in out


def test_cli_count_with_budget_needs_vocab(capsys):
    cfg = str(SPACES / "tiny.yaml")
    rc, _, err = run_cli(["space", "count", "-c", cfg, "--max-params", "2M"], capsys)
    assert rc == 2 and "--vocab-size" in err
    assert space_cli._size("2M") == 2_000_000 and space_cli._size("500k") == 500_000 and space_cli._size("3e6") == 3_000_000


def test_cli_bad_config_raises_config_error(tmp_path, capsys):
    data = tiny_dict()
    data["frontend"]["feature"] = ["wav2vec"]
    path = write_space(tmp_path, data)
    with pytest.raises(ConfigError, match="frontend.feature"):
        run_cli(["space", "show", "-c", str(path)], capsys)
