"""Independent references for the SMD paper's Sec. 3 (Li et al., Prop. 3.1, Defs. 3.1-3.2),
written without :mod:`gmdiff.analytic.ddpm_posterior`'s formulas, used by its unit tests
(``tests/test_smd_analytic.py``) and by the ``smd_theory`` chapter:

* :func:`chain_coefficients` / :func:`joint_per_component` / :func:`conditioned_reference`:
  Eq. 1 iterated step by step (no alpha-bar formula), the joint Gaussian of (x_{t-1}, x_t)
  per component and q(x_{t-1} | x_t) by Schur-complement conditioning and Bayes' rule;
* :func:`simulate_pairs` / :func:`simulation_check`: forward simulation of Eq. 1 and
  z-scores / a KS statistic of a posterior model on the simulated pairs (1-D data);
* :func:`quadrature_local_error`: M_t of 1-D mixture data by quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy.special import logsumexp, roots_hermite
from torch.distributions import MultivariateNormal

from gmdiff.analytic.bridge import condition_gaussian
from gmdiff.analytic.ddpm_posterior import reverse_posterior
from gmdiff.analytic.gaussian import GaussianMixture
from gmdiff.schedules import DiscreteVP

F64 = torch.float64


def simulate_pairs(
    gmm: GaussianMixture, schedule: DiscreteVP, t: int, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_0 ~ ``gmm``, then Eq. 1 step by step up to t; returns (x_{t-1}, x_t), each (n, D)."""
    x = gmm.sample(n, generator=generator)
    prev = x
    for s in range(1, t + 1):
        b = float(schedule.betas[s - 1])
        prev = x
        x = math.sqrt(1 - b) * x + math.sqrt(b) * torch.randn(
            x.shape, dtype=F64, generator=generator
        )
    return prev, x


