"""GM-DDPM's model, loss, samplers and configs (GM-DDPM paper, Algs. 1-5): the exact model
of a GM-DDPM on Gaussian-mixture data against brute-force enumeration of the paths, the
offset laws against the convolution of :func:`offset_sum`, the samplers against DDPM's and
against the prior they promise, the loss through the Trainer and the CLI, and the
paper-sized network."""

from __future__ import annotations

import itertools
import math
from functools import partial
from pathlib import Path

import pytest
import torch

from gmdiff import samplers
from gmdiff.analytic.gm_ddpm import (
    ExactGMDDPM,
    gamma_matrix,
    gamma_total,
    mean_from_eps,
    offset_coefficients,
    offset_laws,
    offset_sum,
    reverse_variances,
    sample_marginal,
)
from gmdiff.cli import main
from gmdiff.config import load_config
from gmdiff.data import isotropic_gmm, ring2d
from gmdiff.losses import gm_ddpm_loss
from gmdiff.nets import GMDDPMNet, VPPrecond, build_net, count_params, get_config
from gmdiff.noise import GM_DDPM_BASE, OffsetMixtureNoise
from gmdiff.runs import loss_of as _loss
from gmdiff.runs import models_of as _models
from gmdiff.runs import schedule_of as _schedule
from gmdiff.samplers.base import call_denoiser
from gmdiff.samplers.gm_ddpm import STRATEGIES, mixture_prior
from gmdiff.schedules import DiscreteVP, denoiser_to_eps
from gmdiff.train import TrainConfig, Trainer

F64 = torch.float64
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# Offset laws (recursion) vs the convolution of offset_sum
# --------------------------------------------------------------------------------------


def _recursion(schedule, noise, scale=lambda a: math.sqrt(a)):
    """offset_laws' recursion written out with exact atoms, the scale of S_{t-1} pluggable
    (a planted error replaces sqrt(alpha_t) by alpha_t)."""
    c, p = noise.values, noise.probs
    v, w = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64)
    out = []
    for b in schedule.betas.tolist():
        v = (scale(1 - b) * v[:, None] + math.sqrt(b) * c[None]).reshape(-1)
        w = (w[:, None] * p[None]).reshape(-1)
        out.append((v, w))
    return out


@pytest.mark.parametrize("lam", [0.2, 1.0])
def test_offset_laws_match_offset_sum_and_a_planted_scale_fails(lam):
    sch, noise = DiscreteVP(torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)), OffsetMixtureNoise(lam)
    laws = offset_laws(sch, noise, resolution=0.0)
    for t in range(1, 5):
        ref = offset_sum(offset_coefficients(sch, t), noise.values, noise.probs, 0.0)
        assert torch.allclose(laws[t].values, ref.values, atol=1e-12)
        assert torch.allclose(laws[t].weights, ref.weights, atol=1e-12)
    for t, (v, w) in enumerate(_recursion(sch, noise), start=1):  # moments of all K^t paths
        assert abs(float((w * v).sum()) - float(laws[t].mean())) < 1e-12
        assert abs(float((w * v**2).sum() - (w * v).sum() ** 2) - float(laws[t].var())) < 1e-12
    bad = _recursion(sch, noise, scale=lambda a: a)[-1]
    var_bad = float((bad[1] * bad[0] ** 2).sum() - (bad[1] * bad[0]).sum() ** 2)
    assert abs(var_bad / float(laws[4].var()) - 1) > 0.05


def test_offset_laws_with_merging_keep_mean_and_variance():
    sch, noise = DiscreteVP.cosine(T=20), OffsetMixtureNoise(1.0)
    exact = gamma_matrix(sch)  # Var S_t = sum_j gamma_{t,j} Var(c)
    var_c = float((noise.probs * noise.values**2).sum() - (noise.probs * noise.values).sum() ** 2)
    for t, law in enumerate(offset_laws(sch, noise, resolution=0.25)):
        assert abs(float(law.var()) - var_c * float(exact[t].sum())) < 1e-9
        assert abs(float(law.weights.sum()) - 1) < 1e-12


# --------------------------------------------------------------------------------------
# The exact model vs brute-force enumeration of every path
# --------------------------------------------------------------------------------------


