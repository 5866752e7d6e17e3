"""Networks gmdiff did not train, as denoisers D(x, sigma) in the library's one signature.

Nothing downloads: the user passes a folder or a file they already have.

**diffusers** (:func:`load_diffusers`): a pipeline folder saved with ``save_pretrained``
(``model_index.json``, ``unet/``, ``scheduler/``; e.g. google/ddpm-cifar10-32) or a
``UNet2DModel`` folder that also holds ``scheduler_config.json``. The UNet predicts eps on
the discrete VP process of the scheduler's betas (diffusers computes them from
``scheduler_config.json``: ``beta_schedule``, ``trained_betas``); it becomes
:class:`gmdiff.nets.VPPrecond` on :class:`gmdiff.schedules.DiscreteVP` with those betas,
diffusers' 0-based timestep t being our index n - 1. Supported: unconditional
``UNet2DModel`` with ``prediction_type: epsilon`` (an output of 2C channels, a learned
variance, keeps its first C, the eps). Refused with an error: class-conditional UNets,
``v_prediction`` / ``sample`` targets, other model classes (UNet2DConditionModel, latent
pipelines).

**EDM format** (:func:`load_edm`): the ``state_dict()`` of one of EDM's preconditioning
wrappers (Karras et al. 2022, ``training/networks.py``): ``VPPrecond``, ``VEPrecond`` or
``EDMPrecond``, keys ``model.*``, in a ``.pt``/``.pth`` file (flat, or under ``"ema"``,
``"net"`` or ``"model"``) or a ``.safetensors`` file. EDM's c_skip, c_out, c_in and c_noise
for these three are those of :mod:`gmdiff.nets.precond` (VP: beta_min 0.1, beta_d 19.9,
M 1000 by default, as EDM). The inner network, named by the caller, is EDM's own
``SongUNet`` (DDPM++ / NCSN++, :mod:`gmdiff.nets.edm_song`, same parameter names; configs
``edm_ddpmpp_cifar10``, ``edm_ncsnpp_cifar10``, other sizes by overrides), so EDM's
unconditional VP / VE / EDM networks load, or any other gmdiff architecture
(``gmdiff.nets.CONFIGS``). Not supported, each with an error saying so: EDM's ``.pkl``
files (pickled modules that need EDM's ``torch_utils.persistence``: export
``net.state_dict()`` in EDM's environment), class-conditional networks (``map_label``),
EDM's ADM network ``DhariwalUNet`` (keys ``model.out_conv.*``) and the ADM preconditioning
``iDDPMPrecond`` (buffer ``u``): gmdiff has no implementation of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gmdiff.schedules import EDM, DiscreteVP, VPLinear

#: Samplers that integrate on EDM's sigma grid and so take the model's EDM noise range.
EDM_SAMPLERS = ("euler", "heun", "edm_stochastic", "teleport_heun")


@dataclass
class Pretrained:
    """A loaded network: ``denoiser`` D(x, sigma) (an ``nn.Module``, eval mode),
    ``schedule`` its own noise process (what ``ddpm``, ``ddim``, ``dpm_solver_pp`` sample
    on), ``shape`` one example's shape, ``origin`` a sentence saying what was loaded from
    where, ``weights`` "ema", "raw" or "as stored", ``centered`` whether the model's data
    live in [-1, 1] (else [0, 1])."""

    denoiser: nn.Module
    schedule: Any
    shape: tuple[int, ...]
    origin: str
    weights: str = "as stored"
    centered: bool = True
    info: dict = field(default_factory=dict)

    def sigma_range(self) -> tuple[float, float]:
        """The smallest and largest EDM noise level the network was trained on."""
        s = self.schedule
        if isinstance(s, DiscreteVP):
            return float(s.sigma_edm(1)), float(s.sigma_edm(s.T))
        return float(s.sigma_edm(s.t_min)), float(s.sigma_edm(s.t_max))

    def schedule_for(self, sampler: str) -> Any:
        """The process a sampler runs on: the EDM schedule over the network's noise range
        for :data:`EDM_SAMPLERS` (the Gaussian score paper's teleportation included),
        the network's own process otherwise."""
        if sampler in EDM_SAMPLERS and not isinstance(self.schedule, EDM):
            lo, hi = self.sigma_range()
            return EDM(sigma_min=lo, sigma_max=hi)
        return self.schedule


# --------------------------------------------------------------------------------------
# diffusers
# --------------------------------------------------------------------------------------


class DiffusersEps(nn.Module):
    """``F(x, c_noise)`` = a diffusers ``UNet2DModel``'s eps at the fractional timestep
    ``c_noise`` (its first ``channels`` output channels)."""

    def __init__(self, unet: nn.Module, channels: int) -> None:
        super().__init__()
        self.unet = unet
        self.channels = channels

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        return self.unet(x, c_noise).sample[:, : self.channels]


def _diffusers_parts(path: Path) -> tuple[Path, Path]:
    """(unet folder, folder holding scheduler_config.json) of a pipeline or UNet folder."""
    if (path / "model_index.json").is_file():
        index = json.loads((path / "model_index.json").read_text())
        unet = index.get("unet")
        if unet is None or unet[-1] != "UNet2DModel":
            raise ValueError(
                f"{path}: the pipeline's unet is {unet!r}; gmdiff loads unconditional "
                "UNet2DModel pipelines (DDPMPipeline, DDIMPipeline) only"
            )
        return path / "unet", path / "scheduler"
    if (path / "config.json").is_file() and (path / "scheduler_config.json").is_file():
        return path, path
    raise FileNotFoundError(
        f"{path} is neither a diffusers pipeline folder (model_index.json, unet/, scheduler/) "
        "nor a UNet2DModel folder with config.json and scheduler_config.json; pass the folder "
        "`save_pretrained` wrote (e.g. a local copy of google/ddpm-cifar10-32)"
    )


def load_diffusers(path: str | Path, weights: str = "as stored") -> Pretrained:
    """A diffusers DDPM-type model (see the module docstring) as VPPrecond on DiscreteVP.
    ``weights`` is recorded in the evaluation protocol ("ema", "raw" or "as stored": a
    diffusers folder holds one set; its model card says which)."""
    from diffusers import DDPMScheduler, UNet2DModel

    from gmdiff.nets.precond import VPPrecond

    path = Path(path)
    unet_dir, sched_dir = _diffusers_parts(path)
    cfg_unet = json.loads((unet_dir / "config.json").read_text())
    if cfg_unet.get("_class_name") != "UNet2DModel":
        raise ValueError(
            f"{unet_dir}: model class {cfg_unet.get('_class_name')!r} is not supported; "
            "gmdiff loads UNet2DModel (pixel-space, unconditional) only"
        )
    if cfg_unet.get("num_class_embeds") or cfg_unet.get("class_embed_type"):
        raise ValueError(f"{unet_dir}: class-conditional UNet2DModel is not supported")
    sched_cfg = json.loads((sched_dir / "scheduler_config.json").read_text())
    kind = sched_cfg.get("prediction_type", "epsilon")
    if kind != "epsilon":
        raise ValueError(
            f"{sched_dir}: prediction_type {kind!r} is not supported; gmdiff loads "
            "eps-prediction (prediction_type: epsilon) models"
        )
    unet = UNet2DModel.from_pretrained(unet_dir, low_cpu_mem_usage=False).eval()
    keep = {k: v for k, v in sched_cfg.items() if not k.startswith("_")}
    betas = DDPMScheduler.from_config(keep).betas.to(torch.float64)
    schedule = DiscreteVP(betas)
    c_in, c_out = unet.config.in_channels, unet.config.out_channels
    if c_out not in (c_in, 2 * c_in):
        raise ValueError(f"{unet_dir}: out_channels {c_out} is neither {c_in} nor {2 * c_in}")
    denoiser = VPPrecond(DiffusersEps(unet, c_in), schedule).eval()
    size = unet.config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    n_params = sum(p.numel() for p in unet.parameters())
    origin = (
        f"diffusers UNet2DModel from {path} ({n_params / 1e6:.2f}M parameters; "
        f"eps-prediction, {sched_cfg.get('_class_name', 'scheduler')} "
        f"beta_schedule={sched_cfg.get('beta_schedule')}, T={schedule.T})"
    )
    return Pretrained(denoiser, schedule, (c_in, *size), origin, weights)


# --------------------------------------------------------------------------------------
# EDM state dicts
# --------------------------------------------------------------------------------------

EDM_PRECONDS = ("vp", "ve", "edm")


def _read_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".pkl":
        raise ValueError(
            f"{path}: EDM's .pkl files hold pickled modules that need EDM's own source "
            "(torch_utils.persistence); gmdiff does not unpickle them. In EDM's environment "
            "export the weights: `torch.save(pickle.load(open(PKL, 'rb'))['ema'].state_dict(), "
            "'net.pt')`, then load net.pt"
        )
    if not path.is_file():
        raise FileNotFoundError(f"EDM-format state dict not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("ema", "net", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return state[key]
    return state


def _check_edm_keys(state: dict[str, Tensor], path: Path) -> None:
    if "u" in state:
        raise ValueError(
            f"{path}: a buffer 'u' marks EDM's iDDPMPrecond (the ADM variant), which gmdiff "
            "does not support; supported: EDM's VPPrecond, VEPrecond, EDMPrecond around a "
            "gmdiff network"
        )
    if any(k.startswith("model.out_conv.") for k in state):
        raise ValueError(
            f"{path}: the keys (model.out_conv.*) are those of EDM's DhariwalUNet (ADM), "
            "which gmdiff does not implement; supported: EDM's SongUNet (DDPM++ / NCSN++, "
            "model.net edm_ddpmpp_cifar10 / edm_ncsnpp_cifar10) and gmdiff's networks"
        )
    if any(k.startswith("model.map_label.") for k in state):
        raise ValueError(
            f"{path}: a class-conditional network (model.map_label.*); gmdiff loads "
            "unconditional EDM networks only"
        )
    if not state or not all(k.startswith("model.") for k in state):
        bad = next((k for k in state if not k.startswith("model.")), None)
        raise ValueError(
            f"{path}: not an EDM preconditioner's state dict (every key starts with 'model.'; "
            f"found {bad!r})"
        )


def load_edm(
    path: str | Path,
    net: nn.Module,
    precond: str,
    *,
    sigma_data: float = 0.5,
    beta_min: float = 0.1,
    beta_d: float = 19.9,
    M: int = 1000,
    schedule: Any = None,
    shape: tuple[int, ...] | None = None,
    weights: str = "as stored",
) -> Pretrained:
    """An EDM-format state dict (module docstring) loaded into ``net`` (a freshly built
    gmdiff network of the same architecture) wrapped as EDM's ``precond`` ("vp", "ve",
    "edm"; ``sigma_data`` for edm, ``beta_min``, ``beta_d``, ``M`` for vp, EDM's defaults).
    ``schedule`` is the process to sample on (default ``EDM()``: sigma 0.002..80)."""
    from gmdiff.nets.precond import EDMPrecond, VEPrecond, VPPrecond

    if precond not in EDM_PRECONDS:
        raise ValueError(
            f"precond {precond!r} is not supported for EDM-format weights; choose one of "
            f"{EDM_PRECONDS} (EDM's iDDPMPrecond / ADM is not supported)"
        )
    path = Path(path)
    state = _read_state(path)
    _check_edm_keys(state, path)
    from gmdiff.storage import load_state

    song = any(k.startswith("model.enc.") for k in state)
    hint = (
        "they are EDM's SongUNet: choose model.net edm_ddpmpp_cifar10 or edm_ncsnpp_cifar10 "
        "with the overrides of its size"
        if song
        else "build the network with the architecture they were trained with"
    )
    inner = {k.removeprefix("model."): v for k, v in state.items()}
    try:
        load_state(net, inner, path, hint)
    except ValueError as err:  # "checkpoint <path> holds another architecture: ..."
        raise ValueError(
            f"{path}: the weights do not fit the chosen gmdiff network ({type(net).__name__}): "
            + str(err).split(": ", 1)[1]
        ) from None
    wrappers = {
        "vp": lambda: VPPrecond(net, VPLinear(beta_min=beta_min, beta_max=beta_min + beta_d), M),
        "ve": lambda: VEPrecond(net),
        "edm": lambda: EDMPrecond(net, sigma_data),
    }
    denoiser = wrappers[precond]().eval()
    if shape is None:
        raise ValueError("load_edm needs the shape of one example, e.g. shape=(3, 32, 32)")
    n_params = sum(p.numel() for p in net.parameters())
    origin = (
        f"EDM-format {precond.upper()}Precond state dict {path} in a gmdiff "
        f"{type(net).__name__} ({n_params / 1e6:.2f}M parameters)"
    )
    return Pretrained(denoiser, schedule if schedule is not None else EDM(), shape, origin, weights)


# --------------------------------------------------------------------------------------
# From a run config (the command line)
# --------------------------------------------------------------------------------------


def from_config(cfg, path: str | Path, weights: str = "as stored") -> Pretrained:
    """The network at ``path`` for ``gmdiff sample|evaluate --pretrained``: a folder is a
    diffusers model (the config's model and schedule sections are not used); a file is an
    EDM-format state dict for the config's ``model`` section (net, overrides, precond
    vp/ve/edm, sigma_data), sampled on its ``schedule`` (vp: its beta_min, beta_max
    condition the network when the schedule is vp_linear, else EDM's 0.1, 20)."""
    from gmdiff import nets, runs

    path = Path(path)
    if path.is_dir():
        return load_diffusers(path, weights)
    schedule = runs.schedule_of(cfg)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.overrides.items()}
    net_cfg = nets.get_config(cfg.model.net, **overrides)
    vp = schedule if isinstance(schedule, VPLinear) else VPLinear()
    pre = load_edm(
        path,
        nets.build_net(net_cfg),
        cfg.model.precond,
        sigma_data=cfg.model.sigma_data,
        beta_min=vp.beta_min,
        beta_d=vp.beta_max - vp.beta_min,
        schedule=schedule,
        shape=runs.sample_shape(net_cfg),
        weights=weights,
    )
    pre.centered = cfg.data.centered
    return pre
