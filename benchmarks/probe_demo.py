"""How far a trained pixel-space run (e.g. the ``demo`` preset) is from generating its data.

For a run folder or checkpoint it prints

- the denoiser's error by noise level: eps-MSE and x_0-MSE (x_0 recovered from the predicted eps)
  at t = 900 ... 10 on clips of the training set with fresh noise. Predicting x_0 = 0 scores
  E[x_0²] (printed as the trivial baseline); a model must beat it at high t before its samples can
  hold any structure, because x_0 = (x_t − sqrt(1 − ᾱ_t)·eps) / sqrt(ᾱ_t) multiplies eps errors by
  up to ~60 at t = 900;
- the mean absolute difference between neighbouring frames (temporal TV) and pixels (spatial TV)
  of real clips and of DDIM and DDPM samples: noise-like samples score several times the real value;

and writes ``--out`` (PNG): real clips on top, then DDIM and DDPM samples (rows: videos, columns: frames).

``--x0-study STEPS`` (no run) instead trains the ``demo`` preset's model, data and optimiser
settings from scratch for STEPS steps with x_0-prediction (``create_diffusion(predict_xstart=True)``,
which the trainer does not offer), in a plain loop with the preset's batch, lr, clipping, EMA and
label dropout, then prints the same x_0-MSE table and writes real clips and DDIM samples to ``--out``:
the comparison behind docs/training.md, "What the demo model learns".

    latte-bench train demo --out runs/demo --threads 1
    python benchmarks/probe_demo.py runs/demo --out probe.png
    python benchmarks/probe_demo.py --x0-study 1000 --out x0.png
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="run folder or checkpoint of a pixel-space run (vae none)")
    parser.add_argument("--x0-study", type=int, default=0, metavar="STEPS",
                        help="train the demo preset with x_0-prediction for STEPS steps instead of probing a run")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--ddpm-steps", type=int, default=100)
    parser.add_argument("--out", default="probe.png")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.x0_study:
        return x0_study(args.x0_study, args.videos, args.ddim_steps, args.out)
    if args.run is None:
        parser.error("pass a run folder or checkpoint, or --x0-study STEPS")

    from latte_bench.diffusion import create_diffusion, sample
    from latte_bench.errors import UserError
    from latte_bench.reports.figures import video_grid
    from latte_bench.training.load import load_model
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
    diffusion = create_diffusion("", learn_sigma=cfg.learn_sigma)
    g = torch.Generator().manual_seed(0)

    print(f"trivial x0-MSE (predict 0): {float((real**2).mean()):.4f}")
    print("    t   eps-MSE    x0-MSE")
    with torch.no_grad():
        for t in (900, 700, 500, 300, 100, 30, 10):
            noise = torch.randn(real.shape, generator=g)
            steps = torch.full((len(real),), t)
            x_t = diffusion.q_sample(real, steps, noise)
            eps, _ = diffusion.split_output(diffusion.run_model(model, x_t, steps, kwargs), x_t)
            x0 = diffusion.predict_xstart_from_eps(x_t, steps, eps)
            print(f"{t:5d} {float(((eps - noise) ** 2).mean()):9.4f} {float(((x0 - real) ** 2).mean()):9.4f}")
        x_T = torch.randn(real.shape, generator=g)
        common = dict(y=y, noise=x_T, clip_denoised=True, progress=False, learn_sigma=cfg.learn_sigma)
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


def x0_study(steps: int, videos: int, ddim_steps: int, out: str) -> None:
    """The demo preset trained with x_0-prediction (see the module docstring)."""
    import copy

    from PIL import Image

    from latte_bench.data.demo import make_demo_videos
    from latte_bench.diffusion import create_diffusion
    from latte_bench.reports.figures import video_grid
    from latte_bench.training.latents import to_uint8
    from latte_bench.training.presets import preset
    from latte_bench.training.load import build_model
    from latte_bench.training.trainer import build_dataset

    cfg = preset("demo")
    torch.manual_seed(cfg.seed)
    dataset = build_dataset(cfg)
    model = build_model(cfg, 3, cfg.image_size)
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    diffusion = create_diffusion("", predict_xstart=True, learn_sigma=cfg.learn_sigma)
    g = torch.Generator().manual_seed(cfg.seed)
    for step in range(steps):
        items = [dataset[int(i)] for i in torch.randint(0, len(dataset), (cfg.batch_size,), generator=g)]
        x = torch.stack([item["video"] for item in items])
        y = torch.stack([item["label"] for item in items])
        y = torch.where(torch.rand(len(y), generator=g) < cfg.class_dropout_prob, torch.full_like(y, cfg.num_classes), y)
        t = torch.randint(0, diffusion.num_timesteps, (len(x),), generator=g)
        loss = diffusion.training_losses(model, x, t, {"y": y}, torch.randn(x.shape, generator=g))["loss"].mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(cfg.ema_decay).add_(pm, alpha=1 - cfg.ema_decay)
        if (step + 1) % 100 == 0 or step + 1 == steps:
            print(f"step {step + 1}: loss {float(loss.detach()):.4f}", flush=True)
    real_u8, labels = make_demo_videos(videos, num_frames=cfg.num_frames, size=cfg.image_size, seed=cfg.seed + 1000,
                                       classes=cfg.num_classes)
    real = torch.from_numpy(real_u8).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    y = torch.from_numpy(labels)
    print(f"trivial x0-MSE (predict 0): {float((real**2).mean()):.4f}")
    print("    t    x0-MSE")
    with torch.no_grad():
        for t in (900, 700, 500, 300, 100):
            steps_t = torch.full((len(real),), t)
            x_t = diffusion.q_sample(real, steps_t, torch.randn(real.shape, generator=g))
            x0, _ = diffusion.split_output(diffusion.run_model(ema, x_t, steps_t, {"y": y}), x_t)
            print(f"{t:5d} {float(((x0 - real) ** 2).mean()):9.4f}")
        spaced = create_diffusion(f"ddim{ddim_steps}" if 1000 % ddim_steps == 0 else str(ddim_steps), predict_xstart=True,
                                  learn_sigma=cfg.learn_sigma)
        noise = torch.randn(real.shape, generator=g)
        samples = spaced.ddim_sample_loop(ema, real.shape, noise=noise, clip_denoised=True, model_kwargs={"y": y})
    rows = [video_grid(v, max_videos=videos, max_frames=cfg.num_frames) for v in (real_u8, to_uint8(samples))]
    gap = np.full((3, rows[0].shape[1], 3), 255, dtype=np.uint8)
    grid = np.concatenate([rows[0], gap, rows[1]])
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(out)
    print(f"wrote {out} (rows: held-out real clips, DDIM-{ddim_steps} samples of the x_0-prediction model, same labels)")


if __name__ == "__main__":
    from latte_bench.errors import UserError

    try:
        main()
    except UserError as e:  # a wrong path or an unreadable checkpoint: one line and exit 2, as the CLI
        print(f"probe_demo.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
