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

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from gmdiff.global_batch import current_rows, per_example
from gmdiff.schedules import per_sample

_BATCH_INDEX: ContextVar[int | None] = ContextVar("gmdiff_batch_index", default=None)


@contextlib.contextmanager
def batch_index(step: int) -> Iterator[None]:
    """Within the block, noise models that depend on the training step (the alternation of
    :class:`MixtureNoise`) see ``step``; :class:`gmdiff.train.Trainer` wraps each step."""
    token = _BATCH_INDEX.set(int(step))
    try:
        yield
    finally:
        _BATCH_INDEX.reset(token)


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
        return _gaussian(x0, generator)

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
        rows = current_rows()
        if rows is not None and rows.sharded:
            raise ValueError(
                "GammaNoise's rejection sampler draws as many rounds as its slowest entry "
                "needs, which differs between DDP ranks, so a DDP run with gamma noise would "
                "depend on the number of processes; train it in one process"
            )
        k = self.shape(alpha, sigma).to(x0.device).expand(x0.shape)
        if not (k > 0).all():
            raise ValueError("GammaNoise needs sigma > 0 at every sample")
        return standard_gamma(k, generator).to(x0.dtype)

    def score_target(self, z: Tensor, sigma: Tensor) -> Tensor:
        return -z / sigma


# --------------------------------------------------------------------------------------
# GM-SGM's Gaussian-mixture noise (GM-SGM paper, Sec. 3.2, Eqs. 9-11, App. A.5)
# --------------------------------------------------------------------------------------


def check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta):
        raise ValueError(f"beta must be a finite number >= 1, got beta={beta!r}")
    if beta < 1:
        raise ValueError(
            f"beta must be >= 1 (GM-SGM paper, Eq. 9: the large-jump component N(0, beta^2 sigma^2 I) "
            f"has beta >= 1; beta = 1 is the plain SGM, the paper's default is 2), got beta={beta}"
        )
    return float(beta)


def coin_scales(
    n: int, scales: tuple[float, float], generator: torch.Generator | None, dtype=torch.float64
) -> Tensor:
    """n factors, each ``scales[0]`` or ``scales[1]`` with probability 1/2 (one uniform draw
    per factor): the per-sample stretch of N_mix(0, {I, beta^2 I}) (GM-SGM paper, Sec. 3.2;
    Eq. 8's increments of dw^{1,beta})."""
    u = torch.rand(n, dtype=dtype, generator=generator)
    first, second = (torch.tensor(float(s), dtype=dtype) for s in scales)
    return torch.where(u < 0.5, first, second)


def _gaussian(x0: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) of x0's shape, per example of the global batch (:func:`per_example`)."""
    rest, opts = x0.shape[1:], {"dtype": x0.dtype, "device": x0.device}
    return per_example(lambda n: torch.randn((n, *rest), generator=generator, **opts), len(x0))


class _TotalNoiseTarget:
    """Shared regression target: ``-z / sigma`` for the total standardized noise z, i.e.
    ``-(beta~ eta) / sigma^2`` with eta = sigma z_0 (GM-SGM paper, Eq. 11; see module docstring)."""

    def score_target(self, z: Tensor, sigma: Tensor) -> Tensor:
        return -z / sigma


