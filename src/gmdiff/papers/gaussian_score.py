"""The Gaussian score approximation paper (Wang & Vastola): experiments behind its
chapters. Equation numbers refer to that paper."""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor

from gmdiff.analytic import DeltaMixture, Gaussian, GaussianMixture
from gmdiff.analytic.checks import autograd_score, pf_ode_errors, rel_err, score_errors
from gmdiff.schedules import EDM, Schedule, VPLinear


def reference_models(x: Tensor, labels: Tensor, rank: int = 8) -> dict[str, object]:
    """The idealised score models of Sec. 2.2 / App. A.2 fitted to the rows of x:
    isotropic (Eq. 29), Gaussian (Eq. 5), rank-``rank`` Gaussian, per-class GMM (Eq. 7),
    rank-``rank`` per-class GMM, and the delta mixture of the data (Eq. 10)."""
    return {
        "isotropic (Eq. 29)": Gaussian.isotropic(x.mean(0)),
        "Gaussian (Eq. 5)": Gaussian.from_data(x),
        f"Gaussian rank {rank} (Eq. 12)": Gaussian.from_data(x, rank=rank),
        "GMM per class (Eq. 7)": GaussianMixture.fit(x, labels),
        f"GMM per class rank {rank}": GaussianMixture.fit(x, labels, rank=rank),
        "delta mixture (Eq. 10)": DeltaMixture(x),
    }


def noisy_queries(x: Tensor, sigma: float, n: int, generator: torch.Generator) -> Tensor:
    """n points drawn from the noised data, y + sigma * eps, where the scores are queried."""
    idx = torch.randint(0, x.shape[0], (n,), generator=generator)
    return x[idx] + sigma * torch.randn(n, x.shape[1], dtype=x.dtype, generator=generator)


def gs1_table(
    models: dict[str, object], x: Tensor, sigmas: list[float], n: int, tol: float, seed: int
) -> pd.DataFrame:
    """GS-1: for each model and sigma, the relative error of the closed-form score against
    autograd of log p, and of the closed-form denoiser against x + sigma^2 * that score."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in sigmas:
        q = noisy_queries(x, sigma, n, gen)
        for name, m in models.items():
            e = score_errors(m, q, sigma)
            rows.append({"model": name, "sigma": sigma, **e})
    df = pd.DataFrame(rows)
    df["passes (< %.0e)" % tol] = (df[["score_vs_autograd", "denoiser_vs_tweedie"]] < tol).all(1)
    return df


def gs2_table(g: Gaussian, schedules: dict[str, Schedule], n: int, tol: float, seed: int) -> pd.DataFrame:
    """GS-2: worst relative error of the closed-form state x_t and denoiser path D(t) against
    scipy RK45 integration of each schedule's PF-ODE, from n random starts."""
    rows = []
    for name, sch in schedules.items():
        e = pf_ode_errors(g, sch, n=n, seed=seed)
        rows.append({"process": name, "state x_t": e["state"], "denoiser D(t)": e["denoiser"]})
    df = pd.DataFrame(rows)
    df["passes (< %.0e)" % tol] = (df[["state x_t", "denoiser D(t)"]] < tol).all(1)
    return df


def eq11_as_printed_error(points: Tensor, q: Tensor, sigma: float) -> float:
    """Erratum check: Eq. 11 prints the weights as softmax(exp(-|x - y_i|^2 / 2 sigma^2)),
    an extra exp. Relative error of the denoiser built with those weights against
    Tweedie's formula applied to autograd of the delta-mixture log density."""
    d2 = torch.cdist(q, points) ** 2
    w = torch.softmax(torch.exp(-d2 / (2 * sigma**2)), dim=1)
    ref = q + sigma**2 * autograd_score(DeltaMixture(points), q, sigma)
    return rel_err(w @ points, ref)


DEFAULT_SCHEDULES: dict[str, Schedule] = {
    "EDM, sigma(t) = t (Eqs. 15-16)": EDM(),
    "VP linear beta, score_sde (Eqs. 18-20)": VPLinear(),
}
