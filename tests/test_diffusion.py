"""Gaussian diffusion: schedule, respacing, forward process, posterior, losses, and parity with the official code."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from latte_bench.diffusion import create_diffusion, space_timesteps
from latte_bench.diffusion.gaussian import (
    GaussianDiffusion,
    LossType,
    ModelVarType,
    discretized_gaussian_log_likelihood,
    gather,
    linear_betas,
    named_beta_schedule,
    normal_kl,
)

FIXTURES = {  # diffusion fixture -> the latte_* fixture holding the same model config
    "diffusion_uncond_1000": "latte_uncond",
    "diffusion_uncond_250": "latte_uncond",
    "diffusion_class_ddim50": "latte_class",
}


# ------------------------------------------------------------------------------------------ schedule
def test_linear_schedule_matches_ddpm():
    betas = linear_betas(1000)
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    assert betas[0] == pytest.approx(1e-4, abs=0) and betas[-1] == pytest.approx(0.02, abs=1e-18)
    assert np.allclose(np.diff(betas), (0.02 - 1e-4) / 999)
    # Shorter schedules are scaled to cover the same noise range.
    assert linear_betas(500)[-1] == pytest.approx(0.04)
    alphas_cumprod = np.cumprod(1 - betas)
    assert alphas_cumprod[-1] == pytest.approx(4.0358e-5, rel=1e-3)  # x_999 is almost pure noise


def test_cosine_schedule_and_unknown_name():
    betas = named_beta_schedule("squaredcos_cap_v2", 1000)
    assert betas.max() <= 0.999 and np.all(np.diff(betas) >= 0)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        named_beta_schedule("quadratic", 10)


# ------------------------------------------------------------------------------------------ respacing
@pytest.mark.parametrize("name", list(FIXTURES))
def test_timestep_map_matches_official(fixtures_dir, name):
    config = _fixture_config(fixtures_dir, name)
    diffusion = create_diffusion(config["respacing"])
    assert diffusion.timestep_map == config["timestep_map"]
    assert diffusion.num_timesteps == config["num_timesteps"]


def test_space_timesteps_forms():
    assert space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))
    assert space_timesteps(100, "10") == {round(i * 99 / 9) for i in range(10)}
    assert sorted(space_timesteps(100, "1,2")) == [0, 50, 99]  # two sections of 50 steps
    assert space_timesteps(1000, [1000]) == set(range(1000))
    with pytest.raises(ValueError):
        space_timesteps(100, "ddim33")  # no integer stride gives exactly 33 steps
    with pytest.raises(ValueError):
        space_timesteps(10, "11")


def test_respaced_schedule_keeps_alphas_cumprod():
    full = create_diffusion("")
    spaced = create_diffusion("250")
    kept = np.array(spaced.timestep_map)
    assert np.allclose(spaced.alphas_cumprod, full.alphas_cumprod[kept], rtol=1e-12, atol=0)
    # The model sees original timesteps, unscaled.
    calls = []
    spaced.p_mean_variance(_recording_model(calls), torch.zeros(1, 1, 1, 1, 1), torch.tensor([249]))
    assert calls == [999]


# ------------------------------------------------------------------------------------------ forward process
def test_q_sample_statistics():
    diffusion = create_diffusion("")
    t = torch.full((20000,), 300)
    x0 = torch.full((20000, 1, 1, 1, 1), 0.7)
    xt = diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    alpha_bar = diffusion.alphas_cumprod[300]
    # 20000 draws: standard errors 0.007 (mean) and 0.005 (std); 5 sigma bounds.
    assert xt.mean().item() == pytest.approx(math.sqrt(alpha_bar) * 0.7, abs=0.035)
    assert xt.std().item() == pytest.approx(math.sqrt(1 - alpha_bar), abs=0.025)


def test_posterior_is_gaussian_conditioning():
    """q(x_{t-1} | x_t, x_0) from the closed form equals Bayes' rule on the two Gaussian steps."""
    diffusion = create_diffusion("250")
    t_index = 100
    alpha_bar_prev = diffusion.alphas_cumprod_prev[t_index]
    beta = diffusion.betas[t_index]
    x0, xt = torch.tensor([0.3]).reshape(1, 1, 1, 1, 1), torch.tensor([-0.8]).reshape(1, 1, 1, 1, 1)
    # prior x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t ~ N(sqrt(1-beta) x_{t-1}, beta)
    prior_precision = 1 / (1 - alpha_bar_prev)
    like_precision = (1 - beta) / beta
    variance = 1 / (prior_precision + like_precision)
    mean = variance * (math.sqrt(alpha_bar_prev) * 0.3 * prior_precision + math.sqrt(1 - beta) * -0.8 / beta)
    got_mean, got_var, got_log_var = diffusion.q_posterior_mean_variance(x0, xt, torch.tensor([t_index]))
    assert got_mean.item() == pytest.approx(mean, rel=1e-5)
    assert got_var.item() == pytest.approx(variance, rel=1e-5)
    assert got_log_var.item() == pytest.approx(math.log(variance), rel=1e-5)


