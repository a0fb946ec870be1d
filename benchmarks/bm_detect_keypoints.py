"""detect_keypoints: tusk (C++) vs the reference, the official dense soft-argmax, and kornia.

Score maps are realistic detector heatmaps: the sigmoid of Gaussian-smoothed noise (sigma 2 px)
plus sharp Gaussian blobs (sigma 1.5 px, min(K, 64) per image), so there are broad low local
maxima and K clear ones, like a trained TUSK / SuperPoint heatmap. NMS peaks per image: ~32
(MNIST), ~28 (CLEVR), ~18 (Tetrominoes), ~3100 (SuperPoint-like,
K = 2048). ``nms_size`` equals ``window`` (the official code uses one kernel size for both;
see configs.py).

Implementations:

- ``tusk-cpp``: :func:`tusk.ops.detect_keypoints` on the C++ backend.
- ``reference``: the plain-PyTorch specification.
- ``official-dense``: the approach of the paper's research code: max-pool NMS, ``topk`` on the
  suppressed map, then the soft-argmax as three dense ``window x window`` convolutions (weights
  1, dx, dy) of ``exp(s / T)`` over the whole zero-padded map, read at the K peaks; bilinear
  confidence. (Out-of-image pixels count as exp(0) there; see DESIGN.md.)
- ``kornia``: kornia's ``nms2d`` (strict maxima, borders excluded) + ``topk`` +
  ``conv_soft_argmax2d`` (dense, every pixel's window) read at the K peaks, bilinear score via
  ``grid_sample``. Listed only when kornia imports.
"""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from configs import CLEVR, MNIST, SUPERPOINT, TETROMINOES
from tusk.ops import detect_keypoints, to_normalized

TEMPERATURE = 0.2
TARGETS_MS = {"mnist": 2.0, "clevr": 3.0, "tetrominoes": 4.0, "superpoint": 15.0}


def heatmaps(batch, height, width, blobs, seed=0):
    """``[B, 1, H, W]`` sigmoid(smoothed noise + ``blobs`` Gaussian bumps per image), float32."""
    gen = torch.Generator().manual_seed(seed)
    taps = torch.arange(-6, 7, dtype=torch.float32)
    kernel = torch.exp(-taps**2 / (2 * 2.0**2))
    kernel = kernel / kernel.sum()
    noise = torch.randn(batch, 1, height, width, generator=gen)
    noise = F.conv2d(F.pad(noise, (6, 6, 0, 0), mode="circular"), kernel.view(1, 1, 1, -1))
    noise = F.conv2d(F.pad(noise, (0, 0, 6, 6), mode="circular"), kernel.view(1, 1, -1, 1))
    noise = noise / noise.std()
    centres = torch.rand(batch, blobs, 2, generator=gen) * torch.tensor([width - 1.0, height - 1.0])
    # Separable bumps: sum_n gy_n(y) gx_n(x) as one batched matmul (no [B, n, H, W] temporary).
    gx = torch.exp(-(torch.arange(width) - centres[..., 0, None]) ** 2 / (2 * 1.5**2))  # [B, n, W]
    gy = torch.exp(-(torch.arange(height) - centres[..., 1, None]) ** 2 / (2 * 1.5**2))  # [B, n, H]
    bumps = gy.transpose(1, 2) @ gx  # [B, H, W]
    logits = noise - 2.0 + 6.0 * bumps[:, None]
    return torch.sigmoid(logits)


