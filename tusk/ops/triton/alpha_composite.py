"""Triton ``alpha_composite``: ``alpha = softmax_k(alpha_logits)``, ``image = sum_k alpha_k rgb_k``.

Kernels (pixel-parallel; the K loop is sequential inside a program, so nothing is atomic):

- forward: one program per block of ``BLOCK_P`` pixels x ``BLOCK_C`` channels of one image.
  One pass over K with an online softmax (running max ``m``, running sum ``s`` and running
  weighted colour, rescaled by ``exp(m_old - m_new)``) gives the image; the programs of the first
  channel block then write ``alpha`` in a second, logits-only pass.
- backward: one program per pixel block, all channels. Pass 1 recomputes ``m, s`` (the softmax
  is never saved); pass 2 forms ``u_k = sum_c g_c rgb_kc + grad_alpha_k``, writes ``grad_rgb_k =
  alpha_k g`` and accumulates ``sum_k alpha_k u_k``; pass 3 writes ``grad_logits_k = alpha_k (u_k -
  sum_j alpha_j u_j)`` (re-reading ``rgb`` rather than storing ``u``).

``-inf`` logits (masked keypoints) weigh exactly 0; a pixel whose logits are all ``-inf`` gives
NaN, as ``torch.softmax``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import SUM, empty_grad, is_f64, launch, next_pow2, tusk_triton_op


@triton.jit
def _softmax_stats(logits_ptr, pixel, p_mask, K, hw, ACC: tl.constexpr, BLOCK_P: tl.constexpr):
    """Running max and sum of ``exp(l - max)`` over the K logits of each pixel."""
    m = tl.full((BLOCK_P,), float("-inf"), ACC)
    s = tl.zeros((BLOCK_P,), dtype=ACC)
    for k in range(0, K):
        logit = tl.load(logits_ptr + pixel, mask=p_mask, other=0.0).to(ACC)
        m_new = tl.maximum(m, logit, propagate_nan=tl.PropagateNan.ALL)
        # All -inf so far: nothing accumulated yet. NaN counts as live, so it propagates.
        live = m_new != float("-inf")
        s = s * tl.where(live, tl.exp(m - m_new), 1.0) + tl.where(live, tl.exp(logit - m_new), 0.0)
        m = m_new
        logits_ptr += hw
    return m, s


@triton.jit
def _alpha_fwd_kernel(
    rgb_ptr, logits_ptr, image_ptr, alpha_ptr, K, C, hw, rgb_k_stride,
    F64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    b = tl.program_id(2).to(tl.int64)
    pixel = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = pixel < hw
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (c < C)[:, None] & p_mask[None, :]
    logit_ptr = logits_ptr + b * K * hw
    rgb_at = rgb_ptr + b * K * C * hw + c[:, None].to(tl.int64) * hw + pixel[None, :]
    m = tl.full((BLOCK_P,), float("-inf"), ACC)
    s = tl.zeros((BLOCK_P,), dtype=ACC)
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC)
    for k in range(0, K):
        logit = tl.load(logit_ptr + pixel, mask=p_mask, other=0.0).to(ACC)
        m_new = tl.maximum(m, logit, propagate_nan=tl.PropagateNan.ALL)
        live = m_new != float("-inf")
        rescale = tl.where(live, tl.exp(m - m_new), 1.0)
        e = tl.where(live, tl.exp(logit - m_new), 0.0)
        s = s * rescale + e
        acc = acc * rescale[None, :] + e[None, :] * tl.load(rgb_at, mask=mask, other=0.0).to(ACC)
        m = m_new
        logit_ptr += hw
        rgb_at += rgb_k_stride  # C*H*W, passed from the host (64-bit when large)
    out = image_ptr + (b * C + c[:, None]) * hw + pixel[None, :]
    tl.store(out, (acc / s[None, :]).to(image_ptr.dtype.element_ty), mask=mask)
    if tl.program_id(1) == 0:
        logit_ptr = logits_ptr + b * K * hw
        alpha_at = alpha_ptr + b * K * hw + pixel
        for k in range(0, K):
            logit = tl.load(logit_ptr + pixel, mask=p_mask, other=0.0).to(ACC)
            e = tl.where(m != float("-inf"), tl.exp(logit - m), 0.0)
            tl.store(alpha_at, (e / s).to(alpha_ptr.dtype.element_ty), mask=p_mask)
            logit_ptr += hw
            alpha_at += hw


@triton.jit
def _alpha_and_u(
    grad_image_ptr, grad_alpha_ptr, rgb_ptr, logits_ptr, grad_rgb_ptr, b, k, K, C, hw, pixel, p_mask,
    m, s, live, STORE_GRAD_RGB: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``alpha_k`` and ``u_k = <grad_image, rgb_k>_C + grad_alpha_k`` of a pixel block; with
    ``STORE_GRAD_RGB`` also writes ``grad_rgb_k = alpha_k grad_image`` on the way."""
    at = (b * K + k) * hw + pixel
    alpha = tl.where(live, tl.exp(tl.load(logits_ptr + at, mask=p_mask, other=0.0).to(ACC) - m), 0.0) / s
    u = tl.load(grad_alpha_ptr + at, mask=p_mask, other=0.0).to(ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = (c < C)[:, None] & p_mask[None, :]
        g = tl.load(grad_image_ptr + (b * C + c[:, None]) * hw + pixel[None, :], mask=mask, other=0.0).to(ACC)
        rgb_at = ((b * K + k) * C + c[:, None]) * hw + pixel[None, :]
        u += tl.reduce(g * tl.load(rgb_ptr + rgb_at, mask=mask, other=0.0).to(ACC), 0, SUM)
        if STORE_GRAD_RGB:
            tl.store(grad_rgb_ptr + rgb_at, (alpha[None, :] * g).to(grad_rgb_ptr.dtype.element_ty), mask=mask)
    return alpha, u


@triton.jit
def _alpha_bwd_kernel(
    grad_image_ptr, grad_alpha_ptr, rgb_ptr, logits_ptr, grad_rgb_ptr, grad_logits_ptr, K, C, hw,
    NEED_RGB: tl.constexpr, NEED_LOGITS: tl.constexpr, F64: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    b = tl.program_id(1).to(tl.int64)
    pixel = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = pixel < hw
    m, s = _softmax_stats(logits_ptr + b * K * hw, pixel, p_mask, K, hw, ACC, BLOCK_P)
    live = m != float("-inf")
    # Pass 2: u_k, grad_rgb_k and sum_k alpha_k u_k.
    u_mean = tl.zeros((BLOCK_P,), dtype=ACC)
    for k in range(0, K):
        alpha, u = _alpha_and_u(grad_image_ptr, grad_alpha_ptr, rgb_ptr, logits_ptr, grad_rgb_ptr, b, k, K, C, hw,
                                pixel, p_mask, m, s, live, NEED_RGB, ACC, BLOCK_C)
        u_mean += alpha * u
    # Pass 3: grad_logits_k = alpha_k (u_k - sum_j alpha_j u_j), recomputing u_k (not stored).
    if NEED_LOGITS:
        for k in range(0, K):
            alpha, u = _alpha_and_u(grad_image_ptr, grad_alpha_ptr, rgb_ptr, logits_ptr, grad_rgb_ptr, b, k, K, C,
                                    hw, pixel, p_mask, m, s, live, False, ACC, BLOCK_C)
            at = (b * K + k) * hw + pixel
            tl.store(grad_logits_ptr + at, (alpha * (u - u_mean)).to(grad_logits_ptr.dtype.element_ty), mask=p_mask)


def _blocks(channels: int, pixels: int) -> tuple[int, int]:
    """``(BLOCK_C, BLOCK_P)``: up to 8 channels x 256 pixels per program (RGB fits one block)."""
    block_c = min(8, next_pow2(channels))
    return block_c, min(2048 // block_c, next_pow2(pixels))


@tusk_triton_op("alpha_composite")
def alpha_composite(rgb: torch.Tensor, alpha_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, K, C, H, W]``, ``[B, K, 1, H, W]`` -> ``(image [B, C, H, W], alpha [B, K, 1, H, W])``."""
    rgb, alpha_logits = rgb.contiguous(), alpha_logits.contiguous()
    batch, count, channels, height, width = rgb.shape
    hw = height * width
    image = rgb.new_empty((batch, channels, height, width))
    alpha = alpha_logits.new_empty(alpha_logits.shape)
    block_c, block_p = _blocks(channels, hw)
    launch(
        # At least one channel program: it also writes ``alpha``, which exists even when C == 0.
        _alpha_fwd_kernel, (triton.cdiv(hw, block_p), max(1, triton.cdiv(channels, block_c)), batch),
        rgb, alpha_logits, image, alpha, count, channels, hw, channels * hw,
        F64=is_f64(rgb), BLOCK_P=block_p, BLOCK_C=block_c,
    )
    return image, alpha


@tusk_triton_op("alpha_composite_backward")
def alpha_composite_backward(
    grad_image: torch.Tensor, grad_alpha: torch.Tensor, rgb: torch.Tensor, alpha_logits: torch.Tensor,
    output_mask: list[bool],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_rgb, grad_alpha_logits)``; an unrequested one is empty."""
    grad_image, grad_alpha = grad_image.contiguous(), grad_alpha.contiguous()
    rgb, alpha_logits = rgb.contiguous(), alpha_logits.contiguous()
    batch, count, channels, height, width = rgb.shape
    hw = height * width
    need_rgb, need_logits = bool(output_mask[0]), bool(output_mask[1])
    grad_rgb = torch.empty_like(rgb) if need_rgb else empty_grad(rgb)
    grad_logits = torch.empty_like(alpha_logits) if need_logits else empty_grad(alpha_logits)
    if need_rgb or need_logits:
        block_c, block_p = _blocks(channels, hw)
        block_p = min(block_p, 256)
        launch(
            _alpha_bwd_kernel, (triton.cdiv(hw, block_p), batch),
            # An output not asked for is never written; its slot gets a real tensor, not an empty one.
            grad_image, grad_alpha, rgb, alpha_logits, grad_rgb if need_rgb else rgb,
            grad_logits if need_logits else alpha_logits, count, channels, hw,
            NEED_RGB=need_rgb, NEED_LOGITS=need_logits, F64=is_f64(rgb), BLOCK_P=block_p, BLOCK_C=block_c,
        )
    return grad_rgb, grad_logits


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_image, grad_alpha):
    rgb, alpha_logits = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1]]
    grad_rgb, grad_logits = alpha_composite_backward(grad_image, grad_alpha, rgb, alpha_logits, mask)
    return (grad_rgb if mask[0] else None), (grad_logits if mask[1] else None)


alpha_composite.register_autograd(_backward, setup_context=_setup_context)
