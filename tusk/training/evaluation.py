"""Run a trained model over a dataset split and score it (used by the trainer and ``tusk eval``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..model import TUSK
from .data import first_items
from .metrics import keypoint_metrics

#: Which ``tusk.eval`` task scores each dataset.
TASKS = {"mnist_hard": "mnist_hard", "tetrominoes": "object_discovery", "clevr6": "object_discovery",
         "celeba": "landmarks", "h36m": "landmarks"}


@torch.no_grad()
def collect_predictions(model: TUSK, dataset, count: int, device: torch.device,
                        batch_size: int = 32) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], float]:
    """Predictions on the first ``count`` items.

    Returns:
        ``(predictions, targets, mse)``: predictions as ``tusk.eval`` expects them (numpy
        ``xy [N, K, 2]``, ``valid [N, K]``, ``labels [N, K]``, ``descriptors [N, K, C]``, and
        ``masks [N, K, H, W]`` with alpha blending); targets = the items' other fields (one
        dict per item, the image left out); mse = mean reconstruction error.
    """
    model.eval()
    parts: dict[str, list[np.ndarray]] = {"xy": [], "valid": [], "labels": [], "descriptors": [], "scores": []}
    if model.config.alpha_blending:
        parts["masks"] = []
    targets: list[dict[str, Any]] = []
    squared_error, pixels = 0.0, 0
    for batch in first_items(dataset, count, batch_size):
        images = batch["image"].to(device)
        out = model(images)
        squared_error += float((out.reconstruction - images).pow(2).sum())
        pixels += images.numel()
        for name in ("xy", "valid", "labels", "descriptors", "scores"):
            parts[name].append(getattr(out, name).cpu().numpy())
        if "masks" in parts:
            parts["masks"].append(out.masks.cpu().numpy())
        n = images.shape[0]
        for i in range(n):
            targets.append({k: v[i] for k, v in batch.items() if k != "image"})
    predictions = {k: np.concatenate(v) for k, v in parts.items()}
    return predictions, targets, squared_error / max(pixels, 1)


def quick_metrics(model: TUSK, dataset, count: int, device: torch.device) -> dict[str, float]:
    """Reconstruction MSE and, when items carry ``"centers"``, keypoint-to-object distances."""
    predictions, targets, mse = collect_predictions(model, dataset, count, device)
    metrics: dict[str, float] = {"images": len(targets), "reconstruction_mse": mse}
    if targets and "centers" in targets[0]:
        size = tuple(dataset[0]["image"].shape[-2:])
        centers = [np.asarray(t["centers"]) for t in targets]
        # An object counts as found when a keypoint lies within a tenth of the image size.
        radius = max(size) / 10
        metrics.update(keypoint_metrics(predictions["xy"], predictions["valid"], centers, size, radius))
    return metrics


def task_metrics(dataset_name: str, model: TUSK, test_set, count: int, device: torch.device,
                 train_set=None, out_dir: str | None = None) -> dict[str, Any] | None:
    """The paper's metrics via ``tusk.eval.evaluate`` (None when the dataset has no task or the
    metrics package is not installed)."""
    task = TASKS.get(dataset_name)
    if task is None:
        return None
    try:
        from ..eval import evaluate
    except ImportError:
        return None
    test = collect_predictions(model, test_set, count, device)[:2]
    train = collect_predictions(model, train_set, count, device)[:2] if (task == "landmarks" and train_set is not None) else None
    prototypes = model.normalized_prototypes().detach().cpu().numpy()
    return evaluate(task, test, train=train, prototypes=prototypes, out_dir=out_dir)
