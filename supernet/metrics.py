"""CTC greedy decoding and error rates (WER, CER) on normalised text.

One place for the scoring that every stage shares: the baselines, the supernet evaluator and the
fine-tuning loop all decode with :func:`ctc_greedy_decode` and score with :func:`wer` / :func:`cer`
(or the streaming :class:`ErrorRates` inside a Lightning loop), so their numbers are comparable.

Error rates are corpus-level: total edits over total reference words (characters), as
torchmetrics and jiwer compute them, not a mean of per-utterance rates. Both hypothesis and
reference go through :func:`supernet.data.tokenizer.normalize_text` first (``normalize=True``), so a
model is never charged for case or punctuation the tokenizer cannot produce.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torchmetrics.functional.text import char_error_rate, word_error_rate
from torchmetrics.text import CharErrorRate, WordErrorRate

__all__ = ["ctc_greedy_decode", "wer", "cer", "ErrorRates"]


def ctc_greedy_decode(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """Best-path CTC decoding: argmax per frame, collapse repeats, drop blanks.

    Args:
        log_probs: (B, T, V) frame scores (log-probabilities or logits; only the argmax matters).
        lengths: (B,) valid frames per utterance; frames past it are ignored. ``None``: all T.
        blank: index of the CTC blank.

    Returns:
        One list of token ids per utterance (blank-free, repeats collapsed).
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    b, t, _ = log_probs.shape
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.long)
    if lengths.shape != (b,):
        raise ValueError(f"lengths must be (B,) = ({b},), got shape {tuple(lengths.shape)}")
    best = log_probs.argmax(dim=-1)  # (B, T)
    # A frame is emitted when it is not blank and differs from the previous frame; a blank
    # between two equal tokens therefore separates them ("a _ a" -> "a a").
    prev = torch.nn.functional.pad(best[:, :-1], (1, 0), value=-1)
    valid = torch.arange(t, device=best.device)[None, :] < lengths.to(best.device)[:, None]
    keep = (best != blank) & (best != prev) & valid
    best, keep = best.cpu(), keep.cpu()
    return [best[i][keep[i]].tolist() for i in range(b)]


def _normalizer() -> Callable[[str], str]:
    from supernet.data.tokenizer import normalize_text

    return normalize_text


def _prepare(hyps: Sequence[str], refs: Sequence[str], normalize: bool) -> tuple[list[str], list[str]]:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise TypeError("hyps and refs must be lists of strings, not a single string")
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses for {len(refs)} references; they must pair up")
    if normalize:
        norm = _normalizer()
        hyps, refs = [norm(h) for h in hyps], [norm(r) for r in refs]
    if not any(r.strip() for r in refs):
        raise ValueError("all references are empty after normalisation; an error rate is undefined")
    return list(hyps), list(refs)


def wer(hyps: Sequence[str], refs: Sequence[str], normalize: bool = True) -> float:
    """Corpus word error rate: (substitutions + deletions + insertions) / reference words.

    Args:
        hyps: recognised texts.
        refs: reference texts, paired with ``hyps``.
        normalize: pass both through ``normalize_text`` first.
    """
    hyps, refs = _prepare(hyps, refs, normalize)
    return float(word_error_rate(hyps, refs))


def cer(hyps: Sequence[str], refs: Sequence[str], normalize: bool = True) -> float:
    """Corpus character error rate (spaces count as characters, as in torchmetrics and jiwer)."""
    hyps, refs = _prepare(hyps, refs, normalize)
    return float(char_error_rate(hyps, refs))


class ErrorRates(torch.nn.Module):
    """Streaming WER + CER for a validation / test loop (torchmetrics states, so DDP-safe).

    ``update(hyps, refs)`` per batch, ``compute() -> {"wer": float, "cer": float}``, ``reset()``.
    """

    def __init__(self, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        self.word = WordErrorRate()
        self.char = CharErrorRate()
        self._refs_seen = 0

    def update(self, hyps: Sequence[str], refs: Sequence[str]) -> None:
        if len(hyps) != len(refs):
            raise ValueError(f"got {len(hyps)} hypotheses for {len(refs)} references; they must pair up")
        if self.normalize:
            norm = _normalizer()
            hyps, refs = [norm(h) for h in hyps], [norm(r) for r in refs]
        self._refs_seen += sum(len(r.split()) for r in refs)
        self.word.update(list(hyps), list(refs))
        self.char.update(list(hyps), list(refs))

    def compute(self) -> dict[str, float]:
        if self._refs_seen == 0:
            raise ValueError("ErrorRates.compute() before any non-empty reference was seen")
        return {"wer": float(self.word.compute()), "cer": float(self.char.compute())}

    def reset(self) -> None:
        self.word.reset()
        self.char.reset()
        self._refs_seen = 0
