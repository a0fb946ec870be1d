"""kornia's keypoint heads with and without tusk (``tusk.integrations.kornia``), 480 x 640.

Heads (``op = kornia-head``), batch 2, forward and forward+backward (gradients to the score map),
each at its model's defaults:

- ``aliked-dkd``: ALIKED's ``DKD`` as ``ALIKED()`` builds it (threshold mode: maxima above 0.2,
  at most 20000), and ``aliked-dkd-top2048`` (``top_k=2048``). Maps: sigmoid detector heatmaps
  (``bm_detect_keypoints.heatmaps``: smoothed noise plus 64 sharp blobs per image).
- ``disk``: DISK's ``heatmap_to_keypoints`` with ``DISK.forward``'s defaults (every maximum of a
  5 x 5 window above 0, ``n=None``) and ``disk-n2048`` (``n=2048``). Maps: logits (the same
  smoothed noise, unit variance around 0, plus blobs of height 6).
- ``xfeat``: XFeat's detection after its network, exactly ``detectAndCompute``'s code: keypoint
  heatmap from the 65-channel logits, ``_nms`` (5 x 5, above 0.05), score = nearest heatmap x
  bilinear reliability, top 4096, bicubic descriptors. accelerate() swaps ``_nms`` only; the
  heatmap, the samplers and the top-K are kornia's in both rows (the backward, which does not go
  through the NMS, is the same code). ``xfeat-nms`` times ``_nms`` alone (forward: it has no
  gradient), on the heatmap of those logits; ``xfeat-interpolate`` compares kornia's nearest and
  bilinear ``InterpolateSparse2d`` (the two reads of the score) with tusk's, at the same points.
  Inputs: the 1/8 maps of a 480 x 640 image (logits ``3 * randn``: about 12k strict maxima per
  map, 9.6k of them above 0.05).

Whole models (``op = kornia-model``), forward, one 480 x 640 image, random weights, with
(``tusk``) and without (``kornia``) :func:`tusk.integrations.kornia.accelerate`: ALIKED
(``aliked-n16``, defaults), DISK (``n=None``) and XFeat (``detectAndCompute``, ``top_k=4096``;
its threshold lowered to 0.015 because a random network's heatmap stays near 1/65 < 0.05).
"""
import copy

import kornia.feature as kornia_feature
import pytest
import torch
import torch.nn.functional as F
from kornia.feature.aliked.aliked import DKD as KorniaDKD
from kornia.feature.disk.detector import heatmap_to_keypoints as kornia_heatmap_to_keypoints

from bm_detect_keypoints import heatmaps
from tusk.integrations import kornia as tk

BATCH, HEIGHT, WIDTH = 2, 480, 640
#: The issue's targets: DKD forward+backward >= 10x faster than kornia's, the other heads >= 5x.
SPEEDUP = {"aliked-dkd": 10.0, "aliked-dkd-top2048": 10.0, "disk": 5.0, "disk-n2048": 5.0, "xfeat": 5.0,
           "xfeat-nms": 5.0}


def _logits():
    """Unit-variance smoothed noise around 0 plus blobs of height 6: about half the maxima are above 0."""
    return torch.logit(heatmaps(BATCH, HEIGHT, WIDTH, blobs=64)) + 2.0


def _xfeat_inputs():
    gen = torch.Generator().manual_seed(2)
    h, w = HEIGHT // 8, WIDTH // 8
    return (torch.randn(BATCH, 64, h, w, generator=gen), 3 * torch.randn(BATCH, 65, h, w, generator=gen),
            torch.sigmoid(torch.randn(BATCH, 1, h, w, generator=gen)))


def xfeat_head(model, feats, logits, reliability, top_k=4096, threshold=0.05):
    """``XFeat.detectAndCompute`` after ``self.net`` (kornia 0.9's code), on ``model``'s heads."""
    feats = F.normalize(feats, dim=1)
    heat = model._get_kpts_heatmap(logits)
    mkpts = model._nms(heat, threshold=threshold, kernel_size=5)
    scores = model._nearest(heat, mkpts, HEIGHT, WIDTH) * model._bilinear(reliability, mkpts, HEIGHT, WIDTH)
    scores = scores.squeeze(-1)
    scores = scores.masked_fill(torch.all(mkpts == -1, dim=-1), -1)
    scores, idxs = torch.topk(scores, k=min(top_k, scores.shape[-1]), dim=-1)
    mkpts = torch.stack((torch.gather(mkpts[..., 0], -1, idxs), torch.gather(mkpts[..., 1], -1, idxs)), dim=-1)
    return scores, F.normalize(model.interpolator(feats, mkpts, H=HEIGHT, W=WIDTH), dim=-1)


