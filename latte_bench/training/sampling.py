"""Sampling videos from a trained Latte: deterministic per video, resumable, sharded under torchrun.

Video ``i`` of a run with seed ``s`` is a function of ``(s, i)`` only: its initial noise and
every DDPM step's noise come from its own generator seeded with ``SeedSequence([s, i, 0])``
(passed to :func:`latte_bench.diffusion.sample` as one generator per video), its class label
from ``SeedSequence([s, i, 1])``. The result is therefore the same for any ``--batch-size`` and any
number of processes (up to floating-point differences between batch shapes on GPU).

Output layouts (what ``latte-bench eval --fake`` reads):

- ``mp4`` (default): ``OUT/000000.mp4`` ... (H.264 through PyAV, equal to Latte's imageio
  ``quality=9`` output, 8 fps as Latte's ``sample_ddp.py``). Lossy: compression moves FVD by a few points.
- ``png``: ``OUT/000000/000000.png`` ... lossless frame folders (the StyleGAN-V layout).
- ``npz``: ``OUT/videos.npz`` holding uint8 (N, T, H, W, 3) under ``videos`` (lossless);
  videos are kept in ``OUT/.parts/`` until the set is complete.

Crashes: every file is written atomically; a rerun of the same command removes the temporary
files, redoes incomplete videos and keeps finished ones (:func:`prepare_output`). A folder
holds videos of one setting combination only: ``OUT/samples.json`` (checkpoint file and
sha256, settings, labels, environment) is written before sampling starts and compared on
every rerun (:func:`begin_record`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latte_bench.errors import UserError
from latte_bench import distributed as dist
from latte_bench.training.latents import LatentSpace, to_uint8
from latte_bench.data.video import write_frames, write_npz, write_video
from latte_bench.diffusion import sample
from latte_bench.fsutil import atomic_path, clean_temporaries, write_errors, write_json

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
    noise_schedule: str = "linear",
    prediction: str = "eps",
    clip_denoised: bool = False,
    device="cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, list[int] | None]:
    """Latents (len(indices), F, C, h, w) for the videos ``indices``, and their labels (None if unconditional).

    ``sampler``: ``ddpm`` (ancestral, learned variance; the official evaluation sampler),
    ``ddim`` (eta 0) or ``dpm++`` (DPM-Solver++ 2M) — all from :mod:`latte_bench.diffusion`.
    ``clip_denoised`` clamps predicted x_0 to [-1, 1] (DDPM/DDIM): right for pixel-space models
    (the data is in [-1, 1]), wrong for VAE latents (Latte passes False). ``learn_sigma``,
    ``noise_schedule`` and ``prediction`` are the model's training settings (``LoadedModel.diffusion_options``).
    ``model`` must be in eval mode. ``progress``: show the sampler's steps when the batch runs longer than
    3 s (:func:`latte_bench.progress.step_bar`).
    """

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
                     noise_schedule=noise_schedule, prediction=prediction, clip_denoised=clip_denoised)
    check_finite_batch(out, indices)
    return out.float(), (list(labels) if y is not None else None)


def check_finite_batch(latents: torch.Tensor, indices: Sequence[int]) -> None:
    """Refuse sampled latents (N, F, C, h, w) holding NaN or Inf, before they are decoded, scored or written.

    Quantising to uint8 would turn them into black or saturated frames that look like results.
    """
    finite = torch.isfinite(latents.reshape(len(latents), -1)).all(dim=1).cpu()
    if not bool(finite.all()):
        bad = [int(i) for i, ok in zip(indices, finite) if not ok]
        raise UserError(f"the sampled latents of {len(bad)} video(s) (video {bad[0]} first) hold NaN or Inf values, so nothing of this batch "
                        "is scored or written; the model diverges while sampling (try --precision fp32 or another checkpoint)")


# ------------------------------------------------------------------------------------ output layout


def _part(out: Path, index: int) -> Path:
    return out / ".parts" / f"{index:06d}.npy"


def _valid_part(path: Path, num_frames: int) -> bool:
    """True when ``path`` is a complete uint8 (num_frames, H, W, 3) .npy (header and size checked, not read)."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return a.dtype == np.uint8 and a.ndim == 4 and a.shape[0] == num_frames and a.shape[-1] == 3


def output_done(out: Path, index: int, fmt: str, num_frames: int) -> bool:
    """Whether video ``index`` is complete in ``out`` (the exact final names; temporary files never count).

    mp4: ``NNNNNN.mp4`` (written atomically); png: every ``NNNNNN/TTTTTT.png`` for T < num_frames
    (a folder a crash left half-written is redone); npz: a complete ``.parts/NNNNNN.npy``.
    """
    if fmt == "mp4":
        return (out / f"{index:06d}.mp4").is_file()
    if fmt == "png":
        folder = out / f"{index:06d}"
        return all((folder / f"{t:06d}.png").is_file() for t in range(num_frames))
    path = _part(out, index)
    return path.is_file() and _valid_part(path, num_frames)


