"""Search over a trained supernet: strategies, study storage, Pareto fronts, targets.

One concept per module:

- :mod:`~supernet.search.encoding`: Arch <-> Optuna parameters (:class:`ArchCodec`).
- :mod:`~supernet.search.objectives`: metric names, objective presets, :class:`Fitness`.
- :mod:`~supernet.search.targets`: :class:`Target` (``configs/targets/*.yaml``), :func:`select_for_target`.
- :mod:`~supernet.search.pareto`: non-dominated sorting and hypervolume (Optuna's).
- :mod:`~supernet.search.evaluators`: the evaluator protocol, a JSONL table, a synthetic stand-in.
- :mod:`~supernet.search.storage`: :class:`StudyDB`, the Optuna study as results database.
- :mod:`~supernet.search.strategies`: random, evolution, REINFORCE, TPE, GP, NSGA-II, DARTS-derived, transfer.
- :mod:`~supernet.search.loop`: :func:`run_search`.
- :mod:`~supernet.search.config`: :class:`SearchConfig` (``configs/search/*.yaml``).
- :mod:`~supernet.search.plots`: Pareto front, best so far, choice frequencies.
"""

from supernet.search.encoding import ArchCodec
from supernet.search.evaluators import ArchEvaluator, MetricsAdapter, SyntheticEvaluator, TableEvaluator, write_table
from supernet.search.loop import SearchResult, run_search
from supernet.search.objectives import PRESETS, Fitness, resolve_objectives
from supernet.search.pareto import hypervolume, nondominated_ranks, pareto_front, pareto_mask
from supernet.search.storage import Claim, Record, StudyDB
from supernet.search.strategies import STRATEGIES, Strategy
from supernet.search.targets import InfeasibleTargetError, Limits, Target, Violation, load_target, select_for_target

__all__ = [
    "ArchCodec", "ArchEvaluator", "MetricsAdapter", "SyntheticEvaluator", "TableEvaluator", "write_table", "SearchResult",
    "run_search", "PRESETS", "Fitness", "resolve_objectives", "hypervolume", "nondominated_ranks", "pareto_front",
    "pareto_mask", "Claim", "Record", "StudyDB", "STRATEGIES", "Strategy", "InfeasibleTargetError", "Limits", "Target",
    "Violation", "load_target", "select_for_target",
]  # fmt: skip
