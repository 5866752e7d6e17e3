"""SMD paper (Li et al.), Sec. 3: the exact DDPM reverse posterior of Gaussian-mixture data
(Prop. 3.1, Eq. 7), the local error M_t (Def. 3.1, Eq. 8) and the global error E (Def. 3.2,
Eq. 9), in float64, against computations made here independently of
gmdiff.analytic.ddpm_posterior:

(the references live in gmdiff.papers.smd_checks, shared with the smd_theory chapter):
(a) per component, exact conditioning of the joint Gaussian of (x_{t-1}, x_t), whose
    covariance is built by iterating Eq. 1 step by step (no alpha-bar formula);
(b) forward simulation of Eq. 1 from x_0, tested by z-scores of the posterior mean and
    variance residuals and a KS test of the probability integral transform;
(c) each check run with a planted error (one beta, one weight, one alpha-bar) must fail;
(d) M_t: zero (single Gaussian) or closed-form Gaussian KLs, and 1-D quadrature of the
    mixture case. On the mixture families M_1 grows without bound, but for t >= 2 M_t stays
    under a data-independent bound and goes to 0 as the modes separate (Thm. 3.1 does not
    hold at t >= 2); only the pointwise KL at the decision boundary grows without bound.
"""

import functools
import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from gmdiff.analytic import (
    GaussianMixture,
    forward_marginal,
    global_error,
    local_error,
    local_error_bound,
    posterior_kl,
    reverse_posterior,
)
from gmdiff.analytic.checks import rel_err
from gmdiff.analytic.ddpm_posterior import eq7_coefficients
from gmdiff.papers.smd_checks import (
    chain_coefficients,
    conditioned_reference,
    joint_per_component,
    quadrature_local_error,
    simulate_pairs,
    simulation_check,
)
from gmdiff.schedules import DiscreteVP

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64

TOL_EXACT = 1e-9  # (a): identities in float64; the errors seen are ~1e-13
Z_TOL = 4.5  # (b): |z| of a mean residual; a planted error must exceed it
KS_TOL = 1.95  # (b): sqrt(n) * KS statistic; P(exceed) ~ 0.001 under the null

SCHEDULES = {
    "cos2": DiscreteVP.cosine(2),
    "cos5": DiscreteVP.cosine(5),
    "lin1000": DiscreteVP.linear(1000),
}
# (schedule, step t): first, second, middle and last steps
CASES = [("cos2", 1), ("cos2", 2), ("cos5", 1), ("cos5", 3), ("cos5", 5)] + [
    ("lin1000", t) for t in (1, 2, 500, 1000)
]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gmm2d(lowrank: bool = True) -> GaussianMixture:
    """K = 3 in 2-D: an anisotropic rotated component, a rank-1 one (a full-rank one when
    ``lowrank`` is False) and a small isotropic one; unequal weights."""
    c, s = math.cos(0.6), math.sin(0.6)
    R = torch.tensor([[c, -s], [s, c]], dtype=F64)
    covs = torch.stack(
        [
            R @ torch.diag(torch.tensor([2.0, 0.1], dtype=F64)) @ R.T,
            torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=F64)
            + (0.0 if lowrank else 0.05) * torch.eye(2, dtype=F64),
            0.04 * torch.eye(2, dtype=F64),
        ]
    )
    means = torch.tensor([[-2.0, 1.0], [2.5, 0.0], [0.0, -3.0]], dtype=F64)
    return GaussianMixture.from_covariances(means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=F64))


def gmm1d(means, stds, weights=None) -> GaussianMixture:
    m = torch.tensor(means, dtype=F64)[:, None]
    v = torch.tensor(stds, dtype=F64)[:, None, None] ** 2
    w = None if weights is None else torch.tensor(weights, dtype=F64)
    return GaussianMixture.from_covariances(m, v, w)


def two_modes(d: float, s: float = 0.1) -> GaussianMixture:
    return gmm1d([-d, d], [s, s])


def perturbed(schedule: DiscreteVP, t: int, factor: float) -> DiscreteVP:
    b = schedule.betas.clone()
    b[t - 1] *= factor
    return DiscreteVP(b)


# -- independent references -------------------------------------------------------------


# -- (a) Eq. 7 against exact conditioning -------------------------------------------------


def eq7_errors(post, ref) -> dict[str, float]:
    w, m, c = ref
    return {
        "weights": rel_err(post.weights, w),
        "means": rel_err(post.means, m),
        "covs": rel_err(post.covs, c),
    }


