"""EDM's stochastic sampler (Karras et al. 2022, Alg. 2): Heun's method on the PF-ODE with
"churn", a Langevin-like step that raises the noise level from t_i to t_hat = (1 + gamma_i)
t_i by adding fresh noise of variance (t_hat^2 - t_i^2) S_noise^2 before each ODE step.

gamma_i = min(S_churn / N, sqrt(2) - 1) when S_tmin <= t_i <= S_tmax, else 0 (N = steps).
The defaults (S_churn = 0, S_tmin = 0, S_tmax = inf, S_noise = 1) are those of NVlabs/edm's
``generate.py``, where the options are called S_churn, S_min, S_max, S_noise; with
S_churn = 0 the sampler is :func:`gmdiff.samplers.heun`, bit for bit. NVlabs/edm's README
recommends, for its ImageNet-64 model, 256 steps with S_churn = 40, S_tmin = 0.05,
S_tmax = 50, S_noise = 1.003 (and deterministic sampling, S_churn = 0, for CIFAR-10).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gmdiff.samplers.base import Callback, Denoiser, check_schedule, check_steps, progress
from gmdiff.schedules import EDM


def _option(name: str, value: object, low: float = 0.0) -> float:
    """``value`` as a float >= ``low`` (a string such as "inf" or "1e-3" is read as a
    number, as YAML 1.1 leaves them strings); a ValueError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
        else:
            if number >= low:  # NaN fails here too
                return number
    raise ValueError(f"edm_stochastic: {name} must be a number >= {low:g}, got {name}={value!r}")


def edm_stochastic(
    denoiser: Denoiser,
    schedule: EDM,
    x_T: Tensor,
    steps: int = 18,
    *,
    S_churn: float = 0.0,  # the paper's names
    S_tmin: float = 0.0,
    S_tmax: float = math.inf,
    S_noise: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Alg. 2) on EDM's noise levels
    sigma_0 = sigma_max > ... > sigma_{steps-1} = sigma_min > 0 (Eq. 5).

    Step i: gamma_i = min(S_churn / steps, sqrt(2) - 1) if S_tmin <= t_i <= S_tmax else 0;
    t_hat = t_i + gamma_i t_i; x_hat = x_i + sqrt(t_hat^2 - t_i^2) S_noise eps
    (eps ~ N(0, I) from ``generator``; not drawn when gamma_i = 0); then one Heun step of
    dx/dt = (x - D(x, t)) / t from (x_hat, t_hat) to t_{i+1}, Euler on the last step onto 0.
    2 * steps - 1 denoiser evaluations. ``callback(i, t_hat, x_hat, D(x_hat, t_hat))``.

    S_churn = 0 (the default), or a window [S_tmin, S_tmax] holding no noise level, gives
    :func:`gmdiff.samplers.heun` exactly. ``x_T`` should be drawn from N(0, sigma_max^2 I).
    """
    check_schedule(schedule, EDM, "edm_stochastic")
    check_steps(steps, minimum=2)
    churn = _option("S_churn", S_churn)
    t_min, t_max = _option("S_tmin", S_tmin), _option("S_tmax", S_tmax)
    s_noise = _option("S_noise", S_noise)
    if t_min > t_max:
        raise ValueError(
            f"edm_stochastic: S_tmin must be <= S_tmax, got S_tmin={S_tmin!r}, S_tmax={S_tmax!r}"
        )
    gamma_max = min(churn / steps, math.sqrt(2) - 1)
    t = schedule.sigma_steps(steps)  # stays on the host: reading it never syncs a GPU
    x = x_T
    for i in progress(range(steps), "edm_stochastic"):
        t_cur, t_next = t[i], t[i + 1]
        gamma = gamma_max if t_min <= float(t_cur) <= t_max else 0.0
        if gamma > 0:
            t_hat = t_cur + gamma * t_cur
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x_hat = x + (t_hat**2 - t_cur**2).sqrt() * s_noise * eps
        else:  # exactly Heun's step (same operations in the same order)
            t_hat, x_hat = t_cur, x
        sig = torch.full((x.shape[0],), float(t_hat), dtype=x.dtype, device=x.device)
        den = denoiser(x_hat, sig)
        if callback is not None:
            callback(i, float(t_hat), x_hat, den)
        d = (x_hat - den) / t_hat
        x_next = x_hat + (t_next - t_hat) * d
        if t_next > 0:
            sig_next = torch.full_like(sig, float(t_next))
            d_next = (x_next - denoiser(x_next, sig_next)) / t_next
            x_next = x_hat + (t_next - t_hat) * 0.5 * (d + d_next)
        x = x_next
    return x