def brute_force(x, n, data, schedule, noise, coef=None):
    """E[eps | x_n] and p(i_n | x_n) by enumerating every data component and every path
    i_1..i_n (K^n of them), with the closed-form coefficients sqrt(gamma_{n,j}) of Eq. 3."""
    coef = offset_coefficients(schedule, n) if coef is None else coef
    ab, g = float(schedule.alpha_bar[n]), 1 - float(schedule.alpha_bar[n])
    u = noise.unit_vector(x[:1])
    covs = torch.einsum("kdr,kr,ker->kde", data.U, data.lam, data.U)
    logw, eps_terms, last = [], [], []
    for path in itertools.product(range(noise.K), repeat=n):
        s = float((coef * noise.values[list(path)]).sum())
        lp = float(sum(math.log(noise.probs[i]) for i in path))
        for m in range(data.n_components):
            cov = ab * covs[m] + g * torch.eye(x.shape[1], dtype=F64)
            mean = math.sqrt(ab) * data.means[m] + s * u
            dist = torch.distributions.MultivariateNormal(mean, cov)
            logw.append(data.log_weights[m] + lp + dist.log_prob(x))
            eps_terms.append(math.sqrt(g) * torch.linalg.solve(cov, (x - mean).T).T)
            last.append(path[-1])
    post = torch.softmax(torch.stack(logw, 1), 1)  # (B, paths * M)
    eps = (post[..., None] * torch.stack(eps_terms, 1)).sum(1)
    p = torch.zeros(x.shape[0], noise.K, dtype=F64)
    p.index_add_(1, torch.tensor(last), post)
    return eps, p


@pytest.mark.parametrize("n", [1, 2, 3])
def test_exact_model_matches_brute_force_and_a_planted_coefficient_fails(n):
    sch, noise = DiscreteVP.cosine(T=3), OffsetMixtureNoise(1.0)
    data = isotropic_gmm(torch.tensor([[1.0, 0.0], [-0.5, 0.8]], dtype=F64), 0.3)
    model = ExactGMDDPM(data, sch, noise, resolution=0.0)
    x, _, _ = sample_marginal(data.sample(64, gen(n)), n, sch, noise, gen(10 + n))
    eps_ref, p_ref = brute_force(x, n, data, sch, noise)
    c = torch.full((64,), n - 1.0, dtype=F64)
    assert torch.allclose(model(x, c), eps_ref, atol=1e-9)
    assert torch.allclose(model.logits(x, c).exp(), p_ref, atol=1e-9)
    # planted: the offsets weighted by gamma_{n,j} instead of sqrt(gamma_{n,j})
    eps_bad, p_bad = brute_force(x, n, data, sch, noise, coef=offset_coefficients(sch, n) ** 2)
    assert (eps_bad - eps_ref).abs().max() > 1e-3 or (p_bad - p_ref).abs().max() > 1e-3


def test_exact_model_at_lam_zero_is_the_gaussian_mixture_denoiser():
    """lam = 0 is DDPM: eps* = (x_t - sqrt(ab) E[x_0 | x_t]) / sqrt(1 - ab) from the data's
    own closed-form denoiser, and the classifier returns the prior omega."""
    sch, data = DiscreteVP.cosine(T=10), ring2d()
    model = ExactGMDDPM(data, sch, OffsetMixtureNoise(0.0))
    x = torch.randn(200, 2, generator=gen(0), dtype=F64)
    for n in (1, 5, 10):
        a, s = float(sch.alpha(torch.tensor(n))), float(sch.sigma(torch.tensor(n)))
        d = data.denoiser(x / a, s / a)
        c = torch.full((200,), n - 1.0, dtype=F64)
        assert torch.allclose(model(x, c), denoiser_to_eps(d, x, s, a), atol=1e-9)
        p = model.logits(x, c).exp()
        assert torch.allclose(p, OffsetMixtureNoise(0.0).probs.expand(200, -1), atol=1e-9)


# --------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------


def _exact(lam, T=10):
    sch, data = DiscreteVP.cosine(T=T), ring2d()
    return sch, data, VPPrecond(ExactGMDDPM(data, sch, OffsetMixtureNoise(lam)), sch)


def test_strategy_ddpm_is_the_library_ddpm_sampler():
    sch, _, d = _exact(0.5)
    x_T = torch.randn(300, 2, generator=gen(1), dtype=F64)
    a = samplers.gm_ddpm(d, sch, x_T, sch.T, generator=gen(2), strategy="ddpm")
    b = samplers.ddpm(d, sch, x_T, sch.T, generator=gen(2))
    assert torch.allclose(a, b, atol=1e-10)


