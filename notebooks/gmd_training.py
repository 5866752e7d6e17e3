# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (gmd-training)=
# # GM-DDPM trained: the classifier against the exact posterior, and the samplers (GMD-5 to GMD-9)
#
# *Stored run: profile `ci`, a 2-D ring of Gaussians, $T = 20$, MLP networks trained 1,500
# steps, seeds 0-2.*
#
# Alg. 1 of GM-DDPM {cite}`gmddpm` trains two things at once on $x_t$ drawn from Eq. 3: an
# $\epsilon$-network on the Gaussian part $\epsilon$ of the noise, and a classifier
# $p_\theta(i_t\mid x_t)$ on the component of the *last* step, by
# $\|\epsilon-\epsilon_\theta(x_t,t)\|^2-\log p_\theta(i_t\mid x_t)$ (**GMD-5**). The library
# has this as a model and a loss that plug into its trainer and command line:
#
# * `nets.GMDDPMNet`: an unchanged DDPM $\epsilon$-network plus a classifier MLP on the
#   flattened $x_t$ and a time embedding (the paper does not describe its classifier);
# * `losses.gm_ddpm_loss`: Alg. 1 with DDPM's $L_\text{simple}$ weighting (Alg. 1's printed
#   weight is $\beta_t/(2\alpha_t\gamma_{t-1})$ with Eq. 30's $\sigma_t^2$, infinite at $t=1$)
#   and the $i_j$ drawn with $\omega$ (Alg. 1 line 3 prints a uniform draw, which is not the
#   forward process of Eq. 2);
# * `configs/gm_ddpm_toy.yaml` (this chapter) and `configs/gm_ddpm_cifar10.yaml` (the paper's
#   CIFAR-10 setting): `gmdiff train --config configs/gm_ddpm_toy.yaml`, then
#   `gmdiff sample` with `sample.sampler: gm_ddpm` and `sample.options.strategy` one of
#   `standard` (Alg. 2), `ddpm` (Alg. 3), `keep_mu` (Alg. 4), `random` (Alg. 5),
#   `posterior`, or `sample.sampler: ddim` / `dpm_solver_pp`.
#
# The toy is the ring of {ref}`gmd-samplers`, where the optimal model is known exactly
# (`ExactGMDDPM`): we train one model per $\lambda$ (MLP 3x128 + classifier 2x64, 1,500
# steps of batch 256 in `ci`, the library's Trainer with EMA) and compare it with the
# optimum, then run every sampler on it (**GMD-6** to **GMD-9** at toy scale).

# %% tags=["parameters"]
profile = "ci"
seed = 0
data_dir = None
seeds = [0, 1, 2]  # the seeds the last section shows: this run's, the others' stored runs
results_dir = ""  # where to store this seed's tables (results/seeds for the stored runs)

# %% tags=["hide-input"]
import pandas as pd
import torch
from myst_nb import glue

from gmdiff import data, plotting, results, runs, stats
from gmdiff.analytic.gm_ddpm import ExactGMDDPM
from gmdiff.papers import gm_ddpm as P
from gmdiff.study import Study

plotting.style()
pd.set_option("display.precision", 3)
cfg = Study.open("gmd_training", profile).sizes
ring = data.ring2d(k=8, radius=2.0, std=0.1)
# configs/gm_ddpm_toy.yaml with lam and seed set, trained by gmdiff.train.Trainer (cached;
# the missing ones side by side)
jobs = [(P.toy_config(lam, cfg["steps"], seed), "gm_ddpm_toy") for lam in cfg["lams"]]
models = dict(zip(cfg["lams"], runs.load_or_train_many(jobs), strict=True))
sched = models[cfg["lams"][0]].schedule
print(f"trained {len(models)} models (lambda = {cfg['lams']}), T = {sched.T}, {cfg['steps']} steps each")

# %% [markdown]
# **Training adequacy** (`Run.adequacy`): the share of the random initialisation left in the
# EMA weights that are evaluated and sampled, and the training loss (its last window, its
# ratio to the best window, and its relative fall over the second half of training).

# %%
# NBVAL_TOLERANCE rel=0.01  (one printed unit of the losses; held when retrained under ATEN_CPU_CAPABILITY=default)
adequacy = pd.DataFrame([{"lam": lam, **run.adequacy()} for lam, run in models.items()])
runs.adequacy_table(adequacy.to_dict("records"), ["lam"])

