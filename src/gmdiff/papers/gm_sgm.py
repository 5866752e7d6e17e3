"""GM-SGM ("Approximated anomalous diffusion: Gaussian mixture score-based generative
models"): its training noise, its sampling variant, its published tables and the small
experiments behind the ``gm_sgm_tables`` chapter. Equation numbers refer to that paper.

What the paper trains (GMS-4)
-----------------------------
Alg. 1, Eq. (10) and Eq. (11) perturb a datum with ``beta~ * eta``, eta ~ N(0, sigma_t^2 I),
and regress the score network on ``-beta~ eta / sigma_t^2``: minus the *total* noise over
sigma_t^2, with the network told only sigma_t (Eq. 9 writes ``eta / sigma_t``, which is
dimensionally inconsistent with Eq. 3 and Eq. 11; we read it as the sigma_t^2 of Eq. 11 and
Alg. 1, where eta ~ N(0, I) and the target is beta~ eta / sigma_t in score-times-sigma units).
This target is *not* the score of the mixture perturbation kernel (that would be
-beta~ eta / (beta~^2 sigma^2) averaged with posterior weights). Its minimiser is

    s*(x, sigma) = (E[x_0 | x] - x) / sigma^2,

the Tweedie form of the posterior mean of x_0 under the mixture corruption x = x_0 +
beta~ sigma z (the "empirical Bayes" estimate of Sec. 4.1, Eq. 13). In the library's
terms the denoiser target stays x_0 and only the corruption changes, so every noise model
here returns the *total* standardized noise ``z = beta~ eta`` from ``sample`` and the
Gaussian target ``-z / sigma`` from ``score_target``; :func:`gmdiff.losses.dsm_loss` then
computes ``sigma^2 ||s + z / sigma||^2 = ||D - x_0||^2 / sigma^2`` exactly as Eq. (11) with
score_sde's weighting lambda(sigma) = sigma^2.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from gmdiff import losses
from gmdiff.samplers import ve_pc
from gmdiff.schedules import VE, Schedule, per_sample

# --------------------------------------------------------------------------------------
# The paper's numbers (FID, Inception features; lower is better)
# --------------------------------------------------------------------------------------

#: Table 1: FID on CIFAR-10 vs PC-sampler iterations T (SGM = NCSN++ public checkpoint).
TABLE1 = pd.DataFrame(
    {
        "iterations": [1000, 500, 400, 333, 250, 200, 100, 50],
        "SGM": [2.50, 3.54, 4.35, 6.24, 12.70, 29.39, 306.91, 456.49],
        "GM-SGM": [2.25, 3.53, 4.00, 4.55, 6.18, 8.76, 37.63, 29.41],
    }
)
#: Table 2: FID on CelebA (64 x 64) vs PC-sampler iterations T.
TABLE2 = pd.DataFrame(
    {
        "iterations": [500, 400, 333, 200, 100, 80, 66, 20],
        "SGM": [4.01, 6.56, 14.53, 257.64, 435.59, 437.98, 436.91, 439.32],
        "GM-SGM": [3.75, 3.98, 4.10, 4.51, 5.99, 6.20, 6.26, 27.81],
    }
)
#: Table 3 (App. A.3): FID on CIFAR-10 for beta in Alg. 1 (rows) vs iterations (columns);
#: beta = 1 is the SGM.
TABLE3 = pd.DataFrame(
    {
        "beta": [1.0, 1.5, 2.0, 3.0],
        50: [456.49, 37.91, 29.41, 105.40],
        200: [29.39, 9.06, 8.76, 11.24],
        250: [12.70, 7.07, 6.18, 8.08],
        500: [3.54, 3.33, 3.53, 3.64],
    }
)
#: Table 4 (App. A.4): FID on CIFAR-10 of the adaptive SDE solver of Jolicoeur-Martineau
#: et al. 2021 (VP and VE) at about 50 "iterations" vs SGM and GM-SGM with 50 PC iterations.
TABLE4 = pd.DataFrame(
    {
        "method": ["adaptive SDE solver (VP)", "adaptive SDE solver (VE)", "SGM", "GM-SGM"],
        "iterations": [49, 50, 50, 50],
        "FID": [82.42, 307.32, 456.49, 29.41],
    }
)
#: Table 5 (App. A.4): FID on CelebA (64 x 64) at 20 and 100 iterations.
TABLE5 = pd.DataFrame(
    {
        "iterations": [20, 100],
        "DDPM": [183.83, 45.2],
        "DDIM": [13.73, 6.53],
        "DDGM (DDPM-based)": [28.24, 14.22],
        "DDGM (DDIM-based)": [6.83, 3.17],
        "SGM": [439.32, 435.59],
        "GM-SGM": [27.81, 5.99],
    }
)
#: Numbers quoted in the text: Sec. 5.4 (mixture increments at sampling, CelebA-64, 333
#: iterations) and App. A.5 (frequency-shaped matrix mixture).
TEXT_NUMBERS = pd.DataFrame(
    [
        {
            "where": "Sec. 5.4",
            "dataset": "CelebA-64",
            "iterations": 333,
            "setting": "GM-SGM, Gaussian increments",
            "FID": 4.1,
        },
        {
            "where": "Sec. 5.4",
            "dataset": "CelebA-64",
            "iterations": 333,
            "setting": "GM-SGM, mixture increments",
            "FID": 5.2,
        },
        {
            "where": "Sec. 5.4",
            "dataset": "CelebA-64",
            "iterations": 333,
            "setting": "SGM",
            "FID": 14.5,
        },
        {
            "where": "A.5",
            "dataset": "CelebA-64",
            "iterations": 400,
            "setting": "GM-SGM, matrix mixture {I, 2M}",
            "FID": 3.77,
        },
        {
            "where": "A.5",
            "dataset": "CIFAR-10",
            "iterations": 1000,
            "setting": "GM-SGM, matrix mixture {I, 2M}",
            "FID": 2.24,
        },
        {"where": "A.5", "dataset": "CIFAR-10", "iterations": 1000, "setting": "SGM", "FID": 2.51},
    ]
)

PAPER_TABLES: dict[str, pd.DataFrame] = {
    "table1": TABLE1,
    "table2": TABLE2,
    "table3": TABLE3,
    "table4": TABLE4,
    "table5": TABLE5,
    "text": TEXT_NUMBERS,
}

# --------------------------------------------------------------------------------------
# Noise models (GMS-4)
# --------------------------------------------------------------------------------------


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta):
        raise ValueError(f"beta must be a finite number >= 1, got beta={beta!r}")
    if beta < 1:
        raise ValueError(
            f"beta must be >= 1 (GM-SGM, Eq. 9: the large-jump component N(0, beta^2 sigma^2 I) "
            f"has beta >= 1; beta = 1 is the plain SGM, the paper's default is 2), got beta={beta}"
        )
    return float(beta)


def _gaussian(x0: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)


class _TotalNoiseTarget:
    """Shared regression target: ``-z / sigma`` for the total standardized noise z, i.e.
    ``-(beta~ eta) / sigma^2`` with eta = sigma z_0 (GM-SGM, Eq. 11; see module docstring)."""

    def score_target(self, z: Tensor, sigma: Tensor) -> Tensor:
        return -z / sigma


class MixtureNoise(_TotalNoiseTarget):
    """Noise ``z = B eta``, eta ~ N(0, I), with the linear map B drawn from a finite set:
    ``components[k](eta)`` with probability ``probs[k]`` (GM-SGM, Eq. 11 for B = beta~ I
    and App. A.5 for general B).

    ``alternate=False``: B is drawn independently for every sample of every batch.
    ``alternate=True``: the whole batch of the n-th call (n = 1, 2, ...) uses component
    (n - 1) mod K -- Alg. 1's deterministic alternation "to reduce the stochasticity of
    training" (with components (beta, 1): odd n uses beta, even n uses 1). The call counter
    ``calls`` is state: a trainer resumed at step k must set ``noise.calls = k``, and any
    extra call of the loss (e.g. a validation loss) advances it.
    """

    def __init__(
        self,
        components: Sequence[Callable[[Tensor], Tensor]],
        probs: Sequence[float] | None = None,
        *,
        alternate: bool = False,
        names: Sequence[str] | None = None,
    ) -> None:
        K = len(components)
        if K == 0:
            raise ValueError("components must hold at least one linear map")
        p = (
            torch.full((K,), 1.0 / K, dtype=torch.float64)
            if probs is None
            else torch.tensor(list(probs), dtype=torch.float64)
        )
        if p.shape != (K,) or (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-9:
            raise ValueError(f"probs must be {K} non-negative numbers summing to 1, got {probs}")
        if alternate and not torch.allclose(p, torch.full_like(p, 1.0 / K)):
            raise ValueError(
                "alternate=True cycles through the components, which gives equal weights; "
                f"pass probs=None or alternate=False, got probs={probs}"
            )
        self.components, self.probs, self.alternate = list(components), p, alternate
        self.names = list(names) if names is not None else [f"B{k}" for k in range(K)]
        self.calls = 0

    def draw_components(self, n: int, generator: torch.Generator | None, device) -> Tensor:
        """Indices (n,) of the component each sample uses; advances ``calls``."""
        k = len(self.components)
        if self.alternate:
            idx = torch.full((n,), self.calls % k, dtype=torch.long, device=device)
        else:
            idx = torch.multinomial(
                self.probs.float().to(device).expand(n, k), 1, generator=generator
            )[:, 0]
        self.calls += 1
        return idx

    def sample(self, x0: Tensor, generator: torch.Generator | None, alpha=None, sigma=None):
        eta = _gaussian(x0, generator)
        idx = self.draw_components(x0.shape[0], generator, x0.device)
        z = torch.zeros_like(eta)
        for k, comp in enumerate(self.components):
            mask = per_sample(idx == k, eta)
            if mask.any():
                z = torch.where(mask, comp(eta), z)
        return z


class ScaleMixtureNoise(MixtureNoise):
    """Discrete p(beta~): z = beta~ eta with beta~ = ``scales[k]`` w.p. ``probs[k]``; the
    marginal of z is sum_k p_k N(0, scales_k^2 I) (GM-SGM, Sec. 3.2 and Eq. 11). Scales
    must be > 0 (App. A.6 tries {0.5, 2}); the paper's own family is :func:`gm_sgm_noise`."""

    def __init__(
        self, scales: Sequence[float], probs: Sequence[float] | None = None, *, alternate=False
    ) -> None:
        scales = [float(s) for s in scales]
        if not scales or any(not (math.isfinite(s) and s > 0) for s in scales):
            raise ValueError(f"scales must be finite and > 0, got {scales}")
        self.scales = scales
        comps = [functools.partial(torch.mul, other=s) for s in scales]
        super().__init__(comps, probs, alternate=alternate, names=[f"{s:g}" for s in scales])


