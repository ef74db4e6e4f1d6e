"""Latte-T2V against diffusers' LatteTransformer3DModel: forward parity, folder round trip, official names."""

from __future__ import annotations

import json

import pytest
import torch

from latte_bench.errors import UserError
from latte_bench.models import LatteT2V
from latte_bench.training.checkpoint import load_checkpoint_file

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
            cross_attention_dim=16, attention_bias=True, sample_size=8, patch_size=2, activation_fn="gelu-approximate",
            num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
            caption_channels=12, video_length=4)


def random_reference(seed=0, **overrides):
    """diffusers' model on a tiny config with every weight random (the default init zeroes nothing, but is small)."""
    from diffusers import LatteTransformer3DModel

    torch.manual_seed(seed)
    ref = LatteTransformer3DModel(**{**TINY, **overrides}).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    return ref


def inputs(batch=2, frames=4, size=8, tokens=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, frames, size, size, generator=g), torch.tensor([10, 600][:batch]),
            torch.randn(batch, tokens, 12, generator=g))


@pytest.mark.parametrize("temporal", [True, False])
@pytest.mark.parametrize("overrides", [{}, {"activation_fn": "geglu", "norm_elementwise_affine": True, "attention_bias": False}])
def test_forward_matches_diffusers(temporal, overrides):
    ref = random_reference(**overrides)
    ours = LatteT2V(**{**TINY, **overrides}).eval()
    ours.load_state_dict(ref.state_dict())
    x, t, captions = inputs()
    with torch.no_grad():
        want = ref(x, t, captions, enable_temporal_attentions=temporal, return_dict=False)[0]
        got = ours(x, t, captions, enable_temporal_attentions=temporal)
    assert got.shape == (2, 8, 4, 8, 8)
    assert (got - want).abs().max().item() <= 1e-5
    assert want.abs().max().item() > 1.0  # the comparison is not between two near-zero outputs


def test_temporal_attention_switch_changes_the_output_and_the_model_setting_applies():
    ref = random_reference()
    ours = LatteT2V(**TINY, enable_temporal_attentions=False).eval()
    ours.load_state_dict(ref.state_dict())
    x, t, captions = inputs()
    with torch.no_grad():
        off = ours(x, t, captions)
        on = ours(x, t, captions, enable_temporal_attentions=True)
        ref_off = ref(x, t, captions, enable_temporal_attentions=False, return_dict=False)[0]
    assert (off - ref_off).abs().max().item() <= 1e-5
    assert (on - off).abs().max().item() > 0.1
    # without temporal attention every frame is an independent image: permuting frames permutes the output
    with torch.no_grad():
        shuffled = ours(x[:, :, [2, 0, 3, 1]], t, captions)
    assert (shuffled - off[:, :, [2, 0, 3, 1]]).abs().max().item() <= 1e-5


def test_other_latent_size_matches_diffusers():
    ref = random_reference()
    ours = LatteT2V(**TINY).eval()
    ours.load_state_dict(ref.state_dict())
    x, t, captions = inputs(size=12)
    with torch.no_grad():
        want = ref(x, t, captions, return_dict=False)[0]
        got = ours(x, t, captions)
    assert (got - want).abs().max().item() <= 1e-5


def test_caption_mask_equals_truncated_caption():
    ours = LatteT2V(**TINY).eval()
    ours.load_state_dict(random_reference().state_dict())
    x, t, captions = inputs(batch=1, tokens=7)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        masked = ours(x, t[:1], captions, encoder_attention_mask=mask)
        truncated = ours(x, t[:1], captions[:, :3])
        unmasked = ours(x, t[:1], captions)
    assert (masked - truncated).abs().max().item() <= 1e-5
    assert (masked - unmasked).abs().max().item() > 1e-3


def test_save_pretrained_round_trips_bit_for_bit_and_diffusers_reads_it(tmp_path):
    from diffusers import LatteTransformer3DModel

    ref = random_reference()
    ours = LatteT2V(**TINY)
    ours.load_state_dict(ref.state_dict())
    folder = ours.save_pretrained(tmp_path / "transformer")
    assert json.loads((folder / "config.json").read_text())["_class_name"] == "LatteTransformer3DModel"
    again = LatteT2V.from_pretrained(tmp_path)  # a pipeline folder: transformer/ inside
    assert again.config == ours.config
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    theirs = LatteTransformer3DModel.from_pretrained(folder).eval()
    x, t, captions = inputs()
    with torch.no_grad():
        assert (theirs(x, t, captions, return_dict=False)[0] - again(x, t, captions)).abs().max().item() <= 1e-5


def test_diffusers_folder_loads(tmp_path):
    ref = random_reference()
    ref.save_pretrained(tmp_path / "t")
    ours = LatteT2V.from_pretrained(tmp_path / "t")
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_official_pt_state_dict_loads(tmp_path):
    overrides = {"norm_elementwise_affine": True}  # the official temporal MLP norm is named norm3
    ref = random_reference(**overrides)
    state = {k.replace(".norm2.", ".norm3.") if k.startswith("temporal_") else k: v for k, v in ref.state_dict().items()}
    assert any(".norm3." in k for k in state)
    torch.save({"ema": state}, tmp_path / "t2v.pt")
    ours = LatteT2V(**{**TINY, **overrides})
    ours.load_weights(load_checkpoint_file(tmp_path / "t2v.pt"))
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_weights_that_do_not_fit_are_refused_in_one_line(tmp_path):
    random_reference().save_pretrained(tmp_path / "t")
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    (tmp_path / "t" / "config.json").write_text(json.dumps({**config, "num_layers": 3}))
    with pytest.raises(UserError, match="missing keys .*transformer_blocks.2"):
        LatteT2V.from_pretrained(tmp_path / "t")
    with pytest.raises(UserError, match="no diffusers transformer folder"):
        LatteT2V.from_pretrained(tmp_path)
    with pytest.raises(UserError, match="norm_type"):
        LatteT2V.from_config({**TINY, "norm_type": "ada_norm_zero"})


def test_latte1_default_configuration_parameter_count():
    with torch.device("meta"):
        model = LatteT2V()  # Latte-1's transformer/config.json values are the defaults (docs/t2v.md)
    assert sum(p.numel() for p in model.parameters()) == 1_057_246_880
    assert (model.hidden_size, len(model.transformer_blocks), model.out_channels) == (1152, 28, 8)


def test_sharded_folder_loads(tmp_path):
    ref = random_reference()
    state = ref.state_dict()
    keys = sorted(state)
    half = len(keys) // 2
    from safetensors.torch import save_file

    folder = tmp_path / "transformer"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "LatteTransformer3DModel", **TINY}))
    weight_map = {}
    for i, part in enumerate((keys[:half], keys[half:])):
        name = f"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors"
        save_file({k: state[k].contiguous() for k in part}, str(folder / name))
        weight_map.update({k: name for k in part})
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    ours = LatteT2V.from_pretrained(tmp_path)
    for key, value in state.items():
        assert torch.equal(ours.state_dict()[key], value), key
