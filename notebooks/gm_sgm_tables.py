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
# (gm-sgm-tables)=
# # GM-SGM: training with Gaussian-mixture noise, and the paper's Tables 1-5 (GMS-4, GMS-6..9)
#
# *Stored run: profile `ci`, a 2-D ring and the 8x8 digits, small score networks trained
# on 2 CPU cores, three seeds per digits model and one per toy model, FD-digits (not FID); `full`: NCSN++ on
# CIFAR-10 with FID.*
#
# GM-SGM {cite}`gmsgm` keeps score_sde's VE model, loss weighting and predictor-corrector
# (PC) sampler {cite}`song2021score` and changes one thing: the noise a training datum is
# corrupted with. Alg. 1 alternates, batch by batch, between the usual
# $\eta \sim \mathcal N(0, \sigma_t^2 I)$ and the scaled $\beta\eta$ ($\beta = 2$), and regresses the
# score network on $-\tilde\beta\eta/\sigma_t^2$ (Eqs. 10-11), with the network told only
# $\sigma_t$. The paper reports that this makes few-step PC sampling work where the SGM
# collapses (Tables 1-2: FID 29 vs 456 at 50 iterations on CIFAR-10).
#
# **What is actually trained.** The target $-\tilde\beta\eta/\sigma_t^2$ is minus the *total*
# noise over $\sigma_t^2$; it is not the score of the mixture perturbation kernel. Its
# minimiser is $s^*(x,\sigma) = (\mathbb E[x_0\mid x]-x)/\sigma^2$ with the posterior mean taken
# under the mixture corruption, i.e. the network remains a denoiser whose target is $x_0$,
# and only its inputs are noisier than the noise level it is told. This is how
# `gmdiff.papers.gm_sgm` implements it: its noise models return the total noise and plug
# into the library's unchanged `dsm_loss` (score_sde's $\lambda(\sigma)=\sigma^2$
# weighting), and samples come from the unchanged `ve_pc`. (Eq. 9 prints the target as
# $\eta/\sigma_t$, inconsistent with Eq. 3, Eq. 11 and Alg. 1; we follow the latter.)
#
# **Scale.** The `ci` profile runs on 2 CPU cores (one thread per training process): a 2-D ring of 8
# Gaussians, where the metric is exact (sliced Wasserstein distance SW2 to fresh samples of
# the true distribution, lower is better), and sklearn's 8x8 digits with a 0.16M-parameter
# U-Net, scored by **FD-digits** (Fréchet distance in the features of the library's digit
# classifier; same formula as FID, different features, *not comparable* with the paper's
# FID). The paper's numbers are FIDs of 35-60M-parameter NCSN++ models trained for 230-550k
# iterations on CIFAR-10 / CelebA-64; they are printed beside ours for orientation only.
# `profile="full"` runs the same code on CIFAR-10 with the paper's App. A.2 settings and
# Inception FID (GPUs, user data).

# %% tags=["parameters"]
profile = "ci"
seed = 0
data_dir = "data"
dataset = None  # full profile: None = CIFAR-10 (Tables 1, 3, 4) or "celeba64" (Tables 2, 5)
results_dir = ""  # a folder: keep this run's digits results there as JSON (the long profile)

# %% tags=["hide-input"]
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from gmdiff import data, metrics, plotting, runs
from gmdiff.noise import ScaleMixtureNoise
from gmdiff.papers import gm_sgm as G
from gmdiff.samplers import ddim, ddpm, ve_pc
from gmdiff.study import Study

S = Study.open("gm_sgm_tables", profile, seed=seed, data_dir=data_dir, dataset=dataset)
cfg, device = S.sizes, S.device  # the data folder and Inception weights checked when opened
toy_cfg, img_cfg = cfg["toy"], cfg["images"]
real_images, real_labels = S.images.load(img_cfg["n"])
plotting.style()
pd.set_option("display.precision", 2)
print(f"profile={profile}, images {tuple(real_images.shape)}, device={device}")

