"""Checkpoint files: the one module that reads them, and the training checkpoint format.

Reading (every command goes through these):

- :func:`resolve_checkpoint`: a file, or a run folder (its highest-step checkpoint);
- :func:`read_header`: sha256, format, step, frame and class counts, without building a model
  (training checkpoints memory-mapped; official files from their tensor shapes);
- :func:`load_checkpoint`: the whole object of a ``.pt`` file (``torch.load(weights_only=True)``);
- :func:`load_checkpoint_file`: one state dict from any format (a training checkpoint's
  ``ema``/``model``, the official ``{"ema": ...}`` / ``{"model": ...}`` / bare state dict, ``.pt``
  or ``.safetensors``);
- :func:`load_model`: the Latte of a checkpoint in eval mode with what sampling needs
  (:class:`LoadedModel`); :func:`latent_space` its VAE latent space.

A training checkpoint ``ROOT/checkpoints/{step:07d}.pt`` is a dict of tensors and plain Python values:

- ``model``, ``ema``: state dicts (the bare model, no DDP ``module.`` prefix);
- ``optimizer``: the AdamW state dict keyed by parameter name
  (``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` with full state, so
  DDP, FSDP and single-process runs write the same layout); ``scaler``: the fp16 GradScaler
  state (or None);
- ``step``: optimizer steps done; ``config``: the run's config (a dict of plain values);
- ``rng``: python / numpy / torch (CPU and CUDA) generator states, stored as tensors and
  lists so that ``torch.load(weights_only=True)`` accepts them; the data position is the
  step itself (:class:`latte_bench.data.datasets.StepBatchSampler`);
- ``format``: ``"latte-bench-train-v1"``.

Files are written atomically; the latest checkpoint is the highest step found
(:func:`latest_checkpoint`). The
temporary files of a write a crash interrupted (``.0000NNN.pt.XXXXXXXX.tmp.pt``) are removed by
:func:`clean_checkpoint_temporaries` when the next run starts.

Resume (:func:`resume_checkpoint`) loads the latest checkpoint and compares the run's
settings with the ones stored in it: any difference in a field that shapes the trajectory
(everything except :data:`OPERATIONAL_FIELDS`) is refused, naming each field, unless the
change is explicitly allowed; an allowed change is recorded in the config under
``config_changes``.
:func:`export_official` writes the interchange format of the official repository,
``{"ema": state_dict}`` (through :func:`latte_bench.models.convert.save_official`), which
its ``find_model`` and our ``sample --ckpt`` both read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from latte_bench.errors import UserError, third_party_quiet
from latte_bench.fsutil import clean_temporaries, sha256_file, write_errors, write_torch
from latte_bench.models.convert import check_finite, extract_state_dict, load_official_state_dict, save_official
from latte_bench.models.latte import create_model
from latte_bench.training.latents import LatentSpace, load_vae
from latte_bench.training.presets import TrainConfig, diffusion_options
from latte_bench.training.presets import preset as get_preset
from latte_bench.models.latte_t2v import CaptionConditioned, LatteT2V
from latte_bench.training.t2v import PromptEmbeddings

FORMAT = "latte-bench-train-v1"
_NAME = re.compile(r"^(\d{7,})\.pt$")


def rng_state() -> dict:
    """The python, numpy and torch RNG states as tensors/lists (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, gauss_value = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss_value))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{step:07d}.pt"


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step under ``run_dir/checkpoints`` (None when there is none)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return found[-1][1] if found else None


def clean_checkpoint_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Remove checkpoint temporaries an interrupted save left in ``run_dir/checkpoints`` (call on one rank)."""
    return clean_temporaries(Path(run_dir) / "checkpoints")


# what a failed write of a run's files says to do (one line, exit 2)
RUN_WRITE_WAY_OUT = "free some space or choose another --out; --resume continues from the last checkpoint"


def save_checkpoint(path: str | os.PathLike, *, model, ema, optimizer, step: int, config: dict, scaler=None) -> Path:
    """Atomically write a full training checkpoint (see the module docstring)."""
    state = {
        "format": FORMAT,
        "step": int(step),
        "config": dict(config),
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state(),
    }
    path = Path(path)
    with write_errors(path, RUN_WRITE_WAY_OUT):
        write_torch(path, state)
    return path


def _torch_load(path: Path, mmap: bool = False):
    """``torch.load(weights_only=True)`` on CPU; one :class:`UserError` line for a file it cannot read safely."""
    try:
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
                pass
        with third_party_quiet():  # torch warns about the protocol of a raw pickle before it refuses it
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or an unsafe pickle
        first = (str(e).splitlines() or [""])[0][:200]
        raise UserError(f"{path}: cannot load checkpoint safely ({type(e).__name__}: {first}); it cannot be read as a "
                        "weights-only checkpoint: re-save it as a plain state dict or safetensors") from None


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; pass an existing .pt or .safetensors file or a run folder")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: checkpoint is empty (0 bytes: an interrupted copy?); delete it or copy it again")
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The object stored in a ``.pt`` checkpoint, loaded safely (``weights_only=True``) onto the CPU.

    Raises :class:`UserError` when the file is missing, empty or unreadable.
    """
    return _torch_load(_existing_file(path))


