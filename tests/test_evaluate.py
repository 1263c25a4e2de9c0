"""Evaluator: caching, per-set / per-language aggregation, equality with the extracted model,
result store, batch statistics, progressive evaluation and successive halving."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import torch

from supernet.data.tokenizer import CharTokenizer
from supernet.evaluate import (Evaluator, GroupOutput, Metrics, ProgressiveConfig, ResultStore, StageConfig, TrainConfig,
                               batch_stat_modules, make_batches, progressive_evaluate, read_archs,
                               recalibrate_batch_stats, successive_halving, summarize)
from supernet.metrics import cer, wer
from supernet.model import SpeechSupernet
from supernet.nn.config import NetConfig
from supernet.space import SearchSpace
from supernet.subnet import extract

SPACE = {
    "name": "test-evaluate",
    "frontend": {"feature": ["logmel40", "learnable"], "subsampling": [4]},
    "encoder": {"width": [16, 24], "layers": 2, "min_depth": 1,
                "layer": {"block": ["conformer", "lstm", "cnn"], "attention": ["mha"], "heads": [2], "ffn_ratio": [2],
                          "kernel": [3, 5]}},
    "decoder": {"type": ["ctc", "rnnt", "attention"], "layers": [1], "width": [16]},
    "streaming": {"chunk": [0, 4], "lookahead": [0]},
}
TEXTS = {"en": ["one two", "three", "four five six", "seven"], "de": ["eins zwei", "drei", "vier"]}


def _items(lang: str, n: int, tag: str, tok: CharTokenizer, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        text = TEXTS[lang][i % len(TEXTS[lang])]
        out.append({"audio": 0.1 * torch.randn(4000 + 1200 * i, generator=g), "target": torch.tensor(tok.encode(text)),
                    "text": text, "lang": lang, "id": f"{tag}-{lang}-{i}"})
    return out


class _ListSet(list):
    """A list of items with ``durations`` (what train_subnet reads), like SpeechDataset."""

    @property
    def durations(self) -> list[float]:
        return [len(it["audio"]) / 16000 for it in self]


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.build(t for ts in TEXTS.values() for t in ts)


@pytest.fixture(scope="module")
def dev_sets(tok) -> dict[str, list[dict]]:
    return {"dev.a": _items("en", 3, "a", tok, 1) + _items("de", 2, "a", tok, 2), "dev.b": _items("en", 2, "b", tok, 3)}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE)


@pytest.fixture()
def net(space, tok) -> SpeechSupernet:
    torch.manual_seed(0)
    return SpeechSupernet.from_space(space, tok.vocab_size, NetConfig(subsampler_channels=8, learnable_filters=8,
                                                                      max_symbols=2)).eval()


def _archs(space, n: int, seed: int = 0, **fixed):
    rng, out = random.Random(seed), {}
    while len(out) < n:
        a = space.sample(rng)
        if all(getattr(a, k) == v for k, v in fixed.items()):
            out[a.id] = a
    return list(out.values())


# ---------------------------------------------------------------------------- caching
def test_second_evaluation_is_served_from_the_cache(net, dev_sets, tok, space):
    calls = {"n": 0}
    original = net.static_state_dict

    def counting(arch):
        calls["n"] += 1
        return original(arch)

    net.static_state_dict = counting
    ev = Evaluator(net, dev_sets, tok, batch_size=2)
    arch = _archs(space, 1, decoder="ctc")[0]
    first = ev.evaluate(arch)
    second = ev.evaluate(arch)
    assert second is first
    assert calls["n"] == 1 and ev.forwards == 1 and ev.hits == 1


def test_features_are_computed_once_per_front_end_and_redone_when_learnable_weights_change(net, dev_sets, tok, space):
    ev = Evaluator(net, dev_sets, tok, batch_size=2)
    mel = _archs(space, 3, feature="logmel40", decoder="ctc")
    learn = _archs(space, 2, feature="learnable", decoder="ctc")
    for a in mel + learn:
        ev.evaluate(a)
    assert ev.features.computed == {"logmel40": 1, "learnable": 1} and ev.forwards == 5
    with torch.no_grad():
        net.features["learnable"].conv.weight.mul_(1.5)  # an in-place update, like an optimiser step
    again = ev.evaluate(learn[0])  # weights changed: the cached result is stale and is recomputed
    assert ev.forwards == 6 and ev.features.computed == {"logmel40": 1, "learnable": 2}
    assert again.arch_id == learn[0].id


def test_results_persist_on_disk_for_the_same_supernet_only(net, dev_sets, tok, space, tmp_path):
    path = tmp_path / "eval.jsonl"
    archs = _archs(space, 2, decoder="ctc")
    ev = Evaluator(net, dev_sets, tok, batch_size=2, cache_path=path)
    first = [ev.evaluate(a) for a in archs]
    assert len(path.read_text().splitlines()) == 2
    ev2 = Evaluator(net, dev_sets, tok, batch_size=2, cache_path=path)
    assert [ev2.evaluate(a) for a in archs] == first and ev2.forwards == 0 and ev2.hits == 2
    with torch.no_grad():
        next(net.parameters()).add_(0.01)
    ev3 = Evaluator(net, dev_sets, tok, batch_size=2, cache_path=path)
    ev3.evaluate(archs[0])
    assert ev3.forwards == 1 and ev3.store.other_fingerprints == 2


def test_store_ignores_an_interrupted_last_line_and_rejects_other_damage(net, dev_sets, tok, space, tmp_path):
    path = tmp_path / "eval.jsonl"
    ev = Evaluator(net, dev_sets, tok, batch_size=2, cache_path=path)
    arch = _archs(space, 1, decoder="ctc")[0]
    ev.evaluate(arch)
    good = path.read_text()
    path.write_text(good + good[: len(good) // 2])  # a crash mid-write
    store = ResultStore(path, ev.fingerprint)
    assert arch.id in store
    store.put(arch, store.get(arch.id))  # appends on a fresh line
    assert len(ResultStore(path, ev.fingerprint)) == 1
    path.write_text("{not json\n" + good)
    with pytest.raises(ValueError, match=r"eval.jsonl:1: not a result row"):
        ResultStore(path, ev.fingerprint)


# ---------------------------------------------------------------------------- aggregation
def test_summarize_scores_sets_and_pools_languages_over_sets():
    groups = [
        GroupOutput("dev.a", "en", ["one two", "three"], ["one two", "three four"], loss_sum=2.0),
        GroupOutput("dev.a", "de", ["eins"], ["eins zwei drei"], loss_sum=3.0),
        GroupOutput("dev.b", "en", ["five", "six seven"], ["five", "six seven"], loss_sum=1.0),
    ]
    sets, langs = summarize(groups)
    assert list(sets) == ["dev.a", "dev.b"] and list(langs) == ["de", "en"]
    assert sets["dev.a"].wer == pytest.approx(wer(["one two", "three", "eins"], ["one two", "three four", "eins zwei drei"]))
    assert sets["dev.a"].wer == pytest.approx(3 / 7)  # corpus level: 3 edits over 7 words
    assert sets["dev.b"].wer == 0.0 and sets["dev.b"].utterances == 2 and sets["dev.b"].words == 3
    assert langs["en"].wer == pytest.approx(1 / 7)  # pooled over dev.a and dev.b
    assert langs["en"].cer == pytest.approx(cer(["one two", "three", "five", "six seven"],
                                                ["one two", "three four", "five", "six seven"]))
    assert langs["de"].wer == pytest.approx(2 / 3)
    assert sets["dev.a"].loss == pytest.approx(5.0 / 3) and langs["en"].loss == pytest.approx(3.0 / 4)
    m = Metrics("x", sets, langs, costs={"params": 10})
    assert m.wer == pytest.approx((3 / 7 + 0.0) / 2)  # unweighted mean over sets: multilingual fitness
    assert m["wer/set/dev.a"] == sets["dev.a"].wer and m["wer/lang/de"] == langs["de"].wer
    assert m["loss/lang/en"] == langs["en"].loss and m["params"] == 10.0
    assert Metrics.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    with pytest.raises(ValueError, match="every reference transcript is empty"):
        summarize([GroupOutput("dev.c", "en", ["a"], [" "])])


def test_metrics_plug_into_the_search_as_flat_metrics(net, dev_sets, tok, space):
    from supernet.search.evaluators import ArchEvaluator, as_metrics
    from supernet.search.objectives import objective_values, with_derived

    ev = Evaluator(net, dev_sets, tok, batch_size=2)
    assert isinstance(ev, ArchEvaluator)
    m = ev.evaluate(_archs(space, 1, decoder="ctc")[0])
    flat = as_metrics(m)
    assert {"wer", "cer", "loss", "params", "wer/set/dev.a", "wer/set/dev.b", "wer/lang/en", "wer/lang/de"} <= set(flat)
    assert objective_values(flat, ["wer", "params"]) == [m.wer, m["params"]]
    assert with_derived(flat)["wer_mean"] == pytest.approx((m["wer/lang/en"] + m["wer/lang/de"]) / 2)


def test_batches_are_single_language_and_cover_every_utterance(dev_sets):
    batches = make_batches(dev_sets, batch_size=2)
    assert all(len({b.lang}) == 1 and len(b) <= 2 for b in batches)
    ids = [i for b in batches for i in b.ids]
    assert sorted(ids) == sorted(it["id"] for items in dev_sets.values() for it in items)
    b = batches[0]
    assert b.audio.shape == (len(b), int(b.audio_lengths.max())) and b.targets.shape[0] == len(b)


# ---------------------------------------------------------------------------- equality
def _direct_scores(net, arch, items, tok):
    """Independent scoring: the supernet's own discrete forward, one utterance at a time (no padding)."""
    hyps, refs, losses = [], [], []
    with torch.no_grad():
        for it in items:
            enc, lengths = net(it["audio"][None], torch.tensor([len(it["audio"])]), arch)
            t = it["target"][None]
            losses.append(float(net.loss(enc, lengths, t, torch.tensor([t.shape[1]]), arch)))
            hyps.append(tok.decode(net.decode(enc, lengths, arch)[0]))
            refs.append(it["text"])
    return wer(hyps, refs), cer(hyps, refs), sum(losses) / len(losses)


