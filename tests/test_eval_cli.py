"""``latte-bench eval``: one-line errors (exit 2) for bad inputs, and an end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latte_bench.cli import main
from synthetic import waves
from latte_bench.data.video import write_npz, write_video
from latte_bench.errors import UserError


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


@pytest.mark.slow
def test_eval_end_to_end_with_skip_bad_cache_and_ckpt(tmp_path, capsys, monkeypatch):
    """Real = a UCF-style tree of mp4 files with one corrupt file; fake = an npz array (2+2 9-frame clips)."""
    real = tmp_path / "real"
    for i, video in enumerate(waves(2, 12, seed=0, size=32)):
        write_video(real / f"Class{i}" / f"v{i}.mp4", video)
    (real / "Class0" / "broken.mp4").write_bytes(b"\x00" * 100)
    write_npz(tmp_path / "fake.npz", waves(2, 9, seed=1, size=32))
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


def test_single_video_file_refused_not_misread(tmp_path, capsys, good_npz):
    np.save(tmp_path / "one.npy", np.zeros((16, 8, 8, 3), np.uint8))  # one video (T, H, W, 3), not 16 grayscale videos
    _run_error(capsys, ["--real", good_npz, "--fake", str(tmp_path / "one.npy")], "one.npy", "one video", "[None]")


def test_data_check_counts_and_names_unreadable_videos(tmp_path, capsys):
    root = tmp_path / "ucf"
    for i, video in enumerate(waves(2, 50, seed=0, size=32)):
        write_video(root / f"Class{i}" / f"v{i}.mp4", video)
    (root / "Class0" / "broken.avi").write_bytes(b"\x00" * 64)
    code = main(["data", "check", "ucf101", "--data", str(root)])
    out = capsys.readouterr().out
    assert code == 1  # something is wrong with this copy
    assert "2 readable listed, 1 could not be opened" in out and "broken.avi" in out
    assert "2 videos have >= 48 frames" in out
    code = main(["data", "check", "demo"])
    out = capsys.readouterr().out
    assert code == 0 and "generated in memory" in out


def test_data_root_from_flag_or_environment(tmp_path, monkeypatch):
    from latte_bench.data.registry import data_root, get_dataset

    monkeypatch.setenv("LATTE_BENCH_DATA", str(tmp_path))
    (tmp_path / "sky").mkdir()
    assert data_root("sky") == tmp_path / "sky"
    assert data_root("sky", tmp_path) == tmp_path
    with pytest.raises(UserError, match="taichi"):
        data_root("taichi")
    assert get_dataset("ucf101").metrics == ("fvd", "is") and get_dataset("taichi").stride == 6
    assert get_dataset("ffs").metrics == ("fvd", "fid") and get_dataset("ucf101").num_classes == 101


@pytest.mark.slow  # the real Inception on 96 frames and one 2048-d Fréchet distance
def test_eval_fid_and_is_through_the_cli(tmp_path, capsys):
    from test_fid import synthetic_c3d

    weights, mean = synthetic_c3d(tmp_path)
    write_npz(tmp_path / "real.npz", waves(2, 16, seed=0, size=24))
    write_npz(tmp_path / "fake.npz", waves(4, 16, seed=1, size=24))
    code = main(["eval", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "fake.npz"), "--metrics", "fid,is",
                 "--num-clips", "4", "--is-splits", "2", "--c3d-weights", str(weights), "--c3d-mean", str(mean),
                 "--no-progress", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert set(record["metrics"]) == {"fid", "is"} and record["metrics"]["fid"] > 0 and record["metrics"]["is"] >= 1
    assert record["counts"] == {"real_frames": 32, "fake_frames": 64, "fake_clips": 4}
    assert "32 frames" in out and "64 frames" in out and "4 clips" in out  # counts for every metric, with units
    assert record["protocol"]["is"]["splits"] == 2 and record["detectors"]["c3d"] and record["detectors"]["inception"]


def test_real_clip_counts_against_each_datasets_protocol():
    from latte_bench.data.registry import real_count_is_standard

    # FaceForensics holds fewer than 2,048 training videos: all of them is StyleGAN-V's min(N, 2048)
    assert real_count_is_standard("ffs", 704, 704, 2048)
    assert not real_count_is_standard("ffs", 700, 704, 2048)  # some long-enough videos were skipped
    assert not real_count_is_standard("ffs", 3, 3, 2048)  # not a complete copy of any benchmark
    assert not real_count_is_standard("ucf101", 1500, 1500, 2048)  # UCF101 always has 2,048
    assert not real_count_is_standard(None, 704, 704, 2048) and real_count_is_standard(None, 2048, 5000, 2048)
    from latte_bench.metrics.evaluation import nonstandard_tags
    from latte_bench.metrics.protocol import Protocol

    assert nonstandard_tags(Protocol(dataset="ffs").resolved(), {"real_clips": 704, "fake_clips": 2048}, ("fvd",),
                            real_long_enough=704) == []
    assert nonstandard_tags(Protocol(dataset="ucf101").resolved(), {"real_clips": 1500, "fake_clips": 2048}, ("fvd",),
                            real_long_enough=1500) == ["1500 real clips"]


def test_unfinished_sample_folders_refused(tmp_path, capsys, good_npz):
    from latte_bench.data.video import write_frames

    folder = tmp_path / "samples"
    write_frames(folder / "000000", np.zeros((16, 8, 8, 3), np.uint8))
    (folder / "samples.json").write_text(json.dumps({"status": "sampling", "num_videos": 4}))
    _run_error(capsys, ["--real", good_npz, "--fake", str(folder), "--num-clips", "2"], "unfinished", "rerun")
    npz = tmp_path / "npz"
    (npz / ".parts").mkdir(parents=True)
    write_npz(npz / "videos.npz", np.zeros((2, 16, 8, 8, 3), np.uint8))  # an interrupted extension of the set
    _run_error(capsys, ["--real", good_npz, "--fake", str(npz), "--num-clips", "2"], "unfinished")


def test_result_names_what_was_computed_and_floats_to_its_headline_value():
    from latte_bench.metrics.evaluation import EvalResult

    r = EvalResult(metrics={"fvd": 12.5, "kvd": -3.0}, record={})
    assert float(r) == 12.5 and r.fvd == 12.5 and r.kvd == -3.0
    with pytest.raises(AttributeError, match=r"is_: is was not computed; this result has fvd, kvd \(pass metrics=\(\.\.\., 'is'\)"):
        r.is_
    with pytest.raises(AttributeError, match="fid was not computed"):
        r.fid
    assert not hasattr(r, "colour")  # other names: plain AttributeError
    assert float(EvalResult(metrics={"fvd": {"value": 7.0, "std": 1.0}}, record={})) == 7.0  # num_runs > 1: the mean
