"""Triton backend vs the reference: forward values and gradients of every op, every dtype.

Runs on CUDA when a GPU is visible, otherwise on CPU tensors under the Triton interpreter (set by
``conftest.py``), so CI checks the kernels without a GPU. Inputs are small and oddly sized (1x1
maps, K=1, K=H*W, points on borders and corners or outside, non-square maps, batch 1 and >1).

float32/float64 compare against the reference in the same dtype. float16/bfloat16 inputs are
rounded first and the reference runs in float32 on the rounded values, so the comparison only
absorbs the output rounding and accumulation order (``tests/tolerances.py``; bf16 at 1e-2).
Per-op test files add gradcheck/opcheck/compile/exception tests on every backend, Triton included.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch

from tolerances import assert_close
from tusk import ops
from tusk.ops import reference

HAS_GPU = torch.cuda.is_available()
DEVICE = "cuda" if HAS_GPU else "cpu"
if not HAS_GPU and os.environ.get("TRITON_INTERPRET") != "1":  # pragma: no cover - conftest sets it
    pytest.skip("needs a CUDA GPU (or TRITON_INTERPRET=1 before triton is imported)", allow_module_level=True)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]


class Case(NamedTuple):
    """One input set: float tensors by name (float32/float64 masters), the names to differentiate,
    and the non-tensor arguments."""

    name: str
    tensors: dict[str, torch.Tensor]
    grad: tuple[str, ...]
    kwargs: dict


def _uniform(generator, *shape, low=0.0, high=1.0):
    return torch.rand(*shape, generator=generator, dtype=torch.float64) * (high - low) + low


def _normal(generator, *shape):
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _points(generator, batch, count, height, width, margin=1.5):
    """Pixel coordinates spread over the map and ``margin`` beyond it."""
    span = torch.tensor([width - 1 + 2 * margin, height - 1 + 2 * margin], dtype=torch.float64)
    return _uniform(generator, batch, count, 2) * span - margin


def _grid_points(height, width, batch=1):
    """Every pixel centre once (K = H*W): integer coordinates, borders and corners included."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack((xs.reshape(-1), ys.reshape(-1)), -1).double().expand(batch, -1, -1).clone()


# ---------------------------------------------------------------------------------------------
# Per-op cases and calls. Each call returns a tuple of outputs; floating outputs are compared
# (and differentiated), others must match exactly.


def sample_cases(g):
    cases = []
    for padding in ("zeros", "border"):
        cases += [
            Case(f"2x5x7x9-K11-{padding}", {"features": _normal(g, 2, 5, 7, 9), "xy": _points(g, 2, 11, 7, 9)},
                 ("features", "xy"), {"padding": padding}),
            Case(f"1x1x1x1-K3-{padding}", {"features": _normal(g, 1, 1, 1, 1), "xy": _points(g, 1, 3, 1, 1)},
                 ("features", "xy"), {"padding": padding}),
            Case(f"1x3x4x5-K=HW-{padding}", {"features": _normal(g, 1, 3, 4, 5), "xy": _grid_points(4, 5) + 0.25},
                 ("features", "xy"), {"padding": padding}),
            Case(f"3x2x1x6-K1-{padding}", {"features": _normal(g, 3, 2, 1, 6), "xy": _points(g, 3, 1, 1, 6)},
                 ("features", "xy"), {"padding": padding}),
        ]
    return cases


def sample_call(backend, t, kwargs):
    return (ops.sample_descriptors(t["features"], t["xy"], backend=backend, **kwargs),)


def detect_cases(g):
    ties = torch.floor(_uniform(g, 1, 8, 8) * 4) / 4  # many equal scores: the tie rule decides
    return [
        Case("2x7x9-k5", {"scores": _uniform(g, 2, 7, 9)}, ("scores",), {"k": 5}),
        Case("1x1x1-k1", {"scores": _uniform(g, 1, 1, 1)}, ("scores",), {"k": 1}),
        Case("1x4x5-k=HW-window5", {"scores": _uniform(g, 1, 4, 5)}, ("scores",), {"k": 20, "window": 5}),
        Case("3x6x11-k1-nms5", {"scores": _uniform(g, 3, 6, 11)}, ("scores",), {"k": 1, "nms_size": 5, "window": 3}),
        Case("1x8x8-ties-k10", {"scores": ties}, ("scores",), {"k": 10, "temperature": 0.5}),
        Case("2x5x3-window1", {"scores": _uniform(g, 2, 5, 3)}, ("scores",), {"k": 4, "nms_size": 1, "window": 1}),
        Case("1x8x8-ties-strict-border1", {"scores": ties}, ("scores",),
             {"k": 6, "strict": True, "border": 1, "temperature": 0.5}),
        Case("2x7x9-strict-nms5-sizes-threshold", {"scores": _uniform(g, 2, 7, 9)}, ("scores",),
             {"k": 3, "nms_size": 5, "strict": True, "border": 2, "image_size": torch.tensor([[9, 6], [7, 7]]),
              "peak_threshold": 0.3}),
        Case("2x6x7-fill-false", {"scores": _uniform(g, 2, 6, 7)}, ("scores",),
             {"k": 20, "nms_size": 3, "strict": True, "fill": False}),
    ]


