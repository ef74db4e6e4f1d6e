"""Results store, protocol grouping/refusal, leaderboard assembly, stored intervals and training curves."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

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
        "protocol": {"num_frames": 16, "real_stride": stride, "resize": "pytorch", "batch_size": 8, "seed": seed},
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
    assert sorted(r.note for r in rows) == ["", "64 clips"]  # only the short run is tagged
    unlabelled = store.record_from_dict(_eval_record(seed=3))
    assert unlabelled.method == "s3"  # the generated folder's name


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
    # UCF101's column uses real stride 3: the stride-6 record is tagged; the two standard rows
    # differ only in the detector, which their labels name
    assert by_note["stride 6"].values == [300.0]
    assert by_note["detector.i3d=aaaaaaaa"].values == [400.0, 410.0]
    assert by_note["detector.i3d=cccccccc"].values == [500.0]
    with pytest.raises(UserError) as e:  # a departure from the column's protocol is refused first
        store.group_rows(recs, ["fvd"], strict=True)
    msg = str(e.value)
    assert "\n" not in msg and "r6.json" in msg and "stride 6" in msg
    with pytest.raises(UserError) as e:  # standard records that disagree with each other
        store.group_rows([recs[0], recs[3]], ["fvd"], strict=True)
    msg = str(e.value)
    assert "\n" not in msg and "r3.json" in msg and "other_i3d.json" in msg and "detector.i3d" in msg


def test_clip_count_mismatch_is_a_protocol_difference():
    recs = [store.record_from_dict(_record(clips=2048)), store.record_from_dict(_record(clips=64))]
    rows = store.group_rows(recs, ["fvd"])
    assert sorted(r.note for r in rows) == ["", "64 clips"]
    assert sorted(tuple(r.nonstandard) for r in rows) == [(), ("64 clips",)]


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


# The paper's numbers (paper_tables.md: Tables 3 and 5, and the joint-training numbers of the text),
# kept here so that the check runs in a fresh clone without ../shared.
PAPER_TABLE3 = {  # method: (FaceForensics, SkyTimelapse, UCF101, Taichi-HD); None = "-"
    "MoCoGAN": ("124.7", "206.6", "2886.9", None),
    "VideoGPT": ("185.9", "222.7", "2880.6", None),
    "MoCoGAN-HD": ("111.8", "164.1", "1729.6", "128.1"),
    "DIGAN": ("62.5", "83.11", "1630.2", "156.7"),
    "StyleGAN-V": ("47.41", "79.52", "1431.0", None),
    "PVDM": ("355.92", "55.41", "343.6", "540.2"),
    "MoStGAN-V": ("39.70", "65.30", "1380.3", None),
    "LVDM": (None, "95.20", "372.0", "99.0"),
    "VDT": (None, None, "225.7", None),
    "W.A.L.T": (None, None, "258.1", None),
    "Latte": ("34.00", "59.82", "477.97", "159.60"),
    "Latte+IMG": ("27.08", "42.67", "202.23", "97.09"),
}
PAPER_TABLE5 = {  # method: (UCF101 IS, FaceForensics FID)
    "MoCoGAN": ("10.09", "23.97"),
    "VideoGPT": ("12.61", "22.7"),
    "MoCoGAN-HD": ("23.39", "7.12"),
    "DIGAN": ("23.16", "19.1"),
    "StyleGAN-V": ("23.94", "9.445"),
    "PVDM": ("60.55", "29.76"),
    "Latte": ("68.53", "5.02"),
    "Latte+IMG": ("73.31", "3.87"),
}
PAPER_JOINT = {"Only Video": ("705.72", "75.98"), "Temporal Mask": ("589.86", "63.36")}  # UCF101 zero-shot (FVD, FID)
PAPER_TABLES_MD = Path(__file__).resolve().parents[1].parent / "shared" / "docs" / "paper_tables.md"


def _cells(table: str) -> dict[tuple[str, str, str], str]:
    """{(method, dataset, metric): the number as printed} of published.py, checking value == float(printed)."""
    cells = {(r.method, r.dataset, r.metric): r.printed for r in published.reported(table)}
    assert len(cells) == len(published.reported(table)), f"{table}: a cell is listed twice"
    assert all(r.value == float(r.printed) for r in published.reported(table))
    return cells


def _expected_cells(t3: dict, t5: dict, joint: dict) -> dict[str, dict]:
    out = {"table3": {}, "table5": {}, "joint": {}}
    for method, values in t3.items():
        for dataset, v in zip(published.DATASETS, values):
            if v is not None:
                out["table3"][(method, dataset, "fvd")] = v
    for method, (is_, fid) in t5.items():
        out["table5"][(method, "UCF101", "is")] = is_
        out["table5"][(method, "FaceForensics", "fid")] = fid
    for method, (fvd, fid) in joint.items():
        out["joint"][(method, "UCF101", "fvd")] = fvd
        out["joint"][(method, "UCF101", "fid")] = fid
    return out


def _parse_paper_tables(text: str) -> tuple[dict, dict, dict]:
    """Tables 3 and 5 and the joint-training numbers from paper_tables.md."""
    def table(heading: str) -> list[list[str]]:
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
        return [r for r in rows[2:]]  # drop the header and the |---| line

    num = lambda c: None if c in ("-", "–", "") else c  # noqa: E731
    t3 = {r[0]: tuple(num(c) for c in r[1:5]) for r in table("## Table 3")}
    t5 = {r[0]: (num(r[1]), num(r[2])) for r in table("## Table 5")}
    joint = {name: (fvd, fid) for name, fvd, fid in
             re.findall(r'"([^"]+)" FVD ([\d.]+) / FID ([\d.]+)', " ".join(text.split()))}
    return t3, t5, joint


@pytest.mark.parametrize("table", ["table3", "table5", "joint"])
def test_published_cells_equal_the_paper(table):
    expected = _expected_cells(PAPER_TABLE3, PAPER_TABLE5, PAPER_JOINT)[table]
    assert _cells(table) == expected  # every cell, nothing missing, nothing extra
    for r in published.reported(table):
        assert {"method", "dataset", "metric", "value"} <= set(vars(r)) and isinstance(r.value, float)
    # the leaderboard shows each cell as printed (9.445, not 9.45; 34.00, not 34)
    wide = leaderboard.to_wide(leaderboard.build_table(table, []))
    for (method, dataset, metric), printed in expected.items():
        column = dataset if table == "table3" else f"{dataset} {metric.upper()}"
        assert wide[wide.Method == method].iloc[0][column].split(" ")[0] == printed, (method, column)


@pytest.mark.skipif(not PAPER_TABLES_MD.is_file(), reason=f"{PAPER_TABLES_MD} is absent (a clone without ../shared)")
def test_published_cells_equal_shared_paper_tables():
    t3, t5, joint = _parse_paper_tables(PAPER_TABLES_MD.read_text(encoding="utf-8"))
    assert len(t3) == 12 and len(t5) == 8 and set(joint) == {"Only Video", "Temporal Mask"}
    expected = _expected_cells(t3, t5, joint)
    for table in ("table3", "table5", "joint"):
        assert _cells(table) == expected[table], table


def test_reported_cells_carry_no_dagger_and_revision_footnotes_name_both():
    for table in ("table3", "table5", "joint"):
        md = leaderboard.to_markdown(leaderboard.build_table(table, []), table)
        assert "†" not in md
    df = leaderboard.build_table("table3", [])
    wide = leaderboard.to_wide(df)
    img = wide[wide.Method == "Latte+IMG"].iloc[0]
    assert img["UCF101"] == "202.23 ²" and img["Taichi-HD"] == "97.09"
    assert list(wide.columns) == ["Method", "Source", "FaceForensics", "SkyTimelapse", "UCF101", "Taichi-HD"]
    md = leaderboard.to_markdown(df, "table3")
    note = next(line for line in md.splitlines() if line.startswith("- ²"))
    assert "Latte+IMG, UCF101" in note and "202.23" in note and "333.61" in note
    assert wide[wide.Method == "Latte"].iloc[0]["UCF101"] == "477.97 ¹"
    note = next(line for line in md.splitlines() if line.startswith("- ¹"))
    assert "Latte, UCF101" in note and "477.97" in note and "220" in note


def test_short_run_is_tagged_beside_the_paper_and_refused_when_strict():
    three = store.record_from_dict(_eval_record(seed=0, fvd=236.83, num_clips=3, method="Latte-S/2 step 100"), "three.json")
    df = leaderboard.build_table("table3", [three])
    wide = leaderboard.to_wide(df)
    assert wide[wide.Method == "Latte"].iloc[0]["UCF101"] == "477.97 ¹"
    measured = wide[wide.Source == "measured"]
    assert list(measured.Method) == ["Latte-S/2 step 100 [3 clips]"]
    assert measured.iloc[0]["UCF101"] == "236.83 (n=1)"
    assert df[df.source == "measured"].iloc[0]["nonstandard"] == "3 clips"
    with pytest.raises(UserError, match=r"three.json: .*\(3 clips\).*--strict") as e:
        leaderboard.build_table("table3", [three], strict=True)
    assert "\n" not in str(e.value)
    full = store.record_from_dict(_eval_record(seed=0, num_clips=2048, method="Latte"))
    assert leaderboard.build_table("table3", [full], strict=True).iloc[-1]["note"] == ""


def _v2_record(**over):
    """A record as `latte-bench eval --json` writes it (schema latte-bench/eval-record/2)."""
    rec = {
        "schema": "latte-bench/eval-record/2", "method": "Latte", "dataset": "taichi",
        "metrics": {"fvd": {"value": 160.0, "std": 2.0, "runs": [158.0, 162.0]}},
        "results": {"fvd": {"metric": "fvd", "value": 160.0, "real_count": 2048, "fake_count": 2048, "unit": "clips",
                            "provenance": {"num_clips": 2048, "num_frames": 16, "real_stride": 6, "fake_stride": 1}}},
        "protocol": {"num_clips": 2048, "num_frames": 16, "real_stride": 6, "fake_stride": 1, "seed": 0,
                     "resize": "pytorch", "covariance": "biased"},
        "detectors": {"i3d": I3D}, "counts": {"real_clips": 2048, "fake_clips": 2048},
        "nonstandard": [], "real": {"path": "/data/taichi/train"},
        "fake": {"path": "/samples/taichi", "checkpoint": {"path": "run/checkpoints/0050000.pt", "sha256": "b" * 64,
                                                          "step": 50000, "weights": "ema"}},
        "seed": 0,
    }
    rec.update(over)
    return rec


def test_eval_record_v2_tags_and_names():
    rec = store.record_from_dict(_v2_record())
    assert rec.method == "Latte" and rec.dataset == "Taichi-HD" and rec.metrics == {"fvd": 160.0}
    assert store.nonstandard_tags(rec, "fvd") == []  # Taichi-HD's column uses stride 6
    # the record's own tags are shown, and column differences it does not state are added
    stride3 = _v2_record(nonstandard=["tf resize", "64 fake clips"])
    stride3["protocol"] = {**stride3["protocol"], "real_stride": 3, "resize": "tf"}
    stride3["results"]["fvd"]["provenance"]["real_stride"] = 3
    stride3["results"]["fvd"]["fake_count"] = 64
    stride3["counts"] = {"real_clips": 2048, "fake_clips": 64}  # what the stored "64 fake clips" was judged from
    # "64 clips" is not repeated beside the record's "64 fake clips"; the stride it does not tag is added
    assert store.nonstandard_tags(store.record_from_dict(stride3), "fvd") == ["tf resize", "64 fake clips", "stride 3"]
    # a record with tags but no stored protocol keeps its tags verbatim; only column tags it lacks are added
    bare = {k: v for k, v in stride3.items() if k not in ("protocol", "counts")}
    assert store.nonstandard_tags(store.record_from_dict(bare), "fvd") == ["tf resize", "64 fake clips", "64 clips",
                                                                     "stride 3"]
    # rows are named from the record: --method, else the checkpoint's model and step, else the folder
    unnamed = _v2_record(method=None, model={"name": "Latte-XL/2"})
    assert store.record_from_dict(unnamed).method == "Latte-XL/2"
    stepped = _v2_record(method=None)
    stepped["fake"]["checkpoint"]["model"] = "Latte-S/2"
    assert store.record_from_dict(stepped).method == "Latte-S/2 step 50000"
    old = {"metrics": {"fvd": 1.0}, "real": "/d/ucf", "fake": "/samples/ucf_run/videos.npz"}
    old_rec = store.record_from_dict(old)
    assert old_rec.method == "ucf_run"  # never "? videos.npz"
    assert store.nonstandard_tags(old_rec, "fvd") == ["clip count not recorded"]  # never shown as standard
    named = store.record_from_dict({**old, "metrics": {"fvd2048_16f": 1.0}})
    assert store.nonstandard_tags(named, "fvd2048_16f") == []  # the metric name states clips and frames


def test_real_clip_shortfall_is_tagged_unless_the_real_set_was_exhausted():
    def rec(videos_long_enough):
        r = _eval_record(seed=0, num_clips=2048, dataset="ffs", method="Latte")
        prov = r["results"]["fvd"]["provenance"]
        prov["real_clips"] = 704
        prov["real_sampling"] = {"videos_long_enough": videos_long_enough, "clips": 704}
        return store.record_from_dict(r)

    assert store.nonstandard_tags(rec(704), "fvd") == []  # all 704 training videos: the protocol's min(N, 2048)
    assert store.nonstandard_tags(rec(5000), "fvd") == ["704 real clips"]


def test_joint_table_and_table5_columns():
    df = leaderboard.build_table("joint", [])
    wide = leaderboard.to_wide(df)
    assert list(wide.columns) == ["Method", "Source", "UCF101 FVD", "UCF101 FID"]
    tm = wide[wide.Method == "Temporal Mask"].iloc[0]
    assert (tm["UCF101 FVD"], tm["UCF101 FID"]) == ("589.86", "63.36")
    rec = store.record_from_dict({**_record(dataset="ucf101"), "method": "Temporal Mask",
                                  "metrics": {"fvd2048_16f": 600.0, "fid": 70.0, "isv2048_ucf": 50.0}})
    measured = leaderboard.build_table("joint", [rec])
    assert sorted(measured[measured.source == "measured"].column) == ["UCF101 FID", "UCF101 FVD"]
    t5 = leaderboard.to_wide(leaderboard.build_table("table5", []))
    assert t5[t5.Method == "PVDM"].iloc[0][["UCF101 IS", "FaceForensics FID"]].tolist() == ["60.55", "29.76"]


def test_stored_features_and_interval_of_a_record(tmp_path):
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
    # an interval stored in an older record is shown for a single-record row
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


def test_a_num_runs_record_gives_a_row_of_its_runs(tmp_path):
    import json

    rec = {"schema": "latte-bench/eval-record/2", "method": "m", "dataset": "ucf101",
           "metrics": {"fvd": {"value": 2.0, "std": 1.0, "runs": [1.0, 2.0, 3.0], "seeds": [0, 1, 2]}},
           "protocol": {"num_clips": 2048, "num_frames": 16, "real_stride": 3}, "counts": {"real_clips": 2048, "fake_clips": 2048},
           "nonstandard": []}
    (tmp_path / "r.json").write_text(json.dumps(rec))
    (row,) = store.group_rows(store.load_records(tmp_path), ["fvd"])
    assert row.values == [1.0, 2.0, 3.0] and row.seeds == [0, 1, 2]
    assert row.mean == 2.0 and row.std == 1.0


def test_eval_and_store_judge_tags_by_one_function():
    """A --num-clips 64 UCF101 run: the record's tags and the leaderboard's label come from protocol.departures."""
    from latte_bench.metrics.evaluation import nonstandard_tags as eval_tags
    from latte_bench.metrics.protocol import Protocol, departures

    proto = Protocol(dataset="ucf101", num_clips=64, resize="tf").resolved()
    counts = {"real_clips": 64, "fake_clips": 64}
    written = eval_tags(proto, counts, ("fvd",))
    assert written == ["64 clips", "tf resize"]
    kinds = [k for k, _ in departures(proto.to_dict(), Protocol(dataset="ucf101"), counts, "fvd")]
    assert kinds == ["fake count", "resize"]
    rec = _v2_record(dataset="ucf101", nonstandard=written, counts=counts, protocol=proto.to_dict())
    rec["results"]["fvd"].update(real_count=64, fake_count=64)
    rec["results"]["fvd"]["provenance"]["real_stride"] = 3
    # the column's own "64 clips" and "tf resize" are the kinds the record already tags: not repeated
    assert store.nonstandard_tags(store.record_from_dict(rec), "fvd") == written
    # a stride the stored tags omit is found by the same judgement on the stored protocol
    rec["protocol"] = {**proto.to_dict(), "real_stride": 1}
    assert store.nonstandard_tags(store.record_from_dict(rec), "fvd") == written + ["stride 1"]
