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
# (gs-teleportation)=
# # Analytical teleportation: skipping the first Heun steps (GS-12)
#
# *Stored run: profile `ci`, the zoo's 2-D mixture MLP (whose exact denoiser is known) and
# digits U-Net, 500-1,000 samples per row, seeds 0-2; `full`: MNIST with Inception FID.*
#
# Early in sampling, the learned score is close to the score of the Gaussian with the
# data's mean and covariance, whose PF-ODE has a closed-form solution (Gaussian score paper
# {cite}`wang2024gaussian`, Eq. 15). Alg. 1 of the paper exploits this: the first `skip`
# steps of EDM's Heun sampler {cite}`karras2022edm` are replaced by one evaluation of that
# solution, which carries $x_T$ from $\sigma_\text{max}=80$ straight to
# $\sigma_\text{skip}$, the `skip`-th noise level of the schedule (App. A.7); Heun then
# continues as usual. Each skipped step saves two network evaluations (NFE). The paper
# reports (Sec. 6, Tables 1 and 4-6) that 15-30% of the NFE can be saved at under 3% FID
# increase on CIFAR-10, FFHQ-64 and AFHQv2-64.
#
# We run the same hybrid sampler (`gmdiff.samplers.teleport_heun`) on two problems that
# fit on a CPU:
#
# * **(a) a low-rank Gaussian mixture** in $\mathbb R^{16}$ (4 modes of rank 3), where we
#   know the exact denoiser: we sample with the exact denoiser itself and with an MLP
#   trained on the mixture, and measure quality exactly;
# * **(b) 8x8 digits** with a small U-Net trained here, measuring quality with FD-digits
#   (the Frechet distance in the features of a digit classifier, not FID).

# %% tags=["parameters"]
profile = "ci"
seed = 0
data_dir = None  # full profile: a folder with MNIST's train-images-idx3-ubyte[.gz]
seeds = [0, 1, 2]  # the seeds the verdict shows: this run's, the others' stored runs
results_dir = ""  # where to store this seed's tables (results/seeds for the stored runs)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from gmdiff import metrics, plotting, results, stats, zoo
from gmdiff.analytic import Gaussian
from gmdiff.papers import gs_teleport as gt
from gmdiff.samplers import heun_nfe
from gmdiff.schedules import EDM
from gmdiff.study import Study

plotting.style()
S = Study.open("gs_teleportation", profile, seed=seed, data_dir=data_dir)  # checks data, weights
cfg = S.sizes
steps = cfg["steps"]

# %% [markdown]
# ## The paper's numbers
#
# Tables 4-6 of the paper, with the NFE saved and the FID change relative to plain Heun
# (skip 0). CIFAR-10 uses 18 Heun steps (NFE 35); FFHQ-64 and AFHQv2-64 use 40 (NFE 79).
# All three are EDM's pre-trained VP models, and FID is computed on 50,000 samples.

# %%
paper = pd.concat({name: gt.paper_table(name) for name in gt.PAPER_TABLES}, names=["dataset", "row"])
paper_best = {name: float(round(gt.best_row(gt.paper_table(name), "FID")["NFE saved (%)"], 1)) for name in gt.PAPER_TABLES}
print("largest NFE saving (%) with FID change < 3%:\n ", paper_best)
paper.round({"FID": 3, "NFE saved (%)": 1, "FID change (%)": 1})

# %% [markdown]
# By the paper's own tables, the saving at under 3% FID increase is 34% on CIFAR-10
# (skip 6), 30% on AFHQv2-64 (skip 12) and 10% on FFHQ-64 (skip 4; skip 6 saves 15% at
# +3.9%). The main text's "15-30%" therefore holds for two of the three datasets; on FFHQ
# the text's own wording is "10-15% ... with around 3% increase" (App. B.8).
#
# ## (a) A low-rank Gaussian mixture with a known score
#
# The mixture is `zoo.toy_gmm()`: four equal-weight modes with random means
# $\sim\mathcal N(0, I_{16})$ (pairwise distances 5-8), each a Gaussian on its own random
# 3-dimensional subspace with variances in $[0.05, 1]$. The teleportation Gaussian is
# fitted to 20,000 samples, as Alg. 1 fits it to the training set. We sample with the
# exact denoiser of the mixture and with `zoo.gmm_mlp`, an MLP (4 x 256) trained for 2,500
# steps on fresh mixture samples. Every skip starts from the same $x_T$, so differences
# between skips are not sampling noise.
#
# Because the exact flow is known, the main quality measure is exact: the mean distance
# between a sample and the endpoint of the exact PF-ODE from the same $x_T$ (scipy RK45,
# tolerance $10^{-8}$, on the first 500 starting points in the `ci` profile), the
# "endpoint error". It contains Heun's discretisation error, the network's error (MLP) and
# whatever teleportation adds. We also report the share of samples that end in another
# mode than plain Heun's from the same $x_T$ ("mode flips") and a distribution distance,
# the sliced 2-Wasserstein distance SW$_2$ to as many fresh exact samples; its floor
# (SW$_2$ between two exact sample sets) shows how much of it is sampling noise.

