"""The results store: a folder of JSON evaluation records, loaded, checked and grouped.

Layout. Every evaluation writes one JSON record (``latte-bench eval --json OUT``) anywhere under
a results folder (default ``results/``, or ``--results DIR``); sub-folders are free-form; JSON
files without a ``metrics`` object are ignored. A record is a JSON object with

- ``metrics``: ``{name: value}`` (a number, or an object with a ``value``), e.g.
  ``{"fvd": 412.3, "fid": 30.1}``; required;
- ``method`` and ``dataset``: the row and column of a leaderboard (fallbacks: ``model.name`` /
  the generated folder's name; ``protocol.dataset`` / the real folder's name);
- ``seed`` (else ``protocol.seed``): the seed that mean ± std is taken over;
- the settings: ``results.<metric>.provenance`` (what `latte-bench eval` writes: clip counts,
  frames, strides, resize mode, covariance, detector sha256, resolutions, ...), and/or
  ``protocol``, ``detectors`` (name -> sha256) and ``counts`` for hand-made records;
- optional ``bootstrap.<metric>`` (a stored confidence interval) and ``features.<metric>``
  (``{"real": npz, "fake": npz}`` kept detector features, for :func:`record_features`).

Protocol agreement. Two records are averaged only when their *protocol key* for that metric is
identical: the metric name and every setting above except the ones that cannot move the number
(:data:`IGNORED_PROTOCOL_KEYS`: paths, seeds, batch size, device, timings). Records that
disagree are kept as **separate rows** whose label names the differing settings (e.g.
``Latte [real_stride=6]``); with ``strict=True`` they are refused with one :class:`UserError`
line naming the records and the settings. Nothing is ever silently averaged across protocols.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from latte_bench.errors import UserError

DEFAULT_RESULTS_DIR = Path("results")

# Settings that cannot change a metric value: where files were, how fast it ran, what seeded it,
# and per-run bookkeeping of `latte-bench eval` records (matched on the first or last part of a
# dotted key). `real_fingerprint` hashes file names, sizes and mtimes, so two copies of the same
# data differ in it: the dataset name and the clip counts/resolutions stand in for it.
IGNORED_PROTOCOL_KEYS = frozenset(
    {
        "seed", "batch_size", "num_workers", "workers", "device", "devices", "world_size",
        "real", "fake", "real_path", "fake_path", "path", "dataset",
        "cache", "cache_dir", "use_cache", "progress", "verbose", "json", "out",
        "keep_features", "features_path", "environment", "wall_time_s", "metric", "value", "std",
        "real_sampling", "fake_sampling", "real_skipped_videos", "real_skipped_clips",
        "real_stats_cache", "real_fingerprint", "fake_fingerprint", "timestamp_utc",
    }
)

# dataset spellings seen in configs, CLI flags and folder names -> the paper's names
_DATASET_ALIASES = {
    "ffs": "FaceForensics", "faceforensics": "FaceForensics", "face_forensics": "FaceForensics",
    "sky": "SkyTimelapse", "skytimelapse": "SkyTimelapse", "sky_timelapse": "SkyTimelapse",
    "ucf": "UCF101", "ucf101": "UCF101", "ucf-101": "UCF101",
    "taichi": "Taichi-HD", "taichi-hd": "Taichi-HD", "taichi_hd": "Taichi-HD", "taichihd": "Taichi-HD",
}


def canonical_dataset(name: str) -> str:
    """``ffs`` -> ``FaceForensics``, ``ucf101`` -> ``UCF101`` etc.; other names are kept."""
    return _DATASET_ALIASES.get(str(name).strip().lower(), str(name))


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
    protocols: dict[str, dict[str, Any]]  # per metric, flattened: what must agree to average

    def protocol(self, metric: str) -> dict[str, Any]:
        return self.protocols[metric]

    def protocol_key(self, metric: str) -> str:
        """A canonical string of everything that must match to average ``metric`` values."""
        return json.dumps({"metric": metric, **self.protocols[metric]}, sort_keys=True, default=str)


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
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise UserError(f"{path}: no 'metrics' object in this record; re-run `latte-bench eval --json {path}`")
    out = {}
    for name, v in metrics.items():
        if isinstance(v, dict):
            v = v.get("value", v.get(name))
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[str(name)] = float(v)
    if not out:
        raise UserError(f"{path}: 'metrics' holds no finite numeric value; re-run the evaluation")
    return out


def _detector_hashes(raw: dict) -> dict[str, str]:
    dets = raw.get("detectors") or {}
    out = {}
    if isinstance(dets, dict):
        for name, d in dets.items():
            out[str(name)] = str(d.get("sha256") if isinstance(d, dict) else d)
    return out


def _ignored(key: str) -> bool:
    parts = key.split(".")
    return parts[0] in IGNORED_PROTOCOL_KEYS or parts[-1] in IGNORED_PROTOCOL_KEYS


def _protocols(raw: dict, metric_names) -> dict[str, dict[str, Any]]:
    """Per metric: the record-wide ``protocol``/``detectors``/``counts`` overlaid with that
    metric's own effective settings (``results.<name>.provenance`` of `latte-bench eval`)."""
    common = dict(_flatten(raw.get("protocol") or {}))
    for name, h in _detector_hashes(raw).items():
        common[f"detector.{name}"] = h
    for k, v in _flatten(raw.get("counts") or {}).items():
        common[f"counts.{k}"] = v
    results = raw.get("results") if isinstance(raw.get("results"), dict) else {}
    out = {}
    for name in metric_names:
        proto = dict(common)
        res = results.get(name)
        if isinstance(res, dict) and isinstance(res.get("provenance"), dict):
            proto.update(_flatten(res["provenance"]))
        out[name] = {k: v for k, v in proto.items() if not _ignored(k)}
    return out


