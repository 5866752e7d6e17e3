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
# (x-benchmark)=
# # One benchmark for the four papers
#
# *Stored run: profile `ci`, three Gaussian mixtures with exact densities (a 2-D ring of 8
# separated modes, the same ring with overlapping modes, 8 rank-2 components in $D=16$),
# five methods x three training seeds, an MLP 3 x 128 trained for 1,000 steps of batch 256
# each, 2,000 samples per run; and sklearn's 8x8 digits, the same methods on a small U-Net
# (400 steps of batch 16), 200 samples per run, scored by FD-digits.*
#
# Each paper measures its idea against a baseline of its own choosing, with its own
# network, data, metric and budget. This chapter puts the ideas side by side on equal
# terms, on distributions where the exact answer is known, so that every method's error
# is measured rather than only ranked.
#
# **The contenders** (`gmdiff.papers.cross_paper`; every model is trained through the book's
# harness, `runs.load_or_train_many`, with the same MLP, steps, batch, learning rate, EMA
# and seeds):
#
# | method | paper | what differs from its baseline | samplers |
# |---|---|---|---|
# | DDPM | {cite}`ho2020ddpm` | baseline of the discrete VP chain ($T=50$) | ancestral, DDIM, DPM-Solver++(2M) |
# | SMD | {cite}`li2024smd` | latent $\eta$ layers, Eq. 15 | the same three |
# | GM-DDPM | {cite}`gmddpm` | offsets $\lambda\mu_\text{base}$ ($\lambda=0.2$) and a component classifier, Alg. 1 | Alg. 2 (all $T$ steps), DDIM, DPM-Solver |
# | SGM | {cite}`song2021score` (VE) | baseline of the VE process, $\sigma\in[0.01, 10]$ | PC, EDM's Heun, Heun after teleportation |
# | GM-SGM | {cite}`gmsgm` | Alg. 1's noise mixture, $\beta=2$ | the same three |
#
# Teleportation (the Gaussian score paper's Alg. 1, {cite}`wang2024gaussian`) is a sampler add-on: it jumps from
# $\sigma_\max$ to $\sigma=\sqrt{\operatorname{tr}\Sigma}$ of the data with the exact
# solution of the data's Gaussian, and spends the whole NFE budget below that level.
#
# **Equal budgets.** Every run of a data set and seed starts from the same $x_T$; NFE
# counts denoiser evaluations (PC: two per iteration; Heun: $2\times$levels $-1$).
#
# **Ground truth** (X-2). Samples are scored against the exact mixture: sliced $W_2$ to as
# many exact samples (with the metric's own floor, exact against exact), the number of
# modes found (a component holding at least a fifth of its share), and the modes' width
# (RMS distance of a mode's samples to its mean over the exact value: 1 is right, above 1
# blurred). Denoisers are compared with the exact posterior mean along the noise levels.
#
# No paper reports numbers on these data or at this budget, so the tables below have no
# paper column; each paper's own numbers stand beside ours in its chapters, linked from the
# last section.
#
# The `full` profile runs the same code with 20,000 training steps, MLPs 3 x 256, $T=200$,
# five seeds and mixtures up to $D=256$ (`-p profile full`, a GPU advised).

# %% tags=["parameters"]
profile = "ci"
seed = 0
data_dir = None  # unused: every data set is generated

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from gmdiff import plotting, runs, stats
from gmdiff.papers import cross_paper as B
from gmdiff.study import Study

S = Study.open("x_benchmark", profile)
cfg, device = S.sizes, S.device
specs = cfg["data"]
budget = B.Budget(**cfg["budget"])
seeds = [seed + s for s in cfg["seeds"]]
plotting.style()
pd.set_option("display.precision", 3)
pd.set_option("display.max_rows", 120)  # the comparison table has 93 rows

# %% [markdown]
# ## Training: 5 methods x 3 data sets x 3 seeds (cached)
#
# The cost of a training step is measured here, in this process: the methods interleaved,
# one thread each, the median over rounds of the ratio to DDPM's step.

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock times: they vary from run to run and machine to machine)
trained = B.train_all(B.METHODS, specs, budget, seeds, device)
cost = B.step_cost(B.METHODS, next(iter(specs.values())), budget, cfg["cost_steps"], cfg["cost_repeats"])
print(f"{len(trained)} trained runs; training cost on the first data set:")
for m in ("SMD", "GM-DDPM"):  # glued into the prose; the table's timing cells are not checked
    glue(f"cost_mlp_{m}", f"{cost.loc[m, 'ratio to DDPM']:.1f}", display=False)
glue("cost_mlp_gmsgm", f"{cost.loc['GM-SGM', 'ratio to DDPM'] / cost.loc['SGM', 'ratio to DDPM']:.2f}", display=False)
cost.round(2)

# %% [markdown]
# **Training adequacy** of the 45 networks (`Run.adequacy`), each method and data set shown
# by its worst seed: the share of the random initialisation left in the EMA weights that
# are sampled, and the last loss window over the best one (1: the loss has not risen from
# its best). These runs log their loss once per run (`train.log_every` is their length), so
# the chapter cannot show a loss trend over training for them.

