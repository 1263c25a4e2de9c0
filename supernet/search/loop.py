"""The search loop: ask, claim, evaluate, store, tell; restartable and safe with many workers.

    strategy.ask() -> arch -> db.claim(arch) -> new:  evaluate, db.finish, strategy.tell
                                             -> done: strategy.tell(stored result)  (no evaluation)
                                             -> busy: strategy.forget  (another worker has it)

- ``n_trials`` counts the evaluated archs of the whole study (all workers, all runs): a killed
  search started again with the same study goes on where it stopped. On start, the study's
  results are replayed into the strategy (``tell`` in trial order), and before every ask the
  results other workers stored since are told too.
- With several workers, each checks the count before claiming, so the study may end with up to
  ``workers - 1`` evaluations more than ``n_trials``; never with an arch evaluated twice.
- The progress bar shows the best fitness so far (the first objective of the best arch that
  meets the target).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from tqdm.auto import tqdm

from supernet.search.evaluators import ArchEvaluator
from supernet.search.objectives import INFEASIBLE
from supernet.search.storage import Record, StudyDB
from supernet.search.strategies.base import Strategy
from supernet.space import Arch

__all__ = ["SearchResult", "run_search"]


@dataclass
class SearchResult:
    """What one :func:`run_search` call did and what the study now holds.

    Attributes:
        records: every evaluated arch of the study, by trial number.
        evaluated: the archs this call evaluated.
        proposals: every arch the strategy proposed in this call, in order (duplicates included).
        best: the fittest record of the study (None if empty).
        duplicates, busy: proposals that were already evaluated / being evaluated elsewhere.
        exhausted: stopped because ``max_idle`` proposals in a row were not new.
    """

    records: list[Record] = field(default_factory=list)
    evaluated: list[Record] = field(default_factory=list)
    proposals: list[Arch] = field(default_factory=list)
    best: Record | None = None
    best_fitness: float = math.inf
    duplicates: int = 0
    busy: int = 0
    exhausted: bool = False


def _fmt(f: float) -> str:
    return "none feasible" if f >= INFEASIBLE else f"{f:.4g}"


def run_search(
    strategy: Strategy,
    evaluator: ArchEvaluator,
    db: StudyDB,
    *,
    n_trials: int,
    seed: int | None = None,
    progress: bool = True,
    max_idle: int = 200,
    stop_when: Callable[[Record, float], bool] | None = None,
    idle_sleep: float = 0.05,
) -> SearchResult:
    """Run ``strategy`` until the study holds ``n_trials`` evaluated archs.

    Args:
        strategy: proposes archs (bound to ``db`` here).
        evaluator: ``evaluate(arch) -> metrics``.
        db: the study database.
        n_trials: evaluated archs the study should hold at the end.
        seed: recorded on every trial (the strategy was seeded when it was built).
        progress: show a tqdm bar with the best fitness so far.
        max_idle: stop after this many proposals in a row that were not new (small spaces).
        stop_when: ``f(record, fitness) -> bool`` after each evaluation; True stops (benchmarks).
        idle_sleep: seconds to wait after a proposal another worker is evaluating.

    Returns:
        :class:`SearchResult`.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    fitness = strategy.fitness
    target = fitness.target
    res = SearchResult()
    strategy.bind(db)
    db.reap()  # RUNNING trials of killed workers: FAIL, so their archs can be claimed again

    told: set[int] = set()
    last = -1

    def absorb(rec: Record, tell: bool) -> None:
        nonlocal last
        last = max(last, rec.number)
        if rec.number in told:
            return
        told.add(rec.number)
        f = fitness(rec.arch, rec.metrics)
        if f < res.best_fitness:
            res.best_fitness, res.best = f, rec
        if tell:
            strategy.tell(rec.arch, rec.metrics)

    for rec in db.records():  # replay: a restarted search resumes with what it knew
        absorb(rec, tell=True)
    bar = tqdm(total=n_trials, initial=min(len(told), n_trials), desc=f"search {strategy.name}", disable=not progress, dynamic_ncols=True)
    bar.set_postfix_str(f"best {fitness.primary}={_fmt(res.best_fitness)}")
    idle = 0
    try:
        while db.count(running=True) < n_trials:
            for rec in db.records(since=last):  # other workers' results
                absorb(rec, tell=True)
            arch = strategy.ask()
            res.proposals.append(arch)
            claim = db.claim(arch, strategy=strategy.name, stage=strategy.stage(arch), seed=seed, trial_number=strategy.trial_number(arch))
            if claim.status != "new":
                idle += 1
                if claim.status == "done":
                    res.duplicates += 1
                    strategy.tell(arch, claim.record.metrics)
                    strategy.on_duplicate(arch)
                else:
                    res.busy += 1
                    strategy.forget(arch)
                    time.sleep(idle_sleep)
                if idle >= max_idle:
                    res.exhausted = True
                    bar.write(f"stopping: {max_idle} proposals in a row were already evaluated (is the space exhausted?)")
                    break
                continue
            idle = 0
            with db.heartbeat(claim):
                try:
                    metrics = dict(evaluator.evaluate(arch))
                    constraints = target.constraint_values(metrics) if target is not None else {}
                    rec = db.finish(claim, metrics, constraints)
                except BaseException as e:
                    db.fail(claim, f"{type(e).__name__}: {e}")
                    raise
            res.evaluated.append(rec)
            absorb(rec, tell=True)
            bar.update(1)
            bar.set_postfix_str(f"best {fitness.primary}={_fmt(res.best_fitness)}")
            if stop_when is not None and stop_when(rec, fitness(rec.arch, rec.metrics)):
                break
    finally:
        bar.close()
    res.records = db.records()
    for rec in res.records:
        absorb(rec, tell=False)
    return res
