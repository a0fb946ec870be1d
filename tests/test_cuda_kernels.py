"""The CUDA kernels themselves, through the raw ops, against the references.

Complements the per-op test files (which run the public ops on the ``cuda`` target): half
precision, the largest paper/SuperPoint shapes, tiny inputs, the deterministic backward paths,
bitwise-reproducible forwards, side streams, and the promise that no op synchronises with the
host.

Every test but the one of side streams runs on two platforms (the ``gpu`` fixture):

- ``cuda``: ``torch.ops.tusk`` on a CUDA GPU (skipped without one; with a GPU, a missing CUDA
  build fails, never skips);
- ``emulated``: the same kernel sources and glue, compiled for the host emulator
  (``tests/cuda_emulation.py``), as ``torch.ops.tusk_cuda_emulation`` on CPU tensors. Every
  thread runs as written, so barriers, shuffles, shared memory and launch geometry are checked
  without a GPU, on the same cases (the emulator is about 10^4 times slower than the chip, so the
  largest case, SuperPoint's 8 x 480 x 640 detection, takes seconds).
"""
from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

import cuda_emulation
from tolerances import assert_close
from tusk.ops import _backend, reference
from tusk.ops.reference.detect_keypoints import select_peaks

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]


class NoSync:
    """Fails if the enclosed code makes PyTorch synchronise the host with the GPU."""

    def __enter__(self):
        torch.cuda.synchronize()
        self.previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode(self.previous)


@dataclasses.dataclass
class Platform:
    device: str
    ops: object
    emulated: bool

    def no_sync(self):
        return contextlib.nullcontext() if self.emulated else NoSync()


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                       reason="needs a CUDA GPU")),
                        "emulated"])
def gpu(request):
    if request.param == "cuda":
        assert _backend.cuda_available(), "tusk._C was built without its CUDA kernels (see `tusk info`)"
        return Platform("cuda", torch.ops.tusk, emulated=False)
    return Platform("cpu", cuda_emulation.ops(), emulated=True)