def test_at_lam_zero_every_deterministic_choice_of_offsets_is_ddpm():
    sch, _, d = _exact(0.0)
    x_T = torch.randn(100, 2, generator=gen(1), dtype=F64)
    out = [
        samplers.gm_ddpm(d, sch, x_T, sch.T, generator=gen(2), strategy=s)
        for s in ("standard", "ddpm", "keep_mu")
    ]
    assert torch.allclose(out[0], out[1], atol=1e-10) and torch.allclose(out[1], out[2], atol=1e-10)


def test_mixture_prior_has_the_covariance_of_alg2_line1():
    sch, noise = DiscreteVP.cosine(T=10), OffsetMixtureNoise(1.0)
    x = mixture_prior(torch.randn(200_000, 3, generator=gen(0), dtype=F64), sch, noise)
    u = torch.ones(3, dtype=F64)
    e_c2 = float((noise.probs * noise.values**2).sum())
    g_T = 1 - float(sch.alpha_bar[-1])
    want = torch.eye(3, dtype=F64) + g_T * e_c2 * torch.outer(u, u)
    assert (torch.cov(x.T) - want).abs().max() < 0.05  # sampling error ~ 0.01
    bad = torch.eye(3, dtype=F64) + e_c2 * g_T * torch.eye(3, dtype=F64)  # planted: diagonal
    assert (torch.cov(x.T) - bad).abs().max() > 0.5


def test_exact_standard_sampler_recovers_the_ring_at_lam_zero():
    """lam = 0: Alg. 2 with the exact model is exact DDPM; its samples sit on the ring
    (a known answer: radius 2, std 0.1 per mode)."""
    sch, _data, d = _exact(0.0, T=20)
    x = samplers.gm_ddpm(
        d, sch, torch.randn(2000, 2, generator=gen(3), dtype=F64), 20, generator=gen(4)
    )
    r = x.norm(dim=1)
    assert abs(float(r.mean()) - 2.0) < 0.05 and float(r.std()) < 0.2


def test_sampler_checks_and_every_strategy_runs():
    sch, _, d = _exact(0.2)
    x_T = torch.randn(16, 2, generator=gen(1), dtype=F64)
    for s in STRATEGIES:
        assert torch.isfinite(
            samplers.gm_ddpm(d, sch, x_T, sch.T, generator=gen(0), strategy=s)
        ).all()
    with pytest.raises(ValueError, match="steps must be T = 10"):
        samplers.gm_ddpm(d, sch, x_T, 5)
    with pytest.raises(ValueError, match="strategy must be one of"):
        samplers.gm_ddpm(d, sch, x_T, 10, strategy="argmax")
    with pytest.raises(ValueError, match="needs 'noise'"):
        samplers.gm_ddpm(lambda x, s: x, sch, x_T, 10, strategy="ddpm")
    assert "gm_ddpm" in samplers.SAMPLERS


# --------------------------------------------------------------------------------------
# Network, loss, Trainer, CLI
# --------------------------------------------------------------------------------------


def test_loss_terms_targets_and_determinism():
    sch = DiscreteVP.cosine(T=20)
    net = build_net(get_config("gm_ddpm_toy_mlp", lam=1.0), seed=0)
    x0 = ring2d().sample(64, generator=gen(0)).float()
    out = gm_ddpm_loss(net, x0, sch, generator=gen(5))
    again = gm_ddpm_loss(net, x0, sch, generator=gen(5))
    assert set(out) == {"eps", "classifier", "loss"}
    assert torch.equal(out["loss"], again["loss"])
    assert torch.allclose(out["loss"], out["eps"] + out["classifier"])
    # the classifier starts near uniform: cross-entropy about log K
    assert abs(out["classifier"].item() - math.log(7)) < 0.5
    # the eps target is the Gaussian part of x_n (Eq. 3), redrawn here with the same stream
    g = gen(5)
    n = torch.randint(1, 21, (64,), generator=g)
    x_n, eps, paths = sample_marginal(x0, n, sch, net.noise, g)
    manual = ((net(x_n, n - 1) - eps) ** 2).mean()
    assert torch.allclose(manual, out["eps"], atol=1e-6)
    ce = torch.nn.functional.cross_entropy(net.logits(x_n, n - 1), paths[torch.arange(64), n - 1])
    assert torch.allclose(ce, out["classifier"], atol=1e-6)
    half = gm_ddpm_loss(net, x0, sch, generator=gen(5), classifier_weight=0.5)
    assert torch.allclose(half["classifier"], 0.5 * out["classifier"])


