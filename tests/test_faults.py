"""Fault injection: kill -9 at random moments, leftovers of crashed writes, bad files, read-only
outputs, changed settings, shared-cache permissions. What is promised: docs/reliability.md.

Every crash test compares the final outputs with an uninterrupted run bit for bit. The kill -9
tests start the real CLI in a subprocess (about 10 s of start-up each on a busy 2-core machine),
so they are few and marked slow; the leftovers a crash can leave are also planted directly,
which is fast and deterministic.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latte_bench.cli import main
from synthetic import waves
from latte_bench.data.video import open_videos, write_npz, write_video
from latte_bench.errors import UserError
from latte_bench.fsutil import atomic_path, check_writable, clean_temporaries, is_data_name, is_temporary, write_json
from latte_bench.metrics import CheckpointSource, evaluate
from latte_bench.training.checkpoint import latest_checkpoint, load_checkpoint
from latte_bench.training.presets import preset
from latte_bench.training.trainer import train

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = '{"hidden_size": 32, "depth": 2, "num_heads": 2}'
# `train demo` flags of test_trainer.tiny(): 4 frames of 8x8 pixels, a 2-block Latte, 2 classes, constant lr
TINY_FLAGS = ["--image-size", "8", "--num-frames", "4", "--frame-interval", "1", "--demo-videos", "16",
              "--lr-schedule", "constant", "--warmup-steps", "0",
              "--model-options", TINY_MODEL, "--num-classes", "2", "--batch-size", "4", "--num-workers", "0",
              "--ema-decay", "0.9", "--start-clip-iter", "1", "--clip-max-norm", "0.5", "--threads", "1", "--no-progress"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may write into: chmod 555 for a normal user; as root (who ignores modes) a
    path under /sys, where even root cannot create files."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
    else:
        yield Path("/sys/fs/latte-bench-read-only")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from test_trainer import tiny  # tests/ is on sys.path under pytest

    out = tmp_path_factory.mktemp("run")
    train(tiny(out, steps=2), progress=False)
    return out


def _cli(*argv) -> int:
    return main([str(a) for a in argv])


def _spawn(*argv) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "latte_bench.cli", *map(str, argv)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 240) -> bool:
    """SIGKILL ``proc`` ``delay`` s after ``ready()`` turns true; False when it finished first."""
    end = time.time() + timeout
    while not ready():
        if proc.poll() == 0:
            return False
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        if time.time() > end:
            proc.kill()
            raise AssertionError("never got going")
        time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes), samples.json excluded."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "samples.json"}


# ============================================================================ files


def test_atomic_temporaries_are_recognised_and_never_data(tmp_path):
    names = []
    for target in ("000001.png", "videos.npz", "0000010.pt", "samples.json", "LICENSE", "a.tar.gz"):
        with atomic_path(tmp_path / target) as tmp:
            names.append(tmp.name)
            assert is_temporary(tmp.name) and not is_data_name(tmp.name), tmp.name
            tmp.write_bytes(b"x")
        assert not is_temporary(target) and is_data_name(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["000001.png", "videos.npz", "0000010.pt", "samples.json", "LICENSE", "a.tar.gz"])
    (tmp_path / names[0]).write_bytes(b"left by a crash")
    (tmp_path / ".DS_Store").write_bytes(b"")
    assert clean_temporaries(tmp_path) == [tmp_path / names[0]]
    assert (tmp_path / ".DS_Store").exists()  # only our own temporaries are removed


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_honour_the_umask(tmp_path, mask):
    """mkstemp makes 0600; finished files get 0666 less the umask, so colleagues can read them."""
    old = os.umask(mask)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
        write_video(tmp_path / "v.mp4", np.zeros((2, 16, 16, 3), np.uint8))
    finally:
        os.umask(old)
    for name in ("r.json", "v.mp4"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_unwritable_output_folder_is_one_line(unwritable):
    with pytest.raises(UserError, match="cannot write there") as err:
        check_writable(unwritable / "sub", "--out")
    assert "--out" in str(err.value) and "\n" not in str(err.value)


# ============================================================================ sample


def test_sample_rerun_finishes_what_a_crash_left(run_dir, tmp_path):
    """Leftovers of a crash in each format: temp files, a half-written png folder, a truncated npz part."""
    common = ["--ckpt", run_dir, "--num-videos", 3, "--steps", 4, "--no-progress"]
    for fmt in ("png", "npz", "mp4"):
        assert _cli("sample", *common, "--out", tmp_path / f"ref_{fmt}", "--format", fmt) == 0
    ref = {fmt: _tree(tmp_path / f"ref_{fmt}") for fmt in ("png", "npz", "mp4")}

    png = tmp_path / "png"
    assert _cli("sample", *common, "--out", png, "--format", "png", "--num-videos", 1) == 0
    (png / "000001").mkdir()
    (png / "000001" / "000000.png").write_bytes((png / "000000" / "000000.png").read_bytes())  # half a video
    (png / "000001" / ".000001.png.k2j4x9q1.tmp.png").write_bytes(b"half a frame")
    assert len(open_videos(png, skip_bad=True)) == 2  # the half video is listed as a video ...
    assert _cli("sample", *common, "--out", png, "--format", "png") == 0
    assert _tree(png) == ref["png"]  # ... and redone, its temporary file gone

    npz = tmp_path / "npz"
    assert _cli("sample", *common, "--out", npz, "--format", "npz", "--num-videos", 1) == 0
    parts = npz / ".parts"
    parts.mkdir()
    with np.load(npz / "videos.npz") as z:
        one = z["videos"][0]
    np.save(parts / "000001.npy", one)
    (parts / "000001.npy").write_bytes((parts / "000001.npy").read_bytes()[:-50])  # truncated part
    (parts / ".000002.npy.ab12cd34.tmp.npy").write_bytes(b"\x93NUMPY")
    assert _cli("sample", *common, "--out", npz, "--format", "npz") == 0
    assert _tree(npz) == ref["npz"]

    mp4 = tmp_path / "mp4"
    assert _cli("sample", *common, "--out", mp4, "--format", "mp4", "--num-videos", 2) == 0
    (mp4 / ".000002.mp4.zz99yy88.tmp.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 half")
    assert [e.name for e in open_videos(mp4).entries] == ["000000.mp4", "000001.mp4"]  # eval never sees it
    assert _cli("sample", *common, "--out", mp4, "--format", "mp4") == 0
    assert _tree(mp4) == ref["mp4"]
    record = json.loads((mp4 / "samples.json").read_text())
    assert record["status"] == "complete" and record["num_videos"] == 3 and len(record["labels"]) == 3


def test_sample_refuses_other_settings_unless_allowed(run_dir, tmp_path, capsys):
    out = tmp_path / "s"
    common = ["--ckpt", run_dir, "--out", out, "--steps", 4, "--no-progress", "--format", "png"]
    assert _cli("sample", *common, "--num-videos", 2) == 0
    before = _tree(out)
    assert _cli("sample", *common, "--num-videos", 3, "--seed", 1, "--sampler", "ddpm") == 2
    err = capsys.readouterr().err  # the demo checkpoint's default sampler is ddim
    assert "seed 0 -> 1" in err and "sampler 'ddim' -> 'ddpm'" in err and err.count("\n") == 1
    assert _tree(out) == before and not (out / "000002").exists()  # refused before any work
    assert json.loads((out / "samples.json").read_text())["seed"] == 0
    assert _cli("sample", *common, "--num-videos", 3, "--seed", 1, "--allow-settings-change") == 0
    record = json.loads((out / "samples.json").read_text())
    assert record["seed"] == 1 and record["settings_changes"] == [{"changed": {"seed": [0, 1]}, "videos_before": 2}]
    # a folder of videos without a record is refused too
    (out / "samples.json").unlink()
    assert _cli("sample", *common, "--num-videos", 3) == 2
    assert "no samples.json" in capsys.readouterr().err


def test_sample_records_the_checkpoint_file_of_a_run_folder(run_dir, tmp_path):
    from latte_bench.fsutil import sha256_file

    assert _cli("sample", "--ckpt", run_dir, "--num-videos", 1, "--out", tmp_path, "--steps", 2, "--no-progress",
                "--format", "npz") == 0
    record = json.loads((tmp_path / "samples.json").read_text())
    ckpt = latest_checkpoint(run_dir)
    assert record["checkpoint"] == str(ckpt.resolve()) and record["checkpoint_sha256"] == sha256_file(ckpt)
    assert record["checkpoint_step"] == 2 and record["ckpt_argument"] == str(run_dir)


def test_npz_rerun_counts_what_the_file_holds(run_dir, tmp_path, capsys):
    common = ["--ckpt", run_dir, "--steps", 4, "--no-progress", "--format", "npz"]
    assert _cli("sample", *common, "--out", tmp_path / "n", "--num-videos", 2) == 0
    capsys.readouterr()
    assert _cli("sample", *common, "--out", tmp_path / "n", "--num-videos", 3) == 0
    assert "3 videos in" in capsys.readouterr().out
    assert _cli("sample", *common, "--out", tmp_path / "n", "--num-videos", 2) == 0
    assert "(2 of the 2 asked were already there)" in capsys.readouterr().out
    with np.load(tmp_path / "n" / "videos.npz") as z:
        grown = z["videos"]
    assert _cli("sample", *common, "--out", tmp_path / "direct", "--num-videos", 3) == 0
    with np.load(tmp_path / "direct" / "videos.npz") as z:
        assert np.array_equal(grown, z["videos"])
    assert json.loads((tmp_path / "n" / "samples.json").read_text())["num_videos"] == 3


def test_sample_into_unwritable_folder_is_one_line(run_dir, unwritable, capsys):
    assert _cli("sample", "--ckpt", run_dir, "--num-videos", 1, "--out", unwritable, "--no-progress") == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and err.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt, kills", [("png", 2), ("npz", 1), ("mp4", 1)])
def test_sample_killed_at_random_moments_then_rerun_is_bit_identical(run_dir, tmp_path, fmt, kills):
    rng = random.Random(f"sample-{fmt}")
    common = ["sample", "--ckpt", run_dir, "--num-videos", 6, "--steps", 60, "--batch-size", 1, "--format", fmt,
              "--threads", 1, "--no-progress"]
    out = tmp_path / "killed"
    started = lambda: any(out.glob("00000*")) or (out / ".parts").is_dir() or (out / "videos.npz").exists()  # noqa: E731
    killed = 0
    for _ in range(kills):
        killed += _kill_when(_spawn(*common, "--out", out), started, rng.uniform(0.0, 0.6))
    assert killed, "the run always finished before the kill"
    assert _cli(*common, "--out", out) == 0
    assert _cli(*common, "--out", tmp_path / "whole") == 0
    assert _tree(out) == _tree(tmp_path / "whole")
    assert not [p for p in out.rglob("*") if is_temporary(p.name)]
    assert len(open_videos(out if fmt != "npz" else out / "videos.npz")) == 6


# ============================================================================ train


def _tiny_train(out, *extra):
    return ["train", "demo", "--out", out, *TINY_FLAGS, *map(str, extra)]


def test_resume_refuses_other_settings_unless_allowed(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(*_tiny_train(out, "--steps", 2, "--ckpt-every", 2)) == 0
    config = (out / "config.json").read_text()
    assert _cli(*_tiny_train(out, "--steps", 4, "--lr", 0.01, "--seed", 5, "--batch-size", 2, "--resume")) == 2
    err = capsys.readouterr().err
    lr = preset("demo").lr
    for part in (f"lr {lr} -> 0.01", "seed 0 -> 5", "global_batch 4 -> 2", "batch_size 4 -> 2", "--allow-config-change"):
        assert part in err, part
    assert err.count("\n") == 1 and (out / "config.json").read_text() == config
    assert latest_checkpoint(out).name == "0000002.pt"
    # more steps is not a change of settings; a changed lr is, when allowed, and then recorded
    assert _cli(*_tiny_train(out, "--steps", 3, "--ckpt-every", 1, "--lr", 0.01, "--resume", "--allow-config-change")) == 0
    changes = json.loads((out / "config.json").read_text())["config_changes"]
    assert changes == [{"step": 2, "changed": {"lr": [lr, 0.01]}}]
    assert load_checkpoint(latest_checkpoint(out))["config"]["config_changes"] == changes
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r for r in records if r.get("event") == "resume"][0]["config_changed"] == {"lr": [lr, 0.01]}
    assert _cli(*_tiny_train(out, "--steps", 4, "--lr", 0.01, "--resume")) == 0  # the new settings are the run's now


def test_bad_checkpoints_on_resume_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(*_tiny_train(out, "--steps", 2, "--ckpt-every", 1)) == 0
    latest = out / "checkpoints" / "0000002.pt"
    good = latest.read_bytes()
    for content, expected in ((b"", "is empty"), (good[: len(good) // 3], "cannot load checkpoint")):
        latest.write_bytes(content)
        assert _cli(*_tiny_train(out, "--steps", 3, "--resume")) == 2
        err = capsys.readouterr().err
        assert str(latest) in err and expected in err and "delete it to resume from 0000001.pt" in err, err
        assert err.count("\n") == 1
    latest.write_bytes(good)
    # a changed architecture, even when changes are allowed, cannot load the weights
    assert _cli(*_tiny_train(out, "--steps", 3, "--resume", "--allow-config-change", "--model-options",
                             '{"hidden_size": 48}')) == 2
    err = capsys.readouterr().err
    assert "do not fit the model" in err and str(latest) in err and err.count("\n") == 1


def test_leftover_checkpoint_temporaries_are_removed_on_start(tmp_path):
    out = tmp_path / "run"
    assert _cli(*_tiny_train(out, "--steps", 1)) == 0
    stale = out / "checkpoints" / ".0000002.pt.q8w7e6r5.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    assert _cli(*_tiny_train(out, "--steps", 2, "--resume")) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["0000001.pt", "0000002.pt"]


def test_train_into_unwritable_folder_is_one_line(unwritable, capsys):
    assert _cli(*_tiny_train(unwritable / "run", "--steps", 1)) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and err.count("\n") == 1


@pytest.mark.slow
def test_train_killed_at_random_moments_then_resumed_is_bit_identical(tmp_path):
    rng = random.Random("train")
    flags = ["--steps", 40, "--ckpt-every", 5, "--log-every", 1]
    out = tmp_path / "killed"
    first = lambda: latest_checkpoint(out) is not None  # noqa: E731
    killed = 0
    for attempt in range(2):
        killed += _kill_when(_spawn(*_tiny_train(out, *flags, *(["--resume"] if attempt else []))), first,
                             rng.uniform(0.0, 2.0))
    assert killed, "the run always finished before the kill"
    assert _cli(*_tiny_train(out, *flags, "--resume")) == 0
    assert _cli(*_tiny_train(tmp_path / "whole", *flags)) == 0
    a, b = load_checkpoint(latest_checkpoint(out)), load_checkpoint(latest_checkpoint(tmp_path / "whole"))
    assert a["step"] == b["step"] == 40
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not [p for p in (out / "checkpoints").iterdir() if is_temporary(p.name)]

    def losses(run):
        return [(r["step"], r["loss"]) for r in map(json.loads, open(run / "metrics.jsonl")) if "loss" in r]

    assert losses(out) == losses(tmp_path / "whole")  # the crashed runs' extra records were dropped


# ============================================================================ evaluation
# Also tested elsewhere: an unwritable --json folder and `eval --ckpt notes.txt` are one line before any
# work (test_eval_ckpt.py), an interrupted sample folder is refused (test_eval_cli.py).


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A 2-step model of the demo dataset's classes, making 9-frame videos (the I3D's minimum)."""
    import dataclasses

    out = tmp_path_factory.mktemp("eval_fault_run") / "run"
    cfg = dataclasses.replace(preset("demo"), out=str(out), steps=2, num_frames=9, demo_videos=8, ckpt_every=2,
                              model_options={"hidden_size": 32, "depth": 2, "num_heads": 2})
    train(cfg, progress=False)
    return out


