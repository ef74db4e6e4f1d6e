"""Clip sampling of the StyleGAN-V FVD protocol (as used by Latte), with a seeded RNG.

Real clips: keep the videos with at least ``num_frames * stride`` frames; if more than
``num_clips`` remain, draw ``num_clips`` of them without replacement; take one clip per
video at a random offset ``o`` in ``[0, L - num_frames*stride + stride - 1]`` (inclusive),
frames ``o + stride*k``. Every draw comes from ``numpy.random.default_rng(seed)``, so the
same seed gives the same clips (StyleGAN-V draws unseeded, see docs/metrics.md).

Generated clips: the first ``num_frames`` frames (stride 1 by default) of the first
``num_clips`` videos in sorted order; a shorter video is an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from latte_bench.data.video import VideoSource
from latte_bench.errors import UserError

@dataclass(frozen=True)
class Clip:
    """``indices`` of video number ``video`` (named ``name``) in a :class:`VideoSource`."""

    video: int
    name: str
    indices: tuple[int, ...]


def sample_real_clips(
    source: VideoSource, num_clips: int = 2048, num_frames: int = 16, stride: int = 1, seed: int = 0
) -> tuple[list[Clip], dict]:
    """Up to ``num_clips`` clips, one per randomly chosen long-enough video; returns (clips, info)."""
    span = num_frames * stride
    kept = [i for i, e in enumerate(source.entries) if e.num_frames >= span]
    rng = np.random.default_rng(seed)
    if len(kept) > num_clips:
        chosen = sorted(rng.choice(len(kept), size=num_clips, replace=False).tolist())
        kept = [kept[j] for j in chosen]
    clips = []
    for i in kept:
        e = source.entries[i]
        offset = int(rng.integers(0, e.num_frames - span + stride))  # upper bound exclusive
        clips.append(Clip(i, e.name, tuple(offset + stride * k for k in range(num_frames))))
    info = {
        "videos": len(source),
        "videos_long_enough": sum(e.num_frames >= span for e in source.entries),
        "clips": len(clips),
        "clips_requested": num_clips,
        "num_frames": num_frames,
        "stride": stride,
        "seed": seed,
        "skipped_unreadable": len(source.skipped),
    }
    if not clips:
        raise UserError(f"{source.root}: no video has the {span} frames needed for {num_frames} frames at stride {stride}")
    if len(clips) < num_clips:
        warnings.warn(
            f"{source.root}: only {len(clips)} videos have >= {span} frames; using {len(clips)} real clips instead of {num_clips}",
            stacklevel=2,
        )
    return clips, info


def sample_fake_clips(
    source: VideoSource, num_clips: int = 2048, num_frames: int = 16, stride: int = 1
) -> tuple[list[Clip], dict]:
    """Frames ``0, stride, ..`` of the first ``num_clips`` sorted videos; returns (clips, info)."""
    span = (num_frames - 1) * stride + 1
    clips = []
    for i, e in enumerate(source.entries[:num_clips]):
        if e.num_frames < span:
            raise UserError(
                f"{e.name if source.kind == 'array' else Path(source.root) / e.name}: generated video has {e.num_frames} frames; {span} needed ({num_frames} frames at stride {stride})"
            )
        clips.append(Clip(i, e.name, tuple(stride * k for k in range(num_frames))))
    info = {"videos": len(source), "clips": len(clips), "clips_requested": num_clips, "num_frames": num_frames,
            "stride": stride, "skipped_unreadable": len(source.skipped)}
    if len(clips) < num_clips:
        warnings.warn(f"{source.root}: only {len(clips)} generated videos; using {len(clips)} clips instead of {num_clips}",
                      stacklevel=2)
    return clips, info
