"""Gaussian diffusion as Latte trains and samples it (the IDDPM / ADM / DiT design, for video).

Tensors are laid out (B, F, C, H, W): batch, frames, latent channels, height, width. A model is
called ``model(x_t, t, **model_kwargs)`` with ``t`` the timestep (B,) int64 it was trained on
(0..999) and returns either (B, F, C, H, W) (fixed variance) or (B, F, 2C, H, W) (learned
variance; split on dim 2 into epsilon and the variance interpolation value ``v``).

Schedule arrays are float64 numpy; each lookup is cast to float32 before it meets a tensor, as in
ADM, which is what makes the results match the official code to 1e-6.

Formulas (see docs/diffusion.md):

* ``q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 − ᾱ_t) I)``
* posterior ``q(x_{t−1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, β̃_t I)`` with
  ``β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)``, ``c0_t = β_t sqrt(ᾱ_{t−1}) / (1 − ᾱ_t)``,
  ``ct_t = (1 − ᾱ_{t−1}) sqrt(α_t) / (1 − ᾱ_t)``
* learned range: ``log σ²_t = f log β_t + (1 − f) log β̃_t`` with ``f = (v + 1) / 2``
"""

from __future__ import annotations

import enum
import math
from typing import Callable

import numpy as np
import torch

from ..progress import step_bar



class ModelMeanType(enum.Enum):
    """What the network predicts."""

    START_X = enum.auto()  # x_0
    EPSILON = enum.auto()  # the noise (Latte)


class ModelVarType(enum.Enum):
    """How the reverse-step variance is chosen."""

    FIXED_SMALL = enum.auto()  # β̃_t
    FIXED_LARGE = enum.auto()  # β_t (β̃_1 at t = 0)
    LEARNED = enum.auto()  # the network outputs log σ² directly
    LEARNED_RANGE = enum.auto()  # the network interpolates between log β̃_t and log β_t (Latte)


class LossType(enum.Enum):
    """Training objective."""

    MSE = enum.auto()  # MSE on the prediction (+ the VB term when the variance is learned) (Latte)
    RESCALED_MSE = enum.auto()  # the same, with the VB term scaled by T / 1000
    KL = enum.auto()  # the variational bound only
    RESCALED_KL = enum.auto()  # the variational bound times T

    @property
    def is_vb(self) -> bool:
        return self in (LossType.KL, LossType.RESCALED_KL)


def linear_betas(num_steps: int) -> np.ndarray:
    """The DDPM linear schedule, scaled so any T spans the same range as 1e-4..0.02 over 1000 steps."""
    scale = 1000.0 / num_steps
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)


def betas_from_alpha_bar(num_steps: int, alpha_bar: Callable[[float], float], max_beta: float = 0.999) -> np.ndarray:
    """Discretise a continuous ᾱ(τ), τ in [0, 1], into β_t = 1 − ᾱ((t+1)/T) / ᾱ(t/T), capped at ``max_beta``."""
    betas = [
        min(1.0 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)
    ]
    return np.array(betas, dtype=np.float64)


