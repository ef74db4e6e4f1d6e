"""The datasets by name: every fact about each one, and the lookups the rest of the package reads them through.

``DATASETS[name]`` is a :class:`DatasetSpec`: where its real videos are and the protocol the paper scores
them with, its training layout and transform, the paper's sampling settings, the leaderboard column and
its aliases. No other module keeps a per-dataset table. :func:`real_videos` turns a spec and a data root
into the real side of an evaluation: a path (the split StyleGAN-V and Latte compute real statistics on)
or, for ``demo``, the procedural set generated in memory. The data root comes from ``--data``, else
``$LATTE_BENCH_DATA/<name>``. ``docs/datasets.md`` describes the layouts.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latte_bench.errors import NAME_ONLY, UserError, literal
from latte_bench.data.demo import DEMO_SET, make_demo_videos

DATA_ENV = "LATTE_BENCH_DATA"

# The paper's sampling (the official sample configs: DDPM, 250 steps): eval --ckpt and sample without a dataset
PAPER_SAMPLER = "ddpm"
PAPER_STEPS = 250
NO_GUIDANCE = 1.0  # classifier-free guidance scale 1: the conditional prediction alone

TRAIN_LAYOUTS = ("video_files", "frame_folders", "class_folders", "demo_set")
TRAIN_TRANSFORMS = ("resize_short_side_center_crop", "center_crop_resize", "check_size")


@dataclass(frozen=True)
class OfficialTraining:
    """What one of Latte's training configs (``configs/<name>/<name>[_img]_train.yaml``) sets differently per dataset."""

    start_clip_iter: int  # optimizer steps before gradient clipping starts
    log_every: int = 50


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark. ``metrics``: what the paper reports for it (Tables 3 and 5)."""

    name: str
    title: str  # the paper's name, the leaderboard column
    real_split: str  # the videos the real statistics use, in words
    real_subdirs: tuple[str, ...]  # candidates below the data root, first existing wins; else the root itself
    stride: int  # real-clip frame stride (StyleGAN-V's realdata_subsample_factor as Latte sets it)
    resolution: int  # frames are square, this many pixels
    crop: str  # how the real frames are prepared for evaluation, in words
    num_classes: int  # 0 = unconditional
    metrics: tuple[str, ...]
    layout: str  # the expected layout below the data root
    expected_videos: str  # the file counts a complete copy has
    train_layout: str  # how a training set lists its videos (one of TRAIN_LAYOUTS, data.datasets.list_videos)
    train_transform: str  # the official spatial chain of a training clip (one of TRAIN_TRANSFORMS, data.transforms)
    train_flip: bool  # whether the official training pipeline flips clips horizontally at random
    # StyleGAN-V takes one clip from each of min(N, 2048) long-enough real videos. For a real split that
    # can hold fewer than 2,048 long-enough videos, using every one of them is the protocol itself, as long
    # as there are at least this many (a floor that catches incomplete copies); None: fewer is never standard.
    min_real_clips: int | None = None
    # eval --ckpt and sample sampling when --sampler/--steps/--cfg-scale are not given
    sampler: str = PAPER_SAMPLER
    sample_steps: int = PAPER_STEPS
    guidance: float = NO_GUIDANCE  # classifier-free guidance of a class-conditional model (paper: 7.0 on UCF101)
    procedural: bool = False  # generated in memory (data.demo): no data root, nothing to download
    in_paper: bool = True  # the paper reports it: records are filed under ``title`` (and its aliases)
    aliases: tuple[str, ...] = ()  # spellings besides the name and the title, lower case (records, leaderboards)
    official: OfficialTraining | None = None  # Latte's video training config (None: there is none)
    official_img: OfficialTraining | None = None  # Latte's image-video joint training config

    def cfg_scale(self, num_classes: int) -> float:
        """The guidance a model with ``num_classes`` classes is sampled with by default (1.0 if unconditional)."""
        return self.guidance if num_classes else NO_GUIDANCE


DATASETS: dict[str, DatasetSpec] = {
    "demo": DatasetSpec(
        name="demo", title="Demo", real_split="procedural shapes, generated in memory (data.demo.DEMO_SET, what the demo preset trains on)",
        real_subdirs=(), stride=1, resolution=0, crop="none", num_classes=0, metrics=("fvd", "kvd"),  # size, classes: DEMO_SET's
        layout="none: generated on the fly", expected_videos="as many as --num-clips",
        train_layout="demo_set", train_transform="center_crop_resize", train_flip=True, procedural=True,
        sampler="ddim", sample_steps=25, in_paper=False),  # the demo's own sampling (reports.demo.DemoSettings)
    "ffs": DatasetSpec(
        name="ffs", title="FaceForensics", real_split="training split (the official train/ folder)",
        real_subdirs=("train/videos", "train"), stride=3, resolution=256,
        crop="centre crop to square, LANCZOS resize to 256", num_classes=0, metrics=("fvd", "fid"),
        layout="ROOT/train/videos/<video>.mp4 (Latte's preprocess_ffs layout; or frame folders)",
        expected_videos="the FaceForensics training split as Latte preprocesses it (count not verified here)",
        train_layout="video_files", train_transform="resize_short_side_center_crop", train_flip=True,
        min_real_clips=256, aliases=("face_forensics",),
        official=OfficialTraining(20_000, log_every=100), official_img=OfficialTraining(500_000)),
    "sky": DatasetSpec(
        name="sky", title="SkyTimelapse", real_split="training split (sky_train)",
        real_subdirs=("sky_train",), stride=3, resolution=256, crop="none (frames are 256x256 already)",
        num_classes=0, metrics=("fvd",),
        layout="ROOT/sky_train/<video>/<clip>/<frame>.jpg (every folder holding frames is one video)",
        expected_videos="the sky_timelapse training split (count not verified here)",
        train_layout="frame_folders", train_transform="center_crop_resize", train_flip=False,
        min_real_clips=256, aliases=("sky_timelapse",),
        official=OfficialTraining(20_000), official_img=OfficialTraining(20_000)),
    "ucf101": DatasetSpec(
        name="ucf101", title="UCF101", real_split="train + test (all 13,320 videos)",
        real_subdirs=(), stride=3, resolution=256, crop="centre crop to square, resize to 256",
        num_classes=101, metrics=("fvd", "is"),
        layout="ROOT/<Class>/v_<Class>_gXX_cYY.avi (101 class folders)",
        expected_videos="13,320 videos in 101 class folders",
        train_layout="class_folders", train_transform="resize_short_side_center_crop", train_flip=True,
        guidance=7.0, aliases=("ucf", "ucf-101"),
        official=OfficialTraining(100_000), official_img=OfficialTraining(100_000)),
    "taichi": DatasetSpec(
        name="taichi", title="Taichi-HD", real_split="training split (train/)",
        real_subdirs=("frames/train", "train"), stride=6, resolution=256, crop="none (frames are 256x256 already)",
        num_classes=0, metrics=("fvd",),
        layout="ROOT/frames/train/<video>/<frame>.png (taichi-256 layout; or ROOT/train/...)",
        expected_videos="the taichi-256 training split (count not verified here)",
        train_layout="frame_folders", train_transform="check_size", train_flip=True,
        min_real_clips=256, aliases=("taichi_hd", "taichihd"),
        official=OfficialTraining(500_000), official_img=OfficialTraining(500_000)),
}


def get_dataset(name: str) -> DatasetSpec:
    """The spec of ``name`` (``demo``: size and classes of ``data.demo.DEMO_SET``); unknown names are refused."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if name == "demo":

        spec = dataclasses.replace(spec, resolution=DEMO_SET["image_size"], num_classes=DEMO_SET["num_classes"])
    return spec


