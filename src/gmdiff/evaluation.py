"""FID of generated images with its protocol, and the likelihood report of ``gmdiff evaluate``.

An FID number means little without the protocol it was measured under (Parmar et al. 2022,
"clean-fid"; Kynkaenniemi et al. 2023): how many samples, which reference set and where its
statistics came from, which Inception preprocessing ("clean" or "legacy_tensorflow", the
original TensorFlow FID's), which weights (EMA or raw) and which seed drew the samples.
:func:`fid_report` computes FID with clean-fid's Inception network
(:func:`gmdiff.metrics.inception_features`, local weights only) and returns the number with
that protocol; :func:`protocol_text` prints them together.

Reference: a folder of images (PNG/JPEG, features computed here; then k-NN precision and
recall, Kynkaenniemi et al. 2019, are reported too) or an ``.npz`` file of precomputed
statistics ``mu`` (2048,) and ``sigma`` (2048, 2048) -- clean-fid's and pytorch-fid's format
(clean-fid's files are named ``<dataset>_<mode>_<split>_<res>.npz``; the mode must match).
No Inception Score here: clean-fid has none and the torchscript network gives features only;
IS and KID come from torch-fidelity, an optional extra (:mod:`gmdiff.fidelity`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gmdiff import metrics


@dataclass
class FIDProtocol:
    """What an FID was measured under; ``reference_origin`` says where the reference
    statistics came from (computed here from N images of a folder, or a file)."""

    n_samples: int
    reference: str
    reference_origin: str
    inception_mode: str
    features: str
    weights: str
    seed: int | None
    model: str = ""
    sampler: str = ""


def _reference_stats(
    reference: Path, mode: str, extract
) -> tuple[np.ndarray, np.ndarray, str, Tensor | None]:
    """(mu, sigma, origin, features or None) of a reference folder or .npz statistics."""
    from gmdiff.images import load_folder

    if reference.is_dir():
        feats = extract(load_folder(reference))
        mu, sigma = metrics.feature_statistics(feats)
        origin = f"computed here from {feats.shape[0]} images of {reference} (mode {mode})"
        return mu, sigma, origin, feats
    if reference.suffix == ".npz" and reference.is_file():
        with np.load(reference) as z:
            if "mu" not in z or "sigma" not in z:
                raise ValueError(f"{reference}: expected arrays 'mu' and 'sigma', got {z.files}")
            mu, sigma = z["mu"], z["sigma"]
        check_statistics(mu, sigma, reference)
        if mode not in reference.name:
            origin = (
                f"precomputed statistics {reference} (the file name does not name the "
                f"Inception mode {mode!r}: check it was computed with the same mode)"
            )
        else:
            origin = f"precomputed statistics {reference}"
        return mu, sigma, origin, None
    raise FileNotFoundError(
        f"FID reference {reference} is neither a folder of images nor an .npz file of "
        "statistics (mu, sigma); pass e.g. the CIFAR-10 training images as PNGs or "
        "clean-fid's cifar10_clean_train_32.npz (downloaded by you, beforehand)"
    )


def check_statistics(mu: np.ndarray, sigma: np.ndarray, where: Path) -> None:
    """Refuse reference statistics that cannot give an FID: not a (D,) mean and a (D, D)
    covariance of 2048 Inception features, or holding NaN or inf."""
    mu, sigma = np.asarray(mu), np.asarray(sigma)
    if mu.shape != (2048,) or sigma.shape != (2048, 2048):
        raise ValueError(
            f"{where}: mu {mu.shape} and sigma {sigma.shape} are not the statistics of "
            "Inception's 2048 pool3 features (mu (2048,), sigma (2048, 2048)); compute them "
            "with clean-fid or pass a folder of reference images"
        )
    for name, a in (("mu", mu), ("sigma", sigma)):
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise ValueError(
                f"{where}: {name} holds NaN or inf values (or is not numeric); the FID would be "
                "NaN: recompute the statistics or pass a folder of reference images"
            )


def fid_report(
    samples: Tensor,
    reference: str | Path,
    *,
    mode: str = "clean",
    weights_dir: str | Path | None = None,
    centered: bool = True,
    device: str | torch.device = "cpu",
    weights: str = "as stored",
    seed: int | None = None,
    model: str = "",
    sampler: str = "",
) -> dict:
    """FID of ``samples`` (N, C, H, W) against ``reference`` (module docstring), with the
    protocol (:class:`FIDProtocol` fields) and, for a reference folder, k-NN precision and
    recall (k = 3) in Inception space. Samples are in [-1, 1] (``centered``) or [0, 1]."""
    x = samples if centered else 2 * samples - 1
    if x.ndim != 4:
        raise ValueError(f"FID needs images (N, C, H, W), got samples of shape {tuple(x.shape)}")

    def extract(images: Tensor) -> Tensor:
        return metrics.inception_features(images, weights_dir, device=device, mode=mode)

    mu_r, sig_r, origin, ref_feats = _reference_stats(Path(reference), mode, extract)
    feats = extract(x)
    fid = metrics.frechet_distance(*metrics.feature_statistics(feats), mu_r, sig_r)
    wdir = metrics.inception_weights_dir(weights_dir)
    protocol = FIDProtocol(
        n_samples=int(x.shape[0]),
        reference=str(reference),
        reference_origin=origin,
        inception_mode=mode,
        features=f"Inception-v3 pool3 (2048-d), torchscript {wdir / metrics.INCEPTION_FILE}",
        weights=weights,
        seed=seed,
        model=model,
        sampler=sampler,
    )
    out = {"fid": fid, "protocol": asdict(protocol)}
    if ref_feats is not None:
        out["precision"], out["recall"] = metrics.precision_recall(ref_feats, feats, k=3)
    return out


def protocol_text(report: dict) -> str:
    """The FID with its protocol, one item per line."""
    p = report["protocol"]
    lines = [f"FID {report['fid']:.4g}"]
    if "precision" in report:
        lines[0] += f"  (precision {report['precision']:.3f}, recall {report['recall']:.3f}, k=3)"
    lines += [
        f"  samples:     {p['n_samples']} (seed {p['seed']}, weights {p['weights']})",
        f"  model:       {p['model'] or 'n/a'}",
        f"  sampler:     {p['sampler'] or 'n/a'}",
        f"  reference:   {p['reference']}",
        f"  statistics:  {p['reference_origin']}",
        f"  Inception:   {p['features']}, clean-fid mode {p['inception_mode']!r}",
    ]
    return "\n".join(lines)
