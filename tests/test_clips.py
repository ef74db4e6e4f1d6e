"""StyleGAN-V clip sampling: discarding, seeded choice, offsets, generated clips, presets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latte_bench.data.clips import sample_fake_clips, sample_real_clips
from latte_bench.data.registry import DATASETS, real_stride
from latte_bench.data.video import VideoEntry, VideoSource
from latte_bench.errors import UserError


def _source(lengths, root="ROOT"):
    entries = [VideoEntry(f"v{i:03d}", n, reader=lambda idx: None) for i, n in enumerate(lengths)]
    return VideoSource(root, "test", entries)


def test_real_clips_discard_short_and_index_arithmetic():
    src = _source([10, 47, 48, 60, 100])
    with pytest.warns(UserWarning, match="only 3 videos"):
        clips, info = sample_real_clips(src, num_clips=2048, num_frames=16, stride=3, seed=0)
    assert [c.video for c in clips] == [2, 3, 4]
    assert info["videos_long_enough"] == 3 and info["clips"] == 3 and info["clips_requested"] == 2048
    for c in clips:
        length = src[c.video].num_frames
        o = c.indices[0]
        assert 0 <= o <= length - 48 + 2
        assert c.indices == tuple(o + 3 * k for k in range(16))
        assert c.indices[-1] <= length - 1
    assert clips[0].indices[0] in (0, 1, 2)  # L=48, s=3: o in [0, 2]


def test_offset_range_is_inclusive_and_never_exceeded():
    src = _source([49])  # s=3: o in [0, 49-48+2] = [0, 3]
    seen = set()
    for seed in range(200):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clips, _ = sample_real_clips(src, num_clips=1, num_frames=16, stride=3, seed=seed)
        seen.add(clips[0].indices[0])
    assert seen == {0, 1, 2, 3}


def test_seeded_choice_without_replacement():
    src = _source([20] * 50)
    a, _ = sample_real_clips(src, num_clips=10, num_frames=16, stride=1, seed=5)
    b, _ = sample_real_clips(src, num_clips=10, num_frames=16, stride=1, seed=5)
    c, _ = sample_real_clips(src, num_clips=10, num_frames=16, stride=1, seed=6)
    assert a == b and a != c
    videos = [x.video for x in a]
    assert len(set(videos)) == 10 and videos == sorted(videos)
    # the draw is numpy's default_rng(seed): choice of videos, then one offset per video
    rng = np.random.default_rng(5)
    chosen = sorted(rng.choice(50, size=10, replace=False).tolist())
    offsets = [int(rng.integers(0, 20 - 16 + 1)) for _ in chosen]
    assert videos == chosen and [x.indices[0] for x in a] == offsets


def test_no_long_enough_video_is_an_error():
    with pytest.raises(UserError, match="48 frames"):
        sample_real_clips(_source([10, 20]), num_clips=4, num_frames=16, stride=3)


def test_fake_clips_first_frames_of_first_videos():
    src = _source([16, 30, 16, 16])
    clips, info = sample_fake_clips(src, num_clips=3, num_frames=16)
    assert [c.video for c in clips] == [0, 1, 2]
    assert all(c.indices == tuple(range(16)) for c in clips)
    assert info["clips"] == 3


def test_short_fake_video_is_named():
    with pytest.raises(UserError, match="v001.*15 frames"):
        sample_fake_clips(_source([16, 15, 16]), num_clips=3, num_frames=16)


def test_fewer_fake_videos_warns():
    with pytest.warns(UserWarning, match="only 2 generated"):
        clips, info = sample_fake_clips(_source([16, 16]), num_clips=5, num_frames=16)
    assert info["clips"] == 2


def test_presets():
    assert {name: spec.stride for name, spec in DATASETS.items()} == {"demo": 1, "ffs": 3, "sky": 3, "ucf101": 3, "taichi": 6}
    assert real_stride() == 1
    assert real_stride("taichi") == 6 and real_stride("sky") == 3
    assert real_stride("taichi", 2) == 2
    with pytest.raises(UserError, match="unknown dataset"):
        real_stride("kinetics")
    with pytest.raises(UserError):
        real_stride(None, 0)
