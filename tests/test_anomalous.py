"""Levy-stable and Gaussian-mixture increments (GM-SGM paper, Sec. 3.1-3.2, Eqs. 6 and 8):
samples against scipy's distribution functions (KS tests at significance 1e-3), the pdf
convention against quadrature of the paper's Fourier integral, and planted errors that the
same tests must reject."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from gmdiff.analytic import anomalous as an

LEVEL = 1e-3  # KS significance: a correct sampler fails a single test with probability 1e-3


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("alpha", [0.7, 1.0, 1.8])
def test_symmetric_stable_matches_scipy(alpha):
    x = an.sample_stable(1500, alpha, scale=0.8, generator=gen(1)).numpy()
    p = stats.kstest(x, lambda z: stats.levy_stable.cdf(z, alpha, 0.0, scale=0.8)).pvalue
    assert p > LEVEL


def test_totally_skewed_stable_matches_scipy():
    # the radial variable of the sub-Gaussian construction: alpha/2 = 0.9, skew 1
    x = an.sample_stable(1500, 0.9, skew=1.0, scale=0.7, generator=gen(2)).numpy()
    assert np.all(x > 0)
    p = stats.kstest(x, lambda z: stats.levy_stable.cdf(z, 0.9, 1.0, scale=0.7)).pvalue
    assert p > LEVEL


def test_isotropic_sas_marginals_and_planted_scale_error():
    alpha = 1.8
    x = an.sample_isotropic_sas(2000, 2, alpha, generator=gen(3)).numpy()
    c = an.scipy_scale(alpha)
    cdf = lambda z: stats.levy_stable.cdf(z, alpha, 0.0, scale=c)
    assert stats.kstest(x[:, 0], cdf).pvalue > LEVEL
    assert stats.kstest((x[:, 0] - x[:, 1]) / math.sqrt(2), cdf).pvalue > LEVEL  # isotropy
    # planted: reading the paper's gamma as scipy's scale (forgetting 2^(-1/alpha)) is caught
    wrong = lambda z: stats.levy_stable.cdf(z, alpha, 0.0, scale=1.0)
    assert stats.kstest(x[:, 0], wrong).pvalue < LEVEL


def test_alpha_two_is_the_standard_gaussian_with_gamma_one():
    # the paper's characteristic function exp(-|gamma y|^alpha / 2) at alpha = 2, gamma = 1
    x = an.sample_isotropic_sas(4000, 2, 2.0, generator=gen(4)).numpy()
    assert stats.kstest(x[:, 1], "norm").pvalue > LEVEL
    xs = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(an.sas_pdf(xs, 2.0), stats.norm.pdf(xs), rtol=1e-12)
    # the paper's gamma = 1/2 would give N(0, 1/4), not the standard Gaussian
    np.testing.assert_allclose(
        an.sas_pdf(xs, 2.0, gamma=0.5), stats.norm.pdf(xs, scale=0.5), rtol=1e-12
    )


@pytest.mark.parametrize("alpha", [1.0, 1.5, 1.8])
def test_pdf_matches_paper_fourier_integral(alpha):
    xs = np.array([0.0, 0.3, 1.7, 4.0])
    np.testing.assert_allclose(an.sas_pdf(xs, alpha), an.sas_pdf_fourier(xs, alpha), rtol=1e-7)


def test_gm_increments_law_and_planted_per_coordinate_scales():
    beta, dt, n = 2.0, 0.25, 4000
    dw = an.gm_increments(n, 2, beta, dt, generator=gen(5)).numpy()
    sd = [math.sqrt(dt), beta * math.sqrt(dt)]
    assert stats.kstest(dw[:, 0], lambda z: an.gm_cdf(z, sd)).pvalue > LEVEL
    r2_cdf = lambda z: (
        0.5 * stats.expon.cdf(z, scale=2) + 0.5 * stats.expon.cdf(z, scale=2 * beta**2)
    )
    assert stats.kstest((dw**2).sum(1) / dt, r2_cdf).pvalue > LEVEL
    # planted: each coordinate choosing its own scale has the same marginals but fails
    g = gen(6)
    scale = torch.where(torch.rand(n, 2, generator=g, dtype=torch.float64) < 0.5, 1.0, beta)
    bad = (scale * torch.randn(n, 2, generator=g, dtype=torch.float64)).numpy()
    assert stats.kstest((bad**2).sum(1), r2_cdf).pvalue < LEVEL


def test_gm_pdf_integrates_to_cdf():
    xs = np.linspace(-12, 3, 3001)
    cdf = np.concatenate(
        [[0], np.cumsum((an.gm_pdf(xs[1:], [1, 2]) + an.gm_pdf(xs[:-1], [1, 2])) / 2 * np.diff(xs))]
    )
    np.testing.assert_allclose(cdf, an.gm_cdf(xs, [1, 2]), atol=1e-6)


def test_three_paths_share_gaussian_directions():
    p = an.three_paths(200, seed=2023)
    assert all(v.shape == (201, 2) and torch.all(v[0] == 0) for v in p.values())
    steps = {k: v[1:] - v[:-1] for k, v in p.items()}
    ratio_gm = steps["gm"].norm(dim=1) / steps["brownian"].norm(dim=1)
    assert torch.all(((ratio_gm - 1).abs() < 1e-12) | ((ratio_gm - 2).abs() < 1e-12))
    cos = (steps["levy"] * steps["brownian"]).sum(1) / (
        steps["levy"].norm(dim=1) * steps["brownian"].norm(dim=1)
    )
    assert torch.allclose(cos, torch.ones_like(cos))


def test_brownian_increment_variance():
    dw = an.brownian_increments(20000, 2, 0.5, generator=gen(7))
    se = 0.5 * math.sqrt(2 / 40000)
    assert abs(float(dw.var()) - 0.5) < 5 * se


@pytest.mark.parametrize(
    "call",
    [
        lambda: an.sample_stable(3, 2.5, generator=gen()),
        lambda: an.sample_stable(3, 1.0, skew=0.5, generator=gen()),
        lambda: an.gm_increments(3, 2, 0.5, generator=gen()),
        lambda: an.brownian_increments(3, 2, 0.0, generator=gen()),
        lambda: an.gm_pdf(np.zeros(2), [1.0, 2.0], [0.3, 0.3]),
        lambda: an.three_paths(0),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
