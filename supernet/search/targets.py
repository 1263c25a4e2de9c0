"""Deployment targets: device, limits and objectives, and picking the arch that fits one.

A target (``configs/targets/*.yaml``; ``mobile``, ``edge`` and ``server`` ship) says where a model
will run and what it must respect::

    name: mobile
    device: phone-class ARM CPU, 1 big core
    threads: 1
    streaming: true                 # only streaming archs (chunk > 0)
    limits:
      chunks: [8, 16]               # allowed chunk sizes in encoder frames (0 = full context)
      lookahead: 2                  # at most this many encoder frames of look-ahead
      chunk_latency_ms: 120
      params: 3000000
      memory_mb: 64
    objectives: streaming           # a preset of supernet.search.objectives, or [wer, chunk_latency_ms]

Architecture limits (``streaming``, ``chunks``, ``lookahead``) shrink the search space itself
(:meth:`Target.restrict`), so no strategy wastes evaluations on archs the target cannot run.
Metric limits (``latency_ms``, ``params``, ``rtf``, ``chunk_latency_ms``, ``memory_mb``) are
checked on measured metrics (:meth:`Target.violations`).

:func:`select_for_target` returns the best feasible arch of a set of evaluated candidates, or
raises :class:`InfeasibleTargetError` naming the closest infeasible ones and by how much each
breaks which limit. :func:`select_confirmed` does the same and then has each pick confirmed by a
second measurement (e.g. a paired latency against the baseline), taking the next best on a refusal.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from supernet.config import ConfigError, from_dict, load_yaml
from supernet.search.objectives import resolve_objectives, with_derived
from supernet.space import Arch, SearchSpace

__all__ = ["Limits", "Target", "Violation", "InfeasibleTargetError", "load_target", "select_for_target", "select_confirmed",
           "TARGETS_DIR"]

TARGETS_DIR = Path(__file__).resolve().parents[2] / "configs" / "targets"
# Metric limits: limit field -> metric name (same names, kept explicit for the error messages).
_METRIC_LIMITS = ("latency_ms", "params", "rtf", "chunk_latency_ms", "memory_mb")


@dataclass
class Limits:
    """Upper bounds; ``None`` = unconstrained."""

    latency_ms: float | None = None
    params: int | None = None
    rtf: float | None = None
    chunk_latency_ms: float | None = None
    memory_mb: float | None = None
    chunks: list[int] | None = None
    lookahead: int | None = None


@dataclass(frozen=True)
class Violation:
    """One broken limit: ``value`` exceeds ``bound`` by ``excess`` (relative, 0.2 = 20 % over)."""

    limit: str
    value: float
    bound: float

    @property
    def excess(self) -> float:
        if self.limit in ("chunks", "streaming"):
            return 1.0
        return (self.value - self.bound) / max(abs(self.bound), 1e-12)

    def __str__(self) -> str:
        if self.limit == "streaming":
            return "needs a streaming arch (chunk > 0), got full context"
        if self.limit == "chunks":
            return f"chunk {self.value:g} not in the allowed chunks {self.bound}"
        return f"{self.limit} {self.value:.4g} > {self.bound:.4g} (+{100 * self.excess:.1f}%)"


@dataclass
class Target:
    """A deployment target (see the module docstring for the YAML).

    Args:
        name: short name (``mobile``).
        device: what the numbers are for, in words (latency tables must be measured there).
        threads: intra-op threads the latency is measured with.
        streaming: True: only streaming archs; False: only full context; None: either.
        limits: upper bounds (:class:`Limits`).
        objectives: preset name or list of metric names to minimise.
        latency_lut: optional latency lookup table measured on this device (``supernet profile lut``).
        reference_seconds: utterance length the latency / RTF limits refer to.
        description: free text.
    """

    name: str
    device: str = "this machine"
    threads: int = 1
    streaming: bool | None = None
    limits: Limits = field(default_factory=Limits)
    objectives: Any = "wer_latency"
    latency_lut: str | None = None
    reference_seconds: float = 4.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        self.objectives = resolve_objectives(self.objectives, where=f"target {self.name}: objectives")
        ch = self.limits.chunks
        if ch is not None:
            if not ch:
                raise ValueError("limits.chunks is empty; list allowed chunk sizes (0 = full context) or leave it out")
            if self.streaming and all(c == 0 for c in ch):
                raise ValueError("streaming: true but limits.chunks allows only 0 (full context)")

    def tightened(self, **limits: float) -> "Target":
        """A copy whose metric limits are at most ``limits`` (``latency_ms=8.2``: the smaller of
        8.2 and the target's own ``latency_ms``)."""
        unknown = sorted(set(limits) - set(_METRIC_LIMITS))
        if unknown:
            raise ValueError(f"tightened: {unknown} are not metric limits ({', '.join(_METRIC_LIMITS)})")
        new = {k: v if getattr(self.limits, k) is None else min(v, getattr(self.limits, k)) for k, v in limits.items()}
        return dataclasses.replace(self, limits=dataclasses.replace(self.limits, **new))

    # ------------------------------------------------------------------ checks
    def violations(self, arch: Arch | None, metrics: Mapping[str, float]) -> list[Violation]:
        """Every limit ``arch`` / ``metrics`` break (empty list: feasible)."""
        out: list[Violation] = []
        m = with_derived(metrics)
        if arch is not None:
            if self.streaming and not arch.streaming:
                out.append(Violation("streaming", 0, 1))
            if self.limits.chunks is not None and arch.chunk not in self.limits.chunks:
                out.append(Violation("chunks", arch.chunk, self.limits.chunks))  # type: ignore[arg-type]
            if self.limits.lookahead is not None and (arch.lookahead or 0) > self.limits.lookahead:
                out.append(Violation("lookahead", arch.lookahead or 0, self.limits.lookahead))
        for name in _METRIC_LIMITS:
            bound = getattr(self.limits, name)
            if bound is None:
                continue
            if name not in m:
                raise ConfigError(
                    f"target {self.name}: limits.{name} is set but the evaluator gave no {name!r} "
                    f"(metrics: {', '.join(sorted(m)) or 'none'}); measure it or drop the limit"
                )
            if m[name] > bound:
                out.append(Violation(name, m[name], bound))
        return out

    def constraint_values(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """``{metric: value / bound - 1}`` per metric limit (<= 0: met).

        What Optuna's constrained samplers read (architecture limits need none: :meth:`restrict`
        already keeps the space inside them).
        """
        m = with_derived(metrics)
        out = {}
        for name in _METRIC_LIMITS:
            bound = getattr(self.limits, name)
            if bound is not None:
                if name not in m:
                    raise ConfigError(f"target {self.name}: limits.{name} is set but the evaluator gave no {name!r}")
                out[name] = m[name] / bound - 1.0 if bound > 0 else m[name] - bound
        return out

    def restrict(self, space: SearchSpace) -> SearchSpace:
        """The part of ``space`` that meets the architecture limits (streaming, chunks, look-ahead).

        Raises:
            ConfigError: no arch of the space meets them (names the space and the target).
        """
        sp = space.spec
        chunks = [c for c, _ in sp.streams]
        keep = [
            (c, la) for c, la in sp.streams
            if (self.limits.chunks is None or c in self.limits.chunks)
            and not (self.streaming is True and c == 0)
            and not (self.streaming is False and c > 0)
            and (self.limits.lookahead is None or (la or 0) <= self.limits.lookahead)
        ]  # fmt: skip
        if not keep:
            raise ConfigError(
                f"target {self.name}: no (chunk, look-ahead) of space {sp.where} meets streaming={self.streaming}, "
                f"limits.chunks={self.limits.chunks}, limits.lookahead={self.limits.lookahead}; space chunks: {sorted(set(chunks))}"
            )
        if keep == list(sp.streams):
            return space
        raw = copy.deepcopy(sp.raw)
        stream = raw.setdefault("streaming", {})
        stream["chunk"] = list(dict.fromkeys(c for c, _ in keep))
        lookaheads = sorted({la for _, la in keep if la is not None})
        if lookaheads:
            stream["lookahead"] = lookaheads
        else:
            stream.pop("lookahead", None)
        if all(c > 0 for c, _ in keep):  # full-context blocks can no longer be used: drop them
            full = set(sp.full_context_blocks)
            enc = raw.get("encoder", {})
            groups = [enc.get("layer", {})] + list((enc.get("overrides") or {}).values())
            for g in groups:
                if isinstance(g, dict) and "block" in g:
                    g["block"] = [b for b in g["block"] if b not in full]
        try:
            return SearchSpace.from_dict(raw, where=f"{sp.where} (restricted to target {self.name})", cost_model=space._cost_model)
        except ConfigError as e:
            raise ConfigError(f"target {self.name}: cannot restrict space {sp.where} to its limits: {e}") from e


class InfeasibleTargetError(ConfigError):
    """No candidate meets the target; the message names the closest ones and what each breaks."""

    def __init__(self, message: str, closest: list[tuple[Any, list[Violation]]]) -> None:
        super().__init__(message)
        self.closest = closest


def load_target(name_or_path: str | Path) -> Target:
    """A target by name (``configs/targets/NAME.yaml``) or by path to a YAML file."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = TARGETS_DIR / f"{name_or_path}.yaml"
        if not p.is_file():
            known = sorted(x.stem for x in TARGETS_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown target {name_or_path!r}; shipped targets: {', '.join(known)} (or pass a YAML path)")
    data = load_yaml(p)
    data.setdefault("name", p.stem)
    return from_dict(Target, data, where=str(p))


def _get(candidate: Any) -> tuple[Arch, Mapping[str, float]]:
    """A candidate is a search Record (``.arch``, ``.metrics``) or an ``(arch, metrics)`` pair."""
    if hasattr(candidate, "arch") and hasattr(candidate, "metrics"):
        return candidate.arch, candidate.metrics
    arch, metrics = candidate
    return arch, metrics


def select_for_target(front: Sequence[Any], target: Target, *, show: int = 3) -> Any:
    """The best feasible candidate for ``target``.

    Among the candidates that meet every limit, the Pareto-optimal ones (on the target's
    objectives) are kept and the one with the lowest first objective wins (ties: the next
    objectives). Pass every evaluated candidate, not only the unconstrained front: an arch that
    is dominated by an infeasible one can still be the best feasible choice.

    Args:
        front: search Records, or ``(arch, metrics)`` pairs.
        target: the target.
        show: how many closest infeasible candidates the error names.

    Returns:
        The chosen element of ``front``.

    Raises:
        InfeasibleTargetError: nothing fits; names the ``show`` closest candidates (smallest
            summed relative excess) with every limit each breaks and by how much.
        ValueError: ``front`` is empty.
    """
    from supernet.search.pareto import pareto_front

    if not front:
        raise ValueError(f"select_for_target({target.name}): no candidates (run a search first)")
    checked = [(c, target.violations(*_get(c))) for c in front]
    feasible = [c for c, v in checked if not v]
    if feasible:
        best_front = pareto_front(feasible, target.objectives, values=lambda c: [with_derived(_get(c)[1])[o] for o in target.objectives])
        return min(best_front, key=lambda c: tuple(with_derived(_get(c)[1])[o] for o in target.objectives))
    closest = sorted(checked, key=lambda cv: sum(v.excess for v in cv[1]))[:show]
    lines = [
        f"  {_get(c)[0].id} ({_get(c)[0].describe()}): " + "; ".join(str(v) for v in vs)
        for c, vs in closest
    ]
    raise InfeasibleTargetError(
        f"no candidate meets target {target.name!r} ({len(front)} checked); closest:\n" + "\n".join(lines)
        + "\nrelax the target's limits, search longer, or search a space with smaller archs",
        closest,
    )


def select_confirmed(front: Sequence[Any], target: Target, confirm: Callable[[Any], Mapping[str, Any]], *,
                     tries: int = 5, checks: list[dict[str, Any]] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """:func:`select_for_target`, each pick then checked by ``confirm(candidate)`` (a mapping with
    ``ok``); a refused pick is set aside and the next best feasible candidate is tried, at most
    ``tries`` in all.

    Args:
        checks: a list the check records are appended to (kept by the caller when this raises).

    Returns:
        The confirmed candidate and one record per check (``arch_id``, ``describe`` plus what
        ``confirm`` said): ``checks`` when given.

    Raises:
        InfeasibleTargetError: ``tries`` picks were refused, or every feasible candidate was; the
            message names the refused ones and what their checks said.
    """
    if tries < 1:
        raise ValueError(f"tries must be >= 1, got {tries}")
    checks = [] if checks is None else checks
    refused: set[int] = set()
    while True:
        rest = [c for i, c in enumerate(front) if i not in refused]
        try:
            pick = select_for_target(rest, target) if rest else None
        except InfeasibleTargetError:
            if not checks:
                raise
            pick = None
        if pick is None or len(checks) >= tries:
            said = "; ".join(f"{c['arch_id']}: {c.get('summary', c)}" for c in checks)
            raise InfeasibleTargetError(
                f"target {target.name!r}: {len(checks)} selected candidate(s) failed their confirmation ({said}); "
                + ("no feasible candidate is left" if pick is None else f"stopped after {tries} tries")
                + "; relax the limit, search longer, or allow more tries", [])
        arch = _get(pick)[0]
        said = dict(confirm(pick))
        checks.append({"arch_id": arch.id, "describe": arch.describe(), **said})
        if said.get("ok"):
            return pick, checks
        refused.add(next(i for i, c in enumerate(front) if c is pick))
