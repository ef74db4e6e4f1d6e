"""``evaluate(real, fake, metrics, **settings)``: the one evaluation path, data in, record out.

source -> clips -> one pass per detector -> statistics -> distances -> record

* Sources (:mod:`latte_bench.metrics.sources`): paths, uint8 arrays/tensors (N, T, H, W, 3),
  iterables of batches, and for the generated side a :class:`CheckpointSource` sampled in memory.
* Settings (:mod:`latte_bench.metrics.protocol`): a frozen :class:`Protocol` (everything that can
  move a number) and :class:`RunOptions` (everything that cannot); an unknown name is refused.
* Metrics and detectors (:mod:`latte_bench.metrics.registry`): each metric names the
  :class:`~latte_bench.metrics.detector.Detector` whose features it reads; this module loops over those
  objects and never asks which one it holds.
* Passes (:func:`latte_bench.metrics.extract.run_pass`): each detector runs once per side —
  the I3D serves FVD, KVD and PRDC, the Inception FID and KID, the C3D the Inception Score; temporal
  flickering's weightless head reads the generated frames themselves — and the generated videos are read
  (or sampled) once for all of them.
* Record (:func:`build_record`): the protocol that ran, the detectors' sha256, the counts, the
  sources, ``nonstandard`` tags for anything short of the protocol, the environment.

The process's TF32 flags and thread count are what they were before, after any call.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from latte_bench import distributed as dist
from latte_bench.data.clips import Clip, sample_fake_clips, sample_real_clips
from latte_bench.data.registry import floor_videos, get_dataset, real_count_is_standard, real_videos
from latte_bench.data.video import write_frames
from latte_bench.device import resolve_device, torch_threads
from latte_bench.errors import NAME_ONLY, UserError, literal
from latte_bench.fsutil import check_writable, write_errors, write_json
from latte_bench.metrics import registry, uncertainty
from latte_bench.metrics.detector import Detector, Loaded, Metric
from latte_bench.metrics.extract import Head, PassResult, cached_real_stats, run_pass, stats_cache_root
from latte_bench.metrics.fid import real_frames
from latte_bench.metrics.fvd import FVD
from latte_bench.metrics.record import SCHEMA, EvalRecord, MetricResult
from latte_bench.metrics.protocol import (Protocol, departures, Settings, key_settings, settings_key,
                                          split_settings)
from latte_bench.metrics.sources import CheckpointSource, FileSource, as_source
from latte_bench.metrics.stats import FeatureStats
from latte_bench.provenance import environment

CACHE_VERSION = 3  # bump when anything that moves cached real statistics, or the format of an entry or block, changes


@dataclass(frozen=True)
class Use:
    """How one evaluation uses a detector: ``count`` generated clips scored, per-row features kept or not
    (``keep``), a real pass or not (``real``: some metric of it compares against real videos)."""

    detector: Detector
    count: int
    keep: bool
    real: bool


@dataclass(frozen=True)
class RealPlan:
    """The real clips (or single frames) a detector's real pass reads, and how they were chosen (the record's ``real_sampling``)."""

    clips: list
    sampling: dict


@dataclass
class Run:
    """One generated-side run: ``results`` (``{metric: {"value", "real_count", "fake_count", "unit", "detail"}}``),
    its pass and the source it read (a checkpoint's ``seed`` differs per run)."""

    results: dict
    fake: PassResult
    source: object


@dataclass
class EvalResult:
    """``value`` (the first metric), ``metrics`` ({name: value}), ``record`` (JSON-ready).

    Each metric that ran is also an attribute (``result.fvd``, ``result.kid``, ...; ``is`` is
    ``result.is_`` or ``result.inception_score``; one that did not run raises an AttributeError naming
    those that did), and ``float(result)`` is the first metric's value. ``stats`` holds the per-detector (real, fake) :class:`FeatureStats` of the
    last run, for bootstrapping; they are not part of the record.
    """

    metrics: dict
    record: dict
    stats: dict = field(default_factory=dict, repr=False)

    @property
    def value(self):
        return next(iter(self.metrics.values()))

    @property
    def provenance(self) -> dict:
        """The first metric's provenance (its part of the record)."""
        return next(iter(self.record["results"].values()))["provenance"]

    def __getattr__(self, name: str):
        metrics = self.__dict__.get("metrics", {})
        key = "is" if name in ("is_", "inception_score") else name
        if key in metrics:
            value = metrics[key]
            return value["value"] if isinstance(value, dict) else value
        if key in registry.METRICS:
            raise AttributeError(f"{name}: {key} was not computed; this result has {', '.join(metrics) or 'no metrics'} "
                                 f"(pass metrics=(..., {key!r}) to evaluate)")
        raise AttributeError(name)

    def __float__(self) -> float:
        """The headline value (the first metric; its mean for ``num_runs`` > 1)."""
        value = self.value
        return float(value["value"] if isinstance(value, dict) else value)


def evaluate(real, fake, metrics=("fvd",), **settings) -> EvalResult:
    """Score ``fake`` against ``real`` with ``metrics`` (fvd, kvd, fid, kid, is, prdc, flicker) under one protocol.

    ``real``: a source, or None with ``dataset=NAME`` (the registry's real split; data root from
    ``data_root=`` or ``$LATTE_BENCH_DATA/NAME``; ``demo`` needs none). ``fake``: a source or a
    :class:`CheckpointSource`. Settings: the fields of :class:`Protocol` and :class:`RunOptions`,
    plus ``method``, ``work_dir`` (resumable per-block features), ``num_runs`` (K sampling seeds,
    mean ± std; checkpoints only), ``data_root``, ``save_samples`` (a folder to write the sampled
    videos to as PNG frames) and ``on_record`` (called with the record on every rank before the default
    work folder is removed: a :class:`UserError` it raises stops the call and keeps that folder for a
    resume). Fewer usable clips than ``num_clips`` is an error unless ``allow_fewer``.
    """
    start = time.time()
    cfg = split_settings(settings)
    metrics = _check_metrics(metrics)
    proto = cfg.protocol.resolved()
    device = resolve_device(cfg.run.device)
    dist.init(device)
    if cfg.save_samples is not None or cfg.num_runs > 1:
        if not isinstance(fake, CheckpointSource):
            raise UserError("{save_samples} and {num_runs} need a checkpoint (a CheckpointSource) as the generated side",
                            save_samples=NAME_ONLY, num_runs=NAME_ONLY)
    if isinstance(fake, CheckpointSource):  # a wrong checkpoint is refused before any data is touched
        fake.load(device, proto.dataset)
        check_checkpoint_fits(fake.ckpt, fake.num_frames, fake.num_classes, proto)
    from_registry = real is None
    if real is None and any(m.needs_real and not (cfg.real_features and m.detector.takes_real_features) for m in metrics):
        real = _registry_real(proto, cfg)
    with torch_threads(proto.torch_threads):
        return _evaluate(real, fake, metrics, proto, cfg, device, start, from_registry)


def evaluate_floor(real=None, **settings) -> dict:
    """The real-vs-real floor alone: what ``evaluate(..., floor=True)`` records as ``floor``, with no generated side.

    ``real`` and ``settings`` as for :func:`evaluate` (``real=None`` with ``dataset=NAME``: the registry's
    split). The protocol's real clips (the cached real statistics) are scored against a disjoint real set of
    up to the same size, by the code of ``eval --floor``. Returns ``{"floor", "protocol", "real", "detector",
    "counts", "wall_time_s", "environment"}``: ``floor`` as in an evaluation record (``fvd``, ``se``,
    ``fvd_inf``, ``fvd_inf_ci``, ``real_count``, ``floor_count``, ``sets``, ``tag``).
    """
    start = time.time()
    cfg = split_settings(settings)
    proto = cfg.protocol.resolved()
    device = resolve_device(cfg.run.device)
    dist.init(device)
    from_registry = real is None
    if real is None:
        real = _registry_real(proto, cfg)
    with torch_threads(proto.torch_threads):
        src = as_source(real, side="real", skip_bad=proto.skip_bad)
        _check_floor((FVD,), src)
        use = _uses((FVD,), proto, cfg)[FVD.detector.name]
        _check_frames([use.detector], proto)
        plan = _real_plan(use.detector, src, proto)
        loaded = use.detector.load(device, cfg.run)
        real_result = _real_pass(use, src, loaded, plan, proto, cfg, device)
        floor = _floor(src, real_result, use, loaded, plan.clips, proto, cfg, device, from_registry)
    return {"floor": floor, "protocol": proto.to_dict(), "real": {**src.description, "sampling": real_result["sampling"],
                                                                   "cache": real_result["cache"]},
            "detector": {use.detector.name: loaded.sha256},
            "counts": {"real_clips": floor["real_count"], "floor_clips": floor["floor_count"]},
            "wall_time_s": time.time() - start, "environment": environment()}


def _registry_real(proto: Protocol, cfg: Settings):
    """The real source of ``proto.dataset``'s registered split (its data root from ``cfg.data_root`` or the environment)."""
    if proto.dataset is None:
        raise UserError("no real videos: pass real videos or {dataset}", dataset=NAME_ONLY)
    real = as_source(real_videos(proto.dataset, cfg.data_root, num_videos=proto.num_clips), side="real",
                     skip_bad=proto.skip_bad)
    real.description["split"] = get_dataset(proto.dataset).real_split  # the record names the split it used
    return real


def _evaluate(real, fake, metrics, proto: Protocol, cfg: Settings, device, start, from_registry: bool = False) -> EvalResult:
    uses = _uses(metrics, proto, cfg)
    _check_frames([u.detector for u in uses.values()], proto)
    real_src = as_source(real, side="real", skip_bad=proto.skip_bad) if real is not None else None
    fake_src = as_source(fake, side="fake")
    most = max(u.count for u in uses.values())
    fake_clips = _fake_clips(fake_src, most, proto)
    _check_fewer("generated", len(fake_clips), most, proto, fake_src)
    plans = {name: RealPlan([], {}) if real_src is None and u.detector.takes_real_features else _real_plan(u.detector, real_src, proto)
             for name, u in uses.items() if u.real}  # cheap: no decoding
    for folder, setting in ((cfg.save_samples, "save_samples"), (cfg.save_features, "save_features")):
        if folder is not None:
            check_writable(folder, setting=setting)
    if cfg.floor:
        _check_floor(metrics, real_src)
    sources = [fake_src if k == 0 else dataclasses.replace(fake_src, seed=fake_src.seed + k) for k in range(cfg.num_runs)]
    work = [_fake_work_dir(source, uses, proto, cfg) for source in sources]  # refused before any clip is read
    nets = {name: u.detector.load(device, cfg.run) for name, u in uses.items()}  # each loaded once

    stage = _Stages(cfg.run.progress and dist.is_main(), len(plans) + cfg.num_runs)
    real_results = {}
    for name, plan in plans.items():
        stage.next(f"real statistics ({name}, {len(plan.clips)} {uses[name].detector.unit}s)")
        real_results[name] = _real_pass(uses[name], real_src, nets[name], plan, proto, cfg, device)

    runs = []
    for k, source in enumerate(sources):
        stage.next("generated videos" + (f", run {k + 1} of {cfg.num_runs} (seed {source.seed})" if cfg.num_runs > 1 else "")
                   + (" (sampling the checkpoint)" if isinstance(source, CheckpointSource) else ""))
        fake_pass = _fake_pass(source, fake_clips, nets, uses, proto, cfg, device, work[k])
        runs.append(Run(_distances(metrics, real_results, fake_pass, proto), fake_pass, source))

    record = build_record(metrics, proto, cfg, real_src, fake_src, real_results, runs, nets, device, start)
    if cfg.floor:
        det = FVD.detector.name
        record["floor"] = _floor(real_src, real_results[det], uses[det], nets[det], plans[det].clips, proto, cfg, device,
                                 from_registry)
    if cfg.save_features is not None and dist.is_main():
        record["features"] = uncertainty.save_features(cfg.save_features, [m.name for m in metrics], real_results,
                                                       runs[-1].fake.stats, record)
    _deliver(cfg.on_record, record)
    if cfg.work_dir is None:  # the default work folder only serves a resume; the record now holds the result
        _remove_work_dirs([run.fake.work_dir for run in runs])
    fake_stats = runs[-1].fake.stats
    stats = {name: (real_results.get(name, {}).get("stats"), fake_stats.get(name)) for name in uses}
    return EvalResult(dict(record["metrics"]), record, stats)


def _deliver(on_record, record: dict) -> None:
    """``on_record(record)`` on every rank (e.g. writing ``--json``); its refusal stops every rank, the work folder kept."""
    error = None
    if on_record is not None:
        try:
            on_record(record)
        except UserError as e:
            error = e
    error = dist.broadcast_object(error)
    if error is not None:
        raise error


# ----------------------------------------------------------------------------------------- checks


def _check_metrics(metrics) -> tuple[Metric, ...]:
    """The registered metrics named by ``metrics`` (names, ``"a,b"``, group names such as ``prdc``, or Metric objects)."""
    if isinstance(metrics, str):
        metrics = tuple(m.strip() for m in metrics.split(",") if m.strip())
    names = [m.name if isinstance(m, Metric) else m for m in metrics]
    names = tuple(dict.fromkeys(x for m in names for x in registry.GROUPS.get(m, (m,))))
    unknown = [m for m in names if m not in registry.METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric(s) {', '.join(map(str, unknown)) or '(none given)'}; "
                        f"available: {', '.join(registry.METRICS)}")
    return tuple(registry.METRICS[m] for m in names)


def _check_frames(detectors, proto: Protocol) -> None:
    """Clips shorter than a detector's ``min_frames`` are refused (the I3D's 9, the C3D's 16, flickering's 2)."""
    for det in detectors:
        if proto.num_frames < det.min_frames:
            raise UserError(f"{{num_frames}}: {det.too_short}", num_frames=proto.num_frames)


def _check_floor(metrics, real_src) -> None:
    if FVD not in metrics or real_src is None or real_src.stream:
        raise UserError("{floor} scores FVD between two disjoint real sets: it needs the fvd metric and real videos "
                        "as a folder, array or {dataset} (not {real_features} or a stream)", floor=True,
                        dataset=NAME_ONLY, real_features=NAME_ONLY)


def check_checkpoint_fits(ckpt, num_frames: int, num_classes: int, proto: Protocol) -> None:
    """A model (at ``ckpt``, named in the message) whose frame or class count does not fit ``proto`` is refused.

    ``num_frames``: frames of the videos it makes; ``num_classes``: 0 for an unconditional model.
    """
    span = (proto.num_frames - 1) * proto.fake_stride + 1
    if num_frames < span:
        raise UserError(f"{literal(ckpt)}: the model makes {num_frames}-frame videos; the protocol needs {span} "
                        f"({proto.num_frames} frames at stride {proto.fake_stride}); pass {{num_frames}} "
                        "(tagged nonstandard) or a checkpoint trained on longer clips", num_frames=num_frames)
    if proto.dataset is not None:
        want = get_dataset(proto.dataset).num_classes
        if num_classes != want:
            what = f"{num_classes} classes" if num_classes else "unconditional"
            need = f"{want} classes" if want else "an unconditional model"
            raise UserError(f"{ckpt}: the model is {what} but {proto.dataset} needs {need}; "
                            "pass the checkpoint trained on this dataset")


def _check_fewer(side: str, have: int, want: int, proto: Protocol, src) -> None:
    if have < want and not proto.allow_fewer:
        where = getattr(src, "description", {}).get("path") or side
        raise UserError(f"{literal(where)}: only {have} usable {side} clips for {{num_clips}}; pass {{allow_fewer}} to "
                        f"score {have} (the record is tagged nonstandard) or supply more videos", num_clips=want,
                        allow_fewer=True)


def _check_fewer_real(have: int, sampling: dict, proto: Protocol, src) -> None:
    """Real clips: fewer than asked is refused unless it is the dataset's own protocol (every long-enough video)."""
    if not real_count_is_standard(proto.dataset, have, sampling.get("videos_long_enough"), proto.num_clips):
        _check_fewer("real", have, proto.num_clips, proto, src)


def _uses(metrics, proto: Protocol, cfg: Settings) -> dict[str, Use]:
    """``{detector name: Use}`` for the detectors ``metrics`` read, by name.

    A detector scores the most clips any of its metrics asks for; it keeps per-row features when it always
    does (the I3D: FVD's se), when one of its metrics needs them, or for ``--save-features``.
    """
    saving = cfg.save_features is not None
    out = {}
    for det in sorted({m.detector for m in metrics}, key=lambda d: d.name):
        mine = [m for m in metrics if m.detector is det]
        out[det.name] = Use(det, max(m.num_clips(proto) for m in mine),
                            det.keep_features or saving or any(m.needs_features for m in mine), any(m.needs_real for m in mine))
    return out


def _head(use: Use, loaded: Loaded, proto: Protocol, count: int) -> Head:
    """The pass's view of a loaded detector, fed the clips at positions ``< count``."""
    det = use.detector
    return Head(det.name, loaded.features, partial(det.preprocess, proto=proto), det.items, count, use.keep, det.unit)


# -------------------------------------------------------------------------------------------- passes


def _real_plan(det: Detector, src, proto: Protocol) -> RealPlan:
    """The real clips (a clip detector) or every real frame (a frame detector) of the protocol; too few clips is refused."""
    if det.unit == "frame":
        if src.stream:
            raise UserError("FID reads every frame of the real videos; pass the real videos as a folder or an array")
        clips = real_frames(src.videos, proto.max_real_frames)
        return RealPlan(clips, {"frames": len(clips), "videos": len(src.videos), "max_real_frames": proto.max_real_frames})
    clips, sampling = _real_clips(src, proto)
    _check_fewer_real(len(clips), sampling, proto, src)
    return RealPlan(clips, sampling)


def _real_pass(use: Use, src, loaded: Loaded, plan: RealPlan, proto: Protocol, cfg: Settings, device) -> dict:
    """Real statistics of one detector (cached): ``{"stats", "info", "cache", "sampling", "settings"}``."""
    det = use.detector
    settings = _real_settings(det, src, loaded, proto, device)
    if det.takes_real_features and cfg.real_features is not None:
        return uncertainty.load_real_features(cfg.real_features, settings, plan.sampling)
    head = _head(use, loaded, proto, len(plan.clips))

    def compute():
        res = run_pass(src, plan.clips, [head], batch_size=cfg.run.batch_size, device=device, block_size=proto.block_size,
                       skip_bad=proto.skip_bad, num_workers=cfg.run.num_workers, desc=f"{det.name} real",
                       unit=det.unit, progress=cfg.run.progress)
        return res.stats[det.name], {"clips": res.clips, "skipped": res.skipped, "resolution": res.resolution}

    use_cache = cfg.run.cache and settings["real_fingerprint"] is not None and loaded.sha256 is not None
    stats, info, hit, key = cached_real_stats(det.name, settings, compute, keep_features=use.keep, cache=use_cache,
                                              cache_dir=cfg.run.cache_dir)
    if det.unit == "clip":
        _check_fewer_real(stats.n, plan.sampling, proto, src)
    return {"stats": stats, "info": info, "sampling": plan.sampling, "settings": settings,
            "cache": {"key": key, "hit": hit, "enabled": use_cache}}


def _real_settings(det: Detector, src, loaded: Loaded, proto: Protocol, device) -> dict:
    """Everything that moves the real statistics of ``det`` (the cache key; the check of --real-features)."""
    clip_plan = [proto.num_clips, proto.num_frames, proto.stride, proto.seed] if det.unit == "clip" else proto.max_real_frames
    return {"version": CACHE_VERSION, "detector": det.name, "detector_sha256": loaded.sha256,
            "real_fingerprint": None if src is None else src.fingerprint(), "clips": clip_plan,
            "resize": det.preprocess_setting(proto), "block_size": proto.block_size,
            "skip_bad": proto.skip_bad, "torch_threads": proto.torch_threads, "device": str(device.type)}


def _floor(src, real: dict, use: Use, loaded: Loaded, used, proto: Protocol, cfg: Settings, device,
           from_registry: bool = False) -> dict:
    """FVD between the protocol's real clips and a disjoint real set of up to the same size (docs/uncertainty.md).

    The other set comes from the real videos the protocol's clips do not use; when none are left and the real side is
    the registry's split of a dataset that makes its videos (``demo``), from the next videos it makes.
    """
    clips = uncertainty.floor_clips(src.videos, used, proto.num_clips, proto.num_frames, proto.stride, proto.seed)
    if not clips and from_registry and proto.dataset is not None:
        extra = floor_videos(proto.dataset, proto.num_clips)
        if extra is not None:
            src = as_source(extra, side="real", skip_bad=proto.skip_bad)
            clips = uncertainty.floor_clips(src.videos, [], proto.num_clips, proto.num_frames, proto.stride, proto.seed)
    other = None
    if clips:
        other = run_pass(src, clips, [_head(use, loaded, proto, len(clips))], batch_size=cfg.run.batch_size, device=device,
                         block_size=proto.block_size, skip_bad=proto.skip_bad, num_workers=cfg.run.num_workers,
                         desc=f"{use.detector.name} floor", progress=cfg.run.progress).stats[use.detector.name]
    return uncertainty.floor_entry(real["stats"], other, proto.num_clips, proto.covariance, proto.seed)


def _real_clips(src, proto: Protocol) -> tuple[list[Clip], dict]:
    if src.stream:  # no random access: offset 0 of the first videos, recorded and tagged
        span = proto.num_frames * proto.stride
        clips = [Clip(i, f"real[{i:06d}]", tuple(range(0, span, proto.stride))) for i in range(proto.num_clips)]
        return clips, {"offsets": "0 (stream source: no random offsets)", "stride": proto.stride}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer clips are handled (refused or tagged) by the caller
        return sample_real_clips(src.videos, proto.num_clips, proto.num_frames, proto.stride, proto.seed)


def _fake_clips(src, n: int, proto: Protocol) -> list[Clip]:
    if isinstance(src, FileSource):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sample_fake_clips(src.videos, n, proto.num_frames, proto.fake_stride)[0]
    idx = tuple(proto.fake_stride * k for k in range(proto.num_frames))
    return [Clip(i, f"{i:06d}", idx) for i in range(n)]


def _fake_pass(src, clips, nets: dict[str, Loaded], uses: dict[str, Use], proto: Protocol, cfg: Settings, device,
               work: tuple) -> PassResult:
    """The generated side's pass, every detector at once; ``work``: ``(work folder, key)`` of :func:`_fake_work_dir`."""
    heads = [_head(use, nets[name], proto, use.count) for name, use in uses.items()]
    read_options = {}
    work_dir, work_key = work
    if isinstance(src, CheckpointSource):
        read_options["dataset"] = proto.dataset
        read_options["progress"] = cfg.run.progress and dist.is_main()  # the sampler's steps of a slow batch
        if cfg.save_samples is not None:
            read_options["on_video"] = _sample_writer(Path(cfg.save_samples))
    result = run_pass(src, clips, heads, batch_size=cfg.run.batch_size, device=device, block_size=proto.block_size,
                      num_workers=cfg.run.num_workers, unit="video", progress=cfg.run.progress, work_dir=work_dir,
                      work_key=work_key,
                      desc=("sample + " if isinstance(src, CheckpointSource) else "generated: ") + "+".join(uses),
                      read_options=read_options)
    for name, use in uses.items():
        rows_per_clip = proto.num_frames if use.detector.unit == "frame" else 1
        _check_fewer("generated", result.stats[name].n // rows_per_clip, use.count, proto, src)
    result.work_dir = work_dir
    return result


def _remove_work_dirs(dirs) -> None:
    dist.barrier()
    if dist.is_main():
        for d in dirs:
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)


def _sample_writer(folder: Path):
    def write(index: int, video: np.ndarray) -> None:
        with write_errors(folder / f"{index:06d}", "free some space or choose another {save_samples}",
                          save_samples=NAME_ONLY):
            write_frames(folder / f"{index:06d}", video)

    return write


def _fake_work_dir(src, uses: dict[str, Use], proto: Protocol, cfg: Settings) -> tuple[Path | None, str | None]:
    """The work folder of the generated side (a checkpoint always has one; videos with ``--work-dir``)."""
    if isinstance(src, CheckpointSource) or cfg.work_dir is not None:
        return _work_dir(src, uses, proto, cfg)
    return None, None


def _work_dir(src, uses: dict[str, Use], proto: Protocol, cfg: Settings) -> tuple[Path | None, str | None]:
    """``(folder of finished blocks, key of this evaluation)``; ``(None, None)`` for a source without fingerprint.

    The manifest is written before any block. A folder made with other settings is refused, naming the
    difference; so is a folder holding blocks without a readable manifest (whose evaluation is unknown).
    """
    fake = src.settings(proto.dataset) if isinstance(src, CheckpointSource) else {"fingerprint": src.fingerprint()}
    if isinstance(src, FileSource) and fake["fingerprint"] is None:
        return None, None
    manifest = {"version": CACHE_VERSION, "protocol": key_settings(proto), "fake": fake,
                "heads": {name: {"count": use.count, "keep_features": use.keep} for name, use in uses.items()},
                "batch_independent": True}
    if cfg.work_dir is not None:
        root = Path(cfg.work_dir) / (f"seed{src.seed}" if isinstance(src, CheckpointSource) and cfg.num_runs > 1 else "")
    else:
        root = stats_cache_root("eval_work", cfg.run.cache_dir) / settings_key(manifest)[:32]
    path = root / "manifest.json"
    error = None
    if dist.is_main():
        try:
            check_writable(root, setting="work_dir")
            try:
                old = json.loads(path.read_text()) if path.is_file() else None
            except (OSError, ValueError):
                old = None
            now = json.loads(json.dumps(manifest))  # as it reads back from the file
            if not isinstance(old, dict):
                if any(root.glob("block_*")):
                    raise UserError(f"{literal(root)}: work folder holds blocks but no readable manifest.json, so the "
                                    "evaluation they belong to is unknown; delete that folder or use another {work_dir}",
                                    work_dir=NAME_ONLY)
                with write_errors(path, "free some space or use another {work_dir}", work_dir=NAME_ONLY):
                    write_json(path, manifest)
            elif old != now:
                diffs = _differences(old, now)
                raise UserError(f"{literal(root)}: work folder of another evaluation (differs in {literal(', '.join(diffs))}); "
                                "use another {work_dir} or delete that folder", work_dir=NAME_ONLY)
            done = len(list(root.glob("block_*.json")))
            if done and cfg.save_samples is not None:
                raise UserError(f"{literal(root)}: holds {done} finished block(s) of this evaluation, whose videos "
                                "{save_samples} would not write (a resume samples only the missing blocks); rerun "
                                "without {save_samples} to resume, or delete that folder to sample and save every video",
                                save_samples=NAME_ONLY)
        except UserError as e:
            error = e
    error = dist.broadcast_object(error)  # every rank stops on rank 0's refusal
    if error is not None:
        raise error
    return root, settings_key(manifest)


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k} ({va!r} there, {vb!r} now)")
    return out


