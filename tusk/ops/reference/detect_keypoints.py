"""Reference keypoint detection: NMS + top-K + local soft-argmax + bilinear score."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sample_descriptors import sample_descriptors


def peak_mask(
    scores: torch.Tensor,
    nms_size: int,
    *,
    strict: bool = False,
    border: int = 0,
    image_size: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, H, W]`` bool: the pixels that may fill a valid slot (piecewise constant: no gradient).

    A pixel is a peak iff

    - **NMS**: it equals the maximum of the ``nms_size`` x ``nms_size`` window centred on it,
      clipped at the image border (``strict=False``); or, with ``strict=True``, it is greater than
      every *other* pixel of that clipped window (a pixel alone in its window is a peak unless it
      is NaN). A window holding a NaN has no peak either way;
    - **border**: it lies at least ``border`` pixels inside the valid part of its image:
      ``border <= x < min(W, w_b) - border`` and ``border <= y < min(H, h_b) - border``, where
      ``(w_b, h_b) = image_size[b]`` (the valid ``(W, H)`` of image b in a batch padded at the
      bottom and right; truncated to integers) or ``(W, H)`` without ``image_size``.

    Strict maxima with ``border = nms_size // 2`` are kornia's ``nms2d`` rule (a position whose
    full window does not fit in the image is never a maximum there). The public op's
    ``peak_threshold`` further requires a valid slot's peak value to exceed it.
    """
    batch, height, width = scores.shape
    radius = nms_size // 2
    pooled = F.max_pool2d(scores[:, None], nms_size, stride=1, padding=radius)[:, 0]
    peak = scores == pooled
    if strict:
        peak = peak & _strictly_above_neighbours(scores, radius)
    if border > 0 or image_size is not None:
        peak = peak & _inside_border(scores, border, image_size)
    return peak


def _strictly_above_neighbours(scores: torch.Tensor, radius: int) -> torch.Tensor:
    """``scores > max(other pixels of the clipped window)``; True for a non-NaN pixel with no other."""
    batch, height, width = scores.shape
    ry, rx = min(radius, height - 1), min(radius, width - 1)  # wider windows add no pixel
    if ry == 0 and rx == 0:
        return scores == scores
    padded = F.pad(scores, (rx, rx, ry, ry), value=float("-inf"))
    others = torch.full_like(scores, float("-inf"))
    for dy in range(-ry, ry + 1):
        for dx in range(-rx, rx + 1):
            if dy or dx:  # torch.maximum propagates NaN, as max_pool2d does
                others = torch.maximum(others, padded[:, ry + dy:ry + dy + height, rx + dx:rx + dx + width])
    return scores > others


def _inside_border(scores: torch.Tensor, border: int, image_size: torch.Tensor | None) -> torch.Tensor:
    """``[B, H, W]`` bool: ``border <= x < min(W, w_b) - border``, the same along y."""
    batch, height, width = scores.shape
    xs = torch.arange(width, device=scores.device)
    ys = torch.arange(height, device=scores.device)
    if image_size is None:
        x_end = torch.full((batch, 1), width, device=scores.device)
        y_end = torch.full((batch, 1), height, device=scores.device)
    else:
        size = image_size.to(device=scores.device, dtype=torch.int64)
        x_end = size[:, 0:1].clamp(0, width)  # clamped first: no overflow for any int64 value
        y_end = size[:, 1:2].clamp(0, height)
    x_ok = (xs >= border) & (xs < x_end - border)  # [B, W]
    y_ok = (ys >= border) & (ys < y_end - border)  # [B, H]
    return y_ok[:, :, None] & x_ok[:, None, :]


