"""What one training step does, per strategy.

A strategy gets the :class:`~supernet.training.module.SupernetModule` (network, optimisers,
the finiteness-checked ``weight_step`` / ``alpha_step``) and one batch, runs its paths and
returns what to log. Randomness comes from (seed, step) only: ``step_rng`` for paths,
``module.generator(step, name)`` for Gumbel noise and SpecAugment.

- :class:`PathStrategy` covers ``sandwich`` (BigNAS: largest + smallest + N random paths, the
  smaller ones distilled in place from the largest, one optimiser step), ``spos`` (one uniform
  path) and ``progressive`` (Once-for-All: phases opening dimensions one after another, each
  with its own share of the run and learning-rate schedule, distilled from the largest).
- :class:`BilevelStrategy` covers ``darts`` (relaxed forward) and ``gdas`` (hard Gumbel
  samples): alpha steps on the held-out split, weights on the training split.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import Tensor

from supernet.nn.heads import head_spec
from supernet.space import Arch, SearchSpace
from supernet.training.config import FitConfig, PhaseConfig
from supernet.training.losses import ExpectedCost, distill_loss, posterior_parts
from supernet.training.paths import PathSampler, step_rng

if TYPE_CHECKING:
    from supernet.training.module import SupernetModule

__all__ = ["Strategy", "PathStrategy", "BilevelStrategy", "build_strategy", "head_loss"]


def head_loss(net: Any, arch: Arch, outputs: Any, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """The loss ``SpeechSupernet.loss`` computes, from head outputs already computed (reads no weights)."""
    _, kw = head_spec(arch.decoder, arch.decoder_layers, arch.decoder_width, arch.width, net.vocab_size, net.net)
    return net.heads[arch.decoder].skeleton(kw).loss(outputs, enc_lengths, targets, target_lengths)


def _detach(outputs: Any) -> Any:
    return tuple(o.detach() for o in outputs) if isinstance(outputs, tuple) else outputs.detach()


class Strategy:
    """Base: the archs scored at validation, and the learning rate at a point of the run."""

    bilevel = False

    def __init__(self, cfg: FitConfig, space: SearchSpace) -> None:
        self.cfg = cfg
        self.space = space

    def eval_archs(self, module: "SupernetModule") -> dict[str, Arch]:
        return {"largest": self.space.largest(), "smallest": self.space.smallest()}

    def lr(self, progress: float) -> float:
        o = self.cfg.optim
        return o.lr * o.lr_factor(progress)

    def describe(self, progress: float) -> dict[str, float]:
        """Extra values to log (e.g. the phase)."""
        return {}

    def step(self, module: "SupernetModule", batch: dict, step: int) -> dict[str, Tensor]:
        raise NotImplementedError


class PathStrategy(Strategy):
    """sandwich / spos / progressive: discrete paths, gradients summed, one optimiser step."""

    def __init__(self, cfg: FitConfig, space: SearchSpace) -> None:
        super().__init__(cfg, space)
        s = cfg.sandwich
        if cfg.strategy == "progressive":
            self.phases = list(cfg.progressive.phases)
        else:
            num = s.num_random if cfg.strategy == "sandwich" else 1
            self.phases = [PhaseConfig(cfg.strategy, ("all",), cfg.trainer.max_steps, num_random=num)]
        total = sum(p.steps for p in self.phases)
        ends, acc = [], 0
        for p in self.phases:
            acc += p.steps
            ends.append(acc / total)
        self.ends = ends  # phase i covers progress [ends[i-1], ends[i])
        self.samplers = [PathSampler(space, p.open) for p in self.phases]
        self.streams = [st for st in space.spec.streams if st[0] > 0]  # dynamic-chunk draws
        for p in self.phases:
            if p.streaming_prob and not self.streams:
                raise ValueError(f"progressive phase {p.name!r}: streaming_prob {p.streaming_prob} needs a streaming "
                                 f"chunk (> 0) in the space's streaming.chunk; space {space.name!r} has full context only")

    # ------------------------------------------------------------------ phases
    def phase_at(self, progress: float) -> tuple[int, float]:
        """(phase index, progress inside that phase in [0, 1])."""
        for i, end in enumerate(self.ends):
            if progress < end or i == len(self.ends) - 1:
                start = self.ends[i - 1] if i else 0.0
                return i, min(1.0, max(0.0, (progress - start) / max(end - start, 1e-12)))
        raise AssertionError("unreachable")

    def lr(self, progress: float) -> float:
        i, inner = self.phase_at(progress)
        phase, o = self.phases[i], self.cfg.optim
        over = {k: v for k, v in (("schedule", phase.schedule), ("warmup", phase.warmup)) if v is not None}
        return (phase.lr or o.lr) * (dataclasses.replace(o, **over) if over else o).lr_factor(inner)

    def describe(self, progress: float) -> dict[str, float]:
        return {"train/phase": float(self.phase_at(progress)[0])} if len(self.phases) > 1 else {}

    def paths(self, progress: float, step: int) -> list[tuple[str, Arch]]:
        """(tag, arch) of this step's paths; the first is the teacher when there are several."""
        i, _ = self.phase_at(progress)
        phase, sampler = self.phases[i], self.samplers[i]
        rng = step_rng(self.cfg.seed, step)
        if self.cfg.strategy == "spos":
            return [("random", sampler.sample(rng))]
        if not phase.open:
            paths = [("largest", sampler.largest())]
        elif phase.smallest_share and step_rng(self.cfg.seed, step, "smallest").random() < phase.smallest_share:
            paths = [("smallest", sampler.smallest())]  # a small-end step: the smallest path alone, on the labels
        else:
            drawn = sampler.paths(rng, phase.num_random)
            paths = [("largest", drawn[0]), ("smallest", drawn[1])] + [("random", a) for a in drawn[2:]]
        if phase.streaming_prob:  # dynamic chunk: the whole step (teacher and students) in one streaming mode
            srng = step_rng(self.cfg.seed, step, "streaming")
            if srng.random() < phase.streaming_prob:
                chunk, lookahead = srng.choice(self.streams)
                paths = [(tag, sampler.streamed(a, chunk, lookahead)) for tag, a in paths]
        return paths

    # ------------------------------------------------------------------ step
    def step(self, module: "SupernetModule", batch: dict, step: int) -> dict[str, Tensor]:
        net, s = module.net, self.cfg.sandwich
        distill = s.distill and self.cfg.strategy != "spos"
        augment = module.augmenter(step)
        targets, target_lengths = batch["targets"], batch["target_lengths"]
        teacher = None
        logs: dict[str, Tensor] = {}
        by_tag: dict[str, list[Tensor]] = {}
        losses: list[Tensor] = []
        for k, (tag, arch) in enumerate(self.paths(module.progress(), step)):
            enc, lengths = net(batch["audio"], batch["audio_lengths"], arch, augment=augment)
            outputs = net.head_outputs(enc, lengths, targets, target_lengths, arch)
            label = head_loss(net, arch, outputs, lengths, targets, target_lengths)
            loss = label
            if distill and k == 0:
                teacher = posterior_parts(arch.decoder, _detach(outputs), lengths, target_lengths)
            elif distill and teacher is not None:
                kd = distill_loss(posterior_parts(arch.decoder, outputs, lengths, target_lengths), teacher, s.temperature)
                if kd is None:
                    module.kd_unmatched += 1
                else:
                    loss = s.label_weight * label + s.kd_weight * kd
                    logs[f"train/kd_{tag}"] = kd.detach()
            module.manual_backward(loss)  # gradients add up over the paths; the graph is freed now
            losses.append(loss.detach())
            by_tag.setdefault(tag, []).append(label.detach())
        module.weight_step(losses)
        logs.update({f"train/loss_{tag}": torch.stack(v).mean() for tag, v in by_tag.items()})
        logs["train/loss"] = losses[0]
        return logs