@pytest.mark.slow
def test_tampered_real_statistics_cache_is_recomputed(tmp_path):

    real, fake = waves(2, 9, seed=0), waves(2, 9, seed=1)
    kw = dict(num_clips=2, num_frames=9, cache_dir=str(tmp_path / "cache"), device="cpu", progress=False)
    first = evaluate(real, fake, **kw)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    with np.load(entry) as z:
        arrays = dict(z)
    arrays["s2"] = arrays["s2"] * 3.0  # scale the stored second moments, keep the old checksum
    np.savez(entry, **arrays)
    with pytest.warns(UserWarning, match="checksum"):
        second = evaluate(real, fake, **kw)
    assert second.provenance["real_stats_cache"]["hit"] is False and second.fvd == first.fvd
    third = evaluate(real, fake, **kw)  # the recomputed entry was stored again, intact
    assert third.provenance["real_stats_cache"]["hit"] is True and third.fvd == first.fvd

    # an entry that cannot be read (another user's file, here a folder in its place) is recomputed, and
    # when it cannot be stored either the evaluation still ends with its number
    entry.unlink()
    entry.mkdir()
    with pytest.warns(UserWarning, match="unusable|cannot store"):
        fourth = evaluate(real, fake, **kw)
    assert fourth.fvd == first.fvd and fourth.provenance["real_stats_cache"]["hit"] is False


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys
    from latte_bench.metrics import CheckpointSource, evaluate
    run, work = sys.argv[1:3]
    evaluate(None, CheckpointSource(run, sampler="ddim", steps=40), dataset="demo", num_clips=3, num_frames=9,
             block_size=1, work_dir=work, torch_threads=1, progress=False, metrics=("fvd",))
    """
)


@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_same_number(demo_run, tmp_path):
    work = tmp_path / "work"
    kw = dict(dataset="demo", num_clips=3, num_frames=9, block_size=1, torch_threads=1, progress=False, metrics=("fvd",))
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(demo_run), str(work)], env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (work / "block_00000.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "block_00002.json").exists()  # killed part-way

    resumed = evaluate(None, CheckpointSource(demo_run, sampler="ddim", steps=40), work_dir=str(work), **kw)
    assert resumed.record["run"]["resumed_blocks"] >= 1
    fresh = evaluate(None, CheckpointSource(demo_run, sampler="ddim", steps=40), work_dir=str(tmp_path / "fresh"), **kw)
    assert fresh.record["run"]["resumed_blocks"] == 0
    assert resumed.fvd == fresh.fvd

    with pytest.raises(UserError, match=r"work folder of another evaluation.*steps"):
        evaluate(None, CheckpointSource(demo_run, sampler="ddim", steps=41), work_dir=str(work), **kw)


@pytest.mark.slow
def test_eval_killed_at_random_moments_then_rerun_gives_the_same_number(demo_run, tmp_path):
    rng = random.Random("eval")
    common = ["eval", "--dataset", "demo", "--ckpt", demo_run, "--num-clips", 3, "--num-frames", 9, "--block-size", 1,
              "--sampler", "ddim", "--steps", 30, "--threads", 1, "--no-progress", "--metrics", "fvd,kvd"]
    work = tmp_path / "work"
    started = lambda: (work / "manifest.json").exists()  # noqa: E731
    killed = 0
    for _ in range(2):
        killed += _kill_when(_spawn(*common, "--work-dir", work, "--json", tmp_path / "killed.json"), started,
                             rng.uniform(0.0, 2.0))
    assert killed, "the evaluation always finished before the kill"
    assert not (tmp_path / "killed.json").exists()
    assert _cli(*common, "--work-dir", work, "--json", tmp_path / "killed.json") == 0
    assert _cli(*common, "--work-dir", tmp_path / "whole", "--json", tmp_path / "whole.json") == 0
    resumed, whole = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("killed", "whole"))
    assert resumed["metrics"] == whole["metrics"]
    assert not [p for p in work.rglob("*") if is_temporary(p.name)]


# ============================================================================ issue 20, items 1-2: frame order, array shapes
# Frame files play in the order of the number in their names, in every reader (eval, training sets, `data check`);
# an array is read only when it is (N,T,H,W,3) with H, W >= 8. Unit cases: test_video.py, test_datasets.py.


def test_a_frame_folder_with_a_missing_frame_is_refused_by_eval_and_listed_by_data_check(tmp_path, capsys):
    root = tmp_path / "taichi" / "frames" / "train"
    for i, video in enumerate(waves(2, 16, seed=0, size=16)):
        (root / f"v{i}").mkdir(parents=True)
        for t, frame in enumerate(video):
            Image.fromarray(frame).save(root / f"v{i}" / f"frame_{t}.png")
    np.testing.assert_array_equal(open_videos(root)[1].read(range(16)), waves(2, 16, seed=0, size=16)[1])
    (root / "v1" / "frame_5.png").unlink()
    write_npz(tmp_path / "fake.npz", waves(2, 16, seed=1, size=16))
    assert _cli("eval", "--real", root, "--fake", tmp_path / "fake.npz", "--num-clips", 2, "--allow-fewer") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"latte-bench: error: {root / 'v1'}: frame numbers jump from 4 to 6") and "\n" not in err
    assert _cli("data", "check", "taichi", "--data", tmp_path / "taichi") == 1
    out = capsys.readouterr().out
    assert "1 readable listed, 1 could not be opened" in out and "skipped: v1: " in out and "jump from 4 to 6" in out


def test_a_one_channel_single_video_is_refused_not_read_as_t_videos(tmp_path, capsys):
    """(T,H,W,1) was read as T grayscale videos of H frames at W x 1 pixels, and scored."""
    video = waves(1, 16, seed=0, size=32)[0, ..., :1]
    np.save(tmp_path / "one.npy", video)
    write_npz(tmp_path / "real.npz", waves(2, 16, seed=1, size=32))
    assert _cli("eval", "--real", tmp_path / "real.npz", "--fake", tmp_path / "one.npy", "--num-clips", 2) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"latte-bench: error: {tmp_path / 'one.npy'}: array shape (16, 32, 32, 1)") and "\n" not in err
    assert "(N,T,H,W,3)" in err and "video[None]" in err
    for bad in (video, video[None], np.repeat(video[None], 4, axis=-1), waves(2, 16, seed=1, size=32)[:, :, :4]):
        with pytest.raises(UserError, match=r"fake array: array shape .*expected uint8 videos \(N,T,H,W,3\)"):
            evaluate(waves(2, 16, seed=1, size=32), bad, num_clips=2, allow_fewer=True, progress=False, cache=False)


# ============================================================================ issue 20 items 4-10
# The evaluation path's keys and outputs: real statistics cached and records reused only for the same real
# content; work folders and their blocks used only by the evaluation they belong to; every output and work
# folder checked before the first clip is read; every write failure one line, the result never lost.


def _same_size_rewrite(path: Path, write) -> None:
    """Rewrite ``path`` with ``write(path)`` (other content of the same size), then restore its mtime (as cp -p does)."""
    st = path.stat()
    write(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_a_real_array_rewritten_with_its_size_and_mtime_is_not_served_from_the_cache(tmp_path):
    """Item 4: the .npz of other content, same size and restored mtime, gave the old cached FVD."""
    real = tmp_path / "real.npz"
    write_npz(real, waves(2, 9, seed=0))
    fake = waves(2, 9, seed=1)
    kw = dict(num_clips=2, num_frames=9, cache_dir=str(tmp_path / "cache"), progress=False, torch_threads=1)
    first = evaluate(str(real), fake, **kw)
    _same_size_rewrite(real, lambda p: write_npz(p, waves(2, 9, seed=2)))
    cached = evaluate(str(real), fake, **kw)
    fresh = evaluate(str(real), fake, **{**kw, "cache": False})
    assert cached.provenance["real_stats_cache"]["hit"] is False
    assert cached.fvd == fresh.fvd and fresh.fvd != first.fvd
    assert evaluate(str(real), fake, **kw).provenance["real_stats_cache"]["hit"] is True  # unchanged: cached


def test_a_swapped_frame_of_equal_size_changes_the_fingerprint_of_a_folder(tmp_path):
    """Item 4: a frame folder's key samples the content (first and last frame of each sampled video)."""
    videos = waves(3, 4, seed=0, size=16)
    for i, video in enumerate(videos):
        (tmp_path / f"v{i}").mkdir()
        for t, frame in enumerate(video):
            Image.fromarray(frame).save(tmp_path / f"v{i}" / f"{t:02d}.png", compress_level=0)  # size: pixels only
    before = open_videos(tmp_path).fingerprint()
    assert open_videos(tmp_path).fingerprint() == before
    for last in (tmp_path / "v1" / "03.png", tmp_path / "v2" / "00.png"):
        _same_size_rewrite(last, lambda p: Image.fromarray(videos[0, 0]).save(p, format="PNG", compress_level=0))
        assert open_videos(tmp_path).fingerprint() != before
        before = open_videos(tmp_path).fingerprint()


