"""Training losses: denoising score matching (VE/VP, score_sde), DDPM's L_simple, EDM's
loss and Soft Mixture Denoising's (SMD paper, Eq. (15)), with a pluggable noise
distribution and a hook for extra terms.

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

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from gmdiff.global_batch import global_count, local, per_example
from gmdiff.nets.wrappers import unwrap
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
    u = per_example(
        lambda m: torch.rand(m, generator=generator, dtype=x0.dtype, device=x0.device), B
    )
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


def _steps(schedule: DiscreteVP, m: int, generator: torch.Generator | None, device) -> Tensor:
    """m DDPM steps n ~ U{1..T} (Ho et al. 2020, Alg. 1 line 3)."""
    return torch.randint(1, schedule.T + 1, (m,), generator=generator, device=device)


def _ddpm_noising(
    x0: Tensor, schedule: DiscreteVP, generator: torch.Generator | None, noise: NoiseModel
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """DDPM's forward draw (Ho et al. 2020, Alg. 1 lines 3-4): n ~ U{1..T}, z from
    ``noise``, x_n = sqrt(abar_n) x0 + sqrt(1 - abar_n) z. Returns (n, alpha, sigma, z, x_n,
    eps target), alpha and sigma per sample (B,)."""
    B = x0.shape[0]
    n = per_example(lambda m: _steps(schedule, m, generator, x0.device), B)
    alpha_bar = schedule.alpha_bar.to(device=x0.device, dtype=x0.dtype)[n]
    alpha, sigma = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    sig = per_sample(sigma, x0)
    z = noise.sample(x0, generator, per_sample(alpha, x0), sig)
    x_n = per_sample(alpha, x0) * x0 + sig * z
    target = score_to_eps(noise.score_target(z, sig), sig)
    return n, alpha, sigma, z, x_n, target


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
    n, alpha, sigma, z, x_n, target = _ddpm_noising(x0, schedule, generator, noise)
    eps_hat = eps_net(x_n, n - 1)
    loss_per_sample = ((eps_hat - target) ** 2).flatten(1).mean(1)
    ctx = LossContext(eps_net, x0, x_n, z, n, sigma, alpha, eps_hat, generator)
    return _collect("eps", loss_per_sample, ctx, extra_terms)


SMD_REDUCTIONS = ("mean", "min", "softmin")


def smd_loss(
    smd_net: Callable[..., Tensor],
    x0: Tensor,
    schedule: DiscreteVP,
    *,
    generator: torch.Generator | None = None,
    n_eta: int = 1,
    reduction: str = "mean",
    temperature: float = 1.0,
    noise: NoiseModel | None = None,
    extra_terms: Mapping[str, ExtraTerm] | None = None,
) -> dict[str, Tensor]:
    """Soft Mixture Denoising's loss (SMD paper, Eq. (15) and Alg. 1) for an eps network
    with a latent, ``smd_net(x_n, n - 1, generator=g)`` (:class:`gmdiff.nets.SMDNet`),
    which draws eta ~ N(0, I) itself and forms z_t = g_phi(eta, x_n, t) from it.

    Per example: n ~ U{1..T} and eps as in :func:`eps_loss` (one draw), then ``n_eta``
    independent eta_k sharing that x_n, and the per-draw errors
    ``e_k = ||eps - eps_theta-hat(x_n, t; z_k)||^2`` (mean over dimensions). The
    ``n_eta`` draws go through the network as one batch of ``n_eta * B`` rows (the
    hyper-layer after the stem makes every layer depend on z, so nothing is shared and
    the cost is linear in ``n_eta``, as the paper's Fig. 2b reports).

    ``reduction`` says how the draws are combined:

    * ``"mean"`` -- the paper: Eq. (15) has E_eta outside the norm, estimated by Monte
      Carlo ("one might also sample more noises (e.g. eta) in one training step",
      Sec. 4.2); n_eta = 1 is Alg. 1 as printed. Note: for every x_n and z this objective
      is minimised by eps-hat(x_n, t; z) = E[eps | x_n], the DDPM optimum, whatever z is,
      so Eq. (15) does not reward an output that depends on eta (it is the Jensen bound
      E_z[-log p(x | z)] >= -log E_z p(x | z), which is tight only when z is
      uninformative). Whether training keeps any eta-dependence is an empirical question.
    * ``"min"`` -- not in the paper: the best of the n_eta draws (winner-takes-all /
      multiple-choice learning), which does reward spread across eta.
    * ``"softmin"`` -- not in the paper: ``-tau log mean_k exp(-e_k / tau)`` with
      ``tau = temperature``, the importance-weighted (IWAE-style) Monte Carlo estimate of
      the mixture's -log E_eta exp(-e / tau); it tends to ``"mean"`` as tau -> inf and to
      ``"min"`` (up to tau log n_eta) as tau -> 0.

    With n_eta = 1 the three coincide. The coefficient Gamma_t of Eq. (15) is dropped as
    the paper says (Sec. 4.2, "reweight ... by ignoring coefficient Gamma_t"), giving
    L_simple's weighting. Alg. 1 line 4 writes ``sqrt(alpha_t) x_0 + sqrt(1 - alpha_t)
    eps``; Eq. (15) (and DDPM) have alpha-bar_t, which is what is used here.

    Randomness: n, eps, then every eta from ``generator``. ``LossContext.output`` is the
    network output for the first eta draw. Returns ``{"smd": ..., **extra_terms, "loss":
    total}``.
    """
    _check_batch(x0)
    if isinstance(n_eta, bool) or not isinstance(n_eta, int) or n_eta < 1:
        raise ValueError(f"n_eta must be an integer >= 1, got {n_eta!r}")
    if reduction not in SMD_REDUCTIONS:
        raise ValueError(f"reduction must be one of {SMD_REDUCTIONS}, got {reduction!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    noise = GaussianNoise() if noise is None else noise
    n, alpha, sigma, z, x_n, target = _ddpm_noising(x0, schedule, generator, noise)
    B, rest = x0.shape[0], x0.shape[1:]
    rows = x_n.repeat(n_eta, *([1] * len(rest)))  # row k * B + b: draw k of example b
    eps_hat = smd_net(rows, (n - 1).repeat(n_eta), generator=generator).reshape(n_eta, B, *rest)
    err = ((eps_hat - target) ** 2).flatten(2).mean(2)  # (n_eta, B)
    if reduction == "mean":
        loss_per_sample = err.mean(0)
    elif reduction == "min":
        loss_per_sample = err.min(0).values
    else:
        log_mean = torch.logsumexp(-err / temperature, 0) - math.log(n_eta)
        loss_per_sample = -temperature * log_mean
    ctx = LossContext(smd_net, x0, x_n, z, n, sigma, alpha, eps_hat[0], generator)
    return _collect("smd", loss_per_sample, ctx, extra_terms)


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
    ln_sigma = p_mean + p_std * per_example(
        lambda m: torch.randn(m, generator=generator, dtype=x0.dtype, device=x0.device), B
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


def gm_ddpm_loss(
    gm_net: Callable[..., Tensor],
    x0: Tensor,
    schedule: DiscreteVP,
    *,
    generator: torch.Generator | None = None,
    classifier_weight: float = 1.0,
    noise=None,
    extra_terms: Mapping[str, ExtraTerm] | None = None,
) -> dict[str, Tensor]:
    """GM-DDPM's training objective (GM-DDPM paper, Alg. 1 and Eq. 6) for a
    :class:`gmdiff.nets.GMDDPMNet`: n ~ U{1..T}, then x_n, its Gaussian part eps and the
    components i_1..i_n in one draw (:func:`gmdiff.analytic.gm_ddpm.sample_marginal`, Eq. 3;
    i_j drawn with the mixture weights omega, not uniformly as Alg. 1 line 3 prints), and
    per example

        ||eps - eps_theta(x_n, n)||^2 (mean over dimensions)
        + classifier_weight * (-log p_theta(i_n | x_n)).

    The eps term drops Alg. 1's weight gamma_t beta_t^2 / (2 sigma_t^2 alpha_t (beta_t +
    alpha_t gamma_{t-1})^2), as DDPM's L_simple drops its own: with the posterior variance
    sigma_t^2 = beta_t gamma_{t-1} / gamma_t of Eq. 30 that weight is beta_t / (2 alpha_t
    gamma_{t-1}), infinite at t = 1. The classifier term is the second term of Eq. 6 with
    q(i_t | x_t, x_0, i_{1:t-1}) replaced by the drawn i_t (its Monte Carlo estimate up to a
    constant); ``classifier_weight`` = 1 is Eq. 6.

    ``gm_net`` may be wrapped (DDP, torch.compile: the trainer's call): its ``noise`` and
    ``logits`` are read from the network inside (:func:`gmdiff.nets.unwrap`).
    ``noise`` (an :class:`gmdiff.noise.OffsetMixtureNoise`) defaults to ``gm_net.noise``.
    Under its per-pixel reading (``per_coordinate``) the forward draw gives every
    coordinate its own components i_1..i_n (paths of the data's shape); a K-way classifier
    cannot predict those, so the loss has no classifier term and refuses
    ``classifier_weight`` > 0 (:func:`check_gm_ddpm_classifier`).
    Returns ``{"eps": ..., "classifier": ..., **extra_terms, "loss": total}`` (without
    ``"classifier"`` under the per-pixel reading).
    """
    from gmdiff.analytic.gm_ddpm import sample_marginal

    _check_batch(x0)
    net = unwrap(gm_net)
    noise = net.noise if noise is None else noise
    check_gm_ddpm_classifier(noise, classifier_weight)
    B = x0.shape[0]
    n_all = _steps(schedule, global_count(B), generator, x0.device)  # the global batch's
    n = local(n_all)
    x_n, eps, paths = sample_marginal(x0, n, schedule, noise, generator, int(n_all.max()))
    eps_hat = gm_net(x_n, n - 1)
    loss_per_sample = ((eps_hat - eps) ** 2).flatten(1).mean(1)
    alpha_bar = schedule.alpha_bar.to(device=x0.device, dtype=x0.dtype)[n]
    ctx = LossContext(
        gm_net, x0, x_n, eps, n, (1 - alpha_bar).sqrt(), alpha_bar.sqrt(), eps_hat, generator
    )
    terms = dict(extra_terms or {})
    if not noise.per_coordinate:
        i_n = paths[torch.arange(B, device=x0.device), n - 1]
        ce = torch.nn.functional.cross_entropy(net.logits(x_n, n - 1), i_n, reduction="none")
        terms = {"classifier": lambda _: classifier_weight * ce} | terms
    return _collect("eps", loss_per_sample, ctx, terms)


def check_gm_ddpm_classifier(noise, classifier_weight: float) -> None:
    """Refuse a negative classifier weight, and one above 0 under the per-pixel reading of
    GM-DDPM's means (``noise.per_coordinate``), where Alg. 1's K-way classifier does not fit
    (:mod:`gmdiff.nets.gm_ddpm`)."""
    w = classifier_weight
    if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0:
        raise ValueError(f"classifier_weight must be a number >= 0, got {w!r}")
    if noise.per_coordinate and classifier_weight > 0:
        raise ValueError(
            "under the per-pixel reading (per_coordinate: true) every pixel draws its own "
            "component, which Alg. 1's K-way classifier cannot predict; set "
            f"loss.options.classifier_weight: 0 (got {classifier_weight})"
        )
