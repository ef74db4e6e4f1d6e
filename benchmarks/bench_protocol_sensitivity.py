"""How much does each single protocol change move FVD? One fixed pair of sets, one change at a time.

The pair: the demo set's real training clips and videos sampled from a demo-preset checkpoint
(``--ckpt``, or one trained here for ``--train-steps`` steps). Each row changes one setting of the
baseline (DDPM-250 samples, training split, stride 1, PyTorch resize, biased covariance, lossless
frames, ``--clips`` clips) and reports FVD, its difference from the baseline and the paired
bootstrap of :func:`latte_bench.metrics.compare.compare_features` (the real features are shared
where the change is on the generated side; where both sides change the test is unpaired).

    python benchmarks/bench_protocol_sensitivity.py --threads 1 --clips 64 --large-clips 128

Every I3D feature set is extracted once (about 1 s per clip on one CPU thread) through the
evaluation path; the table it prints is the one in docs/why-fvd-differs.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latte_bench.data.demo import DEMO_SET, make_demo_videos
from latte_bench.data.video import open_videos, write_video
from latte_bench.metrics import CheckpointSource, evaluate
from latte_bench.metrics.compare import compare_features
from latte_bench.metrics.stats import FeatureStats, frechet_distance


def i3d_features(videos: np.ndarray, num_clips: int, **protocol) -> np.ndarray:
    """I3D features (num_clips, 400) of ``videos`` as the real side of an evaluation (its clip sampling)."""
    r = evaluate(videos, videos[:2], metrics=("fvd", "kvd"), num_clips=num_clips, allow_fewer=True,
                 progress=False, cache=False, **protocol)
    return r.stats["i3d"][0].features


def fvd(real: np.ndarray, fake: np.ndarray, unbiased: bool = False) -> float:
    r, f = FeatureStats(), FeatureStats()
    r.append(real)
    f.append(fake)
    return frechet_distance(r.mean(), r.cov(unbiased), f.mean(), f.cov(unbiased))


def mp4_round_trip(videos: np.ndarray) -> np.ndarray:
    """``videos`` written as H.264 mp4 (Latte's imageio settings, quality 9) and decoded back."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, v in enumerate(videos):
            write_video(Path(tmp) / f"{i:05d}.mp4", v)
        src = open_videos(tmp)
        return np.stack([e.read(range(e.num_frames)) for e in src.entries])


def demo_checkpoint(steps: int, out: Path) -> Path:
    from latte_bench.training.presets import preset
    from latte_bench.training.trainer import train

    cfg = dataclasses.replace(preset("demo"), out=str(out), steps=steps, ckpt_every=steps)
    train(cfg, progress=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default=None, help="demo-preset checkpoint or run folder (default: train one)")
    ap.add_argument("--train-steps", type=int, default=1500, help="steps of the checkpoint trained without --ckpt")
    ap.add_argument("--clips", type=int, default=64, help="clips per side of the baseline")
    ap.add_argument("--large-clips", type=int, default=128, help="clips per side of the clip-count row (0: skip it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resamples", type=int, default=300)
    ap.add_argument("--json", default=None, help="write the table as JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    n, big = args.clips, max(args.large_clips, args.clips)
    work = Path(tempfile.mkdtemp(prefix="sensitivity_"))
    ckpt = args.ckpt or demo_checkpoint(args.train_steps, work / "run")

    size, frames = DEMO_SET["image_size"], 16
    # real: the training split (the demo set's first videos, as the registry's), long enough for stride 3
    real, _ = make_demo_videos(big, num_frames=3 * frames, size=size, seed=DEMO_SET["seed"],
                               classes=DEMO_SET["num_classes"])
    held, _ = make_demo_videos(n, num_frames=3 * frames, size=size, seed=DEMO_SET["seed"] + 1000,
                               classes=DEMO_SET["num_classes"])

    def sample(sampler: str, steps: int, count: int) -> np.ndarray:
        src = CheckpointSource(str(ckpt), sampler=sampler, steps=steps, seed=0).load("cpu")
        return np.concatenate([src.generate(list(range(s, min(s + 16, count))), "demo") for s in range(0, count, 16)])

    print(f"sampling ({time.time() - t0:.0f} s)", file=sys.stderr)
    fake = sample("ddpm", 250, big)
    fake_ddim = sample("ddim", 50, n)
    fake_mp4 = mp4_round_trip(fake[:n])

    feats = {}
    for name, videos, count, proto in (
        ("real", real, n, {}), ("fake", fake, n, {}),
        ("real tf", real, n, {"resize": "tf"}), ("fake tf", fake, n, {"resize": "tf"}),
        ("real stride 3", real, n, {"real_stride": 3}), ("real held-out", held, n, {}),
        ("fake mp4", fake_mp4, n, {}), ("fake ddim50", fake_ddim, n, {}),
        *((("real big", real, big, {}), ("fake big", fake, big, {})) if big > n else ()),
    ):
        print(f"I3D: {name} ({count} clips, {time.time() - t0:.0f} s)", file=sys.stderr)
        feats[name] = i3d_features(videos, count, num_frames=frames, seed=0, torch_threads=args.threads, **proto)

    base = fvd(feats["real"], feats["fake"])
    rows = [("baseline: DDPM-250, training split, stride 1, pytorch resize, biased covariance, lossless, "
             f"{n} clips", base, None)]

    def row(what, real_a, fake_b, paired: bool):
        cmp = compare_features(feats["real"], feats["fake"], fake_b, real_b=None if paired else real_a,
                               n_resamples=args.resamples)
        rows.append((what, cmp.value_b, cmp))

    row("resize tf (TF1 bilinear) instead of pytorch, both sides", feats["real tf"], feats["fake tf"], paired=False)
    unbiased = fvd(feats["real"], feats["fake"], unbiased=True)
    rows.append(("unbiased covariance instead of biased", unbiased, None))
    row("real stride 3 instead of 1", feats["real stride 3"], feats["fake"], paired=False)
    row("held-out real split instead of the training split", feats["real held-out"], feats["fake"], paired=False)
    row("mp4 round trip of the generated videos (H.264, quality 9)", None, feats["fake mp4"], paired=True)
    row("DDIM-50 instead of DDPM-250", None, feats["fake ddim50"], paired=True)
    if big > n:
        row(f"{big} clips instead of {n}", feats["real big"], feats["fake big"], paired=False)
    floor = fvd(feats["real"], feats["real held-out"])

    print(f"| change (one at a time) | FVD | Δ vs baseline | paired | 95% interval of Δ (bias-corrected) | p |")
    print("|---|---:|---:|---|---|---:|")
    out = []
    for what, value, cmp in rows:
        if cmp is None:
            delta = value - base
            print(f"| {what} | {value:.1f} | {delta:+.1f} | – | – | – |")
        else:
            lo, hi = cmp.ci
            print(f"| {what} | {value:.1f} | {cmp.delta:+.1f} | {'yes' if cmp.paired else 'no'} | "
                  f"[{lo:+.1f}, {hi:+.1f}] | {cmp.p_value:.2g} |")
        out.append({"change": what, "fvd": value, "comparison": cmp.to_dict() if cmp else None})
    print(f"\nreal-vs-real floor (training vs held-out split, {n} clips each): {floor:.1f}; "
          f"wall {time.time() - t0:.0f} s, {args.threads} thread(s), checkpoint {ckpt}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": out, "floor": floor, "clips": n, "large_clips": big,
                                               "checkpoint": str(ckpt)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
