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

In this file, in order: attention (two interchangeable functions, the module); one block class
per attention arrangement (``SpatialBlock``, ``TemporalBlock``, ``FactorisedAttentionBlock``,
``FactorisedHeadsBlock``, ``SplitHeadsBlock``; each defines ``mix``), whose conditioning path
``LatteBlock.__init__`` picks; ``FinalLayer``; ``Latte``, which resolves every option once in
``__init__`` so that ``forward`` only runs the chosen pieces; the factory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from latte_bench.errors import UserError
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
def sdpa_attention(q, k, v, mask=None) -> torch.Tensor:
    """``q, k, v (S, H, L, hd)`` -> ``(S, H, L, hd)`` with ``F.scaled_dot_product_attention``; ``mask (L, L)`` bool, True = may attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def math_attention(q, k, v, mask=None) -> torch.Tensor:
    """The same function computed as the official code does: ``softmax(q k^T * hd^-0.5) v``."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


ATTENTION_FUNCTIONS = {"sdpa": sdpa_attention, "math": math_attention}


class Attention(nn.Module):
    """Multi-head self-attention over ``(S, L, D)`` sequences: ``qkv`` and ``proj`` linears (official names)."""

    def __init__(self, dim: int, num_heads: int, impl: str = "sdpa"):
        super().__init__()
        if dim % num_heads:
            raise UserError(f"hidden size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.impl = impl
        self.attend = ATTENTION_FUNCTIONS[impl]
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask=None, rope=None) -> torch.Tensor:
        s, length, dim = x.shape
        qkv = self.qkv(x).reshape(s, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (S, H, L, hd)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = self.attend(q, k, v, mask)
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


class Tap(nn.Identity):
    """A named point in the network (no parameters): ``Latte.forward(..., return_features=True)``
    records what passes through it under its module name, e.g. ``blocks.3.temporal_attn``."""


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
            self._rope_cache[key] = rope_tables(length, head_dim, device=device)
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


def unpatchify_frames(x: torch.Tensor, grid: tuple[int, int], p: int, channels: int) -> torch.Tensor:
    """Per-token patch values ``(B, F, N, p*p*C)`` (ordered p_row, p_col, c) -> frames ``(B, F, C, H, W)``."""
    b, f = x.shape[:2]
    gh, gw = grid
    x = torch.einsum("bfhwpqc->bfchpwq", x.reshape(b, f, gh, gw, p, p, channels))
    return x.reshape(b, f, channels, gh * p, gw * p)


# --------------------------------------------------------------------------- blocks
class LatteBlock(nn.Module):
    """One transformer block on ``(B, F, N, D)`` tokens with condition ``c (B, F or 1, 1, D)``.

    Subclasses choose the attention sub-layer (``build_attention`` creates its modules, ``mix``
    runs it); ``conditioning`` chooses, once, how the condition enters (``self.residual``):

    * ``"s_adaln"``  adaLN-Zero: LayerNorm without affine, then ``x*(1+scale)+shift``, and a
      gate on each residual branch; ``adaLN_modulation = SiLU, Linear(D, 6D)`` chunked as
      shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp (official);
    * ``"adaln"``  the same without gates: ``Linear(D, 4D)`` -> shift_msa, scale_msa, shift_mlp, scale_mlp;
    * ``"all_tokens"``  plain pre-norm block (affine LayerNorms, no modulation); the condition
      enters as extra tokens and ``c`` is None.

    Attention outputs pass through :class:`Tap` modules named ``spatial_attn`` / ``temporal_attn``
    (after the output projection, before gate and residual) so that features can be recorded.
    """

    kind = ""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, conditioning: str, attention_impl: str):
        super().__init__()
        affine = conditioning == "all_tokens"
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=affine, eps=1e-6)
        self.build_attention(hidden_size, num_heads, attention_impl)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=affine, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        if conditioning == "s_adaln":
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))
            self.residual = self._adaln_zero
        elif conditioning == "adaln":
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 4 * hidden_size, bias=True))
            self.residual = self._adaln
        else:
            self.residual = self._plain

    def build_attention(self, hidden_size: int, num_heads: int, impl: str) -> None:
        raise NotImplementedError

    def mix(self, h: torch.Tensor, ctx: TemporalContext) -> torch.Tensor:
        """The attention sub-layer: ``(B, F, N, D) -> (B, F, N, D)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, ctx: TemporalContext) -> torch.Tensor:
        return self.residual(x, c, ctx)

    def _adaln_zero(self, x, c, ctx):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_msa * self.mix(modulate(self.norm1(x), shift_msa, scale_msa), ctx)
        return x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))

    def _adaln(self, x, c, ctx):
        shift_msa, scale_msa, shift_mlp, scale_mlp = self.adaLN_modulation(c).chunk(4, dim=-1)
        x = x + self.mix(modulate(self.norm1(x), shift_msa, scale_msa), ctx)
        return x + self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))

    def _plain(self, x, c, ctx):
        x = x + self.mix(self.norm1(x), ctx)
        return x + self.mlp(self.norm2(x))


class SpatialBlock(LatteBlock):
    """Attention over the tokens of each frame (Variants 1 and 2)."""

    kind = "spatial"

    def build_attention(self, hidden_size, num_heads, impl):
        self.attn = Attention(hidden_size, num_heads, impl)
        self.spatial_attn = Tap()

    def mix(self, h, ctx):
        return self.spatial_attn(spatial_attention(self.attn, h))


class TemporalBlock(LatteBlock):
    """Attention over the frames at each spatial position (Variants 1 and 2).

    Under "only video" the image frames skip the whole block, attention and MLP (official
    ``latte_img.py``).
    """

    kind = "temporal"

    def build_attention(self, hidden_size, num_heads, impl):
        self.attn = Attention(hidden_size, num_heads, impl)
        self.temporal_attn = Tap()

    def forward(self, x, c, ctx):
        if ctx.slice_images and x.shape[1] > ctx.num_video:
            n = ctx.num_video
            c_video = c if c is None or c.shape[1] == 1 else c[:, :n]
            return torch.cat([self.residual(x[:, :n], c_video, ctx), x[:, n:]], dim=1)
        return self.residual(x, c, ctx)

    def mix(self, h, ctx):
        return self.temporal_attn(temporal_attention(self.attn, h, ctx))


class FactorisedAttentionBlock(LatteBlock):
    """Variant 3: spatial attention (``attn``), then temporal attention (``attn_temporal``) on its
    output, in one residual branch. Images skipping temporal attention keep the spatial output."""

    kind = "factorised_attention"

    def build_attention(self, hidden_size, num_heads, impl):
        self.attn = Attention(hidden_size, num_heads, impl)
        self.attn_temporal = Attention(hidden_size, num_heads, impl)
        self.spatial_attn = Tap()
        self.temporal_attn = Tap()

    def mix(self, h, ctx):
        s = self.spatial_attn(spatial_attention(self.attn, h))
        t = self.temporal_attn(temporal_attention(self.attn_temporal, s, ctx))
        if t.shape[1] < s.shape[1]:  # images: the spatial output passes through
            t = torch.cat([t, s[:, t.shape[1] :]], dim=1)
        return t


class FactorisedHeadsBlock(LatteBlock):
    """Variant 4, ``heads_width="full"``: two full-width attention modules with half of the heads
    each (``attn`` spatial, ``attn_temporal`` temporal) read the same input; outputs are added."""

    kind = "factorised_heads"

    def build_attention(self, hidden_size, num_heads, impl):
        spatial_heads = max(num_heads // 2, 1)
        self.attn = Attention(hidden_size, spatial_heads, impl)
        self.attn_temporal = Attention(hidden_size, max(num_heads - spatial_heads, 1), impl)
        self.spatial_attn = Tap()
        self.temporal_attn = Tap()

    def mix(self, h, ctx):
        s = self.spatial_attn(spatial_attention(self.attn, h))
        t = self.temporal_attn(pad_frames(temporal_attention(self.attn_temporal, h, ctx), h.shape[1]))
        return s + t


class SplitHeadsBlock(LatteBlock):
    """Variant 4, ``heads_width="split"``: one standard MHA (``attn``, the Variant-1 parameters)
    whose heads ``[:H/2]`` attend spatially and ``[H/2:]`` temporally.

    The concatenated heads go through ``proj``, which equals ``proj``'s weight columns applied to
    each half and added; the tapped halves exclude ``proj.bias``
    (``spatial_attn + temporal_attn + proj.bias`` is the output).
    """

    kind = "factorised_heads"

    def build_attention(self, hidden_size, num_heads, impl):
        self.attn = Attention(hidden_size, num_heads, impl)
        self.spatial_attn = Tap()
        self.temporal_attn = Tap()

    def mix(self, h, ctx):
        attn = self.attn
        b, f, n, d = h.shape
        hs, hd = attn.num_heads // 2, attn.head_dim
        ht = attn.num_heads - hs
        qkv = attn.qkv(h).reshape(b, f, n, 3, attn.num_heads, hd)
        q, k, v = qkv[..., :hs, :].permute(3, 0, 1, 4, 2, 5).reshape(3, b * f, hs, n, hd).unbind(0)
        o_s = attn.attend(q, k, v, None)  # (B*F, hs, N, hd)
        o_s = o_s.reshape(b, f, hs, n, hd).transpose(2, 3).reshape(b, f, n, hs * hd)
        temporal = qkv[..., hs:, :]
        if ctx.slice_images:
            temporal = temporal[:, : ctx.num_video]
        fv = temporal.shape[1]
        q, k, v = temporal.permute(3, 0, 2, 4, 1, 5).reshape(3, b * n, ht, fv, hd).unbind(0)
        rope = ctx.rope_for(fv, hd, h.device)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        o_t = attn.attend(q, k, v, ctx.mask)  # (B*N, ht, F, hd)
        o_t = o_t.reshape(b, n, ht, fv, hd).permute(0, 3, 1, 2, 4).reshape(b, fv, n, ht * hd)
        s = self.spatial_attn(F.linear(o_s, attn.proj.weight[:, : hs * hd]))
        t = self.temporal_attn(pad_frames(F.linear(o_t, attn.proj.weight[:, hs * hd :]), f))
        return s + t + attn.proj.bias


def block_classes(variant: int, depth: int, factorised_depth: int | None, heads_width: str | None) -> list[type[LatteBlock]]:
    """The block of each position: V1 alternates spatial/temporal, V2 all spatial then all temporal,
    V3/V4 ``factorised_depth`` factorised blocks (default ``round(depth*9/11)``; ``depth`` for split heads)."""
    if variant == 1:
        return [SpatialBlock, TemporalBlock] * (depth // 2)
    if variant == 2:
        return [SpatialBlock] * (depth // 2) + [TemporalBlock] * (depth // 2)
    if variant == 3:
        return [FactorisedAttentionBlock] * (factorised_depth or max(1, round(depth * 9 / 11)))
    if heads_width == "split":
        return [SplitHeadsBlock] * (factorised_depth or depth)
    return [FactorisedHeadsBlock] * (factorised_depth or max(1, round(depth * 9 / 11)))


class FinalLayer(nn.Module):
    """LayerNorm (+ shift/scale modulation) then a projection back to patches.

    ``linear``: ``Linear(D, p*p*C_out)`` for frame patches (features ordered (p_row, p_col, c));
    ``deconv``: ``ConvTranspose3d(D, C_out, (nt, p, p), stride (nt, p, p))`` for tubes, which
    restores the ``nt`` compressed frames as well as the patch.
    """

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int, conditioning: str, temporal_patch_size: int = 1):
        super().__init__()
        self.patch_size = patch_size
        self.temporal_patch_size = temporal_patch_size
        self.out_channels = out_channels
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=conditioning == "all_tokens", eps=1e-6)
        if temporal_patch_size == 1:
            self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
            self.unpatchify = self._frames
        else:
            kernel = (temporal_patch_size, patch_size, patch_size)
            self.deconv = nn.ConvTranspose3d(hidden_size, out_channels, kernel_size=kernel, stride=kernel)
            self.unpatchify = self._tubes
        if conditioning == "all_tokens":
            self.normalise = self._plain_norm
        else:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))
            self.normalise = self._modulated_norm

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, F', N, D) -> (B, F, C_out, H, W)`` with ``F = F' * nt``; ``c`` as the blocks'."""
        return self.unpatchify(self.normalise(x, c), grid)

    def _plain_norm(self, x, c):
        return self.norm_final(x)

    def _modulated_norm(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return modulate(self.norm_final(x), shift, scale)

    def _frames(self, x, grid):
        return unpatchify_frames(self.linear(x), grid, self.patch_size, self.out_channels)

    def _tubes(self, x, grid):
        b, f, n, d = x.shape
        x = x.reshape(b, f, *grid, d).permute(0, 4, 1, 2, 3)  # (B, D, F', gh, gw)
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
        temporal_patch_size: frames per tube, "compression" only (default 2).
        conditioning: "s_adaln" (adaLN-Zero), "adaln" (shift/scale only) or "all_tokens".
        temporal_pos: "absolute" (sin-cos table added once before the first temporal mixing)
            or "rope" (rotary embedding of the frame index on q and k of temporal attention).
        joint_strategy: image-video joint training: "only_video" (the K images skip temporal
            attention; official) or "temporal_mask" (they join it through a mask under which video
            tokens see only video tokens and each image token only itself).
        attention: "sdpa" (``F.scaled_dot_product_attention``) or "math" (explicit, as official).
        gradient_checkpointing: recompute each block in the backward pass (training only).
        factorised_depth: variants 3 and 4 only: number of blocks; default ``round(depth * 9 / 11)``,
            which matches the Variant-1 parameter budget (a factorised block holds 22 D^2 weights,
            an interleaved one 18 D^2); 23 blocks for XL (676.36M vs the paper's 676.33M/676.44M).
            With ``heads_width="split"`` the default is ``depth``.
        heads_width: Variant 4 only. "full" (default): each half of the heads is its own full-width
            attention module (``attn`` spatial, ``attn_temporal`` temporal; H/2 heads of size 2D/H);
            "split": one standard MHA (``attn``) whose first H/2 heads attend spatially and the
            others temporally, concatenated before the output projection (Variant-1 parameters).

    Options a configuration does not use (``heads_width`` outside Variant 4, ``factorised_depth``
    outside variants 3/4, ``temporal_patch_size`` with uniform patches) raise :class:`UserError`.
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
        temporal_patch_size: int | None = None,
        conditioning: str = "s_adaln",
        temporal_pos: str = "absolute",
        joint_strategy: str = "only_video",
        attention: str = "sdpa",
        gradient_checkpointing: bool = False,
        factorised_depth: int | None = None,
        heads_width: str | None = None,
    ):
        super().__init__()
        _check_choice("variant", variant, VARIANTS)
        _check_choice("patch_embed", patch_embed, PATCH_EMBEDS)
        _check_choice("conditioning", conditioning, CONDITIONINGS)
        _check_choice("temporal_pos", temporal_pos, TEMPORAL_POS)
        _check_choice("joint_strategy", joint_strategy, JOINT_STRATEGIES)
        _check_choice("attention", attention, ATTENTION_IMPLS)
        if heads_width is not None:
            if variant != 4:
                raise UserError(f"heads_width={heads_width!r} applies to Variant 4 only (this is variant={variant}); drop it")
            _check_choice("heads_width", heads_width, HEADS_WIDTHS)
        if factorised_depth is not None and variant not in (3, 4):
            raise UserError(f"factorised_depth={factorised_depth} applies to variants 3 and 4 only (this is variant={variant}); set depth instead")
        if temporal_patch_size is not None and patch_embed != "compression":
            raise UserError(f"temporal_patch_size={temporal_patch_size} applies to patch_embed='compression' only; drop it or use compression")
        if variant in (1, 2) and depth % 2:
            raise UserError(f"variants 1 and 2 need an even depth (spatial + temporal blocks), got {depth}")
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
        self.heads_width = (heads_width or "full") if variant == 4 else None
        self.gradient_checkpointing = gradient_checkpointing
        self.temporal_patch_size = (temporal_patch_size or 2) if patch_embed == "compression" else 1
        if num_frames % self.temporal_patch_size:
            raise UserError(f"num_frames={num_frames} is not divisible by temporal_patch_size={self.temporal_patch_size}")
        for side in self.input_size:
            if side % patch_size:
                raise UserError(f"latent size {self.input_size} is not divisible by patch size {patch_size}")

        if patch_embed == "uniform":
            self.x_embedder = FramePatchEmbed(patch_size, in_channels, hidden_size)
        else:
            self.x_embedder = TubePatchEmbed(patch_size, self.temporal_patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        if num_classes > 0:
            self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)

        grid_h, grid_w = (s // patch_size for s in self.input_size)
        # frozen tables, persistent so that state_dicts match the official ones
        self.register_buffer("pos_embed", spatial_sincos_table(hidden_size, grid_h, grid_w)[None])
        if temporal_pos == "absolute":
            table = temporal_sincos_table(hidden_size, num_frames // self.temporal_patch_size)
            self.register_buffer("temp_embed", table[None])

        classes = block_classes(variant, depth, factorised_depth, self.heads_width)
        self.blocks = nn.ModuleList([cls(hidden_size, num_heads, mlp_ratio, conditioning, attention) for cls in classes])
        self.block_kinds = [block.kind for block in self.blocks]
        # the absolute temporal table is added right before the first block that mixes frames
        self.temp_embed_at = next(i for i, k in enumerate(self.block_kinds) if k != "spatial") if temporal_pos == "absolute" else None
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels, conditioning, self.temporal_patch_size)

        # choices made once, so that forward() runs without checking option names
        self.condition = self._condition_tokens if conditioning == "all_tokens" else self._condition_vector
        self.images_skip_temporal = joint_strategy == "only_video"
        self.rope = temporal_pos == "rope"
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

        With ``return_features=True`` returns ``(out, features)``: an ordered dict, in execution
        order, of ``(B, F'+K, N, D)`` tensors (F' = frames after temporal compression; patch tokens
        only), per block ``i``:

        * ``blocks.{i}.spatial_attn``  output of the spatial attention (Variant 4: of the
          spatial half of the heads), before gate and residual;
        * ``blocks.{i}.temporal_attn``  output of the temporal attention (Variant 4: of the
          temporal half); zero on image frames that skip it ("only video");
        * ``blocks.{i}.out``  the token features after the block (residual stream).

        Variants 1/2 blocks have one of the two ``*_attn`` entries; variants 3/4 blocks both.
        They are recorded by forward hooks on the blocks and their :class:`Tap` modules.
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
        t_emb, y_emb = self._embed_conditions(t, y, y_image, batch, num_video_tokens, num_images)
        tokens, c = self.condition(tokens, t_emb, y_emb)
        ctx = self._temporal_context(num_video_tokens, num_images, x.device)

        features = OrderedDict() if return_features else None
        hooks = self._record_features(features, n_patches, tokens.shape[1]) if return_features else []
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled() and not return_features
        try:
            for i, block in enumerate(self.blocks):
                if i == self.temp_embed_at:
                    tokens = self._add_temp_embed(tokens, num_video_tokens)
                if checkpointing:
                    tokens = checkpoint(block, tokens, c, ctx, use_reentrant=False)
                else:
                    tokens = block(tokens, c, ctx)
        finally:
            for hook in hooks:
                hook.remove()

        out = self.final_layer(tokens[:, :, :n_patches], c, grid)
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

    def _embed_conditions(self, t, y, y_image, batch, num_video, num_images):
        """``t_emb (B, D)`` and the per-frame label embeddings ``(B, F'+K or 1, D)`` (None without classes)."""
        t = t.reshape(-1)
        if t.numel() == 1 and batch > 1:
            t = t.expand(batch)
        t_emb = self.t_embedder(t)
        if self.num_classes == 0:
            if y is not None:
                raise ValueError("this model is unconditional (num_classes=0): pass y=None")
            return t_emb, None
        if y is None:
            raise ValueError("this model is class-conditional: pass y (B,) labels (the null class is num_classes)")
        y_emb = self.y_embedder(y.reshape(-1), self.training)  # (B, D)
        if not num_images:
            return t_emb, y_emb[:, None]
        if y_image is None:
            y_image = y.reshape(-1, 1).expand(-1, num_images)
        elif isinstance(y_image, (list, tuple)):
            y_image = torch.stack([torch.as_tensor(v).reshape(-1) for v in y_image])
        y_img_emb = self.y_embedder(y_image.reshape(batch, num_images), self.training)  # (B, K, D)
        return t_emb, torch.cat([y_emb[:, None].expand(-1, num_video, -1), y_img_emb], dim=1)

    def _condition_vector(self, tokens, t_emb, y_emb):
        """S-AdaLN / adaLN: the condition ``c = t_emb + y_emb`` as ``(B, F'+K or 1, 1, D)``, tokens unchanged."""
        c = t_emb[:, None] if y_emb is None else t_emb[:, None] + y_emb
        return tokens, c[:, :, None, :]

    def _condition_tokens(self, tokens, t_emb, y_emb):
        """"all tokens": the condition becomes M extra positions of every frame, ``(B, F'+K, N+M, D)``; c is None."""
        b, f, _, d = tokens.shape
        parts = [tokens, t_emb[:, None, None, :].expand(b, f, 1, d)]
        if y_emb is not None:
            parts.append(y_emb[:, :, None, :].expand(b, f, 1, d))
        return torch.cat(parts, dim=2), None

    def _temporal_context(self, num_video: int, num_images: int, device) -> TemporalContext:
        mask = None
        if num_images and not self.images_skip_temporal:
            total = num_video + num_images
            is_video = torch.arange(total, device=device) < num_video
            mask = (is_video[:, None] & is_video[None, :]) | torch.eye(total, dtype=torch.bool, device=device)
        return TemporalContext(num_video, num_images, self.images_skip_temporal, mask, self.rope)

    def _record_features(self, features: dict, n_patches: int, num_frames: int) -> list:
        """Forward hooks writing every :class:`Tap` output and every block output into ``features``
        (condition tokens cropped, frames that skipped temporal attention padded with zeros)."""

        def recorder(name):
            def hook(module, args, output):
                features[name] = pad_frames(output[:, :, :n_patches], num_frames)

            return hook

        hooks = []
        for i, block in enumerate(self.blocks):
            for name, module in block.named_children():
                if isinstance(module, Tap):
                    hooks.append(module.register_forward_hook(recorder(f"blocks.{i}.{name}")))
            hooks.append(block.register_forward_hook(recorder(f"blocks.{i}.out")))
        return hooks


def _check_choice(name, value, choices):
    if value not in choices:
        raise UserError(f"{name}={value!r} is not one of {choices}")


# --------------------------------------------------------------------------- factory
def parse_model_name(name: str) -> tuple[str, int]:
    """``"Latte-XL/2"`` (also ``"LatteIMG-XL/2"``) -> ``("XL", 2)``."""
    try:
        family, rest = name.split("-", 1)
        size, patch = rest.split("/")
        patch = int(patch)
    except ValueError:
        raise UserError(f"model name {name!r} is not like 'Latte-XL/2'") from None
    if family not in ("Latte", "LatteIMG") or size not in LATTE_SIZES or patch not in PATCH_SIZES:
        raise UserError(f"unknown model {name!r}: sizes {tuple(LATTE_SIZES)}, patch sizes {PATCH_SIZES}")
    return size, patch


def create_model(name: str = "Latte-XL/2", **options) -> Latte:
    """Build a Latte model by name (``Latte-{S,B,L,XL}/{2,4,8}``) with any constructor option.

    Example: ``create_model("Latte-XL/2", variant=4, num_classes=101, temporal_pos="rope")``.
    """
    size, patch = parse_model_name(name)
    kwargs = dict(LATTE_SIZES[size], patch_size=patch)
    kwargs.update(options)
    return Latte(**kwargs)