def detect_call(backend, t, kwargs):
    xy, score, valid = ops.detect_keypoints(t["scores"], backend=backend, **kwargs)
    return xy, score, valid


def splat_cases(g):
    return [
        Case("2x6x3-7x9-sum", {"xy": _points(g, 2, 6, 7, 9), "descriptors": _normal(g, 2, 6, 3),
                               "weights": _uniform(g, 2, 6)},
             ("xy", "descriptors", "weights"), {"size": (7, 9), "variance": 0.5, "radius": 1}),
        Case("1x1x1-1x1", {"xy": _points(g, 1, 1, 1, 1, margin=0.4), "descriptors": _normal(g, 1, 1, 1),
                           "weights": _uniform(g, 1, 1)},
             ("xy", "descriptors", "weights"), {"size": (1, 1)}),
        Case("K=HW-3x4-unnormalized", {"xy": _grid_points(3, 4, batch=2) + 0.2, "descriptors": _normal(g, 2, 12, 2)},
             ("xy", "descriptors"), {"size": (3, 4), "variance": 0.3, "radius": 2, "normalize": False}),
        Case("2x5x4-8x5-none-default-radius", {"xy": _points(g, 2, 5, 8, 5), "descriptors": _normal(g, 2, 5, 4),
                                               "weights": _uniform(g, 2, 5)},
             ("xy", "descriptors", "weights"), {"size": (8, 5), "variance": 2.0, "reduce": "none"}),
        Case("1x3x2-20x23-wide", {"xy": _points(g, 1, 3, 20, 23), "descriptors": _normal(g, 1, 3, 2),
                                  "weights": _uniform(g, 1, 3)},
             ("xy", "descriptors", "weights"), {"size": (20, 23), "variance": 9.0, "radius": 18}),
    ]


def splat_call(backend, t, kwargs):
    return (ops.splat_gaussians(t["xy"], t["descriptors"], t.get("weights"), backend=backend, **kwargs),)


def alpha_cases(g):
    logits = _normal(g, 1, 5, 1, 3, 7) * 4
    logits[:, 1] = -1e4  # a keypoint that is (numerically) never visible
    return [
        Case("2x3x3x5x6", {"rgb": _normal(g, 2, 3, 3, 5, 6), "alpha_logits": _normal(g, 2, 3, 1, 5, 6) * 3},
             ("rgb", "alpha_logits"), {}),
        Case("1x1x1x1x1", {"rgb": _normal(g, 1, 1, 1, 1, 1), "alpha_logits": _normal(g, 1, 1, 1, 1, 1)},
             ("rgb", "alpha_logits"), {}),
        Case("1x5x11x3x7", {"rgb": _normal(g, 1, 5, 11, 3, 7), "alpha_logits": logits}, ("rgb", "alpha_logits"), {}),
    ]


def alpha_call(backend, t, kwargs):
    return ops.alpha_composite(t["rgb"], t["alpha_logits"], backend=backend)


def _unit_columns(g, channels, count):
    theta = _normal(g, channels, count)
    return theta / theta.norm(dim=0, keepdim=True)


def sw_cases(g):
    return [
        Case("2x7x3-P5", {"x": _normal(g, 2, 7, 3), "y": _normal(g, 2, 7, 3) + 0.5, "projections": _unit_columns(g, 3, 5)},
             ("x", "y", "projections"), {}),
        Case("1x1-P1", {"x": _normal(g, 1, 1), "y": _normal(g, 1, 1), "projections": _unit_columns(g, 1, 1)},
             ("x", "y", "projections"), {}),
        Case("lead2x3-16x5-P20", {"x": _normal(g, 2, 3, 16, 5), "y": _normal(g, 2, 3, 16, 5) * 2,
                                  "projections": _unit_columns(g, 5, 20)},
             ("x", "y", "projections"), {}),
        Case("33x4-P3", {"x": _normal(g, 33, 4), "y": _normal(g, 33, 4), "projections": _unit_columns(g, 4, 3)},
             ("x", "y", "projections"), {}),
    ]


