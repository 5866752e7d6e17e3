"""FIR (finite impulse response) resampling by a factor of 2, as used by StyleGAN2 and
NCSN++ (Song et al. 2021, App. H; Zhang 2019, "Making convolutional networks
shift-invariant again").

The 1-D taps ``k`` (NCSN++: [1, 3, 3, 1]) give the 2-D kernel ``outer(k, k) / sum^2``,
applied as a fixed depthwise convolution (one copy per channel, no learned weights):

* downsampling: blur with the normalised kernel, then keep every second pixel (a strided
  depthwise ``conv2d``);
* upsampling: insert zeros between pixels and blur with ``4 *`` the normalised kernel (a
  strided depthwise ``conv_transpose2d``), so that a constant image stays constant.

For an even number of taps both maps are centred: the output pixel grid is aligned with
the input grid as for average pooling / nearest-neighbour upsampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fir_kernel_2d(taps: Sequence[float]) -> Tensor:
    """Normalised 2-D kernel ``outer(k, k) / sum(k)^2`` of even length ``len(taps)``."""
    taps = [float(t) for t in taps]
    if len(taps) < 2 or len(taps) % 2 or sum(taps) <= 0:
        raise ValueError(f"FIR taps must be an even-length list with positive sum, got {taps}")
    k = torch.tensor(taps, dtype=torch.float64, device="cpu") / sum(taps)
    return torch.outer(k, k).float().to(torch.get_default_device())


class FIRResample(nn.Module):
    """Depthwise FIR down- or upsampling by 2 of a (B, C, H, W) tensor (no parameters).

    Args:
        mode: "down" (H -> H/2) or "up" (H -> 2H).
        taps: 1-D FIR taps, e.g. (1, 3, 3, 1).
    """

    def __init__(self, mode: str, taps: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"FIR mode must be 'down' or 'up', got {mode!r}")
        self.mode = mode
        self.register_buffer("kernel", fir_kernel_2d(taps), persistent=False)
        self.pad = (len(taps) - 2) // 2

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        w = self.kernel.to(x.dtype)[None, None].expand(c, 1, -1, -1)
        if self.mode == "down":
            return F.conv2d(x, w, stride=2, padding=self.pad, groups=c)
        return F.conv_transpose2d(x, 4 * w, stride=2, padding=self.pad, groups=c)


class FIRDownsampleConv(nn.Module):
    """FIR blur followed by a learned 3x3 convolution with stride 2 (NCSN++'s
    ``Downsample(fir=True, with_conv=True)``), mapping ``in_ch`` to ``out_ch`` channels."""

    def __init__(self, in_ch: int, out_ch: int, taps: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel_2d(taps), persistent=False)
        # total padding (len - 2) for the stride-2 FIR plus 2 for the 3x3 conv, split evenly:
        # H -> H + 1 after the blur, -> H / 2 after the unpadded stride-2 conv
        self.pad = len(taps) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        w = self.kernel.to(x.dtype)[None, None].expand(c, 1, -1, -1)
        return self.conv(F.conv2d(F.pad(x, (self.pad,) * 4), w, groups=c))
