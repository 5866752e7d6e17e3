"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) and DDIM (Song et al. 2021,
"Denoising diffusion implicit models", Eq. 12) on a grid t_0 > ... > t_steps of a scaled
process x_t = alpha_t x_0 + sigma_t eps (see :func:`gmdiff.samplers.base.vp_grid`).

One step goes from t to the next grid point s < t. Writing a = alpha_t / alpha_s and
v = sigma_t^2 - a^2 sigma_s^2 (the variance of the forward jump from s to t), the DDPM
posterior q(x_s | x_t, x_0) has

  mean  = (alpha_s v / sigma_t^2) x_0 + (a sigma_s^2 / sigma_t^2) x_t,
  var   = beta-tilde = v sigma_s^2 / sigma_t^2                         (Ho et al., Eq. 7).

For a VP process alpha^2 = alpha_bar and v = 1 - alpha_bar_t / alpha_bar_s, the respaced
beta_t; with every DDPM step (s = t - 1) this is Ho's Eq. 7 verbatim, and the mean equals
Algorithm 2's 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) once
x_0 = (x_t - sigma_t eps) / alpha_t.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmdiff.noise import GaussianNoise, NoiseModel
from gmdiff.samplers.base import (
    Callback,
    Denoiser,
    call_denoiser,
    check_schedule,
    check_steps,
    default_spacing,
    progress,
    vp_grid,
)
from gmdiff.schedules import DiscreteVP, Schedule, denoiser_to_eps

_VARIANCES = ("beta", "beta_tilde")


def _posterior(
    a_t: Tensor, s_t: Tensor, a_s: Tensor, s_s: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_x0, c_xt, beta-tilde, v): the mean coefficients and variance of q(x_s | x_t, x_0)
    and the forward jump variance v (the "beta" choice)."""
    a = a_t / a_s
    v = s_t**2 - a**2 * s_s**2
    return a_s * v / s_t**2, a * s_s**2 / s_t**2, v * s_s**2 / s_t**2, v


def ddpm(
    denoiser: Denoiser,
    schedule: DiscreteVP | Schedule,
    x_T: Tensor,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    variance: str = "beta_tilde",
    spacing: str | None = None,
    noise: NoiseModel | None = None,
) -> Tensor:
    """Ancestral sampling x_s ~ N(posterior mean(x_t, D), sigma_t^2 I) (Ho et al. 2020,
    Algorithm 2), with the posterior variance ``variance`` = ``"beta_tilde"`` (the exact
    posterior variance, Eq. 7) or ``"beta"`` (the forward variance; both are Ho's Sec. 3.2
    choices). With ``steps < T`` the chain is the respaced DDPM on the grid of
    :func:`~gmdiff.samplers.base.vp_grid`; the last step onto the data adds no noise
    (Algorithm 2, z = 0 at t = 1). ``x_T`` should be drawn from N(0, I) (VP).

    ``noise`` draws z (default N(0, I)) at the level (alpha_s, sigma_s) of the step's end
    point: with :class:`gmdiff.noise.GammaNoise` and ``variance="beta"`` this is DDGM's
    sampler (Nachmani et al. 2021, Alg. 2), whose x_T is that noise at the first grid level.
    """
    check_schedule(schedule, (DiscreteVP, Schedule), "ddpm")
    check_steps(steps)
    if variance not in _VARIANCES:
        raise ValueError(f"variance must be one of {_VARIANCES}, got {variance!r}")
    t, alpha, sigma = vp_grid(schedule, steps, spacing or default_spacing(schedule))
    noise = GaussianNoise() if noise is None else noise
    x = x_T
    for i in progress(range(steps), "ddpm"):
        x0 = call_denoiser(denoiser, x, alpha[i], sigma[i])
        if callback is not None:
            callback(i, t[i].item(), x, x0)
        c0, ct, beta_tilde, beta = _posterior(alpha[i], sigma[i], alpha[i + 1], sigma[i + 1])
        x = c0 * x0 + ct * x
        if sigma[i + 1] > 0:
            var = beta_tilde if variance == "beta_tilde" else beta
            x = x + var.sqrt() * noise.sample(x, generator, alpha[i + 1], sigma[i + 1])
    return x


def ddim(
    denoiser: Denoiser,
    schedule: DiscreteVP | Schedule,
    x_T: Tensor,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eta: float = 0.0,
    spacing: str | None = None,
    noise: NoiseModel | None = None,
) -> Tensor:
    """DDIM (Song et al. 2021, Eq. 12): x_s = alpha_s x_0 + sqrt(sigma_s^2 - c^2) eps + c z,
    with eps = (x_t - alpha_t x_0) / sigma_t and c = eta * sqrt(beta-tilde) (their Eq. 16).
    ``eta = 0`` is the deterministic DDIM (a first-order PF-ODE solver), ``eta = 1`` the
    DDPM ancestral sampler with beta-tilde. Noise is drawn on every step when eta > 0 (the
    last draw is multiplied by zero), the order of diffusers' ``DDIMScheduler``.
    ``noise`` draws z as in :func:`ddpm` (with eta = 0 only x_T carries the noise model:
    DDGM's DDIM-based sampler starts from its Gamma noise).
    """
    check_schedule(schedule, (DiscreteVP, Schedule), "ddim")
    check_steps(steps)
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM), got eta={eta}")
    t, alpha, sigma = vp_grid(schedule, steps, spacing or default_spacing(schedule))
    noise = GaussianNoise() if noise is None else noise
    x = x_T
    for i in progress(range(steps), "ddim"):
        x0 = call_denoiser(denoiser, x, alpha[i], sigma[i])
        if callback is not None:
            callback(i, t[i].item(), x, x0)
        eps = denoiser_to_eps(x0, x, sigma[i], alpha[i])
        c = eta * _posterior(alpha[i], sigma[i], alpha[i + 1], sigma[i + 1])[2].sqrt()
        x = alpha[i + 1] * x0 + (sigma[i + 1] ** 2 - c**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            # the last draw (onto the data, c = 0) is Gaussian: a level-dependent noise
            # model has no distribution at sigma = 0
            draw = noise if sigma[i + 1] > 0 else GaussianNoise()
            x = x + c * draw.sample(x, generator, alpha[i + 1], sigma[i + 1])
    return x