# %%
# NBVAL_TOLERANCE abs=0.02  (not measured on another kernel path: the EMA share is exact, final/best moves at round-off and prints to 0.1)
adequacy = [{"data": d, "method": m, "seed": s, **r.adequacy()} for (m, d, s), r in trained.items()]
runs.adequacy_table(adequacy, ["data", "method", "seed"], worst_over="seed")

# %% [markdown]
# ## Sample quality against the number of denoiser evaluations

# %%
# NBVAL_TOLERANCE abs=0.01 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: printed numbers moved <= 0.002; one unit of the last digit)
table = B.benchmark(trained, specs, cfg["nfes"], cfg["n"], cfg["teleport_scale"])
floor = B.floor_scores(specs, cfg["n"], seeds).groupby("data")[["SW2", "width"]].mean()
summary = table.groupby(["data", "method", "sampler", "NFE budget"])[["SW2", "width", "modes"]].mean()
print("exact samples against the references (the metrics' floor):")
print(floor.round(3).to_string())
lost = table[table["modes"] < table["data"].map({name: sp["k"] for name, sp in specs.items()})]
print(f"runs that lost a mode: {len(lost)} of {len(table)}")
print(lost[["data", "method", "sampler", "NFE", "seed", "modes"]].to_string(index=False) if len(lost) else "")
print("SW2, mean over seeds (the figure below shows their 95% intervals;")
print("GM-DDPM's Alg. 2 takes all T = 50 steps)")
summary["SW2"].unstack(["data", "NFE budget"]).map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")

# %% mystnb={"figure": {"caption": "SW2 against NFE on each toy data set, for the eps networks (left) and the score models (right): mean over the three seeds with 95 % t-intervals (the points of one NFE are set slightly apart); the black line is the floor, exact samples against the same references. GM-DDPM's ancestral sampler has one point, at NFE $=T=50$.", "name": "fig-x-benchmark-toy"}, "image": {"alt": "Pairs of log-log panels, one row per toy data set, of SW2 against NFE with error bars, one line per method and sampler, and a black floor line."}}
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

