"""The SMD model (SMD paper, Sec. 4): the network with its latent g_phi and hyper-layers,
the Eq. (15) loss through the library's Trainer, Alg. 2 through the DDPM/DDIM samplers,
the paper-sized configuration, and the shipped configs."""

from __future__ import annotations

import inspect
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from gmdiff.cli import load_config
from gmdiff.data import ring2d
from gmdiff.losses import SMD_REDUCTIONS, smd_loss
from gmdiff.nets import (
    MLP,
    MLPConfig,
    SMDConfig,
    SMDNet,
    UNet,
    UNetConfig,
    VPPrecond,
    build_net,
    count_params,
    get_config,
    smd_param_counts,
)
from gmdiff.samplers import ddim, ddpm
from gmdiff.schedules import DiscreteVP
from gmdiff.storage import load_checkpoint
from gmdiff.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TOY = SMDConfig(
    base=MLPConfig(dim=2, width=32, depth=2, emb_dim=16),
    latent_dim=4,
    latent_width=16,
    latent_depth=1,
    time_dim=8,
)
IMG = SMDConfig(
    base=UNetConfig(
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        dropout=0.0,
        in_ch=1,
        resolution=8,
    ),
    latent_dim=4,
    latent_width=8,
    latent_depth=1,
    latent_mult=(1,),
)


def make(config: SMDConfig, seed: int = 0) -> SMDNet:
    torch.manual_seed(seed)
    net = SMDNet(config)
    if isinstance(net.net, UNet):  # DDPM zero-initialises the output conv: eps = 0
        net.net.conv_out.reset_parameters()
    return net


