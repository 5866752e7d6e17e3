"""Stand-ins for a user's data folders and for Inception, shared by the tests that walk a
chapter's ``full`` profile on the CPU at a tiny size (nothing is downloaded)."""

import gzip

import numpy as np
import torch


def fake_mnist(root, n: int = 2, seed: int | None = None):
    """MNIST's training-image IDX file (``train-images-idx3-ubyte.gz``, n images 28 x 28:
    blank, or seeded random pixels with ``seed``) in root, which is returned."""
    root.mkdir(parents=True, exist_ok=True)
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, n, 28, 28))
    pixels = bytes(n * 28 * 28) if seed is None else np.random.default_rng(seed).integers(
        0, 256, size=n * 28 * 28, dtype=np.uint8).tobytes()  # fmt: skip
    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + pixels)
    return root


def projection_features(shape, dim: int = 6, seed: int = 0):
    """images (N, *shape) -> (N, dim): a fixed random projection standing in for Inception's
    features (the Frechet distance of any feature map is computed the same way); it
    records the batch sizes it was given in its ``calls``."""
    weights = torch.randn(int(np.prod(shape)), dim, generator=torch.Generator().manual_seed(seed))

    def features(x, *args, **kwargs):
        features.calls.append(len(x))
        return x.flatten(1).float() @ weights

    features.calls = []
    return features


def fake_celeba(root, n: int = 6, seed: int = 0):
    """A folder of n seeded random 178 x 218 JPEGs, the aligned CelebA images' size
    (:func:`gmdiff.data.load_celeba64` crops and resizes them to 64 x 64); root is returned."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)).save(root / f"{i:06d}.jpg")
    return root
