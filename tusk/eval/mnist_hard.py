"""MNIST-Hard metrics (TUSK Sec. 4.1 / Tab. 1): localisation, classification and both.

- **Detection (localisation) accuracy**: a fixed box (the ground-truth box size, 20x20 at
  80x80) is placed on every valid keypoint; predictions and ground-truth boxes are matched
  one-to-one greedily by IoU, a match needing IoU >= 0.5. Accuracy = matched / objects.
- **Classification accuracy**: over the matched objects, the prototype of the keypoint
  (its nearest prototype) mapped to a class. The mapping is fitted on the evaluated set
  itself, as in the paper: by bipartite matching maximising accuracy (Hungarian; the
  paper's figure) and by majority vote (many-to-one; the official code's figure).
- **Both**: objects that are detected AND correctly classified / objects.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._inputs import as_numpy, check_predictions, check_targets
from .matching import (box_iou, boxes_around, confusion, greedy_match, map_hungarian, map_majority,
                       mapped_accuracy)


def match_detections(predictions: dict, targets: Sequence[dict], *, iou_threshold: float = 0.5,
                     box_size: float | None = None):
    """Match the valid keypoints of every image to its ground-truth boxes.

    Returns ``(pred_labels [P], true_labels [P], num_objects, num_detections)`` over the
    ``P`` matched pairs of all images. ``box_size`` defaults to each image's ground-truth
    box width.
    """
    pred = check_predictions(predictions, len(targets))
    targets = check_targets(targets, ("boxes", "labels"))
    pred_labels, true_labels = [], []
    num_objects = num_detections = 0
    for i, target in enumerate(targets):
        gt_boxes = as_numpy(target["boxes"]).reshape(-1, 4).astype(np.float64)
        gt_labels = as_numpy(target["labels"]).reshape(-1)
        keep = pred["valid"][i]
        xy = pred["xy"][i][keep]
        labels = pred["labels"][i][keep]
        num_objects += len(gt_boxes)
        num_detections += len(xy)
        if len(gt_boxes) == 0 or len(xy) == 0:
            continue
        side = float(np.mean(gt_boxes[:, 2] - gt_boxes[:, 0])) if box_size is None else float(box_size)
        for r, c in greedy_match(box_iou(boxes_around(xy, side), gt_boxes), iou_threshold):
            pred_labels.append(int(labels[r]))
            true_labels.append(int(gt_labels[c]))
    return (np.array(pred_labels, dtype=np.int64), np.array(true_labels, dtype=np.int64),
            num_objects, num_detections)


def mnist_hard_metrics(predictions: dict, targets: Sequence[dict], *, num_prototypes: int | None = None,
                       num_classes: int = 10, iou_threshold: float = 0.5,
                       box_size: float | None = None) -> tuple[dict[str, float], dict]:
    """The MNIST-Hard figures; returns ``(metrics, details)``.

    ``metrics`` (fractions in [0, 1]): ``detection_accuracy`` (matched / objects),
    ``detection_precision`` (matched / valid keypoints), ``classification_accuracy`` and
    ``both`` (Hungarian mapping, the paper's), ``classification_accuracy_majority`` and
    ``both_majority``, ``reverse_consistency`` (majority of class -> prototype, the paper's
    Tab. 5 "reverse" figure for M < classes), ``num_objects``, ``num_detections``.
    ``details``: the confusion matrix ``[M, C]`` and both mappings (for plots).
    """
    pred_labels, true_labels, num_objects, num_detections = match_detections(
        predictions, targets, iou_threshold=iou_threshold, box_size=box_size)
    all_labels = as_numpy(predictions["labels"])
    m = num_prototypes if num_prototypes is not None else int(all_labels.max(initial=-1)) + 1
    m = max(m, 1)
    counts = confusion(pred_labels, true_labels, m, num_classes)
    hungarian, majority = map_hungarian(counts), map_majority(counts)
    matched = len(pred_labels)
    cls_h = mapped_accuracy(counts, hungarian)
    cls_m = mapped_accuracy(counts, majority)
    reverse = float(counts.max(axis=0).sum() / matched) if matched else float("nan")
    nan = float("nan")
    metrics = {
        "detection_accuracy": matched / num_objects if num_objects else nan,
        "detection_precision": matched / num_detections if num_detections else nan,
        "classification_accuracy": cls_h,
        "classification_accuracy_majority": cls_m,
        "both": cls_h * matched / num_objects if num_objects and matched else (0.0 if num_objects else nan),
        "both_majority": cls_m * matched / num_objects if num_objects and matched else (0.0 if num_objects else nan),
        "reverse_consistency": reverse,
        "num_objects": float(num_objects),
        "num_detections": float(num_detections),
    }
    details = {"confusion": counts, "mapping_hungarian": hungarian, "mapping_majority": majority}
    return metrics, details
