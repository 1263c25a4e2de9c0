"""Export: TorchScript and ONNX graphs agree with eager at unseen lengths; clear errors; model directory.

Tiny random-weight subnets (width 32) of the three decoder types, covering conformer/relpos,
transformer, LSTM and cnn blocks, streaming and full-context archs, and the learnable front-end.
"""

from __future__ import annotations

import json

import pytest
import torch

from supernet.data.tokenizer import CharTokenizer
from supernet.export import ExportConfig, ExportError, export_subnet
from supernet.graphs import build_graphs, example_inputs, io_names
from supernet.model import SpeechSupernet
from supernet.nn.config import NetConfig
from supernet.runtime import Recognizer, backend_runner, read_metadata
from supernet.space import Arch, LayerArch, SearchSpace
from supernet.subnet import extract

TOK = CharTokenizer(list(" abcdefgh"))
ATOL = 1e-4
SPACE = {
    "name": "export-test",
    "frontend": {"feature": ["logmel40", "learnable"], "subsampling": [4, 6]},
    "encoder": {"width": [32], "layers": 2, "min_depth": 1,
                "layer": {"block": ["conformer", "transformer", "lstm", "cnn"], "attention": ["mha", "relpos"],
                          "heads": [2], "ffn_ratio": [2], "kernel": [3, 5]}},
    "decoder": {"type": ["ctc", "rnnt", "attention"], "layers": [1], "width": [16]},
    "streaming": {"chunk": [0, 4], "lookahead": [0, 1]},
}


def _layer(block: str, attention: str = "mha") -> LayerArch:
    if block in ("conformer", "transformer"):
        return LayerArch(block, attention, 2, 2, 5 if block == "conformer" else None)
    return LayerArch(block, kernel=3) if block == "cnn" else LayerArch(block)


ARCHS = {
    # streaming conformer with relative positions and look-ahead, CTC
    "ctc": Arch("logmel40", 4, 32, (_layer("conformer", "relpos"), _layer("cnn")), "ctc", chunk=4, lookahead=1),
    # full-context LSTM + conformer encoder, RNN-T (LSTM predictor)
    "rnnt": Arch("logmel40", 6, 32, (_layer("lstm"), _layer("conformer")), "rnnt", 1, 16),
    # streaming transformer on the learnable front-end, attention decoder
    "attention": Arch("learnable", 4, 32, (_layer("transformer"), _layer("lstm")), "attention", 1, 16, chunk=4, lookahead=0),
}


@pytest.fixture(scope="module")
def supernet() -> SpeechSupernet:
    torch.manual_seed(0)
    space = SearchSpace.from_dict(SPACE)
    # causal_conv "chunk": the streaming ctc arch's conv and cnn units slice their kernels ("mask"'s
    # path) and add the future taps inside each chunk by position in the graph (TorchScript and ONNX
    # must both take that, at every length); "shift" is covered by tests/test_streaming.py.
    net = SpeechSupernet.from_space(space, TOK.vocab_size, NetConfig(dropout=0.0, subsampler_channels=16,
                                                                      learnable_filters=16, causal_conv="chunk")).eval()
    with torch.no_grad():  # non-trivial values everywhere (zero-initialised biases too)
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return net


@pytest.fixture(scope="module")
def exported(supernet, tmp_path_factory) -> dict[str, tuple]:
    """{decoder: (model, model_dir, metadata)} exported once per module."""
    out = {}
    for name, arch in ARCHS.items():
        model = extract(supernet, arch).eval()
        d = tmp_path_factory.mktemp(f"model-{name}") / "model"
        out[name] = (model, d, export_subnet(model, d, TOK))
    return out


