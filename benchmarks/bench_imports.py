"""Import cost and import structure of latte_bench: how fast `import latte_bench.metrics` and
`latte-bench --help` are, and how the package's parts import each other.

    python benchmarks/bench_imports.py                      # this checkout
    python benchmarks/bench_imports.py --repo /tmp/old      # another checkout (e.g. a git worktree of an older commit)

Prints one JSON object: the median wall time of each command over ``--runs`` fresh interpreters
(CPU, warm file cache), whether `--help` loaded torch, the package's lines, the imports of its own
modules inside functions, and the part -> part edges that lie on an import cycle (read by
``tests/test_imports.py``'s graph, which counts imports inside functions and lazy ones).
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


def wall(code: str, repo: Path, runs: int) -> tuple[float, str]:
    """Median seconds of ``python -c code`` in fresh interpreters with ``repo`` first on the path; the last stderr."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    times, err = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        times.append(time.perf_counter() - start)
        err = out.stderr
    return statistics.median(times), err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per command (default: 7)")
    args = parser.parse_args()
    package = args.repo.resolve() / "latte_bench"
    edges, _, inside = import_graph(package)
    metrics_s, _ = wall("import latte_bench.metrics", args.repo, args.runs)
    help_s, err = wall(HELP, args.repo, args.runs)
    print(json.dumps({
        "repo": str(args.repo),
        "import_latte_bench_metrics_s": round(metrics_s, 3),
        "help_s": round(help_s, 3),
        "help_imports_torch": "TORCH True" in err,
        "package_lines": sum(len(p.read_text(encoding="utf-8").splitlines()) for p in package.rglob("*.py")),
        "function_level_own_imports": len(inside),
        "cycle_edges": sorted(f"{a}->{b}" for a, b in cycle_edges(edges)),
    }, indent=1))


if __name__ == "__main__":
    main()
