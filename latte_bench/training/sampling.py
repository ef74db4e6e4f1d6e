"""Sampling videos from a trained Latte: deterministic per video, resumable, sharded under torchrun.

Video ``i`` of a run with seed ``s`` is a function of ``(s, i)`` only: its initial noise and
every DDPM step's noise come from its own generator seeded with ``SeedSequence([s, i, 0])``
(passed to :func:`latte_bench.diffusion.sample` as one generator per video), its class label
from ``SeedSequence([s, i, 1])``. The result is therefore the same for any ``--batch-size`` and any
number of processes (up to floating-point differences between batch shapes on GPU).

Output layouts (what ``latte-bench eval --fake`` reads):

- ``mp4`` (default): ``OUT/000000.mp4`` ... (H.264 via imageio, ``quality=9``, 8 fps as
  Latte's ``sample_ddp.py``). Lossy: compression moves FVD by a few points.
- ``png``: ``OUT/000000/000000.png`` ... lossless frame folders (the StyleGAN-V layout).
- ``npz``: ``OUT/videos.npz`` holding uint8 (N, T, H, W, 3) under ``videos`` (lossless);
  videos are kept in ``OUT/.parts/`` until the set is complete.

``OUT/samples.json`` records the checkpoint, settings, labels and environment.
"""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latte_bench.errors import UserError
from latte_bench import distributed as dist
from latte_bench.training.latents import LatentSpace, to_uint8

FORMATS = ("mp4", "png", "npz")


def video_generator(seed: int, index: int, stream: int = 0) -> torch.Generator:
    """CPU generator for video ``index`` of a run with ``seed`` (``stream`` separates uses)."""
    state = np.random.SeedSequence([int(seed), int(index), int(stream)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def video_labels(seed: int, indices: Sequence[int], num_classes: int) -> list[int]:
    """Class label of each video, uniform over ``num_classes`` (as the official scripts), from ``(seed, i)``."""
    return [int(torch.randint(0, num_classes, (1,), generator=video_generator(seed, i, 1))) for i in indices]


@torch.no_grad()
def generate_latents(
    model,
    indices: Sequence[int],
    latent_shape: Sequence[int],
    *,
    seed: int = 0,
    sampler: str = "ddpm",
    steps: int = 250,
    cfg_scale: float = 1.0,
    num_classes: int = 0,
    labels: Sequence[int] | None = None,
    learn_sigma: bool = True,
    clip_denoised: bool = False,
    device="cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, list[int] | None]:
    """Latents (len(indices), F, C, h, w) for the videos ``indices``, and their labels (None if unconditional).

    ``sampler``: ``ddpm`` (ancestral, learned variance; the official evaluation sampler),
    ``ddim`` (eta 0) or ``dpm++`` (DPM-Solver++ 2M) — all from :mod:`latte_bench.diffusion`.
    ``clip_denoised`` clamps predicted x_0 to [-1, 1] (DDPM/DDIM): right for pixel-space models
    (the data is in [-1, 1]), wrong for VAE latents (Latte passes False). ``model`` must be in eval mode.
    """
    from latte_bench.diffusion import sample

    shape = tuple(int(s) for s in latent_shape)
    generators = [video_generator(seed, i) for i in indices]
    x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
    y = None
    if num_classes:
        labels = list(labels) if labels is not None else video_labels(seed, indices, num_classes)
        y = torch.tensor(labels, dtype=torch.int64, device=device)
    elif cfg_scale != 1.0:
        raise UserError("--cfg-scale needs a class-conditional model; use --cfg-scale 1 for unconditional checkpoints")
    ctx = torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        # one generator per video: the DDPM step noise of each video does not depend on the batch
        out = sample(model, x.shape, sampler=sampler, steps=steps, cfg_scale=cfg_scale, y=y, num_classes=num_classes or None,
                     noise=x, generator=generators, progress=progress, device=device, learn_sigma=learn_sigma,
                     clip_denoised=clip_denoised)
    return out.float(), (list(labels) if y is not None else None)


# ------------------------------------------------------------------------------------ output layout


def output_done(out: Path, index: int, fmt: str, num_frames: int) -> bool:
    if fmt == "mp4":
        return (out / f"{index:06d}.mp4").is_file()
    if fmt == "png":
        folder = out / f"{index:06d}"
        return folder.is_dir() and len(list(folder.glob("*.png"))) >= num_frames
    return (out / ".parts" / f"{index:06d}.npy").is_file()


def write_output(out: Path, index: int, frames: np.ndarray, fmt: str, fps: int = 8) -> None:
    """Write one uint8 (T, H, W, 3) video in ``fmt`` (B's atomic writers)."""
    from latte_bench.data.video import write_frames, write_video
    from latte_bench.fsutil import atomic_path

    if fmt == "mp4":
        write_video(out / f"{index:06d}.mp4", frames, fps=fps)
    elif fmt == "png":
        write_frames(out / f"{index:06d}", frames)
    else:
        with atomic_path(out / ".parts" / f"{index:06d}.npy") as tmp:
            np.save(tmp, frames)


def finish_npz(out: Path, num_videos: int) -> Path:
    """Merge ``.parts/*.npy`` into ``OUT/videos.npz`` and remove the parts."""
    from latte_bench.data.video import write_npz

    videos = np.stack([np.load(out / ".parts" / f"{i:06d}.npy") for i in range(num_videos)])
    path = write_npz(out / "videos.npz", videos)
    shutil.rmtree(out / ".parts")
    return path


def sample_videos(
    model,
    latent_space: LatentSpace,
    out: str | os.PathLike,
    num_videos: int,
    latent_shape: Sequence[int],
    *,
    fmt: str = "mp4",
    batch_size: int = 4,
    seed: int = 0,
    num_classes: int = 0,
    progress: bool = True,
    **sample_options,
) -> dict:
    """Write ``num_videos`` videos to ``out`` (this rank's share under torchrun); skip the ones already there.

    Returns ``{"written": n (this rank), "skipped": n (already there), "labels": [...] or None}``.
    """
    from tqdm.auto import tqdm

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num_frames = int(latent_shape[0])
    if fmt == "npz" and (out / "videos.npz").is_file():
        todo = []
    else:
        todo = [i for i in range(num_videos) if not output_done(out, i, fmt, num_frames)]
    mine = dist.shard(todo)
    bar = tqdm(total=len(mine), desc="sample", unit="video", disable=not (progress and dist.is_main()))
    for start in range(0, len(mine), batch_size):
        chunk = mine[start : start + batch_size]
        sample_options.setdefault("clip_denoised", latent_space.vae is None)  # pixel space: x_0 lies in [-1, 1]
        latents, _ = generate_latents(model, chunk, latent_shape, seed=seed, num_classes=num_classes, **sample_options)
        videos = to_uint8(latent_space.decode(latents))
        for index, frames in zip(chunk, videos):
            write_output(out, index, frames, fmt)
        bar.update(len(chunk))
    bar.close()
    dist.barrier()
    if fmt == "npz" and dist.is_main() and not (out / "videos.npz").is_file():
        finish_npz(out, num_videos)
    dist.barrier()
    labels = video_labels(seed, range(num_videos), num_classes) if num_classes else None
    return {"written": len(mine), "skipped": num_videos - len(todo), "labels": labels}
