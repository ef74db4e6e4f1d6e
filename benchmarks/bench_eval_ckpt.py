"""Checkpoint evaluation in one command against the two-step ``sample`` to mp4, then ``eval``.

For each N: (a) ``latte-bench eval --dataset demo --ckpt RUN --num-clips N`` (sampling in memory,
uint8 straight into the I3D) and (b) ``latte-bench sample --format mp4`` followed by
``latte-bench eval --fake``, both with the same model, sampler, steps and thread count, real
statistics recomputed in both (``--no-cache``). Reports wall time, generated videos/s, the peak RSS
of the one-command run (flat in N: blocks of 256 clips, streamed statistics) and both FVDs (the mp4
round trip moves the number). Without ``--ckpt`` a tiny untrained demo model of 16-frame 16x16
videos is made first (speed does not depend on training).

    python benchmarks/bench_eval_ckpt.py --clips 8 16 32 --steps 10 --threads 1
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


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB of the child) of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.time() - start
    return wall, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, nargs="+", default=[8, 16, 32], help="N generated (and N real) clips per run")
    p.add_argument("--ckpt", default=None, help="checkpoint or run folder of a demo model (default: make a tiny one)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    exe = [sys.executable, "-m", "latte_bench.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = args.ckpt
        if ckpt is None:
            ckpt = str(tmp / "run")
            subprocess.run([*exe, "train", "demo", "--steps", "1", "--num-frames", "16", "--out", ckpt, "--no-progress",
                            "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL)
        common = ["--steps", str(args.steps), "--sampler", "ddim", "--threads", str(args.threads),
                  "--batch-size", str(args.batch_size)]
        print("| N | one command: wall s | videos/s | peak RSS MiB | FVD | sample mp4 + eval: wall s | videos/s | FVD (mp4) |")
        print("|---|---|---|---|---|---|---|---|")
        for n in args.clips:
            rec_a, rec_b, out = tmp / f"a{n}.json", tmp / f"b{n}.json", tmp / f"mp4_{n}"
            ev = ["eval", "--dataset", "demo", "--num-clips", str(n), "--metrics", "fvd", "--no-cache", "--no-progress"]
            wall_a, rss_a = run([*exe, *ev, "--ckpt", ckpt, *common, "--json", str(rec_a)])
            wall_s, _ = run([*exe, "sample", "--ckpt", ckpt, "--num-videos", str(n), "--out", str(out), "--format", "mp4",
                             "--no-progress", *common])
            wall_e, _ = run([*exe, *ev, "--fake", str(out), "--threads", str(args.threads),
                             "--batch-size", str(args.batch_size), "--json", str(rec_b)])
            fvd_a = json.loads(rec_a.read_text())["metrics"]["fvd"]
            fvd_b = json.loads(rec_b.read_text())["metrics"]["fvd"]
            wall_b = wall_s + wall_e
            print(f"| {n} | {wall_a:.1f} | {n / wall_a:.2f} | {rss_a:.0f} | {fvd_a:.1f} | {wall_b:.1f} | {n / wall_b:.2f} | "
                  f"{fvd_b:.1f} |", flush=True)


if __name__ == "__main__":
    main()
