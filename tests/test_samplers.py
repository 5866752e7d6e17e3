"""Samplers checked against exact Gaussian solutions, Monte-Carlo moments and diffusers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmdiff.analytic import Gaussian, gaussian_denoiser_path
from gmdiff.samplers import (
    SAMPLERS,
    ddim,
    ddpm,
    dpm_solver_pp,
    edm_stochastic,
    euler,
    heun,
    ve_pc,
)
from gmdiff.schedules import EDM, VE, DiscreteVP, Schedule, denoiser_to_eps, discrete_timesteps

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def g() -> Gaussian:
    """A rank-3 Gaussian in D = 8 with a non-zero mean."""
    gen = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(8, 3, generator=gen, dtype=F64))
    return Gaussian(
        torch.randn(8, generator=gen, dtype=F64), U, torch.tensor([4.0, 1.0, 0.25], dtype=F64)
    )


class LogSNR(Schedule):
    """VP process with lambda = log(alpha/sigma) = -t: a uniform time grid is uniform in
    lambda, the grid on which DPM-Solver's order analysis holds (Lu et al. 2022)."""

    t_min, t_max = -5.0, 5.0

    def alpha(self, t):
        return torch.sigmoid(-2 * torch.as_tensor(t, dtype=F64)).sqrt()

    def sigma(self, t):
        return torch.sigmoid(2 * torch.as_tensor(t, dtype=F64)).sqrt()


def slope(steps, errs) -> float:
    """Convergence order: minus the log-log slope of error against steps."""
    return -np.polyfit(np.log(steps), np.log(errs), 1)[0]


# --------------------------------------------------------------------------------------
# EDM Euler / Heun
# --------------------------------------------------------------------------------------


def test_edm_sigma_steps_reproduce_eq5():
    """Karras et al. 2022, Eq. 5 with sigma_min=0.002, sigma_max=80, rho=7, N=18."""
    i = np.arange(18)
    expected = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    s = EDM().sigma_steps(18)
    assert s.shape == (19,) and s[-1] == 0
    np.testing.assert_allclose(s[:-1].numpy(), expected, rtol=1e-13)
    assert abs(s[0].item() - 80.0) < 1e-12 and abs(s[17].item() - 0.002) < 1e-12
    assert torch.all(s[1:] < s[:-1])


def test_heun_uses_35_evaluations_and_calls_back_every_step(g):
    calls, seen = [], []

    def counted(x, sigma):
        calls.append(sigma[0].item())
        return g.denoiser(x, sigma)

    x_T = 80 * torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=F64)
    heun(counted, EDM(), x_T, callback=lambda i, t, x, d: seen.append((i, t)))
    assert len(calls) == 35
    assert [i for i, _ in seen] == list(range(18))
    np.testing.assert_allclose([t for _, t in seen], EDM().sigma_steps(18)[:-1].numpy())


def test_euler_and_heun_converge_at_orders_1_and_2(g):
    """Both end with D(x, sigma_min) (the Euler step to sigma = 0), so the exact reference is
    the denoiser on the exact trajectory, Gaussian score paper Eq. 16."""
    x_T = 80 * torch.randn(16, 8, generator=torch.Generator().manual_seed(2), dtype=F64)
    ref = gaussian_denoiser_path(g, x_T, 0.002, 80.0)
    steps = [8, 16, 32, 64]
    orders = {}
    for f in (euler, heun):
        errs = [(f(g.denoiser, EDM(), x_T, n) - ref).abs().max().item() for n in steps]
        orders[f.__name__] = slope(steps, errs)
    # measured: euler 0.99, heun 2.22
    assert 0.8 <= orders["euler"] <= 1.3, orders
    assert 1.7 <= orders["heun"] <= 2.4, orders


# --------------------------------------------------------------------------------------
# DDIM / DPM-Solver++ (deterministic)
# --------------------------------------------------------------------------------------


