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
