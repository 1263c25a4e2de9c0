"""Streaming: chunk-by-chunk outputs equal one full-utterance forward with the same masks.

Random-weight tiny subnets of each decoder type; the eager backend (the same host code the ONNX
backend uses) keeps most tests fast, one test runs the exported ONNX model.
"""

from __future__ import annotations

import pytest
import torch

from supernet.data.tokenizer import CharTokenizer
from supernet.model import SpeechSupernet
from supernet.nn.config import NetConfig
from supernet.runtime import Recognizer
from supernet.space import Arch, LayerArch, SearchSpace
from supernet.streaming import StreamingSession, evaluate_streaming, final_frames, stream
from supernet.subnet import extract

TOK = CharTokenizer(list(" abcdefgh"))
SPACE = {
    "name": "stream-test",
    "frontend": {"feature": ["logmel40", "learnable"], "subsampling": [4, 6]},
    "encoder": {"width": [32], "layers": 2, "min_depth": 1,
                "layer": {"block": ["conformer", "transformer", "lstm", "cnn"], "attention": ["mha", "relpos", "linear"],
                          "heads": [2], "ffn_ratio": [2], "kernel": [3, 5]}},
    "decoder": {"type": ["ctc", "rnnt", "attention"], "layers": [1], "width": [16]},
    "streaming": {"chunk": [0, 2, 4], "lookahead": [0, 1, 2]},
}
CONF = LayerArch("conformer", "relpos", 2, 2, 5)
ARCHS = {
    "ctc": Arch("logmel40", 4, 32, (CONF, LayerArch("cnn", kernel=3)), "ctc", chunk=4, lookahead=2),
    "rnnt": Arch("logmel40", 6, 32, (LayerArch("lstm"), LayerArch("transformer", "linear", 2, 2)), "rnnt", 1, 16,
                 chunk=2, lookahead=1),
    "attention": Arch("learnable", 4, 32, (CONF, LayerArch("lstm")), "attention", 1, 16, chunk=4, lookahead=0),
}


