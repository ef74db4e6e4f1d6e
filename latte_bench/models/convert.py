"""Official Latte checkpoints in and out, and DiT ImageNet initialisation (paper Sec. 3.3.4).

* :func:`from_official` builds a :class:`Latte` from the official constructor keywords and
  loads an official state dict, checking every key and shape.
* :func:`extract_state_dict` finds the state dict inside an official checkpoint object (a bare
  state dict, or a dict with ``"ema"`` or ``"model"``); files are read by
  :mod:`latte_bench.training.checkpoint`.
* :func:`export_official` / :func:`save_official` write ``{"ema": state_dict}``, the format of
  the released checkpoints, which the official ``sample.py`` loads.
* :func:`init_from_dit` initialises a Latte model from a DiT checkpoint (DiT ``models.py`` key
  names, e.g. ``DiT-XL-2-256x256.pt``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from latte_bench.errors import UserError
from latte_bench.fsutil import write_errors, write_torch
from latte_bench.models.latte import Latte

OFFICIAL_KEYS = (
    "input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
    "num_frames", "class_dropout_prob", "num_classes", "learn_sigma", "extras",
)  # fmt: skip
FROZEN_TABLES = ("pos_embed", "temp_embed")


# --------------------------------------------------------------------------- state dicts
def check_finite(state: dict, source: str) -> None:
    """Refuse a state dict holding a NaN or Inf: one line naming ``source`` and the first such tensor.

    ``state``: name -> tensor (non-floating tensors and other values are skipped). Such weights
    sample all-black videos that would otherwise be scored or written as if they were results.
    """
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "Inf"
            raise UserError(f"{source}: tensor {name} holds {kind} values (a diverged run?); "
                            "use an earlier checkpoint of the run")


def extract_state_dict(obj, source: str = "checkpoint", prefer: str = "ema") -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint object (bare, ``{"ema": ...}`` or ``{"model": ...}``)."""
    if not isinstance(obj, Mapping):
        raise UserError(f"{source}: expected a state dict or a dict with 'ema'/'model', got {type(obj).__name__}")
    other = "model" if prefer == "ema" else "ema"
    for key in (prefer, other):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    state = dict(obj)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{source}: not a state dict (non-tensor entries such as {bad[:3]}); expected a bare state dict or one under 'ema'/'model'")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


# --------------------------------------------------------------------------- official layout
def official_model_kwargs(config: Mapping) -> dict:
    """Map the official ``Latte(...)`` keywords (and ``extras``) to :class:`Latte` options.

    Other keys (``attention_mode``, fixture notes such as ``batch`` or ``seed``) are ignored.
    """
    cfg = {k: config[k] for k in OFFICIAL_KEYS if k in config}
    extras = int(cfg.pop("extras", 1))
    if extras not in (1, 2):
        raise UserError(f"official config extras={extras}: only 1 (unconditional) and 2 (class-conditional) are supported (78 is the legacy CLIP path with no training code)")
    num_classes = int(cfg.pop("num_classes", 1000))
    cfg["num_classes"] = num_classes if extras == 2 else 0
    return cfg


def from_official(config: Mapping, state_dict: Mapping[str, torch.Tensor] | None = None, **options) -> Latte:
    """Build the official Latte (Variant 1) from its constructor keywords and load ``state_dict``.

    ``config`` uses the official names (input_size, patch_size, in_channels, hidden_size, depth,
    num_heads, mlp_ratio, num_frames, class_dropout_prob, num_classes, learn_sigma, extras);
    missing ones take the official defaults. ``state_dict`` may also be a whole checkpoint
    (``{"ema": ...}``). ``options`` go to :class:`Latte` (e.g. ``attention="math"``). The model
    is returned in eval mode.
    """
    kwargs = dict(input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28, num_heads=16, mlp_ratio=4.0, num_frames=16, class_dropout_prob=0.1, learn_sigma=True)
    kwargs.update(official_model_kwargs(config))
    kwargs.update(options)
    model = Latte(**kwargs)
    if state_dict is not None:
        load_official_state_dict(model, extract_state_dict(state_dict))
    return model.eval()