def test_ddim_is_dpm_solver_order_1(g):
    x_T = torch.randn(8, 8, generator=torch.Generator().manual_seed(3), dtype=F64)
    vp = DiscreteVP.linear()
    a = ddim(g.denoiser, vp, x_T, 20)
    b = dpm_solver_pp(g.denoiser, vp, x_T, 20, order=1)
    assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_dpm_solver_pp_converges_at_orders_1_2_3(g):
    """Against the exact x_0-estimate at t_min on a lambda-uniform grid (Eq. 16/20 of the
    Gaussian score paper with VP scaling)."""
    sch = LogSNR()
    x_T = torch.randn(16, 8, generator=torch.Generator().manual_seed(4), dtype=F64)
    ref = gaussian_denoiser_path(
        g,
        x_T,
        sch.sigma(sch.t_min),
        sch.sigma(sch.t_max),
        sch.alpha(sch.t_min),
        sch.alpha(sch.t_max),
    )
    steps = [16, 32, 64, 128]
    orders = {}
    for k in (1, 2, 3):
        errs = [
            (dpm_solver_pp(g.denoiser, sch, x_T, n, order=k) - ref).abs().max().item()
            for n in steps
        ]
        orders[k] = slope(steps, errs)
    # measured: 0.99, 1.97, 4.19 (3M super-converges here; its 1st-order warm-up step leaves an
    # O(h^2) term that only shows below ~1e-7 error, beyond 256 steps)
    assert 0.85 <= orders[1] <= 1.2, orders
    assert 1.7 <= orders[2] <= 2.4, orders
    assert orders[3] >= 2.7, orders


# --------------------------------------------------------------------------------------
# Stochastic samplers
# --------------------------------------------------------------------------------------


