"""The evaluation protocol: every setting that can move a number, in one frozen object.

:class:`Protocol` holds what changes a metric's value (clip counts, frames, strides, seed,
resize, covariance, FID input mode, IS protocol, KID subsets, summation block, CPU threads);
:class:`RunOptions` holds what does not (batch size, device, workers, cache, progress, weight
files — their sha256 is recorded instead). :func:`split_settings` sorts keyword arguments into
the two and refuses any other name, so a record can only ever claim the settings that ran.
Each field declares its option (:mod:`latte_bench.options`): the flag, help, choices, checks and
effect that the parsers of ``eval`` and ``bench``, the settings keys and ``compare`` read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from fnmatch import fnmatchcase

from latte_bench.data.registry import (PAPER_SAMPLER, PAPER_STEPS, get_dataset, real_count_is_standard,
                                     real_stride as resolve_real_stride)
from latte_bench.errors import UserError
from latte_bench.options import EFFECTS  # noqa: F401  (compare and the tests read it here)
from latte_bench.options import (DEVICE, LABELS, PROGRESS, SAMPLE_PRECISIONS, SAMPLERS, T2V_PROMPTS, THREADS,
                                 WEIGHTS, Option, check_fields,
                                 effects_of, key_fields)

# "prdc": precision..coverage; "flicker": VBench's temporal flickering of the generated videos
METRIC_NAMES = ("fvd", "kvd", "fid", "kid", "is", "precision", "recall", "density", "coverage", "flicker")
RESIZE_MODES = ("pytorch", "tf")
FID_MODES = ("stylegan", "clean", "legacy_pytorch")
# the Inception Score's two protocols: clips scored, splits, and the seed that shuffles the rows before splitting
IS_SETTINGS = {
    "stylegan_v": dict(num_clips=2048, splits=10, shuffle_seed=42),
    "tgan2": dict(num_clips=10000, splits=1, shuffle_seed=None),
}
IS_PROTOCOLS = tuple(IS_SETTINGS)
COVARIANCES = ("biased", "unbiased")
STANDARD_CLIPS = 2048
STANDARD_FRAMES = 16


@dataclass(frozen=True)
class Protocol:
    """Settings that determine the numbers (see docs/evaluation.md for each one's meaning).

    ``real_stride=None`` means the dataset's stride (1 without a dataset). ``torch_threads``
    is the CPU thread count the detectors run with (None: the current count, recorded):
    CPU features are bitwise reproducible at equal thread counts only.
    """

    # real=False: the real data enters the statistics' key as its fingerprint, the stride as a number
    dataset: str | None = Option("protocol preset and real data: demo, ffs, sky, ucf101 or taichi", effect="meaning",
                                 group="source", real=False).field(None)
    num_clips: int = Option("clips per set", effect="meaning", minimum=2).field(STANDARD_CLIPS)
    num_frames: int = Option("frames per clip", effect="meaning", minimum=1).field(STANDARD_FRAMES)
    real_stride: int | None = Option("frame stride of real clips (default: the dataset's, else 1)", effect="meaning",
                                     type=int, minimum=1).field(None)
    fake_stride: int = Option("frame stride of generated clips", effect="meaning", minimum=1, flag="",
                              real=False).field(1)
    seed: int = Option("seed of the real-clip sampling and, with --ckpt, of the generated videos", effect="draw").field(0)
    resize: str = Option("I3D resize to 224: pytorch bilinear half-pixel or TF1 legacy resize_bilinear",
                         effect="meaning", choices=RESIZE_MODES).field("pytorch")
    covariance: str = Option("1/n as StyleGAN-V, or 1/(n-1)", effect="meaning", choices=COVARIANCES,
                             real=False).field("biased")
    fid_mode: str = Option("FID input pipeline: StyleGAN-V's TF1 resize, clean-fid, or pytorch-fid", effect="meaning",
                           choices=FID_MODES).field("stylegan")
    max_real_frames: int | None = Option("FID: use only the first N real frames (default: all)", effect="meaning",
                                         type=int).field(None)
    is_protocol: str = Option("IS: StyleGAN-V (num-clips clips, 10 splits) or TGAN2 (10,000 clips, 1 split)",
                              effect="meaning", choices=IS_PROTOCOLS, real=False).field("stylegan_v")
    is_splits: int | None = Option("IS: number of splits (default: the IS protocol's)", effect="meaning", type=int,
                                   real=False).field(None)
    is_shuffle_seed: int | None = Option("IS: row shuffle seed (default: the IS protocol's)", effect="draw", type=int,
                                         real=False).field(None)
    kid_subsets: int = Option("KID: number of subsets", effect="draw", real=False).field(100)
    kid_subset_size: int = Option("KID: rows per subset (at most)", effect="meaning", real=False).field(1000)
    block_size: int = Option("clips per summation block, the unit of sharding and resume (moves float64 rounding only)",
                             effect="digits", minimum=1).field(256)
    # what these two let through is recorded in the counts and skipped lists, which are compared themselves;
    # skip_bad still decides which real statistics are computed, so it is part of the settings key
    skip_bad: bool = Option("skip unreadable real videos (listed in the record)", keyed=True).field(False)
    allow_fewer: bool = Option("score fewer usable clips than --num-clips instead of refusing (the record is tagged "
                               "nonstandard)", real=False).field(False)
    torch_threads: int | None = dataclasses.replace(
        THREADS, flag="--threads", help="CPU threads of the detectors (default: torch's current count, i.e. "
        "$OMP_NUM_THREADS when set, else the physical cores; recorded: CPU features are bitwise reproducible at "
        "equal thread counts)").field(None)

    def __post_init__(self):
        check_fields(self)
        if self.dataset is not None:
            get_dataset(self.dataset)

    @property
    def stride(self) -> int:
        """The real-clip stride in force."""
        return resolve_real_stride(self.dataset, self.real_stride)

    @property
    def is_settings(self) -> dict:
        """``{"num_clips", "splits", "shuffle_seed"}`` of the Inception Score protocol in force."""

        cfg = dict(IS_SETTINGS[self.is_protocol])
        return {"num_clips": cfg["num_clips"],
                "splits": cfg["splits"] if self.is_splits is None else self.is_splits,
                "shuffle_seed": cfg["shuffle_seed"] if self.is_shuffle_seed is None else self.is_shuffle_seed}

    def resolved(self) -> "Protocol":
        """This protocol with the stride and the thread count filled in (what a record stores)."""
        import torch  # here, not at the top: the command line's parsers read this module's options

        return dataclasses.replace(self, real_stride=self.stride,
                                   torch_threads=self.torch_threads or torch.get_num_threads())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """Settings that do not change any number: how fast, where, and which files hold the weights."""

    batch_size: int = Option("clips per detector and sampling batch", minimum=1).field(8)
    device: str | None = DEVICE.field(None)
    num_workers: int = Option("DataLoader worker processes for decoding", minimum=0).field(0)
    cache: bool = Option("recompute the real statistics instead of using the cache").field(True)
    cache_dir: str | None = Option("folder of the cached real statistics (default: $LATTE_BENCH_CACHE/<detector>_stats)",
                                   flag="").field(None)
    progress: bool = PROGRESS.field(True)
    i3d_weights: str | None = Option("I3D weight file (default: the registry's, $LATTE_BENCH_I3D)").field(None)
    inception_weights: str | None = Option("Inception TorchScript file (default: $LATTE_BENCH_INCEPTION or the cache)"
                                           ).field(None)
    c3d_weights: str | None = Option("UCF101 C3D weights for IS (see `latte-bench weights list`)").field(None)
    c3d_mean: str | None = Option("TGAN2 C3D mean file (default: mean2.npz beside --c3d-weights)").field(None)

    def __post_init__(self):
        check_fields(self)


@dataclass(kw_only=True)
class SamplingSettings:
    """How a checkpoint is sampled (the fields of :class:`latte_bench.metrics.CheckpointSource` besides the file).

    ``cfg_scale=None``: the dataset's default (7.0 for UCF101, else 1.0); ``batch_size=None``: the evaluation's.
    """

    sampler: str = Option("diffusion sampler", effect="generated", choices=SAMPLERS).field(PAPER_SAMPLER)
    steps: int = Option("sampling steps", effect="generated", minimum=1).field(PAPER_STEPS)
    cfg_scale: float | None = Option("classifier-free guidance (default: 7.0 for ucf101, else 1.0)", effect="generated",
                                     type=float).field(None)
    seed: int = Option("video i is a function of (seed, i)", effect="draw").field(0)
    weights: str = Option("which weights of the checkpoint", effect="generated", choices=WEIGHTS).field("ema")
    labels: str = Option("class labels: uniform per video from the seed (official sample_ddp.py) or balanced over "
                         "classes", effect="generated", choices=LABELS).field("random")
    batch_size: int | None = Option("videos per model call (does not change the videos; default: the evaluation's)",
                                    type=int, minimum=1).field(None)
    precision: str = Option("sampling precision (autocast)", effect="generated", choices=SAMPLE_PRECISIONS).field("fp32")
    preset: str | None = Option("official checkpoints (no config inside): the preset describing the model, e.g. ucf101 "
                                "(default: none; latte-bench checkpoints carry their config)", effect="generated").field(None)
    model_name: str | None = Option("official checkpoints: the model name (default: the preset's)", effect="generated",
                                    flag="--model").field(None)
    vae: str | None = Option("override the checkpoint's VAE: hub id, folder or none (default: the checkpoint's)",
                             effect="generated").field(None)
    t2v_prompts: str | None = Option(
        "a Latte-1 --ckpt (text-to-video): classnames = one prompt per class of --dataset, 'a video of <class words>', "
        "balanced over videos (docs/t2v.md); its sampler defaults are LattePipeline's, ddim 50 and guidance 7.5",
        effect="generated", choices=T2V_PROMPTS).field(None)

    def __post_init__(self):
        check_fields(self)


@dataclass(frozen=True)
class Settings:
    """A parsed call: the protocol, the run options and the evaluation-level options."""

    protocol: Protocol
    run: RunOptions
    method: str | None = Option("row name in the leaderboards (default: model and step for --ckpt, else the --fake "
                                "folder name)", group="source").field(None)
    work_dir: str | None = Option(
        "keep per-block features here; a killed evaluation rerun with the same command resumes (default for --ckpt: "
        "under $LATTE_BENCH_CACHE/eval_work_stats, removed when done)", metavar="DIR", group="sampling").field(None)
    num_runs: int = Option("K sampling seeds (seed, seed+1, ...), reported as mean ± std", effect="draw", minimum=1,
                           group="sampling").field(1)
    data_root: str | None = Option("data root of --dataset (default: $LATTE_BENCH_DATA/<dataset>)", flag="--data",
                                   metavar="ROOT", group="source").field(None)
    save_samples: str | None = Option("also write the sampled videos as lossless PNG frame folders (rescore with "
                                      "--fake DIR)", metavar="DIR", group="sampling").field(None)
    save_features: str | None = Option("write the per-clip detector features of both sides and their protocol to DIR "
                                       "(docs/uncertainty.md)", metavar="DIR", group="source").field(None)
    real_features: str | None = Option("FVD: reuse DIR/i3d_real.npz of an earlier --save-features (its protocol must "
                                       "match) instead of the real pass; --real is then optional", metavar="FILE",
                                       group="source").field(None)
    floor: bool = Option("also score the real-vs-real floor: FVD between the real clips and as many clips of other "
                         "real videos, with its se and FVD∞ (record: floor; one more real pass)", group="source"
                         ).field(False)
    on_record: object = None  # called with the record on every rank before the default work folder is removed

    def __post_init__(self):
        check_fields(self)


_EVAL_KEYS = ("method", "work_dir", "num_runs", "data_root", "save_samples", "save_features", "real_features", "floor",
              "on_record")


def split_settings(kwargs: dict) -> Settings:
    """Sort ``kwargs`` into :class:`Settings`; any name that is not a setting is a :class:`UserError`."""
    proto_keys = {f.name for f in dataclasses.fields(Protocol)}
    run_keys = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(k for k in kwargs if k not in proto_keys | run_keys | set(_EVAL_KEYS))
    if unknown:
        known = sorted(proto_keys | run_keys | set(_EVAL_KEYS))
        raise UserError(f"unknown evaluation setting(s): {', '.join(unknown)}; known settings: {', '.join(known)}")
    num_runs = int(kwargs.get("num_runs") or 1)
    return Settings(
        protocol=Protocol(**{k: v for k, v in kwargs.items() if k in proto_keys}),
        run=RunOptions(**{k: v for k, v in kwargs.items() if k in run_keys}),
        method=kwargs.get("method"), work_dir=kwargs.get("work_dir"), num_runs=num_runs,
        data_root=kwargs.get("data_root"), save_samples=kwargs.get("save_samples"),
        save_features=kwargs.get("save_features"), real_features=kwargs.get("real_features"),
        floor=bool(kwargs.get("floor")), on_record=kwargs.get("on_record"),
    )

# ---------------------------------------------------------------- the settings key


def key_settings(obj) -> dict:
    """``{field: value}`` of the fields of dataclass ``obj`` (a Protocol, SamplingSettings, ...) whose option can
    move a number (its effect is not "none", or it is declared ``keyed``): what a settings key must hold."""
    return {name: getattr(obj, name) for name in key_fields(type(obj))}


def settings_key(payload: dict) -> str:
    """The one settings hash: sha256 of the canonical JSON of ``payload`` (sorted keys; a value JSON cannot
    hold, such as a path, as its text). It keys the real-statistics cache, the work folders and bench's records."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- what a difference in a setting does
#
# One rule for every comparison of two evaluations (`latte-bench compare`, the leaderboards' notes) and
# for the settings keys: each option declares its effect (a key of EFFECTS, latte_bench.options), and
# each setting of a record falls in one of those groups.

FIELD_EFFECTS = effects_of(Protocol, RunOptions)

# Dotted keys of an evaluation record (fnmatch patterns, first match wins); keys matching none are
# results, not settings (metric values, standard errors, timings, feature files).
RECORD_EFFECTS = (
    ("protocol.is.*", "meaning"),
    ("protocol.*", "field"),
    ("schema", "none"), ("method", "none"), ("dataset", "meaning"), ("seed", "draw"), ("runs", "draw"),
    ("nonstandard", "meaning"), ("detectors.*", "meaning"), ("counts.*", "meaning"),
    ("run.*", "field"),
    ("environment.timestamp_utc", "none"), ("environment.*", "digits"),
    ("real.*", "meaning"),
    ("fake.lossless", "meaning"), ("fake.skipped_unreadable", "meaning"),
    ("fake.path", "none"), ("fake.checkpoint.path", "none"), ("fake.saved_samples", "none"), ("fake.*", "field"),
    ("results.*.provenance.real_stats_cache.*", "none"), ("results.*.provenance.real_sampling.seed", "draw"),
    ("results.*.provenance.*", "meaning"), ("results.*.real_count", "meaning"), ("results.*.fake_count", "meaning"),
    ("results.*.unit", "meaning"),
)


# a record section whose keys are option fields: ({field: effect} of the class declaring them, the group of its other keys)
_SECTIONS = {"protocol": (effects_of(Protocol), "meaning"), "run": (effects_of(RunOptions), "none"),
             "fake": (effects_of(SamplingSettings), "generated")}


def effect_of(key: str) -> str | None:
    """The group (a key of :data:`EFFECTS`) of the record setting ``key``; None for a result. A "field" key
    takes the effect its option declares (``fake.seed``: draw, ``run.device``: digits)."""
    for pattern, effect in RECORD_EFFECTS:
        if fnmatchcase(key, pattern):
            if effect != "field":
                return effect
            section, name = key.split(".", 1)
            effects, other = _SECTIONS[section]
            return effects.get(name, other)
    return None


# ---------------------------------------------------------------- where a run departs from its column's protocol


def _standard_parts(metric) -> frozenset:
    """The parts of the protocol that ``metric`` (a name, a :class:`Metric`, several, or None) follows."""
    from latte_bench.metrics import registry  # the metric classes load torch; the settings stay light for `--help`

    metrics = [] if metric is None else [metric] if isinstance(metric, str) or hasattr(metric, "standard") else metric
    parts = set()
    for m in metrics:
        m = registry.METRICS.get(m) if isinstance(m, str) else m
        parts |= set(getattr(m, "standard", ()))
    return frozenset(parts)


def departures(have: dict, want: "Protocol | dict", counts: dict, metric) -> list[tuple[str, str]]:
    """Where a run departs from the paper's protocol of its column, as ``(kind, tag)`` pairs (``[]`` = standard).

    ``have``: the run's resolved protocol (``Protocol.resolved().to_dict()``, as a record stores it); a setting it
    does not state is not judged. ``want``: the column's paper :class:`Protocol` (its ``dataset`` gives the real
    stride), or its ``to_dict()``. ``counts``: ``{"real_clips", "fake_clips"}`` scored, optionally
    ``"real_long_enough"`` (real videos that could give a clip). ``metric``: a metric name or object, or several;
    each judges only the parts in its ``standard``. Kinds: fake count, frames, real stride, real count,
    covariance, resize, fid mode, fake stride; tags read ``"64 clips"``, ``"stride 3"``, ``"700 real clips"``...
    """
    want = want if isinstance(want, Protocol) else Protocol(**{k: v for k, v in want.items() if k in _PROTOCOL_KEYS})
    parts = _standard_parts(metric)
    pairs = []

    def differs(key: str) -> bool:
        return have.get(key) is not None and have[key] != getattr(want, key)

    if differs("num_clips") and "counts" in parts:
        pairs.append(("fake count", f"{have['num_clips']} clips"))
    if differs("num_frames") and "counts" in parts:
        pairs.append(("frames", f"{have['num_frames']} frames"))
    if want.dataset is not None and "stride" in parts and have.get("real_stride") not in (None, want.stride):
        pairs.append(("real stride", f"stride {have['real_stride']}"))
    num_clips = have.get("num_clips")  # the counts are judged against the clips the run asked for
    if not isinstance(num_clips, int):
        num_clips = None
    counts = {k: v for k, v in counts.items() if isinstance(v, int)}  # a hand-made record's text is not judged
    n = counts.get("real_clips")
    if None not in (n, num_clips) and not real_count_is_standard(want.dataset, n, counts.get("real_long_enough"),
                                                                 num_clips):
        pairs.append(("real count", f"{n} real clips"))
    n = counts.get("fake_clips")
    if None not in (n, num_clips) and n < num_clips and "fake_clips" in parts:
        pairs.append(("fake count", f"{n} fake clips"))
    if differs("covariance"):
        pairs.append(("covariance", f"{have['covariance']} covariance"))
    if differs("resize") and "resize" in parts:
        pairs.append(("resize", f"{have['resize']} resize"))
    if differs("fid_mode") and "fid_mode" in parts:
        pairs.append(("fid mode", f"fid mode {have['fid_mode']}"))
    if differs("fake_stride"):
        pairs.append(("fake stride", f"generated stride {have['fake_stride']}"))
    return pairs


_PROTOCOL_KEYS = {f.name for f in dataclasses.fields(Protocol)}
