"""`latte-bench bench`: two checkpoints of one tiny demo run -> two records, Table 3 with both rows beside the
paper's, an FVD-vs-step curve; a rerun evaluates nothing; a killed run evaluates only what is missing, resuming
from its work folder; a bad plan is refused in one line before anything is sampled."""

from __future__ import annotations

import csv
import json
import math
import sys

import pytest

import latte_bench.metrics as metrics
from latte_bench.cli import main
from latte_bench.fsutil import sha256_file
from latte_bench.commands.bench import build_plan, fvd_series, read_plan_file

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = '{"hidden_size": 32, "depth": 2, "num_heads": 2}'
# the shortest protocol the I3D takes (2 clips of 9 frames), 2 sampling steps
PROTOCOL = 'num_clips = 2\nnum_frames = 9\nsteps = 2\nmetrics = ["fvd"]\nbatch_size = 2\n'


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 2-step demo run with a checkpoint after each step: 9-frame 16x16 videos, 4 classes, a 2-block Latte."""
    out = tmp_path_factory.mktemp("bench_run") / "run"
    assert main(["train", "demo", "--steps", "2", "--ckpt-every", "1", "--log-every", "1", "--out", str(out),
                 "--model-options", TINY, "--num-frames", "9", "--demo-videos", "8", "--batch-size", "2",
                 "--no-progress"]) == 0
    return out


def write_plan(path, run_dir, methods=None):
    methods = methods or f'[methods.tiny]\ndemo = "{run_dir}/checkpoints/*"\n'
    path.write_text(f'out = "out"\n\n[protocol]\n{PROTOCOL}cache_dir = "cache"\n\n{methods}')
    return path


def table_line(md: str, start: str) -> str:
    """The one Markdown table line that starts with ``start``."""
    lines = [line for line in md.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, md)
    return lines[0] + " "


@pytest.fixture(scope="module")
def benched(run_dir, tmp_path_factory):
    """The plan, its output folder and the two records (step 1, step 2), after one bench run."""
    plan = write_plan(tmp_path_factory.mktemp("bench") / "plan.toml", run_dir)
    assert main(["bench", str(plan), "--no-progress"]) == 0
    out = plan.parent / "out"
    summary = json.loads((out / "bench.json").read_text())
    return plan, out, [out / e["record"] for e in summary["evaluations"]]


@pytest.fixture
def no_evaluation(monkeypatch):
    """Fail the test if anything is evaluated or a model is loaded for sampling."""
    from latte_bench.metrics.sources import CheckpointSource

    def tripwire(*args, **kwargs):
        raise AssertionError("an evaluation started")

    monkeypatch.setattr(metrics, "evaluate", tripwire)
    monkeypatch.setattr(CheckpointSource, "load", tripwire)


def test_two_checkpoints_give_two_records_both_rows_and_a_curve(run_dir, benched):
    plan, out, paths = benched
    records = [json.loads(p.read_text()) for p in paths]
    assert not (out / "work").exists()  # work folders serve a resume only; gone once the records are written
    fvds = []
    for step, record in zip((1, 2), records):
        ckpt = run_dir / "checkpoints" / f"{step:07d}.pt"
        assert record["fake"]["checkpoint"]["sha256"] == sha256_file(ckpt)
        assert record["fake"]["checkpoint"]["step"] == step and record["fake"]["steps"] == 2
        assert record["method"] == f"tiny step {step}" and record["dataset"] == "demo"
        assert record["protocol"]["num_clips"] == 2 and record["protocol"]["num_frames"] == 9
        assert record["counts"]["real_clips"] == record["counts"]["fake_clips"] == 2
        assert record["bench"]["checkpoint_sha256"] == record["fake"]["checkpoint"]["sha256"]
        fvds.append(record["metrics"]["fvd"])
    assert all(math.isfinite(v) and v > 0 for v in fvds) and fvds[0] != fvds[1]  # two models, two numbers

    # Table 3: the paper's rows, and one measured row per checkpoint with its record's number
    md = (out / "table3.md").read_text()
    assert all(v in table_line(md, "| Latte | reported |") for v in ("| 34.00 ", "| 59.82 ", "| 477.97 ", "| 159.60 "))
    assert "| tiny step 1 [" in md and "| tiny step 2 [" in md  # tagged: 2 clips of 9 frames is not the protocol
    with open(out / "table3.csv") as f:
        measured = {r["method"]: float(r["mean"]) for r in csv.DictReader(f) if r["source"] == "measured"}
    assert measured == pytest.approx({"tiny step 1": fvds[0], "tiny step 2": fvds[1]}, rel=1e-5)
    assert all(v in table_line((out / "table5.md").read_text(), "| Latte | reported |") for v in ("| 5.02 ", "| 68.53 "))

    # FVD against training step, one line for the run (paper Fig. 5/7)
    assert fvd_series(build_plan(read_plan_file(plan), plan.parent, str(plan))) == {"demo": {"tiny": ([1, 2], fvds)}}
    for ext in ("png", "pdf"):
        assert (out / f"fvd_vs_step_demo.{ext}").stat().st_size > 1000


def test_rerun_evaluates_nothing_and_a_killed_run_only_what_is_missing(benched, monkeypatch, capsys):
    plan, out, paths = benched
    stamps = [p.stat().st_mtime_ns for p in paths]
    figure = (out / "fvd_vs_step_demo.png").stat().st_mtime_ns
    calls = []
    evaluate = metrics.evaluate

    def counting(*args, **kwargs):
        calls.append(kwargs["method"])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(metrics, "evaluate", counting)
    capsys.readouterr()
    assert main(["bench", str(plan), "--no-progress", "--batch-size", "1"]) == 0  # a batch size moves no number
    assert calls == [] and [p.stat().st_mtime_ns for p in paths] == stamps
    assert (out / "fvd_vs_step_demo.png").stat().st_mtime_ns == figure  # same numbers: not redrawn
    assert "2 recorded (reused), 0 to run" in capsys.readouterr().out

    # killed during the second evaluation (its passes done, its record not yet written): the rerun runs only
    # that evaluation, which resumes from its work folder under OUT/work to the same number
    import latte_bench.metrics.evaluation as evaluation

    before = json.loads(paths[1].read_text())
    paths[1].unlink()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(evaluation, "build_record", killed)
        assert main(["bench", str(plan), "--no-progress"]) == 130
    ev = build_plan(read_plan_file(plan), plan.parent, str(plan)).evaluations[1]
    assert not paths[1].exists() and ev.work_dir.parents[2] == out / "work" and any(ev.work_dir.iterdir())
    assert main(["bench", str(plan), "--no-progress"]) == 0
    assert calls == ["tiny step 2", "tiny step 2"] and paths[0].stat().st_mtime_ns == stamps[0]
    after = json.loads(paths[1].read_text())
    assert after["run"]["resumed_blocks"] > 0 and after["metrics"]["fvd"] == before["metrics"]["fvd"]
    assert not ev.work_dir.exists()  # removed once the record is written

    # a renamed method: same checkpoints, same settings -> the records are copied under the new name, not re-made
    renamed = plan.with_name("renamed.toml")
    renamed.write_text(plan.read_text().replace("[methods.tiny]", "[methods.renamed]"))
    assert main(["bench", str(renamed), "--no-progress"]) == 0
    assert calls == ["tiny step 2", "tiny step 2"]
    copies = sorted((out / "records" / "renamed" / "demo").glob("*.json"))
    assert [json.loads(p.read_text())["method"] for p in copies] == ["renamed step 1", "renamed step 2"]
    assert [json.loads(p.read_text())["metrics"] for p in copies] == [json.loads(p.read_text())["metrics"] for p in paths]


def test_record_key_follows_the_protocol_not_the_batch_size(benched):
    plan, _, _ = benched
    raw = read_plan_file(plan)

    def keys(**settings):
        changed = {**raw, "protocol": {**raw["protocol"], **settings}}
        return [ev.key for ev in build_plan(changed, plan.parent, str(plan)).evaluations]

    base = keys()
    assert base[0] != base[1]  # two checkpoints
    assert keys(batch_size=1) == base and keys(seed=0) == base  # no effect / the default spelled out
    for change in ({"seed": 1}, {"steps": 3}, {"resize": "tf"}, {"num_runs": 2}, {"metrics": ["fvd", "kvd"]}):
        assert keys(**change)[0] != base[0], change


@pytest.mark.parametrize("args, message", [
    (["--ckpt", "imagenet={run}"], "unknown dataset 'imagenet'"),
    (["--ckpt", "demo={run}/checkpoints/0000009.pt"], "no such checkpoint"),
    (["--ckpt", "demo={run}/nothing/*"], "no checkpoint matches"),
    (["--ckpt", "demo={run}"], "9-frame videos"),  # the default protocol scores 16-frame clips
    (["--ckpt", "ucf101={run}", "--num-frames", "9", "--data", "ucf101={tmp}"], "no UCF101 C3D weights"),
    (["--ckpt", "ucf101={run}", "--num-frames", "9", "--data", "ucf101={tmp}", "--metrics", "fvd"],
     "ucf101 needs 101 classes"),
    (["--ckpt", "ffs={run}", "--num-frames", "9", "--data-root", "{tmp}/nowhere"], "data root of ffs not found"),
    (["--ckpt", "ffs={run}", "--num-frames", "9"], "no data root for ffs"),
    (["--ckpt", "demo={run}", "--num-frames", "9", "--set", "num_clip=3"], "unknown setting(s) num_clip"),
    (["--ckpt", "demo={run}", "--num-frames", "9", "--set", "work_dir=x"], "set by the benchmark runner"),
    (["--ckpt", "demo={run}", "--num-frames", "9", "--metrics", "fvd,fdv"], "unknown metric(s) fdv"),
])
def test_bad_plan_is_one_line_exit_2_before_any_work(run_dir, tmp_path, monkeypatch, capsys, no_evaluation, args, message):
    for var in ("LATTE_BENCH_DATA", "LATTE_BENCH_TGAN2_C3D", "LATTE_BENCH_C3D_UCF101"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LATTE_BENCH_CACHE", str(tmp_path / "empty_cache"))  # no C3D weights installed
    out = tmp_path / "out"
    argv = ["bench", "--method", "tiny", "--out", str(out), *(a.format(run=run_dir, tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_unwritable_out_is_refused_before_any_work(run_dir, tmp_path, capsys, no_evaluation):
    (tmp_path / "file").write_text("not a folder")
    assert main(["bench", "--method", "tiny", "--ckpt", f"demo={run_dir}", "--num-frames", "9",
                 "--out", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and "--out" in err


def test_one_bad_entry_stops_the_whole_plan(run_dir, tmp_path, capsys, no_evaluation):
    good = f'[methods.tiny]\ndemo = "{run_dir}/checkpoints/*"\n'
    plan = write_plan(tmp_path / "plan.toml", run_dir, good + '\n[methods.other]\ndemo = "missing.pt"\n')
    assert main(["bench", str(plan)]) == 2
    assert "methods.other.demo: missing.pt: no such checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "typo.toml").write_text(plan.read_text().replace("[protocol]", "[protocols]"))
    assert main(["bench", str(tmp_path / "typo.toml")]) == 2
    assert "unknown plan key(s) protocols" in capsys.readouterr().err


def test_yaml_plan_reads_as_the_toml_one(run_dir, tmp_path, monkeypatch, capsys):
    yaml = pytest.importorskip("yaml")
    toml = read_plan_file(write_plan(tmp_path / "plan.toml", run_dir))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(toml))
    assert read_plan_file(tmp_path / "plan.yaml") == toml
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    assert main(["bench", str(tmp_path / "plan.yaml")]) == 2
    err = capsys.readouterr().err
    assert "needs PyYAML" in err and "TOML" in err and err.count("\n") == 1


def test_official_file_counts_read_from_its_weights(run_dir, tmp_path, capsys, no_evaluation):
    """An official {"ema": state_dict} file carries no config: frames and classes come from the tensor shapes."""
    from latte_bench.training.checkpoint import read_header

    official = tmp_path / "ema.pt"
    assert main(["export-official", "--ckpt", str(run_dir / "checkpoints" / "0000002.pt"), "--out", str(official)]) == 0
    info = read_header(official)
    assert info["format"] == "official" and info["step"] is None
    assert (info["num_frames"], info["num_classes"]) == (9, 4)
    assert info["sha256"] == sha256_file(official)
    assert main(["bench", "--method", "tiny", "--ckpt", f"ucf101={official}", "--num-frames", "9",
                 "--metrics", "fvd", "--data", f"ucf101={tmp_path}", "--out", str(tmp_path / "out")]) == 2
    assert "ucf101 needs 101 classes" in capsys.readouterr().err


def test_one_checkpoint_under_two_methods_is_evaluated_once(run_dir, tmp_path):
    from latte_bench.commands.bench import _to_run

    ckpt = run_dir / "checkpoints" / "0000002.pt"
    plan = write_plan(tmp_path / "plan.toml", run_dir, f'[methods.a]\ndemo = "{ckpt}"\n[methods.b]\ndemo = "{run_dir}"\n')
    built = build_plan(read_plan_file(plan), plan.parent, str(plan))
    assert [ev.checkpoint for ev in built.evaluations] == [ckpt, ckpt]  # the run folder: its latest checkpoint
    assert _to_run(built) == [True, False]  # b copies a's record once it is written


def test_files_that_are_not_latte_checkpoints_are_refused(tmp_path, capsys, no_evaluation):
    import torch

    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for name, message in (("other.pt", "not a Latte checkpoint"), ("text.pt", "cannot be read as a weights-only checkpoint")):
        assert main(["bench", "--method", "x", "--ckpt", f"demo={tmp_path / name}", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def unconditional_run_and_real_roots(tmp_path, videos: int):
    """A 1-step unconditional 9-frame run (``tmp_path/run``) and two taichi-style real roots ``a`` and ``b`` of
    ``videos`` 9-frame 16x16 PNG videos each, from different seeds."""
    from PIL import Image

    from synthetic import waves

    run = tmp_path / "run"
    assert main(["train", "demo", "--steps", "1", "--out", str(run), "--model-options", TINY, "--num-frames", "9",
                 "--demo-videos", "4", "--batch-size", "2", "--num-classes", "0", "--no-progress"]) == 0
    for name, seed in (("a", 0), ("b", 7)):
        for i, video in enumerate(waves(videos, 9, seed=seed, size=16)):
            (tmp_path / name / "train" / f"v{i}").mkdir(parents=True)
            for t, frame in enumerate(video):
                Image.fromarray(frame).save(tmp_path / name / "train" / f"v{i}" / f"{t:02d}.png")
    return run


def test_a_record_made_on_other_real_data_is_not_reused(tmp_path, capsys):
    """Issue 20 item 5: a rerun with another --data said "recorded ..., not run again" and kept the old FVD."""
    run = unconditional_run_and_real_roots(tmp_path, 2)
    common = ["bench", "--method", "m", "--ckpt", f"taichi={run}", "--out", str(tmp_path / "out"), "--num-clips", "2",
              "--num-frames", "9", "--real-stride", "1", "--steps", "2", "--metrics", "fvd", "--no-progress",
              "--set", f'cache_dir="{tmp_path / "cache"}"']
    fvd = {}
    for name in ("a", "b", "a"):
        capsys.readouterr()
        assert main([*common, "--data", f"taichi={tmp_path / name}"]) == 0
        out = capsys.readouterr().out
        (entry,) = json.loads((tmp_path / "out" / "bench.json").read_text())["evaluations"]
        record = tmp_path / "out" / entry["record"]
        fvd.setdefault(name, []).append(json.loads(record.read_text())["metrics"]["fvd"])
        assert ("1 recorded (reused), 0 to run" in out) == (len(fvd[name]) == 2), out
    assert fvd["a"][0] == fvd["a"][1] != fvd["b"][0]
    fresh = metrics.evaluate(None, metrics.CheckpointSource(str(run), steps=2), dataset="taichi",
                             data_root=str(tmp_path / "b"), num_clips=2, num_frames=9, real_stride=1, cache=False,
                             progress=False)
    assert fvd["b"][0] == fresh.fvd


def test_a_record_that_cannot_be_written_is_one_line_and_keeps_the_work_folder(run_dir, tmp_path, capsys):
    """Issue 20 item 10: a write failure at the end is one line naming the file, and the work folder stays for a rerun."""
    plan = write_plan(tmp_path / "plan.toml", run_dir, f'[methods.tiny]\ndemo = "{run_dir}/checkpoints/0000001.pt"\n')
    (ev,) = build_plan(read_plan_file(plan), plan.parent, str(plan)).evaluations
    ev.record_path.mkdir(parents=True)  # a folder where the record goes: the write fails (IsADirectoryError)
    capsys.readouterr()
    assert main(["bench", str(plan), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"latte-bench: error: {ev.record_path}: cannot write (Is a directory); ") and "\n" not in err
    assert any(ev.work_dir.glob("block_*.json"))  # kept: the rerun resumes
    ev.record_path.rmdir()
    assert main(["bench", str(plan), "--no-progress"]) == 0
    assert json.loads(ev.record_path.read_text())["run"]["resumed_blocks"] > 0 and not ev.work_dir.exists()


def test_floor_is_scored_once_per_dataset_and_reused(run_dir, tmp_path, monkeypatch, capsys):
    """`floor = true`: one real-vs-real floor for both checkpoints on demo, with the numbers `eval --floor` records
    on the same protocol, under table3.md and in bench.json; a rerun scores nothing; another seed scores it again."""
    calls = []
    evaluate_floor = metrics.evaluate_floor

    def counting(*args, **kwargs):
        calls.append(kwargs["dataset"])
        return evaluate_floor(*args, **kwargs)

    monkeypatch.setattr(metrics, "evaluate_floor", counting)
    plan = write_plan(tmp_path / "plan.toml", run_dir)
    plan.write_text("floor = true\n" + plan.read_text())
    four = ["--num-clips", "4"]  # the fewest clips with an se (4 a side)
    assert main(["bench", str(plan), "--no-progress", *four]) == 0
    out = tmp_path / "out"
    (path,) = (out / "floors" / "demo").glob("floor-*.json")
    record = json.loads(path.read_text())
    floor = record["floor"]
    assert calls == ["demo"] and record["dataset"] == "demo" and record["protocol"]["num_clips"] == 4
    # the demo split is made with exactly num_clips videos: the floor's set is the next 4 the demo set makes
    eval_floor = metrics.evaluate(None, metrics.CheckpointSource(str(run_dir), steps=2), dataset="demo", num_clips=4,
                                  num_frames=9, floor=True, cache=False, progress=False).record["floor"]
    assert floor == eval_floor and floor["tag"] is None and floor["sets"] == "protocol real clips vs clips of other real videos"
    assert floor["real_count"] == floor["floor_count"] == 4 and floor["fvd"] > 0 and floor["se"] > 0

    (entry,) = json.loads((out / "bench.json").read_text())["floors"]
    assert entry["record"] == str(path.relative_to(out)) and entry["num_clips"] == 4
    assert [entry[k] for k in ("fvd", "se", "fvd_inf", "fvd_inf_ci")] == [floor[k] for k in ("fvd", "se", "fvd_inf", "fvd_inf_ci")]
    footer = next(line for line in (out / "table3.md").read_text().splitlines() if "Real-vs-real floor" in line)
    low, high = floor["fvd_inf_ci"]
    assert (f"Demo, 4 clips of 9 frames: FVD floor (real vs real, 4 vs 4 clips): {floor['fvd']:.2f} ± {floor['se']:.2f} "
            f"(FVD∞ {floor['fvd_inf']:.2f} [{low:.2f}, {high:.2f}]) (`floors/demo/{path.name}`)") in footer

    capsys.readouterr()
    assert main(["bench", str(plan), "--no-progress", *four]) == 0
    assert calls == ["demo"] and f"recorded in {path.name}, not run again" in capsys.readouterr().out
    assert main(["bench", str(plan), "--no-progress", *four, "--seed", "1"]) == 0  # other real clips: scored again
    assert calls == ["demo", "demo"] and len(list((out / "floors" / "demo").glob("floor-*.json"))) == 2


def test_floor_of_other_real_data_is_scored_again(tmp_path, capsys):
    """`bench --floor` on two real roots of one dataset: a floor each (from real videos the protocol's clips do not
    use, with se and FVD∞), the same numbers as `evaluate_floor` on that root; back on the first root, reused."""
    run = unconditional_run_and_real_roots(tmp_path, 8)
    common = ["bench", "--method", "m", "--ckpt", f"taichi={run}", "--out", str(tmp_path / "out"), "--num-clips", "4",
              "--num-frames", "9", "--real-stride", "1", "--steps", "2", "--metrics", "fvd", "--no-progress", "--floor",
              "--set", f'cache_dir="{tmp_path / "cache"}"']
    floors = {}
    for name in ("a", "b", "a"):
        capsys.readouterr()
        assert main([*common, "--data", f"taichi={tmp_path / name}"]) == 0
        out = capsys.readouterr().out
        (entry,) = json.loads((tmp_path / "out" / "bench.json").read_text())["floors"]
        floors.setdefault(name, []).append(entry)
        assert ("not run again" in out.split("real-vs-real floor")[1]) == (len(floors[name]) == 2), out
    assert floors["a"][0] == floors["a"][1] and floors["a"][0]["record"] != floors["b"][0]["record"]
    assert floors["a"][0]["fvd"] != floors["b"][0]["fvd"]
    fresh = metrics.evaluate_floor(None, dataset="taichi", data_root=str(tmp_path / "b"), num_clips=4, num_frames=9,
                                   real_stride=1, cache=False, progress=False)["floor"]
    assert fresh["real_count"] == fresh["floor_count"] == 4 and fresh["tag"] is None and fresh["se"] > 0
    assert floors["b"][0]["fvd"] == fresh["fvd"] and floors["b"][0]["fvd_inf_ci"] == fresh["fvd_inf_ci"]
    assert len(list((tmp_path / "out" / "floors" / "taichi").glob("floor-*.json"))) == 2
