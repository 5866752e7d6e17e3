"""GM-SGM's few-iteration gap as a function of the data dimension D (issue 13).

The hypothesis tested: a training input x_0 + sigma z at level sigma has a squared norm
that concentrates on a shell whose relative width shrinks like sqrt(2 / D); if a coarse PC
discretisation (score_sde's VE sampler, :func:`gmdiff.samplers.ve_pc`) leaves the sampler's
states off that shell by a *relative* amount that does not shrink with D, then in shell
widths the offset grows like sqrt(D), and a network trained only on the shell is queried
ever further outside its training distribution as D grows (GM-SGM, Sec. 5 and Table 1:
SGM FID 456 at 50 PC iterations on CIFAR-10, D = 3,072; GM-SGM 29).

The one measure used throughout is :func:`shell_distance`: the offset of the mean squared
norm of the sampler's states at level sigma from that of the training inputs at sigma, in
standard deviations of the training inputs' squared norm ("shell widths"). Exact for a
Gaussian prior through :func:`pc_gaussian_recursion` (the PC updates are linear there), by
Monte Carlo otherwise (:func:`pc_trace`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import Tensor

from gmdiff import metrics, results, runs, stats
from gmdiff.papers import gm_sgm as G
from gmdiff.samplers import ve_pc
from gmdiff.schedules import VE

# --------------------------------------------------------------------------------------
# The measure
# --------------------------------------------------------------------------------------


def sigma_max_rule(x: Tensor) -> float:
    """score_sde's sigma_max: the largest Euclidean distance between two training points
    (Song & Ermon 2020, technique 1; GM-SGM App. A.2 keeps score_sde's VE settings)."""
    x = x.flatten(1).double()
    return float(torch.cdist(x, x).max())


def shell_distance(norm2_mean: Tensor | float, ref_mean: Tensor | float, ref_sd) -> Tensor:
    """(E||x||^2 - E_train||x||^2) / sd_train(||x||^2): how far the sampler's states sit
    from the training inputs' shell at the same noise level, in shell widths."""
    return (torch.as_tensor(norm2_mean) - ref_mean) / ref_sd


def shell_distance_mc(x: Tensor, ref: Tensor) -> float:
    """:func:`shell_distance` from samples: states ``x`` against exact training inputs
    ``ref`` = x_0 + sigma z at the same sigma (both (N, ...))."""
    a, b = x.flatten(1).double().pow(2).sum(1), ref.flatten(1).double().pow(2).sum(1)
    return float(shell_distance(a.mean(), b.mean(), b.std()))


# --------------------------------------------------------------------------------------
# Exact scores: the Gaussian variance recursion, and Monte Carlo for any prior
# --------------------------------------------------------------------------------------


def pc_gaussian_recursion(
    lam: Tensor, schedule: VE, steps: int, snr: float = 0.16, n_steps_each: int = 1
) -> dict[str, Tensor | float]:
    """:func:`gmdiff.samplers.ve_pc` with the exact score of N(0, diag(lam)), in closed form.

    With s(x) = -x / (lam + sigma^2) every update is linear, so the states stay N(0, diag v)
    and v follows (per coordinate, a = lam + sigma_i^2):
      corrector  v <- (1 - e/a)^2 v + 2e,  e = 2 snr^2 D / sum(v / a^2),
      predictor  v <- (1 - dv/a)^2 v + dv, dv = sigma_i^2 - sigma_{i+1}^2
    (score_sde's reverse-diffusion predictor and Langevin corrector; the step e uses the
    batch-averaged norms ||z||, ||s||, here replaced by their root mean squares, the limit of
    a large batch in large D). Returns the levels sigma_i, the shell distance of the states
    where the predictor queries the score (:func:`shell_distance`: E||x||^2 = sum v against
    the training inputs' sum a, sd sqrt(2 sum a^2)) and of the corrector's queries, the
    output variances (the noise-free last step, as ve_pc returns) and the exact squared
    2-Wasserstein (= Frechet) distance of the output to N(0, diag lam) over tr(lam)."""
    lam = lam.double()
    D = lam.numel()
    sig = schedule.discrete_sigmas(steps).double()
    sig = torch.cat([sig, sig.new_zeros(1)])
    v = torch.full_like(lam, float(sig[0]) ** 2)
    pred, corr = [], []
    for i in range(steps):
        a = lam + sig[i] ** 2
        ref_m, ref_sd = a.sum(), (2 * (a**2).sum()).sqrt()
        for _ in range(n_steps_each):
            corr.append(shell_distance(v.sum(), ref_m, ref_sd))
            e = 2 * snr**2 * D / (v / a**2).sum()
            v = (1 - e / a) ** 2 * v + 2 * e
        pred.append(shell_distance(v.sum(), ref_m, ref_sd))
        dv = sig[i] ** 2 - sig[i + 1] ** 2
        mean_v = (1 - dv / a) ** 2 * v
        v = mean_v + dv
    w2 = float(((mean_v.sqrt() - lam.sqrt()) ** 2).sum() / lam.sum())
    return {
        "sigmas": sig[:-1],
        "predictor": torch.stack(pred),
        "corrector": torch.stack(corr) if corr else torch.zeros(0),
        "out_var": mean_v,
        "rel_w2": w2,
    }


def exact_inputs(prior, n: int, sigma: float, gen: torch.Generator) -> Tensor:
    """n training inputs x_0 + sigma z of the SGM at level sigma, x_0 from an analytic
    ``prior`` (:mod:`gmdiff.analytic`) or a data tensor (rows drawn with replacement)."""
    if isinstance(prior, Tensor):
        x0 = prior[torch.randint(prior.shape[0], (n,), generator=gen)].double()
    else:
        x0 = prior.sample(n, gen).double()
    return x0 + sigma * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)


