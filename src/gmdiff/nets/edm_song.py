"""EDM's ``SongUNet``: DDPM++ and NCSN++ as Karras et al. (2022) re-implemented them
(their ``training/networks.py``; Song et al. 2021, App. H), with the same module and
parameter names, so that the weights of EDM's released networks -- exported from their
pickles as a state dict -- load into it (:func:`gmdiff.loaders.load_edm`).

``F(x, c_noise)``: (B, C, R, R) x (B,) -> (B, C, R, R). Unconditional only: class labels
are not supported; the augmentation-label mapping of EDM's CIFAR-10 networks
(``augment_dim`` = 9) is held so that its weights load, and unused (no augmentation at
sampling, as in EDM's generate.py). It is frozen (``requires_grad`` False): no forward here
reads it, so it takes no gradient and no optimizer step, as before it was frozen, and DDP,
which expects a gradient for every parameter that requires one, trains the network without
``find_unused_parameters``. (EDM itself creates the mapping only when it trains with
augmentation, and then passes the pipe's labels to every forward: its train.py sets
``augment_dim`` = 9 with ``--augment`` alone.) Its state-dict key, initial values and the
network's parameter count are unchanged. DDPM++: positional noise embedding, ``standard``
encoder, filter (1, 1); NCSN++: Fourier embedding (twice as wide), ``residual`` encoder,
filter (1, 3, 3, 1); both with a ``standard`` decoder. EDM's ADM network (DhariwalUNet)
is not implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmdiff.global_batch import dropout


@dataclass(frozen=True)
class SongUNetConfig:
    """EDM's SongUNet arguments (its defaults: DDPM++ on 32 x 32 images)."""

    resolution: int = 32
    in_ch: int = 3
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (2, 2, 2)
    channel_mult_emb: int = 4
    num_blocks: int = 4
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.13
    augment_dim: int = 9
    embedding_type: str = "positional"  # "fourier" for NCSN++
    channel_mult_noise: int = 1  # 2 for NCSN++
    encoder_type: str = "standard"  # "residual" for NCSN++, or "skip"
    decoder_type: str = "standard"  # or "skip"
    resample_filter: tuple[int, ...] = (1, 1)  # (1, 3, 3, 1) for NCSN++

    def __post_init__(self) -> None:
        allowed = {
            "embedding_type": ("positional", "fourier"),
            "encoder_type": ("standard", "skip", "residual"),
            "decoder_type": ("standard", "skip"),
        }
        for key, options in allowed.items():
            if getattr(self, key) not in options:
                raise ValueError(f"{key} must be one of {options}, got {getattr(self, key)!r}")


class Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) * math.sqrt(2 / (n_in + n_out)))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), b)


class Conv2d(nn.Module):
    """A k x k convolution (none when k = 0), optionally after a 2x up- or downsampling
    with the separable FIR ``resample_filter``; ``fused`` puts the downsampling after the
    convolution (NCSN++'s residual encoder path)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        up: bool = False,
        down: bool = False,
        resample_filter: tuple[int, ...] = (1, 1),
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = c_in, c_out
        self.up, self.down, self.fused = up, down, fused
        fan = (c_in + c_out) * kernel * kernel
        self.weight = (
            nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) * math.sqrt(2 / fan))
            if kernel
            else None
        )
        self.bias = nn.Parameter(torch.zeros(c_out)) if kernel else None
        f = torch.as_tensor(resample_filter, dtype=torch.float32)
        f2 = torch.outer(f, f)[None, None] / f.sum() ** 2
        self.register_buffer("resample_filter", f2 if up or down else None)

    def forward(self, x: Tensor) -> Tensor:
        w = None if self.weight is None else self.weight.to(x.dtype)
        f = None if self.resample_filter is None else self.resample_filter.to(x.dtype)
        w_pad = 0 if w is None else w.shape[-1] // 2
        f_pad = 0 if f is None else (f.shape[-1] - 1) // 2
        if self.fused and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile(self.out_channels, 1, 1, 1), groups=self.out_channels, stride=2)
        else:
            if self.up:
                fu = (4 * f).tile(self.in_channels, 1, 1, 1)
                x = F.conv_transpose2d(x, fu, groups=self.in_channels, stride=2, padding=f_pad)
            if self.down:
                fd = f.tile(self.in_channels, 1, 1, 1)
                x = F.conv2d(x, fd, groups=self.in_channels, stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        return x if self.bias is None else x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)


class GroupNorm(nn.GroupNorm):
    """Group normalisation with at most 32 groups and at least 4 channels per group."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__(min(32, channels // 4), channels, eps=eps)


