"""The map of the eval path in docs/evaluation.md is the path the code takes, in at most 10 hops.

A real ``latte-bench eval --real A --fake B`` (4 tiny clips, the real I3D) runs under ``sys.setprofile``;
each hop of the map must be a direct call it made (a closure counts as the function that holds it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from latte_bench.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"

# (caller, callee) as module:qualname, in the order of the map's numbered lines
HOPS = [
    ("commands.eval:run_eval", "metrics.evaluation:evaluate"),
    ("metrics.evaluation:evaluate", "metrics.evaluation:_evaluate"),
    ("metrics.evaluation:_evaluate", "metrics.evaluation:_fake_pass"),
    ("metrics.evaluation:_fake_pass", "metrics.extract:run_pass"),
    ("metrics.extract:run_pass", "metrics.extract:_block"),
    ("metrics.extract:_block", "metrics.extract:_features"),
    ("metrics.evaluation:_evaluate", "metrics.evaluation:_distances"),
    ("metrics.evaluation:_distances", "metrics.fvd:Frechet.distance"),
    ("metrics.fvd:Frechet.distance", "metrics.uncertainty:frechet_from_features"),
    ("metrics.evaluation:_evaluate", "metrics.evaluation:build_record"),
]


def _name(frame) -> str:
    module = frame.f_globals.get("__name__", "").removeprefix("latte_bench.")
    return f"{module}:{frame.f_code.co_qualname.split('.<locals>')[0]}"


def traced_eval(folder: Path, on_call) -> int:
    """Run ``latte-bench eval --real A --fake B`` (FVD, 4 random 16-frame 32x32 clips a side written into
    ``folder``, ``--no-cache``) calling ``on_call(frame)`` at every call of a latte_bench function
    (``sys.setprofile``); the exit code. ``benchmarks/bench_imports.py --trace-eval`` uses it too."""
    rng = np.random.default_rng(0)
    for side in ("real", "fake"):
        np.save(folder / f"{side}.npy", rng.integers(0, 256, (4, 16, 32, 32, 3), dtype=np.uint8))

    def profile(frame, event, arg):
        if event == "call" and frame.f_globals.get("__name__", "").startswith("latte_bench"):
            on_call(frame)

    argv = ["eval", "--real", str(folder / "real.npy"), "--fake", str(folder / "fake.npy"), "--num-clips", "4",
            "--allow-fewer", "--no-cache", "--no-progress", "--threads", "1", "--work-dir", str(folder / "work")]
    sys.setprofile(profile)
    try:
        return main(argv)
    finally:
        sys.setprofile(None)


def test_the_documented_map_is_the_path_an_evaluation_takes(tmp_path, capsys):
    calls = set()
    code = traced_eval(tmp_path, lambda frame: frame.f_back is not None and calls.add((_name(frame.f_back), _name(frame))))
    assert code == 0, capsys.readouterr().err
    assert "fvd" in capsys.readouterr().out
    missing = [hop for hop in HOPS if hop not in calls]
    assert not missing, f"hops of the map that the evaluation did not take: {missing}"
    assert ("metrics.evaluation:_evaluate", "metrics.evaluation:_no_such_step") not in calls  # the trace can say no


def test_the_map_in_the_docs_lists_these_hops_and_no_more_than_ten():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Map of the code", 1)[1].split("\n## ", 1)[0]
    lines = re.findall(r"^(\d+)\. (.*)$", section, flags=re.M)
    assert [int(n) for n, _ in lines] == list(range(1, len(HOPS) + 1)) and len(HOPS) <= 10
    for (_, line), (caller, callee) in zip(lines, HOPS):
        head = line.split("`:", 1)[0].split(":", 1)[0]  # the hop itself, before its explanation
        for end in (caller, callee):
            assert end.split(":")[1].split(".")[-1] in head, f"map line {line!r} does not name {end}"
