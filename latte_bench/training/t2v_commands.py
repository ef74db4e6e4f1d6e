"""``latte-bench sample --ckpt LATTE1_FOLDER --prompt ...`` and ``latte-bench encode-prompts``."""

from __future__ import annotations

from pathlib import Path

from latte_bench.errors import UserError


def prompts_from_args(args) -> list[str] | None:
    """The prompt texts of ``--prompt`` / ``--prompts FILE`` (None with ``--prompt-embeds``)."""
    from latte_bench.data.prompts import read_prompt_file

    if getattr(args, "prompt", None) is not None:
        if not args.prompt.strip():
            raise UserError("--prompt is empty; pass the text to generate, e.g. --prompt 'a dog running on the beach'")
        return [args.prompt]
    if getattr(args, "prompts", None) is not None:
        return read_prompt_file(args.prompts)
    return None


def run_encode_prompts(args) -> int:
    from latte_bench.device import resolve_device
    from latte_bench.fsutil import check_writable
    from latte_bench.training.t2v import prompt_embeddings

    check_writable(Path(args.out).parent, "--out")
    embeddings = prompt_embeddings(args.ckpt, prompts=prompts_from_args(args), device=resolve_device(args.device),
                                   precision=args.precision)
    embeddings.save(args.out)
    print(f"wrote {args.out} ({len(embeddings)} prompts, sha256 {embeddings.sha256()[:16]})")
    return 0


def run_sample_t2v(args) -> int:

    from latte_bench import distributed as dist
    from latte_bench.data.prompts import prompts_sha256
    from latte_bench.device import resolve_device, set_threads
    from latte_bench.fsutil import check_writable
    from latte_bench.provenance import environment
    from latte_bench.training.sampling import begin_record, finish_record, sample_videos
    from latte_bench.training.t2v import (
        MAX_TOKENS, NEGATIVE_PROMPT, T2V_DEFAULTS, Latte1, check_sampler, prompt_embeddings, t2v_generator,
    )
    from latte_bench.device import PRECISIONS

    for flag, key in (("--preset", "preset"), ("--model", "model_name")):
        if getattr(args, key, None) is not None:
            raise UserError(f"{flag} describes official class-conditional checkpoints; a Latte-1 folder carries its config: drop {flag}")
    sampler = args.sampler or T2V_DEFAULTS["sampler"]
    steps = T2V_DEFAULTS["steps"] if args.steps is None else args.steps
    cfg_scale = T2V_DEFAULTS["cfg_scale"] if args.cfg_scale is None else args.cfg_scale
    prompts = prompts_from_args(args)
    if prompts is None and args.prompt_embeds is None:
        raise UserError(f"{args.ckpt} is a text-to-video model: pass --prompt TEXT, --prompts FILE or --prompt-embeds FILE")
    out = Path(args.out)
    check_writable(out, "--out")
    set_threads(args.threads)
    device = resolve_device(args.device)
    dist.init(device.type)
    check_sampler(sampler)  # before anything is loaded
    embeddings = prompt_embeddings(args.ckpt, prompts=prompts, embeds_file=args.prompt_embeds, device=device,
                                   precision=args.precision)
    latte1 = Latte1.load(args.ckpt, device, vae=args.vae)
    record = {
        "checkpoint": latte1.checkpoint["path"], "checkpoint_sha256": latte1.checkpoint["sha256"], "checkpoint_step": None,
        "ckpt_argument": str(args.ckpt), "model": "Latte-T2V", "weights": "transformer", "num_videos": args.num_videos,
        "seed": args.seed, "sampler": sampler, "steps": steps, "cfg_scale": cfg_scale, "format": args.format,
        "precision": args.precision, "vae": latte1.checkpoint["vae"], "shape": list(latte1.latent_shape),
        "scheduler": latte1.checkpoint["scheduler"], "prompts": embeddings.prompts,
        "prompts_sha256": prompts_sha256(embeddings.prompts), "prompt_embeds_sha256": embeddings.sha256(),
        "prompt_source": embeddings.source, "prompt_of_video": "video i -> prompts[i mod len(prompts)]",
        "negative_prompt": NEGATIVE_PROMPT, "max_tokens": MAX_TOKENS, "world_size": dist.world_size(),
        "uint8": "clamp(floor((x*0.5+0.5)*255+0.5),0,255)", "environment": environment(),
    }
    if dist.is_main():
        record = begin_record(out, record, allow_change=args.allow_settings_change)
    dist.barrier()
    generate = t2v_generator(latte1, embeddings, seed=args.seed, sampler=sampler, steps=steps, cfg_scale=cfg_scale,
                             device=device, autocast_dtype=PRECISIONS[args.precision])
    result = sample_videos(None, None, out, args.num_videos, latte1.latent_shape, fmt=args.format, batch_size=args.batch_size,
                           seed=args.seed, progress=args.progress, generate=generate)
    if dist.is_main():
        finish_record(out, record, result["present"], None)
        where = out / "videos.npz" if args.format == "npz" else out
        print(f"{result['present']} videos in {where} ({result['skipped']} of the {args.num_videos} asked were already there)")
    return 0
