"""The ``full`` profiles of the chapters that train networks, walked end to end on the CPU
at a tiny size: the chapter's study opened on a fake user folder (tests/fakes.py), the run
configs the chapter builds from it shrunk by overrides to a few training steps, trained into
a temporary cache in this process, sampled, and scored with the chapter's own metric
function, a fixed random projection standing in for Inception's features. Each test calls
the library functions the chapter's notebook calls, in its order. (smd_tables: the test
``test_full_tables_path_runs_end_to_end_at_a_tiny_size`` in test_smd_experiments.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from fakes import fake_celeba, fake_mnist, projection_features
from test_data import fake_cifar

from gmdiff import config, metrics, runs, zoo
from gmdiff.study import CONFIG_DIR, Study

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    """Train in this process into tmp_path/cache; Inception's weights 'present' (a
    projection stands in for its features) so that the FID profiles open."""
    monkeypatch.setenv("GMDIFF_TRAIN_WORKERS", "1")
    monkeypatch.setenv(runs.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr("gmdiff.metrics.inception_weights_dir", lambda *a: tmp_path)
    return tmp_path


def shrink_study_models(monkeypatch, sets: dict[str, list[str]]):
    """Apply ``sets[<run file stem>]`` (key=value overrides) after the study's own whenever
    a study loads one of its models' run files (Study.run_config: the zoo's path)."""
    load = config.load_config

    def shrunk(path, overrides=()):
        return load(path, [*overrides, *sets[Path(path).stem]])

    monkeypatch.setattr("gmdiff.study.load_config", shrunk)


# -- GS chapters: the zoo's MNIST U-Net (configs/zoo/mnist_edm.yaml) ---------------------

TINY_ZOO = {
    "mnist_edm": ["train.steps=2", "train.batch_size=4", "train.ckpt_every=1"],
    "gmm_mlp_full": ["train.steps=2", "train.batch_size=8", "train.ckpt_every=1",
                     "train.warmup_steps=0", "train.ema_rampup=0.05"],
}  # fmt: skip


def _mnist_study(chapter, tmp_path, monkeypatch, n=24):
    folder = fake_mnist(tmp_path / "mnist", n=n, seed=0)
    shrink_study_models(monkeypatch, TINY_ZOO)
    study = Study.open(chapter, "full", data_dir=folder)
    assert study.images.name == "mnist32" and study.models["digits"] == "zoo/mnist_edm"
    return study, folder


def _assert_zoo_mnist_run(study, folder):
    """The digits model the chapter gets is the full profile's: MNIST 32x32 from the user's
    folder, trained (2 steps) into the test's cache, not the ci digits model."""
    cfg = study.run_config("digits")
    assert cfg.data.name == "mnist32" and cfg.data.options["data_dir"] == str(folder)
    assert cfg.train.steps == 2 and cfg.model.overrides["in_ch"] == 1
    folder_of_run = runs.run_dir(cfg, study.cache_name("digits"))
    assert runs.cache_root() in folder_of_run.parents and (folder_of_run / "checkpoint.pt").is_file()


