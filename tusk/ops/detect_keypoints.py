"""Public op: keypoint detection (NMS + top-K + local soft-argmax) on a single heatmap."""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import (
    check_bool, check_float, check_int, check_nonempty, check_positive_float, check_size, check_tensor,
)


class Detections(NamedTuple):
    """Output of :func:`detect_keypoints`.

    Attributes:
        xy: ``[B, K, 2]`` refined keypoints, pixel coordinates, x first.
        score: ``[B, K]`` bilinear interpolation of the score map at ``xy``.
        valid: ``[B, K]`` bool: the slot holds a real NMS peak (and passes ``threshold`` and
            ``peak_threshold``).
    """

    xy: torch.Tensor
    score: torch.Tensor
    valid: torch.Tensor


class IndexedDetections(NamedTuple):
    """Output of :func:`detect_keypoints` with ``return_index=True``: :class:`Detections` plus

    Attributes:
        index: ``[B, K]`` int64 flat pixel ``y*W + x`` of each slot: the peak at the centre of
            its soft-argmax window (not differentiable).
    """

    xy: torch.Tensor
    score: torch.Tensor
    valid: torch.Tensor
    index: torch.Tensor


def detect_keypoints(
    scores: torch.Tensor,
    k: int,
    *,
    nms_size: int = 3,
    window: int | None = None,
    temperature: float = 0.2,
    threshold: float | None = None,
    strict: bool = False,
    border: int = 0,
    image_size: torch.Tensor | None = None,
    peak_threshold: float | torch.Tensor | None = None,
    fill: bool = True,
    return_index: bool = False,
    backend: str | None = None,
) -> Detections | IndexedDetections:
    """Detect ``k`` keypoints per image: NMS, top-K, then soft-argmax in each peak's window.

    - **NMS**: pixel p is a peak iff it equals the max of the ``nms_size`` x ``nms_size`` window
      centred on it (clipped at the border); with ``strict=True`` iff it is greater than every
      other pixel of that window (plateaus and ties have no peak). Peaks closer than ``border``
      pixels to the edge of the image's valid part (``image_size``) are dropped.
    - **Top-K**: peaks by descending score, ties by lower flat index ``y*W + x``. With fewer than
      ``k`` peaks the remaining slots take the best non-peak pixels (``fill=False``: pixel 0) and
      get ``valid=False``.
    - **Soft-argmax**: over the ``window`` x ``window`` neighbourhood inside the image,
      ``a = exp((s - s_max) / temperature)``, ``xy = p + sum(a * offset) / sum(a)``.
    - **score**: bilinear interpolation of ``scores`` at ``xy``.
    - **Thresholds**: ``peak_threshold`` is threshold mode with a cap: a slot is valid only if its
      peak's own pixel value is strictly above it, so the valid slots are the (at most ``k``)
      peaks above the threshold, best first. ``threshold`` instead tests the refined ``score``
      (``score >= threshold``).

    Gradients flow to ``scores`` through the soft-argmax weights and the bilinear score;
    the selection itself is piecewise constant. On CUDA that gradient is accumulated with
    ``atomicAdd`` (overlapping windows add in a run-dependent order, so its last bits may vary
    between runs); under ``torch.use_deterministic_algorithms(True)`` an ordered,
    bitwise-reproducible path is used.

    ``strict=True, border=nms_size // 2`` is the rule of kornia's ``nms2d`` (and of ALIKED's,
    DISK's and XFeat's detectors; see :mod:`tusk.integrations.kornia`).

    Args:
        scores: ``[B, 1, H, W]`` or ``[B, H, W]`` score map (e.g. a sigmoid heatmap).
        k: keypoints per image, ``1 <= k <= H*W``.
        nms_size: odd NMS window (default 3).
        window: odd soft-argmax window (default ``nms_size``).
        temperature: soft-argmax temperature, > 0 (lower = closer to a hard argmax).
        threshold: if given, slots with ``score < threshold`` also get ``valid=False``.
        strict: keep only strict local maxima (default False: every pixel equal to its window's
            maximum).
        border: no peak within ``border`` pixels of the border (default 0).
        image_size: ``[B, 2]`` valid ``(W, H)`` of each image of a batch padded at the bottom and
            right (integer, or floating and truncated like ``.long()``); the border is measured
            from the valid part, and no peak lies outside it. Sizes beyond the map are clamped
            to it. Default: the whole map.
        peak_threshold: a number, or a ``[B]`` tensor (one per image), compared in the map's
            dtype: valid slots have ``scores[peak] > peak_threshold``.
        fill: what the slots past an image's peaks hold: its best non-peak pixels (default; K
            real positions, e.g. for a decoder that needs exactly K), or pixel 0 (``False``).
            Choosing those non-peaks is a selection over the whole map, paid whenever there are
            fewer peaks than slots; without it a generous ``k`` (threshold mode, "every peak")
            costs little more than the peaks themselves.
        return_index: also return each slot's flat pixel index (:class:`IndexedDetections`).
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        :class:`Detections` ``(xy [B, k, 2], score [B, k], valid [B, k])``, or with
        ``return_index`` :class:`IndexedDetections` ``(xy, score, valid, index [B, k])``.

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
    check_bool("strict", strict)
    check_bool("fill", fill)
    check_bool("return_index", return_index)
    border = check_int("border", border, minimum=0)
    if border > 2**31:  # any border beyond the map drops every peak; bounded for the kernels' int64 sums
        border = 2**31
    image_size = _check_image_size(image_size, scores)
    peak_threshold = _check_peak_threshold(peak_threshold, scores)

    name = resolve_backend("detect_keypoints", backend, scores)
    if name == "reference":
        xy, score, valid, index = reference.detect_keypoints(
            scores, k, nms_size=nms_size, window=window, temperature=temperature,
            strict=strict, border=border, image_size=image_size, fill=fill, return_index=True,
        )
    else:
        xy, score, valid, index = kernel_namespace(name).detect_keypoints(
            scores.contiguous(), k, nms_size, window, temperature, strict, border, image_size, fill
        )
    if threshold is not None:
        valid = valid & (score >= threshold)
    if peak_threshold is not None:
        # The ranking key is the peak's value, so "top-K, then keep those above the threshold"
        # is "the top K of the peaks above the threshold": no kernel needs to know about it.
        peak_value = torch.gather(scores.detach().reshape(scores.shape[0], -1), 1, index)
        valid = valid & (peak_value > peak_threshold)
    if return_index:
        return IndexedDetections(xy, score, valid, index)
    return Detections(xy, score, valid)


def _check_image_size(image_size: object, scores: torch.Tensor) -> torch.Tensor | None:
    """``[B, 2]`` (W, H) sizes -> int64 on the scores' device (floats truncate, as ``.long()``)."""
    if image_size is None:
        return None
    image_size = check_tensor("image_size", image_size)
    if image_size.dtype == torch.bool or image_size.is_complex():
        raise TypeError(f"image_size must be an integer or floating-point tensor, got dtype {image_size.dtype}")
    if image_size.dim() != 2 or image_size.shape != (scores.shape[0], 2):
        raise ValueError(
            f"image_size must have shape [B, 2] = [{scores.shape[0]}, 2] (valid W, H per image), "
            f"got {tuple(image_size.shape)}"
        )
    if image_size.is_floating_point():
        # NaN/inf have no integer value; map them to 0 (no valid pixel) instead of int64 garbage.
        image_size = torch.nan_to_num(image_size, nan=0.0, posinf=2.0**62, neginf=0.0).clamp(-2.0**62, 2.0**62)
    return image_size.to(device=scores.device, dtype=torch.int64).contiguous()