# %% [markdown]
# ## GMD-5: the trained classifier and $\epsilon$-network against the exact optimum
#
# On fresh draws of Eq. 3, per step: the accuracy of the trained classifier's argmax and of
# the exact posterior's (the Bayes accuracy, the best any classifier can do), the mean
# $\mathrm{KL}(p(i_t\mid x_t)\,\|\,p_\theta(i_t\mid x_t))$, and the $\epsilon$ errors of the
# network and of the exact $\mathbb E[\epsilon\mid x_t]$ (the least any network can reach).

# %%
# NBVAL_TOLERANCE abs=0.002  (three CPU kernel paths printed identical numbers; one unit)
ident = pd.concat(
    [
        P.identifiability(
            ExactGMDDPM(ring, sched, run.trained.noise), ring, sched, [1, 5, 10, 15, 20], cfg["n_id"],
            seed, net=run.trained,
        ).assign(lam=lam)
        for lam, run in models.items()
        if lam > 0
    ]
)
cols = ["lam", "t", "prior_acc", "bayes_acc", "net_acc", "kl", "mse_exact", "mse_net"]
print(ident[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))

# %% tags=["remove-cell"]
by = ident.set_index(["lam", "t"])
excess = (by["mse_net"] / by["mse_exact"] - 1) * 100  # % above the optimum
late, early = excess[excess.index.get_level_values("t") >= 10], excess[excess.index.get_level_values("t") <= 5]
glue("id_prior", f"{by['prior_acc'].mean():.2f}", display=False)
glue("id_kl02", f"{by.loc[0.2, 'kl'].max():.2f}", display=False)
glue("id_last", f"{by.loc[(1.0, 20), 'net_acc']:.2f} against {by.loc[(1.0, 20), 'bayes_acc']:.2f}", display=False)
glue("id_first", f"{by.loc[(1.0, 1), 'net_acc']:.2f} against {by.loc[(1.0, 1), 'bayes_acc']:.2f}, "
     f"KL {by.loc[(1.0, 1), 'kl']:.1f}", display=False)  # fmt: skip
glue("id_late", f"{late.abs().max():.0f} %", display=False)
glue("id_early", f"{early.min():.0f}-{early.max():.0f} %", display=False)

# %% [markdown]
# At $\lambda=0.2$ there is nothing to learn (Bayes accuracy = the frequency of $\mu=0$,
# about {glue:text}`id_prior`, at every step) and the trained classifier finds exactly that
# (KL $\le$ {glue:text}`id_kl02`). At $\lambda=1$ it matches the Bayes accuracy from $t=5$
# on, including the last steps where the last offset stands out ({glue:text}`id_last`), but
# not at $t=1$ ({glue:text}`id_first`), where the offset $\sqrt{\beta_1}\mu_{i_1}$ is tiny
# and rarely seen in training. The $\epsilon$ error is within {glue:text}`id_late` of the
# optimum from $t=10$ on and {glue:text}`id_early` above it at $t\le 5$. The component
# classifier of Alg. 1 is learnable on this toy; but the offsets of the earlier steps, which
# Eq. 32 averages over, cannot be read off $x_t$ at all.

# %% [markdown]
# ## Samplers on the trained models (Tables 1-3 at toy scale)
#
# The same runs as with the exact model in {ref}`gmd-samplers`: SW2 to a fixed sample of the
# ring, mean ± standard deviation over three sampling seeds, for the model trained at each
# $\lambda$ ($\lambda=0$ is DDPM trained the same way).

# %%
# NBVAL_TOLERANCE abs=0.002 rel=0.001  (three CPU kernel paths identical; one printed unit)
reference = ring.sample(cfg["n"], torch.Generator().manual_seed(seed + 100))
quality = pd.concat(
    [P.sample_quality(run.denoiser, sched, reference, cfg["n"], [0, 1, 2]).assign(lam=lam)
     for lam, run in models.items()]
).rename(columns={"seed": "sampling seed"})
if results_dir:  # a stored seed run (see the last section)
    out = results.seed_file("gmd_training", seed, results_dir)
    results.save_results(out, results.run_meta(profile, seed=seed), quality=quality, adequacy=adequacy)
summary = quality.groupby(["sampler", "lam"], sort=False).sw2.agg(["mean", "std"]).unstack("lam")
table = summary["mean"].combine(summary["std"], lambda m, s: m.combine(s, stats.fmt_pm))
table.columns = [f"lam={c}" for c in table.columns]
print(table.to_string())
ddpm = summary["mean"].loc["Alg. 3 (DDPM update)", 0.0]
best = summary["mean"].drop(columns=0.0).min().min()
print(f"DDPM (lam = 0, Alg. 3): {ddpm:.3f};  best GM-DDPM entry: {best:.3f}")

