"""Equivariance pairs: each image and a randomly warped copy (official ``gen_image_pairs``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.tps import TpsParams, crop, pad_canvas, pad_size, random_warp_grid, resample


@dataclass
class Pairs:
    """``images [B, 3, H, W]``, ``warped [B, 3, H, W]`` = T(images); ``grid`` (T on the padded
    canvas, ``[B, H + 2 pad, W + 2 pad, 2]``) and ``pad``."""

    images: torch.Tensor
    warped: torch.Tensor
    grid: torch.Tensor
    pad: int


def make_pairs(images: torch.Tensor, tps: TpsParams, augment: TpsParams | None,
               generator: torch.Generator) -> Pairs:
    """Pad the images, optionally warp them mildly (augmentation), warp that again by T, crop both.

    Both warps act on the whole padded canvas, so the second sees the content the first moved
    into the padding, as in the official code.
    """
    batch = images.shape[0]
    size = tuple(images.shape[-2:])
    pad = pad_size(size, tps)
    canvas = pad_canvas(images, pad, padding=tps.padding, value=tps.pad_value)
    canvas_size = tuple(canvas.shape[-2:])
    kwargs = dict(generator=generator, dtype=images.dtype, device=images.device)
    if augment is not None:
        canvas = resample(canvas, random_warp_grid(batch, canvas_size, augment, **kwargs))
    grid = random_warp_grid(batch, canvas_size, tps, **kwargs)
    warped = resample(canvas, grid)
    return Pairs(crop(canvas, pad).contiguous(), crop(warped, pad).contiguous(), grid, pad)
