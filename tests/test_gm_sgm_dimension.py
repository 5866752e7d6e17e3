"""The dimension study of GM-SGM's few-iteration gap (gmdiff.papers.gm_sgm_dimension)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from gmdiff import data, stats
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


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 2.0)])
def test_excess_over_optimum_is_zero_for_the_exact_denoiser(scales):
    from gmdiff.papers import gm_sgm as G

    prior = data.seeded_low_rank_gmm(6, 3, 2, 0)
    t = M.excess_over_optimum(
        G.exact_denoiser(prior, scales), prior, [0.05, 0.5, 3.0], scales, n=200
    )
    assert list(t["sigma"]) == [0.05, 0.5, 3.0]
    assert t["excess"].abs().max() < 1e-5 * t["MSE optimum"].max()  # float32 round trip only
    assert (t["MSE optimum"] > 0).all()


def test_excess_of_a_scaled_optimum_is_c_minus_1_squared_times_its_norm():
    """D = c D*: E||c D* - x0||^2 - E||D* - x0||^2 = (c - 1)^2 E||D*||^2, since
    E<D*, D* - x0> = 0 for the posterior mean."""
    from gmdiff.papers import gm_sgm as G

    prior = data.seeded_low_rank_gmm(5, 2, 2, 0)
    opt, c, sigma = G.exact_denoiser(prior, (1.0,)), 1.3, 0.7
    t = M.excess_over_optimum(lambda x, s: c * opt(x, s), prior, [sigma], (1.0,), n=4000)
    g = torch.Generator().manual_seed(5)
    x0 = prior.sample(20000, g)
    x = x0 + sigma * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    want = (c - 1) ** 2 * float(opt(x, torch.full((len(x),), sigma)).pow(2).sum(1).mean())
    row = t.iloc[0]
    assert want > 0.1
    assert abs(row["excess"] - want) < 4 * row["excess s.e."] + 0.02 * want
    assert row["excess / optimum"] == pytest.approx(row["excess"] / row["MSE optimum"])


def test_excess_sees_the_wrong_optimum_and_refuses_bad_input():
    """The SGM's optimum judged under GM-SGM's noise (beta~ in {1, 2}) is not optimal there."""
    from gmdiff.papers import gm_sgm as G

    prior = data.seeded_low_rank_gmm(6, 3, 2, 0)
    t = M.excess_over_optimum(G.exact_denoiser(prior, (1.0,)), prior, [1.0], (1.0, 2.0), n=2000)
    assert t["excess"].iloc[0] > 4 * t["excess s.e."].iloc[0]
    with pytest.raises(ValueError, match="sigmas"):
        M.excess_over_optimum(G.exact_denoiser(prior), prior, [0.0], n=10)
    with pytest.raises(ValueError, match="n must be"):
        M.excess_over_optimum(G.exact_denoiser(prior), prior, [1.0], n=1)
    with pytest.raises(ValueError, match="scales"):
        M.excess_over_optimum(G.exact_denoiser(prior), prior, [1.0], (0.0, 2.0), n=10)


def test_long_study_tables_at_tiny_size(tmp_path, monkeypatch):
    """The long profile's path (nets, paired comparison, excess, adequacy, control) tiny."""
    monkeypatch.setenv("GMDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GMDIFF_TRAIN_WORKERS", "1")
    sizes = {
        "net": {
            "width": 8,
            "depth": 1,
            "steps": 8,
            "batch": 8,
            "lr": 1e-3,
            "ema_rampup": 0.05,
            "sigma_data": 0.3,
        },
        "gmm": {"k": 2, "rank": 1},
        "dims": [3],
        "iterations": [4],
        "n": 24,
        "excess": {"sigmas": [0.1, 1.0], "n": 16},
        "control": {"dims": [3], "longer": 2},
    }
    t = M.long_study(sizes, [0, 1])
    assert set(t["samples"]["model"]) == {"SGM", "GM-SGM"} and len(t["samples"]) == 2 * 2
    row = t["comparison"].iloc[0]
    assert (
        row["comparison"] == "GM-SGM - SGM"
        and row["seeds"] == 2
        and row["direction"] in ("better", "worse", "tied")
    )
    assert len(t["excess"]) == 2 * 2 * 2 and t["excess"]["excess / optimum"].notna().all()
    assert (t["adequacy"]["ema_init_share"] == 0).all() and len(t["adequacy"]) == 4 + 2
    assert sorted(set(t["control"]["steps"])) == [8, 16] and len(t["control_excess"]) == 2 * 2 * 2
    assert t["floors"]["floor"].gt(0).all()


def test_excess_summary_and_ranges_read_the_seed_means():
    rows = [
        {"D": 3, "model": m, "seed": s, "sigma": sig, "excess / optimum": v}
        for m, base in [("SGM", 1.0), ("GM-SGM", 10.0)]
        for s in (0, 1)
        for sig, v in [(0.1, base * (5 + s)), (1.0, base * (1 + s))]
    ]
    t = pd.DataFrame(rows)
    summary = M.excess_summary(t)
    # at the seed range's noise level: half-width 0.5 -> one decimal; 5 -> units
    assert summary.loc[(3, "SGM"), 1.0] == "1.5 [1.0, 2.0]"
    assert summary.loc[(3, "GM-SGM"), 0.1] == "55 [50, 60]"
    assert stats.too_fine(" ".join(summary.to_numpy().ravel())) == []
    one = M.excess_summary(t[t["seed"] == 0])
    assert one.loc[(3, "SGM"), 1.0] == "1"
    r = M.excess_ranges(t)
    assert r == {
        "large_sgm": "1.5 to 1.5",
        "large_gmsgm": "15 to 15",
        "small_sgm": "5.5 to 5.5",
        "small_gmsgm": "55 to 55",
    }
    t.loc[t["model"] == "GM-SGM", "excess / optimum"] *= 20  # 300 to 1,100: no exponent
    assert M.excess_ranges(t)["small_gmsgm"] == "1100 to 1100"


def test_control_summary_is_gm_sgm_minus_sgm_per_budget():
    t = pd.DataFrame(
        [
            {"D": 7, "steps": st, "iterations": it, "model": m, "relative FD": v}
            for st, off in [(10, 0.0), (20, -0.5)]
            for it in (5, 9)
            for m, v in [("SGM", 1.0 + off), ("GM-SGM", 3.0 + it + off)]
        ]
    )
    s = M.control_summary(t)
    assert s.loc[(7, 10), ("GM-SGM - SGM", 5)] == pytest.approx(7.0)
    assert s.loc[(7, 20), ("GM-SGM - SGM", 9)] == pytest.approx(11.0)
    assert s.loc[(7, 20), ("SGM", 5)] == pytest.approx(0.5)
