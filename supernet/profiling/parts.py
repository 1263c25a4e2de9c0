"""How a :class:`~supernet.subnet.SubnetModel` decomposes into timed parts (the latency table's keys).

One recognition of ``S`` samples (``SubnetWithDecoding``: forward + decoding workload) runs:

==========  ===================================================  ========================================
part        module (static twin, random weights)                 input it sees in the full model
==========  ===================================================  ========================================
features    ``make_features(feature)``                           audio (1, S), lengths
encoder-io  ``Encoder`` of the arch without layers: per-feature  features (1, T, F), lengths
            projection, subsampler, masks, final LayerNorm
layer       ``EncoderLayer.from_arch(layer, width, causal)``     x (1, T', D), mask, chunk mask, lengths
decoder     ``DecodingWorkload(build_head(arch), tokens)``       encoder output (1, T', D), lengths
==========  ===================================================  ========================================

with ``T = S // hop + 1`` and ``T' = ceil(T / subsampling)`` (per stage). Keys spell out
everything that changes the work: the feature, the frame counts, the width, streaming or not
(causal convolutions; a chunk mask in attention), look-ahead, decoder sizes, vocabulary and
emitted tokens. The chunk size itself only changes mask values, not the work, so it is not in
the keys. Weights are random: latency does not depend on their values (the decoding workload
makes sure of that for the decoders).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from supernet.nn.blocks import EncoderLayer
from supernet.nn.config import NetConfig
from supernet.nn.encoder import Encoder
from supernet.nn.frontend import feature_dim, make_features
from supernet.nn.heads import build_head
from supernet.nn.masks import chunk_mask
from supernet.nn.subsampler import subsampled_lengths
from supernet.profiling.decoding import DEFAULT_TOKENS_PER_SECOND, DecodingWorkload, SubnetWithDecoding, tokens_for
from supernet.profiling.lut import Part
from supernet.space import Arch, LayerArch, SearchSpace

__all__ = ["SupernetParts", "load_space"]


def load_space(path: str | Path) -> SearchSpace:
    """A search space from YAML (errors name the file and the field)."""
    return SearchSpace.from_yaml(path)


class SupernetParts:
    """:class:`~supernet.profiling.lut.PartProvider` for the networks of :mod:`supernet.nn`.

    Args:
        space: the search space (for :meth:`space_parts`).
        vocab_size: decoder output classes, blank included.
        ref_seconds: utterance length every part is measured at.
        tokens_per_second: emitted tokens of the decoding workload per second of audio.
        net: fixed hyper-parameters of the networks.
        seed: of the random weights and inputs.
    """

    name = "supernet.nn"

    def __init__(self, space: Any = None, *, vocab_size: int, ref_seconds: float = 4.0,
                 tokens_per_second: float = DEFAULT_TOKENS_PER_SECOND, net: NetConfig | None = None, seed: int = 0) -> None:
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + one token), got {vocab_size}")
        self.space = space
        self.net = net or NetConfig()
        self.vocab_size = vocab_size
        self.ref_seconds = float(ref_seconds)
        self.tokens_per_second = float(tokens_per_second)
        self.seed = seed
        self.samples = int(round(self.ref_seconds * self.net.sample_rate))
        self.frames = self.samples // self.net.hop_length + 1
        self.tokens = tokens_for(self.ref_seconds, self.tokens_per_second)
        self.config = {
            "vocab_size": vocab_size,
            "ref_seconds": self.ref_seconds,
            "tokens_per_second": self.tokens_per_second,
            "net": asdict(self.net),
        }

    @classmethod
    def from_config(cls, space: Any, config: dict[str, Any]) -> "SupernetParts":
        """The provider a table was measured with (``LatencyLUT.provider_config``)."""
        return cls(space, vocab_size=config["vocab_size"], ref_seconds=config["ref_seconds"],
                   tokens_per_second=config["tokens_per_second"], net=NetConfig(**config["net"]))

    # ------------------------------------------------------------------ shapes and inputs
    def enc_frames(self, subsampling: int) -> int:
        """T' of the reference utterance."""
        return int(subsampled_lengths(torch.tensor([self.frames]), subsampling)[0])

    def _randn(self, *shape: int) -> Tensor:
        return torch.randn(*shape, generator=torch.Generator().manual_seed(self.seed))

    def _audio(self) -> tuple[Tensor, Tensor]:
        return 0.1 * self._randn(1, self.samples), torch.tensor([self.samples])

    @staticmethod
    def _stream(head: Arch) -> str:
        return f"stream-la{head.lookahead or 0}" if head.streaming else "full"

    # ------------------------------------------------------------------ parts
    def _features(self, head: Arch) -> Part:
        def build():
            torch.manual_seed(self.seed)  # the learnable front-end's init (weights do not change timing)
            return make_features(head.feature, self.net), self._audio()

        return Part(f"features/{head.feature}/S{self.samples}", build)

    def _encoder_io(self, head: Arch) -> Part:
        f = feature_dim(head.feature, self.net)

        def build():
            torch.manual_seed(self.seed)
            return Encoder(replace(head, layers=()), f, self.net), (self._randn(1, self.frames, f), torch.tensor([self.frames]))

        # The causal subsampler pads differently and a look-ahead shifts the input: both in the key.
        return Part(f"encoder-io/F{f}/T{self.frames}/s{head.subsampling}/d{head.width}/{self._stream(head)}", build)

    def _decoder(self, head: Arch) -> Part:
        t = self.enc_frames(head.subsampling)

        def build():
            torch.manual_seed(self.seed)
            module = DecodingWorkload(build_head(head, self.vocab_size, self.net), self.tokens)
            return module, (self._randn(1, t, head.width), torch.tensor([t]))

        sizes = f"L{head.decoder_layers}/W{head.decoder_width}/" if head.decoder != "ctc" else ""
        return Part(f"decoder/{head.decoder}/{sizes}T{t}/d{head.width}/V{self.vocab_size}/U{self.tokens}", build)

    def head_parts(self, head: Arch) -> list[Part]:
        return [self._features(head), self._encoder_io(head), self._decoder(head)]

    def layer_part(self, layer: LayerArch, head: Arch) -> Part | None:
        if layer.block == "skip":
            return None
        t = self.enc_frames(head.subsampling)

        def build():
            torch.manual_seed(self.seed)
            module = EncoderLayer.from_arch(layer, head.width, head.streaming, self.net, head.chunk)
            attn_mask = chunk_mask(t, head.chunk, torch.device("cpu")) if head.streaming else None
            mask = torch.ones(1, t, dtype=torch.bool)
            return module, (self._randn(1, t, head.width), mask, attn_mask, torch.tensor([t]))

        fields = "/".join(f"{v}" for v in (layer.block, layer.attention, layer.heads, layer.ffn_ratio, layer.kernel) if v is not None)
        mode = "full" if not head.streaming else f"stream{head.chunk}" if self.net.causal_conv == "chunk" else "stream"
        return Part(f"layer/T{t}/d{head.width}/{mode}/{fields}", build)  # (chunk convolutions depend on the chunk)

    def space_parts(self, space: Any = None) -> list[Part]:
        """Every distinct part of the space: each head's parts, and each layer option of each slot
        under every distinct (subsampling, width, streaming) — all a layer's cost depends on."""
        space = space if space is not None else self.space
        if space is None:
            raise ValueError("SupernetParts.space_parts needs a SearchSpace")
        parts: dict[str, Part] = {}
        contexts: dict[tuple, Arch] = {}
        for head in space.heads():
            for p in self.head_parts(head):
                parts.setdefault(p.key, p)
            chunked = head.chunk if self.net.causal_conv == "chunk" else head.streaming
            contexts.setdefault((head.subsampling, head.width, chunked), head)
        for head in contexts.values():
            for i in range(space.num_layers):
                for layer in space.layer_options(i, head.width, head.chunk):
                    p = self.layer_part(layer, head)
                    if p is not None:
                        parts.setdefault(p.key, p)
        return list(parts.values())

    def full_model(self, arch: Arch) -> tuple[nn.Module, tuple[Tensor, Tensor]]:
        """A randomly initialised SubnetModel of ``arch`` with the decoding workload, and the
        reference utterance."""
        from supernet.subnet import SubnetModel

        torch.manual_seed(self.seed)
        model = SubnetModel(arch, self.vocab_size, self.net).eval()
        return self.wrap(model), self._audio()

    def wrap(self, model: nn.Module) -> nn.Module:
        """What the table predicts for a SubnetModel: forward + decoding workload."""
        return SubnetWithDecoding(model, self.tokens_per_second).eval()

    def reference_input(self) -> tuple[Tensor, Tensor]:
        """The reference utterance (1, S) and its length."""
        return self._audio()
