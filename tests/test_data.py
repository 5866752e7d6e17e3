"""Tests of gmdiff.data: toy mixtures, shipped digits, flips and the user-data loaders
(on tiny datasets written to tmp_path)."""

import math
import pickle
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from gmdiff.data import (
    ImageFolder,
    digits8x8,
    grid2d,
    isotropic_gmm,
    load_celeba64,
    load_cifar10,
    load_lsun,
    low_rank_gmm,
    mnist5k,
    random_hflip,
    ring2d,
)

# -- toy distributions -----------------------------------------------------------------


def test_ring2d_means_and_density():
    k, radius, std = 6, 3.0, 0.2
    gm = ring2d(k, radius, std)
    assert gm.means.shape == (k, 2)
    assert torch.allclose(gm.means.norm(dim=1), torch.full((k,), radius, dtype=torch.float64))
    angles = torch.atan2(gm.means[:, 1], gm.means[:, 0]) % (2 * math.pi)
    expected = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    assert torch.allclose(angles, expected, atol=1e-12)
    # at a mode, with the others far away, log p = log(1/k) + log N(0; 0, std^2 I_2)
    x = gm.means[:1]
    expected_lp = -math.log(k) - math.log(2 * math.pi * std**2)
    assert gm.log_prob(x, 1e-6).item() == pytest.approx(expected_lp, abs=1e-6)
    # samples: component spread std per coordinate
    s = gm.sample(20000, torch.Generator().manual_seed(0))
    resid = s - gm.means[torch.cdist(s, gm.means).argmin(1)]
    assert resid.std(0).numpy() == pytest.approx([std, std], rel=0.03)


def test_grid2d_means():
    gm = grid2d(n=3, spacing=2.0, std=0.1)
    pts = {tuple(p) for p in gm.means.tolist()}
    assert pts == {(a, b) for a in (-2.0, 0.0, 2.0) for b in (-2.0, 0.0, 2.0)}
    assert torch.allclose(gm.log_weights.exp(), torch.full((9,), 1 / 9, dtype=torch.float64))
    assert gm.lam.unique().tolist() == pytest.approx([0.01])


def test_low_rank_gmm_structure_and_determinism():
    d, k, r = 20, 4, 3
    gm = low_rank_gmm(d, k, r, torch.Generator().manual_seed(1), var_range=(0.1, 0.5))
    gm2 = low_rank_gmm(d, k, r, torch.Generator().manual_seed(1), var_range=(0.1, 0.5))
    assert torch.equal(gm.means, gm2.means) and torch.equal(gm.U, gm2.U)
    eye = torch.eye(r, dtype=torch.float64).expand(k, r, r)
    assert torch.allclose(gm.U.transpose(1, 2) @ gm.U, eye, atol=1e-12)
    assert gm.lam.min() >= 0.1 and gm.lam.max() <= 0.5
    # every sample lies on mu_k + span(U_k) for its nearest-subspace component
    x = gm.sample(500, torch.Generator().manual_seed(2))
    z = x[:, None] - gm.means[None]
    off = z - torch.einsum("kdr,bkr->bkd", gm.U, torch.einsum("bkd,kdr->bkr", z, gm.U))
    assert off.norm(dim=2).min(1).values.max() < 1e-10


def test_toy_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        low_rank_gmm(5, 2, 6, torch.Generator())
    with pytest.raises(ValueError, match="std"):
        isotropic_gmm(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="var_range"):
        low_rank_gmm(5, 2, 2, torch.Generator(), var_range=(1.0, 0.5))


# -- shipped digits ---------------------------------------------------------------------


def test_digits8x8_scaling():
    from sklearn.datasets import load_digits

    x, y = digits8x8()
    raw = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and set(y.tolist()) == set(range(10))
    assert torch.allclose(x[:, 0], torch.from_numpy(raw.images).float() / 8 - 1)
    assert x.min() == -1 and x.max() == 1


def test_mnist5k_scaling_and_cache():
    x, y = mnist5k()
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1 and set(y.tolist()) == set(range(10))
    x[:] = 0  # callers may modify what they get without touching the cache
    t = time.perf_counter()
    x2, _ = mnist5k()
    assert time.perf_counter() - t < 0.5  # cached: no CSV re-parse
    assert x2.min() == -1


