"""The evaluation record: one typed object behind the JSON that `latte-bench eval --json` writes.

:class:`EvalRecord` is written by :func:`latte_bench.metrics.evaluation.build_record` and read by
the leaderboards (:mod:`latte_bench.reports.store`) and ``compare`` (:mod:`latte_bench.metrics.compare`)
through one pair, :meth:`EvalRecord.from_dict` / :meth:`EvalRecord.to_dict`. The JSON schema is
:data:`SCHEMA`; ``to_dict(from_dict(d)) == d`` key for key and in the same key order, so older and
hand-made records load and write back unchanged, and keys this module does not know are kept.

A metric's value is held once, in :class:`MetricResult`. The JSON repeats it: ``metrics.<name>``
(the number, or ``{"value", "std", "runs", "seeds"}`` for ``eval --num-runs K``) and
``results.<name>.value``; both are derived from the one field on write.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "latte-bench/eval-record/2"

# The top-level keys of a record, in the order `latte-bench eval` writes them.
_KEYS = ("schema", "method", "dataset", "metrics", "results", "protocol", "detectors", "counts", "nonstandard",
         "real", "fake", "seed", "runs", "run", "environment", "wall_time_s")
_FIELDS = ("schema", "method", "dataset", "protocol", "detectors", "counts", "nonstandard", "real", "fake", "seed",
           "runs", "run", "environment", "wall_time_s")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON text, key order included (what a byte-identical write needs)."""
    return json.dumps(a, default=str) == json.dumps(b, default=str)


@dataclass
class MetricResult:
    """One metric of a record.

    ``value``: the reported number (the mean over runs for ``eval --num-runs K``); ``runs``/``seeds``/``std``:
    the K per-run values, their seeds and the sample std (ddof=1), None for a single run. ``detail``: the rest
    of ``results.<name>`` after ``metric`` and ``value`` (``real_count``, ``fake_count``, ``unit``,
    ``provenance``, uncertainty fields), None where the record has no ``results`` entry (hand-made records).
    """

    name: str
    value: Any
    std: float | None = None
    runs: list[float] | None = None
    seeds: list | None = None
    detail: dict | None = None
    # the JSON pieces verbatim, for hand-made entries the two derived forms do not reproduce
    _stored: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def number(self) -> float | None:
        """The value as a finite float, None when the record holds no usable number."""
        v = self.value
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        return None

    @property
    def provenance(self) -> dict:
        prov = (self.detail or {}).get("provenance")
        return prov if isinstance(prov, dict) else {}

    def count(self, side: str) -> Any:
        """``results.<name>.<side>_count`` ("real"/"fake"), None when not recorded."""
        return (self.detail or {}).get(f"{side}_count")

    @property
    def unit(self) -> str:
        return (self.detail or {}).get("unit", "clips")

    def metrics_entry(self) -> Any:
        if self._stored is not None:
            return self._stored[0]
        if self.runs is None:
            return self.value
        return {"value": self.value, "std": self.std, "runs": self.runs, "seeds": self.seeds}

    def results_entry(self) -> dict | None:
        if self._stored is not None:
            return self._stored[1]
        return None if self.detail is None else {"metric": self.name, "value": self.value, **self.detail}

    @classmethod
    def from_json(cls, name: str, entry: Any, result: Any) -> MetricResult:
        """From ``metrics.<name>`` (``entry``) and ``results.<name>`` (``result``, None when absent)."""
        if isinstance(entry, dict) and set(entry) == {"value", "std", "runs", "seeds"}:
            out = cls(name, entry["value"], entry["std"], entry["runs"], entry["seeds"])
        elif isinstance(entry, dict):  # a hand-made ``{"value": ...}`` (or ``{name: ...}``) object
            out = cls(name, entry.get("value", entry.get(name)))
            out.runs = entry.get("runs") if isinstance(entry.get("runs"), list) else None
            out.seeds = entry.get("seeds") if isinstance(entry.get("seeds"), list) else None
        else:
            out = cls(name, entry)
        if isinstance(result, dict):
            out.detail = {k: v for k, v in result.items() if k not in ("metric", "value")}
        if not _same(out.metrics_entry(), entry) or not _same(out.results_entry(), result):
            out._stored = (entry, result)
        return out