# %%
gmm = zoo.toy_gmm()
gen = torch.Generator().manual_seed(seed)
gauss_gmm = Gaussian.from_data(gmm.sample(20000, gen))
x_T = EDM().prior_sample((cfg["n_gmm"], gmm.dim), gen, dtype=torch.float64)  # x_T ~ N(0, 80^2 I)
ref = gmm.sample(cfg["n_gmm"], gen)
n_ref = cfg["n_ode_ref"]
exact_end = gt.exact_pf_ode_samples(gmm, x_T[:n_ref])


def sw2(s: torch.Tensor) -> float:
    return metrics.sw2_to_reference(s, ref, seed, cfg["n_projections"])


def mode(s: torch.Tensor) -> torch.Tensor:
    return gmm.responsibilities(s.double(), 1e-2).argmax(1)


floor = metrics.noise_floor(lambda _: sw2(gmm.sample(cfg["n_gmm"], gen)), cfg["n_floor"])
print(f"SW2 between independent exact sample sets of {cfg['n_gmm']}: {floor.mean:.3f} +- {floor.sd:.3f}")
glue("sw2_floor", f"{floor.mean:.2f} ± {floor.sd:.2f}", display=False)

# %%
mlp, _, _ = zoo.gmm_mlp(S)
gmm_skips = cfg["gmm_skips"]
models = {"exact GMM denoiser": gmm.denoiser, "trained MLP": mlp}
gmm_tables = {}
for name, den in models.items():
    ends = gt.teleport_samples(den, gauss_gmm, x_T, gmm_skips, steps=steps)
    errors = {k: (ends[k][:n_ref].double() - exact_end).norm(dim=1) for k in gmm_skips}  # per starting point
    tab = gt.teleportation_table(den, gauss_gmm, x_T, gmm_skips, lambda e: e.mean().item(), steps=steps,
                                 samples=errors, quality_name="endpoint error", n_boot=cfg["n_boot"],
                                 generator=torch.Generator().manual_seed(seed))
    tab["mode flips (%)"] = [100 * (mode(ends[k]) != mode(ends[0])).double().mean().item() for k in gmm_skips]
    tab["SW2"] = [sw2(ends[k]) for k in gmm_skips]
    gmm_tables[name] = tab
gmm_digits = {"sigma_skip": 2, "endpoint error": 4, "NFE saved (%)": 1, "endpoint error change (%)": 1,
              "change CI low": 1, "change CI high": 1, "mode flips (%)": 2, "SW2": 3}
gmm_tables["exact GMM denoiser"].round(gmm_digits)

# %%
# NBVAL_TOLERANCE rel=0.2 abs=13  (twice the range over three CPU kernel paths, which train slightly different MLPs;
# seeds 1-2 also redraw x_T and move the changes by up to 80 percentage points at large skips)
mlp_tab = gmm_tables["trained MLP"]
early = mlp_tab[(mlp_tab["sigma_skip"] >= 5) & (mlp_tab["skip"] > 0)]  # down to sigma_skip ~ 5
glue("mlp_early", f"{early['endpoint error change (%)'].min():+.1f}% to {early['endpoint error change (%)'].max():+.1f}%",
     display=False)  # fmt: skip
glue("mlp_early_clear", f"{((early['change CI low'] > 0) | (early['change CI high'] < 0)).sum()} of {len(early)}",
     display=False)  # fmt: skip