# ----------------------------------------------------------------------------------------- distances


def _distances(metrics, real: dict, fake_pass: PassResult, proto: Protocol) -> dict:
    """``{metric: {"value", "real_count", "fake_count", "unit", "detail"}}`` of one run."""
    out, shared = {}, {}
    for m in metrics:
        f = fake_pass.stats[m.detector.name]
        r = real.get(m.detector.name, {}).get("stats") if m.needs_real else None
        value, detail = m.distance(r, f, proto, shared) if m.needs_real else m.score(f, proto)
        out[m.name] = {"value": float(value), "real_count": None if r is None else int(r.n), "fake_count": int(f.n),
                       "unit": m.detector.unit + "s", "detail": detail}
    return out


# ------------------------------------------------------------------------------------------- record


def nonstandard_tags(proto: Protocol, counts: dict, metrics, real_stream: bool = False,
                     real_long_enough: int | None = None) -> list[str]:
    """What makes a run differ from its metrics' published protocol, as short tags (``[]`` = standard).

    ``metrics``: names or :class:`Metric` objects; each tags only the parts of the protocol in its ``standard``.
    ``real_long_enough``: how many real videos could give a clip (a dataset whose real split has fewer
    than ``num_clips`` of them is standard when every one was used, :func:`latte_bench.data.registry.real_count_is_standard`).
    """
    metrics = [registry.METRICS[m] if isinstance(m, str) else m for m in metrics]
    have = {**proto.to_dict(), "real_stride": proto.stride}
    judged = {**counts, "real_long_enough": real_long_enough}
    tags = [tag for _, tag in departures(have, Protocol(dataset=proto.dataset), judged, metrics)]
    if real_stream:
        tags.append("real clips at offset 0")
    return list(dict.fromkeys(tags))


