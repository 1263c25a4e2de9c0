"""Numbers behind the report's "understanding" sections.

- :func:`utterance_errors`, :func:`top_substitutions`, :func:`wer_by_group`, :func:`wer_by_length`:
  error analysis of a selected model from its per-utterance hypotheses (jiwer's alignment).
- :func:`choice_entropy`: how diverse the explored archs were, per decision, in windows of trials.
- :func:`param_importances`: which decisions matter most (Optuna's fANOVA importances).
- :func:`trial_counts`, :func:`stage_compute`: evaluations, trials stopped early / failed, CPU time.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["UtteranceErrors", "utterance_errors", "top_substitutions", "wer_by_group", "wer_by_length",
           "choice_entropy", "param_importances", "trial_counts", "stage_compute"]  # fmt: skip


@dataclass(frozen=True)
class UtteranceErrors:
    """Edit counts of one utterance (word level) and the words it substituted (ref -> hyp)."""

    id: str
    lang: str
    duration: float | None
    words: int
    errors: int
    substitutions: tuple[tuple[str, str], ...]


def utterance_errors(utterances: Sequence[Mapping[str, Any]], where: str = "utterances") -> list[UtteranceErrors]:
    """Align every ``{id, lang, duration, ref, hyp}`` with jiwer; an empty reference counts its
    hypothesis words as insertions (jiwer refuses to align it).

    Raises:
        ValueError: an entry lacks ``ref`` or ``hyp`` (names ``where`` and the entry).
    """
    import jiwer

    for i, u in enumerate(utterances):
        if "ref" not in u or "hyp" not in u:
            raise ValueError(f"{where}[{i}]: needs 'ref' and 'hyp' (got keys {sorted(u)})")
    out: list[UtteranceErrors | None] = [None] * len(utterances)
    aligned = [i for i, u in enumerate(utterances) if str(u["ref"]).split()]
    if aligned:
        res = jiwer.process_words([str(utterances[i]["ref"]) for i in aligned], [str(utterances[i]["hyp"]) or "" for i in aligned])
        for k, i in enumerate(aligned):
            ref, hyp, errors, subs = res.references[k], res.hypotheses[k], 0, []
            for c in res.alignments[k]:
                if c.type == "equal":
                    continue
                n = max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
                errors += n
                if c.type == "substitute":
                    subs += zip(ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx])
            out[i] = _utt(utterances[i], len(ref), errors, subs)
    for i, u in enumerate(utterances):
        if out[i] is None:
            out[i] = _utt(u, 0, len(str(u["hyp"]).split()), [])
    return out  # type: ignore[return-value]


def _utt(u: Mapping[str, Any], words: int, errors: int, subs: list) -> UtteranceErrors:
    dur = u.get("duration")
    return UtteranceErrors(str(u.get("id", "")), str(u.get("lang") or "?"), None if dur is None else float(dur), words, errors,
                           tuple(subs))  # fmt: skip


def top_substitutions(errors: Sequence[UtteranceErrors], n: int = 10) -> list[tuple[str, str, int]]:
    """The ``n`` most frequent word substitutions ``(ref word, hyp word, count)``."""
    c = Counter(s for e in errors for s in e.substitutions)
    return [(r, h, k) for (r, h), k in c.most_common(n)]


def _rate(group: Sequence[UtteranceErrors]) -> dict[str, float]:
    words = sum(e.words for e in group)
    errs = sum(e.errors for e in group)
    return {"wer": errs / words if words else math.nan, "utterances": len(group), "words": words}


def wer_by_group(errors: Sequence[UtteranceErrors], key: str = "lang") -> dict[str, dict[str, float]]:
    """Corpus-level WER (edits / reference words) per value of ``key`` (an UtteranceErrors field)."""
    groups: dict[str, list[UtteranceErrors]] = {}
    for e in errors:
        groups.setdefault(str(getattr(e, key)), []).append(e)
    return {k: _rate(v) for k, v in sorted(groups.items())}


def wer_by_length(errors: Sequence[UtteranceErrors], buckets: int = 4, by: str = "duration") -> list[dict[str, Any]]:
    """WER per utterance-length bucket (quantiles of ``duration`` in seconds, or of reference
    ``words`` when durations are missing). Returns ``[{"bucket": "1.2-2.0 s", "lo", "hi", "wer",
    "utterances", "words"}]`` from short to long."""
    if by == "duration" and any(e.duration is None for e in errors):
        by = "words"
    if not errors:
        return []
    import numpy as np

    vals = np.array([float(e.duration if by == "duration" else e.words) for e in errors])
    edges = np.unique(np.quantile(vals, np.linspace(0, 1, buckets + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    idx = np.clip(np.searchsorted(edges, vals, side="right") - 1, 0, len(edges) - 2)
    unit = "s" if by == "duration" else "words"
    out = []
    for b in range(len(edges) - 1):
        group = [e for e, i in zip(errors, idx) if i == b]
        if group:
            out.append({"bucket": f"{edges[b]:.3g}-{edges[b + 1]:.3g} {unit}", "lo": float(edges[b]), "hi": float(edges[b + 1]),
                        **_rate(group)})  # fmt: skip
    return out


def _entropy(values: Sequence[Any]) -> float:
    c = Counter(values)
    n = len(values)
    return -sum(k / n * math.log(k / n) for k in c.values())


def choice_entropy(trials: Sequence[Any], window: int | None = None) -> dict[str, Any]:
    """Entropy (nats) of each decision's values over the trials, in consecutive windows.

    Args:
        trials: Optuna FrozenTrials (COMPLETE, in trial order); their ``params`` are the flat arch
            encoding every strategy writes (``supernet.search.encoding``).
        window: trials per window (default: about a fifth of the trials, at least 5).

    Returns:
        ``{"window": W, "ends": [trial count at each window's end], "entropy": {decision: [H per
        window]}, "max": {decision: log(number of values)}}``; decisions that never vary are left out.
    """
    trials = list(trials)
    if not trials:
        return {"window": 0, "ends": [], "entropy": {}, "max": {}}
    window = window or max(5, math.ceil(len(trials) / 5))
    names = sorted({k for t in trials for k in t.params})
    starts = list(range(0, len(trials), window))
    out: dict[str, list[float]] = {}
    maxes: dict[str, float] = {}
    for name in names:
        vals = [t.params.get(name) for t in trials]
        if len(set(vals)) < 2:
            continue
        out[name] = [_entropy(vals[s:s + window]) for s in starts]
        dist = next((t.distributions[name] for t in trials if name in t.distributions), None)
        size = len(dist.choices) if hasattr(dist, "choices") else (dist.high - dist.low + 1 if dist is not None else len(set(vals)))
        maxes[name] = math.log(max(size, 2))
    return {"window": window, "ends": [min(s + window, len(trials)) for s in starts], "entropy": out, "max": maxes}


def param_importances(study: Any, objective: int = 0, min_trials: int = 8, seed: int = 0,
                      n_trees: int = 24) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances (fANOVA) for one objective of ``study``.

    ``n_trees``: of fANOVA's random forest (Optuna's default, 64, takes seconds per study on a
    small CPU; the ranking of the top decisions is stable with fewer).

    Returns:
        ``(importances, None)`` sorted high to low, or ``({}, reason)`` when they cannot be
        computed (too few trials, no parameter varies).
    """
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < min_trials:
        return {}, f"too few evaluated archs for parameter importances ({len(done)} < {min_trials})"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=seed)
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator, target=lambda t: t.values[objective])
    except (RuntimeError, ValueError) as e:  # e.g. "cannot evaluate parameter importances with only a single trial"
        return {}, f"parameter importances not computable: {e}"
    if not imp:
        return {}, "no decision varied across the evaluated archs"
    return dict(imp), None


