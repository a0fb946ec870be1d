"""Reference sort-based sliced Wasserstein distance."""
from __future__ import annotations

import torch


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """``mean_p mean_i (sort(x @ theta_p)_i - sort(y @ theta_p)_i)^2``.

    Args:
        x, y: ``[..., N, C]`` point sets (same N); leading dims are independent problems.
        projections: ``[C, P]`` projection directions (columns; unit norm for the usual SW).

    Returns:
        ``[...]`` squared sliced 2-Wasserstein distance. (The paper's official loss is P times this.)
    """
    sorted_x = torch.sort(x @ projections, dim=-2).values  # [..., N, P]
    sorted_y = torch.sort(y @ projections, dim=-2).values
    return ((sorted_x - sorted_y) ** 2).mean(dim=(-2, -1))