def gm_sgm_noise(beta: float = 2.0, *, alternate: bool = True) -> ScaleMixtureNoise:
    """The paper's training noise N_mix(0, {I, beta^2 I}) (Sec. 3.2, Eqs. 9-10): with
    ``alternate=True`` (Alg. 1) the batches alternate beta~ = beta (odd calls) and beta~ = 1
    (even calls); with ``alternate=False`` every sample draws beta~ in {1, beta} with
    probability 1/2 (the "uniform sampling" of the objectives that Sec. 3.3 mentions).
    Raises ValueError for beta < 1. beta = 1 gives plain Gaussian noise (the SGM)."""
    beta = _check_beta(beta)
    return ScaleMixtureNoise((beta, 1.0), alternate=alternate)


class ContinuousScaleNoise(_TotalNoiseTarget):
    """Continuous p(beta~) (GM-SGM, Sec. 4.1 and Eq. 11): z = beta~ eta with one beta~ per
    sample, uniform on [low, high] (``law="uniform"``) or log-uniform (``"loguniform"``).
    Requires 1 <= low <= high (beta~ < 1 is outside the paper's large-jump family)."""

    def __init__(self, low: float = 1.0, high: float = 2.0, law: str = "uniform") -> None:
        low, high = _check_beta(low), _check_beta(high)
        if high < low:
            raise ValueError(f"need low <= high, got low={low}, high={high}")
        if law not in ("uniform", "loguniform"):
            raise ValueError(f"law must be 'uniform' or 'loguniform', got {law!r}")
        self.low, self.high, self.law = low, high, law

    def draw_scales(self, n: int, generator: torch.Generator | None, dtype, device) -> Tensor:
        u = torch.rand(n, generator=generator, dtype=dtype, device=device)
        if self.law == "uniform":
            return self.low + (self.high - self.low) * u
        return torch.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * u)

    def moment(self, k: int) -> float:
        """E[beta~^k], for tests: uniform (h^{k+1} - l^{k+1}) / ((k+1)(h - l)),
        log-uniform (h^k - l^k) / (k log(h/l)) (the point mass when low == high)."""
        lo, hi = self.low, self.high
        if hi == lo:
            return lo**k
        if self.law == "uniform":
            return (hi ** (k + 1) - lo ** (k + 1)) / ((k + 1) * (hi - lo))
        return (hi**k - lo**k) / (k * math.log(hi / lo))

    def sample(self, x0: Tensor, generator: torch.Generator | None, alpha=None, sigma=None):
        eta = _gaussian(x0, generator)
        b = self.draw_scales(x0.shape[0], generator, x0.dtype, x0.device)
        return per_sample(b, eta) * eta


