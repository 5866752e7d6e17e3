"""GM-DDPM ("Denoising diffusion probabilistic models with Gaussian mixture noise"): the
experiments behind the ``gmd_*`` chapters. Equation and algorithm numbers refer to that
paper; the process, posterior and exact model are in :mod:`gmdiff.analytic.gm_ddpm`, the
network in :mod:`gmdiff.nets.gm_ddpm`, the loss in :func:`gmdiff.losses.gm_ddpm_loss` and
the samplers of Algs. 2-5 in :func:`gmdiff.samplers.gm_ddpm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from gmdiff import metrics
from gmdiff.analytic import gm_ddpm as A
from gmdiff.config import load_config, run_file
from gmdiff.metrics import t_interval
from gmdiff.noise import OffsetMixtureNoise
from gmdiff.papers import numbers
from gmdiff.schedules import DiscreteVP
from gmdiff.stats import direction, paired_table  # the one verdict rule (below, the chapter)

F64 = torch.float64

#: The repository's run configs (configs/ beside src/), wherever a chapter runs from.

#: Tables 1-3 of the paper (``papers/numbers/gm_ddpm.yaml``; of Table 3 the CIFAR-10 FID at
#: lr 1e-4, the learning rate of Table 1, and its other columns, (IS, FID) per cell: CIFAR-10
#: at lr 2e-4 and CIFAR-100).
PAPER_TABLE1 = numbers.table("gm_ddpm", "table1")
PAPER_TABLE2 = numbers.table("gm_ddpm", "table2")
PAPER_TABLE3_C10 = numbers.table("gm_ddpm", "table3_cifar10")
PAPER_TABLE3_OTHER = numbers.table("gm_ddpm", "table3_other")
#: Table 2's only precision / recall (AFHQ-cat): (solver, model) -> (P, R).
PAPER_TABLE2_PR = {
    (r.solver, r.model): (r.precision, r.recall)
    for r in numbers.table("gm_ddpm", "table2_pr").itertuples(index=False)
}


# --------------------------------------------------------------------------------------
# Forward process (GMD-1, GMD-2)
# --------------------------------------------------------------------------------------


def simulate_chain(
    x0: Tensor, schedule: DiscreteVP, noise: OffsetMixtureNoise, t: int, generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 2 step by step from x0 (B, D) up to step t: (x_{t-1}, x_t, paths i_1..i_t)."""
    x, prev, paths = x0.to(F64), x0.to(F64), []
    for s in range(1, t + 1):
        b = float(schedule.betas[s - 1])
        eps, i = noise.step(x, generator)
        prev, x = x, math.sqrt(1 - b) * x + math.sqrt(b) * eps
        paths.append(i)
    return prev, x, torch.stack(paths, 1)