def load_official_state_dict(model: Latte, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load an official-layout state dict into ``model``, naming every missing, unexpected or mis-shaped key.

    The frozen sin-cos tables are not loaded but compared with the model's own (they must agree
    to 1e-5; a difference means the checkpoint was built for another size or frame count).
    """
    expected = model.state_dict()
    problems = state_dict_problems(expected, state_dict)
    if problems:
        raise UserError(f"{source} does not fit {describe(model)}: " + "; ".join(problems) + " (check the model size, patch size, frame count, latent size, num_classes and learn_sigma)")
    for key in FROZEN_TABLES:
        if key in state_dict:
            diff = (state_dict[key].float() - expected[key].float()).abs().max().item()
            if diff > 1e-5:
                raise UserError(f"{source}: stored {key} differs from the sin-cos table by {diff:.3g}; the checkpoint was built for another latent size or frame count")
    weights = {k: v for k, v in state_dict.items() if k not in FROZEN_TABLES}
    model.load_state_dict(weights, strict=False)


def state_dict_problems(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state_dict`` from loading into a model whose state dict is ``expected``:
    missing and unexpected keys, and shape mismatches, one phrase each (empty when it fits)."""
    problems = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    for key, value in state_dict.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            problems.append(f"{key}: shape {tuple(value.shape)} in the checkpoint, {tuple(expected[key].shape)} in the model")
    return problems