def test_random_hflip():
    x = torch.arange(2 * 8 * 3 * 4 * 4, dtype=torch.float32).reshape(16, 3, 4, 4)
    assert torch.equal(random_hflip(x, torch.Generator(), p=1.0), x.flip(-1))
    assert torch.equal(random_hflip(x, torch.Generator(), p=0.0), x)
    a = random_hflip(x, torch.Generator().manual_seed(3))
    b = random_hflip(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    flipped = (a == x.flip(-1)).flatten(1).all(1)
    kept = (a == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept) and 0 < flipped.sum() < 16
    with pytest.raises(ValueError, match="probability"):
        random_hflip(x, torch.Generator(), p=1.5)


# -- user-data loaders --------------------------------------------------------------------


def write_cifar_batch(path, n, seed):
    """A CIFAR-10 python batch of n seeded random images and labels at path (also used by
    test_smd_experiments); returns (data (n, 3072) uint8, labels)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    return data, labels


def fake_cifar(root, n: int = 8):
    """CIFAR-10's python batches (n random images each) under root/cifar-10-batches-py,
    which is returned (other tests use it as a user's data folder)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        write_cifar_batch(folder / name, n, i)
    return folder


def test_cifar10_fake_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = write_cifar_batch(folder / "test_batch", 10, 0)
    x, y = load_cifar10(tmp_path, train=False)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == labels
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32 x 32
    assert x[3, 1, 2, 5].item() == pytest.approx(data[3, 1024 + 2 * 32 + 5] / 127.5 - 1)
    x2, _ = load_cifar10(folder, train=False)  # the batches folder itself also works
    assert torch.equal(x, x2)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", 4, i)
    xt, yt = load_cifar10(tmp_path, train=True)
    assert xt.shape == (20, 3, 32, 32) and yt.shape == (20,)
    assert xt.min() >= -1 and xt.max() <= 1


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*cs.toronto.edu"):
        load_cifar10(tmp_path / "nowhere")


def _stripes(path, w=60, h=20):
    """Red | green | blue vertical thirds."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    for c in range(3):
        arr[:, c * w // 3 : (c + 1) * w // 3, c] = 255
    Image.fromarray(arr).save(path)


def test_image_folder_geometry(tmp_path):
    (tmp_path / "sub").mkdir()
    _stripes(tmp_path / "a.png")
    _stripes(tmp_path / "sub" / "b.png")
    Image.fromarray(np.full((30, 40, 3), 255, dtype=np.uint8)).save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    green = torch.tensor([-1.0, 1.0, -1.0])[:, None, None]
    # shorter side already 20: the centre 20 x 20 square is the green third
    ds = ImageFolder(tmp_path, resolution=20)
    assert [f.name for f in ds.files] == ["a.png", "c.png", "b.png"]  # sorted paths
    assert torch.equal(ds[0], green.expand(3, 20, 20))
    assert torch.equal(ImageFolder(tmp_path, crop=20)[2], green.expand(3, 20, 20))
    white = ImageFolder(tmp_path, resolution=8)[1]
    assert white.shape == (3, 8, 8) and torch.allclose(white, torch.ones(3, 8, 8))


def test_celeba_lsun_shapes(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / f"{i:06d}.jpg")
    x = load_celeba64(tmp_path)[1]
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert load_lsun(tmp_path, resolution=32)[0].shape == (3, 32, 32)


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="CelebA.*mmlab"):
        load_celeba64(tmp_path / "celeba")
    with pytest.raises(FileNotFoundError, match="no image files.*lsun"):
        load_lsun(tmp_path)


def test_image_folder_names_bad_files_at_construction(tmp_path):
    """A truncated PNG and a non-image are found when the folder is built, named (the
    first three, then a count) with what is allowed; skip_bad leaves them out with a
    warning giving the count, unless nothing would be left."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    png = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut0.png").write_bytes(png[:100])  # cut inside the pixel data
    (tmp_path / "notes.png").write_text("not an image")  # a text file named .png
    with pytest.raises(ValueError) as err:
        load_celeba64(tmp_path)
    assert str(err.value) == (
        f"2 of 3 image files in {tmp_path} cannot be read: cut0.png (Truncated File Read), "
        "notes.png (not an image); each .png/.jpg/.jpeg/.webp/.bmp file must be a complete "
        "image that PIL can open (repair or remove them, or pass skip_bad=True to skip them)"
    )
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "no_end.png").write_bytes(png[:-12])  # IEND chunk missing
    with pytest.raises(ValueError, match=re.escape(
        f"4 of 5 image files in {tmp_path} cannot be read: cut0.png (Truncated File Read), "
        "empty.png (not an image), no_end.png (truncated PNG file) and 1 more;")):  # fmt: skip
        ImageFolder(tmp_path)
    with pytest.warns(UserWarning, match=re.escape(
        f"skipped 4 of 5 image files in {tmp_path} that cannot be read: cut0.png")):  # fmt: skip
        ds = load_lsun(tmp_path, resolution=8, skip_bad=True)
    assert [f.name for f in ds.files] == ["a.png"] and len(ds.skipped) == 4
    assert ds[0].shape == (3, 8, 8)
    for name in ("cut0.png", "notes.png", "empty.png", "no_end.png"):
        (tmp_path / name).unlink()
    (tmp_path / "a.png").write_text("still not an image")
    with pytest.raises(ValueError, match="1 of 1 image files .* cannot be read: a.png"):
        ImageFolder(tmp_path, skip_bad=True)  # nothing would be left


def test_truncated_jpeg_is_named_when_decoded(tmp_path):
    """verify() does not read JPEG data: a truncated JPEG passes construction and is named
    when a batch decodes it."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    jpg = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(jpg[:-200])  # cut inside the compressed data
    ds = ImageFolder(tmp_path)
    bad = tmp_path / "a.jpg"
    with pytest.raises(ValueError, match=re.escape(
        f"image file {bad} cannot be decoded (image file is truncated")):  # fmt: skip
        ds[0]