def sw_call(backend, t, kwargs):
    return (ops.sliced_wasserstein(t["x"], t["y"], projections=t["projections"], backend=backend),)


def gmm_cases(g):
    protos = torch.nn.functional.normalize(_normal(g, 7, 16), dim=-1)
    protos[3] = protos[1]  # duplicate prototypes: nearest-prototype ties go to the lower index
    return [
        Case("4x10x3", {"prototypes": _normal(g, 4, 3), "features": _normal(g, 10, 3),
                        "noise": _normal(g, 10, 3) * 0.02}, ("prototypes",), {"smoothing": 0.01}),
        Case("1x1x1", {"prototypes": _normal(g, 1, 1), "features": _normal(g, 1, 1), "noise": _normal(g, 1, 1) * 0.02},
             ("prototypes",), {"smoothing": 0.01}),
        Case("7x50x16-duplicates", {"prototypes": protos, "features": _normal(g, 50, 16),
                                    "noise": _normal(g, 50, 16) * 0.05}, ("prototypes",), {"smoothing": 0.05}),
        Case("3x5x130-no-noise", {"prototypes": _normal(g, 3, 130), "features": _normal(g, 5, 130),
                                  "noise": torch.zeros(5, 130, dtype=torch.float64)}, ("prototypes",), {"smoothing": 0.0}),
    ]


def gmm_call(backend, t, kwargs):
    """Op level with explicit noise: the public wrapper draws its noise in the input dtype, so a
    half-precision run and its float32 reference would not see the same noise."""
    if backend == "reference":
        return (reference.gmm_prototype_samples(t["prototypes"], t["features"], t["noise"], **kwargs),)
    samples, _ = torch.ops.tusk_triton.gmm_prototype_samples(t["prototypes"], t["features"], t["noise"],
                                                              kwargs["smoothing"])
    return (samples,)


def gmm_public_call(backend, t, kwargs):
    generator = torch.Generator(device=t["prototypes"].device).manual_seed(7)
    return (ops.gmm_prototype_samples(t["prototypes"], t["features"], generator=generator, backend=backend, **kwargs),)


OPS: dict[str, tuple[Callable, Callable]] = {
    "sample_descriptors": (sample_cases, sample_call),
    "detect_keypoints": (detect_cases, detect_call),
    "splat_gaussians": (splat_cases, splat_call),
    "alpha_composite": (alpha_cases, alpha_call),
    "sliced_wasserstein": (sw_cases, sw_call),
    "gmm_prototype_samples": (gmm_cases, gmm_call),
}


# ---------------------------------------------------------------------------------------------


def _check_case(call, case: Case, dtype: torch.dtype) -> None:
    """Forward outputs and gradients (random cotangents) of triton vs reference for one case."""
    half = dtype in (torch.float16, torch.bfloat16)
    ref_dtype = torch.float32 if half else dtype
    # The rounded inputs both backends see; the reference runs on them in float32 for half.
    rounded = {k: v.to(DEVICE, dtype) for k, v in case.tensors.items()}
    tri_in = {k: v.clone().requires_grad_(k in case.grad) for k, v in rounded.items()}
    ref_in = {k: v.to(ref_dtype).requires_grad_(k in case.grad) for k, v in rounded.items()}
    actual = call("triton", tri_in, case.kwargs)
    expected = call("reference", ref_in, case.kwargs)
    floating = [i for i, e in enumerate(expected) if e.is_floating_point()]
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{case.name}: output {i} shape {tuple(a.shape)} != {tuple(e.shape)}"
        if i in floating:
            assert a.dtype == dtype, f"{case.name}: output {i} dtype {a.dtype}"
            assert_close(a, e, msg=f"{case.name}: forward output {i}")
        else:
            assert torch.equal(a.cpu(), e.cpu()), f"{case.name}: output {i} differs"
    generator = torch.Generator().manual_seed(1)
    cotangents = [torch.randn(expected[i].shape, generator=generator, dtype=torch.float64).to(DEVICE, dtype)
                  for i in floating]
    names = list(case.grad)
    grads_actual = torch.autograd.grad([actual[i] for i in floating], [tri_in[n] for n in names], cotangents)
    grads_expected = torch.autograd.grad([expected[i] for i in floating], [ref_in[n] for n in names],
                                         [c.to(ref_dtype) for c in cotangents])
    for name, a, e in zip(names, grads_actual, grads_expected):
        assert a.dtype == dtype
        assert_close(a, e, msg=f"{case.name}: gradient of {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", list(OPS))
