"""Training checkpoints: everything needed to continue a run exactly, loadable with ``weights_only=True``.

A checkpoint ``ROOT/checkpoints/{step:07d}.pt`` is a dict of tensors and plain Python values:

- ``model``, ``ema``: state dicts (the bare model, no DDP ``module.`` prefix);
- ``optimizer``: the AdamW state dict keyed by parameter name
  (``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` with full state, so
  DDP, FSDP and single-process runs write the same layout); ``scaler``: the fp16 GradScaler
  state (or None);
- ``step``: optimizer steps done; ``config``: the run's config (a dict of plain values);
- ``rng``: python / numpy / torch (CPU and CUDA) generator states, stored as tensors and
  lists so that ``torch.load(weights_only=True)`` accepts them; the data position is the
  step itself (:class:`latte_bench.data.datasets.StepBatchSampler`);
- ``format``: ``"latte-bench-train-v1"``.

Files are written atomically; the latest checkpoint is the highest step found
(:func:`latest_checkpoint`). The
temporary files of a write a crash interrupted (``.0000NNN.pt.XXXXXXXX.tmp.pt``) are removed by
:func:`clean_checkpoint_temporaries` when the next run starts.

Resume (:func:`resume_checkpoint`) loads the latest checkpoint and compares the run's
settings with the ones stored in it: any difference in a field that shapes the trajectory
(everything except :data:`OPERATIONAL_FIELDS`) is refused, naming each field, unless the
change is explicitly allowed; an allowed change is recorded in the config under
``config_changes``.
:func:`latte_bench.training.load.export_official` writes the interchange format of the official repository,
``{"ema": state_dict}`` (through :func:`latte_bench.models.convert.save_official`), which
its ``find_model`` and our ``sample --ckpt`` both read.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from latte_bench.errors import UserError, third_party_quiet
from latte_bench.fsutil import clean_temporaries, write_errors, write_torch

FORMAT = "latte-bench-train-v1"
_NAME = re.compile(r"^(\d{7,})\.pt$")


def rng_state() -> dict:
    """The python, numpy and torch RNG states as tensors/lists (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, gauss_value = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss_value))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{step:07d}.pt"


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step under ``run_dir/checkpoints`` (None when there is none)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return found[-1][1] if found else None


def clean_checkpoint_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Remove checkpoint temporaries an interrupted save left in ``run_dir/checkpoints`` (call on one rank)."""
    return clean_temporaries(Path(run_dir) / "checkpoints")


# what a failed write of a run's files says to do (one line, exit 2)
RUN_WRITE_WAY_OUT = "free some space or choose another --out; --resume continues from the last checkpoint"


def save_checkpoint(path: str | os.PathLike, *, model, ema, optimizer, step: int, config: dict, scaler=None) -> Path:
    """Atomically write a full training checkpoint (see the module docstring)."""
    state = {
        "format": FORMAT,
        "step": int(step),
        "config": dict(config),
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state(),
    }
    path = Path(path)
    with write_errors(path, RUN_WRITE_WAY_OUT):
        write_torch(path, state)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``); UserError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; pass an existing .pt file or run directory")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: checkpoint is empty (0 bytes: an interrupted copy?); delete it or copy it again")
    try:
        with third_party_quiet():  # torch warns about the protocol of a raw pickle before it refuses it
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise UserError(f"{path}: cannot load checkpoint safely ({type(e).__name__}: {first}); "
                        "is it a PyTorch checkpoint of weights only?") from e


def check_finite(state: dict, source: str) -> None:
    """Refuse a state dict holding a NaN or Inf: one line naming ``source`` and the first such tensor.

    ``state``: name -> tensor (non-floating tensors and other values are skipped). Such weights
    sample all-black videos that would otherwise be scored or written as if they were results.
    """
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "Inf"
            raise UserError(f"{source}: tensor {name} holds {kind} values (a diverged run?); "
                            "use an earlier checkpoint of the run")


# Fields that may differ on resume without changing what the run computes: length (unless the
# learning rate depends on it), where things are, logging/preview cadence, speed-only switches.
OPERATIONAL_FIELDS = frozenset({
    "steps", "out", "num_workers", "log_every", "ckpt_every", "sample_every", "sample_videos", "sample_steps",
    "sample_sampler", "fvd_every", "fvd_real", "fvd_videos", "device", "distributed", "compile",
    "gradient_checkpointing", "config_changes",
})


def _comparable(config: dict) -> dict:
    """The trajectory-defining settings of a run config, with the global batch in place of its factors."""
    out = {k: json.loads(json.dumps(v)) for k, v in config.items() if k not in OPERATIONAL_FIELDS}
    if config.get("lr_schedule", "constant") != "constant" and "steps" in config:
        out["steps"] = config["steps"]  # a cosine schedule is stretched by a new step count
    if {"batch_size", "grad_accum", "world_size"} <= config.keys():
        out["global_batch"] = int(config["batch_size"]) * int(config["grad_accum"]) * int(config["world_size"])
        for k in ("batch_size", "grad_accum", "world_size"):
            out.pop(k)
    return out


def config_differences(stored: dict, current: dict) -> dict[str, list]:
    """``{field: [stored, current]}`` for each trajectory-defining setting that differs.

    Fields present in only one of the two (added in a later version) are not compared. The
    batch is compared as the global batch ``batch_size · grad_accum · world_size`` (the trainer
    follows the same trajectory for any split of it); when it differs its factors are listed.
    """
    a, b = _comparable(stored), _comparable(current)
    diff = {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if a[k] != b[k]}
    if "global_batch" in diff:
        for k in ("batch_size", "grad_accum", "world_size"):
            if stored.get(k) != current.get(k):
                diff[k] = [stored.get(k), current.get(k)]
    return diff


def resume_checkpoint(run_dir: str | os.PathLike, current: dict, allow_change: bool = False) -> tuple[Path, dict, dict]:
    """``(path, checkpoint, changed)``: the latest checkpoint of ``run_dir`` and the settings that changed.

    ``changed`` is ``{field: [old, new]}`` (empty when nothing changed).

    ``current``: the new run's config (``TrainConfig.to_dict()`` plus ``world_size``). Raises
    :class:`UserError` when there is no checkpoint, when the latest one is empty, corrupt or not a
    training checkpoint (naming it and the previous one to fall back to), or when settings differ
    and ``allow_change`` is False (naming each field and the flag that allows it).
    """
    run_dir = Path(run_dir)
    found = latest_checkpoint(run_dir)
    if found is None:
        raise UserError(f"{run_dir}: --resume but no checkpoint under {run_dir / 'checkpoints'}; drop --resume to start")
    try:
        ckpt = load_checkpoint(found)
        if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
            raise UserError(f"{found}: not a latte-bench training checkpoint")
    except UserError as e:
        earlier = sorted(p for p in found.parent.iterdir() if _NAME.match(p.name) and p != found)
        hint = f"delete it to resume from {earlier[-1].name}" if earlier else "delete it and start again without --resume"
        raise UserError(f"{e}; {hint}") from None
    for part in ("model", "ema"):
        check_finite(ckpt.get(part, {}), f"{found} ({part})")
    diff = config_differences(ckpt.get("config", {}), current)
    if diff and not allow_change:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diff.items())
        raise UserError(f"{found}: --resume with other settings than the run was trained with ({listed}); "
                        "pass the run's values, or --allow-config-change to continue with the new ones (recorded in config.json)")
    return found, ckpt, diff
