"""Equivariance loss (paper Eq. 4): ``|| E(T(I)) - T(E(I)) ||^2`` under a random TPS warp T."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.tps import warp


def equivariance_loss(maps: torch.Tensor, warped_maps: torch.Tensor, grid: torch.Tensor, pad: int) -> torch.Tensor:
    """MSE between ``T(maps)`` and ``warped_maps``.

    Args:
        maps: ``[B, C, H, W]`` encoder output E(I) (heatmap scores or feature map).
        warped_maps: ``[B, C, H, W]`` encoder output on the warped images E(T(I)).
        grid: ``[B, H + 2 pad, W + 2 pad, 2]`` the warp T (see :func:`tusk.model.tps.warp`).
        pad: padding used when the images were warped; maps are reflection-padded likewise.
    """
    return F.mse_loss(warp(maps, grid, pad, padding="reflection"), warped_maps)
