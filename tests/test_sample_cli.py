"""`latte-bench sample`: per-video determinism, resumability, output formats, official checkpoints, torchrun sharding."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from latte_bench.cli import main
from latte_bench.data.video import open_videos
from latte_bench.training.presets import preset
from latte_bench.training.trainer import train


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from test_trainer import tiny  # tests/ is on sys.path under pytest

    out = tmp_path_factory.mktemp("run")
    train(tiny(out, steps=2), progress=False)
    return out


def sample(run_dir, out, *extra):
    argv = ["sample", "--ckpt", str(run_dir), "--num-videos", "3", "--out", str(out), "--steps", "4", "--no-progress", *extra]
    assert main(argv) == 0


def read_all(path):
    source = open_videos(path)
    return np.stack([e.read(range(e.num_frames)) for e in source.entries])


def test_same_seed_same_videos_for_any_batch_size(run_dir, tmp_path):
    sample(run_dir, tmp_path / "b1", "--batch-size", "1", "--format", "png")
    sample(run_dir, tmp_path / "b3", "--batch-size", "3", "--format", "png")
    a, b = read_all(tmp_path / "b1"), read_all(tmp_path / "b3")
    assert a.shape == (3, 4, 8, 8, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and (a == b).mean() > 0.999
    sample(run_dir, tmp_path / "other", "--seed", "1", "--format", "png")
    assert not np.array_equal(read_all(tmp_path / "other"), a)
    meta = json.loads((tmp_path / "b1" / "samples.json").read_text())
    assert meta["seed"] == 0 and meta["sampler"] == "ddim" and len(meta["labels"]) == 3  # the demo's default, as eval --ckpt's


def test_resume_keeps_existing_videos(run_dir, tmp_path):
    out = tmp_path / "png"
    sample(run_dir, out, "--format", "png")
    before = read_all(out)
    stamp = (out / "000000" / "000000.png").stat().st_mtime_ns
    for f in (out / "000002").iterdir():
        f.unlink()
    (out / "000002").rmdir()
    sample(run_dir, out, "--format", "png")
    assert (out / "000000" / "000000.png").stat().st_mtime_ns == stamp
    assert np.array_equal(read_all(out), before)


def test_npz_and_mp4_layouts_read_back(run_dir, tmp_path):
    sample(run_dir, tmp_path / "png", "--format", "png", "--sampler", "ddim")
    sample(run_dir, tmp_path / "npz", "--format", "npz", "--sampler", "ddim")
    sample(run_dir, tmp_path / "mp4", "--format", "mp4", "--sampler", "ddim", "--cfg-scale", "4")
    assert not (tmp_path / "npz" / ".parts").exists()
    assert np.array_equal(read_all(tmp_path / "npz" / "videos.npz"), read_all(tmp_path / "png"))
    assert sorted(p.name for p in (tmp_path / "mp4").glob("*.mp4")) == ["000000.mp4", "000001.mp4", "000002.mp4"]


def test_official_checkpoint_samples_like_the_native_one(tmp_path):
    cfg = dataclasses.replace(preset("demo"), out=str(tmp_path / "run"), steps=1, demo_videos=16, batch_size=4)
    train(cfg, progress=False)
    assert main(["export-official", "--ckpt", str(tmp_path / "run" / "checkpoints" / "0000001.pt"), "--out", str(tmp_path / "ema.pt")]) == 0
    common = ["--num-videos", "1", "--steps", "2", "--format", "npz", "--no-progress"]
    assert main(["sample", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "native"), *common]) == 0
    assert main(["sample", "--ckpt", str(tmp_path / "ema.pt"), "--preset", "demo", "--out", str(tmp_path / "official"), *common]) == 0
    assert np.array_equal(read_all(tmp_path / "native" / "videos.npz"), read_all(tmp_path / "official" / "videos.npz"))
    assert main(["sample", "--ckpt", str(tmp_path / "ema.pt"), "--out", str(tmp_path / "x"), *common]) == 2  # needs --preset


@pytest.mark.slow
def test_torchrun_shards_give_the_same_videos(run_dir, tmp_path):
    sample(run_dir, tmp_path / "single", "--format", "png")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "latte_bench.cli",
           "sample", "--ckpt", str(run_dir), "--num-videos", "3", "--out", str(tmp_path / "ddp"), "--steps", "4",
           "--format", "png", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read_all(tmp_path / "single"), read_all(tmp_path / "ddp")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and (a == b).mean() > 0.999


def test_every_training_side_option_has_help_with_its_default(capsys):
    """train / encode / sample / export-official: each option's help states its default (or it is required)."""
    import argparse

    from latte_bench.commands import train as commands

    parser = argparse.ArgumentParser(prog="latte-bench")
    sub = parser.add_subparsers(dest="command")
    commands.register(sub)
    for name in ("train", "encode", "sample", "export-official"):
        cmd = sub.choices[name]
        assert cmd.description, name
        formatter = cmd._get_formatter()
        for action in cmd._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = formatter._get_help_string(action) if hasattr(formatter, "_get_help_string") else action.help
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            assert action.required or "default" in (text or ""), f"{name} {action.option_strings[0]}: {text!r}"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "--lr LR" in out and "AdamW learning rate (default: 0.0001 (demo: 0.004))" in " ".join(out.split())


def test_the_steps_of_a_slow_batch_are_shown_below_the_bar(run_dir, tmp_path, capsys, monkeypatch):
    import re

    from latte_bench import progress

    argv = ["sample", "--ckpt", str(run_dir), "--num-videos", "2", "--batch-size", "2", "--sampler", "ddpm", "--steps", "4",
            "--format", "npz"]
    assert main([*argv, "--out", str(tmp_path / "fast")]) == 0
    err = capsys.readouterr().err
    assert "sample:" in err and "steps" not in err  # a batch of a tiny model ends well before 3 s
    monkeypatch.setattr(progress, "SLOW_BATCH_S", 0.0)  # every batch counts as slow
    assert main([*argv, "--out", str(tmp_path / "slow")]) == 0
    err = capsys.readouterr().err
    assert "sample:" in err and re.search(r"DDPM steps: +\d+%\S* *\| *\d/4", err)
    assert main([*argv, "--out", str(tmp_path / "off"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
