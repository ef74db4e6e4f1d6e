"""`latte-bench demo`: the --quick run end to end (real detectors), its output folder rules, its kept checkpoint."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest

from latte_bench.cli import main
from latte_bench.reports.demo import FULL, QUICK, QUICK_NOTE, _Stages, load_slowdown, stage_plan


def test_demo_refuses_a_non_empty_folder_it_did_not_make(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "not made by `latte-bench demo`" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_demo_default_folder_is_new_in_the_current_directory(tmp_path, monkeypatch):
    from latte_bench.reports.demo import DEFAULT_OUT, MARKER, prepare_out

    monkeypatch.chdir(tmp_path)
    out = prepare_out(None)
    assert out == tmp_path / DEFAULT_OUT or out.resolve() == (tmp_path / DEFAULT_OUT).resolve()
    assert (out / MARKER).is_file() and "run/" in (out / ".gitignore").read_text()
    (out / "README.md").write_text("from an earlier demo run")
    assert prepare_out(None) == out  # a folder the demo made is re-used


def _readme_quickstart() -> list[list[str]]:
    """The README's Quickstart command lines, split like a shell (comments dropped), without ``latte-bench``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True)[1:] for line in block.strip().splitlines()]


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, monkeypatch, capsys):
    # the README's Quickstart as written, in a new empty folder (the demo as --quick)
    monkeypatch.chdir(tmp_path)
    demo_line, eval_line, _ = _readme_quickstart()
    assert demo_line == ["demo"]
    out = Path("latte-demo")
    assert main([*demo_line, "--quick", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert QUICK_NOTE in printed and QUICK_NOTE in (out / "README.md").read_text()

    record = json.loads((out / "results" / "demo_v1_seed0.json").read_text())
    assert record["schema"].startswith("latte-bench/eval-record") and record["dataset"] == "demo"
    for name in ("fvd", "kvd"):
        assert math.isfinite(record["metrics"][name]) and record["metrics"][name] > 0
    assert record["counts"]["real_clips"] == record["counts"]["fake_clips"] == 2
    floor = record["fvd_real_floor"]
    assert math.isfinite(floor["value"]) and floor["value"] > 0 and floor["real_count"] == 2
    assert "bootstrap" not in record  # the percentile interval is gone: se and FVD∞ (None below 4 clips)
    assert set(floor["uncertainty"]) == {"se", "fvd_inf", "fvd_inf_ci"} and record["results"]["fvd"]["se"] is None
    assert record["demo"]["fvd"] == record["metrics"]["fvd"] and record["demo"]["fvd_real_floor"] == floor["value"]
    assert (out / "results" / "demo_v2_seed0.json").is_file()  # the Variant 2 comparison model

    for name in ("README.md", "table3.md", "table3.csv", "training_curves.png", "fvd_uncertainty.png", "samples.png", "similarity_matrices.png",
                 "similarity_per_block.png", "v2_similarity_matrices.png", "similarity.json"):
        assert (out / name).stat().st_size > 0, name
    readme = (out / "README.md").read_text()
    assert "Not comparable with published numbers" in readme and "real-vs-real floor" in readme
    assert "Variant 2's spatial blocks" in readme and "process CPU time" in readme
    assert "measured" in (out / "table3.md").read_text()
    assert "![FVD ± se and FVD∞](fvd_uncertainty.png)" in readme

    # the final checkpoint is kept, the next commands name it, and it loads in `eval --dataset demo --ckpt`
    ckpt = out / "run" / "v1" / "checkpoints" / "0001500.pt"
    assert ckpt.is_file()
    assert f"latte-bench eval --dataset demo --ckpt {ckpt}" in printed
    assert f"latte-bench analyze similarity --ckpt {ckpt}" in printed and "latte-bench report table3" in printed
    suggested = next(line for line in printed.splitlines() if "latte-bench eval" in line)
    assert main(shlex.split(suggested, comments=True)[1:]) == 0
    again = json.loads((out / "eval.json").read_text())
    assert again["metrics"]["fvd"] == pytest.approx(record["metrics"]["fvd"], rel=1e-9)  # the demo's FVD, reproduced

    # the Quickstart's second line: the run folder, sampled with the demo's own DDIM 25 (the --dataset demo default)
    capsys.readouterr()
    assert main([*eval_line, "--json", "quickstart.json"]) == 0
    quick = json.loads(Path("quickstart.json").read_text())
    assert (quick["fake"]["sampler"], quick["fake"]["steps"]) == ("ddim", 25)
    assert quick["counts"] == {"real_clips": 64, "fake_clips": 64} and math.isfinite(quick["metrics"]["fvd"])
    assert quick["fake"]["checkpoint"]["path"].endswith("0001500.pt")

    # the folder's runs were trained with 1,500 steps: another step count is refused before any work, not resumed
    capsys.readouterr()
    kept = sorted(p.name for p in out.rglob("*.pt"))
    assert main(["demo", "--quick", "--steps", "3", "--out", str(out), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a Variant 1 run trained with other settings (steps" in err and "pass a new folder" in err
    assert sorted(p.name for p in out.rglob("*.pt")) == kept
    ckpt.write_bytes(b"half-written")  # a kept checkpoint that cannot be read: refused, with the way out
    assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 2
    assert f"{ckpt}: cannot load checkpoint safely" in (err := capsys.readouterr().err) and "to train it again" in err


# Recorded runs (their README's "Time per stage"): settings, the 1-min load average at the start on the
# 2-core machine, the main process's wall seconds per stage (data, training, floor wait, scoring, Variant 2
# wait, figures). The full demo: reports/demo/ on the idle machine; --quick idle, and with about 7 other
# busy processes (the 2.1-min run whose old ETA said "about 0.3 min left" until stage 6), and with about 8.
RECORDED = [(FULL, 0.0, [0, 529, 5, 70, 0, 14]), (QUICK, 0.6, [0, 25, 0, 2, 2, 2]), (QUICK, 7.2, [0, 107, 0, 12, 0, 9]),
            (QUICK, 8.2, [0, 102, 0, 10, 0, 9])]


@pytest.mark.parametrize("settings, load, walls", RECORDED)
def test_the_demo_eta_is_not_below_the_time_left_of_a_recorded_run(settings, load, walls):
    import re

    clock = [0.0]
    stages = _Stages(stage_plan(settings, settings.steps or 8000), load_slowdown(2, load, cores=2), clock=lambda: clock[0],
                     say=lambda line: None)
    for i, wall in enumerate(walls):
        line = stages.next(f"stage {i + 1}")
        left = sum(walls[i:]) / 60
        if i < 2:  # speed still unknown: a range from idle cores to the load at the start
            low, high = map(float, re.search(r"([\d.]+)-([\d.]+) min left depending on the load", line).groups())
            assert high >= left - 0.05 and low <= high, line
        else:  # after training: its measured speed
            eta = float(re.search(r"about ([\d.]+) min left", line).group(1))
            assert left - 0.05 <= eta <= 3 * left + 0.1, line
        clock[0] += wall
    assert stages.finish() == sum(walls)


def test_fig6_summary_reads_the_papers_claims_from_the_block_statistics():
    from latte_bench.reports.demo import fig6_summary

    def analysis(stats):
        return {"numbers": {"summary": {label: {"mean": m, "var": v} for label, (m, v) in stats.items()}}}

    v1 = analysis({"1 spatial": (0.80, 1e-3), "2 temporal": (0.85, 1e-3), "3 spatial": (0.78, 2e-3), "4 temporal": (0.9, 1e-3)})
    falling = analysis({"1 spatial": (0.75, 1e-3), "2 spatial": (0.70, 3e-3), "3 temporal": (0.8, 1e-3), "4 temporal": (0.9, 1e-3)})
    text = fig6_summary({1: v1, 2: falling}, compare_note="the two models also differ in training steps (8,000 vs 2,000)")
    assert "0.750 (var 1.0e-03) -> 0.700 (var 3.0e-03): the mean falls and the variance rises" in text
    assert "Variant 2's spatial blocks (all before its temporal blocks) keep the frames less similar" in text
    assert "training steps (8,000 vs 2,000), so this is an illustration, not a controlled test" in text

    rising = analysis({"1 spatial": (0.80, 3e-3), "2 spatial": (0.86, 1e-3), "3 temporal": (0.8, 1e-3), "4 temporal": (0.9, 1e-3)})
    text = fig6_summary({1: v1, 2: rising})
    assert "the mean does not fall and the variance does not rise" in text and "do not keep" in text
    assert "illustration" not in text


DEMO_REPORT = Path(__file__).resolve().parents[1] / "reports" / "demo"


def test_fvd_figure_draws_each_row_with_its_se_and_fvd_inf_interval():
    """One bar per row at its FVD with a ± se error bar; FVD∞ as a diamond on its interval; a low end cut at 0 drawn
    from 0 with the diamond of a negative FVD∞ left of it on the axis; a row without se is a bare bar."""
    from latte_bench.reports.figures import draw_fvd_uncertainty, pyplot

    rows = [{"label": "floor", "value": 57.8, "se": 8.8, "fvd_inf": -2.4, "fvd_inf_ci": [0.0, 14.8], "floor": True},
            {"label": "model", "value": 94.5, "se": 14.4, "fvd_inf": 37.3, "fvd_inf_ci": [9.1, 65.5]},
            {"label": "two clips", "value": 120.0, "se": None, "fvd_inf": None, "fvd_inf_ci": None}]
    plt = pyplot()
    fig, ax = plt.subplots()
    drawn = draw_fvd_uncertainty(ax, rows)
    assert [b.get_width() for b in drawn["bars"]] == [57.8, 94.5, 120.0]
    assert [b.get_y() for b in drawn["bars"]] == sorted((b.get_y() for b in drawn["bars"]), reverse=True)  # first on top
    assert set(drawn["errors"]) == set(drawn["inf"]) == set(drawn["ci"]) == {0, 1}
    for i, r in enumerate(rows[:2]):
        (segments,) = [c.get_segments() for c in drawn["errors"][i].lines[2]]
        assert segments[0][:, 0].tolist() == pytest.approx([r["value"] - r["se"], r["value"] + r["se"]])
        assert drawn["inf"][i].get_xdata().tolist() == [r["fvd_inf"]]
        assert drawn["ci"][i].get_xdata().tolist() == r["fvd_inf_ci"]
    left, right = ax.get_xlim()
    assert left < -2.4 and right > 120.0  # the negative FVD∞ and every bar are inside the axis
    assert [t.get_text() for t in ax.get_yticklabels()] == ["floor", "model", "two clips"]
    plt.close(fig)


def test_demo_report_figure_and_sections_come_from_its_stored_records(tmp_path):
    """reports/demo: the FVD rows are the records' numbers; refresh_report, from the records alone, draws the figure
    and rewrites the README's Results and Table 3 sections exactly as committed (the demo writes them with the same code)."""
    import shutil

    from latte_bench.reports.demo import FVD_FIGURE, fvd_rows, refresh_report

    records = [json.loads((DEMO_REPORT / "results" / f"demo_v{v}_seed0.json").read_text()) for v in (1, 2)]
    rows = fvd_rows(DEMO_REPORT / "results")
    floor = records[0]["fvd_real_floor"]
    assert [r["label"] for r in rows] == ["real vs real (floor)", "Variant 1, step 8000", "Variant 2, step 2000"]
    assert [r["value"] for r in rows] == [floor["value"]] + [rec["metrics"]["fvd"] for rec in records]
    assert [r["se"] for r in rows] == [floor["uncertainty"]["se"]] + [rec["results"]["fvd"]["se"] for rec in records]
    assert rows[0]["fvd_inf"] < 0 and rows[0]["fvd_inf_ci"][0] == 0.0  # the floor's interval is cut at 0, as it should

    out = tmp_path / "demo"
    (out / "results").mkdir(parents=True)
    for v in (1, 2):
        shutil.copy(DEMO_REPORT / "results" / f"demo_v{v}_seed0.json", out / "results")
    shutil.copy(DEMO_REPORT / "README.md", out / "README.md")
    stale = (out / "README.md").read_text().replace("± 14.4", "± 99.9")
    (out / "README.md").write_text(stale)
    files = refresh_report(out)
    assert (out / "README.md").read_text() == (DEMO_REPORT / "README.md").read_text()
    assert (out / "table3.md").read_text() == (DEMO_REPORT / "table3.md").read_text()
    assert f"![FVD ± se and FVD∞]({FVD_FIGURE}.png)" in (out / "README.md").read_text()
    for ext in ("png", "pdf"):
        assert out / f"{FVD_FIGURE}.{ext}" in files and (out / f"{FVD_FIGURE}.{ext}").stat().st_size > 1000
