"""Batches, the length-bucketing sampler and the DataModule (refusal, skip_bad, Lightning)."""

import json
import logging

import pytest
import torch

from supernet.config import load_config
from supernet.data.datamodule import DataConfig, LengthBucketSampler, SpeechDataModule, collate
from supernet.data.manifest import ManifestError, check_manifest
from supernet.data.tokenizer import CharTokenizer

BATCH_KEYS = {"audio", "audio_lengths", "targets", "target_lengths", "texts", "langs", "ids"}


def test_collate_pads_and_keeps_lengths():
    items = [{"audio": torch.ones(5), "target": torch.tensor([3, 4]), "text": "ab", "lang": "en", "id": "a"},
             {"audio": torch.ones(3), "target": torch.tensor([5, 6, 7]), "text": "cde", "lang": "de", "id": "b"}]
    b = collate(items)
    assert set(b) == BATCH_KEYS
    assert b["audio"].shape == (2, 5) and b["audio"].dtype == torch.float32
    assert b["audio"][1].tolist() == [1, 1, 1, 0, 0]
    assert b["audio_lengths"].tolist() == [5, 3] and b["audio_lengths"].dtype == torch.int64
    assert b["targets"].tolist() == [[3, 4, 0], [5, 6, 7]] and b["targets"].dtype == torch.int64
    assert b["target_lengths"].tolist() == [2, 3]
    assert b["texts"] == ["ab", "cde"] and b["langs"] == ["en", "de"] and b["ids"] == ["a", "b"]


def test_sampler_deterministic_and_complete():
    g = torch.Generator().manual_seed(0)
    durations = (torch.rand(103, generator=g) * 5 + 0.5).tolist()

    def batches(seed=0, epoch=0, num_buckets=4, **kw):
        s = LengthBucketSampler(durations, batch_size=8, num_buckets=num_buckets, seed=seed, **kw)
        s.set_epoch(epoch)
        return list(s)

    a = batches()
    assert a == batches() and a != batches(epoch=1) and a != batches(seed=1)
    assert sorted(i for b in a for i in b) == list(range(103))  # every utterance once
    assert all(len(b) <= 8 for b in a)
    assert len(LengthBucketSampler(durations, batch_size=8, num_buckets=4)) == len(a)
    # Buckets keep lengths together: much less padding than a random split.
    pad = sum(len(b) * max(durations[i] for i in b) - sum(durations[i] for i in b) for b in a)
    assert pad < 0.25 * sum(durations)
    # Evaluation order: sorted by duration, no shuffling.
    ev = batches(shuffle=False)
    flat = [i for b in ev for i in b]
    assert [durations[i] for i in flat] == sorted(durations)
    # By seconds: batch size x longest <= cap (unless one utterance alone exceeds it).
    for b in batches(max_batch_seconds=12.0):
        assert len(b) == 1 or len(b) * max(durations[i] for i in b) <= 12.0
    assert len(batches(drop_last=True, num_buckets=1)) == 103 // 8


def test_sampler_epoch_set_by_lightning_helper():
    from lightning.fabric.utilities.data import _set_sampler_epoch

    s = LengthBucketSampler([1.0] * 10, batch_size=2)
    loader = torch.utils.data.DataLoader(list(range(10)), batch_sampler=s)
    _set_sampler_epoch(loader, 3)
    assert s.epoch == 3


