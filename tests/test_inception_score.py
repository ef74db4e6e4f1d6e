"""Inception Score: closed-form cases, StyleGAN-V's shuffle and split formula, zero probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from latte_bench.errors import UserError
from latte_bench.metrics.inception_score import inception_score, split_bounds


def test_uniform_predictions_give_one():
    out = inception_score(np.full((40, 101), 1 / 101), splits=10)
    assert out["mean"] == pytest.approx(1.0, abs=1e-12) and out["std"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 7, 101])
def test_confident_predictions_spread_over_k_classes_give_k(k):
    probs = np.eye(k)[np.arange(20 * k) % k]  # one-hot, exact zeros everywhere else
    out = inception_score(probs, splits=1, shuffle_seed=None)
    assert out["mean"] == pytest.approx(k, rel=1e-12)  # zeros contribute 0, no NaN


def test_split_bounds_formula():
    assert split_bounds(2048, 10) == [(i * 2048 // 10, (i + 1) * 2048 // 10) for i in range(10)]
    sizes = [hi - lo for lo, hi in split_bounds(2048, 10)]
    assert sorted(set(sizes)) == [204, 205] and sum(sizes) == 2048


def test_matches_stylegan_v_recipe():
    rng = np.random.RandomState(0)
    logits = rng.randn(103, 11) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    shuffled = probs.copy()
    np.random.RandomState(42).shuffle(shuffled)
    expected = []
    for i in range(10):
        part = shuffled[i * 103 // 10 : (i + 1) * 103 // 10]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        expected.append(np.exp(kl.sum(1).mean()))
    out = inception_score(probs, splits=10, shuffle_seed=42)
    np.testing.assert_allclose(out["per_split"], expected, rtol=1e-12)
    assert out["mean"] == pytest.approx(np.mean(expected)) and out["std"] == pytest.approx(np.std(expected))
    assert np.array_equal(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True))  # input untouched
    other = inception_score(probs, splits=10, shuffle_seed=7)
    assert other["per_split"] != out["per_split"]  # the shuffle matters per split


def test_too_few_samples_is_a_user_error():
    with pytest.raises(UserError, match="too few"):
        inception_score(np.full((15, 5), 0.2), splits=10)
    with pytest.raises(UserError, match=r"\[N, K\]"):
        inception_score(np.full(5, 0.2), splits=1)


def test_hand_computed_scores_from_known_softmax_outputs():
    # two confident, opposite predictions: p(y) = (1/2, 1/2), KL = 0.9·ln(0.9/0.5) + 0.1·ln(0.1/0.5)
    pair = np.array([[0.9, 0.1], [0.1, 0.9]])
    expected = 1.8**0.9 * 0.2**0.1  # exp(KL) = 1.44497...
    out = inception_score(pair, splits=1, shuffle_seed=None)
    assert out["mean"] == pytest.approx(expected, rel=1e-12) and out["per_split"] == [pytest.approx(expected, rel=1e-12)]
    # unequal marginal: p(y) = (1/4, 1/4, 1/2); both rows have KL = ln 2, so IS = 2
    rows = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert inception_score(rows, splits=1, shuffle_seed=None)["mean"] == pytest.approx(2.0, rel=1e-12)
    # two splits, rows [i·N/2, (i+1)·N/2): the confident pair (IS 1.44497) and two equal rows (IS 1)
    four = np.array([[0.9, 0.1], [0.1, 0.9], [1.0, 0.0], [1.0, 0.0]])
    two = inception_score(four, splits=2, shuffle_seed=None)
    assert two["per_split"] == [pytest.approx(expected, rel=1e-12), pytest.approx(1.0, rel=1e-12)]
    assert two["mean"] == pytest.approx((expected + 1) / 2, rel=1e-12)
    assert two["std"] == pytest.approx((expected - 1) / 2, rel=1e-12)  # population std of two values
    assert two["num_samples"] == 4 and two["splits"] == 2
