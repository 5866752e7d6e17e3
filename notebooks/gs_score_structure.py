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
# (gs-score-structure)=
# # What a trained network's score looks like (GS-6, GS-7, GS-8, GS-10)
#
# *Stored run: profile `ci`, the shared small networks of `gmdiff.zoo` (a digits U-Net and
# a 2-D mixture MLP, trained on 2 CPU cores) against exact scores; seeds 0-2 for the
# verdicts.*
#
# Sec. 4 of the Gaussian score paper {cite}`wang2024gaussian` compares the scores of
# pretrained EDM networks {cite}`karras2022edm` with the scores of idealised models fitted
# to the same training set: the isotropic model (Eq. 29), the Gaussian with the data's
# mean and covariance (Eq. 5), Gaussian mixtures (one mode per class, Eq. 7, or k-means
# modes, App. A.5) and the exact score of the training set itself, the delta mixture
# (Eq. 10). Four claims are tested here:
#
# * **GS-6** (Fig. 6): the fraction of unexplained variance of the network score,
#   Eq. 28 $\|s_\theta - s_\text{model}\|^2 / \|s_\theta\|^2$, is tiny for the Gaussian
#   at high noise, and at low noise the delta mixture explains the network worse than
#   the Gaussian and the GMM;
# * **GS-7** (Figs. 7, 15): the network's Heun trajectory follows the closed-form
#   Gaussian solution (Eq. 15) from the same $x_T$ early on, then diverges;
# * **GS-8** (Fig. 8C): the network's samples are closer to the Gaussian model's samples
#   than to the delta mixture's from the same $x_T$;
# * **GS-10** (Fig. 11): the score fields on the plane through three data points.
#
# **Scale.** The paper uses EDM's pretrained CIFAR-10, FFHQ-64 and AFHQv2-64 networks
# (about 56M parameters, $D = 3072$ or $12288$, 50k-70k training images). Here the network
# is the small EDM-preconditioned U-Net of `gmdiff.zoo.digits_edm`, trained on CPU on the
# 1,797 sklearn 8x8 digits ($D = 64$, pixels in $[-1, 1]$), and, as a control whose exact
# score is known, the MLP of `gmdiff.zoo.gmm_mlp` trained on a low-rank Gaussian mixture.
# Perceptual distances (LPIPS) need pretrained weights that are not available offline;
# GS-8 uses pixel MSE only.

# %% tags=["parameters"]
profile = "ci"
seed = 0
data_dir = None  # profile "full": the folder holding MNIST's train-images-idx3-ubyte
seeds = [0, 1, 2]  # the seeds the verdicts show: this run's, the others' stored runs
results_dir = ""  # where to store this seed's tables (results/seeds for the stored runs)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from gmdiff import plotting, results, runs, zoo
from gmdiff.analytic import Gaussian
from gmdiff.papers import gs_networks as gn
from gmdiff.schedules import EDM
from gmdiff.study import Study

plotting.style()
S = Study.open("gs_score_structure", profile, seed=seed, data_dir=data_dir)  # checks the data folder
cfg = S.sizes
x, labels, shape = gn.digits_training_set(S)
denoiser, _ = zoo.digits_edm(S)
net = gn.NetworkScore(denoiser, shape)
models = gn.idealised_models(x, labels, kmeans_ks=cfg["kmeans_ks"], seed=seed)
gauss = models["Gaussian"]
top = gauss.eigenvalues[:10].sqrt()
print(f"N = {x.shape[0]}, D = {x.shape[1]}, sqrt(lambda_max) = {top[0]:.2f}, "
      f"sqrt(tr Sigma) = {gauss.eigenvalues.sum().sqrt():.2f}")
gmm_name = next(m for m in models if m.startswith("GMM"))  # per class when labels exist
colour = {name: f"C{i}" for i, name in enumerate(models)}  # one colour per model in every figure
colour |= {"Gaussian (Eq. 15)": colour["Gaussian"], "Gaussian (exact moments)": colour["Gaussian"],
           "exact GMM": colour[gmm_name]}  # the same model, computed another way
print("idealised models:", *models, sep="\n  ")

