"""Latte design options: every combination builds, runs forward/backward and learns; semantics of each option."""

from __future__ import annotations

import ast
import inspect
import itertools
import math
import re

import pytest
import torch

from latte_bench.errors import UserError
from latte_bench.models import create_model
from latte_bench.models.embeddings import apply_rope, rope_tables
from latte_bench.models.latte import LATTE_SIZES, Latte

pytestmark = pytest.mark.usefixtures("single_thread")


TINY = dict(hidden_size=32, depth=4, num_heads=4, input_size=8, num_frames=4, in_channels=4)


def tiny(**options) -> Latte:
    torch.manual_seed(0)
    return Latte(patch_size=2, **{**TINY, **options})


def perturb_zero_init(model: Latte, std: float = 0.05) -> None:
    """Give the adaLN-Zero / final-layer weights (all zero at init) random values so gradients flow everywhere."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)


def inputs(batch=2, frames=4, images=0, num_classes=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames + images, 4, 8, 8, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    y = torch.randint(0, num_classes, (batch,), generator=g) if num_classes else None
    y_image = torch.randint(0, num_classes, (batch, images), generator=g) if num_classes and images else None
    return x, t, y, y_image


COMBOS = [
    combo
    for combo in itertools.product(
        (1, 2, 3, 4, "4-split"), ("uniform", "compression"), ("s_adaln", "adaln", "all_tokens"), ("absolute", "rope"), ("only_video", "temporal_mask"), (0, 5)
    )
    # joint training is undefined for tubes: one joint strategy suffices there
    if not (combo[1] == "compression" and combo[4] == "temporal_mask")
]


def combo_model(variant, patch_embed, conditioning, temporal_pos, joint, num_classes) -> Latte:
    heads = {"heads_width": "split"} if variant == "4-split" else {}
    tubes = {"temporal_patch_size": 2} if patch_embed == "compression" else {}
    return tiny(
        variant=4 if variant == "4-split" else variant, patch_embed=patch_embed, conditioning=conditioning,
        temporal_pos=temporal_pos, joint_strategy=joint, num_classes=num_classes, class_dropout_prob=0.0, **heads, **tubes,
    )  # fmt: skip


@pytest.mark.parametrize("variant,patch_embed,conditioning,temporal_pos,joint,num_classes", COMBOS)
def test_every_combination_reaches_every_parameter(variant, patch_embed, conditioning, temporal_pos, joint, num_classes):
    """Every option combination builds, runs forward (with images where the patch embedding allows
    them) with the right output shape, and its loss sends a gradient to every parameter."""
    model = combo_model(variant, patch_embed, conditioning, temporal_pos, joint, num_classes)
    perturb_zero_init(model)
    images = 0 if patch_embed == "compression" else 2
    x, t, y, y_image = inputs(images=images, num_classes=num_classes)
    out = model(x, t, y, use_image_num=images, y_image=y_image)
    assert out.shape == (2, 4 + images, 8, 8, 8)
    assert torch.isfinite(out).all()
    ((out - x.repeat(1, 1, 2, 1, 1)) ** 2).mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


# the default, then one option changed at a time: every option value is trained with every variant
LEARN_CASES = [
    (variant, *options)
    for variant in (1, 2, 3, 4, "4-split")
    for options in (
        ("uniform", "s_adaln", "absolute", "only_video", 5),
        ("uniform", "adaln", "absolute", "only_video", 5),
        ("uniform", "all_tokens", "absolute", "only_video", 5),
        ("uniform", "s_adaln", "rope", "only_video", 5),
        ("uniform", "s_adaln", "absolute", "temporal_mask", 5),
        ("compression", "s_adaln", "absolute", "only_video", 5),
        ("uniform", "s_adaln", "absolute", "only_video", 0),
    )
]


@pytest.mark.parametrize("variant,patch_embed,conditioning,temporal_pos,joint,num_classes", LEARN_CASES)
def test_each_option_learns_a_fixed_batch(variant, patch_embed, conditioning, temporal_pos, joint, num_classes):
    """Training works under every option value and variant: from the DiT initialisation (zero
    output), eight AdamW steps on one fixed batch with a fixed random target (and images where the
    patch embedding allows them) lower the loss by more than 10%, every step finite (measured:
    the slowest case, Variant 4 with S-AdaLN, falls 14%; tubes about 40%)."""
    model = combo_model(variant, patch_embed, conditioning, temporal_pos, joint, num_classes)
    images = 0 if patch_embed == "compression" else 2
    x, t, y, y_image = inputs(images=images, num_classes=num_classes)
    target = torch.randn(x.shape[0], x.shape[1], 8, 8, 8, generator=torch.Generator().manual_seed(5))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(9):
        opt.zero_grad()
        loss = ((model(x, t, y, use_image_num=images, y_image=y_image) - target) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        opt.step()
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.9 * losses[0], losses


def test_split_heads_is_one_mha_with_spatial_and_temporal_heads():
    model = tiny(variant=4, heads_width="split")
    perturb_zero_init(model)
    assert len(model.blocks) == 4 and not hasattr(model.blocks[0], "attn_temporal")
    block = model.blocks[0]
    h = torch.randn(2, 4, 16, 32)
    taps = {}
    block.spatial_attn.register_forward_hook(lambda m, i, o: taps.__setitem__("s", o))
    block.temporal_attn.register_forward_hook(lambda m, i, o: taps.__setitem__("t", o))
    with torch.no_grad():
        out = block.mix(h, model._temporal_context(4, 0, h.device))
        q, k, v = block.attn.qkv(h).reshape(2, 4, 16, 3, 4, 8).unbind(3)  # (B, F, N, H, hd) each
        heads = []
        for i in range(4):
            qh, kh, vh = q[..., i, :], k[..., i, :], v[..., i, :]
            if i >= 2:  # temporal heads: sequences over frames
                qh, kh, vh = (z.transpose(1, 2) for z in (qh, kh, vh))
            o = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(8), dim=-1) @ vh
            heads.append(o if i < 2 else o.transpose(1, 2))
        expected = block.attn.proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(taps["s"] + taps["t"] + block.attn.proj.bias, expected)


def test_gradients_reach_zero_init_weights_after_one_step():
    model = tiny(num_classes=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, t, y, _ = inputs(num_classes=3)
    # step 1 moves the final layer, step 2 the gates, step 3 sees gradients everywhere
    for step in range(3):
        opt.zero_grad()
        ((model(x, t, y) - 1.0) ** 2).mean().backward()
        if step == 0:
            assert not model.blocks[0].attn.qkv.weight.grad.any()  # adaLN-Zero: blocks start as identity
        opt.step()
    zero_grad = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert zero_grad == []


# --------------------------------------------------------------------------- init
def test_dit_initialisation():
    model = create_model("Latte-S/2", input_size=8, num_frames=4, num_classes=10)
    for i, block in enumerate(model.blocks):
        assert not block.adaLN_modulation[-1].weight.any() and not block.adaLN_modulation[-1].bias.any()
        w = block.attn.qkv.weight
        bound = math.sqrt(6 / sum(w.shape))
        assert w.abs().max() <= bound and w.std() > 0.9 * bound / math.sqrt(3)
        assert not block.attn.qkv.bias.any() and not block.mlp.fc2.bias.any()
    assert not model.final_layer.linear.weight.any() and not model.final_layer.adaLN_modulation[-1].weight.any()
    for w in (model.y_embedder.embedding_table.weight, model.t_embedder.mlp[0].weight, model.t_embedder.mlp[2].weight):
        assert abs(w.std().item() - 0.02) < 0.002
    patch = model.x_embedder.proj.weight.view(384, -1)
    assert patch.abs().max() <= math.sqrt(6 / sum(patch.shape))
    assert not model.x_embedder.proj.bias.any()
    assert not any(p.requires_grad for n, p in model.named_buffers())
    x, t, y, _ = inputs(num_classes=10)
    assert not model(x, t, y).any()  # zero output at init


# --------------------------------------------------------------------------- structure
def test_block_layouts():
    assert tiny(variant=1).block_kinds == ["spatial", "temporal"] * 2
    assert tiny(variant=2).block_kinds == ["spatial"] * 2 + ["temporal"] * 2
    assert tiny(variant=3).block_kinds == ["factorised_attention"] * 3
    assert tiny(variant=4, factorised_depth=2).block_kinds == ["factorised_heads"] * 2
    assert tiny(variant=1).temp_embed_at == 1 and tiny(variant=2).temp_embed_at == 2 and tiny(variant=3).temp_embed_at == 0
    v4 = tiny(variant=4).blocks[0]
    assert v4.attn.num_heads == 2 and v4.attn_temporal.num_heads == 2
    assert tiny(conditioning="adaln").blocks[0].adaLN_modulation[-1].out_features == 4 * 32
    assert not hasattr(tiny(conditioning="all_tokens").blocks[0], "adaLN_modulation")
    assert not hasattr(tiny(temporal_pos="rope"), "temp_embed")


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(variant=1, heads_width="split"), "heads_width='split' applies to Variant 4 only"),
        (dict(variant=3, heads_width="full"), "heads_width='full' applies to Variant 4 only"),
        (dict(variant=4, heads_width="half"), "heads_width='half' is not one of"),
        (dict(variant=2, factorised_depth=3), "factorised_depth=3 applies to variants 3 and 4 only"),
        (dict(temporal_patch_size=2), "temporal_patch_size=2 applies to patch_embed='compression' only"),
        (dict(variant=1, depth=3), "even depth"),
        (dict(conditioning="film"), "conditioning='film' is not one of"),
    ],
)
def test_options_a_configuration_does_not_use_are_refused(options, message):
    with pytest.raises(UserError, match=re.escape(message)):
        tiny(**options)


def test_forward_path_checks_no_option_names():
    """Options are resolved in ``__init__``: no function that runs in ``forward`` compares with a string."""
    import latte_bench.models.latte as latte

    build_time = {"__init__", "build_attention", "block_classes", "_check_choice", "parse_model_name", "create_model"}
    tree = ast.parse(inspect.getsource(latte))
    offenders = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name not in build_time:
            for node in ast.walk(fn):
                if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and isinstance(c.value, str) for c in [node.left, *node.comparators]):
                    offenders.append(f"{fn.name}:{node.lineno}")
    assert offenders == []
    # and the choices made in __init__ are the ones asked for
    assert tiny(conditioning="adaln").blocks[0].residual.__func__ is latte.LatteBlock._adaln
    assert tiny(conditioning="all_tokens").condition.__func__ is latte.Latte._condition_tokens
    assert tiny(attention="math").blocks[1].attn.attend is latte.math_attention
    assert [type(b).__name__ for b in tiny(variant=4, heads_width="split").blocks] == ["SplitHeadsBlock"] * 4


@pytest.mark.parametrize("size,patch", [("S", 2), ("B", 4), ("L", 8), ("XL", 2)])
def test_create_model_names(size, patch):
    with torch.device("meta"):
        model = create_model(f"Latte-{size}/{patch}", num_classes=101)
    assert model.patch_size == patch and model.hidden_size == LATTE_SIZES[size]["hidden_size"]
    assert len(model.blocks) == LATTE_SIZES[size]["depth"]
    assert model.y_embedder.embedding_table.num_embeddings == 102
    with pytest.raises(UserError, match="unknown model"):
        create_model("Latte-XXL/2")


def test_learn_sigma_and_sizes():
    model = tiny(learn_sigma=False, input_size=(8, 12))
    perturb_zero_init(model)
    x = torch.randn(1, 4, 4, 8, 12)
    assert model(x, torch.tensor([3])).shape == (1, 4, 4, 8, 12)


def test_compression_restores_frames_and_mixes_within_tube():
    model = tiny(patch_embed="compression", temporal_patch_size=2, num_frames=8)
    perturb_zero_init(model)
    assert model.temp_embed.shape == (1, 4, 32)
    x, t, _, _ = inputs(frames=8)
    out = model(x, t)
    assert out.shape == (2, 8, 8, 8, 8)
    with pytest.raises(ValueError):
        model(x[:, :7], t)


def test_any_frame_count_uses_matching_tables():
    built4 = tiny(num_frames=4)
    perturb_zero_init(built4)
    built6 = tiny(num_frames=6)
    weights = {k: v for k, v in built4.state_dict().items() if k != "temp_embed"}
    built6.load_state_dict(weights, strict=False)
    x, t, _, _ = inputs(frames=6)
    torch.testing.assert_close(built4(x, t), built6(x, t))


# --------------------------------------------------------------------------- conditioning
def test_label_dropout_and_null_class():
    model = tiny(num_classes=3, class_dropout_prob=1.0)
    perturb_zero_init(model)
    x, t, y, _ = inputs(num_classes=3)
    model.train()
    dropped = model(x, t, y)
    model.eval()
    null = model(x, t, torch.full_like(y, 3))
    torch.testing.assert_close(dropped, null)
    assert not torch.allclose(model(x, t, y), null)


def test_condition_errors():
    x, t, y, _ = inputs(num_classes=3)
    with pytest.raises(ValueError, match="class-conditional"):
        tiny(num_classes=3)(x, t)
    with pytest.raises(ValueError, match="unconditional"):
        tiny()(x, t, y)


@pytest.mark.parametrize("conditioning", ["s_adaln", "adaln", "all_tokens"])
def test_conditioning_uses_timestep_and_class(conditioning):
    model = tiny(num_classes=3, conditioning=conditioning)
    perturb_zero_init(model)
    model.eval()
    x, t, y, _ = inputs(num_classes=3)
    base = model(x, t, y)
    assert not torch.allclose(base, model(x, t + 1, y))
    assert not torch.allclose(base, model(x, t, (y + 1) % 3))


def test_forward_with_cfg_guides_eps_only():
    model = tiny(num_classes=3)
    perturb_zero_init(model)
    model.eval()
    x, t, _, _ = inputs(batch=2, num_classes=3)
    x = torch.cat([x[:1], x[:1]])
    y = torch.tensor([1, 3])
    with torch.no_grad():
        out = model.forward_with_cfg(x, t[:1].repeat(2), y, cfg_scale=4.0)
        both = model(x, t[:1].repeat(2), y)
    expected = both[1, :, :4] + 4.0 * (both[0, :, :4] - both[1, :, :4])
    torch.testing.assert_close(out[0, :, :4], expected)
    torch.testing.assert_close(out[1, :, :4], expected)
    torch.testing.assert_close(out[:, :, 4:], both[:, :, 4:])


# --------------------------------------------------------------------------- temporal position
def test_rope_depends_only_on_relative_position():
    cos, sin = rope_tables(8, 16)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)
    qs = apply_rope(q.expand(8, 16), cos, sin)
    ks = apply_rope(k.expand(8, 16), cos, sin)
    torch.testing.assert_close(qs[2] @ ks[5], qs[0] @ ks[3])
    torch.testing.assert_close(qs[4] @ ks[1], qs[6] @ ks[3])
    assert not torch.allclose(qs[2] @ ks[5], qs[2] @ ks[3])
    torch.testing.assert_close(qs.norm(dim=1), q.norm().expand(8))


@pytest.mark.parametrize("temporal_pos", ["absolute", "rope"])
def test_temporal_position_breaks_frame_permutation_symmetry(temporal_pos):
    # without a temporal position the model is equivariant to permuting frames; with one it is not
    model = tiny(temporal_pos=temporal_pos)
    perturb_zero_init(model)
    x, t, _, _ = inputs()
    perm = torch.tensor([1, 0, 2, 3])
    assert not torch.allclose(model(x, t)[:, perm], model(x[:, perm], t), atol=1e-5)


# --------------------------------------------------------------------------- joint training
@pytest.mark.parametrize("variant", [1, 2, 3, 4])
@pytest.mark.parametrize("joint", ["only_video", "temporal_mask"])
def test_images_are_independent_of_each_other_and_of_the_video(variant, joint):
    model = tiny(variant=variant, joint_strategy=joint, num_classes=3)
    perturb_zero_init(model)
    model.eval()
    x, t, y, y_image = inputs(images=3, num_classes=3)
    out = model(x, t, y, use_image_num=3, y_image=y_image)
    x2 = x.clone()
    x2[:, 5] += 1.0  # change the second image only
    out2 = model(x2, t, y, use_image_num=3, y_image=y_image)
    torch.testing.assert_close(out2[:, :5], out[:, :5])  # video and first image unchanged
    assert not torch.allclose(out2[:, 5], out[:, 5])
    x3 = x.clone()
    x3[:, 0] += 1.0  # change a video frame: images unchanged, other video frames change
    out3 = model(x3, t, y, use_image_num=3, y_image=y_image)
    torch.testing.assert_close(out3[:, 4:], out[:, 4:])
    assert not torch.allclose(out3[:, 1], out[:, 1])


@pytest.mark.parametrize("variant", [1, 3, 4])
def test_joint_strategies_agree_on_video_and_differ_on_images(variant):
    only_video = tiny(variant=variant, joint_strategy="only_video")
    perturb_zero_init(only_video)
    masked = tiny(variant=variant, joint_strategy="temporal_mask")
    masked.load_state_dict(only_video.state_dict())
    x, t, _, _ = inputs(images=2)
    a, b = only_video(x, t, use_image_num=2), masked(x, t, use_image_num=2)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    torch.testing.assert_close(a[:, :4], only_video(x[:, :4], t))  # images do not affect the video


def test_image_labels_condition_images():
    model = tiny(num_classes=3)
    perturb_zero_init(model)
    model.eval()
    x, t, y, _ = inputs(images=2, num_classes=3)
    a = model(x, t, y, use_image_num=2, y_image=torch.tensor([[0, 0], [0, 0]]))
    b = model(x, t, y, use_image_num=2, y_image=torch.tensor([[0, 1], [0, 1]]))
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5], b[:, 5])


# --------------------------------------------------------------------------- features and checkpointing
@pytest.mark.parametrize("variant", [1, 2, 3, 4])
def test_features_do_not_change_output(variant):
    model = tiny(variant=variant, num_classes=3)
    perturb_zero_init(model)
    model.eval()
    x, t, y, _ = inputs(images=2, num_classes=3)
    plain = model(x, t, y, use_image_num=2)
    out, features = model(x, t, y, use_image_num=2, return_features=True)
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    assert not any(m._forward_hooks for m in model.modules())  # the recording hooks are removed again
    expected = []
    for i, kind in enumerate(model.block_kinds):
        if kind in ("spatial", "factorised_attention", "factorised_heads"):
            expected.append(f"blocks.{i}.spatial_attn")
        if kind != "spatial":
            expected.append(f"blocks.{i}.temporal_attn")
        expected.append(f"blocks.{i}.out")
    assert list(features) == expected
    assert all(v.shape == (2, 6, 16, 32) for v in features.values())
    # images skip temporal attention ("only video"): zero temporal features on image frames
    first_temporal = next(k for k in features if k.endswith("temporal_attn"))
    assert not features[first_temporal][:, 4:].any() and features[first_temporal][:, :4].any()


def test_factorised_heads_features_are_the_two_halves():
    model = tiny(variant=4, conditioning="all_tokens")
    perturb_zero_init(model)
    captured = {}
    block = model.blocks[1]
    block.attn.register_forward_hook(lambda m, i, o: captured.__setitem__("s", o))
    block.attn_temporal.register_forward_hook(lambda m, i, o: captured.__setitem__("t", o))
    x, t, _, _ = inputs()
    _, features = model(x, t, return_features=True)
    # spatial half: (B*F, N+1, D) sequences incl. the timestep token; temporal half: (B*(N+1), F, D)
    s = captured["s"].reshape(2, 4, 17, 32)[:, :, :16]
    tt = captured["t"].reshape(2, 17, 4, 32).transpose(1, 2)[:, :, :16]
    torch.testing.assert_close(features["blocks.1.spatial_attn"], s)
    torch.testing.assert_close(features["blocks.1.temporal_attn"], tt)
    # the block adds both halves to the residual stream (no gate under "all_tokens")
    before, after = features["blocks.0.out"], features["blocks.1.out"]
    mlp_in = after - before - s - tt  # what the MLP branch added
    assert mlp_in.abs().max() > 0


@pytest.mark.parametrize("variant", [1, 4])
def test_gradient_checkpointing_matches(variant):
    model = tiny(variant=variant, num_classes=3, class_dropout_prob=0.0)
    perturb_zero_init(model)
    x, t, y, _ = inputs(images=2, num_classes=3)
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.set_gradient_checkpointing(flag)
        out = model(x, t, y, use_image_num=2)
        out.square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert Latte(**{**TINY, "gradient_checkpointing": True}).gradient_checkpointing


def test_deepcopy_keeps_the_chosen_paths_on_the_copy():
    """The EMA is a deepcopy: its chosen methods must run the copy's weights, not the original's."""
    import copy

    model = tiny(variant=4, conditioning="adaln", num_classes=3)
    perturb_zero_init(model)
    model.eval()
    ema = copy.deepcopy(model)
    assert ema.blocks[0].residual.__self__ is ema.blocks[0] and ema.condition.__self__ is ema
    assert ema.final_layer.normalise.__self__ is ema.final_layer
    x, t, y, _ = inputs(num_classes=3)
    before = model(x, t, y)
    torch.testing.assert_close(ema(x, t, y), before, rtol=0, atol=0)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(2.0)
    torch.testing.assert_close(model(x, t, y), before, rtol=0, atol=0)
    assert not torch.allclose(ema(x, t, y), before)
