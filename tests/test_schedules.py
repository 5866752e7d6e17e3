"""Schedules and the conversions between eps, x0 (denoiser), and score."""

import math

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
