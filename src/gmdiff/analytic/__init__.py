"""Exact scores, denoisers and PF-ODE solutions of tractable distributions."""

from gmdiff.analytic.anomalous import sample_isotropic_sas, sample_stable, three_paths
from gmdiff.analytic.bridge import (
    gm_bridge_posterior,
    gm_sgm_denoiser,
    noise_scale_posterior,
    ve_bridge_posterior,
)
from gmdiff.analytic.ddpm_posterior import (
    ForwardMarginal,
    GlobalError,
    MCEstimate,
    ReversePosterior,
    best_gaussian_kernel,
    forward_marginal,
    global_error,
    local_error,
    local_error_bound,
    posterior_kl,
    prior_error,
    reverse_posterior,
)
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
    "ForwardMarginal",
    "Gaussian",
    "GaussianMixture",
    "GlobalError",
    "MCEstimate",
    "ReversePosterior",
    "best_gaussian_kernel",
    "forward_marginal",
    "global_error",
    "local_error",
    "local_error_bound",
    "posterior_kl",
    "prior_error",
    "reverse_posterior",
    "gaussian_denoiser_path",
    "gaussian_endpoint",
    "gaussian_state",
    "gm_bridge_posterior",
    "gm_sgm_denoiser",
    "integrate_pf_ode",
    "noise_scale_posterior",
    "perturbation_gain",
    "psi",
    "rotation_correction",
    "sample_isotropic_sas",
    "sample_stable",
    "scaled_score",
    "three_paths",
    "ve_bridge_posterior",
    "xi",
]
