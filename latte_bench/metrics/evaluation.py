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
    return _i3d_pass(real, fake, protocol, keep=False).to_dict()


# --- fid, is, kvd, kid (helper F). Within one evaluate() call, one I3D pass serves fvd+kvd and one
# Inception pass fid+kid; features are kept only when kvd/kid is requested. Outside evaluate()
# (a direct METRICS[name](...) call) nothing is shared, so nothing can be stale.
_SHARED: dict = {}


def _shared_pass(name: str, compute):
    if "requested" not in _SHARED:
        return compute()
    if name not in _SHARED:
        _SHARED[name] = compute()
    return _SHARED[name]


def _i3d_pass(real, fake, protocol, keep: bool):
    from latte_bench.metrics.fvd import compute_fvd

    kwargs = _accepted(compute_fvd, protocol)
    kwargs["keep_features"] = keep or "kvd" in _SHARED.get("requested", ())
    return _shared_pass("i3d", lambda: compute_fvd(real, fake, **kwargs))


def _inception_pass(real, fake, protocol, keep: bool):
    from latte_bench.metrics.fid import compute_fid

    kwargs = _accepted(compute_fid, protocol)
    kwargs["keep_features"] = keep or "kid" in _SHARED.get("requested", ())
    return _shared_pass("inception", lambda: compute_fid(real, fake, **kwargs))


def _fid(real, fake, **protocol) -> dict:
    return _inception_pass(real, fake, protocol, keep=False).to_dict()


def _kvd(real, fake, **protocol) -> dict:
    from latte_bench.metrics.kernel import kvd_record

    return kvd_record(_i3d_pass(real, fake, protocol, keep=True))


def _kid(real, fake, **protocol) -> dict:
    from latte_bench.metrics.kernel import kid_record

    return kid_record(_inception_pass(real, fake, protocol, keep=True), seed=protocol.get("seed") or 0)


def _is(real, fake, **protocol) -> dict:
    from latte_bench.metrics.inception_score import compute_is

    return compute_is(fake, **_accepted(compute_is, protocol))


METRICS: dict[str, MetricFn] = {"fvd": _fvd, "fid": _fid, "is": _is, "kvd": _kvd, "kid": _kid}


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
    _SHARED.clear()
    _SHARED["requested"] = set(metrics)
    try:
        for name in metrics:
            results[name] = METRICS[name](real, fake, **protocol)
    finally:
        _SHARED.clear()
    return {
        "real": str(real),
        "fake": str(fake),
        "metrics": {name: r["value"] for name, r in results.items()},
        "results": results,
        "protocol": {k: (str(v) if hasattr(v, "__fspath__") else v) for k, v in protocol.items()},
        "environment": environment(),
        "wall_time_s": round(time.time() - start, 3),
    }
