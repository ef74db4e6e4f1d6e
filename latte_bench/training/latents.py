"""The latent space Latte is trained in: the SD KL-f8 autoencoder, or plain pixels.

:class:`LatentSpace` maps videos (B, F, 3, H, W) in [-1, 1] to latents (B, F, 4, H/8, W/8)
(``vae.encode(x).latent_dist.sample() · 0.18215``, frames encoded in batches of
``batch_frames``) and back (``vae.decode(z / 0.18215)``). With ``--vae none`` it is the
identity (pixel-space training for the demo and tests).

:func:`encode_dataset` pre-encodes a dataset's clips once into latent shards:
``OUT/shard_00000.safetensors`` ... each holding ``moments`` (N, F, 2C, h, w) (posterior mean
and log-variance, so training still draws ``mean + std·ε`` as the official loop does),
``labels`` (N,) and ``index`` (N,) (the video index), plus ``OUT/latents.json`` describing
them. Shards are written atomically and an interrupted run resumes from the first missing
shard. :class:`LatentShardDataset` reads them back as training items with a ``moments`` key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from latte_bench.errors import UserError, third_party_quiet
from latte_bench.fsutil import atomic_path, write_json
from latte_bench import distributed as dist

SD_SCALE = 0.18215


def load_vae(spec: str, device="cpu", dtype=torch.float32):
    """``AutoencoderKL`` from a hub id (``stabilityai/sd-vae-ft-ema``) or a local folder; None for ``"none"``.

    A local folder may be the VAE itself (holding ``config.json``) or a repository with a
    ``vae/`` subfolder (e.g. a copy of ``maxin-cn/Latte``). ``repo:subfolder`` picks a subfolder.
    """
    if spec is None or spec.lower() == "none":
        return None
    from diffusers import AutoencoderKL

    subfolder = None
    path = Path(spec)
    if ":" in spec and not path.exists():
        spec, subfolder = spec.rsplit(":", 1)
        path = Path(spec)
    if path.is_dir() and subfolder is None and not (path / "config.json").is_file() and (path / "vae" / "config.json").is_file():
        subfolder = "vae"
    try:
        with third_party_quiet():  # diffusers logs several lines before a bad file's exception
            vae = AutoencoderKL.from_pretrained(spec, subfolder=subfolder, torch_dtype=dtype)
    except Exception as e:
        raise UserError(
            f"{spec}: cannot load the VAE ({type(e).__name__}); pass --vae a local AutoencoderKL folder, "
            "a reachable hub id such as stabilityai/sd-vae-ft-ema, or none"
        ) from e
    return vae.to(device).eval().requires_grad_(False)


class LatentSpace:
    """Encode/decode videos (B, F, C, H, W); the identity when ``vae`` is None (pixel space)."""

    def __init__(self, vae=None, scale: float = SD_SCALE, batch_frames: int = 64):
        self.vae, self.scale, self.batch_frames = vae, scale, batch_frames

    @property
    def channels(self) -> int:
        return 3 if self.vae is None else int(self.vae.config.latent_channels)

    @property
    def downsample(self) -> int:
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _frames(self, video: torch.Tensor, fn) -> torch.Tensor:
        b, f = video.shape[:2]
        flat = video.reshape(b * f, *video.shape[2:])
        out = torch.cat([fn(flat[i : i + self.batch_frames]) for i in range(0, len(flat), self.batch_frames)])
        return out.reshape(b, f, *out.shape[1:])

    @torch.no_grad()
    def moments(self, video: torch.Tensor) -> torch.Tensor:
        """Posterior (mean, logvar) per frame: (B, F, 2C, h, w) (pixel space: (video, -inf))."""
        if self.vae is None:
            return torch.cat([video, torch.full_like(video, float("-inf"))], dim=2)
        dtype = self.vae.dtype
        return self._frames(video, lambda x: self.vae.encode(x.to(dtype)).latent_dist.parameters.float())

    def sample_moments(self, moments: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latents ``(mean + std·ε) · scale`` from moments (B, F, 2C, h, w)."""
        mean, logvar = moments.chunk(2, dim=2)
        if self.vae is None:
            return mean
        logvar = logvar.clamp(-30.0, 20.0)  # as diffusers' DiagonalGaussianDistribution
        eps = torch.randn(mean.shape, generator=generator, device=mean.device if generator is None else generator.device)
        return (mean + torch.exp(0.5 * logvar) * eps.to(mean.device)) * self.scale

    @torch.no_grad()
    def encode(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Video (B, F, 3, H, W) in [-1, 1] → latents (B, F, C, H/8, W/8) (sampled, scaled)."""
        if self.vae is None:
            return video
        return self.sample_moments(self.moments(video), generator)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, F, C, h, w) → video (B, F, 3, H, W), roughly in [-1, 1] (not clamped)."""
        if self.vae is None:
            return latents
        dtype = self.vae.dtype
        return self._frames(latents, lambda z: self.vae.decode((z / self.scale).to(dtype)).sample.float())


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """[-1, 1] video (B, F, 3, H, W) → uint8 (B, F, H, W, 3) as Latte: clamp(floor((x·0.5+0.5)·255 + 0.5), 0, 255)."""
    x = torch.floor((video.float() * 0.5 + 0.5) * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).cpu().numpy()


# ------------------------------------------------------------------------------------ shards


def encode_dataset(dataset, latent_space: LatentSpace, out: str | os.PathLike, *, shard_size: int = 256,
                   batch_size: int = 8, device="cpu", description: dict | None = None, progress: bool = True) -> Path:
    """Encode one clip per video of ``dataset`` (epoch 0 draw) into latent shards under ``out``.

    Runs under torchrun too: shard ``s`` is written by rank ``s mod world``. Returns ``out``.
    """
    from tqdm.auto import tqdm


    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    num_shards = (n + shard_size - 1) // shard_size
    mine = [s for s in range(num_shards) if s % dist.world_size() == dist.rank()]
    bar = tqdm(total=len(mine), desc="encode", disable=not (progress and dist.is_main()))
    for s in mine:
        path = out / f"shard_{s:05d}.safetensors"
        if path.is_file():
            bar.update(1)
            continue
        indices = list(range(s * shard_size, min(n, (s + 1) * shard_size)))
        moments, labels = [], []
        for i in range(0, len(indices), batch_size):
            items = [dataset[(j, 0)] for j in indices[i : i + batch_size]]
            video = torch.stack([it["video"] for it in items]).to(device)
            moments.append(latent_space.moments(video).cpu())
            labels += [int(it["label"]) for it in items]
        from safetensors.torch import save_file

        with atomic_path(path) as tmp:
            save_file({"moments": torch.cat(moments).contiguous(), "labels": torch.tensor(labels, dtype=torch.int64),
                       "index": torch.tensor(indices, dtype=torch.int64)}, str(tmp))
        bar.update(1)
    bar.close()
    dist.barrier()
    if dist.is_main():
        write_json(out / "latents.json", {"format": "latte-bench-latents-v1", "num_clips": n, "num_shards": num_shards,
                                          "shard_size": shard_size, "scale": latent_space.scale,
                                          "num_classes": getattr(dataset, "num_classes", 0), **(description or {})})
    return out


class LatentShardDataset(torch.utils.data.Dataset):
    """Training items from latent shards: ``moments`` (F + K, 2C, h, w), ``label``, ``image_labels``, ``skipped``.

    With ``num_images`` K > 0 the K extra frames are single latent frames drawn from random
    other clips (seeded by ``(seed, epoch, index)``, like :class:`ClipDataset`).
    """

    def __init__(self, root: str | os.PathLike, num_images: int = 0, seed: int = 0):
        self.root = Path(root)
        meta_path = self.root / "latents.json"
        if not meta_path.is_file():
            raise UserError(f"{meta_path}: not found; create the shards with `latte-bench encode` first")
        self.meta = json.loads(meta_path.read_text())
        self.num_images, self.seed = num_images, seed
        self.shard_size = int(self.meta["shard_size"])
        self.n = int(self.meta["num_clips"])
        self.paths = [self.root / f"shard_{s:05d}.safetensors" for s in range(int(self.meta["num_shards"]))]
        missing = [p.name for p in self.paths if not p.is_file()]
        if missing:
            raise UserError(f"{self.root}: {len(missing)} shards missing ({missing[0]} ...); re-run `latte-bench encode`")
        self.num_classes = int(self.meta.get("num_classes", 0))
        self._labels = None

    def __len__(self) -> int:
        return self.n

    def _get(self, i: int, key: str, frame: int | None = None) -> torch.Tensor:
        from safetensors import safe_open

        s, k = divmod(i, self.shard_size)
        with safe_open(str(self.paths[s]), framework="pt") as f:
            part = f.get_slice(key)
            return part[k] if frame is None else part[k, frame : frame + 1]

    def __getitem__(self, key) -> dict:
        index, epoch = (key if isinstance(key, tuple) else (key, 0))
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        moments = self._get(int(index), "moments")
        images, image_labels = [], []
        for _ in range(self.num_images):
            j = int(rng.integers(0, self.n))
            images.append(self._get(j, "moments", int(rng.integers(0, moments.shape[0]))))
            image_labels.append(int(self._get(j, "labels")))
        return {
            "moments": torch.cat([moments, *images]) if images else moments,
            "label": self._get(int(index), "labels").to(torch.int64),
            "image_labels": torch.tensor(image_labels, dtype=torch.int64),
            "skipped": 0,
        }
