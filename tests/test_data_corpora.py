"""Corpus builders: determinism, caching, content; the FSDD download helper."""

import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

from supernet.data.corpus import CorpusError
from supernet.data.fsdd import DIGIT_WORDS, FSDDConfig, build_fsdd_corpus, download_fsdd
from supernet.data.manifest import check_manifest, read_manifest


def corpus_bytes(manifests: dict[str, Path]) -> dict[str, bytes]:
    """Every manifest and every WAV it references, by relative name."""
    out = {}
    for name, m in sorted(manifests.items()):
        out[name] = m.read_bytes()
        for u in read_manifest(m):
            out[Path(u.audio_filepath).relative_to(m.parent).as_posix()] = Path(u.audio_filepath).read_bytes()
    return out


def test_fsdd_deterministic_and_cached(tiny_fsdd_config, tiny_corpus, tmp_path):
    cfg = dataclasses.replace(tiny_fsdd_config, num_train=8, num_dev=3, num_test=3)
    a = build_fsdd_corpus(cfg, tmp_path / "a", progress=False)
    b = build_fsdd_corpus(cfg, tmp_path / "b", progress=False)
    assert set(a) == {"train", "dev", "test"}
    assert corpus_bytes(a) == corpus_bytes(b)
    c = build_fsdd_corpus(dataclasses.replace(cfg, seed=1), tmp_path / "c", progress=False)
    assert corpus_bytes(c)["train"] != corpus_bytes(a)["train"]
    # Cached: the same config returns the existing build without writing anything.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*")}
    assert build_fsdd_corpus(cfg, tmp_path / "a", progress=False) == a
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*")} == before
    # Another config into an occupied folder is refused, not mixed in.
    with pytest.raises(CorpusError, match="already holds a different corpus build"):
        build_fsdd_corpus(dataclasses.replace(cfg, seed=2), tmp_path / "a", progress=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging leftovers
    prov = json.loads((tmp_path / "a/provenance.json").read_text())
    assert prov["config"]["seed"] == 0 and "torch" in prov["versions"]


def test_relative_out_dir(tiny_fsdd_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = dataclasses.replace(tiny_fsdd_config, num_train=2, num_dev=1, num_test=1)
    m = build_fsdd_corpus(cfg, "cache/corpora/x", progress=False)
    assert all(check_manifest(p) == [] for p in m.values())
    assert '"audio_filepath": "wav/train/' in m["train"].read_text()


def test_fsdd_content(tiny_fsdd_config, tiny_corpus):
    cfg = tiny_fsdd_config
    splits = {k: read_manifest(v) for k, v in tiny_corpus.items()}
    assert [len(splits[k]) for k in ("train", "dev", "test")] == [cfg.num_train, cfg.num_dev, cfg.num_test]
    for split, utts in splits.items():
        assert check_manifest(tiny_corpus[split]) == []
        speakers = cfg.test_speakers if split == "test" else cfg.train_speakers
        assert {u.speaker for u in utts} <= set(speakers)
        for u in utts:
            words = u.text.split()
            assert cfg.min_digits <= len(words) <= cfg.max_digits and set(words) <= set(DIGIT_WORDS)
            info = sf.info(u.audio_filepath)
            assert info.samplerate == 16000 and info.channels == 1
            assert abs(info.duration - u.duration) < 1e-3
    # a digit lasts ~0.4 s; with gaps every utterance is longer than 0.3 s per digit
    assert all(u.duration > 0.3 * len(u.text.split()) for u in splits["train"])


def test_fsdd_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no FSDD recordings found.*download-fsdd"):
        build_fsdd_corpus(FSDDConfig(fsdd_dir=str(tmp_path)), tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="speaker-independent"):
        FSDDConfig(train_speakers=("theo",), test_speakers=("theo",))


def test_espeak_deterministic(tiny_espeak_config, tiny_espeak_corpus, tmp_path):
    from supernet.data.espeak import DIGITS, PHRASES, build_espeak_corpus

    cfg = dataclasses.replace(tiny_espeak_config, num_train=3, num_dev=1, num_test=1, workers=1)
    a = build_espeak_corpus(cfg, tmp_path / "a", progress=False)
    b = build_espeak_corpus(dataclasses.replace(cfg, workers=2), tmp_path / "b", progress=False)
    assert corpus_bytes(a) == corpus_bytes(b)  # thread count does not change the output
    c = build_espeak_corpus(dataclasses.replace(cfg, seed=1), tmp_path / "c", progress=False)
    assert corpus_bytes(c)["train"] != corpus_bytes(a)["train"]
    assert set(tiny_espeak_corpus) == {"train", "dev", "test", "dev.en", "dev.de", "test.en", "test.de"}
    for name, m in tiny_espeak_corpus.items():
        assert check_manifest(m) == []
        for u in read_manifest(m):
            if "." in name:
                assert u.lang == name.split(".")[1]
            allowed = set(" ".join(DIGITS[u.lang]).split()) | {w for p in PHRASES[u.lang] for w in p.split()}
            assert set(u.text.split()) <= allowed
            variant = u.speaker.split("+")[1]
            held_out = tiny_espeak_config.test_variants
            assert (variant in held_out) == name.startswith("test")
    train = read_manifest(tiny_espeak_corpus["train"])
    assert {u.lang for u in train} == {"en", "de"} and len(train) == 12


def _fake_fsdd_archive(tmp_path: Path, write_wav_file, kind: str) -> tuple[Path, dict[str, bytes]]:
    wavs = {n: write_wav_file(tmp_path / "src" / n, seconds=0.1, sample_rate=8000, seed=i).read_bytes()
            for i, n in enumerate(["0_alice_0.wav", "7_bob_12.wav"])}
    root = "free-spoken-digit-dataset-1.0.9"
    extra = {f"{root}/README.md": b"readme", f"{root}/utils/x.py": b"print()", "../evil/recordings/1_x_0.wav": b"x"}
    if kind == "zip":
        path = tmp_path / "fsdd.zip"
        with zipfile.ZipFile(path, "w") as z:
            for n, data in wavs.items():
                z.writestr(f"{root}/recordings/{n}", data)
            for n, data in extra.items():
                z.writestr(n, data)
    else:
        path = tmp_path / "fsdd.tar.gz"
        with tarfile.open(path, "w:gz") as t:
            for n, data in [*((f"{root}/recordings/{k}", v) for k, v in wavs.items()), *extra.items()]:
                info = tarfile.TarInfo(n)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path, wavs


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_download_fsdd_local_archive(tmp_path, write_wav_file, kind):
    archive, wavs = _fake_fsdd_archive(tmp_path, write_wav_file, kind)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    with pytest.raises(CorpusError, match=f"SHA-256 mismatch: expected {'f' * 64}, got {sha}"):
        download_fsdd(dest, url=archive.as_uri(), sha256="f" * 64, progress=False)
    assert not dest.exists()  # nothing left behind
    dest.mkdir()
    with pytest.raises(CorpusError):
        download_fsdd(dest, url=archive.as_uri(), sha256="f" * 64, progress=False)
    assert list(dest.iterdir()) == []  # a folder the user made stays, empty
    assert download_fsdd(dest, url=archive.as_uri(), sha256=sha, progress=False) == dest
    got = {p.name: p.read_bytes() for p in (dest / "recordings").iterdir()}
    assert got == wavs  # only recordings/*.wav, flat; nothing else and nothing outside dest
    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["SOURCE.txt", "recordings"]
    with pytest.raises(CorpusError, match="cannot download"):
        download_fsdd(tmp_path / "d2", url=(tmp_path / "missing.zip").as_uri(), progress=False)
    assert not (tmp_path / "d2").exists()