def high_frequency_mask(height: int, width: int, fraction: float = 0.05) -> Tensor:
    """Boolean (H, W) mask over the 2-D DFT bins holding the top ``fraction`` of radial
    frequencies |f| = sqrt(f_y^2 + f_x^2) (cycles/pixel): the ceil(fraction H W) highest
    bins, plus every bin tied with the last one (so the mask is symmetric under f -> -f
    and the filter below is real). On 8x8 images 5% selects the 5 bins with |f| >= 0.625."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    fy = torch.fft.fftfreq(height, dtype=torch.float64).abs()
    fx = torch.fft.fftfreq(width, dtype=torch.float64).abs()
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    k = math.ceil(fraction * height * width)
    thresh = torch.sort(r.flatten(), descending=True).values[k - 1]
    return r >= thresh - 1e-12


def frequency_filter(x: Tensor, fraction: float = 0.05, shrink: float = 0.5) -> Tensor:
    """M x of App. A.5: multiply the top-``fraction`` high-frequency DFT bins of every
    (H, W) plane of x (..., H, W) by ``shrink``. M is real, symmetric and diagonal in the
    Fourier basis (eigenvalues 1 and ``shrink``)."""
    if x.ndim < 2:
        raise ValueError(f"x must have at least two (height, width) dims, got {tuple(x.shape)}")
    mask = high_frequency_mask(x.shape[-2], x.shape[-1], fraction).to(x.device)
    gain = torch.where(mask, shrink, 1.0).to(x.dtype)
    return torch.fft.ifft2(torch.fft.fft2(x) * gain).real.to(x.dtype)


def frequency_mixture_noise(
    gain: float = 2.0, fraction: float = 0.05, shrink: float = 0.5, *, alternate: bool = False
) -> MixtureNoise:
    """App. A.5's matrix mixture p(B = I) = p(B = gain M) = 1/2, M = :func:`frequency_filter`
    (the paper: gain 2, top 5% of frequencies shrunk by 0.5). Raises for gain < 1."""
    gain = _check_beta(gain)
    filt = functools.partial(frequency_filter, fraction=fraction, shrink=shrink)
    return MixtureNoise(
        [lambda e: e, lambda e: gain * filt(e)], alternate=alternate, names=["I", f"{gain:g}M"]
    )


def scale_mixture_cdf(x: np.ndarray, scales: Sequence[float], probs: Sequence[float]) -> np.ndarray:
    """CDF of the 1-D marginal sum_k p_k N(0, s_k^2), for KS tests of the noise models."""
    from scipy.stats import norm

    return sum(p * norm.cdf(np.asarray(x) / s) for s, p in zip(scales, probs, strict=True))


# --------------------------------------------------------------------------------------
# Sampling: the unchanged PC sampler, and Sec. 5.4's mixture increments
# --------------------------------------------------------------------------------------


def ve_pc_mixture(
    denoiser: Callable[[Tensor, Tensor], Tensor],
    schedule: VE,
    x_T: Tensor,
    steps: int,
    *,
    beta: float = 2.0,
    generator: torch.Generator | None = None,
    callback=None,
    **opts,
) -> Tensor:
    """:func:`gmdiff.samplers.ve_pc` with Gaussian-mixture increments (Sec. 5.4, second
    study): every increment z of the predictor and of the Langevin corrector is replaced by
    beta~ z, beta~ in {1, beta} drawn per sample and step with probability 1/2, i.e.
    N_mix(0, {I, beta^2 I}) increments."""
    noise = ScaleMixtureNoise((1.0, _check_beta(beta)))
    return ve_pc(
        denoiser, schedule, x_T, steps, generator=generator, callback=callback, noise=noise, **opts
    )


# --------------------------------------------------------------------------------------
# Exact optimal denoisers and the sampling statistics of Sec. 5.1 (GMS-5, GMS-10, GMS-11)
# --------------------------------------------------------------------------------------


def exact_denoiser(prior, scales: Sequence[float] = (1.0,), probs: Sequence[float] | None = None):
    """The denoiser D(x, sigma) that minimises the DSM loss when training corrupts with
    z = beta~ eta, beta~ = ``scales[k]`` w.p. ``probs[k]``, on an analytic ``prior``
    (:mod:`gmdiff.analytic`): E[x_0 | x] = sum_k p(beta_k | x) D_prior(x, beta_k sigma)
    (GM-SGM, Eq. 13 with the weights of :func:`gmdiff.analytic.bridge.noise_scale_posterior`).
    ``scales=(1,)`` is the SGM; ``(1, 2)`` GM-SGM; ``(2,)`` Sec. 5.4's "only large jumps";
    ``(0.5, 2)`` App. A.6's failed mixture. Evaluated in float64, returned in x's dtype, so it
    can be handed to any sampler."""
    from gmdiff.analytic.bridge import gm_sgm_denoiser

    scales = tuple(float(b) for b in scales)

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64)
        return gm_sgm_denoiser(prior, x.double(), s, scales, probs).to(x.dtype)

    return denoiser


@torch.no_grad()
def xi_norms(denoiser, schedule: VE, x_T: Tensor, steps: int, seed: int) -> tuple[Tensor, Tensor]:
    """(sigma_i, ||xi_theta||) along :func:`gmdiff.samplers.ve_pc` with ``steps`` iterations:
    xi_theta(x, t) = -sigma_t s_theta(x, t) = (x - D(x, sigma_t)) / sigma_t, the estimated
    standardized noise of Sec. 4.1, at every predictor step (GM-SGM, Sec. 5.1 and Fig. 4).
    Returns sigmas (steps,) and per-sample norms (steps, B); same seed, same increments."""
    sig, norms = [], []

    def cb(i, sigma, x, d):
        sig.append(sigma)
        norms.append(((x - d) / sigma).flatten(1).norm(dim=1).cpu())

    ve_pc(
        denoiser, schedule, x_T, steps, generator=torch.Generator().manual_seed(seed), callback=cb
    )
    return torch.tensor(sig), torch.stack(norms)


def r_mean_var(norms_gm: Tensor, norms_sgm: Tensor) -> tuple[Tensor, Tensor]:
    """r_mean(t) = E||xi_GM|| / E||xi_SGM|| and r_var(t) = var||xi_GM|| / var||xi_SGM|| over
    the samples at each step (GM-SGM, Sec. 5.1); inputs (steps, B)."""
    return norms_gm.mean(1) / norms_sgm.mean(1), norms_gm.var(1) / norms_sgm.var(1)


def trained_vs_optimal(
    gm_net: Callable, sgm_net: Callable, eb: Callable, map_: Callable, x0: Tensor, sigmas, seed: int
) -> pd.DataFrame:
    """Which optimum a trained GM-SGM network learned (GMS-5). At inputs x = x0 + beta~ sigma
    xi, beta~ in {1, 2} equally likely (GM-SGM's training corruption), one row per sigma:
    RMS distances (per-sample Euclidean) of the GM-SGM and SGM nets to the empirical-Bayes
    optimum ``eb`` and the Gaussian ("MAP") optimum ``map_``, the distance between the two
    optima, and the slope c = E<N_gm - N_sgm, eb - map_> / E||eb - map_||^2 with its standard
    error (ratio estimator, delta method). c = 1: the two nets differ exactly as the optima
    do; c = 0: no systematic difference. Errors the nets share (same seed and data) cancel
    in c, which is why it is the sharper of the two measures."""
    gen = torch.Generator().manual_seed(seed)
    rms = lambda a, b: float(((a - b) ** 2).flatten(1).sum(1).mean().sqrt())
    rows = []
    for sigma in sigmas:
        b = torch.where(torch.rand(x0.shape[0], generator=gen) < 0.5, 1.0, 2.0).to(x0.dtype)
        x = x0 + sigma * per_sample(b, x0) * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        s = torch.full((x.shape[0],), float(sigma), dtype=x.dtype)
        d_eb, d_map = eb(x, s).double(), map_(x, s).double()
        with torch.no_grad():
            n_gm = gm_net(x.float(), s.float()).double()
            n_sgm = sgm_net(x.float(), s.float()).double()
        a = ((n_gm - n_sgm) * (d_eb - d_map)).flatten(1).sum(1)
        bb = ((d_eb - d_map) ** 2).flatten(1).sum(1)
        c = float(a.mean() / bb.mean())
        se = float((a - c * bb).std() / math.sqrt(len(a)) / bb.mean())
        rows.append(
            {
                "sigma": float(sigma),
                "GM-SGM net vs EB": rms(n_gm, d_eb),
                "GM-SGM net vs MAP": rms(n_gm, d_map),
                "SGM net vs MAP": rms(n_sgm, d_map),
                "SGM net vs EB": rms(n_sgm, d_eb),
                "EB vs MAP": rms(d_eb, d_map),
                "slope c": c,
                "s.e. of c": se,
            }
        )
    return pd.DataFrame(rows)


def mode_spread(x: Tensor, means: Tensor, std: float) -> float:
    """RMS distance of samples to their nearest mixture mean over its exact value
    sqrt(D) std for a mixture of N(mu_k, std^2 I) with well-separated modes: 1 for exact
    samples, < 1 when the modes come out too concentrated, > 1 when too diffuse."""
    x = x.double()
    d2 = torch.cdist(x, means.to(x)).min(1).values ** 2
    return float((d2.mean() / (x.shape[1] * std**2)).sqrt())


# --------------------------------------------------------------------------------------
# Small experiments for the chapter
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSpec:
    """What to train: ``kind`` "dsm" (VE/VP DSM with ``noise``, score_sde weighting) or
    "eps" (DDPM L_simple on a DiscreteVP), ``steps`` optimiser steps at ``batch``."""

    steps: int
    batch: int
    lr: float = 2e-3
    ema_decay: float = 0.999
    warmup: int = 50
    device: str = "cpu"


def train_denoiser(
    net: nn.Module,
    data: Tensor | Callable[[int, torch.Generator], Tensor],
    spec: TrainSpec,
    loss_fn: Callable,
    seed: int,
) -> nn.Module:
    """Train ``net`` (a denoiser D(x, sigma) or eps-net) with the library's
    :class:`gmdiff.train.Trainer` on CPU for ``spec.steps`` steps; returns the EMA model in
    eval mode. The loss's noise model is whatever ``loss_fn`` closes over."""
    from gmdiff.train import TrainConfig, Trainer

    cfg = TrainConfig(
        steps=spec.steps,
        batch_size=spec.batch,
        lr=spec.lr,
        warmup_steps=spec.warmup,
        ema_decay=spec.ema_decay,
        seed=seed,
        log_every=max(1, spec.steps),
        device=spec.device,
    )
    trainer = Trainer(net, loss_fn, data, cfg)
    n = torch.get_num_threads()
    try:
        trainer.fit(resume=False)
    finally:
        torch.set_num_threads(n)
    return trainer.ema.eval()


def dsm_loss_fn(schedule: Schedule, noise) -> Callable:
    """``loss_fn(model, x0, generator)`` = :func:`gmdiff.losses.dsm_loss` with ``noise``."""
    return functools.partial(losses.dsm_loss, schedule=schedule, noise=noise)


@torch.no_grad()
def sample_batches(
    sampler: Callable[..., Tensor],
    denoiser: Callable,
    schedule,
    shape: tuple[int, ...],
    n: int,
    steps: int,
    prior_std: float,
    seed: int,
    batch: int = 1024,
    **opts,
) -> Tensor:
    """n samples of ``sampler`` with ``steps`` steps from x_T ~ N(0, prior_std^2 I), drawn
    in batches with a generator seeded by ``seed``."""
    dev = _device_of(denoiser)
    gen = torch.Generator(dev).manual_seed(seed)
    out = []
    for start in range(0, n, batch):
        b = min(batch, n - start)
        x_T = prior_std * torch.randn((b, *shape), generator=gen, device=dev)
        out.append(sampler(denoiser, schedule, x_T, steps, generator=gen, **opts).cpu())
    return torch.cat(out)


def _device_of(model) -> torch.device:
    p = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    return p.device if p is not None else torch.device("cpu")


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, on: str, digits: int = 3) -> pd.DataFrame:
    """Join our table with the paper's on column ``on``: for every column name, the
    paper's value (" (paper)") next to ours (" (ours)"), paper columns first in the
    paper's order, then columns only we have; rows either side lacks show NaN. Our numbers
    are rounded to ``digits`` decimals."""
    a = ours.set_index(on)
    a = a.round(digits) if digits is not None else a
    b = paper.set_index(on)
    joined = a.add_suffix(" (ours)").join(b.add_suffix(" (paper)"), how="outer")
    cols = []
    for name in list(b.columns) + [c for c in a.columns if c not in b.columns]:
        cols += [f"{name} (paper)"] if name in b.columns else []
        cols += [f"{name} (ours)"] if name in a.columns else []
    return joined[cols].sort_index(ascending=False)


