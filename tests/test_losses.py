"""Losses against their closed-form minima for Gaussian data.

For x0 ~ N(mu, U diag(lam) U^T) and the exact denoiser D*, each loss has an irreducible
value computed here independently of the library (by quadrature over the noise level):

* DSM, lambda = sigma^2, x_t = alpha x0 + sigma z:  sum_i a^2 lam_i / (a^2 lam_i + sigma^2)
* DDPM eps (mean over D dims):                     (1/D) sum_i lam_i / (lam_i + (sigma/alpha)^2)
* EDM, weight lambda(sigma):                        lambda(sigma) sum_i lam_i sigma^2 / (lam_i + sigma^2)

The Monte-Carlo loss of D* must match them within 4 standard errors, and a perturbed
denoiser (1.1 D*) must do worse on the same draws by more than 5 paired standard errors.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from gmdiff.analytic import Gaussian
from gmdiff.losses import GaussianNoise, LossContext, dsm_loss, edm_loss, eps_loss
from gmdiff.schedules import VE, DiscreteVP, VPLinear, denoiser_to_eps

LAM = torch.tensor([2.0, 0.3], dtype=torch.float64)
MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)
ANGLE = 0.7
U = torch.tensor(
    [[math.cos(ANGLE), -math.sin(ANGLE)], [math.sin(ANGLE), math.cos(ANGLE)]], dtype=torch.float64
)
GAUSS = Gaussian(MEAN, U, LAM)
LAM_NP = LAM.numpy()


def chunks(loss_call, n_chunks=16, batch=4096, seed=0):
    """The loss on n_chunks independent batches; the same seed gives the same x0 and noise
    draws to different denoisers, so differences between two calls are paired."""
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(n_chunks):
        x0 = GAUSS.sample(batch, generator=gen)
        vals.append(loss_call(x0, gen)["loss"].item())
    return np.array(vals)


def mean_se(v):
    return v.mean(), v.std(ddof=1) / math.sqrt(len(v))


def assert_matches_and_is_minimal(optimal, perturbed, expected=None):
    """optimal matches expected (4 s.e.), and perturbed - optimal > 0 by 5 paired s.e."""
    if expected is not None:
        got, se = mean_se(optimal)
        assert abs(got - expected) < 4 * se, (got, expected, se)
    gap, se_gap = mean_se(perturbed - optimal)
    assert gap > 5 * se_gap, (gap, se_gap)


def scaled(d, c):
    return lambda x, s: c * d(x, s)


@pytest.mark.parametrize("schedule", [VE(), VPLinear()], ids=["VE", "VP"])
def test_dsm_matches_closed_form_minimum(schedule):
    def per_t(t):
        a = float(schedule.alpha(t))
        s = float(schedule.sigma(t))
        return np.sum(a**2 * LAM_NP / (a**2 * LAM_NP + s**2))

    t0, t1 = schedule.t_min, schedule.t_max
    expected = quad(per_t, t0, t1, limit=200)[0] / (t1 - t0)
    assert_matches_and_is_minimal(
        chunks(lambda x0, g: dsm_loss(GAUSS.denoiser, x0, schedule, generator=g)),
        chunks(lambda x0, g: dsm_loss(scaled(GAUSS.denoiser, 1.1), x0, schedule, generator=g)),
        expected,
    )


def test_eps_loss_matches_closed_form_minimum():
    sched = DiscreteVP.linear(T=1000)

    def eps_net(x, time):  # time = n - 1 for the DiscreteVP index n
        n = time + 1
        a = sched.alpha(n)[:, None]
        s = sched.sigma(n)[:, None]
        return denoiser_to_eps(GAUSS.denoiser(x / a, (s / a)[:, 0]), x, s, a)

    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).numpy()
    s2 = (1 - ab) / ab  # (sigma / alpha)^2 per step
    expected = np.mean((LAM_NP[None] / (LAM_NP[None] + s2[:, None])).sum(1)) / 2
    assert_matches_and_is_minimal(
        chunks(lambda x0, g: eps_loss(eps_net, x0, sched, generator=g)),
        chunks(lambda x0, g: eps_loss(lambda x, n: 1.1 * eps_net(x, n), x0, sched, generator=g)),
        expected,
    )


def test_edm_matches_closed_form_minimum():
    xi, w = np.polynomial.hermite_e.hermegauss(80)
    sig = np.exp(-1.2 + 1.2 * xi)
    weight = (sig**2 + 0.25) / (sig * 0.5) ** 2
    post_var = (LAM_NP[None] * sig[:, None] ** 2 / (LAM_NP[None] + sig[:, None] ** 2)).sum(1)
    expected = np.sum(w * weight * post_var) / math.sqrt(2 * math.pi)
    assert_matches_and_is_minimal(
        chunks(lambda x0, g: edm_loss(GAUSS.denoiser, x0, generator=g)),
        chunks(lambda x0, g: edm_loss(scaled(GAUSS.denoiser, 1.1), x0, generator=g)),
        expected,
    )


class ScaleMixtureNoise:
    """z = b * N(0, I) with b in {1, BETA} equally likely; target -z / sigma (the GM-SGM
    convention, Eqs. 9-10). The optimal denoiser is then the posterior mean under the
    mixture kernel, not the Gaussian D*."""

    BETA = 3.0

    def sample(self, x0, generator, alpha=None, sigma=None):
        b = torch.where(torch.rand(x0.shape[0], generator=generator) < 0.5, 1.0, self.BETA)
        return b.to(x0.dtype)[:, None] * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)

    def score_target(self, z, sigma):
        return -z / sigma


def mixture_denoiser(x, sigma):
    logp = torch.stack([GAUSS.log_prob(x, b * sigma) for b in (1.0, ScaleMixtureNoise.BETA)], 1)
    w = torch.softmax(logp, 1)
    ds = torch.stack([GAUSS.denoiser(x, b * sigma) for b in (1.0, ScaleMixtureNoise.BETA)], 1)
    return (w[..., None] * ds).sum(1)


def test_noise_model_sets_the_target():
    mix = ScaleMixtureNoise()
    opt = chunks(lambda x0, g: edm_loss(mixture_denoiser, x0, generator=g, noise=mix))
    gauss = chunks(lambda x0, g: edm_loss(GAUSS.denoiser, x0, generator=g, noise=mix))
    perturbed = chunks(
        lambda x0, g: edm_loss(scaled(mixture_denoiser, 1.1), x0, generator=g, noise=mix)
    )
    assert_matches_and_is_minimal(opt, gauss)
    assert_matches_and_is_minimal(opt, perturbed)


def test_extra_terms_and_context():
    gen = torch.Generator().manual_seed(1)
    x0 = GAUSS.sample(64, generator=gen)
    seen: list[LossContext] = []

    def term(ctx: LossContext):
        seen.append(ctx)
        return ctx.sigma

    out = dsm_loss(GAUSS.denoiser, x0, VPLinear(), generator=gen, extra_terms={"aux": term})
    ctx = seen[0]
    torch.testing.assert_close(out["loss"], out["dsm"] + ctx.sigma.mean())
    torch.testing.assert_close(ctx.x_t, ctx.alpha[:, None] * x0 + ctx.sigma[:, None] * ctx.z)
    torch.testing.assert_close(ctx.sigma, VPLinear().sigma(ctx.t))
    with pytest.raises(ValueError, match="reserved"):
        dsm_loss(GAUSS.denoiser, x0, generator=gen, extra_terms={"loss": term})


def test_eps_net_sees_time_index_n_minus_1():
    sched = DiscreteVP.linear(T=10)
    seen, ctxs = [], []

    def eps_net(x, time):
        seen.append(time)
        return torch.zeros_like(x)

    x0 = GAUSS.sample(256, generator=torch.Generator().manual_seed(4))
    out = eps_loss(eps_net, x0, sched, generator=torch.Generator().manual_seed(5),
                   extra_terms={"ctx": lambda c: ctxs.append(c) or torch.zeros(())})  # fmt: skip
    n, time = ctxs[0].t, seen[0]
    assert torch.equal(time, n - 1) and time.min() == 0 and time.max() == 9
    torch.testing.assert_close(ctxs[0].sigma, sched.sigma(n))
    # with eps_hat = 0 the loss is the mean squared standard normal noise
    torch.testing.assert_close(out["eps"], (ctxs[0].z ** 2).mean())


def test_same_generator_state_same_loss_and_bad_input():
    x0 = GAUSS.sample(16, generator=torch.Generator().manual_seed(2))
    a = edm_loss(
        GAUSS.denoiser, x0, generator=torch.Generator().manual_seed(3), noise=GaussianNoise()
    )
    b = edm_loss(GAUSS.denoiser, x0, generator=torch.Generator().manual_seed(3))
    assert a["loss"].item() == b["loss"].item()
    with pytest.raises(ValueError, match="shape"):
        edm_loss(GAUSS.denoiser, torch.zeros(4))
    with pytest.raises(ValueError, match="p_std"):
        edm_loss(GAUSS.denoiser, x0, p_std=0.0)
