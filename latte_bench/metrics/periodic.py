"""FVD during training (``--fvd-every N``): the EMA model scored through the evaluation path, sampled in memory.

:func:`periodic_fvd` is the ``evaluate_fvd`` callable that ``latte-bench train`` hands to
:func:`latte_bench.training.trainer.train`, so that training does not depend on the metrics.
"""

from __future__ import annotations

from pathlib import Path

from latte_bench import distributed as dist
from latte_bench.errors import UserError
from latte_bench.fsutil import write_json
from latte_bench.metrics.evaluation import evaluate
from latte_bench.metrics.sources import CheckpointSource


def periodic_fvd(cfg, ema, latent_space, run_dir: Path, step: int, device, latent: tuple[int, int]) -> dict:
    """FVD of ``cfg.fvd_videos`` EMA samples against ``cfg.fvd_real`` at ``step``.

    ``cfg``: the run's :class:`~latte_bench.training.presets.TrainConfig`; ``latent``: (channels,
    size) of the model's latents. The full record goes to ``run_dir/fvd/{step:07d}.json``; the
    returned dict is the ``metrics.jsonl`` line.
    """
    if not cfg.fvd_real:
        raise UserError("--fvd-every needs --fvd-real, a held-out real video set")
    channels, size = latent
    info = {**cfg.to_dict(), "latent_channels": channels, "latent_size": size}
    fake = CheckpointSource.from_model(ema, latent_space, info, {"path": None, "sha256": None, "step": step,
                                                                "weights": "ema", "model": cfg.model},
                                       sampler=cfg.sample_sampler, steps=cfg.sample_steps, device=device)
    was_training = ema.training
    result = evaluate(cfg.fvd_real, fake, metrics=("fvd",), num_clips=cfg.fvd_videos, num_frames=min(16, cfg.num_frames),
                      real_stride=cfg.frame_interval, allow_fewer=True, batch_size=cfg.batch_size, device=str(device),
                      progress=False, method=f"{cfg.model} step {step}")
    ema.train(was_training)
    record_path = Path(run_dir) / "fvd" / f"{step:07d}.json"
    if dist.is_main():
        write_json(record_path, result.record)
    return {"fvd": float(result.fvd), "fvd_clips": result.record["counts"]["fake_clips"],
            "nonstandard": result.record["nonstandard"], "record": str(record_path), "real": cfg.fvd_real,
            "sampler": cfg.sample_sampler, "sampling_steps": cfg.sample_steps}
