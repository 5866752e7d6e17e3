"""GS-3, GS-4, GS-5 library pieces against independent computations."""

import math

import numpy as np
import torch

from gmdiff.analytic import Gaussian, perturbation_gain, rotation_correction
from gmdiff.papers import gaussian_score as gs
from gmdiff.schedules import DiscreteVP, VPLinear

f64 = torch.float64


def toy_gaussian(lams, D=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(D, len(lams), dtype=f64, generator=gen))
    return Gaussian(torch.randn(D, dtype=f64, generator=gen), U, torch.tensor(lams, dtype=f64))


def test_rotation_correction_matches_eq105_form():
    alpha = torch.linspace(0.01, 0.99, 50, dtype=f64)
    sigma = torch.sqrt(1 - alpha**2)
    for lam in [0.1, 1.0, 30.0]:
        a = alpha * math.sqrt(lam)
        eq105 = -2 * sigma * a / (torch.sqrt(sigma**2 + a**2) + a + sigma)
        torch.testing.assert_close(
            rotation_correction(alpha, sigma, torch.tensor(lam, dtype=f64)), eq105
        )


def test_worst_rotation_correction_exceeds_eq107_for_large_lambda():
    df = gs.worst_rotation_correction(torch.tensor([1.0, 100.0], dtype=f64), n_grid=20001)
    assert abs(df["max |J|"][0] - (math.sqrt(2) - 1)) < 1e-3  # lam = 1: exact at alpha = 1/sqrt2
    assert df["max |J|"][1] > 0.8 > gs.J_AT_EQ106  # Eq. 107's 0.586 is not a bound
    assert (df["max |J|"] < 1).all()


def test_perturbation_gain_matches_integration():
    g = toy_gaussian([50.0, 2.0, 0.05])
    df = gs.perturbation_gain_check(g, VPLinear(), t_prime=0.4, t_end=1e-5, seed=0)
    on = df[df.direction != "off-manifold"]
    np.testing.assert_allclose(on["RK45 gain"], on["Eq. 23 gain"], atol=2e-4)
    assert df[df.direction == "off-manifold"]["RK45 gain"].item() < 1e-2


def test_perturbation_gain_is_psi_ratio():
    lam = torch.tensor([0.3, 4.0], dtype=f64)
    torch.testing.assert_close(
        perturbation_gain(0.6, lam, 0.8), torch.sqrt(lam / (0.36 + lam * 0.64))
    )


def test_rotation_errors_follow_eq108():
    g = toy_gaussian([20.0, 5.0, 1.0, 0.2], D=40)
    e = gs.rotation_errors(g, DiscreteVP.linear(), n=6, seed=1)  # alpha_T ~ 0.006
    assert (e["actual"] - e["eq108"]).abs().max() < 2e-3
    assert e["actual"][:, 0].abs().max() < 1e-12  # x_0 itself: no departure at t = 0
    assert e["actual"].max() > 1e-3  # but a real departure in between


def test_critical_periods_are_ordered_by_variance():
    df = gs.critical_periods(gs.dynamics_curves(DiscreteVP.linear(), [0.01, 1.0, 100.0]))
    assert df["measured peak step"].is_monotonic_increasing
    assert ((df["SNR at peak"] > 0.2) & (df["SNR at peak"] < 5)).all()


def test_far_field_gaussian_error_falls_faster_than_isotropic():
    x = torch.rand(300, 5, dtype=f64, generator=torch.Generator().manual_seed(0)) ** 3
    sig = [20.0, 40.0, 80.0, 160.0]
    df = gs.far_field_errors(x, sig, n=64, seed=0)
    assert gs.loglog_slope(df.sigma.values, df.Gaussian.values) < -2.5
    assert -2.2 < gs.loglog_slope(df.sigma.values, df.isotropic.values) < -1.8
