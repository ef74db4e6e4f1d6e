"""``load_model(path_or_run, weights="ema")``: the one way every command loads a trained Latte.

Accepts a latte-bench checkpoint (``checkpoints/NNNNNNN.pt``), a run folder (its latest
checkpoint is used) or an official file (``{"ema": ...}`` / ``{"model": ...}`` / a bare state
dict, ``.pt`` or ``.safetensors``; these carry no config, so ``preset`` names the model).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from latte_bench.errors import UserError
from latte_bench.training.presets import TrainConfig, diffusion_options


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


def resolve_checkpoint(path_or_run) -> Path:
    """The checkpoint file for ``path_or_run`` (a run folder gives its highest-step checkpoint)."""
    from latte_bench.training.checkpoint import latest_checkpoint

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


def load_model(path_or_run, weights: str = "ema", *, preset: str | None = None, model_name: str | None = None,
               device="cpu") -> LoadedModel:
    """Load ``path_or_run`` with its ``weights`` (``ema`` or ``model``) onto ``device``, in eval mode."""
    from latte_bench.fsutil import sha256_file
    from latte_bench.training.checkpoint import FORMAT, check_finite, load_checkpoint
    from latte_bench.training.presets import preset as get_preset

    if weights not in ("ema", "model"):
        raise UserError(f"--weights must be ema or model, got {weights!r}")
    path = resolve_checkpoint(path_or_run)
    obj = None if path.suffix == ".safetensors" else load_checkpoint(path)
    record = {"path": str(path.resolve()), "sha256": sha256_file(path), "weights": weights}
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        cfg = TrainConfig.from_dict(obj["config"])
        model = build_model_for_checkpoint(cfg, obj)
        check_finite(obj[weights], f"{path} ({weights} weights)")
        model.load_state_dict(obj[weights])
        info = dict(obj["config"])
        record.update(format=FORMAT, step=int(obj.get("step", 0)), model=cfg.model)
    else:  # official: {"ema": sd} / {"model": sd} / bare state dict
        from latte_bench.models.convert import extract_state_dict, load_checkpoint_file, load_official_state_dict

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
    from latte_bench.models.latte_t2v import CaptionConditioned, LatteT2V
    from latte_bench.training.t2v import PromptEmbeddings

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
    from latte_bench.models.latte import create_model

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
    from latte_bench.models.convert import save_official
    from latte_bench.training.checkpoint import check_finite

    if checkpoint["config"].get("model") == T2V_MODEL:
        raise UserError("a Latte-T2V run has no official {'ema': ...} format; sample or evaluate its checkpoint directly")
    model = build_model_for_checkpoint(TrainConfig.from_dict(checkpoint["config"]), checkpoint)
    check_finite(checkpoint["ema"], "--ckpt (ema weights)")
    model.load_state_dict(checkpoint["ema"])
    save_official(model, path)
    return Path(path)