# %% [markdown]
# ## GS-6: how much of the network score each idealised score explains
#
# As in the paper, the scores are compared at points drawn from
# $\mathcal N(0, \sigma^2 I)$ (left panel below). At small $\sigma$ those points lie near
# the origin, a mid-grey image, far from any digit; we therefore also compare at points of
# the noised training distribution, $y_i + \sigma\epsilon$ (right panel), where the
# network was trained. The table prints the mean of Eq. 28 over the query points.

# %%
sigmas = np.geomspace(cfg["sigma_min"], cfg["sigma_max"], cfg["n_sigmas"]).round(4).tolist()
# NBVAL_TOLERANCE rel=0.3 abs=2  (seeds 0-2 move these FUVs by up to 30%; CPU kernel paths by up to 20%, the step of two-digit rounding)
fuv = {q: gn.score_fuv_table(net, models, x, sigmas, cfg["n_queries"], seed, query=q)
       for q in ["noise", "data"]}


def fuv_pivot(t: pd.DataFrame) -> pd.DataFrame:
    return t.pivot(index="sigma", columns="model", values="FUV")[list(models)]


fuv_pivot(fuv["noise"]).map(lambda v: f"{v:.1e}")

# %% mystnb={"figure": {"caption": "The paper's Fig. 6, on digits: mean fraction of the network score's squared norm left unexplained by each idealised score, with its 25-75% range over query points (shaded), for queries from $\\mathcal N(0, \\sigma^2 I)$ (left) and from the noised data (right). Dotted: square roots of the ten largest covariance eigenvalues; dashed: FUV = 0.01.", "name": "fig-gs-structure-fuv"}, "image": {"alt": "Two log-log panels of FUV against the noise level, one line per idealised model with shaded quartile bands: queries from pure noise and from noised data."}}
fig, axs = plt.subplots(1, 2, figsize=(8.2, 4), sharey=True)
for ax, (q, title) in zip(axs, [("noise", r"queries $\sim\mathcal{N}(0,\sigma^2 I)$ (paper)"),
                                 ("data", r"queries $y_i + \sigma\epsilon$ (noised data)")]):
    for name, t in fuv[q].groupby("model", sort=False):
        ax.plot(t["sigma"], t["FUV"], "o-", ms=3, color=colour[name], label=name)
        ax.fill_between(t["sigma"], t["FUV q25"], t["FUV q75"], color=colour[name], alpha=0.15)
    for s in top:
        ax.axvline(float(s), color="grey", lw=0.5, ls=":")
    ax.axhline(0.01, color="k", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel=r"noise level $\sigma$", title=title)
axs[0].set_ylabel("fraction of unexplained variance (Eq. 28)")
fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9)
plt.show()

# %% [markdown]
# The table below lists the right panel of {numref}`fig-gs-structure-fuv` (queries from the noised
# data).

# %%
# NBVAL_TOLERANCE rel=0.3  (seeds 0-2 move these FUVs by up to 20%; CPU kernel paths by up to 6%)
fuv_pivot(fuv["data"]).map(lambda v: f"{v:.1e}")

# %%
def gs6_summary(t: pd.DataFrame) -> dict[str, object]:
    p = fuv_pivot(t)
    gmm = gmm_name
    hi = p.index > gn.PAPER["GS-6"]["sigma above which Gaussian FUV < 0.01"]
    lo = p.index < 0.2
    return {
        "sigma from which Gaussian FUV < 0.01": gn.explained_threshold(t, "Gaussian"),
        "max FUV gain of class GMM over Gaussian, sigma > 1.08": float((p["Gaussian"] - p[gmm])[hi].max()),
        "delta FUV > Gaussian FUV at all sigma < 0.2": bool((p["delta (training set)"] > p["Gaussian"])[lo].all()),
        "delta FUV > class GMM FUV at all sigma < 0.2": bool((p["delta (training set)"] > p[gmm])[lo].all()),
    }


# NBVAL_TOLERANCE rel=0.4 abs=0.0001  (seeds 0-2 move the GMM's FUV gain by up to 40%, the threshold sigma not at all)
paper6 = gn.PAPER["GS-6"]
gs6 = pd.DataFrame({
    "paper (EDM CIFAR-10/FFHQ/AFHQ)": [f"> {paper6['sigma above which Gaussian FUV < 0.01']}",
                                      f"< {paper6['max EV gain of 10-class GMM over Gaussian for sigma > 1.08']:.1e}",
                                      "yes", "yes"],
    **{f"ours, {q} queries": [f"{v:.3g}" if isinstance(v, float) else ("yes" if v else "no")
                              for v in gs6_summary(fuv[q]).values()] for q in fuv},
}, index=list(gs6_summary(fuv["noise"])))
gs6