def batch(config: SMDConfig, b: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    shape = (b, 2) if isinstance(config.base, MLPConfig) else (b, 1, 8, 8)
    return torch.randn(shape, generator=g), torch.randint(0, 10, (b,), generator=g)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Rows:
    """Forward hook counting calls and rows (batch entries) through a module."""

    def __init__(self, module: nn.Module):
        self.calls = self.rows = 0
        module.register_forward_hook(self)

    def __call__(self, module, args, out):
        self.calls += 1
        self.rows += args[0].shape[0]


# ------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [TOY, IMG], ids=["mlp", "unet"])
def test_shapes_and_determinism(config):
    net = make(config)
    x, t = batch(config)
    with torch.no_grad():
        eps = net(x, t, generator=gen(1))
        assert eps.shape == x.shape
        torch.testing.assert_close(net(x, t, generator=gen(1)), eps, rtol=0, atol=0)
        # eta drawn from the generator == the same eta passed in == its latent passed in
        eta = net.sample_eta(x, gen(1))
        assert eta.shape == (x.shape[0], config.eta_channels, *x.shape[2:])
        z = net.latent_z(x, t, eta=eta)
        spatial = x.shape[2:]
        assert z.shape == (x.shape[0], config.latent_dim, *spatial)
        torch.testing.assert_close(net(x, t, eta=eta), eps, rtol=0, atol=0)
        torch.testing.assert_close(net(x, t, z), eps, rtol=0, atol=0)
        with net.eta_from(gen(1)):
            torch.testing.assert_close(net(x, t), eps, rtol=0, atol=0)
        assert net.eta_generator is None
    with pytest.raises(ValueError, match="either the latent z or the noise eta"):
        net(x, t, z, eta=eta)


@pytest.mark.parametrize("config", [TOY, IMG], ids=["mlp", "unet"])
def test_output_varies_with_eta_unless_the_hyper_network_is_zeroed(config):
    """At fixed x_t the output changes with eta; zeroing the generators of the A_k makes
    it independent of eta, and zeroing the hyper-layers' output projections gives back the
    base network exactly (the SMD layers are then the identity)."""
    net = make(config)
    x, t = batch(config)
    with torch.no_grad():
        draws = torch.stack([net(x, t, generator=gen(s)) for s in range(6)])
        spread = draws.std(0).mean() / draws.abs().mean()
        assert spread > 1e-3, spread
        for layer in net.hyper:
            for g in layer.gen_z:
                nn.init.zeros_(g.weight), nn.init.zeros_(g.bias)
        still = torch.stack([net(x, t, generator=gen(s)) for s in range(6)])
        torch.testing.assert_close(still, still[:1].expand_as(still), rtol=0, atol=0)
        assert not torch.equal(still[0], draws[0])  # the time path E_k e(t) remains
        for layer in net.hyper:
            nn.init.zeros_(layer.outp.weight), nn.init.zeros_(layer.outp.bias)
        torch.testing.assert_close(net(x, t, generator=gen(0)), net.net(x, t), rtol=0, atol=0)


@pytest.mark.parametrize("config", [TOY, IMG], ids=["mlp", "unet"])
def test_output_grows_at_most_linearly_with_x(config):
    """tanh bounds the generated A_k, so the SMD layers are linear in the features with a
    bounded gain: eps grows like |x_t| (as the base net), not like |x_t|^5 (an unbounded
    rank-one A_k per factor), which made an untrained model's samples overflow."""
    net = make(config)
    x, t = batch(config)
    with torch.no_grad():
        small, big = (net(c * x, t, generator=gen(0)).abs().mean() for c in (1e2, 1e4))
        assert big / small < 3 * 1e2, (big / small).item()
        # an untrained model samples without overflow on a harsh few-step schedule
        sched = DiscreteVP.cosine(T=10)  # alpha_T = 0.005 divides the first eps error
        with net.eta_from(gen(1)):
            x0 = ddpm(VPPrecond(net, sched), sched, torch.randn(x.shape, generator=gen(2)), 10)
        assert torch.isfinite(x0).all()


def test_modulate_hook_is_called_at_two_points_and_defaults_to_the_plain_net():
    for base, x in ((MLP(TOY.base), batch(TOY)[0]), (UNet(IMG.base), batch(IMG)[0])):
        t = torch.arange(x.shape[0])
        seen = []

        def spy(k, h, seen=seen):
            seen.append((k, h.shape[1]))
            return h

        torch.testing.assert_close(base(x, t, modulate=spy), base(x, t), rtol=0, atol=0)
        assert [k for k, _ in seen] == [0, 1]
    assert seen == [(0, IMG.feature_widths[0]), (1, IMG.feature_widths[1])]


def test_config_checks_overrides_and_counts():
    with pytest.raises(TypeError, match="MLPConfig or a UNetConfig"):
        SMDConfig(base=None)
    with pytest.raises(ValueError, match="latent_dim"):
        SMDConfig(base=MLPConfig(), latent_dim=0)
    with pytest.raises(ValueError, match="time_dim"):
        SMDConfig(base=MLPConfig(), time_dim=3)
    cfg = get_config("smd_toy_mlp", latent_dim=8, base={"width": 64})
    assert (cfg.latent_dim, cfg.base.width, cfg.base.depth) == (8, 64, 3)
    assert get_config("smd_digits", latent_mult=[1, 2]).latent_mult == (1, 2)
    parts = smd_param_counts(cfg)
    assert parts["total"] == parts["base"] + parts["latent"] + parts["hyper"]
    built = sum(p.numel() for p in build_net(cfg).parameters())
    assert parts["total"] == count_params(cfg) == built
    assert parts["base"] == count_params(cfg.base)


# ------------------------------------------------------------------------------------
# The loss (Eq. 15, Alg. 1) with the library's Trainer
# ------------------------------------------------------------------------------------

# few steps, as where SMD matters (SMD paper, Sec. 5.2); alpha_bar_T = 0.03 keeps an
# untrained network's x_0 estimates (divided by alpha_T) moderate in the sampler tests
SCHED = DiscreteVP.linear(T=10, beta_1=0.05, beta_T=0.5)


def test_loss_trains_the_toy_with_the_trainer(tmp_path):
    data = ring2d(k=4, radius=1.5, std=0.1).sample(512, generator=gen(0)).float()
    loss = partial(smd_loss, schedule=SCHED, n_eta=2)
    cfg = TrainConfig(
        steps=40, batch_size=128, lr=1e-2, ema_decay=0.9, log_every=10, device="cpu"
    )
    trainer = Trainer(make(TOY), loss, data, cfg, tmp_path)
    history = trainer.fit()
    losses = [h["loss"] for h in history]
    assert losses[-1] < 0.8 * losses[0], losses  # 0.72 -> 0.45 at seed 0
    # the checkpoint (model and EMA) loads into a fresh SMDNet
    fresh = make(TOY, seed=1)
    assert load_checkpoint(tmp_path / "checkpoint.pt", fresh) == 40
    for a, b in zip(fresh.state_dict().values(), trainer.ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_loss_reductions_and_draws():
    """n_eta draws share (n, eps) and differ in eta; "mean" is Eq. (15)'s Monte Carlo
    average, "min" the best draw, "softmin" between the two (-> mean as tau grows)."""
    net = make(TOY)
    x0 = batch(TOY, 8)[0]
    captured = {}

    def spy(ctx):
        captured["z"] = ctx.z
        return torch.zeros(())

    def recording(x, t, generator):
        captured["eps_hat"] = net(x, t, generator=generator)
        return captured["eps_hat"]

    outs = {}
    for red, tau in (("mean", 1.0), ("min", 1.0), ("softmin", 0.05), ("softmin", 10.0)):
        out = smd_loss(
            recording,
            x0,
            SCHED,
            generator=gen(3),
            n_eta=5,
            reduction=red,
            temperature=tau,
            extra_terms={"spy": spy},
        )
        outs[red, tau] = out["smd"]
    eps_hat = captured["eps_hat"].reshape(5, 8, 2)  # the same draws at every call (seed 3)
    assert (eps_hat[1:] - eps_hat[:1]).abs().amax() > 0  # distinct eta per draw
    err = ((eps_hat - captured["z"]) ** 2).mean(2)
    torch.testing.assert_close(outs["mean", 1.0], err.mean(0).mean())
    torch.testing.assert_close(outs["min", 1.0], err.min(0).values.mean())
    assert outs["min", 1.0] <= outs["softmin", 0.05] <= outs["softmin", 10.0] <= outs["mean", 1.0]
    # -tau log mean exp(-e / tau) = mean(e) - var(e) / (2 tau) + O(tau^-2)
    var = err.var(0, unbiased=False).mean()
    expected = outs["mean", 1.0] - var / 20
    torch.testing.assert_close(outs["softmin", 10.0], expected, rtol=1e-2, atol=0)
    # one draw: all reductions agree
    one = [smd_loss(net, x0, SCHED, generator=gen(3), reduction=r)["loss"] for r in SMD_REDUCTIONS]
    torch.testing.assert_close(one[1], one[0]), torch.testing.assert_close(one[2], one[0])
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_eta"):
            smd_loss(net, x0, SCHED, n_eta=bad)
    with pytest.raises(ValueError, match="reduction"):
        smd_loss(net, x0, SCHED, reduction="max")


@pytest.mark.parametrize("config", [TOY, IMG], ids=["mlp", "unet"])
def test_cost_is_linear_in_n_eta(config):
    """Fig. 2b's cost axis: one batched call of the denoiser and of g_phi per loss, with
    n_eta * B rows each (counted, not timed)."""
    net = make(config)
    x0 = batch(config, 3)[0]
    base, latent = Rows(net.net), Rows(net.latent)
    for k in (1, 2, 4, 7):
        base.calls = base.rows = latent.calls = latent.rows = 0
        smd_loss(net, x0, SCHED, generator=gen(0), n_eta=k)["loss"].backward()
        assert (base.calls, latent.calls) == (1, 1)
        assert base.rows == latent.rows == k * x0.shape[0]


# ------------------------------------------------------------------------------------
# Alg. 2 through the library's samplers
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [TOY, IMG], ids=["mlp", "unet"])
def test_alg2_is_the_ddpm_sampler_with_a_fresh_latent_per_step(config):
    net = make(config).eval()
    denoiser = VPPrecond(net, SCHED)
    x_T = torch.randn(batch(config)[0].shape, generator=gen(4))
    etas = []
    net.latent.register_forward_pre_hook(
        lambda m, args: etas.append(args[0][:, config.data_channels :].clone())
    )
    with torch.no_grad():
        with net.eta_from(gen(5)):
            a = ddpm(denoiser, SCHED, x_T, SCHED.T, generator=gen(6))
        with net.eta_from(gen(5)):
            b = ddpm(denoiser, SCHED, x_T, SCHED.T, generator=gen(6))
        with net.eta_from(gen(9)):
            c = ddpm(denoiser, SCHED, x_T, SCHED.T, generator=gen(6))
        assert torch.isfinite(a).all() and a.shape == x_T.shape
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, c)  # same x_T and step noise, other latents
        assert len(etas) == 3 * SCHED.T  # Alg. 2 line 4: one eta per step
        assert all(not torch.equal(etas[i], etas[i + 1]) for i in range(SCHED.T - 1))
        # DDIM (SMD paper, Sec. 5.2) through the same denoiser, fewer steps
        with net.eta_from(gen(5)):
            d = ddim(denoiser, SCHED, x_T, 5, generator=gen(6))
        assert torch.isfinite(d).all() and len(etas) == 3 * SCHED.T + 5
        # with the hyper-layers switched off Alg. 2 is DDPM's Alg. 2 on the base network
        for layer in net.hyper:
            nn.init.zeros_(layer.outp.weight), nn.init.zeros_(layer.outp.bias)
        with net.eta_from(gen(5)):
            smd = ddpm(denoiser, SCHED, x_T, SCHED.T, generator=gen(6))
        plain = ddpm(VPPrecond(net.net, SCHED), SCHED, x_T, SCHED.T, generator=gen(6))
        torch.testing.assert_close(smd, plain, rtol=0, atol=0)


