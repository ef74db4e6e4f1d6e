"""VBench temporal flickering on videos whose score is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latte_bench.errors import UserError
from latte_bench.metrics import flicker_scores, temporal_flickering


def _vbench_loop(video: np.ndarray) -> float:
    """VBench's cal_score written out: float32 |a - b| mean per consecutive pair, mean over pairs."""
    maes = [np.mean(np.abs(video[t + 1].astype(np.float32) - video[t].astype(np.float32))) for t in range(len(video) - 1)]
    return (255.0 - float(np.mean(maes))) / 255.0


def test_static_videos_score_one():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (3, 1, 12, 10, 3), dtype=np.uint8)
    videos = np.repeat(frame, 8, axis=1)
    assert flicker_scores(videos).tolist() == [1.0, 1.0, 1.0]
    assert temporal_flickering(videos) == 1.0


def test_alternating_black_white_scores_zero():
    video = np.zeros((1, 6, 8, 8, 3), np.uint8)
    video[:, 1::2] = 255
    assert temporal_flickering(video) == 0.0


def test_constant_step_gives_the_closed_form():
    # frame t is gray t*s everywhere: every pair differs by s, so the score is (255 - s) / 255
    steps = (1, 7, 15)
    videos = np.stack([np.broadcast_to((np.arange(16) * s).astype(np.uint8)[:, None, None, None], (16, 4, 5, 3))
                       for s in steps])
    np.testing.assert_allclose(flicker_scores(videos), [(255 - s) / 255 for s in steps], rtol=0, atol=1e-15)
    assert temporal_flickering(videos) == pytest.approx(np.mean([(255 - s) / 255 for s in steps]), abs=1e-15)


def test_a_toggling_region_scores_one_minus_its_area():
    # a quarter of the pixels toggles 0 <-> 255 in every frame: MAE = 255/4, score 0.75
    video = np.zeros((1, 5, 8, 8, 3), np.uint8)
    video[0, 1::2, :4, :4] = 255
    assert temporal_flickering(video) == 0.75


def test_matches_vbench_loop_on_random_videos():
    rng = np.random.default_rng(1)
    videos = rng.integers(0, 256, (4, 9, 16, 12, 3), dtype=np.uint8)
    want = [_vbench_loop(v) for v in videos]
    np.testing.assert_allclose(flicker_scores(videos), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(flicker_scores(torch.from_numpy(videos)), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((1, 4, 8, 8, 3), np.float32), "uint8"),
    (np.zeros((4, 8, 8, 3), np.uint8), "(N, T, H, W, 3)"),
    (np.zeros((2, 1, 8, 8, 3), np.uint8), "2 or more frames"),
])
def test_bad_input_is_one_line(bad, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        flicker_scores(bad)
