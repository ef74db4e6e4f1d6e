"""Results store, protocol grouping/refusal, leaderboard assembly, bootstrap CI and training curves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latte_bench.errors import UserError
from latte_bench.reports import leaderboard, published, store
from latte_bench.reports.figures import samples_figure, training_curves_figure, video_grid

I3D = "a" * 64


def _record(method="Latte", dataset="UCF101", seed=0, fvd=400.0, stride=3, clips=2048, i3d=I3D, **extra):
    rec = {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "metrics": {"fvd2048_16f": fvd},
        "protocol": {"num_frames": 16, "real_stride": stride, "resize": "bilinear", "batch_size": 8, "seed": seed},
        "detectors": {"i3d": {"sha256": i3d}},
        "counts": {"real_clips": clips, "fake_clips": clips},
    }
    rec.update(extra)
    return rec


def _write(tmp_path, name, rec):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rec))
    return p


def test_load_records_skips_non_records_and_names_bad_files(tmp_path):
    _write(tmp_path, "a.json", _record(seed=0))
    _write(tmp_path, "sub/b.json", _record(seed=1))
    _write(tmp_path, "config.json", {"lr": 1e-4})  # not a record: skipped
    recs = store.load_records(tmp_path)
    assert [r.seed for r in recs] == [0, 1]
    proto = recs[0].protocol("fvd2048_16f")
    assert proto["real_stride"] == 3
    assert "seed" not in proto and "batch_size" not in proto
    assert proto["detector.i3d"] == I3D

    _write(tmp_path, "broken.json", _record(method=None, model=None))
    with pytest.raises(UserError, match="broken.json.*'method'"):
        store.load_records(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match="broken.json: not valid JSON"):
        store.load_records(tmp_path)
    with pytest.raises(UserError, match="results folder not found"):
        store.load_records(tmp_path / "missing")


def _eval_record(seed=0, fvd=400.0, num_clips=64, dataset="ucf101", method=None):
    """A record shaped like `latte-bench eval --json` output (metrics + results.<m>.provenance)."""
    prov = {"protocol": "StyleGAN-V fvd (Latte)", "real": "/data/ucf/frames", "fake": f"/runs/s{seed}",
            "dataset": dataset, "num_clips": num_clips, "num_frames": 16, "real_stride": 3, "fake_stride": 1,
            "seed": seed, "resize": "pytorch", "covariance": "biased", "detector_sha256": I3D,
            "real_clips": num_clips, "fake_clips": num_clips, "real_fingerprint": f"fp{seed}",
            "environment": {"python": "3.11"}, "wall_time_s": 12.0 + seed, "batch_size": 8 + seed}
    rec = {"real": "/data/ucf/frames", "fake": f"/runs/s{seed}", "metrics": {"fvd": fvd},
           "results": {"fvd": {"metric": "fvd", "value": fvd, "provenance": prov}},
           "protocol": {"dataset": dataset, "num_clips": num_clips, "seed": seed}}
    if method:
        rec["method"] = method
    return rec


def test_eval_records_use_provenance_and_fallbacks():
    a = store.record_from_dict(_eval_record(seed=0, method="Latte"))
    b = store.record_from_dict(_eval_record(seed=1, fvd=420.0, method="Latte"))
    assert a.dataset == "UCF101" and a.seed == 0
    proto = a.protocol("fvd")
    assert proto["num_clips"] == 64 and proto["detector_sha256"] == I3D and proto["real_clips"] == 64
    assert not any(k.startswith("environment") or k in ("wall_time_s", "real_fingerprint", "batch_size") for k in proto)
    (row,) = store.group_rows([a, b], ["fvd"])  # timings, paths, fingerprints do not split rows
    assert row.values == [400.0, 420.0]
    c = store.record_from_dict(_eval_record(seed=2, num_clips=2048, method="Latte"))
    rows = store.group_rows([a, b, c], ["fvd"])
    assert sorted(r.note for r in rows) == ["fake_clips=2048, num_clips=2048, real_clips=2048",
                                            "fake_clips=64, num_clips=64, real_clips=64"]
    unlabelled = store.record_from_dict(_eval_record(seed=3))
    assert unlabelled.method == "? s3"  # the generated folder's name, visibly a fallback


def test_method_falls_back_to_model_name():
    rec = _record(method=None)
    rec["model"] = {"name": "Latte-S/2", "checkpoint_sha256": "b" * 64}
    assert store.record_from_dict(rec).method == "Latte-S/2"


def test_mean_std_over_seeds():
    recs = [store.record_from_dict(_record(seed=s, fvd=v)) for s, v in ((0, 400.0), (1, 410.0), (2, 420.0))]
    (row,) = store.group_rows(recs, ["fvd"])
    assert row.mean == pytest.approx(410.0)
    assert row.std == pytest.approx(10.0)  # sample std, ddof=1
    assert row.seeds == [0, 1, 2] and row.note == ""
    single = store.group_rows(recs[:1], ["fvd"])[0]
    assert math.isnan(single.std)


def test_mismatched_protocols_become_separate_rows_or_are_refused():
    recs = [
        store.record_from_dict(_record(seed=0, fvd=400.0, stride=3), "r3.json"),
        store.record_from_dict(_record(seed=1, fvd=410.0, stride=3), "r3b.json"),
        store.record_from_dict(_record(seed=0, fvd=300.0, stride=6), "r6.json"),
        store.record_from_dict(_record(seed=0, fvd=500.0, i3d="c" * 64), "other_i3d.json"),
    ]
    rows = store.group_rows(recs, ["fvd"])
    by_note = {r.note: r for r in rows}
    assert len(rows) == 3
    assert by_note["detector.i3d=aaaaaaaa, real_stride=3"].values == [400.0, 410.0]
    assert by_note["detector.i3d=aaaaaaaa, real_stride=6"].values == [300.0]
    assert by_note["detector.i3d=cccccccc, real_stride=3"].values == [500.0]
    with pytest.raises(UserError) as e:
        store.group_rows(recs, ["fvd"], strict=True)
    msg = str(e.value)
    assert "\n" not in msg and "r3.json" in msg and "r6.json" in msg and "real_stride" in msg


def test_clip_count_mismatch_is_a_protocol_difference():
    recs = [store.record_from_dict(_record(clips=2048)), store.record_from_dict(_record(clips=64))]
    rows = store.group_rows(recs, ["fvd"])
    assert sorted(r.note for r in rows) == ["fake_clips=2048, real_clips=2048", "fake_clips=64, real_clips=64"]


def test_table3_assembly_with_reported_and_measured(tmp_path):
    recs = [store.record_from_dict(_record(dataset="ucf101", seed=s, fvd=v)) for s, v in ((0, 400.0), (1, 420.0))]
    recs.append(store.record_from_dict(_record(method="Latte-demo", dataset="MovingShapes", fvd=900.0)))
    df = leaderboard.build_table("table3", recs)
    measured = df[df.source == "measured"]
    ucf = measured[measured.column == "UCF101"].iloc[0]
    assert ucf["mean"] == pytest.approx(410.0) and ucf["n"] == 2 and ucf["seeds"] == "0 1"
    assert set(measured.column) == {"UCF101", "MovingShapes"}
    reported = df[df.source == "reported"]
    latte = reported[(reported.method == "Latte") & (reported.column == "UCF101")].iloc[0]
    assert latte["mean"] == pytest.approx(477.97)
    assert len(reported) == len(published.TABLE3)

    wide = leaderboard.to_wide(df)
    assert list(wide.columns[:6]) == ["Method", "Source", "FaceForensics", "SkyTimelapse", "UCF101", "Taichi-HD"]
    row = wide[(wide.Method == "Latte") & (wide.Source == "measured")].iloc[0]
    assert row["UCF101"] == "410.00 ± 14.14 (n=2)"
    assert row["FaceForensics"] == "–"
    # reported rows first, in the paper's order
    assert list(wide.Method[:3]) == ["MoCoGAN", "VideoGPT", "MoCoGAN-HD"]

    md_path, csv_path, md = leaderboard.write_table(df, "table3", tmp_path)
    assert md_path.read_text() == md and "| Latte | measured |" in md
    import pandas as pd

    back = pd.read_csv(csv_path)
    assert len(back) == len(df) and set(back.source) == {"reported", "measured"}


def test_table5_keeps_fid_on_ffs_and_is_on_ucf():
    recs = [
        store.record_from_dict({**_record(dataset="FaceForensics"), "metrics": {"fid": 12.0, "fvd2048_16f": 50.0}}),
        store.record_from_dict({**_record(dataset="UCF101"), "metrics": {"isv2048_ucf": 60.0, "fid": 30.0}}),
    ]
    df = leaderboard.build_table("table5", recs)
    measured = df[df.source == "measured"]
    assert sorted(measured.column) == ["FaceForensics FID", "UCF101 IS"]
    assert set(df[df.source == "reported"].column) == {"FaceForensics FID", "UCF101 IS"}


def test_unverified_reported_numbers_are_marked():
    df = leaderboard.build_table("table3", [])
    wide = leaderboard.to_wide(df)
    latte = wide[wide.Method == "Latte"].iloc[0]
    assert latte["SkyTimelapse"] == "59.82"  # verified (Latte issue #65)
    assert latte["Taichi-HD"] == "159.60 †"  # not confirmed
    assert all(r.evidence for r in published.TABLE3 if r.verified)


def test_bootstrap_ci_contains_point_and_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    dim = 4

    def ci(n):
        real = rng.normal(size=(n, dim))
        fake = rng.normal(loc=1.0, size=(n, dim))
        return leaderboard.bootstrap_fvd(real, fake, n_resamples=200, seed=1)

    small, large = ci(50), ci(800)
    for b in (small, large):
        assert b["low"] <= b["point"] <= b["high"]
    assert (large["high"] - large["low"]) < 0.5 * (small["high"] - small["low"])
    # true FVD is |Δμ|² = 4: the large-sample interval is near it
    assert 3.0 < large["point"] < 5.0
    # seeded: the same call gives the same interval
    real, fake = rng.normal(size=(30, dim)), rng.normal(size=(30, dim))
    a = leaderboard.bootstrap_fvd(real, fake, n_resamples=50, seed=3)
    b = leaderboard.bootstrap_fvd(real, fake, n_resamples=50, seed=3)
    assert a == b


def test_bootstrap_from_record_features(tmp_path):
    from latte_bench.metrics.stats import FeatureStats

    rng = np.random.default_rng(2)
    paths = {}
    for side, loc in (("real", 0.0), ("fake", 0.5)):
        st = FeatureStats(keep_features=True)
        st.append(rng.normal(loc=loc, size=(64, 3)))
        st.save(tmp_path / f"{side}.npz")
        paths[side] = f"{side}.npz"
    rec_path = _write(tmp_path, "r.json", {**_record(), "features": {"fvd2048_16f": paths}})
    rec = store.load_record(rec_path)
    real, fake = store.record_features(rec, "fvd2048_16f")
    assert real.shape == (64, 3) and fake.shape == (64, 3)
    assert store.record_features(rec, "fid") is None
    b = leaderboard.bootstrap_fvd(real, fake, n_resamples=30, seed=0)
    assert b["low"] <= b["point"] <= b["high"]
    # a stored interval is shown for a single-record row
    rec.raw["bootstrap"] = {"fvd2048_16f": {"low": 1.0, "high": 2.0}}
    (row,) = store.group_rows([rec], ["fvd"])
    assert row.ci == (1.0, 2.0)
    df = leaderboard.build_table("table3", [rec], with_reported=False)
    assert leaderboard.to_wide(df).iloc[0]["UCF101"] == "400.00 (n=1) [CI 1.0–2.0]"


def test_training_log_and_curves(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    lines = [{"step": s, "loss": 1.0 / (s + 1)} for s in range(0, 50)]
    lines += [{"step": 20, "fvd": 800.0}, {"step": 40, "fvd": 600.0}, {"step": 40, "fvd": 590.0}]
    (run / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    series = store.read_training_log(run)
    assert series["fvd"] == ([20, 40], [800.0, 590.0])  # a re-logged step keeps its last value
    assert len(series["loss"][0]) == 50
    paths = training_curves_figure({"run1": series}, tmp_path / "curves")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    (run / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    with pytest.raises(UserError, match="log.jsonl:2"):
        store.read_training_log(run)


def test_video_grid_places_frames_and_separators():
    videos = np.zeros((3, 10, 4, 5, 3), dtype=np.uint8)
    for i in range(3):
        for t in range(10):
            videos[i, t] = 10 * i + t  # each frame one grey level
    grid = video_grid(videos, max_videos=2, max_frames=4)  # frames 0, 3, 6, 9 of videos 0 and 1
    assert grid.shape == (2 * 5 - 1, 4 * 6 - 1, 3) and grid.dtype == np.uint8
    assert [int(grid[0, 6 * j, 0]) for j in range(4)] == [0, 3, 6, 9]
    assert [int(grid[5, 6 * j, 0]) for j in range(4)] == [10, 13, 16, 19]
    assert (grid[4] == 255).all() and (grid[:, 5] == 255).all()  # white separators


def test_samples_figure_writes_png_and_pdf(tmp_path):
    rng = np.random.default_rng(0)
    sets = {"real": rng.integers(0, 256, (4, 8, 16, 16, 3), dtype=np.uint8),
            "step 100": rng.integers(0, 256, (2, 8, 16, 16, 3), dtype=np.uint8)}
    paths = samples_figure(sets, tmp_path / "samples")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
