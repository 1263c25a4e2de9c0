"""bench/supernet_quality.py: the standalone references are keyed by what they train, not where."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from supernet.config import apply_override, from_dict, load_yaml
from supernet.space import SearchSpace
from supernet.training.config import FitConfig

REPO = Path(__file__).resolve().parents[1]



def _ref_dir(bench, tmp_path: Path, config: str, *overrides: str) -> str:
    base = load_yaml(REPO / config)
    for o in overrides:
        base = apply_override(base, o)
    base["space"] = str(REPO / base["space"])
    base["trainer"].update(max_minutes=20.0, num_threads=2, progress=False)
    cfg = from_dict(FitConfig, {**base, "out_dir": str(tmp_path / "sup")}, where=config)
    arch = SearchSpace.from_yaml(cfg.space).largest()
    return Path(bench.standalone_config(cfg, arch, "largest", 20.0, tmp_path / "refs").out_dir).name


def test_reference_key_ignores_strategy_cache_dir_and_unset_new_options(tmp_path, load_bench):
    bench, space = load_bench("supernet_quality"), {"name": "one-arch"}
    ref = _ref_dir(bench, tmp_path, "configs/fit/progressive_fsdd.yaml")
    # the supernet's strategy and the corpus cache's location do not change what the reference trains
    assert _ref_dir(bench, tmp_path, "configs/fit/warmstart_fsdd.yaml") == ref
    assert _ref_dir(bench, tmp_path, "configs/fit/progressive_fsdd.yaml", "data.cache_dir=/elsewhere") == ref
    assert _ref_dir(bench, tmp_path, "configs/fit/progressive_fsdd.yaml", "data.fsdd.fsdd_dir=/elsewhere/fsdd") == ref
    # an option added later (NEW_OPTION) stays out of the key while at its default, so references
    # stored before it existed keep their folder; set, it enters
    base = from_dict(FitConfig, {**load_yaml(REPO / "configs/fit/progressive_fsdd.yaml"), "out_dir": str(tmp_path)}, where="t")
    assert "time_limit_minutes" not in bench.standalone_key(base, space)
    limited = replace(base, trainer=replace(base.trainer, time_limit_minutes=30.0))
    assert "time_limit_minutes" in bench.standalone_key(limited, space)
    # what the reference trains does
    assert _ref_dir(bench, tmp_path, "configs/fit/progressive_fsdd.yaml", "net.frame_norm=false") != ref
    assert _ref_dir(bench, tmp_path, "configs/fit/progressive_fsdd.yaml", "optim.lr=0.002") != ref
    assert _ref_dir(bench, tmp_path, "configs/fit/progressive_fsdd.yaml", "trainer.time_limit_minutes=30") != ref


def test_supernet_set_reaches_the_supernet_only(tmp_path, monkeypatch, load_bench):
    """``--supernet-set seed=7``: a second supernet seed against the same references (their config,
    hence their folder, keeps the config's seed)."""
    import json
    from types import SimpleNamespace

    import torch

    import supernet.training.run as run

    seen = []

    def fake_fit(cfg):  # records the config; writes what the script reads back
        seen.append(cfg)
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"steps": 5, "dev": {"largest": {"wer": 0.5}, "smallest": {"wer": 0.6}}}
        (out / "summary.json").write_text(json.dumps(summary))
        (out / "metrics.csv").write_text("step,dev/largest/wer\n4,0.5\n")
        return SimpleNamespace(summary=summary, module=SimpleNamespace(tokenizer=SimpleNamespace(vocab_size=12)))

    monkeypatch.setattr(run, "fit", fake_fit)

    def bench(tag: str, *extra: str) -> dict:
        result = tmp_path / f"{tag}.json"
        args = ["--config", "configs/fit/progressive_fsdd.yaml", *extra, "--run-dir", str(tmp_path / tag),
                "--out", str(result), "--threads", str(torch.get_num_threads())]
        assert load_bench("supernet_quality").main(args) == 0
        return json.loads(result.read_text())

    bench("plain")
    report = bench("seed7", "--supernet-set", "seed=7")
    plain, seed7 = seen[:3], seen[3:]
    assert [c.seed for c in plain] == [0, 0, 0] and [c.seed for c in seed7] == [0, 0, 7]
    assert [Path(c.out_dir).name for c in seed7[:2]] == [Path(c.out_dir).name for c in plain[:2]]  # the same references
    assert report["supernet_overrides"] == ["seed=7"] and report["provenance"]["seed"] == 7
    assert report["archs"]["largest"]["dev_wer_inherited"] == 0.5


