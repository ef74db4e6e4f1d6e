"""Video decoding speed: latte-bench's PyAV reader against decord, on the clips FVD reads.

Writes three small test sets into a temporary folder, then times, per backend, the work the
evaluation does per video: open + frame count (listing), then open again and read one clip.
The best of ``--repeat`` passes is reported, backends interleaved; "equal" says whether
the frames equal PyAV's bit for bit.

- ``ucf``: UCF101-like ``.avi`` (MPEG-4 part 2 with B-frames, 320x240, 25 fps, 180 frames,
  GOP 12); a real clip is 16 frames at stride 3 from a seeded random start (``--dataset ucf101``).
- ``long``: longer real videos (H.264, 480x360, 300 frames, GOP 25), the same clip rule.
- ``gen256`` / ``gen64``: H.264 ``.mp4`` of 16 frames at 256² / 64² (sampled videos, written by
  :func:`latte_bench.data.video.write_video`); a generated clip is frames 0..15.

decord (0.6, optional) is timed only when installed; it cannot open H.264 at some widths
(16 and 48 px fail), so widths here are ones it reads. Both use one decoding thread.

    python benchmarks/bench_decode.py --videos 8 --repeat 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    fx, fy, speed = rng.uniform(0.02, 0.3, 3)
    return np.stack([np.stack([127 + 120 * np.sin(fx * x + fy * y + speed * k + c) for c in range(3)], -1)
                     for k in range(t)]).astype(np.uint8)


def _write_avi(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "mpeg4", gop: int = 12) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.max_b_frames = 2
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))


def make_sets(root: Path, n: int) -> dict[str, tuple[list[Path], int, int]]:
    """{name: (files, clip stride, frames per file)}."""
    from latte_bench.data.video import write_video

    sets = {}
    ucf = [root / "ucf" / f"v_{i:03d}.avi" for i in range(n)]
    for i, p in enumerate(ucf):
        p.parent.mkdir(parents=True, exist_ok=True)
        _write_avi(p, _frames(180, 240, 320, i))
    sets["ucf"] = (ucf, 3, 180)
    long = [root / "long" / f"{i:03d}.mp4" for i in range(n)]
    for i, p in enumerate(long):
        p.parent.mkdir(parents=True, exist_ok=True)
        _write_avi(p, _frames(300, 360, 480, 50 + i), codec="libx264", gop=25)
    sets["long"] = (long, 3, 300)
    for size in (256, 64):
        files = [root / f"gen{size}" / f"{i:06d}.mp4" for i in range(n)]
        for i, p in enumerate(files):
            write_video(p, _frames(16, size, size, 100 + i))
        sets[f"gen{size}"] = (files, 1, 16)
    return sets


def pyav_read(path: Path, indices: list[int]) -> np.ndarray:
    from latte_bench.data.video import _VideoFileReader

    reader = _VideoFileReader(str(path))
    reader.num_frames()
    return reader(indices)


def decord_read(path: Path, indices: list[int]) -> np.ndarray:
    import decord

    len(decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1))  # listing, as open_videos did
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    return vr.get_batch(indices).asnumpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=8, help="files per set (default 8)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per backend; the best is reported (default 3)")
    args = ap.parse_args()
    backends = {"pyav": pyav_read}
    try:
        import decord  # noqa: F401

        backends["decord"] = decord_read
    except ImportError:
        print("decord not installed: timing PyAV only")
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(Path(tmp), args.videos)
        rng = np.random.default_rng(0)
        print(f"{'set':8s} {'backend':8s} {'ms/clip':>8s}  equal")
        for name, (files, stride, length) in sets.items():
            span = 15 * stride + 1
            clips = [[int(s) + k * stride for k in range(16)] for s in rng.integers(0, length - span + 1, len(files))]
            results, best = {}, {b: float("inf") for b in backends}
            for _ in range(args.repeat):  # backends interleaved, so load changes hit both alike
                for backend, read in backends.items():
                    t0 = time.perf_counter()
                    results[backend] = [read(p, idx) for p, idx in zip(files, clips)]
                    best[backend] = min(best[backend], time.perf_counter() - t0)
            for backend in backends:
                same = all(np.array_equal(a, b) for a, b in zip(results[backend], results["pyav"]))
                print(f"{name:8s} {backend:8s} {1000 * best[backend] / len(files):8.1f}  {same}")


if __name__ == "__main__":
    main()
