"""Reconstruction losses (paper Sec. 3.3, L_recon): MSE, or the perceptual loss of Johnson et al."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import BLOCKS, load_vgg16_trunk

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def mse_loss(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels and channels."""
    return F.mse_loss(reconstruction, images)


class PerceptualLoss(nn.Module):
    """``sum_l mean |V_l(recon) - V_l(image)|`` over VGG16 relu1_2, relu2_2, relu3_3, relu4_3.

    Images (in [0, 1]) are ImageNet-normalised and resized (bilinear) so the longer side is
    224 px, as in the official code; every layer weighs 1. The VGG is frozen: gradients flow to
    the reconstruction only.

    Args:
        weights_path: local VGG16 weights (see :func:`tusk.losses.vgg.load_vgg16_trunk`).
        input_size: longer side the images are resized to before the VGG.
    """

    def __init__(self, weights_path: str | os.PathLike, input_size: int = 224) -> None:
        super().__init__()
        trunk = load_vgg16_trunk(weights_path)
        self.blocks = nn.ModuleList(nn.Sequential(*trunk[a:b]) for a, b in BLOCKS)
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # always frozen, eval mode

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        factor = self.input_size / max(height, width)
        size = (int(height * factor), int(width * factor))
        images = (images - self.mean) / self.std
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False)

    def forward(self, reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        x, y = self._prepare(reconstruction), self._prepare(images)
        loss = reconstruction.new_zeros(())
        for block in self.blocks:
            x, y = block(x), block(y)
            loss = loss + F.l1_loss(x, y)
        return loss