@pytest.fixture(scope="module")
def supernet() -> SpeechSupernet:
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(SearchSpace.from_dict(SPACE), TOK.vocab_size,
                                    NetConfig(dropout=0.0, subsampler_channels=16, learnable_filters=16)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return net


def _wave(n: int, seed: int) -> torch.Tensor:
    return 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


def test_final_frames():
    geo = dict(chunk=4, lookahead=2, subsampling=4, hop_length=160, win_length=400)
    assert final_frames(199, **geo) == 0
    # frame t is final once samples reach (t + lookahead) * 4 * 160 + 200; chunk 0 = frames 0..3
    assert final_frames((3 + 2) * 640 + 200 - 1, **geo) == 0
    assert final_frames((3 + 2) * 640 + 200, **geo) == 4
    assert final_frames((7 + 2) * 640 + 200, **geo) == 8
    values = [final_frames(s, **geo) for s in range(0, 40000, 97)]
    assert values == sorted(values) and all(v % 4 == 0 for v in values)
    with pytest.raises(ValueError, match="full-context"):
        final_frames(1000, **{**geo, "chunk": 0})


@pytest.mark.parametrize("decoder", list(ARCHS))
@pytest.mark.parametrize("chunk_ms", [70, 160, 330])
def test_chunkwise_outputs_equal_full_forward(supernet, decoder, chunk_ms):
    model = extract(supernet, ARCHS[decoder]).eval()
    rec = Recognizer.from_model(model, TOK)
    wave = _wave(26011, seed=chunk_ms)
    session = StreamingSession(rec, record=True)
    step = int(chunk_ms * 16)
    partial_frames = []
    for i in range(0, wave.numel(), step):
        partial_frames.append(session.accept(wave[i: i + step]).frames)
    session.finish()
    assert all(f % model.arch.chunk == 0 for f in partial_frames) and partial_frames == sorted(partial_frames)
    assert 0 < partial_frames[-1]  # frames were emitted before the end of the utterance
    # the same model, one forward over the whole utterance, same (chunk) masks
    with torch.no_grad():
        enc, enc_lengths = model(wave[None], torch.tensor([wave.numel()]))
        full = rec.encode(*rec.features(wave[None], torch.tensor([wave.numel()])))
    got = session.emitted_outputs()
    assert session.emitted == int(enc_lengths[0])
    for name, value in got.items():
        assert value.shape == full[name].shape, name
        assert (value - full[name]).abs().max().item() <= 1e-5, name
    if decoder == "attention":
        assert (got["enc"] - enc).abs().max().item() <= 1e-5
    with torch.no_grad():
        want = TOK.decode(model.transcribe(wave[None], torch.tensor([wave.numel()]))[0])
    assert session.text == want == rec.transcribe([wave])[0]
    if decoder != "attention":  # frame-synchronous search: partial results only grow
        texts = [p.text for p in session.partials]
        assert all(want.startswith(t) for t in texts)


@pytest.mark.parametrize("option", [{"causal_conv": "mask"}, {"causal_conv": "chunk"}, {"subsampler": "conv2d"}],
                         ids=["mask", "chunk", "conv2d"])
def test_other_causal_convolutions_stream_exactly(option):
    """``causal_conv: mask`` (past taps of the centred kernel), ``chunk`` (future taps up to the
    chunk's end) and the 2-D subsampler (``subsampler: conv2d``, causal in time): chunk by chunk
    equals the full forward."""
    torch.manual_seed(0)
    net = SpeechSupernet.from_space(SearchSpace.from_dict(SPACE), TOK.vocab_size,
                                    NetConfig(dropout=0.0, subsampler_channels=16, learnable_filters=16,
                                              **option)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    model = extract(net, ARCHS["ctc"]).eval()
    rec = Recognizer.from_model(model, TOK)
    wave = _wave(20011, seed=3)
    n = torch.tensor([wave.numel()])
    with torch.no_grad():  # the supernet's path (training) and the extracted subnet compute the same
        assert (net(wave[None], n, ARCHS["ctc"])[0] - model(wave[None], n)[0]).abs().max().item() <= 1e-5
    session = StreamingSession(rec, record=True)
    for i in range(0, wave.numel(), 160 * 16):
        session.accept(wave[i: i + 160 * 16])
    session.finish()
    full = rec.encode(*rec.features(wave[None], torch.tensor([wave.numel()])))
    got = session.emitted_outputs()
    assert all((got[name] - full[name]).abs().max().item() <= 1e-5 for name in got)
    assert session.text == rec.transcribe([wave])[0]


def test_streaming_with_onnx_model(supernet, tmp_path):
    from supernet.export import ExportConfig, export_subnet

    model = extract(supernet, ARCHS["rnnt"]).eval()
    export_subnet(model, tmp_path / "m", TOK, ExportConfig(formats=("onnx",)))
    rec = Recognizer.load(tmp_path / "m", "onnx")
    wave = _wave(19000, seed=1)
    session = StreamingSession(rec, record=True)
    for i in range(0, wave.numel(), 2560):
        session.accept(wave[i: i + 2560])
    session.finish()
    with torch.no_grad():
        enc, _ = model(wave[None], torch.tensor([wave.numel()]))
        want = model.head.enc_proj(enc)
    assert (session.emitted_outputs()["enc_proj"] - want).abs().max().item() <= 1e-4
    assert session.text == TOK.decode(model.transcribe(wave[None], torch.tensor([wave.numel()]))[0])


def test_full_context_arch_cannot_stream(supernet):
    arch = Arch("logmel40", 4, 32, (CONF, LayerArch("skip")), "ctc")
    with pytest.raises(ValueError, match="full-context"):
        StreamingSession(Recognizer.from_model(extract(supernet, arch), TOK))


def test_session_misuse(supernet):
    rec = Recognizer.from_model(extract(supernet, ARCHS["ctc"]), TOK)
    with pytest.raises(ValueError, match="before any audio"):
        StreamingSession(rec).finish()
    s = StreamingSession(rec)
    s.accept(_wave(4000, 0))
    s.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        s.accept(_wave(100, 0))
    with pytest.raises(RuntimeError, match="record=True"):
        s.emitted_outputs()
    with pytest.raises(ValueError, match="chunk_ms"):
        stream(rec, _wave(4000, 0), chunk_ms=0)


def test_evaluate_streaming_reports_wer_and_chunk_times(supernet):
    rec = Recognizer.from_model(extract(supernet, ARCHS["ctc"]), TOK)
    utts = [(_wave(n, i), "abc de") for i, n in enumerate((9000, 14000, 6000))]
    ev = evaluate_streaming(rec, utts, chunk_ms=160)
    assert ev.utterances == 3 and ev.chunk_ms == 160 and ev.backend == "eager" and ev.threads == 1
    assert ev.same_as_full == 1.0 and ev.wer == ev.full_wer and ev.cer == ev.full_cer
    assert 0 < ev.step_ms["median"] <= ev.step_ms["p90"] <= ev.step_ms["max"]
    assert ev.rtf == pytest.approx(ev.step_ms["median"] / 160)
    d = ev.to_dict()
    assert {"wer", "full_wer", "step_ms", "rtf", "what_timing_includes"} <= set(d) and "hyps" not in d
