"""Device timing for the GPU benchmarks: CUDA events on GPUs, perf_counter on CPUs.

A kernel launch returns before the kernel runs, so timing a CUDA call with a host clock measures
the launch, not the work. ``device_ms`` records an event before and after ``iters`` back-to-back
calls on the current stream and waits for the second one: the queue stays full (no per-call
host round trip) and the result is GPU time per call. ``synchronized`` wraps a call so that
pytest-benchmark's host clock also measures completed work (launch + run + sync).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synchronized(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    def call() -> None:
        fn()
        synchronize(device)

    return call


def device_ms(fn: Callable[[], object], device: torch.device, *, iters: int = 20, budget_ms: float = 200.0) -> float:
    """Mean time per call in milliseconds over back-to-back calls, after one untimed call.

    ``iters`` is lowered so one measurement stays within about ``budget_ms`` (slow references).
    """
    fn()
    synchronize(device)
    once = _elapsed_ms(fn, device, 1)
    iters = max(1, min(iters, int(budget_ms / max(once, 1e-3))))
    return _elapsed_ms(fn, device, iters) / iters


def _elapsed_ms(fn: Callable[[], object], device: torch.device, iters: int) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    begin = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - begin) * 1e3


def copy_bandwidth_gbps(device: torch.device) -> float:
    """Achievable memory bandwidth: a large ``copy_`` (bytes read + bytes written per second).

    1 GiB on a GPU (far beyond L2), 64 MiB on a CPU (beyond the caches, quick on 2 cores).
    """
    nbytes = 2**30 if device.type == "cuda" else 2**26
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = device_ms(lambda: dst.copy_(src), device, iters=20, budget_ms=500.0)
    return 2 * nbytes / (ms * 1e-3) / 1e9
