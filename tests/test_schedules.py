"""Schedules and the conversions between eps, x0 (denoiser), and score."""

import math
import re

import pytest
import torch

from gmdiff.analytic import Gaussian
from gmdiff.schedules import (
    EDM,
    VE,
    DiscreteVP,
    VPLinear,
    denoiser_to_eps,
    denoiser_to_score,
    eps_to_denoiser,
    eps_to_score,
    score_to_denoiser,
    score_to_eps,
)

f64 = torch.float64


def test_conversions_are_mutually_consistent():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, dtype=f64, generator=g), torch.randn(5, 3, dtype=f64, generator=g)
    alpha, sigma = 0.8, 0.6
    x = alpha * x0 + sigma * eps
    torch.testing.assert_close(eps_to_denoiser(eps, x, sigma, alpha), x0)
    torch.testing.assert_close(denoiser_to_eps(x0, x, sigma, alpha), eps)
    s = denoiser_to_score(x0, x, sigma, alpha)
    torch.testing.assert_close(s, -eps / sigma)  # score of N(alpha x0, sigma^2) at x
    torch.testing.assert_close(eps_to_score(eps, sigma), s)
    torch.testing.assert_close(score_to_eps(s, sigma), eps)
    torch.testing.assert_close(score_to_denoiser(s, x, sigma, alpha), x0)


@pytest.mark.parametrize("sch", [VE(), VPLinear(), EDM()], ids=["ve", "vp", "edm"])
def test_derivatives_match_autograd(sch):
    t = torch.tensor([0.2, 0.5, 0.9], dtype=f64) * (sch.t_max - sch.t_min) + sch.t_min
    for f, df in [(sch.alpha, sch.dalpha), (sch.sigma, sch.dsigma)]:
        tt = t.clone().requires_grad_(True)
        y = f(tt)
        grad = torch.autograd.grad(y.sum(), tt)[0] if y.requires_grad else torch.zeros_like(t)
        torch.testing.assert_close(df(t), grad)


def test_process_endpoints_and_vp_identity():
    ve = VE(sigma_min=0.01, sigma_max=50.0)
    assert math.isclose(float(ve.sigma(0.0)), 0.01) and math.isclose(float(ve.sigma(1.0)), 50.0)
    levels = ve.discrete_sigmas(10)
    assert math.isclose(levels[0], 50.0) and math.isclose(levels[-1], 0.01)
    torch.testing.assert_close(
        levels[1:] / levels[:-1], torch.full((9,), levels[1] / levels[0], dtype=f64)
    )
    vp = VPLinear()
    t = torch.linspace(1e-3, 1, 20, dtype=f64)
    torch.testing.assert_close(vp.alpha(t) ** 2 + vp.sigma(t) ** 2, torch.ones_like(t))
    torch.testing.assert_close(vp.t_of_sigma_edm(vp.sigma_edm(t)), t)