def chain_coefficients(betas: torch.Tensor, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Iterate Eq. 1, x_s = sqrt(1 - b_s) x_{s-1} + sqrt(b_s) eps_s, as a linear map of
    (x_0, eps_1..eps_t): returns c (t+1,) and A (t+1, t) with x_s = c_s x_0 + sum_r A_sr eps_r."""
    b = betas.numpy()
    c = np.ones(t + 1)
    A = np.zeros((t + 1, t))
    for s in range(1, t + 1):
        c[s] = math.sqrt(1 - b[s - 1]) * c[s - 1]
        A[s] = math.sqrt(1 - b[s - 1]) * A[s - 1]
        A[s, s - 1] = math.sqrt(b[s - 1])
    return c, A


def joint_per_component(gmm: GaussianMixture, schedule: DiscreteVP, t: int):
    """Mean (K, 2D) and covariance (K, 2D, 2D) of (x_{t-1}, x_t) given the component."""
    c, A = chain_coefficients(schedule.betas, t)
    cc = np.array([c[t - 1], c[t]])
    nn = A[[t - 1, t]] @ A[[t - 1, t]].T  # noise covariances, (2, 2)
    S = torch.einsum("kdr,kr,ker->kde", gmm.U, gmm.lam, gmm.U).numpy()
    D = gmm.dim
    K = gmm.n_components
    mean = np.concatenate([cc[0] * gmm.means.numpy(), cc[1] * gmm.means.numpy()], 1)
    cov = np.zeros((K, 2 * D, 2 * D))
    for i in range(2):
        for j in range(2):
            cov[:, i * D : (i + 1) * D, j * D : (j + 1) * D] = (
                cc[i] * cc[j] * S + nn[i, j] * np.eye(D)[None]
            )
    return torch.from_numpy(mean), torch.from_numpy(cov)


def conditioned_reference(gmm: GaussianMixture, schedule: DiscreteVP, t: int, x_t):
    """q(x_{t-1} | x_t) by Schur-complement conditioning of each component's joint Gaussian,
    and the weights by Bayes' rule on the x_t-marginal of the joint."""
    mean, cov = joint_per_component(gmm, schedule, t)
    D = gmm.dim
    tgt, obs = list(range(D)), list(range(D, 2 * D))
    means, covs, logp = [], [], []
    for k in range(gmm.n_components):
        m, c = condition_gaussian(mean[k], cov[k], tgt, obs, x_t)
        means.append(m)
        covs.append(c)
        logp.append(MultivariateNormal(mean[k, D:], cov[k, D:, D:]).log_prob(x_t))
    logw = gmm.log_weights[None] + torch.stack(logp, 1)
    return torch.softmax(logw, 1), torch.stack(means, 1), torch.stack(covs)


def simulation_check(model_gmm, model_sched, t, pairs):
    """z-scores of E[r] and E[r^2 - C] with r = x_{t-1} - m(x_t), and sqrt(n) * KS of the PIT
    u = F(x_{t-1} | x_t), on the simulated pairs whose x_t has a posterior weight of the first
    component in (0.05, 0.95) (the multimodal region). Selecting on x_t alone keeps every
    identity exact, so no window bias enters."""
    y, x = pairs
    post = reverse_posterior(model_gmm, model_sched, t, x)
    keep = (post.weights[:, 0] > 0.05) & (post.weights[:, 0] < 0.95)
    y, w = y[keep, 0], post.weights[keep]
    mu, sd = post.means[keep, :, 0], post.covs[:, 0, 0].sqrt()
    m, c = post.mean()[keep, 0], post.cov()[keep, 0, 0]
    r = y - m
    u = r**2 - c
    pit = (w * torch.special.ndtr((y[:, None] - mu) / sd)).sum(1).sort().values
    k = pit.shape[0]
    grid = torch.arange(1, k + 1, dtype=F64) / k
    ks = torch.maximum((grid - pit).abs(), (pit - (grid - 1 / k)).abs()).max()
    return {
        "n": k,
        "z_mean": float(r.mean() / (r.std() / math.sqrt(k))),
        "z_var": float(u.mean() / (u.std() / math.sqrt(k))),
        "ks": float(ks * math.sqrt(k)),
    }


def quadrature_local_error(means, stds, weights, schedule: DiscreteVP, t: int, nx=2001, nq=40):
    """M_t ("moment" kernel) of 1-D GMM data by quadrature, independent of the module:
    E_{x ~ q_t}[ int q(y | x) log(q(y | x) / N(y; m(x), v(x))) dy ] with q(y | x) by Bayes'
    rule, q_{t-1}(y) N(x; sqrt(a) y, b) / q_t(x); the inner integral by Gauss-Hermite
    nodes placed on each posterior component (precision form of the conditioning), the outer
    one by the trapezoid rule on a fine grid. alpha-bar as the product of (1 - beta)."""
    m0, s0, w0 = (np.asarray(v, dtype=float) for v in (means, stds, weights))
    b = schedule.betas.numpy()
    ab_prev, a = np.prod(1 - b[: t - 1]), 1 - b[t - 1]
    ab = ab_prev * a
    mp, vp = np.sqrt(ab_prev) * m0, ab_prev * s0**2 + 1 - ab_prev  # q(x_{t-1} | k)
    mt, vt = np.sqrt(ab) * m0, ab * s0**2 + 1 - ab  # q(x_t | k)
    sd = np.sqrt(vt)
    x = np.linspace((mt - 12 * sd).min(), (mt + 12 * sd).max(), nx)

    def lognorm(z, m, v):
        return -0.5 * (z - m) ** 2 / v - 0.5 * np.log(2 * np.pi * v)

    logq_x_k = np.log(w0) + lognorm(x[:, None], mt, vt)  # (X, K)
    logq_x = logsumexp(logq_x_k, 1)
    w = np.exp(logq_x_k - logq_x[:, None])  # posterior weights (X, K)
    vpost = 1 / (1 / vp + a / b[t - 1])  # (K,)
    mpost = vpost * (mp / vp + np.sqrt(a) * x[:, None] / b[t - 1])  # (X, K)
    mean = (w * mpost).sum(1)
    var = (w * (vpost + mpost**2)).sum(1) - mean**2
    z, h = roots_hermite(nq)
    y = mpost[:, :, None] + np.sqrt(2 * vpost)[None, :, None] * z  # (X, K, Q)
    log_prior = logsumexp(np.log(w0) + lognorm(y[..., None], mp, vp), -1)
    log_lik = lognorm(x[:, None, None], np.sqrt(a) * y, b[t - 1])
    log_post = log_prior + log_lik - logq_x[:, None, None]
    f = log_post - lognorm(y, mean[:, None, None], var[:, None, None])
    kl = (w * (f * h).sum(-1) / np.sqrt(np.pi)).sum(1)
    return float(np.trapezoid(np.exp(logq_x) * kl, x))


# --------------------------------------------------------------------------------------
# Tables of the smd_theory chapter
# --------------------------------------------------------------------------------------


def gmm_2d() -> GaussianMixture:
    """K = 3 in 2-D with unequal weights: an anisotropic rotated component, a rank-1 one
    and a small isotropic one (the data of the Prop. 3.1 checks)."""
    c, s = math.cos(0.6), math.sin(0.6)
    R = torch.tensor([[c, -s], [s, c]], dtype=F64)
    covs = torch.stack(
        [
            R @ torch.diag(torch.tensor([2.0, 0.1], dtype=F64)) @ R.T,
            torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=F64),
            0.04 * torch.eye(2, dtype=F64),
        ]
    )
    means = torch.tensor([[-2.0, 1.0], [2.5, 0.0], [0.0, -3.0]], dtype=F64)
    return GaussianMixture.from_covariances(means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=F64))


