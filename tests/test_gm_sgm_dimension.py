"""The dimension study of GM-SGM's few-iteration gap (gmdiff.papers.gm_sgm_dimension)."""

from __future__ import annotations

import math

import pytest
import torch

from gmdiff import data
from gmdiff.papers import gm_sgm_dimension as M
from gmdiff.schedules import VE


def diag_gaussian_denoiser(lam):
    """Exact denoiser of N(0, diag lam): lam / (lam + sigma^2) x."""
    return lambda x, s: (lam / (lam + s[:, None].double() ** 2) * x.double()).to(x.dtype)


class DiagPrior:
    def __init__(self, lam):
        self.lam = lam

    def sample(self, n, g):
        return torch.randn(n, self.lam.numel(), generator=g, dtype=torch.float64) * self.lam.sqrt()


@pytest.mark.parametrize("steps", [10, 40])
def test_recursion_matches_monte_carlo_pc(steps):
    D = 32
    lam = torch.linspace(0.05, 2.0, D, dtype=torch.float64)
    sched = VE(sigma_min=0.01, sigma_max=8.0)
    r = M.pc_gaussian_recursion(lam, sched, steps)
    sig, dist, x = M.pc_trace(
        diag_gaussian_denoiser(lam), sched, (D,), 4000, steps, DiagPrior(lam), seed=0
    )
    assert torch.allclose(sig, r["sigmas"].float(), rtol=1e-5)
    # MC error of a shell distance with n = 4000 per side: about sqrt(2 / 4000) = 0.02
    assert (dist - r["predictor"]).abs().max() < 0.15
    assert ((x.double().var(0) / r["out_var"]) - 1).abs().max() < 0.12
    assert r["predictor"].abs().max() > 0.3  # the comparison has something to compare


def test_exact_states_sit_on_the_shell_and_a_planted_scale_error_shows():
    D, n, sigma = 1000, 2000, 3.0
    prior = data.seeded_low_rank_gmm(D, 3, 4, 0)
    a = M.exact_inputs(prior, n, sigma, torch.Generator().manual_seed(1))
    b = M.exact_inputs(prior, n, sigma, torch.Generator().manual_seed(2))
    assert abs(M.shell_distance_mc(a, b)) < 0.3
    # a 5% larger noise (10% more variance per coordinate) is ~sqrt(D/2) * 0.1 ~ 2 widths out
    x0 = prior.sample(n, torch.Generator().manual_seed(3))
    c = x0 + 1.05 * sigma * torch.randn(
        x0.shape, generator=torch.Generator().manual_seed(4), dtype=x0.dtype
    )
    assert M.shell_distance_mc(c, b) > 1.2


def test_recursion_shell_distance_grows_like_sqrt_d_for_isotropic_data():
    # same sigma ladder for every D: the per-coordinate recursion is then D-independent
    sched = VE(sigma_min=0.01, sigma_max=20.0)
    d = {D: M.pc_gaussian_recursion(torch.ones(D), sched, 20)["predictor"] for D in (8, 800)}
    assert torch.allclose(d[800] / d[8], torch.full_like(d[8], 10.0), rtol=1e-6)
    # with a fine ladder the states stay on the shell
    many = M.pc_gaussian_recursion(torch.ones(8), sched, 2000)["predictor"]
    assert many.abs().max() < 0.05 * d[8].abs().max()


def test_frechet_to_moments_is_small_for_exact_samples_and_sees_a_planted_shift():
    prior = data.seeded_low_rank_gmm(10, 3, 2, 0)
    mean, cov = prior.moments()
    x = prior.sample(200_000, torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), mean, atol=0.02)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)
    assert M.frechet_to_moments(x, mean, cov) < 2e-3
    shift = torch.zeros(10, dtype=torch.float64)
    shift[0] = 0.5
    fd = M.frechet_to_moments(x + shift, mean, cov)
    assert fd == pytest.approx(0.25 / float(cov.trace()), abs=2e-3)


def test_sigma_max_rule_is_the_largest_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    assert M.sigma_max_rule(x) == pytest.approx(5.0)


def test_trained_study_runs_end_to_end_at_tiny_size(tmp_path, monkeypatch):
    """The full profile's path (training through runs.load_or_train, sampling, metrics,
    r_mean / r_var) at a tiny size."""
    monkeypatch.setenv("GMDIFF_CACHE_DIR", str(tmp_path))
    cfg = {"width": 16, "depth": 2, "steps": 20, "batch": 16, "lr": 1e-3, "ema_rampup": 0.05}
    train = M.mlp_trainer(cfg, k=2, rank=1)
    table, ratios = M.trained_study(
        train, [3], [1.0, 2.0], [0, 1], [5, 8], n=32, ratio_iterations=[8]
    )
    assert len(table) == 1 * 2 * 2 * 2
    assert table["relative FD"].gt(0).all() and table["max |shell distance|"].notna().all()
    assert len(ratios) == 2 * 8 and ratios["r_mean"].gt(0).all()
    gap = M.gap_table(table)
    assert list(gap.index.names) == ["D", "iterations"] and (gap["seeds"] == 2).all()
    assert (gap["min"] <= gap["mean"]).all() and (gap["mean"] <= gap["max"]).all()
    assert any(p.name.startswith("gms-dim3-") for p in (tmp_path / "runs").iterdir())
    assert math.isfinite(M.floor_fd(train(3, 1.0, 0)[2], 32, [0]))


def test_mixture_exact_study_rows_and_floor():
    table, floors = M.mixture_exact_study(2, 1, [3], [4, 30], n=300)
    assert len(table) == 2 * 2 and set(table["model"]) == {"exact score", "GM-SGM optimum"}
    exact = table[table["model"] == "exact score"].set_index("iterations")["relative FD"]
    # 30 exact-score iterations land within a few floors of exact samples
    assert exact[30] < 5 * floors[3] + 0.02
