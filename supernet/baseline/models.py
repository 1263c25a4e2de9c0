"""Hand-designed CTC acoustic models: the references every searched architecture must beat.

A :class:`CTCModel` is composed from injected parts (icefall style): a feature extractor, an
encoder that maps features to ``(B, T', D)`` frames with lengths, and a linear CTC head. Two
encoders ship: :class:`ConformerEncoder` (conv subsampler x4 + ``torchaudio.models.Conformer``)
and :class:`LSTMEncoder` (conv subsampler x4 + a stacked (bi)LSTM). Build either from a
:class:`ModelConfig` with :func:`build_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torchaudio.models import Conformer

from supernet.data.features import FeatureConfig, FeatureExtractor, lengths_to_mask
from supernet.nn.dropout import replace_dropout

__all__ = ["ModelConfig", "ConvSubsampler", "ConformerEncoder", "LSTMEncoder", "CTCModel", "build_model",
           "count_parameters"]


@dataclass
class ModelConfig:
    """Architecture of a baseline.

    Args:
        kind: "conformer" or "lstm".
        features: acoustic front-end.
        subsample_channels: channels of the two stride-2 convolutions (x4 time reduction).
        d_model: encoder width D.
        num_layers: encoder layers.
        dropout: dropout inside the encoder and before the CTC head.
        num_heads, ffn_dim, conv_kernel: Conformer attention heads, feed-forward width and
            depthwise convolution kernel (odd).
        pos_enc: add sinusoidal positions after subsampling (torchaudio's Conformer has none).
        lstm_hidden: LSTM units per direction.
        bidirectional: LSTM reads both directions.
    """

    kind: Literal["conformer", "lstm"] = "conformer"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    subsample_channels: int = 64
    d_model: int = 144
    num_layers: int = 4
    dropout: float = 0.1
    num_heads: int = 4
    ffn_dim: int = 576
    conv_kernel: int = 15
    pos_enc: bool = True
    lstm_hidden: int = 256
    bidirectional: bool = True

    def __post_init__(self) -> None:
        if self.kind == "conformer":
            if self.d_model % self.num_heads:
                raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
            if self.conv_kernel % 2 == 0:
                raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if min(self.subsample_channels, self.d_model, self.num_layers) < 1:
            raise ValueError("subsample_channels, d_model and num_layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class ConvSubsampler(nn.Module):
    """Two 3x3 stride-2 convolutions over (time, frequency): x4 fewer frames, then a projection.

    Args:
        in_dim: feature dimension F.
        channels: convolution channels C.
        out_dim: output width D.

    Shapes:
        forward(x (B, T, F), lengths (B,)) -> (B, T', D), (B,) with T' = ((T - 1) // 2 - 1) // 2;
        frames past each output length are zero.
    """

    def __init__(self, in_dim: int, channels: int, out_dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
        )
        f = ((in_dim - 1) // 2 - 1) // 2
        if f < 1:
            raise ValueError(f"feature dimension {in_dim} is too small for two stride-2 3x3 convolutions (need >= 7)")
        self.proj = nn.Linear(channels * f, out_dim)

    @staticmethod
    def output_lengths(lengths: Tensor) -> Tensor:
        return ((lengths - 1) // 2 - 1) // 2

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = x.masked_fill(~lengths_to_mask(lengths, x.shape[1])[..., None], 0.0)
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        x = self.proj(x.permute(0, 2, 1, 3).flatten(2))  # (B, T', D)
        out_lengths = self.output_lengths(lengths).clamp(min=0)
        x = x.masked_fill(~lengths_to_mask(out_lengths, x.shape[1])[..., None], 0.0)
        return x, out_lengths


def sinusoidal_positions(t: int, d: int, device: torch.device | None = None) -> Tensor:
    """(T, D) sinusoidal position table (Vaswani et al.)."""
    pos = torch.arange(t, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe


class ConformerEncoder(nn.Module):
    """Conv subsampler x4 -> (sinusoidal positions) -> ``torchaudio.models.Conformer`` layers.

    The layers are torchaudio's (same modules, same state dict); only the loop over them is
    ours, so that padded frames are masked in the convolution module too (see
    :func:`_masked_convolution`): an utterance's output does not depend on its batch.

    Shapes:
        forward(feats (B, T, F), lengths (B,)) -> (B, T', D), (B,)
    """

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        self.subsample = ConvSubsampler(in_dim, cfg.subsample_channels, cfg.d_model)
        self.pos_enc = cfg.pos_enc
        self.dropout = nn.Dropout(cfg.dropout)
        self.conformer = Conformer(
            input_dim=cfg.d_model, num_heads=cfg.num_heads, ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers,
            depthwise_conv_kernel_size=cfg.conv_kernel, dropout=cfg.dropout,
        )
        self.out_dim = cfg.d_model

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = self.subsample(feats, lengths)
        if self.pos_enc:
            x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        x = self.dropout(x)
        # At least one frame per row: an all-padding row would turn attention into NaN.
        keep = lengths_to_mask(lengths.clamp(min=1), x.shape[1])  # (B, T')
        x = x.transpose(0, 1)  # torchaudio's layers work on (T, B, D)
        for layer in self.conformer.conformer_layers:
            x = _conformer_layer(layer, x, keep)
        return x.transpose(0, 1), lengths


def _masked_convolution(layer: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """torchaudio's conformer convolution module, with padded frames zeroed before the depthwise conv.

    Without the mask, the depthwise convolution reads whatever the padded frames hold, so an
    utterance's output would depend on the batch it is in. Zeroing them makes a padded frame look
    like the convolution's own 'same' padding, exactly as for the utterance alone.
    """
    cm = layer.conv_module
    y = cm.layer_norm(x.transpose(0, 1)).transpose(1, 2)  # (B, D, T)
    pointwise, glu, rest = cm.sequential[0], cm.sequential[1], cm.sequential[2:]
    y = glu(pointwise(y)) * keep[:, None, :].to(y.dtype)
    return x + rest(y).permute(2, 0, 1)


def _conformer_layer(layer: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """``torchaudio.models.conformer.ConformerLayer.forward`` with a masked convolution module.

    Args:
        layer: a torchaudio ConformerLayer (its weights are used as they are).
        x: (T, B, D) frames.
        keep: (B, T) bool, True on valid frames.
    """
    x = x + 0.5 * layer.ffn1(x)
    if layer.convolution_first:
        x = _masked_convolution(layer, x, keep)
    y = layer.self_attn_layer_norm(x)
    y, _ = layer.self_attn(query=y, key=y, value=y, key_padding_mask=~keep, need_weights=False)
    x = x + layer.self_attn_dropout(y)
    if not layer.convolution_first:
        x = _masked_convolution(layer, x, keep)
    x = x + 0.5 * layer.ffn2(x)
    return layer.final_layer_norm(x)


class LSTMEncoder(nn.Module):
    """Conv subsampler x4 -> stacked (bi)LSTM over packed sequences (padding never read).

    Shapes:
        forward(feats (B, T, F), lengths (B,)) -> (B, T', H * directions), (B,)
    """

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        self.subsample = ConvSubsampler(in_dim, cfg.subsample_channels, cfg.d_model)
        self.lstm = nn.LSTM(
            cfg.d_model, cfg.lstm_hidden, num_layers=cfg.num_layers, batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0, bidirectional=cfg.bidirectional,
        )
        self.out_dim = cfg.lstm_hidden * (2 if cfg.bidirectional else 1)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = self.subsample(feats, lengths)
        t = x.shape[1]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)
        return x, lengths


class CTCModel(nn.Module):
    """Features -> encoder -> linear CTC head.

    Args:
        frontend: audio -> features with lengths (:class:`FeatureExtractor`).
        encoder: features -> (B, T', D) frames with lengths; must expose ``out_dim``.
        vocab_size: output classes including the blank (id 0).
        dropout: dropout before the head.

    Shapes:
        forward(audio (B, S), audio_lengths (B,)) -> log_probs (B, T', V), lengths (B,)
    """

    def __init__(self, frontend: nn.Module, encoder: nn.Module, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.out_dim, vocab_size)

    def from_features(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F) features -> (B, T', V) log-probabilities and (B,) lengths."""
        x, lengths = self.encoder(feats, lengths)
        return self.head(self.dropout(x)).log_softmax(dim=-1), lengths

    def forward(self, audio: Tensor, audio_lengths: Tensor) -> tuple[Tensor, Tensor]:
        feats, lengths = self.frontend(audio, audio_lengths)
        return self.from_features(feats, lengths)


def build_model(cfg: ModelConfig, vocab_size: int) -> CTCModel:
    """A :class:`CTCModel` for ``cfg`` with a ``vocab_size``-way head (blank included)."""
    frontend = FeatureExtractor(cfg.features)
    encoders = {"conformer": ConformerEncoder, "lstm": LSTMEncoder}
    encoder = encoders[cfg.kind](frontend.dim, cfg)
    model = CTCModel(frontend, encoder, vocab_size, dropout=cfg.dropout)
    # The supernet's dropout (about half the cost per call on the CPU), also inside torchaudio's layers, so that
    # the baseline and the searched models pay the same for it per step.
    replace_dropout(model)
    return model
