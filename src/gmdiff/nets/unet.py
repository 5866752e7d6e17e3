"""The DDPM U-Net (Ho et al. 2020, App. B), with ADM's multi-head attention as an option.

Structure (PixelCNN++-style Wide-ResNet U-Net): a 3x3 input conv; per resolution level,
``num_res_blocks`` residual blocks (plus self-attention at the resolutions listed in
``attn_resolutions``) and a strided-conv downsampling; a middle of block-attention-block;
the mirror-image decoder with ``num_res_blocks + 1`` blocks per level fed by skip
concatenations and nearest-neighbour + conv upsampling; GroupNorm, SiLU, 3x3 output conv.
The time step enters every residual block through a sinusoidal embedding and a two-layer
MLP of width ``4 * ch``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmdiff.global_batch import Dropout
from gmdiff.nets.embeddings import sinusoidal_embedding
from gmdiff.nets.layers import AttentionBlock, check_pyramid, group_norm, modulated, zero_init


@dataclass(frozen=True)
class UNetConfig:
    """Sizes of :class:`UNet` (names as in Ho et al. 2020's code and App. B).

    Attributes:
        ch: base channel count.
        ch_mult: channel multiplier per resolution level (level i has ``ch * ch_mult[i]``
            channels and resolution ``resolution / 2^i``).
        num_res_blocks: residual blocks per level in the encoder (decoder: one more).
        attn_resolutions: spatial sizes at which self-attention follows each block.
        dropout: dropout rate inside residual blocks.
        in_ch: image channels.
        resolution: input height = width.
        out_ch: output channels (None: same as ``in_ch``).
        num_heads: attention heads (1 in DDPM; ADM uses several).
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    in_ch: int = 3
    resolution: int = 32
    out_ch: int | None = None
    num_heads: int = 1

    def __post_init__(self) -> None:
        check_pyramid(self, self.ch, "the U-Net")


class ResBlock(nn.Module):
    """DDPM residual block: GN-SiLU-conv, + Dense(SiLU(temb)), GN-SiLU-dropout-conv
    (zero-initialised), with a 1x1 conv on the shortcut when the width changes."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    """3x3 convolution with stride 2."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling by 2 followed by a 3x3 convolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """``F(x, c_noise)``: (B, in_ch, R, R) x (B,) -> (B, out_ch, R, R).

    ``c_noise`` is embedded sinusoidally (width ``ch``), so it is meant to be on the scale
    of a time index (DDPM: 0..999; see :class:`gmdiff.nets.precond.VPPrecond`).

    ``modulate(k, h) -> h``, if given, rewrites the feature map at two points: k = 0 after
    the input convolution (before the first skip is stored), k = 1 after the output
    GroupNorm-SiLU, right before the output convolution; SMD's hyper-network layers go
    there (:mod:`gmdiff.nets.smd`).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        temb_dim = 4 * cfg.ch
        self.temb = nn.Sequential(
            nn.Linear(cfg.ch, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        self.conv_in = nn.Conv2d(cfg.in_ch, cfg.ch, 3, padding=1)

        def block(c_in: int, c_out: int) -> ResBlock:
            return ResBlock(c_in, c_out, temb_dim, cfg.dropout)

        def maybe_attn(c: int, res: int) -> nn.Module:
            return (
                AttentionBlock(c, cfg.num_heads) if res in cfg.attn_resolutions else nn.Identity()
            )

        # Encoder: record the channel count of every feature map pushed on the skip stack.
        self.down = nn.ModuleList()
        skip_chs, c, res = [cfg.ch], cfg.ch, cfg.resolution
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(
                    nn.ModuleList([block(c, cfg.ch * mult), maybe_attn(cfg.ch * mult, res)])
                )
                c = cfg.ch * mult
                skip_chs.append(c)
            if level != len(cfg.ch_mult) - 1:
                self.down.append(Downsample(c))
                skip_chs.append(c)
                res //= 2
        self.mid = nn.ModuleList([block(c, c), AttentionBlock(c, cfg.num_heads), block(c, c)])
        # Decoder: num_res_blocks + 1 blocks per level, each consuming one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                c_skip = skip_chs.pop()
                self.up.append(
                    nn.ModuleList(
                        [block(c + c_skip, cfg.ch * mult), maybe_attn(cfg.ch * mult, res)]
                    )
                )
                c = cfg.ch * mult
            if level != 0:
                self.up.append(Upsample(c))
                res *= 2
        self.norm_out = group_norm(c)
        self.conv_out = zero_init(nn.Conv2d(c, cfg.out_ch or cfg.in_ch, 3, padding=1))

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        modulate: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (cfg.in_ch, cfg.resolution, cfg.resolution):
            raise ValueError(
                f"UNet expects x of shape (B, {cfg.in_ch}, {cfg.resolution}, {cfg.resolution}), "
                f"got {tuple(x.shape)}"
            )
        temb = self.temb(sinusoidal_embedding(c_noise, cfg.ch).to(x.dtype))
        h = self.conv_in(x)
        hs = [modulated(modulate, 0, h)]
        for layer in self.down:
            if isinstance(layer, Downsample):
                hs.append(layer(hs[-1]))
            else:
                res_block, attn = layer
                hs.append(attn(res_block(hs[-1], temb)))
        h = self.mid[0](hs[-1], temb)
        h = self.mid[2](self.mid[1](h), temb)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)
            else:
                res_block, attn = layer
                h = attn(res_block(torch.cat([h, hs.pop()], dim=1), temb))
        h = F.silu(self.norm_out(h))
        return self.conv_out(modulated(modulate, 1, h))