def ref_dtype(dtype):
    """References run in float32 on the rounded inputs for half types, else in the same dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def leaf(tensor, dtype):
    """(kernel input in dtype, reference input: the same values in ref_dtype, requiring grad)."""
    value = tensor.to(dtype)
    return value, value.detach().to(ref_dtype(dtype)).requires_grad_(True)


def cotangent_like(reference_output, dtype):
    """A random cotangent for ``reference_output`` whose values ``dtype`` represents exactly, so
    the kernel (given it in ``dtype``) and the reference see the same numbers."""
    return torch.randn_like(reference_output).to(dtype).to(reference_output.dtype)


# ---- detect_keypoints ---------------------------------------------------------------------------

DETECT_SHAPES = [(2, 7, 9, 5, 3, 3), (1, 1, 1, 1, 3, 3), (3, 1, 13, 13, 5, 3), (2, 33, 45, 1485, 3, 5),
                 (2, 80, 80, 9, 13, 13), (1, 120, 97, 300, 5, 7), (2, 37, 29, 40, 13, 13),
                 (1, 50, 101, 700, 3, 3),  # 5050 pixels: three sort tiles, two merge rounds (one odd list)
                 (2, 32, 64, 100, 3, 3), (1, 2049, 1, 7, 3, 3)]  # one full sort tile; a one-pixel second tile


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_detect_keypoints(gpu, dtype):
    for b, h, w, k, nms, window in DETECT_SHAPES:
        scores, ref_scores = leaf(torch.rand(b, h, w, device=gpu.device), dtype)
        with gpu.no_sync():
            xy, score, is_peak, index = gpu.ops.detect_keypoints(scores, k, nms, window, 0.2)
        expected_index, expected_peak = select_peaks(ref_scores.detach(), k, nms)
        assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak), (b, h, w, k)
        ref_xy, ref_score, _ = reference.detect_keypoints(ref_scores, k, nms_size=nms, window=window, temperature=0.2)
        assert_close(xy, ref_xy, msg=f"xy {(b, h, w, k)}")
        assert_close(score, ref_score, msg=f"score {(b, h, w, k)}")
        grad_xy, grad_score = cotangent_like(ref_xy, dtype), cotangent_like(ref_score, dtype)
        expected = torch.autograd.grad((ref_xy, ref_score), ref_scores, (grad_xy, grad_score))[0]
        with gpu.no_sync():
            actual = gpu.ops.detect_keypoints_backward(grad_xy.to(dtype), grad_score.to(dtype), scores, xy, index, window, 0.2)
        assert_close(actual, expected, scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad {(b, h, w, k)}")


#: (b, h, w, k, nms_size, window, strict, border, image_size or None, fill): the peak options.
DETECT_OPTION_CASES = [
    (2, 11, 13, 6, 5, 5, True, 2, None, True),  # kornia's nms2d rule
    (3, 9, 10, 5, 3, 5, False, 1, [[7, 9], [10, 4], [2, 20]], True),  # the last image keeps no pixel
    (2, 12, 9, 40, 3, 3, True, 0, [[8, 12], [-4, 99]], True),  # fewer peaks than K
    (1, 1, 1, 1, 3, 3, True, 0, None, True),  # alone in its window: a strict peak
    (1, 50, 101, 300, 5, 3, True, 2, [[90, 41]], True),  # three sort tiles
    (2, 40, 60, 900, 3, 1, True, 1, None, False),  # fill=False: pixel 0 past the peaks; two tiles
    (2, 12, 9, 100, 3, 3, False, 0, [[8, 12], [0, 5]], False),  # one tile, an image with no peak
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_detect_keypoints_peak_options(gpu, dtype):
    for i, (b, h, w, k, nms, window, strict, border, sizes, fill) in enumerate(DETECT_OPTION_CASES):
        values = torch.rand(b, h, w, device=gpu.device)
        if i % 2:
            values = (values * 8).floor() / 8  # ties, which strict maxima exclude
        scores, ref_scores = leaf(values, dtype)
        image_size = None if sizes is None else torch.tensor(sizes, device=gpu.device)
        with gpu.no_sync():
            xy, score, is_peak, index = gpu.ops.detect_keypoints(scores, k, nms, window, 0.2, strict, border, image_size,
                                                                 fill)
        expected_index, expected_peak = select_peaks(ref_scores.detach(), k, nms, strict=strict, border=border,
                                                     image_size=image_size, fill=fill)
        case = (b, h, w, k, strict, border, sizes, fill)
        assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak), case
        ref_xy, ref_score, _ = reference.detect_keypoints(ref_scores, k, nms_size=nms, window=window, temperature=0.2,
                                                          strict=strict, border=border, image_size=image_size,
                                                          fill=fill)
        assert_close(xy, ref_xy, msg=f"xy {case}")
        assert_close(score, ref_score, msg=f"score {case}")


def test_detect_keypoints_superpoint_scale_and_ties(gpu):
    scores = torch.rand(8, 480, 640, device=gpu.device)
    scores[:, :, ::7] = 0.5  # ties across tiles
    xy, score, is_peak, index = gpu.ops.detect_keypoints(scores, 2048, 5, 5, 0.2)
    expected_index, expected_peak = select_peaks(scores, 2048, 5)
    assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)
    flat = torch.rand(1, 48, 64, device=gpu.device).round()  # plateaus: fewer peaks than K
    _, _, is_peak, index = gpu.ops.detect_keypoints(flat, 48 * 64, 3, 3, 0.2)
    expected_index, expected_peak = select_peaks(flat, 48 * 64, 3)
    assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)
    nan = torch.rand(2, 30, 40, device=gpu.device)
    nan[0, 3, 4] = nan[1, 29, 39] = float("nan")
    _, _, is_peak, index = gpu.ops.detect_keypoints(nan, 100, 3, 3, 0.2)
    expected_index, expected_peak = select_peaks(nan, 100, 3)
    assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)


# ---- sample_descriptors -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_sample_descriptors(gpu, dtype, padding):
    for b, c, h, w, k in [(2, 5, 7, 9, 11), (1, 1, 1, 1, 1), (2, 128, 60, 80, 2048), (3, 33, 5, 4, 20)]:
        features, ref_features = leaf(torch.randn(b, c, h, w, device=gpu.device), dtype)
        xy, ref_xy = leaf(torch.rand(b, k, 2, device=gpu.device) * torch.tensor([w + 2.0, h + 2.0], device=gpu.device) - 1.0, dtype)
        with gpu.no_sync():
            out = gpu.ops.sample_descriptors(features, xy, padding)
        expected = reference.sample_descriptors(ref_features, ref_xy, padding=padding)
        assert_close(out, expected)
        cotangent = cotangent_like(expected, dtype)
        grads = torch.autograd.grad(expected, (ref_features, ref_xy), cotangent)
        with gpu.no_sync():
            grad_features, grad_xy = gpu.ops.sample_descriptors_backward(cotangent.to(dtype), features, xy, padding, [True, True])
        assert_close(grad_features, grads[0], msg=f"grad features {(b, c, h, w, k)}")
        assert_close(grad_xy, grads[1], scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad xy {(b, c, h, w, k)}")


# ---- splat_gaussians ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduce", ["sum", "none"])
def test_splat_gaussians(gpu, dtype, reduce):
    cases = [(2, 7, 3, 6, 9, 0.05, 1), (1, 1, 1, 1, 1, 0.05, 1), (2, 600, 4, 40, 50, 0.5, 3),
             (2, 150, 4, 23, 31, 0.5, 3), (1, 5, 2, 9, 7, 4.0, 8),
             (1, 700, 3, 8, 32, 0.5, 2)]  # one 32 x 8 tile, 700 keypoints: the tile's list fills twice
    if reduce == "sum":
        cases.append((2, 2048, 128, 120, 160, 0.05, 1))
    for b, k, c, h, w, variance, radius in cases:
        for normalize in (True, False):
            xy, ref_xy = leaf(torch.rand(b, k, 2, device=gpu.device) * torch.tensor([w + 1.0, h + 1.0], device=gpu.device) - 0.5, dtype)
            desc, ref_desc = leaf(torch.randn(b, k, c, device=gpu.device), dtype)
            weights, ref_weights = leaf(torch.rand(b, k, device=gpu.device), dtype)
            with gpu.no_sync():
                out = gpu.ops.splat_gaussians(xy, desc, weights, h, w, variance, radius, normalize, reduce)
            expected = reference.splat_gaussians(ref_xy, ref_desc, ref_weights, (h, w), variance=variance,
                                                 radius=radius, normalize=normalize, reduce=reduce)
            assert_close(out, expected, msg=f"forward {(b, k, c, h, w)} normalize={normalize}")
            cotangent = cotangent_like(expected, dtype)
            grads = torch.autograd.grad(expected, (ref_xy, ref_desc, ref_weights), cotangent)
            with gpu.no_sync():
                actual = gpu.ops.splat_gaussians_backward(cotangent.to(dtype), xy, desc, weights, h, w, variance, radius,
                                                          normalize, reduce, [True, True, True])
            for name, a, e in zip(("xy", "descriptors", "weights"), actual, grads):
                assert_close(a, e, scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad {name} {(b, k, c, h, w)}")


def test_splat_gaussians_clipped_window_xy_gradient(gpu):
    """Normalised windows clipped to one column/row: the exact xy gradient along it is 0; the
    float32 kernel must match the float64 gradient to float32 rounding of the gradients' scale."""
    from test_splat_gaussians import clipped_window_case

    xy, desc, weights, cotangent = clipped_window_case(gpu.device)
    grad_xy = gpu.ops.splat_gaussians_backward(cotangent, xy, desc, weights, 12, 16, 0.05, 1, True, "sum",
                                               [True, False, False])[0]
    ref_xy = xy.double().requires_grad_(True)
    out = reference.splat_gaussians(ref_xy, desc.double(), weights.double(), (12, 16), variance=0.05, radius=1)
    exact = torch.autograd.grad(out, ref_xy, cotangent.double())[0]
    torch.testing.assert_close(grad_xy.double(), exact, rtol=0, atol=2e-6 * float(exact.abs().max()))


