"""Import cost and import structure of latte_bench: how fast `import latte_bench.metrics` and
`latte-bench --help` are, and how the package's parts import each other.

    python benchmarks/bench_imports.py                      # this checkout
    python benchmarks/bench_imports.py --repo /tmp/old      # another checkout (e.g. a git worktree of an older commit)

Prints one JSON object: the median wall time of each command over ``--runs`` fresh interpreters
(CPU, warm file cache), whether `--help` loaded torch, the package's lines, the imports of its own
modules inside functions, and the part -> part edges that lie on an import cycle (read by
``tests/test_imports.py``'s graph, which counts imports inside functions and lazy ones).
``--trace-eval`` adds the package modules whose functions run in one `latte-bench eval --real A
--fake B` of 4 tiny clips (FVD only, ``--no-cache``; needs the I3D weights in the cache), from
``run_eval`` on, calls made while a module is being imported left out (found with ``sys.setprofile``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))

from test_imports import cycle_edges, import_graph  # noqa: E402  (the graph the tests check)

HELP = ("import sys\nfrom latte_bench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr)")


def wall(code: str, repo: Path, runs: int, *args: str) -> tuple[float, str]:
    """Median seconds of ``python -c code`` in fresh interpreters run in ``repo`` (so that its package is the one
    imported, ahead of an installed one); the last stderr."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    times, err = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=repo)
        if out.returncode != 0:
            raise SystemExit(f"{repo}: the measured command failed:\n{out.stderr[-2000:]}")
        times.append(time.perf_counter() - start)
        err = out.stderr
    return statistics.median(times), err


TRACE = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # this checkout's tests/, for traced_eval; latte_bench comes from the measured one
from test_eval_map import traced_eval
import latte_bench
seen, on = set(), []

def on_call(frame):  # functions (not module or class bodies) of the package, from run_eval on
    if not frame.f_code.co_flags & 2:  # CO_NEWLOCALS: a function's frame
        return
    if frame.f_code.co_name == "run_eval":
        on.append(True)
    name = frame.f_globals["__name__"]
    if not on or name in seen:
        return
    caller = frame.f_back
    while caller is not None:  # a call made while a module is imported is not a step of the path
        if caller.f_code.co_name == "<module>" and caller.f_code.co_filename != "<string>":
            return
        caller = caller.f_back
    seen.add(name)

code = traced_eval(Path(tempfile.mkdtemp()), on_call)
print("MODULES", code, latte_bench.__file__, " ".join(sorted(seen)), file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per command (default: 7)")
    parser.add_argument("--trace-eval", action="store_true", help="also list the modules one `eval --real --fake` runs")
    args = parser.parse_args()
    args.repo = args.repo.resolve()
    package = args.repo / "latte_bench"
    edges, _, inside = import_graph(package)
    metrics_s, _ = wall("import latte_bench.metrics", args.repo, args.runs)
    help_s, err = wall(HELP, args.repo, args.runs)
    traced = {}
    if args.trace_eval:
        _, err = wall(TRACE, args.repo, 1, str(HERE / "tests"))
        line = [entry for entry in err.splitlines() if entry.startswith("MODULES")][-1].split()
        if not line[2].startswith(str(package)):
            raise SystemExit(f"the traced eval imported {line[2]}, not {package}")
        traced = {"eval_exit_code": int(line[1]), "eval_modules_run": len(line) - 3, "eval_module_names": line[3:]}
    print(json.dumps({
        "repo": str(args.repo),
        "import_latte_bench_metrics_s": round(metrics_s, 3),
        "help_s": round(help_s, 3),
        "help_imports_torch": "TORCH True" in err,
        "package_lines": sum(len(p.read_text(encoding="utf-8").splitlines()) for p in package.rglob("*.py")),
        "function_level_own_imports": len(inside),
        "cycle_edges": sorted(f"{a}->{b}" for a, b in cycle_edges(edges)),
        **traced,
    }, indent=1))


if __name__ == "__main__":
    main()
