"""Triton ``sample_descriptors``: bilinear sampling of ``features [B, C, H, W]`` at ``xy [B, K, 2]``.

Kernels:

- forward: one program per block of ``BLOCK_K`` keypoints (of the flattened ``B*K``); it computes the four
  taps once and walks the channels in ``BLOCK_C`` chunks (``[BLOCK_K, BLOCK_C]`` gathers),
  writing ``out [B, K, C]`` rows contiguously.
- backward, ``grad_xy``: same layout, reducing ``grad . d(out)/d(xy)`` over the channels.
- backward, ``grad_features``: a gather, not a scatter. Keypoints are binned by the 16x16 output
  tiles their taps touch (:mod:`._tiles`, torch sort); each program owns one tile x ``BLOCK_C``
  channels and sums ``W[pixel, keypoint] @ grad[keypoint, channel]`` over its keypoints with
  ``tl.dot`` (IEEE float32 / float64, no TF32). Every output element has one writer: no atomics,
  deterministic on every device.

Accumulation is float32 for half inputs, float64 for float64.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._bilinear import bilinear_taps
from ._common import SUM, acc_dtype, empty_grad, is_f64, launch, next_pow2, tusk_triton_op
from ._tiles import bin_footprints

TILE = 16  # output tile side of the grad_features gather (256 pixels = the tl.dot M dimension)


def _channel_block(channels: int) -> int:
    return min(64, next_pow2(channels, 16))


def _tile_channel_block(channels: int, f64: bool) -> int:
    """Channels per tile program: the ``[256, BLOCK_C]`` accumulator stays at 8192 float32 /
    4096 float64 values (64 registers per thread at 4 warps); tl.dot needs >= 16."""
    return min(16 if f64 else 32, next_pow2(channels, 16))


def _keypoint_block(total: int) -> int:
    """Keypoints per program (over the flattened ``B*K``): 32 keeps ``[32, BLOCK_C]`` gathers in
    registers; fewer for tiny inputs."""
    return min(32, next_pow2(total))


@triton.jit
def _sample_fwd_kernel(
    features_ptr, xy_ptr, out_ptr, total, K, C, height, width,
    BORDER: tl.constexpr, F64: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    kp = tl.program_id(0).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)  # flat b*K + k
    k_mask = kp < total
    x = tl.load(xy_ptr + kp * 2, mask=k_mask, other=0.0).to(ACC)
    y = tl.load(xy_ptr + kp * 2 + 1, mask=k_mask, other=0.0).to(ACC)
    i00, i10, i01, i11, in00, in10, in01, in11, wx0, wx1, wy0, wy1, _, _ = bilinear_taps(
        x, y, height, width, BORDER)
    w00 = (wx0 * wy0 * in00)[:, None]
    w10 = (wx1 * wy0 * in10)[:, None]
    w01 = (wx0 * wy1 * in01)[:, None]
    w11 = (wx1 * wy1 * in11)[:, None]
    hw = height * width
    base = features_ptr + (kp // K) * C * hw  # this keypoint's image
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = k_mask[:, None] & (c < C)[None, :]
        plane = base[:, None] + c[None, :].to(tl.int64) * hw
        value = w00 * tl.load(plane + i00[:, None], mask=mask, other=0.0).to(ACC)
        value += w10 * tl.load(plane + i10[:, None], mask=mask, other=0.0).to(ACC)
        value += w01 * tl.load(plane + i01[:, None], mask=mask, other=0.0).to(ACC)
        value += w11 * tl.load(plane + i11[:, None], mask=mask, other=0.0).to(ACC)
        tl.store(out_ptr + kp[:, None] * C + c[None, :], value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _sample_bwd_xy_kernel(
    grad_ptr, features_ptr, xy_ptr, grad_xy_ptr, total, K, C, height, width,
    BORDER: tl.constexpr, F64: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    kp = tl.program_id(0).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = kp < total
    x = tl.load(xy_ptr + kp * 2, mask=k_mask, other=0.0).to(ACC)
    y = tl.load(xy_ptr + kp * 2 + 1, mask=k_mask, other=0.0).to(ACC)
    i00, i10, i01, i11, in00, in10, in01, in11, wx0, wx1, wy0, wy1, grad_x, grad_y = bilinear_taps(
        x, y, height, width, BORDER)
    hw = height * width
    base = features_ptr + (kp // K) * C * hw
    acc_x = tl.zeros((BLOCK_K,), dtype=ACC)
    acc_y = tl.zeros((BLOCK_K,), dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = k_mask[:, None] & (c < C)[None, :]
        plane = base[:, None] + c[None, :].to(tl.int64) * hw
        f00 = in00[:, None] * tl.load(plane + i00[:, None], mask=mask, other=0.0).to(ACC)
        f10 = in10[:, None] * tl.load(plane + i10[:, None], mask=mask, other=0.0).to(ACC)
        f01 = in01[:, None] * tl.load(plane + i01[:, None], mask=mask, other=0.0).to(ACC)
        f11 = in11[:, None] * tl.load(plane + i11[:, None], mask=mask, other=0.0).to(ACC)
        g = tl.load(grad_ptr + kp[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        d_dx = wy0[:, None] * (f10 - f00) + wy1[:, None] * (f11 - f01)
        d_dy = wx0[:, None] * (f01 - f00) + wx1[:, None] * (f11 - f10)
        acc_x += tl.reduce(g * d_dx, 1, SUM)
        acc_y += tl.reduce(g * d_dy, 1, SUM)
    out_ty = grad_xy_ptr.dtype.element_ty
    tl.store(grad_xy_ptr + kp * 2, (acc_x * grad_x).to(out_ty), mask=k_mask)
    tl.store(grad_xy_ptr + kp * 2 + 1, (acc_y * grad_y).to(out_ty), mask=k_mask)


@triton.jit
def _sample_bwd_features_kernel(
    grad_ptr, xy_ptr, keypoint_ptr, start_ptr, grad_features_ptr,
    C, height, width, tiles_y, tiles_x,
    BORDER: tl.constexpr, F64: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    tile = tl.program_id(0)
    tiles = tiles_y * tiles_x
    b = (tile // tiles).to(tl.int64)
    local = tile % tiles
    p = tl.arange(0, TILE_H * TILE_W)
    py = (local // tiles_x) * TILE_H + p // TILE_W
    px = (local % tiles_x) * TILE_W + p % TILE_W
    p_mask = (py < height) & (px < width)
    pixel = (py.to(tl.int64) * width + px)[:, None]
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    start = tl.load(start_ptr + tile)
    end = tl.load(start_ptr + tile + 1)
    acc = tl.zeros((TILE_H * TILE_W, BLOCK_C), dtype=ACC)
    for e0 in range(start, end, BLOCK_K):
        e = e0 + tl.arange(0, BLOCK_K)
        e_mask = e < end
        kp = tl.load(keypoint_ptr + e, mask=e_mask, other=0)
        x = tl.load(xy_ptr + kp * 2, mask=e_mask, other=0.0).to(ACC)
        y = tl.load(xy_ptr + kp * 2 + 1, mask=e_mask, other=0.0).to(ACC)
        i00, i10, i01, i11, in00, in10, in01, in11, wx0, wx1, wy0, wy1, _, _ = bilinear_taps(
            x, y, height, width, BORDER)
        # weights[p, j]: weight of keypoint j's taps on pixel p (a where, so a NaN weight only
        # reaches its own tap's pixel, as in the reference).
        weights = tl.where(pixel == i00[None, :], (wx0 * wy0 * in00)[None, :], 0.0)
        weights += tl.where(pixel == i10[None, :], (wx1 * wy0 * in10)[None, :], 0.0)
        weights += tl.where(pixel == i01[None, :], (wx0 * wy1 * in01)[None, :], 0.0)
        weights += tl.where(pixel == i11[None, :], (wx1 * wy1 * in11)[None, :], 0.0)
        weights = tl.where(e_mask[None, :], weights, 0.0).to(ACC)
        g_mask = e_mask[:, None] & c_mask[None, :]
        g = tl.load(grad_ptr + kp[:, None] * C + c[None, :], mask=g_mask, other=0.0).to(ACC)
        acc = tl.dot(weights, g, acc, input_precision="ieee")
    out = grad_features_ptr + (b * C + c[None, :]) * (height * width) + pixel
    tl.store(out, acc.to(grad_features_ptr.dtype.element_ty), mask=p_mask[:, None] & c_mask[None, :])


def _footprints(xy: torch.Tensor, height: int, width: int, border: bool):
    """Inclusive pixel bounds of the four taps of every keypoint (as the kernels compute them)."""
    coords = xy.to(acc_dtype(xy.dtype))
    x, y = coords[..., 0], coords[..., 1]
    if border:
        x = x.clamp(0, width - 1)
        y = y.clamp(0, height - 1)

    def bounds(v: torch.Tensor, size: int):
        v0 = torch.nan_to_num(torch.floor(v), nan=0.0)
        return v0.clamp(0, size - 1).long(), (v0 + 1).clamp(0, size - 1).long()

    lo_x, hi_x = bounds(x, width)
    lo_y, hi_y = bounds(y, height)
    return lo_x, hi_x, lo_y, hi_y


@tusk_triton_op("sample_descriptors")
def sample_descriptors(features: torch.Tensor, xy: torch.Tensor, padding: str) -> torch.Tensor:
    """``[B, C, H, W]``, ``[B, K, 2]`` -> ``[B, K, C]`` (see :mod:`tusk.ops.sample_descriptors`)."""
    features, xy = features.contiguous(), xy.contiguous()
    batch, channels, height, width = features.shape
    count = xy.shape[1]
    out = features.new_empty((batch, count, channels))
    block_k = _keypoint_block(batch * count)
    launch(
        _sample_fwd_kernel, (triton.cdiv(batch * count, block_k),),
        features, xy, out, batch * count, count, channels, height, width,
        BORDER=padding == "border", F64=is_f64(features), BLOCK_K=block_k, BLOCK_C=_channel_block(channels),
    )
    return out


@tusk_triton_op("sample_descriptors_backward")
def sample_descriptors_backward(
    grad: torch.Tensor, features: torch.Tensor, xy: torch.Tensor, padding: str, output_mask: list[bool]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_features [B, C, H, W], grad_xy [B, K, 2])``; an unrequested one is empty."""
    grad, features, xy = grad.contiguous(), features.contiguous(), xy.contiguous()
    batch, channels, height, width = features.shape
    count = xy.shape[1]
    border = padding == "border"
    block_c = _channel_block(channels)
    grad_features, grad_xy = empty_grad(features), empty_grad(xy)
    if output_mask[0]:
        lo_x, hi_x, lo_y, hi_y = _footprints(xy, height, width, border)
        bins = bin_footprints(lo_x, hi_x, lo_y, hi_y, height, width, TILE, TILE, 2, 2)
        grad_features = torch.empty_like(features)
        tile_c = _tile_channel_block(channels, is_f64(features))
        launch(
            _sample_bwd_features_kernel, (batch * bins.tiles_y * bins.tiles_x, triton.cdiv(channels, tile_c)),
            grad, xy, bins.keypoint, bins.start, grad_features,
            channels, height, width, bins.tiles_y, bins.tiles_x,
            BORDER=border, F64=is_f64(features), TILE_H=TILE, TILE_W=TILE, BLOCK_K=16, BLOCK_C=tile_c,
        )
    if output_mask[1]:
        grad_xy = torch.empty_like(xy)
        block_k = _keypoint_block(batch * count)
        launch(
            _sample_bwd_xy_kernel, (triton.cdiv(batch * count, block_k),),
            grad, features, xy, grad_xy, batch * count, count, channels, height, width,
            BORDER=border, F64=is_f64(features), BLOCK_K=block_k, BLOCK_C=block_c,
        )
    return grad_features, grad_xy


def _setup_context(ctx, inputs, output):
    features, xy, padding = inputs
    ctx.save_for_backward(features, xy)
    ctx.padding = padding


def _backward(ctx, grad):
    features, xy = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1]]
    grad_features, grad_xy = sample_descriptors_backward(grad, features, xy, ctx.padding, mask)
    return (grad_features if mask[0] else None), (grad_xy if mask[1] else None), None


sample_descriptors.register_autograd(_backward, setup_context=_setup_context)
