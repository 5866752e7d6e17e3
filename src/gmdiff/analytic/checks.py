"""Numerical checks of the analytic formulas against independent computations
(autograd of the log density; scipy's ODE solver). Used by the unit tests and by the
chapter that reports GS-1 and GS-2."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gmdiff.analytic.gaussian import Gaussian
from gmdiff.analytic.pf_ode import (
    gaussian_denoiser_path,
    gaussian_state,
    integrate_pf_ode,
    scaled_score,
)
from gmdiff.schedules import Schedule, score_to_denoiser


def rel_err(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b|: the worst error relative to the reference's scale."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def autograd_score(model, x: Tensor, sigma: float) -> Tensor:
    """grad_x log p(x; sigma) by automatic differentiation of ``model.log_prob``."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.log_prob(x, sigma).sum(), x)
    return grad


def score_errors(model, x: Tensor, sigma: float) -> dict[str, float]:
    """GS-1: relative errors of the model's score against autograd of its log density, and
    of its denoiser against Tweedie's x + sigma^2 * (autograd score)."""
    ref = autograd_score(model, x, sigma)
    return {
        "score_vs_autograd": rel_err(model.score(x, sigma), ref),
        "denoiser_vs_tweedie": rel_err(model.denoiser(x, sigma), score_to_denoiser(ref, x, sigma)),
    }


def pf_ode_errors(
    g: Gaussian,
    schedule: Schedule,
    n: int = 4,
    seed: int = 0,
    n_times: int = 6,
    drop_alpha: bool = False,
) -> dict[str, float]:
    """GS-2: the closed-form trajectory (state and denoiser output) against scipy's RK45
    integration of the PF-ODE of ``schedule``, from n random x_T at t_max down to t_min.

    Returns the worst relative error over ``n_times`` log-spaced times. ``drop_alpha`` plants
    an error (the unscaled EDM formula used on a scaled process) to show the check can fail.
    """
    gen = torch.Generator().manual_seed(seed)
    t_T, t_0 = schedule.t_max, schedule.t_min
    a_T, s_T = schedule.alpha(t_T), schedule.sigma(t_T)
    x0 = g.sample(n, generator=gen)
    x_T = a_T * x0 + s_T * torch.randn(n, g.dim, dtype=x0.dtype, generator=gen)
    ts = np.geomspace(t_T, t_0, n_times)[1:]
    xs = integrate_pf_ode(scaled_score(g, schedule), schedule, x_T, t_T, ts)
    state, den = 0.0, 0.0
    for t, x_num in zip(ts, xs):
        a, s = schedule.alpha(t), schedule.sigma(t)
        aT = 1.0 if drop_alpha else a_T
        at = 1.0 if drop_alpha else a
        state = max(state, rel_err(gaussian_state(g, x_T, s, s_T, at, aT), x_num))
        d_num = g.denoiser(x_num / a, s / a)
        den = max(den, rel_err(gaussian_denoiser_path(g, x_T, s, s_T, at, aT), d_num))
    return {"state": state, "denoiser": den}
