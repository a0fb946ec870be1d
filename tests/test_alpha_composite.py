"""alpha_composite: every backend against the reference, gradients, registration, edge cases."""
import math

import pytest
import torch

from gradients import gradcheck
from tolerances import assert_close
from tusk.ops import alpha_composite, reference


def _case(device, dtype, b, k, c, h, w, scale=3.0):
    rgb = torch.randn(b, k, c, h, w, device=device, dtype=dtype)
    logits = torch.randn(b, k, 1, h, w, device=device, dtype=dtype) * scale
    return rgb, logits


def sample_inputs(device, dtype):
    """``(rgb, alpha_logits)`` cases: odd sizes, K=1, C=1, 1x1 maps, several pixel blocks with a
    tail, saturated and -inf logits."""
    cases = [
        _case(device, dtype, 2, 4, 3, 5, 7),        # non-square
        _case(device, dtype, 1, 1, 1, 1, 1),        # 1x1 map, K=1, C=1
        _case(device, dtype, 3, 1, 3, 4, 4),        # K=1: alpha = 1
        _case(device, dtype, 2, 5, 1, 3, 300),      # C=1; 900 pixels: several blocks plus a tail
        _case(device, dtype, 1, 3, 2, 1, 1),        # 1x1 map
        _case(device, dtype, 2, 7, 4, 9, 1),        # single column
        _case(device, dtype, 2, 3, 3, 6, 5, scale=60.0),  # near one-hot softmax, exp far below 1
    ]
    # Huge logits (the max is subtracted) and -inf logits (a keypoint that owns nothing).
    rgb, logits = _case(device, dtype, 2, 3, 3, 4, 6)
    logits[:, 0] += 1e4
    logits[:, 1, :, :2] = float("-inf")
    cases.append((rgb, logits))
    return cases


def _ids(case):
    return f"rgb{tuple(case[0].shape)}"


