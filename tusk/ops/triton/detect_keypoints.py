"""Triton ``detect_keypoints``: NMS + top-K + local soft-argmax + bilinear score on ``[B, H, W]``.

Kernels:

- NMS as a separable max filter over the flattened ``B*H*W`` pixels: ``_row_max_kernel`` (max over
  the ``nms_size`` columns of each row, clipped at the border) then ``_peak_kernel`` (max of those
  over the ``nms_size`` rows, and ``peak = score == max``): ``2 * nms_size`` loads per pixel
  instead of ``nms_size^2``. NaN propagates through the max (a NaN is never a peak, nor are its
  neighbours), as ``max_pool2d``. The peak options (``strict``, ``border``, ``image_size``) are
  applied in ``_peak_kernel``: a strict peak also beats the other rows' maxima and the other
  pixels of its own row (``2 * nms_size`` more loads per pixel).
- Selection is **torch inside the triton_op**: the contract's order (peaks first, then descending
  score, ties by lower flat index ``y*W + x``) is exactly two stable sorts (``torch.sort(stable=True)``
  by score, then by peak flag) — a device-wide stable sort that Triton does not provide; a
  ``topk`` would not honour the tie rule.
- ``_refine_kernel``: one program per block of keypoints (flattened ``B*K``): the soft-argmax over
  the window inside the image (max pass, then ``sum a``, ``sum a dx``, ``sum a dy``) and the
  bilinear score at the refined point (border padding), fused.
- backward, ``_detect_bwd_kernel``: per keypoint block, recomputes the soft-argmax, adds the score
  path ``grad_score * d(score)/d(xy)`` to ``grad_xy``, and scatters ``grad_score * tap weight``
  onto the four taps and ``a_i ((dx_i - ox) gx + (dy_i - oy) gy) / temperature`` onto the window.
  Windows of different keypoints overlap, so the scatter uses ``tl.atomic_add`` into a float32
  (float64 for float64) zero buffer: **on a GPU the backward's summation order is not
  deterministic** (last-bit differences); the forward is.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._bilinear import bilinear_taps
from ._common import (
    MAX, SUM, acc_dtype, is_f64, launch, next_pow2, scalar_bits, tusk_triton_op,
)

PIXEL_BLOCK = 1024  # pixels per NMS program


@triton.jit
def _row_max_kernel(scores_ptr, row_max_ptr, total, width, radius, F64: tl.constexpr, BLOCK: tl.constexpr):
    # Compared in the accumulation dtype (exact for every input dtype; the interpreter cannot
    # compare bfloat16 directly).
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    x = i % width
    best = tl.full((BLOCK,), float("-inf"), ACC)
    for dx in range(-radius, radius + 1):
        ok = mask & (x + dx >= 0) & (x + dx < width)
        value = tl.load(scores_ptr + i + dx, mask=ok, other=float("-inf")).to(ACC)
        best = tl.maximum(best, value, propagate_nan=tl.PropagateNan.ALL)
    tl.store(row_max_ptr + i, best, mask=mask)


@triton.jit
def _peak_kernel(scores_ptr, row_max_ptr, size_ptr, peak_ptr, total, height, width, radius, border,
                 F64: tl.constexpr, STRICT: tl.constexpr, HAS_SIZE: tl.constexpr, BLOCK: tl.constexpr):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    x = i % width
    y = (i // width) % height
    best = tl.full((BLOCK,), float("-inf"), ACC)
    for dy in range(-radius, radius + 1):
        ok = mask & (y + dy >= 0) & (y + dy < height)
        value = tl.load(row_max_ptr + i + dy * width, mask=ok, other=float("-inf"))
        best = tl.maximum(best, value, propagate_nan=tl.PropagateNan.ALL)
    score = tl.load(scores_ptr + i, mask=mask, other=0.0).to(ACC)
    peak = score == best
    # The peak region (tusk/peak_rule.h): [border, min(W, w_b) - border) x the same along y.
    x_end = width
    y_end = height
    if HAS_SIZE:
        image = i // (height * width)
        x_end = tl.minimum(tl.maximum(tl.load(size_ptr + 2 * image, mask=mask, other=0), 0), width)
        y_end = tl.minimum(tl.maximum(tl.load(size_ptr + 2 * image + 1, mask=mask, other=0), 0), height)
    peak = peak & (x >= border) & (x < x_end - border) & (y >= border) & (y < y_end - border)
    if STRICT:
        # Greater than every other pixel of the clipped window: the other rows' maxima, then the
        # other pixels of its own row (the caller passes STRICT only when a window has them).
        others = tl.full((BLOCK,), float("-inf"), ACC)
        for dy in range(-radius, radius + 1):
            ok = mask & (dy != 0) & (y + dy >= 0) & (y + dy < height)
            value = tl.load(row_max_ptr + i + dy * width, mask=ok, other=float("-inf"))
            others = tl.maximum(others, value, propagate_nan=tl.PropagateNan.ALL)
        for dx in range(-radius, radius + 1):
            ok = mask & (dx != 0) & (x + dx >= 0) & (x + dx < width)
            value = tl.load(scores_ptr + i + dx, mask=ok, other=float("-inf")).to(ACC)
            others = tl.maximum(others, value, propagate_nan=tl.PropagateNan.ALL)
        peak = peak & (score > others)
    tl.store(peak_ptr + i, peak.to(tl.uint8), mask=mask)


@triton.jit
def _window_softmax(scores_ptr, image, px, py, k_mask, height, width, window, inv_t,
                    ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr):
    """Soft-argmax statistics of the window around integer pixels ``(px, py)``: the max logit
    and ``sum a``, ``sum a dx``, ``sum a dy`` with ``a = exp(s / T - max)`` (outside pixels excluded)."""
    radius = window // 2
    size = window * window
    top = tl.full((BLOCK_K,), float("-inf"), ACC)
    for j0 in range(0, size, BLOCK_W):
        j = j0 + tl.arange(0, BLOCK_W)
        wx = px[:, None] + (j % window - radius)[None, :]
        wy = py[:, None] + (j // window - radius)[None, :]
        inside = k_mask[:, None] & (j < size)[None, :] & (wx >= 0) & (wx < width) & (wy >= 0) & (wy < height)
        s = tl.load(scores_ptr + image[:, None] + wy * width + wx, mask=inside, other=0.0).to(ACC)
        logit = tl.where(inside, s * inv_t, float("-inf"))
        top = tl.maximum(top, tl.reduce(logit, 1, MAX), propagate_nan=tl.PropagateNan.ALL)
    total = tl.zeros((BLOCK_K,), dtype=ACC)
    sum_dx = tl.zeros((BLOCK_K,), dtype=ACC)
    sum_dy = tl.zeros((BLOCK_K,), dtype=ACC)
    for j0 in range(0, size, BLOCK_W):
        j = j0 + tl.arange(0, BLOCK_W)
        dx = (j % window - radius)[None, :]
        dy = (j // window - radius)[None, :]
        wx = px[:, None] + dx
        wy = py[:, None] + dy
        inside = k_mask[:, None] & (j < size)[None, :] & (wx >= 0) & (wx < width) & (wy >= 0) & (wy < height)
        s = tl.load(scores_ptr + image[:, None] + wy * width + wx, mask=inside, other=0.0).to(ACC)
        a = tl.where(inside, tl.exp(s * inv_t - top[:, None]), 0.0)
        total += tl.reduce(a, 1, SUM)
        sum_dx += tl.reduce(a * dx.to(ACC), 1, SUM)
        sum_dy += tl.reduce(a * dy.to(ACC), 1, SUM)
    return top, total, sum_dx, sum_dy


@triton.jit
def _refine_kernel(
    scores_ptr, index_ptr, xy_ptr, score_ptr, total_k, K, height, width, window, temperature_bits,
    F64: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    inv_t = 1.0 / temperature_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)
    kp = tl.program_id(0).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = kp < total_k
    image = (kp // K) * height * width
    pixel = tl.load(index_ptr + kp, mask=k_mask, other=0)
    px = pixel % width
    py = pixel // width
    _, total, sum_dx, sum_dy = _window_softmax(
        scores_ptr, image, px, py, k_mask, height, width, window, inv_t, ACC, BLOCK_K, BLOCK_W)
    x = px.to(ACC) + sum_dx / total
    y = py.to(ACC) + sum_dy / total
    i00, i10, i01, i11, in00, in10, in01, in11, wx0, wx1, wy0, wy1, _, _ = bilinear_taps(x, y, height, width, True)
    base = scores_ptr + image
    score = wx0 * wy0 * tl.load(base + i00, mask=k_mask, other=0.0).to(ACC)
    score += wx1 * wy0 * tl.load(base + i10, mask=k_mask, other=0.0).to(ACC)
    score += wx0 * wy1 * tl.load(base + i01, mask=k_mask, other=0.0).to(ACC)
    score += wx1 * wy1 * tl.load(base + i11, mask=k_mask, other=0.0).to(ACC)
    out_ty = xy_ptr.dtype.element_ty
    tl.store(xy_ptr + kp * 2, x.to(out_ty), mask=k_mask)
    tl.store(xy_ptr + kp * 2 + 1, y.to(out_ty), mask=k_mask)
    tl.store(score_ptr + kp, score.to(score_ptr.dtype.element_ty), mask=k_mask)


@triton.jit
def _detect_bwd_kernel(
    grad_xy_ptr, grad_score_ptr, scores_ptr, index_ptr, grad_ptr, total_k, K, height, width, window,
    temperature_bits, F64: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    inv_t = 1.0 / temperature_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)
    kp = tl.program_id(0).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = kp < total_k
    image = (kp // K) * height * width
    pixel = tl.load(index_ptr + kp, mask=k_mask, other=0)
    px = pixel % width
    py = pixel // width
    top, total, sum_dx, sum_dy = _window_softmax(
        scores_ptr, image, px, py, k_mask, height, width, window, inv_t, ACC, BLOCK_K, BLOCK_W)
    ox = sum_dx / total
    oy = sum_dy / total
    x = px.to(ACC) + ox
    y = py.to(ACC) + oy
    # Score path: score = bilinear(scores, xy) with border padding.
    i00, i10, i01, i11, in00, in10, in01, in11, wx0, wx1, wy0, wy1, dcx, dcy = bilinear_taps(
        x, y, height, width, True)
    base = scores_ptr + image
    f00 = tl.load(base + i00, mask=k_mask, other=0.0).to(ACC)
    f10 = tl.load(base + i10, mask=k_mask, other=0.0).to(ACC)
    f01 = tl.load(base + i01, mask=k_mask, other=0.0).to(ACC)
    f11 = tl.load(base + i11, mask=k_mask, other=0.0).to(ACC)
    g_score = tl.load(grad_score_ptr + kp, mask=k_mask, other=0.0).to(ACC)
    gx = tl.load(grad_xy_ptr + kp * 2, mask=k_mask, other=0.0).to(ACC)
    gy = tl.load(grad_xy_ptr + kp * 2 + 1, mask=k_mask, other=0.0).to(ACC)
    gx += g_score * (wy0 * (f10 - f00) + wy1 * (f11 - f01)) * dcx
    gy += g_score * (wx0 * (f01 - f00) + wx1 * (f11 - f10)) * dcy
    out = grad_ptr + image
    tl.atomic_add(out + i00, g_score * wx0 * wy0, mask=k_mask)
    tl.atomic_add(out + i10, g_score * wx1 * wy0, mask=k_mask)
    tl.atomic_add(out + i01, g_score * wx0 * wy1, mask=k_mask)
    tl.atomic_add(out + i11, g_score * wx1 * wy1, mask=k_mask)
    # Soft-argmax path: d xy / d s_i = a_i (d_i - o) / (T sum a).
    radius = window // 2
    size = window * window
    coef_x = (gx * inv_t / total)[:, None]
    coef_y = (gy * inv_t / total)[:, None]
    for j0 in range(0, size, BLOCK_W):
        j = j0 + tl.arange(0, BLOCK_W)
        dx = (j % window - radius)[None, :]
        dy = (j // window - radius)[None, :]
        wx = px[:, None] + dx
        wy = py[:, None] + dy
        inside = k_mask[:, None] & (j < size)[None, :] & (wx >= 0) & (wx < width) & (wy >= 0) & (wy < height)
        at = image[:, None] + wy * width + wx
        s = tl.load(scores_ptr + at, mask=inside, other=0.0).to(ACC)
        a = tl.where(inside, tl.exp(s * inv_t - top[:, None]), 0.0)
        g = a * (coef_x * (dx.to(ACC) - ox[:, None]) + coef_y * (dy.to(ACC) - oy[:, None]))
        tl.atomic_add(grad_ptr + at, g, mask=inside)


def _window_blocks(window: int) -> tuple[int, int]:
    """``(BLOCK_K, BLOCK_W)``: the whole window per chunk up to 1024 pixels; ``[BLOCK_K, BLOCK_W]``
    at most 2048 elements."""
    block_w = min(1024, next_pow2(window * window))
    return max(1, min(64, 2048 // block_w)), block_w


def _peaks(scores: torch.Tensor, nms_size: int, strict: bool, border: int,
           image_size: torch.Tensor | None) -> torch.Tensor:
    """``[B, H*W]`` bool peak mask (two Triton passes; reference.peak_mask)."""
    batch, height, width = scores.shape
    total = scores.numel()
    row_max = torch.empty(scores.shape, dtype=acc_dtype(scores.dtype), device=scores.device)
    peak = torch.empty((batch, height * width), dtype=torch.uint8, device=scores.device)
    grid = (triton.cdiv(total, PIXEL_BLOCK),)
    f64 = is_f64(scores)
    radius = min(nms_size // 2, max(height, width))  # wider windows add no pixel
    border = min(border, max(height, width))  # beyond the map: no peak either way
    # A pixel alone in its clipped window (radius 0, 1 x 1 map) is a strict maximum unless NaN,
    # which `score == best` already excludes.
    has_others = radius > 0 and height * width > 1
    sizes = image_size.contiguous() if image_size is not None else peak  # a placeholder pointer
    launch(_row_max_kernel, grid, scores, row_max, total, width, radius, F64=f64, BLOCK=PIXEL_BLOCK)
    launch(_peak_kernel, grid, scores, row_max, sizes, peak, total, height, width, radius, border,
           F64=f64, STRICT=strict and has_others, HAS_SIZE=image_size is not None, BLOCK=PIXEL_BLOCK)
    return peak.bool()


def _select(scores: torch.Tensor, peak: torch.Tensor, k: int, fill: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-K slots: peaks first, by descending score, ties by lower flat index (stable sorts);
    without ``fill`` the slots past the peaks hold pixel 0."""
    flat = scores.reshape(scores.shape[0], -1)
    by_score = torch.sort(flat, dim=1, descending=True, stable=True).indices
    peak_first = torch.sort(torch.gather(peak, 1, by_score).to(torch.uint8), dim=1, descending=True, stable=True).indices
    index = torch.gather(by_score, 1, peak_first)[:, :k]
    is_peak = torch.gather(peak, 1, index)
    if not fill:
        index = torch.where(is_peak, index, torch.zeros_like(index))
    return index.contiguous(), is_peak


