"""CPU throughput and peak memory of I3D feature extraction: latte-bench versus cd-fvd.

Both networks get the same input, float (B, 3, 16, 224, 224) in [-1, 1] from torch.manual_seed(0),
and run under ``torch.inference_mode`` in eval mode. Each (implementation, batch size) runs in
its own subprocess so that its peak RSS is its own.

cd-fvd (PyPI ``cd-fvd``) is measured from a separate virtualenv, since its dependencies include
torchvision; only ``cdfvd.third_party.i3d.pytorch_i3d`` is imported (torch and numpy only). Its
loader downloads weights from GitHub, so its I3D is built with random weights: same
architecture, same work, so throughput compares fairly, but its outputs are not meaningful.

    python -m venv /tmp/cdfvd-venv --system-site-packages
    /tmp/cdfvd-venv/bin/python -m pip install --no-deps cd-fvd==0.1.1
    /tmp/cdfvd-venv/bin/python benchmarks/bench_i3d.py --batch-sizes 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

IMPLS = ("latte_bench", "cd_fvd")


def _build(impl: str):
    import torch

    if impl == "latte_bench":
        from latte_bench.metrics.i3d import load_i3d

        return load_i3d("cpu")
    from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d  # torch + numpy only

    torch.manual_seed(0)
    return InceptionI3d(400, in_channels=3).eval().requires_grad_(False)


def worker(impl: str, batch: int, iters: int, threads: int | None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = _build(impl)
    torch.manual_seed(0)
    x = torch.rand(batch, 3, 16, 224, 224) * 2 - 1
    walls, cpus = [], []
    with torch.inference_mode():
        out = model(x)  # warm-up (oneDNN primitive creation)
        assert out.shape == (batch, 400), out.shape
        for _ in range(iters):
            w, c = time.perf_counter(), time.process_time()
            model(x)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
    return {
        "impl": impl,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "clips_per_s": batch / min(walls),
        "clips_per_s_median": batch / sorted(walls)[len(walls) // 2],
        "cpu_s_per_clip": min(cpus) / batch,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _uptime() -> str:
    with open("/proc/loadavg") as f:
        return "load average " + " ".join(f.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--iters", type=int, default=3, help="timed forward passes per measurement (best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.iters, args.threads)))
        return 0

    print(f"# {_uptime()} (before); python {sys.executable}", flush=True)
    rows = []
    for batch in args.batch_sizes:
        for impl in IMPLS:  # interleaved, so both see similar machine load
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--batch", str(batch),
                   "--iters", str(args.iters)] + (["--threads", str(args.threads)] if args.threads else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"# {impl} batch {batch} failed: {tail[0]}", flush=True)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"# {impl:12s} B={batch}: {r['clips_per_s']:.3f} clips/s, {r['cpu_s_per_clip']:.2f} CPU s/clip, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    print(f"# {_uptime()} (after)\n")
    print("| batch | impl | clips/s (best) | clips/s (median) | CPU s / clip | peak RSS MiB | speed-up vs cd-fvd |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        base = next((b for b in rows if b["impl"] == "cd_fvd" and b["batch"] == r["batch"]), None)
        ratio = f"{r['clips_per_s'] / base['clips_per_s']:.2f}x" if base else "-"
        print(f"| {r['batch']} | {r['impl']} | {r['clips_per_s']:.3f} | {r['clips_per_s_median']:.3f} | "
              f"{r['cpu_s_per_clip']:.2f} | {r['peak_rss_mib']:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
