"""No import cycle between the parts of latte_bench.

The parts are the subpackages (models, diffusion, data, metrics, training, reports) and each
root module (cli, device, distributed, errors, ...). The graph holds the imports a module runs
when it is imported: statements in the module body, including inside top-level ``try``/``if``
blocks, but not ``if TYPE_CHECKING:`` blocks and not imports inside functions. A cycle between
two parts means neither can be understood, tested or imported without the other.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "latte_bench"

# part -> part edges that still close a cycle; each must be removed here when its cycle is fixed
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """``latte_bench.metrics.fvd`` -> ``metrics``; ``latte_bench.cli`` -> ``cli``; ``latte_bench`` -> ``latte_bench``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module):
    """Import statements that run at import time (module body, top-level try/if/with, not TYPE_CHECKING)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            pending += [] if is_type_checking(node.test) else node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body]
        elif isinstance(node, ast.With):
            pending += node.body


def resolve(node: ast.ImportFrom | ast.Import, importer: str, is_package: bool, modules: set[str]) -> list[str]:
    """The latte_bench modules an import statement loads (submodules named in ``from X import y`` included)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "latte_bench"]
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "latte_bench":
        return []
    found = [target]
    for alias in node.names:
        if f"{target}.{alias.name}" in modules:
            found.append(f"{target}.{alias.name}")
    return found


@functools.cache
def import_graph() -> tuple[dict, set]:
    """``edges[(part_a, part_b)] = ["path:line", ...]`` for every import from part a to another part b."""
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    edges = defaultdict(list)
    for path in files:
        importer = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in module_level_imports(tree):
            for target in resolve(node, importer, path.name == "__init__.py", modules):
                # importing latte_bench.x.y runs latte_bench/__init__ and latte_bench/x/__init__ too
                a, b = part_of(importer), part_of(target)
                if a != b and b != "latte_bench":
                    edges[(a, b)].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return edges, modules


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
    edges, modules = import_graph()
    assert "latte_bench.models.latte" in modules and "latte_bench.metrics" in modules
    assert ("models", "errors") in edges  # latte.py: from latte_bench.errors import UserError
    assert not any(a == "models" and b == "training" for a, b in edges)


def test_cycle_detection_finds_a_cycle():
    assert cycle_edges({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) == {("a", "b"), ("b", "c"), ("c", "a")}


def test_no_import_cycle_between_parts():
    edges, _ = import_graph()
    cycles = cycle_edges(edges)
    new = sorted(cycles - KNOWN)
    detail = "; ".join(f"{a} -> {b} at {', '.join(edges[(a, b)])}" for a, b in new)
    assert not new, f"import cycle between parts of latte_bench: {detail}"
    fixed = sorted(KNOWN - cycles)
    assert not fixed, f"no longer in a cycle, remove from KNOWN: {fixed}"


if __name__ == "__main__":  # print the part graph and its cycles
    graph, _ = import_graph()
    for (a, b), where in sorted(graph.items()):
        print(f"{a} -> {b}: {', '.join(where)}")
    print("cycles:", sorted(cycle_edges(graph)))
    pytest.main([__file__, "-q"])
