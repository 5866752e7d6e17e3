"""GM-DDPM's samplers (GM-DDPM paper, App. A.4, Algs. 2-5), one function with a
``strategy``:

============  =========  ======================  ==============================  ========
strategy      algorithm  x_T                     offset subtracted at step t      paper
============  =========  ======================  ==============================  ========
"standard"    Alg. 2     N(0, I + g_T E[mu mu^T])  mu_{i_t}, i_t = argmax p(k|x_t)  Eq. 9
"ddpm"        Alg. 3     N(0, I)                 none (DDPM's update)            "original"
"keep_mu"     Alg. 4     N(0, I + g_T E[mu mu^T])  none                            "removal mu"
"random"      Alg. 5     N(0, I + g_T E[mu mu^T])  mu_{i_t}, i_t ~ omega           "random mu"
"posterior"   (ours)     N(0, I + g_T E[mu mu^T])  mu_{i_t}, i_t ~ p(k | x_t)       --
============  =========  ======================  ==============================  ========

``"posterior"`` is not in the paper: it draws i_t from the classifier instead of taking its
argmax (Eq. 5's reverse kernel is the mixture sum_k p(k | x_t) N(mu_theta(x_t, t, k), ...),
which this samples; Alg. 2's argmax picks its heaviest component).

(g_T = gamma_T.) Every step is x_{t-1} = mu_theta(x_t, t, i_t) + s_t z with the mean of
Eq. 9 (:func:`gmdiff.analytic.gm_ddpm.mean_from_eps`), and no noise on the last step. The
variance s_t^2 is the option ``variance`` (:func:`gmdiff.analytic.gm_ddpm.reverse_variances`):
``"eq30"`` (the default) sigma_t^2 = beta_t gamma_{t-1} / gamma_t, the posterior variance
of one path (Eq. 30); ``"eq34"`` the sigma-tilde_t^2(i_t) that Algs. 2-5 print, which
adds the spread of the earlier offsets (Eq. 34, its approximate form, per coordinate; it
does not depend on i_t). At lam = 1 on the digits schedule (T = 50) Eq. 34 is up to 84 %
above Eq. 30 (at t = 2); at lam = 0 the two agree. With ``"eq30"`` the update without an
offset is DDPM's (Algs. 3-4: beta_t + alpha_t gamma_{t-1} = gamma_t = 1 - ab_t), so
``"ddpm"`` is :func:`gmdiff.samplers.ddpm` on all T steps. The names of Alg. 4 ("without
the removal of mu") and of Table 1's second strategy ("removal mu") disagree; the
algorithm, which never subtracts mu, is implemented.

Per-pixel reading (``noise.per_coordinate``, :mod:`gmdiff.nets.gm_ddpm`): ``"random"`` draws
one component per pixel, the prior's E[mu mu^T] is Var(c) diag(u^2) + E[c]^2 u u^T, and
``"standard"`` and ``"posterior"``, which read i_t from a K-way classifier, refuse.

x_T. The caller passes x_T ~ N(0, I) (every sampler's convention); for the strategies whose
prior is N(0, I + gamma_T E[mu mu^T]) it is stretched along u: with mu_k = c_k u,
E[mu mu^T] = E[c^2] u u^T, and x_T + (sqrt(1 + gamma_T E[c^2] |u|^2) - 1) (u.x_T / |u|^2) u
has that covariance (per-pixel: see :func:`mixture_prior`).

The model. ``denoiser`` is D(x, sigma) in EDM units as for every sampler (a
:class:`gmdiff.nets.VPPrecond` around a :class:`gmdiff.nets.GMDDPMNet` or around the exact
:class:`gmdiff.analytic.gm_ddpm.ExactGMDDPM`); eps_theta is read back from it. ``noise`` and
``classifier(x_t, n - 1) -> logits`` default to the wrapped network's ``noise`` and
``logits``. The offsets are defined per step of the chain, so ``steps`` must be T.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from gmdiff.analytic.gm_ddpm import mean_from_eps, reverse_variances
from gmdiff.samplers.base import Callback, Denoiser, call_denoiser, check_schedule, progress
from gmdiff.schedules import DiscreteVP, denoiser_to_eps

STRATEGIES = ("standard", "ddpm", "keep_mu", "random", "posterior")
VARIANCES = ("eq30", "eq34")


def mixture_prior(x_T: Tensor, schedule: DiscreteVP, noise) -> Tensor:
    """x_T ~ N(0, I) mapped to N(0, I + gamma_T E[mu mu^T]) (GM-DDPM paper, Alg. 2 line 1),
    by stretching its component along u (see the module docstring).

    Per-pixel reading: E[mu mu^T] = Var(c) diag(u^2) + E[c]^2 u u^T, so the covariance is
    A + b u u^T with A = I + gamma_T Var(c) diag(u^2), b = gamma_T E[c]^2; with w = A^(-1/2)
    u, A^(1/2) (x_T + (sqrt(1 + b |w|^2) - 1) (w.x_T / |w|^2) w) has it."""
    u = noise.unit_vector(x_T)
    e_c = float((noise.probs * noise.values).sum())
    e_c2 = float((noise.probs * noise.values**2).sum())
    gamma_T = 1.0 - float(schedule.alpha_bar[schedule.T])
    a_half = torch.ones_like(u)
    if noise.per_coordinate:
        a_half = torch.sqrt(1.0 + gamma_T * (e_c2 - e_c**2) * u * u)
        u, e_c2 = u / a_half, e_c**2
    uu = float((u * u).sum())
    if uu == 0.0:
        return a_half * x_T
    stretch = math.sqrt(1.0 + gamma_T * e_c2 * uu) - 1.0
    proj = (x_T * u).flatten(1).sum(1) / uu
    x = x_T + stretch * proj.reshape(-1, *([1] * (x_T.ndim - 1))) * u
    return a_half * x if noise.per_coordinate else x


def _wrapped(denoiser: Denoiser, name: str):
    net = getattr(denoiser, "net", None)
    if net is None or not hasattr(net, name):
        raise ValueError(
            f"the GM-DDPM sampler needs {name!r}: pass it as an option, or pass a VPPrecond "
            "around a GMDDPMNet (or ExactGMDDPM), which provides it"
        )
    return getattr(net, name)


def gm_ddpm(
    denoiser: Denoiser,
    schedule: DiscreteVP,
    x_T: Tensor,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    strategy: str = "standard",
    noise=None,
    classifier: Callable[[Tensor, Tensor], Tensor] | None = None,
    variance: str = "eq30",
) -> Tensor:
    """GM-DDPM ancestral sampling with one of the strategies of Algs. 2-5 and the reverse
    variance of Eq. 30 or Eq. 34 (see the module docstring); ``x_T`` ~ N(0, I), ``steps``
    = T. Randomness from ``generator``: at each step first i_t (``"random"``,
    ``"posterior"``), then z."""
    check_schedule(schedule, DiscreteVP, "gm_ddpm")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if variance not in VARIANCES:
        raise ValueError(
            f"sample.options.variance must be one of {VARIANCES} (GM-DDPM paper, Eq. 30 or "
            f"Eq. 34), got {variance!r}"
        )
    if steps != schedule.T:
        raise ValueError(
            f"the GM-DDPM sampler takes every step of the chain: steps must be T = "
            f"{schedule.T}, got steps={steps!r} (DDIM / DPM-Solver take fewer)"
        )
    noise = _wrapped(denoiser, "noise") if noise is None else noise
    if strategy in ("standard", "posterior") and noise.per_coordinate:
        raise ValueError(
            f"strategy {strategy!r} reads i_t from a K-way classifier, which the per-pixel "
            "reading (per_coordinate: true) has not; use 'ddpm', 'keep_mu' or 'random'"
        )
    if strategy in ("standard", "posterior") and classifier is None:
        classifier = _wrapped(denoiser, "logits")
    tilde = reverse_variances(schedule, noise, x_T, "eq34") if variance == "eq34" else None
    x = x_T if strategy == "ddpm" else mixture_prior(x_T, schedule, noise)
    alpha, sigma = (
        schedule.alpha(torch.arange(schedule.T + 1)),
        schedule.sigma(torch.arange(schedule.T + 1)),
    )
    for i, t in enumerate(progress(range(schedule.T, 0, -1), "gm_ddpm")):
        x0 = call_denoiser(denoiser, x, alpha[t], sigma[t])
        if callback is not None:
            callback(i, t, x, x0)
        eps = denoiser_to_eps(x0, x, float(sigma[t]), float(alpha[t]))
        i_t = None
        if strategy in ("standard", "posterior"):
            c = torch.full((x.shape[0],), t - 1, dtype=x.dtype, device=x.device)
            logits = classifier(x, c)
            if strategy == "standard":
                i_t = logits.argmax(1)
            else:
                p = torch.softmax(logits.double(), 1)
                i_t = torch.multinomial(p, 1, generator=generator)[:, 0]
        elif strategy == "random":
            i_t = noise.draw(x, generator)
        x = mean_from_eps(x, eps, t, i_t, schedule, noise)
        if t > 1:
            if tilde is None:  # Eq. 30
                var = float(schedule.betas[t - 1]) * float(sigma[t - 1] ** 2 / sigma[t] ** 2)
            else:
                var = float(tilde[t])
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + math.sqrt(var) * z
    return x
