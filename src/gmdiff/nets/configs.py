"""Named network configurations and their parameter counts against the papers.

Paper configs:

* ``ddpm_cifar10`` -- the DDPM CIFAR-10 U-Net (Ho et al. 2020, App. B: ch 128, ch_mult
  (1, 2, 2, 2), 2 residual blocks, attention at 16x16, dropout 0.1), published with
  35.7M parameters.
* ``ncsnpp_cifar10_ve`` -- NCSN++ of score_sde's continuous VE CIFAR-10 model (Song et al.
  2021, App. H; ``configs/ve/cifar10_ncsnpp_continuous.py``: nf 128, ch_mult (1, 2, 2, 2),
  4 blocks, attention at 16). The paper states no parameter count for it, so the published
  column is ``None``. Note: score_sde stores the frozen Fourier frequencies (128 values) as
  a parameter, we store them as a buffer, so its ``parameters()`` count is ours + 128.

Small configs for CPU chapters (not from a paper):

* ``digits`` -- U-Net base 32, ch_mult (1, 2), one block per level, 8x8x1 (sklearn digits).
* ``mnist`` -- U-Net base 16, ch_mult (1, 2, 2), two blocks, attention at 7x7, 28x28x1.

SMD (Li et al. 2024, Sec. 4; :mod:`gmdiff.nets.smd`), eps networks for DDPM time inputs:

* ``smd_ddpm_cifar10`` -- the DDPM CIFAR-10 U-Net above plus the SMD layers at the sizes
  of the authors' released CIFAR run (``cases/run_smd.sh``: latent_dim 100, hyper-network
  with 2 factors; g_phi a U-Net of base width 128 / 4 = 32, multipliers (1, 2)). The paper
  states no parameter count.
* ``smd_digits`` -- the ``digits`` U-Net plus small SMD layers (latent 16, g_phi base 16).
* ``smd_toy_mlp`` -- an MLP 3 x 128 on 2-D data plus SMD layers (latent 16, g_phi 2 x 64).

GM-DDPM (:mod:`gmdiff.nets.gm_ddpm`), an eps network plus the component classifier:

* ``gm_ddpm_cifar10`` -- the DDPM CIFAR-10 U-Net above (the paper: "a UNet model
  architecture similar to that used by Ho et al.", Sec. 4.1) and an MLP 2 x 256 classifier.
* ``gm_ddpm_digits`` -- the ``digits`` U-Net and an MLP 2 x 128 classifier.
* ``gm_ddpm_toy_mlp`` -- an MLP 3 x 128 on 2-D data and an MLP 2 x 64 classifier.

EDM's networks (Karras et al. 2022; :mod:`gmdiff.nets.edm_song`, for their released
weights through :func:`gmdiff.loaders.load_edm`):

* ``edm_ddpmpp_cifar10`` -- EDM's unconditional CIFAR-10 DDPM++ (SongUNet: 128 channels,
  multipliers (2, 2, 2), 4 blocks, attention at 16, augmentation labels of size 9);
  55,733,891 parameters, the count EDM's own code gives.
* ``edm_ncsnpp_cifar10`` -- the same with NCSN++'s Fourier embedding, residual encoder and
  (1, 3, 3, 1) resampling filter; 56,397,827 parameters.

``get_config(name, **overrides)`` replaces fields; for an SMD config a mapping given for
``base`` replaces fields of the base network (``base={"dropout": 0.0}``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import is_dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import nn

from gmdiff.nets.edm_song import SongUNet, SongUNetConfig
from gmdiff.nets.gm_ddpm import GMDDPMConfig, GMDDPMNet
from gmdiff.nets.mlp import MLP, MLPConfig
from gmdiff.nets.ncsnpp import NCSNpp, NCSNppConfig
from gmdiff.nets.smd import SMDConfig, SMDNet
from gmdiff.nets.unet import UNet, UNetConfig

NetConfig = UNetConfig | NCSNppConfig | MLPConfig | SMDConfig | GMDDPMConfig | SongUNetConfig

_DIGITS_UNET = UNetConfig(
    ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), in_ch=1, resolution=8
)

CONFIGS: dict[str, NetConfig] = {
    "ddpm_cifar10": UNetConfig(),
    "ncsnpp_cifar10_ve": NCSNppConfig(),
    "digits": UNetConfig(
        ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), in_ch=1, resolution=8
    ),
    "mnist": UNetConfig(
        ch=16, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(7,), in_ch=1, resolution=28
    ),
    "toy_mlp": MLPConfig(),
    "smd_ddpm_cifar10": SMDConfig(
        base=UNetConfig(), latent_dim=100, latent_width=32, latent_depth=2, latent_mult=(1, 2)
    ),
    "smd_digits": SMDConfig(
        base=UNetConfig(
            ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), in_ch=1, resolution=8
        ),
        latent_dim=16,
        latent_width=16,
        latent_depth=1,
        latent_mult=(1, 2),
    ),
    "smd_toy_mlp": SMDConfig(
        base=MLPConfig(width=128, depth=3), latent_dim=16, latent_width=64, latent_depth=2
    ),
    "gm_ddpm_cifar10": GMDDPMConfig(base=UNetConfig(), classifier_width=256),
    "gm_ddpm_digits": GMDDPMConfig(base=_DIGITS_UNET),
    "gm_ddpm_toy_mlp": GMDDPMConfig(
        base=MLPConfig(width=128, depth=3), classifier_width=64, classifier_depth=2
    ),
    "edm_ddpmpp_cifar10": SongUNetConfig(),
    "edm_ncsnpp_cifar10": SongUNetConfig(
        embedding_type="fourier",
        channel_mult_noise=2,
        encoder_type="residual",
        resample_filter=(1, 3, 3, 1),
    ),
}

#: Published parameter counts of the paper configs (None where the paper states none).
PUBLISHED_PARAMS: dict[str, int | None] = {
    "ddpm_cifar10": 35_700_000,  # Ho et al. 2020, App. B: "35.7 million parameters"
    "ncsnpp_cifar10_ve": None,  # not stated in Song et al. 2021
}


def _check_type(key: str, value: Any, current: Any) -> None:
    """Refuse an override whose kind differs from the field's current value: a fractional
    or boolean number for a whole one (``width: 64.5``), a word for a number, a scalar for
    a tuple or a tuple for a scalar."""
    if current is None or isinstance(current, str) and current == "":
        return
    if isinstance(current, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(current, numbers.Integral):
        ok, kind = (
            isinstance(value, numbers.Integral) and not isinstance(value, bool),
            ("a whole number"),
        )
    elif isinstance(current, numbers.Real):
        ok, kind = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
    elif isinstance(current, tuple):
        ok, kind = isinstance(value, tuple), "a list"
    elif isinstance(current, str):
        ok, kind = isinstance(value, str), "a string"
    else:
        return
    if not ok:
        raise TypeError(f"{key} must be {kind} like its default {current!r}, got {value!r}")


def _replace(config: Any, overrides: Mapping[str, Any]) -> Any:
    """``dataclasses.replace``, recursing into a nested config given a mapping (lists,
    as YAML gives them, become tuples)."""
    new = {}
    for key, value in overrides.items():
        if isinstance(value, list):
            value = tuple(value)
        current = getattr(config, key, None)
        if is_dataclass(current) and isinstance(value, Mapping):
            value = _replace(current, value)
        _check_type(key, value, current)
        new[key] = value
    return replace(config, **new)


def get_config(name: str, **overrides: Any) -> NetConfig:
    """The named config, with fields replaced by ``overrides`` (e.g. ``dropout=0.0``; for
    an SMD config ``base={"dropout": 0.0}`` replaces a field of its base network)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown network config {name!r}; choose one of {sorted(CONFIGS)}")
    try:
        return _replace(CONFIGS[name], overrides)
    except TypeError as err:
        raise ValueError(f"bad override for config {name!r}: {err}") from None


