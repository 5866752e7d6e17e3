"""NCSN++, the VE score network of score_sde (Song et al. 2021, Sec. 4.4 and App. H),
in the configuration of its continuous-time VE CIFAR-10 model.

Compared with the DDPM U-Net (:mod:`gmdiff.nets.unet`) it uses

* a Gaussian Fourier embedding of ``log sigma`` (scale 16) instead of a sinusoidal one;
* BigGAN-style residual blocks that also do the resampling (FIR [1, 3, 3, 1] down/up on
  both branches, 1x1 conv shortcut) instead of separate resampling layers;
* ``skip_rescale``: every residual sum (blocks, attention, input pyramid) divided by sqrt(2);
* progressive *input* "residual": the input image is FIR-downsampled (with a 3x3 conv) to
  each lower resolution and added to the encoder features there; progressive *output*
  "none" (a plain decoder), with attention once per decoder level;
* for VE, the output is divided by sigma = exp(c_noise), so the network estimates the
  score ``-eps / sigma`` (score_sde's ``scale_by_sigma``).

The raw network is ``F(x, c_noise)`` with ``c_noise = log sigma`` (B,); wrap it with
:class:`gmdiff.nets.precond.ScorePrecond` to get a denoiser D(x, sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmdiff.global_batch import Dropout
from gmdiff.nets.embeddings import GaussianFourierEmbedding
from gmdiff.nets.fir import FIRDownsampleConv, FIRResample
from gmdiff.nets.layers import AttentionBlock, check_pyramid, group_norm, zero_init

SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class NCSNppConfig:
    """Sizes of :class:`NCSNpp` (names as in score_sde's configs).

    Defaults are score_sde's ``configs/ve/cifar10_ncsnpp_continuous.py``: nf 128,
    ch_mult (1, 2, 2, 2), 4 residual blocks per resolution, attention at 16x16, dropout
    0.1, Fourier scale 16, FIR taps [1, 3, 3, 1], output scaled by 1/sigma.

    Attributes:
        nf: base channel count.
        ch_mult: channel multiplier per resolution level.
        num_res_blocks: residual blocks per level in the encoder (decoder: one more).
        attn_resolutions: spatial sizes with self-attention.
        dropout: dropout rate inside residual blocks.
        in_ch: image channels.
        resolution: input height = width.
        fourier_scale: std of the Fourier frequencies of the log-sigma embedding.
        fir_taps: 1-D FIR kernel of the resampling.
        scale_by_sigma: divide the output by sigma = exp(c_noise) (VE score output).
    """

    nf: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 4
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    in_ch: int = 3
    resolution: int = 32
    fourier_scale: float = 16.0
    fir_taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    scale_by_sigma: bool = True

    def __post_init__(self) -> None:
        check_pyramid(self, self.nf, "NCSN++")


class BigGANResBlock(nn.Module):
    """BigGAN-style residual block of NCSN++ with optional FIR up/downsampling of both
    branches; output ``(shortcut(x) + h) / sqrt(2)`` (skip_rescale)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        temb_dim: int,
        dropout: float,
        resample: str | None = None,
        taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0),
    ) -> None:
        super().__init__()
        self.resample = FIRResample(resample, taps) if resample else nn.Identity()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch or resample else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(self.resample(F.silu(self.norm1(x))))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(self.resample(x)) + h) / SQRT2


class NCSNpp(nn.Module):
    """``F(x, c_noise)``: (B, in_ch, R, R) x (B,) log-sigma -> (B, in_ch, R, R).

    With ``scale_by_sigma`` the output is a score estimate (units 1/sigma).
    """

    def __init__(self, config: NCSNppConfig) -> None:
        super().__init__()
        self.config = cfg = config
        nf, temb_dim = cfg.nf, 4 * cfg.nf
        self.fourier = GaussianFourierEmbedding(nf, cfg.fourier_scale)
        self.temb = nn.Sequential(
            nn.Linear(2 * nf, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        self.conv_in = nn.Conv2d(cfg.in_ch, nf, 3, padding=1)

        def block(c_in: int, c_out: int, resample: str | None = None) -> BigGANResBlock:
            return BigGANResBlock(c_in, c_out, temb_dim, cfg.dropout, resample, cfg.fir_taps)

        def attn(c: int) -> AttentionBlock:
            return AttentionBlock(c, skip_rescale=True)

        # Encoder: _down_plan lists "block" (a resblock + attention/identity from
        # down_attn) and "down" (a downsampling resblock + the next pyramid downsample) in
        # order; the channel counts of the skips pushed on the stack are recorded.
        self.down_blocks = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.pyramid = nn.ModuleList()
        skip_chs, c, res, pyr_ch = [nf], nf, cfg.resolution, cfg.in_ch
        self._down_plan: list[str] = []
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                self.down_blocks.append(block(c, nf * mult))
                c = nf * mult
                self.down_attn.append(attn(c) if res in cfg.attn_resolutions else nn.Identity())
                skip_chs.append(c)
                self._down_plan.append("block")
            if level != len(cfg.ch_mult) - 1:
                self.down_blocks.append(block(c, c, "down"))
                self.pyramid.append(FIRDownsampleConv(pyr_ch, c, cfg.fir_taps))
                pyr_ch = c
                skip_chs.append(c)
                self._down_plan.append("down")
                res //= 2
        self.mid = nn.ModuleList([block(c, c), attn(c), block(c, c)])
        # Decoder: num_res_blocks + 1 skip-consuming blocks per level, attention once at the
        # end of a level, then an upsampling residual block.
        self.up_levels = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(block(c + skip_chs.pop(), nf * mult))
                c = nf * mult
            stage = nn.ModuleDict({"blocks": blocks})
            if res in cfg.attn_resolutions:
                stage["attn"] = attn(c)
            if level != 0:
                stage["up"] = block(c, c, "up")
                res *= 2
            self.up_levels.append(stage)
        self.norm_out = group_norm(c)
        self.conv_out = zero_init(nn.Conv2d(c, cfg.in_ch, 3, padding=1))

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (cfg.in_ch, cfg.resolution, cfg.resolution):
            raise ValueError(
                f"NCSNpp expects x of shape (B, {cfg.in_ch}, {cfg.resolution}, {cfg.resolution}), "
                f"got {tuple(x.shape)}"
            )
        temb = self.temb(self.fourier(c_noise).to(x.dtype))
        hs = [self.conv_in(x)]
        pyramid, blocks, attns, pyrs = (
            x,
            iter(self.down_blocks),
            iter(self.down_attn),
            iter(self.pyramid),
        )
        for kind in self._down_plan:
            if kind == "block":
                hs.append(next(attns)(next(blocks)(hs[-1], temb)))
            else:
                h = next(blocks)(hs[-1], temb)
                pyramid = (next(pyrs)(pyramid) + h) / SQRT2
                hs.append(pyramid)
        h = self.mid[0](hs[-1], temb)
        h = self.mid[2](self.mid[1](h), temb)
        for stage in self.up_levels:
            for blk in stage["blocks"]:
                h = blk(torch.cat([h, hs.pop()], dim=1), temb)
            if "attn" in stage:
                h = stage["attn"](h)
            if "up" in stage:
                h = stage["up"](h, temb)
        h = self.conv_out(F.silu(self.norm_out(h)))
        if cfg.scale_by_sigma:
            h = h / torch.exp(c_noise).to(h.dtype)[:, None, None, None]
        return h
