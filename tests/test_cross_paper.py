"""The cross-paper benchmark (gmdiff.papers.cross_paper, CLAIMS X-1 / X-2): budgets, metrics against
exact answers, the paired comparisons, and one end-to-end run at tiny size."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from scipy import stats

from gmdiff.papers import cross_paper as B
from gmdiff.papers.gm_sgm import exact_denoiser
from gmdiff.samplers import heun_nfe
from gmdiff.schedules import VE, DiscreteVP

RING = {"name": "ring", "k": 8, "radius": 2.0, "std": 0.1}


def _run(schedule):
    return SimpleNamespace(schedule=schedule)


@pytest.mark.parametrize("nfe", [5, 10, 20, 50])
def test_every_sampler_spends_at_most_its_budget(nfe):
    vp = _run(DiscreteVP.linear(50, 2e-3, 0.4))
    ve = _run(VE(sigma_min=0.01, sigma_max=10.0))
    for method in B.METHODS:
        run = vp if method in B.VP_METHODS else ve
        for sampler in B.SAMPLERS_OF:
            p = B.plan(method, sampler, nfe, run, teleport_sigma=2.0)
            if p is None:
                continue
            assert p[3] <= nfe, (method, sampler, p)
    assert B.plan("GM-DDPM", "ancestral", 20, vp, 2.0) is None  # Alg. 2 takes all T steps
    assert B.plan("GM-DDPM", "ancestral", 50, vp, 2.0)[3] == 50
    assert B.plan("SGM", "DDIM", 20, ve, 2.0) is None
    # teleportation spends Heun's budget on the levels below sigma = 2: more of them there
    heun = B.plan("SGM", "Heun", nfe, ve, 2.0)
    tele = B.plan("SGM", "Heun + teleport", nfe, ve, 2.0)
    if heun is not None:
        steps, skip = tele[1], tele[2]["skip"]
        assert tele[3] == heun_nfe(steps, skip) == heun[3]
        below = B.edm_of(ve.schedule).sigma_steps(steps)[skip]
        assert float(below) <= 2.0 and skip > 0


def test_sample_scores_are_exact_for_exact_samples_and_see_planted_errors():
    prior = B.dataset(RING)[1]
    g = torch.Generator().manual_seed(0)
    ref, x = prior.sample(4000, g), prior.sample(4000, g)
    exact = B.sample_scores(x, prior, ref, 0)
    assert exact["modes"] == 8 and abs(exact["width"] - 1) < 0.05
    blurred = B.sample_scores(
        x + 0.2 * torch.randn(x.shape, generator=g, dtype=x.dtype), prior, ref, 0
    )
    assert blurred["width"] > 1.5 and blurred["SW2"] > exact["SW2"]
    collapsed = prior.means[torch.arange(4000) % 6]  # two modes dropped, no width at all
    bad = B.sample_scores(collapsed, prior, ref, 0)
    assert bad["modes"] == 6 and bad["width"] < 0.01
    assert B.sample_scores(torch.full((10, 2), float("nan")), prior, ref, 0)["SW2"] == float("inf")


def _fake_trained(denoisers, prior):
    vp = DiscreteVP.linear(50, 2e-3, 0.4)
    ve = VE(sigma_min=0.01, sigma_max=10.0)
    out = {}
    for method, den in denoisers.items():
        sched = vp if method in B.VP_METHODS else ve
        out[(method, "ring", 0)] = SimpleNamespace(denoiser=den, schedule=sched)
    return out


def test_denoiser_errors_are_zero_for_the_exact_optimum_and_see_a_planted_error():
    prior = B.dataset(RING)[1]

    def exact(x, sigma):
        return prior.denoiser(x.double(), sigma.double()).float()

    def wrong(x, sigma):  # the right denoiser at a 10 % larger noise level
        return prior.denoiser(x.double(), 1.1 * sigma.double()).float()

    gm = exact_denoiser(prior, (1.0, 2.0))
    trained = _fake_trained(
        {"DDPM": exact, "SGM": wrong, "GM-SGM": lambda x, s: gm(x, s.double()).float()}, prior
    )
    err = B.denoiser_errors(trained, {"ring": RING}, [3, 5, 10], 2000).set_index(["method", "t"])
    assert err.loc["DDPM", "excess"].abs().max() < 1e-5
    assert err.loc["SGM", "excess"].min() > 2e-3  # 10 % off in sigma: 4e-3 to 6e-3
    assert err.loc["GM-SGM", "excess"].abs().max() < 1e-5  # its own optimum on its own noise
    assert err.loc["GM-SGM", "vs Gaussian-path D*"].min() > 0.01  # not the Gaussian path's
    with pytest.raises(ValueError, match="trained range"):
        B.denoiser_errors(trained, {"ring": RING}, [50], 100)


def test_paired_differences_use_a_t_interval_over_seeds():
    rows = []
    for s, (a, b) in enumerate([(1.0, 2.0), (1.5, 3.5), (0.5, 3.5)]):  # differences -1, -2, -3
        for method, value in (("SMD", a), ("DDPM", b)):
            rows.append({"data": "ring", "NFE budget": 10, "seed": s, "method": method,
                         "sampler": "ancestral", "SW2": value})  # fmt: skip
    out = B.paired(pd.DataFrame(rows), "SW2", [B.IDEAS[0]]).iloc[0]
    half = stats.t.ppf(0.975, 2) * 1.0 / 3**0.5
    assert out["difference"] == pytest.approx(-2.0)
    assert out["high"] == pytest.approx(-2.0 + half) and out["effect"] == "tied"
    rows[4]["SW2"] = 1.5  # differences -1, -2, -2: now the interval excludes 0
    assert B.paired(pd.DataFrame(rows), "SW2", [B.IDEAS[0]]).iloc[0]["effect"] == "better"
    with pytest.raises(ValueError, match="two seeds"):
        B.t_interval([1.0])


def test_the_benchmark_runs_end_to_end_at_tiny_size(tmp_path):
    """Every method trains through the harness (two worker processes), every sampler that
    fits the budget draws finite samples, and the step-cost table has every method."""
    budget = B.Budget(steps=4, batch=32, width=16, depth=1, T=10, ema_rampup=0.05)
    trained = B.train_all(B.METHODS, {"ring": RING}, budget, [0, 1], cache_dir=tmp_path)
    assert len(trained) == 10
    table = B.benchmark(trained, {"ring": RING}, [4, 10], 64)
    assert set(table["method"]) == set(B.METHODS)
    assert set(table["sampler"]) == set(B.SAMPLERS_OF)
    assert (table["SW2"] < float("inf")).all()
    ideas = B.paired(table, "SW2")
    assert set(ideas["effect"]) <= {"better", "worse", "tied"}
    cost = B.step_cost(B.METHODS, RING, budget, steps=2, repeats=1)
    assert list(cost.index) == list(B.METHODS) and cost.loc["DDPM", "ratio to DDPM"] == 1.0
    with pytest.raises(ValueError, match="method must be one of"):
        B.run_config("DDGM", RING, budget, 0)


def test_kernel_errors_match_the_exact_ddpm_kernel_for_an_exact_denoiser():
    """A DDPM 'network' that is the exact posterior mean has the KL of the best DDPM
    kernel computed exactly (up to Monte Carlo); a planted 50 % noise-level error is seen."""
    prior = B.dataset(RING)[1]

    def exact(x, sigma):
        return prior.denoiser(x.double(), sigma.double()).float()

    def wrong(x, sigma):
        return prior.denoiser(x.double(), 1.5 * sigma.double()).float()

    trained = _fake_trained({"DDPM": exact, "SMD": wrong}, prior)
    for run in trained.values():
        run.trained = torch.nn.Identity()  # no latent: one kernel mean per x_t
    k = B.kernel_errors(trained, {"ring": RING}, [3, 10], n_x=256, n_y=512, n_eta=2)
    k = k.set_index(["t", "kernel"])["KL"]
    for t in (3, 10):
        best = k[(t, "best DDPM kernel (exact)")]
        assert k[(t, "DDPM")] == pytest.approx(best, rel=0.1)  # measured: 3.5 % apart
        assert k[(t, "SMD")] > best + 0.01  # the planted error
        assert abs(k[(t, "best Gaussian (exact)")]) < 0.02 < best  # T = 50: q is nearly Gaussian
    with pytest.raises(ValueError, match="must be in 2..T"):
        B.kernel_errors(trained, {"ring": RING}, [1], n_x=8, n_y=8, n_eta=2)


def test_images_need_a_score_and_their_floor_is_real_digits():
    digits = {"8x8 digits": {"name": "digits8x8"}}
    with pytest.raises(ValueError, match="digits8x8"):
        B.dataset({"name": "digits8x8", "size": 16})
    images = B.data.digits8x8()[0]
    floor = B.floor_scores(digits, 50, [0], score=lambda x: {"mean": float(x.mean())})
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(3000))[:50]
    assert floor["mean"].iloc[0] == pytest.approx(float(images[pick].mean()))
    # teleportation on images uses the Gaussian of the digits' moments
    g = B.teleport_gaussian(digits["8x8 digits"])
    flat = images.flatten(1).double()
    assert float(g.eigenvalues.sum()) == pytest.approx(float(flat.var(0, unbiased=False).sum()))


def test_the_image_leg_runs_end_to_end_at_tiny_size(tmp_path):
    """The five methods build the digits U-Net (SMD and GM-DDPM around it) and train through
    the harness; every sampler draws images, scored by the given function."""
    digits = {"8x8 digits": {"name": "digits8x8"}}
    budget = B.Budget(steps=2, batch=4, channels=8, T=10, warmup=1, ema_rampup=0.05)
    trained = B.train_all(B.METHODS, digits, budget, [0], cache_dir=tmp_path)
    nets = {m: trained[(m, "8x8 digits", 0)].cfg.model.net for m in B.METHODS}
    assert nets == {"DDPM": "digits", "SMD": "smd_digits", "GM-DDPM": "gm_ddpm_digits",
                    "SGM": "digits", "GM-SGM": "digits"}  # fmt: skip
    with pytest.raises(ValueError, match="no exact distribution"):
        B.benchmark(trained, digits, [4], 8)
    table = B.benchmark(trained, digits, [4, 10], 8, score=lambda x: {"shape": tuple(x.shape)})
    assert set(table["sampler"]) == set(B.SAMPLERS_OF)
    assert (table["shape"] == (8, 1, 8, 8)).all()
    assert B.denoiser_errors(trained, digits, [1], 8).empty  # no exact denoiser for images


def test_kernel_difference_is_a_paired_t_interval_over_seeds():
    rows = []
    for s, (smd, ddpm) in enumerate([(1.0, 2.0), (1.5, 3.5), (0.5, 3.5)]):  # -1, -2, -3
        rows += [{"data": "ring", "t": 2, "seed": s, "kernel": "SMD", "KL": smd},
                 {"data": "ring", "t": 2, "seed": s, "kernel": "DDPM", "KL": ddpm}]  # fmt: skip
    out = B.kernel_difference(pd.DataFrame(rows)).iloc[0]
    half = stats.t.ppf(0.975, 2) * 1.0 / 3**0.5
    assert out["difference"] == pytest.approx(-2.0)
    assert (out["low"], out["high"]) == pytest.approx((-2.0 - half, -2.0 + half))