# %% [markdown]
# Side by side with the paper's CIFAR-10 numbers (FID, lower is better; Table 1 and Table 3
# at lr 1e-4; Table 2 for the solvers):

# %%
print(P.PAPER_TABLE3_C10.to_string(index=False))
print()
print(P.PAPER_TABLE2[["solver", "model", "CIFAR-10 FID"]].to_string(index=False))

# %% [markdown]
# ## Every training seed
#
# Seeds 1 and 2 ran this chapter with `-p seed 1 -y "seeds: [1]" -p results_dir
# results/seeds` (and 2; each trains the three models from that seed); their tables are
# stored in `results/seeds/gmd_training-seed*.json` and stacked here with this run's. Per
# training seed, SW2 averaged over the three sampling seeds; then GM-DDPM minus DDPM
# (the $\lambda = 0$ model) with the same sampler and training seed, mean and 95 %
# t-interval over the training seeds, and the word of `gmdiff.stats.paired_table`
# ("tied" unless the interval excludes 0; lower SW2 is better).

# %%
# NBVAL_TOLERANCE abs=0.002 rel=0.001  (this seed's SW2 as above; the stored seeds are read back)
per_seed = results.with_stored_seeds("gmd_training", {"quality": quality, "adequacy": adequacy}, seed, seeds, profile)
model = {lam: "DDPM" if lam == 0 else f"GM-DDPM, lam={lam}" for lam in cfg["lams"]}
sw2 = (per_seed["quality"].groupby(["sampler", "lam", "seed"], sort=False).sw2.mean().reset_index()
       .assign(model=lambda d: d["lam"].map(model)))  # fmt: skip
print(f"SW2 per training seed ({' / '.join(str(s) for s in sorted(sw2['seed'].unique()))})")
sw2.groupby(["sampler", "model"], sort=False)["sw2"].agg(lambda v: " / ".join(f"{x:.3f}" for x in v)).unstack("model")

# %%
# NBVAL_TOLERANCE rel=0.02  (this seed's SW2 moves by one printed unit at most)
pairs = stats.paired_table(sw2, "sw2", "model", [(model[lam], "DDPM") for lam in cfg["lams"] if lam > 0],
                           by=["sampler"])  # fmt: skip
pairs

# %% tags=["remove-cell"]
at = {lam: pairs.xs(f"{model[lam]} - DDPM", level="comparison")["direction"] for lam in cfg["lams"] if lam > 0}
glue("seeds_shown", f"{sw2['seed'].nunique()}", display=False)
glue("worse_02", f"{(at[0.2] == 'worse').sum()} of {len(at[0.2])}", display=False)
glue("tied_02", f"{(at[0.2] == 'tied').sum()}", display=False)
glue("worse_1", f"{(at[1.0] == 'worse').sum()} of {len(at[1.0])}", display=False)
glue("ancestral_02", ", ".join(f"{s.split(' (')[0]} {w}" for s, w in at[0.2].items() if s.startswith("Alg.")), display=False)

# %% [markdown]
# The paper's gains are 0.3-0.4 FID at $\lambda=0.2$ (about 10 %) and losses at $\lambda=1$;
# it gives no seed spread. On the toy the trained models follow the exact model of
# {ref}`gmd-samplers`, with the network's own errors on top. Over the
# {glue:text}`seeds_shown` training seeds, GM-DDPM at $\lambda = 0.2$ is worse than the DDPM
# model, beyond the interval, with {glue:text}`worse_02` samplers and tied with
# {glue:text}`tied_02` (the ancestral strategies: {glue:text}`ancestral_02`); at
# $\lambda=1$ it is worse with {glue:text}`worse_1`: only Alg. 2 and the posterior draw stay
# near the ring, Algs. 3-5 are far off it, and DDIM / DPM-Solver diverge (the trained
# $\epsilon$-network extrapolates the unexplained offsets even worse than the exact one).
# At 10 steps DDIM and DPM-Solver are also worse than the ancestral samplers for the DDPM
# model itself: 1,500 training steps leave the network coarse. Seven samplers are compared
# at each $\lambda$, so one "worse" at 95 % could be chance; the verdicts in the
# {doc}`claims ledger <../book/claims>` (rows GMD-7 to GMD-9) read these paired intervals
# beside the digits tables of {ref}`gmd-tables`.
#
# **Verdicts**: **{claim}`GMD-5`** (the classifier and the $\epsilon$-network against the
# exact optimum, above); Tables 1-3 at digits scale are in {ref}`gmd-tables`.