def real_stride(dataset: str | None = None, stride: int | None = None) -> int:
    """The real-clip stride in force: an explicit ``stride`` (>= 1), else the dataset's, else 1."""
    if stride is not None:
        if stride < 1:
            raise UserError(f"{{real_stride}} must be >= 1 (got {literal(stride)})", real_stride=NAME_ONLY)
        return int(stride)
    return 1 if dataset is None else get_dataset(dataset).stride


@dataclass(frozen=True)
class SamplingDefaults:
    """What a checkpoint is sampled with when no option says otherwise (``eval --ckpt`` and ``sample`` alike)."""

    sampler: str
    steps: int
    cfg_scale: float


def sampling_defaults(dataset: str | None, num_classes: int) -> SamplingDefaults:
    """The defaults for a model of ``num_classes`` classes on ``dataset`` (None: the paper's DDPM 250, no guidance).

    Guidance applies to class-conditional models only: 7.0 for UCF101, 1.0 elsewhere.
    """
    if dataset is None:
        return SamplingDefaults(PAPER_SAMPLER, PAPER_STEPS, NO_GUIDANCE)
    spec = get_dataset(dataset)
    return SamplingDefaults(spec.sampler, spec.sample_steps, spec.cfg_scale(num_classes))


def find_dataset(name: str) -> DatasetSpec | None:
    """The spec a name, title or alias means (case and surrounding spaces ignored); None for any other name."""
    key = str(name).strip().lower()
    for spec in DATASETS.values():
        if key in (spec.name, spec.title.lower(), *spec.aliases):
            return get_dataset(spec.name)
    return None


