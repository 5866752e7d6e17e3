"""Metrics: exact toy metrics against a known density, distances between sample sets,
score-agreement and image-quality measures.

* toy: mean NLL and Monte-Carlo KL under exact densities, unbiased RBF-kernel MMD^2,
  sliced Wasserstein distance;
* pointwise: PSNR (GM-DDPM, Figs. 2-3), fraction of unexplained variance (Gaussian score
  paper, Eq. 28);
* sample quality: k-NN precision / recall (Kynkaenniemi et al. 2019, used by GM-DDPM
  Table 2), Frechet distance of feature statistics (clean-fid's implementation), with two
  feature extractors: Inception-v3 (FID, only with local weights) and the library's digit
  classifier ("FD-digits", never reported as FID), and the classifier score "IS-digits".
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm  # plain bars: tqdm.auto warns in kernels without ipywidgets

from gmdiff.digit_classifier import DigitClassifier

Density = Callable[[Tensor], Tensor]

# --------------------------------------------------------------------------------------
# Exact toy metrics
# --------------------------------------------------------------------------------------


def _log_density(model, sigma: float) -> Density:
    """x -> log p(x): ``model`` is a callable or has ``log_prob(x, sigma)`` (the analytic
    models, whose density at sigma -> 0 is the clean one; a small sigma is used)."""
    if hasattr(model, "log_prob"):
        return lambda x: model.log_prob(x, sigma)
    if callable(model):
        return model
    raise ValueError(f"expected a callable or an object with log_prob(x, sigma), got {model!r}")


def mean_nll(samples: Tensor, density, sigma: float = 1e-3) -> float:
    """-(1/N) sum_i log p(x_i) in nats, for samples (N, D) under ``density`` (a callable
    x -> log p(x) or an analytic model, evaluated at noise level ``sigma``). For a
    low-rank model (no density in R^D) this is the NLL of the sigma-smoothed density and
    depends on sigma: compare models only at one sigma."""
    return -_log_density(density, sigma)(samples).mean().item()


def kl_monte_carlo(samples_p: Tensor, p, q, sigma: float = 1e-3) -> float:
    """KL(p || q) ~= (1/N) sum_i [log p(x_i) - log q(x_i)] with x_i ~ p (unbiased)."""
    return (_log_density(p, sigma)(samples_p) - _log_density(q, sigma)(samples_p)).mean().item()


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    return ((a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None]).clamp(min=0)


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float) -> float:
    """Unbiased estimate of MMD^2(P, Q) with k(a, b) = exp(-|a - b|^2 / (2 h^2))
    (Gretton et al. 2012, Lemma 6): the means of k over distinct pairs within x and
    within y, minus twice the mean over all (x, y) pairs. Can be slightly negative."""
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"need >= 2 samples in each set, got {m} and {n}")
    g = -0.5 / bandwidth**2
    kxx = torch.exp(g * _sq_dists(x, x))
    kyy = torch.exp(g * _sq_dists(y, y))
    kxy = torch.exp(g * _sq_dists(x, y))
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return (xx + yy - 2 * kxy.mean()).item()


def sliced_wasserstein(
    x: Tensor, y: Tensor, n_projections: int, generator: torch.Generator, p: int = 2
) -> float:
    """Sliced p-Wasserstein distance (E_theta W_p^p(theta.x, theta.y))^(1/p), theta uniform
    on the unit sphere (``n_projections`` Monte-Carlo draws from ``generator``); each 1-D
    W_p between the equal-size empirical measures pairs sorted projections."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (N, D), got {x.shape} and {y.shape}")
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=x.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    return ((px - py).abs() ** p).mean().item() ** (1.0 / p)


