"""KVD (TATS polynomial MMD, all samples) and KID (StyleGAN-V subsets) against direct O(n²) loops."""

from __future__ import annotations

import numpy as np
import pytest

from latte_bench.errors import UserError
from latte_bench.metrics.kernel import kid, kvd, polynomial_mmd


def _direct_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kvd_matches_direct_loop():
    rng = np.random.RandomState(0)
    x, y = rng.randn(13, 5), rng.randn(9, 5) + 0.3
    assert polynomial_mmd(x, y) == pytest.approx(_direct_mmd(x, y), rel=1e-10)
    assert kvd(x, y) == polynomial_mmd(x, y)


def test_kvd_identical_and_shifted_sets():
    rng = np.random.RandomState(1)
    x = rng.randn(200, 400).astype(np.float32)
    same = kvd(x, x.copy())
    shifted = kvd(x, x + 1.0)
    # identical sets: the unbiased estimate is slightly negative (diagonal excluded), ≈ 0 next to a shift
    assert abs(same) < 0.05 * shifted
    assert shifted > 0
    other = rng.randn(200, 400).astype(np.float32)
    assert abs(kvd(x, other)) < 0.05 * shifted  # two draws of one distribution


def test_kid_matches_direct_subset_loop():
    rng = np.random.RandomState(2)
    real, gen = rng.randn(12, 6), rng.randn(10, 6) + 0.5
    out = kid(real, gen, num_subsets=3, max_subset_size=7, seed=5)
    assert out["subset_size"] == 7
    draw = np.random.RandomState(5)
    vals = []
    for _ in range(3):
        g = gen[draw.choice(10, 7, replace=False)]
        r = real[draw.choice(12, 7, replace=False)]
        vals.append(_direct_mmd(g, r))  # StyleGAN-V's t/m per subset is the unbiased MMD²
    assert out["kid"] == pytest.approx(np.mean(vals), rel=1e-10)
    assert out["kid_x1000"] == pytest.approx(1000 * out["kid"])


def test_kid_seeded_and_near_zero_for_one_distribution():
    rng = np.random.RandomState(3)
    a, b = rng.randn(60, 16), rng.randn(50, 16)
    assert kid(a, b, num_subsets=10, seed=1) == kid(a, b, num_subsets=10, seed=1)
    near = kid(a, b, num_subsets=10)["kid"]
    far = kid(a, b + 2.0, num_subsets=10)["kid"]
    assert far > 0 and abs(near) < 0.05 * far
    assert kid(a, b)["subset_size"] == 50  # m = min(n_real, n_gen, 1000)


def test_bad_shapes_are_user_errors():
    with pytest.raises(UserError, match="same D"):
        kvd(np.zeros((4, 3)), np.zeros((4, 5)))
    with pytest.raises(UserError, match="at least 2"):
        kid(np.zeros((1, 3)), np.zeros((4, 3)))
