"""Transfer-seeded search: a first population from compound scaling and from another study.

Seeds are proposed first, then an inner strategy (evolution by default) takes over, having been
told every seed's result, so its first population *is* the seeds:

- **Compound scaling** (EfficientNet, Tan & Le 2019): from a small base arch, depth and width
  grow together, ``depth = d0 * alpha ** phi`` and ``width = w0 * beta ** phi`` for ``phi = 0, 1,
  2, ...`` (EfficientNet's ``alpha = 1.2``, ``beta = 1.1``), each snapped to the nearest value of
  the space, until both reach the space's maximum. Added layers copy the base's last layer.
- **Another study**: the ``top_k`` archs of a finished study (e.g. the edge search seeding the
  mobile one), best first by its first objective, feasible before infeasible. An arch outside
  this space is projected onto it (nearest valid value per decision, as
  :meth:`~supernet.search.encoding.ArchCodec.decode` repairs), never dropped silently.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from supernet.search.encoding import ArchCodec, arch_value
from supernet.search.objectives import Fitness
from supernet.search.strategies.base import Strategy, register_strategy
from supernet.space import Arch, SearchSpace

__all__ = ["compound_scaling", "project", "top_archs", "TransferSeeded"]


def project(space: SearchSpace, arch: Arch) -> Arch:
    """The arch of ``space`` nearest to ``arch`` (itself when it is in the space)."""
    if space.contains(arch):
        return arch
    codec = ArchCodec(space)
    return codec.decode_values({s.name: arch_value(arch, s.key) for s in codec.slots})


def compound_scaling(space: SearchSpace, base: Arch | None = None, *, depth_coefficient: float = 1.2,
                     width_coefficient: float = 1.1, max_steps: int = 64) -> list[Arch]:
    """Archs from ``base`` (default ``space.smallest()``) scaled in depth and width together.

    Returns:
        Distinct archs, smallest first (``phi = 0`` is ``base`` itself).
    """
    if depth_coefficient < 1 or width_coefficient < 1 or depth_coefficient * width_coefficient <= 1:
        raise ValueError(f"compound scaling needs coefficients >= 1 that grow something, got depth {depth_coefficient}, width {width_coefficient}")
    base = base or space.smallest()
    codec = ArchCodec(space)
    p0 = {s.name: arch_value(base, s.key) for s in codec.slots}
    last = base.depth - 1
    max_depth, max_width = max(space.spec.depths), max(space.spec.widths)
    out: list[Arch] = []
    for phi in range(max_steps):
        depth, width = base.depth * depth_coefficient**phi, base.width * width_coefficient**phi
        params = dict(p0, depth=depth, width=width)
        for i in range(base.depth, space.num_layers):  # new layers repeat the base's last layer
            for s in codec.slots:
                if s.key[:2] == ("layers", i):
                    params[s.name] = p0.get(f"layers.{last}.{s.key[2]}")
        arch = codec.decode_values(params)
        if arch not in out:
            out.append(arch)
        if depth >= max_depth and width >= max_width:
            break
    return out


def top_archs(storage: str | Any, study_name: str, k: int, space: SearchSpace | None = None) -> list[Arch]:
    """The ``k`` best archs of another study (feasible first, then by first objective value),
    projected onto ``space`` when given; duplicates after projection are merged."""
    import optuna

    from supernet.config import ConfigError
    from supernet.search.storage import Record, storage_url

    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url(storage) if isinstance(storage, str) else storage)
    except KeyError as e:
        raise ConfigError(f"transfer: no study {study_name!r} in {storage}; list them with `optuna studies --storage URL`") from e
    records = [Record.from_trial(t) for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if "arch" in t.user_attrs]
    records.sort(key=lambda r: (not r.feasible, r.values[0] if r.values else float("inf"), r.number))
    out: list[Arch] = []
    for r in records:
        a = project(space, r.arch) if space is not None else r.arch
        if a not in out:
            out.append(a)
        if len(out) >= k:
            break
    return out


@register_strategy("transfer")
class TransferSeeded(Strategy):
    """Propose ``seeds`` first, then delegate to ``inner`` (told every result, seeds included).

    Args:
        space, fitness, seed: see :class:`~supernet.search.strategies.base.Strategy`.
        inner: the strategy that continues after the seeds.
        seeds: ``(label, arch)`` pairs, proposed in order (label goes to the trial's ``stage``).
    """

    name = "transfer"

    def __init__(self, space: SearchSpace, fitness: Fitness, seed: int = 0, *, inner: Strategy,
                 seeds: Sequence[tuple[str, Arch]] = ()) -> None:
        super().__init__(space, fitness, seed)
        self.inner = inner
        self.cheap_ask = inner.cheap_ask  # type: ignore[misc]
        self._queue: list[tuple[str, Arch]] = []
        self._stages: dict[str, str] = {}
        for label, a in seeds:
            a = project(space, a)
            if a.id not in self._stages:
                self._queue.append((label, a))
                self._stages[a.id] = f"seed:{label}"

    @property
    def seeds(self) -> list[Arch]:
        return [a for label, a in self._queue]

    def bind(self, db: Any) -> None:
        self.inner.bind(db)

    def ask(self) -> Arch:
        if self._queue:
            return self._queue.pop(0)[1]
        return self.inner.ask()

    def tell(self, arch: Arch, metrics: Mapping[str, float]) -> None:
        self.inner.tell(arch, metrics)

    def forget(self, arch: Arch) -> None:
        self.inner.forget(arch)

    def on_duplicate(self, arch: Arch) -> None:
        self.inner.on_duplicate(arch)

    def trial_number(self, arch: Arch) -> int | None:
        return self.inner.trial_number(arch)  # seeds have none: the study opens a trial for them

    def stage(self, arch: Arch) -> str:
        return self._stages.get(arch.id) or self.inner.stage(arch)