# %% [markdown]
# ## Training (GMS-4)
#
# Toy models: a 3x128 MLP with EDM preconditioning (so one denoiser is valid at every noise
# level and can be handed to VE and VP samplers alike), trained with `dsm_loss` on the VE
# process $\sigma\in[0.01, 4]$ (4 = the largest distance between two data points, score_sde's
# rule for $\sigma_\text{max}$): the SGM ($\tilde\beta\equiv1$), GM-SGM with Alg. 1's alternation for
# $\beta\in\{1.5, 2, 3\}$, and, for the VP rows of Tables 4-5, an SGM trained with the same loss
# on the VP process (VPLinear, the continuous DDPM schedule) and a DDGM model: the same VP
# training with DDGM's Gamma noise {cite}`nachmani2021ddgm` (`gmdiff.noise.GammaNoise`,
# $\theta_0 = 1$, the default of the DDGM authors' released training loss). Same seed, steps
# and batch for all.

# %%
ring = data.ring2d(**G.RING["options"])
vp_toy = {"name": "vp_linear"}


def toy_config(schedule, noise):
    """A ring model's run: configs/gm_sgm_ring.yaml with this noise (and schedule)."""
    return G.ring_config(noise, schedule=schedule, seed=seed, sets=[*toy_cfg["sets"], f"train.device={device}"])


toy_noises = {  # (schedule, training noise); None: the run file's VE, sigma_max 4
    "SGM": (None, {"name": "gm_sgm", "beta": 1.0}),
    **{f"GM-SGM beta={b:g}": (None, {"name": "gm_sgm", "beta": b}) for b in toy_cfg["betas"]},
    "SGM (VP)": (vp_toy, {"name": "gm_sgm", "beta": 1.0}),
    "DDGM (VP)": (vp_toy, {"name": "gamma", "theta0": toy_cfg["ddgm_theta0"]}),
}
# cached; the missing ones trained side by side, one process per core
toy_jobs = [(toy_config(*v), "gms-ring") for v in toy_noises.values()]
toy_runs = dict(zip(toy_noises, runs.load_or_train_many(toy_jobs), strict=True))
toy = {name: run.denoiser for name, run in toy_runs.items()}
ve_toy, vp_toy = toy_runs["SGM"].schedule, toy_runs["SGM (VP)"].schedule
true_ring = ring.sample(toy_cfg["n"], torch.Generator().manual_seed(seed + 1)).float()


def sw2(x):
    """Sliced 2-Wasserstein distance to fresh true samples (64 fixed projections)."""
    return metrics.sw2_to_reference(x, true_ring, seed)


# the metric's Monte-Carlo floor: SW2 of exact samples (5 independent draws)
floor = metrics.noise_floor(lambda k: sw2(ring.sample(toy_cfg["n"], torch.Generator().manual_seed(seed + 10 + k)).float()), 5)
sw2_floor, sw2_sd = floor.mean, floor.sd
print("trained:", ", ".join(toy))
print(f"SW2 of exact samples (noise floor): {sw2_floor:.3f} +- {sw2_sd:.3f}")

# %% [markdown]
# ## Tables 1-2 (GMS-6): quality vs number of PC iterations
#
# Both models are sampled with score_sde's PC sampler (reverse-diffusion predictor + one
# Langevin corrector step at snr 0.16, so one "iteration" costs 2 network evaluations) on
# the geometric ladder from $\sigma_\text{max}$ to $\sigma_\text{min}$, with identical seeds.
# Our table's last row is Sec. 5.4's variant: GM-SGM sampled with mixture increments
# $\mathcal N_\text{mix}(0,\{I,\beta^2I\})$ instead of Gaussian ones.

# %%
# NBVAL_TOLERANCE rel=0.02 abs=0.01  (twice the range over three CPU kernel paths plus one unit of the printed digits; seed 1 moves these SW2 by up to 0.04)
n_toy, shape2 = toy_cfg["n"], (2,)
mixture_increments = ScaleMixtureNoise((1.0, 2.0))  # Sec. 5.4: N_mix(0, {I, 4I}) increments
pc_runs = {
    "SGM": G.sampler_run(ve_pc, toy["SGM"], ve_toy, shape2, n_toy),
    "GM-SGM": G.sampler_run(ve_pc, toy["GM-SGM beta=2"], ve_toy, shape2, n_toy),
    "GM-SGM, mixture increments": G.sampler_run(
        ve_pc, toy["GM-SGM beta=2"], ve_toy, shape2, n_toy, noise=mixture_increments
    ),
}
t12 = G.sampler_table(pc_runs, toy_cfg["iterations"], sw2, seed).round(3)
print("ours: 2-D ring, SW2 (exact-distribution metric); paper: FID; lower is better")
display(t12.set_index("iterations").T.rename_axis(columns="ours (ring, SW2), PC iterations:"))
display(G.TABLE1.set_index("iterations").T.rename_axis(columns="paper Table 1 (CIFAR-10 FID):"))
G.TABLE2.set_index("iterations").T.rename_axis(columns="paper Table 2 (CelebA-64 FID):")

