"""latte_bench.metrics.uncertainty: se, FVD∞ and its interval meet the simulated targets; eval records them."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import waves

from latte_bench.errors import UserError
from latte_bench.metrics import fid_from_features, fvd_from_features
from latte_bench.metrics.stats import FeatureStats, frechet_distance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    """benchmarks/bench_uncertainty.py (its simulation cases are the ones the targets are checked on)."""
    spec = importlib.util.spec_from_file_location("bench_uncertainty", ROOT / "benchmarks" / "bench_uncertainty.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_uncertainty"] = module
    spec.loader.exec_module(module)
    return module


def test_targets_two_gaussians_d16_n600(bench):
    s = bench.study("gauss", 16, 600, 60, seed=0)
    assert s["bias_value"] > 0.1  # FD_N is biased upward, measurably at this size
    assert 0.7 <= s["se_ratio"] <= 1.4
    assert abs(s["bias_inf"]) <= 0.3 * abs(s["bias_value"])
    assert s["coverage"] >= 0.85


def test_targets_same_distribution_heavy_tails_cover_zero(bench):
    s = bench.study("heavy", 16, 600, 60, seed=0)
    assert s["truth"] == 0.0 and s["mean_value"] > 0.1
    assert s["coverage"] >= 0.85  # the interval for the population distance contains 0
    assert abs(s["bias_inf"]) <= 0.3 * abs(s["bias_value"])


def test_percentile_bootstrap_misses_the_estimate_the_jackknife_does_not(bench):
    """The reason the percentile interval went: resampling with replacement shifts FD up."""
    rng = np.random.default_rng(3)
    real, fake = bench.draw("gauss", bench.population(16), 64, rng)
    est = fvd_from_features(real, fake)
    boot = []
    for _ in range(100):
        boot.append(fvd_from_features(real[rng.integers(0, 64, 64)], fake[rng.integers(0, 64, 64)]).value)
    assert np.quantile(boot, 0.025) > est.value  # the bootstrap "interval" does not contain the estimate
    assert est.inf_ci[0] <= est.value <= est.inf_ci[1] + 3 * est.se and est.inf < est.value


def test_value_is_the_evaluation_distance_bit_for_bit():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal((40, 8)).astype(np.float32) + 0.5
    sr, sf = FeatureStats(keep_features=True), FeatureStats(keep_features=True)
    for k in range(0, 50, 7):  # batches, as a pass appends them: the sums of the stats are what value uses
        sr.append(real[k:k + 7])
    for k in range(0, 40, 3):
        sf.append(fake[k:k + 3])
    for unbiased, cov in ((False, "biased"), (True, "unbiased")):
        want = frechet_distance(sr.mean(), sr.cov(unbiased), sf.mean(), sf.cov(unbiased))
        assert fvd_from_features(sr, sf, covariance=cov).value == want
    one_r, one_f = FeatureStats(), FeatureStats()
    one_r.append(real)
    one_f.append(fake)
    assert fvd_from_features(real, fake).value == frechet_distance(one_r.mean(), one_r.cov(), one_f.mean(), one_f.cov())


def test_fields_names_and_json():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal((30, 4)) + 1
    e = fid_from_features(a, b, confidence=0.9, seed=5)
    assert e.fid_inf == e.inf and e.fid_inf_ci == e.inf_ci and e.confidence == 0.9
    with pytest.raises(AttributeError):
        e.fvd_inf
    d = json.loads(json.dumps(e.to_dict()))
    assert set(d) >= {"value", "se", "fid_inf", "fid_inf_ci", "confidence", "n_real", "n_fake", "dim", "method", "groups", "seed"}
    assert d["n_real"] == 30 and d["dim"] == 4 and 0 <= d["fid_inf_ci"][0] <= d["fid_inf_ci"][1]
    assert fvd_from_features(a, b, seed=5).inf == fvd_from_features(a, b, seed=5).inf  # seeded grouping
    narrow = fvd_from_features(a, b, confidence=0.5)
    wide = fvd_from_features(a, b, confidence=0.99)
    assert wide.inf_ci[1] - wide.inf_ci[0] > narrow.inf_ci[1] - narrow.inf_ci[0]


def test_too_few_items_give_nan_and_bad_input_is_refused():
    rng = np.random.default_rng(2)
    e = fvd_from_features(rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))
    assert math.isfinite(e.value) and math.isnan(e.se) and e.to_dict()["se"] is None
    with pytest.raises(UserError, match="400-d"):
        fvd_from_features(np.zeros((10, 400)), np.zeros((10, 2048)))
    with pytest.raises(UserError, match="confidence"):
        fvd_from_features(np.zeros((10, 4)), np.zeros((10, 4)), confidence=95)
    with pytest.raises(UserError, match=r"\(N, d\)"):
        fvd_from_features(np.zeros(10), np.zeros((10, 4)))
    with pytest.raises(UserError, match="per-item features"):
        fvd_from_features(FeatureStats(4), np.zeros((10, 4)))


@pytest.mark.slow
def test_demo_floor_interval_contains_zero(bench):
    rows = bench.demo_study(splits=4)
    floor = rows[-1]
    assert floor["case"] == "demo floor" and floor["coverage"] >= 0.85


@pytest.mark.slow
def test_eval_records_uncertainty_saves_and_reuses_features(tmp_path):
    """Real I3D, 5+5 9-frame clips: record fields, saved features, --real-features reuse and its protocol check."""
    from latte_bench.data.video import write_npz
    from latte_bench.metrics import evaluate

    write_npz(tmp_path / "real.npz", waves(12, 9, 0))
    write_npz(tmp_path / "fake.npz", waves(6, 9, 1))
    kw = dict(num_clips=6, num_frames=9, real_stride=1, seed=3, cache=False, batch_size=2, progress=False, allow_fewer=True)
    r = evaluate(tmp_path / "real.npz", tmp_path / "fake.npz", metrics=("fvd", "prdc"), save_features=tmp_path / "feats", **kw)
    res = r.record["results"]["fvd"]
    assert set(res) >= {"se", "fvd_inf", "fvd_inf_ci", "uncertainty"} and res["uncertainty"]["n_real"] == 6
    real, fake = FeatureStats.load(tmp_path / "feats" / "i3d_real.npz"), FeatureStats.load(tmp_path / "feats" / "i3d_fake.npz")
    e = fvd_from_features(real, fake, seed=3)
    assert e.value == r.fvd and e.se == res["se"] and e.fvd_inf == res["fvd_inf"]
    assert r.record["features"]["fvd"]["real"] == str((tmp_path / "feats" / "i3d_real.npz").resolve())
    from latte_bench.reports.store import record_from_dict, record_features

    from latte_bench.metrics.prdc import prdc

    want = prdc(real.features, fake.features)
    assert {m: r.record["metrics"][m] for m in ("precision", "recall", "density", "coverage")} == \
        {m: want[m] for m in ("precision", "recall", "density", "coverage")}
    assert r.record["results"]["density"]["provenance"]["k"] == 5 and r.record["results"]["coverage"]["real_count"] == 6
    got = record_features(record_from_dict(r.record, tmp_path / "rec.json"), "fvd")
    assert np.array_equal(got[0], real.features)

    floored = evaluate(tmp_path / "real.npz", tmp_path / "fake.npz", floor=True, **kw)
    assert floored.fvd == r.fvd
    floor = floored.record["floor"]
    assert floor["real_count"] == 6 and floor["floor_count"] == 6 and floor["tag"] is None
    assert floor["fvd"] > 0 and floor["se"] > 0 and floor["fvd_inf_ci"][0] <= floor["fvd_inf_ci"][1]
    with pytest.raises(UserError, match="^floor=True scores FVD"):
        evaluate(None, tmp_path / "fake.npz", real_features=tmp_path / "feats" / "i3d_real.npz", floor=True, **kw)

    again = evaluate(None, tmp_path / "fake.npz", real_features=tmp_path / "feats" / "i3d_real.npz", **kw)
    assert again.fvd == r.fvd
    with pytest.raises(UserError, match="another protocol.*clips"):
        evaluate(None, tmp_path / "fake.npz", real_features=tmp_path / "feats" / "i3d_real.npz", **{**kw, "seed": 4})


def test_table3_uncertainty_from_records_and_stored_features(tmp_path):
    """`report table3 --uncertainty`: value ± se and an FVD∞ column; the demo's records carry only features."""
    import shutil

    from latte_bench.cli import main
    from latte_bench.reports import leaderboard, store

    shutil.copytree(ROOT / "reports" / "demo" / "results", tmp_path / "results")
    records = store.load_records(tmp_path / "results")
    wide = leaderboard.to_wide(leaderboard.build_table("table3", records, with_reported=False, uncertainty=True))
    v1 = fvd_from_features(*store.record_features(next(r for r in records if "V1" in r.method), "fvd"))
    row = wide[wide["Method"].str.contains("V1")].iloc[0]
    assert row["demo"] == f"{v1.value:.2f} ± {v1.se:.2f} se (n=1)"  # the percentile interval is gone
    assert row["demo FVD∞"] == f"{v1.fvd_inf:.2f} [{v1.fvd_inf_ci[0]:.1f}–{v1.fvd_inf_ci[1]:.1f}]"
    # a record that carries se and fvd_inf is read as it is
    raw = json.loads((tmp_path / "results" / "demo_v1_seed0.json").read_text())
    raw.pop("features")
    raw["results"]["fvd"].update(se=1.5, fvd_inf=50.0, fvd_inf_ci=[47.0, 53.0])
    (tmp_path / "results" / "demo_v1_seed0.json").write_text(json.dumps(raw))
    assert main(["report", "table3", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out"),
                 "--uncertainty", "--no-reported"]) == 0
    md = (tmp_path / "out" / "table3.md").read_text()
    assert "± 1.50 se (n=1)" in md and "50.00 [47.0–53.0]" in md and "| demo FVD∞ |" in md