class MixtureNoise(_TotalNoiseTarget):
    """Noise ``z = B eta``, eta ~ N(0, I), with the linear map B drawn from a finite set:
    ``components[k](eta)`` with probability ``probs[k]`` (GM-SGM paper, Eq. 11 for B = beta~ I
    and App. A.5 for general B).

    ``alternate=False``: B is drawn independently for every sample of every batch.
    ``alternate=True``: the whole batch of training step n (n = 0, 1, ...) uses component
    n mod K -- Alg. 1's deterministic alternation "to reduce the stochasticity of
    training" (with components (beta, 1): odd batches use beta, even ones 1). The step is
    the one :class:`gmdiff.train.Trainer` announces with :func:`batch_index`, so a resumed
    run alternates exactly as an uninterrupted one; outside a trainer the n-th call uses
    the call counter ``calls``.
    """

    def __init__(
        self,
        components: Sequence[Callable[[Tensor], Tensor]],
        probs: Sequence[float] | None = None,
        *,
        alternate: bool = False,
        names: Sequence[str] | None = None,
    ) -> None:
        K = len(components)
        if K == 0:
            raise ValueError("components must hold at least one linear map")
        p = (
            torch.full((K,), 1.0 / K, dtype=torch.float64)
            if probs is None
            else torch.tensor(list(probs), dtype=torch.float64)
        )
        if p.shape != (K,) or (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-9:
            raise ValueError(f"probs must be {K} non-negative numbers summing to 1, got {probs}")
        if alternate and not torch.allclose(p, torch.full_like(p, 1.0 / K)):
            raise ValueError(
                "alternate=True cycles through the components, which gives equal weights; "
                f"pass probs=None or alternate=False, got probs={probs}"
            )
        self.components, self.probs, self.alternate = list(components), p, alternate
        self.names = list(names) if names is not None else [f"B{k}" for k in range(K)]
        self.calls = 0

    def draw_components(self, n: int, generator: torch.Generator | None, device) -> Tensor:
        """Indices (n,) of the component each sample uses; advances ``calls``. Alternation
        follows the trainer's step (:func:`batch_index`) when one is set, so a resumed
        run continues the cycle where it stopped; else the call counter."""
        k = len(self.components)
        if self.alternate:
            n_batch = _BATCH_INDEX.get()
            c = self.calls if n_batch is None else n_batch
            idx = torch.full((n,), c % k, dtype=torch.long, device=device)
        else:
            p = self.probs.float().to(device)
            draw = lambda m: torch.multinomial(p.expand(m, k), 1, generator=generator)[:, 0]
            idx = per_example(draw, n)
        self.calls += 1
        return idx

    def sample(self, x0: Tensor, generator: torch.Generator | None, alpha=None, sigma=None):
        eta = _gaussian(x0, generator)
        idx = self.draw_components(x0.shape[0], generator, x0.device)
        z = torch.zeros_like(eta)
        for k, comp in enumerate(self.components):
            mask = per_sample(idx == k, eta)
            if mask.any():
                z = torch.where(mask, comp(eta), z)
        return z


class ScaleMixtureNoise(MixtureNoise):
    """Discrete p(beta~): z = beta~ eta with beta~ = ``scales[k]`` w.p. ``probs[k]``; the
    marginal of z is sum_k p_k N(0, scales_k^2 I) (GM-SGM paper, Sec. 3.2 and Eq. 11). Scales
    must be > 0 (App. A.6 tries {0.5, 2}); the paper's own family is :func:`gm_sgm_noise`."""

    def __init__(
        self, scales: Sequence[float], probs: Sequence[float] | None = None, *, alternate=False
    ) -> None:
        scales = [float(s) for s in scales]
        if not scales or any(not (math.isfinite(s) and s > 0) for s in scales):
            raise ValueError(f"scales must be finite and > 0, got {scales}")
        self.scales = scales
        comps = [functools.partial(torch.mul, other=s) for s in scales]
        super().__init__(comps, probs, alternate=alternate, names=[f"{s:g}" for s in scales])


def gm_sgm_noise(beta: float = 2.0, *, alternate: bool = True) -> ScaleMixtureNoise:
    """The paper's training noise N_mix(0, {I, beta^2 I}) (Sec. 3.2, Eqs. 9-10): with
    ``alternate=True`` (Alg. 1) the batches alternate beta~ = beta (odd calls) and beta~ = 1
    (even calls); with ``alternate=False`` every sample draws beta~ in {1, beta} with
    probability 1/2 (the "uniform sampling" of the objectives that Sec. 3.3 mentions).
    Raises ValueError for beta < 1. beta = 1 gives plain Gaussian noise (the SGM)."""
    beta = check_beta(beta)
    return ScaleMixtureNoise((beta, 1.0), alternate=alternate)


class ContinuousScaleNoise(_TotalNoiseTarget):
    """Continuous p(beta~) (GM-SGM paper, Sec. 4.1 and Eq. 11): z = beta~ eta with one beta~ per
    sample, uniform on [low, high] (``law="uniform"``) or log-uniform (``"loguniform"``).
    Requires 1 <= low <= high (beta~ < 1 is outside the paper's large-jump family)."""

    def __init__(self, low: float = 1.0, high: float = 2.0, law: str = "uniform") -> None:
        low, high = check_beta(low), check_beta(high)
        if high < low:
            raise ValueError(f"need low <= high, got low={low}, high={high}")
        if law not in ("uniform", "loguniform"):
            raise ValueError(f"law must be 'uniform' or 'loguniform', got {law!r}")
        self.low, self.high, self.law = low, high, law

    def draw_scales(self, n: int, generator: torch.Generator | None, dtype, device) -> Tensor:
        u = per_example(lambda m: torch.rand(m, generator=generator, dtype=dtype, device=device), n)
        if self.law == "uniform":
            return self.low + (self.high - self.low) * u
        return torch.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * u)

    def moment(self, k: int) -> float:
        """E[beta~^k], for tests: uniform (h^{k+1} - l^{k+1}) / ((k+1)(h - l)),
        log-uniform (h^k - l^k) / (k log(h/l)) (the point mass when low == high)."""
        lo, hi = self.low, self.high
        if hi == lo:
            return lo**k
        if self.law == "uniform":
            return (hi ** (k + 1) - lo ** (k + 1)) / ((k + 1) * (hi - lo))
        return (hi**k - lo**k) / (k * math.log(hi / lo))

    def sample(self, x0: Tensor, generator: torch.Generator | None, alpha=None, sigma=None):
        eta = _gaussian(x0, generator)
        b = self.draw_scales(x0.shape[0], generator, x0.dtype, x0.device)
        return per_sample(b, eta) * eta


