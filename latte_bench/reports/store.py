"""The results store: a folder of JSON evaluation records, loaded, checked and grouped.

Layout. Every evaluation writes one JSON record (``latte-bench eval --json OUT``) anywhere under
a results folder (default ``results/``, or ``--results DIR``); sub-folders are free-form; JSON
files without a ``metrics`` object are ignored. A record is a JSON object with

- ``metrics``: ``{name: value}`` (a number, or an object with a ``value``), e.g.
  ``{"fvd": 412.3, "fid": 30.1}``; required;
- ``method`` and ``dataset``: the row and column of a leaderboard (fallbacks: ``"<model> step <N>"``
  of the checkpoint / the generated folder's name; ``protocol.dataset`` / the real folder's name);
- ``nonstandard``: tags the evaluation wrote where it departs from its protocol (``["3 clips"]``);
- ``seed`` (else ``protocol.seed``): the seed that mean ± std is taken over;
- the settings: ``results.<metric>.provenance`` (what `latte-bench eval` writes: clip counts,
  frames, strides, resize mode, covariance, detector sha256, resolutions, ...), and/or
  ``protocol``, ``detectors`` (name -> sha256) and ``counts`` for hand-made records;
- optional ``bootstrap.<metric>`` (a stored confidence interval) and ``features.<metric>``
  (``{"real": npz, "fake": npz}`` kept detector features, for :func:`record_features`).

Column protocol. A record whose settings depart from its leaderboard column's protocol (fewer clips,
another stride, resize, ...) is labelled with tags naming what differs (:func:`nonstandard_tags`,
e.g. ``Latte [3 clips]``), or refused with ``strict=True``.

Protocol agreement. Two records are averaged only when their *protocol key* for that metric is
identical: the metric name and every setting above except the ones that cannot move the number
(:data:`IGNORED_PROTOCOL_KEYS`: paths, seeds, batch size, device, timings). Records that
disagree are kept as **separate rows**; where their tags do not tell them apart, the label names the
differing settings (e.g. ``Latte [detector.i3d=aaaaaaaa]``); with ``strict=True`` they are refused with one :class:`UserError`
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

from latte_bench.data.registry import canonical_dataset, find_dataset
from latte_bench.errors import UserError
from latte_bench.metrics.protocol import IS_SETTINGS, Protocol, STANDARD_CLIPS, STANDARD_FRAMES, departures
from latte_bench.metrics.stats import FeatureStats
from latte_bench.metrics.record import EvalRecord

DEFAULT_RESULTS_DIR = Path("results")
GENERATED_ONLY = "generated only"  # the dataset of a record that scored generated videos alone, with no dataset named

# Settings that cannot change a metric value: where files were, how fast it ran, what seeded it,
# and per-run bookkeeping of `latte-bench eval` records (matched on the first or last part of a
# dotted key). `real_fingerprint` hashes file names, sizes, mtimes and a content sample, so two copies
# of the same data can differ in it: the dataset name and the clip counts/resolutions stand in for it.
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
    # per metric, the K values and seeds of an `eval --num-runs K` record (``metrics`` holds their mean)
    runs: dict[str, tuple[list[float], list[int | None]]] = field(default_factory=dict)
    typed: EvalRecord | None = None  # ``raw`` parsed (:class:`latte_bench.metrics.record.EvalRecord`)

    def values(self, metric: str) -> tuple[list[float], list[int | None]]:
        """The values of ``metric`` this record holds, with their seeds (one, or K runs)."""
        return self.runs.get(metric, ([self.metrics[metric]], [self.seed]))

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
    note: str = ""  # the label's bracket: nonstandard tags, then settings that set it apart from siblings
    nonstandard: list[str] = field(default_factory=list)  # where it departs from its column's protocol
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


def _metric_values(rec: EvalRecord, path: Path) -> dict[str, float]:
    if not rec.metrics or "metrics" in rec.extra:
        raise UserError(f"{path}: no 'metrics' object in this record; re-run `latte-bench eval --json {path}`")
    out = {name: m.number for name, m in rec.metrics.items() if m.number is not None}
    if not out:
        raise UserError(f"{path}: 'metrics' holds no finite numeric value; re-run the evaluation")
    return out


def _metric_runs(rec: EvalRecord) -> dict[str, tuple[list[float], list[int | None]]]:
    """``{name: (values, seeds)}`` for metrics stored as ``{"value", "std", "runs", "seeds"}`` (eval --num-runs)."""
    out = {}
    for name, m in rec.metrics.items():
        runs = m.runs
        if isinstance(runs, list) and runs and all(isinstance(x, (int, float)) and math.isfinite(x) for x in runs):
            seeds = m.seeds if isinstance(m.seeds, list) and len(m.seeds) == len(runs) else [None] * len(runs)
            out[name] = ([float(x) for x in runs], list(seeds))
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


def _protocols(raw: dict, typed: EvalRecord, metric_names) -> dict[str, dict[str, Any]]:
    """Per metric: the record-wide ``protocol``/``detectors``/``counts`` overlaid with that
    metric's own effective settings (``results.<name>.provenance`` of `latte-bench eval`)."""
    common = dict(_flatten(raw.get("protocol") or {}))
    for name, h in _detector_hashes(raw).items():
        common[f"detector.{name}"] = h
    for k, v in _flatten(raw.get("counts") or {}).items():
        common[f"counts.{k}"] = v
    out = {}
    for name in metric_names:
        proto = dict(common)
        proto.update(_flatten(typed.metrics[name].provenance))
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


