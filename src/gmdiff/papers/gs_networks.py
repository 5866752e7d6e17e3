"""Trained networks against idealised scores: the experiments of Secs. 4-5 of the Gaussian
score paper (Wang & Vastola), claims GS-6 ... GS-11. Equation and figure numbers are the
paper's.

A trained network enters every function as a :class:`NetworkScore`: a wrapper around any
denoiser ``D(x, sigma)`` (a preconditioned network from :mod:`gmdiff.zoo`, or an exact
model's ``denoiser`` in tests) that works on flattened float64 vectors and exposes the same
``score`` / ``denoiser`` interface as the exact models of :mod:`gmdiff.analytic`. All
comparisons are then between objects with a ``score(x, sigma)`` method:

* GS-6 (Fig. 6): :func:`score_fuv_table`, Eq. 28 averaged over query points;
* GS-7 (Figs. 7, 15): :func:`heun_trajectory`, :func:`gaussian_trajectory`,
  :func:`trajectory_deviation`, :func:`divergence_points`;
* GS-8 (Fig. 8C): :func:`sample_distance_table`, :func:`paired_closeness`;
* GS-9 (Figs. 9, 10): :func:`kmeans_gmm`, :func:`truncate_rank`, :func:`gmm_sweep`,
  :func:`minimal_rank`, :func:`best_modes`;
* GS-10 (Figs. 11, 13): :func:`plane_through`, :func:`plane_field`;
* GS-11 (Fig. 12): :func:`training_curves`, :func:`learning_order`;
* across seeds (the chapters' prose, glued from the stacked per-seed tables):
  :func:`closeness_row`, :func:`span`, :func:`sci_span`, :func:`seed_words`.

Networks are never trained here: the chapters take them from :mod:`gmdiff.zoo`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import torch
from scipy.stats import wilcoxon
from torch import Tensor, nn

from gmdiff.analytic import (
    DeltaMixture,
    Gaussian,
    GaussianMixture,
    gaussian_denoiser_path,
    gaussian_state,
)
from gmdiff.metrics import fraction_unexplained_variance
from gmdiff.papers import numbers
from gmdiff.papers.gaussian_score import noisy_queries
from gmdiff.samplers import heun
from gmdiff.schedules import EDM, denoiser_to_score

Query = Literal["noise", "data"]

#: What the paper states in numbers for the claims of this module (CIFAR-10, FFHQ-64,
#: AFHQv2-64 EDM models; MNIST / CIFAR-10 mini-EDM runs for Secs. 4.4 and 5), from
#: ``papers/numbers/gaussian_score.yaml``.
PAPER: dict[str, dict[str, object]] = {
    cid: numbers.facts("gaussian_score", cid) for cid in ("GS-6", "GS-7", "GS-8", "GS-9", "GS-11")
}


class ScoreModel(Protocol):
    """Anything with an exact or learned ``score(x, sigma)`` on (B, D) float64 rows."""

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor: ...


def _check_sigmas(sigmas: Sequence[float]) -> list[float]:
    s = [float(v) for v in sigmas]
    if not s or any(not v > 0 for v in s):
        raise ValueError(f"sigmas must be a non-empty list of positive noise levels, got {sigmas}")
    return s


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of query points) must be an integer >= 1, got {n!r}")


# ----------------------------------------------------------------------------------------
# The network as a score model
# ----------------------------------------------------------------------------------------


@dataclass
class NetworkScore:
    """A denoiser ``D(x, sigma)`` on (B, *shape) tensors seen as a score model on flat
    float64 rows (B, D), D = prod(shape): ``denoiser(x, sigma)`` returns D in float64 and
    ``score`` is Tweedie's s = (D - x) / sigma^2 (Eq. 4, via
    :func:`gmdiff.schedules.denoiser_to_score`). Evaluated without gradients, in batches of
    ``batch_size``, with the input cast to the network's parameter dtype. Instances are
    also valid sampler denoisers on flat vectors."""

    net: Callable[[Tensor, Tensor], Tensor]
    shape: tuple[int, ...]
    batch_size: int = 1024

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if not self.shape or any(s < 1 for s in self.shape):
            raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {self.shape}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        p = next(self.net.parameters(), None) if isinstance(self.net, nn.Module) else None
        self._dtype = p.dtype if p is not None else torch.float64

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def denoiser(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        s = torch.as_tensor(sigma, dtype=x.dtype).expand(x.shape[0])
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], self.batch_size):
                xb = x[i : i + self.batch_size].to(self._dtype).reshape(-1, *self.shape)
                sb = s[i : i + self.batch_size].to(self._dtype)
                out.append(self.net(xb, sb).reshape(xb.shape[0], -1).to(x.dtype))
        return torch.cat(out)

    __call__ = denoiser

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s[:, None] if s.ndim == 1 else s
        return denoiser_to_score(self.denoiser(x, sigma), x, s)


def digits_training_set(study) -> tuple[Tensor, Tensor | None, tuple[int, ...]]:
    """The training set of the study's digits model (:func:`gmdiff.zoo.digits_edm`, read
    from its run config, so the two cannot disagree) as float64 rows, its labels (the 8x8
    digits'; None for MNIST, which the zoo loads without labels) and the image shape."""
    from gmdiff import data, runs

    images, _ = runs.data_of(study.run_config("digits"))
    labels = data.digits8x8()[1] if study.images.name == "digits8x8" else None
    return images.flatten(1).double(), labels, tuple(images.shape[1:])


# ----------------------------------------------------------------------------------------
# Idealised models (Sec. 4.2, App. A.2, A.5)
# ----------------------------------------------------------------------------------------


def kmeans_labels(x: Tensor, k: int, seed: int = 0, batch_size: int = 2048) -> Tensor:
    """Cluster labels of the rows of x by ``sklearn.cluster.MiniBatchKMeans`` with the
    paper's settings (App. A.5: batch size 2048, fixed random seed)."""
    from sklearn.cluster import MiniBatchKMeans

    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be in [1, N={x.shape[0]}], got {k}")
    if k == 1:
        return torch.zeros(x.shape[0], dtype=torch.long)
    km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, random_state=seed, n_init=3)
    return torch.from_numpy(km.fit_predict(x.detach().double().numpy()).astype(np.int64))