def eq7_points(g: GaussianMixture, sch: DiscreteVP, t: int) -> torch.Tensor:
    """64 draws of q(x_t) and 16 wider points (where the responsibilities are mixed)."""
    x_t = forward_marginal(g, sch, t).sample(64, gen(t))
    return torch.cat([x_t, 3 * torch.randn(16, 2, dtype=F64, generator=gen(99))])


@pytest.mark.parametrize("name,t", CASES)
def test_eq7_equals_conditioning_of_the_joint_gaussian(name, t):
    sch, g = SCHEDULES[name], gmm2d()
    x_t = eq7_points(g, sch, t)
    ref = conditioned_reference(g, sch, t, x_t)
    err = eq7_errors(reverse_posterior(g, sch, t, x_t), ref)
    assert max(err.values()) < TOL_EXACT, err


@pytest.mark.parametrize("name,t", [("cos2", 2), ("cos5", 3), ("lin1000", 2), ("lin1000", 500)])
def test_eq7_planted_errors_are_caught(name, t):
    sch, g = SCHEDULES[name], gmm2d()
    x_t = eq7_points(g, sch, t)
    ref = conditioned_reference(g, sch, t, x_t)
    # one beta off by 1 %
    err = eq7_errors(reverse_posterior(g, perturbed(sch, t, 0.99), t, x_t), ref)
    assert max(err.values()) > 1e3 * TOL_EXACT, err
    # one mixture weight changed (0.5, 0.3, 0.2) -> (0.45, 0.35, 0.2)
    g2 = gmm2d()
    g2 = GaussianMixture(g2.means, g2.U, g2.lam, torch.log(torch.tensor([0.45, 0.35, 0.2])).to(F64))
    err = eq7_errors(reverse_posterior(g2, sch, t, x_t), ref)
    assert err["weights"] > 1e3 * TOL_EXACT, err
    # Eq. 7 with sqrt(ab_t) in place of sqrt(ab_{t-1}) in mu'_k (a one-index slip)
    post = reverse_posterior(g, sch, t, x_t)
    A, B = eq7_coefficients(g, sch, t)
    ab = sch.alpha_bar
    slip = post.means + (ab[t].sqrt() - ab[t - 1].sqrt()) * torch.einsum("kde,ke->kd", B, g.means)
    assert rel_err(slip, ref[1]) > 1e3 * TOL_EXACT


@pytest.mark.parametrize("name,t", [("cos2", 2), ("cos5", 1), ("cos5", 4), ("lin1000", 300)])
def test_posterior_density_is_bayes_rule_on_the_joint(name, t):
    """log q(y | x_t) of the Prop. 3.1 mixture = log q(y, x_t) - log q(x_t), both from the
    per-component joint Gaussians (full-rank data covariances: at t = 1 the rank-1 component
    would make q(x_0 | x_1) singular)."""
    sch, g = SCHEDULES[name], gmm2d(lowrank=False)
    x_t = forward_marginal(g, sch, t).sample(32, gen(1))
    y = forward_marginal(g, sch, t - 1).sample(32, gen(2))
    mean, cov = joint_per_component(g, sch, t)
    yx = torch.cat([y, x_t], 1)[:, None]
    joint = torch.logsumexp(g.log_weights + MultivariateNormal(mean, cov).log_prob(yx), 1)
    marg_k = MultivariateNormal(mean[:, 2:], cov[:, 2:, 2:]).log_prob(x_t[:, None])
    marg = torch.logsumexp(g.log_weights + marg_k, 1)
    got = reverse_posterior(g, sch, t, x_t).log_prob(y)
    assert float((got - (joint - marg)).abs().max()) < 1e-8
    assert float((forward_marginal(g, sch, t).log_prob(x_t) - marg).abs().max()) < 1e-10


@pytest.mark.parametrize("name,t", CASES)
def test_posterior_mean_is_ddpm_mean_of_the_exact_denoiser(name, t):
    """E[x_{t-1} | x_t] = mu~(x_t, E[x_0 | x_t]) (Ho et al. 2020, Eq. 7), with E[x_0 | x_t] the
    GMM denoiser of the Gaussian score paper (Eq. 7 there) at sigma^2 = (1 - ab_t) / ab_t."""
    sch, g = SCHEDULES[name], gmm2d()
    x_t = forward_marginal(g, sch, t).sample(64, gen(3))
    ab, ab_prev, beta = sch.alpha_bar[t], sch.alpha_bar[t - 1], sch.betas[t - 1]
    x0 = g.denoiser(x_t / ab.sqrt(), ((1 - ab) / ab).sqrt())
    ref = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
    assert rel_err(reverse_posterior(g, sch, t, x_t).mean(), ref) < TOL_EXACT