colors = dict(zip(B.METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
marks = {"ancestral": "-o", "DDIM": ":s", "DPM-Solver": "--^", "PC": "-o", "Heun": "--^",
         "Heun + teleport": ":s"}  # fmt: skip
families = {"eps networks (VP chain)": B.VP_METHODS, "score models (VE)": ("SGM", "GM-SGM")}


def plot_vs_nfe(ax, sub, value, nfes):
    """`value` of each (method, sampler) of `sub` against NFE: mean and 95% t-interval over seeds."""
    for k, ((method, sampler), g) in enumerate(sub.groupby(["method", "sampler"])):
        nfe, ci = zip(*[(x, B.t_interval(v.tolist())) for x, v in g.groupby("NFE")[value]], strict=True)
        m = [c[0] for c in ci]
        lo = [c[0] - max(c[1], c[0] / 10) for c in ci]  # the log axis shows intervals down to m/10
        shift = [x * 1.04 ** (k - 4) for x in nfe]  # side by side, so that the bars do not hide each other
        ax.errorbar(shift, m, yerr=[lo, [c[2] - c[0] for c in ci]], fmt=marks[sampler], ms=3.5,
                    color=colors[method], capsize=2, lw=1, label=f"{method}, {sampler}")  # fmt: skip
    ax.set(xscale="log", yscale="log", xticks=nfes, xlabel="NFE")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.1, 0.2, 0.5, 1, ...
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.05, 1, 20
        axis.set_minor_formatter(NullFormatter())


fig, axs = plotting.panels(2 * len(specs), ncols=2, aspect=0.7)
for row, name in enumerate(specs):
    for col, (family, methods) in enumerate(families.items()):
        ax = axs[2 * row + col]
        plot_vs_nfe(ax, table[(table["data"] == name) & table["method"].isin(methods)], "SW2", cfg["nfes"])
        ax.axhline(floor.loc[name, "SW2"], color="k", lw=0.8, label="exact samples")
        ax.set(ylabel="SW2", title=f"{name}: {family}")
for col in range(2):
    axs[-2 + col].legend(*axs[col].get_legend_handles_labels(), fontsize=9, ncols=2,
                        loc="upper center", bbox_to_anchor=(0.5, -0.25))  # fmt: skip
plt.show()

# %% [markdown]
# In {numref}`fig-x-benchmark-toy`, methods are told apart by colour, samplers by line and
# marker.

# %%
# NBVAL_TOLERANCE abs=0.1 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: printed numbers moved <= 0.002; one unit of the last digit)
print("mode width over the exact one (1 = right), mean over seeds")
print("exact samples:", floor["width"].round(2).to_dict())
summary["width"].unstack(["data", "NFE budget"]).map(lambda v: "-" if pd.isna(v) else f"{v:.1f}")

# %% [markdown]
# ## Which idea helps where
#
# Each row compares a method-sampler pair with the same thing without the idea, paired by
# seed (same data, budget, $x_T$): the mean difference in SW2 and in the modes' width
# error, $|\text{width}-\text{width of exact samples}|$ (on the wide ring exact samples
# score below 1, as each sample is given to its most likely mode), with 95 % t-intervals
# over the three seeds; "better" / "worse" (`gmdiff.stats.direction`, lower is better)
# only where the interval excludes 0, else "tied".

# %%
# NBVAL_TOLERANCE abs=0.005 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: printed numbers moved <= 0.002)
table["width error"] = (table["width"] - table["data"].map(floor["width"])).abs()
order = [label for label, _, _ in B.IDEAS]


def changes(value, tab=table):
    """The paired differences of `value` as 'mean [low, high]' at their noise level, one row per idea and data set."""
    d = B.paired(tab, value)
    d["idea"] = pd.Categorical(d["idea"], order, ordered=True)
    d["cell"] = [stats.fmt_interval(m, lo, hi) for m, lo, hi in d[["difference", "low", "high"]].values]
    return d


sw2, width = changes("SW2"), changes("width error")
keys = ["idea", "data", "NFE budget"]
both = sw2.merge(width, on=keys, suffixes=(" SW2", " width")).rename(
    columns={"cell SW2": "SW2", "cell width": "width error", "NFE budget": "NFE"}
)
print("with the idea minus without it, mean [95% CI] over seeds (lower is better)")
both.set_index(["data", "idea", "NFE"]).sort_index()[["SW2", "width error"]]

# %%
# NBVAL_TOLERANCE abs=1  (a count moves by one where an interval ends within the kernel paths' spread of zero: SMD ancestral, D = 16, NFE 10 ends at -0.002)
tally = pd.concat({
    "SW2": pd.crosstab(sw2["idea"], sw2["effect"]),
    "width error": pd.crosstab(width["idea"], width["effect"]),
}, axis=1).reindex(columns=pd.MultiIndex.from_product(
    [["SW2", "width error"], ["better", "tied", "worse"]]), fill_value=0)  # fmt: skip
print("(data, NFE) cells where an idea makes it better / tied / worse,\nbeyond the seeds' 95% CI")
tally

# %% [markdown]
# ## Denoisers against the exact ones
#
# The excess error of each trained denoiser over the exact optimum of its own loss,
# $\mathbb E\|D_\theta-x_0\|^2/\mathbb E\|D^*-x_0\|^2-1$, on 2,000 fresh noisy points
# at the VP chain's steps ($\sigma_t=\sqrt{1/\bar\alpha_t-1}$, inside the VE range). $D^*$
# is the exact posterior mean of the mixture for DDPM, SMD and SGM; for GM-SGM the
# minimiser of its mixture-noise loss on points noised as in its training, and, in the
# second table, the Gaussian-path posterior mean that its samplers use it for; for GM-DDPM the exact
# $\mathbb E[\epsilon\mid x_t]$ on its offset chain (`ExactGMDDPM`).

# %%
# NBVAL_TOLERANCE abs=0.01 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: printed numbers moved <= 0.002; one unit of the last digit)
errors = B.denoiser_errors(trained, specs, cfg["error_steps"], cfg["n_error"], budget.gm_sgm_beta)


def mean_ci(v):
    return stats.fmt_mean_ci(v.tolist())


print("excess over the exact optimum of its own loss, mean ± 95% CI half-width over seeds")
errors.groupby(["data", "method", "t"])["excess"].agg(mean_ci).unstack("t")

# %%
# NBVAL_TOLERANCE abs=0.01 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: printed numbers moved <= 0.002; one unit of the last digit)
print("GM-SGM against the Gaussian-path D* (what its PC / Heun samplers need):")
gm = errors[errors["method"] == "GM-SGM"].groupby(["data", "t"])["vs Gaussian-path D*"]
gm.agg(mean_ci).unstack("t")

# %% [markdown]
# ### Reverse kernels against the exact one
#
# One step further: not only the denoiser's mean, the whole ancestral step. For DDPM and
# SMD the step from $x_t$ is a kernel $p(x_{t-1}\mid x_t)$ (SMD's a mixture over its latent
# $\eta$), and on a Gaussian mixture the exact reverse step $q(x_{t-1}\mid x_t)$ is known
# (SMD paper, Prop. 3.1). The table gives $\mathrm{KL}(q\,\|\,p)$ at the first steps,
# $t=2$ to $10$, where the step is hardest to get right, averaged over 128 draws of $x_t$ (Monte Carlo over 128 draws from $q$; SMD's kernel over 64 draws of
# $\eta$), beside two exact references: the best Gaussian kernel (moment matched, the
# floor of any Gaussian step) and the best kernel of DDPM's form (the exact posterior mean
# with DDPM's fixed variance $\tilde\beta_t$), and the paired difference SMD − DDPM. GM-DDPM
# runs a different chain and the VE samplers take no ancestral steps, so they are not in
# this table.

# %%
# NBVAL_TOLERANCE abs=0.01 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: unchanged at two decimals; one unit)
kernels = B.kernel_errors(trained, specs, **cfg["kernel"])
kl = kernels.groupby(["data", "kernel", "t"])["KL"].agg(mean_ci).unstack("t")
diff = B.kernel_difference(kernels, "SMD", "DDPM").assign(kernel="SMD − DDPM (paired)")
diff["cell"] = [stats.fmt_pm(m, hi - m, signed=True) for m, hi in diff[["difference", "high"]].values]
diff = diff.pivot(index=["data", "kernel"], columns="t", values="cell")
spread = kernels.loc[kernels["kernel"] == "SMD", "eta spread"].max()
print(f"SMD's kernel mean, largest spread over eta (tr Cov): {spread:.1e}")
print("KL(exact reverse step || kernel), mean ± 95% CI half-width over the three seeds")
pd.concat([kl, diff]).sort_index()

# %% [markdown]
# (x-benchmark-digits)=
# ## 8x8 digits: the same methods on images
#
# Real images have no exact distribution, so here samples are scored as the papers score
# theirs, by a Fréchet distance in a network's features: FD-digits, in the features of the
# book's small digit classifier (`zoo.digit_classifier`; not FID), of 200 samples against
# all 1,797 digits, with precision and recall ($k=3$). Every method trains the same
# `digits` U-Net (24 base channels; SMD adds its latent layers, GM-DDPM its component
# classifier) for 400 steps of batch 16, the recipe of {ref}`gmd-tables`, with the same
# chain, VE range, seeds and shared $x_T$ as above; teleportation uses the Gaussian of the
# digits' mean and covariance. The floor is 200 real digits against all of them (they are
# part of the reference, so it is a lower bound rather than a perfect model's score).
# Two NFE budgets, 10 and 50: sampling these U-Nets is most of this section's time. The
# cost of a training step is measured as for the MLPs, over fewer steps.

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock times)
from gmdiff import data, metrics, zoo
from gmdiff.papers.gm_ddpm import ImageScores

img = cfg["images"]
img_budget = B.Budget(**img["budget"])
img_trained = B.train_all(B.METHODS, img["data"], img_budget, seeds, device)
classifier = zoo.digit_classifier()
score = ImageScores(data.digits8x8()[0], lambda x: metrics.classifier_features(classifier, x), img["n"], seed)
img_cost = B.step_cost(B.METHODS, img["data"]["8x8 digits"], img_budget, img["cost_steps"], img["cost_repeats"])
for m in ("SMD", "GM-DDPM"):
    glue(f"cost_unet_{m}", f"{img_cost.loc[m, 'ratio to DDPM']:.1f}", display=False)
print(f"{len(img_trained)} trained U-Nets; training cost on the digits:")
img_cost.round(2)

# %%
# NBVAL_TOLERANCE abs=0.02  (training adequacy of the 15 U-Nets, worst seed per method; not measured on another kernel path, as above)
runs.adequacy_table([{"method": m, "seed": s, **r.adequacy()} for (m, _, s), r in img_trained.items()],
                    ["method", "seed"], worst_over="seed")  # fmt: skip

# %%
# NBVAL_TOLERANCE abs=1 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: FD-digits moved <= 4 (0.3%), the half-widths by one unit)
images = B.benchmark(img_trained, img["data"], img["nfes"], img["n"], cfg["teleport_scale"], score)
img_floor = B.floor_scores(img["data"], img["n"], seeds, score)[["fd", "precision", "recall"]].mean()
by = images.groupby(["method", "sampler", "NFE budget"])
print(f"FD-digits, mean ± 95% CI half-width over seeds (floor, real digits: {img_floor['fd']:.0f});")
print("GM-DDPM's Alg. 2 takes all T = 50 steps")
by["fd"].agg(mean_ci).unstack().fillna("-")

# %%
# NBVAL_TOLERANCE abs=0.03  (retrained under the ATEN default kernels: means and half-widths moved <= 0.02; one unit above that)
print(f"precision and recall (k = 3), mean ± 95% CI half-width over seeds (floor: {img_floor['precision']:.2f}, {img_floor['recall']:.2f})")
pd.concat({v: by[v].agg(mean_ci).unstack() for v in ("precision", "recall")}, axis=1).fillna("-")

# %% mystnb={"figure": {"caption": "FD-digits against NFE on the 8x8 digits, for the eps networks (left) and the score models (right): mean over the three seeds with 95 % t-intervals; the black line is the floor (real digits).", "name": "fig-x-benchmark-digits"}, "image": {"alt": "Two log-log panels of FD-digits against NFE with error bars, one line per method and sampler, and a black floor line."}}
fig, axs = plotting.panels(2, ncols=2, aspect=0.8)
for ax, (family, methods) in zip(axs, families.items(), strict=True):
    plot_vs_nfe(ax, images[images["method"].isin(methods)], "fd", img["nfes"])
    ax.axhline(img_floor["fd"], color="k", lw=0.8, label="real digits")
    ax.set(ylabel="FD-digits", title=f"8x8 digits: {family}")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncols=2)
