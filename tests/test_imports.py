"""No import cycle between the parts of latte_bench, few imports inside functions, a light ``--help``.

The parts are the subpackages (models, diffusion, data, metrics, training, reports, commands) and
each root module (cli, device, distributed, errors, options, ...). The graph holds every import of the
package's own modules: statements in the module body (top-level ``try``/``if``/``with``
included), inside functions, and modules named to :func:`latte_bench.lazy.lazy_module`; only
``if TYPE_CHECKING:`` blocks are left out. A cycle between two parts means neither can be
understood, tested or imported without the other.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "latte_bench"
# imports of the package's own modules inside functions: 1 today (protocol.py's metric classes, which load
# torch), with a comment saying why; the bar leaves room for a few more such, not for a habit
MAX_FUNCTION_LEVEL = 5


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """``latte_bench.metrics.fvd`` -> ``metrics``; ``latte_bench.cli`` -> ``cli``; ``latte_bench`` -> ``latte_bench``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def all_imports(tree: ast.Module):
    """``(node, in_function)`` for every import statement and ``lazy_module("...")`` call, except under TYPE_CHECKING."""
    pending = [(node, False) for node in tree.body]
    while pending:
        node, in_function = pending.pop(0)
        if isinstance(node, ast.If) and is_type_checking(node.test):
            pending += [(n, in_function) for n in node.orelse]
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)) or is_lazy_module_call(node):
            yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        pending += [(child, inner) for child in ast.iter_child_nodes(node)]


def is_lazy_module_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "lazy_module") or (isinstance(func, ast.Attribute) and func.attr == "lazy_module")


def resolve(node: ast.AST, importer: str, is_package: bool, modules: set[str], root: str = "latte_bench") -> list[str]:
    """The package's modules an import loads (submodules named in ``from X import y`` included)."""
    if isinstance(node, ast.Call):  # lazy_module("latte_bench.x.y")
        target = node.args[0].value
        return [target] if target.split(".")[0] == root else []
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == root]
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != root:
        return []
    found = [target]
    for alias in node.names:
        if f"{target}.{alias.name}" in modules:
            found.append(f"{target}.{alias.name}")
    return found


def import_graph(package: Path = PACKAGE) -> tuple[dict, set, list[str]]:
    """``(edges, modules, function_level)`` of ``package``.

    ``edges[(part_a, part_b)] = ["path:line", ...]`` for every import from part a of another part b;
    ``function_level``: ``"path:line"`` of each import of the package's own modules inside a function.
    """
    files = sorted(package.rglob("*.py"))
    modules = {module_name(f, package) for f in files}
    edges, function_level = defaultdict(list), []
    for path in files:
        importer = module_name(path, package)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, in_function in all_imports(tree):
            targets = resolve(node, importer, path.name == "__init__.py", modules, package.name)
            where = f"{path.relative_to(package.parent)}:{node.lineno}"
            if targets and in_function and not isinstance(node, ast.Call):
                function_level.append(where)
            for target in targets:
                # importing latte_bench.x.y runs latte_bench/__init__ and latte_bench/x/__init__ too
                a, b = part_of(importer), part_of(target)
                if a != b and b != package.name:
                    edges[(a, b)].append(where)
    return edges, modules, function_level


@functools.cache
def package_graph():
    return import_graph(PACKAGE)


