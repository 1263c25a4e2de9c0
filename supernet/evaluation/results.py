"""What an evaluation returns: error rates and loss per dev set and per language.

:class:`Metrics` is a read-only mapping of flat metric names to floats, the names the search
uses (``supernet.search.objectives``)::

    wer, cer, loss            mean over dev sets: the multilingual fitness
    wer/set/NAME, cer/...     one dev set (``dev.de``)
    wer/lang/CODE, ...        one language, pooled over every set that holds it
    params, ...               costs attached by the evaluator (``Evaluator(costs=...)``)
    eval_seconds              wall time of the evaluation (not a quality metric)

Error rates are corpus-level (total edits over total reference words) inside a set or language,
as ``supernet.metrics`` computes them; the top-level numbers are the unweighted mean over sets,
so a small language counts as much as a large one. Losses are means over utterances of each
utterance's own loss (the head's per-token loss of that utterance alone), so they do not depend
on batching. For a streaming arch (``chunk > 0``) the encoder runs with chunked
attention masks and causal convolutions, which is what chunk-by-chunk decoding computes, so
its ``wer`` is the streaming WER.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from supernet.metrics import cer, wer

__all__ = ["Score", "Metrics", "GroupOutput", "summarize"]

RATES = ("wer", "cer", "loss")


@dataclass(frozen=True)
class Score:
    """Error rates and loss of one group of utterances (a dev set or a language).

    Args:
        wer, cer: corpus word / character error rates (fractions).
        loss: mean per-utterance loss of the decoder head.
        utterances: number of utterances.
        words: reference words.
    """

    wer: float
    cer: float
    loss: float
    utterances: int
    words: int


@dataclass
class GroupOutput:
    """Raw outputs of one (dev set, language) group: what :func:`summarize` aggregates.

    Args:
        set_name: dev set.
        lang: language code.
        hyps, refs: recognised and reference texts, paired.
        loss_sum: sum over utterances of the per-utterance loss.
    """

    set_name: str
    lang: str
    hyps: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    loss_sum: float = 0.0


def _score(groups: list[GroupOutput], what: str) -> Score:
    hyps = [h for g in groups for h in g.hyps]
    refs = [r for g in groups for r in g.refs]
    if not any(r.strip() for r in refs):
        raise ValueError(f"{what}: every reference transcript is empty; an error rate is undefined (remove the set "
                         "or give it transcripts)")
    n = len(refs)
    return Score(wer=wer(hyps, refs), cer=cer(hyps, refs), loss=sum(g.loss_sum for g in groups) / n, utterances=n,
                 words=sum(len(r.split()) for r in refs))


def summarize(groups: Iterable[GroupOutput]) -> tuple[dict[str, Score], dict[str, Score]]:
    """Per-set and per-language scores of the (set, language) groups of one evaluation.

    Returns:
        ``(sets, langs)``: {set name: Score} in first-seen order, {language: Score} sorted by code;
        a language's score pools its utterances over every set (corpus-level, not a mean of sets).
    """
    groups = list(groups)
    by_set: dict[str, list[GroupOutput]] = {}
    by_lang: dict[str, list[GroupOutput]] = {}
    for g in groups:
        by_set.setdefault(g.set_name, []).append(g)
        by_lang.setdefault(g.lang, []).append(g)
    sets = {name: _score(gs, f"dev set {name!r}") for name, gs in by_set.items()}
    langs = {lang: _score(by_lang[lang], f"language {lang!r}") for lang in sorted(by_lang)}
    return sets, langs


class Metrics(Mapping[str, float]):
    """Result of evaluating one arch (see the module docstring for the metric names).

    Args:
        arch_id: ``Arch.id`` of the evaluated arch (or a label for a model scored directly).
        sets: {dev set: Score}.
        langs: {language: Score}.
        costs: extra numbers to attach, e.g. {"params": 1.2e6, "latency_ms": 4.1}.
        seconds: wall time the evaluation took.

    Attributes ``wer``, ``cer``, ``loss`` are the means over sets; ``sets`` and ``langs`` hold the
    detail. ``to_dict`` / ``from_dict`` round-trip through JSON.
    """

    def __init__(self, arch_id: str, sets: Mapping[str, Score], langs: Mapping[str, Score],
                 costs: Mapping[str, float] | None = None, seconds: float = 0.0) -> None:
        if not sets:
            raise ValueError("Metrics needs at least one dev set")
        self.arch_id = arch_id
        self.sets = dict(sets)
        self.langs = dict(langs)
        self.costs = {k: float(v) for k, v in (costs or {}).items()}
        self.seconds = float(seconds)
        flat: dict[str, float] = {m: sum(getattr(s, m) for s in self.sets.values()) / len(self.sets) for m in RATES}
        for kind, scores in (("set", self.sets), ("lang", self.langs)):
            for name, s in scores.items():
                flat.update({f"{m}/{kind}/{name}": float(getattr(s, m)) for m in RATES})
        clash = set(self.costs) & set(flat)
        if clash:
            raise ValueError(f"cost name(s) {sorted(clash)} clash with quality metrics; rename them")
        flat.update(self.costs)
        flat["eval_seconds"] = self.seconds
        self._flat = flat

    # Mapping protocol: the flat metric names
    def __getitem__(self, key: str) -> float:
        return self._flat[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat)

    def __len__(self) -> int:
        return len(self._flat)

    @property
    def wer(self) -> float:
        """Mean WER over dev sets (the multilingual fitness)."""
        return self._flat["wer"]

    @property
    def cer(self) -> float:
        return self._flat["cer"]

    @property
    def loss(self) -> float:
        return self._flat["loss"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"arch_id", "wer", "cer", "loss", "sets": {...}, "langs": {...}, "costs", "seconds"}``."""
        return {"arch_id": self.arch_id, "wer": self.wer, "cer": self.cer, "loss": self.loss,
                "sets": {k: asdict(v) for k, v in self.sets.items()},
                "langs": {k: asdict(v) for k, v in self.langs.items()},
                "costs": dict(self.costs), "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Metrics":
        try:
            return cls(d["arch_id"], {k: Score(**v) for k, v in d["sets"].items()},
                       {k: Score(**v) for k, v in d["langs"].items()}, d.get("costs"), d.get("seconds", 0.0))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a Metrics dict (as written by Metrics.to_dict): {e}") from e

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metrics):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # mutable-looking mapping; not hashable

    def __repr__(self) -> str:
        sets = ", ".join(f"{k}={v.wer:.3f}" for k, v in self.sets.items())
        return f"Metrics({self.arch_id}: wer={self.wer:.4f} cer={self.cer:.4f} loss={self.loss:.4f}; {sets})"