def canonical_dataset(name: str) -> str:
    """The leaderboard column of a record's dataset: ``ffs`` -> ``FaceForensics``, ``ucf`` -> ``UCF101``; the
    names of datasets outside the paper (``demo``) and unknown names are kept as given."""
    spec = find_dataset(name)
    return spec.title if spec is not None and spec.in_paper else str(name)


def paper_titles() -> tuple[str, ...]:
    """The paper's datasets by column name, in the order of its tables (Table 3)."""
    return tuple(spec.title for spec in DATASETS.values() if spec.in_paper)


def real_count_is_standard(name: str | None, clips: int, long_enough: int | None, num_clips: int) -> bool:
    """Whether ``clips`` real clips meet the protocol of ``name`` for ``num_clips`` requested.

    Yes when there are ``num_clips``; or, for a dataset whose real split may hold fewer long-enough videos
    than that, when every long-enough video gave its clip and there are at least ``min_real_clips``.
    """
    if clips >= num_clips:
        return True
    if name is None:
        return False
    floor = get_dataset(name).min_real_clips
    return floor is not None and clips == long_enough and clips >= floor


def data_root(name: str, data: str | os.PathLike | None = None) -> Path:
    """``data``, else ``$LATTE_BENCH_DATA/<name>``; a missing folder is a one-line error naming both."""
    if data is not None:
        root = Path(data)
        if not root.exists():
            raise UserError(f"{root}: data root not found; pass --data pointing at the {name} videos")
        return root
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env) / name
        if root.exists():
            return root
        raise UserError(f"{root}: data root not found (from ${DATA_ENV}); pass --data DIR or put the {name} videos there")
    raise UserError(f"no data root for {name}: pass --data DIR or set ${DATA_ENV} so that ${DATA_ENV}/{name} holds the videos")


def real_videos(name: str, data: str | os.PathLike | None = None, *, num_videos: int = 2048):
    """The real side of an evaluation on ``name``: a path, or for ``demo`` a uint8 array (N, T, H, W, 3).

    ``num_videos`` only matters for ``demo`` (how many procedural videos to make).
    """
    spec = get_dataset(name)
    if spec.procedural:
        return demo_real_videos(num_videos)
    root = data_root(name, data)
    for sub in spec.real_subdirs:
        if (root / sub).is_dir():
            return root / sub
    return root


def floor_videos(name: str, num_videos: int):
    """Real videos outside ``real_videos(name, num_videos=num_videos)`` for the real-vs-real floor, where the split
    makes them: for ``demo``, videos ``num_videos`` to ``2·num_videos`` of the same procedural set (uint8 array);
    None for the datasets read from disk, whose split is listed whole."""
    if name != "demo":
        return None
    return demo_real_videos(2 * int(num_videos))[int(num_videos):]


def demo_real_videos(num_videos: int, num_frames: int = 16) -> np.ndarray:
    """``num_videos`` procedural videos of the demo set (``data.demo.DEMO_SET``), ``num_frames + 4`` frames each.

    Seeded like the demo training set, whose videos are the first ones of this set (the training
    split, as for the other benchmarks). Returns uint8 (N, T, H, W, 3).
    """

    stride = DEMO_SET["frame_interval"]
    frames = (max(num_frames, DEMO_SET["num_frames"]) - 1) * stride + 1 + 4
    videos, _ = make_demo_videos(int(num_videos), num_frames=frames, size=DEMO_SET["image_size"], seed=DEMO_SET["seed"],
                                 classes=max(DEMO_SET["num_classes"], 1))
    return videos