def kmeans_gmm(
    x: Tensor, k: int, rank: int | None = None, seed: int = 0, batch_size: int = 2048
) -> GaussianMixture:
    """The paper's GMM of App. A.5, Eq. 41: k-means clusters, each a Gaussian with the
    cluster's empirical mean and covariance (top ``rank`` eigenpairs), weight N_i / N."""
    return GaussianMixture.fit(x, kmeans_labels(x, k, seed, batch_size), rank=rank)


def truncate_rank(gmm: GaussianMixture, rank: int) -> GaussianMixture:
    """The same mixture with each covariance cut to its top ``rank`` eigenpairs (Sec. 4.4;
    ``gmm`` stores eigenpairs in descending order)."""
    if not 0 <= rank <= gmm.U.shape[2]:
        raise ValueError(f"rank must be in [0, {gmm.U.shape[2]}], got {rank}")
    return GaussianMixture(
        gmm.means, gmm.U[:, :, :rank], gmm.lam[:, :rank], gmm.log_weights.clone()
    )


def gmm_moments(gmm: GaussianMixture) -> Gaussian:
    """The Gaussian with the exact mean and covariance of a mixture
    (:meth:`gmdiff.analytic.GaussianMixture.moments`)."""
    return Gaussian.from_cov(*gmm.moments())


def idealised_models(
    x: Tensor, labels: Tensor | None = None, kmeans_ks: Sequence[int] = (), seed: int = 0
) -> dict[str, ScoreModel]:
    """The idealised scores of Sec. 4.2 fitted to the training rows x: isotropic (Eq. 29),
    Gaussian (Eq. 5), one GMM component per class when ``labels`` are given (Eq. 7,
    App. A.2), k-means GMMs (App. A.5) for each k in ``kmeans_ks``, and the delta mixture
    of the training set (Eq. 10)."""
    models: dict[str, ScoreModel] = {
        "isotropic": Gaussian.isotropic(x.mean(0)),
        "Gaussian": Gaussian.from_data(x),
    }
    if labels is not None:
        models[f"GMM per class ({int(labels.unique().numel())})"] = GaussianMixture.fit(x, labels)
    for k in kmeans_ks:
        models[f"GMM k-means {k}"] = kmeans_gmm(x, k, seed=seed)
    models["delta (training set)"] = DeltaMixture(x)
    return models


