"""Embeddings for Latte: sin-cos position tables, timestep/label embedders, RoPE, patch embedders.

Every formula here matches the official Latte / DiT code (checked against the fixtures in
``tests/fixtures/latte_official``):

* spatial table: MAE 2D sin-cos, first half of the channels encodes the column index,
  second half the row index, each ``[sin, cos]``; tokens in row-major order (r * W + c);
* temporal table: 1D sin-cos ``[sin, cos]`` over frame positions 0..F-1;
* timestep embedding: 256 frequencies, ``[cos, sin]`` (cos first), then a 2-layer MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


# --------------------------------------------------------------------------- sin-cos tables
def sincos_1d(embed_dim: int, positions: torch.Tensor) -> torch.Tensor:
    """``(L,) positions -> (L, embed_dim)`` float64 table ``[sin(p w_k), cos(p w_k)]``.

    ``w_k = 10000 ** (-k / (embed_dim / 2))`` for ``k < embed_dim / 2``.
    """
    if embed_dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {embed_dim}")
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.to(torch.float64).reshape(-1)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def spatial_sincos_table(embed_dim: int, grid_h: int, grid_w: int, base_size: int | None = None,
                         interpolation_scale: float = 1.0) -> torch.Tensor:
    """``(grid_h * grid_w, embed_dim)`` float32 MAE 2D table, row-major token order.

    Channels ``[:D/2]`` encode the column index, ``[D/2:]`` the row index (the official
    ``np.meshgrid(grid_w, grid_h)`` convention). Positions are the indices 0..g-1; with
    ``base_size`` they are ``i / (g / base_size) / interpolation_scale`` (diffusers' ``PatchEmbed``,
    which Latte-T2V uses; the indices again at ``g = base_size``, scale 1).
    """
    if embed_dim % 4:
        raise ValueError(f"2D sin-cos embedding needs a dimension divisible by 4, got {embed_dim}")

    def positions(g):
        index = torch.arange(g)
        return index if base_size is None else index.float() / (g / base_size) / interpolation_scale

    rows, cols = torch.meshgrid(positions(grid_h), positions(grid_w), indexing="ij")
    emb_col = sincos_1d(embed_dim // 2, cols.reshape(-1))
    emb_row = sincos_1d(embed_dim // 2, rows.reshape(-1))
    return torch.cat([emb_col, emb_row], dim=1).float()


def temporal_sincos_table(embed_dim: int, length: int) -> torch.Tensor:
    """``(length, embed_dim)`` float32 1D table over frame positions ``0..length-1``."""
    return sincos_1d(embed_dim, torch.arange(length)).float()


# --------------------------------------------------------------------------- RoPE
def rope_tables(length: int, head_dim: int, base: float = 10000.0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables ``(cos, sin)``, each ``(length, head_dim)`` float32, positions ``0..length-1``.

    Pairs channel ``i`` with ``i + head_dim/2`` ("rotate half" convention); frequency
    ``base ** (-2i / head_dim)``.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x (..., L, head_dim)`` by the tables from :func:`rope_tables` (``(L, head_dim)``)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


# --------------------------------------------------------------------------- condition embedders
class TimestepEmbedder(nn.Module):
    """Diffusion timesteps ``(B,)`` (int or float, 0..999) -> ``(B, hidden_size)`` (DiT)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        """``(B,) -> (B, dim)`` sinusoids ``[cos(t f_k), sin(t f_k)]``, ``f_k = max_period**(-k/half)``."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_freq = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class labels ``(...,)`` in ``0..num_classes`` -> ``(..., hidden_size)`` with label dropout.

    Row ``num_classes`` is the null class used for classifier-free guidance. In training mode
    each label is replaced by the null class with probability ``dropout_prob`` (independently
    per label).
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        use_cfg_embedding = dropout_prob > 0
        self.embedding_table = nn.Embedding(num_classes + int(use_cfg_embedding), hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def token_drop(self, labels: torch.Tensor, force_drop_ids: torch.Tensor | None = None) -> torch.Tensor:
        if force_drop_ids is None:
            drop_ids = torch.rand(labels.shape, device=labels.device) < self.dropout_prob
        else:
            drop_ids = force_drop_ids == 1
        return torch.where(drop_ids, torch.full_like(labels, self.num_classes), labels)

    def forward(self, labels: torch.Tensor, train: bool, force_drop_ids: torch.Tensor | None = None) -> torch.Tensor:
        if (train and self.dropout_prob > 0) or force_drop_ids is not None:
            labels = self.token_drop(labels, force_drop_ids)
        return self.embedding_table(labels)


# --------------------------------------------------------------------------- patch embedders
class FramePatchEmbed(nn.Module):
    """Uniform frame patch embedding: ``(B, F, C, H, W) -> (B, F, N, D)``, one Conv2d per frame.

    ``N = (H/p) * (W/p)`` tokens per frame in row-major order (timm ``PatchEmbed``).
    """

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.temporal_patch_size = 1
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f = x.shape[:2]
        tokens = self.proj(x.flatten(0, 1))  # (B*F, D, H/p, W/p)
        tokens = tokens.flatten(2).transpose(1, 2)  # (B*F, N, D)
        return tokens.reshape(b, f, *tokens.shape[1:])


class TubePatchEmbed(nn.Module):
    """Compression frame patch embedding: tubes of ``nt`` frames, ``(B, F, C, H, W) -> (B, F/nt, N, D)``.

    A Conv3d with kernel = stride = ``(nt, p, p)`` (ViViT "tubelet" embedding).
    """

    def __init__(self, patch_size: int, temporal_patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.temporal_patch_size = temporal_patch_size
        kernel = (temporal_patch_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=kernel, stride=kernel, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(x.transpose(1, 2))  # (B, D, F/nt, H/p, W/p)
        tokens = tokens.flatten(3).permute(0, 2, 3, 1)  # (B, F/nt, N, D)
        return tokens
