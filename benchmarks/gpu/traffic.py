"""Bytes each op must move at least (compulsory traffic), for achieved-bandwidth figures.

Every input read once and every output written once; backward passes read the cotangents they
need, re-read the inputs and write each gradient once. Sparse accesses count only the useful
bytes (4 bilinear taps per keypoint and channel; a splat's window of the incoming gradient),
ignoring cache-line granularity, so the GB/s derived from these numbers is a lower bound on what
the hardware really moved.
"""
from __future__ import annotations

import torch


def nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _dense(inputs: dict, outputs: tuple) -> tuple[int, int]:
    fwd = nbytes(*inputs.values()) + nbytes(*outputs)
    grads = nbytes(*(t for t in inputs.values() if t is not None and t.requires_grad))
    return fwd, fwd + nbytes(*outputs) + grads  # backward: re-read inputs, read cotangents, write grads


def _sample(inputs: dict, outputs: tuple) -> tuple[int, int]:
    features, xy = inputs["features"], inputs["xy"]
    b, k = xy.shape[:2]
    taps = 4 * b * k * features.shape[1] * features.element_size()
    fwd = taps + nbytes(xy, *outputs)
    bwd = nbytes(*outputs) + taps + nbytes(xy) + nbytes(features) + nbytes(xy)  # grad_features is dense
    return fwd, bwd


def _splat(inputs: dict, outputs: tuple, radius: int) -> tuple[int, int]:
    xy, desc, weights = inputs["xy"], inputs["descriptors"], inputs["weights"]
    small = nbytes(xy, desc, weights)
    fwd = small + nbytes(*outputs)
    window = (2 * radius + 1) ** 2 * desc.numel() * desc.element_size()  # grad read per keypoint window
    return fwd, window + 2 * small


def op_bytes(op: str, pass_: str, inputs: dict, outputs: tuple, *, radius: int = 1) -> int:
    """Compulsory bytes of ``op`` for ``pass_`` ("fwd" or "fwd+bwd")."""
    if op == "sample_descriptors":
        fwd, bwd = _sample(inputs, outputs)
    elif op == "splat_gaussians":
        fwd, bwd = _splat(inputs, outputs, radius)
    else:
        fwd, bwd = _dense(inputs, outputs)
    return fwd if pass_ == "fwd" else fwd + bwd
