"""`supernet extract` and `supernet finetune` on a real (2-step) tiny supernet run and FSDD data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from supernet.cli import main
from supernet.config import ConfigError
from supernet.extraction import parse_arch, read_subnet
from supernet.finetune import DistillConfig, DistilledSubnet, load_finetune_config, score_subnet
from supernet.subnet import extract, save_subnet

REPO = Path(__file__).resolve().parents[1]
REPO_TINY = "configs/fit/tiny.yaml"


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory, fsdd_dir, tiny_corpus, corpus_cache_dir):
    """A tiny supernet trained for 2 steps by `supernet fit` (its checkpoint format is the real one)."""
    import os

    from supernet.train import load_supernet

    out = tmp_path_factory.mktemp("fit") / "tiny"
    cwd = os.getcwd()
    os.chdir(REPO)  # the config names its space relative to the repository
    try:
        assert main(["fit", "-c", REPO_TINY, "--out", str(out), "trainer.max_steps=2", "trainer.ckpt_every_steps=2",
                     f"data.cache_dir={corpus_cache_dir}", f"data.fsdd.fsdd_dir={fsdd_dir}"]) == 0
    finally:
        os.chdir(cwd)
    ckpt = out / "supernet.ckpt"
    return ckpt, *load_supernet(ckpt)


def _overrides(corpus_cache_dir, fsdd_dir) -> list[str]:
    return [f"data.cache_dir={corpus_cache_dir}", f"data.fsdd.fsdd_dir={fsdd_dir}"]


def test_extract_cli_writes_a_standalone_subnet(fit_run, tmp_path, capsys):
    ckpt, net, space, tokenizer, _ = fit_run
    out = tmp_path / "largest.pt"
    assert main(["extract", str(ckpt), "--arch", "largest", "--out", str(out)]) == 0
    sub = read_subnet(out)
    assert sub.model.arch == space.largest() and sub.tokenizer == tokenizer
    assert sub.extra["source"]["checkpoint"] == str(ckpt) and sub.extra["data"]["corpus"] == "fsdd"
    audio = 0.1 * torch.randn(2, 12000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([12000, 7000])
    with torch.no_grad():
        a, la = net(audio, lengths, sub.model.arch)
        b, lb = sub.model(audio, lengths)
    assert torch.equal(la, lb) and (a - b).abs().max().item() <= 1e-5
    # the same arch as JSON text, as a YAML row with an "arch" entry, and as an entry of a list
    small = space.smallest()
    (tmp_path / "row.yaml").write_text(yaml.safe_dump({"arch": small.to_dict(), "wer": 0.5}))
    (tmp_path / "list.json").write_text(json.dumps([{"arch": space.largest().to_dict()}, small.to_dict()]))
    for spec, extra in ((small.to_json(), []), (str(tmp_path / "row.yaml"), []), (str(tmp_path / "list.json"), ["--index", "1"])):
        assert main(["extract", str(ckpt), "--arch", spec, "--out", str(tmp_path / "s.pt"), *extra]) == 0
        assert read_subnet(tmp_path / "s.pt").model.arch == small
    assert "vocabulary" in capsys.readouterr().err


def test_extract_rejects_bad_input(fit_run, tmp_path, capsys):
    ckpt, _, space, _, _ = fit_run
    bad = space.largest().to_dict() | {"width": 999}
    assert main(["extract", str(ckpt), "--arch", json.dumps(bad), "--out", str(tmp_path / "x.pt")]) == 1
    assert "width = 999" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "nope.ckpt"), "--arch", "largest", "--out", str(tmp_path / "x.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "two.json").write_text(json.dumps([space.largest().to_dict(), space.smallest().to_dict()]))
    with pytest.raises(ConfigError, match="--index"):
        parse_arch(str(tmp_path / "two.json"), space)
    assert not (tmp_path / "x.pt").exists()


def test_subnet_without_vocabulary_is_refused(fit_run, tmp_path):
    _, net, space, _, _ = fit_run
    save_subnet(extract(net, space.smallest()), tmp_path / "bare.pt")
    with pytest.raises(ConfigError, match="no vocabulary"):
        read_subnet(tmp_path / "bare.pt")


def test_distilled_loss_adds_kl_to_the_label_loss(fit_run):
    _, net, space, _, _ = fit_run
    student = extract(net, space.smallest()).eval()
    g = torch.Generator().manual_seed(1)
    audio, lengths = 0.1 * torch.randn(2, 9000, generator=g), torch.tensor([9000, 6000])
    targets, target_lengths = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])

    def losses(teacher):
        m = DistilledSubnet(student, teacher, DistillConfig())
        enc, enc_lengths = m.encoder(*m.features(audio, lengths))
        label = student.loss(enc, enc_lengths, targets, target_lengths)
        return m, m.loss(enc, enc_lengths, targets, target_lengths), label

    m, same, label = losses(copy.deepcopy(student))  # teacher == student: KL is 0
    assert same.item() == pytest.approx(label.item(), abs=1e-5)
    assert [n for n, _ in m.named_parameters()] == [f"student.{n}" for n, _ in student.named_parameters()]
    _, kd, label = losses(extract(net, space.largest()))
    assert kd.item() > label.item() + 1e-4
    with pytest.raises(RuntimeError, match="before features"):
        m.loss(*student.encoder(*student.features(audio, lengths)), targets, target_lengths)


def test_finetune_cli_early_stops_and_writes_subnet(fit_run, tmp_path, fsdd_dir, corpus_cache_dir, tiny_data_config, capsys):
    ckpt, net, space, tokenizer, _ = fit_run
    sub = tmp_path / "sub.pt"
    assert main(["extract", str(ckpt), "--arch", "smallest", "--out", str(sub)]) == 0
    before = {k: v.clone() for k, v in read_subnet(sub).model.state_dict().items()}
    out = tmp_path / "ft"
    # options between SUBNET and the overrides, teacher given: distillation on
    assert main(["finetune", str(sub), "-c", str(REPO / "configs/finetune/tiny.yaml"), "--out", str(out), "--teacher", str(ckpt),
                 "train.max_steps=4", *_overrides(corpus_cache_dir, fsdd_dir)]) == 0
    assert "dev WER" in capsys.readouterr().err
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["final_step"] == 4 and summary["stopped"] in ("max_steps", "patience")
    assert [p["step"] for p in summary["curve"]] == [0, 2, 4]
    assert summary["distill_steps"] == 4 and summary["distill_unmatched_steps"] == 0
    assert summary["teacher"]["arch"]["subsampling"] == space.smallest().subsampling
    tuned = read_subnet(out / "subnet.pt")
    assert tuned.tokenizer == tokenizer and tuned.extra["finetune"]["best_step"] == summary["best_step"]
    if summary["best_step"] > 0:
        assert any(not torch.equal(before[k], v) for k, v in tuned.model.state_dict().items())
    # the saved weights are the best ones: re-scoring them gives the recorded best dev WER
    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluation.batches import make_batches

    dm = SpeechDataModule(tiny_data_config, tokenizer=tokenizer, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    m = score_subnet(tuned.model, make_batches(dm.dev_sets, 8), tokenizer)
    assert m.wer == pytest.approx(summary["best"]["wer"], abs=1e-6)
    assert min(p["wer"] for p in summary["curve"]) == pytest.approx(summary["best"]["wer"])


def test_finetune_config_loading(tmp_path):
    cfg = load_finetune_config(REPO / "configs/finetune/distill.yaml", {"train": {"max_steps": 7}})
    assert cfg.distill is not None and cfg.distill.arch == "largest" and cfg.train.max_steps == 7
    assert cfg.train.monitor == "wer" and cfg.data is None
    cfg = load_finetune_config(REPO / "configs/finetune/tiny.yaml")
    assert cfg.data.corpus == "fsdd" and cfg.distill is None
    (tmp_path / "bad.yaml").write_text("train:\n  max_stepz: 3\n")
    with pytest.raises(ConfigError, match="max_stepz"):
        load_finetune_config(tmp_path / "bad.yaml")
