"""The CUDA kernels themselves, through the raw ``torch.ops.tusk`` ops, against the references.

Complements the per-op test files (which run the public ops on the ``cuda`` target): half
precision, the largest paper/SuperPoint shapes, tiny inputs, the deterministic backward paths,
bitwise-reproducible forwards, side streams, and the promise that no op synchronises with the
host. Every test needs a CUDA GPU; with a GPU present, a missing CUDA build fails (never skips).
"""
from __future__ import annotations

import pytest
import torch

from tolerances import assert_close
from tusk.ops import _backend, reference
from tusk.ops.reference.detect_keypoints import select_peaks

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]
ops = torch.ops.tusk


@pytest.fixture(autouse=True)
def _built():
    assert _backend.cuda_available(), "tusk._C was built without its CUDA kernels (see `tusk info`)"


def ref_dtype(dtype):
    """References run in float32 on the rounded inputs for half types, else in the same dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def leaf(tensor, dtype):
    """(kernel input in dtype, reference input: the same values in ref_dtype, requiring grad)."""
    value = tensor.to(dtype)
    return value, value.detach().to(ref_dtype(dtype)).requires_grad_(True)


class NoSync:
    """Fails if the enclosed code makes PyTorch synchronise the host with the GPU."""

    def __enter__(self):
        torch.cuda.synchronize()
        self.previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode(self.previous)


# ---- detect_keypoints ---------------------------------------------------------------------------

DETECT_SHAPES = [(2, 7, 9, 5, 3, 3), (1, 1, 1, 1, 3, 3), (3, 1, 13, 13, 5, 3), (2, 33, 45, 1485, 3, 5),
                 (2, 80, 80, 9, 13, 13), (1, 120, 97, 300, 5, 7)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_detect_keypoints(dtype):
    for b, h, w, k, nms, window in DETECT_SHAPES:
        scores, ref_scores = leaf(torch.rand(b, h, w, device="cuda"), dtype)
        with NoSync():
            xy, score, is_peak, index = ops.detect_keypoints(scores, k, nms, window, 0.2)
        expected_index, expected_peak = select_peaks(ref_scores.detach(), k, nms)
        assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak), (b, h, w, k)
        ref_xy, ref_score, _ = reference.detect_keypoints(ref_scores, k, nms_size=nms, window=window, temperature=0.2)
        assert_close(xy, ref_xy, msg=f"xy {(b, h, w, k)}")
        assert_close(score, ref_score, msg=f"score {(b, h, w, k)}")
        grad_xy, grad_score = torch.randn_like(ref_xy), torch.randn_like(ref_score)
        expected = torch.autograd.grad((ref_xy, ref_score), ref_scores, (grad_xy, grad_score))[0]
        with NoSync():
            actual = ops.detect_keypoints_backward(grad_xy.to(dtype), grad_score.to(dtype), scores, xy, index, window, 0.2)
        assert_close(actual, expected, scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad {(b, h, w, k)}")


def test_detect_keypoints_superpoint_scale_and_ties():
    scores = torch.rand(8, 480, 640, device="cuda")
    scores[:, :, ::7] = 0.5  # ties across tiles
    xy, score, is_peak, index = ops.detect_keypoints(scores, 2048, 5, 5, 0.2)
    expected_index, expected_peak = select_peaks(scores, 2048, 5)
    assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)
    flat = torch.rand(1, 48, 64, device="cuda").round()  # plateaus: fewer peaks than K
    _, _, is_peak, index = ops.detect_keypoints(flat, 48 * 64, 3, 3, 0.2)
    expected_index, expected_peak = select_peaks(flat, 48 * 64, 3)
    assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)
    nan = torch.rand(2, 30, 40, device="cuda")
    nan[0, 3, 4] = nan[1, 29, 39] = float("nan")
    _, _, is_peak, index = ops.detect_keypoints(nan, 100, 3, 3, 0.2)
    expected_index, expected_peak = select_peaks(nan, 100, 3)
    assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)


# ---- sample_descriptors -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_sample_descriptors(dtype, padding):
    for b, c, h, w, k in ((2, 5, 7, 9, 11), (1, 1, 1, 1, 1), (2, 128, 60, 80, 2048), (3, 33, 5, 4, 20)):
        features, ref_features = leaf(torch.randn(b, c, h, w, device="cuda"), dtype)
        xy, ref_xy = leaf(torch.rand(b, k, 2, device="cuda") * torch.tensor([w + 2.0, h + 2.0], device="cuda") - 1.0, dtype)
        with NoSync():
            out = ops.sample_descriptors(features, xy, padding)
        expected = reference.sample_descriptors(ref_features, ref_xy, padding=padding)
        assert_close(out, expected)
        cotangent = torch.randn_like(expected)
        grads = torch.autograd.grad(expected, (ref_features, ref_xy), cotangent)
        with NoSync():
            grad_features, grad_xy = ops.sample_descriptors_backward(cotangent.to(dtype), features, xy, padding, [True, True])
        assert_close(grad_features, grads[0], msg=f"grad features {(b, c, h, w, k)}")
        assert_close(grad_xy, grads[1], scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad xy {(b, c, h, w, k)}")


# ---- splat_gaussians ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduce", ["sum", "none"])
def test_splat_gaussians(dtype, reduce):
    cases = [(2, 7, 3, 6, 9, 0.05, 1), (1, 1, 1, 1, 1, 0.05, 1), (2, 600, 4, 40, 50, 0.5, 3), (1, 5, 2, 9, 7, 4.0, 8)]
    if reduce == "sum":
        cases.append((2, 2048, 128, 120, 160, 0.05, 1))
    for b, k, c, h, w, variance, radius in cases:
        for normalize in (True, False):
            xy, ref_xy = leaf(torch.rand(b, k, 2, device="cuda") * torch.tensor([w + 1.0, h + 1.0], device="cuda") - 0.5, dtype)
            desc, ref_desc = leaf(torch.randn(b, k, c, device="cuda"), dtype)
            weights, ref_weights = leaf(torch.rand(b, k, device="cuda"), dtype)
            with NoSync():
                out = ops.splat_gaussians(xy, desc, weights, h, w, variance, radius, normalize, reduce)
            expected = reference.splat_gaussians(ref_xy, ref_desc, ref_weights, (h, w), variance=variance,
                                                 radius=radius, normalize=normalize, reduce=reduce)
            assert_close(out, expected, msg=f"forward {(b, k, c, h, w)} normalize={normalize}")
            cotangent = torch.randn_like(expected)
            grads = torch.autograd.grad(expected, (ref_xy, ref_desc, ref_weights), cotangent)
            with NoSync():
                actual = ops.splat_gaussians_backward(cotangent.to(dtype), xy, desc, weights, h, w, variance, radius,
                                                      normalize, reduce, [True, True, True])
            for name, a, e in zip(("xy", "descriptors", "weights"), actual, grads):
                assert_close(a, e, scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad {name} {(b, k, c, h, w)}")


# ---- alpha_composite ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_alpha_composite(dtype):
    for b, k, c, h, w in ((2, 3, 3, 5, 7), (1, 1, 1, 1, 1), (2, 9, 3, 80, 80), (1, 6, 20, 9, 11)):
        rgb, ref_rgb = leaf(torch.randn(b, k, c, h, w, device="cuda"), dtype)
        logits, ref_logits = leaf(3 * torch.randn(b, k, 1, h, w, device="cuda"), dtype)
        with NoSync():
            image, alpha = ops.alpha_composite(rgb, logits)
        ref_image, ref_alpha = reference.alpha_composite(ref_rgb, ref_logits)
        assert_close(image, ref_image)
        assert_close(alpha, ref_alpha)
        grad_image, grad_alpha = torch.randn_like(ref_image), torch.randn_like(ref_alpha)
        grads = torch.autograd.grad((ref_image, ref_alpha), (ref_rgb, ref_logits), (grad_image, grad_alpha))
        with NoSync():
            actual = ops.alpha_composite_backward(grad_image.to(dtype), grad_alpha.to(dtype), rgb, logits, [True, True])
        assert_close(actual[0], grads[0])
        assert_close(actual[1], grads[1], scale=4.0 if dtype == torch.float32 else 1.0)


# ---- sliced_wasserstein -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sliced_wasserstein(dtype):
    for groups, n, c, p in ((3, 37, 4, 5), (1, 1, 2, 1), (2, 300, 32, 100), (1, 3000, 16, 20)):  # 3000: merge path
        x, ref_x = leaf(torch.randn(groups, n, c, device="cuda"), dtype)
        y, ref_y = leaf(torch.randn(groups, n, c, device="cuda"), dtype)
        theta, ref_theta = leaf(torch.nn.functional.normalize(torch.randn(c, p, device="cuda"), dim=0), dtype)
        with NoSync():
            distance, xr, yr = ops.sliced_wasserstein(x, y, theta)
        expected = reference.sliced_wasserstein(ref_x, ref_y, ref_theta)
        assert_close(distance, expected, scale=4.0, msg=f"distance {(groups, n, c, p)}")
        grad = torch.randn_like(expected)
        grads = torch.autograd.grad(expected, (ref_x, ref_y, ref_theta), grad)
        with NoSync():
            actual = ops.sliced_wasserstein_backward(grad.to(dtype), x, y, theta, xr, yr, [True, True, True])
        for name, a, e in zip(("x", "y", "projections"), actual, grads):
            assert_close(a, e, scale=4.0, msg=f"grad {name} {(groups, n, c, p)}")


# ---- gmm_prototype_samples ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gmm_prototype_samples(dtype):
    for m, n, c in ((10, 288, 32), (1, 5, 3), (114, 114, 32), (64, 4096, 128)):
        protos, ref_protos = leaf(torch.nn.functional.normalize(torch.randn(m, c, device="cuda"), dim=-1), dtype)
        features, ref_features = leaf(torch.randn(n, c, device="cuda"), dtype)
        noise, ref_noise = leaf(0.02 * torch.randn(n, c, device="cuda"), dtype)
        with NoSync():
            samples, assignment = ops.gmm_prototype_samples(protos, features, noise, 0.01)
        expected = reference.gmm_prototype_samples(ref_protos, ref_features.detach(), ref_noise.detach(), smoothing=0.01)
        assert_close(samples, expected, msg=f"samples {(m, n, c)}")
        assert (assignment[1:] >= assignment[:-1]).all()
        grad = torch.randn_like(expected)
        expected_grad = torch.autograd.grad(expected, ref_protos, grad)[0]
        with NoSync():
            actual = ops.gmm_prototype_samples_backward(grad.to(dtype), protos, noise, assignment)
        assert_close(actual, expected_grad, scale=4.0 if dtype == torch.float32 else 1.0, msg=f"grad {(m, n, c)}")


# ---- determinism, streams -----------------------------------------------------------------------

def test_forwards_are_bitwise_reproducible():
    scores = torch.rand(4, 96, 128, device="cuda")
    features = torch.randn(4, 64, 96, 128, device="cuda")
    xy = torch.rand(4, 500, 2, device="cuda") * 90
    desc = torch.randn(4, 500, 64, device="cuda")
    for run in (lambda: ops.detect_keypoints(scores, 500, 5, 5, 0.2),
                lambda: (ops.sample_descriptors(features, xy, "zeros"),),
                lambda: (ops.splat_gaussians(xy, desc, None, 96, 128, 0.05, 1, True, "sum"),),
                lambda: ops.sliced_wasserstein(desc[:, :300], desc[:, 200:], torch.randn(64, 50, device="cuda"))):
        first, second = run(), run()
        for a, b in zip(first, second):
            assert torch.equal(a, b)


def test_deterministic_backward_paths():
    features = torch.randn(2, 16, 20, 24, device="cuda")
    xy = torch.rand(2, 300, 2, device="cuda") * 20  # many shared taps
    grad = torch.randn(2, 300, 16, device="cuda")
    scores = torch.rand(2, 20, 24, device="cuda")
    d_xy, d_score, _, index = ops.detect_keypoints(scores, 200, 1, 5, 0.2)  # nms 1: overlapping windows
    gxy, gs = torch.randn_like(d_xy), torch.randn_like(d_score)
    atomic = (ops.sample_descriptors_backward(grad, features, xy, "border", [True, True])[0],
              ops.detect_keypoints_backward(gxy, gs, scores, d_xy, index, 5, 0.2))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [(ops.sample_descriptors_backward(grad, features, xy, "border", [True, True])[0],
                 ops.detect_keypoints_backward(gxy, gs, scores, d_xy, index, 5, 0.2)) for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b, c in zip(runs[0], runs[1], atomic):
        assert torch.equal(a, b)
        assert_close(a, c)


def test_side_stream_and_second_device_guard():
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


def test_backstop_checks_raise_instead_of_crashing():
    scores = torch.rand(1, 4, 4, device="cuda")
    with pytest.raises(RuntimeError, match="k must be"):
        ops.detect_keypoints(scores, 17, 3, 3, 0.2)
    with pytest.raises(RuntimeError, match="float16, bfloat16, float32 or float64|floating point"):
        ops.sample_descriptors(torch.zeros(1, 1, 2, 2, device="cuda", dtype=torch.int32),
                               torch.zeros(1, 1, 2, device="cuda", dtype=torch.int32), "zeros")
    with pytest.raises(RuntimeError, match="CUDA tensor|one device"):
        ops.sample_descriptors(torch.zeros(1, 1, 2, 2, device="cuda"), torch.zeros(1, 1, 2), "zeros")