@torch.no_grad()
def pc_trace(
    denoiser: Callable,
    schedule: VE,
    shape: tuple[int, ...],
    n: int,
    steps: int,
    prior,
    seed: int,
    **opts,
) -> tuple[Tensor, Tensor, Tensor]:
    """(sigma_i, shell distance of the states at each predictor query, final samples) of
    n :func:`gmdiff.samplers.ve_pc` samples from N(0, sigma_max^2 I): the Monte Carlo
    version of :func:`pc_gaussian_recursion` for any denoiser (exact or trained); the
    reference at each sigma_i is n fresh :func:`exact_inputs` of ``prior``."""
    gen = torch.Generator().manual_seed(seed)
    ref_gen = torch.Generator().manual_seed(seed + 7919)
    sig, dist = [], []

    def cb(i, sigma, x, d):
        sig.append(sigma)
        ref = exact_inputs(prior, n, sigma, ref_gen).reshape(n, *shape)
        dist.append(shell_distance_mc(x, ref))

    x_T = schedule.prior_sample((n, *shape), gen)
    x = ve_pc(denoiser, schedule, x_T, steps, generator=gen, callback=cb, **opts)
    return torch.tensor(sig), torch.tensor(dist), x


def exact_study(
    spectra: dict[str, Callable[[int], Tensor]],
    dims: Sequence[int],
    iterations: Sequence[int],
    sigma_min: float = 0.01,
    n_sigma_max: int = 1000,
) -> pd.DataFrame:
    """One row per (spectrum, D, iterations): the exact PC recursion on N(0, diag lam) with
    lam = ``spectra[name](D)``, sigma_max from :func:`sigma_max_rule` on ``n_sigma_max``
    data points (seed 0): the largest |shell distance| of a predictor query, its value at
    the median level, and the output's relative W2^2 (:func:`pc_gaussian_recursion`)."""
    rows = []
    for name, spectrum in spectra.items():
        for D in dims:
            lam = spectrum(D).double()
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n_sigma_max, D, generator=g, dtype=torch.float64) * lam.sqrt()
            sched = VE(sigma_min=sigma_min, sigma_max=sigma_max_rule(x))
            for N in iterations:
                r = pc_gaussian_recursion(lam, sched, N)
                p = r["predictor"]
                rows.append(
                    {
                        "data": name,
                        "D": D,
                        "iterations": N,
                        "sigma_max": sched.sigma_max,
                        "max |shell distance|": float(p.abs().max()),
                        "shell distance at median sigma": float(p[len(p) // 2]),
                        "relative W2^2": r["rel_w2"],
                    }
                )
    return pd.DataFrame(rows)


def mixture_exact_study(
    k: int, rank: int, dims: Sequence[int], iterations: Sequence[int], n: int, beta: float = 2.0
) -> tuple[pd.DataFrame, dict[int, float]]:
    """Monte-Carlo PC runs (:func:`pc_trace`, n samples, seed 0) of two exact models of the
    :func:`gmm_data` family in each D: the true score ("exact score", what a perfectly
    trained SGM learns) and the optimum of GM-SGM's loss with ``beta``
    (:func:`gmdiff.papers.gm_sgm.exact_denoiser`, "GM-SGM optimum"). One row per (model, D,
    iterations): the largest |shell distance| and :func:`frechet_to_moments`; and the
    metric's floor (:func:`floor_fd`, n exact samples, seeds 0-1) per D."""
    from gmdiff import data

    rows, floors = [], {}
    for D in dims:
        prior = data.seeded_low_rank_gmm(D, k, rank, 0)
        x = prior.sample(1000, torch.Generator().manual_seed(0))
        sched = VE(sigma_min=0.01, sigma_max=sigma_max_rule(x))
        mean, cov = prior.moments()
        floors[D] = floor_fd(prior, n, [0, 1])
        models = {"exact score": prior.denoiser,
                  "GM-SGM optimum": G.exact_denoiser(prior, (1.0, beta))}  # fmt: skip
        for name, den in models.items():
            for N in iterations:
                _, dist, xs = pc_trace(den, sched, (D,), n, N, prior, seed=0)
                rows.append(
                    {
                        "model": name,
                        "D": D,
                        "iterations": N,
                        "max |shell distance|": float(dist.abs().max()),
                        "relative FD": frechet_to_moments(xs, mean, cov),
                    }
                )
    return pd.DataFrame(rows), floors


# --------------------------------------------------------------------------------------
# Trained networks across D
# --------------------------------------------------------------------------------------


def gmm_data(D: int, k: int, rank: int) -> dict:
    """The run-config data entry of the study's family: :func:`gmdiff.data.low_rank_gmm`
    in R^D with ``k`` components of rank ``rank`` (seed 0): a fixed low-dimensional
    structure in a growing ambient dimension, with a known density."""
    return {"name": "low_rank_gmm", "options": {"d": D, "k": k, "rank": rank, "seed": 0}}


def frechet_to_moments(x: Tensor, mean: Tensor, cov: Tensor) -> float:
    """The Frechet distance (:func:`gmdiff.metrics.frechet_distance`) between the exact
    moments and the sample moments of ``x`` (N, D), normalised by tr(cov)."""
    x = x.flatten(1).double()
    exact = (mean.double().cpu().numpy(), cov.double().cpu().numpy())
    sample = (x.mean(0).cpu().numpy(), torch.cov(x.T).cpu().numpy())
    return metrics.frechet_distance(*exact, *sample) / float(cov.double().trace())


def trained_study(
    train: Callable[[int, float, int], tuple[Callable, VE, object]],
    dims: Sequence[int],
    betas: Sequence[float],
    seeds: Sequence[int],
    iterations: Sequence[int],
    n: int,
    ratio_iterations: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample every net ``train(D, beta, seed) -> (denoiser, VE schedule, analytic prior)``
    with :func:`gmdiff.samplers.ve_pc` at each iteration count (n samples, sampling seed =
    the training seed). Returns (one row per D, beta, seed, iterations: the samples'
    :func:`frechet_to_moments` and the largest |shell distance| along the trajectory
    (:func:`pc_trace`); one row per D, seed, iterations and step: the SGM / GM-SGM
    ratios r_mean and r_var of the estimated-noise norms, GM-SGM Sec. 5.1 and Fig. 4,
    :func:`gmdiff.papers.gm_sgm.r_mean_var`, for beta = ``betas[1]`` against ``betas[0]``,
    at the iteration counts ``ratio_iterations``, default all)."""
    rows, ratios = [], []
    for D in dims:
        for seed in seeds:
            nets = {b: train(D, b, seed) for b in betas}
            prior = nets[betas[0]][2]
            mean, cov = prior.moments()
            for N in iterations:
                for b, (den, sched, _) in nets.items():
                    _, dist, x = pc_trace(den, sched, (D,), n, N, prior, seed)
                    rows.append(
                        {
                            "D": D,
                            "beta": b,
                            "seed": seed,
                            "iterations": N,
                            "relative FD": frechet_to_moments(x, mean, cov),
                            "max |shell distance|": float(dist.abs().max()),
                        }
                    )
                if len(betas) > 1 and (ratio_iterations is None or N in ratio_iterations):
                    sched = nets[betas[0]][1]
                    x_T = sched.prior_sample((n, D), torch.Generator().manual_seed(seed))
                    s, nb = G.xi_norms(nets[betas[0]][0], sched, x_T, N, seed)
                    _, ng = G.xi_norms(nets[betas[1]][0], sched, x_T, N, seed)
                    rm, rv = G.r_mean_var(ng, nb)
                    ratios += [
                        {
                            "D": D,
                            "seed": seed,
                            "iterations": N,
                            "step": i,
                            "sigma": float(s[i]),
                            "r_mean": float(rm[i]),
                            "r_var": float(rv[i]),
                        }
                        for i in range(N)
                    ]
    return pd.DataFrame(rows), pd.DataFrame(ratios)


def floor_fd(prior, n: int, seeds: Sequence[int]) -> float:
    """Mean :func:`frechet_to_moments` of n exact samples of ``prior`` (the metric's
    Monte-Carlo floor at this sample count, :func:`gmdiff.metrics.noise_floor`; seed
    100 + s for each of ``seeds``)."""
    mean, cov = prior.moments()

    def measure(s: int) -> float:
        x = prior.sample(n, torch.Generator().manual_seed(100 + s))
        return frechet_to_moments(x, mean, cov)

    return metrics.noise_floor(measure, seeds).mean


def mlp_config(cfg: dict, k: int, rank: int, D: int, beta: float, seed: int, device: str = "cpu"):
    """(run config, cache name) of one net of the study: an MLP (EDM preconditioning,
    ``cfg['width']`` x ``cfg['depth']``) on :func:`gmm_data`, trained with GM-SGM's Alg. 1
    noise ({"name": "gm_sgm", "beta": beta}; beta = 1 is the SGM) on the VE schedule with
    sigma_min 0.01 and sigma_max from :func:`sigma_max_rule` on 1,000 data points
    (``cfg``: width, depth, steps, batch, lr, ema_decay and optionally ema_rampup and
    sigma_data, EDM's c_skip scale, default the 1,000 points' standard deviation)."""
    from gmdiff import data

    x = data.seeded_low_rank_gmm(D, k, rank, 0).sample(1000, torch.Generator().manual_seed(0))
    model = {
        "net": "toy_mlp",
        "overrides": {
            "dim": D,
            "width": cfg["width"],
            "depth": cfg["depth"],
            "embedding": "fourier",
        },
        "precond": "edm",
        "sigma_data": cfg.get("sigma_data", round(float(x.std()), 3)),
    }
    schedule = {
        "name": "ve",
        "options": {"sigma_min": 0.01, "sigma_max": round(sigma_max_rule(x), 2)},
    }
    rc = G.dsm_config(
        gmm_data(D, k, rank),
        model,
        schedule,
        {"name": "gm_sgm", "beta": float(beta)},
        steps=cfg["steps"],
        batch=cfg["batch"],
        lr=cfg["lr"],
        ema_decay=cfg.get("ema_decay", 0.999),
        ema_rampup=cfg.get("ema_rampup", 0.0),
        seed=seed,
        device=device,
    )
    return rc, f"gms-dim{D}"


def mlp_trainer(
    cfg: dict,
    k: int,
    rank: int,
    device: str = "cpu",
    bank: Iterable[tuple[int, float, int]] = (),
):
    """``train(D, beta, seed) -> (EMA denoiser, VE schedule, analytic prior)``: the net of
    :func:`mlp_config` trained by :func:`gmdiff.runs.load_or_train` (cached by its config).
    The ``(D, beta, seed)`` of ``bank`` are trained first, side by side
    (:func:`gmdiff.runs.load_or_train_many`)."""
    from gmdiff import data

    def train(D: int, beta: float, seed: int):
        run = runs.load_or_train(*mlp_config(cfg, k, rank, D, beta, seed, device))[0]
        return run.denoiser, run.schedule, data.seeded_low_rank_gmm(D, k, rank, 0)

    runs.load_or_train_many([mlp_config(cfg, k, rank, *b, device=device) for b in bank])
    return train


def summarize(table: pd.DataFrame, value: str, by: Sequence[str]) -> pd.DataFrame:
    """Mean over seeds of ``value`` with the seed range (min, max), one row per ``by``."""
    g = table.groupby(list(by))[value]
    return pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max(), "seeds": g.count()})


def gap_table(table: pd.DataFrame, value: str = "relative FD") -> pd.DataFrame:
    """SGM minus GM-SGM of ``value`` per (D, iterations, seed) (positive: GM-SGM better),
    then its mean and seed range: the paired difference, same seed on both sides."""
    wide = table.pivot_table(index=["D", "iterations", "seed"], columns="beta", values=value)
    b0, b1 = sorted(wide.columns)[:2]
    gap = (wide[b0] - wide[b1]).rename("gap").reset_index()
    return summarize(gap, "gap", ["D", "iterations"])


def relative_offset_isotropic(D: int, steps: int, sigma_min: float = 0.01) -> float:
    """The relative variance error v / (1 + sigma^2) - 1 at the median predictor query for
    N(0, I_D) data: :func:`pc_gaussian_recursion`'s shell distance over sqrt(D / 2)."""
    lam = torch.ones(D, dtype=torch.float64)
    x = torch.randn(1000, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = pc_gaussian_recursion(lam, VE(sigma_min=sigma_min, sigma_max=sigma_max_rule(x)), steps)
    return float(r["predictor"][steps // 2] / math.sqrt(D / 2))


# --------------------------------------------------------------------------------------
# Training adequacy: a trained denoiser against the exact optimum of its own loss
# --------------------------------------------------------------------------------------


@torch.no_grad()
def excess_over_optimum(
    denoiser: Callable,
    prior,
    sigmas: Sequence[float],
    scales: Sequence[float] = (1.0,),
    n: int = 2000,
    seed: int = 0,
    chunk: int = 1000,
) -> pd.DataFrame:
    """How far a trained denoiser is from the best its loss allows, on fresh samples.

    Inputs as training corrupts them: x = x_0 + beta~ sigma z, x_0 from the analytic
    ``prior``, beta~ = ``scales[k]`` with equal probability (``(1,)``: the SGM; ``(1, 2)``:
    GM-SGM's Alg. 1), and the net is asked D(x, sigma) as in training. The optimum of the
    DSM loss under that corruption is the posterior mean D*(x, sigma) =
    E[x_0 | x] (:func:`gmdiff.papers.gm_sgm.exact_denoiser`, GM-SGM Eq. 13), so for every
    denoiser E||D(x, sigma) - x_0||^2 = E||D* - x_0||^2 + E||D - D*||^2 and

        excess(sigma) = E||D(x, sigma) - x_0||^2 - E||D*(x, sigma) - x_0||^2 >= 0,

    0 only for the optimum. One row per sigma: both mean squared errors (summed over the
    D coordinates, averaged over ``n`` samples; the same x_0, z and beta~ for both), the
    excess with its standard error (the per-sample differences), and the excess over the
    optimum's error ("excess / optimum": 0 is a perfect fit, 1 an error twice the
    irreducible one). ``seed`` fixes the draws; ``chunk`` rows per network call."""
    if n < 2:
        raise ValueError(f"n must be >= 2 for a standard error, got {n}")
    scales = tuple(float(b) for b in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive noise multipliers, got {scales}")
    if min(float(s) for s in sigmas) <= 0:
        raise ValueError(f"sigmas must be > 0, got {list(sigmas)}")
    optimum = G.exact_denoiser(prior, scales)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in sigmas:
        x0 = prior.sample(n, gen).double()
        pick = torch.randint(len(scales), (n,), generator=gen)
        b = torch.tensor(scales, dtype=x0.dtype)[pick]
        x = x0 + float(sigma) * b[:, None] * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        s = torch.full((n,), float(sigma), dtype=x0.dtype)
        err_opt = (optimum(x, s) - x0).pow(2).sum(1)
        d = torch.cat([denoiser(x[i : i + chunk].float(), s[i : i + chunk].float()).double()
                       for i in range(0, n, chunk)])  # fmt: skip
        err_net = (d.reshape(x0.shape) - x0).pow(2).sum(1)
        diff = err_net - err_opt
        rows.append(
            {
                "sigma": float(sigma),
                "MSE optimum": float(err_opt.mean()),
                "MSE net": float(err_net.mean()),
                "excess": float(diff.mean()),
                "excess s.e.": float(diff.std() / math.sqrt(n)),
                "excess / optimum": float(diff.mean() / err_opt.mean()),
            }
        )
    return pd.DataFrame(rows)


def excess_table(
    train: Callable[[int, float, int], tuple[Callable, VE, object]],
    dims: Sequence[int],
    betas: Sequence[float],
    seeds: Sequence[int],
    sigmas: Sequence[float],
    n: int,
) -> pd.DataFrame:
    """:func:`excess_over_optimum` of every net ``train(D, beta, seed)``, each under its own
    training noise (beta~ in {1, beta}: beta = 1 is the SGM), on ``n`` fresh samples per
    sigma (draw seed 1000 + the training seed). One row per (D, beta, seed, sigma)."""
    parts = []
    for D in dims:
        for b in betas:
            for s in seeds:
                den, _, prior = train(D, b, s)
                e = excess_over_optimum(den, prior, sigmas, (1.0, float(b)), n, seed=1000 + s)
                parts.append(e.assign(D=D, beta=float(b), seed=s))
    cols = ["D", "beta", "seed"]
    out = pd.concat(parts, ignore_index=True)
    return out[cols + [c for c in out.columns if c not in cols]]


def model_names(table: pd.DataFrame, betas: Sequence[float] = (1.0, 2.0)) -> pd.DataFrame:
    """``table`` with a ``model`` column: "SGM" for beta = ``betas[0]``, "GM-SGM" for the other."""
    return table.assign(
        model=table["beta"].map({float(betas[0]): "SGM", float(betas[1]): "GM-SGM"})
    )


def long_study(sizes: dict, seeds: Sequence[int], device: str = "cpu") -> dict[str, pd.DataFrame]:
    """The stored evidence of GMS-6 at the dimension (the ``long`` profile of
    configs/studies/gms_dimension.yaml), as tables:

    ``samples``
        :func:`trained_study` at ``sizes['dims']`` x ``seeds`` x ``sizes['iterations']``
        (relative FD and shell distance; SGM and GM-SGM, beta = 2), with ``model``;
    ``comparison``
        GM-SGM - SGM relative FD per (D, iterations), paired by seed, with its 95 % interval
        and direction word (:func:`gmdiff.stats.paired_table`; "better": GM-SGM lower);
    ``excess``
        every net's :func:`excess_table` over ``sizes['excess']['sigmas']``;
    ``adequacy``
        each net's :meth:`gmdiff.runs.Run.adequacy` (EMA share of the initialisation, loss);
    ``control`` / ``control_excess``
        the first seed retrained with ``sizes['control']['longer']`` times the steps at
        ``sizes['control']['dims']``, beside the same seed at the profile's budget (a
        ``steps`` column);
    ``floors``
        the relative FD of ``sizes['n']`` exact samples per D (:func:`floor_fd`)."""
    from gmdiff import data, stats

    net, gmm, betas = sizes["net"], sizes["gmm"], (1.0, 2.0)
    dims, iters, n = sizes["dims"], sizes["iterations"], sizes["n"]
    ex = sizes["excess"]
    ctl = sizes["control"]
    longer = {**net, "steps": net["steps"] * int(ctl["longer"])}
    bank = [(D, b, s) for D in dims for b in betas for s in seeds]
    ctl_bank = [(D, b, seeds[0]) for D in ctl["dims"] for b in betas]
    train = mlp_trainer(net, **gmm, device=device, bank=bank)
    train_long = mlp_trainer(longer, **gmm, device=device)
    samples, _ = trained_study(train, dims, betas, seeds, iters, n, ratio_iterations=[])
    samples = model_names(samples)
    comparison = stats.paired_table(
        samples, "relative FD", "model", [("GM-SGM", "SGM")], by=["D", "iterations"]
    )
    excess = model_names(excess_table(train, dims, betas, seeds, ex["sigmas"], ex["n"]))
    adequacy = []
    for cfg, (D, b, s) in [(net, k) for k in bank] + [(longer, k) for k in ctl_bank]:
        run = runs.load_or_train(*mlp_config(cfg, gmm["k"], gmm["rank"], D, b, s, device))[0]
        adequacy.append({"D": D, "beta": b, "seed": s} | run.adequacy())
    adequacy = model_names(pd.DataFrame(adequacy))
    ctl_samples, _ = trained_study(
        train_long, ctl["dims"], betas, [seeds[0]], iters, n, ratio_iterations=[]
    )
    base = samples[(samples["seed"] == seeds[0]) & samples["D"].isin(ctl["dims"])]
    control = pd.concat([base.assign(steps=net["steps"]), model_names(ctl_samples).assign(steps=longer["steps"])],
                        ignore_index=True)  # fmt: skip
    ctl_ex = model_names(
        excess_table(train_long, ctl["dims"], betas, [seeds[0]], ex["sigmas"], ex["n"])
    )
    base_ex = excess[(excess["seed"] == seeds[0]) & excess["D"].isin(ctl["dims"])]
    control_excess = pd.concat([base_ex.assign(steps=net["steps"]), ctl_ex.assign(steps=longer["steps"])],
                               ignore_index=True)  # fmt: skip
    priors = {D: data.seeded_low_rank_gmm(D, gmm["k"], gmm["rank"], 0) for D in dims}
    floors = pd.DataFrame([{"D": D, "floor": floor_fd(p, n, [0, 1])} for D, p in priors.items()])
    return {"samples": samples, "comparison": comparison.reset_index(), "excess": excess, "adequacy": adequacy,
            "control": control, "control_excess": control_excess, "floors": floors}  # fmt: skip


#: Where :func:`long_study`'s tables are stored (``results.save_results``) for the chapter.
LONG_RESULTS = results.ROOT / "long" / "gms_dimension.json"


def excess_summary(
    excess: pd.DataFrame, value: str = "excess / optimum", by: Sequence[str] = ("D", "model")
) -> pd.DataFrame:
    """:func:`excess_table` rows (with ``model``) as text, "mean [seed range]" of ``value``
    over the seeds at the range's noise level (:func:`gmdiff.stats.fmt_interval`; one seed,
    or seeds that agree: the value, three significant digits), rows ``by``, columns sigma."""
    g = excess.groupby([*by, "sigma"])[value]
    text = [stats.fmt_interval(a, b, c, signed=False) if c > b else f"{a:.3g}"
            for a, b, c in zip(g.mean(), g.min(), g.max(), strict=True)]  # fmt: skip
    return pd.Series(text, index=g.mean().index, name=value).unstack("sigma")


def control_summary(control: pd.DataFrame, value: str = "relative FD") -> pd.DataFrame:
    """The longer-training control (:func:`long_study`'s ``control``): ``value`` per (D,
    steps) and model at each iteration count, and GM-SGM - SGM (> 0: GM-SGM worse)."""
    wide = control.pivot_table(index=["D", "steps", "iterations"], columns="model", values=value)
    wide["GM-SGM - SGM"] = wide["GM-SGM"] - wide["SGM"]
    return wide[["SGM", "GM-SGM", "GM-SGM - SGM"]].unstack("iterations")


def excess_ranges(
    excess: pd.DataFrame, threshold: float = 0.5, value: str = "excess / optimum"
) -> dict[str, str]:
    """ "min to max" (two significant digits, no exponent) of ``value``'s mean over seeds,
    over D and the sigmas of a band, per model: keys ``large_sgm`` / ``large_gmsgm`` (sigma
    >= ``threshold``) and ``small_sgm`` / ``small_gmsgm`` (below), for prose."""

    def two(v: float) -> str:
        return f"{float(f'{v:.2g}'):g}"  # 190, 17, 0.012
    mean = excess.groupby(["D", "model", "sigma"])[value].mean().reset_index()
    out = {}
    for band, rows in [("large", mean["sigma"] >= threshold), ("small", mean["sigma"] < threshold)]:
        for model, name in [("SGM", "sgm"), ("GM-SGM", "gmsgm")]:
            v = mean.loc[rows & (mean["model"] == model), value]
            if len(v):
                out[f"{band}_{name}"] = f"{two(v.min())} to {two(v.max())}"
    return out


def store_long(path=LONG_RESULTS, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Run :func:`long_study` with the ``long`` profile of configs/studies/gms_dimension.yaml
    (seeds ``seed``, ``seed`` + 1, ...; one torch thread) and store its tables at ``path``
    with the profile, seeds, sizes and wall minutes (:func:`gmdiff.results.save_results`);
    the stored file was made by ``python -c "from gmdiff.papers import gm_sgm_dimension as
    M; M.store_long()"`` with ``GMDIFF_TRAIN_WORKERS=1``."""
    import time

    from gmdiff.study import Study

    torch.set_num_threads(1)
    start = time.perf_counter()
    S = Study.open("gms_dimension", "long")
    seeds = [seed + k for k in range(len(S["seeds"]))]
    tables = long_study(S.sizes, seeds)
    keep = ("dims", "net", "iterations", "n", "excess", "control", "gmm")
    meta = results.run_meta(
        "long",
        seeds=seeds,
        minutes=(time.perf_counter() - start) / 60,
        machine="1 CPU core (torch threads 1)",
        sizes={k: S[k] for k in keep},
    )
    results.save_results(path, meta, **tables)
    return tables
