"""FVD with the StyleGAN-V protocol (as used by Latte): ``compute_fvd(real, fake, ...)``.

Pipeline: open both video sets (:mod:`latte_bench.data.video`), sample clips
(:mod:`latte_bench.data.clips`: real = one seeded random clip of ``num_frames`` frames at
stride ``real_stride`` from each of up to ``num_clips`` long-enough videos; fake = the first
``num_frames`` frames of the first ``num_clips`` videos), preprocess (uint8 -> [-1,1] ->
224x224, :mod:`latte_bench.metrics.resize`), run the TF-Hub I3D
(:func:`latte_bench.metrics.i3d.load_i3d`, 400-d time-averaged logits), accumulate float64
statistics (:mod:`latte_bench.metrics.extract`) and take the Fréchet distance with the
biased covariance (or unbiased on request).

The real statistics are cached (``$LATTE_BENCH_CACHE/fvd_stats/<key>.npz``) under a key
hashing every protocol setting, the detector's sha256 and a fingerprint of the real file
list (names, frame counts, sizes, mtimes); ``cache=False`` recomputes them.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field


from latte_bench.data.clips import real_stride as _real_stride
from latte_bench.data.clips import sample_fake_clips, sample_real_clips
from latte_bench.data.video import open_videos
from latte_bench.device import resolve_device
from latte_bench.errors import UserError
from latte_bench.metrics.extract import cached_real_stats, extract_stats
from latte_bench.metrics.resize import RESIZE_MODES, preprocess_clips
from latte_bench.metrics.stats import FeatureStats, frechet_distance
from latte_bench.provenance import environment
from latte_bench import distributed as dist

I3D_SIZE = 224
MIN_FRAMES = 9  # I3D's VALID (2,7,7) average pool needs >= 9 input frames
CACHE_VERSION = 1  # bump when anything that moves the cached real statistics changes


@dataclass
class FVDResult:
    """``fvd`` (float) with its ``provenance`` record; the statistics for further use."""

    fvd: float
    provenance: dict
    real_stats: FeatureStats = field(repr=False, default=None)
    fake_stats: FeatureStats = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"metric": "fvd", "value": self.fvd, "provenance": self.provenance}


def compute_fvd(
    real,
    fake,
    *,
    dataset: str | None = None,
    num_clips: int = 2048,
    num_frames: int = 16,
    real_stride: int | None = None,
    fake_stride: int = 1,
    seed: int = 0,
    batch_size: int = 8,
    device: str | None = "cpu",
    resize: str = "pytorch",
    covariance: str = "biased",
    skip_bad: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
    keep_features: bool = False,
    block_size: int = 256,
    progress: bool = True,
) -> FVDResult:
    """FVD between the video sets at ``real`` and ``fake`` (folders or arrays; see data.video).

    ``dataset`` (ffs, sky, ucf101, taichi) sets the real stride (3, 3, 3, 6) unless
    ``real_stride`` is given. ``covariance``: ``biased`` (StyleGAN-V) or ``unbiased``.
    ``resize``: ``pytorch`` (half-pixel bilinear) or ``tf`` (TF1 legacy). ``skip_bad`` skips
    unreadable *real* videos and counts them. Works under torchrun (the clips are sharded;
    the result equals the single-process one). ``block_size``: clips per summation block
    (the unit of sharding, see :mod:`latte_bench.metrics.extract`); it moves only float64 rounding.
    """
    start = time.time()
    stride = _real_stride(dataset, real_stride)
    if num_frames < MIN_FRAMES:
        raise UserError(f"--num-frames {num_frames}: the I3D needs at least {MIN_FRAMES} frames per clip")
    if num_clips < 2:
        raise UserError(f"--num-clips {num_clips}: need at least 2 clips for a covariance")
    if resize not in RESIZE_MODES:
        raise UserError(f"--resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if covariance not in ("biased", "unbiased"):
        raise UserError(f"--covariance must be biased or unbiased, got {covariance!r}")
    if batch_size < 1 or fake_stride < 1:
        raise UserError("--batch-size and the fake stride must be >= 1")
    device = str(resolve_device(device))
    dist.init(device)

    real_source = open_videos(real, skip_bad=skip_bad)
    fake_source = open_videos(fake, skip_bad=False)
    real_clips, real_info = sample_real_clips(real_source, num_clips, num_frames, stride, seed)
    fake_clips, fake_info = sample_fake_clips(fake_source, num_clips, num_frames, fake_stride)

    from latte_bench.metrics.i3d import load_i3d

    detector = load_i3d(device=device)
    detector_sha = getattr(detector, "weights_sha256", None)
    preprocess = functools.partial(preprocess_clips, size=I3D_SIZE, mode=resize)
    common = dict(batch_size=batch_size, device=device, keep_features=keep_features, num_workers=num_workers,
                  block_size=block_size, progress=progress)

    settings = {
        "version": CACHE_VERSION,
        "detector_sha256": detector_sha,
        "real_fingerprint": real_source.fingerprint(),
        "num_clips": num_clips,
        "num_frames": num_frames,
        "stride": stride,
        "seed": seed,
        "resize": resize,
        "resize_size": I3D_SIZE,
        "skip_bad": skip_bad,
        "keep_features": keep_features,
    }
    real_stats, real_extract, cache_hit, key = cached_real_stats(
        "fvd",
        settings,
        lambda: extract_stats(real_source, real_clips, detector, preprocess, skip_bad=skip_bad, desc="I3D real", **common),
        cache=cache,
        cache_dir=cache_dir,
    )
    fake_stats, fake_extract = extract_stats(fake_source, fake_clips, detector, preprocess, desc="I3D fake", **common)

    unbiased = covariance == "unbiased"
    fvd = frechet_distance(real_stats.mean(), real_stats.cov(unbiased), fake_stats.mean(), fake_stats.cov(unbiased))
    provenance = {
        "protocol": "StyleGAN-V fvd (Latte)",
        "real": str(real),
        "fake": str(fake),
        "dataset": dataset,
        "num_clips": num_clips,
        "num_frames": num_frames,
        "real_stride": stride,
        "fake_stride": fake_stride,
        "seed": seed,
        "rng": "numpy.random.default_rng(seed): choice of videos without replacement, then one offset per video",
        "resize": resize,
        "resize_size": I3D_SIZE,
        "input_range": "x/255*2-1",
        "covariance": covariance,
        "detector": "TF-Hub i3d-kinetics-400/1 (400-d time-averaged logits)",
        "detector_sha256": detector_sha,
        "real_clips": real_stats.n,
        "fake_clips": fake_stats.n,
        "real_sampling": real_info,
        "fake_sampling": fake_info,
        "real_skipped_videos": [name for name, _ in real_source.skipped],
        "real_skipped_clips": (real_extract or {}).get("skipped", []),
        "real_resolution": (real_extract or {}).get("resolution"),
        "fake_resolution": fake_extract.get("resolution"),
        "real_fingerprint": settings["real_fingerprint"],
        "real_stats_cache": {"key": key, "hit": cache_hit, "enabled": cache},
        "batch_size": batch_size,
        "world_size": dist.world_size(),
        "device": device,
        "environment": environment(),
        "wall_time_s": round(time.time() - start, 3),
    }
    return FVDResult(fvd, provenance, real_stats, fake_stats)

