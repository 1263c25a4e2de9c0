import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from supernet.data.audio import AudioError, load_audio, probe_audio
from supernet.data.manifest import (
    ManifestError,
    Utterance,
    check_manifest,
    import_kaldi,
    inspect_manifest,
    read_manifest,
    write_manifest,
)


def test_write_read_round_trip_relative_paths(tmp_path, write_wav_file):
    wav = write_wav_file(tmp_path / "corpus/wav/a.wav", seconds=0.5)
    utts = [Utterance("a", str(wav), 0.5, "drei eins", lang="de", speaker="s1"),
            Utterance("b", str(wav), 0.5, "one", lang="en")]
    m = write_manifest(tmp_path / "corpus/train.jsonl", utts)
    rows = [json.loads(x) for x in m.read_text().splitlines()]
    assert rows[0]["audio_filepath"] == "wav/a.wav"  # relative: the folder can move
    assert "speaker" not in rows[1]
    assert read_manifest(m) == [Utterance("a", str(wav.resolve()), 0.5, "drei eins", "de", "s1"),
                                Utterance("b", str(wav.resolve()), 0.5, "one", "en", None)]
    assert [p.name for p in m.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left
    moved = tmp_path / "moved"
    (tmp_path / "corpus").rename(moved)
    assert Path(read_manifest(moved / "train.jsonl")[0].audio_filepath) == moved / "wav/a.wav"


def test_read_manifest_defaults_and_errors(tmp_path):
    m = tmp_path / "set.jsonl"
    m.write_text('{"audio_filepath": "/x.wav", "duration": 1, "text": "a"}\n\n'
                 '{"audio_filepath": "/y.wav", "duration": 2.5, "text": "b", "offset": 0}\n')
    utts = read_manifest(m)
    assert [u.id for u in utts] == ["set-1", "set-3"]  # line-number ids, extra NeMo keys ignored
    assert utts[0].lang == "en" and utts[0].speaker is None
    m.write_text('{"audio_filepath": "/x.wav", "duration": 1, "text": "a"}\n'
                 '{"audio_filepath": "/x.wav", "text": "b"}\n')
    with pytest.raises(ManifestError, match=r"set\.jsonl:2: missing field 'duration'"):
        read_manifest(m)
    m.write_text('{"audio_filepath": "/x.wav", "duration": 1, "text": "a"\n')
    with pytest.raises(ManifestError, match=r"set\.jsonl:1: malformed JSON"):
        read_manifest(m)
    m.write_text('{"audio_filepath": "/x.wav", "duration": "1s", "text": "a"}\n')
    with pytest.raises(ManifestError, match=r"set\.jsonl:1: field 'duration' must be a number"):
        read_manifest(m)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")


def _wav_bytes(tmp_path, seconds=1.0):
    p = tmp_path / "full.wav"
    sf.write(str(p), np.zeros(int(16000 * seconds)), 16000, subtype="PCM_16")
    return p.read_bytes()


def test_probe_and_load_audio(tmp_path, write_wav_file):
    stereo = write_wav_file(tmp_path / "st.wav", seconds=0.25, sample_rate=8000, channels=2)
    x = load_audio(stereo, 16000)
    assert x.dtype == torch.float32 and x.shape == (4000,)
    with pytest.raises(AudioError, match="2 channels"):
        load_audio(stereo, 16000, mono="error")
    data = _wav_bytes(tmp_path)
    (tmp_path / "trunc.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"trunc\.wav: truncated audio: the header declares 16000 frames"):
        probe_audio(tmp_path / "trunc.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio" * 20)
    with pytest.raises(AudioError, match=r"junk\.wav: unreadable audio"):
        load_audio(tmp_path / "junk.wav", 16000)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav", 16000)


def test_check_manifest_finds_every_problem(bad_manifest):
    m, expected, _ = bad_manifest
    problems = check_manifest(m, sample_rate=16000)
    assert {p.line: p.reason for p in problems}.keys() == expected.keys()
    for p in problems:
        assert expected[p.line] in p.reason
        assert str(p).startswith(f"{m}:{p.line}: {p.file}: ")
    by_line = {p.line: p for p in problems}
    assert by_line[2].file.endswith("missing.wav") and by_line[11].file == "-"
    report = inspect_manifest(m)
    notes = {n.line: n.reason for n in report.notes}
    assert "will be mixed down to mono" in notes[6]
    assert "sample rate 8000 Hz: will be resampled to 16000 Hz" in notes[7]
    assert [ln for ln, _ in report.entries] == [1, 6, 7, 10]


def test_check_manifest_mono_error_and_vocab(bad_manifest):
    m, expected, _ = bad_manifest
    problems = {p.line: p.reason for p in check_manifest(m, mono="error", vocab=set("one tw"))}
    assert "has 2 channels; mono='error' refuses multi-channel audio" in problems[6]
    assert 6 not in expected and 7 not in problems
    assert "characters not in the vocabulary (after normalisation): 'g' (U+0067)" in problems[10]
    assert "'ü' (U+00FC)" in problems[10] and "'ß' (U+00DF)" in problems[10]


def test_import_kaldi(tmp_path, write_wav_file, monkeypatch):
    d = tmp_path / "data/train"
    d.mkdir(parents=True)
    a = write_wav_file(tmp_path / "audio/a.wav", seconds=0.5)
    write_wav_file(tmp_path / "audio/b.wav", seconds=0.25, sample_rate=8000)
    (d / "wav.scp").write_text(f"utt_a {a}\nutt_b audio/b.wav\n")  # relative: from the recipe dir
    (d / "text").write_text("utt_a DREI eins\nutt_b one two\n")
    (d / "utt2spk").write_text("utt_a spk1\nutt_b spk2\n")
    (d / "utt2lang").write_text("utt_a de\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "m/train.jsonl"
    utts = import_kaldi(d, out)
    assert [(u.id, u.duration, u.text, u.lang, u.speaker) for u in utts] == [
        ("utt_a", 0.5, "DREI eins", "de", "spk1"), ("utt_b", 0.25, "one two", "en", "spk2")]
    assert read_manifest(out) == utts and check_manifest(out) == []

    (d / "wav.scp").write_text(f"utt_a {a}\nutt_b sox audio/b.wav -t wav - |\n")
    with pytest.raises(ManifestError, match=r"wav\.scp:2: utterance 'utt_b' is a piped command"):
        import_kaldi(d, tmp_path / "m/other.jsonl")
    (d / "wav.scp").write_text(f"utt_a {a}\nutt_b foo.ark:1234\n")
    with pytest.raises(ManifestError, match="points into an archive"):
        import_kaldi(d, tmp_path / "m/other.jsonl")
    (d / "wav.scp").write_text(f"utt_a {a}\nutt_c {a}\n")
    with pytest.raises(ManifestError) as e:
        import_kaldi(d, tmp_path / "m/other.jsonl")
    assert "'utt_b' has a transcript but no wav.scp entry" in str(e.value)
    assert "'utt_c' has no transcript" in str(e.value)
    (d / "segments").write_text("seg1 utt_a 0.0 0.2\n")
    with pytest.raises(ManifestError, match="segment files are not supported"):
        import_kaldi(d, tmp_path / "m/other.jsonl")
    assert not (tmp_path / "m/other.jsonl").exists()  # nothing written on error


def test_check_manifest_with_a_word_vocabulary(bad_manifest):
    from supernet.data.tokenizer import WordTokenizer

    m, _, _ = bad_manifest
    problems = {p.line: p.reason for p in check_manifest(m, vocab=WordTokenizer(["one", "two"]))}
    assert "words not in the vocabulary (after normalisation): 'grüße'" in problems[10]
    assert 1 not in problems  # "one two" fits
