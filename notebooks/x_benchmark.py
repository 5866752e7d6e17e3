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
# **The contenders** (`gmdiff.benchmark`; every model is trained through the book's
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

# %%
import matplotlib.pyplot as plt
import pandas as pd

from gmdiff import benchmark as B
from gmdiff import plotting
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
cost.round(2)

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

# %%
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

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
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())


fig, axs = plotting.panels(2 * len(specs), ncols=2, aspect=0.7)
for row, name in enumerate(specs):
    for col, (family, methods) in enumerate(families.items()):
        ax = axs[2 * row + col]
        plot_vs_nfe(ax, table[(table["data"] == name) & table["method"].isin(methods)], "SW2", cfg["nfes"])
        ax.axhline(floor.loc[name, "SW2"], color="k", lw=0.8, label="exact samples")
        ax.set(ylabel="SW2", title=f"{name}: {family}")
for col in range(2):
    axs[-2 + col].legend(*axs[col].get_legend_handles_labels(), fontsize=7, ncols=2,
                        loc="upper center", bbox_to_anchor=(0.5, -0.25))  # fmt: skip
plt.show()

# %% [markdown]
# SW2 against NFE, mean over the three seeds with 95 % t-intervals (the points of one NFE
# are set slightly apart); the black line is the floor, exact samples against the same
# references. Methods by colour, samplers by line and marker. GM-DDPM's ancestral sampler
# has one point, at NFE $=T=50$.

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
# over the three seeds. "helps" / "hurts" only where the interval excludes 0.

# %%
# NBVAL_TOLERANCE abs=0.005 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: printed numbers moved <= 0.002)
table["width error"] = (table["width"] - table["data"].map(floor["width"])).abs()
order = [label for label, _, _ in B.IDEAS]


def changes(value, tab=table, digits=3):
    """The paired differences of `value` as 'mean [low, high]', one row per idea and data set."""
    d = B.paired(tab, value)
    d["idea"] = pd.Categorical(d["idea"], order, ordered=True)
    f = f"+.{digits}f"
    d["cell"] = [f"{m:{f}} [{lo:{f}}, {hi:{f}}]" for m, lo, hi in d[["difference", "low", "high"]].values]
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
    [["SW2", "width error"], ["helps", "no difference", "hurts"]]), fill_value=0)  # fmt: skip
print("(data, NFE) cells where an idea helps / makes no difference / hurts, beyond the seeds' 95% CI")
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


def mean_ci(v, digits=2):
    m, _, hi = B.t_interval(v.tolist())
    return f"{m:.{digits}f} ± {hi - m:.{digits}f}"


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
diff["cell"] = [f"{m:.2f} ± {hi - m:.2f}" for m, hi in diff[["difference", "high"]].values]
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
print(f"{len(img_trained)} trained U-Nets; training cost on the digits:")
B.step_cost(B.METHODS, img["data"]["8x8 digits"], img_budget, img["cost_steps"], img["cost_repeats"]).round(2)

# %%
# NBVAL_TOLERANCE abs=1 rel=0.02  (retrained under the ATEN default and the AVX2 kernels: FD-digits moved <= 4 (0.3%), the half-widths by one unit)
images = B.benchmark(img_trained, img["data"], img["nfes"], img["n"], cfg["teleport_scale"], score)
img_floor = B.floor_scores(img["data"], img["n"], seeds, score)[["fd", "precision", "recall"]].mean()
by = images.groupby(["method", "sampler", "NFE budget"])
print(f"FD-digits, mean ± 95% CI half-width over seeds (floor, real digits: {img_floor['fd']:.0f});")
print("GM-DDPM's Alg. 2 takes all T = 50 steps")
by["fd"].agg(mean_ci, digits=0).unstack().fillna("-")

# %%
# NBVAL_TOLERANCE abs=0.03  (retrained under the ATEN default kernels: means and half-widths moved <= 0.02; one unit above that)
print(f"precision and recall (k = 3), mean ± 95% CI half-width over seeds (floor: {img_floor['precision']:.2f}, {img_floor['recall']:.2f})")
pd.concat({v: by[v].agg(mean_ci).unstack() for v in ("precision", "recall")}, axis=1).fillna("-")

