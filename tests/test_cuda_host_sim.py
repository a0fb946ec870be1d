"""The CUDA kernels' algorithms, run on the host against the references (no GPU needed).

``kernels/tests/host_sim.cpp`` walks each kernel's decomposition (tiles, merge rounds, warp
passes, channel groups, split-K blocks) with the very helpers the kernels call
(``kernels/include/tusk/*.h``), in float64. These tests compare it with the PyTorch references:
selection order exactly (ties, NaN, -0.0), values and gradients to float64 tolerance. Small
tunables (tile of 1..8 pixels, list capacity 3) push small inputs through the rare paths.
What they cannot check is the CUDA code itself (barriers, shuffles, launch geometry): that
runs in tests/test_cuda_kernels.py on a GPU machine.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from tolerances import assert_close
from tusk.ops import reference
from tusk.ops.reference.detect_keypoints import select_peaks
from tusk.ops.reference.gmm_prototype_samples import prototype_counts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "kernels", "tests", "host_sim.cpp")

D = ctypes.POINTER(ctypes.c_double)
L = ctypes.POINTER(ctypes.c_int64)
U8 = ctypes.POINTER(ctypes.c_uint8)
I64 = ctypes.c_int64


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler is needed (the same one that builds tusk._C)"
    library = str(tmp_path_factory.mktemp("host_sim") / "libtusk_host_sim.so")
    subprocess.run([compiler, "-std=c++17", "-O1", "-shared", "-fPIC",
                    "-I", os.path.join(ROOT, "kernels", "include"), SOURCE, "-o", library], check=True)
    return ctypes.CDLL(library)


def ptr(array: np.ndarray, kind=D):
    assert array.flags.c_contiguous
    return array.ctypes.data_as(kind)


def f64(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().double().numpy())


def t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)


# ---- detect_keypoints ---------------------------------------------------------------------------

def detect_cases():
    g = torch.Generator().manual_seed(3)
    cases = [
        (torch.rand(2, 7, 9, generator=g, dtype=torch.float64), 5, 3, 3),
        (torch.randint(0, 3, (2, 6, 5), generator=g).double(), 30, 3, 5),  # plateaus, K = H*W
        (torch.rand(1, 1, 1, dtype=torch.float64), 1, 3, 3),                # 1x1
        (torch.rand(3, 1, 13, generator=g, dtype=torch.float64), 4, 5, 3),  # one row
        (torch.rand(1, 11, 1, generator=g, dtype=torch.float64), 11, 3, 7),  # one column, K = H*W
        (torch.rand(2, 12, 10, generator=g, dtype=torch.float64), 17, 7, 5),
        (torch.rand(1, 9, 8, generator=g, dtype=torch.float64), 6, 41, 41),  # windows wider than the image
        (torch.rand(2, 20, 30, generator=g, dtype=torch.float64), 20, 3, 3),  # >= K peaks: tiles sort peaks only
        (torch.rand(3, 16, 16, generator=g, dtype=torch.float64), 64, 5, 5),  # fewer peaks than K: all pixels
    ]
    signed_zero = torch.zeros(1, 4, 4, dtype=torch.float64)
    signed_zero[0, ::2, ::2] = -0.0
    cases.append((signed_zero, 16, 3, 3))
    return cases


@pytest.mark.parametrize("max_tile", [1, 2, 8, 2048])
def test_detect_selection_and_refinement(sim, max_tile):
    for scores, k, nms, window in detect_cases():
        b, h, w = scores.shape
        xy, score = np.zeros((b, k, 2)), np.zeros((b, k))
        peak, index = np.zeros((b, k), np.uint8), np.zeros((b, k), np.int64)
        s = f64(scores)
        sim.tusk_sim_detect_forward(ptr(s), I64(b), I64(h), I64(w), I64(k), I64(nms), I64(window),
                                    ctypes.c_double(0.2), I64(max_tile), ptr(xy), ptr(score), ptr(peak, U8), ptr(index, L))
        expected_index, expected_peak = select_peaks(scores, k, nms)
        assert torch.equal(t(index), expected_index), (scores.shape, k, nms)
        assert torch.equal(t(peak).bool(), expected_peak)
        ref_xy, ref_score, _ = reference.detect_keypoints(scores, k, nms_size=nms, window=window, temperature=0.2)
        assert_close(t(xy), ref_xy)
        assert_close(t(score), ref_score)


@pytest.mark.parametrize("k", [3, 42])
def test_detect_selection_with_nan(sim, k):
    scores = torch.rand(2, 6, 7, dtype=torch.float64)
    scores[0, 1, 2] = scores[0, 4, 4] = scores[1, 0, 0] = float("nan")
    xy, score = np.zeros((2, k, 2)), np.zeros((2, k))
    peak, index = np.zeros((2, k), np.uint8), np.zeros((2, k), np.int64)
    sim.tusk_sim_detect_forward(ptr(f64(scores)), I64(2), I64(6), I64(7), I64(k), I64(3), I64(3),
                                ctypes.c_double(0.2), I64(4), ptr(xy), ptr(score), ptr(peak, U8), ptr(index, L))
    expected_index, expected_peak = select_peaks(scores, k, 3)
    assert torch.equal(t(index), expected_index)
    assert torch.equal(t(peak).bool(), expected_peak)


def test_detect_backward(sim):
    for scores, k, nms, window in detect_cases():
        if (scores.frac() == 0).all():
            continue  # plateaus put xy exactly on integers, the kinks of the bilinear score
        b, h, w = scores.shape
        scores = scores.clone().requires_grad_(True)
        ref_xy, ref_score, _ = reference.detect_keypoints(scores, k, nms_size=nms, window=window, temperature=0.3)
        grad_xy, grad_score = torch.randn_like(ref_xy), torch.randn_like(ref_score)
        expected = torch.autograd.grad((ref_xy, ref_score), scores, (grad_xy, grad_score))[0]
        index, _ = select_peaks(scores.detach(), k, nms)
        out = np.zeros((b, h, w))
        sim.tusk_sim_detect_backward(ptr(f64(grad_xy)), ptr(f64(grad_score)), ptr(f64(scores)),
                                     ptr(np.ascontiguousarray(index.numpy()), L), I64(b), I64(h), I64(w), I64(k),
                                     I64(window), ctypes.c_double(0.3), ptr(out))
        assert_close(t(out), expected, msg=f"{tuple(scores.shape)} k={k}")


# ---- splat_gaussians ----------------------------------------------------------------------------

SPLAT_CASES = [
    # b, k, c, h, w, variance, radius
    (2, 7, 3, 6, 9, 0.05, 1),
    (1, 40, 2, 9, 10, 0.7, 3),   # 49-cell windows, many keypoints per tile
    (1, 1, 1, 1, 1, 0.05, 1),    # 1x1 image
    (3, 5, 4, 1, 11, 0.3, 2),    # one row
    (1, 6, 2, 5, 5, 4.0, 0),     # radius 0
]


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "none"])
@pytest.mark.parametrize("with_weights", [True, False])
def test_splat_forward_and_backward(sim, normalize, reduce, with_weights):
    g = torch.Generator().manual_seed(5)
    for b, k, c, h, w, variance, radius in SPLAT_CASES:
        span = torch.tensor([w + 2.0, h + 2.0], dtype=torch.float64)
        xy = (torch.rand(b, k, 2, generator=g, dtype=torch.float64) * span - 1.0)
        xy = (xy.floor() + 0.05 + 0.4 * xy.frac()).requires_grad_(True)  # off the rounding kinks
        desc = torch.randn(b, k, c, generator=g, dtype=torch.float64, requires_grad=True)
        weights = torch.rand(b, k, generator=g, dtype=torch.float64, requires_grad=True) if with_weights else None
        expected = reference.splat_gaussians(xy, desc, weights, (h, w), variance=variance, radius=radius,
                                             normalize=normalize, reduce=reduce)
        for tile_w, tile_h, cap in ((32, 8, 256), (4, 2, 3), (1, 1, 1)):
            out = np.zeros(tuple(expected.shape))
            sim.tusk_sim_splat_forward(ptr(f64(xy)), ptr(f64(desc)), ptr(f64(weights)) if with_weights else None,
                                       I64(b), I64(k), I64(c), I64(h), I64(w), ctypes.c_double(variance), I64(radius),
                                       int(normalize), int(reduce == "sum"), I64(tile_w), I64(tile_h), I64(cap), ptr(out))
            assert_close(t(out), expected, msg=f"forward {b, k, c, h, w} tile {tile_w}x{tile_h} cap {cap}")
        cotangent = torch.randn(expected.shape, generator=g, dtype=torch.float64)
        inputs = (xy, desc) + ((weights,) if with_weights else ())
        grads = torch.autograd.grad(expected, inputs, cotangent)
        gxy, gdesc, gw = np.zeros((b, k, 2)), np.zeros((b, k, c)), np.zeros((b, k))
        sim.tusk_sim_splat_backward(ptr(f64(cotangent)), ptr(f64(xy)), ptr(f64(desc)),
                                    ptr(f64(weights)) if with_weights else None, I64(b), I64(k), I64(c), I64(h), I64(w),
                                    ctypes.c_double(variance), I64(radius), int(normalize), int(reduce == "sum"),
                                    ptr(gxy), ptr(gdesc), ptr(gw))
        assert_close(t(gxy), grads[0], msg=f"grad xy {b, k, c, h, w}")
        assert_close(t(gdesc), grads[1], msg=f"grad descriptors {b, k, c, h, w}")
        if with_weights:
            assert_close(t(gw), grads[2], msg=f"grad weights {b, k, c, h, w}")


# ---- alpha_composite ----------------------------------------------------------------------------

@pytest.mark.parametrize("group", [1, 2, 4, 16])
def test_alpha_composite(sim, group):
    g = torch.Generator().manual_seed(7)
    for b, k, c, h, w in ((2, 3, 3, 4, 5), (1, 1, 1, 1, 1), (1, 6, 5, 3, 2), (2, 4, 0, 2, 2)):
        rgb = torch.randn(b, k, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
        logits = (3 * torch.randn(b, k, 1, h, w, generator=g, dtype=torch.float64)).requires_grad_(True)
        if k > 1:
            with torch.no_grad():
                logits[:, 0, :, 0, 0] = float("-inf")  # a -inf first logit must not poison the sum
        image, alpha = reference.alpha_composite(rgb, logits)
        out_image, out_alpha = np.zeros((b, c, h, w)), np.zeros((b, k, 1, h, w))
        p = h * w
        sim.tusk_sim_alpha_forward(ptr(f64(rgb)), ptr(f64(logits)), I64(b), I64(k), I64(c), I64(p), I64(group),
                                   ptr(out_image), ptr(out_alpha))
        assert_close(t(out_image), image)
        assert_close(t(out_alpha), alpha)
        grad_image, grad_alpha = torch.randn_like(image), torch.randn_like(alpha)
        expected = torch.autograd.grad((image, alpha), (rgb, logits), (grad_image, grad_alpha), allow_unused=True)
        g_rgb, g_logits = np.zeros((b, k, c, h, w)), np.zeros((b, k, 1, h, w))
        sim.tusk_sim_alpha_backward(ptr(f64(grad_image)), ptr(f64(grad_alpha)), ptr(f64(rgb)), ptr(f64(logits)),
                                    I64(b), I64(k), I64(c), I64(p), I64(group), ptr(g_rgb), ptr(g_logits))
        if c > 0:
            assert_close(t(g_rgb), expected[0])
        assert_close(t(g_logits), torch.nan_to_num(expected[1]) if expected[1] is not None else torch.zeros_like(logits))


# ---- sliced_wasserstein -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["block", "merge"])
def test_sliced_wasserstein(sim, path):
    g = torch.Generator().manual_seed(11)
    for groups, n, c, p in ((3, 37, 4, 5), (1, 1, 2, 3), (2, 64, 3, 2), (1, 300, 8, 7)):
        x = torch.randn(groups, n, c, generator=g, dtype=torch.float64, requires_grad=True)
        y = torch.randn(groups, n, c, generator=g, dtype=torch.float64, requires_grad=True)
        theta = torch.randn(c, p, generator=g, dtype=torch.float64, requires_grad=True)
        expected = reference.sliced_wasserstein(x, y, theta)
        distance, xr, yr = np.zeros(groups), np.zeros((groups, n, p)), np.zeros((groups, n, p))
        block_max, max_tile = (1024, 2048) if path == "block" else (0, 4)
        sim.tusk_sim_sliced_forward(ptr(f64(x)), ptr(f64(y)), ptr(f64(theta)), I64(groups), I64(n), I64(c), I64(p),
                                    I64(block_max), I64(max_tile), ptr(distance), ptr(xr), ptr(yr))
        assert_close(t(distance), expected)
        grad = torch.randn(groups, generator=g, dtype=torch.float64)
        gx_ref, gy_ref, gt_ref = torch.autograd.grad(expected, (x, y, theta), grad)
        gx, gy, gt = np.zeros((groups, n, c)), np.zeros((groups, n, c)), np.zeros((c, p))
        for rows in (256, 7):
            sim.tusk_sim_sliced_backward(ptr(f64(grad)), ptr(f64(x)), ptr(f64(y)), ptr(f64(theta)), ptr(xr), ptr(yr),
                                         I64(groups), I64(n), I64(c), I64(p), I64(rows), ptr(gx), ptr(gy), ptr(gt))
            assert_close(t(gx), gx_ref)
            assert_close(t(gy), gy_ref)
            assert_close(t(gt), gt_ref)


# ---- gmm_prototype_samples ----------------------------------------------------------------------

def test_gmm_prototype_samples(sim):
    g = torch.Generator().manual_seed(13)
    for m, n, c in ((10, 288, 32), (1, 5, 3), (48, 192, 32), (7, 3, 4)):
        protos = torch.nn.functional.normalize(torch.randn(m, c, generator=g, dtype=torch.float64), dim=-1)
        protos.requires_grad_(True)
        features = torch.randn(n, c, generator=g, dtype=torch.float64)
        noise = 0.02 * torch.randn(n, c, generator=g, dtype=torch.float64)
        expected = reference.gmm_prototype_samples(protos, features, noise, smoothing=0.01)
        samples, assignment = np.zeros((n, c)), np.zeros(n, np.int64)
        sim.tusk_sim_gmm_forward(ptr(f64(protos)), ptr(f64(features)), ptr(f64(noise)), I64(m), I64(n), I64(c),
                                 ctypes.c_double(0.01), ptr(samples), ptr(assignment, L))
        assert_close(t(samples), expected)
        counts = prototype_counts(protos, features, 0.01)
        assert torch.equal(torch.bincount(t(assignment), minlength=m), counts)
        assert (np.diff(assignment) >= 0).all()
        grad = torch.randn(n, c, generator=g, dtype=torch.float64)
        expected_grad = torch.autograd.grad(expected, protos, grad)[0]
        out = np.zeros((m, c))
        sim.tusk_sim_gmm_backward(ptr(f64(grad)), ptr(f64(protos)), ptr(f64(noise)), ptr(assignment, L),
                                  I64(m), I64(n), I64(c), ptr(out))
        assert_close(t(out), expected_grad)