def _check_peak_threshold(value: object, scores: torch.Tensor) -> float | torch.Tensor | None:
    """A number, or a ``[]`` / ``[B]`` tensor -> ``[B, 1]`` in the scores' dtype and device."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"peak_threshold must be a real number or tensor, got dtype {value.dtype}")
        if value.dim() > 1 or (value.dim() == 1 and value.shape[0] != scores.shape[0]):
            raise ValueError(
                f"peak_threshold must be a number or a [B] = [{scores.shape[0]}] tensor, got shape {tuple(value.shape)}"
            )
        return value.to(device=scores.device, dtype=scores.dtype).reshape(-1, 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"peak_threshold must be a number, a tensor or None, got {type(value).__name__}")
    return float(value)


def _register_cpp() -> None:
    @torch.library.register_fake("tusk::detect_keypoints")
    def _(scores, k, nms_size, window, temperature, strict=False, border=0, image_size=None, fill=True):
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
        scores, _k, _nms_size, window, temperature = inputs[:5]
        xy, _score, _is_peak, index = output
        ctx.save_for_backward(scores, xy, index)
        ctx.window = window
        ctx.temperature = temperature
        ctx.num_inputs = len(inputs)

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
        return (grad_scores,) + (None,) * (ctx.num_inputs - 1)

    torch.library.register_autograd("tusk::detect_keypoints", backward, setup_context=setup_context)


if cpp_available():
    _register_cpp()
