"""SpeechSupernet: one weight-sharing network holding every architecture of a search space.

Structure (every sized module is an :class:`~supernet.nn.elastic.Elastic` at its largest size):

    features[feature]      waveform -> frames (B, T, F)      (log-mel / MFCC / learnable)
    frontends[feature]     LayerNorm + Linear(F, C)
    subsamplers[factor]    conv subsampling x4/x6/x8 -> (B, T', D)
    layers[i]              MixedLayer: every block type x attention type, elastic sizes
    norm                   final LayerNorm
    heads[decoder]         CTC / RNN-T / attention decoder
    alphas                 architecture logits, one vector per decision (DARTS / GDAS)

Three ways to run ``forward(audio, audio_lengths, arch, mode=...)``:

- ``"discrete"`` (default): exactly the path of ``arch``. The static encoder of ``arch`` (the
  module ``supernet.subnet.extract`` returns, built shape-only on the ``meta`` device and cached)
  runs on slices of the supernet's weights via ``torch.func.functional_call``: only that path's
  weights are touched, and the extracted model computes the same function by construction.
- ``"relaxed"`` (DARTS): every candidate runs and outputs are summed with softmax(alpha) weights.
- ``"gumbel"`` (GDAS): one hard Gumbel-softmax sample per decision (``tau``, ``generator``); only
  the sampled candidates run, scaled by a straight-through one-hot so alpha gets gradients.

Decisions relaxed by alpha: the front-end feature, and per layer slot the block type (``skip``
included where the slot may be skipped), attention type, heads, FFN ratio and kernel. Fixed by
the ``arch`` argument in relaxed/gumbel modes (its other fields are ignored): subsampling and
width (candidates of different frame rates or widths cannot be summed), chunk and look-ahead
(a deployment choice, not a learned one) and the decoder (one loss per forward: pass the same
``arch`` to :meth:`SpeechSupernet.loss`). In a streaming ``arch``, blocks that need the whole
utterance (blstm) are left out of the mixture, and only heads that divide the width take part.
:meth:`SpeechSupernet.derive_argmax` turns alpha into an Arch; a ``skip`` chosen in slot i makes
every later slot ``skip`` too (skips are a suffix).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from supernet.data.features import num_frames
from supernet.nn.blocks import CAUSAL_BLOCKS
from supernet.nn.config import NetConfig
from supernet.nn.elastic import Elastic
from supernet.nn.encoder import Encoder
from supernet.nn.frontend import FrontEnd, feature_dim, frontend_options, make_features
from supernet.nn.heads import head_spec
from supernet.nn.masks import encoder_masks
from supernet.nn.mixed import Decision, MixedLayer, Mixture
from supernet.nn.subsampler import Subsampler, subsampler_options
from supernet.space import (BLOCK_FIELDS, BLOCKS, DECODER_FIELDS, DECODERS, FEATURES, LAYER_FIELDS, SUBSAMPLINGS,
                            Arch, LayerArch, LayerChoices)

__all__ = ["SupernetConfig", "SpeechSupernet", "Mixture", "Decision", "uniform_layers"]

Mode = Literal["discrete", "relaxed", "gumbel"]
_SKELETON_CACHE = 128  # encoder skeletons kept (shape-only modules; a few hundred KB each)


def uniform_layers(num_layers: int = 8, min_depth: int = 2, blocks: tuple[str, ...] = BLOCKS[:-1],
                   attentions: tuple[str, ...] = ("mha", "relpos", "local", "linear"), heads: tuple[int, ...] = (2, 4),
                   ffn_ratios: tuple[int, ...] = (2, 4), kernels: tuple[int, ...] = (7, 15, 31)) -> tuple[LayerChoices, ...]:
    """The same choices in every slot; slots from ``min_depth`` on may be skipped."""
    return tuple(
        LayerChoices(block=tuple(blocks) + (("skip",) if i >= min_depth else ()), attention=tuple(attentions),
                     heads=tuple(heads), ffn_ratio=tuple(ffn_ratios), kernel=tuple(kernels))
        for i in range(num_layers)
    )


@dataclass
class SupernetConfig:
    """Candidates the supernet holds weights for, and its fixed hyper-parameters.

    Args:
        features: front-ends (``supernet.space.FEATURES``).
        subsamplings: time reductions (4, 6, 8).
        widths: encoder widths; weights are stored at the largest.
        layers: one :class:`~supernet.space.LayerChoices` per slot (``block`` lists ``skip`` where
            the slot may be skipped); see :func:`uniform_layers`.
        decoders: decoder types.
        decoder_layers, decoder_widths: RNN-T predictor / attention decoder sizes.
        net: fixed hyper-parameters (:class:`~supernet.nn.config.NetConfig`).
    """

    features: tuple[str, ...] = FEATURES
    subsamplings: tuple[int, ...] = SUBSAMPLINGS
    widths: tuple[int, ...] = (96, 144, 192)
    layers: tuple[LayerChoices, ...] = field(default_factory=uniform_layers)
    decoders: tuple[str, ...] = DECODERS
    decoder_layers: tuple[int, ...] = (1, 2)
    decoder_widths: tuple[int, ...] = (128, 256)
    net: NetConfig = field(default_factory=NetConfig)

    def __post_init__(self) -> None:
        def check(name: str, values: tuple, allowed: tuple | None = None) -> None:
            if not values:
                raise ValueError(f"SupernetConfig.{name} is empty; give at least one candidate")
            bad = [v for v in values if allowed is not None and v not in allowed]
            if bad:
                raise ValueError(f"SupernetConfig.{name}: {bad[0]!r} is unknown; allowed values: {list(allowed)}")

        check("features", self.features, FEATURES)
        check("subsamplings", self.subsamplings, SUBSAMPLINGS)
        check("widths", self.widths)
        check("layers", self.layers)
        check("decoders", self.decoders, DECODERS)
        if any(d != "ctc" for d in self.decoders):
            check("decoder_layers", self.decoder_layers)
            check("decoder_widths", self.decoder_widths)
        for i, ch in enumerate(self.layers):
            check(f"layers[{i}].block", ch.block, BLOCKS)
            for f in LAYER_FIELDS:
                if any(f in BLOCK_FIELDS[b] for b in ch.block) and not getattr(ch, f):
                    raise ValueError(f"SupernetConfig.layers[{i}].{f} is empty but block(s) {ch.block} need it")
            if any(k % 2 == 0 for k in ch.kernel):
                raise ValueError(f"SupernetConfig.layers[{i}].kernel must be odd, got {ch.kernel}")
        if any(w % 2 for w in self.widths) and any("blstm" in ch.block for ch in self.layers):
            raise ValueError(f"SupernetConfig.widths {self.widths}: blstm needs even widths (D/2 per direction)")

    @classmethod
    def from_space(cls, space: Any, net: NetConfig | None = None) -> "SupernetConfig":
        """Candidates of a :class:`~supernet.space.SearchSpace` (every arch of it fits)."""
        spec = space.spec
        decs = spec.decoders  # (type, layers, width)
        return cls(
            features=tuple(spec.features),
            subsamplings=tuple(spec.subsamplings),
            widths=tuple(spec.widths),
            layers=tuple(space.choices_for(i) for i in range(space.num_layers)),
            decoders=tuple(dict.fromkeys(d for d, _, _ in decs)),
            decoder_layers=tuple(sorted({n for _, n, _ in decs if n is not None})),
            decoder_widths=tuple(sorted({w for _, _, w in decs if w is not None})),
            net=net or NetConfig(),
        )

    def decisions(self) -> dict[str, tuple]:
        """Candidate values of every relaxable decision, by readable name (e.g. ``layers.3.block``)."""
        out: dict[str, tuple] = {"feature": tuple(self.features)}
        for i, ch in enumerate(self.layers):
            out[f"layers.{i}.block"] = tuple(ch.block)
            for f in LAYER_FIELDS:
                if getattr(ch, f) and any(f in BLOCK_FIELDS[b] for b in ch.block):
                    out[f"layers.{i}.{f}"] = tuple(getattr(ch, f))
        return out


def _alpha_key(name: str) -> str:
    return name.replace(".", "__")  # parameter names cannot contain dots


class SpeechSupernet(nn.Module):
    """Weight-sharing speech supernet (see the module docstring).

    Args:
        config: candidates and fixed hyper-parameters.
        vocab_size: output classes of the decoder heads, CTC blank (0) included.

    Example:
        >>> space = SearchSpace.from_yaml("configs/space/tiny.yaml")
        >>> net = SpeechSupernet.from_space(space, vocab_size=12)
        >>> arch = space.sample(random.Random(0))
        >>> enc, lengths = net(batch["audio"], batch["audio_lengths"], arch)
        >>> loss = net.loss(enc, lengths, batch["targets"], batch["target_lengths"], arch)
    """

    def __init__(self, config: SupernetConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        net = self.net = config.net
        width = max(config.widths)
        self.features = nn.ModuleDict({f: make_features(f, net) for f in config.features})
        self.frontends = nn.ModuleDict(
            {f: Elastic(FrontEnd, feat_dim=feature_dim(f, net), **frontend_options(net)) for f in config.features})
        self.subsamplers = nn.ModuleDict({
            str(s): Elastic(Subsampler, factor=s, d_model=width, causal=False, lookahead=0, **subsampler_options(net))
            for s in config.subsamplings
        })
        self.layers = nn.ModuleList(MixedLayer(ch, width, net) for ch in config.layers)
        self.norm = Elastic(nn.LayerNorm, normalized_shape=width)
        self.heads = nn.ModuleDict()
        for d in config.decoders:
            cls, kw = head_spec(d, max(config.decoder_layers, default=None), max(config.decoder_widths, default=None),
                                width, vocab_size, net)
            self.heads[d] = Elastic(cls, **kw)
        self._decisions = config.decisions()
        self.alphas = nn.ParameterDict({
            _alpha_key(name): nn.Parameter(torch.zeros(len(values)))
            for name, values in self._decisions.items() if len(values) > 1
        })
        self._skeletons: OrderedDict[Arch, Encoder] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_skeletons"] = OrderedDict()  # a cache: not pickled or copied
        return state

    @classmethod
    def from_space(cls, space: Any, vocab_size: int, net: NetConfig | None = None) -> "SpeechSupernet":
        """A supernet holding every arch of a :class:`~supernet.space.SearchSpace`."""
        return cls(SupernetConfig.from_space(space, net), vocab_size)

    # ------------------------------------------------------------------ parameters
    def arch_parameters(self) -> list[nn.Parameter]:
        """The alpha vectors (one per decision with more than one candidate)."""
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an alpha."""
        alphas = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in alphas]

    def alpha_distributions(self) -> dict[str, dict[Any, float]]:
        """softmax(alpha) per decision, e.g. ``{"layers.0.block": {"conformer": 0.4, ...}}``."""
        out = {}
        for name, values in self._decisions.items():
            key = _alpha_key(name)
            if key in self.alphas:
                probs = F.softmax(self.alphas[key].detach().float(), dim=0).tolist()
                out[name] = dict(zip(values, probs))
        return out

    # ------------------------------------------------------------------ archs
    def largest_arch(self) -> Arch:
        """Widest, least subsampled arch with the first block type listed and the largest sizes in
        every slot, the first feature and decoder (largest decoder size). Also the default
        ``arch`` of relaxed/gumbel forwards (which use only its fixed fields)."""
        c = self.config
        layers = []
        for ch in c.layers:
            block = next((b for b in ch.block if b != "skip"), "skip")
            big = {"attention": ch.attention[0] if ch.attention else None, "heads": _max_dividing(ch.heads, max(c.widths)),
                   "ffn_ratio": max(ch.ffn_ratio, default=None), "kernel": max(ch.kernel, default=None)}
            layers.append(LayerArch(block, **{f: big[f] for f in BLOCK_FIELDS[block]}))
        dec = c.decoders[0]
        sized = "decoder_layers" in DECODER_FIELDS[dec]
        return Arch(c.features[0], min(c.subsamplings), max(c.widths), tuple(layers), dec,
                    max(c.decoder_layers) if sized else None, max(c.decoder_widths) if sized else None)

    def check_arch(self, arch: Arch) -> None:
        """Raise ValueError naming the first field of ``arch`` the supernet has no weights for."""
        c = self.config

        def fail(field: str, value: Any, allowed: Any) -> None:
            raise ValueError(f"arch {arch.id}: {field} = {value!r} is not a candidate of this supernet; allowed values: "
                             f"{list(allowed)} (build the supernet from a space that contains the arch)")

        for name, value, allowed in (("feature", arch.feature, c.features), ("subsampling", arch.subsampling, c.subsamplings),
                                     ("width", arch.width, c.widths), ("decoder", arch.decoder, c.decoders)):
            if value not in allowed:
                fail(name, value, allowed)
        if "decoder_layers" in DECODER_FIELDS[arch.decoder]:
            if arch.decoder_layers not in c.decoder_layers:
                fail("decoder_layers", arch.decoder_layers, c.decoder_layers)
            if arch.decoder_width not in c.decoder_widths:
                fail("decoder_width", arch.decoder_width, c.decoder_widths)
        if arch.depth > len(c.layers):
            fail("depth", arch.depth, range(len(c.layers) + 1))
        for i, layer in enumerate(arch.layers[: arch.depth]):
            ch = c.layers[i]
            if layer.block not in ch.block:
                fail(f"layers[{i}].block", layer.block, ch.block)
            if arch.streaming and layer.block not in CAUSAL_BLOCKS:
                fail(f"layers[{i}].block (streaming, chunk {arch.chunk})", layer.block, [b for b in ch.block if b in CAUSAL_BLOCKS])
            for f in BLOCK_FIELDS[layer.block]:
                if getattr(layer, f) not in getattr(ch, f):
                    fail(f"layers[{i}].{f}", getattr(layer, f), getattr(ch, f))
            if layer.heads is not None and arch.width % layer.heads:
                fail(f"layers[{i}].heads (must divide width {arch.width})", layer.heads,
                     [h for h in ch.heads if arch.width % h == 0])

    # ------------------------------------------------------------------ discrete path
    def _encoder_skeleton(self, arch: Arch) -> Encoder:
        key = replace(arch, decoder="ctc", decoder_layers=None, decoder_width=None)  # encoder fields only
        sk = self._skeletons.get(key)
        if sk is None:
            with torch.device("meta"):
                sk = Encoder(arch, feature_dim(arch.feature, self.net), self.net)
            self._skeletons[key] = sk
            if len(self._skeletons) > _SKELETON_CACHE:
                self._skeletons.popitem(last=False)
        else:
            self._skeletons.move_to_end(key)
        return sk

    def _encoder_plan(self, arch: Arch) -> list[tuple[str, Elastic]]:
        plan = [("frontend", self.frontends[arch.feature]), ("subsampler", self.subsamplers[str(arch.subsampling)])]
        for i, layer in enumerate(arch.layers[: arch.depth]):
            plan += self.layers[i].plan(layer, f"stack.layers.{i}")
        plan.append(("stack.norm", self.norm))
        return plan

    def _encoder_state(self, arch: Arch, skeleton: nn.Module) -> dict[str, Tensor]:
        state: dict[str, Tensor] = {}
        for prefix, elastic in self._encoder_plan(arch):
            for k, v in elastic.sliced(skeleton.get_submodule(prefix)).items():
                state[f"{prefix}.{k}"] = v
        return state

    def _head_choice(self, arch: Arch) -> dict[str, Any]:
        return head_spec(arch.decoder, arch.decoder_layers, arch.decoder_width, arch.width, self.vocab_size, self.net)[1]

    def static_state_dict(self, arch: Arch) -> dict[str, Tensor]:
        """State dict of ``arch``'s static model (``supernet.subnet.SubnetModel``): copies."""
        self.check_arch(arch)
        out = {f"features.{k}": v for k, v in self.features[arch.feature].state_dict().items()}
        skeleton = self._encoder_skeleton(arch)
        out.update({f"encoder.{k}": v for k, v in self._encoder_state(arch, skeleton).items()})
        head = self.heads[arch.decoder]
        out.update({f"head.{k}": v for k, v in head.sliced(head.skeleton(self._head_choice(arch))).items()})
        return {k: v.detach().clone() for k, v in out.items()}

    def load_static_state_dict(self, arch: Arch, state_dict: Mapping[str, Tensor]) -> None:
        """Write the weights of ``arch``'s static model into the supernet (inverse of extraction).

        For warm starts and progressive shrinking: train the largest path as an ordinary
        :class:`~supernet.subnet.SubnetModel`, then write it back; smaller paths start from its
        slices. Weights outside ``arch``'s slices are left as they are.

        Args:
            arch: the architecture of ``state_dict``.
            state_dict: ``SubnetModel(arch, ...).state_dict()`` (keys ``features.``, ``encoder.``,
                ``head.``).
        """
        self.check_arch(arch)
        expected = set(self.static_state_dict(arch))
        if set(state_dict) != expected:
            diff = sorted(set(state_dict) ^ expected)
            raise ValueError(f"state_dict does not match arch {arch.id} ({arch.describe()}): "
                             f"missing or unexpected keys {diff[:5]}")

        def part(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}

        self.features[arch.feature].load_state_dict(part("features."))
        skeleton = self._encoder_skeleton(arch)
        for prefix, elastic in self._encoder_plan(arch):
            elastic.load_sliced(skeleton.get_submodule(prefix), part(f"encoder.{prefix}."))
        head = self.heads[arch.decoder]
        head.load_sliced(head.skeleton(self._head_choice(arch)), part("head."))

    # ------------------------------------------------------------------ forward
    def forward(self, audio: Tensor, audio_lengths: Tensor, arch: Optional[Arch] = None, *, mode: Mode = "discrete",
                tau: float = 1.0, generator: Optional[torch.Generator] = None, mixture: Optional[Mixture] = None,
                augment: Optional[Callable[[Tensor, Tensor], Tensor]] = None) -> tuple[Tensor, Tensor]:
        """Encode a batch of waveforms.

        Args:
            audio: (B, S) float32 at the configured sample rate, zero-padded.
            audio_lengths: (B,) samples.
            arch: discrete mode: the path to run (required). Relaxed/gumbel: supplies the fixed
                fields (subsampling, width, chunk, look-ahead); default :meth:`largest_arch`.
            mode: "discrete", "relaxed" (DARTS) or "gumbel" (GDAS).
            tau: Gumbel-softmax temperature (gumbel mode).
            generator: source of the Gumbel noise (required in gumbel mode).
            mixture: relaxed/gumbel: use these decisions instead of drawing new ones (e.g. a
                :meth:`sample_mixture` result whose ``arch()`` you also log).
            augment: optional ``f(feats (B, T, F), feat_lengths) -> feats`` (e.g. SpecAugment),
                applied to the features before the encoder.

        Returns:
            enc (B, T', D) with padded frames 0, enc_lengths (B,).
        """
        if mode == "discrete":
            if arch is None:
                raise ValueError("discrete forward needs an arch (or use mode='relaxed' / 'gumbel')")
            self.check_arch(arch)
            feats, feat_lengths = self.features[arch.feature](audio, audio_lengths)
            if augment is not None:
                feats = augment(feats, feat_lengths)
            skeleton = self._encoder_skeleton(arch)
            if skeleton.training != self.training:
                skeleton.train(self.training)
            return functional_call(skeleton, self._encoder_state(arch, skeleton), (feats, feat_lengths), strict=True)
        if mode not in ("relaxed", "gumbel"):
            raise ValueError(f"mode {mode!r} is unknown; allowed values: discrete, relaxed, gumbel")
        base = arch if arch is not None else self.largest_arch()
        if mixture is None:
            mixture = self.sample_mixture(mode, base, tau=tau, generator=generator)
        return self._mixed_forward(audio, audio_lengths, base, mixture, augment)

    def _mixed_forward(self, audio: Tensor, audio_lengths: Tensor, base: Arch, mixture: Mixture,
                       augment: Optional[Callable[[Tensor, Tensor], Tensor]]) -> tuple[Tensor, Tensor]:
        width, causal = base.width, base.streaming

        def front(feature: str) -> Tensor:
            feats, feat_lengths = self.features[feature](audio, audio_lengths)
            if augment is not None:
                feats = augment(feats, feat_lengths)
            return self.frontends[feature](None, feats)

        x = mixture.decisions["feature"].mix(front)  # every front-end has the same frames
        feat_lengths = num_frames(audio_lengths, self.net.hop_length).clamp(max=x.size(1))
        sub = {"d_model": width, "causal": self.net.causal(causal), "lookahead": base.lookahead or 0}
        x, lengths = self.subsamplers[str(base.subsampling)](sub, x, feat_lengths)
        mask, attn_mask = encoder_masks(lengths, x.size(1), base.chunk)
        for i, slot in enumerate(self.layers):
            x = slot(x, mask, attn_mask, lengths, mixture.layer(i), width, causal, base.chunk)
        x = self.norm({"normalized_shape": width}, x)
        return x.masked_fill(~mask[:, :, None], 0.0), lengths

    # ------------------------------------------------------------------ relaxation
    def _valid(self, name: str, values: tuple, base: Arch) -> tuple:
        if name.endswith(".heads"):
            return tuple(h for h in values if base.width % h == 0)
        if name.endswith(".block") and base.streaming:
            return tuple(b for b in values if b in CAUSAL_BLOCKS or b == "skip")
        return values

    def sample_mixture(self, mode: Mode, base: Optional[Arch] = None, *, tau: float = 1.0,
                       generator: Optional[torch.Generator] = None) -> Mixture:
        """Decisions for a relaxed (softmax(alpha)) or gumbel (hard sample) forward.

        Args:
            mode: "relaxed" or "gumbel".
            base: the fixed fields (width filters heads; streaming leaves out blstm); default
                :meth:`largest_arch`.
            tau: Gumbel-softmax temperature.
            generator: source of the Gumbel noise (required for "gumbel").
        """
        base = base if base is not None else self.largest_arch()
        if mode == "gumbel" and generator is None:
            raise ValueError("gumbel mode needs a torch.Generator (randomness is injected, never global)")
        if mode == "gumbel" and tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        device = next(self.parameters()).device
        decisions = {}
        for name, values in self._decisions.items():
            valid = self._valid(name, values, base)
            if not valid:
                raise ValueError(f"{name}: no candidate of {values} is valid for width {base.width}"
                                 f"{' when streaming' if base.streaming else ''}")
            key = _alpha_key(name)
            if key not in self.alphas or len(valid) == 1:
                decisions[name] = Decision(valid, torch.ones(1, device=device), 0 if len(valid) == 1 else None)
                continue
            alpha = self.alphas[key][[values.index(v) for v in valid]]
            if mode == "relaxed":
                decisions[name] = Decision(valid, F.softmax(alpha, dim=0))
            elif mode == "gumbel":
                u = torch.rand(len(valid), generator=generator, device=generator.device, dtype=torch.float64)
                g = -torch.log(-torch.log(u.clamp(1e-12, 1.0 - 1e-12))).to(alpha)
                soft = F.softmax((alpha + g) / tau, dim=0)
                index = int(soft.argmax())
                hard = F.one_hot(torch.tensor(index), len(valid)).to(soft) - soft.detach() + soft
                decisions[name] = Decision(valid, hard, index)
            else:
                raise ValueError(f"mode {mode!r} has no mixture; use 'relaxed' or 'gumbel'")
        return Mixture(decisions)

    def derive_argmax(self, base: Optional[Arch] = None) -> Arch:
        """The arch of largest alpha per decision (fixed fields from ``base``, default :meth:`largest_arch`)."""
        base = base if base is not None else self.largest_arch()
        with torch.no_grad():
            return self.sample_mixture("relaxed", base).arch(base)

    # ------------------------------------------------------------------ heads
    def head_outputs(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor, arch: Arch) -> Any:
        """What ``arch.decoder``'s head computes for the loss (e.g. CTC log-probs (B, T', V))."""
        return self.heads[arch.decoder](self._head_choice(arch), enc, enc_lengths, targets, target_lengths)

    def loss(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor, arch: Arch) -> Tensor:
        """Training loss of ``arch.decoder`` (sized by ``arch.decoder_layers/width``) on ``enc``.

        Args:
            enc, enc_lengths: the output of :meth:`forward`.
            targets: (B, U) int64, zero-padded; target_lengths: (B,).
            arch: the same arch given to :meth:`forward` (its decoder fields are used).
        """
        outputs = self.head_outputs(enc, enc_lengths, targets, target_lengths, arch)
        return self.heads[arch.decoder].skeleton(self._head_choice(arch)).loss(outputs, enc_lengths, targets, target_lengths)

    @torch.no_grad()
    def decode(self, enc: Tensor, enc_lengths: Tensor, arch: Arch) -> list[list[int]]:
        """Greedy token ids per utterance with ``arch.decoder``'s head."""
        return self.heads[arch.decoder].to_static(self._head_choice(arch)).decode(enc, enc_lengths)


def _max_dividing(values: tuple[int, ...], width: int) -> Optional[int]:
    fits = [h for h in values if width % h == 0]
    return max(fits) if fits else (max(values) if values else None)
