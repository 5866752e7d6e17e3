"""GM-SGM ("Approximated anomalous diffusion: Gaussian mixture score-based generative
models"): its published tables, its exact optimal denoisers and the small experiments
behind the GM-SGM chapters; its noise models live with the others in :mod:`gmdiff.noise`.
Equation numbers refer to that paper.

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
terms the denoiser target stays x_0 and only the corruption changes, so every GM-SGM noise
model (:mod:`gmdiff.noise`: ``gm_sgm_noise``, ``ScaleMixtureNoise``, ``ContinuousScaleNoise``,
``frequency_mixture_noise``) returns the *total* standardized noise ``z = beta~ eta`` from ``sample`` and the
Gaussian target ``-z / sigma`` from ``score_target``; :func:`gmdiff.losses.dsm_loss` then
computes ``sigma^2 ||s + z / sigma||^2 = ||D - x_0||^2 / sigma^2`` exactly as Eq. (11) with
score_sde's weighting lambda(sigma) = sigma^2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from gmdiff import config, runs, stats
from gmdiff.config import RunConfig
from gmdiff.noise import coin_scales
from gmdiff.papers import numbers
from gmdiff.results import commit, load_results, save_results  # noqa: F401 (the chapter's names)
from gmdiff.samplers import ve_pc
from gmdiff.schedules import VE, per_sample

# --------------------------------------------------------------------------------------
# The paper's numbers (FID, Inception features; lower is better)
# --------------------------------------------------------------------------------------

#: The paper's printed FID tables (``papers/numbers/gm_sgm.yaml``): Tables 1-5 (CIFAR-10,
#: CelebA-64) and the numbers quoted in Sec. 5.4 and App. A.5 (``"text"``).
PAPER_TABLES: dict[str, pd.DataFrame] = {
    name: numbers.table("gm_sgm", name)
    for name in ("table1", "table2", "table3", "table4", "table5", "text")
}
TABLE1, TABLE2, TABLE3, TABLE4, TABLE5 = (PAPER_TABLES[f"table{i}"] for i in range(1, 6))
TEXT_NUMBERS = PAPER_TABLES["text"]

# --------------------------------------------------------------------------------------
# Sampling: the unchanged PC sampler, and Sec. 5.4's mixture increments
# --------------------------------------------------------------------------------------


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
    gm_net: Callable,
    sgm_net: Callable,
    eb: Callable,
    map_: Callable,
    x0: Tensor,
    sigmas,
    seed: int,
    beta: float = 2.0,
) -> pd.DataFrame:
    """Which optimum a trained GM-SGM network learned (GMS-5). At inputs x = x0 + beta~ sigma
    xi, beta~ in {1, beta} equally likely (GM-SGM's training corruption), one row per sigma:
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
        b = coin_scales(x0.shape[0], (1.0, beta), gen, torch.float32).to(x0.dtype)
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


#: The ring model of the GM-SGM chapters (MLP 3 x 128 with EDM preconditioning, so one
#: denoiser serves the VE and VP samplers alike, on the 2-D ring; VE sigma_max 4; Alg. 1's
#: beta = 2 mixture noise): the one home of its hyper-parameters.
RING_FILE = "configs/gm_sgm_ring.yaml"
#: Its data, the 2-D ring of 8 Gaussians (as read from the file).
RING = config.plain(config.load_config(config.run_file(RING_FILE)).data)


def ring_config(
    noise: dict, *, schedule: dict | None = None, seed: int = 0, sets: Sequence[str] = ()
) -> RunConfig:
    """:data:`RING_FILE` trained with the training ``noise`` (a :data:`gmdiff.noise.NOISES`
    entry, e.g. ``{"name": "gm_sgm", "beta": 1.0}`` for the plain SGM), on ``schedule`` in
    place of the file's VE where given, from ``seed``, with a study's ``sets``
    (``key=value``, e.g. the full profile's longer training) applied."""
    overrides = [f"loss.options.noise={json.dumps(noise)}", f"train.seed={seed}", *sets]
    if schedule is not None:
        overrides.append(f"schedule={json.dumps(schedule)}")
    return config.load_config(config.run_file(RING_FILE), overrides)


def dsm_config(
    data: dict,
    model: dict,
    schedule: dict,
    noise: dict,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    ema_decay: float = 0.999,
    ema_rampup: float = 0.0,
    warmup: int = 50,
    device: str = "cpu",
) -> RunConfig:
    """The run config of a model the GM-SGM chapters train: :func:`gmdiff.losses.dsm_loss`
    (score_sde's weighting) with the training ``noise`` (a :data:`gmdiff.noise.NOISES`
    entry, e.g. ``{"name": "gm_sgm", "beta": 2.0}``) on ``schedule``; the same config
    ``gmdiff train`` takes. A checkpoint every tenth of the run."""
    return config.from_dict(
        {
            "data": data,
            "model": model,
            "loss": {"name": "dsm", "options": {"noise": noise}},
            "schedule": schedule,
            "train": {
                "steps": steps,
                "batch_size": batch,
                "lr": lr,
                "warmup_steps": warmup,
                "ema_decay": ema_decay,
                "ema_rampup": ema_rampup,
                "seed": seed,
                "log_every": max(1, steps // 10),
                "ckpt_every": max(1, steps // 10),
                "device": device,
            },
        }
    )


def paired(ours: pd.DataFrame, paper: pd.DataFrame, on: str, digits: int | None = 3) -> pd.DataFrame:
    """Our table beside the paper's, transposed: one row per column (model) that both
    tables have, and for every value of ``on`` (e.g. the number of iterations) the paper's
    number ("<value> (paper)") next to ours ("<value> (ours)"), the paper's values of ``on``
    first in its order. A value only one side has gives that side's column alone, so no cell
    is empty. Our numbers are rounded to ``digits`` decimals."""
    a = ours.set_index(on)
    a = (a.round(digits) if digits is not None else a).T
    b = paper.set_index(on).T
    models = [m for m in b.index if m in a.index]
    cols = {}
    for v in list(b.columns) + [v for v in a.columns if v not in b.columns]:
        if v in b.columns:
            cols[f"{v:g} (paper)"] = b.loc[models, v]
        if v in a.columns:
            cols[f"{v:g} (ours)"] = a.loc[models, v]
    out = pd.DataFrame(cols)
    out.columns.name = on
    return out


def which_is_lower(a: float, b: float, tol: float, name_a: str, name_b: str) -> str:
    """Which of two metrics (lower is better) wins: "<name> better", or a tie when they
    differ by less than ``tol`` (the metric's noise level)."""
    if abs(a - b) < tol:
        return "tie (within noise)"
    return f"{name_a} better" if a < b else f"{name_b} better"


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


def sampler_run(sampler, denoiser, schedule, shape: tuple[int, ...], n: int, **opts):
    """``(steps, seed) -> samples``: n samples of ``sampler`` from the schedule's prior
    (:func:`gmdiff.runs.draw_samples`), e.g. score_sde's VE PC sampler
    (:func:`gmdiff.samplers.ve_pc`, snr 0.16, one corrector step) or DDPM / DDIM."""
    return lambda steps, seed: runs.draw_samples(
        denoiser, schedule, sampler, steps, shape, n, seed=seed, **opts
    )


def ddgm_run(sampler, denoiser, schedule, shape: tuple[int, ...], n: int, theta0: float, **o):
    """``(steps, seed) -> samples`` of DDGM (Nachmani et al. 2021): ``sampler`` (ddpm with
    ``variance="beta"`` for their DDPM-based sampler, ddim for the DDIM-based one) with
    :class:`gmdiff.noise.GammaNoise` increments, started from that Gamma noise at the first
    grid level instead of N(0, I)."""
    from gmdiff.noise import GammaNoise
    from gmdiff.samplers.base import default_spacing, vp_grid

    noise, dev = GammaNoise(theta0), runs.device_of(denoiser)

    @torch.no_grad()
    def run(steps: int, seed: int) -> Tensor:
        _, alpha, sigma = vp_grid(schedule, steps, o.get("spacing") or default_spacing(schedule))
        gen = torch.Generator(dev).manual_seed(seed)
        x_T = noise.sample(torch.zeros((n, *shape), device=dev), gen, alpha[0], sigma[0])
        return sampler(denoiser, schedule, x_T, steps, generator=gen, noise=noise, **o).cpu()

    return run


@torch.no_grad()
def adaptive_row(
    denoiser, schedule, shape: tuple[int, ...], n: int, seed: int, metric, **opts
) -> dict[str, float]:
    """Samples of :func:`gmdiff.samplers.adaptive_sde` from the schedule's prior, with
    their metric and mean NFE."""
    from gmdiff.samplers import adaptive_sde

    dev = runs.device_of(denoiser)
    gen = torch.Generator(dev).manual_seed(seed)
    x_T = schedule.prior_sample((n, *shape), gen, dev)
    x, nfe = adaptive_sde(denoiser, schedule, x_T, generator=gen, return_nfe=True, **opts)
    return {"NFE (mean)": float(nfe.float().mean()), "metric": metric(x.cpu())}


#: Where the gm_sgm_tables chapter's long-profile run keeps its digits results
#: (``results/long/`` of the repository), which the ci chapter shows.
LONG_RESULTS = Path(__file__).resolve().parents[3] / "results" / "long" / "gm_sgm_tables.json"


def seed_summary(
    per_seed: pd.DataFrame, metric: str, baseline: str = "SGM"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From one metric value per (model, seed, iterations) (columns ``model``, ``seed``,
    ``iterations``, ``FD``; lower is better, two seeds or more): the mean and 95 % interval
    over seeds of each model at each iteration count, and each other model against
    ``baseline`` as paired per-seed differences with their interval and direction
    (:func:`gmdiff.stats.paired`), printed at their noise level."""
    fd = per_seed.pivot_table(index=["model", "iterations"], columns="seed", values="FD")
    mean_ci = fd.apply(stats.fmt_mean_ci, axis=1).unstack("iterations")
    mean_ci.columns = [f"{i} iterations" for i in mean_ci.columns]
    column, rows = f"{metric} difference [95 % interval]", []
    for other in dict.fromkeys(per_seed["model"]):
        for i in sorted(set(per_seed["iterations"])):
            if other != baseline:
                p = stats.paired(fd.loc[(other, i)], fd.loc[(baseline, i)])
                rows.append({f"model - {baseline}": other, "iterations": i,
                             column: stats.fmt_interval(p["difference"], p["low"], p["high"]),
                             "direction": p["direction"]})  # fmt: skip
    return mean_ci, pd.DataFrame(rows).set_index([f"model - {baseline}", "iterations"])

