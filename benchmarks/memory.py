"""Peak CPU memory of a call, from the PyTorch profiler's allocation events.

Every CPU allocation and free made during the call (outputs, temporaries and gradients; the C++
kernels' pooled buffers report theirs to the profiler too) is replayed in time order, and the
running maximum of the live bytes is reported. Memory that existed before the call (inputs,
cotangents) is not counted; freeing it during the call lowers the running total.

The allocation events are read from the profiler's event tree rather than its memory timeline
(``_memory_profile()``): the timeline's data-flow analysis asserts on some autograd graphs
(e.g. the official-style training step), the raw events do not.
"""
from __future__ import annotations

from collections.abc import Callable

from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile


def _allocations(nodes) -> list[tuple[int, int]]:
    """``(time_ns, bytes)`` of every CPU allocation (> 0) and free (< 0) under ``nodes``."""
    found, stack = [], list(nodes)
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            found.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    return found


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for _, nbytes in sorted(_allocations(prof.profiler.kineto_results.experimental_event_tree())):
        current += nbytes
        peak = max(peak, current)
    return peak