# ------------------------------------------------------------------------------------
# Paper size and shipped configs
# ------------------------------------------------------------------------------------


def test_paper_sized_unet_builds_and_takes_a_training_step_on_cpu():
    """DDPM's CIFAR-10 U-Net (35.75M, Ho et al. 2020 App. B) plus the SMD layers at the
    authors' released sizes: 36.80M; one Trainer step at batch 2 with n_eta = 2 (DDPM's
    zero-initialised output convolution is the only layer with a gradient at step 1)."""
    cfg = get_config("smd_ddpm_cifar10")
    parts = smd_param_counts(cfg)
    assert parts["base"] == count_params(get_config("ddpm_cifar10")) == 35_746_307
    assert parts == {"base": 35_746_307, "latent": 947_940, "hyper": 104_860, "total": 36_799_107}
    torch.manual_seed(0)
    net = SMDNet(cfg)
    data = torch.randn(2, 3, 32, 32, generator=gen(0)).clamp(-1, 1)
    train = TrainConfig(steps=1, batch_size=2, lr=2e-4, log_every=1, device="cpu")
    trainer = Trainer(net, partial(smd_loss, schedule=DiscreteVP.linear(), n_eta=2), data, train)
    before = trainer.model.net.conv_out.weight.detach().clone()
    (rec,) = trainer.fit()
    assert torch.isfinite(torch.tensor(rec["loss"]))
    assert not torch.equal(trainer.model.net.conv_out.weight, before)


