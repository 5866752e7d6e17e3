"""Image files: samples as 8-bit PNGs (one file per image, as clean-fid's folder mode and
EDM's ``fid.py`` read them, and a grid upscaled to a viewable size), and a folder of images
(sub-folders included, :func:`image_files`) read back as a tensor."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: The image files gmdiff reads (any case: ``.PNG`` too).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

#: The smallest side, in pixels, of one image in a saved grid (8x8 digits: 8 times larger).
GRID_MIN_PX = 64


def to_uint8(images: Tensor, centered: bool = True) -> Tensor:
    """(N, C, H, W) floats in [-1, 1] (``centered``) or [0, 1] -> uint8 (N, H, W, C),
    clipped and rounded to the nearest of the 256 levels."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, C, H, W) with C = 1 or 3, got {tuple(images.shape)}")
    x01 = (images.float() + 1) / 2 if centered else images.float()
    return (x01.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def from_uint8(u8: Tensor, centered: bool = True) -> Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1] (``centered``) or [0, 1]."""
    x01 = u8.permute(0, 3, 1, 2).float() / 255
    return 2 * x01 - 1 if centered else x01


def grid(u8: Tensor, ncols: int | None = None, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """uint8 images (N, H, W, C) tiled into one (rows (H + pad) + pad, cols (W + pad) + pad,
    C) array, ``ncols`` per row (default: ceil(sqrt N)), ``pad`` pixels of ``pad_value``
    (default white) between and around the images; unused cells are padding too."""
    n, h, w, c = u8.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    shape = (nrows * (h + pad) + pad, ncols * (w + pad) + pad, c)
    out = np.full(shape, pad_value, dtype=np.uint8)
    for i, im in enumerate(u8.numpy()):
        r, q = divmod(i, ncols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) :][:, :w] = im
    return out


def upscale(arr: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) pixels repeated ``factor`` times along both axes: nearest-neighbour
    upscaling, which keeps every pixel's value (no smoothing of small images)."""
    if factor < 1:
        raise ValueError(f"upscale factor must be an integer >= 1, got {factor!r}")
    return arr.repeat(factor, axis=0).repeat(factor, axis=1)


def viewable_grid(u8: Tensor, n: int = 64, min_px: int = GRID_MIN_PX) -> np.ndarray:
    """The first ``n`` of the uint8 images ``u8`` (N, H, W, C) tiled by :func:`grid` and
    upscaled (nearest neighbour, an integer factor) so that each image's smaller side is
    at least ``min_px`` pixels: the picture of ``grid.png`` and of TensorBoard's sample
    grid."""
    factor = max(1, math.ceil(min_px / min(u8.shape[1:3])))
    return upscale(grid(u8[:n]), factor)


#: PIL modes of 16-bit single-channel images (a 16-bit grayscale PNG opens as one of them;
#: PIL's convert("RGB") clips them to white).
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def eight_bit(img, path: str | Path = "image"):
    """``img`` (a PIL image) with 8 bits per channel: a 16-bit grayscale image (mode
    ``I;16``, or ``I`` from a PNG with values <= 65535) scaled to 0..255 (rounded; PIL
    would clip it to white); 8-bit modes unchanged; other deep modes (32-bit integer or
    float) refused with a ValueError naming ``path``. (A 16-bit RGB PNG already opens as
    8-bit RGB.)"""
    from PIL import Image

    if img.mode in SIXTEEN_BIT_MODES or (img.mode == "I" and img.format == "PNG"):
        a = np.asarray(img).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"{path}: values outside 0..65535 in a 16-bit image; convert it")
        return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    if img.mode in ("I", "F"):
        raise ValueError(
            f"{path}: a {'32-bit integer' if img.mode == 'I' else 'floating-point'} image "
            f"(PIL mode {img.mode}); gmdiff reads 8- and 16-bit images: convert it to 8-bit PNG"
        )
    return img


def _pil(arr: np.ndarray):
    from PIL import Image

    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def save_pngs(
    images: Tensor,
    folder: str | Path,
    centered: bool = True,
    grid_n: int = 64,
    min_px: int = GRID_MIN_PX,
    text: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write each image as ``folder/images/000000.png``... at its own size and the first
    ``grid_n`` as ``folder/grid.png``, upscaled (nearest neighbour, an integer factor) so
    that each image's smaller side is at least ``min_px`` pixels, each with the PNG text
    chunks ``text`` (e.g. where the images came from; read back with
    ``PIL.Image.open(f).text``); returns (images folder, grid file)."""
    from PIL.PngImagePlugin import PngInfo

    info = None
    if text:
        info = PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)
    u8 = to_uint8(images, centered)
    folder = Path(folder)
    out = folder / "images"
    out.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(u8.numpy()):
        _pil(im).save(out / f"{i:06d}.png", pnginfo=info)
    grid_path = folder / "grid.png"
    _pil(viewable_grid(u8, grid_n, min_px)).save(grid_path, pnginfo=info)
    return out, grid_path


def image_files(folder: str | Path) -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) under ``folder`` at any depth, in one
    deterministic order: sorted by their path below ``folder``, compared part by part
    (``a/x.png`` before ``a-b/x.png``; clean-fid compares whole path strings, which puts
    ``a-b`` first: the set is the same, and FID does not depend on the order). As
    clean-fid's folder
    mode (``glob(fdir/**/*.ext, recursive=True)``, sorted) reads a folder, so files and
    folders whose name starts with a dot (``.ipynb_checkpoints``, a killed export's
    ``.tmp`` folder) are skipped, and symbolic links to folders are not followed (no
    cycles). torch-fidelity reads sub-folders only with ``samples_find_deep``."""
    root = Path(folder)
    found = []
    for here, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            Path(here, n)
            for n in names
            if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES
        ]
    found = [p for p in found if p.is_file()]  # not a broken link, a pipe, ...
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def load_folder(folder: str | Path, centered: bool = True, limit: int | None = None) -> Tensor:
    """The images under ``folder`` (sub-folders included, in :func:`image_files`' order;
    PNG, JPEG, BMP, WebP), at most ``limit``, as float32 (N, C, H, W) in [-1, 1]
    (``centered``) or [0, 1]; all must share one size. 16-bit grayscale images are scaled
    to 8 bits (:func:`eight_bit`)."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = image_files(folder)[:limit]
    if not files:
        raise ValueError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), in sub-folders neither"
        )
    arrs = []
    for p in files:
        with Image.open(p) as im:
            im = eight_bit(im, p)  # 16-bit grayscale would clip to white
            a = np.asarray(im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode))
        arrs.append(a[..., None] if a.ndim == 2 else a)
    if len({a.shape for a in arrs}) > 1:
        raise ValueError(f"{folder}: images differ in size or channels; resize them to one size")
    return from_uint8(torch.from_numpy(np.stack(arrs)), centered)
