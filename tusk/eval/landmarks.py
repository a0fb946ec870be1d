"""Landmark regression (TUSK Sec. 4.3 / Tab. 3): keypoints -> human-defined landmarks.

The regressor input of an image is an ``[M, K, 2]`` tensor filled per prototype: the valid
keypoints whose nearest prototype is ``m`` are sorted by x (left to right; ties by y) and
written to ``[m, 0], [m, 1], ...``; unused entries stay zero, so only the K detected
coordinates are non-zero. Coordinates are pixels with the origin at the top-left corner.
A bias-free linear map ``[M*K*2] -> [T*2]`` is fitted on the training split by closed-form
least squares (minimum-norm solution: slots never used in training get zero weight) and
applied to the test split. Error: mean over images and landmarks of the Euclidean distance
divided by the inter-ocular distance (CelebA/MAFL: distance between the two eye landmarks)
or by the image width (Human3.6M, whose frames are square), optionally after swapping
left/right ground-truth joints of subjects seen from the back.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._inputs import as_numpy, check_predictions, check_targets


def regressor_input(xy: np.ndarray, labels: np.ndarray, valid: np.ndarray, num_prototypes: int) -> np.ndarray:
    """``xy [N, K, 2]``, ``labels [N, K]``, ``valid [N, K]`` -> ``[N, M, K, 2]`` (see module doc)."""
    xy = np.asarray(xy, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    valid = np.asarray(valid, dtype=bool)
    n, k = labels.shape
    m = int(num_prototypes)
    if valid.any() and labels[valid].max() >= m:
        raise ValueError(f"labels must be < num_prototypes = {m}, got {labels[valid].max()}")
    group = np.where(valid, labels, m)  # invalid keypoints sort after every prototype
    order = np.lexsort((xy[..., 1], xy[..., 0], group), axis=-1)
    sorted_group = np.take_along_axis(group, order, axis=1)
    sorted_xy = np.take_along_axis(xy, order[..., None], axis=1)
    # rank of each keypoint within its prototype group = its slot
    onehot = sorted_group[..., None] == np.arange(m + 1)
    rank = np.take_along_axis(np.cumsum(onehot, axis=1), sorted_group[..., None], axis=2)[..., 0] - 1
    out = np.zeros((n, m + 1, k, 2), dtype=np.float64)
    rows = np.repeat(np.arange(n), k)
    out[rows, sorted_group.ravel(), rank.ravel()] = sorted_xy.reshape(-1, 2)
    return out[:, :m]


def fit_linear(inputs: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Least-squares ``W`` with ``inputs.reshape(N, -1) @ W ~ landmarks.reshape(N, -1)``, no bias."""
    x = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    y = np.asarray(landmarks, dtype=np.float64).reshape(len(landmarks), -1)
    if len(x) == 0:
        raise ValueError("the training split is empty")
    weights, *_ = np.linalg.lstsq(x, y, rcond=None)
    return weights


def swap_left_right(landmarks: np.ndarray, pairs: np.ndarray, *, front_fraction: float = 0.67) -> np.ndarray:
    """Swap left/right ground-truth joints of subjects facing away (Human3.6M protocol).

    ``landmarks [N, T, 2]``; ``pairs [P, 2]`` = ``(left, right)`` joint indices. A subject
    faces the camera when, for more than ``front_fraction`` of the pairs, the ``right`` joint
    lies to the right of the ``left`` one (x larger); otherwise each pair is swapped.
    Returns a new array.
    """
    landmarks = np.array(landmarks, dtype=np.float64, copy=True)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return landmarks
    left, right = pairs[:, 0], pairs[:, 1]
    facing = (landmarks[:, right, 0] > landmarks[:, left, 0]).sum(axis=1) > front_fraction * len(pairs)
    back = ~facing
    swapped = landmarks[back]
    swapped[:, left], swapped[:, right] = landmarks[back][:, right], landmarks[back][:, left]
    landmarks[back] = swapped
    return landmarks


def _targets_landmarks(targets: Sequence[dict], swap: bool) -> np.ndarray:
    lm = np.stack([as_numpy(t["landmarks"]).astype(np.float64) for t in targets]) if targets else np.zeros((0, 0, 2))
    if swap:
        pairs = as_numpy(targets[0]["swap_pairs"])
        lm = swap_left_right(lm, pairs)
    return lm


def landmark_metrics(test: tuple, train: tuple, *, num_prototypes: int, normalize: str = "auto",
                     eye_indices: tuple[int, int] = (0, 1)) -> tuple[dict[str, float], dict]:
    """Fit the regressor on ``train`` and score it on ``test`` (both ``(predictions, targets)``).

    ``normalize``: ``"interocular"``, ``"image"`` (image width) or ``"auto"`` (``"image"`` with
    the left/right swap when the targets carry ``swap_pairs`` -- Human3.6M items do --, else
    ``"interocular"``). Returns ``({"landmark_error", "landmark_error_percent", "num_train",
    "num_test"}, {"weights", "predicted" [N, T, 2], "target" [N, T, 2]})``.
    """
    (test_pred, test_targets), (train_pred, train_targets) = test, train
    test_targets = check_targets(test_targets, ("landmarks",))
    train_targets = check_targets(train_targets, ("landmarks",), name="train targets")
    test_pred = check_predictions(test_pred, len(test_targets))
    train_pred = check_predictions(train_pred, len(train_targets), name="train predictions")
    swap = bool(test_targets) and "swap_pairs" in test_targets[0]
    if normalize == "auto":
        normalize = "image" if swap else "interocular"
    if normalize not in ("interocular", "image"):
        raise ValueError(f"normalize must be 'auto', 'interocular' or 'image', got {normalize!r}")
    m = int(num_prototypes)
    x_train = regressor_input(train_pred["xy"], train_pred["labels"], train_pred["valid"], m)
    y_train = _targets_landmarks(train_targets, swap)
    weights = fit_linear(x_train, y_train)
    x_test = regressor_input(test_pred["xy"], test_pred["labels"], test_pred["valid"], m)
    y_test = _targets_landmarks(test_targets, swap)
    predicted = (x_test.reshape(len(x_test), -1) @ weights).reshape(y_test.shape)
    dist = np.linalg.norm(predicted - y_test, axis=-1)  # [N, T]
    if normalize == "interocular":
        scale = np.linalg.norm(y_test[:, eye_indices[0]] - y_test[:, eye_indices[1]], axis=-1)
    else:
        scale = np.array([float(as_numpy(t["image"]).shape[-1]) for t in test_targets])
    error = float((dist / scale[:, None]).mean()) if dist.size else float("nan")
    metrics = {"landmark_error": error, "landmark_error_percent": 100.0 * error,
               "num_train": float(len(train_targets)), "num_test": float(len(test_targets))}
    return metrics, {"weights": weights, "predicted": predicted, "target": y_test}
