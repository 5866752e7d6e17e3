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
# (smd-method)=
# # Soft mixture denoising on a toy: does the trained kernel become a mixture? (SMD-4, SMD-5, SMD-8)
#
# *Stored run: profile `ci`, a 2-D ring of 8 Gaussians, $T$ = 5 and 10, MLPs 3x128 trained
# 1,500 steps, seeds 0-2.*
#
# SMD {cite}`li2024smd` replaces DDPM's Gaussian reverse step by a continuous mixture,
# $p(x_{t-1}\mid x_t) = \int \mathcal N(x_{t-1}; \mu_\theta(x_t, z_t), \sigma_t^2 I)\,
# p(z_t \mid x_t)\,dz_t$ with $z_t = g_\varphi(\eta, x_t, t)$, $\eta \sim \mathcal N(0, I)$
# (Eqs. 11-13), and promises that this family can drive the local errors to zero on
# Gaussian-mixture data (**SMD-4**, Thm. 4.1). The model is trained by Alg. 1 with the
# loss of Eq. 15 and sampled by Alg. 2 (**SMD-5**); drawing several $\eta$ per training
# example costs linearly more time and should improve quality (**SMD-8**, Fig. 2b).
#
# A family that *can* represent the true step is not yet a trained model that *does*. On a
# 2-D ring of 8 Gaussians with few steps, where the exact step $q(x_{t-1}\mid x_t)$ of
# Prop. 3.1 is known ({ref}`smd-theory`), we train DDPM and SMD networks of the same base
# size with the library's trainer and measure, at fixed $x_t$, how far each trained kernel
# is from the exact step, and how much SMD's kernel moves with $\eta$.

# %% tags=["parameters"]
profile = "ci"
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from gmdiff import data, nets, plotting
from gmdiff.papers import smd
from gmdiff.profiles import get_profile
from gmdiff.runs import load_or_train_many

torch.set_num_threads(1)
plotting.style()
pd.set_option("display.precision", 3)
cfg = get_profile("smd_method", profile)
ring = data.ring2d(8, 2.0, 0.1)  # configs/smd_toy.yaml's data
cfg

# %% [markdown]
# ## SMD-5: the model, and where it follows the authors' code
#
# `gmdiff.nets.SMDNet` is an eps network with a latent: $g_\varphi$ is a network of the
# base family on $[x_t, \eta]$ (an MLP here, a small U-Net for images) whose output $z_t$
# drives two residual hyper-layers, one after the stem and one before the output layer,
# each $h \mapsto h + U A_2 A_1 V h$ with $A_k = \mathrm{softplus}(s_k) I + v_k v_k^\top/\sqrt L$
# and $v_k$ generated from $(z_t, t)$. Following the released code
# ([vanderschaarlab/smd](https://github.com/vanderschaarlab/smd), `nn.py`, `HyperNet`): the
# residual form with rank-one generated factors plus a positive multiple of the identity,
# two layers at those two places, two factors each, $g_\varphi$ a smaller U-Net for images
# with the latent width of their CIFAR-10 script (100), and a fresh $\eta$ at every network
# call in training and sampling. Departures (each argued in the `gmdiff.nets.smd`
# docstring): $v_k$ passes through $\tanh$ (their linear $v_k$ makes the output grow like
# $|x_t|^5$, and our unclipped samplers overflowed), the rank-one term is scaled by
# $1/\sqrt L$, the hyper-network also sees $t$ (Eq. 12's $\tilde\theta(z_t, t, \phi)$;
# theirs sees $z_t$ only), our base networks are Ho et al.'s U-Net and an MLP rather than
# lucidrains' U-Net, and we train eps-prediction on DDPM's schedules without clipping, as
# the paper writes, where their released runs use v-prediction, a sigmoid schedule and
# $x_0$ clipping. Alg. 2 is our DDPM ancestral sampler with an $\eta$ drawn from the
# sampler's generator at each call, so SMD runs through the same trainer, samplers and
# command line as every other model (`gmdiff train --config configs/smd_toy.yaml`).
#
# Parameter counts of the paper-sized configurations (built on the meta device). The SMD
# paper states no count; DDPM's published one is 35.7M.

