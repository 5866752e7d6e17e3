"""The model zoo: deterministic training, snapshots that do not perturb the run, the
on-disk cache, and clear errors for missing user data. Tiny step counts only."""

from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest
import torch

from gmdiff import data, nets, zoo
from gmdiff.train import TrainConfig

TINY_MLP = nets.MLPConfig(dim=4, width=16, depth=2, emb_dim=8)


def tiny_spec(steps: int = 6, seed: int = 0) -> zoo.ModelSpec:
    train = TrainConfig(steps=steps, batch_size=16, lr=1e-2, ema_decay=0.5, seed=seed,
                        log_every=2, device="cpu")  # fmt: skip
    return zoo.ModelSpec("tiny", TINY_MLP, train, 1.0, {"data": "4-d normal"})


def sampler(n: int, gen: torch.Generator) -> torch.Tensor:
    return 0.5 + torch.randn(n, 4, generator=gen)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_deterministic_and_seeded():
    a = zoo.train_spec(tiny_spec(), sampler)["ema"]
    b = zoo.train_spec(tiny_spec(), sampler)["ema"]
    c = zoo.train_spec(tiny_spec(seed=1), sampler)["ema"]
    assert same(a, b)
    assert not same(a, c)
    init = tiny_spec().build().state_dict()
    assert not same(a, init)  # it did train


def test_snapshots_do_not_change_the_run():
    full = zoo.train_spec(tiny_spec(6), sampler, snapshot_steps=[0, 2, 5])
    plain = zoo.train_spec(tiny_spec(6), sampler)
    assert same(full["ema"], plain["ema"])
    assert sorted(full["snapshots"]) == [0, 2, 5]
    # the snapshot at step k is the final EMA of a k-step run
    assert same(full["snapshots"][2], zoo.train_spec(tiny_spec(2), sampler)["ema"])
    assert same(full["snapshots"][0], tiny_spec().build().state_dict())
    with pytest.raises(ValueError, match="snapshot_steps"):
        zoo.train_spec(tiny_spec(6), sampler, snapshot_steps=[7])


def test_global_rng_and_threads_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    n = torch.get_num_threads()
    zoo.train_spec(tiny_spec(3), sampler)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == n


def test_cache_load_and_snapshot_union(tmp_path, monkeypatch):
    spec = tiny_spec()
    den, snaps = zoo.load_or_train(spec, lambda: sampler, [2], cache_dir=tmp_path)
    path = zoo.cache_path(spec, tmp_path)
    assert path.is_file() and path.name == f"tiny-{spec.sha}.pt"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert isinstance(den, nets.EDMPrecond) and not den.training
    assert all(not p.requires_grad for p in den.parameters())

    calls = []
    real = zoo.train_spec

    def counting(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("snapshot_steps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo, "train_spec", counting)
    den2, snaps2 = zoo.load_or_train(spec, lambda: sampler, [2], cache_dir=tmp_path)
    assert calls == []  # loaded, not retrained
    assert same(den.state_dict(), den2.state_dict())
    assert same(snaps[2].state_dict(), snaps2[2].state_dict())
    # a new snapshot retrains once with the union; the final weights do not move
    den3, _ = zoo.load_or_train(spec, lambda: sampler, [4], cache_dir=tmp_path)
    assert calls == [[2, 4]]
    assert same(den.state_dict(), den3.state_dict())
    stored = torch.load(path, weights_only=True)
    assert sorted(stored["snapshots"]) == ["2", "4"]
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    out = den(x, torch.full((5,), 0.3))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_spec_hash_tracks_the_config():
    assert tiny_spec().sha == tiny_spec().sha
    assert tiny_spec().sha != tiny_spec(seed=1).sha
    assert tiny_spec().sha != tiny_spec(steps=7).sha
    other = dataclasses.replace(tiny_spec(), sigma_data=0.5)
    assert other.sha != tiny_spec().sha


def test_ci_specs_match_their_documentation():
    d = zoo.digits_spec("ci")
    assert 600_000 < nets.count_params(d.net) < 700_000
    assert d.train.batch_size == 128 and d.train.device == "cpu"
    m = zoo.gmm_spec("ci")
    assert m.net.dim == zoo.GMM_SPEC["d"] == zoo.toy_gmm().dim
    g = zoo.toy_gmm()
    assert g.n_components == 4 and g.lam.shape[1] == 3
    # sigma_data of the GMM model is its per-coordinate std to within 20%
    x = g.sample(20000, torch.Generator().manual_seed(0))
    assert abs(x.std().item() - zoo.SIGMA_DATA_GMM) < 0.2
    # full: the Table 3 mini-EDM networks (MNIST base 16, mult 1 2 3 4; CIFAR base 96, mult 1 2 2)
    f = zoo.digits_spec("full")
    assert (f.net.ch, f.net.ch_mult, f.net.num_res_blocks, f.net.attn_resolutions) == (
        16,
        (1, 2, 3, 4),
        1,
        (),
    )
    assert (f.train.batch_size, f.train.lr, f.train.steps) == (128, 2e-4, 25_000)
    c = zoo.cifar10_spec("full")
    assert (c.net.ch, c.net.ch_mult, c.net.num_res_blocks, c.net.attn_resolutions) == (
        96,
        (1, 2, 2),
        2,
        (16,),
    )
    assert (c.train.batch_size, c.train.lr, c.train.steps) == (128, 2e-4, 50_000)


def test_missing_user_data_and_bad_profiles(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_dir"):
        zoo.digits_edm("full")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        zoo.digits_edm("full", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        zoo.cifar10_edm("full", data_dir=tmp_path)
    with pytest.raises(ValueError, match="ci"):
        zoo.cifar10_edm("ci")
    with pytest.raises(ValueError, match="profile"):
        zoo.gmm_mlp("large")
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
