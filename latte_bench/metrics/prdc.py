"""Precision, recall, density and coverage of generated features against real ones (Naeem et al. 2020).

Each real item's k-NN radius is the distance to its k-th nearest other real item (the same for generated
items). With D the (N, M) real-to-generated Euclidean distances and strict comparisons, as the authors'
``prdc`` package does:

* precision: share of generated items inside some real item's radius (fidelity);
* recall: share of real items inside some generated item's radius (diversity);
* density: mean over generated items of (number of real radii they fall in) / k (fidelity; may exceed 1);
* coverage: share of real items whose nearest generated item is inside their radius (diversity).

``eval --metrics prdc`` computes them on the I3D features of the FVD pass, k = 5; each is a metric of the
record (``precision``, ``recall``, ``density``, ``coverage``), all in [0, 1] but density in [0, N/k].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latte_bench.errors import UserError
from latte_bench.metrics import i3d
from latte_bench.metrics.detector import Metric

NAMES = ("precision", "recall", "density", "coverage")
DEFAULT_K = 5


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    d = _distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the item itself (distance 0)


def prdc(real, fake, k: int = DEFAULT_K) -> dict:
    """``{precision, recall, density, coverage, k, real_count, fake_count}`` for (N, d) ``real`` and (M, d) ``fake``."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise UserError(f"prdc needs (N, d) and (M, d) features of equal d, got {real.shape} and {fake.shape}")
    if min(len(real), len(fake)) <= k:
        raise UserError(f"prdc with k = {k} needs more than {k} items a side, got {len(real)} real and {len(fake)} "
                        "generated; pass more clips")
    real_r, fake_r = _radii(real, k), _radii(fake, k)
    d = _distances(real, fake)
    inside = d < real_r[:, None]
    return {"precision": float(inside.any(axis=0).mean()), "recall": float((d < fake_r[None, :]).any(axis=1).mean()),
            "density": float(inside.sum(axis=0).mean() / k), "coverage": float((d.min(axis=1) < real_r).mean()),
            "k": int(k), "real_count": int(len(real)), "fake_count": int(len(fake))}


@dataclass(frozen=True, eq=False)
class PRDCMetric(Metric):
    """One of the four values of :func:`prdc` on the I3D logits; the four are computed once per run (``shared``)."""

    def distance(self, real, fake, proto, shared):
        if "prdc" not in shared:
            shared["prdc"] = prdc(real.features, fake.features)
        return shared["prdc"][self.name], {"k": shared["prdc"]["k"]}


METRICS = tuple(PRDCMetric(m, i3d.DETECTOR, f"Naeem et al. 2020 {m} on the I3D logits of the FVD pass, k-NN radii with k = 5 "
                           "(prdc package semantics)", needs_features=True) for m in NAMES)
