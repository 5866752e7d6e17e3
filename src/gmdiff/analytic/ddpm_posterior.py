"""Exact DDPM ground truth for Gaussian-mixture data (SMD paper, Li et al., Sec. 3).

Data x_0 ~ sum_k pi_k N(m_k, S_k) (a :class:`GaussianMixture`) diffused by the T-step DDPM
forward process of a :class:`DiscreteVP` schedule, q(x_t | x_{t-1}) = N(sqrt(alpha_t)
x_{t-1}, beta_t I) (SMD paper, Eq. 1), with alpha_t = 1 - beta_t and alpha_bar_t =
prod_{s <= t} alpha_s (Eq. 4). Everything here is float64 torch and batched over the rows
of x_t (shape (B, D)); t is the DDPM step index 1..T (0 is the clean data).

* :func:`forward_marginal`: q(x_t), the GMM sum_k pi_k N(sqrt(ab_t) m_k, ab_t S_k +
  (1 - ab_t) I); its responsibilities are the weights w'_k of Eq. (7).
* :func:`reverse_posterior`: q(x_{t-1} | x_t) as the GMM of Prop. 3.1, Eqs. (6)-(7), with
  its moments (the best Gaussian reverse kernel, :func:`best_gaussian_kernel`).
* :func:`local_error`: the local denoising error M_t of Def. 3.1, Eq. (8), by Monte Carlo.
* :func:`global_error`: the global error E of Def. 3.2, Eq. (9), through the chain rule.
* :func:`local_error_bound`: a data-independent upper bound on M_t for t >= 2 (derived
  here, not in the paper), which contradicts Thm. 3.1 at every step t >= 2.

The Gaussian kernel of the paper's Eq. (2) is N(mu_theta(x_t, t), sigma_t I) with sigma_t
"a predefined covariance"; the infimum of Eq. (8) is over theta, i.e. over the mean
function. Three readings of the kernel family are offered (``variance=``):

* a number or a (T,) tensor sigma_t: the literal Eq. (2), sigma_t fixed (a variance,
  as Eq. (2) writes sigma_t I; note Alg. 2 uses sigma_t as a standard deviation);
* ``"isotropic"``: N(mu(x_t), sigma_t I) with the best constant sigma_t as well (learned
  variance, as in improved DDPM / Analytic-DPM);
* ``"moment"``: N(mu(x_t), Sigma(x_t)) with any mean and covariance function: the
  infimum over all Gaussian kernels, attained by moment matching. It is the smallest of
  the three and a lower bound on M_t for every Gaussian parameterisation.

For a forward KL, KL(q || N(mu, Sigma)) = KL(q || N(m_q, C_q)) + KL(N(m_q, C_q) || N(mu,
Sigma)) with (m_q, C_q) the moments of q, so each infimum is attained at mu = m_q (the
posterior mean) and the three errors differ by closed-form Gaussian KLs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from gmdiff.analytic.gaussian import GaussianMixture
from gmdiff.schedules import DiscreteVP

Variance = Literal["moment", "isotropic"] | float | Tensor


def _check_betas(schedule: DiscreteVP) -> None:
    b = schedule.betas
    if torch.any(b <= 0) or torch.any(b >= 1):
        raise ValueError("Eq. 1 needs every beta_t in (0, 1)")


def _coeffs(schedule: DiscreteVP, t: int) -> tuple[float, float, float]:
    """(alpha_t, alpha_bar_t, alpha_bar_{t-1}) of step t in 1..T (Eq. 4)."""
    if not 1 <= t <= schedule.T:
        raise ValueError(f"step t must be in 1..T={schedule.T}, got t={t}")
    _check_betas(schedule)
    ab = schedule.alpha_bar
    return float(1.0 - schedule.betas[t - 1]), float(ab[t]), float(ab[t - 1])


def _dense_covs(gmm: GaussianMixture) -> Tensor:
    """S_k = U_k diag(lam_k) U_k^T, shape (K, D, D)."""
    return torch.einsum("kdr,kr,ker->kde", gmm.U, gmm.lam, gmm.U)


# --------------------------------------------------------------------------------------
# Forward marginals q(x_t)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardMarginal:
    """q(x_t) = sum_k pi_k N(x_t; sqrt(ab_t) m_k, ab_t S_k + (1 - ab_t) I) for x_t =
    sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps (Eq. 4): the data mixture scaled by sqrt(ab_t)
    (``signal``) convolved with N(0, noise_std^2 I), noise_std = sqrt(1 - ab_t). Density
    and responsibilities are GaussianMixture's own (Gaussian score paper, Eqs. 7-8, 12)."""

    signal: GaussianMixture
    noise_std: float

    @property
    def log_weights(self) -> Tensor:
        return self.signal.log_weights

    @property
    def means(self) -> Tensor:
        return self.signal.means

    @property
    def covs(self) -> Tensor:
        """ab_t S_k + (1 - ab_t) I, shape (K, D, D)."""
        eye = torch.eye(self.signal.dim, dtype=self.means.dtype)
        return _dense_covs(self.signal) + self.noise_std**2 * eye

    def _check(self) -> None:
        if self.noise_std <= 0:
            raise ValueError("q(x_0) is the data itself; its density is the mixture's, not here")

    def component_log_probs(self, x: Tensor) -> Tensor:
        """log pi_k + log N(x; sqrt(ab_t) m_k, ab_t S_k + (1 - ab_t) I), shape (B, K)."""
        self._check()
        return self.signal.component_log_probs(x, self.noise_std)

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x_t), shape (B,)."""
        self._check()
        return self.signal.log_prob(x, self.noise_std)

    def responsibilities(self, x: Tensor) -> Tensor:
        """P(k | x_t) = pi_k N(x_t; ...) / q(x_t): the weights w'_k of Eq. (7), (B, K)."""
        self._check()
        return self.signal.responsibilities(x, self.noise_std)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n exact samples of q(x_t), (n, D)."""
        x = self.signal.sample(n, generator=generator)
        eps = torch.randn(x.shape, dtype=x.dtype, generator=generator)
        return x + self.noise_std * eps


def forward_marginal(gmm: GaussianMixture, schedule: DiscreteVP, t: int) -> ForwardMarginal:
    """q(x_t) for t in 0..T (t = 0: the data; its ``log_prob`` is then not available)."""
    if not 0 <= t <= schedule.T:
        raise ValueError(f"step t must be in 0..T={schedule.T}, got t={t}")
    _check_betas(schedule)
    ab = float(schedule.alpha_bar[t])
    signal = GaussianMixture(math.sqrt(ab) * gmm.means, gmm.U, ab * gmm.lam, gmm.log_weights)
    return ForwardMarginal(signal, math.sqrt(1.0 - ab))


# --------------------------------------------------------------------------------------
# The reverse posterior q(x_{t-1} | x_t), Prop. 3.1
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReversePosterior:
    """q(x_{t-1} | x_t) = sum_k w'_k N(x_{t-1}; mu'_k, Sigma'_k) for a batch of x_t (SMD paper,
    Prop. 3.1, Eq. 6): ``log_weights`` (B, K), ``means`` (B, K, D), ``covs`` (K, D, D) (the
    covariances do not depend on x_t)."""

    log_weights: Tensor
    means: Tensor
    covs: Tensor

    @property
    def weights(self) -> Tensor:
        return self.log_weights.exp()

    def mean(self) -> Tensor:
        """E[x_{t-1} | x_t] = sum_k w'_k mu'_k, (B, D)."""
        return torch.einsum("bk,bkd->bd", self.weights, self.means)

    def cov(self) -> Tensor:
        """Cov[x_{t-1} | x_t] = sum_k w'_k (Sigma'_k + mu'_k mu'_k^T) - m m^T, (B, D, D)."""
        w = self.weights
        d = self.means - self.mean()[:, None, :]
        within = torch.einsum("bk,kde->bde", w, self.covs)
        between = torch.einsum("bk,bkd,bke->bde", w, d, d)
        c = within + between
        return 0.5 * (c + c.transpose(1, 2))

    def _components(self) -> MultivariateNormal:
        try:
            tril = torch.linalg.cholesky(self.covs)
        except torch.linalg.LinAlgError as e:
            raise ValueError(
                "a posterior covariance is singular (at t = 1 this happens when a data "
                "covariance S_k is singular): q(x_0 | x_1) has no density"
            ) from e
        return MultivariateNormal(self.means, scale_tril=tril)

    def log_prob(self, y: Tensor) -> Tensor:
        """log q(y_b | x_t,b) for each row b: y (..., B, D) -> (..., B)."""
        comp = self._components().log_prob(y[..., None, :])  # (..., B, K)
        return torch.logsumexp(self.log_weights + comp, dim=-1)

    def sample(self, generator: torch.Generator, n: int = 1) -> Tensor:
        """n draws per row, (n, B, D)."""
        B, _, D = self.means.shape
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator).T  # (n, B)
        tril = torch.linalg.cholesky(self.covs)[k]  # (n, B, D, D)
        z = torch.randn(n, B, D, 1, dtype=self.means.dtype, generator=generator)
        mu = self.means[torch.arange(B)[None], k]  # (n, B, D)
        return mu + (tril @ z)[..., 0]


def eq7_coefficients(gmm: GaussianMixture, schedule: DiscreteVP, t: int) -> tuple[Tensor, Tensor]:
    """(I + Lambda_k^{-1})^{-1} and (I + Lambda_k)^{-1} of Eq. (7), each (K, D, D), with
    Lambda_k = (alpha_t - ab_t)/(1 - alpha_t) I + ab_t/(1 - alpha_t) S_k.

    (I + Lambda^{-1})^{-1} is computed as (I + Lambda)^{-1} Lambda (Lambda and I + Lambda
    commute), which stays finite when Lambda is singular (t = 1 with a singular S_k)."""
    a, ab, _ = _coeffs(schedule, t)
    D = gmm.dim
    eye = torch.eye(D, dtype=gmm.means.dtype)
    lam = ((a - ab) * eye + ab * _dense_covs(gmm)) / (1.0 - a)
    inv_1p = torch.linalg.inv(eye + lam)
    return torch.linalg.solve(eye + lam, lam), inv_1p


def reverse_posterior(
    gmm: GaussianMixture, schedule: DiscreteVP, t: int, x_t: Tensor
) -> ReversePosterior:
    """q(x_{t-1} | x_t) of Prop. 3.1, written from Eq. (7) of the SMD paper:

    w'_k = pi_k N(x_t; sqrt(ab_t) m_k, (1 - ab_t) I + ab_t S_k) / q(x_t),
    mu'_k = (I + Lambda_k^{-1})^{-1} x_t / sqrt(alpha_t) + (I + Lambda_k)^{-1} sqrt(ab_{t-1}) m_k,
    Sigma'_k = (1 - alpha_t)/alpha_t (I + Lambda_k^{-1})^{-1}.

    (The proof of Eq. 7 is not in the paper, whose appendix defers it to an arXiv version;
    the unit tests check it against exact conditioning of the joint Gaussian of
    (x_{t-1}, x_t) per component and against simulation.)"""
    a, _, ab_prev = _coeffs(schedule, t)
    A, Bm = eq7_coefficients(gmm, schedule, t)
    # log w'_k: the log-softmax behind ForwardMarginal.responsibilities (no underflow to 0)
    log_w = torch.log_softmax(forward_marginal(gmm, schedule, t).component_log_probs(x_t), 1)
    means = torch.einsum("kde,be->bkd", A, x_t / math.sqrt(a)) + math.sqrt(ab_prev) * (
        torch.einsum("kde,ke->kd", Bm, gmm.means)
    )[None]
    covs = (1.0 - a) / a * A
    covs = 0.5 * (covs + covs.transpose(1, 2))
    return ReversePosterior(log_w, means, covs)


def best_gaussian_kernel(
    gmm: GaussianMixture, schedule: DiscreteVP, t: int, x_t: Tensor
) -> tuple[Tensor, Tensor]:
    """The best Gaussian reverse kernel at x_t: N(m(x_t), C(x_t)) with the mean (B, D) and
    covariance (B, D, D) of the mixture posterior of Prop. 3.1 (moment matching minimises
    KL(q(x_{t-1} | x_t) || N(mu, Sigma)) over all (mu, Sigma))."""
    post = reverse_posterior(gmm, schedule, t, x_t)
    return post.mean(), post.cov()


# --------------------------------------------------------------------------------------
# Errors M_t and E
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MCEstimate:
    """A Monte Carlo estimate with its standard error (std of the terms / sqrt(n))."""

    value: float
    stderr: float
    n: int


def _gaussian_kl(cov: Tensor, var: Tensor) -> Tensor:
    """KL(N(m, C) || N(m, v I)) = (tr C / v - D + D log v - log det C) / 2, (B,); var (B,)."""
    D = cov.shape[-1]
    tr = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
    return 0.5 * (tr / var - D + D * torch.log(var) - torch.logdet(cov))


def _kernel_gap(cov: Tensor, variance: Variance) -> Tensor:
    """KL(N(m, C(x_t)) || kernel) per row, for the kernel families of the module docstring."""
    if isinstance(variance, str):
        if variance == "moment":
            return torch.zeros(cov.shape[0], dtype=cov.dtype)
        if variance == "isotropic":
            tr = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
            v = (tr.mean() / cov.shape[-1]).expand(cov.shape[0])  # best constant sigma_t
            return _gaussian_kl(cov, v)
        raise ValueError(f"variance must be 'moment', 'isotropic' or a number, got {variance!r}")
    v = torch.as_tensor(variance, dtype=cov.dtype)
    if v.ndim != 0 or float(v) <= 0:
        raise ValueError(f"a fixed kernel variance sigma_t must be a positive number, got {v}")
    return _gaussian_kl(cov, v.expand(cov.shape[0]))


def _kl_terms(post: ReversePosterior, y: Tensor, variance: Variance) -> Tensor:
    """Per-draw Monte Carlo terms of KL(q(. | x_t) || best kernel of ``variance``) for draws
    y (..., B, D) of the posterior ``post``: log q(y | x_t) - log N(y; m, C), plus the
    closed-form gap KL(N(m, C) || kernel) (:func:`_kernel_gap`); shape (..., B)."""
    m, c = post.mean(), post.cov()
    f = post.log_prob(y) - MultivariateNormal(m, covariance_matrix=c).log_prob(y)
    return f + _kernel_gap(c, variance)


def posterior_kl(
    gmm: GaussianMixture,
    schedule: DiscreteVP,
    t: int,
    x_t: Tensor,
    *,
    generator: torch.Generator,
    n: int = 4096,
    variance: Variance = "moment",
) -> tuple[Tensor, Tensor]:
    """KL(q(x_{t-1} | x_t) || p(x_{t-1} | x_t)) at each row of x_t for the best kernel of the
    family ``variance`` (mean = the posterior mean): the integrand of Eq. (8) before the
    expectation over x_t. Monte Carlo over n draws y ~ q(. | x_t) of log q(y | x_t) -
    log N(y; m, C) (zero-variance when the posterior is Gaussian), plus the closed-form
    KL(N(m, C) || kernel). ``"isotropic"`` here means sigma_t = tr C(x_t) / D at this x_t.
    Returns (value (B,), stderr (B,))."""
    post = reverse_posterior(gmm, schedule, t, x_t)
    y = post.sample(generator, n)  # (n, B, D)
    per_row_sigma = variance == "isotropic"  # sigma_t fitted at each x_t, not over the batch
    f = _kl_terms(post, y, "moment" if per_row_sigma else variance)  # (n, B)
    if per_row_sigma:
        c = post.cov()
        f = f + _gaussian_kl(c, torch.diagonal(c, dim1=-2, dim2=-1).sum(-1) / c.shape[-1])
    return f.mean(0), f.std(0) / math.sqrt(n)


def local_error(
    gmm: GaussianMixture,
    schedule: DiscreteVP,
    t: int,
    *,
    generator: torch.Generator,
    n: int = 20000,
    variance: Variance = "moment",
) -> MCEstimate:
    """The local denoising error of Def. 3.1, Eq. (8) of the SMD paper:

    M_t = inf_theta E_{x_t ~ q(x_t)} KL( q(x_{t-1} | x_t) || p_theta(x_{t-1} | x_t) ),

    a forward KL (posterior first), averaged (not a sup) over x_t ~ q(x_t), for the Gaussian
    kernel family ``variance`` (module docstring). The infimum is attained at the posterior
    mean m(x_t) with, for ``"moment"``, the posterior covariance C(x_t), so

    M_t = E_{(x_{t-1}, x_t) ~ q}[ log q(x_{t-1} | x_t) - log N(x_{t-1}; m(x_t), C(x_t)) ]
          + E_{x_t}[ KL(N(m, C(x_t)) || N(m, sigma_t I)) ]   (second term 0 for "moment").

    Estimator: plain Monte Carlo over n exact joint draws (x_0 ~ GMM, x_{t-1} from q(x_{t-1}),
    x_t by one forward step of Eq. 1) from ``generator``; log q(x_{t-1} | x_t) is the exact
    GMM density of Prop. 3.1. The log-ratio is a control variate (it vanishes when the
    posterior is Gaussian), so M_t ~ 0 is estimated with ~0 error; the estimator is
    unbiased except for ``"isotropic"``, where sigma_t = mean tr C / D is fitted on the same
    draws (the bias is second order, since the objective is stationary in sigma_t there).
    ``stderr`` = std of the per-draw terms / sqrt(n)."""
    a, _, _ = _coeffs(schedule, t)
    x_prev = forward_marginal(gmm, schedule, t - 1).sample(n, generator)
    eps = torch.randn(x_prev.shape, dtype=x_prev.dtype, generator=generator)
    x_t = math.sqrt(a) * x_prev + math.sqrt(1.0 - a) * eps
    f = _kl_terms(reverse_posterior(gmm, schedule, t, x_t), x_prev, variance)
    return MCEstimate(float(f.mean()), float(f.std() / math.sqrt(n)), n)


def local_error_bound(
    schedule: DiscreteVP, t: int, dim: int, variance: Variance = "moment"
) -> float:
    """An upper bound on M_t that holds for EVERY data distribution at steps t >= 2 (derived
    here; not in the SMD paper, and in contradiction with its Thm. 3.1):

    * ``"moment"`` and ``"isotropic"``: M_t <= (D/2) log( (1 - ab_t) / (alpha_t (1 - ab_{t-1})) );
    * fixed sigma_t: M_t <= (D/2) [ log(sigma_t / bt_t) + beta_t / (alpha_t sigma_t) - 1 ],

    with bt_t = beta_t (1 - ab_{t-1}) / (1 - ab_t), DDPM's posterior variance.

    Proof. q(x_{t-1} | x_t) = E_{x_0 | x_t} N(x_{t-1}; mu~(x_0, x_t), bt_t I) is a mixture of
    Gaussians of common covariance bt_t I, so its entropy is >= (D/2) log(2 pi e bt_t). For
    a kernel N(m, v I) with the posterior mean m, the cross-entropy is (D/2) log(2 pi v) +
    tr C(x_t) / (2 v), and E_{x_t} tr C(x_t) = MMSE of x_{t-1} from x_t <= D beta_t / alpha_t
    (the error of the estimator x_t / sqrt(alpha_t)). Averaging over x_t gives the fixed-
    sigma_t bound; with the best constant v = E tr C / D it becomes the first bound, which
    also bounds the ``"moment"`` error (a smaller infimum). At t = 1, bt_1 = 0 and no bound
    holds: M_1 is unbounded (e.g. data components whose width goes to 0).

    So for a fixed dimension D and schedule, Thm. 3.1 ("M_t > N for every t in [1, T]")
    fails at every t >= 2. The bound is linear in D, and a product of D independent 1-D
    mixtures has D times the 1-D M_t: letting D grow is the only way to exceed any N."""
    a, ab, ab_prev = _coeffs(schedule, t)
    if t == 1:
        return math.inf
    bt = (1.0 - a) * (1.0 - ab_prev) / (1.0 - ab)
    if isinstance(variance, str):
        if variance not in ("moment", "isotropic"):
            raise ValueError(f"variance must be 'moment', 'isotropic' or a number: {variance!r}")
        return 0.5 * dim * math.log((1.0 - ab) / (a * (1.0 - ab_prev)))
    v = float(variance)
    return 0.5 * dim * (math.log(v / bt) + (1.0 - a) / (a * v) - 1.0)


@dataclass(frozen=True)
class GlobalError:
    """E of Eq. (9) split by the chain rule: ``prior`` = KL(q(x_T) || N(0, I)) and
    ``local`` = (M_1, ..., M_T); ``value`` = prior + sum(local)."""

    value: float
    stderr: float
    prior: MCEstimate
    local: list[MCEstimate]


def prior_error(
    gmm: GaussianMixture, schedule: DiscreteVP, *, generator: torch.Generator, n: int = 20000
) -> MCEstimate:
    """KL(q(x_T) || N(0, I)) by Monte Carlo over n exact draws of q(x_T) (the L_T term of
    Eq. 3 at its optimum: p(x_T) has no parameters)."""
    q = forward_marginal(gmm, schedule, schedule.T)
    x = q.sample(n, generator)
    D = x.shape[1]
    f = q.log_prob(x) + 0.5 * (x**2).sum(1) + 0.5 * D * math.log(2 * math.pi)
    return MCEstimate(float(f.mean()), float(f.std() / math.sqrt(n)), n)


def global_error(
    gmm: GaussianMixture,
    schedule: DiscreteVP,
    *,
    generator: torch.Generator,
    n: int = 20000,
    variance: Variance = "moment",
) -> GlobalError:
    """The global approximation error of Def. 3.2, Eq. (9) of the SMD paper,
    E = inf_theta KL(q(x_{0:T}) || p_theta(x_{0:T})).

    Both processes are Markov, so by the chain rule for KL along the reverse factorisation
    q(x_{0:T}) = q(x_T) prod_t q(x_{t-1} | x_t) and p_theta(x_{0:T}) = p(x_T) prod_t
    p_theta(x_{t-1} | x_t) (Eq. 2),

    KL(q(x_{0:T}) || p_theta(x_{0:T})) = KL(q(x_T) || N(0, I))
        + sum_{t=1}^T E_{x_t ~ q} KL(q(x_{t-1} | x_t) || p_theta(x_{t-1} | x_t)).

    The mean network mu_theta(x_t, t) may be any function of (x_t, t), so the infimum splits
    over t: E = KL(q(x_T) || N(0, I)) + sum_t M_t, each term estimated by Monte Carlo as in
    :func:`local_error` / :func:`prior_error`, with independent draws per term (stderr adds
    in quadrature). ``variance``: as for M_t; a (T,) tensor gives a fixed sigma_t per step
    (e.g. ``schedule.betas``). Note that the prior term alone is unbounded (a single
    Gaussian with a far mean), so E > N needs no mixture at all."""
    T = schedule.T
    if isinstance(variance, Tensor) and variance.ndim == 1:
        if variance.shape[0] != T:
            raise ValueError(f"a per-step variance needs shape ({T},), got {tuple(variance.shape)}")
        per_t = [variance[t - 1] for t in range(1, T + 1)]
    else:
        per_t = [variance] * T
    prior = prior_error(gmm, schedule, generator=generator, n=n)
    local = [
        local_error(gmm, schedule, t, generator=generator, n=n, variance=per_t[t - 1])
        for t in range(1, T + 1)
    ]
    value = prior.value + sum(m.value for m in local)
    stderr = math.sqrt(prior.stderr**2 + sum(m.stderr**2 for m in local))
    return GlobalError(value, stderr, prior, local)
