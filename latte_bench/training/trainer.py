"""The Latte training loop: one function, read top to bottom (nanoGPT style).

``train(cfg)`` runs single-process or under ``torchrun`` with DDP (default) or FSDP2
(``--distributed fsdp``: parameters, gradients, optimizer state and EMA sharded per block;
checkpoints are gathered to full state dicts, so they are the same files either way). Per optimizer step: ``grad_accum`` micro-batches of ``batch_size``
clips per process → latents (VAE or pixels) → IDDPM hybrid loss at random timesteps →
backward (under bf16 autocast by default on CUDA, see :func:`resolve_precision`) → gradient-norm
clipping once the step reaches ``start_clip_iter`` → AdamW (fused on CUDA) → EMA.

Randomness that shapes the loss (clip choice, crop start, flip, timestep, noise, VAE
posterior sample, label dropout) is drawn per *sample* from generators seeded with
``(seed, step, position in the global batch)`` (data: ``(seed, epoch, index)``), never from
a process-global stream. So (1) a run resumed from a checkpoint continues bit-exactly, and
(2) 2 processes × batch 4 follow the same loss trajectory as 1 process × batch 8.

Crashes: checkpoints are written atomically and a save's leftover temporary file is removed
at the next start; ``--resume`` refuses settings that differ from the checkpoint's (see
:func:`latte_bench.training.checkpoint.resume_checkpoint`) and drops what the crashed run
logged after that checkpoint, so a killed and resumed run ends bit-identical to an
uninterrupted one (tests/test_faults.py).

Outputs in ``cfg.out``: ``config.json``, ``metrics.jsonl`` (one JSON record per line; see
docs/training.md), ``checkpoints/{step:07d}.pt``, ``samples/{step:07d}/*.mp4`` and
``fvd/{step:07d}/`` when periodic sampling / FVD are on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from latte_bench.data.registry import get_dataset
from latte_bench.errors import UserError, check_int
from latte_bench.fsutil import check_writable, write_bytes, write_errors, write_json
from latte_bench import distributed as dist
from latte_bench.device import PRECISIONS, resolve_device
from latte_bench.training.checkpoint import (
    RUN_WRITE_WAY_OUT,
    build_model,
    checkpoint_path,
    clean_checkpoint_temporaries,
    latest_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from latte_bench.training.ema import create_ema, update_ema
from latte_bench.training.latents import LatentShardDataset, LatentSpace, load_vae
from latte_bench.training.presets import TrainConfig, learning_rate
from latte_bench.data.datasets import ClipDataset, StepBatchSampler, collate
from latte_bench.data.demo import SHAPES, make_demo_videos
from latte_bench.diffusion import create_diffusion
from latte_bench.training.sampling import sample_videos


# ---------------------------------------------------------------- fast paths (CUDA)
def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run uses: ``"auto"`` is bf16 autocast on CUDA and fp32 elsewhere.

    ``"fp32"`` is the exact mode: no autocast and, on CUDA, TF32 off (see :func:`set_matmul_precision`).
    """
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def set_matmul_precision(precision: str, device: torch.device) -> None:
    """On CUDA: TF32 matmuls and cuDNN convolutions for the mixed-precision runs, off for ``fp32``.

    A process-wide setting made once by the training run (no-op on CPU). Metric code never
    changes it for the rest of the process: it scopes its own with
    :func:`latte_bench.device.exact_fp32`.
    """
    if torch.device(device).type == "cuda":
        tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def make_optimizer(params, cfg: TrainConfig, device: torch.device, sharded: bool = False) -> torch.optim.AdamW:
    """AdamW over ``params``; the fused CUDA kernel (one launch for all parameters) on CUDA, unless FSDP-sharded."""
    fused = torch.device(device).type == "cuda" and not sharded
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True if fused else None)


