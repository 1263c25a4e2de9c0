"""CTC greedy decoding and WER/CER: cross-checked against jiwer, decoded on hand-made scores."""

from __future__ import annotations

import jiwer
import pytest
import torch

from supernet.metrics import ErrorRates, cer, ctc_greedy_decode, wer

# (hypotheses, references): substitutions, an empty hypothesis, insertions, deletions, accents.
CASES = [
    (["one two three"], ["one two three"]),
    (["one too three"], ["one two three"]),
    ([""], ["seven eight"]),
    (["one two two three four"], ["one two three"]),
    (["one"], ["one two three"]),
    (["zéro un deux", "drei vier"], ["zero un deux", "drei vier fünf"]),
    (["ça va très bien", "groß"], ["ça va très bien", "gross"]),
    (["a b c", "", "x y"], ["a c", "d e f", "x y z"]),
]


@pytest.mark.parametrize("hyps,refs", CASES)
def test_wer_cer_match_jiwer(hyps, refs):
    assert wer(hyps, refs, normalize=False) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-6)
    assert cer(hyps, refs, normalize=False) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-6)


def test_streaming_error_rates_equal_corpus_rates():
    m = ErrorRates(normalize=False)
    for hyps, refs in CASES:
        m.update(hyps, refs)
    all_h = [h for hs, _ in CASES for h in hs]
    all_r = [r for _, rs in CASES for r in rs]
    got = m.compute()
    assert got["wer"] == pytest.approx(jiwer.wer(all_r, all_h), abs=1e-6)
    assert got["cer"] == pytest.approx(jiwer.cer(all_r, all_h), abs=1e-6)
    m.reset()
    with pytest.raises(ValueError, match="before any"):
        m.compute()


def test_normalisation_applied_to_both_sides():
    # Case and punctuation differences are not errors once normalised.
    assert wer(["One, TWO three!"], ["one two three"]) == 0.0
    assert cer(["Zéro; UN"], ["zéro un"]) == 0.0
    assert wer(["One, TWO three!"], ["one two three"], normalize=False) > 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="pair up"):
        wer(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        wer(["a"], [" ... "])
    with pytest.raises(TypeError, match="lists of strings"):
        wer("a b", "a b")


def _one_hot_scores(paths: list[list[int]], vocab: int) -> torch.Tensor:
    """(B, T, V) log-probs whose argmax per frame is the given path (padded with blanks)."""
    t = max(len(p) for p in paths)
    scores = torch.full((len(paths), t, vocab), -10.0)
    for b, p in enumerate(paths):
        for i in range(t):
            scores[b, i, p[i] if i < len(p) else 0] = 0.0
    return scores.log_softmax(-1)


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    paths = [
        [0, 1, 1, 0, 2, 2, 2, 0],  # -> 1 2
        [3, 0, 3, 3, 0, 0, 1, 0],  # blank between repeats keeps both: -> 3 3 1
        [0, 0, 0, 0, 0, 0, 0, 0],  # all blank -> empty
        [1, 2, 3, 4, 4, 4, 4, 4],  # no blanks at all
    ]
    out = ctc_greedy_decode(_one_hot_scores(paths, vocab=5), torch.tensor([8, 8, 8, 8]))
    assert out == [[1, 2], [3, 3, 1], [], [1, 2, 3, 4]]


def test_greedy_decode_respects_lengths():
    paths = [[1, 0, 2, 0, 3, 0], [4, 4, 0, 1, 2, 3]]
    scores = _one_hot_scores(paths, vocab=5)
    assert ctc_greedy_decode(scores, torch.tensor([3, 2])) == [[1, 2], [4]]
    assert ctc_greedy_decode(scores) == [[1, 2, 3], [4, 1, 2, 3]]  # None = all frames
    assert ctc_greedy_decode(scores, torch.tensor([0, 6])) == [[], [4, 1, 2, 3]]


def test_greedy_decode_other_blank_and_bad_shapes():
    scores = _one_hot_scores([[4, 4, 1, 4, 1, 1]], vocab=5)
    assert ctc_greedy_decode(scores, blank=4) == [[1, 1]]
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        ctc_greedy_decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="lengths"):
        ctc_greedy_decode(torch.zeros(2, 3, 5), torch.tensor([3]))
