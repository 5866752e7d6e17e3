"""Inception Score and Kernel Inception Distance of generated images, with their protocol,
through torch-fidelity (Obukhov et al.; an optional extra: ``pip install -e ".[fidelity]"``).

``gmdiff evaluate`` computes them when ``evaluate.metrics`` lists ``is`` and/or ``kid``:

* **IS** (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)) of the samples, on the 1008-way
  logits of the TensorFlow Inception graph of 2015-12-05 without the final bias
  ("logits_unbiased", as the original code), over 10 splits of the samples shuffled with
  seed 2020; reported as the mean and standard deviation over the splits.
* **KID** (Binkowski et al. 2018): the unbiased MMD^2 between the samples' and the
  reference images' 2048-d pool features with the cubic polynomial kernel
  k(x, y) = (x.y / 2048 + 1)^3, averaged over 100 random subsets of min(1000, N_samples,
  N_reference) of each (seed 2020); mean and standard deviation over the subsets. The
  reference is ``evaluate.fid_reference``, which must then be a folder of images.

The network is torch-fidelity's ``inception-v3-compat`` (its port of that graph, including
TensorFlow 1.x's bilinear resize to 299 x 299 of uint8 images), whose metric functions
torch-fidelity checks against the reference implementations. Its weights file
:data:`WEIGHTS_FILE` is read from ``evaluate.inception_dir``, else ``$GMDIFF_INCEPTION_DIR``,
else torch hub's checkpoint folder (where torch-fidelity keeps it after a download of its
own); it is never downloaded here. Images are quantised to 8 bits first; grey images are
repeated over three channels.

A chapter's study that lists ``is`` in its ``scores`` (:mod:`gmdiff.study`) gets the same IS
as a callable, :func:`inception_score`, and is refused when it opens by :func:`check`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

#: torch-fidelity's converted Inception-v3 weights (its release v0.2.0).
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE
#: The names ``evaluate.metrics`` may list.
METRICS = ("is", "kid")
IS_SPLITS, KID_SUBSETS, KID_SUBSET_SIZE, RNG_SEED = 10, 100, 1000, 2020

#: ``extractor(uint8 images (B, 3, H, W))`` -> (logits_unbiased (B, 1008), pool (B, 2048)).
Extractor = Callable[[Tensor], tuple[Tensor, Tensor]]


def check_metrics(names: Any) -> list[str]:
    """``evaluate.metrics`` as a list of names from :data:`METRICS`, or a ValueError naming
    the bad value."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple) or not set(names) <= set(METRICS):
        raise ValueError(
            f"evaluate.metrics must be a list of {list(METRICS)} (e.g. [is, kid]), got {names!r}"
        )
    return list(dict.fromkeys(names))


def weights_path(weights_dir: str | Path | None = None) -> Path:
    """Where :data:`WEIGHTS_FILE` is (module docstring); a FileNotFoundError in one
    sentence saying where to put it when it is absent."""
    env = os.environ.get("GMDIFF_INCEPTION_DIR")
    folder = Path(weights_dir or env or Path(torch.hub.get_dir()) / "checkpoints")
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"IS and KID need torch-fidelity's Inception weights {path}, which is missing: "
            f"download {WEIGHTS_URL} into {folder} or set evaluate.inception_dir (gmdiff "
            "evaluate) or $GMDIFF_INCEPTION_DIR to the folder that holds it"
        )
    return path


def library() -> Any:
    """The torch_fidelity module, or a ValueError saying how to install the extra."""
    try:
        import torch_fidelity
    except ImportError:
        raise ValueError(
            "IS and KID (evaluate.metrics is and kid, a study's scores) need torch-fidelity, "
            "an optional extra: pip install -e '.[fidelity]' (or pip install torch-fidelity)"
        ) from None
    return torch_fidelity


def check(weights_dir: str | Path | None = None) -> Path:
    """The weights file and the library are there (before any kernel work): the path of the
    weights, else the one-sentence error of :func:`weights_path` or :func:`library`."""
    path = weights_path(weights_dir)
    library()
    return path


def load_inception(
    weights_dir: str | Path | None, device: str | torch.device
) -> tuple[Extractor, str]:
    """torch-fidelity's InceptionV3 ('inception-v3-compat') giving the unbiased logits and
    the 2048-d pool features of uint8 images, on ``device`` in eval mode, and a line naming
    it for the protocol. Fails first, in one sentence, on missing weights or library."""
    path = weights_path(weights_dir)
    lib = library()
    net = lib.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["logits_unbiased", "2048"], feature_extractor_weights_path=str(path)
    )
    version = getattr(lib, "__version__", "?")
    return net.to(device).eval(), f"torch-fidelity {version} inception-v3-compat, {path}"


def check_reference(names: list[str], reference: str | Path) -> None:
    """KID needs a folder of reference images: a ValueError naming the setting otherwise."""
    if "kid" in names and not (reference and Path(reference).is_dir()):
        raise ValueError(
            "KID compares with reference images: set evaluate.fid_reference to a folder of "
            f"images (got {str(reference)!r})"
        )


