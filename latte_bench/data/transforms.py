"""Spatial transforms of the official Latte data pipeline, in plain torch (no torchvision).

Every function takes a clip as a tensor of shape (T, C, H, W) (frames first, channels
second). :func:`to_unit_float` turns uint8 [0, 255] into float [0, 1]; the resize and crop
functions keep the value range; :func:`normalize` maps [0, 1] to [-1, 1].

Per-dataset chains (:func:`dataset_transform`, named by each ``DatasetSpec.train_transform`` in
:mod:`latte_bench.data.registry`), matching ``datasets/video_transforms.py``:

========  ==========================================================  =====
dataset   spatial                                                     flip
========  ==========================================================  =====
ffs, ucf  bilinear resize so the short side is ``size``, centre crop  yes
sky       centre crop to the short side, bilinear resize to ``size``  no
taichi    none (frames must already be ``size``²)                     yes
========  ==========================================================  =====

Resizing is ``F.interpolate(mode="bilinear", align_corners=False)`` without
anti-aliasing, as in the official code. One deliberate difference: the official
``resize_scale`` passes a *scale factor*, which can floor the short side to ``size - 1``
through rounding (e.g. 240 px → 255.99 → 255) and then fails the crop; here the output
size is computed explicitly so the short side is exactly ``size``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from latte_bench.data.registry import get_dataset
from latte_bench.errors import UserError


def to_unit_float(clip: torch.Tensor) -> torch.Tensor:
    """uint8 (T, C, H, W) in [0, 255] → float32 in [0, 1]."""
    return clip.to(torch.float32) / 255.0


def normalize(clip: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1] (``Normalize(mean=0.5, std=0.5)``)."""
    return (clip - 0.5) / 0.5


def resize(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a float (T, C, H, W) clip, ``align_corners=False``, no antialias."""
    if clip.shape[-2:] == (height, width):
        return clip
    return F.interpolate(clip, size=(height, width), mode="bilinear", align_corners=False)


def center_crop(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre crop (offsets rounded as ``int(round((H - h) / 2))``, like the official code)."""
    h, w = clip.shape[-2:]
    if h < height or w < width:
        raise UserError(f"frame of {h}x{w} px is smaller than the {height}x{width} crop; use larger frames or a smaller --image-size")
    top = int(round((h - height) / 2.0))
    left = int(round((w - width) / 2.0))
    return clip[..., top : top + height, left : left + width]


def resize_short_side_center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    """FFS/UCF101 (``UCFCenterCropVideo``): short side → ``size`` (bilinear), then centre crop ``size``²."""
    h, w = clip.shape[-2:]
    scale = size / min(h, w)
    new_h = size if h <= w else int(round(h * scale))
    new_w = size if w <= h else int(round(w * scale))
    return center_crop(resize(clip, new_h, new_w), size, size)


def center_crop_resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Sky (``CenterCropResizeVideo``): centre crop to the short side, then bilinear resize to ``size``²."""
    short = min(clip.shape[-2:])
    return resize(center_crop(clip, short, short), size, size)


def check_size(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Taichi: no resize; the frames must already be ``size``²."""
    if tuple(clip.shape[-2:]) != (size, size):
        h, w = clip.shape[-2:]
        raise UserError(f"taichi frames are {h}x{w} px but {size}x{size} is expected (no resizing, as in Latte); pre-resize the frames")
    return clip


def hflip(clip: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of the whole clip."""
    return clip.flip(-1)


# The chains by name; which dataset uses which (and whether it flips) is its DatasetSpec's train_transform/train_flip
CHAINS = {
    "resize_short_side_center_crop": resize_short_side_center_crop,
    "center_crop_resize": center_crop_resize,
    "check_size": check_size,
}


def dataset_transform(dataset: str, size: int) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """The official chain for ``dataset``: ``fn(uint8 clip (T,C,H,W), flip_coin) -> float (T,C,size,size) in [-1, 1]``.

    ``flip_coin`` is the caller's random draw (so that randomness stays in one seeded
    place); it is ignored for datasets the official code never flips (sky).
    """
    spec = get_dataset(dataset)
    spatial, flips = CHAINS[spec.train_transform], spec.train_flip

    def apply(clip: torch.Tensor, flip_coin: bool) -> torch.Tensor:
        x = spatial(to_unit_float(clip), size)
        if flips and flip_coin:
            x = hflip(x)
        return normalize(x)

    apply.flips = flips  # type: ignore[attr-defined]
    return apply
