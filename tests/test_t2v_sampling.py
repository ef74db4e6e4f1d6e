"""Text-to-video sampling from a Latte-1 folder against diffusers' LattePipeline; prompt files; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latte_bench.cli import main
from latte_bench.errors import UserError
from t2v_tiny import FRAMES, PIXELS, write_tiny_latte1

pytestmark = pytest.mark.usefixtures("single_thread")

PROMPTS = ["A video of a cat running", "a dog", "the sky"]  # 7, 3 and 3 tokens: padded and masked in one batch


@pytest.fixture(scope="module")
def latte1(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latte1")
    write_tiny_latte1(folder)
    return folder


@pytest.fixture(scope="module")
def loaded(latte1):
    from latte_bench.training.t2v import Latte1, encode_prompts, load_text_encoder

    encoder, tokenizer = load_text_encoder(latte1)
    return Latte1.load(latte1), encode_prompts(PROMPTS, encoder, tokenizer)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_sampling_loop_matches_lattepipeline(latte1, loaded, sampler):
    from diffusers import DPMSolverMultistepScheduler, LattePipeline

    from latte_bench.training.t2v import t2v_latents

    model, embeddings = loaded
    pipe = LattePipeline.from_pretrained(str(latte1))
    pipe.set_progress_bar_config(disable=True)
    if sampler == "dpm++":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    noise = torch.randn(3, 4, FRAMES, 8, 8, generator=torch.Generator().manual_seed(3))
    latents = t2v_latents(model.model, model.scheduler_config, embeddings, [0, 1, 2], [0, 1, 2], model.latent_shape,
                          sampler=sampler, steps=4, noise=noise)  # the three prompts in one batch
    ours = (model.latent_space.decode(latents.permute(0, 2, 1, 3, 4)) / 2 + 0.5).clamp(0, 1)  # (B, F, 3, H, W)
    for i, prompt in enumerate(PROMPTS):
        with torch.no_grad():
            want = pipe(prompt, num_inference_steps=4, guidance_scale=7.5, video_length=FRAMES, height=PIXELS, width=PIXELS,
                        latents=noise[i : i + 1].clone(), output_type="pt", clean_caption=False).frames[0]
        assert want.shape == ours[i].shape == (FRAMES, 3, PIXELS, PIXELS)
        assert (want - ours[i]).abs().max().item() <= 1e-4, prompt
    assert (ours[1] - ours[2]).abs().max().item() > 1e-3  # the prompt matters: same length, other words


def test_prompt_embeddings_file_round_trip(tmp_path, loaded):
    from latte_bench.training.t2v import PromptEmbeddings

    _, embeddings = loaded
    assert [len(e) for e in embeddings.embeds] == [7, 3, 3] and len(embeddings.negative) == 7
    again = PromptEmbeddings.load(embeddings.save(tmp_path / "e.safetensors"))
    assert again.prompts == PROMPTS and again.sha256() == embeddings.sha256()
    for a, b in zip(again.embeds, embeddings.embeds):
        assert torch.equal(a, b)
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="not a prompt-embeddings file"):
        PromptEmbeddings.load(tmp_path / "bad.safetensors")


def sample(latte1, out, *extra):
    return main(["sample", "--ckpt", str(latte1), "--num-videos", "4", "--out", str(out), "--steps", "3", "--format", "npz",
                 "--no-progress", "--threads", "1", *extra])


def test_sample_cli_writes_resumes_and_accepts_embeddings(latte1, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n\n")
    assert sample(latte1, tmp_path / "a", "--prompts", str(prompts), "--batch-size", "3") == 0
    videos = np.load(tmp_path / "a" / "videos.npz")["videos"]
    assert videos.shape == (4, FRAMES, PIXELS, PIXELS, 3) and videos.std() > 5
    record = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert record["prompts"] == PROMPTS and record["status"] == "complete"
    assert (record["sampler"], record["steps"], record["cfg_scale"]) == ("ddim", 3, 7.5)  # LattePipeline's, steps given
    from latte_bench.data.prompts import prompts_sha256

    assert record["prompts_sha256"] == prompts_sha256(PROMPTS)
    # video 3 has prompt 3 mod 3 = 0, as video 0, from other noise
    assert np.abs(videos[3].astype(int) - videos[0]).max() > 0

    capsys.readouterr()
    assert sample(latte1, tmp_path / "a", "--prompts", str(prompts)) == 0
    assert "(4 of the 4 asked were already there)" in capsys.readouterr().out

    assert main(["encode-prompts", "--ckpt", str(latte1), "--prompts", str(prompts), "--out", str(tmp_path / "e.safetensors")]) == 0
    assert sample(latte1, tmp_path / "b", "--prompt-embeds", str(tmp_path / "e.safetensors"), "--batch-size", "1") == 0
    again = np.load(tmp_path / "b" / "videos.npz")["videos"]
    assert np.abs(again.astype(int) - videos).max() <= 1  # batch 1 vs 3: float rounding only
    assert json.loads((tmp_path / "b" / "samples.json").read_text())["prompt_embeds_sha256"] == record["prompt_embeds_sha256"]

    capsys.readouterr()
    assert sample(latte1, tmp_path / "a", "--prompt", "a dog") == 2  # other prompts into the same folder
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the VAE loader's notes
    assert err.startswith("latte-bench: error:") and "prompts_sha256" in err


def test_t2v_sample_refusals_are_one_line(latte1, tmp_path, capsys):
    (tmp_path / "ckpt.pt").write_bytes(b"")
    cases = [
        (["--prompt", "a dog"], tmp_path / "ckpt.pt", "needs a Latte-1 folder"),
        ([], latte1, "text-to-video model: pass --prompt"),
        (["--prompt", "a dog", "--sampler", "ddpm"], latte1, "ddim or dpm++"),
        ([], latte1 / "transformer", "pass the Latte-1 folder above it"),
    ]
    for extra, ckpt, message in cases:
        capsys.readouterr()
        assert sample(ckpt, tmp_path / "out", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err, err
