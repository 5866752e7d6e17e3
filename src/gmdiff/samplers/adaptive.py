"""Adaptive-step SDE solver of Jolicoeur-Martineau et al. 2021 ("Gotta go fast when
generating data with score-based models", Algorithm 1), for any continuous
:class:`gmdiff.schedules.Schedule` with time derivatives (VE and VPLinear).

The reverse SDE of x_t = alpha_t x_0 + sigma_t eps is, in decreasing time,

    dx = [f(t) x - g(t)^2 s(x, t)] dt + g(t) dw-bar,
    f = alpha'/alpha,  g^2 = d(sigma^2)/dt - 2 f sigma^2

(Song et al. 2021, Eq. 6; for VE f = 0 and g^2 = 2 sigma sigma'). With h > 0 and the
reverse drift F(x, t) = -f(t) x + g(t)^2 s(x, t), one attempted step from t to t - h is

    x'  = x + h F(x, t) + sqrt(h) g(t) z                        (Euler-Maruyama)
    x~  = x + h F(x', t - h) + sqrt(h) g(t - h) z               (same z)
    x'' = (x' + x~) / 2                                         (stochastic improved Euler)

The error estimate is the scaled l2 norm E = ||(x' - x'') / delta||_2 / sqrt(n) with the
mixed tolerance delta = max(atol, rtol * max(|x'|, |x'_prev|)) elementwise, x'_prev the
Euler-Maruyama proposal of the sample's last accepted step. The step is accepted when
E <= 1 (then x <- x'', t <- t - h, x'_prev <- x'), and in either case
h <- min(t - t_end, safety * h * E^(-exponent)). Every sample has its own t, h and
x'_prev; samples that reached t_end stop being evaluated. Each attempted step costs two
denoiser evaluations. Defaults follow our reading of the paper (atol = 0.0078 for data in
[-1, 1], rtol = 0.05, safety 0.9, exponent 0.9, h_init = 0.01); the last step applies the
Tweedie denoiser at t_end ("denoise", one more evaluation), as score_sde's samplers do.

A caveat we measured: the acceptance test depends on the Brownian increment z (a rejected
step draws a fresh z), and the controller puts the accept/reject boundary in the bulk of
the distribution of E at every tolerance. In 3 dimensions this biases the sample law
(variances 10-30% too large against an exact Gaussian denoiser, not shrinking with the
tolerance); in 32-64 dimensions the scaled norm concentrates and the moments agree with
the exact ones within Monte-Carlo error (tests/test_adaptive.py). Images (d >= 192) are
in the second regime.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmdiff.samplers.base import Callback, Denoiser, check_schedule, progress
from gmdiff.schedules import Schedule, denoiser_to_score, per_sample


def _coefs(schedule: Schedule, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(alpha, sigma, f, g) at times t (B,), float64."""
    a, s = schedule.alpha(t), schedule.sigma(t)
    da, ds = schedule.dalpha(t), schedule.dsigma(t)
    f = da / a
    g2 = 2.0 * s * ds - 2.0 * f * s**2
    return a, s, f, g2.clamp(min=0).sqrt()