# ----------------------------------------------------------------------------------------
# GS-6: fraction of unexplained variance across sigma (Sec. 4.2, Eq. 28, Fig. 6)
# ----------------------------------------------------------------------------------------


def query_points(
    kind: Query, x: Tensor, sigma: float, n: int, generator: torch.Generator
) -> Tensor:
    """Where scores are compared: ``"noise"``, n draws of N(0, sigma^2 I) (Sec. 4.2, the
    paper's choice for Fig. 6); ``"data"``, n training rows plus sigma * eps (the noised
    data distribution, Sec. 5 / Fig. 12)."""
    _check_n(n)
    if kind == "noise":
        return sigma * torch.randn(n, x.shape[1], dtype=x.dtype, generator=generator)
    if kind == "data":
        return noisy_queries(x, sigma, n, generator)
    raise ValueError(f"query must be 'noise' or 'data', got {kind!r}")


def score_fuv_table(
    network: ScoreModel,
    models: Mapping[str, ScoreModel],
    x: Tensor,
    sigmas: Sequence[float],
    n: int,
    seed: int,
    query: Query = "noise",
) -> pd.DataFrame:
    """GS-6: per sigma and idealised model, the fraction of unexplained variance of the
    network score, Eq. 28 |s_net - s_model|^2 / |s_net|^2, averaged over n query points
    (:func:`query_points`; the same points for every model). Columns: sigma, model, FUV
    (mean), FUV q25, FUV q75. The same ``seed`` gives the same points on every call."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in _check_sigmas(sigmas):
        q = query_points(query, x, sigma, n, gen)
        s_net = network.score(q, sigma)
        for name, m in models.items():
            r = fraction_unexplained_variance(m.score(q, sigma), s_net, reduction="none")
            rows.append(
                {
                    "sigma": sigma,
                    "model": name,
                    "FUV": float(r.mean()),
                    "FUV q25": float(r.quantile(0.25)),
                    "FUV q75": float(r.quantile(0.75)),
                }
            )
    return pd.DataFrame(rows)


def explained_threshold(table: pd.DataFrame, model: str, level: float = 0.01) -> float:
    """The smallest tabulated sigma from which on (all larger sigmas included) ``model``
    has FUV < ``level``; NaN if it fails at the largest sigma. The paper: the Gaussian has
    FUV < 0.01 for sigma > 1.08 (Sec. 4.2)."""
    t = table[table["model"] == model].sort_values("sigma", ascending=False)
    if t.empty:
        raise ValueError(
            f"model {model!r} not in the table; have {sorted(table['model'].unique())}"
        )
    ok = (t["FUV"] < level).to_numpy()
    if not ok[0]:
        return float("nan")
    n_ok = len(ok) if ok.all() else int(np.argmin(ok))
    return float(t["sigma"].iloc[n_ok - 1])


# ----------------------------------------------------------------------------------------
# GS-7 / GS-8: trajectories and samples from the same x_T (Sec. 4.3, Figs. 7, 8, 15)
# ----------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """One PF-ODE solution from a batch of starts: ``sigma`` (S + 1,) noise levels of the
    recorded states, ending at 0; ``states`` (S + 1, B, D), x_t at those levels (the last
    one is the sample); ``denoised`` (S, B, D), D(x_t, sigma_t) at the first S levels."""

    sigma: Tensor
    states: Tensor
    denoised: Tensor

    @property
    def sample(self) -> Tensor:
        return self.states[-1]


def heun_trajectory(
    denoiser: Callable[[Tensor, Tensor], Tensor],
    x_T: Tensor,
    steps: int,
    schedule: EDM | None = None,
) -> Trajectory:
    """Heun's PF-ODE solution (:func:`gmdiff.samplers.heun`, the paper's sampler for the
    network) from x_T (B, D) on EDM's ``steps`` noise levels, recording x_t and D at each
    level through the sampler's callback. ``schedule`` defaults to ``EDM()``."""
    schedule = EDM() if schedule is None else schedule
    xs, ds = [], []

    def cb(i: int, t: float, x: Tensor, d: Tensor) -> None:
        xs.append(x.clone())
        ds.append(d.clone())

    with torch.no_grad():
        out = heun(denoiser, schedule, x_T, steps, callback=cb)
    sig = schedule.sigma_steps(steps).to(x_T.dtype)
    return Trajectory(sig, torch.stack([*xs, out]), torch.stack(ds))


