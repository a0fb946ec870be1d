"""The two optimisation steps of TUSK's iterative training (paper Sec. 3.3, "Iterative training").

1. Network step: encoder and decoder on ``w_recon L_recon + w_km L_km + w_eqv L_eqv`` over a
   batch of equivariance pairs (both images of a pair are reconstructed and clustered).
2. Prototype steps: ``sw_steps`` Adam steps of the prototypes on ``w_sw L_sw``, against the
   descriptors of the same batch under the updated network.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import LossConfig
from ..losses import equivariance_loss, kmeans_loss, prototype_sw_loss
from ..model import TUSK, TuskOutput
from .pairs import Pairs


@dataclass
class NetworkLosses:
    """Weighted loss terms of one network step and the forward output they came from."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    kmeans: torch.Tensor
    eqv_heatmap: torch.Tensor
    eqv_feature: torch.Tensor
    output: TuskOutput
    images: torch.Tensor

    def scalars(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach())
                for name in ("total", "reconstruction", "kmeans", "eqv_heatmap", "eqv_feature")}


def network_losses(model: TUSK, pairs: Pairs, config: LossConfig,
                   reconstruction_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> NetworkLosses:
    """Forward both halves of the pairs as one batch and compute the network objective.

    L_km uses detached prototypes: it trains the descriptors only (the official code computes
    it with live prototypes but never steps them on it).
    """
    images = torch.cat((pairs.images, pairs.warped))
    out = model(images)
    half = pairs.images.shape[0]
    recon = config.recon_weight * reconstruction_loss(out.reconstruction, images)
    prototypes = model.normalized_prototypes().detach()
    distances = (out.descriptors[..., None, :] - prototypes).pow(2).mean(dim=-1)
    kmeans = config.kmeans_weight * kmeans_loss(distances, temperature=config.kmeans_temperature)
    eqv_h = config.eqv_heatmap_weight * equivariance_loss(out.score_map[:half], out.score_map[half:], pairs.grid, pairs.pad)
    eqv_f = config.eqv_feature_weight * equivariance_loss(out.features[:half], out.features[half:], pairs.grid, pairs.pad)
    total = recon + kmeans + eqv_h + eqv_f
    return NetworkLosses(total, recon, kmeans, eqv_h, eqv_f, out, images)


def prototype_loss(model: TUSK, descriptors: torch.Tensor, config: LossConfig,
                   generator: torch.Generator) -> torch.Tensor:
    """``w_sw L_sw`` of the current prototypes against fixed ``descriptors [..., C]``."""
    return config.sw_weight * prototype_sw_loss(
        model.normalized_prototypes(), descriptors, projections=config.sw_projections,
        noise_std=config.gmm_noise_std, smoothing=config.gmm_smoothing, generator=generator,
    )
