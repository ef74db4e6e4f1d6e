"""``latte-bench sample --ckpt LATTE1_FOLDER --prompt ...`` and ``latte-bench encode-prompts``."""

from __future__ import annotations

from pathlib import Path

from latte_bench.errors import UserError
from latte_bench.lazy import lazy_module

# Loaded on first use, so that `latte-bench --help` (which builds this module's parsers) does not import torch.
_device = lazy_module("latte_bench.device")
_distributed = lazy_module("latte_bench.distributed")
_fsutil = lazy_module("latte_bench.fsutil")
_prompts = lazy_module("latte_bench.data.prompts")
_provenance = lazy_module("latte_bench.provenance")
_sampling = lazy_module("latte_bench.training.sampling")
_t2v = lazy_module("latte_bench.training.t2v")


def prompts_from_args(args) -> list[str] | None:
    """The prompt texts of ``--prompt`` / ``--prompts FILE`` (None with ``--prompt-embeds``)."""

    if getattr(args, "prompt", None) is not None:
        if not args.prompt.strip():
            raise UserError("--prompt is empty; pass the text to generate, e.g. --prompt 'a dog running on the beach'")
        return [args.prompt]
    if getattr(args, "prompts", None) is not None:
        return _prompts.read_prompt_file(args.prompts)
    return None


def run_encode_prompts(args) -> int:
    _fsutil.check_writable(Path(args.out).parent, "--out")
    embeddings = _t2v.prompt_embeddings(args.ckpt, prompts=prompts_from_args(args), device=_device.resolve_device(args.device),
                                   precision=args.precision)
    embeddings.save(args.out)
    print(f"wrote {args.out} ({len(embeddings)} prompts, sha256 {embeddings.sha256()[:16]})")
    return 0


def run_sample_t2v(args) -> int:
    for flag, key in (("--preset", "preset"), ("--model", "model_name")):
        if getattr(args, key, None) is not None:
            raise UserError(f"{flag} describes official class-conditional checkpoints; a Latte-1 folder carries its config: drop {flag}")
    sampler = args.sampler or _t2v.T2V_DEFAULTS["sampler"]
    steps = _t2v.T2V_DEFAULTS["steps"] if args.steps is None else args.steps
    cfg_scale = _t2v.T2V_DEFAULTS["cfg_scale"] if args.cfg_scale is None else args.cfg_scale
    prompts = prompts_from_args(args)
    if prompts is None and args.prompt_embeds is None:
        raise UserError(f"{args.ckpt} is a text-to-video model: pass --prompt TEXT, --prompts FILE or --prompt-embeds FILE")
    out = Path(args.out)
    _fsutil.check_writable(out, "--out")
    _device.set_threads(args.threads)
    device = _device.resolve_device(args.device)
    _distributed.init(device.type)
    _t2v.check_sampler(sampler)  # before anything is loaded
    embeddings = _t2v.prompt_embeddings(args.ckpt, prompts=prompts, embeds_file=args.prompt_embeds, device=device,
                                   precision=args.precision)
    latte1 = _t2v.Latte1.load(args.ckpt, device, vae=args.vae)
    record = {
        "checkpoint": latte1.checkpoint["path"], "checkpoint_sha256": latte1.checkpoint["sha256"], "checkpoint_step": None,
        "ckpt_argument": str(args.ckpt), "model": "Latte-T2V", "weights": "transformer", "num_videos": args.num_videos,
        "seed": args.seed, "sampler": sampler, "steps": steps, "cfg_scale": cfg_scale, "format": args.format,
        "precision": args.precision, "vae": latte1.checkpoint["vae"], "shape": list(latte1.latent_shape),
        "scheduler": latte1.checkpoint["scheduler"], "prompts": embeddings.prompts,
        "prompts_sha256": _prompts.prompts_sha256(embeddings.prompts), "prompt_embeds_sha256": embeddings.sha256(),
        "prompt_source": embeddings.source, "prompt_of_video": "video i -> prompts[i mod len(prompts)]",
        "negative_prompt": _t2v.NEGATIVE_PROMPT, "max_tokens": _t2v.MAX_TOKENS, "world_size": _distributed.world_size(),
        "uint8": "clamp(floor((x*0.5+0.5)*255+0.5),0,255)", "environment": _provenance.environment(),
    }
    if _distributed.is_main():
        record = _sampling.begin_record(out, record, allow_change=args.allow_settings_change)
    _distributed.barrier()
    generate = _t2v.t2v_generator(latte1, embeddings, seed=args.seed, sampler=sampler, steps=steps, cfg_scale=cfg_scale,
                             device=device, autocast_dtype=_device.PRECISIONS[args.precision])
    result = _sampling.sample_videos(None, None, out, args.num_videos, latte1.latent_shape, fmt=args.format, batch_size=args.batch_size,
                           seed=args.seed, progress=args.progress, generate=generate)
    if _distributed.is_main():
        _sampling.finish_record(out, record, result["present"], None)
        where = out / "videos.npz" if args.format == "npz" else out
        print(f"{result['present']} videos in {where} ({result['skipped']} of the {args.num_videos} asked were already there)")
    return 0
