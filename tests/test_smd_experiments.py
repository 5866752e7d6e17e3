"""gmdiff.papers.smd: the reverse kernels of trained DDPM / SMD networks and their KL from
the exact posterior of Prop. 3.1 (SMD paper), checked on exact models with planted errors,
the DDPM / SMD run configs, and the image chapter's quality table on both of its paths
(FD-digits on the digits; the CIFAR-10 path end to end at a tiny size)."""

import math
from functools import partial

import pytest
import torch
from test_data import fake_cifar
from torch import nn

from gmdiff import config, data, metrics, runs
from gmdiff.analytic import forward_marginal, posterior_kl, reverse_posterior
from gmdiff.digit_classifier import DigitClassifier
from gmdiff.papers import smd
from gmdiff.schedules import DiscreteVP
from gmdiff.study import Study

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def setting(t: int = 3):
    gmm, sch = data.ring2d(8, 2.0, 0.1), DiscreteVP.cosine(5)
    x_t = forward_marginal(gmm, sch, t).sample(16, gen(1))
    return gmm, sch, x_t, reverse_posterior(gmm, sch, t, x_t)


def test_kernel_means_of_the_exact_denoiser_are_the_posterior_mean():
    """One ancestral step with the exact GMM denoiser (Gaussian score paper, Eq. 7) has the
    mean of Prop. 3.1's mixture and DDPM's beta-tilde; a planted one-step slip is caught."""
    gmm, sch, x_t, post = setting()
    means, var = smd.kernel_means(gmm, gmm.denoiser, sch, 3, x_t, 2, gen(), dtype=F64)
    assert means.shape == (2, 16, 2)
    assert float((means - post.mean()).abs().max()) < 1e-10
    ab = sch.alpha_bar
    assert abs(var - float((1 - ab[3] / ab[2]) * (1 - ab[2]) / (1 - ab[3]))) < 1e-12
    slip, _ = smd.kernel_means(gmm, gmm.denoiser, sch, 4, x_t, 1, gen(), dtype=F64)
    assert float((slip[0] - post.mean()).abs().max()) > 1e-2
    with pytest.raises(ValueError, match="t = 1 is deterministic"):
        smd.kernel_means(gmm, gmm.denoiser, sch, 1, x_t, 1, gen(), dtype=F64)


def test_kernel_kl_of_the_best_ddpm_kernel_matches_posterior_kl():
    """K = 1, mean = posterior mean: kernel_kl is posterior_kl with sigma_t fixed (two
    independent Monte Carlo estimates agree within 5 standard errors)."""
    gmm, sch, x_t, post = setting()
    means, var = smd.kernel_means(gmm, gmm.denoiser, sch, 3, x_t, 1, gen(), dtype=F64)
    got, se = smd.kernel_kl(post, means, var, gen(2), n=4000)
    ref, se_ref = posterior_kl(gmm, sch, 3, x_t, generator=gen(3), n=4000, variance=var)
    assert torch.all((got - ref).abs() < 5 * torch.sqrt(se**2 + se_ref**2) + 1e-9)
    assert float(got.mean()) > 0.05  # the posterior is not Gaussian here


def test_kernel_kl_of_a_mixture_kernel_equal_to_the_posterior_is_zero():
    """A 'soft mixture' whose K draws are the exact components (drawn by their weights) with
    the exact component covariance has KL ~ 0; planted: variance x 2, or the component
    means moved by one posterior std, give KL far above the Monte Carlo error."""
    *_, post = setting()
    c = float(post.covs[0, 0, 0])  # isotropic data: Sigma'_k = c I for every k
    assert torch.allclose(post.covs, c * torch.eye(2, dtype=F64).expand(8, 2, 2))
    K = 4000
    k = torch.multinomial(post.weights, K, replacement=True, generator=gen(4)).T  # (K, B)
    means = post.means[torch.arange(16)[None], k]  # (K, B, 2)
    kl, se = smd.kernel_kl(post, means, c, gen(5), n=400)
    assert float(kl.abs().max()) < 0.03 and float(se.max()) < 0.015, (kl, se)
    planted_var, _ = smd.kernel_kl(post, means, 2.0 * c, gen(5), n=400)
    planted_mean, _ = smd.kernel_kl(post, means + math.sqrt(c), c, gen(5), n=400)
    assert float(planted_var.mean()) > 0.08 and float(planted_mean.min()) > 0.3