glue("mlp_ratio", f"{mlp_tab['endpoint error'].iloc[0] / gmm_tables['exact GMM denoiser']['endpoint error'].iloc[0]:.0f}",
     display=False)  # fmt: skip
mlp_tab.round(gmm_digits)

# %% mystnb={"figure": {"caption": "Toy GMM: mean distance of the samples to the exact PF-ODE endpoints (left) and share of samples whose mode differs from plain Heun's (right), against the noise level teleported to (further right = more steps skipped), for the exact denoiser and the trained MLP. Dotted: the data's overall scale $\\sqrt{\\operatorname{tr}\\Sigma}$.", "name": "fig-gs-teleport-gmm"}, "image": {"alt": "Two plots against the teleport target noise level on a reversed log axis: endpoint error and percentage of mode flips, for the exact denoiser and the trained MLP."}}
sd_data = gmm.sample(20000, gen).var(0).sum().sqrt().item()
print(f"sqrt(tr Sigma) of the mixture: {sd_data:.2f}")
fig, axs = plt.subplots(1, 2, figsize=(8.2, 4))
for name, tab in gmm_tables.items():
    axs[0].plot(tab["sigma_skip"], tab["endpoint error"], "o-", label=name)
    axs[1].plot(tab["sigma_skip"], tab["mode flips (%)"], "o-", label=name)
axs[0].set(xscale="log", yscale="log", xlabel=r"teleport target $\sigma_\mathrm{skip}$",
           ylabel="mean distance to exact PF-ODE endpoint", title="(a) endpoint error")
axs[1].set(xscale="log", xlabel=r"teleport target $\sigma_\mathrm{skip}$",
           ylabel="samples in another mode (%)", title="(a) mode flips vs plain Heun")
for ax in axs:
    ax.axvline(sd_data, color="grey", ls=":", lw=1, label=r"$\sqrt{\mathrm{tr}\,\Sigma}$ of the data")
    ax.invert_xaxis()
fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9)
plt.show()

# %% [markdown]
# The tables give each change with its 95% paired bootstrap interval over the 500
# starting points (the same resampled $x_T$ for the skip and for plain Heun). The exact
# denoiser's rows contain no trained network, so they are exact numbers that every machine
# reproduces; the MLP's rows depend on its training, and CPUs with other kernels train a
# slightly different MLP (see {ref}`reproducibility`).
#
# With the exact denoiser and these starting points, teleporting down to
# $\sigma_\text{skip} = 8.4$ (skip 6, 34% of the NFE saved) does not hurt: the endpoint
# error even falls by 4% (interval -5% to -3%; other draws of $x_T$ give -3% and, where a
# few samples change mode, +20%),
# because the Gaussian solution has no discretisation error in the part it replaces, and
# only 0.25% of the samples change mode. One level further ($\sigma_\text{skip} = 5.3$,
# about $1.2\sqrt{\operatorname{tr}\Sigma}$) the error grows by a third, and below that
# the Gaussian sends samples to the wrong mode at a rate that grows quickly: at these
# noise levels the mixture's score is no longer close to the Gaussian's. With the trained
# MLP the baseline error is {glue:text}`mlp_ratio` times larger (the network's own error),
# and down to $\sigma_\text{skip} \approx 5$ teleportation changes it by
# {glue:text}`mlp_early` (seed 0), with the interval clear of zero at
# {glue:text}`mlp_early_clear` skips: a per-sample endpoint error is heavy-tailed (a sample
# that changes mode moves far), so 500 starting points resolve a change of a few percent
# of its mean only at the edge. SW$_2$
# moves within its sampling noise (floor {glue:text}`sw2_floor`) until
# $\sigma_\text{skip} \approx 1$, so at this sample size it cannot resolve the effect
# either.

# %% [markdown]
# ## (b) Digits with a trained U-Net
#
# The model is `zoo.digits_edm` (a 0.65M-parameter U-Net trained for 1,000 steps on the
# 1,797 8x8 digits on the CPU, EMA weights); the teleportation Gaussian is fitted to the
# same 1,797 images (full rank, $D = 64$). Quality is FD-digits between the samples
# (1,000 in the `ci` profile) and a random half of the real digits (898); the other half
# (899 real digits) against the same reference shows the floor of the measure at this
# sample size.