# %% [markdown]
# Digits: the same comparison with a U-Net (base 16 channels, 0.16M parameters) on the
# 1,797 sklearn 8x8 digits, VE $\sigma\in[0.01, 10]$ (10, about the largest pairwise distance),
# scored by FD-digits between the samples and the training images (lower is better). The
# third model is App. A.5's frequency-shaped matrix mixture (GMS-12): with probability 1/2
# the noise is $2M\eta$ instead of $\eta$, where $M$ halves the top 5% of spatial
# frequencies (on 8x8 images: the 5 DFT bins with $|f| \ge 0.625$ cycles/pixel), trained
# with the same alternation.
#
# The EMA uses EDM's ramp {cite}`karras2022edm` (the half-life is at most 5 % of the
# steps taken), so it holds none of the random initialisation, and the raw weights of the
# same checkpoints are sampled as a control. The `ci` profile trains seed `seed`; the
# `long` profile (about half an hour on 2 cores, too long for the `ci` book) trains every
# model from three seeds (`seed`, `seed`+1, `seed`+2: a seed redraws the initialisation,
# the data order and the training noise) plus a control trained twice as long, and its
# stored results are shown {ref}`below <gm-sgm-tables-long>`.

# %%
img_shape = tuple(real_images.shape[1:])
img_data = S.images.config
img_model = {"net": img_cfg["net"], "overrides": img_cfg["net_overrides"], "precond": "edm",
             "sigma_data": img_cfg["sigma_data"]}
ve_img = {"name": "ve", "options": {"sigma_min": 0.01, "sigma_max": img_cfg["sigma_max"]}}
img_train = {"batch": img_cfg["batch"], "lr": img_cfg["lr"], "ema_decay": img_cfg["ema_decay"],
             "ema_rampup": img_cfg.get("ema_rampup", 0.0), "warmup": img_cfg.get("warmup", 50)}
img_noises = {
    "SGM": {"name": "gm_sgm", "beta": 1.0},
    "GM-SGM": {"name": "gm_sgm", "beta": 2.0},
    # App. A.5 (GMS-12): B in {I, 2M}, M shrinks the top-5% spatial frequencies by 0.5
    "GM-SGM, matrix mixture": {
        "name": "frequency_mixture", "gain": 2.0, "fraction": 0.05, "shrink": 0.5, "alternate": True
    },
}
start = time.perf_counter()
img_seeds = [seed + k for k in range(img_cfg["seeds"])]
steps1 = img_cfg["steps"]
img_keys = [(name, s, steps1) for s in img_seeds for name in img_noises]  # (model, seed, steps)
if img_cfg["longer"] > 1:  # the longer-training control
    img_keys += [(name, seed, steps1 * img_cfg["longer"]) for name in ("SGM", "GM-SGM")]
img_jobs = [
    (G.dsm_config(img_data, img_model, ve_img, img_noises[name], steps=st, **img_train, seed=s,
                  device=device), f"gms-{S.images.name}")
    for name, s, st in img_keys
]  # fmt: skip
cached = all((runs.run_dir(c, name) / "checkpoint.pt").is_file() for c, name in img_jobs)
img_trained = dict(zip(img_keys, runs.load_or_train_many(img_jobs), strict=True))
ve_img = img_trained[img_keys[0]].schedule
img_metric = S.images.frechet(real_images, device)  # FD-digits (ci) or FID (full)
clf = S.images.classifier()  # the book's one FD-digits feature extractor (None for FID)
if clf is not None:
    from gmdiff.digit_classifier import classifier_accuracy

    print(f"digit classifier training accuracy: {classifier_accuracy(clf, real_images, real_labels):.2f}")
    held = real_images[torch.randperm(real_images.shape[0], generator=torch.Generator().manual_seed(seed))[: img_cfg["n"]]]
    print(f"FD-digits of {img_cfg['n']} real digits vs all 1,797 (the floor): {img_metric(held):.1f}")