def test_spreads():
    """between_spread = tr Cov - sum_k w'_k tr Sigma'_k; eta_spread = 0 for equal draws."""
    *_, post = setting()
    within = (post.weights * torch.diagonal(post.covs, dim1=-2, dim2=-1).sum(-1)).sum(-1)
    tr = torch.diagonal(post.cov(), dim1=-2, dim2=-1).sum(-1)
    assert torch.allclose(smd.between_spread(post), tr - within, atol=1e-12)
    m = post.mean()[None].expand(3, 16, 2)
    assert float(smd.eta_spread(m).abs().max()) == 0.0
    shifted = m + torch.tensor([-1.0, 0.0, 1.0], dtype=F64)[:, None, None]
    assert torch.allclose(smd.eta_spread(shifted), torch.full((16,), 2.0, dtype=F64))


def test_run_configs_share_the_base_network():
    smd_cfg = smd.run_config("smd", T=3, steps=7, batch_size=8, seed=2, n_eta=4, reduction="min")
    ddpm_cfg = smd.run_config("ddpm", T=3, steps=7, batch_size=8, seed=2)
    assert smd_cfg.loss.options == {"n_eta": 4, "reduction": "min"}
    assert ddpm_cfg.loss.name == "eps" and ddpm_cfg.model.net == "toy_mlp"
    s_net, d_net = runs.build(smd_cfg).trained, runs.build(ddpm_cfg).trained
    assert s_net.net.config == d_net.config  # the DDPM row is SMD's base network
    assert config.sha(smd_cfg) != config.sha(ddpm_cfg)
    assert runs.schedule_of(smd_cfg).T == 3 and smd_cfg.train.seed == 2
    with pytest.raises(ValueError, match="kind"):
        smd.run_config("edm")


def test_trained_run_is_cached_and_sampled(tmp_path):
    """Two Trainer steps, then a second call loads the checkpoint without training."""
    cfg = smd.run_config("smd", T=3, steps=2, batch_size=16)
    run, _ = runs.load_or_train(cfg, "smd", cache_dir=tmp_path)
    net, den, sch = run.trained, run.denoiser, run.schedule
    (run_dir,) = (tmp_path / "runs").iterdir()
    mtime = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    net2 = runs.load_or_train(cfg, "smd", cache_dir=tmp_path)[0].trained
    assert (run_dir / "checkpoint.pt").stat().st_mtime_ns == mtime
    for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = smd.sample_run(net, den, sch, (2,), n=5, steps=3, seed=1)
    y = smd.sample_run(net, den, sch, (2,), n=5, steps=3, seed=1)
    assert x.shape == (5, 2) and torch.equal(x, y) and torch.isfinite(x).all()


def test_digits_run_configs_share_the_unet():
    """configs/smd_digits.yaml: the DDPM row is the `digits` U-Net that SMD modulates."""
    smd_cfg = smd.run_config("smd", base="configs/smd_digits.yaml")
    ddpm_cfg = smd.run_config("ddpm", base="configs/smd_digits.yaml")
    s_net, d_net = runs.build(smd_cfg).trained, runs.build(ddpm_cfg).trained
    assert s_net.net.config == d_net.config and ddpm_cfg.model.net == "digits"
    assert runs.schedule_of(ddpm_cfg).T == 1000 and ddpm_cfg.loss.name == "eps"


