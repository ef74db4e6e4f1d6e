"""ImageNet (DiT) initialisation of Latte, on a state dict with DiT's key names and shapes."""

from __future__ import annotations

import pytest
import torch

from latte_bench.errors import UserError
from latte_bench.models import init_from_dit
from latte_bench.models.latte import Latte

D, HEADS, DIT_DEPTH, P, C = 32, 4, 6, 2, 4


pytestmark = pytest.mark.usefixtures("single_thread")


def dit_state_dict(depth=DIT_DEPTH, hidden=D, num_classes=1000, seed=0) -> dict[str, torch.Tensor]:
    """Random weights under DiT ``models.py`` names and shapes (learn_sigma: 8 output channels)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.05

    grid = 4
    sd = {
        "pos_embed": r(1, grid * grid, hidden),
        "x_embedder.proj.weight": r(hidden, C, P, P),
        "x_embedder.proj.bias": r(hidden),
        "t_embedder.mlp.0.weight": r(hidden, 256),
        "t_embedder.mlp.0.bias": r(hidden),
        "t_embedder.mlp.2.weight": r(hidden, hidden),
        "t_embedder.mlp.2.bias": r(hidden),
        "y_embedder.embedding_table.weight": r(num_classes + 1, hidden),
        "final_layer.linear.weight": r(P * P * 2 * C, hidden),
        "final_layer.linear.bias": r(P * P * 2 * C),
        "final_layer.adaLN_modulation.1.weight": r(2 * hidden, hidden),
        "final_layer.adaLN_modulation.1.bias": r(2 * hidden),
    }
    for i in range(depth):
        sd.update({
            f"blocks.{i}.attn.qkv.weight": r(3 * hidden, hidden),
            f"blocks.{i}.attn.qkv.bias": r(3 * hidden),
            f"blocks.{i}.attn.proj.weight": r(hidden, hidden),
            f"blocks.{i}.attn.proj.bias": r(hidden),
            f"blocks.{i}.mlp.fc1.weight": r(4 * hidden, hidden),
            f"blocks.{i}.mlp.fc1.bias": r(4 * hidden),
            f"blocks.{i}.mlp.fc2.weight": r(hidden, 4 * hidden),
            f"blocks.{i}.mlp.fc2.bias": r(hidden),
            f"blocks.{i}.adaLN_modulation.1.weight": r(6 * hidden, hidden),
            f"blocks.{i}.adaLN_modulation.1.bias": r(6 * hidden),
        })  # fmt: skip
    return sd


def latte(**options) -> Latte:
    torch.manual_seed(0)
    kw = dict(input_size=8, patch_size=P, in_channels=C, hidden_size=D, depth=4, num_heads=HEADS, num_frames=4)
    return Latte(**{**kw, **options})


def test_by_name_mapping_is_the_official_one():
    dit = dit_state_dict()
    model = latte(num_classes=101)
    pos_before = model.pos_embed.clone()
    report = init_from_dit(model, {"model": dit, "ema": dit})
    sd = model.state_dict()
    for i in range(4):  # Latte block i (spatial, temporal, spatial, temporal) <- DiT block i
        for part in ("attn.qkv.weight", "attn.proj.bias", "mlp.fc1.weight", "mlp.fc2.bias", "adaLN_modulation.1.weight"):
            assert torch.equal(sd[f"blocks.{i}.{part}"], dit[f"blocks.{i}.{part}"]), (i, part)
    for key in ("x_embedder.proj.weight", "t_embedder.mlp.2.weight", "final_layer.linear.weight", "final_layer.adaLN_modulation.1.bias"):
        assert torch.equal(sd[key], dit[key])
    # the 1000-class table is dropped; the new 101-class (+ null) table starts at zero
    assert sd["y_embedder.embedding_table.weight"].shape == (102, D)
    assert not sd["y_embedder.embedding_table.weight"].any()
    assert report["zeroed"] == ["y_embedder.embedding_table.weight"]
    assert report["kept"] == []
    assert torch.equal(model.pos_embed, pos_before)  # fixed sin-cos table, not DiT's copy


def test_spatial_mapping_keeps_temporal_blocks_identity():
    dit = dit_state_dict()
    model = latte()
    report = init_from_dit(model, dit, mapping="spatial")
    sd = model.state_dict()
    assert torch.equal(sd["blocks.0.attn.qkv.weight"], dit["blocks.0.attn.qkv.weight"])
    assert torch.equal(sd["blocks.2.attn.qkv.weight"], dit["blocks.1.attn.qkv.weight"])
    for i in (1, 3):  # temporal blocks keep adaLN-Zero init: identity at the start
        assert not sd[f"blocks.{i}.adaLN_modulation.1.weight"].any()
        assert f"blocks.{i}.attn.qkv.weight" in report["kept"]
    # Variant 2 / 3: the spatial-attention blocks are fed in order as well
    v2 = latte(variant=2)
    init_from_dit(v2, dit, mapping="spatial")
    assert torch.equal(v2.state_dict()["blocks.1.mlp.fc1.weight"], dit["blocks.1.mlp.fc1.weight"])
    assert not v2.state_dict()["blocks.2.adaLN_modulation.1.weight"].any()


def test_spatial_mapping_starts_as_a_per_frame_image_model():
    """With temporal blocks at identity, each frame is denoised on its own, as by the image model.

    The absolute temporal table adds a per-frame offset, so use RoPE (no additive table); a
    single-frame model (whose temporal attention is trivially per frame) is the reference.
    """
    dit = dit_state_dict()
    video_model = latte(temporal_pos="rope")
    init_from_dit(video_model, dit, mapping="spatial")
    frame_model = latte(temporal_pos="rope", num_frames=1)
    init_from_dit(frame_model, dit, mapping="spatial")
    x = torch.randn(2, 4, C, 8, 8)
    t = torch.tensor([10, 500])
    with torch.no_grad():
        video = video_model(x, t)
        frames = torch.cat([frame_model(x[:, f : f + 1], t) for f in range(4)], dim=1)
    assert video.abs().max() > 0
    torch.testing.assert_close(video, frames)
    # by-name mapping puts trained DiT blocks on the temporal positions: frames interact
    by_name = latte(temporal_pos="rope")
    init_from_dit(by_name, dit)
    with torch.no_grad():
        assert not torch.allclose(by_name(x, t), torch.cat([by_name(x[:, f : f + 1], t) for f in range(4)], dim=1))


@pytest.mark.parametrize("variant", [3, 4])
def test_factorised_variants_take_dit_attention_twice(variant):
    dit = dit_state_dict()
    model = latte(variant=variant)
    init_from_dit(model, dit)
    sd = model.state_dict()
    for i in range(len(model.blocks)):
        assert torch.equal(sd[f"blocks.{i}.attn.qkv.weight"], dit[f"blocks.{i}.attn.qkv.weight"])
        assert torch.equal(sd[f"blocks.{i}.attn_temporal.qkv.weight"], dit[f"blocks.{i}.attn.qkv.weight"])


def test_compression_inflates_over_time():
    dit = dit_state_dict()
    model = latte(patch_embed="compression", temporal_patch_size=2)
    init_from_dit(model, dit)
    frame = torch.randn(1, C, 8, 8)
    static = frame[:, :, None].repeat(1, 1, 2, 1, 1)  # (1, C, 2, 8, 8): a still tube
    conv2d = torch.nn.functional.conv2d(frame, dit["x_embedder.proj.weight"], dit["x_embedder.proj.bias"], stride=P)
    conv3d = model.x_embedder.proj(static)[:, :, 0]
    torch.testing.assert_close(conv3d, conv2d)
    # the output deconv holds the DiT projection for every frame of the tube
    w = model.final_layer.deconv.weight  # (D, 2C, nt, p, p)
    lin = dit["final_layer.linear.weight"].reshape(P, P, 2 * C, D)
    torch.testing.assert_close(w[:, :, 1], lin.permute(3, 2, 0, 1))


def test_adaln_takes_shift_and_scale_only():
    dit = dit_state_dict()
    model = latte(conditioning="adaln")
    init_from_dit(model, dit)
    w = dit["blocks.0.adaLN_modulation.1.weight"].chunk(6)
    expected = torch.cat([w[0], w[1], w[3], w[4]])
    assert torch.equal(model.blocks[0].adaLN_modulation[1].weight, expected)


def test_wrong_dit_checkpoint_is_named():
    with pytest.raises(UserError, match="hidden size 64"):
        init_from_dit(latte(), dit_state_dict(hidden=64))
    with pytest.raises(UserError, match="key names"):
        init_from_dit(latte(), {"foo": torch.zeros(1)})
    with pytest.raises(UserError, match="learn_sigma"):
        init_from_dit(latte(learn_sigma=False), dit_state_dict())
