"""Triton ``sliced_wasserstein``: ``mean_p mean_i (sort(x theta_p)_i - sort(y theta_p)_i)^2`` for
``G`` independent problems ``x, y [G, N, C]``, ``projections [C, P]``.

Kernels:

- forward, ``_sw_sort_kernel``: one program per problem x block of ``BLOCK_P`` projections. It
  projects both point sets (a loop over channels, ``[BLOCK_P, NP]`` FMAs, ``NP = 2**ceil(log2 N)``),
  turns the projections into order-preserving integer keys, pads to ``NP`` with the largest key,
  sorts (key, point index) pairs in registers (:mod:`._sort`, a stable bitonic network), and pairs
  the ``i``-th smallest projections of ``x`` and ``y``. It writes the per-point residuals
  ``d SW / d (x theta_p)_n = 2 (sx - sy) / (N P)`` back at each point's *original* index (a
  permutation, so one writer per element) and one partial sum of squares per program.
- backward: ``grad_x = grad * r_x @ theta^T`` (``_sw_points_grad_kernel``, ``tl.dot`` over
  projection chunks) and ``grad_theta = sum_g grad_g (x_g^T r_x + y_g^T r_y)``
  (``_sw_theta_grad_kernel``, one program per ``[BLOCK_C, BLOCK_P]`` tile looping over all
  points in order). No atomics: deterministic on every device.

Torch inside the triton_ops: the ``[G, P / BLOCK_P]`` partial sums are reduced with
``torch.sum`` (a tiny, deterministic reduction), and for ``N > MAX_SORT_POINTS`` — where a
register sort would spill — projection and sorting use ``torch.matmul`` / ``torch.sort`` and the
residual scatter ``torch.scatter``. Residuals are float32 for half inputs (float64 for float64).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import (
    SUM, acc_dtype, empty_grad, is_f64, launch, next_pow2, scalar_bits, tusk_triton_op,
)
from ._sort import argsort_pairs, float_key, key_to_float

#: Largest N sorted in registers (one program holds ``[BLOCK_P, 2**ceil(log2 N)]`` keys and
#: indices). The network is fully unrolled: compiling it for N = 1024 takes ~20-40 s (once, cached).
#: Above this, torch sorts (see the module docstring).
MAX_SORT_POINTS = 1024


@triton.jit
def _sw_sort_kernel(
    x_ptr, y_ptr, theta_ptr, rx_ptr, ry_ptr, partial_ptr, N, C, P, scale_bits,
    F64: tl.constexpr, BLOCK_P: tl.constexpr, NP: tl.constexpr, LOG_NP: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    scale = scale_bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)  # 2 / (N P)
    g = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = p < P
    i = tl.arange(0, NP)
    i_mask = i < N
    rows = g * N + i
    proj_x = tl.zeros((BLOCK_P, NP), dtype=ACC)
    proj_y = tl.zeros((BLOCK_P, NP), dtype=ACC)
    for ch in range(0, C):
        theta = tl.load(theta_ptr + ch * P + p, mask=p_mask, other=0.0).to(ACC)[:, None]
        proj_x += theta * tl.load(x_ptr + rows * C + ch, mask=i_mask, other=0.0).to(ACC)[None, :]
        proj_y += theta * tl.load(y_ptr + rows * C + ch, mask=i_mask, other=0.0).to(ACC)[None, :]
    real = p_mask[:, None] & i_mask[None, :]
    if F64:
        pad = 0x7FFFFFFFFFFFFFFF
    else:
        pad = 0x7FFFFFFF
    key_x = tl.where(real, float_key(proj_x, F64), pad)
    key_y = tl.where(real, float_key(proj_y, F64), pad)
    index = tl.broadcast_to(i[None, :], (BLOCK_P, NP)).to(tl.int32)
    key_x, index_x = argsort_pairs(key_x, index, LOG_NP)
    key_y, index_y = argsort_pairs(key_y, index, LOG_NP)
    # Lane j < N holds the j-th smallest real projection (padding sorts last).
    diff = tl.where(real, key_to_float(key_x, F64) - key_to_float(key_y, F64), 0.0)
    tl.store(partial_ptr + g * tl.num_programs(1) + tl.program_id(1), tl.reduce(tl.reduce(diff * diff, 1, SUM), 0, SUM))
    residual = diff * scale
    tl.store(rx_ptr + (g * N + index_x) * P + p[:, None], residual, mask=real)
    tl.store(ry_ptr + (g * N + index_y) * P + p[:, None], -residual, mask=real)


@triton.jit
def _sw_points_grad_kernel(
    residual_ptr, theta_ptr, grad_ptr, out_ptr, rows, N, C, P,
    F64: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``out[g, n, :] = grad[g] * residual[g, n, :] @ theta^T`` over flattened rows ``g*N + n``."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    r = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    r_mask = r < rows
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=ACC)
    for p0 in range(0, P, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        p_mask = p < P
        res = tl.load(residual_ptr + r[:, None] * P + p[None, :], mask=r_mask[:, None] & p_mask[None, :], other=0.0)
        theta_t = tl.load(theta_ptr + c[None, :] * P + p[:, None], mask=p_mask[:, None] & c_mask[None, :], other=0.0)
        acc = tl.dot(res.to(ACC), theta_t.to(ACC), acc, input_precision="ieee")
    g = tl.load(grad_ptr + r // N, mask=r_mask, other=0.0).to(ACC)
    out = acc * g[:, None]
    tl.store(out_ptr + r[:, None] * C + c[None, :], out.to(out_ptr.dtype.element_ty),
             mask=r_mask[:, None] & c_mask[None, :])


@triton.jit
def _sw_theta_grad_kernel(
    x_ptr, y_ptr, rx_ptr, ry_ptr, grad_ptr, out_ptr, rows, N, C, P,
    F64: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """``out[c, p] = sum_rows grad[row // N] (x[row, c] rx[row, p] + y[row, c] ry[row, p])``."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = p < P
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC)
    for r0 in range(0, rows, BLOCK_N):
        r = r0 + tl.arange(0, BLOCK_N).to(tl.int64)
        r_mask = r < rows
        g = tl.load(grad_ptr + r // N, mask=r_mask, other=0.0).to(ACC)[None, :]
        at_c = c[:, None] + r[None, :] * C
        mask_c = c_mask[:, None] & r_mask[None, :]
        at_p = r[:, None] * P + p[None, :]
        mask_p = r_mask[:, None] & p_mask[None, :]
        x_t = tl.load(x_ptr + at_c, mask=mask_c, other=0.0).to(ACC) * g
        y_t = tl.load(y_ptr + at_c, mask=mask_c, other=0.0).to(ACC) * g
        acc = tl.dot(x_t, tl.load(rx_ptr + at_p, mask=mask_p, other=0.0).to(ACC), acc, input_precision="ieee")
        acc = tl.dot(y_t, tl.load(ry_ptr + at_p, mask=mask_p, other=0.0).to(ACC), acc, input_precision="ieee")
    tl.store(out_ptr + c[:, None] * P + p[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=c_mask[:, None] & p_mask[None, :])


def _projection_block(points: int, projections: int) -> int:
    """Projections per program: ``[BLOCK_P, NP]`` keys at most 2048 elements (with the indices
    and projections, <= ~64 registers per thread at the default 4 warps)."""
    return max(1, min(16, 2048 // next_pow2(points, 2), next_pow2(projections)))


def _sorted_in_torch(x, y, theta):
    """The N > MAX_SORT_POINTS path: (partial sums of squares [G, 1], r_x, r_y)."""
    count, projections = x.shape[1], theta.shape[1]
    acc = acc_dtype(x.dtype)
    proj_x, proj_y = torch.matmul(x.to(acc), theta.to(acc)), torch.matmul(y.to(acc), theta.to(acc))
    sorted_x, index_x = torch.sort(proj_x, dim=1, stable=True)
    sorted_y, index_y = torch.sort(proj_y, dim=1, stable=True)
    diff = sorted_x - sorted_y
    residual = diff * (2.0 / (count * projections))
    x_residual = torch.empty_like(residual).scatter_(1, index_x, residual)
    y_residual = torch.empty_like(residual).scatter_(1, index_y, -residual)
    return (diff * diff).sum(dim=(1, 2))[:, None], x_residual, y_residual


@tusk_triton_op("sliced_wasserstein")
def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, projections: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x, y [G, N, C]``, ``projections [C, P]`` -> ``(distance [G], r_x [G, N, P], r_y [G, N, P])``."""
    x, y, theta = x.contiguous(), y.contiguous(), projections.contiguous()
    problems, count, channels = x.shape
    count_p = theta.shape[1]
    if count > MAX_SORT_POINTS:
        partial, x_residual, y_residual = _sorted_in_torch(x, y, theta)
    else:
        acc = acc_dtype(x.dtype)
        block_p = _projection_block(count, count_p)
        padded = next_pow2(count, 2)
        partial = torch.empty((problems, triton.cdiv(count_p, block_p)), device=x.device, dtype=acc)
        x_residual = torch.empty((problems, count, count_p), device=x.device, dtype=acc)
        y_residual = torch.empty_like(x_residual)
        launch(
            _sw_sort_kernel, (problems, triton.cdiv(count_p, block_p)),
            x, y, theta, x_residual, y_residual, partial, count, channels, count_p,
            scalar_bits(2.0 / (count * count_p)),
            F64=is_f64(x), BLOCK_P=block_p, NP=padded, LOG_NP=padded.bit_length() - 1,
        )
    distance = (partial.sum(dim=1) / (count * count_p)).to(x.dtype)
    return distance, x_residual, y_residual


@tusk_triton_op("sliced_wasserstein_backward")
def sliced_wasserstein_backward(
    grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, projections: torch.Tensor,
    x_residual: torch.Tensor, y_residual: torch.Tensor, output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_x [G, N, C], grad_y [G, N, C], grad_projections [C, P])``; unrequested ones are empty."""
    grad, x, y, theta = grad.contiguous(), x.contiguous(), y.contiguous(), projections.contiguous()
    x_residual, y_residual = x_residual.contiguous(), y_residual.contiguous()
    problems, count, channels = x.shape
    count_p = theta.shape[1]
    rows = problems * count
    f64 = is_f64(x)
    block_c = min(64, next_pow2(channels, 16))
    block_p = min(64, next_pow2(count_p, 16))
    outputs = []
    for need, residual, like in ((output_mask[0], x_residual, x), (output_mask[1], y_residual, y)):
        if not need:
            outputs.append(empty_grad(like))
            continue
        out = torch.empty_like(like)
        launch(
            _sw_points_grad_kernel, (triton.cdiv(rows, 32), triton.cdiv(channels, block_c)),
            residual, theta, grad, out, rows, count, channels, count_p,
            F64=f64, BLOCK_N=32, BLOCK_P=block_p, BLOCK_C=block_c,
        )
        outputs.append(out)
    grad_theta = empty_grad(theta)
    if output_mask[2]:
        grad_theta = torch.empty_like(theta)
        launch(
            _sw_theta_grad_kernel, (triton.cdiv(channels, block_c), triton.cdiv(count_p, block_p)),
            x, y, x_residual, y_residual, grad, grad_theta, rows, count, channels, count_p,
            F64=f64, BLOCK_N=32, BLOCK_C=block_c, BLOCK_P=block_p,
        )
    return outputs[0], outputs[1], grad_theta


def _setup_context(ctx, inputs, output):
    x, y, projections = inputs
    _, x_residual, y_residual = output
    ctx.save_for_backward(x, y, projections, x_residual, y_residual)
    ctx.mark_non_differentiable(x_residual, y_residual)


def _backward(ctx, grad, grad_x_residual, grad_y_residual):
    x, y, projections, x_residual, y_residual = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
    grad_x, grad_y, grad_theta = sliced_wasserstein_backward(
        grad, x, y, projections, x_residual, y_residual, mask)
    return (grad_x if mask[0] else None), (grad_y if mask[1] else None), (grad_theta if mask[2] else None)


sliced_wasserstein.register_autograd(_backward, setup_context=_setup_context)