def gmm_1d(means, stds, weights=None) -> GaussianMixture:
    """A 1-D mixture from lists of means, standard deviations and weights (float64)."""
    m = torch.tensor(means, dtype=F64)[:, None]
    v = torch.tensor(stds, dtype=F64)[:, None, None] ** 2
    w = None if weights is None else torch.tensor(weights, dtype=F64)
    return GaussianMixture.from_covariances(m, v, w)


def with_beta_scaled(schedule: DiscreteVP, t: int, factor: float) -> DiscreteVP:
    """The schedule with beta_t multiplied by ``factor`` (a planted error)."""
    b = schedule.betas.clone()
    b[t - 1] *= factor
    return DiscreteVP(b)


def _eq7_error(post, ref) -> float:
    """Worst relative error of weights, means and covariances against ``ref``."""
    from gmdiff.analytic.checks import rel_err

    w, m, c = ref
    return max(rel_err(post.weights, w), rel_err(post.means, m), rel_err(post.covs, c))


def prop31_conditioning_table(Ts: list[int], n_points: int, seed: int) -> pd.DataFrame:
    """Prop. 3.1 (Eq. 7) against per-component conditioning of the joint Gaussian of
    (x_{t-1}, x_t) on :func:`gmm_2d` under the cosine schedule with T steps, at every t:
    the worst relative error of the weights, means and covariances over ``n_points`` draws
    of q(x_t), and the same for Eq. 7 evaluated with beta_t off by 1 % (planted)."""
    from gmdiff.analytic.ddpm_posterior import forward_marginal

    g, rows = gmm_2d(), []
    for T in Ts:
        sch = DiscreteVP.cosine(T)
        for t in range(1, T + 1):
            gen = torch.Generator().manual_seed(seed + 1000 * T + t)
            x_t = forward_marginal(g, sch, t).sample(n_points, gen)
            ref = conditioned_reference(g, sch, t, x_t)
            ok = _eq7_error(reverse_posterior(g, sch, t, x_t), ref)
            bad = _eq7_error(reverse_posterior(g, with_beta_scaled(sch, t, 0.99), t, x_t), ref)
            rows.append({"T": T, "t": t, "Eq. 7 error": ok, "planted (beta_t x 0.99)": bad})
    return pd.DataFrame(rows)


#: The 1-D data of the forward-simulation check: means, stds, weights.
SIM_GMM = ([-2.0, 1.5], [0.3, 0.6], [0.3, 0.7])


