"""Samplers with one signature,
``sample(denoiser, schedule, x_T, steps, *, generator=None, callback=None, **options) -> x_0``,
where ``denoiser(x, sigma)`` is E[x_0 | x] in unscaled (EDM) units and
``callback(i, t, x_t, model_output)`` sees every step (see :mod:`gmdiff.samplers.base`).

* ``euler``, ``heun`` (EDM): PF-ODE, Karras et al. 2022, Algorithm 1;
* ``edm_stochastic`` (EDM): Heun with churn (S_churn, S_tmin, S_tmax, S_noise), Karras et
  al. 2022, Algorithm 2;
* ``ddpm`` (DiscreteVP or a continuous Schedule): ancestral, Ho et al. 2020, Algorithm 2;
* ``ddim`` (same): DDIM with eta, Song et al. 2021, Eq. 12;
* ``dpm_solver_pp`` (same): DPM-Solver++ multistep, orders 1-3, Lu et al. 2022;
* ``gm_ddpm`` (DiscreteVP, all T steps): GM-DDPM's Algs. 2-5 (option ``strategy``);
* ``ve_pc`` (VE): predictor-corrector, Song et al. 2021 (score SDE), Algorithm 2.
"""

from gmdiff.samplers.adaptive import adaptive_sde
from gmdiff.samplers.ddpm import ddim, ddpm
from gmdiff.samplers.dpm_solver import dpm_solver_pp
from gmdiff.samplers.gm_ddpm import gm_ddpm
from gmdiff.samplers.ode import euler, heun
from gmdiff.samplers.pc import ve_pc
from gmdiff.samplers.stochastic import edm_stochastic
from gmdiff.samplers.teleport import heun_nfe, teleport_heun

SAMPLERS = {
    "euler": euler,
    "heun": heun,
    "edm_stochastic": edm_stochastic,
    "ddpm": ddpm,
    "ddim": ddim,
    "dpm_solver_pp": dpm_solver_pp,
    "gm_ddpm": gm_ddpm,
    "ve_pc": ve_pc,
    "teleport_heun": teleport_heun,
}

__all__ = [
    "SAMPLERS",
    "adaptive_sde",
    "ddim",
    "ddpm",
    "dpm_solver_pp",
    "edm_stochastic",
    "euler",
    "gm_ddpm",
    "heun",
    "heun_nfe",
    "teleport_heun",
    "ve_pc",
]