@pytest.mark.parametrize("decoder", ["ctc", "rnnt", "attention"])
def test_evaluation_equals_the_extracted_model_and_direct_scoring(net, dev_sets, tok, space, decoder):
    ev = Evaluator(net, dev_sets, tok, batch_size=2)
    for arch in _archs(space, 2, seed=3, decoder=decoder):
        got = ev.evaluate(arch)
        via_extract = ev.score_model(extract(net, arch), arch.id)
        assert via_extract.sets.keys() == got.sets.keys()
        for name in got.sets:
            assert via_extract.sets[name].wer == got.sets[name].wer
            assert via_extract.sets[name].cer == got.sets[name].cer
            assert via_extract.sets[name].loss == pytest.approx(got.sets[name].loss, rel=1e-5, abs=1e-6)
        for name, items in dev_sets.items():
            w, c, loss = _direct_scores(net, arch, items, tok)
            assert got.sets[name].wer == pytest.approx(w) and got.sets[name].cer == pytest.approx(c)
            assert got.sets[name].loss == pytest.approx(loss, rel=1e-4, abs=1e-5)
        assert got["params"] == sum(p.numel() for p in extract(net, arch).parameters())


# ---------------------------------------------------------------------------- checks
def test_the_supernet_has_no_batch_statistics(net, dev_sets, tok):
    assert batch_stat_modules(net) == []  # LayerNorm everywhere: no per-subnet recalibration needed
    net.add_module("extra", torch.nn.BatchNorm1d(4))  # a network that had one would need calibration data
    with pytest.raises(ValueError, match=r"batch-statistics layers \['extra'\].*calibration_sets"):
        Evaluator(net, dev_sets, tok)


