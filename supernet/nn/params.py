"""Exact parameter counts of an arch and of its parts.

Counts come from building the static module of each part on the ``meta`` device (shapes only,
no memory) and summing ``numel``, so they cannot drift from the modules themselves. Calls are
memoised: a DP over layers asks once per distinct choice. The parts add up to exactly the
parameter count of the extracted subnet (``supernet.subnet.extract``):

    arch_params = frontend_params + sum(layer_params per slot) + decoder_params

This module is the default cost model of ``supernet.space.SearchSpace`` (``CostModel``).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from supernet.nn.blocks import EncoderLayer
from supernet.nn.config import NetConfig
from supernet.nn.frontend import FrontEnd, feature_dim, frontend_options, make_features
from supernet.nn.heads import head_spec
from supernet.nn.subsampler import Subsampler, subsampler_options
from supernet.space import Arch, LayerArch

__all__ = ["frontend_params", "layer_params", "decoder_params", "arch_params", "count_params"]

_NET = NetConfig()


def count_params(module: nn.Module) -> int:
    """Number of parameters of ``module`` (works on the ``meta`` device)."""
    return sum(p.numel() for p in module.parameters())


@lru_cache(maxsize=None)
def _feature_params(feature: str, net: NetConfig) -> int:
    return count_params(make_features(feature, net))  # torchaudio transforms are not built on meta


@lru_cache(maxsize=None)
def frontend_params(feature: str, subsampling: int, width: int, net: NetConfig = _NET) -> int:
    """Everything of the encoder that is not a layer: learnable features (if any), the
    per-feature projection, the subsampler for ``subsampling`` and the final encoder LayerNorm."""
    with torch.device("meta"):
        parts = [FrontEnd(feature_dim(feature, net), **frontend_options(net)),
                 Subsampler(subsampling, d_model=width, **subsampler_options(net)), nn.LayerNorm(width)]
    return _feature_params(feature, net) + sum(count_params(p) for p in parts)


@lru_cache(maxsize=None)
def layer_params(layer: LayerArch, width: int, net: NetConfig = _NET) -> int:
    """One encoder layer (0 for ``skip``). Streaming does not change the count."""
    if layer.block == "skip":
        return 0
    with torch.device("meta"):
        return count_params(EncoderLayer.from_arch(layer, width, False, net))


@lru_cache(maxsize=None)
def decoder_params(decoder: str, decoder_layers: int | None, decoder_width: int | None, width: int, vocab_size: int,
                   net: NetConfig = _NET) -> int:
    """The decoder head (CTC projection; RNN-T predictor + joiner; attention decoder + its CTC branch)."""
    cls, kw = head_spec(decoder, decoder_layers, decoder_width, width, vocab_size, net)
    with torch.device("meta"):
        return count_params(cls(**kw))


def arch_params(arch: Arch, vocab_size: int, net: NetConfig = _NET) -> int:
    """Parameters of the whole subnet of ``arch``: the sum of its parts."""
    return (
        frontend_params(arch.feature, arch.subsampling, arch.width, net)
        + sum(layer_params(layer, arch.width, net) for layer in arch.layers)
        + decoder_params(arch.decoder, arch.decoder_layers, arch.decoder_width, arch.width, vocab_size, net)
    )
