"""The TUSK auto-encoder (paper Sec. 3, Fig. 2).

``image -> encoder -> (feature map F, heatmap H) -> detect K keypoints on sigmoid(H) ->
descriptors = normalise(F at keypoints) -> splat Gaussians -> decoder -> reconstruction``.

Every keypoint operation goes through :mod:`tusk.ops` (looked up at call time, so the backend
chosen by ``TUSK_BACKEND`` / :func:`tusk.ops.use_backend` applies, and tests can patch an op).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .config import ModelConfig
from .output import TuskOutput
from .unet import UNet


class Encoder(nn.Module):
    """``[B, 3, H, W]`` image in [0, 1] -> feature map ``[B, C, H, W]`` and heatmap ``[B, 1, H, W]``.

    A U-Net produces F; a small head (3x3 conv, GroupNorm, ReLU, 3x3 conv) turns F into the
    heatmap logits, followed by a single-group GroupNorm, as in the official code: it
    standardises each image's heatmap (zero mean, unit variance, then a learned scale and
    shift), so the sigmoid scores neither saturate nor flatten as the features drift.

    Initialisation (the paper is silent; the official code uses PyTorch's default): the head's
    last convolution starts with non-negative weights. After the per-channel GroupNorm and
    ReLU, that makes the initial heatmap a saliency measure, high where features deviate from
    their image-wide mean, i.e. on objects rather than on a uniform background. With the
    default (random-sign) weights, objects scored higher than background at initialisation for
    only 12-13 of 20 seeds (squares, Tetrominoes at 35 and 112 px; 20/20 with this init), and a
    run that starts inverted tends to keep its keypoints in the background: in 200-step runs
    on coloured squares, 1 of 6 seeds ended with no keypoint on any object before, 0 of 6 after.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.channels
        self.features = UNet(3, c, width=config.width, levels=config.levels, checkpoint=config.checkpoint)
        self.heatmap_head = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1),
            nn.GroupNorm(c, c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, 1, 3, padding=1),
            nn.GroupNorm(1, 1),
        )
        with torch.no_grad():
            self.heatmap_head[3].weight.abs_()  # saliency-like start, see the class docstring

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        return features, self.heatmap_head(features)


class TUSK(nn.Module):
    """Task-agnostic unsupervised keypoints: encoder, detector, prototypes and decoder.

    Args:
        config: :class:`ModelConfig`.

    Example:
        >>> model = TUSK(ModelConfig(keypoints=3, prototypes=4, window=5, width=8, levels=2))
        >>> with ops.use_backend("reference"):
        ...     out = model(torch.rand(2, 3, 16, 16))
        >>> out.reconstruction.shape, out.xy.shape, out.labels.shape
        (torch.Size([2, 3, 16, 16]), torch.Size([2, 3, 2]), torch.Size([2, 3]))
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = Encoder(config)
        out_channels = 4 if config.alpha_blending else 3
        self.decoder = UNet(config.channels, out_channels, width=config.width, levels=config.levels,
                            checkpoint=config.checkpoint)
        # Raw prototypes; every use L2-normalises them (paper Sec. 3.3, official code).
        self.prototypes = nn.Parameter(torch.randn(config.prototypes, config.channels))

    # -- pieces -------------------------------------------------------------------------------

    def normalized_prototypes(self) -> torch.Tensor:
        """``[M, C]`` unit-norm prototypes."""
        return F.normalize(self.prototypes, dim=-1)

    def prototype_distances(self, descriptors: torch.Tensor) -> torch.Tensor:
        """``[..., M]`` mean (over channels) squared distance from each descriptor to each
        normalised prototype (the official k-means distance)."""
        diff = descriptors[..., None, :] - self.normalized_prototypes()
        return diff.pow(2).mean(dim=-1)

    def describe(self, features: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """``[B, K, C]`` unit-norm descriptors bilinearly sampled from ``features`` at ``xy``."""
        return F.normalize(ops.sample_descriptors(features, xy, padding="border"), dim=-1)

    def detect(self, score_map: torch.Tensor) -> ops.Detections:
        cfg = self.config
        return ops.detect_keypoints(
            score_map, cfg.keypoints, nms_size=cfg.window, window=cfg.window,
            temperature=cfg.temperature, threshold=cfg.threshold,
        )

    def decode(self, xy: torch.Tensor, descriptors: torch.Tensor, weights: torch.Tensor | None,
               size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Render keypoints back into an image.

        Args:
            xy: ``[B, K, 2]``; descriptors: ``[B, K, C]``; weights: ``[B, K]`` or None.
            size: ``(H, W)``.

        Returns:
            ``(image [B, 3, H, W], rgb [B, K, 3, H, W] or None, alpha [B, K, 1, H, W] or None)``.
        """
        variance = self.config.variance
        if not self.config.alpha_blending:
            splat = ops.splat_gaussians(xy, descriptors, weights, size, variance=variance, reduce="sum")
            return torch.sigmoid(self.decoder(splat)), None, None
        maps = ops.splat_gaussians(xy, descriptors, weights, size, variance=variance, reduce="none")
        batch, k, channels, height, width = maps.shape
        out = self.decoder(maps.reshape(batch * k, channels, height, width))
        out = out.reshape(batch, k, 4, height, width)
        rgb = torch.sigmoid(out[:, :, :3])
        image, alpha = ops.alpha_composite(rgb, out[:, :, 3:])
        return image, rgb, alpha

    # -- forward ------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> TuskOutput:
        """Auto-encode ``images [B, 3, H, W]`` (values in [0, 1]); see :class:`TuskOutput`."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        size = tuple(images.shape[-2:])
        features, heatmap = self.encoder(images)
        score_map = torch.sigmoid(heatmap)
        detections = self.detect(score_map)
        descriptors = self.describe(features, detections.xy)
        with torch.no_grad():
            labels = self.prototype_distances(descriptors).argmin(dim=-1)
        reconstruction, rgb, alpha = self.decode(detections.xy, descriptors, detections.score, size)
        return TuskOutput(
            reconstruction=reconstruction, xy=detections.xy, scores=detections.score,
            valid=detections.valid, descriptors=descriptors, labels=labels, heatmap=heatmap,
            score_map=score_map, features=features, alpha=alpha, rgb=rgb,
        )

    def encode_descriptors(self, images: torch.Tensor) -> torch.Tensor:
        """Only what the prototype step needs: ``[B, K, C]`` descriptors (no decoder)."""
        features, heatmap = self.encoder(images)
        detections = self.detect(torch.sigmoid(heatmap))
        return self.describe(features, detections.xy)

    @torch.no_grad()
    def render_prototypes(self, size: tuple[int, int], weight: float = 1.0, chunk: int = 64) -> torch.Tensor:
        """``[M, 3, H, W]``: each prototype splatted alone at the image centre and decoded."""
        protos = self.normalized_prototypes()
        height, width = size
        centre = protos.new_tensor([(width - 1) / 2, (height - 1) / 2])
        images = []
        for start in range(0, protos.shape[0], chunk):
            block = protos[start:start + chunk, None]  # [m, 1, C]
            xy = centre.expand(block.shape[0], 1, 2)
            weights = block.new_full(block.shape[:2], weight)
            images.append(self.decode(xy, block, weights, size)[0])
        return torch.cat(images)
