"""GS-6 ... GS-11 library pieces (gmdiff.papers.gs_networks), checked with exact models in
the role of the network, where every answer is known independently."""

import math

import pandas as pd
import pytest
import torch

from gmdiff.analytic import DeltaMixture, Gaussian, GaussianMixture
from gmdiff.data import low_rank_gmm
from gmdiff.nets import EDMPrecond
from gmdiff.nets.mlp import MLP, MLPConfig
from gmdiff.papers import gs_networks as gn
from gmdiff.schedules import EDM

f64 = torch.float64


def toy_gaussian(lams, D=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(D, len(lams), dtype=f64, generator=gen))
    return Gaussian(torch.randn(D, dtype=f64, generator=gen), U, torch.tensor(lams, dtype=f64))


def blobs(sizes=(30, 60, 90), D=5, sep=20.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = sep * torch.eye(len(sizes), D, dtype=f64)
    x = torch.cat([c + torch.randn(n, D, dtype=f64, generator=gen) for c, n in zip(centres, sizes)])
    labels = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    return x, labels


# -- the network wrapper --------------------------------------------------------------------


def test_network_score_of_an_image_denoiser_is_tweedie_score():
    gmm = low_rank_gmm(12, 3, 2, torch.Generator().manual_seed(1))
    net = lambda x, s: gmm.denoiser(x.flatten(1), s).reshape(x.shape)
    ns = gn.NetworkScore(net, (3, 2, 2), batch_size=5)
    q = 2 * torch.randn(13, 12, dtype=f64, generator=torch.Generator().manual_seed(2))
    for sigma in [0.3, torch.full((13,), 4.0, dtype=f64)]:
        # Eq. 7's score against the network's denoiser through Tweedie, batched in 5s
        torch.testing.assert_close(ns.score(q, sigma), gmm.score(q, sigma), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        ns.score(q[:, :5], 1.0)
    with pytest.raises(ValueError, match="shape"):
        gn.NetworkScore(net, ())


def test_network_score_runs_a_float32_network_and_returns_float64():
    torch.manual_seed(0)
    net = EDMPrecond(MLP(MLPConfig(dim=4, width=16, depth=1, embedding="fourier"))).eval()
    ns = gn.NetworkScore(net, (4,))
    x = torch.randn(6, 4, dtype=f64, generator=torch.Generator().manual_seed(3))
    out = ns.denoiser(x, 0.7)
    assert out.dtype == f64
    ref = net(x.float(), torch.full((6,), 0.7)).double()
    torch.testing.assert_close(out, ref)


# -- idealised models -----------------------------------------------------------------------


def test_kmeans_gmm_is_eq41_on_separated_clusters():
    x, labels = blobs()
    gmm = gn.kmeans_gmm(x, 3, seed=0)
    ref = GaussianMixture.fit(x, labels)  # per-label weights, means, covariances
    order = torch.cdist(ref.means, gmm.means).argmin(1)  # cluster ids are arbitrary
    torch.testing.assert_close(
        gmm.log_weights.exp()[order], torch.tensor([1 / 6, 1 / 3, 1 / 2], dtype=f64)
    )
    torch.testing.assert_close(gmm.means[order], ref.means)
    q = x[::7] + 0.5
    torch.testing.assert_close(gmm.score(q, 0.8), ref.score(q, 0.8))
    # k = 1: one Gaussian with the empirical mean and (N-1)-normalised covariance
    one = gn.kmeans_gmm(x, 1)
    g = Gaussian.from_cov(x.mean(0), torch.cov(x.T))
    torch.testing.assert_close(one.score(q, 0.8), g.score(q, 0.8))
    with pytest.raises(ValueError, match="k must be"):
        gn.kmeans_gmm(x, 0)


def test_truncate_rank_equals_fitting_at_that_rank():
    x, labels = blobs(D=6)
    full = GaussianMixture.fit(x, labels)
    q = x[::5] + 0.3
    for r in [0, 2, 6]:
        torch.testing.assert_close(
            gn.truncate_rank(full, r).score(q, 0.5),
            GaussianMixture.fit(x, labels, rank=r).score(q, 0.5),
        )
    with pytest.raises(ValueError, match="rank"):
        gn.truncate_rank(full, 7)


def test_gmm_moments_against_monte_carlo():
    gen = torch.Generator().manual_seed(4)
    gmm = low_rank_gmm(6, 3, 2, gen, mean_scale=2.0)
    g = gn.gmm_moments(gmm)
    s = gmm.sample(400_000, gen)
    # Monte Carlo standard errors here are below 0.01; a wrong formula misses by O(1)
    assert (g.mean - s.mean(0)).abs().max() < 0.03
    cov = g.basis @ torch.diag(g.eigenvalues) @ g.basis.T
    assert (cov - torch.cov(s.T)).abs().max() < 0.05


def test_idealised_models_names_and_types():
    x, labels = blobs()
    m = gn.idealised_models(x, labels, kmeans_ks=(2,))
    assert list(m) == [
        "isotropic",
        "Gaussian",
        "GMM per class (3)",
        "GMM k-means 2",
        "delta (training set)",
    ]
    assert isinstance(m["delta (training set)"], DeltaMixture)


# -- GS-6 -----------------------------------------------------------------------------------


def test_score_fuv_table_is_eq28_on_shared_queries():
    g = toy_gaussian([9.0, 4.0, 1.0])
    iso = Gaussian.isotropic(g.mean)
    x = g.sample(50, torch.Generator().manual_seed(5))
    sigmas = [0.1, 1.0, 100.0]
    t = gn.score_fuv_table(g, {"same": g, "iso": iso}, x, sigmas, n=64, seed=7)
    assert (t[t.model == "same"]["FUV"] == 0).all()
    # independent: regenerate the first sigma's queries, N(0, sigma^2 I) (Sec. 4.2)
    q = 0.1 * torch.randn(64, 8, dtype=f64, generator=torch.Generator().manual_seed(7))
    s = g.score(q, 0.1)
    manual = (((iso.score(q, 0.1) - s) ** 2).sum(1) / (s**2).sum(1)).mean()
    assert t.query("model == 'iso' and sigma == 0.1")["FUV"].item() == pytest.approx(
        float(manual), rel=1e-12
    )
    fuv_iso = t[t.model == "iso"].set_index("sigma")["FUV"]
    assert fuv_iso[100.0] < 1e-4  # covariance matters only at low noise
    assert fuv_iso[0.1] > 0.1
    with pytest.raises(ValueError, match="query"):
        gn.score_fuv_table(g, {"iso": iso}, x, sigmas, n=4, seed=0, query="bad")
    with pytest.raises(ValueError, match="sigmas"):
        gn.score_fuv_table(g, {"iso": iso}, x, [0.0], n=4, seed=0)


def test_data_queries_sit_around_the_data():
    x = 5 + torch.zeros(10, 3, dtype=f64)
    q = gn.query_points("data", x, 0.01, 200, torch.Generator().manual_seed(0))
    assert (q - 5).abs().max() < 0.06
    q = gn.query_points("noise", x, 2.0, 4000, torch.Generator().manual_seed(0))
    assert abs(q.std().item() - 2.0) < 0.05 and q.mean().abs() < 0.05


def test_explained_threshold():
    t = pd.DataFrame(
        {"sigma": [0.1, 1.0, 2.0, 10.0], "model": "G", "FUV": [0.5, 0.001, 0.02, 0.001]}
    )
    assert gn.explained_threshold(t, "G") == 10.0  # 2.0 fails, so only sigma >= 10 passes
    t.loc[2, "FUV"] = 0.005
    assert gn.explained_threshold(t, "G") == 1.0
    t.loc[3, "FUV"] = 0.5
    assert math.isnan(gn.explained_threshold(t, "G"))
    with pytest.raises(ValueError, match="not in the table"):
        gn.explained_threshold(t, "H")


# -- GS-7 / GS-8 ----------------------------------------------------------------------------


def test_heun_on_a_gaussian_follows_the_closed_form():
    g = toy_gaussian([9.0, 1.0, 0.1])
    x_T = 80 * torch.randn(16, 8, dtype=f64, generator=torch.Generator().manual_seed(6))
    tr = gn.heun_trajectory(g.denoiser, x_T, steps=64)
    torch.testing.assert_close(tr.sigma, EDM().sigma_steps(64))
    assert torch.equal(tr.states[0], x_T) and tr.states.shape == (65, 16, 8)
    ref = gn.gaussian_trajectory(g, x_T, tr.sigma)
    # Heun is 2nd order: relative state error < 5e-3 at 64 steps, ~4x smaller at 128
    rel = (tr.states - ref.states).norm(dim=-1) / ref.states.norm(dim=-1)
    tr2 = gn.heun_trajectory(g.denoiser, x_T, steps=128)
    ref2 = gn.gaussian_trajectory(g, x_T, tr2.sigma)
    rel2 = (tr2.states - ref2.states).norm(dim=-1) / ref2.states.norm(dim=-1)
    assert rel.max() < 5e-3 and rel.max() / rel2.max() > 3.5
    torch.testing.assert_close(tr.denoised, ref.denoised, atol=1e-2, rtol=0)
    dev = gn.trajectory_deviation(ref, {"Heun": tr, "itself": ref})
    assert (dev[dev.model == "itself"]["MSE"] == 0).all()
    assert set(dev.quantity) == {"x_t", "D"}
    with pytest.raises(ValueError, match="grid"):
        gn.trajectory_deviation(ref, {"short": gn.heun_trajectory(g.denoiser, x_T, steps=8)})


def test_a_mixture_trajectory_leaves_the_gaussian_one_late():
    # two far-apart modes: the early (high-noise) flow is the moment-matched Gaussian's,
    # the late flow picks a mode (Secs. 4.1, 4.3)
    D = 4
    means = torch.zeros(2, D, dtype=f64)
    means[0, 0], means[1, 0] = -3.0, 3.0
    gmm = GaussianMixture(
        means,
        torch.eye(D, 1, dtype=f64).expand(2, D, 1).clone(),
        torch.full((2, 1), 0.1, dtype=f64),
        torch.zeros(2, dtype=f64),
    )
    x_T = 80 * torch.randn(32, D, dtype=f64, generator=torch.Generator().manual_seed(8))
    tr = gn.heun_trajectory(gmm.denoiser, x_T, steps=40)
    gauss = gn.gaussian_trajectory(gn.gmm_moments(gmm), x_T, tr.sigma)
    div = gn.divergence_points(gn.trajectory_deviation(tr, {"Gaussian": gauss}), threshold=0.01)
    step = div["diverges at step"].item()
    assert 0 < step < 40 and 0.3 < div["sigma there"].item() < 20
    assert div["final MSE"].item() > 0.1


def test_divergence_points_on_a_table():
    dev = pd.DataFrame(
        {
            "step": [0, 1, 2, 0, 1, 2],
            "sigma": [4.0, 2, 0] * 2,
            "model": list("aaabbb"),
            "quantity": "x_t",
            "MSE": [0.0, 0.02, 0.5, 0.0, 0.001, 0.002],
        }
    )
    d = gn.divergence_points(dev).set_index("model")
    assert d.loc["a", "diverges at step"] == 1 and d.loc["a", "sigma there"] == 2.0
    assert d.loc["b", "diverges at step"] == -1 and math.isnan(d.loc["b", "sigma there"])


def test_sample_distances_and_paired_closeness():
    gen = torch.Generator().manual_seed(9)
    a = torch.randn(200, 16, dtype=f64, generator=gen)
    s = {
        "net": a,
        "near": a + 0.1 * torch.randn(200, 16, dtype=f64, generator=gen),
        "far": a + 0.5 * torch.randn(200, 16, dtype=f64, generator=gen),
    }
    t = gn.sample_distance_table(s, "net", seed=0).set_index("model")
    assert t.loc["near", "MSE same x_T"] == pytest.approx(0.01, rel=0.1)
    assert t.loc["far", "MSE same x_T"] == pytest.approx(0.25, rel=0.1)
    assert t.loc["near", "MSE random pairing"] == pytest.approx(2.01, rel=0.1)  # 2 var + 0.01
    c = gn.paired_closeness(s, "net", "near", "far")
    assert c["share closer"] == 1.0 and c["Wilcoxon p"] < 1e-10
    # Wilson interval at share 1 of n = 200: [n / (n + z^2), 1]; the mean difference is 0.25 - 0.01
    assert c["share CI"][0] == pytest.approx(200 / (200 + 1.959964**2), rel=1e-6)
    assert c["share CI"][1] == pytest.approx(1.0)
    lo, hi = c["difference CI"]
    assert lo < c["mean difference"] < hi and lo < 0.24 < hi and hi - lo < 0.05
    # the share interval covers a fair coin's share in about 95% of 400 independent draws
    covered = 0
    for _ in range(400):
        coin = {"net": torch.zeros(60, 1), "x": torch.randn(60, 1, generator=gen), "y": torch.randn(60, 1, generator=gen)}
        ci = gn.paired_closeness(coin, "net", "x", "y")["share CI"]
        covered += ci[0] <= 0.5 <= ci[1]
    assert 0.91 <= covered / 400 <= 0.99
    with pytest.raises(ValueError, match="reference"):
        gn.sample_distance_table(s, "nope", seed=0)


# -- GS-9 -----------------------------------------------------------------------------------


def test_gmm_sweep_finds_the_networks_own_mixture():
    x, _ = blobs(sizes=(40, 40), D=4, sep=6.0)
    network = gn.kmeans_gmm(x, 2, seed=0)  # the "network" is exactly the 2-mode fit
    sweep = gn.gmm_sweep(network, x, ks=[1, 2, 8], ranks=[1, 4], sigmas=[0.5, 50.0], n=32, seed=0)
    own = sweep.query("modes == 2 and rank == 4")
    assert (own["FUV"] == 0).all()
    delta = sweep[sweep.modes == 80]
    assert len(delta) == 4 and delta.groupby("sigma")["FUV"].nunique().eq(1).all()
    best = gn.best_modes(sweep).set_index("sigma")
    assert (best["best modes"] == 2).all() and best["U-shaped"].all()
    with pytest.raises(ValueError, match="ranks"):
        gn.gmm_sweep(network, x, ks=[1], ranks=[5], sigmas=[1.0], n=4, seed=0)


def test_minimal_rank_rule():
    sweep = pd.DataFrame(
        {"sigma": 1.0, "modes": 1, "rank": [1, 2, 4, 8], "FUV": [1.0, 0.5, 0.105, 0.1]}
    )
    assert gn.minimal_rank(sweep)["minimal rank"].item() == 4  # 0.105 <= 1.1 * 0.1
    assert gn.minimal_rank(sweep, tol=0.01)["minimal rank"].item() == 8


# -- GS-10 ----------------------------------------------------------------------------------


def test_plane_through_three_points_and_projected_field():
    gen = torch.Generator().manual_seed(10)
    p = torch.randn(3, 10, dtype=f64, generator=gen)
    plane = gn.plane_through(p)
    torch.testing.assert_close(plane.basis.T @ plane.basis, torch.eye(2, dtype=f64))
    torch.testing.assert_close(plane.embed(plane.anchors), p)  # the points lie in the plane
    iso = Gaussian.isotropic(p[0])
    f = gn.plane_field(iso, plane, sigma=0.5, n=5)
    vv, uu = torch.meshgrid(f["v"], f["u"], indexing="ij")
    a = plane.anchors[0]  # score (mu - x)/sigma^2 lies in the plane when mu does (Eq. 29)
    torch.testing.assert_close(f["su"], (a[0] - uu) / 0.25)
    torch.testing.assert_close(f["sv"], (a[1] - vv) / 0.25)
    assert f["u"].min() < plane.anchors[:, 0].min() and f["v"].max() > plane.anchors[:, 1].max()
    with pytest.raises(ValueError, match="collinear"):
        gn.plane_through(torch.stack([p[0], 2 * p[0], 3 * p[0]]))
    with pytest.raises(ValueError, match="shape"):
        gn.plane_through(p[:2])


# -- GS-11 ----------------------------------------------------------------------------------


def test_training_curves_use_the_same_queries_for_every_step():
    g = toy_gaussian([4.0, 1.0])
    x = g.sample(40, torch.Generator().manual_seed(11))
    snaps = {0: Gaussian.isotropic(g.mean), 50: g, 100: DeltaMixture(x)}
    curves = gn.training_curves(
        snaps, {"Gaussian": g, "delta": DeltaMixture(x)}, x, [0.3, 3.0], n=16, seed=1
    )
    assert len(curves) == 3 * 2 * 2
    order = gn.learning_order(curves).set_index(["sigma", "model"])
    assert (order.xs("Gaussian", level="model")["closest at step"] == 50).all()
    assert (order.xs("delta", level="model")["closest at step"] == 100).all()
    assert (order.xs("Gaussian", level="model")["final / closest"] == math.inf).all()
    with pytest.raises(ValueError, match="snapshots"):
        gn.training_curves({}, {"Gaussian": g}, x, [1.0], n=4, seed=0)


# -- across seeds: prose from per-seed tables ------------------------------------------------


def test_closeness_row_flattens_the_intervals():
    close = {
        "share closer": 0.6,
        "share CI": (0.51, 0.68),
        "mean difference": 0.05,
        "difference CI": (0.03, 0.07),
        "Wilcoxon p": 1e-4,
    }
    row = gn.closeness_row(close)
    assert row["share CI low"] == 0.51 and row["share CI high"] == 0.68
    assert (row["difference CI low"], row["difference CI high"]) == (0.03, 0.07)
    assert row["mean difference"] == 0.05 and row["Wilcoxon p"] == 1e-4


def test_span_collapses_equal_ends_and_refuses_empty():
    assert gn.span([0.481, 0.753, 0.45], "{:.0%}") == "45%-75%"
    assert gn.span([20, 10, 20]) == "10-20"
    assert gn.span([64.0, 64.0]) == "64"
    assert gn.span([1797 / 20, 1797 / 10], "{:.0f}") == "90-180"
    with pytest.raises(ValueError):
        gn.span([])
    with pytest.raises(ValueError):
        gn.span([1.0, float("nan")])


def test_sci_span_shares_the_power_of_the_largest_value():
    assert gn.sci_span([0.00182, 0.0026, 0.0021]) == "1.8-2.6 × 10⁻³"
    assert gn.sci_span([0.00094, 0.0026]) == "0.9-2.6 × 10⁻³"
    assert gn.sci_span([0.0102]) == "1.0 × 10⁻²"
    assert gn.sci_span([0.003, 0.0023]) == "2.3-3.0 × 10⁻³"
    assert gn.sci_span([3.0, 4.5]) == "3.0-4.5"
    assert gn.sci_span([120.0, 250.0], digits=3) == "1.20-2.50 × 10²"
    with pytest.raises(ValueError):
        gn.sci_span([1.0], digits=0)


def test_seed_words_groups_equal_values():
    assert gn.seed_words({0: 20, 1: 10, 2: 10}) == "20 for seed 0 and 10 for seeds 1 and 2"
    assert gn.seed_words({0: 20, 1: 20, 2: 20}) == "20 for every seed"
    assert gn.seed_words({0: 5, 1: 10, 2: 5}) == "5 for seeds 0 and 2 and 10 for seed 1"
    assert gn.seed_words({0: 1, 1: 2, 2: 3}) == "1 for seed 0, 2 for seed 1 and 3 for seed 2"
    assert gn.seed_words({1: 10}) == "10 for seed 1"
    with pytest.raises(ValueError):
        gn.seed_words({})
