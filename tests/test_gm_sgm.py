"""GM-SGM (GMS-4): noise models, the loss they feed, the sampling variant, the tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import kstest

from gmdiff import losses
from gmdiff import noise as N
from gmdiff.nets import MLP, EDMPrecond, MLPConfig
from gmdiff.papers import gm_sgm
from gmdiff.samplers import ve_pc
from gmdiff.schedules import VE

pytestmark = pytest.mark.usefixtures("one_thread")


def test_paper_tables_shape():
    t = gm_sgm.PAPER_TABLES
    assert t["table1"].shape == (8, 3) and t["table2"].shape == (8, 3)
    assert list(t["table1"]["iterations"]) == [1000, 500, 400, 333, 250, 200, 100, 50]
    assert list(t["table2"]["iterations"]) == [500, 400, 333, 200, 100, 80, 66, 20]
    assert t["table3"].shape == (4, 5) and list(t["table3"]["beta"]) == [1.0, 1.5, 2.0, 3.0]
    assert t["table4"].shape == (4, 3) and list(t["table4"]["iterations"]) == [49, 50, 50, 50]
    assert t["table5"].shape == (2, 7) and list(t["table5"]["iterations"]) == [20, 100]
    # cross-table consistency of the transcription: beta = 1 row is Table 1's SGM, beta = 2
    # is Table 1's GM-SGM, Table 4's SGM / GM-SGM at 50 and Table 5's at 20 / 100 (Table 2)
    t1 = t["table1"].set_index("iterations")
    t3 = t["table3"].set_index("beta")
    for it in (50, 200, 250, 500):
        assert t3.loc[1.0, it] == t1.loc[it, "SGM"]
        assert t3.loc[2.0, it] == t1.loc[it, "GM-SGM"]
    assert t["table4"]["FID"].tolist()[2:] == [t1.loc[50, "SGM"], t1.loc[50, "GM-SGM"]]
    t2 = t["table2"].set_index("iterations")
    t5 = t["table5"].set_index("iterations")
    for it in (20, 100):
        assert (
            t5.loc[it, "SGM"] == t2.loc[it, "SGM"] and t5.loc[it, "GM-SGM"] == t2.loc[it, "GM-SGM"]
        )


def test_alternating_noise_follows_alg1():
    """Alg. 1: iteration n = 1, 3, ... uses beta, n = 2, 4, ... uses 1, whole batch."""
    noise = N.gm_sgm_noise(2.0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 16)
    stds = [noise.sample(x0, gen).std().item() for _ in range(4)]
    np.testing.assert_allclose(stds, [2.0, 1.0, 2.0, 1.0], rtol=0.02)
    assert noise.calls == 4


def test_iid_scale_mixture_marginal_ks():
    noise = N.gm_sgm_noise(2.0, alternate=False)
    gen = torch.Generator().manual_seed(1)
    z = noise.sample(torch.zeros(20000, 3), gen)[:, 0].numpy()
    assert kstest(z, lambda v: N.scale_mixture_cdf(v, [1.0, 2.0], [0.5, 0.5])).pvalue > 1e-3
    # a plain N(0, 1) (or the *sum* of the two Gaussians) is rejected
    assert kstest(z, "norm").pvalue < 1e-6
    assert kstest(z, "norm", args=(0, math.sqrt(5) / 2)).pvalue < 1e-6


def test_scale_mixture_probabilities_and_errors():
    noise = N.ScaleMixtureNoise([0.5, 2.0], probs=[0.2, 0.8])
    gen = torch.Generator().manual_seed(2)
    z = noise.sample(torch.zeros(40000, 1), gen)[:, 0].numpy()
    assert kstest(z, lambda v: N.scale_mixture_cdf(v, [0.5, 2.0], [0.2, 0.8])).pvalue > 1e-3
    for bad in (0.5, 0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            N.gm_sgm_noise(bad)
    with pytest.raises(ValueError, match="beta"):
        N.ContinuousScaleNoise(0.9, 2.0)
    with pytest.raises(ValueError, match="probs"):
        N.ScaleMixtureNoise([1.0, 2.0], probs=[0.3, 0.3])
    with pytest.raises(ValueError, match="alternate"):
        N.ScaleMixtureNoise([1.0, 2.0], probs=[0.2, 0.8], alternate=True)


@pytest.mark.parametrize("law", ["uniform", "loguniform"])
def test_continuous_scale_moments(law):
    """Per-sample beta~: E z^2 = E beta~^2 and E z^4 = 3 E beta~^4 (Eq. 11)."""
    noise = N.ContinuousScaleNoise(1.0, 3.0, law)
    gen = torch.Generator().manual_seed(3)
    z = noise.sample(torch.zeros(50000, 4, dtype=torch.float64), gen)
    m2, m4 = (z**2).mean().item(), (z**4).mean().item()
    assert abs(m2 / noise.moment(2) - 1) < 0.02
    assert abs(m4 / (3 * noise.moment(4)) - 1) < 0.08
    # per-sample scale: the 4 coordinates of a row share beta~, so they are correlated in |z|
    r = np.corrcoef(z[:, 0].abs().numpy(), z[:, 1].abs().numpy())[0, 1]
    assert r > 0.05


def test_frequency_filter_and_matrix_mixture():
    mask = N.high_frequency_mask(8, 8, 0.05)
    assert int(mask.sum()) == 5 and torch.equal(mask, torch.roll(mask.flip(0, 1), (1, 1), (0, 1)))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64)
    mx = N.frequency_filter(x)
    # linear, symmetric, eigenvalues {1, 0.5}: <Mx, y> = <x, My>, M M x = M x - 0.25 (hf part)
    assert torch.allclose((mx * y).sum(), (x * N.frequency_filter(y)).sum())
    spec_in, spec_out = torch.fft.fft2(x), torch.fft.fft2(mx)
    assert torch.allclose(spec_out[..., mask], 0.5 * spec_in[..., mask])
    assert torch.allclose(spec_out[..., ~mask], spec_in[..., ~mask])
    # the mixture {I, 2M}: per-frequency power 1 or 4 (low) and 1 (high) with prob 1/2 each
    noise = N.frequency_mixture_noise()
    z = noise.sample(torch.zeros(20000, 1, 8, 8, dtype=torch.float64), gen)
    power = (torch.fft.fft2(z).abs() ** 2).mean(0)[0] / 64
    assert torch.allclose(power[mask], torch.full_like(power[mask], 1.0), rtol=0.05)
    assert torch.allclose(power[~mask], torch.full_like(power[~mask], 2.5), rtol=0.05)
    with pytest.raises(ValueError, match="beta"):
        N.frequency_mixture_noise(gain=0.5)


def test_dsm_loss_with_mixture_noise_trains_tiny_net():
    """dsm_loss with the mixture: finite, differentiable, equals ||D - x0||^2 / sigma^2."""
    torch.manual_seed(0)
    net = EDMPrecond(MLP(MLPConfig(dim=2, width=32, depth=2, embedding="fourier")))
    x0 = torch.randn(64, 2)
    noise = N.gm_sgm_noise(2.0)
    gen = torch.Generator().manual_seed(5)
    out = losses.dsm_loss(net, x0, VE(sigma_max=5.0), generator=gen, noise=noise)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters()
    )
    # an oracle that knows x0 has zero loss under mixture noise: the target is x0 (Eq. 11)
    oracle_noise = N.gm_sgm_noise(2.0)
    gen = torch.Generator().manual_seed(5)
    ref = x0.clone()
    oracle = lambda x, s: ref
    zero = losses.dsm_loss(oracle, x0, VE(sigma_max=5.0), generator=gen, noise=oracle_noise)
    assert zero["dsm"].item() < 1e-8


def test_mixture_increments_change_only_the_noise():
    """Sec. 5.4 variant. With D = 0 and no corrector the chain is linear in its Gaussian
    increments, x_{i+1} = x_i sigma_{i+1}^2 / sigma_i^2 + sqrt(var_i) z_i, so mixture
    increments N_mix(0, {1, beta^2}) scale the variance of every state by (1 + beta^2) / 2."""
    d = lambda x, s: torch.zeros_like(x)
    sch = VE(sigma_min=0.01, sigma_max=1.0)

    def last_state(fn, seed, **kw):
        seen = {}
        cb = lambda i, t, x, dx: seen.__setitem__("x", x)
        fn(
            d,
            sch,
            torch.zeros(4000, 8),
            10,
            generator=torch.Generator().manual_seed(seed),
            callback=cb,
            n_steps_each=0,
            **kw,
        )
        return seen["x"]

    ref = last_state(ve_pc, 0).var().item()
    for beta, expected in ((1.0, 1.0), (2.0, 2.5)):
        mixture = N.ScaleMixtureNoise((1.0, beta))
        v = last_state(ve_pc, 1, noise=mixture).var().item()
        assert abs(v / ref / expected - 1) < 0.05
    with pytest.raises(ValueError, match="beta"):
        N.from_config({"name": "gm_sgm", "beta": 0.5})
