"""The experiment functions behind the GM-SGM theory chapters (GMS-1, -2, -3, -5): what
the chapters print is checked here against closed forms and stated tolerances."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from gmdiff.analytic.anomalous import three_paths
from gmdiff.papers import gm_sgm_theory as th

pytestmark = pytest.mark.usefixtures("one_thread")


def test_levy_pdf_table():
    df = th.levy_pdf_table([1.0, 1.8, 2.0], check_x=(0.0, 1.0))
    assert df["scipy vs Fourier integral (rel.)"].max() < 1e-7
    # p(0) = Gamma(1 + 1/alpha) 2^(1/alpha) / pi in the paper's convention
    ref = [math.gamma(1 + 1 / a) * 2 ** (1 / a) / math.pi for a in [1.0, 1.8, 2.0]]
    np.testing.assert_allclose(df["p(0)"], ref, rtol=1e-6)
    assert df["p(0) / N(0;0,1)"].iloc[0] > df["p(0) / N(0;0,1)"].iloc[1] > 1.0  # more peaked
    assert df["p(6) / N(6;0,1)"].iloc[1] > 100  # heavier tail


def test_mixture_vs_sum():
    df, cross = th.mixture_vs_sum(beta=2.0)
    mix = df.iloc[1]
    assert math.isclose(mix["density at 0"], 0.75 * stats.norm.pdf(0), rel_tol=1e-12)
    assert math.isclose(mix["kurtosis"], 3 * 17 / 2 / 2.5**2, rel_tol=1e-12)
    assert math.isclose(mix["P(|X| > 6)"], stats.norm.sf(6) + stats.norm.sf(3), rel_tol=1e-12)
    assert len(cross) == 1 and 1.0 < cross[0] < 2.0  # beyond it the sum's density is larger


def test_increment_ks_table_and_path_stats():
    df = th.increment_ks_table(1000, seed=0)
    assert len(df) == 5 and df.iloc[:, -1].all()
    stats_ = th.path_step_stats(three_paths(500))
    assert list(stats_["path"]) == ["levy", "gm", "brownian"]
    assert (stats_["max step"] >= stats_["99% step"]).all()


def test_gms3_tables():
    exact = th.gms3_exact_gaussian((0.0, 1.0, 2.0))
    assert exact.iloc[0, 1] < 1e-12 and exact.iloc[0, 2] < 1e-12 and exact.iloc[1, 1] > 0.1
    mc = th.gms3_mc_table(60000, (0.0, 1.0, 2.0))
    assert list(mc["passes"]) == [True, False, False, False, True]


def test_gms5_tables():
    prior = th.bimodal_prior(2.0, 0.5)
    x = torch.linspace(-6, 6, 13, dtype=torch.float64)[:, None]
    curves = th.gms5_curves(prior, x, 1.0)
    # symmetric data: odd denoisers, even scale posterior
    assert np.allclose(curves["GM-SGM optimal"], -curves["GM-SGM optimal"][::-1].values, atol=1e-12)
    assert (curves["GM-SGM optimal"].abs() <= curves["SGM D(x; sigma)"].abs() + 1e-12).all()
    mc = th.gms5_mc_table(prior, 1.0, 60000)
    passed = dict(zip(mc["denoiser"], mc.iloc[:, -1]))
    assert passed == {
        "SGM D(x; sigma)": False,
        "GM-SGM optimal": True,
        "Eq. 13 as printed": passed["Eq. 13 as printed"],
    }
    opt = mc.set_index("denoiser")
    # the posterior mean has the least MSE on its own noise, the SGM denoiser on Gaussian noise
    assert (
        opt.loc["GM-SGM optimal", "MSE, mixture noise"]
        < opt.loc["SGM D(x; sigma)", "MSE, mixture noise"]
    )
    assert (
        opt.loc["SGM D(x; sigma)", "MSE, Gaussian noise"]
        < opt.loc["GM-SGM optimal", "MSE, Gaussian noise"]
    )