class BilevelStrategy(Strategy):
    """darts / gdas: alternate an alpha step (held-out split) and a weight step (training split)."""

    bilevel = True

    def __init__(self, cfg: FitConfig, space: SearchSpace, base: Arch, expected_cost: Optional[ExpectedCost] = None) -> None:
        super().__init__(cfg, space)
        self.base = base
        self.mode = "relaxed" if cfg.strategy == "darts" else "gumbel"
        self.expected_cost = expected_cost

    def eval_archs(self, module: "SupernetModule") -> dict[str, Arch]:
        return {**super().eval_archs(module), "derived": module.net.derive_argmax(self.base)}

    def tau(self, progress: float) -> float:
        b = self.cfg.bilevel
        return b.tau_max - (b.tau_max - b.tau_min) * progress

    def _mixture(self, module: "SupernetModule", step: int, stream: str) -> Any:
        if self.mode == "relaxed":
            return module.net.sample_mixture("relaxed", self.base)
        gen = module.generator(step, f"gumbel/{stream}")
        return module.net.sample_mixture("gumbel", self.base, tau=self.tau(module.progress()), generator=gen)

    def _loss(self, module: "SupernetModule", batch: dict, mixture: Any, augment: Any = None) -> Tensor:
        net = module.net
        enc, lengths = net(batch["audio"], batch["audio_lengths"], self.base, mode=self.mode, mixture=mixture, augment=augment)
        return net.loss(enc, lengths, batch["targets"], batch["target_lengths"], self.base)

    def _hardware(self, module: "SupernetModule") -> tuple[Tensor, Tensor]:
        """(penalty, expected cost) under softmax(alpha)."""
        hw = self.cfg.hardware
        expected = self.expected_cost(module.net.sample_mixture("relaxed", self.base), self.base)
        return hw.weight * torch.relu(expected / hw.target - 1.0), expected

    def step(self, module: "SupernetModule", batch: dict, step: int) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        train, held = batch["train"], batch["arch"]
        if step >= self.cfg.bilevel.warmup_steps:
            loss_val, grads, extra = self._alpha_gradients(module, train, held, step)
            module.alpha_step(grads, [loss_val])
            logs["train/loss_arch"] = loss_val.detach()
            logs.update(extra)
        loss = self._loss(module, train, self._mixture(module, step, "weights"), module.augmenter(step))
        module.manual_backward(loss)
        module.weight_step([loss.detach()])
        logs["train/loss"] = loss.detach()
        if self.mode == "gumbel":
            logs["train/tau"] = torch.tensor(self.tau(module.progress()))
        return logs

    # ------------------------------------------------------------------ alpha gradient
    def _val_objective(self, module: "SupernetModule", held: dict, step: int) -> tuple[Tensor, Tensor, dict]:
        """(label loss, objective with the hardware term, logs) on the held-out batch."""
        loss = self._loss(module, held, self._mixture(module, step, "alpha"))
        logs = {}
        objective = loss
        if self.expected_cost is not None:
            penalty, expected = self._hardware(module)
            objective = loss + penalty
            logs = {"train/expected_cost": expected.detach(), "train/hw_penalty": penalty.detach()}
        return loss, objective, logs

    def _alpha_gradients(self, module: "SupernetModule", train: dict, held: dict, step: int) -> tuple[Tensor, list, dict]:
        alphas = module.net.arch_parameters()
        if self.cfg.bilevel.order == 1:
            loss, objective, logs = self._val_objective(module, held, step)
            return loss, list(torch.autograd.grad(objective, alphas, allow_unused=True)), logs
        return self._unrolled(module, train, held, step)

    def _unrolled(self, module: "SupernetModule", train: dict, held: dict, step: int) -> tuple[Tensor, list, dict]:
        """Second-order DARTS: grad_alpha L_val(w - xi grad_w L_train(w, alpha), alpha).

        = grad_alpha L_val(w') - xi * (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2 eps),
        w+- = w +- eps grad_w' L_val(w'), eps = unroll_eps / ||grad_w' L_val|| (Liu et al., 2019).
        The virtual step is plain SGD at the current weight learning rate xi. Dropout draws the same
        masks in the two finite-difference forwards so that they differ only by the weights.
        """
        net = module.net
        weights, alphas = net.weight_parameters(), net.arch_parameters()
        xi = module.current_lr
        backup = [p.detach().clone() for p in weights]

        def grads(loss: Tensor, params: list) -> list[Tensor]:
            gs = torch.autograd.grad(loss, params, allow_unused=True)
            return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]

        try:
            g_train = grads(self._loss(module, train, self._mixture(module, step, "weights")), weights)
            with torch.no_grad():
                for p, g in zip(weights, g_train):
                    p.sub_(xi * g)
            loss, objective, logs = self._val_objective(module, held, step)
            g_all = grads(objective, alphas + weights)
            d_alpha, d_w = g_all[: len(alphas)], g_all[len(alphas):]
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in d_w)).float()
            eps = self.cfg.bilevel.unroll_eps / norm.clamp(min=1e-12)
            seed = module.seed_for(step, "unroll")
            side = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, b, g in zip(weights, backup, d_w):
                        p.copy_(b + sign * eps * g)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    side.append(grads(self._loss(module, train, self._mixture(module, step, "weights")), alphas))
            hessian = [(gp - gm) / (2 * eps) for gp, gm in zip(*side)]
            return loss, [da - xi * h for da, h in zip(d_alpha, hessian)], logs
        finally:
            with torch.no_grad():
                for p, b in zip(weights, backup):
                    p.copy_(b)


def build_strategy(cfg: FitConfig, space: SearchSpace, net: Any, expected_cost: Optional[ExpectedCost] = None) -> Strategy:
    """The :class:`Strategy` of ``cfg.strategy``."""
    if cfg.bilevel_strategy:
        base = space.largest(**cfg.bilevel.base)  # alpha relaxes the rest; these fields stay fixed
        net.check_arch(base)
        return BilevelStrategy(cfg, space, base, expected_cost)
    return PathStrategy(cfg, space)
