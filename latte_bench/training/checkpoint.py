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

Files are written atomically; ``latest.pt`` is not a link but the highest step found.
:func:`export_official` writes the interchange format of the official repository,
``{"ema": state_dict}`` (through :func:`latte_bench.models.convert.save_official`), which
its ``find_model`` and our ``sample --ckpt`` both read.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from latte_bench.errors import UserError
from latte_bench.fsutil import atomic_path

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
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``); UserError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; pass an existing .pt file or run directory")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: cannot load checkpoint safely ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                        "is it a PyTorch checkpoint of weights only?") from e


def export_official(path: str | os.PathLike, checkpoint: dict) -> Path:
    """Write the EMA weights of a training checkpoint as ``{"ema": state_dict}`` (the official format).

    The model is rebuilt from the stored config so that helper C's exporter can check that the
    architecture has an official equivalent (Variant 1 with the default design choices).
    """
    from latte_bench.models.convert import save_official
    from latte_bench.training.presets import TrainConfig
    from latte_bench.training.trainer import build_model_for_checkpoint

    model = build_model_for_checkpoint(TrainConfig.from_dict(checkpoint["config"]), checkpoint)
    model.load_state_dict(checkpoint["ema"])
    save_official(model, path)
    return Path(path)
