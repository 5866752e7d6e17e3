"""VE bridge posterior (GM-SGM paper, Thm. 1 and App. A.1), its scale-mixture variant and
the optimal GM-SGM denoiser (Sec. 4.1, Eq. 13), in float64, against exact Gaussian
conditioning, Monte Carlo with standard-error tolerances, and quadrature."""

import math

import numpy as np
import pytest
import torch

from gmdiff.analytic import bridge as br
from gmdiff.papers import gm_sgm_theory as th

SIG = (0.5, 1.0, 2.0)  # sigma_u < sigma_s < sigma_t


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_theorem1_equals_exact_gaussian_conditioning_for_the_markov_process():
    # x_0 ~ N(1, 2): (x_u, x_s, x_t) jointly Gaussian; Schur complement is exact
    su, ss, st = SIG
    cov = br.ve_joint_covariance(SIG, 2.0, "markov")
    x_obs = torch.randn(32, 2, dtype=torch.float64, generator=gen()) * 3
    m_ex, v_ex = br.condition_gaussian(torch.ones(3, dtype=torch.float64), cov, [1], [0, 2], x_obs)
    m, v = br.ve_bridge_posterior(x_obs[:, 1:], x_obs[:, :1], st, ss, su)
    assert torch.allclose(m_ex, m, atol=1e-12, rtol=0)
    assert abs(float(v_ex[0, 0]) - v) < 1e-12
    # the literal i.i.d. reading of Eq. 12 has a different posterior
    cov_iid = br.ve_joint_covariance(SIG, 2.0, "iid")
    m_iid, v_iid = br.condition_gaussian(
        torch.ones(3, dtype=torch.float64), cov_iid, [1], [0, 2], x_obs
    )
    assert float((m_iid - m).abs().max()) > 0.1 and abs(float(v_iid[0, 0]) - v) > 0.1


def test_condition_gaussian_against_precision_form():
    a = torch.randn(4, 4, dtype=torch.float64, generator=gen(1))
    cov = a @ a.T + 4 * torch.eye(4, dtype=torch.float64)
    mu = torch.randn(4, dtype=torch.float64, generator=gen(2))
    x_obs = torch.randn(5, 2, dtype=torch.float64, generator=gen(3))
    m, c = br.condition_gaussian(mu, cov, [0, 3], [1, 2], x_obs)
    P = torch.linalg.inv(cov)
    t, o = [0, 3], [1, 2]
    c_ref = torch.linalg.inv(P[t][:, t])
    m_ref = mu[t] - (x_obs - mu[o]) @ (c_ref @ P[t][:, o]).T
    assert torch.allclose(c, c_ref, atol=1e-12) and torch.allclose(m, m_ref, atol=1e-12)


@pytest.mark.parametrize("mode", ["markov", "iid"])
def test_simulate_ve_covariance(mode):
    x0 = 1.0 + math.sqrt(2.0) * torch.randn(40000, 1, dtype=torch.float64, generator=gen(4))
    xs = br.simulate_ve(x0, SIG, generator=gen(5), mode=mode)[:, :, 0]
    emp = torch.cov(xs)
    ref = br.ve_joint_covariance(SIG, 2.0, mode)
    # standard error of a sample covariance entry: sqrt((C_ii C_jj + C_ij^2) / N)
    se = torch.sqrt((torch.diag(ref)[:, None] * torch.diag(ref)[None] + ref**2) / 40000)
    assert torch.all((emp - ref).abs() < 5 * se)


def test_monte_carlo_accepts_theorem1_and_rejects_planted_errors():
    # non-Gaussian data: the Markov property makes Thm. 1 hold for any p*
    x0 = th.bimodal_prior().sample(100000, generator=gen(6))
    states = br.simulate_ve(x0, SIG, generator=gen(7))
    assert th.bridge_mc_check(states, th.theorem1(SIG))["passes"]
    bad = th.bridge_mc_check(states, th.theorem1_swapped(SIG))
    assert not bad["passes"] and bad["max |z| mean"] > 10
    iid = br.simulate_ve(x0, SIG, generator=gen(8), mode="iid")
    assert not th.bridge_mc_check(iid, th.theorem1(SIG))["passes"]


