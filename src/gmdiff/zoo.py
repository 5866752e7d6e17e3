"""A zoo of small trained models that several chapters share, trained deterministically
and cached on disk so that the second chapter that needs one loads it instead of
retraining.

Every model is an EDM-preconditioned network (Karras et al. 2022, Eq. 7 and Table 1;
:class:`gmdiff.nets.EDMPrecond`) trained with :func:`gmdiff.losses.edm_loss` by
:class:`gmdiff.train.Trainer`; what is returned is the denoiser ``D(x, sigma)`` with the
trainer's EMA weights, in eval mode and without gradients.

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

Cache. ``results/cache/<name>-<sha>.pt`` under the repository root (or ``$GMDIFF_CACHE_DIR``
or the ``cache_dir`` argument), where ``<sha>`` hashes the whole configuration (network,
optimisation, data, seed). A file holds the final EMA weights and every snapshot trained
so far; asking for a snapshot it lacks retrains once from scratch and rewrites it with the
union. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gmdiff import data, nets
from gmdiff.analytic import GaussianMixture
from gmdiff.digit_classifier import DigitClassifier, train_digit_classifier
from gmdiff.losses import edm_loss
from gmdiff.train import TrainConfig, Trainer, atomic_save

CACHE_ENV = "GMDIFF_CACHE_DIR"
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
# Specifications
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines a trained zoo model; its hash names the cache file."""

    name: str
    net: nets.configs.NetConfig
    train: TrainConfig
    sigma_data: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "name": self.name,
            "net_type": type(self.net).__name__,
            "net": asdict(self.net),
            "train": asdict(self.train),
            "sigma_data": self.sigma_data,
            "data": self.data,
        }

    @property
    def sha(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def build(self) -> nets.EDMPrecond:
        """A freshly initialised preconditioned network, seeded by ``train.seed``."""
        return nets.EDMPrecond(nets.build_net(self.net, self.train.seed), self.sigma_data)


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


def _check_snapshots(snapshot_steps: Iterable[int], steps: int) -> tuple[int, ...]:
    out = tuple(sorted({int(s) for s in snapshot_steps}))
    bad = [s for s in out if not 0 <= s <= steps]
    if bad:
        raise ValueError(
            f"snapshot_steps must lie in [0, {steps}] (the training length), got {bad}"
        )
    return out


def digits_spec(profile: str = "ci", seed: int = 0) -> ModelSpec:
    """The spec of :func:`digits_edm`.

    ``ci``: the ``digits`` U-Net config (base 32, ch_mult (1, 2), one block per level,
    dropout 0.1; 0.65M parameters) on the 1,797 sklearn digits, 1,000 steps at batch 128,
    Adam lr 1e-3 with 100 warm-up steps, EMA decay 0.995, on the CPU (about 4 minutes).
    ``full``: the paper's MNIST mini-EDM run (Table 3: batch 128, Adam lr 2e-4, 25,000
    steps, ch_mult (1, 2, 3, 4), base 16, no attention, one block per level) on MNIST
    padded to 32x32; our U-Net is Ho et al.'s, not EDM's SongUNet.
    """
    _check_profile(profile)
    if profile == "ci":
        net = nets.get_config("digits")
        train = TrainConfig(
            steps=1000, batch_size=128, lr=1e-3, warmup_steps=100, ema_decay=0.995,
            seed=seed, log_every=100, device="cpu",
        )  # fmt: skip
        return ModelSpec("digits_edm", net, train, SIGMA_DATA_IMAGES, {"dataset": "digits8x8"})
    net = nets.UNetConfig(
        ch=16, ch_mult=(1, 2, 3, 4), num_res_blocks=1, attn_resolutions=(), dropout=0.0,
        in_ch=1, resolution=32,
    )  # fmt: skip
    train = TrainConfig(steps=25_000, batch_size=128, lr=2e-4, ema_decay=0.9999, seed=seed)
    return ModelSpec("mnist_edm", net, train, SIGMA_DATA_IMAGES, {"dataset": "mnist-train-pad32"})


def cifar10_spec(profile: str = "full", seed: int = 0) -> ModelSpec:
    """The spec of :func:`cifar10_edm`: the paper's CIFAR-10 mini-EDM run (Table 3: batch
    128, Adam lr 2e-4, 50,000 steps, ch_mult (1, 2, 2), base 96, attention at 16x16, two
    blocks per level), with random horizontal flips. ``full`` only."""
    _check_profile(profile)
    if profile != "full":
        raise ValueError(
            "cifar10_edm has no 'ci' profile: CIFAR-10 is not shipped with any package; use "
            "profile='full' with data_dir, or digits_edm for a CPU-sized image model"
        )
    net = nets.UNetConfig(
        ch=96, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1,
        in_ch=3, resolution=32,
    )  # fmt: skip
    train = TrainConfig(steps=50_000, batch_size=128, lr=2e-4, ema_decay=0.9999, seed=seed)
    return ModelSpec(
        "cifar10_edm", net, train, SIGMA_DATA_IMAGES, {"dataset": "cifar10-train-hflip"}
    )


def gmm_spec(profile: str = "ci", seed: int = 0) -> ModelSpec:
    """The spec of :func:`gmm_mlp`: the ``toy_mlp`` MLP (4 hidden layers of 256,
    sinusoidal noise embedding) with ``dim`` 16 on fresh samples of :func:`toy_gmm`.
    ``ci``: 2,500 steps at batch 512, lr 1e-3, EMA 0.995, CPU (about 1.5 minutes);
    ``full``: 50,000 steps at batch 1024, lr 1e-3 with 1,000 warm-up steps, EMA 0.999."""
    _check_profile(profile)
    net = nets.get_config("toy_mlp", dim=GMM_SPEC["d"])
    if profile == "ci":
        train = TrainConfig(
            steps=2500, batch_size=512, lr=1e-3, warmup_steps=100, ema_decay=0.995,
            seed=seed, log_every=100, device="cpu",
        )  # fmt: skip
    else:
        train = TrainConfig(
            steps=50_000, batch_size=1024, lr=1e-3, warmup_steps=1000, ema_decay=0.999, seed=seed
        )
    return ModelSpec("gmm_mlp", net, train, SIGMA_DATA_GMM, {"gmm": GMM_SPEC})


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def toy_gmm() -> GaussianMixture:
    """The low-rank GMM of :data:`GMM_SPEC` (float64), whose exact score and denoiser are
    known (Gaussian score paper, Eqs. 7, 8, 12, 13)."""
    g = torch.Generator().manual_seed(GMM_SPEC["seed"])
    return data.low_rank_gmm(GMM_SPEC["d"], GMM_SPEC["k"], GMM_SPEC["rank"], g)


def _require_dir(data_dir: str | Path | None, what: str) -> Path:
    if data_dir is None:
        raise FileNotFoundError(
            f"profile='full' trains on {what}, which is not shipped: pass data_dir=<folder> "
            "(nothing is downloaded)"
        )
    return Path(data_dir)


# --------------------------------------------------------------------------------------
# Training and the cache
# --------------------------------------------------------------------------------------


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$GMDIFF_CACHE_DIR``, else ``results/cache`` under the
    repository root (the folder holding ``pyproject.toml`` above this file), else under
    the current directory."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    repo = Path(__file__).resolve().parents[2]
    base = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    return base / "results" / "cache"


def cache_path(spec: ModelSpec, cache_dir: str | Path | None = None) -> Path:
    """Where the trained weights of ``spec`` are cached."""
    return cache_root(cache_dir) / f"{spec.name}-{spec.sha}.pt"


def train_spec(
    spec: ModelSpec,
    train_data: Tensor | Callable[[int, torch.Generator], Tensor] | torch.utils.data.Dataset,
    snapshot_steps: Iterable[int] = (),
    transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
) -> dict[str, Any]:
    """Train ``spec`` from scratch on ``train_data`` and return ``{"ema": state_dict,
    "snapshots": {step: EMA state_dict}}``; the training is stopped at each snapshot step
    and continued (which does not change the result, see the module docstring)."""
    snaps = _check_snapshots(snapshot_steps, spec.train.steps)
    model = spec.build()
    n_threads = torch.get_num_threads()
    on_cpu = spec.train.device == "cpu" or not torch.cuda.is_available()
    with torch.random.fork_rng(devices=[]):
        if on_cpu:
            torch.set_num_threads(1)
        try:
            loss = functools.partial(edm_loss, sigma_data=spec.sigma_data)
            trainer = Trainer(model, loss, train_data, spec.train, transform=transform)
            snapshots: dict[int, dict[str, Tensor]] = {}
            for stop in [*snaps, spec.train.steps]:
                if stop > trainer.step:
                    trainer.config = dataclasses.replace(spec.train, steps=stop)
                    trainer.fit(resume=False)
                if stop in snaps:
                    snapshots[stop] = _cpu_state(trainer.ema)
        finally:
            torch.set_num_threads(n_threads)
    return {"ema": _cpu_state(trainer.ema), "snapshots": snapshots}


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _spec_json(spec: ModelSpec) -> dict[str, Any]:
    """The spec as stored in a cache file (JSON types: tuples become lists)."""
    return json.loads(json.dumps(spec.as_dict(), default=str))


def _read_cache(spec: ModelSpec, path: Path) -> dict[str, Any] | None:
    """The cached state of ``spec``, or None when absent or written for another spec."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("spec") == _spec_json(spec) else None


def _denoiser(spec: ModelSpec, state: dict[str, Tensor]) -> nets.EDMPrecond:
    model = spec.build()
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


def load_or_train(
    spec: ModelSpec,
    get_data: Callable[[], Any],
    snapshot_steps: Iterable[int] = (),
    *,
    cache_dir: str | Path | None = None,
    transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond]]:
    """The trained denoiser of ``spec`` and its snapshots, from the cache when it holds
    them, else trained on ``get_data()`` and cached (with the snapshots already cached)."""
    snaps = _check_snapshots(snapshot_steps, spec.train.steps)
    path = cache_path(spec, cache_dir)
    state = _read_cache(spec, path)
    have = set() if state is None else {int(k) for k in state["snapshots"]}
    if state is None or not set(snaps) <= have:
        trained = train_spec(spec, get_data(), sorted(have | set(snaps)), transform)
        state = {
            "spec": _spec_json(spec),
            "ema": trained["ema"],
            "snapshots": {str(k): v for k, v in trained["snapshots"].items()},
        }
        # Another process may have cached more snapshots meanwhile: training is
        # deterministic, so its snapshots are ours too; keep the union.
        other = _read_cache(spec, path)
        if other is not None:
            state["snapshots"] = {**other["snapshots"], **state["snapshots"]}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(state, path)
    return _denoiser(spec, state["ema"]), {
        s: _denoiser(spec, state["snapshots"][str(s)]) for s in snaps
    }


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
    :func:`digits_spec` for the settings. Returns ``(denoiser, {step: denoiser})``.
    """
    spec = digits_spec(profile, seed)
    if profile == "ci":
        get = lambda: data.digits8x8()[0]
    else:
        root = _require_dir(data_dir, "MNIST (train-images-idx3-ubyte[.gz])")
        data.mnist_file(root)  # fail now, naming the expected file, if it is missing
        get = lambda: data.mnist32(root)
    return load_or_train(spec, get, snapshot_steps, cache_dir=cache_dir)


def cifar10_edm(
    profile: str = "full",
    seed: int = 0,
    snapshot_steps: Iterable[int] = (),
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[nets.EDMPrecond, dict[int, nets.EDMPrecond]]:
    """An EDM-preconditioned U-Net denoiser of CIFAR-10 (``full`` only; the paper's
    Table 3 mini-EDM run, see :func:`cifar10_spec`), trained on the python batches in
    ``data_dir`` (:func:`gmdiff.data.load_cifar10`)."""
    spec = cifar10_spec(profile, seed)
    root = _require_dir(data_dir, "CIFAR-10 (cifar-10-batches-py)")
    data.load_cifar10(root, train=False)  # fail now, with the expected layout, if missing
    return load_or_train(
        spec, lambda: data.load_cifar10(root)[0], snapshot_steps,
        cache_dir=cache_dir, transform=data.random_hflip,
    )  # fmt: skip


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
    spec = gmm_spec(profile, seed)
    gmm = toy_gmm()
    sampler = lambda n, gen: gmm.sample(n, gen).float()
    den, snaps = load_or_train(spec, lambda: sampler, snapshot_steps, cache_dir=cache_dir)
    return den, snaps, gmm


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