class Block(nn.Module):
    """DDPM++'s residual block: GroupNorm-SiLU-conv, plus the embedding added (not an
    adaptive scale), GroupNorm-SiLU-dropout-conv, a 1x1 skip projection when the shape
    changes, each sum scaled by sqrt(1/2); optionally single-head self-attention."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb: int,
        cfg: SongUNetConfig,
        *,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.attention = c_in, c_out, attention
        self.dropout = cfg.dropout
        rf = cfg.resample_filter
        self.norm0 = GroupNorm(c_in)
        self.conv0 = Conv2d(c_in, c_out, 3, up=up, down=down, resample_filter=rf)
        self.affine = Linear(emb, c_out)
        self.norm1 = GroupNorm(c_out)
        self.conv1 = Conv2d(c_out, c_out, 3)
        self.skip = None
        if c_out != c_in or up or down:
            self.skip = Conv2d(c_in, c_out, 1, up=up, down=down, resample_filter=rf)
        if attention:
            self.norm2 = GroupNorm(c_out)
            self.qkv = Conv2d(c_out, 3 * c_out, 1)
            self.proj = Conv2d(c_out, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        h = F.silu(self.norm1(h + self.affine(emb)[:, :, None, None].to(h.dtype)))
        h = self.conv1(dropout(h, self.dropout, self.training))
        x = (h + (x if self.skip is None else self.skip(x))) * math.sqrt(0.5)
        if not self.attention:
            return x
        b, c = x.shape[:2]
        q, k, v = self.qkv(self.norm2(x)).reshape(b, c, 3, -1).unbind(2)
        w = torch.einsum("bcq,bck->bqk", q.float(), k.float() / math.sqrt(c)).softmax(2)
        a = torch.einsum("bqk,bck->bcq", w.to(v.dtype), v).reshape(x.shape)
        return (self.proj(a) + x) * math.sqrt(0.5)


class PositionalEmbedding(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, t: Tensor) -> Tensor:
        half = self.channels // 2
        i = torch.arange(half, dtype=torch.float32, device=t.device)
        freqs = (1 / 10000) ** (i / (half - 1))  # EDM's endpoint=True
        a = torch.outer(t, freqs.to(t.dtype))
        return torch.cat([a.cos(), a.sin()], 1)


class FourierEmbedding(nn.Module):
    def __init__(self, channels: int, scale: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(channels // 2) * scale)

    def forward(self, t: Tensor) -> Tensor:
        a = torch.outer(t, (2 * math.pi * self.freqs).to(t.dtype))
        return torch.cat([a.cos(), a.sin()], 1)


class SongUNet(nn.Module):
    """EDM's SongUNet (module docstring), ``F(x, c_noise)``."""

    def __init__(self, cfg: SongUNetConfig) -> None:
        super().__init__()
        self.config = cfg
        mc = cfg.model_channels
        emb, noise = mc * cfg.channel_mult_emb, mc * cfg.channel_mult_noise
        positional = cfg.embedding_type == "positional"
        self.map_noise = PositionalEmbedding(noise) if positional else FourierEmbedding(noise)
        self.map_augment = Linear(cfg.augment_dim, noise, bias=False) if cfg.augment_dim else None
        if self.map_augment is not None:  # held for EDM's weights, never read: frozen
            self.map_augment.requires_grad_(False)
        self.map_layer0 = Linear(noise, emb)
        self.map_layer1 = Linear(emb, emb)
        rf = cfg.resample_filter
        self.enc = nn.ModuleDict()
        c_out = c_aux = cfg.in_ch
        for level, mult in enumerate(cfg.channel_mult):
            r = cfg.resolution >> level
            if level == 0:
                self.enc[f"{r}x{r}_conv"] = Conv2d(c_out, mc, 3)
                c_out = mc
            else:
                self.enc[f"{r}x{r}_down"] = Block(c_out, c_out, emb, cfg, down=True)
                if cfg.encoder_type == "skip":
                    self.enc[f"{r}x{r}_aux_down"] = Conv2d(
                        c_aux, c_aux, 0, down=True, resample_filter=rf
                    )
                    self.enc[f"{r}x{r}_aux_skip"] = Conv2d(c_aux, c_out, 1)
                if cfg.encoder_type == "residual":
                    self.enc[f"{r}x{r}_aux_residual"] = Conv2d(
                        c_aux, c_out, 3, down=True, resample_filter=rf, fused=True
                    )
                    c_aux = c_out
            for i in range(cfg.num_blocks):
                c_in, c_out = c_out, mc * mult
                attn = r in cfg.attn_resolutions
                self.enc[f"{r}x{r}_block{i}"] = Block(c_in, c_out, emb, cfg, attention=attn)
        skips = [b.out_channels for n, b in self.enc.items() if "aux" not in n]
        self.dec = nn.ModuleDict()
        last = len(cfg.channel_mult) - 1
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            r = cfg.resolution >> level
            if level == last:
                self.dec[f"{r}x{r}_in0"] = Block(c_out, c_out, emb, cfg, attention=True)
                self.dec[f"{r}x{r}_in1"] = Block(c_out, c_out, emb, cfg)
            else:
                self.dec[f"{r}x{r}_up"] = Block(c_out, c_out, emb, cfg, up=True)
            for i in range(cfg.num_blocks + 1):
                c_in, c_out = c_out + skips.pop(), mc * mult
                attn = i == cfg.num_blocks and r in cfg.attn_resolutions
                self.dec[f"{r}x{r}_block{i}"] = Block(c_in, c_out, emb, cfg, attention=attn)
            if cfg.decoder_type == "skip" or level == 0:
                if cfg.decoder_type == "skip" and level < last:
                    self.dec[f"{r}x{r}_aux_up"] = Conv2d(
                        cfg.in_ch, cfg.in_ch, 0, up=True, resample_filter=rf
                    )
                self.dec[f"{r}x{r}_aux_norm"] = GroupNorm(c_out)
                self.dec[f"{r}x{r}_aux_conv"] = Conv2d(c_out, cfg.in_ch, 3)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        e = self.map_noise(c_noise)
        e = e.reshape(e.shape[0], 2, -1).flip(1).reshape(e.shape)  # sin first, then cos
        e = F.silu(self.map_layer1(F.silu(self.map_layer0(e))))
        skips, aux = [], x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, e) if isinstance(block, Block) else block(x)
                skips.append(x)
        aux, tmp = None, None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(F.silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], 1)
                x = block(x, e)
        return aux
