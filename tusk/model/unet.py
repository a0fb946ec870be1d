"""The U-Net used for both the encoder and the decoder (paper Sec. 3.1-3.2).

The official code uses a 4-level U-Net (widths ``w, 2w, 4w, 8w`` with ``w = 32``), two 3x3
conv + GroupNorm + ReLU blocks per level, max-pooling down and bilinear upsampling with skip
concatenation, and a final 1x1 convolution. This module keeps that layout, with the depth and
base width as parameters so small CPU runs can use a lighter network.

Unlike the official code (``Upsample(scale_factor=2)``), each upsampling step resizes to the
exact size of its skip connection, so any input size works (e.g. 35x35 Tetrominoes), not only
multiples of ``2 ** (levels - 1)``.

With ``checkpoint=True`` each resolution stage (pooling or upsampling + concatenation, then the
conv block) keeps only its inputs for backward and recomputes its activations there
(``torch.utils.checkpoint``): the activations, which set the peak memory of a training step,
shrink to the stage boundaries, for one more forward pass of the stages. The stages have no
randomness and GroupNorm keeps no running statistics, so the recomputation gives the same values
and gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward


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
        checkpoint: recompute each stage's activations in backward instead of storing them.
    """

    def __init__(self, in_channels: int, out_channels: int, *, width: int = 32, levels: int = 4,
                 groups: int | None = None, checkpoint: bool = False) -> None:
        super().__init__()
        self.checkpoint = checkpoint
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
            x = self._stage(self._down, block, x, pool=i > 0)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for block in self.up:
            x = self._stage(self._up, block, x, skips.pop())
        return self.head(x)

    @staticmethod
    def _down(block: nn.Module, x: torch.Tensor, *, pool: bool) -> torch.Tensor:
        return block(F.max_pool2d(x, 2) if pool else x)

    @staticmethod
    def _up(block: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return block(torch.cat([x, skip], dim=1))

    def _stage(self, stage, block: nn.Module, *inputs: torch.Tensor, **options) -> torch.Tensor:
        """One resolution step. Checkpointed, it keeps only its inputs (the previous level's
        output and the skip, both kept anyway), not the pooled, upsampled or concatenated maps."""
        if self.checkpoint and torch.is_grad_enabled():
            return recompute_in_backward(stage, block, *inputs, use_reentrant=False, **options)
        return stage(block, *inputs, **options)
