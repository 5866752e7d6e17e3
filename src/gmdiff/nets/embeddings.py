"""Embeddings of the scalar noise conditioning ``c_noise`` (a time index, log sigma, ...).

* :func:`sinusoidal_embedding` -- the Transformer position embedding used by DDPM and ADM
  for the time step (Ho et al. 2020, App. B; Vaswani et al. 2017, Sec. 3.5).
* :class:`GaussianFourierEmbedding` -- random Fourier features of log sigma used by
  NCSN++ (Song et al. 2021, App. H; Tancik et al. 2020).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_c_noise(c_noise: Tensor) -> None:
    if c_noise.ndim != 1:
        raise ValueError(
            f"c_noise must be a (B,) tensor, got shape {tuple(c_noise.shape)}; "
            "pass one conditioning value per batch element"
        )


def sinusoidal_embedding(c_noise: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[sin(c w_k), cos(c w_k)]`` with ``w_k = max_period^(-k/(dim/2-1))``.

    The frequencies follow DDPM's implementation (Ho et al. 2020, App. B): ``dim/2``
    geometric frequencies from 1 down to ``1/max_period``; the sines come first.

    Args:
        c_noise: (B,) conditioning values (e.g. the time index 0..T-1).
        dim: embedding width, even and >= 4.
        max_period: the longest period.

    Returns:
        (B, dim) tensor in the dtype of ``c_noise`` (float32 for integer input).
    """
    _check_c_noise(c_noise)
    if dim < 4 or dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even and >= 4, got dim={dim}")
    c = c_noise if c_noise.is_floating_point() else c_noise.float()
    half = dim // 2
    k = torch.arange(half, dtype=c.dtype, device=c.device)
    freqs = torch.exp(-math.log(max_period) * k / (half - 1))
    arg = c[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class GaussianFourierEmbedding(nn.Module):
    """Random Fourier features ``[sin(2 pi c W), cos(2 pi c W)]``, ``W ~ N(0, scale^2)``.

    NCSN++ embeds ``log sigma`` this way with ``scale = 16`` (Song et al. 2021, App. H).
    ``W`` is fixed (never trained): it is stored as a buffer, so it is part of the
    ``state_dict`` but not of ``parameters()``. It is drawn on the CPU and moved to the
    default device, so a seed gives the same frequencies on every device.

    Args:
        num_features: number of frequencies; the output has ``2 * num_features`` columns.
        scale: standard deviation of the frequencies.
        generator: optional generator for drawing ``W`` reproducibly.
    """

    def __init__(
        self, num_features: int, scale: float = 16.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not scale > 0:
            raise ValueError(f"Fourier scale must be > 0, got {scale}")
        # drawn on the CPU (where generators live) so that W does not depend on the device
        w = torch.randn(num_features, generator=generator, device="cpu") * scale
        self.register_buffer("W", w.to(torch.get_default_device()))

    @property
    def dim(self) -> int:
        """Output width, ``2 * num_features``."""
        return 2 * self.W.shape[0]

    def forward(self, c_noise: Tensor) -> Tensor:
        """(B,) conditioning values -> (B, 2 * num_features) features."""
        _check_c_noise(c_noise)
        arg = 2 * math.pi * c_noise[:, None].to(self.W.dtype) * self.W[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