def test_scale_mixture_bridge():
    prior = th.bimodal_prior()
    x0 = prior.sample(100000, generator=gen(9))
    states = br.simulate_ve(x0, SIG, generator=gen(10), betas=(1.0, 2.0))
    res_thm = th.bridge_mc_check(states, th.theorem1(SIG))
    # Thm. 1's mean survives the mixture; its variance does not
    assert res_thm["max |z| mean"] < res_thm["z critical"] and not res_thm["passes"]
    assert th.bridge_mc_check(states, th.gm_bridge(SIG, (1.0, 2.0), prior))["passes"]
    # ignoring the evidence that x_u carries about beta is caught
    su, ss, st = SIG
    with pytest.raises(ValueError, match="prior"):
        br.gm_bridge_posterior(states[2], states[0], st, ss, su)


def test_scale_mixture_bridge_reduces_to_theorem1():
    x_t = torch.randn(8, 3, dtype=torch.float64, generator=gen(11))
    x_u = torch.randn(8, 3, dtype=torch.float64, generator=gen(12))
    m, var, _r = br.gm_bridge_posterior(x_t, x_u, 2.0, 1.0, 0.0, betas=(1.0,))
    m1, v1 = br.ve_bridge_posterior(x_t, x_u, 2.0, 1.0, 0.0)
    assert torch.equal(m, m1) and torch.allclose(var, torch.full((8,), v1, dtype=torch.float64))
    _, var2, r2 = br.gm_bridge_posterior(x_t, x_u, 2.0, 1.0, 0.0, betas=(1.0, 3.0))
    assert torch.allclose(r2.sum(1), torch.ones(8, dtype=torch.float64))
    assert torch.all(var2 >= v1) and torch.all(var2 <= 9 * v1)


def test_gm_sgm_denoiser_against_quadrature():
    prior = th.bimodal_prior(2.0, 0.5)
    xs = [-7.0, -3.0, -1.2, 0.4, 2.0, 5.5]
    x = torch.tensor(xs, dtype=torch.float64)[:, None]
    ref = th.posterior_mean_quadrature(xs, 1.0, [-2, 2], [0.5, 0.5], [0.5, 0.5])
    np.testing.assert_allclose(br.gm_sgm_denoiser(prior, x, 1.0)[:, 0].numpy(), ref, atol=1e-9)
    # a single scale is the SGM denoiser; Eq. 13 read literally is not the posterior mean
    assert torch.allclose(br.gm_sgm_denoiser(prior, x, 1.0, betas=(1.0,)), prior.denoiser(x, 1.0))
    printed = br.gm_sgm_denoiser(prior, x, 1.0, as_printed=True)[:, 0].numpy()
    assert np.abs(printed - ref).max() > 1e-2
    ref_sgm = th.posterior_mean_quadrature(xs, 1.0, [-2, 2], [0.5, 0.5], [0.5, 0.5], betas=(1.0,))
    np.testing.assert_allclose(prior.denoiser(x, 1.0)[:, 0].numpy(), ref_sgm, atol=1e-9)


def test_noise_scale_posterior_limits():
    prior = th.bimodal_prior(2.0, 0.5)
    x = torch.tensor([[-30.0], [2.0], [30.0]], dtype=torch.float64)
    r = br.noise_scale_posterior(prior, x, 1.0, (1.0, 2.0))
    assert torch.allclose(r.sum(1), torch.ones(3, dtype=torch.float64))
    assert float(r[0, 1]) > 1 - 1e-12 and float(r[2, 1]) > 1 - 1e-12  # far out: the large scale
    assert float(r[1, 0]) > 0.5  # on a mode: the small scale is more likely


@pytest.mark.parametrize(
    "call",
    [
        lambda: br.ve_bridge_posterior(torch.zeros(2, 1), torch.zeros(2, 1), 1.0, 2.0, 0.0),
        lambda: br.ve_bridge_posterior(torch.zeros(2, 1), torch.zeros(3, 1), 2.0, 1.0, 0.0),
        lambda: br.simulate_ve(torch.zeros(2, 1), [1.0, 0.5], generator=gen()),
        lambda: br.simulate_ve(torch.zeros(2, 1), [0.5, 1.0], generator=gen(), mode="bad"),
        lambda: br.gm_bridge_posterior(
            torch.zeros(2, 1), torch.zeros(2, 1), 2.0, 1.0, 0.0, betas=(1.0, -2.0)
        ),
        lambda: br.condition_gaussian(torch.zeros(2), torch.eye(2), [0], [0], torch.zeros(1, 1)),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
