"""Keypoint -> output-tile binning for the gather-style kernels (splat forward, sampling backward).

Scattering keypoints into a map needs either atomics or a gather: each program owns an output
tile and sums the keypoints whose footprint (a pixel rectangle) touches it. This module builds,
with a few torch ops on ``B*K*S`` integers, the per-tile lists those programs walk:

1. every keypoint's footprint rectangle (clamped to the image) gives the tiles it touches; a
   footprint spans at most ``span_y x span_x`` tiles, a static bound, so the candidate list has
   the static length ``B*K*span_y*span_x`` (slots outside the footprint get a sentinel key);
2. one stable ``torch.sort`` of the tile keys groups the keypoints by tile, in keypoint order
   (so every pixel sums its keypoints in a fixed order: deterministic, no atomics);
3. ``torch.searchsorted`` gives each tile's ``[start, end)`` range in the sorted list.

torch is used here (not a kernel) because a stable sort of small integer keys is exactly what
``torch.sort`` provides, on every device, with static output shapes under ``torch.compile``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class TileBins(NamedTuple):
    """``keypoint [L] int64``: flat keypoint index ``b*K + k`` of each sorted entry;
    ``start [B*tiles_y*tiles_x + 1] int64``: entries of tile ``t`` are
    ``keypoint[start[t]:start[t+1]]``."""

    keypoint: torch.Tensor
    start: torch.Tensor
    tiles_y: int
    tiles_x: int


def tiles_spanned(extent: int, tile: int, tiles: int) -> int:
    """Most tiles of size ``tile`` that ``extent`` consecutive pixels can touch (capped)."""
    return min(tiles, (max(extent, 1) - 1) // tile + 2)


def bin_footprints(
    lo_x: torch.Tensor, hi_x: torch.Tensor, lo_y: torch.Tensor, hi_y: torch.Tensor,
    height: int, width: int, tile_h: int, tile_w: int, extent_y: int, extent_x: int,
) -> TileBins:
    """Group keypoints by the output tiles their footprints touch.

    Args:
        lo_x, hi_x, lo_y, hi_y: ``[B, K]`` int64 inclusive pixel bounds of each footprint, already
            clamped into the image; a footprint with ``lo > hi`` on an axis is empty.
        extent_y, extent_x: static upper bounds of ``hi - lo + 1``.
    """
    batch, count = lo_x.shape
    tiles_y, tiles_x = -(-height // tile_h), -(-width // tile_w)
    span_y = tiles_spanned(extent_y, tile_h, tiles_y)
    span_x = tiles_spanned(extent_x, tile_w, tiles_x)
    device = lo_x.device
    first_y, last_y = (lo_y // tile_h)[..., None, None], (hi_y // tile_h)[..., None, None]
    first_x, last_x = (lo_x // tile_w)[..., None, None], (hi_x // tile_w)[..., None, None]
    ty = first_y + torch.arange(span_y, device=device)[:, None]  # [B, K, span_y, 1]
    tx = first_x + torch.arange(span_x, device=device)  # [B, K, 1, span_x]
    used = (ty <= last_y) & (tx <= last_x) & (lo_y[..., None, None] <= hi_y[..., None, None]) \
        & (lo_x[..., None, None] <= hi_x[..., None, None])
    tiles = tiles_y * tiles_x
    batch_index = torch.arange(batch, device=device)[:, None, None, None]
    key = torch.where(used, batch_index * tiles + ty * tiles_x + tx, batch * tiles)  # sentinel last
    key = key.reshape(-1)
    sorted_key, order = torch.sort(key, stable=True)
    keypoint = order // (span_y * span_x)
    bounds = torch.arange(batch * tiles + 1, device=device, dtype=sorted_key.dtype)
    start = torch.searchsorted(sorted_key, bounds)
    return TileBins(keypoint, start, tiles_y, tiles_x)
