"""splat_gaussians: tusk (C++) vs the reference and the official code's dense heatmaps.

The decoder input of TUSK is ``reduce="sum"`` (``[B, C, H, W]``); ``reduce="none"`` (the
per-keypoint maps ``[B, K, C, H, W]`` an alpha-compositing decoder needs) is recorded at CLEVR
for information. Peak memory is recorded for every row.

First touch dominates large outputs: glibc hands out tensors above ~32 MB as fresh mmaps, and
zero-filling a fresh [32, 32, 112, 112] float map (49 MB, the CLEVR output) measured 24 ms of
CPU on one thread of the (shared) team machine against 2.7 ms for the same fill of an already
mapped buffer (~0.4-0.5 ms/MB of page faults). tusk's kernels take outputs of >= 8 MB from the
C++ buffer pool (reused across steps), so their rows measure the kernel, while the reference
and the official code pay the faults for each large intermediate ([B, K, C, H, W] is 236 MB at
MNIST, 294 MB at CLEVR).
"""
import pytest
import torch

from configs import CLEVR, MNIST, TETROMINOES
from tusk.ops import splat_gaussians

TARGETS_MS = {"mnist": 3.0, "clevr": 5.0}
TARGETS_MB = {"mnist": 40.0}


def official_dense(xy, descriptors, weights, size, variance, reduce="sum"):
    """The official code's way: a dense Gaussian per keypoint over the whole image.

    A ``[B, K, H, W, 2]`` pixel grid gives ``[B, K, H, W]`` heatmaps, normalised over the image,
    scaled by the keypoint weights; descriptors broadcast to ``[B, K, C, H, W]`` and are summed
    over K (not truncated to a window, so it differs from tusk by the mass outside the window).
    """
    batch, k, _ = xy.shape
    height, width = size
    cols = torch.arange(width, dtype=xy.dtype).view(1, 1, 1, width).expand(batch, k, height, width)
    rows = torch.arange(height, dtype=xy.dtype).view(1, 1, height, 1).expand(batch, k, height, width)
    offset = torch.stack([cols, rows], dim=-1) - xy.view(batch, k, 1, 1, 2)
    heatmap = torch.exp(-0.5 * (offset * offset / variance).sum(dim=-1))
    heatmap = heatmap / heatmap.sum(dim=(2, 3), keepdim=True)
    heatmap = heatmap * weights[..., None, None]
    maps = descriptors[..., None, None] * heatmap[:, :, None]
    return maps.sum(dim=1) if reduce == "sum" else maps


IMPLS = {
    "tusk-cpp": lambda xy, d, w, size, var, reduce: splat_gaussians(xy, d, w, size, variance=var, reduce=reduce, backend="cpp"),
    "reference": lambda xy, d, w, size, var, reduce: splat_gaussians(xy, d, w, size, variance=var, reduce=reduce, backend="reference"),
    "official-dense": official_dense,
}


def _inputs(cfg, requires_grad):
    xy = torch.rand(cfg.batch, cfg.k, 2) * torch.tensor([cfg.width - 1.0, cfg.height - 1.0])
    descriptors = torch.nn.functional.normalize(torch.randn(cfg.batch, cfg.k, cfg.channels), dim=-1)
    weights = torch.rand(cfg.batch, cfg.k)  # detection scores
    return [t.requires_grad_(requires_grad) for t in (xy, descriptors, weights)]


def _bench(record, cfg, pass_, impl, reduce):
    xy, descriptors, weights = _inputs(cfg, pass_ != "fwd")
    size = (cfg.height, cfg.width)
    fn = IMPLS[impl]
    if pass_ == "fwd":
        def step():
            with torch.no_grad():
                fn(xy, descriptors, weights, size, cfg.variance, reduce)
    else:
        shape = (cfg.batch, cfg.channels, *size) if reduce == "sum" else (cfg.batch, cfg.k, cfg.channels, *size)
        cotangent = torch.randn(shape)

        def step():
            torch.autograd.grad(fn(xy, descriptors, weights, size, cfg.variance, reduce),
                                (xy, descriptors, weights), cotangent)

    official = pass_ == "fwd+bwd" and impl == "tusk-cpp" and reduce == "sum"
    record(step, op="splat_gaussians" if reduce == "sum" else "splat_gaussians[none]",
           config=cfg.name, pass_=pass_, impl=impl, memory=True,
           target_ms=TARGETS_MS.get(cfg.name) if official else None,
           target_mb=TARGETS_MB.get(cfg.name) if official else None,
           rounds=5 if reduce == "none" and impl != "tusk-cpp" else None)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("cfg", [MNIST, CLEVR, TETROMINOES], ids=lambda c: c.name)
def test_splat_gaussians(record, cfg, pass_, impl):
    _bench(record, cfg, pass_, impl, "sum")


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
def test_splat_gaussians_per_keypoint_maps(record, pass_, impl):
    """reduce="none" at CLEVR (294 MB output), for information: dominated by first-touch."""
    _bench(record, CLEVR, pass_, impl, "none")