def named_beta_schedule(name: str, num_steps: int) -> np.ndarray:
    """``"linear"`` (Latte, DiT) or ``"squaredcos_cap_v2"`` (the IDDPM cosine schedule)."""
    if name == "linear":
        return linear_betas(num_steps)
    if name == "squaredcos_cap_v2":
        return betas_from_alpha_bar(num_steps, lambda tau: math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2)
    raise ValueError(f"unknown noise schedule {name!r}; use 'linear' or 'squaredcos_cap_v2'")


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the batch: (B, ...) -> (B,)."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of the standard normal CDF used by the ADM decoder (kept for parity)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log p(x) of data in [−1, 1] quantised to 256 bins under N(means, e^(2 log_scales)), elementwise (nats).

    The two edge bins extend to ±∞ (x < −0.999 and x > 0.999).
    """
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_upper = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_lower = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_upper = torch.log(cdf_upper.clamp(min=1e-12))
    log_survival_lower = torch.log((1.0 - cdf_lower).clamp(min=1e-12))
    log_bin = torch.log((cdf_upper - cdf_lower).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_survival_lower, log_bin))


def gather(schedule: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``schedule[t]`` as float32 on ``like``'s device, shaped (B, 1, 1, ...) to broadcast against ``like``.

    The reference lookup (indexes on the host, so ``t`` is copied to the CPU: a host-device
    synchronisation on an accelerator). :class:`GaussianDiffusion` uses its device-resident
    :meth:`~GaussianDiffusion.schedule_table` instead, with identical results.
    """
    # Index on the CPU: float64 is not available on every accelerator (MPS).
    values = torch.from_numpy(schedule)[t.cpu()].float().to(like.device)
    return values.reshape(values.shape + (1,) * (like.ndim - values.ndim))


