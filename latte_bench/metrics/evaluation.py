"""``evaluate(real, fake, metrics, **settings)``: the one evaluation path, data in, record out.

source -> clips -> one pass per detector -> statistics -> distances -> record

* Sources (:mod:`latte_bench.metrics.sources`): paths, uint8 arrays/tensors (N, T, H, W, 3),
  iterables of batches, and for the generated side a :class:`CheckpointSource` sampled in memory.
* Settings (:mod:`latte_bench.metrics.protocol`): a frozen :class:`Protocol` (everything that can
  move a number) and :class:`RunOptions` (everything that cannot); an unknown name is refused.
* Passes (:func:`latte_bench.metrics.extract.run_pass`): each detector runs once per side —
  the I3D serves FVD and KVD, the Inception FID and KID, the C3D the Inception Score; temporal
  flickering reads the generated frames themselves — and the generated videos are read (or sampled)
  once for all of them.
* Record (:func:`build_record`): the protocol that ran, the detectors' sha256, the counts, the
  sources, ``nonstandard`` tags for anything short of the protocol, the environment.

The process's TF32 flags and thread count are what they were before, after any call.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latte_bench import distributed as dist
from latte_bench.data.clips import Clip, sample_fake_clips, sample_real_clips
from latte_bench.device import resolve_device, torch_threads
from latte_bench.errors import NAME_ONLY, UserError, literal
from latte_bench.fsutil import check_writable, write_errors, write_json
from latte_bench.metrics.extract import Head, cached_real_stats, run_pass, stats_cache_root
from latte_bench.metrics.flicker import PROTOCOL as FLICKER_PROTOCOL, clip_scores
from latte_bench.metrics.protocol import (METRIC_NAMES, STANDARD_CLIPS, STANDARD_FRAMES, Protocol, Settings, key_settings,
                                          settings_key, split_settings)
from latte_bench.metrics.sources import CheckpointSource, FileSource, as_source
from latte_bench.metrics.stats import FeatureStats, frechet_distance
from latte_bench.provenance import environment
from latte_bench.data.registry import floor_videos, get_dataset, real_count_is_standard, real_videos
from latte_bench.data.video import write_frames
from latte_bench.metrics import c3d, i3d, inception  # loaders looked up on their modules at each call (tests replace them)
from latte_bench.metrics.c3d import NUM_FRAMES
from latte_bench.metrics.fid import frame_preprocess, real_frames
from latte_bench.metrics.i3d import MIN_FRAMES
from latte_bench.metrics.inception_score import clip_preprocess, inception_score
from latte_bench.metrics.kernel import kid, kvd
from latte_bench.metrics.prdc import prdc
from latte_bench.metrics.resize import preprocess_clips
from latte_bench.metrics.uncertainty import (
    floor_clips,
    floor_entry,
    frechet_from_features,
    load_real_features,
    record_fields,
    save_features,
)

SCHEMA = "latte-bench/eval-record/2"
DETECTOR_OF = {"fvd": "i3d", "kvd": "i3d", "fid": "inception", "kid": "inception", "is": "c3d",
               "precision": "i3d", "recall": "i3d", "density": "i3d", "coverage": "i3d", "flicker": "flicker"}
FAKE_ONLY = ("c3d", "flicker")  # heads that score the generated side alone (no real pass)
I3D_SIZE = 224
PRDC = ("precision", "recall", "density", "coverage")
CACHE_VERSION = 3  # bump when anything that moves cached real statistics, or the format of an entry or block, changes


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
        if key in DETECTOR_OF:
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
    if any(DETECTOR_OF[m] not in (*FAKE_ONLY, "i3d" if cfg.real_features else "c3d") for m in metrics) and real is None:
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
        _check_floor(("fvd",), src)
        _check_frames(["i3d"], proto)
        clips, sampling = _real_plan("i3d", src, proto)
        nets = _load_detectors(["i3d"], cfg, device)
        real_result = _real_pass("i3d", src, nets["i3d"], clips, sampling, ("fvd",), proto, cfg, device)
        floor = _floor(src, real_result, nets, clips, proto, cfg, device, from_registry)
    return {"floor": floor, "protocol": proto.to_dict(), "real": {**src.description, "sampling": real_result["sampling"],
                                                                   "cache": real_result["cache"]},
            "detector": {"i3d": nets["i3d"][1]}, "counts": {"real_clips": floor["real_count"], "floor_clips": floor["floor_count"]},
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
    detectors = sorted({DETECTOR_OF[m] for m in metrics})
    _check_frames(detectors, proto)
    real_src = as_source(real, side="real", skip_bad=proto.skip_bad) if real is not None else None
    fake_src = as_source(fake, side="fake")
    counts = _head_counts(metrics, proto)
    fake_clips = _fake_clips(fake_src, max(counts.values()), proto)
    _check_fewer("generated", len(fake_clips), max(counts.values()), proto, fake_src)
    plans = {det: ([], {}) if det == "i3d" and real_src is None else _real_plan(det, real_src, proto)
             for det in detectors if det not in FAKE_ONLY}  # cheap: no decoding
    for folder, setting in ((cfg.save_samples, "save_samples"), (cfg.save_features, "save_features")):
        if folder is not None:
            check_writable(folder, setting=setting)
    if cfg.floor:
        _check_floor(metrics, real_src)
    sources = [fake_src if k == 0 else dataclasses.replace(fake_src, seed=fake_src.seed + k) for k in range(cfg.num_runs)]
    work = [_fake_work_dir(source, counts, metrics, proto, cfg) for source in sources]  # refused before any clip is read
    nets = _load_detectors(detectors, cfg, device)

    stage = _Stages(cfg.run.progress and dist.is_main(), len(plans) + cfg.num_runs)
    real_results = {}
    for det, (clips, sampling) in plans.items():
        stage.next(f"real statistics ({det}, {len(clips)} {'clips' if det == 'i3d' else 'frames'})")
        real_results[det] = _real_pass(det, real_src, nets[det], clips, sampling, metrics, proto, cfg, device)

    runs = []
    for k, source in enumerate(sources):
        stage.next("generated videos" + (f", run {k + 1} of {cfg.num_runs} (seed {source.seed})" if cfg.num_runs > 1 else "")
                   + (" (sampling the checkpoint)" if isinstance(source, CheckpointSource) else ""))
        fake_pass = _fake_pass(source, fake_clips, nets, counts, metrics, proto, cfg, device, work[k])
        runs.append((_distances(metrics, real_results, fake_pass, proto), fake_pass, source))

    record = build_record(metrics, proto, cfg, real_src, fake_src, real_results, runs, nets, device, start)
    if cfg.floor:
        record["floor"] = _floor(real_src, real_results["i3d"], nets, plans["i3d"][0], proto, cfg, device, from_registry)
    if cfg.save_features is not None and dist.is_main():

        record["features"] = save_features(cfg.save_features, metrics, real_results, runs[-1][1].stats, record)
    _deliver(cfg.on_record, record)
    if cfg.work_dir is None:  # the default work folder only serves a resume; the record now holds the result
        _remove_work_dirs([fp.work_dir for _, fp, _ in runs])
    fake_pass = runs[-1][1]
    stats = {det: (real_results.get(det, {}).get("stats"), fake_pass.stats.get(det)) for det in detectors}
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


def _check_metrics(metrics) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = tuple(m.strip() for m in metrics.split(",") if m.strip())
    metrics = tuple(dict.fromkeys(x for m in metrics for x in (PRDC if m == "prdc" else (m,))))
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; available: {', '.join(METRIC_NAMES)}")
    return metrics


def _check_frames(detectors, proto: Protocol) -> None:
    """Clips too short for a detector are refused (the I3D's minimum, the C3D's 16 frames, flickering's 2)."""
    if "i3d" in detectors:

        if proto.num_frames < MIN_FRAMES:
            raise UserError(f"{{num_frames}}: the I3D needs at least {MIN_FRAMES} frames per clip", num_frames=proto.num_frames)
    if "c3d" in detectors:

        if proto.num_frames < NUM_FRAMES:
            raise UserError(f"{{num_frames}}: the Inception Score's C3D reads {NUM_FRAMES} frames per clip",
                            num_frames=proto.num_frames)
    if "flicker" in detectors and proto.num_frames < 2:
        raise UserError("{num_frames}: temporal flickering compares consecutive frames; pass 2 or more",
                        num_frames=proto.num_frames)


def _check_floor(metrics, real_src) -> None:
    if "fvd" not in metrics or real_src is None or real_src.stream:
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


def _head_counts(metrics, proto: Protocol) -> dict[str, int]:
    counts = {}
    for m in metrics:
        det = DETECTOR_OF[m]
        counts[det] = proto.num_clips if det != "c3d" else (
            proto.num_clips if proto.is_protocol == "stylegan_v" else proto.is_settings["num_clips"])
    return counts


# -------------------------------------------------------------------------------------- detectors


def _load_detectors(detectors, cfg: Settings, device) -> dict:
    """``{name: (network, sha256 or info)}`` for the detectors the metrics need (loaded once)."""
    nets = {}
    if "i3d" in detectors:

        net = i3d.load_i3d(device=device, path=cfg.run.i3d_weights)
        nets["i3d"] = (net, getattr(net, "weights_sha256", None))
    if "inception" in detectors:

        nets["inception"] = inception.load_inception(cfg.run.inception_weights, device)
    if "c3d" in detectors:

        net, info = c3d.load_c3d(cfg.run.c3d_weights, cfg.run.c3d_mean, device)
        nets["c3d"] = (net, info.get("sha256"), info)
    if "flicker" in detectors:  # no network: the score of each clip is its one feature

        nets["flicker"] = (lambda clips: clip_scores(clips)[:, None], None)
    return nets


def _head(det: str, nets: dict, proto: Protocol, count: int, keep: bool) -> Head:
    net = nets[det][0]
    if det == "i3d":

        return Head("i3d", net, lambda x: preprocess_clips(x, size=I3D_SIZE, mode=proto.resize), lambda c: c, count, keep)
    if det == "inception":

        return Head("inception", net, frame_preprocess(proto.fid_mode),
                    lambda c: c.reshape(-1, 1, *c.shape[2:]), count, keep, unit="frame")
    if det == "flicker":
        return Head("flicker", net, lambda x: x, lambda c: c, count, keep)

    return Head("c3d", net, clip_preprocess, lambda c: c[:, :NUM_FRAMES], count, True)


def _keep(det: str, metrics, cfg: Settings | None = None) -> bool:
    """I3D features are always kept (FVD's se; 1.6 KiB a clip), flicker scores too (4 bytes a clip); Inception
    ones for KID or --save-features."""
    saving = cfg is not None and cfg.save_features is not None
    return det in ("i3d", "c3d", "flicker") or (det == "inception" and ("kid" in metrics or saving))


# -------------------------------------------------------------------------------------------- passes


def _real_plan(det, src, proto: Protocol) -> tuple[list[Clip], dict]:
    """The real clips (I3D) or frames (Inception) of the protocol, and how they were chosen; too few is refused."""
    if det == "i3d":
        clips, sampling = _real_clips(src, proto)
        _check_fewer_real(len(clips), sampling, proto, src)
        return clips, sampling
    if src.stream:
        raise UserError("FID reads every frame of the real videos; pass the real videos as a folder or an array")

    clips = real_frames(src.videos, proto.max_real_frames)
    return clips, {"frames": len(clips), "videos": len(src.videos), "max_real_frames": proto.max_real_frames}


def _real_pass(det, src, net, clips, sampling, metrics, proto: Protocol, cfg: Settings, device) -> dict:
    """Real statistics of one detector (cached): ``{"stats", "info", "cache", "sampling"}``."""
    keep = _keep(det, metrics, cfg)
    if det == "i3d" and cfg.real_features is not None:

        return load_real_features(cfg.real_features, _real_settings(det, src, net, proto, cfg, device), sampling)
    head = _head(det, {det: net}, proto, len(clips), keep)

    def compute():
        res = run_pass(src, clips, [head], batch_size=cfg.run.batch_size, device=device, block_size=proto.block_size,
                       skip_bad=proto.skip_bad, num_workers=cfg.run.num_workers, desc=f"{det} real",
                       unit="clip" if det == "i3d" else "frame", progress=cfg.run.progress)
        return res.stats[det], {"clips": res.clips, "skipped": res.skipped, "resolution": res.resolution}

    settings = _real_settings(det, src, net, proto, cfg, device)
    fingerprint = settings["real_fingerprint"]
    use_cache = cfg.run.cache and fingerprint is not None and net[1] is not None
    stats, info, hit, key = cached_real_stats(det, settings, compute, keep_features=keep, cache=use_cache,
                                              cache_dir=cfg.run.cache_dir)
    if det == "i3d":
        _check_fewer_real(stats.n, sampling, proto, src)
    return {"stats": stats, "info": info, "sampling": sampling, "settings": settings,
            "cache": {"key": key, "hit": hit, "enabled": use_cache}}


def _real_settings(det, src, net, proto: Protocol, cfg: Settings, device) -> dict:
    """Everything that moves the real statistics of ``det`` (the cache key; the check of --real-features)."""
    return {"version": CACHE_VERSION, "detector": det, "detector_sha256": net[1],
            "real_fingerprint": None if src is None else src.fingerprint(),
            "clips": [proto.num_clips, proto.num_frames, proto.stride, proto.seed] if det == "i3d" else proto.max_real_frames,
            "resize": proto.resize if det == "i3d" else proto.fid_mode, "block_size": proto.block_size,
            "skip_bad": proto.skip_bad, "torch_threads": proto.torch_threads, "device": str(device.type)}


def _floor(src, real: dict, nets, used, proto: Protocol, cfg: Settings, device, from_registry: bool = False) -> dict:
    """FVD between the protocol's real clips and a disjoint real set of up to the same size (docs/uncertainty.md).

    The other set comes from the real videos the protocol's clips do not use; when none are left and the real side is
    the registry's split of a dataset that makes its videos (``demo``), from the next videos it makes.
    """

    clips = floor_clips(src.videos, used, proto.num_clips, proto.num_frames, proto.stride, proto.seed)
    if not clips and from_registry and proto.dataset is not None:

        extra = floor_videos(proto.dataset, proto.num_clips)
        if extra is not None:
            src = as_source(extra, side="real", skip_bad=proto.skip_bad)
            clips = floor_clips(src.videos, [], proto.num_clips, proto.num_frames, proto.stride, proto.seed)
    other = None
    if clips:
        head = _head("i3d", nets, proto, len(clips), True)
        other = run_pass(src, clips, [head], batch_size=cfg.run.batch_size, device=device, block_size=proto.block_size,
                         skip_bad=proto.skip_bad, num_workers=cfg.run.num_workers, desc="i3d floor",
                         progress=cfg.run.progress).stats["i3d"]
    return floor_entry(real["stats"], other, proto.num_clips, proto.covariance, proto.seed)


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


def _fake_pass(src, clips, nets, counts, metrics, proto: Protocol, cfg: Settings, device, work: tuple):
    """The generated side's pass; ``work``: ``(work folder, key)`` of :func:`_fake_work_dir`."""
    heads = [_head(det, nets, proto, counts[det], _keep(det, metrics, cfg)) for det in sorted(counts)]
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
                      desc=("sample + " if isinstance(src, CheckpointSource) else "generated: ") + "+".join(sorted(counts)),
                      read_options=read_options)
    for det, head in zip(sorted(counts), heads):
        _check_fewer("generated", result.stats[det].n // (proto.num_frames if det == "inception" else 1), head.count, proto, src)
    result.work_dir = work_dir
    return result


def _remove_work_dirs(dirs) -> None:
    import shutil

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


def _fake_work_dir(src, counts, metrics, proto: Protocol, cfg: Settings) -> tuple[Path | None, str | None]:
    """The work folder of the generated side (a checkpoint always has one; videos with ``--work-dir``)."""
    if isinstance(src, CheckpointSource) or cfg.work_dir is not None:
        return _work_dir(src, counts, metrics, proto, cfg)
    return None, None


def _work_dir(src, counts, metrics, proto: Protocol, cfg: Settings) -> tuple[Path | None, str | None]:
    """``(folder of finished blocks, key of this evaluation)``; ``(None, None)`` for a source without fingerprint.

    The manifest is written before any block. A folder made with other settings is refused, naming the
    difference; so is a folder holding blocks without a readable manifest (whose evaluation is unknown).
    """
    import json


    fake = src.settings(proto.dataset) if isinstance(src, CheckpointSource) else {"fingerprint": src.fingerprint()}
    if isinstance(src, FileSource) and fake["fingerprint"] is None:
        return None, None
    manifest = {"version": CACHE_VERSION, "protocol": key_settings(proto), "fake": fake,
                "heads": {det: {"count": counts[det], "keep_features": _keep(det, metrics, cfg)} for det in sorted(counts)},
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


def _distances(metrics, real, fake_pass, proto: Protocol) -> dict:
    """``{metric: {"value", "real_count", "fake_count", "unit", "detail"}}``."""
    out = {}
    unbiased = proto.covariance == "unbiased"
    for m in metrics:
        det = DETECTOR_OF[m]
        f = fake_pass.stats[det]
        r = real.get(det, {}).get("stats")
        if m in ("fvd", "fid") and r.keep_features and f.keep_features:

            est = frechet_from_features(r, f, metric=m, covariance=proto.covariance, seed=proto.seed)
            value, detail = est.value, {"uncertainty": est.to_dict()}
        elif m in ("fvd", "fid"):
            value = frechet_distance(r.mean(), r.cov(unbiased), f.mean(), f.cov(unbiased))
            detail = {"uncertainty": None}
        elif m in PRDC:

            if "prdc" not in out:  # once for the four
                out["prdc"] = prdc(r.features, f.features)
            value, detail = out["prdc"][m], {"k": out["prdc"]["k"]}
        elif m == "flicker":  # the mean of the per-video scores; frames per video as scored
            value = f.mean()[0]
            detail = {"frames_per_video": proto.num_frames, "frame_pairs_per_video": proto.num_frames - 1,
                      "frame_stride": proto.fake_stride, "min_video_score": float(f.features.min()),
                      "max_video_score": float(f.features.max())}
        elif m == "kvd":

            value, detail = kvd(r.features, f.features), {}
        elif m == "kid":

            out_kid = kid(r.features, f.features, proto.kid_subsets, proto.kid_subset_size, proto.seed)
            value, detail = out_kid["kid_x1000"], {"kid_raw": out_kid["kid"], "subset_size": out_kid["subset_size"]}
        else:

            s = proto.is_settings
            score = inception_score(f.features, splits=s["splits"], shuffle_seed=s["shuffle_seed"])
            value, detail = score["mean"], {"std": score["std"], "per_split": score["per_split"]}
        unit = "frames" if det == "inception" else "clips"
        out[m] = {"value": float(value), "real_count": None if r is None else int(r.n), "fake_count": int(f.n),
                  "unit": unit, "detail": detail}
    out.pop("prdc", None)
    return out


# ------------------------------------------------------------------------------------------- record


METRIC_PROTOCOL = {
    "fvd": "StyleGAN-V fvd2048_16f (Latte): Fréchet distance of TF-Hub I3D 400-d logits, float64",
    "kvd": "TATS polynomial_mmd on the I3D logits of the FVD pass: k(x,y)=(x.y/d+1)^3, unbiased MMD^2 (negative when the sets are closer than its noise), all samples",
    "fid": "StyleGAN-V fid50k_full on frames: all real frames vs frames 0..num_frames-1 of the generated clips",
    "kid": "StyleGAN-V kid: cubic polynomial kernel on Inception pool3, subsets of min(n_real, n_gen, subset size), x1000",
    "is": "video Inception Score with the UCF101 C3D (10 splits, shuffle seed 42 for stylegan_v)",
    **{m: f"Naeem et al. 2020 {m} on the I3D logits of the FVD pass, k-NN radii with k = 5 (prdc package semantics)"
       for m in ("precision", "recall", "density", "coverage")},
    "flicker": FLICKER_PROTOCOL,
}


def nonstandard_tags(proto: Protocol, counts: dict, metrics, real_stream: bool = False,
                     real_long_enough: int | None = None) -> list[str]:
    """What makes a run differ from its metrics' published protocol, as short tags (``[]`` = standard).

    ``real_long_enough``: how many real videos could give a clip (a dataset whose real split has fewer
    than ``num_clips`` of them is standard when every one was used, :func:`latte_bench.data.registry.real_count_is_standard`).
    """

    tags = []
    video_metrics = [m for m in metrics if m not in ("fid", "kid", "flicker")]
    counted = [m for m in metrics if m != "flicker"]  # VBench's flickering has no clip or frame count to depart from
    if proto.num_clips != STANDARD_CLIPS and counted:
        tags.append(f"{proto.num_clips} clips")
    if proto.num_frames != STANDARD_FRAMES and counted:
        tags.append(f"{proto.num_frames} frames")
    if proto.dataset is not None and any(m in ("fvd", "kvd") for m in metrics):

        if proto.stride != get_dataset(proto.dataset).stride:
            tags.append(f"stride {proto.stride}")
    n = counts.get("real_clips")
    if n is not None and not real_count_is_standard(proto.dataset, n, real_long_enough, proto.num_clips):
        tags.append(f"{n} real clips")
    n = counts.get("fake_clips")
    if n is not None and n < proto.num_clips and video_metrics:
        tags.append(f"{n} fake clips")
    if proto.covariance != "biased":
        tags.append("unbiased covariance")
    if proto.resize != "pytorch" and any(m in ("fvd", "kvd") for m in metrics):
        tags.append(f"{proto.resize} resize")
    if proto.fid_mode != "stylegan" and any(m in ("fid", "kid") for m in metrics):
        tags.append(f"fid mode {proto.fid_mode}")
    if proto.fake_stride != 1:
        tags.append(f"generated stride {proto.fake_stride}")
    if real_stream:
        tags.append("real clips at offset 0")
    return list(dict.fromkeys(tags))


def build_record(metrics, proto: Protocol, cfg: Settings, real_src, fake_src, real_results, runs, nets, device, start) -> dict:
    """The JSON record of an evaluation (schema ``latte-bench/eval-record/2``; docs/evaluation.md)."""
    last, fake_pass, _ = runs[-1]
    counts = {}
    if "i3d" in real_results:
        counts["real_clips"] = int(real_results["i3d"]["stats"].n)
    if "inception" in real_results:
        counts["real_frames"] = int(real_results["inception"]["stats"].n)
    for det, s in fake_pass.stats.items():
        if det == "inception":
            counts["fake_frames"] = int(s.n)
        else:
            counts["fake_clips"] = max(counts.get("fake_clips", 0), int(s.n))
    if len(runs) == 1:
        values = {m: last[m]["value"] for m in metrics}
    else:
        values = {}
        for m in metrics:
            per_run = [r[m]["value"] for r, _, _ in runs]
            values[m] = {"value": float(np.mean(per_run)), "std": float(np.std(per_run, ddof=1)), "runs": per_run,
                         "seeds": [src.seed for _, _, src in runs]}
    detectors = {det: entry[1] for det, entry in nets.items() if det != "flicker"}
    results = {}
    for m in metrics:
        det = DETECTOR_OF[m]
        detail = dict(last[m]["detail"])
        unc = detail.pop("uncertainty", False)
        prov = {"protocol": METRIC_PROTOCOL[m], "detector": None if det == "flicker" else det,
                "detector_sha256": detectors.get(det), **detail}
        if det in real_results:
            rr = real_results[det]
            prov.update(real_sampling=rr["sampling"], real_skipped=rr["info"].get("skipped", []),
                        real_resolution=rr["info"].get("resolution"), real_stats_cache=rr["cache"])
        prov.update(fake_resolution=fake_pass.resolution, fake_skipped=fake_pass.skipped)
        if det == "c3d":
            prov["c3d"] = nets["c3d"][2]
            prov.update(proto.is_settings)
        results[m] = {"metric": m, "value": values[m]["value"] if isinstance(values[m], dict) else values[m],
                      "real_count": last[m]["real_count"], "fake_count": last[m]["fake_count"], "unit": last[m]["unit"],
                      "provenance": prov}
        if unc is not False:  # Fréchet distances: se, N -> inf estimate and interval (of the last run)

            results[m].update(record_fields(m, unc))
    fake_desc = dict(fake_src.description)
    if isinstance(fake_src, CheckpointSource):
        fake_desc.update(fake_src.settings(proto.dataset))
        fake_desc["checkpoint"] = dict(fake_src.loaded.checkpoint)
        if cfg.save_samples is not None:
            fake_desc["saved_samples"] = str(cfg.save_samples)
    return {
        "schema": SCHEMA,
        "method": cfg.method or default_method(fake_src),
        "dataset": proto.dataset,
        "metrics": values,
        "results": results,
        "protocol": {**proto.to_dict(), "real_stride": proto.stride, "is": proto.is_settings if "is" in metrics else None},
        "detectors": detectors,
        "counts": counts,
        "nonstandard": nonstandard_tags(proto, counts, metrics, real_stream=bool(real_src is not None and real_src.stream),
                                        real_long_enough=real_results.get("i3d", {}).get("sampling", {}).get("videos_long_enough")),
        "real": None if real_src is None else dict(real_src.description),
        "fake": fake_desc,
        "seed": proto.seed,
        "runs": len(runs),
        "run": {"batch_size": cfg.run.batch_size, "device": str(device), "world_size": dist.world_size(),
                "num_workers": cfg.run.num_workers, "resumed_blocks": fake_pass.resumed_blocks},
        "environment": environment(),
        "wall_time_s": round(time.time() - start, 3),
    }


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
            import sys

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
