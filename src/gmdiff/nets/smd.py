"""Soft Mixture Denoising (SMD) networks: Li, van Breugel & van der Schaar, "Soft Mixture
Denoising: Beyond the Expressive Bottleneck of Diffusion Models", ICLR 2024 ("SMD paper"),
Sec. 4.

The model. SMD replaces DDPM's Gaussian reverse kernel by a continuous mixture
(SMD paper, Eqs. (11)-(13)):

    p(x_{t-1} | x_t) = E_{eta ~ N(0, I)} N(x_{t-1}; mu(x_t, t; z_t), sigma_t^2 I),
    z_t = g_phi(eta, x_t, t),

where the mean is DDPM's eps-parametrisation (Eq. (4)) of a denoiser eps_theta-hat whose
parameters theta-hat = {theta-bar, theta-tilde(z_t, t, phi)} are partly generated from
(z_t, t) by a hyper-network (Eq. (12); "a U-Net (theta-bar) with several extra layers that
are computed from theta-tilde(z_t, t, phi)", below Eq. (13)). Here:

* :class:`SMDNet` is that eps network, ``net(x_t, c_noise, z=None, *, eta=None,
  generator=None) -> eps``. Without ``z`` it draws a fresh eta ~ N(0, I) (from
  ``generator``, else :attr:`SMDNet.eta_generator`, else torch's global generator), so
  ``SMDNet(x_t, c_noise)`` has the signature of every raw eps network of the library and
  ``VPPrecond(SMDNet(...), schedule)`` is a denoiser ``D(x, sigma)`` that draws a new
  latent on every call. That is Alg. 2: ``gmdiff.samplers.ddpm`` with this denoiser and
  ``steps = T`` draws eta at every step (Alg. 2, line 4) and is otherwise DDPM's ancestral
  step; ``gmdiff.samplers.ddim`` runs SMD with DDIM the same way (SMD paper, Sec. 5.2, Fig.
  2a). For reproducible samples pass the sampler's generator to the net too::

      denoiser = VPPrecond(net, schedule)
      with net.eta_from(gen):
          x0 = ddpm(denoiser, schedule, x_T, steps=schedule.T, generator=gen)

* g_phi (:attr:`SMDNet.latent`, "a neural network g_phi: (eta, x_t, t) -> z_t", Sec. 4.1
  below Alg. 2) is the base network's family fed ``[x_t, eta]`` (concatenated along
  channels) and the time, with ``latent_dim`` outputs: an MLP for vectors (z_t is a
  vector), a small U-Net for images (z_t is a ``latent_dim``-channel map, one latent per
  pixel).
* The hyper-network (:class:`HyperLayer`) adds two residual layers to the base network,
  after its stem and before its output layer (the ``modulate`` hook of
  :class:`~gmdiff.nets.mlp.MLP` and :class:`~gmdiff.nets.unet.UNet`). Each maps the
  features h (C channels) to ``h + U A_m ... A_1 V h``, where V: C -> L and U: L -> C are
  ordinary weights (theta-bar) and the L x L matrices are generated per example (per pixel
  for images) from (z_t, t):

      A_k(z_t, t) = softplus(s_k) I + v_k v_k^T / sqrt(L),
      v_k = tanh(W_k z_t + E_k e(t) + b_k),

  e(t) a sinusoidal embedding of the time input. A_k is applied as
  ``s u + v (v . u) / sqrt(L)`` and never materialised (the authors build the L x L
  matrix at every pixel).
* The loss of Alg. 1 / Eq. (15) is :func:`gmdiff.losses.smd_loss`.

Where we follow the authors' code (github.com/vanderschaarlab/smd, ``nn.py`` ``HyperNet``
and ``UNet``, ``main.py``, ``models.py``):

* the hyper-layer form: a residual ``x + out_proj(A_m ... A_1 in_proj(x))`` with each A a
  rank-one matrix generated from z plus a learned positive multiple (softplus) of the
  identity, applied per pixel; two such layers, one after the input convolution and one
  before the output convolution; two factors per layer (their ``hypernet_layers 2``);
* g_phi: a smaller U-Net (their "identifier", base width ``hidden_dim / 4``, multipliers
  (1, 2)) on the channel-concatenation of x_t and an eta of x_t's shape, time-conditioned,
  with ``latent_dim`` output channels (their ``latent_dim 100``), so z_t is a map;
* a fresh eta on every network call, in training and in both samplers (their
  ``model_predictions`` and ``p_losses`` call ``torch.randn_like``).

Where we depart from it:

* the base networks are this library's DDPM U-Net (Ho et al. 2020) and toy MLP, not
  lucidrains' U-Net (7x7 stem, linear attention, GELU time MLP) that their code wraps;
* v_k goes through tanh (theirs is the linear map of z alone). Then ||A_k|| <=
  softplus(s_k) + sqrt(L) whatever z_t is, and the layer is linear in h with a bounded
  gain. Without it each A_k is quadratic in z_t, z_t grows with x_t, and the output grows
  like |x_t|^5 with two factors: at T = 10 (cosine schedule, where the first step divides
  eps errors by alpha_T = 0.005) our toy model's DDPM samples overflowed to NaN even
  after 300 training steps, where plain DDPM gave the ring. Their sampler clips x_0 to
  [-1, 1] at every step, which keeps x_t bounded and hides this;
* the rank-one term is divided by sqrt(L) (their v v^T is not): for v with i.i.d.
  entries and a generic u, |v v^T u| ~ sqrt(L) var(v) |u|, so the division keeps its size
  independent of L; their softplus scales start from ``randn``, ours from 0
  (softplus(0) = ln 2), for a deterministic initialisation;
* the generated weights see (z_t, t) as in Eq. (12)'s theta-tilde(z_t, t, phi) (their
  ``HyperNet`` sees z_t only; t reaches it through g_phi); ``time_dim = 0`` gives theirs;
* our U-Net zero-initialises its output convolution (DDPM); for g_phi that would make
  z_t = 0 at initialisation, so g_phi's output convolution gets PyTorch's default
  initialisation instead;
* their released runs train v-prediction on a sigmoid beta schedule with loss weights
  snr / (snr + 1) (``GaussianDiffusion`` defaults that ``main.py`` does not override) and
  sample with x_0 clipped to [-1, 1] (``clip_denoising=True`` in their FID evaluation);
  we follow the paper: eps-prediction, DDPM's schedule, L_simple weighting (Alg. 1), no
  clipping;
* any number of eta samples per step (``n_eta`` of :func:`gmdiff.losses.smd_loss`, SMD
  paper Sec. 5.3, Fig. 2b); their code draws one.

Paper issues met here (SMD paper, checked against Ho et al. 2020): Eq. (13) and Alg. 2
line 6 write ``beta_t / sqrt(1 - alpha_t)`` where DDPM's mean (their own Eq. (4)) has
``beta_t / sqrt(1 - alpha-bar_t)``; Alg. 2 line 6 adds ``sigma_t eps`` with sigma_t a
standard deviation while Eq. (2) uses sigma_t I as the covariance. We use DDPM's
formulas (:mod:`gmdiff.samplers.ddpm`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmdiff.global_batch import per_example
from gmdiff.nets.embeddings import sinusoidal_embedding
from gmdiff.nets.mlp import MLP, MLPConfig
from gmdiff.nets.unet import UNet, UNetConfig


@dataclass(frozen=True)
class SMDConfig:
    """Sizes of :class:`SMDNet`.

    Attributes:
        base: the denoiser theta-bar (an :class:`MLPConfig` or a :class:`UNetConfig`).
        latent_dim: L, the width of z_t (channels per pixel for images) and of the
            generated L x L matrices.
        eta_dim: channels of eta (None: those of x_t; images: eta has x_t's spatial shape).
        latent_width: g_phi's hidden width (MLP) or base channel count (U-Net).
        latent_depth: g_phi's hidden layers (MLP) or residual blocks per level (U-Net).
        latent_mult: g_phi's U-Net channel multipliers (unused for the MLP).
        factors: generated matrices A_k per hyper-layer (the authors' ``hypernet_layers``).
        time_dim: width of the sinusoidal time embedding fed to the hyper-network
            (0: the hyper-network sees z_t only, as in the authors' code).
    """

    base: MLPConfig | UNetConfig
    latent_dim: int = 16
    eta_dim: int | None = None
    latent_width: int = 64
    latent_depth: int = 2
    latent_mult: tuple[int, ...] = (1, 2)
    factors: int = 2
    time_dim: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.base, MLPConfig | UNetConfig):
            kind = type(self.base).__name__
            raise TypeError(f"SMDConfig.base must be an MLPConfig or a UNetConfig, got {kind}")
        for name in ("latent_dim", "latent_width", "latent_depth", "factors"):
            if getattr(self, name) < 1:
                raise ValueError(f"SMDConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.eta_dim is not None and self.eta_dim < 1:
            raise ValueError(f"SMDConfig.eta_dim must be None or >= 1, got {self.eta_dim}")
        if self.time_dim and (self.time_dim < 4 or self.time_dim % 2):
            raise ValueError(f"SMDConfig.time_dim must be 0 or even and >= 4, got {self.time_dim}")
        self.latent_config  # noqa: B018 -- validates g_phi's sizes now, not at build time

    @property
    def data_channels(self) -> int:
        """Channels of x_t: d for the MLP, in_ch for the U-Net."""
        return self.base.dim if isinstance(self.base, MLPConfig) else self.base.in_ch

    @property
    def eta_channels(self) -> int:
        return self.eta_dim or self.data_channels

    @property
    def latent_config(self) -> MLPConfig | UNetConfig:
        """g_phi's network: the base family on [x_t, eta] with ``latent_dim`` outputs."""
        b, c_in = self.base, self.data_channels + self.eta_channels
        if isinstance(b, MLPConfig):
            return MLPConfig(
                dim=c_in,
                out_dim=self.latent_dim,
                width=self.latent_width,
                depth=self.latent_depth,
                emb_dim=b.emb_dim,
                embedding=b.embedding,
                fourier_scale=b.fourier_scale,
                combine=b.combine,
            )
        return UNetConfig(
            ch=self.latent_width,
            ch_mult=self.latent_mult,
            num_res_blocks=self.latent_depth,
            attn_resolutions=(),
            dropout=0.0,
            in_ch=c_in,
            resolution=b.resolution,
            out_ch=self.latent_dim,
        )

    @property
    def feature_widths(self) -> tuple[int, int]:
        """Channels of the base network's features at its two ``modulate`` points."""
        b = self.base
        if isinstance(b, MLPConfig):
            return b.width, b.width
        return b.ch, b.ch * b.ch_mult[0]


class HyperLayer(nn.Module):
    """``h + U A_m(z, t) ... A_1(z, t) V h`` with generated matrices
    ``A_k = softplus(s_k) I + v_k v_k^T / sqrt(L)``, ``v_k = tanh(W_k z + E_k e(t) + b_k)``
    (SMD paper, Eq. (12): the extra layers whose weights theta-tilde(z_t, t, phi) come from
    a hyper-network).

    ``h`` is (B, C, *S) and ``z`` (B, L, *S) (S: spatial dims, possibly none): the
    matrices are generated and applied at every position. ``temb`` is (B, time_dim) or
    None.
    """

    def __init__(self, width: int, latent_dim: int, factors: int, time_dim: int) -> None:
        super().__init__()
        self.norm = latent_dim**-0.5
        self.inp = nn.Linear(width, latent_dim)
        self.outp = nn.Linear(latent_dim, width)
        self.gen_z = nn.ModuleList(nn.Linear(latent_dim, latent_dim) for _ in range(factors))
        self.gen_t = nn.ModuleList(
            nn.Linear(time_dim, latent_dim, bias=False) for _ in range(factors if time_dim else 0)
        )
        self.scale = nn.Parameter(torch.zeros(factors))

    def forward(self, h: Tensor, z: Tensor, temb: Tensor | None = None) -> Tensor:
        hl, zl = h.movedim(1, -1), z.movedim(1, -1)  # channels last
        per_example = (h.shape[0], *([1] * (h.ndim - 2)), -1)
        u = self.inp(hl)
        for k, s in enumerate(F.softplus(self.scale)):
            v = self.gen_z[k](zl)
            if temb is not None:
                v = v + self.gen_t[k](temb).reshape(per_example)
            v = torch.tanh(v)
            u = s * u + v * (v * u).sum(-1, keepdim=True) * self.norm
        return h + self.outp(u).movedim(-1, 1)


class SMDNet(nn.Module):
    """The SMD eps network ``eps_theta-hat(x_t, t)`` with theta-hat = {theta-bar,
    theta-tilde(z_t, t, phi)} and z_t = g_phi(eta, x_t, t) (SMD paper, Eqs. (12)-(13),
    Alg. 1 lines 5-6, Alg. 2 lines 4-5); see the module docstring.

    ``forward(x, c_noise, z=None, *, eta=None, generator=None)``: ``c_noise`` is the DDPM
    time input n - 1 in 0..T-1 as for every eps network (:func:`gmdiff.losses.eps_loss`,
    :class:`~gmdiff.nets.precond.VPPrecond`). ``z`` given: use that latent; else z =
    g_phi(eta, x, t) with ``eta`` given or drawn from ``generator`` (default
    :attr:`eta_generator`, default torch's global generator).
    """

    def __init__(self, config: SMDConfig) -> None:
        super().__init__()
        self.config = cfg = config
        image = isinstance(cfg.base, UNetConfig)
        self.net = UNet(cfg.base) if image else MLP(cfg.base)
        self.latent = UNet(cfg.latent_config) if image else MLP(cfg.latent_config)
        if image:  # DDPM's zero-initialised output conv would start g_phi at z_t = 0
            self.latent.conv_out.reset_parameters()
        self.hyper = nn.ModuleList(
            HyperLayer(w, cfg.latent_dim, cfg.factors, cfg.time_dim) for w in cfg.feature_widths
        )
        #: where eta is drawn from when neither ``z``, ``eta`` nor ``generator`` is given
        #: (or the eta itself: :meth:`eta_from`)
        self.eta_generator: torch.Generator | Tensor | None = None

    @contextmanager
    def eta_from(self, source: torch.Generator | Tensor | None) -> Iterator[SMDNet]:
        """Inside the block, draw eta from the generator ``source`` (e.g. the sampler's
        generator), or, for a tensor ``source``, use it as the eta of the next batch
        (:func:`gmdiff.runs.draw_samples` draws a block's eta at once and evaluates the
        network on parts of it, so the draws do not depend on the parts' size)."""
        previous, self.eta_generator = self.eta_generator, source
        try:
            yield self
        finally:
            self.eta_generator = previous

    def sample_eta(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """eta ~ N(0, I) of shape (B, eta_channels, *spatial) for the batch ``x``."""
        shape = (x.shape[0], self.config.eta_channels, *x.shape[2:])
        gen = generator if generator is not None else self.eta_generator
        if isinstance(gen, Tensor):
            if tuple(gen.shape) != shape:
                raise ValueError(f"eta of shape {tuple(gen.shape)} given for a batch of {shape}")
            return gen.to(dtype=x.dtype, device=x.device)
        draw = lambda n: torch.randn((n, *shape[1:]), generator=gen, dtype=x.dtype, device=x.device)
        return per_example(draw, shape[0])  # (SMD's loss: n_eta draws per example)

    def latent_z(
        self,
        x: Tensor,
        c_noise: Tensor,
        eta: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """z_t = g_phi(eta, x_t, t) (SMD paper, Alg. 1 line 5 / Alg. 2 line 4)."""
        if eta is None:
            eta = self.sample_eta(x, generator)
        return self.latent(torch.cat([x, eta.to(x.dtype)], dim=1), c_noise)

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        z: Tensor | None = None,
        *,
        eta: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if z is None:
            z = self.latent_z(x, c_noise, eta, generator)
        elif eta is not None:
            raise ValueError("pass either the latent z or the noise eta it is made from, not both")
        temb = None
        if self.config.time_dim:
            temb = sinusoidal_embedding(c_noise, self.config.time_dim).to(x.dtype)
        return self.net(x, c_noise, modulate=lambda k, h: self.hyper[k](h, z, temb))


def smd_param_counts(config: SMDConfig) -> dict[str, int]:
    """Trainable parameters of :class:`SMDNet` by part (built on the meta device):
    ``base`` (the unmodified denoiser), ``latent`` (g_phi), ``hyper`` (the extra layers:
    their fixed projections U, V and the generators of the A_k, i.e. phi) and ``total``."""
    with torch.device("meta"):
        net = SMDNet(config)

    def n(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    parts = {"base": n(net.net), "latent": n(net.latent), "hyper": n(net.hyper)}
    return parts | {"total": n(net)}