class GaussianDiffusion:
    """A discrete-time Gaussian diffusion over the schedule ``betas`` (T,).

    ``timestep_map[i]`` is the timestep the model was trained with for step ``i`` of this
    schedule (the identity unless the schedule was respaced, see :mod:`.respace`). Every method
    takes ``t`` as an index into *this* schedule (0..T−1) and hands the model
    ``timestep_map[t]``, unscaled.
    """

    def __init__(
        self,
        betas: np.ndarray,
        model_mean_type: ModelMeanType = ModelMeanType.EPSILON,
        model_var_type: ModelVarType = ModelVarType.LEARNED_RANGE,
        loss_type: LossType = LossType.MSE,
        timestep_map: list[int] | None = None,
        original_num_steps: int | None = None,
    ):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise ValueError("betas must be a 1-D array with values in (0, 1]")
        self.betas = betas
        self.model_mean_type = model_mean_type
        self.model_var_type = model_var_type
        self.loss_type = loss_type
        self.num_timesteps = T = len(betas)
        self.timestep_map = list(range(T)) if timestep_map is None else [int(i) for i in timestep_map]
        if len(self.timestep_map) != T:
            raise ValueError("timestep_map must have one entry per step")
        self.original_num_steps = T if original_num_steps is None else original_num_steps

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)

        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # β̃_0 = 0; its log is clipped to log β̃_1 so the learned-range interpolation stays finite.
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
            if T > 1
            else self.posterior_variance.clip(min=1e-20)
        )
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.one_minus_alphas_cumprod = 1.0 - self.alphas_cumprod
        self.snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)  # signal-to-noise ratio of x_t
        self.log_betas = np.log(betas)
        # FIXED_LARGE: β_t, with β̃_1 at t = 0
        self.fixed_large_variance = np.append(self.posterior_variance[1], betas[1:]) if T > 1 else betas.copy()
        self.log_fixed_large_variance = np.log(self.fixed_large_variance)
        self._tables: dict[tuple[str, str], torch.Tensor] = {}  # (schedule name, device) -> float32 tensor

    # ----------------------------------------------------------------------------------------- lookups
    def schedule_table(self, name: str, device: torch.device | str) -> torch.Tensor:
        """Schedule array ``name`` (T,) as a float32 tensor on ``device``, made once per device and kept.

        The float64 array is cast to float32 on the CPU (float64 is not available on every
        accelerator) and copied to the device on first use; every later lookup indexes it there,
        so a sampling step never copies a schedule value between host and device.
        ``"timestep_map"`` gives the int64 map of schedule index -> training timestep.
        """
        key = (name, str(torch.device(device)))
        table = self._tables.get(key)
        if table is None:
            if name == "timestep_map":
                table = torch.tensor(self.timestep_map, dtype=torch.long)
            else:
                table = torch.from_numpy(np.ascontiguousarray(getattr(self, name))).float()
            table = table.to(device)
            self._tables[key] = table
        return table

    def _gather(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``schedule_table(name)[t]`` on ``like``'s device, shaped (B, 1, 1, ...) to broadcast against ``like``.

        Equal to :func:`gather` (the cast to float32 commutes with indexing), without moving ``t``
        to the host.
        """
        values = self.schedule_table(name, like.device)[t.to(like.device)]
        return values.reshape(values.shape + (1,) * (like.ndim - values.ndim))

    # ----------------------------------------------------------------------------------------- forward
    def q_mean_variance(self, x_start: torch.Tensor, t: torch.Tensor):
        """Mean, variance and log variance of q(x_t | x_0)."""
        mean = self._gather("sqrt_alphas_cumprod", t, x_start) * x_start
        variance = self._gather("one_minus_alphas_cumprod", t, x_start)
        log_variance = self._gather("log_one_minus_alphas_cumprod", t, x_start)
        return mean, variance, log_variance

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) noise. Shapes (B, F, C, H, W), t (B,)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        if noise.shape != x_start.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != x_start shape {tuple(x_start.shape)}")
        return (
            self._gather("sqrt_alphas_cumprod", t, x_start) * x_start
            + self._gather("sqrt_one_minus_alphas_cumprod", t, x_start) * noise
        )

    def q_posterior_mean_variance(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log variance of q(x_{t−1} | x_t, x_0)."""
        mean = self._gather("posterior_mean_coef1", t, x_t) * x_start + self._gather("posterior_mean_coef2", t, x_t) * x_t
        variance = self._gather("posterior_variance", t, x_t)
        log_variance = self._gather("posterior_log_variance_clipped", t, x_t)
        return mean, variance, log_variance

    def predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t − sqrt(1 − ᾱ_t) eps) / sqrt(ᾱ_t)."""
        return self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t - self._gather("sqrt_recipm1_alphas_cumprod", t, x_t) * eps

    def predict_eps_from_xstart(self, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor) -> torch.Tensor:
        """eps = (x_t / sqrt(ᾱ_t) − x_0) / sqrt(1/ᾱ_t − 1)."""
        return (self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart) / self._gather(
            "sqrt_recipm1_alphas_cumprod", t, x_t
        )

    # ----------------------------------------------------------------------------------------- model
    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """The timesteps the model was trained with for schedule indices ``t`` (no rescaling)."""
        return self.schedule_table("timestep_map", t.device)[t].to(t.dtype)

    def run_model(self, model, x: torch.Tensor, t: torch.Tensor, model_kwargs: dict | None = None) -> torch.Tensor:
        """Call ``model(x, timestep_map[t], **model_kwargs)``; a ``(output, extra)`` tuple keeps the output."""
        out = model(x, self.model_timesteps(t), **(model_kwargs or {}))
        return out[0] if isinstance(out, tuple) else out

    def split_output(self, model_output: torch.Tensor, x: torch.Tensor):
        """Split a learned-variance output (B, F, 2C, H, W) on dim 2 into (prediction, v); v is None otherwise."""
        channels = x.shape[2]
        if self.model_var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE):
            expected = (*x.shape[:2], 2 * channels, *x.shape[3:])
            if tuple(model_output.shape) != expected:
                raise ValueError(f"model output {tuple(model_output.shape)}, expected {expected} (learned variance)")
            return torch.split(model_output, channels, dim=2)
        if model_output.shape != x.shape:
            raise ValueError(f"model output {tuple(model_output.shape)}, expected {tuple(x.shape)}")
        return model_output, None

    def p_mean_variance(
        self,
        model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: Callable | None = None,
        model_kwargs: dict | None = None,
    ) -> dict:
        """The model's p(x_{t−1} | x_t): dict with ``mean``, ``variance``, ``log_variance``, ``pred_xstart``.

        ``clip_denoised`` clamps the predicted x_0 to [−1, 1] (the ADM default; Latte's sample
        scripts pass False, because VAE latents scaled by 0.18215 are not confined to [−1, 1]).
        ``denoised_fn`` is applied to the predicted x_0 before clipping.
        """
        return self._mean_variance_from_output(self.run_model(model, x, t, model_kwargs), x, t, clip_denoised, denoised_fn)

    def _mean_variance_from_output(self, model_output, x, t, clip_denoised=True, denoised_fn=None) -> dict:
        prediction, v = self.split_output(model_output, x)
        if self.model_var_type == ModelVarType.LEARNED:
            log_variance = v
            variance = torch.exp(log_variance)
        elif self.model_var_type == ModelVarType.LEARNED_RANGE:
            min_log = self._gather("posterior_log_variance_clipped", t, x)
            max_log = self._gather("log_betas", t, x)
            frac = (v + 1) / 2  # v is used raw (no tanh), as in the official code
            log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        else:
            if self.model_var_type == ModelVarType.FIXED_LARGE:
                fixed, log_fixed = "fixed_large_variance", "log_fixed_large_variance"
            else:
                fixed, log_fixed = "posterior_variance", "posterior_log_variance_clipped"
            variance = self._gather(fixed, t, x).expand_as(x)
            log_variance = self._gather(log_fixed, t, x).expand_as(x)

        def finish(x0):
            if denoised_fn is not None:
                x0 = denoised_fn(x0)
            return x0.clamp(-1, 1) if clip_denoised else x0

        if self.model_mean_type == ModelMeanType.START_X:
            pred_xstart = finish(prediction)
        else:
            pred_xstart = finish(self.predict_xstart_from_eps(x, t, prediction))
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}

    # ----------------------------------------------------------------------------------------- sampling
    def p_sample(
        self,
        model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: Callable | None = None,
        cond_fn: Callable | None = None,
        model_kwargs: dict | None = None,
        generator=None,
    ) -> dict:
        """One ancestral step x_t -> x_{t−1} = mean + σ z (no noise at t = 0). Returns ``sample``, ``pred_xstart``.

        ``cond_fn(x, timestep, **model_kwargs)`` (classifier guidance, as in ADM) returns
        ∇_x log p(y | x_t); the mean moves by ``variance · gradient``.
        """
        out = self.p_mean_variance(model, x, t, clip_denoised, denoised_fn, model_kwargs)
        if cond_fn is not None:
            gradient = cond_fn(x, self.model_timesteps(t), **(model_kwargs or {}))
            out["mean"] = out["mean"] + out["variance"] * gradient.float()
        noise = _randn(x.shape, generator, x)
        keep_noise = (t != 0).float().reshape(-1, *([1] * (x.ndim - 1)))
        sample = out["mean"] + keep_noise * torch.exp(0.5 * out["log_variance"]) * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def p_sample_loop(
        self,
        model,
        shape,
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: Callable | None = None,
        cond_fn: Callable | None = None,
        model_kwargs: dict | None = None,
        device=None,
        progress: bool = False,
        generator=None,
    ) -> torch.Tensor:
        """Ancestral (DDPM) sampling through every step of this schedule; returns x_0 of ``shape``."""
        final = None
        for out in self.p_sample_loop_progressive(
            model, shape, noise, clip_denoised, denoised_fn, cond_fn, model_kwargs, device, progress, generator
        ):
            final = out
        return final["sample"]

    def p_sample_loop_progressive(
        self, model, shape, noise=None, clip_denoised=True, denoised_fn=None, cond_fn=None, model_kwargs=None,
        device=None, progress=False, generator=None,
    ):
        """Yield the ``p_sample`` output of every step, from t = T−1 down to 0."""
        x = _initial_noise(shape, noise, device, generator)
        for i in _steps(self.num_timesteps, progress, "DDPM"):
            t = torch.full((shape[0],), i, device=x.device, dtype=torch.long)
            with torch.no_grad():
                out = self.p_sample(model, x, t, clip_denoised, denoised_fn, cond_fn, model_kwargs, generator)
            yield out
            x = out["sample"]

    def ddim_sample(
        self,
        model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: Callable | None = None,
        cond_fn: Callable | None = None,
        model_kwargs: dict | None = None,
        eta: float = 0.0,
        generator=None,
    ) -> dict:
        """One DDIM step x_t -> x_{t−1} (Song et al. eq. 12); ``eta`` = 0 is deterministic, 1 is DDPM-like.

        Returns ``sample`` and ``pred_xstart``.
        """
        out = self.p_mean_variance(model, x, t, clip_denoised, denoised_fn, model_kwargs)
        eps = self.predict_eps_from_xstart(x, t, out["pred_xstart"])
        if cond_fn is not None:  # score-based conditioning (Song et al. 2020), as in ADM
            gradient = cond_fn(x, self.model_timesteps(t), **(model_kwargs or {}))
            eps = eps - self._gather("sqrt_one_minus_alphas_cumprod", t, x) * gradient.float()
            out["pred_xstart"] = self.predict_xstart_from_eps(x, t, eps)
            eps = self.predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar = self._gather("alphas_cumprod", t, x)
        alpha_bar_prev = self._gather("alphas_cumprod_prev", t, x)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        mean_pred = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        sample = mean_pred
        if eta > 0:
            keep_noise = (t != 0).float().reshape(-1, *([1] * (x.ndim - 1)))
            sample = sample + keep_noise * sigma * _randn(x.shape, generator, x)
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def ddim_sample_loop(
        self,
        model,
        shape,
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: Callable | None = None,
        cond_fn: Callable | None = None,
        model_kwargs: dict | None = None,
        device=None,
        progress: bool = False,
        eta: float = 0.0,
        generator=None,
    ) -> torch.Tensor:
        """DDIM sampling through every step of this schedule; returns x_0 of ``shape``."""
        x = _initial_noise(shape, noise, device, generator)
        for i in _steps(self.num_timesteps, progress, "DDIM"):
            t = torch.full((shape[0],), i, device=x.device, dtype=torch.long)
            with torch.no_grad():
                x = self.ddim_sample(model, x, t, clip_denoised, denoised_fn, cond_fn, model_kwargs, eta, generator)["sample"]
        return x

    # ----------------------------------------------------------------------------------------- training
    def _vb_terms_bpd(self, model_output, x_start, x_t, t, clip_denoised=False) -> dict:
        """The variational-bound term L_t in bits per dimension, per sample (B,).

        KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t)) for t > 0; the discretised-Gaussian decoder
        NLL −log p(x_0 | x_1) at t = 0.
        """
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self._mean_variance_from_output(model_output, x_t, t, clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / math.log(2.0)
        decoder_nll = -discretized_gaussian_log_likelihood(x_start, out["mean"], 0.5 * out["log_variance"])
        decoder_nll = mean_flat(decoder_nll) / math.log(2.0)
        return {"output": torch.where(t == 0, decoder_nll, kl), "pred_xstart": out["pred_xstart"]}

    def training_losses(
        self,
        model,
        x_start: torch.Tensor,
        t: torch.Tensor,
        model_kwargs: dict | None = None,
        noise: torch.Tensor | None = None,
        snr_gamma: float | None = None,
    ) -> dict:
        """Per-sample losses (each (B,)) for x_0 (B, F, C, H, W) at schedule indices t (B,).

        With the MSE loss and a learned variance (Latte): ``mse`` = mean over F, C, H, W of
        (noise − eps)², ``vb`` = the variational-bound term with the gradient stopped on the
        predicted mean (it trains only the variance), ``loss = mse + vb``. The trainer averages
        ``loss`` over the batch. Keys: ``loss``, ``mse``, ``vb`` (``vb`` only when learned).

        ``snr_gamma`` γ > 0: Min-SNR-γ weighting (Hang et al., 2023) of the MSE term in ``loss``:
        each sample's squared x_0 error counts ``min(SNR_t, γ)`` times, SNR_t = ᾱ_t / (1 − ᾱ_t);
        for ε-prediction that is the weight ``min(SNR_t, γ) / SNR_t`` on the ε-MSE. ``mse`` stays
        unweighted. None (Latte): uniform weights.
        """
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise)
        model_output = self.run_model(model, x_t, t, model_kwargs)
        terms = {}
        if self.loss_type.is_vb:
            terms["loss"] = self._vb_terms_bpd(model_output, x_start, x_t, t)["output"]
            if self.loss_type == LossType.RESCALED_KL:
                terms["loss"] = terms["loss"] * self.num_timesteps
            return terms

        prediction, v = self.split_output(model_output, x_t)
        if v is not None:
            frozen = torch.cat([prediction.detach(), v], dim=2)  # the VB term must not move the mean
            terms["vb"] = self._vb_terms_bpd(frozen, x_start, x_t, t)["output"]
            if self.loss_type == LossType.RESCALED_MSE:
                terms["vb"] = terms["vb"] * (self.num_timesteps / 1000.0)
        target = noise if self.model_mean_type == ModelMeanType.EPSILON else x_start
        terms["mse"] = mean_flat((target - prediction) ** 2)
        mse = terms["mse"] if snr_gamma is None else terms["mse"] * self.min_snr_weight(t, snr_gamma, terms["mse"].dtype)
        terms["loss"] = mse + terms["vb"] if "vb" in terms else mse
        return terms

    def min_snr_weight(self, t: torch.Tensor, gamma: float, dtype=torch.float32) -> torch.Tensor:
        """Min-SNR-γ weights (B,) of the MSE at schedule indices t (B,) for this model's prediction target."""
        if not gamma > 0:
            raise ValueError(f"snr_gamma must be > 0, got {gamma}")
        snr = self.schedule_table("snr", t.device)[t]  # on t's device: no host-device synchronisation
        weight = snr.clamp(max=gamma)
        if self.model_mean_type == ModelMeanType.EPSILON:
            weight = weight / snr  # |x_0 error|² = |ε error|² / SNR
        return weight.to(dtype)


