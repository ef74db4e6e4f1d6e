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


def _stepped(steps_first: int, steps_after: int, frames: int = 16, switch: int = 8) -> np.ndarray:
    """A gray video rising by ``steps_first`` per frame up to frame ``switch``, then by ``steps_after``."""
    levels = np.cumsum([0] + [steps_first if t < switch else steps_after for t in range(1, frames)])
    return np.broadcast_to(levels.astype(np.uint8)[:, None, None, None], (frames, 8, 8, 3)).copy()


def test_eval_flicker_through_the_cli_generated_side_only(tmp_path, capsys):
    import json

    from latte_bench.cli import main
    from latte_bench.data.video import write_npz

    videos = np.stack([_stepped(0, 0), _stepped(2, 10), _stepped(1, 1)])
    write_npz(tmp_path / "fake.npz", videos)

    def run(*extra):
        code = main(["eval", "--fake", str(tmp_path / "fake.npz"), "--metrics", "flicker", "--num-clips", "3",
                     "--no-progress", "--json", str(tmp_path / "r.json"), *extra])
        assert code == 0, capsys.readouterr().err
        return json.loads((tmp_path / "r.json").read_text())

    record = run()
    # 15 pairs: video 1 rises by 2 over pairs 1..7, by 10 over pairs 8..15
    want = np.mean([1.0, (255 - (7 * 2 + 8 * 10) / 15) / 255, 254 / 255])
    assert record["metrics"]["flicker"] == pytest.approx(want, abs=1e-7)
    result = record["results"]["flicker"]
    assert result["fake_count"] == 3 and result["real_count"] is None and record["real"] is None
    assert result["provenance"]["frames_per_video"] == 16 and result["provenance"]["frame_pairs_per_video"] == 15
    assert "VBench temporal flickering" in result["provenance"]["protocol"]
    assert "no static filter" in result["provenance"]["protocol"]
    assert result["provenance"]["min_video_score"] == pytest.approx((255 - 94 / 15) / 255, abs=1e-6)
    assert record["detectors"] == {} and record["nonstandard"] == []  # no clip count to depart from
    assert "flicker" in capsys.readouterr().out

    record = run("--num-frames", "8")  # the first 8 frames: video 1 rises by 2 throughout
    assert record["results"]["flicker"]["provenance"]["frames_per_video"] == 8
    assert record["metrics"]["flicker"] == pytest.approx(np.mean([1.0, 253 / 255, 254 / 255]), abs=1e-7)


def test_eval_flicker_needs_two_frames(tmp_path, capsys):
    from latte_bench.cli import main
    from latte_bench.data.video import write_npz

    write_npz(tmp_path / "fake.npz", np.zeros((2, 4, 8, 8, 3), np.uint8))
    code = main(["eval", "--fake", str(tmp_path / "fake.npz"), "--metrics", "flicker", "--num-clips", "2",
                 "--num-frames", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--num-frames 1" in err and "2 or more" in err
