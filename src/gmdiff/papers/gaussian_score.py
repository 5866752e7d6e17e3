"""The Gaussian score approximation paper (Wang & Vastola): experiments behind its
chapters. Equation numbers refer to that paper."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gmdiff.analytic import (
    DeltaMixture,
    Gaussian,
    GaussianMixture,
    gaussian_endpoint,
    gaussian_state,
    integrate_pf_ode,
    perturbation_gain,
    psi,
    rotation_correction,
    scaled_score,
    xi,
)
from gmdiff.analytic.checks import autograd_score, pf_ode_errors, rel_err, score_errors
from gmdiff.schedules import EDM, DiscreteVP, Schedule, VPLinear


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
    df[f"passes (< {tol:.0e})"] = (df[["score_vs_autograd", "denoiser_vs_tweedie"]] < tol).all(1)
    return df


def gs2_table(
    g: Gaussian, schedules: dict[str, Schedule], n: int, tol: float, seed: int
) -> pd.DataFrame:
    """GS-2: worst relative error of the closed-form state x_t and denoiser path D(t) against
    scipy RK45 integration of each schedule's PF-ODE, from n random starts."""
    rows = []
    for name, sch in schedules.items():
        e = pf_ode_errors(g, sch, n=n, seed=seed)
        rows.append({"process": name, "state x_t": e["state"], "denoiser D(t)": e["denoiser"]})
    df = pd.DataFrame(rows)
    df[f"passes (< {tol:.0e})"] = (df[["state x_t", "denoiser D(t)"]] < tol).all(1)
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


# ----------------------------------------------------------------------------------------
# GS-3: feature emergence on DDPM's CIFAR-10 schedule (Sec. 3.3, Fig. 3, Eq. 23)
# ----------------------------------------------------------------------------------------


def dynamics_curves(schedule: DiscreteVP, lams: list[float]) -> dict[str, Tensor]:
    """Fig. 3's curves on a discrete VP schedule, from n = T down to 0, per lam (rows):
    psi-bar (Eq. 18), xi-bar / sqrt(lam) (Eq. 20), its change per step, and the
    perturbation gain of Eq. 23."""
    n = torch.arange(schedule.T + 1)
    a, s = schedule.alpha(n), schedule.sigma(n)
    lam = torch.tensor(lams, dtype=a.dtype)[:, None]
    aT, sT = a[-1], s[-1]
    xi_norm = xi(s, sT, lam, a, aT) / lam.sqrt()
    return {
        "n": n,
        "alpha2": a**2,
        "sigma2": s**2,
        "lam": lam[:, 0],
        "psi": psi(s, sT, lam, a, aT),
        "xi_norm": xi_norm,
        "dxi_dn": torch.diff(xi_norm, dim=1),  # change from step n to n + 1 (<= 0)
        "gain": perturbation_gain(s, lam, a),
    }


def critical_periods(curves: dict[str, Tensor]) -> pd.DataFrame:
    """Per lam: the step where xi-bar/sqrt(lam) changes fastest (Fig. 3D), against the
    paper's prediction sigma_n = alpha_n sqrt(lam) (Sec. 3.3), and the signal-to-noise
    ratio lam alpha^2 / sigma^2 at the measured peak (1 if the prediction is exact)."""
    rows = []
    for i, lam in enumerate(curves["lam"].tolist()):
        n_peak = int(curves["dxi_dn"][i].abs().argmax()) + 1  # diff index k covers k..k+1
        ratio = (curves["sigma2"] / (lam * curves["alpha2"])).log().abs()
        n_pred = int(ratio[1:].argmin()) + 1
        snr = lam * curves["alpha2"][n_peak] / curves["sigma2"][n_peak]
        rows.append(
            {
                "lambda": lam,
                "predicted step": n_pred,
                "measured peak step": n_peak,
                "SNR at peak": round(float(snr), 2),
            }
        )
    return pd.DataFrame(rows)


def perturbation_gain_check(
    g: Gaussian, schedule: Schedule, t_prime: float, t_end: float, seed: int
) -> pd.DataFrame:
    """Eq. 23 against integration: from a state on a PF-ODE trajectory at t', add a unit
    perturbation along each principal axis u_k (and one off-manifold), integrate both the
    perturbed and unperturbed states with RK45 to t_end, and compare the endpoint shift
    along u_k with sqrt(lam_k / (sigma_t'^2 + lam_k alpha_t'^2))."""
    gen = torch.Generator().manual_seed(seed)
    a, s = schedule.alpha(t_prime), schedule.sigma(t_prime)
    x = a * g.sample(1, gen) + s * torch.randn(1, g.dim, dtype=g.means.dtype, generator=gen)
    U = g.basis
    off = torch.randn(g.dim, dtype=x.dtype, generator=gen)
    off = off - U @ (U.T @ off)
    starts = torch.cat([x, x + U.T, x + off / off.norm()])
    end = integrate_pf_ode(scaled_score(g, schedule), schedule, starts, t_prime, np.array([t_end]))[
        -1
    ]
    shift = end[1:] - end[:1]
    measured = torch.cat([(shift[:-1] * U.T).sum(1), shift[-1:].norm(dim=1)])
    lams = g.eigenvalues
    predicted = torch.cat([perturbation_gain(s, lams, a), torch.zeros(1, dtype=lams.dtype)])
    return pd.DataFrame(
        {
            "direction": [f"u_{k + 1}" for k in range(len(lams))] + ["off-manifold"],
            "lambda": lams.tolist() + [0.0],
            "Eq. 23 gain": predicted.numpy().round(4),
            "RK45 gain": measured.numpy().round(4),
        }
    )


# ----------------------------------------------------------------------------------------
# GS-4: rotation-like trajectories (Sec. 3.3, Eq. 22; App. D.4)
# ----------------------------------------------------------------------------------------

