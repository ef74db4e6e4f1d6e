"""The training loop: exact resume, gradient accumulation, joint training, precision, logging, errors."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from latte_bench.errors import UserError
from latte_bench.training.checkpoint import latest_checkpoint, load_checkpoint
from latte_bench.training.presets import learning_rate, preset
from latte_bench.training.trainer import train


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny(out, **overrides):
    """A seconds-long config: 4 frames of 8x8 pixels, a 2-block Latte, 2 classes, constant lr (``--steps`` may grow on resume)."""
    cfg = dataclasses.replace(
        preset("demo"), out=str(out), image_size=8, num_frames=4, frame_interval=1, demo_videos=16, lr_schedule="constant", warmup_steps=0,
        model_options={"hidden_size": 32, "depth": 2, "num_heads": 2}, num_classes=2, batch_size=4, steps=3,
        log_every=1, ckpt_every=100, num_workers=0, ema_decay=0.9, start_clip_iter=1, clip_max_norm=0.5,
    )
    return dataclasses.replace(cfg, **overrides)


def losses(run_dir):
    records = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    return [r["loss"] for r in records if "loss" in r]


def test_resume_continues_bit_exactly(tmp_path):
    train(tiny(tmp_path / "whole", steps=4), progress=False)
    train(tiny(tmp_path / "split", steps=2), progress=False)
    train(tiny(tmp_path / "split", steps=4), resume=True, progress=False)
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "split"))
    assert a["step"] == b["step"] == 4
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert losses(tmp_path / "whole")[2:] == losses(tmp_path / "split")[2:]
    # the EMA moved away from the model, and frozen tables were copied, not averaged
    assert not torch.equal(a["ema"]["final_layer.linear.weight"], a["model"]["final_layer.linear.weight"])
    assert torch.equal(a["ema"]["pos_embed"], a["model"]["pos_embed"])


def test_gradient_accumulation_matches_the_same_global_batch(tmp_path):
    train(tiny(tmp_path / "one", steps=3), progress=False)
    train(tiny(tmp_path / "acc", steps=3, batch_size=2, grad_accum=2), progress=False)
    assert losses(tmp_path / "one") == pytest.approx(losses(tmp_path / "acc"), rel=1e-5, abs=1e-6)
    a = load_checkpoint(latest_checkpoint(tmp_path / "one"))["model"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "acc"))["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_demo_preset_learns(tmp_path):
    train(tiny(tmp_path / "run", steps=40, lr=2e-3, log_every=5, clip_max_norm=1.0), progress=False)
    curve = losses(tmp_path / "run")
    assert len(curve) == 8 and curve[-1] < 0.6 * curve[0]


@pytest.mark.parametrize("strategy", ["only_video", "temporal_mask"])
def test_joint_training_with_images_bf16_and_checkpointing(tmp_path, strategy):
    cfg = tiny(tmp_path / strategy, steps=2, num_images=2, joint_strategy=strategy, precision="bf16", gradient_checkpointing=True)
    result = train(cfg, progress=False)
    assert result["step"] == 2 and torch.isfinite(torch.tensor(result["loss"]))
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / strategy))
    assert ckpt["config"]["num_images"] == 2 and ckpt["config"]["joint_strategy"] == strategy


def test_prediction_and_noise_schedule_reach_every_sampler(tmp_path):
    """A run trained with x_0-prediction on the cosine schedule is sampled as such by the evaluation path."""
    import numpy as np

    from latte_bench.metrics import CheckpointSource
    from latte_bench.training.latents import to_uint8
    from latte_bench.training.checkpoint import load_model
    from latte_bench.training.sampling import generate_latents

    options = {"prediction": "x0", "noise_schedule": "squaredcos_cap_v2", "learn_sigma": False}
    train(tiny(tmp_path / "run", steps=2, **options), progress=False)
    loaded = load_model(tmp_path / "run")
    assert loaded.diffusion_options == options
    source = CheckpointSource(tmp_path / "run", sampler="ddim", steps=4, seed=0).load("cpu")
    videos = source.generate([0, 1], "demo")
    common = dict(seed=0, sampler="ddim", steps=4, num_classes=2, labels=source.label_of([0, 1]), clip_denoised=True)
    direct, _ = generate_latents(loaded.model, [0, 1], loaded.latent_shape, **common, **options)
    np.testing.assert_array_equal(videos, to_uint8(direct))
    as_eps, _ = generate_latents(loaded.model, [0, 1], loaded.latent_shape, **common, learn_sigma=False)
    assert not np.array_equal(videos, to_uint8(as_eps))


@pytest.mark.parametrize("field, value", [("prediction", "v"), ("noise_schedule", "cosine")])
def test_unknown_diffusion_options_are_refused_before_any_work(tmp_path, field, value):
    with pytest.raises(UserError, match=value):
        train(tiny(tmp_path / "run", **{field: value}), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_snr_gamma_weights_each_clip_of_the_training_loss(tmp_path):
    """--snr-gamma γ: the logged loss of a one-clip step is the uniform one times min(SNR_t, γ) at that clip's t."""
    import numpy as np

    from latte_bench.diffusion.gaussian import named_beta_schedule
    from latte_bench.training.trainer import per_sample_draws

    gamma = 2.0
    runs = {g: tiny(tmp_path / f"g{g}", steps=1, batch_size=1, snr_gamma=g) for g in (0.0, gamma)}
    for cfg in runs.values():
        train(cfg, progress=False)
    cfg = runs[gamma]
    (t,) = per_sample_draws(cfg, 0, [0], (cfg.num_frames, 3, cfg.image_size, cfg.image_size), cfg.num_classes, 0)[0].tolist()
    alpha_bar = np.cumprod(1.0 - named_beta_schedule(cfg.noise_schedule, 1000))[t]
    weight = min(alpha_bar / (1.0 - alpha_bar), gamma)  # the demo preset predicts x_0
    assert cfg.prediction == "x0" and weight != 1.0
    assert losses(tmp_path / f"g{gamma}")[0] == pytest.approx(losses(tmp_path / "g0.0")[0] * weight, rel=1e-5)
    assert load_checkpoint(latest_checkpoint(tmp_path / f"g{gamma}"))["config"]["snr_gamma"] == gamma
    with pytest.raises(UserError, match="snr-gamma"):
        train(tiny(tmp_path / "bad", snr_gamma=-1.0), progress=False)