def gaussian_trajectory(g: Gaussian, x_T: Tensor, sigma: Tensor) -> Trajectory:
    """The closed-form Gaussian solution from x_T at the noise levels ``sigma`` (descending,
    ``sigma[0]`` = sigma_T, last = 0): states by Eq. 15, denoiser outputs by Eq. 16."""
    if sigma.ndim != 1 or sigma.numel() < 2 or not torch.all(sigma[:-1] > 0):
        raise ValueError("sigma must be a 1-D grid of >= 2 levels, all > 0 except the last")
    sT = sigma[0]
    states = torch.stack([gaussian_state(g, x_T, s, sT) for s in sigma])
    den = torch.stack([gaussian_denoiser_path(g, x_T, s, sT) for s in sigma[:-1]])
    return Trajectory(sigma.to(x_T.dtype), states, den)


def trajectory_deviation(reference: Trajectory, others: Mapping[str, Trajectory]) -> pd.DataFrame:
    """Per level and model, the per-sample mean squared error (over pixels) between the
    model's trajectory and the reference (the network's), for the state x_t (Fig. 7) and
    the denoiser output D (Fig. 15): mean and 25 / 75% quantiles over starts. Columns:
    step, sigma, model, quantity ("x_t" or "D"), MSE, q25, q75."""
    rows = []
    for name, tr in others.items():
        if tr.states.shape != reference.states.shape or not torch.allclose(
            tr.sigma, reference.sigma
        ):
            raise ValueError(f"trajectory {name!r} is not on the reference's grid of levels")
        for qty, a, b in (
            ("x_t", tr.states, reference.states),
            ("D", tr.denoised, reference.denoised),
        ):
            mse = ((a - b) ** 2).mean(-1)  # (levels, B)
            for i in range(mse.shape[0]):
                rows.append(
                    {
                        "step": i,
                        "sigma": float(reference.sigma[i]),
                        "model": name,
                        "quantity": qty,
                        "MSE": float(mse[i].mean()),
                        "q25": float(mse[i].quantile(0.25)),
                        "q75": float(mse[i].quantile(0.75)),
                    }
                )
    return pd.DataFrame(rows)


def divergence_points(
    dev: pd.DataFrame, threshold: float = 0.01, quantity: str = "x_t"
) -> pd.DataFrame:
    """Per model, the first step (and its sigma) at which the mean MSE of ``quantity``
    reaches ``threshold`` (the paper's 0.01, Sec. 4.3), and the final MSE; step = -1 if it
    never does."""
    rows = []
    for name, t in dev[dev["quantity"] == quantity].groupby("model", sort=False):
        t = t.sort_values("step")
        over = (t["MSE"] >= threshold).to_numpy()
        i = int(np.argmax(over)) if over.any() else -1
        rows.append(
            {
                "model": name,
                "diverges at step": i,
                "sigma there": float(t["sigma"].iloc[i]) if i >= 0 else float("nan"),
                "final MSE": float(t["MSE"].iloc[-1]),
            }
        )
    return pd.DataFrame(rows)


def _derangement(n: int, generator: torch.Generator) -> Tensor:
    """A random permutation with no fixed point (a cyclic shift of a random order)."""
    if n < 2:
        raise ValueError(f"random pairing needs at least 2 samples, got {n}")
    p = torch.randperm(n, generator=generator)
    out = torch.empty_like(p)
    out[p] = p.roll(1)
    return out


def sample_distance_table(samples: Mapping[str, Tensor], reference: str, seed: int) -> pd.DataFrame:
    """GS-8 (Fig. 8C, pixel MSE only): per model, the per-sample MSE between its samples and
    the reference's (network's) samples from the same x_T, mean and standard error, and
    the same with a random pairing (each reference sample against the model's sample of
    another x_T) as a baseline for "unrelated"."""
    if reference not in samples:
        raise ValueError(f"reference {reference!r} not in samples {sorted(samples)}")
    ref = samples[reference]
    gen = torch.Generator().manual_seed(seed)
    perm = _derangement(ref.shape[0], gen)
    rows = []
    for name, s in samples.items():
        if name == reference:
            continue
        if s.shape != ref.shape:
            raise ValueError(
                f"samples {name!r} have shape {tuple(s.shape)}, need {tuple(ref.shape)}"
            )
        paired = ((s - ref) ** 2).mean(1)
        rand = ((s[perm] - ref) ** 2).mean(1)
        n = paired.numel()
        rows.append(
            {
                "model": name,
                "MSE same x_T": float(paired.mean()),
                "s.e.": float(paired.std() / n**0.5),
                "MSE random pairing": float(rand.mean()),
            }
        )
    return pd.DataFrame(rows)


