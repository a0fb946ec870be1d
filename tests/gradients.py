"""float64 ``gradcheck`` for the op tests, cheap enough for the Triton interpreter.

The full check builds the analytical Jacobian one output element at a time (a backward call per
element). Under the Triton interpreter (``("cpu", "triton")``), which runs every Triton program
in Python, that costs minutes per op. There it uses ``fast_mode``: the numerical and analytical
Jacobians are compared along random input/output directions, one backward per direction, which
still fails on any wrong gradient entry (with probability 1). Every other target, and Triton on a
GPU, gets the full element-by-element check.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def interpreted(device: str, backend: str) -> bool:
    """Whether ``(device, backend)`` runs Triton kernels under the interpreter."""
    return backend == "triton" and device == "cpu"


def gradcheck(fn: Callable, inputs: Sequence[torch.Tensor], device: str, backend: str, **kwargs) -> bool:
    """``torch.autograd.gradcheck(fn, inputs)``, in ``fast_mode`` on the Triton interpreter."""
    return torch.autograd.gradcheck(fn, tuple(inputs), fast_mode=interpreted(device, backend), **kwargs)
