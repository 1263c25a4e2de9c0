"""The study database: what a trial holds, no double evaluations, restarts, parallel workers.

The PostgreSQL test starts a throwaway server itself (initdb + pg_ctl in a temp folder, Unix
socket only, no TCP) and skips with the reason when the server binaries or psycopg2 are absent.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from supernet.search.evaluators import SyntheticEvaluator
from supernet.search.loop import run_search
from supernet.search.objectives import Fitness
from supernet.search.storage import StudyDB, storage_url
from supernet.search.strategies import RandomSearch, RegularizedEvolution
from supernet.search.targets import Limits, Target
from supernet.space import SearchSpace

REPO = Path(__file__).resolve().parents[1]
OBJ = ("wer", "latency_ms")
TINY = REPO / "configs/space/tiny.yaml"


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return SearchSpace.from_yaml(TINY)


@pytest.fixture(scope="module")
def target() -> Target:
    return Target(name="t", limits=Limits(latency_ms=6.0), objectives=list(OBJ))


class Counting:
    """Synthetic metrics; counts calls; optional delay (to make races and kills likely)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.ev, self.delay, self.calls = SyntheticEvaluator(seed=0), delay, []

    def evaluate(self, arch):
        self.calls.append(arch.id)
        time.sleep(self.delay)
        return self.ev.evaluate(arch)


def test_trial_holds_arch_objectives_metrics_and_provenance(tmp_path, tiny, target):
    url = f"sqlite:///{tmp_path / 's.db'}"
    db = StudyDB(url, "s", tiny, OBJ)
    run_search(RegularizedEvolution(tiny, Fitness(OBJ, target), 3, population=4, sample=2), Counting(), db, n_trials=6,
               seed=3, progress=False)  # fmt: skip
    study = optuna.load_study(study_name="s", storage=url)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 6
    t = trials[0]
    from supernet.space import Arch

    a = Arch.from_json(t.user_attrs["arch"])
    assert t.user_attrs["arch_id"] == a.id and tiny.contains(a)
    assert t.values == [t.user_attrs["wer"], t.user_attrs["latency_ms"]]
    for m in ("wer", "cer", "loss", "params", "latency_ms", "rtf", "wer/lang/en", "wer_mean"):
        assert m in t.user_attrs
    assert (t.user_attrs["strategy"], t.user_attrs["stage"], t.user_attrs["seed"]) == ("evolution", "search", 3)
    assert set(t.constraints) == {"latency_ms"}
    assert t.constraints["latency_ms"] == pytest.approx(t.user_attrs["latency_ms"] / 6.0 - 1)
    assert db.codec.decode(t.params) == a  # Optuna params are the arch too
    assert study.user_attrs["objectives"] == list(OBJ) and study.user_attrs["space_hash"] == tiny.hash


def test_existing_study_must_match(tmp_path, tiny):
    url = f"sqlite:///{tmp_path / 's.db'}"
    StudyDB(url, "s", tiny, OBJ)
    from supernet.config import ConfigError

    with pytest.raises(ConfigError, match="objectives"):
        StudyDB(url, "s", tiny, ("wer", "params"))
    with pytest.raises(ConfigError, match="space"):
        StudyDB(url, "s", SearchSpace.from_yaml(REPO / "configs/space/conformer_elastic.yaml"), OBJ)


def test_claims_dedupe_and_race(tmp_path, tiny):
    db = StudyDB(f"sqlite:///{tmp_path / 's.db'}", "s", tiny, OBJ)
    other = StudyDB(f"sqlite:///{tmp_path / 's.db'}", "s", tiny, OBJ)  # a second worker's connection
    arch = tiny.largest()
    c1 = db.claim(arch, strategy="x")
    c2 = other.claim(arch, strategy="y")
    assert c1.status == "new" and c2.status == "busy"  # the first claim wins; the live owner keeps it
    rec = db.finish(c1, SyntheticEvaluator().evaluate(arch))
    c3 = other.claim(arch)
    assert c3.status == "done" and c3.record.number == rec.number and c3.record.metrics == rec.metrics
    db.fail(db.claim(tiny.smallest()), "boom")  # a failed evaluation frees the arch
    assert other.claim(tiny.smallest()).status == "new"


def test_resume_never_reevaluates(tiny, target):
    db = StudyDB(None, "s", tiny, OBJ)
    first = Counting()
    fitness = Fitness(OBJ, target)
    run_search(RandomSearch(tiny, fitness, 0), first, db, n_trials=5, progress=False)
    again = Counting()
    res = run_search(RandomSearch(tiny, fitness, 0), again, db, n_trials=9, progress=False)
    # the same seed proposes the first 5 again: found in the study, not evaluated
    assert res.duplicates >= 5 and len(again.calls) == 4
    assert len(set(first.calls) | set(again.calls)) == 9 and len(db.records()) == 9


