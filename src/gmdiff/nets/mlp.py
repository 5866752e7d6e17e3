"""A noise-conditioned MLP for toy (d-dimensional) data."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from gmdiff.nets.embeddings import GaussianFourierEmbedding, sinusoidal_embedding
from gmdiff.nets.layers import modulated


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of :class:`MLP`.

    Attributes:
        dim: data dimension d (input width; also the output width unless ``out_dim``).
        width: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        emb_dim: width of the noise embedding.
        embedding: "sinusoidal" (DDPM-style, for time indices) or "fourier" (random
            Fourier features, for log sigma).
        fourier_scale: frequency scale of the Fourier embedding.
        combine: "add" -- a learned projection of the embedding is added to the
            pre-activation of every hidden layer; "concat" -- the embedding is concatenated
            to the input of the first layer.
        out_dim: output width (None: ``dim``); SMD's latent network g_phi maps
            [x_t, eta] to a latent z_t of another width (:mod:`gmdiff.nets.smd`).
    """

    dim: int = 2
    width: int = 256
    depth: int = 4
    emb_dim: int = 64
    embedding: Literal["sinusoidal", "fourier"] = "sinusoidal"
    fourier_scale: float = 16.0
    combine: Literal["add", "concat"] = "add"
    out_dim: int | None = None

    def __post_init__(self) -> None:
        for name in ("dim", "width", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"MLPConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.embedding not in ("sinusoidal", "fourier"):
            raise ValueError(f"embedding must be 'sinusoidal' or 'fourier', got {self.embedding!r}")
        if self.combine not in ("add", "concat"):
            raise ValueError(f"combine must be 'add' or 'concat', got {self.combine!r}")
        if self.emb_dim < 4 or self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even and >= 4, got {self.emb_dim}")
        if self.out_dim is not None and self.out_dim < 1:
            raise ValueError(f"out_dim must be None or >= 1, got {self.out_dim}")


class MLP(nn.Module):
    """``F(x, c_noise)``: (B, d) x (B,) -> (B, out_dim or d), SiLU hidden layers.

    The noise value is embedded (:mod:`gmdiff.nets.embeddings`) and passed through a
    two-layer SiLU MLP before being added or concatenated (see :class:`MLPConfig`).

    ``modulate(k, h) -> h``, if given, rewrites the hidden features at two points: k = 0
    after the first hidden layer, k = 1 after the last one (before the output layer); SMD's
    hyper-network layers go there (:mod:`gmdiff.nets.smd`).
    """

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = cfg = config
        if cfg.embedding == "fourier":
            self.fourier = GaussianFourierEmbedding(cfg.emb_dim // 2, cfg.fourier_scale)
        self.emb_mlp = nn.Sequential(
            nn.Linear(cfg.emb_dim, cfg.emb_dim), nn.SiLU(), nn.Linear(cfg.emb_dim, cfg.emb_dim)
        )
        in_first = cfg.dim + (cfg.emb_dim if cfg.combine == "concat" else 0)
        widths = [in_first] + [cfg.width] * cfg.depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        if cfg.combine == "add":
            self.emb_proj = nn.ModuleList(
                nn.Linear(cfg.emb_dim, cfg.width) for _ in range(cfg.depth)
            )
        self.out = nn.Linear(cfg.width, cfg.out_dim or cfg.dim)
        self.act = nn.SiLU()

    def embed(self, c_noise: Tensor) -> Tensor:
        """(B,) -> (B, emb_dim) processed noise embedding."""
        if self.config.embedding == "fourier":
            e = self.fourier(c_noise)
        else:
            e = sinusoidal_embedding(c_noise, self.config.emb_dim)
        return self.emb_mlp(e.to(self.out.weight.dtype))

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        modulate: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"MLP expects x of shape (B, {self.config.dim}), got {tuple(x.shape)}")
        emb = self.embed(c_noise)
        concat = self.config.combine == "concat"
        h = torch.cat([x, emb], dim=1) if concat else x
        last = len(self.hidden) - 1
        for i, layer in enumerate(self.hidden):
            h = self.act(layer(h) if concat else layer(h) + self.emb_proj[i](emb))
            # depth 1: both points are the one hidden layer
            h = modulated(modulate, 0, h) if i == 0 else h
            h = modulated(modulate, 1, h) if i == last else h
        return self.out(h)