def test_ddpm_beta_tilde_is_ddim_eta_1(g):
    """Song et al. 2021, Eq. 16: eta = 1 gives DDPM's posterior; same noise stream."""
    x_T = torch.randn(8, 8, generator=torch.Generator().manual_seed(5), dtype=F64)
    vp = DiscreteVP.linear()
    a = ddpm(g.denoiser, vp, x_T, 25, generator=torch.Generator().manual_seed(6))
    b = ddim(g.denoiser, vp, x_T, 25, eta=1.0, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    c = ddpm(g.denoiser, vp, x_T, 25, generator=torch.Generator().manual_seed(6), variance="beta")
    assert (a - c).abs().max() > 1e-3  # the two variance choices really differ


N_MC = 2000


@pytest.mark.parametrize(
    "name, steps, options",
    [
        ("ddpm", 1000, {"variance": "beta"}),
        ("ddpm", 1000, {"variance": "beta_tilde"}),
        ("ddim", 100, {"eta": 0.5}),
        ("ve_pc", 500, {"snr": 0.16, "n_steps_each": 1}),
    ],
)
def test_stochastic_samples_match_data_moments(g, name, steps, options):
    """Sample mean and covariance of N_MC samples lie within 4.5 standard errors of the data's:
    SE(mean_j) = sqrt(C_jj / N), SE(cov_jk) = sqrt((C_jk^2 + C_jj C_kk) / N) for Gaussian data
    (plus 1e-8 for the exactly-zero off-manifold entries). DDPM runs its full T = 1000 chain:
    respaced to 100 steps, beta-tilde under-disperses by 7-13% (beta: within 4%), a real
    discretisation bias that this tolerance (14% of a variance) would flag at some seeds."""
    gen = torch.Generator().manual_seed(7)
    x0 = g.sample(N_MC, gen)
    noise = torch.randn(N_MC, 8, generator=gen, dtype=F64)
    if name == "ve_pc":
        sch = VE()
        x_T = x0 + sch.sigma_max * noise
    else:
        sch = DiscreteVP.linear()
        x_T = sch.alpha(sch.T) * x0 + sch.sigma(sch.T) * noise
    x = SAMPLERS[name](g.denoiser, sch, x_T, steps, generator=gen, **options)
    C = g.basis @ torch.diag(g.eigenvalues) @ g.basis.T
    se_mean = (C.diagonal() / N_MC).sqrt()
    se_cov = ((C**2 + torch.outer(C.diagonal(), C.diagonal())) / N_MC).sqrt()
    assert torch.all((x.mean(0) - g.mean).abs() <= 4.5 * se_mean + 1e-8)
    assert torch.all((torch.cov(x.T) - C).abs() <= 4.5 * se_cov + 1e-8)


def test_ve_pc_steps_follow_score_sde(g):
    """Two PC steps replayed by hand from the same noise stream, with the model's own
    ``score`` (written independently of its denoiser): corrector (Langevin, step
    2 (snr mean||z|| / mean||s||)^2), then reverse-diffusion predictor, then the final mean."""
    sch, snr = VE(), 0.2
    sig = sch.discrete_sigmas(2)
    x_T = 50 * torch.randn(6, 8, generator=torch.Generator().manual_seed(13), dtype=F64)
    seen = []
    out = ve_pc(
        g.denoiser,
        sch,
        x_T,
        2,
        snr=snr,
        generator=torch.Generator().manual_seed(14),
        callback=lambda i, t, x, d: seen.append(x),
    )

    rng = torch.Generator().manual_seed(14)

    def corrector(x, s):
        score, z = g.score(x, s), torch.randn(x.shape, generator=rng, dtype=F64)
        e = 2 * (snr * z.norm(dim=1).mean() / score.norm(dim=1).mean()) ** 2
        return x + e * score + (2 * e).sqrt() * z

    x = corrector(x_T, sig[0])
    torch.testing.assert_close(seen[0], x, rtol=1e-10, atol=1e-10)
    v = sig[0] ** 2 - sig[1] ** 2
    x = x + v * g.score(x, sig[0]) + v.sqrt() * torch.randn(x.shape, generator=rng, dtype=F64)
    x = corrector(x, sig[1])
    torch.testing.assert_close(seen[1], x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out, x + sig[1] ** 2 * g.score(x, sig[1]), rtol=1e-10, atol=1e-10)


def test_ve_pc_callback_once_per_step_and_evaluations(g):
    calls, seen = [0], []

    def counted(x, sigma):
        calls[0] += 1
        return g.denoiser(x, sigma)

    x_T = 50 * torch.randn(4, 8, generator=torch.Generator().manual_seed(8), dtype=F64)
    ve_pc(
        counted,
        VE(),
        x_T,
        30,
        n_steps_each=2,
        generator=torch.Generator().manual_seed(9),
        callback=lambda i, t, x, d: seen.append((i, t)),
    )
    assert calls[0] == 30 * 3
    assert [i for i, _ in seen] == list(range(30))
    np.testing.assert_allclose([t for _, t in seen], VE().discrete_sigmas(30).numpy())


# --------------------------------------------------------------------------------------
# Cross-check with diffusers
# --------------------------------------------------------------------------------------


def _run_diffusers(sched, g, x_T, steps, **step_kw):
    """diffusers' sampling loop with an eps-prediction wrapper of the exact denoiser."""
    sched.set_timesteps(steps)
    ab = sched.alphas_cumprod.double()
    x = x_T.clone()
    for t in sched.timesteps:
        a, s = ab[t].sqrt(), (1 - ab[t]).sqrt()
        d = g.denoiser(x / a, torch.full((x.shape[0],), float(s / a), dtype=F64))
        x = sched.step(denoiser_to_eps(d, x, s, a), t, x, **step_kw).prev_sample
    # diffusers keeps float32 betas; our schedule is built from its alphas_cumprod exactly
    return x, DiscreteVP(1 - ab / torch.cat([torch.ones(1, dtype=F64), ab[:-1]]))


DIFFUSERS_BETAS = {
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "beta_schedule": "linear",
}


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_matches_diffusers(g, spacing, eta):
    """DDIMScheduler(set_alpha_to_one=True, steps_offset=0, clip_sample=False): the last step
    lands on alpha_bar = 1, as our grid's final n = 0. Measured max |diff| <= 5e-7, set by
    diffusers' float32 alphas_cumprod powers."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(
        **DIFFUSERS_BETAS,
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing=spacing,
    )
    x_T = torch.randn(16, 8, generator=torch.Generator().manual_seed(10), dtype=F64)
    kw = {"eta": eta, "generator": torch.Generator().manual_seed(11)}
    theirs, vp = _run_diffusers(sched, g, x_T, 50, **kw)
    assert torch.equal(discrete_timesteps(1000, 50, spacing)[:-1], sched.timesteps + 1)
    ours = ddim(
        g.denoiser,
        vp,
        x_T,
        50,
        eta=eta,
        spacing=spacing,
        generator=torch.Generator().manual_seed(11),
    )
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' own numpy call
@pytest.mark.parametrize("steps", [10, 25])
def test_dpm_solver_pp_2m_matches_diffusers(g, steps):
    """DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
    solver_type="midpoint", lower_order_final=False, final_sigmas_type="zero",
    timestep_spacing="trailing"): warm-up first-order step, first-order last step onto
    sigma = 0, exactly our algorithm. Measured max |diff| ~ 4e-7: diffusers casts the state
    and its sigmas to float32 inside ``step``."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(
        **DIFFUSERS_BETAS,
        solver_order=2,
        algorithm_type="dpmsolver++",
        solver_type="midpoint",
        lower_order_final=False,
        final_sigmas_type="zero",
        timestep_spacing="trailing",
    )
    x_T = torch.randn(16, 8, generator=torch.Generator().manual_seed(12), dtype=F64)
    theirs, vp = _run_diffusers(sched, g, x_T, steps)
    ours = dpm_solver_pp(g.denoiser, vp, x_T, steps, order=2, spacing="trailing")
    assert (ours - theirs).abs().max() < 1e-5


