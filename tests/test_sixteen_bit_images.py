"""16-bit grayscale images are read at their values, not clipped to white (PIL's own
conversion to 8 bits clips), by the FID folder reader and the training-data folder; deep
modes that have no 8-bit reading (32-bit integer TIFF) are refused with the file's name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gmdiff import data, images

RAMP = np.linspace(0, 65535, 16, dtype=np.uint16).reshape(4, 4)


def expected(centered: bool = True) -> torch.Tensor:
    """The ramp scaled to 8 bits by hand (rounded), then to [-1, 1] or [0, 1]."""
    eight = np.floor(RAMP.astype(np.float64) * 255 / 65535 + 0.5)
    x = torch.from_numpy(eight / 255).float()
    return x * 2 - 1 if centered else x


def test_sixteen_bit_png_reads_at_its_values(tmp_path):
    Image.fromarray(RAMP).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode in ("I;16", "I")  # a 16-bit file indeed
    x = images.load_folder(tmp_path)
    assert x.shape == (1, 1, 4, 4)
    torch.testing.assert_close(x[0, 0], expected(), atol=1e-6, rtol=0)
    # PIL's own conversion clips: all but the first pixel would read as white
    clipped = np.asarray(Image.open(tmp_path / "a.png").convert("L"))
    assert (clipped[RAMP > 255] == 255).all()
    assert (x[0, 0][torch.from_numpy(RAMP > 255)] < 1).any()


def test_training_folder_reads_sixteen_bit_png_the_same(tmp_path):
    Image.fromarray(RAMP).save(tmp_path / "a.png")
    x = data.ImageFolder(tmp_path)[0]
    x = x[0] if isinstance(x, tuple) else x
    assert x.shape == (3, 4, 4)  # grey to three equal channels
    for c in range(3):
        torch.testing.assert_close(x[c], expected(), atol=1e-6, rtol=0)


def test_a_32_bit_integer_image_is_refused_with_its_name(tmp_path):
    path = tmp_path / "b.tif"
    Image.fromarray(np.full((4, 4), 70000, np.int32), mode="I").save(path)
    with pytest.raises(ValueError, match=r"b\.tif"):
        images.eight_bit(Image.open(path), path)