def test_relative_config_paths_resolve_from_the_repository(tmp_path, monkeypatch):
    """nbval runs a chapter from notebooks/: configs/... is then read from the repo root."""
    monkeypatch.chdir(tmp_path)
    assert smd.run_config("smd", T=4).schedule.options["T"] == 4
    with pytest.raises(FileNotFoundError, match="not found"):
        smd.run_config("smd", base="configs/no_such_file.yaml")


def test_method_study_gives_one_row_per_number_for_every_table(tmp_path):
    """The chapter's study at a tiny size: every kernel, T and n_eta has its rows, the
    control's continuations are its own runs (the cache holds them beside the bank)."""
    cfg = {"Ts": [5], "steps": 4, "control_steps": 3, "batch": 16, "n_x": 4, "n_y": 4,
           "n_eta_eval": 3, "n_samples": 32, "n_etas_train": [1, 2]}  # fmt: skip
    ring = data.ring2d(8, 2.0, 0.1)
    out = smd.method_study(cfg, ring, seed=0, cache_dir=tmp_path)
    assert set(out["kl"]["kernel"]) >= set(smd.METHOD_KERNELS) and set(out["kl"]["t"]) == {
        2,
        3,
        4,
        5,
    }
    assert set(out["sw"]["model"]) >= set(smd.METHOD_KERNELS) and (out["sw"]["SW2"] > 0).all()
    assert list(out["n_eta"]["n_eta"]) == [1, 2]
    assert {"then SMD (Eq. 15)", "then SMD, min of 4 eta"} <= set(out["control"]["kernel"])
    assert len(out["adequacy"]) == 3 + 2 and (out["adequacy"]["steps"] == [4, 4, 4, 3, 3]).all()
    assert len(list(tmp_path.rglob("*-from-*"))) == 2


def test_step_seconds_times_every_n_eta_and_leaves_rng_and_threads_alone():
    cfg = smd.run_config("smd", T=3, batch_size=16)
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()
    secs = smd.step_seconds(cfg, [1, 4], steps=2, repeats=1)
    assert list(secs) == [1, 4] and all(0 < s < 10 for s in secs.values())
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), state)


# -- the image chapter (smd_tables): models and the quality table -------------------------

#: configs/smd_cifar10.yaml shrunk to seconds on a CPU: one 8-channel level, tiny SMD layers,
#: T = 20, two training steps (EDM's EMA ramp: the EMA holds no initialisation).
TINY_CIFAR = ["model.overrides.base.ch=8", "model.overrides.base.ch_mult=[1]",
              "model.overrides.base.num_res_blocks=1", "model.overrides.base.attn_resolutions=[]",
              "model.overrides.base.dropout=0.0", "model.overrides.latent_dim=4",
              "model.overrides.latent_width=8", "model.overrides.latent_depth=1",
              "model.overrides.latent_mult=[1]", "schedule.options.T=20", "train.steps=2",
              "train.batch_size=4", "train.warmup_steps=0", "train.ema_rampup=0.05",
              "train.log_every=1", "train.ckpt_every=0", "train.device=cpu"]  # fmt: skip
CIFAR_CONFIG = "configs/smd_cifar10.yaml"


class _Shrink(nn.Module):
    """D(x, sigma) = x / (1 + sigma^2): the exact denoiser of N(0, I) data."""

    def forward(self, x, sigma):
        return x / (1 + sigma.view(-1, *[1] * (x.ndim - 1)) ** 2)


def test_quality_table_in_the_classifier_space_is_fd_digits_exactly():
    """The ci path: quality_table with the digit classifier's features gives
    frechet_distance_digits of the same samples, bit for bit (reference statistics once)."""
    reference = data.digits8x8()[0][:300]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clf = DigitClassifier(width=8).eval()
    den, sch = _Shrink(), DiscreteVP.linear(20)
    grid = [("ddpm", 3), ("ddim", 2)]
    table = smd.quality_table({"exact": (den, den, sch)}, grid, reference,
                              partial(metrics.classifier_features, clf), n=40, seed=3)  # fmt: skip
    assert list(table.columns) == ["model", "sampler", "steps", "FD-digits"]
    for (sampler, steps), fd in zip(grid, table["FD-digits"], strict=True):
        x = smd.sample_run(den, den, sch, (1, 8, 8), 40, steps, sampler, seed=3)
        assert fd == metrics.frechet_distance_digits(x.clamp(-1, 1), reference, clf)
    assert table["FD-digits"].iloc[0] != table["FD-digits"].iloc[1]


