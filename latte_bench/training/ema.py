"""Exponential moving average of a model's weights (decay 0.9999, as DiT and Latte).

Only trainable parameters are averaged. Frozen parameters and buffers (Latte's fixed sin-cos
``pos_embed`` / ``temp_embed``) are *copied*: the official code runs them through the EMA
too, which leaves them unchanged in exact arithmetic but lets fp32 rounding drift them by
a few ulps per step; copying keeps them bit-identical to the model's.
"""

from __future__ import annotations

import copy

import torch


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def _local(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of an FSDP2 (DTensor) parameter; the tensor itself otherwise.

    The EMA model is sharded exactly like the model, so the shards line up element for element.
    """
    return t.to_local() if hasattr(t, "to_local") else t


def create_ema(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen, eval-mode copy of ``model`` (same weights)."""
    ema = copy.deepcopy(unwrap(model)).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float = 0.9999) -> None:
    """``ema ← decay·ema + (1 − decay)·model`` for trainable parameters; copy everything else."""
    model = unwrap(model)
    ema_params = dict(ema.named_parameters())
    averaged, current = [], []
    for name, p in model.named_parameters():
        target = ema_params[name]
        if p.requires_grad:
            averaged.append(_local(target))
            current.append(_local(p.detach()).to(target.dtype))
        else:
            _local(target).copy_(_local(p))
    if averaged:
        torch._foreach_mul_(averaged, decay)
        torch._foreach_add_(averaged, current, alpha=1.0 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].copy_(b)
