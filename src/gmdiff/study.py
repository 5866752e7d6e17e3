"""A chapter's study: what it runs under each profile, read from ``configs/studies/<chapter>.yaml``.

This is the one module that interprets a chapter's ``profile``. A chapter opens its study

    S = Study.open("smd_tables", profile, seed=seed, data_dir=data_dir)

and gets its sizes (``S.sizes``, the profile's entries), the device and thread count it
runs with, its image data with that data's quality metric (``S.images``: FD-digits on the
8x8 digits, Inception FID on a user's CIFAR-10 / CelebA-64 / MNIST), and the run configs
of the trained models it names (``S.run_config("digits")``). Profiles: ``ci`` (2 CPU cores,
data that packages ship), ``long`` (the ci data and models with evidence the ci book's
time cannot hold; stored in ``results/long``), ``full`` (paper scale: GPUs, user data).

A profile's entries are the chapter's sizes, except ``study``, the resolver's own block:

``data``
    the image data set: ``digits8x8`` (shipped) or ``cifar10`` / ``celeba64`` / ``mnist32``
    (a user's folder, ``data_dir``); with ``datasets`` the alternatives ``dataset=`` may
    choose, each with the sizes it changes.
``scores``
    what its samples are scored with: true (default) the data set's own metric (``fid``
    or ``fd-digits``), false none (the chapter trains on the data but scores no samples:
    no Inception check), or a list of that metric and :data:`gmdiff.fidelity.METRICS`
    (``[fid, is]``: FID and torch-fidelity's Inception Score, :meth:`Images.inception_score`).
``device``
    ``cpu`` (default) or ``auto`` (CUDA when available).
``threads``
    torch's intra-op threads, set when the study opens (1 for the CPU chapters' small
    networks, whose one-thread steps are the fastest on 2 cores; see :mod:`gmdiff.threads`).
``models``
    ``{key: run file}``, the run configs (``configs/<file>.yaml``) of the models the chapter
    trains or loads; the study sets their seed and, for those of its data set, data folder.

A profile may ``extends: <profile>``: its entries are merged over that profile's.
Everything a profile needs from outside (the data folder, clean-fid's Inception weights,
torch-fidelity and its Inception weights) is checked when the study opens, before any kernel work, with a sentence saying how to
provide it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from gmdiff import data, fidelity, metrics
from gmdiff.config import REPO, RunConfig, load_config

STUDY_DIR = REPO / "configs" / "studies"
CONFIG_DIR = REPO / "configs"

#: The profiles a chapter may define (``ci`` and ``full`` always; ``long`` where it has one).
PROFILES = ("ci", "long", "full")


@dataclass(frozen=True)
class Dataset:
    """An image data set a study can train and score on: its quality metric and, for a
    user's folder, how to provide it and a cheap check that it is there."""

    metric: str
    label: str
    howto: str = ""
    check: Callable[[Path], object] | None = None


def _check_cifar10(root: Path) -> None:
    data.load_cifar10(root, train=False)  # the 10,000 test images: the layout, fast


