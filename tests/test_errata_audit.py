"""X-3 audit: errata of the Gaussian score paper (GS) and the GM-SGM paper (GMS), each shown
with a number. Every test computes the formula as printed and an independent reference
(quadrature, Monte Carlo, exact Gaussian conditioning, autograd, the sampler's own step
count) and asserts that the printed form disagrees while the corrected form agrees.

Errata already covered elsewhere are not repeated here: GS Eq. 107 and Eq. 22
(tests/test_gaussian_dynamics.py), GMS Thm. 1 under Eq. 12 and Eq. 13 (tests/test_bridge.py,
tests/test_gm_sgm_theory.py), GMS Fig. 1's gamma (tests/test_anomalous.py). Equation numbers
refer to the paper named in each test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from gmdiff.analytic import DeltaMixture, Gaussian, gaussian_state, integrate_pf_ode
from gmdiff.analytic.bridge import condition_gaussian, ve_bridge_posterior, ve_joint_covariance
from gmdiff.analytic.checks import autograd_score, rel_err
from gmdiff.analytic.pf_ode import rotation_correction
from gmdiff.papers import gm_sgm
from gmdiff.papers import gs_teleport as gt
from gmdiff.papers.gaussian_score import eq11_as_printed_error
from gmdiff.samplers import heun_nfe
from gmdiff.schedules import EDM

F64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


# -- Gaussian score paper ------------------------------------------------------------------


def test_gs_eq11_extra_exp():
    """Eq. 11 prints the delta-mixture weights as softmax(exp(-d^2 / 2 sigma^2)); the
    denoiser with those weights misses Tweedie's formula on autograd of the log density,
    softmax(-d^2 / 2 sigma^2) (Eq. 39) meets it."""
    gen = torch.Generator().manual_seed(0)
    y = 3.0 * torch.randn(40, 2, generator=gen, dtype=F64)
    q = y[:20] + 0.5 * torch.randn(20, 2, generator=gen, dtype=F64)
    ref = q + 0.25 * autograd_score(DeltaMixture(y), q, 0.5)
    w = torch.softmax(-(torch.cdist(q, y) ** 2) / (2 * 0.25), dim=1)
    assert rel_err(w @ y, ref) < 1e-10
    assert eq11_as_printed_error(y, q, 0.5) > 0.3


def test_gs_eqs18_19_projector():
    """Eqs. 18-19 print the off-manifold projector as I - U^T U. With U of shape (D, r),
    U^T U = I_r, so the printed projector is the r x r zero matrix and the off-manifold
    term vanishes; the state then misses an RK45 solution of the PF-ODE, while
    I - U U^T (Eq. 15) matches it."""
    gen = torch.Generator().manual_seed(1)
    U, _ = torch.linalg.qr(torch.randn(8, 3, generator=gen, dtype=F64))
    g = Gaussian(torch.randn(8, generator=gen, dtype=F64), U, torch.tensor([4.0, 1.0, 0.1]))
    x_T = 80.0 * torch.randn(4, 8, generator=gen, dtype=F64)
    torch.testing.assert_close(U.T @ U, torch.eye(3, dtype=F64))  # printed: I_r - I_r = 0
    ref = integrate_pf_ode(g.score, EDM(), x_T, 80.0, np.array([2.0]))[0]
    corrected = gaussian_state(g, x_T, 2.0, 80.0)
    c = (x_T - g.mean) @ U
    printed = g.mean + (torch.sqrt((2.0**2 + g.eigenvalues) / (80.0**2 + g.eigenvalues)) * c) @ U.T
    assert rel_err(corrected, ref) < 1e-6
    assert rel_err(printed, ref) > 1e-2


def test_gs_eq111_radical_covers_whole_denominator():
    """Eq. 111 prints J/alpha = -2 sigma sqrt(lam) / sqrt(sigma^2 + lam alpha^2 + alpha
    sqrt(lam) + sigma), the root over the whole denominator; Eq. 105 (and J itself, Eq. 104)
    give sqrt(sigma^2 + lam alpha^2) + alpha sqrt(lam) + sigma."""
    alpha = torch.linspace(0.05, 0.95, 19, dtype=F64)
    sigma = torch.sqrt(1 - alpha**2)
    lam = torch.tensor(4.0, dtype=F64)
    ref = rotation_correction(alpha, sigma, lam) / alpha  # Eq. 104 divided by alpha
    r = lam.sqrt()
    printed = -2 * sigma * r / torch.sqrt(sigma**2 + lam * alpha**2 + alpha * r + sigma)
    fixed = -2 * sigma * r / (torch.sqrt(sigma**2 + lam * alpha**2) + alpha * r + sigma)
    torch.testing.assert_close(fixed, ref, rtol=1e-12, atol=1e-12)
    assert (printed - ref).abs().max() > 0.3


def test_gs_eq136_vp_marginal_of_a_mixture():
    """Eq. 136 says a Gaussian mixture pushed through the VP-SDE forward process is
    sum_i pi_i N(mu_i, sigma_t^2 I + Sigma_i); simulated x_t = alpha_t x_0 + sigma_t n follow
    sum_i pi_i N(alpha_t mu_i, sigma_t^2 I + alpha_t^2 Sigma_i) instead (KS test)."""
    gen = np.random.default_rng(2)
    mu, var, a = np.array([-3.0, 2.0]), np.array([0.5, 1.5]), 0.6
    s = math.sqrt(1 - a**2)
    k = gen.integers(0, 2, 20000)
    x_t = a * (mu[k] + np.sqrt(var[k]) * gen.standard_normal(k.size)) + s * gen.standard_normal(
        k.size
    )

    def mix_cdf(m, v):
        return lambda z: 0.5 * sum(stats.norm.cdf(z, mm, math.sqrt(vv)) for mm, vv in zip(m, v))

    assert stats.kstest(x_t, mix_cdf(a * mu, s**2 + a**2 * var)).pvalue > 1e-3
    assert stats.kstest(x_t, mix_cdf(mu, s**2 + var)).pvalue < 1e-10


def test_gs_d42_noise_seed_norm_and_overlap():
    """App. D.4.2 takes x_T ~ N(0, I) to have norm ~ 1 and overlaps c_k = u_k . x_T ~ 1/sqrt(D),
    so that Eq. 108 becomes sum_k J_k^2 / D (the 1/D behind Eq. 22). In D = 3072 the norm is
    ~ sqrt(D) = 55 and E c_k^2 = 1, so the error of Eq. 108 is ~ sum_k J_k^2, D times the printed
    estimate; only the error relative to |x_T|^2 is ~ sum_k J_k^2 / D."""
    D, r = 3072, 16
    gen = torch.Generator().manual_seed(3)
    U, _ = torch.linalg.qr(torch.randn(D, r, generator=gen, dtype=F64))
    lam = torch.logspace(2, -1, r, dtype=F64)
    g = Gaussian(torch.zeros(D, dtype=F64), U, lam)
    x_T = torch.randn(200, D, generator=gen, dtype=F64)
    assert abs(x_T.norm(dim=1).mean().item() / math.sqrt(D) - 1) < 0.01
    c = x_T @ U
    assert abs((c**2).mean().item() - 1) < 0.1  # not 1/D = 3e-4
    a_t = 1 / math.sqrt(2)  # a mid-trajectory point, alpha_T = 0 and sigma_T = 1 as in D.4
    x_t = gaussian_state(g, x_T, a_t, 1.0, a_t, 0.0)
    x_0 = gaussian_state(g, x_T, 0.0, 1.0, 1.0, 0.0)
    err = ((x_t - a_t * x_0 - a_t * x_T) ** 2).sum(1)
    J2 = (rotation_correction(a_t, a_t, lam) ** 2).sum().item()
    assert abs(err.mean().item() / J2 - 1) < 0.2  # ~ sum_k J_k^2
    assert err.mean().item() > 1000 * J2 / D  # the printed sum_k J_k^2 / D
    assert abs((err / (x_T**2).sum(1)).mean().item() * D / J2 - 1) < 0.2  # relative reading


def test_gs_table7_edm_noise_variance():
    """Table 7's EDM row prints B_t = sigma(t)^(3/2) for the variance of p(x_t | x_0); EDM's
    forward process x_t = x_0 + sigma n has variance sigma^2 (Monte Carlo, sigma = 4: 16, not 8).
    (Possibly an extraction slip of sigma(t)^2.)"""
    gen = np.random.default_rng(4)
    sig = 4.0
    v = np.var(1.0 + sig * gen.standard_normal(200000))
    assert abs(v / sig**2 - 1) < 0.01
    assert abs(v / sig**1.5 - 1) > 0.9


def test_gs_a8_step_counts_and_a7_indexing():
    """A.8: '79 steps (NFE=79) for FFHQ and AFHQ'. Heun's sampler spends 2n - 1 evaluations
    on n levels, so NFE 79 is 40 levels; 79 levels cost 157. Tables 4-5 agree with 40:
    their sigma at skip 2 (60.1) is EDM's level 2 of 40, while level 2 of 79 is 69.4.
    A.7 lists levels sigma_0..sigma_{n_step} with sigma_{n_step} = sigma_min; Eq. 40 puts
    sigma_min at i = n_step - 1 and gives 3.9e-4 at i = n_step."""
    assert heun_nfe(79) == 157 and heun_nfe(40) == 79
    ffhq = {skip: s for skip, _, s, _ in gt.PAPER_TABLES["FFHQ-64"]["rows"]}
    assert abs(float(EDM().sigma_steps(40)[2]) - ffhq[2]) < 0.05
    assert abs(float(EDM().sigma_steps(79)[2]) - ffhq[2]) > 9.0
    # Sec. 4.3's divergence points also sit on 18 and 40 levels: step 9 (1.92), step 17 (4.37)
    assert round(float(EDM().sigma_steps(18)[9]), 2) == 1.92
    assert round(float(EDM().sigma_steps(40)[17]), 2) == 4.37
    s18 = EDM().sigma_steps(18)
    assert float(s18[17]) == pytest.approx(0.002, rel=1e-9)  # Eq. 40 at i = n_step - 1
    r = 1 / 7
    at_n = (80**r + 18 / 17 * (0.002**r - 80**r)) ** 7  # Eq. 40 at i = n_step
    assert at_n < 0.2 * 0.002


def test_gs_text_percentages_against_tables():
    """Sec. 6 / abstract: '15-30% of NFEs at less than 3% FID increase'; Table 4 (and
    Table 1) for FFHQ-64: the 15% row (67 NFE) costs +3.9% and the most saved under 3% is
    10.1%. B.8: 'skipping 6 steps ... increase the FID score by less than .2%'; Table 6:
    1.958 -> 1.963 is +0.26%. B.8's '1.933 (5 steps replaced)'; Table 6 and Table 1 print
    1.934 (the text's 1.933 matches no row)."""
    ffhq = gt.paper_table("FFHQ-64")
    r6 = ffhq.loc[ffhq["skip"] == 6].iloc[0]
    assert r6["NFE saved (%)"] > 15 and r6["FID change (%)"] == pytest.approx(3.94, abs=0.01)
    assert ffhq.loc[ffhq["FID change (%)"] < 3, "NFE saved (%)"].max() == pytest.approx(10.13, 0.01)
    cifar = gt.paper_table("CIFAR-10")
    r = cifar.set_index("skip")
    assert r.loc[6, "NFE saved (%)"] == pytest.approx(34.3, abs=0.05)
    assert r.loc[6, "FID change (%)"] == pytest.approx(0.255, abs=0.001)
    assert r.loc[6, "FID change (%)"] > 0.2  # the text: 'less than .2%'
    assert r.loc[5, "FID"] == 1.934 and 1.933 not in set(r["FID"])
    # the rest of B.8's percentages do follow from the tables
    assert r.loc[5, "NFE saved (%)"] == pytest.approx(29, abs=0.5)
    afhq = gt.paper_table("AFHQv2-64").set_index("skip")
    assert afhq.loc[10, "NFE saved (%)"] == pytest.approx(25, abs=0.5)
    assert afhq.loc[12, "NFE saved (%)"] == pytest.approx(30, abs=0.5)
    assert afhq.loc[6, "FID change (%)"] == pytest.approx(-2, abs=0.1)


def test_gs_d8_trace_identity_needs_the_square():
    """App. D.8 (before Eq. 149): 'sum_j |y_j - mu| = N tr Sigma'; it is the sum of the
    *squared* distances (Eq. 168)."""
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(500, 6, generator=gen, dtype=F64) * torch.arange(1, 7, dtype=F64)
    d = y - y.mean(0)
    ntr = len(y) * torch.cov(y.T, correction=0).trace()
    assert float((d**2).sum() / ntr) == pytest.approx(1.0, rel=1e-12)
    assert abs(float(d.norm(dim=1).sum() / ntr) - 1) > 0.5


# -- GM-SGM paper --------------------------------------------------------------------------


def _ve_reverse_variance(half: bool, v0: float = 1.0, T: int = 1000) -> float:
    """Variance after running x_{t-1} = x_t + c eps_t^2 s_t(x_t) + eps_t z from p_T on
    N(0, v0) data with the exact score s_t = -x / (v0 + sigma_t^2) of p_t, eps_t^2 =
    sigma_t^2 - sigma_{t-1}^2 on a geometric VE ladder 0.01..50; c = 1/2 (Eq. 1) or 1.
    The recursion is exact for Gaussians: V <- (1 - c eps^2 / S)^2 V + eps^2."""
    sig = np.concatenate([[0.0], 0.01 * 5000 ** (np.arange(T) / (T - 1))])
    c, V = (0.5 if half else 1.0), v0 + sig[-1] ** 2
    for t in range(T, 0, -1):
        e2, S = sig[t] ** 2 - sig[t - 1] ** 2, v0 + sig[t] ** 2
        V = (1 - c * e2 / S) ** 2 * V + e2
    return V


def test_gms_eq1_eq5_half_step_is_not_the_reversal():
    """Eq. 1 (and Eq. 5) are called the reverse of Eq. 2 (Eq. 4), but carry the Langevin
    factor 1/2 on the score term. With the exact score of p_t the printed chain ends with
    variance 9.0 on unit-variance data; the time reversal (factor 1, score of p_t, as in the
    reverse-diffusion predictor) ends at 1.01. A Monte Carlo run of the same chain agrees."""
    printed, fixed = _ve_reverse_variance(True), _ve_reverse_variance(False)
    assert abs(fixed - 1) < 0.02
    assert printed > 5
    # independent check of the recursion: simulate the printed chain
    gen = np.random.default_rng(6)
    sig = np.concatenate([[0.0], 0.01 * 5000 ** (np.arange(1000) / 999)])
    x = math.sqrt(1 + sig[-1] ** 2) * gen.standard_normal(20000)
    for t in range(1000, 0, -1):
        e2 = sig[t] ** 2 - sig[t - 1] ** 2
        x = x - 0.5 * e2 * x / (1 + sig[t] ** 2) + math.sqrt(e2) * gen.standard_normal(x.size)
    assert abs(x.var() / printed - 1) < 0.05


def _printed_sas_2d(x, alpha, gamma=1.0):
    """The pdf printed below Eq. 6 in d = 2: pi^-2 int_{R_+^2} exp(-|gamma y|^alpha / 2)
    cos(x . y) dy (truncated at |y_i| = 80, where the integrand is below 1e-8)."""

    def f(y2, y1):
        return np.exp(-0.5 * (gamma * math.hypot(y1, y2)) ** alpha) * math.cos(
            x[0] * y1 + x[1] * y2
        )

    return integrate.dblquad(f, 0, 80, 0, 80, epsabs=1e-10)[0] / math.pi**2


def _fixed_sas_2d(x, alpha, gamma=1.0):
    """Same integral with prod_i cos(x_i y_i), the orthant form of the inverse Fourier
    transform of an even characteristic function."""

    def f(y2, y1):
        return (
            np.exp(-0.5 * (gamma * math.hypot(y1, y2)) ** alpha)
            * math.cos(x[0] * y1)
            * math.cos(x[1] * y2)
        )

    return integrate.dblquad(f, 0, 80, 0, 80, epsabs=1e-10)[0] / math.pi**2


def test_gms_sas_pdf_in_d_dimensions():
    """The d-dimensional SaS pdf below Eq. 6 integrates cos(x . y) over the positive
    orthant; for d >= 2 that is not the inverse Fourier transform (the sin-sin cross terms
    do not cancel on one orthant). At alpha = 2, gamma = 1, x = (1, 1): printed 0.0053,
    N(0, I_2) gives 0.0585; at alpha = 1, x = (1, 0.5): printed -0.070 (a negative density),
    the isotropic Cauchy law with characteristic function exp(-|y|/2) gives 0.0433. The
    product prod_i cos(x_i y_i) gives both."""
    x = (1.0, 1.0)
    gauss = math.exp(-1.0) / (2 * math.pi)
    assert _fixed_sas_2d(x, 2.0) == pytest.approx(gauss, rel=1e-6)
    assert _printed_sas_2d(x, 2.0) < 0.2 * gauss
    x, c = (1.0, 0.5), 0.5
    cauchy = c / (2 * math.pi * (c**2 + x[0] ** 2 + x[1] ** 2) ** 1.5)
    assert _fixed_sas_2d(x, 1.0) == pytest.approx(cauchy, rel=1e-5)
    assert _printed_sas_2d(x, 1.0) < 0


def _ls_slope(y, target):
    return float((y * target).sum() / (y * y).sum())


@pytest.mark.parametrize("sigma", [0.5, 5.0])
def test_gms_eqs9_10_target_scale(sigma):
    """Eq. 9 (known) and Eq. 10 (new) print the target beta eta / sigma_t with eta ~ N(0,
    sigma_t^2 I). On N(0, 1) data the least-squares score is then sigma_t times the true
    score -y / (1 + sigma_t^2) of p_t; with eta / sigma_t^2 (Eq. 3, Eq. 11) it is the true score.
    So Eq. 10 at beta = 1 is not Eq. 3, and 'Eq. 9 = alternately Eq. 3 and Eq. 10' fails."""
    gen = np.random.default_rng(7)
    x, eta = gen.standard_normal(400000), sigma * gen.standard_normal(400000)
    y = x + eta
    true = -1 / (1 + sigma**2)
    assert _ls_slope(y, -eta / sigma**2) == pytest.approx(true, rel=0.01)
    assert _ls_slope(y, -eta / sigma) == pytest.approx(sigma * true, rel=0.01)
    assert abs(sigma - 1) > 0.4  # so the printed slope is off by >= 40 %


def test_gms_alg1_input_lacks_sigma_t():
    """Alg. 1 draws eta ~ N(0, I) and trains s(x + beta~ eta, t) on the target beta~ eta /
    sigma_t: the input's noise level is beta~ at every t, so t carries no information. At
    sigma_t = 5, beta~ = 1, on N(0, 1) data the least-squares score is -0.1 y on inputs of
    std 1.41, where p_t has score -y / 26 and std 5.1. With x + sigma_t beta~ eta (the target
    unchanged) it is the true score."""
    gen = np.random.default_rng(8)
    sigma = 5.0
    x, eta = gen.standard_normal(400000), gen.standard_normal(400000)
    y_printed, y_fixed = x + eta, x + sigma * eta
    assert y_printed.std() == pytest.approx(math.sqrt(2), rel=0.01)
    assert _ls_slope(y_printed, -eta / sigma) == pytest.approx(-0.1, rel=0.01)
    assert _ls_slope(y_fixed, -eta / sigma) == pytest.approx(-1 / 26, rel=0.01)
    assert y_fixed.std() == pytest.approx(math.sqrt(26), rel=0.01)


def test_gms_a1_proof_first_line():
    """App. A.1, first line of the log posterior: both terms read |x_t - x_s|^2, so the
    quadratic peaks at x_s = x_t. With |x_s - x_u|^2 in the second term it peaks at
    Theorem 1's mean, which exact Gaussian conditioning of the Markov VE process confirms."""
    st, ss, su = 3.0, 1.5, 0.5
    a, b = st**2 - ss**2, ss**2 - su**2
    x_t, x_u = 2.0, -1.0
    cov = ve_joint_covariance([su, ss, st], prior_var=1.0)
    m, _ = condition_gaussian(
        torch.zeros(3, dtype=F64), cov, [1], [0, 2], torch.tensor([[x_u, x_t]], dtype=F64)
    )
    exact = float(m)
    thm, _ = ve_bridge_posterior(
        torch.tensor([x_t], dtype=F64), torch.tensor([x_u], dtype=F64), st, ss, su
    )
    assert float(thm) == pytest.approx(exact, abs=1e-12)
    printed = optimize.minimize_scalar(lambda s: (x_t - s) ** 2 / a + (x_t - s) ** 2 / b).x
    fixed = optimize.minimize_scalar(lambda s: (x_t - s) ** 2 / a + (s - x_u) ** 2 / b).x
    assert fixed == pytest.approx(exact, abs=1e-6)
    assert abs(printed - exact) > 0.5


def test_gms_sec42_large_jump_variance():
    """Sec. 4.2: 'large jumps beta eta, eta ~ N(0, beta^2 sigma_t^2 I)' scales twice: the
    jump then has variance beta^4 sigma^2 (16 sigma^2 at beta = 2), not Eq. 10's beta^2 sigma^2."""
    gen = np.random.default_rng(9)
    beta, sigma = 2.0, 1.0
    jump = beta * (beta * sigma * gen.standard_normal(200000))
    assert jump.var() == pytest.approx(beta**4 * sigma**2, rel=0.02)
    assert abs(jump.var() / (beta**2 * sigma**2) - 1) > 2


def test_gms_a5_sgm_fid_against_table1():
    """App. A.5 compares its 2.24 with 'SGMs (2.51)' on CIFAR-10 at 1000 iterations; Table 1
    prints 2.50 there (2.51 is in no table of the paper)."""
    t1 = gm_sgm.PAPER_TABLES["table1"].set_index("iterations")
    assert t1.loc[1000, "SGM"] == 2.50
    all_fids = set()
    for name in ("table1", "table2", "table3", "table4", "table5"):
        t = gm_sgm.PAPER_TABLES[name]
        all_fids |= set(np.asarray(t.select_dtypes("number"), dtype=float).ravel().tolist())
    assert 2.51 not in all_fids and 2.5 in all_fids


# -- derivations that check out (the audit's 'ok' rows, shown with numbers too) -------------


def _vp(t):
    """The paper's VP convention (Eqs. 67-69): beta(t) = g^2 / 2 = (0.1 + 19.9 t) / 2,
    alpha_t = exp(-int_0^t beta), sigma_t^2 = 1 - alpha_t^2."""
    beta = 0.5 * (0.1 + 19.9 * t)
    alpha = math.exp(-0.5 * (0.1 * t + 9.95 * t * t))
    return beta, alpha, math.sqrt(1 - alpha * alpha)


def test_gs_d3_vp_solution_chain():
    """App. D.3: Eq. 84's rate equals Eq. 81's; Eq. 95 solves it (RK45); Eqs. 97-98 are the
    time derivatives of Eqs. 95-96 (central differences); Eq. 100's last line is Tweedie's
    x0-hat (Eq. 123) of the Gaussian score (Eq. 71) on the trajectory."""
    lam, T, t1 = 3.0, 1.0, 0.3
    _, aT, sT = _vp(T)
    for t in (0.05, 0.4, 0.9):
        b, a, s = _vp(t)
        eq81 = b * ((1 / s**2 - 1) - (1 / s**2) * a**2 * lam / (a**2 * lam + s**2))
        eq84 = b * a**2 * (1 - lam) / (a**2 * lam + s**2)
        assert eq81 == pytest.approx(eq84, rel=1e-12)

    def c95(t, lam=lam):
        a = _vp(t)[1]
        return math.sqrt((1 + (lam - 1) * a**2) / (1 + (lam - 1) * aT**2))

    def rate(t, c):
        b, a, s = _vp(t)
        return [b * a**2 * (1 - lam) / (a**2 * lam + s**2) * c[0]]

    sol = integrate.solve_ivp(rate, (T, t1), [1.0], rtol=1e-11, atol=1e-13)
    assert sol.y[0, -1] == pytest.approx(c95(t1), rel=1e-8)
    h = 1e-6
    b, a, _ = _vp(t1)
    eq97 = -(lam - 1) * a**2 * b / math.sqrt((1 + (lam - 1) * aT**2) * (1 + (lam - 1) * a**2))
    assert (c95(t1 + h) - c95(t1 - h)) / (2 * h) == pytest.approx(eq97, rel=1e-6)
    eq98 = a**2 * b / math.sqrt((1 - aT**2) * (1 - a**2))
    assert (c95(t1 + h, 0.0) - c95(t1 - h, 0.0)) / (2 * h) == pytest.approx(eq98, rel=1e-6)
    # Eq. 100 against Tweedie on the exact VP trajectory (one axis, mu = 0.7)
    mu, cT = 0.7, 1.3
    _, a, s = _vp(t1)
    x = a * mu + c95(t1) * cT
    x0_hat = (x + s**2 * (a * mu - x) / (s**2 + a**2 * lam)) / a  # Eqs. 71, 123
    eq100 = mu + cT * a * lam / math.sqrt((a**2 * lam + s**2) * (aT**2 * lam + sT**2))
    assert x0_hat == pytest.approx(eq100, rel=1e-12)


def test_gs_d44_conserved_quantities():
    """App. D.4.4: with the denoiser output frozen at D, the scaled PF-ODE (Eq. 115, VP
    scaling) keeps (x_t - alpha_t D) / sigma_t constant (Eqs. 120 and 131), by RK45."""
    Dv = 1.7

    def rhs(t, x):
        b, a, s = _vp(t)
        # Eq. 124 with x0-hat = D: x' = -beta x - (beta / sigma^2)(alpha D - x)
        return [-b * x[0] - b / s**2 * (a * Dv - x[0])]

    sol = integrate.solve_ivp(rhs, (1.0, 0.05), [0.4], rtol=1e-11, atol=1e-13, dense_output=True)
    inv = []
    for t in (1.0, 0.6, 0.2, 0.05):
        _, a, s = _vp(t)
        inv.append((float(sol.sol(t)[0]) - a * Dv) / s)
    np.testing.assert_allclose(inv, inv[0], rtol=1e-7)


def test_gs_d8_series_and_cross_term():
    """App. D.8: the series of Eqs. 154/159 sums to (sigma^2 I + Sigma)^{-1} when sigma^2 >
    lam_max and diverges below it (as stated); Eq. 170's E|(x - mu)^T v| = sqrt(2/pi) sigma
    |v| (Monte Carlo)."""
    gen = torch.Generator().manual_seed(10)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=F64))
    cov = Q @ torch.diag(torch.tensor([4.0, 2.0, 1.0, 0.5, 0.1], dtype=F64)) @ Q.T

    def series(s2, n):
        return sum((-1) ** k * torch.linalg.matrix_power(cov, k) / s2 ** (k + 1) for k in range(n))

    exact = torch.linalg.inv(9.0 * torch.eye(5, dtype=F64) + cov)
    assert rel_err(series(9.0, 80), exact) < 1e-12
    assert rel_err(series(3.0, 80), torch.linalg.inv(3.0 * torch.eye(5, dtype=F64) + cov)) > 1e3
    rng = np.random.default_rng(11)
    v, sig = np.array([1.0, -2.0, 0.5]), 3.0
    m = np.abs(sig * rng.standard_normal((200000, 3)) @ v).mean()
    assert m == pytest.approx(math.sqrt(2 / math.pi) * sig * np.linalg.norm(v), rel=0.01)