plt.show()

# %% [markdown]
# {numref}`fig-x-benchmark-digit-samples` shows 36 samples of seed 0 at 50 evaluations, each
# method with its own paper's sampler, from the same $x_T$, beside real digits.

# %% mystnb={"figure": {"caption": "36 samples of seed 0 at 50 evaluations, each method with its own paper's sampler, from the same $x_T$, beside 36 real digits.", "name": "fig-x-benchmark-digit-samples"}, "image": {"alt": "Six 6x6 grids of 8x8 digits: real digits, then samples of DDPM, SMD, GM-DDPM, SGM and GM-SGM."}}
gauss = B.teleport_gaussian(img["data"]["8x8 digits"])
shown = {"real digits": data.digits8x8()[0][:36]}
for method, sampler in [("DDPM", "ancestral"), ("SMD", "ancestral"), ("GM-DDPM", "ancestral"),
                        ("SGM", "PC"), ("GM-SGM", "PC")]:  # fmt: skip
    run = img_trained[(method, "8x8 digits", seeds[0])]
    shown[f"{method}, {sampler}"] = B.draw(run, B.plan(method, sampler, 50, run, 0.0), 36, 1000 + seeds[0], gauss)
fig, axs = plotting.panels(len(shown), ncols=3, aspect=1.0)
for ax, (label, x) in zip(axs, shown.items(), strict=True):
    plotting.show_images(ax, x, 6)
    ax.set(title=label)
