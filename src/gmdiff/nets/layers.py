"""Building blocks shared by the U-Net and NCSN++: group normalisation with a
channel-count rule, zero initialisation and single/multi-head self-attention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

MAX_GROUPS = 32


def num_groups(channels: int) -> int:
    """Number of GroupNorm groups for ``channels`` channels: ``gcd(32, channels)``.

    DDPM and NCSN++ use 32 groups (Ho et al. 2020, App. B; Wu & He 2018); small networks
    have fewer channels than that, so we use the largest power of two dividing both 32 and
    ``channels``. This equals 32 whenever ``channels`` is a multiple of 32 (all paper
    configs), equals ``channels`` for 1, 2, 4, 8, 16 channels, and always divides
    ``channels`` (e.g. 48 channels -> 16 groups of 3).
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    return math.gcd(MAX_GROUPS, channels)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with :func:`num_groups` groups and eps = 1e-6 (as in DDPM)."""
    return nn.GroupNorm(num_groups(channels), channels, eps=1e-6)


def modulated(modulate: Callable[[int, Tensor], Tensor] | None, k: int, h: Tensor) -> Tensor:
    """``modulate(k, h)`` if a hook is given, else ``h``: the feature rewrite of the MLP and
    U-Net at their two points (k = 0 after the stem, k = 1 before the output layer), used
    by the SMD hyper-layers (:mod:`gmdiff.nets.smd`)."""
    return h if modulate is None else modulate(k, h)


def zero_init(module: nn.Module) -> nn.Module:
    """Set all parameters of ``module`` to zero (DDPM's ``init_scale = 0`` for the last
    layer of each residual branch and of the network) and return it."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class AttentionBlock(nn.Module):
    """Residual self-attention over the spatial positions of a (B, C, H, W) feature map.

    ``h = x + proj(attn(q, k, v))`` with 1x1 projections of ``GroupNorm(x)`` (DDPM, Ho et
    al. 2020, App. B; one head). ``num_heads > 1`` splits the channels into heads (ADM,
    Dhariwal & Nichol 2021). With ``skip_rescale`` the sum is divided by sqrt(2) (NCSN++).
    """

    def __init__(self, channels: int, num_heads: int = 1, skip_rescale: bool = False) -> None:
        super().__init__()
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must be >= 1 and divide channels={channels}")
        self.num_heads = num_heads
        self.skip_rescale = skip_rescale
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, hgt, wdt = x.shape
        q, k, v = (
            self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, -1).unbind(1)
        )
        # (B, heads, C/heads, HW) -> (B, heads, HW, C/heads) for attention over positions
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        h = self.proj(out.transpose(-1, -2).reshape(b, c, hgt, wdt))
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


def check_pyramid(cfg, width: int, name: str) -> None:
    """Validate the fields that the U-Net and NCSN++ configs share (widths, dropout, and
    that the resolution halves cleanly down the levels where attention is asked for)."""
    if width < 1 or cfg.num_res_blocks < 1 or cfg.in_ch < 1 or not cfg.ch_mult:
        raise ValueError(
            f"{type(cfg).__name__} needs a base width, num_res_blocks, in_ch >= 1 and a "
            f"non-empty ch_mult, got width={width}, num_res_blocks={cfg.num_res_blocks}, "
            f"in_ch={cfg.in_ch}, ch_mult={cfg.ch_mult}"
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
    n_down = len(cfg.ch_mult) - 1
    if cfg.resolution % 2**n_down:
        raise ValueError(
            f"resolution={cfg.resolution} must be divisible by 2^(len(ch_mult)-1)="
            f"{2**n_down}; pad the images or use fewer levels"
        )
    reachable = {cfg.resolution // 2**i for i in range(n_down + 1)}
    bad = set(cfg.attn_resolutions) - reachable
    if bad:
        raise ValueError(
            f"attn_resolutions {sorted(bad)} never occur; {name}'s resolutions are "
            f"{sorted(reachable, reverse=True)}"
        )
