"""The one list of metrics (and through them, detectors) that ``evaluate`` and ``eval --metrics`` know.

``METRICS`` maps a name to its :class:`~latte_bench.metrics.detector.Metric`, in the order of
:data:`latte_bench.metrics.protocol.METRIC_NAMES`; ``GROUPS`` maps a name that stands for several (``prdc``)
to theirs. :func:`register` adds one (a new metric, on a new detector or a known one) without touching the
evaluation loop.
"""

from __future__ import annotations

from latte_bench.metrics import flicker, kernel, prdc
from latte_bench.metrics.detector import Metric
from latte_bench.metrics.fid import FID
from latte_bench.metrics.fvd import FVD
from latte_bench.metrics.inception_score import IS

METRICS: dict[str, Metric] = {m.name: m for m in (FVD, kernel.KVD_METRIC, FID, kernel.KID_METRIC, IS, *prdc.METRICS,
                                                  flicker.METRIC)}
GROUPS: dict[str, tuple[str, ...]] = {"prdc": prdc.NAMES}


def register(metric: Metric) -> Metric:
    """Add ``metric`` under its name (a name already taken is refused: ValueError); returns it."""
    if metric.name in METRICS or metric.name in GROUPS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    """Remove the metric ``name`` (for tests that register one of their own)."""
    METRICS.pop(name, None)

