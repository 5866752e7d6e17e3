"""Noise models: the distribution of the standardized noise z in x_t = alpha x_0 + sigma z,
used by the training losses (:mod:`gmdiff.losses`) and by the stochastic samplers for their
increments (:func:`gmdiff.samplers.ddpm`, :func:`gmdiff.samplers.ddim`,
:func:`gmdiff.samplers.ve_pc`).

A noise model may depend on the noise level: the caller passes the level's ``alpha`` and
``sigma`` (tensors broadcastable to x0, or None when no level applies). Gaussian noise
ignores them; DDGM's Gamma noise (Nachmani et al. 2021) needs them, because the shape of its
Gamma distribution is set by the signal-to-noise ratio.

GM-DDPM's offset noise (:class:`OffsetMixtureNoise`) lives beside the protocol rather than in
it: its x_t carries a sum of offsets over all earlier steps whose law depends on the whole
schedule, and its eps target is only the Gaussian part, so it is drawn per step here and
per level (with its component path) by :func:`gmdiff.analytic.gm_ddpm.sample_marginal`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import torch
from torch import Tensor


class NoiseModel(Protocol):
    """The noise a loss perturbs data with, x_t = alpha x0 + sigma z, and the regression
    target it implies.

    ``sample(x0, generator, alpha=None, sigma=None)`` draws standardized noise z with the
    shape, dtype and device of ``x0`` at the noise level (alpha, sigma).
    ``score_target(z, sigma)`` returns the target the network's score at x_t regresses on,
    with ``sigma`` already broadcast to z's shape. For N(0, I) noise this is ``-z / sigma``,
    the score of the perturbation kernel N(x_t; alpha x0, sigma^2 I).
    """

    def sample(
        self,
        x0: Tensor,
        generator: torch.Generator | None,
        alpha: Tensor | float | None = None,
        sigma: Tensor | float | None = None,
    ) -> Tensor: ...

    def score_target(self, z: Tensor, sigma: Tensor) -> Tensor: ...


class GaussianNoise:
    """Standard normal noise; score target -z / sigma (Song et al. 2021, Eq. 7)."""

    def sample(self, x0: Tensor, generator: torch.Generator | None, alpha=None, sigma=None):
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)

    def score_target(self, z: Tensor, sigma: Tensor) -> Tensor:
        return -z / sigma


def standard_gamma(shape: Tensor, generator: torch.Generator | None) -> Tensor:
    """(G - k) / sqrt(k) for G ~ Gamma(k, 1) elementwise, k = ``shape`` (> 0, float64), drawn
    with ``generator`` (torch's own Gamma sampler takes no generator).

    Marsaglia & Tsang (2000): for k >= 1, d = k - 1/3, c = 1 / sqrt(9 d), G = d (1 + c x)^3
    with x ~ N(0, 1), accepted when log u < x^2 / 2 + d - d v + d log v (v = (1 + c x)^3);
    rejected entries are redrawn. The standardized value is formed as
    (d (v - 1) - 1/3) / sqrt(k) with v - 1 expanded, so it stays exact when k is huge
    (DDGM's shapes reach 1e10). For k < 1, G = G' U^(1/k) with G' ~ Gamma(k + 1, 1).
    """
    k = shape.to(torch.float64)
    if not (k > 0).all():
        raise ValueError("Gamma shape parameters must be > 0")
    small = k < 1
    kk = torch.where(small, k + 1, k)
    d = kk - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(k)
    todo = torch.ones_like(k, dtype=torch.bool)
    opts = {"generator": generator, "dtype": torch.float64, "device": k.device}
    while todo.any():
        x = torch.randn(k.shape, **opts)
        u = torch.rand(k.shape, **opts)
        cx = c * x
        vm1 = cx * (3.0 + cx * (3.0 + cx))  # (1 + cx)^3 - 1
        ok = (vm1 > -1) & (torch.log(u) < 0.5 * x**2 - d * vm1 + d * torch.log1p(vm1))
        new = todo & ok
        out = torch.where(new, d * vm1 - 1.0 / 3.0, out)  # G - kk
        todo &= ~ok
    if small.any():  # G = (kk + out) U^(1/k), standardized with k
        u = torch.rand(k.shape, **opts)
        g = (kk + out) * torch.exp(torch.log(u) / k)
        out = torch.where(small, g - k, out + (kk - k))
    return out / torch.sqrt(k)


class GammaNoise:
    """DDGM's Gamma noise (Nachmani, Roman and Wolf 2021, "Denoising diffusion Gamma
    models"): the forward jumps are centred Gamma variables whose sum up to level (alpha,
    sigma) is Gamma(k_bar, theta) - k_bar theta with theta = alpha theta_0 and
    k_bar theta^2 = sigma^2, i.e. shape ``k_bar = sigma^2 / (alpha theta_0)^2``. Standardized,
    z = (G - k_bar) / sqrt(k_bar), G ~ Gamma(k_bar, 1): mean 0, variance 1, skewness
    2 / sqrt(k_bar) = 2 theta_0 alpha / sigma, so the noise is Gaussian at high noise and
    skewed at low noise, more so for larger ``theta_0``.

    (With DDGM's discrete k_t = beta_t / (alpha_bar_t theta_0^2), k_bar_t = sum of k_t and
    theta_t = sqrt(alpha_bar_t) theta_0, k_bar_t theta_t^2 = 1 - alpha_bar_t exactly: both
    sides obey u_t = alpha_t u_{t-1} + beta_t with u_0 = 0. So the closed form above is
    DDGM's k_bar_t.)

    The score target is the Gaussian one, -z / sigma: DDGM trains the eps-network on the
    standardized Gamma noise with the usual L_simple. Used for sampling, ``sample`` at the
    level of the step's end point gives DDGM's reverse-step noise (their Alg. 2).
    """

    def __init__(self, theta0: float) -> None:
        if not (math.isfinite(theta0) and theta0 > 0):
            raise ValueError(f"theta0 must be a finite number > 0, got theta0={theta0!r}")
        self.theta0 = float(theta0)

    def shape(self, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        """k_bar = sigma^2 / (alpha theta_0)^2 (float64)."""
        a = torch.as_tensor(alpha, dtype=torch.float64)
        s = torch.as_tensor(sigma, dtype=torch.float64)
        return (s / (a * self.theta0)) ** 2

    def sample(self, x0: Tensor, generator: torch.Generator | None, alpha=None, sigma=None):
        if alpha is None or sigma is None:
            raise ValueError(
                "GammaNoise needs the noise level: call sample(x0, generator, alpha=..., sigma=...)"
            )
        k = self.shape(alpha, sigma).to(x0.device).expand(x0.shape)
        if not (k > 0).all():
            raise ValueError("GammaNoise needs sigma > 0 at every sample")
        return standard_gamma(k, generator).to(x0.dtype)

    def score_target(self, z: Tensor, sigma: Tensor) -> Tensor:
        return -z / sigma


# --------------------------------------------------------------------------------------
# GM-DDPM's Gaussian-mixture (offset) noise
# --------------------------------------------------------------------------------------

GM_DDPM_BASE = (0.0, 1.0, -1.0, math.sqrt(2), -math.sqrt(2), math.sqrt(3), -math.sqrt(3))
"""mu_base of the GM-DDPM paper, Sec. 4.1."""
GM_DDPM_WEIGHTS = (0.4, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05)
"""omega of the GM-DDPM paper, Sec. 4.1 (E[mu_base] = 0, E[mu_base^2] = 1)."""


class OffsetMixtureNoise:
    """GM-DDPM's forward noise, eps_t ~ sum_k omega_k N(mu_k, I) (GM-DDPM paper, Eq. 1 with
    sigma_k = 1 as in Eq. 4), drawn as "pick i_t ~ omega, then add N(mu_{i_t}, I)" (Eq. 2).
    The means are mu_k = lam * base_k * u, base = mu_base and omega of Sec. 4.1 by default.

    Reading of the scalar means. Eq. 1 is a K-component mixture in R^D with vector means
    and one component index per step (Eq. 3: one i_j per step; Alg. 1-2: i_t is one class
    of a K-way classifier p(i_t | x_t)), so a scalar base_k stands for a fixed vector
    base_k * u, and the default is u = 1 (``direction="ones"``): every coordinate of the
    image is shifted by the same lam * base_k, the "random global force" of Sec. 1.
    Alternatives: ``direction="unit"``, u = 1 / sqrt(D) (|mu_k| = lam |base_k| whatever D);
    a tensor u of one sample's shape; and ``per_coordinate=True``, the elementwise reading
    in which every coordinate draws its own component (i_t then has the data's shape and
    the noise is i.i.d. over coordinates; it is not a K-component mixture in R^D, and
    Alg. 2's K-way classifier does not fit it).
    """

    def __init__(
        self,
        lam: float = 1.0,
        base: Sequence[float] = GM_DDPM_BASE,
        weights: Sequence[float] = GM_DDPM_WEIGHTS,
        *,
        direction: Literal["ones", "unit"] | Tensor = "ones",
        per_coordinate: bool = False,
    ) -> None:
        b = torch.as_tensor(list(base), dtype=torch.float64)
        w = torch.as_tensor(list(weights), dtype=torch.float64)
        if b.ndim != 1 or len(b) == 0 or w.shape != b.shape:
            raise ValueError(f"need one weight per base mean, got base={base}, weights={weights}")
        if not (torch.isfinite(b).all() and (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-9):
            raise ValueError(f"need finite means and weights >= 0 summing to 1, got {weights}")
        if not (isinstance(lam, int | float) and math.isfinite(lam)):
            raise ValueError(f"lam must be a finite number, got lam={lam!r}")
        if isinstance(direction, str) and direction not in ("ones", "unit"):
            raise ValueError(f"direction must be 'ones', 'unit' or a tensor, got {direction!r}")
        self.lam, self.base, self.probs = float(lam), b, w
        self.direction, self.per_coordinate = direction, bool(per_coordinate)

    @property
    def K(self) -> int:
        return len(self.base)

    @property
    def values(self) -> Tensor:
        """The scalar offsets c_k = lam * base_k (K,), float64."""
        return self.lam * self.base

    def unit_vector(self, like: Tensor) -> Tensor:
        """u, with the shape of one sample of ``like`` (dtype and device of ``like``)."""
        shape = like.shape[1:]
        if isinstance(self.direction, Tensor):
            if self.direction.shape != shape:
                raise ValueError(
                    f"direction has shape {tuple(self.direction.shape)}, samples {tuple(shape)}"
                )
            return self.direction.to(like)
        u = torch.ones(shape, dtype=like.dtype, device=like.device)
        return u / math.sqrt(u.numel()) if self.direction == "unit" else u

    def offset(self, i: Tensor, like: Tensor) -> Tensor:
        """mu_i with the shape of ``like``: i is (B,) (one component per sample) or, with
        ``per_coordinate``, of ``like``'s shape."""
        if (i < 0).any() or (i >= self.K).any():
            raise ValueError(f"component indices must lie in 0..{self.K - 1}")
        c = self.values.to(like)[i]
        if not self.per_coordinate:
            c = c.reshape(-1, *([1] * (like.ndim - 1)))
        return c * self.unit_vector(like)

    def draw(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        """Component indices i ~ omega (long): (B,) or, with ``per_coordinate``, like's shape."""
        n = like.numel() if self.per_coordinate else like.shape[0]
        p = self.probs.to(like.device)
        i = torch.multinomial(p, n, replacement=True, generator=generator)
        return i.reshape(like.shape) if self.per_coordinate else i

    def step(self, like: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One forward step's noise and its component: (eps_t, i_t) with eps_t = mu_{i_t} +
        z, z ~ N(0, I) of ``like``'s shape (Eq. 2: x_t = sqrt(alpha_t) x_{t-1} +
        sqrt(beta_t) eps_t)."""
        i = self.draw(like, generator)
        z = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        return self.offset(i, like) + z, i
