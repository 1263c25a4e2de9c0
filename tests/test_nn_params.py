"""Parameter counts: exact per part, summing to the static model, memoised."""

from __future__ import annotations

import itertools

import torch

from supernet.nn import params
from supernet.nn.blocks import EncoderLayer
from supernet.nn.config import NetConfig
from supernet.nn.params import arch_params, decoder_params, frontend_params, layer_params
from supernet.space import SKIP, Arch, LayerArch
from supernet.subnet import SubnetModel


def test_parts_sum_to_the_static_model():
    net = NetConfig(subsampler_channels=24, learnable_filters=20)
    layers = (LayerArch("conformer", "relpos", 2, 2, 7), LayerArch("cnn", kernel=3), LayerArch("blstm"), SKIP)
    for feature, decoder in itertools.product(("logmel40", "learnable"), ("ctc", "rnnt", "attention")):
        sized = decoder != "ctc"
        arch = Arch(feature, 6, 16, layers, decoder, 2 if sized else None, 8 if sized else None)
        model = SubnetModel(arch, 10, net)
        assert sum(p.numel() for p in model.parameters()) == arch_params(arch, 10, net)
        assert sum(p.numel() for p in model.encoder.stack.layers[1].parameters()) == layer_params(layers[1], 16, net)
        assert sum(p.numel() for p in model.head.parameters()) == decoder_params(
            decoder, arch.decoder_layers, arch.decoder_width, 16, 10, net)


def test_known_counts():
    # conformer at D=8, FFN 2, kernel 3, 2 heads: 2 FFN (LN 16 + 8*16+16 + 16*8+8) + attention (LN 16 + 4 * 72)
    # + conv (LN 16 + 2 * 72 + 8*3+8 + LN 16 + 72) + final LN 16
    ffn = 16 + (8 * 16 + 16) + (16 * 8 + 8)
    attn = 16 + 4 * 72
    conv = 16 + 2 * 72 + (8 * 3 + 8) + 16 + 72
    assert layer_params(LayerArch("conformer", "mha", 2, 2, 3), 8) == 2 * ffn + attn + conv + 16
    assert layer_params(LayerArch("lstm"), 8) == 16 + 4 * (8 * 8 + 8 * 8 + 2 * 8)
    assert layer_params(SKIP, 192) == 0
    assert decoder_params("ctc", None, None, 8, 5) == 8 * 5 + 5
    # mel features have no weights; the learnable front-end adds its filterbank
    net = NetConfig()
    diff = frontend_params("learnable", 4, 96) - frontend_params("logmel80", 4, 96)
    assert diff == net.learnable_filters * net.win_length


def test_counts_are_memoised_and_match_built_layers():
    params.layer_params.cache_clear()
    layer = LayerArch("transformer", "local", 4, 4)
    n = layer_params(layer, 32)
    assert layer_params(layer, 32) == n and params.layer_params.cache_info().hits >= 1
    with torch.device("meta"):
        built = EncoderLayer.from_arch(layer, 32, True, NetConfig())  # streaming does not change the count
    assert n == sum(p.numel() for p in built.parameters())
