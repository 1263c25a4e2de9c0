"""bench/streaming.py: ``--eval-set`` decides which utterances are streamed and scored."""

from __future__ import annotations

import pytest


@pytest.fixture
def reuse_run(tmp_path, tiny_data_config, load_bench):
    """(bench module, a ``--reuse`` folder with the benchmark's two archs untrained, a data config
    file of the tiny FSDD corpus, its data module)."""
    import yaml

    from supernet.config import to_dict
    from supernet.data.datamodule import SpeechDataModule
    from supernet.extraction import write_subnet
    from supernet.subnet import SubnetModel

    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(to_dict(tiny_data_config)), encoding="utf-8")
    dm = SpeechDataModule(tiny_data_config, progress=False)
    dm.prepare_data()
    dm.setup(None)
    bench, run_dir = load_bench("streaming"), tmp_path / "run"
    for key, arch in (("streaming", bench.mobile_arch()), ("full_context", bench.mobile_arch(0, None))):
        model = SubnetModel(arch, dm.tokenizer.vocab_size, bench.net_config()).eval()
        write_subnet(model, run_dir / f"{key}.pt", dm.tokenizer, data={})
    return bench, run_dir, data_yaml, dm


@pytest.mark.parametrize("eval_set", ["dev", "test"])
def test_eval_set_picks_the_scored_utterances(reuse_run, monkeypatch, eval_set):
    """Scored: the first --dev-utts utterances of the chosen set, named in the result."""
    import supernet.streaming

    bench, run_dir, data_yaml, dm = reuse_run

    scored, results = [], []
    real = supernet.streaming.evaluate_streaming

    def spy(rec, utts, **kw):
        utts = list(utts)
        scored.extend(text for _, text in utts)
        return real(rec, utts, **kw)

    monkeypatch.setattr(supernet.streaming, "evaluate_streaming", spy)
    monkeypatch.setattr(bench, "write_result", lambda name, payload, **kw: results.append(payload) or run_dir / "r.json")
    assert bench.main(["--reuse", str(run_dir), "--data", str(data_yaml), "--eval-set", eval_set, "--dev-utts", "3",
                       "--no-progress", "--name", "t"]) == 0

    sets = dm.test_sets if eval_set == "test" else dm.dev_sets
    name, ds = next(iter(sets.items()))
    assert scored == [ds[i]["text"] for i in range(3)]
    (payload,) = results
    assert payload["dev_set"] == name and payload["dev_utterances"] == 3
    assert payload["training"]["mode"] == "reused"
    other = dm.dev_sets if eval_set == "test" else dm.test_sets
    assert scored != [next(iter(other.values()))[i]["text"] for i in range(3)]  # the two sets differ here
    errors = payload["errors"]
    assert set(errors) == {"streaming", "full_context"}
    e = errors["streaming"]
    assert e["words"] == sum(len(t.split()) for t in scored)
    assert (e["substitutions"] + e["deletions"] + e["insertions"]) / e["words"] == pytest.approx(payload["streaming"]["wer"])
    assert sum(e["deleted_at"].values()) == e["deletions"]


def test_error_breakdown_places_deletions(load_bench):
    bench = load_bench("streaming")
    refs = ["one two three", "four five six", "seven eight nine", "zero", "one two"]
    hyps = ["one two", "five six", "seven nine", "", "one too two"]
    e = bench.error_breakdown(hyps, refs)
    assert e == {"words": 12, "substitutions": 0, "deletions": 4, "insertions": 1,
                 "deleted_at": {"first": 2, "inner": 1, "last": 1}, "top_substitutions": []}
    e = bench.error_breakdown(["one to", "six seven", "five seven"], ["one two", "six six", "five six"])
    assert e["substitutions"] == 3 and e["top_substitutions"] == [["six", "seven", 2], ["two", "to", 1]]


def test_speaker_fold_moves_one_speaker_to_test(load_bench, tmp_path):
    """--test-speaker: that speaker alone is unseen; everyone else (old test speakers too) trains."""
    from supernet.data.datamodule import DataConfig

    bench = load_bench("streaming")
    data = DataConfig(corpus="fsdd")
    fold = bench.speaker_fold(data, "george", tmp_path / "fsdd.yaml")
    assert fold.fsdd.test_speakers == ("george",)
    assert fold.fsdd.train_speakers == ("jackson", "nicolas", "theo", "yweweler")
    assert fold.fsdd.num_test == data.fsdd.num_test and fold.fsdd.seed == data.fsdd.seed
    with pytest.raises(SystemExit, match="--test-speaker lucas: not a speaker of .*fsdd.yaml .*george, jackson"):
        bench.speaker_fold(data, "lucas", tmp_path / "fsdd.yaml")
    with pytest.raises(SystemExit, match="speaker folds need corpus: fsdd"):
        bench.speaker_fold(DataConfig(corpus="espeak"), "george", tmp_path / "espeak.yaml")


