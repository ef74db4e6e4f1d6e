"""Samplers on data with a closed-form score, classifier-free guidance, determinism, and the sample() entry point.

Closed form: for data x_0 ~ N(m, s²) (independent per dimension), x_t = sqrt(ᾱ) x_0 + sqrt(1 − ᾱ) ε
is N(sqrt(ᾱ) m, v_t) with v_t = ᾱ s² + 1 − ᾱ, and (x_t, ε) are jointly Gaussian with
Cov(x_t, ε) = sqrt(1 − ᾱ). The MMSE noise prediction — what a perfectly trained network outputs — is

    ε*(x_t, t) = E[ε | x_t] = sqrt(1 − ᾱ_t) (x_t − sqrt(ᾱ_t) m) / v_t.

The exact reverse step p(x_{t−1} | x_t) of a (respaced) chain with step β_t is Gaussian with variance
β_t v_{t−1} / v_t, which the oracle returns as the learned-range value v that makes
exp(f log β_t + (1 − f) log β̃_t) equal to it (f = (v + 1) / 2).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from latte_bench.diffusion import classifier_free_guidance, create_diffusion, guide, sample
from latte_bench.diffusion.gaussian import linear_betas, named_beta_schedule
from latte_bench.diffusion.samplers import dpm_solver_scheduler
from latte_bench.errors import UserError

NUM_SAMPLES = 4096
SHAPE = (2, 2, 1, 2)  # F, C, H, W: 8 independent dimensions
DATA_MEAN = torch.linspace(-0.5, 0.5, 8).reshape(SHAPE)
DATA_STD = torch.linspace(0.6, 1.2, 8).reshape(SHAPE)
ALPHAS_CUMPROD = np.cumprod(1.0 - linear_betas(1000))


class GaussianOracle:
    """The exact (ε, v) model for x_0 ~ N(mean, std²); ``diffusion`` gives the exact variance, else ``v`` is fixed.

    ``prediction="x0"`` returns E[x_0 | x_t] = m + sqrt(ᾱ) s² (x_t − sqrt(ᾱ) m) / v_t instead of ε;
    ``alphas_cumprod`` is the training schedule's ᾱ (default: Latte's linear betas).
    """

    def __init__(self, mean, std, diffusion=None, v: float = 0.0, prediction: str = "eps", alphas_cumprod=ALPHAS_CUMPROD):
        self.mean, self.std, self.diffusion, self.v = mean.double(), std.double(), diffusion, v
        self.prediction, self.alphas_cumprod = prediction, alphas_cumprod
        if diffusion is not None:  # model timestep -> index into the respaced schedule
            self.index = torch.full((1000,), -1, dtype=torch.long)
            self.index[torch.tensor(diffusion.timestep_map)] = torch.arange(diffusion.num_timesteps)

    def __call__(self, x, t, **kwargs):
        shape = (-1,) + (1,) * (x.ndim - 1)
        ab = torch.from_numpy(self.alphas_cumprod)[t].reshape(shape)
        eps = (1 - ab).sqrt() * (x.double() - ab.sqrt() * self.mean) / (ab * self.std**2 + 1 - ab)
        if self.prediction == "x0":
            eps = self.mean + ab.sqrt() * self.std**2 * (x.double() - ab.sqrt() * self.mean) / (ab * self.std**2 + 1 - ab)
        if self.diffusion is None:
            v = torch.full_like(eps, self.v)
        else:
            d, i = self.diffusion, self.index[t]
            assert (i >= 0).all(), "the model was called at a timestep outside the schedule"

            def at(array):
                return torch.from_numpy(array)[i].reshape(shape)

            ab_t, ab_prev, beta = at(d.alphas_cumprod), at(d.alphas_cumprod_prev), at(d.betas)
            variance = beta * (ab_prev * self.std**2 + 1 - ab_prev) / (ab_t * self.std**2 + 1 - ab_t)
            low, high = at(d.posterior_log_variance_clipped), torch.log(beta)
            v = 2 * (torch.log(variance) - low) / (high - low) - 1
        return torch.cat([eps, v.expand_as(eps)], dim=2).float()


def ddim_expected_std_factor(timestep_map, alphas_cumprod=ALPHAS_CUMPROD) -> np.ndarray:
    """Per-dimension std of DDIM(eta=0) samples / DATA_STD, by an independent float64 recursion.

    With the exact ε the DDIM step is affine in x, so x_0 = A x_T + B; std(x_0) = |A| for x_T ~ N(0, 1).
    """
    s = DATA_STD.double().numpy()
    gain = np.ones_like(s)
    kept = alphas_cumprod[np.array(timestep_map)]
    for i in range(len(kept) - 1, -1, -1):
        ab, ab_prev = kept[i], (kept[i - 1] if i > 0 else 1.0)
        eps_gain = math.sqrt(1 - ab) / (ab * s**2 + 1 - ab)  # d eps / d x
        x0_gain = (1 - math.sqrt(1 - ab) * eps_gain) / math.sqrt(ab)
        gain = gain * (math.sqrt(ab_prev) * x0_gain + math.sqrt(1 - ab_prev) * eps_gain)
    return gain / s


def standardized_stats(x):
    z = ((x - DATA_MEAN) / DATA_STD).double()
    return z.mean().item(), z.std().item(), z.mean(0), z.std(0)


# 4096 samples x 8 dims: standard errors of the pooled standardised mean / std are 1/sqrt(32768) =
# 0.0055 and 1/sqrt(2*32768) = 0.0039; per dimension 0.0156 and 0.011. Bounds are 5 standard
# errors plus, for DPM-Solver++, its discretisation error at 25 steps (< 0.5% on this data).
POOLED_MEAN_TOL, POOLED_STD_TOL = 0.028, 0.02
DIM_MEAN_TOL, DIM_STD_TOL = 0.08, 0.055


@pytest.mark.parametrize(
    "sampler, steps",
    [("ddpm", 1000), ("ddpm", 250), ("ddpm", 50), ("ddim", 50), ("dpm++", 25)],
)
def test_sampler_recovers_gaussian_data(single_thread, sampler, steps):
    diffusion = create_diffusion(str(steps))
    model = GaussianOracle(DATA_MEAN, DATA_STD, diffusion if sampler == "ddpm" else None)
    x = sample(model, (NUM_SAMPLES, *SHAPE), sampler=sampler, steps=steps,
               generator=torch.Generator().manual_seed(steps), progress=False)
    assert x.shape == (NUM_SAMPLES, *SHAPE) and x.dtype == torch.float32
    mean, std, dim_mean, dim_std = standardized_stats(x)
    if sampler == "ddim":  # deterministic and slightly contracting at 50 steps: compare to its exact gain
        expected = torch.from_numpy(ddim_expected_std_factor(diffusion.timestep_map))
        assert 0.9 < expected.min() < expected.max() < 1.0
    else:
        expected = torch.ones(SHAPE, dtype=torch.float64)
    extra = 0.01 if sampler == "dpm++" else 0.0
    assert abs(mean) < POOLED_MEAN_TOL
    assert abs(std - expected.mean().item()) < POOLED_STD_TOL + extra
    assert dim_mean.abs().max() < DIM_MEAN_TOL
    assert (dim_std - expected).abs().max() < DIM_STD_TOL + extra


@pytest.mark.parametrize("sampler, steps", [("ddpm", 250), ("ddim", 50), ("dpm++", 25)])
def test_x0_prediction_on_the_cosine_schedule(single_thread, sampler, steps):
    """A model trained with ``prediction="x0"`` on ``squaredcos_cap_v2``: each sampler must read its output as x_0 on
    that schedule (read as ε, or on the linear betas, the samples are far off)."""
    options = dict(noise_schedule="squaredcos_cap_v2", prediction="x0")
    diffusion = create_diffusion(str(steps), noise_schedule="squaredcos_cap_v2", predict_xstart=True)
    alphas = np.cumprod(1.0 - named_beta_schedule("squaredcos_cap_v2", 1000))
    model = GaussianOracle(DATA_MEAN, DATA_STD, diffusion if sampler == "ddpm" else None, prediction="x0", alphas_cumprod=alphas)
    x = sample(model, (NUM_SAMPLES, *SHAPE), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(steps),
               progress=False, **options)
    mean, std, dim_mean, dim_std = standardized_stats(x)
    expected = torch.ones(SHAPE, dtype=torch.float64)
    if sampler == "ddim":
        expected = torch.from_numpy(ddim_expected_std_factor(diffusion.timestep_map, alphas))
    extra = 0.01 if sampler == "dpm++" else 0.0
    assert abs(mean) < POOLED_MEAN_TOL
    assert abs(std - expected.mean().item()) < POOLED_STD_TOL + extra
    assert dim_mean.abs().max() < DIM_MEAN_TOL
    assert (dim_std - expected).abs().max() < DIM_STD_TOL + extra
    wrong = sample(model, (NUM_SAMPLES, *SHAPE), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(steps),
                   progress=False, noise_schedule="squaredcos_cap_v2")  # read as ε
    assert abs(standardized_stats(wrong)[1] - expected.mean().item()) > 0.2


def test_wrong_variance_is_detected(single_thread):
    """The same check fails for DDPM with the posterior variance β̃ in place of the exact one."""
    model = GaussianOracle(DATA_MEAN, DATA_STD, v=-1.0)
    x = sample(model, (NUM_SAMPLES, *SHAPE), sampler="ddpm", steps=50,
               generator=torch.Generator().manual_seed(50), progress=False)
    _, std, _, _ = standardized_stats(x)
    assert std < 1 - 3 * POOLED_STD_TOL


def test_few_step_ddim_is_detected(single_thread):
    """And fails for DDIM with too few steps (10), whose contraction the tolerance must not hide."""
    model = GaussianOracle(DATA_MEAN, DATA_STD)
    x = sample(model, (NUM_SAMPLES, *SHAPE), sampler="ddim", steps=10, generator=torch.Generator().manual_seed(10), progress=False)
    _, std, _, _ = standardized_stats(x)
    assert std < 1 - 3 * POOLED_STD_TOL


def test_dpm_solver_schedule():
    scheduler = dpm_solver_scheduler(25)
    timesteps = scheduler.timesteps.tolist()
    assert len(timesteps) == 25 and timesteps[0] == 999 and timesteps == sorted(timesteps, reverse=True)
    assert np.allclose(scheduler.alphas_cumprod.numpy(), ALPHAS_CUMPROD, rtol=1e-5)


# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_deterministic_given_generator(sampler):
    model = GaussianOracle(DATA_MEAN, DATA_STD, create_diffusion("20") if sampler == "ddpm" else None)
    runs = [sample(model, (3, *SHAPE), sampler=sampler, steps=20, eta=0.5 if sampler == "ddim" else 0.0,
                   generator=torch.Generator().manual_seed(7), progress=False) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = sample(model, (3, *SHAPE), sampler=sampler, steps=20, generator=torch.Generator().manual_seed(8), progress=False)
    assert not torch.equal(runs[0], other)


def test_per_sample_generators_make_ddpm_batch_invariant():
    model = GaussianOracle(DATA_MEAN, DATA_STD, create_diffusion("20"))
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    batch = sample(model, (3, *SHAPE), sampler="ddpm", steps=20, generator=gens([1, 2, 3]), progress=False)
    alone = sample(model, (1, *SHAPE), sampler="ddpm", steps=20, generator=gens([2]), progress=False)
    assert torch.allclose(batch[1:2], alone, atol=1e-6)


# ------------------------------------------------------------------------------------------ guidance
@pytest.fixture(scope="module")
def class_model(fixtures_dir):
    from latte_bench.models import from_official

    path = fixtures_dir / "latte_official" / "latte_class.safetensors"
    tensors = load_file(path)
    with safe_open(str(path), "pt") as f:
        config = json.loads(f.metadata()["config"])
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return from_official(config, state, attention="math"), config, tensors


def test_guidance_matches_official_forward_with_cfg(class_model):
    """Official: eps = uncond + s (cond − uncond) on all 4 latent channels, copied to both halves;
    variance channels from each half."""
    model, config, tensors = class_model
    half = tensors["in.x"].shape[0] // 2
    x = tensors["in.x"][:half].repeat(2, 1, 1, 1, 1)
    with torch.no_grad():
        out = model(x, tensors["in.t"], y=tensors["in.y_cfg"])
    reference = tensors["out.forward_with_cfg"]
    guided = guide(out[:half], out[half:], config["cfg_scale"], channels=4)
    assert (guided - reference[:half]).abs().max() <= 1e-5
    assert torch.equal(reference[half:, :, :4], reference[:half, :, :4])
    assert (reference[half:, :, 4:] - out[half:, :, 4:]).abs().max() <= 1e-5


def test_guided_model_combines_conditional_and_null(class_model):
    model, config, tensors = class_model
    x, t, y = tensors["in.x"], torch.full((4,), 500), tensors["in.y"]
    null = torch.full_like(y, config["num_classes"])
    with torch.no_grad():
        cond, uncond = model(x, t, y=y), model(x, t, y=null)
        assert torch.allclose(classifier_free_guidance(model, 1.0, config["num_classes"])(x, t, y=y), cond, atol=1e-5)
        guided = classifier_free_guidance(model, 3.0, config["num_classes"])(x, t, y=y)
    assert torch.allclose(guided[:, :, :4], uncond[:, :, :4] + 3.0 * (cond[:, :, :4] - uncond[:, :, :4]), atol=1e-5)
    assert torch.allclose(guided[:, :, 4:], cond[:, :, 4:], atol=1e-5)


def test_sample_with_guidance_on_latte(class_model):
    model, config, tensors = class_model
    y = torch.tensor([1, 2])
    shape = (2, 4, 4, 8, 8)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    plain = sample(model, shape, sampler="ddim", steps=5, y=y, noise=noise, progress=False)
    same = sample(model, shape, sampler="ddim", steps=5, y=y, noise=noise, cfg_scale=1.0, num_classes=10, progress=False)
    guided = sample(model, shape, sampler="dpm++", steps=5, y=y, noise=noise, cfg_scale=4.0, progress=False)  # null from model.num_classes
    assert torch.equal(plain, same) and torch.isfinite(guided).all() and guided.shape == shape
    with pytest.raises(UserError, match="labels"):
        sample(model, shape, steps=5, cfg_scale=4.0, noise=noise, progress=False)
    with pytest.raises(UserError, match="unknown sampler"):
        sample(model, shape, sampler="euler", noise=noise, progress=False)
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            sample(model, shape, steps=5, y=y, noise=noise, progress=False)
    finally:
        model.eval()


def test_dpm_solver_spacing_on_narrow_data():
    """With time-uniform steps, DPM-Solver++ at 25 steps ends with a jump from t = 40 (noise std 0.14)
    straight to the x_0 prediction, which shrinks dimensions narrower than that noise; log-SNR spacing
    does not. The solver is affine on Gaussian data, so two noise draws (0 and 1) give its gain."""
    from latte_bench.diffusion.samplers import dpm_solver_sample_loop

    std = torch.tensor([0.1, 1.0]).reshape(1, 2, 1, 1)
    model = GaussianOracle(torch.zeros_like(std), std)
    noise = torch.stack([torch.zeros_like(std), torch.ones_like(std)])
    gains = {}
    for spacing in ("linspace", "logsnr"):
        x = dpm_solver_sample_loop(model, noise, 25, spacing=spacing)
        gains[spacing] = ((x[1] - x[0]).flatten() / std.flatten()).tolist()
    assert gains["linspace"][0] < 0.6 and abs(gains["linspace"][1] - 1) < 0.01
    assert abs(gains["logsnr"][0] - 1) < 0.01 and abs(gains["logsnr"][1] - 1) < 0.02


@pytest.mark.parametrize("sampler", ["ddpm", "dpm++"])
def test_guidance_is_one_model_call_per_step(sampler):
    """With guidance, each step evaluates the conditional and null halves in one batched call."""
    calls = []

    def model(x, t, y):
        calls.append((x.shape[0], y.tolist()))
        return torch.cat([x * 0.1 + y.reshape(-1, 1, 1, 1, 1), torch.zeros_like(x)], dim=2)

    y = torch.tensor([0, 2, 1])
    sample(model, (3, *SHAPE), sampler=sampler, steps=6, y=y, cfg_scale=3.0, num_classes=5,
           generator=torch.Generator().manual_seed(0), progress=False)
    assert len(calls) == 6
    assert all(batch == 6 and labels == [0, 2, 1, 5, 5, 5] for batch, labels in calls)


@pytest.mark.parametrize("sampler, name", [("ddpm", "DDPM"), ("ddim", "DDIM"), ("dpm++", "DPM-Solver++")])
def test_a_slow_batch_shows_its_sampling_steps_a_fast_one_does_not(sampler, name, capsys, monkeypatch):
    import time

    from latte_bench import progress

    oracle = GaussianOracle(DATA_MEAN, DATA_STD, v=0.0)

    def slow(x, t, **kwargs):
        time.sleep(0.06)
        return oracle(x, t, **kwargs)

    def run(model, show):
        sample(model, (2, *SHAPE), sampler=sampler, steps=10, generator=torch.Generator().manual_seed(0), progress=show)
        return capsys.readouterr().err

    assert progress.SLOW_BATCH_S == 3.0
    assert run(oracle, True) == ""  # a batch of 10 steps in well under 3 s: no bar at all
    monkeypatch.setattr(progress, "SLOW_BATCH_S", 0.25)  # one slow batch: 10 steps of 0.06 s
    shown = run(slow, True)
    steps = [int(n) for n in re.findall(rf"{re.escape(name)} steps: +\d+%\S* *\| *(\d+)/10", shown)]
    assert steps and 3 <= min(steps) and max(steps) <= 10  # appears after 0.25 s, counts the steps of the batch
    assert run(slow, False) == ""  # progress off: nothing, however slow
