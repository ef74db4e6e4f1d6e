"""benchmarks/gpu_suite.py: the dry run (every stage, tiny sizes, CPU) and the fast-path helpers it measures."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from latte_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"


def _suite_module():
    """benchmarks/gpu_suite.py as the module ``gpu_suite`` (registered, so its pool workers pickle by name)."""
    if "gpu_suite" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_suite"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpu_suite"]


def _dry_run(tmp_path: Path, monkeypatch, *args: str) -> int:
    """``gpu_suite.py --dry-run`` in this process; what the suite changes process-wide is undone after the test."""
    from latte_bench.device import torch_threads
    from latte_bench.metrics import weights

    # random I3D weights and LATTE_BENCH_OFFLINE when the real weights are absent; the thread count
    monkeypatch.setattr(weights, "load_i3d_state_dict", weights.load_i3d_state_dict)
    monkeypatch.setenv("LATTE_BENCH_OFFLINE", os.environ.get("LATTE_BENCH_OFFLINE", "0"))
    with torch_threads(torch.get_num_threads()):
        return _suite_module().main(["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), *args])


@pytest.mark.slow
def test_dry_run_runs_every_stage(tmp_path, monkeypatch):
    assert _dry_run(tmp_path, monkeypatch, "--peak-tflops", "0.001") == 0
    out = tmp_path / "out"
    results = json.loads((out / "gpu_suite.json").read_text())
    stages = results["stages"]
    assert list(stages) == ["i3d", "fvd", "train", "sample", "eval_ckpt"]
    assert {name: s["status"] for name, s in stages.items()} == dict.fromkeys(stages, "ok"), \
        {name: s.get("reason") for name, s in stages.items()}
    assert results["dry_run"] and results["environment"]["torch"] == torch.__version__

    i3d = stages["i3d"]["figures"]
    assert all(i3d[v]["clips_per_s"] > 0 for v in ("fp32_protocol_channels_last", "fp32_protocol_contiguous",
                                                   "bf16_tf32_channels_last"))
    assert i3d["fp32_protocol_contiguous"]["max_abs_logit_diff"] <= 1e-3  # both layouts keep the parity bound
    assert i3d["bf16_tf32_channels_last"]["max_abs_logit_diff"] > 0

    fvd = stages["fvd"]["figures"]
    assert math.isfinite(fvd["fvd"]) and fvd["fvd"] > 0 and fvd["clips"] == 2 and fvd["peak_host_pss_gib"] > 0

    train = stages["train"]["figures"]
    assert train["model_gflop_per_sample_fwd_bwd"] > 0
    for variant in ("eager", "eager_checkpointing", "compile", "compile_checkpointing"):
        entry = train[variant]
        assert entry["batch"] == 2 and entry["step_s"] > 0 and entry["mfu"] > 0, (variant, entry)
        assert entry["tokens_per_s"] == pytest.approx(train["tokens_per_sample"] * 2 / entry["step_s"], rel=0.01)

    sample = stages["sample"]["figures"]
    ratio = sample["ddpm250"]["s_per_video"] / sample["dpmpp25"]["s_per_video"]
    assert 3 < ratio < 30  # 10x the model calls; per-step costs differ only by the sampler arithmetic
    # both figures are rounded (s_per_video to 4 decimals, the 2,048-video time to 1): allow those roundings
    assert sample["dpmpp25"]["s_for_2048_videos"] == pytest.approx(sample["dpmpp25"]["s_per_video"] * 2048, rel=1e-3,
                                                                   abs=0.00005 * 2048 + 0.05)
    assert sample["vae_decode"]["s_per_video"] > 0

    ckpt = stages["eval_ckpt"]["figures"]
    assert ckpt["clips"] == 2 and ckpt["wall_s"] > 0 and math.isfinite(ckpt["fvd"])

    targets = {t["target"]: t for t in results["targets"]}
    assert set(targets) == {"fvd2048_16f_wall", "train_mfu", "sample_2048_dpmpp25"}
    for t in targets.values():
        assert (t["met"] is True and t["missed_by"] is None) or (t["met"] is False and t["missed_by"] > 0)
    md = (out / "gpu_suite.md").read_text()
    assert "## Stage 5: eval_ckpt — ok" in md and "| target | goal | measured |" in md
    assert "stage 5 eval_ckpt: ok" in (out / "gpu_suite.log").read_text()


def test_spent_budget_skips_cleanly(tmp_path, monkeypatch):
    assert _dry_run(tmp_path, monkeypatch, "--stages", "1,4", "--time-budget", "1") == 0
    results = json.loads((tmp_path / "out" / "gpu_suite.json").read_text())
    assert {s["status"] for s in results["stages"].values()} == {"skipped"}
    assert "skipped" in (tmp_path / "out" / "gpu_suite.md").read_text()


def test_peak_table_and_markdown():
    suite = _suite_module()
    assert suite.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert suite.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert suite.peak_tflops("NVIDIA H200") == 989.0
    assert suite.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert suite.peak_tflops("cpu") is None
    results = {"environment": {"device": "NVIDIA H200"}, "targets": [
        {"target": "train_mfu", "what": "MFU", "goal": 0.4, "measured": 0.3, "met": False, "missed_by": 0.1,
         "missed_by_factor": 1.33}], "stages": {}}
    assert "| MFU | 0.4 | 0.3 | **no** | 0.1 (1.33x) |" in suite.markdown(results)


def test_random_i3d_tensors_fit_the_network():
    from latte_bench.metrics import i3d

    net = i3d.InceptionI3d()
    i3d.load_tfhub_tensors(net, _suite_module().random_i3d_tensors())  # raises on any missing/unused/misshapen array
    with torch.inference_mode():
        _, ends = net(torch.rand(1, 3, 9, 32, 32) * 2 - 1, return_endpoints=True)
    assert torch.isfinite(ends["Mixed_5c"]).all() and ends["Mixed_5c"].abs().max() > 0


def test_training_fast_path_helpers():
    from latte_bench.training.presets import preset
    from latte_bench.training.checkpoint import build_model
    from latte_bench.training.trainer import compile_for_training, make_optimizer, resolve_precision

    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(UserError, match="--precision"):
        resolve_precision("tf32", torch.device("cpu"))
    cfg = preset("demo")
    model = build_model(cfg, 3, cfg.image_size)
    assert not make_optimizer(model.parameters(), cfg, torch.device("cpu")).defaults.get("fused")
    assert compile_for_training(model, cfg) is model and cfg.compile is False
    compiled = compile_for_training(model, dataclasses.replace(cfg, compile=True), backend="eager")
    assert compiled is model and all(block._compiled_call_impl is not None for block in model.blocks)
    assert set(model.state_dict()) == set(build_model(cfg, 3, cfg.image_size).state_dict())  # checkpoint names unchanged


@pytest.mark.slow
def test_run_in_child_runs_the_evaluation_with_workers(tmp_path, monkeypatch):
    """Stage 2's evaluate() in a spawned process, with a DataLoader worker (a grandchild process), as on the GPU."""
    monkeypatch.syspath_prepend(str(SUITE.parent))  # a spawned child takes the parent's sys.path
    gpu_suite = _suite_module()
    import numpy as np

    from latte_bench.data.video import write_npz

    for i in range(2):
        gpu_suite._write_real_video((str(tmp_path / "real"), i, 9, 32, "jpeg"))
    write_npz(tmp_path / "fake.npz", np.stack([gpu_suite._render_fake_video((i, 9, 32)) for i in range(2)]))
    found = gpu_suite.run_in_child(gpu_suite._fvd_evaluation, dict(
        real=str(tmp_path / "real"), fake=str(tmp_path / "fake.npz"), clips=2, frames=9, batch=2, workers=1,
        device="cpu"), 240)
    assert found["fvd_wall_s"] > 0 and math.isfinite(found["fvd"]) and found["fvd"] > 0
    assert sorted(p.name for p in (tmp_path / "real").iterdir())[0].startswith("000000_")
    assert len(list((tmp_path / "real").glob("*/*.jpg"))) == 18

    import queue

    reports = queue.Queue()  # what a failing child reports: its traceback
    gpu_suite._child_entry("environment", {"device": "not a device"}, reports)
    assert "AttributeError" in reports.get_nowait()["error"]