def adaptive_sde(
    denoiser: Denoiser,
    schedule: Schedule,
    x_T: Tensor,
    steps: int = 10_000,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    atol: float = 0.0078,
    rtol: float = 0.05,
    safety: float = 0.9,
    exponent: float = 0.9,
    h_init: float = 0.01,
    t_end: float | None = None,
    denoise: bool = True,
    return_nfe: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Integrate the reverse SDE from ``schedule.t_max`` to ``t_end`` (default
    ``schedule.t_min``) with per-sample adaptive steps (see the module docstring).

    ``steps`` caps the number of attempted steps of the batch (a RuntimeError names the
    tolerances if a sample has not reached t_end by then). ``x_T`` is the state at t_max
    in the schedule's own (scaled) units, e.g. N(0, sigma_max^2 I) for VE, N(0, I) for VP.
    ``callback(i, t, x, D)`` sees each attempted step with the batch-mean time.
    Returns the samples, and with ``return_nfe`` also the per-sample number of denoiser
    evaluations (long, (B,)), including the final denoising evaluation.
    """
    check_schedule(schedule, Schedule, "adaptive_sde")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(
            f"steps (the cap on attempted steps) must be an integer >= 1, got {steps!r}"
        )
    if not (atol > 0 and rtol >= 0):
        raise ValueError(f"need atol > 0 and rtol >= 0, got atol={atol}, rtol={rtol}")
    if not (0 < safety <= 1 and 0 < exponent <= 1 and h_init > 0):
        raise ValueError(
            f"need 0 < safety <= 1, 0 < exponent <= 1, h_init > 0; got {safety=}, "
            f"{exponent=}, {h_init=}"
        )
    t_end = schedule.t_min if t_end is None else float(t_end)
    if not schedule.t_min <= t_end < schedule.t_max:
        raise ValueError(
            f"t_end must be in [t_min, t_max) = [{schedule.t_min}, {schedule.t_max}), got {t_end}"
        )
    B, dev, dt = x_T.shape[0], x_T.device, x_T.dtype
    f64 = torch.float64
    t = torch.full((B,), float(schedule.t_max), dtype=f64, device=dev)
    h = torch.full((B,), float(h_init), dtype=f64, device=dev).clamp(max=t - t_end)
    x, x_prev = x_T.clone(), x_T.clone()
    nfe = torch.zeros(B, dtype=torch.long, device=dev)

    def drift(xs: Tensor, ts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, s, f, g = _coefs(schedule, ts)
        a_, s_ = per_sample(a, xs).to(dt), per_sample(s, xs).to(dt)
        d = denoiser(xs / a_, (s / a).to(dt))
        score = denoiser_to_score(d, xs, s_, a_)
        return (
            -per_sample(f, xs).to(dt) * xs + per_sample(g, xs).to(dt) ** 2 * score,
            per_sample(g, xs).to(dt),
            d,
        )

    it = 0
    bar = progress(range(steps), "adaptive_sde")
    for it in bar:
        active = (t - t_end) > 1e-12
        if not active.any():
            break
        idx = active.nonzero()[:, 0]
        xa, ta, ha = x[idx], t[idx], h[idx]
        z = torch.randn(xa.shape, generator=generator, dtype=dt, device=dev)
        hc, sq = per_sample(ha, xa).to(dt), per_sample(ha.sqrt(), xa).to(dt)
        F1, g1, d1 = drift(xa, ta)
        if callback is not None:
            callback(it, float(ta.mean()), xa, d1)
        x1 = xa + hc * F1 + sq * g1 * z
        F2, g2, _ = drift(x1, ta - ha)
        x2 = 0.5 * (x1 + xa + hc * F2 + sq * g2 * z)
        nfe[idx] += 2
        delta = torch.maximum(
            torch.full_like(x1, atol), rtol * torch.maximum(x1.abs(), x_prev[idx].abs())
        )
        err = ((x1 - x2) / delta).flatten(1).pow(2).mean(1).sqrt().to(f64)
        ok = err <= 1.0
        acc = idx[ok]
        x[acc], x_prev[acc] = x2[ok], x1[ok]
        t[acc] = ta[ok] - ha[ok]
        t_new = t[idx]
        factor = safety * err.clamp(min=1e-10) ** (-exponent)
        h[idx] = torch.minimum(t_new - t_end, ha * factor)
    else:
        if ((t - t_end) > 1e-12).any():
            raise RuntimeError(
                f"adaptive_sde did not reach t_end within steps={steps} attempted steps "
                f"(atol={atol}, rtol={rtol}); raise steps or loosen the tolerances"
            )
    if denoise:
        a, s = (
            schedule.alpha(torch.tensor(t_end, dtype=f64)),
            schedule.sigma(torch.tensor(t_end, dtype=f64)),
        )
        x = denoiser(x / a.to(dt), torch.full((B,), float(s / a), dtype=dt, device=dev))
        nfe += 1
    return (x, nfe) if return_nfe else x
