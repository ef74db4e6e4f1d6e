"""Samplers for Latte models and the one entry point the sampling CLI calls: :func:`sample`.

* ``"ddpm"`` — ancestral sampling with the learned variance on a respaced schedule (the official
  evaluation setting: 250 steps);
* ``"ddim"`` — DDIM on the same respaced schedule (``eta`` = 0 deterministic);
* ``"dpm++"`` — DPM-Solver++ (2M), diffusers' ``DPMSolverMultistepScheduler`` on the same linear
  betas, fed the epsilon half of the model output (the fast solver: ~25 steps).

Classifier-free guidance follows the official ``forward_with_cfg``: one batched call on
[x; x] with labels [y; null], ``eps = eps_null + s (eps_y − eps_null)`` on all latent channels,
and the variance channels taken from the conditional half.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import UserError
from ..options import SAMPLERS  # the choice list of every --sampler
from ..progress import step_bar
from .gaussian import named_beta_schedule, randn
from .respace import create_diffusion


def guide(cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float, channels: int) -> torch.Tensor:
    """Combine conditional and unconditional outputs (B, F, 2C or C, H, W) as the official code does.

    The first ``channels`` (all latent channels, C = 4 for Latte; DiT guides only 3) become
    ``uncond + cfg_scale · (cond − uncond)``; the remaining (variance) channels come from ``cond``.
    """
    eps = uncond[:, :, :channels] + cfg_scale * (cond[:, :, :channels] - uncond[:, :, :channels])
    return torch.cat([eps, cond[:, :, channels:]], dim=2)


def classifier_free_guidance(model: Callable, cfg_scale: float, null_class: int) -> Callable:
    """Wrap ``model(x, t, y=...)`` into a guided model with the same call signature.

    The wrapper evaluates the model once on a doubled batch ([x; x], [t; t], [y; null_class])
    and combines the halves with :func:`guide`. This equals the official ``forward_with_cfg``
    on the conditional half of its doubled batch (the null half there is discarded after
    sampling), at half the sampler state.
    """

    def guided(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if y is None:
            raise ValueError("classifier-free guidance needs class labels y")
        null = torch.full_like(y, null_class)
        out = model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, null]), **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        cond, uncond = out.chunk(2, dim=0)
        return guide(cond, uncond, cfg_scale, x.shape[2])

    return guided


def prediction_part(model_output: torch.Tensor, channels: int) -> torch.Tensor:
    """The prediction channels (epsilon, or x_0 for an x_0-prediction model) of a model output
    (B, F, 2C or C, H, W) -> (B, F, C, H, W)."""
    if model_output.shape[2] == 2 * channels:
        return model_output[:, :, :channels]
    if model_output.shape[2] == channels:
        return model_output
    raise ValueError(f"model output has {model_output.shape[2]} channels; expected {channels} or {2 * channels}")


DPM_SPACINGS = ("linspace", "logsnr")


def dpm_solver_scheduler(steps: int, noise_schedule: str = "linear", diffusion_steps: int = 1000, spacing: str = "linspace",
                         prediction: str = "eps"):
    """diffusers' DPM-Solver++ (2M) on the training betas, stepping from t = 999 to x_0 in ``steps`` steps.

    ``spacing``: ``"linspace"`` (default; evenly spaced timesteps, diffusers' default) or
    ``"logsnr"`` (evenly spaced log-SNR, diffusers' ``use_lu_lambdas``; more steps near t = 0 —
    see docs/diffusion.md for when it helps). ``prediction``: what the model outputs, ``"eps"``
    (Latte) or ``"x0"`` (diffusers' ``"sample"``).
    """
    from diffusers import DPMSolverMultistepScheduler

    if spacing not in DPM_SPACINGS:
        raise ValueError(f"unknown DPM-Solver spacing {spacing!r}; use one of {DPM_SPACINGS}")

    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=diffusion_steps,
        trained_betas=named_beta_schedule(noise_schedule, diffusion_steps),
        algorithm_type="dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        prediction_type={"eps": "epsilon", "x0": "sample"}[prediction],
        lower_order_final=True,  # first order on the last steps: more stable below ~15 steps
        final_sigmas_type="zero",  # the last step lands on the x_0 prediction
        timestep_spacing="linspace",
        use_lu_lambdas=spacing == "logsnr",
    )
    scheduler.set_timesteps(steps)
    return scheduler


def dpm_solver_sample_loop(
    model: Callable,
    noise: torch.Tensor,
    steps: int,
    model_kwargs: dict | None = None,
    progress: bool = False,
    noise_schedule: str = "linear",
    diffusion_steps: int = 1000,
    spacing: str = "linspace",
    prediction: str = "eps",
) -> torch.Tensor:
    """DPM-Solver++ (2M) from x_T = ``noise`` (B, F, C, H, W) to x_0; deterministic."""
    scheduler = dpm_solver_scheduler(steps, noise_schedule, diffusion_steps, spacing, prediction)
    x = noise * scheduler.init_noise_sigma
    for timestep in step_bar(scheduler.timesteps, len(scheduler.timesteps), "DPM-Solver++", progress):
        t = torch.full((x.shape[0],), int(timestep), device=x.device, dtype=torch.long)
        with torch.no_grad():
            out = model(x, t, **(model_kwargs or {}))
        predicted = prediction_part(out[0] if isinstance(out, tuple) else out, x.shape[2])
        x = scheduler.step(predicted, timestep, x).prev_sample
    return x


def _model_device(model) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for parameter in model.parameters():
            return parameter.device
    return torch.device("cpu")


def sample(
    model: Callable,
    shape,
    *,
    sampler: str = "ddpm",
    steps: int = 250,
    cfg_scale: float = 1.0,
    y: torch.Tensor | None = None,
    num_classes: int | None = None,
    noise: torch.Tensor | None = None,
    generator=None,
    eta: float = 0.0,
    clip_denoised: bool = False,
    progress: bool = True,
    device=None,
    learn_sigma: bool = True,
    noise_schedule: str = "linear",
    prediction: str = "eps",
    diffusion_steps: int = 1000,
) -> torch.Tensor:
    """Sample latent videos x_0 (B, F, C, H, W) from a Latte model.

    Args:
        model: ``model(x, t, y=None)`` -> (B, F, 2C, H, W) (learned variance) or (B, F, C, H, W);
            ``t`` are training timesteps 0..999. Put an ``nn.Module`` in eval mode first (label
            dropout is active in training mode).
        shape: (B, F, C, H, W) of the latents, e.g. (B, 16, 4, 32, 32).
        sampler: ``"ddpm"`` (ancestral, the official evaluation sampler), ``"ddim"``, or
            ``"dpm++"`` (DPM-Solver++ 2M, the fast solver; ~25 steps).
        steps: number of model evaluations (respacing ``str(steps)`` for DDPM/DDIM).
        cfg_scale: classifier-free guidance scale; 1 means no guidance (one model call per step).
        y: (B,) int64 class labels for a class-conditional model, else None.
        num_classes: the null label used for guidance (= the model's ``num_classes``; read from
            ``model.num_classes`` when None).
        noise: x_T (B, F, C, H, W); drawn from ``generator`` when None.
        generator: torch.Generator for x_T and the DDPM / DDIM(eta>0) step noise, or a list of
            B generators (one per video: each video's result then does not depend on the batch
            it was sampled in). Given the same noise and generator state the result is identical.
        eta: DDIM stochasticity (0 = deterministic).
        clip_denoised: clamp predicted x_0 to [−1, 1] (DDPM/DDIM). False by default, as in
            Latte's sample scripts (VAE latents are not confined to [−1, 1]).
        progress: show the steps as a tqdm bar once the call has run 3 s
            (:func:`latte_bench.progress.step_bar`; pass False on ranks other than 0).
        device: where to sample; defaults to the noise's, else the model's device.
        learn_sigma: whether the model outputs the variance channels (Latte: True).
        noise_schedule: the training betas, ``"linear"`` (Latte) or ``"squaredcos_cap_v2"``.
        prediction: what the model predicts, ``"eps"`` (Latte) or ``"x0"``.

    Returns:
        x_0 latents (B, F, C, H, W), float32 unless ``noise`` has another dtype.
    """
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if steps < 1 or steps > diffusion_steps:
        raise UserError(f"sampling steps must be in 1..{diffusion_steps}, got {steps}")
    if isinstance(model, torch.nn.Module) and model.training:
        raise ValueError("call model.eval() before sampling (label dropout is active in training mode)")
    shape = tuple(int(s) for s in shape)
    if device is None:
        device = noise.device if noise is not None else _model_device(model)
    if noise is None:
        noise = randn(shape, generator, device)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != requested shape {shape}")
    noise = noise.to(device)

    model_kwargs = {}
    if y is not None:
        model_kwargs["y"] = y.to(device)
    if cfg_scale != 1.0:
        if y is None:
            raise UserError("classifier-free guidance (cfg_scale != 1) needs a class-conditional model and labels y")
        null_class = num_classes if num_classes is not None else getattr(model, "num_classes", None)
        if null_class is None:
            raise UserError("classifier-free guidance needs num_classes (the null label); pass num_classes=")
        model = classifier_free_guidance(model, cfg_scale, int(null_class))

    if sampler == "dpm++":
        return dpm_solver_sample_loop(model, noise, steps, model_kwargs, progress, noise_schedule, diffusion_steps,
                                      prediction=prediction)
    diffusion = create_diffusion(
        str(steps), noise_schedule=noise_schedule, learn_sigma=learn_sigma, diffusion_steps=diffusion_steps,
        predict_xstart=prediction == "x0",
    )
    if sampler == "ddpm":
        return diffusion.p_sample_loop(
            model, shape, noise=noise, clip_denoised=clip_denoised, model_kwargs=model_kwargs,
            device=device, progress=progress, generator=generator,
        )
    return diffusion.ddim_sample_loop(
        model, shape, noise=noise, clip_denoised=clip_denoised, model_kwargs=model_kwargs,
        device=device, progress=progress, eta=eta, generator=generator,
    )
