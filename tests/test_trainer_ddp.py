"""DDP and FSDP under torchrun (2 CPU processes, gloo) follow the single-process loss trajectory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from latte_bench.training.checkpoint import latest_checkpoint, load_checkpoint
from latte_bench.training.trainer import train
from test_trainer import tiny  # tests/ is on sys.path under pytest


pytestmark = pytest.mark.usefixtures("single_thread")

TINY_FLAGS = [
    "--image-size", "8", "--num-frames", "4", "--frame-interval", "1", "--demo-videos", "16", "--num-classes", "2",
    "--model-options", json.dumps({"hidden_size": 32, "depth": 2, "num_heads": 2}), "--steps", "3", "--log-every", "1",
    "--num-workers", "0", "--ema-decay", "0.9", "--start-clip-iter", "1", "--clip-max-norm", "0.5", "--device", "cpu",
    "--lr-schedule", "constant", "--warmup-steps", "0", "--no-progress",  # as test_trainer.tiny()
]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, strategy):
    train(tiny(tmp_path / "single", batch_size=4), progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "latte_bench.cli",
           "train", "demo", "--out", str(tmp_path / "ddp"), "--batch-size", "2", "--distributed", strategy, *TINY_FLAGS]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def curve(run):
        return [json.loads(line) for line in open(tmp_path / run / "metrics.jsonl")]

    single, ddp = curve("single"), curve("ddp")
    assert ddp[0]["world_size"] == 2 and ddp[0]["global_batch"] == single[0]["global_batch"] == 4
    loss_single = [r["loss"] for r in single if "loss" in r]
    loss_ddp = [r["loss"] for r in ddp if "loss" in r]
    assert len(loss_ddp) == 3 and loss_ddp == pytest.approx(loss_single, rel=1e-5, abs=1e-6)
    a = load_checkpoint(latest_checkpoint(tmp_path / "single"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))
    assert all(torch.allclose(a["ema"][k], b["ema"][k], atol=1e-5) for k in a["ema"])
    assert all(torch.allclose(a["model"][k], b["model"][k], atol=1e-5) for k in a["model"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]  # full, unsharded optimizer state either way
    assert len(sa) == len(sb) and all(torch.allclose(x["exp_avg"], y["exp_avg"], atol=1e-6) for x, y in zip(sa.values(), sb.values()))


@pytest.mark.slow
def test_fsdp_checkpoint_resumes_in_a_single_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    flags = [f if f != "3" else "2" for f in TINY_FLAGS]  # 2 steps under FSDP
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "latte_bench.cli",
           "train", "demo", "--out", str(tmp_path / "run"), "--batch-size", "2", "--distributed", "fsdp", *flags]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train(tiny(tmp_path / "whole", batch_size=4, steps=3), progress=False)
    train(tiny(tmp_path / "run", batch_size=4, steps=3), resume=True, progress=False)
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert b["step"] == 3 and all(torch.allclose(a["model"][k], b["model"][k], atol=1e-5) for k in a["model"])
