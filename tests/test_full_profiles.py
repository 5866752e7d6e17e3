"""The ``full`` profiles of the chapters that train networks, walked end to end on the CPU
at a tiny size: the chapter's study opened on a fake user folder (tests/fakes.py), the run
configs the chapter builds from it shrunk by overrides to a few training steps, trained into
a temporary cache in this process, sampled, and scored with the chapter's own metric
function, a fixed random projection standing in for Inception's features. Each test calls
the library functions the chapter's notebook calls, in its order. (smd_tables: the test
``test_full_tables_path_runs_end_to_end_at_a_tiny_size`` in test_smd_experiments.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fakes import fake_mnist, projection_features
from test_data import fake_cifar

from gmdiff import config, metrics, runs, zoo
from gmdiff.study import Study

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
    mlp, mlp_snaps, gmm_true = zoo.gmm_mlp(S, snapshot_steps=[0, 2])
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
