"""Search strategies, all behind ``ask() -> Arch`` / ``tell(arch, metrics)``.

=============  ===========================================================================
``random``     uniform samples (:class:`RandomSearch`)
``evolution``  regularized (aging) evolution (:class:`RegularizedEvolution`)
``reinforce``  REINFORCE controller with a moving-average baseline (:class:`Reinforce`)
``tpe``        Optuna TPE, Bayesian optimisation (:class:`TPE`)
``gp``         Optuna GP, Bayesian optimisation (:class:`GP`)
``nsga2``      Optuna NSGA-II over several objectives (:class:`NSGA2`)
``darts``      argmax / budgeted DP / samples of DARTS alpha (:class:`DartsDerived`)
``transfer``   compound-scaling and other-study seeds, then an inner strategy (:class:`TransferSeeded`)
=============  ===========================================================================

:class:`PredictorScreen` wraps a strategy with a predictor pre-screen.
"""

from supernet.search.strategies.base import STRATEGIES, Strategy, register_strategy
from supernet.search.strategies.darts import Budget, DartsDerived, LUTCost, ParamsCost, load_alphas
from supernet.search.strategies.evolution import RandomSearch, RegularizedEvolution
from supernet.search.strategies.optuna_samplers import GP, NSGA2, TPE, OptunaStrategy
from supernet.search.strategies.prescreen import PredictorScreen
from supernet.search.strategies.reinforce import Reinforce
from supernet.search.strategies.transfer import TransferSeeded, compound_scaling, project, top_archs

__all__ = [
    "STRATEGIES", "Strategy", "register_strategy", "RandomSearch", "RegularizedEvolution", "Reinforce", "OptunaStrategy",
    "TPE", "GP", "NSGA2", "DartsDerived", "Budget", "ParamsCost", "LUTCost", "load_alphas", "TransferSeeded",
    "compound_scaling", "project", "top_archs", "PredictorScreen",
]  # fmt: skip