def test_trainer_lowers_both_terms_on_the_toy():
    sch = DiscreteVP.cosine(T=20)
    net = build_net(get_config("gm_ddpm_toy_mlp", lam=1.0), seed=0)
    data = ring2d()
    cfg = TrainConfig(steps=300, batch_size=256, lr=2e-3, log_every=300, device="cpu")
    loss = partial(gm_ddpm_loss, schedule=sch)
    x0 = data.sample(2048, generator=gen(9)).float()
    before = gm_ddpm_loss(net, x0, sch, generator=gen(1))
    trainer = Trainer(net, loss, lambda k, g: data.sample(k, generator=g).float(), cfg)
    trainer.fit()
    after = gm_ddpm_loss(trainer.model, x0, sch, generator=gen(1))
    assert after["eps"] < 0.8 * before["eps"]
    assert after["classifier"] < before["classifier"] - 0.05


def test_paper_sized_network_takes_a_training_step_on_cpu():
    """DDPM's CIFAR-10 U-Net (35,746,307 parameters, Ho et al. 2020 App. B) plus the
    classifier MLP 2 x 256 on 3 x 32 x 32 + 32 inputs; one Trainer step at batch 2."""
    cfg = get_config("gm_ddpm_cifar10")
    head = (3 * 32 * 32 + 32) * 256 + 256 + 256 * 256 + 256 + 256 * 7 + 7
    assert count_params(cfg) == 35_746_307 + head
    torch.manual_seed(0)
    net = GMDDPMNet(cfg)
    data = torch.randn(2, 3, 32, 32, generator=gen(0)).clamp(-1, 1)
    train = TrainConfig(steps=1, batch_size=2, lr=2e-4, log_every=1, device="cpu")
    trainer = Trainer(net, partial(gm_ddpm_loss, schedule=DiscreteVP.linear()), data, train)
    before = trainer.model.classifier[0].weight.detach().clone()
    (rec,) = trainer.fit()
    assert math.isfinite(rec["loss"])
    assert not torch.equal(trainer.model.classifier[0].weight, before)


def test_shipped_configs_build_their_pieces():
    for name in ("gm_ddpm_toy.yaml", "gm_ddpm_cifar10.yaml"):
        cfg = load_config(CONFIGS / name)
        sch = _schedule(cfg)
        trained, denoiser, _net_cfg = _models(cfg, sch)
        assert isinstance(trained, GMDDPMNet) and isinstance(denoiser, VPPrecond)
        assert cfg.sample.sampler == "gm_ddpm" and cfg.sample.steps == sch.T
        assert _loss(cfg, sch).func is gm_ddpm_loss
    paper = load_config(CONFIGS / "gm_ddpm_cifar10.yaml")
    assert (paper.schedule.options["T"], paper.model.overrides["lam"]) == (1000, 0.2)


def test_cli_refuses_the_gm_ddpm_loss_on_another_net():
    cfg = load_config(CONFIGS / "gm_ddpm_toy.yaml", ["model.net=toy_mlp", "model.overrides={}"])
    with pytest.raises(ValueError, match="not one"):
        _models(cfg, _schedule(cfg))


def test_cli_train_then_sample_with_every_sampler(tmp_path, capsys):
    cfg = str(CONFIGS / "gm_ddpm_toy.yaml")
    base = ["--config", cfg, "--set", f"out_dir={tmp_path}"]
    assert main(["train", *base, "--set", "train.steps=20", "--set", "train.ckpt_every=20"]) == 0
    runs = [[f"sample.options.strategy={s}"] for s in STRATEGIES] + [
        ["sample.sampler=ddim", "sample.steps=10", "sample.options={}"],
        ["sample.sampler=dpm_solver_pp", "sample.steps=10", "sample.options={}"],
    ]
    first = None
    for sets in runs:
        args = [x for s in ["sample.n=50", *sets] for x in ("--set", s)]
        assert main(["sample", *base, *args]) == 0
        x = torch.load(tmp_path / "samples.pt", weights_only=True)["samples"]
        assert x.shape == (50, 2) and torch.isfinite(x).all()
        first = x if first is None else first
    assert main(["sample", *base, "--set", "sample.n=50"]) == 0  # Alg. 2 again: reproducible
    assert torch.equal(torch.load(tmp_path / "samples.pt", weights_only=True)["samples"], first)
    assert main(["evaluate", *base]) == 0
    capsys.readouterr()


