"""The C++ backend's pooled CPU buffers: reuse, no aliasing of live tensors, profiler accounting."""
import os
import sys

import torch

from tusk.ops import cpu_cache_info, empty_cpu_cache, sample_descriptors

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))


def _large_backward():
    # A [2, 64, 128, 128] float gradient = 8 MiB: the smallest pooled size.
    features = torch.randn(2, 64, 128, 128, requires_grad=True)
    xy = torch.rand(2, 5, 2) * 127
    out = sample_descriptors(features, xy, backend="cpp")
    return torch.autograd.grad(out, features, torch.ones_like(out))[0], features, xy


def test_freed_gradient_buffer_is_reused_and_released():
    empty_cpu_cache()
    grad, _, _ = _large_backward()
    assert cpu_cache_info()["in_use_bytes"] >= grad.numel() * 4
    pointer = grad.data_ptr()
    del grad
    assert cpu_cache_info()["cached_bytes"] >= 2 * 64 * 128 * 128 * 4
    grad, _, _ = _large_backward()
    assert grad.data_ptr() == pointer  # served from the cache
    del grad
    empty_cpu_cache()
    assert cpu_cache_info()["cached_bytes"] == 0


def test_live_buffers_are_never_handed_out_twice_and_values_stay_exact():
    empty_cpu_cache()
    first, features, xy = _large_backward()
    second, _, _ = _large_backward()
    assert first.data_ptr() != second.data_ptr()
    del second
    # A reused buffer starts from stale data; the kernel must overwrite every element.
    out = sample_descriptors(features, xy, backend="cpp")
    reused = torch.autograd.grad(out, features, torch.ones_like(out))[0]
    expected = torch.autograd.grad(sample_descriptors(features, xy, backend="reference"), features,
                                   torch.ones_like(out))[0]
    torch.testing.assert_close(reused, expected)
    torch.testing.assert_close(first, expected)


def test_pooled_allocations_are_visible_to_the_profiler():
    from memory import peak_cpu_bytes

    empty_cpu_cache()
    features = torch.randn(2, 64, 128, 128, requires_grad=True)
    xy = torch.rand(2, 5, 2) * 127
    cotangent = torch.ones(2, 5, 64)

    def step():
        torch.autograd.grad(sample_descriptors(features, xy, backend="cpp"), features, cotangent)

    step()  # warm the cache: the second call must still be counted
    assert peak_cpu_bytes(step) >= features.numel() * 4
