"""Static encoders: the task-agnostic layer stack and the speech encoder around it.

:class:`EncoderStack` maps frames (B, T, D) with lengths to frames (B, T, D): layers, chunk masks,
final LayerNorm. It knows nothing of audio, CTC or text, so a text-to-speech model can put a
phoneme embedding below it and a mel decoder above it.

:class:`Encoder` is the speech encoder of one :class:`~supernet.space.Arch`: per-feature
projection (:class:`~supernet.nn.frontend.FrontEnd`), convolutional subsampler, stack. It takes
features (the waveform -> feature step is separate, see ``supernet.subnet.SubnetModel``), which
is also what an exported model takes.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from supernet.nn.blocks import EncoderLayer
from supernet.nn.config import NetConfig
from supernet.nn.frontend import FrontEnd, frontend_options
from supernet.nn.masks import encoder_masks
from supernet.nn.subsampler import Subsampler, subsampler_options
from supernet.space import Arch, LayerArch

__all__ = ["EncoderStack", "Encoder"]


class EncoderStack(nn.Module):
    """Encoder layers of one arch (skip layers dropped) and a final LayerNorm.

    Args:
        layers: per-slot choices; ``skip`` slots are not built.
        width: D.
        chunk: streaming chunk in frames (0 = full context); > 0 builds causal layers.
        net: fixed hyper-parameters.

    Shapes:
        forward(x (B, T, D), lengths (B,)) -> (B, T, D), padded frames 0.
    """

    def __init__(self, layers: Sequence[LayerArch], width: int, chunk: int, net: NetConfig) -> None:
        super().__init__()
        self.chunk = chunk
        self.layers = nn.ModuleList(
            EncoderLayer.from_arch(layer, width, chunk > 0, net, chunk) for layer in layers if layer.block != "skip"
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask, attn_mask = encoder_masks(lengths, x.size(1), self.chunk)
        for layer in self.layers:
            x = layer(x, mask, attn_mask, lengths)
        return self.norm(x).masked_fill(~mask[:, :, None], 0.0)


class Encoder(nn.Module):
    """Speech encoder of one arch: features -> (B, T', D).

    Args:
        arch: the architecture (front-end, subsampling, width, layers, chunk, look-ahead are used;
            the decoder fields are not).
        feat_dim: F of the arch's features.
        net: fixed hyper-parameters.

    Shapes:
        forward(feats (B, T, F), feat_lengths (B,)) -> (B, T', D), lengths (B,) with
        T' = ceil(T / subsampling).
    """

    def __init__(self, arch: Arch, feat_dim: int, net: NetConfig) -> None:
        super().__init__()
        self.frontend = FrontEnd(feat_dim, **frontend_options(net))
        self.subsampler = Subsampler(arch.subsampling, d_model=arch.width, causal=net.causal(arch.streaming),
                                     lookahead=arch.lookahead or 0, **subsampler_options(net))
        self.stack = EncoderStack(arch.layers, arch.width, arch.chunk, net)

    def forward(self, feats: Tensor, feat_lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = self.subsampler(self.frontend(feats), feat_lengths)
        return self.stack(x, lengths), lengths