# --------------------------------------------------------------------------------------
# The chapters' helpers (gmdiff.papers.gm_ddpm)
# --------------------------------------------------------------------------------------


def test_marginal_and_posterior_checks_pass_and_fail_on_the_printed_forms():
    from gmdiff.papers import gm_ddpm as P

    sch, noise = DiscreteVP.linear(T=200, beta_1=1e-3, beta_T=0.05), OffsetMixtureNoise(1.0)
    x0 = torch.tensor([3.0, 2.0], dtype=F64)
    good = P.marginal_check(x0, sch, noise, [20, 60], 3000, 0)
    assert (good[["z_mean", "z_var"]].abs().to_numpy() < 4).all() and (good.ks_p > 1e-3).all()
    bad = P.marginal_check(x0, sch, noise, [20, 60], 3000, 0, x0_scale=lambda a: a)
    assert (bad.ks_p < 1e-6).all()  # Eq. 22 as printed
    post = P.posterior_check(x0, sch, noise, [5, 60], 3000, 0)
    assert (post.z_mean.abs() < 4).all() and (post.eq9_gap < 1e-12).all()
    assert ((post.var_ratio - 1).abs() < 0.1).all()
    printed = P.posterior_check(x0, sch, noise, [60], 3000, 0, printed_eq29=True)
    assert printed.z_mean.abs().iloc[0] > 10  # Eq. 29 as printed


def test_expected_mse_matches_simulation_and_psnr_falls_with_lambda():
    from gmdiff.papers import gm_ddpm as P

    sch = DiscreteVP.linear()
    x0 = torch.rand(4000, 1, 4, 4, generator=gen(0), dtype=F64) * 2 - 1
    for lam, t in ((0.0, 300), (1.0, 300), (1.0, 800)):
        noise = OffsetMixtureNoise(lam)
        x_t, _, _ = sample_marginal(x0, t, sch, noise, gen(1))
        sim = float(((x_t - x0) ** 2).mean())
        assert abs(sim / P.expected_mse(x0, sch, noise, t) - 1) < 0.05
    # planted: the offsets' second moment left out at lam = 1 misses by ~ lambda^2 gamma_t
    noise = OffsetMixtureNoise(1.0)
    x_t, _, _ = sample_marginal(x0, 300, sch, noise, gen(1))
    no_offsets = P.expected_mse(x0, sch, OffsetMixtureNoise(0.0), 300)
    assert float(((x_t - x0) ** 2).mean()) / no_offsets > 1.3


def test_toy_config_is_the_shipped_file_with_lam_steps_and_seed():
    from gmdiff.papers import gm_ddpm as P

    cfg = P.toy_config(1.0, 7, 3)
    assert (cfg.model.overrides["lam"], cfg.train.steps, cfg.train.seed) == (1.0, 7, 3)
    assert cfg.loss.name == "gm_ddpm" and cfg.data.name == "ring2d"


@pytest.mark.parametrize("solver", ["ddim", "dpm_solver_pp"])
def test_ode_solvers_with_the_exact_model_recover_the_ring_at_lam_zero_only(solver):
    """The known answer: at lam = 0 the exact model is DDPM's, and DDIM / DPM-Solver on it
    land on the ring (radius 2); at lam = 1 the offsets the eps-model leaves unexplained are
    carried through the deterministic solve and the samples leave the ring."""
    radii = []
    for lam in (0.0, 1.0):
        sch, _, d = _exact(lam, T=20)
        x_T = torch.randn(1000, 2, generator=gen(5), dtype=F64)
        x = samplers.SAMPLERS[solver](d, sch, x_T, 10, generator=gen(6))
        radii.append(x.norm(dim=1))
    assert abs(float(radii[0].median()) - 2.0) < 0.05
    assert float((radii[0] - 2).abs().mean()) < 0.15
    assert float((radii[1] - 2).abs().mean()) > 0.5


# --------------------------------------------------------------------------------------
# The reverse variance: Eq. 30 or Eq. 34
# --------------------------------------------------------------------------------------

SKEW = (0.1, 0.4, 0.05, 0.2, 0.05, 0.15, 0.05)  # E[mu_base] = 0.735: |E mu|^2 of Eq. 34 is live
READING_KW = {"shared": {}, "unit": {"direction": "unit"}, "per_pixel": {"per_coordinate": True}}


