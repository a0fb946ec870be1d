"""The authors' evaluation protocol, reported beside ours as ``*_official``.

The paper's numbers come from the official scripts (``evaluate_mnist.py`` and
``inference_multi_objects.py`` of the TUSK release), which count differently from the
paper's text in ways that matter. Reimplemented from their description (not their code):

**MNIST-Hard** (:func:`mnist_hard_official`):

- every one of the K keypoints is a prediction (there is no validity test), with a box of
  20x20 px at the 80x80 resolution (scaled with the image width here; the script assumes 80);
- ground-truth digits are visited in their stored order; each takes the prediction of
  highest IoU with it if that IoU is **> 0.5** (strictly), and the prediction is consumed;
- prototypes map to classes by **majority** (many-to-one);
- every image counts **9** objects (the MNIST-Hard digit count, hard-coded in the script):
  ``detection = matched / (9 N)``, ``both = correctly classified matches / (9 N)``,
  ``classification = correctly classified / matched``.

The script reads only its first output group, i.e. the first 10,000 test images:
``tusk eval --images 10000`` scores the same subset of a larger test split.

**Attributes of discovered objects** (:func:`attribute_accuracy_official`):

- each keypoint (all K) owns the pixels where its alpha is **> 0.8**; it explains an object
  when **more than half** of those pixels (background included) belong to that object; only
  the first K ground-truth objects of an image are candidates (the script's loop);
- every explaining keypoint counts once (an object may count several times); objects no
  keypoint explains are **ignored** (ours count them as wrong);
- prototypes map to attribute values by majority; accuracy = majority-consistent counts /
  counted keypoints.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._inputs import as_numpy
from .matching import box_iou, boxes_around

#: The official detection box: 20x20 px on the 80x80 MNIST-Hard canvas.
OFFICIAL_BOX = 20.0
OFFICIAL_CANVAS = 80.0
#: Digits per MNIST-Hard image, the official script's denominator per image.
OFFICIAL_DIGITS_PER_IMAGE = 9
#: Alpha above which a pixel belongs to a keypoint, and the share of such pixels an object needs.
ALPHA_THRESHOLD = 0.8
OBJECT_SHARE = 0.5


def _majority_correct(counts: np.ndarray) -> int:
    """Objects (or keypoints) a many-to-one prototype -> value mapping gets right."""
    return int(counts.max(axis=1).sum()) if counts.size else 0


def mnist_hard_official(predictions: dict, targets: Sequence[dict], *, num_prototypes: int,
                        num_classes: int = 10, image_width: float = OFFICIAL_CANVAS,
                        digits_per_image: int = OFFICIAL_DIGITS_PER_IMAGE) -> dict[str, float]:
    """MNIST-Hard figures counted as the official script does (see the module doc).

    Args:
        predictions: ``xy [N, K, 2]`` and ``labels [N, K]`` (``valid`` is ignored, as there).
        targets: items with ``boxes [n, 4]`` and ``labels [n]``.
        image_width: width of the evaluated images; the box side is ``20 * image_width / 80``.

    Returns:
        ``detection_accuracy_official``, ``classification_accuracy_official``,
        ``both_official`` (fractions) and ``matched_official`` (count).
    """
    xy_all = as_numpy(predictions["xy"]).astype(np.float64)
    labels_all = as_numpy(predictions["labels"]).astype(np.int64)
    side = OFFICIAL_BOX * float(image_width) / OFFICIAL_CANVAS
    counts = np.zeros((max(int(num_prototypes), 1), num_classes), dtype=np.int64)
    matched = 0
    for i, target in enumerate(targets):
        gt_boxes = as_numpy(target["boxes"]).reshape(-1, 4).astype(np.float64)
        gt_labels = as_numpy(target["labels"]).reshape(-1).astype(np.int64)
        if len(gt_boxes) == 0 or xy_all.shape[1] == 0:
            continue
        iou = box_iou(boxes_around(xy_all[i], side), gt_boxes)  # [K, n]
        for g in range(len(gt_boxes)):
            best = int(np.argmax(iou[:, g]))  # first maximum, as numpy's argmax there
            if iou[best, g] > 0.5:
                matched += 1
                counts[labels_all[i, best], gt_labels[g]] += 1
                iou[best, :] = 0.0  # the prediction is consumed
    denominator = digits_per_image * len(targets)
    correct = _majority_correct(counts)
    nan = float("nan")
    return {
        "detection_accuracy_official": matched / denominator if denominator else nan,
        "classification_accuracy_official": correct / matched if matched else nan,
        "both_official": correct / denominator if denominator else nan,
        "matched_official": float(matched),
    }


def attribute_accuracy_official(confident: Callable[[int], np.ndarray], labels: np.ndarray,
                                targets: Sequence[dict], attributes: Sequence[str], *,
                                num_prototypes: int) -> dict[str, float]:
    """Attribute accuracies counted as the official script does (see the module doc).

    Args:
        confident: ``confident(i)`` -> ``[K, H, W]`` bool, where keypoint ``k``'s alpha > 0.8
            in image ``i``.
        labels: ``[N, K]`` nearest prototype of each keypoint.
        targets: items with ``masks [n, H, W]`` and each attribute ``[n]``.
        attributes: the attribute names to score.

    Returns:
        ``<attr>_accuracy_official`` per attribute and ``keypoints_official`` (keypoints that
        explained an object).
    """
    labels = np.asarray(labels, dtype=np.int64)
    m = max(int(num_prototypes), 1)
    pairs: list[tuple[int, int]] = []  # (image, object) per explaining keypoint
    protos: list[int] = []
    for i, target in enumerate(targets):
        masks = as_numpy(target["masks"]).astype(bool)
        regions = np.asarray(confident(i), dtype=bool)
        k = regions.shape[0]
        candidates = masks[:k]  # the script looks at the first K objects only
        if len(candidates) == 0:
            continue
        owner = np.where(candidates.any(axis=0), candidates.argmax(axis=0), -1)  # object per pixel
        for j in range(k):
            region = owner[regions[j]]
            if region.size == 0:
                continue
            shares = np.bincount(region + 1, minlength=len(candidates) + 1)[1:] / region.size
            best = int(shares.argmax())
            if shares[best] > OBJECT_SHARE:
                pairs.append((i, best))
                protos.append(int(labels[i, j]))
    metrics: dict[str, float] = {"keypoints_official": float(len(protos))}
    proto_array = np.array(protos, dtype=np.int64)
    for a in attributes:
        values = np.array([int(as_numpy(targets[i][a]).reshape(-1)[obj]) for i, obj in pairs], dtype=np.int64)
        known = values >= 0  # -1: an attribute the record does not define
        values, proto_values = values[known], proto_array[known]
        if values.size == 0:
            metrics[f"{a}_accuracy_official"] = float("nan")
            continue
        counts = np.zeros((m, int(values.max()) + 1), dtype=np.int64)
        np.add.at(counts, (proto_values, values), 1)
        metrics[f"{a}_accuracy_official"] = _majority_correct(counts) / len(values)
    return metrics
