"""Extracted subnets: plain static models that run, save and load without the supernet.

:func:`extract` copies one arch's weights out of a :class:`~supernet.model.SpeechSupernet` into a
:class:`SubnetModel` made of ordinary layers (``nn.Linear``, ``nn.Conv1d``, ``nn.LayerNorm``,
``nn.LSTM`` ...). The supernet's discrete forward runs this very module class on sliced weights,
so the outputs agree. :func:`save_subnet` / :func:`load_subnet` store the arch, vocabulary size,
fixed hyper-parameters and weights in one file; loading rebuilds the model from the arch alone
and never imports ``supernet.model``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from supernet.nn.config import NetConfig
from supernet.nn.encoder import Encoder
from supernet.nn.frontend import feature_dim, make_features
from supernet.nn.heads import build_head
from supernet.space import Arch
from supernet.utils import atomic_path

if TYPE_CHECKING:
    from supernet.model import SpeechSupernet

__all__ = ["SubnetModel", "extract", "save_subnet", "load_subnet", "FORMAT"]

FORMAT = "supernet-subnet/1"


class SubnetModel(nn.Module):
    """Static speech model of one arch: features -> encoder -> decoder head.

    Args:
        arch: the architecture.
        vocab_size: decoder output classes, blank (0) included.
        net: fixed hyper-parameters (those the supernet was built with).

    Shapes:
        forward(audio (B, S), audio_lengths (B,)) -> enc (B, T', D) (padded frames 0), enc_lengths (B,)

    The parts are ``features`` (waveform -> (B, T, F), no weights except the learnable front-end),
    ``encoder`` (:class:`~supernet.nn.encoder.Encoder`, features -> (B, T', D)) and ``head``; an
    exported model would take features (``encoder``) and leave feature extraction outside.
    """

    def __init__(self, arch: Arch, vocab_size: int, net: NetConfig | None = None) -> None:
        super().__init__()
        net = net or NetConfig()
        self.arch_json = arch.to_json()
        self.vocab_size = vocab_size
        self.net = net
        self.features = make_features(arch.feature, net)
        self.encoder = Encoder(arch, feature_dim(arch.feature, net), net)
        self.head = build_head(arch, vocab_size, net)

    @property
    def arch(self) -> Arch:
        return Arch.from_json(self.arch_json)

    def forward(self, audio: Tensor, audio_lengths: Tensor) -> tuple[Tensor, Tensor]:
        feats, feat_lengths = self.features(audio, audio_lengths)
        return self.encoder(feats, feat_lengths)

    def head_outputs(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Any:
        """What the head computes for the loss (e.g. CTC log-probs (B, T', V))."""
        return self.head(enc, enc_lengths, targets, target_lengths)

    def loss(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """Training loss of the head on the encoder output; targets (B, U) zero-padded."""
        return self.head.loss(self.head(enc, enc_lengths, targets, target_lengths), enc_lengths, targets, target_lengths)

    @torch.no_grad()
    def decode(self, enc: Tensor, enc_lengths: Tensor) -> list[list[int]]:
        """Greedy token ids per utterance."""
        return self.head.decode(enc, enc_lengths)

    @torch.no_grad()
    def transcribe(self, audio: Tensor, audio_lengths: Tensor) -> list[list[int]]:
        """Waveforms -> greedy token ids per utterance."""
        return self.decode(*self(audio, audio_lengths))

    def extra_repr(self) -> str:
        return f"arch={self.arch.describe()!r}, vocab_size={self.vocab_size}"


def extract(supernet: "SpeechSupernet", arch: Arch) -> SubnetModel:
    """The static model of ``arch`` with the supernet's weights copied in.

    The result holds no reference to the supernet, is on the supernet's device and in its
    train/eval mode, and its ``forward`` / head outputs equal the supernet's discrete forward.
    """
    state = supernet.static_state_dict(arch)
    device = next(iter(state.values())).device
    with torch.device(device):
        model = SubnetModel(arch, supernet.vocab_size, supernet.config.net)
    model.load_state_dict(state, strict=True)
    return model.train(supernet.training)


def save_subnet(model: SubnetModel, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (arch, vocab size, NetConfig, weights, ``extra``)."""
    payload = {
        "format": FORMAT,
        "arch": model.arch.to_dict(),
        "arch_id": model.arch.id,
        "vocab_size": model.vocab_size,
        "net": asdict(model.net),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_subnet(path: str | Path, map_location: str | torch.device = "cpu") -> SubnetModel:
    """Rebuild a saved subnet from its arch and load its weights; returned in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such subnet file (write one with supernet.subnet.save_subnet / `supernet extract`)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which file
        raise ValueError(f"{path}: not a readable subnet file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: format {found!r} is not {FORMAT!r}; write the file with supernet.subnet.save_subnet")
    model = SubnetModel(Arch.from_dict(payload["arch"]), int(payload["vocab_size"]), NetConfig(**payload["net"]))
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.to(map_location).eval()