def eq34_by_hand(betas: torch.Tensor, t: int, mus: torch.Tensor, probs) -> tuple[float, float]:
    """(sigma-tilde_t^2, the bracket / D) from the last line of Eq. 34, per coordinate,
    for the means ``mus`` (K, D) written out; gammas as the products of Eq. 3."""
    b = betas.tolist()

    def g(s: int, j: int) -> float:  # gamma_{s,j}
        return b[j - 1] * math.prod(1 - b[k - 1] for k in range(j + 1, s + 1))

    g_prev, g_t = sum(g(t - 1, j) for j in range(1, t)), sum(g(t, j) for j in range(1, t + 1))
    roots = sum(math.sqrt(g(t - 1, j)) for j in range(1, t))
    w = torch.as_tensor(probs, dtype=F64)
    e_norm2 = float((w * (mus**2).sum(1)).sum())  # E_k |mu_k|^2
    norm_e2 = float(((w[:, None] * mus).sum(0) ** 2).sum())  # |E_k mu_k|^2
    D = mus.shape[1]
    bracket = (g_prev * e_norm2 + (roots**2 - g_prev) * norm_e2) / D
    beta, alpha = b[t - 1], 1 - b[t - 1]
    return beta * g_prev / g_t + beta**2 / (beta + alpha * g_prev) ** 2 * bracket, bracket


def written_means(reading: str, lam: float, D: int) -> torch.Tensor:
    """mu_k (K, D) of each reading (per-pixel: the 1-D problem of one coordinate, D = 1)."""
    c = lam * torch.tensor(GM_DDPM_BASE, dtype=F64)[:, None]
    if reading == "per_pixel":
        return c
    return c * torch.ones(1, D, dtype=F64) / (math.sqrt(D) if reading == "unit" else 1.0)


@pytest.mark.parametrize("reading", ["shared", "unit", "per_pixel"])
def test_eq34_variance_is_the_papers_formula_and_eq30_the_posterior_variance(reading):
    sch = DiscreteVP.linear(20, 1e-3, 0.2)
    like = torch.zeros(1, 1, 2, 2, dtype=F64)
    noise = OffsetMixtureNoise(0.7, GM_DDPM_BASE, SKEW, **READING_KW[reading])
    tilde = reverse_variances(sch, noise, like, "eq34")
    post = reverse_variances(sch, noise, like, "eq30")
    mus = written_means(reading, 0.7, 4)
    for t in range(1, sch.T + 1):
        want, _ = eq34_by_hand(sch.betas, t, mus, SKEW)
        assert math.isclose(float(tilde[t]), want, rel_tol=1e-12, abs_tol=1e-15), t
        ab = torch.cumprod(1 - sch.betas.to(F64), 0)
        ab_prev = float(ab[t - 2]) if t > 1 else 1.0
        eq30 = float(sch.betas[t - 1]) * (1 - ab_prev) / (1 - float(ab[t - 1]))
        assert math.isclose(float(post[t]), eq30, rel_tol=1e-12, abs_tol=1e-15), t
    assert float(tilde[1]) == 0.0 and (tilde[2:] > post[2:]).all()


@pytest.mark.parametrize("reading", ["shared", "per_pixel"])
def test_eq34_bracket_is_the_prior_second_moment_of_the_earlier_offsets(reading):
    """Monte Carlo: E|sum_{j<t} sqrt(gamma_{t-1,j}) mu_{i_j}|^2 / D over paths drawn as the
    loss draws them equals the bracket of Eq. 34; the bracket with the variance instead of
    the second moment (|E sum|^2 subtracted) does not."""
    sch, t, n = DiscreteVP.linear(20, 1e-3, 0.2), 12, 20_000
    noise = OffsetMixtureNoise(0.7, GM_DDPM_BASE, SKEW, **READING_KW[reading])
    x0 = torch.zeros(n, 1, 2, 2, dtype=F64)
    x, eps, _ = sample_marginal(x0, t - 1, sch, noise, gen(3))
    offsets = x - float(gamma_total(sch)[t - 1].sqrt()) * eps
    m2 = (offsets**2).flatten(1).mean(1)  # |offsets|^2 / D per sample
    _, bracket = eq34_by_hand(sch.betas, t, written_means(reading, 0.7, 4), SKEW)
    se = float(m2.std()) / math.sqrt(n)
    assert abs(float(m2.mean()) - bracket) < 4.5 * se
    e_sum = (
        float(offset_coefficients(sch, t - 1).sum())
        * 0.7
        * sum(w * b for w, b in zip(SKEW, GM_DDPM_BASE, strict=True))
    )
    assert abs(float(m2.mean()) - (bracket - e_sum**2)) > 10 * se