# %%
rows = []
for name in ["smd_ddpm_cifar10", "smd_digits", "smd_toy_mlp"]:
    c = nets.smd_param_counts(nets.get_config(name))
    rows.append({"config": name, **{k: f"{v / 1e6:.3f}M" for k, v in c.items()}})
rows.append({"config": "ddpm_cifar10 (published, Ho et al. 2020)", "total": "35.7M"})
pd.DataFrame(rows).fillna("").set_index("config")

# %% [markdown]
# The CIFAR-10 SMD network adds 1.06M parameters (3 %) to DDPM's 35.75M, most of them in
# $g_\varphi$. A unit test builds it and takes one training step on the CPU.

# %% [markdown]
# ## SMD-4: trained kernels against the exact reverse step
#
# For $T = 5$ and $10$ (cosine schedule with $\beta_t \le 0.9$; see `configs/smd_toy.yaml`)
# we train a DDPM network (MLP 3 x 128, eps loss) and an SMD network with the same base,
# each for the same number of steps from seed `seed`, and a third variant, SMD trained with
# the best of 4 $\eta$ draws per example (`reduction="min"`, *not* the paper's loss; see
# below). For each step $t \ge 2$ (the last step, onto the data, adds no noise) and 128
# draws $x_t \sim q(x_t)$ shared by all rows, the table gives the KL from the exact step to
# each kernel (Monte Carlo over 128 exact draws of $x_{t-1}$; SMD's mixture density from
# 256 $\eta$ draws), beside two exact references: the best Gaussian (any mean and
# covariance; its KL is $\mathcal M_t$) and the best DDPM kernel (exact posterior mean with
# the sampler's variance $\tilde\beta_t$), which is what a perfectly trained DDPM network
# reaches.

# %%
kinds = {
    "DDPM": dict(kind="ddpm"),
    "SMD (Eq. 15)": dict(kind="smd"),
    "SMD, min of 4 eta": dict(kind="smd", n_eta=4, reduction="min"),
}
grid = [(T, label) for T in cfg["Ts"] for label in kinds]
bank_cfgs = [
    smd.run_config(T=T, steps=cfg["steps"], batch_size=cfg["batch"], seed=seed, **kinds[label])
    for T, label in grid
]  # fmt: skip
bank = smd.trained_many(bank_cfgs)  # cached; the missing ones trained side by side
runs = {T: ({label: bank[grid.index((T, label))][:2] for label in kinds},
            bank[grid.index((T, "DDPM"))][2]) for T in cfg["Ts"]}  # fmt: skip
tables = {
    T: smd.kernel_table(nets, ring, sch, n_x=cfg["n_x"], n_y=cfg["n_y"],
                        n_eta=cfg["n_eta_eval"], seed=seed)
    for T, (nets, sch) in runs.items()
}  # fmt: skip
kl = pd.concat(tables, names=["T"]).reset_index(level=0)

# %% [markdown]
# **Training adequacy** of these networks (`Run.adequacy`): the share of the random
# initialisation left in the EMA they are evaluated with (EDM's EMA ramp: none), the loss
# of the last log window against the best (1.00: not risen) and its relative fall over the
# second half of training (near 0: a plateau).

# %%
# NBVAL_TOLERANCE rel=0.05 abs=0.02  (twice the measured: figures moved by <= 0.01 under ATEN_CPU_CAPABILITY=default)
fits = load_or_train_many([(c, "smd") for c in bank_cfgs])  # cached: loads them
adequacy = pd.DataFrame(
    [{"T": T, "kernel": label, **run.adequacy()} for (T, label), run in zip(grid, fits, strict=True)]
).set_index(["T", "kernel"])
adequacy.rename(columns={"ema_init_share": "EMA share of init", "final_loss": "final loss"}).round(
    {"EMA share of init": 3, "final loss": 3, "final/best": 2, "last-half drop": 2}
)

# %%
# NBVAL_TOLERANCE abs=0.05  (measured: KL moves <= 0.023 across three CPU kernel paths)
order = ["best Gaussian (exact)", "best DDPM kernel (exact)", "DDPM", "SMD (Eq. 15)",
         "SMD, min of 4 eta"]  # fmt: skip
