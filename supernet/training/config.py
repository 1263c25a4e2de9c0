"""Typed configuration of a supernet training run (``supernet fit``).

YAML files in ``configs/fit/`` map one to one onto :class:`FitConfig` (LightningCLI-like layout:
``seed``, ``space``, ``strategy`` and its section, ``optim``, ``data``, ``trainer``). Load them
with :func:`load_fit_config`; unknown or ill-typed fields are errors naming the file and field.
``supernet fit -c FILE --print_config`` prints the resolved config, every default filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from supernet.baseline.augment import AugmentConfig
from supernet.baseline.config import OptimConfig
from supernet.config import NEW_OPTION, check_minutes
from supernet.data.datamodule import DataConfig
from supernet.data.features import SpecAugmentConfig
from supernet.nn.config import NetConfig

__all__ = ["STRATEGIES", "DIMENSIONS", "BilevelConfig", "SandwichConfig", "PhaseConfig", "ProgressiveConfig",
           "HardwareConfig", "FitTrainerConfig", "FitConfig", "load_fit_config"]

STRATEGIES = ("sandwich", "spos", "progressive", "darts", "gdas")
# Dimensions a progressive phase can open (``all`` opens every one).
SCHEDULES = ("cosine", "linear", "constant")  # OptimConfig.schedule
DIMENSIONS = ("feature", "subsampling", "width", "depth", "block", "attention", "heads", "ffn_ratio", "kernel",
              "decoder", "streaming")


@dataclass
class BilevelConfig:
    """DARTS / GDAS: weights step on the training split, alpha on a held-out part of it.

    Args:
        order: 1 = first-order (alpha gradient at the current weights); 2 = second-order (the
            unrolled one-step weights, Hessian-vector product by finite differences as in
            DARTS, Liu et al. 2019, eq. 7-8). darts only.
        arch_lr, arch_betas, arch_weight_decay: Adam for alpha (DARTS defaults).
        arch_fraction: share of the training utterances held out for alpha steps.
        warmup_steps: weight-only steps before alpha starts to move (alpha steps start at this step).
        unroll_eps: finite-difference scale: epsilon = unroll_eps / ||grad_w L_val||.
        tau_max, tau_min: GDAS Gumbel-softmax temperature, annealed linearly over the run.
        base: fields that alpha does not relax (width, subsampling, chunk, lookahead, decoder,
            decoder_layers, decoder_width), pinned as keyword arguments of ``space.largest``;
            empty = the largest arch's values.
    """

    order: int = 1
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    arch_fraction: float = 0.25
    warmup_steps: int = 0
    unroll_eps: float = 0.01
    tau_max: float = 10.0
    tau_min: float = 0.1
    base: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 (first-order) or 2 (second-order, unrolled), got {self.order}")
        if not 0.0 < self.arch_fraction < 1.0:
            raise ValueError(f"arch_fraction is a share of the training set in (0, 1), got {self.arch_fraction}")
        if self.arch_lr <= 0 or self.unroll_eps <= 0:
            raise ValueError("arch_lr and unroll_eps must be > 0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(f"need 0 < tau_min <= tau_max, got tau_min={self.tau_min}, tau_max={self.tau_max}")


@dataclass
class SandwichConfig:
    """Sandwich rule with in-place distillation (BigNAS), also used by ``progressive``.

    Args:
        num_random: random paths per step besides the largest and the smallest.
        distill: distil the smaller paths from the largest one's output posteriors (KL, teacher
            detached). Where a student's posteriors cannot be compared frame by frame with the
            teacher's (another decoder or frame rate), it trains on the labels alone and
            ``train/kd_unmatched`` counts it.
        kd_weight: weight of the distillation term.
        label_weight: weight of the label loss for distilled paths (the largest always has 1).
        temperature: softmax temperature of the distillation (the KL is scaled by T^2).
    """

    num_random: int = 2
    distill: bool = True
    kd_weight: float = 1.0
    label_weight: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.num_random < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}")
        if self.temperature <= 0 or self.kd_weight < 0 or self.label_weight < 0:
            raise ValueError("temperature must be > 0 and kd_weight, label_weight >= 0")


@dataclass
class PhaseConfig:
    """One phase of progressive shrinking.

    Args:
        name: label (logged as ``train/phase``).
        open: dimensions sampled in this phase (see DIMENSIONS, or ``all``); the others stay at
            the largest arch's value. Empty: the largest arch only (an ordinary training phase).
        steps: this phase's share of the run, in steps (with ``trainer.max_minutes`` the wall
            clock is shared out in the same proportions).
        lr: peak learning rate of the phase (None: ``optim.lr``); each phase runs its own
            warm-up and decay.
        schedule: this phase's decay (``constant``, ``cosine``, ``linear``; None: ``optim.schedule``).
            A constant first phase keeps the largest path's rate up until it leaves the CTC
            all-blank plateau, as the standalone references do.
        warmup: this phase's warm-up fraction (None: ``optim.warmup``); 0 for a phase that
            continues from trained weights.
        num_random: random paths per step besides the largest and the phase's smallest.
        streaming_prob: dynamic-chunk training (WeNet U2) while ``streaming`` is closed: with
            this probability every path of a step runs with one streaming (chunk, look-ahead)
            pair drawn uniformly from the space's streaming choices (a path whose blocks cannot
            stream stays full context). The shared weights then serve chunked attention and causal
            convolutions before the streaming archs are opened, instead of meeting them cold.
            0: full context only (the largest arch's value) until ``streaming`` opens.
        smallest_share: share of this phase's steps that train the phase's smallest path alone,
            on the labels (no teacher, no other path). Such a step costs a fraction of a sandwich
            step (the smallest path's forward and backward only), so the small end of the space
            gets several updates for each update of the largest path. 0: every step is a
            sandwich step. Needs an open dimension (with none, the smallest path is the largest).
            On such a step ``train/loss`` is the smallest path's loss (``train/loss_largest`` is
            logged only on sandwich steps).
    """

    name: str
    open: tuple[str, ...] = ()
    steps: int = 100
    lr: float | None = None
    schedule: str | None = None
    warmup: float | None = None
    num_random: int = 2
    streaming_prob: float = 0.0
    smallest_share: float = 0.0

    def __post_init__(self) -> None:
        bad = [d for d in self.open if d not in DIMENSIONS + ("all",)]
        if bad:
            raise ValueError(f"phase {self.name!r}: open: {bad[0]!r} is not a dimension; allowed: {', '.join(DIMENSIONS)}, all")
        if self.steps < 1:
            raise ValueError(f"phase {self.name!r}: steps must be >= 1, got {self.steps}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"phase {self.name!r}: lr must be > 0 or null")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ValueError(f"phase {self.name!r}: schedule must be one of {', '.join(SCHEDULES)} or null, got {self.schedule!r}")
        if self.warmup is not None and not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"phase {self.name!r}: warmup must be in [0, 1) or null, got {self.warmup}")
        if not 0.0 <= self.streaming_prob <= 1.0:
            raise ValueError(f"phase {self.name!r}: streaming_prob must be in [0, 1], got {self.streaming_prob}")
        if self.streaming_prob and ({"streaming", "all"} & set(self.open)):
            raise ValueError(f"phase {self.name!r}: streaming_prob applies only while 'streaming' is closed; this phase "
                             "opens it (its paths draw their own chunk): set streaming_prob to 0 or close 'streaming'")
        if not 0.0 <= self.smallest_share < 1.0:
            raise ValueError(f"phase {self.name!r}: smallest_share must be in [0, 1) (a share of the phase's steps), "
                             f"got {self.smallest_share}")
        if self.smallest_share and not self.open:
            raise ValueError(f"phase {self.name!r}: smallest_share {self.smallest_share} needs an open dimension "
                             "(with open: [] the smallest path is the largest); set it to 0 or open a dimension")


def _default_phases() -> list[PhaseConfig]:
    return [
        PhaseConfig("largest", (), 200),
        PhaseConfig("kernel", ("kernel",), 60, lr=1e-3),
        PhaseConfig("depth", ("kernel", "depth"), 80, lr=1e-3),
        PhaseConfig("width", ("kernel", "depth", "width", "ffn_ratio", "heads"), 100, lr=1e-3),
        PhaseConfig("categorical", ("all",), 60, lr=1e-3),
    ]


@dataclass
class ProgressiveConfig:
    """Progressive shrinking (Once-for-All): largest first, then open dimensions phase by phase.

    Every phase after the first trains the largest path on the labels and distils the others
    from it (``sandwich`` settings: kd_weight, label_weight, temperature). The phases' steps
    add up to the run length (``trainer.max_steps`` is ignored).
    """

    phases: list[PhaseConfig] = field(default_factory=_default_phases)

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("progressive.phases is empty; give at least one phase")

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)


@dataclass
class HardwareConfig:
    """Hardware-aware loss for darts / gdas: penalise the expected cost under alpha.

    ``loss += weight * max(0, E_alpha[cost] / target - 1)``. The expectation is exact for
    independent decisions: per layer slot, the probabilities of every block x attention x heads x
    FFN x kernel times that layer's cost, weighted by the slot not being skipped.

    Args:
        enabled: add the term.
        cost: "latency" (a :class:`~supernet.profiling.lut.LatencyLUT`, ms) or "params" (exact
            parameter counts, a proxy until a table exists).
        lut: path of the latency table (cost: latency).
        target: the cost to stay under (ms or parameters).
        weight: weight of the penalty.
    """

    enabled: bool = False
    cost: Literal["latency", "params"] = "params"
    lut: str | None = None
    target: float = 1.0e6
    weight: float = 0.1

    def __post_init__(self) -> None:
        if self.enabled and self.cost == "latency" and not self.lut:
            raise ValueError("hardware.cost: latency needs hardware.lut (build one with `supernet profile lut`), "
                             "or use cost: params")
        if self.target <= 0 or self.weight < 0:
            raise ValueError("hardware.target must be > 0 and hardware.weight >= 0")


@dataclass
class FitTrainerConfig:
    """How long and how a run trains.

    Args:
        max_steps: training steps (batches); a step may hold several paths. Ignored by
            ``progressive`` (the phases' steps add up instead).
        max_minutes: wall-clock budget (None: steps only, bit-for-bit reproducible). It is part
            of the schedule: the learning rate and the phases follow max(steps / total steps,
            elapsed / max_minutes), so even a budget the run never reaches changes its warm-up on
            a slow machine. For "what N minutes buy" measurements.
        time_limit_minutes: a wall-clock guard that only stops the run (None: off). It never
            enters the schedule: a run that ends before it repeats exactly on any machine; one it
            stops is marked ``stopped_by: time_limit``.
        val_every_steps: validate every N steps (None: at the end only).
        limit_val_batches: dev batches per set at each validation (None: all).
        log_every_steps: logging interval (losses, alpha).
        ckpt_every_steps: write ``checkpoints/step=N.ckpt`` and ``last.ckpt`` every N steps.
        keep_checkpoints: periodic checkpoints kept (the newest).
        max_nonfinite: stop with an error after this many non-finite steps in a row (each is
            skipped: no weight update); the last checkpoint written stays the last good one.
        num_threads: torch CPU threads (None: leave torch's default / OMP_NUM_THREADS).
        accelerator, devices, precision: Lightning settings.
        strategy: "auto", "ddp" or "ddp_spawn" (DDP uses find_unused_parameters: a path
            leaves most weights unused).
        progress: show the progress bar.
    """

    max_steps: int = 500
    max_minutes: float | None = None
    time_limit_minutes: float | None = field(default=None, metadata=NEW_OPTION)
    val_every_steps: int | None = None
    limit_val_batches: int | None = None
    log_every_steps: int = 10
    ckpt_every_steps: int = 100
    keep_checkpoints: int = 2
    max_nonfinite: int = 5
    num_threads: int | None = None
    accelerator: str = "cpu"
    devices: int = 1
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: str = "32-true"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "log_every_steps", "ckpt_every_steps", "keep_checkpoints", "max_nonfinite", "devices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_minutes(self, "max_minutes", "time_limit_minutes")
        for name in ("val_every_steps", "limit_val_batches", "num_threads"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {v}")


@dataclass
class FitConfig:
    """A whole supernet training run.

    Args:
        name: run name; the outputs go to ``out_dir`` (default ``runs/fit/<name>``).
        out_dir: run folder (None: ``runs/fit/<name>``).
        seed: seeds weights, dropout, augmentation, batch order and the paths drawn.
        space: search space YAML (``configs/space/*.yaml``).
        strategy: "sandwich" (BigNAS), "spos" (one uniform path per step), "progressive"
            (Once-for-All), "darts" or "gdas".
        sandwich, progressive, bilevel: settings of those strategies (bilevel: darts and gdas).
        hardware: hardware-aware loss (darts / gdas).
        derive_budget: also derive the best arch under this budget (``derive_cost`` units) from
            alpha at the end (darts / gdas); None: argmax only.
        derive_cost: "params" or "latency" (needs ``hardware.lut``).
        init_from: warm start: copy the weights of another ``supernet fit`` checkpoint that match by
            name and shape (a previous supernet, or a standalone arch trained by ``supernet fit``
            on a one-arch space); the rest keep their initialisation. What was loaded is printed
            and stored in ``summary.json`` (``init_from``). Its tokenizer is used.
        net: fixed network hyper-parameters (:class:`~supernet.nn.config.NetConfig`).
        specaugment: feature masking while training (null: off).
        augment: waveform augmentation while training (speed, gain, noise; the baseline's
            :class:`~supernet.baseline.augment.AugmentConfig`; default off). Every path of a step
            sees the same perturbed batch; bilevel strategies perturb the weight split only.
        optim: weight optimiser and schedule (the baseline's :class:`OptimConfig`).
        data: corpus and batching.
        trainer: budget and loop.
    """

    name: str = "sandwich"
    out_dir: str | None = None
    seed: int = 0
    space: str = "configs/space/conformer_elastic.yaml"
    strategy: Literal["sandwich", "spos", "progressive", "darts", "gdas"] = "sandwich"
    sandwich: SandwichConfig = field(default_factory=SandwichConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    bilevel: BilevelConfig = field(default_factory=BilevelConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    derive_budget: float | None = None
    derive_cost: Literal["params", "latency"] = "params"
    init_from: str | None = None
    net: NetConfig = field(default_factory=NetConfig)
    specaugment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata=NEW_OPTION)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: FitTrainerConfig = field(default_factory=FitTrainerConfig)

    def __post_init__(self) -> None:
        bilevel = self.strategy in ("darts", "gdas")
        if self.hardware.enabled and not bilevel:
            raise ValueError(f"hardware.enabled needs strategy darts or gdas (alpha carries the expected cost); "
                             f"strategy is {self.strategy}")
        if self.strategy == "gdas" and self.bilevel.order == 2:
            raise ValueError("bilevel.order: 2 (unrolled) is implemented for darts only; use order: 1 with gdas")
        if self.derive_cost == "latency" and self.derive_budget is not None and not self.hardware.lut:
            raise ValueError("derive_cost: latency needs hardware.lut (a latency table)")
        if self.net.sample_rate != self.data.sample_rate:
            raise ValueError(f"net.sample_rate ({self.net.sample_rate}) must equal data.sample_rate ({self.data.sample_rate})")

    @property
    def bilevel_strategy(self) -> bool:
        return self.strategy in ("darts", "gdas")

    @property
    def total_steps(self) -> int:
        """Steps of the run: the phases' sum for progressive, else ``trainer.max_steps``."""
        return self.progressive.total_steps if self.strategy == "progressive" else self.trainer.max_steps

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("runs/fit") / self.name


def load_fit_config(source: str | Path | dict, **overrides: Any) -> FitConfig:
    """Build a :class:`FitConfig` from a YAML file or dict (``overrides`` replace top-level keys)."""
    from supernet.config import load_config

    return load_config(FitConfig, source, **overrides)
