"""sample_descriptors: every backend against the reference, gradients, registration, edge cases."""
import pytest
import torch
import torch.nn.functional as F

from gradients import gradcheck
from tolerances import assert_close
from tusk.ops import sample_descriptors, to_normalized
from tusk.ops import reference


def sample_inputs(device, dtype):
    """``(features, xy, padding)`` cases: odd sizes, borders, corners, far outside, K=0/1/H*W."""
    def make(b, c, h, w, k, lo=-1.5, hi=None, padding="zeros"):
        features = torch.randn(b, c, h, w, device=device, dtype=dtype)
        span = torch.tensor([w - 1 + 3.0 if hi is None else hi, h - 1 + 3.0 if hi is None else hi], device=device, dtype=dtype)
        xy = torch.rand(b, k, 2, device=device, dtype=dtype) * span + lo
        return features, xy, padding

    cases = []
    for padding in ("zeros", "border"):
        cases += [
            make(2, 5, 7, 9, 11, padding=padding),      # non-square, some points outside
            make(1, 1, 1, 1, 3, padding=padding),       # 1x1 map
            make(3, 4, 1, 6, 5, padding=padding),       # single row
            make(1, 3, 6, 1, 4, padding=padding),       # single column
            make(2, 8, 4, 5, 1, padding=padding),       # K = 1
            make(1, 2, 3, 4, 12, padding=padding),      # K = H*W
            make(2, 3, 5, 4, 0, padding=padding),       # K = 0
        ]
        # Exact integer positions on the border and corners (where the interpolant has kinks).
        features = torch.randn(2, 3, 5, 6, device=device, dtype=dtype)
        corners = torch.tensor([[0, 0], [5, 0], [0, 4], [5, 4], [2, 0], [5, 2], [3, 3], [2.5, 4]], device=device, dtype=dtype)
        cases.append((features, corners.expand(2, -1, -1), padding))
        # Far outside (every tap out of the image).
        far = torch.tensor([[[-50.0, 2.0], [3.0, 1e6], [-1e9, -1e9]]], device=device, dtype=dtype)
        cases.append((torch.randn(1, 2, 4, 4, device=device, dtype=dtype), far, padding))
    return cases


def _ids(cases):
    return [f"{tuple(f.shape)}-K{xy.shape[1]}-{p}" for f, xy, p in cases]


