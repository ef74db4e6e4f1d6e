"""The UCF101 C3D classifier used for the video Inception Score (StyleGAN-V ``isv2048_ucf``, TGAN2).

Reference: TGAN2's chainer ``C3DVersion1UCF101`` (C3D v1.0 Sports-1M fine-tuned on UCF101, caffe
``c3d_ucf101_finetune_whole_iter_20000`` converted to ``conv3d_deepnetA_ucf.npz``) together with the
mean clip ``mean2.npz``. StyleGAN-V ships a TorchScript port of the same network (``c3d_ucf101.pt``).
No package ships either file; see :data:`HOW_TO_GET`.

Forward pass of :class:`C3D` (input ``x``: float ``[B, 3, 16, H, W]``, RGB, range [-1, 1]):

1. ``pre``: RGB → BGR and ×128 (TGAN2 does it with a fixed 1×1×1 conv);
2. per-frame bilinear resize to 112×112 with ``align_corners=True`` (chainer 6 ``F.resize_images``);
3. add ``128 − mean2[:, :, 8:120, 8:120]`` (mean2 is ``[3, 16, 128, 128]`` BGR, centre-cropped to 112),
   so the network sees ≈ pixel(0..256) − mean;
4. conv1a 64 → pool1 (1,2,2) → conv2a 128 → pool2 → conv3a/b 256 → pool3 → conv4a/b 512 → pool4 →
   conv5a/b 512 → pool5; 3×3×3 convs (pad 1, bias, ReLU); max pools with stride = kernel and chainer's
   ``cover_all=True`` (= ``ceil_mode=True``), so for T=16, 112² the pool5 output is 512×1×4×4;
5. flatten (C, T, H, W) 8192 → fc6 4096 → ReLU → fc7 4096 → ReLU → fc8 101 (dropout is off).

:func:`load_c3d` returns a :class:`C3DProbabilities` callable mapping uint8 clips to softmax
probabilities ``[B, 101]``, the detector contract of StyleGAN-V's TorchScript file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latte_bench.errors import UserError
from latte_bench.fsutil import sha256_file
from latte_bench.metrics import weights as registry
from latte_bench.metrics.detector import Detector, Loaded

NUM_FRAMES = 16
NUM_CLASSES = 101
CROP = 112
HOW_TO_GET = (
    "get TGAN2's conv3d_deepnetA_ucf.npz and mean2.npz from "
    "https://github.com/rezoo/tgan2/releases/download/v1.0/ (or StyleGAN-V's c3d_ucf101.pt from "
    "https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1) and install them with "
    "`latte-bench weights fetch tgan2_c3d --from FILE` (and tgan2_c3d_mean / c3d_ucf101), or set "
    "LATTE_BENCH_TGAN2_C3D and LATTE_BENCH_TGAN2_C3D_MEAN (or LATTE_BENCH_C3D_UCF101) to the files"
)
CONV_NAMES = ("conv1a", "conv2a", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")
CONV_WIDTHS = (64, 128, 256, 256, 512, 512, 512, 512)  # the UCF101 C3D's output channels
FC_WIDTH = 4096
POOL_AFTER = {"conv1a": (1, 2, 2), "conv2a": 2, "conv3b": 2, "conv4b": 2, "conv5b": 2}


def resize_frames_align_corners(x: torch.Tensor, size: int = CROP) -> torch.Tensor:
    """Bilinear resize of every frame of ``[B, C, T, H, W]`` to ``size×size``, ``align_corners=True``."""
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=True)
    return frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)


class C3D(nn.Module):
    """TGAN2's UCF101 C3D: ``[B, 3, 16, H, W]`` RGB in [-1, 1] → fc8 logits ``[B, num_classes]``.

    ``mean``: the ``mean2.npz`` clip, ``[3, 16, 128, 128]`` in BGR, pixel units (0..255).
    ``widths``/``fc_width``: channel counts (the real network's by default; the loader reads them
    from the weight file, which lets tests use narrow synthetic weights).
    """

    def __init__(
        self, mean: torch.Tensor, num_classes: int = NUM_CLASSES, widths: tuple = CONV_WIDTHS, fc_width: int = FC_WIDTH
    ):
        super().__init__()
        if tuple(mean.shape) != (3, NUM_FRAMES, 128, 128):
            raise UserError(f"C3D mean clip must be [3, 16, 128, 128], got {list(mean.shape)}")
        off = (128 - CROP) // 2
        self.register_buffer("input_bias", 128.0 - mean[:, :, off : off + CROP, off : off + CROP].to(torch.float32))
        for name, c_in, c_out in zip(CONV_NAMES, (3,) + tuple(widths[:-1]), widths):
            self.add_module(name, nn.Conv3d(c_in, c_out, 3, 1, 1))
        self.fc6 = nn.Linear(widths[-1] * 1 * 4 * 4, fc_width)  # pool5 output is C×1×4×4 for 16×112×112
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.fc8 = nn.Linear(fc_width, num_classes)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3 or x.shape[2] != NUM_FRAMES:
            raise UserError(f"C3D expects clips [B, 3, 16, H, W], got {list(x.shape)}")
        x = x.flip(1) * 128.0  # RGB → BGR, [-1, 1] → [-128, 128]
        x = resize_frames_align_corners(x) + self.input_bias
        for name in CONV_NAMES:
            x = F.relu(getattr(self, name)(x))
            if name in POOL_AFTER:
                k = POOL_AFTER[name]
                x = F.max_pool3d(x, k, k, ceil_mode=True)
        x = F.relu(self.fc6(x.flatten(1)))
        x = F.relu(self.fc7(x))
        return self.fc8(x)


def load_tgan2_npz(weights_npz: str | os.PathLike, mean_npz: str | os.PathLike) -> C3D:
    """Build :class:`C3D` from TGAN2's chainer files (read with ``allow_pickle=False``).

    ``weights_npz`` holds ``<layer>/W`` and ``<layer>/b`` for conv1a … conv5b (W ``[out, in, 3, 3, 3]``)
    and fc6 … fc8 (W ``[out, in]``), chainer's ``save_npz`` layout (already PyTorch's); ``mean_npz``
    holds ``mean`` ``[3, 16, 128, 128]``. Layer widths are read from the arrays.
    """
    for p in (weights_npz, mean_npz):
        if not Path(p).is_file():
            raise UserError(f"{p}: C3D file not found; {HOW_TO_GET}")
    try:
        with np.load(mean_npz, allow_pickle=False) as f:
            mean = torch.from_numpy(np.asarray(f["mean"], np.float32))
        with np.load(weights_npz, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k], np.float32) for k in f.files}
    except (KeyError, ValueError, OSError) as e:
        raise UserError(f"{weights_npz} / {mean_npz}: not TGAN2 C3D npz files ({e}); {HOW_TO_GET}") from None
    missing = [f"{n}/{p}" for n in CONV_NAMES + ("fc6", "fc7", "fc8") for p in "Wb" if f"{n}/{p}" not in arrays]
    if missing:
        raise UserError(f"{weights_npz}: missing array {missing[0]!r}; not TGAN2's conv3d_deepnetA_ucf.npz")
    widths = tuple(arrays[f"{n}/W"].shape[0] for n in CONV_NAMES)
    net = C3D(mean, num_classes=arrays["fc8/W"].shape[0], widths=widths, fc_width=arrays["fc7/W"].shape[0])
    state = {}
    for name in CONV_NAMES + ("fc6", "fc7", "fc8"):
        for src, dst in (("W", "weight"), ("b", "bias")):
            state[f"{name}.{dst}"] = torch.from_numpy(arrays[f"{name}/{src}"])
    state["input_bias"] = net.input_bias
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"{weights_npz}: array shapes do not match the UCF101 C3D ({str(e).splitlines()[-1].strip()})") from None
    return net


class C3DProbabilities(nn.Module):
    """uint8 clips ``[B, 3, 16, H, W]`` (RGB, 0..255) → softmax probabilities ``[B, 101]`` (float32).

    Wraps either our :class:`C3D` (input mapped with ``u/127.5 − 1``) or StyleGAN-V's TorchScript
    ``c3d_ucf101.pt``, which takes the uint8 clip itself and already returns probabilities.
    """

    def __init__(self, model: nn.Module | Callable, torchscript: bool = False):
        super().__init__()
        self.model, self.torchscript = model, torchscript

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.ndim != 5 or clips.shape[1] != 3 or clips.shape[2] != NUM_FRAMES:
            raise UserError(f"the C3D Inception Score needs 16-frame RGB clips [B, 3, 16, H, W], got {list(clips.shape)}")
        if self.torchscript:
            return self.model(clips.to(torch.uint8)).to(torch.float32)
        x = clips.to(torch.float32) / 127.5 - 1.0
        return torch.softmax(self.model(x), dim=1)


def _find_default() -> tuple[Path, Path | None] | None:
    """TGAN2's npz pair, else StyleGAN-V's TorchScript file, from the weights registry (env var or cache)."""
    try:
        return registry.resolve("tgan2_c3d"), registry.resolve("tgan2_c3d_mean")
    except UserError:
        pass
    try:
        return registry.resolve("c3d_ucf101"), None
    except UserError:
        return None


def load_c3d(
    weights: str | os.PathLike | None = None, mean: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[C3DProbabilities, dict]:
    """The IS detector and its provenance ``{"file", "sha256", "format"}``.

    ``weights``: TGAN2's ``conv3d_deepnetA_ucf.npz`` (``mean`` defaults to ``mean2.npz`` beside it) or
    StyleGAN-V's TorchScript ``c3d_ucf101.pt``; None asks the weights registry for ``tgan2_c3d`` +
    ``tgan2_c3d_mean`` (``$LATTE_BENCH_TGAN2_C3D`` / ``$LATTE_BENCH_TGAN2_C3D_MEAN`` or the cache), then for
    ``c3d_ucf101`` (``$LATTE_BENCH_C3D_UCF101`` or the cache). Raises :class:`UserError` saying how to
    get the files when none is found.
    """
    if weights is None:
        found = _find_default()
        if found is None:
            raise UserError(f"no UCF101 C3D weights for the Inception Score; {HOW_TO_GET}")
        weights, default_mean = found
        mean = mean or default_mean
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: C3D weights not found; {HOW_TO_GET}")
    info = {"file": weights.name, "sha256": sha256_file(weights)}
    if weights.suffix == ".npz":
        mean = Path(mean) if mean is not None else weights.with_name("mean2.npz")
        info.update(format="tgan2_npz", mean_file=mean.name, mean_sha256=sha256_file(mean) if mean.is_file() else None)
        return C3DProbabilities(load_tgan2_npz(weights, mean).to(device)), info
    # StyleGAN-V's file is TorchScript (restricted unpickler: tensors and TorchScript classes only),
    # run as-is after hashing: its internal uint8 mapping and resize are part of what it reproduces.
    try:
        module = torch.jit.load(str(weights), map_location=device).eval()
    except RuntimeError as e:
        raise UserError(f"{weights}: not a TorchScript file ({str(e).splitlines()[0]}); {HOW_TO_GET}") from None
    info.update(format="stylegan_v_torchscript")
    return C3DProbabilities(module, torchscript=True), info


def clip_preprocess(clips: torch.Tensor) -> torch.Tensor:
    """uint8 clips ``(B, T, H, W, 3)`` → ``(B, 3, T, H, W)`` uint8, the C3D detector's layout."""
    return clips.permute(0, 4, 1, 2, 3).contiguous()


class UCF101C3D(Detector):
    """The Inception Score's detector: the first 16 frames of a clip -> 101 class probabilities (no real side)."""

    name, unit, min_frames = "c3d", "clip", NUM_FRAMES
    too_short = f"the Inception Score's C3D reads {NUM_FRAMES} frames per clip"
    keep_features = True

    def load(self, device, run) -> Loaded:
        net, info = load_c3d(run.c3d_weights, run.c3d_mean, device)
        return Loaded(self, net, info.get("sha256"), info)

    def items(self, clips: torch.Tensor) -> torch.Tensor:
        return clips[:, :NUM_FRAMES]

    def preprocess(self, items: torch.Tensor, proto) -> torch.Tensor:
        return clip_preprocess(items)


DETECTOR = UCF101C3D()
