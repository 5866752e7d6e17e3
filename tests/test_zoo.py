"""The model zoo: deterministic training, snapshots that do not perturb the run, the
on-disk cache, and clear errors for missing user data. Tiny step counts only."""

from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest
import torch

from gmdiff import config, data, nets, runs, train, zoo
from gmdiff.study import Study


def tiny_config(steps: int = 6, seed: int = 0):
    """A 4-d toy run small enough for unit tests, in the zoo's EDM form."""
    train = {"steps": steps, "batch_size": 16, "lr": 1e-2, "ema_decay": 0.5, "ema_rampup": 0.05, "seed": seed,
             "log_every": 2, "device": "cpu"}  # fmt: skip
    gmm = {"name": "low_rank_gmm", "options": {"d": 4, "k": 2, "rank": 1}}
    overrides = {"dim": 4, "width": 16, "depth": 2, "emb_dim": 8}
    model = {"net": "toy_mlp", "overrides": overrides, "precond": "edm", "sigma_data": 1.0}
    return config.from_dict({"data": gmm, "model": model, "loss": {"name": "edm"},
                             "schedule": {"name": "edm"}, "train": train})  # fmt: skip


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_leaves_global_rng_and_threads_untouched(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    n = torch.get_num_threads()
    run, _ = runs.load_or_train(tiny_config(3), "tiny", cache_dir=tmp_path)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == n
    init = runs.build(tiny_config(3)).trained.state_dict()
    assert not same(run.trained.state_dict(), init)  # it did train


def test_zoo_models_are_cached_runs(tmp_path, monkeypatch):
    """gmm_mlp is the run of the study's ``models.gmm``, cached under its run file's name
    and hash: a second call loads it."""
    study = Study.open("gs_score_structure", "ci")
    small = study.run_config("gmm")
    small = dataclasses.replace(small, train=dataclasses.replace(small.train, steps=4, ema_rampup=0.05))
    monkeypatch.setattr(Study, "run_config", lambda self, model, seed=None: small)
    den, snaps, gmm = zoo.gmm_mlp(study, snapshot_steps=[2], cache_dir=tmp_path)
    assert runs.run_dir(small, "gmm_mlp", tmp_path).is_dir() and set(snaps) == {2}
    assert isinstance(den, nets.EDMPrecond) and not den.training
    assert all(not p.requires_grad for p in den.parameters())
    assert gmm.dim == zoo.GMM_SPEC["d"]
    monkeypatch.setattr(train.Trainer, "fit", lambda *a, **k: pytest.fail("trained again"))
    again, _, _ = zoo.gmm_mlp(study, snapshot_steps=[2], cache_dir=tmp_path)
    assert same(again.state_dict(), den.state_dict())


def zoo_file(name: str, data_dir: str = "x"):
    return config.load_config(config.run_file(f"configs/zoo/{name}.yaml"),
                              [f"data.options.data_dir={data_dir}"] * name.endswith("_edm"))  # fmt: skip


def test_run_files_match_their_documentation():
    study = Study.open("gs_score_structure", "ci", seed=3)
    d = study.run_config("digits")
    assert 600_000 < nets.count_params(runs.build(d).net_config) < 700_000
    assert d.train.batch_size == 128 and d.train.device == "cpu" and d.train.seed == 3
    m = runs.build(study.run_config("gmm"))
    assert m.shape == (zoo.GMM_SPEC["d"],) == (zoo.toy_gmm().dim,)
    g = zoo.toy_gmm()
    assert g.n_components == 4 and g.lam.shape[1] == 3
    # the data the run trains on is this GMM
    sampler, model = runs.data_of(study.run_config("gmm"))
    torch.testing.assert_close(model.means, g.means)
    # sigma_data of the GMM model is its per-coordinate std to within 20%
    x = g.sample(20000, torch.Generator().manual_seed(0))
    assert abs(x.std().item() - study.run_config("gmm").model.sigma_data) < 0.2
    # full: the Table 3 mini-EDM networks (MNIST base 16, mult 1 2 3 4; CIFAR base 96, mult 1 2 2)
    f = zoo_file("mnist_edm")
    n = runs.build(f).net_config
    assert (n.ch, n.ch_mult, n.num_res_blocks, n.attn_resolutions) == (16, (1, 2, 3, 4), 1, ())
    assert (f.train.batch_size, f.train.lr, f.train.steps) == (128, 2e-4, 25_000)
    c = zoo.cifar10_config("x")
    n = runs.build(c).net_config
    assert (n.ch, n.ch_mult, n.num_res_blocks, n.attn_resolutions) == (96, (1, 2, 2), 2, (16,))
    assert (c.train.batch_size, c.train.lr, c.train.steps) == (128, 2e-4, 50_000)
    assert zoo_file("gmm_mlp_full").data == zoo_file("gmm_mlp").data  # the same mixture


def test_missing_user_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_dir"):
        Study.open("gs_score_structure", "full")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        Study.open("gs_score_structure", "full", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        zoo.cifar10_edm(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        zoo.cifar10_edm(None)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_mnist_idx_reader(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, 2, 28, 28))
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + imgs.astype(np.uint8).tobytes())
    x = data.load_mnist(tmp_path)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x[1, 0], torch.from_numpy(imgs[1] * (2 / 255) - 1).float())
    x32 = data.mnist32(tmp_path)
    assert x32.shape == (2, 1, 32, 32)
    torch.testing.assert_close(x32[:, :, 2:30, 2:30], x)
    assert (x32[:, :, :2] == -1).all() and (x32[:, :, :, 30:] == -1).all()
