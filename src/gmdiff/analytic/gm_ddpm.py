"""GM-DDPM's forward process and its posterior (GM-DDPM paper, Sec. 3.1-3.2 and App. A.3).

Each forward step adds Gaussian-mixture noise (:class:`gmdiff.noise.OffsetMixtureNoise`),
x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps_t with eps_t ~ sum_k omega_k N(mu_k, I)
(Eqs. 1-2), alpha_t = 1 - beta_t from a :class:`DiscreteVP` schedule. Unrolled (Eq. 3 / 21),

    x_t = sqrt(ab_t) x_0 + sqrt(gamma_t) eps + sum_{j <= t} sqrt(gamma_{t,j}) mu_{i_j},

eps ~ N(0, I), with gamma_{t,j} = beta_j prod_{k=j+1}^t alpha_k and gamma_t = sum_j
gamma_{t,j} = 1 - ab_t (Eq. 24). Everything is float64 torch; t is the step index 1..T
(0 is the clean data), ``paths`` holds the components i_1, i_2, ... along dim 1.

* :func:`gamma_matrix`, :func:`gamma_total`: gamma_{t,j} and gamma_t by the recursions of
  Eq. 24; :func:`offset_coefficients`: the weights sqrt(gamma_{t,j}) of the offsets.
* :func:`offset_sum`: the law of the offset sum S = sum_j sqrt(gamma_{t,j}) c_{i_j} (a
  scalar: every mu_k is c_k u along one direction u), whose atoms index the components of
  :func:`marginal`, q(x_t | x_0) of Eq. 4 / 23 as a :class:`GaussianMixture`.
* :func:`sample_marginal`: x_t, eps and the path i_{1:t} in one shot (Alg. 1, lines 3-4).
* :func:`posterior`: q(x_{t-1} | x_t, x_0, i_{1:t}) = N(mean, var I) (Eqs. 29-30);
  :func:`mean_from_eps`: the eps parameterisation of Eq. 9 / 36, which equals that mean
  when given the true eps (Eqs. 8 / 35); :func:`reverse_variances`: the reverse step's
  variance, sigma_t^2 of Eq. 30 or sigma-tilde_t^2 of Eq. 34.

Grouping of the paths. Eq. 4 sums over all K^t paths i_{1:t}; paths with the same offset
sum give the same component, so the mixture is indexed by the atoms of S. These are
merged exactly when they coincide, and with ``resolution > 0`` (the default) atoms closer
than ``resolution * sqrt(gamma_t)`` are merged into one component with their total
weight, their mean and their variance along u (added to the component's covariance): the
mixture keeps the exact mean and covariance of q(x_t | x_0) at every t, and its density
differs from Eq. 4 by far less than the noise can resolve (the check is in the tests).
``resolution=0`` keeps every distinct path sum (K^t of them for generic gammas: 16807 at
t = 5 with the paper's K = 7).

Under ``per_coordinate=True`` (the elementwise reading of the noise) the coordinates are
independent and each follows the 1-D :func:`marginal` of its own x_0 coordinate; the
posterior and the eps parameterisation hold coordinatewise with paths of the data's shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gmdiff.analytic.gaussian import GaussianMixture
from gmdiff.global_batch import per_example
from gmdiff.noise import OffsetMixtureNoise
from gmdiff.schedules import DiscreteVP

F64 = torch.float64
MAX_ATOMS = 2_000_000  # refuse to hold more atoms than this (resolution=0 at large t)


def _step(schedule: DiscreteVP, t: int, lo: int = 1) -> int:
    if not (isinstance(t, int) and lo <= t <= schedule.T):
        raise ValueError(f"step t must be an int in {lo}..T={schedule.T}, got t={t!r}")
    return t


# --------------------------------------------------------------------------------------
# gamma_{t,j}, gamma_t (Eqs. 3, 24)
# --------------------------------------------------------------------------------------


def gamma_matrix(schedule: DiscreteVP) -> Tensor:
    """G[t, j] = gamma_{t,j} for t, j = 0..T (lower triangular, row and column 0 zero), by
    the recursion gamma_{t,t} = beta_t, gamma_{t,j} = alpha_t gamma_{t-1,j} for j < t
    (GM-DDPM paper, Eq. 24: gamma_{t+1,j} = alpha_{t+1} gamma_{t,j}); the closed form of
    Eq. 3 is gamma_{t,j} = beta_j prod_{k=j+1}^t alpha_k."""
    b = schedule.betas.to(F64)
    T = len(b)
    G = torch.zeros(T + 1, T + 1, dtype=F64)
    for t in range(1, T + 1):
        G[t, :t] = (1.0 - b[t - 1]) * G[t - 1, :t]
        G[t, t] = b[t - 1]
    return G


def gamma_total(schedule: DiscreteVP) -> Tensor:
    """gamma_t for t = 0..T (gamma_0 = 0) by the recursion gamma_t = beta_t + alpha_t
    gamma_{t-1} (GM-DDPM paper, Eq. 24; with alpha_t = 1 - beta_t, gamma_t = 1 - ab_t)."""
    b = schedule.betas.to(F64)
    g = torch.zeros(len(b) + 1, dtype=F64)
    for t in range(1, len(b) + 1):
        g[t] = b[t - 1] + (1.0 - b[t - 1]) * g[t - 1]
    return g


def offset_coefficients(schedule: DiscreteVP, t: int) -> Tensor:
    """(sqrt(gamma_{t,1}), ..., sqrt(gamma_{t,t})), the weights of the offsets mu_{i_j} in
    x_t (GM-DDPM paper, Eq. 3); empty for t = 0."""
    return gamma_matrix(schedule)[_step(schedule, t, lo=0), 1 : t + 1].sqrt()


def _path_offsets(coef: Tensor, paths: Tensor, noise: OffsetMixtureNoise, like: Tensor) -> Tensor:
    """sum_j coef[..., j] mu_{paths[:, j]} with like's shape; coef is (n,) or (B, n)."""
    n = coef.shape[-1]
    c = noise.values.to(like)[paths[:, :n].clamp(min=0)]  # (B, n) or (B, n, *sample)
    a = coef.to(like)
    a = a[None] if a.ndim == 1 else a
    a = a.reshape(*a.shape, *([1] * (c.ndim - a.ndim)))  # broadcast over sample dims
    s = (a * c).sum(1)
    if not noise.per_coordinate:
        s = s.reshape(-1, *([1] * (like.ndim - 1)))
    return s * noise.unit_vector(like)


