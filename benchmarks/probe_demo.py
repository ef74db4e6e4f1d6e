"""How far a trained pixel-space run (e.g. the ``demo`` preset) is from generating its data.

For a run folder or checkpoint it prints

- the denoiser's error by noise level: eps-MSE and x_0-MSE at t = 900 ... 10 on clips of the
  training set with fresh noise (for an eps-model x_0 is recovered from eps, for an x_0-model eps
  from x_0; the run's noise schedule and prediction target are read from its checkpoint).
  Predicting x_0 = 0 scores E[x_0²] (printed as the trivial baseline); a model must beat it at high
  t before its samples can hold any structure. For an eps-model on the linear schedule,
  x_0 = (x_t − sqrt(1 − ᾱ_t)·eps) / sqrt(ᾱ_t) multiplies eps errors by up to ~60 at t = 900;
- the mean absolute difference between neighbouring frames (temporal TV) and pixels (spatial TV)
  of real clips and of DDIM and DDPM samples: noise-like samples score several times the real value;

and writes ``--out`` (PNG): real clips on top, then DDIM and DDPM samples (rows: videos, columns: frames).

    latte-bench train demo --out runs/demo --threads 1
    python benchmarks/probe_demo.py runs/demo --out probe.png
    latte-bench train demo --out runs/demo-eps --prediction eps --noise-schedule linear --learn-sigma yes
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or checkpoint of a pixel-space run (vae none)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--ddpm-steps", type=int, default=100)
    parser.add_argument("--out", default="probe.png")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from latte_bench.diffusion import create_diffusion, sample
    from latte_bench.errors import UserError
    from latte_bench.reports.figures import video_grid
    from latte_bench.training.checkpoint import load_model
    from latte_bench.training.latents import to_uint8
    from latte_bench.training.presets import TrainConfig
    from latte_bench.training.trainer import build_dataset

    loaded = load_model(args.run)
    model, info = loaded.model, loaded.info
    cfg = TrainConfig.from_dict(info)
    if not cfg.pixel_space:
        raise UserError("the run must be in pixel space (--vae none)")
    dataset = build_dataset(dataclasses.replace(cfg, num_images=0))
    step = max(1, len(dataset) // args.videos)
    items = [dataset[(i * step + i) % len(dataset)] for i in range(args.videos)]  # + i: not all one class
    real = torch.stack([item["video"] for item in items])  # (B, F, C, H, W) in [-1, 1]
    y = torch.stack([item["label"] for item in items]) if cfg.num_classes else None
    kwargs = {"y": y} if y is not None else {}
    options = loaded.diffusion_options
    diffusion = create_diffusion("", noise_schedule=options["noise_schedule"], predict_xstart=options["prediction"] == "x0",
                                 learn_sigma=options["learn_sigma"])
    g = torch.Generator().manual_seed(0)

    print(f"trivial x0-MSE (predict 0): {float((real**2).mean()):.4f}")
    print("    t   eps-MSE    x0-MSE")
    with torch.no_grad():
        for t in (900, 700, 500, 300, 100, 30, 10):
            noise = torch.randn(real.shape, generator=g)
            steps = torch.full((len(real),), t)
            x_t = diffusion.q_sample(real, steps, noise)
            out, _ = diffusion.split_output(diffusion.run_model(model, x_t, steps, kwargs), x_t)
            if options["prediction"] == "x0":
                x0, eps = out, diffusion.predict_eps_from_xstart(x_t, steps, out)
            else:
                x0, eps = diffusion.predict_xstart_from_eps(x_t, steps, out), out
            print(f"{t:5d} {float(((eps - noise) ** 2).mean()):9.4f} {float(((x0 - real) ** 2).mean()):9.4f}")
        x_T = torch.randn(real.shape, generator=g)
        common = dict(y=y, noise=x_T, clip_denoised=True, progress=False, **options)
        ddim = sample(model, real.shape, sampler="ddim", steps=args.ddim_steps, **common)
        ddpm = sample(model, real.shape, sampler="ddpm", steps=args.ddpm_steps, generator=g, **common)

    def tv(v: torch.Tensor) -> str:
        return f"temporal {float((v[:, 1:] - v[:, :-1]).abs().mean()):.3f}  spatial {float((v[..., 1:] - v[..., :-1]).abs().mean()):.3f}"

    print(f"TV real        {tv(real)}")
    print(f"TV DDIM-{args.ddim_steps:<5d} {tv(ddim)}")
    print(f"TV DDPM-{args.ddpm_steps:<5d} {tv(ddpm)}")

    from PIL import Image

    rows = [video_grid(to_uint8(v), max_videos=args.videos, max_frames=v.shape[1]) for v in (real, ddim, ddpm)]
    gap = np.full((3, rows[0].shape[1], 3), 255, dtype=np.uint8)
    grid = np.concatenate([rows[0], gap, rows[1], gap, rows[2]])
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(args.out)
    print(f"wrote {args.out} (rows: real, DDIM, DDPM)")


if __name__ == "__main__":
    from latte_bench.errors import UserError

    try:
        main()
    except UserError as e:  # a wrong path or an unreadable checkpoint: one line and exit 2, as the CLI
        print(f"probe_demo.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
