"""The TUSK network: U-Net encoder, single-heatmap keypoint detector, prototypes, decoder.

- :class:`TUSK` (:mod:`.network`), configured by :class:`ModelConfig`, returns a
  :class:`TuskOutput`.
- :mod:`.tps`: random thin-plate-spline warps for the equivariance loss.
"""
from .config import ModelConfig
from .network import TUSK, Encoder
from .output import TuskOutput
from .unet import UNet

__all__ = ["TUSK", "Encoder", "ModelConfig", "TuskOutput", "UNet"]