def which_is_lower(a: float, b: float, tol: float, name_a: str, name_b: str) -> str:
    """Which of two metrics (lower is better) wins: "<name> better", or a tie when they
    differ by less than ``tol`` (the metric's noise level)."""
    if abs(a - b) < tol:
        return "tie (within noise)"
    return f"{name_a} better" if a < b else f"{name_b} better"


def seeded_net(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``build()`` with its initial weights drawn from torch's global RNG seeded by
    ``seed`` inside a fork (the caller's RNG state is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def toy_net(dim: int, sigma_data: float, width: int = 128, depth: int = 3) -> nn.Module:
    """A small noise-conditioned MLP with EDM preconditioning: a denoiser D(x, sigma) valid
    at any sigma (used with VE and VP samplers alike)."""
    from gmdiff.nets import MLP, EDMPrecond, MLPConfig

    cfg = MLPConfig(dim=dim, width=width, depth=depth, embedding="fourier")
    return EDMPrecond(MLP(cfg), sigma_data=sigma_data)


def image_net(config: str, sigma_data: float, **overrides) -> nn.Module:
    """A library network config (``"digits"``, ``"ncsnpp_cifar10_ve"``, ...) with EDM
    preconditioning."""
    from gmdiff.nets import EDMPrecond, build_net, get_config

    return EDMPrecond(build_net(get_config(config, **overrides)), sigma_data=sigma_data)


def sampler_table(
    runs: dict[str, Callable[[int, int], Tensor]],
    steps: Sequence[int],
    metric: Callable[[Tensor], float],
    seed: int,
) -> pd.DataFrame:
    """One row per step count, one column per run: ``metric(runs[name](steps, seed))``.
    Each run is ``(steps, seed) -> samples``; the same seed is used in every cell, so
    the columns differ only by model / sampler."""
    rows = []
    for s in steps:
        row = {"iterations": int(s)}
        for name, run in runs.items():
            row[name] = metric(run(int(s), seed))
        rows.append(row)
    return pd.DataFrame(rows)


def pc_run(denoiser, schedule: VE, shape: tuple[int, ...], n: int, batch: int = 1024, **opts):
    """``(steps, seed) -> samples`` of :func:`gmdiff.samplers.ve_pc` (score_sde's VE PC
    sampler, snr 0.16, one corrector step) from N(0, sigma_max^2 I)."""
    return lambda steps, seed: sample_batches(
        ve_pc, denoiser, schedule, shape, n, steps, schedule.sigma_max, seed, batch, **opts
    )


def vp_run(sampler, denoiser, schedule, shape: tuple[int, ...], n: int, batch: int = 1024, **o):
    """``(steps, seed) -> samples`` of a VP sampler (ddpm / ddim) from N(0, I)."""
    return lambda steps, seed: sample_batches(
        sampler, denoiser, schedule, shape, n, steps, 1.0, seed, batch, **o
    )


def ddgm_run(sampler, denoiser, schedule, shape: tuple[int, ...], n: int, theta0: float, **o):
    """``(steps, seed) -> samples`` of DDGM (Nachmani et al. 2021): ``sampler`` (ddpm with
    ``variance="beta"`` for their DDPM-based sampler, ddim for the DDIM-based one) with
    :class:`gmdiff.noise.GammaNoise` increments, started from that Gamma noise at the first
    grid level instead of N(0, I)."""
    from gmdiff.noise import GammaNoise
    from gmdiff.samplers.base import default_spacing, vp_grid

    noise, dev = GammaNoise(theta0), _device_of(denoiser)

    @torch.no_grad()
    def run(steps: int, seed: int) -> Tensor:
        _, alpha, sigma = vp_grid(schedule, steps, o.get("spacing") or default_spacing(schedule))
        gen = torch.Generator(dev).manual_seed(seed)
        x_T = noise.sample(torch.zeros((n, *shape), device=dev), gen, alpha[0], sigma[0])
        return sampler(denoiser, schedule, x_T, steps, generator=gen, noise=noise, **o).cpu()

    return run


@torch.no_grad()
def adaptive_row(
    denoiser,
    schedule,
    shape: tuple[int, ...],
    n: int,
    prior_std: float,
    seed: int,
    metric: Callable[[Tensor], float],
    **opts,
) -> dict[str, float]:
    """Samples of :func:`gmdiff.samplers.adaptive_sde` with their metric and mean NFE."""
    from gmdiff.samplers import adaptive_sde

    dev = _device_of(denoiser)
    gen = torch.Generator(dev).manual_seed(seed)
    x_T = prior_std * torch.randn((n, *shape), generator=gen, device=dev)
    x, nfe = adaptive_sde(denoiser, schedule, x_T, generator=gen, return_nfe=True, **opts)
    return {"NFE (mean)": float(nfe.float().mean()), "metric": metric(x.cpu())}


def metric_sw2(x: Tensor, reference: Tensor, seed: int, n_projections: int = 64) -> float:
    """Sliced 2-Wasserstein distance between ``x`` and an equal number of ``reference``
    rows (the toy tables' exact-distribution metric); non-finite samples give inf."""
    from gmdiff.metrics import sliced_wasserstein

    x = x.double()
    if not torch.isfinite(x).all():
        return float("inf")
    ref = reference[: x.shape[0]].double()
    return sliced_wasserstein(x, ref, n_projections, torch.Generator().manual_seed(seed))


def image_grid(x: Tensor, rows: int, pad: int = 1, pad_value: float = 0.5) -> np.ndarray:
    """The first rows^2 images (N, C, H, W) in [-1, 1] tiled into a rows x rows grid in
    [0, 1] for imshow, with ``pad`` pixels of ``pad_value`` between and around the images."""
    x = x[: rows * rows].clamp(-1, 1).add(1).div(2)
    n, c, h, w = x.shape
    if n < rows * rows:
        raise ValueError(f"need {rows * rows} images for a {rows}x{rows} grid, got {n}")
    x = torch.nn.functional.pad(x, (pad, 0, pad, 0), value=pad_value)
    h, w = h + pad, w + pad
    g = x.reshape(rows, rows, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, rows * w, c)
    g = torch.nn.functional.pad(g.permute(2, 0, 1), (0, pad, 0, pad), value=pad_value)
    return g.permute(1, 2, 0).numpy()
