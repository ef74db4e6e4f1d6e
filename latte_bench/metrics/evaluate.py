"""``evaluate(real, fake, metrics=("fvd",), **protocol)``: several metrics, one record.

``METRICS`` maps a metric name to a function ``fn(real, fake, **protocol) -> dict`` that
returns at least ``{"value": float | dict, "provenance": dict}``. Each function receives all
protocol keyword arguments and must ignore those it does not use (see :func:`_accepted`);
new metrics (fid, is, kvd, kid) are added by adding entries.
"""

from __future__ import annotations

import inspect
import time
from typing import Callable

from latte_bench.errors import UserError
from latte_bench.provenance import environment

MetricFn = Callable[..., dict]


def _accepted(fn: Callable, protocol: dict) -> dict:
    """The subset of ``protocol`` that ``fn`` takes as keyword arguments."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(protocol)
    return {k: v for k, v in protocol.items() if k in params}


def _fvd(real, fake, **protocol) -> dict:
    from latte_bench.metrics.fvd import compute_fvd

    return compute_fvd(real, fake, **_accepted(compute_fvd, protocol)).to_dict()


METRICS: dict[str, MetricFn] = {"fvd": _fvd}


def evaluate(real, fake, metrics=("fvd",), **protocol) -> dict:
    """Run each metric in ``metrics`` on (real, fake); returns a JSON-ready record.

    Record: ``{"real", "fake", "metrics": {name: value}, "results": {name: full result},
    "protocol": the keyword arguments given, "environment", "wall_time_s"}``.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(sorted(METRICS))}")
    start = time.time()
    results = {}
    for name in metrics:
        results[name] = METRICS[name](real, fake, **protocol)
    return {
        "real": str(real),
        "fake": str(fake),
        "metrics": {name: r["value"] for name, r in results.items()},
        "results": results,
        "protocol": {k: (str(v) if hasattr(v, "__fspath__") else v) for k, v in protocol.items()},
        "environment": environment(),
        "wall_time_s": round(time.time() - start, 3),
    }