DATASETS: dict[str, Dataset] = {
    "digits8x8": Dataset("FD-digits", "sklearn digits 8x8"),
    "cifar10": Dataset(
        "FID", "CIFAR-10 32x32", "the folder with cifar-10-batches-py (gmdiff.data.load_cifar10)", _check_cifar10
    ),
    "celeba64": Dataset("FID", "CelebA 64x64", "a folder of aligned CelebA images (gmdiff.data.load_celeba64)"),
    "mnist32": Dataset(
        "FID", "MNIST padded to 32x32", "the folder with MNIST's train-images-idx3-ubyte[.gz] (gmdiff.data.mnist_file)",
        data.mnist_file,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Images:
    """A study's image data: the run-config ``data`` section that trains on it, the real
    images its samples are scored against, and the metric (FD-digits in the digit
    classifier's features, or Inception FID)."""

    name: str
    data_dir: Path | None = None
    scores: tuple[str, ...] = ()  # the study's ``scores``, as names

    @property
    def metric(self) -> str:
        return DATASETS[self.name].metric

    @property
    def label(self) -> str:
        """The data set in words, for tables."""
        return DATASETS[self.name].label

    @property
    def config(self) -> dict[str, Any]:
        """The ``data`` section of a run config that trains on these images."""
        if self.data_dir is None:
            return {"name": self.name}
        return {"name": self.name, "options": {"data_dir": str(self.data_dir)}}

    @property
    def overrides(self) -> list[str]:
        """``key=value`` overrides pointing a run file's data at this folder."""
        if self.data_dir is None:
            return []
        return [f"data.options.data_dir={json.dumps(str(self.data_dir))}"]  # any path: a JSON string

    def load(self, n: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The real images (N, C, H, W) in [-1, 1] and their labels (None where the set has
        none); CelebA-64's first ``n`` images (the folder is read lazily)."""
        if self.name == "digits8x8":
            return data.digits8x8()
        if self.name == "cifar10":
            return data.load_cifar10(self.data_dir)
        if self.name == "mnist32":
            return data.mnist32(self.data_dir), None
        folder = data.load_celeba64(self.data_dir)
        count = len(folder) if n is None else min(n, len(folder))
        return torch.stack([folder[i] for i in range(count)]), None

    def classifier(self):
        """The zoo's digit classifier (seed 0), the book's one FD-digits / IS-digits feature
        extractor, for the digits; None for a set scored with Inception."""
        if self.metric != "FD-digits":
            return None
        from gmdiff import zoo

        return zoo.digit_classifier()

    def inception_score(self, device: str = "cpu") -> Callable[[Tensor], float] | None:
        """x -> the Inception Score of images x (N, C, H, W) in [-1, 1] through torch-fidelity
        (:func:`gmdiff.fidelity.inception_score`: mean over 10 splits, Salimans et al. 2016)
        on ``device``, when the study's ``scores`` list ``is``; else None (the digits'
        IS-digits uses :meth:`classifier`). Its weights and library were checked at open."""
        if "is" not in self.scores:
            return None
        return fidelity.inception_score(None, device)

    def features(self, device: str = "cpu") -> Callable[[Tensor], Tensor]:
        """The metric's feature map, images (N, C, H, W) in [-1, 1] -> (N, F): the digit
        classifier's penultimate layer or clean-fid's Inception network on ``device``."""
        classifier = self.classifier()
        if classifier is not None:
            return lambda x: metrics.classifier_features(classifier, x)
        return lambda x: metrics.inception_features(x, device=device)

    def frechet(self, reference: Tensor, device: str = "cpu") -> Callable[[Tensor], float]:
        """x -> the metric (FD-digits or FID) of images x, clipped to [-1, 1] as images are
        stored, against ``reference``, whose features are computed once."""
        features = self.features(device)
        ref = features(reference)
        return lambda x: metrics.frechet_distance_features(features(x.clamp(-1, 1)), ref)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def read(chapter: str) -> dict[str, dict[str, Any]]:
    """``{profile: entries}`` of ``configs/studies/<chapter>.yaml``, ``extends`` resolved."""
    path = STUDY_DIR / f"{chapter}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
        raise KeyError(f"no study for chapter {chapter!r}; known: {known}")
    table = yaml.safe_load(path.read_text())
    for name, entries in table.items():
        if "extends" in entries:
            parent = entries["extends"]
            table[name] = _merge(table[parent], {k: v for k, v in entries.items() if k != "extends"})
    return table


@dataclass
class Study:
    """A chapter under one profile (see the module's docstring); open it with :meth:`open`."""

    chapter: str
    profile: str
    seed: int
    sizes: dict[str, Any]
    device: str = "cpu"
    images: Images | None = None
    models: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        chapter: str,
        profile: str = "ci",
        *,
        seed: int = 0,
        data_dir: str | Path | None = None,
        dataset: str | None = None,
    ) -> Study:
        """The study of ``chapter`` under ``profile``. Checks, before anything is computed,
        that a profile on a user's data set has ``data_dir`` (holding that set) and, when
        scored with FID, the Inception weights; sets torch's threads where it says so."""
        table = read(chapter)
        if profile not in table:
            raise ValueError(f"profile must be one of {sorted(table)}, got {profile!r}")
        entries = dict(table[profile])
        block = entries.pop("study", {}) or {}
        data_name = block.get("data")
        alternatives = block.get("datasets", {})
        if dataset is not None and dataset != data_name:
            if dataset not in alternatives:
                choices = [data_name, *alternatives] if data_name else []
                raise ValueError(
                    f"{chapter}, profile {profile}: dataset must be one of {choices}, got {dataset!r}"
                )
            entries = _merge(entries, alternatives[dataset])
            data_name = dataset
        scores = block.get("scores", True)
        images = None if data_name is None else _images(chapter, profile, data_name, data_dir, scores)
        device = block.get("device", "cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if "threads" in block:
            torch.set_num_threads(int(block["threads"]))
        return cls(chapter, profile, seed, entries, device, images, dict(block.get("models", {})))

    def __getitem__(self, key: str) -> Any:
        return self.sizes[key]

    def run_config(self, model: str, *, seed: int | None = None) -> RunConfig:
        """The run config of the study's model ``model`` (``configs/<file>.yaml`` named in
        ``models``), with this study's seed (or ``seed``) and, when it trains on the study's
        data set, data folder (a model of other data, e.g. the zoo's toy GMM beside MNIST,
        keeps its own data section)."""
        if model not in self.models:
            raise KeyError(f"{self.chapter} ({self.profile}) has no model {model!r}; known: {sorted(self.models)}")
        path = CONFIG_DIR / f"{self.models[model]}.yaml"
        sets = [f"train.seed={self.seed if seed is None else seed}"]
        cfg = load_config(path, sets)
        if self.images is None or not self.images.overrides or cfg.data.name != self.images.name:
            return cfg
        return load_config(path, [*sets, *self.images.overrides])

    def cache_name(self, model: str) -> str:
        """The cache folder prefix of the model: its run file's name."""
        return Path(self.models[model]).stem


def _scores(chapter: str, profile: str, spec: Dataset, scores: Any) -> tuple[str, ...]:
    """The metrics a profile's ``scores`` names (module docstring), or a ValueError."""
    own = spec.metric.lower()
    if isinstance(scores, bool):
        return (own,) if scores else ()
    allowed = [own, *fidelity.METRICS]
    names = [scores] if isinstance(scores, str) else scores
    if not isinstance(names, list) or not set(names) <= set(allowed):
        raise ValueError(
            f"{chapter}, profile {profile}: study.scores must be true, false or a list of "
            f"{allowed}, got {scores!r}"
        )
    return tuple(dict.fromkeys(names))


def _images(
    chapter: str, profile: str, name: str, data_dir: str | Path | None, scores: Any
) -> Images:
    if name not in DATASETS:
        raise ValueError(f"{chapter}: unknown data set {name!r}; known: {sorted(DATASETS)}")
    spec = DATASETS[name]
    names = _scores(chapter, profile, spec, scores)
    if not spec.howto:
        if set(names) & set(fidelity.METRICS):
            fidelity.check()
        return Images(name, None, names)
    if data_dir is None or not Path(data_dir).is_dir():
        raise FileNotFoundError(
            f"data_dir={None if data_dir is None else str(data_dir)!r}: the {profile} profile of "
            f"{chapter} trains on {name}, which is not shipped (nothing is downloaded). "
            f"Pass -p data_dir with {spec.howto}."
        )
    if spec.check is not None:
        spec.check(Path(data_dir))
    if "fid" in names:
        metrics.inception_weights_dir()
    if set(names) & set(fidelity.METRICS):
        fidelity.check()  # torch-fidelity's weights, then the library: one sentence each
    return Images(name, Path(data_dir), names)
