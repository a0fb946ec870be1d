"""Triton ``gmm_prototype_samples``: TUSK's prototype GMM sampler.

Kernels:

- ``_nearest_kernel``: one program per block of features; loops over the prototypes and keeps
  the first minimum of the squared distance, accumulated in float64 as the reference does (so
  every backend assigns identically), without materialising ``[N, M, C]``. It also returns the
  minimum distance, i.e. ``C x`` the feature's mean squared deviation from its prototype.
- ``_samples_kernel``: one program per block of samples: ``v = prototypes[assignment] + noise``,
  ``out = v / max(|v|, 1e-12)`` (two passes over the channels: norm, then write).
- backward, ``_samples_bwd_kernel``: a segment sum, one program per prototype x channel block,
  walking that prototype's samples in order (deterministic, no atomics):
  ``grad_prototype = sum_n (g_n / |v_n| - v_n (v_n . g_n) / |v_n|^3)`` (``g_n / 1e-12`` where
  the norm is clamped).

Torch inside the triton_ops (all on ``[M]``/``[N]`` integer or float64 vectors, no dense maps):
the per-prototype counts and spreads (``one_hot`` sums, as the reference, instead of atomics),
the smoothed shares and the float64 largest-remainder allocation (a stable ``torch.sort``), the
sample -> prototype map (``searchsorted`` on the cumulative counts) and, in backward, the
grouping of samples by prototype (a stable ``argsort`` + ``searchsorted``). These are a handful
of tiny vector ops where the contract is "allocate exactly as the reference, in float64"; a
kernel would only re-implement ``torch.sort``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ..reference.gmm_prototype_samples import allocate_samples
from ._common import SUM, is_f64, launch, next_pow2, tusk_triton_op

EPS = 1e-12  # F.normalize's clamp of the norm


@triton.jit
def _nearest_kernel(
    features_ptr, prototypes_ptr, nearest_ptr, distance_ptr, N, M, C,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = n < N
    best = tl.full((BLOCK_N,), float("inf"), tl.float64)
    best_m = tl.zeros((BLOCK_N,), dtype=tl.int64)
    for m in range(0, M):
        distance = tl.zeros((BLOCK_N,), dtype=tl.float64)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            c_mask = c < C
            f = tl.load(features_ptr + n[:, None] * C + c[None, :], mask=n_mask[:, None] & c_mask[None, :], other=0.0)
            p = tl.load(prototypes_ptr + m * C + c, mask=c_mask, other=0.0)
            diff = f.to(tl.float64) - p.to(tl.float64)[None, :]
            distance += tl.reduce(diff * diff, 1, SUM)
        # Strict: ties keep the lower prototype index. The first NaN wins, as torch.argmin.
        closer = (distance < best) | ((distance != distance) & (best == best))
        best = tl.where(closer, distance, best)
        best_m = tl.where(closer, m, best_m)
    tl.store(nearest_ptr + n, best_m, mask=n_mask)
    tl.store(distance_ptr + n, best, mask=n_mask)


@triton.jit
def _samples_kernel(
    prototypes_ptr, noise_ptr, assignment_ptr, out_ptr, N, C,
    F64: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = n < N
    proto = tl.load(assignment_ptr + n, mask=n_mask, other=0)
    norm2 = tl.zeros((BLOCK_N,), dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = n_mask[:, None] & (c < C)[None, :]
        v = tl.load(prototypes_ptr + proto[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        v += tl.load(noise_ptr + n[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        norm2 += tl.reduce(v * v, 1, SUM)
    inv = 1.0 / tl.maximum(tl.sqrt(norm2), 1e-12)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = n_mask[:, None] & (c < C)[None, :]
        v = tl.load(prototypes_ptr + proto[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        v += tl.load(noise_ptr + n[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        tl.store(out_ptr + n[:, None] * C + c[None, :], (v * inv[:, None]).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _samples_bwd_kernel(
    grad_ptr, prototypes_ptr, noise_ptr, order_ptr, start_ptr, grad_prototypes_ptr, C,
    F64: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    m = tl.program_id(0).to(tl.int64)
    c_out = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_out_mask = c_out < C
    start = tl.load(start_ptr + m)
    end = tl.load(start_ptr + m + 1)
    proto_out = tl.load(prototypes_ptr + m * C + c_out, mask=c_out_mask, other=0.0).to(ACC)
    acc = tl.zeros((BLOCK_C,), dtype=ACC)
    for e0 in range(start, end, BLOCK_N):
        e = e0 + tl.arange(0, BLOCK_N)
        e_mask = e < end
        n = tl.load(order_ptr + e, mask=e_mask, other=0)
        norm2 = tl.zeros((BLOCK_N,), dtype=ACC)
        dot = tl.zeros((BLOCK_N,), dtype=ACC)
        for c0 in range(0, C, BLOCK_C):  # |v|^2 and v . g over all channels
            c = c0 + tl.arange(0, BLOCK_C)
            mask = e_mask[:, None] & (c < C)[None, :]
            v = tl.load(prototypes_ptr + m * C + c, mask=c < C, other=0.0).to(ACC)[None, :]
            v += tl.load(noise_ptr + n[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
            g = tl.load(grad_ptr + n[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
            norm2 += tl.reduce(v * v, 1, SUM)
            dot += tl.reduce(v * g, 1, SUM)
        norm = tl.sqrt(norm2)
        clamped = norm <= 1e-12
        inv = 1.0 / tl.where(clamped, 1e-12, norm)
        coef = tl.where(clamped, 0.0, dot * inv * inv * inv)
        mask = e_mask[:, None] & c_out_mask[None, :]
        v = proto_out[None, :] + tl.load(noise_ptr + n[:, None] * C + c_out[None, :], mask=mask, other=0.0).to(ACC)
        g = tl.load(grad_ptr + n[:, None] * C + c_out[None, :], mask=mask, other=0.0).to(ACC)
        acc += tl.reduce(tl.where(mask, g * inv[:, None] - v * coef[:, None], 0.0), 0, SUM)
    tl.store(grad_prototypes_ptr + m * C + c_out, acc.to(grad_prototypes_ptr.dtype.element_ty), mask=c_out_mask)


def _allocate(
    nearest: torch.Tensor, deviation: torch.Tensor, count_m: int, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer samples per prototype ``[M]`` (float64 largest remainder, as the reference) and
    whether the shares were finite (0-dim bool); non-finite shares give every sample to prototype 0."""
    one_hot = F.one_hot(nearest, count_m).double()  # static shapes (compiles); no atomics
    return allocate_samples(one_hot.sum(0), deviation @ one_hot, nearest.shape[0], smoothing)


