"""Reference bilinear descriptor sampling (the contract of ``tusk.ops.sample_descriptors``)."""
from __future__ import annotations

import torch


def bilinear_taps(xy: torch.Tensor, height: int, width: int, padding: str):
    """The four bilinear taps of each point, in pixel coordinates (pixel centres at integers).

    Conventions every backend follows (they only matter where a coordinate is exactly an
    integer, i.e. where the interpolant has a kink):

    - ``x0 = floor(x)``, ``x1 = x0 + 1``, weight of ``x1`` is ``x - x0`` (so the derivative at an
      integer is the right-hand one);
    - ``padding="zeros"``: taps outside the image read 0;
    - ``padding="border"``: the coordinate is first clamped to ``[0, W-1]`` (gradient 1 on the
      closed interval, 0 outside, as ``torch.clamp``), then tap indices are clamped.

    Args:
        xy: ``[..., 2]`` pixel coordinates, x first.

    Returns:
        A list of four ``(flat_index [...] int64, weight [...], inside [...] bool)`` taps, where
        ``flat_index = y * W + x`` is clamped into the image (safe to gather) and ``inside`` says
        whether the tap really lies in the image.
    """
    x, y = xy[..., 0], xy[..., 1]
    if padding == "border":
        x = x.clamp(0, width - 1)
        y = y.clamp(0, height - 1)
    x0, y0 = torch.floor(x), torch.floor(y)
    wx1, wy1 = x - x0, y - y0
    wx0, wy0 = 1 - wx1, 1 - wy1
    taps = []
    for dx, dy, weight in ((0, 0, wx0 * wy0), (1, 0, wx1 * wy0), (0, 1, wx0 * wy1), (1, 1, wx1 * wy1)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
        # Clamp in floating point before the cast so huge/NaN coordinates never index out of range.
        xi = torch.nan_to_num(xi, nan=0.0).clamp(0, width - 1).long()
        yi = torch.nan_to_num(yi, nan=0.0).clamp(0, height - 1).long()
        if padding == "border":
            inside = torch.ones_like(inside)
        taps.append((yi * width + xi, weight, inside))
    return taps


def sample_descriptors(features: torch.Tensor, xy: torch.Tensor, *, padding: str = "zeros") -> torch.Tensor:
    """Bilinearly sample ``features`` at pixel coordinates ``xy``.

    Args:
        features: ``[B, C, H, W]``.
        xy: ``[B, K, 2]`` pixel coordinates (x, y), pixel centres at integers.
        padding: ``"zeros"`` (outside reads 0) or ``"border"`` (clamp to the edge).

    Returns:
        ``[B, K, C]``. Equal to ``grid_sample(features, to_normalized(xy)[:, :, None],
        mode="bilinear", padding_mode=padding, align_corners=True)[..., 0].transpose(1, 2)``.
    """
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    out = features.new_zeros(batch, xy.shape[1], channels)
    for index, weight, inside in bilinear_taps(xy, height, width, padding):
        gathered = torch.gather(flat, 2, index[:, None, :].expand(-1, channels, -1))  # [B, C, K]
        out = out + (weight * inside)[:, :, None] * gathered.transpose(1, 2)
    return out
