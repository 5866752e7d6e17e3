"""A zoo of small trained models that several chapters share, trained deterministically
and cached on disk so that the second chapter that needs one loads it instead of
retraining.

Every model is a run file (``configs/zoo/<model>.yaml``, named by the ``models`` of a
chapter's study, :mod:`gmdiff.study`, per profile) of an EDM-preconditioned network (Karras et al. 2022, Eq. 7 and Table 1;
:class:`gmdiff.nets.EDMPrecond`) trained with :func:`gmdiff.losses.edm_loss` through the
one harness, :func:`gmdiff.runs.load_or_train`; what is returned is the denoiser
``D(x, sigma)`` with the trainer's EMA weights, in eval mode and without gradients.

=====================  ===========================================================  ===================
model                  ``ci`` (CPU, shipped data)                                   ``full``
=====================  ===========================================================  ===================
:func:`digits_edm`     ``digits_edm.yaml``: U-Net (0.65M), 8x8 digits, 1000 steps    ``mnist_edm.yaml``
:func:`gmm_mlp`        ``gmm_mlp.yaml``: MLP 4x256, rank-3 4-mode GMM in R^16        ``gmm_mlp_full.yaml``
:func:`cifar10_edm`    (none: CIFAR-10 is not shipped)                              ``cifar10_edm.yaml``
:func:`digit_classifier`  the FD-digits feature extractor on the 8x8 digits         same
=====================  ===========================================================  ===================

``full`` uses the mini-EDM configurations of the Gaussian score paper's Table 3 (App. A.6)
on data the user provides through ``data_dir``; nothing is downloaded.

Determinism. The network is initialised from ``seed`` and every training step draws its
randomness from the trainer's per-step generators, so training twice gives bit-identical
weights on CPU. Training runs on one intra-op thread: on the shared 2-core machine it is
faster than two (measured 3.5 vs 0.4 U-Net steps/s, 31 vs 2.5 MLP steps/s under load) and
it keeps the floating-point reduction order independent of the machine's thread count.
The caller's global RNG state is left untouched.

Snapshots. ``snapshot_steps`` asks for the EMA weights at intermediate steps (the
"during training" analysis of the Gaussian score paper, Sec. 5, Fig. 12). Because a step's
randomness depends only on its index, stopping at a snapshot and continuing reaches the
same final weights as an uninterrupted run, so snapshots never change the final model.

Cache. ``results/cache/runs/<name>-<sha>/`` under the repository root (or
``$GMDIFF_CACHE_DIR`` or the ``cache_dir`` argument), where ``<sha>`` hashes the run config
(network, optimisation, data, seed): the run's checkpoint (so an interrupted ``full``
training resumes) and one file per snapshot; asking for a snapshot earlier than the
checkpoint retrains once from scratch (:func:`gmdiff.runs.load_or_train`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gmdiff import data, nets, runs
from gmdiff.analytic import GaussianMixture
from gmdiff.config import RunConfig, load_config, run_file
from gmdiff.digit_classifier import DigitClassifier, train_digit_classifier
from gmdiff.runs import cache_root
from gmdiff.storage import atomic_save
from gmdiff.study import Study

CACHE_VERSION = 1
ZOO_DIR = "configs/zoo"

#: The toy GMM of :func:`gmm_mlp` (``configs/zoo/gmm_mlp.yaml``'s data): d = 16, k = 4
#: modes, each on its own random rank-3 subspace (variances log-uniform in [0.05, 1]),
#: means ~ N(0, I); built from a fixed seed, so the same problem for every training seed.
GMM_SPEC: dict[str, Any] = dict(load_config(run_file(f"{ZOO_DIR}/gmm_mlp.yaml")).data.options)


def toy_gmm() -> GaussianMixture:
    """The low-rank GMM of :data:`GMM_SPEC` (float64), whose exact score and denoiser are
    known (Gaussian score paper, Eqs. 7, 8, 12, 13)."""
    return data.seeded_low_rank_gmm(**GMM_SPEC)


def _trained(study: Study, model: str, snapshot_steps, cache_dir):
    run, snaps = runs.load_or_train(
        study.run_config(model), study.cache_name(model), cache_dir=cache_dir,
        snapshot_steps=snapshot_steps,
    )  # fmt: skip
    return run.denoiser, snaps


def adequacy(
    study: Study, models: Iterable[str] = ("digits", "gmm"), *, cache_dir: str | Path | None = None
) -> pd.DataFrame:
    """The training adequacy (:meth:`gmdiff.runs.Run.adequacy`: EMA share of the
    initialisation, loss plateau) of the study's zoo ``models`` (trained if missing), one
    row each, for :func:`gmdiff.runs.adequacy_table`."""
    rows = []
    for model in models:
        run, _ = runs.load_or_train(study.run_config(model), study.cache_name(model), cache_dir=cache_dir)
        rows.append({"model": model, **run.adequacy()})
    return pd.DataFrame(rows)


def digits_edm(
    study: Study, snapshot_steps: Iterable[int] = (), *, cache_dir: str | Path | None = None
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond]]:
    """The study's EDM-preconditioned U-Net denoiser of digits (its ``models.digits``:
    sklearn's 8x8 digits in [-1, 1], images (B, 1, 8, 8), in ``ci``; MNIST padded to 32x32
    in ``full``), trained with the study's seed, and its EMA snapshots at
    ``snapshot_steps``: ``(denoiser, {step: denoiser})``."""
    return _trained(study, "digits", snapshot_steps, cache_dir)


def gmm_mlp(
    study: Study, snapshot_steps: Iterable[int] = (), *, cache_dir: str | Path | None = None
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond], GaussianMixture]:
    """The study's EDM-preconditioned MLP denoiser (its ``models.gmm``) trained on fresh
    samples of :func:`toy_gmm` (float32, (B, 16)), its snapshots, and the GMM itself
    (float64), whose exact ``denoiser`` is the model the network approximates."""
    den, snaps = _trained(study, "gmm", snapshot_steps, cache_dir)
    return den, snaps, toy_gmm()


def cifar10_config(data_dir: str | Path, seed: int = 0) -> RunConfig:
    """``configs/zoo/cifar10_edm.yaml`` with the data folder and seed set."""
    sets = [f"train.seed={seed}", f"data.options.data_dir={data_dir}"]
    return load_config(run_file(f"{ZOO_DIR}/cifar10_edm.yaml"), sets)


def cifar10_edm(
    data_dir: str | Path | None,
    seed: int = 0,
    snapshot_steps: Iterable[int] = (),
    *,
    cache_dir: str | Path | None = None,
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond]]:
    """An EDM-preconditioned U-Net denoiser of CIFAR-10 (the Gaussian score paper's
    Table 3 mini-EDM run, ``configs/zoo/cifar10_edm.yaml``), trained on the python batches
    in ``data_dir`` (:func:`gmdiff.data.load_cifar10`; nothing is downloaded)."""
    if data_dir is None:
        raise FileNotFoundError(
            "cifar10_edm trains on CIFAR-10, which is not shipped: pass data_dir=<the folder "
            "with cifar-10-batches-py> (nothing is downloaded)"
        )
    data.load_cifar10(data_dir, train=False)  # fail now, with the expected layout, if missing
    run, snaps = runs.load_or_train(
        cifar10_config(data_dir, seed), "cifar10_edm", cache_dir=cache_dir,
        snapshot_steps=snapshot_steps,
    )  # fmt: skip
    return run.denoiser, snaps


def digit_classifier(
    seed: int = 0, steps: int = 1000, *, cache_dir: str | Path | None = None
) -> DigitClassifier:
    """The FD-digits feature extractor (:mod:`gmdiff.digit_classifier`) trained on all
    1,797 sklearn 8x8 digits for ``steps`` Adam steps from ``seed``, cached like the
    models above. Use it with :func:`gmdiff.metrics.frechet_distance_digits`."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    key = json.dumps({"version": CACHE_VERSION, "seed": seed, "steps": steps, "data": "digits8x8"})
    path = (
        cache_root(cache_dir)
        / f"digit_classifier-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    )
    images, labels = data.digits8x8()
    if path.is_file():
        model = DigitClassifier(images.shape[1], int(labels.max()) + 1)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval().requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        model = train_digit_classifier(images, labels, steps, torch.Generator().manual_seed(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(model.state_dict(), path)
    return model.requires_grad_(False)
