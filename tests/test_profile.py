"""Cost profiler: FLOPs against analytic counts, memory, latency fields, ProfileResult JSON, LUT.

No timing assertions: only that measurements exist, are positive and leave the thread count as
it was. Models are tiny and timings short (min_run_time of a few ms).
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from supernet.profile import (
    ChunkSpec,
    LatencyLUT,
    LatencyStats,
    LUTMismatchError,
    Part,
    ProfileResult,
    arch_parts,
    activation_peak_bytes,
    count_flops,
    count_params,
    measure_latency,
    num_threads,
    profile_model,
)
from supernet.profiling.timing import fastest_over_rounds
from supernet.space import Arch, LayerArch

FAST = dict(warmup=1, repeats=3, min_run_time=0.005)
HOP = 160


class FramedLinear(nn.Module):
    """(B, S) audio -> (B, S // 160, 160) frames -> Linear: a model with a known FLOP count."""

    def __init__(self, out_dim: int = 32):
        super().__init__()
        self.proj = nn.Linear(HOP, out_dim)

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, s = audio.shape
        frames = audio[:, : s - s % HOP].reshape(b, -1, HOP)
        return self.proj(frames), audio_lengths // HOP


class FramedRNN(FramedLinear):
    def __init__(self, rnn: nn.RNNBase):
        super().__init__(rnn.input_size)
        self.rnn = rnn

    def forward(self, audio, audio_lengths):
        x, lengths = super().forward(audio, audio_lengths)
        return self.rnn(x)[0], lengths


def _audio(seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(seconds * 16000)
    return torch.randn(1, n, generator=torch.Generator().manual_seed(0)), torch.tensor([n])


# ---------------------------------------------------------------- FLOPs, params, memory


def test_linear_flops_equal_analytic():
    model = FramedLinear(32)
    audio, lengths = _audio(0.5)
    tokens = audio.shape[1] // HOP
    assert count_flops(model, audio, lengths) == 2 * HOP * 32 * tokens
    assert count_params(model) == HOP * 32 + 32


@pytest.mark.parametrize("cls,gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_flops_are_counted(cls, gates, bidirectional):
    # FlopCounterMode alone counts 0 for the fused LSTM op; the added formula must give
    # 2 * tokens * (all input-to-hidden and hidden-to-hidden weights), per direction and layer.
    f, h, d = 24, 16, 2 if bidirectional else 1
    rnn = cls(f, h, num_layers=2, batch_first=True, bidirectional=bidirectional)
    model = FramedRNN(rnn)
    audio, lengths = _audio(0.25)
    tokens = audio.shape[1] // HOP
    per_token = d * gates * h * (f + h) + d * gates * h * (d * h + h)
    expected = 2 * HOP * f * tokens + 2 * tokens * per_token
    assert count_flops(model, audio, lengths) == expected
    # The same number whichever kernel runs: no inference mode -> oneDNN op / decomposed cells.
    from torch.utils.flop_counter import FlopCounterMode

    from supernet.profiling.flops import EXTRA_FLOP_FORMULAS

    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        model(audio, lengths)
    assert counter.get_total_flops() == expected


def test_stft_flops_follow_fft_convention():
    class Stft(nn.Module):
        def forward(self, audio, audio_lengths):
            return torch.stft(audio, 400, HOP, window=torch.hann_window(400), return_complex=True)

    audio, lengths = _audio(0.25)
    frames = 1 + audio.shape[1] // HOP  # centred frames
    assert count_flops(Stft(), audio, lengths) == int(2.5 * 400 * math.log2(400)) * frames


def test_activation_peak_of_two_live_tensors():
    # Linear output and ReLU output are alive together: 2 * (T, 1024) float32 at the peak.
    model = nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 64))

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x, lengths):
            return self.m(x)

    x = torch.randn(500, 64)
    assert activation_peak_bytes(Wrap(), x, torch.tensor([500])) == 2 * 500 * 1024 * 4


