"""Quick metrics computed by the trainer and ``tusk eval``: reconstruction error and how close
keypoints land to objects (for datasets whose items carry object ``"centers"``).

The task metrics of the paper (detection/classification accuracy, ARI, landmark regression)
live in ``tusk.eval``; these are the cheap ones that tell whether a run is learning.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def nearest_centre_distance(xy: np.ndarray, valid: np.ndarray, centers: Sequence[np.ndarray]) -> float:
    """Mean distance (px) from each valid keypoint to the nearest object centre of its image.

    Args:
        xy: ``[N, K, 2]``; valid: ``[N, K]`` bool; centers: N arrays ``[n_i, 2]`` (x, y).
    """
    distances = []
    for points, keep, objects in zip(xy, valid, centers):
        objects = np.asarray(objects, dtype=np.float64).reshape(-1, 2)
        if len(objects) == 0 or not keep.any():
            continue
        d = np.linalg.norm(points[keep][:, None, :] - objects[None], axis=-1)
        distances.append(d.min(axis=1))
    return float(np.concatenate(distances).mean()) if distances else float("nan")


def object_recall(xy: np.ndarray, valid: np.ndarray, centers: Sequence[np.ndarray], radius: float) -> float:
    """Fraction of objects with a valid keypoint within ``radius`` px of their centre."""
    hits, total = 0, 0
    for points, keep, objects in zip(xy, valid, centers):
        objects = np.asarray(objects, dtype=np.float64).reshape(-1, 2)
        total += len(objects)
        if len(objects) and keep.any():
            d = np.linalg.norm(objects[:, None, :] - points[keep][None], axis=-1)
            hits += int((d.min(axis=1) <= radius).sum())
    return hits / total if total else float("nan")


def random_keypoints(count: int, k: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``[count, k, 2]`` keypoints uniform over an ``(H, W)`` image: the chance baseline."""
    rng = np.random.default_rng(seed)
    height, width = size
    return rng.uniform((0, 0), (width - 1, height - 1), size=(count, k, 2))


def keypoint_metrics(xy: np.ndarray, valid: np.ndarray, centers: Sequence[np.ndarray],
                     size: tuple[int, int], radius: float) -> dict[str, float]:
    """Distances and recall of the keypoints, with the same numbers for random keypoints."""
    chance = random_keypoints(len(xy), xy.shape[1], size)
    everywhere = np.ones(valid.shape, dtype=bool)
    return {
        "keypoint_to_object_px": nearest_centre_distance(xy, valid, centers),
        "keypoint_to_object_px_random": nearest_centre_distance(chance, everywhere, centers),
        "object_recall": object_recall(xy, valid, centers, radius),
        "object_recall_random": object_recall(chance, everywhere, centers, radius),
        "recall_radius_px": float(radius),
        "valid_fraction": float(valid.mean()),
    }


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