def _read_safetensors(path: Path, shapes_only: bool = False) -> dict:
    """A ``.safetensors`` file's tensors (or only their shapes), on the CPU."""
    try:
        if shapes_only:
            with safe_open(str(path), "pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        return load_file(str(path), device="cpu")
    except Exception as e:
        raise UserError(f"{path}: cannot be read as safetensors ({type(e).__name__}: {e})") from None


def load_checkpoint_file(path: str | os.PathLike, prefer: str = "ema") -> dict[str, torch.Tensor]:
    """One state dict from a checkpoint file of any format, read safely.

    ``.safetensors`` files are read with safetensors, anything else with
    ``torch.load(weights_only=True)``. A dict holding ``"ema"`` and/or ``"model"`` (a latte-bench
    training checkpoint, or the official ``{"ema": ...}``) yields ``prefer`` when present (default
    ``"ema"``, as the official ``find_model``), else the other; a ``module.`` prefix (DDP) is stripped.
    """
    path = _existing_file(path)
    obj = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _torch_load(path)
    return extract_state_dict(obj, source=str(path), prefer=prefer)


def resolve_checkpoint(path_or_run) -> Path:
    """The checkpoint file for ``path_or_run`` (a run folder gives its highest-step checkpoint)."""
    path = Path(path_or_run)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint file or run folder")
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None and (path / "config.json").is_file() and any(path.glob("diffusion_pytorch_model*")):
            raise UserError(f"{path}: a diffusers transformer folder; pass the Latte-1 folder above it "
                            "(transformer/, vae/, scheduler/, ...) for text-to-video")
        if found is None:
            raise UserError(f"{path}: no checkpoints/NNNNNNN.pt inside; pass a checkpoint file or a run folder")
        return found
    return path


def read_header(path: str | os.PathLike) -> dict:
    """``{"sha256", "step", "num_frames", "num_classes", "format"}`` of a checkpoint file, without building its model.

    latte-bench training checkpoints are read memory-mapped (only the stored config is touched);
    official files (``{"ema": ...}``, bare state dicts, ``.safetensors``) give their frame and class
    counts from the shapes of ``temp_embed`` (1, F, D) and ``y_embedder.embedding_table.weight``
    (classes + 1, D) where present (None otherwise). ``step`` is None for official files.
    """
    path = _existing_file(path)
    info: dict[str, Any] = {"sha256": sha256_file(path), "step": None, "num_frames": None, "num_classes": None,
                            "format": "official"}
    if path.suffix.lower() == ".safetensors":
        shapes = _read_safetensors(path, shapes_only=True)
    else:
        obj = _torch_load(path, mmap=True)
        if not isinstance(obj, dict):
            raise UserError(f"{path}: not a checkpoint (a {type(obj).__name__}, expected a dict of weights)")
        if obj.get("format") == FORMAT:
            cfg = obj.get("config") or {}
            info.update(format=FORMAT, step=int(obj.get("step", 0)), num_frames=int(cfg.get("num_frames", 0)) or None,
                        num_classes=int(cfg.get("num_classes", 0)))
            return info
        shapes = {k: tuple(v.shape) for k, v in extract_state_dict(obj, str(path)).items()}
    found = official_shapes(shapes)
    if "latent_channels" not in found:
        raise UserError(f"{path}: not a Latte checkpoint (no x_embedder.proj.weight / pos_embed tensors)")
    info.update(num_frames=found.get("num_frames"), num_classes=found.get("num_classes", 0))
    return info


# Fields that may differ on resume without changing what the run computes: length (unless the
# learning rate depends on it), where things are, logging/preview cadence, speed-only switches.
OPERATIONAL_FIELDS = frozenset({
    "steps", "out", "num_workers", "log_every", "ckpt_every", "sample_every", "sample_videos", "sample_steps",
    "sample_sampler", "fvd_every", "fvd_real", "fvd_videos", "device", "distributed", "compile",
    "gradient_checkpointing", "config_changes",
})


def _comparable(config: dict) -> dict:
    """The trajectory-defining settings of a run config, with the global batch in place of its factors."""
    out = {k: json.loads(json.dumps(v)) for k, v in config.items() if k not in OPERATIONAL_FIELDS}
    if config.get("lr_schedule", "constant") != "constant" and "steps" in config:
        out["steps"] = config["steps"]  # a cosine schedule is stretched by a new step count
    if {"batch_size", "grad_accum", "world_size"} <= config.keys():
        out["global_batch"] = int(config["batch_size"]) * int(config["grad_accum"]) * int(config["world_size"])
        for k in ("batch_size", "grad_accum", "world_size"):
            out.pop(k)
    return out


def config_differences(stored: dict, current: dict) -> dict[str, list]:
    """``{field: [stored, current]}`` for each trajectory-defining setting that differs.

    Fields present in only one of the two (added in a later version) are not compared. The
    batch is compared as the global batch ``batch_size · grad_accum · world_size`` (the trainer
    follows the same trajectory for any split of it); when it differs its factors are listed.
    """
    a, b = _comparable(stored), _comparable(current)
    diff = {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if a[k] != b[k]}
    if "global_batch" in diff:
        for k in ("batch_size", "grad_accum", "world_size"):
            if stored.get(k) != current.get(k):
                diff[k] = [stored.get(k), current.get(k)]
    return diff


def resume_checkpoint(run_dir: str | os.PathLike, current: dict, allow_change: bool = False) -> tuple[Path, dict, dict]:
    """``(path, checkpoint, changed)``: the latest checkpoint of ``run_dir`` and the settings that changed.

    ``changed`` is ``{field: [old, new]}`` (empty when nothing changed).

    ``current``: the new run's config (``TrainConfig.to_dict()`` plus ``world_size``). Raises
    :class:`UserError` when there is no checkpoint, when the latest one is empty, corrupt or not a
    training checkpoint (naming it and the previous one to fall back to), or when settings differ
    and ``allow_change`` is False (naming each field and the flag that allows it).
    """
    run_dir = Path(run_dir)
    found = latest_checkpoint(run_dir)
    if found is None:
        raise UserError(f"{run_dir}: --resume but no checkpoint under {run_dir / 'checkpoints'}; drop --resume to start")
    try:
        ckpt = load_checkpoint(found)
        if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
            raise UserError(f"{found}: not a latte-bench training checkpoint")
    except UserError as e:
        earlier = sorted(p for p in found.parent.iterdir() if _NAME.match(p.name) and p != found)
        hint = f"delete it to resume from {earlier[-1].name}" if earlier else "delete it and start again without --resume"
        raise UserError(f"{e}; {hint}") from None
    for part in ("model", "ema"):
        check_finite(ckpt.get(part, {}), f"{found} ({part})")
    diff = config_differences(ckpt.get("config", {}), current)
    if diff and not allow_change:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diff.items())
        raise UserError(f"{found}: --resume with other settings than the run was trained with ({listed}); "
                        "pass the run's values, or --allow-config-change to continue with the new ones (recorded in config.json)")
    return found, ckpt, diff


