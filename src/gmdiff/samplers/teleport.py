"""Analytical teleportation: the hybrid sampler of the Gaussian score paper (Alg. 1,
Sec. 6 and App. A.7).

The first ``skip`` Heun steps of EDM's schedule (Karras et al. 2022, Eq. 5 / the paper's
Eq. 40) are replaced by one evaluation of the closed-form PF-ODE solution of a Gaussian
fitted to the training data (the paper's Eq. 15, Alg. 1 line 1), taking x_T at
sigma_0 = sigma_max straight to sigma_skip = sigma_skip-index; Heun's method then
integrates from there to sigma = 0 exactly as :func:`gmdiff.samplers.heun` would. Skipping
i steps saves 2i neural function evaluations (App. A.7): Heun costs 2 per step and 1 for the
last step onto sigma = 0.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from gmdiff.analytic import Gaussian, gaussian_state
from gmdiff.samplers.base import Callback, Denoiser, check_schedule, check_steps
from gmdiff.samplers.ode import heun
from gmdiff.schedules import EDM


def heun_nfe(steps: int, skip: int = 0) -> int:
    """Denoiser evaluations of Heun's method on ``steps`` EDM levels after skipping the
    first ``skip``: 2 per remaining step, except 1 for the final step onto sigma = 0
    (Karras et al. 2022, Alg. 1), i.e. 2 (steps - skip) - 1. With skip = 0 this is 35 for
    18 steps and 79 for 40 steps, the baselines of the paper's Tables 4-6."""
    check_steps(steps, minimum=2)
    _check_skip(skip, steps)
    return 2 * (steps - skip) - 1


def _check_skip(skip: int, steps: int) -> None:
    if isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip <= steps - 1:
        raise ValueError(
            f"skip must be an integer in [0, steps - 1] = [0, {steps - 1}] (at least the last "
            f"Heun step is kept), got skip={skip!r}"
        )


def teleport(
    gaussian: Gaussian, x_T: Tensor, sigma_skip: float | Tensor, sigma_max: float | Tensor
) -> Tensor:
    """The Gaussian PF-ODE state at ``sigma_skip`` on the trajectory that starts at ``x_T``
    at ``sigma_max`` (Alg. 1, line 1; Eq. 15):
    x' = mu + (sigma_skip/sigma_max)(I - U U^T)(x_T - mu)
           + sum_k sqrt((sigma_skip^2 + lam_k)/(sigma_max^2 + lam_k)) u_k u_k^T (x_T - mu).
    ``x_T`` may be images (B, C, H, W): it is flattened to the Gaussian's dimension and back.
    Computed in the Gaussian's dtype and returned in x_T's dtype."""
    D = gaussian.dim
    if x_T[0].numel() != D:
        raise ValueError(
            f"x_T has {x_T[0].numel()} values per sample but the Gaussian has dimension {D}; "
            "fit the Gaussian to flattened training data of the same shape"
        )
    flat = x_T.reshape(x_T.shape[0], D).to(gaussian.mean.dtype)
    out = gaussian_state(gaussian, flat, sigma_skip, sigma_max)
    return out.reshape(x_T.shape).to(x_T.dtype)


def teleport_heun(
    denoiser: Denoiser,
    schedule: EDM,
    x_T: Tensor,
    steps: int = 18,
    *,
    gaussian: Gaussian | None = None,
    skip: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Alg. 1 of the Gaussian score paper: teleport x_T from sigma_0 = sigma_max to
    sigma_skip (the ``skip``-th of EDM's ``steps`` levels, App. A.7) with the closed-form
    solution of ``gaussian`` (:func:`teleport`), then take Heun steps skip..steps-1 as
    :func:`gmdiff.samplers.heun` does; ``skip = 0`` is plain Heun, bit for bit.

    ``skip`` may be 0..steps-1 and costs :func:`heun_nfe` (steps, skip) denoiser
    evaluations. ``callback(i, sigma_i, x, D)`` is called for the Heun steps actually taken
    (i = skip..steps-1), with the step index of the full schedule. ``gaussian`` is needed
    when ``skip`` > 0. ``generator`` is accepted for the common signature and unused
    (deterministic).
    """
    check_schedule(schedule, EDM, "teleport_heun")
    check_steps(steps, minimum=2)
    _check_skip(skip, steps)
    if skip > 0 and not isinstance(gaussian, Gaussian):
        raise ValueError(
            f"skip={skip} needs gaussian=<gmdiff.analytic.Gaussian fitted to the training data> "
            f"(e.g. Gaussian.from_data(x.flatten(1).double())), got {type(gaussian).__name__}"
        )
    if skip == 0:
        return heun(denoiser, schedule, x_T, steps, callback=callback)
    t = schedule.sigma_steps(steps).to(device=x_T.device)
    x = teleport(gaussian, x_T, t[skip], t[0])
    shifted = None if callback is None else (lambda i, s, x_, d: callback(i + skip, s, x_, d))
    if steps - skip >= 2:
        # Levels skip..steps-1 of EDM's rho-schedule are the (steps - skip)-level schedule
        # from sigma_skip to sigma_min (Eq. 5 is linear in sigma^(1/rho)).
        rest = dataclasses.replace(schedule, sigma_max=float(t[skip]))
        return heun(denoiser, rest, x, steps - skip, callback=shifted)
    # skip = steps - 1: only Heun's last step remains, an Euler step from sigma_min to 0
    sig = torch.full((x.shape[0],), float(t[skip]), dtype=x.dtype, device=x.device)
    den = denoiser(x, sig)
    if shifted is not None:
        shifted(0, float(t[skip]), x, den)
    return x + (t[skip + 1] - t[skip]) * ((x - den) / t[skip])
