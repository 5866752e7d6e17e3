"""GM-SGM studies (GMS-5, GMS-9..11): exact optima per training noise, the noise-norm
statistics of Sec. 5.1, the trained-vs-optimal measure, mode spread and DDGM runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from gmdiff import data
from gmdiff.analytic import GaussianMixture
from gmdiff.papers import gm_sgm as G
from gmdiff.papers.gm_sgm_theory import posterior_mean_quadrature
from gmdiff.samplers import ddim, ve_pc
from gmdiff.schedules import VE, DiscreteVP

pytestmark = pytest.mark.usefixtures("one_thread")

MEANS, STDS, WEIGHTS = [-2.0, 1.0], [0.3, 0.5], [0.4, 0.6]


def _gmm_1d() -> GaussianMixture:
    means = torch.tensor(MEANS, dtype=torch.float64)[:, None]
    covs = torch.tensor(STDS, dtype=torch.float64)[:, None, None] ** 2
    return GaussianMixture.from_covariances(means, covs, torch.tensor(WEIGHTS, dtype=torch.float64))


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 2.0), (2.0,), (0.5, 2.0)])
def test_exact_denoiser_is_the_posterior_mean_by_quadrature(scales):
    """E[x0 | x] under x = x0 + beta~ sigma xi, by adaptive quadrature (scipy), for every
    training noise of the chapter."""
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)[:, None]
    sigma = 0.7
    ours = G.exact_denoiser(_gmm_1d(), scales)(x, torch.full((9,), sigma, dtype=torch.float64))
    ref = posterior_mean_quadrature(x[:, 0].tolist(), sigma, MEANS, STDS, WEIGHTS, betas=scales)
    np.testing.assert_allclose(ours[:, 0].numpy(), ref, atol=1e-8)


def test_exact_denoiser_special_cases():
    ring = data.ring2d()
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = torch.full((50,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(G.exact_denoiser(ring, (1.0,))(x, s), ring.denoiser(x, s))
    torch.testing.assert_close(G.exact_denoiser(ring, (2.0,))(x, s), ring.denoiser(x, 2 * s))
    gm = G.exact_denoiser(ring, (1.0, 2.0))(x, s)
    assert (gm - ring.denoiser(x, s)).abs().max() > 1e-2  # the mixture changes the optimum


def test_xi_norms_follow_the_sampler():
    """With D = 0 the estimated noise is x / sigma; the recorded norms must be those of the
    states ve_pc passes to its callback, at the sampler's own noise levels."""
    sch = VE(sigma_min=0.01, sigma_max=3.0)
    d = lambda x, s: torch.zeros_like(x)
    x_T = 3.0 * torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    sig, norms = G.xi_norms(d, sch, x_T, 12, seed=5)
    states = []
    ve_pc(
        d,
        sch,
        x_T,
        12,
        generator=torch.Generator().manual_seed(5),
        callback=lambda i, t, x, x0: states.append(x),
    )
    torch.testing.assert_close(sig, sch.discrete_sigmas(12).to(sig.dtype))
    expected = torch.stack([x.norm(dim=1) / s for x, s in zip(states, sig, strict=True)])
    torch.testing.assert_close(norms, expected)


def test_r_mean_var():
    n = torch.rand(7, 100, generator=torch.Generator().manual_seed(2)) + 0.5
    rm, rv = G.r_mean_var(2 * n, n)
    torch.testing.assert_close(rm, torch.full((7,), 2.0))
    torch.testing.assert_close(rv, torch.full((7,), 4.0))


def test_trained_vs_optimal_slope_recovers_the_optima():
    """Handing the optima themselves in as the 'nets' gives c = 1 and zero distances; two
    identical nets give c = 0."""
    ring = data.ring2d()
    eb, map_ = G.exact_denoiser(ring, (1.0, 2.0)), G.exact_denoiser(ring, (1.0,))
    x0 = ring.sample(2000, torch.Generator().manual_seed(3))
    t = G.trained_vs_optimal(eb, map_, eb, map_, x0, [0.3, 1.0], seed=0)
    np.testing.assert_allclose(t["slope c"], 1.0, atol=1e-5)
    np.testing.assert_allclose(t["GM-SGM net vs EB"], 0.0, atol=1e-5)
    assert (t["EB vs MAP"] > 0.05).all()
    t0 = G.trained_vs_optimal(map_, map_, eb, map_, x0, [0.3, 1.0], seed=0)
    np.testing.assert_allclose(t0["slope c"], 0.0, atol=1e-6)


def test_mode_spread():
    ring = data.ring2d(std=0.1)
    x = ring.sample(20000, torch.Generator().manual_seed(4))
    assert abs(G.mode_spread(x, ring.means, 0.1) - 1) < 0.02
    nearest = ring.means[torch.cdist(x, ring.means).argmin(1)]
    shrunk = nearest + 0.5 * (x - nearest)
    assert abs(G.mode_spread(shrunk, ring.means, 0.1) - 0.5) < 0.01


def test_ddgm_run_starts_from_gamma_noise():
    """DDGM's DDIM-based run: x_T is standardized Gamma noise at the first grid level, so
    its skewness is 2 theta0 alpha / sigma there (0 for Gaussian noise)."""
    vp, theta0 = DiscreteVP.linear(T=100, beta_1=1e-3, beta_T=0.02), 1.0
    seen = {}
    cb = lambda i, t, x, x0: seen.setdefault(i, x.clone())
    run = G.ddgm_run(ddim, lambda x, s: torch.zeros_like(x), vp, (1,), 20000, theta0, callback=cb)
    run(4, 0)
    n = torch.tensor(100)
    expected = 2 * theta0 * float(vp.alpha(n) / vp.sigma(n))
    skew = stats.skew(seen[0][:, 0].numpy())
    assert abs(skew - expected) < 5 * math.sqrt(6 / 20000)
    assert expected > 0.5


def test_which_is_lower():
    assert G.which_is_lower(1.0, 2.0, 0.1, "A", "B") == "A better"
    assert G.which_is_lower(2.0, 1.0, 0.1, "A", "B") == "B better"
    assert G.which_is_lower(1.0, 1.05, 0.1, "A", "B").startswith("tie")


def test_paired_puts_paper_beside_ours_without_empty_cells():
    ours = pd.DataFrame({"iterations": [20, 100], "SGM": [0.1234, 0.2], "GM-SGM": [0.3, 0.4],
                         "only ours": [1.0, 2.0]})
    paper = pd.DataFrame({"iterations": [100, 500], "SGM": [45.2, 3.5], "GM-SGM": [6.0, 3.0]})
    t = G.paired(ours, paper, "iterations", digits=2)
    assert list(t.index) == ["SGM", "GM-SGM"]  # models both tables have, the paper's order
    assert list(t.columns) == ["100 (paper)", "100 (ours)", "500 (paper)", "20 (ours)"]
    assert not t.isna().any().any()
    assert t.loc["SGM", "20 (ours)"] == 0.12 and t.loc["GM-SGM", "100 (paper)"] == 6.0
    assert t.loc["GM-SGM", "100 (ours)"] == 0.4 and t.loc["SGM", "500 (paper)"] == 3.5
