"""Public op: keypoint detection (NMS + top-K + local soft-argmax) on a single heatmap."""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import check_float, check_int, check_nonempty, check_positive_float, check_size


class Detections(NamedTuple):
    """Output of :func:`detect_keypoints`.

    Attributes:
        xy: ``[B, K, 2]`` refined keypoints, pixel coordinates, x first.
        score: ``[B, K]`` bilinear interpolation of the score map at ``xy``.
        valid: ``[B, K]`` bool: the slot holds a real NMS peak (and passes ``threshold``).
    """

    xy: torch.Tensor
    score: torch.Tensor
    valid: torch.Tensor


def detect_keypoints(
    scores: torch.Tensor,
    k: int,
    *,
    nms_size: int = 3,
    window: int | None = None,
    temperature: float = 0.2,
    threshold: float | None = None,
    backend: str | None = None,
) -> Detections:
    """Detect ``k`` keypoints per image: NMS, top-K, then soft-argmax in each peak's window.

    - **NMS**: pixel p is a peak iff it equals the max of the ``nms_size`` x ``nms_size`` window
      centred on it (clipped at the border).
    - **Top-K**: peaks by descending score, ties by lower flat index ``y*W + x``. With fewer than
      ``k`` peaks the remaining slots take the best non-peak pixels and get ``valid=False``.
    - **Soft-argmax**: over the ``window`` x ``window`` neighbourhood inside the image,
      ``a = exp((s - s_max) / temperature)``, ``xy = p + sum(a * offset) / sum(a)``.
    - **score**: bilinear interpolation of ``scores`` at ``xy``.

    Gradients flow to ``scores`` through the soft-argmax weights and the bilinear score;
    the selection itself is piecewise constant. On CUDA that gradient is accumulated with
    ``atomicAdd`` (overlapping windows add in a run-dependent order, so its last bits may vary
    between runs); under ``torch.use_deterministic_algorithms(True)`` an ordered,
    bitwise-reproducible path is used.

    Args:
        scores: ``[B, 1, H, W]`` or ``[B, H, W]`` score map (e.g. a sigmoid heatmap).
        k: keypoints per image, ``1 <= k <= H*W``.
        nms_size: odd NMS window (default 3).
        window: odd soft-argmax window (default ``nms_size``).
        temperature: soft-argmax temperature, > 0 (lower = closer to a hard argmax).
        threshold: if given, slots with ``score < threshold`` also get ``valid=False``.
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        :class:`Detections` ``(xy [B, k, 2], score [B, k], valid [B, k])``.

    Example:
        >>> heat = torch.zeros(1, 1, 5, 7); heat[0, 0, 2, 3] = 1.0
        >>> detect_keypoints(heat, 1).xy
        tensor([[[3., 2.]]])
    """
    scores = check_float("scores", scores)
    if scores.dim() == 4:
        check_size("scores", scores, 1, 1, "[B, 1, H, W] or [B, H, W]")
        scores = scores.squeeze(1)  # a view whose backward is a view too (not select_backward's copy)
    elif scores.dim() != 3:
        raise ValueError(f"scores must have shape [B, 1, H, W] or [B, H, W], got {tuple(scores.shape)}")
    check_nonempty("scores", scores, "[B, 1, H, W] or [B, H, W]")
    height, width = scores.shape[-2:]
    k = check_int("k", k, minimum=1)
    if k > height * width:
        raise ValueError(f"k must be <= H*W = {height * width} for scores of shape {tuple(scores.shape)}, got {k}")
    nms_size = check_int("nms_size", nms_size, minimum=1, odd=True)
    window = nms_size if window is None else check_int("window", window, minimum=1, odd=True)
    temperature = check_positive_float("temperature", temperature)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise TypeError(f"threshold must be a number or None, got {type(threshold).__name__}")

    name = resolve_backend("detect_keypoints", backend, scores)
    if name == "reference":
        xy, score, valid = reference.detect_keypoints(
            scores, k, nms_size=nms_size, window=window, temperature=temperature
        )
    else:
        xy, score, valid, _ = kernel_namespace(name).detect_keypoints(
            scores.contiguous(), k, nms_size, window, temperature
        )
    if threshold is not None:
        valid = valid & (score >= threshold)
    return Detections(xy, score, valid)


def _register_cpp() -> None:
    @torch.library.register_fake("tusk::detect_keypoints")
    def _(scores, k, nms_size, window, temperature):
        batch = scores.shape[0]
        return (
            scores.new_empty((batch, k, 2)),
            scores.new_empty((batch, k)),
            scores.new_empty((batch, k), dtype=torch.bool),
            scores.new_empty((batch, k), dtype=torch.int64),
        )

    @torch.library.register_fake("tusk::detect_keypoints_backward")
    def _(grad_xy, grad_score, scores, xy, index, window, temperature):
        return torch.empty_like(scores)

    def setup_context(ctx, inputs, output):
        scores, _k, _nms_size, window, temperature = inputs
        xy, _score, _is_peak, index = output
        ctx.save_for_backward(scores, xy, index)
        ctx.window = window
        ctx.temperature = temperature

    def backward(ctx, grad_xy, grad_score, _grad_is_peak, _grad_index):
        # is_peak (bool) and index (int64) are not differentiable; the selection is piecewise
        # constant, so only the soft-argmax and the bilinear score carry gradient.
        scores, xy, index = ctx.saved_tensors
        if grad_xy is None:
            grad_xy = torch.zeros_like(xy)
        if grad_score is None:
            grad_score = xy.new_zeros(xy.shape[:2])
        grad_scores = torch.ops.tusk.detect_keypoints_backward(
            grad_xy.contiguous(), grad_score.contiguous(), scores, xy, index, ctx.window, ctx.temperature
        )
        return grad_scores, None, None, None, None

    torch.library.register_autograd("tusk::detect_keypoints", backward, setup_context=setup_context)


if cpp_available():
    _register_cpp()
