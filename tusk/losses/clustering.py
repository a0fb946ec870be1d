"""The clustering objectives (paper Sec. 3.3): k-means on descriptors, sliced Wasserstein on prototypes."""
from __future__ import annotations

import torch

from .. import ops


def kmeans_loss(distances: torch.Tensor, *, temperature: float = 20.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_km: pull each descriptor towards its nearest prototype, relative to the others.

    ``p = softmin(temperature * d)`` over prototypes and ``L = -mean log max_m p_m`` (the log
    soft-min of the nearest prototype; the log avoids the vanishing gradients of the soft-min).
    The official code uses ``d`` = mean squared distance between unit-norm vectors and a
    temperature of 20.

    Args:
        distances: ``[..., M]`` distances from each descriptor to every prototype.
        temperature: inverse softness.
        mask: optional ``[...]`` bool; only ``True`` descriptors count.

    Returns:
        Scalar loss (0 when ``mask`` selects nothing).
    """
    log_p = torch.log_softmax(-temperature * distances, dim=-1)
    nearest = -log_p.max(dim=-1).values
    if mask is None:
        return nearest.mean()
    mask = mask.to(nearest.dtype)
    return (nearest * mask).sum() / mask.sum().clamp_min(1)


def prototype_sw_loss(prototypes: torch.Tensor, descriptors: torch.Tensor, *, projections: int = 100,
                      noise_std: float = 0.02, smoothing: float = 0.01,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """L_sw: sliced Wasserstein distance between the descriptors and the prototype GMM.

    All descriptors of the batch are pooled (``[..., C] -> [N, C]``), as many samples are drawn
    from the GMM around the prototypes (:func:`tusk.ops.gmm_prototype_samples`), and the sorted
    1-D projections are compared. The value is the official scale: the sum over projections of
    the mean squared difference (``projections`` times :func:`tusk.ops.sliced_wasserstein`).

    The descriptors are detached: this loss trains the prototypes (the official code steps only
    the prototype optimiser on it).

    Args:
        prototypes: ``[M, C]`` normalised prototypes (differentiable).
        descriptors: ``[..., C]`` unit-norm descriptors.
        projections: number of random directions P.
        noise_std, smoothing: GMM sampling noise and share smoothing.
        generator: random generator for the GMM noise and the projections.
    """
    features = descriptors.detach().reshape(-1, descriptors.shape[-1])
    samples = ops.gmm_prototype_samples(prototypes, features, noise_std=noise_std, smoothing=smoothing,
                                        generator=generator)
    distance = ops.sliced_wasserstein(features, samples, projections=projections, generator=generator)
    return distance * projections