def prop31_simulation_table(Ts: list[int], n: int, seed: int) -> pd.DataFrame:
    """Prop. 3.1 against forward simulation of Eq. 1 on :data:`SIM_GMM` (cosine schedule
    with T steps; t = T // 2 (at least 1) and T): |z| of the posterior mean and variance
    residuals and sqrt(n) KS of the PIT (:func:`simulation_check`) for Eq. 7 and for two planted errors
    (beta_t x 0.9; the weights 0.3 / 0.7 read as 0.36 / 0.64) on the same draws."""
    g = gmm_1d(*SIM_GMM)
    wrong_w = gmm_1d(SIM_GMM[0], SIM_GMM[1], [0.36, 0.64])
    rows = []
    for T in Ts:
        sch = DiscreteVP.cosine(T)
        for t in sorted({max(1, T // 2), T}):
            pairs = simulate_pairs(g, sch, t, n, torch.Generator().manual_seed(seed + 10 * T + t))
            models = {
                "Eq. 7": (g, sch),
                "planted beta_t x 0.9": (g, with_beta_scaled(sch, t, 0.9)),
                "planted weights": (wrong_w, sch),
            }
            for label, (mg, ms) in models.items():
                r = simulation_check(mg, ms, t, pairs)
                rows.append(
                    {
                        "T": T,
                        "t": t,
                        "model": label,
                        "pairs used": r["n"],
                        "|z| mean": abs(r["z_mean"]),
                        "|z| variance": abs(r["z_var"]),
                        "sqrt(n) KS": r["ks"],
                    }
                )
    return pd.DataFrame(rows)


def two_modes(d: float, s: float = 0.1) -> GaussianMixture:
    """Equal modes at -d and +d with standard deviation s (1-D)."""
    return gmm_1d([-d, d], [s, s])


def local_error_family(
    T: int, separations: list[float], n: int, seed: int, variance="moment"
) -> pd.DataFrame:
    """M_t (Def. 3.1, Eq. 8; ``variance`` as in :func:`local_error`) of :func:`two_modes`
    data with growing separation d, at every t of the cosine schedule with T steps, with its
    standard error and the data-independent bound :func:`local_error_bound`."""
    from gmdiff.analytic.ddpm_posterior import local_error, local_error_bound

    sch, rows = DiscreteVP.cosine(T), []
    for t in range(1, T + 1):
        for d in separations:
            gen = torch.Generator().manual_seed(seed)
            v = float(sch.betas[t - 1]) if variance == "beta" else variance
            e = local_error(two_modes(d), sch, t, generator=gen, n=n, variance=v)
            bound = local_error_bound(sch, t, 1, v)
            rows.append(
                {"T": T, "t": t, "d": d, "M_t": e.value, "stderr": e.stderr, "bound": bound}
            )
    return pd.DataFrame(rows)


def local_error_quadrature_table(cases, n: int, seed: int) -> pd.DataFrame:
    """M_t by Monte Carlo (:func:`local_error`) against :func:`quadrature_local_error` for
    two-mode data; ``cases`` = [(T, t, d, s)]. z = (MC - quadrature) / stderr; the planted
    row is the quadrature with beta_t x 0.8."""
    from gmdiff.analytic.ddpm_posterior import local_error

    rows = []
    for T, t, d, s in cases:
        sch = DiscreteVP.cosine(T)
        spec = ([-d, d], [s, s], [0.5, 0.5])
        e = local_error(gmm_1d(*spec), sch, t, generator=torch.Generator().manual_seed(seed), n=n)
        q = quadrature_local_error(*spec, sch, t)
        planted = quadrature_local_error(*spec, with_beta_scaled(sch, t, 0.8), t)
        rows.append(
            {
                "T": T,
                "t": t,
                "d": d,
                "s": s,
                "M_t (MC)": e.value,
                "M_t (quadrature)": q,
                "z": (e.value - q) / e.stderr,
                "z vs planted": (e.value - planted) / e.stderr,
            }
        )
    return pd.DataFrame(rows)


def global_error_table(T: int, n: int, seed: int) -> pd.DataFrame:
    """E (Def. 3.2, Eq. 9) split into KL(q(x_T) || N(0, I)), M_1 and sum_{t >= 2} M_t for
    three families: (a) two modes at +-d (growing d), (b) two modes at distance
    sqrt(beta_1 / alpha_1) whose width shrinks (M_1 grows), (c) one Gaussian whose mean
    moves away (only the prior term grows)."""
    from gmdiff.analytic.ddpm_posterior import global_error

    sch, rows = DiscreteVP.cosine(T), []
    b1 = float(sch.betas[0])
    sep = math.sqrt(b1 / (1 - b1))
    fams = [("(a) modes +-d, std 0.1", f"d = {d:g}", two_modes(d)) for d in (1.0, 8.0, 64.0)]
    fams += [
        ("(b) modes +-sep/2, width r sep", f"r = {r:g}", two_modes(sep / 2, r * sep))
        for r in (1e-1, 1e-3, 1e-5)
    ]
    fams += [
        ("(c) one Gaussian N(m, 1)", f"m = {m:g}", gmm_1d([m], [1.0])) for m in (0, 100, 10_000)
    ]
    for family, member, g in fams:
        e = global_error(g, sch, generator=torch.Generator().manual_seed(seed), n=n)
        rows.append(
            {
                "family": family,
                "member": member,
                "prior KL": e.prior.value,
                "M_1": e.local[0].value,
                "sum M_t, t >= 2": sum(m.value for m in e.local[1:]),
                "E": e.value,
                "stderr": e.stderr,
            }
        )
    return pd.DataFrame(rows)
