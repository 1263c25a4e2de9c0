"""Baselines: models, augmentation, Lightning training, checkpoints, CLI (tiny models, tiny corpus)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from supernet.baseline.augment import AugmentConfig, WaveAugment
from supernet.baseline.config import BaselineConfig, OptimConfig, TrainerConfig, load_baseline_config
from supernet.baseline.models import ConvSubsampler, ModelConfig, build_model
from supernet.config import ConfigError, to_dict
from supernet.data.features import FeatureConfig, FeatureExtractor

REPO = Path(__file__).resolve().parents[1]


def tiny_model(kind: str = "conformer") -> ModelConfig:
    return ModelConfig(kind=kind, features=FeatureConfig(n_mels=40, f_max=4000.0), subsample_channels=4, d_model=16,
                       num_layers=1, num_heads=2, ffn_dim=32, conv_kernel=3, lstm_hidden=8, dropout=0.1)


def tiny_config(data_cfg, kind: str = "conformer", seed: int = 0, max_steps: int = 3) -> BaselineConfig:
    return BaselineConfig(
        name=f"tiny_{kind}", seed=seed, model=tiny_model(kind),
        augment=AugmentConfig(speed=(0.9, 1.1), speed_prob=1.0, gain_db=(-3.0, 3.0), noise_prob=0.5),
        data=replace(data_cfg, seed=seed),
        trainer=TrainerConfig(max_steps=max_steps, progress=False, num_threads=1, log_every_steps=1),
    )


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("kind", ["conformer", "lstm"])
def test_output_shapes_and_batch_invariance(kind):
    torch.manual_seed(0)
    model = build_model(tiny_model(kind), vocab_size=12).eval()
    audio, lengths = torch.randn(3, 16000), torch.tensor([16000, 9000, 4000])
    log_probs, out_lengths = model(audio, lengths)
    frames = model.frontend.num_frames(lengths)
    assert out_lengths.tolist() == ConvSubsampler.output_lengths(frames).tolist()
    assert log_probs.shape == (3, int(out_lengths.max()), 12)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, log_probs.shape[1]), atol=1e-5)
    # Padding never leaks: each utterance alone gives what it gives inside the padded batch.
    for i in range(3):
        alone, n = model(audio[i:i + 1, : lengths[i]], lengths[i:i + 1])
        assert torch.allclose(alone[0], log_probs[i, : int(n)], atol=1e-5)


def test_floor_clamp_hides_what_lies_below_the_floor():
    fe = FeatureExtractor(FeatureConfig(n_mels=40, f_max=4000.0, floor_db=60.0))
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t) * (t > 0.3) * (t < 0.7)
    quiet_room = tone + 1e-6 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([16000, 16000])
    feats, feat_lengths = fe(torch.stack([tone, quiet_room]), lengths)
    # Digital silence and a -120 dB room both sit on the floor: the same features.
    assert torch.allclose(feats[0], feats[1], atol=1e-3)
    # Normalised per utterance and feature over valid frames.
    assert torch.allclose(feats[0].mean(0), torch.zeros(40), atol=1e-4)
    assert fe.dim == 40 and feat_lengths.tolist() == [101, 101]
    with pytest.raises(ValueError, match="floor_db"):
        FeatureConfig(kind="mfcc", floor_db=60.0)


def test_model_config_errors():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="odd"):
        ModelConfig(conv_kernel=4)
    with pytest.raises(ValueError, match="too small"):
        ConvSubsampler(5, 4, 8)


# ----------------------------------------------------------------------------- augmentation


def test_wave_augment_is_seeded_and_keeps_padding_zero():
    cfg = AugmentConfig(speed=(0.8, 1.2), speed_prob=1.0, gain_db=(-6.0, 6.0), noise_prob=1.0)
    audio = torch.randn(4, 8000) * 0.1
    lengths = torch.tensor([8000, 6000, 4000, 2000])
    audio = audio.masked_fill(torch.arange(8000)[None] >= lengths[:, None], 0.0)
    aug = WaveAugment(cfg).train()
    out1, len1 = aug(audio, lengths, torch.Generator().manual_seed(3))
    out2, len2 = aug(audio, lengths, torch.Generator().manual_seed(3))
    out3, _ = aug(audio, lengths, torch.Generator().manual_seed(4))
    assert torch.equal(out1, out2) and torch.equal(len1, len2)
    assert not torch.equal(out1, out3)
    ratio = lengths.double() / len1.double()  # speed factor
    assert ((ratio > 0.79) & (ratio < 1.21)).all()
    assert out1.shape[1] == int(len1.max())
    for i in range(4):
        assert (out1[i, int(len1[i]):] == 0).all()
    assert aug.eval()(audio, lengths)[0] is audio  # identity in eval mode


def test_augment_config_errors():
    with pytest.raises(ValueError, match="low <= high"):
        AugmentConfig(gain_db=(3.0, -3.0))
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(noise_prob=1.5)


# ----------------------------------------------------------------------------- config


def test_lr_schedule_shapes():
    o = OptimConfig(lr=1.0, warmup=0.1, schedule="cosine", min_lr_ratio=0.1)
    assert o.lr_factor(0.0) == 0.0
    assert o.lr_factor(0.05) == pytest.approx(0.5)
    assert o.lr_factor(0.1) == pytest.approx(1.0)
    assert o.lr_factor(1.0) == pytest.approx(0.1)
    lin = OptimConfig(warmup=0.0, schedule="linear")
    assert lin.lr_factor(0.5) == pytest.approx(0.5)
    assert OptimConfig(warmup=0.0, schedule="constant").lr_factor(0.9) == 1.0


@pytest.mark.parametrize("path", sorted((REPO / "configs/baseline").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_build(path):
    cfg = load_baseline_config(path)
    model = build_model(cfg.model, vocab_size=30)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_bad_config_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  d_modle: 64\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*model\.d_modle"):
        load_baseline_config(bad)
    bad.write_text("optim:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_baseline_config(bad)


# ----------------------------------------------------------------------------- training


def _datamodule(cfg):
    from supernet.data.datamodule import SpeechDataModule

    dm = SpeechDataModule(cfg.data, progress=False)
    dm.setup()
    return dm


@pytest.mark.parametrize("kind", ["conformer", "lstm"])
def test_fast_dev_run(kind, tiny_data_config):
    from supernet.baseline.module import BaselineModule
    from supernet.baseline.train import make_trainer, setup_torch

    setup_torch(1)
    cfg = tiny_config(tiny_data_config, kind)
    dm = _datamodule(cfg)
    module = BaselineModule(cfg, dm.tokenizer)
    trainer = make_trainer(cfg, None, fast_dev_run=True, limit_val_batches=None)
    trainer.fit(module, datamodule=dm)
    assert module.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert 0.0 <= float(trainer.callback_metrics["dev/wer"])
    trainer.test(module, datamodule=dm, verbose=False)
    assert set(module.eval_results["test"]) == set(dm.test_names)
    assert {"wer", "cer", "loss"} <= set(module.eval_results["test"][dm.test_names[0]])


class _LossRecorder:
    def __init__(self):
        import lightning as L

        outer = self

        class CB(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                outer.losses.append(float(outputs["loss"]))

        self.losses: list[float] = []
        self.callback = CB()


def _losses(cfg) -> list[float]:
    from supernet.baseline.module import BaselineModule
    from supernet.baseline.train import make_trainer, setup_torch
    from supernet.utils import seed_everything

    setup_torch(1)
    seed_everything(cfg.seed)
    dm = _datamodule(cfg)
    rec = _LossRecorder()
    trainer = make_trainer(cfg, None, callbacks=[rec.callback])
    trainer.fit(BaselineModule(cfg, dm.tokenizer), datamodule=dm)
    return rec.losses


def test_same_seed_same_losses(tiny_data_config):
    a = _losses(tiny_config(tiny_data_config, seed=0))
    b = _losses(tiny_config(tiny_data_config, seed=0))
    c = _losses(tiny_config(tiny_data_config, seed=1))
    assert len(a) == 3 and all(torch.isfinite(torch.tensor(a)))
    assert a == b
    assert a != c


def test_time_limit_only_stops_the_run_and_stays_out_of_the_schedule(tiny_data_config, tmp_path):
    import json
    import time

    from supernet.baseline.module import BaselineModule
    from supernet.baseline.train import fit

    cfg = tiny_config(tiny_data_config, max_steps=10)
    dm = _datamodule(cfg)
    guarded = BaselineModule(replace(cfg, trainer=replace(cfg.trainer, time_limit_minutes=1.0)), dm.tokenizer)
    budgeted = BaselineModule(replace(cfg, trainer=replace(cfg.trainer, max_minutes=1.0)), dm.tokenizer)
    for m in (guarded, budgeted):
        m._t0 = time.monotonic() - 30.0  # half a minute into the run, at step 0
    assert guarded.progress() == 0.0  # the guard is not part of the schedule's progress
    assert budgeted.progress() >= 0.5  # a budget is
    with pytest.raises(ValueError, match="time_limit_minutes must be > 0"):
        replace(cfg.trainer, time_limit_minutes=0.0)
    # a 6 ms guard ends the run after its first step and says so
    fit(replace(cfg, trainer=replace(cfg.trainer, time_limit_minutes=0.0001)), tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["stopped_by"] == "time_limit" and metrics["steps"] < 10


def test_checkpoint_round_trip(tiny_data_config, tmp_path):
    from supernet.baseline.module import BaselineModule, load_baseline
    from supernet.baseline.train import make_trainer, setup_torch

    setup_torch(1)
    cfg = tiny_config(tiny_data_config, max_steps=2)
    dm = _datamodule(cfg)
    module = BaselineModule(cfg, dm.tokenizer)
    trainer = make_trainer(cfg, None)
    trainer.fit(module, datamodule=dm)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    loaded = load_baseline(ckpt)
    assert loaded.tokenizer == dm.tokenizer
    assert to_dict(loaded.cfg) == to_dict(cfg)
    batch = next(iter(dm.val_dataloader()[0]))
    module.eval()
    with torch.no_grad():
        want, want_len = module(batch["audio"], batch["audio_lengths"])
        got, got_len = loaded(batch["audio"], batch["audio_lengths"])
    assert torch.equal(want_len, got_len)
    assert torch.equal(want, got)
    assert loaded.transcribe(batch["audio"], batch["audio_lengths"]) == module.transcribe(
        batch["audio"], batch["audio_lengths"])
    meta = torch.load(ckpt, weights_only=False)["supernet_baseline"]
    assert meta["seed"] == cfg.seed and "torch" in meta["versions"]


def test_load_baseline_rejects_other_files(tmp_path):
    from supernet.baseline.module import load_baseline

    with pytest.raises(FileNotFoundError, match="not found"):
        load_baseline(tmp_path / "missing.ckpt")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ConfigError, match="not a baseline checkpoint"):
        load_baseline(other)


def test_cli_fit_then_eval(tiny_data_config, tmp_path, capsys):
    from supernet.cli import main

    cfg = tiny_config(tiny_data_config, max_steps=2)
    yml = tmp_path / "tiny.yaml"
    yml.write_text(yaml.safe_dump(to_dict(cfg)))
    run = tmp_path / "run"
    assert main(["baseline", "fit", "-c", str(yml), "--out", str(run), "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "WER" in out and "2 steps" in out
    for name in ("model.ckpt", "config.yaml", "tokenizer.json", "provenance.json", "metrics.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["stopped_by"] == "max_steps"
    assert set(metrics["test"]) == {"test"} and 0.0 <= metrics["test"]["test"]["wer"]
    assert load_baseline_config(run / "config.yaml") == cfg

    # The checkpoint alone reproduces the run's own scores.
    res_json = tmp_path / "eval.json"
    assert main(["baseline", "eval", str(run / "model.ckpt"), "--split", "test", "--json", str(res_json),
                 "--no-progress"]) == 0
    res = json.loads(res_json.read_text())
    assert res["sets"]["test"]["wer"] == pytest.approx(metrics["test"]["test"]["wer"])
    assert res["sets"]["test"]["loss"] == pytest.approx(metrics["test"]["test"]["loss"], rel=1e-5)

    # A finished run folder is never overwritten.
    assert main(["baseline", "fit", "-c", str(yml), "--out", str(run), "--no-progress"]) == 1
    assert "already holds a finished run" in capsys.readouterr().err