def test_train_chunks_are_parsed_and_checked(load_bench):
    """``--train-chunks``: sorted unique chunks that hold the streaming arch's and exceed its look-ahead."""
    bench = load_bench("streaming")
    arch = bench.mobile_arch(lookahead=2)
    assert bench.parse_train_chunks(None, arch) == [4]
    assert bench.parse_train_chunks("16,4,8,4", arch) == [4, 8, 16]
    for bad in ("8,16", "2,4", "4,x"):
        with pytest.raises(SystemExit, match="--train-chunks"):
            bench.parse_train_chunks(bad, arch)
    with pytest.raises(SystemExit):  # argparse: --train-chunks without --dynamic-chunk
        bench.main(["--train-chunks", "4,8"])


def test_tokenizer_option_sets_the_output_units(reuse_run, monkeypatch):
    """``--tokenizer word`` replaces the data file's units: a model trained with characters is
    refused by the reuse check (its tokenizer differs), and the result names the units."""
    bench, run_dir, data_yaml, dm = reuse_run
    results = []
    monkeypatch.setattr(bench, "write_result", lambda name, payload, **kw: results.append((payload, kw)) or run_dir / "r.json")
    args = ["--reuse", str(run_dir), "--data", str(data_yaml), "--dev-utts", "2", "--no-progress", "--name", "t"]
    assert bench.main(args) == 0
    (payload, kw), = results
    assert payload["tokenizer"] == dm.tokenizer.kind == "char" and kw["config"]["tokenizer"] == "char"
    with pytest.raises(SystemExit, match="char units there, word here"):
        bench.main([*args, "--tokenizer", "word"])
    with pytest.raises(SystemExit):
        bench.main([*args, "--tokenizer", "phone"])


def test_subsampler_options_build_and_check_the_net(reuse_run, monkeypatch, tmp_path, capsys):
    """``--subsampler conv2d --subsampler-channels 32`` builds the archs with that subsampler; a reused
    run must have been built with the options given (the result records them); bad values are refused."""
    from supernet.extraction import write_subnet
    from supernet.subnet import SubnetModel

    bench, run_dir, data_yaml, dm = reuse_run
    net = bench.net_config(subsampler="conv2d", subsampler_channels=32)
    assert (net.subsampler, net.subsampler_channels) == ("conv2d", 32)
    assert bench.net_config().subsampler == "conv1d"  # the default every earlier row measured
    results = []
    monkeypatch.setattr(bench, "write_result", lambda name, payload, **kw: results.append((payload, kw)) or run_dir / "r.json")
    args = ["--data", str(data_yaml), "--dev-utts", "2", "--no-progress", "--name", "t"]
    with pytest.raises(SystemExit, match=r"built with another net .*subsampler: 'conv1d' there, 'conv2d' here"):
        bench.main(["--reuse", str(run_dir), *args, "--subsampler", "conv2d", "--subsampler-channels", "32"])
    conv2d_dir = tmp_path / "conv2d"
    for key, arch in (("streaming", bench.mobile_arch()), ("full_context", bench.mobile_arch(0, None))):
        write_subnet(SubnetModel(arch, dm.tokenizer.vocab_size, net).eval(), conv2d_dir / f"{key}.pt", dm.tokenizer, data={})
    assert bench.main(["--reuse", str(conv2d_dir), *args, "--subsampler", "conv2d", "--subsampler-channels", "32"]) == 0
    (payload, kw), = results
    assert payload["net"]["subsampler"] == "conv2d" and payload["net"]["subsampler_channels"] == 32
    assert kw["config"]["subsampler"] == "conv2d" and kw["config"]["subsampler_channels"] == 32
    for bad, says in ((["--subsampler", "conv3d"], "invalid choice: 'conv3d'"),
                      (["--subsampler-channels", "0"], "--subsampler-channels 0: must be a positive number")):
        with pytest.raises(SystemExit) as exit_:  # refused by the argument checks, before any data or training
            bench.main([*args, *bad])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
