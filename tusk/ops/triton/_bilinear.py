"""Bilinear taps in Triton, following the reference convention bit for bit
(:func:`tusk.ops.reference.sample_descriptors.bilinear_taps`):

- ``x0 = floor(x)``, the weight of ``x0 + 1`` is ``x - x0`` (right-hand derivative at integers);
- ``zeros`` padding: taps outside the image weigh 0, as a *multiplied* 0/1 factor so that NaN
  coordinates give NaN (as the reference) instead of a silent 0;
- ``border`` padding: the coordinate is first clamped to ``[0, size-1]`` (gradient 1 on the
  closed interval, 0 outside, as ``torch.clamp``; NaN stays NaN);
- tap indices are clamped into the image in floating point (NaN -> 0) before the integer cast,
  so no coordinate can address memory outside the map.

One helper returns everything (rather than one helper per tap): under the Triton interpreter
each nested ``@triton.jit`` call costs ~10 ms (it re-patches ``triton.language``), which
dominated the CPU test time.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def bilinear_taps(x, y, height, width, BORDER: tl.constexpr):
    """Taps of points ``(x, y)`` (blocks in the accumulation dtype) on an ``height x width`` map.

    Returns ``(i00, i10, i01, i11, in00, in10, in01, in11, wx0, wx1, wy0, wy1, dx, dy)``: the flat
    indices ``y*W + x`` (int64, clamped into the map) of taps ``(x0, y0)``, ``(x0+1, y0)``,
    ``(x0, y0+1)``, ``(x0+1, y0+1)``; their inside factors (1/0, all 1 for border padding); the
    axis weights (tap weight ``w_ab = wx_a * wy_b * in_ab``); and ``dx, dy`` = the derivative of
    the border clamp (1 for zeros padding).
    """
    hi_x = width - 1.0
    hi_y = height - 1.0
    if BORDER:
        dx = ((x >= 0.0) & (x <= hi_x)).to(x.dtype)
        dy = ((y >= 0.0) & (y <= hi_y)).to(y.dtype)
        x = tl.where(x < 0.0, 0.0, tl.where(x > hi_x, hi_x, x)).to(dx.dtype)  # NaN stays NaN
        y = tl.where(y < 0.0, 0.0, tl.where(y > hi_y, hi_y, y)).to(dy.dtype)
    else:
        dx = tl.full(x.shape, 1.0, x.dtype)
        dy = tl.full(y.shape, 1.0, y.dtype)
    x0 = tl.floor(x)
    y0 = tl.floor(y)
    wx1 = x - x0
    wy1 = y - y0
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    if BORDER:
        in00 = tl.full(x.shape, 1.0, x.dtype)
        in10 = in00
        in01 = in00
        in11 = in00
    else:
        ix0 = (x0 >= 0.0) & (x0 <= hi_x)
        ix1 = (x1 >= 0.0) & (x1 <= hi_x)
        iy0 = (y0 >= 0.0) & (y0 <= hi_y)
        iy1 = (y1 >= 0.0) & (y1 <= hi_y)
        in00 = (ix0 & iy0).to(x.dtype)
        in10 = (ix1 & iy0).to(x.dtype)
        in01 = (ix0 & iy1).to(x.dtype)
        in11 = (ix1 & iy1).to(x.dtype)
    # NaN -> 0, then clamp into the map, then cast (never out of range).
    c0 = tl.minimum(tl.maximum(tl.where(x0 == x0, x0, 0.0), 0.0), hi_x).to(tl.int64)
    c1 = tl.minimum(tl.maximum(tl.where(x1 == x1, x1, 0.0), 0.0), hi_x).to(tl.int64)
    r0 = tl.minimum(tl.maximum(tl.where(y0 == y0, y0, 0.0), 0.0), hi_y).to(tl.int64) * width
    r1 = tl.minimum(tl.maximum(tl.where(y1 == y1, y1, 0.0), 0.0), hi_y).to(tl.int64) * width
    return (r0 + c0, r0 + c1, r1 + c0, r1 + c1, in00, in10, in01, in11,
            1.0 - wx1, wx1, 1.0 - wy1, wy1, dx, dy)