def _demo_eval(run, work, seed=0, **kw):
    """The tiny demo checkpoint scored on 2 videos in blocks of 1 (2 blocks), kept in ``work``."""
    settings = dict(dataset="demo", num_clips=2, num_frames=9, block_size=1, torch_threads=1, progress=False,
                    metrics=("fvd",), work_dir=str(work), cache_dir=str(Path(work).parent / "cache"))
    return evaluate(None, CheckpointSource(run, sampler="ddim", steps=5, seed=seed), **{**settings, **kw})


def test_a_work_folder_without_a_readable_manifest_is_refused(demo_run, tmp_path):
    """Item 6: with manifest.json deleted or emptied, a seed-1 run resumed from the blocks of seed 0."""
    work = tmp_path / "work"
    _demo_eval(demo_run, work, seed=0)
    for damage in (lambda p: p.unlink(), lambda p: p.write_text("")):
        damage(work / "manifest.json")
        with pytest.raises(UserError, match=r"work.*blocks but no readable manifest\.json.*delete that folder"):
            _demo_eval(demo_run, work, seed=1)


def test_a_block_or_cache_entry_copied_under_another_key_is_recomputed(demo_run, tmp_path):
    """Item 6: a block (or cache entry) copied, checksum and all, under another key was accepted."""
    a, b = tmp_path / "a", tmp_path / "b"
    _demo_eval(demo_run, a, seed=0)
    fresh = _demo_eval(demo_run, b, seed=1)
    for ext in (".npz", ".json"):
        (b / f"block_00000{ext}").write_bytes((a / f"block_00000{ext}").read_bytes())  # another evaluation's
    with pytest.warns(UserWarning, match="another evaluation"):
        again = _demo_eval(demo_run, b, seed=1)
    assert again.fvd == fresh.fvd and again.record["run"]["resumed_blocks"] == 1

    kw = dict(num_clips=2, num_frames=9, cache_dir=str(tmp_path / "cache2"), progress=False, torch_threads=1)
    fake = waves(2, 9, seed=1)
    evaluate(waves(2, 9, seed=0), fake, **kw)
    second = evaluate(waves(2, 9, seed=3), fake, **kw)
    first_entry, second_entry = sorted((tmp_path / "cache2").glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
    for ext in (".npz", ".json"):
        second_entry.with_suffix(ext).write_bytes(first_entry.with_suffix(ext).read_bytes())
    with pytest.warns(UserWarning, match="another evaluation"):
        third = evaluate(waves(2, 9, seed=3), fake, **kw)
    assert third.fvd == second.fvd and third.provenance["real_stats_cache"]["hit"] is False


def test_an_in_memory_model_is_keyed_by_its_weights(demo_run, tmp_path):
    """Item 7: a model in memory (the trainer's periodic FVD) was keyed by its step and name only, so another
    run's model reached the same work folder and resumed from its blocks."""
    import copy

    loaded = CheckpointSource(demo_run).load("cpu")
    checkpoint = {"path": None, "sha256": None, "step": 7, "weights": "ema", "model": "tiny"}

    def in_memory(model):
        return CheckpointSource.from_model(model, loaded._space, loaded.loaded.info, checkpoint, sampler="ddim", steps=5)

    other = copy.deepcopy(loaded.loaded.model)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(0.05)
    kw = dict(dataset="demo", num_clips=2, num_frames=9, block_size=1, torch_threads=1, progress=False,
              metrics=("fvd",), cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "work"))
    first = evaluate(None, in_memory(loaded.loaded.model), **kw)
    with pytest.raises(UserError, match=r"work folder of another evaluation.*weights_sha256"):
        evaluate(None, in_memory(other), **kw)
    same = evaluate(None, in_memory(copy.deepcopy(loaded.loaded.model)), **kw)  # equal weights: a true resume
    assert same.record["run"]["resumed_blocks"] == 2 and same.fvd == first.fvd
    default = {k: v for k, v in kw.items() if k != "work_dir"}
    fresh_other = evaluate(None, in_memory(other), **default)
    assert fresh_other.fvd != first.fvd and fresh_other.record["run"]["resumed_blocks"] == 0


