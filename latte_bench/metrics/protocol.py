"""The evaluation protocol: every setting that can move a number, in one frozen object.

:class:`Protocol` holds what changes a metric's value (clip counts, frames, strides, seed,
resize, covariance, FID input mode, IS protocol, KID subsets, summation block, CPU threads);
:class:`RunOptions` holds what does not (batch size, device, workers, cache, progress, weight
files — their sha256 is recorded instead). :func:`split_settings` sorts keyword arguments into
the two and refuses any other name, so a record can only ever claim the settings that ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch

from latte_bench.data.registry import get_dataset, real_stride as resolve_real_stride
from latte_bench.errors import UserError, check_int

# "prdc": precision..coverage; "flicker": VBench's temporal flickering of the generated videos
METRIC_NAMES = ("fvd", "kvd", "fid", "kid", "is", "precision", "recall", "density", "coverage", "flicker")
RESIZE_MODES = ("pytorch", "tf")
FID_MODES = ("stylegan", "clean", "legacy_pytorch")
IS_PROTOCOLS = ("stylegan_v", "tgan2")
STANDARD_CLIPS = 2048
STANDARD_FRAMES = 16


@dataclass(frozen=True)
class Protocol:
    """Settings that determine the numbers (see docs/evaluation.md for each one's meaning).

    ``real_stride=None`` means the dataset's stride (1 without a dataset). ``torch_threads``
    is the CPU thread count the detectors run with (None: the current count, recorded):
    CPU features are bitwise reproducible at equal thread counts only.
    """

    dataset: str | None = None
    num_clips: int = STANDARD_CLIPS
    num_frames: int = STANDARD_FRAMES
    real_stride: int | None = None
    fake_stride: int = 1
    seed: int = 0
    resize: str = "pytorch"
    covariance: str = "biased"
    fid_mode: str = "stylegan"
    max_real_frames: int | None = None
    is_protocol: str = "stylegan_v"
    is_splits: int | None = None
    is_shuffle_seed: int | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    block_size: int = 256
    skip_bad: bool = False
    allow_fewer: bool = False
    torch_threads: int | None = None

    def __post_init__(self):
        check_int("--num-clips", self.num_clips, 2)
        check_int("--num-frames", self.num_frames, 1)
        if self.real_stride is not None:
            check_int("--real-stride", self.real_stride, 1)
        check_int("fake_stride", self.fake_stride, 1)
        check_int("--block-size", self.block_size, 1)
        _check_choice("--resize", self.resize, RESIZE_MODES)
        _check_choice("--covariance", self.covariance, ("biased", "unbiased"))
        _check_choice("--fid-mode", self.fid_mode, FID_MODES)
        _check_choice("--is-protocol", self.is_protocol, IS_PROTOCOLS)
        if self.dataset is not None:
            get_dataset(self.dataset)

    @property
    def stride(self) -> int:
        """The real-clip stride in force."""
        return resolve_real_stride(self.dataset, self.real_stride)

    @property
    def is_settings(self) -> dict:
        """``{"num_clips", "splits", "shuffle_seed"}`` of the Inception Score protocol in force."""
        from latte_bench.metrics.inception_score import PROTOCOLS

        cfg = dict(PROTOCOLS[self.is_protocol])
        return {"num_clips": cfg["num_clips"],
                "splits": cfg["splits"] if self.is_splits is None else self.is_splits,
                "shuffle_seed": cfg["shuffle_seed"] if self.is_shuffle_seed is None else self.is_shuffle_seed}

    def resolved(self) -> "Protocol":
        """This protocol with the stride and the thread count filled in (what a record stores)."""
        return dataclasses.replace(self, real_stride=self.stride,
                                   torch_threads=self.torch_threads or torch.get_num_threads())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """Settings that do not change any number: how fast, where, and which files hold the weights."""

    batch_size: int = 8
    device: str | None = None
    num_workers: int = 0
    cache: bool = True
    cache_dir: str | None = None
    progress: bool = True
    i3d_weights: str | None = None
    inception_weights: str | None = None
    c3d_weights: str | None = None
    c3d_mean: str | None = None

    def __post_init__(self):
        check_int("--batch-size", self.batch_size, 1)
        check_int("--workers", self.num_workers, 0)


@dataclass(frozen=True)
class Settings:
    """A parsed call: the protocol, the run options and the evaluation-level options."""

    protocol: Protocol
    run: RunOptions
    method: str | None = None
    work_dir: str | None = None
    num_runs: int = 1
    data_root: str | None = None
    save_samples: str | None = None
    save_features: str | None = None
    real_features: str | None = None
    floor: bool = False
    on_record: object = None  # called with the record on every rank before the default work folder is removed


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
    check_int("--num-runs", num_runs, 1)
    return Settings(
        protocol=Protocol(**{k: v for k, v in kwargs.items() if k in proto_keys}),
        run=RunOptions(**{k: v for k, v in kwargs.items() if k in run_keys}),
        method=kwargs.get("method"), work_dir=kwargs.get("work_dir"), num_runs=num_runs,
        data_root=kwargs.get("data_root"), save_samples=kwargs.get("save_samples"),
        save_features=kwargs.get("save_features"), real_features=kwargs.get("real_features"),
        floor=bool(kwargs.get("floor")), on_record=kwargs.get("on_record"),
    )


def _check_choice(flag: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


# ---------------------------------------------------------------- what a difference in a setting does
#
# One rule for every comparison of two evaluations (`latte-bench compare`, the leaderboards' notes):
# each setting of a record is in one of these groups. "meaning" makes two numbers incomparable;
# "draw" is another random draw of the same protocol (comparable, the difference is noise that the
# significance test measures); "digits" moves the last digits (summation order, BLAS, the device);
# "none" cannot move the number; "generated" is the generated side, which is what a comparison is about.

EFFECTS = {
    "meaning": "changes what the number means",
    "draw": "another random draw of the same protocol",
    "digits": "moves the last digits",
    "none": "no effect",
    "generated": "the generated side (what is compared)",
}

FIELD_EFFECTS = {
    # Protocol
    "dataset": "meaning", "num_clips": "meaning", "num_frames": "meaning", "real_stride": "meaning",
    "fake_stride": "meaning", "seed": "draw", "resize": "meaning", "covariance": "meaning", "fid_mode": "meaning",
    "max_real_frames": "meaning", "is_protocol": "meaning", "is_splits": "meaning", "is_shuffle_seed": "draw",
    "kid_subsets": "draw", "kid_subset_size": "meaning", "block_size": "digits", "torch_threads": "digits",
    # what they let through is recorded in the counts and skipped lists, which are compared themselves
    "skip_bad": "none", "allow_fewer": "none",
    # RunOptions (weight files: their sha256 is compared under detectors)
    "batch_size": "none", "device": "digits", "num_workers": "none", "cache": "none", "cache_dir": "none",
    "progress": "none", "i3d_weights": "none", "inception_weights": "none", "c3d_weights": "none", "c3d_mean": "none",
}

# Dotted keys of an evaluation record (fnmatch patterns, first match wins); keys matching none are
# results, not settings (metric values, standard errors, timings, feature files).
RECORD_EFFECTS = (
    ("protocol.is.*", "meaning"),
    ("protocol.*", "field"),
    ("schema", "none"), ("method", "none"), ("dataset", "meaning"), ("seed", "draw"), ("runs", "draw"),
    ("nonstandard", "meaning"), ("detectors.*", "meaning"), ("counts.*", "meaning"),
    ("run.device", "digits"), ("run.*", "none"),
    ("environment.timestamp_utc", "none"), ("environment.*", "digits"),
    ("real.*", "meaning"),
    ("fake.lossless", "meaning"), ("fake.skipped_unreadable", "meaning"), ("fake.seed", "draw"),
    ("fake.path", "none"), ("fake.checkpoint.path", "none"), ("fake.saved_samples", "none"), ("fake.*", "generated"),
    ("results.*.provenance.real_stats_cache.*", "none"), ("results.*.provenance.real_sampling.seed", "draw"),
    ("results.*.provenance.*", "meaning"), ("results.*.real_count", "meaning"), ("results.*.fake_count", "meaning"),
    ("results.*.unit", "meaning"),
)


def effect_of(key: str) -> str | None:
    """The group (a key of :data:`EFFECTS`) of the record setting ``key``; None for a result."""
    for pattern, effect in RECORD_EFFECTS:
        if fnmatchcase(key, pattern):
            return FIELD_EFFECTS.get(key.split(".", 1)[1], "meaning") if effect == "field" else effect
    return None
