"""Supernet training runs on the tiny space and the tiny FSDD corpus (a few steps each)."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_cfg(tmp_path, tiny_data_config):
    """make_cfg(name, **overrides) -> FitConfig: configs/fit/tiny.yaml on the test corpus, output in tmp_path/name."""
    from supernet.config import from_dict, load_yaml, merge_dicts, to_dict
    from supernet.training.config import FitConfig

    def make(name: str = "run", **overrides):
        data = load_yaml(REPO / "configs/fit/tiny.yaml")
        data.update(space=str(REPO / "configs/space/tiny.yaml"), data=to_dict(tiny_data_config), out_dir=str(tmp_path / name))
        return from_dict(FitConfig, merge_dicts(data, overrides))

    return make


def _net_state(result_or_module) -> dict[str, torch.Tensor]:
    module = getattr(result_or_module, "module", result_or_module)
    return {k: v.detach().clone() for k, v in module.net.state_dict().items()}


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_sandwich_run_writes_run_folder_and_reloads(make_cfg, caplog):
    from supernet.training.config import load_fit_config
    from supernet.training.run import build_module, fit, load_supernet

    cfg = make_cfg("sandwich", trainer={"max_steps": 3, "ckpt_every_steps": 2, "val_every_steps": 2, "limit_val_batches": 1})
    with caplog.at_level(logging.INFO):
        result = fit(cfg)
    assert "weights_only" not in caplog.text  # the checkpoints say what they hold; Lightning would log its default at each save
    d = result.run_dir
    for name in ("config.yaml", "space.yaml", "provenance.json", "supernet.ckpt", "metrics.csv", "summary.json",
                 "checkpoints/last.ckpt", "checkpoints/step=000002.ckpt"):
        assert (d / name).is_file(), name
    assert not list(d.rglob("*.tmp"))  # written atomically
    s = result.summary
    assert s["steps"] == 3 and s["nonfinite_steps"] == 0
    for path in ("largest", "smallest"):
        assert 0.0 <= s["dev"][path]["wer"] and math.isfinite(s["dev"][path]["wer"])
    assert yaml.safe_load((d / "space.yaml").read_text())["name"] == "tiny"
    assert load_fit_config(d / "config.yaml") == cfg  # the resolved config round-trips
    losses = _losses(d)
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    with open(d / "metrics.csv", newline="") as f:
        val = [r for r in csv.DictReader(f) if r.get("dev/largest/wer")]
    assert val and val[0]["dev/smallest/wer"] and val[0]["dev/dev/largest/cer"]  # validated during training
    # The saved supernet is the trained one, and differs from its initialisation.
    net, space, tokenizer, meta = load_supernet(result.checkpoint)
    trained = _net_state(result)
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())
    assert meta["state"]["batches_seen"] == 3 and meta["seed"] == cfg.seed and "torch" in meta["versions"]
    init = build_module(cfg, space, tokenizer).net.state_dict()
    assert any(not torch.equal(init[k], v) for k, v in trained.items())


def test_word_units_travel_from_fit_to_the_extracted_subnet(make_cfg, tmp_path):
    """data.tokenizer: word -> the supernet trains on word ids, its checkpoint and every subnet
    extracted from it carry the word vocabulary, and the subnet's outputs are over that vocabulary."""
    from supernet.data.tokenizer import WordTokenizer
    from supernet.extraction import extract_from_checkpoint, read_subnet
    from supernet.training.run import fit, load_supernet

    cfg = make_cfg("word", data={"tokenizer": "word"}, trainer={"max_steps": 2, "val_every_steps": None, "limit_val_batches": 1})
    result = fit(cfg)
    net, space, tokenizer, meta = load_supernet(result.checkpoint)
    assert isinstance(tokenizer, WordTokenizer) and meta["config"].data.tokenizer == "word"
    assert tokenizer.vocab <= {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    assert len(tokenizer.vocab) >= 5  # the tiny corpus speaks most digits
    sub = read_subnet(extract_from_checkpoint(result.checkpoint, "smallest", tmp_path / "sub.pt"))
    assert isinstance(sub.tokenizer, WordTokenizer) and sub.tokenizer.to_dict() == tokenizer.to_dict()
    assert sub.model.vocab_size == tokenizer.vocab_size == len(tokenizer.vocab) + 1


def test_same_seed_gives_identical_alpha_and_losses(make_cfg):
    from supernet.training.run import fit

    over = dict(strategy="darts", bilevel={"warmup_steps": 0}, trainer={"max_steps": 2})
    a, b = fit(make_cfg("a", **over)), fit(make_cfg("b", **over))
    alphas = [p.detach() for p in a.module.net.arch_parameters()]
    assert any(x.abs().sum() > 0 for x in alphas)  # alpha did move
    assert all(torch.equal(x, y.detach()) for x, y in zip(alphas, b.module.net.arch_parameters()))
    assert _losses(a.run_dir) == _losses(b.run_dir) and len(_losses(a.run_dir)) == 2
    sa, sb = _net_state(a), _net_state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (a.run_dir / "alpha.png").is_file() and (a.run_dir / "alpha_history.json").is_file()
    assert a.summary["derived"]["argmax"]["arch"] == b.summary["derived"]["argmax"]["arch"]
    # alphas.json is what the darts search strategy reads: the final softmax(alpha), per decision
    from supernet.search.strategies.darts import load_alphas

    final = load_alphas(str(a.run_dir / "alphas.json"))
    want = a.module.net.alpha_distributions()
    assert final.keys() == want.keys() and final
    for d, probs in want.items():
        assert final[d] == pytest.approx({str(v): p for v, p in probs.items()})
        assert sum(final[d].values()) == pytest.approx(1.0)


def test_waveform_augmentation_is_seeded_and_changes_training(make_cfg):
    from supernet.training.run import fit

    aug = {"speed": [0.8, 1.2], "speed_prob": 1.0, "gain_db": [-6.0, 6.0], "noise_prob": 1.0}
    over = dict(strategy="sandwich", trainer={"max_steps": 2})
    a, b = fit(make_cfg("a", augment=aug, **over)), fit(make_cfg("b", augment=aug, **over))
    plain = fit(make_cfg("plain", **over))
    assert _losses(a.run_dir) == _losses(b.run_dir) and len(_losses(a.run_dir)) == 2
    assert _losses(a.run_dir) != _losses(plain.run_dir)
    # bilevel: only the weight split is perturbed, and the run stays reproducible
    over = dict(strategy="darts", bilevel={"warmup_steps": 0}, trainer={"max_steps": 2})
    c, d = fit(make_cfg("c", augment=aug, **over)), fit(make_cfg("d", augment=aug, **over))
    assert _losses(c.run_dir) == _losses(d.run_dir)


def test_resume_from_mid_run_checkpoint_ends_identical(make_cfg):
    from supernet.training.run import fit

    over = dict(strategy="gdas", bilevel={"warmup_steps": 1}, trainer={"max_steps": 3, "ckpt_every_steps": 2})
    full = fit(make_cfg("full", **over), logger=False)
    ckpt = full.run_dir / "checkpoints" / "step=000002.ckpt"
    resumed = fit(make_cfg("resumed", **over), resume=ckpt, logger=False)
    assert resumed.module.batches_seen == 3
    s1, s2 = _net_state(full), _net_state(resumed)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)  # weights and alpha
    assert full.module.alpha_history == resumed.module.alpha_history
    # Resuming from a checkpoint of the final step (supernet.ckpt lost) finishes the run at once.
    (full.run_dir / "supernet.ckpt").unlink()
    again = fit(make_cfg("full", **over), resume=full.run_dir / "checkpoints" / "last.ckpt", logger=False)
    assert again.module.batches_seen == 3 and (full.run_dir / "supernet.ckpt").is_file()
    assert all(torch.equal(s1[k], v) for k, v in _net_state(again).items())


