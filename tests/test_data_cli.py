"""`supernet data ...` through supernet.cli.main."""

import hashlib
import json
import zipfile

import pytest

import supernet.cli
from supernet.data.tokenizer import CharTokenizer, WordTokenizer


@pytest.fixture
def main(monkeypatch):
    # Only the data commands: these tests must not depend on other stages importing cleanly.
    monkeypatch.setattr(supernet.cli, "COMMAND_MODULES", ["supernet.data.cli"])
    return supernet.cli.main


def test_check_prints_one_line_per_bad_entry(main, bad_manifest, capsys):
    m, expected, _ = bad_manifest
    assert main(["data", "check", str(m), "-q"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == len(expected)
    for line, (ln, reason) in zip(lines, sorted(expected.items())):
        assert line.startswith(f"{m}:{ln}: ") and reason in line
    assert "note: 1 entry: has 2 channels: will be mixed down to mono" in err
    assert "note: 1 entry: sample rate 8000 Hz: will be resampled to 16000 Hz" in err
    assert f"{m}: 4 of 12 entries usable" in err


def test_check_mono_error_and_vocab(main, bad_manifest, tmp_path, capsys):
    m, expected, _ = bad_manifest
    CharTokenizer.build(["one two"]).save(tmp_path / "tok.json")
    assert main(["data", "check", str(m), "-q", "--mono", "error", "--vocab", str(tmp_path / "tok.json")]) == 1
    out = {int(x.split(":")[1]): x for x in capsys.readouterr().out.splitlines()}
    assert set(out) == set(expected) | {6, 10}
    assert "mono='error' refuses multi-channel audio" in out[6]
    assert "characters not in the vocabulary" in out[10] and "'ü'" in out[10]
    # A word tokenizer file: the unknown word is named.
    WordTokenizer(["one", "two"]).save(tmp_path / "words.json")
    assert main(["data", "check", str(m), "-q", "--vocab", str(tmp_path / "words.json")]) == 1
    out = {int(x.split(":")[1]): x for x in capsys.readouterr().out.splitlines()}
    assert "words not in the vocabulary (after normalisation): 'grüße'" in out[10]


def test_check_good_manifest_exits_0(main, bad_manifest, tmp_path, capsys):
    m, _, good = bad_manifest
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({"audio_filepath": str(good), "duration": 0.5, "text": "one"}) + "\n")
    assert main(["data", "check", str(ok), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["data", "check", str(tmp_path / "missing.jsonl"), "-q"]) == 1
    assert "manifest not found" in capsys.readouterr().err


def test_build_fsdd_via_cli(main, tiny_fsdd_config, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        f"corpus: fsdd\nfsdd:\n  fsdd_dir: {tiny_fsdd_config.fsdd_dir}\n  num_train: 4\n  num_dev: 2\n  num_test: 2\n"
    )
    assert main(["data", "build", "-c", str(cfg), "--out", str(tmp_path / "c"), "-q"]) == 0
    assert f"train: {tmp_path / 'c' / 'train.jsonl'}" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "c" / "test.jsonl"), "-q"]) == 0
    cfg.write_text("corpus: fsdd\nfsdd:\n  num_trian: 4\n")
    assert main(["data", "build", "-c", str(cfg), "-q"]) == 1
    assert "num_trian" in capsys.readouterr().err


def test_import_kaldi_via_cli(main, tmp_path, write_wav_file, capsys):
    d = tmp_path / "kaldi"
    d.mkdir()
    a = write_wav_file(tmp_path / "a.wav")
    (d / "wav.scp").write_text(f"u1 {a}\n")
    (d / "text").write_text("u1 hello\n")
    assert main(["data", "import-kaldi", str(d), str(tmp_path / "m.jsonl")]) == 0
    assert "1 utterances" in capsys.readouterr().out
    (d / "wav.scp").write_text("u1 gunzip -c a.wav.gz |\n")
    assert main(["data", "import-kaldi", str(d), str(tmp_path / "m2.jsonl")]) == 1
    assert "piped command" in capsys.readouterr().err


def test_download_fsdd_via_cli(main, tmp_path, write_wav_file, capsys):
    wav = write_wav_file(tmp_path / "3_alice_0.wav")
    archive = tmp_path / "fsdd.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(wav, "free-spoken-digit-dataset-1.0.9/recordings/3_alice_0.wav")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "fsdd"
    assert main(["data", "download-fsdd", str(dest), "--url", archive.as_uri(), "--sha256", "0" * 64, "-q"]) == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err and not dest.exists()
    assert main(["data", "download-fsdd", str(dest), "--url", archive.as_uri(), "--sha256", sha, "-q"]) == 0
    assert (dest / "recordings/3_alice_0.wav").read_bytes() == wav.read_bytes()