def test_datamodule_fsdd(tiny_data_config, tiny_fsdd_config):
    dm = SpeechDataModule(tiny_data_config, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.dev_names == ["dev"] and dm.test_names == ["test"]
    assert len(dm.train_set) == tiny_fsdd_config.num_train and list(dm.dev_sets) == ["dev"]
    tok = dm.tokenizer
    assert tok.vocab == set("zeroonetwothreefourfivesixseveneightnine ")
    batches = list(dm.train_dataloader())
    assert sum(len(b["ids"]) for b in batches) == tiny_fsdd_config.num_train
    b = batches[0]
    assert set(b) == BATCH_KEYS and b["audio"].shape[0] == len(b["ids"]) <= 4
    assert b["audio"].shape[1] == b["audio_lengths"].max()
    for i in range(len(b["ids"])):
        n, u = b["audio_lengths"][i], b["target_lengths"][i]
        assert torch.all(b["audio"][i, n:] == 0) and torch.all(b["targets"][i, u:] == 0)
        assert tok.decode(b["targets"][i, :u].tolist()) == b["texts"][i]
    assert b["langs"] == ["en"] * len(b["ids"])
    # Same seed -> same batches; audio is in memory as float32 at 16 kHz.
    assert [x["ids"] for x in SpeechDataModule(tiny_data_config, tokenizer=tok, progress=False).train_dataloader()] == \
        [x["ids"] for x in batches]
    val = dm.val_dataloader()
    assert isinstance(val, list) and len(val) == 1
    assert dm.train_set.audio[0].dtype == torch.float32
    state = dm.state_dict()
    dm2 = SpeechDataModule(tiny_data_config)
    dm2.load_state_dict(json.loads(json.dumps(state)))
    assert dm2.tokenizer == tok


def test_datamodule_word_units(tiny_data_config):
    """`tokenizer: word`: one id per digit word; targets decode to the transcripts; saved with its kind."""
    import dataclasses

    from supernet.config import config_hash
    from supernet.data.tokenizer import WordTokenizer

    cfg = dataclasses.replace(tiny_data_config, tokenizer="word")
    dm = SpeechDataModule(cfg, progress=False)
    dm.setup("fit")
    tok = dm.tokenizer
    assert isinstance(tok, WordTokenizer)
    assert tok.vocab <= set("zero one two three four five six seven eight nine".split()) and len(tok.vocab) >= 8
    b = next(iter(dm.train_dataloader()))
    for i in range(len(b["ids"])):
        u = b["target_lengths"][i]
        assert u == len(b["texts"][i].split())  # one target per word
        assert tok.decode(b["targets"][i, :u].tolist()) == b["texts"][i]
    dm2 = SpeechDataModule(cfg)
    dm2.load_state_dict(json.loads(json.dumps(dm.state_dict())))
    assert dm2.tokenizer == tok
    # The option stays out of the hash at its default (caches keyed by older configs stay valid).
    assert config_hash(dataclasses.replace(cfg, tokenizer="char")) == config_hash(tiny_data_config) != config_hash(cfg)
    with pytest.raises(ValueError, match="tokenizer must be one of char, word, got 'bpe'"):
        dataclasses.replace(cfg, tokenizer="bpe")


def test_datamodule_espeak_per_language_sets(tiny_espeak_config, tiny_espeak_corpus, corpus_cache_dir):
    cfg = DataConfig(corpus="espeak", espeak=tiny_espeak_config, cache_dir=str(corpus_cache_dir), batch_size=4)
    dm = SpeechDataModule(cfg, progress=False)
    dm.setup()
    assert dm.dev_names == ["dev.de", "dev.en"] and list(dm.test_sets) == ["test.de", "test.en"]
    assert dm.tokenizer.vocab == {" "} | {c for t in dm.train_set.texts for c in t}  # built from training text
    loaders = dm.val_dataloader()
    assert len(loaders) == 2
    langs = [set(lang for b in ld for lang in b["langs"]) for ld in loaders]
    assert langs == [{"de"}, {"en"}]


def _manifest_config(tmp_path, bad_manifest, **kw):
    m, _, good = bad_manifest
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"audio_filepath": str(good), "duration": 0.5, "text": "one two"}) + "\n")
    return DataConfig(corpus="manifest", train_manifest=str(m), dev_manifests={"dev": str(dev)},
                      cache_dir=str(tmp_path / "cache"), batch_size=2, **kw)