def _audio(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = torch.tensor(lengths)
    audio = 0.1 * torch.randn(len(lengths), max(lengths), generator=g)
    return audio.masked_fill(torch.arange(max(lengths))[None] >= n[:, None], 0.0), n


@pytest.mark.parametrize("decoder", list(ARCHS))
def test_graphs_agree_with_eager_at_unseen_lengths(exported, decoder):
    model, d, meta = exported[decoder]
    example = meta["export"]["example_samples"]
    parity = meta["parity"]
    assert len(parity["batches"]) == 3 and all(b != example for b in parity["batches"])
    for runner in ("torchscript", "onnx"):
        worst = max(v for g in parity["max_abs_diff"][runner].values() for v in g.values())
        assert worst <= ATOL, (runner, parity["max_abs_diff"][runner])
    # independently of the export's own check: three new lengths, every graph, both runtimes
    graphs = build_graphs(model)
    runners = {b: backend_runner(d, meta, b) for b in ("onnx", "torchscript")}
    for i, lengths in enumerate(([5200], [11300, 3900], [30100, 17000, 8800])):
        assert lengths != example
        for name, g in graphs.items():
            inputs = example_inputs(model, name, lengths, generator=torch.Generator().manual_seed(10 + i), tokens=1 + i)
            with torch.no_grad():
                ref = g(*inputs)
            ref = list(ref) if isinstance(ref, tuple) else [ref]
            for b, run in runners.items():
                got = run(name, inputs)
                for out_name, a, c in zip(io_names(name, decoder)[1], ref, got):
                    assert a.shape == c.shape, (b, name, out_name)
                    assert (a.float() - c.float()).abs().max().item() <= ATOL, (b, name, out_name)


@pytest.mark.parametrize("decoder", list(ARCHS))
def test_transcripts_equal_eager_decode(exported, decoder):
    model, d, _ = exported[decoder]
    audio, lengths = _audio([15000, 7300, 22050], seed=3)
    with torch.no_grad():
        want = [TOK.decode(ids) for ids in model.transcribe(audio, lengths)]
    waves = [audio[i, : int(n)] for i, n in enumerate(lengths)]
    for backend in ("onnx", "torchscript"):
        assert Recognizer.load(d, backend).transcribe(waves) == want, backend
    assert Recognizer.from_model(model, TOK).transcribe(waves) == want
    assert any(want), "random weights should emit something, or the comparison is vacuous"


def test_conv2d_subsampler_exports_with_parity(tmp_path):
    """The 2-D subsampler (``NetConfig.subsampler: conv2d``) through TorchScript and ONNX: the
    export's own parity check at unseen lengths, and the transcripts of both runtimes."""
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(SearchSpace.from_dict(SPACE), TOK.vocab_size,
                                    NetConfig(dropout=0.0, subsampler="conv2d", subsampler_channels=8,
                                              subsampler_bins=24, learnable_filters=16)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    model = extract(net, ARCHS["ctc"]).eval()
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.encoder.subsampler.modules())
    meta = export_subnet(model, tmp_path / "model", TOK)
    for runner in ("torchscript", "onnx"):
        worst = max(v for g in meta["parity"]["max_abs_diff"][runner].values() for v in g.values())
        assert worst <= ATOL, (runner, meta["parity"]["max_abs_diff"][runner])
    audio, lengths = _audio([15000, 7300], seed=4)
    with torch.no_grad():
        want = [TOK.decode(ids) for ids in model.transcribe(audio, lengths)]
    waves = [audio[i, : int(n)] for i, n in enumerate(lengths)]
    for backend in ("onnx", "torchscript"):
        assert Recognizer.load(tmp_path / "model", backend).transcribe(waves) == want, backend


def test_model_directory_layout(exported):
    model, d, meta = exported["rnnt"]
    assert read_metadata(d) == json.loads(json.dumps(meta))
    assert sorted(meta["graphs"]) == ["encoder", "joiner", "predictor"]
    for name, g in meta["graphs"].items():
        assert (d / g["onnx"]["file"]).is_file() and (d / g["torchscript"]["file"]).is_file()
        assert g["onnx"]["exporter"] == "torchscript" and g["onnx"]["opset"] == 17
        assert g["dynamic_axes"]["enc_proj" if name == "joiner" else g["inputs"][0]]["0"] == "B"
    assert Arch.from_dict(meta["arch"]) == model.arch and meta["arch_id"] == model.arch.id
    assert CharTokenizer.from_dict(meta["tokenizer"]) == TOK and CharTokenizer.load(d / "tokenizer.json") == TOK
    assert meta["features"]["graph"] is None and meta["features"]["config"]["n_mels"] == 40
    assert meta["features"]["config"]["normalize"] == "none"
    assert {"torch", "onnxruntime", "onnx", "python"} <= set(meta["versions"])
    assert meta["decoder"]["type"] == "rnnt" and meta["decoder"]["max_symbols"] == model.head.max_symbols
    assert not any(p.name.endswith(".tmp") for p in d.parent.iterdir())
    # the learnable front-end is a graph of its own
    _, d2, meta2 = exported["attention"]
    assert meta2["features"]["graph"] == "features" and (d2 / "onnx/features.onnx").is_file()
    assert meta2["streaming"] == {"chunk": 4, "lookahead": 0, "subsampling": 4, "frame_ms": 40.0, "chunk_ms": 160.0,
                                  "lookahead_ms": 0.0}


def test_lstm_through_torch_export_fails_naming_op_and_target(supernet, tmp_path):
    arch = Arch("logmel40", 4, 32, (LayerArch("lstm"), LayerArch("skip")), "ctc")  # one LSTM layer: quick to trace
    model = extract(supernet, arch).eval()
    cfg = ExportConfig(formats=("onnx",), onnx_exporter="dynamo")
    with pytest.raises(ExportError) as err:
        export_subnet(model, tmp_path / "m", TOK, cfg)
    e = err.value
    assert e.target == "onnx (dynamo exporter, opset 17)" and e.graph == "encoder"
    assert e.op == "aten::lstm (nn.LSTM)"
    assert "onnx (dynamo exporter" in str(e) and "aten::lstm" in str(e) and "--onnx-exporter torchscript" in str(e)
    assert e.__cause__ is not None and "specializ" in str(e.__cause__)  # torch.export's own failure, not a guess
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_unsupported_operator_is_named(supernet, tmp_path, monkeypatch):
    from supernet import graphs

    original = graphs.CTCEncoderGraph.forward

    def forward(self, feats, feat_lengths):
        log_probs, lengths = original(self, feats, feat_lengths)
        return log_probs + torch.linalg.eigvals(log_probs[:, :2, :2]).real.sum(), lengths  # no ONNX symbolic

    monkeypatch.setattr(graphs.CTCEncoderGraph, "forward", forward)
    model = extract(supernet, ARCHS["ctc"]).eval()
    with pytest.raises(ExportError) as err:
        export_subnet(model, tmp_path / "m", TOK, ExportConfig(formats=("onnx",)))
    assert err.value.op == "aten::linalg_eigvals" and err.value.graph == "encoder"
    assert str(err.value).startswith("onnx (torchscript exporter, opset 17): graph 'encoder': operator aten::linalg_eigvals")
    assert not (tmp_path / "m").exists()


def test_cli_export_refuses_nonempty_dir_without_force(supernet, tmp_path, capsys):
    from supernet.cli import main
    from supernet.extraction import write_subnet

    model = extract(supernet, ARCHS["ctc"]).eval()
    sub = write_subnet(model, tmp_path / "subnet.pt", TOK)
    out = tmp_path / "model"
    assert main(["export", str(sub), "-o", str(out), "--formats", "onnx"]) == 0
    meta = read_metadata(out)
    assert set(meta["graphs"]["encoder"]) == {"inputs", "outputs", "dynamic_axes", "onnx"}
    assert meta["source"]["subnet"] == str(sub)
    capsys.readouterr()
    assert main(["export", str(sub), "-o", str(out)]) == 1
    assert "not empty; pass --force" in capsys.readouterr().err
    assert main(["export", str(sub), "-o", str(out), "--force"]) == 0
    assert "torchscript" in read_metadata(out)["graphs"]["encoder"]


def test_bad_export_settings():
    with pytest.raises(ValueError, match="formats"):
        ExportConfig(formats=("tflite",))
    with pytest.raises(ValueError, match="onnx_exporter"):
        ExportConfig(onnx_exporter="magic")
    with pytest.raises(ValueError, match="differ from example_seconds"):
        ExportConfig(example_seconds=1.0, parity_seconds=((1.0,),))
