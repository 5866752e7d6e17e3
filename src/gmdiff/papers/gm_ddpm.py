"""GM-DDPM ("Denoising diffusion probabilistic models with Gaussian mixture noise"): the
experiments behind the ``gmd_*`` chapters. Equation and algorithm numbers refer to that
paper; the process, posterior and exact model are in :mod:`gmdiff.analytic.gm_ddpm`, the
network in :mod:`gmdiff.nets.gm_ddpm`, the loss in :func:`gmdiff.losses.gm_ddpm_loss` and
the samplers of Algs. 2-5 in :func:`gmdiff.samplers.gm_ddpm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from gmdiff import metrics
from gmdiff.analytic import gm_ddpm as A
from gmdiff.noise import OffsetMixtureNoise
from gmdiff.papers import numbers
from gmdiff.schedules import DiscreteVP

F64 = torch.float64

#: The repository's run configs (configs/ beside src/), wherever a chapter runs from.
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"

#: Tables 1-3 of the paper (``papers/numbers/gm_ddpm.yaml``; of Table 3 the CIFAR-10 FID at
#: lr 1e-4, the learning rate of Table 1).
PAPER_TABLE1 = numbers.table("gm_ddpm", "table1")
PAPER_TABLE2 = numbers.table("gm_ddpm", "table2")
PAPER_TABLE3_C10 = numbers.table("gm_ddpm", "table3_cifar10")


# --------------------------------------------------------------------------------------
# Forward process (GMD-1, GMD-2)
# --------------------------------------------------------------------------------------


def simulate_chain(
    x0: Tensor, schedule: DiscreteVP, noise: OffsetMixtureNoise, t: int, generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 2 step by step from x0 (B, D) up to step t: (x_{t-1}, x_t, paths i_1..i_t)."""
    x, prev, paths = x0.to(F64), x0.to(F64), []
    for s in range(1, t + 1):
        b = float(schedule.betas[s - 1])
        eps, i = noise.step(x, generator)
        prev, x = x, math.sqrt(1 - b) * x + math.sqrt(b) * eps
        paths.append(i)
    return prev, x, torch.stack(paths, 1)