def _blocks(channels: int) -> tuple[int, int]:
    block_c = min(128, next_pow2(channels))
    return max(1, min(64, 2048 // block_c)), block_c


@tusk_triton_op("gmm_prototype_samples")
def gmm_prototype_samples(
    prototypes: torch.Tensor, features: torch.Tensor, noise: torch.Tensor, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``prototypes [M, C]``, ``features [N, C]``, ``noise [N, C]`` -> ``(samples [N, C],
    assignment [N] int64)``; see :mod:`tusk.ops.gmm_prototype_samples`."""
    prototypes, features, noise = prototypes.contiguous(), features.contiguous(), noise.contiguous()
    count_m, channels = prototypes.shape
    n = features.shape[0]
    block_n, block_c = _blocks(channels)
    nearest = torch.empty(n, dtype=torch.int64, device=features.device)
    distance = torch.empty(n, dtype=torch.float64, device=features.device)
    launch(
        _nearest_kernel, (triton.cdiv(n, block_n),),
        features, prototypes, nearest, distance, n, count_m, channels, BLOCK_N=block_n, BLOCK_C=block_c,
    )
    counts, valid = _allocate(nearest, distance / channels, count_m, smoothing)
    positions = torch.arange(n, device=features.device)
    assignment = torch.searchsorted(torch.cumsum(counts, 0), positions, right=True)
    samples = torch.empty_like(noise)
    launch(
        _samples_kernel, (triton.cdiv(n, block_n),),
        prototypes, noise, assignment, samples, n, channels,
        F64=is_f64(prototypes), BLOCK_N=block_n, BLOCK_C=block_c,
    )
    # Non-finite inputs: all NaN, as the reference (a [0-dim] flag, so no host sync).
    samples = torch.where(valid, samples, torch.full_like(samples, float("nan")))
    return samples, assignment


@tusk_triton_op("gmm_prototype_samples_backward")
def gmm_prototype_samples_backward(
    grad: torch.Tensor, prototypes: torch.Tensor, noise: torch.Tensor, assignment: torch.Tensor
) -> torch.Tensor:
    """``grad_prototypes [M, C]``: each prototype sums the gradients of its samples."""
    grad, prototypes, noise = grad.contiguous(), prototypes.contiguous(), noise.contiguous()
    count_m, channels = prototypes.shape
    order = torch.argsort(assignment, stable=True)  # samples grouped by prototype, in order
    start = torch.searchsorted(assignment[order], torch.arange(count_m + 1, device=assignment.device))
    grad_prototypes = torch.empty_like(prototypes)
    block_n, block_c = _blocks(channels)
    block_c = min(block_c, 64)
    launch(
        _samples_bwd_kernel, (count_m, triton.cdiv(channels, block_c)),
        grad, prototypes, noise, order, start, grad_prototypes, channels,
        F64=is_f64(prototypes), BLOCK_N=min(block_n, 32), BLOCK_C=block_c,
    )
    return grad_prototypes


def _setup_context(ctx, inputs, output):
    prototypes, features, noise, smoothing = inputs
    _, assignment = output
    ctx.save_for_backward(prototypes, noise, assignment)
    ctx.mark_non_differentiable(assignment)


def _backward(ctx, grad, grad_assignment):
    prototypes, noise, assignment = ctx.saved_tensors
    return gmm_prototype_samples_backward(grad, prototypes, noise, assignment), None, None, None


gmm_prototype_samples.register_autograd(_backward, setup_context=_setup_context)
