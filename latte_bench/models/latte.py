"""Latte: a latent diffusion transformer for video, with the four variants of the paper.

Input ``x`` is ``(B, F, C, H, W)`` latents (frames before channels, as in the official code),
``t`` is ``(B,)`` diffusion timesteps, ``y`` is ``(B,)`` class labels (class-conditional models).
Output is ``(B, F, C_out, H, W)`` with ``C_out = 2 * C`` when ``learn_sigma`` (eps, then the
variance interpolation ``v``), else ``C``.

Inside, tokens are kept as ``(B, F, N, D)``: F frames (after an optional temporal compression)
of N = (H/p) * (W/p) patches. A *spatial* attention mixes the N tokens of each frame, a
*temporal* attention mixes the F tokens at each spatial position. The variants differ only in
how those two are arranged (paper Sec. 3.1; see ``docs/model.md``):

* ``variant=1``  blocks alternate spatial, temporal, spatial, ... (official; ``depth`` blocks);
* ``variant=2``  late fusion: ``depth/2`` spatial blocks, then ``depth/2`` temporal blocks;
* ``variant=3``  factorised attention: each block runs spatial then temporal attention in its
  attention sub-layer, then one MLP;
* ``variant=4``  factorised heads: each block's attention has two halves of the heads, one
  spatial and one temporal, run in parallel on the same input; their outputs are added.

With ``variant=1`` and the default options the parameter names and values are exactly the
official ones (``blocks.{i}.attn.qkv.weight`` ...), so official checkpoints load unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from latte_bench.models.embeddings import (
    FramePatchEmbed,
    LabelEmbedder,
    TimestepEmbedder,
    TubePatchEmbed,
    apply_rope,
    rope_tables,
    spatial_sincos_table,
    temporal_sincos_table,
)

VARIANTS = (1, 2, 3, 4)
PATCH_EMBEDS = ("uniform", "compression")
CONDITIONINGS = ("s_adaln", "adaln", "all_tokens")
TEMPORAL_POS = ("absolute", "rope")
JOINT_STRATEGIES = ("only_video", "temporal_mask")
ATTENTION_IMPLS = ("sdpa", "math")
HEADS_WIDTHS = ("full", "split")

# depth counts spatial and temporal blocks together (official convention)
LATTE_SIZES = {
    "S": dict(depth=12, hidden_size=384, num_heads=6),
    "B": dict(depth=12, hidden_size=768, num_heads=12),
    "L": dict(depth=24, hidden_size=1024, num_heads=16),
    "XL": dict(depth=28, hidden_size=1152, num_heads=16),
}
PATCH_SIZES = (2, 4, 8)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


# --------------------------------------------------------------------------- attention
def dot_product_attention(q, k, v, mask=None, impl: str = "sdpa") -> torch.Tensor:
    """``q, k, v (S, H, L, hd)`` -> ``(S, H, L, hd)``; ``mask (L, L)`` bool, True = may attend.

    ``impl="sdpa"`` uses ``F.scaled_dot_product_attention``; ``"math"`` computes
    ``softmax(q k^T * hd^-0.5) v`` explicitly, the way the official code runs.
    """
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Multi-head self-attention over ``(S, L, D)`` sequences: ``qkv`` and ``proj`` linears (official names)."""

    def __init__(self, dim: int, num_heads: int, impl: str = "sdpa"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.impl = impl
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask=None, rope=None) -> torch.Tensor:
        s, length, dim = x.shape
        qkv = self.qkv(x).reshape(s, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (S, H, L, hd)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = dot_product_attention(q, k, v, mask, self.impl)
        return self.proj(out.transpose(1, 2).reshape(s, length, dim))


class Mlp(nn.Module):
    """timm ``Mlp`` without dropout: fc1 -> GELU(tanh) -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


@dataclass
class TemporalContext:
    """How temporal attention treats the frames of one forward call.

    ``num_video``: the F video frames come first, then ``num_images`` independent images.
    ``slice_images``: images bypass temporal attention ("only video"); otherwise they take
    part with ``mask`` ("temporal mask"). ``rope``: rotate q and k by the frame index.
    """

    num_video: int
    num_images: int
    slice_images: bool
    mask: torch.Tensor | None
    rope: bool
    _rope_cache: dict = field(default_factory=dict)

    def rope_for(self, length: int, head_dim: int, device) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.rope:
            return None
        key = (length, head_dim)
        if key not in self._rope_cache:
            cos, sin = rope_tables(length, head_dim, device=device)
            self._rope_cache[key] = (cos, sin)
        return self._rope_cache[key]


def spatial_attention(attn: Attention, h: torch.Tensor) -> torch.Tensor:
    """Attention over the N tokens of each frame: ``(B, F, N, D) -> (B, F, N, D)``."""
    b, f, n, d = h.shape
    return attn(h.reshape(b * f, n, d)).reshape(b, f, n, d)


def temporal_attention(attn: Attention, h: torch.Tensor, ctx: TemporalContext) -> torch.Tensor:
    """Attention over frames at each spatial position: ``(B, F, N, D) -> (B, F', N, D)``.

    F' = the video frames only when ``ctx.slice_images`` (images are left out), else all frames.
    """
    if ctx.slice_images:
        h = h[:, : ctx.num_video]
    b, f, n, d = h.shape
    seq = h.transpose(1, 2).reshape(b * n, f, d)
    out = attn(seq, mask=ctx.mask, rope=ctx.rope_for(f, attn.head_dim, h.device))
    return out.reshape(b, n, f, d).transpose(1, 2)


def pad_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Append zero frames to ``(B, F', N, D)`` up to ``num_frames`` (images that skipped temporal attention)."""
    missing = num_frames - x.shape[1]
    if missing == 0:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], missing, *x.shape[2:])], dim=1)


