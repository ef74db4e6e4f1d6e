"""Detector preprocessing: uint8 -> [-1, 1] and a spatial resize, in two conventions.

``pytorch`` (default; what StyleGAN-V's I3D does inside ``resize=True`` as far as can be told):
``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``, i.e. half-pixel
centres, ``src = (dst + 0.5) * in/out - 0.5``.

``tf``: TF1 legacy ``tf.image.resize_bilinear(align_corners=False, half_pixel_centers=False)``,
as used by google-research FVD and reproduced inside StyleGAN's Inception for FID:
``src = dst * in/out`` (top-left aligned), neighbours ``floor(src)`` and
``min(floor(src) + 1, in - 1)`` (clamped at the border), weights in float32, width first.

Both work on NCHW and NCTHW float tensors (frames of a clip are resized independently)
and on any output size (224 for I3D, 299 for Inception).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_MODES = ("pytorch", "tf")


def to_signed_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in 0..255) -> float32 ``x / 255 * 2 - 1`` in [-1, 1]."""
    return x.to(torch.float32) / 255.0 * 2.0 - 1.0


def resize(x: torch.Tensor, size: int | tuple[int, int], mode: str = "pytorch") -> torch.Tensor:
    """Resize float NCHW or NCTHW ``x`` spatially to ``size`` (H, W) with ``mode``."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if x.ndim == 5:  # N,C,T,H,W -> (N*T),C,H,W and back
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        out = resize(frames, (out_h, out_w), mode)
        return out.reshape(n, t, c, out_h, out_w).permute(0, 2, 1, 3, 4)
    if x.ndim != 4:
        raise ValueError(f"expected NCHW or NCTHW, got shape {tuple(x.shape)}")
    if tuple(x.shape[-2:]) == (out_h, out_w):
        return x
    if mode == "pytorch":
        return F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=False)
    x = _tf_legacy_axis(x, dim=3, out=out_w)
    return _tf_legacy_axis(x, dim=2, out=out_h)


def _tf_legacy_axis(x: torch.Tensor, dim: int, out: int) -> torch.Tensor:
    size_in = x.shape[dim]
    scale = np.float32(size_in) / np.float32(out)
    src = np.arange(out, dtype=np.float32) * scale
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = torch.from_numpy(src - lo.astype(np.float32)).to(x.device, x.dtype)
    shape = [1] * x.ndim
    shape[dim] = out
    a = x.index_select(dim, torch.from_numpy(lo).to(x.device))
    b = x.index_select(dim, torch.from_numpy(hi).to(x.device))
    return a + (b - a) * frac.reshape(shape)


def preprocess_clips(clips: torch.Tensor, size: int = 224, mode: str = "pytorch") -> torch.Tensor:
    """uint8 clips (B,T,H,W,3) -> float32 (B,3,T,size,size) in [-1, 1] (I3D's input)."""
    x = to_signed_unit(clips).permute(0, 4, 1, 2, 3)
    return resize(x, size, mode).contiguous()
