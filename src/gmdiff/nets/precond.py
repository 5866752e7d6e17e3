"""Preconditioning: raw networks ``F(x, c_noise)`` -> denoisers ``D(x, sigma)``.

Every wrapper returns the library-wide model signature ``D(x, sigma)``: the estimate of
E[x_0 | x] in unscaled (EDM) units, where ``x = x_0 + sigma * n`` and ``sigma`` is (B,).
Karras et al. (2022, "EDM", Eq. 7 and Table 1) write all of them as

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))

with, per row of their Table 1:

=======  ==========================  ============================  ====================  =======================
         c_skip                      c_out                         c_in                  c_noise
=======  ==========================  ============================  ====================  =======================
VP       1                           -sigma                        1/sqrt(sigma^2+1)     (M-1) t(sigma)
VE       1                           sigma                         1                     log(sigma/2)
EDM      sd^2/(sigma^2+sd^2)         sigma sd/sqrt(sigma^2+sd^2)   1/sqrt(sigma^2+sd^2)  log(sigma)/4
=======  ==========================  ============================  ====================  =======================

(sd = sigma_data.) :class:`VPPrecond` evaluates its row through the conversion
:func:`gmdiff.schedules.eps_to_denoiser` (F is an eps-prediction network fed the VP-scaled
input); :class:`ScorePrecond` wraps score networks such as NCSN++ through
:func:`gmdiff.schedules.score_to_denoiser`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gmdiff.schedules import DiscreteVP, VPLinear, eps_to_denoiser, per_sample, score_to_denoiser


class Coefficients(NamedTuple):
    """The four preconditioning functions of EDM Table 1, each (B,)."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor


def _check_sigma(x: Tensor, sigma: Tensor) -> Tensor:
    """Validate a (B,) positive sigma and return it broadcastable against x."""
    if sigma.ndim != 1 or sigma.shape[0] != x.shape[0]:
        raise ValueError(
            f"sigma must be a (B,) tensor with B = x.shape[0] = {x.shape[0]}, "
            f"got shape {tuple(sigma.shape)}; use sigma.expand(B) for a shared noise level"
        )
    return per_sample(sigma, x)


class Precond(nn.Module):
    """Base class: ``D = c_skip x + c_out F(c_in x, c_noise)`` (EDM, Eq. 7).

    Subclasses define :meth:`coefficients`. The raw network is called in its own
    parameter dtype; the output is returned in the dtype of ``x``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def coefficients(self, sigma: Tensor) -> Coefficients:
        """c_skip, c_out, c_in, c_noise for a (B,) tensor of noise levels."""
        raise NotImplementedError

    def _net_dtype(self, x: Tensor) -> torch.dtype:
        p = next(self.net.parameters(), None)
        return p.dtype if p is not None else x.dtype

    def raw(self, x: Tensor, c_noise: Tensor) -> Tensor:
        """Evaluate the raw network F in its own dtype."""
        dt = self._net_dtype(x)
        return self.net(x.to(dt), c_noise.to(dt))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        s = _check_sigma(x, sigma)
        c = self.coefficients(sigma)
        shape = s.shape
        f = self.raw(c.c_in.reshape(shape) * x, c.c_noise).to(x.dtype)
        return c.c_skip.reshape(shape) * x + c.c_out.reshape(shape) * f


class EDMPrecond(Precond):
    """EDM's preconditioning with data standard deviation ``sigma_data`` (EDM Table 1,
    Sec. 5): unit-variance network input and target, ``c_noise = log(sigma) / 4``."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__(net)
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.sigma_data = sigma_data

    def coefficients(self, sigma: Tensor) -> Coefficients:
        sd2 = self.sigma_data**2
        norm = torch.sqrt(sigma**2 + sd2)
        return Coefficients(
            c_skip=sd2 / (sigma**2 + sd2),
            c_out=sigma * self.sigma_data / norm,
            c_in=1.0 / norm,
            c_noise=torch.log(sigma) / 4,
        )


class VEPrecond(Precond):
    """score_sde's VE parametrisation as written in EDM Table 1: ``D = x + sigma F(x,
    log(sigma / 2))`` (F estimates ``sigma * score = -eps``)."""

    def coefficients(self, sigma: Tensor) -> Coefficients:
        one = torch.ones_like(sigma)
        return Coefficients(c_skip=one, c_out=sigma, c_in=one, c_noise=torch.log(0.5 * sigma))


class ScorePrecond(Precond):
    """A network that outputs the score itself, called as ``F(x, log sigma)`` -- NCSN++
    with ``scale_by_sigma`` (Song et al. 2021, App. H) -- turned into
    ``D = x + sigma^2 F`` by :func:`gmdiff.schedules.score_to_denoiser` (Tweedie)."""

    def coefficients(self, sigma: Tensor) -> Coefficients:
        one = torch.ones_like(sigma)
        return Coefficients(c_skip=one, c_out=sigma**2, c_in=one, c_noise=torch.log(sigma))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        s = _check_sigma(x, sigma)
        score = self.raw(x, torch.log(sigma)).to(x.dtype)
        return score_to_denoiser(score, x, s)