def test_floor_clips_are_disjoint_and_small_splits_use_halves(tmp_path):
    from latte_bench.data.clips import sample_real_clips
    from latte_bench.data.video import open_videos, write_npz
    from latte_bench.metrics.uncertainty import floor_clips, floor_entry

    write_npz(tmp_path / "real.npz", waves(30, 12, 0, size=8))
    videos = open_videos(tmp_path / "real.npz")
    used, _ = sample_real_clips(videos, 12, 9, 1, seed=3)
    other = floor_clips(videos, used, 12, 9, 1, seed=3)
    assert len(other) == 12 and not {c.video for c in used} & {c.video for c in other}
    assert other == floor_clips(videos, used, 12, 9, 1, seed=3)  # seeded
    assert len(floor_clips(videos, used, 20, 9, 1, seed=3)) == 18  # fewer left: what there is
    used_all, _ = sample_real_clips(videos, 28, 9, 1, seed=3)
    assert floor_clips(videos, used_all, 28, 9, 1, seed=3) == []  # 2 left: none
    rng = np.random.default_rng(0)
    real = FeatureStats(keep_features=True)
    real.append(rng.standard_normal((40, 3)))
    halves = floor_entry(real, None, 40, "biased", 0)
    assert halves["real_count"] == halves["floor_count"] == 20 and halves["tag"] == "floor 20 vs 20 clips"
    assert "halves" in halves["sets"] and halves["fvd_inf_ci"][0] == 0.0  # same distribution: the interval reaches 0


