"""Reference keypoint detection: NMS + top-K + local soft-argmax + bilinear score."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sample_descriptors import sample_descriptors


def select_peaks(scores: torch.Tensor, k: int, nms_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NMS and top-K selection (piecewise constant: no gradient).

    A pixel is a peak iff it equals the maximum of the ``nms_size`` x ``nms_size`` window centred
    on it, clipped at the image border. Slots are filled with peaks by descending score, ties by
    lower flat index ``y*W + x``; if there are fewer than ``k`` peaks the remaining slots take the
    best non-peak pixels in the same order.

    Args:
        scores: ``[B, H, W]``.

    Returns:
        ``index [B, k]`` int64 flat pixel indices and ``is_peak [B, k]`` bool.
    """
    batch, height, width = scores.shape
    pooled = F.max_pool2d(scores[:, None], nms_size, stride=1, padding=nms_size // 2)[:, 0]
    peak = (scores == pooled).reshape(batch, -1)
    flat = scores.reshape(batch, -1)
    # Two stable sorts: by score (descending; equal scores keep index order), then peaks first.
    by_score = torch.sort(flat, dim=1, descending=True, stable=True).indices
    peak_first = torch.sort(torch.gather(peak, 1, by_score).to(torch.uint8), dim=1,
                            descending=True, stable=True).indices
    index = torch.gather(by_score, 1, peak_first)[:, :k]
    return index, torch.gather(peak, 1, index)


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
    scores: torch.Tensor, k: int, *, nms_size: int = 3, window: int = 3, temperature: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NMS + top-K + local soft-argmax on a single heatmap.

    Args:
        scores: ``[B, H, W]`` score map.
        k: number of keypoints per image (``1 <= k <= H*W``).
        nms_size, window: odd window sizes for NMS and the soft-argmax.
        temperature: soft-argmax temperature (> 0).

    Returns:
        ``xy [B, k, 2]`` refined (x, y) pixel coordinates, ``score [B, k]`` = bilinear
        interpolation of ``scores`` at ``xy`` (border padding), ``is_peak [B, k]`` bool (False for
        slots filled with non-peak pixels).
    """
    with torch.no_grad():
        index, is_peak = select_peaks(scores, k, nms_size)
    xy = soft_argmax(scores, index, window, temperature)
    score = sample_descriptors(scores[:, None], xy, padding="border")[..., 0]
    return xy, score, is_peak