def test_gs_score_structure_full_path(tiny_env, monkeypatch):
    """gs_score_structure, profile full: the MNIST training set, the zoo's U-Net trained on
    it, the idealised models fitted to it (no labels: no per-class GMM) and GS-6's FUV table."""
    from gmdiff.papers import gs_networks as gn

    S, folder = _mnist_study("gs_score_structure", tiny_env, monkeypatch)
    cfg = S.sizes
    x, labels, shape = gn.digits_training_set(S)
    assert x.shape == (24, 32 * 32) and labels is None and shape == (1, 32, 32)
    denoiser, _ = zoo.digits_edm(S)
    _assert_zoo_mnist_run(S, folder)
    net = gn.NetworkScore(denoiser, shape)
    models = gn.idealised_models(x, labels, kmeans_ks=[3], seed=0)  # full: kmeans_ks [10, 100]
    assert list(models) == ["isotropic", "Gaussian", "GMM k-means 3", "delta (training set)"]
    sigmas = [cfg["sigma_min"], 1.0, cfg["sigma_max"]]
    table = gn.score_fuv_table(net, models, x, sigmas, 6, 0, query="data")
    assert table.shape[0] == len(sigmas) * len(models)
    assert torch.isfinite(torch.tensor(table["FUV"].to_numpy())).all() and (table["FUV"] >= 0).all()
    # the toy MLP (configs/zoo/gmm_mlp_full.yaml) against its exact mixture, then adequacy
    mlp, _, gmm_true = zoo.gmm_mlp(S)
    toy_x = gmm_true.sample(32, torch.Generator().manual_seed(0))
    toy = gn.score_fuv_table(gn.NetworkScore(mlp, (gmm_true.dim,)), {"exact GMM": gmm_true}, toy_x,
                             sigmas, 6, 0, query="data")  # fmt: skip
    assert torch.isfinite(torch.tensor(toy["FUV"].to_numpy())).all()
    adequacy = zoo.adequacy(S)
    assert list(adequacy["model"]) == ["digits", "gmm"] and adequacy.shape[0] == 2


def test_gs_learning_dynamics_full_path(tiny_env, monkeypatch):
    """gs_learning_dynamics, profile full: the zoo's MNIST U-Net with EMA snapshots, GS-9's
    GMM sweep and GS-11's training curves and learning order on the snapshots; then the
    toy MLP of configs/zoo/gmm_mlp_full.yaml with its snapshots."""
    from gmdiff.papers import gs_networks as gn

    S, folder = _mnist_study("gs_learning_dynamics", tiny_env, monkeypatch)
    # the full run files as they are (not shrunk): every snapshot step lies in its run
    full = {m: config.load_config(CONFIG_DIR / f"{S.models[m]}.yaml").train.steps for m in ("digits", "gmm")}
    assert max(S["snapshot_steps"]) == full["digits"] and max(S["toy_snapshot_steps"]) <= full["gmm"]
    x, labels, shape = gn.digits_training_set(S)
    denoiser, snapshots = zoo.digits_edm(S, snapshot_steps=[0, 1, 2])  # full: up to 25,000
    _assert_zoo_mnist_run(S, folder)
    assert sorted(snapshots) == [0, 1, 2]
    net = gn.NetworkScore(denoiser, shape)
    sweep = gn.gmm_sweep(net, x, [1, 2], [1, 4], [0.5], 6, 0, query="data")
    assert set(sweep["modes"]) >= {1, 2} and torch.isfinite(torch.tensor(sweep["FUV"].to_numpy())).all()
    models = gn.idealised_models(x, labels, kmeans_ks=[2], seed=0)
    snaps = {s: gn.NetworkScore(d, shape) for s, d in snapshots.items()}
    curves = gn.training_curves(snaps, models, x, [0.5, 10.0], 6, 0)
    order = gn.learning_order(curves)
    assert sorted(set(curves["step"])) == [0, 1, 2] and len(order) == 2 * len(models)
    assert set(order["closest at step"]) <= {0, 1, 2}
    # the toy MLP: the full profile's own run file, not the ci one
    assert S.models["gmm"] == "zoo/gmm_mlp_full"
    _, mlp_snaps, gmm_true = zoo.gmm_mlp(S, snapshot_steps=[0, 2])
    assert S.run_config("gmm").train.steps == 2 and sorted(mlp_snaps) == [0, 2]
    toy = gn.training_curves({s: gn.NetworkScore(d, (gmm_true.dim,)) for s, d in mlp_snaps.items()},
                             {"GMM": gmm_true}, gmm_true.sample(64, torch.Generator().manual_seed(0)),
                             [0.5], 8, 0)  # fmt: skip
    assert sorted(set(toy["step"])) == [0, 2]


