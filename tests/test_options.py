"""Every option declared once (issue 23 item 4): one name per option across subcommands, one --threads rule,
every number-changing option in the settings keys, and messages that name a setting the way its reader passes it."""

from __future__ import annotations

import argparse
import ast
import collections
import dataclasses
from pathlib import Path

import pytest
import torch

from latte_bench.cli import build_parser, main
from latte_bench.errors import NAME_ONLY, UserError
from latte_bench.metrics.protocol import Protocol, RunOptions, SamplingSettings, key_settings, settings_key
from latte_bench.commands.flags import cli_name
from latte_bench.options import THREADS, key_fields, options_of, resolve_threads

PACKAGE = Path(__file__).resolve().parents[1] / "latte_bench"


def _subcommands(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))
    yield " ".join(path), parser


def test_no_option_has_two_names_across_subcommands():
    flags_of = collections.defaultdict(set)  # dest -> visible spellings
    for command, parser in _subcommands(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and action.dest != "help":
                flags_of[action.dest].add(tuple(action.option_strings))
    twice = {dest: sorted(flags) for dest, flags in flags_of.items() if len(flags) > 1}
    assert not twice, twice
    assert ("--num-workers",) in flags_of["num_workers"]
    from latte_bench.metrics.protocol import Settings
    from latte_bench.training.presets import TrainConfig

    declared = collections.defaultdict(set)  # field -> flags, over every class that declares options
    for cls in (Protocol, RunOptions, Settings, SamplingSettings, TrainConfig):
        for opt in options_of(cls):
            if opt.flag != "":
                declared[opt.name].add(opt.cli_flag)
    assert not {k: v for k, v in declared.items() if len(v) > 1}
    assert not any("--workers" in f for flags in flags_of.values() for f in flags)


def test_bench_data_flags_are_one_concept_each(capsys):
    """--data is one dataset's folder in every command; bench's --data-root only the folder of all datasets."""
    assert main(["bench", "--method", "m", "--ckpt", "demo=x", "--data-root", "ucf101=/nowhere"]) == 2
    err = capsys.readouterr().err
    assert "--data DATASET=DIR" in err and err.count("\n") == 1
    assert main(["bench", "--method", "m", "--ckpt", "demo=x", "--data", "/nowhere"]) == 2
    assert "expected DATASET=DIR" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["eval", "--real", "r", "--fake", "f", "--threads", "{n}"],
    ["sample", "--ckpt", "c", "--num-videos", "1", "--out", "{out}", "--threads", "{n}"],
    ["train", "demo", "--out", "{out}", "--threads", "{n}"],
    ["demo", "--out", "{out}", "--threads", "{n}"],
])
@pytest.mark.parametrize("n", ["-1", "0"])
def test_threads_below_one_is_one_line_in_every_command(argv, n, tmp_path, capsys):
    """Issue 20 item 12: --threads -1 was a RuntimeError traceback and 0 was accepted by eval, train and sample."""
    before = torch.get_num_threads()
    argv = [a.format(n=n, out=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"latte-bench: error: --threads must be an integer >= 1, got {n}", err
    assert torch.get_num_threads() == before and not (tmp_path / "out").exists()


def test_threads_rule_is_one_for_every_command():
    before = torch.get_num_threads()
    assert resolve_threads(None) == before  # not given: torch's current count ($OMP_NUM_THREADS, else the cores)
    assert resolve_threads(3) == 3
    with pytest.raises(UserError, match=r"^threads must be an integer >= 1, got 0$"):
        resolve_threads(0)
    with pytest.raises(UserError, match=r"^torch_threads must be an integer >= 1, got -1$"):
        Protocol(torch_threads=-1)  # the API names the keyword
    declared = {o.name: o for o in options_of(Protocol)}["torch_threads"]
    assert (declared.minimum, declared.default, declared.cli_flag) == (THREADS.minimum, THREADS.default, "--threads")
    texts = set()
    for command, parser in _subcommands(build_parser()):
        for action in parser._actions:
            if "--threads" in action.option_strings:
                texts.add(action.help.split(";")[0].split("(")[1])
    assert texts == {"default: torch's current count, i.e. $OMP_NUM_THREADS when set, else the physical cores"}, texts


# ---------------------------------------------------------------- the settings key

_OTHER = {  # a second valid value of each setting
    int: lambda v: (v or 1) + 1, float: lambda v: (v or 1.0) + 0.5, bool: lambda v: not v,
}


def _other(opt, value):
    if opt.choices:
        return next(c for c in opt.choices if c != value)
    if value is None:
        return {"dataset": "ffs", "preset": "ffs", "model_name": "Latte-S/2", "vae": "stabilityai/sd-vae-ft-ema"}.get(opt.name, 3)
    return _OTHER[type(value)](value)


def _work_key(proto: Protocol, sampling: SamplingSettings) -> str:
    """The work-folder key of an evaluation of a (fake, in-memory) checkpoint sampled with ``sampling``."""
    from latte_bench.metrics.evaluation import CACHE_VERSION
    from latte_bench.metrics.sources import CheckpointSource
    from latte_bench.training.checkpoint import LoadedModel

    checkpoint = {"path": "x.pt", "sha256": "ab" * 32, "step": 1, "weights": sampling.weights, "format": "test"}
    info = {"num_frames": 16, "latent_channels": 4, "latent_size": 4, "vae": "none"}
    src = CheckpointSource(ckpt="x.pt", _loaded=LoadedModel(torch.nn.Linear(1, 1), info, checkpoint),
                           **{f.name: getattr(sampling, f.name) for f in dataclasses.fields(SamplingSettings)})
    return settings_key({"version": CACHE_VERSION, "protocol": key_settings(proto), "fake": src.settings(proto.dataset)})


def test_every_number_changing_option_is_in_the_keys():
    """Each option whose effect is not "none" moves the work-folder key, the bench record key (both built
    from key_settings) and, where it acts on the real side, the real-statistics cache key."""
    from latte_bench.metrics import i3d, inception
    from latte_bench.metrics.detector import Loaded
    from latte_bench.metrics.evaluation import _real_settings

    base_p, base_s = Protocol(), SamplingSettings()
    real_key = lambda p: {det.name: settings_key(_real_settings(det, None, Loaded(det, None, "sha"), p.resolved(),  # noqa: E731
                                                                torch.device("cpu"))) for det in (i3d.DETECTOR, inception.DETECTOR)}
    checked = []
    for opt in options_of(Protocol):
        changed = dataclasses.replace(base_p, **{opt.name: _other(opt, getattr(base_p, opt.name))})
        moves_work = _work_key(changed, base_s) != _work_key(base_p, base_s)
        assert moves_work == opt.in_key, opt.name
        if opt.changes_number:
            assert opt.in_key, opt.name
        if opt.in_key and opt.real:
            assert real_key(changed) != real_key(base_p), f"{opt.name} does not move the real-statistics key"
        checked.append(opt.name)
    for opt in options_of(SamplingSettings):
        changed = dataclasses.replace(base_s, **{opt.name: _other(opt, getattr(base_s, opt.name))})
        assert (_work_key(base_p, changed) != _work_key(base_p, base_s)) == opt.in_key, opt.name
        assert (key_settings(changed) != key_settings(base_s)) == opt.in_key, opt.name
        checked.append(opt.name)
    assert {"num_clips", "seed", "torch_threads", "block_size", "sampler", "cfg_scale", "weights"} <= set(checked)
    assert "allow_fewer" not in key_fields(Protocol) and "skip_bad" in key_fields(Protocol)


def test_one_settings_hash_serves_the_cache_the_work_folders_and_bench():
    """The real-statistics cache (extract.py), the work folders (evaluation.py) and bench's records hash their
    settings with protocol.settings_key; no other module hashes a JSON dump of settings."""
    hashers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "hashlib.sha256" and node.args \
                    and "json.dumps" in ast.unparse(node.args[0]):
                hashers.append(path.relative_to(PACKAGE).as_posix())
    assert hashers == ["metrics/protocol.py"], hashers
    for module in ("metrics/extract.py", "metrics/evaluation.py", "commands/bench.py"):
        calls = [n for n in ast.walk(ast.parse((PACKAGE / module).read_text()))
                 if isinstance(n, ast.Call) and ast.unparse(n.func) == "settings_key"]
        assert calls, f"{module} does not call settings_key"


# ---------------------------------------------------------------- messages: the keyword or the flag


@pytest.mark.parametrize("make, api, cli", [
    (lambda: Protocol(num_clips=1), "num_clips must be an integer >= 2, got 1", "--num-clips must be an integer >= 2, got 1"),
    (lambda: RunOptions(num_workers=-1), "num_workers must be an integer >= 0", "--num-workers must be an integer >= 0"),
    (lambda: SamplingSettings(sampler="euler"), "sampler must be one of ddpm, ddim, dpm++", "--sampler must be one of"),
    (lambda: SamplingSettings(model_name=None, steps=0), "steps must be an integer >= 1", "--steps must be an integer >= 1"),
])
def test_a_bad_setting_is_named_as_its_reader_passes_it(make, api, cli):
    with pytest.raises(UserError) as info:
        make()
    assert str(info.value).startswith(api), str(info.value)
    assert info.value.render(cli_name).startswith(cli), info.value.render(cli_name)


def test_a_message_names_the_keyword_for_python_and_the_flag_for_the_command_line():
    e = UserError("only 3 usable clips for {num_clips}; pass {allow_fewer} to score 3", num_clips=2048, allow_fewer=True)
    assert str(e) == "only 3 usable clips for num_clips=2048; pass allow_fewer=True to score 3"
    assert e.render(cli_name) == "only 3 usable clips for --num-clips 2048; pass --allow-fewer to score 3"
    wrapped = e.with_context("bench {x}: ")
    assert wrapped.render(cli_name) == "bench {x}: only 3 usable clips for --num-clips 2048; pass --allow-fewer to score 3"
    named = UserError("{cache} is off and {data_root} is unset", cache=False, data_root=NAME_ONLY)
    assert str(named) == "cache=False is off and data_root is unset"
    assert named.render(cli_name) == "--no-cache is off and --data is unset"
    assert UserError("plain {braces} stay").render(cli_name) == "plain {braces} stay"


def test_evaluation_errors_name_the_keyword_from_python_and_the_flag_from_the_command_line(tmp_path, capsys):
    """Issue 24 item 8: `evaluate()` said "for --num-clips 2048; pass --allow-fewer" to a Python caller."""
    import numpy as np

    from latte_bench.metrics import evaluate

    videos = np.random.default_rng(0).integers(0, 256, (3, 16, 32, 32, 3), dtype=np.uint8)
    kw = dict(num_clips=4, cache=False, progress=False, device="cpu")
    with pytest.raises(UserError, match=r"^generated: only 3 usable generated clips for num_clips=4; pass allow_fewer=True "):
        evaluate(videos, videos, **kw)
    with pytest.raises(UserError, match=r"^num_frames=8: the I3D needs at least 9 frames per clip$"):
        evaluate(videos, videos, **{**kw, "num_frames": 8})
    np.save(tmp_path / "v.npy", videos)
    flags = ["--real", str(tmp_path / "v.npy"), "--fake", str(tmp_path / "v.npy"), "--no-cache", "--no-progress",
             "--device", "cpu"]
    assert main(["eval", *flags, "--num-clips", "4"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'v.npy'}: only 3 usable generated clips for --num-clips 4; pass --allow-fewer to score 3" in err
    assert main(["eval", *flags, "--num-frames", "8"]) == 2
    assert capsys.readouterr().err.strip() == "latte-bench: error: --num-frames 8: the I3D needs at least 9 frames per clip"


def test_device_and_folder_errors_in_both_renderings(tmp_path):
    from latte_bench.device import resolve_device
    from latte_bench.fsutil import check_writable

    with pytest.raises(UserError) as info:
        resolve_device("tpu")
    assert (str(info.value), info.value.render(cli_name)) == (
        "device must be cpu, cuda, cuda:N or auto, got 'tpu'", "--device must be cpu, cuda, cuda:N or auto, got 'tpu'")
    (tmp_path / "a {file}").write_text("")
    with pytest.raises(UserError) as info:
        check_writable(tmp_path / "a {file}" / "work", setting="work_dir")
    assert str(info.value).endswith("; choose another work_dir or make it writable")
    assert info.value.render(cli_name).startswith(f"{tmp_path / 'a {file}' / 'work'}: cannot write there (")
    assert info.value.render(cli_name).endswith("; choose another --work-dir or make it writable")


def test_an_unreadable_real_folder_names_skip_bad_as_its_reader_passes_it(tmp_path, capsys):
    import numpy as np

    from latte_bench.data.video import write_frames
    from latte_bench.metrics import evaluate

    videos = np.random.default_rng(0).integers(0, 256, (2, 12, 16, 16, 3), dtype=np.uint8)
    for i, v in enumerate(videos):
        write_frames(tmp_path / "real" / f"v{i}", v)
    (tmp_path / "real" / "v1" / "000005.png").unlink()
    with pytest.raises(UserError, match=r"jump from 4 to 6.*remove the folder \(skip_bad=True skips it\)$"):
        evaluate(tmp_path / "real", videos, num_clips=2, num_frames=9, cache=False, progress=False, device="cpu")
    assert main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "real"), "--num-clips", "2",
                 "--num-frames", "9", "--no-cache", "--no-progress", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().endswith("remove the folder (--skip-bad skips it)")
