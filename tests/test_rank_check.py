"""Rank check: bootstrap intervals, stratified sampling, standalone training, end to end."""

from __future__ import annotations

import json
import random
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from supernet.evaluate import RankStat, TrainConfig, bootstrap_ci, rank_correlations, stratified_sample, train_subnet
from supernet.space import SearchSpace

REPO_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


# ---------------------------------------------------------------------------- statistics
def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = x + rng.normal(scale=0.7, size=20)
    out = rank_correlations(x, y, samples=300, confidence=0.9, seed=0)
    for name, s in out.items():
        assert isinstance(s, RankStat) and s.n == 20 and s.samples == 300 and s.confidence == 0.9
        assert -1.0 <= s.low <= s.value <= s.high <= 1.0, (name, s)
        assert s.high - s.low > 0.05  # noisy pairs: a real interval
    from scipy import stats

    assert out["kendall_tau"].value == pytest.approx(stats.kendalltau(x, y).statistic)
    assert out["spearman"].value == pytest.approx(stats.spearmanr(x, y).statistic)
    again = rank_correlations(x, y, samples=300, confidence=0.9, seed=0)
    assert again == out  # seeded


def test_bootstrap_of_a_perfect_ranking_and_of_degenerate_resamples():
    s = bootstrap_ci([1, 2, 3, 4], [10, 20, 30, 40], lambda a, b: float(np.corrcoef(a, b)[0, 1]), samples=200)
    assert s.value == pytest.approx(1.0) and s.low == pytest.approx(1.0) and s.high == pytest.approx(1.0)
    assert s.undefined > 0  # with 4 pairs some resamples repeat one arch: no ranking, dropped and counted
    flat = rank_correlations([1, 1, 1], [1, 2, 3], samples=50)["kendall_tau"]
    assert np.isnan(flat.value) and flat.undefined == 50
    with pytest.raises(ValueError, match="at least 2 pairs"):
        bootstrap_ci([1], [1], lambda a, b: 0.0)
    with pytest.raises(ValueError, match="paired"):
        bootstrap_ci([1, 2], [1, 2, 3], lambda a, b: 0.0)


