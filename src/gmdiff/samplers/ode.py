"""Deterministic Euler and Heun solvers of EDM's probability-flow ODE
dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, Eq. 3 with sigma(t) = t, s = 1;
Algorithm 1)."""

from __future__ import annotations

import torch
from torch import Tensor

from gmdiff.samplers.base import Callback, Denoiser, check_schedule, check_steps, progress
from gmdiff.schedules import EDM


def _edm_ode(
    denoiser: Denoiser,
    schedule: EDM,
    x_T: Tensor,
    steps: int,
    second_order: bool,
    callback: Callback | None,
    name: str,
) -> Tensor:
    check_schedule(schedule, EDM, name)
    check_steps(steps, minimum=2)
    t = schedule.sigma_steps(steps)  # stays on the host: reading it never syncs a GPU
    x = x_T
    for i in progress(range(steps), name):
        t_cur, t_next = t[i], t[i + 1]
        sig = torch.full((x.shape[0],), float(t_cur), dtype=x.dtype, device=x.device)
        den = denoiser(x, sig)
        if callback is not None:
            callback(i, float(t_cur), x, den)
        d = (x - den) / t_cur
        x_next = x + (t_next - t_cur) * d
        if second_order and t_next > 0:
            sig_next = torch.full_like(sig, float(t_next))
            d_next = (x_next - denoiser(x_next, sig_next)) / t_next
            x_next = x + (t_next - t_cur) * 0.5 * (d + d_next)
        x = x_next
    return x


def euler(
    denoiser: Denoiser,
    schedule: EDM,
    x_T: Tensor,
    steps: int = 18,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Euler's method for the PF-ODE on EDM's noise levels sigma_0 = sigma_max > ... >
    sigma_{steps-1} = sigma_min > sigma_steps = 0 (Karras et al. 2022, Eq. 5): ``steps``
    denoiser evaluations. ``x_T`` should be drawn from N(0, sigma_max^2 I).
    ``generator`` is accepted for the common signature and unused (deterministic)."""
    return _edm_ode(denoiser, schedule, x_T, steps, False, callback, "euler")


def heun(
    denoiser: Denoiser,
    schedule: EDM,
    x_T: Tensor,
    steps: int = 18,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1): an Euler predictor and a
    trapezoidal corrector on every step except the last one onto sigma = 0, which stays
    Euler; 2 * steps - 1 denoiser evaluations (35 for the default 18 steps).
    ``generator`` is accepted for the common signature and unused (deterministic)."""
    return _edm_ode(denoiser, schedule, x_T, steps, True, callback, "heun")