# ---- alpha_composite ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_alpha_composite(gpu, dtype):
    for b, k, c, h, w in [(2, 3, 3, 5, 7), (1, 1, 1, 1, 1), (2, 9, 3, 80, 80), (1, 6, 20, 9, 11), (2, 9, 3, 17, 19)]:
        rgb, ref_rgb = leaf(torch.randn(b, k, c, h, w, device=gpu.device), dtype)
        logits, ref_logits = leaf(3 * torch.randn(b, k, 1, h, w, device=gpu.device), dtype)
        with gpu.no_sync():
            image, alpha = gpu.ops.alpha_composite(rgb, logits)
        ref_image, ref_alpha = reference.alpha_composite(ref_rgb, ref_logits)
        assert_close(image, ref_image)
        assert_close(alpha, ref_alpha)
        grad_image, grad_alpha = cotangent_like(ref_image, dtype), cotangent_like(ref_alpha, dtype)
        grads = torch.autograd.grad((ref_image, ref_alpha), (ref_rgb, ref_logits), (grad_image, grad_alpha))
        with gpu.no_sync():
            actual = gpu.ops.alpha_composite_backward(grad_image.to(dtype), grad_alpha.to(dtype), rgb, logits, [True, True])
        assert_close(actual[0], grads[0])
        assert_close(actual[1], grads[1], scale=4.0 if dtype == torch.float32 else 1.0)


