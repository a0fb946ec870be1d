"""Reference of TUSK's prototype GMM sampling (paper Sec. 3.3 and supplementary)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def prototype_counts(prototypes: torch.Tensor, features: torch.Tensor, smoothing: float) -> torch.Tensor:
    """How many of the N samples each prototype receives, ``[M]`` int64 summing to N.

    1. Assign each feature to its nearest prototype (squared L2; ties to the lower index).
    2. Spread of prototype m: mean squared deviation (over its features and channels) of the
       features assigned to it, 1 for a prototype with none.
    3. Smoothed share: ``count_m + N * (smoothing + var(spread))``, normalised (population
       variance over prototypes). This keeps every prototype alive and gives more mass to empty
       ones when spreads are uneven, as in the official code.
    4. Integer counts by the largest-remainder method: ``floor(share * N)``, then one more sample
       to each of the prototypes with the largest fractional parts (ties to the lower index).
       (The official code gives the whole remainder to the last prototype.)

    Computed in float64 so every backend allocates identically; no gradient. Non-finite inputs
    (NaN or infinite features or prototypes) make the shares undefined: then every sample goes
    to prototype 0 (and :func:`gmm_prototype_samples` returns NaN samples).
    """
    return _prototype_counts(prototypes, features, smoothing)[0]


def _prototype_counts(
    prototypes: torch.Tensor, features: torch.Tensor, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`prototype_counts` and whether the shares were finite (a 0-dim bool tensor)."""
    with torch.no_grad():
        n = features.shape[0]
        feats, protos = features.double(), prototypes.double()
        sq_dist = ((feats[:, None, :] - protos[None]) ** 2).sum(-1)  # [N, M]
        nearest = sq_dist.argmin(dim=1)  # first minimum on ties
        counts = F.one_hot(nearest, protos.shape[0]).sum(0).double()  # static shape (compiles)
        deviation = ((feats - protos[nearest]) ** 2).mean(-1)  # [N]
        deviation_sum = torch.zeros_like(counts).index_add_(0, nearest, deviation)
        return allocate_samples(counts, deviation_sum, n, smoothing)


def allocate_samples(
    counts: torch.Tensor, deviation_sum: torch.Tensor, n: int, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2-4 of :func:`prototype_counts` from the per-prototype feature counts and sums of
    deviations (float64 ``[M]`` each): int64 samples per prototype ``[M]`` and whether the
    shares were finite (0-dim bool). Shared with the Triton backend, which sums differently."""
    spread = torch.where(counts > 0, deviation_sum / counts.clamp(min=1), torch.ones_like(deviation_sum))
    share = counts + n * (smoothing + spread.var(unbiased=False))
    quota = share / share.sum() * n
    base = torch.floor(quota)
    remainder = n - base.sum()
    order = torch.sort(quota - base, descending=True, stable=True).indices
    rank = torch.argsort(order)  # position of each prototype in that order
    samples = (base + (rank < remainder)).long()
    # Without this, NaN shares turn into arbitrary integer counts (an out-of-range index).
    valid = torch.isfinite(quota).all()
    fallback = F.one_hot(torch.zeros((), dtype=torch.long, device=samples.device), counts.shape[0]) * n
    return torch.where(valid, samples, fallback), valid


def gmm_prototype_samples(
    prototypes: torch.Tensor, features: torch.Tensor, noise: torch.Tensor, *, smoothing: float = 0.01
) -> torch.Tensor:
    """N samples from the prototype GMM: prototype ``m`` repeated ``counts[m]`` times, plus noise,
    L2-normalised.

    Args:
        prototypes: ``[M, C]``.
        features: ``[N, C]`` descriptors the samples must match in number (no gradient).
        noise: ``[N, C]`` additive Gaussian noise (already scaled by ``noise_std``).

    Returns:
        ``[N, C]`` unit-norm samples, grouped by prototype index; differentiable w.r.t.
        ``prototypes``. All NaN when the inputs are not finite.
    """
    counts, valid = _prototype_counts(prototypes, features, smoothing)
    # Sample i belongs to the prototype whose cumulative count first exceeds i.
    positions = torch.arange(features.shape[0], device=prototypes.device)
    index = torch.searchsorted(torch.cumsum(counts, 0), positions, right=True)
    samples = F.normalize(prototypes[index] + noise, dim=-1)
    return torch.where(valid, samples, torch.full_like(samples, float("nan")))