# %% [markdown]
# The grid above steps $\sigma$ by a factor of 2, so it brackets the threshold between two
# of its points, and $\sqrt{\lambda_\text{max}}$ lies in that bracket. A finer grid of the
# Gaussian's FUV between $\sigma = 1$ and $3.2$ (the same network, query points and
# seed) settles on which side of $\sqrt{\lambda_\text{max}}$ the threshold lies:

# %%
# NBVAL_TOLERANCE rel=0.3  (as the FUV tables above; the threshold is a grid point and may move one step, 16 %)
lo_, hi_, n_ = cfg["fine_sigmas"]
fine = np.geomspace(lo_, hi_, n_).round(3).tolist()
fine_fuv = {q: gn.score_fuv_table(net, {"Gaussian": gauss}, x, fine, cfg["n_queries"], seed, query=q)
            for q in fuv}  # fmt: skip
fine_table = pd.DataFrame({f"Gaussian FUV, {q} queries": t.set_index("sigma")["FUV"] for q, t in fine_fuv.items()})
threshold = {q: gn.explained_threshold(t, "Gaussian") for q, t in fine_fuv.items()}
ratio = {q: v / float(top[0]) for q, v in threshold.items()}
glue("gs6_threshold", " and ".join(f"{v:.2f}" for v in threshold.values()), display=False)
glue("gs6_ratio", " and ".join(f"{v:.1f}" for v in ratio.values()), display=False)
for q in fine_fuv:
    print(f"{q} queries: Gaussian FUV < 0.01 from sigma = {threshold[q]:.2f} on,\n"
          f"{ratio[q]:.2f} times sqrt(lambda_max) = {float(top[0]):.2f}")
fine_table.map(lambda v: f"{v:.1e}")

# %% [markdown]
# The Gaussian explains more than 99% of the network score from $\sigma$ =
# {glue:text}`gs6_threshold` on (the paper's and the noised-data query points), that is
# {glue:text}`gs6_ratio` times $\sqrt{\lambda_\text{max}}$: at $\sqrt{\lambda_\text{max}}$
# to within the fine grid's step (16 %) and the FUV's noise, not clearly above it as the
# factor-2 grid suggested. The paper's threshold, 1.08, lies below
# $\sqrt{\lambda_\text{max}}$ of its datasets, which it calls a surprise; on the digits
# the threshold sits at $\sqrt{\lambda_\text{max}}$, so they neither show the surprise
# clearly nor contradict it. With the paper's query points the
# ten-class GMM improves on the Gaussian by at most {glue:text}`gs6_gain_noise` above
# $\sigma = 1.08$ across seeds 0-2 (paper: $< 2.5\times10^{-3}$; the seeds' table is in
# "Across seeds 0-2" below); at the noised data it gains up to {glue:text}`gs6_gain_data`, near
# $\sigma = 1.3$ for this seed. At low noise the exact training-set score (delta) explains
# the network worse than the Gaussian and the GMMs at both kinds of query point, as in the
# paper. At the paper's query points around the origin every model leaves more than the
# whole norm unexplained below $\sigma \approx 0.2$ (FUV > 1): there the network answers
# far from anything it was trained on; at the noised data the GMMs are the best models at
# every $\sigma < 1.3$.

# %% [markdown]
# ### The same test where the exact score is known
#
# The toy network of `gmdiff.zoo.gmm_mlp` is an MLP trained on a low-rank Gaussian
# mixture whose exact score we have. Its FUV against the exact mixture score measures how
# well it learned; against the moment-matched Gaussian and the isotropic model it shows
# the same high-noise/low-noise split as {numref}`fig-gs-structure-fuv`, now with the ground truth beside it.
# Queries are from the noised mixture.

