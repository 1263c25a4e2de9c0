"""Search configuration (``configs/search/*.yaml``) and building a search from it.

    name: tiny_synthetic
    space: configs/space/tiny.yaml
    target: edge                    # configs/targets/NAME.yaml, or a path
    strategy: evolution             # random | evolution | reinforce | tpe | gp | nsga2 | darts | transfer
    n_trials: 60
    seed: 0
    storage: null                   # default sqlite:///<out_dir>/<study>/study.db; or postgresql://...
    evaluator: {kind: synthetic}    # synthetic | table | supernet
    evolution: {population: 20, sample: 5}
    prescreen: {enabled: false, candidates: 10}

Command-line flags (``--strategy``, ``--target``, ``--storage``, ``--n-trials``, ``--seed``)
override the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from supernet.config import ConfigError
from supernet.search.evaluators import ArchEvaluator, MetricsAdapter, SyntheticEvaluator, TableEvaluator
from supernet.search.objectives import Fitness, resolve_objectives
from supernet.search.strategies import (STRATEGIES, Budget, DartsDerived, ParamsCost, PredictorScreen, Strategy,
                                        TransferSeeded, compound_scaling, load_alphas, top_archs)
from supernet.search.targets import Target, load_target
from supernet.space import SearchSpace

__all__ = ["EvaluatorConfig", "SearchConfig", "build_evaluator", "build_strategy", "study_name", "default_storage",
           "evaluator_vocab_size"]


@dataclass
class EvaluatorConfig:
    """Where metrics come from.

    Args:
        kind: ``synthetic`` (a cheap stand-in, see ``SyntheticEvaluator``), ``table`` (JSONL of
            cached evaluations) or ``supernet`` (the trained supernet: ``checkpoint``).
        table: JSONL table (kind ``table``; with ``fallback_synthetic`` misses are computed).
        checkpoint: trained supernet checkpoint (kind ``supernet``).
        seed, vocab_size, languages, noise: of the synthetic evaluator.
        fallback_synthetic: table misses go to the synthetic evaluator (and are saved).
        batch_size, cache: of the supernet evaluator (``cache``: its JSON-lines result cache).
    """

    kind: str = "synthetic"
    table: str | None = None
    checkpoint: str | None = None
    seed: int = 0
    vocab_size: int = 32
    languages: list[str] = field(default_factory=lambda: ["en", "de"])
    noise: float = 0.01
    fallback_synthetic: bool = False
    batch_size: int = 32
    cache: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "table", "supernet"):
            raise ValueError(f"evaluator.kind {self.kind!r} is unknown; use synthetic, table or supernet")
        if self.kind == "table" and not self.table:
            raise ValueError("evaluator.kind table needs evaluator.table: PATH.jsonl")
        if self.kind == "supernet" and not self.checkpoint:
            raise ValueError("evaluator.kind supernet needs evaluator.checkpoint: PATH (from `supernet fit`)")


@dataclass
class EvolutionConfig:
    population: int = 20
    sample: int = 5
    mutation_prob: float = 0.1
    crossover_prob: float = 0.0


@dataclass
class ReinforceConfig:
    lr: float = 1.0
    baseline_momentum: float = 0.9
    entropy: float = 0.0
    temperature: float = 1.0


@dataclass
class TPEConfig:
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True


@dataclass
class GPConfig:
    n_startup_trials: int = 10
    deterministic_objective: bool = False


@dataclass
class NSGA2Config:
    population: int = 20
    mutation_prob: float | None = None
    crossover_prob: float = 0.9


@dataclass
class DartsConfig:
    """``alphas``: JSON ``{decision: {value: probability}}``: a darts/gdas fit's ``alphas.json``
    (``SpeechSupernet.alpha_distributions()``). Budgets come from the target's params limit (exact
    counts) and, with a latency table (``latency_lut``, else the target's ``latency_lut``), latency."""

    alphas: str | None = None
    temperature: float = 1.0
    latency_lut: str | None = None


@dataclass
class TransferConfig:
    """Seeds: compound scaling (``compound``) and the ``top_k`` of ``from_study`` in ``from_storage``."""

    inner: str = "evolution"
    compound: bool = True
    depth_coefficient: float = 1.2
    width_coefficient: float = 1.1
    from_storage: str | None = None
    from_study: str | None = None
    top_k: int = 5


@dataclass
class PrescreenConfig:
    """``predictor``: ``online`` (random forest on the fitness so far), ``wer`` (``supernet.predictor.
    WERPredictor`` refitted on the first objective) or a path saved by ``WERPredictor.save``."""

    enabled: bool = False
    predictor: str = "online"
    candidates: int = 10
    min_history: int = 10
    refit_every: int = 5


@dataclass
class SearchConfig:
    """A search (see the module docstring)."""

    name: str = "search"
    space: str = "configs/space/tiny.yaml"
    target: str = "edge"
    objectives: Any = None  # default: the target's
    strategy: str = "evolution"
    n_trials: int = 60
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    out_dir: str = "runs/search"
    top_k: int = 10  # archs counted in the choice-frequency plot
    baseline: dict[str, float] | None = None  # a reference point for the Pareto plot, e.g. {wer: 0.2, latency_ms: 30}
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    tpe: TPEConfig = field(default_factory=TPEConfig)
    gp: GPConfig = field(default_factory=GPConfig)
    nsga2: NSGA2Config = field(default_factory=NSGA2Config)
    darts: DartsConfig = field(default_factory=DartsConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    prescreen: PrescreenConfig = field(default_factory=PrescreenConfig)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is unknown; available: {', '.join(sorted(STRATEGIES))}")
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")

    def load_target(self) -> Target:
        return load_target(self.target)

    def resolved_objectives(self, target: Target) -> tuple[str, ...]:
        return target.objectives if self.objectives is None else resolve_objectives(self.objectives)


def study_name(cfg: SearchConfig) -> str:
    """Default study name: ``NAME-TARGET-STRATEGY`` (a restart with the same flags resumes it)."""
    return cfg.study_name or f"{cfg.name}-{Path(cfg.target).stem}-{cfg.strategy}"


def default_storage(cfg: SearchConfig) -> str:
    """``sqlite:///<out_dir>/<study>/study.db`` unless ``storage`` is given."""
    if cfg.storage:
        return cfg.storage
    path = Path(cfg.out_dir) / study_name(cfg) / "study.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def build_evaluator(cfg: EvaluatorConfig, target: Any = None) -> ArchEvaluator:
    """The evaluator a config names (the supernet one is imported only when asked for).

    With ``target``, the supernet evaluator attaches the costs its limits and objectives name
    (latency, RTF, chunk latency, memory, FLOPs), measured on this machine by profiling the
    extracted subnet at the target's threads and reference length
    (:class:`supernet.profiling.costs.MeasuredCosts`), as ``supernet run`` does.
    """
    synthetic = SyntheticEvaluator(seed=cfg.seed, vocab_size=cfg.vocab_size, languages=tuple(cfg.languages), noise=cfg.noise)
    if cfg.kind == "synthetic":
        return synthetic
    if cfg.kind == "table":
        return TableEvaluator(cfg.table, fallback=synthetic if cfg.fallback_synthetic else None)
    return MetricsAdapter(_supernet_evaluator(cfg, target))


def _supernet_evaluator(cfg: EvaluatorConfig, target: Any = None) -> Any:
    """``supernet.evaluate.Evaluator`` on the dev sets of the checkpoint's own corpus (as
    ``supernet evaluate CKPT`` builds it); results cached in ``cache`` when given."""
    if not Path(cfg.checkpoint).is_file():
        raise ConfigError(f"evaluator.checkpoint: {cfg.checkpoint} not found; train a supernet with `supernet fit` first")
    from supernet.data.datamodule import SpeechDataModule
    from supernet.evaluate import Evaluator
    from supernet.train import load_supernet

    net, _space, tokenizer, meta = load_supernet(cfg.checkpoint)
    dm = SpeechDataModule(meta["config"].data, tokenizer=tokenizer, progress=True)
    dm.setup("validate")
    costs = None
    if target is not None:
        from supernet.profiling.costs import MeasuredCosts

        costs = MeasuredCosts(net, target)
    return Evaluator(net, dm.dev_sets, tokenizer, batch_size=cfg.batch_size, cache_path=cfg.cache, costs=costs)


def _make(name: str, cfg: SearchConfig, space: SearchSpace, fitness: Fitness, seed: int) -> Strategy:
    options = {"evolution": cfg.evolution, "reinforce": cfg.reinforce, "tpe": cfg.tpe, "gp": cfg.gp, "nsga2": cfg.nsga2}
    if name in options:
        return STRATEGIES[name](space, fitness, seed, **asdict(options[name]))
    if name == "random":
        return STRATEGIES[name](space, fitness, seed)
    if name == "darts":
        return _darts(cfg, space, fitness, seed)
    if name == "transfer":
        if cfg.transfer.inner == "transfer":
            raise ConfigError("transfer.inner cannot be transfer")
        inner = _make(cfg.transfer.inner, cfg, space, fitness, seed)
        seeds: list = []
        if cfg.transfer.compound:
            seeds += [("compound", a) for a in compound_scaling(space, depth_coefficient=cfg.transfer.depth_coefficient,
                                                                width_coefficient=cfg.transfer.width_coefficient)]
        if cfg.transfer.from_study:
            storage = cfg.transfer.from_storage or default_storage(cfg)
            seeds += [("transfer", a) for a in top_archs(storage, cfg.transfer.from_study, cfg.transfer.top_k, space)]
        return TransferSeeded(space, fitness, seed, inner=inner, seeds=seeds)
    raise ConfigError(f"strategy {name!r} is unknown; available: {', '.join(sorted(STRATEGIES))}")


def evaluator_vocab_size(cfg: EvaluatorConfig) -> int:
    """The vocabulary the evaluated archs' heads have: the trained supernet's for kind ``supernet``
    (its checkpoint's tokenizer), else ``vocab_size`` (the synthetic evaluator's)."""
    if cfg.kind == "supernet" and cfg.checkpoint and Path(cfg.checkpoint).is_file():
        from supernet.training.run import load_supernet

        return load_supernet(cfg.checkpoint)[2].vocab_size
    return cfg.vocab_size


def _darts(cfg: SearchConfig, space: SearchSpace, fitness: Fitness, seed: int) -> Strategy:
    if not cfg.darts.alphas:
        raise ConfigError("strategy darts needs darts.alphas: a JSON of softmax(alpha) per decision (SpeechSupernet.alpha_distributions())")
    budgets, costs = [], {}
    target = fitness.target
    if target is not None and target.limits.params is not None:
        budgets.append(Budget("params", target.limits.params))
        costs["params"] = ParamsCost(space, evaluator_vocab_size(cfg.evaluator))
    lut_path = cfg.darts.latency_lut or (target.latency_lut if target is not None else None)
    if target is not None and target.limits.latency_ms is not None and lut_path:
        from supernet.profile import LatencyLUT
        from supernet.search.strategies.darts import LUTCost

        lut = LatencyLUT.load(lut_path, threads=target.threads, space=space, strict=False)
        budgets.append(Budget("latency_ms", target.limits.latency_ms))
        costs["latency_ms"] = LUTCost(lut)
    return DartsDerived(space, fitness, seed, alphas=load_alphas(cfg.darts.alphas), budgets=budgets, costs=costs,
                        temperature=cfg.darts.temperature)  # fmt: skip


def build_strategy(cfg: SearchConfig, space: SearchSpace, fitness: Fitness, seed: int | None = None) -> Strategy:
    """The configured strategy, wrapped in a predictor pre-screen when ``prescreen.enabled``."""
    seed = cfg.seed if seed is None else seed
    strategy = _make(cfg.strategy, cfg, space, fitness, seed)
    if cfg.prescreen.enabled:
        p = cfg.prescreen
        try:
            predictor: Any = p.predictor
            if p.predictor not in ("online", "wer"):
                from supernet.predictor import WERPredictor

                predictor = WERPredictor.load(p.predictor, space)
            strategy = PredictorScreen(space, fitness, seed, inner=strategy, predictor=predictor, candidates=p.candidates,
                                       min_history=p.min_history, refit_every=p.refit_every)  # fmt: skip
        except ValueError as e:
            raise ConfigError(f"prescreen: {e}") from e
    return strategy
