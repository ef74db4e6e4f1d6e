"""FVD evaluation throughput (clips/s) and peak RSS as the clip count doubles (CPU or GPU).

Writes N real (24-frame) and N generated (16-frame) mp4 videos of SIZE x SIZE, then runs
the whole ``compute_fvd`` (PyAV decoding, resize to 224, TF-Hub I3D, float64 stats) for
each N in a fresh process and reports wall time, clips/s (real + generated clips) and the
process's peak RSS. Flat RSS across N is the point: the statistics are streamed.

    python benchmarks/bench_fvd.py --clips 32 64 128 --size 64 --device cpu
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_videos(folder: Path, n: int, frames: int, size: int, seed: int) -> None:
    from latte_bench.data.video import write_video

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(n):
        fx, fy, speed = rng.uniform(0.02, 0.3, 3)
        video = np.stack(
            [np.stack([127 + 120 * np.sin(fx * x + fy * y + speed * k + c) for c in range(3)], -1) for k in range(frames)]
        ).astype(np.uint8)
        write_video(folder / f"c{i % 8}" / f"v{i:05d}.mp4", video)


def child(args) -> None:
    from latte_bench.metrics import compute_fvd

    start = time.time()
    r = compute_fvd(args.data / "real", args.data / "fake", num_clips=args.n, real_stride=1, batch_size=args.batch_size,
                    device=args.device, cache=False, num_workers=args.workers, progress=False)
    wall = time.time() - start
    clips = r.record["counts"]["real_clips"] + r.record["counts"]["fake_clips"]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": args.n, "clips": clips, "wall_s": wall, "clips_per_s": clips / wall, "peak_rss_mb": rss_mb,
                      "fvd": r.fvd}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, nargs="+", default=[32, 64, 128], help="N real (and N generated) clips per run")
    p.add_argument("--size", type=int, default=64, help="source frame size (resized to 224 for the I3D)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        args.n = args.child
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        n = max(args.clips)
        make_videos(data / "real", n, 24, args.size, seed=0)
        make_videos(data / "fake", n, 16, args.size, seed=1)
        print("| real+generated clips | wall s | clips/s | peak RSS MiB | FVD |")
        print("|---|---|---|---|---|")
        for n in args.clips:
            cmd = [sys.executable, __file__, "--child", str(n), "--data", str(data), "--size", str(args.size),
                   "--batch-size", str(args.batch_size), "--num-workers", str(args.workers), "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            print(f"| {r['clips']} | {r['wall_s']:.1f} | {r['clips_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['fvd']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
