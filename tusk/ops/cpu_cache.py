"""The C++ backend's cache of large CPU output buffers (see csrc/memory/cpu_buffer_pool.h).

Large gradients and dense maps returned by the ``cpp`` kernels come from a cache of previously
freed buffers of the same size, which avoids re-faulting fresh pages every training step (the
dominant cost of a large dense gradient on CPU). Idle buffers are bounded by the
``TUSK_CPU_POOL_MB`` environment variable (default 2048; 0 disables caching).
"""
from __future__ import annotations

import torch

from ._backend import cpp_available


def cpu_cache_info() -> dict[str, int]:
    """``{"in_use_bytes": ..., "cached_bytes": ...}`` of the pooled buffers (zeros without C++)."""
    if not cpp_available():
        return {"in_use_bytes": 0, "cached_bytes": 0}
    in_use, cached = torch.ops.tusk.cpu_pool_stats()
    return {"in_use_bytes": int(in_use), "cached_bytes": int(cached)}


def empty_cpu_cache() -> None:
    """Free the idle cached buffers (buffers still referenced by tensors are unaffected)."""
    if cpp_available():
        torch.ops.tusk.cpu_pool_release()