def build_record(metrics, proto: Protocol, cfg: Settings, real_src, fake_src, real_results: dict, runs: list[Run],
                 nets: dict[str, Loaded], device, start) -> dict:
    """The JSON record of an evaluation (schema ``latte-bench/eval-record/2``; docs/evaluation.md)."""
    last = runs[-1]
    counts = {}
    for name, rr in real_results.items():
        counts[f"real_{nets[name].detector.unit}s"] = int(rr["stats"].n)
    for name, s in last.fake.stats.items():
        if nets[name].detector.unit == "frame":
            counts["fake_frames"] = int(s.n)
        else:
            counts["fake_clips"] = max(counts.get("fake_clips", 0), int(s.n))
    values = {}
    for m in metrics:  # one value per metric; the record's ``metrics`` and ``results`` both derive from it
        if len(runs) == 1:
            values[m.name] = MetricResult(m.name, last.results[m.name]["value"])
        else:
            per_run = [run.results[m.name]["value"] for run in runs]
            values[m.name] = MetricResult(m.name, float(np.mean(per_run)), float(np.std(per_run, ddof=1)), per_run,
                                          [run.source.seed for run in runs])
    detectors = {name: loaded.sha256 for name, loaded in nets.items() if not loaded.detector.weightless}
    protocol_fields = {"is": None}
    for m in metrics:
        name, loaded, entry = m.detector.name, nets[m.detector.name], last.results[m.name]
        detail = dict(entry["detail"])
        unc = detail.pop("uncertainty", False)
        prov = {"protocol": m.protocol, "detector": None if m.detector.weightless else name,
                "detector_sha256": detectors.get(name), **detail}
        if m.needs_real and name in real_results:
            rr = real_results[name]
            prov.update(real_sampling=rr["sampling"], real_skipped=rr["info"].get("skipped", []),
                        real_resolution=rr["info"].get("resolution"), real_stats_cache=rr["cache"])
        prov.update(fake_resolution=last.fake.resolution, fake_skipped=last.fake.skipped)
        if loaded.info is not None:
            prov[name] = loaded.info
        prov.update(m.provenance(proto))
        protocol_fields.update(m.protocol_fields(proto))
        fields = {"real_count": entry["real_count"], "fake_count": entry["fake_count"], "unit": entry["unit"],
                  "provenance": prov}
        if unc is not False:  # Fréchet distances: se, N -> inf estimate and interval (of the last run)
            fields.update(uncertainty.record_fields(m.name, unc))
        values[m.name].detail = fields
    fake_desc = dict(fake_src.description)
    if isinstance(fake_src, CheckpointSource):
        fake_desc.update(fake_src.settings(proto.dataset))
        fake_desc["checkpoint"] = dict(fake_src.loaded.checkpoint)
        if cfg.save_samples is not None:
            fake_desc["saved_samples"] = str(cfg.save_samples)
    long_enough = next((rr["sampling"]["videos_long_enough"] for rr in real_results.values()
                        if "videos_long_enough" in rr["sampling"]), None)
    return EvalRecord(
        schema=SCHEMA,
        method=cfg.method or default_method(fake_src),
        dataset=proto.dataset,
        metrics=values,
        protocol={**proto.to_dict(), "real_stride": proto.stride, **protocol_fields},
        detectors=detectors,
        counts=counts,
        nonstandard=nonstandard_tags(proto, counts, metrics, real_stream=bool(real_src is not None and real_src.stream),
                                     real_long_enough=long_enough),
        real=None if real_src is None else dict(real_src.description),
        fake=fake_desc,
        seed=proto.seed,
        runs=len(runs),
        run={"batch_size": cfg.run.batch_size, "device": str(device), "world_size": dist.world_size(),
             "num_workers": cfg.run.num_workers, "resumed_blocks": last.fake.resumed_blocks},
        environment=environment(),
        wall_time_s=round(time.time() - start, 3),
    ).to_dict()


