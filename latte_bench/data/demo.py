"""``demo``: a procedural video set of moving shapes, so that train, sample and eval run offline.

Each video shows one large shape moving in a straight line and bouncing off the borders, over a
plain dark background. The class fixes the shape and its colour (a red square, a green disc, a
blue triangle, a yellow cross, ...); the size, start, heading and speed vary from video to video.
Everything is a function of ``(seed, video index)`` only, so a
set is identical on every machine and for every ``n`` (video ``i`` does not depend on how
many others were made).

- :func:`make_demo_videos` → uint8 (N, T, H, W, 3) and int64 labels (N,), in memory.
- :func:`write_demo_dataset` writes them to disk as frame folders ``ROOT/<video>/000000.png``
  (lossless), mp4 files or one ``.npz``, plus ``labels.json``; any of them reads back with
  :func:`latte_bench.data.video.open_videos` and :class:`latte_bench.data.datasets.ClipDataset`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latte_bench.fsutil import write_json
from latte_bench.data.video import write_frames, write_npz, write_video

SHAPES = ("square", "disc", "triangle", "cross", "ring", "diamond")

# The demo set: what the `demo` training preset trains on and `eval --dataset demo` scores against.
DEMO_SET = {"image_size": 16, "num_frames": 16, "frame_interval": 1, "num_classes": 4, "seed": 0}


def _render_shape(kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    """Soft (anti-aliased) coverage in [0, 1] of one shape centred at (cy, cx), half-size r (pixels)."""
    dy, dx = yy - cy, xx - cx
    if kind == "square":
        d = np.maximum(np.abs(dy), np.abs(dx)) - r
    elif kind == "disc":
        d = np.sqrt(dy**2 + dx**2) - r
    elif kind == "triangle":  # pointing up: below the two slanted edges and above the base
        d = np.maximum(dy - r * 0.8, np.maximum(-dy * 0.5 + np.abs(dx) * 0.87 - r * 0.55, -r))
    elif kind == "cross":
        arm = r * 0.35
        d = np.minimum(np.maximum(np.abs(dy) - r, np.abs(dx) - arm), np.maximum(np.abs(dx) - r, np.abs(dy) - arm))
    elif kind == "ring":
        d = np.abs(np.sqrt(dy**2 + dx**2) - r * 0.75) - r * 0.28
    elif kind == "diamond":
        d = (np.abs(dy) + np.abs(dx)) / 1.2 - r
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return np.clip(0.5 - d, 0.0, 1.0)


def _bounce(p0: float, v: float, t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Positions of a point moving at speed v from p0 and reflecting off [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return np.full_like(t, (lo + hi) / 2, dtype=np.float64)
    u = np.mod(p0 - lo + v * t, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


# The colour of each class's shape (class k: SHAPES[k] in PALETTE[k]), saturated and bright.
PALETTE = np.array([
    (1.00, 0.25, 0.25),  # red square
    (0.25, 1.00, 0.35),  # green disc
    (0.35, 0.55, 1.00),  # blue triangle
    (1.00, 0.90, 0.20),  # yellow cross
    (0.25, 0.95, 1.00),  # cyan ring
    (1.00, 0.35, 1.00),  # magenta diamond
])
BACKGROUND = np.array([0.08, 0.08, 0.12])  # the same dark blue-grey in every video


def make_demo_video(index: int, label: int, num_frames: int = 16, size: int = 32, seed: int = 0) -> np.ndarray:
    """Video ``index`` of the set with ``seed``: uint8 (T, H, W, 3) showing shape ``SHAPES[label]``.

    One large shape (half-size 0.28-0.32 of the frame) in its class colour ``PALETTE[label]`` moves
    in a straight line at 0.03-0.06 frame widths per frame, bouncing off the borders, over the
    plain dark ``BACKGROUND``.
    """
    rng = np.random.default_rng([seed, index])
    yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    background, color = BACKGROUND, PALETTE[label % len(PALETTE)]
    r = size * rng.uniform(0.28, 0.32)
    speed = size * rng.uniform(0.03, 0.06)
    heading = rng.uniform(0, 2 * np.pi)
    t = np.arange(num_frames, dtype=np.float64)
    cy = _bounce(rng.uniform(r, size - r), speed * np.sin(heading), t, r, size - r)
    cx = _bounce(rng.uniform(r, size - r), speed * np.cos(heading), t, r, size - r)
    kind = SHAPES[label % len(SHAPES)]
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for f in range(num_frames):
        alpha = _render_shape(kind, yy, xx, cy[f], cx[f], r)[..., None]
        img = background * (1 - alpha) + color * alpha
        frames[f] = np.clip(np.floor(img * 255 + 0.5), 0, 255).astype(np.uint8)
    return frames


def make_demo_videos(n: int, num_frames: int = 16, size: int = 32, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` demo videos: uint8 (N, T, H, W, 3) in [0, 255] and int64 labels (N,) in [0, classes).

    Labels cycle through the classes (video ``i`` has class ``i % classes``), so every
    class is equally represented; class ``k`` is the shape ``SHAPES[k]``.
    """
    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"classes must be in 1..{len(SHAPES)}")
    labels = np.arange(n, dtype=np.int64) % classes
    videos = np.empty((n, num_frames, size, size, 3), dtype=np.uint8)
    for i in range(n):
        videos[i] = make_demo_video(i, int(labels[i]), num_frames, size, seed)
    return videos, labels


def demo_video_name(index: int, label: int) -> str:
    return f"{index:06d}_{SHAPES[label]}"


def write_demo_dataset(
    root: str | os.PathLike,
    n: int = 64,
    num_frames: int = 16,
    size: int = 32,
    seed: int = 0,
    classes: int = 4,
    format: str = "frames",
) -> Path:
    """Write ``n`` demo videos under ``root`` and return ``root``.

    ``format``: ``"frames"`` (``ROOT/<video>/000000.png``, lossless; what ``eval`` reads
    directly), ``"mp4"`` (``ROOT/<video>.mp4``, lossy H.264) or ``"npz"`` (``ROOT/videos.npz``).
    ``ROOT/labels.json`` maps each video name to its class index and lists the class names.
    Existing videos are kept (re-running completes a partial set).
    """

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n, dtype=np.int64) % classes
    names = [demo_video_name(i, int(labels[i])) for i in range(n)]
    if format == "npz":
        videos, _ = make_demo_videos(n, num_frames, size, seed, classes)
        write_npz(root / "videos.npz", videos)
        width = len(str(n - 1))
        names = [f"videos.npz[{i:0{width}d}]" for i in range(n)]  # the names open_videos gives
    else:
        for i, name in enumerate(names):
            if format == "frames":
                out = root / name
                if out.is_dir() and len(list(out.glob("*.png"))) == num_frames:
                    continue
                write_frames(out, make_demo_video(i, int(labels[i]), num_frames, size, seed))
            elif format == "mp4":
                out = root / f"{name}.mp4"
                if out.exists():
                    continue
                write_video(out, make_demo_video(i, int(labels[i]), num_frames, size, seed))
                names[i] = f"{name}.mp4"
            else:
                raise ValueError(f"format must be frames, mp4 or npz, not {format!r}")
        if format == "mp4":
            names = [f"{demo_video_name(i, int(labels[i]))}.mp4" for i in range(n)]
    write_json(
        root / "labels.json",
        {
            "dataset": "demo",
            "seed": seed,
            "num_frames": num_frames,
            "size": size,
            "classes": list(SHAPES[:classes]),
            "labels": {name: int(lab) for name, lab in zip(names, labels)},
        },
    )
    return root
