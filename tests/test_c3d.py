"""UCF101 C3D (video IS detector): TGAN2's npz layout through the real loader, against a reference
forward written with other primitives; the TorchScript path; missing-weights errors.

The real weights (conv3d_deepnetA_ucf.npz, mean2.npz, c3d_ucf101.pt) ship with no package, so the
weights here are synthetic narrow networks in TGAN2's exact key layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latte_bench.errors import UserError
from latte_bench.metrics.c3d import CONV_NAMES, load_c3d, load_tgan2_npz

WIDTHS = (3, 4, 4, 3, 4, 3, 4, 5)
FC, CLASSES = 6, 7


@pytest.fixture()
def tgan2_files(tmp_path):
    rng = np.random.RandomState(0)
    arrays, c_in = {}, 3
    for name, c_out in zip(CONV_NAMES, WIDTHS):
        arrays[f"{name}/W"] = (rng.randn(c_out, c_in, 3, 3, 3) * (1.0 / np.sqrt(27 * c_in))).astype(np.float32)
        arrays[f"{name}/b"] = (rng.randn(c_out) * 0.1).astype(np.float32)
        c_in = c_out
    for name, (o, i) in {"fc6": (FC, WIDTHS[-1] * 16), "fc7": (FC, FC), "fc8": (CLASSES, FC)}.items():
        arrays[f"{name}/W"] = (rng.randn(o, i) / np.sqrt(i)).astype(np.float32)
        arrays[f"{name}/b"] = (rng.randn(o) * 0.1).astype(np.float32)
    weights, mean = tmp_path / "conv3d_deepnetA_ucf.npz", tmp_path / "mean2.npz"
    np.savez(weights, **arrays)
    np.savez(mean, mean=rng.uniform(80, 120, (3, 16, 128, 128)).astype(np.float32))
    return weights, mean, arrays


def _resize_align_corners(n_in, n_out):
    src = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = np.minimum(np.floor(src).astype(int), n_in - 2)
    w = np.zeros((n_out, n_in))
    w[np.arange(n_out), lo] = 1 - (src - lo)
    w[np.arange(n_out), lo + 1] += src - lo
    return w


def _pool_cover_all(x, k):
    """chainer max_pooling_nd(cover_all=True): pad the end with -inf to a multiple of the kernel."""
    pads = []
    for size, kk in zip(reversed(x.shape[2:]), reversed(k)):
        pads += [0, (-size) % kk]
    return F.max_pool3d(F.pad(x, pads, value=-np.inf), k, k)


def _reference_probs(clips_u8, arrays, mean):
    x = clips_u8.astype(np.float64) / 127.5 - 1
    x = x[:, ::-1] * 128.0  # BGR, ×128
    wy = _resize_align_corners(x.shape[3], 112)
    wx = _resize_align_corners(x.shape[4], 112)
    x = np.einsum("yh,bcthw,xw->bctyx", wy, x, wx, optimize=True)
    x = x + (128.0 - mean[:, :, 8:120, 8:120])
    h = torch.from_numpy(x.astype(np.float32))
    for name in CONV_NAMES:
        h = F.relu(F.conv3d(h, torch.from_numpy(arrays[f"{name}/W"]), torch.from_numpy(arrays[f"{name}/b"]), padding=1))
        if name in ("conv1a",):
            h = _pool_cover_all(h, (1, 2, 2))
        elif name in ("conv2a", "conv3b", "conv4b", "conv5b"):
            h = _pool_cover_all(h, (2, 2, 2))
    h = h.reshape(h.shape[0], -1)
    for name in ("fc6", "fc7", "fc8"):
        h = h @ torch.from_numpy(arrays[f"{name}/W"]).T + torch.from_numpy(arrays[f"{name}/b"])
        h = F.relu(h) if name != "fc8" else h
    return torch.softmax(h.double(), 1).numpy()


def test_tgan2_npz_matches_reference_forward(tgan2_files):
    weights, mean_file, arrays = tgan2_files
    detector, info = load_c3d(weights, mean_file)
    assert info["format"] == "tgan2_npz" and len(info["sha256"]) == 64 and info["mean_file"] == "mean2.npz"
    clips = np.random.RandomState(1).randint(0, 256, (2, 3, 16, 40, 56)).astype(np.uint8)
    probs = detector(torch.from_numpy(clips)).numpy()
    assert probs.shape == (2, CLASSES)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    with np.load(mean_file) as f:
        mean = f["mean"].astype(np.float64)
    np.testing.assert_allclose(probs, _reference_probs(clips, arrays, mean), atol=2e-5)


def test_pool5_shape_is_1x4x4_for_16x112(tgan2_files):
    weights, mean_file, _ = tgan2_files
    net = load_tgan2_npz(weights, mean_file)
    assert net.fc6.in_features == WIDTHS[-1] * 1 * 4 * 4  # ceil-mode pools: 7 → 4 at pool5


def test_torchscript_file_is_run_as_is(tmp_path):
    class Fake(torch.nn.Module):  # stand-in for StyleGAN-V's c3d_ucf101.pt: uint8 in, probabilities out
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = x.float().mean(dim=(2, 3, 4))
            return torch.softmax(torch.cat([s, -s], 1), 1)

    path = tmp_path / "c3d_ucf101.pt"
    torch.jit.script(Fake()).save(str(path))
    detector, info = load_c3d(path)
    assert info["format"] == "stylegan_v_torchscript"
    clips = torch.randint(0, 256, (2, 3, 16, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(detector(clips), Fake()(clips))


def test_wrong_shapes_and_missing_files_are_user_errors(tgan2_files, tmp_path, monkeypatch):
    weights, mean_file, arrays = tgan2_files
    detector, _ = load_c3d(weights, mean_file)
    with pytest.raises(UserError, match="16-frame"):
        detector(torch.zeros(1, 3, 8, 32, 32, dtype=torch.uint8))
    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in arrays.items() if k != "fc7/b"})
    with pytest.raises(UserError, match="fc7/b"):
        load_tgan2_npz(broken, mean_file)
    with pytest.raises(UserError, match="not found"):
        load_c3d(tmp_path / "nope.npz")
    for var in ("LATTE_BENCH_TGAN2_C3D", "LATTE_BENCH_TGAN2_C3D_MEAN", "LATTE_BENCH_C3D_UCF101"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LATTE_BENCH_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(UserError, match="conv3d_deepnetA_ucf.npz"):
        load_c3d()
