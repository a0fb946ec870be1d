"""Run a trained model over a dataset split and score it (used by the trainer and ``tusk eval``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..model import TUSK
from .data import first_items
from .metrics import keypoint_metrics

#: Items whose image is kept in the targets handed to ``tusk.eval`` (its figures draw a few).
FIGURE_IMAGES = 32

#: Which ``tusk.eval`` task scores each dataset.
TASKS = {"mnist_hard": "mnist_hard", "tetrominoes": "object_discovery", "clevr6": "object_discovery",
         "celeba": "landmarks", "h36m": "landmarks"}


@torch.no_grad()
def collect_predictions(model: TUSK, dataset, count: int, device: torch.device, batch_size: int = 32,
                        progress: bool = False) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], float]:
    """Predictions on the first ``count`` items (a tqdm bar with ``progress``).

    Returns:
        ``(predictions, targets, mse)``: predictions as ``tusk.eval`` expects them (numpy
        ``xy [N, K, 2]``, ``valid [N, K]``, ``labels [N, K]``, ``descriptors [N, K, C]``,
        ``scores [N, K]``, and with alpha blending the compact masks ``segments [N, H, W]``
        (argmax keypoint per pixel) and ``alpha_confident [N, K, H, W]`` (alpha > 0.8): a
        whole CLEVR test split of float alpha masks would take 3 GB, these 0.9 GB);
        targets = the dataset items (the image kept for the first :data:`FIGURE_IMAGES` only);
        mse = mean reconstruction error.
    """
    from tqdm import tqdm

    from ..eval.official import ALPHA_THRESHOLD

    model.eval()
    parts: dict[str, list[np.ndarray]] = {"xy": [], "valid": [], "labels": [], "descriptors": [], "scores": []}
    if model.config.alpha_blending:
        parts["segments"], parts["alpha_confident"] = [], []
    targets: list[dict[str, Any]] = []
    squared_error, pixels = 0.0, 0
    count = min(count, len(dataset))
    bar = tqdm(total=count, desc="evaluating", unit="image", disable=not progress, leave=False)
    for batch in first_items(dataset, count, batch_size):
        images = batch["image"].to(device)
        out = model(images)
        squared_error += float((out.reconstruction - images).pow(2).sum())
        pixels += images.numel()
        for name in ("xy", "valid", "labels", "descriptors", "scores"):
            parts[name].append(getattr(out, name).cpu().numpy())
        if "segments" in parts:
            alpha = out.alpha[:, :, 0]
            parts["segments"].append(alpha.argmax(dim=1).to(torch.int16).cpu().numpy())
            parts["alpha_confident"].append((alpha > ALPHA_THRESHOLD).cpu().numpy())
        for i in range(images.shape[0]):
            # Items keep their image only where tusk.eval draws it (the first few figures):
            # a whole test split of images would cost gigabytes (50k MNIST-Hard: 3.8 GB).
            keep = len(targets) < FIGURE_IMAGES
            targets.append({k: v[i] for k, v in batch.items() if keep or k != "image"})
        bar.update(images.shape[0])
    bar.close()
    predictions = {k: np.concatenate(v) for k, v in parts.items()}
    return predictions, targets, squared_error / max(pixels, 1)


def count_objects(targets: list[dict[str, Any]]) -> int | None:
    """Ground-truth objects in ``targets`` (digits, pieces, CLEVR objects); None when the items
    carry no per-object annotation."""
    for key in ("labels", "masks", "centers"):
        if targets and all(key in t for t in targets):
            return int(sum(len(t[key]) for t in targets))
    return None


def evaluate_run(model: TUSK, dataset_name: str, test_set, count: int, device: torch.device, *,
                 train_set=None, out_dir: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Metrics of a model on the first ``count`` test items.

    Always: ``reconstruction_mse``; with object ``"centers"`` in the items: keypoint-to-object
    distances and recall against a random baseline (:func:`~.metrics.keypoint_metrics`); for
    the paper's datasets: the task metrics of ``tusk.eval.evaluate`` under ``"task"`` (the
    landmark tasks need ``train_set`` to fit their regressor and are skipped without it).
    ``out_dir`` receives ``tusk.eval``'s figures and ``metrics.json``. ``images`` and
    ``objects`` count what was scored.
    """
    predictions, targets, mse = collect_predictions(model, test_set, count, device, progress=progress)
    metrics: dict[str, Any] = {"images": len(targets), "objects": count_objects(targets), "reconstruction_mse": mse}
    if targets and "centers" in targets[0]:
        size = tuple(test_set[0]["image"].shape[-2:])
        centers = [np.asarray(t["centers"]) for t in targets]
        # An object counts as found when a keypoint lies within a tenth of the image size.
        metrics.update(keypoint_metrics(predictions["xy"], predictions["valid"], centers, size, max(size) / 10))
    task = TASKS.get(dataset_name)
    if task is None or (task == "landmarks" and train_set is None):
        return metrics
    from ..eval import evaluate

    train = collect_predictions(model, train_set, count, device, progress=progress)[:2] if task == "landmarks" else None
    prototypes = model.normalized_prototypes().detach().cpu().numpy()
    image_size = tuple(test_set[0]["image"].shape[-2:])
    metrics["task"] = evaluate(task, (predictions, targets), train=train, prototypes=prototypes, out_dir=out_dir,
                               image_size=image_size)
    return metrics
