"""The pictures ``gmdiff sample`` writes: a scatter plot for 2-D data, an upscaled grid of
images."""

from __future__ import annotations

import json

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
import torch
from PIL import Image

from gmdiff.cli import main
from gmdiff.images import grid, save_pngs, to_uint8, upscale
from gmdiff.plotting import save_scatter

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n: int, size: int, channels: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize(("size", "factor"), [(8, 8), (28, 3), (32, 2), (64, 1), (100, 1)])
def test_grid_png_is_the_grid_upscaled_by_nearest_neighbour(tmp_path, size, factor):
    """Each image of grid.png is at least 64 px (8x8 digits: 64 px, CIFAR-10: 64 px), every
    pixel of the native grid repeated factor x factor times; images/ stay native."""
    x = _images(5, size, 3 if size == 32 else 1)
    _, grid_file = save_pngs(x, tmp_path)
    native = grid(to_uint8(x))
    with Image.open(grid_file) as im:
        big = np.asarray(im)
    big = big[..., None] if big.ndim == 2 else big
    assert big.shape == (native.shape[0] * factor, native.shape[1] * factor, native.shape[2])
    assert np.array_equal(big, np.kron(native, np.ones((factor, factor, 1), dtype=np.uint8)))
    assert size * factor >= 64
    with Image.open(tmp_path / "images" / "000000.png") as im:
        assert im.size == (size, size)


def test_upscale_refuses_a_bad_factor():
    with pytest.raises(ValueError, match="factor"):
        upscale(np.zeros((2, 2, 1), dtype=np.uint8), 0)


def test_scatter_has_labelled_axes_and_leaves_matplotlib_settings_alone(tmp_path):
    before = dict(mpl.rcParams)
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(1))
    fig = save_scatter(x, tmp_path / "s.png", reference=x + 1, title="heun, 18 steps")
    ax = fig.axes[0]
    assert "x_1" in ax.get_xlabel() and "x_2" in ax.get_ylabel()
    assert ax.get_title() == "heun, 18 steps" and len(ax.collections) == 2
    with Image.open(tmp_path / "s.png") as im:
        assert im.format == "PNG" and min(im.size) >= 300
    assert dict(mpl.rcParams) == before
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        save_scatter(torch.zeros(3, 3), tmp_path / "t.png")


def test_sample_writes_a_scatter_for_the_toy_and_a_grid_for_images(tmp_path, capsys):
    toy = [
        "--config", str(CONFIGS / "toy_gmm.yaml"), "--set", f"out_dir={tmp_path / 'toy'}",
        "--set", "train.steps=2", "--set", "train.batch_size=32",
        "--set", "model.overrides={embedding: fourier, width: 16, depth: 2}",
        "--set", "sample.n=50", "--set", "sample.steps=3",
    ]  # fmt: skip
    assert main(["train", *toy]) == 0 and main(["sample", *toy]) == 0
    assert "scatter.png" in capsys.readouterr().out
    with Image.open(tmp_path / "toy" / "scatter.png") as im:
        assert im.format == "PNG"
        meta = json.loads(im.text["gmdiff"])  # the scatter names its checkpoint too
    record = torch.load(tmp_path / "toy" / "samples.pt", weights_only=True)
    assert meta["checkpoint_sha256"] == record["checkpoint_sha256"] and meta["step"] == 2
    digits = [
        "--config", str(CONFIGS / "digits_edm.yaml"), "--set", f"out_dir={tmp_path / 'img'}",
        "--set", "train.steps=1", "--set", "train.batch_size=4",
        "--set", "sample.n=5", "--set", "sample.steps=2",
    ]  # fmt: skip
    assert main(["train", *digits]) == 0 and main(["sample", *digits]) == 0
    with Image.open(tmp_path / "img" / "grid.png") as im:
        assert im.size == ((3 * 9 + 1) * 8, (2 * 9 + 1) * 8)  # 5 images: 3 columns, 2 rows
    assert not (tmp_path / "img" / "scatter.png").exists()
