"""Closed-form solution of the probability-flow ODE when the data are Gaussian, and a
numerical reference to check it against.

Notation of the Gaussian score paper (Sec. 3.2): data N(mu, U diag(lam) U^T); the state
is x_t = alpha_t x_0 + sigma_t eps. With alpha = 1 (EDM form) the solution is Eqs. 15-17;
with a VP scaling alpha_t it is Eqs. 18-21. One implementation covers both: pass
``alpha_t = alpha_T = 1`` for the EDM form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from gmdiff.analytic.gaussian import Gaussian
from gmdiff.schedules import Schedule

Num = Tensor | float


def psi(sigma_t: Num, sigma_T: Num, lam: Tensor, alpha_t: Num = 1.0, alpha_T: Num = 1.0) -> Tensor:
    """psi-bar(t, lam) = sqrt((sigma_t^2 + lam alpha_t^2) / (sigma_T^2 + lam alpha_T^2)):
    the growth of the state along a principal axis of variance lam (Eqs. 15, 18)."""
    return torch.sqrt((sigma_t**2 + lam * alpha_t**2) / (sigma_T**2 + lam * alpha_T**2))


def xi(sigma_t: Num, sigma_T: Num, lam: Tensor, alpha_t: Num = 1.0, alpha_T: Num = 1.0) -> Tensor:
    """xi-bar(t, lam) = alpha_t lam / sqrt((alpha_t^2 lam + sigma_t^2)(alpha_T^2 lam + sigma_T^2)):
    the growth of the denoiser output along that axis (Eqs. 16, 20)."""
    return (
        alpha_t
        * lam
        / torch.sqrt((alpha_t**2 * lam + sigma_t**2) * (alpha_T**2 * lam + sigma_T**2))
    )


def rotation_correction(alpha_t: Num, sigma_t: Num, lam: Tensor) -> Tensor:
    """J(alpha_t; lam) = sqrt(sigma_t^2 + lam alpha_t^2) - alpha_t sqrt(lam) - sigma_t, the
    per-axis coefficient of the departure from the rotation x_t = alpha_t x_0 + sigma_t x_T
    (App. D.4, Eq. 104; exact for alpha_T = 0)."""
    return torch.sqrt(sigma_t**2 + lam * alpha_t**2) - alpha_t * torch.sqrt(lam) - sigma_t


def _split(g: Gaussian, x_T: Tensor, alpha_T: Num) -> tuple[Tensor, Tensor]:
    """c_k(T) = u_k^T (x_T - alpha_T mu) and the off-manifold part (I - U U^T)(x_T - alpha_T mu)
    (Eqs. 15, 19; Eq. 18-19 print U^T U, which is the r x r identity: U U^T is meant)."""
    z = x_T - alpha_T * g.mean
    c = z @ g.basis
    return c, z - c @ g.basis.T


def gaussian_state(
    g: Gaussian, x_T: Tensor, sigma_t: Num, sigma_T: Num, alpha_t: Num = 1.0, alpha_T: Num = 1.0
) -> Tensor:
    """x_t on the PF-ODE trajectory that starts at x_T (Eq. 15; Eq. 18 with scaling):
    x_t = alpha_t mu + (sigma_t/sigma_T) x_T_perp + sum_k psi(t, lam_k) c_k(T) u_k."""
    c, perp = _split(g, x_T, alpha_T)
    on = (psi(sigma_t, sigma_T, g.eigenvalues, alpha_t, alpha_T) * c) @ g.basis.T
    return alpha_t * g.mean + (sigma_t / sigma_T) * perp + on


def gaussian_denoiser_path(
    g: Gaussian, x_T: Tensor, sigma_t: Num, sigma_T: Num, alpha_t: Num = 1.0, alpha_T: Num = 1.0
) -> Tensor:
    """D(t) = D(x_t, t) along the trajectory from x_T (Eq. 16; Eq. 20 with scaling):
    D(t) = mu + sum_k xi(t, lam_k) c_k(T) u_k."""
    c, _ = _split(g, x_T, alpha_T)
    return g.mean + (xi(sigma_t, sigma_T, g.eigenvalues, alpha_t, alpha_T) * c) @ g.basis.T


def perturbation_gain(sigma_t: Num, lam: Tensor, alpha_t: Num = 1.0) -> Tensor:
    """Gain sqrt(lam / (sigma_t^2 + lam alpha_t^2)) by which an on-manifold perturbation of
    x_t along an axis of variance lam moves the endpoint x_0 (Eq. 23); it is
    psi(0, lam) / psi(t, lam), written through :func:`psi`."""
    return psi(0.0, sigma_t, lam, 1.0, alpha_t)


def gaussian_endpoint(g: Gaussian, x_T: Tensor, sigma_T: Num, alpha_T: Num = 1.0) -> Tensor:
    """x_0 reached from x_T (Eq. 17; Eq. 21 with scaling): the state at sigma = 0, alpha = 1,
    x_0 = mu + sum_k sqrt(lam_k / (sigma_T^2 + lam_k alpha_T^2)) u_k u_k^T (x_T - alpha_T mu)."""
    return gaussian_state(g, x_T, 0.0, sigma_T, 1.0, alpha_T)


def integrate_pf_ode(
    score: Callable[[Tensor, Tensor], Tensor],
    schedule: Schedule,
    x_T: Tensor,
    t_T: float,
    t_eval: np.ndarray,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> Tensor:
    """Integrate the PF-ODE of ``schedule`` backwards from (t_T, x_T) with scipy's RK45
    and return x at the times ``t_eval`` (decreasing), shape (len(t_eval), B, D).

    ``score(x, t)`` is the score of the noised marginal p_t; see :func:`scaled_score` for a
    model written in unscaled (EDM) units. Independent numerical reference for the
    closed forms above.
    """
    shape = x_T.shape

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(y).reshape(shape)
        tt = torch.tensor(t, dtype=torch.float64)
        return schedule.pf_ode_drift(x, tt, score(x, tt)).reshape(-1).numpy()

    sol = solve_ivp(
        rhs,
        (t_T, float(t_eval[-1])),
        x_T.detach().double().reshape(-1).numpy(),
        method="RK45",
        t_eval=t_eval,
        rtol=rtol,
        atol=atol,
    )
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return torch.from_numpy(sol.y.T.copy()).reshape(len(t_eval), *shape)


def scaled_score(model, schedule: Schedule) -> Callable[[Tensor, Tensor], Tensor]:
    """Score of p_t for x_t = alpha_t x_0 + sigma_t eps, from a model of x_0 noised without
    scaling: grad log p_t(x) = model.score(x / alpha, sigma / alpha) / alpha
    (Gaussian score paper, Sec. 3.2, substitution x -> x/alpha, sigma -> sigma/alpha)."""

    def f(x: Tensor, t: Tensor) -> Tensor:
        a = schedule.alpha(t)
        return model.score(x / a, schedule.sigma(t) / a) / a

    return f