def test_eps_and_xstart_round_trip():
    diffusion = create_diffusion("")
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 2, 4, 4, 4, generator=g), torch.randn(3, 2, 4, 4, 4, generator=g)
    t = torch.tensor([0, 500, 999])
    xt = diffusion.q_sample(x0, t, eps)
    assert torch.allclose(diffusion.predict_xstart_from_eps(xt, t, eps), x0, atol=2e-3)
    assert torch.allclose(diffusion.predict_eps_from_xstart(xt, t, x0), eps, atol=1e-4)


# ------------------------------------------------------------------------------------------ variance, losses
def test_learned_range_endpoints():
    """v = -1 gives the posterior variance, v = +1 gives beta_t, and the output split is on dim 2."""
    diffusion = create_diffusion("")
    x = torch.zeros(2, 3, 4, 2, 2)
    t = torch.tensor([10, 600])
    for v, expected in ((-1.0, diffusion.posterior_variance), (1.0, diffusion.betas)):
        out = diffusion.p_mean_variance(_constant_model(eps=0.0, v=v), x, t)
        assert torch.allclose(out["variance"][:, 0, 0, 0, 0], torch.tensor(expected[[10, 600]], dtype=torch.float32), rtol=1e-5)
    with pytest.raises(ValueError, match="learned variance"):
        diffusion.p_mean_variance(lambda x, t: torch.zeros(2, 6, 4, 2, 2), x, t)  # split on the wrong dim


def test_fixed_variances():
    x, t = torch.zeros(1, 1, 1, 1, 1), torch.tensor([5])
    large = create_diffusion("", learn_sigma=False)
    small = create_diffusion("", learn_sigma=False, sigma_small=True)
    assert large.model_var_type == ModelVarType.FIXED_LARGE and small.model_var_type == ModelVarType.FIXED_SMALL
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    assert large.p_mean_variance(model, x, t)["variance"].item() == pytest.approx(large.betas[5], rel=1e-6)
    assert small.p_mean_variance(model, x, t)["variance"].item() == pytest.approx(small.posterior_variance[5], rel=1e-6)


def test_normal_kl_and_decoder_likelihood():
    zero = torch.zeros(1)
    assert normal_kl(zero, zero, zero, zero).item() == 0.0
    assert normal_kl(zero + 1, zero, zero, zero).item() == pytest.approx(0.5)
    # The 256 bins of the discretised Gaussian carry all the probability mass.
    centres = torch.linspace(-1, 1, 256)
    log_p = discretized_gaussian_log_likelihood(centres, torch.full_like(centres, 0.1), torch.full_like(centres, math.log(0.3)))
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=2e-3)


