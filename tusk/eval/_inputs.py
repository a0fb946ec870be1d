"""Validation of the ``(predictions, targets)`` pairs that :func:`tusk.eval.evaluate` takes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch


def as_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def check_predictions(predictions: Mapping, num_targets: int, *, need=("xy", "valid", "labels"),
                      name: str = "predictions") -> dict[str, np.ndarray]:
    """Numpy copies of the prediction arrays, shapes checked against ``[N, K, ...]``."""
    if not isinstance(predictions, Mapping):
        raise TypeError(f"{name} must be a dict of arrays, got {type(predictions).__name__}")
    out = {k: as_numpy(v) for k, v in predictions.items()}
    for key in need:
        if key not in out:
            raise ValueError(f"{name} needs {key!r} (has {sorted(out)})")
    xy = out.get("xy")
    if xy is not None and (xy.ndim != 3 or xy.shape[-1] != 2):
        raise ValueError(f"{name}['xy'] must be [N, K, 2], got {xy.shape}")
    n, k = xy.shape[:2] if xy is not None else out[need[0]].shape[:2]
    if n != num_targets:
        raise ValueError(f"{name} cover {n} images but there are {num_targets} targets")
    expected = {"valid": (n, k), "labels": (n, k)}
    for key, shape in expected.items():
        if key in out and out[key].shape != shape:
            raise ValueError(f"{name}[{key!r}] must be [N, K] = {list(shape)}, got {list(out[key].shape)}")
    if "valid" in out:
        out["valid"] = out["valid"].astype(bool)
    if "labels" in out:
        if not np.issubdtype(out["labels"].dtype, np.integer):
            raise TypeError(f"{name}['labels'] must be integers (nearest prototype), got {out['labels'].dtype}")
        if out["labels"].size and out["labels"].min() < 0:
            raise ValueError(f"{name}['labels'] must be >= 0")
    if "descriptors" in out and out["descriptors"].shape[:2] != (n, k):
        raise ValueError(f"{name}['descriptors'] must be [N, K, C], got {list(out['descriptors'].shape)}")
    if "masks" in out and (out["masks"].ndim != 4 or out["masks"].shape[:2] != (n, k)):
        raise ValueError(f"{name}['masks'] must be [N, K, H, W], got {list(out['masks'].shape)}")
    if "segments" in out and (out["segments"].ndim != 3 or out["segments"].shape[0] != n):
        raise ValueError(f"{name}['segments'] must be [N, H, W], got {list(out['segments'].shape)}")
    if "alpha_confident" in out:
        if out["alpha_confident"].ndim != 4 or out["alpha_confident"].shape[:2] != (n, k):
            raise ValueError(f"{name}['alpha_confident'] must be [N, K, H, W], "
                             f"got {list(out['alpha_confident'].shape)}")
        out["alpha_confident"] = out["alpha_confident"].astype(bool, copy=False)
    return out


def check_targets(targets: Sequence, keys: Sequence[str], name: str = "targets") -> list[dict]:
    if not isinstance(targets, Sequence) or isinstance(targets, (str, bytes)):
        raise TypeError(f"{name} must be a list of dataset items")
    for i, item in enumerate(targets):
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(f"{name}[{i}] lacks {missing}")
    return list(targets)


def split_pair(pair, name: str):
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{name} must be a (predictions, targets) pair")
    return pair[0], pair[1]