def test_activation_peak_keeps_stderr_quiet():
    # The profiler's backend (Kineto) writes "USDT ... profiler_stop" lines to stderr on every
    # profile unless its log level is set before it first starts: a fresh process, as a user's.
    code = (
        "import torch\n"
        "from supernet.profiling.flops import activation_peak_bytes\n"
        "m = torch.nn.Linear(4, 4)\n"
        "for _ in range(3):\n"
        "    assert activation_peak_bytes(m, torch.randn(2, 4)) > 0\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "profiler_st" not in done.stderr and "USDT" not in done.stderr, done.stderr


# ---------------------------------------------------------------- latency and ProfileResult


def test_profile_model_fields_positive_and_threads_restored():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    result = profile_model(FramedLinear(), threads=other, lengths=(0.25, 0.5), **FAST)
    assert torch.get_num_threads() == before
    assert result.threads == other
    assert set(result.latency) == {"0.25", "0.5"} == set(result.rtf)
    for key, lat in result.latency.items():
        assert 0 < lat.median_ms <= lat.p90_ms
        assert lat.samples >= 1 and lat.calls_per_sample >= 1
        assert result.rtf[key] == pytest.approx(lat.median_ms / 1e3 / float(key))
    assert result.cost_seconds == 0.5
    assert result.flops == 2 * HOP * 32 * (8000 // HOP) and result.macs == result.flops // 2
    assert result.params == count_params(FramedLinear())
    assert result.peak_mem_mb > result.activation_mem_mb > 0
    assert result.chunk is None
    assert "batch 1" in result.what_timing_includes and result.device


def test_threads_restored_after_error():
    before = torch.get_num_threads()

    def boom(model, audio, lengths):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        profile_model(FramedLinear(), threads=1, lengths=(0.1,), run=boom, what_timing_includes="nothing", **FAST)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with num_threads(0):
            pass


def test_cpu_clock_needs_one_thread_and_fastest_round_wins():
    with pytest.raises(ValueError, match="threads=1"):
        measure_latency(lambda: None, threads=2, clock="cpu")
    stats = measure_latency(lambda: torch.randn(64, 64) @ torch.randn(64, 64), threads=1, clock="cpu", **FAST)
    assert stats.clock == "cpu" and stats.median_ms > 0

    # Round-robin: item i is measured at every round; the lowest median is kept.
    medians = iter([5.0, 1.0, 3.0, 2.0, 4.0, 6.0])  # round 1: a=5, b=1, c=3; round 2: a=2, b=4, c=6
    calls = []

    def fake(item):
        calls.append(item)
        m = next(medians)
        return LatencyStats(m, m, m, 1)

    best = fastest_over_rounds(["a", "b", "c"], fake, rounds=2, desc="t", progress=False)
    assert calls == ["a", "b", "c", "a", "b", "c"]
    assert [b.median_ms for b in best] == [2.0, 1.0, 3.0]


def test_custom_run_needs_description():
    with pytest.raises(ValueError, match="what_timing_includes"):
        profile_model(FramedLinear(), threads=1, lengths=(0.1,), run=lambda m, a, n: m(a, n), **FAST)


def test_chunk_latency_and_json_round_trip(tmp_path):
    arch = Arch("logmel80", 4, 32, (LayerArch("cnn", kernel=3),), chunk=8, lookahead=2)
    spec = ChunkSpec.for_arch(arch, left_chunks=2)
    assert spec == ChunkSpec(chunk_samples=8 * 4 * HOP, left_samples=16 * 4 * HOP, right_samples=2 * 4 * HOP)
    with pytest.raises(ValueError, match="not streaming"):
        ChunkSpec.for_arch(Arch("logmel80", 4, 32, (LayerArch("lstm"),)))
    result = profile_model(FramedLinear(), threads=1, lengths=(0.25,), chunk=spec, arch=arch, **FAST)
    assert result.chunk is not None and result.chunk.latency.median_ms > 0
    assert result.chunk.rtf == pytest.approx(result.chunk.latency.median_ms / 1e3 / (spec.chunk_samples / 16000))
    assert Arch.from_dict(result.arch) == arch

    again = ProfileResult.from_json(result.to_json())
    assert again == result
    path = tmp_path / "out" / "profile.json"
    result.save(path)
    assert ProfileResult.load(path) == result
    assert json.loads(path.read_text())["latency"]["0.25"]["median_ms"] > 0
    assert "chunk" in result.summary()

    path.write_text('{"params": 3}')
    with pytest.raises(ValueError, match="profile.json.*not a valid profile result"):
        ProfileResult.load(path)


# ---------------------------------------------------------------- latency lookup table


class ToyParts:
    """A PartProvider over tiny stand-in modules: front-end, layer and head keyed like the real one."""

    name = "toy"

    def __init__(self, ref_seconds: float = 0.5, vocab_size: int = 7):
        self.config = {"ref_seconds": ref_seconds, "vocab_size": vocab_size}
        self.samples = int(ref_seconds * 16000)

    def _frames(self, arch: Arch) -> int:
        return self.samples // (HOP * arch.subsampling)

    def _front(self, arch: Arch) -> Part:
        def build():
            return nn.Linear(HOP * arch.subsampling, arch.width), (torch.randn(1, self._frames(arch), HOP * arch.subsampling),)

        return Part(f"frontend/{arch.feature}/s{arch.subsampling}/d{arch.width}", build)

    def _layer(self, arch: Arch, layer: LayerArch) -> Part:
        def build():
            k = layer.kernel or 1
            return nn.Conv1d(arch.width, arch.width, k, padding=k // 2), (torch.randn(1, arch.width, self._frames(arch)),)

        return Part(f"layer/s{arch.subsampling}/d{arch.width}/{layer.block}/k{layer.kernel}", build)

    def _head(self, arch: Arch) -> Part:
        def build():
            return nn.Linear(arch.width, self.config["vocab_size"]), (torch.randn(1, self._frames(arch), arch.width),)

        return Part(f"decoder/{arch.decoder}/s{arch.subsampling}/d{arch.width}", build)

    def head_parts(self, head: Arch) -> list[Part]:
        return [self._front(head), self._head(head)]

    def layer_part(self, layer: LayerArch, head: Arch) -> Part | None:
        return None if layer.block == "skip" else self._layer(head, layer)

    def arch_parts(self, arch: Arch) -> list[Part]:
        return arch_parts(self, arch)

    def space_parts(self, space: "ToySpace") -> list[Part]:
        return [p for a in space.archs for p in self.arch_parts(a)]

    def full_model(self, arch: Arch):
        front, head = (p.build()[0] for p in self.head_parts(arch))
        layers = [self._layer(arch, lay).build()[0] for lay in arch.layers if lay.block != "skip"]
        frames = self._frames(arch)

        class Chain(nn.Module):
            def __init__(self):
                super().__init__()
                self.front, self.head, self.layers = front, head, nn.ModuleList(layers)

            def forward(self, audio, lengths):
                x = self.front(audio[:, : frames * HOP * arch.subsampling].reshape(1, frames, -1)).transpose(1, 2)
                for layer in self.layers:
                    x = layer(x)
                return self.head(x.transpose(1, 2))

        audio = torch.randn(1, self.samples)
        return Chain(), (audio, torch.tensor([self.samples]))


class ToySpace:
    def __init__(self):
        lay = [LayerArch("cnn", kernel=3), LayerArch("cnn", kernel=5), LayerArch("skip")]
        self.archs = [
            Arch("logmel80", 4, 16, (lay[0], lay[1], lay[0])),
            Arch("logmel80", 8, 16, (lay[1], lay[2], lay[2])),
            Arch("mfcc40", 4, 24, (lay[0], lay[0], lay[2])),
        ]

    def sample(self, rng: random.Random) -> Arch:
        return rng.choice(self.archs)


@pytest.fixture(scope="module")
def toy_lut() -> LatencyLUT:
    return LatencyLUT.build(ToySpace(), threads=1, provider=ToyParts(), calibrate=2, progress=False, **FAST)


def test_lut_prediction_is_overhead_plus_sum_of_entries(toy_lut):
    space = ToySpace()
    arch = space.archs[0]
    keys = toy_lut.keys(arch)
    assert len(keys) == 5 and keys[2] == keys[4]  # front-end, head, 3 layers (two identical)
    expected = toy_lut.overhead_ms + sum(toy_lut.entries[k].median_ms for k in keys)
    assert toy_lut.predict(arch) == pytest.approx(expected)
    # The split the space's DP uses adds up to the same prediction; skips cost 0.
    for a in space.archs:
        split = toy_lut.head_ms(a) + sum(toy_lut.layer_ms(layer, a) for layer in a.layers)
        assert split == pytest.approx(toy_lut.predict(a))
    assert toy_lut.layer_ms(LayerArch("skip"), arch) == 0.0
    # Every distinct part measured once; skips cost nothing.
    assert set(toy_lut.entries) == {p.key for a in space.archs for p in ToyParts().arch_parts(a)}
    assert all(e.median_ms > 0 for e in toy_lut.entries.values())
    assert len(toy_lut.calibration) == 2
    r = toy_lut.calibration[0]
    assert r["measured_ms"] > 0 and r["summed_ms"] > 0
    assert toy_lut.threads == 1


def test_lut_save_load_round_trip(toy_lut, tmp_path):
    path = tmp_path / "lut.json"
    toy_lut.save(path)
    loaded = LatencyLUT.load(path, threads=1, provider=ToyParts())
    assert loaded == toy_lut
    for arch in ToySpace().archs:
        assert loaded.predict(arch) == toy_lut.predict(arch)
    d = json.loads(path.read_text())
    assert d["threads"] == 1 and d["device"] and d["versions"]["torch"] == torch.__version__
    assert d["provider_config"] == {"ref_seconds": 0.5, "vocab_size": 7}


def test_lut_mismatch_errors(toy_lut, tmp_path):
    path = tmp_path / "lut.json"
    toy_lut.save(path)
    with pytest.raises(LUTMismatchError, match="threads=1, used with threads=4"):
        LatencyLUT.load(path, threads=4)
    with pytest.raises(LUTMismatchError, match="measured on device .* used for 'Other CPU'"):
        LatencyLUT.load(path, device="Other CPU")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LatencyLUT.load(path, device="Other CPU", strict=False)
    assert any("Other CPU" in str(w.message) for w in caught)
    with pytest.raises(LUTMismatchError, match="vocab_size"):
        LatencyLUT.load(path, provider=ToyParts(vocab_size=9))
    with pytest.raises(LUTMismatchError, match="measured with parts 'toy'"):
        LatencyLUT.load(path, space=ToySpace())
    with pytest.raises(RuntimeError, match="no PartProvider"):
        LatencyLUT.load(path).predict(ToySpace().archs[0])
    unseen = Arch("logmel80", 4, 16, (LayerArch("cnn", kernel=7),))
    with pytest.raises(KeyError, match="no entry for 1 part"):
        toy_lut.predict(unseen)
    path.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a latency table"):
        LatencyLUT.load(path)


def test_overhead_is_the_relative_error_minimiser(toy_lut):
    from supernet.profiling.lut import weighted_median

    assert weighted_median([3.0, 1.0, 2.0], [1, 1, 1]) == 2.0
    assert weighted_median([-20.0, 0.5, 0.4], [1 / 400, 1 / 10, 1 / 12]) == 0.5  # 0.1 > half of the total weight
    lut = LatencyLUT.from_dict(toy_lut.to_dict(), provider=ToyParts())
    archs = ToySpace().archs
    sums = [lut.sum_parts(a) for a in archs]
    diffs = [0.3, -5.0, 0.2]
    lut._set_calibration(archs, [LatencyStats(s + d, s + d, s + d, 1) for s, d in zip(sums, diffs)])
    expected = weighted_median(diffs, [1 / (s + d) for s, d in zip(sums, diffs)])
    assert lut.overhead_ms == pytest.approx(expected)
    assert [r["measured_ms"] - r["summed_ms"] for r in lut.calibration] == pytest.approx(diffs)


def test_lut_partial_build_for_given_archs():
    space = ToySpace()
    lut = LatencyLUT.build(space, threads=1, provider=ToyParts(), archs=space.archs[:1], calibrate=0, rounds=2,
                           progress=False, **FAST)
    assert lut.overhead_ms == 0.0 and lut.calibration == [] and lut.rounds == 2
    assert set(lut.entries) == set(lut.keys(space.archs[0]))
    assert lut.predict(space.archs[0]) > 0


# ---------------------------------------------------------------- supernet subnets


from supernet.nn.ctc import CTCHead  # noqa: E402
from supernet.nn.decoder import AttentionHead  # noqa: E402
from supernet.nn.transducer import TransducerHead  # noqa: E402
from supernet.profiling.decoding import decode_workload, tokens_for  # noqa: E402
from supernet.profiling.parts import SupernetParts, load_space  # noqa: E402
from supernet.subnet import SubnetModel, save_subnet  # noqa: E402

SPACE = "configs/space/tiny.yaml"
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tokens", [1, 7, 40])
def test_decoding_workload_emits_the_requested_tokens(tokens):
    torch.manual_seed(0)
    enc, lengths = torch.randn(1, 12, 16), torch.tensor([12])
    rnnt = TransducerHead(16, 9, layers=1, width=8, max_symbols=3).eval()
    att = AttentionHead(16, 9, layers=1, width=8, heads=2).eval()
    with torch.inference_mode():
        out = decode_workload(rnnt, enc, lengths, tokens)
        assert out.shape == (1, min(tokens, 12 * 3))  # at most max_symbols per frame
        assert bool(((out > 0) & (out < 9)).all())  # real tokens: no blank
        out = decode_workload(att, enc, lengths, tokens)
        assert out.shape == (1, tokens) and bool(((out > 0) & (out < 9)).all())  # no blank, no <eos>
        assert isinstance(decode_workload(CTCHead(16, 9).eval(), enc, lengths, tokens), list)
    with pytest.raises(TypeError, match="no decoding workload"):
        decode_workload(nn.Linear(16, 9), enc, lengths, tokens)
    assert tokens_for(4.0, 12.0) == 48 and tokens_for(0.01) == 1


def _tiny_arch(decoder: str = "rnnt", chunk: int = 4) -> Arch:
    layers = (LayerArch("conformer", "mha", 2, 2, 7), LayerArch("cnn", kernel=7), LayerArch("skip"))
    extra = dict(decoder_layers=1, decoder_width=32) if decoder != "ctc" else {}
    return Arch("logmel40", 4, 32, layers, decoder, chunk=chunk, lookahead=2 if chunk else None, **extra)


def test_supernet_parts_lut_sums_the_arch(tmp_path):
    space = load_space(ROOT / SPACE)
    arch = _tiny_arch()
    assert space.contains(arch)
    provider = SupernetParts(space, vocab_size=8, ref_seconds=0.5)
    lut = LatencyLUT.build(space, threads=1, provider=provider, archs=[arch], calibrate=0, progress=False, **FAST)
    lut.calibrate([arch], **FAST)
    keys = lut.keys(arch)
    assert [k.split("/")[0] for k in keys] == ["features", "encoder-io", "decoder", "layer", "layer"]
    t = provider.enc_frames(4)
    assert t == 13 and f"/T{t}/" in keys[3] and "stream" in keys[3]  # 8000 samples -> 51 frames -> 13
    assert lut.predict(arch) == pytest.approx(lut.overhead_ms + sum(lut.entries[k].median_ms for k in keys))
    path = tmp_path / "lut.json"
    lut.save(path)
    loaded = LatencyLUT.load(path, threads=1, space=space)  # the provider is rebuilt from the table
    assert loaded.predict(arch) == pytest.approx(lut.predict(arch))
    with pytest.raises(LUTMismatchError, match="tokens_per_second"):
        loaded.attach(SupernetParts(space, vocab_size=8, ref_seconds=0.5, tokens_per_second=3.0))
    assert {p.key for p in provider.space_parts(space)} >= set(keys)


def test_profile_subnet_and_cli(tmp_path):
    from supernet.cli import main
    from supernet.profile import profile_subnet

    torch.manual_seed(0)
    model = SubnetModel(_tiny_arch("rnnt", chunk=4), vocab_size=8).eval()
    result = profile_subnet(model, threads=1, lengths=(0.25,), decode="workload", **FAST)
    assert "greedy decoding emitting a fixed 12 tokens per second" in result.what_timing_includes
    assert result.chunk is not None and result.chunk.spec.chunk_samples == 4 * 4 * 160
    assert result.params == count_params(model) and result.flops > 0
    none = profile_subnet(model, threads=1, lengths=(0.25,), decode="none", **FAST)
    assert none.flops < result.flops  # the decoder's FLOPs are counted when it is timed
    with pytest.raises(ValueError, match="decode must be one of"):
        profile_subnet(model, threads=1, decode="beam")

    path = save_subnet(SubnetModel(_tiny_arch("ctc", chunk=0), vocab_size=8), tmp_path / "sub.pt")
    out = tmp_path / "profile.json"
    rc = main(["profile", str(path), "--lengths", "0.25,0.5", "--warmup", "1", "--repeats", "2", "--out", str(out)])
    assert rc == 0
    loaded = ProfileResult.load(out)
    assert set(loaded.latency) == {"0.25", "0.5"} and loaded.chunk is None
    assert Arch.from_dict(loaded.arch) == _tiny_arch("ctc", chunk=0)
    assert main(["profile", str(tmp_path / "missing.pt")]) == 1
    (tmp_path / "bad.pt").write_text("not a subnet")
    assert main(["profile", str(tmp_path / "bad.pt")]) == 1
    assert main(["profile", "lut", "--out", str(tmp_path / "l.json")]) == 2  # no -c
    # the CPU clock sums every thread's time: refused with more than one thread, before any timing
    assert main(["profile", "lut", "-c", SPACE, "--vocab-size", "8", "--out", str(tmp_path / "l.json"),
                 "--clock", "cpu", "--threads", "2"]) == 2
    assert not (tmp_path / "l.json").exists()
    assert main(["profile", str(path), "-c", SPACE]) == 2


MICRO_SPACE = """
name: micro
frontend: {feature: [logmel40], subsampling: [4]}
encoder: {width: [32], layers: 2, min_depth: 1, layer: {block: [cnn], kernel: [7]}}
decoder: {type: [ctc]}
"""


def test_cli_builds_a_lut(tmp_path):
    from supernet.cli import main

    space_file = tmp_path / "micro.yaml"
    space_file.write_text(MICRO_SPACE)
    out = tmp_path / "lut.json"
    argv = ["profile", "lut", "-c", str(space_file), "--vocab-size", "8", "--ref-seconds", "0.25", "--calibrate", "1",
            "--warmup", "1", "--repeats", "2", "--out", str(out)]
    assert main(argv) == 0
    space = load_space(space_file)
    lut = LatencyLUT.load(out, threads=1, space=space)
    assert len(lut.entries) == 4 and len(lut.calibration) == 1  # features, encoder-io, decoder, one layer kind
    arch = space.largest()
    assert lut.predict(arch) == pytest.approx(lut.overhead_ms + sum(lut.entries[k].median_ms for k in lut.keys(arch)))
    assert lut.keys(arch).count(lut.keys(arch)[-1]) == 2  # two identical cnn layers, one entry
    assert lut.provider_config["net"]["subsampler_channels"] == 128  # NetConfig's default

    # --net-from: the parts are built with the fit config's net (every shipped fit uses 64 channels)
    fit_yaml = tmp_path / "fit.yaml"
    fit_yaml.write_text("name: x\nnet: {subsampler_channels: 64}\n")
    out64 = tmp_path / "lut64.json"
    assert main([*argv[:-1], str(out64), "--net-from", str(fit_yaml)]) == 0
    lut64 = LatencyLUT.load(out64, threads=1, space=space)
    assert lut64.provider_config["net"]["subsampler_channels"] == 64
    assert lut64.predict(arch) > 0
    # bad --net-from: exit 2 before any timing, nothing written
    (tmp_path / "bad.yaml").write_text("net: {subsampler_chanels: 64}\n")
    for bad in (tmp_path / "bad.yaml", tmp_path / "missing.yaml"):
        assert main([*argv[:-1], str(tmp_path / "never.json"), "--net-from", str(bad)]) == 2
    assert not (tmp_path / "never.json").exists()


def test_hardware_aware_fit_warns_when_the_table_was_built_with_another_net(monkeypatch):
    """A latency table timed with other encoder-io parts (channels, per-frame LayerNorm) warns."""
    import warnings
    from types import SimpleNamespace

    from supernet.nn.config import NetConfig
    from supernet.profiling.lut import LatencyLUT
    from supernet.training import run

    table = SimpleNamespace(provider_config={})
    monkeypatch.setattr(LatencyLUT, "load", staticmethod(lambda *a, **k: table))
    cfg = SimpleNamespace(hardware=SimpleNamespace(lut="t.json"), net=NetConfig(subsampler_channels=64, frame_norm=False))
    table.provider_config = {"net": {"subsampler_channels": 64}}  # built before frame_norm existed: it was on
    with pytest.warns(UserWarning, match=r"t.json: measured with frame_norm True \(this supernet: False\)"):
        assert run._load_lut(cfg, None) is table
    table.provider_config = {"net": {"subsampler_channels": 128, "frame_norm": False}}
    with pytest.warns(UserWarning, match=r"subsampler_channels 128 \(this supernet: 64\).*--net-from"):
        run._load_lut(cfg, None)
    table.provider_config = {"net": {"subsampler_channels": 64, "frame_norm": False, "dropout": 0.3}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run._load_lut(cfg, None)


# ---------------------------------------------------------------- against the baseline
def test_paired_latency_alternates_and_compares_medians():
    from supernet.profiling.costs import paired_latency

    calls: list[str] = []
    pick_values = iter([10.0, 30.0, 11.0])  # one outlier round: the median ignores it
    base_values = iter([12.0, 12.5, 9.0])

    def pick() -> float:
        calls.append("pick")
        return next(pick_values)

    def base() -> float:
        calls.append("base")
        return next(base_values)

    out = paired_latency(pick, base, 3)
    assert calls == ["pick", "base", "base", "pick", "pick", "base"]  # the order alternates per round
    assert out["pick_ms"] == [10.0, 30.0, 11.0] and out["baseline_ms"] == [12.0, 12.5, 9.0]
    assert out["pick_median_ms"] == 11.0 and out["baseline_median_ms"] == 12.0
    assert out["no_higher"] is True and out["ratio"] == pytest.approx(11.0 / 12.0, abs=1e-4)
    assert out["ok"] is True and out["factor"] == 1.0
    slower = paired_latency(lambda: 13.0, lambda: 12.0, 1)
    assert slower["no_higher"] is False and slower["ok"] is False and slower["rounds"] == 1
    margin = paired_latency(lambda: 13.0, lambda: 12.0, 1, factor=1.1)  # 1.083x: slower, but within the factor
    assert margin["no_higher"] is False and margin["ok"] is True and margin["factor"] == 1.1
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        paired_latency(lambda: 1.0, lambda: 1.0, 0)


def test_baseline_latency_times_the_baseline_as_the_search_times_a_candidate():
    """The limit is factor x the median of `rounds` baseline profiles taken with the search's
    settings; a confirmation is paired and says ok when the ratio is within the factor."""
    from supernet.profiling.costs import BaselineLatency, MeasuredCosts
    from supernet.search.targets import Target
    from supernet.subnet import SubnetModel

    target = Target(name="t", threads=1, reference_seconds=0.5)
    costs = MeasuredCosts(None, target, warmup=1, repeats=2, min_run_time=0.0, clock="cpu")
    base = BaselineLatency(FramedLinear(), costs, factor=2.0, rounds=3)
    ref = base.reference()
    assert len(ref["baseline_ms"]) == 3 and ref["baseline_median_ms"] == pytest.approx(sorted(ref["baseline_ms"])[1])
    assert ref["latency_ms"] == pytest.approx(2.0 * ref["baseline_median_ms"], rel=1e-3)
    assert ref["threads"] == 1 and ref["clock"] == "cpu" and ref["repeats"] == 2  # the search's own settings
    model = SubnetModel(_tiny_arch("ctc", chunk=0), vocab_size=8).eval()
    said = base.confirm(model)
    assert said["rounds"] == 3 and len(said["pick_ms"]) == 3 and said["factor"] == 2.0
    assert said["ok"] is (said["ratio"] <= 2.0) and "paired rounds" in said["summary"]
    assert BaselineLatency(FramedLinear(), costs, factor=1e-9, rounds=1).confirm(model)["ok"] is False
    assert BaselineLatency(FramedLinear(), costs, factor=1e9, rounds=1).confirm(model)["ok"] is True
    for bad in (dict(factor=0.0), dict(rounds=0)):
        with pytest.raises(ValueError):
            BaselineLatency(FramedLinear(), costs, **bad)
