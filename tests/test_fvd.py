"""FVD pipeline: resize conventions, the extraction loop, and end-to-end FVD with the real I3D."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from latte_bench.data.clips import Clip, sample_fake_clips
from latte_bench.data.video import open_videos, write_frames, write_npz
from latte_bench.errors import UserError
from latte_bench.metrics.extract import Head, run_pass
from latte_bench.metrics.sources import FileSource
from latte_bench.metrics.resize import preprocess_clips, resize
from latte_bench.metrics.stats import FeatureStats

# ----------------------------------------------------------------------------------------- resize


def _grid_tf_legacy(n_in, n_out):
    """TF1 resize_bilinear(align_corners=False, half_pixel_centers=False): src = dst * in/out."""
    src = np.arange(n_out) * (n_in / n_out)
    lo = np.floor(src).astype(int)
    return lo, np.minimum(lo + 1, n_in - 1), src - lo


def _grid_half_pixel(n_in, n_out):
    """PyTorch bilinear, align_corners=False: src = (dst + 0.5) * in/out - 0.5, clamped at 0."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.floor(src).astype(int)
    return lo, np.minimum(lo + 1, n_in - 1), src - lo


def _reference_resize(img, out_h, out_w, grid):
    """Per-output-pixel bilinear sampling of a (C,H,W) float64 image on the given grid."""
    y0, y1, fy = grid(img.shape[1], out_h)
    x0, x1, fx = grid(img.shape[2], out_w)
    out = np.zeros((img.shape[0], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            top = img[:, y0[i], x0[j]] * (1 - fx[j]) + img[:, y0[i], x1[j]] * fx[j]
            bottom = img[:, y1[i], x0[j]] * (1 - fx[j]) + img[:, y1[i], x1[j]] * fx[j]
            out[:, i, j] = top * (1 - fy[i]) + bottom * fy[i]
    return out


@pytest.mark.parametrize("mode, grid", [("tf", _grid_tf_legacy), ("pytorch", _grid_half_pixel)])
@pytest.mark.parametrize("in_hw, out_hw", [((7, 9), (5, 13)), ((13, 11), (29, 4)), ((6, 6), (6, 15))])
def test_resize_matches_independent_sampling_grid(mode, grid, in_hw, out_hw):
    x = torch.rand(2, 3, *in_hw, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = resize(x, out_hw, mode)
    assert out.shape == (2, 3, *out_hw)
    for b in range(2):
        ref = _reference_resize(x[b].double().numpy(), *out_hw, grid)
        np.testing.assert_allclose(out[b].numpy(), ref, atol=2e-6)


def test_tf_and_pytorch_grids_differ_and_tf_is_top_left_aligned():
    x = torch.arange(4.0).reshape(1, 1, 1, 4).repeat(1, 1, 2, 1)
    tf = resize(x, (2, 8), "tf")[0, 0, 0]
    pt = resize(x, (2, 8), "pytorch")[0, 0, 0]
    np.testing.assert_allclose(tf.numpy(), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])  # clamped at the right border
    np.testing.assert_allclose(pt.numpy(), [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])


def test_resize_5d_is_per_frame():
    x = torch.rand(2, 3, 4, 10, 12)
    out = resize(x, 7, "tf")
    assert out.shape == (2, 3, 4, 7, 7)
    torch.testing.assert_close(out[:, :, 2], resize(x[:, :, 2], 7, "tf"), rtol=0, atol=0)


def test_preprocess_clips_range_and_layout():
    clips = torch.zeros(2, 16, 8, 8, 3, dtype=torch.uint8)
    clips[1] = 255
    x = preprocess_clips(clips, size=224)
    assert x.shape == (2, 3, 16, 224, 224) and x.dtype == torch.float32
    # bilinear weights sum to 1 up to float32 rounding (the single-thread kernel is off by one ulp)
    torch.testing.assert_close(x[0], torch.full_like(x[0], -1), rtol=0, atol=2.5e-7)
    torch.testing.assert_close(x[1], torch.ones_like(x[1]), rtol=0, atol=2.5e-7)


# ------------------------------------------------------------------------------ extraction loop


def _linear_detector(seed=0):
    """A fixed random linear map of the mean frame (a test stand-in for the loop only)."""
    w = torch.randn(3 * 8 * 8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def detect(x):
        return (x.mean(dim=2).flatten(1).double() @ w).float()

    return detect


def _small_pre(x):
    return preprocess_clips(x, size=8)


def extract_stats(videos, clips, detector, pre, *, batch_size=8, block_size=256, skip_bad=False, num_workers=0):
    """One head over ``clips`` of ``videos`` through the shared pass; (stats, info)."""
    res = run_pass(FileSource(videos, {"kind": "test"}), clips, [Head("d", detector, pre, lambda c: c, len(clips))],
                   batch_size=batch_size, block_size=block_size, skip_bad=skip_bad, num_workers=num_workers)
    return res.stats["d"], {"clips": res.clips, "skipped": res.skipped, "resolution": res.resolution}


@pytest.fixture
def array_videos(tmp_path):
    v = np.random.default_rng(0).integers(0, 256, (11, 5, 12, 12, 3), dtype=np.uint8)
    write_npz(tmp_path / "v.npz", v)
    return open_videos(tmp_path / "v.npz")


def test_extraction_is_independent_of_batch_size(array_videos):
    clips, _ = sample_fake_clips(array_videos, num_clips=11, num_frames=4)
    results = [
        extract_stats(array_videos, clips, _linear_detector(), _small_pre, batch_size=b, block_size=4)[0]
        for b in (1, 2, 3, 11)
    ]
    for r in results[1:]:
        assert r.n == 11
        np.testing.assert_array_equal(r.s1, results[0].s1)
        np.testing.assert_array_equal(r.s2, results[0].s2)
    # and equal (up to float64 summation order) to the statistics of all features at once
    x = torch.from_numpy(np.stack([array_videos[c.video].read(c.indices) for c in clips]))
    direct = FeatureStats()
    direct.append(_linear_detector()(_small_pre(x)))
    np.testing.assert_allclose(results[0].s2, direct.s2, rtol=1e-12)


def test_extraction_with_a_worker_process(array_videos):
    clips, _ = sample_fake_clips(array_videos, num_clips=6, num_frames=4)
    a, info = extract_stats(array_videos, clips, _linear_detector(), _small_pre, batch_size=2, num_workers=1)
    b, _ = extract_stats(array_videos, clips, _linear_detector(), _small_pre, batch_size=4)
    np.testing.assert_array_equal(a.s2, b.s2)
    assert info["resolution"] == (12, 12) and info["clips"] == 6


def test_bad_clip_named_or_skipped(tmp_path):
    v = np.random.default_rng(1).integers(0, 256, (3, 4, 8, 8, 3), dtype=np.uint8)
    for i, video in enumerate(v):
        write_frames(tmp_path / f"v{i}", video)
    (tmp_path / "v1" / "000002.png").write_bytes(b"broken")
    src = open_videos(tmp_path)
    clips = [Clip(i, src[i].name, (0, 1, 2, 3)) for i in range(3)]
    with pytest.raises(UserError, match="000002.png"):
        extract_stats(src, clips, _linear_detector(), _small_pre)
    stats, info = extract_stats(src, clips, _linear_detector(), _small_pre, skip_bad=True)
    assert stats.n == 2 and info["skipped"] == ["v1"]


def test_mixed_resolutions_across_videos(tmp_path):
    write_frames(tmp_path / "a", np.zeros((4, 8, 8, 3), np.uint8))
    write_frames(tmp_path / "b", np.zeros((4, 16, 8, 3), np.uint8))
    src = open_videos(tmp_path)
    clips = [Clip(i, src[i].name, (0, 1, 2, 3)) for i in range(2)]
    for batch in (1, 2):  # across batches and inside one batch
        with pytest.raises(UserError, match="mixed resolutions"):
            extract_stats(src, clips, _linear_detector(), _small_pre, batch_size=batch)


# ------------------------------------------------------------------- end to end, real TF-Hub I3D


@pytest.mark.slow
def test_black_versus_white_matches_tf_reference_example(tmp_path):
    """google-research FVD example: 16 black vs 16 white 15-frame 64x64 clips gives ~131.

    All clips of a set are identical, so the covariances are 0 and the value is |dmu|^2
    whatever the number of clips: two per set suffice.
    """
    from latte_bench.metrics.fvd import compute_fvd

    write_npz(tmp_path / "black.npz", np.zeros((2, 15, 64, 64, 3), np.uint8))
    write_npz(tmp_path / "white.npz", np.full((2, 15, 64, 64, 3), 255, np.uint8))
    result = compute_fvd(tmp_path / "black.npz", tmp_path / "white.npz", num_clips=2, num_frames=15, cache=False,
                         progress=False)
    assert result.fvd == pytest.approx(131, rel=0.03)
    assert result.record["counts"] == {"real_clips": 2, "fake_clips": 2}


def _smooth_videos(n, t, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32]
    videos = np.zeros((n, t, 32, 32, 3), np.uint8)
    for i in range(n):
        fx, fy, speed = rng.uniform(0.05, 0.4, 3)
        for k in range(t):
            base = 127 + 120 * np.sin(fx * x + fy * y + speed * k + i)
            videos[i, k] = np.stack([base, base[::-1], 255 - base], -1).astype(np.uint8)
    return videos


@pytest.mark.slow
def test_fvd_deterministic_batch_invariant_and_cached(tmp_path):
    """Real I3D on 2+2 9-frame clips (the shortest valid clip, to keep the test short)."""
    from latte_bench.metrics.fvd import compute_fvd

    write_npz(tmp_path / "real.npz", _smooth_videos(3, 12, seed=0))
    write_npz(tmp_path / "fake.npz", _smooth_videos(2, 9, seed=1))
    kw = dict(num_clips=2, num_frames=9, real_stride=1, seed=3, cache_dir=tmp_path / "cache")
    first = compute_fvd(tmp_path / "real.npz", tmp_path / "fake.npz", batch_size=2, **kw)
    assert math.isfinite(first.fvd) and first.fvd > 0
    assert first.provenance["real_stats_cache"]["hit"] is False
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    # real statistics from the cache; generated clips recomputed one per batch: the same number, bitwise
    cached = compute_fvd(tmp_path / "real.npz", tmp_path / "fake.npz", batch_size=1, **kw)
    assert cached.provenance["real_stats_cache"]["hit"] is True
    assert cached.fvd == first.fvd

    record = json.loads(json.dumps(first.record))
    assert record["schema"] == "latte-bench/eval-record/2" and record["metrics"] == {"fvd": first.fvd}
    for key in ("seed", "real_stride", "fake_stride", "resize", "covariance", "num_frames", "num_clips", "torch_threads"):
        assert key in record["protocol"]
    assert record["detectors"]["i3d"] and record["counts"] == {"real_clips": 2, "fake_clips": 2}
    assert record["protocol"]["covariance"] == "biased" and record["protocol"]["resize"] == "pytorch"
    assert record["nonstandard"] == ["2 clips", "9 frames"] and "environment" in record and "wall_time_s" in record

    # the unbiased covariance is the same features with another normalisation
    from latte_bench.metrics.stats import frechet_distance_from_stats

    unbiased = frechet_distance_from_stats(*first.stats["i3d"], unbiased=True)
    assert unbiased != pytest.approx(first.fvd, rel=1e-6)


def test_protocol_errors_before_any_detector_work(tmp_path):
    from latte_bench.metrics.fvd import compute_fvd

    write_npz(tmp_path / "v.npz", np.zeros((2, 16, 8, 8, 3), np.uint8))
    write_npz(tmp_path / "short.npz", np.zeros((2, 12, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="at least 9"):
        compute_fvd(tmp_path / "v.npz", tmp_path / "v.npz", num_frames=8)
    with pytest.raises(UserError, match=r"short.npz\[0\].*12 frames"):
        compute_fvd(tmp_path / "v.npz", tmp_path / "short.npz", num_clips=2, cache=False)
    with pytest.raises(UserError, match="covariance"):
        compute_fvd(tmp_path / "v.npz", tmp_path / "v.npz", covariance="sample")
    with pytest.raises(UserError, match="48 frames"):
        compute_fvd(tmp_path / "v.npz", tmp_path / "v.npz", dataset="ucf101", num_clips=2, cache=False)


def test_progress_advances_per_batch_and_a_resumed_pass_says_so(array_videos, tmp_path, capsys):
    from tqdm import tqdm as std_tqdm

    clips, _ = sample_fake_clips(array_videos, num_clips=11, num_frames=4)
    base = _linear_detector()
    seen = []

    def detector(x):  # the bar's count when each batch reaches the detector
        seen.append(max(b.n for b in list(std_tqdm._instances)))
        return base(x)

    head = [Head("d", detector, _small_pre, lambda c: c, len(clips))]
    run_pass(FileSource(array_videos, {"kind": "test"}), clips, head, batch_size=4, block_size=256, work_dir=tmp_path / "w")
    assert seen == [0, 4, 8]  # one 11-clip block: the bar moves after every batch, not once per block
    assert "resuming" not in capsys.readouterr().err

    block_dir = tmp_path / "w2"
    run_pass(FileSource(array_videos, {"kind": "test"}), clips, head, batch_size=4, block_size=4, work_dir=block_dir)
    (block_dir / "block_00002.npz").unlink()  # keep the first two of three blocks
    capsys.readouterr()
    res = run_pass(FileSource(array_videos, {"kind": "test"}), clips, head, batch_size=4, block_size=4, work_dir=block_dir)
    assert res.resumed_blocks == 2 and res.clips == 11
    assert "resuming: 2 of 3 blocks done" in capsys.readouterr().err