def test_prdc_matches_the_prdc_package():
    prdc_pkg = pytest.importorskip("prdc", reason="the prdc package (test extra) is not installed")
    from latte_bench.metrics.prdc import prdc

    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((200, 16)), rng.standard_normal((150, 16)) * 1.3 + 0.4)]
    demo = ROOT / "reports" / "demo" / "results" / "features"
    cases.append((FeatureStats.load(demo / "demo_v1_seed0_fvd_real.npz").features,
                  FeatureStats.load(demo / "demo_v1_seed0_fvd_fake.npz").features))
    for real, fake in cases:
        ours = prdc(real, fake, k=5)
        theirs = prdc_pkg.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
        for m in ("precision", "recall", "density", "coverage"):
            assert ours[m] == pytest.approx(theirs[m], abs=1e-12), m
        assert ours["k"] == 5 and ours["real_count"] == len(real) and ours["fake_count"] == len(fake)
    with pytest.raises(UserError, match="more than 5"):
        prdc(real[:5], fake)


@pytest.mark.slow
def test_eval_cli_save_features_real_features_floor(tmp_path, capsys):
    """`eval --save-features DIR --floor --json`, then `eval --real-features DIR/i3d_real.npz` without --real."""
    from latte_bench.cli import main
    from latte_bench.data.video import write_npz

    write_npz(tmp_path / "real.npz", waves(12, 9, 0))
    write_npz(tmp_path / "fake.npz", waves(6, 9, 1))
    common = ["--fake", str(tmp_path / "fake.npz"), "--num-clips", "6", "--num-frames", "9", "--real-stride", "1",
              "--device", "cpu", "--no-cache", "--no-progress", "--threads", "1"]
    assert main(["eval", "--real", str(tmp_path / "real.npz"), *common, "--save-features", str(tmp_path / "f"), "--floor",
                 "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    a = json.loads((tmp_path / "a.json").read_text())
    res = a["results"]["fvd"]
    assert f"{res['value']:.4f} ± {res['se']:.4f} (FVD∞ {res['fvd_inf']:.4f}" in out and "floor (real vs real, 6 vs 6 clips)" in out
    index = json.loads((tmp_path / "f" / "features.json").read_text())
    assert index["schema"] == "latte-bench/features/1" and index["files"]["i3d"]["real"] == "i3d_real.npz"
    assert main(["eval", *common, "--real-features", str(tmp_path / "f" / "i3d_real.npz"), "--json", str(tmp_path / "b.json")]) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["metrics"]["fvd"] == a["metrics"]["fvd"] and b["results"]["fvd"]["se"] == res["se"]
    assert b["results"]["fvd"]["provenance"]["real_stats_cache"]["real_features"].endswith("i3d_real.npz")
    capsys.readouterr()
    assert main(["eval", *common, "--real-features", str(tmp_path / "nothing.npz")]) == 2
    assert "--real-features" in capsys.readouterr().err