def test_ddpm_linear_and_cosine():
    lin = DiscreteVP.linear()
    ab = lin.alpha_bar
    expected_T = torch.prod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=f64))
    torch.testing.assert_close(ab[-1], expected_T)
    assert 4.0e-5 < float(ab[-1]) < 4.1e-5 and ab[0] == 1
    assert torch.all(ab[1:] < ab[:-1])
    cos = DiscreteVP.cosine(T=1000)
    n = torch.arange(1001, dtype=f64)
    f = torch.cos((n / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(cos.alpha_bar[:990], (f / f[0])[:990])  # before beta clipping
    with pytest.raises(ValueError):
        DiscreteVP.linear(T=0)


def test_edm_drift_is_x_minus_d_over_sigma():
    g = Gaussian.isotropic(torch.zeros(2, dtype=f64))
    x = torch.randn(4, 2, dtype=f64)
    sigma = torch.tensor(3.0, dtype=f64)
    drift = EDM().pf_ode_drift(x, sigma, g.score(x, sigma))
    torch.testing.assert_close(drift, (x - g.denoiser(x, sigma)) / sigma)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EDM(50.0, 20.0), "EDM got sigma_min=50.0, sigma_max=20.0; need 0 < sigma_min"),
        (lambda: EDM(-1.0), "EDM got sigma_min=-1.0, sigma_max=80.0; need 0 < sigma_min"),
        (lambda: EDM(0.0), "EDM got sigma_min=0.0, sigma_max=80.0; need 0 < sigma_min"),
        (lambda: EDM(math.nan), "EDM got sigma_min=nan, sigma_max=80.0; need"),
        (lambda: EDM(sigma_max=math.inf), "sigma_max=inf; need 0 < sigma_min <= sigma_max < inf."),
        (lambda: EDM(rho=0.0), "EDM got rho=0.0; need 0 < rho < inf."),
        (lambda: EDM(sigma_max=True), "sigma_max=True; need numbers (not bools or strings) with"),
        (lambda: VE(sigma_min=0.0), "VE got sigma_min=0.0, sigma_max=50.0; need 0 < sigma_min"),
        (lambda: VE(sigma_min="1e-2"), "VE got sigma_min='1e-2', sigma_max=50.0; need numbers"),
        (lambda: VE(t_min=0.5, t_max=0.1), "VE got t_min=0.5, t_max=0.1; need 0 <= t_min < t_max"),
        (lambda: VE(t_max=2.0), "VE got t_min=1e-05, t_max=2.0; need 0 <= t_min < t_max <= 1."),
        (lambda: VPLinear(20.0, 0.1), "VPLinear got beta_min=20.0, beta_max=0.1; need 0 <= beta"),
        (lambda: VPLinear(beta_min=-0.1), "VPLinear got beta_min=-0.1, beta_max=20.0; need"),
        (lambda: VPLinear(t_min=0.0), "VPLinear got t_min=0.0, t_max=1.0; need 0 < t_min < t_max"),
        (lambda: VPLinear(t_max=math.nan), "VPLinear got t_min=0.001, t_max=nan; need"),
        (
            lambda: DiscreteVP.linear(beta_T=1.5),
            "DiscreteVP.linear got beta_1=0.0001, beta_T=1.5; need 0 < beta_1 <= beta_T < 1.",
        ),
        (lambda: DiscreteVP.linear(beta_1=-1e-4), "DiscreteVP.linear got beta_1=-0.0001, beta_T"),
        (lambda: DiscreteVP.linear(beta_1=0.02, beta_T=1e-4), "got beta_1=0.02, beta_T=0.0001;"),
        (lambda: DiscreteVP.cosine(max_beta=1.0), "DiscreteVP.cosine got max_beta=1.0; need 0 <"),
        (
            lambda: DiscreteVP(torch.tensor([0.5, 1.0], dtype=f64)),
            "DiscreteVP got min(betas)=0.5, max(betas)=1.0; need 0 < min(betas) <= max(betas) < 1.",
        ),
        (lambda: DiscreteVP(torch.tensor([-0.5, 0.5], dtype=f64)), "got min(betas)=-0.5, max"),
        (lambda: DiscreteVP(torch.zeros(0)), "DiscreteVP got betas=tensor([]); need a non-empty"),
    ],
)
def test_bad_schedule_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_valid_schedules_keep_their_values():
    """Boundary cases that stay valid: equal sigmas (teleport_heun restarts EDM at
    sigma_skip, which may round to sigma_min), VE from t = 0, VP with beta_min = 0."""
    torch.testing.assert_close(
        EDM(sigma_max=0.002).sigma_steps(3), torch.tensor([0.002, 0.002, 0.002, 0.0], dtype=f64)
    )
    ve = VE(sigma_min=0.01, sigma_max=50.0, t_min=0.0, t_max=1.0)
    assert math.isclose(float(ve.sigma(0.0)), 0.01)
    assert VPLinear(beta_min=0.0).beta(1.0) == 20.0
    torch.testing.assert_close(
        DiscreteVP.linear(T=100, beta_1=1e-3, beta_T=0.02).betas,
        torch.linspace(1e-3, 0.02, 100, dtype=f64),
    )
    assert DiscreteVP.cosine(T=1000).betas.max() == 0.999


@pytest.mark.parametrize(
    "schedule",
    [
        EDM(sigma_max=80.0),
        VE(sigma_min=0.01, sigma_max=4.0),
        VPLinear(),
        DiscreteVP(torch.linspace(1e-4, 0.02, 50)),
    ],
    ids=["edm", "ve", "vp", "discrete"],
)
def test_the_prior_is_drawn_and_evaluated_in_one_place(schedule):
    """prior_sample is N(0, prior_std^2 I) (its draw equals prior_std * randn from the same
    generator) and prior_logp its log-density (torch.distributions, float64)."""
    x = schedule.prior_sample((4000, 3), torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = schedule.prior_std * torch.randn(
        (4000, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert torch.equal(x, ref)
    normal = torch.distributions.Normal(0.0, torch.tensor(schedule.prior_std, dtype=torch.float64))
    torch.testing.assert_close(
        schedule.prior_logp(x[:5]), normal.log_prob(x[:5]).sum(1), rtol=1e-12, atol=1e-12
    )
    img = schedule.prior_sample((2, 1, 4, 4), torch.Generator().manual_seed(1))
    assert schedule.prior_logp(img).shape == (2,)
