"""Training and sampling throughput of the Latte trainer.

CPU (default): the ``demo`` preset (pixel space, 8 frames of 16², a 4-block Latte) —
training iterations/s and samples/s from the trainer's own JSONL records (setup excluded),
then sampling videos/s with the given sampler.

GPU: ``--device cuda --model Latte-XL/2 --image-size 32 --num-frames 16 --batch-size 5
--precision bf16`` trains the full-size model on 32² pixel-space "latents" of the demo set
(3 channels instead of the VAE's 4: the transformer cost is the same to within the patch
embedding), which measures the transformer step without a VAE download.

    python benchmarks/bench_train.py --steps 30
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="e.g. Latte-XL/2 (default: the demo preset's tiny model)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--num-frames", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--sample-videos", type=int, default=8)
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from latte_bench.training.presets import preset
    from latte_bench.training.sampling import generate_latents
    from latte_bench.training.checkpoint import latest_checkpoint, load_checkpoint
    from latte_bench.training.presets import TrainConfig
    from latte_bench.training.checkpoint import build_model_for_checkpoint
    from latte_bench.training.trainer import train

    cfg = preset("demo")
    changes = {"steps": args.steps, "log_every": max(1, args.steps // 3), "ckpt_every": 10**9, "device": args.device,
               "precision": args.precision, "gradient_checkpointing": args.gradient_checkpointing}
    if args.model:
        changes.update(model=args.model, model_options={})
    for name in ("image_size", "num_frames", "batch_size"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    cfg = dataclasses.replace(cfg, **changes)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(cfg, out=tmp)
        train(cfg, progress=False)
        records = [json.loads(line) for line in open(Path(tmp) / "metrics.jsonl")]
        steady = [r for r in records if "loss" in r][1:] or [r for r in records if "loss" in r]  # skip the warm-up window
        its = sum(r["steps_per_s"] for r in steady) / len(steady)
        sps = sum(r["samples_per_s"] for r in steady) / len(steady)
        params = records[0]["params"]
        ckpt = load_checkpoint(latest_checkpoint(tmp))
        model = build_model_for_checkpoint(TrainConfig.from_dict(ckpt["config"]), ckpt)
        model.load_state_dict(ckpt["ema"])
        model = model.to(args.device).eval()
        shape = (cfg.num_frames, ckpt["config"]["latent_channels"], ckpt["config"]["latent_size"], ckpt["config"]["latent_size"])
        start = time.perf_counter()
        generate_latents(model, range(args.sample_videos), shape, sampler=args.sampler, steps=args.sample_steps,
                         num_classes=cfg.num_classes, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        sample_time = time.perf_counter() - start
    print(f"model {cfg.model} {cfg.model_options} ({params / 1e6:.2f}M params), {cfg.num_frames}x{cfg.image_size}² frames, "
          f"batch {cfg.batch_size}, {cfg.precision}, device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"training: {its:.2f} it/s, {sps:.1f} samples/s (mean of {len(steady)} logging windows after the first)")
    print(f"sampling: {args.sample_videos / sample_time:.3f} videos/s ({args.sampler}, {args.sample_steps} steps, "
          f"batch {args.sample_videos}, {sample_time:.1f} s)")


if __name__ == "__main__":
    main()
