"""``latte-bench bench``: a model's rows of the paper's Table 3 and Table 5 (and FVD-vs-step curves) in one command.

A *plan* lists methods x datasets x checkpoints and any protocol overrides. Every (method,
dataset, checkpoint) is one evaluation that runs through :func:`latte_bench.metrics.evaluate`
with a :class:`latte_bench.metrics.CheckpointSource` and the dataset's registered protocol
(:mod:`latte_bench.data.registry`): the same code as ``latte-bench eval --dataset NAME --ckpt CKPT``.

The plan comes from the command line (``--method NAME --ckpt DATASET=CKPT ...``) or from a
TOML/YAML file (see ``docs/bench.md``)::

    out = "bench/latte"             # paths are relative to the plan file
    data_root = "data"              # DIR/<dataset> for every dataset (else $LATTE_BENCH_DATA/<dataset>)
    floor = true                    # also the real-vs-real floor, once per dataset (or --floor)
    [data]                          # or one dataset's own root
    ucf101 = "/datasets/UCF-101"
    [protocol]                      # any `eval` setting, for every evaluation
    num_runs = 3
    [protocol.ucf101]               # ... or for one dataset
    cfg_scale = 7.0
    [methods.Latte]                 # dataset = checkpoint(s): a file, a run folder or a glob
    ffs = "ckpts/ffs.pt"
    ucf101 = ["runs/ucf/checkpoints/*"]
    [methods.Latte.protocol]        # settings for this method only (per dataset too)
    steps = 250

Order of work: the whole plan is validated first (unknown dataset or setting, missing
checkpoint, a checkpoint whose frame or class count does not fit its dataset, a missing data
root: one :class:`UserError` line, before anything is sampled); then each evaluation runs unless
``OUT/records/`` already holds its record for the same checkpoint sha256, real data and settings; then
``OUT/table3.md/.csv``, ``OUT/table5.md/.csv`` (the paper's rows beside the measured ones,
through :mod:`latte_bench.reports.leaderboard`) and, for a run with several checkpoints on a
dataset, ``OUT/fvd_vs_step_<dataset>.png/.pdf`` (paper Fig. 5/7) are written, with
``OUT/bench.json`` listing every evaluation. With ``floor = true`` (``--floor``) the real-vs-real floor
of each dataset's protocol is scored once (:func:`latte_bench.metrics.evaluate_floor`, the code of
``eval --floor``) into ``OUT/floors/<dataset>/floor-<key>.json``, reused while the real data and the
real-side protocol are unchanged, and shown under ``table3.md`` and in ``bench.json``. A killed evaluation resumes from its work folder
``OUT/work/...`` (the evaluation path's own resume), which is removed once its record is written. Under torchrun every rank takes part in
each evaluation and only rank 0 writes.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latte_bench.errors import UserError
from latte_bench.commands.eval import add_eval_options, eval_options
from latte_bench.commands.flags import option_named
from latte_bench.options import HelpFormatter, PROGRESS, add_options
from latte_bench.metrics.protocol import METRIC_NAMES, Protocol, RunOptions, key_settings, settings_key, split_settings
from latte_bench.lazy import lazy_module

# Loaded on first use, so that `latte-bench --help` (which builds this module's parsers) does not import torch.
_c3d = lazy_module("latte_bench.metrics.c3d")
_checkpoint = lazy_module("latte_bench.training.checkpoint")
_device = lazy_module("latte_bench.device")
_distributed = lazy_module("latte_bench.distributed")
_evaluation = lazy_module("latte_bench.metrics.evaluation")
_figures = lazy_module("latte_bench.reports.figures")
_fsutil = lazy_module("latte_bench.fsutil")
_leaderboard = lazy_module("latte_bench.reports.leaderboard")
_metrics = lazy_module("latte_bench.metrics")
_registry = lazy_module("latte_bench.data.registry")
_sources = lazy_module("latte_bench.metrics.sources")
_store = lazy_module("latte_bench.reports.store")
_uncertainty = lazy_module("latte_bench.metrics.uncertainty")
_weights = lazy_module("latte_bench.metrics.weights")

BENCH_SCHEMA = "latte-bench/bench/1"
FLOOR_SCHEMA = "latte-bench/bench-floor/1"
# protocol fields of the generated side and of the other metrics: they cannot move the real-vs-real floor
FLOOR_IGNORES = frozenset({"fake_stride", "fid_mode", "max_real_frames", "is_protocol", "is_splits", "is_shuffle_seed",
                           "kid_subsets", "kid_subset_size"})
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
# settings the runner itself sets for every evaluation: never taken from a plan
RESERVED = frozenset({"method", "dataset", "data_root", "work_dir", "save_samples", "progress", "real", "fake", "json", "ckpt"})
# evaluation options that bench does not take from its command line as evaluation settings: the reserved ones, the
# per-evaluation files and the floor (a flag of the plan, once per dataset)
CLI_EXCLUDED = tuple(RESERVED | {"save_features", "real_features", "floor"})
# settings that name files: relative to the plan file (to the working folder on the command line)
PATH_SETTINGS = frozenset({"cache_dir", "i3d_weights", "inception_weights", "c3d_weights", "c3d_mean"})


# ---------------------------------------------------------------- the plan


@dataclass
class Evaluation:
    """One (method, dataset, checkpoint) of a plan, checked and keyed.

    ``settings``: every override that applies (plan, dataset, method and command line merged), as
    keyword arguments of :func:`latte_bench.metrics.evaluate` and of its ``CheckpointSource``.
    ``key``: sha256 of the checkpoint's sha256, the dataset, the real data and the resolved settings; a record
    with the same key is reused instead of evaluated again.
    """

    method: str
    dataset: str
    checkpoint: Path  # the file that is read (a run folder is resolved to its latest checkpoint)
    sha256: str
    step: int | None
    run: Path  # the training run the checkpoint belongs to (its folder)
    settings: dict
    data_root: str | None
    protocol: Any = None  # the latte_bench.metrics.protocol.Protocol these settings give on this dataset
    format: str = ""  # "latte-bench-train-v1" or "official"
    where: str = ""  # the plan entry or flag it came from (for messages)
    label: str = ""  # the leaderboard row: the method, plus the step when a run has several checkpoints
    key: str = ""
    real_fingerprint: str | None = None  # the real data's identity, as the real-statistics cache keys it
    record_path: Path = Path()
    work_dir: Path = Path()


@dataclass
class Floor:
    """The real-vs-real floor of one dataset under one protocol, shared by the evaluations with its ``key``.

    ``key``: sha256 of the dataset, the real data's fingerprint and the protocol's real-side fields
    (:func:`floor_key`); ``evaluation``: the first evaluation it serves (its settings and data root are used).
    """

    dataset: str
    key: str
    evaluation: Evaluation
    record_path: Path


@dataclass
class Plan:
    """A checked plan: the output folder, its evaluations in plan order, and the floors to record (``floor = true``)."""

    out: Path
    evaluations: list[Evaluation]
    source: str = "command line"  # the plan file, or "command line"
    floors: list[Floor] = dataclasses.field(default_factory=list)


def read_plan_file(path: str | os.PathLike) -> dict:
    """The raw plan in a TOML (``tomllib``) or YAML (PyYAML, if installed) file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: plan file not found")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{path}: not valid TOML ({e})") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UserError(f"{path}: reading YAML plans needs PyYAML (pip install pyyaml); or write the plan as TOML") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    else:
        raise UserError(f"{path}: a plan is a .toml or .yaml file")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a plan is a table of settings with a [methods] section")
    return raw


