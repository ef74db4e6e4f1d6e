"""Latte against the official code: fixture parity, parameter counts, checkpoint formats."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from latte_bench.errors import UserError
from latte_bench.models import (
    create_model,
    export_official,
    from_official,
    save_official,
)
from latte_bench.models.embeddings import spatial_sincos_table, temporal_sincos_table
from latte_bench.models.flops import PAPER_TABLE1, counted_flops, forward_macs
from latte_bench.training.checkpoint import load_checkpoint_file

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("single_thread")


def read_fixture(fixtures_dir, name):
    with safe_open(str(fixtures_dir / "latte_official" / f"{name}.safetensors"), "pt") as f:
        config = json.loads(f.metadata()["config"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    return config, state, tensors


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("attention", ["sdpa", "math"])
@pytest.mark.parametrize("name", ["latte_uncond", "latte_class", "latte_img_uncond"])
def test_forward_matches_official(fixtures_dir, name, attention):
    config, state, t = read_fixture(fixtures_dir, name)
    model = from_official(config, state, attention=attention)
    kwargs = {"y": t["in.y"]} if "in.y" in t else {}
    with torch.no_grad():
        out = model(t["in.x"], t["in.t"], use_image_num=config["use_image_num"], **kwargs)
    assert out.shape == t["out.forward"].shape
    assert max_diff(out, t["out.forward"]) <= TOL


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_forward_with_cfg_matches_official(fixtures_dir, attention):
    config, state, t = read_fixture(fixtures_dir, "latte_class")
    model = from_official(config, state, attention=attention)
    x = t["in.x"]
    half = x[: len(x) // 2]
    with torch.no_grad():
        out = model.forward_with_cfg(torch.cat([half, half]), t["in.t"], t["in.y_cfg"], config["cfg_scale"])
    assert max_diff(out, t["out.forward_with_cfg"]) <= TOL
    # guidance is copied to both halves on the eps channels only
    assert torch.equal(out[:2, :, :4], out[2:, :, :4])
    assert not torch.equal(out[:2, :, 4:], out[2:, :, 4:])


@pytest.mark.parametrize("name", ["latte_uncond", "latte_img_uncond"])
def test_sincos_tables_match_official(fixtures_dir, name):
    config, state, _ = read_fixture(fixtures_dir, name)
    grid = config["input_size"] // config["patch_size"]
    pos = spatial_sincos_table(config["hidden_size"], grid, grid)[None]
    temp = temporal_sincos_table(config["hidden_size"], config["num_frames"])[None]
    assert max_diff(pos, state["pos_embed"]) <= 1e-6
    assert max_diff(temp, state["temp_embed"]) <= 1e-6
    model = from_official(config, state)
    assert max_diff(model.pos_embed, state["pos_embed"]) <= 1e-6
    assert max_diff(model.temp_embed, state["temp_embed"]) <= 1e-6


def test_official_state_dict_round_trip(fixtures_dir):
    config, state, _ = read_fixture(fixtures_dir, "latte_class")
    model = from_official(config, state)
    exported = export_official(model)["ema"]
    assert set(exported) == set(state)
    for key, value in state.items():
        assert torch.equal(exported[key], value), key


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


PAPER_COUNTS = {"S": 32_480_672, "B": 129_547_040, "L": 456_815_648, "XL": 673_681_568}


@pytest.mark.parametrize("size", list(PAPER_COUNTS))
@pytest.mark.parametrize("variant", [1, 2])
def test_parameter_counts_variants_1_2(size, variant):
    with torch.device("meta"):
        model = create_model(f"Latte-{size}/2", variant=variant, num_frames=16, input_size=32, learn_sigma=True)
    assert trainable(model) == PAPER_COUNTS[size]


@pytest.mark.parametrize("variant", [3, 4])
def test_parameter_counts_variants_3_4(variant):
    # 23 factorised blocks of 22 D^2 + 19 D weights each (docs/model.md); paper: 676.33M / 676.44M
    with torch.device("meta"):
        model = create_model("Latte-XL/2", variant=variant)
    assert len(model.blocks) == 23
    assert trainable(model) == 676_355_360


def test_parameter_count_variant_4_split_heads():
    # one standard MHA per block with its heads split: the Variant-1 parameters and 28 blocks
    with torch.device("meta"):
        model = create_model("Latte-XL/2", variant=4, heads_width="split")
    assert len(model.blocks) == 28
    assert trainable(model) == 673_681_568



# --------------------------------------------------------------------------- FLOPs (docs/model.md)
@pytest.mark.parametrize(
    "variant,conditioning,patch_embed,num_classes",
    [(1, "s_adaln", "uniform", 0), (2, "adaln", "compression", 3), (3, "all_tokens", "uniform", 3), (4, "adaln", "uniform", 3), ("4-split", "all_tokens", "compression", 0)],
)
def test_analytic_macs_equal_flop_counter(variant, conditioning, patch_embed, num_classes):
    options = dict(variant=4, heads_width="split") if variant == "4-split" else dict(variant=variant)
    with torch.device("meta"):
        model = create_model("Latte-S/2", hidden_size=32, depth=4, num_heads=4, input_size=8, num_frames=4,
                             conditioning=conditioning, patch_embed=patch_embed, num_classes=num_classes, attention="math", **options)  # fmt: skip
    assert counted_flops(model, 4, batch=2) == 2 * forward_macs(model, 4, batch=2)


def xl_macs(frames=16, **options):
    with torch.device("meta"):
        model = create_model("Latte-XL/2", num_frames=frames, **options)
    return forward_macs(model, frames)


def test_xl_flops_table():
    """The figures of docs/model.md's FLOPs table (Latte-XL/2, batch 1, 16 frames of 32x32 latents)."""
    v1, v3 = xl_macs(variant=1), xl_macs(variant=3)
    assert v1 == xl_macs(variant=2) == xl_macs(variant=4, heads_width="split") == 1_862_825_361_408
    assert v3 == xl_macs(variant=4) == 2_059_833_950_208
    assert round(2 * v1 / 1e9, 1) == 3725.7 and round(2 * v3 / 1e9, 1) == 4119.7  # forward GFLOPs
    # the paper's Table 1 "FLOPs (G)" of Variants 1-3 are three forward passes in multiply-adds, within 0.5%
    for variant, macs in ((1, v1), (2, v1), (3, v3)):
        assert abs(3 * macs / 1e9 / PAPER_TABLE1[variant][1] - 1) < 0.005
    # Variant 4's 1545.15 is not any 16-frame Variant 4 (a quarter of it); it is Variant 4 counted on 4 frames
    assert 3 * xl_macs(variant=4) / 1e9 / PAPER_TABLE1[4][1] > 3.9
    assert abs(3 * xl_macs(frames=4, variant=4) / 1e9 / PAPER_TABLE1[4][1] - 1) < 0.002

