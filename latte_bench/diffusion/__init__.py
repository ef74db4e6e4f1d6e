"""Gaussian diffusion for Latte: schedule, losses, respacing and samplers (DDPM, DDIM, DPM-Solver++).

The public names are imported lazily, so ``import latte_bench.diffusion`` is cheap:

* :func:`create_diffusion` — the DiT/ADM factory (``q_sample``, ``training_losses``,
  ``p_mean_variance``, ``p_sample(_loop)``, ``ddim_sample(_loop)``);
* :func:`sample` — the one sampling entry point (sampler, steps, guidance);
* :func:`classifier_free_guidance`, :func:`space_timesteps`, :class:`GaussianDiffusion`.
"""

from latte_bench.lazy import lazy_getattr

_EXPORTS = {
    "GaussianDiffusion": "gaussian",
    "LossType": "gaussian",
    "ModelMeanType": "gaussian",
    "ModelVarType": "gaussian",
    "named_beta_schedule": "gaussian",
    "SpacedDiffusion": "respace",
    "create_diffusion": "respace",
    "space_timesteps": "respace",
    "SAMPLERS": "samplers",
    "classifier_free_guidance": "samplers",
    "dpm_solver_sample_loop": "samplers",
    "guide": "samplers",
    "sample": "samplers",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