# %%
fig, axs = plotting.panels(2, ncols=2, aspect=0.8)
for ax, (family, methods) in zip(axs, families.items(), strict=True):
    plot_vs_nfe(ax, images[images["method"].isin(methods)], "fd", img["nfes"])
    ax.axhline(img_floor["fd"], color="k", lw=0.8, label="real digits")
    ax.set(ylabel="FD-digits", title=f"8x8 digits: {family}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncols=2)
plt.show()

# %% [markdown]
# FD-digits against NFE, mean over the three seeds with 95 % t-intervals; the black line
# is the floor. Below: 36 samples of seed 0 at 50 evaluations, each method with its own
# paper's sampler, from the same $x_T$, beside real digits.

# %%
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
img_ideas = changes("fd", images, digits=0).rename(columns={"cell": "FD-digits", "NFE budget": "NFE"})
img_ideas.set_index(["idea", "NFE"]).sort_index()[["FD-digits", "effect"]]

# %% [markdown]
# ## What the picture says
#
# * **{claim}`X-1`.** At one budget, on three mixtures with exact answers, no idea helps
#   everywhere, and the two that the other chapters found wanting are wanting here too.
#   *SMD* gives the one steady gain, and only at $D=16$: with its own ancestral sampler it
#   lowers SW2 at every NFE (by 0.06-0.11; intervals clear of zero at 20 and 50
#   evaluations, touching it at 10); on both rings, and with DDIM or DPM-Solver anywhere,
#   there is no difference beyond the seeds. This matches {ref}`smd-tables` (SMD helped
#   at few ancestral steps, not with DDIM) and {ref}`smd-method`'s finding that the
#   trained latent does nothing: on these data the gain comes from the SMD network as a
#   whole, not from a mixture kernel, and "equal terms" here means the same base network,
#   budget and metric, not the same size: SMD's latent network and hyper-layers add about
#   half again the parameters on both networks (the cost tables). *GM-DDPM* ties with DDPM
#   under its own Alg. 2 and is worse with both solvers in all 18 cells (+0.04 to +1.05),
#   as in {ref}`gmd-tables`; these cells are handicapped by construction, since DDIM and
#   DPM-Solver never remove the offsets (the exact GM-DDPM model is far worse under them
#   than under its own samplers, {ref}`gmd-samplers`), so they measure the mismatch of the
#   solvers with the offset chain rather than how well GM-DDPM trains.
#   *GM-SGM* helps where its paper says it should, with few iterations: at 10 PC
#   evaluations on all three data sets (SW2 -0.33 separated ring, -0.98 overlapping
#   ring, -0.79 $D=16$), and with 10 Heun evaluations on the overlapping ring; with more
#   evaluations it ties on the rings (but +0.08 with 50 Heun evaluations on the
#   overlapping one) and is worse at $D=16$ (+0.14 to +0.30, and with Heun at every
#   budget), in line with {ref}`gms-dimension`. *Teleportation* helps where it removes
#   most of the work: at 10 evaluations it brings SGM's Heun from 0.34 to 0.19 on the
#   separated ring and from 0.44 to 0.14 on the overlapping one (GM-SGM's by 0.14 on the
#   separated ring); elsewhere its changes lie inside the seeds' intervals or are at most
#   0.03. With
#   teleportation, GM-SGM and SGM are the best VE runs at 10 evaluations on both rings;
#   at $D=16$ GM-SGM + teleportation is worse than plain SGM.
#   *On the 8x8 digits* the seeds spread FD-digits by tens (95 % half-widths of 15-100 at
#   200 samples; over 300 for GM-DDPM), so only large effects show: GM-DDPM is worse with every sampler (+185
#   with Alg. 2, +1030 to +1100 with the solvers), as on the mixtures and in
#   {ref}`gmd-tables`; teleportation lowers SGM's Heun by 5 [1, 9] at 50 evaluations
#   (−12 [−25, +1] at 10, inside the spread), the one interval of the 21 comparisons on
#   the digits that clears zero in favour of an idea, about what chance gives at 95 %; SMD's ancestral sampler (−34 [−77, +10] at 50)
#   and GM-SGM (−40 [−90, +9] at 10 PC evaluations) point the same way as on the
#   mixtures without clearing the seeds' spread. All methods stay far above the floor of
#   19: the best are SGM's Heun with teleportation at 10 evaluations (141) and SMD's
#   ancestral sampler at 50 (151). Heun's FD-digits rises with NFE (SGM 154 to 192,
#   GM-SGM 163 to 243) and its recall falls (0.90 to 0.79), a tendency only, as the
#   seeds' intervals overlap: following these networks' ODE more closely does not give
#   better digits.
#   *Cost*: a training step of SMD costs 1.8 times DDPM's on both networks; GM-DDPM's
#   1.7 times on the MLP but close to DDPM's on the U-Net (its classifier is a large share
#   of a small MLP only); GM-SGM's the same as SGM's (the tables above, measured in this
#   process).
#   *Many comparisons*: these tables hold over a hundred paired intervals, and at 95 %
#   about one in twenty excludes zero by chance; an isolated "helps" or "hurts" is weak
#   evidence, and the statements above rest on patterns across data sets and budgets.
# * **{claim}`X-2`.** The exact answer shows what a ranking by one distance hides. On the
#   ring every run finds all eight modes but draws them about three times too wide from 20
#   evaluations on, with every method, and up to about twice that at 10 evaluations with
#   the VE samplers (PC and Heun; the width table above); at $D=16$ GM-SGM is the only method that loses modes (one
#   or two of the eight, in 12 of its 27 runs). The denoiser tables say where the width
#   comes from: at the noise levels of the modes' own scale ($\sigma\approx0.2$-$0.3$,
#   $t=3, 5$) the DDPM, SMD, GM-DDPM and SGM denoisers have 2.1-2.6 times the optimal
#   error on the ring, and GM-SGM's, against the Gaussian-path posterior mean its samplers
#   use, 2.3-2.4 times (its error on its own training noise is smaller, 1.2-1.8 times);
#   from $\sigma\approx0.7$ ($t=10$) on all are within 5 % of the optimum (GM-SGM's
#   own-loss excess at $t=30$ varies from seed to seed, $0.42\pm0.86$). With overlapping
#   modes the same networks are within 2 % of the optimum at every level but one (GM-SGM
#   at $t=30$, $0.14\pm0.36$; against the Gaussian path within 7 %), and from 20
#   evaluations on most runs draw the modes at 0.9-1.1 against the exact samples' 0.91
#   (GM-DDPM with the solvers 1.3): separated modes, not the mixture as such, are what
#   this budget does not learn. At $D=16$, where the exact denoiser also projects
#   onto each component's plane, the networks stay 2-7 times off at low noise.
#   The reverse kernels say the same about SMD. At $T=50$ the exact reverse step is
#   Gaussian to within the Monte Carlo error on all three mixtures (the best Gaussian
#   kernel's KL is at most 0.01), so the premise of SMD, that a Gaussian step cannot
#   follow a multimodal posterior, does not bite at this chain length; what separates
#   DDPM's kernel from the exact step is its fixed variance $\tilde\beta_t$ (the best
#   kernel of DDPM's form: 3.09 at $t=2$ at $D=16$, 1.10 on the ring) and, far more, the
#   network's mean (trained: 20.8 and 2.5). SMD's kernel is closer than DDPM's at $D=16$
#   ($-2.2\pm1.7$ at $t=2$, $-0.61\pm0.15$ at $t=3$, $-0.09\pm0.03$ at $t=10$), where its
#   samples are better, and ties on both rings; but its mean hardly moves with $\eta$
#   (the spread above), so its kernel is in effect one Gaussian: again the network, not a
#   mixture kernel, makes the difference, as {ref}`smd-method` found.
#
# **Limits.** One small MLP and one budget on the mixtures, one small U-Net and a short
# training run on the digits; MNIST is not in this benchmark (the Gaussian score
# chapters, e.g. {ref}`gs-learning-dynamics`, train on it); FD-digits is a small
# classifier's Fréchet distance, not FID; three seeds, so an interval needs a
# consistent sign to exclude zero, and on the digits only effects of tens of FD-digits
# are resolved. The `full` profile trains 20 times longer, with wider networks, five
# seeds and mixtures up to $D=256$; on the digits 20,000 steps of batch 128, $T=200$ and
# 1,797 samples per run.
