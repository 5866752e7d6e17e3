"""diffusers' ``UNet2DModel`` laid out like one of our U-Nets (same levels, blocks,
attention resolutions, channel widths, time embedding), so the two can be timed side by
side. The parameter counts must agree exactly; :func:`diffusers_twin` checks it."""

from __future__ import annotations

import torch
from torch import nn

from gmdiff.nets import UNet, UNetConfig


def diffusers_twin(cfg: UNetConfig) -> nn.Module:
    """A ``diffusers.UNet2DModel`` with the layout of ``UNet(cfg)`` (Ho et al. 2020's
    CIFAR-10 layout for the default config, as google/ddpm-cifar10-32); raises if the
    parameter counts differ."""
    from diffusers import UNet2DModel

    res, down, up = cfg.resolution, [], []
    for _ in cfg.ch_mult:
        down.append("AttnDownBlock2D" if res in cfg.attn_resolutions else "DownBlock2D")
        res //= 2
    for name in reversed(down):
        up.append(name.replace("Down", "Up"))
    twin = UNet2DModel(
        sample_size=cfg.resolution,
        in_channels=cfg.in_ch,
        out_channels=cfg.out_ch or cfg.in_ch,
        time_embedding_type="positional",
        freq_shift=1,
        flip_sin_to_cos=False,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks,
        dropout=cfg.dropout,
        attention_head_dim=None,
        norm_num_groups=min(32, cfg.ch),
        norm_eps=1e-6,
        downsample_padding=0,
    )
    ours, theirs = n_params(UNet(cfg)), n_params(twin)
    if ours != theirs:
        raise ValueError(f"layouts differ: {ours:,} parameters here, {theirs:,} in diffusers")
    return twin


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class TwinCall(nn.Module):
    """``twin(x, t).sample`` as a plain ``(x, t) -> Tensor`` module, like our U-Net."""

    def __init__(self, twin: nn.Module) -> None:
        super().__init__()
        self.twin = twin

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.twin(x, t).sample
