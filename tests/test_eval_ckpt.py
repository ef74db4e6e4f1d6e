"""The evaluation path end to end with the real I3D: a checkpoint scored in one command, sources, honest records.

A tiny demo model (2 training steps, 9-frame 16x16 videos, the demo preset's 4 classes) is sampled in
memory; clip counts are 2-3 so each evaluation takes seconds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from latte_bench.cli import main
from synthetic import waves
from latte_bench.data.video import write_npz
from latte_bench.errors import UserError
from latte_bench.fsutil import sha256_file
from latte_bench.metrics import CheckpointSource, evaluate
from latte_bench.training.presets import preset

FAST = ["--num-frames", "9", "--steps", "2", "--sampler", "ddim", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from latte_bench.training.trainer import train

    out = tmp_path_factory.mktemp("eval_run") / "run"
    # Latte's ε-prediction and a constant lr: after 2 steps an x_0-model still predicts ~0 for every
    # noise draw (adaLN-zero init), and the sampling-seed tests below need videos that differ
    cfg = dataclasses.replace(preset("demo"), out=str(out), steps=2, num_frames=9, demo_videos=8, ckpt_every=2,
                              model_options={"hidden_size": 32, "depth": 2, "num_heads": 2}, prediction="eps",
                              noise_schedule="linear", learn_sigma=True, lr_schedule="constant", warmup_steps=0)
    with_threads(1, train, cfg, progress=False)
    return out


def with_threads(n, fn, *args, **kwargs):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(before)


def _eval_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_eval_ckpt_one_command_deterministic_and_rescored_from_saved_samples(run, tmp_path, capsys):
    common = ["--dataset", "demo", "--ckpt", str(run), "--num-clips", "3", *FAST]
    code, out, err = _eval_cli(capsys, *common, "--batch-size", "2", "--json", str(tmp_path / "a.json"),
                               "--save-samples", str(tmp_path / "samples"))
    assert code == 0, err
    a = json.loads((tmp_path / "a.json").read_text())
    assert set(a["metrics"]) == {"fvd", "kvd"}  # the demo's metrics from the registry
    assert all(np.isfinite(v) for v in a["metrics"].values()) and a["metrics"]["fvd"] > 0
    assert a["nonstandard"] == ["3 clips", "9 frames"] and "[nonstandard: 3 clips, 9 frames]" in out
    assert a["method"] == f"{preset('demo').model} step 2" and a["dataset"] == "demo"
    ckpt = a["fake"]["checkpoint"]
    assert ckpt["path"].endswith("0000002.pt") and ckpt["sha256"] == sha256_file(ckpt["path"]) and ckpt["step"] == 2
    assert a["fake"]["sampler"] == "ddim" and a["fake"]["steps"] == 2 and a["fake"]["cfg_scale"] == 1.0
    assert a["counts"] == {"real_clips": 3, "fake_clips": 3} and a["protocol"]["torch_threads"] == 1
    assert f"{a['metrics']['fvd']:.4f}" in out and "3 clips" in out

    # another batch size: the same videos, the same features, the same numbers (bitwise)
    code, _, err = _eval_cli(capsys, *common, "--batch-size", "3", "--json", str(tmp_path / "b.json"))
    assert code == 0, err
    assert json.loads((tmp_path / "b.json").read_text())["metrics"] == a["metrics"]

    # what was scored, written losslessly, rescored as files: the same numbers
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["000000", "000001", "000002"]
    code, _, err = _eval_cli(capsys, "--dataset", "demo", "--fake", str(tmp_path / "samples"), "--num-clips", "3",
                             "--num-frames", "9", "--metrics", "fvd,kvd", "--no-progress", "--threads", "1",
                             "--json", str(tmp_path / "c.json"))
    assert code == 0, err
    assert json.loads((tmp_path / "c.json").read_text())["metrics"] == a["metrics"]


@pytest.mark.slow
def test_eval_ckpt_shows_the_sampling_steps_of_a_slow_batch(run, capsys, monkeypatch):
    import re

    from latte_bench import progress

    monkeypatch.setattr(progress, "SLOW_BATCH_S", 0.0)  # every batch counts as slow (3 s by default)
    code, _, err = _eval_cli(capsys, "--dataset", "demo", "--ckpt", str(run), "--num-clips", "2", "--num-frames", "9",
                             "--steps", "3", "--sampler", "ddim", "--threads", "1", "--seed", "11")
    assert code == 0, err
    assert "sample + i3d" in err and re.search(r"DDIM steps: +\d+%\S* *\| *\d/3", err)


@pytest.mark.slow
def test_one_i3d_pass_array_equals_file_and_global_state_restored(tmp_path, monkeypatch):
    from latte_bench.metrics import i3d as i3d_module

    real, fake = waves(3, 12, seed=0), waves(3, 9, seed=1)
    rows = []
    load = i3d_module.load_i3d

    def counting_load(*args, **kwargs):
        net = load(*args, **kwargs)
        net.register_forward_hook(lambda m, inp, out: rows.append(len(inp[0])))
        return net

    monkeypatch.setattr(i3d_module, "load_i3d", counting_load)
    kw = dict(num_clips=3, num_frames=9, batch_size=3, device="cpu", cache=False, progress=False, torch_threads=2)
    torch.set_num_threads(1)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, True
    try:
        from_arrays = evaluate(real, torch.from_numpy(fake), metrics=("fvd", "kvd"), **kw)
        assert torch.get_num_threads() == 1  # the evaluation ran with 2 and put 1 back
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert rows == [3, 3]  # one I3D pass per side serves FVD and KVD
    assert from_arrays.record["protocol"]["torch_threads"] == 2

    rows.clear()
    write_npz(tmp_path / "real.npz", real)
    write_npz(tmp_path / "fake.npz", fake)
    from_files = evaluate(tmp_path / "real.npz", str(tmp_path / "fake.npz"), metrics="fvd,kvd", **kw)
    assert from_files.metrics == from_arrays.metrics and rows == [3, 3]

    def batches():  # a generator of batches, as clean-fid's gen=
        yield fake[:2]
        yield fake[2:]

    from_stream = evaluate(real, batches, metrics=("fvd", "kvd"), **kw)
    assert from_stream.metrics == from_arrays.metrics


def test_settings_are_checked_and_single_videos_refused(tmp_path):
    videos = waves(2, 9, seed=0)
    with pytest.raises(UserError, match="num_clip"):
        evaluate(videos, videos, num_clip=16)
    with pytest.raises(UserError, match="looks like one video"):
        evaluate(videos, videos[0], num_clips=2)
    with pytest.raises(UserError, match="unknown metric"):
        evaluate(videos, videos, metrics=("fvd", "psnr"))
    with pytest.raises(UserError, match="^resize must be one of pytorch, tf"):
        evaluate(videos, videos, resize="bicubic")


@pytest.mark.slow
def test_too_few_clips_refused_unless_allowed_then_tagged(tmp_path):
    write_npz(tmp_path / "real.npz", waves(2, 12, seed=0))
    fake = waves(3, 9, seed=1)
    kw = dict(num_clips=3, num_frames=9, device="cpu", cache=False, progress=False)
    with pytest.raises(UserError, match=r"only 2 usable real clips for num_clips=3; pass allow_fewer=True"):
        evaluate(tmp_path / "real.npz", fake, **kw)
    result = evaluate(tmp_path / "real.npz", fake, allow_fewer=True, **kw)
    assert result.record["nonstandard"] == ["3 clips", "9 frames", "2 real clips"]
    assert result.record["counts"] == {"real_clips": 2, "fake_clips": 3}


def test_bad_inputs_refused_in_one_line_before_sampling(run, tmp_path, capsys, monkeypatch):
    def refused(*argv, needles=()):
        code, out, err = _eval_cli(capsys, *argv)
        err = err.strip()
        assert code == 2 and err.startswith("latte-bench: error:") and "\n" not in err, err
        for needle in needles:
            assert needle in err, err

    (tmp_path / "notes.txt").write_text("not a checkpoint")
    refused("--dataset", "demo", "--ckpt", str(tmp_path / "notes.txt"), *FAST, needles=("notes.txt",))
    refused("--dataset", "demo", "--ckpt", str(tmp_path / "missing"), needles=("missing",))
    refused("--dataset", "demo", "--ckpt", str(run), "--num-frames", "16", needles=("9-frame", "16"))
    refused("--dataset", "nope", "--ckpt", str(run), needles=("unknown dataset", "ucf101"))
    write_npz(tmp_path / "real.npz", waves(2, 12, seed=0))
    monkeypatch.delenv("LATTE_BENCH_DATA", raising=False)
    refused("--dataset", "ffs", "--fake", str(tmp_path / "real.npz"), needles=("--data", "LATTE_BENCH_DATA"))
    refused("--dataset", "ffs", "--data", str(tmp_path / "nothing"), "--fake", str(tmp_path / "real.npz"),
            needles=("nothing", "data root"))
    refused("--dataset", "ffs", "--ckpt", str(run), *FAST, needles=("4 classes", "unconditional"))
    refused("--real", str(tmp_path / "real.npz"), "--dataset", "ucf101", "--ckpt", str(run), "--metrics", "fvd", *FAST,
            needles=("4 classes", "101 classes"))
    refused("--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "real.npz"), "--ckpt", str(run),
            needles=("not both",))
    (tmp_path / "file").write_text("")
    refused("--dataset", "demo", "--ckpt", str(run), "--json", str(tmp_path / "file" / "out.json"), needles=("--json", "cannot write"))


@pytest.mark.slow
def test_num_runs_report_mean_and_std(run, tmp_path):
    result = evaluate(None, CheckpointSource(run, sampler="ddim", steps=2), dataset="demo", num_clips=2, num_frames=9,
                      num_runs=2, torch_threads=1, progress=False, metrics=("fvd",))
    fvd = result.record["metrics"]["fvd"]
    assert fvd["seeds"] == [0, 1] and len(fvd["runs"]) == 2 and fvd["runs"][0] != fvd["runs"][1]
    assert fvd["value"] == pytest.approx(np.mean(fvd["runs"])) and fvd["std"] == pytest.approx(np.std(fvd["runs"], ddof=1))
    assert result.fvd == fvd["value"] and result.record["runs"] == 2
