"""splat_gaussians: every backend against the reference, gradients, registration, edge cases,
and the truncated window against an untruncated dense Gaussian."""
import math

import pytest
import torch

from gradients import gradcheck
from tolerances import TOLERANCES, assert_close
from tusk.ops import reference, splat_gaussians
from tusk.ops.splat_gaussians import default_radius


def _case(device, dtype, b, k, c, size, *, lo=-1.5, margin=3.0, weights=True, **options):
    """Random keypoints over the image plus a margin (some outside), random descriptors/weights."""
    height, width = size
    span = torch.tensor([width - 1 + margin, height - 1 + margin], device=device, dtype=dtype)
    xy = torch.rand(b, k, 2, device=device, dtype=dtype) * span + lo
    descriptors = torch.randn(b, k, c, device=device, dtype=dtype)
    w = torch.rand(b, k, device=device, dtype=dtype) + 0.5 if weights else None
    return {"xy": xy, "descriptors": descriptors, "weights": w, "size": size, **options}


def _fixed(device, dtype, points, c, size, b=2, **options):
    xy = torch.tensor(points, device=device, dtype=dtype).expand(b, -1, -1).contiguous()
    descriptors = torch.randn(b, xy.shape[1], c, device=device, dtype=dtype)
    weights = torch.rand(b, xy.shape[1], device=device, dtype=dtype) + 0.5
    return {"xy": xy, "descriptors": descriptors, "weights": weights, "size": size, **options}


def sample_inputs(device, dtype):
    """Keyword dicts for splat_gaussians: odd sizes, borders, corners, half pixels, far outside,
    K=0/1, radius 0 and >> map, normalize on/off, weights None, reduce sum/none."""
    cases = []
    for reduce in ("sum", "none"):
        cases += [
            _case(device, dtype, 2, 11, 5, (7, 9), variance=0.5, reduce=reduce),                    # non-square, default r=3
            _case(device, dtype, 2, 11, 5, (7, 9), variance=0.5, normalize=False, reduce=reduce),
            _case(device, dtype, 3, 6, 4, (8, 6), variance=0.05, weights=False, reduce=reduce),     # official variance, r=1
            _case(device, dtype, 1, 3, 2, (1, 1), variance=0.3, reduce=reduce),                     # 1x1 map
            _case(device, dtype, 3, 1, 4, (5, 4), variance=0.7, radius=1, reduce=reduce),           # K=1, batch 3
            _case(device, dtype, 2, 0, 3, (4, 5), reduce=reduce),                                   # K=0
            _case(device, dtype, 2, 5, 3, (6, 7), variance=0.4, radius=0, reduce=reduce),           # radius 0
            _case(device, dtype, 2, 4, 3, (5, 6), variance=0.8, radius=1000, normalize=False, reduce=reduce),  # r >> map
        ]
    cases += [
        _case(device, dtype, 2, 3, 4, (1, 8), variance=0.6, weights=False),                  # single row
        _case(device, dtype, 2, 3, 1, (8, 1), variance=0.6, normalize=False),                # single column, C=1
        _case(device, dtype, 1, 4, 3, (6, 5), variance=0.5, radius=1000),                    # r >> map, normalised
        # Exact integer positions on the borders and corners, exact half pixels (round half up:
        # 1.5 -> 2, -0.5 -> 0, W-0.5 -> W: only the part of the window inside the image counts).
        _fixed(device, dtype, [[0, 0], [8, 0], [0, 5], [8, 5], [1.5, 2.5], [-0.5, 0.5], [8.5, 1.0], [2.0, -0.5], [4.5, 5.5]],
               3, (6, 9), variance=0.4, radius=1),
        _fixed(device, dtype, [[0, 0], [8, 0], [0, 5], [8, 5], [1.5, 2.5], [-0.5, 0.5], [8.5, 1.0], [2.0, -0.5]],
               3, (6, 9), variance=0.4, radius=2, reduce="none"),
        # Just outside (window still reaches the image) and far outside (window misses).
        _fixed(device, dtype, [[-1.2, 2.0], [3.0, 6.4], [-50.0, 2.0], [3.0, 1e6], [-1e9, -1e9], [2.0, 2.0]],
               2, (5, 6), variance=0.5, radius=1),
    ]
    return cases