# %% [markdown]
# **Training adequacy** of every digits model: the share of the random initialisation left
# in the EMA it is sampled with (`gmdiff.ema.ema_init_share`; the harness refuses more
# than `gmdiff.ema.EMA_INIT_BOUND`), the training loss of the last log window (a tenth
# of the run; GM-SGM's loss is larger by construction: its target is the total noise),
# against the best window (1.00: the loss has not risen) and its relative fall over the
# run's second half (near 0: a plateau).

# %%
# NBVAL_TOLERANCE rel=0.05 abs=0.01  (measured: no printed figure moved under ATEN_CPU_CAPABILITY=default)
adequacy = [{"model": name, "seed": s, **img_trained[(name, s, st)].adequacy()} for name, s, st in img_keys]
runs.adequacy_table(adequacy, ["model", "seed", "steps"])

# %% [markdown]
# **FD-digits of every seed** by PC iterations (each seed's three models sampled from the
# same initial noise and increments):

# %%
# NBVAL_TOLERANCE rel=0.05 abs=1  (twice the measured: FD-digits moved by <= 1, 2.6 %, under ATEN_CPU_CAPABILITY=default)
img_samples = {}


def sampled(key):
    """(steps, sample seed) -> samples of the model ``key``; seed `seed`'s kept for Fig. 1."""
    run = G.sampler_run(ve_pc, img_trained[key].denoiser, ve_img, img_shape, img_cfg["n"], batch=512)

    def f(steps, sd):
        x = run(steps, sd)
        if key[1] == seed:
            img_samples[(key[0], steps)] = x
        return x
    return f


per_seed = pd.concat([
    G.sampler_table({name: sampled((name, s, steps1)) for name in img_noises},
                    img_cfg["iterations"], img_metric, s).assign(seed=s)
    for s in img_seeds
]).melt(id_vars=["iterations", "seed"], var_name="model", value_name="FD")  # fmt: skip
print(f"{S.images.name}, {S.images.metric} (lower is better) by PC iterations, every seed")
per_seed.pivot_table(index=["model", "seed"], columns="iterations", values="FD").round(0).astype(int)

# %% [markdown]
# With several seeds (the `long` profile), the same numbers as mean ± 95 % interval over
# the seeds, and each GM-SGM model against the SGM as paired differences (same seed: same
# data order and sampling noise), with the direction a difference has only when its
# interval excludes 0:

# %%
if len(img_seeds) > 1:
    for table in G.seed_summary(per_seed, S.images.metric):
        display(table)
print(f"{len(img_seeds)} seed(s) in this run; paper: Table 1 above (CIFAR-10 FID) and App. A.5:")
G.TEXT_NUMBERS[G.TEXT_NUMBERS["where"] == "A.5"].set_index("where")

# %% [markdown]
# **Controls** (seed `seed`): the EMA the tables use and the raw weights of the same
# checkpoints (in the `long` profile also both for the models trained twice as long).

# %%
# NBVAL_TOLERANCE rel=0.2 abs=1  (twice the measured: under ATEN_CPU_CAPABILITY=default the raw weights' FD-digits moved by 15, 10 %, the EMA's by <= 1)
ema_fd = per_seed.set_index(["model", "iterations", "seed"])["FD"]
ctrl_rows = [  # the tables' EMA at seed `seed`
    {"model": name, "training steps": steps1, "weights": "EMA", "iterations": i, "FD": ema_fd[(name, i, seed)]}
    for name in ("SGM", "GM-SGM") for i in img_cfg["control_iterations"]
]  # fmt: skip
for key in [(name, seed, steps1) for name in ("SGM", "GM-SGM")] + [k for k in img_keys if k[2] > steps1]:
    for weights in (["raw weights", "EMA"] if key[2] > steps1 else ["raw weights"]):
        run = runs.raw_weights(img_trained[key]) if weights == "raw weights" else img_trained[key]
        draw = G.sampler_run(ve_pc, run.denoiser, ve_img, img_shape, img_cfg["n"], batch=512)
        ctrl_rows += [{"model": key[0], "training steps": key[2], "weights": weights, "iterations": i,
                       "FD": img_metric(draw(i, seed))} for i in img_cfg["control_iterations"]]