def randn(shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device``.

    ``generator``: None (the global RNG), one ``torch.Generator`` (drawn on its own device, then
    moved), or a sequence of ``shape[0]`` generators, one per sample, so that every sample's
    noise is independent of how samples are batched.

    Noise drawn on the CPU for an accelerator is stacked on the host and sent in one
    asynchronous copy from pinned memory (:func:`to_device`), so drawing it does not make the
    host wait for the device.
    """
    shape = tuple(int(s) for s in shape)
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, torch.Generator):
        return to_device(torch.randn(shape, generator=generator, device=generator.device, dtype=dtype), device)
    generators = list(generator)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {shape[0]}")
    if len({str(g.device) for g in generators}) == 1:
        return to_device(torch.stack([torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype) for g in generators]), device)
    return torch.stack([to_device(torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype), device) for g in generators])


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """``x`` on ``device``; a CPU tensor goes to a CUDA device through pinned memory without blocking the host.

    The pinned staging buffer comes from PyTorch's caching host allocator, which keeps it until
    the copy has finished, so the asynchronous copy is safe. Values are unchanged.
    """
    if device is None:
        return x
    device = torch.device(device)
    if x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _randn(shape, generator, like: torch.Tensor) -> torch.Tensor:
    return randn(shape, generator, like.device, like.dtype)


def _initial_noise(shape, noise, device, generator) -> torch.Tensor:
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise shape {tuple(noise.shape)} != requested shape {tuple(shape)}")
        return noise.to(device) if device is not None else noise
    return randn(shape, generator, device if device is not None else "cpu")


def _steps(num_timesteps: int, progress: bool, name: str):
    return step_bar(range(num_timesteps - 1, -1, -1), num_timesteps, name, progress)
