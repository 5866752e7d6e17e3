"""GM-DDPM paper, Sec. 3.1-3.2 and App. A.3: the forward process with mixture offsets
(Eqs. 1-4, 21-24), the posterior q(x_{t-1} | x_t, x_0, i_{1:t}) (Eqs. 29-30) and the eps
parameterisation (Eqs. 8-9, 35-36), in float64, against computations made here
independently of gmdiff.analytic.gm_ddpm:

(0) gamma_{t,j}, gamma_t against their product definitions (Eq. 3) and 1 - alpha_bar_t;
    one noise step against Eq. 1 (chi-square of the component counts, KS);
(a) the chain x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps_t simulated step by step
    (Eq. 2) against the closed-form q(x_t | x_0): z-scores of the mean and variance of
    the projections on u and across it, their correlation, a KS test and a chi-square of
    binned counts of the projection on u, at several t of T = 5, 50 and 1000;
(b) the posterior mean and variance against exact conditioning of the joint Gaussian of
    (x_0, ..., x_t) given x_0 and the path, built by iterating Eq. 2 (no gamma), and
    against the simulated pairs (x_{t-1}, x_t) (residual z-scores and KS); Eq. 9 with the
    chain's own eps;
(c) planted errors (gamma recursions without alpha or with alpha one step off, gamma_t
    without alpha, offsets weighted by gamma_{t,j} instead of its root, the other reading
    of the offset direction) make each check fail;
(d) each reading of the scalar means that a run config names (shared, unit, per-pixel:
    :data:`gmdiff.papers.gm_ddpm.READINGS`), drawn on image-shaped data by the training
    loss's one-shot draw, against its exact mean and covariance and its exact law.
"""

import functools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from gmdiff.analytic import gm_ddpm
from gmdiff.analytic.bridge import condition_gaussian
from gmdiff.noise import GM_DDPM_BASE, OffsetMixtureNoise
from gmdiff.schedules import DiscreteVP

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64

EXACT_TOL = 1e-9  # identities in float64 (errors seen ~1e-15)
Z_TOL = 4.5  # |z| of a moment residual under the null; a planted error must exceed it
KS_TOL = 1.95  # sqrt(n) * KS statistic; P(exceed) ~ 0.001 under the null
CHI2_P = 1e-4  # a chi-square p-value below this fails
N_SIM = 40_000  # simulated chains per (schedule, noise)