def _call(case, backend, **overrides):
    kwargs = {k: v for k, v in case.items() if k not in ("xy", "descriptors", "weights", "size")}
    kwargs.update(overrides)
    return splat_gaussians(case["xy"], case["descriptors"], case["weights"], case["size"], backend=backend, **kwargs)


def _describe(case):
    options = {k: v for k, v in case.items() if k not in ("xy", "descriptors", "weights")}
    return f"xy{tuple(case['xy'].shape)} C={case['descriptors'].shape[-1]} weights={case['weights'] is not None} {options}"


def _grad_inputs(case):
    names = ["xy", "descriptors"] + (["weights"] if case["weights"] is not None else [])
    return names, [case[n] for n in names]


def clipped_window_case(device):
    """float32 keypoints whose normalised windows (radius 1) are clipped to one column, one row or
    one pixel (corners), about 1.3 pixels beyond the image (so the window sum is ~1e-7 and rounds
    differently from the Gaussian it normalises), plus interior ones; 128 channels, variance 0.05."""
    points = [[-1.3, 4.3], [16.3, 7.8], [-1.3, -1.4], [16.4, 12.3], [3.2, -1.4], [9.7, 12.3], [5.3, 6.6], [10.1, 2.9]]
    xy = torch.tensor(points, device=device).expand(2, -1, -1).contiguous()
    generator = torch.Generator().manual_seed(5)
    descriptors = torch.randn(2, len(points), 128, generator=generator).to(device)
    weights = (torch.rand(2, len(points), generator=generator) + 0.5).to(device)
    cotangent = torch.randn(2, 128, 12, 16, generator=generator).to(device)
    return xy, descriptors, weights, cotangent


def _xy_gradient(xy, descriptors, weights, cotangent, backend):
    xy = xy.detach().requires_grad_(True)
    out = splat_gaussians(xy, descriptors, weights, (12, 16), variance=0.05, radius=1, backend=backend)
    return torch.autograd.grad(out, xy, cotangent)[0]


