"""Posterior inference in the variance-exploding (VE) corruption process of the GM-SGM
paper: the bridge posterior p(x_s | x_t, x_u) of its Theorem 1, its Gaussian-mixture
variant, exact conditioning of jointly Gaussian states, and the optimal GM-SGM denoiser
(the empirical-Bayes mixture over the noise scale of Sec. 4.1, Eq. 13).

Notation: noise levels sigma_u < sigma_s < sigma_t (times u < s < t), and
a = sigma_t^2 - sigma_s^2, b = sigma_s^2 - sigma_u^2.

Theorem 1 as printed defines the process by x_t = x_0 + sigma_t xi_t with xi_t i.i.d.
over t (Eq. 12), but its proof (App. A.1) uses p(x_t | x_s) = N(x_s, a I), which holds
for the Markov process with independent Gaussian increments (the VE SDE dx = dw in the
time sigma^2), not for i.i.d. xi_t. ``simulate_ve`` offers both readings so that the
check can tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor


def _levels(sigma_t: float, sigma_s: float, sigma_u: float) -> tuple[float, float]:
    if not (0.0 <= sigma_u < sigma_s < sigma_t):
        raise ValueError(
            f"Theorem 1 needs 0 <= sigma_u < sigma_s < sigma_t, got "
            f"sigma_u={sigma_u}, sigma_s={sigma_s}, sigma_t={sigma_t}"
        )
    return sigma_t**2 - sigma_s**2, sigma_s**2 - sigma_u**2


def ve_bridge_posterior(
    x_t: Tensor, x_u: Tensor, sigma_t: float, sigma_s: float, sigma_u: float
) -> tuple[Tensor, float]:
    """Theorem 1 (GM-SGM paper; proof in App. A.1): p(x_s | x_t, x_u) = N(m, v I) with
    m = x_t - a/(a + b) (x_t - x_u) and v = a b / (a + b). Returns (m, v)."""
    a, b = _levels(sigma_t, sigma_s, sigma_u)
    if x_t.shape != x_u.shape:
        raise ValueError(
            f"x_t and x_u must have the same shape, got {tuple(x_t.shape)} and {tuple(x_u.shape)}"
        )
    return x_t - a / (a + b) * (x_t - x_u), a * b / (a + b)


def _mixture(
    betas: Sequence[float], weights: Sequence[float] | None, like: Tensor
) -> tuple[Tensor, Tensor]:
    bt = torch.as_tensor(betas, dtype=like.dtype)
    if bt.ndim != 1 or bt.numel() == 0 or torch.any(bt <= 0):
        raise ValueError(
            f"noise scales betas must be a non-empty list of positive numbers, got {betas}"
        )
    if weights is None:
        w = torch.full_like(bt, 1.0 / bt.numel())
    else:
        w = torch.as_tensor(weights, dtype=like.dtype)
        if w.shape != bt.shape or torch.any(w < 0) or abs(float(w.sum()) - 1.0) > 1e-9:
            raise ValueError(
                f"weights must be non-negative, one per beta, summing to 1; got {weights}"
            )
    return bt, w


def gm_bridge_posterior(
    x_t: Tensor,
    x_u: Tensor,
    sigma_t: float,
    sigma_s: float,
    sigma_u: float,
    betas: Sequence[float] = (1.0, 2.0),
    weights: Sequence[float] | None = None,
    prior=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Bridge posterior when each path is one Brownian motion stretched by a random scale
    beta_k (prior weights pi_k): the "mixture of Brownian motions" of GM-SGM Sec. 4.2.

    Given the scale, Theorem 1 holds with variances times beta_k^2; the mean does not depend
    on the scale, so p(x_s | x_t, x_u) = sum_k r_k N(m, beta_k^2 v I) with Theorem 1's
    (m, v) and r_k = p(beta_k | x_t, x_u), proportional to
    pi_k N(x_t - x_u; 0, beta_k^2 (a + b) I) p(x_u | beta_k). For sigma_u = 0 (x_u = x_0)
    the last factor is the same for all k; otherwise x_u = x_0 + beta sigma_u xi also
    carries evidence about the scale, and p(x_u | beta_k) is the data density convolved
    with N(0, beta_k^2 sigma_u^2 I), which needs the data distribution ``prior`` (any
    gmdiff.analytic model with ``log_prob(x, sigma)``).

    Rows of x_t, x_u (B, D) are samples. Returns (m (B, D), total variance per coordinate
    sum_k r_k beta_k^2 v (B,), r (B, K)).
    """
    if x_t.ndim != 2:
        raise ValueError(f"x_t and x_u must be (B, D) batches, got shape {tuple(x_t.shape)}")
    m, v = ve_bridge_posterior(x_t, x_u, sigma_t, sigma_s, sigma_u)
    bt, w = _mixture(betas, weights, x_t)
    a, b = _levels(sigma_t, sigma_s, sigma_u)
    var_k = bt**2 * (a + b)  # (K,)
    d2 = ((x_t - x_u) ** 2).sum(1, keepdim=True)  # (B, 1)
    dim = x_t.shape[1]
    logits = torch.log(w) - 0.5 * d2 / var_k - 0.5 * dim * torch.log(var_k)
    if sigma_u > 0:
        if prior is None:
            raise ValueError(
                "with sigma_u > 0, x_u carries evidence about the noise scale: pass the data "
                "distribution as prior=..., or condition on x_u = x_0 (sigma_u = 0)"
            )
        logits = logits + torch.stack(
            [prior.log_prob(x_u, float(bk) * sigma_u) for bk in bt], dim=1
        )
    r = torch.softmax(logits, dim=1)
    return m, (r * bt**2).sum(1) * v, r