# ---------------------------------------------------------------- models from checkpoints


@dataclass
class LoadedModel:
    """A model in eval mode and what it needs for sampling.

    ``info``: ``num_frames``, ``latent_channels``, ``latent_size``, ``num_classes``,
    ``learn_sigma``, ``vae``, ``vae_scale`` (plus the run config for latte-bench checkpoints).
    ``checkpoint``: ``{"path", "sha256", "step", "weights", "format"}`` of the file actually read.
    """

    model: torch.nn.Module
    info: dict
    checkpoint: dict = field(default_factory=dict)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(F, C, h, w) of one sampled latent video."""
        i = self.info
        return int(i["num_frames"]), int(i["latent_channels"]), int(i["latent_size"]), int(i["latent_size"])

    @property
    def diffusion_options(self) -> dict:
        """``learn_sigma``, ``noise_schedule``, ``prediction`` the model was trained with (for every sampler)."""
        return diffusion_options(self.info)


def load_model(path_or_run, weights: str = "ema", *, preset: str | None = None, model_name: str | None = None,
               device="cpu") -> LoadedModel:
    """Load ``path_or_run`` with its ``weights`` (``ema`` or ``model``) onto ``device``, in eval mode.

    Accepts a latte-bench checkpoint (``checkpoints/NNNNNNN.pt``), a run folder (its latest
    checkpoint is used) or an official file (``{"ema": ...}`` / ``{"model": ...}`` / a bare state
    dict, ``.pt`` or ``.safetensors``; these carry no config, so ``preset`` names the model).
    """
    if weights not in ("ema", "model"):
        raise UserError(f"--weights must be ema or model, got {weights!r}")
    path = resolve_checkpoint(path_or_run)
    obj = None if path.suffix.lower() == ".safetensors" else load_checkpoint(path)
    record = {"path": str(path.resolve()), "sha256": sha256_file(path), "weights": weights}
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        cfg = TrainConfig.from_dict(obj["config"])
        model = build_model_for_checkpoint(cfg, obj)
        check_finite(obj[weights], f"{path} ({weights} weights)")
        model.load_state_dict(obj[weights])
        info = dict(obj["config"])
        record.update(format=FORMAT, step=int(obj.get("step", 0)), model=cfg.model)
    else:  # official: {"ema": sd} / {"model": sd} / bare state dict
        if preset is None:
            raise UserError(f"{path} is an official-format checkpoint (no config inside); pass --preset ffs|sky|taichi|ucf101 "
                            "(and --model if not Latte-XL/2)")
        cfg = get_preset(preset)
        if model_name:
            cfg = dataclasses.replace(cfg, model=model_name, model_options={})
        state = load_checkpoint_file(path, prefer=weights) if obj is None else extract_state_dict(obj, str(path), prefer=weights)
        check_finite(state, str(path))
        shapes = official_shapes({k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")})
        if not {"latent_channels", "latent_size"} <= set(shapes):
            raise UserError(f"{path}: no x_embedder.proj.weight / pos_embed tensors; not a Latte checkpoint")
        cfg = dataclasses.replace(cfg, **{k: shapes[k] for k in ("num_frames", "num_classes") if k in shapes})
        channels, size = shapes["latent_channels"], shapes["latent_size"]
        model = build_model(cfg, channels, size)
        load_official_state_dict(model, state, source=str(path))
        info = {**cfg.to_dict(), "latent_channels": channels, "latent_size": size}
        record.update(format="official", step=None, model=cfg.model, preset=preset)
    return LoadedModel(model.to(device).eval(), info, record)


_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def latent_space(info: dict, device, vae: str | None = None) -> LatentSpace:
    """The latent space a checkpoint's videos are decoded in: its VAE on ``device`` (``vae`` overrides it).

    ``info``: :attr:`LoadedModel.info`; ``vae_scale`` and ``vae_batch_frames`` missing from it
    (official files) take :class:`TrainConfig`'s defaults (0.18215, 64).
    """
    return LatentSpace(load_vae(vae or info.get("vae", "none"), device),
                       float(info.get("vae_scale", _TRAIN_DEFAULTS["vae_scale"])),
                       int(info.get("vae_batch_frames", _TRAIN_DEFAULTS["vae_batch_frames"])))


def official_shapes(shapes: dict[str, tuple]) -> dict:
    """What an official state dict's tensor shapes say about its model (keys may carry a ``module.`` prefix).

    ``latent_channels`` and ``latent_size`` from ``x_embedder.proj.weight`` (D, C, p, p) and ``pos_embed``
    (1, (size/p)², D); ``num_frames`` from ``temp_embed`` (1, F, D); ``num_classes`` from
    ``y_embedder.embedding_table.weight`` (K + 1 rows with the null class of classifier-free guidance).
    """
    shapes = {k.removeprefix("module.").removeprefix("model."): v for k, v in shapes.items()}
    out = {}
    proj, pos = shapes.get("x_embedder.proj.weight"), shapes.get("pos_embed")
    if proj is not None and len(proj) == 4 and pos is not None and len(pos) == 3:
        out["latent_channels"] = int(proj[1])
        out["latent_size"] = int(round(pos[1] ** 0.5)) * int(proj[2])
    if "temp_embed" in shapes and len(shapes["temp_embed"]) == 3:
        out["num_frames"] = int(shapes["temp_embed"][1])
    table = shapes.get("y_embedder.embedding_table.weight")
    if table is not None:
        out["num_classes"] = int(table[0]) - 1
    return out


T2V_MODEL = "Latte-T2V"


def build_t2v_model(cfg: TrainConfig, in_channels: int, input_size: int, caption_shape: tuple | None = None):
    """Latte-T2V conditioned on one prompt per class (:class:`~latte_bench.models.latte_t2v.CaptionConditioned`).

    The transformer takes Latte-1's configuration, overridden by ``cfg.model_options`` (diffusers' keys,
    e.g. ``num_layers``), with the run's channels, latent size, frames and ``learn_sigma``. The caption
    table comes from ``cfg.prompt_embeds``, or is left empty with ``caption_shape`` (K + 1, L, D) for a
    checkpoint's weights to fill.
    """

    embeddings = None
    if caption_shape is None:
        if not cfg.prompt_embeds:
            raise UserError("--model Latte-T2V trains on prompt embeddings: pass --prompt-embeds FILE (latte-bench "
                            "encode-prompts), one prompt per class in label order")
        embeddings = PromptEmbeddings.load(cfg.prompt_embeds)
        if len(embeddings) != cfg.num_classes:
            raise UserError(f"{cfg.prompt_embeds}: {len(embeddings)} prompts for {cfg.num_classes} classes; "
                            "write one prompt per class, in label order")
    width = int(caption_shape[-1]) if caption_shape is not None else int(embeddings.negative.shape[-1])
    options = {"caption_channels": width, **cfg.model_options, "in_channels": in_channels, "sample_size": input_size,
               "video_length": cfg.num_frames, "out_channels": in_channels * 2 if cfg.learn_sigma else in_channels}
    options.setdefault("cross_attention_dim", options.get("num_attention_heads", 16) * options.get("attention_head_dim", 72))
    try:
        transformer = LatteT2V(**options)
    except TypeError as e:
        raise UserError(f"--model-options {cfg.model_options}: {e} (Latte-T2V takes diffusers' LatteTransformer3DModel keys)") from None
    transformer.initialize_weights()
    if embeddings is not None:
        return CaptionConditioned.from_embeddings(transformer, embeddings)
    return CaptionConditioned(transformer, int(caption_shape[0]) - 1, int(caption_shape[1]))


def build_model(cfg: TrainConfig, in_channels: int, input_size: int, caption_shape: tuple | None = None):
    """The Latte model of ``cfg`` (:func:`latte_bench.models.create_model`); ``Latte-T2V``: :func:`build_t2v_model`."""
    if cfg.model == T2V_MODEL:
        return build_t2v_model(cfg, in_channels, input_size, caption_shape)

    options = dict(
        input_size=input_size, in_channels=in_channels, num_frames=cfg.num_frames, num_classes=cfg.num_classes,
        class_dropout_prob=cfg.class_dropout_prob, learn_sigma=cfg.learn_sigma, variant=cfg.variant,
        joint_strategy=cfg.joint_strategy.replace(" ", "_"), gradient_checkpointing=cfg.gradient_checkpointing,
    )
    options.update(cfg.model_options)
    try:
        return create_model(cfg.model, **options)
    except (UserError, ValueError) as e:
        raise UserError(f"model {cfg.model} with {cfg.model_options}: {e}") from e


def build_model_for_checkpoint(cfg: TrainConfig, checkpoint: dict):
    """The (untrained) model a training checkpoint's weights belong to."""
    stored = checkpoint["config"]
    captions = checkpoint.get("ema", {}).get("captions")
    return build_model(cfg, int(stored["latent_channels"]), int(stored["latent_size"]),
                       None if captions is None else tuple(captions.shape))


def export_official(path: str | os.PathLike, checkpoint: dict) -> Path:
    """Write the EMA weights of a training checkpoint as ``{"ema": state_dict}`` (the official format).

    The model is rebuilt from the stored config so that the exporter can check that the
    architecture has an official equivalent (Variant 1 with the default design choices).
    """
    if checkpoint["config"].get("model") == T2V_MODEL:
        raise UserError("a Latte-T2V run has no official {'ema': ...} format; sample or evaluate its checkpoint directly")
    model = build_model_for_checkpoint(TrainConfig.from_dict(checkpoint["config"]), checkpoint)
    check_finite(checkpoint["ema"], "--ckpt (ema weights)")
    model.load_state_dict(checkpoint["ema"])
    save_official(model, path)
    return Path(path)
