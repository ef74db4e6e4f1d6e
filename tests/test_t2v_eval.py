"""Zero-shot UCF101 text-to-video: class-name prompts, and `eval --ckpt LATTE1 --t2v-prompts classnames` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latte_bench.cli import main
from latte_bench.data.prompts import (
    UCF101_CLASSES, class_prompt, class_words, classname_prompts, prompts_sha256, read_prompt_file,
)
from latte_bench.data.video import write_npz
from latte_bench.errors import UserError
from synthetic import waves
from t2v_tiny import write_tiny_latte1

pytestmark = pytest.mark.usefixtures("single_thread")


def test_classname_prompts_follow_the_template():
    assert len(UCF101_CLASSES) == len(set(UCF101_CLASSES)) == 101
    assert UCF101_CLASSES[0] == "ApplyEyeMakeup" and UCF101_CLASSES[-1] == "YoYo"
    assert class_words("ApplyEyeMakeup") == "apply eye makeup" and class_words("TaiChi") == "tai chi"
    assert class_prompt("PlayingGuitar") == "a video of playing guitar"
    prompts = classname_prompts("ucf101")
    assert len(prompts) == 101 and prompts[0] == "a video of apply eye makeup" and prompts[-1] == "a video of yo yo"
    with pytest.raises(UserError, match="--dataset ucf101"):
        classname_prompts("sky")


def test_prompt_files(tmp_path):
    (tmp_path / "p.txt").write_text("  a dog  \n\n a cat\n")
    assert read_prompt_file(tmp_path / "p.txt") == ["a dog", "a cat"]
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(UserError, match="no prompts"):
        read_prompt_file(tmp_path / "blank.txt")


@pytest.fixture(scope="module")
def latte1(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latte1_16")
    write_tiny_latte1(folder, frames=16)
    return folder


@pytest.fixture(scope="module")
def c3d(tmp_path_factory):
    class Fake(torch.nn.Module):  # stands in for StyleGAN-V's c3d_ucf101.pt: uint8 (B, 3, 16, H, W) -> probabilities
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = x.float().mean(dim=(2, 3, 4)) / 64
            return torch.softmax(torch.cat([s, -s, s * s], 1), 1)

    path = tmp_path_factory.mktemp("c3d") / "c3d_ucf101.pt"
    torch.jit.script(Fake()).save(str(path))
    return path


@pytest.mark.slow
def test_eval_ucf101_zero_shot_scores_fvd_and_is_with_balanced_classname_prompts(latte1, c3d, tmp_path, capsys):
    write_npz(tmp_path / "real.npz", waves(3, 48, seed=0))
    argv = ["eval", "--dataset", "ucf101", "--real", str(tmp_path / "real.npz"), "--ckpt", str(latte1), "--t2v-prompts",
            "classnames", "--num-clips", "3", "--steps", "2", "--is-splits", "1", "--c3d-weights", str(c3d),
            "--batch-size", "2", "--threads", "1", "--no-progress", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "r.json").read_text())
    assert set(record["metrics"]) == {"fvd", "is"}  # UCF101's metrics from the registry
    assert all(np.isfinite(v) for v in record["metrics"].values()) and record["metrics"]["fvd"] > 0
    fake = record["fake"]
    assert (fake["sampler"], fake["steps"], fake["cfg_scale"]) == ("ddim", 2, 7.5)  # LattePipeline's sampler and guidance
    assert fake["labels"] == "balanced" and fake["t2v_prompts"] == "classnames"
    assert fake["prompts_sha256"] == prompts_sha256(classname_prompts("ucf101"))
    assert fake["prompt_template"] == "a video of {action}" and fake["checkpoint"]["model"] == "Latte-T2V"
    assert record["method"] == "Latte-T2V" and record["counts"]["fake_clips"] == 3

    # the same command again, another batch size: the same videos, the same numbers
    argv[argv.index("--batch-size") + 1] = "3"
    assert main(argv) == 0
    assert json.loads((tmp_path / "r.json").read_text())["metrics"] == pytest.approx(record["metrics"], rel=1e-5)


def test_t2v_source_labels_and_refusals(latte1, tmp_path, capsys):
    from latte_bench.metrics import CheckpointSource

    source = CheckpointSource(latte1, sampler="ddim", steps=2, t2v_prompts="classnames", labels="random").load("cpu", "ucf101")
    assert source.num_classes == 101 and source.num_frames == 16
    assert source.label_of([0, 1, 100, 101, 205]) == [0, 1, 100, 0, 3]  # balanced: video i -> class i mod 101
    videos = source.generate([0, 101], "ucf101")
    assert videos.shape == (2, 16, 16, 16, 3) and videos.dtype == np.uint8
    assert np.abs(videos[0].astype(int) - videos[1]).max() > 0  # one prompt, two noise draws

    write_npz(tmp_path / "real.npz", waves(2, 48, seed=0))
    common = ["eval", "--real", str(tmp_path / "real.npz"), "--metrics", "fvd", "--num-clips", "2", "--no-progress"]
    for extra, needle in ((["--dataset", "ucf101", "--ckpt", str(latte1)], "--t2v-prompts classnames"),
                          (["--dataset", "sky", "--ckpt", str(latte1), "--t2v-prompts", "classnames"], "--dataset ucf101"),
                          (["--dataset", "ucf101", "--ckpt", str(latte1), "--t2v-prompts", "classnames", "--sampler", "ddpm"],
                           "ddim or dpm++")):
        capsys.readouterr()
        assert main([*common, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("latte-bench: error:") and needle in err, err
