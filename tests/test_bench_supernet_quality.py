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
