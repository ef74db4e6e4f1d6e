"""Kernel MMD metrics with the cubic polynomial kernel ``k(x, y) = (xᵀy/d + 1)³``.

* KVD (TATS ``polynomial_mmd``): unbiased MMD² between *all* real and generated I3D logits
  (400-d, the FVD features); no subsets.
* KID (StyleGAN-V ``kid50k_full``): on Inception pool3 features (2048-d), the mean over 100 subsets
  of size ``m = min(n_real, n_gen, 1000)`` drawn without replacement of the unbiased MMD² estimate.
  StyleGAN-V draws with the unseeded global numpy RNG (generated rows first, then real rows); here
  the draws come from ``np.random.RandomState(seed)`` in the same order. Reported ×1000 by convention
  (``kid_x1000``).

Everything is computed in float64 (StyleGAN-V's KID multiplies float32 arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latte_bench.errors import UserError
from latte_bench.metrics import i3d, inception
from latte_bench.metrics.detector import Metric


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x yᵀ / d + 1)³`` for ``x`` ``[n, d]`` and ``y`` ``[m, d]`` → ``[n, m]`` (sklearn's defaults)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _check(real: np.ndarray, gen: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    real, gen = np.asarray(real, np.float64), np.asarray(gen, np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise UserError(f"{name}: feature arrays must be [N, D] with the same D, got {list(real.shape)} and {list(gen.shape)}")
    if min(len(real), len(gen)) < 2:
        raise UserError(f"{name}: needs at least 2 real and 2 generated samples, got {len(real)} and {len(gen)}")
    return real, gen


def polynomial_mmd(real: np.ndarray, gen: np.ndarray) -> float:
    """Unbiased MMD² (TATS): ``mean_{i≠j} k(x_i,x_j) + mean_{i≠j} k(y_i,y_j) − 2·mean k(x_i,y_j)``."""
    x, y = _check(real, gen, "KVD")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    m, n = len(x), len(y)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kvd(real_logits: np.ndarray, gen_logits: np.ndarray) -> float:
    """KVD: :func:`polynomial_mmd` on I3D logits ``[N, 400]`` (all samples)."""
    return polynomial_mmd(real_logits, gen_logits)


def kid(
    real_features: np.ndarray, gen_features: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> dict:
    """KID as StyleGAN-V computes it, with a seeded RNG.

    Returns ``{"kid", "kid_x1000", "subset_size", "num_subsets", "seed"}``.
    """
    y, x = _check(real_features, gen_features, "KID")  # x: generated, y: real (StyleGAN-V's names)
    d = x.shape[1]
    m = min(len(x), len(y), max_subset_size)
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        a = (xs @ xs.T / d + 1) ** 3 + (ys @ ys.T / d + 1) ** 3
        b = (xs @ ys.T / d + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    value = float(total / num_subsets / m)
    return {"kid": value, "kid_x1000": value * 1000.0, "subset_size": m, "num_subsets": num_subsets, "seed": seed}


@dataclass(frozen=True, eq=False)
class KVD(Metric):
    """:func:`kvd` on the I3D logits of the FVD pass."""

    def distance(self, real, fake, proto, shared):
        return kvd(real.features, fake.features), {}


@dataclass(frozen=True, eq=False)
class KID(Metric):
    """:func:`kid` ×1000 on the Inception pool3 features of the FID pass; ``kid_raw`` and the subset size in the detail."""

    def distance(self, real, fake, proto, shared):
        out = kid(real.features, fake.features, proto.kid_subsets, proto.kid_subset_size, proto.seed)
        return out["kid_x1000"], {"kid_raw": out["kid"], "subset_size": out["subset_size"]}


KVD_METRIC = KVD("kvd", i3d.DETECTOR, "TATS polynomial_mmd on the I3D logits of the FVD pass: k(x,y)=(x.y/d+1)^3, unbiased "
                 "MMD^2 (negative when the sets are closer than its noise), all samples", needs_features=True,
                 standard=frozenset({"counts", "fake_clips", "stride", "resize"}))
KID_METRIC = KID("kid", inception.DETECTOR, "StyleGAN-V kid: cubic polynomial kernel on Inception pool3, subsets of "
                 "min(n_real, n_gen, subset size), x1000", needs_features=True, standard=frozenset({"counts", "fid_mode"}))