def cycle_edges(edges) -> set[tuple[str, str]]:
    """Edges whose two ends lie on a common cycle (same strongly connected component)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    reach = {node: reachable(node) for node in list(graph)}
    return {(a, b) for a, b in edges if a in reach.get(b, set())}


def test_graph_sees_known_imports():
    edges, modules, _ = package_graph()
    assert "latte_bench.models.latte" in modules and "latte_bench.metrics" in modules
    assert ("models", "errors") in edges  # latte.py: from latte_bench.errors import UserError
    assert ("metrics", "training") in edges  # sources.py: CheckpointSource samples through training
    assert not any(a == "models" and b == "training" for a, b in edges)


def test_cycle_detection_finds_a_cycle():
    assert cycle_edges({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) == {("a", "b"), ("b", "c"), ("c", "a")}


def test_a_cycle_through_function_level_and_lazy_imports_is_found(tmp_path):
    """A synthetic package whose parts import each other only inside functions and lazily: the check fails on it."""
    pkg = tmp_path / "pkg"
    for folder, text in {
        "": "",
        "alpha": "",
        "beta": "",
        "gamma": "",
        "alpha/run.py": "from __future__ import annotations\n\ndef go():\n    from pkg.beta.tool import helper\n    return helper()\n",
        "beta/tool.py": "from pkg.lazy import lazy_module\n\nrun = lazy_module('pkg.gamma.deep')\n\ndef helper():\n    return 1\n",
        "gamma/deep.py": "class A:\n    def m(self):\n        import pkg.alpha.run\n",
    }.items():
        path = pkg / folder / "__init__.py" if not folder.endswith(".py") else pkg / folder
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    edges, _, function_level = import_graph(pkg)
    assert cycle_edges(edges) == {("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha")}
    assert function_level == ["pkg/alpha/run.py:4", "pkg/gamma/deep.py:3"]  # the lazy_module call is module level


def test_no_import_cycle_between_parts():
    """No cycle anywhere in the part graph: subpackages and root modules alike, imports inside functions
    and lazy ones counted."""
    edges, _, _ = package_graph()
    cycles = cycle_edges(edges)
    detail = "; ".join(f"{a} -> {b} at {', '.join(edges[(a, b)])}" for a, b in sorted(cycles))
    assert not cycles, f"import cycle between parts of latte_bench: {detail}"


def test_the_library_never_imports_the_command_layer():
    """``commands`` and ``cli`` are the top: only ``cli`` reads ``commands``, and nothing reads ``cli``."""
    edges, _, _ = package_graph()
    upward = {pair: where for pair, where in edges.items()
              if pair[1] == "cli" or (pair[1] == "commands" and pair[0] != "cli")}
    assert not upward, f"imports of the command layer from below: {upward}"
    assert ("commands", "metrics") in edges and ("commands", "training") in edges  # the graph does see the layer


def test_few_imports_inside_functions():
    """Dependencies are declared at the top of a module; inside functions only where a comment says why."""
    _, _, function_level = package_graph()
    assert len(function_level) <= MAX_FUNCTION_LEVEL, (
        f"{len(function_level)} imports of latte_bench modules inside functions (at most {MAX_FUNCTION_LEVEL}): "
        + ", ".join(function_level))


def test_help_does_not_import_torch():
    """``latte-bench --help`` lists every command without importing torch (command modules load it lazily)."""
    code = ("import sys\nfrom latte_bench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "eval" in out.stdout and "train" in out.stdout and "bench" in out.stdout
    assert out.stdout.strip().endswith("TORCH False"), out.stdout[-300:]



def test_a_lazy_module_reads_the_real_module_at_each_access(monkeypatch):
    import latte_bench.fsutil as real
    from latte_bench.lazy import lazy_module

    lazy = lazy_module("latte_bench.fsutil")
    assert lazy.sha256_file is real.sha256_file
    monkeypatch.setattr(real, "sha256_file", len)  # a test's replacement is what the command then calls
    assert lazy.sha256_file is len
    with pytest.raises(AttributeError):
        lazy.no_such_name


if __name__ == "__main__":  # print the part graph, its cycles and the imports inside functions
    graph, _, inside = package_graph()
    for (a, b), where in sorted(graph.items()):
        print(f"{a} -> {b}: {', '.join(where)}")
    print("cycles:", sorted(cycle_edges(graph)))
    print(f"{len(inside)} imports inside functions:", ", ".join(inside))
    pytest.main([__file__, "-q"])
