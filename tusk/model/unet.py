"""The U-Net used for both the encoder and the decoder (paper Sec. 3.1-3.2).

The official code uses a 4-level U-Net (widths ``w, 2w, 4w, 8w`` with ``w = 32``), two 3x3
conv + GroupNorm + ReLU blocks per level, max-pooling down and bilinear upsampling with skip
concatenation, and a final 1x1 convolution. This module keeps that layout, with the depth and
base width as parameters so small CPU runs can use a lighter network.

Unlike the official code (``Upsample(scale_factor=2)``), each upsampling step resizes to the
exact size of its skip connection, so any input size works (e.g. 35x35 Tetrominoes), not only
multiples of ``2 ** (levels - 1)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(in_channels: int, out_channels: int, groups: int) -> nn.Sequential:
    """Two (3x3 conv, GroupNorm, ReLU) layers; spatial size preserved."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """``[N, in_channels, H, W] -> [N, out_channels, H, W]`` U-Net with GroupNorm.

    Args:
        in_channels, out_channels: input and output channels.
        width: channels of the first level; level ``i`` has ``width * 2**i``.
        levels: number of resolutions (the official network has 4: three poolings).
        groups: GroupNorm groups (default ``width``, as the official code; must divide
            ``width``).
    """

    def __init__(self, in_channels: int, out_channels: int, *, width: int = 32, levels: int = 4,
                 groups: int | None = None) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        groups = width if groups is None else groups
        if width % groups:
            raise ValueError(f"groups ({groups}) must divide width ({width})")
        widths = [width * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        previous = in_channels
        for channels in widths:
            self.down.append(conv_block(previous, channels, groups))
            previous = channels
        self.up = nn.ModuleList()
        for channels in reversed(widths[:-1]):
            self.up.append(conv_block(previous + channels, channels, groups))
            previous = channels
        self.head = nn.Conv2d(previous, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        smallest = 2 ** (len(self.down) - 1)
        if min(x.shape[-2:]) < smallest:
            raise ValueError(
                f"a {len(self.down)}-level U-Net needs images of at least {smallest}x{smallest} pixels, "
                f"got {tuple(x.shape[-2:])}"
            )
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)