# --------------------------------------------------------------------------------------
# The offset sum and the marginal q(x_t | x_0) (Eqs. 4, 23)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetSum:
    """The law of S = sum_j a_j c_{i_j}, i_j i.i.d. ~ omega: atoms ``values`` with
    probabilities ``weights``; ``spread`` is the variance of S within each atom's group
    (zero for an exact atom). Mean and variance of S are exact in either case."""

    values: Tensor
    weights: Tensor
    spread: Tensor

    @property
    def exact(self) -> bool:
        return bool((self.spread == 0).all())

    def mean(self) -> Tensor:
        return (self.weights * self.values).sum()

    def var(self) -> Tensor:
        m = self.mean()
        return (self.weights * (self.spread + (self.values - m) ** 2)).sum()


def _merge(v: Tensor, w: Tensor, s: Tensor, width: float) -> tuple[Tensor, Tensor, Tensor]:
    """Group atoms that coincide (width = 0) or fall in one bin of ``width``; each group
    keeps its weight, mean and variance (moment matching)."""
    keep = w > 0
    v, w, s = v[keep], w[keep], s[keep]
    order = torch.argsort(v)
    v, w, s = v[order], w[order], s[order]
    if width > 0:
        key = torch.floor((v - v[0]) / width)
    else:
        tol = 1e-12 * max(1.0, float(v.abs().max()))
        key = torch.cat([v.new_zeros(1), (torch.diff(v) > tol).to(F64)]).cumsum(0)
    _, g = torch.unique_consecutive(key, return_inverse=True)
    n = int(g.max()) + 1
    W = v.new_zeros(n).index_add_(0, g, w)
    m = v.new_zeros(n).index_add_(0, g, w * v) / W
    spread = s + (v - m[g]) ** 2 if width > 0 else s  # coinciding atoms add no spread
    var = v.new_zeros(n).index_add_(0, g, w * spread) / W
    return m, W, var


