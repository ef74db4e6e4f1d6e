"""Progress bars shown inside a batch: a sampler's steps, only when the batch is slow.

A pass's bar (:func:`latte_bench.metrics.extract.run_pass`, ``latte-bench sample``) moves once per
batch. When one batch takes longer than :data:`SLOW_BATCH_S` seconds, e.g. DDPM-250 on a CPU,
the sampler's steps appear as a second bar below it (``DDPM steps: 40/250``), removed when the
batch ends; a fast batch never shows it, and nothing is shown with progress off.
"""

from __future__ import annotations

from typing import Iterable

SLOW_BATCH_S = 3.0  # seconds a batch runs before its steps are shown


def step_bar(steps: Iterable, total: int, name: str, show: bool) -> Iterable:
    """``steps`` unchanged, or wrapped in a tqdm bar ``{name} steps`` (``total`` steps) that stays hidden
    for the first :data:`SLOW_BATCH_S` seconds and is cleared when done. ``show`` False: no bar."""
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, total=total, desc=f"{name} steps", unit="step", delay=SLOW_BATCH_S, leave=False, dynamic_ncols=True)
