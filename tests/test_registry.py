"""The dataset registry is the one owner of dataset facts, and each module that uses one reads it from there.

The ownership check walks the syntax tree of every module of ``latte_bench/``: outside ``data/registry.py``
no dict, tuple, list or set literal may hold two or more dataset names (a per-dataset table) and no
comparison may test a value against a dataset name (a fact coded as a branch). The reader tests change one
field of a spec and watch each former owner follow it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from latte_bench.data import registry
from latte_bench.data.registry import DATASETS, get_dataset

PACKAGE = Path(__file__).resolve().parents[1] / "latte_bench"
OWNER = PACKAGE / "data" / "registry.py"


def dataset_names() -> set[str]:
    """Every spelling the registry knows: names, titles (as written and lower case) and aliases."""
    names = set()
    for spec in DATASETS.values():
        names |= {spec.name, spec.title, spec.title.lower(), *spec.aliases}
    return names


def _strings(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _compared_name(node: ast.Compare) -> str:
    left = node.left
    return left.attr if isinstance(left, ast.Attribute) else getattr(left, "id", "")


def second_owners(source: str, names: set[str]) -> list[tuple[int, str]]:
    """``(line, what)`` for each per-dataset literal table or dataset-name comparison in ``source``.

    A comparison of a ``preset`` (a training preset's name, ``training/presets.PRESETS``) is not a dataset fact.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            keys = _strings(node.keys)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            keys = _strings(node.elts)
        elif isinstance(node, ast.Compare):
            hit = [s for s in _strings([node.left, *node.comparators]) if s in names]
            hit += [s for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                    for s in _strings(c.elts) if s in names]
            if hit and _compared_name(node) != "preset":
                found.append((node.lineno, f"comparison with {hit}"))
            continue
        else:
            continue
        hit = [k for k in keys if k in names]
        if len(hit) >= 2:
            found.append((node.lineno, f"{type(node).__name__.lower()} of {hit}"))
    return found


def test_no_module_but_the_registry_keeps_a_dataset_fact():
    names = dataset_names()
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
                 for path in sorted(PACKAGE.rglob("*.py")) if path != OWNER
                 for line, what in second_owners(path.read_text(), names)]
    assert offenders == [], "dataset facts belong in latte_bench/data/registry.py:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, found", [
    ('STRIDES = {"ffs": 3, "taichi": 6}', True),
    ('KINDS = ("ffs", "sky", "ucf101")', True),
    ('scale = 7.0 if dataset == "ucf101" else 1.0', True),
    ('frames = kind in ("sky", "taichi")', True),
    ('ALIASES = {"ucf-101": "UCF101", "taichihd": "Taichi-HD"}', True),
    ('name = {"ffs": 1}["ffs"]', False),  # one name is a lookup, not a table
    ('small = args.preset == "demo"', False),
    ('x = ("tgan2_c3d", "c3d_ucf101")', False),
])
def test_the_ownership_check_finds_tables_and_branches(source, found):
    assert bool(second_owners(source, dataset_names())) is found


def _patch(monkeypatch, name: str, **changes):
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], **changes))


def test_the_stride_is_resolved_once_from_the_spec(monkeypatch):
    from latte_bench.metrics.protocol import Protocol
    from latte_bench.reports.store import _paper_real_stride

    assert registry.real_stride("taichi") == Protocol(dataset="taichi").stride == _paper_real_stride("Taichi-HD") == 6
    _patch(monkeypatch, "taichi", stride=7)
    assert registry.real_stride("taichi") == Protocol(dataset="taichi").stride == _paper_real_stride("Taichi-HD") == 7
    assert Protocol(dataset="taichi").resolved().real_stride == 7
    assert registry.real_stride("taichi", 2) == Protocol(dataset="taichi", real_stride=2).stride == 2
    assert registry.real_stride() == Protocol().stride == 1
    assert _paper_real_stride("demo") is None and _paper_real_stride("taichi") is None  # columns only


def test_training_transform_and_layout_come_from_the_spec(monkeypatch, tmp_path):
    from latte_bench.data.datasets import list_videos
    from latte_bench.data.transforms import dataset_transform
    from latte_bench.data.video import write_frames
    from latte_bench.errors import UserError

    clip = torch.arange(2 * 3 * 12 * 8, dtype=torch.float32).reshape(2, 3, 12, 8).remainder(256).to(torch.uint8)
    assert dataset_transform("sky", 8).flips is False
    assert torch.equal(dataset_transform("sky", 8)(clip, True), dataset_transform("sky", 8)(clip, False))
    _patch(monkeypatch, "sky", train_flip=True, train_transform="resize_short_side_center_crop")
    assert dataset_transform("sky", 8).flips is True
    assert torch.equal(dataset_transform("sky", 8)(clip, False), dataset_transform("ffs", 8)(clip, False))

    write_frames(tmp_path / "v0", np.zeros((4, 8, 8, 3), np.uint8))  # one frame folder
    with pytest.raises(UserError, match="expects video files"):
        list_videos("ffs", tmp_path)
    _patch(monkeypatch, "ffs", train_layout="frame_folders")
    entries, labels, _, _ = list_videos("ffs", tmp_path)
    assert [e.name for e in entries] == ["v0"] and labels == [0]