# --------------------------------------------------------------------------------------
# Grids and input checks
# --------------------------------------------------------------------------------------


def test_discrete_timesteps():
    full = torch.arange(1000, -1, -1)
    assert torch.equal(discrete_timesteps(1000, 1000, "trailing"), full)
    assert torch.equal(discrete_timesteps(1000, 1000, "leading"), full)
    assert discrete_timesteps(1000, 4, "trailing").tolist() == [1000, 750, 500, 250, 0]
    assert discrete_timesteps(1000, 4, "leading").tolist() == [751, 501, 251, 1, 0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d, x: euler(d, EDM(), 80 * x, 0), "steps=0"),
        (lambda d, x: heun(d, VE(), x, 18), "needs a schedule of type EDM, got VE"),
        (lambda d, x: ddpm(d, DiscreteVP.linear(), x, 10, variance="large"), "'large'"),
        (lambda d, x: ddpm(d, DiscreteVP.linear(), x, 1001), "steps=1001"),
        (lambda d, x: ddim(d, DiscreteVP.linear(), x, 10, spacing="linspace"), "'linspace'"),
        (lambda d, x: ddim(d, DiscreteVP.linear(), x, 10, eta=-1.0), "eta=-1.0"),
        (lambda d, x: ddim(d, LogSNR(), x, 10, spacing="trailing"), "spacing='time'"),
        (lambda d, x: dpm_solver_pp(d, DiscreteVP.linear(), x, 10, order=4), "order=4"),
        (lambda d, x: dpm_solver_pp(d, "vp", x, 10), "got str"),
        (lambda d, x: ve_pc(d, VE(), x, 10, snr=0.0), "snr=0.0"),
        (lambda d, x: ve_pc(d, EDM(), x, 10), "got EDM"),
    ],
)
def test_bad_input_raises(g, call, match):
    x = torch.randn(2, 8, dtype=F64)
    with pytest.raises(ValueError, match=match):
        call(g.denoiser, x)


# --------------------------------------------------------------------------------------
# No host syncs: a step never reads a device tensor back
# --------------------------------------------------------------------------------------

_NO_SYNC_CASES = [
    (euler, EDM(), {}),
    (heun, EDM(), {}),
    (edm_stochastic, EDM(), {"S_churn": 10.0}),
    (ddpm, DiscreteVP.linear(), {}),
    (ddim, DiscreteVP.linear(), {"eta": 1.0}),
    (dpm_solver_pp, DiscreteVP.linear(), {"order": 3}),
    (ve_pc, VE(sigma_min=0.01, sigma_max=50.0), {}),
]


@pytest.mark.parametrize(("sampler", "schedule", "kw"), _NO_SYNC_CASES)
def test_samplers_never_read_device_values(sampler, schedule, kw):
    """On the meta device a tensor has no values: float(t), t.item() or ``if t > 0`` on a
    device tensor raise. Every sampler runs there, so no step reads the device back (on a
    GPU each such read would be a host sync); the time grid stays on the host."""
    x_T = torch.empty(4, 3, device="meta")
    out = sampler(lambda x, s: 0.5 * x, schedule, x_T, 6, **kw)
    assert out.device.type == "meta" and out.shape == x_T.shape


def test_meta_check_catches_a_device_grid():
    """The check above can fail: a grid moved to the device makes float() raise."""
    t = EDM().sigma_steps(4).to("meta")
    with pytest.raises((NotImplementedError, RuntimeError)):
        float(t[1])


@pytest.mark.gpu
@pytest.mark.parametrize(("sampler", "schedule", "kw"), _NO_SYNC_CASES)
def test_samplers_on_cuda_do_not_sync_and_match_cpu(sampler, schedule, kw):
    """On CUDA under ``set_sync_debug_mode("error")`` every step runs without a host sync,
    and the result equals the CPU one to float32 round-off (CUDA divides by a CPU scalar
    through its reciprocal: 1 ulp per step)."""
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(16, 3, 8, 8, generator=gen)
    g_cpu, g_gpu = torch.Generator().manual_seed(1), torch.Generator("cuda").manual_seed(1)
    den = lambda x, s: x / (1 + s[:, None, None, None] ** 2)
    stochastic = kw.get("eta", 0) or kw.get("S_churn", 0) or sampler in (ddpm, ve_pc)
    if stochastic:  # compare shapes only
        ref = None
    else:
        ref = sampler(den, schedule, x_T, 6, generator=g_cpu, **kw)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = sampler(den, schedule, x_T.cuda(), 6, generator=g_gpu, **kw)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.shape == x_T.shape and torch.isfinite(out).all()
    if ref is not None:
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-5)
