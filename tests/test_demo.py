"""`latte-bench demo --quick` end to end: data, training, sampling, FVD/KVD/FID with the real detectors, reports."""

from __future__ import annotations

import json
import math

import pytest

from latte_bench.cli import main


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0

    record = json.loads((out / "results" / "demo_seed0.json").read_text())
    for name in ("fvd", "kvd", "fid"):
        assert math.isfinite(record["metrics"][name])
    assert record["metrics"]["fvd"] > 0 and record["metrics"]["fid"] > 0
    prov = record["results"]["fvd"]["provenance"]
    assert prov["real_clips"] == prov["fake_clips"] == 2 and len(prov["detector_sha256"]) == 64
    boot = record["bootstrap"]["fvd"]
    assert boot["low"] <= boot["high"]
    assert len(record["model"]["checkpoint_sha256"]) == 64

    for name in ("README.md", "table3.md", "table3.csv", "table5.md", "table5.csv", "training_curves.png",
                 "training_curves.pdf", "samples.png", "samples.pdf", "similarity_matrices.png", "similarity_per_block.png", "similarity.json"):
        assert (out / name).stat().st_size > 0, name
    table3 = (out / "table3.md").read_text()
    assert "| Latte | reported |" in table3 and "MovingShapes (demo)" in table3 and "measured" in table3
    readme = (out / "README.md").read_text()
    assert "Not comparable with published numbers" in readme and "wall time" in readme
    assert not (out / "work").exists()  # scratch removed

    # the stored record feeds `report table3` (and its bootstrap from the kept features)
    assert main(["report", "table3", "--results", str(out / "results"), "--out", str(tmp_path / "t"), "--bootstrap", "5"]) == 0
    assert "MovingShapes (demo)" in (tmp_path / "t" / "table3.md").read_text()
