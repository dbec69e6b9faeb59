"""A small conditional U-Net: residual blocks whose group norms are modulated by a condition vector.

The image-to-image network of diffusion denoisers (Ho et al. 2020, arXiv:2006.11239;
the conditioning of DIAMOND, Alonso et al. 2024, arXiv:2405.12399): every residual
block normalises its input with a GroupNorm whose scale and shift are predicted from
a condition vector (noise level, action, ...; "adaptive group norm"), so the condition
reaches every resolution. Each level halves the resolution with a stride-2 convolution;
the way up doubles it again and concatenates the level's skip features.

>>> import torch
>>> net = UNet(in_channels=6, out_channels=3, cond_dim=8, channels=(4, 8))
>>> net(torch.zeros(2, 6, 16, 16), torch.zeros(2, 8)).shape
torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AdaGroupNorm", "ResBlock", "UNet"]


def _groups(channels: int) -> int:
    return math.gcd(channels, 32)


class AdaGroupNorm(nn.Module):
    """GroupNorm without its own affine, scaled by (1 + scale) and shifted by shift, both from the condition."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.to_scale_shift.weight)  # starts as a plain GroupNorm
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.to_scale_shift(cond)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return self.norm(x) * (1 + scale) + shift  # (B, C, H, W)


class ResBlock(nn.Module):
    """norm-SiLU-conv twice, plus the input (projected by a 1x1 conv when the channels change)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int):
        super().__init__()
        self.norm1 = AdaGroupNorm(in_channels, cond_dim)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = AdaGroupNorm(out_channels, cond_dim)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (of its skip)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x, cond)))  # (B, C_out, H, W)
        h = self.conv2(F.silu(self.norm2(h, cond)))
        return self.skip(x) + h


class UNet(nn.Module):
    """(B, in_channels, H, W) and a condition (B, cond_dim) -> (B, out_channels, H, W).

    ``channels[i]`` is the width of level i (resolution H / 2^i; H must be divisible by
    2^(levels - 1)); ``blocks`` residual blocks per level on each way.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, channels: tuple[int, ...] = (32, 64, 64),
                 blocks: int = 1):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        width = channels[0]
        for i, c in enumerate(channels):
            self.down.append(nn.ModuleList([ResBlock(width if j == 0 else c, c, cond_dim) for j in range(blocks)]))
            width = c
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.middle = ResBlock(width, width, cond_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, c in reversed(list(enumerate(channels))):
            self.up.append(nn.ModuleList([ResBlock((width + c) if j == 0 else c, c, cond_dim) for j in range(blocks)]))
            width = c
            if i > 0:
                self.upsample.append(nn.Conv2d(c, channels[i - 1], 3, padding=1))
                width = channels[i - 1]
        self.norm_out = nn.GroupNorm(_groups(width), width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = self.conv_in(x)  # (B, C0, H, W)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                x = block(x, cond)
            skips.append(x)  # (B, C_i, H / 2^i, W / 2^i)
            if i < len(self.downsample):
                x = self.downsample[i](x)
        x = self.middle(x, cond)
        for i, blocks in enumerate(self.up):
            x = torch.cat([x, skips.pop()], dim=1)  # (B, C + C_i, h, w)
            for block in blocks:
                x = block(x, cond)
            if i < len(self.upsample):
                x = self.upsample[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C_{i-1}, 2h, 2w)
        return self.conv_out(F.silu(self.norm_out(x)))  # (B, out_channels, H, W)