# what a failed write into --out says to do (one line, exit 2)
WRITE_WAY_OUT = "free some space or choose another --out; the same command then finishes the set (finished videos are kept)"


def write_output(out: Path, index: int, frames: np.ndarray, fmt: str, fps: int = 8) -> None:
    """Write one uint8 (T, H, W, 3) video in ``fmt`` (atomic writers of :mod:`latte_bench.data.video`).

    A failed write (a full disk) is a :class:`UserError` naming the video's file or folder.
    """

    path = {"mp4": out / f"{index:06d}.mp4", "png": out / f"{index:06d}"}.get(fmt, _part(out, index))
    with write_errors(path, WRITE_WAY_OUT):
        if fmt == "mp4":
            write_video(path, frames, fps=fps)
        elif fmt == "png":
            try:
                write_frames(path, frames)
            except OSError:
                shutil.rmtree(path, ignore_errors=True)  # no folder of some frames stays behind
                raise
        else:
            with atomic_path(path) as tmp:
                np.save(tmp, frames)


def npz_count(path: Path) -> int:
    """Number of videos in a ``videos.npz`` written by :func:`finish_npz` (reads the header only)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z, z.open("videos.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read_header(f)[0]
        return int(shape[0])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: not a readable videos.npz ({type(e).__name__}); delete it to sample the set again") from None


def _unpack_npz(out: Path, count: int) -> None:
    """Put the videos of an existing ``videos.npz`` back into ``.parts/`` so that a larger set can extend it."""

    with np.load(out / "videos.npz", allow_pickle=False) as z:
        videos = z["videos"]
    for i in range(min(count, len(videos))):
        if not _part(out, i).is_file():
            with atomic_path(_part(out, i)) as tmp:
                np.save(tmp, videos[i])


def finish_npz(out: Path, num_videos: int) -> Path:
    """Merge ``.parts/*.npy`` (``num_videos`` or more, from 0 up) into ``OUT/videos.npz`` (atomic); remove the parts."""

    while _part(out, num_videos).is_file():  # parts a larger earlier request left are kept in the set
        num_videos += 1
    videos = []
    for i in range(num_videos):
        try:
            videos.append(np.load(_part(out, i), allow_pickle=False))
        except (OSError, ValueError, EOFError) as e:
            raise UserError(f"{_part(out, i)}: unreadable sample part ({type(e).__name__}); run the same sample command "
                            "again to redo it") from None
    if len({v.shape for v in videos}) > 1:
        raise UserError(f"{out / '.parts'}: parts of different shapes {sorted({v.shape for v in videos})}; "
                        "delete the folder and sample again")

    with write_errors(out / "videos.npz", WRITE_WAY_OUT):
        path = write_npz(out / "videos.npz", np.stack(videos))
    shutil.rmtree(out / ".parts")
    return path


def prepare_output(out: Path, fmt: str, num_videos: int, num_frames: int) -> dict:
    """Make ``out`` ready to resume (call on one process before any writes); return what is there.

    Removes temporary files an interrupted run left, and npz parts that are truncated or not
    the expected shape (they are sampled again). For npz, a finished ``videos.npz`` holding
    fewer videos than asked is unpacked into ``.parts/`` so the set grows to ``num_videos``.
    Returns ``{"removed_temporaries": n, "redo": [indices of bad parts], "npz_videos": n or None}``.
    """

    removed = clean_temporaries(out, recursive=True)
    redo, in_npz = [], None
    if fmt == "npz":
        if (out / "videos.npz").is_file():
            in_npz = npz_count(out / "videos.npz")
            if in_npz < num_videos:
                _unpack_npz(out, in_npz)
            elif (out / ".parts").is_dir():  # a crash after the merge, before the clean-up
                shutil.rmtree(out / ".parts")
        parts = out / ".parts"
        if parts.is_dir():
            for p in sorted(parts.iterdir()):
                if p.suffix == ".npy" and p.stem.isdigit() and not _valid_part(p, num_frames):
                    print(f"latte-bench: warning: {p} is truncated or malformed; sampling it again", file=sys.stderr)
                    p.unlink()
                    redo.append(int(p.stem))
    return {"removed_temporaries": len(removed), "redo": redo, "npz_videos": in_npz}


# ------------------------------------------------------------------------------------ the settings record

# What makes two sets of samples different: a folder holds videos of one combination only.
SETTINGS = ("checkpoint_sha256", "weights", "seed", "sampler", "steps", "cfg_scale", "format", "precision", "vae", "shape",
            "prompts_sha256", "prompt_embeds_sha256")  # the last two: text-to-video only


def _has_outputs(out: Path) -> bool:
    if not out.is_dir():
        return False
    if (out / "videos.npz").exists() or (out / ".parts").exists():
        return True
    with os.scandir(out) as it:  # NNNNNN.mp4 files or NNNNNN/ frame folders
        return any(len(e.name) in (6, 10) and e.name[:6].isdigit() and e.name[6:] in ("", ".mp4") for e in it)


def begin_record(out: Path, record: dict, allow_change: bool = False) -> dict:
    """Check ``record``'s settings against ``out/samples.json`` and write it (status "sampling") before any work.

    A folder that already holds videos made with other :data:`SETTINGS`, or videos without a
    record, is refused with a :class:`UserError` naming each difference; ``allow_change``
    keeps the old videos and appends ``{"changed": {field: [old, new]}, "videos_before": n}``
    to the record's ``settings_changes``. Returns the record as written.
    """

    path = out / "samples.json"
    record = dict(record)
    previous = None
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: unreadable ({type(e).__name__}); delete it together with the videos, or choose another --out") from None
    if previous is None and _has_outputs(out):
        if not allow_change:
            raise UserError(f"{out}: holds videos but no samples.json, so their settings are unknown; choose another --out "
                            "or pass --allow-settings-change to keep them")
        record["settings_changes"] = [{"changed": "unknown (no samples.json)", "videos_before": "unknown"}]
    elif previous is not None:
        changed = {k: [previous.get(k), record.get(k)] for k in SETTINGS if previous.get(k) != record.get(k)}
        history = list(previous.get("settings_changes", []))
        if changed:
            if not allow_change:
                listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
                raise UserError(f"{out}: holds samples made with other settings ({listed}); choose another --out, "
                                "or pass --allow-settings-change to mix them (recorded in samples.json)")
            history.append({"changed": changed, "videos_before": previous.get("num_videos")})
        if history:
            record["settings_changes"] = history
        if previous.get("status", "complete") == "complete":
            record["num_videos"] = max(int(record["num_videos"]), int(previous.get("num_videos", 0)))
    record["status"] = "sampling"
    with write_errors(path, WRITE_WAY_OUT):
        write_json(path, record)
    return record


def count_done(out: Path, fmt: str, num_frames: int) -> int:
    """How many videos ``0..n-1`` are complete in ``out`` (``videos.npz``: how many it holds)."""
    if fmt == "npz" and (out / "videos.npz").is_file():
        return npz_count(out / "videos.npz")
    n = 0
    while output_done(out, n, fmt, num_frames):
        n += 1
    return n


def finish_record(out: Path, record: dict, num_videos: int, labels) -> dict:
    """Write the final ``samples.json``: status "complete", ``num_videos`` present and their labels."""

    record = {**record, "status": "complete", "num_videos": int(num_videos), "labels": labels}
    with write_errors(out / "samples.json", WRITE_WAY_OUT):
        write_json(out / "samples.json", record)
    return record


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
    generate=None,
    **sample_options,
) -> dict:
    """Write ``num_videos`` videos to ``out`` (this rank's share under torchrun); skip the ones already there.

    ``generate(indices) -> uint8 (len, F, H, W, 3)`` replaces the class-conditional sampling
    (``model``, ``latent_space`` and ``sample_options`` are then unused): text-to-video
    (:func:`latte_bench.training.t2v.t2v_generator`) writes through the same resumable, sharded path.

    A rerun finishes what an interrupted one left: temporary files are removed, incomplete
    videos (a half-written png folder, a truncated npz part) are sampled again, finished ones are
    kept (:func:`prepare_output`, :func:`output_done`).

    Returns ``{"written": n (this rank), "skipped": n (already there), "present": n (complete
    videos 0..n-1 in ``out`` afterwards), "labels": [...] or None}``.
    """
    from tqdm.auto import tqdm

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num_frames = int(latent_shape[0])
    if dist.is_main():
        prepare_output(out, fmt, num_videos, num_frames)
    dist.barrier()
    if fmt == "npz" and (out / "videos.npz").is_file() and not (out / ".parts").is_dir():
        todo = []  # the finished file already holds num_videos or more
    else:
        todo = [i for i in range(num_videos) if not output_done(out, i, fmt, num_frames)]
    mine = dist.shard(todo)
    bar = tqdm(total=len(mine), desc="sample", unit="video", disable=not (progress and dist.is_main()))
    for start in range(0, len(mine), batch_size):
        chunk = mine[start : start + batch_size]
        if generate is not None:
            videos = generate(chunk)
        else:
            sample_options.setdefault("clip_denoised", latent_space.vae is None)  # pixel space: x_0 lies in [-1, 1]
            latents, _ = generate_latents(model, chunk, latent_shape, seed=seed, num_classes=num_classes,
                                          progress=not bar.disable, **sample_options)
            videos = to_uint8(latent_space.decode(latents))
        for index, frames in zip(chunk, videos):
            write_output(out, index, frames, fmt)
        bar.update(len(chunk))
    bar.close()
    dist.barrier()
    if fmt == "npz" and dist.is_main() and (out / ".parts").is_dir():
        finish_npz(out, num_videos)
    dist.barrier()
    present = count_done(out, fmt, num_frames)
    labels = video_labels(seed, range(present), num_classes) if num_classes else None
    return {"written": len(mine), "skipped": num_videos - len(todo), "present": present, "labels": labels}