def test_eq34_is_84_percent_above_eq30_at_lam_one_on_the_digits_schedule():
    """configs/gm_ddpm_digits.yaml's schedule at lam = 1 (E[mu_base] = 0, E[mu_base^2] = 1):
    sigma-tilde_t^2 / sigma_t^2 = 1 + beta_t / gamma_t, largest at t = 2; lam = 0: equal."""
    sch, like = DiscreteVP.linear(50, 2e-3, 0.4), torch.zeros(1, 1, 8, 8)
    ratio = (
        reverse_variances(sch, OffsetMixtureNoise(1.0), like, "eq34")[2:]
        / reverse_variances(sch, OffsetMixtureNoise(1.0), like, "eq30")[2:]
    )
    b = sch.betas.to(F64)
    assert int(ratio.argmax()) == 0  # t = 2
    assert math.isclose(
        float(ratio[0]), 1 + float(b[1] / (b[1] + (1 - b[1]) * b[0])), rel_tol=1e-12
    )
    assert 1.83 < float(ratio.max()) < 1.84
    zero = OffsetMixtureNoise(0.0)
    torch.testing.assert_close(
        reverse_variances(sch, zero, like, "eq34"), reverse_variances(sch, zero, like, "eq30")
    )


def _by_hand_sampler(d, sch, x_T, noise, var, g):
    """Alg. 3 written out: x_{t-1} = mu_theta(x_t, t) (Eq. 9, no offset) + sqrt(var[t]) z."""
    alpha, sigma = sch.alpha(torch.arange(sch.T + 1)), sch.sigma(torch.arange(sch.T + 1))
    x = x_T
    for t in range(sch.T, 0, -1):
        eps = denoiser_to_eps(
            call_denoiser(d, x, alpha[t], sigma[t]), x, float(sigma[t]), float(alpha[t])
        )
        x = mean_from_eps(x, eps, t, None, sch, noise)
        if t > 1:
            x = x + math.sqrt(var[t]) * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return x


def test_sampler_variance_option_eq30_is_unchanged_and_eq34_is_used():
    sch, _, d = _exact(1.0)
    noise = d.net.noise
    x_T = torch.randn(200, 2, generator=gen(1), dtype=F64)
    run = partial(samplers.gm_ddpm, d, sch, x_T, sch.T, strategy="ddpm")
    default, eq30, eq34 = (
        run(generator=gen(2)),
        run(generator=gen(2), variance="eq30"),
        run(generator=gen(2), variance="eq34"),
    )
    assert torch.equal(default, eq30)
    ab = torch.cat([torch.ones(1, dtype=F64), torch.cumprod(1 - sch.betas.to(F64), 0)])
    v30 = [0.0] + [float(sch.betas[t - 1] * (1 - ab[t - 1]) / (1 - ab[t])) for t in range(1, 11)]
    mus = written_means("shared", 1.0, 2)
    v34 = [0.0] + [eq34_by_hand(sch.betas, t, mus, noise.probs)[0] for t in range(1, 11)]
    torch.testing.assert_close(eq30, _by_hand_sampler(d, sch, x_T, noise, v30, gen(2)))
    torch.testing.assert_close(eq34, _by_hand_sampler(d, sch, x_T, noise, v34, gen(2)))
    assert float((eq34 - eq30).abs().max()) > 1e-2
    with pytest.raises(ValueError, match="variance must be one of"):
        run(generator=gen(2), variance="eq35")


# --------------------------------------------------------------------------------------
# The per-pixel reading: no classifier, per-pixel components
# --------------------------------------------------------------------------------------