def test_metrics_jsonl_records(tmp_path):
    train(tiny(tmp_path / "run", steps=2), progress=False)
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert records[0]["event"] == "start" and records[0]["global_batch"] == 4
    step_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in step_records] == [1, 2]
    for r in step_records:
        assert set(r) >= {"step", "loss", "grad_norm", "lr", "steps_per_s", "samples_per_s", "clipped"}
    assert [r["clipped"] for r in step_records] == [False, True]  # start_clip_iter=1: clip from the 2nd step on


def test_refuses_to_overwrite_or_resume_nothing(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        train(tiny(tmp_path / "fresh"), resume=True, progress=False)
    train(tiny(tmp_path / "run", steps=1), progress=False)
    with pytest.raises(UserError, match="--resume"):
        train(tiny(tmp_path / "run", steps=2), progress=False)
    with pytest.raises(UserError, match="--data"):
        train(tiny(tmp_path / "ffs", dataset="ffs"), progress=False)


@pytest.mark.slow
def test_periodic_preview_and_fvd_records(tmp_path):
    from latte_bench.data.demo import write_demo_dataset
    from latte_bench.metrics.periodic import periodic_fvd

    real = write_demo_dataset(tmp_path / "real", n=3, num_frames=10, size=8, seed=5, classes=2)
    cfg = tiny(tmp_path / "run", steps=2, num_frames=9, sample_every=2, sample_videos=2, sample_steps=2,
               fvd_every=2, fvd_real=str(real), fvd_videos=2)
    train(cfg, progress=False, evaluate_fvd=periodic_fvd)
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    preview = [r for r in records if r.get("event") == "samples"]
    fvd = [r for r in records if r.get("event") == "fvd"]
    assert [r["step"] for r in preview] == [2] and len(list((tmp_path / "run" / "samples" / "0000002").glob("*.mp4"))) == 2
    assert [r["step"] for r in fvd] == [2] and fvd[0]["fvd"] > 0 and fvd[0]["fvd_clips"] == 2


def test_learning_rate_schedules():
    cfg = dataclasses.replace(preset("demo"), lr=1e-3, steps=110, warmup_steps=10, lr_schedule="cosine")
    assert learning_rate(cfg, 0) == pytest.approx(1e-4) and learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 10) == pytest.approx(1e-3)  # warm-up done: the cosine starts at lr
    assert learning_rate(cfg, 60) == pytest.approx(5e-4)  # half-way through the cosine
    assert learning_rate(cfg, 109) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert learning_rate(cfg, 500) == pytest.approx(0.0, abs=1e-12)
    constant = dataclasses.replace(cfg, lr_schedule="constant", warmup_steps=0)
    assert {learning_rate(constant, s) for s in (0, 55, 109)} == {1e-3}
    with pytest.raises(UserError, match="--lr-schedule"):
        learning_rate(dataclasses.replace(cfg, lr_schedule="linear"), 0)


def test_cosine_schedule_is_applied_and_resumes_exactly(tmp_path):
    cfg = dict(steps=4, ckpt_every=2, lr=1e-3, lr_schedule="cosine", warmup_steps=1)
    train(tiny(tmp_path / "whole", **cfg), progress=False)
    records = [json.loads(line) for line in open(tmp_path / "whole" / "metrics.jsonl")]
    logged = [r["lr"] for r in records if "lr" in r]
    assert logged == pytest.approx([learning_rate(tiny(tmp_path, **cfg), s) for s in range(4)])
    assert logged[0] == pytest.approx(1e-3) and logged[1] > logged[2] > logged[3] > 0

    train(tiny(tmp_path / "split", **cfg), progress=False)
    (tmp_path / "split" / "checkpoints" / "0000004.pt").unlink()  # as if killed after step 2
    train(tiny(tmp_path / "split", **cfg), resume=True, progress=False)
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "split"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
