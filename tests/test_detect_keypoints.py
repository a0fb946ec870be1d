"""detect_keypoints: every backend against the reference, gradients, registration, edge cases."""
import pytest
import torch

from gradients import gradcheck
from tolerances import assert_close
from tusk.ops import detect_keypoints, reference
from tusk.ops.reference.detect_keypoints import select_peaks, soft_argmax


def _bumps(batch, height, width, centres, dtype, device):
    """Low noise plus unit bumps at the given (x, y) centres: peaks on borders and corners."""
    ys = torch.arange(height, device=device, dtype=dtype)[:, None]
    xs = torch.arange(width, device=device, dtype=dtype)[None, :]
    scores = 0.1 * torch.rand(batch, height, width, device=device, dtype=dtype)
    for x, y in centres:
        scores = scores + torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2.0)
    return scores


def sample_inputs(device, dtype):
    """``(scores, k, kwargs, smooth)`` cases; ``smooth`` = no plateaus (finite differences valid).

    Covers odd and non-square sizes, 1x1 maps, single rows and columns, K=1, K=H*W (fewer peaks
    than K), window != nms_size, windows larger than the map, batch 1 and > 1, multi-strip
    maps (B=1, H >= 64), [B, 1, H, W] input, plateaus, a constant map and border/corner peaks;
    then the peak options (strict, border, image_size, peak_threshold) on the same kinds of maps.
    """
    def rand(*shape):
        return torch.rand(*shape, device=device, dtype=dtype)

    def plateaus(*shape):
        return torch.randint(0, 4, shape, device=device).to(dtype) / 4

    def sizes(rows):
        return torch.tensor(rows, device=device)

    return [
        (rand(2, 9, 13), 5, dict(nms_size=3), True),
        (rand(1, 1, 1), 1, dict(nms_size=3), True),
        (rand(3, 1, 17), 4, dict(nms_size=5, window=3), True),
        (rand(2, 15, 1), 3, dict(nms_size=3, window=5), True),
        (rand(2, 8, 8), 1, dict(nms_size=3), True),
        (rand(1, 4, 5), 20, dict(nms_size=3), True),  # K = H*W: fewer peaks than K
        (rand(2, 11, 10), 6, dict(nms_size=3, window=7), True),
        (rand(2, 12, 9), 4, dict(nms_size=7, window=3), True),
        (rand(2, 5, 4), 6, dict(nms_size=9, window=11), True),  # windows larger than the map
        (rand(1, 70, 50), 40, dict(nms_size=5, window=5, temperature=0.1), True),  # strips
        (rand(3, 1, 14, 11), 7, dict(nms_size=3, window=5), True),  # [B, 1, H, W]
        (_bumps(2, 7, 9, [(0, 0), (8, 0), (0, 6), (8, 6), (4, 0), (8, 3)], dtype, device), 6,
         dict(nms_size=3, window=5), True),  # border and corner peaks
        (plateaus(2, 10, 12), 9, dict(nms_size=3, window=5), False),
        (plateaus(1, 6, 7), 42, dict(nms_size=5, window=3), False),  # ties in the non-peak fill
        (torch.full((2, 5, 6), 0.5, device=device, dtype=dtype), 30, dict(nms_size=3), False),
        # The peak options: strict maxima, a border, per-image valid sizes, a peak threshold.
        (rand(2, 11, 13), 6, dict(nms_size=5, strict=True, border=2), True),  # kornia's nms2d rule
        (plateaus(2, 10, 12), 9, dict(nms_size=3, window=3, strict=True), False),  # ties: no strict peak
        (rand(3, 9, 10), 5, dict(nms_size=3, window=5, border=1, image_size=sizes([[7, 9], [10, 4], [2, 20]])),
         True),  # the last image keeps no pixel: only invalid slots
        (rand(2, 12, 9), 4, dict(nms_size=3, strict=True, image_size=sizes([[8.7, 12.0], [9.0, 5.5]]),
                                 peak_threshold=torch.tensor([0.5, 0.9], device=device)), True),
        (rand(1, 1, 1), 1, dict(nms_size=3, strict=True), True),  # alone in its window: a strict peak
        (rand(1, 70, 50), 40, dict(nms_size=5, strict=True, border=3, peak_threshold=0.3), True),  # strips
        (torch.full((1, 4, 5), 0.5, device=device, dtype=dtype), 20, dict(nms_size=3, strict=True), False),
        # A few more slots than peaks (the C++ keeps the fillers in a heap), then fill=False.
        (_bumps(2, 30, 40, [(5, 5), (30, 20), (20, 10)], dtype, device), 40, dict(nms_size=9, window=3), True),
        (rand(2, 9, 11), 60, dict(nms_size=3, strict=True, border=1, fill=False), True),
        (rand(1, 70, 50), 800, dict(nms_size=5, window=3, fill=False), True),  # strips; pixel 0 in the rest
    ]


