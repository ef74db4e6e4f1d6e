"""``training.checkpoint.official_shapes``: what an official state dict's shapes say about its model, read from the reference fixtures."""

from __future__ import annotations

from safetensors import safe_open

from latte_bench.training.checkpoint import official_shapes


def _shapes(path):
    with safe_open(str(path), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def test_official_shapes_of_the_reference_checkpoints(fixtures_dir):
    cond = official_shapes(_shapes(fixtures_dir / "latte_official" / "latte_class.safetensors"))
    # x_embedder (64, 4, 2, 2), pos_embed (1, 16, 64): 4 latent channels, 4x4 patches of 2 -> 8x8 latents
    assert cond == {"latent_channels": 4, "latent_size": 8, "num_frames": 4, "num_classes": 10}
    uncond = official_shapes(_shapes(fixtures_dir / "latte_official" / "latte_uncond.safetensors"))
    assert uncond == {"latent_channels": 4, "latent_size": 8, "num_frames": 4}
    assert official_shapes({"module.x_embedder.proj.weight": (1152, 4, 2, 2), "module.pos_embed": (1, 256, 1152),
                            "module.temp_embed": (1, 16, 1152)}) == {"latent_channels": 4, "latent_size": 32,
                                                                     "num_frames": 16}
