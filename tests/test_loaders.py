"""Networks gmdiff did not train: a diffusers model saved in its own format and an
EDM-format state dict load as denoisers equal to the originals, and sample through
``gmdiff sample`` (teleportation included)."""

import hashlib
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gmdiff import nets
from gmdiff.analytic import Gaussian
from gmdiff.cli import main
from gmdiff.commands import load_model
from gmdiff.config import load_config
from gmdiff.images import load_folder
from gmdiff.loaders import Pretrained, load_diffusers, load_edm
from gmdiff.runs import draw_samples
from gmdiff.samplers import SAMPLERS
from gmdiff.schedules import EDM, DiscreteVP

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "configs" / "digits_edm.yaml")


def _tiny_unet(prediction_type: str = "epsilon"):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    )
    sched = DDPMScheduler(
        num_train_timesteps=100, beta_schedule="linear", prediction_type=prediction_type
    )
    return unet, sched


@pytest.fixture(scope="module")
def diffusers_dir(tmp_path_factory):
    """A tiny DDPMPipeline saved with diffusers' own save_pretrained."""
    from diffusers import DDPMPipeline

    unet, sched = _tiny_unet()
    folder = tmp_path_factory.mktemp("ddpm") / "tiny-ddpm"
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)
    return folder


# -- diffusers ----------------------------------------------------------------------------


def test_diffusers_denoiser_equals_the_original(diffusers_dir):
    from diffusers import DDPMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(diffusers_dir / "unet", low_cpu_mem_usage=False).eval()
    sched = DDPMScheduler.from_pretrained(diffusers_dir / "scheduler")
    pre = load_diffusers(diffusers_dir)
    assert isinstance(pre.schedule, DiscreteVP) and pre.schedule.T == 100
    assert pre.shape == (1, 8, 8)
    assert torch.allclose(pre.schedule.betas, sched.betas.double())
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 7, 50, 99])  # diffusers' 0-based timesteps; our index n = t + 1
    x0 = torch.randn(4, 1, 8, 8, generator=g)
    ab = sched.alphas_cumprod[t].double().reshape(-1, 1, 1, 1)
    xt = (ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(x0.shape, generator=g)).float()
    with torch.no_grad():
        eps = unet(xt, t).sample.double()
        want = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()  # DDPM, Eq. 4: x0 from eps
        sigma = ((1 - ab) / ab).sqrt().flatten()
        got = pre.denoiser((xt / ab.sqrt()).double(), sigma)
    err = ((got - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)).max().item()
    assert err < 1e-5, err
    # between two levels n and n + 1 the network is fed a timestep between n - 1 and n
    n = torch.tensor([1, 8, 51, 99])
    mid = torch.sqrt(pre.schedule.sigma_edm(n) * pre.schedule.sigma_edm(n + 1))
    c = pre.denoiser.c_noise(mid)
    assert ((c > n - 1) & (c < n)).all(), c


def test_diffusers_refuses_unsupported_models(tmp_path):
    from diffusers import DDPMPipeline

    unet, sched = _tiny_unet("v_prediction")
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path / "v")
    with pytest.raises(ValueError, match="v_prediction.*not supported"):
        load_diffusers(tmp_path / "v")
    with pytest.raises(FileNotFoundError, match="neither a diffusers pipeline"):
        load_diffusers(tmp_path)


# -- EDM format ---------------------------------------------------------------------------