# --------------------------------------------------------------------------- checkpoint files
@pytest.fixture
def class_model(fixtures_dir):
    config, state, _ = read_fixture(fixtures_dir, "latte_class")
    return config, state, from_official(config, state)


def test_checkpoint_formats_load(tmp_path, class_model):
    config, state, model = class_model
    save_official(model, tmp_path / "ema.pt")
    torch.save({"model": state}, tmp_path / "model.pt")
    torch.save(state, tmp_path / "bare.pth")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "bare.safetensors"))
    for name in ("ema.pt", "model.pt", "bare.pth", "bare.safetensors"):
        loaded = load_checkpoint_file(tmp_path / name)
        assert set(loaded) == set(state), name
        assert all(torch.equal(loaded[k], state[k]) for k in state), name


def test_checkpoint_prefers_ema(tmp_path, class_model):
    config, state, _ = class_model
    other = {k: v + 1 for k, v in state.items()}
    torch.save({"model": other, "ema": state}, tmp_path / "both.pt")
    assert torch.equal(load_checkpoint_file(tmp_path / "both.pt")["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])
    assert torch.equal(load_checkpoint_file(tmp_path / "both.pt", prefer="model")["blocks.0.attn.qkv.weight"], other["blocks.0.attn.qkv.weight"])


def test_checkpoint_mismatches_are_named(class_model):
    config, state, _ = class_model
    broken = dict(state)
    del broken["blocks.1.mlp.fc1.weight"]
    broken["blocks.9.attn.qkv.weight"] = state["blocks.0.attn.qkv.weight"]
    broken["y_embedder.embedding_table.weight"] = torch.zeros(1001, config["hidden_size"])
    with pytest.raises(UserError) as err:
        from_official(config, broken)
    message = str(err.value)
    assert "blocks.1.mlp.fc1.weight" in message
    assert "blocks.9.attn.qkv.weight" in message
    assert "y_embedder.embedding_table.weight: shape (1001, 64)" in message


def test_checkpoint_wrong_frame_count_table(class_model):
    config, state, _ = class_model
    with pytest.raises(UserError, match="temp_embed"):
        from_official(dict(config, num_frames=8), state)  # shape differs -> named mismatch


def test_unsafe_or_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint_file(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="weights-only"):
        load_checkpoint_file(tmp_path / "junk.pt")


def test_export_refuses_non_official_layout():
    model = create_model("Latte-S/2", hidden_size=32, num_heads=2, depth=2, input_size=8, num_frames=2, variant=3)
    with pytest.raises(UserError, match="no official equivalent"):
        export_official(model)
