"""Streaming feature statistics in float64 and the Fréchet distance.

:class:`FeatureStats` keeps ``n``, ``S1 = sum x`` and ``S2 = sum x x^T`` in float64, so its
memory does not grow with the number of items; raw float32 features can be kept as well
(``keep_features=True``) for KVD, PRDC and the uncertainty of FVD (:mod:`latte_bench.metrics.uncertainty`). The covariance is StyleGAN-V's biased
``S2/n - mu mu^T`` by default (``unbiased=True`` gives ``n/(n-1)`` times that, as TF/tfgan,
np.cov, TATS and VideoGPT use).

:func:`frechet_distance` = ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))`` computed in the
symmetric form ``Tr sqrtm(S2^1/2 S1 S2^1/2)`` with two symmetric eigendecompositions: no
complex parts, and singular or ill-conditioned covariances are fine (eigenvalues within
round-off of 0, including negative ones, are set to 0).
"""

from __future__ import annotations

import os

import numpy as np

from latte_bench.errors import UserError
from latte_bench.fsutil import atomic_path


NEGATIVE_TOLERANCE = 1e-6  # relative to Tr(S1) + Tr(S2): below -tol * trace a distance is an error, not round-off


class FeatureStats:
    """Running float64 sums of features ``x`` (rows of an (n, dim) array)."""

    def __init__(self, dim: int | None = None, keep_features: bool = False):
        self.dim = dim
        self.n = 0
        self.s1 = None if dim is None else np.zeros(dim, np.float64)
        self.s2 = None if dim is None else np.zeros((dim, dim), np.float64)
        self.keep_features = keep_features
        self._features: list[np.ndarray] = []

    def _init(self, dim: int) -> None:
        self.dim = dim
        self.s1 = np.zeros(dim, np.float64)
        self.s2 = np.zeros((dim, dim), np.float64)

    def append(self, features) -> None:
        """Add an (n, dim) batch (numpy or torch; converted to float32, then summed in float64)."""
        if hasattr(features, "detach"):
            features = features.detach().cpu().numpy()
        x32 = np.asarray(features, dtype=np.float32)
        if x32.ndim != 2:
            raise ValueError(f"features must be (n, dim), got shape {x32.shape}")
        if not np.isfinite(x32).all():
            raise UserError("detector returned non-finite features (NaN/inf); check the input videos and the detector weights")
        if self.dim is None:
            self._init(x32.shape[1])
        if x32.shape[1] != self.dim:
            raise ValueError(f"feature dim {x32.shape[1]} != {self.dim}")
        x = x32.astype(np.float64)
        self.n += x.shape[0]
        self.s1 += x.sum(axis=0)
        self.s2 += x.T @ x
        if self.keep_features:
            self._features.append(x32.copy())

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Add ``other``'s sums (and kept features, after ours) into this one; returns self."""
        if other.n == 0:
            return self
        if self.dim is None:
            self._init(other.dim)
        if other.dim != self.dim:
            raise ValueError(f"cannot merge stats of dim {other.dim} into dim {self.dim}")
        self.n += other.n
        self.s1 += other.s1
        self.s2 += other.s2
        if self.keep_features:
            self._features.extend(other._features)
        return self

    @property
    def features(self) -> np.ndarray:
        """Kept raw features, float32 (n, dim) (only with ``keep_features=True``)."""
        if not self.keep_features:
            raise ValueError("features were not kept; create FeatureStats(keep_features=True)")
        if not self._features:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.concatenate(self._features)

    def mean(self) -> np.ndarray:
        self._check_count(1)
        return self.s1 / self.n

    def cov(self, unbiased: bool = False) -> np.ndarray:
        """Biased ``S2/n - mu mu^T`` (StyleGAN-V) or unbiased ``n/(n-1)`` times it."""
        self._check_count(2 if unbiased else 1)
        mu = self.s1 / self.n
        sigma = self.s2 / self.n - np.outer(mu, mu)
        if unbiased:
            sigma *= self.n / (self.n - 1)
        return sigma

    def _check_count(self, need: int) -> None:
        if self.n < need:
            raise UserError(f"statistics need at least {need} feature rows, have {self.n}")

    def save(self, path: str | os.PathLike) -> None:
        """Write the sums (and kept features) to an ``.npz`` atomically."""
        arrays = {"n": np.int64(self.n), "s1": self.s1, "s2": self.s2}
        if self.keep_features:
            arrays["features"] = self.features
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        try:
            with np.load(path, allow_pickle=False) as z:
                stats = cls(dim=int(z["s1"].shape[0]), keep_features="features" in z)
                stats.n = int(z["n"])
                stats.s1 = z["s1"].astype(np.float64)
                stats.s2 = z["s2"].astype(np.float64)
                if stats.keep_features:
                    stats._features = [z["features"].astype(np.float32)]
        except Exception as e:
            raise UserError(f"{path}: not a readable statistics file ({type(e).__name__}); delete it to recompute") from e
        return stats


def merge_all(parts: list[FeatureStats], keep_features: bool = False) -> FeatureStats:
    """Sum of ``parts`` added in list order (fixed order => reproducible rounding)."""
    total = FeatureStats(keep_features=keep_features)
    for p in parts:
        total.merge(p)
    return total


def _psd_eigvals(w: np.ndarray) -> np.ndarray:
    """Eigenvalues with those indistinguishable from 0 (|w| <= d*eps*max) set to 0.

    Round-off leaves ~1e-16 relative noise on zero eigenvalues; its square root (1e-8)
    would otherwise add up in the trace of singular covariances.
    """
    tol = len(w) * np.finfo(np.float64).eps * max(float(np.abs(w).max(initial=0.0)), 0.0)
    return np.where(w > tol, w, 0.0)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(_psd_eigvals(w))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr sqrtm(sigma1 @ sigma2)`` for symmetric PSD inputs, via ``sqrtm(S2^1/2 S1 S2^1/2)``."""
    root2 = _sqrt_psd(sigma2)
    m = root2 @ sigma1 @ root2
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_psd_eigvals(w)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64, >= 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    for a in (mu1, mu2, sigma1, sigma2):
        if not np.isfinite(a).all():
            raise UserError("feature statistics contain NaN/inf; the features are not finite")
    diff = mu1 - mu2
    scale = float(np.trace(sigma1) + np.trace(sigma2))
    fd = float(diff @ diff + scale - 2.0 * trace_sqrt_product(sigma1, sigma2))
    if fd < -NEGATIVE_TOLERANCE * max(scale, 1.0):
        raise UserError(f"Fréchet distance came out negative ({fd:.6g}, beyond round-off of the traces {scale:.6g}): "
                        "the statistics are inconsistent (a tampered or corrupt statistics file?); recompute with {cache}",
                        cache=False)
    return max(fd, 0.0)  # a negative value within round-off of 0 is 0


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats, unbiased: bool = False) -> float:
    return frechet_distance(a.mean(), a.cov(unbiased), b.mean(), b.cov(unbiased))