J_AT_EQ106 = 2 - math.sqrt(
    2
)  # |J| at alpha = 1/sqrt(1 + lam), large lam: 2(1 - sqrt(2)/2), Eq. 107


def worst_rotation_correction(lams: Tensor, n_grid: int = 200_001) -> pd.DataFrame:
    """Per lam, max over the VP path (alpha in (0, 1), sigma = sqrt(1 - alpha^2)) of |J|
    (Eq. 104) and where it occurs, next to Eq. 106's alpha = 1/sqrt(1 + lam) and Eq. 107's
    value there, 2(1 - sqrt(2)/2) sqrt(lam / (lam + 1))."""
    alpha = torch.linspace(1e-6, 1 - 1e-12, n_grid, dtype=torch.float64)
    sigma = torch.sqrt(1 - alpha**2)
    rows = []
    for lam in lams.tolist():
        J = rotation_correction(alpha, sigma, torch.tensor(lam, dtype=torch.float64)).abs()
        i = int(J.argmax())
        rows.append(
            {
                "lambda": lam,
                "max |J|": round(float(J[i]), 4),
                "alpha at max": round(float(alpha[i]), 4),
                "Eq. 106 alpha": round(1 / math.sqrt(1 + lam), 4),
                "Eq. 107 |J|": round(J_AT_EQ106 * math.sqrt(lam / (lam + 1)), 4),
            }
        )
    return pd.DataFrame(rows)


def rotation_errors(g: Gaussian, schedule: DiscreteVP, n: int, seed: int) -> dict[str, Tensor]:
    """Relative departure from the rotation formula along exact trajectories (Eq. 15/18):
    e(t) = |x_t - alpha_t x_0 - sigma_t x_T|^2 / |x_T|^2 for n starts x_T from the noised
    marginal at n = T, and the same predicted by Eq. 108, sum_k J_k^2 c_k^2 / |x_T|^2."""
    gen = torch.Generator().manual_seed(seed)
    steps = torch.arange(schedule.T + 1)
    a, s = schedule.alpha(steps), schedule.sigma(steps)
    aT, sT = a[-1], s[-1]
    x_T = aT * g.sample(n, gen) + sT * torch.randn(n, g.dim, dtype=a.dtype, generator=gen)
    x_0 = gaussian_endpoint(g, x_T, sT, aT)
    norm2 = (x_T**2).sum(1)
    c = (x_T - aT * g.mean) @ g.basis
    actual, eq108 = [], []
    for at, st in zip(a, s):
        x_t = gaussian_state(g, x_T, st, sT, at, aT)
        actual.append(((x_t - at * x_0 - st * x_T) ** 2).sum(1) / norm2)
        eq108.append((rotation_correction(at, st, g.eigenvalues) ** 2 * c**2).sum(1) / norm2)
    return {"n": steps, "actual": torch.stack(actual, 1), "eq108": torch.stack(eq108, 1)}


def rotation_bounds(rank: int, dim: int) -> dict[str, float]:
    """The bounds on the relative rotation error for a rank-r Gaussian in D dimensions:
    the main text's Eq. 22, (1 - sqrt(2)/2)^2 r/D; App. D.4.2's 4 (1 - sqrt(2)/2)^2 r/D;
    and r/D, which follows from |J| < 1."""
    base = (1 - math.sqrt(2) / 2) ** 2 * rank / dim
    return {"Eq. 22 (main text)": base, "App. D.4.2": 4 * base, "|J| < 1": rank / dim}


# ----------------------------------------------------------------------------------------
# GS-5: far field (Sec. 4.1, App. D.8)
# ----------------------------------------------------------------------------------------


def far_field_errors(x: Tensor, sigmas: list[float], n: int, seed: int) -> pd.DataFrame:
    """Relative error |s_model - s_delta| / |s_delta| (pooled over n queries from the noised
    data) of the Gaussian with the point cloud's moments and of the isotropic model,
    against the exact point-cloud (delta-mixture) score, per sigma."""
    gen = torch.Generator().manual_seed(seed)
    delta, gauss, iso = DeltaMixture(x), Gaussian.from_data(x), Gaussian.isotropic(x.mean(0))
    rows = []
    for sigma in sigmas:
        q = noisy_queries(x, sigma, n, gen)
        ref = delta.score(q, sigma)
        rows.append(
            {
                "sigma": sigma,
                "Gaussian": float((gauss.score(q, sigma) - ref).norm() / ref.norm()),
                "isotropic": float((iso.score(q, sigma) - ref).norm() / ref.norm()),
            }
        )
    return pd.DataFrame(rows)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def rotation_summary(
    g: Gaussian, schedule: DiscreteVP, ranks: list[int], n: int, seed: int
) -> pd.DataFrame:
    """GS-4 table: per rank r of the truncated Gaussian, the worst relative rotation error
    along each trajectory (mean and max over n starts), the three bounds of
    :func:`rotation_bounds`, the share of starts above each, and how far Eq. 108's
    prediction is from the actual error (it assumes alpha_T = 0)."""
    rows = []
    for r in ranks:
        gr = Gaussian(g.mean, g.basis[:, :r], g.eigenvalues[:r])
        e = rotation_errors(gr, schedule, n, seed)
        worst = e["actual"].max(1).values
        row = {
            "rank r": r,
            "mean worst e(t)": worst.mean().item(),
            "max worst e(t)": worst.max().item(),
        }
        for name, b in rotation_bounds(r, g.dim).items():
            row[f"bound {name}"] = b
            row[f"share above {name}"] = (worst > b).double().mean().item()
        row["max |e - Eq. 108|"] = (e["actual"] - e["eq108"]).abs().max().item()
        rows.append(row)
    return pd.DataFrame(rows).round(5)
