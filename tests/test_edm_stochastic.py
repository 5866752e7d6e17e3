"""EDM's stochastic sampler (Karras et al. 2022, Alg. 2) against a closed-form Gaussian.

With the exact denoiser of a Gaussian N(mu, Sigma), D(x, t) = mu + A_t (x - mu) with
A_t = Sigma (Sigma + t^2 I)^-1, and every step of Alg. 2 is affine in x plus Gaussian noise,
so the sampler's endpoint is exactly Gaussian with moments that a matrix recursion gives
(:func:`chain_moments`): the discretisation bias of the chain, computed, not guessed. The
Monte Carlo test is then a chi-square test of the samples' mean and covariance against the
data Gaussian, whose tolerance is a quantile of its null distribution.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chi2

from gmdiff.analytic import Gaussian
from gmdiff.cli import main
from gmdiff.samplers import SAMPLERS, edm_stochastic, heun
from gmdiff.schedules import EDM, VE

F64 = torch.float64
D, N_MC, STEPS = 4, 20_000, 256
CHURN = {"S_churn": 40.0, "S_tmin": 0.05, "S_tmax": 50.0}  # NVlabs/edm, ImageNet-64
ALPHA = 1e-6  # the chance that a correct sampler fails at a fresh seed
DOF = D + D * (D + 1) // 2

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def g() -> Gaussian:
    """A full-rank Gaussian in D = 4 with variances 4 .. 1/16 and a non-zero mean."""
    gen = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=F64))
    lam = torch.tensor([4.0, 1.0, 0.25, 0.0625], dtype=F64)
    return Gaussian(torch.randn(D, generator=gen, dtype=F64) + 1.0, U, lam)


def covariance(g: Gaussian) -> torch.Tensor:
    return g.basis @ torch.diag(g.eigenvalues) @ g.basis.T


def prior(g: Gaussian, sch: EDM, n: int, gen: torch.Generator) -> torch.Tensor:
    """x_T from the exact marginal N(mu, Sigma + sigma_max^2 I) at the first noise level,
    so that the test sees the sampler's error alone (not the N(0, sigma_max^2) prior's)."""
    return g.sample(n, gen) + sch.sigma_max * torch.randn(n, D, generator=gen, dtype=F64)


def statistic(x: torch.Tensor, g: Gaussian) -> float:
    """T = n |z_bar|^2 + n/2 sum_i (S_ii - 1)^2 + n sum_{i<j} S_ij^2, with z the samples
    whitened by the data's mean and covariance and S = z^T z / n. For Gaussian samples of
    the data distribution n S is Wishart(n, I): var S_ii = 2/n, var S_ij = 1/n, and the
    D + D(D+1)/2 terms are uncorrelated, so T is asymptotically chi-square with DOF degrees
    of freedom. A wrong mean or covariance of size delta adds about n delta^2 to T."""
    L = torch.linalg.cholesky(covariance(g))
    z = torch.linalg.solve_triangular(L, (x - g.mean).T, upper=False).T
    n = z.shape[0]
    S = z.T @ z / n
    iu = torch.triu_indices(D, D, 1)
    t_mean = n * z.mean(0).square().sum()
    t_cov = n / 2 * (S.diagonal() - 1).square().sum() + n * S[iu[0], iu[1]].square().sum()
    return float(t_mean + t_cov)


def chain_moments(g: Gaussian, sch: EDM, steps: int, S_churn=0.0, S_tmin=0.0, S_tmax=math.inf,
                  S_noise=1.0):  # fmt: skip
    """Exact mean and covariance of Alg. 2's endpoint for the exact Gaussian denoiser,
    started from N(mu, Sigma + sigma_max^2 I): x - mu is multiplied by the step's matrix M
    (Euler, or Heun's average of the two slopes) after the churn adds (t_hat^2 - t^2)
    S_noise^2 I to its covariance; the mean stays mu."""
    C, I = covariance(g), torch.eye(D, dtype=F64)

    def slope(t):  # d/dx of (x - D(x, t)) / t
        return (I - C @ torch.linalg.inv(C + t**2 * I)) / t

    t = sch.sigma_steps(steps)
    P = C + sch.sigma_max**2 * I
    for i in range(steps):
        t_cur, t_next = float(t[i]), float(t[i + 1])
        gamma = min(S_churn / steps, math.sqrt(2) - 1) if S_tmin <= t_cur <= S_tmax else 0.0
        t_hat = t_cur * (1 + gamma)
        P = P + (t_hat**2 - t_cur**2) * S_noise**2 * I
        h = t_next - t_hat
        M = I + h * slope(t_hat)
        if t_next > 0:
            M = I + h * 0.5 * (slope(t_hat) + slope(t_next) @ M)
        P = M @ P @ M.T
    return g.mean, P


def noncentrality(g: Gaussian, P: torch.Tensor, n: int) -> float:
    """The shift of E[T] that an endpoint covariance P (mean exact) causes: n/2 ||W - I||_F^2
    with W = L^-1 P L^-T, the whitened covariance."""
    L = torch.linalg.cholesky(covariance(g))
    W = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(L, P, upper=False).T,
                                      upper=False)  # fmt: skip
    return float(n / 2 * (W - torch.eye(D, dtype=F64)).square().sum())


def sample(g: Gaussian, seed: int, **options) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    sch = EDM()
    return edm_stochastic(g.denoiser, sch, prior(g, sch, N_MC, gen), STEPS, generator=gen,
                          **options)  # fmt: skip


def test_endpoint_matches_the_data_gaussian_and_a_planted_s_noise_is_caught(g):
    """NVlabs/edm's ImageNet-64 setting (256 steps, S_churn 40 in [0.05, 50]): T stays below
    the (1 - 1e-6) quantile of chi2(14), 54.6; with the planted error S_noise = 1.2 (each
    churn's noise variance 44% too large) the same T is 150 times that. The chain's own
    discretisation bias (:func:`chain_moments`) shifts E[T] by 0.6, so the tolerance
    measures Monte Carlo error, not the step count (at 40 steps that shift is 217: the
    test would fail there). Measured over seeds 0-11: mean T 13.3 (chi2(14): 14), max 19.2;
    S_noise = 1.05 gives T of 500-540, 1.2 gives 8100-8400."""
    tol = chi2.ppf(1 - ALPHA, DOF)
    sch = EDM()
    bias = noncentrality(g, chain_moments(g, sch, STEPS, **CHURN)[1], N_MC)
    planted = noncentrality(g, chain_moments(g, sch, STEPS, **CHURN, S_noise=1.2)[1], N_MC)
    assert bias < 1.0, bias  # measured: 0.59
    assert planted > 10 * tol, planted  # measured: 7.9e3
    t_ok = statistic(sample(g, 1, **CHURN), g)
    t_bad = statistic(sample(g, 1, **CHURN, S_noise=1.2), g)
    assert t_ok < tol, (t_ok, tol)  # measured: 13.7 < 54.6
    assert t_bad > 10 * tol, (t_bad, tol)  # measured: 8364


def test_chain_moments_are_the_sampler_s():
    """The recursion above is the sampler's arithmetic: the empirical covariance of 20000
    endpoints from a narrow prior agrees with it at a planted S_noise too (so the
    noncentralities quoted above are the sampler's, not a model's)."""
    gen = torch.Generator().manual_seed(3)
    g = Gaussian(torch.zeros(D, dtype=F64), torch.eye(D, dtype=F64), torch.ones(D, dtype=F64))
    sch = EDM(sigma_max=5.0)
    opts = {**CHURN, "S_noise": 1.2}
    x = edm_stochastic(g.denoiser, sch, prior(g, sch, N_MC, gen), 10, generator=gen, **opts)
    P = chain_moments(g, sch, 10, **opts)[1]
    se = (2 / N_MC) ** 0.5 * P.diagonal().max()
    assert (torch.cov(x.T) - P).abs().max() < 5 * se


def test_no_churn_is_heun_exactly(g):
    """S_churn = 0 (with any S_noise), or a churn window holding no noise level, is the
    deterministic Heun sampler (Alg. 1) bit for bit, and draws nothing from the generator."""
    x_T = 80 * torch.randn(64, D, generator=torch.Generator().manual_seed(4), dtype=F64)
    ref = heun(g.denoiser, EDM(), x_T, 18)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    a = edm_stochastic(g.denoiser, EDM(), x_T, 18, S_noise=1.2, generator=gen)
    b = edm_stochastic(g.denoiser, EDM(), x_T, 18, S_churn=40.0, S_tmin=100.0, S_tmax=200.0)
    assert torch.equal(a, ref) and torch.equal(b, ref)
    assert torch.equal(gen.get_state(), state)
    x32 = x_T.float()
    assert torch.equal(edm_stochastic(g.denoiser, EDM(), x32, 6), heun(g.denoiser, EDM(), x32, 6))


def test_churn_window_evaluations_callback_and_seed(g):
    """2 * steps - 1 evaluations; the callback sees t_hat = (1 + gamma) t_i inside
    [S_tmin, S_tmax] and t_i outside; one seed gives one result."""
    seen, calls = [], []

    def counted(x, s):
        calls.append(1)
        return g.denoiser(x, s)

    x_T = 80 * torch.randn(8, D, generator=torch.Generator().manual_seed(6), dtype=F64)
    opts = {"S_churn": 5.0, "S_tmin": 0.1, "S_tmax": 10.0}
    a = edm_stochastic(counted, EDM(), x_T, 10, generator=torch.Generator().manual_seed(7),
                       callback=lambda i, t, x, d: seen.append(t), **opts)  # fmt: skip
    b = edm_stochastic(g.denoiser, EDM(), x_T, 10, generator=torch.Generator().manual_seed(7),
                       **opts)  # fmt: skip
    assert torch.equal(a, b) and len(calls) == 19
    t = EDM().sigma_steps(10)[:-1].tolist()
    gamma = math.sqrt(2) - 1  # min(S_churn / steps, sqrt 2 - 1) = min(0.5, 0.414)
    expected = [s * (1 + gamma) if 0.1 <= s <= 10.0 else s for s in t]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert any(e != s for s, e in zip(t, expected)) and any(e == s for s, e in zip(t, expected))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"S_churn": -1.0}, "S_churn"),
        ({"S_noise": True}, "S_noise"),
        ({"S_tmin": "abc"}, "S_tmin"),
        ({"S_tmin": 2.0, "S_tmax": 1.0}, "S_tmin must be <= S_tmax"),
    ],
)
def test_bad_options_are_named(g, options, match):
    with pytest.raises(ValueError, match=match):
        edm_stochastic(g.denoiser, EDM(), torch.zeros(2, D, dtype=F64), 4, **options)
    with pytest.raises(ValueError, match="got VE"):
        edm_stochastic(g.denoiser, VE(), torch.zeros(2, D, dtype=F64), 4)


def test_string_numbers_from_yaml_are_read():
    """YAML 1.1 leaves ``inf`` and ``1e-3`` strings; the sampler reads them as numbers."""
    x = torch.zeros(2, D, dtype=F64)
    den = lambda x, s: 0.5 * x
    a = edm_stochastic(den, EDM(), x, 4, S_churn="1e1", S_tmax="inf", S_noise=1)
    assert torch.isfinite(a).all()


def test_registered_and_on_the_meta_device():
    """Reachable by name, and no step reads a device value back (no host sync on a GPU)."""
    assert SAMPLERS["edm_stochastic"] is edm_stochastic
    x_T = torch.empty(4, 3, device="meta")
    out = edm_stochastic(lambda x, s: 0.5 * x, EDM(), x_T, 6, S_churn=10.0)
    assert out.device.type == "meta" and out.shape == x_T.shape


def test_reachable_from_the_config_and_the_cli(tmp_path, capsys):
    """``sample.sampler: edm_stochastic`` with its four options in ``sample.options``;
    a misspelt option is one sentence naming it."""
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    base = [
        "--config", str(root / "configs" / "toy_gmm.yaml"),
        "--set", f"out_dir={tmp_path}",
        "--set", "train.steps=4", "--set", "train.batch_size=64",
        "--set", "model.overrides={embedding: fourier, width: 32, depth: 2}",
        "--set", "sample.n=32", "--set", "sample.steps=6",
    ]  # fmt: skip
    assert main(["train", *base]) == 0
    stoch = [*base, "--set", "sample.sampler=edm_stochastic", "--set",
             "sample.options={S_churn: 10, S_tmin: 0.05, S_tmax: 50, S_noise: 1.003}"]  # fmt: skip
    assert main(["sample", *stoch]) == 0
    rec = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert rec["sampler"] == "edm_stochastic" and rec["options"]["S_churn"] == 10
    assert rec["samples"].shape == (32, 2) and torch.isfinite(rec["samples"]).all()
    assert main(["sample", *base]) == 0  # heun
    assert not torch.equal(torch.load(tmp_path / "samples.pt")["samples"], rec["samples"])
    capsys.readouterr()
    bad = [*base, "--set", "sample.sampler=edm_stochastic", "--set", "sample.options={S_min: 1}"]
    assert main(["sample", *bad]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "S_min" in err and "sample.options" in err