def _projection_cdf(m: A.OffsetMarginal, u_hat: Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """The CDF of x_t . u_hat under the marginal m (Eq. 4 grouped): a mixture of normals."""
    loc = (m.signal.means @ u_hat).numpy()
    nu = float(m.direction.norm())
    scale = np.sqrt(m.noise_std**2 + (m.offsets.spread * nu**2).numpy())
    w = m.offsets.weights.numpy()
    return lambda y: (w * stats.norm.cdf((np.asarray(y)[:, None] - loc) / scale)).sum(1)


def marginal_check(
    x0: Tensor,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
    steps: Sequence[int],
    n: int,
    seed: int,
    x0_scale: Callable[[float], float] = math.sqrt,
) -> pd.DataFrame:
    """The chain of Eq. 2 simulated step by step (n copies of x0, D small) against the
    closed form q(x_t | x_0) of Eq. 4: per step, the z-scores of the simulated mean and
    variance of x_t . u_hat and the Kolmogorov-Smirnov p-value of that projection under the
    closed form. ``x0_scale`` = the factor on x_0 in the closed form (sqrt(ab_t); Eq. 22
    prints ab_t, a planted error to show that the check fails)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for t in steps:
        _, x_t, _ = simulate_chain(x0.expand(n, -1), schedule, noise, t, g)
        ab = float(schedule.alpha_bar[t])
        m = A.marginal(x0.to(F64) * x0_scale(ab) / math.sqrt(ab), t, schedule, noise)
        u_hat = m.direction / m.direction.norm()
        y = x_t @ u_hat
        mean, var = float(m.mean @ u_hat), float(u_hat @ m.cov @ u_hat)
        z_mean = (float(y.mean()) - mean) / math.sqrt(var / n)
        z_var = (float(y.var()) - var) / (var * math.sqrt(2 / (n - 1)))
        p_ks = stats.kstest(y.numpy(), _projection_cdf(m, u_hat)).pvalue
        rows.append({"t": t, "z_mean": z_mean, "z_var": z_var, "ks_p": p_ks})
    return pd.DataFrame(rows)


def posterior_check(
    x0: Tensor,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
    steps: Sequence[int],
    n: int,
    seed: int,
    printed_eq29: bool = False,
) -> pd.DataFrame:
    """Simulated pairs (x_{t-1}, x_t) with their paths against Eqs. 29-30: the residual
    r = x_{t-1} - mean must be N(0, var I) and uncorrelated with x_t. Per step: z-score of
    E[r], ratio Var[r] / var, the z-score of corr(r, x_t) (all coordinates pooled), and the
    largest gap between Eq. 9 with the chain's own eps and the posterior mean (Eq. 8).
    ``printed_eq29``: use Eq. 29's printed sqrt(alpha_{t-1}) x_0 (planted error)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for t in steps:
        x_prev, x_t, paths = simulate_chain(x0.expand(n, -1), schedule, noise, t, g)
        mean, var = A.posterior(x_t, x0.to(F64), t, paths, schedule, noise)
        if printed_eq29:
            b, g_prev = float(schedule.betas[t - 1]), 1 - float(schedule.alpha_bar[t - 1])
            wrong = math.sqrt(1 - float(schedule.betas[t - 2])) if t > 1 else 1.0
            right = math.sqrt(float(schedule.alpha_bar[t - 1]))
            mean = mean + b * (wrong - right) * x0.to(F64) / (b + (1 - b) * g_prev)
        r = (x_prev - mean).flatten()
        xc = (x_t - x_t.mean(0)).flatten()
        corr = float((r * xc).mean() / (r.std() * xc.std()))
        ab = float(schedule.alpha_bar[t])
        eps = (
            x_t
            - math.sqrt(ab) * x0
            - A._path_offsets(A.offset_coefficients(schedule, t), paths, noise, x_t)
        ) / math.sqrt(1 - ab)
        gap = float(
            (A.mean_from_eps(x_t, eps, t, paths[:, t - 1], schedule, noise) - mean).abs().max()
        )
        rows.append(
            {
                "t": t,
                "z_mean": float(r.mean()) / math.sqrt(var / r.numel()),
                "var_ratio": float(r.var()) / var,
                "z_corr": corr * math.sqrt(r.numel()),
                "eq9_gap": gap,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# PSNR and classifier accuracy along the forward process (GMD-3, GMD-4)
# --------------------------------------------------------------------------------------


def expected_mse(x0: Tensor, schedule: DiscreteVP, noise: OffsetMixtureNoise, t: int) -> float:
    """E||x_t - x_0||^2 / D averaged over the images x0 (N, ...), in closed form from Eq. 3:
    (sqrt(ab_t) - 1)^2 E[x_0^2] + gamma_t + E[S_t^2] |u|^2 / D (S_t the offset sum)."""
    ab = float(schedule.alpha_bar[t])
    law = A.offset_sum(A.offset_coefficients(schedule, t), noise.values, noise.probs, 0.01)
    u = noise.unit_vector(x0[:1].to(F64))
    es2 = float(law.var() + law.mean() ** 2)
    return (
        (math.sqrt(ab) - 1) ** 2 * float((x0.to(F64) ** 2).mean())
        + (1 - ab)
        + es2 * float((u**2).mean())
    )


def forward_curves(
    images: Tensor,
    labels: Tensor,
    classifier,
    schedule: DiscreteVP,
    lams: Sequence[float],
    steps: Sequence[int],
    seed: int,
    direction: str = "ones",
) -> pd.DataFrame:
    """For each lambda and step t: x_t of every image (one draw of Eq. 3), the PSNR of the
    mean MSE (``psnr_sim``) and its closed form (``psnr_exact``, :func:`expected_mse`), the
    mean per-image PSNR, and the accuracy of ``classifier`` on x_t (images in [-1, 1],
    PSNR with data range 2)."""
    rows = []
    for lam in lams:
        noise = OffsetMixtureNoise(lam, direction=direction)
        g = torch.Generator().manual_seed(seed)
        for t in steps:
            x_t, _, _ = A.sample_marginal(images, t, schedule, noise, g)
            mse = ((x_t - images) ** 2).flatten(1).mean(1)
            with torch.no_grad():
                acc = float((classifier(x_t.float()).argmax(1) == labels).float().mean())
            rows.append(
                {
                    "lam": lam,
                    "t": t,
                    "psnr_sim": 10 * math.log10(4 / float(mse.mean())),
                    "psnr_exact": 10 * math.log10(4 / expected_mse(images, schedule, noise, t)),
                    "psnr_mean": float(metrics.psnr(x_t, images).mean()),
                    "accuracy": acc,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Samplers on a model (GMD-6..9)
# --------------------------------------------------------------------------------------

#: The sampler runs of the tables: name -> (library sampler, steps (None: T), options).
SAMPLER_RUNS: dict[str, tuple[str, int | None, dict]] = {
    "Alg. 2 (argmax i_t)": ("gm_ddpm", None, {"strategy": "standard"}),
    "Alg. 3 (DDPM update)": ("gm_ddpm", None, {"strategy": "ddpm"}),
    "Alg. 4 (mu kept)": ("gm_ddpm", None, {"strategy": "keep_mu"}),
    "Alg. 5 (random i_t)": ("gm_ddpm", None, {"strategy": "random"}),
    "i_t ~ p(i_t|x_t) (ours)": ("gm_ddpm", None, {"strategy": "posterior"}),
    "DDIM, 10 steps": ("ddim", 10, {}),
    "DPM-Solver++(2M), 10 steps": ("dpm_solver_pp", 10, {}),
}


def sample_quality(
    denoiser,
    schedule: DiscreteVP,
    reference: Tensor,
    n: int,
    seeds: Sequence[int],
    runs: dict[str, tuple[str, int | None, dict]] = SAMPLER_RUNS,
) -> pd.DataFrame:
    """Every run of ``runs`` (:func:`gmdiff.runs.draw_samples`: x_T ~ N(0, I), one generator
    seeded by 1000 + seed), once per seed: the sliced 2-Wasserstein distance
    (:func:`gmdiff.metrics.sliced_wasserstein`, 128 projections) to ``reference`` samples
    of the data. One row per (run, seed)."""
    from gmdiff.runs import draw_samples
    from gmdiff.samplers import SAMPLERS

    rows = []
    for name, (sampler, steps, opts) in runs.items():
        for s in seeds:
            x = draw_samples(
                denoiser,
                schedule,
                SAMPLERS[sampler],
                steps or schedule.T,
                tuple(reference.shape[1:]),
                n,
                seed=1000 + s,
                **opts,
            )
            sw = metrics.sliced_wasserstein(
                x.double(), reference.double(), 128, torch.Generator().manual_seed(s)
            )
            rows.append({"sampler": name, "seed": s, "sw2": sw})
    return pd.DataFrame(rows)


def identifiability(
    exact: A.ExactGMDDPM,
    data,
    schedule: DiscreteVP,
    steps: Sequence[int],
    n: int,
    seed: int,
    net=None,
) -> pd.DataFrame:
    """How well i_t can be read off x_t: per step, on fresh draws of Eq. 3, the accuracy of
    the exact posterior's argmax (the Bayes accuracy), the prior's (max omega) and, with
    ``net`` (a :class:`gmdiff.nets.GMDDPMNet`), the trained classifier's accuracy, the mean
    KL(exact || trained) over x_t, and the eps MSE of the network and of the exact
    E[eps | x_t] (the least any network can reach)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    noise = exact.noise
    for t in steps:
        x0 = data.sample(n, generator=g)
        x_t, eps, paths = A.sample_marginal(x0, t, schedule, noise, g)
        i_t = paths[:, t - 1]
        c = torch.full((n,), t - 1.0, dtype=F64)
        log_p = exact.logits(x_t, c)
        row = {
            "t": t,
            "prior_acc": float(noise.probs.max()),
            "bayes_acc": float((log_p.argmax(1) == i_t).double().mean()),
            "mse_exact": float(((exact(x_t, c) - eps) ** 2).mean()),
        }
        if net is not None:
            with torch.no_grad():
                log_q = torch.log_softmax(net.logits(x_t.float(), c.float()).double(), 1)
                e_net = net(x_t.float(), c.float()).double()
            row |= {
                "net_acc": float((log_q.argmax(1) == i_t).double().mean()),
                "kl": float((log_p.exp() * (log_p - log_q)).sum(1).mean()),
                "mse_net": float(((e_net - eps) ** 2).mean()),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def toy_config(lam: float, steps: int, seed: int):
    """configs/gm_ddpm_toy.yaml (the chapters' GM-DDPM on the ring) with offset scale
    ``lam``, ``steps`` training steps and training seed ``seed``: a
    :class:`gmdiff.config.RunConfig` for :func:`gmdiff.runs.load_or_train`."""
    from gmdiff.config import load_config

    sets = [f"model.overrides.lam={lam}", f"train.steps={steps}", f"train.seed={seed}"]
    return load_config(CONFIG_DIR / "gm_ddpm_toy.yaml", sets)