plt.show()

# %% [markdown]
# Which idea helps on the digits, paired by seed as above: FD-digits with the idea minus
# without it, mean and 95 % t-interval over the three seeds.

# %%
# NBVAL_TOLERANCE abs=1 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: moved <= 4 (0.3%), +40 -> +41; one unit)
img_ideas = changes("fd", images).rename(columns={"cell": "FD-digits", "NFE budget": "NFE"})
img_ideas.set_index(["idea", "NFE"]).sort_index()[["FD-digits", "effect"]]

# %% tags=["remove-cell"]
# NBVAL_IGNORE_OUTPUT
# (the prose's numbers below, glued from the tables above; no visible output)
def diff(tab, data, idea, nfe):
    """The paired difference of one (data, idea, NFE) row of `sw2` / `img_ideas`-like tables."""
    col = "NFE budget" if "NFE budget" in tab else "NFE"
    return tab[(tab["data"] == data) & (tab["idea"] == idea) & (tab[col] == nfe)].iloc[0]


def span(values, digits=2, sign=True):
    v = sorted(values)
    f = f"{'+' if sign else ''}.{digits}f"
    return f"{v[0]:{f}} to {v[-1]:{f}}"


def mean_of(tab, value, **where):
    rows = tab
    for k, v in where.items():
        rows = rows[rows[k.replace("_", " ")] == v]
    return float(rows[value].mean())


d16, ring, wide, dig = "GMM D=16", "ring", "wide ring", "8x8 digits"
smd = sw2[(sw2["data"] == d16) & (sw2["idea"] == "SMD (ancestral)")]
glue("smd_gain", span(-smd["difference"], 2, sign=False).replace(" to ", "-"), display=False)
clear = [str(n) for n in smd.loc[smd["effect"] == "better", "NFE budget"]]
glue("smd_clear", " and ".join([", ".join(clear[:-1]), clear[-1]] if len(clear) > 1 else clear) or "no", display=False)
solvers = sw2[sw2["idea"].isin(["GM-DDPM + DDIM", "GM-DDPM + DPM-Solver"])]
glue("gmddpm_solvers", f"{(solvers['effect'] == 'worse').sum()} of its {len(solvers)} cells "
     f"({span(solvers['difference'])})", display=False)
glue("gmsgm_pc10", ", ".join(f"{diff(sw2, d, 'GM-SGM (PC)', 10)['difference']:+.2f} {name}"
                             for d, name in [(ring, "separated ring"), (wide, "overlapping ring"), (d16, "D = 16")]),
     display=False)  # fmt: skip
glue("gmsgm_heun50_wide", f"{diff(sw2, wide, 'GM-SGM (Heun)', 50)['difference']:+.2f}", display=False)
worse16 = sw2[(sw2["data"] == d16) & (((sw2["idea"] == "GM-SGM (PC)") & (sw2["NFE budget"] > 10))
                                      | (sw2["idea"] == "GM-SGM (Heun)"))]  # fmt: skip
glue("gmsgm_d16", span(worse16["difference"]), display=False)
heun = {(d, s): mean_of(table, "SW2", data=d, method="SGM", sampler=s, NFE_budget=10)
        for d in (ring, wide) for s in ("Heun", "Heun + teleport")}  # fmt: skip
glue("tele_ring", f"from {heun[ring, 'Heun']:.2f} to {heun[ring, 'Heun + teleport']:.2f}", display=False)
glue("tele_wide", f"from {heun[wide, 'Heun']:.2f} to {heun[wide, 'Heun + teleport']:.2f}", display=False)
glue("tele_gmsgm_ring", f"{-diff(sw2, ring, 'teleport on GM-SGM', 10)['difference']:.2f}", display=False)
tele = sw2[sw2["idea"].str.startswith("teleport on")]
rest = tele[~(tele["data"].isin([ring, wide]) & (tele["NFE budget"] == 10))]
glue("tele_rest", f"{rest['difference'].abs().max():.2f}", display=False)