_TOP_KEYS = {"out", "data_root", "data", "protocol", "methods", "floor"}


def _table(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a table (key = value pairs), got {type(value).__name__}")
    return value


def _split_protocol(table: dict, where: str, datasets) -> tuple[dict, dict]:
    """``{key: value, dataset: {key: value}}`` -> (common settings, {dataset: settings})."""
    common, per = {}, {}
    for k, v in table.items():
        if isinstance(v, dict):
            if k not in datasets:
                raise UserError(f"{where}.{k}: unknown dataset {k!r}; choose one of {', '.join(datasets)}")
            per[k] = dict(v)
        else:
            common[k] = v
    return common, per


def _as_list(value, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise UserError(f"{where} must be a checkpoint path (or a list of them)")
    return items


def expand_checkpoints(patterns: list[str], base: Path, where: str) -> list[Path]:
    """Checkpoint files for ``patterns`` (files, run folders or globs, relative to ``base``), in order, deduplicated.

    A run folder gives its latest checkpoint; a glob gives every checkpoint file it matches
    (``runs/ffs/checkpoints/*``), sorted; a pattern that matches nothing is an error.
    """

    found: list[Path] = []
    for pattern in patterns:
        p = Path(pattern).expanduser()
        p = p if p.is_absolute() else base / p
        if glob.has_magic(str(p)):
            matches = sorted(Path(m) for m in glob.glob(str(p)))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in CHECKPOINT_SUFFIXES]
            files += [_checkpoint.resolve_checkpoint(m) for m in matches if m.is_dir()]
            if not files:
                raise UserError(f"{where}: no checkpoint matches {pattern!r}")
        else:
            if not p.exists():
                raise UserError(f"{where}: {pattern}: no such checkpoint file or run folder")
            files = [_checkpoint.resolve_checkpoint(p)]
        for f in files:
            f = f.resolve()
            if f not in found:
                found.append(f)
    return found


def _parse_value(text: str):
    """A command-line value: a TOML literal (``7.0``, ``true``, ``"x"``, ``[1, 2]``) or a bare string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def plan_from_args(args: argparse.Namespace) -> tuple[dict, Path, str]:
    """(raw plan, base folder for relative paths, where it came from) from the command line."""
    cli_settings = _resolve_paths(_cli_settings(args), Path.cwd())
    data, data_root = _data_flags(args)
    if args.plan:
        if args.method or args.ckpt:
            raise UserError("give either a PLAN file or --method/--ckpt, not both")
        raw = read_plan_file(args.plan)
        unknown = sorted(set(raw) - _TOP_KEYS)
        if unknown:
            raise UserError(f"{args.plan}: unknown plan key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
        base = Path(args.plan).resolve().parent
        raw = dict(raw)
        # command-line flags win over the plan's values
        if args.out is not None:
            raw["out"] = str(Path(args.out).resolve())
        if data_root is not None:
            raw["data_root"] = str(Path(data_root).resolve())
        if data:
            raw["data"] = {**_table(raw.get("data"), f"{args.plan}: data"), **{k: str(Path(v).resolve()) for k, v in data.items()}}
        if args.floor:
            raw["floor"] = True
        raw["cli"] = cli_settings
        return raw, base, str(args.plan)
    if not args.method or not args.ckpt:
        raise UserError("pass a PLAN file, or --method NAME and at least one --ckpt DATASET=CKPT")
    ckpts: dict[str, list[str]] = {}
    for item in args.ckpt:
        if "=" not in item:
            raise UserError(f"--ckpt {item}: expected DATASET=CKPT (e.g. --ckpt ffs=runs/ffs/checkpoints/*)")
        name, path = item.split("=", 1)
        ckpts.setdefault(name.strip(), []).append(path)
    raw = {"out": args.out or "bench", "data_root": data_root, "data": data, "floor": bool(args.floor),
           "methods": {args.method: ckpts}, "cli": cli_settings}
    return raw, Path.cwd(), "command line"


def _data_flags(args) -> tuple[dict, str | None]:
    """``({dataset: root} of --data DATASET=DIR, --data-root DIR)``."""
    data = {}
    for item in args.data_root or []:
        if "=" not in item:
            raise UserError(f"--data {item}: expected DATASET=DIR (e.g. --data ucf101=/datasets/UCF-101); "
                            "a folder holding one sub-folder per dataset is --data-root DIR")
        name, path = item.split("=", 1)
        data[name.strip()] = path
    root = args.datasets_root
    if root is not None and "=" in root and not Path(root).exists():
        raise UserError(f"--data-root {root}: one dataset's own folder is --data DATASET=DIR; --data-root DIR is "
                        "a folder holding one sub-folder per dataset")
    return data, root


def _cli_settings(args) -> dict:
    out = {}
    for key in [o.name for o in eval_options(exclude=CLI_EXCLUDED)]:
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if getattr(args, "metrics", None):
        out["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise UserError(f"--set {item}: expected KEY=VALUE (e.g. --set cfg_scale=7.0)")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = _parse_value(v.strip())
    return out


def build_plan(raw: dict, base: Path, source: str = "plan") -> Plan:
    """Expand and check a raw plan; every problem is a :class:`UserError` before any evaluation runs."""

    datasets = tuple(_registry.DATASETS)
    where = source if source != "command line" else "bench"
    out = Path(raw.get("out") or "bench").expanduser()
    out = out if out.is_absolute() else base / out
    data_root = raw.get("data_root")
    data = {k: str(v) for k, v in _table(raw.get("data"), f"{where}: data").items()}
    for name in data:
        if name not in datasets:
            raise UserError(f"{where}: data.{name}: unknown dataset {name!r}; choose one of {', '.join(datasets)}")
    common, per_dataset = _split_protocol(_table(raw.get("protocol"), f"{where}: protocol"), f"{where}: protocol", datasets)
    cli = dict(raw.get("cli") or {})
    floor = raw.get("floor", False)
    if not isinstance(floor, bool):
        raise UserError(f"{where}: floor must be true or false, got {floor!r}")
    methods = _table(raw.get("methods"), f"{where}: methods")
    if not methods:
        raise UserError(f"{where}: the plan lists no methods; add [methods.NAME] with DATASET = CHECKPOINT lines")

    evaluations: list[Evaluation] = []
    for method, entry in methods.items():
        entry = dict(_table(entry, f"{where}: methods.{method}"))
        m_common, m_per = _split_protocol(_table(entry.pop("protocol", None), f"{where}: methods.{method}.protocol"),
                                          f"{where}: methods.{method}.protocol", datasets)
        if not entry:
            raise UserError(f"{where}: methods.{method} lists no checkpoints; add DATASET = \"CHECKPOINT\" lines")
        for dataset, patterns in entry.items():
            here = f"{where}: methods.{method}.{dataset}" if source != "command line" else f"--ckpt {dataset}=..."
            if dataset not in datasets:
                raise UserError(f"{here}: unknown dataset {dataset!r}; choose one of {', '.join(datasets)}")
            settings = _resolve_paths({**common, **per_dataset.get(dataset, {}), **m_common, **m_per.get(dataset, {})}, base)
            settings.update(cli)
            protocol = _check_settings(settings, dataset, here)
            root = _dataset_root(dataset, data, data_root, base, here)
            for ckpt in expand_checkpoints(_as_list(patterns, here), base, here):
                evaluations.append(Evaluation(method=str(method), dataset=dataset, checkpoint=ckpt, sha256="", step=None,
                                              run=_run_folder(ckpt), settings=dict(settings), data_root=root,
                                              protocol=protocol, where=here))
    if not evaluations:
        raise UserError(f"{where}: the plan holds no evaluation")
    for ev in evaluations:
        _check_c3d_available(ev)
    for ev in evaluations:  # the costly checks last: every checkpoint is read (memory-mapped) and hashed
        info = _checkpoint.read_header(ev.checkpoint)
        check_fits(info, ev.protocol, ev.checkpoint)
        ev.sha256, ev.step, ev.format = info["sha256"], info["step"], info["format"]
    _assign_labels(evaluations)
    fingerprints: dict[tuple, str | None] = {}
    for ev in evaluations:  # listing the real data (and a content sample of it) once per dataset root
        where = (ev.dataset, ev.data_root, ev.protocol.num_clips, ev.protocol.skip_bad)
        if where not in fingerprints:
            fingerprints[where] = real_fingerprint(ev)
        ev.real_fingerprint = fingerprints[where]
    for ev in evaluations:
        ev.key = evaluation_key(ev)
        slug = _slug(ev.method)
        stem = f"{_slug(ev.checkpoint.stem)}-{ev.sha256[:8]}-{ev.key[:8]}"
        ev.record_path = out / "records" / slug / ev.dataset / f"{stem}.json"
        ev.work_dir = out / "work" / slug / ev.dataset / stem
    floors: dict[str, Floor] = {}
    for ev in evaluations if floor else ():
        key = floor_key(ev)
        if key not in floors:
            floors[key] = Floor(ev.dataset, key, ev, out / "floors" / ev.dataset / f"floor-{key[:12]}.json")
    return Plan(out=out, evaluations=evaluations, source=source, floors=list(floors.values()))


def _check_c3d_available(ev: Evaluation) -> None:
    """The Inception Score's C3D weights ship in no package and are never downloaded: refuse a plan that
    scores IS (UCF101's default) without them now, rather than after hours of other evaluations."""

    if "is" not in (ev.settings.get("metrics") or _registry.get_dataset(ev.dataset).metrics):
        return
    given = ev.settings.get("c3d_weights")
    if given is not None:
        if not Path(given).is_file():
            raise UserError(f"{ev.where}: c3d_weights {given}: file not found; {_c3d.HOW_TO_GET}")
        return
    found = [n for n in ("tgan2_c3d", "c3d_ucf101") if _weights.status(n)["status"] != "missing"]
    if not found:
        raise UserError(f"{ev.where}: {ev.dataset} is scored with the Inception Score but no UCF101 C3D weights are "
                        f"installed; {_c3d.HOW_TO_GET}; or score without IS (--metrics fvd, or metrics = [\"fvd\"] in a plan)")


def _resolve_paths(settings: dict, base: Path) -> dict:
    """``settings`` with the file settings (:data:`PATH_SETTINGS`) made absolute against ``base``."""
    out = dict(settings)
    for k in PATH_SETTINGS & set(out):
        if isinstance(out[k], str):
            p = Path(out[k]).expanduser()
            out[k] = str(p if p.is_absolute() else base / p)
    return out


def _run_folder(ckpt: Path) -> Path:
    """``RUN`` for ``RUN/checkpoints/NNNNNNN.pt``; else the file's folder."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def _dataset_root(dataset: str, data: dict, data_root, base: Path, where: str) -> str | None:
    """The data root passed to the evaluation: ``data[dataset]``, else ``data_root/<dataset>``, else
    ``$LATTE_BENCH_DATA/<dataset>`` (returned as None: the evaluation path reads the variable itself).
    ``demo`` needs none. A root that does not exist is a :class:`UserError`."""

    if _registry.get_dataset(dataset).procedural:
        return None
    if dataset in data:
        root, how = Path(data[dataset]).expanduser(), f"data.{dataset}"
    elif data_root:
        root, how = Path(data_root).expanduser() / dataset, "data_root"
    elif os.environ.get(_registry.DATA_ENV):
        root, how = Path(os.environ[_registry.DATA_ENV]) / dataset, f"${_registry.DATA_ENV}"
    else:
        raise UserError(f"{where}: no data root for {dataset}: pass --data-root DIR (holding {dataset}/) or "
                        f"--data {dataset}=DIR, or set ${_registry.DATA_ENV}")
    if not root.is_absolute():
        root = base / root
    if not root.is_dir():
        raise UserError(f"{where}: {root}: data root of {dataset} not found (from {how}); see docs/datasets.md for the layout")
    return None if how == f"${_registry.DATA_ENV}" else str(root)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("_") or "x"


def _source_keys() -> tuple[str, ...]:
    """The sampling settings: the fields of ``CheckpointSource`` besides the checkpoint and its runtime state."""

    return tuple(f.name for f in dataclasses.fields(_sources.CheckpointSource)
                 if f.name not in ("ckpt", "device") and not f.name.startswith("_"))


def _split(settings: dict, dataset: str) -> tuple[dict, dict]:
    """``settings`` -> (keywords of :func:`latte_bench.metrics.evaluate`, keywords of ``CheckpointSource``).

    A name both take (the seed, the batch size) goes to both, as ``eval --seed/--batch-size`` does. A sampler
    or step count the settings leave out is ``dataset``'s, as in ``eval --ckpt`` (the demo's DDIM 25).
    """

    evaluation = {f.name for f in dataclasses.fields(Protocol)} | {f.name for f in dataclasses.fields(RunOptions)}
    source = set(_source_keys())
    defaults = _registry.sampling_defaults(dataset, 0)
    src = {"sampler": defaults.sampler, "steps": defaults.steps, **{k: v for k, v in settings.items() if k in source}}
    ev = {k: v for k, v in settings.items() if k not in source or k in evaluation}
    return ev, src


def _known_settings() -> tuple[str, ...]:
    """Every setting a plan may give: the protocol, the run options, ``num_runs``, ``metrics`` and the sampling ones."""

    names = {f.name for f in dataclasses.fields(Protocol)} | {f.name for f in dataclasses.fields(RunOptions)}
    return tuple(sorted((names | set(_source_keys()) | {"metrics", "num_runs"}) - RESERVED))


def _check_settings(settings: dict, dataset: str, where: str):
    """The :class:`~latte_bench.metrics.protocol.Protocol` that ``settings`` give on ``dataset``.

    An unknown setting, a bad value or one the runner sets itself is a :class:`UserError` naming
    ``where``; ``settings["metrics"]`` is normalised to a list in place.
    """

    reserved = sorted(set(settings) & RESERVED)
    if reserved:
        raise UserError(f"{where}: {', '.join(reserved)} is set by the benchmark runner itself; remove it from the plan")
    metrics = settings.get("metrics")
    if metrics is not None:
        if isinstance(metrics, str):
            metrics = [m.strip() for m in metrics.split(",") if m.strip()]
        if not isinstance(metrics, list) or not metrics:
            raise UserError(f"{where}: metrics must be a list of names, e.g. [\"fvd\", \"kvd\"]")
        unknown = [m for m in metrics if m not in METRIC_NAMES]
        if unknown:
            raise UserError(f"{where}: unknown metric(s) {', '.join(map(str, unknown))}; available: {', '.join(METRIC_NAMES)}")
        settings["metrics"] = list(metrics)
    known = set(_known_settings())
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    ev, src = _split({k: v for k, v in settings.items() if k != "metrics"}, dataset)
    try:
        _sources.CheckpointSource("-", **src)
        if settings.get("device") is not None:
            _device.resolve_device(settings["device"])
        return split_settings({**ev, "dataset": dataset}).protocol
    except UserError as e:
        raise e.with_context(f"{where}: ") from None
    except (TypeError, ValueError) as e:  # a value of the wrong type
        raise UserError(f"{where}: a setting has a value of the wrong type ({e})") from None


# ---------------------------------------------------------------- checkpoints


def check_fits(info: dict, protocol, path: Path) -> None:
    """A :class:`UserError` when the checkpoint cannot be scored under ``protocol`` (before anything is loaded).

    The rule is the evaluation path's own (``latte_bench.metrics.evaluation``): the model must make
    videos long enough for the protocol's clips, and its class count must be the dataset's
    (UCF101: 101; the others: unconditional). A frame count an official file does not reveal is
    left to the evaluation to check when it loads the model.
    """

    frames = info.get("num_frames")
    if frames is None:
        frames = (protocol.num_frames - 1) * protocol.fake_stride + 1
    _evaluation.check_checkpoint_fits(path, frames, info.get("num_classes") or 0, protocol)


def _assign_labels(evaluations: list[Evaluation]) -> None:
    """Leaderboard rows: the method's name; with several checkpoints on one dataset, one row per checkpoint."""
    groups: dict[tuple[str, str], list[Evaluation]] = {}
    for ev in evaluations:
        groups.setdefault((ev.method, ev.dataset), []).append(ev)
    for evs in groups.values():
        if len(evs) == 1:
            evs[0].label = evs[0].method
            continue
        runs = {ev.run for ev in evs}
        for ev in evs:
            if ev.step is None:
                ev.label = f"{ev.method} {ev.checkpoint.name}"
            elif len(runs) > 1:
                ev.label = f"{ev.method} {ev.run.name} step {ev.step}"
            else:
                ev.label = f"{ev.method} step {ev.step}"
        labels = [ev.label for ev in evs]
        for ev in evs:
            if labels.count(ev.label) > 1:
                ev.label = f"{ev.method} {ev.checkpoint.name} {ev.sha256[:8]}"


def real_fingerprint(ev: Evaluation) -> str | None:
    """The fingerprint of the real videos ``ev`` is scored against (the one the real-statistics cache keys by)."""

    real = _registry.real_videos(ev.dataset, ev.data_root, num_videos=ev.protocol.num_clips)
    return _sources.as_source(real, side="real", skip_bad=ev.protocol.skip_bad).fingerprint()


def floor_key(ev: Evaluation) -> str:
    """sha256 over what decides the real-vs-real floor of ``ev``'s dataset: the dataset, the real data's
    fingerprint (:func:`real_fingerprint`) and the protocol's real-side fields (clips, frames, stride, seed,
    resize, covariance, ...; not the generated side's, see :data:`FLOOR_IGNORES`)."""

    protocol = dataclasses.replace(ev.protocol, real_stride=ev.protocol.stride).to_dict()
    protocol = {k: v for k, v in protocol.items() if k not in FLOOR_IGNORES}
    return settings_key({"schema": FLOOR_SCHEMA, "dataset": ev.dataset, "real": ev.real_fingerprint, "protocol": protocol})


def evaluation_key(ev: Evaluation) -> str:
    """sha256 over what decides the numbers: the checkpoint's bytes, the dataset, the real data's
    fingerprint (:func:`real_fingerprint`), the metrics, the protocol in force (defaults filled in,
    stride resolved), the sampling settings and ``num_runs``.

    Settings that cannot move a number (batch sizes, device, workers, cache) are left out, so a
    rerun with another batch size reuses the records; a plan that spells out a default and one
    that leaves it out share them too.
    """

    _, src = _split(ev.settings, ev.dataset)
    sampling = key_settings(_sources.CheckpointSource(str(ev.checkpoint), **src))
    protocol = key_settings(dataclasses.replace(ev.protocol, real_stride=ev.protocol.stride))
    payload = {"schema": BENCH_SCHEMA, "sha256": ev.sha256, "dataset": ev.dataset, "real": ev.real_fingerprint,
               "metrics": list(ev.settings.get("metrics") or _registry.get_dataset(ev.dataset).metrics),
               "protocol": protocol, "sampling": sampling, "num_runs": int(ev.settings.get("num_runs") or 1)}
    return settings_key(payload)


# ---------------------------------------------------------------- running


def _matching_record(path: Path, ev: Evaluation) -> dict | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    bench = raw.get("bench") if isinstance(raw.get("bench"), dict) else {}
    fake = raw.get("fake") if isinstance(raw.get("fake"), dict) else {}
    sha = (fake.get("checkpoint") or {}).get("sha256") or bench.get("checkpoint_sha256")
    return raw if bench.get("key") == ev.key and sha == ev.sha256 else None


def find_record(ev: Evaluation) -> tuple[Path, dict] | None:
    """(path, record) of a record in ``OUT/records`` made from the same checkpoint bytes and settings as ``ev``, or None.

    Its own path first; then a record of another file name or method with the same checkpoint
    sha256 and key (a renamed checkpoint, a renamed method), so that neither is evaluated again.
    """
    if ev.record_path.is_file():
        raw = _matching_record(ev.record_path, ev)
        if raw is not None:
            return ev.record_path, raw
    records = ev.record_path.parents[2]
    for path in sorted(records.glob(f"*/{ev.dataset}/*-{ev.sha256[:8]}-{ev.key[:8]}.json")):
        raw = _matching_record(path, ev)
        if raw is not None:
            return path, raw
    return None


def evaluate_one(ev: Evaluation, progress: bool = True) -> dict:
    """Run one evaluation through :func:`latte_bench.metrics.evaluate`; returns its JSON record (with a ``bench`` entry).

    The generated side is a ``CheckpointSource`` of ``ev.checkpoint`` (an official file is read
    with the dataset's preset unless the plan names one); the real side is the dataset's
    registered split under ``ev.data_root``; partial work goes to ``ev.work_dir``.
    """

    evaluation, src = _split({k: v for k, v in ev.settings.items() if k != "metrics"}, ev.dataset)
    if ev.format == "official" and src.get("preset") is None:
        src["preset"] = ev.dataset
    if ev.settings.get("metrics"):
        evaluation["metrics"] = tuple(ev.settings["metrics"])
    result = _metrics.evaluate(None, _metrics.CheckpointSource(str(ev.checkpoint), **src), dataset=ev.dataset,
                              data_root=ev.data_root, method=ev.label, work_dir=str(ev.work_dir), progress=progress,
                              **evaluation)
    record = dict(result.record)
    record["bench"] = _bench_entry(ev)
    return record


def find_floor(floor: Floor) -> dict | None:
    """The floor record at ``floor.record_path`` when it was made for the same key, else None."""
    try:
        raw = json.loads(floor.record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and raw.get("schema") == FLOOR_SCHEMA and raw.get("key") == floor.key else None


def score_floor(floor: Floor, progress: bool = True) -> dict:
    """Score ``floor`` with :func:`latte_bench.metrics.evaluate_floor` (``eval --floor``'s code) under the settings of
    the evaluation it serves; returns its JSON record: ``schema``, ``key``, ``dataset``, ``real_fingerprint`` and
    ``evaluate_floor``'s entries (``floor``: ``fvd``, ``se``, ``fvd_inf``, ``fvd_inf_ci``, counts, ``tag``)."""

    ev = floor.evaluation
    evaluation, _ = _split({k: v for k, v in ev.settings.items() if k not in ("metrics", "num_runs")}, ev.dataset)
    result = _metrics.evaluate_floor(None, dataset=ev.dataset, data_root=ev.data_root, progress=progress, **evaluation)
    return {"schema": FLOOR_SCHEMA, "key": floor.key, "dataset": floor.dataset, "real_fingerprint": ev.real_fingerprint,
            **result}


def _bench_entry(ev: Evaluation) -> dict:
    return {"schema": BENCH_SCHEMA, "key": ev.key, "method": ev.method, "label": ev.label,
            "checkpoint": str(ev.checkpoint), "checkpoint_sha256": ev.sha256, "step": ev.step, "run": str(ev.run),
            "real_fingerprint": ev.real_fingerprint, "settings": ev.settings}


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _metric_value(v) -> float | None:
    if isinstance(v, dict):
        v = v.get("value")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _metrics_text(record: dict) -> str:
    """``fvd 412.30, fid 30.10``; ``fvd 412.30 ± 5.10 (3 runs)`` for a record of several sampling seeds."""
    parts = []
    for name, v in (record.get("metrics") or {}).items():
        value = _metric_value(v)
        if value is None:
            continue
        text = f"{name} {value:.2f}"
        if isinstance(v, dict) and isinstance(v.get("std"), (int, float)):
            text += f" ± {v['std']:.2f} ({len(v.get('runs') or [])} runs)"
        parts.append(text)
    return ", ".join(parts)


def run_plan(plan: Plan, progress: bool = True, log=print) -> dict:
    """Evaluate every evaluation of ``plan`` not already recorded, then write the tables and curves.

    Returns ``{"evaluated": [...], "reused": [...], "files": [...]}`` (records as paths). Under
    torchrun all ranks must call this with the same plan; only rank 0 writes and logs.
    """

    main = _distributed.is_main()
    say = log if main else (lambda *a, **k: None)
    n = len(plan.evaluations)
    # which evaluations to run is decided once, on rank 0, so that every rank runs the same ones
    todo = _distributed.broadcast_object(_to_run(plan) if main else None)
    to_run = sum(todo)
    say(f"bench: {n} evaluation(s) in {plan.out}: {n - to_run} recorded (reused), {to_run} to run")
    evaluated, reused, times = [], [], []
    for i, (ev, needed) in enumerate(zip(plan.evaluations, todo), 1):
        what = f"{ev.label} on {ev.dataset}, {ev.checkpoint.name}" + (f" (step {ev.step})" if ev.step is not None else "")
        if not needed:
            if main:
                _adopt_record(ev)
            say(f"[bench] evaluation {i} of {n}: {what}: recorded in {ev.record_path.name}, not run again")
            reused.append(ev.record_path)
            continue
        say(f"[bench] evaluation {i} of {n}: {what}: running")
        start = time.time()
        try:
            record = evaluate_one(ev, progress=progress)
        except UserError as e:
            raise e.with_context(f"evaluation {i} of {n} ({what}) stopped: ", f" [the {len(evaluated) + len(reused)} "
                                 "finished record(s) are kept; fix this and rerun the same command to continue]") from None
        if main:
            with _fsutil.write_errors(ev.record_path, "free some space or make it writable, then rerun (its work folder is kept)"):
                _fsutil.write_json(ev.record_path, record)
            # the work folder only serves a resume of this evaluation; the record now holds its result
            shutil.rmtree(ev.work_dir, ignore_errors=True)
            for folder in ev.work_dir.parents[:3]:  # OUT/work/<method>/<dataset>, when empty
                try:
                    folder.rmdir()
                except OSError:
                    break
        times.append(time.time() - start)
        evaluated.append(ev.record_path)
        left = to_run - len(times)
        eta = f"; about {_fmt_duration(sum(times) / len(times) * left)} left for {left} more" if left else ""
        say(f"[bench] evaluation {i} of {n} done in {_fmt_duration(times[-1])}: {_metrics_text(record)}{eta}")
    floors = run_floors(plan, progress=progress, log=say)
    files: list[Path] = []
    if main:
        with _fsutil.write_errors(plan.out, "free some space or make it writable, then rerun (every record is kept)"):
            files = write_outputs(plan, log=say)
    _distributed.barrier()
    return {"evaluated": evaluated, "reused": reused, "floors": floors, "files": files}


def run_floors(plan: Plan, progress: bool = True, log=print) -> dict[str, list[Path]]:
    """Score each floor of ``plan`` not already recorded; ``{"scored": [...], "reused": [...]}`` (record paths).

    Every rank takes part in a scoring (the real passes are sharded as in an evaluation); rank 0 writes.
    """

    main = _distributed.is_main()
    todo = _distributed.broadcast_object([find_floor(f) is None for f in plan.floors] if main else None)
    done: dict[str, list[Path]] = {"scored": [], "reused": []}
    for floor, needed in zip(plan.floors, todo):
        what = f"real-vs-real floor of {floor.dataset} ({floor.evaluation.protocol.num_clips} clips)"
        if not needed:
            log(f"[bench] {what}: recorded in {floor.record_path.name}, not run again")
            done["reused"].append(floor.record_path)
            continue
        log(f"[bench] {what}: running")
        start = time.time()
        try:
            record = score_floor(floor, progress=progress)
        except UserError as e:
            raise UserError(f"{what} stopped: {e} [every evaluation record is kept; fix this and rerun the same "
                            "command to continue]") from None
        if main:
            with _fsutil.write_errors(floor.record_path, "free some space or make it writable, then rerun"):
                _fsutil.write_json(floor.record_path, record)
        done["scored"].append(floor.record_path)
        log(f"[bench] {what} done in {_fmt_duration(time.time() - start)}: {_uncertainty.floor_text(record['floor'], 2)}")
    return done


def _to_run(plan: Plan) -> list[bool]:
    """Per evaluation: True when it must run. Not when its record exists, nor when an earlier evaluation of
    this plan has the same checkpoint bytes and key (it copies that one's record once written)."""
    out, first = [], set()
    for ev in plan.evaluations:
        same = (ev.dataset, ev.sha256, ev.key)
        out.append(same not in first and find_record(ev) is None)
        first.add(same)
    return out


def _adopt_record(ev: Evaluation) -> None:
    """Reuse the matching record at ``ev.record_path``: its numbers as they are, its row name from this plan.

    A record found under another name (a renamed checkpoint or method) is copied, not moved, so
    that a plan naming the same checkpoint twice keeps both rows.
    """

    path, raw = find_record(ev)
    if path == ev.record_path and raw.get("method") == ev.label:
        return
    raw["method"] = ev.label
    raw["bench"] = {**raw["bench"], "method": ev.method, "label": ev.label, "checkpoint": str(ev.checkpoint)}
    with _fsutil.write_errors(ev.record_path, "free some space or make it writable, then rerun"):
        _fsutil.write_json(ev.record_path, raw)


# ---------------------------------------------------------------- outputs


def write_outputs(plan: Plan, log=print) -> list[Path]:
    """``OUT/table3.md/.csv``, ``OUT/table5.md/.csv``, the FVD-vs-step figures and ``OUT/bench.json``."""

    records = [_store.load_record(ev.record_path) for ev in plan.evaluations]
    floors = [(floor, find_floor(floor)) for floor in plan.floors]
    files: list[Path] = []
    for table in ("table3", "table5"):
        df = _leaderboard.build_table(table, records)
        footer = floor_footer(floors, plan.out) if table == "table3" else ""
        md_path, csv_path, md = _leaderboard.write_table(df, table, plan.out, footer=footer)
        files += [md_path, csv_path]
        log(md)
    curves, curve_files = write_curves(plan, log=log)
    files += curve_files
    summary = {
        "schema": BENCH_SCHEMA,
        "plan": plan.source,
        "evaluations": [
            {"method": ev.method, "label": ev.label, "dataset": ev.dataset, "checkpoint": str(ev.checkpoint),
             "sha256": ev.sha256, "step": ev.step, "record": str(ev.record_path.relative_to(plan.out)),
             "metrics": {k: _metric_value(v) for k, v in rec.raw.get("metrics", {}).items()}}
            for ev, rec in zip(plan.evaluations, records)
        ],
        "curves": curves,
        "floors": [{"dataset": floor.dataset, "key": floor.key, "record": str(floor.record_path.relative_to(plan.out)),
                    "num_clips": floor.evaluation.protocol.num_clips, "num_frames": floor.evaluation.protocol.num_frames,
                    **{k: raw["floor"].get(k) for k in ("fvd", "se", "fvd_inf", "fvd_inf_ci", "real_count", "floor_count", "tag")}}
                   for floor, raw in floors if raw is not None],
    }
    _fsutil.write_json(plan.out / "bench.json", summary)
    files.append(plan.out / "bench.json")
    log("wrote " + ", ".join(str(p) for p in files))
    return files


def floor_footer(floors: list[tuple[Floor, dict | None]], out: Path) -> str:
    """Table 3's footer line for the recorded floors: per dataset and protocol, its FVD ± se and FVD∞ interval."""

    parts = []
    for floor, raw in floors:
        if raw is None:
            continue
        p = floor.evaluation.protocol
        tag = f" [{raw['floor']['tag']}]" if raw["floor"].get("tag") else ""
        parts.append(f"{_registry.get_dataset(floor.dataset).title}, {p.num_clips} clips of {p.num_frames} frames: "
                     f"FVD {_uncertainty.floor_text(raw['floor'], 2)}{tag} (`{floor.record_path.relative_to(out)}`)")
    if not parts:
        return ""
    return ("Real-vs-real floor (the FVD of two disjoint sets of real clips under the same protocol: the best "
            "a model can score at this clip count; docs/uncertainty.md): " + "; ".join(parts) + ".")


def fvd_series(plan: Plan) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """``{dataset: {line label: (steps, FVDs)}}`` for every run with two or more checkpoints on a dataset.

    A line is one (method, run); its label is the method (plus the run's folder name when a
    method has several runs on that dataset). Values are the records' FVD (the mean over
    ``num_runs``), sorted by training step.
    """

    lines: dict[tuple[str, str, Path], list[tuple[int, float]]] = {}
    for ev in plan.evaluations:
        if ev.step is None or not ev.record_path.is_file():
            continue
        raw = json.loads(ev.record_path.read_text(encoding="utf-8"))
        fvd = next((v for k, v in (raw.get("metrics") or {}).items() if _store.metric_family(k) == "fvd"), None)
        value = _metric_value(fvd)
        if value is not None and math.isfinite(value):
            lines.setdefault((ev.dataset, ev.method, ev.run), []).append((ev.step, value))
    out: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    runs_per_method: dict[tuple[str, str], int] = {}
    for (dataset, method, _run), points in lines.items():
        if len(points) >= 2:
            runs_per_method[(dataset, method)] = runs_per_method.get((dataset, method), 0) + 1
    for (dataset, method, run), points in lines.items():
        if len(points) < 2:
            continue
        label = method if runs_per_method[(dataset, method)] == 1 else f"{method} ({run.name})"
        points.sort()
        out.setdefault(dataset, {})[label] = ([p[0] for p in points], [p[1] for p in points])
    return out


def write_curves(plan: Plan, log=print) -> tuple[dict, list[Path]]:
    """``OUT/fvd_vs_step_<dataset>.png/.pdf`` for each dataset with a run of several checkpoints (paper Fig. 5/7).

    Returns (the plotted series as JSON-ready lists, the figure files). A figure whose series equal
    the ones recorded in ``OUT/bench.json`` and whose files exist is left as it is (a rerun that
    evaluated nothing redraws nothing).
    """

    try:
        before = json.loads((plan.out / "bench.json").read_text(encoding="utf-8")).get("curves") or {}
    except (OSError, ValueError):
        before = {}
    curves: dict = {}
    files: list[Path] = []
    for dataset, runs in fvd_series(plan).items():
        curves[dataset] = {label: [list(steps), list(values)] for label, (steps, values) in runs.items()}
        stem = plan.out / f"fvd_vs_step_{dataset}"
        paths = [stem.with_name(stem.name + ext) for ext in (".png", ".pdf")]
        if before.get(dataset) != curves[dataset] or not all(p.is_file() for p in paths):
            title = f"FVD during training: {_registry.get_dataset(dataset).title}"
            paths = _figures.training_curves_figure({k: {"fvd": v} for k, v in runs.items()}, stem, title=title)
        files += paths
        for label, (steps, values) in runs.items():
            log(f"{label} on {dataset}: FVD by step " + ", ".join(f"{s}: {v:.1f}" for s, v in zip(steps, values)))
    return curves, files


# ---------------------------------------------------------------- command line

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", formatter_class=HelpFormatter, help="a model's Table 3 / Table 5 rows (and FVD-vs-step curves) from its checkpoints, in one command",
        description="Evaluate methods x datasets x checkpoints with each dataset's own protocol (the same path as "
        "`eval --dataset NAME --ckpt CKPT`), skip evaluations already recorded in --out, and write the paper's "
        "Table 3 and Table 5 with the new rows beside the published ones, plus FVD against training step for a run "
        "given with several checkpoints. PLAN: a .toml or .yaml file (docs/bench.md); or use --method and --ckpt.",
    )
    p.add_argument("plan", nargs="?", default=None, metavar="PLAN", help="plan file (.toml, or .yaml with PyYAML)")
    p.add_argument("--method", default=None, help="leaderboard row name of the checkpoints given with --ckpt")
    p.add_argument("--ckpt", action="append", default=None, metavar="DATASET=CKPT",
                   help="a checkpoint file, run folder (its latest checkpoint) or quoted glob for one dataset "
                   "(demo, ffs, sky, ucf101, taichi); repeat for more, e.g. --ckpt 'ffs=runs/ffs/checkpoints/*'")
    p.add_argument("--data", dest="data_root", action="append", default=None, metavar="DATASET=DIR",
                   help="one dataset's folder, as `eval --data`; repeat for more, e.g. --data ucf101=/datasets/UCF-101 "
                   "(default: DIR/<dataset> of --data-root, else $LATTE_BENCH_DATA/<dataset>)")
    p.add_argument("--data-root", dest="datasets_root", default=None, metavar="DIR",
                   help="a folder holding one sub-folder per dataset (DIR/ucf101, ...): the plan's data_root")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="records, work folders, tables and figures (default: the plan's `out`, else bench/)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metrics (default per dataset, the paper's: ffs fvd,fid; ucf101 fvd,is; "
                   "sky, taichi fvd; demo fvd,kvd)")
    s = p.add_argument_group("evaluation settings (for every evaluation; they override the plan)")
    add_eval_options(collections.defaultdict(lambda: s), defaults=False, exclude=CLI_EXCLUDED)
    s.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="any other evaluation setting by name, e.g. --set kid_subsets=50 (values are TOML literals)")
    add_options(p, [option_named("floor")], defaults=False, overrides={"floor": {
        "help": "also record the real-vs-real floor once per dataset and protocol (as `eval --floor`; OUT/floors/, "
                "reused on a rerun; shown under table3.md and in bench.json). In a plan: floor = true"}})
    p.add_argument("--dry-run", action="store_true", help="check the plan and list its evaluations; run nothing")
    add_options(p, [PROGRESS])
    p.set_defaults(func=run_bench)