def sw2_to_reference(x: Tensor, reference: Tensor, seed: int, n_projections: int = 64) -> float:
    """Sliced 2-Wasserstein distance between ``x`` and as many rows of ``reference`` (the toy
    chapters' exact-distribution metric, projections drawn from ``seed``), in float64;
    inf when a sample is not finite (a diverged sampler)."""
    x = x.double()
    if not torch.isfinite(x).all():
        return float("inf")
    ref = reference[: x.shape[0]].double()
    return sliced_wasserstein(x, ref, n_projections, torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class Floor:
    """A metric's Monte-Carlo noise floor (:func:`noise_floor`): its value on independent
    exact sample sets, one row per draw (a Series for one score, a DataFrame for several),
    indexed by the draw's key."""

    values: pd.Series | pd.DataFrame

    @property
    def mean(self):
        """The mean over draws (a float; per score, a Series)."""
        if isinstance(self.values, pd.Series):
            return float(np.mean(self.values.to_numpy()))
        return self.values.mean()

    @property
    def sd(self):
        """The standard deviation over draws, n - 1 degrees of freedom (NaN for one draw)."""
        if isinstance(self.values, pd.Series):
            v = self.values.to_numpy()
            return float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        return self.values.std(ddof=1)


def noise_floor(
    measure: Callable[[int], float | Mapping[str, float]], draws: int | Sequence[int]
) -> Floor:
    """The noise floor of a sample metric: ``measure(k)``, the metric of the k-th
    independent set of exact samples (drawn by ``measure`` with the caller's own seeding),
    for each key k of ``draws`` (``range(draws)`` for an int), called once per key in that
    order (so a measure that draws from one shared generator gets its sets in turn). What
    a sampler scores within a few :attr:`Floor.sd` of :attr:`Floor.mean` cannot be told
    apart from exact samples at this sample count."""
    keys = list(range(draws)) if isinstance(draws, int) else list(draws)
    if not keys:
        raise ValueError(f"a noise floor needs at least one draw, got draws={draws!r}")
    out = [measure(k) for k in keys]
    index = pd.Index(keys, name="draw")
    if all(isinstance(v, Mapping) for v in out):
        return Floor(pd.DataFrame(list(out), index=index))
    if any(isinstance(v, Mapping) for v in out):
        raise ValueError("measure must return a number for every draw or a mapping for every draw")
    return Floor(pd.Series([float(v) for v in out], index=index, dtype=np.float64))


def t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % Student-t interval of the mean of ``values`` (one per
    seed, n >= 2): mean -+ t_{0.975, n-1} sd / sqrt(n), sd with n - 1 degrees of freedom."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        raise ValueError("a confidence interval needs at least two seeds")
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    m = float(v.mean())
    return m, m - half, m + half


# --------------------------------------------------------------------------------------
# Pointwise measures
# --------------------------------------------------------------------------------------


def psnr(x: Tensor, ref: Tensor, data_range: float = 2.0) -> Tensor:
    """Per-image PSNR = 10 log10(data_range^2 / MSE) in dB, shape (N,), for batches
    (N, ...); ``data_range`` = 2 for images in [-1, 1]."""
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(ref.shape)}")
    mse = ((x - ref) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def fraction_unexplained_variance(
    pred: Tensor,
    target: Tensor,
    reduction: Literal["sum", "mean", "none"] = "sum",
    centered: bool = False,
) -> Tensor:
    """Fraction of the variance of ``target`` (N, ...) not explained by ``pred``.

    Per sample this is Gaussian score paper, Eq. 28: |target - pred|^2 / |target|^2 with
    target = the neural score and pred = an analytic score. ``reduction``: "none" returns
    the (N,) per-sample ratios, "mean" their average, "sum" the pooled ratio
    sum_i |target_i - pred_i|^2 / sum_i |target_i|^2. ``centered=True`` subtracts the
    batch mean of ``target`` in the denominator (the textbook 1 - R^2; not Eq. 28).
    """
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")
    ref = target - target.mean(0, keepdim=True) if centered else target
    num = ((target - pred) ** 2).flatten(1).sum(1)
    den = (ref**2).flatten(1).sum(1)
    if reduction == "sum":
        return num.sum() / den.sum()
    if reduction == "mean":
        return (num / den).mean()
    if reduction == "none":
        return num / den
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


# --------------------------------------------------------------------------------------
# Precision / recall in feature space
# --------------------------------------------------------------------------------------


def _knn_radii(feats: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance of each row to its k-th nearest other row (rows in chunks of ``chunk``)."""
    if feats.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples, got {feats.shape[0]}")
    # k + 1: the row itself is at distance 0
    return torch.cat(
        [_sq_dists(c, feats).kthvalue(k + 1, dim=1).values.sqrt() for c in feats.split(chunk)]
    )


def _coverage(query: Tensor, support: Tensor, radii: Tensor, chunk: int = 2048) -> float:
    """Fraction of ``query`` rows inside at least one ball B(support_j, radii_j)."""
    inside = [(_sq_dists(c, support).sqrt() <= radii[None]).any(1) for c in query.split(chunk)]
    return torch.cat(inside).float().mean().item()


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019, Eqs. 1-2) of features
    (N, F): the manifold of a set is the union of balls around its points with radius the
    distance to the k-th nearest neighbour. Precision = share of fake points on the real
    manifold; recall = share of real points on the fake manifold."""
    real, fake = real.double(), fake.double()
    precision = _coverage(fake, real, _knn_radii(real, k))
    recall = _coverage(real, fake, _knn_radii(fake, k))
    return precision, recall


def paired_bootstrap_ci(
    statistic: Callable[[Tensor], float | Tensor],
    n: int,
    n_boot: int,
    generator: torch.Generator,
    level: float = 0.95,
) -> tuple[Tensor, Tensor]:
    """Percentile bootstrap confidence interval (Efron & Tibshirani 1993, Ch. 13) of
    ``statistic(idx)`` over ``n_boot`` resamples ``idx`` of ``range(n)`` with replacement;
    the statistic may return several values (a 1-D tensor), each gets its interval.

    Paired: the statistic applies the same ``idx`` to every sample set it compares (e.g.
    two samplers run from the same x_T), so the interval is that of the paired difference,
    not of two independent estimates. Returns (low, high), float64."""
    if n_boot < 2 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 2 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    stats = torch.stack(
        [
            torch.as_tensor(
                statistic(torch.randint(n, (n,), generator=generator)), dtype=torch.float64
            )
            for _ in range(n_boot)
        ]
    )
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(stats, q, dim=0)
    return lo, hi


# --------------------------------------------------------------------------------------
# Frechet distance of features
# --------------------------------------------------------------------------------------


def feature_statistics(feats: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), float64 numpy."""
    f = feats.detach().double().cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance_features(feats_a: Tensor, feats_b: Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of the two feature sets'
    Gaussian fits (Heusel et al. 2017).

    tr (S_a S_b)^(1/2) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), which has the eigenvalues of S_a S_b. This
    is exact for singular covariances too (a dead unit of the digit classifier, constant in
    one set, gives a zero row), where the general matrix square root that clean-fid and
    pytorch-fid take of S_a S_b warns and may lose accuracy."""
    return frechet_distance(*feature_statistics(feats_a), *feature_statistics(feats_b))


def frechet_distance(mu_a: np.ndarray, s_a: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray) -> float:
    """The Frechet distance of :func:`frechet_distance_features` from the two Gaussian
    fits (means (F,), covariances (F, F)), e.g. precomputed reference statistics."""
    mu_a, s_a, mu_b, s_b = (np.asarray(a, dtype=np.float64) for a in (mu_a, s_a, mu_b, s_b))
    if mu_a.shape != mu_b.shape or s_a.shape != s_b.shape or s_a.shape != mu_a.shape * 2:
        raise ValueError(
            f"feature statistics differ in dimension: mean {mu_a.shape} / {mu_b.shape}, "
            f"covariance {s_a.shape} / {s_b.shape}"
        )
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root_a @ s_b @ root_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_sqrt)


@torch.no_grad()
def classifier_features(model: DigitClassifier, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Penultimate-layer features of the digit classifier, (N, width)."""
    return torch.cat([model.features(b.float()) for b in images.split(batch_size)])


def frechet_distance_digits(images_a: Tensor, images_b: Tensor, model: DigitClassifier) -> float:
    """FD-digits: the Frechet distance between two image sets in the feature space of a
    :func:`gmdiff.digit_classifier.train_digit_classifier` model. Same formula as FID,
    different features: report it as FD-digits, never as FID."""
    return frechet_distance_features(
        classifier_features(model, images_a), classifier_features(model, images_b)
    )


@torch.no_grad()
def classifier_score(images: Tensor, model: DigitClassifier, batch_size: int = 1000) -> float:
    """IS-digits: exp(E_x KL(p(y|x) || p(y))), p(y) the mean of p(y|x) over ``images``
    (the Inception Score formula of Salimans et al. 2016 with the digit classifier).
    Ranges from 1 (every image gets the same class distribution) to n_classes."""
    logits = torch.cat([model(b.float()) for b in images.split(batch_size)]).double()
    log_p = torch.log_softmax(logits, dim=1)
    log_marg = torch.logsumexp(log_p, dim=0) - math.log(log_p.shape[0])
    kl = (log_p.exp() * (log_p - log_marg[None])).sum(1)
    return kl.mean().exp().item()


# --------------------------------------------------------------------------------------
# Inception FID (local weights only)
# --------------------------------------------------------------------------------------

INCEPTION_FILE = "inception-2015-12-05.pt"
#: clean-fid's preprocessing modes with the torchscript Inception (Parmar et al. 2022).
INCEPTION_MODES = ("clean", "legacy_tensorflow")
INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/" + INCEPTION_FILE
)


def inception_weights_dir(weights_dir: str | Path | None = None) -> Path:
    """The folder holding clean-fid's Inception torchscript file: ``weights_dir``, else
    $GMDIFF_INCEPTION_DIR, else clean-fid's own default (/tmp). Never downloads: raises
    :class:`FileNotFoundError` saying where to put the file when it is absent."""
    d = Path(weights_dir or os.environ.get("GMDIFF_INCEPTION_DIR", "/tmp"))
    if not (d / INCEPTION_FILE).is_file():
        raise FileNotFoundError(
            f"Inception weights not found: {d / INCEPTION_FILE}. Download {INCEPTION_URL} "
            f"(the torchscript model clean-fid uses) into that folder, or set "
            f"GMDIFF_INCEPTION_DIR / pass weights_dir to the folder that holds it. Without "
            f"them, use frechet_distance_digits (FD-digits) on digit data."
        )
    return d


@torch.no_grad()
def inception_features(
    images: Tensor,
    weights_dir: str | Path | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    mode: str = "clean",
) -> Tensor:
    """2048-d Inception-v3 pool features of (N, C, H, W) images in [-1, 1] (C = 1 or 3),
    quantised to uint8 first, with clean-fid's preprocessing ``mode``: "clean" (PIL bicubic
    resize to 299 x 299 in float, values in [0, 255]) or "legacy_tensorflow" (the
    TensorFlow FID's resize inside the network, as the original FID code and EDM's
    ``fid.py``; Parmar et al. 2022)."""
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import build_resizer

    if mode not in INCEPTION_MODES:
        raise ValueError(f"Inception mode must be one of {INCEPTION_MODES}, got {mode!r}")
    model = InceptionV3W(
        str(inception_weights_dir(weights_dir)),
        download=False,
        resize_inside=mode == "legacy_tensorflow",
    ).to(device)
    resize = build_resizer(mode)
    u8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if u8.shape[1] == 1:
        u8 = u8.expand(-1, 3, -1, -1)
    out = []
    for b in tqdm(u8.split(batch_size), desc="inception features", disable=None):
        arr = np.stack([resize(im.permute(1, 2, 0).numpy()) for im in b])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().to(device)
        out.append(model(x).cpu())
    return torch.cat(out)


def fid_inception(
    images_a: Tensor, images_b: Tensor, weights_dir: str | Path | None = None, **kwargs
) -> float:
    """FID (clean-fid's preprocessing and formula) between two image sets in [-1, 1];
    ``kwargs`` go to :func:`inception_features`."""
    return frechet_distance_features(
        inception_features(images_a, weights_dir, **kwargs),
        inception_features(images_b, weights_dir, **kwargs),
    )