def test_training_losses_hybrid_and_stop_gradient():
    """loss = mse + vb; the VB term trains the variance only (no gradient into the eps half)."""
    diffusion = create_diffusion("")
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(3, 2, 2, 2, 2, generator=g).clamp(-1, 1)
    noise = torch.randn(x0.shape, generator=g)
    raw = torch.randn(3, 2, 4, 2, 2, generator=g, requires_grad=True)
    terms = diffusion.training_losses(lambda x, t: raw, x0, torch.tensor([0, 10, 900]), noise=noise)
    assert set(terms) == {"loss", "mse", "vb"} and terms["loss"].shape == (3,)
    assert torch.allclose(terms["loss"], terms["mse"] + terms["vb"])
    assert torch.allclose(terms["mse"], ((noise - raw[:, :, :2]) ** 2).mean(dim=(1, 2, 3, 4)))
    assert (terms["vb"] >= 0).all()
    (grad,) = torch.autograd.grad(terms["vb"].sum(), raw)
    assert grad[:, :, :2].abs().max() == 0 and grad[:, :, 2:].abs().max() > 0


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
def test_min_snr_weighting_puts_eps_and_x0_models_on_one_scale(schedule):
    """Min-SNR-γ: the x_0 error of each sample counts min(SNR_t, γ) times, whatever the model predicts.

    An ε-model and an x_0-model making the same x_0 error get the same weighted loss; ``mse`` stays unweighted,
    and the VB term of a learned variance is not weighted.
    """
    gamma = 5.0
    betas = named_beta_schedule(schedule, 1000)
    alpha_bar = np.cumprod(1.0 - betas)
    t = torch.tensor([0, 40, 250, 500, 999])
    snr = torch.from_numpy(alpha_bar / (1.0 - alpha_bar))[t].float()
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(5, 2, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    x0_guess = torch.rand(x0.shape, generator=g) * 2 - 1  # the same wrong x_0 for both parametrisations
    x0_model = create_diffusion("", noise_schedule=schedule, predict_xstart=True, learn_sigma=False)
    eps_model = create_diffusion("", noise_schedule=schedule, learn_sigma=False)
    x_t = x0_model.q_sample(x0, t, noise)
    eps_guess = eps_model.predict_eps_from_xstart(x_t, t, x0_guess)

    x0_terms = x0_model.training_losses(lambda x, tt: x0_guess, x0, t, noise=noise, snr_gamma=gamma)
    x0_error = ((x0_guess - x0) ** 2).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(x0_terms["mse"], x0_error)
    torch.testing.assert_close(x0_terms["loss"], x0_error * snr.clamp(max=gamma))
    eps_terms = eps_model.training_losses(lambda x, tt: eps_guess, x0, t, noise=noise, snr_gamma=gamma)
    torch.testing.assert_close(eps_terms["loss"], x0_terms["loss"], rtol=2e-3, atol=1e-6)
    assert not torch.allclose(eps_terms["mse"], eps_terms["loss"])  # the ε-MSE itself is on another scale
    uniform = eps_model.training_losses(lambda x, tt: eps_guess, x0, t, noise=noise)
    torch.testing.assert_close(uniform["loss"], eps_terms["mse"])

    learned = create_diffusion("", noise_schedule=schedule)
    raw = torch.cat([eps_guess, torch.zeros_like(eps_guess)], dim=2)
    hybrid = learned.training_losses(lambda x, tt: raw, x0, t, noise=noise, snr_gamma=gamma)
    torch.testing.assert_close(hybrid["loss"] - hybrid["vb"], eps_terms["loss"])
    with pytest.raises(ValueError, match="snr_gamma"):
        x0_model.training_losses(lambda x, tt: x0_guess, x0, t, noise=noise, snr_gamma=0.0)


def test_kl_loss_type():
    diffusion = create_diffusion("", use_kl=True)
    assert diffusion.loss_type == LossType.RESCALED_KL
    x0 = torch.zeros(2, 1, 1, 2, 2)
    terms = diffusion.training_losses(_constant_model(0.0, 0.0), x0, torch.tensor([3, 4]), noise=torch.ones_like(x0))
    assert set(terms) == {"loss"} and (terms["loss"] > 0).all()


# ------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("name", list(FIXTURES))
def test_parity_with_official(fixtures_dir, name):
    """q_sample, training_losses, p_mean_variance and one DDIM step reproduce the official outputs.

    The model is the official-layout Latte from ``latte_bench.models.from_official``. Its forward
    agrees with the official one to ~4e-7; ``pred_xstart = x_t / sqrt(ᾱ) − sqrt(1/ᾱ − 1) eps``
    amplifies that by sqrt(1/ᾱ − 1) (up to ~20 here), so ``pred_xstart`` gets that factor on
    the 1e-5 tolerance. Every other output is held to 1e-5.
    """
    from latte_bench.models import from_official

    tensors = load_file(fixtures_dir / "latte_official" / f"{name}.safetensors")
    config = _fixture_config(fixtures_dir, name)
    model_config = _fixture_config(fixtures_dir, FIXTURES[name])
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model = from_official(model_config, state, attention="math")
    diffusion = create_diffusion(config["respacing"])
    x0, t, noise = tensors["in.x0"], tensors["in.t"], tensors["in.noise"]
    kwargs = {"y": tensors["in.y"]} if "in.y" in tensors else {}

    with torch.no_grad():
        xt = diffusion.q_sample(x0, t, noise)
        losses = diffusion.training_losses(model, x0, t, kwargs, noise=noise)
        out = diffusion.p_mean_variance(model, xt, t, clip_denoised=False, model_kwargs=kwargs)
        step = diffusion.ddim_sample(model, xt, t, clip_denoised=False, model_kwargs=kwargs)["sample"]

    def close(got, key, tol=1e-5):
        diff = (got - tensors[f"out.{key}"]).abs().max().item()
        assert diff <= tol, f"{key}: max |diff| {diff:.3g} > {tol:.3g}"

    close(xt, "q_sample")
    for key in ("loss", "mse", "vb"):
        close(losses[key], f"loss.{key}")
    for key in ("mean", "variance", "log_variance"):
        close(out[key], f"p_mean_variance.{key}")
    amplification = float(np.sqrt(1 / diffusion.alphas_cumprod[t.numpy()] - 1).max())
    close(out["pred_xstart"], "p_mean_variance.pred_xstart", 1e-5 * max(1.0, amplification))
    close(step, "ddim_sample")


# ------------------------------------------------------------------------------------------ helpers
def _fixture_config(fixtures_dir, name):
    with safe_open(str(fixtures_dir / "latte_official" / f"{name}.safetensors"), "pt") as f:
        return json.loads(f.metadata()["config"])


def _constant_model(eps: float, v: float):
    def model(x, t, **kwargs):
        return torch.cat([torch.full_like(x, eps), torch.full_like(x, v)], dim=2)

    return model


def _recording_model(calls):
    def model(x, t, **kwargs):
        calls.extend(int(i) for i in t)
        return torch.zeros(*x.shape[:2], 2 * x.shape[2], *x.shape[3:])

    return model


def test_gaussian_diffusion_rejects_bad_betas():
    with pytest.raises(ValueError):
        GaussianDiffusion(np.array([0.1, 1.5]))


def test_cond_fn_shifts_the_mean_as_in_adm():
    """Classifier guidance: p_sample's mean moves by variance · gradient; DDIM's eps by −sqrt(1 − ᾱ) · gradient."""
    diffusion = create_diffusion("10")
    x, t = torch.zeros(2, 1, 1, 2, 2), torch.tensor([5, 5])
    model = _constant_model(0.0, 0.0)
    seen = []

    def cond_fn(x, timestep, **kwargs):
        seen.append(timestep.tolist())
        return torch.full_like(x, 2.0)

    base = diffusion.p_mean_variance(model, x, t)
    guided = diffusion.p_sample(model, x, t, cond_fn=cond_fn, generator=torch.Generator().manual_seed(0))
    plain = diffusion.p_sample(model, x, t, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(guided["sample"] - plain["sample"], 2.0 * base["variance"], atol=1e-6)
    assert seen == [[diffusion.timestep_map[5]] * 2]  # the model's timestep, not the index
    step = diffusion.ddim_sample(model, x, t, cond_fn=cond_fn)["sample"]
    ab, ab_prev = diffusion.alphas_cumprod[5], diffusion.alphas_cumprod_prev[5]
    eps = -math.sqrt(1 - ab) * 2.0  # x = 0, eps_model = 0
    expected = math.sqrt(ab_prev) * (-math.sqrt(1 / ab - 1) * eps) + math.sqrt(1 - ab_prev) * eps
    assert torch.allclose(step, torch.full_like(x, expected), atol=1e-5)


SCHEDULE_NAMES = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "one_minus_alphas_cumprod",
    "log_betas", "fixed_large_variance", "log_fixed_large_variance",
)


@pytest.mark.parametrize("respacing", ["", "25"])
def test_device_tables_equal_the_reference_lookup(respacing):
    """The device-resident float32 tables give bit-identical values to indexing the float64 arrays on the host."""
    diffusion = create_diffusion(respacing)
    t = torch.arange(diffusion.num_timesteps).flip(0)
    like = torch.zeros(len(t), 2, 1, 1, 1)
    for name in SCHEDULE_NAMES:
        assert torch.equal(diffusion._gather(name, t, like), gather(getattr(diffusion, name), t, like)), name
    assert diffusion.schedule_table("betas", "cpu") is diffusion.schedule_table("betas", torch.device("cpu"))  # made once
    expected = torch.tensor(diffusion.timestep_map)[t]
    assert torch.equal(diffusion.model_timesteps(t), expected)
    assert diffusion.fixed_large_variance[0] == diffusion.posterior_variance[1]
    assert np.array_equal(diffusion.fixed_large_variance[1:], diffusion.betas[1:])


def test_sampling_loops_never_copy_to_the_host(monkeypatch):
    """No step of DDPM/DDIM reads a tensor back to the host (on a GPU each such read waits for the device)."""
    diffusion = create_diffusion("8")
    shape = (2, 2, 1, 2, 2)
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    reference = diffusion.p_sample_loop(_constant_model(0.3, 0.1), shape, noise=torch.ones(shape), clip_denoised=False,
                                        generator=generators)

    def refuse(*args, **kwargs):
        raise AssertionError("a host read-back inside a sampling step")

    for name in ("cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    out = diffusion.p_sample_loop(_constant_model(0.3, 0.1), shape, noise=torch.ones(shape), clip_denoised=False,
                                  generator=generators)
    diffusion.ddim_sample_loop(_constant_model(0.3, 0.1), shape, noise=torch.ones(shape), eta=0.5,
                               generator=torch.Generator().manual_seed(0))
    monkeypatch.undo()
    assert torch.equal(out, reference)


def test_min_snr_training_loss_never_copies_to_the_host(monkeypatch):
    """The Min-SNR weights are looked up on t's device, like every schedule value of a training step."""
    diffusion = create_diffusion("", noise_schedule="squaredcos_cap_v2", predict_xstart=True, learn_sigma=False)
    x0, t = torch.zeros(2, 2, 1, 2, 2), torch.tensor([3, 700])
    model = lambda x, tt: torch.full_like(x, 0.3)  # noqa: E731 - an x_0 guess
    reference = diffusion.training_losses(model, x0, t, noise=torch.ones_like(x0), snr_gamma=2.0)["loss"]

    def refuse(*args, **kwargs):
        raise AssertionError("a host read-back inside a training step")

    for name in ("cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    loss = diffusion.training_losses(model, x0, t, noise=torch.ones_like(x0), snr_gamma=2.0)["loss"]
    monkeypatch.undo()
    assert torch.equal(loss, reference)
