"""bench/reference_noise.py: the references of two seeds ranked against each other and against reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest



def _write_refs(folder: Path, seed: int, wers: dict[str, float], converged: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for arch_id, wer in wers.items():
        name = f"{arch_id}.json" if seed == 0 else f"{arch_id}.seed{seed}.json"
        (folder / name).write_text(json.dumps({"arch_id": arch_id, "converged": converged, "final_step": 100,
                                               "best": {"wer": wer, "loss": 10 * wer, "costs": {"params": 1.0}}}))


def test_seed_agreement_and_report_correlations(tmp_path, capsys, load_bench):
    bench = load_bench("reference_noise")
    wers0 = {"a1": 0.01, "b2": 0.02, "c3": 0.03, "d4": 0.04, "e5": 0.05}
    wers1 = {"a1": 0.05, "b2": 0.04, "c3": 0.03, "d4": 0.02, "e5": 0.01}  # the reverse order
    _write_refs(tmp_path / "s0", 0, wers0)
    _write_refs(tmp_path / "s1", 1, wers1)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"supernet": "x.ckpt", "archs": [
        {"arch_id": a, "supernet": {"wer": w, "loss": w}} for a, w in wers0.items()]}))
    out = tmp_path / "noise.json"
    assert bench.main(["--references", str(tmp_path / "s0"), str(tmp_path / "s1"), "--reports", str(report),
                       "--samples", "50", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["seeds"] == [0, 1] and len(res["archs"]) == 5
    assert res["agreement"][0]["wer"]["kendall_tau"]["value"] == pytest.approx(-1.0)
    rep = res["reports"][0]["supernet_wer"]
    assert rep["seed0"]["kendall_tau"]["value"] == pytest.approx(1.0)
    assert rep["seed1"]["kendall_tau"]["value"] == pytest.approx(-1.0)
    assert res["noise"]["median_abs_wer_difference_between_seeds_converged"] == pytest.approx(0.02)
    assert "seed 0 vs seed 1" in capsys.readouterr().out


def test_bad_input_names_the_fix(tmp_path, load_bench):
    bench = load_bench("reference_noise")
    _write_refs(tmp_path / "s0", 0, {"a1": 0.1, "b2": 0.2, "c3": 0.3})
    with pytest.raises(SystemExit, match="need two or more"):
        bench.main(["--references", str(tmp_path / "s0"), "--out", str(tmp_path / "o.json")])
    with pytest.raises(SystemExit, match="no such folder"):
        bench.main(["--references", str(tmp_path / "nope"), str(tmp_path / "s0")])
    _write_refs(tmp_path / "s1", 1, {"a1": 0.1, "b2": 0.2, "c3": 0.3})
    with pytest.raises(SystemExit, match="no such file"):
        bench.main(["--references", str(tmp_path / "s0"), str(tmp_path / "s1"), "--reports", str(tmp_path / "r.json")])
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"supernet": "x", "archs": [{"arch_id": "a1", "supernet": {"wer": 0.1, "loss": 1}}]}))
    with pytest.raises(SystemExit, match="no row for archs"):
        bench.main(["--references", str(tmp_path / "s0"), str(tmp_path / "s1"), "--reports", str(report),
                    "--out", str(tmp_path / "o.json")])
    assert not (tmp_path / "o.json").exists()  # nothing half-written
