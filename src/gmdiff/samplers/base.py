"""What every sampler shares: the model and callback conventions, input checks, the time
grid of a scaled (VP-type) process, and the progress bar.

Model convention. A ``Denoiser`` is ``denoiser(x, sigma) -> E[x_0 | x]`` in unscaled (EDM)
units: for a process x_t = alpha_t x_0 + sigma_t eps it is called on x_t / alpha_t with
noise level sigma_t / alpha_t, a (B,) tensor (Karras et al. 2022, Eq. 7 / Table 1; the
substitution is the Gaussian score paper's Sec. 3.2). The exact models of
:mod:`gmdiff.analytic` and a preconditioned network both have this form.

Callback convention. ``callback(i, t, x_t, model_output)`` is called once per step
i = 0..steps-1, before the update, with the step's time label ``t`` (EDM/VE: the noise
level sigma; ``DiscreteVP``: the integer index n; other schedules: the time t), the state
``x_t`` in the sampler's own (scaled) units, and the denoiser output D (the x_0 estimate)
at that state.

Host syncs. Time grids and step coefficients stay on the host (float64 CPU tensors, 0-d
when indexed); they enter the device arithmetic as CPU scalars, so a step reads nothing
back from a GPU and the host can queue steps ahead of it. On CPU this changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from tqdm import tqdm  # plain bars: tqdm.auto warns in kernels without ipywidgets

from gmdiff.schedules import DiscreteVP, Schedule, discrete_timesteps

Denoiser = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, float, Tensor, Tensor], None]


def check_steps(steps: int, minimum: int = 1) -> None:
    """Raise a ValueError naming ``steps`` unless it is an integer >= ``minimum``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < minimum:
        raise ValueError(f"steps must be an integer >= {minimum}, got steps={steps!r}")


def check_schedule(schedule: object, kinds: type | tuple[type, ...], sampler: str) -> None:
    """Raise a ValueError naming the schedule's type unless it is one of ``kinds``."""
    if not isinstance(schedule, kinds):
        names = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise ValueError(  # noqa: TRY004 -- the project reports all bad input as ValueError
            f"{sampler} needs a schedule of type {names}, got {type(schedule).__name__}; "
            f"build one from gmdiff.schedules"
        )


def call_denoiser(denoiser: Denoiser, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """D(x_t / alpha, sigma / alpha) with the noise level broadcast to a (B,) tensor."""
    level = torch.full((x.shape[0],), float(sigma / alpha), dtype=x.dtype, device=x.device)
    return denoiser(x / alpha, level)


def vp_grid(
    schedule: DiscreteVP | Schedule, steps: int, spacing: str
) -> tuple[Tensor, Tensor, Tensor]:
    """The grid t_0 > ... > t_steps of a scaled process and its alpha_i, sigma_i (float64).

    The last point is the clean data (alpha = 1, sigma = 0), so ``steps`` counts every
    update including the last one onto the data. ``DiscreteVP``: the indices of
    :func:`gmdiff.schedules.discrete_timesteps` with ``spacing``; a continuous ``Schedule``:
    ``steps`` times uniform in [t_min, t_max] (Lu et al. 2022, "time uniform"), then t = 0
    standing for the clean data (``spacing`` must then be ``"time"``).
    """
    if isinstance(schedule, DiscreteVP):
        n = discrete_timesteps(schedule.T, steps, spacing)
        return n, schedule.alpha(n), schedule.sigma(n)
    if spacing != "time":
        raise ValueError(
            f"continuous schedules use a uniform time grid: pass spacing='time', got {spacing!r}"
        )
    t = torch.linspace(schedule.t_max, schedule.t_min, steps, dtype=torch.float64)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    return (
        torch.cat([t, zero]),
        torch.cat([schedule.alpha(t), one]),
        torch.cat([schedule.sigma(t), zero]),
    )


def default_spacing(schedule: DiscreteVP | Schedule) -> str:
    """``"trailing"`` for a ``DiscreteVP`` (starts at n = T), ``"time"`` otherwise."""
    return "trailing" if isinstance(schedule, DiscreteVP) else "time"


def progress(it: Iterable, desc: str) -> Iterable:
    """tqdm over ``it``; silent when stderr is not a terminal (CI, nbval)."""
    return tqdm(it, desc=desc, disable=None, leave=False)