_WORKER = """
import glob, os, sys, time, warnings
warnings.simplefilter("ignore")
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from supernet.search.evaluators import SyntheticEvaluator
from supernet.search.loop import run_search
from supernet.search.objectives import Fitness
from supernet.search.storage import StudyDB, storage_url
from supernet.search.strategies import RandomSearch
from supernet.space import SearchSpace

url, n, seed, delay, out, together = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6])
space = SearchSpace.from_yaml({tiny!r})

class Slow:
    def __init__(self): self.ev, self.calls = SyntheticEvaluator(seed=0), []
    def evaluate(self, arch):
        self.calls.append(arch.id)
        open(out, "a").write(arch.id + "\\n")
        time.sleep(delay)
        return self.ev.evaluate(arch)

db = StudyDB(url, "par", space, ("wer", "latency_ms"))
# start together: imports take seconds and vary, the whole search well under one, so a worker
# that got there late would find the budget spent and the race would not happen
open(out + ".ready", "w").close()
deadline = time.time() + 120
while len(glob.glob(os.path.join(os.path.dirname(out), "*.ready"))) < together and time.time() < deadline:
    time.sleep(0.01)
run_search(RandomSearch(space, Fitness(("wer", "latency_ms")), seed), Slow(), db, n_trials=n, seed=seed, progress=False)
"""


def _worker(tmp_path: Path, url: str, n: int, seed: int, delay: float, name: str,
            together: int = 1) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(tiny=str(TINY)))
    out = tmp_path / f"{name}.ids"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), url, str(n), str(seed), str(delay), str(out), str(together)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT), out  # fmt: skip


def _check_parallel(tmp_path: Path, url: str, n: int = 12) -> None:
    StudyDB(url, "par", SearchSpace.from_yaml(TINY), OBJ)  # create tables and study before the race
    # the same seed in both workers: they propose the same archs in the same order, so every
    # proposal is raced for; distinct seeds are the normal use, this is the hard case
    procs = [_worker(tmp_path, url, n, 0, 0.05, f"w{i}", together=2) for i in range(2)]
    for p, _ in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode()[-3000:]
    evaluated = [line for _, f in procs if f.exists() for line in f.read_text().split()]
    study = optuna.load_study(study_name="par", storage=storage_url(url))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    ids = [t.user_attrs["arch_id"] for t in complete]
    assert len(ids) == len(set(ids))  # no arch stored twice
    assert sorted(ids) == sorted(evaluated)  # every evaluation stored (none lost), none done twice
    assert n <= len(ids) <= n + 1  # each worker checks the count before claiming
    assert not study.get_trials(states=(TrialState.RUNNING,))
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2  # both took part


def test_parallel_workers_sqlite(tmp_path):
    _check_parallel(tmp_path, f"sqlite:///{tmp_path / 'par.db'}")


def test_killed_search_resumes(tmp_path, tiny):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    StudyDB(url, "par", tiny, OBJ)
    proc, ids = _worker(tmp_path, url, 30, 0, 0.4, "killed")
    deadline = time.time() + 120
    while time.time() < deadline:
        done = len(optuna.load_study(study_name="par", storage=url).get_trials(states=(TrialState.COMPLETE,)))
        if done >= 3:
            break
        time.sleep(0.2)
    time.sleep(0.2)  # most likely in the middle of an evaluation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="par", storage=url).get_trials()
    n_done = sum(t.state == TrialState.COMPLETE for t in before)
    assert n_done >= 3
    counting = Counting()
    db = StudyDB(url, "par", tiny, OBJ)
    res = run_search(RandomSearch(tiny, Fitness(OBJ), 0), counting, db, n_trials=n_done + 4, progress=False)
    after = optuna.load_study(study_name="par", storage=url).get_trials()
    ids_done = [t.user_attrs["arch_id"] for t in after if t.state == TrialState.COMPLETE]
    assert len(ids_done) == len(set(ids_done)) == n_done + 4
    assert len(counting.calls) == 4 and res.duplicates >= n_done  # resumed: old results reused, not re-evaluated
    assert not [t for t in after if t.state == TrialState.RUNNING]  # the killed worker's trial was reaped (same host, no such pid)
    killed = [t for t in after if t.state == TrialState.FAIL]
    assert all("worker died" in t.user_attrs.get("error", "") for t in killed)


# ---------------------------------------------------------------------------- PostgreSQL
def _pg_bin() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and Path(found).with_name("initdb").exists() else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on a Unix socket in a temp folder (no TCP)."""
    pytest.importorskip("psycopg2", reason="psycopg2 not installed (pip install psycopg2-binary; in pyproject's dev extras)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql to run this test")
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", 54329 + os.getpid() % 500
    try:
        subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)  # fmt: skip
        opts = f"-k {base} -p {port} -c listen_addresses='' -F"
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
                       check=True, capture_output=True)  # fmt: skip
    except subprocess.CalledProcessError as e:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start a throwaway PostgreSQL: {e.stderr.decode()[-1500:]} {log[-1500:]}")
    try:
        yield f"postgresql://postgres@/postgres?host={base}&port={port}"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_parallel_workers_postgresql(tmp_path, postgres_url):
    _check_parallel(tmp_path, postgres_url)


def test_postgresql_claims_race(postgres_url, tiny):
    a = StudyDB(postgres_url, "race", tiny, OBJ)
    b = StudyDB(postgres_url, "race", tiny, OBJ)
    arch = tiny.largest()
    assert [a.claim(arch).status, b.claim(arch).status] == ["new", "busy"]
    assert json.loads(json.dumps([r.to_dict() for r in a.records()])) == []
    assert storage_url(postgres_url).startswith("postgresql")