def test_recalibration_estimates_each_subnets_own_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5)).eval()
    assert batch_stat_modules(model) == ["1"]
    data = [torch.randn(8, 3) + 2.0 for _ in range(3)]
    assert recalibrate_batch_stats(model, lambda: [model(x) for x in data]) == 1
    h = torch.cat([model[0](x) for x in data]).detach()
    assert torch.allclose(model[1].running_mean, h.mean(0), atol=1e-5)
    assert not model[1].training and not model[2].training and model[1].momentum == 0.1


def test_bad_inputs_are_refused_with_clear_errors(net, dev_sets, tok, space, tmp_path):
    with pytest.raises(ValueError, match="no dev sets"):
        Evaluator(net, {}, tok)
    with pytest.raises(ValueError, match="dev set 'x' is empty"):
        Evaluator(net, {"x": []}, tok)
    with pytest.raises(ValueError, match=r"dev set 'x' item 0: missing \['target'"):
        Evaluator(net, {"x": [{"audio": torch.zeros(10), "text": "a", "lang": "en", "id": "0"}]}, tok)
    ev = Evaluator(net, dev_sets, tok)
    with pytest.raises(TypeError, match="takes an Arch"):
        ev.evaluate({"feature": "logmel40"})
    arch = _archs(space, 1)[0]
    with pytest.raises(ValueError, match="width = 999 is not a candidate"):
        ev.evaluate(replace(arch, width=999))
    bad = tmp_path / "archs.jsonl"
    bad.write_text(json.dumps(arch.to_dict()) + "\n" + '{"feature": "x"}\n')
    with pytest.raises(ValueError, match=r"archs.jsonl:2: not an arch"):
        read_archs(bad)