def compile_for_training(model: torch.nn.Module, cfg: TrainConfig, **options) -> torch.nn.Module:
    """When ``cfg.compile``: ``torch.compile`` each transformer block of ``model`` in place; returns ``model``.

    Regional compilation: the blocks repeat, so one compiled graph per block kind serves all of
    them (tens of seconds of compilation instead of minutes for the whole unrolled model), the
    parameter names and checkpoints are unchanged, and DDP/FSDP/gradient checkpointing wrap
    the compiled blocks as before. Models without ``blocks`` are compiled whole. Attention stays
    ``F.scaled_dot_product_attention``, which picks the flash kernel under bf16/fp16 autocast
    when no mask is given (the default ``only_video`` training). ``options`` go to ``torch.compile``.
    Make copies (the EMA) before: a deep copy of a compiled block would still run the original's code.
    """
    if not cfg.compile:
        return model
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        return torch.compile(model, **options)
    from torch._dynamo import config

    # should a torch build key compiled code on the block instance, every block must still fit in the cache
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, limit, max(getattr(config, limit), 2 * len(blocks)))
    for block in blocks:
        block.compile(**options)
    return model


def build_dataset(cfg: TrainConfig):
    """The training dataset: latent shards, a data folder, or the in-memory demo set."""

    if cfg.latents:
        return LatentShardDataset(cfg.latents, num_images=cfg.num_images, seed=cfg.seed)
    options = dict(num_frames=cfg.num_frames, frame_interval=cfg.frame_interval, image_size=cfg.image_size,
                   num_images=cfg.num_images, seed=cfg.seed)
    if cfg.data is None:
        if not get_dataset(cfg.dataset).procedural:
            raise UserError(f"preset {cfg.dataset} needs --data pointing at the {cfg.dataset} videos (or --latents)")

        classes = max(cfg.num_classes, 1)
        span = (cfg.num_frames - 1) * cfg.frame_interval + 1
        videos, labels = make_demo_videos(cfg.demo_videos, num_frames=span + 4, size=cfg.image_size, seed=cfg.seed, classes=classes)
        return ClipDataset.from_arrays(videos, labels, kind="demo", class_names=SHAPES[:classes], **options)
    return ClipDataset.from_folder(cfg.dataset, cfg.data, split=cfg.split, **options)


