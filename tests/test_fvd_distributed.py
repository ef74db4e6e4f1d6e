"""torchrun with 2 CPU ranks (gloo) gives the same FVD as one process: for video files and for a checkpoint sampled in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from latte_bench.data.video import write_npz

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from latte_bench.metrics import CheckpointSource, compute_fvd
    from latte_bench import distributed as dist

    real, fake, out, batch = sys.argv[1:5]
    if fake.endswith(".pt"):
        fake = CheckpointSource(fake, sampler="ddim", steps=3)
    # block_size=1: every clip is its own block, so both ranks get clips to compute
    r = compute_fvd(real, fake, num_clips=2, num_frames=9, real_stride=1, seed=7, batch_size=int(batch), cache=False,
                    block_size=1, progress=False)
    if dist.is_main():
        with open(out, "w") as f:
            json.dump({"fvd": r.fvd, "world": r.record["run"]["world_size"], **r.record["counts"]}, f)
    """
)


def _videos(n, t, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32]
    out = np.zeros((n, t, 32, 32, 3), np.uint8)
    for i in range(n):
        fx, fy = rng.uniform(0.05, 0.3, 2)
        for k in range(t):
            base = 127 + 120 * np.sin(fx * x + fy * y + 0.25 * k + 2 * i)
            out[i, k] = np.stack([base, base.T, 255 - base], -1).astype(np.uint8)
    return out


def _tiny_checkpoint(tmp_path) -> str:
    """A 2-step pixel-space demo model of 9-frame 16x16 videos (unconditional)."""
    import dataclasses

    from latte_bench.training.presets import preset
    from latte_bench.training.trainer import train

    cfg = dataclasses.replace(preset("demo"), out=str(tmp_path / "run"), steps=2, num_frames=9, num_classes=0,
                              model_options={"hidden_size": 32, "depth": 2, "num_heads": 2}, demo_videos=8, ckpt_every=2)
    train(cfg, progress=False)
    return str(next((tmp_path / "run" / "checkpoints").glob("*.pt")))


@pytest.mark.slow
@pytest.mark.parametrize("fake_kind", ["file", "checkpoint"])
def test_torchrun_two_ranks_equals_single_process(tmp_path, fake_kind):
    write_npz(tmp_path / "real.npz", _videos(3, 12, seed=0))
    write_npz(tmp_path / "fake.npz", _videos(2, 9, seed=1))
    fake = str(tmp_path / "fake.npz") if fake_kind == "file" else _tiny_checkpoint(tmp_path)
    script = tmp_path / "run_fvd.py"
    script.write_text(SCRIPT)
    # Same intra-op thread count in both runs (torchrun sets OMP_NUM_THREADS=1): CPU conv
    # kernels round differently with different thread counts.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [str(tmp_path / "real.npz"), fake]
    single = subprocess.run([sys.executable, str(script), *args, str(tmp_path / "single.json"), "3"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args,
         str(tmp_path / "multi.json"), "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert multi.returncode == 0, multi.stderr[-2000:]
    one = json.loads((tmp_path / "single.json").read_text())
    two = json.loads((tmp_path / "multi.json").read_text())
    assert one["world"] == 1 and two["world"] == 2
    assert one["real_clips"] == two["real_clips"] == 2 and one["fake_clips"] == two["fake_clips"] == 2
    assert np.isfinite(one["fvd"]) and one["fvd"] > 0
    assert two["fvd"] == one["fvd"]  # bitwise: same clips, same per-block sums, same order
