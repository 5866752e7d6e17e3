"""One benchmark across the four papers on data with an exact answer (CLAIMS X-1, X-2).

Five training methods, each the library's own model of its paper, on equal terms: the same
MLP (``width`` x ``depth``), training steps, batch, learning rate, EMA and seeds, the same
data, and the same number of denoiser evaluations (NFE) when sampling.

* **DDPM** (Ho et al. 2020): an eps network on the discrete VP chain of ``T`` steps;
* **SMD** (Soft Mixture Denoising, Eq. 15 / Alg. 1): the same eps network with SMD's
  latent layers (:mod:`gmdiff.nets.smd`);
* **GM-DDPM** (Alg. 1): the same eps network with mixture offsets ``lam * mu_base`` and
  the component classifier (:mod:`gmdiff.nets.gm_ddpm`);
* **SGM** (score_sde, VE) and **GM-SGM** (Alg. 1's alternation, beta = 2): an
  EDM-preconditioned MLP trained with :func:`gmdiff.losses.dsm_loss` on the VE process.

Samplers (:data:`SAMPLERS`): ancestral (DDPM's Alg. 2 respaced; SMD's Alg. 2; GM-DDPM's
Alg. 2, which takes all ``T`` steps), DDIM and DPM-Solver++(2M) for the eps networks; the
PC sampler, EDM's Heun and Heun after analytical teleportation (the Gaussian score paper's
Alg. 1, the Gaussian of the data's exact moments) for the VE networks.

Ground truth (X-2): the data are Gaussian mixtures (:mod:`gmdiff.analytic`), so every
method's denoiser is compared with the exact one along the noise levels
(:func:`denoiser_errors`), and samples are scored against the exact distribution
(:func:`sample_scores`: sliced W2 to exact samples, modes found and their width).

Images: on sklearn's 8x8 digits (data ``{"name": "digits8x8"}``) the same five methods
train the ``digits`` U-Net at ``Budget.channels`` base channels; there is no exact answer,
so :func:`benchmark` scores their samples with a given ``score`` (the chapter's: FD-digits,
precision and recall in the digit classifier's features).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from gmdiff import config, data, metrics, runs, stats, timing
from gmdiff.analytic import Gaussian, GaussianMixture
from gmdiff.metrics import t_interval  # also B.t_interval in the chapter
from gmdiff.samplers import SAMPLERS, heun_nfe
from gmdiff.schedules import EDM

METHODS = ("DDPM", "SMD", "GM-DDPM", "SGM", "GM-SGM")
ASSIGN_SIGMA = 0.05
VP_METHODS = ("DDPM", "SMD", "GM-DDPM")


@dataclass(frozen=True)
class Budget:
    """What every method gets: the network (an MLP ``width`` x ``depth``), the training
    (``steps`` of ``batch``, AdamW ``lr`` after ``warmup`` steps, EMA ``ema_decay`` with
    EDM's ramp ``ema_rampup``, :class:`gmdiff.train.TrainConfig`), the
    VP chain length ``T`` (DDPM's linear betas from ``beta_1`` to ``beta_T``), the VE range
    (sigma_min to ``sigma_max``), GM-DDPM's offset scale ``lam``, GM-SGM's ``beta``; on
    images the network is the ``digits`` U-Net with ``channels`` base channels instead."""

    steps: int = 1500
    batch: int = 256
    lr: float = 2e-3
    warmup: int = 100
    ema_decay: float = 0.995
    ema_rampup: float = 0.0
    width: int = 128
    depth: int = 3
    T: int = 50
    beta_1: float = 2e-3
    beta_T: float = 0.4
    sigma_min: float = 0.01
    sigma_max: float = 10.0
    lam: float = 0.2
    gm_sgm_beta: float = 2.0
    channels: int = 24


def dataset(spec: dict) -> tuple[dict, GaussianMixture | None]:
    """(the run-config data entry, the exact distribution) of ``spec``: ``{"name": "ring",
    "k", "radius", "std"}`` (equal-weight Gaussians on a circle in the plane),
    ``{"name": "low_rank_gmm", "d", "k", "rank"}`` (:func:`gmdiff.data.seeded_low_rank_gmm`,
    seed 0) or ``{"name": "digits8x8"}`` (sklearn's 1,797 digits; no exact distribution:
    None)."""
    opts = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] == "digits8x8" and not opts:
        return {"name": "digits8x8"}, None
    if spec["name"] == "ring":
        return {"name": "ring2d", "options": opts}, data.ring2d(**opts)
    if spec["name"] == "low_rank_gmm":
        entry = {"name": "low_rank_gmm", "options": {**opts, "seed": 0}}
        return entry, data.seeded_low_rank_gmm(opts["d"], opts["k"], opts["rank"], 0)
    raise ValueError(
        f"data must be 'ring', 'low_rank_gmm' or 'digits8x8' (no options), got {spec!r}"
    )


def run_config(method: str, spec: dict, budget: Budget, seed: int, device: str = "cpu"):
    """The :class:`gmdiff.config.RunConfig` of ``method`` on the data ``spec`` with
    ``budget`` and training seed ``seed`` (what ``gmdiff train`` takes)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    entry, prior = dataset(spec)
    if prior is None:  # images: the digits U-Net (SMD and GM-DDPM wrap it as their base)
        base, nets = {"ch": budget.channels}, ("digits", "smd_digits", "gm_ddpm_digits")
        x = data.digits8x8()[0]
    else:
        base = {"dim": prior.dim, "width": budget.width, "depth": budget.depth}
        nets = ("toy_mlp", "smd_toy_mlp", "gm_ddpm_toy_mlp")
        x = prior.sample(1000, torch.Generator().manual_seed(0))
    if method in VP_METHODS:
        schedule = {
            "name": "ddpm_linear",
            "options": {"T": budget.T, "beta_1": budget.beta_1, "beta_T": budget.beta_T},
        }
        model, loss = {
            "DDPM": ({"net": nets[0], "overrides": base}, {"name": "eps"}),
            "SMD": (
                {"net": nets[1], "overrides": {"base": base}},
                {"name": "smd", "options": {"n_eta": 1, "reduction": "mean"}},
            ),
            "GM-DDPM": (
                {"net": nets[2], "overrides": {"base": base, "lam": budget.lam}},
                {"name": "gm_ddpm", "options": {"classifier_weight": 1.0}},
            ),
        }[method]
        model["precond"] = "vp"
    else:
        model = {
            "net": nets[0],
            "overrides": base if prior is None else {**base, "embedding": "fourier"},
            "precond": "edm",
            "sigma_data": round(float(x.std()), 3),
        }
        beta = 1.0 if method == "SGM" else budget.gm_sgm_beta
        loss = {"name": "dsm", "options": {"noise": {"name": "gm_sgm", "beta": beta}}}
        schedule = {
            "name": "ve",
            "options": {"sigma_min": budget.sigma_min, "sigma_max": budget.sigma_max},
        }
    train = {
        "steps": budget.steps,
        "batch_size": budget.batch,
        "lr": budget.lr,
        "warmup_steps": budget.warmup,
        "ema_decay": budget.ema_decay,
        "ema_rampup": budget.ema_rampup,
        "grad_clip": 1.0,
        "seed": seed,
        "log_every": budget.steps,
        "ckpt_every": max(1, budget.steps // 4),
        "device": device,
    }
    return config.from_dict(
        {"data": entry, "model": model, "loss": loss, "schedule": schedule, "train": train}
    )


def train_all(
    methods: Sequence[str],
    specs: dict[str, dict],
    budget: Budget,
    seeds: Sequence[int],
    device: str = "cpu",
    cache_dir=None,
) -> dict[tuple[str, str, int], runs.Run]:
    """{(method, data name, seed): trained run}, through :func:`gmdiff.runs.load_or_train_many`
    (cached; the missing runs trained side by side)."""
    keys = [(m, name, s) for name in specs for m in methods for s in seeds]
    jobs = [(run_config(m, specs[name], budget, s, device), "bench") for m, name, s in keys]
    return dict(zip(keys, runs.load_or_train_many(jobs, cache_dir=cache_dir), strict=True))


# --------------------------------------------------------------------------------------
# Sampling at a number of denoiser evaluations
# --------------------------------------------------------------------------------------

#: sampler label -> the methods it serves
SAMPLERS_OF = {
    "ancestral": VP_METHODS,
    "DDIM": VP_METHODS,
    "DPM-Solver": VP_METHODS,
    "PC": ("SGM", "GM-SGM"),
    "Heun": ("SGM", "GM-SGM"),
    "Heun + teleport": ("SGM", "GM-SGM"),
}


def plan(method: str, sampler: str, nfe: int, run: runs.Run, teleport_sigma: float):
    """(library sampler, steps, options, NFE actually spent) for ``sampler`` on ``method``'s
    ``run`` within ``nfe`` denoiser evaluations, or None where it cannot run there.

    Ancestral, DDIM and DPM-Solver++(2M) take ``nfe`` steps of the (respaced) chain, one
    evaluation each; GM-DDPM's ancestral sampler only all ``T``. PC takes ``nfe // 2``
    iterations (a corrector and a predictor step, one evaluation each). Heun takes the
    ``(nfe + 1) // 2`` levels of EDM's schedule that cost at most ``nfe``; Heun + teleport
    spends the same on the levels below ``teleport_sigma``: it takes the EDM schedule with
    the most levels whose first ``skip`` levels above ``teleport_sigma`` are jumped over."""
    if method not in SAMPLERS_OF.get(sampler, ()):
        return None
    T = getattr(run.schedule, "T", None)
    if sampler == "ancestral" and method == "GM-DDPM":
        return ("gm_ddpm", T, {"strategy": "standard"}, T) if nfe == T else None
    if sampler in ("ancestral", "DDIM", "DPM-Solver"):
        name = {"ancestral": "ddpm", "DDIM": "ddim", "DPM-Solver": "dpm_solver_pp"}[sampler]
        return (name, nfe, {}, nfe) if nfe <= T else None
    if sampler == "PC":
        return ("ve_pc", nfe // 2, {}, 2 * (nfe // 2))
    levels = (nfe + 1) // 2
    if levels < 2:
        return None
    if sampler == "Heun":
        return ("heun", levels, {}, heun_nfe(levels))
    steps = levels
    while True:  # the finest EDM schedule that leaves ``levels`` levels below teleport_sigma
        skip = _levels_above(steps + 1, run.schedule, teleport_sigma)
        if steps + 1 - skip > levels:
            break
        steps += 1
    skip = _levels_above(steps, run.schedule, teleport_sigma)
    return ("teleport_heun", steps, {"skip": skip}, heun_nfe(steps, skip))


def edm_of(schedule) -> EDM:
    """EDM's schedule over a VE schedule's range (the VE networks' D(x, sigma) is EDM's)."""
    return EDM(sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max)


def _levels_above(steps: int, schedule, sigma: float) -> int:
    """How many of the ``steps`` EDM levels lie above ``sigma`` (at most steps - 1)."""
    levels = edm_of(schedule).sigma_steps(steps)[:steps]
    return min(int((levels > sigma).sum()), steps - 1)


def draw(run: runs.Run, planned, n: int, seed: int, gaussian: Gaussian) -> Tensor:
    """n samples of ``run`` with a :func:`plan`; x_T from a generator seeded with ``seed``."""
    name, steps, options, _ = planned
    schedule = run.schedule
    if name in ("heun", "teleport_heun"):
        schedule = edm_of(schedule)
        if name == "teleport_heun":
            options = {**options, "gaussian": gaussian}
    return runs.draw_samples(
        run.denoiser, schedule, SAMPLERS[name], steps, run.shape, n, seed=seed, batch=n,
        **options,
    )  # fmt: skip


def sample_scores(x: Tensor, prior: GaussianMixture, reference: Tensor, seed: int) -> dict:
    """What n samples ``x`` get right about the exact ``prior``: ``SW2`` (sliced W2 to as
    many exact samples ``reference``, :func:`gmdiff.metrics.sw2_to_reference`), ``modes``
    (the components holding at least a fifth of their share of the samples, each sample
    given to its most likely component under the data noised by ``ASSIGN_SIGMA``, as
    low-rank components have no density off their plane) and ``width`` (the samples' RMS
    distance to the mean of their component over the component's exact RMS spread,
    averaged over the components found: 1 is right, above 1 blurred, below 1 collapsed;
    where modes overlap, exact samples score below 1)."""
    x = x.double()
    if not torch.isfinite(x).all():
        return {"SW2": math.inf, "modes": 0, "width": math.nan}
    comp = prior.component_log_probs(x, ASSIGN_SIGMA).argmax(1)
    w = prior.log_weights.exp()
    counts = torch.bincount(comp, minlength=prior.n_components).double()
    found = counts >= 0.2 * w * len(x)
    spread = (prior.lam.double().sum(1)).sqrt()  # exact RMS distance to the mean
    widths = [
        float(((x[comp == k] - prior.means[k]) ** 2).sum(1).mean().sqrt() / spread[k])
        for k in range(prior.n_components)
        if found[k]
    ]
    return {
        "SW2": metrics.sw2_to_reference(x, reference, seed),
        "modes": int(found.sum()),
        "width": sum(widths) / len(widths) if widths else math.nan,
    }


def teleport_gaussian(spec: dict) -> Gaussian:
    """The Gaussian that Heun + teleport jumps with: the exact mean and covariance of a
    mixture, or the moments of the training images (the Gaussian score paper, Eqs. 147-148)."""
    prior = dataset(spec)[1]
    if prior is None:
        return Gaussian.from_data(data.digits8x8()[0].flatten(1).double())
    mean, cov = prior.moments()
    return Gaussian.from_cov(mean.double(), cov.double())


def _samples(method, run, spec, nfes, n, seed, teleport_scale):
    """(NFE actually spent, NFE budget, n samples) of every sampler of ``method`` that can
    run within each budget of ``nfes``; x_T drawn with seed 1000 + ``seed``."""
    gaussian = teleport_gaussian(spec)
    tele = teleport_scale * float(gaussian.eigenvalues.sum().sqrt())
    for sampler in SAMPLERS_OF:
        for nfe in nfes:
            p = plan(method, sampler, nfe, run, tele)
            if p is not None:
                yield sampler, p[3], nfe, draw(run, p, n, 1000 + seed, gaussian)


def benchmark(
    trained: dict[tuple[str, str, int], runs.Run],
    specs: dict[str, dict],
    nfes: Sequence[int],
    n: int,
    teleport_scale: float = 1.0,
    score=None,
) -> pd.DataFrame:
    """One row per (data, method, sampler, NFE, seed) that can run: the scores of n
    samples. Samples of training seed s start from x_T drawn with seed 1000 + s for every
    method and sampler of one data set (paired across methods). Heun + teleport jumps to
    sigma = ``teleport_scale`` x the RMS spread of the data, sqrt(tr Cov)
    (:func:`teleport_gaussian`).

    Mixtures are scored by :func:`sample_scores` against n exact samples drawn with seed
    2000 + s; images (no exact distribution) by ``score(x) -> dict`` (e.g.
    :class:`gmdiff.papers.gm_ddpm.ImageScores` in the digit classifier's features)."""
    rows = []
    for (method, name, s), run in trained.items():
        prior = dataset(specs[name])[1]
        if prior is None:
            if score is None:
                raise ValueError(f"data {name!r} has no exact distribution: pass score=")
            scores = score
        else:
            ref = prior.sample(n, torch.Generator().manual_seed(2000 + s))
            scores = functools.partial(sample_scores, prior=prior, reference=ref, seed=s)
        for sampler, spent, nfe, x in _samples(method, run, specs[name], nfes, n, s,
                                               teleport_scale):  # fmt: skip
            rows.append({"data": name, "method": method, "sampler": sampler, "NFE": spent,
                         "NFE budget": nfe, "seed": s, **scores(x)})  # fmt: skip
    return pd.DataFrame(rows)


def floor_scores(specs: dict[str, dict], n: int, seeds: Sequence[int], score=None) -> pd.DataFrame:
    """The metrics' own floor at this sample count (:func:`gmdiff.metrics.noise_floor`, one
    row per data set and seed): :func:`sample_scores` of n exact samples (seed 3000 + s)
    against the benchmark's references; for images, ``score`` of n training images drawn
    without replacement (seed 3000 + s), which the reference holds."""
    rows = []
    for name, spec in specs.items():
        prior = dataset(spec)[1]
        if prior is None and score is None:
            raise ValueError(f"data {name!r} has no exact distribution: pass score=")

        def measure(s: int, prior=prior) -> dict:
            g = torch.Generator().manual_seed(3000 + s)
            if prior is None:
                images = data.digits8x8()[0]
                return score(images[torch.randperm(len(images), generator=g)[:n]])
            ref = prior.sample(n, torch.Generator().manual_seed(2000 + s))
            return sample_scores(prior.sample(n, g), prior, ref, s)

        floor = metrics.noise_floor(measure, seeds)
        rows += [{"data": name, "seed": s, **row}
                 for s, row in zip(seeds, floor.values.to_dict("records"), strict=True)]  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Denoisers against the exact ones
# --------------------------------------------------------------------------------------


@torch.no_grad()
def denoiser_errors(
    trained: dict[tuple[str, str, int], runs.Run],
    specs: dict[str, dict],
    steps: Sequence[int],
    n: int,
    gm_sgm_beta: float = 2.0,
) -> pd.DataFrame:
    """Per (data, method, seed, chain step t): the denoiser's excess error over the exact
    optimum of its own loss, E||D_theta - x_0||^2 / E||D* - x_0||^2 - 1 on n fresh noisy
    points at the VP chain's noise level sigma_t = sqrt(1/abar_t - 1) (seed 4000 + s).

    D* is the exact posterior mean E[x_0 | x_0 + sigma eta] of the mixture
    (:meth:`gmdiff.analytic.GaussianMixture.denoiser`) for DDPM, SMD and SGM; for GM-SGM
    it is the minimiser of its mixture-noise loss (:func:`gmdiff.papers.gm_sgm.exact_denoiser`,
    scales (1, beta)) on points noised as it was trained (beta~ = 1 or beta, equal odds:
    Alg. 1 alternates), and ``vs Gaussian-path D*`` is its excess over the Gaussian-path
    posterior mean, the one its sampler needs, on the Gaussian points; for GM-DDPM the eps network against the exact E[eps | x_t] on
    the offset chain (:class:`gmdiff.analytic.gm_ddpm.ExactGMDDPM`), in eps, which at one
    step is the same ratio. Runs on data without an exact distribution (images) are left out."""
    from gmdiff.analytic.gm_ddpm import ExactGMDDPM
    from gmdiff.papers import gm_ddpm as P
    from gmdiff.papers.gm_sgm import exact_denoiser

    rows = []
    for (method, name, s), run in trained.items():
        prior = dataset(specs[name])[1]
        if prior is None:
            continue
        if method == "GM-DDPM":
            exact = ExactGMDDPM(prior, run.schedule, run.trained.noise)
            tab = P.identifiability(exact, prior, run.schedule, steps, n, 4000 + s, run.trained)
            for t, net, opt in zip(tab["t"], tab["mse_net"], tab["mse_exact"], strict=True):
                rows.append({"data": name, "method": method, "seed": s, "t": int(t),
                             "excess": net / opt - 1})  # fmt: skip
            continue
        vp = trained[("DDPM", name, s)].schedule
        own = exact_denoiser(prior, (1.0, gm_sgm_beta)) if method == "GM-SGM" else None
        g = torch.Generator().manual_seed(4000 + s)
        for t in steps:
            sigma = float(vp.sigma_edm(t))
            lo, hi = (
                getattr(run.schedule, "sigma_min", 0),
                getattr(run.schedule, "sigma_max", math.inf),
            )
            if not lo <= sigma <= hi:
                raise ValueError(
                    f"step {t} has sigma = {sigma:.3g}, outside {method}'s trained range "
                    f"[{lo}, {hi}]; choose steps inside it"
                )
            x0 = prior.sample(n, g)
            x = x0 + sigma * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
            level = torch.full((n,), sigma)
            gauss = _mse(prior.denoiser(x, sigma), x0)
            err = _mse(run.denoiser(x.float(), level), x0)
            row = {"data": name, "method": method, "seed": s, "t": t, "sigma": sigma}
            if own is None:
                row["excess"] = err / gauss - 1
            else:  # its own loss: x_0 + beta~ sigma eta, beta~ in {1, beta} with equal odds
                pick = torch.randint(0, 2, (n, 1), generator=g).double()
                scale = 1 + (gm_sgm_beta - 1) * pick
                x_own = x0 + scale * sigma * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
                own_err = _mse(run.denoiser(x_own.float(), level), x0)
                row["excess"] = own_err / _mse(own(x_own, level.double()), x0) - 1
                row["vs Gaussian-path D*"] = err / gauss - 1
            rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def kernel_errors(
    trained: dict[tuple[str, str, int], runs.Run],
    specs: dict[str, dict],
    steps: Sequence[int],
    n_x: int,
    n_y: int,
    n_eta: int,
) -> pd.DataFrame:
    """Per (data, seed, chain step t, kernel): KL(q(x_{t-1} | x_t) || p(x_{t-1} | x_t))
    from the exact reverse step of the mixture (SMD paper, Prop. 3.1) to the ancestral
    kernel of the trained DDPM and SMD networks (SMD's over ``n_eta`` draws of its
    latent), and to the best Gaussian and best DDPM kernels computed exactly, averaged over
    ``n_x`` draws of x_t (:func:`gmdiff.papers.smd.kernel_table`, seed 5000 + s). The
    other methods are left out: GM-DDPM's chain is not DDPM's and the VE samplers have no
    ancestral kernel on this chain; so are data without an exact distribution."""
    from gmdiff.papers import smd

    tables = []
    for (method, name, s), run in trained.items():
        prior = dataset(specs[name])[1]
        if method != "DDPM" or prior is None or ("SMD", name, s) not in trained:
            continue
        smd_run = trained[("SMD", name, s)]
        models = {m: (r.trained, r.denoiser) for m, r in (("DDPM", run), ("SMD", smd_run))}
        tab = smd.kernel_table(models, prior, run.schedule, n_x=n_x, n_y=n_y, n_eta=n_eta,
                               seed=5000 + s, steps=steps)  # fmt: skip
        tables.append(tab.assign(data=name, seed=s))
    return pd.concat(tables, ignore_index=True)


def kernel_difference(kernels: pd.DataFrame, with_: str = "SMD", without: str = "DDPM"):
    """Per (data, t) of :func:`kernel_errors`' table: the KL of kernel ``with_`` minus that
    of ``without``, paired by seed, as mean and 95 % t-interval over the seeds."""
    per_seed = kernels.pivot_table(index=["data", "t", "seed"], columns="kernel", values="KL")
    diff = per_seed[with_] - per_seed[without]
    rows = []
    for (d, t), g in diff.groupby(level=["data", "t"]):
        mean, lo, hi = t_interval(g.tolist())
        rows.append({"data": d, "t": t, "difference": mean, "low": lo, "high": hi})
    return pd.DataFrame(rows)


def _mse(d: Tensor, x0: Tensor) -> float:
    return float(((d.double() - x0) ** 2).sum(1).mean())


# --------------------------------------------------------------------------------------
# Summaries over seeds
# --------------------------------------------------------------------------------------


#: The comparisons of the results table: (idea, (method, sampler) with it, without it).
IDEAS = (
    ("SMD (ancestral)", ("SMD", "ancestral"), ("DDPM", "ancestral")),
    ("SMD + DDIM", ("SMD", "DDIM"), ("DDPM", "DDIM")),
    ("SMD + DPM-Solver", ("SMD", "DPM-Solver"), ("DDPM", "DPM-Solver")),
    ("GM-DDPM (Alg. 2, all T)", ("GM-DDPM", "ancestral"), ("DDPM", "ancestral")),
    ("GM-DDPM + DDIM", ("GM-DDPM", "DDIM"), ("DDPM", "DDIM")),
    ("GM-DDPM + DPM-Solver", ("GM-DDPM", "DPM-Solver"), ("DDPM", "DPM-Solver")),
    ("GM-SGM (PC)", ("GM-SGM", "PC"), ("SGM", "PC")),
    ("GM-SGM (Heun)", ("GM-SGM", "Heun"), ("SGM", "Heun")),
    ("teleport on SGM", ("SGM", "Heun + teleport"), ("SGM", "Heun")),
    ("teleport on GM-SGM", ("GM-SGM", "Heun + teleport"), ("GM-SGM", "Heun")),
    ("GM-SGM + teleport vs SGM", ("GM-SGM", "Heun + teleport"), ("SGM", "Heun")),
)


def paired(table: pd.DataFrame, value: str, ideas=IDEAS) -> pd.DataFrame:
    """Per idea of ``ideas`` (label, with, without), data set and NFE budget: ``value`` with
    the idea minus without it, paired by training seed (the same data, budget and x_T),
    as mean and 95 % Student t-interval over seeds (:func:`gmdiff.stats.paired`); ``effect``
    is the book's one direction word, "better" / "worse" where the interval excludes 0
    (lower ``value`` is better), else "tied"."""
    idx = ["data", "NFE budget", "seed"]

    def of(method, sampler):
        rows = table[(table["method"] == method) & (table["sampler"] == sampler)]
        return rows.set_index(idx)[value]

    out = []
    for label, with_, without in ideas:
        pairs = pd.concat({"with": of(*with_), "without": of(*without)}, axis=1).dropna()
        for (d, b), g in pairs.groupby(level=["data", "NFE budget"]):
            if len(g) < 2:
                continue
            r = stats.paired(g["with"], g["without"])
            out.append({"idea": label, "data": d, "NFE budget": b, "seeds": len(g),
                        "difference": r["difference"], "low": r["low"], "high": r["high"],
                        "effect": r["direction"]})  # fmt: skip
    return pd.DataFrame(out)


def step_cost(
    methods: Sequence[str], spec: dict, budget: Budget, steps: int = 100, repeats: int = 3
) -> pd.DataFrame:
    """Seconds per training step of each method (``steps`` steps of the Trainer from a fresh
    start, on one thread as the harness trains; the methods interleaved, ``repeats``
    rounds after one warm-up round, :func:`gmdiff.timing.step_times`) and the median ratio
    to the first method of each round, measured in this process; plus the trained
    module's parameter count."""
    import itertools
    import tempfile

    short = dataclasses.replace(budget, steps=steps)

    def train_fresh(m: str, tmp: str):
        calls = itertools.count()  # a new run folder for every call
        cfg = run_config(m, spec, short, seed=0)
        return lambda: runs.train(dataclasses.replace(cfg, out_dir=f"{tmp}/{m}-{next(calls)}"))

    with tempfile.TemporaryDirectory() as tmp:
        times = timing.step_times(
            {m: train_fresh(m, tmp) for m in methods}, steps, repeats, warmup=1
        )
    base = times[methods[0]]
    return pd.DataFrame(
        {
            "parameters": [
                sum(
                    p.numel()
                    for p in runs.build(run_config(m, spec, budget, 0)).trained.parameters()
                )
                for m in methods
            ],
            "ms per step": [1e3 * times[m].median for m in methods],
            "ratio to " + methods[0]: [times[m].ratio(base) for m in methods],
        },
        index=pd.Index(methods, name="method"),
    )
