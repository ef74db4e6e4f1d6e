"""VBench's *temporal flickering* score (Huang et al., "VBench", CVPR 2024), the one VBench dimension
that needs no network weights.

Per video of T frames: the mean absolute difference of each pair of consecutive frames over all
pixels and channels (``MAE_t = mean |x_{t+1} - x_t|``, in 0..255), averaged over the T-1 pairs,
mapped to ``(255 - mean MAE) / 255`` in [0, 1] (1 = no change between frames). The score of a set is
the mean over its videos. This is VBench's ``temporal_flickering.py`` (its ``cal_score`` /
``temporal_flickering``), computed exactly in integers here instead of with float32 means.

VBench scores every frame of each video, but only videos its *static filter* kept (RAFT optical
flow, whose weights are downloaded; at most five static videos per prompt of its temporal-flickering
prompt list). That filter is not applied here: every video given is scored, so camera or object
motion lowers the score as flicker would (docs/t2v.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from latte_bench.errors import UserError
from latte_bench.metrics.detector import Detector, Loaded, Metric

PROTOCOL = ("VBench temporal flickering: per video, (255 - mean over consecutive frame pairs of the mean "
            "absolute pixel difference) / 255, averaged over videos; every video scored (no static filter), "
            "frames as given (no resize)")


def clip_scores(clips: torch.Tensor) -> torch.Tensor:
    """Per-clip scores (B,) float64 in [0, 1] of uint8 clips (B, T, H, W, C) with T >= 2, on their device."""
    diff = (clips[:, 1:].to(torch.int16) - clips[:, :-1].to(torch.int16)).abs_()
    per_pair = diff.sum(dim=(2, 3, 4), dtype=torch.int64).cpu().double() / float(np.prod(clips.shape[2:]))
    return (255.0 - per_pair.mean(dim=1)) / 255.0


def flicker_scores(videos) -> np.ndarray:
    """Per-video temporal-flickering scores, (N,) float64 in [0, 1].

    ``videos``: uint8 (N, T, H, W, 3), numpy or torch, T >= 2 frames; scored one video at a time.
    """
    x = torch.as_tensor(videos) if not isinstance(videos, torch.Tensor) else videos
    if x.dtype != torch.uint8 or x.ndim != 5 or x.shape[-1] != 3:
        raise UserError(f"temporal flickering takes uint8 videos (N, T, H, W, 3); got {x.dtype} {tuple(x.shape)}")
    if x.shape[1] < 2:
        raise UserError(f"temporal flickering compares consecutive frames: videos need 2 or more frames, got {x.shape[1]}")
    return np.concatenate([clip_scores(x[i : i + 1]).numpy() for i in range(len(x))]) if len(x) else np.zeros(0)


def temporal_flickering(videos) -> float:
    """The set's score: the mean of :func:`flicker_scores` over the videos (float in [0, 1])."""
    scores = flicker_scores(videos)
    if not len(scores):
        raise UserError("temporal flickering of an empty set: pass at least one video")
    return float(scores.mean())


class FlickerHead(Detector):
    """The weightless detector of temporal flickering: a clip -> its one feature, :func:`clip_scores` (float)."""

    name, unit, min_frames, weightless, keep_features = "flicker", "clip", 2, True, True
    too_short = "temporal flickering compares consecutive frames; pass 2 or more"

    def load(self, device, run) -> Loaded:
        return Loaded(self, lambda clips: clip_scores(clips)[:, None], None)


DETECTOR = FlickerHead()


@dataclass(frozen=True, eq=False)
class Flicker(Metric):
    """The mean of the per-video scores of the generated side, and their range, frames per video as scored."""

    def score(self, fake, proto):
        return fake.mean()[0], {"frames_per_video": proto.num_frames, "frame_pairs_per_video": proto.num_frames - 1,
                                "frame_stride": proto.fake_stride, "min_video_score": float(fake.features.min()),
                                "max_video_score": float(fake.features.max())}


METRIC = Flicker("flicker", DETECTOR, PROTOCOL, needs_real=False, needs_features=True, standard=frozenset())