# -- (b), (c) forward simulation ------------------------------------------------------------


GMM_B = ([-2.0, 1.5], [0.3, 0.6], [0.3, 0.7])  # 1-D means, stds, weights


@functools.cache
def simulated_pairs(name: str, t: int, n: int = 300_000, seed: int = 0):
    """x_0 ~ the GMM_B mixture, then Eq. 1 step by step up to t under SCHEDULES[name];
    returns (x_{t-1}, x_t), each (n, 1). Cached: the planted-error runs reuse the draws."""
    return simulate_pairs(gmm1d(*GMM_B), SCHEDULES[name], t, n, gen(seed))


B_CASES = [("cos2", 1), ("cos2", 2), ("cos5", 2), ("cos5", 3)]


@pytest.mark.parametrize("name,t", B_CASES)
def test_posterior_matches_forward_simulation(name, t):
    sch, g = SCHEDULES[name], gmm1d(*GMM_B)
    res = simulation_check(g, sch, t, simulated_pairs(name, t))
    assert res["n"] > 20_000, res
    assert abs(res["z_mean"]) < Z_TOL and abs(res["z_var"]) < Z_TOL, res
    assert res["ks"] < KS_TOL, res


@pytest.mark.parametrize("name,t", B_CASES)
def test_forward_simulation_catches_planted_errors(name, t):
    sch, g = SCHEDULES[name], gmm1d(*GMM_B)
    means, stds, _ = GMM_B
    planted = {
        "beta_t x 0.9": (g, perturbed(sch, t, 0.9)),
        "weights 0.3 -> 0.36": (gmm1d(means, stds, [0.36, 0.64]), sch),
    }
    for label, (pg, ps) in planted.items():
        res = simulation_check(pg, ps, t, simulated_pairs(name, t))
        worst = max(abs(res["z_mean"]) / Z_TOL, abs(res["z_var"]) / Z_TOL, res["ks"] / KS_TOL)
        assert worst > 1.0, (label, res)


# -- (d) local error M_t ---------------------------------------------------------------------


def gaussian_kl_iso(c: np.ndarray, v: float) -> float:
    """KL(N(m, C) || N(m, v I)) for one D x D covariance C."""
    D = c.shape[0]
    return 0.5 * (np.trace(c) / v - D + D * math.log(v) - np.linalg.slogdet(c)[1])


@pytest.mark.parametrize("name,t", CASES)
def test_local_error_of_a_single_gaussian(name, t):
    """One Gaussian: the posterior is Gaussian, so M_t = 0 for the moment-matched kernel and
    the closed-form Gaussian KL (posterior covariance from the conditioning reference) for
    fixed sigma_t = beta_t and for the best constant sigma_t = tr C / D."""
    sch = SCHEDULES[name]
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=F64)
    g = GaussianMixture.from_covariances(torch.tensor([[1.0, -2.0]], dtype=F64), cov[None])
    e = local_error(g, sch, t, generator=gen(), n=2000)
    assert abs(e.value) < 1e-10 and e.stderr < 1e-10, e
    x_t = torch.zeros(1, 2, dtype=F64)
    c = conditioned_reference(g, sch, t, x_t)[2][0].numpy()
    beta = float(sch.betas[t - 1])
    for variance, ref in [
        (beta, gaussian_kl_iso(c, beta)),
        ("isotropic", gaussian_kl_iso(c, np.trace(c) / 2)),
    ]:
        e = local_error(g, sch, t, generator=gen(), n=2000, variance=variance)
        assert abs(e.value - ref) < 1e-9 * max(1.0, ref), (variance, e, ref)


QUAD_CASES = [  # (schedule, t, d, s): modes +-d of std s
    ("cos2", 1, 1.0, 0.1),
    ("cos2", 2, 16.0, 0.1),
    ("cos5", 2, 1.0, 0.1),
    ("cos5", 3, 2.0, 0.1),
    ("cos5", 5, 8.0, 0.1),
    ("lin1000", 1, 0.005, 0.001),
    ("lin1000", 2, 0.02, 0.001),
]