def test_per_pixel_network_and_loss_have_no_classifier():
    sch = DiscreteVP.cosine(T=20)
    net = build_net(get_config("gm_ddpm_toy_mlp", lam=1.0, per_coordinate=True), seed=0)
    assert net.classifier is None and net.noise.per_coordinate
    x0 = ring2d().sample(64, generator=gen(0)).float()
    with pytest.raises(ValueError, match="K-way classifier cannot predict"):
        gm_ddpm_loss(net, x0, sch, generator=gen(5))
    with pytest.raises(ValueError, match="K-way classifier"):
        net.logits(x0, torch.zeros(64))
    out = gm_ddpm_loss(net, x0, sch, generator=gen(5), classifier_weight=0.0)
    assert set(out) == {"eps", "loss"}
    g = gen(5)
    n = torch.randint(1, 21, (64,), generator=g)
    x_n, eps, paths = sample_marginal(x0, n, sch, net.noise, g)
    assert paths.shape == (64, int(n.max()), 2)  # a component per coordinate and step
    manual = ((net(x_n, n - 1) - eps) ** 2).mean()
    assert torch.allclose(manual, out["eps"], atol=1e-6) and torch.equal(out["loss"], out["eps"])
    with pytest.raises(ValueError, match="per_coordinate must be true or false"):
        get_config("gm_ddpm_toy_mlp", per_coordinate="yes")


def test_per_pixel_sampler_refuses_the_classifier_strategies_and_runs_the_others():
    sch = DiscreteVP.cosine(T=10)
    net = build_net(get_config("gm_ddpm_toy_mlp", lam=1.0, per_coordinate=True), seed=0)
    d = VPPrecond(net, sch).double()
    x_T = torch.randn(16, 2, generator=gen(1), dtype=F64)
    for s in ("standard", "posterior"):
        with pytest.raises(ValueError, match="reads i_t from a K-way classifier"):
            samplers.gm_ddpm(d, sch, x_T, sch.T, strategy=s)
    for s in ("ddpm", "keep_mu", "random"):
        for v in ("eq30", "eq34"):
            x = samplers.gm_ddpm(d, sch, x_T, sch.T, generator=gen(0), strategy=s, variance=v)
            assert torch.isfinite(x).all()


def test_per_pixel_mixture_prior_has_the_covariance_of_alg2_line1():
    """Per-pixel: E[mu mu^T] = Var(c) diag(u^2) + E[c]^2 u u^T (E[c] != 0 here), against
    the shared reading's E[c^2] u u^T, which the draws reject."""
    sch = DiscreteVP.cosine(T=10)
    noise = OffsetMixtureNoise(1.0, GM_DDPM_BASE, SKEW, per_coordinate=True)
    x = mixture_prior(torch.randn(200_000, 3, generator=gen(0), dtype=F64), sch, noise)
    w, c = torch.tensor(SKEW, dtype=F64), torch.tensor(GM_DDPM_BASE, dtype=F64)
    ec, ec2 = float((w * c).sum()), float((w * c**2).sum())
    g_T, one = 1 - float(sch.alpha_bar[-1]), torch.ones(3, 3, dtype=F64)
    want = torch.eye(3, dtype=F64) + g_T * ((ec2 - ec**2) * torch.eye(3, dtype=F64) + ec**2 * one)
    assert (torch.cov(x.T) - want).abs().max() < 0.05  # sampling error ~ 0.01
    shared = torch.eye(3, dtype=F64) + g_T * ec2 * one
    assert (torch.cov(x.T) - shared).abs().max() > 0.5


@pytest.mark.parametrize("reading", ["shared", "unit", "per_pixel"])
def test_cli_trains_and_samples_under_each_reading(reading, tmp_path, capsys):
    """Each reading of gmdiff.papers.gm_ddpm.READINGS, as --set overrides of the toy config:
    a few training steps, then Alg. 5 with Eq. 34's variance and Alg. 3."""
    from gmdiff.papers.gm_ddpm import READINGS

    sets = [*READINGS[reading], f"out_dir={tmp_path}", "train.steps=5", "train.ckpt_every=5"]
    sets += ["sample.n=20", "sample.options.strategy=random", "sample.options.variance=eq34"]
    args = ["--config", str(CONFIGS / "gm_ddpm_toy.yaml")] + [x for s in sets for x in ("--set", s)]
    assert main(["train", *args]) == 0
    cfg = load_config(tmp_path / "config.yaml")
    trained, _, _ = _models(cfg, _schedule(cfg))
    assert trained.noise.per_coordinate == (reading == "per_pixel")
    assert trained.noise.direction == ("unit" if reading == "unit" else "ones")
    assert (trained.classifier is None) == (reading == "per_pixel")
    assert main(["sample", *args]) == 0
    record = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert record["samples"].shape == (20, 2) and torch.isfinite(record["samples"]).all()
    assert record["options"]["variance"] == "eq34"
    assert main(["sample", *args, "--set", "sample.options={strategy: ddpm}"]) == 0
    capsys.readouterr()
