"""``latte-bench train``, ``encode``, ``sample``, ``encode-prompts`` and ``export-official``: the training-side subcommands."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from latte_bench.errors import UserError
from latte_bench.metrics.protocol import SamplingSettings
from latte_bench.options import DEVICE, PROGRESS, SAMPLE_PRECISIONS, THREADS, AtLeast, HelpFormatter, Option, add_options, options_of
from latte_bench.training.presets import TrainConfig
from latte_bench.lazy import lazy_module

# Loaded on first use, so that `latte-bench --help` (which builds this module's parsers) does not import torch.
_checkpoint = lazy_module("latte_bench.training.checkpoint")
_datasets = lazy_module("latte_bench.data.datasets")
_device = lazy_module("latte_bench.device")
_distributed = lazy_module("latte_bench.distributed")
_fsutil = lazy_module("latte_bench.fsutil")
_latents = lazy_module("latte_bench.training.latents")
_periodic = lazy_module("latte_bench.metrics.periodic")
_presets = lazy_module("latte_bench.training.presets")
_provenance = lazy_module("latte_bench.provenance")
_registry = lazy_module("latte_bench.data.registry")
_sampling = lazy_module("latte_bench.training.sampling")
_t2v = lazy_module("latte_bench.training.t2v")
_t2v_commands = lazy_module("latte_bench.commands.t2v")
_trainer = lazy_module("latte_bench.training.trainer")

# the prompts of a text-to-video checkpoint (sample; encode-prompts takes the first two): one of them at a time
PROMPT = Option(name="prompt", default=None, type=str, help="one prompt for every video (default: none)")
PROMPTS = Option(name="prompts", default=None, type=str, metavar="FILE",
                 help="a text file, one prompt per line (default: none)")
PROMPT_EMBEDS = Option(name="prompt_embeds", default=None, type=str, metavar="FILE",
                       help="T5 embeddings written by `latte-bench encode-prompts` (no text encoder needed; default: none)")


def _preset_default(name: str) -> str:
    """The default of a TrainConfig field across presets, e.g. "0.0001 (demo: 0.002)"."""

    groups: dict[str, list[str]] = {}
    for preset_name, cfg in _presets.PRESETS.items():
        groups.setdefault(repr(getattr(cfg, name)), []).append(preset_name)
    if len(groups) == 1:
        return next(iter(groups)).strip("'")
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    first, rest = ordered[0][0].strip("'"), [f"{', '.join(n)}: {v.strip(chr(39))}" for v, n in ordered[1:]]
    return f"{first} ({'; '.join(rest)})"


def register(subparsers) -> None:
    fmt = HelpFormatter
    p = subparsers.add_parser("train", formatter_class=fmt, help="train Latte from a preset (official configs or the CPU demo)",
                              description="Train Latte. Presets follow the official configs; each flag overrides one "
                              "field (defaults below are the presets' values).")
    p.add_argument("preset", choices=sorted(_presets.PRESETS), help="ffs, sky, ucf101, taichi, their _img variants, or demo")
    add_options(p, options_of(TrainConfig), defaults=False, default_text=_preset_default)
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out; other settings than the run's are refused (default: off)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: continue with changed settings, recorded in config.json and metrics.jsonl (default: off)")
    add_options(p, [PROGRESS, THREADS])
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("encode", help="pre-encode a dataset's clips into VAE latent shards", formatter_class=fmt,
                              description="Encode every training clip of a preset's dataset with the VAE once, into "
                              "latent shards that `train --latents DIR` reads instead of decoding videos each step.")
    e.add_argument("preset", choices=sorted(_presets.PRESETS), help="which dataset layout, clip length and stride to use")
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
    add_options(s, [o for o in options_of(SamplingSettings) if o.name not in ("labels", "t2v_prompts")],
                overrides=SAMPLE_OVERRIDES)
    t2v = s.add_argument_group("text-to-video (a Latte-1 --ckpt; video i gets prompt i mod the number of prompts)")
    add_options(t2v.add_mutually_exclusive_group(), [PROMPT, PROMPTS, PROMPT_EMBEDS])
    s.add_argument("--format", choices=("mp4", "png", "npz"), default="mp4",
                   help="mp4 (lossy, Latte's), png frame folders or one npz (lossless)")
    add_options(s, [DEVICE, PROGRESS, THREADS])
    s.add_argument("--allow-settings-change", action="store_true",
                   help="keep videos in --out made with other settings and add these (recorded in samples.json)")
    s.set_defaults(func=run_sample)

    ep = subparsers.add_parser("encode-prompts", formatter_class=fmt,
                               help="encode text prompts with Latte-1's T5 into a file that `sample --prompt-embeds` reads",
                               description="Encode prompts as LattePipeline does (lower-cased, up to 120 tokens, with the empty "
                               "negative prompt) with the T5 of a Latte-1 folder, into one safetensors file, so that a machine "
                               "without T5 can sample.")
    ep.add_argument("--ckpt", required=True, help="a Latte-1 folder (its text_encoder/ and tokenizer/ are read)")
    add_options(ep.add_mutually_exclusive_group(required=True), [PROMPT, PROMPTS],
                overrides={"prompt": {"help": "one prompt"}, "prompts": {"help": "a text file, one prompt per line"}})
    ep.add_argument("--out", required=True, help="the .safetensors file to write")
    ep.add_argument("--precision", choices=SAMPLE_PRECISIONS, default="fp32", help="T5 weights dtype")
    add_options(ep, [DEVICE])
    ep.set_defaults(func=run_encode_prompts)

    x = subparsers.add_parser("export-official", help="write a checkpoint's EMA weights as the official {'ema': state_dict}",
                              formatter_class=fmt,
                              description="Write the EMA weights of a latte-bench training checkpoint in the official "
                              "Latte format {'ema': state_dict}, which the official sample scripts and `sample --ckpt` read.")
    x.add_argument("--ckpt", required=True, help="a latte-bench training checkpoint or run folder (its latest checkpoint)")
    x.add_argument("--out", required=True, help="the .pt file to write")
    x.set_defaults(func=run_export)


# `sample` leaves --sampler, --steps and --cfg-scale to eval --ckpt's defaults for the checkpoint's dataset
# (with_sampling_defaults, once the checkpoint is read), and samples 4 videos at a time
SAMPLE_OVERRIDES = {
    "sampler": {"default": None, "help": "diffusion sampler (default: eval --ckpt's for the checkpoint's dataset: ddpm; "
                                         "demo: ddim; Latte-1: ddim, as LattePipeline)"},
    "steps": {"default": None, "help": "sampler steps (default: eval --ckpt's for the checkpoint's dataset: 250; demo: 25; "
                                       "Latte-1: 50)"},
    "cfg_scale": {"default": None, "help": "classifier-free guidance scale, 1: none (default: eval --ckpt's for the "
                                           "checkpoint's dataset: 7 for a class-conditional ucf101 model, else 1; Latte-1: 7.5)"},
    "batch_size": {"default": 4, "help": "videos per model call (does not change the videos)"}}


def train_config(args: argparse.Namespace):
    cfg = _presets.preset(args.preset)
    overrides = {o.name: getattr(args, o.name) for o in options_of(TrainConfig) if getattr(args, o.name, None) is not None}
    overrides.pop("model_options", None)
    t2v = overrides.get("model") == "Latte-T2V"  # the preset's options are Latte's keys, not Latte-T2V's
    if getattr(args, "model_options", None):
        overrides["model_options"] = {**({} if t2v else cfg.model_options), **args.model_options}
    if "model" in overrides and "model_options" not in overrides and (args.preset == "demo" or t2v):
        overrides["model_options"] = {}  # a named size replaces the demo's tiny one
    return dataclasses.replace(cfg, **overrides)


def run_train(args) -> int:
    _device.set_threads(args.threads)
    cfg = train_config(args)
    result = _trainer.train(cfg, resume=args.resume, progress=args.progress,
                   allow_config_change=getattr(args, "allow_config_change", False), evaluate_fvd=_periodic.periodic_fvd)

    if _distributed.is_main():
        print(f"trained to step {result['step']}  loss {result['loss']:.4f}  run {result['run_dir']}")
    return 0


def run_encode(args) -> int:
    cfg = _presets.preset(args.preset)
    for name in ("vae", "image_size", "num_frames", "frame_interval", "seed"):
        if getattr(args, name) is not None:
            cfg = dataclasses.replace(cfg, **{name: getattr(args, name)})
    if cfg.pixel_space:
        raise UserError("encode needs a VAE: pass --vae stabilityai/sd-vae-ft-ema (or a local AutoencoderKL folder)")

    _fsutil.check_writable(args.out, "--out")  # before the dataset is listed or the VAE loaded
    device = _device.resolve_device(args.device)
    _distributed.init(device.type)
    dataset = _datasets.ClipDataset.from_folder(cfg.dataset, args.data, split=args.split, num_frames=cfg.num_frames,
                                      frame_interval=cfg.frame_interval, image_size=cfg.image_size, seed=cfg.seed)
    space = _latents.LatentSpace(_latents.load_vae(cfg.vae, device), cfg.vae_scale, cfg.vae_batch_frames)
    out = _latents.encode_dataset(dataset, space, args.out, shard_size=args.shard_size, batch_size=args.batch_size, device=device,
                         description={"dataset": cfg.dataset, "data": str(args.data), "vae": cfg.vae, "num_frames": cfg.num_frames,
                                      "frame_interval": cfg.frame_interval, "image_size": cfg.image_size,
                                      "channels": space.channels, "latent_size": cfg.image_size // space.downsample,
                                      "skipped_videos": [n for n, _ in dataset.skipped]})
    if _distributed.is_main():
        print(f"encoded {len(dataset)} clips into {out} ({len(dataset.skipped)} videos skipped)")
    return 0


def run_sample(args) -> int:
    if _t2v.is_t2v_folder(args.ckpt):

        return _t2v_commands.run_sample_t2v(args)
    given = [opt.cli_flag for opt in (PROMPT, PROMPTS, PROMPT_EMBEDS) if getattr(args, opt.name, None) is not None]
    if given:
        raise UserError(f"{given[0]} needs a Latte-1 folder as --ckpt (transformer/, vae/, ...); {args.ckpt} is a "
                        "class-conditional or unconditional checkpoint")
    return _run_sample(args)  # --sampler, --steps, --cfg-scale left out: eval --ckpt's for the checkpoint's dataset


def run_encode_prompts(args) -> int:
    return _t2v_commands.run_encode_prompts(args)


def _run_sample(args) -> int:
    _device.set_threads(args.threads)
    out = Path(args.out)
    _fsutil.check_writable(out, "--out")  # before the model is loaded or anything is sampled
    device = _device.resolve_device(args.device)
    _distributed.init(device.type)
    loaded = _checkpoint.load_model(args.ckpt, args.weights, preset=args.preset, model_name=args.model_name, device=device)
    model, info = loaded.model, loaded.info
    args = with_sampling_defaults(args, info)
    vae_spec = args.vae or info.get("vae", "none")
    shape = (int(info["num_frames"]), int(info["latent_channels"]), int(info["latent_size"]), int(info["latent_size"]))
    record = {
        "checkpoint": loaded.checkpoint["path"], "checkpoint_sha256": loaded.checkpoint["sha256"],
        "checkpoint_step": loaded.checkpoint.get("step"), "ckpt_argument": str(args.ckpt),
        "weights": args.weights, "num_videos": args.num_videos, "seed": args.seed, "sampler": args.sampler,
        "steps": args.steps, "cfg_scale": args.cfg_scale, "format": args.format, "precision": args.precision,
        "vae": vae_spec, "shape": list(shape), "world_size": _distributed.world_size(),
        "uint8": "clamp(floor((x*0.5+0.5)*255+0.5),0,255)", "environment": _provenance.environment(),
    }
    # the VAE first: a bad one is refused before --out is made
    space = _checkpoint.latent_space(info, device, vae=vae_spec)
    if _distributed.is_main():  # refused here, before any sampling, when --out holds other settings' videos
        record = _sampling.begin_record(out, record, allow_change=args.allow_settings_change)
    _distributed.barrier()
    result = _sampling.sample_videos(model, space, out, args.num_videos, shape, fmt=args.format, batch_size=args.batch_size,
                           seed=args.seed, num_classes=int(info.get("num_classes", 0)), sampler=args.sampler, steps=args.steps,
                           cfg_scale=args.cfg_scale, device=device, **loaded.diffusion_options,
                           autocast_dtype=_device.PRECISIONS[args.precision], progress=args.progress)
    if _distributed.is_main():
        _sampling.finish_record(out, record, result["present"], result["labels"])
        where = out / "videos.npz" if args.format == "npz" else out
        print(f"{result['present']} videos in {where} ({result['skipped']} of the {args.num_videos} asked were already there)")
    return 0


def with_sampling_defaults(args, info: dict):
    """``args`` with --sampler, --steps and --cfg-scale left out set as ``eval --ckpt`` sets them for the
    checkpoint's dataset (``info["dataset"]``; :func:`~latte_bench.data.registry.sampling_defaults`)."""

    dataset = info.get("dataset")
    defaults = _registry.sampling_defaults(dataset if dataset in _registry.DATASETS else None, int(info.get("num_classes", 0) or 0))
    return argparse.Namespace(**{**vars(args), **{key: getattr(defaults, key) for key in ("sampler", "steps", "cfg_scale")
                                                   if getattr(args, key) is None}})


def run_export(args) -> int:
    path = _checkpoint.resolve_checkpoint(args.ckpt)
    _fsutil.check_writable(Path(args.out).parent, "--out")
    ckpt = _checkpoint.load_checkpoint(path)
    if not (isinstance(ckpt, dict) and ckpt.get("format") == _checkpoint.FORMAT):
        raise UserError(f"{path}: not a latte-bench training checkpoint")
    _checkpoint.export_official(args.out, ckpt)
    print(f"wrote {args.out}")
    return 0
