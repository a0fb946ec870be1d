"""The host emulator of the CUDA kernels (``kernels/emulation``) catches what a GPU would show.

``tests/test_cuda_kernels.py`` trusts the emulator to run the shipped kernels as a GPU would;
these tests prove it with probe kernels of known defects (``tests/emulator_probes.cu``): a
missing barrier or an inter-block race changes results between schedules, reads of unwritten
shared memory give NaN, deadlocks, shuffles naming exited lanes and oversized launches fail the
launch with an explanation, the AddressSanitizer build reports out-of-bounds writes, and the
half-precision conversions round exactly as the GPU's. Finally every op gives the same results
under every schedule (no hidden dependence on the order of blocks or threads).
"""
from __future__ import annotations

import ctypes
import pathlib
import subprocess
import sys

import pytest
import torch

import cuda_emulation as emulation
from tolerances import assert_close

SUCCESS, INVALID_VALUE, INVALID_CONFIGURATION, LAUNCH_FAILURE = 0, 1, 9, 719


@pytest.fixture()
def probes():
    library = emulation.controls()
    library.tusk_emulation_clear_error()
    yield library
    emulation.set_schedule(emulation.DEFAULT_SCHEDULE)
    library.tusk_emulation_clear_error()


def pointer(tensor: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(tensor.data_ptr())


def message(library) -> str:
    return library.tusk_emulation_error_message().decode()


def run_neighbour(library, threads: int, barrier: bool, schedule: int) -> torch.Tensor:
    emulation.set_schedule(schedule, seed=3)
    out = torch.zeros(threads)
    assert library.probe_neighbour(pointer(out), threads, int(barrier)) == SUCCESS
    return out


def test_missing_barrier_shows_as_schedule_dependence(probes):
    expected = (torch.arange(64) + 1) % 64
    for schedule in (emulation.ASCENDING, emulation.DESCENDING, emulation.SHUFFLED):
        assert torch.equal(run_neighbour(probes, 64, True, schedule), expected.float())
    racy = [run_neighbour(probes, 64, False, s) for s in (emulation.ASCENDING, emulation.DESCENDING)]
    # Ascending: each thread reads its neighbour's slot before the neighbour ran (0xFF bytes,
    # NaN), except the last, whose neighbour is thread 0; descending: the other way round. A race
    # cannot match the reference under both schedules.
    assert racy[0][:-1].isnan().all() and racy[0][-1] == 0
    assert torch.equal(racy[1][:-1], expected[:-1].float()) and racy[1][-1].isnan()


def test_inter_block_race_shows_as_schedule_dependence(probes):
    seen = {}
    for schedule in (emulation.ASCENDING, emulation.DESCENDING):
        emulation.set_schedule(schedule)
        published, seen[schedule] = torch.zeros(8), torch.full((8,), -1.0)
        assert probes.probe_previous_block(pointer(published), pointer(seen[schedule]), 8) == SUCCESS
    assert torch.equal(seen[emulation.ASCENDING], torch.arange(8.0))  # each block after its predecessor
    assert torch.equal(seen[emulation.DESCENDING], torch.zeros(8))  # each block before it


def test_unwritten_shared_memory_reads_as_nan(probes):
    out = torch.zeros(32)
    assert probes.probe_uninitialised(pointer(out)) == SUCCESS
    assert out.isnan().all()


def test_deadlock_fails_the_launch(probes):
    out = torch.zeros(32)
    assert probes.probe_deadlock(pointer(out)) == LAUNCH_FAILURE
    assert "deadlock" in message(probes)


def test_shuffle_naming_an_exited_lane_fails_the_launch(probes):
    out = torch.zeros(32)
    assert probes.probe_exited_lane(pointer(out)) == LAUNCH_FAILURE
    assert "exited without joining" in message(probes)


def test_warp_collectives_exchange_values(probes):
    out = torch.zeros(64)
    assert probes.probe_warp_sum(pointer(out), 64) == SUCCESS
    lanes = torch.arange(32, dtype=torch.float32)
    expected = torch.cat([lanes.sum() + 16 + torch.zeros(32), (lanes + 32).sum() + 16 + torch.zeros(32)])
    assert torch.equal(out, expected)
    # A full-warp mask in a block of 40 threads names lanes that do not exist.
    assert probes.probe_warp_sum(pointer(torch.zeros(40)), 40) == LAUNCH_FAILURE
    assert "only 8 lanes" in message(probes)


def test_launch_limits(probes):
    out = torch.zeros(2048)
    assert probes.probe_launch_bounds(pointer(out), 64) == SUCCESS
    assert probes.probe_launch_bounds(pointer(out), 128) == LAUNCH_FAILURE
    assert "__launch_bounds__(64)" in message(probes)
    assert probes.probe_launch_bounds(pointer(out), 2048) == INVALID_CONFIGURATION
    assert probes.probe_dynamic_shared(pointer(out), 256, ctypes.c_size_t(256 * 4)) == SUCCESS
    assert torch.equal(out[:256], torch.full((256,), 2.0))
    assert probes.probe_dynamic_shared(pointer(out), 256, ctypes.c_size_t(49 * 1024)) == INVALID_VALUE


def test_half_conversions_round_like_the_gpu(probes):
    special = torch.tensor([0.0, -0.0, 1.0, 65504.0, 65519.99, 65520.0, 1e-8, 2.0**-24, 2.0**-25, 3 * 2.0**-25,
                            6.1e-5, float("inf"), -float("inf"), float("nan"), 1 + 2.0**-11, 1 + 3 * 2.0**-11,
                            3.0e38, 1 + 2.0**-8, 1 + 3 * 2.0**-8])
    values = torch.cat([special, torch.randn(5000) * 10.0 ** torch.randint(-9, 6, (5000,)).float()])
    n = values.numel()
    half_bits, bfloat_bits = torch.zeros(n, dtype=torch.int16), torch.zeros(n, dtype=torch.int16)
    half_back, bfloat_back = torch.zeros(n), torch.zeros(n)
    probes.probe_to_half.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64]
    assert probes.probe_to_half(pointer(values), pointer(half_bits), pointer(bfloat_bits), pointer(half_back),
                                pointer(bfloat_back), n) == SUCCESS
    finite = ~values.isnan()
    assert torch.equal(half_bits[finite], values[finite].half().view(torch.int16))
    assert torch.equal(bfloat_bits[finite], values[finite].bfloat16().view(torch.int16))
    assert torch.equal(half_back[finite], values[finite].half().float())
    assert torch.equal(bfloat_back[finite], values[finite].bfloat16().float())
    assert half_back[~finite].isnan().all() and bfloat_back[~finite].isnan().all()


