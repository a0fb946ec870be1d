"""Triton ``splat_gaussians``: truncated (optionally normalised) Gaussians of keypoint descriptors.

``G_k(p) = exp(-|p - xy_k|^2 / (2 variance))`` on the pixels of the ``(2r+1)^2`` window centred on
``floor(xy_k + 0.5)`` inside the image; ``scale_k = w_k / sum_p G_k(p)`` (``normalize``) or ``w_k``.

Kernels:

- ``_splat_scale_kernel``: one program per block of keypoints (flattened ``B*K``), walking the
  window in ``BLOCK_W`` chunks to sum ``G_k`` -> ``scale_k``.
- ``reduce="sum"`` forward, ``_splat_sum_kernel``: a tile gather. Keypoints are binned by the
  16x16 output tiles their windows touch (:mod:`._tiles`, torch sort); each program owns one
  tile x ``BLOCK_C`` channels and accumulates ``G[pixel, keypoint] @ (descriptor)[keypoint,
  channel]`` with ``tl.dot`` (IEEE float32 / float64). No atomics, one writer per output element,
  deterministic; ``[B, K, C, H, W]`` is never materialised.
- ``reduce="none"`` forward, ``_splat_none_kernel``: one program per keypoint x pixel block x
  channel block, writing every element of ``[B, K, C, H, W]`` once (zeros outside the window).
- backward, ``_splat_bwd_kernel``: one program per block of keypoints. It recomputes the window
  sums ``T = sum G``, ``Sx = sum G (px - x)``, ``Sy``; then (channels outer) ``grad_desc = scale *
  sum_p G grad`` and (window outer) ``A(p) = sum_c d_c grad_c(p)``, from which
  ``grad_w = sum A G / T`` and ``grad_x = w sum A G (px - x - Sx / T) / (T variance)`` (without
  ``normalize``: ``T = 1`` and no ``Sx / T``; centring inside the sum avoids the cancellation of
  ``sum A G (px - x) - sum A G * Sx / T`` on clipped windows). Each keypoint's gradients have one
  writer: no atomics.

A keypoint with a NaN coordinate poisons the first tile of its image (``reduce="sum"``,
``normalize=False``; the reference poisons the whole image) and splats nothing with
``normalize=True`` (as the reference); no coordinate reads or writes outside the tensors.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import (
    SUM, acc_dtype, empty_grad, is_f64, launch, next_pow2, scalar_bits, tusk_triton_op,
)
from ._tiles import bin_footprints

#: Bound on the radius so ``2r + 1`` fits the kernels' int32 arithmetic; it changes nothing for
#: keypoints closer than 2^30 pixels to the image.
MAX_RADIUS = 2**30 - 1
TILE = 16  # output tile side of the reduce="sum" gather (256 pixels = the tl.dot M dimension)


def _window_side(radius: int, extent: int) -> int:
    """Side of the window box clipped to an image axis of ``extent`` pixels."""
    return min(2 * radius + 1, extent)


def _window_blocks(radius: int, height: int, width: int) -> tuple[int, int]:
    """``(BLOCK_K, BLOCK_W)``: clipped-window pixels per chunk (the whole window up to 1024) and
    keypoints per program, keeping ``[BLOCK_K, BLOCK_W]`` at <= 2048 elements."""
    block_w = min(1024, next_pow2(_window_side(radius, width) * _window_side(radius, height)))
    return max(1, min(64, 2048 // block_w)), block_w


@triton.jit
def _window_gaussian(x, y, k_mask, j, size, side_x, radius, height, width, two_var):
    """Pixel ``j`` of each keypoint's window clipped to the image and its unnormalised Gaussian:
    ``(px, py, inside, G)`` for keypoints ``[BLOCK_K, 1]`` (``k_mask``: the block's real ones).

    The loop runs over the clipped box (``min(2r+1, W) x min(2r+1, H)`` pixels, from
    ``max(c - r, 0)`` with ``c = floor(xy + 0.5)``), not the whole ``(2r+1)^2`` window, so a
    radius larger than the map costs ``H*W``. A NaN/inf centre gives no pixel inside; outside
    pixels are moved to (0, 0) and G is selected to 0 there, never multiplied by the mask, so
    every later expression stays finite.
    """
    cx = tl.floor(x + 0.5)
    cy = tl.floor(y + 0.5)
    px = tl.maximum(cx - radius, 0.0) + (j % side_x)[None, :]
    py = tl.maximum(cy - radius, 0.0) + (j // side_x)[None, :]
    inside = (j < size)[None, :] & k_mask[:, None] & (px >= 0.0) & (px <= width - 1.0) & (px <= cx + radius)
    inside = inside & (py >= 0.0) & (py <= height - 1.0) & (py <= cy + radius)
    px = tl.where(inside, px, 0.0)
    py = tl.where(inside, py, 0.0)
    g = tl.where(inside, tl.exp(-((px - x) * (px - x) + (py - y) * (py - y)) / two_var), 0.0)
    return px, py, inside, g


@triton.jit
def _splat_scale_kernel(
    xy_ptr, weights_ptr, scale_ptr, total, height, width, variance_bits, radius,
    HAS_WEIGHTS: tl.constexpr, NORMALIZE: tl.constexpr, F64: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    two_var = 2.0 * variance_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)
    kp = tl.program_id(0).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = kp < total
    x = tl.load(xy_ptr + kp * 2, mask=k_mask, other=0.0).to(ACC)[:, None]
    y = tl.load(xy_ptr + kp * 2 + 1, mask=k_mask, other=0.0).to(ACC)[:, None]
    side_x = tl.minimum(2 * radius + 1, width)
    size = side_x * tl.minimum(2 * radius + 1, height)
    sum_g = tl.zeros((BLOCK_K,), dtype=ACC)
    for j0 in range(0, size, BLOCK_W):
        j = j0 + tl.arange(0, BLOCK_W)
        px, py, inside, g = _window_gaussian(x, y, k_mask, j, size, side_x, radius, height, width, two_var)
        sum_g += tl.reduce(g, 1, SUM)
    if HAS_WEIGHTS:
        w = tl.load(weights_ptr + kp, mask=k_mask, other=0.0).to(ACC)
    else:
        w = tl.full((BLOCK_K,), 1.0, ACC)
    if NORMALIZE:
        scale = tl.where(sum_g > 0.0, w / sum_g, 0.0)
    else:
        scale = w
    tl.store(scale_ptr + kp, scale, mask=k_mask)


@triton.jit
def _splat_sum_kernel(
    xy_ptr, desc_ptr, scale_ptr, keypoint_ptr, start_ptr, out_ptr,
    C, height, width, tiles_y, tiles_x, variance_bits, radius,
    F64: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    two_var = 2.0 * variance_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)
    tile = tl.program_id(0)
    tiles = tiles_y * tiles_x
    b = (tile // tiles).to(tl.int64)
    local = tile % tiles
    p = tl.arange(0, TILE_H * TILE_W)
    py = (local // tiles_x) * TILE_H + p // TILE_W
    px = (local % tiles_x) * TILE_W + p % TILE_W
    p_mask = (py < height) & (px < width)
    pixel = py.to(tl.int64) * width + px
    pxf = px.to(ACC)[:, None]
    pyf = py.to(ACC)[:, None]
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    start = tl.load(start_ptr + tile)
    end = tl.load(start_ptr + tile + 1)
    acc = tl.zeros((TILE_H * TILE_W, BLOCK_C), dtype=ACC)
    for e0 in range(start, end, BLOCK_K):
        e = e0 + tl.arange(0, BLOCK_K)
        e_mask = e < end
        kp = tl.load(keypoint_ptr + e, mask=e_mask, other=0)
        x = tl.load(xy_ptr + kp * 2, mask=e_mask, other=0.0).to(ACC)[None, :]
        y = tl.load(xy_ptr + kp * 2 + 1, mask=e_mask, other=0.0).to(ACC)[None, :]
        scale = tl.load(scale_ptr + kp, mask=e_mask, other=0.0)[None, :]
        in_window = (tl.abs(pxf - tl.floor(x + 0.5)) <= radius) & (tl.abs(pyf - tl.floor(y + 0.5)) <= radius)
        g = tl.exp(-((pxf - x) * (pxf - x) + (pyf - y) * (pyf - y)) / two_var) * in_window.to(ACC) * scale
        g = tl.where(e_mask[None, :] & (scale != 0.0), g, 0.0).to(ACC)  # dead keypoints add exact 0
        d_mask = e_mask[:, None] & c_mask[None, :]
        d = tl.load(desc_ptr + kp[:, None] * C + c[None, :], mask=d_mask, other=0.0).to(ACC)
        acc = tl.dot(g, d, acc, input_precision="ieee")
    out = out_ptr + (b * C + c[None, :]) * (height * width) + pixel[:, None]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=p_mask[:, None] & c_mask[None, :])


@triton.jit
def _splat_none_kernel(
    xy_ptr, desc_ptr, scale_ptr, out_ptr, C, height, width, variance_bits, radius,
    F64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    two_var = 2.0 * variance_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)
    kp = tl.program_id(0).to(tl.int64)
    x = tl.load(xy_ptr + kp * 2).to(ACC)
    y = tl.load(xy_ptr + kp * 2 + 1).to(ACC)
    scale = tl.load(scale_ptr + kp)
    hw = height * width
    pixel = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = pixel < hw
    pxf = (pixel % width).to(ACC)
    pyf = (pixel // width).to(ACC)
    in_window = (tl.abs(pxf - tl.floor(x + 0.5)) <= radius) & (tl.abs(pyf - tl.floor(y + 0.5)) <= radius)
    g = tl.exp(-((pxf - x) * (pxf - x) + (pyf - y) * (pyf - y)) / two_var) * in_window.to(ACC) * scale
    g = tl.where(scale != 0.0, g, 0.0)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    d = tl.load(desc_ptr + kp * C + c, mask=c_mask, other=0.0).to(ACC)
    out = out_ptr + (kp * C + c[:, None]) * hw + pixel[None, :]
    tl.store(out, (d[:, None] * g[None, :]).to(out_ptr.dtype.element_ty), mask=c_mask[:, None] & p_mask[None, :])


@triton.jit
def _splat_bwd_kernel(
    grad_ptr, xy_ptr, desc_ptr, weights_ptr, grad_xy_ptr, grad_desc_ptr, grad_w_ptr,
    total, K, C, height, width, variance_bits, radius, grad_batch_stride, grad_key_stride,
    HAS_WEIGHTS: tl.constexpr, NORMALIZE: tl.constexpr, NEED_XY: tl.constexpr, NEED_DESC: tl.constexpr,
    NEED_W: tl.constexpr, F64: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    variance = variance_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)
    two_var = 2.0 * variance
    kp = tl.program_id(0).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = kp < total
    grad_base = (kp // K) * grad_batch_stride + (kp % K) * grad_key_stride
    hw = height * width
    x = tl.load(xy_ptr + kp * 2, mask=k_mask, other=0.0).to(ACC)[:, None]
    y = tl.load(xy_ptr + kp * 2 + 1, mask=k_mask, other=0.0).to(ACC)[:, None]
    side_x = tl.minimum(2 * radius + 1, width)
    size = side_x * tl.minimum(2 * radius + 1, height)
    # Window sums T, Sx, Sy (the forward's normaliser and its derivative).
    sum_g = tl.zeros((BLOCK_K,), dtype=ACC)
    sum_gx = tl.zeros((BLOCK_K,), dtype=ACC)
    sum_gy = tl.zeros((BLOCK_K,), dtype=ACC)
    for j0 in range(0, size, BLOCK_W):
        j = j0 + tl.arange(0, BLOCK_W)
        px, py, inside, g = _window_gaussian(x, y, k_mask, j, size, side_x, radius, height, width, two_var)
        sum_g += tl.reduce(g, 1, SUM)
        sum_gx += tl.reduce(tl.where(inside, g * (px - x), 0.0), 1, SUM)
        sum_gy += tl.reduce(tl.where(inside, g * (py - y), 0.0), 1, SUM)
    if HAS_WEIGHTS:
        w = tl.load(weights_ptr + kp, mask=k_mask, other=0.0).to(ACC)
    else:
        w = tl.full((BLOCK_K,), 1.0, ACC)
    if NORMALIZE:
        alive = sum_g > 0.0
        inv_t = tl.where(alive, 1.0 / tl.where(alive, sum_g, 1.0), 0.0)
        # The window's mean offsets: the xy gradient sums A G (p - xy - mean), centred inside the
        # sum so the normaliser's term cannot cancel it catastrophically (clipped windows).
        mean_x = (sum_gx * inv_t)[:, None]
        mean_y = (sum_gy * inv_t)[:, None]
    else:
        inv_t = tl.full((BLOCK_K,), 1.0, ACC)
        mean_x = tl.zeros((BLOCK_K, 1), dtype=ACC)
        mean_y = tl.zeros((BLOCK_K, 1), dtype=ACC)
    if NEED_DESC:  # grad_desc[c] = w / T * sum_p G(p) grad_c(p); channels outer
        plane_ptr = grad_ptr + grad_base  # advanced by one plane per channel (64-bit offsets)
        for ch in range(0, C):
            acc = tl.zeros((BLOCK_K,), dtype=ACC)
            for j0 in range(0, size, BLOCK_W):
                j = j0 + tl.arange(0, BLOCK_W)
                px, py, inside, g = _window_gaussian(x, y, k_mask, j, size, side_x, radius, height, width, two_var)
                at = plane_ptr[:, None] + py.to(tl.int64) * width + px.to(tl.int64)
                acc += tl.reduce(g * tl.load(at, mask=inside, other=0.0).to(ACC), 1, SUM)
            tl.store(grad_desc_ptr + kp * C + ch, (acc * w * inv_t).to(grad_desc_ptr.dtype.element_ty), mask=k_mask)
            plane_ptr += hw
    if NEED_XY or NEED_W:  # A(p) = sum_c d_c grad_c(p); window outer
        s_a = tl.zeros((BLOCK_K,), dtype=ACC)
        s_ax = tl.zeros((BLOCK_K,), dtype=ACC)
        s_ay = tl.zeros((BLOCK_K,), dtype=ACC)
        for j0 in range(0, size, BLOCK_W):
            j = j0 + tl.arange(0, BLOCK_W)
            px, py, inside, g = _window_gaussian(x, y, k_mask, j, size, side_x, radius, height, width, two_var)
            at = grad_ptr + grad_base[:, None] + py.to(tl.int64) * width + px.to(tl.int64)
            a = tl.zeros((BLOCK_K, BLOCK_W), dtype=ACC)
            for ch in range(0, C):
                d = tl.load(desc_ptr + kp * C + ch, mask=k_mask, other=0.0).to(ACC)
                a += d[:, None] * tl.load(at, mask=inside, other=0.0).to(ACC)
                at += hw
            s_a += tl.reduce(a * g, 1, SUM)
            s_ax += tl.reduce(tl.where(inside, a * g * (px - x - mean_x), 0.0), 1, SUM)
            s_ay += tl.reduce(tl.where(inside, a * g * (py - y - mean_y), 0.0), 1, SUM)
        if NEED_W:
            tl.store(grad_w_ptr + kp, (s_a * inv_t).to(grad_w_ptr.dtype.element_ty), mask=k_mask)
        if NEED_XY:
            gx = w * inv_t * s_ax / variance
            gy = w * inv_t * s_ay / variance
            out_ty = grad_xy_ptr.dtype.element_ty
            tl.store(grad_xy_ptr + kp * 2, gx.to(out_ty), mask=k_mask)
            tl.store(grad_xy_ptr + kp * 2 + 1, gy.to(out_ty), mask=k_mask)


def _scale(xy, weights, height, width, variance, radius, normalize) -> torch.Tensor:
    """``[B*K]`` per-keypoint factor ``w / sum G`` (or ``w``), in the accumulation dtype."""
    total = xy.shape[0] * xy.shape[1]
    scale = torch.empty(total, device=xy.device, dtype=acc_dtype(xy.dtype))
    block_k, block_w = _window_blocks(radius, height, width)
    launch(
        _splat_scale_kernel, (triton.cdiv(total, block_k),),
        xy, xy if weights is None else weights, scale, total, height, width, scalar_bits(variance), radius,
        HAS_WEIGHTS=weights is not None, NORMALIZE=normalize, F64=is_f64(xy), BLOCK_K=block_k, BLOCK_W=block_w,
    )
    return scale


def _window_bounds(xy: torch.Tensor, height: int, width: int, radius: int):
    """Inclusive pixel bounds of every window clipped to the image (``lo > hi``: empty), computed
    as the kernels do; a NaN centre is treated as pixel 0 so its NaN lands in the first tile."""
    centre = torch.floor(xy.to(acc_dtype(xy.dtype)) + 0.5)
    centre = torch.nan_to_num(centre, nan=0.0)

    def bounds(c: torch.Tensor, size: int):
        lo, hi = (c - radius).clamp(min=0), (c + radius).clamp(max=size - 1)
        empty = lo > hi
        lo, hi = lo.clamp(max=size - 1).long(), hi.clamp(min=0).long()
        return torch.where(empty, 1, lo), torch.where(empty, 0, hi)

    lo_x, hi_x = bounds(centre[..., 0], width)
    lo_y, hi_y = bounds(centre[..., 1], height)
    return lo_x, hi_x, lo_y, hi_y


@tusk_triton_op("splat_gaussians")
def splat_gaussians(
    xy: torch.Tensor, descriptors: torch.Tensor, weights: torch.Tensor | None, height: int, width: int,
    variance: float, radius: int, normalize: bool, reduce: str,
) -> torch.Tensor:
    """``[B, C, H, W]`` (sum) or ``[B, K, C, H, W]`` (none); see :mod:`tusk.ops.splat_gaussians`."""
    xy, descriptors = xy.contiguous(), descriptors.contiguous()
    radius = min(radius, MAX_RADIUS)
    weights = None if weights is None else weights.contiguous()
    batch, count, channels = descriptors.shape
    scale = _scale(xy, weights, height, width, variance, radius, normalize)
    block_c = min(64, next_pow2(channels, 16))
    if reduce == "none":
        out = descriptors.new_empty((batch, count, channels, height, width))
        block_p = min(1024, next_pow2(height * width))
        block_c = min(block_c, max(1, 4096 // block_p))
        launch(
            _splat_none_kernel, (batch * count, triton.cdiv(height * width, block_p), triton.cdiv(channels, block_c)),
            xy, descriptors, scale, out, channels, height, width, scalar_bits(variance), radius,
            F64=is_f64(xy), BLOCK_P=block_p, BLOCK_C=block_c,
        )
        return out
    lo_x, hi_x, lo_y, hi_y = _window_bounds(xy, height, width, radius)
    extent = 2 * radius + 1
    bins = bin_footprints(lo_x, hi_x, lo_y, hi_y, height, width, TILE, TILE, extent, extent)
    out = descriptors.new_empty((batch, channels, height, width))
    # [256, BLOCK_C] accumulator: 8192 float32 / 4096 float64 values (64 registers a thread at 4
    # warps); tl.dot needs BLOCK_C >= 16.
    block_c = min(16 if is_f64(xy) else 32, next_pow2(channels, 16))
    launch(
        _splat_sum_kernel, (batch * bins.tiles_y * bins.tiles_x, triton.cdiv(channels, block_c)),
        xy, descriptors, scale, bins.keypoint, bins.start, out,
        channels, height, width, bins.tiles_y, bins.tiles_x, scalar_bits(variance), radius,
        F64=is_f64(xy), TILE_H=TILE, TILE_W=TILE, BLOCK_K=16, BLOCK_C=block_c,
    )
    return out


@tusk_triton_op("splat_gaussians_backward")
def splat_gaussians_backward(
    grad: torch.Tensor, xy: torch.Tensor, descriptors: torch.Tensor, weights: torch.Tensor | None,
    height: int, width: int, variance: float, radius: int, normalize: bool, reduce: str, output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_xy [B, K, 2], grad_descriptors [B, K, C], grad_weights [B, K])``; unrequested ones
    (and ``grad_weights`` without weights) are empty."""
    grad, xy, descriptors = grad.contiguous(), xy.contiguous(), descriptors.contiguous()
    radius = min(radius, MAX_RADIUS)
    weights = None if weights is None else weights.contiguous()
    batch, count, channels = descriptors.shape
    need_xy, need_desc = bool(output_mask[0]), bool(output_mask[1])
    need_w = bool(output_mask[2]) and weights is not None
    grad_xy = torch.empty_like(xy) if need_xy else empty_grad(xy)
    grad_desc = torch.empty_like(descriptors) if need_desc else empty_grad(descriptors)
    grad_w = torch.empty_like(weights) if need_w else empty_grad(xy)
    if not (need_xy or need_desc or need_w):
        return grad_xy, grad_desc, grad_w
    plane = channels * height * width
    strides = (plane, 0) if reduce == "sum" else (count * plane, plane)
    block_k, block_w = _window_blocks(radius, height, width)
    total = batch * count
    launch(
        _splat_bwd_kernel, (triton.cdiv(total, block_k),),
        # Outputs not asked for are never written; their slots get real tensors, not empty ones.
        grad, xy, descriptors, xy if weights is None else weights,
        grad_xy if need_xy else xy, grad_desc if need_desc else descriptors, grad_w if need_w else xy,
        total, count, channels, height, width, scalar_bits(variance), radius, *strides,
        HAS_WEIGHTS=weights is not None, NORMALIZE=normalize, NEED_XY=need_xy, NEED_DESC=need_desc,
        NEED_W=need_w, F64=is_f64(xy), BLOCK_K=block_k, BLOCK_W=block_w,
    )
    return grad_xy, grad_desc, grad_w


def _setup_context(ctx, inputs, output):
    xy, descriptors, weights, height, width, variance, radius, normalize, reduce = inputs
    ctx.save_for_backward(xy, descriptors, weights)
    ctx.args = (height, width, variance, radius, normalize, reduce)


def _backward(ctx, grad):
    xy, descriptors, weights = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], weights is not None and ctx.needs_input_grad[2]]
    grad_xy, grad_desc, grad_w = splat_gaussians_backward(grad, xy, descriptors, weights, *ctx.args, mask)
    return (grad_xy if mask[0] else None, grad_desc if mask[1] else None, grad_w if mask[2] else None,
            None, None, None, None, None, None)


splat_gaussians.register_autograd(_backward, setup_context=_setup_context)
