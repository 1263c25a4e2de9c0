"""Fixed hyper-parameters of every network the supernet can produce.

The search space (``supernet.space``) says what is searched; :class:`NetConfig` holds what is
not (channels of the subsampler, dropout, the local-attention window, ...). It decides module
shapes, so parameter counts (``supernet.nn.params``) and saved subnets record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from supernet.config import NEW_OPTION

# how a streaming arch's convolutions use a centred kernel (supernet.nn.convolution)
CAUSAL_CONV_MODES = ("shift", "mask", "chunk")

__all__ = ["NetConfig"]


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters shared by the supernet and every static subnet (frozen: hashable).

    Args:
        sample_rate: audio rate in Hz.
        win_ms, hop_ms: framing of every front-end. All front-ends (log-mel, MFCC, learnable)
            produce the same frames, so relaxed mixing can add them.
        subsampler_channels: channels C of the convolutional subsampler.
        subsampler: "conv1d" (default: strided convolutions over time, the frame's features as
            channels) or "conv2d" (strided 2-D convolutions over time and frequency, as the
            Conformer's and the baseline's subsampling; ``supernet.nn.subsampler``). Measured on
            FSDD (BENCHMARKS.md, session 24): the baseline's shape trained alone reached 5.9 % dev /
            19.6 % unseen-speaker test WER with conv1d, 3.3 / 10.4 % with conv2d (32 channels), where
            the baseline reached 1.6 / 13.5 %.
        subsampler_bins: conv2d only: the frequency rows each front-end projects its features to
            (the projection starts as a resampling of the feature axis to this many rows, so the
            2-D filters see the frequency order from the first step).
        learnable_filters: output channels of the learnable waveform front-end.
        dropout: dropout of every encoder unit and decoder layer.
        local_window: frames on each side that ``local`` attention sees.
        se_reduction: squeeze-and-excitation bottleneck ratio of ``cnn`` blocks.
        decoder_heads: attention heads of the attention decoder (divides every decoder width).
        ctc_weight: weight of CTC in the joint CTC/attention loss.
        label_smoothing: of the attention decoder's cross-entropy.
        max_symbols: RNN-T greedy decoding emits at most this many tokens per frame.
        frame_norm: LayerNorm over each frame's channels in the front-end projection and after
            every subsampler convolution. True is what the first supernets were built with;
            False (recommended, every shipped fit config sets it) keeps the frames' energy:
            with it on, silence and speech frames reach the encoder at the same scale, and
            a w144 x 4 conformer subnet sat on the CTC blank plateau for 500 steps at lr 2e-3
            (100 % dev WER); without it, it was at 49 % after 400 (docs/training.md). The default stays True
            so that saved subnets and cached rank-check references keep their meaning.
        causal_conv: how a streaming arch's convolutions use the kernel the full-context archs
            train (``supernet.nn.convolution``): "shift" (default; every shipped config) moves the
            whole kernel into the past, so each tap looks at another offset than it learned;
            "mask" drops the future taps and keeps each past tap's offset (dual-mode ASR). Measured
            from the same full-context weights (bench/streaming.py, BENCHMARKS.md, session 8),
            "mask" adapted far worse: 16.4 % against 3.0 % streaming dev WER after 4 minutes.
            "chunk" keeps the centred kernel and lets each frame's future taps reach the end of its
            own chunk (dynamic chunk convolution, Li et al., ICASSP 2023), as the chunk attention
            mask does: the past taps keep their offsets and no frame sees past its chunk. Measured
            with dynamic-chunk training (session 14), it was worse than "shift" in both modes:
            12.9 % against 4.2 % streaming, 3.1 % against 2.1 % full-context dev WER.
        causal_full_context: full-context archs use the streaming archs' causal subsampler and
            convolutions too (``causal_conv`` "shift" or "mask"), as WeNet's U2 does with
            ``causal: true``. The two modes of one set of weights (dynamic-chunk training) then
            differ only in the attention mask and the look-ahead's time shift, not in what each
            convolution tap means; a full-context arch loses its convolutions' right context.
            False (default) keeps centred convolutions in full-context archs. Measured over FSDD's
            five leave-one-speaker-out folds (BENCHMARKS.md, session 18) it made both modes worse
            (+11 % streaming, +9 % full-context errors) and left their ratio at 1.20x (1.18x off).
    """

    sample_rate: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    subsampler_channels: int = 128
    learnable_filters: int = 80
    dropout: float = 0.1
    local_window: int = 16
    se_reduction: int = 8
    decoder_heads: int = 4
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    max_symbols: int = 5
    frame_norm: bool = field(default=True, metadata=NEW_OPTION)
    causal_conv: Literal["shift", "mask", "chunk"] = field(default="shift", metadata=NEW_OPTION)
    causal_full_context: bool = field(default=False, metadata=NEW_OPTION)
    subsampler: Literal["conv1d", "conv2d"] = field(default="conv1d", metadata=NEW_OPTION)
    subsampler_bins: int = field(default=40, metadata=NEW_OPTION)

    def __post_init__(self) -> None:
        if self.subsampler not in ("conv1d", "conv2d"):
            raise ValueError(f"NetConfig.subsampler must be 'conv1d' or 'conv2d', got {self.subsampler!r}")
        for name in ("sample_rate", "subsampler_channels", "subsampler_bins", "learnable_filters", "local_window", "se_reduction",
                     "decoder_heads", "max_symbols"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"NetConfig.{name} must be an integer >= 1, got {v!r}")
        if self.causal_conv not in CAUSAL_CONV_MODES:
            raise ValueError(f"NetConfig.causal_conv must be 'shift', 'mask' or 'chunk', got {self.causal_conv!r}")
        if not isinstance(self.causal_full_context, bool):
            raise ValueError(f"NetConfig.causal_full_context must be true or false, got {self.causal_full_context!r}")
        if self.causal_full_context and self.causal_conv == "chunk":
            raise ValueError("NetConfig.causal_full_context needs causal_conv 'shift' or 'mask': 'chunk' convolutions "
                             "need a streaming arch's chunk, which a full-context arch does not have")
        if not isinstance(self.frame_norm, bool):
            raise ValueError(f"NetConfig.frame_norm must be true or false, got {self.frame_norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"NetConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"NetConfig.ctc_weight must be in [0, 1], got {self.ctc_weight!r}")
        if self.hop_ms <= 0 or self.win_ms < self.hop_ms:
            raise ValueError(f"NetConfig needs 0 < hop_ms <= win_ms, got hop_ms={self.hop_ms}, win_ms={self.win_ms}")

    @property
    def frontend_channels(self) -> int:
        """Output width of each front-end's projection, the subsampler's input: its channels
        (conv1d) or its frequency rows (conv2d)."""
        return self.subsampler_bins if self.subsampler == "conv2d" else self.subsampler_channels

    @property
    def conv2d_bins(self) -> int | None:
        """``Subsampler``'s ``bins`` argument: the frequency rows for conv2d, None for conv1d."""
        return self.subsampler_bins if self.subsampler == "conv2d" else None

    def causal(self, streaming: bool) -> bool:
        """Whether an arch's subsampler and convolutions are causal: a streaming arch's always,
        a full-context arch's when ``causal_full_context``."""
        return streaming or self.causal_full_context

    @property
    def hop_length(self) -> int:
        """Frame shift in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def win_length(self) -> int:
        """Analysis window in samples."""
        return int(round(self.sample_rate * self.win_ms / 1000))