# %%
# NBVAL_TOLERANCE rel=0.3 abs=0.002  (seeds 0-2 move these FUVs by up to 30%; CPU kernel paths by up to 10%)
mlp, _, gmm_true = zoo.gmm_mlp(S)
toy_net = gn.NetworkScore(mlp, (gmm_true.dim,))
toy_x = gmm_true.sample(cfg["toy_n_points"], torch.Generator().manual_seed(seed))
toy_models = {"exact GMM": gmm_true, "Gaussian (exact moments)": gn.gmm_moments(gmm_true),
              "isotropic": Gaussian.isotropic(gn.gmm_moments(gmm_true).mean)}
toy_fuv = gn.score_fuv_table(toy_net, toy_models, toy_x, sigmas, cfg["n_queries"], seed, query="data")
toy_fuv.pivot(index="sigma", columns="model", values="FUV")[list(toy_models)].map(lambda v: f"{v:.1e}")

# %% mystnb={"figure": {"caption": "The same measurement for the MLP trained on a Gaussian mixture with known score: FUV against the exact mixture score (how well the network learned), the Gaussian with the mixture's exact mean and covariance, and the isotropic model.", "name": "fig-gs-structure-toy"}, "image": {"alt": "Log-log plot of the MLP score's FUV against the noise level for three models, with a dashed line at 0.01."}}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, t in toy_fuv.groupby("model", sort=False):
    ax.plot(t["sigma"], t["FUV"], "o-", ms=3, color=colour[name], label=name)
ax.axhline(0.01, color="k", lw=0.8, ls="--")
ax.set(xscale="log", yscale="log", xlabel=r"noise level $\sigma$",
       ylabel="FUV of the MLP score (Eq. 28)",
       title=f"toy GMM: D = {gmm_true.dim}, {gmm_true.n_components} modes")
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# The control behaves as the argument predicts: the MLP matches the exact score to within
# 2% for $\sigma \ge 0.08$, the moment-matched Gaussian is indistinguishable from the
# exact score above $\sigma \approx 20$ and leaves 2% at $\sigma = 2.5$ and 25-90% below
# $\sigma = 1$. At $\sigma = 0.02$ the MLP's own error against the truth exceeds its
# distance to the Gaussian: the smallest noise levels are the hardest to learn.

# %% [markdown]
# ## GS-7: trajectories from the same $x_T$
#
# From the same starts $x_T \sim \mathcal N(0, 80^2 I)$ we run the network with EDM's Heun
# sampler on its 18 noise levels, record $x_t$ and $D(x_t)$, and compare with the
# closed-form Gaussian solution (Eqs. 15-16) at the same levels, and with the same Heun
# sampler run on the exact scores of the per-class GMM and of the delta mixture (the
# paper integrates the mixtures with RK4 instead). The error is the per-sample MSE over
# pixels, as in Fig. 7.

# %%
# NBVAL_TOLERANCE rel=0.2 abs=0.004  (seeds 0-2 move the final MSEs by up to 17%, the divergence step not at all)
gen = torch.Generator().manual_seed(seed)
x_T = EDM().prior_sample((cfg["n_trajectories"], x.shape[1]), gen, dtype=torch.float64)  # N(0, 80^2 I)
steps = cfg["heun_steps"]
traj = {"network": gn.heun_trajectory(net, x_T, steps)}
traj["Gaussian (Eq. 15)"] = gn.gaussian_trajectory(gauss, x_T, traj["network"].sigma)
traj[gmm_name] = gn.heun_trajectory(models[gmm_name].denoiser, x_T, steps)
traj["delta (training set)"] = gn.heun_trajectory(models["delta (training set)"].denoiser, x_T, steps)
others = {k: v for k, v in traj.items() if k != "network"}
dev = gn.trajectory_deviation(traj["network"], others)
div = gn.divergence_points(dev, threshold=gn.PAPER["GS-7"]["MSE threshold for 'close'"])
div["sigma there"] = div["sigma there"].round(3)
div["final MSE"] = div["final MSE"].map(lambda v: f"{v:.3g}")
div

