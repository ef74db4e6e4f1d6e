"""Timestep respacing: sample with a subset of the training timesteps.

A respaced diffusion keeps the cumulative products ᾱ at the chosen timesteps and recomputes
β_i = 1 − ᾱ_{kept i} / ᾱ_{kept i−1}, so it is the same forward process observed at fewer times.
The model is still called with the original timestep (``timestep_map[i]``), never a rescaled one.
"""

from __future__ import annotations

import numpy as np

from .gaussian import GaussianDiffusion, LossType, ModelMeanType, ModelVarType, named_beta_schedule


def space_timesteps(num_timesteps: int, section_counts) -> set[int]:
    """Which of the ``num_timesteps`` original steps to keep.

    ``section_counts`` is a list of ints or a string:

    * ``"250"`` — 250 steps spread evenly (fractional stride (T−1)/(n−1), rounded), first and
      last step included;
    * ``"10,15,20"`` — the steps are cut into 3 equal sections taking 10, 15 and 20 steps each;
    * ``"ddim50"`` — the integer stride s with ``len(range(0, T, s)) == 50`` (the DDIM paper's
      spacing; 0, 20, ..., 980 for T = 1000).
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired = int(section_counts[len("ddim"):])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == desired:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"cannot take exactly {desired} steps with an integer stride from {num_timesteps}")
        section_counts = [int(part) for part in section_counts.split(",")]
    section_counts = [int(c) for c in section_counts]

    size_per, extra = divmod(num_timesteps, len(section_counts))
    kept: list[int] = []
    start = 0
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise ValueError(f"cannot take {count} steps from a section of {size} steps")
        stride = 1.0 if count == 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            # Accumulate rather than multiply: this rounding decides which steps are kept, and
            # the official schedules were built this way.
            kept.append(start + round(position))
            position += stride
        start += size
    return set(kept)


def respaced_betas(base_betas: np.ndarray, use_timesteps) -> tuple[np.ndarray, list[int]]:
    """(betas of the kept steps, timestep_map) for the base schedule observed only at ``use_timesteps``."""
    use_timesteps = set(int(i) for i in use_timesteps)
    alphas_cumprod = np.cumprod(1.0 - np.asarray(base_betas, dtype=np.float64))
    betas, timestep_map = [], []
    previous = 1.0
    for i, alpha_bar in enumerate(alphas_cumprod):
        if i in use_timesteps:
            betas.append(1.0 - alpha_bar / previous)
            previous = alpha_bar
            timestep_map.append(i)
    return np.array(betas, dtype=np.float64), timestep_map


class SpacedDiffusion(GaussianDiffusion):
    """A :class:`GaussianDiffusion` that keeps only ``use_timesteps`` of the base schedule ``betas``."""

    def __init__(self, use_timesteps, betas, **kwargs):
        new_betas, timestep_map = respaced_betas(betas, use_timesteps)
        self.use_timesteps = set(timestep_map)
        super().__init__(new_betas, timestep_map=timestep_map, original_num_steps=len(betas), **kwargs)


def create_diffusion(
    timestep_respacing,
    noise_schedule: str = "linear",
    use_kl: bool = False,
    sigma_small: bool = False,
    predict_xstart: bool = False,
    learn_sigma: bool = True,
    rescale_learned_sigmas: bool = False,
    diffusion_steps: int = 1000,
) -> SpacedDiffusion:
    """The diffusion Latte (and DiT) use, with the same arguments and defaults.

    ``timestep_respacing``: ``""`` or None for all ``diffusion_steps`` steps (training), else a
    respacing string such as ``"250"`` or ``"ddim50"`` (see :func:`space_timesteps`). The defaults
    give epsilon prediction, learned-range variance and the hybrid MSE + VB loss.
    """
    betas = named_beta_schedule(noise_schedule, diffusion_steps)
    if use_kl:
        loss_type = LossType.RESCALED_KL
    elif rescale_learned_sigmas:
        loss_type = LossType.RESCALED_MSE
    else:
        loss_type = LossType.MSE
    if timestep_respacing is None or timestep_respacing == "":
        timestep_respacing = [diffusion_steps]
    if learn_sigma:
        var_type = ModelVarType.LEARNED_RANGE
    else:
        var_type = ModelVarType.FIXED_SMALL if sigma_small else ModelVarType.FIXED_LARGE
    return SpacedDiffusion(
        use_timesteps=space_timesteps(diffusion_steps, timestep_respacing),
        betas=betas,
        model_mean_type=ModelMeanType.START_X if predict_xstart else ModelMeanType.EPSILON,
        model_var_type=var_type,
        loss_type=loss_type,
    )
