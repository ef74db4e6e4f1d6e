"""Latte-T2V: the text-to-video Latte of the paper (Sec. 4.5), the architecture of the released Latte-1.

Input ``hidden_states`` is ``(B, C, F, H, W)`` latents (diffusers' layout: channels before frames),
``timestep`` is ``(B,)`` (or one value) in 0..999, ``encoder_hidden_states`` is ``(B, L, caption_channels)``
T5 embeddings. Output is ``(B, out_channels, F, H, W)``; ``out_channels = 2 C`` (eps, then the
learned variance interpolation) for Latte-1.

The network is Variant 1 of the paper (spatial and temporal blocks interleaved) with the PixArt-α
conditioning instead of S-AdaLN:

* adaLN-single: one MLP maps the timestep embedding to 6 modulation vectors shared by every block;
  each block adds its own learned ``scale_shift_table (6, D)`` to them (shift, scale, gate of the
  attention and of the MLP);
* caption projection: a 2-layer MLP (GELU-tanh) maps the T5 embeddings to the model width;
* each spatial block attends over the N patches of a frame, then cross-attends (no norm, no gate)
  to the projected caption; each temporal block attends over the F frames at one position;
* a 1D sin-cos temporal table is added before the first temporal block; the spatial 2D table is
  added at the patch embedding.

Parameter names and values are diffusers' ``LatteTransformer3DModel`` (``transformer_blocks.{i}.attn1.to_q``
...), so a Latte-1 ``transformer/`` folder loads unchanged (:meth:`LatteT2V.from_pretrained`), and
:meth:`LatteT2V.save_pretrained` writes a folder that diffusers loads. Official Latte ``.pt`` state dicts
(``models/latte_t2v.py`` names) load with :meth:`LatteT2V.load_weights`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from latte_bench.errors import UserError
from latte_bench.models.embeddings import TimestepEmbedder, spatial_sincos_table, temporal_sincos_table
from latte_bench.models.latte import modulate, sdpa_attention, unpatchify_frames
from latte_bench.fsutil import atomic_path, write_json
from latte_bench.models.convert import check_finite, state_dict_problems

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
ACTIVATIONS = ("gelu", "gelu-approximate", "geglu")

# Latte-1's transformer/config.json (the defaults of the constructor)
LATTE1_CONFIG = dict(
    num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28, dropout=0.0,
    cross_attention_dim=1152, attention_bias=True, sample_size=64, patch_size=2, activation_fn="gelu-approximate",
    num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
    caption_channels=4096, video_length=16,
)


# --------------------------------------------------------------------------- helpers of forward
def caption_bias(mask: torch.Tensor | None, dtype) -> torch.Tensor | None:
    """A caption mask ``(B, L)`` (1 = keep, 0 = discard) -> additive bias ``(B, 1, L)`` (0 / -10000, as the
    official code); a ``(B, 1, L)`` bias passes through."""
    if mask is None or mask.ndim == 3:
        return mask
    return ((1 - mask.to(dtype)) * -10000.0)[:, None, :]


# --------------------------------------------------------------------------- modules
class Attention(nn.Module):
    """Multi-head (cross-)attention with diffusers' names: ``to_q``, ``to_k``, ``to_v``, ``to_out.0``.

    ``x (S, L, D)`` attends to ``context (S, Lc, Dc)`` (itself when None); ``bias (S, 1, Lc)`` is
    added to the scores.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim, bias=True)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        s = x.shape[0]

        def split(t):  # (S, L, H*hd) -> (S, H, L, hd)
            return t.reshape(s, -1, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        out = sdpa_attention(q, k, v, None if bias is None else bias[:, None].to(q.dtype))
        return self.to_out[0](out.transpose(1, 2).reshape(s, -1, self.heads * self.head_dim))


class ProjectIn(nn.Module):
    """The first layer of the feed-forward: ``proj`` then GELU (exact or tanh), or GEGLU (``proj`` to 2x, gated)."""

    def __init__(self, dim: int, inner: int, activation: str):
        super().__init__()
        self.activation = activation
        self.proj = nn.Linear(dim, inner * 2 if activation == "geglu" else inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        if self.activation == "geglu":
            h, gate = h.chunk(2, dim=-1)
            return h * F.gelu(gate)
        return F.gelu(h, approximate="tanh" if self.activation == "gelu-approximate" else "none")


class FeedForward(nn.Module):
    """``net.0`` (:class:`ProjectIn`), ``net.1`` (dropout, a no-op at inference), ``net.2`` (Linear back to D)."""

    def __init__(self, dim: int, activation: str, dropout: float = 0.0, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([ProjectIn(dim, dim * mult, activation), nn.Dropout(dropout), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class T2VBlock(nn.Module):
    """One adaLN-single transformer block on ``(S, L, D)`` sequences.

    ``t6 (S, 6D)``: the shared timestep modulation, to which ``scale_shift_table (6, D)`` is added;
    chunks shift/scale/gate of the attention, then of the MLP. Spatial blocks (``context_dim`` set)
    add a cross-attention to the caption between the two, without norm or gate (PixArt-α).
    """

    def __init__(self, dim: int, heads: int, head_dim: int, *, context_dim: int | None, activation: str, bias: bool,
                 affine: bool, eps: float, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
        self.attn1 = Attention(dim, heads, head_dim, bias)
        self.attn2 = Attention(dim, heads, head_dim, bias, context_dim) if context_dim is not None else None
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
        self.ff = FeedForward(dim, activation, dropout)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(self, x, t6, context=None, bias=None):
        mod = self.scale_shift_table[None] + t6.reshape(x.shape[0], 6, -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)  # (S, 1, D) each
        x = gate_msa * self.attn1(modulate(self.norm1(x), shift_msa, scale_msa)) + x
        if self.attn2 is not None:
            x = self.attn2(x, context, bias) + x
        return gate_mlp * self.ff(modulate(self.norm2(x), shift_mlp, scale_mlp)) + x


class PatchEmbed(nn.Module):
    """``proj``: Conv2d with kernel = stride = p, frames ``(S, C, H, W) -> (S, N, D)`` plus the 2D sin-cos table
    (positions scaled to the ``sample_size`` grid when the latent size differs, as diffusers' ``PatchEmbed``)."""

    def __init__(self, sample_size: int, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        self.patch_size, self.base_size = patch_size, sample_size // patch_size
        self.interpolation_scale = max(sample_size // 64, 1)
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=True)
        table = spatial_sincos_table(dim, self.base_size, self.base_size, self.base_size, self.interpolation_scale)
        self.register_buffer("pos_embed", table[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        if grid == (self.base_size, self.base_size):
            table = self.pos_embed
        else:
            table = spatial_sincos_table(tokens.shape[-1], *grid, self.base_size, self.interpolation_scale).to(x.device)[None]
        return (tokens + table).to(tokens.dtype)


class AdaLayerNormSingle(nn.Module):
    """Timesteps ``(B,)`` -> ``(t6 (B, 6D), t_emb (B, D))``: 256 sinusoids ``[cos, sin]``, then
    ``emb.timestep_embedder.linear_1``, SiLU, ``linear_2`` (``t_emb``), then SiLU, ``linear`` (``t6``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.emb = nn.Module()
        self.emb.timestep_embedder = nn.Module()
        self.emb.timestep_embedder.linear_1 = nn.Linear(256, dim)
        self.emb.timestep_embedder.linear_2 = nn.Linear(dim, dim)
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, t: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        mlp = self.emb.timestep_embedder
        freq = TimestepEmbedder.timestep_embedding(t, 256).to(dtype)
        t_emb = mlp.linear_2(F.silu(mlp.linear_1(freq)))
        return self.linear(F.silu(t_emb)), t_emb


class CaptionProjection(nn.Module):
    """T5 embeddings ``(B, L, caption_channels) -> (B, L, D)``: ``linear_1``, GELU-tanh, ``linear_2``."""

    def __init__(self, in_features: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


# --------------------------------------------------------------------------- the model
class LatteT2V(nn.Module):
    """Latte-T2V with diffusers' ``LatteTransformer3DModel`` configuration keys (defaults: Latte-1's).

    ``num_layers`` spatial blocks (with cross-attention to the ``cross_attention_dim``-wide projected
    caption) interleaved with ``num_layers`` temporal blocks; width ``D = num_attention_heads *
    attention_head_dim``. ``sample_size``: the latent side the spatial table is built for (64 for
    512 px); ``video_length``: frames the temporal table is built for (other sizes and lengths work).
    ``enable_temporal_attentions=False`` skips every temporal block and the temporal table (an image
    model; diffusers' pipeline option of the same name), also per call.
    """

    def __init__(self, num_attention_heads: int = 16, attention_head_dim: int = 72, in_channels: int = 4,
                 out_channels: int | None = 8, num_layers: int = 28, dropout: float = 0.0, cross_attention_dim: int = 1152,
                 attention_bias: bool = True, sample_size: int = 64, patch_size: int = 2,
                 activation_fn: str = "gelu-approximate", num_embeds_ada_norm: int | None = 1000,
                 norm_type: str = "ada_norm_single", norm_elementwise_affine: bool = False, norm_eps: float = 1e-6,
                 caption_channels: int = 4096, video_length: int = 16, enable_temporal_attentions: bool = True):
        super().__init__()
        if norm_type != "ada_norm_single":
            raise UserError(f"norm_type={norm_type!r}: Latte-T2V uses 'ada_norm_single' (the PixArt-α conditioning)")
        if activation_fn not in ACTIVATIONS:
            raise UserError(f"activation_fn={activation_fn!r} is not one of {ACTIVATIONS}")
        dim = num_attention_heads * attention_head_dim
        self.config = dict(
            num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim, in_channels=in_channels,
            out_channels=out_channels, num_layers=num_layers, dropout=dropout, cross_attention_dim=cross_attention_dim,
            attention_bias=attention_bias, sample_size=sample_size, patch_size=patch_size, activation_fn=activation_fn,
            num_embeds_ada_norm=num_embeds_ada_norm, norm_type=norm_type, norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps, caption_channels=caption_channels, video_length=video_length,
        )
        self.hidden_size, self.patch_size, self.in_channels = dim, patch_size, in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.learn_sigma = self.out_channels == 2 * in_channels
        self.num_frames = video_length
        self.enable_temporal_attentions = enable_temporal_attentions

        self.pos_embed = PatchEmbed(sample_size, patch_size, in_channels, dim)
        block = dict(activation=activation_fn, bias=attention_bias, affine=norm_elementwise_affine, eps=norm_eps, dropout=dropout)
        self.transformer_blocks = nn.ModuleList(
            [T2VBlock(dim, num_attention_heads, attention_head_dim, context_dim=cross_attention_dim, **block) for _ in range(num_layers)])
        self.temporal_transformer_blocks = nn.ModuleList(
            [T2VBlock(dim, num_attention_heads, attention_head_dim, context_dim=None, **block) for _ in range(num_layers)])
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * self.out_channels)
        self.adaln_single = AdaLayerNormSingle(dim)
        self.caption_projection = CaptionProjection(caption_channels, dim)
        self.register_buffer("temp_pos_embed", temporal_sincos_table(dim, video_length)[None], persistent=False)

    # ----------------------------------------------------------------------- forward
    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: torch.Tensor | None = None, enable_temporal_attentions: bool | None = None) -> torch.Tensor:
        """``(B, C, F, H, W)`` latents, ``(B,)`` timesteps, ``(B, L, caption_channels)`` captions -> ``(B, C_out, F, H, W)``.

        ``encoder_attention_mask``: ``(B, L)`` with 1 = keep, 0 = discard (turned into a -10000 bias),
        or a ``(B, 1, L)`` additive bias. ``enable_temporal_attentions``: None = the model's setting.
        """
        temporal = self.enable_temporal_attentions if enable_temporal_attentions is None else enable_temporal_attentions
        b, c, f, h, w = hidden_states.shape
        grid = (h // self.patch_size, w // self.patch_size)
        x = self.pos_embed(hidden_states.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))  # (B*F, N, D)
        n = x.shape[1]
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1)
        if timestep.numel() == 1 and b > 1:
            timestep = timestep.expand(b)
        t6, t_emb = self.adaln_single(timestep, x.dtype)  # (B, 6D), (B, D)

        context = self.caption_projection(encoder_hidden_states).repeat_interleave(f, dim=0)  # (B*F, L, D)
        bias = caption_bias(encoder_attention_mask, x.dtype)
        bias = None if bias is None else bias.repeat_interleave(f, dim=0)
        t6_spatial, t6_temporal = t6.repeat_interleave(f, dim=0), t6.repeat_interleave(n, dim=0)

        for i, (spatial, temporal_block) in enumerate(zip(self.transformer_blocks, self.temporal_transformer_blocks)):
            x = spatial(x, t6_spatial, context, bias)
            if temporal:
                x = x.reshape(b, f, n, -1).transpose(1, 2).reshape(b * n, f, -1)  # (B*N, F, D)
                if i == 0 and f > 1:
                    x = x + self._temporal_table(f, x)
                x = temporal_block(x, t6_temporal)
                x = x.reshape(b, n, f, -1).transpose(1, 2).reshape(b * f, n, -1)

        shift, scale = (self.scale_shift_table[None] + t_emb.repeat_interleave(f, dim=0)[:, None]).chunk(2, dim=1)
        x = self.proj_out(modulate(self.norm_out(x), shift, scale))
        out = unpatchify_frames(x.reshape(b, f, n, -1), grid, self.patch_size, self.out_channels)  # (B, F, C, H, W)
        return out.permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """PixArt-α's initialisation, for training from scratch (loading weights overwrites it).

        Every Linear xavier-uniform with zero bias; the patch conv xavier-uniform on its ``(D, C*p*p)``
        view; timestep MLP and caption projection N(0, 0.02); zero: each cross-attention's output
        projection (a spatial block starts caption-blind) and ``proj_out`` (the output starts at 0).
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        w = self.pos_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.pos_embed.proj.bias)
        mlp = self.adaln_single.emb.timestep_embedder
        for linear in (mlp.linear_1, mlp.linear_2, self.adaln_single.linear, self.caption_projection.linear_1,
                       self.caption_projection.linear_2):
            nn.init.normal_(linear.weight, std=0.02)
        for block in self.transformer_blocks:
            nn.init.zeros_(block.attn2.to_out[0].weight)
            nn.init.zeros_(block.attn2.to_out[0].bias)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def _temporal_table(self, frames: int, like: torch.Tensor) -> torch.Tensor:
        table = self.temp_pos_embed if frames == self.temp_pos_embed.shape[1] else temporal_sincos_table(self.hidden_size, frames)[None]
        return table.to(like.device, like.dtype)

    # ----------------------------------------------------------------------- files
    @classmethod
    def from_config(cls, config: Mapping) -> "LatteT2V":
        """A model from a diffusers ``config.json`` dict; keys the architecture does not use are ignored
        (``_class_name``, ``norm_num_groups``, ...); a value that changes it and is not supported is refused."""
        known = {k: config[k] for k in LATTE1_CONFIG if k in config}
        unsupported = {k: config[k] for k, ok in (("only_cross_attention", False), ("double_self_attention", False),
                                                     ("upcast_attention", False), ("attention_type", "default"),
                                                     ("num_vector_embeds", None)) if config.get(k, ok) != ok}
        if unsupported:
            raise UserError(f"transformer config {unsupported}: not the Latte-T2V architecture (Latte-1's values are the defaults)")
        return cls(**known)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, dtype: torch.dtype = torch.float32) -> "LatteT2V":
        """Load a diffusers-format transformer folder (``config.json`` and ``diffusion_pytorch_model.safetensors``,
        or its sharded ``.index.json``), or a pipeline folder holding one under ``transformer/``. Eval mode."""
        folder = transformer_folder(folder)
        config = json.loads((folder / CONFIG_NAME).read_text())
        model = cls.from_config(config)
        model.load_weights(folder, source=str(folder))
        return model.to(dtype).eval()

    def load_weights(self, weights: "str | os.PathLike | dict[str, torch.Tensor]", source: str | None = None) -> None:
        """Load weights from a transformer folder (diffusers' safetensors, read here: the model's own format) or
        from a state dict in memory, e.g. an official Latte ``.pt`` or ``.safetensors`` file read by
        :func:`latte_bench.training.checkpoint.load_checkpoint_file` (the one reader of checkpoint files).

        Every key and shape is checked (one line naming what does not fit); a NaN/Inf tensor is refused.
        """
        if isinstance(weights, dict):
            state, source = weights, source or "state dict"
        else:
            path = Path(weights)
            source = source or str(path)
            if not path.is_dir():
                raise UserError(f"{path}: not a transformer folder; read a checkpoint file with "
                                "latte_bench.training.checkpoint.load_checkpoint_file and pass its state dict")
            state = read_weights(path)
        state = official_to_diffusers_names(state)
        problems = state_dict_problems(self.state_dict(), state)
        if problems:
            raise UserError(f"{source} does not fit LatteT2V({self.describe()}): " + "; ".join(problems)
                            + " (check transformer/config.json against the weights)")
        check_finite(state, source)
        self.load_state_dict(state)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` (diffusers' ``LatteTransformer3DModel`` keys) and ``diffusion_pytorch_model.safetensors``."""
        from safetensors.torch import save_file


        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CONFIG_NAME, {"_class_name": "LatteTransformer3DModel", "_diffusers_version": _diffusers_version(),
                                          **self.config})
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        return folder

    def describe(self) -> str:
        cfg = self.config
        return (f"layers={cfg['num_layers']}, width={self.hidden_size}, heads={cfg['num_attention_heads']}, "
                f"patch={self.patch_size}, in={self.in_channels}, out={self.out_channels}, caption={cfg['caption_channels']}")


class CaptionConditioned(nn.Module):
    """Latte-T2V behind the class-conditional interface: ``model(x (B, F, C, H, W), t, y) -> (B, F, C_out, H, W)``.

    Label ``k < K`` is conditioned on prompt ``k``'s embeddings (``captions[k]``, padding masked by
    ``caption_mask[k]``); the null label ``K`` on the empty prompt's, so that label dropout trains
    classifier-free guidance as sampling with the empty negative prompt uses it. The training loop,
    EMA, checkpoints and class-conditional samplers work on it unchanged (frames-first layout outside,
    diffusers' channels-first inside).
    """

    def __init__(self, model: LatteT2V, num_prompts: int, length: int):
        super().__init__()
        self.model = model
        self.num_classes = num_prompts
        width = model.config["caption_channels"]
        self.register_buffer("captions", torch.zeros(num_prompts + 1, length, width))
        self.register_buffer("caption_mask", torch.zeros(num_prompts + 1, length, dtype=torch.int64))

    @classmethod
    def from_embeddings(cls, model: LatteT2V, embeddings) -> "CaptionConditioned":
        """Fill the caption table from :class:`~latte_bench.training.t2v.PromptEmbeddings` (one prompt per class)."""
        embeds, lengths = embeddings.padded()
        if embeds.shape[-1] != model.config["caption_channels"]:
            raise UserError(f"the prompt embeddings are {embeds.shape[-1]} wide, the model's caption_channels "
                            f"{model.config['caption_channels']}; encode the prompts with the matching T5 or set caption_channels")
        out = cls(model, len(embeddings), embeds.shape[1])
        out.captions[:-1] = embeds
        out.caption_mask[:-1] = (torch.arange(embeds.shape[1])[None] < lengths[:, None]).long()
        negative = embeddings.negative[: embeds.shape[1]]
        out.captions[-1, : len(negative)] = negative
        out.caption_mask[-1, : len(negative)] = 1
        return out

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **unused) -> torch.Tensor:
        if y is None:
            raise ValueError("a caption-conditioned model needs labels y (B,): prompt k, or the null label for the empty prompt")
        out = self.model(x.transpose(1, 2), t, self.captions[y], encoder_attention_mask=self.caption_mask[y])
        return out.transpose(1, 2)


# --------------------------------------------------------------------------- helpers
def transformer_folder(path: str | os.PathLike) -> Path:
    """The folder holding the transformer's ``config.json``: ``path`` itself or ``path/transformer``."""
    path = Path(path)
    for candidate in (path, path / "transformer"):
        if (candidate / CONFIG_NAME).is_file() and any(candidate.glob("diffusion_pytorch_model*")):
            return candidate
    raise UserError(f"{path}: no diffusers transformer folder (config.json + {WEIGHTS_NAME}) here or under transformer/; "
                    "pass Latte-1's folder or its transformer/ folder")


def is_transformer_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a Latte-T2V folder that :func:`transformer_folder` accepts."""
    try:
        transformer_folder(path)
    except UserError:
        return False
    return Path(path).is_dir()


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of a diffusers model folder: one safetensors file, or shards listed in its ``.index.json``."""
    from safetensors.torch import load_file

    single, index = folder / WEIGHTS_NAME, folder / (WEIGHTS_NAME + ".index.json")
    try:
        if single.is_file():
            return load_file(str(single), device="cpu")
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(load_file(str(folder / shard), device="cpu"))
            return state
    except Exception as e:  # truncated or not safetensors
        raise UserError(f"{folder}: the transformer weights cannot be read ({type(e).__name__}: {e}); download them again") from None
    raise UserError(f"{folder}: no {WEIGHTS_NAME} (or its .index.json); diffusers folders in .bin format are not read, "
                    "convert them to safetensors")


def official_to_diffusers_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ``models/latte_t2v.py`` names -> diffusers': the temporal blocks' MLP norm is ``norm3`` there
    (``norm2`` here; it holds weights only with ``norm_elementwise_affine``); the non-persistent sin-cos
    buffers some files carry are dropped."""
    out = {}
    for key, value in state.items():
        if key in ("pos_embed.pos_embed", "temp_pos_embed"):
            continue
        if key.startswith("temporal_transformer_blocks.") and ".norm3." in key:
            key = key.replace(".norm3.", ".norm2.")
        out[key] = value
    return out


def _diffusers_version() -> str:
    try:
        import diffusers

        return diffusers.__version__
    except ImportError:
        return "0.30.0"
