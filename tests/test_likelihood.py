"""PF-ODE likelihood against the exact log-density of the toy mixtures, dequantisation
and bits/dim."""

import math

import pytest
import torch

from gmdiff import data
from gmdiff.likelihood import (
    bits_per_dim,
    dequantize,
    gap_to_exact,
    image_bpd,
    marginal_log_prob,
    pf_ode_nll,
)
from gmdiff.schedules import EDM, DiscreteVP, VPLinear

pytestmark = pytest.mark.usefixtures("one_thread")

N = 200


@pytest.fixture(scope="module")
def ring():
    g = data.ring2d()
    return g, g.sample(N, torch.Generator().manual_seed(0))


def _gap(model, x, schedule, **options) -> tuple[float, float]:
    """Mean of (PF-ODE NLL of ``model``'s denoiser - exact NLL of the ring) and its
    standard error over the N points."""
    gap, res, exact = gap_to_exact(model.denoiser, data.ring2d(), schedule, x, **options)
    d = res.nll - exact  # the summary, recomputed
    assert gap.gap == pytest.approx(d.mean().item(), rel=1e-12)
    assert gap.gap_stderr == pytest.approx((d.std() / math.sqrt(d.numel())).item(), rel=1e-12)
    return gap.gap, gap.gap_stderr


@pytest.mark.parametrize("schedule", [EDM(sigma_max=80.0), VPLinear()], ids=["edm", "vp"])
def test_exact_divergence_matches_exact_nll(ring, schedule):
    g, x = ring
    gap, _ = _gap(g, x, schedule, divergence="exact")
    # ODE tolerance 1e-5 and the prior's mismatch (p_T is not exactly N(0, prior_std^2)):
    # measured |gap| < 1e-4 nats; the mean NLL itself is 0.39 nats
    assert abs(gap) < 1e-3, gap


def test_hutchinson_is_within_its_error_and_a_planted_error_is_not(ring):
    g, x = ring
    schedule = EDM(sigma_max=80.0)
    gen = torch.Generator().manual_seed(1)
    gap, se = _gap(g, x, schedule, divergence="hutchinson", generator=gen)
    assert 0 < se < 0.2
    assert abs(gap) < 4 * se + 1e-3, (gap, se)
    # planted errors: a ring of radius 2.2 (modes moved by 2 std: KL = 2 nats) fails the
    # Hutchinson check; components 20% wider (KL = 0.06 nats) fail the exact one
    gen = torch.Generator().manual_seed(1)
    gap_w, se_w = _gap(data.ring2d(radius=2.2), x, schedule, generator=gen)
    assert abs(gap_w) > 4 * se_w + 1e-3, (gap_w, se_w)
    gap_e, _ = _gap(data.ring2d(std=0.12), x, schedule, divergence="exact")
    assert abs(gap_e) > 1e-2, gap_e


def test_gaussian_probe_and_higher_dimension():
    g = data.seeded_low_rank_gmm(d=6, k=3, rank=6, seed=0)
    x = g.sample(100, torch.Generator().manual_seed(2))
    schedule = EDM(sigma_max=80.0)
    exact = -marginal_log_prob(g, schedule, x, schedule.t_min)
    for probe in ("gaussian", "rademacher"):
        res = pf_ode_nll(
            g.denoiser, schedule, x, probe=probe, generator=torch.Generator().manual_seed(3)
        )
        d = res.nll - exact
        se = (d.std() / 10).item()
        assert abs(d.mean().item()) < 4 * se + 1e-3, (probe, d.mean().item(), se)
    # exact divergence: per sample the prior's mismatch is ~ |E x| / sigma_max nats
    wide = EDM(sigma_max=1000.0)
    ex = pf_ode_nll(g.denoiser, wide, x[:20], divergence="exact").nll
    assert torch.allclose(ex, -marginal_log_prob(g, wide, x[:20], wide.t_min), atol=5e-3)


def test_refuses_discrete_schedules_and_bad_options(ring):
    g, x = ring
    with pytest.raises(ValueError, match="continuous Schedule"):
        pf_ode_nll(g.denoiser, DiscreteVP.linear(), x)
    with pytest.raises(ValueError, match="divergence must be"):
        pf_ode_nll(g.denoiser, EDM(), x, divergence="trace")


def test_dequantization_stays_in_the_pixel_bin():
    k = torch.arange(256, dtype=torch.float64).repeat(4)
    for centered in (True, False):
        x = 2 * k / 255 - 1 if centered else k / 255
        y = dequantize(x, torch.Generator().manual_seed(0), centered)
        y01 = (y + 1) / 2 if centered else y
        assert torch.equal(torch.floor(256 * y01), k)  # (k + u) / 256, u in [0, 1)
        assert (y01 * 256 - k).std() > 0.2  # and spread over the bin (U[0,1) std 0.29)


def test_bits_per_dim_of_the_uniform_density_is_eight():
    D = 12
    for centered, width in ((True, 2.0), (False, 1.0)):
        nll = torch.tensor([D * math.log(width)])  # uniform on [-1, 1]^D or [0, 1]^D
        assert bits_per_dim(nll, D, centered).item() == pytest.approx(8.0, abs=1e-12)


def test_image_bpd_matches_the_exact_density_of_dequantized_pixels():
    """A Gaussian model of 1 x 2 x 2 images: bits/dim through the PF-ODE (exact divergence)
    equals bits/dim of its exact density at the same dequantised points."""
    gen = torch.Generator().manual_seed(0)
    g = data.seeded_low_rank_gmm(d=4, k=2, rank=4, seed=1)
    u8 = torch.randint(0, 256, (16, 1, 2, 2), generator=gen).double()
    images = 2 * u8 / 255 - 1

    def denoiser(x, sigma):
        return g.denoiser(x.flatten(1), sigma).reshape(x.shape)

    schedule = EDM(sigma_max=1000.0)  # per-sample prior mismatch ~ |E x| / sigma_max nats
    bpd, res = image_bpd(
        denoiser, schedule, images, divergence="exact", generator=torch.Generator().manual_seed(5)
    )
    y = dequantize(images, torch.Generator().manual_seed(5))
    exact = -marginal_log_prob(g, schedule, y.flatten(1), schedule.t_min)
    assert res.nll.shape == (16,)
    assert torch.allclose(bpd, bits_per_dim(exact, 4), atol=2e-3)
    halves, res2 = image_bpd(
        denoiser, schedule, images, divergence="exact", generator=torch.Generator().manual_seed(5),
        batch=8,
    )  # fmt: skip
    assert torch.allclose(halves, bpd, atol=1e-3) and res2.nll.shape == (16,)
    raw, _ = image_bpd(denoiser, schedule, images, dequantize_data=False, divergence="exact")
    assert not torch.allclose(raw, bpd, atol=1e-3)  # the flag changes the points scored