# %% mystnb={"figure": {"caption": "The paper's Figs. 7 and 15: mean MSE between the network's Heun trajectory and each idealised model's trajectory from the same $x_T$, for the state (left) and the denoiser output (right), with the 25-75% range over starts; dashed: the paper's threshold 0.01. The shared start and the final sample ($\\sigma = 0$) are off the log axis; the final MSE is in the table above.", "name": "fig-gs-structure-trajectories"}, "image": {"alt": "Two log-log panels of the MSE to the network's trajectory against the noise level, one line per idealised model with quartile bands, for the state and the denoiser output."}}
fig, axs = plt.subplots(1, 2, figsize=(8.2, 4))
for ax, qty in zip(axs, ["x_t", "D"]):
    for name, t in dev[dev.quantity == qty].groupby("model", sort=False):
        t = t[(t["sigma"] > 0) & (t["step"] > 0)]  # step 0 is the shared start x_T
        ax.plot(t["sigma"], t["MSE"], "o-", ms=3, color=colour[name], label=name)
        ax.fill_between(t["sigma"], t["q25"], t["q75"], color=colour[name], alpha=0.15)
    ax.axhline(0.01, color="k", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel=r"noise level $\sigma_t$ (sampling: right to left)",
           ylabel=f"MSE to the network's {'$x_t$' if qty == 'x_t' else '$D(x_t)$'}")
    ax.invert_xaxis()
axs[0].set_title("state $x_t$ (Fig. 7)")
axs[1].set_title("denoiser output $D(x_t)$ (Fig. 15)")
fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9)
plt.show()

# %% mystnb={"figure": {"caption": "The paper's Fig. 8A: the denoiser output $D(x_t)$ at seven noise levels along one trajectory of the network (top) and of the Gaussian solution (bottom) from the same $x_T$.", "name": "fig-gs-structure-denoised"}, "image": {"alt": "Two rows of seven 8x8 grey images, the network's and the Gaussian model's denoised estimates, turning from a blur into a digit as the noise level falls."}}
show = [0, 4, 8, 10, 12, 14, 17]
fig, axs = plt.subplots(2, len(show), figsize=(1.15 * len(show), 2.9))
for row, name in enumerate(["network", "Gaussian (Eq. 15)"]):
    for col, i in enumerate(show):
        axs[row, col].imshow(traj[name].denoised[i, 0].reshape(shape[-2:]).numpy(), cmap=plotting.IMAGE_CMAP, vmin=-1, vmax=1)
        axs[row, col].set(xticks=[], yticks=[])
        if row == 0:
            axs[row, col].set_title(rf"$\sigma$={float(traj[name].sigma[i]):.2g}", fontsize=10)
    axs[row, 0].set_ylabel(name.split(" ")[0], fontsize=10)
plt.show()

# %% [markdown]
# The Gaussian solution stays within MSE 0.01 of the network's state down to
# $\sigma \approx 1.1$ (step 10 of 18) and then departs, ending at a per-pixel MSE of
# 0.11; the paper finds step 9 ($\sigma \approx 1.92$) for CIFAR-10. The network's
# denoiser output differs from the Gaussian's by about 0.01 at the very highest noise
# levels, a small learning error of the network where the target is nearly the data mean,
# and comes closest (0.005) near $\sigma \approx 5$. Unlike the paper, the delta-mixture
# trajectory does not leave the network's earlier than the Gaussian one: on 64-dimensional
# digits the training set's score is close to the Gaussian's down to
# $\sigma \approx 2$ (the far field of {ref}`gs-far-field`). It does end farther away.
#
# ## GS-8: whose samples are closest to the network's?

# %%
# NBVAL_TOLERANCE rel=0.2 abs=0.01  (seeds 0-2: share closer 59-67%, MSEs by up to 18%; CPU kernel paths by up to 4%)
samples = {k: v.sample for k, v in traj.items()}
dist = gn.sample_distance_table(samples, "network", seed)
close = gn.paired_closeness(samples, "network", "Gaussian (Eq. 15)", "delta (training set)")
(lo, hi), (dlo, dhi) = close["share CI"], close["difference CI"]
print(f"Gaussian sample closer to the network's than the delta sample for {close['share closer']:.0%} of the\n"
      f"{x_T.shape[0]} starts (95% CI {lo:.0%} to {hi:.0%});\nMSE(delta) - MSE(Gaussian), paired by start: "
      f"{close['mean difference']:.3f} (95% CI {dlo:.3f} to {dhi:.3f})")
dist.round(3)