def _as_maps(scores):
    return scores[:, 0] if scores.dim() == 4 else scores


class TestDetectKeypoints:
    def test_smoke(self, target, dtype):
        device, backend = target
        heat = torch.zeros(1, 1, 5, 7, device=device, dtype=dtype)
        heat[0, 0, 2, 3] = 1.0
        det = detect_keypoints(heat, 1, backend=backend)
        assert det.xy.shape == (1, 1, 2) and det.score.shape == (1, 1) and det.valid.shape == (1, 1)
        assert det.xy.dtype == dtype and det.valid.dtype == torch.bool
        assert_close(det.xy, torch.tensor([[[3.0, 2.0]]], dtype=dtype))
        assert bool(det.valid.all())

    def test_selection_matches_reference_exactly(self, dtype):
        # The raw op also returns each slot's flat pixel index: selection must be identical.
        for scores, k, kw, _ in sample_inputs("cpu", dtype):
            maps = _as_maps(scores).contiguous()
            nms, window = kw.get("nms_size", 3), kw.get("window", kw.get("nms_size", 3))
            options = {name: kw[name] for name in ("strict", "border", "image_size", "fill") if name in kw}
            if "image_size" in options:
                options["image_size"] = options["image_size"].long()
            _, _, is_peak, index = torch.ops.tusk.detect_keypoints(maps, k, nms, window, 0.2, **options)
            expected_index, expected_peak = select_peaks(maps, k, nms, **options)
            assert torch.equal(index, expected_index), f"{tuple(scores.shape)} k={k} {kw}"
            assert torch.equal(is_peak, expected_peak), f"{tuple(scores.shape)} k={k} {kw}"

    def test_forward_and_backward_match_reference(self, kernel_target, dtype):
        device, backend = kernel_target
        for scores, k, kw, smooth in sample_inputs(device, dtype):
            scores.requires_grad_(True)
            expected = detect_keypoints(scores, k, backend="reference", **kw)
            actual = detect_keypoints(scores, k, backend=backend, **kw)
            msg = f"{tuple(scores.shape)} k={k} {kw}"
            assert torch.equal(actual.valid, expected.valid), msg
            assert_close(actual.xy, expected.xy, msg=f"xy {msg}")
            assert_close(actual.score, expected.score, msg=f"score {msg}")
            # On plateaus xy can sit exactly on an integer, where the bilinear score has a kink
            # and the two backends may round to different sides: there, compare the xy path only.
            grad_xy = torch.randn_like(expected.xy)
            grad_score = torch.randn_like(expected.score) if smooth else torch.zeros_like(expected.score)
            (grad_expected,) = torch.autograd.grad((expected.xy, expected.score), scores, (grad_xy, grad_score))
            (grad_actual,) = torch.autograd.grad((actual.xy, actual.score), scores, (grad_xy, grad_score))
            assert grad_actual.shape == scores.shape
            # float32: each gradient sums up to window^2 terms scaled by 1/T (seen: 0.9x the
            # table's tolerance over 60 seeds), hence twice the tolerance.
            assert_close(grad_actual, grad_expected, scale=2.0 if dtype == torch.float32 else 1.0,
                         msg=f"grad {msg}")

    def test_only_one_output_used(self, target):
        device, backend = target
        scores = torch.rand(2, 9, 8, device=device, dtype=torch.float64, requires_grad=True)
        for pick in (0, 1):
            out = detect_keypoints(scores, 3, nms_size=3, backend=backend)[pick]
            ref = detect_keypoints(scores, 3, nms_size=3, backend="reference")[pick]
            cotangent = torch.randn_like(ref)
            assert_close(torch.autograd.grad(out, scores, cotangent)[0], torch.autograd.grad(ref, scores, cotangent)[0])

    @pytest.mark.parametrize("shape, k, nms_size, window, options", [
        ((2, 5, 6), 3, 3, 5, {}),
        ((1, 4, 5), 20, 3, 3, {}),
        ((2, 7, 8), 4, 3, 5, {"strict": True, "border": 1, "image_size": [[7, 6], [5, 8]]}),
    ])
    def test_gradcheck(self, target, shape, k, nms_size, window, options):
        device, backend = target
        # Continuous random values: no plateaus (the selection cannot flip under the finite
        # difference steps) and no refined position exactly on an integer (no bilinear kink).
        scores = torch.rand(*shape, device=device, dtype=torch.float64, requires_grad=True)
        options = {name: torch.tensor(v, device=device) if name == "image_size" else v for name, v in options.items()}

        def fn(s):
            det = detect_keypoints(s, k, nms_size=nms_size, window=window, temperature=0.3, backend=backend,
                                   **options)
            return det.xy, det.score

        assert gradcheck(fn, (scores,), device, backend)

    def test_opcheck(self, kernel_target, dtype):
        device, backend = kernel_target
        if backend == "triton":
            pytest.importorskip("tusk.ops.triton")
        namespace = torch.ops.tusk_triton if backend == "triton" else torch.ops.tusk
        for scores, k, kw, _ in sample_inputs(device, dtype)[:3]:
            maps = _as_maps(scores).contiguous().requires_grad_(True)
            nms = kw.get("nms_size", 3)
            torch.library.opcheck(namespace.detect_keypoints.default, (maps, k, nms, kw.get("window", nms), 0.2))
        # The peak options, image_size included (an int64 tensor input).
        maps = torch.rand(2, 9, 11, device=device, dtype=dtype, requires_grad=True)
        image_size = torch.tensor([[9, 7], [11, 9]], device=device)
        torch.library.opcheck(namespace.detect_keypoints.default, (maps, 4, 5, 3, 0.2, True, 2, image_size))
        torch.library.opcheck(namespace.detect_keypoints.default, (maps, 50, 3, 3, 0.2, True, 1, None, False))

    def test_compile_fullgraph(self, target):
        device, backend = target
        scores = torch.rand(2, 1, 12, 10, device=device, requires_grad=True)

        def fn(s):
            det = detect_keypoints(s, 4, nms_size=3, window=5, threshold=0.1, backend=backend)
            return (det.xy.square().sum() + det.score.sum()) * det.valid.any()

        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True)
        assert_close(compiled(scores), fn(scores))
        assert_close(torch.autograd.grad(compiled(scores), scores)[0], torch.autograd.grad(fn(scores), scores)[0])

    def test_compile_fullgraph_peak_options(self, target):
        device, backend = target
        scores = torch.rand(2, 1, 12, 10, device=device, requires_grad=True)
        image_size = torch.tensor([[10, 9], [7, 12]], device=device)
        threshold = torch.tensor([0.3, 0.5], device=device)

        def fn(s):
            det = detect_keypoints(s, 6, nms_size=3, window=5, strict=True, border=1, image_size=image_size,
                                   peak_threshold=threshold, return_index=True, backend=backend)
            return (det.xy.square().sum() + det.score.sum()) * det.valid.sum(), det.index

        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True)
        (value, index), (expected_value, expected_index) = compiled(scores), fn(scores)
        assert torch.equal(index, expected_index)
        assert_close(value, expected_value)
        assert_close(torch.autograd.grad(value, scores)[0], torch.autograd.grad(expected_value, scores)[0])

    def test_deterministic_and_thread_independent(self, kernel_target):
        device, backend = kernel_target
        scores = torch.rand(1, 96, 40, device=device, requires_grad=True)  # B=1: several strips
        grad_xy = torch.randn(1, 60, 2, device=device)
        grad_score = torch.randn(1, 60, device=device)
        threads = torch.get_num_threads()
        results = []
        try:
            for n in (1, 2, 1):
                torch.set_num_threads(n)
                det = detect_keypoints(scores, 60, nms_size=3, window=7, backend=backend)
                (grad,) = torch.autograd.grad((det.xy, det.score), scores, (grad_xy, grad_score))
                results.append((det.xy, det.score, det.valid, grad))
        finally:
            torch.set_num_threads(threads)
        for other in results[1:]:
            for a, b in zip(results[0], other):
                assert torch.equal(a, b)

    def test_fewer_peaks_than_k(self, target):
        device, backend = target
        scores = 1e-3 * torch.arange(30.0, device=device).reshape(1, 5, 6)  # a ramp: no plateau
        scores[0, 1, 1] = 1.0
        scores[0, 3, 4] = 0.8
        det = detect_keypoints(scores, 5, nms_size=5, window=3, backend=backend)
        assert det.valid.tolist() == [[True, True, False, False, False]]
        assert_close(det.xy[0, :2].round(), torch.tensor([[1.0, 1.0], [4.0, 3.0]]))

    def test_constant_map_every_pixel_is_a_peak(self, target):
        device, backend = target
        scores = torch.full((1, 3, 4), 0.25, device=device)
        det = detect_keypoints(scores, 12, nms_size=3, window=3, backend=backend)
        assert bool(det.valid.all())
        # Ties go to the lower flat index (slots in raster order); on a flat window the
        # soft-argmax lands on the centre of the window clipped to the image.
        expected = []
        for y in range(3):
            for x in range(4):
                expected.append([(max(x - 1, 0) + min(x + 1, 3)) / 2, (max(y - 1, 0) + min(y + 1, 2)) / 2])
        assert_close(det.xy[0], torch.tensor(expected, device=device))
        assert_close(det.score, torch.full((1, 12), 0.25, device=device))

    def test_threshold(self, target):
        device, backend = target
        scores = torch.rand(2, 10, 11, device=device)
        plain = detect_keypoints(scores, 8, backend=backend)
        cut = float(plain.score.median())
        thresholded = detect_keypoints(scores, 8, threshold=cut, backend=backend)
        assert torch.equal(thresholded.valid, plain.valid & (plain.score >= cut))
        assert torch.equal(thresholded.xy, plain.xy)

    def test_input_layouts(self, target, dtype):
        device, backend = target
        scores = torch.rand(2, 9, 7, device=device, dtype=dtype)
        three = detect_keypoints(scores, 5, backend=backend)
        four = detect_keypoints(scores[:, None], 5, backend=backend)
        transposed = detect_keypoints(scores.transpose(1, 2).contiguous().transpose(1, 2), 5, backend=backend)
        for other in (four, transposed):
            for a, b in zip(three, other):
                assert torch.equal(a, b)

    def test_nan_and_inf_inputs(self, target):
        device, backend = target
        scores = torch.rand(3, 8, 9, device=device, requires_grad=True)
        with torch.no_grad():
            scores[0, 2, 3] = float("nan")
            scores[0, 5, 5] = float("inf")  # next to a NaN: not a peak (max_pool2d propagates NaN)
            scores[0, 5, 6] = float("nan")
            scores[1] = float("nan")
            scores[2, 1, 1] = float("-inf")
            scores[2, 6, 2] = float("inf")
        det = detect_keypoints(scores, 5, nms_size=3, window=3, backend=backend)
        expected = detect_keypoints(scores, 5, nms_size=3, window=3, backend="reference")
        assert not bool(det.valid[1].any())  # no pixel of an all-NaN map is a peak
        assert torch.equal(det.valid, expected.valid)
        assert_close(det.xy, expected.xy)  # NaN where the reference has NaN
        assert_close(det.score, expected.score)
        (det.xy.nansum() + det.score.nansum()).backward()  # no crash, gradient of the right shape
        assert scores.grad.shape == scores.shape
        if backend == "cpp":
            _, _, is_peak, index = torch.ops.tusk.detect_keypoints(scores.detach(), 5, 3, 3, 0.2)
            expected_index, expected_peak = select_peaks(scores.detach(), 5, 3)
            assert torch.equal(index, expected_index) and torch.equal(is_peak, expected_peak)

    @pytest.mark.parametrize(
        "scores, k, kwargs, error, match",
        [
            ("not a tensor", 1, {}, TypeError, "scores"),
            (torch.zeros(1, 4, 4, dtype=torch.int64), 1, {}, TypeError, "scores"),
            (torch.zeros(1, 4, 4, dtype=torch.bool), 1, {}, TypeError, "scores"),
            (torch.zeros(4, 4), 1, {}, ValueError, "scores"),
            (torch.zeros(1, 1, 1, 4, 4), 1, {}, ValueError, "scores"),
            (torch.zeros(1, 2, 4, 4), 1, {}, ValueError, "scores"),
            (torch.zeros(1, 0, 4), 1, {}, ValueError, "scores"),
            (torch.zeros(0, 4, 4), 1, {}, ValueError, "scores"),
            (torch.zeros(1, 4, 4), 0, {}, ValueError, "k"),
            (torch.zeros(1, 4, 4), 17, {}, ValueError, "k"),
            (torch.zeros(1, 4, 4), 2.0, {}, TypeError, "k"),
            (torch.zeros(1, 4, 4), True, {}, TypeError, "k"),
            (torch.zeros(1, 4, 4), 1, {"nms_size": 4}, ValueError, "nms_size"),
            (torch.zeros(1, 4, 4), 1, {"nms_size": 0}, ValueError, "nms_size"),
            (torch.zeros(1, 4, 4), 1, {"nms_size": 3.0}, TypeError, "nms_size"),
            (torch.zeros(1, 4, 4), 1, {"window": 2}, ValueError, "window"),
            (torch.zeros(1, 4, 4), 1, {"window": "5"}, TypeError, "window"),
            (torch.zeros(1, 4, 4), 1, {"temperature": 0.0}, ValueError, "temperature"),
            (torch.zeros(1, 4, 4), 1, {"temperature": -1}, ValueError, "temperature"),
            (torch.zeros(1, 4, 4), 1, {"temperature": float("nan")}, ValueError, "temperature"),
            (torch.zeros(1, 4, 4), 1, {"temperature": float("inf")}, ValueError, "temperature"),
            (torch.zeros(1, 4, 4), 1, {"temperature": "warm"}, TypeError, "temperature"),
            (torch.zeros(1, 4, 4), 1, {"threshold": "high"}, TypeError, "threshold"),
            (torch.zeros(1, 4, 4), 1, {"strict": 1}, TypeError, "strict"),
            (torch.zeros(1, 4, 4), 1, {"border": -1}, ValueError, "border"),
            (torch.zeros(1, 4, 4), 1, {"border": 1.0}, TypeError, "border"),
            (torch.zeros(1, 4, 4), 1, {"image_size": (4, 4)}, TypeError, "image_size"),
            (torch.zeros(1, 4, 4), 1, {"image_size": torch.tensor([4, 4])}, ValueError, "image_size"),
            (torch.zeros(2, 4, 4), 1, {"image_size": torch.tensor([[4, 4]])}, ValueError, "image_size"),
            (torch.zeros(1, 4, 4), 1, {"image_size": torch.tensor([[4, 4, 1]])}, ValueError, "image_size"),
            (torch.zeros(1, 4, 4), 1, {"image_size": torch.tensor([[True, True]])}, TypeError, "image_size"),
            (torch.zeros(1, 4, 4), 1, {"peak_threshold": "0.5"}, TypeError, "peak_threshold"),
            (torch.zeros(1, 4, 4), 1, {"peak_threshold": True}, TypeError, "peak_threshold"),
            (torch.zeros(2, 4, 4), 1, {"peak_threshold": torch.zeros(3)}, ValueError, "peak_threshold"),
            (torch.zeros(2, 4, 4), 1, {"peak_threshold": torch.zeros(2, 1)}, ValueError, "peak_threshold"),
            (torch.zeros(1, 4, 4), 1, {"peak_threshold": torch.tensor([True])}, TypeError, "peak_threshold"),
            (torch.zeros(1, 4, 4), 1, {"return_index": "yes"}, TypeError, "return_index"),
            (torch.zeros(1, 4, 4), 1, {"fill": 0}, TypeError, "fill"),
            (torch.zeros(1, 4, 4), 1, {"backend": "nope"}, ValueError, "backend"),
        ],
    )
    def test_exception(self, target, scores, k, kwargs, error, match):
        device, backend = target
        kwargs = {"backend": backend, **kwargs}
        if isinstance(scores, torch.Tensor):
            scores = scores.to(device)
        with pytest.raises(error, match=match):
            detect_keypoints(scores, k, **kwargs)

    def test_strict_maxima_exclude_ties_and_plateaus(self, target):
        device, backend = target
        scores = torch.zeros(1, 5, 8, device=device)
        scores[0, 2, 1] = scores[0, 2, 2] = 1.0  # a tied pair: both are maxima, neither strict
        scores[0, 2, 6] = 0.5  # an isolated maximum
        loose = detect_keypoints(scores, 3, nms_size=3, backend=backend, return_index=True)
        strict = detect_keypoints(scores, 3, nms_size=3, strict=True, backend=backend, return_index=True)
        assert loose.index[0, :3].tolist() == [17, 18, 22] and loose.valid.tolist() == [[True] * 3]
        assert strict.index[0, 0].item() == 22 and strict.valid.tolist() == [[True, False, False]]
        flat = detect_keypoints(torch.full((2, 4, 4), 0.25, device=device), 16, strict=True, backend=backend)
        assert not bool(flat.valid.any())  # a plateau has no strict maximum

    def test_peak_rule_matches_a_brute_force_definition(self, target):
        # Independent of the reference's implementation: every pixel judged by its own loops.
        device, backend = target
        gen = torch.Generator().manual_seed(3)
        scores = torch.randint(0, 5, (3, 9, 11), generator=gen).float() / 4  # many ties
        image_size = torch.tensor([[11, 9], [6, 9], [9, 4]])
        for nms_size, strict, border in [(3, True, 1), (5, True, 2), (3, False, 2), (5, True, 0)]:
            det = detect_keypoints(scores.to(device), 99, nms_size=nms_size, strict=strict, border=border,
                                   image_size=image_size.to(device), return_index=True, backend=backend)
            r = nms_size // 2
            for b in range(3):
                expected = set()
                for y in range(9):
                    for x in range(11):
                        if not (border <= x < min(11, int(image_size[b, 0])) - border
                                and border <= y < min(9, int(image_size[b, 1])) - border):
                            continue
                        window = scores[b, max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1]
                        value = scores[b, y, x]
                        if strict:
                            ok = bool((window < value).sum() == window.numel() - 1)
                        else:
                            ok = bool(value == window.max())
                        if ok:
                            expected.add(y * 11 + x)
                got = set(det.index[b][det.valid[b]].tolist())
                assert got == expected, (nms_size, strict, border, b)

    def test_image_size_bounds_peaks_per_image(self, target):
        device, backend = target
        scores = torch.rand(3, 12, 14, device=device)
        image_size = torch.tensor([[14, 12], [9, 5], [-3, 40]], device=device)
        det = detect_keypoints(scores, 20, nms_size=3, border=1, image_size=image_size, return_index=True,
                               backend=backend)
        x, y = det.index % 14, det.index // 14
        bounds = [(13, 11), (8, 4), (0, 11)]  # min(size, map) - border, per image
        for b, (x_end, y_end) in enumerate(bounds):
            inside = (x[b] >= 1) & (x[b] < x_end) & (y[b] >= 1) & (y[b] < y_end)
            assert bool(inside[det.valid[b]].all())
        assert not bool(det.valid[2].any())  # a negative width leaves no pixel
        # Floating sizes truncate (as .long()); sizes beyond the map change nothing.
        truncated = detect_keypoints(scores, 20, nms_size=3, border=1, backend=backend,
                                     image_size=torch.tensor([[14.9, 12.2], [9.99, 5.5], [-3.5, 40.0]], device=device))
        assert torch.equal(truncated.valid, det.valid) and torch.equal(truncated.xy, det.xy)
        whole = detect_keypoints(scores, 20, nms_size=3, border=1, backend=backend,
                                 image_size=torch.tensor([[99, 99]] * 3, device=device))
        plain = detect_keypoints(scores, 20, nms_size=3, border=1, backend=backend)
        assert torch.equal(whole.valid, plain.valid) and torch.equal(whole.xy, plain.xy)

    def test_peak_threshold_is_threshold_mode_with_a_cap(self, target):
        device, backend = target
        scores = torch.rand(2, 16, 15, device=device)
        everything = detect_keypoints(scores, 16 * 15, nms_size=3, strict=True, return_index=True, backend=backend)
        thresholds = torch.tensor([0.6, 0.95], device=device)
        for k in (3, 40):
            det = detect_keypoints(scores, k, nms_size=3, strict=True, peak_threshold=thresholds, return_index=True,
                                   backend=backend)
            for b in range(2):
                peaks = everything.index[b][everything.valid[b]]  # best first
                above = peaks[scores[b].flatten()[peaks] > thresholds[b]]
                assert det.index[b][det.valid[b]].tolist() == above[:k].tolist()
                assert bool(det.valid[b, :min(k, len(above))].all())  # the valid slots come first
        scalar = detect_keypoints(scores, 8, nms_size=3, strict=True, peak_threshold=0.6, backend=backend)
        tensor = detect_keypoints(scores, 8, nms_size=3, strict=True, peak_threshold=torch.tensor(0.6), backend=backend)
        assert torch.equal(scalar.valid, tensor.valid)
        # Strictly above: a peak equal to the threshold is not kept.
        exact = detect_keypoints(scores, 1, nms_size=3, strict=True, return_index=True, backend=backend)
        top = scores.flatten(1).gather(1, exact.index)[:, 0]
        assert not bool(detect_keypoints(scores, 1, nms_size=3, strict=True, peak_threshold=top, backend=backend)
                        .valid.any())

    def test_fill_false_puts_pixel_zero_past_the_peaks(self, target):
        device, backend = target
        scores = torch.rand(2, 10, 12, device=device, requires_grad=True)
        filled = detect_keypoints(scores, 100, nms_size=5, strict=True, return_index=True, backend=backend)
        bare = detect_keypoints(scores, 100, nms_size=5, strict=True, fill=False, return_index=True, backend=backend)
        assert torch.equal(bare.valid, filled.valid) and bool((~bare.valid).any())
        assert torch.equal(bare.index[bare.valid], filled.index[filled.valid])
        assert torch.equal(bare.xy[bare.valid], filled.xy[filled.valid])
        assert not bool(bare.index[~bare.valid].any())  # pixel 0
        # ... refined as a slot at pixel 0 would be, and differentiated the same way.
        expected = soft_argmax(scores.detach(), torch.zeros(2, 1, dtype=torch.long, device=device), 5, 0.2)
        assert_close(bare.xy[~bare.valid].reshape(-1, 2), expected[:, 0].repeat_interleave((~bare.valid).sum(1), 0))
        cotangent = torch.randn_like(bare.xy)
        grad = torch.autograd.grad(bare.xy, scores, cotangent)[0]
        expected_grad = torch.autograd.grad(
            detect_keypoints(scores, 100, nms_size=5, strict=True, fill=False, backend="reference").xy, scores,
            cotangent)[0]
        assert_close(grad, expected_grad, scale=2.0)

    def test_return_index_is_the_window_centre(self, target):
        device, backend = target
        scores = torch.rand(2, 10, 9, device=device)
        det = detect_keypoints(scores, 7, nms_size=3, window=1, return_index=True, backend=backend)
        expected_index, expected_peak = select_peaks(scores, 7, 3)
        assert torch.equal(det.index, expected_index) and torch.equal(det.valid, expected_peak)
        # A one-pixel window does not move the keypoint: xy is the pixel itself.
        assert torch.equal(det.xy, torch.stack((det.index % 9, det.index // 9), -1).to(det.xy.dtype))
        plain = detect_keypoints(scores, 7, nms_size=3, window=1, backend=backend)
        assert isinstance(plain, tuple) and len(plain) == 3 and torch.equal(plain.xy, det.xy)

    def test_strict_with_nan(self, target):
        device, backend = target
        scores = torch.rand(2, 8, 9, device=device)
        scores[0, 3, 3] = float("nan")
        scores[1, 0, 0] = float("nan")
        det = detect_keypoints(scores, 30, nms_size=3, strict=True, border=1, backend=backend, return_index=True)
        ref = detect_keypoints(scores, 30, nms_size=3, strict=True, border=1, backend="reference", return_index=True)
        assert torch.equal(det.index, ref.index) and torch.equal(det.valid, ref.valid)
        near = (det.index[0] // 9 - 3).abs().le(1) & (det.index[0] % 9 - 3).abs().le(1)
        assert not bool((det.valid[0] & near).any())  # no peak next to (or at) a NaN

    def test_cpp_rejects_half_precision(self):
        with pytest.raises(TypeError, match="float32"):
            detect_keypoints(torch.zeros(1, 4, 4, dtype=torch.float16), 1, backend="cpp")

    def test_backward_op_with_xy_away_from_its_window(self, dtype):
        # The raw backward takes xy as given: its bilinear taps may lie outside the keypoint's
        # window (a caller's own xy; NaN maps). Expected: the soft-argmax Jacobian at `index`
        # chained with grad_xy + grad_score * d score / d xy, plus grad_score times the taps at xy.
        scores = torch.rand(1, 40, 30, dtype=dtype, requires_grad=True)  # B=1: several row strips
        index = torch.tensor([[0, 45, 610, 1199, 300, 731]])
        xy = torch.tensor([[[29.0, 39.0], [0.3, 35.2], [12.5, 0.4], [-3.0, 50.0], [7.7, 9.1], [1.2, 24.6]]], dtype=dtype)
        grad_xy, grad_score = torch.randn(1, 6, 2, dtype=dtype), torch.randn(1, 6, dtype=dtype)
        refined = soft_argmax(scores, index, 5, 0.2)
        through = xy + (refined - refined.detach())  # value xy, gradient of the soft-argmax
        score = reference.sample_descriptors(scores[:, None], through, padding="border")[..., 0]
        (expected,) = torch.autograd.grad((refined, score), scores, (grad_xy, grad_score))
        actual = torch.ops.tusk.detect_keypoints_backward(grad_xy, grad_score, scores.detach(), xy, index, 5, 0.2)
        assert_close(actual, expected, scale=2.0 if dtype == torch.float32 else 1.0)

    def test_kernel_backstops(self):
        # Direct calls of the raw ops (no Python validation) fail cleanly, never out of bounds.
        op = torch.ops.tusk
        scores = torch.rand(1, 4, 4)
        with pytest.raises(RuntimeError, match="k must be"):
            op.detect_keypoints(scores, 17, 3, 3, 0.2)
        with pytest.raises(RuntimeError, match="nms_size"):
            op.detect_keypoints(scores, 1, 2, 3, 0.2)
        xy, score, _, index = op.detect_keypoints(scores, 2, 3, 3, 0.2)
        with pytest.raises(RuntimeError, match="index"):
            op.detect_keypoints_backward(torch.zeros_like(xy), torch.zeros_like(score), scores, xy,
                                         torch.full_like(index, 16), 3, 0.2)
        with pytest.raises(RuntimeError, match="temperature"):
            op.detect_keypoints_backward(torch.zeros_like(xy), torch.zeros_like(score), scores, xy, index, 3, 0.0)
        with pytest.raises(RuntimeError, match="border"):
            op.detect_keypoints(scores, 1, 3, 3, 0.2, False, -1)
        with pytest.raises(RuntimeError, match="image_size"):
            op.detect_keypoints(scores, 1, 3, 3, 0.2, False, 0, torch.tensor([[4.0, 4.0]]))
        with pytest.raises(RuntimeError, match="image_size"):
            op.detect_keypoints(scores, 1, 3, 3, 0.2, False, 0, torch.tensor([[4, 4], [4, 4]]))


def test_reference_backward_memory_does_not_scale_with_k_times_map():
    # The reference soft-argmax used to gather from the map expanded to [B, K, H*W]; the backward
    # of that gather allocates a dense [B, K, H*W] gradient (here 1 x 1024 x 64 x 64 floats =
    # 16 MB; 20 GB for 8 SuperPoint-sized 480 x 640 maps with K = 2048).
    from torch.profiler import ProfilerActivity, profile

    scores = torch.rand(1, 64, 64, requires_grad=True)
    xy, score, _ = reference.detect_keypoints(scores, 1024, nms_size=1, window=3)
    loss = xy.sum() + score.sum()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss.backward()
    largest = max(event.cpu_memory_usage for event in prof.events())
    assert largest < 2**20, f"backward allocated a {largest / 2**20:.1f} MB block"