# ---- sliced_wasserstein -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sliced_wasserstein(gpu, dtype):
    # N = 1024: the largest one-block sort; above it the merge path (1025: one tile, no merge round;
    # 3000 and 4500: two and three tiles)
    for groups, n, c, p in [(3, 37, 4, 5), (1, 1, 2, 1), (2, 300, 32, 100), (1, 3000, 16, 20),
                            (1, 4500, 3, 2), (2, 1024, 3, 2), (1, 1025, 3, 2)]:
        x, ref_x = leaf(torch.randn(groups, n, c, device=gpu.device), dtype)
        y, ref_y = leaf(torch.randn(groups, n, c, device=gpu.device), dtype)
        theta, ref_theta = leaf(torch.nn.functional.normalize(torch.randn(c, p, device=gpu.device), dim=0), dtype)
        with gpu.no_sync():
            distance, xr, yr = gpu.ops.sliced_wasserstein(x, y, theta)
        expected = reference.sliced_wasserstein(ref_x, ref_y, ref_theta)
        assert_close(distance, expected, scale=4.0, msg=f"distance {(groups, n, c, p)}")
        grad = cotangent_like(expected, dtype)
        grads = torch.autograd.grad(expected, (ref_x, ref_y, ref_theta), grad)
        with gpu.no_sync():
            actual = gpu.ops.sliced_wasserstein_backward(grad.to(dtype), x, y, theta, xr, yr, [True, True, True])
        for name, a, e in zip(("x", "y", "projections"), actual, grads):
            assert_close(a, e, scale=4.0, msg=f"grad {name} {(groups, n, c, p)}")