def test_gs_table7_rows_reproduce_their_marginals():
    """Table 7: for the discrete rows, one step x_t = (1 - C_t) x_{t-1} + D_t z carries
    (A_{t-1}, B_{t-1}) to (A_t, B_t) (DDPM, DDIM, Stable Diffusion); for the continuous VP
    SDE and 'Ours' (with g^2 = 2 beta), A' = -C A and B' = -2 C B + D^2 hold (finite
    differences). The EDM row's B_t is the erratum above."""
    betas = np.linspace(1e-4, 0.02, 50)
    ab = np.cumprod(1 - betas)
    for t in range(1, 50):
        k, d2 = math.sqrt(1 - betas[t]), betas[t]  # DDPM: 1 - C = sqrt(1 - beta), D^2 = beta
        assert k * math.sqrt(ab[t - 1]) == pytest.approx(math.sqrt(ab[t]), rel=1e-12)
        assert k**2 * (1 - ab[t - 1]) + d2 == pytest.approx(1 - ab[t], rel=1e-12)
        k, d2 = math.sqrt(ab[t] / ab[t - 1]), 1 - ab[t] / ab[t - 1]  # DDIM (its alpha = ab)
        assert k**2 * (1 - ab[t - 1]) + d2 == pytest.approx(1 - ab[t], rel=1e-12)
        a_, s_ = np.sqrt(ab), np.sqrt(1 - ab)  # Stable Diffusion: alpha_t, sigma_t
        k = a_[t] / a_[t - 1]
        d2 = s_[t] ** 2 - k**2 * s_[t - 1] ** 2
        assert k * a_[t - 1] == pytest.approx(a_[t], rel=1e-12)
        assert k**2 * s_[t - 1] ** 2 + d2 == pytest.approx(s_[t] ** 2, rel=1e-12)
    h, t = 1e-6, 0.4

    def song(t):  # VP SDE row: beta_s = 0.1 + 19.9 t, A = exp(-int beta_s / 2)
        i = 0.1 * t + 9.95 * t * t
        return math.exp(-0.5 * i), 1 - math.exp(-i), 0.1 + 19.9 * t

    A, B, bs = song(t)
    dA = (song(t + h)[0] - song(t - h)[0]) / (2 * h)
    dB = (song(t + h)[1] - song(t - h)[1]) / (2 * h)
    assert dA == pytest.approx(-bs / 2 * A, rel=1e-7)
    assert dB == pytest.approx(-2 * bs / 2 * B + bs, rel=1e-7)
    b, a, s = _vp(t)  # 'Ours': C = beta, D = g = sqrt(2 beta)
    dA = (_vp(t + h)[1] - _vp(t - h)[1]) / (2 * h)
    dB = (_vp(t + h)[2] ** 2 - _vp(t - h)[2] ** 2) / (2 * h)
    assert dA == pytest.approx(-b * a, rel=1e-7)
    assert dB == pytest.approx(-2 * b * s**2 + 2 * b, rel=1e-7)


def test_gms_text_numbers_follow_the_tables():
    """GM-SGM text numbers that do match its tables: Sec. 5.3 (beta = 1.5: 37.9, beta = 3:
    105.4, SGM 456.5 at 50 iterations, Table 3), Sec. 5.4 (CelebA 333: 4.1 vs SGM 14.5,
    Table 2), A.5 (3.77 beats Table 2's 3.98 at 400)."""
    t3 = gm_sgm.PAPER_TABLES["table3"].set_index("beta")
    assert round(t3.loc[1.5, 50], 1) == 37.9 and round(t3.loc[3.0, 50], 1) == 105.4
    assert round(t3.loc[1.0, 50], 1) == 456.5 and round(t3.loc[2.0, 50], 1) == 29.4
    t2 = gm_sgm.PAPER_TABLES["table2"].set_index("iterations")
    assert round(t2.loc[333, "GM-SGM"], 1) == 4.1 and round(t2.loc[333, "SGM"], 1) == 14.5
    assert 3.77 < t2.loc[400, "GM-SGM"] == 3.98
