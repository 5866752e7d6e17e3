"""Tests of gmdiff.nets: embeddings, MLP, DDPM U-Net, FIR resampling, NCSN++,
preconditioning wrappers (EDM Table 1) and parameter counts against the papers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gmdiff.analytic import GaussianMixture
from gmdiff.nets import (
    MLP,
    AttentionBlock,
    EDMPrecond,
    FIRDownsampleConv,
    FIRResample,
    GaussianFourierEmbedding,
    MLPConfig,
    NCSNpp,
    NCSNppConfig,
    ScorePrecond,
    UNet,
    UNetConfig,
    VEPrecond,
    VPPrecond,
    build_net,
    count_params,
    fir_kernel_2d,
    get_config,
    num_groups,
    param_count_table,
    sinusoidal_embedding,
)
from gmdiff.nets.ncsnpp import BigGANResBlock
from gmdiff.schedules import DiscreteVP, VPLinear, eps_to_denoiser

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions run far faster single-threaded on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomize(net: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Overwrite every parameter with N(0, std^2) so zero-initialised layers do not hide
    the dependence of the output on inputs and conditioning."""
    g = gen(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return net


def check_forward_backward(net: nn.Module, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Forward/backward checks shared by all raw nets; returns the output."""
    randomize(net)
    x = x.clone().requires_grad_(True)
    y = net(x, c)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    # the output depends on the conditioning and on the input
    c2 = c + 1.0
    assert not torch.allclose(net(x, c2), y)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    dead = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"parameters without gradient: {dead}"
    return y


# ------------------------------------------------------------------------------------
# embeddings and small layers
# ------------------------------------------------------------------------------------


def test_sinusoidal_embedding_matches_formula():
    c = torch.tensor([0.0, 1.0, 37.5], dtype=F64)
    e = sinusoidal_embedding(c, 6)
    # dim 6: three frequencies 10000^(-k/2), k = 0, 1, 2 -> 1, 1e-2, 1e-4
    w = torch.tensor([1.0, 1e-2, 1e-4], dtype=F64)
    expected = torch.cat([torch.sin(c[:, None] * w), torch.cos(c[:, None] * w)], dim=1)
    torch.testing.assert_close(e, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(c, 7)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        sinusoidal_embedding(c[:, None], 6)


def test_fourier_embedding_frequencies_and_values():
    emb = GaussianFourierEmbedding(4096, scale=16.0, generator=gen(1))
    assert abs(emb.W.std().item() / 16.0 - 1) < 0.05
    assert list(emb.parameters()) == [] and "W" in emb.state_dict()
    c = torch.tensor([0.0, -1.3])
    out = emb(c)
    assert out.shape == (2, 8192) and emb.dim == 8192
    arg = 2 * math.pi * c[:, None] * emb.W
    torch.testing.assert_close(out, torch.cat([arg.sin(), arg.cos()], 1))
    # same generator seed -> same frequencies
    torch.testing.assert_close(
        GaussianFourierEmbedding(8, generator=gen(3)).W,
        GaussianFourierEmbedding(8, generator=gen(3)).W,
    )


@pytest.mark.parametrize(
    "ch, groups", [(1, 1), (8, 8), (16, 16), (32, 32), (48, 16), (128, 32), (96, 32)]
)
def test_num_groups_rule(ch, groups):
    assert num_groups(ch) == groups and ch % groups == 0


def test_attention_block_matches_manual_formula():
    torch.manual_seed(0)
    blk = randomize(AttentionBlock(8, num_heads=2).double())
    x = torch.randn(2, 8, 3, 3, generator=gen(), dtype=F64)
    h = blk.norm(x).flatten(2)  # (B, C, N)
    w, b = blk.qkv.weight[:, :, 0, 0], blk.qkv.bias
    q, k, v = (w @ h + b[None, :, None]).split(8, dim=1)
    outs = []
    for sl in (slice(0, 4), slice(4, 8)):  # two heads of 4 channels
        a = torch.softmax(q[:, sl].transpose(1, 2) @ k[:, sl] / 2.0, dim=-1)  # 1/sqrt(4)
        outs.append(v[:, sl] @ a.transpose(1, 2))
    o = torch.cat(outs, 1)
    expected = x + (blk.proj.weight[:, :, 0, 0] @ o + blk.proj.bias[None, :, None]).reshape(x.shape)
    torch.testing.assert_close(blk(x), expected)
    # fresh blocks: zero-initialised projection, so the block is the (rescaled) identity
    torch.testing.assert_close(AttentionBlock(8)(x.float()), x.float())
    torch.testing.assert_close(
        AttentionBlock(8, skip_rescale=True)(x.float()), x.float() / math.sqrt(2)
    )


# ------------------------------------------------------------------------------------
# MLP
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("embedding", ["sinusoidal", "fourier"])
@pytest.mark.parametrize("combine", ["add", "concat"])
def test_mlp_forward_backward(embedding, combine):
    cfg = MLPConfig(dim=3, width=16, depth=2, emb_dim=8, embedding=embedding, combine=combine)
    net = MLP(cfg)
    x = torch.randn(5, 3, generator=gen())
    check_forward_backward(net, x, torch.linspace(-1, 1, 5))


def test_mlp_rejects_bad_input():
    net = MLP(MLPConfig(dim=2, width=8, depth=1, emb_dim=4))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        net(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="combine"):
        MLPConfig(combine="multiply")


# ------------------------------------------------------------------------------------
# DDPM U-Net
# ------------------------------------------------------------------------------------


def test_ddpm_cifar10_param_count_matches_paper():
    cfg = get_config("ddpm_cifar10")
    assert (cfg.ch, cfg.ch_mult, cfg.num_res_blocks, cfg.attn_resolutions, cfg.dropout) == (
        128,
        (1, 2, 2, 2),
        2,
        (16,),
        0.1,
    )
    n = count_params(cfg)
    assert abs(n / 35.7e6 - 1) < 0.005, n  # Ho et al. 2020, App. B: 35.7M
    # Regression value; it is also the count of diffusers' UNet2DModel for google/ddpm-cifar10-32.
    assert n == 35_746_307


def test_small_unet_configs():
    digits = get_config("digits")
    assert (digits.ch, digits.ch_mult, digits.in_ch, digits.resolution) == (32, (1, 2), 1, 8)
    assert 0.55e6 < count_params(digits) < 0.7e6
    mnist = get_config("mnist")
    assert (mnist.ch, mnist.in_ch, mnist.resolution) == (16, 1, 28)
    torch.manual_seed(0)
    y = build_net(mnist)(torch.randn(2, 1, 28, 28, generator=gen()), torch.tensor([3, 900]))
    assert y.shape == (2, 1, 28, 28)


def test_unet_tiny_forward_backward():
    torch.manual_seed(0)
    cfg = UNetConfig(
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(8,),
        dropout=0.0,
        in_ch=2,
        resolution=16,
        num_heads=2,
    )
    net = UNet(cfg)
    x = torch.randn(3, 2, 16, 16, generator=gen())
    check_forward_backward(net, x, torch.tensor([0.0, 10.0, 999.0]))


def test_unet_fresh_output_is_zero_and_config_errors():
    # zero-initialised output layer (DDPM init_scale 0): a fresh net predicts 0
    torch.manual_seed(0)
    net = UNet(
        UNetConfig(ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(), in_ch=1, resolution=4)
    )
    assert net(torch.randn(2, 1, 4, 4, generator=gen()), torch.tensor([1, 2])).abs().max() == 0
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(ch_mult=(1, 2, 2, 2), resolution=28)
    with pytest.raises(ValueError, match="never occur"):
        UNetConfig(attn_resolutions=(5,))
    with pytest.raises(ValueError, match=r"\(B, 1, 4, 4\)"):
        net(torch.zeros(2, 1, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown network config"):
        get_config("ddpm_cifar100")


# ------------------------------------------------------------------------------------
# FIR resampling
# ------------------------------------------------------------------------------------


def test_fir_kernel_and_resampling_identities():
    k = fir_kernel_2d([1, 3, 3, 1])
    torch.testing.assert_close(
        k, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    )
    down, up = FIRResample("down"), FIRResample("up")
    x = torch.randn(2, 3, 8, 8, generator=gen(), dtype=F64)
    y = torch.randn(2, 3, 4, 4, generator=gen(1), dtype=F64)
    down.double(), up.double()
    # an interior output pixel is the blur of the 4x4 window starting one pixel before 2i
    i, j = 2, 1
    window = x[:, :, 2 * i - 1 : 2 * i + 3, 2 * j - 1 : 2 * j + 3]
    torch.testing.assert_close(down(x)[:, :, i, j], (window * k.double()).sum((-1, -2)))
    # upsampling is 4x the adjoint of downsampling: <down x, y> * 4 = <x, up y>
    torch.testing.assert_close(4 * (down(x) * y).sum(), (x * up(y)).sum())
    # constants are preserved away from the zero-padded border
    ones = torch.ones(1, 1, 8, 8, dtype=F64)
    assert torch.allclose(up(ones)[..., 1:-1, 1:-1], ones[..., :1, :1]) and torch.allclose(
        down(ones)[..., 1:-1, 1:-1], ones[..., :1, :1]
    )
    assert FIRDownsampleConv(3, 5)(torch.zeros(1, 3, 8, 8)).shape == (1, 5, 4, 4)
    with pytest.raises(ValueError, match="even-length"):
        fir_kernel_2d([1, 2, 1])


# ------------------------------------------------------------------------------------
# NCSN++
# ------------------------------------------------------------------------------------


def test_biggan_block_skip_rescale_and_resampling():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 8, generator=gen())
    temb = torch.randn(2, 16, generator=gen(1))
    # fresh block: the residual branch ends in a zero-initialised conv
    torch.testing.assert_close(BigGANResBlock(8, 8, 16, 0.0)(x, temb), x / math.sqrt(2))
    down = BigGANResBlock(8, 8, 16, 0.0, resample="down")
    torch.testing.assert_close(down(x, temb), down.skip(FIRResample("down")(x)) / math.sqrt(2))
    up = BigGANResBlock(8, 4, 16, 0.0, resample="up")
    assert up(x, temb).shape == (2, 4, 16, 16)


def test_ncsnpp_paper_config_param_count():
    cfg = get_config("ncsnpp_cifar10_ve")
    assert (cfg.nf, cfg.ch_mult, cfg.num_res_blocks, cfg.attn_resolutions, cfg.fourier_scale) == (
        128,
        (1, 2, 2, 2),
        4,
        (16,),
        16.0,
    )
    assert cfg.fir_taps == (1, 3, 3, 1) and cfg.scale_by_sigma
    assert count_params(cfg) == 62_758_787  # regression value (the paper states none)


def test_ncsnpp_tiny_forward_backward_and_sigma_scaling():
    cfg = NCSNppConfig(
        nf=8, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0, resolution=16
    )
    torch.manual_seed(0)
    net = NCSNpp(cfg)
    x = torch.randn(2, 3, 16, 16, generator=gen())
    log_sigma = torch.log(torch.tensor([0.05, 20.0]))
    y = check_forward_backward(net, x, log_sigma)
    # scale_by_sigma divides the raw output by sigma = exp(c_noise)
    unscaled = NCSNpp(NCSNppConfig(**{**cfg.__dict__, "scale_by_sigma": False}))
    unscaled.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            y.detach(), unscaled(x, log_sigma) / log_sigma.exp()[:, None, None, None]
        )


def test_param_count_table():
    rows = {r.name: r for r in param_count_table()}
    assert rows["ddpm_cifar10"].published == 35_700_000
    assert rows["ncsnpp_cifar10_ve"].published is None
    for r in rows.values():
        assert r.ours == count_params(get_config(r.name))
        if r.published is not None:
            assert abs(r.ours / r.published - 1) < 0.005


# ------------------------------------------------------------------------------------
# Preconditioning (Karras et al. 2022, Table 1)
# ------------------------------------------------------------------------------------

SIGMAS = torch.tensor([0.002, 0.1, 0.5, 1.0, 7.0, 80.0], dtype=F64)


class Affine(nn.Module):
    """Raw test net F(y, c) = 2 y + c (c broadcast over the non-batch dims)."""

    def forward(self, y, c):
        return 2 * y + c.reshape(-1, *([1] * (y.ndim - 1)))


def table1(kind: str, sigma: torch.Tensor, sd: float = 0.5):
    """EDM Table 1, written out here independently of the library."""
    if kind == "edm":
        return (
            sd**2 / (sigma**2 + sd**2),
            sigma * sd / (sigma**2 + sd**2).sqrt(),
            1 / (sigma**2 + sd**2).sqrt(),
            sigma.log() / 4,
        )
    if kind == "ve":
        return torch.ones_like(sigma), sigma, torch.ones_like(sigma), (sigma / 2).log()
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, wrapper", [("edm", lambda n: EDMPrecond(n, 0.5)), ("ve", VEPrecond)]
)
def test_edm_ve_coefficients_match_table1(kind, wrapper):
    pre = wrapper(Affine())
    c = pre.coefficients(SIGMAS)
    for got, want in zip(c, table1(kind, SIGMAS)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    x = torch.randn(6, 3, generator=gen(), dtype=F64)
    c_skip, c_out, c_in, c_noise = (t[:, None] for t in table1(kind, SIGMAS))
    torch.testing.assert_close(pre(x, SIGMAS), c_skip * x + c_out * (2 * c_in * x + c_noise))


def test_score_wrapper_coefficients():
    pre = ScorePrecond(Affine())
    c = pre.coefficients(SIGMAS)
    torch.testing.assert_close(c.c_out, SIGMAS**2)
    torch.testing.assert_close(c.c_noise, SIGMAS.log())
    x = torch.randn(6, 3, generator=gen(), dtype=F64)
    f = 2 * x + SIGMAS.log()[:, None]
    torch.testing.assert_close(pre(x, SIGMAS), c.c_skip[:, None] * x + c.c_out[:, None] * f)


@pytest.fixture(scope="module")
def gmm():
    g = gen(5)
    means = torch.randn(2, 3, generator=g, dtype=F64)
    a = torch.randn(2, 3, 3, generator=g, dtype=F64)
    covs = a @ a.transpose(1, 2) / 3 + 0.1 * torch.eye(3, dtype=F64)
    return GaussianMixture.from_covariances(means, covs, torch.tensor([0.3, 0.7], dtype=F64))


class IdealRaw(nn.Module):
    """The raw output that makes a wrapper's D equal the exact GMM denoiser; it recovers
    sigma and x from (c_in x, c_noise) with inverse maps written in the test."""

    def __init__(self, gmm, kind, schedule=None):
        super().__init__()
        self.gmm, self.kind, self.schedule = gmm, kind, schedule

    def forward(self, y, c):
        if self.kind == "edm":
            sigma = torch.exp(4 * c)
            x = y * (sigma**2 + 0.25).sqrt()[:, None]
            d = self.gmm.denoiser(x, sigma)
            return (d - 0.25 / (sigma**2 + 0.25)[:, None] * x) / (
                0.5 * sigma / (sigma**2 + 0.25).sqrt()
            )[:, None]
        if self.kind == "ve":
            sigma = 2 * torch.exp(c)
            return (self.gmm.denoiser(y, sigma) - y) / sigma[:, None]
        if self.kind == "score":  # NCSN++ convention: input log sigma, output the score
            return self.gmm.score(y, torch.exp(c))
        # eps networks of VP processes: y = alpha x, c = time
        if isinstance(self.schedule, VPLinear):
            t = c / 999
        else:  # DDPM index n - 1, used at grid points only
            t = c.round().long() + 1
        alpha, s_vp = self.schedule.alpha(t), self.schedule.sigma(t)
        alpha, s_vp = alpha.reshape(-1, 1), s_vp.reshape(-1, 1)
        x0 = self.gmm.denoiser(y / alpha, (s_vp / alpha).squeeze(1))
        return (y - alpha * x0) / s_vp


@pytest.mark.parametrize("kind", ["edm", "ve", "score", "vp_linear", "vp_discrete"])
def test_wrappers_reproduce_exact_gmm_denoiser(gmm, kind):
    if kind == "vp_linear":
        sched = VPLinear()
        pre = VPPrecond(IdealRaw(gmm, "vp", sched), sched)
        sigma = sched.sigma_edm(torch.tensor([0.01, 0.2, 0.5, 1.0], dtype=F64))
    elif kind == "vp_discrete":
        sched = DiscreteVP.linear()
        pre = VPPrecond(IdealRaw(gmm, "vp", sched), sched)
        sigma = sched.sigma_edm(torch.tensor([1, 10, 500, 1000]))
    else:
        pre = {"edm": EDMPrecond, "ve": VEPrecond, "score": ScorePrecond}[kind](IdealRaw(gmm, kind))
        sigma = torch.tensor([0.01, 0.3, 2.0, 50.0], dtype=F64)
    x = gmm.sample(4, generator=gen(2)) + sigma[:, None] * torch.randn(
        4, 3, generator=gen(3), dtype=F64
    )
    torch.testing.assert_close(pre(x, sigma), gmm.denoiser(x, sigma), rtol=1e-9, atol=1e-9)


def test_vp_wrapper_equals_eps_conversion_and_table1():
    sched = VPLinear()
    eps_net = randomize(MLP(MLPConfig(dim=3, width=16, depth=2, emb_dim=8)).double())
    pre = VPPrecond(eps_net, sched)
    x = torch.randn(6, 3, generator=gen(), dtype=F64)
    alpha = 1 / (SIGMAS**2 + 1).sqrt()
    t = pre.time(SIGMAS)
    # t(sigma) inverts the schedule's EDM noise level (EDM Table 1, VP sigma^-1)
    torch.testing.assert_close(sched.sigma_edm(t), SIGMAS, rtol=1e-10, atol=0)
    # the VP process state and noise at that time are alpha x and alpha sigma
    torch.testing.assert_close(sched.alpha(t), alpha, rtol=1e-10, atol=0)
    eps = eps_net(alpha[:, None] * x, 999 * t)
    expected = eps_to_denoiser(
        eps, alpha[:, None] * x, sched.sigma(t)[:, None], sched.alpha(t)[:, None]
    )
    torch.testing.assert_close(pre(x, SIGMAS), expected, rtol=1e-9, atol=1e-9)
    # Table 1 VP column
    c = pre.coefficients(SIGMAS)
    torch.testing.assert_close(c.c_out, -SIGMAS)
    torch.testing.assert_close(c.c_in, alpha)
    torch.testing.assert_close(c.c_noise, 999 * t)
    torch.testing.assert_close(pre(x, SIGMAS), c.c_skip[:, None] * x + c.c_out[:, None] * eps)


def test_vp_discrete_time_index():
    sched = DiscreteVP.linear()
    pre = VPPrecond(Affine(), sched)
    n = torch.tensor([1, 2, 250, 999, 1000])
    torch.testing.assert_close(pre.time(sched.sigma_edm(n)), (n - 1).double(), rtol=0, atol=1e-9)
    # geometric midpoint of two grid levels -> strictly between the two indices
    mid = (sched.sigma_edm(torch.tensor([10])) * sched.sigma_edm(torch.tensor([11]))).sqrt()
    assert 9 < pre.time(mid).item() < 10
    with pytest.raises(ValueError, match="outside"):
        pre.time(torch.tensor([1e-4], dtype=F64))
    with pytest.raises(TypeError, match="VPLinear or DiscreteVP"):
        VPPrecond(Affine(), object())


def test_wrappers_on_real_nets_and_bad_sigma():
    torch.manual_seed(0)
    unet = UNet(
        UNetConfig(
            ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), in_ch=1, resolution=8
        )
    )
    d = VPPrecond(unet, DiscreteVP.linear())
    x = torch.randn(2, 1, 8, 8, generator=gen())
    sigma = torch.tensor([0.1, 10.0])
    out = d(x, sigma)
    assert out.shape == x.shape and out.dtype == torch.float32
    # fresh U-Net predicts eps = 0, so D = x (c_skip = 1)
    torch.testing.assert_close(out, x)
    mlp = EDMPrecond(MLP(MLPConfig(dim=2, width=8, depth=1, emb_dim=4)))
    y = mlp(torch.randn(3, 2, generator=gen()), torch.tensor([0.1, 1.0, 10.0]))
    y.sum().backward()
    assert y.shape == (3, 2) and mlp.net.out.weight.grad is not None
    with pytest.raises(ValueError, match=r"\(B,\)"):
        mlp(torch.zeros(3, 2), torch.tensor(1.0))
