"""Likelihood of a diffusion model through its probability-flow ODE.

Along a PF-ODE trajectory x_t with drift f(x, t) (:meth:`gmdiff.schedules.Schedule.pf_ode_drift`
fed the model's score), the instantaneous change of variables gives
d log p_t(x_t) / dt = -div f(x_t, t) (Chen et al. 2018, Thm. 1), so

    log p_{t_min}(x) = log p_T(x_T) + int_{t_min}^{t_max} div f(x_t, t) dt,

integrated forward from the data x at t_min to x_T at t_max (Song et al. 2021, "score SDE",
Sec. 4.3 and App. D.2). Here p_T is the schedule's prior N(0, prior_std^2 I), as in
score_sde's ``likelihood.py``; for an unscaled process (EDM, VE) the true p_T is the data
blurred by N(0, sigma_max^2 I), and the mismatch moves each sample's NLL by about
x_T . E[x] / sigma_max^2 ~ |E[x]| / sigma_max nats, which averages out to O(1 / sigma_max^2).
The divergence is exact (D backward passes per step, for small D) or Hutchinson's estimate
eps^T (df/dx) eps with one Rademacher or Gaussian probe per sample, drawn once and held
fixed over the integration (Grathwohl et al. 2019, FFJORD, Eq. 7): an unbiased estimate of
log p whose per-sample spread is returned with it.

The model is any denoiser D(x, sigma) in the library's signature
(:mod:`gmdiff.samplers.base`) on any continuous :class:`~gmdiff.schedules.Schedule`; the
score of p_t is (alpha D(x/alpha, sigma/alpha) - x) / sigma^2
(:func:`gmdiff.schedules.denoiser_to_score`). For a network of a discrete DDPM process
(``DiscreteVP``, e.g. a diffusers model) pass ``EDM(sigma_min, sigma_max)`` inside its noise
range: the denoiser is the same function of (x, sigma).

Images: the density of the data x in [-1, 1] (or [0, 1]) is continuous, the pixels are not.
With ``dequantize=True`` :func:`bits_per_dim` first moves each 8-bit value k to
(k + u) / 256 with u ~ U[0, 1) (in [0, 1] units; score_sde's convention), so that
-log p(x) + D log(256 / range) upper-bounds the discrete code length (Theis et al. 2016);
bits/dim is that number over D log 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from gmdiff.samplers.base import Denoiser, call_denoiser, progress
from gmdiff.schedules import Schedule, denoiser_to_score

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


@dataclass
class NLL:
    """Per-sample negative log-likelihood -log p_{t_min}(x) in nats, shape (B,), with the
    number of drift evaluations the ODE solver made and the divergence used."""

    nll: Tensor
    nfe: int
    divergence: str

    def mean_and_stderr(self) -> tuple[float, float]:
        """Mean NLL and its standard error over the batch (the spread of the samples and,
        for Hutchinson's estimator, of its probes)."""
        v = self.nll.double()
        return v.mean().item(), (v.std() / math.sqrt(v.numel())).item()


def _score_fn(denoiser: Denoiser, schedule: Schedule) -> Callable[[Tensor, Tensor], Tensor]:
    def score(x: Tensor, t: Tensor) -> Tensor:
        a, s = schedule.alpha(t), schedule.sigma(t)
        d = call_denoiser(denoiser, x, a, s)
        return denoiser_to_score(d, x, s.to(x.dtype), a.to(x.dtype))

    return score


def divergence_exact(f: Tensor, x: Tensor) -> Tensor:
    """sum_i d f_i / d x_i per sample for f = f(x) with x (B, D) requiring grad: D
    backward passes (the trace of the Jacobian)."""
    out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(x.shape[1]):
        (g,) = torch.autograd.grad(f[:, i].sum(), x, retain_graph=True)
        out = out + g[:, i]
    return out


def divergence_hutchinson(f: Tensor, x: Tensor, probe: Tensor) -> Tensor:
    """eps^T (df/dx) eps per sample, one vector-Jacobian product (Hutchinson 1990); unbiased
    for the trace when E[eps eps^T] = I."""
    (g,) = torch.autograd.grad((f * probe).sum(), x)
    return (g * probe).sum(1)


def pf_ode_nll(
    denoiser: Denoiser,
    schedule: Schedule,
    x: Tensor,
    *,
    divergence: str = "hutchinson",
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    t_min: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> NLL:
    """-log p_{t_min}(x) per sample of a batch x (B, ...) under the model's PF-ODE (see the
    module docstring), integrated with scipy's RK45 (``rtol``, ``atol``; score_sde's 1e-5)
    from ``t_min`` (default ``schedule.t_min``) to ``schedule.t_max``.

    ``divergence``: "exact" or "hutchinson" (``probe`` "rademacher" or "gaussian", drawn
    from ``generator``). The density is that of x_{t_min}, the data noised to the schedule's
    smallest level; it tends to the data density as t_min -> 0.
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(  # noqa: TRY004 -- the project reports all bad input as ValueError
            f"pf_ode_nll needs a continuous Schedule (EDM, VE, VPLinear), got "
            f"{type(schedule).__name__}; for a DiscreteVP model pass EDM(sigma_min, sigma_max) "
            "inside its noise range"
        )
    if divergence not in DIVERGENCES or probe not in PROBES:
        raise ValueError(
            f"divergence must be one of {DIVERGENCES} and probe one of {PROBES}, got "
            f"divergence={divergence!r}, probe={probe!r}"
        )
    t0 = schedule.t_min if t_min is None else float(t_min)
    t1 = schedule.t_max
    if not t0 < t1:
        raise ValueError(f"need t_min < t_max = {t1}, got t_min={t0}")
    B, shape = x.shape[0], x.shape
    D = x[0].numel()
    dtype, device = x.dtype, x.device
    score = _score_fn(denoiser, schedule)
    eps = None
    if divergence == "hutchinson":
        eps = torch.randn(B, D, generator=generator, dtype=torch.float64)
        if probe == "rademacher":
            eps = eps.sign()
        eps = eps.to(dtype=dtype, device=device)
    nfe = 0

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        nonlocal nfe
        nfe += 1
        tt = torch.tensor(t, dtype=torch.float64)
        xt = torch.from_numpy(y[: B * D]).to(dtype=dtype, device=device).reshape(B, D)
        with torch.enable_grad():
            xt.requires_grad_(True)
            xs = xt.reshape(shape)
            f = schedule.pf_ode_drift(xs, tt, score(xs, tt)).reshape(B, D)
            div = divergence_exact(f, xt) if eps is None else divergence_hutchinson(f, xt, eps)
        out = torch.cat([f.detach().reshape(-1), div.detach()])
        return out.double().cpu().numpy()

    y0 = np.concatenate([x.detach().double().cpu().reshape(-1).numpy(), np.zeros(B)])
    sol = solve_ivp(rhs, (t0, t1), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the PF-ODE integration failed: {sol.message}")
    end = torch.from_numpy(sol.y[:, -1].copy())
    x_T, delta = end[: B * D].reshape(B, D), end[B * D :]
    return NLL(nll=-(schedule.prior_logp(x_T) + delta), nfe=nfe, divergence=divergence)


def marginal_log_prob(model, schedule: Schedule, x: Tensor, t: float) -> Tensor:
    """Exact log p_t(x) of x_t = alpha_t x_0 + sigma_t eps for an analytic model of x_0
    with ``log_prob(x, sigma)`` (:mod:`gmdiff.analytic`): the unscaled density at
    sigma_t / alpha_t of x / alpha_t, minus D log alpha_t (change of variables)."""
    tt = torch.tensor(float(t), dtype=torch.float64)
    a, s = schedule.alpha(tt).item(), schedule.sigma(tt).item()
    D = x[0].numel()
    return model.log_prob(x.reshape(x.shape[0], D) / a, s / a) - D * math.log(a)


def dequantize(x: Tensor, generator: torch.Generator, centered: bool = True) -> Tensor:
    """Uniform dequantisation of 8-bit images: x holds values k / 255 (``centered=False``,
    [0, 1]) or 2 k / 255 - 1 ([-1, 1]); returns (k + u) / 256 with u ~ U[0, 1), mapped back
    to the same range (score_sde's ``(255 x + u) / 256``)."""
    x01 = (x + 1) / 2 if centered else x
    k = torch.round(x01 * 255)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    y = (k + u) / 256
    return 2 * y - 1 if centered else y


def bits_per_dim(nll: Tensor, dim: int, centered: bool = True) -> Tensor:
    """Bits per dimension of 8-bit data from the NLL (nats) of its dequantised continuous
    version: (nll + D log(256 / range)) / (D log 2), range 2 for [-1, 1] data (offset
    7 bits) and 1 for [0, 1] (offset 8 bits)."""
    width = 2.0 if centered else 1.0
    return (nll + dim * math.log(256 / width)) / (dim * math.log(2))


def image_bpd(
    denoiser: Denoiser,
    schedule: Schedule,
    images: Tensor,
    *,
    dequantize_data: bool = True,
    centered: bool = True,
    generator: torch.Generator | None = None,
    batch: int | None = None,
    **options,
) -> tuple[Tensor, NLL]:
    """Bits/dim of 8-bit images (B, C, H, W) under the model: uniformly dequantised first
    when ``dequantize_data`` (the convention of the module docstring; without it the
    number is the continuous density of the grid points and not a code length), then
    :func:`pf_ode_nll` (``options``: divergence, probe, t_min, rtol, atol), ``batch``
    images at a time (default all; each batch is one ODE solve, its NFE summed)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    x = dequantize(images, gen, centered) if dequantize_data else images
    parts = [
        pf_ode_nll(denoiser, schedule, xb, generator=gen, **options)
        for xb in progress(x.split(batch or x.shape[0]), "likelihood batches")
    ]
    res = NLL(torch.cat([r.nll for r in parts]), sum(r.nfe for r in parts), parts[0].divergence)
    return bits_per_dim(res.nll, images[0].numel(), centered), res


@dataclass
class Gap:
    """PF-ODE NLL against an exact one on the same points (nats): the means, the mean of
    the per-sample difference and its standard error, the worst per-sample difference,
    and the solver's drift evaluations."""

    nll: float
    exact: float
    gap: float
    gap_stderr: float
    max_abs_gap: float
    nfe: int


def gap_to_exact(
    denoiser: Denoiser, exact_model, schedule: Schedule, x: Tensor, **options
) -> tuple[Gap, NLL, Tensor]:
    """:func:`pf_ode_nll` of ``denoiser`` on x (``options``: divergence, probe, generator,
    rtol, atol) against the exact -log p_{t_min}(x) of ``exact_model``
    (:func:`marginal_log_prob`); returns the summary, the estimate and the exact NLLs."""
    res = pf_ode_nll(denoiser, schedule, x, **options)
    exact = -marginal_log_prob(exact_model, schedule, x, schedule.t_min)
    d = res.nll - exact
    gap = Gap(
        nll=res.nll.mean().item(),
        exact=exact.mean().item(),
        gap=d.mean().item(),
        gap_stderr=(d.std() / math.sqrt(d.numel())).item(),
        max_abs_gap=d.abs().max().item(),
        nfe=res.nfe,
    )
    return gap, res, exact
