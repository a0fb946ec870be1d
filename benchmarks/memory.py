"""Peak CPU memory of a call, from the PyTorch profiler's memory timeline.

Counts bytes of tensors created during the call (outputs and temporaries, gradients included)
minus those destroyed, and reports the running maximum; tensors that existed before the call
(inputs, cotangents) are not counted.
"""
from __future__ import annotations

from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import Action


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, key, nbytes in prof._memory_profile().timeline:
        if key is None or key[0].device.type != "cpu":
            continue
        if action == Action.CREATE:
            current += nbytes
        elif action == Action.DESTROY:
            current -= nbytes
        peak = max(peak, current)
    return peak