controls = pd.DataFrame(ctrl_rows)
if results_dir:  # -p results_dir results/long: this run's digits results, for the ci chapter
    meta = {"profile": profile, "seeds": img_seeds, "minutes": (time.perf_counter() - start) / 60,
            "machine": f"{os.cpu_count()} CPU cores", "date": time.strftime("%Y-%m-%d"),
            "models": "loaded from the model cache" if cached else "trained in this run",
            "commit": G.commit()}  # fmt: skip
    G.save_results(Path(results_dir) / "gm_sgm_tables.json", meta, per_seed=per_seed,
                   controls=controls, adequacy=pd.DataFrame(adequacy))  # fmt: skip
controls.pivot_table(index=["model", "training steps", "weights"], columns="iterations",
                     values="FD").round(0).astype(int)  # fmt: skip

# %% mystnb={"figure": {"caption": "The first 36 digits sampled by the SGM (top), GM-SGM ($\\beta=2$, middle) and the A.5 matrix mixture (bottom) with 20, 50 and 100 PC iterations, from the same initial noise and increments; each panel is a 6x6 grid of 8x8 samples (dark = ink).", "name": "fig-gms-tables-digit-samples"}, "image": {"alt": "Grid of panels of sampled 8x8 digits, one row per training noise and one column per number of PC iterations."}}
its = img_cfg["iterations"]
fig, axes = plt.subplots(len(img_noises), len(its), figsize=(2.6 * len(its), 2.8 * len(img_noises)), squeeze=False)
for r, name in enumerate(img_noises):
    for c, s in enumerate(its):
        ax = axes[r, c]
        plotting.show_images(ax, img_samples[(name, s)][:36], 6)
        ax.set_title(f"{name},\n{s} iterations", fontsize=10)
        ax.set_xlabel("36 samples, 8x8 pixels", fontsize=10)

# %% [markdown]
# (gm-sgm-tables-long)=
# ### Three seeds and a longer-training control: the stored `long` run
#
# The same cells run with `-p profile long -p results_dir results/long` (three seeds per
# digits model, and seed `seed`'s SGM and GM-SGM also trained for twice the steps); their
# results are stored in `results/long/gm_sgm_tables.json` and shown here: the training
# adequacy, every seed's FD-digits, the mean ± 95 % interval over the seeds with the
# paired differences against the SGM, and the controls.

# %%
if G.LONG_RESULTS.is_file():
    meta, long = G.load_results(G.LONG_RESULTS)
    print(f"stored run: profile {meta['profile']}, seeds {meta['seeds']}, commit {meta['commit']}, "
          f"{meta['date']};\ndigits part {meta['minutes']:.0f} minutes on {meta['machine']}, "
          f"models {meta['models']}")
    print("training adequacy of every digits model:")
    display(runs.adequacy_table(long["adequacy"].to_dict("records"), ["model", "seed", "steps"]))
    print("FD-digits of every seed (columns: PC iterations):")
    display(long["per_seed"].pivot_table(index=["model", "seed"], columns="iterations", values="FD")
            .round(0).astype(int))  # fmt: skip
    mean_ci, paired = G.seed_summary(long["per_seed"], S.images.metric)
    print("mean ± 95 % interval over the seeds:")
    display(mean_ci)
    print("paired against the SGM, seed by seed:")
    display(paired)
    print("controls: raw weights and twice the steps (columns: PC iterations):")
    display(long["controls"].pivot_table(index=["model", "training steps", "weights"],
                                         columns="iterations", values="FD").round(0).astype(int))
else:
    print(f"no stored long run ({G.LONG_RESULTS} is missing): run this chapter with "
          "-p profile long -p results_dir results/long")

# %% [markdown]
# ## Table 3 (GMS-7): the mixture scale $\beta$
#
# $\beta=1$ is the SGM; the paper finds $\beta=2$ best at 50 iterations and $\beta=3$ worse than 1.5.

# %%
# NBVAL_TOLERANCE rel=0.02 abs=0.01  (twice the range over three CPU kernel paths plus one unit of the printed digits; seed 1 moves these SW2 by up to 0.04)
beta_rows = []
for name in ["SGM"] + [f"GM-SGM beta={b:g}" for b in toy_cfg["betas"]]:
    run = G.sampler_run(ve_pc, toy[name], ve_toy, shape2, n_toy)
    row = {"beta": 1.0 if name == "SGM" else float(name.split("=")[1])}
    for s in toy_cfg["table3_iterations"]:
        row[s] = round(sw2(run(s, seed)), 3)
    beta_rows.append(row)