# %% mystnb={"figure": {"caption": "The paper's Fig. 8B: samples from the same eight starts $x_T$ (columns) for the network and the three idealised models (rows).", "name": "fig-gs-structure-samples"}, "image": {"alt": "Grid of 8x8 digit samples, one row per model (the network and three idealised models) and one column per starting point."}}
n_show = 8
fig, axs = plt.subplots(len(samples), n_show, figsize=(1.0 * n_show, 1.1 * len(samples)))
for row, (name, s) in enumerate(samples.items()):
    for col in range(n_show):
        axs[row, col].imshow(s[col].reshape(shape[-2:]).numpy(), cmap=plotting.IMAGE_CMAP, vmin=-1, vmax=1)
        axs[row, col].set(xticks=[], yticks=[])
    axs[row, 0].set_ylabel(name.split(" (")[0].replace(" per ", "\nper "), fontsize=10)
plt.show()

# %% [markdown]
# From the same $x_T$ the Gaussian model's samples are closer to the network's (pixel MSE
# {glue:text}`gs8_mse_gauss` across seeds 0-2, which also change the network, the starts and
# the data order; the seeds' table is in "Across seeds 0-2" below) than the delta mixture's
# ({glue:text}`gs8_mse_delta`): the paired difference is {glue:text}`gs8_diff`, its 95%
# interval above zero in {glue:text}`gs8_above` runs. Counted start by start the Gaussian is
# closer for {glue:text}`gs8_share` of them, an interval that lies above 50% in
# {glue:text}`gs8_share_above` runs at this number of starts (its lower ends:
# {glue:text}`gs8_share_low`). The per-class GMM is
# closer still ({glue:text}`gs8_mse_gmm`). All three are far closer than unrelated samples
# (random pairing, {glue:text}`gs8_random`), so the start $x_T$ fixes much of the
# sample for every model, as the paper's Fig. 8B shows for images.

# %% [markdown]
# ## GS-10: score fields on the plane through three digits
#
# The plane through three training images of the same digit (coordinates are L2
# distances in the plane, origin at their centroid); the arrows are each score projected
# onto the plane, the colour its norm. The paper shows this for test images, which we do
# not hold out: the zoo network is trained on all 1,797 digits.

# %% mystnb={"figure": {"caption": "The paper's Fig. 11 at the highest noise level, $\\sigma = 2$: score fields of the network and four idealised models on the plane through three training images of the digit 2 (red dots); arrows show the direction of the projected score, the colour its norm (the scale differs between panels).", "name": "fig-gs-structure-plane-high"}, "image": {"alt": "Five panels of score fields on a plane, one per model: white arrows over a colour map of the score's norm, with three red dots at the training images."}}
idx = torch.arange(3) if labels is None else torch.nonzero(labels == cfg["plane_digit"])[:3, 0]
plane = gn.plane_through(x[idx])
field_models = {"network": net, **{k: models[k] for k in [f"GMM k-means {cfg['kmeans_ks'][-1]}", gmm_name, "Gaussian", "delta (training set)"]}}


def plot_plane_fields(sigma: float) -> None:
    """The score field of each of `field_models` on `plane` at noise level `sigma`."""
    fig, axs = plotting.panels(len(field_models), ncols=3, aspect=1.0)
    for ax, (name, m) in zip(axs, field_models.items()):
        f = {k: v.numpy() for k, v in gn.plane_field(m, plane, sigma, cfg["plane_grid"]).items()}
        ax.pcolormesh(f["u"], f["v"], f["norm"], cmap="viridis", shading="auto")
        ax.quiver(f["u"], f["v"], f["su"] / f["norm"], f["sv"] / f["norm"], color="w", scale=25, width=0.006)
        ax.plot(plane.anchors[:, 0].numpy(), plane.anchors[:, 1].numpy(), "o", color="r", ms=5)
        ax.set(title=name.split(" (")[0], aspect="equal")
    fig.suptitle(rf"score fields at $\sigma$ = {sigma:g}")
    fig.supxlabel("in-plane axis 1 (L2)")
    fig.supylabel("in-plane axis 2 (L2)")
    plt.show()


plot_plane_fields(cfg["plane_sigmas"][0])

# %% mystnb={"figure": {"caption": "As {numref}`fig-gs-structure-plane-high`, at $\\sigma = 0.3$.", "name": "fig-gs-structure-plane-mid"}, "image": {"alt": "Five panels of score fields on a plane at a middle noise level, one per model: white arrows over a colour map of the score's norm, with three red dots at the training images."}}
plot_plane_fields(cfg["plane_sigmas"][1])

