"""What :class:`tusk.model.TUSK` returns."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TuskOutput:
    """One forward pass. ``B`` images, ``K`` keypoints, ``C`` descriptor channels.

    Attributes:
        reconstruction: ``[B, 3, H, W]`` decoded image in [0, 1].
        xy: ``[B, K, 2]`` keypoints, pixel coordinates (x, y), pixel centres at integers.
        scores: ``[B, K]`` score-map value at each keypoint (the decoder's splat weight).
        valid: ``[B, K]`` bool: a real NMS peak (above ``threshold`` when one is set).
        descriptors: ``[B, K, C]`` L2-normalised descriptors.
        labels: ``[B, K]`` int64 index of the nearest prototype.
        heatmap: ``[B, 1, H, W]`` detection logits; ``score_map = sigmoid(heatmap)``.
        score_map: ``[B, 1, H, W]``.
        features: ``[B, C, H, W]`` dense feature map F.
        alpha: ``[B, K, 1, H, W]`` per-keypoint alpha masks (alpha blending only, else None).
        rgb: ``[B, K, 3, H, W]`` per-keypoint renderings (alpha blending only, else None).
    """

    reconstruction: torch.Tensor
    xy: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    descriptors: torch.Tensor
    labels: torch.Tensor
    heatmap: torch.Tensor
    score_map: torch.Tensor
    features: torch.Tensor
    alpha: torch.Tensor | None = None
    rgb: torch.Tensor | None = None

    @property
    def masks(self) -> torch.Tensor | None:
        """``[B, K, H, W]`` bool: each pixel belongs to the keypoint with the largest alpha."""
        if self.alpha is None:
            return None
        winner = self.alpha[:, :, 0].argmax(dim=1)  # [B, H, W]
        keypoints = torch.arange(self.alpha.shape[1], device=winner.device)
        return winner[:, None] == keypoints[None, :, None, None]
