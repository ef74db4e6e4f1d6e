"""Checkpoints: weights_only loading, RNG round trip, latest lookup, official export."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from latte_bench.errors import UserError
from latte_bench.training.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from latte_bench.training.ema import create_ema, update_ema
from latte_bench.training.checkpoint import export_official
from latte_bench.training.trainer import train


pytestmark = pytest.mark.usefixtures("single_thread")


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint(checkpoint_path(tmp_path, 7), model=model, ema=create_ema(model), optimizer=opt, step=7, config={"a": 1})
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt = torch.load(path, weights_only=True)  # must not need a full unpickler
    set_rng_state(ckpt["rng"])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(2), expected[2])
    assert ckpt["step"] == 7 and ckpt["config"] == {"a": 1} and path.name == "0000007.pt"


def test_latest_checkpoint_and_errors(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    for step in (5, 100, 20):
        torch.save({"x": torch.zeros(1)}, checkpoint_path(tmp_path, step))
    (tmp_path / "checkpoints" / "notes.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "0000100.pt"
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load"):
        load_checkpoint(tmp_path / "bad.pt")


def test_ema_averages_trainable_parameters_and_copies_frozen_ones():
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    model.register_buffer("table", torch.zeros(2))
    ema = create_ema(model)
    with torch.no_grad():
        model.weight.fill_(1.0), model.bias.fill_(3.0), model.table.fill_(5.0)
    before = ema.weight.clone()
    update_ema(ema, model, decay=0.75)
    assert torch.allclose(ema.weight, 0.75 * before + 0.25)
    assert torch.equal(ema.bias, model.bias) and torch.equal(ema.table, model.table)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())


def test_export_official_holds_the_ema_weights(tmp_path):
    from test_trainer import tiny  # tests/ is on sys.path under pytest

    train(tiny(tmp_path / "run", steps=1), progress=False)
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    export_official(tmp_path / "official.pt", ckpt)
    official = torch.load(tmp_path / "official.pt", weights_only=True)
    assert set(official) == {"ema"} and official["ema"].keys() == ckpt["ema"].keys()
    assert all(torch.equal(official["ema"][k], ckpt["ema"][k]) for k in ckpt["ema"])


def test_config_differences_name_what_changes_the_trajectory():
    from latte_bench.training.checkpoint import config_differences
    from latte_bench.training.presets import preset

    old = {**preset("demo").to_dict(), "lr_schedule": "constant", "world_size": 1, "latent_channels": 3}
    same_run = {**old, "steps": 9000, "out": "elsewhere", "num_workers": 4, "log_every": 1, "device": "cuda",
                "batch_size": old["batch_size"] // 2, "world_size": 2}  # operational; the global batch is unchanged
    same_run.pop("latent_channels")  # known only after the data is built: not compared
    assert config_differences(old, same_run) == {}
    changed = {**old, "lr": 1.0, "seed": 7, "grad_accum": 2, "model_options": {"depth": 1}}
    diff = config_differences(old, changed)
    assert diff == {"lr": [old["lr"], 1.0], "seed": [old["seed"], 7], "model_options": [old["model_options"], {"depth": 1}],
                    "global_batch": [old["batch_size"], 2 * old["batch_size"]], "grad_accum": [1, 2]}
    cosine = {**old, "lr_schedule": "cosine"}
    assert config_differences(cosine, {**cosine, "steps": cosine["steps"] + 1}) == {
        "steps": [cosine["steps"], cosine["steps"] + 1]}  # the schedule stretches with the step count


def test_only_the_checkpoint_module_calls_torch_load():
    """Every checkpoint file is read by latte_bench/training/checkpoint.py (one place for safety and error lines)."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "latte_bench"
    callers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "load" and isinstance(node.value, ast.Name) and node.value.id == "torch":
                callers.add(path.relative_to(package).as_posix())
    assert callers == {"training/checkpoint.py"}