wide = kl.pivot_table(index=["T", "t"], columns="kernel", values="KL")[order]
wide.round(3)

# %% [markdown]
# How much does each trained kernel's mean move with $\eta$ at a fixed $x_t$
# ($\mathrm{tr}\,\mathrm{Cov}_\eta[\mu(x_t, \eta)]$, averaged over $x_t$), against the
# spread of the exact step's component means that a mixture kernel would have to reproduce?

# %%
# NBVAL_TOLERANCE abs=0.04  (twice the measured: spreads moved by <= 0.02 under ATEN_CPU_CAPABILITY=default with the EMA ramp; <= 0.01 across three paths before it)
spread = kl[kl["kernel"].isin(order[2:])].pivot_table(
    index=["T", "t"], columns="kernel", values="eta spread"
)[order[2:]]
between = kl.groupby(["T", "t"])["posterior between-mode spread"].first()
spread["exact between-mode spread"] = between
spread.map("{:.1e}".format)

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.2))
k10 = kl[kl["T"] == max(cfg["Ts"])]
for i, name in enumerate(order):
    g = k10[k10["kernel"] == name]
    ax.errorbar(g["t"], g["KL"], yerr=g["KL stderr"], marker="o", ms=4, label=name, color=f"C{i}")
ax.set(yscale="log", xlabel="step t", ylabel=r"KL(exact step $\|$ kernel) (nats)",
       title=f"T = {max(cfg['Ts'])}: per-step KL, mean over $x_t$ (seed {seed})")  # fmt: skip
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# **What the paper's loss does to $\eta$.** The SMD network trained with Eq. 15 ends up
# ignoring $\eta$: its mean moves with $\eta$ by at most $7 \times 10^{-4}$ in seeds 0, 1
# and 2 (the chapter shows seed `seed`; seeds 1 and 2 ran with `-p seed 1` and `2`), where
# the exact step's component means spread by 0.02 to 0.7, and its per-step KL is within
# seed-to-seed variation of the DDPM network's (lower at some steps, higher at others).
# This is what Eq. 15 asks for. $\eta$ is drawn
# independently of $(x_0, \epsilon)$, so for every $x_t$ and every latent $z$ the squared
# error $\mathbb E\|\epsilon - \hat\epsilon(x_t, z)\|^2$ is minimised by the same
# $\hat\epsilon = \mathbb E[\epsilon\mid x_t]$, DDPM's optimum, whatever $z$ is. The
# expectation over $\eta$ sits outside the Gaussian log-likelihood (a Jensen bound on the
# mixture's likelihood, tight only for a kernel that ignores $z$), so the objective never
# rewards a kernel that uses $z$, and Thm. 4.1's mixture is not what Alg. 1 trains
# towards. Most of the distance to 0 is the Gaussian form, not network error: with an EMA
# that holds none of the initialisation (EDM's ramp; the earlier run's EMA held 22 % of
# it), the trained DDPM kernel sits close to the best exact DDPM kernel at $T = 5$, and
# the best Gaussian kernel of any mean and covariance is still far from 0 at $t = 2, 3$.
#
# The same architecture trained with the best of 4 draws, a winner-takes-all objective
# that does reward diversity, spreads its means over $\eta$ (by roughly half to four fifths
# of the exact spread at $T = 5$) and lowers the KL at every step at $T = 5$ far below the
# best exact DDPM kernel, in all three seeds, which no Gaussian kernel with DDPM's variance
# can do; at $T = 10$ it is below the trained DDPM kernel at every step (in one seed tied
# at the last).
# So the family can represent much of the mixture (Thm. 4.1's expressiveness holds by
# construction: the exact step is a mixture of Gaussians the hyper-layers can select); the
# paper's loss does not train it to.
#
# **Samples.** Sliced Wasserstein-2 distance from 2,000 samples (ancestral, all $T$
# steps) to fresh data, with the exact GMM denoiser sampled the same way and a second data
# draw as floors:

# %%
# NBVAL_TOLERANCE abs=0.07  (measured: SW2 moves <= 0.033 across three CPU kernel paths)
sw = pd.DataFrame({
    T: smd.toy_sample_distance(runs[T][0], ring, runs[T][1], n=cfg["n_samples"], seed=seed)
    for T in cfg["Ts"]
}).T.rename_axis("T")  # fmt: skip
sw.round(3)