@pytest.mark.parametrize("name,t,d,s", QUAD_CASES)
def test_local_error_matches_quadrature(name, t, d, s):
    """MC estimate of M_t within 4 standard errors of the 1-D quadrature (whose own error,
    from a 4x finer grid and 3x the nodes, is < 1e-5); z-scores seen: |z| < 1.5."""
    sch = SCHEDULES[name]
    spec = ([-d, d], [s, s], [0.5, 0.5])
    ref = quadrature_local_error(*spec, sch, t)
    e = local_error(gmm1d(*spec), sch, t, generator=gen(), n=100_000)
    assert abs(e.value - ref) < 4 * e.stderr + 1e-6, (e, ref)
    # planted: the quadrature with beta_t x 0.8 differs by > 4 standard errors (4.9 to 900)
    planted = quadrature_local_error(*spec, perturbed(sch, t, 0.8), t)
    assert abs(e.value - planted) > 4 * e.stderr + 1e-6, (e, planted)
    # the same problem embedded in 2-D along a rotated axis, with an independent N(0, 1)
    # second coordinate: the posterior factorises and M_t is unchanged
    c, sn = math.cos(1.1), math.sin(1.1)
    R = torch.tensor([[c, -sn], [sn, c]], dtype=F64)
    means = torch.tensor([[-d, 0.0], [d, 0.0]], dtype=F64) @ R.T
    covs = (R @ torch.diag(torch.tensor([s**2, 1.0], dtype=F64)) @ R.T).expand(2, 2, 2)
    g2 = GaussianMixture.from_covariances(means, covs)
    e2 = local_error(g2, sch, t, generator=gen(), n=20000)
    assert abs(e2.value - ref) < 4 * e2.stderr + 1e-6, (e2, ref)


@pytest.mark.parametrize("name,t,d,s", [QUAD_CASES[3], QUAD_CASES[6]])
def test_local_error_is_additive_over_independent_coordinates(name, t, d, s):
    """Data = product of two copies of the 1-D mixture (a 4-component GMM in 2-D): the
    posterior factorises, so M_t is twice the 1-D quadrature. With D free, a product of D
    copies gives D times M_t at every t, which is the only way we found for M_t (t >= 2)
    to exceed a given N: by growing the dimension, not the mode separation."""
    sch = SCHEDULES[name]
    ref = quadrature_local_error([-d, d], [s, s], [0.5, 0.5], sch, t)
    means = torch.tensor([[i, j] for i in (-d, d) for j in (-d, d)], dtype=F64)
    g = GaussianMixture.from_covariances(means, (s**2 * torch.eye(2, dtype=F64)).expand(4, 2, 2))
    e = local_error(g, sch, t, generator=gen(), n=50_000)
    assert abs(e.value - 2 * ref) < 4 * e.stderr + 1e-6, (e, 2 * ref)


def test_thm31_holds_at_t1_m1_grows_without_bound():
    """t = 1: two data modes at distance sqrt(beta_1 / alpha_1) whose width s -> 0. The
    posterior q(x_0 | x_1) tends to two atoms, and M_1 grows like log(1/s) without bound
    (the same numbers for every schedule, by scale invariance)."""
    for name in SCHEDULES:
        sch = SCHEDULES[name]
        b1 = float(sch.betas[0])
        sep = math.sqrt(b1 / (1 - b1))
        vals = [
            local_error(two_modes(sep / 2, r * sep), sch, 1, generator=gen(), n=20000).value
            for r in (1e-1, 1e-2, 1e-3, 1e-4)
        ]
        steps = np.diff(vals)
        assert np.all(steps > 0.9 * math.log(10)) and np.all(steps < 1.1 * math.log(10)), vals
        assert vals[-1] > 7.0, vals


SEP_CASES = [("cos2", 2), ("cos5", 2), ("cos5", 3), ("cos5", 5), ("lin1000", 2), ("lin1000", 500)]


