"""GS-1 and GS-2 in float64: exact scores/denoisers against autograd of the log density,
and the closed-form Gaussian PF-ODE against numerical integration. Each check also runs on
a planted error to show it can fail."""

import numpy as np
import pytest
import torch

from gmdiff.analytic import (
    DeltaMixture,
    Gaussian,
    GaussianMixture,
    gaussian_denoiser_path,
    gaussian_endpoint,
    gaussian_state,
    integrate_pf_ode,
    scaled_score,
)
from gmdiff.analytic.checks import autograd_score, pf_ode_errors, score_errors
from gmdiff.schedules import EDM, VPLinear

TOL = 1e-9  # float64: these are identities, errors are round-off (~1e-13)


def random_models(D: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64)
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    cov = A @ A.T / D
    K = 3
    means = 2 * torch.randn(K, D, generator=g, dtype=torch.float64)
    Bs = torch.randn(K, D, D, generator=g, dtype=torch.float64)
    return {
        "isotropic": Gaussian.isotropic(mean),
        "gaussian": Gaussian.from_cov(mean, cov),
        "gaussian_lowrank": Gaussian.from_cov(mean, cov, rank=2),
        "gmm": GaussianMixture.from_covariances(
            means, Bs @ Bs.transpose(1, 2) / D, torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
        ),
        "gmm_lowrank": GaussianMixture.from_covariances(means, Bs @ Bs.transpose(1, 2) / D, rank=2),
        "delta": DeltaMixture(torch.randn(20, D, generator=g, dtype=torch.float64)),
    }


@pytest.mark.parametrize("name", list(random_models()))
@pytest.mark.parametrize("sigma", [0.05, 0.7, 20.0])
def test_score_and_denoiser_match_autograd(name, sigma):
    m = random_models()[name]
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    err = score_errors(m, x, sigma)
    assert err["score_vs_autograd"] < TOL, err
    assert err["denoiser_vs_tweedie"] < TOL, err


def test_gaussian_log_prob_matches_torch_distribution():
    m = random_models()["gaussian_lowrank"]
    x = torch.randn(10, 6, dtype=torch.float64)
    cov = m.basis @ torch.diag(m.eigenvalues) @ m.basis.T + 0.3**2 * torch.eye(
        6, dtype=torch.float64
    )
    ref = torch.distributions.MultivariateNormal(m.mean, cov).log_prob(x)
    torch.testing.assert_close(m.log_prob(x, 0.3), ref, rtol=1e-12, atol=1e-12)


def test_delta_mixture_equals_rank0_gmm():
    pts = torch.randn(7, 4, dtype=torch.float64)
    gmm = GaussianMixture(
        pts,
        torch.zeros(7, 4, 0, dtype=torch.float64),
        torch.zeros(7, 0, dtype=torch.float64),
        torch.zeros(7, dtype=torch.float64),
    )
    delta = DeltaMixture(pts, chunk=3)
    x = torch.randn(11, 4, dtype=torch.float64)
    for f in ("log_prob", "score", "denoiser"):
        torch.testing.assert_close(
            getattr(delta, f)(x, 0.4), getattr(gmm, f)(x, 0.4), rtol=1e-10, atol=1e-10
        )


class SigmaNotSquared(Gaussian):
    """Planted error: Lambda-tilde with sigma instead of sigma^2 in the denoiser."""

    def denoiser(self, x, sigma):
        return super().denoiser(x, torch.as_tensor(sigma, dtype=x.dtype).sqrt())


class WrongSignScore(Gaussian):
    """Planted error: the Woodbury correction added with the wrong sign."""

    def score(self, x, sigma):
        s = super().score(x, sigma)
        return 2 * (self.mean - x) / sigma**2 - s


def test_planted_errors_are_caught():
    base = random_models()["gaussian_lowrank"]
    x = torch.randn(32, 6, dtype=torch.float64)
    for cls, key in [
        (SigmaNotSquared, "denoiser_vs_tweedie"),
        (WrongSignScore, "score_vs_autograd"),
    ]:
        bad = cls(base.mean, base.basis, base.eigenvalues)
        assert score_errors(bad, x, 0.7)[key] > 1e-2


def test_autograd_score_is_gradient():
    m = random_models()["gaussian"]
    x = torch.randn(3, 6, dtype=torch.float64)
    h = 1e-6
    e = torch.zeros(6, dtype=torch.float64)
    e[2] = h
    fd = (m.log_prob(x + e, 0.5) - m.log_prob(x - e, 0.5)) / (2 * h)
    torch.testing.assert_close(autograd_score(m, x, 0.5)[:, 2], fd, rtol=1e-7, atol=1e-7)


# ---------------------------------------------------------------- GS-2: PF-ODE closed form

ODE_TOL = 1e-6  # RK45 at rtol 1e-10 reaches ~1e-9; a wrong formula is off by O(1)


@pytest.mark.parametrize("schedule", [EDM(), VPLinear()], ids=["edm", "vp"])
def test_closed_form_matches_solve_ivp(schedule):
    g = random_models(D=5, seed=3)["gaussian_lowrank"]
    err = pf_ode_errors(g, schedule, n=4, seed=0)
    assert max(err.values()) < ODE_TOL, err


def test_vp_closed_form_without_alpha_is_caught():
    """Planted error: drop alpha_t from Eq. 18 (i.e. use the EDM form on a VP process)."""
    g = random_models(D=5, seed=3)["gaussian_lowrank"]
    err = pf_ode_errors(g, VPLinear(), n=4, seed=0, drop_alpha=True)
    assert err["state"] > 1e-2


def test_endpoint_is_the_state_at_sigma_zero_and_denoiser_path_matches():
    g = random_models(D=5, seed=3)["gaussian"]
    xT = 80 * torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(gaussian_endpoint(g, xT, 80.0), gaussian_state(g, xT, 1e-12, 80.0))
    xt = gaussian_state(g, xT, 2.0, 80.0)
    torch.testing.assert_close(gaussian_denoiser_path(g, xT, 2.0, 80.0), g.denoiser(xt, 2.0))


def test_integrate_pf_ode_reaches_exact_endpoint_edm():
    g = random_models(D=5, seed=4)["gaussian_lowrank"]
    xT = 80 * torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xs = integrate_pf_ode(scaled_score(g, EDM()), EDM(), xT, 80.0, np.array([1e-9]))
    torch.testing.assert_close(xs[-1], gaussian_endpoint(g, xT, 80.0), rtol=1e-6, atol=1e-6)
