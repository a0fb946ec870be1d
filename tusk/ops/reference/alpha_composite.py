"""Reference alpha compositing of per-keypoint renderings."""
from __future__ import annotations

import torch


def alpha_composite(rgb: torch.Tensor, alpha_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax the alpha logits over keypoints and blend.

    Args:
        rgb: ``[B, K, C, H, W]`` per-keypoint renderings.
        alpha_logits: ``[B, K, 1, H, W]``.

    Returns:
        ``image [B, C, H, W] = sum_k alpha_k * rgb_k`` and ``alpha [B, K, 1, H, W] =
        softmax_k(alpha_logits)``.
    """
    alpha = torch.softmax(alpha_logits, dim=1)
    return (alpha * rgb).sum(dim=1), alpha