# --------------------------------------------------------------------------- blocks
BLOCK_KINDS = ("spatial", "temporal", "factorised_attention", "factorised_heads")


class LatteBlock(nn.Module):
    """One transformer block on ``(B, F, N, D)`` tokens with condition ``c (B, F or 1, 1, D)``.

    ``kind`` selects the attention sub-layer (see the module docstring); ``conditioning``:

    * ``"s_adaln"``  adaLN-Zero: LayerNorm without affine, then ``x*(1+scale)+shift``, and a
      gate on each residual branch; ``adaLN_modulation = SiLU, Linear(D, 6D)`` chunked as
      shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp (official);
    * ``"adaln"``  the same without gates: ``Linear(D, 4D)`` -> shift_msa, scale_msa, shift_mlp, scale_mlp;
    * ``"all_tokens"``  plain pre-norm block (affine LayerNorms, no modulation); the condition
      enters as extra tokens and ``c`` is None.
    """

    def __init__(self, kind: str, hidden_size: int, num_heads: int, mlp_ratio: float, conditioning: str, attention_impl: str, heads_width: str = "full"):
        super().__init__()
        self.kind = kind
        self.conditioning = conditioning
        self.heads_width = heads_width
        affine = conditioning == "all_tokens"
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=affine, eps=1e-6)
        if kind == "factorised_heads" and heads_width == "full":
            # each half of the heads works on the full width (see docs/model.md, Variant 4)
            spatial_heads = max(num_heads // 2, 1)
            self.attn = Attention(hidden_size, spatial_heads, attention_impl)
            self.attn_temporal = Attention(hidden_size, max(num_heads - spatial_heads, 1), attention_impl)
        else:
            self.attn = Attention(hidden_size, num_heads, attention_impl)
            if kind == "factorised_attention":
                self.attn_temporal = Attention(hidden_size, num_heads, attention_impl)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=affine, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        if conditioning != "all_tokens":
            chunks = 6 if conditioning == "s_adaln" else 4
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, chunks * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, ctx: TemporalContext, features: dict | None = None, name: str = "") -> torch.Tensor:
        if self.kind == "temporal" and ctx.slice_images and x.shape[1] > ctx.num_video:
            # "only video": the images skip the whole temporal block (official latte_img.py)
            n_video = ctx.num_video
            c_video = c if c is None or c.shape[1] == 1 else c[:, :n_video]
            video = self._forward(x[:, :n_video], c_video, ctx, features, name, total_frames=x.shape[1])
            return torch.cat([video, x[:, n_video:]], dim=1)
        return self._forward(x, c, ctx, features, name, total_frames=x.shape[1])

    def _forward(self, x, c, ctx, features, name, total_frames):
        if self.conditioning == "all_tokens":
            shift_msa = scale_msa = shift_mlp = scale_mlp = None
            gate_msa = gate_mlp = None
        elif self.conditioning == "s_adaln":
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        else:
            shift_msa, scale_msa, shift_mlp, scale_mlp = self.adaLN_modulation(c).chunk(4, dim=-1)
            gate_msa = gate_mlp = None

        h = self.norm1(x)
        if shift_msa is not None:
            h = modulate(h, shift_msa, scale_msa)
        a = self._mix(h, ctx, features, name, total_frames)
        x = x + (a if gate_msa is None else gate_msa * a)

        h = self.norm2(x)
        if shift_mlp is not None:
            h = modulate(h, shift_mlp, scale_mlp)
        m = self.mlp(h)
        x = x + (m if gate_mlp is None else gate_mlp * m)
        return x

    def _mix(self, h, ctx, features, name, total_frames):
        """The attention sub-layer; records ``{name}.spatial_attn`` / ``{name}.temporal_attn`` in ``features``."""
        if self.kind == "spatial":
            a = spatial_attention(self.attn, h)
            _record(features, f"{name}.spatial_attn", a)
            return a
        if self.kind == "temporal":
            a = temporal_attention(self.attn, h, ctx)
            _record(features, f"{name}.temporal_attn", pad_frames(a, total_frames))
            return a
        if self.kind == "factorised_attention":
            s = spatial_attention(self.attn, h)
            t = temporal_attention(self.attn_temporal, s, ctx)
            _record(features, f"{name}.spatial_attn", s)
            _record(features, f"{name}.temporal_attn", pad_frames(t, total_frames))
            if t.shape[1] < s.shape[1]:  # images: spatial output passes through
                t = torch.cat([t, s[:, t.shape[1] :]], dim=1)
            return t
        if self.heads_width == "split":
            return self._split_heads(h, ctx, features, name, total_frames)
        # factorised heads: both halves read the same input, outputs are added
        s = spatial_attention(self.attn, h)
        t = pad_frames(temporal_attention(self.attn_temporal, h, ctx), total_frames)
        _record(features, f"{name}.spatial_attn", s)
        _record(features, f"{name}.temporal_attn", t)
        return s + t


    def _split_heads(self, h, ctx, features, name, total_frames):
        """Factorised heads inside one standard MHA: heads ``[:H/2]`` spatial, ``[H/2:]`` temporal.

        One ``qkv`` and one ``proj`` (the Variant-1 parameters); the concatenated heads go through
        ``proj``, which equals ``proj`` applied to each half (its weight columns) and added. The
        recorded halves exclude ``proj.bias``: ``spatial_attn + temporal_attn + proj.bias`` is the output.
        """
        attn = self.attn
        b, f, n, d = h.shape
        hs, hd = attn.num_heads // 2, attn.head_dim
        ht = attn.num_heads - hs
        qkv = attn.qkv(h).reshape(b, f, n, 3, attn.num_heads, hd)
        q, k, v = qkv[..., :hs, :].permute(3, 0, 1, 4, 2, 5).reshape(3, b * f, hs, n, hd).unbind(0)
        o_s = dot_product_attention(q, k, v, None, attn.impl)  # (B*F, hs, N, hd)
        o_s = o_s.reshape(b, f, hs, n, hd).transpose(2, 3).reshape(b, f, n, hs * hd)
        temporal = qkv[..., hs:, :]
        if ctx.slice_images:
            temporal = temporal[:, : ctx.num_video]
        fv = temporal.shape[1]
        q, k, v = temporal.permute(3, 0, 2, 4, 1, 5).reshape(3, b * n, ht, fv, hd).unbind(0)
        rope = ctx.rope_for(fv, hd, h.device)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        o_t = dot_product_attention(q, k, v, ctx.mask, attn.impl)  # (B*N, ht, F, hd)
        o_t = o_t.reshape(b, n, ht, fv, hd).permute(0, 3, 1, 2, 4).reshape(b, fv, n, ht * hd)
        s = F.linear(o_s, attn.proj.weight[:, : hs * hd])
        t = pad_frames(F.linear(o_t, attn.proj.weight[:, hs * hd :]), total_frames)
        _record(features, f"{name}.spatial_attn", s)
        _record(features, f"{name}.temporal_attn", t)
        return s + t + attn.proj.bias


