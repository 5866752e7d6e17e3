"""A zoo of small trained models that several chapters share, trained deterministically
and cached on disk so that the second chapter that needs one loads it instead of
retraining.

Every model is a run config (:mod:`gmdiff.config`; the ``*_config`` functions below) of an
EDM-preconditioned network (Karras et al. 2022, Eq. 7 and Table 1;
:class:`gmdiff.nets.EDMPrecond`) trained with :func:`gmdiff.losses.edm_loss` through the
one harness, :func:`gmdiff.runs.load_or_train`; what is returned is the denoiser
``D(x, sigma)`` with the trainer's EMA weights, in eval mode and without gradients.

=====================  ==========================================================  ========
model                  ``ci`` profile (CPU, shipped data)                          ``full``
=====================  ==========================================================  ========
:func:`digits_edm`     U-Net ``digits`` (0.65M), sklearn 8x8 digits, 1000 steps     MNIST
:func:`gmm_mlp`        MLP 4x256 on a rank-3, 4-mode GMM in R^16, 2500 steps        same GMM
:func:`cifar10_edm`    (none: CIFAR-10 is not shipped)                             CIFAR-10
:func:`digit_classifier`  the FD-digits feature extractor on the 8x8 digits        same
=====================  ==========================================================  ========

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

import torch

from gmdiff import config, data, nets, runs
from gmdiff.analytic import GaussianMixture
from gmdiff.config import RunConfig
from gmdiff.digit_classifier import DigitClassifier, train_digit_classifier
from gmdiff.runs import cache_root
from gmdiff.storage import atomic_save

CACHE_VERSION = 1
PROFILES = ("ci", "full")

#: The toy GMM of :func:`gmm_mlp`: d = 16, k = 4 modes, each on its own random rank-3
#: subspace (variances log-uniform in [0.05, 1]), means ~ N(0, I); built from a fixed seed
#: so that it is the same problem for every training seed.
GMM_SPEC: dict[str, Any] = {"d": 16, "k": 4, "rank": 3, "seed": 0}

# Data standard deviations used by the preconditioning and the loss weight (EDM, Sec. 5).
SIGMA_DATA_IMAGES = 0.5
SIGMA_DATA_GMM = 1.0  # per-coordinate std of the GMM above is about 1.0


# --------------------------------------------------------------------------------------
# The run configs
# --------------------------------------------------------------------------------------


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


def _edm_config(data_section: dict, net: str, overrides: dict, sigma_data: float, train: dict):
    return config.from_dict(
        {
            "data": data_section,
            "model": {
                "net": net,
                "overrides": overrides,
                "precond": "edm",
                "sigma_data": sigma_data,
            },
            "loss": {"name": "edm"},
            "schedule": {"name": "edm"},
            "train": train,
        }
    )


def digits_config(profile: str = "ci", seed: int = 0, data_dir: str | Path | None = None):
    """The run config of :func:`digits_edm`.

    ``ci``: the ``digits`` U-Net config (base 32, ch_mult (1, 2), one block per level,
    dropout 0.1; 0.65M parameters) on the 1,797 sklearn digits, 1,000 steps at batch 128,
    Adam lr 1e-3 with 100 warm-up steps, EMA decay 0.995, on the CPU (about 4 minutes).
    ``full``: the paper's MNIST mini-EDM run (Table 3: batch 128, Adam lr 2e-4, 25,000
    steps, ch_mult (1, 2, 3, 4), base 16, no attention, one block per level) on MNIST
    padded to 32x32 from ``data_dir``; our U-Net is Ho et al.'s, not EDM's SongUNet.
    """
    _check_profile(profile)
    if profile == "ci":
        train = {"steps": 1000, "batch_size": 128, "lr": 1e-3, "warmup_steps": 100,
                 "ema_decay": 0.995, "seed": seed, "log_every": 100, "device": "cpu"}  # fmt: skip
        return _edm_config({"name": "digits8x8"}, "digits", {}, SIGMA_DATA_IMAGES, train)
    net = {"ch": 16, "ch_mult": [1, 2, 3, 4], "num_res_blocks": 1, "attn_resolutions": [],
           "dropout": 0.0, "in_ch": 1, "resolution": 32}  # fmt: skip
    train = {"steps": 25_000, "batch_size": 128, "lr": 2e-4, "ema_decay": 0.9999, "seed": seed,
             "ckpt_every": 1000}  # fmt: skip
    mnist = {"name": "mnist32", "options": {"data_dir": str(data_dir)}}
    return _edm_config(mnist, "digits", net, SIGMA_DATA_IMAGES, train)


def cifar10_config(profile: str = "full", seed: int = 0, data_dir: str | Path | None = None):
    """The run config of :func:`cifar10_edm`: the paper's CIFAR-10 mini-EDM run (Table 3:
    batch 128, Adam lr 2e-4, 50,000 steps, ch_mult (1, 2, 2), base 96, attention at 16x16,
    two blocks per level), with random horizontal flips. ``full`` only."""
    _check_profile(profile)
    if profile != "full":
        raise ValueError(
            "cifar10_edm has no 'ci' profile: CIFAR-10 is not shipped with any package; use "
            "profile='full' with data_dir, or digits_edm for a CPU-sized image model"
        )
    net = {"ch": 96, "ch_mult": [1, 2, 2], "num_res_blocks": 2, "attn_resolutions": [16],
           "dropout": 0.1, "in_ch": 3, "resolution": 32}  # fmt: skip
    train = {"steps": 50_000, "batch_size": 128, "lr": 2e-4, "ema_decay": 0.9999, "seed": seed,
             "ckpt_every": 1000}  # fmt: skip
    cifar = {"name": "cifar10", "options": {"data_dir": str(data_dir)}, "hflip": True}
    return _edm_config(cifar, "ddpm_cifar10", net, SIGMA_DATA_IMAGES, train)


def gmm_config(profile: str = "ci", seed: int = 0) -> RunConfig:
    """The run config of :func:`gmm_mlp`: the ``toy_mlp`` MLP (4 hidden layers of 256,
    sinusoidal noise embedding) with ``dim`` 16 on fresh samples of :func:`toy_gmm`.
    ``ci``: 2,500 steps at batch 512, lr 1e-3, EMA 0.995, CPU (about 1.5 minutes);
    ``full``: 50,000 steps at batch 1024, lr 1e-3 with 1,000 warm-up steps, EMA 0.999."""
    _check_profile(profile)
    if profile == "ci":
        train = {"steps": 2500, "batch_size": 512, "lr": 1e-3, "warmup_steps": 100,
                 "ema_decay": 0.995, "seed": seed, "log_every": 100, "device": "cpu"}  # fmt: skip
    else:
        train = {"steps": 50_000, "batch_size": 1024, "lr": 1e-3, "warmup_steps": 1000,
                 "ema_decay": 0.999, "seed": seed, "ckpt_every": 5000}  # fmt: skip
    gmm = {"name": "low_rank_gmm", "options": GMM_SPEC}
    return _edm_config(gmm, "toy_mlp", {"dim": GMM_SPEC["d"]}, SIGMA_DATA_GMM, train)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def toy_gmm() -> GaussianMixture:
    """The low-rank GMM of :data:`GMM_SPEC` (float64), whose exact score and denoiser are
    known (Gaussian score paper, Eqs. 7, 8, 12, 13)."""
    return data.seeded_low_rank_gmm(**GMM_SPEC)


def _require_dir(data_dir: str | Path | None, what: str) -> Path:
    if data_dir is None:
        raise FileNotFoundError(
            f"profile='full' trains on {what}, which is not shipped: pass data_dir=<folder> "
            "(nothing is downloaded)"
        )
    return Path(data_dir)


def _trained(cfg: RunConfig, name: str, snapshot_steps, cache_dir):
    run, snaps = runs.load_or_train(cfg, name, cache_dir=cache_dir, snapshot_steps=snapshot_steps)
    return run.denoiser, snaps


# --------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------


def digits_edm(
    profile: str = "ci",
    seed: int = 0,
    snapshot_steps: Iterable[int] = (),
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond]]:
    """An EDM-preconditioned U-Net denoiser of digits and its EMA snapshots.

    ``ci``: sklearn's 8x8 digits in [-1, 1] (images (B, 1, 8, 8)); ``full``: MNIST from
    ``data_dir`` (IDX file, padded with the background value to 32x32). See
    :func:`digits_config` for the settings. Returns ``(denoiser, {step: denoiser})``.
    """
    if profile == "full":
        data.mnist_file(_require_dir(data_dir, "MNIST (train-images-idx3-ubyte[.gz])"))
    cfg = digits_config(profile, seed, data_dir)
    return _trained(
        cfg, "digits_edm" if profile == "ci" else "mnist_edm", snapshot_steps, cache_dir
    )


def cifar10_edm(
    profile: str = "full",
    seed: int = 0,
    snapshot_steps: Iterable[int] = (),
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond]]:
    """An EDM-preconditioned U-Net denoiser of CIFAR-10 (``full`` only; the paper's
    Table 3 mini-EDM run, see :func:`cifar10_config`), trained on the python batches in
    ``data_dir`` (:func:`gmdiff.data.load_cifar10`)."""
    cfg = cifar10_config(profile, seed, data_dir)
    root = _require_dir(data_dir, "CIFAR-10 (cifar-10-batches-py)")
    data.load_cifar10(root, train=False)  # fail now, with the expected layout, if missing
    return _trained(cfg, "cifar10_edm", snapshot_steps, cache_dir)


def gmm_mlp(
    profile: str = "ci",
    seed: int = 0,
    snapshot_steps: Iterable[int] = (),
    *,
    cache_dir: str | Path | None = None,
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond], GaussianMixture]:
    """An EDM-preconditioned MLP denoiser trained on fresh samples of :func:`toy_gmm`
    (float32, (B, 16)), its snapshots, and the GMM itself (float64), whose exact
    ``denoiser`` is the model the network approximates."""
    den, snaps = _trained(gmm_config(profile, seed), "gmm_mlp", snapshot_steps, cache_dir)
    return den, snaps, toy_gmm()


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