def test_forward_and_gradients_match_reference(op, dtype):
    cases, call = OPS[op]
    for case in cases(torch.Generator().manual_seed(0)):
        _check_case(call, case, dtype)


def test_sliced_wasserstein_large_n_path(monkeypatch):
    """Above ``MAX_SORT_POINTS`` the projections are sorted by torch: same results."""
    from tusk.ops.triton import sliced_wasserstein as triton_sw

    monkeypatch.setattr(triton_sw, "MAX_SORT_POINTS", 8)
    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        case = Case("2x9x3-P4-torch-sort", {"x": _normal(g, 2, 9, 3), "y": _normal(g, 2, 9, 3),
                                            "projections": _unit_columns(g, 3, 4)}, ("x", "y", "projections"), {})
        _check_case(sw_call, case, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_gmm_public_op_matches_reference(dtype):
    """Through ``tusk.ops.gmm_prototype_samples`` (noise drawn by the wrapper), leading dims."""
    g = torch.Generator().manual_seed(4)
    case = Case("6x2x5x8", {"prototypes": _normal(g, 6, 8), "features": _normal(g, 2, 5, 8)}, ("prototypes",),
                {"noise_std": 0.1, "smoothing": 0.02})
    _check_case(gmm_public_call, case, dtype)


def test_detect_selection_fills_with_non_peaks():
    """Fewer peaks than k: the remaining slots take the best non-peaks, in order, flagged invalid."""
    ramp = torch.arange(25.0, device=DEVICE).reshape(1, 1, 5, 5)  # every pixel but the last has a larger neighbour
    scores = torch.cat([ramp, ramp.flip(-1)]) / 25
    out = ops.detect_keypoints(scores, 6, backend="triton")
    ref = ops.detect_keypoints(scores, 6, backend="reference")
    assert out.valid.tolist() == ref.valid.tolist() == [[True] + [False] * 5] * 2
    assert_close(out.xy, ref.xy)
    assert_close(out.score, ref.score)


def _small_gradcheck_inputs():
    g = torch.Generator().manual_seed(5)
    xy = _points(g, 1, 3, 4, 5)
    xy = xy.floor() + 0.1 + 0.8 * (xy - xy.floor())  # away from the kinks at integers
    return {
        "sample_descriptors": (lambda f, p: ops.sample_descriptors(f, p, padding="border", backend="triton"),
                               (_normal(g, 1, 2, 4, 5), xy)),
        "detect_keypoints": (lambda s: torch.cat([t.reshape(-1) for t in ops.detect_keypoints(
                                 s, 3, temperature=0.5, backend="triton")[:2]]),
                             (_uniform(g, 1, 4, 5) + torch.arange(20).reshape(1, 4, 5) * 0.01,)),
        "splat_gaussians": (lambda p, d, w: ops.splat_gaussians(p, d, w, (4, 5), variance=0.7, radius=2,
                                                                backend="triton"),
                            (xy.clamp(0.3, 3.7), _normal(g, 1, 3, 2), _uniform(g, 1, 3) + 0.5)),
        "alpha_composite": (lambda r, l: torch.cat([t.reshape(-1) for t in ops.alpha_composite(r, l, backend="triton")]),
                            (_normal(g, 1, 3, 2, 2, 3), _normal(g, 1, 3, 1, 2, 3))),
        "sliced_wasserstein": (lambda x, y, t: ops.sliced_wasserstein(x, y, projections=t, backend="triton"),
                               (_normal(g, 2, 5, 3), _normal(g, 2, 5, 3), _unit_columns(g, 3, 4))),
        "gmm_prototype_samples": (lambda p: ops.gmm_prototype_samples(
                                      p, p.detach().repeat(2, 1), generator=torch.Generator(DEVICE).manual_seed(0),
                                      backend="triton"),
                                  (_normal(g, 3, 4),)),
    }


@pytest.mark.parametrize("op", list(OPS))
def test_gradcheck(op):
    fn, inputs = _small_gradcheck_inputs()[op]
    inputs = tuple(t.to(DEVICE).requires_grad_(True) for t in inputs)
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)


