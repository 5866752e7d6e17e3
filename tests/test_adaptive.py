"""The adaptive SDE solver (Jolicoeur-Martineau et al. 2021) against exact Gaussian moments."""

from __future__ import annotations

import pytest
import torch

from gmdiff.analytic import Gaussian
from gmdiff.samplers import adaptive_sde
from gmdiff.schedules import VE, VPLinear

F64 = torch.float64
D, N = 32, 1000


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def g() -> Gaussian:
    gen = torch.Generator().manual_seed(1)
    U, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=F64))
    lam = torch.logspace(-1.5, 0, D, dtype=F64)
    return Gaussian(0.3 * torch.randn(D, generator=gen, dtype=F64), U, lam)


def _prior(g: Gaussian, sch, n: int, gen: torch.Generator) -> torch.Tensor:
    """Exact marginal at t_max: N(alpha mu, alpha^2 Sigma + sigma^2 I)."""
    a, s = sch.alpha(sch.t_max), sch.sigma(sch.t_max)
    cov = a**2 * (g.basis * g.eigenvalues) @ g.basis.T + s**2 * torch.eye(D, dtype=F64)
    return a * g.mean + torch.randn(n, D, generator=gen, dtype=F64) @ torch.linalg.cholesky(cov).T


@pytest.mark.parametrize("sch", [VPLinear(), VE(sigma_max=10.0)], ids=["VP", "VE"])
def test_moments_match_exact_gaussian(g, sch):
    gen = torch.Generator().manual_seed(0)
    x, nfe = adaptive_sde(g.denoiser, sch, _prior(g, sch, N, gen), generator=gen, return_nfe=True)
    # mean: every coordinate within 5 standard errors
    se = (torch.diagonal((g.basis * g.eigenvalues) @ g.basis.T) / N).sqrt()
    assert ((x.mean(0) - g.mean).abs() / se).max() < 5.0
    # variances along the eigen-axes: ratio to the exact ones, SE sqrt(2/N) each
    c = torch.cov(x.T)
    ratio = torch.einsum("di,de,ei->i", g.basis, c, g.basis) / g.eigenvalues
    assert (ratio - 1).abs().max() < 5 * (2 / N) ** 0.5
    assert abs(ratio.mean().item() - 1) < 4 * (2 / (N * D)) ** 0.5 + 0.02
    assert nfe.min() >= 3 and nfe.float().mean() < 1000


def test_tighter_tolerance_costs_more(g):
    sch = VPLinear()
    gen = torch.Generator().manual_seed(2)
    x_T = _prior(g, sch, 200, gen)
    means = []
    for rtol in (0.1, 0.02):
        _, nfe = adaptive_sde(g.denoiser, sch, x_T, generator=gen, rtol=rtol, return_nfe=True)
        means.append(nfe.float().mean().item())
    assert means[1] > 1.5 * means[0]


def test_bad_input_raises(g):
    x = torch.zeros(2, D, dtype=F64)
    with pytest.raises(ValueError, match="atol"):
        adaptive_sde(g.denoiser, VPLinear(), x, atol=0.0)
    with pytest.raises(ValueError, match="steps"):
        adaptive_sde(g.denoiser, VPLinear(), x, steps=0)
    with pytest.raises(ValueError, match="t_end"):
        adaptive_sde(g.denoiser, VPLinear(), x, t_end=2.0)
    with pytest.raises(RuntimeError, match="did not reach"):
        adaptive_sde(g.denoiser, VE(), torch.randn(2, D, dtype=F64), steps=3)
    with pytest.raises(ValueError, match="schedule"):
        adaptive_sde(g.denoiser, object(), x)