def paired_closeness(
    samples: Mapping[str, Tensor], reference: str, a: str, b: str
) -> dict[str, float]:
    """Is model ``a`` closer to the reference than model ``b``, start by start? The share of
    x_T where MSE(a, ref) < MSE(b, ref) with its 95% Wilson score interval, the mean paired
    difference MSE(b, ref) - MSE(a, ref) with its 95% normal interval, and the two-sided
    Wilcoxon signed-rank p-value."""
    ref = samples[reference]
    da = ((samples[a] - ref) ** 2).mean(1).numpy()
    db = ((samples[b] - ref) ** 2).mean(1).numpy()
    n, share, z = len(da), float((da < db).mean()), 1.959964
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2))
    diff = db - da
    diff_half = z * diff.std(ddof=1) / np.sqrt(n)
    return {
        "share closer": share,
        "share CI": (centre - half, centre + half),
        "mean difference": float(diff.mean()),
        "difference CI": (float(diff.mean() - diff_half), float(diff.mean() + diff_half)),
        "Wilcoxon p": float(wilcoxon(da, db).pvalue),
    }


# ----------------------------------------------------------------------------------------
# GS-9: k-means GMM with rank-r covariances (Sec. 4.4, Figs. 9, 10)
# ----------------------------------------------------------------------------------------


def gmm_sweep(
    network: ScoreModel,
    x: Tensor,
    ks: Sequence[int],
    ranks: Sequence[int],
    sigmas: Sequence[float],
    n: int,
    seed: int,
    query: Query = "data",
    include_delta: bool = True,
) -> pd.DataFrame:
    """GS-9: FUV (Eq. 28, mean over n query points, the same for all models at a sigma) of
    the network score against the k-means GMM (App. A.5) with k modes and covariances cut
    to rank r, for every k in ``ks`` and r in ``ranks``. With ``include_delta`` the delta
    mixture (k = N modes of rank 0) is added for every rank, closing each curve in k.
    Columns: sigma, modes, rank, FUV."""
    if not ks or not ranks:
        raise ValueError(f"ks and ranks must be non-empty, got ks={ks}, ranks={ranks}")
    if any(r < 0 or r > x.shape[1] for r in ranks):
        raise ValueError(f"ranks must lie in [0, D={x.shape[1]}], got {ranks}")
    full = {k: kmeans_gmm(x, k, seed=seed) for k in ks}
    models: dict[tuple[int, int], ScoreModel] = {
        (k, r): truncate_rank(full[k], r) for k in ks for r in ranks
    }
    if include_delta:
        models[(x.shape[0], -1)] = DeltaMixture(x)
    t = score_fuv_table(network, models, x, sigmas, n, seed, query)  # shared queries per sigma
    t["modes"] = [k for k, _ in t["model"]]
    t["rank"] = [r for _, r in t["model"]]
    delta = t[t["rank"] == -1]
    t = pd.concat([t[t["rank"] >= 0], *[delta.assign(rank=r) for r in ranks]])
    return (
        t[["sigma", "modes", "rank", "FUV"]]
        .sort_values(["sigma", "modes", "rank"])
        .reset_index(drop=True)
    )


def minimal_rank(sweep: pd.DataFrame, tol: float = 0.1) -> pd.DataFrame:
    """Fig. 10B: per sigma and number of modes, the smallest rank whose FUV is within
    ``tol`` (relative) of the FUV at the largest rank in the sweep. Rows of the delta
    mixture (rank-independent) are skipped. Columns: sigma, modes, minimal rank."""
    rows = []
    for (sigma, k), t in sweep.groupby(["sigma", "modes"]):
        t = t.sort_values("rank")
        if t["FUV"].nunique() == 1 and len(t) > 1:
            continue
        target = (1 + tol) * t["FUV"].iloc[-1]
        ok = t[t["FUV"] <= target]
        rows.append({"sigma": sigma, "modes": k, "minimal rank": int(ok["rank"].iloc[0])})
    return pd.DataFrame(rows)