def _projection_cdf(m: A.OffsetMarginal, u_hat: Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """The CDF of x_t . u_hat under the marginal m (Eq. 4 grouped): a mixture of normals."""
    loc = (m.signal.means @ u_hat).numpy()
    nu = float(m.direction.norm())
    scale = np.sqrt(m.noise_std**2 + (m.offsets.spread * nu**2).numpy())
    w = m.offsets.weights.numpy()
    return lambda y: (w * stats.norm.cdf((np.asarray(y)[:, None] - loc) / scale)).sum(1)


def marginal_check(
    x0: Tensor,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
    steps: Sequence[int],
    n: int,
    seed: int,
    x0_scale: Callable[[float], float] = math.sqrt,
) -> pd.DataFrame:
    """The chain of Eq. 2 simulated step by step (n copies of x0, D small) against the
    closed form q(x_t | x_0) of Eq. 4: per step, the z-scores of the simulated mean and
    variance of x_t . u_hat and the Kolmogorov-Smirnov p-value of that projection under the
    closed form. ``x0_scale`` = the factor on x_0 in the closed form (sqrt(ab_t); Eq. 22
    prints ab_t, a planted error to show that the check fails)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for t in steps:
        _, x_t, _ = simulate_chain(x0.expand(n, -1), schedule, noise, t, g)
        ab = float(schedule.alpha_bar[t])
        m = A.marginal(x0.to(F64) * x0_scale(ab) / math.sqrt(ab), t, schedule, noise)
        u_hat = m.direction / m.direction.norm()
        y = x_t @ u_hat
        mean, var = float(m.mean @ u_hat), float(u_hat @ m.cov @ u_hat)
        z_mean = (float(y.mean()) - mean) / math.sqrt(var / n)
        z_var = (float(y.var()) - var) / (var * math.sqrt(2 / (n - 1)))
        p_ks = stats.kstest(y.numpy(), _projection_cdf(m, u_hat)).pvalue
        rows.append({"t": t, "z_mean": z_mean, "z_var": z_var, "ks_p": p_ks})
    return pd.DataFrame(rows)


def posterior_check(
    x0: Tensor,
    schedule: DiscreteVP,
    noise: OffsetMixtureNoise,
    steps: Sequence[int],
    n: int,
    seed: int,
    printed_eq29: bool = False,
) -> pd.DataFrame:
    """Simulated pairs (x_{t-1}, x_t) with their paths against Eqs. 29-30: the residual
    r = x_{t-1} - mean must be N(0, var I) and uncorrelated with x_t. Per step: z-score of
    E[r], ratio Var[r] / var, the z-score of corr(r, x_t) (all coordinates pooled), and the
    largest gap between Eq. 9 with the chain's own eps and the posterior mean (Eq. 8).
    ``printed_eq29``: use Eq. 29's printed sqrt(alpha_{t-1}) x_0 (planted error)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for t in steps:
        x_prev, x_t, paths = simulate_chain(x0.expand(n, -1), schedule, noise, t, g)
        mean, var = A.posterior(x_t, x0.to(F64), t, paths, schedule, noise)
        if printed_eq29:
            b, g_prev = float(schedule.betas[t - 1]), 1 - float(schedule.alpha_bar[t - 1])
            wrong = math.sqrt(1 - float(schedule.betas[t - 2])) if t > 1 else 1.0
            right = math.sqrt(float(schedule.alpha_bar[t - 1]))
            mean = mean + b * (wrong - right) * x0.to(F64) / (b + (1 - b) * g_prev)
        r = (x_prev - mean).flatten()
        xc = (x_t - x_t.mean(0)).flatten()
        corr = float((r * xc).mean() / (r.std() * xc.std()))
        ab = float(schedule.alpha_bar[t])
        eps = (
            x_t
            - math.sqrt(ab) * x0
            - A._path_offsets(A.offset_coefficients(schedule, t), paths, noise, x_t)
        ) / math.sqrt(1 - ab)
        gap = float(
            (A.mean_from_eps(x_t, eps, t, paths[:, t - 1], schedule, noise) - mean).abs().max()
        )
        rows.append(
            {
                "t": t,
                "z_mean": float(r.mean()) / math.sqrt(var / r.numel()),
                "var_ratio": float(r.var()) / var,
                "z_corr": corr * math.sqrt(r.numel()),
                "eq9_gap": gap,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# PSNR and classifier accuracy along the forward process (GMD-3, GMD-4)
# --------------------------------------------------------------------------------------


def expected_mse(x0: Tensor, schedule: DiscreteVP, noise: OffsetMixtureNoise, t: int) -> float:
    """E||x_t - x_0||^2 / D averaged over the images x0 (N, ...), in closed form from Eq. 3:
    (sqrt(ab_t) - 1)^2 E[x_0^2] + gamma_t + E[S_t^2] |u|^2 / D (S_t the offset sum)."""
    ab = float(schedule.alpha_bar[t])
    law = A.offset_sum(A.offset_coefficients(schedule, t), noise.values, noise.probs, 0.01)
    u = noise.unit_vector(x0[:1].to(F64))
    es2 = float(law.var() + law.mean() ** 2)
    return (
        (math.sqrt(ab) - 1) ** 2 * float((x0.to(F64) ** 2).mean())
        + (1 - ab)
        + es2 * float((u**2).mean())
    )


def forward_curves(
    images: Tensor,
    labels: Tensor,
    classifier,
    schedule: DiscreteVP,
    lams: Sequence[float],
    steps: Sequence[int],
    seed: int,
    direction: str = "ones",
) -> pd.DataFrame:
    """For each lambda and step t: x_t of every image (one draw of Eq. 3), the PSNR of the
    mean MSE (``psnr_sim``) and its closed form (``psnr_exact``, :func:`expected_mse`), the
    mean per-image PSNR, and the accuracy of ``classifier`` on x_t (images in [-1, 1],
    PSNR with data range 2)."""
    rows = []
    for lam in lams:
        noise = OffsetMixtureNoise(lam, direction=direction)
        g = torch.Generator().manual_seed(seed)
        for t in steps:
            x_t, _, _ = A.sample_marginal(images, t, schedule, noise, g)
            mse = ((x_t - images) ** 2).flatten(1).mean(1)
            with torch.no_grad():
                acc = float((classifier(x_t.float()).argmax(1) == labels).float().mean())
            rows.append(
                {
                    "lam": lam,
                    "t": t,
                    "psnr_sim": 10 * math.log10(4 / float(mse.mean())),
                    "psnr_exact": 10 * math.log10(4 / expected_mse(images, schedule, noise, t)),
                    "psnr_mean": float(metrics.psnr(x_t, images).mean()),
                    "accuracy": acc,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Samplers on a model (GMD-6..9)
# --------------------------------------------------------------------------------------

#: The sampler runs of the tables: name -> (library sampler, steps (None: T), options).
SAMPLER_RUNS: dict[str, tuple[str, int | None, dict]] = {
    "Alg. 2 (argmax i_t)": ("gm_ddpm", None, {"strategy": "standard"}),
    "Alg. 3 (DDPM update)": ("gm_ddpm", None, {"strategy": "ddpm"}),
    "Alg. 4 (mu kept)": ("gm_ddpm", None, {"strategy": "keep_mu"}),
    "Alg. 5 (random i_t)": ("gm_ddpm", None, {"strategy": "random"}),
    "i_t ~ p(i_t|x_t) (ours)": ("gm_ddpm", None, {"strategy": "posterior"}),
    "DDIM, 10 steps": ("ddim", 10, {}),
    "DPM-Solver++(2M), 10 steps": ("dpm_solver_pp", 10, {}),
}


def sample_quality(
    denoiser,
    schedule: DiscreteVP,
    reference: Tensor,
    n: int,
    seeds: Sequence[int],
    runs: dict[str, tuple[str, int | None, dict]] = SAMPLER_RUNS,
) -> pd.DataFrame:
    """Every run of ``runs`` (:func:`gmdiff.runs.draw_samples`: x_T ~ N(0, I), one generator
    seeded by 1000 + seed), once per seed: the sliced 2-Wasserstein distance
    (:func:`gmdiff.metrics.sliced_wasserstein`, 128 projections) to ``reference`` samples
    of the data. One row per (run, seed)."""
    from gmdiff.runs import draw_samples
    from gmdiff.samplers import SAMPLERS

    rows = []
    for name, (sampler, steps, opts) in runs.items():
        for s in seeds:
            x = draw_samples(
                denoiser,
                schedule,
                SAMPLERS[sampler],
                steps or schedule.T,
                tuple(reference.shape[1:]),
                n,
                seed=1000 + s,
                **opts,
            )
            sw = metrics.sliced_wasserstein(
                x.double(), reference.double(), 128, torch.Generator().manual_seed(s)
            )
            rows.append({"sampler": name, "seed": s, "sw2": sw})
    return pd.DataFrame(rows)


def identifiability(
    exact: A.ExactGMDDPM,
    data,
    schedule: DiscreteVP,
    steps: Sequence[int],
    n: int,
    seed: int,
    net=None,
) -> pd.DataFrame:
    """How well i_t can be read off x_t: per step, on fresh draws of Eq. 3, the accuracy of
    the exact posterior's argmax (the Bayes accuracy), the prior's (max omega) and, with
    ``net`` (a :class:`gmdiff.nets.GMDDPMNet`), the trained classifier's accuracy, the mean
    KL(exact || trained) over x_t, and the eps MSE of the network and of the exact
    E[eps | x_t] (the least any network can reach)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    noise = exact.noise
    for t in steps:
        x0 = data.sample(n, generator=g)
        x_t, eps, paths = A.sample_marginal(x0, t, schedule, noise, g)
        i_t = paths[:, t - 1]
        c = torch.full((n,), t - 1.0, dtype=F64)
        log_p = exact.logits(x_t, c)
        row = {
            "t": t,
            "prior_acc": float(noise.probs.max()),
            "bayes_acc": float((log_p.argmax(1) == i_t).double().mean()),
            "mse_exact": float(((exact(x_t, c) - eps) ** 2).mean()),
        }
        if net is not None:
            with torch.no_grad():
                log_q = torch.log_softmax(net.logits(x_t.float(), c.float()).double(), 1)
                e_net = net(x_t.float(), c.float()).double()
            row |= {
                "net_acc": float((log_q.argmax(1) == i_t).double().mean()),
                "kl": float((log_p.exp() * (log_p - log_q)).sum(1).mean()),
                "mse_net": float(((e_net - eps) ** 2).mean()),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def toy_config(lam: float, steps: int, seed: int):
    """configs/gm_ddpm_toy.yaml (the chapters' GM-DDPM on the ring) with offset scale
    ``lam``, ``steps`` training steps and training seed ``seed``: a
    :class:`gmdiff.config.RunConfig` for :func:`gmdiff.runs.load_or_train`."""
    sets = [f"model.overrides.lam={lam}", f"train.steps={steps}", f"train.seed={seed}"]
    return load_config(run_file("configs/gm_ddpm_toy.yaml"), sets)


# --------------------------------------------------------------------------------------
# Tables 1-3 on trained image models (GMD-7..9)
# --------------------------------------------------------------------------------------

#: The table runs: name -> (library sampler, steps (None: all T; "solver": the solver
#: budget), options). The three strategies are Table 1's rows in the paper's order (Sec.
#: 4.1: "original" = the DDPM sampler, Alg. 3; "removal mu", Alg. 4; "random mu", Alg. 5);
#: the solvers are Table 2's (DPM-Solver run as the library's DPM-Solver++(2M)).
TABLE_RUNS: dict[str, tuple[str, int | str | None, dict]] = {
    "original (Alg. 3)": ("gm_ddpm", None, {"strategy": "ddpm"}),
    "removal mu (Alg. 4)": ("gm_ddpm", None, {"strategy": "keep_mu"}),
    "random mu (Alg. 5)": ("gm_ddpm", None, {"strategy": "random"}),
    "DDIM": ("ddim", "solver", {}),
    "DPM-Solver": ("dpm_solver_pp", "solver", {}),
}
STRATEGY_RUNS = tuple(TABLE_RUNS)[:3]
SOLVER_RUNS = tuple(TABLE_RUNS)[3:]
#: Alg. 3 with the reverse variance the paper's algorithms write, sigma-tilde_t of Eq. 34,
#: in place of Eq. 30's (:mod:`gmdiff.samplers.gm_ddpm`, ``variance``).
EQ34_RUN = "original (Alg. 3), Eq. 34 variance"
VARIANCE_RUNS = {EQ34_RUN: ("gm_ddpm", None, {"strategy": "ddpm", "variance": "eq34"})}



#: The readings of the paper's scalar means mu_k = lam * mu_base_k (Sec. 4.1) as overrides of
#: the table configs (:mod:`gmdiff.nets.gm_ddpm`): ``shared`` is the files' own (every
#: pixel shifted by the same mu_k) and adds nothing, so its runs keep their cache; ``unit``
#: shifts along 1 / sqrt(D); ``per_pixel`` draws a component per pixel and, having no
#: K-way classifier, trains without Alg. 1's classifier term.
READINGS: dict[str, tuple[str, ...]] = {
    "shared": (),
    "unit": ("model.overrides.direction=unit",),
    "per_pixel": ("model.overrides.per_coordinate=true", "loss.options.classifier_weight=0"),
}


def table_config(
    base: str | Path, lam: float, seed: int, sets: Sequence[str] = (), reading: str = "shared"
):
    """The run of the tables for offset scale ``lam`` (0 = DDPM: the same network, loss
    and schedule with every mean 0, Sec. 4.3), training seed ``seed`` and reading
    ``reading`` of the means (:data:`READINGS`): the run file ``base`` (a study's:
    configs/gm_ddpm_digits.yaml, configs/gm_ddpm_cifar10.yaml) with ``sets`` (``key=value``
    overrides, e.g. the data folder) applied."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {list(READINGS)}, got {reading!r}")
    overrides = [*sets, *READINGS[reading], f"model.overrides.lam={lam}", f"train.seed={seed}"]
    return load_config(run_file(base), overrides)


def train_table_models(
    base: str | Path,
    lams: Sequence[float],
    seeds: Sequence[int],
    sets: Sequence[str] = (),
    cache_dir=None,
    reading: str = "shared",
) -> dict[tuple[float, int], object]:
    """{(lam, seed): :class:`gmdiff.runs.Run`} for every lam and seed under ``reading``,
    each trained once (cached; the missing ones side by side,
    :func:`gmdiff.runs.load_or_train_many`) and loaded with its EMA weights."""
    from gmdiff import runs

    keys = [(lam, s) for lam in lams for s in seeds]
    jobs = [(table_config(base, lam, s, sets, reading), "gmd-tables") for lam, s in keys]
    return dict(zip(keys, runs.load_or_train_many(jobs, cache_dir=cache_dir), strict=True))


def table_samples(run, name: str, n: int, seed: int, solver_steps: int, batch: int = 1000):
    """n samples of the trained ``run`` with the table run ``name`` (:data:`TABLE_RUNS`,
    :data:`VARIANCE_RUNS`),
    from x_T ~ N(0, I) drawn by a generator seeded with ``seed`` (so every model and run
    with the same seed starts from the same noise)."""
    from gmdiff.runs import draw_samples
    from gmdiff.samplers import SAMPLERS

    sampler, steps, opts = (TABLE_RUNS | VARIANCE_RUNS)[name]
    steps = run.schedule.T if steps is None else solver_steps
    return draw_samples(
        run.denoiser, run.schedule, SAMPLERS[sampler], steps, run.shape, n,
        seed=seed, batch=batch, **opts,
    )  # fmt: skip


class ImageScores:
    """The tables' metrics of a sample set against fixed reference images, in one feature
    space (the digit classifier's for FD-digits / IS-digits, Inception's for FID):

    * ``fd``: Frechet distance of the features (:func:`gmdiff.metrics.frechet_distance_features`)
      to all reference images;
    * ``is``: exp E KL(p(y|x) || p(y)) (Salimans et al. 2016), either IS-digits
      (:func:`gmdiff.metrics.classifier_score`) when a digit ``classifier`` is given (profile
      ``ci``), or the Inception Score of the paper's IS column (GM-DDPM paper, Tables 1-3)
      when ``inception_score`` is given (profile ``full``: the study's
      :meth:`gmdiff.study.Images.inception_score`, i.e.
      :func:`gmdiff.fidelity.inception_score`: torch-fidelity's Inception-v3 port, the
      mean over 10 splits of the samples, Salimans et al.'s protocol), at most one of them;
    * ``precision`` / ``recall``: Kynkaanniemi et al. 2019 (k = 3,
      :func:`gmdiff.metrics.precision_recall`) against ``n_pr`` reference images drawn once
      (seeded), as many as the samples (the metric compares sets of equal size).

    ``features(images) -> (N, F)``; samples are clipped to [-1, 1] first, as images are."""

    def __init__(
        self, reference: Tensor, features, n_pr: int, seed: int, classifier=None,
        inception_score: Callable[[Tensor], float] | None = None,
    ):  # fmt: skip
        if classifier is not None and inception_score is not None:
            raise ValueError(
                "ImageScores: give a classifier (IS-digits) or inception_score (IS), not both"
            )
        self.features, self.classifier = features, classifier
        self.inception_score = inception_score
        self.ref = features(reference)
        idx = torch.randperm(len(reference), generator=torch.Generator().manual_seed(seed))
        self.ref_pr = self.ref[idx[:n_pr]]

    def __call__(self, x: Tensor) -> dict[str, float]:
        x = x.clamp(-1, 1)
        f = self.features(x)
        out = {"fd": metrics.frechet_distance_features(f, self.ref)}
        if self.classifier is not None:
            out["is"] = metrics.classifier_score(x, self.classifier)
        elif self.inception_score is not None:
            out["is"] = float(self.inception_score(x))
        out["precision"], out["recall"] = metrics.precision_recall(
            self.ref_pr, f[: len(self.ref_pr)]
        )
        return out


def evaluate_tables(
    models: dict[tuple[float, int], object],
    runs_of: Callable[[float], Sequence[str]],
    score: Callable[[Tensor], dict[str, float]],
    n: int,
    solver_steps: int,
    batch: int = 1000,
) -> pd.DataFrame:
    """One row per (lam, seed, run in ``runs_of(lam)``): the scores of n samples of the
    model (lam, seed); samples of seed s start from x_T drawn with seed 1000 + s for every
    model and run, so differences between models of one seed are paired."""
    rows = []
    for (lam, s), run in models.items():
        for name in runs_of(lam):
            x = table_samples(run, name, n, 1000 + s, solver_steps, batch)
            rows.append({"lam": lam, "seed": s, "run": name, **score(x)})
    return pd.DataFrame(rows)


def readings_study(
    base: str | Path,
    lam: float,
    seeds: Sequence[int],
    score: Callable[[Tensor], dict[str, float]],
    n: int,
    solver_steps: int,
    sets: Sequence[str] = (),
    batch: int = 1000,
    cache_dir=None,
) -> pd.DataFrame:
    """Tables 1-2 at offset scale ``lam`` under every reading of the paper's scalar means
    (:data:`READINGS`), each table run plus Alg. 3 with Eq. 34's variance
    (:data:`VARIANCE_RUNS`), and DDPM (lam = 0) with its own sampler and the solvers as
    the baseline: one row per (model, seed) with ``model`` = "<reading>: <run>" (DDPM's:
    "DDPM: <run>") and the scores of :func:`evaluate_tables` (paired by seed: every model
    of a seed starts from the same x_T)."""
    ddpm = train_table_models(base, [0.0], seeds, sets, cache_dir)
    own = evaluate_tables(ddpm, lambda _: [STRATEGY_RUNS[0], *SOLVER_RUNS], score, n,
                          solver_steps, batch)  # fmt: skip
    parts = [own.assign(model="DDPM: " + own["run"])]
    for reading in READINGS:
        models = train_table_models(base, [lam], seeds, sets, cache_dir, reading)
        table = evaluate_tables(models, lambda _: [*TABLE_RUNS, *VARIANCE_RUNS], score, n,
                                solver_steps, batch)  # fmt: skip
        parts.append(table.assign(model=f"{reading}: " + table["run"]))
    return pd.concat(parts, ignore_index=True)


def readings_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """Each non-DDPM model of :func:`readings_study` with its DDPM baseline: the same
    solver, else DDPM's own sampler (Alg. 3 at lam = 0)."""
    pairs = []
    for m in models:
        reading, run = m.split(": ", 1)
        if reading != "DDPM":
            pairs.append((m, f"DDPM: {run if run in SOLVER_RUNS else STRATEGY_RUNS[0]}"))
    return pairs


def readings_comparison(scores: pd.DataFrame, metric: str = "fd") -> pd.DataFrame:
    """The scores of :func:`readings_study` (lower ``metric`` is better) as paired
    differences over seeds: each reading's model minus its DDPM baseline
    (:func:`readings_pairs`), one row per comparison with the columns of
    :func:`gmdiff.stats.paired_table` ("comparison", "seeds", "difference [95 % CI]",
    "direction") and the comparison's ``reading`` and table ``run``."""
    pairs = readings_pairs(scores["model"].unique())
    compared = paired_table(scores, metric, "model", pairs).reset_index()
    compared[["reading", "run"]] = compared["comparison"].str.split(": ", n=1, expand=True)
    compared["run"] = compared["run"].str.split(" - ").str[0]
    return compared


def readings_table(compared: pd.DataFrame) -> pd.DataFrame:
    """:func:`readings_comparison` as a table: one row per run, one column per reading
    (:data:`READINGS`, in order), each cell "difference [95 % CI] direction"."""
    cell = compared["difference [95 % CI]"] + " " + compared["direction"]
    wide = compared.assign(cell=cell).pivot(index="run", columns="reading", values="cell")
    return wide[list(READINGS)]


def reading_rows(compared: pd.DataFrame, reading: str, runs: Sequence[str]) -> pd.DataFrame:
    """The rows of :func:`readings_comparison` under ``reading`` for ``runs``, in that
    order, indexed by run."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {list(READINGS)}, got {reading!r}")
    rows = compared[compared["reading"] == reading].set_index("run")
    missing = [r for r in runs if r not in rows.index]
    if missing:
        raise ValueError(f"the readings study has no {reading!r} rows for the runs {missing}")
    return rows.loc[list(runs)]


def readings_verdicts(
    compared: pd.DataFrame,
    claims: Mapping[str, pd.DataFrame],
    shared_only: Collection[str] = (),
) -> pd.DataFrame:
    """One row per claim: its verdict (:func:`verdict`) under each reading of the means
    and over all of them (:func:`verdict_over_readings`). ``claims[claim]`` is the
    claim's cells (:func:`claim_cells`: ``run``, ``ours``, ``paper``) from the tables'
    models, which give the shared reading's verdict; under the other readings ours is the
    direction of the same runs in ``compared`` (:func:`readings_comparison`), or "not
    run" for a claim of ``shared_only`` (a table that ran under the shared reading only)."""
    unknown = set(shared_only) - set(claims)
    if unknown:
        raise ValueError(f"shared_only names claims not in claims: {sorted(unknown)}")
    rows = []
    for claim, cells in claims.items():
        paper = list(cells.paper)
        each = {"shared reading": verdict(list(cells.ours), paper)}
        for r in list(READINGS)[1:]:
            if claim in shared_only:
                each[f"{r} reading"] = "not run"
            else:
                ours = list(reading_rows(compared, r, cells.run)["direction"])
                each[f"{r} reading"] = verdict(ours, paper)
        over = verdict_over_readings(list(each.values()))
        rows.append({"claim": claim, "verdict (all readings)": over, **each})
    return pd.DataFrame(rows).set_index("claim")


def paired_differences(
    scores: pd.DataFrame, metric: str, baseline: Callable[[str], str]
) -> pd.DataFrame:
    """For every (lam > 0, run) of ``scores`` (:func:`evaluate_tables`): the mean of
    ``metric`` over seeds, and its difference from DDPM (lam = 0, run ``baseline(run)``) of
    the same seed: mean, 95% t-interval over the seeds (mean -+ t_{0.975, n-1} sd / sqrt n)
    and the range over the seeds."""
    base = scores[scores.lam == 0].set_index(["run", "seed"])[metric]
    rows = []
    for (lam, run), g in scores[scores.lam > 0].groupby(["lam", "run"], sort=False):
        d = g[metric].to_numpy() - base.loc[[(baseline(run), s) for s in g.seed]].to_numpy()
        _, low, high = t_interval(d) if len(d) > 1 else (0.0, -math.inf, math.inf)
        rows.append({"lam": lam, "run": run, "mean": g[metric].mean(), "diff": d.mean(),
                     "ci_low": low, "ci_high": high,
                     "min": d.min(), "max": d.max(), "seeds": len(d)})  # fmt: skip
    return pd.DataFrame(rows)


def verdict_over_readings(verdicts: Sequence[str]) -> str:
    """One claim's verdict from its verdicts under each faithful reading of the paper
    (:data:`READINGS`; "not run" where a reading was not run): the common verdict when
    every reading that ran agrees, else "inconclusive" -- a result that flips with the
    reading of an ambiguous equation does not decide the claim."""
    ran = {v for v in verdicts if v != "not run"}
    if not ran:
        raise ValueError("no reading ran")
    return ran.pop() if len(ran) == 1 else "inconclusive"


def paper_direction(diff: float, tol: float, lower_is_better: bool = True) -> str:
    """The direction of a paper's difference (model - DDPM; no error bars printed): "tied"
    within ``tol``, else better / worse."""
    return direction(diff - tol, diff + tol, lower_is_better)


def verdict(ours: Sequence[str], paper: Sequence[str]) -> str:
    """The ledger's verdict from paired cells (ours, the paper's direction): every cell
    agrees -> "reproduced at small scale"; some cell where the paper reports a change
    agrees -> "partly"; all of ours "tied" while the paper reports a change ->
    "inconclusive"; else "not reproduced"."""
    pairs = list(zip(ours, paper, strict=True))
    if all(o == p for o, p in pairs):
        return "reproduced at small scale"
    if any(o == p != "tied" for o, p in pairs):
        return "partly"
    if all(o == "tied" for o, _ in pairs):
        return "inconclusive"
    return "not reproduced"


def paper_fid(lam: float, run: str) -> tuple[float, float]:
    """(the paper's CIFAR-10 FID of the cell (lam, run), its DDPM FID): Table 3 at lr 1e-4
    (= Table 1) for the strategies, Table 2 for the solvers (at lam = 0.2)."""
    if run in SOLVER_RUNS:
        t = PAPER_TABLE2[PAPER_TABLE2.solver == run].set_index("model")["CIFAR-10 FID"]
        return float(t["GM-DDPM"]), float(t["DDPM"])
    col = {STRATEGY_RUNS[0]: "original", STRATEGY_RUNS[1]: "removal mu"}.get(run, "random mu")
    t = PAPER_TABLE3_C10.set_index("lam")
    return float(t.loc[lam, col]), float(t.loc[0.0, col])


def claim_cells(diffs: pd.DataFrame, tol: float) -> pd.DataFrame:
    """The rows of :func:`paired_differences` (of a lower-is-better metric) with ours =
    :func:`direction` of the interval, the paper's CIFAR-10 FID (:func:`paper_fid`) and
    its direction against DDPM (:func:`paper_direction` with ``tol``)."""
    paper = [paper_fid(lam, run) for lam, run in zip(diffs.lam, diffs.run, strict=True)]
    return diffs.assign(
        ours=[direction(lo, hi) for lo, hi in zip(diffs.ci_low, diffs.ci_high, strict=True)],
        paper_fid=[f for f, _ in paper],
        paper_ddpm_fid=[b for _, b in paper],
        paper=[paper_direction(f - b, tol) for f, b in paper],
    )
