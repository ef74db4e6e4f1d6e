"""`latte-bench train` for Latte-T2V on the demo set: class names as prompts, a tiny random T5."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latte_bench.cli import main
from latte_bench.errors import UserError
from latte_bench.training.trainer import train
from t2v_tiny import tiny_pipeline

pytestmark = pytest.mark.usefixtures("single_thread")

T2V_OPTIONS = {"num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 1, "patch_size": 2}


@pytest.fixture(scope="module")
def demo_prompts(tmp_path_factory):
    """The demo's class names as prompts, encoded by a tiny random T5 (width 16)."""
    from latte_bench.data.demo import SHAPES
    from latte_bench.training.t2v import encode_prompts

    pipe = tiny_pipeline()
    embeddings = encode_prompts([f"a video of {name}" for name in SHAPES[:2]], pipe.text_encoder, pipe.tokenizer)
    return embeddings.save(tmp_path_factory.mktemp("prompts") / "demo.safetensors"), embeddings


def t2v_config(out, prompts, **overrides):
    from test_trainer import tiny  # tests/ is on sys.path under pytest

    return tiny(out, **{"model": "Latte-T2V", "model_options": T2V_OPTIONS, "prompt_embeds": str(prompts), "steps": 3, **overrides})


def test_t2v_trains_on_prompt_embeddings_and_samples_from_its_checkpoint(tmp_path, demo_prompts, capsys):
    from latte_bench.models.latte_t2v import CaptionConditioned
    from latte_bench.training.checkpoint import load_model

    path, embeddings = demo_prompts
    result = train(t2v_config(tmp_path / "run", path), progress=False)
    assert result["step"] == 3 and np.isfinite(result["loss"])
    loaded = load_model(tmp_path / "run")
    model = loaded.model
    assert isinstance(model, CaptionConditioned) and model.num_classes == 2
    # the caption table is the file's: prompt k for class k, the empty prompt for the null class 2
    assert torch.equal(model.captions[0, : len(embeddings.embeds[0])], embeddings.embeds[0])
    assert torch.equal(model.captions[2, : len(embeddings.negative)], embeddings.negative)
    # the cross-attention output started at zero and was trained: the prompt now changes the prediction
    assert model.model.transformer_blocks[0].attn2.to_out[0].weight.abs().max() > 0
    x = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x, torch.tensor([500]), torch.tensor([0])), model(x, torch.tensor([500]), torch.tensor([1]))
    assert a.shape == (1, 4, 3, 8, 8) and (a - b).abs().max() > 0

    assert main(["sample", "--ckpt", str(tmp_path / "run"), "--num-videos", "2", "--steps", "2", "--sampler", "ddim",
                 "--cfg-scale", "4", "--format", "npz", "--out", str(tmp_path / "videos"), "--no-progress", "--threads", "1"]) == 0
    videos = np.load(tmp_path / "videos" / "videos.npz")["videos"]
    assert videos.shape == (2, 4, 8, 8, 3)
    assert json.loads((tmp_path / "videos" / "samples.json").read_text())["labels"] is not None


def test_t2v_training_refusals(tmp_path, demo_prompts):
    path, _ = demo_prompts
    with pytest.raises(UserError, match="--prompt-embeds"):
        train(t2v_config(tmp_path / "a", path, prompt_embeds=None), progress=False)
    with pytest.raises(UserError, match="2 prompts for 3 classes"):
        train(t2v_config(tmp_path / "b", path, num_classes=3), progress=False)
    with pytest.raises(UserError, match="Latte-T2V takes diffusers"):
        train(t2v_config(tmp_path / "c", path, model_options={"depth": 2}), progress=False)
    from latte_bench.training.checkpoint import load_checkpoint
    from latte_bench.training.checkpoint import export_official

    train(t2v_config(tmp_path / "d", path, steps=1, ckpt_every=1), progress=False)
    ckpt = load_checkpoint(next((tmp_path / "d" / "checkpoints").glob("*.pt")))
    with pytest.raises(UserError, match="no official"):
        export_official(tmp_path / "d.pt", ckpt)
    assert train(t2v_config(tmp_path / "d", path, steps=2, ckpt_every=1), resume=True, progress=False)["step"] == 2
