"""The results store: a folder of JSON evaluation records, loaded, checked and grouped.

Layout. Every evaluation writes one JSON record (``latte-bench eval --json OUT``) anywhere under
a results folder (default ``results/``, or ``--results DIR``); sub-folders are free-form. A record
is a JSON object with at least

- ``metrics``: ``{name: value}`` (a number, or an object with a ``value``), e.g.
  ``{"fvd2048_16f": 412.3, "fid": 30.1}``;
- ``dataset`` and ``method`` (what the row and column of a leaderboard are; ``method`` falls back
  to ``model.name``, then to ``model`` when it is a string);
- ``seed``; ``protocol`` (the settings that move a number: clip count, frames, real/gen stride,
  resize mode, ...); ``detectors`` (name -> sha256, or -> {"sha256": ...}); ``counts``.

Protocol agreement. Two records are averaged only when their *protocol key* is identical: the
metric name, every ``protocol`` entry except the ones that cannot move the number
(:data:`IGNORED_PROTOCOL_KEYS`), every detector sha256 and the clip/frame ``counts``. Records that
disagree are kept as **separate rows** whose label names the differing settings (e.g.
``Latte [real_stride=6]``); with ``strict=True`` they are refused with one :class:`UserError`
line naming the records and the settings. Nothing is ever silently averaged across protocols.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from latte_bench.errors import UserError

DEFAULT_RESULTS_DIR = Path("results")

# Settings that cannot change a metric value: where files were, how fast it ran, what seeded it.
IGNORED_PROTOCOL_KEYS = frozenset(
    {
        "seed",
        "batch_size",
        "num_workers",
        "device",
        "devices",
        "world_size",
        "real_path",
        "fake_path",
        "path",
        "cache",
        "cache_dir",
        "use_cache",
        "progress",
        "verbose",
        "json",
        "out",
        "keep_features",
        "features_path",
    }
)

METRIC_FAMILIES = ("fvd", "fid", "is", "kvd", "kid")


def metric_family(name: str) -> str:
    """``fvd2048_16f`` -> ``fvd``; ``fid50k_full`` -> ``fid``; ``isv2048_ucf`` -> ``is``."""
    low = name.lower()
    for fam in ("fvd", "fid", "kvd", "kid"):
        if low.startswith(fam):
            return fam
    if low.startswith("is"):
        return "is"
    return low


@dataclass
class Record:
    """One evaluation record, normalised. ``raw`` is the JSON object as stored."""

    path: Path
    raw: dict
    method: str
    dataset: str
    seed: int | None
    metrics: dict[str, float]
    protocol: dict[str, Any]  # flattened: what must agree before two records are averaged

    def protocol_key(self, metric: str) -> str:
        """A canonical string of everything that must match to average ``metric`` values."""
        return json.dumps({"metric": metric, **self.protocol}, sort_keys=True, default=str)


@dataclass
class Row:
    """Records of one method on one dataset with one metric under one protocol."""

    method: str
    dataset: str
    metric: str
    values: list[float]
    seeds: list[int | None]
    paths: list[Path]
    protocol: dict[str, Any]
    note: str = ""  # which settings set this row apart from its siblings
    ci: tuple[float, float] | None = field(default=None)  # bootstrap CI of a single record

    @property
    def label(self) -> str:
        return f"{self.method} [{self.note}]" if self.note else self.method

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (ddof=1); NaN for a single record."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan


# ---------------------------------------------------------------- loading


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (list, tuple)):
        out[prefix[:-1]] = json.dumps(obj, sort_keys=True, default=str)
    else:
        out[prefix[:-1]] = obj
    return out


def _metric_values(raw: dict, path: Path) -> dict[str, float]:
    metrics = raw.get("metrics", raw.get("results"))
    if not isinstance(metrics, dict) or not metrics:
        raise UserError(f"{path}: no 'metrics' object in this record; re-run `latte-bench eval --json {path}`")
    out = {}
    for name, v in metrics.items():
        if isinstance(v, dict):
            v = v.get("value")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(name)] = float(v)
    if not out:
        raise UserError(f"{path}: 'metrics' holds no numeric value; re-run the evaluation")
    return out


def _detector_hashes(raw: dict) -> dict[str, str]:
    dets = raw.get("detectors") or {}
    out = {}
    if isinstance(dets, dict):
        for name, d in dets.items():
            out[str(name)] = str(d.get("sha256") if isinstance(d, dict) else d)
    return out


def _protocol(raw: dict) -> dict[str, Any]:
    proto = {k: v for k, v in _flatten(raw.get("protocol") or {}).items() if k.split(".")[-1] not in IGNORED_PROTOCOL_KEYS}
    for name, h in _detector_hashes(raw).items():
        proto[f"detector.{name}"] = h
    for k, v in _flatten(raw.get("counts") or {}).items():
        proto[f"counts.{k}"] = v
    return proto


def _first(raw: dict, *keys: str) -> Any:
    for dotted in keys:
        cur: Any = raw
        for part in dotted.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur not in (None, ""):
            return cur
    return None


def record_from_dict(raw: dict, path: str | Path = "<memory>") -> Record:
    """Normalise one record; :class:`UserError` naming ``path`` when a required field is missing."""
    path = Path(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a results record must be a JSON object")
    method = _first(raw, "method", "model.name", "model.label", "label")
    if method is None and isinstance(raw.get("model"), str):
        method = raw["model"]
    dataset = _first(raw, "dataset", "data.dataset", "real.dataset", "protocol.dataset")
    if method is None or dataset is None:
        missing = " and ".join(n for n, v in (("'method'", method), ("'dataset'", dataset)) if v is None)
        raise UserError(f"{path}: record has no {missing}; add it (e.g. \"method\": \"Latte\", \"dataset\": \"UCF101\")")
    seed = _first(raw, "seed", "protocol.seed")
    return Record(
        path=path,
        raw=raw,
        method=str(method),
        dataset=str(dataset),
        seed=int(seed) if isinstance(seed, (int, float)) else None,
        metrics=_metric_values(raw, path),
        protocol=_protocol(raw),
    )


def load_record(path: str | Path) -> Record:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such record") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); delete it or re-run the evaluation") from None
    return record_from_dict(raw, path)


def load_records(results_dir: str | Path = DEFAULT_RESULTS_DIR) -> list[Record]:
    """Every ``*.json`` record under ``results_dir`` (recursively, sorted by path).

    Files that are JSON but not evaluation records (no ``metrics``) are skipped, so a results
    folder may also hold configs or logs; broken records raise :class:`UserError`.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"{root}: results folder not found; pass --results DIR or run `latte-bench eval --json {root}/NAME.json`")
    records = []
    for p in sorted(root.rglob("*.json")):
        if p.name.startswith("."):
            continue  # temporary files of atomic writes
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: not valid JSON ({e.msg} at line {e.lineno}); delete it or re-run the evaluation") from None
        if isinstance(raw, dict) and ("metrics" in raw or "results" in raw):
            records.append(record_from_dict(raw, p))
    return records


