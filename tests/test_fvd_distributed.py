"""torchrun with 2 CPU ranks (gloo) gives the same FVD as one process."""

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
    from latte_bench.metrics.fvd import compute_fvd
    from latte_bench import distributed as dist

    real, fake, out, batch = sys.argv[1:5]
    # block_size=1: every clip is its own block, so both ranks get clips to compute
    r = compute_fvd(real, fake, num_clips=2, num_frames=9, real_stride=1, seed=7, batch_size=int(batch), cache=False,
                    block_size=1, progress=False)
    if dist.is_main():
        with open(out, "w") as f:
            json.dump({"fvd": r.fvd, "world": r.provenance["world_size"], "real": r.provenance["real_clips"],
                       "fake": r.provenance["fake_clips"]}, f)
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


@pytest.mark.slow
def test_torchrun_two_ranks_equals_single_process(tmp_path):
    write_npz(tmp_path / "real.npz", _videos(3, 12, seed=0))
    write_npz(tmp_path / "fake.npz", _videos(2, 9, seed=1))
    script = tmp_path / "run_fvd.py"
    script.write_text(SCRIPT)
    # Same intra-op thread count in both runs (torchrun sets OMP_NUM_THREADS=1): CPU conv
    # kernels round differently with different thread counts.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [str(tmp_path / "real.npz"), str(tmp_path / "fake.npz")]
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
    assert one["real"] == two["real"] == 2 and one["fake"] == two["fake"] == 2
    assert np.isfinite(one["fvd"]) and one["fvd"] > 0
    assert two["fvd"] == one["fvd"]  # bitwise: same clips, same per-block sums, same order
