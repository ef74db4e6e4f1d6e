"""Small synthetic videos for the evaluation tests: smooth sine patterns that move frame to frame."""

from __future__ import annotations

import numpy as np


def waves(n: int, t: int, seed: int, size: int = 16) -> np.ndarray:
    """``n`` uint8 videos (n, t, size, size, 3): a sine pattern per video drifting 0.4 rad per frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    out = np.zeros((n, t, size, size, 3), np.uint8)
    for i in range(n):
        fx, fy = rng.uniform(0.1, 0.6, 2)
        for k in range(t):
            base = 127 + 120 * np.sin(fx * x + fy * y + 0.4 * k + i)
            out[i, k] = np.stack([base, base.T, 255 - base], -1).astype(np.uint8)
    return out