half = by["fd"].agg(lambda v: B.t_interval(v.tolist())[2] - v.mean())
gm_solver = half.loc["GM-DDPM"].drop("ancestral", level="sampler")
glue("digits_half", f"{span(half.drop('GM-DDPM', level='method'), 0, sign=False).replace(' to ', '-')}", display=False)
glue("digits_half_gmddpm", f"{gm_solver.min():.0f}-{gm_solver.max():.0f}", display=False)
cell = img_ideas.set_index(["idea", "NFE"])["FD-digits"]
glue("dig_gmddpm_alg2", cell["GM-DDPM (Alg. 2, all T)", 50].split(" ")[0], display=False)
sol = img_ideas[img_ideas["idea"].isin(["GM-DDPM + DDIM", "GM-DDPM + DPM-Solver"])]["difference"]
glue("dig_gmddpm_solvers", span(sol, 0), display=False)
glue("dig_tele50", cell["teleport on SGM", 50], display=False)
glue("dig_tele10", cell["teleport on SGM", 10], display=False)
glue("dig_better", f"{(img_ideas['effect'] == 'better').sum()} of the {len(img_ideas)}", display=False)
glue("dig_smd50", cell["SMD (ancestral)", 50], display=False)
glue("dig_gmsgm_pc10", cell["GM-SGM (PC)", 10], display=False)
fd = by["fd"].mean()
glue("dig_floor", f"{img_floor['fd']:.0f}", display=False)
glue("dig_best_tele", f"{fd['SGM', 'Heun + teleport', 10]:.0f}", display=False)
glue("dig_best_smd", f"{fd['SMD', 'ancestral', 50]:.0f}", display=False)
glue("dig_heun_sgm", f"{fd['SGM', 'Heun', 10]:.0f} to {fd['SGM', 'Heun', 50]:.0f}", display=False)
glue("dig_heun_gmsgm", f"{fd['GM-SGM', 'Heun', 10]:.0f} to {fd['GM-SGM', 'Heun', 50]:.0f}", display=False)
recall = by["recall"].mean()
glue("dig_heun_recall", f"{recall['SGM', 'Heun', 10]:.2f} to {recall['SGM', 'Heun', 50]:.2f}", display=False)

widths = summary["width"]
ring_w = widths.xs(ring, level="data")
glue("ring_width", f"{ring_w[ring_w.index.get_level_values('NFE budget') >= 20].min():.1f}-"
     f"{ring_w[ring_w.index.get_level_values('NFE budget') >= 20].max():.1f}", display=False)
ve10 = ring_w[(ring_w.index.get_level_values("NFE budget") == 10)
              & ring_w.index.get_level_values("method").isin(["SGM", "GM-SGM"])]  # fmt: skip
glue("ring_width_ve10", f"{ve10.min():.1f}-{ve10.max():.1f}", display=False)
k16 = specs[d16]["k"]
lost16 = lost[lost["data"] == d16]
glue("lost_who", " and ".join(sorted(set(lost["method"]))), display=False)
glue("lost_modes", span(k16 - lost16["modes"], 0, sign=False).replace(" to ", "-"), display=False)
glue("lost_runs", f"{len(lost16)} of its {len(table[(table['data'] == d16) & (table['method'] == 'GM-SGM')])}",
     display=False)  # fmt: skip
ex = errors.groupby(["data", "method", "t"])[["excess", "vs Gaussian-path D*"]].mean()
mid = ex.loc[ring].query("t in (3, 5)")
vp = mid.drop("GM-SGM", level="method")["excess"] + 1
glue("ring_mid", f"{vp.min():.1f}-{vp.max():.1f}", display=False)
gms = mid.loc["GM-SGM"]
glue("ring_mid_gmsgm_path", f"{gms['vs Gaussian-path D*'].min() + 1:.1f}-{gms['vs Gaussian-path D*'].max() + 1:.1f}", display=False)
glue("ring_mid_gmsgm_own", f"{gms['excess'].min() + 1:.1f}-{gms['excess'].max() + 1:.1f}", display=False)
late = ex.loc[ring].query("t >= 10").drop(("GM-SGM", 30))["excess"]
glue("ring_late", f"{100 * late.max():.0f} %", display=False)
err_seed = errors.set_index(["data", "method", "t"])
glue("ring_gmsgm30", mean_ci(err_seed.loc[(ring, "GM-SGM", 30), "excess"]), display=False)
glue("wide_all", f"{100 * ex.loc[wide].drop(('GM-SGM', 30))['excess'].max():.0f} %", display=False)
glue("wide_gmsgm30", mean_ci(err_seed.loc[(wide, "GM-SGM", 30), "excess"]), display=False)
glue("wide_path", f"{100 * ex.loc[wide].loc['GM-SGM', 'vs Gaussian-path D*'].max():.0f} %", display=False)
wide_w = widths.xs(wide, level="data")
w20 = wide_w[wide_w.index.get_level_values("NFE budget") >= 20]
solver_rows = w20.index.get_level_values("method").isin(["GM-DDPM"]) & ~w20.index.get_level_values("sampler").isin(["ancestral"])
glue("wide_width", f"{w20[~solver_rows].min():.1f}-{w20[~solver_rows].max():.1f}", display=False)
glue("wide_width_exact", f"{floor.loc[wide, 'width']:.2f}", display=False)
glue("wide_width_gmddpm", f"{w20[solver_rows].max():.1f}", display=False)
low = ex.loc[d16].query("t in (1, 3)")["excess"] + 1
glue("d16_low", f"{low.min():.0f}-{low.max():.0f}", display=False)
kmean = kernels.groupby(["data", "kernel", "t"])["KL"].mean()
glue("kl_gauss_max", f"{kmean.xs('best Gaussian (exact)', level='kernel').max():.2f}", display=False)
glue("kl_ddpm_form", f"{kmean[d16, 'best DDPM kernel (exact)', 2]:.2f} at t = 2 at D = 16, "
     f"{kmean[ring, 'best DDPM kernel (exact)', 2]:.2f} on the ring", display=False)
