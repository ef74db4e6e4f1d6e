"""Evaluation: FVD, FID, Inception Score, KVD and KID with the published protocols.

Public API (imported lazily, so ``import latte_bench.metrics`` stays cheap):

* :func:`evaluate` — several metrics, one record: ``evaluate(real, fake, metrics=("fvd", "kvd"), **settings)``;
* :func:`evaluate_floor` — the real-vs-real floor alone (``eval --floor``'s ``floor``, no generated side);
* :func:`compute_fvd`, :func:`compute_fid`, :func:`compute_is` — one metric each;
* :class:`EvalResult` (``.value``, ``.fvd``/``.fid``/..., ``.record``), :class:`Protocol`, :class:`RunOptions`;
* :class:`CheckpointSource` — a checkpoint as the generated side, sampled in memory;
* :func:`temporal_flickering`, :func:`flicker_scores` — VBench's temporal-flickering score of uint8
  videos (N, T, H, W, 3), in [0, 1], no detector;
* :class:`Detector`, :class:`Metric`, :func:`register` — the interfaces of a detector and a metric, and the
  registry ``evaluate`` reads (docs/evaluation.md, "Detectors and metrics are objects");
* :func:`fvd_from_features`, :func:`fid_from_features` — a distance from (N, d) features with its ``se``,
  N → ∞ estimate and interval (:class:`FrechetEstimate`).
"""

from latte_bench.lazy import lazy_getattr

_EXPORTS = {
    "evaluate": "evaluation",
    "evaluate_floor": "evaluation",
    "compute_fvd": "evaluation",
    "compute_fid": "evaluation",
    "compute_is": "evaluation",
    "EvalResult": "evaluation",
    "build_record": "evaluation",
    "Protocol": "protocol",
    "RunOptions": "protocol",
    "CheckpointSource": "sources",
    "Detector": "detector",
    "Metric": "detector",
    "register": "registry",
    "fvd_from_features": "uncertainty",
    "fid_from_features": "uncertainty",
    "FrechetEstimate": "uncertainty",
    "temporal_flickering": "flicker",
    "flicker_scores": "flicker",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
