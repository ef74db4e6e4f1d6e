"""Table 4 (VBench): the paper's cells pinned, measured temporal flickering beside them, `report table4`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latte_bench.cli import main
from latte_bench.reports import leaderboard, published, store

# The paper's Table 4 (paper_tables.md), kept here so that the check runs in a fresh clone without ../shared.
HEADERS = ("subject consistency", "background consistency", "temporal flickering", "motion smoothness",
           "dynamic degree", "aesthetic quality", "imaging quality", "object class", "multiple objects",
           "human action", "color", "spatial relationship", "scene", "appearance style", "temporal style",
           "overall consistency")
PAPER_TABLE4 = {
    "ModelScope": "89.87 95.29 98.28 95.79 66.39 52.06 58.57 82.25 38.98 92.40 81.72 33.68 39.26 23.39 25.37 25.67",
    "VideoCrafter": "86.24 92.88 97.60 91.79 89.72 44.41 57.22 87.34 25.93 93.00 78.84 36.74 43.36 21.57 25.42 25.21",
    "CogVideo": "92.19 95.42 97.64 96.47 42.22 38.18 41.03 73.40 18.11 78.20 79.57 18.24 28.24 22.01 7.80 7.70",
    "HiGen": "90.07 93.99 93.24 96.69 99.17 57.30 63.92 86.06 22.39 86.20 86.22 22.43 44.88 24.54 25.14 27.14",
    "OpenSoraPlan": "97.27 96.24 99.12 99.17 35.28 59.10 65.73 61.53 24.91 58.20 90.90 49.64 17.28 20.04 19.14 20.39",
    "Latte": "88.88 95.40 98.89 94.63 68.89 61.59 61.92 86.53 34.53 90.00 85.31 41.53 36.26 23.74 24.76 27.33",
}
PAPER_TABLES_MD = Path(__file__).resolve().parents[1].parent / "shared" / "docs" / "paper_tables.md"


def _expected(table: dict) -> dict:
    return {(m, "VBench", dim): v for m, row in table.items() for dim, v in zip(HEADERS, row.split(), strict=True)}


def _published() -> dict:
    cells = {(r.method, r.dataset, r.metric): r.printed for r in published.reported("table4")}
    assert len(cells) == len(published.TABLE4) and all(r.value == float(r.printed) for r in published.TABLE4)
    return cells


def test_table4_cells_and_headers_equal_the_paper():
    assert published.VBENCH_DIMENSIONS == HEADERS
    assert _published() == _expected(PAPER_TABLE4)  # every cell, nothing missing, nothing extra
    wide = leaderboard.to_wide(leaderboard.build_table("table4", []), table="table4")
    assert list(wide.columns) == ["Method", "Source", *HEADERS]
    assert list(wide.Method) == list(PAPER_TABLE4)  # the paper's row order
    for method, row in PAPER_TABLE4.items():
        assert list(wide[wide.Method == method].iloc[0][list(HEADERS)]) == row.split()  # as printed: 7.80, 93.00


@pytest.mark.skipif(not PAPER_TABLES_MD.is_file(), reason=f"{PAPER_TABLES_MD} is absent (a clone without ../shared)")
def test_table4_cells_equal_shared_paper_tables():
    section = PAPER_TABLES_MD.read_text(encoding="utf-8").split("## Table 4", 1)[1].split("\n## ", 1)[0]
    blocks = [[[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines() if line.startswith("|")]
              for block in section.split("\n\n") if block.lstrip().startswith("|")]
    assert len(blocks) == 2
    headers = tuple(h for b in blocks for h in b[0][1:])
    rows = {r[0]: [] for r in blocks[0][2:]}
    for b in blocks:
        for r in b[2:]:
            rows[r[0]] += r[1:]
    assert headers == HEADERS
    assert _published() == _expected({m: " ".join(v) for m, v in rows.items()})


def _flicker_record(value, seed=0, method="Latte-1", dataset=None, **extra):
    return {"schema": "latte-bench/eval-record/2", "method": method, "dataset": dataset, "seed": seed,
            "metrics": {"flicker": value}, "real": None, "fake": {"kind": "path", "path": "samples/t2v"},
            "results": {"flicker": {"metric": "flicker", "value": value, "real_count": None, "fake_count": 64,
                                    "unit": "clips", "provenance": {"frames_per_video": 16}}},
            "protocol": {"num_frames": 16, "num_clips": 64, "fake_stride": 1, "seed": seed}, "nonstandard": [], **extra}


def test_measured_flicker_sits_in_its_column_in_percent_and_the_rest_is_not_measured():
    recs = [store.record_from_dict(_flicker_record(v, seed=s)) for s, v in ((0, 0.97), (1, 0.99))]
    recs.append(store.record_from_dict(_flicker_record(0.95, method="Latte-1", dataset="ucf101"), "ucf.json"))
    recs.append(store.record_from_dict({"method": "Latte", "dataset": "UCF101", "metrics": {"fvd": 400.0}}))  # not VBench
    assert recs[0].dataset == store.GENERATED_ONLY  # generated videos alone, no dataset named: still a record
    df = leaderboard.build_table("table4", recs)
    measured = df[df.source == "measured"]
    assert set(measured.column) == {"temporal flickering"} and len(measured) == 2
    both = measured[measured.n == 2].iloc[0]
    assert both["mean"] == pytest.approx(98.0) and both["std"] == pytest.approx(np.std([97, 99], ddof=1))
    wide = leaderboard.to_wide(df, table="table4")
    row = wide[(wide.Method == "Latte-1") & (wide.Source == "measured")].iloc[0]
    assert row["temporal flickering"] == "98.00 ± 1.41 (n=2)"
    assert all(row[h] == leaderboard.NOT_MEASURED for h in HEADERS if h != "temporal flickering")
    ucf = wide[wide.Method == "Latte-1 [UCF101]"].iloc[0]  # the videos' dataset in the label
    assert ucf["temporal flickering"] == "95.00 (n=1)"
    assert list(wide.Source[:6]) == ["reported"] * 6  # the paper's rows first

    md = leaderboard.to_markdown(df, "table4")
    assert md.count("| Method | Source |") == 2  # two blocks of eight, as the paper prints them
    assert "| Latte | reported | 88.88 | 95.40 | 98.89 |" in md and "static filter" in md and "not measured here" in md


def test_report_table4_through_the_cli(tmp_path, capsys):
    from latte_bench.data.video import write_npz

    video = np.zeros((2, 16, 8, 8, 3), np.uint8)
    video[1, 1::2] = 51  # every pair differs by 51: 80 %; the static video: 100 %
    write_npz(tmp_path / "fake.npz", video)
    results = tmp_path / "results"
    assert main(["eval", "--fake", str(tmp_path / "fake.npz"), "--metrics", "flicker", "--num-clips", "2",
                 "--method", "Latte-T2V", "--no-progress", "--json", str(results / "t2v.json")]) == 0
    capsys.readouterr()
    assert main(["report", "table4", "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "| Latte-T2V | measured | not measured here | not measured here | 90.00 (n=1) | not measured here |" in out
    csv = (tmp_path / "rep" / "table4.csv").read_text()
    assert "Latte-T2V,measured,temporal flickering,flicker,90," in csv
    assert (tmp_path / "rep" / "table4.md").read_text() in out

    # no records at all: the paper's rows alone, said on stderr
    assert main(["report", "table4", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "rep")]) == 0
    captured = capsys.readouterr()
    assert "| OpenSoraPlan | reported | 97.27 |" in captured.out and "measured |" not in captured.out
    assert "no evaluation records" in captured.err
    code = main(["report", "table4", "--results", str(tmp_path / "none"), "--no-reported"])  # nothing to show
    assert code == 2 and "results folder not found" in capsys.readouterr().err
