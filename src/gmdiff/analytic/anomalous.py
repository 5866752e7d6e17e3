"""Heavy-tailed increments and the paths they drive: symmetric alpha-stable (Levy) laws,
the two-scale Gaussian mixture of GM-SGM, and Brownian motion.

Conventions follow the GM-SGM paper (Sec. 3.1-3.2). Its symmetric alpha-stable law
SaS(x; alpha, gamma) has the characteristic function exp(-1/2 |gamma y|^alpha)
(the pdf printed below Eq. 6 is the inverse Fourier transform of it). In scipy's
``levy_stable`` (parametrisation S1, characteristic function exp(-|c y|^alpha)) this is
the scale c = gamma * 2^(-1/alpha). With gamma = 1 and alpha = 2 it is the standard
Gaussian (the paper states gamma = 1/2 for that case, which under its own formula gives
N(0, 1/4)).

The d-dimensional law of Eq. 6 depends on |y| only, so it is isotropic; it is sampled
as a sub-Gaussian vector sqrt(A) G with A a totally skewed (alpha/2)-stable variable
(Samorodnitsky & Taqqu 1994, Sec. 2.5). Stable variables are drawn with the
Chambers-Mallows-Stuck formula from torch generators, so every draw is reproducible and
scipy serves only as the independent reference in the tests.

Path functions draw the Gaussian directions G first, then the extra randomness (the
stable radius A or the mixture component); with the same seed (the paper fixes 2023 for
its Fig. 2) the three paths therefore share their Gaussian draws and differ only in how
each step is stretched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import integrate
from scipy.stats import levy_stable, norm
from torch import Tensor


def _check_alpha(alpha: float, lo_open: float = 0.0) -> None:
    if not (lo_open < alpha <= 2.0):
        raise ValueError(f"stability index alpha must lie in ({lo_open}, 2], got {alpha}")


def scipy_scale(alpha: float, gamma: float = 1.0) -> float:
    """scipy ``levy_stable`` scale c of the paper's SaS(alpha, gamma): c = gamma 2^(-1/alpha),
    since exp(-1/2 |gamma y|^alpha) = exp(-|c y|^alpha) (GM-SGM paper, pdf below Eq. 6)."""
    _check_alpha(alpha)
    if gamma <= 0:
        raise ValueError(f"scale gamma must be > 0, got {gamma}")
    return gamma * 2.0 ** (-1.0 / alpha)


def sas_pdf(x: np.ndarray, alpha: float, gamma: float = 1.0) -> np.ndarray:
    """1-D density of the paper's SaS(x; alpha, gamma) (GM-SGM paper, below Eq. 6), via scipy."""
    c = scipy_scale(alpha, gamma)
    x = np.asarray(x, dtype=np.float64)
    if alpha == 2.0:  # scipy's alpha = 2 law is N(0, 2 c^2)
        return norm.pdf(x, scale=math.sqrt(2.0) * c)
    return np.asarray(levy_stable.pdf(x, alpha, 0.0, scale=c), dtype=np.float64).reshape(x.shape)


def sas_pdf_fourier(x: np.ndarray, alpha: float, gamma: float = 1.0) -> np.ndarray:
    """The same 1-D density by numerical quadrature of the paper's integral
    (1/pi) int_0^inf exp(-1/2 (gamma y)^alpha) cos(x y) dy (GM-SGM paper, below Eq. 6),
    using QUADPACK's Fourier-integral routine; independent of scipy's stable code."""
    _check_alpha(alpha)
    if gamma <= 0:
        raise ValueError(f"scale gamma must be > 0, got {gamma}")

    def f(y: float) -> float:
        return math.exp(-0.5 * (gamma * y) ** alpha)

    out = []
    for xi in np.atleast_1d(np.asarray(x, dtype=np.float64)):
        if xi == 0.0:
            val = integrate.quad(f, 0.0, np.inf, epsabs=1e-13, epsrel=1e-11)[0]
        else:
            val = integrate.quad(f, 0.0, np.inf, weight="cos", wvar=abs(xi))[0]
        out.append(val / math.pi)
    return np.array(out)


