"""`supernet search` end to end on the tiny space with the synthetic evaluator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna
import pytest

from supernet import search_cli

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/search/tiny_synthetic.yaml"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    search_cli.register(parser.add_subparsers())
    args = parser.parse_args(["search", *argv])
    return args.func(args)


def test_search_cli_writes_study_front_plots_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    rc = _run("-c", str(CONFIG), "--strategy", "evolution", "--target", "edge", "--n-trials", "8", "--seed", "1",
              "--out-dir", str(out), "--no-progress")  # fmt: skip
    assert rc == 0
    run = out / "tiny_synthetic-edge-evolution"
    for name in ("study.db", "front.json", "summary.json", "pareto.png", "best_so_far.png", "choices.png"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_archs"] == 8 and summary["evaluated_now"] == 8 and summary["objectives"] == ["wer", "latency_ms"]
    assert summary["selected"]["feasible"] and summary["hypervolume"]["value"] > 0
    front = json.loads((run / "front.json").read_text())
    assert summary["selected"]["arch_id"] in {r["arch_id"] for r in front}
    assert "selected for edge" in capsys.readouterr().out
    # the same command with more trials resumes the study: only the new ones are evaluated
    assert _run("-c", str(CONFIG), "--target", "edge", "--n-trials", "11", "--seed", "1", "--out-dir", str(out),
                "--no-progress", "--no-plots") == 0  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_archs"] == 11 and summary["evaluated_now"] == 3
    study = optuna.load_study(study_name="tiny_synthetic-edge-evolution", storage=f"sqlite:///{run / 'study.db'}")
    ids = [t.user_attrs["arch_id"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert len(ids) == len(set(ids)) == 11


def test_search_cli_infeasible_target_and_bad_config(tmp_path, capsys):
    target = tmp_path / "impossible.yaml"
    target.write_text("name: impossible\nlimits: {latency_ms: 0.01}\nobjectives: wer_latency\n")
    rc = _run("-c", str(CONFIG), "--target", str(target), "--n-trials", "5", "--out-dir", str(tmp_path), "--no-progress", "--no-plots")
    assert rc == 1
    err = capsys.readouterr().err
    assert "no candidate meets target 'impossible'" in err and "latency_ms" in err
    summary = json.loads((tmp_path / "tiny_synthetic-impossible-evolution/summary.json").read_text())
    assert summary["selected"] is None and "latency_ms" in summary["selection_error"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstrategy: annealing\n")
    from supernet.config import ConfigError

    with pytest.raises(ConfigError, match="strategy 'annealing' is unknown"):
        _run("-c", str(bad), "--no-progress")


def test_search_of_a_trained_supernet_measures_the_targets_costs(tmp_path, tiny_data_config):
    """evaluator.kind supernet: WER with inherited weights, and the latency / RTF the target limits."""
    import yaml

    from supernet.config import from_dict, load_yaml, to_dict
    from supernet.training.config import FitConfig
    from supernet.training.run import fit

    data = load_yaml(REPO / "configs/fit/tiny.yaml")
    data.update(space=str(REPO / "configs/space/tiny.yaml"), data=to_dict(tiny_data_config), out_dir=str(tmp_path / "fit"),
                trainer={**data.get("trainer", {}), "max_steps": 1, "val_every_steps": None})
    ckpt = fit(from_dict(FitConfig, data), logger=False).checkpoint
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump({"name": "trained", "space": str(REPO / "configs/space/tiny.yaml"), "target": "edge",
                                   "strategy": "random", "n_trials": 2, "seed": 0, "out_dir": str(tmp_path / "search"),
                                   "evaluator": {"kind": "supernet", "checkpoint": str(ckpt), "batch_size": 8}}))
    assert _run("-c", str(cfg), "--no-progress", "--no-plots") in (0, 1)  # 1: nothing feasible, still recorded
    study = optuna.load_study(study_name="trained-edge-random", storage=f"sqlite:///{tmp_path / 'search/trained-edge-random/study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    for t in trials:  # a trial's metrics are its user attributes
        assert t.user_attrs["latency_ms"] > 0 and t.user_attrs["memory_mb"] >= 0 and t.user_attrs["params"] > 0
    # params budgets (darts) count the heads with the supernet's vocabulary, not the synthetic default
    from supernet.search.config import EvaluatorConfig, evaluator_vocab_size
    from supernet.training.run import load_supernet

    vocab = load_supernet(ckpt)[2].vocab_size
    assert evaluator_vocab_size(EvaluatorConfig(kind="supernet", checkpoint=str(ckpt))) == vocab
    assert evaluator_vocab_size(EvaluatorConfig(kind="synthetic", vocab_size=32)) == 32
