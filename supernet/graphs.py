"""Exportable graphs of an extracted subnet: the conversion pass that strips training-only parts.

A :class:`~supernet.subnet.SubnetModel` computes losses and decodes with Python loops; neither
belongs in an exported graph. :func:`build_graphs` cuts it into the small tensor-in /
tensor-out modules that TorchScript and ONNX export, and leaves search (greedy decoding) to host
code (``supernet.runtime``), as icefall's export does:

- ``features`` (only for the ``learnable`` front-end, which has weights): audio (B, S),
  audio_lengths (B,) -> feats (B, T, F), feat_lengths (B,). Fixed front-ends (log-mel, MFCC) stay
  outside every graph: the host computes them from the feature config in the metadata.
- ``encoder``: feats (B, T, F), feat_lengths (B,) -> what the decoder needs, per head:

  - ctc: log_probs (B, T', V), enc_lengths (B,)
  - rnnt: enc_proj (B, T', W) (the joiner's encoder projection, applied once per frame here),
    enc_lengths (B,)
  - attention: enc (B, T', D), enc_lengths (B,), ctc_log_probs (B, T', V) (the CTC branch, used
    for streaming partial results)

- ``predictor`` (rnnt): tokens (B, 1) int64, h (L, B, W), c (L, B, W) -> g (B, W) (projected),
  h, c: one step of the LSTM predictor.
- ``joiner`` (rnnt): enc_proj (B, W), g (B, W) -> logits (B, V).
- ``decoder`` (attention): ys (B, U) int64 (``<sos>`` first), enc (B, T', D), enc_lengths (B,)
  -> logits (B, V + 1) of the next token. Every step re-reads the whole prefix (no KV cache):
  simple, exact, and cheap for the short transcripts here.

Every graph takes and returns plain tensors with batch and time (or token) axes dynamic.
:data:`GRAPH_IO` names the inputs and outputs; :func:`example_inputs` makes inputs of any size.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernet.nn.masks import lengths_to_mask, sinusoid

__all__ = ["FeatureGraph", "CTCEncoderGraph", "TransducerEncoderGraph", "AttentionEncoderGraph", "PredictorGraph",
           "JoinerGraph", "DecoderStepGraph", "build_graphs", "graph_names", "GRAPH_IO", "DYNAMIC_AXES",
           "example_inputs", "io_names"]

# name -> (input names, output names)
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "features": (("audio", "audio_lengths"), ("feats", "feat_lengths")),
    "encoder/ctc": (("feats", "feat_lengths"), ("log_probs", "enc_lengths")),
    "encoder/rnnt": (("feats", "feat_lengths"), ("enc_proj", "enc_lengths")),
    "encoder/attention": (("feats", "feat_lengths"), ("enc", "enc_lengths", "ctc_log_probs")),
    "predictor": (("tokens", "h", "c"), ("g", "h_out", "c_out")),
    "joiner": (("enc_proj", "g"), ("logits",)),
    "decoder": (("ys", "enc", "enc_lengths"), ("logits",)),
}

# Dynamic axes of every tensor name (batch "B", audio "S", frames "T", encoder frames "T_enc", tokens "U").
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    "audio": {0: "B", 1: "S"}, "audio_lengths": {0: "B"},
    "feats": {0: "B", 1: "T"}, "feat_lengths": {0: "B"},
    "log_probs": {0: "B", 1: "T_enc"}, "enc_lengths": {0: "B"}, "enc_proj": {0: "B", 1: "T_enc"},
    "enc": {0: "B", 1: "T_enc"}, "ctc_log_probs": {0: "B", 1: "T_enc"},
    "tokens": {0: "B"}, "h": {1: "B"}, "c": {1: "B"}, "g": {0: "B"}, "h_out": {1: "B"}, "c_out": {1: "B"},
    "logits": {0: "B"}, "ys": {0: "B", 1: "U"},
}


class FeatureGraph(nn.Module):
    """The learnable front-end (a weighted layer on the waveform).

    Shapes:
        forward(audio (B, S), audio_lengths (B,)) -> feats (B, T, F), feat_lengths (B,)
    """

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, audio: Tensor, audio_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        return self.features(audio, audio_lengths)


class CTCEncoderGraph(nn.Module):
    """Encoder + CTC projection.

    Shapes:
        forward(feats (B, T, F), feat_lengths (B,)) -> log_probs (B, T', V), enc_lengths (B,)
    """

    def __init__(self, encoder: nn.Module, proj: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.proj = proj

    def forward(self, feats: Tensor, feat_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        enc, lengths = self.encoder(feats, feat_lengths)
        return F.log_softmax(self.proj(enc), dim=-1), lengths


class TransducerEncoderGraph(nn.Module):
    """Encoder + the joiner's encoder projection.

    Shapes:
        forward(feats (B, T, F), feat_lengths (B,)) -> enc_proj (B, T', W), enc_lengths (B,)
    """

    def __init__(self, encoder: nn.Module, enc_proj: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.enc_proj = enc_proj

    def forward(self, feats: Tensor, feat_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        enc, lengths = self.encoder(feats, feat_lengths)
        return self.enc_proj(enc), lengths


class AttentionEncoderGraph(nn.Module):
    """Encoder + the attention head's CTC branch.

    Shapes:
        forward(feats (B, T, F), feat_lengths (B,)) -> enc (B, T', D), enc_lengths (B,),
        ctc_log_probs (B, T', V)
    """

    def __init__(self, encoder: nn.Module, ctc: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.ctc = ctc

    def forward(self, feats: Tensor, feat_lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        enc, lengths = self.encoder(feats, feat_lengths)
        return enc, lengths, F.log_softmax(self.ctc(enc), dim=-1)


class PredictorGraph(nn.Module):
    """One step of the RNN-T predictor: embed the last token, advance the LSTM, project.

    Shapes:
        forward(tokens (B, 1) int64, h (L, B, W), c (L, B, W)) -> g (B, W), h (L, B, W), c (L, B, W)
    """

    def __init__(self, embed: nn.Embedding, lstm: nn.LSTM, pred_proj: nn.Linear) -> None:
        super().__init__()
        self.embed = embed
        self.lstm = lstm
        self.pred_proj = pred_proj

    def forward(self, tokens: Tensor, h: Tensor, c: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        g, (h, c) = self.lstm(self.embed(tokens), (h, c))
        return self.pred_proj(g[:, 0]), h, c


class JoinerGraph(nn.Module):
    """RNN-T joiner on one (frame, token) pair per utterance: ``out(tanh(e + g))``.

    Shapes:
        forward(enc_proj (B, W), g (B, W)) -> logits (B, V)
    """

    def __init__(self, out: nn.Linear) -> None:
        super().__init__()
        self.out = out

    def forward(self, enc_proj: Tensor, g: Tensor) -> Tensor:
        return self.out(torch.tanh(enc_proj + g))


class DecoderStepGraph(nn.Module):
    """Attention decoder: logits of the next token given the tokens so far.

    Computes what ``AttentionHead.decoder_logits(ys, full lengths, enc, enc_lengths)[:, -1]`` does.

    Shapes:
        forward(ys (B, U) int64, enc (B, T', D), enc_lengths (B,)) -> logits (B, V + 1)
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.width = int(head.width)
        self.embed = head.embed
        self.layers = head.layers
        self.norm = head.norm
        self.out = head.out

    def forward(self, ys: Tensor, enc: Tensor, enc_lengths: Tensor) -> Tensor:
        B, U = ys.shape
        x = self.embed(ys) + sinusoid(torch.arange(U, device=ys.device), self.width).to(enc.dtype)[None]
        causal = torch.ones(U, U, dtype=torch.bool, device=ys.device).tril()[None, None]
        cross = lengths_to_mask(enc_lengths, enc.size(1))[:, None, None, :]
        ys_lengths = torch.full((B,), U, dtype=torch.long, device=ys.device)
        y_mask = lengths_to_mask(ys_lengths, U)
        for layer in self.layers:
            x = layer(x, enc, causal, cross, y_mask, ys_lengths)
        return self.out(self.norm(x))[:, -1]


def graph_names(decoder: str, feature: str) -> list[str]:
    """Graphs exported for a decoder type and front-end, in export order."""
    names = ["features"] if feature == "learnable" else []
    names.append("encoder")
    names += {"ctc": [], "rnnt": ["predictor", "joiner"], "attention": ["decoder"]}[decoder]
    return names


def io_names(name: str, decoder: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input names, output names) of graph ``name``."""
    return GRAPH_IO[f"encoder/{decoder}" if name == "encoder" else name]


def build_graphs(model: nn.Module) -> dict[str, nn.Module]:
    """The exportable graphs of a :class:`~supernet.subnet.SubnetModel`, sharing its weights.

    Returns:
        {name: module in eval mode}, names as :func:`graph_names`.
    """
    arch = model.arch
    head = model.head
    graphs: dict[str, nn.Module] = {}
    if arch.feature == "learnable":
        graphs["features"] = FeatureGraph(model.features)
    if arch.decoder == "ctc":
        graphs["encoder"] = CTCEncoderGraph(model.encoder, head.proj)
    elif arch.decoder == "rnnt":
        graphs["encoder"] = TransducerEncoderGraph(model.encoder, head.enc_proj)
        graphs["predictor"] = PredictorGraph(head.embed, head.predictor, head.pred_proj)
        graphs["joiner"] = JoinerGraph(head.out)
    elif arch.decoder == "attention":
        graphs["encoder"] = AttentionEncoderGraph(model.encoder, head.ctc)
        graphs["decoder"] = DecoderStepGraph(head)
    else:
        raise ValueError(f"decoder {arch.decoder!r} has no export graphs; known: ctc, rnnt, attention")
    return {k: g.eval() for k, g in graphs.items()}


def example_inputs(model: nn.Module, name: str, lengths: list[int], *,
                   generator: torch.Generator | None = None, tokens: int = 3) -> tuple[Tensor, ...]:
    """Random inputs of graph ``name`` for a batch of utterances of ``lengths`` audio samples.

    Args:
        model: the SubnetModel (sizes are read from it).
        name: graph name.
        lengths: audio samples per utterance (B = len(lengths)); the padded length is the max.
        generator: randomness of the values.
        tokens: U of the decoder graph's ``ys``.
    """
    g = generator or torch.Generator().manual_seed(0)
    arch, net = model.arch, model.net
    B, S = len(lengths), max(lengths)
    audio_lengths = torch.tensor(lengths, dtype=torch.long)
    audio = 0.1 * torch.randn(B, S, generator=g) * lengths_to_mask(audio_lengths, S)
    if name == "features":
        return audio, audio_lengths
    with torch.no_grad():
        feats, feat_lengths = model.features(audio, audio_lengths)
    if name == "encoder":
        return feats, feat_lengths
    with torch.no_grad():
        enc, enc_lengths = model.encoder(feats, feat_lengths)
    head = model.head
    if name == "predictor":
        L, W = head.predictor.num_layers, head.predictor.hidden_size
        tok = torch.randint(0, model.vocab_size, (B, 1), generator=g)
        return tok, 0.5 * torch.randn(L, B, W, generator=g), 0.5 * torch.randn(L, B, W, generator=g)
    if name == "joiner":
        W = head.out.in_features
        return torch.randn(B, W, generator=g), torch.randn(B, W, generator=g)
    if name == "decoder":
        ys = torch.randint(1, model.vocab_size + 1, (B, tokens), generator=g)
        ys[:, 0] = head.eos
        return ys, enc, enc_lengths
    raise ValueError(f"unknown graph {name!r}; known: features, encoder, predictor, joiner, decoder")
