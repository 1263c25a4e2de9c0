"""`supernet transcribe`: path<TAB>text per file with ONNX Runtime, resampling, bad files, streaming."""

from __future__ import annotations

import pytest
import torch

from supernet.cli import main
from supernet.data.audio import load_audio
from supernet.data.tokenizer import CharTokenizer
from supernet.export import ExportConfig, export_subnet
from supernet.model import SpeechSupernet
from supernet.nn.config import NetConfig
from supernet.runtime import Recognizer
from supernet.space import Arch, LayerArch, SearchSpace
from supernet.subnet import extract

TOK = CharTokenizer(list(" abcdefgh"))
SPACE = {
    "name": "transcribe-test",
    "frontend": {"feature": ["logmel40"], "subsampling": [4]},
    "encoder": {"width": [32], "layers": 1, "min_depth": 1,
                "layer": {"block": ["conformer"], "attention": ["mha"], "heads": [2], "ffn_ratio": [2], "kernel": [5]}},
    "decoder": {"type": ["ctc"]},
    "streaming": {"chunk": [0, 4], "lookahead": [0, 1]},
}
LAYER = (LayerArch("conformer", "mha", 2, 2, 5),)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """{"stream" | "full": (model, model_dir)}: random-weight CTC models exported to ONNX."""
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(SearchSpace.from_dict(SPACE), TOK.vocab_size,
                                    NetConfig(dropout=0.0, subsampler_channels=16)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    out = {}
    for name, arch in (("stream", Arch("logmel40", 4, 32, LAYER, chunk=4, lookahead=1)), ("full", Arch("logmel40", 4, 32, LAYER))):
        model = extract(net, arch).eval()
        d = tmp_path_factory.mktemp(name) / "model"
        export_subnet(model, d, TOK, ExportConfig(formats=("onnx",)))
        out[name] = (model, d)
    return out


@pytest.fixture
def files(fsdd_dir, tmp_path) -> list[str]:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not a wav at all" * 4)
    rec = fsdd_dir / "recordings"
    return [str(rec / "3_theo_0.wav"), str(junk), str(rec / "7_george_12.wav")]


def _lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def test_prints_path_tab_text_and_names_unreadable_file(models, files, capsys):
    model, d = models["full"]
    assert main(["transcribe", str(d), *files]) == 1
    cap = capsys.readouterr()
    good = [files[0], files[2]]
    rows = _lines(cap.out)
    assert [r[0] for r in rows] == good and all(len(r) == 2 for r in rows)
    assert f"error: {files[1]}: unreadable audio" in cap.err and "1 of 3 file(s)" in cap.err
    # 8 kHz recordings resampled to 16 kHz; the same text as the eager model on the same audio
    for path, (_, text) in zip(good, rows):
        wave = load_audio(path, 16000)
        with torch.no_grad():
            want = TOK.decode(model.transcribe(wave[None], torch.tensor([wave.numel()]))[0])
        assert text == want
    assert any(r[1] for r in rows), "random weights should emit something, or the comparison is vacuous"


def test_all_readable_exits_zero(models, files, capsys):
    assert main(["transcribe", str(models["full"][1]), files[0], "--backend", "onnx", "--threads", "1"]) == 0
    assert len(_lines(capsys.readouterr().out)) == 1


def test_stream_prints_partials_and_the_same_final_text(models, files, capsys):
    d = models["stream"][1]
    good = [files[0], files[2]]
    assert main(["transcribe", str(d), *good]) == 0
    whole = capsys.readouterr().out
    assert main(["transcribe", str(d), *good, "--stream", "--chunk-ms", "120"]) == 0
    cap = capsys.readouterr()
    assert cap.out == whole  # chunk-by-chunk decoding ends where whole-utterance decoding does
    partial = [r for r in _lines(cap.err) if len(r) == 4]
    assert len(partial) > 4 and all(r[0] in good and r[2].endswith(" ms") for r in partial)
    assert sum("RTF" in line for line in cap.err.splitlines()) == 2
    rec = Recognizer.load(d)
    assert [r[1] for r in _lines(cap.out)] == rec.transcribe([load_audio(f, 16000) for f in good])


def test_usage_errors(models, files, capsys, tmp_path):
    assert main(["transcribe", str(models["full"][1]), files[0], "--stream"]) == 1
    assert "full-context" in capsys.readouterr().err
    assert main(["transcribe", str(models["stream"][1]), files[0], "--chunk-ms", "100"]) == 2
    assert "--chunk-ms needs --stream" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path), files[0]]) == 1
    assert "no metadata.json" in capsys.readouterr().err


def test_word_tokenizer_travels_with_the_export(models, files, tmp_path, capsys):
    """A word-unit model: the metadata keeps its kind, and the printed text is vocabulary words."""
    from supernet.data.tokenizer import WordTokenizer

    words = WordTokenizer("zero one two three four five six seven eight".split())
    assert words.vocab_size == TOK.vocab_size  # the same random-weight head serves both
    model, _ = models["full"]
    d = tmp_path / "words"
    export_subnet(model, d, words, ExportConfig(formats=("onnx",)))
    assert Recognizer.load(d).tokenizer == words
    assert main(["transcribe", str(d), files[0], files[2]]) == 0
    rows = _lines(capsys.readouterr().out)
    for path, (_, text) in zip((files[0], files[2]), rows):
        wave = load_audio(path, 16000)
        with torch.no_grad():
            assert text == words.decode(model.transcribe(wave[None], torch.tensor([wave.numel()]))[0])
        assert set(text.split()) <= words.vocab
    assert any(text for _, text in rows)
