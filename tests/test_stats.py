"""Streaming statistics and the Fréchet distance: closed forms, conventions, robustness."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from latte_bench.errors import UserError
from latte_bench.metrics.stats import FeatureStats, frechet_distance, frechet_distance_from_stats, merge_all


def _features(n=200, d=6, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + shift).astype(np.float32)


def _rotation(d, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_streaming_equals_numpy_conventions():
    x = _features()
    stats = FeatureStats()
    for chunk in np.array_split(x, 7):
        stats.append(torch.from_numpy(chunk) if len(chunk) % 2 else chunk)
    x64 = x.astype(np.float64)
    assert stats.n == 200
    np.testing.assert_allclose(stats.mean(), x64.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.cov(), np.cov(x64, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.cov(unbiased=True), np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.cov(unbiased=True), stats.cov() * 200 / 199, rtol=1e-14)


def test_merge_save_load_and_kept_features(tmp_path):
    x = _features(n=50)
    a, b = FeatureStats(keep_features=True), FeatureStats(keep_features=True)
    a.append(x[:20])
    b.append(x[20:])
    total = merge_all([a, b], keep_features=True)
    single = FeatureStats()
    single.append(x)
    assert total.n == 50
    np.testing.assert_allclose(total.s2, single.s2, rtol=1e-13)
    np.testing.assert_array_equal(total.features, x)
    total.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    assert back.n == 50
    np.testing.assert_array_equal(back.s1, total.s1)
    np.testing.assert_array_equal(back.s2, total.s2)
    np.testing.assert_array_equal(back.features, x)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match="bad.npz"):
        FeatureStats.load(tmp_path / "bad.npz")


def test_non_finite_features_refused():
    x = _features(n=4)
    x[1, 2] = np.nan
    with pytest.raises(UserError, match="non-finite"):
        FeatureStats().append(x)
    with pytest.raises(UserError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([np.inf, 0]), np.eye(2))


def test_too_few_rows():
    s = FeatureStats()
    s.append(np.ones((1, 3), np.float32))
    s.cov()  # biased works with one row (zero covariance)
    with pytest.raises(UserError, match="at least 2"):
        s.cov(unbiased=True)


def test_identical_sets_give_zero():
    s = FeatureStats()
    s.append(_features(n=300, d=12))
    assert abs(frechet_distance_from_stats(s, s)) < 1e-9


def test_diagonal_closed_form():
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = 1 + 4 + np.sum(a + b - 2 * np.sqrt(a * b))  # = 5 + (1 + 1 + 0 + 0.25)
    assert expected == pytest.approx(7.25)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(7.25, rel=1e-12)


def test_commuting_covariances_closed_form():
    q = _rotation(8)
    a = np.linspace(0.5, 3.0, 8)
    b = np.linspace(2.0, 0.1, 8)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(8), s1, np.zeros(8), s2) == pytest.approx(expected, rel=1e-10)


def test_singular_covariances():
    # rank-deficient: fewer samples than dimensions, and exact zero eigenvalues
    q = _rotation(6, seed=3)
    a = np.array([2.0, 1.0, 0.5, 0.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 2.0, 3.0, 0.0, 0.0])
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(expected, rel=1e-9)
    # zero covariances (constant clips, as in the TF all-black vs all-white example): only |dmu|^2
    assert frechet_distance(np.ones(4), np.zeros((4, 4)), np.zeros(4), np.zeros((4, 4))) == 4.0
    # a sample covariance from 5 rows in 20 dims has rank 4
    x = _features(n=5, d=20)
    s = FeatureStats()
    s.append(x)
    assert np.linalg.matrix_rank(s.cov()) == 4
    assert abs(frechet_distance_from_stats(s, s)) < 1e-8


def test_ill_conditioned_covariances():
    q = _rotation(10, seed=7)
    a = np.logspace(-12, 2, 10)
    b = np.logspace(2, -12, 10)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(10), s1, np.zeros(10), s2) == pytest.approx(expected, rel=1e-8)


def test_agrees_with_scipy_sqrtm_when_well_conditioned():
    x, y = _features(n=400, d=16, seed=1), _features(n=300, d=16, seed=2, shift=0.5)
    sx, sy = FeatureStats(), FeatureStats()
    sx.append(x)
    sy.append(y)
    mu1, s1, mu2, s2 = sx.mean(), sx.cov(), sy.mean(), sy.cov()
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)


def test_covariance_convention_changes_the_number():
    x, y = _features(n=20, d=3, seed=1), _features(n=20, d=3, seed=2)
    sx, sy = FeatureStats(), FeatureStats()
    sx.append(x)
    sy.append(y)
    biased, unbiased = frechet_distance_from_stats(sx, sy), frechet_distance_from_stats(sx, sy, unbiased=True)
    k = 20 / 19
    expected = frechet_distance(sx.mean(), sx.cov() * k, sy.mean(), sy.cov() * k)
    assert unbiased == pytest.approx(expected, rel=1e-12) and unbiased != pytest.approx(biased, rel=1e-6)


def test_negative_distance_beyond_round_off_is_an_error_not_zero():
    """A non-PSD covariance (a tampered or corrupt statistics file) must not come out as FVD 0."""
    mu = np.zeros(3)
    with pytest.raises(UserError, match="negative"):
        frechet_distance(mu, -2 * np.eye(3), mu, np.eye(3))
    # round-off below the tolerance is still 0, not an error
    assert frechet_distance(mu, np.eye(3), mu, np.eye(3) * (1 + 1e-12)) == pytest.approx(0, abs=1e-9)
