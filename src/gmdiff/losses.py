"""Training losses: denoising score matching (VE/VP, score_sde), DDPM's L_simple and EDM's
loss, with a pluggable noise distribution and a hook for extra terms.

Every loss has the same shape:

1. draw a noise level per sample (a time t, a DDPM step n, or an EDM sigma);
2. draw standardized noise ``z = noise.sample(x0, generator, alpha, sigma)`` (a
   :class:`gmdiff.noise.NoiseModel`) and form
   ``x_t = alpha x0 + sigma z``;
3. regress the network output on a target derived from ``noise.score_target(z, sigma)``,
   the regression target for the score of x_t. For Gaussian noise this is the score of
   the Gaussian perturbation kernel, ``-z / sigma`` (Vincent 2011; Song et al. 2021, Eq. 7).
   A paper that trains with other noise (GM-SGM's Gaussian-mixture noise, Eqs. 9-11 and
   A.5; DDGM's Gamma noise) supplies its own noise model; the losses turn its score target into a
   denoiser or eps target with the conversions of :mod:`gmdiff.schedules`;
4. add any ``extra_terms`` (GM-DDPM's component classifier, SMD's terms): callables that
   see a :class:`LossContext` and return one value per sample (or a scalar).

Each loss returns a dict of scalars: its main term under its own name, one entry per
extra term, and their sum under ``"loss"`` (what the trainer back-propagates).

Model conventions: ``denoiser(x, sigma) -> D`` returns E[x_0 | x] for an input in
unscaled (EDM) units at noise level ``sigma`` (a (B,) tensor); ``eps_net(x_n, n) -> eps``
is a raw DDPM noise-prediction network called with the time input n - 1 in 0..T-1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from gmdiff.noise import GaussianNoise, NoiseModel
from gmdiff.schedules import (
    VE,
    DiscreteVP,
    Schedule,
    denoiser_to_score,
    per_sample,
    score_to_denoiser,
    score_to_eps,
)

Denoiser = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class LossContext:
    """Everything an extra loss term may need from one loss evaluation.

    ``t`` is what the noise level was drawn as (continuous time for :func:`dsm_loss`, the
    step index for :func:`eps_loss`, sigma for :func:`edm_loss`); ``sigma`` and ``alpha``
    are per-sample (B,); ``output`` is the network's output (D, or eps for eps_loss).
    """

    model: Callable[..., Tensor]
    x0: Tensor
    x_t: Tensor
    z: Tensor
    t: Tensor
    sigma: Tensor
    alpha: Tensor
    output: Tensor
    generator: torch.Generator | None


ExtraTerm = Callable[[LossContext], Tensor]


def _flat_sum(v: Tensor) -> Tensor:
    return v.flatten(1).sum(1)


def _collect(
    name: str,
    loss_per_sample: Tensor,
    ctx: LossContext,
    extra_terms: Mapping[str, ExtraTerm] | None,
) -> dict[str, Tensor]:
    """Batch means of the main term and each extra term, plus their sum as ``"loss"``."""
    out = {name: loss_per_sample.mean()}
    for term, fn in (extra_terms or {}).items():
        if term in (name, "loss"):
            raise ValueError(f"extra term name {term!r} is reserved; rename it")
        out[term] = fn(ctx).mean()
    out["loss"] = torch.stack(list(out.values())).sum()
    return out


def _check_batch(x0: Tensor) -> None:
    if x0.ndim < 2 or x0.shape[0] == 0:
        raise ValueError(
            f"x0 must be a non-empty batch of shape (B, ...), got shape {tuple(x0.shape)}"
        )


def dsm_loss(
    denoiser: Denoiser,
    x0: Tensor,
    schedule: Schedule | None = None,
    *,
    generator: torch.Generator | None = None,
    noise: NoiseModel | None = None,
    extra_terms: Mapping[str, ExtraTerm] | None = None,
) -> dict[str, Tensor]:
    """Denoising score matching with score_sde's weighting lambda(t) = sigma(t)^2.

    t ~ U(schedule.t_min, schedule.t_max), x_t = alpha x0 + sigma z, and per sample
    ``sigma^2 * ||s(x_t) - score_target||^2``, summed over dimensions and averaged over the
    batch (Song et al. 2021, Eq. 7; their continuous ``get_sde_loss_fn`` with
    ``reduce_mean=False`` and no likelihood weighting). For Gaussian noise this is
    ``||sigma s + z||^2``. The score is read off the denoiser, s = (alpha D - x_t)/sigma^2,
    with D evaluated in unscaled units, ``denoiser(x_t / alpha, sigma / alpha)``.

    ``schedule`` defaults to score_sde's VE SDE (sigma 0.01..50, t in [1e-5, 1]).
    Returns ``{"dsm": ..., **extra_terms, "loss": total}``.
    """
    _check_batch(x0)
    schedule = VE() if schedule is None else schedule
    noise = GaussianNoise() if noise is None else noise
    B = x0.shape[0]
    u = torch.rand(B, generator=generator, dtype=x0.dtype, device=x0.device)
    t = schedule.t_min + (schedule.t_max - schedule.t_min) * u
    sigma, alpha = schedule.sigma(t).to(x0.dtype), schedule.alpha(t).to(x0.dtype)
    sig, alp = per_sample(sigma, x0), per_sample(alpha, x0)
    z = noise.sample(x0, generator, alp, sig)
    x_t = alp * x0 + sig * z
    d = denoiser(x_t / alp, sigma / alpha)
    s = denoiser_to_score(d, x_t, sig, alp)
    loss_per_sample = _flat_sum(sig**2 * (s - noise.score_target(z, sig)) ** 2)
    ctx = LossContext(denoiser, x0, x_t, z, t, sigma, alpha, d, generator)
    return _collect("dsm", loss_per_sample, ctx, extra_terms)


def eps_loss(
    eps_net: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    schedule: DiscreteVP,
    *,
    generator: torch.Generator | None = None,
    noise: NoiseModel | None = None,
    extra_terms: Mapping[str, ExtraTerm] | None = None,
) -> dict[str, Tensor]:
    """DDPM's L_simple: n ~ U{1..T}, x_n = sqrt(abar_n) x0 + sqrt(1 - abar_n) z,
    ``||eps - eps_net(x_n, n)||^2`` averaged over dimensions and batch (Ho et al. 2020,
    Alg. 1 and Eq. 14). The eps target is ``score_to_eps(noise.score_target(z, sigma))``,
    which is z itself for Gaussian noise. ``eps_net`` receives the int64 time input
    n - 1 in 0..T-1, the convention of Ho et al.'s code and of
    :class:`gmdiff.nets.VPPrecond` (``DiscreteVP`` index n has alpha_bar_n; 0 is clean data).

    Returns ``{"eps": ..., **extra_terms, "loss": total}``.
    """
    _check_batch(x0)
    noise = GaussianNoise() if noise is None else noise
    B = x0.shape[0]
    n = torch.randint(1, schedule.T + 1, (B,), generator=generator, device=x0.device)
    alpha_bar = schedule.alpha_bar.to(device=x0.device, dtype=x0.dtype)[n]
    alpha, sigma = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    sig = per_sample(sigma, x0)
    z = noise.sample(x0, generator, per_sample(alpha, x0), sig)
    x_n = per_sample(alpha, x0) * x0 + sig * z
    eps_hat = eps_net(x_n, n - 1)
    target = score_to_eps(noise.score_target(z, sig), sig)
    loss_per_sample = ((eps_hat - target) ** 2).flatten(1).mean(1)
    ctx = LossContext(eps_net, x0, x_n, z, n, sigma, alpha, eps_hat, generator)
    return _collect("eps", loss_per_sample, ctx, extra_terms)


def edm_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Karras et al. 2022,
    Table 1), which makes the effective network target unit-variance at every sigma."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(
    denoiser: Denoiser,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float = 0.5,
    noise: NoiseModel | None = None,
    extra_terms: Mapping[str, ExtraTerm] | None = None,
) -> dict[str, Tensor]:
    """EDM's loss: ln sigma ~ N(p_mean, p_std^2), x = x0 + sigma z, per sample
    ``lambda(sigma) ||D(x, sigma) - target||^2`` summed over dimensions and averaged over the
    batch, lambda from :func:`edm_weight` (Karras et al. 2022, Eq. 8 and Table 1). The
    denoiser target is ``score_to_denoiser(noise.score_target(z, sigma), x, sigma)``, which
    is x0 for Gaussian noise.

    Returns ``{"edm": ..., **extra_terms, "loss": total}``.
    """
    _check_batch(x0)
    if p_std <= 0 or sigma_data <= 0:
        raise ValueError(f"p_std and sigma_data must be > 0, got {p_std=} and {sigma_data=}")
    noise = GaussianNoise() if noise is None else noise
    B = x0.shape[0]
    ln_sigma = p_mean + p_std * torch.randn(
        B, generator=generator, dtype=x0.dtype, device=x0.device
    )
    sigma = ln_sigma.exp()
    sig = per_sample(sigma, x0)
    z = noise.sample(x0, generator, torch.ones_like(sig), sig)
    x = x0 + sig * z
    d = denoiser(x, sigma)
    target = score_to_denoiser(noise.score_target(z, sig), x, sig)
    loss_per_sample = edm_weight(sigma, sigma_data) * _flat_sum((d - target) ** 2)
    ctx = LossContext(denoiser, x0, x, z, sigma, sigma, torch.ones_like(sigma), d, generator)
    return _collect("edm", loss_per_sample, ctx, extra_terms)