def best_modes(sweep: pd.DataFrame, rank: int | None = None) -> pd.DataFrame:
    """Fig. 9 (upper), at one rank (the largest by default): per sigma, the number of modes
    with the lowest FUV, that FUV, the FUV of one Gaussian (k = 1) and of the largest k
    (the delta mixture when included), and whether the curve is U-shaped (the minimum is
    strictly inside the range of k)."""
    r = int(sweep["rank"].max()) if rank is None else rank
    rows = []
    for sigma, t in sweep[sweep["rank"] == r].groupby("sigma"):
        t = t.sort_values("modes")
        i = int(t["FUV"].to_numpy().argmin())
        rows.append(
            {
                "sigma": sigma,
                "rank": r,
                "best modes": int(t["modes"].iloc[i]),
                "FUV best": float(t["FUV"].iloc[i]),
                "FUV 1 mode": float(t["FUV"].iloc[0]),
                f"FUV {int(t['modes'].iloc[-1])} modes": float(t["FUV"].iloc[-1]),
                "U-shaped": 0 < i < len(t) - 1,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# GS-10: score fields on the plane through three samples (Sec. 4.4, Figs. 11, 13)
# ----------------------------------------------------------------------------------------


@dataclass
class Plane:
    """An affine plane in R^D: ``origin`` (D,), orthonormal ``basis`` (D, 2), and the
    in-plane coordinates ``anchors`` (3, 2) of the three points that span it."""

    origin: Tensor
    basis: Tensor
    anchors: Tensor

    def embed(self, uv: Tensor) -> Tensor:
        """Points of R^D with in-plane coordinates uv (..., 2)."""
        return self.origin + uv @ self.basis.T


def plane_through(points: Tensor) -> Plane:
    """The plane through three points (rows of a (3, D) tensor), centred at their
    centroid, with the first axis along p1 - p0 and the second from Gram-Schmidt on
    p2 - p0; coordinates are L2 distances in the plane, as in Fig. 11."""
    if points.ndim != 2 or points.shape[0] != 3:
        raise ValueError(f"points must have shape (3, D), got {tuple(points.shape)}")
    p = points.double()
    e1 = p[1] - p[0]
    if e1.norm() == 0:
        raise ValueError("the first two points coincide: no plane")
    e1 = e1 / e1.norm()
    v = p[2] - p[0]
    e2 = v - (v @ e1) * e1
    if e2.norm() <= 1e-9 * v.norm().clamp(min=1e-300):
        raise ValueError("the three points are collinear: no plane")
    basis = torch.stack([e1, e2 / e2.norm()], 1)
    origin = p.mean(0)
    return Plane(origin, basis, (p - origin) @ basis)


def plane_field(
    model: ScoreModel, plane: Plane, sigma: float, n: int, margin: float = 0.5
) -> dict[str, Tensor]:
    """Fig. 11: the score of ``model`` on an n x n grid of the plane covering its three
    anchors with ``margin`` (relative to their spread) on each side, projected onto the
    plane. Returns u (n,), v (n,), the in-plane components su, sv (n, n) indexed [v, u]
    (ready for ``quiver(u, v, su, sv)``) and their norm."""
    _check_n(n)
    _check_sigmas([sigma])
    lo, hi = plane.anchors.min(0).values, plane.anchors.max(0).values
    pad = margin * (hi - lo).max()
    u = torch.linspace(float(lo[0] - pad), float(hi[0] + pad), n, dtype=torch.float64)
    v = torch.linspace(float(lo[1] - pad), float(hi[1] + pad), n, dtype=torch.float64)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    uv = torch.stack([uu.reshape(-1), vv.reshape(-1)], 1)
    proj = model.score(plane.embed(uv), sigma) @ plane.basis  # (n*n, 2)
    su, sv = proj[:, 0].reshape(n, n), proj[:, 1].reshape(n, n)
    return {"u": u, "v": v, "su": su, "sv": sv, "norm": torch.sqrt(su**2 + sv**2)}


# ----------------------------------------------------------------------------------------
# GS-11: learning dynamics (Sec. 5, Fig. 12)
# ----------------------------------------------------------------------------------------


def training_curves(
    snapshots: Mapping[int, ScoreModel],
    models: Mapping[str, ScoreModel],
    x: Tensor,
    sigmas: Sequence[float],
    n: int,
    seed: int,
    query: Query = "data",
) -> pd.DataFrame:
    """GS-11: :func:`score_fuv_table` for the network at every training step in
    ``snapshots`` (step -> score model), on the same query points for every step (noised
    data by default, as in Sec. 5). Columns: step, sigma, model, FUV, FUV q25, FUV q75."""
    if not snapshots:
        raise ValueError("snapshots is empty: pass {training step: network score}")
    frames = []
    for step in sorted(snapshots):
        t = score_fuv_table(snapshots[step], models, x, sigmas, n, seed, query)
        t.insert(0, "step", step)
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def learning_order(curves: pd.DataFrame) -> pd.DataFrame:
    """Per sigma and idealised model: the training step where the network is closest to
    the model (lowest FUV), that FUV, the FUV at the last step, and their ratio (> 1 means
    the network first approached the model and then moved away, Fig. 12)."""
    rows = []
    for (sigma, name), t in curves.groupby(["sigma", "model"], sort=False):
        t = t.sort_values("step")
        i = int(t["FUV"].to_numpy().argmin())
        best, final = float(t["FUV"].iloc[i]), float(t["FUV"].iloc[-1])
        rows.append(
            {
                "sigma": sigma,
                "model": name,
                "closest at step": int(t["step"].iloc[i]),
                "FUV there": best,
                "FUV final": final,
                "final / closest": final / best if best > 0 else float("inf"),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Across seeds: the prose's seed ranges, from the stacked per-seed tables
# ----------------------------------------------------------------------------------------


def closeness_row(close: Mapping[str, object]) -> dict[str, float]:
    """:func:`paired_closeness`'s answer as one flat table row (its intervals split into
    low and high columns), for a stored per-seed table."""
    (lo, hi), (dlo, dhi) = close["share CI"], close["difference CI"]
    return {
        "share closer": float(close["share closer"]),
        "share CI low": float(lo),
        "share CI high": float(hi),
        "mean difference": float(close["mean difference"]),
        "difference CI low": float(dlo),
        "difference CI high": float(dhi),
        "Wilcoxon p": float(close["Wilcoxon p"]),
    }


def _values(values) -> np.ndarray:
    v = np.asarray(list(values), dtype=float)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"need finite values, got {list(values)}")
    return v


def span(values, fmt: str = "{:g}") -> str:
    """The range of ``values`` as prose: "lo-hi" with each end formatted by ``fmt``, or one
    value when both ends format alike (e.g. seeds that agree)."""
    v = _values(values)
    lo, hi = fmt.format(v.min()), fmt.format(v.max())
    return lo if lo == hi else f"{lo}-{hi}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci_span(values, digits: int = 2) -> str:
    """:func:`span` in scientific notation with one power of ten, that of the largest
    magnitude: "1.8-2.6 × 10⁻³" (the largest with ``digits`` significant digits, the
    others with as many decimals)."""
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    v = _values(values)
    top = np.abs(v).max()
    e = int(np.floor(np.log10(top))) if top > 0 else 0
    mantissas = span(v / 10.0**e, f"{{:.{digits - 1}f}}")
    return mantissas if e == 0 else f"{mantissas} × 10{str(e).translate(_SUPERSCRIPT)}"


def seed_words(values: Mapping[int, object]) -> str:
    """Per-seed values as prose, seeds with equal values grouped in first-seen order:
    "20 for every seed", or "20 for seed 0 and 10 for seeds 1 and 2"."""
    if not values:
        raise ValueError("values is empty: pass {seed: value}")

    def words(items: list) -> str:
        items = [str(i) for i in items]
        return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"

    groups: dict[str, list[int]] = {}
    for s, v in values.items():
        groups.setdefault(str(v), []).append(s)
    if len(groups) == 1 and len(values) > 1:
        return f"{next(iter(groups))} for every seed"
    return words(
        f"{v} for seed{'s' if len(ss) > 1 else ''} {words(ss)}" for v, ss in groups.items()
    )