def select_peaks(
    scores: torch.Tensor,
    k: int,
    nms_size: int,
    *,
    strict: bool = False,
    border: int = 0,
    image_size: torch.Tensor | None = None,
    fill: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NMS and top-K selection (piecewise constant: no gradient).

    Peaks are the pixels of :func:`peak_mask`. Slots are filled with peaks by descending score,
    ties by lower flat index ``y*W + x``; if there are fewer than ``k`` peaks the remaining slots
    take the best non-peak pixels in the same order (``fill=True``), or pixel 0 (``fill=False``).

    Args:
        scores: ``[B, H, W]``.

    Returns:
        ``index [B, k]`` int64 flat pixel indices and ``is_peak [B, k]`` bool.
    """
    batch, height, width = scores.shape
    peak = peak_mask(scores, nms_size, strict=strict, border=border, image_size=image_size).reshape(batch, -1)
    flat = scores.reshape(batch, -1)
    # Two stable sorts: by score (descending; equal scores keep index order), then peaks first.
    by_score = torch.sort(flat, dim=1, descending=True, stable=True).indices
    peak_first = torch.sort(torch.gather(peak, 1, by_score).to(torch.uint8), dim=1,
                            descending=True, stable=True).indices
    index = torch.gather(by_score, 1, peak_first)[:, :k]
    is_peak = torch.gather(peak, 1, index)
    if not fill:
        index = torch.where(is_peak, index, torch.zeros_like(index))
    return index, is_peak


def soft_argmax(scores: torch.Tensor, index: torch.Tensor, window: int, temperature: float) -> torch.Tensor:
    """Refine integer pixels to sub-pixel positions by a soft-argmax over their window.

    Over the ``window`` x ``window`` neighbourhood of each pixel ``p``, restricted to pixels
    inside the image: ``a = exp((s - s_max) / temperature)``, ``xy = p + sum(a * d) / sum(a)``
    where ``d`` is the offset from ``p``.

    Args:
        scores: ``[B, H, W]``; index: ``[B, K]`` flat pixel indices.

    Returns:
        ``xy [B, K, 2]`` (x, y) pixel coordinates, differentiable w.r.t. ``scores``.
    """
    batch, height, width = scores.shape
    radius = window // 2
    offsets = torch.arange(-radius, radius + 1, device=scores.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    dx, dy = dx.reshape(-1), dy.reshape(-1)  # [window^2]
    px, py = index % width, index // width  # [B, K]
    wx, wy = px[..., None] + dx, py[..., None] + dy  # [B, K, window^2]
    inside = (wx >= 0) & (wx < width) & (wy >= 0) & (wy < height)
    flat_index = wy.clamp(0, height - 1) * width + wx.clamp(0, width - 1)
    # Gather from the flat [B, H*W] map (not from one expanded to [B, K, H*W]: the backward of
    # that gather materialises a dense [B, K, H*W] gradient, 20 GB at 8 x 2048 x 480 x 640).
    values = torch.gather(scores.reshape(batch, -1), 1, flat_index.reshape(batch, -1)).reshape(flat_index.shape)
    logits = (values / temperature).masked_fill(~inside, float("-inf"))
    weights = torch.softmax(logits, dim=-1)  # exp((s - s_max)/T) / sum, outside pixels excluded
    offset = torch.stack(((weights * dx).sum(-1), (weights * dy).sum(-1)), dim=-1)
    return torch.stack((px, py), dim=-1).to(scores.dtype) + offset


def detect_keypoints(
    scores: torch.Tensor,
    k: int,
    *,
    nms_size: int = 3,
    window: int = 3,
    temperature: float = 0.2,
    strict: bool = False,
    border: int = 0,
    image_size: torch.Tensor | None = None,
    fill: bool = True,
    return_index: bool = False,
) -> tuple[torch.Tensor, ...]:
    """NMS + top-K + local soft-argmax on a single heatmap.

    Args:
        scores: ``[B, H, W]`` score map.
        k: number of keypoints per image (``1 <= k <= H*W``).
        nms_size, window: odd window sizes for NMS and the soft-argmax.
        temperature: soft-argmax temperature (> 0).
        strict, border, image_size: which pixels are peaks (:func:`peak_mask`).
        fill: slots past the peaks take the best non-peaks (True) or pixel 0 (:func:`select_peaks`).
        return_index: also return each slot's flat pixel index.

    Returns:
        ``xy [B, k, 2]`` refined (x, y) pixel coordinates, ``score [B, k]`` = bilinear
        interpolation of ``scores`` at ``xy`` (border padding), ``is_peak [B, k]`` bool (False for
        slots filled with non-peak pixels), and with ``return_index`` ``index [B, k]`` int64 (the
        pixel ``y*W + x`` at the centre of each slot's soft-argmax window).
    """
    with torch.no_grad():
        index, is_peak = select_peaks(scores, k, nms_size, strict=strict, border=border, image_size=image_size,
                                      fill=fill)
    xy = soft_argmax(scores, index, window, temperature)
    score = sample_descriptors(scores[:, None], xy, padding="border")[..., 0]
    if return_index:
        return xy, score, is_peak, index
    return xy, score, is_peak
