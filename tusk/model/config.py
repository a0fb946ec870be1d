"""Hyper-parameters of the TUSK network (the ``model:`` section of a run config)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Architecture and detection settings.

    Attributes:
        channels: descriptor / feature-map channels C (the paper uses 32 everywhere).
        keypoints: keypoints K detected per image.
        prototypes: learned prototypes M (cluster centres).
        window: odd NMS and soft-argmax window (the official code uses one size for both).
        temperature: soft-argmax temperature (the official code divides scores by 0.2).
        variance: variance in px^2 of the Gaussians that splat descriptors (official 0.05).
        alpha_blending: decode one RGBA image per keypoint and alpha-composite them (object
            discovery) instead of decoding the score-weighted sum of the splatted maps.
        width: channels of the first U-Net level (official 32).
        levels: U-Net resolutions (official 4, i.e. three poolings).
        threshold: at inference, keypoints whose score is below this are marked invalid.
        checkpoint: recompute the U-Nets' activations in backward instead of storing them
            (measured on the MNIST-Hard step: 0.44x the peak memory for 1.2x the time; see
            :class:`~tusk.model.unet.UNet`).
    """

    channels: int = 32
    keypoints: int = 9
    prototypes: int = 10
    window: int = 13
    temperature: float = 0.2
    variance: float = 0.05
    alpha_blending: bool = False
    width: int = 32
    levels: int = 4
    threshold: float | None = None
    checkpoint: bool = False

    def validate(self) -> None:
        for name in ("channels", "keypoints", "prototypes", "width", "levels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be an integer >= 1, got {value!r}")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"model.window must be an odd integer >= 1, got {self.window!r}")
        for name in ("temperature", "variance"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"model.{name} must be > 0, got {getattr(self, name)!r}")