def _first(raw: dict, *keys: str) -> Any:
    for dotted in keys:
        cur: Any = raw
        for part in dotted.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur not in (None, ""):
            return cur
    return None


def record_from_dict(raw: dict, path: str | Path = "<memory>") -> Record:
    """Normalise one record; :class:`UserError` naming ``path`` when it cannot be used.

    ``method`` falls back to ``model.name``, then to the generated set's folder name (``fake``);
    ``dataset`` to ``protocol.dataset``, then to the real set's folder name (``real``). Set
    both explicitly for leaderboards: the fallbacks only keep unlabelled records apart.
    """
    path = Path(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a results record must be a JSON object")
    method = _first(raw, "method", "model.name", "model.label", "label")
    if method is None and isinstance(raw.get("model"), str):
        method = raw["model"]
    if method is None and raw.get("fake"):
        method = f"? {Path(str(raw['fake'])).name}"
    dataset = _first(raw, "dataset", "data.dataset", "protocol.dataset")
    if dataset is None and raw.get("real"):
        dataset = Path(str(raw["real"])).name
    if method is None or dataset is None:
        missing = " and ".join(n for n, v in (("'method'", method), ("'dataset'", dataset)) if v is None)
        raise UserError(f"{path}: record has no {missing}; add it (e.g. \"method\": \"Latte\", \"dataset\": \"UCF101\")")
    seed = _first(raw, "seed", "protocol.seed")
    metrics = _metric_values(raw, path)
    return Record(
        path=path,
        raw=raw,
        method=str(method),
        dataset=canonical_dataset(dataset),
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        metrics=metrics,
        protocols=_protocols(raw, metrics),
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
        if isinstance(raw, dict) and "metrics" in raw:
            records.append(record_from_dict(raw, p))
    return records


# ---------------------------------------------------------------- bootstrap inputs and outputs


def stored_bootstrap(record: Record, metric: str) -> dict | None:
    """The ``bootstrap.<metric>`` entry of a record (``{"low", "high", ...}``), if it has one."""
    entry = (record.raw.get("bootstrap") or {}).get(metric)
    return entry if isinstance(entry, dict) and "low" in entry and "high" in entry else None


def _stored_ci(records: list[Record], metric: str) -> tuple[float, float] | None:
    # a CI describes one evaluation; rows of several seeds show mean ± std instead
    if len(records) != 1:
        return None
    entry = stored_bootstrap(records[0], metric)
    return (float(entry["low"]), float(entry["high"])) if entry else None


def record_features(record: Record, metric: str = "fvd") -> tuple[np.ndarray, np.ndarray] | None:
    """Stored detector features (real, fake) for ``metric``, or None when the record has none.

    A record points at them with ``"features": {"<metric>": {"real": A.npz, "fake": B.npz}}``
    (paths relative to the record file), each a :class:`latte_bench.metrics.stats.FeatureStats`
    file saved with ``keep_features=True``.
    """
    from latte_bench.metrics.stats import FeatureStats

    entry = (record.raw.get("features") or {}).get(metric)
    if not isinstance(entry, dict) or "real" not in entry or "fake" not in entry:
        return None
    out = []
    for side in ("real", "fake"):
        p = Path(entry[side])
        if not p.is_absolute():
            p = record.path.parent / p
        if not p.is_file():
            raise UserError(f"{record.path}: features file {p} is missing; re-run the evaluation with kept features")
        stats = FeatureStats.load(p)
        if not stats.keep_features:
            raise UserError(f"{p}: holds statistics only, no features; re-run the evaluation keeping features")
        out.append(stats.features)
    return out[0], out[1]


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
        differing = _differing([g[0].protocol(metric) for g in groups]) if len(groups) > 1 else []
        if differing and strict:
            names = ", ".join(str(g[0].path) for g in groups)
            what = "; ".join(
                f"{k}: " + " vs ".join(str(g[0].protocol(metric).get(k)) for g in groups) for k in differing[:3]
            )
            raise UserError(
                f"records for {method} on {dataset} ({metric}) disagree on protocol ({what}): {names}; "
                "evaluate them with the same settings or drop --strict to list them as separate rows"
            )
        for g in groups:
            note = ", ".join(_short(k, g[0].protocol(metric).get(k)) for k in differing)
            rows.append(
                Row(
                    method=method,
                    dataset=dataset,
                    metric=metric,
                    values=[r.metrics[metric] for r in g],
                    seeds=[r.seed for r in g],
                    paths=[r.path for r in g],
                    protocol=dict(g[0].protocol(metric)),
                    ci=_stored_ci(g, metric),
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
                elif key.lower() == "fvd" or re.fullmatch(r"fvd\d+_\d+f.*", key.lower()):
                    series["fvd"][int(step)] = float(v)
    return {k: (sorted(d), [d[s] for s in sorted(d)]) for k, d in series.items()}