def default_method(fake_src) -> str:
    """The row name when none is given: ``<model> step <N>`` for a checkpoint, else the generated folder's name."""
    if isinstance(fake_src, CheckpointSource):
        ck = fake_src.loaded.checkpoint
        return f"{ck.get('model') or 'Latte'}" + (f" step {ck['step']}" if ck.get("step") is not None else "")
    desc = fake_src.description
    if desc.get("kind") == "path":
        p = Path(desc["path"])
        return p.parent.name if p.name in ("videos.npz",) else p.stem
    return f"{desc.get('kind', 'generated')} videos"


class _Stages:
    """Prints ``[i/n] stage`` lines (flushed) with the elapsed time, for long multi-stage runs."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.i, self.t0 = enabled, total, 0, time.time()

    def next(self, what: str) -> None:
        self.i += 1
        if self.enabled:
            print(f"[{self.i}/{self.total}] {what} (elapsed {time.time() - self.t0:.0f} s)", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- one-metric calls


def compute_fvd(real, fake, **settings) -> EvalResult:
    """FVD alone (StyleGAN-V protocol); see :func:`evaluate`. ``result.fvd``."""
    return evaluate(real, fake, metrics=("fvd",), **settings)


def compute_fid(real, fake, **settings) -> EvalResult:
    """FID on frames alone; see :func:`evaluate`. ``result.fid``."""
    return evaluate(real, fake, metrics=("fid",), **settings)


def compute_is(fake, **settings) -> EvalResult:
    """Video Inception Score (UCF101 C3D) of ``fake`` alone; see :func:`evaluate`. ``result.is_`` (std in the record)."""
    return evaluate(None, fake, metrics=("is",), **settings)


def stats_pair(result: EvalResult, detector: str) -> tuple[FeatureStats, FeatureStats]:
    """The (real, fake) statistics of ``detector`` from the last run of ``result``."""
    return result.stats[detector]
