"""Box overlap, one-to-one detection matching and prototype -> class mappings."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def boxes_around(xy: np.ndarray, side: float) -> np.ndarray:
    """``[K, 2]`` centres (x, y) -> ``[K, 4]`` boxes ``(x0, y0, x1, y1)`` of side ``side``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    half = side / 2.0
    return np.concatenate([xy - half, xy + half], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of ``[P, 4]`` and ``[G, 4]`` boxes ``(x0, y0, x1, y1)`` -> ``[P, G]``
    (continuous extents: a box ``[0, 20]`` has area 400)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def greedy_match(iou: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one greedy matching of predictions (rows) to ground truth (columns).

    Repeatedly takes the pair of highest IoU among unmatched rows and columns while it is
    ``>= threshold`` (ties: lowest row, then lowest column). Returns ``[(row, col), ...]``.
    """
    iou = np.array(iou, dtype=np.float64, copy=True)
    pairs = []
    if iou.size == 0:
        return pairs
    while True:
        flat = int(np.argmax(iou))  # first maximum in row-major order = the tie rule
        r, c = divmod(flat, iou.shape[1])
        if not iou[r, c] >= threshold:
            return pairs
        pairs.append((r, c))
        iou[r, :] = -np.inf
        iou[:, c] = -np.inf


def confusion(pred: np.ndarray, true: np.ndarray, num_pred: int, num_true: int) -> np.ndarray:
    """``[num_pred, num_true]`` int64 counts of (predicted prototype, true class) pairs."""
    pred = np.asarray(pred, dtype=np.int64).ravel()
    true = np.asarray(true, dtype=np.int64).ravel()
    if pred.size and (pred.min() < 0 or pred.max() >= num_pred):
        raise ValueError(f"predicted labels must lie in [0, {num_pred}), got [{pred.min()}, {pred.max()}]")
    if true.size and (true.min() < 0 or true.max() >= num_true):
        raise ValueError(f"true labels must lie in [0, {num_true}), got [{true.min()}, {true.max()}]")
    return np.bincount(pred * num_true + true, minlength=num_pred * num_true).reshape(num_pred, num_true)


def map_majority(counts: np.ndarray) -> np.ndarray:
    """Prototype -> class by majority vote (many-to-one). ``[M, C]`` counts -> ``[M]``;
    -1 for a prototype that never matched an object; ties go to the lowest class."""
    counts = np.asarray(counts)
    mapping = counts.argmax(axis=1)
    mapping[counts.sum(axis=1) == 0] = -1
    return mapping


def map_hungarian(counts: np.ndarray) -> np.ndarray:
    """Prototype -> class by bipartite matching maximising the number of correct objects
    (one-to-one). With ``M > C`` only ``C`` prototypes get a class, the others -1 (their
    objects count as wrong); with ``M < C`` some classes are never predicted."""
    counts = np.asarray(counts)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(counts.shape[0], -1, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def mapped_accuracy(counts: np.ndarray, mapping: np.ndarray) -> float:
    """Fraction of the objects in ``counts [M, C]`` whose prototype maps to their class."""
    counts = np.asarray(counts)
    total = counts.sum()
    if total == 0:
        return float("nan")
    rows = np.flatnonzero(mapping >= 0)
    return float(counts[rows, mapping[rows]].sum() / total)