# %%
unet, _ = zoo.digits_edm(S)
quality, features = S.images.metric, S.images.features()  # FD-digits (ci) or FID (MNIST, full)
images = S.images.load()[0][: 2 * cfg["n_digits"]]
gauss_digits = Gaussian.from_data(images.flatten(1).double())
gd = torch.Generator().manual_seed(seed)
x_T_img = EDM().prior_sample((cfg["n_digits"], *images.shape[1:]), gd)
perm = torch.randperm(images.shape[0], generator=gd)
half = images.shape[0] // 2
real_a, real_b = images[perm[:half]], images[perm[half:]]
real_feats = features(real_a)
fd_real = metrics.frechet_distance_features(features(real_b), real_feats)
digit_samples = gt.teleport_samples(unet, gauss_digits, x_T_img, cfg["digit_skips"], steps=steps)
digit_feats = {k: features(s.clamp(-1, 1)) for k, s in digit_samples.items()}
digit_table = gt.teleportation_table(unet, gauss_digits, x_T_img, cfg["digit_skips"],
                                     lambda f: metrics.frechet_distance_features(f, real_feats), steps=steps,
                                     samples=digit_feats, quality_name=quality, n_boot=cfg["n_boot"],
                                     generator=torch.Generator().manual_seed(seed))

# %%
# NBVAL_TOLERANCE rel=0.2 abs=8  (twice the range over three CPU kernel paths, which train slightly different U-Nets;
# seeds 1-2 also redraw x_T and the real-digit split: samples FD 14.2-17.2, real-vs-real 8.4-19.8)
print(f"{quality} against {half} real digits: the other {images.shape[0] - half} real digits {fd_real:.1f};\n"
      f"{cfg['n_digits']} Heun-{steps} samples {digit_table[quality].iloc[0]:.1f}")
digit_table.round({"sigma_skip": 2, quality: 1, "NFE saved (%)": 1, f"{quality} change (%)": 1,
                   "change CI low": 1, "change CI high": 1})

# %% mystnb={"figure": {"caption": "Digits sampled by the hybrid sampler from the same 16 starting points; each row skips more Heun steps (the row label gives the skip and the NFE).", "name": "fig-gs-teleport-digits"}, "image": {"alt": "Rows of 16 sampled 8x8 digits, one row per number of skipped Heun steps, each labelled with the skip and the NFE."}}
shown = cfg["digit_skips"]
fig, axs = plt.subplots(len(shown), 1, figsize=(8, 0.62 * len(shown)))
for ax, k in zip(axs, shown):
    plotting.show_images(ax, digit_samples[k][:16], ncols=16, pad=0)
    ax.set_ylabel(f"skip {k}\nNFE {heun_nfe(steps, k)}", rotation=0, ha="right", va="center", fontsize=9)
axs[0].set_title("(b) the same 16 starting points $x_T$, teleported to later and later noise levels")
plt.show()

# %% [markdown]
# Up to skip 8 ($\sigma_\text{skip} = 3.3$, 46% of the NFE saved) the samples are the
# same digits with small changes in detail, and FD-digits moves by a few percent at most;
# at skip 10 ($\sigma_\text{skip} = 1.1$) strokes change and FD-digits rises by
# {glue:text}`digits_skip10` (seed 0). Changes of a few percent are below the resolution of this measure: the
# paired bootstrap interval of the change is about $\pm 4\%$ wide at skip 4-8, and networks
# trained on CPUs with other kernels, which differ slightly, move the change at skip 8
# between +0.5% and +5%. The samples are about as close to the reference half as the
# other real half is (the network, trained on all digits, may partly reproduce training
# images). The digits have $\sqrt{\operatorname{tr}\Sigma} \approx 4.3$ in these units,
# about the same as the mixture ($4.3$), yet teleportation is harmless down to
# $\sigma_\text{skip} \approx 3$ here against $8.4$ there: the digits are closer to a single
# Gaussian than four well-separated modes are.

# %% [markdown]
# ## Ours next to the paper
#
# For each setting, the two skips that bracket the top of the claimed range (30% of the
# NFE saved), chosen by the NFE alone so that the choice does not depend on a noisy
# measurement. "< 3% loss" is "yes" when the whole 95% interval of the change lies below
# 3%, "no" when it lies above, and "inconclusive" when it straddles 3%. The paper's rows are
# single FID values on 50,000 samples, with no interval given. For the two trained
# networks the interval of one run is not the whole uncertainty: another seed (or another
# CPU, which trains a slightly different network) moves the change by a few percent, so
# their test is decided across seeds in the verdict below.