def schedule_of(cfg) -> DiscreteVP:
    """The run config's ddpm_linear / ddpm_cosine schedule (as the CLI builds it)."""
    kind = {"ddpm_linear": DiscreteVP.linear, "ddpm_cosine": DiscreteVP.cosine}
    return kind[cfg.schedule.name](**cfg.schedule.options)


def test_shipped_smd_configs_build_their_pieces():
    """configs/smd_*.yaml name a registered SMD network, a DDPM schedule and loss options
    that smd_loss takes (the CLI wiring of loss "smd" is separate); the toy takes a step."""
    for name in ("smd_toy.yaml", "smd_digits.yaml", "smd_cifar10.yaml"):
        cfg = load_config(CONFIGS / name)
        assert cfg.loss.name == "smd" and cfg.model.precond == "vp"
        net_cfg = get_config(cfg.model.net, **cfg.model.overrides)
        assert isinstance(net_cfg, SMDConfig)
        sched = schedule_of(cfg)
        inspect.signature(smd_loss).bind_partial(None, None, sched, **cfg.loss.options)
        assert cfg.sample.sampler in ("ddpm", "ddim") and cfg.sample.steps <= sched.T
    assert cfg.model.net == "smd_ddpm_cifar10"
    toy = load_config(CONFIGS / "smd_toy.yaml")
    net = make(get_config(toy.model.net, **toy.model.overrides))
    sched = schedule_of(toy)
    x0 = ring2d(**toy.data.options).sample(16, generator=gen(0)).float()
    out = partial(smd_loss, schedule=sched, **toy.loss.options)(net, x0, generator=gen(1))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