# %% [markdown]
# All trained models are above the floor (1,500 training steps; the adequacy table shows
# the loss still falling over the second half). With the EMA fixed, no kernel samples
# consistently better than DDPM's: SMD trained with Eq. 15 is worse than DDPM or tied at
# $T = 5$ in every seed and at $T = 10$ better in two seeds of three (the earlier run's gain for SMD,
# which we had put down to its larger network, came with an EMA that still held 22 % of
# the initialisation); the winner-takes-all variant, whose kernel does spread, is mixed
# too: a better per-step KL does not carry over to samples at this training length.
#
# **{claim}`SMD-4`** (2-D ring, $T = 5, 10$, seeds 0-2): trained as the
# paper says, the SMD kernel is not a mixture, and its per-step KL stays at the DDPM
# network's, far from the zero that Thm. 4.1 promises. **{claim}`SMD-5`**: the model,
# Algs. 1-2 and Eq. 15 are implemented and run through the library's trainer, samplers
# and CLI, but Eq. 15's optimum ignores the latent (errata in {ref}`smd-theory` and the
# ledger).

# %% [markdown]
# ## SMD-8: more $\eta$ draws per training step (Fig. 2b)
#
# Time per training step against the number of $\eta$ draws, measured in this process
# (the library's trainer, one thread, median of 3 rounds of 20 steps), as a ratio to one
# draw, and a straight line fitted to the four times:

# %%
# NBVAL_TOLERANCE abs=0.9  (measured: ratios moved <= 0.43 over five runs, loaded CPU)
base = smd.run_config("smd", T=5, batch_size=cfg["batch"], seed=seed)
secs = smd.step_seconds(base, cfg["n_etas_time"], cfg["time_steps"], cfg["time_repeats"])
timing = pd.DataFrame({"n_eta": list(secs), "seconds": list(secs.values())})
slope, icpt = np.polyfit(timing["n_eta"], timing["seconds"], 1)
timing["time ratio"] = timing["seconds"] / secs[1]
timing["straight-line fit, ratio"] = (icpt + slope * timing["n_eta"]) / secs[1]
timing.drop(columns="seconds").set_index("n_eta").round(2)

# %% [markdown]
# And quality against the number of draws (Eq. 15, mean over draws, $T = 5$): the summed
# per-step KL over $t = 2..5$ and the largest $\eta$ spread.

# %%
# NBVAL_TOLERANCE abs=0.01  (measured: no change across three CPU kernel paths)
rows = []
for k in cfg["n_etas_train"]:
    run = smd.run_config(
        "smd", T=5, steps=cfg["steps"], batch_size=cfg["batch"], seed=seed, n_eta=k
    )
    net, den, sch = smd.trained(run)
    tab = smd.kernel_table({"SMD": (net, den)}, ring, sch, n_x=cfg["n_x"], n_y=cfg["n_y"],
                           n_eta=cfg["n_eta_eval"], seed=seed)  # fmt: skip
    tab = tab[tab["kernel"] == "SMD"]
    rows.append(
        {"n_eta": k, "sum of KL": tab["KL"].sum(), "max eta spread": tab["eta spread"].max()}
    )
out = pd.DataFrame(rows).set_index("n_eta")
out["sum of KL"] = out["sum of KL"].round(2)
out.assign(**{"max eta spread": out["max eta spread"].map("{:.1e}".format)})

# %% [markdown]
# From one to four draws the summed KL does not move (at most 0.01 in seeds 0, 1 and 2),
# and the $\eta$ spread stays below $10^{-3}$: the extra draws average the gradient over
# more network evaluations per step; they do not make the kernel a mixture. The time per
# step grows along a straight line with an intercept (the work that does not depend on
# the number of draws), as Fig. 2b reports.
#
# **{claim}`SMD-8`**: cost linear in the number of draws (ratio 2.4 to 2.6 at 8
# draws in seeds 0-2, at this size); no quality gain at 4 draws, and saturation not tested
# beyond 4 draws.