def xfeat_interpolate(nearest, bilinear, heat, reliability, mkpts):
    """The score reads of XFeat's detection: nearest heatmap x bilinear reliability."""
    return nearest(heat, mkpts, HEIGHT, WIDTH) * bilinear(reliability, mkpts, HEIGHT, WIDTH)


def _head(config, impl):
    """``(fn(requires_grad) -> tensors to differentiate, inputs)`` for one head and implementation."""
    if config.startswith("aliked-dkd"):
        settings = dict(radius=2, top_k=2048) if config.endswith("top2048") else dict(radius=2, top_k=-1,
                                                                                      scores_th=0.2, n_limit=20000)
        dkd = tk.DKD(**settings) if impl == "tusk" else KorniaDKD(**settings)
        scores = heatmaps(BATCH, HEIGHT, WIDTH, blobs=64)
        return (lambda s: [t for out in dkd(s[0]) for t in out]), [scores]
    if config.startswith("disk"):
        n = 2048 if config.endswith("n2048") else None
        fn = tk.heatmap_to_keypoints if impl == "tusk" else kornia_heatmap_to_keypoints
        return (lambda s: [kp.detection_logp for kp in fn(s[0], n=n)]), [_logits()]
    model = kornia_feature.XFeat()
    if impl == "tusk":
        model = tk.accelerate(model)
    feats, logits, reliability = _xfeat_inputs()
    if config == "xfeat-nms":
        heat = model._get_kpts_heatmap(logits)
        return (lambda s: [model._nms(s[0], threshold=0.05, kernel_size=5).float()]), [heat]
    if config == "xfeat-interpolate":
        heat = model._get_kpts_heatmap(logits)
        mkpts = kornia_feature.XFeat._nms(heat, threshold=0.05, kernel_size=5)
        cls = tk.InterpolateSparse2d if impl == "tusk" else kornia_feature.InterpolateSparse2d
        nearest, bilinear = cls("nearest"), cls("bilinear")
        return (lambda s: [xfeat_interpolate(nearest, bilinear, s[0], s[1], mkpts)]), [heat, reliability]
    return (lambda s: list(xfeat_head(model, *s))), [feats, logits, reliability]


HEADS = [(config, pass_) for config in ["aliked-dkd", "aliked-dkd-top2048", "disk", "disk-n2048", "xfeat",
                                        "xfeat-interpolate"] for pass_ in ("fwd", "fwd+bwd")]
HEADS.insert(HEADS.index(("xfeat-interpolate", "fwd")), ("xfeat-nms", "fwd"))


@pytest.mark.parametrize("impl", ["tusk", "kornia"])
@pytest.mark.parametrize("config, pass_", HEADS, ids=[f"{c}-{p}" for c, p in HEADS])
def test_kornia_head(record, config, pass_, impl):
    fn, inputs = _head(config, impl)
    if pass_ == "fwd":
        def step():
            with torch.no_grad():
                fn(inputs)
    else:
        inputs = [t.requires_grad_(True) for t in inputs]

        def step():
            outputs = [t for t in fn(inputs) if t.requires_grad]
            torch.autograd.grad(sum(t.sum() for t in outputs), inputs, allow_unused=True)

    target = SPEEDUP.get(config) if impl == "tusk" and (pass_ == "fwd+bwd" or config == "xfeat-nms") else None
    record(step, op="kornia-head", config=config, pass_=pass_, impl=impl,
           baseline="kornia" if target else None, target_speedup=target, rounds=3 if impl == "kornia" else None)


def _model(name):
    torch.manual_seed(0)
    if name == "aliked":
        model = kornia_feature.ALIKED("aliked-n16").eval()
        return model, lambda m, x: m(x)
    if name == "disk":
        return kornia_feature.DISK().eval(), lambda m, x: m(x)
    model = kornia_feature.XFeat(top_k=4096).eval()
    return model, lambda m, x: m.detectAndCompute(x, detection_threshold=0.015)


@pytest.mark.parametrize("impl", ["tusk", "kornia"])
@pytest.mark.parametrize("config", ["aliked", "disk", "xfeat"])
def test_kornia_model(record, config, impl):
    model, run = _model(config)
    if impl == "tusk":
        model = tk.accelerate(copy.deepcopy(model))
    image = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(3))

    def step():
        with torch.no_grad():
            run(model, image)

    record(step, op="kornia-model", config=config, pass_="fwd", impl=impl, rounds=3)