class _EDMWrapper(nn.Module):
    """The layout of EDM's VPPrecond / VEPrecond / EDMPrecond: the raw network as ``model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def _edm_reference(model: nn.Module, precond: str, x: torch.Tensor, sigma: torch.Tensor):
    """EDM's preconditioning as its training/networks.py computes it (Karras et al. 2022,
    Table 1), written out here independently of gmdiff.nets.precond."""
    s = sigma.reshape(-1, 1, 1, 1)
    if precond == "vp":
        beta_min, beta_d, M = 0.1, 19.9, 1000
        t = ((beta_min**2 + 2 * beta_d * (1 + s**2).log()).sqrt() - beta_min) / beta_d
        c_skip, c_out, c_in, c_noise = 1, -s, 1 / (s**2 + 1).sqrt(), (M - 1) * t
    elif precond == "ve":
        c_skip, c_out, c_in, c_noise = 1, s, 1, (0.5 * s).log()
    else:
        sd = 0.5
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + s**2).sqrt()
        c_noise = s.log() / 4
    return c_skip * x + c_out * model(c_in * x, c_noise.flatten())


#: A small SongUNet (EDM's DDPM++ / NCSN++ code) on 1 x 8 x 8 images, NCSN++-style.
_TINY_SONG = nets.SongUNetConfig(
    resolution=8, in_ch=1, model_channels=16, channel_mult=(1, 2), num_blocks=1,
    attn_resolutions=(4,), dropout=0.0, augment_dim=9, embedding_type="fourier",
    channel_mult_noise=2, encoder_type="residual", resample_filter=(1, 3, 3, 1),
)  # fmt: skip
_SONG_OVERRIDES = (
    "{resolution: 8, in_ch: 1, model_channels: 16, channel_mult: [1, 2], num_blocks: 1, "
    "attn_resolutions: [4], dropout: 0.0}"
)


def _randomised(net: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net.eval()


def test_song_unet_matches_edm_parameter_names_and_counts():
    """EDM's CIFAR-10 networks: parameter counts as EDM's training/networks.py (commit
    b2a26c9) builds them (55,733,891 DDPM++, 56,397,827 NCSN++; measured with that code,
    whose outputs the port also matched exactly on random weights, all encoder and decoder
    types, during development), and EDM's parameter names."""
    counts = {"edm_ddpmpp_cifar10": 55_733_891, "edm_ncsnpp_cifar10": 56_397_827}
    for name, n in counts.items():
        assert nets.count_params(nets.get_config(name)) == n, name
    with torch.device("meta"):
        keys = set(nets.build_net(nets.get_config("edm_ncsnpp_cifar10")).state_dict())
    for k in ("map_noise.freqs", "map_augment.weight", "enc.32x32_conv.weight",
              "enc.16x16_down.skip.resample_filter", "enc.16x16_aux_residual.weight",
              "enc.16x16_block0.qkv.weight", "dec.8x8_in0.proj.bias",
              "dec.32x32_aux_norm.weight", "dec.32x32_aux_conv.weight"):  # fmt: skip
        assert k in keys, k


