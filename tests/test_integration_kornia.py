"""tusk.integrations.kornia against kornia's own modules (random weights; nothing is downloaded).

Every test runs kornia's module and tusk's replacement on the same inputs and compares all
outputs: keypoints, scores, dispersities, descriptors (within 1e-5 in float32; the refinement is
kornia's own arithmetic, so in practice they are bitwise equal) and the gradients reaching the
score map. Maps are small (tens of pixels): the contracts do not depend on the size, and kornia's
dense heads cost seconds per call at 480 x 640 (benchmarks/bm_kornia.py measures those).
"""
from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import kornia.feature as KF
import pytest
import torch
from kornia.feature.aliked.aliked import DKD as KorniaDKD
from kornia.feature.disk.detector import heatmap_to_keypoints as kornia_heatmap_to_keypoints
from kornia.feature.xfeat import InterpolateSparse2d as KorniaInterpolateSparse2d

from tusk.integrations import kornia as tk

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def assert_lists_close(actual, expected, what):
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape and a.dtype == e.dtype, f"{what}[{i}]: {a.shape} {a.dtype} vs {e.shape} {e.dtype}"
        torch.testing.assert_close(a, e, **TOLERANCE, msg=f"{what}[{i}]")


def score_maps(batch, height, width, seed=0):
    """Sigmoid of smoothed noise: a detector-like map with many local maxima (and no ties)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, 1, height, width, generator=gen)
    return torch.sigmoid(torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1) * 3)


# ---- ALIKED: DKD ---------------------------------------------------------------------------------

DKD_SETTINGS = {
    "top_k": dict(radius=2, top_k=30),
    "top_k-more-than-maxima": dict(radius=1, top_k=5000),
    "threshold": dict(radius=2, top_k=-1, scores_th=0.5, n_limit=5000),
    "threshold-capped": dict(radius=2, top_k=0, scores_th=0.3, n_limit=7),  # the cap cuts: score order
    "threshold-mean-fallback": dict(radius=3, top_k=-1, scores_th=0.999),  # no maximum above: the mean
    "mean": dict(radius=2, top_k=-1, scores_th=0.0, n_limit=5000),
    "n_limit-0": dict(radius=2, top_k=-1, scores_th=0.2, n_limit=0),
}
IMAGE_SIZES = {
    "none": None,
    "padded": [[50, 37], [31, 40], [56, 22]],
    "degenerate": [[1, 40], [56, -3], [0.0, 39.7]],  # below the radius: kornia's slices count from the end
}


@pytest.mark.parametrize("image_size", list(IMAGE_SIZES), ids=list(IMAGE_SIZES))
@pytest.mark.parametrize("setting", list(DKD_SETTINGS), ids=list(DKD_SETTINGS))
def test_dkd_matches_kornia(setting, image_size):
    scores = score_maps(3, 40, 56).requires_grad_(True)
    sizes = None if IMAGE_SIZES[image_size] is None else torch.tensor(IMAGE_SIZES[image_size])
    kornia_dkd, tusk_dkd = KorniaDKD(**DKD_SETTINGS[setting]), tk.DKD(**DKD_SETTINGS[setting])
    for sub_pixel in (True, False):
        expected = kornia_dkd(scores, sub_pixel=sub_pixel, image_size=sizes, return_affine=True)
        actual = tusk_dkd(scores, sub_pixel=sub_pixel, image_size=sizes, return_affine=True)
        for name, a, e in zip(("keypoints", "scores", "dispersities", "affines"), actual, expected):
            assert_lists_close(a, e, f"{name} sub_pixel={sub_pixel}")
        assert sum(len(k) for k in actual[0]) > 0 or setting == "n_limit-0"
        # Gradients to the score map through keypoints, scores and dispersities (without
        # sub_pixel, kornia's keypoints and dispersities are constants: the same must hold here).
        pairs = [(a, e) for outs in zip(actual[:3], expected[:3]) for a, e in zip(*outs)]
        assert all(a.requires_grad == e.requires_grad for a, e in pairs)
        pairs = [(a, e, torch.randn_like(e)) for a, e in pairs if e.requires_grad]
        if pairs:
            grad_actual = torch.autograd.grad([p[0] for p in pairs], scores, [p[2] for p in pairs])[0]
            grad_expected = torch.autograd.grad([p[1] for p in pairs], scores, [p[2] for p in pairs])[0]
            torch.testing.assert_close(grad_actual, grad_expected, **TOLERANCE)


def test_dkd_batch_of_one_and_three_element_output():
    scores = score_maps(1, 33, 47, seed=4)
    for settings in (dict(radius=2, top_k=16), dict(radius=2, top_k=-1, scores_th=0.4)):
        expected = KorniaDKD(**settings)(scores)
        actual = tk.DKD(**settings)(scores)
        assert len(actual) == 3
        for a, e in zip(actual, expected):
            assert_lists_close(a, e, str(settings))


def test_dkd_map_without_a_maximum():
    flat = torch.full((2, 1, 20, 24), 0.5, requires_grad=True)  # a plateau: no strict maximum
    for settings in (dict(radius=2, top_k=10), dict(radius=2, top_k=-1, scores_th=0.2), dict(radius=1, top_k=-1,
                                                                                              scores_th=-1)):
        expected = KorniaDKD(**settings)(flat, return_affine=True)
        actual = tk.DKD(**settings)(flat, return_affine=True)
        for name, a, e in zip(("keypoints", "scores", "dispersities", "affines"), actual, expected):
            assert_lists_close(a, e, name)
            assert all(len(t) == 0 for t in a)
        # Backward through the empty outputs reaches the map as zeros, as kornia's does.
        grads = [torch.autograd.grad(sum(t.sum() for out in outs[:3] for t in out), flat)[0]
                 for outs in (expected, actual)]
        assert torch.equal(grads[0], grads[1]) and not bool(grads[1].any())


def test_dkd_settings_buffers_and_state_dict():
    ours, theirs = tk.DKD(3, 100, 0.1, 500), KorniaDKD(3, 100, 0.1, 500)
    assert (ours.radius, ours.top_k, ours.scores_th, ours.n_limit, ours.kernel_size, ours.temperature) == (
        theirs.radius, theirs.top_k, theirs.scores_th, theirs.n_limit, theirs.kernel_size, theirs.temperature)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert torch.equal(ours.hw_grid, theirs.hw_grid)


@pytest.mark.parametrize("max_num_keypoints, detection_threshold", [(40, 0.0), (-1, 0.2), (25, 0.9)],
                         ids=["top_k", "threshold", "threshold-mean-fallback"])
def test_aliked_model(max_num_keypoints, detection_threshold):
    torch.manual_seed(0)
    model = KF.ALIKED("aliked-t16", max_num_keypoints=max_num_keypoints,
                      detection_threshold=detection_threshold).eval()
    accelerated = tk.accelerate(copy.deepcopy(model))
    assert isinstance(accelerated.dkd, tk.DKD) and isinstance(model.dkd, KorniaDKD)
    images = torch.rand(2, 3, 32, 64)
    image_size = torch.tensor([[64, 32], [50, 27]])  # the second image padded at the bottom and right
    with torch.no_grad():
        for kwargs in ({}, {"image_size": image_size}):
            expected, actual = model(images, **kwargs), accelerated(images, **kwargs)
            for e, a in zip(expected, actual):
                assert a.n > 0 and a.n == e.n
                for field in ("keypoints", "descriptors", "keypoint_scores"):
                    torch.testing.assert_close(getattr(a, field), getattr(e, field), **TOLERANCE)
        # forward_laf uses DKD's local affine frames.
        for e, a in zip(model.forward_laf(images), accelerated.forward_laf(images)):
            torch.testing.assert_close(a, e, **TOLERANCE)


# ---- DISK -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("window_size", [5, 3, 1, 4])  # 4: even, kornia's own function runs
@pytest.mark.parametrize("n", [None, 0, 6, 10**6])
def test_heatmap_to_keypoints_matches_kornia(n, window_size):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 21, 30, generator=gen)
    logits[1] = (logits[1] * 2).round() / 2  # ties, at the n-th score too
    logits[2] = -1.0  # no maximum above the threshold
    logits.requires_grad_(True)
    for threshold in (0.0, 0.8):
        expected = kornia_heatmap_to_keypoints(logits, n=n, window_size=window_size, score_threshold=threshold)
        actual = tk.heatmap_to_keypoints(logits, n=n, window_size=window_size, score_threshold=threshold)
        assert len(actual) == len(expected) == 3
        for a, e in zip(actual, expected):
            assert type(a) is type(e)
            assert torch.equal(a.xys, e.xys) and a.xys.dtype == e.xys.dtype
            assert torch.equal(a.detection_logp, e.detection_logp)
        if sum(len(e.detection_logp) for e in expected):
            cotangents = [torch.randn_like(e.detection_logp) for e in expected]
            grad_e = torch.autograd.grad([e.detection_logp for e in expected], logits, cotangents, allow_unused=True)[0]
            grad_a = torch.autograd.grad([a.detection_logp for a in actual], logits, cotangents, allow_unused=True)[0]
            assert torch.equal(grad_a, grad_e)


def test_disk_model():
    torch.manual_seed(0)
    model = KF.DISK().eval()
    accelerated = tk.accelerate(copy.deepcopy(model))
    with torch.no_grad():
        for images, kwargs in ((torch.rand(2, 3, 32, 48), dict(n=20)),
                               (torch.rand(1, 3, 30, 45), dict(window_size=3, score_threshold=0.1,
                                                              pad_if_not_divisible=True))):
            expected, actual = model(images, **kwargs), accelerated(images, **kwargs)
            for e, a in zip(expected, actual):
                assert a.n > 0
                assert torch.equal(a.keypoints, e.keypoints)
                torch.testing.assert_close(a.descriptors, e.descriptors, **TOLERANCE)
                torch.testing.assert_close(a.detection_scores, e.detection_scores, **TOLERANCE)


# ---- XFeat ----------------------------------------------------------------------------------------

def test_xfeat_nms_matches_kornia():
    gen = torch.Generator().manual_seed(2)
    heat = torch.rand(3, 1, 40, 48, generator=gen) * 0.1
    heat[1, :, :20] = 0.0  # fewer maxima in one image: the rows are padded with -1
    heat[2] = (heat[2] * 40).round() / 40  # ties
    for threshold, kernel_size in ((0.05, 5), (0.0, 3), (0.2, 5), (0.05, 4)):
        expected = KF.XFeat._nms(heat, threshold=threshold, kernel_size=kernel_size)
        actual = tk.xfeat_nms(heat, threshold=threshold, kernel_size=kernel_size)
        assert actual.dtype == expected.dtype and torch.equal(actual, expected), (threshold, kernel_size)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_interpolate_sparse_matches_kornia(mode):
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 6, 8, 12, generator=gen, requires_grad=True)
    for pos in (torch.randint(-2, 98, (2, 40, 2), generator=gen),  # integer pixels (XFeat's), some outside
                torch.rand(2, 40, 2, generator=gen) * torch.tensor([95.0, 63.0])):  # sub-pixel
        expected = KorniaInterpolateSparse2d(mode)(features, pos, 64, 96)
        actual = tk.InterpolateSparse2d(mode)(features, pos, 64, 96)
        torch.testing.assert_close(actual, expected, **TOLERANCE)
        cotangent = torch.randn_like(expected)
        grad_e = torch.autograd.grad(expected, features, cotangent)[0]
        grad_a = torch.autograd.grad(actual, features, cotangent)[0]
        torch.testing.assert_close(grad_a, grad_e, **TOLERANCE)


def test_xfeat_model():
    torch.manual_seed(0)
    model = KF.XFeat(top_k=60).eval()
    accelerated = tk.accelerate(copy.deepcopy(model))
    assert accelerated._nms is tk.xfeat_nms
    # The interpolators stay kornia's (faster at XFeat's sizes); tusk's run here by hand too.
    assert all(isinstance(m, KorniaInterpolateSparse2d) for m in (accelerated._bilinear, accelerated._nearest,
                                                                   accelerated.interpolator))
    by_hand = copy.deepcopy(accelerated)
    by_hand._bilinear, by_hand._nearest = tk.InterpolateSparse2d("bilinear"), tk.InterpolateSparse2d("nearest")
    images = torch.rand(2, 3, 64, 96)
    # Random weights put the keypoint heatmap near 1/65: a threshold below it finds maxima.
    for top_k, tusk_model in ((60, accelerated), (4096, accelerated), (60, by_hand)):
        expected = model.detectAndCompute(images, top_k=top_k, detection_threshold=0.015)
        actual = tusk_model.detectAndCompute(images, top_k=top_k, detection_threshold=0.015)
        for e, a in zip(expected, actual):
            assert len(a["keypoints"]) > 0
            for key in ("keypoints", "scores", "descriptors"):
                torch.testing.assert_close(a[key], e[key], **TOLERANCE)
    assert all(len(out["keypoints"]) == 0 for out in accelerated.detectAndCompute(images, detection_threshold=0.5))


# ---- accelerate -----------------------------------------------------------------------------------

def test_accelerate_in_place_idempotent_and_picklable():
    model = KF.DISK()
    keys = model.state_dict().keys()
    assert tk.accelerate(model) is model
    assert tk.accelerate(model) is model  # again: nothing left to swap, no error
    assert model.state_dict().keys() == keys
    restored = pickle.loads(pickle.dumps(model))
    twin = copy.deepcopy(model)
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for other in (restored, twin):
            for a, b in zip(model(images, n=5), other(images, n=5)):
                assert torch.equal(a.keypoints, b.keypoints)
    aliked = KF.ALIKED("aliked-t16")
    keys = aliked.state_dict().keys()
    tk.accelerate(torch.nn.Sequential(aliked))  # heads inside another module are found too
    assert isinstance(aliked.dkd, tk.DKD) and aliked.state_dict().keys() == keys


def test_accelerate_rejects_what_it_cannot_swap():
    with pytest.raises(TypeError, match="holds no head"):
        tk.accelerate(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="DKD"):
        tk.accelerate(KorniaDKD())
    with pytest.raises(TypeError, match="holds no head"):
        tk.accelerate(KorniaInterpolateSparse2d("bilinear"))
    with pytest.raises(TypeError, match="model"):
        tk.accelerate("ALIKED")


def test_import_does_not_import_kornia():
    code = "import sys, tusk.integrations.kornia; assert 'kornia' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