def sample_stable(
    n: int | Sequence[int],
    alpha: float,
    skew: float = 0.0,
    scale: float = 1.0,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draws of the stable law S_alpha(scale, skew, 0) (Samorodnitsky-Taqqu / scipy S1
    parametrisation) by the Chambers-Mallows-Stuck method.

    Supports alpha in (0, 2]; skew must be 0 when alpha = 1. The GM-SGM paper (Sec. 3.2)
    cites Mantegna (1994) for this step; CMS is exact rather than approximate.
    """
    _check_alpha(alpha)
    if not -1.0 <= skew <= 1.0:
        raise ValueError(f"skewness must lie in [-1, 1], got {skew}")
    if alpha == 1.0 and skew != 0.0:
        raise ValueError("alpha = 1 is supported only for skew = 0 (the Cauchy law)")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    shape = (n,) if isinstance(n, int) else tuple(n)
    v = (torch.rand(shape, dtype=dtype, generator=generator) - 0.5) * math.pi
    w = -torch.log1p(-torch.rand(shape, dtype=dtype, generator=generator))  # Exp(1)
    if skew == 0.0:
        b, s = 0.0, 1.0
    else:
        t = skew * math.tan(math.pi * alpha / 2)
        b, s = math.atan(t) / alpha, (1.0 + t * t) ** (1.0 / (2.0 * alpha))
    x = (
        s
        * torch.sin(alpha * (v + b))
        / torch.cos(v) ** (1.0 / alpha)
        * (torch.cos(v - alpha * (v + b)) / w) ** ((1.0 - alpha) / alpha)
    )
    return scale * x


def sample_isotropic_sas(
    n: int,
    dim: int,
    alpha: float,
    gamma: float = 1.0,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """n draws (n, dim) of the isotropic SaS law with characteristic function
    exp(-1/2 |gamma y|^alpha) (GM-SGM paper, below Eq. 6), as sqrt(A) G with
    G ~ N(0, s^2 I), s^2 = 2 c^2, c = gamma 2^(-1/alpha), and
    A ~ S_{alpha/2}(cos(pi alpha/4)^(2/alpha), 1, 0); at alpha = 2, A = 1."""
    c = scipy_scale(alpha, gamma)
    g = torch.randn(n, dim, dtype=dtype, generator=generator) * (math.sqrt(2.0) * c)
    if alpha == 2.0:
        return g
    a = sample_stable(
        n,
        alpha / 2,
        skew=1.0,
        scale=math.cos(math.pi * alpha / 4) ** (2.0 / alpha),
        generator=generator,
        dtype=dtype,
    )
    return a.sqrt()[:, None] * g


def _check_mixture(scales: Sequence[float], weights: Sequence[float] | None) -> np.ndarray:
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 1 or scales.size == 0 or np.any(scales <= 0):
        raise ValueError(
            f"mixture scales must be a non-empty list of positive numbers, got {scales}"
        )
    w = np.full(scales.size, 1.0 / scales.size) if weights is None else np.asarray(weights, float)
    if w.shape != scales.shape or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-12:
        raise ValueError(f"mixture weights must be non-negative, one per scale, sum 1; got {w}")
    return w


def gm_pdf(
    x: np.ndarray, scales: Sequence[float], weights: Sequence[float] | None = None
) -> np.ndarray:
    """1-D density of sum_k w_k N(0, scales_k^2): the paper's N_mix(0, {I, beta^2 I}) for
    scales (1, beta) and equal weights (GM-SGM paper, Sec. 3.2)."""
    w = _check_mixture(scales, weights)
    x = np.asarray(x, dtype=np.float64)[..., None]
    return (w * norm.pdf(x, scale=np.asarray(scales, float))).sum(-1)


def gm_cdf(
    x: np.ndarray, scales: Sequence[float], weights: Sequence[float] | None = None
) -> np.ndarray:
    """1-D distribution function of sum_k w_k N(0, scales_k^2)."""
    w = _check_mixture(scales, weights)
    x = np.asarray(x, dtype=np.float64)[..., None]
    return (w * norm.cdf(x, scale=np.asarray(scales, float))).sum(-1)


def gm_increments(
    n: int,
    dim: int,
    beta: float,
    dt: float = 1.0,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """n increments (n, dim) of the Gaussian-mixture Brownian motion dw^{1,beta}
    (GM-SGM paper, Eq. 8): N_mix(0, {dt I, beta^2 dt I}), one component per increment
    (the whole vector is stretched by beta, not each coordinate independently)."""
    from gmdiff.noise import check_beta, coin_scales

    beta = check_beta(beta)
    if dt <= 0:
        raise ValueError(f"time step dt must be > 0, got {dt}")
    g = torch.randn(n, dim, dtype=dtype, generator=generator)
    return math.sqrt(dt) * coin_scales(n, (beta, 1.0), generator, dtype)[:, None] * g


def levy_increments(
    n: int,
    dim: int,
    alpha: float,
    dt: float = 1.0,
    gamma: float = 1.0,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """n increments of the stable Levy process L^alpha over dt: SaS(alpha, gamma dt^(1/alpha))
    (GM-SGM paper, Eq. 6), isotropic in ``dim`` dimensions."""
    if dt <= 0:
        raise ValueError(f"time step dt must be > 0, got {dt}")
    return sample_isotropic_sas(
        n, dim, alpha, gamma * dt ** (1.0 / alpha), generator=generator, dtype=dtype
    )


def brownian_increments(
    n: int,
    dim: int,
    dt: float = 1.0,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """n increments N(0, dt I) of Brownian motion (GM-SGM paper, Eq. 4)."""
    if dt <= 0:
        raise ValueError(f"time step dt must be > 0, got {dt}")
    return math.sqrt(dt) * torch.randn(n, dim, dtype=dtype, generator=generator)


def path(increments: Tensor) -> Tensor:
    """The path (n + 1, dim) started at the origin: cumulative sums of the increments."""
    zero = torch.zeros(1, increments.shape[1], dtype=increments.dtype)
    return torch.cat([zero, increments.cumsum(0)])


def three_paths(
    n_steps: int,
    alpha: float = 1.8,
    beta: float = 2.0,
    dt: float = 1.0,
    seed: int = 2023,
    dim: int = 2,
) -> dict[str, Tensor]:
    """The three paths of the GM-SGM paper's Fig. 2, each simulated from a generator seeded
    with ``seed``: anomalous diffusion dL^alpha, Gaussian-mixture Brownian motion
    dw^{1,beta} and Brownian motion dw, each (n_steps + 1, dim)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return {
        "levy": path(levy_increments(n_steps, dim, alpha, dt, generator=gen())),
        "gm": path(gm_increments(n_steps, dim, beta, dt, generator=gen())),
        "brownian": path(brownian_increments(n_steps, dim, dt, generator=gen())),
    }
