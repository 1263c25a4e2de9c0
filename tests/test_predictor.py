"""WER predictor: learns a known function of the encoding, cross-validated tau, save/load."""

from __future__ import annotations

import random

import numpy as np
import pytest

from supernet.predictor import KINDS, WERPredictor
from supernet.space import SearchSpace

SPACE = {
    "name": "test-predictor",
    "frontend": {"feature": ["logmel40", "mfcc40"], "subsampling": [4, 8]},
    "encoder": {"width": [16, 32, 48], "layers": 3, "min_depth": 1,
                "layer": {"block": ["conformer", "lstm", "cnn"], "attention": ["mha", "local"], "heads": [2, 4],
                          "ffn_ratio": [2, 4], "kernel": [3, 5]}},
    "decoder": {"type": ["ctc", "rnnt"], "layers": [1], "width": [16]},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE)


@pytest.fixture(scope="module")
def data(space):
    """Distinct archs and a synthetic WER: smaller for wider, deeper, conformer-rich archs, with
    an interaction (rnnt helps only wide archs) and a little noise."""
    rng, archs = random.Random(0), {}
    while len(archs) < 80:
        a = space.sample(rng)
        archs[a.id] = a
    archs = list(archs.values())
    noise = np.random.default_rng(0).normal(0, 0.005, len(archs))
    wers = []
    for a, eps in zip(archs, noise):
        conformers = sum(layer.block == "conformer" for layer in a.layers)
        w = 0.6 - 0.004 * a.width - 0.05 * a.depth - 0.04 * conformers + 0.03 * (a.subsampling == 8)
        w += -0.05 * (a.decoder == "rnnt" and a.width >= 32)
        wers.append(float(w + eps))
    return archs, wers


def test_cross_validated_tau_is_high_on_a_learnable_function(space, data):
    archs, wers = data
    cv = WERPredictor(space).cross_validate(archs, wers, folds=4, seed=0)
    assert cv.kendall_tau > 0.7 and cv.spearman > 0.85, cv
    assert cv.n == 80 and cv.folds == 4 and len(cv.predictions) == 80
    assert cv.mae < 0.05
    shuffled = list(wers)
    random.Random(1).shuffle(shuffled)  # no relation to the archs: nothing to learn
    assert abs(WERPredictor(space, "ridge").cross_validate(archs, shuffled, folds=4).kendall_tau) < 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_fit_predict_ranks_held_out_archs(space, data, kind):
    archs, wers = data
    pred = WERPredictor(space, kind, seed=0).fit(archs[:60], wers[:60])
    out = pred.predict(archs[60:])
    assert out.shape == (20,) and np.all(np.isfinite(out))
    from scipy.stats import kendalltau

    assert kendalltau(out, wers[60:]).statistic > 0.5
    if kind in ("gp", "ensemble"):
        mean, std = pred.predict(archs[60:], return_std=True)
        assert np.allclose(mean, out) and std.shape == (20,) and np.all(std >= 0)
    else:
        with pytest.raises(ValueError, match="return_std needs a Gaussian process"):
            pred.predict(archs[60:], return_std=True)


def test_fit_is_reproducible_and_save_load_round_trips(space, data, tmp_path):
    archs, wers = data
    a = WERPredictor(space, seed=3).fit(archs[:50], wers[:50])
    b = WERPredictor(space, seed=3).fit(archs[:50], wers[:50])
    assert np.array_equal(a.predict(archs[50:]), b.predict(archs[50:]))
    path = a.save(tmp_path / "pred.pkl")
    loaded = WERPredictor.load(path, space)
    assert loaded.kind == "ensemble" and loaded.n_train == 50
    assert np.array_equal(loaded.predict(archs[50:]), a.predict(archs[50:]))
    other = SearchSpace.from_dict({**SPACE, "name": "other", "frontend": {"feature": ["logmel40"], "subsampling": [4]}})
    with pytest.raises(ValueError, match="another search space"):
        WERPredictor.load(path, other)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable predictor file"):
        WERPredictor.load(tmp_path / "junk.pkl", space)


def test_bad_input_is_refused(space, data):
    archs, wers = data
    with pytest.raises(ValueError, match="kind 'forest' is unknown"):
        WERPredictor(space, "forest")
    with pytest.raises(RuntimeError, match="before fit"):
        WERPredictor(space).predict(archs[:2])
    with pytest.raises(ValueError, match="3 archs but 2 WERs"):
        WERPredictor(space).fit(archs[:3], wers[:2])
    with pytest.raises(ValueError, match="must be finite"):
        WERPredictor(space).fit(archs[:3], [0.1, float("nan"), 0.2])
    with pytest.raises(RuntimeError, match="nothing to save"):
        WERPredictor(space).save("/tmp/never-written.pkl")
