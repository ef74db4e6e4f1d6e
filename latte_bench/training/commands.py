"""``latte-bench train``, ``encode``, ``sample``, ``encode-prompts`` and ``export-official``: the training-side subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from latte_bench.cli import AtLeast, HelpFormatter
from latte_bench.errors import UserError

def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "1"):
        return True
    if text.lower() in ("no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


# command-line flag → TrainConfig field, for the plain overrides of `train`
_TRAIN_FIELDS = {
    "data": str, "split": str, "latents": str, "model": str, "variant": int, "out": str, "steps": int,
    "batch_size": int, "grad_accum": int, "lr": float, "lr_schedule": str, "warmup_steps": int, "weight_decay": float,
    "ema_decay": float,
    "start_clip_iter": int, "clip_max_norm": float, "precision": str, "joint_strategy": str, "num_images": int,
    "num_frames": int, "frame_interval": int, "image_size": int, "num_classes": int, "vae": str, "seed": int,
    "num_workers": int, "log_every": int, "ckpt_every": int, "sample_every": int, "sample_videos": int,
    "sample_steps": int, "sample_sampler": str, "fvd_every": int, "fvd_real": str, "fvd_videos": int, "device": str,
    "distributed": str, "demo_videos": int, "noise_schedule": str, "prediction": str,
    "learn_sigma": _yes_no, "snr_gamma": float, "prompt_embeds": str,
}

# the smallest value of the whole-number overrides that have one (checked while parsing, one line)
_TRAIN_MINIMUM = {"steps": 1, "batch_size": 1, "grad_accum": 1, "log_every": 1, "ckpt_every": 1, "sample_every": 0,
                  "sample_videos": 1, "sample_steps": 1, "fvd_every": 0, "num_workers": 0, "demo_videos": 1}


# what each `train` override means (its default is the preset's, listed by _preset_default)
_TRAIN_HELP = {
    "data": "data folder of the preset's dataset (videos or frame folders)",
    "split": "UCF101 split list (trainlist01.txt) to train on a subset",
    "latents": "pre-encoded latent shards from `latte-bench encode`, instead of --data",
    "model": "model size, e.g. Latte-XL/2, Latte-S/2, or Latte-T2V (text-to-video; needs --prompt-embeds)",
    "prompt_embeds": "Latte-T2V: prompt embeddings from `latte-bench encode-prompts`, one prompt per class in label order",
    "variant": "Latte model variant 1-4 (paper Sec. 3.2)",
    "out": "run folder: config.json, metrics.jsonl, checkpoints/",
    "steps": "optimizer steps to train to (with --resume: the new end)",
    "batch_size": "clips per process per micro-batch (global batch = batch-size x processes x grad-accum)",
    "grad_accum": "micro-batches accumulated per optimizer step",
    "lr": "AdamW learning rate",
    "lr_schedule": "constant | cosine (to 0 at --steps)",
    "noise_schedule": "diffusion betas: linear (Latte) | squaredcos_cap_v2 (cosine)",
    "prediction": "model target: eps (Latte) | x0 (the clean sample)",
    "learn_sigma": "yes: the model also predicts the variance, trained by the VB loss (Latte) | no: fixed variance",
    "snr_gamma": "Min-SNR-gamma loss weighting: each clip's x_0 error counts min(SNR_t, gamma) times (0: uniform MSE, Latte)",
    "warmup_steps": "linear learning-rate warm-up steps",
    "weight_decay": "AdamW weight decay",
    "ema_decay": "EMA decay per optimizer step",
    "start_clip_iter": "step from which gradients are clipped (before: norm only logged)",
    "clip_max_norm": "gradient-norm clipping threshold",
    "precision": "auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16",
    "joint_strategy": "image-video joint training: only_video | temporal_mask",
    "num_images": "K single frames per clip for image-video joint training (0: off)",
    "num_frames": "frames per training clip",
    "frame_interval": "stride between the frames of a clip",
    "image_size": "frame size in pixels (square)",
    "num_classes": "class-conditional model with this many classes (0: unconditional)",
    "vae": "VAE hub id or folder, or none for pixel space",
    "seed": "seed of the weights, data order and noise",
    "num_workers": "DataLoader worker processes",
    "log_every": "steps between metrics.jsonl records",
    "ckpt_every": "steps between checkpoints",
    "sample_every": "steps between preview videos (0: never)",
    "sample_videos": "preview videos each time",
    "sample_steps": "sampler steps for previews and periodic FVD",
    "sample_sampler": "sampler for previews and periodic FVD: ddpm | ddim | dpm++",
    "fvd_every": "steps between FVD evaluations (0: never; needs --fvd-real)",
    "fvd_real": "held-out real videos for the periodic FVD",
    "fvd_videos": "generated clips per periodic FVD",
    "device": "auto | cpu | cuda | cuda:N",
    "distributed": "under torchrun: ddp | fsdp",
    "demo_videos": "size of the generated demo set",
}


def _preset_default(name: str) -> str:
    """The default of a TrainConfig field across presets, e.g. "0.0001 (demo: 0.002)"."""
    from latte_bench.training.presets import PRESETS

    groups: dict[str, list[str]] = {}
    for preset_name, cfg in PRESETS.items():
        groups.setdefault(repr(getattr(cfg, name)), []).append(preset_name)
    if len(groups) == 1:
        return next(iter(groups)).strip("'")
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    first, rest = ordered[0][0].strip("'"), [f"{', '.join(n)}: {v.strip(chr(39))}" for v, n in ordered[1:]]
    return f"{first} ({'; '.join(rest)})"


def default_sample_threads() -> int:
    """CPU threads for `sample` when --threads is not given: the cores other processes leave free.

    ``OMP_NUM_THREADS`` wins when set (torchrun sets 1). Otherwise ``cores - load average``, at
    least 1 and at most torch's default (the physical cores): on the shared 2-core machine (load
    5-7) the demo model sampled 4 videos x 50 DDPM steps in 10-14 s with 1 thread and 73-106 s
    with 2 (docs/training.md, "Sampling").
    """
    import os

    import torch

    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, torch.get_num_threads(), int(cores - busy)))


def register(subparsers) -> None:
    from latte_bench.training.presets import PRESETS

    fmt = HelpFormatter
    p = subparsers.add_parser("train", help="train Latte from a preset (official configs or the CPU demo)",
                              description="Train Latte. Presets follow the official configs; each flag overrides one "
                              "field (defaults below are the presets' values).")
    p.add_argument("preset", choices=sorted(PRESETS), help="ffs, sky, ucf101, taichi, their _img variants, or demo")
    for name, kind in _TRAIN_FIELDS.items():
        bounded = dict(action=AtLeast, minimum=_TRAIN_MINIMUM[name]) if name in _TRAIN_MINIMUM else {}
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                       help=f"{_TRAIN_HELP[name]} (default: {_preset_default(name)})", **bounded)
    p.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="recompute activations in the backward pass to save memory (default: off)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile each transformer block (checkpoint names unchanged; default: off)")
    p.add_argument("--model-options", type=json.loads, default=None,
                   help='extra create_model() options as JSON, e.g. \'{"depth": 4}\' (default: the preset\'s)')
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out; other settings than the run's are refused (default: off)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: continue with changed settings, recorded in config.json and metrics.jsonl (default: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads; 1 is fastest for the demo on a busy machine (default: torch's, all cores)")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("encode", help="pre-encode a dataset's clips into VAE latent shards", formatter_class=fmt,
                              description="Encode every training clip of a preset's dataset with the VAE once, into "
                              "latent shards that `train --latents DIR` reads instead of decoding videos each step.")
    e.add_argument("preset", choices=sorted(PRESETS), help="which dataset layout, clip length and stride to use")
    e.add_argument("--data", required=True, help="the dataset folder")
    e.add_argument("--out", required=True, help="folder for the latent shards and their meta.json")
    e.add_argument("--split", default=None, help="UCF101 split list to encode a subset (default: every video)")
    e.add_argument("--vae", default=None, help="hub id or local AutoencoderKL folder (default: the preset's)")
    e.add_argument("--image-size", type=int, default=None, help="frame size in pixels (default: the preset's)")
    e.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the preset's)")
    e.add_argument("--frame-interval", type=int, default=None, help="stride between frames (default: the preset's)")
    e.add_argument("--shard-size", type=int, default=256, help="clips per shard file")
    e.add_argument("--batch-size", type=int, default=4, help="clips per VAE batch")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    e.add_argument("--seed", type=int, default=None, help="seed of the clip choice (default: the preset's)")
    e.set_defaults(func=run_encode)

    s = subparsers.add_parser("sample", help="sample videos from a checkpoint (deterministic, resumable, torchrun-sharded)",
                              formatter_class=fmt,
                              description="Sample videos. Video i depends only on (--seed, i); a rerun of the same command "
                              "finishes an interrupted set, and a folder made with other settings is refused.")
    s.add_argument("--ckpt", required=True, help="a latte-bench checkpoint, a run folder (its latest checkpoint), an "
                   "official {'ema': ...} file, or a Latte-1 folder (text-to-video: transformer/, vae/, ...; docs/t2v.md)")
    s.add_argument("--num-videos", type=int, action=AtLeast, required=True, help="videos to have in --out")
    s.add_argument("--out", required=True, help="output folder (or the folder of videos.npz)")
    s.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++"), default=None,
                   help="diffusion sampler (default: eval --ckpt's for the checkpoint's dataset: ddpm; demo: ddim; "
                        "Latte-1: ddim, as LattePipeline)")
    s.add_argument("--steps", type=int, action=AtLeast, default=None,
                   help="sampler steps (default: eval --ckpt's for the checkpoint's dataset: 250; demo: 25; Latte-1: 50)")
    s.add_argument("--cfg-scale", type=float, default=None,
                   help="classifier-free guidance scale, 1: none (default: eval --ckpt's for the checkpoint's dataset: "
                        "7 for a class-conditional ucf101 model, else 1; Latte-1: 7.5)")
    t2v = s.add_argument_group("text-to-video (a Latte-1 --ckpt; video i gets prompt i mod the number of prompts)")
    prompt = t2v.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default=None, help="one prompt for every video (default: none)")
    prompt.add_argument("--prompts", metavar="FILE", default=None, help="a text file, one prompt per line (default: none)")
    prompt.add_argument("--prompt-embeds", metavar="FILE", default=None,
                        help="T5 embeddings written by `latte-bench encode-prompts` (no text encoder needed; default: none)")
    s.add_argument("--seed", type=int, default=0, help="video i is a function of (seed, i)")
    s.add_argument("--batch-size", type=int, action=AtLeast, default=4, help="videos per model call (does not change the videos)")
    s.add_argument("--format", choices=("mp4", "png", "npz"), default="mp4",
                   help="mp4 (lossy, Latte's), png frame folders or one npz (lossless)")
    s.add_argument("--vae", default=None, help="override the checkpoint's VAE: hub id, folder or none (default: the checkpoint's)")
    s.add_argument("--preset", default=None, help="for official checkpoints: the preset that describes the model, e.g. ucf101 (default: none; "
                   "latte-bench checkpoints carry their config)")
    s.add_argument("--model", default=None, help="for official checkpoints: the model name (default: the preset's)")
    s.add_argument("--weights", choices=("ema", "model"), default="ema", help="which weights of a training checkpoint")
    s.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast precision")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    s.add_argument("--allow-settings-change", action="store_true",
                   help="keep videos in --out made with other settings and add these (recorded in samples.json)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $OMP_NUM_THREADS, else the cores the load average leaves free, at least 1)")
    s.set_defaults(func=run_sample)

    ep = subparsers.add_parser("encode-prompts", formatter_class=fmt,
                               help="encode text prompts with Latte-1's T5 into a file that `sample --prompt-embeds` reads",
                               description="Encode prompts as LattePipeline does (lower-cased, up to 120 tokens, with the empty "
                               "negative prompt) with the T5 of a Latte-1 folder, into one safetensors file, so that a machine "
                               "without T5 can sample.")
    ep.add_argument("--ckpt", required=True, help="a Latte-1 folder (its text_encoder/ and tokenizer/ are read)")
    which = ep.add_mutually_exclusive_group(required=True)
    which.add_argument("--prompt", default=None, help="one prompt")
    which.add_argument("--prompts", metavar="FILE", default=None, help="a text file, one prompt per line")
    ep.add_argument("--out", required=True, help="the .safetensors file to write")
    ep.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="T5 weights dtype")
    ep.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ep.set_defaults(func=run_encode_prompts)

    x = subparsers.add_parser("export-official", help="write a checkpoint's EMA weights as the official {'ema': state_dict}",
                              formatter_class=fmt,
                              description="Write the EMA weights of a latte-bench training checkpoint in the official "
                              "Latte format {'ema': state_dict}, which the official sample scripts and `sample --ckpt` read.")
    x.add_argument("--ckpt", required=True, help="a latte-bench training checkpoint or run folder (its latest checkpoint)")
    x.add_argument("--out", required=True, help="the .pt file to write")
    x.set_defaults(func=run_export)


def train_config(args: argparse.Namespace):
    from latte_bench.training.presets import preset

    cfg = preset(args.preset)
    overrides = {k: getattr(args, k) for k in _TRAIN_FIELDS if getattr(args, k, None) is not None}
    if getattr(args, "gradient_checkpointing", None):
        overrides["gradient_checkpointing"] = True
    if getattr(args, "compile", None):
        overrides["compile"] = True
    t2v = overrides.get("model") == "Latte-T2V"  # the preset's options are Latte's keys, not Latte-T2V's
    if getattr(args, "model_options", None):
        overrides["model_options"] = {**({} if t2v else cfg.model_options), **args.model_options}
    if "model" in overrides and "model_options" not in overrides and (args.preset == "demo" or t2v):
        overrides["model_options"] = {}  # a named size replaces the demo's tiny one
    return dataclasses.replace(cfg, **overrides)


def _set_threads(args) -> None:  # train: torch's default unless --threads (a resumed run keeps its numerics)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def run_train(args) -> int:
    from latte_bench.training.trainer import train

    _set_threads(args)
    cfg = train_config(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress,
                   allow_config_change=getattr(args, "allow_config_change", False))
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
    from latte_bench.fsutil import check_writable

    check_writable(args.out, "--out")  # before the dataset is listed or the VAE loaded
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
    from latte_bench.training.t2v import is_t2v_folder

    if is_t2v_folder(args.ckpt):
        from latte_bench.training.t2v_commands import run_sample_t2v

        return run_sample_t2v(args)
    given = [flag for flag, key in (("--prompt", "prompt"), ("--prompts", "prompts"), ("--prompt-embeds", "prompt_embeds"))
             if getattr(args, key, None) is not None]
    if given:
        raise UserError(f"{given[0]} needs a Latte-1 folder as --ckpt (transformer/, vae/, ...); {args.ckpt} is a "
                        "class-conditional or unconditional checkpoint")
    return _run_sample(args)  # --sampler, --steps, --cfg-scale left out: eval --ckpt's for the checkpoint's dataset


def run_encode_prompts(args) -> int:
    from latte_bench.training.t2v_commands import run_encode_prompts as run

    return run(args)


def _run_sample(args) -> int:
    import torch

    from latte_bench import distributed as dist
    from latte_bench.device import resolve_device
    from latte_bench.fsutil import check_writable
    from latte_bench.provenance import environment
    from latte_bench.training.latents import LatentSpace, load_vae
    from latte_bench.training.load import load_model
    from latte_bench.training.sampling import begin_record, finish_record, sample_videos
    from latte_bench.training.trainer import PRECISIONS

    out = Path(args.out)
    check_writable(out, "--out")  # before the model is loaded or anything is sampled
    torch.set_num_threads(args.threads or default_sample_threads())
    device = resolve_device(args.device)
    dist.init(device.type)
    loaded = load_model(args.ckpt, args.weights, preset=args.preset, model_name=args.model, device=device)
    model, info = loaded.model, loaded.info
    args = with_sampling_defaults(args, info)
    vae_spec = args.vae or info.get("vae", "none")
    shape = (int(info["num_frames"]), int(info["latent_channels"]), int(info["latent_size"]), int(info["latent_size"]))
    record = {
        "checkpoint": loaded.checkpoint["path"], "checkpoint_sha256": loaded.checkpoint["sha256"],
        "checkpoint_step": loaded.checkpoint.get("step"), "ckpt_argument": str(args.ckpt),
        "weights": args.weights, "num_videos": args.num_videos, "seed": args.seed, "sampler": args.sampler,
        "steps": args.steps, "cfg_scale": args.cfg_scale, "format": args.format, "precision": args.precision,
        "vae": vae_spec, "shape": list(shape), "world_size": dist.world_size(),
        "uint8": "clamp(floor((x*0.5+0.5)*255+0.5),0,255)", "environment": environment(),
    }
    # the VAE first: a bad one is refused before --out is made
    space = LatentSpace(load_vae(vae_spec, device), float(info.get("vae_scale", 0.18215)), int(info.get("vae_batch_frames", 64)))
    if dist.is_main():  # refused here, before any sampling, when --out holds other settings' videos
        record = begin_record(out, record, allow_change=args.allow_settings_change)
    dist.barrier()
    result = sample_videos(model, space, out, args.num_videos, shape, fmt=args.format, batch_size=args.batch_size,
                           seed=args.seed, num_classes=int(info.get("num_classes", 0)), sampler=args.sampler, steps=args.steps,
                           cfg_scale=args.cfg_scale, device=device, **loaded.diffusion_options,
                           autocast_dtype=PRECISIONS[args.precision], progress=not args.no_progress)
    if dist.is_main():
        finish_record(out, record, result["present"], result["labels"])
        where = out / "videos.npz" if args.format == "npz" else out
        print(f"{result['present']} videos in {where} ({result['skipped']} of the {args.num_videos} asked were already there)")
    return 0


def with_sampling_defaults(args, info: dict):
    """``args`` with --sampler, --steps and --cfg-scale left out set as ``eval --ckpt`` sets them for the
    checkpoint's dataset (``info["dataset"]``; :func:`~latte_bench.data.registry.sampling_defaults`)."""
    from latte_bench.data.registry import DATASETS, sampling_defaults

    dataset = info.get("dataset")
    defaults = sampling_defaults(dataset if dataset in DATASETS else None, int(info.get("num_classes", 0) or 0))
    return argparse.Namespace(**{**vars(args), **{key: getattr(defaults, key) for key in ("sampler", "steps", "cfg_scale")
                                                   if getattr(args, key) is None}})


def run_export(args) -> int:
    from latte_bench.fsutil import check_writable
    from latte_bench.training.checkpoint import FORMAT, load_checkpoint
    from latte_bench.training.load import export_official
    from latte_bench.training.load import resolve_checkpoint

    path = resolve_checkpoint(args.ckpt)
    check_writable(Path(args.out).parent, "--out")
    ckpt = load_checkpoint(path)
    if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
        raise UserError(f"{path}: not a latte-bench training checkpoint")
    export_official(args.out, ckpt)
    print(f"wrote {args.out}")
    return 0
