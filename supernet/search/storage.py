"""The study database: an Optuna study is the record of every evaluated arch.

Storage is Optuna's: a SQLite file by default (``sqlite:///runs/search/x.db``), PostgreSQL for
many workers (``postgresql://user@host/db``), or in memory (``None``: tests, benchmarks). One
trial per evaluated arch:

- ``params``: the arch in the flat encoding of :class:`~supernet.search.encoding.ArchCodec` (so
  Optuna's samplers learn from every trial, whichever strategy proposed it);
- ``values``: the objectives (all minimised); constraints (``trial.constraints``, system
  attributes ``constraints:NAME``): the target's limits as ``value / bound - 1`` (<= 0
  feasible), which Optuna's samplers read;
- user attributes: ``arch`` (canonical JSON), ``arch_id``, ``describe``, ``strategy``, ``stage``,
  ``seed``, ``worker`` (host:pid), and every metric under its own name.

Never evaluating an arch twice, across restarts and workers, rests on one extra table in the
same database, ``supernet_arch_claims (study_id, arch_id) -> trial_id``, whose primary key
makes claiming an arch an atomic INSERT: of two workers racing for one arch exactly one
succeeds; the other sees the claim and moves on. A claim whose trial has died (FAIL, or RUNNING
with a dead worker) is taken over with a compare-and-swap UPDATE. A worker is dead when Optuna's
heartbeat says so (``heartbeat_interval``/``grace_period``, :func:`optuna.storages.fail_stale_trials`)
or, on the same host, when its process no longer exists, so a killed search restarted on the
same machine picks up at once. Only a FAILed owner is ever replaced: a trial that completes while
another worker looks at it is read again, never taken over.

In memory, claims are a dict (one process).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import optuna
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from supernet.config import ConfigError
from supernet.search.encoding import ArchCodec
from supernet.search.objectives import RESERVED, objective_values, with_derived
from supernet.space import Arch, SearchSpace

__all__ = ["Record", "Claim", "StudyDB", "CLAIMS_TABLE", "worker_id", "storage_url"]

CLAIMS_TABLE = "supernet_arch_claims"
# Optuna 5 keeps a trial's constraints as system attributes "constraints:NAME" (what
# Trial.set_constraint writes and FrozenTrial.constraints reads); its samplers use them directly.
_CONSTRAINT_PREFIX = "constraints:"


def worker_id() -> str:
    """``host:pid`` of this process (recorded on every trial it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Record:
    """One evaluated arch as stored: trial number, arch, metrics, objective values, provenance."""

    number: int
    arch: Arch
    metrics: dict[str, float]
    values: tuple[float, ...]
    strategy: str = ""
    stage: str = ""
    seed: int | None = None
    constraints: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return all(c <= 0 for c in self.constraints.values())

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> "Record":
        ua = t.user_attrs
        metrics = {k: float(v) for k, v in ua.items() if k not in RESERVED and isinstance(v, (int, float)) and not isinstance(v, bool)}
        return cls(
            number=t.number,
            arch=Arch.from_json(ua["arch"]),
            metrics=metrics,
            values=tuple(t.values or ()),
            strategy=ua.get("strategy", ""),
            stage=ua.get("stage", ""),
            seed=ua.get("seed"),
            constraints=dict(t.constraints),
        )

    def to_dict(self) -> dict:
        return {"number": self.number, "arch_id": self.arch.id, "arch": self.arch.to_dict(), "describe": self.arch.describe(),
                "metrics": self.metrics, "values": list(self.values), "strategy": self.strategy, "stage": self.stage,
                "seed": self.seed, "feasible": self.feasible}  # fmt: skip


@dataclass
class Claim:
    """Outcome of :meth:`StudyDB.claim`.

    ``status``: ``"new"`` (this worker owns the arch: evaluate it, then :meth:`StudyDB.finish`),
    ``"done"`` (already evaluated: ``record`` holds the result) or ``"busy"`` (another live
    worker is evaluating it).
    """

    status: str
    arch: Arch
    trial_id: int | None = None
    number: int | None = None
    record: Record | None = None


# ---------------------------------------------------------------------------- claims
class _MemoryClaims:
    def __init__(self) -> None:
        self._rows: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def get(self, study_id: int, arch_id: str) -> int | None:
        return self._rows.get((study_id, arch_id))

    def insert(self, study_id: int, arch_id: str, trial_id: int) -> bool:
        with self._lock:
            if (study_id, arch_id) in self._rows:
                return False
            self._rows[(study_id, arch_id)] = trial_id
            return True

    def replace(self, study_id: int, arch_id: str, old: int, new: int) -> bool:
        with self._lock:
            if self._rows.get((study_id, arch_id)) != old:
                return False
            self._rows[(study_id, arch_id)] = new
            return True


class _SQLClaims:
    """The claims table (see the module docstring), next to Optuna's tables in the same database."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.sa, self.engine = sa, engine
        meta = sa.MetaData()
        self.table = sa.Table(
            CLAIMS_TABLE, meta,
            sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("arch_id", sa.String(64), primary_key=True),
            sa.Column("trial_id", sa.Integer, nullable=False),
        )  # fmt: skip
        for attempt in range(3):  # two workers creating the table at once: one may lose the race
            try:
                meta.create_all(engine, checkfirst=True)
                break
            except sa.exc.SQLAlchemyError:
                if attempt == 2:
                    raise

    def get(self, study_id: int, arch_id: str) -> int | None:
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(self.sa.select(t.c.trial_id).where(t.c.study_id == study_id, t.c.arch_id == arch_id)).first()
        return None if row is None else int(row[0])

    def insert(self, study_id: int, arch_id: str, trial_id: int) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(study_id=study_id, arch_id=arch_id, trial_id=trial_id))
            return True
        except self.sa.exc.IntegrityError:
            return False

    def replace(self, study_id: int, arch_id: str, old: int, new: int) -> bool:
        t = self.table
        with self.engine.begin() as conn:
            res = conn.execute(t.update().where(t.c.study_id == study_id, t.c.arch_id == arch_id, t.c.trial_id == old).values(trial_id=new))
        return res.rowcount == 1


# ---------------------------------------------------------------------------- the DB
def storage_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 picks psycopg 3 by
    default; the project's dev extras install psycopg2-binary."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _sqlite_wal(engine: Any) -> None:
    """SQLite in write-ahead-log mode: readers do not block the writer (several workers on one
    file) and a commit is one append instead of a journal rewrite; ``synchronous=NORMAL`` is
    durable across process crashes (not power loss), which is what a killed search needs."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()  # connections opened before the listener reconnect with it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StudyDB:
    """One search's results: an Optuna study plus the arch claims.

    Args:
        storage: ``None`` (in memory), an Optuna storage URL (``sqlite:///path.db``,
            ``postgresql://...``), or an Optuna storage object.
        study_name: the study (created if absent, loaded otherwise).
        space: the search space (its encoding gives the trial params; its hash is checked on load).
        objectives: metric names, all minimised (checked against an existing study).
        heartbeat_interval, grace_period: seconds; a RUNNING trial without a heartbeat for
            ``grace_period`` belongs to a dead worker (RDB storages only).

    Raises:
        ConfigError: an existing study was made for other objectives or another space.
    """

    def __init__(self, storage: str | Any | None, study_name: str, space: SearchSpace, objectives: Sequence[str],
                 *, heartbeat_interval: int = 5, grace_period: int = 20) -> None:
        self.space, self.objectives, self.study_name = space, tuple(objectives), study_name
        self.grace_period = grace_period
        self.codec = ArchCodec(space)
        self.url = storage if isinstance(storage, str) else None
        if storage is None:
            self.storage: Any = InMemoryStorage()
        elif isinstance(storage, str):
            storage = storage_url(storage)
            kwargs: dict[str, Any] = {}
            if storage.startswith("sqlite"):
                kwargs = {"connect_args": {"timeout": 60}}  # wait for another worker's write lock
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.storage = RDBStorage(storage, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        else:
            self.storage = storage
        engine = getattr(self.storage, "engine", None)
        if engine is not None and engine.dialect.name == "sqlite":
            _sqlite_wal(engine)
        self._claims: Any = _SQLClaims(engine) if engine is not None else _MemoryClaims()
        directions = ["minimize"] * len(self.objectives)
        self.study = optuna.create_study(storage=self.storage, study_name=study_name, directions=directions, load_if_exists=True,
                                         sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
        self.study_id = self.storage.get_study_id_from_name(study_name)
        self._check_or_init()

    def _check_or_init(self) -> None:
        attrs = self.study.user_attrs
        where = f"study {self.study_name!r}" + (f" in {self.url}" if self.url else "")
        if "objectives" not in attrs:
            self.study.set_user_attr("objectives", list(self.objectives))
            self.study.set_user_attr("space", self.space.name)
            self.study.set_user_attr("space_hash", self.space.hash)
            return
        if tuple(attrs["objectives"]) != self.objectives:
            raise ConfigError(f"{where} was made for objectives {attrs['objectives']}, not {list(self.objectives)}; use another --study-name or the same objectives")
        if attrs.get("space_hash") != self.space.hash:
            raise ConfigError(f"{where} was made for space {attrs.get('space')!r} (hash {attrs.get('space_hash')}), not {self.space.name!r} ({self.space.hash}); use another --study-name")

    # ------------------------------------------------------------------ reading
    def trials(self, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def records(self, since: int = -1) -> list[Record]:
        """Every evaluated arch (COMPLETE trials), by trial number; only numbers > ``since``."""
        return [Record.from_trial(t) for t in self.trials((TrialState.COMPLETE,)) if t.number > since and "arch" in t.user_attrs]

    def count(self, running: bool = True) -> int:
        """COMPLETE trials, plus RUNNING ones (evaluations in flight) if ``running``."""
        states = (TrialState.COMPLETE, TrialState.RUNNING) if running else (TrialState.COMPLETE,)
        return sum(1 for t in self.trials(states) if "arch" in t.user_attrs)  # unlabelled: not claimed yet

    def lookup(self, arch: Arch) -> Record | None:
        """The stored result of ``arch``, if it was evaluated."""
        tid = self._claims.get(self.study_id, arch.id)
        if tid is None:
            return None
        t = self.storage.get_trial(tid)
        return Record.from_trial(t) if t.state == TrialState.COMPLETE else None

    # ------------------------------------------------------------------ claiming
    def reap(self) -> int:
        """Fail the RUNNING trials of dead workers (see :meth:`_dead`); returns how many.

        Trials that never got an arch (a worker killed between opening and claiming one) are
        failed once they are older than ``grace_period``.
        """
        n = 0
        now = datetime.datetime.now()
        for t in self.trials((TrialState.RUNNING,)):
            if "worker" in t.user_attrs:
                n += self._dead(t)
            elif t.datetime_start is not None and (now - t.datetime_start).total_seconds() > self.grace_period:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                    self.storage.set_trial_state_values(self._tid(t.number), TrialState.FAIL)
                    n += 1
        return n

    def _tid(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def _dead(self, t: FrozenTrial) -> bool:
        """Whether RUNNING trial ``t`` belongs to a dead worker; if so it is marked FAIL.

        Dead: on this host and its process is gone, or no heartbeat for ``grace_period``
        (Optuna's :func:`~optuna.storages.fail_stale_trials`). A trial that finished meanwhile is
        not dead (the caller re-reads its state).
        """
        tid = self._tid(t.number)
        host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                self.storage.set_trial_user_attr(tid, "error", "worker died")
                self.storage.set_trial_state_values(tid, TrialState.FAIL)
                return True
            return False
        if self.url and self.storage.get_heartbeat_interval():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            now = self.storage.get_trial(tid)
            if now.state == TrialState.FAIL and "error" not in now.user_attrs:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                    self.storage.set_trial_user_attr(tid, "error", "worker died (no heartbeat)")
            return now.state == TrialState.FAIL
        return False

    def _new_trial(self, arch: Arch, attrs: Mapping[str, Any]) -> int:
        with warnings.catch_warnings():  # "heartbeat is meant for Study.optimize": we beat ourselves
            warnings.simplefilter("ignore", UserWarning)
            tid = self._tid(self.study.ask().number)
        self.storage.set_trial_user_attr(tid, "worker", worker_id())  # first, so a dead worker's trial is recognised
        for name, value in self.codec.params(arch).items():
            dist = self.codec.distributions[name]
            self.storage.set_trial_param(tid, name, dist.to_internal_repr(value), dist)
        self._label(tid, arch, attrs)
        return tid

    def _label(self, tid: int, arch: Arch, attrs: Mapping[str, Any]) -> None:
        labels = {"arch": arch.to_json(), "arch_id": arch.id, "describe": arch.describe(), "worker": worker_id(), **attrs}
        for k, v in labels.items():
            self.storage.set_trial_user_attr(tid, k, v)
        if hasattr(self.storage, "record_heartbeat") and self.url:
            self.storage.record_heartbeat(tid)

    def _drop(self, tid: int, reason: str) -> None:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            self.storage.set_trial_user_attr(tid, "duplicate_of", reason)
            self.storage.set_trial_state_values(tid, TrialState.FAIL)

    def claim(self, arch: Arch, *, strategy: str = "", stage: str = "search", seed: int | None = None,
              trial_number: int | None = None) -> Claim:
        """Claim ``arch`` for evaluation by this worker, or say why not.

        Args:
            arch: the proposal (validated against the space).
            strategy, stage, seed: recorded on the trial.
            trial_number: a RUNNING trial that already holds this proposal (Optuna samplers ask
                their own trial); it is used instead of a new one, or failed as a duplicate.
        """
        self.space.validate(arch)
        attrs = {"strategy": strategy, "stage": stage, "seed": seed}
        mine: int | None = None
        if trial_number is not None:
            mine = self._tid(trial_number)
            self._label(mine, arch, attrs)
        for _ in range(5):
            owner = self._claims.get(self.study_id, arch.id)
            if owner is not None:
                t = self.storage.get_trial(owner)
                if t.state == TrialState.RUNNING and self._dead(t):
                    t = self.storage.get_trial(owner)
                elif t.state == TrialState.RUNNING:
                    t = self.storage.get_trial(owner)  # it may have finished while we looked
                if t.state in (TrialState.COMPLETE, TrialState.RUNNING):
                    if mine is not None:
                        self._drop(mine, f"{arch.id} (trial {t.number})")
                    done = t.state == TrialState.COMPLETE
                    return Claim("done" if done else "busy", arch, owner, t.number, Record.from_trial(t) if done else None)
                # the owner's trial failed (evaluation error, or its worker died): take the arch over
                mine = mine if mine is not None else self._new_trial(arch, attrs)
                if self._claims.replace(self.study_id, arch.id, owner, mine):
                    return Claim("new", arch, mine, self.storage.get_trial(mine).number)
                continue
            mine = mine if mine is not None else self._new_trial(arch, attrs)
            if self._claims.insert(self.study_id, arch.id, mine):
                return Claim("new", arch, mine, self.storage.get_trial(mine).number)
        raise RuntimeError(f"could not claim arch {arch.id}: the claims table kept changing (5 attempts)")

    @contextlib.contextmanager
    def heartbeat(self, claim: Claim) -> Iterator[None]:
        """Keep ``claim``'s trial alive (Optuna heartbeat) while the block runs (RDB only)."""
        interval = self.storage.get_heartbeat_interval() if hasattr(self.storage, "get_heartbeat_interval") else None
        if not self.url or not interval or claim.trial_id is None:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                with contextlib.suppress(Exception):  # a missed beat is retried at the next interval
                    self.storage.record_heartbeat(claim.trial_id)

        th = threading.Thread(target=beat, daemon=True)
        th.start()
        try:
            yield
        finally:
            stop.set()
            th.join()

    def finish(self, claim: Claim, metrics: Mapping[str, float], constraints: Mapping[str, float] | None = None) -> Record:
        """Store ``metrics`` (every one as a user attr), the objective values and the constraints
        (``{name: value}``, <= 0 feasible; what Optuna's samplers read as ``trial.constraints``)."""
        if claim.status != "new":
            raise ValueError(f"finish() needs a claim this worker owns, got status {claim.status!r}")
        m = with_derived(metrics)
        clash = sorted(set(m) & RESERVED)
        if clash:
            raise ValueError(f"metric names {clash} are reserved for trial attributes; rename them in the evaluator")
        values = objective_values(m, self.objectives)
        tid = claim.trial_id
        for k, v in m.items():
            self.storage.set_trial_user_attr(tid, k, v)
        for k, c in (constraints or {}).items():
            self.storage.set_trial_system_attr(tid, f"{_CONSTRAINT_PREFIX}{k}", float(c))
        self.storage.set_trial_state_values(tid, TrialState.COMPLETE, values)
        return Record.from_trial(self.storage.get_trial(tid))

    def fail(self, claim: Claim, error: str) -> None:
        """Mark ``claim``'s trial FAIL (the arch may be claimed again later)."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            self.storage.set_trial_user_attr(claim.trial_id, "error", error[:2000])
            self.storage.set_trial_state_values(claim.trial_id, TrialState.FAIL)

    def __repr__(self) -> str:
        return f"StudyDB(study={self.study_name!r}, storage={self.url or type(self.storage).__name__}, objectives={list(self.objectives)})"