t3 = pd.DataFrame(beta_rows)
print("2-D ring, SW2 by beta (rows) and PC iterations (columns); paper: CIFAR-10 FID")
t3.set_index("beta").add_suffix(" (ours)").join(G.TABLE3.set_index("beta").add_suffix(" (paper)"))

# %% [markdown]
# ## Table 4 (GMS-8): the adaptive SDE solver
#
# `gmdiff.samplers.adaptive_sde` is the adaptive solver of Jolicoeur-Martineau et al.
# {cite}`jolicoeur2021gotta`: Euler-Maruyama vs stochastic improved Euler error estimate,
# mixed absolute/relative tolerance, per-sample step sizes; default tolerances
# (`atol=0.0078`, `rtol=0.05`). Its VE row uses the SGM (VE) model, its VP row the SGM trained
# on the VP process. NFE counts network evaluations; a PC iteration costs 2.

# %%
# NBVAL_TOLERANCE rel=0.02 abs=0.01  (twice the range over three CPU kernel paths plus one unit of the printed digits; seed 1 moves SW2 by up to 0.05, the NFE by 2)
rows = []
for label, model, sch in [
    ("adaptive SDE solver (VP)", toy["SGM (VP)"], vp_toy),
    ("adaptive SDE solver (VE)", toy["SGM"], ve_toy),
]:
    r = G.adaptive_row(model, sch, shape2, n_toy, seed, sw2)
    rows.append({"method": label, "NFE (ours)": round(r["NFE (mean)"]), "SW2 (ours)": round(r["metric"], 3)})
for label, run in [("SGM", pc_runs["SGM"]), ("GM-SGM", pc_runs["GM-SGM"])]:
    for its_ in (25, 50):
        rows.append({"method": f"{label} ({its_} PC iterations)" if its_ != 50 else label,
                     "NFE (ours)": 2 * its_, "SW2 (ours)": round(sw2(run(its_, seed)), 3)})
t4 = pd.DataFrame(rows)
print("2-D ring, SW2; paper: CIFAR-10 FID at ~50 'iterations'")
half = t4[t4["method"].str.contains("25 PC")]
print("ours at 25 PC iterations (50 NFE): "
      + ", ".join(f"{m.split(' (')[0]} SW2 {v:.2f}" for m, v in zip(half["method"], half["SW2 (ours)"])))
t4.merge(G.TABLE4.rename(columns={"iterations": "iterations (paper)", "FID": "FID (paper)"}), on="method")

# %% [markdown]
# In the paper's Table 4 the adaptive solver's "49/50" are its NFE while SGM/GM-SGM's "50"
# are PC iterations (100 NFE); we list both PC budgets. Note that in 2 dimensions the
# adaptive solver's acceptance test is strongly correlated with the Brownian increment
# (see the `adaptive` module docstring: we measured 10-30% too-large variances against an
# exact Gaussian denoiser in 3-D at any tolerance), so its toy row is pessimistic.

# %% [markdown]
# ## Table 5 (GMS-9): DDPM, DDIM, DDGM, SGM, GM-SGM at 20 and 100 steps
#
# DDPM (ancestral, $\tilde\beta$ variance) and DDIM ($\eta=0$) sample the VP-trained SGM on
# its continuous VP schedule; SGM and GM-SGM use PC. DDGM {cite}`nachmani2021ddgm` samples
# the Gamma-trained model: DDPM-based with the forward variance and Gamma increments drawn
# at each step's end level, DDIM-based deterministically from Gamma initial noise
# (`gm_sgm.ddgm_run`).

