"""`latte-bench compare`: the paired test against simulations with known truth, and the grouped differences."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from latte_bench.cli import main
from latte_bench.errors import UserError
from latte_bench.metrics.compare import compare_features, compare_records, paper_departures
from latte_bench.metrics.protocol import EFFECTS, FIELD_EFFECTS, Protocol, RunOptions, effect_of
from latte_bench.metrics.stats import FeatureStats, frechet_distance

DEMO_RECORD = Path(__file__).resolve().parents[1] / "reports" / "demo" / "results" / "demo_v1_seed0.json"
D, N, TRIALS = 16, 600, 40


def _sets(rng, shift_a: float, shift_b: float):
    """real ~ N(0, I); A, B ~ N(mu, I) with |mu|^2 = shift along one axis: FD(real, X) = shift exactly."""
    real = rng.standard_normal((N, D))
    a = rng.standard_normal((N, D))
    b = rng.standard_normal((N, D))
    a[:, 0] += math.sqrt(shift_a)
    b[:, 0] += math.sqrt(shift_b)
    return real, a, b


def _trials(shift_a: float, shift_b: float, seed: int):
    rng = np.random.default_rng(seed)
    return [compare_features(*_sets(rng, shift_a, shift_b), seed=t, n_resamples=200) for t in range(TRIALS)]


def test_same_distribution_is_significant_in_at_most_10_percent_of_trials():
    runs = _trials(0.8, 0.8, seed=1)
    assert np.mean([r.p_value < 0.05 for r in runs]) <= 0.10
    assert np.mean([r.ci[0] <= 0.0 <= r.ci[1] for r in runs]) >= 0.85


def test_a_set_farther_away_is_found_and_its_interval_covers_the_true_difference():
    # B is 0.5 farther from the real set than A (FD 1.3 vs 0.8): the true difference is 0.5
    runs = _trials(0.8, 1.3, seed=2)
    assert np.mean([r.p_value < 0.05 for r in runs]) >= 0.80
    assert np.mean([r.ci[0] <= 0.5 <= r.ci[1] for r in runs]) >= 0.85
    se_ratio = np.mean([r.se for r in runs]) / np.std([r.delta for r in runs], ddof=1)
    assert 0.7 <= se_ratio <= 1.4


def test_bias_correction_removes_the_bias_of_unequal_spreads():
    # FD is biased upward by an amount that grows with a set's spread: B, twice as spread, looks farther
    rng = np.random.default_rng(3)
    d, n = 32, 200
    true = d * (2.0 + 1.0 - 2.0 * math.sqrt(2.0)) - 0.5  # FD(N(0,2I), N(0,I)) - FD(N(mu,I), N(0,I))
    raw, corrected = [], []
    for t in range(15):
        real, a = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        a[:, 0] += math.sqrt(0.5)
        b = rng.standard_normal((n, d)) * math.sqrt(2.0)
        r = compare_features(real, a, b, seed=t, n_resamples=100)
        raw.append(r.delta)
        corrected.append(r.delta_corrected)
    assert abs(np.mean(corrected) - true) < 0.5 * abs(np.mean(raw) - true)


def test_values_equal_the_evaluation_bit_for_bit_and_p_matches_the_interval():
    rng = np.random.default_rng(4)
    real, a, b = (x.astype(np.float32) for x in _sets(rng, 0.3, 0.4))
    r = compare_features(real, a, b, n_resamples=50)
    stats = []
    for x in (real, a, b):
        s = FeatureStats()
        s.append(x)
        stats.append(s)
    assert r.value_a == frechet_distance(stats[0].mean(), stats[0].cov(), stats[1].mean(), stats[1].cov())
    assert r.value_b == frechet_distance(stats[0].mean(), stats[0].cov(), stats[2].mean(), stats[2].cov())
    assert r.delta == r.value_b - r.value_a
    assert r.significant == (not r.ci[0] <= 0.0 <= r.ci[1])
    again = compare_features(real, a, b, n_resamples=50)
    assert again == r  # seeded
    assert compare_features(real, a, b, n_resamples=50, seed=1).se != r.se


def test_the_demo_records_features_give_the_recorded_fvd():
    from latte_bench.reports.store import load_record, record_features

    rec = load_record(DEMO_RECORD)
    real, fake = record_features(rec, "fvd")
    r = compare_features(real, fake, fake, n_resamples=20)
    # the record summed its features in pass order with the BLAS of that run: equal up to summation order
    assert r.value_a == r.value_b and r.delta == 0.0
    assert r.value_a == pytest.approx(rec.metrics["fvd"], rel=1e-9)


def test_unpaired_when_each_evaluation_drew_its_own_real_clips():
    rng = np.random.default_rng(5)
    real, a, b = _sets(rng, 0.8, 0.8)
    real_b = rng.standard_normal((N, D))
    paired = compare_features(real, a, b, n_resamples=100)
    unpaired = compare_features(real, a, b, real_b=real_b, n_resamples=100)
    assert paired.paired and not unpaired.paired
    assert unpaired.value_b != paired.value_b and unpaired.value_a == paired.value_a
    assert unpaired.se > paired.se  # the real draws' noise no longer cancels


def test_bad_features_are_one_line():
    with pytest.raises(UserError, match="fake_b features must be an"):
        compare_features(np.zeros((5, 3)), np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(UserError, match="dimensions differ"):
        compare_features(np.zeros((5, 3)), np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(UserError, match="NaN"):
        compare_features(np.full((5, 3), np.nan), np.zeros((5, 3)), np.zeros((5, 3)))


# ---------------------------------------------------------------- records


def _demo() -> dict:
    record = json.loads(DEMO_RECORD.read_text())
    del record["features"]  # relative paths: written elsewhere, the record would point at nothing
    record.pop("bootstrap", None)
    return record


def test_every_protocol_and_run_setting_has_one_effect():
    import dataclasses

    names = {f.name for f in dataclasses.fields(Protocol)} | {f.name for f in dataclasses.fields(RunOptions)}
    assert names == set(FIELD_EFFECTS)
    assert set(FIELD_EFFECTS.values()) <= set(EFFECTS)
    assert effect_of("protocol.resize") == "meaning" and effect_of("protocol.seed") == "draw"
    assert effect_of("protocol.torch_threads") == "digits" and effect_of("run.batch_size") == "none"
    assert effect_of("metrics.fvd") is None and effect_of("wall_time_s") is None  # results, not settings


@pytest.mark.parametrize("change, key, effect", [
    (lambda r: r["protocol"].update(resize="tf"), "protocol.resize", "meaning"),
    (lambda r: r["protocol"].update(covariance="unbiased"), "protocol.covariance", "meaning"),
    (lambda r: r["counts"].update(real_clips=32), "counts.real_clips", "meaning"),
    (lambda r: r["detectors"].update(i3d="0" * 64), "detectors.i3d", "meaning"),
    (lambda r: r["real"].update(sha256="1" * 64), "real.sha256", "meaning"),
    (lambda r: r["fake"].update(kind="path", layout="videos"), "fake.lossless", "meaning"),
    (lambda r: r["protocol"].update(seed=1), "protocol.seed", "draw"),
    (lambda r: r["protocol"].update(torch_threads=4), "protocol.torch_threads", "digits"),
    (lambda r: r["environment"]["packages"].update(torch="2.5.0"), "environment.packages.torch", "digits"),
    (lambda r: r["run"].update(batch_size=2, num_workers=4), "run.batch_size", "none"),
    (lambda r: r["fake"]["checkpoint"].update(sha256="2" * 64), "fake.checkpoint.sha256", "generated"),
    (lambda r: r["fake"].update(sampler="ddpm", steps=250), "fake.sampler", "generated"),
])
def test_record_differences_are_grouped_by_what_they_do(change, key, effect):
    a, b = _demo(), _demo()
    change(b)
    b["metrics"]["fvd"] += 1.0  # results never count as a difference
    b["wall_time_s"] = 1.0
    cmp = compare_records(a, b)
    assert key in {d.key for d in cmp.group(effect)}
    assert all(d.effect != "meaning" for d in cmp.differences) == (effect != "meaning")
    assert cmp.comparable == (effect != "meaning")
    assert "metrics.fvd" not in {d.key for d in cmp.differences}


def test_identical_records_have_no_difference():
    cmp = compare_records(_demo(), _demo())
    assert cmp.differences == [] and cmp.comparable and cmp.verdict.startswith("comparable")


def test_paper_departures_of_a_demo_record_against_ucf101():
    deps = {d.key: d for d in paper_departures(_demo(), "ucf101")}
    assert deps["protocol.num_clips"].paper == 2048 and deps["protocol.num_clips"].record == 64
    assert deps["protocol.real_stride"].paper == 3 and deps["protocol.real_stride"].record == 1
    assert deps["fake.sampler"].paper == "ddpm" and deps["fake.steps"].record == 25
    assert deps["fake.cfg_scale"].paper == 7.0 and deps["protocol.dataset"].record == "demo"
    assert "fake.lossless" not in deps  # sampled in memory: lossless
    assert "docs/why-fvd-differs.md" in deps["protocol.num_clips"].effect


# ---------------------------------------------------------------- the command


def _write(path: Path, record: dict) -> str:
    path.write_text(json.dumps(record))
    return str(path)


def _features_record(tmp_path: Path, name: str, real: np.ndarray, fake: np.ndarray, seed: int = 0) -> str:
    rec = _demo()
    rec["protocol"]["seed"] = rec["seed"] = rec["fake"]["seed"] = seed
    for side, x in (("real", real), ("fake", fake)):
        s = FeatureStats(keep_features=True)
        s.append(x)
        s.save(tmp_path / f"{name}_{side}.npz")
    rec["features"] = {"fvd": {"real": f"{name}_real.npz", "fake": f"{name}_fake.npz"}}
    r, f = FeatureStats(), FeatureStats()
    r.append(real)
    f.append(fake)
    rec["metrics"] = {"fvd": frechet_distance(r.mean(), r.cov(), f.mean(), f.cov())}
    rec["results"] = {"fvd": {**rec["results"]["fvd"], "value": rec["metrics"]["fvd"]}}
    return _write(tmp_path / f"{name}.json", rec)


def test_compare_cli_exit_status_and_json(tmp_path, capsys):
    a = _write(tmp_path / "a.json", _demo())
    other = _demo()
    other["protocol"]["resize"] = "tf"
    other["run"]["batch_size"] = 3
    b = _write(tmp_path / "b.json", other)
    assert main(["compare", a, a]) == 0
    assert "verdict: comparable" in capsys.readouterr().out
    assert main(["compare", a, b, "--json", str(tmp_path / "cmp.json")]) == 1
    out = capsys.readouterr().out
    assert "not comparable: protocol.resize differ" in out and "run.batch_size" in out
    saved = json.loads((tmp_path / "cmp.json").read_text())["comparisons"][0]
    assert saved["comparable"] is False and saved["groups"]["meaning"][0]["key"] == "protocol.resize"
    assert main(["compare", str(tmp_path / "missing.json"), a]) == 2
    assert "missing.json: no such record file" in capsys.readouterr().err
    assert main(["compare", a, "--paper", "ucf101"]) == 1
    out = capsys.readouterr().out
    assert "protocol.num_clips: paper 2048, record 64" in out and "fake.sampler: paper ddpm, record ddim" in out


def test_compare_cli_tests_significance_on_saved_features(tmp_path, capsys):
    rng = np.random.default_rng(6)
    real, a, b = (x.astype(np.float32) for x in _sets(rng, 0.8, 1.6))
    ra = _features_record(tmp_path, "a", real, a)
    rb = _features_record(tmp_path, "b", real, b)
    assert main(["compare", ra, rb, "--resamples", "100", "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    sig = json.loads((tmp_path / "c.json").read_text())["comparisons"][0]["significance"]["fvd"]
    assert sig["paired"] and sig["significant"] and sig["delta"] > 0.5
    assert "  FVD: A 1.05, B 1.81; B - A = +0.76" in out and ": significant (paired bootstrap" in out

    # the same generator at another seed: other real clips and samples, comparable, not significant
    real2, a2 = rng.standard_normal((N, D)).astype(np.float32), rng.standard_normal((N, D)).astype(np.float32)
    a2[:, 0] += math.sqrt(0.8)
    rc = _features_record(tmp_path, "c", real2, a2, seed=1)
    assert main(["compare", ra, rc, "--resamples", "100", "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    entry = json.loads((tmp_path / "d.json").read_text())["comparisons"][0]
    assert entry["comparable"] and [d["key"] for d in entry["groups"]["draw"]] == ["fake.seed", "protocol.seed", "seed"]
    assert not entry["significance"]["fvd"]["paired"] and not entry["significance"]["fvd"]["significant"]
    assert "not significant (unpaired" in out


def test_table3_against_marks_rows_not_significantly_different(tmp_path, capsys):
    rng = np.random.default_rng(7)
    real = rng.standard_normal((N, D)).astype(np.float32)
    sets = {}
    for name, shift in (("a", 0.8), ("same", 0.8), ("far", 2.0)):
        x = rng.standard_normal((N, D)).astype(np.float32)
        x[:, 0] += math.sqrt(shift)
        sets[name] = x
    results = tmp_path / "results"
    results.mkdir()
    for name, x in sets.items():
        path = _features_record(results, name, real, x)
        rec = json.loads(Path(path).read_text())
        rec["method"] = name
        Path(path).write_text(json.dumps(rec))
    assert main(["report", "table3", "--results", str(results), "--out", str(tmp_path / "out"),
                 "--no-reported", "--against", "a"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("|")[1].split("[")[0].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "≈" in lines["same"] and "≈" not in lines["far"] and "≈" not in lines["a"]
    assert "`≈`: not significantly different from a" in out
    assert main(["report", "table3", "--results", str(results), "--out", str(tmp_path / "out"),
                 "--against", "nobody"]) == 2


@pytest.mark.slow
def test_two_seeds_of_one_checkpoint_are_comparable_and_not_significant(tmp_path, capsys):
    """The real path end to end: a tiny demo model scored twice (seeds 0 and 1) with saved features, then compared."""
    import dataclasses

    import torch

    from latte_bench.training.presets import preset
    from latte_bench.training.trainer import train

    run = tmp_path / "run"
    cfg = dataclasses.replace(preset("demo"), out=str(run), steps=2, num_frames=9, demo_videos=8, ckpt_every=2,
                              model_options={"hidden_size": 32, "depth": 2, "num_heads": 2}, prediction="eps",
                              noise_schedule="linear", learn_sigma=True, lr_schedule="constant", warmup_steps=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    records = []
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}.json"
        assert main(["eval", "--dataset", "demo", "--ckpt", str(run), "--num-clips", "8", "--num-frames", "9",
                     "--steps", "2", "--sampler", "ddim", "--no-progress", "--threads", "1", "--seed", str(seed),
                     "--save-features", str(tmp_path / f"features{seed}"), "--json", str(out)]) == 0
        records.append(str(out))
    capsys.readouterr()
    assert main(["compare", *records, "--resamples", "100", "--json", str(tmp_path / "cmp.json")]) == 0
    entry = json.loads((tmp_path / "cmp.json").read_text())["comparisons"][0]
    assert entry["comparable"] and {"protocol.seed", "fake.seed"} <= {d["key"] for d in entry["groups"]["draw"]}
    assert not entry["groups"]["meaning"] and not entry["groups"]["generated"]
    sig = entry["significance"]["fvd"]
    assert not sig["paired"] and not sig["significant"]  # each seed drew its own real clips