class TestAlphaComposite:
    def test_smoke(self, target, dtype):
        device, backend = target
        rgb = torch.stack([torch.ones(3, 2, 2), torch.zeros(3, 2, 2)])[None].to(device, dtype)  # [1, 2, 3, 2, 2]
        logits = torch.zeros(1, 2, 1, 2, 2, device=device, dtype=dtype)
        logits[0, 0, 0, 0, 0] = math.log(3.0)  # alpha 3/4 vs 1/4 at pixel (0, 0)
        image, alpha = alpha_composite(rgb, logits, backend=backend)
        assert image.shape == (1, 3, 2, 2) and alpha.shape == (1, 2, 1, 2, 2)
        assert image.dtype == dtype and image.device.type == device
        expected = torch.full((1, 3, 2, 2), 0.5, dtype=dtype)
        expected[0, :, 0, 0] = 0.75
        assert_close(image.cpu(), expected)
        assert_close(alpha.sum(dim=1).cpu(), torch.ones(1, 1, 2, 2, dtype=dtype))

    def test_forward_and_backward_match_reference(self, kernel_target, dtype):
        device, backend = kernel_target
        for rgb, logits in sample_inputs(device, dtype):
            rgb.requires_grad_(True)
            logits.requires_grad_(True)
            expected = reference.alpha_composite(rgb, logits)
            actual = alpha_composite(rgb, logits, backend=backend)
            for name, a, e in zip(("image", "alpha"), actual, expected):
                assert_close(a, e, msg=f"{name} {_ids((rgb, logits))}")
            cotangents = [torch.randn_like(e) for e in expected]
            # Both outputs used, the image only (alpha's cotangent is None), alpha only.
            for used in ((0, 1), (0,), (1,)):
                grads = []
                for outputs in (actual, expected):
                    loss = sum((outputs[i] * cotangents[i]).sum() for i in used)
                    grads.append(torch.autograd.grad(loss, (rgb, logits), retain_graph=True, allow_unused=True, materialize_grads=True))
                for name, a, e in zip(("rgb", "alpha_logits"), *grads):
                    assert_close(a, e, msg=f"grad {name} outputs={used} {_ids((rgb, logits))}")

    @pytest.mark.compiled_sizes
    @pytest.mark.parametrize("shape", [(1, 2, 8, 513, 515), (2, 8, 1, 515, 513)], ids=["image-rgb", "alpha-logits"])
    def test_large_outputs(self, kernel_target, dtype, shape):
        """Outputs of >= 8 MB are written with streaming stores (odd row lengths: unaligned
        rows) into buffers from the C++ pool (the second round reuses the first one's)."""
        device, backend = kernel_target
        b, k, c, h, w = shape
        if dtype == torch.float64:  # same bytes with half the elements
            k, c = (k // 2, c) if c == 1 else (k, c // 2)
        for _ in range(2):
            rgb, logits = _case(device, dtype, b, k, c, h, w)
            rgb.requires_grad_(True)
            logits.requires_grad_(True)
            actual = alpha_composite(rgb, logits, backend=backend)
            expected = reference.alpha_composite(rgb, logits)
            for a, e in zip(actual, expected):
                assert_close(a, e)
            cotangents = [torch.randn_like(e) for e in expected]
            grads_actual = torch.autograd.grad(actual, (rgb, logits), cotangents)
            grads_expected = torch.autograd.grad(expected, (rgb, logits), cotangents)
            for a, e in zip(grads_actual, grads_expected):
                assert_close(a, e)
            del actual, grads_actual

    def test_zero_channels(self, target):
        device, backend = target
        rgb, logits = _case(device, torch.float32, 2, 3, 0, 4, 5)
        image, alpha = alpha_composite(rgb, logits, backend=backend)
        assert image.shape == (2, 0, 4, 5)
        assert_close(alpha, torch.softmax(logits, dim=1))

    def test_gradcheck(self, target):
        device, backend = target
        for b, k, c, h, w in ((2, 3, 2, 3, 4), (1, 1, 1, 1, 1), (1, 4, 1, 2, 1)):
            rgb, logits = _case(device, torch.float64, b, k, c, h, w, scale=1.0)
            rgb.requires_grad_(True)
            logits.requires_grad_(True)
            assert gradcheck(lambda r, l: alpha_composite(r, l, backend=backend), (rgb, logits), device, backend)
            assert gradcheck(lambda r, l: alpha_composite(r, l, backend=backend)[0], (rgb, logits), device, backend)

    def test_opcheck(self, kernel_target, dtype):
        device, backend = kernel_target
        namespace = torch.ops.tusk_triton if backend == "triton" else torch.ops.tusk
        for rgb, logits in sample_inputs(device, dtype)[:4]:
            torch.library.opcheck(namespace.alpha_composite.default, (rgb.requires_grad_(True), logits.requires_grad_(True)))

    def test_compile_fullgraph(self, target):
        device, backend = target
        rgb, logits = _case(device, torch.float32, 2, 3, 3, 6, 7)
        rgb.requires_grad_(True)
        logits.requires_grad_(True)

        def image_loss(r, l):
            return alpha_composite(r, l, backend=backend)[0].square().sum()

        def both_loss(r, l):
            image, alpha = alpha_composite(r, l, backend=backend)
            return image.square().sum() + (alpha * torch.arange(3.0, device=device)[:, None, None, None]).sum()

        for fn in (image_loss, both_loss):
            torch._dynamo.reset()
            compiled = torch.compile(fn, fullgraph=True)
            assert_close(compiled(rgb, logits), fn(rgb, logits))
            for a, e in zip(torch.autograd.grad(compiled(rgb, logits), (rgb, logits)),
                            torch.autograd.grad(fn(rgb, logits), (rgb, logits))):
                assert_close(a, e)

    def test_non_contiguous_inputs(self, target, dtype):
        device, backend = target
        # The official decoder's layout: rgb and alpha are channel slices of one 4-channel output.
        decoded = torch.randn(2, 3, 4, 5, 6, device=device, dtype=dtype)
        rgb, logits = decoded[:, :, :3], decoded[:, :, 3:]
        transposed = torch.randn(2, 3, 3, 6, 5, device=device, dtype=dtype).transpose(3, 4)
        for r, l in ((rgb, logits), (transposed, logits)):
            assert not r.is_contiguous()
            expected = reference.alpha_composite(r.contiguous(), l.contiguous())
            for a, e in zip(alpha_composite(r, l, backend=backend), expected):
                assert_close(a, e)

    def test_deterministic(self, kernel_target):
        device, backend = kernel_target
        rgb, logits = _case(device, torch.float32, 3, 5, 3, 30, 41)
        rgb.requires_grad_(True)
        logits.requires_grad_(True)
        cotangent = torch.randn(3, 3, 30, 41, device=device)
        first = alpha_composite(rgb, logits, backend=backend)
        grads = torch.autograd.grad(first[0], (rgb, logits), cotangent)
        again = alpha_composite(rgb, logits, backend=backend)
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
        for a, e in zip(torch.autograd.grad(again[0], (rgb, logits), cotangent), grads):
            assert torch.equal(a, e)

    def test_nan_does_not_crash(self, target):
        """NaN in one pixel's logits gives NaN at that pixel only."""
        device, backend = target
        rgb, logits = _case(device, torch.float32, 1, 3, 2, 3, 3)
        logits[0, 1, 0, 1, 2] = float("nan")
        rgb[0, 0, 1, 0, 0] = float("nan")
        rgb.requires_grad_(True)
        logits.requires_grad_(True)
        image, alpha = alpha_composite(rgb, logits, backend=backend)
        assert torch.isnan(alpha[0, :, 0, 1, 2]).all() and torch.isnan(image[0, :, 1, 2]).all()
        assert torch.isnan(image[0, 1, 0, 0])
        finite = torch.ones(3, 3, dtype=torch.bool)
        finite[1, 2] = finite[0, 0] = False
        assert torch.isfinite(alpha[0, :, 0][:, finite]).all() and torch.isfinite(image[0, 0][finite]).all()
        grad_rgb, grad_logits = torch.autograd.grad(image.sum(), (rgb, logits))
        assert torch.isfinite(grad_rgb[0, :, :, 0, 1]).all() and torch.isfinite(grad_logits[0, :, :, 0, 1]).all()

    @pytest.mark.parametrize(
        "rgb, logits, kwargs, error, match",
        [
            ("nope", torch.zeros(1, 2, 1, 3, 3), {}, TypeError, "rgb"),
            (torch.zeros(1, 2, 3, 3, 3), [[0.0]], {}, TypeError, "alpha_logits"),
            (torch.zeros(1, 2, 3, 3, 3, dtype=torch.int64), torch.zeros(1, 2, 1, 3, 3), {}, TypeError, "rgb"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 1, 3, 3, dtype=torch.bool), {}, TypeError, "alpha_logits"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 1, 3, 3, dtype=torch.float64), {}, TypeError, "alpha_logits"),
            (torch.zeros(2, 3, 3, 3), torch.zeros(1, 2, 1, 3, 3), {}, ValueError, "rgb"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 3, 3), {}, ValueError, "alpha_logits"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 3, 3, 3), {}, ValueError, "alpha_logits"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(2, 2, 1, 3, 3), {}, ValueError, "alpha_logits"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 3, 1, 3, 3), {}, ValueError, "alpha_logits"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 1, 3, 4), {}, ValueError, "alpha_logits"),
            (torch.zeros(1, 0, 3, 3, 3), torch.zeros(1, 0, 1, 3, 3), {}, ValueError, "rgb"),
            (torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 1, 3, 3), {"backend": "nope"}, ValueError, "backend"),
        ],
    )
    def test_exception(self, target, rgb, logits, kwargs, error, match):
        device, backend = target
        kwargs = {"backend": backend, **kwargs}
        rgb = rgb.to(device) if isinstance(rgb, torch.Tensor) else rgb
        logits = logits.to(device) if isinstance(logits, torch.Tensor) else logits
        with pytest.raises(error, match=match):
            alpha_composite(rgb, logits, **kwargs)

    def test_mismatched_devices(self):
        other = "cuda" if torch.cuda.is_available() else "meta"
        with pytest.raises(ValueError, match="alpha_logits"):
            alpha_composite(torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 1, 3, 3, device=other))