def _record(features: dict | None, key: str, value: torch.Tensor) -> None:
    if features is not None:
        features[key] = value


class FinalLayer(nn.Module):
    """LayerNorm (+ shift/scale modulation) then a projection back to patches.

    ``linear``: ``Linear(D, p*p*C_out)`` for frame patches (features ordered (p_row, p_col, c));
    ``deconv``: ``ConvTranspose3d(D, C_out, (nt, p, p), stride (nt, p, p))`` for tubes, which
    restores the ``nt`` compressed frames as well as the patch.
    """

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int, conditioning: str, temporal_patch_size: int = 1):
        super().__init__()
        self.conditioning = conditioning
        self.patch_size = patch_size
        self.temporal_patch_size = temporal_patch_size
        self.out_channels = out_channels
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=conditioning == "all_tokens", eps=1e-6)
        if temporal_patch_size == 1:
            self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        else:
            kernel = (temporal_patch_size, patch_size, patch_size)
            self.deconv = nn.ConvTranspose3d(hidden_size, out_channels, kernel_size=kernel, stride=kernel)
        if conditioning != "all_tokens":
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, F', N, D) -> (B, F, C_out, H, W)`` with ``F = F' * nt``."""
        x = self.norm_final(x)
        if self.conditioning != "all_tokens":
            shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
            x = modulate(x, shift, scale)
        b, f, n, d = x.shape
        gh, gw = grid
        p, co = self.patch_size, self.out_channels
        if self.temporal_patch_size == 1:
            x = self.linear(x).reshape(b, f, gh, gw, p, p, co)
            x = torch.einsum("bfhwpqc->bfchpwq", x)
            return x.reshape(b, f, co, gh * p, gw * p)
        x = x.reshape(b, f, gh, gw, d).permute(0, 4, 1, 2, 3)  # (B, D, F', gh, gw)
        return self.deconv(x).transpose(1, 2)  # (B, F, C_out, H, W)


# --------------------------------------------------------------------------- the model
class Latte(nn.Module):
    """Latte video diffusion transformer (all variants and design choices of the paper).

    Args:
        input_size: latent height/width (int) or (H, W); 32 for 256 px with the SD VAE.
        patch_size: spatial patch p (2, 4 or 8).
        in_channels: latent channels C (4).
        hidden_size, depth, num_heads, mlp_ratio: transformer width; ``depth`` counts spatial
            and temporal blocks together (official convention).
        num_frames: F, video frames per sample (the tables are built for it; other counts work).
        num_classes: 0 for an unconditional model, else the number of classes; the null class
            (classifier-free guidance) is index ``num_classes``.
        class_dropout_prob: label dropout in training mode (also creates the null-class row).
        learn_sigma: output ``2C`` channels (eps and the variance interpolation).
        variant: 1 interleaved, 2 late fusion, 3 factorised attention, 4 factorised heads.
        patch_embed: "uniform" (per-frame Conv2d) or "compression" (Conv3d tubes of
            ``temporal_patch_size`` frames; a ConvTranspose3d restores the frames at the output).
        conditioning: "s_adaln" (adaLN-Zero), "adaln" (shift/scale only) or "all_tokens".
        temporal_pos: "absolute" (sin-cos table added once before the first temporal mixing)
            or "rope" (rotary embedding of the frame index on q and k of temporal attention).
        joint_strategy: image-video joint training: "only_video" (the K images skip temporal
            attention; official) or "temporal_mask" (they join it through a mask under which video
            tokens see only video tokens and each image token only itself).
        attention: "sdpa" (``F.scaled_dot_product_attention``) or "math" (explicit, as official).
        gradient_checkpointing: recompute each block in the backward pass (training only).
        factorised_depth: number of blocks for variants 3 and 4; default ``round(depth * 9 / 11)``,
            which matches the Variant-1 parameter budget (a factorised block holds 22 D^2 weights,
            an interleaved one 18 D^2); 23 blocks for XL (676.36M vs the paper's 676.33M/676.44M).
            With ``heads_width="split"`` the default is ``depth``.
        heads_width: Variant 4 only. "full": each half of the heads is its own full-width
            attention module (``attn`` spatial, ``attn_temporal`` temporal; H/2 heads of size 2D/H);
            "split": one standard MHA (``attn``) whose first H/2 heads attend spatially and the
            others temporally, concatenated before the output projection (Variant-1 parameters).
    """

    def __init__(
        self,
        input_size: int | tuple[int, int] = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_frames: int = 16,
        num_classes: int = 0,
        class_dropout_prob: float = 0.1,
        learn_sigma: bool = True,
        variant: int = 1,
        patch_embed: str = "uniform",
        temporal_patch_size: int = 2,
        conditioning: str = "s_adaln",
        temporal_pos: str = "absolute",
        joint_strategy: str = "only_video",
        attention: str = "sdpa",
        gradient_checkpointing: bool = False,
        factorised_depth: int | None = None,
        heads_width: str = "full",
    ):
        super().__init__()
        _check_choice("variant", variant, VARIANTS)
        _check_choice("patch_embed", patch_embed, PATCH_EMBEDS)
        _check_choice("conditioning", conditioning, CONDITIONINGS)
        _check_choice("temporal_pos", temporal_pos, TEMPORAL_POS)
        _check_choice("joint_strategy", joint_strategy, JOINT_STRATEGIES)
        _check_choice("attention", attention, ATTENTION_IMPLS)
        _check_choice("heads_width", heads_width, HEADS_WIDTHS)
        if variant in (1, 2) and depth % 2:
            raise ValueError(f"variants 1 and 2 need an even depth (spatial + temporal blocks), got {depth}")
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.num_frames = num_frames
        self.num_classes = num_classes
        self.learn_sigma = learn_sigma
        self.variant = variant
        self.patch_embed_kind = patch_embed
        self.conditioning = conditioning
        self.temporal_pos = temporal_pos
        self.joint_strategy = joint_strategy
        self.gradient_checkpointing = gradient_checkpointing
        self.temporal_patch_size = temporal_patch_size if patch_embed == "compression" else 1
        if num_frames % self.temporal_patch_size:
            raise ValueError(f"num_frames={num_frames} is not divisible by temporal_patch_size={temporal_patch_size}")
        for side in self.input_size:
            if side % patch_size:
                raise ValueError(f"latent size {self.input_size} is not divisible by patch size {patch_size}")

        if patch_embed == "uniform":
            self.x_embedder = FramePatchEmbed(patch_size, in_channels, hidden_size)
        else:
            self.x_embedder = TubePatchEmbed(patch_size, temporal_patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        if num_classes > 0:
            self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)

        grid_h, grid_w = (s // patch_size for s in self.input_size)
        # frozen tables, persistent so that state_dicts match the official ones
        self.register_buffer("pos_embed", spatial_sincos_table(hidden_size, grid_h, grid_w)[None])
        if temporal_pos == "absolute":
            table = temporal_sincos_table(hidden_size, num_frames // self.temporal_patch_size)
            self.register_buffer("temp_embed", table[None])

        if factorised_depth is None and variant == 4 and heads_width == "split":
            factorised_depth = depth
        kinds = _block_kinds(variant, depth, factorised_depth)
        self.block_kinds = kinds
        self.heads_width = heads_width
        self.blocks = nn.ModuleList(
            [LatteBlock(kind, hidden_size, num_heads, mlp_ratio, conditioning, attention, heads_width) for kind in kinds]
        )
        # the absolute temporal table is added right before the first block that mixes frames
        self.temp_embed_at = next(i for i, k in enumerate(kinds) if k != "spatial") if temporal_pos == "absolute" else None
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels, conditioning, self.temporal_patch_size)
        self.initialize_weights()

    # ----------------------------------------------------------------------- init
    def initialize_weights(self) -> None:
        """DiT initialisation.

        * every ``nn.Linear``: xavier-uniform weight, zero bias;
        * patch-embedding conv: xavier-uniform on the ``(D, C*[nt*]p*p)`` view, zero bias;
        * label table and both timestep-MLP weights: N(0, 0.02);
        * zero: every block's last modulation linear (adaLN-Zero: each block starts as the
          identity), the final modulation linear and the final projection (output starts at 0).
        """

        def basic_init(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)

        self.apply(basic_init)
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.constant_(self.x_embedder.proj.bias, 0)
        if hasattr(self, "y_embedder"):
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            if hasattr(block, "adaLN_modulation"):
                nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
                nn.init.constant_(block.adaLN_modulation[-1].bias, 0)
        final = self.final_layer
        if hasattr(final, "adaLN_modulation"):
            nn.init.constant_(final.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(final.adaLN_modulation[-1].bias, 0)
        out = final.linear if hasattr(final, "linear") else final.deconv
        nn.init.constant_(out.weight, 0)
        nn.init.constant_(out.bias, 0)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.gradient_checkpointing = enabled

    # ----------------------------------------------------------------------- forward
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        use_image_num: int = 0,
        y_image: torch.Tensor | None = None,
        return_features: bool = False,
    ):
        """Predict ``(B, F+K, C_out, H, W)`` from noisy latents ``x (B, F+K, C, H, W)``.

        ``t (B,)`` timesteps in 0..999; ``y (B,)`` labels in 0..num_classes (class models only);
        ``use_image_num`` K: the last K frames are independent images (joint training);
        ``y_image (B, K)`` their labels (class models; default: the video label).

        With ``return_features=True`` returns ``(out, features)``: an ordered dict of
        ``(B, F'+K, N, D)`` tensors (F' = frames after temporal compression; patch tokens only),
        per block ``i`` in order:

        * ``blocks.{i}.spatial_attn``  output of the spatial attention (Variant 4: of the
          spatial half of the heads), before gate and residual;
        * ``blocks.{i}.temporal_attn``  output of the temporal attention (Variant 4: of the
          temporal half); zero on image frames that skip it ("only video");
        * ``blocks.{i}.out``  the token features after the block (residual stream).

        Variants 1/2 blocks have one of the two ``*_attn`` entries; variants 3/4 blocks both.
        """
        batch, frames = x.shape[:2]
        num_images = int(use_image_num)
        num_video = frames - num_images
        if num_images and self.temporal_patch_size > 1:
            raise ValueError("image-video joint training is not defined for the compression patch embedding")
        if num_video % self.temporal_patch_size:
            raise ValueError(f"{num_video} frames are not divisible by temporal_patch_size={self.temporal_patch_size}")
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)

        tokens = self.x_embedder(x) + self._pos_embed(grid, x.device)  # (B, F', N, D)
        n_patches = tokens.shape[2]
        num_video_tokens = num_video // self.temporal_patch_size

        c_frames, label_tokens = self._conditions(t, y, y_image, batch, num_video_tokens, num_images)
        if self.conditioning == "all_tokens":
            tokens = torch.cat([tokens, label_tokens], dim=2)  # condition tokens as extra positions
            c = None
        else:
            c = c_frames[:, :, None, :]  # (B, F'+K or 1, 1, D)

        ctx = self._temporal_context(num_video_tokens, num_images, x.device)
        features = OrderedDict() if return_features else None
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled() and not return_features
        for i, block in enumerate(self.blocks):
            if i == self.temp_embed_at:
                tokens = self._add_temp_embed(tokens, num_video_tokens)
            if checkpointing:
                tokens = checkpoint(block, tokens, c, ctx, use_reentrant=False)
            else:
                block_features = OrderedDict() if features is not None else None
                tokens = block(tokens, c, ctx, block_features, f"blocks.{i}")
                if features is not None:
                    for key, value in block_features.items():
                        features[key] = value[:, :, :n_patches]
                    features[f"blocks.{i}.out"] = tokens[:, :, :n_patches]

        tokens = tokens[:, :, :n_patches]
        out = self.final_layer(tokens, c, grid)
        return (out, features) if return_features else out

    def forward_with_cfg(self, x, t, y, cfg_scale: float, use_image_num: int = 0, y_image=None):
        """Classifier-free guidance, official semantics.

        The first half of the batch is the input (repeated), ``y`` holds the conditional labels
        for the first half and the null class ``num_classes`` for the second. Guidance
        ``eps = uncond + s * (cond - uncond)`` applies to all ``in_channels`` eps channels and is
        copied to both halves; variance channels pass through from each half.
        """
        half = x[: len(x) // 2]
        combined = torch.cat([half, half], dim=0)
        model_out = self.forward(combined, t, y, use_image_num=use_image_num, y_image=y_image)
        eps, rest = model_out[:, :, : self.in_channels], model_out[:, :, self.in_channels :]
        cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
        half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps)
        eps = torch.cat([half_eps, half_eps], dim=0)
        return torch.cat([eps, rest], dim=2)

    # ----------------------------------------------------------------------- helpers
    def _pos_embed(self, grid, device) -> torch.Tensor:
        """``(1, 1, N, D)`` spatial table (recomputed when the latent size differs from the built one)."""
        if grid[0] * grid[1] == self.pos_embed.shape[1] and grid == tuple(s // self.patch_size for s in self.input_size):
            table = self.pos_embed
        else:
            table = spatial_sincos_table(self.hidden_size, *grid).to(device)[None]
        return table[:, None].to(self.pos_embed.dtype)

    def _add_temp_embed(self, tokens: torch.Tensor, num_video: int) -> torch.Tensor:
        """Add the absolute temporal table to the video frames only (images get none, as official)."""
        if num_video == self.temp_embed.shape[1]:
            table = self.temp_embed
        else:
            table = temporal_sincos_table(self.hidden_size, num_video).to(tokens.device, self.temp_embed.dtype)[None]
        video = tokens[:, :num_video] + table[:, :, None, :]
        if num_video == tokens.shape[1]:
            return video
        return torch.cat([video, tokens[:, num_video:]], dim=1)

    def _conditions(self, t, y, y_image, batch, num_video, num_images):
        """Per-frame condition vectors ``(B, F'+K or 1, D)`` and, for "all_tokens", the tokens ``(B, F'+K, M, D)``."""
        t = t.reshape(-1)
        if t.numel() == 1 and batch > 1:
            t = t.expand(batch)
        t_emb = self.t_embedder(t)  # (B, D)
        if self.num_classes > 0:
            if y is None:
                raise ValueError("this model is class-conditional: pass y (B,) labels (the null class is num_classes)")
            y_emb = self.y_embedder(y.reshape(-1), self.training)  # (B, D)
            if num_images:
                if y_image is None:
                    y_image = y.reshape(-1, 1).expand(-1, num_images)
                elif isinstance(y_image, (list, tuple)):
                    y_image = torch.stack([torch.as_tensor(v).reshape(-1) for v in y_image])
                y_img_emb = self.y_embedder(y_image.reshape(batch, num_images), self.training)  # (B, K, D)
                y_frames = torch.cat([y_emb[:, None].expand(-1, num_video, -1), y_img_emb], dim=1)
            else:
                y_frames = y_emb[:, None]
        else:
            if y is not None:
                raise ValueError("this model is unconditional (num_classes=0): pass y=None")
            y_frames = None

        if self.conditioning == "all_tokens":
            total = num_video + num_images
            parts = [t_emb[:, None, None, :].expand(-1, total, 1, -1)]
            if y_frames is not None:
                parts.append(y_frames[:, :, None, :].expand(-1, total, 1, -1))
            return None, torch.cat(parts, dim=2)
        c = t_emb[:, None]
        if y_frames is not None:
            c = c + y_frames
        return c, None

    def _temporal_context(self, num_video: int, num_images: int, device) -> TemporalContext:
        slice_images = self.joint_strategy == "only_video"
        mask = None
        if num_images and not slice_images:
            total = num_video + num_images
            is_video = torch.arange(total, device=device) < num_video
            mask = (is_video[:, None] & is_video[None, :]) | torch.eye(total, dtype=torch.bool, device=device)
        return TemporalContext(num_video, num_images, slice_images, mask, self.temporal_pos == "rope")


def _block_kinds(variant: int, depth: int, factorised_depth: int | None) -> list[str]:
    if variant == 1:
        return ["spatial", "temporal"] * (depth // 2)
    if variant == 2:
        return ["spatial"] * (depth // 2) + ["temporal"] * (depth // 2)
    n = factorised_depth if factorised_depth is not None else max(1, round(depth * 9 / 11))
    return ["factorised_attention" if variant == 3 else "factorised_heads"] * n


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")


# --------------------------------------------------------------------------- factory
def parse_model_name(name: str) -> tuple[str, int]:
    """``"Latte-XL/2"`` (also ``"LatteIMG-XL/2"``) -> ``("XL", 2)``."""
    try:
        family, rest = name.split("-", 1)
        size, patch = rest.split("/")
        patch = int(patch)
    except ValueError:
        raise ValueError(f"model name {name!r} is not like 'Latte-XL/2'") from None
    if family not in ("Latte", "LatteIMG") or size not in LATTE_SIZES or patch not in PATCH_SIZES:
        raise ValueError(f"unknown model {name!r}: sizes {tuple(LATTE_SIZES)}, patch sizes {PATCH_SIZES}")
    return size, patch


def create_model(name: str = "Latte-XL/2", **options) -> Latte:
    """Build a Latte model by name (``Latte-{S,B,L,XL}/{2,4,8}``) with any constructor option.

    Example: ``create_model("Latte-XL/2", variant=4, num_classes=101, temporal_pos="rope")``.
    """
    size, patch = parse_model_name(name)
    kwargs = dict(LATTE_SIZES[size], patch_size=patch)
    kwargs.update(options)
    return Latte(**kwargs)