def test_report_records_the_supernet_curve_and_draws_both_sides(tmp_path, monkeypatch, load_bench):
    """The result holds the supernet's own dev curve and phase boundaries (from its metrics.csv),
    a PNG is drawn beside it, and ``--replot`` redraws it from a result written without them."""
    import json
    from types import SimpleNamespace

    import pytest
    import torch

    import supernet.training.run as run

    def fake_fit(cfg):
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"steps": 30, "dev": {"largest": {"wer": 0.2}, "smallest": {"wer": 0.4}}}
        (out / "summary.json").write_text(json.dumps(summary))
        rows = ["step,train/phase,dev/largest/wer,dev/smallest/wer"]
        rows += [f"{s},{0 if s < 10 else 1 if s < 20 else 3},," for s in range(0, 30, 5)]
        rows += ["9,,0.9,1.5", "19,,0.5,0.8", "29,,0.2,0.4"]
        (out / "metrics.csv").write_text("\n".join(rows) + "\n")
        return SimpleNamespace(summary=summary, module=SimpleNamespace(tokenizer=SimpleNamespace(vocab_size=12)))

    monkeypatch.setattr(run, "fit", fake_fit)
    bench = load_bench("supernet_quality")
    result = tmp_path / "r.json"
    args = ["--config", "configs/fit/progressive_fsdd.yaml", "--run-dir", str(tmp_path / "runs"),
            "--out", str(result), "--threads", str(torch.get_num_threads())]
    assert bench.main(args) == 0
    report = json.loads(result.read_text())
    assert report["supernet"]["dev_curve"] == [{"step": 10, "largest": 0.9, "smallest": 1.5},
                                               {"step": 20, "largest": 0.5, "smallest": 0.8},
                                               {"step": 30, "largest": 0.2, "smallest": 0.4}]
    assert report["supernet"]["phases"] == [{"phase": 0, "first_step": 1}, {"phase": 1, "first_step": 11},
                                            {"phase": 3, "first_step": 21}]
    # the references (fake runs with the same curve) first reached the inherited WERs (0.2 and 0.4
    # on the validation batches, the supernet's last point) at their step 30
    assert report["archs"]["largest"]["standalone_steps_to_inherited_wer"] == {"wer": 0.2, "on": "validation batches", "step": 30}
    assert report["archs"]["smallest"]["standalone_steps_to_inherited_wer"] == {"wer": 0.4, "on": "validation batches", "step": 30}
    report["archs"]["smallest"]["standalone_dev_curve"] = [{"step": 10, "wer": 0.9}, {"step": 20, "wer": 0.4}]
    assert bench.own_steps_to_match(report, "smallest")["step"] == 20  # the first at or below, not the last
    report["archs"]["smallest"]["standalone_dev_curve"] = [{"step": 10, "wer": 0.9}]
    assert bench.own_steps_to_match(report, "smallest")["step"] is None  # never reached
    png = result.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a result from before the curve was recorded, whose run folder moved under --run-dir
    old = tmp_path / "old.json"
    del report["supernet"]["dev_curve"], report["supernet"]["phases"]
    report["provenance"]["config"]["out_dir"] = str(tmp_path / "gone" / Path(report["provenance"]["config"]["out_dir"]).name)
    old.write_text(json.dumps(report))
    assert bench.main(["--replot", str(old), "--run-dir", str(tmp_path / "runs")]) == 0
    assert old.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(old.read_text()) == report  # the JSON is left as it was
    # nowhere to find it: the error names the result and the fix; nothing drawn
    old.with_suffix(".png").unlink()
    with pytest.raises(SystemExit, match=r"old\.json.*metrics\.csv.*--run-dir"):
        bench.main(["--replot", str(old), "--run-dir", str(tmp_path / "elsewhere")])
    assert not old.with_suffix(".png").exists()
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match=r"junk\.json: not a result of this script"):
        bench.main(["--replot", str(tmp_path / "junk.json")])


