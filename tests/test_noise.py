"""Noise models: the Gamma sampler against scipy, DDGM's closed-form shape against its
step-by-step definition, and the level that losses and samplers hand to a noise model."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from gmdiff import losses
from gmdiff.noise import GammaNoise, GaussianNoise, standard_gamma
from gmdiff.samplers import ddim, ddpm
from gmdiff.schedules import VE, DiscreteVP


def _gamma_draws(k: float, n: int, seed: int) -> np.ndarray:
    z = standard_gamma(
        torch.full((n,), k, dtype=torch.float64), torch.Generator().manual_seed(seed)
    )
    return k + math.sqrt(k) * z.numpy()  # back to G ~ Gamma(k, 1)


@pytest.mark.parametrize("k", [0.2, 1.0, 4.5, 300.0])
def test_standard_gamma_matches_scipy(k):
    g = _gamma_draws(k, 20000, 0)
    assert stats.kstest(g, stats.gamma(k).cdf).pvalue > 1e-3
    # the test has power: a 10% wrong shape is rejected with the same sample size
    assert stats.kstest(g, stats.gamma(1.1 * k).cdf).pvalue < 1e-4


def test_standard_gamma_is_exact_at_huge_shape():
    """At k = 1e10 the standardized draw must not lose digits to k itself: mean 0, var 1."""
    z = standard_gamma(
        torch.full((50000,), 1e10, dtype=torch.float64), torch.Generator().manual_seed(1)
    )
    assert abs(z.mean().item()) < 4 / math.sqrt(50000)
    assert abs(z.var().item() - 1) < 0.03
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3


def test_standard_gamma_is_reproducible_and_checks_input():
    k = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    a = standard_gamma(k, torch.Generator().manual_seed(3))
    b = standard_gamma(k, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="> 0"):
        standard_gamma(torch.tensor([1.0, 0.0]), None)


def test_gamma_shape_is_ddgm_cumulative_shape():
    """DDGM: k_t = beta_t / (alpha_bar_t theta0^2), k_bar_t = sum_{i<=t} k_i and
    theta_t = sqrt(alpha_bar_t) theta0; the noise variance k_bar_t theta_t^2 must be
    1 - alpha_bar_t, and our closed form sigma^2 / (alpha theta0)^2 must equal k_bar_t."""
    vp = DiscreteVP.linear()
    theta0 = 0.001
    ab = vp.alpha_bar[1:]
    k_bar = torch.cumsum(vp.betas / ab / theta0**2, 0)
    np.testing.assert_allclose(k_bar * ab * theta0**2, 1 - ab, rtol=1e-9)
    n = torch.arange(1, vp.T + 1)
    ours = GammaNoise(theta0).shape(vp.alpha(n), vp.sigma(n))
    np.testing.assert_allclose(ours, k_bar, rtol=1e-9)


def test_gamma_noise_forward_chain_matches_closed_form():
    """Run DDGM's forward process one Gamma jump at a time with numpy's own Gamma sampler
    (x_t = sqrt(alpha_t) x_{t-1} + g_t - k_t theta_t, g_t ~ Gamma(k_t, theta_t)) and compare
    the marginal of x_n with sqrt(alpha_bar_n) x_0 + sigma_n z, z ~ GammaNoise."""
    theta0, n_steps, n = 1.0, 20, 40000
    betas = torch.linspace(1e-3, 0.05, n_steps, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    rng = np.random.default_rng(0)
    x = np.zeros(n)
    for t in range(n_steps):
        k_t = float(betas[t] / ab[t]) / theta0**2
        th_t = math.sqrt(float(ab[t])) * theta0
        x = math.sqrt(1 - float(betas[t])) * x + rng.gamma(k_t, th_t, n) - k_t * th_t
    a, s = math.sqrt(float(ab[-1])), math.sqrt(1 - float(ab[-1]))
    z = GammaNoise(theta0).sample(
        torch.zeros(n, 1, dtype=torch.float64), torch.Generator().manual_seed(1), a, s
    )
    res = stats.ks_2samp(x, s * z[:, 0].numpy())
    assert res.pvalue > 1e-3
    # and it is far from Gaussian at this theta0 (skewness 2 theta0 alpha / sigma = 2.7)
    assert abs(stats.skew(x) - 2 * theta0 * a / s) < 0.15
    assert stats.ks_2samp(x, s * rng.standard_normal(n)).pvalue < 1e-6


def test_gamma_noise_needs_a_level():
    with pytest.raises(ValueError, match="noise level"):
        GammaNoise(0.1).sample(torch.zeros(3, 2), None)
    with pytest.raises(ValueError, match="theta0"):
        GammaNoise(0.0)


class _Recorder(GaussianNoise):
    def sample(self, x0, generator, alpha=None, sigma=None):
        self.level = (alpha, sigma)
        return super().sample(x0, generator, alpha, sigma)


def test_losses_hand_the_noise_level_to_the_noise_model():
    x0 = torch.randn(64, 3, dtype=torch.float64)
    d = lambda x, s: torch.zeros_like(x)
    rec = _Recorder()
    losses.eps_loss(lambda x, n: torch.zeros_like(x), x0, DiscreteVP.linear(), noise=rec)
    a, s = rec.level
    np.testing.assert_allclose((a**2 + s**2).flatten(), 1.0, rtol=1e-12)  # VP
    assert a.shape == (64, 1) and s.std() > 0  # per sample
    losses.dsm_loss(d, x0, VE(), noise=rec)
    a, s = rec.level
    assert torch.all(a == 1) and s.shape == (64, 1)
    losses.edm_loss(d, x0, noise=rec)
    assert torch.all(rec.level[0] == 1)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_draw_noise_at_the_end_of_the_step(sampler):
    """With D = 0 from x_T = 0, the state after the first step is a multiple of the one
    noise draw made at the level (alpha_1, sigma_1) of that step's end, so its skewness is
    GammaNoise's 2 theta0 alpha_1 / sigma_1."""
    vp, theta0 = DiscreteVP.linear(T=1000), 1.0
    d = lambda x, s: torch.zeros_like(x)
    x_T = torch.zeros(40000, 1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    seen = {}
    cb = lambda i, t, x, x0: seen.setdefault(i, x.clone())
    kw = {"generator": gen, "noise": GammaNoise(theta0), "callback": cb}
    if sampler == "ddpm":
        ddpm(d, vp, x_T, 2, variance="beta", **kw)
    else:
        ddim(d, vp, x_T, 2, eta=1.0, **kw)
    n1 = torch.tensor(500)  # trailing spacing, 2 steps: 1000 -> 500 -> data
    expected = 2 * theta0 * float(vp.alpha(n1) / vp.sigma(n1))
    skew, se = stats.skew(seen[1][:, 0].numpy()), math.sqrt(6 / 40000)
    assert abs(skew - expected) < 5 * se
    assert expected > 20 * se  # the Gaussian default would fail this test


def test_noise_models_by_name():
    """A config names a noise model; unknown names and bad arguments are one clear error."""
    from gmdiff import noise as N

    assert isinstance(N.from_config({"name": "gm_sgm", "beta": 2.0}), N.ScaleMixtureNoise)
    assert isinstance(N.from_config({"name": "offset_mixture", "lam": 0.2}), N.OffsetMixtureNoise)
    with pytest.raises(ValueError, match="choose one of"):
        N.from_config({"name": "levy"})
    with pytest.raises(ValueError, match="'gamma'.*theta"):
        N.from_config({"name": "gamma", "theta": 1.0})


def test_coin_scales_is_a_fair_two_point_draw():
    """Half of the factors are each scale (binomial 5-sigma bound), in the asked dtype."""
    from gmdiff.noise import coin_scales

    b = coin_scales(40_000, (1.0, 2.0), torch.Generator().manual_seed(0), torch.float64)
    assert b.dtype == torch.float64 and set(b.unique().tolist()) == {1.0, 2.0}
    assert abs(float((b == 2.0).double().mean()) - 0.5) < 5 * 0.5 / 200