def check_outputs(plan: Plan) -> None:
    """Refuse now (one line) what would fail after hours of sampling: an unwritable ``--out`` or statistics cache."""

    _fsutil.check_writable(plan.out, "--out")
    roots = {(Path(ev.settings["cache_dir"]), "cache_dir") if ev.settings.get("cache_dir")
             else (_weights.cache_dir(), "$LATTE_BENCH_CACHE (or pass --no-cache)")
             for ev in plan.evaluations if ev.settings.get("cache", True)}
    for root, flag in sorted(roots):
        _fsutil.check_writable(root, flag)


def run_bench(args: argparse.Namespace) -> int:
    raw, base, source = plan_from_args(args)
    device = (raw.get("cli") or {}).get("device")
    if _distributed.is_torchrun():

        _distributed.init(_device.resolve_device(device))
    try:
        # the plan is checked (and checkpoints hashed) once, on rank 0; a bad plan stops every rank
        outcome = None
        if _distributed.is_main():
            try:
                outcome = build_plan(raw, base, source)
                if not args.dry_run:
                    check_outputs(outcome)
            except UserError as e:
                outcome = e
        outcome = _distributed.broadcast_object(outcome)
        if isinstance(outcome, UserError):
            raise outcome
        plan = outcome
        if args.dry_run:
            if _distributed.is_main():
                for i, ev in enumerate(plan.evaluations, 1):
                    state = "recorded" if find_record(ev) is not None else "to run"
                    print(f"{i}. {ev.label} on {ev.dataset}: {ev.checkpoint} (sha256 {ev.sha256[:12]}, "
                          f"step {ev.step}) -> {ev.record_path} [{state}]")
                for floor in plan.floors:
                    state = "recorded" if find_floor(floor) is not None else "to run"
                    print(f"floor of {floor.dataset} ({floor.evaluation.protocol.num_clips} clips): {floor.record_path} [{state}]")
            return 0
        run_plan(plan, progress=args.progress)
    finally:
        if _distributed.active():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0