def test_stratified_sample_spans_the_size_range():
    space = SearchSpace.from_yaml(REPO_CONFIGS / "space/tiny.yaml")
    size = lambda a: space.params(a, 12)  # noqa: E731
    archs = stratified_sample(space, 5, random.Random(0), size, pool=200)
    assert len({a.id for a in archs}) == 5
    sizes = [size(a) for a in archs]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    rng, pool = random.Random(1), set()
    for _ in range(200):
        pool.add(size(space.sample(rng)))
    ranked = sorted(pool)
    assert sizes[0] <= ranked[len(ranked) // 4] and sizes[-1] >= ranked[3 * len(ranked) // 4]  # both tails covered
    assert [a.id for a in stratified_sample(space, 5, random.Random(0), size, pool=200)] == [a.id for a in archs]
    with pytest.raises(ValueError, match="fewer than k"):
        stratified_sample(SearchSpace.from_dict({
            "name": "one", "frontend": {"feature": ["logmel40"], "subsampling": [4]},
            "encoder": {"width": [16], "layers": 1, "min_depth": 1, "layer": {"block": ["lstm"]}},
            "decoder": {"type": ["ctc"]}}), 2, random.Random(0), size, pool=10)


# ---------------------------------------------------------------------------- training
def _tiny_subnet_and_items():
    """The tiny space's smallest CTC arch (seeded init), its SubnetModel and 6 noise utterances."""
    from supernet.subnet import SubnetModel

    space = SearchSpace.from_yaml(REPO_CONFIGS / "space/tiny.yaml")
    arch = space.smallest(decoder="ctc", chunk=0)
    torch.manual_seed(0)
    model = SubnetModel(arch, 6)
    g = torch.Generator().manual_seed(0)
    items = [{"audio": 0.1 * torch.randn(3200, generator=g), "target": torch.tensor([1 + i % 5, 2]), "text": "ab",
              "lang": "en", "id": str(i)} for i in range(6)]
    return arch, model, items


def test_train_subnet_early_stops_records_a_curve_and_keeps_the_best_weights():
    from supernet.subnet import SubnetModel

    arch, model, items = _tiny_subnet_and_items()
    calls = {"n": 0}
    scores = [1.0, 0.8, 0.5, 0.6, 0.7, 0.8, 0.9]  # best at the 2nd evaluation after the start, then worse

    def evaluate(m):
        v = scores[calls["n"]]
        calls["n"] += 1
        return {"loss": v, "wer": v, "cer": v, "state": {k: t.clone() for k, t in m.state_dict().items()}}

    cfg = TrainConfig(max_steps=50, eval_every=2, patience=2, batch_size=3)
    res = train_subnet(model, items, cfg, evaluate)
    assert res.stopped == "patience" and res.converged
    assert [p["step"] for p in res.curve] == [0, 2, 4, 6, 8]
    assert res.best_step == 4 and res.final_step == 8 and res.best["loss"] == 0.5
    for k, t in model.state_dict().items():  # the best weights are restored
        assert torch.equal(t, res.best["state"][k])
    capped = train_subnet(SubnetModel(arch, 6), items, TrainConfig(max_steps=3, eval_every=2, patience=5, batch_size=3),
                          lambda m: {"loss": 1.0, "wer": 1.0, "cer": 1.0})
    assert capped.stopped == "max_steps" and not capped.converged and capped.final_step == 3
    # A model stuck at its starting WER stops by patience too, but it stalled: not converged.
    stalled = train_subnet(SubnetModel(arch, 6), items, TrainConfig(max_steps=50, eval_every=2, patience=2, batch_size=3),
                           lambda m: {"loss": 2.0, "wer": 1.0, "cer": 1.0})
    assert stalled.stopped == "patience" and not stalled.converged


def test_train_subnet_stop_at_ends_the_run_at_the_first_evaluation_that_reaches_it():
    arch, model, items = _tiny_subnet_and_items()
    scores = iter([1.0, 0.9, 0.45, 0.3, 0.2])
    cfg = TrainConfig(max_steps=50, eval_every=2, patience=10, batch_size=3, monitor="wer", stop_at=0.5)
    res = train_subnet(model, items, cfg, lambda m: {"loss": 1.0, "wer": next(scores), "cer": 0.0})
    assert res.stopped == "reached" and res.final_step == 4
    assert [p["wer"] for p in res.curve] == [1.0, 0.9, 0.45]


def test_train_subnet_time_limit_stops_without_steering_the_schedule():
    from supernet.baseline.config import OptimConfig
    from supernet.subnet import SubnetModel

    arch, model, items = _tiny_subnet_and_items()
    optim = OptimConfig(lr=1e-2, schedule="cosine", warmup=0.0)
    score = lambda m: {"loss": 1.0, "wer": 1.0, "cer": 1.0}  # noqa: E731
    cut = train_subnet(model, items, TrainConfig(max_steps=50, eval_every=10, patience=5, batch_size=3, optim=optim,
                                                 time_limit_minutes=1e-7), score)
    assert cut.stopped == "time_limit" and cut.final_step == 1
    # On a clock that runs a minute per reading, a 100-minute budget (max_minutes) is not reached
    # in 4 steps but its time fraction steers the schedule; the same 100-minute guard does not:
    # the guarded run's weights equal the unguarded run's, the budgeted run's do not.
    import supernet.evaluation.training as training

    clock = {"t": 0.0}

    def minute_per_call() -> float:
        clock["t"] += 60.0
        return clock["t"]

    runs = {}
    for name, extra in (("none", {}), ("guard", {"time_limit_minutes": 100.0}), ("budget", {"max_minutes": 100.0})):
        torch.manual_seed(0)
        m = SubnetModel(arch, 6)
        better = iter([1.0, 0.9, 0.8])  # each evaluation improves: the run keeps its last weights
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(training.time, "monotonic", minute_per_call)
            res = train_subnet(m, items, TrainConfig(max_steps=4, eval_every=2, patience=5, batch_size=3, optim=optim,
                                                     **extra), lambda m: {"loss": (v := next(better)), "wer": v, "cer": v})
        assert res.stopped == "max_steps", name
        runs[name] = m.state_dict()
    assert all(torch.equal(runs["none"][k], runs["guard"][k]) for k in runs["none"])
    assert not all(torch.equal(runs["none"][k], runs["budget"][k]) for k in runs["none"])


def test_train_subnet_newbob_decays_the_learning_rate_from_the_best_weights():
    from supernet.baseline.config import OptimConfig

    arch, model, items = _tiny_subnet_and_items()
    seen = []
    scores = iter([1.0, 0.5, 0.6, 0.4, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9])

    def evaluate(m):
        v = next(scores)
        seen.append({k: t.clone() for k, t in m.state_dict().items()})
        return {"loss": v, "wer": v, "cer": v}

    cfg = TrainConfig(max_steps=100, eval_every=1, patience=3, decay_patience=1, max_decays=2, batch_size=3,
                      optim=OptimConfig(lr=1e-3, schedule="constant", warmup=0.0))
    res = train_subnet(model, items, cfg, evaluate)
    # evaluations: 1.0 (start), 0.5 best, 0.6 -> decay 1, 0.4 best, 0.7 -> decay 2, then 3 bad -> stop
    assert res.decays == 2 and res.stopped == "patience" and res.best_step == 3 and res.final_step == 7
    assert res.converged and res.to_dict()["lr_decays"] == 2
    for k, t in model.state_dict().items():
        assert torch.equal(t, seen[3][k])  # the weights of the best evaluation
    with pytest.raises(ValueError, match="decay_patience"):
        TrainConfig(patience=2, decay_patience=2)


# ---------------------------------------------------------------------------- end to end
@pytest.fixture
def tiny_fit_yaml(tmp_path, tiny_fsdd_config, tiny_corpus, corpus_cache_dir):
    data = yaml.safe_load((REPO_CONFIGS / "fit/tiny.yaml").read_text())
    data["space"] = str(REPO_CONFIGS / "space/tiny.yaml")
    data["data"]["cache_dir"] = str(corpus_cache_dir)
    data["data"]["fsdd"]["fsdd_dir"] = tiny_fsdd_config.fsdd_dir
    data["trainer"]["max_steps"] = 2
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_rank_check_end_to_end_writes_the_report(tmp_path, tiny_fit_yaml, capsys):
    from supernet.cli import main

    cfg = yaml.safe_load((REPO_CONFIGS / "rank_check/tiny.yaml").read_text())
    cfg.update(fit=str(tiny_fit_yaml), num_archs=3, bootstrap_samples=100)
    cfg["reference"].update(max_steps=4, eval_every=2, patience=1)
    path = tmp_path / "rc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["rank-check", "-c", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dev wer" in printed and "Kendall tau" in printed and "Spearman" in printed
    for name in ("report.json", "report.md", "scatter.png", "curves.png", "config.yaml", "provenance.json",
                 "supernet_eval.jsonl", "supernet/supernet.ckpt"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["num_archs"] == 3 and len(report["archs"]) == 3
    assert set(report["correlations"]) == {"wer", "loss"}
    assert set(report["correlations"]["loss"]) == {"kendall_tau", "spearman"}
    assert report["target"]["valid"] is False  # K = 3 < 12
    for r in report["archs"]:
        assert (out / "references" / f"{r['arch_id']}.json").is_file()
        assert r["curve"][0]["step"] == 0 and r["final_step"] <= 4 and r["stopped"] in ("patience", "max_steps")
    params = [r["params"] for r in report["archs"]]
    assert params == sorted(params)
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Kendall tau" in (out / "report.md").read_text()
    # a rerun with the same settings reuses the references instead of retraining them
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "references").iterdir()}
    cfg["supernet"], cfg["fit"] = str(out / "supernet/supernet.ckpt"), None
    path.write_text(yaml.safe_dump(cfg))
    assert main(["rank-check", "-c", str(path), "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "references").iterdir()} == stamps
    # finetune: each arch also scored after a short fine-tune from its inherited weights, and
    # correlated; the supernet itself is untouched (every arch's inherited score is what it was)
    ft_out = tmp_path / "ft"
    shutil.copytree(out / "references", ft_out / "references")
    assert main(["rank-check", "-c", str(path), "--out", str(ft_out), "finetune={max_steps: 2, eval_every: 1}"]) == 0
    ft = json.loads((ft_out / "report.json").read_text())
    assert set(ft["correlations"]) == {"wer", "loss", "finetuned_wer", "finetuned_loss"}
    assert ft["finetune"]["max_steps"] == 2
    assert [r["supernet"] for r in ft["archs"]] == [r["supernet"] for r in report["archs"]]
    for r in ft["archs"]:
        assert 0 < r["finetuned"]["steps"] <= 2
        assert r["finetuned"]["loss"] <= r["supernet"]["loss"] + 1e-6  # the best evaluation, step 0 included
    assert "fine-tuning steps" in (ft_out / "report.md").read_text()
    assert (ft_out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # reference_seeds: every arch trained once more with seed 1 (its own initial weights too),
    # the supernet ranked against the mean, and the two seeds' rankings against each other
    rs_out = tmp_path / "seeds"
    shutil.copytree(out / "references", rs_out / "references")
    seed0 = {p.name: p.stat().st_mtime_ns for p in (rs_out / "references").iterdir()}
    assert main(["rank-check", "-c", str(path), "--out", str(rs_out), "reference_seeds=[0, 1]"]) == 0
    rs = json.loads((rs_out / "report.json").read_text())
    assert rs["reference_seeds"] == [0, 1] and [p["seeds"] for p in rs["reference_agreement"]] == [[0, 1]]
    assert set(rs["reference_agreement"][0]["wer"]) == {"kendall_tau", "spearman"}
    assert {p.name: p.stat().st_mtime_ns for p in (rs_out / "references").iterdir() if p.name in seed0} == seed0
    for r, r0 in zip(rs["archs"], report["archs"]):
        assert (rs_out / "references" / f"{r['arch_id']}.seed1.json").is_file()
        s0, s1 = r["references"]
        assert (s0["seed"], s1["seed"]) == (0, 1) and s0["wer"] == r0["reference"]["wer"]
        assert r["reference"]["loss"] == pytest.approx((s0["loss"] + s1["loss"]) / 2)
        first = [json.loads((rs_out / "references" / n).read_text())["curve"][0]["loss"]
                 for n in (f"{r['arch_id']}.json", f"{r['arch_id']}.seed1.json")]
        assert first[0] != first[1]  # step 0, before any training: the seed drew other initial weights
    assert "seed 0 vs seed 1, dev wer" in (rs_out / "report.md").read_text()
    # Sharded: two workers split the references (e.g. on other machines sharing out_dir); a
    # run without `shard` then reuses every one of them and writes the report.
    for ref in (out / "references").iterdir():
        ref.unlink()
    (out / "report.json").unlink()
    for shard in ("0/2", "1/2"):
        assert main(["rank-check", "-c", str(path), "--out", str(out), f"shard={shard}"]) == 0
        assert not (out / "report.json").exists()
    assert "shard 1/2: 1 references" in capsys.readouterr().out
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "references").iterdir()}
    assert len(stamps) == 3 and all(json.loads(p.read_text())["device"] == "cpu" for p in (out / "references").iterdir())
    assert main(["rank-check", "-c", str(path), "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "references").iterdir()} == stamps
    assert json.loads((out / "report.json").read_text())["num_archs"] == 3
    # `supernet evaluate` on the same checkpoint and archs gives the report's supernet scores
    archs = tmp_path / "archs.jsonl"
    archs.write_text("".join(json.dumps({"arch": r["arch"]}) + "\n" for r in report["archs"]))
    scored = tmp_path / "scored.jsonl"
    assert main(["evaluate", cfg["supernet"], "--archs", str(archs), "--out", str(scored), "--batch-size", "3"]) == 0
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert [r["arch_id"] for r in rows] == [r["arch_id"] for r in report["archs"]]
    for row, r in zip(rows, report["archs"]):
        assert row["metrics"]["wer"] == pytest.approx(r["supernet"]["wer"])
        assert row["metrics"]["loss"] == pytest.approx(r["supernet"]["loss"], rel=1e-5)
    # --predictor-cv: the WER predictor's cross-validated tau over the scored archs (a bad fold
    # count is refused before anything is evaluated)
    capsys.readouterr()
    assert main(["evaluate", cfg["supernet"], "--sample", "6", "--batch-size", "3", "--predictor-cv", "4"]) == 2
    assert "twice as many archs as folds" in capsys.readouterr().err
    assert main(["evaluate", cfg["supernet"], "--sample", "6", "--batch-size", "3", "--predictor-cv", "3"]) == 0
    assert "3-fold cross-validation over 6 archs: Kendall tau" in capsys.readouterr().out


def test_rank_check_config_errors_name_the_field(tmp_path):
    from supernet.config import ConfigError
    from supernet.rank_check import resolve_config

    base = str(REPO_CONFIGS / "rank_check/tiny.yaml")
    with pytest.raises(ConfigError, match="exactly one of supernet"):
        resolve_config([base], ["supernet=x.ckpt"])
    with pytest.raises(ConfigError, match="num_archs must be >= 2"):
        resolve_config([base], ["num_archs=1"])
    with pytest.raises(ConfigError, match="unknown field.*reference.steps"):
        resolve_config([base], ["reference.steps=3"])
    with pytest.raises(ConfigError, match="monitor"):
        resolve_config([base], ["reference.monitor=cer"])
    with pytest.raises(ConfigError, match="shard must be 'I/N'"):
        resolve_config([base], ["shard=2/2"])
    for bad in ("[]", "[0, 0]", "[-1]"):
        with pytest.raises(ConfigError, match="reference_seeds must be distinct integers"):
            resolve_config([base], [f"reference_seeds={bad}"])


def test_reference_key_ignores_the_supernets_batching_but_not_the_corpus():
    """References batch with reference.batch_size: the supernet's batch size must not retrain them."""
    import dataclasses

    from supernet.data.datamodule import DataConfig
    from supernet.evaluation.rank_check import reference_data_key

    base = DataConfig(corpus="fsdd", batch_size=8)
    assert reference_data_key(base, "fp") == reference_data_key(dataclasses.replace(base, batch_size=16, num_buckets=4), "fp")
    assert reference_data_key(base, "fp") == reference_data_key(dataclasses.replace(base, cache_dir="/elsewhere"), "fp")
    assert reference_data_key(base, "fp") != reference_data_key(dataclasses.replace(base, corpus="espeak"), "fp")
    assert reference_data_key(base, "fp") != reference_data_key(base, "other dev audio")


def test_new_options_at_their_default_keep_existing_cache_keys():
    """Options added after the rank-check references were keyed (TrainConfig.stop_at, augment and
    time_limit_minutes, SpecAugmentConfig.warp) leave config_hash unchanged while off, and change
    it when set."""
    from supernet.config import config_hash, to_dict
    from supernet.data.features import SpecAugmentConfig

    cfg = TrainConfig(specaugment=SpecAugmentConfig())
    old = to_dict(cfg)
    old.pop("stop_at")
    old.pop("augment")
    old.pop("time_limit_minutes")
    old["specaugment"].pop("warp")
    assert config_hash({"reference": cfg}) == config_hash({"reference": old})
    assert config_hash(TrainConfig(stop_at=0.5)) != config_hash(TrainConfig())
    assert config_hash(TrainConfig(time_limit_minutes=5.0)) != config_hash(TrainConfig())
    assert config_hash(SpecAugmentConfig(warp=(0.9, 1.1))) != config_hash(SpecAugmentConfig())
    assert "stop_at" in to_dict(cfg)  # written configs stay complete


def test_train_subnet_waveform_augmentation_is_seeded_and_changes_training():
    from supernet.baseline.augment import AugmentConfig
    from supernet.config import config_hash
    from supernet.subnet import SubnetModel

    arch, _, items = _tiny_subnet_and_items()
    aug = AugmentConfig(speed=(0.8, 1.2), speed_prob=1.0, gain_db=(-6.0, 6.0), noise_prob=1.0)

    def run(augment: AugmentConfig) -> dict:
        torch.manual_seed(0)
        model = SubnetModel(arch, 6)
        scores = iter([1.0, 0.5])  # the trained weights are the best, so they are the ones kept
        train_subnet(model, items, TrainConfig(max_steps=3, eval_every=3, patience=5, batch_size=3, augment=augment),
                     lambda m: {"loss": (v := next(scores)), "wer": v, "cer": v})
        return model.state_dict()

    plain, a, b = run(AugmentConfig()), run(aug), run(aug)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same augmented training
    assert any(not torch.equal(a[k], plain[k]) for k in a)  # the augmentation reached the model
    # off by default, and then absent from the config hash (test_new_options_at_their_default_keep_existing_cache_keys)
    assert config_hash(TrainConfig(augment=aug)) != config_hash(TrainConfig())


def test_reference_keys_ignore_options_added_later_while_at_their_defaults():
    """References trained before NetConfig.frame_norm / DataConfig.tokenizer existed (GPU hours)
    are still found; setting such an option makes a new key."""
    import dataclasses

    from supernet.config import config_hash, to_dict
    from supernet.data.datamodule import DataConfig
    from supernet.evaluation.rank_check import RankCheckConfig, reference_data_key, reference_key
    from supernet.nn.config import NetConfig

    data = reference_data_key(DataConfig(), "dev-fingerprint")
    assert "tokenizer" not in data["data"] and "cache_dir" not in data["data"]
    assert reference_data_key(DataConfig(tokenizer="word"), "dev-fingerprint")["data"]["tokenizer"] == "word"
    space = SearchSpace.from_yaml(REPO_CONFIGS / "space/tiny.yaml")
    arch, cfg = space.smallest(), RankCheckConfig(supernet="unused.ckpt")
    # NetConfig's fields when the GPU references were trained; any option added since must stay out of
    # the key at its default (NEW_OPTION), so a new option needs no change here
    trained_with = ("sample_rate", "win_ms", "hop_ms", "subsampler_channels", "learnable_filters", "dropout",
                    "local_window", "se_reduction", "decoder_heads", "ctc_weight", "label_smoothing", "max_symbols")
    old_net = {k: v for k, v in dataclasses.asdict(NetConfig()).items() if k in trained_with}
    old_key = config_hash({"reference": cfg.reference, "seed": cfg.seed, "net": old_net, "vocab": 6,
                           "arch": arch.to_dict(), **data})  # how a reference was keyed before the options
    assert reference_key(arch, NetConfig(), 6, cfg, data) == old_key
    assert reference_key(arch, NetConfig(frame_norm=False), 6, cfg, data) != old_key
    assert reference_key(arch, NetConfig(causal_full_context=True), 6, cfg, data) != old_key
    assert to_dict(NetConfig())["frame_norm"] is True  # the default the old references were trained with


def test_reference_key_ignores_where_the_recordings_are_and_still_finds_old_keys(tmp_path, monkeypatch):
    """The FSDD folder's path left the key (the dev audio is hashed into it): a reference trained
    where the recordings lie elsewhere (another machine) is reused, and one stored under a key
    that held the path is still found."""
    import dataclasses

    from supernet.data.datamodule import DataConfig
    from supernet.data.fsdd import FSDDConfig
    from supernet.evaluation.rank_check import RankCheckConfig, _reference, reference_data_key, reference_key
    from supernet.nn.config import NetConfig

    here = DataConfig(corpus="fsdd", fsdd=FSDDConfig(fsdd_dir="/data/fsdd"))
    there = dataclasses.replace(here, fsdd=FSDDConfig(fsdd_dir="/elsewhere/fsdd"))
    assert reference_data_key(here, "fp") == reference_data_key(there, "fp")
    assert reference_data_key(here, "fp") != reference_data_key(dataclasses.replace(here, fsdd=FSDDConfig(
        fsdd_dir="/data/fsdd", num_dev=100)), "fp")  # what the corpus holds still counts
    old = reference_data_key(here, "fp", with_locations=True)
    assert old["data"]["fsdd"]["fsdd_dir"] == "/data/fsdd" and old != reference_data_key(here, "fp")

    arch, cfg = SearchSpace.from_yaml(REPO_CONFIGS / "space/tiny.yaml").smallest(), RankCheckConfig(supernet="unused.ckpt")
    saved = {"key": reference_key(arch, NetConfig(), 6, cfg, old), "arch_id": arch.id, "best": {"wer": 0.1}}
    (tmp_path / f"{arch.id}.json").write_text(json.dumps(saved))

    class Trained(Exception):
        pass

    def train_subnet(*args, **kwargs):
        raise Trained

    monkeypatch.setattr("supernet.evaluation.training.train_subnet", train_subnet)
    evaluator = SimpleNamespace(device="cpu")
    # found through the old key: reused, nothing trained
    assert _reference(arch, NetConfig(), 6, None, evaluator, cfg, tmp_path, reference_data_key(here, "fp"), old) == saved
    with pytest.raises(Trained):  # without the old key it is not found, and training starts
        _reference(arch, NetConfig(), 6, None, evaluator, cfg, tmp_path, reference_data_key(here, "fp"))
