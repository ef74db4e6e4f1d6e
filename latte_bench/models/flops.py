"""Analytic multiply-accumulate (MAC) count of one Latte forward pass.

``forward_macs(model, frames)`` counts the multiply-accumulates of the matrix products of one
forward pass on a batch of videos (no joint-training images): every linear layer, the patch
embedding and the final projection (conv / transposed conv), and the two attention products
``q k^T`` and ``A v``. Element-wise work (norms, softmax, GELU, modulation, RoPE) is left out, as
``torch.utils.flop_counter.FlopCounterMode`` leaves it out; that counter reports 2 FLOPs per MAC
and equals ``2 * forward_macs`` (tested). A training step (forward + backward) costs about three
forward passes: the backward computes two products per forward product.

Per block, with D the width, T = F'·N tokens (F' frames after tube compression, N patches per
frame, N + M with "all_tokens" conditioning) and B videos:

* attention module, full width: ``4·D²`` per token (qkv 3D², proj D²); spatial products
  ``2·N²·D`` per frame, temporal ``2·F'²·D`` per patch position (independent of the head count);
* Variant 3 and Variant 4 ``heads_width="full"``: two such modules; ``"split"``: one module whose
  spatial half costs ``N²·D`` per frame and temporal half ``F'²·D`` per position;
* MLP ``2·mlp_ratio·D²`` per token; adaLN ``k·D²`` (k = 6 or 4) per condition vector (one per
  video, or one per frame with class-conditional joint training), none for "all_tokens".
"""

from __future__ import annotations

import torch
from latte_bench.models.latte import FactorisedAttentionBlock, FactorisedHeadsBlock, SplitHeadsBlock


def forward_macs(model, frames: int, batch: int = 1, latent_size: tuple[int, int] | int | None = None) -> int:
    """Multiply-accumulates of ``model(x, t[, y])`` for ``x (batch, frames, C, H, W)``.

    ``latent_size``: (H, W) of the latents, default the model's ``input_size``. ``model`` may
    live on the meta device. Counts match ``FlopCounterMode`` (2 FLOPs per MAC) exactly.
    """

    h, w = model.input_size if latent_size is None else ((latent_size, latent_size) if isinstance(latent_size, int) else latent_size)
    d, p, nt = model.hidden_size, model.patch_size, model.temporal_patch_size
    f = frames // nt
    n = (h // p) * (w // p)
    m = 0 if model.conditioning != "all_tokens" else 1 + int(model.num_classes > 0)  # condition tokens
    tokens = batch * f * (n + m)
    conditions = batch  # one condition vector per video (no images)

    macs = batch * f * n * model.in_channels * nt * p * p * d  # patch embedding
    macs += batch * (model.t_embedder.frequency_embedding_size * d + d * d)  # timestep MLP
    for block in model.blocks:
        hidden = block.mlp.fc1.out_features
        macs += tokens * 2 * d * hidden  # MLP
        if hasattr(block, "adaLN_modulation"):
            macs += conditions * d * block.adaLN_modulation[-1].out_features
        spatial = batch * f * 2 * (n + m) ** 2 * d  # q k^T and A v over each frame, all heads
        temporal = batch * (n + m) * 2 * f**2 * d  # over the frames at each position
        if isinstance(block, (FactorisedAttentionBlock, FactorisedHeadsBlock)):
            macs += 2 * tokens * 4 * d * d + spatial + temporal
        elif isinstance(block, SplitHeadsBlock):
            macs += tokens * 4 * d * d + (spatial + temporal) // 2
        else:
            macs += tokens * 4 * d * d + (spatial if block.kind == "spatial" else temporal)
    final = model.final_layer
    if hasattr(final, "adaLN_modulation"):
        macs += conditions * d * 2 * d
    macs += batch * f * n * d * p * p * nt * model.out_channels  # final projection
    return macs


def counted_flops(model, frames: int, batch: int = 1, backward: bool = False) -> int:
    """FLOPs of one forward (or forward + backward) pass counted by ``FlopCounterMode`` (2 per MAC).

    Build ``model`` under ``torch.device("meta")`` to count without allocating; class-conditional
    models get labels 0.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    h, w = model.input_size
    x = torch.randn(batch, frames, model.in_channels, h, w, device=device)
    t = torch.zeros(batch, dtype=torch.long, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device) if model.num_classes else None
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x, t, y)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


# The paper's Table 1 (Latte, arXiv 2401.03048): variant -> (params in M, "FLOPs (G)"), Latte-XL.
# The paper does not say how it counted; see docs/model.md ("FLOPs of the four XL variants").
PAPER_TABLE1 = {1: (673.68, 5572.69), 2: (673.68, 5572.69), 3: (676.33, 6153.15), 4: (676.44, 1545.15)}
