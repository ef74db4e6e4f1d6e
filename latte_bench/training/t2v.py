"""Text-to-video sampling from a Latte-1 folder, as diffusers' ``LattePipeline`` samples it.

A Latte-1 folder has the pipeline layout: ``transformer/`` (:class:`~latte_bench.models.LatteT2V`),
``text_encoder/`` + ``tokenizer/`` (T5), ``vae/`` (the SD ``AutoencoderKL``), ``scheduler/``.

Settings (``LattePipeline``'s): prompts lower-cased and stripped, tokenised to at most
:data:`MAX_TOKENS` = 120 tokens; negative prompt ``""``; classifier-free guidance 7.5 on one batched
call over ``[negative; prompt]``; DDIM with 50 steps (eta 0) or DPM-Solver++ (2M), both diffusers'
schedulers from ``scheduler/scheduler_config.json``; the SD VAE decodes 14 frames at a time.

One prompt's conditioning is what the pipeline gives that prompt alone: its T5 embeddings cut to
its own token count ``n`` (``mask_feature``), and the empty prompt's embeddings cut to the same
``n``. Prompts of different lengths in one batch are padded, the padding masked out of the
cross-attention, so a video does not depend on the other videos of its batch.

Video ``i`` of a run with seed ``s`` starts from noise drawn by its own generator
(:func:`latte_bench.training.sampling.video_generator`); DDIM (eta 0) and DPM-Solver++ (2M) add
no noise after that, so the video is a function of ``(s, i)`` and its prompt.

:class:`PromptEmbeddings` hold the T5 outputs; saved as one safetensors file they let a machine
without T5 sample (``latte-bench encode-prompts``, then ``sample --prompt-embeds FILE``).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latte_bench.errors import UserError
from latte_bench.data.prompts import prompts_sha256
from latte_bench.device import PRECISIONS
from latte_bench.fsutil import atomic_path, sha256_file
from latte_bench.models.latte_t2v import LatteT2V, transformer_folder
from latte_bench.training.latents import LatentSpace, load_vae, to_uint8
from latte_bench.training.sampling import check_finite_batch, video_generator

MAX_TOKENS = 120
NEGATIVE_PROMPT = ""
T2V_SAMPLERS = ("ddim", "dpm++")
T2V_DEFAULTS = {"sampler": "ddim", "steps": 50, "cfg_scale": 7.5}
VAE_DECODE_FRAMES = 14  # LattePipeline's decode_chunk_size
EMBEDS_FORMAT = "latte-bench-prompt-embeds-v1"
# The official Latte t2v sampling schedule, for a folder without scheduler/scheduler_config.json
DEFAULT_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                     "clip_sample": False, "prediction_type": "epsilon", "set_alpha_to_one": True, "steps_offset": 0}


def is_t2v_folder(path) -> bool:
    """True when ``path`` is a folder in the pipeline layout with a ``transformer/`` (Latte-1)."""
    path = Path(path)
    return path.is_dir() and (path / "transformer" / "config.json").is_file()


# ------------------------------------------------------------------------------------ prompts
@dataclass
class PromptEmbeddings:
    """T5 embeddings of ``prompts``: ``embeds[i]`` is ``(n_i, D)`` (prompt ``i`` cut to its ``n_i`` tokens),
    ``negative`` is ``(max n_i, D)``: the empty prompt's outputs, of which prompt ``i`` uses the first ``n_i``."""

    prompts: list[str]
    embeds: list[torch.Tensor]
    negative: torch.Tensor
    source: str = ""

    def __len__(self) -> int:
        return len(self.prompts)

    def condition(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prompt (n, D), negative (n, D))`` for prompt ``i``."""
        pos = self.embeds[i]
        return pos, self.negative[: len(pos)]

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeds (P, max n, D) zero-padded, lengths (P,) int64)``."""
        length = max(len(e) for e in self.embeds)
        out = torch.zeros(len(self.embeds), length, self.negative.shape[-1], dtype=torch.float32)
        for i, e in enumerate(self.embeds):
            out[i, : len(e)] = e
        return out, torch.tensor([len(e) for e in self.embeds], dtype=torch.int64)

    def sha256(self) -> str:
        """sha256 over the prompts and every embedding value (float32): what conditions the videos."""

        embeds, lengths = self.padded()
        h = hashlib.sha256(prompts_sha256(self.prompts).encode())
        for t in (embeds, lengths, self.negative.float()):
            h.update(np.ascontiguousarray(t.numpy()).tobytes())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Write one safetensors file: ``embeds``, ``lengths``, ``negative``; the prompts in its metadata."""
        from safetensors.torch import save_file


        embeds, lengths = self.padded()
        meta = {"format": EMBEDS_FORMAT, "prompts": json.dumps(self.prompts), "max_tokens": str(MAX_TOKENS),
                "negative_prompt": NEGATIVE_PROMPT, "source": self.source}
        with atomic_path(path) as tmp:
            save_file({"embeds": embeds.contiguous(), "lengths": lengths, "negative": self.negative.float().contiguous()},
                      str(tmp), metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PromptEmbeddings":
        """Read a file written by :meth:`save` (``latte-bench encode-prompts``)."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            prompts = json.loads(meta["prompts"])
            embeds, lengths, negative = tensors["embeds"], tensors["lengths"], tensors["negative"]
        except Exception as e:  # not safetensors, or not our layout
            raise UserError(f"{path}: not a prompt-embeddings file ({type(e).__name__}: {e}); write it with "
                            "`latte-bench encode-prompts`") from None
        if meta.get("format") != EMBEDS_FORMAT or len(prompts) != len(embeds) or len(lengths) != len(embeds):
            raise UserError(f"{path}: not a {EMBEDS_FORMAT} file (format {meta.get('format')!r}); write it with `latte-bench encode-prompts`")
        if not bool(torch.isfinite(embeds).all() and torch.isfinite(negative).all()):
            raise UserError(f"{path}: the prompt embeddings hold NaN or Inf values; encode the prompts again (in fp32)")
        rows = [embeds[i, : int(n)].float() for i, n in enumerate(lengths)]
        return cls(list(prompts), rows, negative.float(), source=str(path))


