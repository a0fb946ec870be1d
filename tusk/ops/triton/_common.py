"""Plumbing shared by the Triton ops: registration, kernel launches, dtype and scalar helpers.

Every op is a ``torch.library.triton_op`` in the ``tusk_triton`` namespace whose kernels are
launched through :func:`launch` (``torch.library.wrap_triton``), so ``torch.compile`` sees the
Triton kernels themselves on GPUs.

Under the Triton interpreter (``TRITON_INTERPRET=1``, CPU tensors) two things differ, both handled
here: ``wrap_triton`` hands back the raw interpreted kernel, which cannot run on the fake tensors
used for shape propagation (so :func:`launch` skips the launch there: a fake run only needs the
outputs' metadata), and the functional decomposition ``triton_op`` registers for
``torch.compile`` would trace those skipped launches into an empty graph (so
:func:`tusk_triton_op` keeps the op opaque instead: compiled graphs call the op, which runs the
interpreter eagerly).
"""
from __future__ import annotations

import struct
from collections.abc import Callable

import torch
import triton
import triton.language as tl
from torch._subclasses.fake_tensor import is_fake
from torch._subclasses.functional_tensor import FunctionalTensorMode

try:
    from torch.library import triton_op, wrap_triton
except ImportError as err:  # torch < 2.6
    raise ImportError(f"the Triton backend needs torch >= 2.6 (torch.library.triton_op): {err}") from err

NAMESPACE = "tusk_triton"


@triton.jit
def _probe_kernel():
    pass


#: True when ``@triton.jit`` produced interpreted kernels (TRITON_INTERPRET=1 before import).
INTERPRETED: bool = type(_probe_kernel).__name__ == "InterpretedFunction"


def _keep_opaque(mode, op, types, args, kwargs):
    return mode.__torch_dispatch__(op, types, args, kwargs)


def tusk_triton_op(name: str) -> Callable[[Callable], object]:
    """Decorator: register ``fn`` as the triton_op ``tusk_triton::<name>`` (no mutated args)."""

    def register(fn: Callable) -> object:
        op = triton_op(f"{NAMESPACE}::{name}", fn, mutates_args=())
        if INTERPRETED:
            op.register_torch_dispatch(FunctionalTensorMode, _keep_opaque)
        return op

    return register


def launch(kernel, grid: tuple[int, ...], *args, **kwargs) -> None:
    """``wrap_triton(kernel)[grid](*args, **kwargs)``; nothing to do for an empty grid."""
    if any(int(g) == 0 for g in grid):
        return
    if INTERPRETED and any(isinstance(a, torch.Tensor) and is_fake(a) for a in (*args, *kwargs.values())):
        return  # shape propagation under the interpreter: outputs are already allocated
    wrap_triton(kernel)[grid](*args, **kwargs)


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


#: Combine functions for ``tl.reduce(x, axis, SUM)`` / ``tl.reduce(x, axis, MAX)``. Compiled, that
#: is exactly ``tl.sum`` / ``tl.max``. Under the interpreter ``tl.sum`` is a nested jit call that
#: re-patches ``triton.language`` (~10 ms per call, which dominated the CPU test time), while
#: ``tl.reduce`` with triton's own combine functions maps straight to numpy.
SUM = getattr(tl.standard, "_sum_combine", _add)
MAX = getattr(tl.standard, "_elementwise_max", _max)


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 inputs, float32 otherwise (half included)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def is_f64(tensor: torch.Tensor) -> bool:
    return tensor.dtype == torch.float64


def scalar_bits(value: float) -> int:
    """The bit pattern of ``value`` as a float64, passed to kernels as an int.

    Triton passes Python floats as float32, which would put e.g. a variance of 0.05 off by ~1e-9
    relative (the float64 tolerance) and overflow for large values. Kernels decode it inline
    (a nested ``@triton.jit`` helper costs ~10 ms per call under the interpreter) with
    ``bits.to(tl.int64).to(tl.float64, bitcast=True).to(ACC)``.
    """
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def next_pow2(n: int, minimum: int = 1) -> int:
    """Smallest power of two >= max(n, minimum) (Triton blocks are powers of two)."""
    return max(triton.next_power_of_2(max(int(n), 1)), minimum)


def empty_grad(like: torch.Tensor) -> torch.Tensor:
    """The placeholder for a gradient that ``output_mask`` did not ask for."""
    return like.new_empty((0,))