@dataclass
class EvalRecord:
    """One evaluation. ``metrics``: ``{name: MetricResult}`` in the record's order; the other fields are
    the JSON's top-level objects as stored (``protocol``, ``counts``, ``real``/``fake`` descriptions, ...);
    ``extra``: keys this class does not name (``floor``, ``features``, ``bootstrap``, ...), kept as they are.
    ``keys``: the top-level keys present, in order (a field whose key is absent is not written)."""

    metrics: dict[str, MetricResult] = field(default_factory=dict)
    schema: str | None = SCHEMA
    method: str | None = None  # the leaderboard row
    dataset: str | None = None  # the leaderboard column
    protocol: dict | None = None  # Protocol.to_dict() with real_stride and the metrics' protocol fields
    detectors: dict | None = None  # {detector: sha256}
    counts: dict | None = None  # {"real_clips", "fake_clips", "real_frames", "fake_frames"}: items scored
    nonstandard: list | None = None  # tags where the run departs from its metrics' protocol, [] = standard
    real: dict | None = None  # the real side's description (None: no real videos)
    fake: dict | None = None  # the generated side's description (with checkpoint and sampler for a checkpoint)
    seed: int | None = None
    runs: int | None = None  # K of eval --num-runs
    run: dict | None = None  # batch size, device, world size, workers, resumed blocks (no effect on a value)
    environment: dict | None = None
    wall_time_s: float | None = None
    extra: dict = field(default_factory=dict)
    keys: list[str] = field(default_factory=lambda: list(_KEYS))
    # ``results`` as stored when it is not an object of metric entries (kept verbatim)
    _results_stored: Any = field(default=None, repr=False, compare=False)

    def result(self, name: str) -> MetricResult | None:
        return self.metrics.get(name)

    def values(self) -> dict[str, Any]:
        """``{name: metrics-entry}``: what ``metrics`` of the JSON holds."""
        return {name: m.metrics_entry() for name, m in self.metrics.items()}

    @classmethod
    def from_dict(cls, d: dict) -> EvalRecord:
        """Parse a record's JSON object (any schema version; missing keys stay missing)."""
        metrics_raw = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
        results_raw = d.get("results")
        results = results_raw if isinstance(results_raw, dict) else {}
        out = cls(keys=list(d), schema=d.get("schema"), **{k: d.get(k) for k in _FIELDS if k != "schema"})
        for name, entry in metrics_raw.items():
            out.metrics[str(name)] = MetricResult.from_json(str(name), entry, results.get(name))
        out.extra = {k: v for k, v in d.items() if k not in _KEYS}
        if "metrics" in d and not isinstance(d["metrics"], dict):
            out.extra["metrics"] = d["metrics"]
        if "results" in d and not _same(out._derived_results(), results_raw):
            out._results_stored = results_raw
        return out

    def _derived_results(self) -> dict:
        return {n: m.results_entry() for n, m in self.metrics.items() if m.results_entry() is not None}

    def to_dict(self) -> dict:
        """The JSON object: the keys of :attr:`keys` in order, ``metrics``/``results`` derived from :attr:`metrics`."""
        out = {}
        for key in self.keys:
            if key == "metrics":
                out[key] = self.extra["metrics"] if "metrics" in self.extra else self.values()
            elif key == "results":
                out[key] = self._results_stored if self._results_stored is not None else self._derived_results()
            elif key in _FIELDS:
                out[key] = getattr(self, key)
            else:
                out[key] = self.extra[key]
        for key, v in self.extra.items():  # extra keys set after loading
            if key not in out and key != "metrics":
                out[key] = v
        return out