def preprocess(prompt: str) -> str:
    """``LattePipeline``'s text preprocessing without caption cleaning: lower-case, strip."""
    return prompt.lower().strip()


def load_text_encoder(folder: str | os.PathLike, device="cpu", dtype: torch.dtype = torch.float32):
    """``(T5EncoderModel, tokenizer)`` from ``folder/text_encoder`` and ``folder/tokenizer`` (transformers)."""
    folder = Path(folder)
    try:
        from transformers import AutoTokenizer, T5EncoderModel
    except ImportError:
        raise UserError("the T5 text encoder needs transformers: pip install 'latte-bench[t2v]', or pass "
                        "--prompt-embeds FILE written by `latte-bench encode-prompts` on a machine that has it") from None
    if not (folder / "text_encoder").is_dir() or not (folder / "tokenizer").is_dir():
        raise UserError(f"{folder}: no text_encoder/ and tokenizer/ folders; pass --prompt-embeds FILE written by "
                        "`latte-bench encode-prompts` where Latte-1's T5 is")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one "Loading weights" bar per file on stderr otherwise
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        encoder = T5EncoderModel.from_pretrained(str(folder / "text_encoder"), torch_dtype=dtype)
    except Exception as e:
        raise UserError(f"{folder}: cannot load the T5 text encoder ({type(e).__name__}: {e}); Latte-1's tokenizer "
                        "needs sentencepiece (pip install 'latte-bench[t2v]')") from None
    return encoder.to(device).eval().requires_grad_(False), tokenizer


@torch.no_grad()
def encode_prompts(prompts: Sequence[str], text_encoder, tokenizer, *, device="cpu", batch_size: int = 8,
                   source: str = "") -> PromptEmbeddings:
    """T5 embeddings of ``prompts`` (and of the empty negative prompt) as ``LattePipeline.encode_prompt``
    computes them for one prompt: padded to 120 tokens, encoded with the attention mask, cut to the
    prompt's token count."""
    if not prompts:
        raise UserError("no prompts to encode")

    def encode(texts):
        tokens = tokenizer([preprocess(t) for t in texts], padding="max_length", max_length=MAX_TOKENS, truncation=True,
                           return_attention_mask=True, add_special_tokens=True, return_tensors="pt")
        mask = tokens.attention_mask.to(device)
        out = text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
        return out.float().cpu(), mask.sum(dim=1).cpu()

    rows = []
    for start in range(0, len(prompts), batch_size):
        out, lengths = encode(prompts[start : start + batch_size])
        rows += [out[i, : int(n)].clone() for i, n in enumerate(lengths)]
    negative, _ = encode([NEGATIVE_PROMPT])
    return PromptEmbeddings(list(prompts), rows, negative[0, : max(len(r) for r in rows)].clone(), source=source)