# %%
# NBVAL_TOLERANCE rel=0.2 abs=13  (the trained rows: as the MLP and digits tables above)
ours = {"ours: toy GMM, exact denoiser": (gmm_tables["exact GMM denoiser"], "endpoint error"),
        "ours: toy GMM, trained MLP": (gmm_tables["trained MLP"], "endpoint error"),
        "ours: 8x8 digits, U-Net": (digit_table, quality)}
theirs = {f"paper: {name}, EDM (Table {t['table']})": (gt.paper_table(name), "FID") for name, t in gt.PAPER_TABLES.items()}
trained = {"ours: toy GMM, trained MLP", "ours: 8x8 digits, U-Net"}  # their test is decided across seeds, below
rows = []
for name, (tab, q) in {**ours, **theirs}.items():
    for _, r in gt.claim_rows(tab).iterrows():
        lo, hi = (r["change CI low"], r["change CI high"]) if "change CI low" in r else (r[f"{q} change (%)"],) * 2
        rows.append({"setting": name, "measure": q, "skip": int(r["skip"]), "NFE saved (%)": round(r["NFE saved (%)"], 1),
                     "quality change (%) [95% CI, sampling]": (stats.fmt_interval(r[f"{q} change (%)"], lo, hi)
                                                               if "change CI low" in r else f"{r[f'{q} change (%)']:+.1f}"),
                     f"< {gt.CLAIM_MAX_QUALITY_LOSS:g}% loss": "see text" if name in trained else gt.below_loss(lo, hi)})
summary = pd.DataFrame(rows).set_index(["setting", "skip"])
summary

# %% mystnb={"figure": {"caption": "Quality change against plain Heun as a function of the NFE saved by teleportation: the paper's FID changes (squares, dashed) and ours (circles); shaded: the claimed 15-30% saving; dotted: a 3% loss.", "name": "fig-gs-teleport-cost"}, "image": {"alt": "Line plot of the quality change in percent against the NFE saved, the paper's settings dashed and ours solid, with a shaded band from 15 to 30 percent and a dotted line at 3 percent."}}
fig, ax = plt.subplots(figsize=(8.2, 5.6))
for name, (tab, q) in theirs.items():
    ax.plot(tab["NFE saved (%)"], tab[f"{q} change (%)"], "s--", alpha=0.6, label=f"{name} (FID)")
for name, (tab, q) in ours.items():
    ax.plot(tab["NFE saved (%)"], tab[f"{q} change (%)"], "o-", label=f"{name} ({q})")
ax.axhline(3, color="k", lw=1, ls=":")
ax.axvspan(15, 30, color="grey", alpha=0.15, label="claimed 15-30% saving")
ax.set(xlabel="NFE saved (%)", ylabel="quality change vs Heun (%)", ylim=(-25, 60), xlim=(-2, 70),
       title="GS-12: quality cost of teleportation")
fig.legend(loc="outside lower center", ncol=2, fontsize=9)
plt.show()

# %% [markdown]
# ## Across seeds 0-2
#
# Seeds 1 and 2 ran this chapter with `-p seed 1 -y "seeds: [1]" -p results_dir
# results/seeds` (and 2; each trains its own MLP and U-Net and redraws the starting points
# and the real-digit split); their tables are stored in
# `results/seeds/gs_teleportation-seed*.json` and stacked here with this run's: the
# quality change at the two skips that bracket 30 % of the NFE saved, with its paired
# bootstrap interval (sampling only).

# %%
# NBVAL_TOLERANCE rel=0.2 abs=13  (this seed's rows: as the tables above; the stored seeds do not move)
tables = {"exact": gmm_tables["exact GMM denoiser"], "mlp": gmm_tables["trained MLP"], "digits": digit_table}
if results_dir:  # a stored seed run
    results.save_results(results.seed_file("gs_teleportation", seed, results_dir),
                         results.run_meta(profile, seed=seed), **tables)  # fmt: skip