@tusk_triton_op("detect_keypoints")
def detect_keypoints(
    scores: torch.Tensor, k: int, nms_size: int, window: int, temperature: float,
    strict: bool = False, border: int = 0, image_size: torch.Tensor | None = None, fill: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``scores [B, H, W]`` -> ``(xy [B, k, 2], score [B, k], is_peak [B, k], index [B, k] int64)``.

    ``strict``, ``border`` and ``image_size`` (int64 ``[B, 2]`` valid ``(W, H)``) as in
    ``reference.peak_mask``; ``fill`` as in ``reference.select_peaks``."""
    scores = scores.contiguous()
    batch, height, width = scores.shape
    index, is_peak = _select(scores, _peaks(scores, nms_size, strict, border, image_size), k, fill)
    xy = scores.new_empty((batch, k, 2))
    score = scores.new_empty((batch, k))
    block_k, block_w = _window_blocks(window)
    launch(
        _refine_kernel, (triton.cdiv(batch * k, block_k),),
        scores, index, xy, score, batch * k, k, height, width, window, scalar_bits(temperature),
        F64=is_f64(scores), BLOCK_K=block_k, BLOCK_W=block_w,
    )
    return xy, score, is_peak, index


@tusk_triton_op("detect_keypoints_backward")
def detect_keypoints_backward(
    grad_xy: torch.Tensor, grad_score: torch.Tensor, scores: torch.Tensor, xy: torch.Tensor,
    index: torch.Tensor, window: int, temperature: float,
) -> torch.Tensor:
    """``grad_scores [B, H, W]``. ``xy`` is not read: the kernel recomputes the refined points in
    the accumulation dtype (the stored ``xy`` is rounded to the input dtype for half inputs)."""
    grad_xy, grad_score = grad_xy.contiguous(), grad_score.contiguous()
    scores, index = scores.contiguous(), index.contiguous()
    batch, height, width = scores.shape
    count = index.shape[1]
    grad = torch.zeros(scores.shape, dtype=acc_dtype(scores.dtype), device=scores.device)  # atomics target
    block_k, block_w = _window_blocks(window)
    launch(
        _detect_bwd_kernel, (triton.cdiv(batch * count, block_k),),
        grad_xy, grad_score, scores, index, grad, batch * count, count, height, width, window,
        scalar_bits(temperature), F64=is_f64(scores), BLOCK_K=block_k, BLOCK_W=block_w,
    )
    return grad.to(scores.dtype)


def _setup_context(ctx, inputs, output):
    scores, k, nms_size, window, temperature = inputs[:5]
    xy, score, is_peak, index = output
    ctx.save_for_backward(scores, xy, index)
    ctx.window, ctx.temperature = window, temperature
    ctx.num_inputs = len(inputs)
    ctx.mark_non_differentiable(is_peak, index)


def _backward(ctx, grad_xy, grad_score, grad_is_peak, grad_index):
    scores, xy, index = ctx.saved_tensors
    grad = detect_keypoints_backward(grad_xy, grad_score, scores, xy, index, ctx.window, ctx.temperature)
    return (grad,) + (None,) * (ctx.num_inputs - 1)


detect_keypoints.register_autograd(_backward, setup_context=_setup_context)
