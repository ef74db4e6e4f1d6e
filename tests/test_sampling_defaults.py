"""`sample` and `eval --ckpt` sample one checkpoint alike by default.

Both take the sampler, steps and guidance of the checkpoint dataset's ``DatasetSpec``: DDIM 25 on the
demo, DDPM 250 with guidance 7 for a class-conditional UCF101 model. Tiny pixel-space models (9 frames of
16x16, two training steps) keep each command to seconds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from latte_bench.cli import main
from latte_bench.data.registry import DATASETS, get_dataset, sampling_defaults
from latte_bench.data.video import open_videos, write_npz
from latte_bench.training.checkpoint import load_checkpoint
from latte_bench.commands.train import with_sampling_defaults
from latte_bench.training.presets import preset
from synthetic import waves

pytestmark = pytest.mark.usefixtures("single_thread")
RUN = ["--no-progress", "--threads", "1", "--batch-size", "3"]


def _train(out, **overrides):
    from latte_bench.training.trainer import train

    # ε-prediction and a constant lr, as in test_eval_ckpt: videos that depend on the noise draw
    cfg = dataclasses.replace(preset("demo"), out=str(out), steps=2, num_frames=9, demo_videos=8, ckpt_every=2,
                              model_options={"hidden_size": 32, "depth": 2, "num_heads": 2}, prediction="eps",
                              noise_schedule="linear", learn_sigma=True, lr_schedule="constant", warmup_steps=0,
                              num_workers=0, **overrides)
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("demo_run") / "run")


@pytest.fixture(scope="module")
def ucf_ckpt(demo_run, tmp_path_factory):
    """The demo checkpoint as a 101-class model filed under ucf101, its EMA weights perturbed (seeded) so that
    guidance changes the videos."""
    from latte_bench.training.checkpoint import build_model_for_checkpoint
    from latte_bench.training.presets import TrainConfig

    state = load_checkpoint(demo_run / "checkpoints" / "0000002.pt")
    state["config"].update(dataset="ucf101", num_classes=101)
    model = build_model_for_checkpoint(TrainConfig.from_dict(state["config"]), state)
    fits = {k: v for k, v in state["ema"].items() if v.shape == model.state_dict()[k].shape}
    model.load_state_dict(fits, strict=False)  # all but the class embedding table
    g = torch.Generator().manual_seed(0)
    state["ema"] = {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                    for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ucf") / "ucf.pt"
    torch.save(state, path)
    return path


def _read(path) -> np.ndarray:
    source = open_videos(path)
    return np.stack([e.read(range(e.num_frames)) for e in source.entries])


def _eval(tmp_path, dataset, ckpt, *extra) -> tuple[np.ndarray, dict]:
    out, record = tmp_path / f"eval_{dataset}", tmp_path / f"eval_{dataset}.json"
    argv = ["eval", "--dataset", dataset, "--ckpt", str(ckpt), "--num-clips", "3", "--num-frames", "9",
            "--save-samples", str(out), "--json", str(record), *RUN, *extra]
    assert main(argv) == 0
    return _read(out), json.loads(record.read_text())


def _sample(tmp_path, ckpt, name, *extra) -> tuple[np.ndarray, dict]:
    out = tmp_path / name
    assert main(["sample", "--ckpt", str(ckpt), "--num-videos", "3", "--out", str(out), "--format", "png", *RUN, *extra]) == 0
    return _read(out), json.loads((out / "samples.json").read_text())


def _settings(record: dict) -> tuple:
    return record["sampler"], record["steps"], record["cfg_scale"]


@pytest.mark.slow
def test_sample_and_eval_ckpt_make_the_same_demo_videos_by_default(demo_run, tmp_path):
    evaluated, record = _eval(tmp_path, "demo", demo_run)
    sampled, meta = _sample(tmp_path, demo_run, "sample")
    spec = get_dataset("demo")
    assert _settings(meta) == _settings(record["fake"]) == (spec.sampler, spec.sample_steps, 1.0) == ("ddim", 25, 1.0)
    assert sampled.shape == (3, 9, 16, 16, 3) and np.array_equal(sampled, evaluated)
    other, _ = _sample(tmp_path, demo_run, "ddpm", "--sampler", "ddpm", "--steps", "25")
    assert not np.array_equal(other, sampled)  # the default is not the paper's DDPM here


@pytest.mark.slow
def test_sample_and_eval_ckpt_guide_a_ucf101_model_alike_by_default(ucf_ckpt, tmp_path):
    real = tmp_path / "real.npz"
    write_npz(real, waves(3, 30, seed=1))  # 27 frames: 9 at UCF101's stride 3
    evaluated, record = _eval(tmp_path, "ucf101", ucf_ckpt, "--real", str(real), "--metrics", "fvd")
    sampled, meta = _sample(tmp_path, ucf_ckpt, "sample")
    assert _settings(meta) == _settings(record["fake"]) == ("ddpm", 250, get_dataset("ucf101").guidance) == ("ddpm", 250, 7.0)
    assert np.array_equal(sampled, evaluated)
    unguided, _ = _sample(tmp_path, ucf_ckpt, "cfg1", "--cfg-scale", "1")
    assert not np.array_equal(unguided, sampled)  # guidance changes these videos: the default applied it


@pytest.mark.parametrize("dataset", [None, *DATASETS])
@pytest.mark.parametrize("num_classes", [0, 4, 101])
def test_sample_defaults_are_the_registrys_for_the_checkpoints_dataset(dataset, num_classes):
    from latte_bench.metrics.sources import CheckpointSource

    args = with_sampling_defaults(_no_sampling_flags(), {"dataset": dataset, "num_classes": num_classes})
    want = sampling_defaults(dataset, num_classes)
    assert (args.sampler, args.steps, args.cfg_scale) == (want.sampler, want.steps, want.cfg_scale)
    guided = dataset is not None and get_dataset(dataset).guidance != 1.0 and num_classes > 0
    assert args.cfg_scale == (7.0 if guided else 1.0)
    source = CheckpointSource.from_model(torch.nn.Linear(1, 1), None, {"num_classes": num_classes}, {})
    assert source.effective_cfg(dataset) == args.cfg_scale  # what eval --ckpt samples with
    given = with_sampling_defaults(_no_sampling_flags(sampler="dpm++", steps=7, cfg_scale=2.5), {"dataset": dataset})
    assert (given.sampler, given.steps, given.cfg_scale) == ("dpm++", 7, 2.5)


def _no_sampling_flags(**given):
    import argparse

    return argparse.Namespace(**{"sampler": None, "steps": None, "cfg_scale": None, **given})