# ---------------------------------------------------------------- grouping


def _differing(protocols: list[dict[str, Any]]) -> list[str]:
    keys = sorted(set().union(*protocols))
    return [k for k in keys if len({json.dumps(p.get(k), sort_keys=True, default=str) for p in protocols}) > 1]


def _short(key: str, value: Any) -> str:
    name = key.split(".")[-1] if not key.startswith("detector.") else key
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        value = value[:8]
    return f"{name}={value}"


def group_rows(records: Iterable[Record], metric_families: Iterable[str], strict: bool = False) -> list[Row]:
    """Group records into rows of (method, dataset, metric, protocol).

    ``metric_families`` selects metrics by family (``fvd``, ``fid``, ``is``, ...). Within one
    (method, dataset, metric) cell, records with different protocol keys become separate rows
    labelled with the settings that differ; ``strict=True`` raises :class:`UserError` instead.
    """
    fams = set(metric_families)
    cells: dict[tuple[str, str, str], list[Record]] = {}
    for r in records:
        for name in r.metrics:
            if metric_family(name) in fams:
                cells.setdefault((r.method, r.dataset, name), []).append(r)
    rows: list[Row] = []
    for (method, dataset, metric), recs in sorted(cells.items()):
        by_proto: dict[str, list[Record]] = {}
        for r in recs:
            by_proto.setdefault(r.protocol_key(metric), []).append(r)
        groups = list(by_proto.values())
        differing = _differing([g[0].protocol for g in groups]) if len(groups) > 1 else []
        if differing and strict:
            names = ", ".join(str(g[0].path) for g in groups)
            what = "; ".join(
                f"{k}: " + " vs ".join(str(g[0].protocol.get(k)) for g in groups) for k in differing[:3]
            )
            raise UserError(
                f"records for {method} on {dataset} ({metric}) disagree on protocol ({what}): {names}; "
                "evaluate them with the same settings or drop --strict to list them as separate rows"
            )
        for g in groups:
            note = ", ".join(_short(k, g[0].protocol.get(k)) for k in differing)
            rows.append(
                Row(
                    method=method,
                    dataset=dataset,
                    metric=metric,
                    values=[r.metrics[metric] for r in g],
                    seeds=[r.seed for r in g],
                    paths=[r.path for r in g],
                    protocol=dict(g[0].protocol),
                    note=note,
                )
            )
    return rows


# ---------------------------------------------------------------- training logs

_STEP_KEYS = ("step", "train_step", "train_steps", "iteration", "iter", "global_step")


def read_training_log(run: str | Path) -> dict:
    """Loss and FVD by step from a run's JSONL log(s): ``{"fvd": (steps, values), "loss": (steps, values)}``.

    ``run`` is a JSONL file or a run folder (every ``*.jsonl`` in it, sorted, is read). Each line is
    a JSON object with a step (``step``, ``iteration``, ...) and any of ``loss`` and ``fvd`` (or a
    key starting with ``fvd``); other lines are ignored. A step logged twice (a resumed run) keeps
    its last value.
    """
    run = Path(run)
    files = [run] if run.is_file() else sorted(run.glob("*.jsonl")) if run.is_dir() else []
    if not files:
        raise UserError(f"{run}: no JSONL training log found; pass a run folder written by `latte-bench train`")
    series: dict[str, dict[int, float]] = {"fvd": {}, "loss": {}}
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{f}:{n}: not a JSON line; the log is damaged (truncate the last line and resume)") from None
            if not isinstance(obj, dict):
                continue
            step = next((obj[k] for k in _STEP_KEYS if isinstance(obj.get(k), (int, float))), None)
            if step is None:
                continue
            for key, v in obj.items():
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    continue
                if key == "loss":
                    series["loss"][int(step)] = float(v)
                elif key.lower().startswith("fvd"):
                    series["fvd"][int(step)] = float(v)
    return {k: (sorted(d), [d[s] for s in sorted(d)]) for k, d in series.items()}
