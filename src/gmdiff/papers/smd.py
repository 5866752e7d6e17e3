"""Experiments of the SMD paper (Li, van Breugel & van der Schaar, "Soft mixture denoising:
beyond the expressive bottleneck of diffusion models"), shared by the ``smd_*`` chapters.

* :func:`run_config`: the DDPM and SMD runs of the chapters as
  :class:`gmdiff.config.RunConfig` objects (the structure of ``configs/*.yaml``), trained
  and cached by :func:`gmdiff.runs.load_or_train` (the library's
  :class:`~gmdiff.train.Trainer`, in a cache folder named by the hash of the config), so
  a rerun only loads the EMA weights.
* :func:`method_study`: every table of the method chapter for one training seed.
* :func:`kernel_means` / :func:`kernel_kl`: the reverse kernel p(x_{t-1} | x_t) of a
  trained eps network (DDPM: one Gaussian; SMD: a continuous mixture over eta, SMD paper
  Eq. 11) and its KL from the exact posterior q(x_{t-1} | x_t) of Prop. 3.1.
* :func:`eta_spread` / :func:`between_spread`: how much an SMD kernel's mean moves with eta
  at a fixed x_t, against the spread of the exact posterior's component means.
* :func:`step_seconds`: wall time of one training step against the number of eta draws
  (SMD paper, Fig. 2b).
* :func:`sample_run`: samples of a trained run with a sampler of ``gmdiff.samplers``
  (Alg. 2 is the DDPM ancestral sampler with a fresh eta per step).
* :func:`train_table_models` / :func:`quality_table`: the image chapter's DDPM and DDPM w/
  SMD runs and their Frechet distance to the data over a grid of (sampler, steps), in any
  feature space (the digit classifier's: FD-digits; Inception's: FID).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from gmdiff import runs, threads, timing
from gmdiff.analytic.ddpm_posterior import ReversePosterior
from gmdiff.config import RunConfig, load_config, run_file
from gmdiff.samplers import SAMPLERS
from gmdiff.samplers.base import call_denoiser
from gmdiff.schedules import DiscreteVP

#: The toy of the method chapter: configs/smd_toy.yaml's ring of 8 Gaussians.
TOY_CONFIG = "configs/smd_toy.yaml"


def run_config(
    kind: str,
    *,
    base: str = TOY_CONFIG,
    T: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    n_eta: int = 1,
    reduction: str = "mean",
    overrides: list[str] = (),
) -> RunConfig:
    """The RunConfig of ``base`` for ``kind`` = ``"smd"`` (its SMD network and loss) or
    ``"ddpm"`` (the same base network without the SMD layers, trained with the eps loss,
    Ho et al. 2020 Alg. 1), with the number of steps T, training length, batch and seed
    replaced where given. ``base`` must be an SMD config (``model.net`` an SMD network); a
    relative path is taken from the working directory, else from the repository root."""
    if kind not in ("smd", "ddpm"):
        raise ValueError(f"kind must be 'smd' or 'ddpm', got {kind!r}")
    cfg = load_config(run_file(base), list(overrides))
    if cfg.loss.name != "smd":
        raise ValueError(f"{base} is not an SMD config (loss.name = {cfg.loss.name!r})")
    if T is not None:
        cfg.schedule.options = {**cfg.schedule.options, "T": T}
    train = {"seed": seed}
    train |= {} if steps is None else {"steps": steps}
    train |= {} if batch_size is None else {"batch_size": batch_size}
    cfg.train = replace(cfg.train, **train)
    if kind == "smd":
        cfg.loss.options = {**cfg.loss.options, "n_eta": n_eta, "reduction": reduction}
        return cfg
    from gmdiff import nets

    smd_cfg = nets.get_config(cfg.model.net, **cfg.model.overrides)
    base_name = {nets.MLPConfig: "toy_mlp", nets.UNetConfig: "digits"}[type(smd_cfg.base)]
    cfg.model.net, cfg.model.overrides = base_name, asdict(smd_cfg.base)
    cfg.loss.name, cfg.loss.options = "eps", {}
    return cfg


@torch.no_grad()
def kernel_means(
    net: nn.Module,
    denoiser: nn.Module,
    schedule: DiscreteVP,
    t: int,
    x_t: Tensor,
    n_eta: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, float]:
    """The reverse kernel of one DDPM ancestral step from x_t (B, D) at step t in 2..T:
    the means (n_eta, B, D) of N(mu(x_t, eta), beta-tilde_t I) for ``n_eta`` draws of eta
    (a network without a latent gives n_eta equal rows), and beta-tilde_t (Ho et al. 2020,
    Eq. 7; the variance of :func:`gmdiff.samplers.ddpm`). The mean is the sampler's:
    sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0-hat + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t)
    x_t with x0-hat the denoiser's output (DDPM's Eq. 7 mean, equal to Eq. 11's eps form).
    """
    if not 2 <= t <= schedule.T:
        raise ValueError(f"t must be in 2..T={schedule.T} (t = 1 is deterministic), got {t}")
    ab, ab_prev = schedule.alpha_bar[t].item(), schedule.alpha_bar[t - 1].item()
    alpha, beta = ab / ab_prev, 1.0 - ab / ab_prev
    B, D = x_t.shape
    rows = x_t.to(dtype).repeat(n_eta, 1)
    eta = net.eta_from(generator) if hasattr(net, "eta_from") else contextlib.nullcontext()
    with eta:
        a, s = (
            torch.tensor(math.sqrt(ab), dtype=dtype),
            torch.tensor(math.sqrt(1.0 - ab), dtype=dtype),
        )
        x0 = call_denoiser(denoiser, rows, a, s).double()
    rows = rows.double()
    mean = (math.sqrt(ab_prev) * beta * x0 + math.sqrt(alpha) * (1.0 - ab_prev) * rows) / (1 - ab)
    return mean.reshape(n_eta, B, D), beta * (1.0 - ab_prev) / (1.0 - ab)


def kernel_kl(
    post: ReversePosterior,
    means: Tensor,
    var: float,
    generator: torch.Generator,
    n: int = 256,
) -> tuple[Tensor, Tensor]:
    """KL(q(x_{t-1} | x_t) || p(x_{t-1} | x_t)) per row of x_t for the kernel p = (1/K)
    sum_k N(means_k, var I) (means (K, B, D); K = 1: a Gaussian kernel, K > 1: SMD's
    continuous mixture over eta, SMD paper Eq. 11, by its K-draw Monte Carlo mixture).
    Monte Carlo over n draws y ~ q(. | x_t) of log q(y | x_t) - log p(y | x_t), with q the
    exact GMM of Prop. 3.1. Returns (value (B,), stderr (B,))."""
    y = post.sample(generator, n)  # (n, B, D)
    D = y.shape[-1]
    d2 = ((y[:, None] - means[None]) ** 2).sum(-1)  # (n, K, B)
    log_p = torch.logsumexp(-0.5 * d2 / var, 1) - math.log(means.shape[0])
    log_p = log_p - 0.5 * D * math.log(2 * math.pi * var)
    f = post.log_prob(y) - log_p
    return f.mean(0), f.std(0) / math.sqrt(n)


def eta_spread(means: Tensor) -> Tensor:
    """tr Cov_eta[mu(x_t, eta)] per row: the spread of an SMD kernel's mean over its eta
    draws (means (K, B, D) -> (B,)); 0 for a network that ignores eta."""
    return means.var(0, unbiased=True).sum(-1)


def between_spread(post: ReversePosterior) -> Tensor:
    """tr sum_k w'_k (mu'_k - m)(mu'_k - m)^T per row: the spread of the exact posterior's
    component means (Prop. 3.1, Eq. 7), which a kernel N(mu(x_t, z), beta-tilde I) with
    the right component means would reproduce through z."""
    d = post.means - post.mean()[:, None, :]
    return (post.weights * (d**2).sum(-1)).sum(-1)


def step_seconds(
    cfg: RunConfig, n_etas: list[int], steps: int = 20, repeats: int = 3
) -> dict[int, float]:
    """Median (over ``repeats`` rounds) wall time of one training step of ``cfg``'s SMD
    run for each number of eta draws (SMD paper, Fig. 2b), measured in this process with
    the library's :class:`~gmdiff.train.Trainer` on the CPU with one torch thread: one
    trainer per n_eta, warmed up by one untimed step, then ``steps`` timed steps of each
    in every round (:func:`gmdiff.timing.step_times`). The rounds visit every n_eta in
    turn, so a change of machine load affects them alike. Returns {n_eta: seconds per
    step}."""
    from gmdiff.train import Trainer

    data, _ = runs.data_of(cfg)

    def more_steps(trainer: Trainer):
        def fit() -> None:
            trainer.config = replace(trainer.config, steps=trainer.step + steps)
            trainer.fit(resume=False)

        return fit

    with torch.random.fork_rng(devices=[]), threads.using(1):
        trainers = {}
        for k in n_etas:  # one trainer per n_eta, warmed up by one untimed step
            run = replace(cfg, loss=replace(cfg.loss, options={**cfg.loss.options, "n_eta": k}))
            pieces = runs.build(run)
            train = replace(run.train, steps=1, log_every=10**9, device="cpu")
            trainers[k] = Trainer(pieces.trained, pieces.loss, data, train)
            trainers[k].fit(resume=False)
        times = timing.step_times({k: more_steps(t) for k, t in trainers.items()}, steps, repeats)
    return {k: t.median for k, t in times.items()}


def sample_run(
    net: nn.Module,
    denoiser: nn.Module,
    schedule: DiscreteVP,
    shape: tuple[int, ...],
    n: int,
    steps: int,
    sampler: str = "ddpm",
    seed: int = 0,
    block: int = 1000,
    **options: Any,
) -> Tensor:
    """n samples (n, *shape) of a trained run with ``gmdiff.samplers.SAMPLERS[sampler]``
    on ``steps`` respaced steps (:func:`gmdiff.runs.draw_samples`: x_T ~ N(0, I) and every
    eta from one generator seeded by ``seed``): SMD paper, Alg. 2 for ``"ddpm"`` with
    steps = T. ``block``: samples per sampler call; 1000, not the library's 1024
    (:data:`gmdiff.runs.SAMPLE_BLOCK`), because the SMD chapters' stored 2,000-sample
    results were drawn so. ``net`` is unused (the denoiser carries it); kept for symmetry
    with :func:`kernel_means`."""
    return runs.draw_samples(
        denoiser, schedule, SAMPLERS[sampler], steps, shape, n, seed=seed, block=block, **options
    )


def kernel_table(
    models: dict[str, tuple[nn.Module, nn.Module]],
    gmm,
    schedule: DiscreteVP,
    *,
    n_x: int,
    n_y: int,
    n_eta: int,
    seed: int,
    steps: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Per step t of ``steps`` (default 2..T): the KL from the exact reverse step
    q(x_{t-1} | x_t) (Prop. 3.1) to each kernel, averaged over ``n_x`` draws x_t ~ q(x_t)
    shared by all rows (mean and standard error over x_t), for

    * ``"best Gaussian (exact)"``: N(m(x_t), C(x_t)), the moment-matched optimum (M_t);
    * ``"best DDPM kernel (exact)"``: N(m(x_t), beta-tilde_t I), the exact posterior mean
      with the sampler's variance -- what a perfectly trained DDPM network gives;
    * each trained ``models[label] = (net, denoiser)``: its ancestral-step kernel
      (:func:`kernel_means`, ``n_eta`` draws of eta for an SMD network).

    Also the eta spread of each trained kernel's mean and the exact between-component
    spread (:func:`eta_spread`, :func:`between_spread`), averaged over x_t."""
    from gmdiff.analytic.ddpm_posterior import forward_marginal, posterior_kl, reverse_posterior

    steps = range(2, schedule.T + 1) if steps is None else steps
    if any(not 2 <= t <= schedule.T for t in steps):
        raise ValueError(
            f"steps t must be in 2..T={schedule.T} (t = 1 is deterministic), got {steps}"
        )
    rows = []
    for t in steps:
        gen = torch.Generator().manual_seed(seed + t)
        x_t = forward_marginal(gmm, schedule, t).sample(n_x, gen)
        post = reverse_posterior(gmm, schedule, t, x_t)
        between = float(between_spread(post).mean())
        ab, ab_prev = schedule.alpha_bar[t].item(), schedule.alpha_bar[t - 1].item()
        bt = (1 - ab / ab_prev) * (1 - ab_prev) / (1 - ab)
        exact = {
            "best Gaussian (exact)": "moment",
            "best DDPM kernel (exact)": bt,
        }
        for label, variance in exact.items():
            kl, _ = posterior_kl(gmm, schedule, t, x_t, generator=gen, n=n_y, variance=variance)
            rows.append((t, label, kl, float("nan"), between))
        for label, (net, den) in models.items():
            means, var = kernel_means(net, den, schedule, t, x_t, n_eta, gen)
            kl, _ = kernel_kl(post, means, var, gen, n_y)
            rows.append((t, label, kl, float(eta_spread(means).mean()), between))
    return pd.DataFrame(
        [
            {
                "t": t,
                "kernel": label,
                "KL": float(kl.mean()),
                "KL stderr": float(kl.std() / math.sqrt(kl.numel())),
                "eta spread": spread,
                "posterior between-mode spread": between,
            }
            for t, label, kl, spread, between in rows
        ]
    )


def toy_sample_distance(
    models: dict[str, tuple[nn.Module, nn.Module]],
    gmm,
    schedule: DiscreteVP,
    *,
    n: int,
    sampler: str = "ddpm",
    n_projections: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Sliced Wasserstein-2 distance (:func:`gmdiff.metrics.sliced_wasserstein`) from
    ``n`` samples of each model (all T steps of ``sampler``) to ``n`` exact draws of the
    data, and, as the floor, from ``n`` other exact draws and from the exact GMM denoiser
    sampled the same way (the best any Gaussian-kernel DDPM can do with this sampler)."""
    from gmdiff.metrics import sliced_wasserstein

    gen = torch.Generator().manual_seed(seed + 7)
    ref = gmm.sample(n, generator=gen).float()
    exact = gmm.sample(n, generator=gen).float()
    rows = {"data (second draw)": exact}

    class _Exact(nn.Module):  # the GMM denoiser in float32, as the networks run
        def forward(self, x, sigma):
            return gmm.denoiser(x.double(), sigma.double()).float()

    runs = {"exact denoiser": (_Exact(), _Exact())} | models
    D = ref.shape[1]
    for label, (net, den) in runs.items():
        rows[label] = sample_run(net, den, schedule, (D,), n, schedule.T, sampler, seed)
    return {
        k: sliced_wasserstein(x, ref, n_projections, torch.Generator().manual_seed(seed))
        for k, x in rows.items()
    }


#: The two models of the image chapter (SMD paper, Tables 1-2): label -> kind of
#: :func:`run_config` (DDPM is the SMD config's base network with the eps loss).
TABLE_MODELS = {"DDPM": "ddpm", "DDPM w/ SMD": "smd"}


def train_table_models(
    base: str | Path,
    seed: int,
    *,
    overrides: Sequence[str] = (),
    cache_dir: str | Path | None = None,
) -> dict[str, runs.Run]:
    """{label: trained run} of :data:`TABLE_MODELS` from the SMD config ``base``
    (:func:`run_config` with training seed ``seed`` and ``overrides``, e.g. a study's
    ``S.images.overrides`` pointing ``configs/smd_cifar10.yaml`` at the user's CIFAR-10
    folder), trained once in the model cache (the missing ones side by side,
    :func:`gmdiff.runs.load_or_train_many`) and loaded with their EMA weights."""
    jobs = [
        (run_config(kind, base=base, seed=seed, overrides=overrides), "smd")
        for kind in TABLE_MODELS.values()
    ]
    bank = runs.load_or_train_many(jobs, cache_dir=cache_dir)
    return dict(zip(TABLE_MODELS, bank, strict=True))


def quality_table(
    models: dict[str, tuple[nn.Module, nn.Module, DiscreteVP]],
    grid: Sequence[tuple[str, int]],
    reference: Tensor,
    features: Callable[[Tensor], Tensor],
    *,
    n: int,
    seed: int,
    metric: str = "FD-digits",
    batch: int = 1000,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """The Frechet distance (:func:`gmdiff.metrics.frechet_distance`, Heusel et al. 2017)
    in the feature space ``features(images) -> (N, F)`` between ``n`` samples of each
    ``models[label] = (net, denoiser, schedule)`` and the ``reference`` images, for each
    (sampler, number of backward steps) of ``grid`` ("ddpm": Alg. 2 / ancestral; "ddim":
    deterministic DDIM, SMD paper Sec. 5.2). One row per (model, sampler, steps), the
    distance in column ``metric``: "FD-digits" with the digit classifier's features
    (:func:`gmdiff.metrics.classifier_features`), "FID" with Inception's
    (:func:`gmdiff.metrics.inception_features`).

    The reference statistics are computed once. Samples are drawn by :func:`sample_run`
    (every model and sampler from the same seed; the network evaluated on ``batch`` rows at
    a time, which does not change the samples) on ``device`` (None:
    where each denoiser is; else the denoisers are moved there, in place), returned to the
    CPU and clipped to [-1, 1] before the features, as images are stored; ``features``
    moves them to its own device. A sample set holding NaN or inf is an error."""
    from gmdiff.metrics import feature_statistics, frechet_distance

    if n < 2:
        raise ValueError(f"n must be >= 2 (a covariance needs two samples), got {n}")
    ref = feature_statistics(features(reference))
    shape = tuple(reference.shape[1:])
    rows = []
    for label, (net, den, sch) in models.items():
        if device is not None:
            den.to(device)
        for sampler, steps in grid:
            x = sample_run(net, den, sch, shape, n, steps, sampler, seed, batch=batch)
            if not torch.isfinite(x).all():
                raise FloatingPointError(
                    f"{label}: the {sampler} sampler with {steps} steps gave NaN or inf "
                    "samples; check the model (train longer or with a lower train.lr)"
                )
            fd = frechet_distance(*feature_statistics(features(x.clamp(-1, 1))), *ref)
            rows.append({"model": label, "sampler": sampler, "steps": steps, metric: fd})
    return pd.DataFrame(rows)


#: The kernels of the method chapter's SMD-4 table: (kind, n_eta, reduction) of each row.
METHOD_KERNELS = {
    "DDPM": ("ddpm", 1, "mean"),
    "SMD (Eq. 15)": ("smd", 1, "mean"),
    "SMD, min of 4 eta": ("smd", 4, "min"),
}


def _kernel_config(label: str, T: int, **sizes: Any) -> RunConfig:
    """The run config of a :data:`METHOD_KERNELS` row at T steps."""
    kind, n_eta, reduction = METHOD_KERNELS[label]
    return run_config(kind, T=T, n_eta=n_eta, reduction=reduction, **sizes)


def method_study(cfg: dict, gmm, seed: int, cache_dir=None) -> dict[str, pd.DataFrame]:
    """The SMD method chapter's results for one training seed, as tables (one row per
    number, so that the seeds' tables stack): ``cfg`` is the chapter's sizes
    (``gmdiff.study``, ``smd_method``), ``gmm`` the data.

    * ``kl``: :func:`kernel_table` of the :data:`METHOD_KERNELS` networks at each T of
      ``cfg["Ts"]`` (column ``T``);
    * ``adequacy``: their :meth:`gmdiff.runs.Run.adequacy` figures;
    * ``sw``: :func:`toy_sample_distance` at each T (``T``, ``model``, ``SW2``);
    * ``n_eta``: SMD (Eq. 15, T = 5) trained with each of ``cfg["n_etas_train"]`` draws:
      the summed per-step KL and the largest eta spread (SMD paper, Fig. 2b);
    * ``control``: the continuation control of SMD-4 -- the min-of-4 network at T = 5
      trained ``cfg["control_steps"]`` further steps under Eq. 15 and, as the reference,
      under min-of-4 (:func:`gmdiff.runs.load_or_train_from`): does Eq. 15 keep an eta
      effect the network already has?"""
    sizes = {"steps": cfg["steps"], "batch_size": cfg["batch"], "seed": seed}
    evals = {"n_x": cfg["n_x"], "n_y": cfg["n_y"], "n_eta": cfg["n_eta_eval"], "seed": seed}
    grid = [(T, label) for T in cfg["Ts"] for label in METHOD_KERNELS]
    bank = [_kernel_config(label, T, **sizes) for T, label in grid]
    more_etas = [run_config("smd", T=5, n_eta=k, **sizes) for k in cfg["n_etas_train"]]
    trained_bank = runs.load_or_train_many(
        [(c, "smd") for c in bank + more_etas], cache_dir=cache_dir
    )  # the missing ones trained side by side
    fits = dict(zip(grid, trained_bank, strict=False))
    kl, sw = [], []
    for T in cfg["Ts"]:
        models = {
            label: (fits[T, label].trained, fits[T, label].denoiser) for label in METHOD_KERNELS
        }
        sch = fits[T, "DDPM"].schedule
        kl.append(kernel_table(models, gmm, sch, **evals).assign(T=T))
        dist = toy_sample_distance(models, gmm, sch, n=cfg["n_samples"], seed=seed)
        sw += [{"T": T, "model": k, "SW2": v} for k, v in dist.items()]
    adequacy = [{"T": T, "kernel": label, **run.adequacy()} for (T, label), run in fits.items()]
    n_eta = []
    for k, run in zip(cfg["n_etas_train"], trained_bank[len(grid) :], strict=True):
        tab = kernel_table({"SMD": (run.trained, run.denoiser)}, gmm, run.schedule, **evals)
        tab = tab[tab["kernel"] == "SMD"]
        n_eta.append(
            {"n_eta": k, "sum of KL": tab["KL"].sum(), "max eta spread": tab["eta spread"].max()}
        )
    start = fits[5, "SMD, min of 4 eta"]
    more = {**sizes, "steps": cfg["control_steps"]}
    after = {
        label: runs.load_or_train_from(
            start, _kernel_config(label, 5, **more), "smd", cache_dir=cache_dir
        )
        for label in METHOD_KERNELS
        if label != "DDPM"
    }
    control = kernel_table(
        {"start (min of 4)": (start.trained, start.denoiser)}
        | {f"then {label}": (run.trained, run.denoiser) for label, run in after.items()},
        gmm,
        start.schedule,
        **evals,
    )
    adequacy += [
        {"T": 5, "kernel": f"min of 4, then {label}", **run.adequacy()}
        for label, run in after.items()
    ]
    return {
        "kl": pd.concat(kl, ignore_index=True),
        "adequacy": pd.DataFrame(adequacy),
        "sw": pd.DataFrame(sw),
        "n_eta": pd.DataFrame(n_eta),
        "control": control,
    }
