"""`supernet report` on a small but real run directory, and the notebook that redraws its plots.

The fixture runs the real stages on tiny configs (once per module): `supernet fit` (darts, 4
steps, so alpha is logged), `supernet baseline fit` (2 steps), `supernet search` with the
synthetic evaluator for two targets, and scores each selected arch, extracted from the trained
supernet, on the test set (real hypotheses, params and FLOPs) into ``eval/<target>.json`` the way
``supernet run`` lays it out. Latency, RTF, chunk latency, streaming WER and export parity are
not measured here, so the report must print ``n/a`` for them.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from supernet.cli import main

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("edge", "server")


def _timed(stages: dict, name: str, fn) -> None:
    t0, c0 = time.monotonic(), time.process_time()
    fn()
    stages[name] = {"status": "done", "hash": name, "seconds": round(time.monotonic() - t0, 3),
                    "cpu_seconds": round(time.process_time() - c0, 3)}


def _baseline(run: Path, cache: Path, fsdd_dir: Path) -> None:
    from supernet.baseline.config import BaselineConfig
    from supernet.baseline.train import fit
    from supernet.config import load_config

    raw = yaml.safe_load((REPO / "configs/baseline/demo.yaml").read_text())
    raw["model"].update(d_model=32, num_layers=1, num_heads=2, ffn_dim=64, subsample_channels=8)
    raw["data"] = {"corpus": "fsdd", "cache_dir": str(cache), "batch_size": 4, "seed": 0,
                   "fsdd": {"fsdd_dir": str(fsdd_dir), "num_train": 24, "num_dev": 6, "num_test": 6, "max_digits": 4, "seed": 0}}
    raw["name"] = "tiny_demo"
    raw["trainer"] = {"max_steps": 2, "progress": False, "num_threads": 1, "log_every_steps": 1}
    fit(load_config(BaselineConfig, raw), run / "baseline", progress=False)


def _evaluate_selected(run: Path, target: str) -> None:
    """Score the selected arch, extracted from the trained supernet, on the test set."""
    import torch

    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluation.batches import make_batches
    from supernet.evaluation.evaluator import score_batches
    from supernet.evaluation.results import summarize
    from supernet.profiling.flops import count_flops
    from supernet.space import Arch
    from supernet.subnet import extract
    from supernet.train import load_supernet

    summary = json.loads(next((run / "search" / target).rglob("summary.json")).read_text())
    arch = Arch.from_dict(summary["selected"]["arch"])
    net, _space, tok, meta = load_supernet(run / "fit" / "supernet.ckpt")
    model = extract(net, arch).eval()
    dm = SpeechDataModule(meta["config"].data, tokenizer=tok, progress=False)
    dm.setup("test")
    rate = meta["config"].data.sample_rate
    batches = make_batches(dm.test_sets, 4, "cpu", sample_rate=rate)
    groups = score_batches(lambda i, b: model.encoder(*model.features(b.audio, b.audio_lengths)), model.head, batches, tok)
    sets, langs = summarize(groups)
    order: dict[tuple[str, str], list] = {}
    for b in batches:
        order.setdefault((b.set_name, b.lang), []).extend(zip(b.ids, (b.audio_lengths / rate).tolist()))
    utts = [{"id": i, "lang": g.lang, "duration": d, "ref": r, "hyp": h}
            for g in groups for (i, d), r, h in zip(order[(g.set_name, g.lang)], g.refs, g.hyps)]
    out = {"target": target, "arch_id": arch.id, "describe": arch.describe(), "arch": arch.to_dict(),
           "wer": sum(s.wer for s in sets.values()) / len(sets),
           "sets": {k: {"wer": v.wer, "cer": v.cer} for k, v in sets.items()},
           "langs": {k: {"wer": v.wer} for k, v in langs.items()},
           "params": sum(p.numel() for p in model.parameters()), "utterances": utts}
    if target == "edge":  # FLOPs of 1 s of audio for one target only: the other shows n/a
        with torch.inference_mode():
            out["flops"] = count_flops(model, torch.zeros(1, rate), torch.tensor([rate]))
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / f"{target}.json").write_text(json.dumps(out))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, fsdd_dir, tiny_corpus, corpus_cache_dir) -> Path:
    from supernet.utils import provenance

    run = tmp_path_factory.mktemp("report") / "quick"
    run.mkdir()
    stages: dict = {}
    cwd = os.getcwd()
    os.chdir(REPO)  # the configs name their space relative to the repository
    try:
        _timed(stages, "fit", lambda: main(["fit", "-c", "configs/fit/tiny.yaml", "--out", str(run / "fit"), "strategy=darts",
                                            "trainer.max_steps=4", f"data.cache_dir={corpus_cache_dir}",
                                            f"data.fsdd.fsdd_dir={fsdd_dir}"]))  # fmt: skip
        _timed(stages, "baseline", lambda: _baseline(run, corpus_cache_dir, fsdd_dir))
        for t in TARGETS:
            _timed(stages, f"search/{t}", lambda t=t: main(["search", "-c", "configs/search/tiny_synthetic.yaml", "--target", t,
                                                            "--n-trials", "16", "--study-name", t, "--no-progress",
                                                            "--out-dir", str(run / "search" / t)]))  # fmt: skip
            _timed(stages, f"eval/{t}", lambda t=t: _evaluate_selected(run, t))
    finally:
        os.chdir(cwd)
    (run / "stages.json").write_text(json.dumps({"format": "supernet-run-stages/1", "stages": stages}))
    base = json.loads((run / "baseline" / "metrics.json").read_text())  # eval/baseline.json without measured costs
    (run / "eval" / "baseline.json").write_text(json.dumps({"name": base["name"], "params": base["num_parameters"],
                                                            "wer": base["test_mean"]["wer"], "dev_wer": base["dev_mean"]["wer"],
                                                            "wer_per_set": {k: v["wer"] for k, v in base["test"].items()}}))
    (run / "run.yaml").write_text(yaml.safe_dump({"name": "quick", "fit": "configs/fit/tiny.yaml", "targets": list(TARGETS)}))
    (run / "provenance.json").write_text(json.dumps(provenance(None, 0)))
    return run


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    assert main(["report", str(run_dir)]) == 0
    return run_dir / "report" / "report.md"


def _png_ok(path: Path) -> None:
    from PIL import Image

    assert path.stat().st_size > 1000, path
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50


def test_report_files_and_images(report):
    text = report.read_text()
    images = [line.split("](", 1)[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    for name in ("architectures.png", "diversity.png", "importances.png", "progress.png", "training.png",
                 *(f"pareto_{t}_{c}.png" for t in TARGETS for c in ("latency_ms", "params")),
                 *(f"errors_{t}.png" for t in TARGETS)):  # fmt: skip
        assert name in images, name
    for name in images:
        _png_ok(report.parent / name)
    assert not list(report.parent.glob(".*tmp*")), "no temporary files left behind"
    for section in ("## Selected model per target", "## Pareto fronts", "## Search progress", "## Supernet training",
                    "## Selected architectures", "## Which choices matter", "## Error analysis", "## Diversity",
                    "## Compute used", "softmax(alpha)"):  # fmt: skip
        assert section in text, section


def test_table_lists_each_target_with_its_eval_numbers(report, run_dir):
    from supernet.report.tables import fmt

    text = report.read_text()
    table = text.split("| target | arch", 1)[1].split("\n\n", 1)[0]  # the selected-model table
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    for t in TARGETS:
        ev = json.loads((run_dir / "eval" / f"{t}.json").read_text())
        row = rows[t]
        assert ev["arch_id"] in row
        assert fmt(ev["wer"], "pct") in row and fmt(ev["params"], "count") in row
        for s in ev["sets"].values():
            assert fmt(s["wer"], "pct") in row
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells.count("n/a") >= 5  # latency p50/p90, RTF, chunk latency, streaming WER, parity: not measured
    assert fmt(json.loads((run_dir / "eval" / "edge.json").read_text())["flops"], "count") in rows["edge"]
    header = next(line for line in text.splitlines() if line.startswith("| target | arch"))
    flops_col = [c.strip() for c in header.split("|")].index("FLOPs")
    assert [c.strip() for c in rows["server"].split("|")][flops_col] == "n/a"
    base = json.loads((run_dir / "eval" / "baseline.json").read_text())
    assert rows["baseline (tiny_demo)"].count(fmt(base["wer"], "pct")) >= 2 and fmt(base["params"], "count") in rows["baseline (tiny_demo)"]
    assert "torch threads: " in text and "run config hash: " in text and "n/a (run.yaml missing)" not in text


def test_error_analysis_and_compute_follow_the_run(report, run_dir):
    from supernet.report.analysis import top_substitutions, utterance_errors

    text = report.read_text()
    ev = json.loads((run_dir / "eval" / "edge.json").read_text())
    errs = utterance_errors(ev["utterances"])
    assert sum(e.errors for e in errs) / sum(e.words for e in errs) == pytest.approx(ev["sets"]["test"]["wer"])
    for ref, hyp, n in top_substitutions(errs, 3):
        assert f"| {ref} | {hyp} | {n} |" in text
    stages = json.loads((run_dir / "stages.json").read_text())
    total_h = sum(s["cpu_seconds"] for s in stages["stages"].values()) / 3600
    shown = re.search(r"Total: (\S+) CPU-hours", text)
    assert shown, "the compute section has no total"
    # 4 significant digits: compare as numbers (summing hours or seconds can round the last digit either way)
    assert float(shown.group(1)) == pytest.approx(total_h, rel=1e-3)
    assert "| edge | 16 | 0 | 0.0% |" in text  # 16 evaluations, none pruned


def test_substitutions_and_length_buckets_from_jiwer_alignment():
    from supernet.report.analysis import top_substitutions, utterance_errors, wer_by_group, wer_by_length

    utts = [{"id": "a", "lang": "en", "duration": 1.0, "ref": "one two three", "hyp": "one too three"},
            {"id": "b", "lang": "de", "duration": 3.0, "ref": "two two four", "hyp": "too too"},
            {"id": "c", "lang": "en", "duration": 2.0, "ref": "", "hyp": "five"}]
    errs = utterance_errors(utts)
    assert [e.errors for e in errs] == [1, 3, 1] and [e.words for e in errs] == [3, 3, 0]  # sub, sub+sub+del, ins
    assert top_substitutions(errs) == [("two", "too", 3)]
    assert wer_by_group(errs)["en"]["wer"] == pytest.approx(2 / 3)
    buckets = wer_by_length(errs, buckets=2)
    assert sum(b["utterances"] for b in buckets) == 3 and buckets[0]["lo"] == 1.0
    with pytest.raises(ValueError, match=r"utterances\[0\]"):
        utterance_errors([{"id": "x", "ref": "a"}])


def test_eval_fields_read_nested_and_flat_forms():
    from supernet.report.tables import eval_summary, fmt

    s = eval_summary({"wer/set/dev.en": 0.1, "latency_ms": {"p50": 4.0, "p90": 6.0}, "rtf": 0.01,
                      "export_parity": {"onnx": {"encoder": {"log_probs": 2e-6}}, "torchscript": {"encoder": {"log_probs": 0.0}}}})
    assert s["sets"] == {"dev.en": 0.1} and s["latency p50 (ms)"] == 4.0 and s["latency p90 (ms)"] == 6.0
    assert s["export parity (max abs diff)"] == 2e-6 and s["streaming WER"] is None and fmt(None) == "n/a"


def test_missing_run_or_stage_output_names_the_path(tmp_path, capsys, run_dir):
    import shutil

    from supernet.report import ReportError, write_report

    missing = tmp_path / "nope"
    with pytest.raises(ReportError, match=str(missing)):
        write_report(missing)
    assert main(["report", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
    partial = tmp_path / "partial"
    (partial / "fit").mkdir(parents=True)
    with pytest.raises(ReportError, match=str(partial / "search")):
        write_report(partial)
    broken = tmp_path / "broken"
    shutil.copytree(run_dir / "search" / "edge", broken / "search" / "edge")
    next((broken / "search" / "edge").rglob("study.db")).unlink()
    with pytest.raises(ReportError, match=r"study\.db"):
        write_report(broken)


def test_notebook_redraws_the_report_plots(report, run_dir, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO / "notebooks" / "explore_run.ipynb", as_version=4)
    env = {"SUPERNET_RUN_DIR": str(run_dir), "SUPERNET_NOTEBOOK_OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    for name in ("progress.png", "architectures.png", "diversity.png", "pareto_edge_params.png"):
        _png_ok(tmp_path / name)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)


def test_report_says_the_latency_limit_from_the_baseline_and_each_refusal():
    from types import SimpleNamespace

    from supernet.report.markdown import _against_baseline_lines

    summary = {"latency_vs_baseline": {
        "limit_ms": 7.72, "reference": {"factor": 1.0, "baseline_median_ms": 7.72, "rounds": 5, "threads": 1},
        "confirmations": [{"arch_id": "aaa", "ok": False, "summary": "8.16 vs the baseline's 7.85 ms (x1.040)"},
                          {"arch_id": "bbb", "ok": True, "summary": "7.48 vs 7.55 ms"}]}}
    ev = {"latency_vs_baseline": {"rounds": 5, "threads": 2, "pick_median_ms": 6.2, "baseline_median_ms": 5.7, "ratio": 1.09,
                                  "ok": False, "factor": 1.0},
          "meets_target": {"ok": False, "violations": ["latency 6.2 ms > x1 the baseline's 5.7 ms"]}}
    lines = _against_baseline_lines(SimpleNamespace(summary=summary, eval=ev))
    text = "\n".join(lines)
    assert "7.72 ms" in lines[0] and "1 pick(s) refused" in lines[0] and "`aaa`: 8.16 vs" in lines[0] and "bbb" not in lines[0]
    assert "6.2 vs 5.7 ms" in lines[1] and "over the limit x1.0" in lines[1]
    assert "meets the target's limits on the test-time measurements: no: latency 6.2" in text
    assert _against_baseline_lines(SimpleNamespace(summary={}, eval=None)) == []