def _source_path(source: Any) -> str | None:
    """The path of a ``real``/``fake`` entry: a string (old records) or ``{"path": ...}`` (eval-record/2)."""
    if isinstance(source, dict):
        source = source.get("path")
    return str(source) if source else None


def _folder_name(path: str) -> str:
    """``samples/ucf`` -> ``ucf``; ``samples/ucf/videos.npz`` -> ``ucf`` (a file names its folder)."""
    p = Path(path)
    return p.parent.name if p.suffix and p.parent.name else p.name


def _model_method(raw: dict) -> str | None:
    """``"<model> step <N>"`` from a checkpoint description (``fake.checkpoint`` or ``model``), else the model name."""
    for ckpt in (_first(raw, "fake.checkpoint"), raw.get("model")):
        if isinstance(ckpt, str):
            return ckpt
        if isinstance(ckpt, dict):
            name = ckpt.get("name") or ckpt.get("model") or (ckpt.get("train_config") or {}).get("model")
            step = ckpt.get("step")
            if name and isinstance(step, int) and not isinstance(step, bool):
                return f"{name} step {step}"
            if name:
                return str(name)
    return None


def record_from_dict(raw: dict, path: str | Path = "<memory>") -> Record:
    """Normalise one record; :class:`UserError` naming ``path`` when it cannot be used.

    ``method`` (the row name) falls back to ``"<model> step <N>"`` of the checkpoint the videos
    were sampled from (``fake.checkpoint``, or ``model``), then to the generated set's folder name;
    ``dataset`` to ``protocol.dataset``, then to the real set's folder name, then to :data:`GENERATED_ONLY`
    for an evaluation of generated videos alone (``"real": null``). ``real``/``fake`` may
    be paths (older records) or ``{"path": ...}`` objects (``latte-bench/eval-record/2``).
    """
    path = Path(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a results record must be a JSON object")
    method = _first(raw, "method", "model.label", "label") or _model_method(raw)
    if method is None and _source_path(raw.get("fake")):
        method = _folder_name(_source_path(raw["fake"]))
    dataset = _first(raw, "dataset", "data.dataset", "protocol.dataset")
    if dataset is None and _source_path(raw.get("real")):
        dataset = _folder_name(_source_path(raw["real"]))
    if dataset is None and "real" in raw and raw["real"] is None and raw.get("fake"):
        dataset = GENERATED_ONLY  # scored without real videos or a dataset, e.g. `eval --metrics flicker`
    if method is None or dataset is None:
        missing = " and ".join(n for n, v in (("'method'", method), ("'dataset'", dataset)) if v is None)
        raise UserError(f"{path}: record has no {missing}; add it (e.g. \"method\": \"Latte\", \"dataset\": \"UCF101\")")
    seed = _first(raw, "seed", "protocol.seed")
    typed = EvalRecord.from_dict(raw)
    metrics = _metric_values(typed, path)
    return Record(
        path=path,
        raw=raw,
        method=str(method),
        dataset=canonical_dataset(dataset),
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        metrics=metrics,
        protocols=_protocols(raw, typed, metrics),
        runs=_metric_runs(typed),
        typed=typed,
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


# ---------------------------------------------------------------- the paper's protocol per column

def column_protocol(family: str) -> dict[str, Any]:
    """What a number in a paper column of metric ``family`` was measured with: the evaluation
    defaults of :class:`latte_bench.metrics.protocol.Protocol` (2,048 generated clips of 16
    frames, generated stride 1, resize, covariance, FID mode) and the StyleGAN-V IS splits.
    ``clips`` counts generated clips (for FID: videos whose first ``frames`` frames are scored)."""

    p = Protocol()
    clips = {"clips": STANDARD_CLIPS, "frames": STANDARD_FRAMES}
    return {
        "fvd": {**clips, "fake_stride": p.fake_stride, "resize": p.resize, "covariance": p.covariance},
        "kvd": {**clips, "fake_stride": p.fake_stride, "resize": p.resize},
        "fid": {**clips, "fid_mode": p.fid_mode, "covariance": p.covariance},
        "kid": {**clips, "fid_mode": p.fid_mode},
        "is": {"clips": IS_SETTINGS["stylegan_v"]["num_clips"], "splits": IS_SETTINGS["stylegan_v"]["splits"]},
    }.get(family, {})


_NAME_PROTOCOL = re.compile(r"^(?:fvd|kvd|fid|kid|isv?)(\d+)(?=_|$)(?:_(\d+)f)?")


def _paper_real_stride(dataset: str) -> int | None:
    """The real-clip stride of a paper dataset's column (3; Taichi-HD 6), None for other columns."""
    spec = find_dataset(dataset)
    return spec.stride if spec is not None and spec.in_paper and spec.title == dataset else None


def _count(record: Record, metric: str, side: str) -> int | None:
    """Clips of ``side`` ("real"/"fake") behind ``metric``: the record's ``results.<m>.<side>_count``
    (when counted in clips), else the metric's provenance, else ``counts``, else the requested number."""
    res = record.typed.result(metric)
    if res is not None and res.unit == "clips" and isinstance(res.count(side), int):
        return int(res.count(side))
    proto = record.protocol(metric)
    keys = (f"{side}_clips", f"{side}_videos", f"counts.{side}_clips") + (("num_clips",) if side == "fake" else ())
    for key in keys:
        v = proto.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
    return None


def _real_set_exhausted(record: Record, metric: str, real: int) -> bool:
    """True when every long-enough real video was used: the protocol's min(#videos, 2048)."""
    res = record.typed.result(metric)
    sampling = res.provenance.get("real_sampling") if res is not None else None
    return isinstance(sampling, dict) and sampling.get("videos_long_enough") == real


def column_differences(record: Record, metric: str) -> list[str]:
    """The tags of :func:`_column_departures`."""
    return [tag for _, tag in _column_departures(record, metric)]


def _column_departures(record: Record, metric: str) -> list[tuple[str, str]]:
    """Where ``record``'s ``metric`` departs from its leaderboard column's protocol, as short tags.

    Checked against :func:`column_protocol` of the metric's family: the number of generated clips
    (``"3 clips"``), of real clips (``"700 real clips"``; fewer than 2,048 is the protocol only when
    every long-enough real video was used, as for FaceForensics' 704 training videos), frames per
    clip, the real stride of a paper dataset (3; Taichi-HD 6), the generated stride, resize,
    covariance, FID mode and IS splits. A record that states no clip count at all is tagged
    ``"clip count not recorded"``; other settings a record does not state are not guessed, except
    clips/frames spelled in the metric name (``fvd2048_128f``); the real split is the evaluation's
    to judge (its ``nonstandard`` tags).
    """
    family = metric_family(metric)
    want = column_protocol(family)
    if not want:
        return []
    proto = record.protocol(metric)
    named = _NAME_PROTOCOL.match(metric.lower())
    tags = []
    fake = _count(record, metric, "fake")
    if fake is None and named:
        fake = int(named.group(1))
    if fake is None:
        tags.append(("fake count", "clip count not recorded"))  # nothing shows the protocol was followed
    elif fake != want["clips"]:
        tags.append(("fake count", f"{fake} clips"))
    if family in ("fvd", "kvd"):
        real = _count(record, metric, "real")
        if real is not None and real < want["clips"] and real != fake and not _real_set_exhausted(record, metric, real):
            tags.append(("real count", f"{real} real clips"))
    if "frames" in want:
        frames = proto.get("num_frames")
        if frames is None and named and named.group(2):
            frames = int(named.group(2))
        if frames is not None and frames != want["frames"]:
            tags.append(("frames", f"{frames} frames"))
    if family in ("fvd", "kvd"):
        stride = _paper_real_stride(record.dataset)
        if stride is not None and proto.get("real_stride") not in (None, stride):
            tags.append(("real stride", f"stride {proto['real_stride']}"))
    for key, kind, tag in (("fake_stride", "fake stride", "generated stride {}"), ("resize", "resize", "{} resize"),
                           ("covariance", "covariance", "{} covariance"), ("fid_mode", "fid mode", "fid mode {}"),
                           ("splits", "splits", "{} IS splits")):
        if key in want and proto.get(key) not in (None, want[key]):
            tags.append((kind, tag.format(proto[key])))
    return tags


def _own_departures(record: Record, metric: str) -> list[tuple[str, str]]:
    """:func:`latte_bench.metrics.protocol.departures` of the record's stored ``protocol`` and ``counts`` against
    the paper protocol of its column (the registry's dataset); ``[]`` for a record that stores no protocol."""
    have, counts = record.typed.protocol, record.typed.counts
    if not isinstance(have, dict) or not isinstance(counts, dict):
        return []
    spec = find_dataset(record.dataset)
    samplings = [r.provenance.get("real_sampling") for r in record.typed.metrics.values()]
    # as the evaluation judged it: the first real pass that counted its long-enough videos
    long_enough = next((s["videos_long_enough"] for s in samplings if isinstance(s, dict) and "videos_long_enough" in s),
                       None)
    return departures(have, Protocol(dataset=spec.name if spec is not None else None),
                      {**counts, "real_long_enough": long_enough}, metric)


def nonstandard_tags(record: Record, metric: str) -> list[str]:
    """The record's own ``nonstandard`` tags (written by ``latte-bench eval``, kept verbatim), then the
    departures of its stored protocol and the column differences (:func:`column_differences`) about settings
    that those tags do not already cover. Which settings the own tags cover is judged once, by
    :func:`latte_bench.metrics.protocol.departures` on the stored ``protocol``/``counts``; a record that stores
    none adds only column differences whose words it does not already carry."""
    own = [str(t) for t in record.raw.get("nonstandard") or [] if str(t)]
    stored = _own_departures(record, metric)
    covered = {kind for kind, tag in stored if tag in own}
    found = [tag for kind, tag in stored + _column_departures(record, metric) if tag not in own and kind not in covered]
    return own + list(dict.fromkeys(found))


def group_rows(records: Iterable[Record], metric_families: Iterable[str], strict: bool = False) -> list[Row]:
    """Group records into rows of (method, dataset, metric, protocol).

    ``metric_families`` selects metrics by family (``fvd``, ``fid``, ``is``, ...). A row's label
    carries its :func:`nonstandard_tags` in brackets (``Latte [3 clips]``). Within one
    (method, dataset, metric) cell, records with different protocol keys become separate rows;
    where their tags do not tell them apart, the settings that differ are added to the label
    (``real_stride=3``). ``strict=True`` raises :class:`UserError` instead, both for a record
    that departs from its column's protocol and for records that disagree with each other.
    """
    fams = set(metric_families)
    cells: dict[tuple[str, str, str], list[Record]] = {}
    for r in records:
        for name in r.metrics:
            if metric_family(name) in fams:
                cells.setdefault((r.method, r.dataset, name), []).append(r)
    rows: list[Row] = []
    for (method, dataset, metric), recs in sorted(cells.items()):
        by_proto: dict[tuple[str, tuple[str, ...]], list[Record]] = {}
        for r in recs:
            by_proto.setdefault((r.protocol_key(metric), tuple(nonstandard_tags(r, metric))), []).append(r)
        groups = list(by_proto.values())
        tags = [list(key[1]) for key in by_proto]
        if strict:
            for g, t in zip(groups, tags):
                if t:
                    raise UserError(
                        f"{g[0].path}: {method} on {dataset} ({metric}) departs from the column's protocol "
                        f"({', '.join(t)}); evaluate with the full protocol or drop --strict to show it tagged"
                    )
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
        for g, t in zip(groups, tags):
            parts = list(t)
            twins = [h for h, u in zip(groups, tags) if u == t]
            if len(twins) > 1:  # tags alone do not tell these rows apart: name the settings that do
                parts += [_short(k, g[0].protocol(metric).get(k)) for k in _differing([h[0].protocol(metric) for h in twins])]
            rows.append(
                Row(
                    method=method,
                    dataset=dataset,
                    metric=metric,
                    values=[v for r in g for v in r.values(metric)[0]],
                    seeds=[sd for r in g for sd in r.values(metric)[1]],
                    paths=[r.path for r in g],
                    protocol=dict(g[0].protocol(metric)),
                    ci=_stored_ci(g, metric),
                    note=", ".join(parts),
                    nonstandard=list(t),
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