def _state_digest(net: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(f"{k} {v.dtype} {tuple(v.shape)}".encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def test_song_unet_freezes_its_augmentation_map_and_keeps_its_weights():
    """The augmentation map (kept for EDM's weights, read by no forward) is frozen, so DDP
    trains a SongUNet without find_unused_parameters (tests/test_train.py); its state dict
    (keys, shapes, seeded initial values) is the one built before the freeze: digests
    recorded then, for small versions of both CIFAR-10 networks (the same code paths). A
    change of torch's CPU generator would also change them."""
    small = {"resolution": 8, "in_ch": 1, "model_channels": 8, "channel_mult": (1, 2)}
    small |= {"num_blocks": 1, "attn_resolutions": (4,)}
    recorded = {"edm_ddpmpp_cifar10": "0626a53b83be6963", "edm_ncsnpp_cifar10": "93532c2f9a600ed7"}
    for name, digest in recorded.items():
        net = nets.build_net(nets.get_config(name, **small), seed=0)
        assert _state_digest(net) == digest, name
        frozen = [k for k, p in net.named_parameters() if not p.requires_grad]
        assert frozen == ["map_augment.weight"], name
    net.map_augment.weight.data.add_(1.0)  # the digest sees a changed value
    assert _state_digest(net) != digest


@pytest.mark.parametrize("precond", ["vp", "ve", "edm"])
def test_edm_song_unet_state_dict_loads(tmp_path, precond):
    original = _randomised(nets.build_net(_TINY_SONG), seed=4)
    torch.save({"ema": _EDMWrapper(original).state_dict()}, tmp_path / "song.pt")
    pre = load_edm(tmp_path / "song.pt", nets.build_net(_TINY_SONG), precond, shape=(1, 8, 8))
    sigma = torch.tensor([0.01, 0.5, 5.0])
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = pre.denoiser(x, sigma), _edm_reference(original, precond, x, sigma)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cli_samples_an_edm_song_unet(tmp_path):
    path = tmp_path / "song.pt"
    torch.save(_EDMWrapper(_randomised(nets.build_net(_TINY_SONG), seed=5)).state_dict(), path)
    song = ["--set", "model.net=edm_ncsnpp_cifar10", "--set", f"model.overrides={_SONG_OVERRIDES}"]
    assert main(_sample_args(tmp_path, path, "heun", 3, *song)) == 0
    cfg = load_config(DIGITS, [a for a in song if a != "--set"])
    _same_as_direct(tmp_path, load_model(cfg, pretrained=path), "heun", 3)


def _digits_net(seed: int = 0) -> nn.Module:
    """The digits U-Net with every weight drawn at random (its output layer starts at zero,
    which would make all preconditionings agree)."""
    return _randomised(nets.build_net(nets.get_config("digits"), seed=seed), seed)


@pytest.mark.parametrize("precond", ["vp", "ve", "edm"])
def test_edm_state_dict_denoiser_equals_edm_formulas(tmp_path, precond):
    original = _digits_net(seed=1)
    path = tmp_path / "net.pt"
    torch.save({"ema": _EDMWrapper(original).state_dict()}, path)
    pre = load_edm(path, _digits_net(seed=2), precond, shape=(1, 8, 8))
    g = torch.Generator().manual_seed(0)
    sigma = torch.tensor([0.002, 0.3, 2.0, 80.0])
    x = torch.randn(4, 1, 8, 8, generator=g) * (1 + sigma.reshape(-1, 1, 1, 1))
    with torch.no_grad():
        got = pre.denoiser(x, sigma)
        want = _edm_reference(original, precond, x, sigma)
        other = _edm_reference(original, "ve" if precond != "ve" else "edm", x, sigma)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, other, rtol=1e-3, atol=1e-3)  # the check tells them apart


def test_edm_format_refusals(tmp_path):
    net = _digits_net()
    (tmp_path / "net.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match="torch_utils.persistence"):
        load_edm(tmp_path / "net.pkl", net, "edm", shape=(1, 8, 8))
    adm = {"model.out_conv.weight": torch.zeros(3), "model.enc.32x32_conv.weight": torch.zeros(1)}
    torch.save(adm, tmp_path / "adm-net.pt")
    with pytest.raises(ValueError, match="DhariwalUNet"):
        load_edm(tmp_path / "adm-net.pt", net, "edm", shape=(1, 8, 8))
    torch.save({"model.map_label.weight": torch.zeros(3)}, tmp_path / "cond.pt")
    with pytest.raises(ValueError, match="class-conditional"):
        load_edm(tmp_path / "cond.pt", net, "edm", shape=(1, 8, 8))
    song = nets.build_net(_TINY_SONG)
    torch.save(_EDMWrapper(song).state_dict(), tmp_path / "song.pt")
    with pytest.raises(ValueError, match="SongUNet: choose model.net edm_ddpmpp_cifar10"):
        load_edm(tmp_path / "song.pt", net, "edm", shape=(1, 8, 8))
    torch.save({"u": torch.zeros(3), "model.x": torch.zeros(1)}, tmp_path / "adm.pt")
    with pytest.raises(ValueError, match="iDDPMPrecond"):
        load_edm(tmp_path / "adm.pt", net, "edm", shape=(1, 8, 8))
    mnist = nets.build_net(nets.get_config("mnist"))
    torch.save(_EDMWrapper(mnist).state_dict(), tmp_path / "mnist.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_edm(tmp_path / "mnist.pt", net, "edm", shape=(1, 8, 8))
    with pytest.raises(ValueError, match="not supported"):
        load_edm(tmp_path / "mnist.pt", net, "iddpm", shape=(1, 8, 8))


# -- through `gmdiff sample` --------------------------------------------------------------


def _sample_args(out: Path, pretrained: Path, sampler: str, steps: int, *extra: str) -> list:
    return [
        "sample", "--config", DIGITS, "--pretrained", str(pretrained),
        "--set", f"out_dir={out}", "--set", "sample.n=6", "--set", "sample.batch=4",
        "--set", f"sample.sampler={sampler}", "--set", f"sample.steps={steps}", *extra,
    ]  # fmt: skip


def _same_as_direct(out: Path, pre: Pretrained, sampler: str, steps: int, **options) -> None:
    """The CLI's samples are those of the loaded model drawn directly, and its PNGs hold
    them quantised to 8 bits."""
    got = torch.load(out / "samples.pt", weights_only=True)["samples"]
    want = draw_samples(
        pre.denoiser, pre.schedule_for(sampler), SAMPLERS[sampler], steps, pre.shape, 6,
        seed=0, batch=4, **options,
    )  # fmt: skip
    assert torch.equal(got, want)
    pngs = load_folder(out / "images")
    assert pngs.shape == (6, 1, 8, 8) and (out / "grid.png").is_file()
    assert (pngs - got.clamp(-1, 1)).abs().max() <= 1 / 255 + 1e-6


def _digits_gaussian() -> Gaussian:
    from gmdiff.data import digits8x8

    return Gaussian.from_data(digits8x8()[0].flatten(1).double())


@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("heun", 4)])
def test_cli_samples_a_diffusers_model(diffusers_dir, tmp_path, sampler, steps, capsys):
    assert main(_sample_args(tmp_path, diffusers_dir, sampler, steps)) == 0
    assert "PNGs" in capsys.readouterr().out
    _same_as_direct(tmp_path, load_diffusers(diffusers_dir), sampler, steps)


def test_cli_teleports_a_diffusers_model(diffusers_dir, tmp_path):
    extra = ["--set", "sample.options={skip: 2, gaussian: data}"]
    assert main(_sample_args(tmp_path, diffusers_dir, "teleport_heun", 5, *extra)) == 0
    pre = load_diffusers(diffusers_dir)
    assert isinstance(pre.schedule_for("teleport_heun"), EDM)
    lo, hi = pre.sigma_range()
    assert math.isclose(lo, pre.schedule.sigma_edm(1).item())
    assert math.isclose(hi, pre.schedule.sigma_edm(100).item())
    _same_as_direct(tmp_path, pre, "teleport_heun", 5, skip=2, gaussian=_digits_gaussian())


def test_cli_samples_and_teleports_an_edm_state_dict(tmp_path):
    path = tmp_path / "edm-digits.pt"
    torch.save({"ema": _EDMWrapper(_digits_net(seed=3)).state_dict()}, path)
    cfg = load_config(DIGITS)
    pre = load_model(cfg, pretrained=path)
    assert pre.origin.startswith("EDM-format EDMPrecond") and pre.weights == "as stored"
    out = tmp_path / "heun"
    assert main(_sample_args(out, path, "heun", 4)) == 0
    _same_as_direct(out, pre, "heun", 4)
    out = tmp_path / "teleport"
    extra = ["--set", "sample.options={skip: 1, gaussian: data}", "--weights", "ema"]
    assert main(_sample_args(out, path, "teleport_heun", 4, *extra)) == 0
    _same_as_direct(out, pre, "teleport_heun", 4, skip=1, gaussian=_digits_gaussian())
    assert torch.load(out / "samples.pt", weights_only=True)["weights"] == "ema"


def test_cli_pretrained_errors_are_one_sentence(tmp_path, capsys):
    assert main(_sample_args(tmp_path, tmp_path / "missing.pt", "heun", 4)) == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and len(err.strip().splitlines()) == 1


def test_gaussian_score_analyses_run_on_a_loaded_model(diffusers_dir):
    """GS-6's score comparison and the Heun trajectories take the loaded denoiser through
    NetworkScore (flat float64 rows), as they take gmdiff's own networks."""
    from gmdiff.papers import gs_networks as gsn

    pre = load_diffusers(diffusers_dir)
    net = gsn.NetworkScore(pre.denoiser, pre.shape)
    g = _digits_gaussian()
    x = g.mean[None].expand(8, -1) + 0.3 * torch.randn(8, 64, generator=torch.Generator())
    sig = torch.full((8,), 0.5, dtype=torch.float64)
    with torch.no_grad():
        direct = pre.denoiser(x.reshape(8, 1, 8, 8), sig).reshape(8, 64)
    assert torch.allclose(net.denoiser(x, 0.5), direct, atol=1e-5)
    table = gsn.score_fuv_table(net, {"gaussian": g}, x, [0.1, 1.0], n=8, seed=0)
    assert table.shape[0] == 2 and table["FUV"].notna().all() and (table["FUV"] > 0).all()
    lo, hi = pre.sigma_range()
    traj = gsn.heun_trajectory(net, hi * torch.randn(3, 64, dtype=torch.float64), 4,
                               EDM(sigma_min=lo, sigma_max=hi))  # fmt: skip
    assert traj.sample.shape == (3, 64) and torch.isfinite(traj.sample).all()


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_on_a_loaded_model_equals_diffusers_own_ddim(diffusers_dir, spacing):
    """End to end: gmdiff's DDIM (eta = 0) on the loaded model and diffusers'
    DDIMScheduler loop on the original UNet, from the same x_T and with the same timestep
    spacing, give the same samples (diffusers' timestep t is our index n - 1; no clipping
    on either side). The two spacings' samples differ by ~0.5, so the check can fail."""
    from diffusers import DDIMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(diffusers_dir / "unet", low_cpu_mem_usage=False).eval()
    sched = DDIMScheduler.from_pretrained(diffusers_dir / "scheduler")
    sched.register_to_config(clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing)
    sched = DDIMScheduler.from_config(sched.config)
    steps = 10
    sched.set_timesteps(steps)
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = x_T.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
        pre = load_diffusers(diffusers_dir)
        ours = SAMPLERS["ddim"](pre.denoiser, pre.schedule, x_T.double(), steps, spacing=spacing)
    assert torch.allclose(ours.float(), x, atol=1e-4), (ours.float() - x).abs().max()


def test_cli_bits_per_dim_of_a_loaded_diffusers_model(diffusers_dir, tmp_path):
    """`gmdiff evaluate --pretrained` with evaluate.likelihood_n: bits/dim of digits under
    the loaded DDPM network, integrated on EDM's process over the network's noise range."""
    import json

    assert main(_sample_args(tmp_path, diffusers_dir, "ddim", 2)) == 0
    ev = ["evaluate", "--config", DIGITS, "--pretrained", str(diffusers_dir),
          "--set", f"out_dir={tmp_path}", "--set", "evaluate.likelihood_n=4",
          "--set", "sample.batch=2"]  # fmt: skip
    assert main(ev) == 0
    res = json.loads((tmp_path / "metrics.json").read_text())["likelihood"]
    assert res["dequantized"] is True and res["likelihood_n"] == 4 and res["nfe"] > 0
    assert res["t_min"] == pytest.approx(load_diffusers(diffusers_dir).sigma_range()[0])
    assert math.isfinite(res["bpd"]) and res["bpd_stderr"] > 0
