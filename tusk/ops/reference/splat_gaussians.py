"""Reference Gaussian splatting of keypoint descriptors into dense maps."""
from __future__ import annotations

import torch


def gaussian_windows(
    xy: torch.Tensor, height: int, width: int, variance: float, radius: int, normalize: bool
) -> torch.Tensor:
    """Dense per-keypoint Gaussians restricted to their window, ``[B, K, H, W]``.

    ``G_k(p) = exp(-|p - xy_k|^2 / (2 variance))`` for pixels ``p`` inside the image with
    ``|p - c_k|_inf <= radius``, where ``c_k = floor(xy_k + 0.5)`` (round half up); 0 elsewhere.
    With ``normalize``, ``G_k`` is divided by its sum over that window (a keypoint whose window
    misses the image, or whose Gaussian underflows to 0 everywhere, splats nothing).
    The window membership is piecewise constant (no gradient).
    """
    ys = torch.arange(height, device=xy.device, dtype=xy.dtype)
    xs = torch.arange(width, device=xy.device, dtype=xy.dtype)
    x, y = xy[..., 0, None, None], xy[..., 1, None, None]  # [B, K, 1, 1]
    gauss = torch.exp(-((xs - x) ** 2 + (ys[:, None] - y) ** 2) / (2 * variance))
    with torch.no_grad():
        cx, cy = torch.floor(x + 0.5), torch.floor(y + 0.5)
        in_window = ((xs - cx).abs() <= radius) & ((ys[:, None] - cy).abs() <= radius)
    gauss = gauss * in_window
    if normalize:
        total = gauss.sum(dim=(-2, -1), keepdim=True)
        gauss = torch.where(total > 0, gauss / torch.where(total > 0, total, 1), 0)
    return gauss


def splat_gaussians(
    xy: torch.Tensor,
    descriptors: torch.Tensor,
    weights: torch.Tensor | None,
    size: tuple[int, int],
    *,
    variance: float = 0.05,
    radius: int = 1,
    normalize: bool = True,
    reduce: str = "sum",
) -> torch.Tensor:
    """Splat each keypoint's descriptor with a truncated Gaussian.

    Args:
        xy: ``[B, K, 2]`` pixel coordinates (x, y).
        descriptors: ``[B, K, C]``.
        weights: ``[B, K]`` per-keypoint weights (e.g. detection scores) or None (all 1).
        size: ``(H, W)`` of the output.
        variance: Gaussian variance in pixels^2; radius: window half-size (window is 2r+1).

    Returns:
        ``reduce="sum"``: ``[B, C, H, W]`` = sum_k w_k d_k G_k; ``reduce="none"``:
        ``[B, K, C, H, W]`` = w_k d_k G_k.
    """
    height, width = size
    gauss = gaussian_windows(xy, height, width, variance, radius, normalize)  # [B, K, H, W]
    if weights is not None:
        gauss = gauss * weights[..., None, None]
    if reduce == "sum":
        return torch.einsum("bkhw,bkc->bchw", gauss, descriptors)
    return descriptors[..., None, None] * gauss[:, :, None]