def official_dense(scores, k, window, temperature=TEMPERATURE):
    """The official code's approach, written afresh: dense soft-argmax convolutions."""
    batch, _, height, width = scores.shape
    radius = window // 2
    pooled = F.max_pool2d(scores, window, stride=1, padding=radius)
    suppressed = torch.where(scores == pooled, scores, torch.zeros_like(scores))
    index = suppressed.flatten(1).topk(k, dim=1).indices  # [B, K]
    offsets = torch.arange(-radius, radius + 1, dtype=scores.dtype)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    kernels = torch.stack((torch.ones_like(dx), dx, dy))[:, None]  # [3, 1, k, k]
    weights = torch.exp(F.pad(scores, (radius,) * 4) / temperature)  # zero padding, then exp
    moments = F.conv2d(weights, kernels).flatten(2)  # [B, 3, H*W] over the whole map
    picked = torch.gather(moments, 2, index[:, None].expand(-1, 3, -1))  # [B, 3, K]
    pixel = torch.stack((index % width, index // width), dim=-1).to(scores.dtype)
    xy = pixel + (picked[:, 1:] / picked[:, :1]).transpose(1, 2)
    # Bilinear confidence from the four integer neighbours.
    x, y = xy[..., 0].clamp(0, width - 1), xy[..., 1].clamp(0, height - 1)
    x0, y0 = x.floor(), y.floor()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    flat = scores.flatten(1)

    def at(xi, yi):
        return torch.gather(flat, 1, (yi * width + xi).long())

    fx, fy = x - x0, y - y0
    score = ((1 - fx) * (1 - fy) * at(x0, y0) + fx * (1 - fy) * at(x1, y0)
             + (1 - fx) * fy * at(x0, y1) + fx * fy * at(x1, y1))
    return xy, score


def kornia_peer(scores, k, window, temperature=TEMPERATURE):
    from kornia.geometry.subpix import conv_soft_argmax2d, nms2d

    batch, _, height, width = scores.shape
    radius = window // 2
    with torch.no_grad():
        index = nms2d(scores, (window, window)).flatten(1).topk(k, dim=1).indices
    coords = conv_soft_argmax2d(scores, (window, window), padding=(radius, radius), temperature=temperature,
                                normalized_coordinates=False)  # [B, 1, 2, H, W], (x, y)
    xy = torch.gather(coords.flatten(3)[:, 0], 2, index[:, None].expand(-1, 2, -1)).transpose(1, 2)
    grid = to_normalized(xy, (height, width))[:, :, None]
    score = F.grid_sample(scores, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0, :, 0]
    return xy, score


def _tusk(backend):
    def run(scores, k, window):
        det = detect_keypoints(scores, k, nms_size=window, window=window, temperature=TEMPERATURE, backend=backend)
        return det.xy, det.score

    return run


IMPLS = {"tusk-cpp": _tusk("cpp"), "reference": _tusk("reference"), "official-dense": official_dense}
if importlib.util.find_spec("kornia") is not None:
    IMPLS["kornia"] = kornia_peer


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("cfg", [MNIST, CLEVR, TETROMINOES, SUPERPOINT], ids=lambda c: c.name)
def test_detect_keypoints(record, cfg, pass_, impl):
    scores = heatmaps(cfg.batch, cfg.height, cfg.width, blobs=min(cfg.k, 64))
    scores.requires_grad_(pass_ != "fwd")
    gen = torch.Generator().manual_seed(1)
    grad_xy = torch.randn(cfg.batch, cfg.k, 2, generator=gen)
    grad_score = torch.randn(cfg.batch, cfg.k, generator=gen)
    fn = IMPLS[impl]

    if pass_ == "fwd":
        def step():
            with torch.no_grad():
                fn(scores, cfg.k, cfg.window)
    else:
        def step():
            xy, score = fn(scores, cfg.k, cfg.window)
            torch.autograd.grad((xy, score), scores, (grad_xy, grad_score))

    # The dense peers take 0.1-10 s per call here (kornia's per-pixel soft-argmax at window 27
    # is the slowest): a fixed 3 rounds keeps the file's runtime in minutes.
    record(step, op="detect_keypoints", config=cfg.name, pass_=pass_, impl=impl,
           target_ms=TARGETS_MS[cfg.name] if pass_ == "fwd+bwd" and impl == "tusk-cpp" else None,
           rounds=None if impl == "tusk-cpp" else 3)