def test_kernels_are_deterministic():
    """Two runs give bitwise-equal outputs and gradients (no atomics on these paths)."""
    g = torch.Generator().manual_seed(9)
    xy = _points(g, 2, 40, 6, 7).to(DEVICE).requires_grad_(True)
    desc = _normal(g, 2, 40, 3).to(DEVICE).float().requires_grad_(True)
    features = _normal(g, 2, 3, 6, 7).to(DEVICE).float().requires_grad_(True)

    def run():
        out = ops.splat_gaussians(xy.float(), desc, None, (6, 7), variance=1.0, backend="triton")
        sampled = ops.sample_descriptors(features, xy.float(), backend="triton")
        loss = (out * torch.linspace(0, 1, out.numel(), device=DEVICE).reshape(out.shape)).sum() + sampled.square().sum()
        return (out, *torch.autograd.grad(loss, (desc, features, xy)))

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_nonfinite_inputs_do_not_crash():
    """NaN/inf coordinates and scores: no crash, no out-of-bounds access; finite inputs elsewhere
    keep finite outputs where the reference's are finite."""
    nan, inf = float("nan"), float("inf")
    xy = torch.tensor([[[nan, 1.0], [1.0, inf], [2.5, 1.5], [-inf, 0.0]]], device=DEVICE)
    desc = torch.ones(1, 4, 2, device=DEVICE)
    for normalize in (True, False):
        out = ops.splat_gaussians(xy, desc, None, (4, 6), normalize=normalize, backend="triton")
        assert out.shape == (1, 2, 4, 6)
    ref = ops.splat_gaussians(xy, desc, None, (4, 6), backend="reference")
    assert_close(ops.splat_gaussians(xy, desc, None, (4, 6), backend="triton"), ref)
    scores = torch.rand(1, 5, 5, device=DEVICE)
    scores[0, 0, 0] = nan
    det = ops.detect_keypoints(scores, 5, backend="triton")
    assert det.xy.shape == (1, 5, 2)
    x = torch.randn(6, 3, device=DEVICE)
    x[2, 1] = nan
    assert math.isnan(float(ops.sliced_wasserstein(x, torch.randn(6, 3, device=DEVICE), projections=8, backend="triton")))
    logits = torch.full((1, 2, 1, 1, 2), -inf, device=DEVICE)
    logits[0, 0, 0, 0, 1] = 0.0
    image, alpha = ops.alpha_composite(torch.ones(1, 2, 3, 1, 2, device=DEVICE), logits, backend="triton")
    assert torch.isnan(image[..., 0]).all() and torch.equal(alpha[0, :, 0, 0, 1].cpu(), torch.tensor([1.0, 0.0]))


def _op_inputs():
    """``(op, args)`` of every ``torch.ops.tusk_triton`` forward op (float32, small, odd sizes)."""
    g = torch.Generator().manual_seed(11)

    def f32(t):
        return t.to(DEVICE, torch.float32)

    theta = _unit_columns(g, 3, 4)
    return {
        "sample_descriptors": (f32(_normal(g, 2, 3, 4, 5)), f32(_points(g, 2, 6, 4, 5)), "border"),
        "detect_keypoints": (f32(_uniform(g, 2, 5, 6)), 4, 3, 3, 0.2),
        "splat_gaussians": (f32(_points(g, 2, 4, 5, 6)), f32(_normal(g, 2, 4, 3)), f32(_uniform(g, 2, 4)),
                            5, 6, 0.5, 1, True, "sum"),
        "alpha_composite": (f32(_normal(g, 2, 3, 2, 4, 5)), f32(_normal(g, 2, 3, 1, 4, 5))),
        "sliced_wasserstein": (f32(_normal(g, 2, 7, 3)), f32(_normal(g, 2, 7, 3)), f32(theta)),
        "gmm_prototype_samples": (f32(_normal(g, 3, 4)), f32(_normal(g, 9, 4)), f32(_normal(g, 9, 4) * 0.1), 0.01),
    }


@pytest.mark.parametrize("op", list(OPS))
def test_opcheck(op):
    """Schema, fake (meta) kernel, autograd registration and AOT dispatch of the triton_op."""
    args = tuple(a.requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in _op_inputs()[op])
    torch.library.opcheck(getattr(torch.ops.tusk_triton, op).default, args)