@torch.no_grad()
def features(
    images: Tensor, extractor: Extractor, device: str | torch.device, batch_size: int = 64
) -> tuple[Tensor, Tensor]:
    """(logits_unbiased, pool features) of (N, C, H, W) images in [-1, 1], on the CPU."""
    u8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if u8.shape[1] == 1:
        u8 = u8.expand(-1, 3, -1, -1)
    logits, pool = [], []
    for start in range(0, u8.shape[0], batch_size):
        lg, pl = extractor(u8[start : start + batch_size].to(device))
        logits.append(lg.float().cpu())
        pool.append(pl.float().cpu())
    return torch.cat(logits), torch.cat(pool)


@dataclass
class ISKIDProtocol:
    """What IS and KID were measured under (module docstring)."""

    n_samples: int
    network: str
    is_splits: int
    reference: str
    n_reference: int
    kid_subsets: int
    kid_subset_size: int
    kid_kernel: str
    shuffle_seed: int
    weights: str
    seed: int | None
    model: str = ""
    sampler: str = ""


def report(
    samples: Tensor,
    names: list[str],
    reference: str | Path = "",
    *,
    extractor: Extractor,
    network: str,
    centered: bool = True,
    device: str | torch.device = "cpu",
    weights: str = "as stored",
    seed: int | None = None,
    model: str = "",
    sampler: str = "",
) -> dict[str, Any]:
    """IS and/or KID (``names`` from :data:`METRICS`) of ``samples`` (N, C, H, W) in
    [-1, 1] (``centered``) or [0, 1], KID against the images of the folder ``reference``:
    ``{"inception_score": {mean, std}, "kid": {mean, std}, "is_kid_protocol": {...}}``.
    ``extractor`` and ``network`` come from :func:`load_inception` (or a stand-in, in
    tests); the metrics are torch-fidelity's."""
    from gmdiff.images import load_folder

    names = check_metrics(names)
    check_reference(names, reference)
    x = samples.float() if centered else 2 * samples.float() - 1
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"IS and KID need images (N, C, H, W), got samples {tuple(x.shape)}")
    lib = library()
    logits, pool = features(x, extractor, device)
    out: dict[str, Any] = {}
    n_ref, subset = 0, 0
    if "is" in names:
        r = lib.metric_isc.isc_features_to_metric(logits, IS_SPLITS, True, RNG_SEED)
        out["inception_score"] = {
            "mean": r["inception_score_mean"],
            "std": r["inception_score_std"],
        }
    if "kid" in names:
        ref_pool = features(load_folder(reference), extractor, device)[1]
        n_ref = ref_pool.shape[0]
        subset = min(KID_SUBSET_SIZE, pool.shape[0], n_ref)
        r = lib.metric_kid.kid_features_to_metric(
            pool, ref_pool, kid_subsets=KID_SUBSETS, kid_subset_size=subset, rng_seed=RNG_SEED,
            verbose=False,
        )  # fmt: skip
        out["kid"] = {"mean": r["kernel_inception_distance_mean"],
                      "std": r["kernel_inception_distance_std"]}  # fmt: skip
    kid = "kid" in names
    protocol = ISKIDProtocol(
        n_samples=int(x.shape[0]),
        network=network,
        is_splits=IS_SPLITS if "is" in names else 0,
        reference=str(reference) if kid else "",
        n_reference=n_ref,
        kid_subsets=KID_SUBSETS if kid else 0,
        kid_subset_size=subset,
        kid_kernel=f"(x.y / d + 1)^3, d = {pool.shape[1]}" if kid else "",
        shuffle_seed=RNG_SEED,
        weights=weights,
        seed=seed,
        model=model,
        sampler=sampler,
    )
    return out | {"is_kid_protocol": asdict(protocol)}


def protocol_text(result: dict[str, Any]) -> str:
    """IS and KID with their protocol, one item per line."""
    p = result["is_kid_protocol"]
    lines = []
    if "inception_score" in result:
        s = result["inception_score"]
        lines.append(f"IS {s['mean']:.4g} +- {s['std']:.2g} (std over {p['is_splits']} splits)")
    if "kid" in result:
        k = result["kid"]
        lines.append(
            f"KID {k['mean']:.4g} +- {k['std']:.2g} (std over {p['kid_subsets']} subsets of "
            f"{p['kid_subset_size']}; kernel {p['kid_kernel']}; reference {p['reference']}, "
            f"{p['n_reference']} images)"
        )
    lines += [
        f"  samples:  {p['n_samples']} (seed {p['seed']}, weights {p['weights']})",
        f"  model:    {p['model'] or 'n/a'}",
        f"  sampler:  {p['sampler'] or 'n/a'}",
        f"  network:  {p['network']}",
    ]
    return "\n".join(lines)


def inception_score(
    weights_dir: str | Path | None = None, device: str | torch.device = "cpu"
) -> Callable[[Tensor], float]:
    """x -> the IS of images x (N, C, H, W) in [-1, 1]: the mean over :data:`IS_SPLITS`
    splits of :func:`report` (Salimans et al. 2016's protocol, module docstring), with
    torch-fidelity's Inception loaded once from ``weights_dir`` (:func:`weights_path`) on
    ``device``. Fails first, in one sentence, on missing weights or library."""
    extractor, network = load_inception(weights_dir, device)

    def score(x: Tensor) -> float:
        r = report(x, ["is"], extractor=extractor, network=network, device=device)
        return float(r["inception_score"]["mean"])

    return score
