"""Predictor-corrector sampler of the VE SDE as score_sde runs it (Song et al. 2021,
"Score-based generative modeling through stochastic differential equations", Algorithm 2
with the reverse-diffusion predictor of their Eq. 46 and the Langevin corrector of
Algorithm 4 / App. G)."""

from __future__ import annotations

import torch
from torch import Tensor

from gmdiff.noise import GaussianNoise, NoiseModel
from gmdiff.samplers.base import Callback, Denoiser, check_schedule, check_steps, progress
from gmdiff.schedules import VE, denoiser_to_score


def _score(denoiser: Denoiser, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """(score, denoiser output) at noise level ``sigma`` (alpha = 1)."""
    d = denoiser(x, torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device))
    return denoiser_to_score(d, x, sigma), d


def ve_pc(
    denoiser: Denoiser,
    schedule: VE,
    x_T: Tensor,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    snr: float = 0.16,
    n_steps_each: int = 1,
    noise: NoiseModel | None = None,
) -> Tensor:
    """score_sde's ``pc_sampler`` on the geometric noise levels sigma_0 = sigma_max > ... >
    sigma_{steps-1} = sigma_min of ``schedule.discrete_sigmas(steps)`` (sigma_steps := 0).

    Step i: ``n_steps_each`` Langevin corrector moves at sigma_i,
      x <- x + e s(x) + sqrt(2 e) z,  e = 2 (snr ||z|| / ||s(x)||)^2,
    with ||.|| the per-sample norm averaged over the batch (so e is shared by the batch, as
    in score_sde; alpha = 1 for VE); then the reverse-diffusion predictor
      x <- x + (sigma_i^2 - sigma_{i+1}^2) s(x) + sqrt(sigma_i^2 - sigma_{i+1}^2) z.
    The noise-free mean of the last predictor step is returned (score_sde's
    ``denoise=True``); it equals the Tweedie denoiser D(x, sigma_min).
    ``snr = 0.16``, ``n_steps_each = 1`` are score_sde's CIFAR-10 VE settings; x_T should be
    drawn from N(0, sigma_max^2 I). score_sde evaluates the model at sigma(t_i) with
    t_i = linspace(1, eps, N), which differs from sigma_i by a factor below
    (sigma_max/sigma_min)^eps (1.0001 for their eps = 1e-5); here the model sees sigma_i.
    Denoiser evaluations: steps * (n_steps_each + 1).

    ``noise`` draws every increment z (default N(0, I)); it is called without a noise level,
    so it must not need one (GM-SGM's Sec. 5.4 mixture increments are such a model).
    """
    check_schedule(schedule, VE, "ve_pc")
    check_steps(steps)
    if not snr > 0:
        raise ValueError(f"snr must be > 0 (score_sde uses 0.16 for VE), got snr={snr}")
    if isinstance(n_steps_each, bool) or not isinstance(n_steps_each, int) or n_steps_each < 0:
        raise ValueError(f"n_steps_each must be an integer >= 0, got {n_steps_each!r}")
    noise = GaussianNoise() if noise is None else noise
    sig = schedule.discrete_sigmas(steps)  # host grid: reading it never syncs a GPU
    sig = torch.cat([sig, sig.new_zeros(1)])
    x = x_T
    for i in progress(range(steps), "ve_pc"):
        for _ in range(n_steps_each):
            s, _ = _score(denoiser, x, sig[i])
            z = noise.sample(x, generator)
            ratio = z.flatten(1).norm(dim=1).mean() / s.flatten(1).norm(dim=1).mean()
            e = 2.0 * (snr * ratio) ** 2
            x = x + e * s + (2.0 * e).sqrt() * z
        s, d = _score(denoiser, x, sig[i])
        if callback is not None:
            callback(i, float(sig[i]), x, d)
        var = sig[i] ** 2 - sig[i + 1] ** 2
        x_mean = x + var * s
        x = x_mean + var.sqrt() * noise.sample(x, generator)
    return x_mean