def test_nonfinite_steps_are_skipped_and_too_many_stop_with_last_good_checkpoint(make_cfg, monkeypatch):
    from supernet.training import strategies
    from supernet.training.module import NonFiniteLossError
    from supernet.training.run import fit, load_supernet

    real = strategies.head_loss
    calls = {"n": 0}
    bad_steps: set[int] = set()

    def flaky(*args, **kwargs):  # spos runs one path per step: call n is step n
        loss = real(*args, **kwargs)
        step = calls["n"]
        calls["n"] += 1
        return loss * float("nan") if step in bad_steps else loss

    monkeypatch.setattr(strategies, "head_loss", flaky)
    bad_steps.update({1, 2})
    ok = fit(make_cfg("skips", strategy="spos", trainer={"max_steps": 5, "max_nonfinite": 3}), logger=False)
    assert ok.summary["nonfinite_steps"] == 2 and ok.summary["steps"] == 5
    assert all(torch.isfinite(v).all() for v in _net_state(ok).values())

    calls["n"] = 0
    bad_steps.clear()
    bad_steps.update(range(2, 100))
    cfg = make_cfg("diverged", strategy="spos", trainer={"max_steps": 8, "max_nonfinite": 3, "ckpt_every_steps": 1})
    with pytest.raises(NonFiniteLossError, match=r"3 training steps in a row \(steps 2\.\.4\)"):
        fit(cfg, logger=False)
    last = cfg.run_dir / "checkpoints" / "last.ckpt"
    net, _, _, meta = load_supernet(last)
    assert meta["state"]["batches_seen"] == 2  # written after the last good step, none after
    assert all(torch.isfinite(v).all() for v in net.state_dict().values())
    assert not (cfg.run_dir / "supernet.ckpt").exists()


