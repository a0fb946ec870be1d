"""An in-register bitonic argsort for Triton: sorts (key, index) pairs along the last axis.

``tl.sort`` sorts values only; the sliced Wasserstein kernels also need each sorted value's
original position (to put the residuals back in point order), and float64 keys do not fit
next to an index in one 64-bit word. So keys are integers (see :func:`float_key`) and the
index rides along: pairs are ordered by key, ties by index, which makes the order total and the
sort stable. Padding lanes get the largest key and indices past the real ones, so they sort last.

The network is the classic bitonic sorter on a ``[rows, 2**LOG_N]`` block: stage ``s`` merges
runs of ``2**s`` (alternating directions until the last stage), each merge a sequence of
compare-and-swap steps at halving strides. A compare-and-swap views the block as
``[pairs, 2, stride]``, moves the partner axis last, splits it (``tl.split``), keeps or swaps
each pair and joins them back (``tl.join``). Everything is inlined in one ``@triton.jit``
function without reductions: under the Triton interpreter each nested jit call (including
``tl.sum``) costs ~10 ms.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def float_key(value, F64: tl.constexpr):
    """Order-preserving integer image of float32 (int32) / float64 (int64) values.

    Positive floats keep their bit pattern; negative ones get their magnitude bits flipped, so
    signed integer order = float order (-0.0 sorts just before +0.0; NaN with the sign bit clear
    sorts after +inf). The map is its own inverse.
    """
    if F64:
        bits = value.to(tl.int64, bitcast=True)
        return bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)
    else:
        bits = value.to(tl.int32, bitcast=True)
        return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def key_to_float(key, F64: tl.constexpr):
    """Inverse of :func:`float_key`."""
    if F64:
        return (key ^ ((key >> 63) & 0x7FFFFFFFFFFFFFFF)).to(tl.float64, bitcast=True)
    else:
        return (key ^ ((key >> 31) & 0x7FFFFFFF)).to(tl.float32, bitcast=True)


@triton.jit
def argsort_pairs(key, index, LOG_N: tl.constexpr):
    """Sort ``[rows, 2**LOG_N]`` integer ``key`` ascending along the last axis, ties by ``index``
    (int32, distinct per row); returns the sorted ``(key, index)``. ``LOG_N >= 1``."""
    outer: tl.constexpr = key.numel >> LOG_N
    for stage in tl.static_range(1, LOG_N + 1):
        # Direction of each element's run at this stage: alternating below the last stage.
        # (Shapes are written inline: a constexpr cannot be re-assigned inside a static loop.)
        if stage < LOG_N:
            flip = tl.reshape(
                tl.broadcast_to(tl.arange(0, 2)[None, :, None], [outer * 2 ** (LOG_N - 1 - stage), 2, 2 ** stage]),
                key.shape)
        else:
            flip = tl.full(key.shape, 0, tl.int32)
        for step in tl.static_range(stage):
            # Partners at stride 2**(stage - step - 1): view as [pairs, 2, stride], move the
            # partner axis last and split it.
            key_l, key_r = tl.split(tl.permute(
                tl.reshape(key, [outer * 2 ** (step + LOG_N - stage), 2, 2 ** (stage - step - 1)]), (0, 2, 1)))
            index_l, index_r = tl.split(tl.permute(
                tl.reshape(index, [outer * 2 ** (step + LOG_N - stage), 2, 2 ** (stage - step - 1)]), (0, 2, 1)))
            flip_l, _ = tl.split(tl.permute(
                tl.reshape(flip, [outer * 2 ** (step + LOG_N - stage), 2, 2 ** (stage - step - 1)]), (0, 2, 1)))
            greater = (key_l > key_r) | ((key_l == key_r) & (index_l > index_r))
            swap = greater != (flip_l != 0)
            key = tl.reshape(tl.permute(
                tl.join(tl.where(swap, key_r, key_l), tl.where(swap, key_l, key_r)), (0, 2, 1)), key.shape)
            index = tl.reshape(tl.permute(
                tl.join(tl.where(swap, index_r, index_l), tl.where(swap, index_l, index_r)), (0, 2, 1)), index.shape)
    return key, index
