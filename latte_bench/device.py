"""One device rule and one precision rule for the whole package.

* :func:`resolve_device`: ``None`` or ``"auto"`` means CUDA when available, else CPU; under
  ``torchrun`` a bare ``"cuda"`` becomes this process's ``cuda:LOCAL_RANK``.
* :func:`exact_fp32`: TF32 off for matmuls and cuDNN inside the block (the metric protocol),
  restored on exit, so metric code never changes the flags a training run set.
* :func:`torch_threads`: the CPU thread count inside the block, restored on exit.
* :func:`set_threads`: the one ``--threads`` rule of every command: ``N >= 1``, or when not given
  torch's current count (``$OMP_NUM_THREADS`` when set, else the physical cores).
* :data:`PRECISIONS`: ``--precision`` name -> autocast dtype (``None``: exact fp32, no autocast).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

from latte_bench.errors import NAME_ONLY, Setting, UserError, literal
from latte_bench.options import resolve_threads

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``torch.device`` for ``device`` (``None``/``"auto"``: CUDA when available, else CPU)."""
    if isinstance(device, torch.device):
        device = str(device)
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("{device}: no CUDA device is visible here; use {cpu}", device=device, cpu=Setting("device", "cpu"))
        if device == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device(device)
    if device != "cpu":
        raise UserError(f"{{device}} must be cpu, cuda, cuda:N or auto, got {literal(repr(device))}", device=NAME_ONLY)
    return torch.device("cpu")


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """Full fp32 matmuls and convolutions on CUDA inside the block; the previous flags come back after."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block (``None``: unchanged); restored on exit."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def set_threads(n: int | None) -> int:
    """Set torch's CPU threads for ``--threads n`` (None: keep the current count); returns the count in force.

    ``n`` below 1 or not an integer is a :class:`UserError`, the same check as ``Protocol.torch_threads``.
    """
    count = resolve_threads(n)
    if count != torch.get_num_threads():
        torch.set_num_threads(count)
    return count