def trial_counts(study: Any) -> dict[str, int]:
    """Trials of a study by outcome: ``evaluated`` (COMPLETE), ``pruned`` (stopped early),
    ``duplicates`` (failed because another trial held the arch), ``failed`` (errors, dead
    workers), ``running``, ``total``."""
    from optuna.trial import TrialState

    c = Counter()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c["evaluated"] += 1
        elif t.state == TrialState.PRUNED:
            c["pruned"] += 1
        elif t.state == TrialState.FAIL:
            c["duplicates" if "duplicate_of" in t.user_attrs else "failed"] += 1
        else:
            c["running"] += 1
        c["total"] += 1
    return {k: c.get(k, 0) for k in ("total", "evaluated", "pruned", "duplicates", "failed", "running")}


def stage_compute(stages: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Rows ``{stage, status, seconds, cpu_seconds, cpu_hours}`` from ``stages.json`` (None where
    a stage did not record a figure; nothing is estimated)."""
    stages = stages or {}
    if isinstance(stages.get("stages"), Mapping):  # {"format": ..., "stages": {...}} as supernet run writes it
        stages = stages["stages"]
    rows = []
    for name, s in stages.items():
        s = s if isinstance(s, Mapping) else {}
        cpu = _first(s, ("cpu_seconds", "cpu_s", "cpu"))
        rows.append({"stage": name, "status": s.get("status"), "seconds": _first(s, ("seconds", "wall_seconds", "wall_s")),
                     "cpu_seconds": cpu, "cpu_hours": None if cpu is None else cpu / 3600.0})  # fmt: skip
    return rows


def _first(d: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None