def test_work_folders_are_checked_before_the_first_clip_is_read(unwritable, tmp_path):
    """Item 8: an unwritable --work-dir, or one made with other settings, was refused only after the real pass."""
    read = []

    def real():  # a source of real videos that notes when it is read
        read.append(True)
        yield waves(2, 9, seed=0)

    fake = waves(2, 9, seed=1)
    kw = dict(num_clips=2, num_frames=9, progress=False, torch_threads=1, cache=False)
    with pytest.raises(UserError, match=r"cannot write there.*choose another work_dir"):
        evaluate(real, fake, work_dir=str(unwritable / "work"), **kw)
    assert read == []
    evaluate(real, fake, work_dir=str(tmp_path / "work"), **kw)
    read.clear()
    with pytest.raises(UserError, match=r"work folder of another evaluation.*num_clips"):
        evaluate(real, fake, work_dir=str(tmp_path / "work"), **{**kw, "num_clips": 3, "allow_fewer": True})
    assert read == []


def test_save_samples_is_refused_on_a_resumed_evaluation(demo_run, tmp_path):
    """Item 9: a resumed evaluation with --save-samples saved only the recomputed blocks, yet listed saved_samples."""
    work, saved = tmp_path / "work", tmp_path / "saved"
    first = _demo_eval(demo_run, work)
    with pytest.raises(UserError, match=r"2 finished block.*save_samples.*rerun without save_samples"):
        _demo_eval(demo_run, work, save_samples=str(saved))
    assert not saved.exists()  # refused before anything was made
    assert _demo_eval(demo_run, work).fvd == first.fvd  # the resume itself is untouched
    fresh = _demo_eval(demo_run, tmp_path / "new", save_samples=str(saved))  # a new folder saves every video
    assert sorted(p.name for p in saved.iterdir()) == ["000000", "000001"] and fresh.fvd == first.fvd


