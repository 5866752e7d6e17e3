"""GM-DDPM's model (GM-DDPM paper, Sec. 3.2 and Alg. 1): a noise network eps_theta(x_t, t)
and a component classifier p_theta(i_t | x_t) over the K mixture components of the
forward noise.

The paper does not describe the classifier ("finding an optimal balance between classifier
complexity and accuracy is crucial", Sec. 3.4) and publishes no code. Here it is a separate
MLP on the flattened x_t with a sinusoidal embedding of t (width / depth in
:class:`GMDDPMConfig`), beside an unchanged DDPM eps network (:class:`~gmdiff.nets.UNet` or
:class:`~gmdiff.nets.MLP`): under the ``"ones"`` reading of the offsets (every pixel is
shifted by the same lam * base_k, :class:`gmdiff.noise.OffsetMixtureNoise`) the evidence
about i_t is mostly the mean of x_t over coordinates, which an MLP reads directly.

Readings of the paper's scalar means (Sec. 4.1, mu_k = lam * mu_base_k), set by two fields
of :class:`GMDDPMConfig`:

* shared (the default): ``direction="ones"``, one component per sample, every pixel
  shifted by the same lam * mu_base_k (the "random global force" of Sec. 1);
* unit: ``direction="unit"``, one component per sample, along u = 1 / sqrt(D);
* per-pixel: ``per_coordinate=True``, one component per pixel, i.i.d. over pixels.

Under the per-pixel reading the noise is no K-component mixture in R^D: i_t has the data's
shape, so Alg. 1's K-way classifier p_theta(i_t | x_t) does not fit it. That network has no
classifier, the loss refuses a classifier weight above 0
(:func:`gmdiff.losses.gm_ddpm_loss`), and the samplers that read i_t from the classifier
(Alg. 2, ``"posterior"``) refuse; Algs. 3-5 need no classifier and run, Alg. 5 drawing one
component per pixel.

The module keeps the signature of every eps network, ``forward(x, c_noise) -> eps`` with the
DDPM time input n - 1 in 0..T-1, so :class:`~gmdiff.nets.VPPrecond` turns it into a denoiser
and every library sampler runs on it (the offsets then enter nowhere: the paper's Alg. 3,
DDIM and DPM-Solver). :meth:`GMDDPMNet.logits` is the classifier and :attr:`GMDDPMNet.noise`
the forward noise the model was trained with, which the GM-DDPM sampler
(:func:`gmdiff.samplers.gm_ddpm`) reads to subtract offsets (Algs. 2, 5).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gmdiff.nets.embeddings import sinusoidal_embedding
from gmdiff.nets.mlp import MLP, MLPConfig
from gmdiff.nets.unet import UNet, UNetConfig
from gmdiff.noise import GM_DDPM_BASE, GM_DDPM_WEIGHTS, OffsetMixtureNoise

#: The refusal of everything that needs p_theta(i_t | x_t) under the per-pixel reading.
NO_CLASSIFIER = (
    "under the per-pixel reading (per_coordinate: true) every pixel draws its own component, "
    "which the K-way classifier p_theta(i_t | x_t) of Algs. 1-2 cannot predict, so this "
    "model has none"
)


@dataclass(frozen=True)
class GMDDPMConfig:
    """Sizes of :class:`GMDDPMNet` and the forward noise it is trained with.

    Attributes:
        base: the eps network (an :class:`MLPConfig` or a :class:`UNetConfig`).
        lam: lambda of mu = lambda * mu_base (GM-DDPM paper, Sec. 4.1); 0 is DDPM.
        means: mu_base, the scalar means (Sec. 4.1: 0, +-1, +-sqrt2, +-sqrt3).
        weights: omega, their probabilities (Sec. 4.1: 0.4, 0.15, 0.15, 0.1, ...).
        direction: how a scalar mean becomes a vector ("ones": every coordinate shifted
            by it; "unit": along 1 / sqrt(D)); see :class:`gmdiff.noise.OffsetMixtureNoise`.
        per_coordinate: every coordinate draws its own component (the per-pixel reading;
            no classifier, see the module docstring). Left out of a run config it is false,
            so the run's hash (:func:`gmdiff.config.sha`) is that of the config without it.
        classifier_width, classifier_depth: the classifier MLP's hidden layers.
        time_dim: width of the classifier's sinusoidal time embedding.
    """

    base: MLPConfig | UNetConfig
    lam: float = 0.2
    means: tuple[float, ...] = GM_DDPM_BASE
    weights: tuple[float, ...] = GM_DDPM_WEIGHTS
    direction: str = "ones"
    per_coordinate: bool = False
    classifier_width: int = 128
    classifier_depth: int = 2
    time_dim: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.base, MLPConfig | UNetConfig):
            kind = type(self.base).__name__
            raise TypeError(f"GMDDPMConfig.base must be an MLPConfig or a UNetConfig, got {kind}")
        for name in ("classifier_width", "classifier_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"GMDDPMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.time_dim < 4 or self.time_dim % 2:
            raise ValueError(f"GMDDPMConfig.time_dim must be even and >= 4, got {self.time_dim}")
        if not isinstance(self.per_coordinate, bool):
            raise ValueError(  # noqa: TRY004 -- a bad config value is a ValueError here
                f"GMDDPMConfig.per_coordinate must be true or false, got {self.per_coordinate!r}"
            )
        self.noise  # noqa: B018 -- validates lam, means, weights and direction now

    @property
    def noise(self) -> OffsetMixtureNoise:
        """The forward noise of Eqs. 1-2 with these means, weights, lam and reading."""
        return OffsetMixtureNoise(
            self.lam,
            self.means,
            self.weights,
            direction=self.direction,
            per_coordinate=self.per_coordinate,
        )

    @property
    def data_dim(self) -> int:
        """Coordinates of one sample (the classifier's input width)."""
        b = self.base
        return b.dim if isinstance(b, MLPConfig) else b.in_ch * b.resolution**2


class GMDDPMNet(nn.Module):
    """eps_theta(x_t, t) and p_theta(i_t | x_t) (GM-DDPM paper, Eq. 9 and Alg. 1); see the
    module docstring. ``forward(x, c_noise)`` is the eps network, :meth:`logits` the
    classifier's K logits; both take the DDPM time input n - 1. Under the per-pixel reading
    (``per_coordinate``) there is no classifier (``classifier`` is None)."""

    def __init__(self, config: GMDDPMConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.net = UNet(cfg.base) if isinstance(cfg.base, UNetConfig) else MLP(cfg.base)
        self.classifier: nn.Module | None = None
        if cfg.per_coordinate:
            return
        widths = [cfg.data_dim + cfg.time_dim] + [cfg.classifier_width] * cfg.classifier_depth
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.classifier = nn.Sequential(*layers, nn.Linear(widths[-1], len(cfg.means)))

    @property
    def noise(self) -> OffsetMixtureNoise:
        return self.config.noise

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        return self.net(x, c_noise)

    def logits(self, x: Tensor, c_noise: Tensor) -> Tensor:
        """Logits of p_theta(i_t | x_t), (B, K)."""
        if self.classifier is None:
            raise ValueError(NO_CLASSIFIER)
        dt = self.classifier[0].weight.dtype
        temb = sinusoidal_embedding(c_noise, self.config.time_dim).to(dt)
        return self.classifier(torch.cat([x.flatten(1).to(dt), temb], dim=1))