OVERFLOW_PROBE = """
import ctypes, sys
sys.path.insert(0, {tests!r})
import cuda_emulation, torch
library = cuda_emulation.controls()
# The kernel's slots are __shared__ float[64] and each thread writes out[threadIdx.x]: 64 threads
# on 32 floats write past the tensor; 128 threads on 128 floats write past the shared array.
out = torch.zeros(128 if {shared} else 32)
print("probing", flush=True)
library.probe_neighbour(ctypes.c_void_p(out.data_ptr()), 128 if {shared} else 64, 1)
print("not detected", flush=True)
"""


@pytest.mark.parametrize("memory, report", [("global", "heap-buffer-overflow"), ("shared", "use-after-poison")])
def test_address_sanitizer_build_reports_out_of_bounds_writes(memory, report):
    """The AddressSanitizer pass of .ci/run can fail: an overflow aborts the process with a report."""
    tests = str(pathlib.Path(__file__).resolve().parent)
    code = OVERFLOW_PROBE.format(tests=tests, shared=memory == "shared")
    result = subprocess.run([sys.executable, "-c", code], env=emulation.sanitizer_environment(), capture_output=True,
                            text=True, timeout=900)
    assert "probing" in result.stdout, result.stderr[-3000:]
    assert result.returncode != 0 and "not detected" not in result.stdout
    assert f"AddressSanitizer: {report}" in result.stderr, result.stderr[-3000:]


def small_op_runs(ops):
    """One small call of every forward and backward op (several blocks, warps and barriers)."""
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(2, 21, 26, generator=g)
    features = torch.randn(2, 6, 11, 13, generator=g)
    xy = torch.rand(2, 40, 2, generator=g) * torch.tensor([12.0, 10.0])
    desc = torch.randn(2, 40, 5, generator=g)
    weights = torch.rand(2, 40, generator=g)
    rgb, logits = torch.randn(2, 4, 3, 7, 9, generator=g), torch.randn(2, 4, 1, 7, 9, generator=g)
    x, y = torch.randn(3, 70, 6, generator=g), torch.randn(3, 70, 6, generator=g)
    theta = torch.nn.functional.normalize(torch.randn(6, 9, generator=g), dim=0)
    protos = torch.nn.functional.normalize(torch.randn(7, 6, generator=g), dim=-1)
    noise = 0.02 * torch.randn(70, 6, generator=g)
    out = {}
    d_xy, d_score, _, index = out["detect"] = ops.detect_keypoints(scores, 60, 3, 5, 0.2)
    out["detect_backward"] = ops.detect_keypoints_backward(torch.ones_like(d_xy), torch.ones_like(d_score), scores,
                                                           d_xy, index, 5, 0.2)
    out["sample"] = ops.sample_descriptors(features, xy, "zeros")
    out["sample_backward"] = ops.sample_descriptors_backward(torch.ones(2, 40, 6), features, xy, "zeros", [True, True])
    for reduce, shape in (("sum", (2, 5, 11, 13)), ("none", (2, 40, 5, 11, 13))):
        out[f"splat_{reduce}"] = ops.splat_gaussians(xy, desc, weights, 11, 13, 0.5, 2, True, reduce)
        out[f"splat_{reduce}_backward"] = ops.splat_gaussians_backward(torch.ones(shape), xy, desc, weights, 11, 13,
                                                                       0.5, 2, True, reduce, [True, True, True])
    out["composite"] = ops.alpha_composite(rgb, logits)
    out["composite_backward"] = ops.alpha_composite_backward(torch.ones(2, 3, 7, 9), torch.ones(2, 4, 1, 7, 9),
                                                             rgb, logits, [True, True])
    distance, xr, yr = out["sliced"] = ops.sliced_wasserstein(x, y, theta)
    out["sliced_backward"] = ops.sliced_wasserstein_backward(torch.ones(3), x, y, theta, xr, yr, [True, True, True])
    samples, assignment = out["gmm"] = ops.gmm_prototype_samples(protos, x[0], noise, 0.01)
    out["gmm_backward"] = ops.gmm_prototype_samples_backward(torch.ones(70, 6), protos, noise, assignment)
    return out


def test_every_op_is_independent_of_the_thread_schedule(probes):
    ops = emulation.ops()
    launches = emulation.launches()
    runs = []
    for schedule in (emulation.ASCENDING, emulation.DESCENDING, emulation.SHUFFLED):
        emulation.set_schedule(schedule, seed=11)
        runs.append(small_op_runs(ops))
    assert emulation.launches() - launches >= 3 * 20  # every op launched its kernels each time
    for name, first in runs[0].items():
        for other in runs[1:]:
            for a, b in zip(first, other[name]):
                # Atomics accumulate in schedule order: equal up to float rounding, not bitwise.
                if a.is_floating_point():
                    assert_close(b, a, msg=name)
                else:
                    assert torch.equal(a, b), name