# ---- gmm_prototype_samples ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gmm_prototype_samples(gpu, dtype):
    for m, n, c in [(10, 288, 32), (1, 5, 3), (114, 114, 32), (64, 4096, 128)]:
        protos, ref_protos = leaf(torch.nn.functional.normalize(torch.randn(m, c, device=gpu.device), dim=-1), dtype)
        features, ref_features = leaf(torch.randn(n, c, device=gpu.device), dtype)
        noise, ref_noise = leaf(0.02 * torch.randn(n, c, device=gpu.device), dtype)
        with gpu.no_sync():
            samples, assignment = gpu.ops.gmm_prototype_samples(protos, features, noise, 0.01)
        expected = reference.gmm_prototype_samples(ref_protos, ref_features.detach(), ref_noise.detach(), smoothing=0.01)
        assert_close(samples, expected, msg=f"samples {(m, n, c)}")
        assert (assignment[1:] >= assignment[:-1]).all()
        grad = cotangent_like(expected, dtype)
        expected_grad = torch.autograd.grad(expected, ref_protos, grad)[0]
        with gpu.no_sync():
            actual = gpu.ops.gmm_prototype_samples_backward(grad.to(dtype), protos, noise, assignment)
        assert_close(actual, expected_grad, scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad {(m, n, c)}")


# ---- empty and degenerate sizes ------------------------------------------------------------------

def empty_size_calls():
    """(name, op, args) with a zero-sized batch, K, N or C (nothing to launch: no kernel may be
    launched with an empty grid, which CUDA rejects), or sizes the glue must refuse. CPU tensors."""
    r = torch.rand
    return [
        ("detect B=0", "detect_keypoints", (r(0, 5, 6), 3, 3, 3, 0.2)),
        ("sample K=0", "sample_descriptors", (r(2, 3, 5, 6), r(2, 0, 2), "zeros")),
        ("sample C=0", "sample_descriptors", (r(2, 0, 5, 6), r(2, 4, 2), "zeros")),
        ("sample B=0", "sample_descriptors", (r(0, 3, 5, 6), r(0, 4, 2), "border")),
        ("sample bwd C=0", "sample_descriptors_backward", (r(2, 4, 0), r(2, 0, 5, 6), r(2, 4, 2), "zeros", [True, True])),
        ("sample bwd K=0", "sample_descriptors_backward", (r(2, 0, 3), r(2, 3, 5, 6), r(2, 0, 2), "zeros", [True, True])),
        ("splat K=0", "splat_gaussians", (r(2, 0, 2), r(2, 0, 3), None, 5, 6, 0.5, 2, True, "sum")),
        ("splat K=0 none", "splat_gaussians", (r(2, 0, 2), r(2, 0, 3), None, 5, 6, 0.5, 2, True, "none")),
        ("splat C=0", "splat_gaussians", (r(2, 4, 2), r(2, 4, 0), r(2, 4), 5, 6, 0.5, 2, False, "sum")),
        ("splat bwd C=0", "splat_gaussians_backward",
         (r(2, 0, 5, 6), r(2, 4, 2), r(2, 4, 0), r(2, 4), 5, 6, 0.5, 2, True, "sum", [True, True, True])),
        ("splat bwd K=0", "splat_gaussians_backward",
         (r(2, 3, 5, 6), r(2, 0, 2), r(2, 0, 3), r(2, 0), 5, 6, 0.5, 2, True, "sum", [True, True, True])),
        ("composite K=0", "alpha_composite", (r(2, 0, 3, 4, 5), r(2, 0, 1, 4, 5))),
        ("composite C=0", "alpha_composite", (r(2, 3, 0, 4, 5), r(2, 3, 1, 4, 5))),
        ("composite bwd C=0", "alpha_composite_backward",
         (r(2, 0, 4, 5), r(2, 3, 1, 4, 5), r(2, 3, 0, 4, 5), r(2, 3, 1, 4, 5), [True, True])),
        ("sliced G=0", "sliced_wasserstein", (r(0, 5, 3), r(0, 5, 3), r(3, 4))),
        ("sliced N=0", "sliced_wasserstein", (r(2, 0, 3), r(2, 0, 3), r(3, 4))),
        ("gmm N=0", "gmm_prototype_samples", (r(4, 3), r(0, 3), r(0, 3), 0.01)),
    ]


def test_empty_sizes_match_the_cpu_kernels(gpu):
    """Same outputs (shapes and values) as the C++ CPU kernels, or the same refusal."""
    for name, op, cpu_args in empty_size_calls():
        args = [a.to(gpu.device) if isinstance(a, torch.Tensor) else a for a in cpu_args]
        try:
            expected = getattr(torch.ops.tusk, op)(*cpu_args)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                getattr(gpu.ops, op)(*args)
            continue
        actual = getattr(gpu.ops, op)(*args)
        for a, e in zip(actual if isinstance(actual, (tuple, list)) else [actual],
                        expected if isinstance(expected, (tuple, list)) else [expected]):
            assert a.shape == e.shape and a.dtype == e.dtype, name
            torch.testing.assert_close(a.cpu(), e, msg=name)


# ---- determinism, streams -----------------------------------------------------------------------

def test_forwards_are_bitwise_reproducible(gpu):
    scores = torch.rand(4, 96, 128, device=gpu.device)
    features = torch.randn(4, 64, 96, 128, device=gpu.device)
    xy = torch.rand(4, 500, 2, device=gpu.device) * 90
    desc = torch.randn(4, 500, 64, device=gpu.device)
    theta = torch.randn(64, 50, device=gpu.device)
    for run in (lambda: gpu.ops.detect_keypoints(scores, 500, 5, 5, 0.2),
                lambda: (gpu.ops.sample_descriptors(features, xy, "zeros"),),
                lambda: (gpu.ops.splat_gaussians(xy, desc, None, 96, 128, 0.05, 1, True, "sum"),),
                lambda: gpu.ops.sliced_wasserstein(desc[:, :300], desc[:, 200:], theta)):
        first, second = run(), run()
        for a, b in zip(first, second):
            assert torch.equal(a, b)


def test_deterministic_backward_paths(gpu):
    features = torch.randn(2, 16, 20, 24, device=gpu.device)
    xy = torch.rand(2, 300, 2, device=gpu.device) * 20  # many shared taps
    grad = torch.randn(2, 300, 16, device=gpu.device)
    scores = torch.rand(2, 20, 24, device=gpu.device)
    d_xy, d_score, _, index = gpu.ops.detect_keypoints(scores, 200, 1, 5, 0.2)  # nms 1: overlapping windows
    gxy, gs = torch.randn_like(d_xy), torch.randn_like(d_score)
    atomic = (gpu.ops.sample_descriptors_backward(grad, features, xy, "border", [True, True])[0],
              gpu.ops.detect_keypoints_backward(gxy, gs, scores, d_xy, index, 5, 0.2))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [(gpu.ops.sample_descriptors_backward(grad, features, xy, "border", [True, True])[0],
                 gpu.ops.detect_keypoints_backward(gxy, gs, scores, d_xy, index, 5, 0.2)) for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b, c in zip(runs[0], runs[1], atomic):
        assert torch.equal(a, b)
        assert_close(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_side_stream_and_second_device_guard():
    """Streams and devices exist on the GPU only (the emulator runs everything in order)."""
    ops = torch.ops.tusk
    features = torch.randn(2, 8, 10, 12, device="cuda")
    xy = torch.rand(2, 30, 2, device="cuda") * 9
    expected = ops.sample_descriptors(features, xy, "zeros")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = ops.sample_descriptors(features, xy, "zeros")
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(out, expected)
    if torch.cuda.device_count() > 1:  # pragma: no cover - multi-GPU machines
        with torch.cuda.device(1):
            assert torch.equal(ops.sample_descriptors(features, xy, "zeros"), expected)


def test_backstop_checks_raise_instead_of_crashing(gpu):
    scores = torch.rand(1, 4, 4, device=gpu.device)
    with pytest.raises(RuntimeError, match="k must be"):
        gpu.ops.detect_keypoints(scores, 17, 3, 3, 0.2)
    with pytest.raises(RuntimeError, match="float16, bfloat16, float32 or float64|floating point"):
        gpu.ops.sample_descriptors(torch.zeros(1, 1, 2, 2, device=gpu.device, dtype=torch.int32),
                                   torch.zeros(1, 1, 2, device=gpu.device, dtype=torch.int32), "zeros")
    if not gpu.emulated:  # the emulated ops take CPU tensors only: there is no second device
        with pytest.raises(RuntimeError, match="CUDA tensor|one device"):
            gpu.ops.sample_descriptors(torch.zeros(1, 1, 2, 2, device="cuda"), torch.zeros(1, 1, 2), "zeros")