def simulate_ve(
    x0: Tensor,
    sigmas: Sequence[float],
    *,
    generator: torch.Generator,
    mode: Literal["markov", "iid"] = "markov",
    betas: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
) -> Tensor:
    """States of the VE corruption process at increasing noise levels ``sigmas`` for the
    rows of x0 (B, D); returns (len(sigmas), B, D).

    mode="markov": independent Gaussian increments, x_k = x_{k-1} + sqrt(sigma_k^2 -
    sigma_{k-1}^2) z_k (the process that App. A.1 uses). mode="iid": x_k = x_0 + sigma_k xi_k
    with independent xi_k, the literal reading of Eq. 12. ``betas``/``weights``: each path
    (row) draws one scale beta_k and all its noise is multiplied by it (Sec. 4.2's mixture
    of Brownian motions).
    """
    s = torch.as_tensor(sigmas, dtype=x0.dtype)
    if s.ndim != 1 or torch.any(s < 0) or torch.any(s[1:] <= s[:-1]):
        raise ValueError(f"sigmas must be non-negative and strictly increasing, got {sigmas}")
    if mode not in ("markov", "iid"):
        raise ValueError(f"mode must be 'markov' or 'iid', got {mode!r}")
    B, D = x0.shape
    z = torch.randn(len(s), B, D, dtype=x0.dtype, generator=generator)
    if betas is not None:
        bt, w = _mixture(betas, weights, x0)
        k = torch.multinomial(w, B, replacement=True, generator=generator)
        z = z * bt[k][None, :, None]
    if mode == "iid":
        return x0[None] + s[:, None, None] * z
    steps = torch.sqrt(torch.diff(s**2, prepend=torch.zeros(1, dtype=s.dtype)))
    return x0[None] + (steps[:, None, None] * z).cumsum(0)


def ve_joint_covariance(
    sigmas: Sequence[float], prior_var: float, mode: Literal["markov", "iid"] = "markov"
) -> Tensor:
    """Covariance (per coordinate) of (x_{sigma_1}, ..., x_{sigma_n}) when x_0 ~ N(mu, prior_var):
    prior_var + sigma_min(i,j)^2 for the Markov process, prior_var + delta_ij sigma_i^2 for
    the literal i.i.d. reading of Eq. 12."""
    s2 = torch.as_tensor(sigmas, dtype=torch.float64) ** 2
    if mode == "markov":
        c = torch.minimum(s2[:, None], s2[None, :])
    elif mode == "iid":
        c = torch.diag(s2)
    else:
        raise ValueError(f"mode must be 'markov' or 'iid', got {mode!r}")
    return prior_var + c


def condition_gaussian(
    mean: Tensor, cov: Tensor, target: Sequence[int], observed: Sequence[int], x_obs: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact conditional of a jointly Gaussian vector (Schur complement):
    E[y_T | y_O = x_obs] = mu_T + C_TO C_OO^{-1} (x_obs - mu_O), Cov = C_TT - C_TO C_OO^{-1} C_OT.
    ``x_obs`` is (B, |O|); returns ((B, |T|), (|T|, |T|))."""
    t, o = list(target), list(observed)
    if set(t) & set(o):
        raise ValueError(f"target {t} and observed {o} indices must be disjoint")
    c_oo, c_to = cov[o][:, o], cov[t][:, o]
    gain = torch.linalg.solve(c_oo, c_to.T).T  # C_TO C_OO^{-1}
    m = mean[t][None] + (x_obs - mean[o][None]) @ gain.T
    return m, cov[t][:, t] - gain @ c_to.T


# -- GM-SGM's optimal denoiser (Sec. 4.1, Eq. 13) ----------------------------------------


def noise_scale_posterior(
    prior,
    x: Tensor,
    sigma: float,
    betas: Sequence[float] = (1.0, 2.0),
    weights: Sequence[float] | None = None,
    *,
    as_printed: bool = False,
) -> Tensor:
    """p(beta_k | x_t) proportional to pi_k p(x_t | beta_k) with p(x_t | beta_k) the data
    density ``prior`` (any gmdiff.analytic model with ``log_prob(x, sigma)``) convolved with
    N(0, beta_k^2 sigma^2 I) (GM-SGM paper, Eq. 13, right). Shape (B, K).

    ``as_printed=True`` returns the weights that Eq. 13 (left) puts on the per-scale
    posteriors when read literally: p(x|xi) p(xi|beta) p(beta|x) is the scale-k posterior
    times p(x | beta_k) p(beta_k | x), i.e. weights proportional to pi_k p(x | beta_k)^2.
    """
    bt, w = _mixture(betas, weights, x)
    logp = torch.stack([prior.log_prob(x, float(b) * sigma) for b in bt], dim=1)
    power = 2.0 if as_printed else 1.0
    return torch.softmax(torch.log(w)[None] + power * logp, dim=1)


def gm_sgm_denoiser(
    prior,
    x: Tensor,
    sigma: float,
    betas: Sequence[float] = (1.0, 2.0),
    weights: Sequence[float] | None = None,
    *,
    as_printed: bool = False,
) -> Tensor:
    """E[x_0 | x_t] when x_t = x_0 + beta sigma xi, beta ~ sum_k pi_k delta_{beta_k}: the
    minimiser of the GM-SGM objective (Eqs. 9-11), in denoiser form,
    sum_k p(beta_k | x_t) D(x_t; beta_k sigma), with D the data's own denoiser (Eq. 13).
    With betas = (1,) it is the SGM denoiser D(x_t; sigma)."""
    r = noise_scale_posterior(prior, x, sigma, betas, weights, as_printed=as_printed)
    d = torch.stack([prior.denoiser(x, float(b) * sigma) for b in betas], dim=1)
    return (r[..., None] * d).sum(1)
