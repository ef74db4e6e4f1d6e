"""README.md and docs/*.md match the repository: links and paths exist, the README's commands parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from latte_bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TOP = ("latte_bench/", "tests/", "docs/", "reports/", "benchmarks/")
PACKAGES = ("metrics/", "data/", "models/", "diffusion/", "training/", "reports/")  # module paths inside latte_bench/
PLACEHOLDER = set("<>*{}|$…=")


def repository_paths(text: str) -> list[str]:
    """Words of ``text`` that name a file or folder of the repository: under a top-level folder, or a
    ``.py`` file inside a ``latte_bench`` subpackage (``metrics/stats.py``), or a path above the
    repository (``../x``: never in a clone)."""
    found = []
    for word in re.split(r"[\s`'\"()\[\],;]+", text):
        word = word.rstrip(".:")
        if "/" not in word or PLACEHOLDER & set(word):
            continue
        if word.startswith(("../", "./../")) or word.startswith(TOP) or (word.endswith(".py") and word.startswith(PACKAGES)):
            found.append(word.split(":")[0].rstrip("/"))
    return found


def _exists(path: str) -> bool:
    return (ROOT / path).exists() or (ROOT / "latte_bench" / path).exists()


def test_repository_path_finder_reads_backticks_prose_and_line_numbers():
    text = "see `docs/a.md`, (`metrics/stats.py`:12) and tests/fixtures/ but not data/UCF-101, `$X/eval_work/<h>`, `../x/y.md`"
    assert repository_paths(text) == ["docs/a.md", "metrics/stats.py", "tests/fixtures", "../x/y.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_and_repository_path_exists(doc):
    text = doc.read_text()
    missing = [target for target in (m.group(1).split("#")[0] for m in LINK.finditer(text))
               if target and not re.match(r"[a-z]+:", target) and not (doc.parent / target).exists()]
    missing += [path for path in repository_paths(text) if not _exists(path)]
    assert not missing, f"{doc.name} names what a clone does not have: {missing}"


def readme_commands() -> list[str]:
    """Every ``latte-bench ...`` line of the README's bash blocks, ``\\`` continuations joined."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("latte-bench "):
                commands.append(line.strip())
    return commands


def test_readme_has_the_quickstart_commands():
    commands = readme_commands()
    assert len(commands) >= 10
    assert any(c.startswith("latte-bench eval --dataset demo --ckpt latte-demo/run/v1") for c in commands)


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses_with_the_current_cli(command, capsys):
    argv = shlex.split(command, comments=True)[1:]
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on an unknown flag or choice, 0 for --help
        assert e.code == 0 and argv[-1] == "--help", f"{command}: {capsys.readouterr().err.strip()}"