# ---------------------------------------------------------------------------- progressive
def test_successive_halving_keeps_the_best_fraction():
    items = list("abcdefgh")
    scores = [0.5, 0.1, 0.9, 0.3, 0.3, 0.7, 0.2, 0.8]
    assert successive_halving(items, scores, 0.5) == ["b", "g", "d", "e"]  # ties keep input order
    assert successive_halving(items, scores, 0.25) == ["b", "g"]
    assert successive_halving(items, scores, 0.3) == ["b", "g", "d"]  # ceil(0.3 * 8) = 3
    assert successive_halving(items, scores, 0.01) == ["b"]  # at least one
    assert successive_halving(items, scores, 1.0) == sorted(items, key=lambda x: (scores[items.index(x)], items.index(x)))
    with pytest.raises(ValueError, match="keep"):
        successive_halving(items, scores, 0.0)


def test_progressive_evaluation_halves_between_stages(net, dev_sets, tok, space):
    ev = Evaluator(net, dev_sets, tok, batch_size=4)
    archs = _archs(space, 4, seed=1, decoder="ctc")
    train = _ListSet(_items("en", 4, "t", tok, 7) + _items("de", 2, "t", tok, 8))
    quick = TrainConfig(max_steps=2, eval_every=1, patience=1, batch_size=4, monitor="wer")
    cfg = ProgressiveConfig((StageConfig("inherited", None, keep=0.5),
                             StageConfig("short", replace(quick, train_fraction=0.5), keep=0.5),
                             StageConfig("long", replace(quick, max_steps=3), keep=1.0)))
    res = progressive_evaluate(ev, archs, train, cfg)
    per_stage = {s: [a for a, rows in res.scores.items() if s in rows] for s in res.stages}
    assert [len(per_stage[s]) for s in res.stages] == [4, 2, 1]
    assert set(per_stage["long"]) <= set(per_stage["short"]) <= set(per_stage["inherited"])
    inherited = {a: res.scores[a]["inherited"]["wer"] for a in per_stage["inherited"]}
    assert set(per_stage["short"]) == {a.id for a in successive_halving(archs, [inherited[a.id] for a in archs], 0.5)}
    assert res.best.id == per_stage["long"][0] and len(res.ranking) == 4
    assert 1 <= res.scores[res.best.id]["long"]["steps"] <= 3
    with pytest.raises(ValueError, match="only the first stage"):
        ProgressiveConfig((StageConfig("a", quick), StageConfig("b", None)))
