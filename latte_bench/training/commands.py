"""``latte-bench train``, ``encode``, ``sample`` and ``export-official``: the training-side subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from latte_bench.errors import UserError

# command-line flag → TrainConfig field, for the plain overrides of `train`
_TRAIN_FIELDS = {
    "data": str, "split": str, "latents": str, "model": str, "variant": int, "out": str, "steps": int,
    "batch_size": int, "grad_accum": int, "lr": float, "lr_schedule": str, "warmup_steps": int, "weight_decay": float,
    "ema_decay": float,
    "start_clip_iter": int, "clip_max_norm": float, "precision": str, "joint_strategy": str, "num_images": int,
    "num_frames": int, "frame_interval": int, "image_size": int, "num_classes": int, "vae": str, "seed": int,
    "num_workers": int, "log_every": int, "ckpt_every": int, "sample_every": int, "sample_videos": int,
    "sample_steps": int, "sample_sampler": str, "fvd_every": int, "fvd_real": str, "fvd_videos": int, "device": str,
    "distributed": str, "demo_videos": int,
}


def register(subparsers) -> None:
    from latte_bench.training.presets import PRESETS

    p = subparsers.add_parser("train", help="train Latte from a preset (official configs or the CPU demo)",
                              description="Train Latte. Presets follow the official configs; flags override single fields.")
    p.add_argument("preset", choices=sorted(PRESETS), help="ffs, sky, ucf101, taichi, their _img variants, or demo")
    for name, kind in _TRAIN_FIELDS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    p.add_argument("--gradient-checkpointing", action="store_true", default=None)
    p.add_argument("--model-options", type=json.loads, default=None, help='extra create_model() options as JSON, e.g. \'{"depth": 4}\'')
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest for the demo on a busy machine)")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("encode", help="pre-encode a dataset's clips into VAE latent shards")
    e.add_argument("preset", choices=sorted(PRESETS), help="which dataset layout, clip length and stride to use")
    e.add_argument("--data", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--split", default=None)
    e.add_argument("--vae", default=None, help="hub id or local AutoencoderKL folder (default: the preset's)")
    e.add_argument("--image-size", type=int, default=None)
    e.add_argument("--num-frames", type=int, default=None)
    e.add_argument("--frame-interval", type=int, default=None)
    e.add_argument("--shard-size", type=int, default=256)
    e.add_argument("--batch-size", type=int, default=4)
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=int, default=None)
    e.set_defaults(func=run_encode)

    s = subparsers.add_parser("sample", help="sample videos from a checkpoint (deterministic, resumable, torchrun-sharded)")
    s.add_argument("--ckpt", required=True, help="a latte-bench checkpoint, a run folder, or an official {'ema': ...} file")
    s.add_argument("--num-videos", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++"), default="ddpm")
    s.add_argument("--steps", type=int, default=250)
    s.add_argument("--cfg-scale", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--format", choices=("mp4", "png", "npz"), default="mp4")
    s.add_argument("--vae", default=None, help="override the checkpoint's VAE (hub id, folder or none)")
    s.add_argument("--preset", default=None, help="for official checkpoints: the preset that describes the model (e.g. ucf101)")
    s.add_argument("--model", default=None, help="for official checkpoints: model name if not the preset's")
    s.add_argument("--weights", choices=("ema", "model"), default="ema")
    s.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    s.add_argument("--device", default="auto")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s.set_defaults(func=run_sample)

    x = subparsers.add_parser("export-official", help="write a checkpoint's EMA weights as the official {'ema': state_dict}")
    x.add_argument("--ckpt", required=True)
    x.add_argument("--out", required=True)
    x.set_defaults(func=run_export)


def train_config(args: argparse.Namespace):
    from latte_bench.training.presets import preset

    cfg = preset(args.preset)
    overrides = {k: getattr(args, k) for k in _TRAIN_FIELDS if getattr(args, k, None) is not None}
    if getattr(args, "gradient_checkpointing", None):
        overrides["gradient_checkpointing"] = True
    if getattr(args, "model_options", None):
        overrides["model_options"] = {**cfg.model_options, **args.model_options}
    if "model" in overrides and "model_options" not in overrides and args.preset == "demo":
        overrides["model_options"] = {}  # a named size replaces the demo's tiny one
    return dataclasses.replace(cfg, **overrides)


def _set_threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def run_train(args) -> int:
    from latte_bench.training.trainer import train

    _set_threads(args)
    cfg = train_config(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    from latte_bench import distributed as dist

    if dist.is_main():
        print(f"trained to step {result['step']}  loss {result['loss']:.4f}  run {result['run_dir']}")
    return 0


def run_encode(args) -> int:
    from latte_bench.data.datasets import ClipDataset
    from latte_bench import distributed as dist
    from latte_bench.training.latents import LatentSpace, encode_dataset, load_vae
    from latte_bench.training.presets import preset
    from latte_bench.device import resolve_device

    cfg = preset(args.preset)
    for name in ("vae", "image_size", "num_frames", "frame_interval", "seed"):
        if getattr(args, name) is not None:
            cfg = dataclasses.replace(cfg, **{name: getattr(args, name)})
    if cfg.pixel_space:
        raise UserError("encode needs a VAE: pass --vae stabilityai/sd-vae-ft-ema (or a local AutoencoderKL folder)")
    device = resolve_device(args.device)
    dist.init(device.type)
    dataset = ClipDataset.from_folder(cfg.dataset, args.data, split=args.split, num_frames=cfg.num_frames,
                                      frame_interval=cfg.frame_interval, image_size=cfg.image_size, seed=cfg.seed)
    space = LatentSpace(load_vae(cfg.vae, device), cfg.vae_scale, cfg.vae_batch_frames)
    out = encode_dataset(dataset, space, args.out, shard_size=args.shard_size, batch_size=args.batch_size, device=device,
                         description={"dataset": cfg.dataset, "data": str(args.data), "vae": cfg.vae, "num_frames": cfg.num_frames,
                                      "frame_interval": cfg.frame_interval, "image_size": cfg.image_size,
                                      "channels": space.channels, "latent_size": cfg.image_size // space.downsample,
                                      "skipped_videos": [n for n, _ in dataset.skipped]})
    if dist.is_main():
        print(f"encoded {len(dataset)} clips into {out} ({len(dataset.skipped)} videos skipped)")
    return 0


def run_sample(args) -> int:
    from latte_bench.fsutil import write_json
    from latte_bench.provenance import environment
    from latte_bench import distributed as dist
    from latte_bench.training.latents import LatentSpace, load_vae
    from latte_bench.training.load import load_model
    from latte_bench.training.sampling import sample_videos
    from latte_bench.device import resolve_device
    from latte_bench.training.trainer import PRECISIONS

    if args.num_videos < 1 or args.batch_size < 1:
        raise UserError("--num-videos and --batch-size must be >= 1")
    _set_threads(args)
    device = resolve_device(args.device)
    dist.init(device.type)
    loaded = load_model(args.ckpt, args.weights, preset=args.preset, model_name=args.model, device=device)
    model, info = loaded.model, loaded.info
    vae_spec = args.vae or info.get("vae", "none")
    space = LatentSpace(load_vae(vae_spec, device), float(info.get("vae_scale", 0.18215)), int(info.get("vae_batch_frames", 64)))
    shape = (int(info["num_frames"]), int(info["latent_channels"]), int(info["latent_size"]), int(info["latent_size"]))
    result = sample_videos(model, space, args.out, args.num_videos, shape, fmt=args.format, batch_size=args.batch_size,
                           seed=args.seed, num_classes=int(info.get("num_classes", 0)), sampler=args.sampler, steps=args.steps,
                           cfg_scale=args.cfg_scale, learn_sigma=bool(info.get("learn_sigma", True)), device=device,
                           autocast_dtype=PRECISIONS[args.precision], progress=not args.no_progress)
    if dist.is_main():
        write_json(Path(args.out) / "samples.json", {
            "checkpoint": loaded.checkpoint["path"], "checkpoint_sha256": loaded.checkpoint["sha256"],
            "weights": args.weights, "num_videos": args.num_videos, "seed": args.seed, "sampler": args.sampler,
            "steps": args.steps, "cfg_scale": args.cfg_scale, "format": args.format, "precision": args.precision,
            "vae": vae_spec, "shape": list(shape), "world_size": dist.world_size(), "labels": result["labels"],
            "uint8": "clamp(floor((x*0.5+0.5)*255+0.5),0,255)", "environment": environment(),
        })
        where = Path(args.out) / "videos.npz" if args.format == "npz" else Path(args.out)
        print(f"{args.num_videos} videos in {where} ({result['skipped']} were already there)")
    return 0


def run_export(args) -> int:
    from latte_bench.training.checkpoint import FORMAT, export_official, load_checkpoint

    ckpt = load_checkpoint(args.ckpt)
    if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
        raise UserError(f"{args.ckpt}: not a latte-bench training checkpoint")
    export_official(args.out, ckpt)
    print(f"wrote {args.out}")
    return 0