def offset_sum(coeffs: Tensor, values: Tensor, probs: Tensor, resolution: float = 0.0) -> OffsetSum:
    """The law of S = sum_j coeffs_j c_{i_j}, with c = ``values`` drawn with ``probs``, by
    convolving one step at a time; after each step atoms that coincide, or with
    ``resolution > 0`` fall in one bin of that width, are merged (moment matching)."""
    if resolution < 0:
        raise ValueError(f"resolution must be >= 0, got {resolution}")
    c = torch.as_tensor(values, dtype=F64)
    p = torch.as_tensor(probs, dtype=F64)
    v, w, s = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    for a in torch.as_tensor(coeffs, dtype=F64):
        if len(v) * len(c) > MAX_ATOMS:
            raise ValueError(
                f"the offset sum has more than {MAX_ATOMS} atoms; pass a resolution > 0"
            )
        v = (v[:, None] + a * c[None]).reshape(-1)
        w = (w[:, None] * p[None]).reshape(-1)
        s = s.repeat_interleave(len(c))
        v, w, s = _merge(v, w, s, resolution)
    return OffsetSum(v, w, s)


@dataclass(frozen=True)
class OffsetMarginal:
    """q(x_t | x_0) of Eq. 4: the law of sqrt(ab_t) x_0 + S u (``signal``, one component
    per atom of S with the atom's spread along u as its covariance) convolved with
    N(0, noise_std^2 I), noise_std^2 = gamma_t. ``offsets`` is the law of S."""

    signal: GaussianMixture
    noise_std: float
    offsets: OffsetSum
    direction: Tensor

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x_t | x_0) at the rows of x (B, D)."""
        return self.signal.log_prob(x, self.noise_std)

    def component_log_probs(self, x: Tensor) -> Tensor:
        """log P(S = atom k) + log N(x; component k), (B, K')."""
        return self.signal.component_log_probs(x, self.noise_std)

    @property
    def mean(self) -> Tensor:
        """E[x_t | x_0] = sqrt(ab_t) x_0 + E[S] u."""
        w = self.signal.log_weights.exp()
        return (w[:, None] * self.signal.means).sum(0)

    @property
    def cov(self) -> Tensor:
        """Cov[x_t | x_0] = gamma_t I + Var[S] u u^T."""
        u = self.direction
        return self.noise_std**2 * torch.eye(len(u), dtype=F64) + self.offsets.var() * torch.outer(
            u, u
        )

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n samples (n, D) of the mixture (not of the step-by-step chain)."""
        y = self.signal.sample(n, generator)
        return y + self.noise_std * torch.randn(y.shape, dtype=F64, generator=generator)


def marginal(
    x0: Tensor,
    t: int,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
    *,
    resolution: float = 0.02,
) -> OffsetMarginal:
    """q(x_t | x_0) = sum_{i_{1:t}} omega_{i_1} ... omega_{i_t} N(x_t; sqrt(ab_t) x_0 +
    sum_j sqrt(gamma_{t,j}) mu_{i_j}, gamma_t I) (GM-DDPM paper, Eq. 4 / 23) for one x_0
    (D,), grouped by the value of the offset sum (see the module docstring): atoms closer
    than ``resolution * sqrt(gamma_t)`` are merged; ``resolution=0`` keeps them all."""
    _step(schedule, t)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be one flattened sample (D,), got shape {tuple(x0.shape)}")
    if noise.per_coordinate and x0.numel() > 1:
        raise ValueError(
            "with per_coordinate=True the coordinates are independent: take the 1-D marginal "
            "of each coordinate of x0 (with its entry of the direction u)"
        )
    x0 = x0.to(F64)
    sigma = float(gamma_total(schedule)[t].sqrt())
    S = offset_sum(offset_coefficients(schedule, t), noise.values, noise.probs, resolution * sigma)
    u = noise.unit_vector(x0[None])
    nu = float(u.norm())
    means = float(schedule.alpha_bar[t].sqrt()) * x0[None] + S.values[:, None] * u[None]
    U = (u / nu).expand(len(S.values), -1)[:, :, None]
    signal = GaussianMixture(means, U.clone(), (S.spread * nu**2)[:, None], S.weights.log())
    return OffsetMarginal(signal, sigma, S, u)


def sample_marginal(
    x0: Tensor,
    t: int | Tensor,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
    generator: torch.Generator | None = None,
    depth: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """x_t = sqrt(ab_t) x_0 + sqrt(gamma_t) eps + sum_{j<=t} sqrt(gamma_{t,j}) mu_{i_j}
    with i_j ~ omega and eps ~ N(0, I) (GM-DDPM paper, Eq. 3; Alg. 1, lines 3-4, where
    i_j are drawn with the mixture weights omega, not uniformly as line 3 prints).

    ``x0`` is a batch (B, ...), ``t`` an int or a (B,) tensor of steps in 0..T. Returns
    (x_t, eps, paths) with paths (B, max t) (with ``per_coordinate``, (B, max t, ...)):
    column j - 1 holds i_j, and -1 where j > t of that sample. ``depth`` (default max t)
    is the number of steps whose components are drawn: under DDP the training loss passes
    the global batch's max t, so that every rank draws as many as one process would."""
    B = x0.shape[0]
    t = torch.as_tensor(t, dtype=torch.long).expand(B).cpu()
    if (t < 0).any() or (t > schedule.T).any():
        raise ValueError(f"steps must lie in 0..T={schedule.T}")
    n = int(t.max()) if depth is None else depth
    if n < int(t.max()):
        raise ValueError(f"depth={depth} is below the largest step {int(t.max())}")
    coef = gamma_matrix(schedule)[t, 1 : n + 1].sqrt().to(x0.device)  # zero beyond t_b
    draws = [noise.draw(x0, generator) for _ in range(n)]
    paths = torch.stack(draws, 1) if n else x0.new_zeros((B, 0), dtype=torch.long)
    eps = per_example(
        lambda m: torch.randn(
            (m, *x0.shape[1:]), generator=generator, dtype=x0.dtype, device=x0.device
        ),
        B,
    )
    view = (-1, *([1] * (x0.ndim - 1)))
    ab = schedule.alpha_bar.to(x0)[t.to(x0.device)].reshape(view)
    gt = gamma_total(schedule).to(x0)[t.to(x0.device)].reshape(view)
    x_t = ab.sqrt() * x0 + gt.sqrt() * eps + _path_offsets(coef, paths, noise, x0)
    beyond = torch.arange(n, device=x0.device)[None] >= t.to(x0.device)[:, None]
    paths = paths.masked_fill(beyond.reshape(*beyond.shape, *([1] * (paths.ndim - 2))), -1)
    return x_t, eps, paths


# --------------------------------------------------------------------------------------
# The posterior q(x_{t-1} | x_t, x_0, i_{1:t}) and the eps parameterisation (Eqs. 8-9)
# --------------------------------------------------------------------------------------


def posterior(
    x_t: Tensor,
    x0: Tensor,
    t: int,
    paths: Tensor,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
) -> tuple[Tensor, float]:
    """q(x_{t-1} | x_t, x_0, i_{1:t}) = N(mean, var I) (GM-DDPM paper, Eqs. 29-30):

        mean = [gamma_{t-1} sqrt(alpha_t) (x_t - sqrt(beta_t) mu_{i_t})
                + beta_t (sqrt(ab_{t-1}) x_0 + sum_{j<t} sqrt(gamma_{t-1,j}) mu_{i_j})]
               / (beta_t + alpha_t gamma_{t-1}),
        var = beta_t gamma_{t-1} / (beta_t + alpha_t gamma_{t-1})

    (Eq. 29 prints sqrt(alpha_{t-1}) x_0 for sqrt(ab_{t-1}) x_0, and the third line of
    Eq. 30 drops a square root on beta_t). x_t (B, ...), x0 broadcastable to it, paths
    with i_1..i_t in columns 0..t-1 (see :func:`sample_marginal`)."""
    _step(schedule, t)
    if paths.shape[1] < t:
        raise ValueError(f"paths must hold i_1..i_t, got {paths.shape[1]} columns for t={t}")
    beta = float(schedule.betas[t - 1])
    alpha = 1.0 - beta
    g_prev = float(gamma_total(schedule)[t - 1])
    ab_prev = float(schedule.alpha_bar[t - 1])
    mu_t = noise.offset(paths[:, t - 1], x_t)
    earlier = _path_offsets(offset_coefficients(schedule, t - 1), paths, noise, x_t)
    denom = beta + alpha * g_prev
    mean = (
        g_prev * math.sqrt(alpha) * (x_t - math.sqrt(beta) * mu_t)
        + beta * (math.sqrt(ab_prev) * x0 + earlier)
    ) / denom
    return mean, beta * g_prev / denom


def mean_from_eps(
    x_t: Tensor,
    eps: Tensor,
    t: int,
    i_t: Tensor | None,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
) -> Tensor:
    """mu_theta(x_t, t, i_t) = (x_t - sqrt(beta_t) mu_{i_t} - beta_t sqrt(gamma_t) /
    (beta_t + alpha_t gamma_{t-1}) eps) / sqrt(alpha_t) (GM-DDPM paper, Eq. 9 / 36). With
    the eps of x_t (Eq. 3) it is the posterior mean of :func:`posterior` (Eq. 8 / 35);
    with a network's eps_theta(x_t, t) it is the model's reverse mean. ``i_t=None``
    subtracts no offset (the update of Algs. 3-4, which is DDPM's, since beta_t +
    alpha_t gamma_{t-1} = gamma_t = 1 - ab_t)."""
    _step(schedule, t)
    beta = float(schedule.betas[t - 1])
    alpha = 1.0 - beta
    g = gamma_total(schedule)
    coef = beta * math.sqrt(float(g[t])) / (beta + alpha * float(g[t - 1]))
    offset = 0.0 if i_t is None else math.sqrt(beta) * noise.offset(i_t, x_t)
    return (x_t - offset - coef * eps) / math.sqrt(alpha)


def reverse_variances(
    schedule: DiscreteVP, noise: OffsetMixtureNoise, like: Tensor, variance: str = "eq30"
) -> Tensor:
    """The variance per coordinate of the reverse step t = 1..T, entry t of a (T + 1,)
    float64 tensor (entry 0 unused, 0).

    ``"eq30"``: sigma_t^2 = beta_t gamma_{t-1} / (beta_t + alpha_t gamma_{t-1}), the variance
    of q(x_{t-1} | x_t, x_0, i_{1:t}) (GM-DDPM paper, Eq. 30), which every path shares.

    ``"eq34"``: sigma-tilde_t^2(i_t), the variance that Algs. 2-5 write, in the approximate
    form of the last line of Eq. 34:

        sigma_t^2 + beta_t^2 / (beta_t + alpha_t gamma_{t-1})^2 * [gamma_{t-1} E_k|mu_k|^2
            + ((sum_{j<t} sqrt(gamma_{t-1,j}))^2 - gamma_{t-1}) |E_k mu_k|^2] / D.

    The division by D, the number of coordinates of ``like``'s samples, is ours: Eq. 34 adds
    the squared norms to the variance of one coordinate (Sigma_theta = sigma_t^2(k) I), and
    sigma_t^2 + E|mu - mu~|^2 / D is the isotropic variance that minimises the expected KL
    of Eq. 31 written out in D dimensions; it makes every reading of the scalar means give
    one coordinate the same variance (mu_k = c_k u: E|mu_k|^2 = E[c^2] |u|^2, |E mu_k|^2 =
    E[c]^2 |u|^2; under the per-pixel reading each coordinate is such a 1-D problem). The
    bracket is the prior second moment of sum_{j<t} sqrt(gamma_{t-1,j}) mu_{i_j}, which the
    "~=" of Eq. 34 puts for its posterior variance given (x_t, x_0, i_t); it is that
    moment, not a variance (it keeps (sum_j sqrt(gamma_{t-1,j}))^2 |E mu|^2), and the two
    agree when E_k mu_k = 0, as for Sec. 4.1's means. sigma-tilde_t does not depend on i_t.
    """
    if variance not in ("eq30", "eq34"):
        raise ValueError(f"variance must be 'eq30' or 'eq34', got {variance!r}")
    b = schedule.betas.to(F64)
    g = gamma_total(schedule)
    denom = b + (1.0 - b) * g[:-1]  # beta_t + alpha_t gamma_{t-1}, t = 1..T
    var = torch.zeros(schedule.T + 1, dtype=F64)
    var[1:] = b * g[:-1] / denom
    if variance == "eq30":
        return var
    u = noise.unit_vector(like[:1].to(F64))
    per_coord = float((u * u).sum()) / u.numel()  # |u|^2 / D
    e_c = float((noise.probs * noise.values).sum())
    e_c2 = float((noise.probs * noise.values**2).sum())
    roots = gamma_matrix(schedule).sqrt().sum(1)[:-1]  # sum_{j<t} sqrt(gamma_{t-1,j})
    bracket = g[:-1] * e_c2 + (roots**2 - g[:-1]) * e_c**2
    var[1:] += b**2 / denom**2 * bracket * per_coord
    return var


# --------------------------------------------------------------------------------------
# The exact model of a GM-DDPM on Gaussian-mixture data
# --------------------------------------------------------------------------------------


def offset_laws(
    schedule: DiscreteVP, noise: OffsetMixtureNoise, resolution: float = 0.05
) -> list[OffsetSum]:
    """The laws of S_t = sum_{j<=t} sqrt(gamma_{t,j}) c_{i_j} for t = 0..T by the recursion
    S_t = sqrt(alpha_t) S_{t-1} + sqrt(beta_t) c_{i_t} (from gamma_{t,j} = alpha_t
    gamma_{t-1,j}, Eq. 24), atoms closer than ``resolution * sqrt(gamma_t)`` merged with
    their moments kept (as in :func:`offset_sum`) and atoms of weight < 1e-12 dropped."""
    c, p = noise.values, noise.probs.to(F64)
    b = schedule.betas.to(F64)
    g = gamma_total(schedule)
    v, w, s = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    laws = [OffsetSum(v, w, s)]
    for t in range(1, schedule.T + 1):
        a, sb = float((1 - b[t - 1]).sqrt()), float(b[t - 1].sqrt())
        v = (a * v[:, None] + sb * c[None]).reshape(-1)
        w = (w[:, None] * p[None]).reshape(-1)
        s = (a**2 * s).repeat_interleave(len(c))
        v, w, s = _merge(v, w, s, resolution * float(g[t].sqrt()))
        keep = w > 1e-12
        v, w, s = v[keep], w[keep] / w[keep].sum(), s[keep]
        laws.append(OffsetSum(v, w, s))
    return laws


class ExactGMDDPM(torch.nn.Module):
    """The optimal GM-DDPM model for Gaussian-mixture data: eps*(x_t, t) = E[eps | x_t] (the
    minimiser of Alg. 1's eps term) and the exact p(i_t | x_t) (the minimiser of its
    classifier term), with the eps network's signature ``forward(x, c_noise)`` and
    ``logits(x, c_noise)`` of :class:`gmdiff.nets.GMDDPMNet`, c_noise = n - 1 an integer.

    Given the data component m (N(mu_m, Sigma_m)), the atom a of S' = sqrt(alpha_t) S_{t-1}
    (:func:`offset_laws`) and i_t = k, x_t is Gaussian with mean sqrt(ab_t) mu_m +
    (v_a + sqrt(beta_t) c_k) u and covariance ab_t Sigma_m + gamma_t I + spread_a u u^T, and
    Cov(eps, x_t) = sqrt(gamma_t) I; so E[eps | x_t, m, a, k] = sqrt(gamma_t) C^-1 (x_t -
    mean), averaged with the posterior weights of (m, a, k), whose k-marginal is p(i_t |
    x_t). Exact up to the grouping of :func:`offset_laws` (moment-matched atoms)."""

    def __init__(
        self,
        data: GaussianMixture,
        schedule: DiscreteVP,
        noise: OffsetMixtureNoise,
        resolution: float = 0.25,
        chunk: int = 512,
    ) -> None:
        super().__init__()
        if noise.per_coordinate:
            raise ValueError("ExactGMDDPM needs one component per step (per_coordinate=False)")
        self.data, self.schedule, self.noise, self.chunk = data, schedule, noise, chunk
        self.laws = offset_laws(schedule, noise, resolution)
        d = data.means.to(F64)
        self.covs = torch.einsum(
            "kdr,kr,ker->kde", data.U.to(F64), data.lam.to(F64), data.U.to(F64)
        )
        self.u = noise.unit_vector(d[:1])

    def _posterior(self, x: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """(E[eps | x_t], p(i_t | x_t)) at step n for the rows of x (B, D), float64."""
        sch, u = self.schedule, self.u
        ab, g = float(sch.alpha_bar[n]), 1.0 - float(sch.alpha_bar[n])
        beta = float(sch.betas[n - 1])
        prev = self.laws[n - 1]
        v = math.sqrt(1 - beta) * prev.values  # atoms of S' (A,)
        spread = (1 - beta) * prev.spread
        D = x.shape[1]
        cov = ab * self.covs[:, None] + g * torch.eye(D, dtype=F64)  # (M, 1, D, D)
        cov = cov + spread[None, :, None, None] * torch.outer(u, u)  # (M, A, D, D)
        P = torch.linalg.inv(cov)  # (M, A, D, D)
        shift = v[:, None] + math.sqrt(beta) * self.noise.values[None]  # (A, K)
        logw = (
            self.data.log_weights.to(F64)[:, None, None]
            + prev.weights.log()[None, :, None]
            + self.noise.probs.to(F64).log()[None, None]
            - 0.5 * torch.logdet(cov)[:, :, None]
        )  # (M, A, K)
        Pu = P @ u  # (M, A, D)
        uPu = Pu @ u  # (M, A)
        eps_out, p_out = [], []
        # x - mean_{mak} = z_m - shift_{ak} u with z_m = x - sqrt(ab) mu_m
        for xb in x.split(self.chunk):
            z = xb[:, None] - math.sqrt(ab) * self.data.means.to(F64)[None]  # (B, M, D)
            Pz = torch.einsum("made,bme->bmad", P, z)
            zPz = (z[:, :, None] * Pz).sum(-1)  # (B, M, A)
            zPu = torch.einsum("bmd,mad->bma", z, Pu)
            maha = (
                zPz[..., None] - 2 * shift * zPu[..., None] + shift**2 * uPu[..., None]
            )  # (B, M, A, K)
            logp = logw[None] - 0.5 * maha
            post = torch.softmax(logp.flatten(1), 1).reshape(logp.shape)
            w_ma, ws_ma = post.sum(-1), (post * shift).sum(-1)  # (B, M, A)
            e = torch.einsum("bma,bmad->bd", w_ma, Pz) - torch.einsum("bma,mad->bd", ws_ma, Pu)
            eps_out.append(math.sqrt(g) * e)
            p_out.append(post.sum((1, 2)))
        return torch.cat(eps_out), torch.cat(p_out)

    def _step_of(self, c_noise: Tensor) -> int:
        n = c_noise.to(F64) + 1
        if not torch.allclose(n, n.round(), atol=1e-4) or not (n == n[0]).all():
            raise ValueError("ExactGMDDPM is evaluated at one integer step per batch")
        return int(n[0].round())

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        return self._posterior(x.to(F64), self._step_of(c_noise))[0].to(x.dtype)

    def logits(self, x: Tensor, c_noise: Tensor) -> Tensor:
        """log p(i_t | x_t), (B, K)."""
        p = self._posterior(x.to(F64), self._step_of(c_noise))[1]
        return p.clamp(min=1e-300).log().to(x.dtype)
