"""The run config (``configs/run/*.yaml``) and resolving every stage's config from it, up front.

    name: quickstart
    seed: 0
    out_dir: runs/quickstart
    threads: 2
    data: configs/data/espeak.yaml          # the corpus every stage reads (a path or a mapping)
    targets: [mobile, server]               # configs/targets/NAME.yaml, a YAML path, or {name: overrides}
    baseline: {config: configs/baseline/demo.yaml, set: {trainer: {max_minutes: 2.0}}}
    fit:      {config: configs/fit/progressive.yaml, set: {...}}
    search:   {config: configs/search/supernet.yaml, set: {...}, max_minutes: 2.0, dev_utterances: 8}
    finetune: {config: configs/finetune/default.yaml, set: {...}}
    export:   {formats: [torchscript, onnx]}
    evaluate: {stream_utterances: 16}

Each stage section names the stage's own YAML (``config``) and fields to change in it (``set``,
merged key by key); ``seed``, ``threads`` and ``data`` of the run are put into every stage first.
:func:`resolve_run` builds every stage's typed config (and loads every target) before anything
runs, so a bad field fails at once with a :class:`~supernet.config.ConfigError` naming the file,
the field and the fix, not after the supernet has trained for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supernet.config import NEW_OPTION, ConfigError, apply_override, from_dict, load_yaml, merge_dicts, merged_config, to_dict

__all__ = ["StageSection", "SearchSection", "FinetuneSection", "ExportSection", "EvaluateSection", "RunConfig",
           "ResolvedRun", "load_run_config", "resolve_run", "merge", "apply_override"]


merge = merge_dicts  # the rule of `supernet fit -c A -c B`: mappings merge key by key, later keys win


@dataclass
class StageSection:
    """A stage that reads its own YAML: ``config`` (path; None: the stage's defaults), ``set`` (fields changed)."""

    config: str | None = None
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProfileSection:
    """How the costs of an arch are measured (see :mod:`supernet.profiling.costs`).

    ``clock``: ``auto`` (the target's threads, capped at the cores; process CPU clock at one
    thread, wall clock above), ``wall``, or ``cpu`` (one thread, CPU clock, whatever the
    target's threads: on a shared machine the only timing the neighbours do not inflate).
    """

    warmup: int = 1
    repeats: int = 5
    min_run_time: float = 0.05
    chunk_left: int = 4
    clock: str = "auto"

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.min_run_time < 0 or self.chunk_left < 0:
            raise ValueError("profile: warmup >= 0, repeats >= 1, min_run_time >= 0, chunk_left >= 0")
        if self.clock not in ("auto", "wall", "cpu"):
            raise ValueError(f"profile.clock must be auto, wall or cpu, got {self.clock!r}")


@dataclass
class LatencyVsBaseline:
    """Each target's ``latency_ms`` limited by the hand-designed baseline's latency.

    The search stage times the run's baseline as it times a candidate (the target's threads,
    the search's ``profile``) ``rounds`` times before searching and limits ``latency_ms`` to
    ``factor`` x the median (or the target's own limit, if smaller). The selected arch is then
    confirmed against the baseline in ``rounds`` paired rounds (alternating, medians compared);
    a refused pick gives way to the next best, at most ``tries`` picks. The eval stage measures
    the fine-tuned pick against the baseline the same way with the evaluate section's ``profile``.
    """

    factor: float = 1.0
    rounds: int = 5
    tries: int = 5

    def __post_init__(self) -> None:
        if self.factor <= 0 or self.rounds < 1 or self.tries < 1:
            raise ValueError(f"factor > 0, rounds >= 1, tries >= 1; got factor={self.factor}, "
                             f"rounds={self.rounds}, tries={self.tries}")


@dataclass
class SearchSection(StageSection):
    """The search of every target (``config``: a configs/search/*.yaml; its evaluator is replaced
    by the run's supernet evaluator on ``dev_utterances`` per dev set plus measured costs).

    Args:
        max_minutes: wall-clock cap per target (None: ``n_trials`` only). A capped search that is
            run again goes on from its study DB.
        dev_utterances: utterances per dev set the evaluator scores (None: all); fewer make each
            evaluation faster, the selected model is scored on the whole test sets later.
        batch_size: dev batch size of the evaluator.
        profile: latency measurement per evaluated arch.
        plots: write the search's PNG plots.
        latency_vs_baseline: limit each target's latency to the baseline's (:class:`LatencyVsBaseline`;
            needs the run's ``baseline``); None: the targets' own limits only.
    """

    max_minutes: float | None = None
    dev_utterances: int | None = None
    batch_size: int = 16
    profile: ProfileSection = field(default_factory=ProfileSection)
    plots: bool = True
    latency_vs_baseline: LatencyVsBaseline | None = field(default=None, metadata=NEW_OPTION)

    def __post_init__(self) -> None:
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 or null, got {self.max_minutes}")
        if self.dev_utterances is not None and self.dev_utterances < 1:
            raise ValueError(f"dev_utterances must be >= 1 or null, got {self.dev_utterances}")


@dataclass
class FinetuneSection(StageSection):
    """Fine-tuning of each selected subnet (``config``: configs/finetune/*.yaml)."""


@dataclass
class ExportSection:
    """Export settings (:class:`supernet.export.ExportConfig`)."""

    formats: list[str] = field(default_factory=lambda: ["torchscript", "onnx"])
    onnx_exporter: str = "torchscript"
    atol: float = 1e-4


@dataclass
class EvaluateSection:
    """Test-set scoring of the exported models.

    Args:
        batch_size: test batch size.
        lengths: utterance seconds the full-utterance latency is measured at (the target's
            reference length is added).
        stream_utterances: test utterances streamed chunk by chunk through the exported model
            (streaming archs; None: all).
        backend: runtime of the streaming run ("onnx" or "torchscript").
        profile: latency measurement.
    """

    batch_size: int = 16
    lengths: list[float] = field(default_factory=lambda: [1.0, 8.0])
    stream_utterances: int | None = 16
    backend: str = "onnx"
    profile: ProfileSection = field(default_factory=lambda: ProfileSection(warmup=2, repeats=20, min_run_time=0.2))

    def __post_init__(self) -> None:
        if self.backend not in ("onnx", "torchscript"):
            raise ValueError(f"backend must be onnx or torchscript, got {self.backend!r}")
        if self.stream_utterances is not None and self.stream_utterances < 1:
            raise ValueError(f"stream_utterances must be >= 1 or null, got {self.stream_utterances}")


@dataclass
class RunConfig:
    """A whole run (see the module docstring).

    Args:
        name: run name (names the studies).
        seed: put into every stage's config (``seed``; fine-tuning: ``train.seed``).
        out_dir: the run directory (``--out`` overrides it).
        threads: torch threads of training stages (None: leave as is). Latency is measured at
            each target's own thread count, capped at this machine's cores.
        data: the corpus of every stage: a configs/data/*.yaml path or a DataConfig mapping;
            merged into the stages' ``data`` sections (None: each stage's own).
        targets: target names (configs/targets/NAME.yaml), YAML paths, or one-entry mappings
            ``{NAME: {field: value}}`` that change fields of a shipped target (e.g. its limits).
        baseline: the hand-designed baseline (configs/baseline/*.yaml); ``null`` skips it (and ``eval/baseline``).
        fit, search, finetune: the stages' sections.
        export, evaluate: export and test-set scoring settings.
        report: write the report (``supernet.report``) at the end.
    """

    name: str = "run"
    seed: int = 0
    out_dir: str = "runs/run"
    threads: int | None = None
    data: Any = None
    targets: list[Any] = field(default_factory=lambda: ["mobile", "server"])
    baseline: StageSection | None = field(default_factory=StageSection)
    fit: StageSection = field(default_factory=StageSection)
    search: SearchSection = field(default_factory=SearchSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    export: ExportSection = field(default_factory=ExportSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    report: bool = True

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("targets is empty; name at least one target (configs/targets/*.yaml)")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or null, got {self.threads}")


def load_run_config(path: str | Path, overrides: list[str] = (), out: str | None = None) -> tuple[RunConfig, dict]:
    """The typed run config of ``path`` with ``key=value`` overrides; also the merged raw dict."""
    data, where = merged_config([path], overrides, out)
    return from_dict(RunConfig, data, where=where), data


# ---------------------------------------------------------------------------- resolving
@dataclass
class ResolvedRun:
    """Every stage's typed config, resolved before anything runs.

    Attributes:
        run: the run config; ``where``: its file (for messages); ``out``: the run directory.
        data: the DataConfig every stage reads.
        baseline: BaselineConfig (None: no baseline); fit: FitConfig; search: SearchConfig.
        finetune: FinetuneConfig; export: ExportConfig.
        targets: {name: Target}; spaces: {name: the fit space restricted to the target}.
    """

    run: RunConfig
    where: str
    out: Path
    data: Any
    baseline: Any
    fit: Any
    search: Any
    finetune: Any
    export: Any
    targets: dict[str, Any]
    spaces: dict[str, Any]


def _stage_dict(section: StageSection, where: str, field_name: str) -> dict:
    if section.config is None:
        return {}
    if not Path(section.config).is_file():
        raise ConfigError(f"{where}: field '{field_name}.config': {section.config} not found; "
                          f"give an existing YAML file (see configs/{field_name}/)")
    return load_yaml(section.config)


def _stage_where(section: StageSection, run_where: str, field_name: str) -> str:
    return f"{section.config or '<defaults>'} (+ {field_name}.set of {run_where})"


def _data_dict(run: RunConfig, where: str) -> dict | None:
    if run.data is None:
        return None
    if isinstance(run.data, str):
        if not Path(run.data).is_file():
            raise ConfigError(f"{where}: field 'data': {run.data} not found; give a configs/data/*.yaml path or a mapping")
        return load_yaml(run.data)
    if isinstance(run.data, dict):
        return dict(run.data)
    raise ConfigError(f"{where}: field 'data' must be a YAML path or a mapping, got {run.data!r}")


def _target(spec: Any, where: str, i: int) -> Any:
    """A Target from a name, a path or ``{name: overrides}``."""
    from supernet.search.targets import TARGETS_DIR, Target

    label = f"{where}: field 'targets[{i}]'"
    overrides: dict = {}
    if isinstance(spec, dict):
        if len(spec) != 1 or not isinstance(next(iter(spec.values())) or {}, dict):
            raise ConfigError(f"{label}: a mapping entry must be {{NAME: {{field: value}}}}, got {spec!r}")
        spec, overrides = next(iter(spec.items()))
        overrides = overrides or {}
    if not isinstance(spec, str):
        raise ConfigError(f"{label}: expected a target name or a YAML path, got {spec!r}")
    path = Path(spec)
    if not path.suffix and not path.exists():
        path = TARGETS_DIR / f"{spec}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TARGETS_DIR.glob("*.yaml")))
        raise ConfigError(f"{label}: unknown target {spec!r}; shipped targets: {known} (or give a YAML path)")
    raw = merge(load_yaml(path), overrides)
    raw.setdefault("name", path.stem)
    return from_dict(Target, raw, where=f"{path}" + (f" (+ overrides in {label[:-1]})" if overrides else ""))


def resolve_run(run: RunConfig, where: str) -> ResolvedRun:
    """Resolve and check every stage's config (see :class:`ResolvedRun`); nothing runs."""
    from supernet.baseline.config import BaselineConfig
    from supernet.data.datamodule import DataConfig
    from supernet.export import ExportConfig
    from supernet.finetune import load_finetune_config
    from supernet.search.config import SearchConfig
    from supernet.space import SearchSpace
    from supernet.training.config import FitConfig

    data_raw = _data_dict(run, where)
    common = {"seed": run.seed}
    if run.search.latency_vs_baseline is not None and run.baseline is None:
        raise ConfigError(f"{where}: field 'search.latency_vs_baseline' needs the run's baseline, but 'baseline' is null; "
                          "give a baseline section or remove search.latency_vs_baseline")

    def stage(section: StageSection, name: str, cls: type, extra: dict) -> Any:
        raw = merge(_stage_dict(section, where, name), common)
        if data_raw is not None and "data" in {f.name for f in cls.__dataclass_fields__.values()}:
            raw = merge(raw, {"data": data_raw})
        raw = merge(merge(raw, extra), section.set)
        return from_dict(cls, raw, where=_stage_where(section, where, name))

    threads = run.threads
    baseline = None
    if run.baseline is not None:
        baseline = stage(run.baseline, "baseline", BaselineConfig, {"trainer": {"num_threads": threads}} if threads else {})
    fit = stage(run.fit, "fit", FitConfig, {"name": run.name, **({"trainer": {"num_threads": threads}} if threads else {})})
    if not Path(fit.space).is_file():
        raise ConfigError(f"{_stage_where(run.fit, where, 'fit')}: field 'space': {fit.space} not found; "
                          "give a configs/space/*.yaml path (fit.set.space)")
    data = fit.data
    search_raw = merge(merge(_stage_dict(run.search, where, "search"), common), run.search.set)
    search_raw["evaluator"] = {"kind": "synthetic"}  # replaced by the run's supernet evaluator
    search_raw["space"] = fit.space
    search = from_dict(SearchConfig, search_raw, where=_stage_where(run.search, where, "search"))
    ft_raw = merge(merge(_stage_dict(run.finetune, where, "finetune"), {"train": {"seed": run.seed}}), run.finetune.set)
    if threads:
        ft_raw.setdefault("threads", threads)
    try:
        finetune = load_finetune_config(ft_raw)
    except ConfigError as e:
        raise ConfigError(f"{_stage_where(run.finetune, where, 'finetune')}: {e}") from None
    try:
        export = ExportConfig(formats=tuple(run.export.formats), onnx_exporter=run.export.onnx_exporter, atol=run.export.atol)
    except ValueError as e:
        raise ConfigError(f"{where}: field 'export': {e}") from None
    space = SearchSpace.from_yaml(fit.space)
    targets: dict[str, Any] = {}
    spaces: dict[str, Any] = {}
    for i, spec in enumerate(run.targets):  # every name first: a typo is reported before a limit
        t = _target(spec, where, i)
        if t.name in targets:
            raise ConfigError(f"{where}: field 'targets[{i}]': target {t.name!r} is listed twice; remove one")
        if t.name == "baseline":
            raise ConfigError(f"{where}: field 'targets[{i}]': 'baseline' names the baseline's outputs; rename the target")
        targets[t.name] = t
    for i, t in enumerate(targets.values()):
        try:
            spaces[t.name] = t.restrict(space)
        except ConfigError as e:
            raise ConfigError(f"{where}: field 'targets[{i}]': {e}; pick a space with such archs (fit.set.space) "
                              "or change the target's limits ({NAME: {limits: {...}}})") from None
    if not isinstance(data, DataConfig):  # FitConfig always holds one; keeps type checkers honest
        raise ConfigError(f"{where}: field 'data': not a data config")
    return ResolvedRun(run=run, where=where, out=Path(run.out_dir), data=data, baseline=baseline, fit=fit, search=search,
                       finetune=finetune, export=export, targets=targets, spaces=spaces)


def stage_configs(r: ResolvedRun, view: Any = to_dict) -> dict[str, Any]:
    """The resolved config of every stage as plain dicts.

    ``view``: :func:`~supernet.config.to_dict` (every field: run.yaml) or
    :func:`~supernet.config.hash_view` (what the stage hashes cover: options added later are
    left out while at their default, so upgrading does not rerun a finished run).
    """
    return {"data": view(r.data), "baseline": view(r.baseline), "fit": view(r.fit), "search": view(r.search),
            "finetune": view(r.finetune), "export": view(r.export), "targets": {k: view(t) for k, t in r.targets.items()}}
