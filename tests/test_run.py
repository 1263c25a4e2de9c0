"""`supernet run`: the whole chain on configs/run/tiny.yaml (tiny space, 24-utterance FSDD corpus).

One module-scoped run feeds the tests in order: outputs and hashes, a second run that skips
everything, a changed search setting that reruns search and what follows but not fit, and an
interrupted fit that resumes. Bad configs fail before any stage runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from supernet.cli import main
from supernet.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/run/tiny.yaml"


def _run(out: Path, fsdd_dir: Path, cache: Path, *extra: str, only=None):
    from supernet.pipeline.config import load_run_config, resolve_run
    from supernet.pipeline.run import run_pipeline

    overrides = [f"data.cache_dir={cache}", f"data.fsdd.fsdd_dir={fsdd_dir}", *extra]
    run, raw = load_run_config(TINY, overrides, out)
    return run_pipeline(resolve_run(run, str(TINY)), raw, only=only)


def _stages(out: Path) -> dict:
    return json.loads((out / "stages.json").read_text())["stages"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fsdd_dir, tiny_corpus, corpus_cache_dir):
    import os

    out = tmp_path_factory.mktemp("run") / "tiny"
    cwd = os.getcwd()
    os.chdir(REPO)  # the stage configs name spaces relative to the repository
    try:
        first = _run(out, fsdd_dir, corpus_cache_dir)
        yield out, first, lambda *extra, only=None: _run(out, fsdd_dir, corpus_cache_dir, *extra, only=only)
    finally:
        os.chdir(cwd)


TARGETS = ("mobile", "server")
OUTPUTS = ["run.yaml", "provenance.json", "stages.json", "corpus/corpus.json", "baseline/model.ckpt", "baseline/metrics.json",
           "fit/supernet.ckpt", "fit/summary.json", "eval/baseline.json"] + [
    p for t in TARGETS for p in (f"search/{t}/study.db", f"search/{t}/summary.json", f"search/{t}/selected.json",
                                 f"finetune/{t}/subnet.pt", f"finetune/{t}/finetune.json", f"export/{t}/metadata.json",
                                 f"export/{t}/onnx/encoder.onnx", f"eval/{t}.json")]


def test_first_run_writes_every_stage_output_and_hash(tiny_run):
    out, first, _ = tiny_run
    for rel in OUTPUTS:
        assert (out / rel).exists(), rel
    stages = _stages(out)
    expected = {"corpus", "baseline", "fit", "eval/baseline", *(f"{s}/{t}" for s in ("search", "finetune", "export", "eval") for t in TARGETS)}
    assert expected <= set(stages)
    for name in expected:
        e = stages[name]
        assert e["status"] == "done" and len(e["hash"]) == 16 and e["seconds"] >= 0 and e["cpu_seconds"] >= 0, name
    assert stages["fit"]["deps"] == {"corpus": stages["corpus"]["hash"]}
    assert stages["finetune/mobile"]["deps"] == {"search/mobile": stages["search/mobile"]["hash"]}
    assert all(first.actions[n] == "ran" for n in expected)
    # the selected arch was fine-tuned, exported and evaluated; the eval file has what the report needs
    ev = json.loads((out / "eval/mobile.json").read_text())
    sel = json.loads((out / "search/mobile/selected.json").read_text())
    assert ev["arch"] == sel["arch"] and ev["streaming_arch"] and ev["streaming"]["utterances"] == 2
    for key in ("wer", "wer_per_set", "wer_per_language", "params", "flops", "latency_ms", "latency_p90_ms", "rtf",
                "chunk_latency_ms", "streaming_wer", "export", "utterances"):
        assert ev[key] is not None, key
    assert ev["export"]["parity_max_abs_diff"] <= 1e-4
    assert len(ev["utterances"]) == 6 and {"ref", "hyp", "id", "lang", "duration"} <= set(ev["utterances"][0])
    base = json.loads((out / "eval/baseline.json").read_text())
    assert set(base["targets"]) == set(TARGETS) and base["targets"]["server"]["latency_ms"] > 0
    # run config, seed and versions are recorded
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 0 and "torch" in prov["versions"] and prov["config"]["name"] == "tiny"
    assert "seed: 0" in (out / "run.yaml").read_text()


def test_second_run_skips_every_stage(tiny_run):
    out, _, again = tiny_run
    before = _stages(out)
    summary = again()
    assert {a for n, a in summary.actions.items() if n != "report"} == {"skipped"}
    assert summary.actions.get("report") in ("skipped", "unavailable")
    after = _stages(out)
    assert {n: e["finished"] for n, e in after.items() if "finished" in e} == \
           {n: e["finished"] for n, e in before.items() if "finished" in e}


def test_same_config_and_seed_give_the_same_models(tmp_path, fsdd_dir, tiny_corpus, corpus_cache_dir, monkeypatch):
    """Step budgets (no wall clock decides anything): two runs select, fine-tune and score the same."""
    import torch

    from supernet.extraction import read_subnet

    monkeypatch.chdir(REPO)
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, fsdd_dir, corpus_cache_dir)
    _run(b, fsdd_dir, corpus_cache_dir)
    for name, e in _stages(a).items():
        assert "stopped_by" not in e, name  # no stage was ended by a wall-clock guard
    assert json.loads((a / "baseline/metrics.json").read_text())["test"] == json.loads((b / "baseline/metrics.json").read_text())["test"]
    assert json.loads((a / "fit/summary.json").read_text())["dev"] == json.loads((b / "fit/summary.json").read_text())["dev"]
    for t in TARGETS:
        sel_a, sel_b = (json.loads((d / f"search/{t}/selected.json").read_text()) for d in (a, b))
        assert sel_a["arch"] == sel_b["arch"] and sel_a["metrics"]["wer"] == sel_b["metrics"]["wer"], t
        state_a, state_b = (read_subnet(d / f"finetune/{t}/subnet.pt").model.state_dict() for d in (a, b))
        assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a), t
        ev_a, ev_b = (json.loads((d / f"eval/{t}.json").read_text()) for d in (a, b))
        assert ev_a["wer"] == ev_b["wer"] and ev_a["streaming_wer"] == ev_b["streaming_wer"], t
        assert [u["hyp"] for u in ev_a["utterances"]] == [u["hyp"] for u in ev_b["utterances"]], t


@pytest.mark.parametrize("field,stopped_by", [("max_minutes", "max_minutes"), ("time_limit_minutes", "time_limit")])
def test_a_stage_ended_by_its_wall_clock_says_so(field, stopped_by, tmp_path, fsdd_dir, tiny_corpus, corpus_cache_dir,
                                                 monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "guarded"
    # 6 ms end the fit after its first step of 3
    _run(out, fsdd_dir, corpus_cache_dir, f"fit.set.trainer.{field}=0.0001", only=lambda n: n in ("corpus", "fit"))
    assert _stages(out)["fit"]["stopped_by"] == field
    summary = json.loads((out / "fit/summary.json").read_text())
    assert summary["stopped_by"] == stopped_by and summary["steps"] < summary["total_steps"] == 3
    assert f"fit: ended by its {field} before its step budget" in capsys.readouterr().err


def test_results_lines_give_each_models_test_wer_and_say_what_is_missing(tiny_run):
    from supernet.pipeline.run import results_lines

    out, _, _ = tiny_run
    lines = results_lines(out, [*TARGETS, "edge"])
    text = "\n".join(lines)
    base = json.loads((out / "eval/baseline.json").read_text())
    assert f"{100 * base['wer']:.1f} %" in lines[1] and lines[1].split()[0] == "baseline"
    for i, t in enumerate(TARGETS):
        e = json.loads((out / f"eval/{t}.json").read_text())
        assert lines[2 + i].split()[0] == t and f"{100 * e['wer']:.1f} %" in lines[2 + i]
    assert "no eval/edge.json" in text  # a target without results is named, not dropped
    assert lines[-1].startswith("report:")


def test_changed_search_setting_reruns_search_and_downstream_not_fit(tiny_run):
    out, _, again = tiny_run
    fit_hash = _stages(out)["fit"]["hash"]
    summary = again("search.dev_utterances=3")
    for name in ("corpus", "baseline", "fit", "eval/baseline"):
        assert summary.actions[name] == "skipped", name
    for t in TARGETS:
        for s in ("search", "finetune", "export", "eval"):
            assert summary.actions[f"{s}/{t}"] == "ran", f"{s}/{t}"
    stages = _stages(out)
    assert stages["fit"]["hash"] == fit_hash
    assert json.loads((out / "search/server/summary.json").read_text())["dev_utterances"] == {"dev": 3}


def test_latency_vs_baseline_limits_each_search_and_is_checked_again_at_eval(tiny_run):
    """search.latency_vs_baseline: the searches time the baseline, limit latency_ms to factor x
    its median, confirm the pick in paired rounds; the evals time the fine-tuned pick against
    the baseline again. Baseline and fit are not rerun."""
    out, _, again = tiny_run
    summary = again("search.dev_utterances=3", "search.latency_vs_baseline={factor: 1000.0, rounds: 2}")
    for name in ("corpus", "baseline", "fit", "eval/baseline"):
        assert summary.actions[name] == "skipped", name
    stages = _stages(out)
    for t in TARGETS:
        assert summary.actions[f"search/{t}"] == "ran" and summary.actions[f"eval/{t}"] == "ran"
        assert set(stages[f"search/{t}"]["deps"]) == {"fit", "baseline"} and "baseline" in stages[f"eval/{t}"]["deps"]
        s = json.loads((out / f"search/{t}/summary.json").read_text())["latency_vs_baseline"]
        ref = s["reference"]
        assert len(ref["baseline_ms"]) == 2 and ref["latency_ms"] == pytest.approx(1000.0 * ref["baseline_median_ms"])
        assert s["limit_ms"] <= ref["latency_ms"] and s["confirmations"] and s["confirmations"][-1]["ok"] is True
        sel = json.loads((out / f"search/{t}/selected.json").read_text())
        assert sel["arch_id"] == s["confirmations"][-1]["arch_id"] and sel["metrics"]["latency_ms"] <= s["limit_ms"]
        ev = json.loads((out / f"eval/{t}.json").read_text())
        vs = ev["latency_vs_baseline"]
        assert vs["rounds"] == 2 and vs["ok"] is (vs["ratio"] <= 1000.0) and vs["ok"] is True
        assert ev["search"]["latency_vs_baseline"]["reference"] == ref
    # an impossible limit: the search stage fails naming the limit, and says what to change
    from supernet.pipeline.stages import StageError

    with pytest.raises(StageError, match="latency_ms"):
        again("search.dev_utterances=3", "search.latency_vs_baseline={factor: 0.000001, rounds: 1}", "targets=[server]",
              only=lambda name: name == "search/server")


def test_latency_vs_baseline_needs_a_baseline(monkeypatch):
    from supernet.pipeline.config import load_run_config, resolve_run

    monkeypatch.chdir(REPO)
    run, _ = load_run_config(TINY, ["baseline=null", "search.latency_vs_baseline={factor: 1.0}"])
    with pytest.raises(ConfigError, match="search.latency_vs_baseline.*needs the run's baseline.*remove"):
        resolve_run(run, str(TINY))


def test_interrupted_fit_resumes_from_its_checkpoint(tiny_run):
    out, _, again = tiny_run
    ledger = json.loads((out / "stages.json").read_text())
    ledger["stages"]["fit"]["status"] = "running"  # as a killed run leaves it
    (out / "stages.json").write_text(json.dumps(ledger))
    # killed after step 2 of 3: the newest checkpoint is step 2's, no final checkpoint yet
    ckpts = out / "fit/checkpoints"
    (ckpts / "last.ckpt").write_bytes((ckpts / "step=000002.ckpt").read_bytes())
    (out / "fit/supernet.ckpt").unlink()
    summary = again("search.dev_utterances=3", only=lambda name: name in ("corpus", "fit"))
    assert summary.actions == {"corpus": "skipped", "fit": "resumed"}
    stages = _stages(out)
    assert stages["fit"]["status"] == "done" and stages["fit"]["attempts"] == 2 and (out / "fit/supernet.ckpt").is_file()
    assert json.loads((out / "fit/summary.json").read_text())["steps"] == 3  # ends where the uninterrupted run ended
    assert stages["fit"]["resumed"] is True
    # killed before its first checkpoint: it starts again, and the ledger does not call that resuming
    ledger = json.loads((out / "stages.json").read_text())
    ledger["stages"]["fit"]["status"] = "running"
    (out / "stages.json").write_text(json.dumps(ledger))
    shutil.rmtree(ckpts)
    (out / "fit/supernet.ckpt").unlink()
    summary = again("search.dev_utterances=3", only=lambda name: name in ("corpus", "fit"))
    assert summary.actions == {"corpus": "skipped", "fit": "ran"}
    stages = _stages(out)
    assert stages["fit"]["resumed"] is False and stages["fit"]["attempts"] == 3 and (out / "fit/supernet.ckpt").is_file()


@pytest.mark.parametrize("override, needle", [
    ("targets=[mobile, laptop]", "targets[1]"),
    ("fit.config=configs/fit/nope.yaml", "fit.config"),
    ("search.set.strategy=annealing", "strategy 'annealing' is unknown"),
    ("finetune.set.train.max_stepz=3", "max_stepz"),
])
def test_bad_config_fails_before_any_stage(tmp_path, capsys, monkeypatch, override, needle):
    monkeypatch.chdir(REPO)
    out = tmp_path / "run"
    assert main(["run", "-c", str(TINY), "--out", str(out), override]) == 1
    err = capsys.readouterr().err
    assert needle in err, err
    assert not out.exists()


def test_unknown_target_message_names_file_field_and_fix(monkeypatch):
    from supernet.pipeline.config import load_run_config, resolve_run

    monkeypatch.chdir(REPO)
    run, _ = load_run_config(TINY, ["targets=[laptop]"])
    with pytest.raises(ConfigError) as e:
        resolve_run(run, str(TINY))
    msg = str(e.value)
    assert str(TINY) in msg and "targets[0]" in msg and "unknown target 'laptop'" in msg and "mobile" in msg


def test_stage_hashes_ignore_options_added_later_while_off(monkeypatch):
    """Upgrading must not rerun a finished run: a new option at its default (fit.augment,
    specaugment.warp, train.stop_at) is left out of the stage hashes, and changes them when set."""
    from supernet.config import hash_view
    from supernet.pipeline.config import load_run_config, resolve_run, stage_configs
    from supernet.pipeline.run import plan

    monkeypatch.chdir(REPO)
    run, _ = load_run_config(TINY, [])
    r = resolve_run(run, str(TINY))
    full = stage_configs(r)
    assert "augment" in full["fit"] and "stop_at" in full["finetune"]["train"]  # run.yaml stays complete
    hashed = {s.name: s.hash for s in plan(r)}
    run2, _ = load_run_config(TINY, ["fit.set.augment={speed: [0.9, 1.1], speed_prob: 1.0}"])
    hashed2 = {s.name: s.hash for s in plan(resolve_run(run2, str(TINY)))}
    assert hashed2["fit"] != hashed["fit"] and hashed2["baseline"] == hashed["baseline"]
    view = stage_configs(r, hash_view)
    assert "augment" not in view["fit"] and "stop_at" not in view["finetune"]["train"]
    run3, _ = load_run_config(TINY, ["search.latency_vs_baseline={factor: 1.0}"])
    hashed3 = {s.name: s.hash for s in plan(resolve_run(run3, str(TINY)))}
    assert "latency_vs_baseline" not in hash_view(r.run.search)
    assert hashed3["fit"] == hashed["fit"] and hashed3["search/server"] != hashed["search/server"]


def test_target_the_space_cannot_serve_is_refused_up_front(monkeypatch):
    from supernet.pipeline.config import load_run_config, resolve_run

    monkeypatch.chdir(REPO)
    run, _ = load_run_config(TINY, ["targets=[mobile]"])  # shipped mobile: chunks 8/16; the tiny space has 4
    with pytest.raises(ConfigError, match=r"targets\[0\].*no \(chunk, look-ahead\)"):
        resolve_run(run, str(TINY))


def test_a_failed_stage_is_marked_failed_with_its_error_and_resumes(tmp_path):
    """An error (e.g. no feasible arch) marks the stage failed; an interruption leaves it running."""
    from supernet.pipeline.ledger import Ledger

    ledger = Ledger(tmp_path)
    with pytest.raises(ValueError, match="no arch"):
        with ledger.record("search_mobile", "h1", {}, ["search_mobile/selected.json"]):
            raise ValueError("no arch meets latency_ms")
    saved = json.loads((tmp_path / "stages.json").read_text())["stages"]["search_mobile"]
    assert saved["status"] == "failed" and saved["error"] == "ValueError: no arch meets latency_ms"
    d = Ledger(tmp_path).decide("search_mobile", "h1", ["search_mobile/selected.json"])
    assert d.action == "resume" and "no arch meets latency_ms" in d.reason
    with pytest.raises(KeyboardInterrupt):
        with ledger.record("search_mobile", "h1", {}, []):
            raise KeyboardInterrupt
    saved = json.loads((tmp_path / "stages.json").read_text())["stages"]["search_mobile"]
    assert saved["status"] == "running" and "error" not in saved and saved["attempts"] == 2
    with ledger.record("search_mobile", "h1", {}, []):
        pass
    assert Ledger(tmp_path).stages["search_mobile"]["status"] == "done"


@pytest.mark.parametrize("path", sorted((REPO / "configs/run").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_run_configs_resolve_and_their_fit_strategy_builds(path, monkeypatch):
    """Every configs/run/*.yaml resolves (each stage's config is checked) and its fit's strategy
    accepts the space (e.g. streaming_prob needs streaming chunks): a typo fails here, not after minutes."""
    from supernet.pipeline.config import load_run_config, resolve_run
    from supernet.pipeline.run import plan
    from supernet.space import SearchSpace
    from supernet.training.strategies import build_strategy

    monkeypatch.chdir(REPO)
    run, _ = load_run_config(path, [])
    r = resolve_run(run, str(path))
    stages = plan(r)
    assert {"corpus", "fit", "report"} <= {s.name for s in stages}
    assert len({s.hash for s in stages}) == len(stages)
    space = SearchSpace.from_yaml(r.fit.space)
    build_strategy(r.fit, space, net=None)


def test_quickstart_trains_by_steps_only(monkeypatch):
    """`make demo` must repeat: a training max_minutes steers the learning-rate schedule (progress is
    max(steps, time)), so the quickstart's training stages have none, only stop-only guards
    (time_limit_minutes); its search cap only stops it."""
    from supernet.pipeline.config import load_run_config, resolve_run

    monkeypatch.chdir(REPO)
    path = REPO / "configs/run/quickstart.yaml"
    run, _ = load_run_config(path, [])
    r = resolve_run(run, str(path))
    assert r.baseline.trainer.max_minutes is None and r.baseline.trainer.max_steps < 100_000
    assert r.fit.trainer.max_minutes is None and r.fit.strategy == "progressive"
    assert r.finetune.train.max_minutes is None
    guards = (r.baseline.trainer.time_limit_minutes, r.fit.trainer.time_limit_minutes, r.finetune.train.time_limit_minutes)
    assert all(g is not None and g > 0 for g in guards)
