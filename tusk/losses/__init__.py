"""TUSK's objectives (paper Sec. 3.3).

- :func:`mse_loss`, :class:`PerceptualLoss`: L_recon.
- :func:`kmeans_loss`: L_km, descriptors towards their nearest prototype.
- :func:`prototype_sw_loss`: L_sw, prototypes towards the descriptor distribution.
- :func:`equivariance_loss`: L_eqv under random thin-plate-spline warps.
"""
from .clustering import kmeans_loss, prototype_sw_loss
from .equivariance import equivariance_loss
from .reconstruction import PerceptualLoss, mse_loss
from .vgg import load_vgg16_trunk, vgg16_trunk

__all__ = [
    "PerceptualLoss", "equivariance_loss", "kmeans_loss", "load_vgg16_trunk", "mse_loss",
    "prototype_sw_loss", "vgg16_trunk",
]
