"""Object discovery metrics (TUSK Sec. 4.2 / Tab. 2): foreground ARI and attribute accuracy.

- **FG-ARI**: each pixel's predicted segment is the argmax over the K alpha masks; the
  Adjusted Rand Index (``sklearn.metrics.adjusted_rand_score``) between predicted segments
  and ground-truth objects is computed over the ground-truth foreground pixels of each image,
  then averaged over images.

  Degenerate images, defined so the mean never becomes NaN: an image with one object has a
  single true cluster, where ARI is 0/0 in the textbook formula. We keep scikit-learn's
  convention: 1.0 when the prediction also keeps all its foreground pixels in one segment
  (a perfect grouping), 0.0 when it splits them. Images without any foreground pixel carry
  no grouping to score and are left out of the mean (counted in ``ari_skipped``).
- **Attribute accuracy**: each object is assigned to the segment covering most of its
  pixels (or, without masks, to a valid keypoint by minimum-distance bipartite matching);
  the object's prototype is that keypoint's label. Each prototype is mapped to the
  attribute value it most often carries (majority, as the paper: "the properties that best
  represent the prototype"); accuracy = objects whose prototype maps to their value / objects.
  Every object counts: one that no keypoint explains is wrong. The official scripts count
  keypoints instead and ignore unexplained objects: ``<attr>_accuracy_official`` (see
  :mod:`tusk.eval.official`), reported beside this stricter figure.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from ._inputs import as_numpy, check_predictions, check_targets
from .matching import confusion, map_majority, mapped_accuracy
from .official import attribute_accuracy_official

ATTRIBUTES = ("shape", "color", "size", "material")


def foreground_ari(pred_segments: np.ndarray, true_masks: np.ndarray) -> float:
    """FG-ARI of one image: ``pred_segments [H, W]`` int, ``true_masks [n, H, W]`` bool.
    NaN only when the image has no foreground pixel."""
    true_masks = np.asarray(true_masks, dtype=bool)
    if true_masks.shape[1:] != pred_segments.shape:
        raise ValueError(f"predicted masks are {list(pred_segments.shape)} but the ground-truth "
                         f"masks are {list(true_masks.shape[1:])}: evaluate at the dataset's image size")
    fg = true_masks.any(axis=0)
    if not fg.any():
        return float("nan")
    true_ids = np.argmax(true_masks, axis=0)  # object index per pixel (masks are disjoint)
    return float(adjusted_rand_score(true_ids[fg], pred_segments[fg]))


def has_segments(pred: dict) -> bool:
    """Whether the predictions carry per-keypoint masks (``masks``, or ``segments``)."""
    return "masks" in pred or "segments" in pred


def segments_of(pred: dict, i: int) -> np.ndarray:
    """``[H, W]`` keypoint index of each pixel of image ``i``: the argmax over the K alpha
    masks (``pred["masks"]``), or the stored ``pred["segments"]``."""
    return pred["masks"][i].argmax(axis=0) if "masks" in pred else pred["segments"][i]


def confident_of(pred: dict, i: int) -> np.ndarray:
    """``[K, H, W]`` bool: alpha > 0.8 (the official attribute protocol's keypoint regions)."""
    from .official import ALPHA_THRESHOLD

    if "masks" in pred:
        return pred["masks"][i] > ALPHA_THRESHOLD
    return pred["alpha_confident"][i]


def _object_keypoints(pred: dict, i: int, masks: np.ndarray, centers: np.ndarray | None) -> np.ndarray:
    """``[n]`` index of the keypoint that explains each ground-truth object (-1: none)."""
    n = len(masks)
    if has_segments(pred):
        segments = segments_of(pred, i)
        k = pred["labels"].shape[1]
        owner = np.empty(n, dtype=np.int64)
        for j in range(n):
            votes = np.bincount(segments[masks[j]], minlength=k)
            owner[j] = int(votes.argmax()) if votes.sum() else -1
        return owner
    if centers is None:
        centers = np.stack([np.array([np.nonzero(m)[1].mean(), np.nonzero(m)[0].mean()]) for m in masks]) \
            if n else np.zeros((0, 2))
    valid = np.flatnonzero(pred["valid"][i])
    owner = np.full(n, -1, dtype=np.int64)
    if len(valid) == 0 or n == 0:
        return owner
    dist = np.linalg.norm(centers[:, None, :] - pred["xy"][i][valid][None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(dist)
    owner[rows] = valid[cols]
    return owner


def object_discovery_metrics(predictions: dict, targets: Sequence[dict], *,
                             num_prototypes: int | None = None) -> tuple[dict[str, float], dict]:
    """FG-ARI (when per-keypoint masks are given) and per-attribute accuracies, ours and the
    official protocol's.

    Per-keypoint masks: ``predictions['masks'] [N, K, H, W]`` float alpha, or the compact
    ``predictions['segments'] [N, H, W]`` (argmax keypoint per pixel) with
    ``predictions['alpha_confident'] [N, K, H, W]`` bool (alpha > 0.8) for the official figure.

    Returns ``(metrics, details)``: ``ari`` (mean FG-ARI), ``ari_images``, ``ari_skipped``,
    ``<attr>_accuracy`` for each attribute the targets carry (``shape``, ``color``, and
    ``size``/``material`` for CLEVR; every object counts, unexplained ones as wrong),
    ``num_objects``; with alpha masks also ``<attr>_accuracy_official`` and
    ``keypoints_official`` (:func:`~tusk.eval.official.attribute_accuracy_official`);
    ``details`` holds per-image ARI and the per-attribute confusion matrices.
    """
    pred = check_predictions(predictions, len(targets))
    targets = check_targets(targets, ("masks",))
    labels = pred["labels"]
    m = num_prototypes if num_prototypes is not None else int(labels.max(initial=-1)) + 1
    m = max(m, 1)
    attributes = [a for a in ATTRIBUTES if all(a in t for t in targets)] if targets else []
    per_image_ari = []
    object_protos = []
    object_attrs = {a: [] for a in attributes}
    for i, target in enumerate(targets):
        masks = as_numpy(target["masks"]).astype(bool)
        if has_segments(pred):
            per_image_ari.append(foreground_ari(segments_of(pred, i), masks))
        centers = as_numpy(target["centers"]) if "centers" in target else None
        owner = _object_keypoints(pred, i, masks, centers)
        proto = np.where(owner >= 0, labels[i][np.clip(owner, 0, None)], -1)
        object_protos.append(proto)
        for a in attributes:
            object_attrs[a].append(as_numpy(target[a]).reshape(-1).astype(np.int64))
    metrics: dict[str, float] = {}
    details: dict = {}
    if has_segments(pred):
        aris = np.array(per_image_ari, dtype=np.float64)
        scored = aris[~np.isnan(aris)]
        metrics["ari"] = float(scored.mean()) if scored.size else float("nan")
        metrics["ari_images"] = float(scored.size)
        metrics["ari_skipped"] = float(aris.size - scored.size)
        details["ari_per_image"] = aris
    protos = np.concatenate(object_protos) if object_protos else np.zeros(0, np.int64)
    metrics["num_objects"] = float(protos.size)
    for a in attributes:
        values = np.concatenate(object_attrs[a])
        assigned = protos >= 0
        num_values = int(values.max(initial=-1)) + 1
        counts = confusion(protos[assigned], values[assigned], m, max(num_values, 1))
        mapping = map_majority(counts)
        # objects no keypoint explains count as wrong
        correct = mapped_accuracy(counts, mapping) * assigned.sum() if assigned.any() else 0.0
        metrics[f"{a}_accuracy"] = float(correct / values.size) if values.size else float("nan")
        details[f"{a}_confusion"] = counts
        details[f"{a}_mapping"] = mapping
    if "masks" in pred or "alpha_confident" in pred:
        metrics.update(attribute_accuracy_official(lambda i: confident_of(pred, i), labels, targets, attributes,
                                                   num_prototypes=m))
    return metrics, details