class TestSplatGaussians:
    def test_smoke(self, target, dtype):
        device, backend = target
        xy = torch.tensor([[[1.0, 1.0]]], device=device, dtype=dtype)
        out = splat_gaussians(xy, torch.ones(1, 1, 2, device=device, dtype=dtype), None, (3, 3), backend=backend)
        assert out.shape == (1, 2, 3, 3) and out.dtype == dtype and out.device.type == device
        assert_close(out.sum(dim=(2, 3)), torch.ones(1, 2, dtype=dtype, device=device))  # normalised
        # Centre pixel weight of a normalised 3x3 Gaussian at variance 0.05: 1 / (1 + 2e^-10)^2.
        assert_close(out[0, 0, 1, 1], torch.tensor(1 / (1 + 2 * math.exp(-10)) ** 2, dtype=dtype, device=device))

    def test_forward_and_backward_match_reference(self, kernel_target, dtype):
        device, backend = kernel_target
        for case in sample_inputs(device, dtype):
            names, inputs = _grad_inputs(case)
            for t in inputs:
                t.requires_grad_(True)
            expected = _call(case, "reference")
            actual = _call(case, backend)
            assert actual.shape == expected.shape
            assert_close(actual, expected, msg=f"forward {_describe(case)}")
            cotangent = torch.randn_like(expected)
            grads_expected = torch.autograd.grad(expected, inputs, cotangent, allow_unused=True, materialize_grads=True)
            grads_actual = torch.autograd.grad(actual, inputs, cotangent, allow_unused=True, materialize_grads=True)
            for name, a, e in zip(names, grads_actual, grads_expected):
                assert_close(a, e, msg=f"grad {name} {_describe(case)}")

    @pytest.mark.parametrize("variance", [0.05, 0.5, 2.0])
    def test_truncation_error_against_untruncated_gaussian(self, target, dtype, variance):
        """The windowed, window-normalised splat vs a Gaussian over the whole image, normalised
        over the whole image, within a bound derived from the mass outside the window.

        Per axis (x; y alike), with g(i) = exp(-(i - x)^2 / (2 v)) and window centre c =
        floor(x + 1/2) inside the image: the window mass is >= g(c) >= exp(-1 / (8 v)) since
        |c - x| <= 1/2, and every excluded column is >= r + 1/2 away from x (|i - c| >= r + 1),
        so the excluded mass on either side is <= sum_{j>=0} exp(-(r + 1/2 + j)^2 / (2 v)). The
        excluded fraction of the axis mass is therefore at most
            eps_axis = 2 sum_{j>=0} exp(-(r + 1/2 + j)^2 / (2 v)) / exp(-1 / (8 v)).
        The Gaussian is separable, so the dense map keeps a fraction (1 - eps_x)(1 - eps_y) >=
        1 - eps, eps = eps_x + eps_y, of its mass inside the window. Inside the window the
        truncated map T and the dense map D differ by T (1 - (1 - eps_x)(1 - eps_y)) <= eps
        (T <= 1); outside, T = 0 and D <= eps. Hence |T - D| <= eps pointwise per keypoint and
        |splat - dense| <= eps sum_k |w_k d_kc| per pixel and channel. For v = 0.05, r = 1
        (the official setting): eps_axis = 2 e^-20 (1 + e^-40 + ...) = 4.1e-9, eps = 8.2e-9.
        """
        device, backend = target
        height, width = 12, 15
        radius = default_radius(variance)
        eps_axis = 2 * sum(math.exp(-((radius + 0.5 + j) ** 2) / (2 * variance)) for j in range(64))
        eps_axis /= math.exp(-1 / (8 * variance))
        eps = 2 * eps_axis
        xy = torch.rand(3, 7, 2, dtype=torch.float64) * torch.tensor([width - 1e-3, height - 1e-3]) - 0.5  # centres inside
        descriptors = torch.randn(3, 7, 4, dtype=torch.float64)
        weights = torch.rand(3, 7, dtype=torch.float64) + 0.5
        ys = torch.arange(height, dtype=torch.float64)[:, None]
        xs = torch.arange(width, dtype=torch.float64)
        dense = torch.exp(-((xs - xy[..., 0, None, None]) ** 2 + (ys - xy[..., 1, None, None]) ** 2) / (2 * variance))
        dense = dense / dense.sum(dim=(-2, -1), keepdim=True)
        expected = torch.einsum("bkhw,bk,bkc->bchw", dense, weights, descriptors)
        bound = eps * torch.einsum("bk,bkc->bc", weights, descriptors.abs())[..., None, None]
        slack = TOLERANCES[dtype]["atol"] + TOLERANCES[dtype]["rtol"] * expected.abs()

        def splat(r):
            out = splat_gaussians(xy.to(device, dtype), descriptors.to(device, dtype), weights.to(device, dtype),
                                  (height, width), variance=variance, radius=r, backend=backend)
            return out.double().cpu()

        error = (splat(radius) - expected).abs()
        assert (error <= bound + slack).all(), f"max excess {(error - bound - slack).max():.3g} (eps={eps:.3g})"
        # The bound is tight enough to catch a window one pixel too small: at v = 0.5, r = 2
        # drops ~0.5% of the mass (2 e^-6 per axis), peaks are ~0.3, so the error is ~1e-3, ten
        # times the bound for r = 3 (eps = 2.5e-5 times sum |w d| ~ 5).
        if variance == 0.5:
            too_small = (splat(radius - 1) - expected).abs()
            assert (too_small > bound + slack).any()

    @pytest.mark.compiled_sizes
    @pytest.mark.parametrize(
        "reduce, channels, size",
        [("sum", 64, (200, 210)), ("none", 16, (200, 210)), ("sum", 16, (384, 390))],
        ids=["sum-streamed", "none-streamed", "sum-large-planes"],
    )
    def test_large_output(self, kernel_target, reduce, channels, size):
        """Outputs of >= 8 MB come from the C++ buffer pool (a reused buffer holds the previous
        call's values, which must not leak into the next result); planes of <= 256 KB are then
        rendered in scratch and written with streaming stores, larger ones in place."""
        device, backend = kernel_target
        for _ in range(2):
            case = _case(device, torch.float32, 1, 4, channels, size, variance=0.5)
            names, inputs = _grad_inputs(case)
            for t in inputs:
                t.requires_grad_(True)
            actual = _call(case, backend, reduce=reduce)
            expected = _call(case, "reference", reduce=reduce)
            assert actual.numel() * 4 >= 8 << 20
            assert_close(actual, expected)
            cotangent = torch.randn_like(expected)
            for a, e in zip(torch.autograd.grad(actual, inputs, cotangent), torch.autograd.grad(expected, inputs, cotangent)):
                assert_close(a, e)
            del actual

    def test_rounding_rule_half_pixels(self, target, dtype):
        """The window centre is floor(xy + 0.5): 1.5 -> 2, -0.5 -> 0, W - 0.5 -> W (outside)."""
        device, backend = target
        xy = torch.tensor([[[1.5, 0.0], [-0.5, 2.0], [3.5, 1.0], [2.0, 2.5]]], device=device, dtype=dtype)
        descriptors = torch.arange(1.0, 5.0, device=device, dtype=dtype)[None, :, None]
        out = splat_gaussians(xy, descriptors, None, (4, 4), radius=0, reduce="none", backend=backend)
        expected = torch.zeros(1, 4, 1, 4, 4, device=device, dtype=dtype)
        expected[0, 0, 0, 0, 2] = 1.0   # (1.5, 0) -> column 2
        expected[0, 1, 0, 2, 0] = 2.0   # (-0.5, 2) -> column 0
        # (3.5, 1) -> column 4: outside the 4-wide image, splats nothing.
        expected[0, 3, 0, 3, 2] = 4.0   # (2, 2.5) -> row 3
        assert_close(out, expected)

    def test_clipped_window_xy_gradient_is_accurate(self, target):
        """A normalised window clipped to one column (row) makes the splat independent of x (y):
        the exact gradient is 0, which an uncentred formula only reaches by cancelling two large
        terms. float32 results must match the float64 gradient to float32 rounding of the scale."""
        device, backend = target
        xy, descriptors, weights, cotangent = clipped_window_case(device)
        grads = _xy_gradient(xy, descriptors, weights, cotangent, backend)
        exact = _xy_gradient(xy.double(), descriptors.double(), weights.double(), cotangent.double(), "reference")
        assert exact[:, :4, 0].abs().max() < 1e-12 and exact[:, 2:6, 1].abs().max() < 1e-12  # clipped axes
        torch.testing.assert_close(grads.double(), exact, rtol=0, atol=2e-6 * float(exact.abs().max()))

    def test_zero_window_sum_splats_nothing(self, target):
        """A normalised Gaussian that underflows on its whole window splats nothing (no NaN)."""
        device, backend = target
        xy = torch.tensor([[[1.5, 1.5], [2.0, 2.0]]], device=device, dtype=torch.float64, requires_grad=True)
        descriptors = torch.ones(1, 2, 3, device=device, dtype=torch.float64, requires_grad=True)
        out = splat_gaussians(xy, descriptors, None, (4, 4), variance=1e-4, radius=0, backend=backend)
        assert float(out[0, 0].detach().sum()) == pytest.approx(1.0)  # only the keypoint at (2, 2)
        assert out[0, 0, 2, 2] == 1.0
        grads = torch.autograd.grad(out.sum(), (xy, descriptors))
        assert torch.isfinite(grads[0]).all() and (grads[1][0, 0] == 0).all()

    @pytest.mark.parametrize("reduce", ["sum", "none"])
    @pytest.mark.parametrize("normalize", [True, False])
    def test_gradcheck(self, target, reduce, normalize):
        device, backend = target
        dtype = torch.float64
        # Keep xy + 0.5 away from integers: the window jumps there (no gradient by design).
        centres = torch.randint(-1, 6, (2, 4, 2), device=device).to(dtype)
        xy = (centres + 0.7 * (torch.rand(2, 4, 2, device=device, dtype=dtype) - 0.5)).requires_grad_(True)
        descriptors = torch.randn(2, 4, 2, device=device, dtype=dtype, requires_grad=True)
        weights = (torch.rand(2, 4, device=device, dtype=dtype) + 0.5).requires_grad_(True)
        for radius in (1, 100):  # a window inside the map, and one larger than the map
            def fn(p, d, w):
                return splat_gaussians(p, d, w, (4, 5), variance=0.4, radius=radius, normalize=normalize,
                                       reduce=reduce, backend=backend)

            assert gradcheck(fn, (xy, descriptors, weights), device, backend)
        assert gradcheck(
            lambda p, d: splat_gaussians(p, d, None, (4, 5), variance=0.4, normalize=normalize, reduce=reduce, backend=backend),
            (xy, descriptors), device, backend,
        )

    def test_opcheck(self, kernel_target, dtype):
        device, backend = kernel_target
        namespace = torch.ops.tusk_triton if backend == "triton" else torch.ops.tusk
        cases = sample_inputs(device, dtype)
        for case in [cases[0], cases[2], cases[8], cases[-3], cases[-1]]:
            names, inputs = _grad_inputs(case)
            for t in inputs:
                t.requires_grad_(True)
            height, width = case["size"]
            variance = case.get("variance", 0.05)
            radius = case.get("radius", default_radius(variance))
            args = (case["xy"], case["descriptors"], case["weights"], height, width, variance, radius,
                    case.get("normalize", True), case.get("reduce", "sum"))
            torch.library.opcheck(namespace.splat_gaussians.default, args)

    def test_compile_fullgraph(self, target):
        device, backend = target
        xy = (torch.rand(2, 5, 2, device=device) * 6).requires_grad_(True)
        descriptors = torch.randn(2, 5, 4, device=device, requires_grad=True)
        weights = torch.rand(2, 5, device=device, requires_grad=True)

        def fn(p, d, w):
            return splat_gaussians(p, d, w, (7, 8), variance=0.3, backend=backend).square().sum()

        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True)
        assert_close(compiled(xy, descriptors, weights), fn(xy, descriptors, weights))
        for a, e in zip(torch.autograd.grad(compiled(xy, descriptors, weights), (xy, descriptors, weights)),
                        torch.autograd.grad(fn(xy, descriptors, weights), (xy, descriptors, weights))):
            assert_close(a, e)

    def test_non_contiguous_inputs(self, target, dtype):
        device, backend = target
        xy = (torch.rand(2, 2, 9, device=device, dtype=dtype) * 5).transpose(1, 2)  # [2, 9, 2]
        descriptors = torch.randn(2, 4, 9, device=device, dtype=dtype).transpose(1, 2)  # [2, 9, 4]
        weights = torch.rand(9, 2, device=device, dtype=dtype).t()  # [2, 9]
        assert not (xy.is_contiguous() or descriptors.is_contiguous() or weights.is_contiguous())
        for reduce in ("sum", "none"):
            expected = reference.splat_gaussians(xy.contiguous(), descriptors.contiguous(), weights.contiguous(),
                                                 (6, 7), variance=0.3, radius=2, reduce=reduce)
            actual = splat_gaussians(xy, descriptors, weights, (6, 7), variance=0.3, radius=2, reduce=reduce, backend=backend)
            assert_close(actual, expected)

    def test_deterministic(self, kernel_target):
        device, backend = kernel_target
        case = _case(device, torch.float32, 4, 40, 16, (20, 24), variance=0.5)
        names, inputs = _grad_inputs(case)
        for t in inputs:
            t.requires_grad_(True)
        first = _call(case, backend)
        cotangent = torch.randn_like(first)
        grads = torch.autograd.grad(first, inputs, cotangent)
        for _ in range(2):
            again = _call(case, backend)
            assert torch.equal(again, first)
            for a, e in zip(torch.autograd.grad(again, inputs, cotangent), grads):
                assert torch.equal(a, e)

    def test_nan_coordinates_do_not_crash(self, target):
        """A non-finite keypoint splats nothing (normalised); the others are unaffected."""
        device, backend = target
        xy = torch.tensor([[[float("nan"), 1.0], [1.0, float("inf")], [1.5, 1.7]]], device=device, requires_grad=True)
        descriptors = torch.randn(1, 3, 2, device=device, requires_grad=True)
        out = splat_gaussians(xy, descriptors, None, (4, 4), variance=0.3, backend=backend)
        alone = splat_gaussians(xy[:, 2:].detach(), descriptors[:, 2:].detach(), None, (4, 4), variance=0.3, backend=backend)
        assert_close(out, alone)
        grad_xy, grad_d = torch.autograd.grad(out.sum(), (xy, descriptors))
        assert torch.isfinite(grad_xy[0, 2]).all() and torch.isfinite(grad_d[0, 2]).all()
        if backend != "reference":
            assert (grad_d[0, :2] == 0).all()

    @pytest.mark.parametrize(
        "xy, descriptors, weights, size, kwargs, error, match",
        [
            ("nope", torch.zeros(1, 1, 2), None, (3, 3), {}, TypeError, "xy"),
            (torch.zeros(1, 1, 2, dtype=torch.int64), torch.zeros(1, 1, 2), None, (3, 3), {}, TypeError, "xy"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2, dtype=torch.int32), None, (3, 3), {}, TypeError, "descriptors"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2, dtype=torch.float64), None, (3, 3), {}, TypeError, "descriptors"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), torch.zeros(1, 1, dtype=torch.float64), (3, 3), {}, TypeError, "weights"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), torch.zeros(1, 1, dtype=torch.bool), (3, 3), {}, TypeError, "weights"),
            (torch.zeros(1, 2), torch.zeros(1, 1, 2), None, (3, 3), {}, ValueError, "xy"),
            (torch.zeros(1, 1, 3), torch.zeros(1, 1, 2), None, (3, 3), {}, ValueError, "xy"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 2), None, (3, 3), {}, ValueError, "descriptors"),
            (torch.zeros(2, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {}, ValueError, "descriptors"),
            (torch.zeros(1, 3, 2), torch.zeros(1, 2, 2), None, (3, 3), {}, ValueError, "descriptors"),
            (torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), torch.zeros(1, 2), (3, 3), {}, ValueError, "weights"),
            (torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), torch.zeros(3), (3, 3), {}, ValueError, "weights"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, 3, {}, TypeError, "size"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3, 3), {}, TypeError, "size"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (0, 3), {}, ValueError, "size"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, -2), {}, ValueError, "size"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3.0, 3), {}, TypeError, "size"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"variance": 0.0}, ValueError, "variance"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"variance": -1.0}, ValueError, "variance"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"variance": float("nan")}, ValueError, "variance"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"variance": "big"}, TypeError, "variance"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"radius": -1}, ValueError, "radius"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"radius": 1.5}, TypeError, "radius"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"normalize": 1}, TypeError, "normalize"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"reduce": "mean"}, ValueError, "reduce"),
            (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), None, (3, 3), {"backend": "nope"}, ValueError, "backend"),
        ],
    )
    def test_exception(self, target, xy, descriptors, weights, size, kwargs, error, match):
        device, backend = target
        kwargs = {"backend": backend, **kwargs}
        xy = xy.to(device) if isinstance(xy, torch.Tensor) else xy
        weights = weights.to(device) if weights is not None else None
        with pytest.raises(error, match=match):
            splat_gaussians(xy, descriptors.to(device), weights, size, **kwargs)

    def test_mismatched_devices(self):
        other = "cuda" if torch.cuda.is_available() else "meta"
        with pytest.raises(ValueError, match="descriptors"):
            splat_gaussians(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2, device=other), None, (3, 3))
        with pytest.raises(ValueError, match="weights"):
            splat_gaussians(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), torch.zeros(1, 1, device=other), (3, 3))
