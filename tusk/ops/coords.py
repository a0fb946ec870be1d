"""Pixel <-> normalised keypoint coordinates.

tusk's convention: ``xy[..., 0]`` is x (column), ``xy[..., 1]`` is y (row), in pixels with pixel
centres at integers, so x in [0, W-1] and y in [0, H-1]. The normalised convention is the one of
``grid_sample(..., align_corners=True)``: -1 is the centre of the first pixel, +1 the centre of
the last.
"""
from __future__ import annotations

import torch

from ._checks import check_float, check_int


def _extent(size: tuple[int, int], xy: torch.Tensor) -> torch.Tensor:
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"size must be a (height, width) pair, got {size!r}")
    height = check_int("size[0] (height)", size[0], minimum=1)
    width = check_int("size[1] (width)", size[1], minimum=1)
    if xy.shape[-1:] != (2,):
        raise ValueError(f"xy must have shape [..., 2], got {tuple(xy.shape)}")
    # A 1-pixel axis has no extent; its only coordinate (0) maps to 0 both ways.
    return xy.new_tensor([max(width - 1, 1), max(height - 1, 1)])


def to_normalized(xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel coordinates -> ``[-1, 1]`` (``align_corners=True``).

    Args:
        xy: ``[..., 2]`` pixel coordinates, x first.
        size: ``(H, W)`` of the map the coordinates refer to.

    Returns:
        ``[..., 2]``: ``2 * xy / (W-1, H-1) - 1`` (an axis of size 1 maps 0 to -1).

    Example:
        >>> to_normalized(torch.tensor([[0.0, 0.0], [9.0, 4.0]]), (5, 10))
        tensor([[-1., -1.],
                [ 1.,  1.]])
    """
    xy = check_float("xy", xy)
    return xy * (2.0 / _extent(size, xy)) - 1.0


def from_normalized(xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[-1, 1]`` (``align_corners=True``) -> pixel coordinates; inverse of :func:`to_normalized`.

    Args:
        xy: ``[..., 2]`` normalised coordinates, x first.
        size: ``(H, W)`` of the map the coordinates refer to.
    """
    xy = check_float("xy", xy)
    return (xy + 1.0) * (_extent(size, xy) / 2.0)