# %%
# NBVAL_TOLERANCE rel=0.02 abs=0.01  (twice the range over three CPU kernel paths plus one unit of the printed digits; seed 1 moves SW2 by up to 0.14)
theta0 = toy_cfg["ddgm_theta0"]
t5_runs = {
    "DDPM": G.sampler_run(ddpm, toy["SGM (VP)"], vp_toy, shape2, n_toy, spacing="time"),
    "DDIM": G.sampler_run(ddim, toy["SGM (VP)"], vp_toy, shape2, n_toy, spacing="time"),
    "DDGM (DDPM-based)": G.ddgm_run(ddpm, toy["DDGM (VP)"], vp_toy, shape2, n_toy, theta0, variance="beta", spacing="time"),
    "DDGM (DDIM-based)": G.ddgm_run(ddim, toy["DDGM (VP)"], vp_toy, shape2, n_toy, theta0, spacing="time"),
    "SGM": pc_runs["SGM"],
    "GM-SGM": pc_runs["GM-SGM"],
}
t5 = G.sampler_table(t5_runs, toy_cfg["table5_steps"], sw2, seed).round(3)
print("2-D ring, SW2 (ours) beside the paper's CelebA-64 FID, by sampling steps")
G.paired(t5, G.TABLE5, "iterations")

# %% mystnb={"figure": {"caption": "1,000 samples (colour) of the SGM and of GM-SGM ($\\beta=2$) on the 2-D ring with 20 and 200 PC iterations, over 1,000 samples of the true distribution (grey).", "name": "fig-gms-tables-ring"}, "image": {"alt": "Four scatter plots of 2-D samples over a grey ring of eight modes: SGM and GM-SGM at 20 and 200 PC iterations."}}
fig, axes = plt.subplots(2, 2, figsize=(7, 6.8), sharex=True, sharey=True)
for ax, (name, run, s) in zip(
    axes.flat,
    [("SGM", pc_runs["SGM"], 20), ("GM-SGM", pc_runs["GM-SGM"], 20), ("SGM", pc_runs["SGM"], 200), ("GM-SGM", pc_runs["GM-SGM"], 200)],
    strict=True,
):
    x = run(s, seed)[:1000]
    ax.scatter(true_ring[:1000, 0], true_ring[:1000, 1], s=2, c="0.75", label="data")
    ax.scatter(x[:, 0], x[:, 1], s=2, label=name)
    ax.set_title(f"{name}, {s} PC iterations")
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
for ax in axes[1]:
    ax.set_xlabel("$x_1$")
for ax in axes[:, 0]:
    ax.set_ylabel("$x_2$")
axes[0, 0].legend(loc="lower left", fontsize=9, markerscale=4)
plt.show()  # the book's style lays figures out with constrained_layout

# %% [markdown]
# In {numref}`fig-gms-tables-ring`, with
# 5,000 training steps both models resolve the 8 modes, and almost every SW2 above lies
# within the noise floor (0.10 ± 0.03): on this toy, the sampler and the model are not what
# limits the metric. (With 1,500 steps, our earlier budget, both spread mass along the
# whole circle.) {ref}`gms-noise-studies` measures what SW2 misses here: the width of the
# modes.

