"""``latte-bench eval``: one-line errors (exit 2) for bad inputs, and an end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latte_bench.cli import main
from latte_bench.data.video import write_npz, write_video


def _run_error(capsys, argv, *needles):
    code = main(["eval", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("latte-bench: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def good_npz(tmp_path):
    path = tmp_path / "good.npz"
    write_npz(path, np.zeros((2, 16, 8, 8, 3), np.uint8))
    return str(path)


def test_missing_and_empty_folders(tmp_path, capsys, good_npz):
    _run_error(capsys, ["--real", str(tmp_path / "missing"), "--fake", good_npz], "missing", "no such file")
    (tmp_path / "empty").mkdir()
    _run_error(capsys, ["--real", good_npz, "--fake", str(tmp_path / "empty")], "empty", "folder is empty")


def test_not_a_video_file(tmp_path, capsys, good_npz):
    (tmp_path / "vids").mkdir()
    (tmp_path / "vids" / "clip.mp4").write_text("not a video")
    _run_error(capsys, ["--real", str(tmp_path / "vids"), "--fake", good_npz], "clip.mp4")


def test_bad_arrays(tmp_path, capsys, good_npz):
    np.save(tmp_path / "float.npy", np.zeros((2, 16, 8, 8, 3), np.float32))
    _run_error(capsys, ["--real", good_npz, "--fake", str(tmp_path / "float.npy")], "float.npy", "uint8")
    np.save(tmp_path / "shape.npy", np.zeros((2, 16, 8, 8, 5), np.uint8))
    _run_error(capsys, ["--real", str(tmp_path / "shape.npy"), "--fake", good_npz], "shape.npy", "(N,T,H,W,3)")


def test_short_generated_video_named(tmp_path, capsys, good_npz):
    write_npz(tmp_path / "short.npz", np.zeros((2, 10, 8, 8, 3), np.uint8))
    _run_error(capsys, ["--real", good_npz, "--fake", str(tmp_path / "short.npz"), "--num-clips", "2"],
               "short.npz[0]", "10 frames")


def test_protocol_flags(tmp_path, capsys, good_npz):
    _run_error(capsys, ["--real", good_npz, "--fake", good_npz, "--num-frames", "8"], "at least 9")
    _run_error(capsys, ["--real", good_npz, "--fake", good_npz, "--metrics", "fvd,nope"], "nope")
    _run_error(capsys, ["--real", good_npz, "--fake", good_npz, "--ckpt", str(tmp_path / "x.pt")], "not both")
    _run_error(capsys, ["--real", good_npz, "--fake", good_npz, "--num-clips", "1"], "--num-clips", ">= 2")
    _run_error(capsys, ["--real", good_npz, "--fake", good_npz, "--dataset", "taichi", "--num-clips", "2"], "96 frames")
    import torch

    if not torch.cuda.is_available():
        _run_error(capsys, ["--real", good_npz, "--fake", good_npz, "--device", "cuda"], "CUDA")


def test_weights_list_names_every_detector(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("i3d", "inception", "c3d_ucf101"):
        assert name in out


def _smooth(n, t, seed, h=32, w=32):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((n, t, h, w, 3), np.uint8)
    for i in range(n):
        fx, fy = rng.uniform(0.05, 0.3, 2)
        for k in range(t):
            base = 127 + 120 * np.sin(fx * x + fy * y + 0.3 * k + i)
            out[i, k] = np.stack([base, base.T, 255 - base], -1).astype(np.uint8)
    return out


@pytest.mark.slow
def test_eval_end_to_end_with_skip_bad_cache_and_ckpt(tmp_path, capsys, monkeypatch):
    """Real = a UCF-style tree of mp4 files with one corrupt file; fake = an npz array (2+2 9-frame clips)."""
    real = tmp_path / "real"
    for i, video in enumerate(_smooth(2, 12, seed=0)):
        write_video(real / f"Class{i}" / f"v{i}.mp4", video)
    (real / "Class0" / "broken.mp4").write_bytes(b"\x00" * 100)
    write_npz(tmp_path / "fake.npz", _smooth(2, 9, seed=1))
    (tmp_path / "model.pt").write_bytes(b"checkpoint bytes")
    common = ["--real", str(real), "--fake", str(tmp_path / "fake.npz"), "--num-clips", "2", "--num-frames", "9",
              "--real-stride", "1", "--device", "cpu"]

    _run_error(capsys, common, "broken.mp4", "--skip-bad")

    out_json = tmp_path / "out" / "record.json"
    code = main(["eval", *common, "--skip-bad", "--batch-size", "2", "--json", str(out_json), "--method", "my model"])
    stdout = capsys.readouterr().out
    assert code == 0
    record = json.loads(out_json.read_text())
    value = record["metrics"]["fvd"]
    assert np.isfinite(value) and value > 0
    assert f"{value:.4f}" in stdout and "fvd" in stdout and "2 clips" in stdout
    prov = record["results"]["fvd"]["provenance"]
    assert record["real"]["skipped_unreadable"] == ["Class0/broken.mp4"]
    assert prov["real_sampling"]["skipped_unreadable"] == 1
    assert record["counts"] == {"real_clips": 2, "fake_clips": 2} and record["method"] == "my model"
    assert record["protocol"]["skip_bad"] is True and record["nonstandard"] == ["2 clips", "9 frames"]