def test_progressive_and_second_order_darts_with_hardware_loss(make_cfg):
    from supernet.training.run import fit

    # phases 2 + 1 + 1 steps; the first two chunked on every step (dynamic chunk, streaming_prob 1)
    phases = [{"name": "largest", "open": [], "steps": 2, "streaming_prob": 1.0},
              {"name": "kernel", "open": ["kernel"], "steps": 1, "streaming_prob": 1.0}, {"name": "all", "open": ["all"], "steps": 1}]
    prog = fit(make_cfg("progressive", strategy="progressive", progressive={"phases": phases}), logger=False)
    assert prog.module.batches_seen == 4 and prog.summary["nonfinite_steps"] == 0
    trained = [prog.module.strategy.paths(step / 4, step) for step in range(4)]
    assert all(a.chunk > 0 for paths in trained[:3] for _, a in paths)  # the steps that ran were chunked
    darts = fit(make_cfg("darts2", strategy="darts", bilevel={"order": 2, "warmup_steps": 0},
                         hardware={"enabled": True, "cost": "params", "target": 1000.0, "weight": 1.0},
                         derive_budget=60000.0, trainer={"max_steps": 2}))
    assert any(a.detach().abs().sum() > 0 for a in darts.module.net.arch_parameters())
    budget = darts.summary["derived"]["budget"]
    assert budget["arch"] is not None and budget["predicted_cost"] <= 60000.0
    with open(darts.run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/expected_cost")]
    assert rows and float(rows[0]["train/hw_penalty"]) > 0  # the target is far below any arch


def test_warm_start_from_a_standalone_largest_arch(make_cfg, tmp_path):
    """init_from a one-arch `supernet fit` run: the supernet's largest path computes what it did."""
    from supernet.config import ConfigError
    from supernet.space import SearchSpace
    from supernet.space_yaml import one_arch_space
    from supernet.training.run import fit, warm_start

    space = SearchSpace.from_yaml(REPO / "configs/space/tiny.yaml")
    largest = space.largest()
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(one_arch_space(largest, "tiny-largest")))
    assert SearchSpace.from_yaml(one).largest().id == largest.id
    alone = fit(make_cfg("alone", space=str(one), strategy="spos", trainer={"max_steps": 2}), logger=False)
    warm = fit(make_cfg("warm", init_from=str(alone.checkpoint), trainer={"max_steps": 1, "val_every_steps": None}),
               logger=False)
    report = warm.summary["init_from"]
    assert report["checkpoint"] == str(alone.checkpoint)
    assert 0 < report["loaded_tensors"] < report["total_tensors"]  # the other blocks keep their initialisation
    assert report["not_in_checkpoint"] and not report["unused"]
    # Before any step, the supernet's largest path is the standalone model.
    from supernet.training.run import build_module

    cfg = make_cfg("warm0", init_from=str(alone.checkpoint))
    module = build_module(cfg, space, alone.module.tokenizer)
    torch.manual_seed(0)
    audio, lengths = torch.randn(2, 16000), torch.tensor([16000, 12000])
    a, b = alone.module.net.eval(), module.net.eval()
    with torch.no_grad():
        (ea, la), (eb, lb) = a(audio, lengths, largest), b(audio, lengths, largest)
    assert torch.equal(la, lb) and torch.allclose(ea, eb, atol=1e-6)
    with pytest.raises(ConfigError, match="not found"):
        warm_start(module.net, tmp_path / "missing.ckpt")


def test_cli_print_config_errors_and_a_short_run(tmp_path, capsys, tiny_data_config, fsdd_dir):
    from supernet.cli import main
    from supernet.training.config import load_fit_config

    tiny = str(REPO / "configs/fit/tiny.yaml")
    assert main(["fit", "-c", tiny, "--print_config", "trainer.max_steps=7", "sandwich.num_random=0"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["max_steps"] == 7 and printed["sandwich"]["num_random"] == 0
    assert load_fit_config(printed).trainer.max_steps == 7  # printed configs load back
    assert main(["fit", "-c", tiny, "trainer.max_stepz=3"]) == 1
    assert "trainer.max_stepz" in capsys.readouterr().err
    assert main(["fit", "-c", tiny, "strategy=nas"]) == 1
    assert "allowed values" in capsys.readouterr().err
    out = tmp_path / "cli"
    args = ["fit", "-c", tiny, f"space={REPO / 'configs/space/tiny.yaml'}", f"data.cache_dir={tiny_data_config.cache_dir}",
            f"data.fsdd.fsdd_dir={fsdd_dir}", "trainer.max_steps=2", "sandwich.num_random=0", "--out", str(out)]
    assert main(args) == 0
    assert "dev WER largest" in capsys.readouterr().out
    assert (out / "supernet.ckpt").is_file()