class _FileSizeLimit:
    """A real write failure: RLIMIT_FSIZE makes every write past ``limit`` bytes of a file fail with EFBIG
    (``File too large``), as a full disk fails with ENOSPC; restored on exit."""

    def __init__(self, limit: int):
        self.limit = limit

    def __enter__(self):
        import resource

        self.before = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.before[1]))

    def __exit__(self, *exc):
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, self.before)
        signal.signal(signal.SIGXFSZ, self.handler)


def test_write_failures_at_the_end_are_one_line_and_lose_no_work(demo_run, tmp_path, capsys):
    """Item 10: --json at a folder raised IsADirectoryError after the table (the default work folder already
    removed); a full disk gave OSError tracebacks from --json and from work blocks."""
    write_npz(tmp_path / "real.npz", waves(2, 9, seed=0))
    write_npz(tmp_path / "fake.npz", waves(2, 9, seed=1))
    common = ["eval", "--real", tmp_path / "real.npz", "--fake", tmp_path / "fake.npz", "--num-clips", 2, "--num-frames", 9,
              "--threads", 1, "--no-progress", "--no-cache"]
    (tmp_path / "folder").mkdir()
    assert _cli(*common, "--json", tmp_path / "folder") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == (
        f"latte-bench: error: {tmp_path / 'folder'}: is a folder; --json names the record file to write, "
        f"e.g. --json {tmp_path / 'folder' / 'record.json'}")

    for argv, limit, failed in ((["--json", tmp_path / "r.json"], 1000, tmp_path / "r.json"),
                                (["--work-dir", tmp_path / "work"], 1 << 16, tmp_path / "work" / "block_00000.npz")):
        with _FileSizeLimit(limit):
            code = _cli(*common, *argv)
        err = capsys.readouterr().err.strip()
        assert code == 2 and err == f"latte-bench: error: {failed}: cannot write (File too large); " + err.split("; ", 1)[1]
        assert "\n" not in err and not failed.exists()

    # the default work folder of a checkpoint goes only once the record is delivered: a failed --json keeps it
    def refuse(record):
        raise UserError("the record could not be written")

    kw = dict(dataset="demo", num_clips=2, num_frames=9, block_size=1, torch_threads=1, progress=False,
              metrics=("fvd",), cache_dir=str(tmp_path / "cache"))
    source = lambda: CheckpointSource(demo_run, sampler="ddim", steps=5)  # noqa: E731
    with pytest.raises(UserError, match="could not be written"):
        evaluate(None, source(), on_record=refuse, **kw)
    (work,) = (tmp_path / "cache").glob("*/manifest.json")
    again = evaluate(None, source(), **kw)
    assert again.record["run"]["resumed_blocks"] == 2 and not work.exists()
