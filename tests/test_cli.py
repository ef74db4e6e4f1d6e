import argparse
import json
import subprocess
import sys

import pytest

from latte_bench.cli import build_parser, main


def test_version_exits_0_and_names_the_program(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "latte-bench" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_console_entry_runs():
    out = subprocess.run([sys.executable, "-m", "latte_bench.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "latte-bench" in out.stdout


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("command", ["report", "analyze"])
def test_every_report_and_analyze_option_has_help_with_its_default(command, capsys):
    group = _subparsers(build_parser())[command]
    leaves = _subparsers(group)
    assert leaves, command
    for name, parser in leaves.items():
        assert parser.description, f"{command} {name}: no description"
        with pytest.raises(SystemExit):
            parser.parse_args(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            flag = action.option_strings[0]
            assert action.help, f"{command} {name} {flag}: no help text"
            if action.required:
                continue
            if isinstance(action, argparse._StoreTrueAction):
                shown = "(default: off)"
            elif action.default is None:
                shown = "default:"  # the help says in words what happens (e.g. "default: the preset's")
            else:
                shown = f"(default: {action.default})"
            line = " ".join(parser._get_formatter()._expand_help(action).split())  # as --help prints it
            assert shown in line and line in text, f"{command} {name} {flag}: default not shown in {line!r}"


def test_report_on_a_folder_without_records_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"lr": 1e-4}))  # JSON, but not an evaluation record
    assert main(["report", "table3", "--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no evaluation records" in err and str(tmp_path) in err
    assert not (tmp_path / "out").exists()


def test_report_table3_shows_a_short_run_tagged(tmp_path, capsys):
    record = {
        "schema": "latte-bench/eval-record/2", "method": "tiny run", "dataset": "ucf101",
        "metrics": {"fvd": 236.83},
        "results": {"fvd": {"metric": "fvd", "value": 236.83, "real_count": 3, "fake_count": 3, "unit": "clips",
                            "provenance": {"num_clips": 3, "num_frames": 16, "real_stride": 3}}},
        "protocol": {"num_clips": 3, "num_frames": 16, "real_stride": 3, "fake_stride": 1, "seed": 0},
        "counts": {"real_clips": 3, "fake_clips": 3}, "nonstandard": ["3 clips"], "seed": 0,
    }
    (tmp_path / "r.json").write_text(json.dumps(record))
    assert main(["report", "table3", "--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "table3.md").read_text()
    assert "| tiny run [3 clips] | measured | – | – | 236.83 (n=1) | – |" in md
    assert "| Latte | reported | 34.00 | 59.82 | 477.97 ¹ | 159.60 |" in md
    capsys.readouterr()
    assert main(["report", "table3", "--strict", "--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "3 clips" in capsys.readouterr().err


def test_report_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    import json

    from latte_bench.cli import main

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text(json.dumps({"method": "m", "dataset": "ucf101", "metrics": {"fvd": 1.0}}))
    (tmp_path / "file").write_text("")
    code = main(["report", "table3", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "file" / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--out" in err and "cannot write" in err