per_seed = results.with_stored_seeds("gs_teleportation", tables, seed, seeds, profile)
settings = {"exact": ("toy GMM, exact denoiser", "endpoint error"), "mlp": ("toy GMM, trained MLP", "endpoint error"),
            "digits": ("8x8 digits, U-Net", quality)}  # fmt: skip
across = pd.DataFrame([
    {"setting": label, "seed": s, "skip": int(r["skip"]), "NFE saved (%)": round(r["NFE saved (%)"], 1),
     "change (%)": r[f"{q} change (%)"], "CI low": r["change CI low"], "CI high": r["change CI high"],
     f"< {gt.CLAIM_MAX_QUALITY_LOSS:g}% loss": gt.below_loss(r["change CI low"], r["change CI high"])}
    for key, (label, q) in settings.items()
    for s, tab in per_seed[key].groupby("seed")
    for _, r in gt.claim_rows(tab.reset_index(drop=True)).iterrows()
])  # fmt: skip


def pct(v: float) -> str:
    return f"{v:+.1f}%"


first = across[across["NFE saved (%)"] == across["NFE saved (%)"].min()]  # 29 % saved
for key, (label, _) in settings.items():
    rows = first[first["setting"] == label]
    glue(f"range_{key}", f"{pct(rows['change (%)'].min())} to {pct(rows['change (%)'].max())}", display=False)
    glue(f"straddle_{key}", f"{(rows[f'< {gt.CLAIM_MAX_QUALITY_LOSS:g}% loss'] == 'inconclusive').sum()} of {len(rows)}",
         display=False)  # fmt: skip
exact = across[across["setting"] == settings["exact"][0]].set_index(["seed", "skip"])
def at_skips(g: pd.DataFrame) -> str:
    return ", ".join(f"{stats.fmt_interval(r['change (%)'], r['CI low'], r['CI high'])} %" for _, r in g.iterrows())


glue("exact_seeds", "; ".join(f"seed {s}: {at_skips(g)}" for s, g in exact.groupby(level="seed")), display=False)
glue("digits_skip10", f"{digit_table.set_index('skip').loc[10, f'{quality} change (%)']:.0f}%", display=False)
across.round(1).replace(-0.0, 0.0).set_index(["setting", "seed", "skip"])  # no "-0.0"

# %% [markdown]
# What differs from the paper: the data (a 16-dimensional toy mixture and 8x8 digits,
# not CIFAR-10/FFHQ/AFHQ at 32-64 pixels), the models (an MLP and a 0.65M-parameter U-Net
# trained for minutes on a CPU, not EDM's pre-trained 56M-parameter networks), the
# measures (exact endpoint error and FD-digits in a small classifier's features, not
# Inception FID on 50,000 samples) and the sample sizes (500-4,000 and 1,000). The
# sampler (Heun, 18 EDM steps, $\sigma_\text{max} = 80$) and the teleportation rule (to
# the `skip`-th level, App. A.7) are the paper's.
#
# ## Verdict
#
# * **{claim}`GS-12`** (at this scale). The mechanism works: with the exact denoiser
#   of the toy mixture, where nothing is learned, Alg. 1 saves 29% and 34% of the NFE
#   with the exact endpoint error changing by ({glue:text}`exact_seeds`, change and
#   interval at the two skips), and quality breaks down abruptly
#   once $\sigma_\text{skip}$ falls to the scale of the data's structure ($\lesssim 5$ for
#   the mixture, $\lesssim 1$ for the digits). But the claim's test, under 3% loss at
#   15-30% saved, is not decided by our runs. Across seeds 0-2 (which redraw the networks,
#   the starting points and the real-digit split; the table above) the change at 29% saved
#   is {glue:text}`range_mlp` for the trained MLP and {glue:text}`range_digits` for the
#   digits U-Net, with a paired interval that straddles 3% in {glue:text}`straddle_mlp` and
#   {glue:text}`straddle_digits` runs; even the exact denoiser's mean endpoint error, where a
#   few samples that change mode dominate the mean, is undecided in
#   {glue:text}`straddle_exact` runs. With 500-1,000 samples a 3% threshold is below the resolution of
#   these measures. The 15-30% range itself is supported by the paper's own tables for
#   CIFAR-10 (34% at +0.3%) and AFHQv2-64 (30% at +2.9%) but not for FFHQ-64, where under
#   3% FID increase allows only 10% (15% costs +3.9%). Paper-scale FID was not rerun here.