def high_frequency_mask(height: int, width: int, fraction: float = 0.05) -> Tensor:
    """Boolean (H, W) mask over the 2-D DFT bins holding the top ``fraction`` of radial
    frequencies |f| = sqrt(f_y^2 + f_x^2) (cycles/pixel): the ceil(fraction H W) highest
    bins, plus every bin tied with the last one (so the mask is symmetric under f -> -f
    and the filter below is real). On 8x8 images 5% selects the 5 bins with |f| >= 0.625."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    fy = torch.fft.fftfreq(height, dtype=torch.float64).abs()
    fx = torch.fft.fftfreq(width, dtype=torch.float64).abs()
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    k = math.ceil(fraction * height * width)
    thresh = torch.sort(r.flatten(), descending=True).values[k - 1]
    return r >= thresh - 1e-12


def frequency_filter(x: Tensor, fraction: float = 0.05, shrink: float = 0.5) -> Tensor:
    """M x of App. A.5: multiply the top-``fraction`` high-frequency DFT bins of every
    (H, W) plane of x (..., H, W) by ``shrink``. M is real, symmetric and diagonal in the
    Fourier basis (eigenvalues 1 and ``shrink``)."""
    if x.ndim < 2:
        raise ValueError(f"x must have at least two (height, width) dims, got {tuple(x.shape)}")
    mask = high_frequency_mask(x.shape[-2], x.shape[-1], fraction).to(x.device)
    gain = torch.where(mask, shrink, 1.0).to(x.dtype)
    return torch.fft.ifft2(torch.fft.fft2(x) * gain).real.to(x.dtype)


def frequency_mixture_noise(
    gain: float = 2.0, fraction: float = 0.05, shrink: float = 0.5, *, alternate: bool = False
) -> MixtureNoise:
    """App. A.5's matrix mixture p(B = I) = p(B = gain M) = 1/2, M = :func:`frequency_filter`
    (the paper: gain 2, top 5% of frequencies shrunk by 0.5). Raises for gain < 1."""
    gain = check_beta(gain)
    filt = functools.partial(frequency_filter, fraction=fraction, shrink=shrink)
    return MixtureNoise(
        [lambda e: e, lambda e: gain * filt(e)], alternate=alternate, names=["I", f"{gain:g}M"]
    )


def scale_mixture_cdf(x: np.ndarray, scales: Sequence[float], probs: Sequence[float]) -> np.ndarray:
    """CDF of the 1-D marginal sum_k p_k N(0, s_k^2), for KS tests of the noise models."""
    from scipy.stats import norm

    return sum(p * norm.cdf(np.asarray(x) / s) for s, p in zip(scales, probs, strict=True))


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
        rest = like.shape[1:] if self.per_coordinate else ()
        p = self.probs.to(like.device)

        def draw(m: int) -> Tensor:
            i = torch.multinomial(p, m * math.prod(rest), replacement=True, generator=generator)
            return i.reshape(m, *rest)

        return per_example(draw, like.shape[0])

    def step(self, like: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One forward step's noise and its component: (eps_t, i_t) with eps_t = mu_{i_t} +
        z, z ~ N(0, I) of ``like``'s shape (Eq. 2: x_t = sqrt(alpha_t) x_{t-1} +
        sqrt(beta_t) eps_t)."""
        i = self.draw(like, generator)
        return self.offset(i, like) + _gaussian(like, generator), i


#: Noise models by the name a run config gives them (``loss.options.noise.name`` and
#: ``sample.options.noise.name``; the other keys are the constructor's arguments).
NOISES: dict[str, Callable[..., Any]] = {
    "gaussian": GaussianNoise,
    "gamma": GammaNoise,
    "gm_sgm": gm_sgm_noise,
    "scale_mixture": ScaleMixtureNoise,
    "continuous_scale": ContinuousScaleNoise,
    "frequency_mixture": frequency_mixture_noise,
    "offset_mixture": OffsetMixtureNoise,
}


def from_config(spec: dict) -> Any:
    """The noise model ``{"name": ..., **arguments}`` names (see :data:`NOISES`)."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in NOISES:
        raise ValueError(f"noise name {name!r} is not known; choose one of {sorted(NOISES)}")
    try:
        return NOISES[name](**spec)
    except TypeError as err:
        raise ValueError(f"noise {name!r}: {err}") from None