def test_gs_teleportation_full_path(tiny_env, monkeypatch):
    """gs_teleportation, profile full: the zoo's MNIST U-Net, Heun-18 with teleported
    steps from the Gaussian of the MNIST images, and the skip table scored with the study's
    features (Inception's, here a projection) against half the real images."""
    from gmdiff.analytic import Gaussian
    from gmdiff.papers import gs_teleport as gt
    from gmdiff.schedules import EDM

    S, folder = _mnist_study("gs_teleportation", tiny_env, monkeypatch)
    assert S.images.metric == "FID"
    feats = projection_features((1, 32, 32))
    monkeypatch.setattr("gmdiff.metrics.inception_features", feats)
    cfg, n_digits, skips = S.sizes, 4, [0, 5, 10]  # full: n_digits 5000, skips 0..12
    unet, _ = zoo.digits_edm(S)
    _assert_zoo_mnist_run(S, folder)
    quality, features = S.images.metric, S.images.features()
    images = S.images.load()[0][: 2 * n_digits]
    assert images.shape == (8, 1, 32, 32)
    gauss = Gaussian.from_data(images.flatten(1).double())
    gd = torch.Generator().manual_seed(0)
    x_T = EDM().prior_sample((n_digits, *images.shape[1:]), gd)
    real_feats = features(images[:4])
    samples = gt.teleport_samples(unet, gauss, x_T, skips, steps=cfg["steps"])
    sample_feats = {k: features(s.clamp(-1, 1)) for k, s in samples.items()}
    table = gt.teleportation_table(unet, gauss, x_T, skips,
                                   lambda f: metrics.frechet_distance_features(f, real_feats),
                                   steps=cfg["steps"], samples=sample_feats, quality_name=quality,
                                   n_boot=3, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert list(table["skip"]) == skips and quality in table.columns
    assert torch.isfinite(torch.tensor(table[quality].to_numpy())).all()
    assert feats.calls == [4] + [n_digits] * len(skips)  # the study's features are the stand-in's


# -- gm_sgm_tables: NCSN++ on CIFAR-10 (App. A.2) and the ring at the full budget ---------

TINY_NCSNPP = {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.0}


def test_gm_sgm_tables_full_path(tiny_env, monkeypatch):
    """gm_sgm_tables, profile full: the ring models' run files with the full training sets
    (shrunk), then the image models as the chapter builds them (G.dsm_config on the
    study's data section, net, sigma_max and batch: NCSN++ shrunk, 2 steps), trained side
    by side by load_or_train_many, sampled with the VE PC sampler, and Table 1's FID
    (S.images.frechet: a projection standing in for Inception) by PC iterations."""
    from gmdiff.papers import gm_sgm as G
    from gmdiff.samplers import ve_pc

    folder = fake_cifar(tiny_env)
    S = Study.open("gm_sgm_tables", "full", data_dir=folder.parent)
    toy_cfg, img_cfg = S["toy"], S["images"]
    assert S.images.name == "cifar10" and img_cfg["net"] == "ncsnpp_cifar10_ve" and img_cfg["sigma_max"] == 50.0
    # the ring: the full profile's sets (20,000 steps, batch 512) are valid on its run file
    ring = G.ring_config({"name": "gm_sgm", "beta": 2.0}, seed=0, sets=[*toy_cfg["sets"], f"train.device={S.device}"])
    assert (ring.train.steps, ring.train.batch_size) == (20000, 512)
    tiny_ring = G.ring_config({"name": "gm_sgm", "beta": 2.0}, seed=0,
                              sets=[*toy_cfg["sets"], "train.steps=2", "train.batch_size=16", "train.ema_rampup=0.05"])  # fmt: skip
    (ring_run,) = runs.load_or_train_many([(tiny_ring, "gms-ring")])
    assert ring_run.cfg.train.steps == 2
    # the images, as the chapter builds their runs (sizes shrunk)
    real_images, _ = S.images.load(img_cfg["n"])
    img_shape = tuple(real_images.shape[1:])
    assert img_shape == (3, 32, 32)
    img_model = {"net": img_cfg["net"], "overrides": {**img_cfg["net_overrides"], **TINY_NCSNPP},
                 "precond": "edm", "sigma_data": img_cfg["sigma_data"]}  # fmt: skip
    ve_img = {"name": "ve", "options": {"sigma_min": 0.01, "sigma_max": img_cfg["sigma_max"]}}
    train = {"batch": 4, "lr": img_cfg["lr"], "ema_decay": img_cfg["ema_decay"], "ema_rampup": 0.05, "warmup": 0}
    noises = {
        "SGM": {"name": "gm_sgm", "beta": 1.0},
        "GM-SGM": {"name": "gm_sgm", "beta": 2.0},
        "GM-SGM, matrix mixture": {
            "name": "frequency_mixture", "gain": 2.0, "fraction": 0.05, "shrink": 0.5, "alternate": True
        },
    }  # fmt: skip
    jobs = [(G.dsm_config(S.images.config, img_model, ve_img, noise, steps=2, **train, seed=0, device=S.device),
             f"gms-{S.images.name}") for noise in noises.values()]  # fmt: skip
    trained = dict(zip(noises, runs.load_or_train_many(jobs), strict=True))
    for run in trained.values():
        assert run.cfg.data.options["data_dir"] == str(folder.parent) and run.cfg.model.net == "ncsnpp_cifar10_ve"
        assert run.cfg.schedule.options["sigma_max"] == 50.0 and (runs.run_dir(run.cfg, "gms-cifar10") / "checkpoint.pt").is_file()
    feats = projection_features(img_shape)
    monkeypatch.setattr("gmdiff.metrics.inception_features", feats)
    fid = S.images.frechet(real_images, S.device)  # the chapter's img_metric
    draws = {name: G.sampler_run(ve_pc, r.denoiser, trained["SGM"].schedule, img_shape, 5, batch=512)
             for name, r in trained.items()}  # fmt: skip
    table = G.sampler_table(draws, [2, 3], fid, 0)
    assert list(table.columns) == ["iterations", *noises] and list(table["iterations"]) == [2, 3]
    values = torch.tensor(table[list(noises)].to_numpy())
    assert torch.isfinite(values).all() and (values > 0).all()
    assert feats.calls == [len(real_images)] + [5] * 6  # the reference once, then each cell
    # a cell is the FID of that model's PC samples
    x = G.sampler_run(ve_pc, trained["GM-SGM"].denoiser, trained["SGM"].schedule, img_shape, 5)(3, 0)
    ref = feats(real_images)
    assert table["GM-SGM"].iloc[1] == pytest.approx(
        metrics.frechet_distance_features(feats(x.clamp(-1, 1)), ref), rel=1e-9)


def test_gm_sgm_tables_full_path_on_celeba64(tiny_env, monkeypatch):
    """gm_sgm_tables, profile full with -p dataset celeba64 (App. A.2's CelebA-64, Tables 2
    and 5): the dataset's sizes (sigma_max 90, NCSN++ at resolution 64), a GM-SGM model
    trained on the user's image folder (read lazily, an ImageFolder) and its PC samples'
    FID against the folder's images (S.images.frechet, a projection for Inception)."""
    from gmdiff.papers import gm_sgm as G
    from gmdiff.samplers import ve_pc

    folder = fake_celeba(tiny_env / "celeba")
    S = Study.open("gm_sgm_tables", "full", data_dir=folder, dataset="celeba64")
    img_cfg = S["images"]
    assert img_cfg["sigma_max"] == 90.0 and img_cfg["net_overrides"] == {"resolution": 64, "scale_by_sigma": False}
    real_images, _ = S.images.load(img_cfg["n"])
    assert real_images.shape == (6, 3, 64, 64)
    tiny = {**TINY_NCSNPP, "attn_resolutions": [32]}  # (1, 2) at 64: resolutions 64 and 32
    img_model = {"net": img_cfg["net"], "overrides": {**img_cfg["net_overrides"], **tiny},
                 "precond": "edm", "sigma_data": img_cfg["sigma_data"]}  # fmt: skip
    ve_img = {"name": "ve", "options": {"sigma_min": 0.01, "sigma_max": img_cfg["sigma_max"]}}
    cfg = G.dsm_config(S.images.config, img_model, ve_img, {"name": "gm_sgm", "beta": 2.0}, steps=2, batch=2,
                       lr=img_cfg["lr"], seed=0, ema_decay=img_cfg["ema_decay"], ema_rampup=0.05, warmup=0,
                       device=S.device)  # fmt: skip
    (run,) = runs.load_or_train_many([(cfg, f"gms-{S.images.name}")])
    assert run.shape == (3, 64, 64) and run.cfg.data.options["data_dir"] == str(folder)
    feats = projection_features((3, 64, 64))
    monkeypatch.setattr("gmdiff.metrics.inception_features", feats)
    fid = S.images.frechet(real_images, S.device)
    table = G.sampler_table({"GM-SGM": G.sampler_run(ve_pc, run.denoiser, run.schedule, (3, 64, 64), 4)}, [2], fid, 0)
    assert table["GM-SGM"].iloc[0] > 0 and feats.calls == [6, 4]


# -- gmd_tables: GM-DDPM on CIFAR-10 (configs/gm_ddpm_cifar10.yaml), FID and IS ----------

# the U-Net's middle block attends at its lowest resolution: three levels keep it at 8 x 8
TINY_GMD = ["train.steps=2", "train.ema_rampup=0.05", "train.batch_size=4", "train.warmup_steps=0",
            "train.log_every=1", "train.ckpt_every=0", "train.device=cpu", "model.overrides.base.ch=8",
            "model.overrides.base.ch_mult=[1,2,2]", "model.overrides.base.num_res_blocks=1",
            "model.overrides.base.attn_resolutions=[]",
            "model.overrides.classifier_width=8", "schedule.options.T=6"]  # fmt: skip


def fake_torch_fidelity(monkeypatch, tmp_path, shape):
    """torch-fidelity's weights file (empty), its IS (softmax of the logits, one split) and
    a projection standing in for its Inception (1008 logits, 64 pool features of uint8
    images), so that a study scoring ``is`` opens and scores on the CPU."""
    from types import SimpleNamespace

    from gmdiff import fidelity

    (tmp_path / fidelity.WEIGHTS_FILE).write_bytes(b"")
    monkeypatch.setenv("GMDIFF_INCEPTION_DIR", str(tmp_path))
    pool = projection_features(shape, dim=64, seed=1)
    head = torch.randn(64, 1008, generator=torch.Generator().manual_seed(2)) / 8

    def extractor(u8):
        f = pool(u8.float() / 127.5 - 1)
        return f @ head, f

    def isc(logits, splits, shuffle, seed):  # Salimans et al. 2016: exp E KL(p(y|x) || p(y))
        p = logits.double().softmax(1)
        kl = (p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean()
        return {"inception_score_mean": float(kl.exp()), "inception_score_std": 0.0}

    lib = SimpleNamespace(metric_isc=SimpleNamespace(isc_features_to_metric=isc))
    monkeypatch.setitem(sys.modules, "torch_fidelity", lib)
    monkeypatch.setattr(fidelity, "load_inception", lambda weights_dir, device: (extractor, "stand-in"))
    return pool


def test_gmd_tables_full_path(tiny_env, monkeypatch):
    """gmd_tables, profile full: the study's base (configs/gm_ddpm_cifar10.yaml) pointed at a
    fake CIFAR folder, shrunk, trained for two lams and two seeds (P.train_table_models),
    every lam's runs sampled and scored by P.evaluate_tables with the chapter's ImageScores
    (FID in the stand-in Inception features, IS through the study's torch-fidelity path),
    then the paired differences to DDPM that the tables print."""
    from gmdiff.papers import gm_ddpm as P

    folder = fake_cifar(tiny_env)
    fake_torch_fidelity(monkeypatch, tiny_env, (3, 32, 32))
    feats = projection_features((3, 32, 32))
    monkeypatch.setattr("gmdiff.metrics.inception_features", feats)
    S = Study.open("gmd_tables", "full", data_dir=folder.parent)
    cfg, sets = S.sizes, S.images.overrides
    assert cfg["base"] == "configs/gm_ddpm_cifar10.yaml" and S.images.scores == ("fid", "is")
    lams, seeds, n = [0.0, 0.2], [0, 1], 6  # full: lams [0, 0.1, 0.2, 1], seeds 0-2, n 50,000
    reference = S.images.load()[0]
    classifier, inception = S.images.classifier(), S.images.inception_score(S.device)
    assert classifier is None and inception is not None
    score = P.ImageScores(reference, S.images.features(S.device), n, 0, classifier, inception)
    models = P.train_table_models(cfg["base"], lams, seeds, [*sets, *TINY_GMD])
    assert sorted(models) == [(lam, s) for lam in lams for s in seeds]
    for run in models.values():
        assert run.cfg.data.name == "cifar10" and run.cfg.data.options["data_dir"] == str(folder.parent)
        assert run.cfg.model.net == "gm_ddpm_cifar10" and run.shape == (3, 32, 32) and run.cfg.train.steps == 2

    def runs_of(lam):  # the chapter's
        if lam == 0:
            return ["original (Alg. 3)", *P.SOLVER_RUNS]
        return list(P.STRATEGY_RUNS) + (list(P.SOLVER_RUNS) if lam == 0.2 else [])

    scores = P.evaluate_tables(models, runs_of, score, n, 2, cfg["batch"])
    per_model = len(runs_of(0.0)) + len(runs_of(0.2))
    assert len(scores) == len(seeds) * per_model
    assert {"fd", "is", "precision", "recall"} <= set(scores.columns)
    values = torch.tensor(scores[["fd", "is"]].to_numpy(dtype=float))
    assert torch.isfinite(values).all() and (values[:, 0] > 0).all() and (values[:, 1] >= 1 - 1e-9).all()
    assert feats.calls[0] == len(reference) and set(feats.calls[1:]) == {n}
    diffs = P.paired_differences(scores, "fd", lambda r: r if r in P.SOLVER_RUNS else "original (Alg. 3)")
    assert len(diffs) > 0
    # a row's FID is that of table_samples from seed 1000 + s, clipped (the chapter's pairing)
    row = scores[(scores["lam"] == 0.2) & (scores["seed"] == 1)].iloc[0]
    x = P.table_samples(models[(0.2, 1)], row["run"], n, 1001, 2, cfg["batch"])
    want = metrics.frechet_distance_features(feats(x.clamp(-1, 1)), feats(reference))
    assert row["fd"] == pytest.approx(want, rel=1e-9)


# -- x_benchmark: five methods on exact-answer data, at the full profile's D and T -------


def test_x_benchmark_full_path(tiny_env):
    """x_benchmark, profile full (no user data: larger D, T, budgets): the five methods
    trained by B.train_all on the full profile's ring and D = 256 mixture (budget shrunk to
    2 steps, T = 200 as in full), B.benchmark's sample scores, the denoiser excess errors
    and the kernel KLs; then the digits U-Nets scored by ImageScores (a projection for the
    digit classifier's features)."""
    from gmdiff import data
    from gmdiff.papers import cross_paper as B
    from gmdiff.papers.gm_ddpm import ImageScores

    S = Study.open("x_benchmark", "full")
    cfg = S.sizes
    specs = {name: cfg["data"][name] for name in ("ring", "GMM D=256")}  # full: five data sets
    tiny = {"steps": 2, "batch": 16, "width": 16, "warmup": 0, "ema_rampup": 0.05}
    budget = B.Budget(**{**cfg["budget"], **tiny})
    assert budget.T == 200 and specs["GMM D=256"]["d"] == 256
    trained = B.train_all(B.METHODS, specs, budget, [0], S.device)
    assert sorted(trained) == sorted((m, d, 0) for m in B.METHODS for d in specs)
    assert all(r.cfg.train.steps == 2 for r in trained.values())
    table = B.benchmark(trained, specs, [10], 16, cfg["teleport_scale"])
    assert set(table["data"]) == set(specs) and set(table["method"]) == set(B.METHODS)
    assert torch.isfinite(torch.tensor(table["SW2"].to_numpy(dtype=float))).all()
    errors = B.denoiser_errors(trained, specs, [1, 100], 16, budget.gm_sgm_beta)
    assert set(errors["t"]) == {1, 100} and torch.isfinite(torch.tensor(errors["excess"].to_numpy(dtype=float))).all()
    kernels = B.kernel_errors(trained, specs, steps=[2, 50], n_x=4, n_y=4, n_eta=4)
    assert set(kernels["t"]) == {2, 50} and torch.isfinite(torch.tensor(kernels["KL"].to_numpy(dtype=float))).all()
    # the digits U-Nets of the images section
    img = cfg["images"]
    img_budget = B.Budget(**{**img["budget"], **tiny, "channels": 8, "batch": 4, "T": 20})
    img_trained = B.train_all(B.METHODS, img["data"], img_budget, [0], S.device)
    assert {r.shape for r in img_trained.values()} == {(1, 8, 8)}
    score = ImageScores(data.digits8x8()[0], projection_features((1, 8, 8)), 8, 0)
    images = B.benchmark(img_trained, img["data"], [10], 8, cfg["teleport_scale"], score)
    assert set(images["method"]) == set(B.METHODS)
    assert torch.isfinite(torch.tensor(images["fd"].to_numpy(dtype=float))).all() and (images["fd"] > 0).all()


# -- GM-SGM's ring and dimension studies (no user data; longer training, larger D) --------


def test_gms_dimension_full_path(tiny_env):
    """gms_dimension, profile full, its trained part: the MLPs of M.mlp_trainer on the full
    profile's mixture (k = 10, rank 16) at D = 256 (a full-only D; net shrunk to width 64,
    2 steps), sampled by M.trained_study and scored by its Frechet distance to the
    mixture's moments, and the excess-error table. (The exact studies before it train
    nothing: the same functions at larger D.)"""
    from gmdiff.papers import gm_sgm_dimension as M

    cfg = Study.open("gms_dimension", "full").sizes
    D, its = 256, [20]  # full: dims [64, 256, 784, 3072], iterations up to 1,000
    assert D in cfg["dims"] and D not in Study.open("gms_dimension").sizes["dims"]
    assert cfg["gmm"] == {"k": 10, "rank": 16} and cfg["net"]["depth"] == 4
    net = {**cfg["net"], "width": 64, "steps": 2, "batch": 16, "ema_rampup": 0.05}
    train = M.mlp_trainer(net, **cfg["gmm"], bank=[(D, b, 0) for b in (1.0, 2.0)])
    _, _, prior = train(D, 2.0, 0)
    assert prior.dim == D and prior.means.shape[0] == 10
    table, ratios = M.trained_study(train, [D], [1.0, 2.0], [0], its, 32, ratio_iterations=its)
    assert len(table) == 2 and set(table["beta"]) == {1.0, 2.0} and len(ratios) > 0
    assert torch.isfinite(torch.tensor(table.select_dtypes("number").to_numpy())).all()
    excess = M.excess_table(train, [D], [1.0, 2.0], [0], cfg["excess"]["sigmas"][:2], 16)
    assert len(excess) == 4 and set(excess["D"]) == {D}


def test_gms_noise_studies_full_path(tiny_env):
    """gms_noise_studies, profile full: the four ring models with the full profile's
    training sets (20,000 steps at batch 512, here 2), trained side by side, GMS-5's
    trained-vs-optimal distances and the PC samples' SW2 and mode spread."""
    from gmdiff import data
    from gmdiff.noise import ScaleMixtureNoise
    from gmdiff.papers import gm_sgm as G
    from gmdiff.samplers import ve_pc
    from gmdiff.schedules import VE

    cfg = Study.open("gms_noise_studies", "full").sizes
    assert "train.steps=20000" in cfg["sets"]
    ring = data.ring2d(**G.RING["options"])
    ve = VE(**G.ring_config({"name": "gm_sgm", "beta": 1.0}).schedule.options)
    scales = {"SGM": (1.0,), "GM-SGM": (1.0, 2.0), "only large jumps": (2.0,), "{0.5, 2}": (0.5, 2.0)}
    exact = {k: G.exact_denoiser(ring, s) for k, s in scales.items()}
    sets = [*cfg["sets"], "train.steps=2", "train.batch_size=16", "train.ema_rampup=0.05"]
    jobs = [(G.ring_config({"name": "scale_mixture", "scales": list(sc), "alternate": len(sc) > 1},
                           seed=0, sets=sets), "gms-ring") for sc in scales.values()]  # fmt: skip
    assert all(c.train.steps == 2 and c.train.batch_size == 16 for c, _ in jobs)
    trained = {k: r.denoiser for k, r in zip(scales, runs.load_or_train_many(jobs), strict=True)}
    x0 = ring.sample(64, torch.Generator().manual_seed(2))
    gms5 = G.trained_vs_optimal(trained["GM-SGM"], trained["SGM"], exact["GM-SGM"], exact["SGM"], x0,
                                cfg["distance_sigmas"], 0)  # fmt: skip
    assert len(gms5) > 0 and torch.isfinite(torch.tensor(gms5.select_dtypes("number").to_numpy())).all()
    true_ring = ring.sample(64, torch.Generator().manual_seed(1)).float()
    for mixture in (False, True):
        kw = {"noise": ScaleMixtureNoise((1.0, 2.0))} if mixture else {}
        x = runs.draw_samples(trained["GM-SGM"], ve, ve_pc, cfg["fail_iterations"][0], (2,), 16, seed=0, **kw)
        sw2 = metrics.sw2_to_reference(x, true_ring, 0)
        assert x.shape == (16, 2) and sw2 > 0 and G.mode_spread(x, ring.means, 0.1) >= 0


# -- smd_method: the toy ring's networks at the full profile's T grid ---------------------


def test_smd_method_full_path(tiny_env):
    """smd_method, profile full: smd.method_study (every network of the chapter: the kernel
    grid, the n_eta variants and the continuation control) on the full profile's sizes,
    shrunk to 2 training steps and a few evaluation points, with T = 2 (full only) and 5."""
    from gmdiff import data
    from gmdiff.papers import smd

    cfg = Study.open("smd_method", "full").sizes
    assert 2 in cfg["Ts"] and 2 not in Study.open("smd_method").sizes["Ts"]
    tiny = {"Ts": [2, 5], "steps": 2, "control_steps": 2, "batch": 16, "n_x": 4, "n_y": 4,
            "n_eta_eval": 4, "n_samples": 16, "n_etas_train": cfg["n_etas_train"][:2]}  # fmt: skip
    assert tiny["n_etas_train"] == [1, 2]
    study = smd.method_study({**cfg, **tiny}, data.ring2d(8, 2.0, 0.1), 0)
    assert set(study["kl"]["T"]) == {2, 5} and set(study["sw"]["T"]) == {2, 5}
    assert list(study["n_eta"]["n_eta"]) == [1, 2]
    assert len(study["adequacy"]) == 2 * len(smd.METHOD_KERNELS) + len(smd.METHOD_KERNELS) - 1
    for name, column in (("kl", "KL"), ("sw", "SW2"), ("control", "KL")):  # eta spread: NaN for exact kernels
        assert torch.isfinite(torch.tensor(study[name][column].to_numpy(dtype=float))).all(), name
    trained = study["kl"][study["kl"]["kernel"].isin(smd.METHOD_KERNELS)]
    assert torch.isfinite(torch.tensor(trained["eta spread"].to_numpy(dtype=float))).all()