def prompt_embeddings(folder, *, prompts: Sequence[str] | None = None, embeds_file=None, device="cpu", precision: str = "fp32"):
    """:class:`PromptEmbeddings` from a file, or ``prompts`` encoded by the folder's T5
    (loaded in ``precision`` on ``device`` and released afterwards)."""

    if embeds_file is not None:
        return PromptEmbeddings.load(embeds_file)
    if not prompts:
        raise UserError("text-to-video needs prompts: pass --prompt TEXT, --prompts FILE or --prompt-embeds FILE")
    encoder, tokenizer = load_text_encoder(folder, device, PRECISIONS[precision] or torch.float32)
    embeddings = encode_prompts(list(prompts), encoder, tokenizer, device=device, source=str(Path(folder) / "text_encoder"))
    del encoder
    return embeddings


# ------------------------------------------------------------------------------------ the folder
@dataclass
class Latte1:
    """A Latte-1 folder loaded for sampling: the transformer, the VAE as a latent space, the scheduler config.

    ``checkpoint``: ``{"path", "sha256", "format": "diffusers", "model": "Latte-T2V", ...}`` of the transformer
    weights read (sha256 over the files, in name order).
    """

    folder: Path
    model: torch.nn.Module
    latent_space: object
    scheduler_config: dict
    checkpoint: dict = field(default_factory=dict)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(F, C, h, w) of one video (the transformer's ``video_length``, ``in_channels``, ``sample_size``)."""
        cfg = self.model.config
        return int(cfg["video_length"]), int(cfg["in_channels"]), int(cfg["sample_size"]), int(cfg["sample_size"])

    @property
    def info(self) -> dict:
        f, c, h, _ = self.latent_shape
        return {"num_frames": f, "latent_channels": c, "latent_size": h, "learn_sigma": self.model.learn_sigma,
                "vae": self.checkpoint.get("vae"), "model": "Latte-T2V"}

    @classmethod
    def load(cls, folder: str | os.PathLike, device="cpu", vae: str | None = None) -> "Latte1":
        folder = Path(folder)
        model = LatteT2V.from_pretrained(folder)
        weights = sorted(p for p in transformer_folder(folder).glob("diffusion_pytorch_model*.safetensors"))
        digest = sha256_file(weights[0]) if len(weights) == 1 else hashlib.sha256(
            "".join(sha256_file(p) for p in weights).encode()).hexdigest()
        vae_spec = vae or str(folder / "vae")
        if vae is None and not (folder / "vae").is_dir():
            raise UserError(f"{folder}: no vae/ folder; pass --vae (a local AutoencoderKL folder or a hub id such as "
                            "stabilityai/sd-vae-ft-ema)")
        autoencoder = load_vae(vae_spec, device)
        space = LatentSpace(autoencoder, float(autoencoder.config.scaling_factor), VAE_DECODE_FRAMES)
        scheduler_path = folder / "scheduler" / "scheduler_config.json"
        scheduler_config = json.loads(scheduler_path.read_text()) if scheduler_path.is_file() else dict(DEFAULT_SCHEDULER)
        checkpoint = {"path": str(transformer_folder(folder).resolve()), "sha256": digest, "step": None, "weights": "transformer",
                      "format": "diffusers", "model": "Latte-T2V", "vae": vae_spec,
                      "scheduler": scheduler_config.get("_class_name", "DDIMScheduler") if scheduler_path.is_file() else "default (Latte t2v)"}
        return cls(folder, model.to(device).eval(), space, scheduler_config, checkpoint)


def check_sampler(sampler: str) -> None:
    if sampler not in T2V_SAMPLERS:
        raise UserError(f"--sampler {sampler}: text-to-video samples with {' or '.join(T2V_SAMPLERS)} (LattePipeline's schedulers)")


def make_scheduler(sampler: str, config: dict):
    """A fresh diffusers scheduler (they hold per-run state): ``ddim`` -> DDIMScheduler, ``dpm++`` -> DPMSolverMultistepScheduler
    (DPM-Solver++ 2M, its defaults), both from ``config`` (Latte-1's ``scheduler_config.json``)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    check_sampler(sampler)
    kind = DDIMScheduler if sampler == "ddim" else DPMSolverMultistepScheduler
    return kind.from_config({k: v for k, v in config.items() if k != "_class_name"})


def batch_condition(embeddings: PromptEmbeddings, prompt_indices: Sequence[int], guided: bool):
    """Caption batch for the transformer: ``(context (2B or B, L, D), mask (2B or B, L) or None)``; with
    guidance the negative half comes first, as LattePipeline concatenates it."""
    pairs = [embeddings.condition(i) for i in prompt_indices]
    length = max(len(p) for p, _ in pairs)
    width = pairs[0][0].shape[-1]
    pos = torch.zeros(len(pairs), length, width)
    neg = torch.zeros(len(pairs), length, width)
    mask = torch.zeros(len(pairs), length, dtype=torch.int64)
    for row, (p, n) in enumerate(pairs):
        pos[row, : len(p)], neg[row, : len(n)], mask[row, : len(p)] = p, n, 1
    if guided:
        pos, mask = torch.cat([neg, pos]), torch.cat([mask, mask])
    return pos, (None if bool(mask.all()) else mask)


@torch.no_grad()
def t2v_latents(model, scheduler_config: dict, embeddings: PromptEmbeddings, prompt_indices: Sequence[int],
                video_indices: Sequence[int], latent_shape: Sequence[int], *, seed: int = 0, sampler: str = "ddim",
                steps: int = 50, cfg_scale: float = 7.5, device="cpu", autocast_dtype: torch.dtype | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Latents ``(B, C, F, h, w)`` of the videos ``video_indices`` with prompts ``prompt_indices``: LattePipeline's
    denoising loop (guidance over all output channels, then the eps half unless the scheduler learns the variance).

    ``latent_shape`` is (F, C, h, w); ``noise`` (B, C, F, h, w) replaces the per-video draws (tests).
    """

    f, c, h, w = (int(s) for s in latent_shape)
    if noise is None:
        noise = torch.stack([torch.randn((c, f, h, w), generator=video_generator(seed, i)) for i in video_indices])
    scheduler = make_scheduler(sampler, scheduler_config)
    scheduler.set_timesteps(int(steps), device=device)
    latents = noise.to(device) * scheduler.init_noise_sigma
    guided = cfg_scale > 1.0
    context, mask = batch_condition(embeddings, prompt_indices, guided)
    context, mask = context.to(device), None if mask is None else mask.to(device)
    learned = getattr(scheduler.config, "variance_type", None) in ("learned", "learned_range")
    extra = {"eta": 0.0} if sampler == "ddim" else {}
    amp = torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    for t in scheduler.timesteps:
        x = torch.cat([latents] * 2) if guided else latents
        x = scheduler.scale_model_input(x, t)
        with amp:
            out = model(x, t.reshape(1).to(device).expand(x.shape[0]), context, encoder_attention_mask=mask)
        out = out.float()
        if guided:
            uncond, cond = out.chunk(2)
            out = uncond + cfg_scale * (cond - uncond)
        if not learned:
            out = out.chunk(2, dim=1)[0]
        latents = scheduler.step(out, t, latents, **extra, return_dict=False)[0]
    check_finite_batch(latents, list(video_indices))
    return latents


def decode_videos(latent_space, latents: torch.Tensor) -> np.ndarray:
    """Latents ``(B, C, F, h, w)`` -> uint8 videos ``(B, F, H, W, 3)`` (VAE decode, Latte's quantisation)."""

    return to_uint8(latent_space.decode(latents.permute(0, 2, 1, 3, 4)))


def prompt_of(index: int, num_prompts: int) -> int:
    """The prompt of video ``index``: prompts are used in turn (video i -> prompt i mod P; balanced)."""
    return int(index) % int(num_prompts)


def t2v_generator(latte1: Latte1, embeddings: PromptEmbeddings, **options):
    """``generate(indices) -> uint8 (len, F, H, W, 3)`` for the resumable writer and the evaluation: video i
    gets prompt :func:`prompt_of` ``(i, P)``; ``options`` go to :func:`t2v_latents`."""

    def generate(indices: Sequence[int]) -> np.ndarray:
        prompts = [prompt_of(i, len(embeddings)) for i in indices]
        latents = t2v_latents(latte1.model, latte1.scheduler_config, embeddings, prompts, list(indices), latte1.latent_shape, **options)
        return decode_videos(latte1.latent_space, latents)

    return generate