class VPPrecond(Precond):
    """An eps-prediction network of a VP process used as an EDM denoiser (EDM Table 1,
    "VP" column).

    The unscaled state ``x`` at EDM noise level ``sigma`` corresponds to the VP state
    ``alpha x`` with ``alpha = 1/sqrt(1 + sigma^2)`` and VP noise ``alpha sigma`` at the
    time ``t(sigma)`` where the schedule's ``sigma / alpha`` equals ``sigma``. Then
    ``D = eps_to_denoiser(F(alpha x, c_noise), alpha x, alpha sigma, alpha)``, which is
    ``x - sigma F``: c_skip = 1, c_out = -sigma, c_in = alpha.

    ``c_noise`` is the time the network was trained with:

    * :class:`~gmdiff.schedules.VPLinear`: ``(M - 1) t(sigma)`` with the closed-form inverse
      ``t(sigma) = (sqrt(b0^2 + 2 bd log(1 + sigma^2)) - b0) / bd`` (EDM Table 1, b0 =
      beta_min, bd = beta_max - beta_min) and M = 1000 (score_sde's DDPM++ convention).
    * :class:`~gmdiff.schedules.DiscreteVP`: the DDPM time index ``n - 1`` (0..T-1, as in
      Ho et al.'s code: index n - 1 has alpha_bar_n), where ``n`` is found by linear
      interpolation of log sigma_edm(n) over n = 1..T; grid noise levels give integers.
      Noise levels outside [sigma_edm(1), sigma_edm(T)] raise ``ValueError``.
    """

    def __init__(self, net: nn.Module, schedule: VPLinear | DiscreteVP, M: int = 1000) -> None:
        super().__init__(net)
        if not isinstance(schedule, VPLinear | DiscreteVP):
            raise TypeError(
                f"VPPrecond needs a VPLinear or DiscreteVP schedule, got {type(schedule).__name__}"
            )
        if M < 2:
            raise ValueError(f"M must be >= 2, got {M}")
        self.schedule = schedule
        self.M = M
        if isinstance(schedule, DiscreteVP):
            n = torch.arange(1, schedule.T + 1)
            self.register_buffer(
                "log_sigma_grid", torch.log(schedule.sigma_edm(n)), persistent=False
            )

    def time(self, sigma: Tensor) -> Tensor:
        """The schedule time of EDM noise level ``sigma``: continuous t in (0, 1] for
        VPLinear, the (fractional) DDPM index n - 1 in [0, T - 1] for DiscreteVP."""
        if isinstance(self.schedule, VPLinear):
            return self.schedule.t_of_sigma_edm(sigma)
        grid = self.log_sigma_grid.to(torch.float64)
        ls = torch.log(sigma.to(torch.float64))
        lo, hi = grid[0], grid[-1]  # 0-d tensors on the model's device: no host read
        tol = 1e-6  # float32 round-off of grid noise levels
        bad = ((ls < lo - tol) | (ls > hi + tol)).any()
        if ls.device.type == "cuda":  # checked on the device, without a host sync
            torch._assert_async(~bad, "sigma is outside the schedule's EDM noise range")
        elif bad:
            raise ValueError(
                f"sigma in [{sigma.min().item():.4g}, {sigma.max().item():.4g}] is outside the "
                f"schedule's EDM noise range [{math.exp(lo):.4g}, {math.exp(hi):.4g}]; "
                "clip sigma to that range"
            )
        ls = ls.clamp(lo, hi)
        j = torch.searchsorted(grid, ls).clamp(1, grid.shape[0] - 1)
        frac = (ls - grid[j - 1]) / (grid[j] - grid[j - 1])
        return ((j - 1).to(torch.float64) + frac).to(sigma.dtype)

    def c_noise(self, sigma: Tensor) -> Tensor:
        """The network's time input for noise level ``sigma``."""
        t = self.time(sigma)
        return (self.M - 1) * t if isinstance(self.schedule, VPLinear) else t

    def coefficients(self, sigma: Tensor) -> Coefficients:
        return Coefficients(
            c_skip=torch.ones_like(sigma),
            c_out=-sigma,
            c_in=1.0 / torch.sqrt(sigma**2 + 1),
            c_noise=self.c_noise(sigma),
        )

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        s = _check_sigma(x, sigma)
        alpha = 1.0 / torch.sqrt(s**2 + 1)
        x_vp = alpha * x
        eps = self.raw(x_vp, self.c_noise(sigma)).to(x.dtype)
        return eps_to_denoiser(eps, x_vp, alpha * s, alpha)