glue("kl_trained", f"{kmean[d16, 'DDPM', 2]:.1f} and {kmean[ring, 'DDPM', 2]:.1f}", display=False)
pairs = B.kernel_difference(kernels, "SMD", "DDPM").set_index(["data", "t"])
glue("kl_smd_d16", ", ".join(
    f"{stats.fmt_pm(r['difference'], r['high'] - r['difference'], signed=True)} at t = {t}"
    for t, r in pairs.loc[d16].iterrows() if t in (2, 3, 10)), display=False)  # fmt: skip

# %% [markdown]
# ## What the picture says
#
# * **{claim}`X-1`.** At one budget, on three mixtures with exact answers, no idea helps
#   everywhere, and the two that the other chapters found wanting are wanting here too.
#   - *SMD* gives the one steady gain, and only at $D=16$: with its own ancestral sampler
#     it lowers SW2 at every NFE (by {glue:text}`smd_gain`; intervals clear of zero at
#     {glue:text}`smd_clear` evaluations); on both rings, and with DDIM or DPM-Solver
#     anywhere, there is no difference beyond the seeds. This matches {ref}`smd-tables`
#     (SMD helped at few ancestral steps, not with DDIM) and {ref}`smd-method`'s finding
#     that the trained latent does nothing: on these data the gain comes from the SMD
#     network as a whole, not from a mixture kernel, and "equal terms" here means the same
#     base network, budget and metric, not the same size: SMD's latent network and
#     hyper-layers add about half again the parameters on both networks (the cost tables).
#   - *GM-DDPM* ties with DDPM under its own Alg. 2 and is worse with both solvers in
#     {glue:text}`gmddpm_solvers`, as in {ref}`gmd-tables`; these cells are handicapped by
#     construction, since DDIM and DPM-Solver never remove the offsets (the exact GM-DDPM
#     model is far worse under them than under its own samplers, {ref}`gmd-samplers`), so
#     they measure the mismatch of the solvers with the offset chain rather than how well
#     GM-DDPM trains.
#   - *GM-SGM* helps where its paper says it should, with few iterations: at 10 PC
#     evaluations on all three data sets (SW2 {glue:text}`gmsgm_pc10`), and with 10 Heun
#     evaluations on the overlapping ring; with more evaluations it ties on the rings (but
#     {glue:text}`gmsgm_heun50_wide` with 50 Heun evaluations on the overlapping one) and
#     is worse at $D=16$ ({glue:text}`gmsgm_d16`, and with Heun at every budget), in line
#     with {ref}`gms-dimension`.
#   - *Teleportation* helps where it removes most of the work: at 10 evaluations it brings
#     SGM's Heun {glue:text}`tele_ring` on the separated ring and {glue:text}`tele_wide`
#     on the overlapping one (GM-SGM's by {glue:text}`tele_gmsgm_ring` on the separated
#     ring); elsewhere its changes are at most {glue:text}`tele_rest` in size. With
#     teleportation, GM-SGM and SGM are the best VE runs at 10 evaluations on both rings;
#     at $D=16$ GM-SGM + teleportation is worse than plain SGM.
#   - *On the 8x8 digits* the seeds spread FD-digits by tens (95 % half-widths of
#     {glue:text}`digits_half` at 200 samples; {glue:text}`digits_half_gmddpm` for GM-DDPM
#     with the solvers), so only large effects show: GM-DDPM is worse with every sampler
#     ({glue:text}`dig_gmddpm_alg2` with Alg. 2, {glue:text}`dig_gmddpm_solvers` with the
#     solvers), as on the mixtures and in {ref}`gmd-tables`; teleportation changes SGM's
#     Heun by {glue:text}`dig_tele50` at 50 evaluations ({glue:text}`dig_tele10` at 10),
#     and {glue:text}`dig_better` comparisons on the digits clear zero in favour of an
#     idea, about what chance gives at 95 %; SMD's ancestral sampler
#     ({glue:text}`dig_smd50` at 50) and GM-SGM ({glue:text}`dig_gmsgm_pc10` at 10 PC
#     evaluations) point the same way as on the mixtures without clearing the seeds'
#     spread. All methods stay far above the floor of {glue:text}`dig_floor`: the best are
#     SGM's Heun with teleportation at 10 evaluations ({glue:text}`dig_best_tele`) and
#     SMD's ancestral sampler at 50 ({glue:text}`dig_best_smd`). Heun's FD-digits rises
#     with NFE (SGM {glue:text}`dig_heun_sgm`, GM-SGM {glue:text}`dig_heun_gmsgm`) and its
#     recall falls ({glue:text}`dig_heun_recall`), a tendency only, as the seeds'
#     intervals overlap: following these networks' ODE more closely does not give better
#     digits.
#   - *Cost*: a training step of SMD costs {glue:text}`cost_mlp_SMD` times DDPM's on the
#     MLP and {glue:text}`cost_unet_SMD` times on the U-Net; GM-DDPM's
#     {glue:text}`cost_mlp_GM-DDPM` times on the MLP and {glue:text}`cost_unet_GM-DDPM` on
#     the U-Net (its classifier is a large share of a small MLP only); GM-SGM's
#     {glue:text}`cost_mlp_gmsgm` times SGM's (the tables above, measured in this
#     process).
#   - *Many comparisons*: these tables hold over a hundred paired intervals, and at 95 %
#     about one in twenty excludes zero by chance; an isolated "better" or "worse" is weak
#     evidence, and the statements above rest on patterns across data sets and budgets.
# * **{claim}`X-2`.** The exact answer shows what a ranking by one distance hides. On the
#   ring every run finds all eight modes but draws them {glue:text}`ring_width` times too
#   wide from 20 evaluations on, with every method, and {glue:text}`ring_width_ve10` times
#   at 10 evaluations with the VE samplers (PC and Heun; the width table above); at $D=16$
#   {glue:text}`lost_who` alone loses modes ({glue:text}`lost_modes` of the eight, in
#   {glue:text}`lost_runs` runs).
#   - The denoiser tables say where the width comes from: at the noise levels of the
#     modes' own scale ($\sigma\approx0.2$-$0.3$, $t=3, 5$) the DDPM, SMD, GM-DDPM and SGM
#     denoisers have {glue:text}`ring_mid` times the optimal error on the ring, and
#     GM-SGM's, against the Gaussian-path posterior mean its samplers use,
#     {glue:text}`ring_mid_gmsgm_path` times (its error on its own training noise is
#     {glue:text}`ring_mid_gmsgm_own` times); from $\sigma\approx0.7$ ($t=10$) on all are
#     within {glue:text}`ring_late` of the optimum (GM-SGM's own-loss excess at $t=30$
#     varies from seed to seed, {glue:text}`ring_gmsgm30`). With overlapping modes the
#     same networks are within {glue:text}`wide_all` of the optimum at every level but one
#     (GM-SGM at $t=30$, {glue:text}`wide_gmsgm30`; against the Gaussian path within
#     {glue:text}`wide_path`), and from 20 evaluations on the runs draw the modes at
#     {glue:text}`wide_width` against the exact samples' {glue:text}`wide_width_exact`
#     (GM-DDPM with the solvers up to {glue:text}`wide_width_gmddpm`): separated modes,
#     not the mixture as such, are what this budget does not learn. At $D=16$, where the
#     exact denoiser also projects onto each component's plane, the networks stay
#     {glue:text}`d16_low` times off at low noise.
#   - The reverse kernels say the same about SMD. At $T=50$ the exact reverse step is
#     Gaussian to within the Monte Carlo error on all three mixtures (the best Gaussian
#     kernel's KL is at most {glue:text}`kl_gauss_max`), so the premise of SMD, that a
#     Gaussian step cannot follow a multimodal posterior, does not bite at this chain
#     length; what separates DDPM's kernel from the exact step is its fixed variance
#     $\tilde\beta_t$ (the best kernel of DDPM's form: {glue:text}`kl_ddpm_form`) and, far
#     more, the network's mean (trained: {glue:text}`kl_trained`). SMD's kernel is closer
#     than DDPM's at $D=16$ ({glue:text}`kl_smd_d16`), where its samples are better, and
#     ties on both rings; but its mean hardly moves with $\eta$ (the spread above), so its
#     kernel is in effect one Gaussian: again the network, not a mixture kernel, makes the
#     difference, as {ref}`smd-method` found.
#
# **Limits.** One small MLP and one budget on the mixtures, one small U-Net and a short
# training run on the digits; MNIST is not in this benchmark (the Gaussian score
# chapters, e.g. {ref}`gs-learning-dynamics`, train on it); FD-digits is a small
# classifier's Fréchet distance, not FID; three seeds, so an interval needs a
# consistent sign to exclude zero, and on the digits only effects of tens of FD-digits
# are resolved. The `full` profile trains 20 times longer, with wider networks, five
# seeds and mixtures up to $D=256$; on the digits 20,000 steps of batch 128, $T=200$ and
# 1,797 samples per run.
