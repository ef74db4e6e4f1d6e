"""Inception Score from class probabilities, with the StyleGAN-V and TGAN2 protocols.

``IS = exp( mean_i KL(p(y|x_i) ‖ p(y)) )`` where ``p(y)`` is the mean prediction over the split.

* ``stylegan_v`` (``isv2048_ucf``, what Latte ships): 2048 clips, rows shuffled with
  ``np.random.RandomState(42)``, 10 splits ``P[i·N//10 : (i+1)·N//10]``, report mean and std
  (ddof=0) of the 10 per-split scores.
* ``tgan2`` (TGAN2 / TATS / DIGAN): 10,000 clips, one split (std is 0 for a single run).

Zero probabilities: StyleGAN-V takes ``log p`` with no epsilon, so an exact 0 gives ``0·(−inf) = NaN``.
Here both logarithms are taken of ``max(p, 1e-20)`` in float64. For p ≥ 1e-20 this is exact; for
smaller p the term ``p·log p`` (≤ 1e-18 in size) replaces its limit 0, so an exact zero contributes
exactly 0 — the value the formula has in the limit, and TGAN2's ``log(p + 1e-20)`` up to 1e-18.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latte_bench.errors import UserError
from latte_bench.metrics import c3d
from latte_bench.metrics.c3d import clip_preprocess  # noqa: F401  (the C3D's input layout, also used with this module)
from latte_bench.metrics.detector import Metric

EPS = 1e-20


def split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    """Row ranges ``[i·n//splits, (i+1)·n//splits)`` of the splits (StyleGAN-V's formula)."""
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(probs: np.ndarray, splits: int = 10, shuffle_seed: int | None = 42) -> dict:
    """IS of the predictions ``probs`` ``[N, K]`` (rows are probability vectors).

    Returns ``{"mean", "std", "per_split", "splits", "num_samples", "shuffle_seed"}``; ``std`` is
    numpy's population std (ddof=0). Raises :class:`UserError` when a split would hold fewer than 2 rows.
    """
    p = np.array(probs, dtype=np.float64, copy=True)
    if p.ndim != 2:
        raise UserError(f"Inception Score needs probabilities [N, K], got shape {list(p.shape)}")
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0:
        raise UserError("Inception Score: the classifier returned negative or non-finite probabilities")
    n = p.shape[0]
    if splits < 1 or n < 2 * splits:
        raise UserError(f"Inception Score: {n} samples are too few for {splits} splits (need at least {2 * splits}); generate more clips or pass fewer splits")
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(p)  # shuffles rows, as StyleGAN-V does
    scores = []
    for lo, hi in split_bounds(n, splits):
        part = p[lo:hi]
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(np.maximum(part, EPS)) - np.log(np.maximum(marginal, EPS)))
        scores.append(float(np.exp(kl.sum(axis=1).mean())))
    return {
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "per_split": scores,
        "splits": splits,
        "num_samples": n,
        "shuffle_seed": shuffle_seed,
    }


@dataclass(frozen=True, eq=False)
class InceptionScore(Metric):
    """:func:`inception_score` of the generated side's C3D probabilities, with ``proto.is_settings``."""

    def num_clips(self, proto) -> int:
        return proto.num_clips if proto.is_protocol == "stylegan_v" else proto.is_settings["num_clips"]

    def score(self, fake, proto):
        s = proto.is_settings
        out = inception_score(fake.features, splits=s["splits"], shuffle_seed=s["shuffle_seed"])
        return out["mean"], {"std": out["std"], "per_split": out["per_split"]}

    def provenance(self, proto) -> dict:
        return dict(proto.is_settings)

    def protocol_fields(self, proto) -> dict:
        return {"is": proto.is_settings}


IS = InceptionScore("is", c3d.DETECTOR, "video Inception Score with the UCF101 C3D (10 splits, shuffle seed 42 for stylegan_v)",
                    needs_real=False, needs_features=True)