def _short(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def describe(model: Latte) -> str:
    return (
        f"Latte(variant={model.variant}, hidden_size={model.hidden_size}, blocks={len(model.blocks)}, "
        f"patch_size={model.patch_size}, num_frames={model.num_frames}, input_size={model.input_size}, "
        f"num_classes={model.num_classes}, learn_sigma={model.learn_sigma})"
    )


def is_official_layout(model: Latte) -> bool:
    """True when the official code can load this model's state dict (Variant 1, default design choices)."""
    return (
        model.variant == 1
        and model.patch_embed_kind == "uniform"
        and model.conditioning == "s_adaln"
        and model.temporal_pos == "absolute"
    )


def export_official(model: Latte) -> dict[str, dict[str, torch.Tensor]]:
    """``{"ema": state_dict}`` in the released checkpoint format (tensors cloned to CPU)."""
    if not is_official_layout(model):
        raise UserError(f"{describe(model)} has no official equivalent (only Variant 1 with uniform patches, S-AdaLN and absolute temporal PE); save its native state_dict instead")
    return {"ema": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def save_official(model: Latte, path: str | os.PathLike) -> None:
    """Atomically write :func:`export_official` to ``path`` with ``torch.save``."""
    ckpt = export_official(model)
    with write_errors(path, "free some space or choose another --out"):
        write_torch(path, ckpt)


# --------------------------------------------------------------------------- DiT init
DIT_MAPPINGS = ("by_name", "spatial")


@torch.no_grad()
def init_from_dit(model: Latte, dit_state_dict: Mapping[str, torch.Tensor], mapping: str = "by_name") -> dict[str, list[str]]:
    """Initialise ``model`` from a DiT image checkpoint (paper Sec. 3.3.4 "ImageNet initialisation").

    ``mapping`` chooses which DiT block feeds which Latte block:

    * ``"by_name"`` (official ``pretrained:`` behaviour): Latte block ``i`` <- DiT block ``i``,
      whatever its kind; for Latte-XL the 28 DiT blocks land on the 14 spatial and 14 temporal
      blocks alternately.
    * ``"spatial"``: the ``j``-th block that has spatial attention <- DiT block ``j``; temporal
      blocks keep their initialisation (adaLN-Zero: identity), so the network starts as the
      per-frame image model.

    Inside a block, DiT's ``attn`` also initialises ``attn_temporal`` (variants 3 and 4). What has
    to be made temporal is replicated over time: a Conv3d tube embedding gets the DiT patch
    weights repeated over its ``nt`` frames and divided by ``nt``, a ConvTranspose3d output the
    DiT final projection repeated over ``nt`` frames. ``adaln`` conditioning takes the shift/scale
    chunks of DiT's modulation. Not taken: ``pos_embed`` (a fixed sin-cos table, computed here),
    DiT's 1000-class label table (dropped; a class-conditional Latte gets a zero table), modules
    a design choice lacks (adaLN weights under "all_tokens").

    Returns ``{"loaded": [...], "zeroed": [...], "kept": [...]}`` listing Latte parameter names.
    Raises :class:`UserError` when DiT's width, patch size or channels do not fit the model.
    """
    if mapping not in DIT_MAPPINGS:
        raise ValueError(f"mapping={mapping!r} is not one of {DIT_MAPPINGS}")
    dit = extract_state_dict(dit_state_dict, source="DiT checkpoint")
    required = ["x_embedder.proj.weight", "t_embedder.mlp.0.weight", "blocks.0.attn.qkv.weight", "final_layer.linear.weight"]
    absent = [k for k in required if k not in dit]
    if absent:
        raise UserError(f"DiT checkpoint lacks {absent}; expected DiT models.py key names (e.g. DiT-XL-2-256x256.pt)")
    d_dit = dit["t_embedder.mlp.0.weight"].shape[0]
    if d_dit != model.hidden_size:
        raise UserError(f"DiT checkpoint has hidden size {d_dit}, the model {model.hidden_size}; pick the matching Latte size (DiT-XL -> Latte-XL)")
    dit_patch = dit["x_embedder.proj.weight"].shape
    if tuple(dit_patch[1:]) != (model.in_channels, model.patch_size, model.patch_size):
        raise UserError(f"DiT patch embedding {tuple(dit_patch)} does not fit in_channels={model.in_channels}, patch_size={model.patch_size}")

    params = dict(model.named_parameters())
    report = {"loaded": [], "zeroed": [], "kept": []}

    def put(name: str, value: torch.Tensor) -> None:
        target = params[name]
        if tuple(value.shape) != tuple(target.shape):
            raise UserError(f"DiT tensor for {name} has shape {tuple(value.shape)}, the model needs {tuple(target.shape)}")
        target.copy_(value.to(target.dtype))
        report["loaded"].append(name)

    # embedders
    w, b = dit["x_embedder.proj.weight"], dit["x_embedder.proj.bias"]
    nt = model.temporal_patch_size
    if nt > 1:  # inflate over the tube: the same response to a static clip
        w = w[:, :, None].repeat(1, 1, nt, 1, 1) / nt
    put("x_embedder.proj.weight", w)
    put("x_embedder.proj.bias", b)
    for key in ("t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias", "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias"):
        put(key, dit[key])
    if "y_embedder.embedding_table.weight" in params:
        params["y_embedder.embedding_table.weight"].zero_()
        report["zeroed"].append("y_embedder.embedding_table.weight")

    # blocks
    n_dit = 1 + max(int(k.split(".")[1]) for k in dit if k.startswith("blocks."))
    if mapping == "by_name":
        sources = {i: i for i in range(len(model.blocks)) if i < n_dit}
    else:
        spatial = [i for i, kind in enumerate(model.block_kinds) if kind != "temporal"]
        sources = {i: j for j, i in enumerate(spatial) if j < n_dit}
    for i, block in enumerate(model.blocks):
        if i not in sources:
            continue
        j = sources[i]
        attn_targets = ["attn"] + (["attn_temporal"] if hasattr(block, "attn_temporal") else [])
        for target in attn_targets:
            for part in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias"):
                put(f"blocks.{i}.{target}.{part}", dit[f"blocks.{j}.attn.{part}"])
        for part in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
            put(f"blocks.{i}.mlp.{part}", dit[f"blocks.{j}.mlp.{part}"])
        if hasattr(block, "adaLN_modulation"):
            for part in ("weight", "bias"):
                value = dit[f"blocks.{j}.adaLN_modulation.1.{part}"]
                if model.conditioning == "adaln":  # keep shift/scale of msa and mlp, drop the gates
                    chunks = value.chunk(6, dim=0)
                    value = torch.cat([chunks[0], chunks[1], chunks[3], chunks[4]], dim=0)
                put(f"blocks.{i}.adaLN_modulation.1.{part}", value)

    # final layer
    if hasattr(model.final_layer, "adaLN_modulation"):
        for part in ("weight", "bias"):
            put(f"final_layer.adaLN_modulation.1.{part}", dit[f"final_layer.adaLN_modulation.1.{part}"])
    lw, lb = dit["final_layer.linear.weight"], dit["final_layer.linear.bias"]
    p, co = model.patch_size, model.out_channels
    if lw.shape[0] != p * p * co:
        raise UserError(f"DiT final layer predicts {lw.shape[0]} values per patch, the model {p * p * co}; match learn_sigma (DiT checkpoints are learn_sigma=True)")
    if nt == 1:
        put("final_layer.linear.weight", lw)
        put("final_layer.linear.bias", lb)
    else:  # linear features ordered (p_row, p_col, c) -> deconv weight (D, c, nt, p, p), repeated over nt
        dw = lw.reshape(p, p, co, -1).permute(3, 2, 0, 1)[:, :, None].repeat(1, 1, nt, 1, 1)
        put("final_layer.deconv.weight", dw)
        put("final_layer.deconv.bias", lb.reshape(p, p, co).mean(dim=(0, 1)))  # one bias per channel

    loaded = set(report["loaded"]) | set(report["zeroed"])
    report["kept"] = [name for name in params if name not in loaded]
    return report
