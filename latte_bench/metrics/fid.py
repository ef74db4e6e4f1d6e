"""FID on video frames with the StyleGAN-V protocol (``fid50k_full``): ``compute_fid(real, fake, ...)``.

* Real set: **every frame of every real video** (StyleGAN-V's ``ImageFolderDataset`` over the real
  frame root, recursively).
* Generated set: every frame of the generated clips, i.e. frames ``0..num_frames-1`` of the first
  ``num_videos`` sorted videos (2048 × 16 = 32,768 frames for Latte). StyleGAN-V's folder mode takes
  the first ``min(#frames, 50000)`` sorted frames of the folder, which is the same set when the
  generated videos have 16 frames each.
* Detector: Inception-v3 2015-12-05 pool3 (2048-d), :mod:`latte_bench.metrics.inception`, with one of
  three input pipelines (``mode``): ``stylegan`` (TF1-legacy bilinear to 299, ``(x−128)/128``; the
  StyleGAN-V number), ``clean`` (clean-fid) or ``legacy_pytorch`` (pytorch-fid).
* Statistics: float64, StyleGAN-V's biased covariance (``unbiased`` on request), Fréchet distance of
  :mod:`latte_bench.metrics.stats`. Real statistics are cached like FVD's, in
  ``$LATTE_BENCH_CACHE/fid_stats/<key>.npz`` keyed by every setting, the detector sha256 and the real
  file-list fingerprint.

Keep the features (``keep_features=True``) to compute KID from the same pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from latte_bench.data.clips import Clip, sample_fake_clips
from latte_bench.data.video import VideoSource, open_videos
from latte_bench.errors import UserError
from latte_bench.metrics.extract import cached_real_stats, extract_stats
from latte_bench.device import resolve_device
from latte_bench.metrics.inception import MODES, InceptionV3, load_inception, preprocess
from latte_bench.metrics.stats import FeatureStats, frechet_distance
from latte_bench.provenance import environment
from latte_bench import distributed as dist

CACHE_VERSION = 1


@dataclass
class FIDResult:
    """``fid`` with its ``provenance`` record, and the statistics (features kept on request)."""

    fid: float
    provenance: dict
    real_stats: FeatureStats = field(repr=False, default=None)
    fake_stats: FeatureStats = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"metric": "fid", "value": self.fid, "provenance": self.provenance}


def real_frames(source: VideoSource, max_frames: int | None = None) -> list[Clip]:
    """One single-frame :class:`Clip` per frame of every video, in sorted order (optionally the first ``max_frames``)."""
    frames = [Clip(i, f"{e.name}#{k}", (k,)) for i, e in enumerate(source.entries) for k in range(e.num_frames)]
    if not frames:
        raise UserError(f"{source.root}: the real videos have no frames")
    return frames[:max_frames] if max_frames else frames


def fake_frames(source: VideoSource, num_videos: int = 2048, num_frames: int = 16) -> tuple[list[Clip], dict]:
    """Single-frame clips for frames ``0..num_frames-1`` of the first ``num_videos`` videos."""
    clips, info = sample_fake_clips(source, num_videos, num_frames, 1)
    return [Clip(c.video, f"{c.name}#{k}", (k,)) for c in clips for k in c.indices], info


def frame_preprocess(mode: str):
    """``uint8 (B, 1, H, W, 3)`` single-frame clips → Inception input ``(B, 3, 299, 299)`` for ``mode``."""
    if mode not in MODES:
        raise UserError(f"--fid-mode must be one of {', '.join(MODES)}, got {mode!r}")

    def run(clips: torch.Tensor) -> torch.Tensor:
        if clips.ndim != 5 or clips.shape[1] != 1 or clips.shape[-1] != 3:
            raise UserError(f"FID reads single RGB frames (B, 1, H, W, 3), got {list(clips.shape)}")
        return preprocess(clips[:, 0].permute(0, 3, 1, 2), mode)

    return run


def compute_fid(
    real,
    fake,
    *,
    fid_mode: str = "stylegan",
    num_clips: int = 2048,
    num_frames: int = 16,
    max_real_frames: int | None = None,
    covariance: str = "biased",
    batch_size: int = 8,
    device: str | None = "cpu",
    inception_weights: str | None = None,
    net: InceptionV3 | None = None,
    skip_bad: bool = False,
    cache: bool = True,
    cache_dir=None,
    keep_features: bool = False,
    num_workers: int = 0,
    progress: bool = True,
) -> FIDResult:
    """FID between every frame of the videos at ``real`` and the first ``num_frames`` frames of the
    first ``num_clips`` videos at ``fake`` (folders, video files or arrays; see data.video).

    ``fid_mode``: ``stylegan`` | ``clean`` | ``legacy_pytorch``. ``inception_weights``: Inception
    TorchScript file (default: registry entry ``inception``); ``net``: an already-loaded network; name
    its file in ``inception_weights`` too, otherwise the record has no detector sha256 and the
    real-statistics cache is not used.
    """
    mode = fid_mode
    start = time.time()
    if covariance not in ("biased", "unbiased"):
        raise UserError(f"--covariance must be biased or unbiased, got {covariance!r}")
    if num_clips < 1 or num_frames < 1 or batch_size < 1:
        raise UserError("FID: --num-clips, --num-frames and --batch-size must be >= 1")
    device = str(resolve_device(device))
    dist.init(device)
    if net is None:
        net, detector_sha = load_inception(inception_weights, device)
    else:  # already loaded: the file it came from (if named) gives the sha256 for the record and the cache
        detector_sha = _file_sha256(inception_weights) if inception_weights is not None else None
    net = net.to(device)
    pre = frame_preprocess(mode)
    common = dict(batch_size=batch_size, device=device, keep_features=keep_features, num_workers=num_workers,
                  progress=progress)

    real_source = open_videos(real, skip_bad=skip_bad)
    fake_source = open_videos(fake, skip_bad=False)
    real_list = real_frames(real_source, max_real_frames)
    fake_list, fake_info = fake_frames(fake_source, num_clips, num_frames)
    if len(real_list) < 2 or len(fake_list) < 2:
        raise UserError(f"FID needs at least 2 real and 2 generated frames, got {len(real_list)} and {len(fake_list)}")

    settings = {
        "version": CACHE_VERSION,
        "metric": "fid",
        "detector_sha256": detector_sha,
        "real_fingerprint": real_source.fingerprint(),
        "mode": mode,
        "max_real_frames": max_real_frames,
        "skip_bad": skip_bad,
        "keep_features": keep_features,
    }
    use_cache = cache and detector_sha is not None
    real_stats, real_extract, cache_hit, key = cached_real_stats(
        "fid",
        settings,
        lambda: extract_stats(real_source, real_list, net, pre, skip_bad=skip_bad, desc="Inception real", **common),
        cache=use_cache,
        cache_dir=cache_dir,
    )
    fake_stats, fake_extract = extract_stats(fake_source, fake_list, net, pre, desc="Inception fake", **common)

    unbiased = covariance == "unbiased"
    fid = frechet_distance(real_stats.mean(), real_stats.cov(unbiased), fake_stats.mean(), fake_stats.cov(unbiased))
    provenance = {
        "protocol": "StyleGAN-V fid50k_full on frames (real: all frames; fake: first num_frames of each clip)",
        "real": str(real),
        "fake": str(fake),
        "fid_mode": mode,
        "mode_detail": MODE_DETAIL[mode],
        "detector": "Inception-v3 2015-12-05 pool3 (2048-d)",
        "detector_sha256": detector_sha,
        "covariance": covariance,
        "real_frames": real_stats.n,
        "fake_frames": fake_stats.n,
        "fake_videos": fake_info["clips"],
        "num_frames": num_frames,
        "max_real_frames": max_real_frames,
        "fake_sampling": fake_info,
        "real_skipped_videos": [name for name, _ in real_source.skipped],
        "real_skipped_frames": (real_extract or {}).get("skipped", []),
        "real_resolution": (real_extract or {}).get("resolution"),
        "fake_resolution": fake_extract.get("resolution"),
        "real_fingerprint": settings["real_fingerprint"],
        "real_stats_cache": {"key": key, "hit": cache_hit, "enabled": use_cache},
        "batch_size": batch_size,
        "world_size": dist.world_size(),
        "device": device,
        "environment": environment(),
        "wall_time_s": round(time.time() - start, 3),
    }
    return FIDResult(fid, provenance, real_stats, fake_stats)


MODE_DETAIL = {
    "stylegan": "TF1 legacy resize_bilinear to 299 (float), then (x-128)/128 (StyleGAN/StyleGAN-V, clean-fid legacy_tensorflow)",
    "clean": "PIL bicubic (antialiased) per channel in float32 to 299, then (x-128)/128 (clean-fid clean)",
    "legacy_pytorch": "x/255, F.interpolate bilinear align_corners=False to 299, then 2x-1 (pytorch-fid)",
}


def _file_sha256(path) -> str:
    from latte_bench.fsutil import sha256_file
    from latte_bench.metrics.weights import resolve

    return sha256_file(resolve("inception", path))