def test_training_refuses_bad_entries_with_check_messages(tmp_path, bad_manifest):
    m, expected, _ = bad_manifest
    dm = SpeechDataModule(_manifest_config(tmp_path, bad_manifest), progress=False)
    with pytest.raises(ManifestError) as e:
        dm.setup("fit")
    msg = str(e.value)
    assert f"{len(expected)} unusable entries" in msg and "skip_bad: true" in msg
    for p in check_manifest(m):  # exactly the lines `supernet data check` prints
        assert str(p) in msg.splitlines()
    assert not m.with_suffix(".skipped.jsonl").exists()


def test_skip_bad_lists_and_reports_skipped(tmp_path, bad_manifest, caplog):
    m, expected, _ = bad_manifest
    dm = SpeechDataModule(_manifest_config(tmp_path, bad_manifest, skip_bad=True), progress=False)
    with caplog.at_level(logging.WARNING, logger="supernet.data.datamodule"):
        dm.setup("fit")
    assert len(dm.train_set) == 12 - len(expected)
    assert dm.skipped == {str(m): len(expected)}
    assert f"skipped {len(expected)} of 12 entries of {m}" in caplog.text
    listed = [json.loads(x) for x in m.with_suffix(".skipped.jsonl").read_text().splitlines()]
    assert [r["line"] for r in listed] == sorted(expected)
    assert all(expected[r["line"]] in r["reason"] for r in listed)
    assert '"duration": 0.5' in listed[0]["entry"]  # the original line, to fix and put back
    # A given tokenizer that cannot spell "grüße" makes that line a problem as well.
    dm2 = SpeechDataModule(_manifest_config(tmp_path, bad_manifest, skip_bad=True),
                           tokenizer=CharTokenizer.build(["one two"]), progress=False)
    dm2.setup("fit")
    assert dm2.skipped[str(m)] == len(expected) + 1


def test_yaml_configs(tmp_path):
    from supernet.data.espeak import EspeakConfig
    from supernet.data.fsdd import FSDDConfig

    assert load_config(DataConfig, "configs/data/espeak.yaml") == DataConfig()  # the default, spelled out
    fsdd = load_config(DataConfig, "configs/data/fsdd.yaml")
    assert fsdd.corpus == "fsdd" and fsdd.fsdd == FSDDConfig() and fsdd.espeak == EspeakConfig()
    mine = load_config(DataConfig, "configs/data/manifest_example.yaml")
    assert mine.corpus == "manifest" and mine.dev_manifests == {"dev": "data/mine/dev.jsonl"}
    with pytest.raises(Exception, match="train_manifest"):
        load_config(DataConfig, {"corpus": "manifest"})


def test_lightning_fit_with_several_dev_sets(tiny_data_config, tmp_path):
    """The DataModule drives a real Trainer: per-epoch reshuffling and one loader per dev set."""
    import dataclasses

    import lightning as L

    from supernet.data.features import FeatureConfig, FeatureExtractor

    cfg = dataclasses.replace(tiny_data_config, dev_manifests={})
    dm = SpeechDataModule(cfg, progress=False)
    dm.setup()
    dm.dev_sets = {"dev": dm.dev_sets["dev"], "dev.copy": dm.dev_sets["dev"]}  # two named sets

    class Tiny(L.LightningModule):
        def __init__(self, vocab_size):
            super().__init__()
            self.fe = FeatureExtractor(FeatureConfig(n_mels=20))
            self.out = torch.nn.Linear(20, vocab_size)
            self.seen = {"train": [], "val": []}

        def loss(self, b):
            x, xl = self.fe(b["audio"], b["audio_lengths"])
            logp = self.out(x).log_softmax(-1).transpose(0, 1)
            return torch.nn.functional.ctc_loss(logp, b["targets"], xl, b["target_lengths"], zero_infinity=True)

        def training_step(self, b, i):
            self.seen["train"].append(tuple(b["ids"]))
            return self.loss(b)

        def validation_step(self, b, i, dataloader_idx=0):
            self.seen["val"].append(dataloader_idx)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    model = Tiny(dm.tokenizer.vocab_size)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    first, second = model.seen["train"][:3], model.seen["train"][3:]
    assert len(second) == 3 and first != second  # set_epoch reached the sampler
    assert sorted(set(model.seen["val"])) == [0, 1]