def sample_seed(*key: int) -> int:
    """A 63-bit seed from integers (``np.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def per_sample_draws(cfg: TrainConfig, step: int, positions: list[int], shape, num_classes: int, num_images: int):
    """Timesteps (B,), noise (B, *shape), VAE eps (B, *shape), label-drop masks (B,), (B, K) for the given global positions."""
    t, noise, eps, drop, drop_img = [], [], [], [], []
    for pos in positions:
        g = torch.Generator().manual_seed(sample_seed(cfg.seed, step, pos))
        t.append(torch.randint(0, 1000, (1,), generator=g))
        noise.append(torch.randn(shape, generator=g))
        eps.append(torch.randn(shape, generator=g))
        drop.append(torch.rand(1, generator=g) < cfg.class_dropout_prob)
        drop_img.append(torch.rand(num_images, generator=g) < cfg.class_dropout_prob)
    return torch.cat(t), torch.stack(noise), torch.stack(eps), torch.cat(drop), torch.stack(drop_img)


class JsonlLog:
    """Appends one JSON record per line to ``path`` (rank 0 only; flushed each write)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        if self.enabled:
            with write_errors(self.path, RUN_WRITE_WAY_OUT):
                with open(self.path, "a") as f:
                    f.write(json.dumps(record) + "\n")

    def rewind(self, step: int) -> int:
        """Drop what a crashed run logged after ``step`` (records with a later step, a half-written
        last line), so a resumed log reads like an uninterrupted one; returns the records dropped."""
        if not (self.enabled and self.path.is_file()):
            return 0
        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                dropped += 1
                continue
            if int(record.get("step", 0)) > step:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            write_bytes(self.path, "".join(line + "\n" for line in kept).encode())
        return dropped


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, allow_config_change: bool = False,
          evaluate_fvd: Callable[..., dict] | None = None) -> dict:
    """Train per ``cfg``; returns ``{"step", "loss", "run_dir"}``. See the module docstring.

    ``resume``: continue from the latest checkpoint in ``cfg.out``; settings that differ from the
    checkpoint's are refused unless ``allow_config_change`` (then recorded in ``config.json``
    under ``config_changes`` and in the ``resume`` record of ``metrics.jsonl``).
    ``evaluate_fvd``: what ``cfg.fvd_every`` runs, called as
    ``evaluate_fvd(cfg, ema, latent_space, run_dir, step, device, (latent_channels, latent_size))`` and
    returning the ``metrics.jsonl`` fields (``latte-bench train`` passes
    :func:`latte_bench.metrics.periodic.periodic_fvd`).
    """
    from tqdm.auto import tqdm


    # ---------------------------------------------------------------- setup
    device = resolve_device(cfg.device)
    dist.init(device.type)
    rank, world, main = dist.rank(), dist.world_size(), dist.is_main()
    if cfg.distributed not in ("ddp", "fsdp"):
        raise UserError(f"--distributed must be ddp or fsdp, not {cfg.distributed!r}")
    fsdp = cfg.distributed == "fsdp" and world > 1
    check_int("steps", cfg.steps, 1)  # 0 steps would "train" to loss nan and leave no checkpoint
    learning_rate(cfg, 0)  # a bad --lr-schedule fails here, before any work
    diffusion_options = cfg.diffusion_options  # so does a bad --prediction or --noise-schedule
    if not (cfg.snr_gamma >= 0 and math.isfinite(cfg.snr_gamma)):
        raise UserError(f"--snr-gamma {cfg.snr_gamma}: must be > 0 (Min-SNR-gamma weighting) or 0 (uniform MSE)")
    if fsdp and cfg.model == "Latte-T2V":
        raise UserError("--distributed fsdp shards Latte's blocks; train Latte-T2V with ddp")
    if cfg.fvd_every and evaluate_fvd is None:
        raise UserError("fvd_every needs an FVD evaluator: train(cfg, evaluate_fvd=latte_bench.metrics.periodic.periodic_fvd)")
    if fsdp and (cfg.sample_every or cfg.fvd_every):
        raise UserError("--sample-every/--fvd-every are not supported with --distributed fsdp; sample from the checkpoints instead")
    precision = resolve_precision(cfg.precision, device)
    cfg = dataclasses.replace(cfg, precision=precision)  # config.json and resume compare the precision that runs
    amp_dtype = PRECISIONS[precision]
    set_matmul_precision(precision, device)
    run_dir = Path(cfg.out)
    check_writable(run_dir, "--out")  # before any work: a read-only --out is one line, not a lost run
    ckpt, changed, config_changes = None, {}, []
    if resume:
        found, ckpt, changed = resume_checkpoint(run_dir, {**cfg.to_dict(), "world_size": world}, allow_config_change)
        config_changes = list(ckpt["config"].get("config_changes", []))
        if changed:
            config_changes.append({"step": int(ckpt["step"]), "changed": changed})
    elif latest_checkpoint(run_dir) is not None:
        raise UserError(f"{run_dir} already holds checkpoints; pass --resume to continue or choose another --out")
    if main:
        clean_checkpoint_temporaries(run_dir)  # left by a save that a crash interrupted
    torch.manual_seed(cfg.seed)  # the same weight init on every rank (and so the same EMA start)
    np.random.seed(cfg.seed % 2**32)

    # ---------------------------------------------------------------- data and latent space
    dataset = build_dataset(cfg)
    vae = None if cfg.latents and cfg.pixel_space else load_vae(cfg.vae, device)
    latent_space = LatentSpace(vae, cfg.vae_scale, cfg.vae_batch_frames)
    if cfg.latents:
        in_channels = int(dataset.meta.get("channels", latent_space.channels))
        input_size = int(dataset.meta.get("latent_size", cfg.image_size // latent_space.downsample))
    else:
        in_channels, input_size = latent_space.channels, cfg.image_size // latent_space.downsample
    num_classes = cfg.num_classes
    if num_classes and getattr(dataset, "num_classes", num_classes) > num_classes:
        raise UserError(f"the data has {dataset.num_classes} classes but the model {num_classes}; set --num-classes")

    # ---------------------------------------------------------------- model, EMA, optimizer
    model = build_model(cfg, in_channels, input_size).to(device)
    if num_classes and hasattr(model, "y_embedder"):
        model.y_embedder.dropout_prob = 0.0  # label dropout is drawn per sample below (world-size independent)
    ema = create_ema(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg, device, sharded=fsdp)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step = 0
    if ckpt is not None:  # full (unsharded) weights go in before any FSDP sharding
        try:
            model.load_state_dict(ckpt["model"])
            ema.load_state_dict(ckpt["ema"])
        except RuntimeError as e:
            first = (str(e).splitlines() or [""])[0]
            raise UserError(f"{found}: its weights do not fit the model these settings build ({first}); "
                            "resume with the run's model settings") from None
    if fsdp:  # FSDP2: each block is one all-gather unit; the EMA is sharded the same way
        from torch.distributed.fsdp import fully_shard

        for module in (model, ema):
            for block in module.blocks:
                fully_shard(block)
            fully_shard(module)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, cfg, device, sharded=True)
    if ckpt is not None:  # the optimizer state is stored keyed by parameter name (the same for DDP and FSDP)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, ckpt["optimizer"], options=StateDictOptions(full_state_dict=fsdp))
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step = int(ckpt["step"])
        set_rng_state(ckpt["rng"])
        del ckpt
    run_config = {**cfg.to_dict(), "latent_channels": in_channels, "latent_size": input_size, "world_size": world}
    if config_changes:
        run_config["config_changes"] = config_changes
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        with write_errors(run_dir / "config.json", RUN_WRITE_WAY_OUT):
            write_json(run_dir / "config.json", run_config)
    model = compile_for_training(model, cfg)
    train_model = model
    if world > 1 and not fsdp:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()

    sampler = StepBatchSampler(len(dataset), cfg.batch_size, world=world, rank=rank, accum=cfg.grad_accum,
                               seed=cfg.seed, start_step=step)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
                                         pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    batches = iter(loader)
    diffusion = create_diffusion("", noise_schedule=diffusion_options["noise_schedule"],
                                 predict_xstart=diffusion_options["prediction"] == "x0", learn_sigma=cfg.learn_sigma)
    log = JsonlLog(run_dir / "metrics.jsonl", main)
    if main:
        log.rewind(step)  # a crashed run's records after the checkpoint it resumes from
        log.write({"event": "start" if step == 0 else "resume", "step": step, "world_size": world, "clips": len(dataset),
                   "skipped_videos": len(getattr(dataset, "skipped", [])), "global_batch": sampler.global_batch,
                   "params": sum(p.numel() for p in params), "time": time.time(),
                   **({"config_changed": changed} if changed else {})})
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and main))

    # ---------------------------------------------------------------- loop
    window_loss, window_steps, window_samples, skipped_total = 0.0, 0, 0, 0
    window_start = time.time()
    loss_value = float("nan")
    while step < cfg.steps:
        step_loss = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            batch = next(batches)
            skipped_total += batch["skipped"]
            if "moments" in batch:
                moments = batch["moments"].to(device, non_blocking=True)
            else:
                moments = latent_space.moments(batch["video"].to(device, non_blocking=True))
            shape = (moments.shape[1], moments.shape[2] // 2, *moments.shape[3:])
            first = (micro * world + rank) * cfg.batch_size  # this micro-batch's place in the global batch
            positions = list(range(first, first + len(moments)))
            t, noise, eps, drop, drop_img = per_sample_draws(cfg, step, positions, shape, num_classes, cfg.num_images)
            mean, logvar = moments.chunk(2, dim=2)
            x = mean if vae is None else (mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * eps.to(device)) * cfg.vae_scale
            kwargs = {}
            if cfg.num_images:
                kwargs["use_image_num"] = cfg.num_images
            if num_classes:
                y = batch["label"].to(device)
                kwargs["y"] = torch.where(drop.to(device), torch.full_like(y, num_classes), y)
                if cfg.num_images:
                    y_img = batch["image_labels"].to(device)
                    kwargs["y_image"] = torch.where(drop_img.to(device), torch.full_like(y_img, num_classes), y_img)
            sync = micro == cfg.grad_accum - 1
            if fsdp:
                model.set_requires_gradient_sync(sync)
            with (nullcontext() if sync or world == 1 or fsdp else train_model.no_sync()):
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    losses = diffusion.training_losses(train_model, x, t.to(device), kwargs, noise.to(device),
                                                       snr_gamma=cfg.snr_gamma or None)
                loss = losses["loss"].mean() / cfg.grad_accum
                scaler.scale(loss).backward()
            step_loss += loss.detach()
        check_finite_loss(step_loss, step + 1, run_dir)  # before the update, the EMA and any checkpoint of this step
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        scaler.unscale_(optimizer)
        max_norm = cfg.clip_max_norm if step >= cfg.start_clip_iter else math.inf  # before: norm only logged
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        update_ema(ema, model, cfg.ema_decay)
        step += 1
        bar.update(1)

        window_loss += float(step_loss)
        window_steps += 1
        window_samples += sampler.global_batch
        if step % cfg.log_every == 0 or step == cfg.steps:
            totals = torch.tensor([window_loss, float(skipped_total)], dtype=torch.float64, device=device)
            if dist.active():
                torch.distributed.all_reduce(totals)
            loss_value = float(totals[0]) / (window_steps * world)
            elapsed = max(time.time() - window_start, 1e-9)
            record = {"step": step, "loss": loss_value, "grad_norm": float(grad_norm), "lr": optimizer.param_groups[0]["lr"],
                      "clipped": bool(step - 1 >= cfg.start_clip_iter), "steps_per_s": window_steps / elapsed,
                      "samples_per_s": window_samples / elapsed, "skipped_videos": int(totals[1]), "time": time.time()}
            log.write(record)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            window_loss, window_steps, window_samples, skipped_total = 0.0, 0, 0, 0
            window_start = time.time()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            states = full_states(model, ema, optimizer, fsdp)  # a collective under FSDP: every rank takes part
            if main:
                save_checkpoint(checkpoint_path(run_dir, step), model=states[0], ema=states[1], optimizer=states[2],
                                step=step, config=run_config, scaler=scaler)
            dist.barrier()
        if cfg.sample_every and step % cfg.sample_every == 0:
            preview(cfg, ema, latent_space, run_dir / "samples" / f"{step:07d}", cfg.sample_videos, device, (in_channels, input_size))
            log.write({"event": "samples", "step": step, "path": str(run_dir / "samples" / f"{step:07d}")})
        if cfg.fvd_every and step % cfg.fvd_every == 0:
            log.write({"event": "fvd", "step": step, **evaluate_fvd(cfg, ema, latent_space, run_dir, step, device, (in_channels, input_size))})
    bar.close()
    return {"step": step, "loss": loss_value, "run_dir": str(run_dir)}


def check_finite_loss(step_loss: torch.Tensor, step: int, run_dir: Path) -> None:
    """Stop training (UserError naming ``step``) when the loss of this step is NaN or Inf on any process.

    ``step_loss``: this process's scalar loss of the step (summed over gradient accumulation).
    Checked before the optimizer step, so no checkpoint holds the diverged weights.
    """
    value = step_loss.detach().float().reshape(1)
    if dist.active():
        value = value.clone()
        torch.distributed.all_reduce(value)  # a NaN on one process is a NaN in the sum on every process
    if not math.isfinite(float(value)):
        kept = latest_checkpoint(run_dir)
        where = f"the last checkpoint, {kept}, is kept" if kept is not None else "no checkpoint was written"
        raise UserError(f"training diverged at step {step}: loss {float(value)} ({where}); lower --lr, "
                        "or keep --clip-max-norm / --precision fp32, and start again")


class _Stateful:
    """Stands in for a module/optimizer in :func:`save_checkpoint` with an already gathered state dict."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return self.state


def full_states(model, ema, optimizer, sharded: bool):
    """Unsharded state dicts of the model, its EMA and the optimizer (keyed by parameter name).

    With FSDP (``sharded``) the shards are gathered to CPU: a collective, call it on every rank.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    opt_state = _Stateful(get_optimizer_state_dict(model, optimizer, options=options))
    if not sharded:
        return model, ema, opt_state
    return _Stateful(get_model_state_dict(model, options=options)), _Stateful(get_model_state_dict(ema, options=options)), opt_state


def preview(cfg: TrainConfig, ema, latent_space: LatentSpace, out: Path, num_videos: int, device, latent: tuple[int, int]) -> None:
    """Write ``num_videos`` EMA samples (mp4, fixed seed 0) to ``out`` (sharded over ranks)."""

    channels, size = latent
    sample_videos(ema, latent_space, out, num_videos, (cfg.num_frames, channels, size, size), fmt="mp4",
                  batch_size=cfg.batch_size, seed=0, num_classes=cfg.num_classes, sampler=cfg.sample_sampler,
                  steps=cfg.sample_steps, device=device, progress=False, **cfg.diffusion_options)