# %% [markdown]
# ## Verdict
#
# The digits' verdicts rest on the paired intervals over three seeds above, the toy's on
# the table at the end of this section ("tie" when two SW2 differ by less than 3 standard
# deviations of the metric's noise floor; one seed per toy model).
#
# **{claim}`GMS-4`** (the method). Alg. 1's alternation (odd iterations $\tilde\beta=\beta$, even
# $\tilde\beta=1$, whole batch), the i.i.d. discrete and the continuous $p(\tilde\beta)$ of Eq. 11, and
# A.5's matrix mixture $\{I, 2M\}$ with the top-5% frequency filter are `NoiseModel`s of the
# library's `dsm_loss`; `tests/test_gm_sgm.py` checks their distributions (KS tests,
# moments, per-frequency power), that $\beta<1$ raises, that the loss trains a net and that
# its optimum is the denoiser $x_0$ target. Erratum (X-3): Eq. 9's target $\eta/\sigma_t$ should
# read $\eta/\sigma_t^2$ as in Eq. 11 and Alg. 1; and the target is minus the total noise over
# $\sigma_t^2$, not the score of the mixture kernel.
#
# **{claim}`GMS-6`** (Tables 1-2, at this scale). With an EMA that holds none of the
# initialisation, GM-SGM and the SGM are tied on the digits at 20, 50 and 100 PC
# iterations in the stored `long` run (every paired interval over its three seeds contains
# 0), and on the ring both sit at the metric's noise floor. The controls say why no stronger statement is possible:
# sampling the raw weights instead of the EMA leaves GM-SGM about where it was but makes
# the SGM far worse (that is what an earlier version of this chapter, whose EMA still held
# 30 % of the initialisation, and a referee's raw-weight rerun saw), and training twice as
# long lowers both models' FD-digits a lot, so neither is at its plateau at 1,200 steps and
# the comparison may move with the budget. The phenomenon the paper's gain rests on, the
# SGM collapsing below ~200 iterations (FID 456 at 50), does not occur at this scale (2-D,
# 64-D digits, and the 16- and 64-D mixtures of {ref}`gms-dimension`); at 5 PC iterations
# GM-SGM is ahead on all three mixtures of {ref}`x-benchmark`. Deciding the claim needs
# networks trained to their plateau at CIFAR's dimension, the `full` profile.
#
# **{claim}`GMS-7`** (Table 3; one seed per $\beta$ has no power to order them). On the ring all four values of $\beta$
# give SW2 0.09-0.14 at 20, 50 and 200 iterations, within 2 standard deviations of the noise
# floor (0.10 ± 0.03) of each other; the paper's ordering (2 best, 3 clearly worse) cannot be
# resolved here. (With under-trained 1,500-step nets we had seen $\beta=3$ worst; that
# difference disappeared with adequate training.)
#
# **{claim}`GMS-8`** (Table 4; one seed, differences near the SW2 noise floor). The adaptive solver (ours, VP: 175-176
# NFE, VE: 117 NFE at the default tolerances, the VP count moving by one between CPU kernel
# paths; SW2 0.14-0.15 and 0.16) lies within one run's tie band of PC at 50-100 NFE
# (0.08-0.11) for both models, and GM-SGM has no edge over the SGM; the paper's
# ordering (GM-SGM far ahead of the adaptive solver, far ahead of the SGM) relies on the
# SGM's collapse, absent here.
#
# **{claim}`GMS-9`** (Table 5, at this scale). DDPM, DDIM, SGM and GM-SGM all lie
# near the noise floor at 20 and 100 steps on the ring (SW2 0.07-0.15), while the paper has
# GM-SGM far ahead of DDPM and close to DDIM. DDGM with $\theta_0 = 1$ is clearly the worst
# column (0.35-0.60 for its two samplers, against DDPM/DDIM's 0.07-0.15 from the same
# architecture, steps and seed), the reverse of the paper's DDGM-beats-DDPM rows; at
# this $\theta_0$ the Gamma noise is strongly skewed at low noise levels (skewness
# $2\theta_0\alpha/\sigma$), and the DDGM paper's own per-dataset $\theta_0$ is not in our
# paper set. With the four other columns inside the noise floor, this toy cannot order
# them: deciding the claim needs Table 5's samplers where they separate from the floor.
#
# **{claim}`GMS-12`** (App. A.5, the frequency-shaped matrix mixture, at this scale).
# On the digits (the stored `long` run, three seeds) the $\{I, 2M\}$ model is worse than
# the SGM at 50 iterations (its paired interval lies above 0) and tied at 20 and 100. The paper's gains are at 400-1,000
# iterations on CIFAR-10 and CelebA-64 (2.24 vs the SGM's 2.51 at 1,000), which we did not
# run, and on 8x8 images the top 5 % of frequencies are only 5 DFT bins: a weak test of the
# idea. Deciding it needs the paper's iteration counts on images whose top frequencies
# carry structure (the `full` profile).

# %%
# NBVAL_TOLERANCE rel=0.005 abs=0.01  (twice the range over three CPU kernel paths plus one unit of the printed digits; seed 1 moves FD-digits by up to 61 and changes several of the words)
rows = []  # 3 sd of the SW2 floor (one seed per toy model); the digits: the paired intervals above
for _, r in t12.iterrows():
    for other in [c for c in t12.columns if c.startswith("GM-SGM")]:
        rows.append({"table": "1-2, toy SW2", "iterations": int(r["iterations"]), "model": other,
                     "model's metric": r[other], "SGM's metric": r["SGM"],
                     "which is better": G.which_is_lower(r[other], r["SGM"], 3 * sw2_sd, other, "SGM")})
pd.DataFrame(rows)

# %% [markdown]
# Not run in this chapter: LSUN (the paper shows LSUN samples only, no table), and the
# `full` profile's Table 5 image rows (DDPM/DDIM/DDGM need a VP-trained CelebA-64 model;
# the toy rows above run the same code).