# %% mystnb={"figure": {"caption": "As {numref}`fig-gs-structure-plane-high`, at $\\sigma = 0.1$.", "name": "fig-gs-structure-plane-low"}, "image": {"alt": "Five panels of score fields on a plane at a low noise level, one per model: white arrows over a colour map of the score's norm, with three red dots at the training images."}}
plot_plane_fields(cfg["plane_sigmas"][2])

# %% [markdown]
# At $\sigma = 2$ ({numref}`fig-gs-structure-plane-high`) all fields are single basins near the three digits' centroid, the
# network's slightly shifted. At $\sigma = 0.3$ ({numref}`fig-gs-structure-plane-mid`) the network's field has basins at the
# training images with a low-norm valley joining two of them, between the piecewise
# structure of the delta mixture (one basin per image, sharp boundaries) and the single
# basin of the Gaussian; the ten-mode GMMs sit in between. The paper's vanishing field on
# the whole triangle spanned by the three points (at $\sigma \approx 0.1$, for test images)
# is not visible at this $\sigma$ and scale.

# %% [markdown]
# ## Across seeds 0-2
#
# Seeds 1 and 2 ran this chapter with `-p seed 1 -y "seeds: [1]" -p results_dir
# results/seeds` (and 2; each trains its own U-Net and MLP and redraws the query points
# and the starts $x_T$); their tables are stored in
# `results/seeds/gs_score_structure-seed*.json` and stacked here with this run's: GS-6's
# summary (the GMM's largest gain over the Gaussian above $\sigma = 1.08$, the Gaussian's
# 99% threshold, whether the delta mixture explains the network worst below
# $\sigma = 0.2$ at both kinds of query point) and GS-8's paired comparison with the sample
# distances (pixel MSE; [95% intervals]); first, the training adequacy of every seed's two
# networks (`zoo.adequacy`: the share of the random initialisation left in the EMA weights
# that are used, and the training loss's last window, its ratio to the best window and its
# relative fall over the second half of training).

# %%
# NBVAL_TOLERANCE rel=0.4 abs=0.01  (this seed's row: as the GS-6 and GS-8 tables above; the stored seeds do not move)
tables = {"gs6": pd.DataFrame([{"query": q, **gs6_summary(t)} for q, t in fuv.items()]),
          "gs8": pd.DataFrame([gn.closeness_row(close)]), "distances": dist,
          "adequacy": zoo.adequacy(S)}  # fmt: skip
if results_dir:  # a stored seed run
    results.save_results(results.seed_file("gs_score_structure", seed, results_dir),
                         results.run_meta(profile, seed=seed), **tables)  # fmt: skip
per_seed = results.with_stored_seeds("gs_score_structure", tables, seed, seeds, profile)
g6 = per_seed["gs6"].set_index(["seed", "query"])
gain = g6["max FUV gain of class GMM over Gaussian, sigma > 1.08"].unstack()
delta_worst = g6[[c for c in g6 if c.startswith("delta FUV >")]].all(axis=1).groupby("seed").all()
g8 = per_seed["gs8"].set_index("seed")
d = per_seed["distances"]
mse = d.pivot(index="seed", columns="model", values="MSE same x_T")[list(samples)[1:]]
glue("gs6_gain_noise", gn.sci_span(gain["noise"]), display=False)
glue("gs6_gain_data", gn.sci_span(gain["data"]), display=False)
glue("gs6_delta", f"{delta_worst.sum()} of {len(delta_worst)}", display=False)
glue("gs8_share", gn.span(g8["share closer"] * 100, "{:.0f}") + "%", display=False)
glue("gs8_share_low", gn.span(g8["share CI low"] * 100, "{:.0f}") + "%", display=False)
glue("gs8_share_above", f"{(g8['share CI low'] > 0.5).sum()} of {len(g8)}", display=False)
glue("gs8_diff", gn.span(g8["mean difference"], "{:.3f}"), display=False)
glue("gs8_above", f"{(g8['difference CI low'] > 0).sum()} of {len(g8)}", display=False)
for key, model in zip(["gauss", "gmm", "delta"], mse):
    glue(f"gs8_mse_{key}", gn.span(mse[model], "{:.2f}"), display=False)
