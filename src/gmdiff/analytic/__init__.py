"""Exact scores, denoisers and PF-ODE solutions of tractable distributions."""

from gmdiff.analytic.gaussian import DeltaMixture, Gaussian, GaussianMixture
from gmdiff.analytic.pf_ode import (
    gaussian_denoiser_path,
    gaussian_endpoint,
    gaussian_state,
    integrate_pf_ode,
    perturbation_gain,
    psi,
    rotation_correction,
    scaled_score,
    xi,
)

__all__ = [
    "DeltaMixture",
    "Gaussian",
    "GaussianMixture",
    "gaussian_denoiser_path",
    "gaussian_endpoint",
    "gaussian_state",
    "integrate_pf_ode",
    "perturbation_gain",
    "psi",
    "rotation_correction",
    "scaled_score",
    "xi",
]