SCHEDULES = {
    "T5": DiscreteVP(torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=F64)),
    "lin50": DiscreteVP.linear(50, 1e-3, 0.1),
    "lin1000": DiscreteVP.linear(1000),
}
NOISES = {
    "paper": OffsetMixtureNoise(1.0),  # Sec. 4.1's mu_base and omega, lambda = 1
    "skew": OffsetMixtureNoise(0.7, GM_DDPM_BASE, (0.1, 0.4, 0.05, 0.2, 0.05, 0.15, 0.05)),
    "unit": OffsetMixtureNoise(1.0, direction="unit"),
    "coord": OffsetMixtureNoise(1.0, per_coordinate=True),
}
X0 = torch.tensor([0.7, -1.2], dtype=F64)
MARGINAL_CASES = (
    [("T5", "paper", t) for t in range(1, 6)]
    + [("T5", "skew", t) for t in (1, 3, 5)]
    + [("T5", "unit", 3)]
    + [("lin50", "paper", t) for t in (2, 25, 50)]
    + [("lin50", "skew", 50)]
    + [("lin1000", "paper", t) for t in (1, 100, 1000)]
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- independent references ----------------------------------------------------------------


def gamma_by_products(betas: torch.Tensor) -> np.ndarray:
    """gamma_{t,j} = beta_j prod_{k=j+1}^t (1 - beta_k), Eq. 3: one product per entry for
    T <= 50, else beta_j exp(L_t - L_j) with L the cumulative sum of log(1 - beta)."""
    b = betas.tolist()
    T = len(b)
    if T > 50:
        L = np.concatenate([[0.0], np.cumsum(np.log1p(-np.array(b)))])
        G = np.array(b)[None, :] * np.exp(L[:, None] - L[None, 1:])
        return np.hstack([np.zeros((T + 1, 1)), np.tril(G, -1)])
    G = np.zeros((T + 1, T + 1))
    for t in range(1, T + 1):
        for j in range(1, t + 1):
            G[t, j] = b[j - 1] * math.prod(1.0 - b[k - 1] for k in range(j + 1, t + 1))
    return G


@functools.cache
def chain(sched: str, noise: str, n: int = N_SIM, seed: int = 0):
    """Eq. 2 step by step from x_0 = X0: the states x_t (n, 2) by t, kept at every step
    for T <= 50, else at the steps the tests use; the
    paths (n, T[, dim]); and the Gaussian part g_t of each state (the same chain with no
    offsets and x_0 = 0), whose eps is g_t / sqrt(1 - alpha_bar_t)."""
    s, nz = SCHEDULES[sched], NOISES[noise]
    g = gen(seed)
    x0 = X0
    x = x0.expand(n, 2).clone()
    gauss = torch.zeros_like(x)
    keep = set(range(s.T + 1)) if s.T <= 50 else {0, 1, 2, 99, 100, 499, 500, 999, 1000}
    xs, gs, paths = {0: x}, {0: gauss}, []
    for t in range(1, s.T + 1):
        b = float(s.betas[t - 1])
        eps, i = nz.step(x, g)
        z = eps - nz.offset(i, x)  # the Gaussian part of this step's noise
        x = math.sqrt(1 - b) * x + math.sqrt(b) * eps
        gauss = math.sqrt(1 - b) * gauss + math.sqrt(b) * z
        paths.append(i)
        if t in keep:
            xs[t], gs[t] = x, gauss
    return x0, xs, gs, torch.stack(paths, 1)


def projection_law(m: gm_ddpm.OffsetMarginal):
    """The 1-D law of x_t . u_hat: atoms (means, variances, weights), from the law of the
    offset sum and Eq. 4 (the mean sqrt(ab_t) x_0 is read off the marginal's mean)."""
    u = m.direction
    uh = u / u.norm()
    S = m.offsets
    base = float(m.mean @ uh) - float(S.mean()) * float(u.norm())
    return base + S.values * u.norm(), m.noise_std**2 + S.spread * u.norm() ** 2, S.weights


def mixture_cdf(y: torch.Tensor, law) -> torch.Tensor:
    mu, var, w = law
    sd = var.sqrt()
    out = [(w * torch.special.ndtr((c[:, None] - mu) / sd)).sum(1) for c in y.split(2000)]
    return torch.cat(out)


def mixture_moments(law):
    """mean, variance and 4th central moment of a 1-D Gaussian mixture."""
    mu, var, w = law
    m = (w * mu).sum()
    d = mu - m
    v = (w * (var + d**2)).sum()
    m4 = (w * (d**4 + 6 * d**2 * var + 3 * var**2)).sum()
    return float(m), float(v), float(m4)


def distribution_check(x: torch.Tensor, m: gm_ddpm.OffsetMarginal) -> dict[str, float]:
    """Statistics of simulated x_t (n, D) against q(x_t | x_0), each divided by its
    tolerance (the check passes when all are <= 1)."""
    n = x.shape[0]
    u = m.direction
    uh = u / u.norm()
    y = x @ uh
    law = projection_law(m)
    mean, var, m4 = mixture_moments(law)
    out = {
        "z_mean_u": (float(y.mean()) - mean) / math.sqrt(var / n) / Z_TOL,
        "z_var_u": (float(y.var()) - var) / math.sqrt((m4 - var**2) / n) / Z_TOL,
    }
    if x.shape[1] == 2:  # across u: N(sqrt(ab_t) x_0 . w, gamma_t)
        w = torch.tensor([-float(uh[1]), float(uh[0])], dtype=F64)
        yp, v = x @ w, m.noise_std**2
        out["z_mean_perp"] = (float(yp.mean()) - float(m.mean @ w)) / math.sqrt(v / n) / Z_TOL
        out["z_var_perp"] = (float(yp.var()) - v) / math.sqrt(2 * v**2 / n) / Z_TOL
        out["z_corr"] = math.sqrt(n) * float(np.corrcoef(y, yp)[0, 1]) / Z_TOL
    ys, _ = torch.sort(y)
    F = mixture_cdf(ys, law)
    k = torch.arange(1, n + 1, dtype=F64)
    out["ks_u"] = math.sqrt(n) * float(torch.maximum(k / n - F, F - (k - 1) / n).max()) / KS_TOL
    edges = mean + math.sqrt(var) * torch.tensor(stats.norm.ppf(np.arange(1, 20) / 20))
    cdf = torch.cat([torch.zeros(1, dtype=F64), mixture_cdf(edges, law), torch.ones(1, dtype=F64)])
    expected = n * torch.diff(cdf)
    observed = torch.bincount(torch.bucketize(y, edges), minlength=20).to(F64)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    out["chi2_u"] = math.log(stats.chi2.sf(chi2, 19) + 1e-300) / math.log(CHI2_P)
    return out


def worst(res: dict[str, float]) -> float:
    return max(abs(v) for v in res.values())


# -- planted errors ----------------------------------------------------------------------


TRUE_GAMMA_MATRIX = gm_ddpm.gamma_matrix


def _gamma_no_alpha(schedule):  # gamma_{t,j} = gamma_{t-1,j}: the alpha factor dropped
    G = TRUE_GAMMA_MATRIX(schedule)
    for t in range(1, G.shape[0]):
        G[t, 1:t] = G[t - 1, 1:t]
    return G


def _gamma_alpha_off_by_one(schedule):  # gamma_{t,j} = alpha_{t-1} gamma_{t-1,j}
    b = schedule.betas.to(F64)
    G = torch.zeros(len(b) + 1, len(b) + 1, dtype=F64)
    for t in range(1, len(b) + 1):
        a_prev = 1.0 - float(b[t - 2]) if t >= 2 else 1.0
        G[t, :t] = a_prev * G[t - 1, :t]
        G[t, t] = b[t - 1]
    return G


def _gamma_total_no_alpha(schedule):  # gamma_t = beta_t + gamma_{t-1}
    return torch.cat([torch.zeros(1, dtype=F64), schedule.betas.to(F64).cumsum(0)])


def _offsets_by_gamma(schedule, t):  # gamma_{t,j} where Eq. 3 has sqrt(gamma_{t,j})
    return TRUE_GAMMA_MATRIX(schedule)[t, 1 : t + 1]


PLANTS = {
    "gamma_no_alpha": ("gamma_matrix", _gamma_no_alpha),
    "gamma_alpha_off_by_one": ("gamma_matrix", _gamma_alpha_off_by_one),
    "gamma_total_no_alpha": ("gamma_total", _gamma_total_no_alpha),
    "offsets_by_gamma": ("offset_coefficients", _offsets_by_gamma),
}


@pytest.fixture
def plant(monkeypatch):
    def apply(name: str):
        attr, fn = PLANTS[name]
        monkeypatch.setattr(gm_ddpm, attr, fn)

    return apply


# -- (0) gammas and one noise step -----------------------------------------------------------


@pytest.mark.parametrize("sched", list(SCHEDULES))
def test_gamma_recursions_match_products_and_one_minus_alpha_bar(sched):
    s = SCHEDULES[sched]
    G, g = gm_ddpm.gamma_matrix(s).numpy(), gm_ddpm.gamma_total(s).numpy()
    np.testing.assert_allclose(G, gamma_by_products(s.betas), rtol=1e-10, atol=0)
    one_minus_ab = 1.0 - np.cumprod(np.concatenate([[1.0], 1.0 - s.betas.numpy()]))
    np.testing.assert_allclose(g, one_minus_ab, rtol=1e-10, atol=1e-15)  # Eq. 24
    np.testing.assert_allclose(G.sum(1), g, rtol=1e-10, atol=1e-15)  # gamma_t = sum_j
    a = 1.0 - s.betas.numpy()
    below = np.tri(s.T - 1) > 0  # j < t  # gamma_{t,j} = alpha_t gamma_{t-1,j}, Eq. 24
    np.testing.assert_allclose(G[2:, 1:-1] * below, a[1:, None] * G[1:-1, 1:-1] * below)
    np.testing.assert_allclose(np.diag(G)[1:], s.betas.numpy())  # gamma_{t,t} = beta_t
    coef = gm_ddpm.offset_coefficients(s, s.T).numpy()
    np.testing.assert_allclose(coef**2, G[s.T, 1:], rtol=1e-12)


@pytest.mark.parametrize("name", ["gamma_no_alpha", "gamma_alpha_off_by_one"])
def test_gamma_check_catches_planted_recursions(name):
    s = SCHEDULES["T5"]
    bad = PLANTS[name][1](s).numpy()
    assert np.abs(bad - gamma_by_products(s.betas)).max() > 1e-3
    assert np.abs(_gamma_total_no_alpha(s).numpy() - gm_ddpm.gamma_total(s).numpy()).max() > 0.5


def one_step_check(eps, i, nz: OffsetMixtureNoise) -> dict[str, float]:
    n = eps.shape[0]
    counts = torch.bincount(i, minlength=nz.K).to(F64)
    chi2 = float(((counts - n * nz.probs) ** 2 / (n * nz.probs)).sum())
    z = (eps - nz.offset(i, eps)).reshape(-1)  # Eq. 1: N(mu_i, I) given i
    uh = nz.unit_vector(eps) / nz.unit_vector(eps).norm()
    y, _ = torch.sort(eps @ uh)  # Eq. 1 along u: sum_k omega_k N(c_k |u|, 1)
    law = (nz.values * nz.unit_vector(eps).norm(), torch.ones(nz.K, dtype=F64), nz.probs)
    F = mixture_cdf(y, law)
    k = torch.arange(1, n + 1, dtype=F64)
    return {
        "chi2_counts": math.log(stats.chi2.sf(chi2, nz.K - 1) + 1e-300) / math.log(CHI2_P),
        "ks_gauss": math.sqrt(z.numel()) * stats.kstest(z.numpy(), "norm").statistic / KS_TOL,
        "ks_u": math.sqrt(n) * float(torch.maximum(k / n - F, F - (k - 1) / n).max()) / KS_TOL,
    }


def test_one_noise_step_is_eq1():
    nz = NOISES["paper"]
    eps, i = nz.step(torch.zeros(N_SIM, 2, dtype=F64), gen(1))
    assert i.shape == (N_SIM,) and eps.shape == (N_SIM, 2)
    res = one_step_check(eps, i, nz)
    assert worst(res) <= 1, res
    # a different omega or lambda fails the same check
    off = OffsetMixtureNoise(1.0, GM_DDPM_BASE, (0.37, 0.16, 0.16, 0.1, 0.1, 0.055, 0.055))
    assert one_step_check(eps, i, off)["chi2_counts"] > 1
    assert one_step_check(eps, i, OffsetMixtureNoise(1.1))["ks_u"] > 1


# -- (a) the closed-form marginal against the simulated chain ----------------------------------


@pytest.mark.parametrize("sched,noise,t", MARGINAL_CASES)
def test_marginal_matches_simulated_chain(sched, noise, t):
    x0, xs, _, _ = chain(sched, noise)
    m = gm_ddpm.marginal(x0, t, SCHEDULES[sched], NOISES[noise])
    res = distribution_check(xs[t], m)
    assert worst(res) <= 1, res


# Planted errors and the simulated cases where they move q(x_t | x_0) by more than the
# Monte Carlo resolves (N_SIM = 40000: about 1% in a variance). Where the planted formula
# agrees with the true one (gamma recursions at t = 1) or differs by less (gamma_{2,1} =
# alpha_1 beta_1 vs alpha_2 beta_1; alpha one step off on a T = 50 or 1000 schedule), the
# exact checks below (conditioning, gamma products) catch it instead.
PLANTED_MARGINAL = (
    [("offsets_by_gamma", c) for c in MARGINAL_CASES]
    + [
        (p, c)
        for p in ("gamma_no_alpha", "gamma_total_no_alpha")
        for c in MARGINAL_CASES
        if c[2] >= 3 and c[:2] != ("lin1000", "paper") or c == ("lin1000", "paper", 1000)
    ]
    + [("gamma_alpha_off_by_one", c) for c in MARGINAL_CASES if c[0] == "T5" and c[2] >= 4]
)


def _ids(cases):
    return ["-".join(str(v) for v in (p, *c)) for p, c in cases]


@pytest.mark.parametrize("planted,case", PLANTED_MARGINAL, ids=_ids(PLANTED_MARGINAL))
def test_marginal_check_catches_planted_errors(planted, case, plant):
    sched, noise, t = case
    x0, xs, _, _ = chain(sched, noise)
    plant(planted)
    # a coarse grouping is enough to see the error (and keeps the planted sums small)
    m = gm_ddpm.marginal(x0, t, SCHEDULES[sched], NOISES[noise], resolution=0.1)
    res = distribution_check(xs[t], m)
    assert worst(res) > 1, res


@pytest.mark.parametrize("t", [1, 3, 5])
def test_marginal_check_tells_the_offset_readings_apart(t):
    """The chain with u = 1 against the closed form with u = 1 / sqrt(D), and the
    per-coordinate chain against the vector closed form: both fail."""
    s = SCHEDULES["T5"]
    x0, xs, _, _ = chain("T5", "paper")
    assert worst(distribution_check(xs[t], gm_ddpm.marginal(x0, t, s, NOISES["unit"]))) > 1
    x0, xs, _, _ = chain("T5", "coord")
    assert worst(distribution_check(xs[t], gm_ddpm.marginal(x0, t, s, NOISES["paper"]))) > 1


@pytest.mark.parametrize("t", [1, 3, 5])
def test_per_coordinate_reading_has_independent_1d_marginals(t):
    x0, xs, _, _ = chain("T5", "coord")
    nz = NOISES["coord"]
    for d in range(2):
        m = gm_ddpm.marginal(x0[d : d + 1], t, SCHEDULES["T5"], nz)
        res = distribution_check(xs[t][:, d : d + 1], m)
        assert worst(res) <= 1, (d, res)
    corr = float(np.corrcoef(xs[t][:, 0], xs[t][:, 1])[0, 1])
    assert abs(math.sqrt(N_SIM) * corr) < Z_TOL
    # the vector reading correlates the coordinates: Var(S) / (Var(S) + gamma_t)
    _, xv, _, _ = chain("T5", "paper")
    m = gm_ddpm.marginal(X0, t, SCHEDULES["T5"], NOISES["paper"])
    rho = float(m.offsets.var() / (m.offsets.var() + m.noise_std**2))
    assert abs(float(np.corrcoef(xv[t][:, 0], xv[t][:, 1])[0, 1]) - rho) < Z_TOL / math.sqrt(N_SIM)


@pytest.mark.parametrize("sched,t", [("T5", 1), ("T5", 5), ("lin1000", 2), ("lin1000", 1000)])
@pytest.mark.parametrize("noise", ["paper", "skew", "unit"])
def test_marginal_moments_density_and_sampler(sched, t, noise):
    """Mean and covariance from Eq. 3 with product gammas; the GaussianMixture density
    against the 1-D projection law times the Gaussian across u; the one-shot sampler
    (Alg. 1, lines 3-4) against the same closed form."""
    s, nz = SCHEDULES[sched], NOISES[noise]
    m = gm_ddpm.marginal(X0, t, s, nz)
    ab = float(torch.cumprod(1 - s.betas, 0)[t - 1])
    G = gamma_by_products(s.betas[:t])[t, 1:]
    ec, vc = float((nz.probs * nz.values).sum()), float((nz.probs * nz.values**2).sum())
    vc -= ec**2
    u = nz.unit_vector(X0[None])
    mean = math.sqrt(ab) * X0 + ec * np.sqrt(G).sum() * u
    cov = (1 - ab) * torch.eye(2, dtype=F64) + vc * G.sum() * torch.outer(u, u)
    torch.testing.assert_close(m.mean, mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.cov, cov, rtol=1e-10, atol=1e-12)
    x = m.mean + 2.0 * torch.randn(50, 2, dtype=F64, generator=gen(2))
    uh = u / u.norm()
    w = torch.tensor([-float(uh[1]), float(uh[0])], dtype=F64)
    mu, var, wt = projection_law(m)
    log_u = torch.logsumexp(
        wt.log() - 0.5 * ((x @ uh)[:, None] - mu) ** 2 / var - 0.5 * torch.log(2 * math.pi * var), 1
    )
    log_w = stats.norm.logpdf((x @ w).numpy(), float(m.mean @ w), m.noise_std)
    ref = log_u + torch.as_tensor(log_w)
    torch.testing.assert_close(m.log_prob(x), ref, rtol=1e-10, atol=1e-10)
    n = N_SIM if t <= 50 else N_SIM // 4  # paths (n, t) of int64
    xt, eps, paths = gm_ddpm.sample_marginal(X0.expand(n, 2), t, s, nz, gen(3))
    assert paths.shape == (n, t) and (paths >= 0).all()
    assert worst(distribution_check(xt, m)) <= 1


@pytest.mark.parametrize("sched,t", [("T5", 3), ("T5", 5), ("lin1000", 3), ("lin1000", 5)])
def test_grouped_marginal_matches_the_exact_path_mixture(sched, t):
    """resolution > 0 (atoms within 0.02 sqrt(gamma_t) merged) against resolution = 0
    (every distinct path sum): same mean and covariance, densities within 1e-6 in L1."""
    s, nz = SCHEDULES[sched], NOISES["paper"]
    exact = gm_ddpm.marginal(X0, t, s, nz, resolution=0)
    grouped = gm_ddpm.marginal(X0, t, s, nz)
    assert exact.offsets.exact and not grouped.offsets.exact
    assert len(grouped.offsets.values) < len(exact.offsets.values) <= nz.K**t
    torch.testing.assert_close(grouped.mean, exact.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grouped.cov, exact.cov, rtol=1e-12, atol=1e-12)
    u = exact.direction / exact.direction.norm()
    half = 6 * math.sqrt(float(exact.cov.max()))
    y = float(exact.mean @ u) + half * torch.linspace(-1, 1, 801, dtype=F64)
    pts = y[:, None] * u[None] + (X0 - (X0 @ u) * u)[None] * math.sqrt(float(s.alpha_bar[t]))
    f_e, f_g = exact.log_prob(pts).exp(), grouped.log_prob(pts).exp()
    # along the line the Gaussian across u sits at its mode: divide it out
    scale = math.sqrt(2 * math.pi) * exact.noise_std
    l1 = float((f_e - f_g).abs().sum() * (y[1] - y[0]) * scale)
    assert l1 < 1e-6, l1


# -- (b) the posterior of Eqs. 29-30 and the eps parameterisation of Eq. 9 ------------------------


def joint_chain_gaussian(betas: torch.Tensor, t: int, x0: float, offsets: torch.Tensor):
    """Mean and covariance of (x_0, ..., x_t) for one coordinate given x_0 and the
    offsets mu_{i_s} (s = 1..t) along the path, by writing Eq. 2 as
    (I - A) y = e_0 x_0 + sqrt(beta) (offsets + z) and inverting (no gamma)."""
    b = betas[:t].to(F64)
    A = torch.zeros(t + 1, t + 1, dtype=F64)
    A[torch.arange(1, t + 1), torch.arange(t)] = (1 - b).sqrt()
    Minv = torch.linalg.inv(torch.eye(t + 1, dtype=F64) - A)
    c = torch.cat([torch.tensor([x0], dtype=F64), b.sqrt() * offsets])
    N = torch.diag(torch.cat([torch.zeros(1, dtype=F64), b.sqrt()]))
    return Minv @ c, Minv @ N @ N.T @ Minv.T


def conditioned_reference(s, nz, t, x0, x_t, paths):
    """E and Var of x_{t-1} given x_t, x_0 and the path, coordinate by coordinate."""
    B, D = x_t.shape
    mean, var = torch.empty(B, D, dtype=F64), torch.empty(B, D, dtype=F64)
    for bi in range(B):
        mu = torch.stack([nz.offset(paths[bi : bi + 1, j], x_t[bi : bi + 1])[0] for j in range(t)])
        for d in range(D):
            m, C = joint_chain_gaussian(s.betas, t, float(x0[d]), mu[:, d])
            cm, cv = condition_gaussian(m, C, [t - 1], [t], x_t[bi : bi + 1, d : d + 1])
            mean[bi, d], var[bi, d] = cm[0, 0], cv[0, 0]
    return mean, var


POSTERIOR_CASES = (
    [("T5", nz, t) for nz in ("paper", "skew", "coord") for t in range(1, 6)]
    + [("lin1000", "paper", t) for t in (1, 2, 500, 1000)]
    + [("lin1000", "skew", 100)]
)


def posterior_inputs(sched, noise, t, B=4, seed=5):
    s, nz = SCHEDULES[sched], NOISES[noise]
    g = gen(seed)
    like = torch.zeros(B, 2, dtype=F64)
    paths = torch.stack([nz.draw(like, g) for _ in range(t)], 1)
    x_t = 2.0 * torch.randn(B, 2, dtype=F64, generator=g)
    return s, nz, paths, x_t


def posterior_errors(sched, noise, t):
    s, nz, paths, x_t = posterior_inputs(sched, noise, t)
    mean, var = gm_ddpm.posterior(x_t, X0, t, paths, s, nz)
    ref_m, ref_v = conditioned_reference(s, nz, t, X0, x_t, paths)
    return float((mean - ref_m).abs().max()), float((var - ref_v).abs().max())


@pytest.mark.parametrize("sched,noise,t", POSTERIOR_CASES)
def test_posterior_is_exact_conditioning_of_the_joint_gaussian(sched, noise, t):
    err_m, err_v = posterior_errors(sched, noise, t)
    assert err_m < EXACT_TOL and err_v < EXACT_TOL, (err_m, err_v)


@pytest.mark.parametrize(
    "planted,sched,noise,t",
    [
        (p, *c)
        for p in PLANTS
        for c in POSTERIOR_CASES
        if c[2] >= (2 if p == "offsets_by_gamma" else 3)
    ],
)
def test_conditioning_check_catches_planted_errors(planted, sched, noise, t, plant):
    """Every planted error, wherever it changes the formula: gamma_{t-1,j} and gamma_{t-1}
    differ from the truth from t - 1 = 2 on, the offset weights from t - 1 = 1 on."""
    plant(planted)
    err_m, err_v = posterior_errors(sched, noise, t)
    assert max(err_m, err_v) > 1e3 * EXACT_TOL, (err_m, err_v)


def eps_mean_error(sched, noise, t):
    """Eq. 9 with the simulated chain's own eps (its Gaussian part over sqrt(1 - ab_t))
    against the conditioned posterior mean."""
    s, nz = SCHEDULES[sched], NOISES[noise]
    x0, xs, gs, paths = chain(sched, noise, n=6, seed=7)
    eps = gs[t] / math.sqrt(1 - float(torch.cumprod(1 - s.betas, 0)[t - 1]))
    mean = gm_ddpm.mean_from_eps(xs[t], eps, t, paths[:, t - 1], s, nz)
    ref, _ = conditioned_reference(s, nz, t, x0, xs[t], paths)
    return float((mean - ref).abs().max())


@pytest.mark.parametrize(
    "sched,noise,t",
    [c for c in POSTERIOR_CASES if c[0] == "T5"] + [("lin1000", "paper", t) for t in (2, 1000)],
)
def test_eps_parameterisation_gives_the_posterior_mean(sched, noise, t):
    assert eps_mean_error(sched, noise, t) < EXACT_TOL


@pytest.mark.parametrize("sched,noise,t", [("T5", "paper", t) for t in range(2, 6)])
def test_eps_check_catches_planted_gamma_total(sched, noise, t, plant):
    plant("gamma_total_no_alpha")
    assert eps_mean_error(sched, noise, t) > 1e3 * EXACT_TOL


def simulation_check(sched, noise, t) -> dict[str, float]:
    """Residuals r = x_{t-1} - mean(x_t, x_0, i_{1:t}) of the simulated pairs: N(0, var)
    independently of x_t. z-scores of E[r], E[r^2] - var and corr(r, x_t), and sqrt(n) KS
    of r / sqrt(var), per coordinate, each divided by its tolerance."""
    s, nz = SCHEDULES[sched], NOISES[noise]
    x0, xs, _, paths = chain(sched, noise)
    mean, var = gm_ddpm.posterior(xs[t], x0, t, paths, s, nz)
    r = xs[t - 1] - mean
    n = r.shape[0]
    out = {}
    for d in range(r.shape[1]):
        rd = r[:, d]
        out[f"z_mean{d}"] = float(rd.mean()) / math.sqrt(var / n) / Z_TOL
        out[f"z_var{d}"] = (float((rd**2).mean()) - var) / math.sqrt(2 * var**2 / n) / Z_TOL
        out[f"z_corr{d}"] = math.sqrt(n) * float(np.corrcoef(rd, xs[t][:, d])[0, 1]) / Z_TOL
        ks = stats.kstest((rd / math.sqrt(var)).numpy(), "norm").statistic
        out[f"ks{d}"] = math.sqrt(n) * ks / KS_TOL
    return out


SIM_POSTERIOR_CASES = (
    [("T5", nz, t) for nz in ("paper", "skew", "coord") for t in range(2, 6)]
    + [("lin50", "paper", t) for t in (2, 25, 50)]
    + [("lin1000", "paper", t) for t in (2, 100, 500, 1000)]
)


@pytest.mark.parametrize("sched,noise,t", SIM_POSTERIOR_CASES)
def test_posterior_matches_simulated_pairs(sched, noise, t):
    res = simulation_check(sched, noise, t)
    assert worst(res) <= 1, res


def test_posterior_at_t1_is_x0():
    x0, xs, _, paths = chain("T5", "paper")
    mean, var = gm_ddpm.posterior(xs[1], x0, 1, paths, SCHEDULES["T5"], NOISES["paper"])
    assert var == 0 and float((mean - x0).abs().max()) < 1e-12


# As for the marginal: the cases where the planted error moves the posterior mean by more
# than the simulation resolves. A one-step posterior is dominated by x_t, so the gamma
# errors show only at the last steps of each schedule (t >= 4 of T = 5); the exact
# conditioning check catches every planted error at every t >= 3 (t >= 2 for the offsets).
PLANTED_SIM = (
    [("offsets_by_gamma", c) for c in SIM_POSTERIOR_CASES]
    + [("gamma_no_alpha", c) for c in SIM_POSTERIOR_CASES if c[2] in (5, 50, 1000)]
    + [
        ("gamma_total_no_alpha", c)
        for c in SIM_POSTERIOR_CASES
        if c[2] >= 4 and c[:2] != ("lin1000", "paper") or c[2] == 1000
    ]
    + [("gamma_alpha_off_by_one", ("T5", "skew", 5))]
)


@pytest.mark.parametrize("planted,case", PLANTED_SIM, ids=_ids(PLANTED_SIM))
def test_simulation_check_catches_planted_errors(planted, case, plant):
    plant(planted)
    res = simulation_check(*case)
    assert worst(res) > 1, res


# -- errata: the printed forms fail the checks the corrected ones pass --------------------------


@pytest.mark.parametrize("t", [3, 5])  # at t = 2, alpha_{t-1} = ab_{t-1}
def test_printed_eqs_29_30_and_the_eps_of_eq8_do_not_check_out(t):
    """Eq. 29 prints sqrt(alpha_{t-1}) x_0 for sqrt(ab_{t-1}) x_0; the third line of Eq. 30
    prints gamma_{t-1} sqrt(alpha_t) beta_t mu_{i_t} for gamma_{t-1} sqrt(alpha_t beta_t)
    mu_{i_t}; the text before Eq. 8 (and before Eq. 35) writes x_t = sqrt(alpha_t) x_0 + ...
    for sqrt(ab_t) x_0. Each printed form misses the conditioned mean by > 1e-3; the
    corrected ones (the library's) match it to float64 rounding."""
    s, nz, paths, x_t = posterior_inputs("T5", "skew", t)
    ref, _ = conditioned_reference(s, nz, t, X0, x_t, paths)
    beta, gp = float(s.betas[t - 1]), float(gm_ddpm.gamma_total(s)[t - 1])
    a, ab_prev = 1 - beta, float(s.alpha_bar[t - 1])
    mu_t = nz.offset(paths[:, t - 1], x_t)
    coef = gm_ddpm.offset_coefficients(s, t - 1)
    earlier = sum(coef[j] * nz.offset(paths[:, j], x_t) for j in range(t - 1))

    def eq30(x0_coef, mu_coef):
        num = gp * math.sqrt(a) * x_t - gp * mu_coef * mu_t + beta * (x0_coef * X0 + earlier)
        return num / (beta + a * gp)

    def err(m):
        return float((m - ref).abs().max())

    assert err(eq30(math.sqrt(ab_prev), math.sqrt(a * beta))) < EXACT_TOL
    assert err(eq30(math.sqrt(1 - float(s.betas[t - 2])), math.sqrt(a * beta))) > 1e-3  # Eq. 29
    assert err(eq30(math.sqrt(ab_prev), math.sqrt(a) * beta)) > 1e-3  # Eq. 30, third line
    x0, xs, gs, P = chain("T5", "skew", n=6, seed=7)
    ref, _ = conditioned_reference(s, nz, t, x0, xs[t], P)
    gt = float(gm_ddpm.gamma_total(s)[t])
    offsets = sum(
        c * nz.offset(P[:, j], xs[t]) for j, c in enumerate(gm_ddpm.offset_coefficients(s, t))
    )
    for x0_coef, ok in ((math.sqrt(float(s.alpha_bar[t])), True), (math.sqrt(a), False)):
        eps = (xs[t] - x0_coef * x0 - offsets) / math.sqrt(gt)
        e = err(gm_ddpm.mean_from_eps(xs[t], eps, t, P[:, t - 1], s, nz))
        assert (e < EXACT_TOL) if ok else (e > 1e-3), e


def test_printed_eq22_mean_does_not_check_out():
    """Eq. 22 prints the mean ab_t x_0 (no square root; Eq. 23 has it) and the first line of
    Eq. 21 x_t = sqrt(ab_t) x_{t-1} + ... (alpha_t meant): both miss the simulated mean."""
    x0, xs, _, _ = chain("T5", "paper")
    s = SCHEDULES["T5"]
    m = gm_ddpm.marginal(x0, 5, s, NOISES["paper"])
    se = torch.sqrt(torch.diagonal(m.cov) / N_SIM)
    ab = s.alpha_bar
    assert ((xs[5].mean(0) - m.mean).abs() / se).max() < Z_TOL
    assert ((xs[5].mean(0) - float(ab[5]) * x0).abs() / se).max() > 5 * Z_TOL
    eq21 = math.prod(math.sqrt(float(ab[k])) for k in range(1, 6)) * x0
    assert ((xs[5].mean(0) - eq21).abs() / se).max() > 5 * Z_TOL


# -- (d) the readings of the scalar means, as a run config names them ------------------------


def reading_noise(reading: str, lam: float = 1.0) -> OffsetMixtureNoise:
    """The forward noise of configs/gm_ddpm_toy.yaml under ``reading`` (the net config's)."""
    from gmdiff.config import load_config, run_file
    from gmdiff.nets import get_config
    from gmdiff.papers.gm_ddpm import READINGS

    sets = [*READINGS[reading], f"model.overrides.lam={lam}"]
    cfg = load_config(run_file("configs/gm_ddpm_toy.yaml"), sets)
    return get_config(cfg.model.net, **cfg.model.overrides).noise


X4 = torch.tensor([0.7, -1.2, 0.3, 1.5], dtype=F64).reshape(1, 1, 2, 2)  # one 2x2 "image"


def exact_moments(reading: str, t: int, sched: str) -> tuple[torch.Tensor, torch.Tensor]:
    """E and Cov of x_t given x_0 = X4 (flattened, D = 4) from Eq. 3 with product gammas and
    the means written out: shared mu_k = lam b_k (1, 1, 1, 1), unit mu_k = lam b_k / 2
    (1, 1, 1, 1); per-pixel: coordinate d gets its own lam b_{i_{j,d}}, independently."""
    s = SCHEDULES[sched]
    G = gamma_by_products(s.betas[:t])[t, 1:]
    ab = float(torch.cumprod(1 - s.betas.to(F64), 0)[t - 1])
    c = torch.tensor(GM_DDPM_BASE, dtype=F64)  # lam = 1
    w = torch.tensor((0.4, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05), dtype=F64)
    ec, vc = float((w * c).sum()), float((w * c**2).sum() - (w * c).sum() ** 2)
    u = torch.full((4,), 0.5 if reading == "unit" else 1.0, dtype=F64)
    mean = math.sqrt(ab) * X4.flatten() + ec * float(np.sqrt(G).sum()) * u
    spread = torch.diag(u * u) if reading == "per_pixel" else torch.outer(u, u)
    return mean, (1 - ab) * torch.eye(4, dtype=F64) + vc * float(G.sum()) * spread


def moment_z(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    """The largest |z| of the sample mean and of the sample covariance entries of x (n, D)
    against ``mean`` and ``cov`` (standard errors from the samples), divided by Z_TOL."""
    n = x.shape[0]
    z_mean = (x.mean(0) - mean) / torch.sqrt(torch.diagonal(cov) / n)
    xc = x - x.mean(0)
    prod = xc[:, :, None] * xc[:, None, :]  # (n, D, D)
    z_cov = (prod.mean(0) - cov) / (prod.std(0) / math.sqrt(n))
    return max(float(z_mean.abs().max()), float(z_cov.abs().max())) / Z_TOL


READING_CASES = [("T5", t) for t in (1, 3, 5)] + [("lin50", 25)]
OTHER_READING = {"shared": "per_pixel", "unit": "shared", "per_pixel": "shared"}


@pytest.mark.parametrize("sched,t", READING_CASES)
@pytest.mark.parametrize("reading", ["shared", "unit", "per_pixel"])
def test_each_reading_draws_its_exact_marginal(reading, sched, t):
    """x_t given x_0 drawn as the loss draws it (:func:`gm_ddpm.sample_marginal`) from 2x2
    images with the config's noise: the closed form has the exact mean and covariance of
    Eq. 3 (computed here from the means written out); the draws match those moments and
    the exact law (shared, unit: the mixture of Eq. 4 along u; per-pixel: an independent
    1-D mixture per coordinate); the other reading's covariance is rejected."""
    s, nz = SCHEDULES[sched], reading_noise(reading)
    assert nz.per_coordinate == (reading == "per_pixel")
    mean, cov = exact_moments(reading, t, sched)
    n = N_SIM if t <= 5 else N_SIM // 2
    xt, _eps, paths = gm_ddpm.sample_marginal(X4.expand(n, 1, 2, 2), t, s, nz, gen(11))
    x = xt.flatten(1)
    assert paths.shape == ((n, t, 1, 2, 2) if reading == "per_pixel" else (n, t))
    if reading == "per_pixel":
        for d in range(4):
            m = gm_ddpm.marginal(X4.flatten()[d : d + 1], t, s, nz)
            torch.testing.assert_close(m.mean, mean[d : d + 1], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(m.cov, cov[d : d + 1, d : d + 1], rtol=1e-10, atol=1e-12)
            res = distribution_check(x[:, d : d + 1], m)
            assert worst(res) <= 1, (d, res)
    else:
        m = gm_ddpm.marginal(X4.flatten(), t, s, nz)
        torch.testing.assert_close(m.mean, mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m.cov, cov, rtol=1e-10, atol=1e-12)
        res = distribution_check(x, m)  # along u
        assert worst(res) <= 1, res
    assert moment_z(x, mean, cov) <= 1
    _, wrong = exact_moments(OTHER_READING[reading], t, sched)
    assert moment_z(x, mean, wrong) > 1
