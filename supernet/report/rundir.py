"""Reading a run directory (what ``supernet run`` writes) for the report and the notebook.

    RUN/run.yaml                resolved run config          RUN/provenance.json  seed, versions, machine
    RUN/stages.json             per stage: hash, status, started, finished, seconds, cpu_seconds
    RUN/baseline/metrics.json   `supernet baseline fit`
    RUN/fit/                    `supernet fit` (summary.json, metrics.csv, alpha_history.json)
    RUN/search/<target>/        `supernet search` (summary.json, study.db; possibly one folder deeper,
                                ``<target>/<study>/``, as the CLI nests them)
    RUN/finetune/<target>/finetune.json    RUN/export/<target>/metadata.json
    RUN/eval/<target>.json      test-set scores of the selected model (see docs/report.md)
    RUN/eval/baseline.json      the baseline's test scores and its costs at each target's threads

:func:`load_run` reads every part that exists; a part that is missing is ``None`` (the report
says so), except the search, without which there is nothing to report: then, and for a run
directory that does not exist, :class:`ReportError` names the path that is missing and the
command that writes it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from supernet.config import ConfigError

__all__ = ["ReportError", "TargetRun", "RunData", "load_run", "read_json", "load_study_records"]


class ReportError(ConfigError):
    """A run directory lacks what the report needs (the message names the path and the fix)."""


def read_json(path: Path) -> Any:
    """JSON of ``path``; a damaged file is a :class:`ReportError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not readable JSON ({type(e).__name__}: {e}); rerun the stage that writes it") from None


def _optional_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


@dataclass
class TargetRun:
    """Everything the run holds about one deployment target.

    Attributes:
        name: target name (the folder name under ``search/``).
        search_dir: folder holding the search's ``summary.json``.
        summary: that summary (objectives, selected arch, provenance with the target).
        study: the Optuna study (all trials, any state).
        records: the evaluated archs (:class:`~supernet.search.storage.Record`), by trial number.
        target: the :class:`~supernet.search.targets.Target` recorded by the search.
        eval: ``eval/<target>.json`` or None; finetune, export: their JSON or None.
    """

    name: str
    search_dir: Path
    summary: dict
    study: Any
    records: list
    target: Any
    eval: dict | None = None
    finetune: dict | None = None
    export: dict | None = None

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.summary.get("objectives") or self.study.user_attrs.get("objectives") or ())

    @property
    def wer_metric(self) -> str:
        """The WER the search optimised (``wer`` or ``wer_mean``)."""
        first = self.objectives[0] if self.objectives else "wer"
        return first if first.startswith("wer") else "wer"

    @property
    def selected(self) -> Any:
        """The Record the search selected for this target (None if none fits)."""
        sel = self.summary.get("selected")
        if not sel:
            return None
        return next((r for r in self.records if r.arch.id == sel.get("arch_id")), None)

    def fitness(self) -> Any:
        from supernet.search.objectives import Fitness

        return Fitness(self.objectives, self.target)


@dataclass
class RunData:
    """A run directory, read (see the module docstring)."""

    root: Path
    config: dict | None
    provenance: dict | None
    stages: dict | None
    baseline: dict | None
    fit_summary: dict | None
    fit_metrics: list[dict] | None
    alpha_history: list | None
    baseline_eval: dict | None = None
    targets: dict[str, TargetRun] = field(default_factory=dict)

    @property
    def config_hash(self) -> str | None:
        if self.config is None:
            return None
        from supernet.config import config_hash

        return config_hash(self.config)


def _read_csv(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _find_search_dir(tdir: Path) -> Path:
    if (tdir / "summary.json").is_file():
        return tdir
    nested = sorted(p.parent for p in tdir.glob("*/summary.json"))
    if len(nested) == 1:
        return nested[0]
    if nested:
        raise ReportError(f"{tdir}: holds several searches ({', '.join(p.name for p in nested)}); keep one per target")
    raise ReportError(f"{tdir / 'summary.json'}: not found; run `supernet search ... --target {tdir.name}` "
                      f"(or `supernet run`) to finish the search of target {tdir.name}")


def _study_storage(search_dir: Path, summary: dict) -> str:
    db = search_dir / "study.db"
    if db.is_file():
        return f"sqlite:///{db}"
    url = str(summary.get("storage") or "")
    if url and not url.startswith("sqlite") and "***" not in url:
        return url  # an RDB server (PostgreSQL) named in full; a SQLite study must sit in the run directory
    raise ReportError(f"{db}: study database not found (summary.json names storage {url or 'none'}); "
                      "rerun the search, or copy its study.db next to summary.json")


def load_study_records(storage: str, study_name: str | None) -> tuple[Any, list]:
    """The Optuna study (loaded, not created) and its evaluated archs as search Records.

    Args:
        storage: Optuna storage URL (``sqlite:///RUN/search/edge/study.db``).
        study_name: the study; None takes the only study of the storage.
    """
    import optuna
    from optuna.trial import TrialState

    from supernet.search.storage import Record

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study_name is None:
        names = optuna.get_all_study_names(storage)
        if len(names) != 1:
            raise ReportError(f"{storage}: holds {len(names)} studies ({', '.join(names)}); name one")
        study_name = names[0]
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise ReportError(f"{storage}: no study named {study_name!r}") from None
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study, [Record.from_trial(t) for t in trials if "arch" in t.user_attrs]


def _load_target(search_dir: Path, name: str, summary: dict) -> TargetRun:
    from supernet.config import from_dict
    from supernet.search.targets import Target, load_target

    storage = _study_storage(search_dir, summary)
    study, records = load_study_records(storage, summary.get("study"))
    recorded = (summary.get("provenance") or {}).get("target")
    target = from_dict(Target, recorded, where=f"{search_dir / 'summary.json'} (provenance.target)") if recorded else load_target(name)
    return TargetRun(name=name, search_dir=search_dir, summary=summary, study=study, records=records, target=target)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (see the module docstring).

    Raises:
        ReportError: ``run_dir`` or its ``search/`` stage output is missing or damaged (names the path).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: run directory not found; run `supernet run -c configs/run/quickstart.yaml` first "
                          "or pass the folder it wrote")
    search = root / "search"
    tdirs = sorted(p for p in search.iterdir() if p.is_dir()) if search.is_dir() else []
    if not tdirs:
        raise ReportError(f"{search}: no search results (one folder per target); the search stage has not run "
                          f"for this run yet: run `supernet run` again to finish it")
    config = None
    if (root / "run.yaml").is_file():
        config = yaml.safe_load((root / "run.yaml").read_text(encoding="utf-8"))
    fit = root / "fit"
    data = RunData(root=root, config=config, provenance=_optional_json(root / "provenance.json"),
                   stages=_optional_json(root / "stages.json"), baseline=_optional_json(root / "baseline" / "metrics.json"),
                   fit_summary=_optional_json(fit / "summary.json"), fit_metrics=_read_csv(fit / "metrics.csv"),
                   alpha_history=_optional_json(fit / "alpha_history.json"),
                   baseline_eval=_optional_json(root / "eval" / "baseline.json"))  # fmt: skip
    for tdir in tdirs:
        name = tdir.name
        sdir = _find_search_dir(tdir)
        t = _load_target(sdir, name, read_json(sdir / "summary.json"))
        t.eval = _optional_json(root / "eval" / f"{name}.json")
        t.finetune = _optional_json(root / "finetune" / name / "finetune.json")
        t.export = _optional_json(root / "export" / name / "metadata.json")
        data.targets[name] = t
    return data