def build_net(config: NetConfig, seed: int | None = None) -> nn.Module:
    """Instantiate the raw network described by ``config``; with ``seed``, its initial
    weights are drawn from torch's generator seeded with it (the caller's global random
    state is left as it was), so the same config and seed give the same network."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_net(config)
    if isinstance(config, UNetConfig):
        return UNet(config)
    if isinstance(config, NCSNppConfig):
        return NCSNpp(config)
    if isinstance(config, MLPConfig):
        return MLP(config)
    if isinstance(config, SMDConfig):
        return SMDNet(config)
    if isinstance(config, GMDDPMConfig):
        return GMDDPMNet(config)
    if isinstance(config, SongUNetConfig):
        return SongUNet(config)
    raise TypeError(f"no network for config of type {type(config).__name__}")


def count_params(config: NetConfig) -> int:
    """Number of parameters of the network, built on the meta device (no memory, no
    initialisation cost): all of them, as the papers' and EDM's counts are, the frozen ones
    too (a SongUNet's augmentation mapping, :mod:`gmdiff.nets.edm_song`; no other network
    here has any)."""
    with torch.device("meta"):
        net = build_net(config)
    return sum(p.numel() for p in net.parameters())


class ParamRow(NamedTuple):
    name: str
    ours: int
    published: int | None


def param_count_table() -> list[ParamRow]:
    """Rows (config name, our parameter count, published count or None) for the paper
    configs in :data:`PUBLISHED_PARAMS`."""
    return [ParamRow(n, count_params(CONFIGS[n]), pub) for n, pub in PUBLISHED_PARAMS.items()]