def test_middle_arch_and_reusing_a_finished_supernet(tmp_path, monkeypatch, load_bench):
    """``--middle`` adds the middle arch (reference + inherited WER, no target); ``--reuse-supernet``
    scores a finished supernet run of the same config instead of training it, and refuses one
    trained from another config (naming the field) or a folder without a finished run."""
    import json
    import shutil
    from types import SimpleNamespace

    import pytest
    import torch
    import yaml

    import supernet.training.run as run
    from supernet.config import to_dict

    trained = []

    def fake_fit(cfg):
        trained.append(Path(cfg.out_dir).name)
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"steps": 5, "elapsed_s": 60.0, "dev": {"largest": {"wer": 0.5}, "smallest": {"wer": 0.6}}}
        (out / "summary.json").write_text(json.dumps(summary))
        (out / "metrics.csv").write_text("step,dev/largest/wer\n4,0.5\n")
        (out / "supernet.ckpt").write_bytes(b"weights")
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
        shutil.copyfile(cfg.space, out / "space.yaml")
        return SimpleNamespace(summary=summary, module=SimpleNamespace(tokenizer=SimpleNamespace(vocab_size=12)))

    scored = []

    def fake_score(checkpoint, data_cfg, archs, split="dev"):
        scored.append((Path(checkpoint).parent.name, {t: a.describe() for t, a in archs.items()}, split))
        return {t: {"wer": 0.3 if split == "dev" else 0.2 if Path(checkpoint).parent.name == "supernet_t" else 0.1}
                for t in archs}

    monkeypatch.setattr(run, "fit", fake_fit)
    monkeypatch.setattr(run, "load_supernet", lambda path: (None, None, SimpleNamespace(vocab_size=12), {}))
    bench = load_bench("supernet_quality")
    monkeypatch.setattr(bench, "score_inherited", fake_score)

    def main(*extra: str) -> dict:
        result = tmp_path / "r.json"
        args = ["--config", "configs/fit/progressive_fsdd.yaml", "--run-dir", str(tmp_path / "runs"), "--tag", "t",
                "--out", str(result), "--threads", str(torch.get_num_threads()), *extra]
        assert bench.main(args) == 0
        return json.loads(result.read_text())

    report = main("--middle")
    assert trained == [n for n in trained if n.startswith("standalone_")][:3] + ["supernet_t"] and len(trained) == 4
    assert [n.split("_")[1] for n in trained[:3]] == ["largest", "smallest", "middle"]
    assert scored == [("supernet_t", {"middle": "logmel80/4 w144 [conformer(mha,h2,f2,k15) x4] ctc full"}, "dev")]
    middle = report["archs"]["middle"]
    assert middle["dev_wer_inherited"] == 0.3 and middle["dev_wer_standalone"] == 0.5
    # the middle arch is not on the supernet's curve: matched on all dev utterances; never reached
    assert middle["standalone_steps_to_inherited_wer"] == {"wer": 0.3, "on": "all dev utterances", "step": None}
    assert "middle" not in report["target_relative_gap"] and report["supernet"]["reused"] is False

    # the same command again with --reuse-supernet: nothing trains, the same numbers come back
    trained.clear()
    again = main("--middle", "--reuse-supernet")
    assert trained == [] and again["supernet"]["reused"] is True and again["supernet"]["minutes"] == 1.0
    assert {t: a["dev_wer_inherited"] for t, a in again["archs"].items()} == {"largest": 0.5, "smallest": 0.6, "middle": 0.3}
    assert "test_wer_inherited" not in again["archs"]["largest"]
    # --test: every arch on the test split, the supernet's weights and each reference's own
    scored.clear()
    tested = main("--middle", "--reuse-supernet", "--test")
    described = {t: a["arch"] for t, a in tested["archs"].items()}
    assert trained == [] and [s[2] for s in scored] == ["dev"] + ["test"] * 4  # the middle's dev score first
    assert scored[1] == ("supernet_t", described, "test")
    assert sorted((s[0].split("_")[1], s[1]) for s in scored[2:]) == sorted((t, {t: d}) for t, d in described.items())  # the references
    for t, a in tested["archs"].items():
        assert (a["test_wer_inherited"], a["test_wer_standalone"]) == (0.2, 0.1) and a["test_relative_gap"] == pytest.approx(1.0)
        assert a["dev_wer_inherited"] == again["archs"][t]["dev_wer_inherited"]  # dev figures unchanged
    # another supernet config under that tag is refused, naming what differs; nothing is written
    (tmp_path / "r.json").unlink()
    with pytest.raises(SystemExit, match=r"config\.yaml differs from this command's config in seed; use another --tag"):
        main("--reuse-supernet", "--supernet-set", "seed=3")
    with pytest.raises(SystemExit, match=r"holds no finished supernet run \(missing summary\.json"):
        main("--reuse-supernet", "--tag", "never_trained")
    assert not (tmp_path / "r.json").exists() and trained == []