def test_quality_table_refuses_non_finite_samples():
    class _Blowup(nn.Module):
        def forward(self, x, sigma):
            return x * float("nan")

    den = _Blowup()
    with pytest.raises(FloatingPointError, match="bad: the ddim sampler with 2 steps"):
        smd.quality_table({"bad": (den, den, DiscreteVP.linear(5))}, [("ddim", 2)],
                          torch.zeros(4, 1, 8, 8), lambda x: x.flatten(1), n=4, seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="n must be >= 2"):
        smd.quality_table({}, [], torch.zeros(4, 2), lambda x: x, n=1, seed=0)


def test_full_tables_path_runs_end_to_end_at_a_tiny_size(tmp_path, monkeypatch):
    """The full profile's path on the CPU: both models of configs/smd_cifar10.yaml (shrunk)
    train on CIFAR-format batches and are scored over a (sampler, steps) grid in batches,
    with a fixed random projection standing in for Inception's features."""
    monkeypatch.setenv("GMDIFF_TRAIN_WORKERS", "1")  # train in this process
    monkeypatch.setattr("gmdiff.metrics.inception_weights_dir", lambda *a: tmp_path)
    folder = fake_cifar(tmp_path)
    study = Study.open("smd_tables", "full", data_dir=folder.parent)  # the chapter's full study
    assert study["base"] == CIFAR_CONFIG and study.images.metric == "FID"
    bank = smd.train_table_models(study["base"], 0, overrides=[*study.images.overrides, *TINY_CIFAR],
                                  cache_dir=tmp_path / "cache")  # fmt: skip
    assert list(bank) == list(smd.TABLE_MODELS)
    assert {r.cfg.data.options["data_dir"] for r in bank.values()} == {str(folder.parent)}
    assert bank["DDPM"].cfg.loss.name == "eps" and bank["DDPM w/ SMD"].cfg.loss.name == "smd"
    assert all(r.shape == (3, 32, 32) and r.cfg.train.steps == 2 for r in bank.values())
    models = {label: (r.trained, r.denoiser, r.schedule) for label, r in bank.items()}
    reference = study.images.load()[0]
    projection = torch.randn(3 * 32 * 32, 6, generator=torch.Generator().manual_seed(0))
    calls = []

    def features(x):
        calls.append(len(x))
        return x.flatten(1) @ projection

    grid = [("ddpm", 3), ("ddim", 2)]
    table = smd.quality_table(models, grid, reference, features, n=11, seed=1, metric="FID",
                              batch=4, device="cpu")  # fmt: skip
    assert list(table.columns) == ["model", "sampler", "steps", "FID"]
    assert table.shape == (4, 4) and list(table["model"]) == [m for m in bank for _ in grid]
    assert [tuple(r) for r in table[["sampler", "steps"]].to_numpy()] == grid * 2
    assert torch.isfinite(torch.tensor(table["FID"].to_numpy())).all() and (table["FID"] > 0).all()
    assert calls == [40] + [11] * 4  # the reference's features once, then one per sample set
    # a row is the distance of sample_run's samples (the network on 4 rows at a time)
    net, den, sch = models["DDPM w/ SMD"]
    x = smd.sample_run(net, den, sch, (3, 32, 32), 11, 2, "ddim", seed=1, batch=4)
    want = metrics.frechet_distance_features(features(x.clamp(-1, 1)), features(reference))
    assert table["FID"].iloc[3] == pytest.approx(want, rel=1e-12)
