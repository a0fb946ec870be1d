"""``evaluate(task, test, ...)``: the paper's figures for one task, plus files for a run."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ._inputs import check_predictions, split_pair
from .landmarks import landmark_metrics
from .matching import box_iou, boxes_around, greedy_match
from .mnist_hard import mnist_hard_metrics
from .object_discovery import object_discovery_metrics
from .official import mnist_hard_official

TASKS = ("mnist_hard", "object_discovery", "landmarks")


def _num_prototypes(prototypes, *label_arrays) -> int:
    if prototypes is not None:
        return int(np.asarray(prototypes).shape[0])
    return max(int(np.asarray(a).max(initial=-1)) + 1 for a in label_arrays) or 1


def evaluate(task: str, test, *, train=None, prototypes=None, out_dir: str | os.PathLike | None = None,
             normalize: str = "auto", plots: bool = True, image_size: tuple[int, int] | None = None) -> dict[str, float]:
    """Evaluate keypoint predictions on a task of the paper.

    Args:
        task: ``"mnist_hard"`` (Tab. 1), ``"object_discovery"`` (Tab. 2: CLEVR6,
            Tetrominoes) or ``"landmarks"`` (Tab. 3: CelebA/MAFL, Human3.6M).
        test: ``(predictions, targets)``. ``predictions`` is a dict of arrays over N images:
            ``xy [N, K, 2]`` pixels (x, y), ``valid [N, K]`` bool, ``labels [N, K]`` int
            (nearest prototype), ``descriptors [N, K, C]`` (optional; for the t-SNE),
            ``masks [N, K, H, W]`` float alpha masks (object discovery; needed for ARI).
            ``targets`` is the list of the N dataset items.
        train: ``(predictions, targets)`` of the training split: required for
            ``"landmarks"`` (the linear regressor is fitted there); unused otherwise
            (prototype -> class mappings are fitted on the evaluated set, as in the paper).
        prototypes: ``[M, C]`` learned prototypes (M = number of prototypes; t-SNE crosses).
        out_dir: when given, ``metrics.json`` and PNG figures are written there.
        normalize: landmarks only: ``"auto"``, ``"interocular"`` or ``"image"``.
        plots: write the PNG figures (with ``out_dir``).
        image_size: ``(H, W)`` of the evaluated images (default: the first target's image);
            the official MNIST-Hard figure scales its 20 px box (at 80 px) with the width.

    Returns:
        A flat dict of floats (see :func:`~tusk.eval.mnist_hard.mnist_hard_metrics`,
        :func:`~tusk.eval.object_discovery.object_discovery_metrics`,
        :func:`~tusk.eval.landmarks.landmark_metrics`), with the official scripts' figures
        beside ours as ``*_official`` (:mod:`tusk.eval.official`). Accuracies are fractions
        in [0, 1].
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    predictions, targets = split_pair(test, "test")
    pred = check_predictions(predictions, len(targets))
    m = _num_prototypes(prototypes, pred["labels"])
    figures = {}
    if task == "mnist_hard":
        metrics, details = mnist_hard_metrics(pred, targets, num_prototypes=m)
        width = _image_width(image_size, targets)
        metrics.update(mnist_hard_official(pred, targets, num_prototypes=m, image_width=width))
    elif task == "object_discovery":
        metrics, details = object_discovery_metrics(pred, targets, num_prototypes=m)
    else:
        if train is None:
            raise ValueError("task 'landmarks' needs train=(predictions, targets) to fit the regressor")
        train_pred, train_targets = split_pair(train, "train")
        train_pred = check_predictions(train_pred, len(train_targets), name="train predictions")
        m = _num_prototypes(prototypes, pred["labels"], train_pred["labels"])
        metrics, details = landmark_metrics((pred, targets), (train_pred, train_targets),
                                            num_prototypes=m, normalize=normalize)
    metrics["num_prototypes"] = float(m)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if plots:
            figures = _figures(task, out, pred, targets, details, prototypes)
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
        payload = {"task": task, "metrics": clean, "figures": sorted(p.name for p in figures.values())}
        (out / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    return metrics


def _image_width(image_size, targets) -> float:
    if image_size is not None:
        return float(image_size[1])
    for target in targets:
        if "image" in target:
            return float(np.asarray(target["image"]).shape[-1])
    raise ValueError("image_size is needed: the targets carry no image to read it from")


def _figures(task, out: Path, pred, targets, details, prototypes) -> dict[str, Path]:
    from . import visualize

    figures = {}
    if task == "mnist_hard":
        gt_boxes = np.asarray(targets[0]["boxes"], dtype=np.float64).reshape(-1, 4) if targets else np.zeros((0, 4))
        side = float(np.mean(gt_boxes[:, 2] - gt_boxes[:, 0])) if len(gt_boxes) else None
        figures["detections"] = visualize.plot_detections(
            out / "detections.png", targets, pred, class_of_prototype=details["mapping_hungarian"], box_side=side)
        figures["confusion"] = visualize.plot_confusion(out / "confusion.png", details["confusion"])
    elif task == "object_discovery":
        figures["detections"] = visualize.plot_detections(out / "detections.png", targets, pred)
        for key, counts in details.items():
            if key.endswith("_confusion"):
                attr = key[: -len("_confusion")]
                figures[key] = visualize.plot_confusion(out / f"confusion_{attr}.png", counts, xlabel=attr)
    else:
        figures["detections"] = visualize.plot_detections(out / "detections.png", targets, pred,
                                                          regressed=details["predicted"])
    if "descriptors" in pred:
        desc, colors = _descriptor_colors(task, pred, targets)
        if len(desc):
            figures["tsne"] = visualize.plot_tsne(out / "tsne.png", desc, colors, prototypes)
    return figures


def _descriptor_colors(task, pred, targets):
    """Valid descriptors, coloured by the ground-truth class of the matched object (MNIST-Hard)
    or by predicted prototype (other tasks)."""
    valid = pred["valid"]
    desc = pred["descriptors"][valid]
    if task != "mnist_hard":
        return desc, pred["labels"][valid] % 10
    colors = np.full(valid.shape, -1, dtype=np.int64)
    for i in range(len(targets)):
        keep = np.flatnonzero(pred["valid"][i])
        gt = np.asarray(targets[i]["boxes"], dtype=np.float64).reshape(-1, 4)
        if len(keep) and len(gt):
            side = float(np.mean(gt[:, 2] - gt[:, 0]))
            for r, c in greedy_match(box_iou(boxes_around(pred["xy"][i][keep], side), gt)):
                colors[i, keep[r]] = int(np.asarray(targets[i]["labels"])[c])
    return desc, colors[valid]