glue("gs8_random", gn.span(d["MSE random pairing"], "{:.2f}"), display=False)
display(runs.adequacy_table(per_seed["adequacy"].to_dict("records"), ["model", "seed"]))


def interval(v: pd.Series, lo: pd.Series, hi: pd.Series, fmt: str) -> pd.Series:
    return pd.Series([f"{fmt.format(a)} [{fmt.format(b)}, {fmt.format(c)}]" for a, b, c in zip(v, lo, hi)], v.index)


print("GS-6 per seed: the ten-class GMM's FUV gain over the Gaussian above the threshold,\nthe threshold, the delta's low-noise rank")
display(pd.DataFrame({
    "GMM gain, noise queries": gain["noise"].map(lambda v: f"{v:.1e}"),
    "GMM gain, data queries": gain["data"].map(lambda v: f"{v:.1e}"),
    "Gaussian FUV < 0.01 from sigma": g6["sigma from which Gaussian FUV < 0.01"].unstack()["noise"].round(2),
    "delta worst at sigma < 0.2": delta_worst.map({True: "yes", False: "no"}),
}))  # fmt: skip
print("GS-8 per seed: Gaussian-model samples against delta-model samples,\ndistance to the network's")
pd.DataFrame({
    "Gaussian closer": interval(g8["share closer"], g8["share CI low"], g8["share CI high"], "{:.0%}"),
    "MSE: delta - Gaussian": interval(g8["mean difference"], g8["difference CI low"], g8["difference CI high"], "{:.3f}"),
    **{f"MSE {m.split(' (')[0]}": mse[m].round(3) for m in mse},
    "MSE random pairs": d.groupby("seed")["MSE random pairing"].agg(lambda v: gn.span(v, "{:.2f}")),
})  # fmt: skip

# %% [markdown]
# ## Verdict
#
# Scale: 1,797 digits of 8x8 pixels and a 0.65M-parameter U-Net trained for 1,000 steps on
# CPU, against the paper's pretrained EDM networks on CIFAR-10, FFHQ-64 and AFHQv2-64.
#
# **{claim}`GS-6`**, with one difference. The Gaussian explains > 99% of the network
# score at high noise (from $\sigma$ = {glue:text}`gs6_threshold`; paper: from 1.08), a ten-class GMM adds
# only {glue:text}`gs6_gain_noise` there across seeds 0-2 (paper's query points; paper:
# $< 2.5\times10^{-3}$), and at low noise the exact training-set score explains the
# network worse than the Gaussian and the GMMs (in {glue:text}`gs6_delta` runs, at both
# kinds of query point). The
# difference: on the digits the 99% threshold sits at $\sqrt{\lambda_\text{max}}$ (to
# within a 16 % grid step), where the paper's lies below it.
#
# **{claim}`GS-7`**: the Gaussian part holds, the delta part does not at this scale. The
# network's trajectory stays within MSE 0.01 of the closed-form Gaussian solution down to
# $\sigma \approx 1.1$ (paper: 1.92 on CIFAR-10) and then diverges. The delta-mixture
# trajectory does not diverge earlier than the Gaussian's here (paper: below
# $\sigma \approx 15$), though it ends farther from the network's.
#
# **{claim}`GS-8`** (pixel MSE only). From the same $x_T$, Gaussian-model samples are
# closer to the network's than delta-mixture samples (MSE {glue:text}`gs8_mse_gauss`
# against {glue:text}`gs8_mse_delta` across seeds 0-2; the paired difference's 95% interval
# lies above zero in {glue:text}`gs8_above` runs).
# LPIPS is not computed: its pretrained weights are not available offline.
#
# **{claim}`GS-10`**: the figure is regenerated, its key feature only in part. The score
# fields on the plane through three training images show a single Gaussian-like basin at
# $\sigma = 2$ for all models and, at $\sigma = 0.3$, multi-basin structure in the network
# between the GMM and delta fields. At $\sigma = 0.1$, where the paper sees the network's
# field vanish inside the triangle of the three images, the delta field has one basin per
# image and the network's field is weak along a band joining the images through two edges
# of the triangle, not inside it.