class TestSampleDescriptors:
    def test_smoke(self, target, dtype):
        device, backend = target
        features = torch.arange(12.0, device=device, dtype=dtype).reshape(1, 1, 3, 4)
        xy = torch.tensor([[[1.5, 1.0], [0.0, 0.0], [3.0, 2.0]]], device=device, dtype=dtype)
        out = sample_descriptors(features, xy, backend=backend)
        assert out.shape == (1, 3, 1) and out.dtype == dtype and out.device.type == device
        assert_close(out[0, :, 0], torch.tensor([5.5, 0.0, 11.0], dtype=dtype))

    def test_forward_and_backward_match_reference(self, kernel_target, dtype):
        device, backend = kernel_target
        for features, xy, padding in sample_inputs(device, dtype):
            features.requires_grad_(True)
            xy.requires_grad_(True)
            expected = reference.sample_descriptors(features, xy, padding=padding)
            actual = sample_descriptors(features, xy, padding=padding, backend=backend)
            assert_close(actual, expected, msg=f"forward {tuple(features.shape)} {padding}")
            cotangent = torch.randn_like(expected)
            grads_expected = torch.autograd.grad(expected, (features, xy), cotangent)
            grads_actual = torch.autograd.grad(actual, (features, xy), cotangent)
            for name, a, e in zip(("features", "xy"), grads_actual, grads_expected):
                assert_close(a, e, msg=f"grad {name} {tuple(features.shape)} {padding}")

    def test_reference_equals_grid_sample(self, dtype):
        for features, xy, padding in sample_inputs("cpu", dtype):
            if xy.shape[1] == 0 or 1 in features.shape[-2:]:
                continue  # 1-pixel axes: see test_single_pixel_axis_differs_from_grid_sample
            height, width = features.shape[-2:]
            grid = to_normalized(xy, (height, width))[:, :, None]
            expected = F.grid_sample(features, grid, mode="bilinear", padding_mode=padding, align_corners=True)
            assert_close(reference.sample_descriptors(features, xy, padding=padding), expected[..., 0].transpose(1, 2), dtype)

    def test_single_pixel_axis_differs_from_grid_sample(self):
        # grid_sample(align_corners=True) maps every coordinate of a 1-pixel axis onto that pixel
        # (its normalisation divides by W-1 = 0); tusk measures distance in pixels, so x = 0.5 on a
        # 1-pixel-wide map is half outside.
        features = torch.ones(1, 1, 3, 1)
        xy = torch.tensor([[[0.5, 1.0]]])
        assert float(sample_descriptors(features, xy, backend="reference")) == 0.5
        grid = to_normalized(xy, (3, 1))[:, :, None]
        assert float(F.grid_sample(features, grid, align_corners=True)) == 1.0

    @pytest.mark.parametrize("padding", ["zeros", "border"])
    def test_gradcheck(self, target, padding):
        device, backend = target
        features = torch.randn(2, 3, 5, 6, device=device, dtype=torch.float64, requires_grad=True)
        # Away from integer coordinates (kinks) so finite differences are valid; some outside.
        xy = (torch.rand(2, 7, 2, device=device, dtype=torch.float64) * 8 - 1.5)
        xy = (xy.floor() + 0.1 + 0.8 * xy.frac()).requires_grad_(True)
        assert gradcheck(
            lambda f, p: sample_descriptors(f, p, padding=padding, backend=backend), (features, xy), device, backend
        )

    def test_opcheck(self, kernel_target, dtype):
        device, backend = kernel_target
        if backend == "triton":
            pytest.importorskip("tusk.ops.triton")
        namespace = torch.ops.tusk_triton if backend == "triton" else torch.ops.tusk
        for features, xy, padding in sample_inputs(device, dtype)[:4]:
            torch.library.opcheck(
                namespace.sample_descriptors.default,
                (features.requires_grad_(True), xy.requires_grad_(True), padding),
            )

    def test_compile_fullgraph(self, target):
        device, backend = target
        features = torch.randn(2, 4, 6, 7, device=device, requires_grad=True)
        xy = torch.rand(2, 5, 2, device=device) * 6

        def fn(f, p):
            return sample_descriptors(f, p, padding="border", backend=backend).square().sum()

        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True)
        assert_close(compiled(features, xy), fn(features, xy))
        assert_close(torch.autograd.grad(compiled(features, xy), features)[0],
                     torch.autograd.grad(fn(features, xy), features)[0])

    def test_non_contiguous_inputs(self, target, dtype):
        device, backend = target
        features = torch.randn(2, 6, 7, 5, device=device, dtype=dtype).transpose(2, 3)  # [2,6,5,7]
        xy = (torch.rand(2, 2, 9, device=device, dtype=dtype) * 5).transpose(1, 2)  # [2,9,2]
        assert not features.is_contiguous() and not xy.is_contiguous()
        expected = reference.sample_descriptors(features.contiguous(), xy.contiguous())
        assert_close(sample_descriptors(features, xy, backend=backend), expected)

    def test_nan_coordinates_do_not_crash(self, target):
        device, backend = target
        features = torch.randn(1, 2, 4, 4, device=device)
        xy = torch.tensor([[[float("nan"), 1.0], [1.0, float("inf")], [1.5, 1.5]]], device=device)
        out = sample_descriptors(features, xy, backend=backend)
        assert torch.isnan(out[0, 0]).all() and torch.isfinite(out[0, 2]).all()

    @pytest.mark.parametrize(
        "features, xy, kwargs, error, match",
        [
            ("not a tensor", torch.zeros(1, 1, 2), {}, TypeError, "features"),
            (torch.zeros(1, 1, 3, 3, dtype=torch.int64), torch.zeros(1, 1, 2), {}, TypeError, "features"),
            (torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2, dtype=torch.int32), {}, TypeError, "xy"),
            (torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2, dtype=torch.float64), {}, TypeError, "xy"),
            (torch.zeros(1, 3, 3), torch.zeros(1, 1, 2), {}, ValueError, "features"),
            (torch.zeros(1, 1, 3, 3), torch.zeros(1, 2), {}, ValueError, "xy"),
            (torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3), {}, ValueError, "xy"),
            (torch.zeros(2, 1, 3, 3), torch.zeros(1, 1, 2), {}, ValueError, "xy"),
            (torch.zeros(1, 1, 0, 3), torch.zeros(1, 1, 2), {}, ValueError, "features"),
            (torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2), {"padding": "reflect"}, ValueError, "padding"),
            (torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2), {"backend": "nope"}, ValueError, "backend"),
        ],
    )
    def test_exception(self, target, features, xy, kwargs, error, match):
        device, backend = target
        kwargs = {"backend": backend, **kwargs}
        if isinstance(features, torch.Tensor):
            features = features.to(device)
        with pytest.raises(error, match=match):
            sample_descriptors(features, xy.to(device), **kwargs)

    def test_mismatched_devices(self):
        if not torch.cuda.is_available():
            meta_xy = torch.zeros(1, 1, 2, device="meta")
            with pytest.raises(ValueError, match="device"):
                sample_descriptors(torch.zeros(1, 1, 3, 3), meta_xy)
        else:  # pragma: no cover - exercised on GPU machines
            with pytest.raises(ValueError, match="device"):
                sample_descriptors(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 2, device="cuda"))