@pytest.mark.parametrize("name,t", SEP_CASES)
def test_thm31_fails_at_t_ge_2_along_growing_separation(name, t):
    """t >= 2: along modes +-d with growing d, M_t (best Gaussian kernel; also sigma_t fixed
    to beta_t) stays under local_error_bound, which does not depend on the data, and goes
    to 0 once the modes separate in x_t. What does grow without bound is the pointwise KL at
    the decision boundary x_t = 0 (a sup over x_t, not Eq. 8's expectation)."""
    sch = SCHEDULES[name]
    beta = float(sch.betas[t - 1])
    bound, bound_fixed = local_error_bound(sch, t, 1), local_error_bound(sch, t, 1, beta)
    ds = (0.5, 2.0, 8.0, 32.0, 128.0, 512.0, 4096.0)
    mt = [local_error(two_modes(d), sch, t, generator=gen(), n=10000) for d in ds]
    for e in mt:
        assert e.value < bound + 4 * e.stderr, (e, bound)
    assert mt[-1].value < 1e-3, mt[-1]
    for d in (2.0, 32.0, 512.0):
        e = local_error(two_modes(d), sch, t, generator=gen(), n=10000, variance=beta)
        assert e.value < bound_fixed + 4 * e.stderr, (e, bound_fixed)
        e = local_error(two_modes(d), sch, t, generator=gen(), n=10000, variance="isotropic")
        assert e.value < bound + 4 * e.stderr, (e, bound)
    x0 = torch.zeros(1, 1, dtype=F64)
    sup = [
        float(posterior_kl(two_modes(d), sch, t, x0, generator=gen(), n=4000)[0][0])
        for d in (64.0, 512.0, 4096.0)
    ]
    assert sup[-1] > bound and np.all(np.diff(sup) > 0.9 * math.log(8)), (sup, bound)


def test_local_error_bound_values():
    """The bound's closed form against alpha-bar from the product of (1 - beta)."""
    sch = SCHEDULES["cos5"]
    b = sch.betas.numpy()
    t = 3
    ab_prev, a = np.prod(1 - b[:2]), 1 - b[2]
    ref = 0.5 * 2 * math.log((1 - ab_prev * a) / (a * (1 - ab_prev)))
    assert abs(local_error_bound(sch, t, 2) - ref) < 1e-12
    bt = b[2] * (1 - ab_prev) / (1 - ab_prev * a)
    assert abs(local_error_bound(sch, t, 2, bt) - (math.log(1) + b[2] / (a * bt) - 1)) < 1e-12
    assert local_error_bound(sch, 1, 2) == math.inf


# -- global error E (Def. 3.2) -----------------------------------------------------------


def test_global_error_of_a_single_gaussian():
    """One Gaussian N(mu, s^2) in 1-D: E = KL(q(x_T) || N(0, 1)) + sum_t M_t with M_t = 0 for
    the moment kernel and the closed-form Gaussian KL for sigma_t = beta_t; q(x_T) =
    N(c_T mu, c_T^2 s^2 + noise) from the iterated Eq. 1."""
    sch = SCHEDULES["cos5"]
    mu, s = 3.0, 0.5
    g = gmm1d([mu], [s])
    c, A = chain_coefficients(sch.betas, sch.T)
    m_T, v_T = c[-1] * mu, c[-1] ** 2 * s**2 + (A[-1] ** 2).sum()
    prior = 0.5 * (v_T + m_T**2 - 1 - math.log(v_T))
    e = global_error(g, sch, generator=gen(), n=20000)
    assert abs(e.value - prior) < 4 * e.stderr, (e.value, e.stderr, prior)
    assert all(abs(m.value) < 1e-10 for m in e.local)
    e_fixed = global_error(g, sch, generator=gen(), n=20000, variance=sch.betas)
    x0 = torch.zeros(1, 1, dtype=F64)
    locals_ref = [
        gaussian_kl_iso(conditioned_reference(g, sch, t, x0)[2][0].numpy(), float(sch.betas[t - 1]))
        for t in range(1, sch.T + 1)
    ]
    for m, ref in zip(e_fixed.local, locals_ref):
        assert abs(m.value - ref) < 1e-9 * max(1.0, ref), (m, ref)
    assert abs(e_fixed.value - prior - sum(locals_ref)) < 4 * e_fixed.stderr
    # the prior term alone is unbounded: no mixture is needed for E > N
    far = global_error(gmm1d([1e3], [s]), sch, generator=gen(), n=2000)
    assert far.value > 0.5 * (c[-1] * 1e3) ** 2 * 0.99


def test_global_error_grows_with_m1():
    """E >= M_1, so the t = 1 family of the M_1 test also drives E without bound."""
    sch = SCHEDULES["cos2"]
    b1 = float(sch.betas[0])
    sep = math.sqrt(b1 / (1 - b1))
    vals = [
        global_error(two_modes(sep / 2, r * sep), sch, generator=gen(), n=20000)
        for r in (1e-2, 1e-4)
    ]
    assert vals[1].value - vals[0].value > 0.9 * 2 * math.log(10), [v.value for v in vals]
