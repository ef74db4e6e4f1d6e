import subprocess
import sys

from latte_bench.cli import main


def test_help_lists_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert "latte-bench" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_console_entry_runs():
    out = subprocess.run([sys.executable, "-m", "latte_bench.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "latte-bench" in out.stdout