# ============================================================================ issue 20 items 3, 10-14
# Non-finite weights, samples and losses; write failures; the demo's worker; flag values; output folders; library noise.


def _one_line(capsys) -> str:
    """The stderr of the last command: exactly one `latte-bench: error:` line (returned without the prefix)."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("latte-bench: error: "), err
    return err.strip().removeprefix("latte-bench: error: ")


@pytest.fixture
def nan_checkpoint(run_dir, tmp_path):
    """The tiny run's checkpoint with one EMA tensor set to NaN (a diverged run's EMA)."""
    ckpt = load_checkpoint(latest_checkpoint(run_dir))
    ckpt["ema"]["final_layer.linear.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(ckpt, path)
    return path


def test_a_checkpoint_with_nan_weights_is_refused_by_sample_and_eval(nan_checkpoint, tmp_path, capsys):
    """A NaN EMA sampled all-black videos, which `eval --ckpt` scored (FVD 1016.86, exit 0) and `sample` wrote."""
    out = tmp_path / "samples"
    assert _cli("sample", "--ckpt", nan_checkpoint, "--num-videos", 2, "--out", out, "--steps", 4, "--threads", 1,
                "--no-progress") == 2
    err = _one_line(capsys)
    assert err.startswith(f"{nan_checkpoint} (ema weights): tensor final_layer.linear.weight holds NaN values")
    assert not out.exists() or not any(out.iterdir())
    assert _cli("eval", "--dataset", "demo", "--ckpt", nan_checkpoint, "--num-clips", 2, "--steps", 4, "--threads", 1,
                "--no-progress", "--allow-fewer") == 2
    assert "tensor final_layer.linear.weight holds NaN values" in _one_line(capsys)
    assert _cli("sample", "--ckpt", nan_checkpoint, "--weights", "model", "--num-videos", 1, "--out", out, "--steps", 2,
                "--threads", 1, "--no-progress", "--format", "npz") == 0  # the other weights are finite
    capsys.readouterr()


def test_a_model_whose_output_becomes_inf_while_sampling_writes_nothing(run_dir, tmp_path):
    from latte_bench.training.latents import LatentSpace
    from latte_bench.training.checkpoint import load_model
    from latte_bench.training.sampling import sample_videos

    loaded = load_model(run_dir)

    class Diverging(torch.nn.Module):
        """The loaded model, whose output is Inf from its third call on."""

        def __init__(self, model):
            super().__init__()
            self.inner, self.calls = model, 0

        def forward(self, *args, **kwargs):
            self.calls += 1
            out = self.inner(*args, **kwargs)
            return out if self.calls < 3 else out * float("inf")

    model = Diverging(loaded.model).eval()
    for fmt in ("png", "npz", "mp4"):  # unclipped x_0, as for VAE latents (a clamp to [-1, 1] would hide the Inf)
        out = tmp_path / fmt
        with pytest.raises(UserError, match=r"sampled latents of 2 video\(s\) \(video 0 first\) hold NaN or Inf"):
            sample_videos(model, LatentSpace(None), out, 2, loaded.latent_shape, fmt=fmt, batch_size=2, steps=5,
                          num_classes=2, progress=False, clip_denoised=False, **loaded.diffusion_options)
        assert not [p for p in out.rglob("*") if p.is_file()]
        model.calls = 0


def test_a_nan_loss_stops_training_before_a_checkpoint_is_written(tmp_path, capsys):
    """A diverged run reported `trained to step N  loss nan` and wrote checkpoints of NaN weights."""
    out = tmp_path / "run"
    assert _cli("train", "demo", *TINY_FLAGS, "--steps", 6, "--lr", 1e30, "--clip-max-norm", 1e30, "--ckpt-every", 1,
                "--out", out) == 2
    err = _one_line(capsys)
    assert err.startswith("training diverged at step 2: loss ")
    assert f"the last checkpoint, {out / 'checkpoints' / '0000001.pt'}, is kept" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["0000001.pt"]
    ckpt = load_checkpoint(out / "checkpoints" / "0000001.pt")
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["ema"].values())
    bad = dict(ckpt, ema={**ckpt["ema"], "pos_embed": ckpt["ema"]["pos_embed"] * float("inf")})
    torch.save(bad, out / "checkpoints" / "0000001.pt")
    assert _cli("train", "demo", *TINY_FLAGS, "--steps", 6, "--ckpt-every", 1, "--out", out, "--resume") == 2
    assert "(ema): tensor pos_embed holds" in _one_line(capsys)


def test_a_full_disk_while_sampling_or_training_is_one_line_and_leaves_no_data(run_dir, tmp_path, capsys, monkeypatch):
    """Item 10: a write failure in `sample --format png/mp4` was an OSError traceback, and in a training checkpoint
    torch's `RuntimeError: unexpected pos`."""
    from latte_bench.training import checkpoint, sampling

    full = _FileSizeLimit(100)  # smaller than any frame or video file
    begin_record = sampling.begin_record

    def the_disk_fills_after_the_record(*args, **kwargs):  # samples.json is written, the first video is not
        record = begin_record(*args, **kwargs)
        full.__enter__()
        return record

    monkeypatch.setattr(sampling, "begin_record", the_disk_fills_after_the_record)
    for fmt, first in (("png", "000000"), ("mp4", "000000.mp4")):
        out = tmp_path / fmt
        argv = ["sample", "--ckpt", run_dir, "--num-videos", 2, "--out", out, "--steps", 2, "--threads", 1, "--no-progress",
                "--format", fmt]
        try:
            code = _cli(*argv)
        finally:
            full.__exit__()
        assert code == 2
        assert _one_line(capsys) == f"{out / first}: cannot write (File too large); {sampling.WRITE_WAY_OUT}"
        assert [p.name for p in out.rglob("*")] == ["samples.json"]  # no temporary, no folder of some frames
        assert json.loads((out / "samples.json").read_text())["status"] == "sampling"  # eval refuses the folder
        monkeypatch.setattr(sampling, "begin_record", begin_record)
        assert _cli(*argv) == 0 and sampling.count_done(out, fmt, 4) == 2  # the same command finishes the set
        monkeypatch.setattr(sampling, "begin_record", the_disk_fills_after_the_record)
    capsys.readouterr()

    out = tmp_path / "run"
    with _FileSizeLimit(20_000):  # config.json and the log fit, a checkpoint does not
        code = _cli("train", "demo", *TINY_FLAGS, "--steps", 2, "--out", out)
    assert code == 2
    assert _one_line(capsys) == (f"{out / 'checkpoints' / '0000002.pt'}: cannot write (File too large); "
                                 f"{checkpoint.RUN_WRITE_WAY_OUT}")
    assert list((out / "checkpoints").iterdir()) == []