def test_guidance_and_sampling_defaults_come_from_the_spec(monkeypatch):
    from latte_bench.metrics.compare import paper_protocol
    from latte_bench.metrics.sources import CheckpointSource
    from latte_bench.commands.train import with_sampling_defaults

    def eval_cfg(dataset, num_classes):
        source = CheckpointSource.from_model(torch.nn.Linear(1, 1), None, {"num_classes": num_classes}, {})
        return source.effective_cfg(dataset)

    def sample_args(dataset, num_classes):
        args = argparse.Namespace(sampler=None, steps=None, cfg_scale=None)
        return vars(with_sampling_defaults(args, {"dataset": dataset, "num_classes": num_classes}))

    assert eval_cfg("ucf101", 101) == paper_protocol("ucf101")["fake.cfg_scale"] == 7.0 and eval_cfg("ucf101", 0) == 1.0
    _patch(monkeypatch, "ucf101", guidance=3.5)
    _patch(monkeypatch, "sky", sampler="dpm++", sample_steps=20)
    assert eval_cfg("ucf101", 101) == paper_protocol("ucf101")["fake.cfg_scale"] == 3.5
    assert sample_args("ucf101", 101) == {"sampler": "ddpm", "steps": 250, "cfg_scale": 3.5}
    assert sample_args("sky", 0) == {"sampler": "dpm++", "steps": 20, "cfg_scale": 1.0}
    assert paper_protocol("sky")["fake.sampler"] == "ddpm"  # the paper's protocol is not the dataset's default


def test_bench_samples_each_dataset_as_eval_ckpt_does(monkeypatch):
    from latte_bench.commands.bench import _split

    for name in DATASETS:
        want = registry.sampling_defaults(name, 0)
        assert {k: _split({}, name)[1][k] for k in ("sampler", "steps")} == {"sampler": want.sampler, "steps": want.steps}
    assert _split({}, "demo")[1]["sampler"] == "ddim" and _split({}, "ffs")[1]["steps"] == 250
    assert _split({"steps": 3, "sampler": "ddpm"}, "demo")[1] == {"sampler": "ddpm", "steps": 3}
    _patch(monkeypatch, "taichi", sampler="dpm++", sample_steps=12)
    assert _split({"seed": 1}, "taichi")[1] == {"sampler": "dpm++", "steps": 12, "seed": 1}


def test_eval_ckpt_takes_the_specs_sampler_and_steps(monkeypatch, tmp_path):
    """run_eval builds its CheckpointSource with the dataset's sampler and steps when no flag gives them."""
    from latte_bench.cli import build_parser
    from latte_bench.commands import eval as commands

    seen = {}

    def stop(real, fake, **kwargs):
        seen.update(sampler=fake.sampler, steps=fake.steps, cfg_scale=fake.cfg_scale)
        raise SystemExit(0)

    monkeypatch.setattr("latte_bench.metrics.evaluate", stop)
    _patch(monkeypatch, "demo", sampler="dpm++", sample_steps=11)
    with pytest.raises(SystemExit):
        commands.run_eval(build_parser().parse_args(
            ["eval", "--dataset", "demo", "--ckpt", str(tmp_path), "--no-cache"]))
    assert seen == {"sampler": "dpm++", "steps": 11, "cfg_scale": None}


def test_leaderboard_names_and_presets_read_the_spec(monkeypatch):
    from latte_bench.reports import published
    from latte_bench.reports.store import canonical_dataset
    from latte_bench.training.presets import PRESETS, _official

    assert published.DATASETS == registry.paper_titles() == ("FaceForensics", "SkyTimelapse", "UCF101", "Taichi-HD")
    assert [canonical_dataset(n) for n in ("ffs", " UCF-101 ", "taichihd", "demo", "Demo", "kinetics")] == \
        ["FaceForensics", "UCF101", "Taichi-HD", "demo", "Demo", "kinetics"]
    _patch(monkeypatch, "sky", aliases=("sky-tl",))
    assert canonical_dataset("Sky-TL") == "SkyTimelapse"
    assert PRESETS["ucf101"].num_classes == get_dataset("ucf101").num_classes == 101
    assert (PRESETS["ffs"].start_clip_iter, PRESETS["ffs"].log_every, PRESETS["ffs_img"].start_clip_iter) == (20_000, 100, 500_000)
    _patch(monkeypatch, "taichi", num_classes=3, official=registry.OfficialTraining(7, log_every=9))
    assert (_official("taichi", False).num_classes, _official("taichi", False).start_clip_iter,
            _official("taichi", False).log_every) == (3, 7, 9)


def test_every_spec_names_a_known_layout_and_transform():
    from latte_bench.data.transforms import CHAINS

    for spec in DATASETS.values():
        assert spec.train_layout in registry.TRAIN_LAYOUTS and spec.train_transform in CHAINS, spec.name
        assert set(registry.TRAIN_TRANSFORMS) == set(CHAINS)
        assert spec.in_paper == (spec.official is not None) == (not spec.procedural), spec.name


def test_only_a_procedural_set_goes_without_data(monkeypatch, tmp_path):
    from latte_bench.errors import UserError
    from latte_bench.commands.bench import _dataset_root
    from latte_bench.training.presets import preset
    from latte_bench.training.trainer import build_dataset

    monkeypatch.delenv(registry.DATA_ENV, raising=False)
    assert _dataset_root("demo", {}, None, tmp_path, "plan") is None
    with pytest.raises(UserError, match="no data root for sky"):
        _dataset_root("sky", {}, None, tmp_path, "plan")
    with pytest.raises(UserError, match="preset sky needs --data"):
        build_dataset(preset("sky"))
    _patch(monkeypatch, "sky", procedural=True)
    assert _dataset_root("sky", {}, None, tmp_path, "plan") is None
    cfg = dataclasses.replace(preset("demo"), dataset="sky", demo_videos=2)
    assert len(build_dataset(cfg)) == 2  # generated in memory