def _running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (a dead child nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("way", ["the demo's pool", "parent-death signal alone", "getppid poll alone"])
def test_the_demo_worker_dies_with_a_killed_demo(way):
    """Item 11: after `kill -9` of `latte-bench demo`, its worker process went on writing into the output folder
    for up to 13 s while a rerun started."""
    script = textwrap.dedent(f"""
        import multiprocessing, os, time
        from latte_bench.reports.demo import _background, die_with_parent

        if {way!r} == "the demo's pool":
            background = _background()
            pool = background.__enter__()
        else:
            ways = (True, False) if {way!r} == "parent-death signal alone" else (False, True)
            pool = multiprocessing.get_context("spawn").Pool(1, die_with_parent, (os.getpid(), *ways))
        print(pool.apply(os.getpid), flush=True)
        pool.apply_async(time.sleep, (120,))  # the worker is busy, as while it trains the comparison model
        time.sleep(120)
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    demo = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    try:
        worker = int(demo.stdout.readline())
        assert _running(worker)
    finally:
        demo.kill()
        demo.wait()
    end = time.time() + 5
    while _running(worker) and time.time() < end:
        time.sleep(0.05)
    assert not _running(worker), f"worker {worker} still running 5 s after its demo was killed"


@pytest.mark.parametrize("argv", [
    ["train", "demo", "--steps", "0"], ["train", "demo", "--steps", "-5"], ["sample", "--ckpt", "x", "--num-videos", "1",
    "--out", "x", "--steps", "0"], ["eval", "--dataset", "demo", "--ckpt", "x", "--steps", "0"], ["demo", "--steps", "-5"],
])
def test_a_step_count_below_one_is_refused_by_every_command_in_one_line(argv, tmp_path, capsys, monkeypatch):
    """Item 12: `train demo --steps 0` (or -5) reported `trained to step 0  loss nan` and left a run folder without a
    checkpoint. One check (`errors.check_int`, through `cli.AtLeast`) refuses it while parsing, before any work."""
    monkeypatch.chdir(tmp_path)
    assert _cli(*argv) == 2
    assert _one_line(capsys) == f"--steps must be an integer >= 1, got {int(argv[-1])}"
    assert list(tmp_path.iterdir()) == []  # no run folder, no --out


def test_the_trainer_refuses_zero_steps_from_python_too(tmp_path):
    import dataclasses

    with pytest.raises(UserError, match="^steps must be an integer >= 1, got 0$") as caught:  # the same check, for the API
        train(dataclasses.replace(preset("demo"), steps=0, out=str(tmp_path / "run")), progress=False)
    from latte_bench.commands.flags import cli_name

    assert caught.value.render(cli_name) == "--steps must be an integer >= 1, got 0"  # and as the command line names it
    assert list(tmp_path.iterdir()) == []


def test_demo_and_analyze_into_a_read_only_folder_are_one_line(run_dir, unwritable, capsys):
    """Item 12: `demo --out` and `analyze similarity --out` on a read-only folder were OSError tracebacks."""
    for out in (unwritable, unwritable / "new"):
        assert _cli("demo", "--quick", "--out", out) == 2
        assert _one_line(capsys).startswith(f"{out}: cannot write there (")
        assert _cli("analyze", "similarity", "--ckpt", run_dir, "--num-videos", 1, "--out", out) == 2
        assert _one_line(capsys).startswith(f"{out}: cannot write there (")


def test_a_failed_command_leaves_no_output_folder(run_dir, tmp_path, capsys, monkeypatch):
    """Item 13: `sample` with a bad checkpoint or an unknown preset left an empty --out behind, and `report curves
    /nonexistent` created ./reports: outputs are checked for writing without being made (`fsutil.check_writable`)."""
    bad, official = tmp_path / "bad.pt", tmp_path / "official.pt"
    bad.write_bytes(b"not a checkpoint")
    assert _cli("export-official", "--ckpt", run_dir, "--out", official) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    sample = ["sample", "--num-videos", 1, "--steps", 2, "--threads", 1, "--no-progress"]
    for argv, error in (
        ([*sample, "--ckpt", bad, "--out", "samples/bad"], f"{bad}: cannot load checkpoint safely"),
        ([*sample, "--ckpt", official, "--preset", "nope", "--out", "samples/nope"], "unknown preset 'nope'"),
        (["report", "curves", "/nonexistent"], "/nonexistent"),
        (["analyze", "similarity", "--ckpt", bad], f"{bad}: cannot load checkpoint safely"),  # --out reports/analysis
        (["train", "demo", *TINY_FLAGS, "--resume", "--out", "run"], "run"),  # nothing to resume
    ):
        assert _cli(*argv) == 2, argv
        assert error in _one_line(capsys)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "official.pt"], argv


def test_library_noise_stays_off_the_terminal_when_a_file_is_refused(run_dir, tmp_path):
    """Item 14: a VAE folder with a bad `.bin` printed eight lines of diffusers output before the one-line error, and a
    raw-pickle `.pt` a two-line torch warning. The real CLI in a subprocess, so that stderr is the terminal's."""
    import pickle

    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(json.dumps({
        "_class_name": "AutoencoderKL", "latent_channels": 4, "block_out_channels": [32, 32], "layers_per_block": 1,
        "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2, "sample_size": 32}))
    (vae / "diffusion_pytorch_model.bin").write_bytes(b"not a pickle")
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"ema": {"weight": {1, 2}}}, protocol=4))  # weights_only refuses a set
    sample = ["sample", "--num-videos", 1, "--out", tmp_path / "out", "--steps", 1, "--threads", 1, "--no-progress"]
    for argv, error in (([*sample, "--ckpt", run_dir, "--vae", vae], f"{vae}: cannot load the VAE (OSError)"),
                        ([*sample, "--ckpt", raw], f"{raw}: cannot load checkpoint safely (UnpicklingError")):
        proc = _spawn(*argv)
        err = proc.stderr.read().decode()
        assert proc.wait() == 2
        assert err.count("\n") == 1 and err.startswith(f"latte-bench: error: {error}"), err
    assert not (tmp_path / "out").exists()


def test_library_noise_is_silenced_only_inside_the_load():
    import logging
    import warnings

    from latte_bench.errors import third_party_quiet

    before = logging.root.manager.disable
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with third_party_quiet():
            warnings.warn("inside")
            assert not logging.getLogger("diffusers").isEnabledFor(logging.CRITICAL)
        warnings.warn("outside")
    assert [str(w.message) for w in seen] == ["outside"]
    assert logging.root.manager.disable == before and logging.getLogger("diffusers").isEnabledFor(logging.WARNING)
