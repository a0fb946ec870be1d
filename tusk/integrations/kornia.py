"""kornia's keypoint heads on tusk's ops: ALIKED's ``DKD``, DISK's ``heatmap_to_keypoints``, XFeat's
NMS and sparse interpolation, and :func:`accelerate`, which swaps them into a kornia model.

.. code-block:: python

    import kornia.feature as KF
    from tusk.integrations.kornia import accelerate

    aliked = accelerate(KF.ALIKED.from_pretrained("aliked-n16"))  # its DKD runs on tusk

Each replacement keeps kornia's signature and outputs (tested against kornia 0.9's own modules,
``pip install "tusk[kornia]"``; kornia is imported only when a replacement runs). The three
detectors find keypoints as the strict local maxima of a score map, away from its border
(``kornia.geometry.subpix.nms2d``), which is :func:`tusk.ops.detect_keypoints` with
``strict=True, border=nms_size // 2``; their cap or top-K is its ``k`` (ranked by score, ties to
the lower flat index ``y*W + x``) and their threshold its ``peak_threshold``.

What tusk does: the dense part whose cost grows with the map (NMS, border and padding masks,
threshold, top-K or cap). What stays kornia's arithmetic: the work on the N kept keypoints, done
with kornia's own formulas so that the outputs are bitwise kornia's whenever the kept keypoints
are: DKD's soft-argmax refinement, score dispersity, bilinear score and local affine frames;
DISK's descriptor lookup; XFeat's keypoint heatmap, its final top-K on the product of heatmap and
reliability, and its sparse sampling. :class:`InterpolateSparse2d` is kornia XFeat's sampler with
``bilinear`` on tusk's ``sample_descriptors`` and ``nearest`` as a gather (``bicubic`` stays
``grid_sample``); :func:`accelerate` leaves XFeat's samplers alone, because at its sizes kornia's
are faster on CPU (see :func:`accelerate`). The networks are untouched.

Where kornia leaves an order to ``torch.topk`` / ``torch.sort`` (maxima with exactly equal
scores at DKD's top-K or cap), tusk takes the lower flat index first.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..ops import detect_keypoints, sample_descriptors

__all__ = ["DKD", "InterpolateSparse2d", "accelerate", "heatmap_to_keypoints", "xfeat_nms"]


def max_strict_peaks(height: int, width: int, radius: int) -> int:
    """An upper bound on the strict local maxima (windows of ``2 radius + 1``) of a
    ``height x width`` map lying ``radius`` px or more inside its border: two of them are more
    than ``radius`` apart along x or y (each would be in the other's window), so every
    ``(radius + 1)``-square block of that interior holds at most one."""
    rows, cols = max(height - 2 * radius, 0), max(width - 2 * radius, 0)
    return math.ceil(rows / (radius + 1)) * math.ceil(cols / (radius + 1))


def _slots(wanted: int, height: int, width: int, radius: int) -> int:
    """``k`` for detect_keypoints: ``wanted`` slots, no more than peaks can exist, at least 1."""
    return max(1, min(wanted, max_strict_peaks(height, width, radius), height * width))


def _detect_every_peak(scores: torch.Tensor, most: int, radius: int, **options):
    """detect_keypoints with a slot for every strict peak (at most ``most``): K is the most peaks
    the map can hold, and ``fill=False`` makes the slots past the actual peaks cost nothing (no
    selection of non-peak fillers over the whole map)."""
    height, width = scores.shape[-2:]
    return detect_keypoints(scores, _slots(most, height, width, radius), window=1, strict=True, border=radius,
                            fill=False, return_index=True, **options)


def _window_offsets(radius: int, width: int, device: torch.device) -> torch.Tensor:
    """``[(2r+1)^2]`` flat offsets ``dy * W + dx``, row-major (``nn.Unfold``'s and ``hw_grid``'s order)."""
    steps = torch.arange(-radius, radius + 1, device=device)
    return (steps[:, None] * width + steps[None, :]).reshape(-1)


# ---- ALIKED -------------------------------------------------------------------------------------


class DKD(torch.nn.Module):
    """``kornia.feature.aliked.DKD`` (differentiable keypoint detection) with tusk's detection.

    Same constructor, buffer (``hw_grid``, so ALIKED state dicts load either way) and
    ``forward(scores_map, sub_pixel=True, image_size=None, return_affine=False)`` returning
    ``(keypoints, keypoint_scores, score_dispersities[, local_affines])``, lists of one tensor per
    image, keypoints normalised to ``[-1, 1]``; drop it in with
    ``aliked.dkd = DKD(radius, top_k, scores_th, n_limit)`` or :func:`accelerate`.

    Contract (kornia 0.9's): candidates are the strict maxima of ``2 * radius + 1`` windows at
    least ``radius`` px inside the map and inside each image's valid ``(W, H)`` (``image_size``,
    truncated to integers; a size below ``radius`` counts from the end of the map, as kornia's
    slicing does). ``top_k > 0``: the ``top_k`` strongest, by descending score. Otherwise
    threshold mode: the maxima above ``scores_th`` (> 0), or, in an image with none, above its own
    mean score (also when ``scores_th <= 0``), in raster order; with more than ``n_limit`` of them,
    the ``n_limit`` strongest by descending score. Then the soft-argmax (temperature 0.1) in the
    window, the dispersity of its weights around the refined point (divided by ``radius^2``), and
    the score map read bilinearly there; gradients reach ``scores_map`` through all three.

    tusk selects (``detect_keypoints``: one pass over the map, no ``[B, (2r+1)^2, H, W]`` unfold);
    the refinement of the kept keypoints is kornia's arithmetic on a ``(2r+1)^2`` gather, so every
    output is bitwise kornia's for the same keypoints.
    """

    def __init__(self, radius: int = 2, top_k: int = 0, scores_th: float = 0.2, n_limit: int = 20000) -> None:
        super().__init__()
        self.radius = radius
        self.top_k = top_k
        self.scores_th = scores_th
        self.n_limit = n_limit
        self.kernel_size = 2 * self.radius + 1
        self.temperature = 0.1
        x = torch.linspace(-self.radius, self.radius, self.kernel_size)
        hw_grid = torch.stack(torch.meshgrid([x, x], indexing="ij")).view(2, -1).t()[:, [1, 0]]
        self.register_buffer("hw_grid", hw_grid)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, top_k={self.top_k}, scores_th={self.scores_th}, n_limit={self.n_limit}"

    def forward(
        self,
        scores_map: torch.Tensor,
        sub_pixel: bool = True,
        image_size: torch.Tensor | None = None,
        return_affine: bool = False,
    ) -> tuple[list[torch.Tensor], ...]:
        """``scores_map [B, 1, H, W]`` -> per-image ``keypoints [N, 2]`` in ``[-1, 1]``, ``scores [N]``,
        ``dispersities [N]`` and, with ``return_affine``, ``local_affines [N, 2, 2]`` (kornia's)."""
        batch, _, height, width = scores_map.shape
        coord_dtype = torch.promote_types(scores_map.dtype, torch.float32)
        wh = torch.tensor([width - 1, height - 1], device=scores_map.device, dtype=coord_dtype)
        kept = self._select(scores_map, image_size)
        counts = [len(index) for index in kept]
        # One gather and one grid_sample for the whole batch (their backward writes one dense
        # gradient, not one per image); the arithmetic per keypoint stays kornia's, per image.
        index = torch.cat(kept)
        image = torch.repeat_interleave(torch.arange(batch, device=index.device),
                                        torch.tensor(counts, device=index.device))
        pixels = torch.stack((index % width, torch.div(index, width, rounding_mode="trunc")), dim=1)
        keypoints, dispersities, affines = [], [], []
        if sub_pixel:
            # The windows at the kept maxima (all >= radius px inside the map, so none is clipped)
            # instead of kornia's unfold of every pixel's window.
            offsets = _window_offsets(self.radius, width, scores_map.device)
            patches = scores_map.reshape(batch, -1)[image[:, None], index[:, None] + offsets]
            for patch, pixel in zip(patches.split(counts), pixels.split(counts)):
                max_v = patch.max(dim=1).values.detach()[:, None]
                x_exp = ((patch - max_v) / self.temperature).exp()
                x_sum = x_exp.sum(dim=1, keepdim=True)
                xy_residual = x_exp @ self.hw_grid / x_sum
                dist2 = torch.norm((self.hw_grid[None, :, :] - xy_residual[:, None, :]) / self.radius, dim=-1) ** 2
                dispersities.append((x_exp * dist2).sum(dim=1) / x_exp.sum(dim=1))
                keypoints.append((pixel.to(coord_dtype) + xy_residual) / wh * 2 - 1)
                if return_affine:
                    from kornia.feature.aliked.aliked import _affine_from_cov

                    weights = x_exp / x_sum
                    delta = self.hw_grid[None] - xy_residual[:, None]
                    affines.append(_affine_from_cov(torch.einsum("ni,nij,nik->njk", weights, delta, delta)))
        else:
            keypoints = list((pixels.to(coord_dtype) / wh * 2 - 1).split(counts))
            if return_affine:
                affines = [torch.eye(2, device=scores_map.device, dtype=scores_map.dtype).unsqueeze(0).expand(n, -1, -1)
                           for n in counts]
        # Bilinear scores at the keypoints; each point is read on its own, so padding the grid to
        # the largest count changes no value.
        grid = scores_map.new_zeros((batch, 1, max(counts, default=0), 2))
        for b, xy in enumerate(keypoints):
            grid[b, 0, : counts[b]] = xy.to(scores_map.dtype)
        scores = F.grid_sample(scores_map, grid, mode="bilinear", align_corners=True)[:, 0, 0, :]
        kptscores = [scores[b, : counts[b]] for b in range(batch)]
        if not sub_pixel:
            dispersities = [torch.zeros_like(score) for score in kptscores]
        if return_affine:
            return keypoints, kptscores, dispersities, affines
        return keypoints, kptscores, dispersities

    def _select(self, scores_map: torch.Tensor, image_size: torch.Tensor | None) -> list[torch.Tensor]:
        """Per image, the flat indices of the kept maxima in kornia's order (no gradient)."""
        batch, _, height, width = scores_map.shape
        radius = self.radius
        scores = scores_map.detach()
        if image_size is not None:
            size = image_size.to(scores.device).long()
            # kornia drops rows from `h - radius` on with a slice: a negative start counts from the end.
            dims = torch.tensor([width, height], device=scores.device)
            size = torch.where(size >= radius, size, size + dims)
        elif radius == 0:  # kornia's `is_max[..., -0:, :] = False` clears every row
            return [torch.zeros(0, dtype=torch.long, device=scores.device) for _ in range(batch)]
        else:
            size = None
        options = dict(nms_size=self.kernel_size, image_size=size)
        if self.top_k > 0:
            det = detect_keypoints(scores, _slots(self.top_k, height, width, radius), window=1, strict=True,
                                   border=radius, fill=False, return_index=True, **options)
            return [det.index[b, det.valid[b]] for b in range(batch)]  # by descending score
        mean = scores.reshape(batch, -1).mean(dim=1)
        # Above scores_th, or above the mean in an image with no maximum above scores_th: every such
        # maximum is above min(scores_th, mean), and those above scores_th rank first.
        threshold = mean.clamp(max=self.scores_th) if self.scores_th > 0 else mean
        # One slot more than the cap tells whether the cap cut (kornia then orders by score).
        det = _detect_every_peak(scores, self.n_limit + 1 if self.n_limit > 0 else height * width, radius,
                                 peak_threshold=threshold, **options)
        valid = det.valid
        if self.scores_th > 0:
            value = torch.gather(scores.reshape(batch, -1), 1, det.index)
            above = valid & (value > self.scores_th)
            valid = torch.where(above.any(dim=1, keepdim=True), above, valid & (value > mean[:, None]))
        kept = []
        for b in range(batch):
            index = det.index[b, valid[b]]  # by descending score
            if len(index) > self.n_limit:
                kept.append(index[: self.n_limit])  # Python slicing, as kornia's (n_limit may be <= 0)
            else:
                kept.append(index.sort().values)  # raster order
        return kept


# ---- DISK ---------------------------------------------------------------------------------------


def heatmap_to_keypoints(
    heatmap: torch.Tensor, n: int | None = None, window_size: int = 5, score_threshold: float = 0.0
) -> list:
    """``kornia.feature.disk.detector.heatmap_to_keypoints`` on tusk's detection.

    The strict maxima of ``window_size`` windows (at least ``window_size // 2`` px inside the map)
    scoring strictly above ``score_threshold``; with more than ``n`` of them, the ``n`` strongest,
    those tied at the cut taken in raster order; listed in raster order. Returns one kornia
    ``Keypoints(xys [N, 2] int64 (x, y), detection_logp [N])`` per image, ``detection_logp`` the
    heatmap values there (differentiable). An even ``window_size`` runs kornia's own function
    (tusk's windows are centred, so odd).
    """
    from kornia.feature.disk.detector import heatmap_to_keypoints as kornia_heatmap_to_keypoints
    from kornia.feature.disk.structs import Keypoints

    if window_size % 2 == 0 or window_size < 1:
        return kornia_heatmap_to_keypoints(heatmap, n=n, window_size=window_size, score_threshold=score_threshold)
    batch, _, height, width = heatmap.shape
    radius = window_size // 2
    if n is not None and n <= 0:  # kornia keeps none (an image with no maximum has none anyway)
        empty = torch.zeros(0, 2, dtype=torch.long, device=heatmap.device)
        return [Keypoints(empty, heatmap.new_zeros(0)) for _ in range(batch)]
    with torch.no_grad():
        if n is None:
            det = _detect_every_peak(heatmap, height * width, radius, nms_size=window_size,
                                     peak_threshold=score_threshold)
        else:
            det = detect_keypoints(heatmap, _slots(n, height, width, radius), nms_size=window_size, window=1,
                                   strict=True, border=radius, peak_threshold=score_threshold, fill=False,
                                   return_index=True)
    # The valid slots are each image's first (ranked by score, the threshold on the score): the
    # best n, put back in raster order.
    counts = det.valid.sum(dim=1).tolist()
    index = torch.cat([det.index[b, :count].sort().values for b, count in enumerate(counts)])
    image = torch.repeat_interleave(torch.arange(batch, device=index.device), torch.tensor(counts, device=index.device))
    # One gather for the batch: its backward writes one dense gradient, not one per image.
    values = heatmap.reshape(batch, -1)[image, index].split(counts)
    xys = torch.stack((index % width, torch.div(index, width, rounding_mode="trunc")), dim=1).split(counts)
    return [Keypoints(xy, value) for xy, value in zip(xys, values)]


def _disk_forward(
    model,
    images: torch.Tensor,
    n: int | None = None,
    window_size: int = 5,
    score_threshold: float = 0.0,
    pad_if_not_divisible: bool = False,
) -> list:
    """``kornia.feature.DISK.forward`` (kornia 0.9) with tusk's :func:`heatmap_to_keypoints`."""
    batch = images.shape[0]
    if pad_if_not_divisible:
        h, w = images.shape[2:]
        pd_h = 16 - h % 16 if h % 16 > 0 else 0
        pd_w = 16 - w % 16 if w % 16 > 0 else 0
        images = F.pad(images, (0, pd_w, 0, pd_h), value=0.0)
    heatmaps, descriptors = model.heatmap_and_dense_descriptors(images)
    if pad_if_not_divisible:
        heatmaps = heatmaps[..., :h, :w]
        descriptors = descriptors[..., :h, :w]
    keypoints = heatmap_to_keypoints(heatmaps, n=n, window_size=window_size, score_threshold=score_threshold)
    return [keypoints[i].merge_with_descriptors(descriptors[i]) for i in range(batch)]


# ---- XFeat --------------------------------------------------------------------------------------


def xfeat_nms(x: torch.Tensor, threshold: float = 0.05, kernel_size: int = 5) -> torch.Tensor:
    """``kornia.feature.XFeat._nms`` on tusk's detection: ``x [B, 1, H, W]`` -> ``[B, N, 2]`` int64.

    The strict maxima of ``kernel_size`` windows (at least ``kernel_size // 2`` px inside the map)
    strictly above ``threshold``, as ``(x, y)`` in raster order; ``N`` is the largest count in the
    batch and shorter rows are padded with ``-1``. An even ``kernel_size`` runs kornia's own.
    """
    if kernel_size % 2 == 0 or kernel_size < 1:
        from kornia.feature.xfeat import XFeat

        return XFeat._nms(x, threshold=threshold, kernel_size=kernel_size)
    batch, _, height, width = x.shape
    radius = kernel_size // 2
    with torch.no_grad():
        det = _detect_every_peak(x, height * width, radius, nms_size=kernel_size, peak_threshold=threshold)
    # The valid slots are each image's first ones (ranked by score, the threshold on the score):
    # only the first `count` columns are sorted into raster order, the invalid ones last.
    pixels = height * width
    count = int(det.valid.sum(dim=1).max())
    valid, index = det.valid[:, :count], det.index[:, :count]
    keys = torch.where(valid, index, torch.full_like(index, pixels)).sort(dim=1).values
    xy = torch.stack((keys % width, torch.div(keys, width, rounding_mode="trunc")), dim=-1)
    return torch.where((keys < pixels)[..., None], xy, torch.full_like(xy, -1))


class InterpolateSparse2d(torch.nn.Module):
    """``kornia.feature.xfeat.InterpolateSparse2d``: samples ``x [B, C, h, w]`` at the pixels
    ``pos [B, N, 2]`` (x, y) of an ``H x W`` image -> ``[B, N, C]``, as kornia does: the grid
    ``2 pos / (W - 1, H - 1) - 1`` read with ``align_corners=False``, i.e. at
    ``(grid + 1) (w, h) / 2 - 0.5`` in the map's pixels, zero outside the map.

    ``mode="bilinear"`` runs :func:`tusk.ops.sample_descriptors` (gradients to ``x``);
    ``"nearest"`` is a gather at the rounded position (half to even, as ``grid_sample``); any
    other mode (``"bicubic"``, XFeat's descriptors) stays ``grid_sample``.
    """

    def __init__(self, mode: str = "bicubic", align_corners: bool = False) -> None:
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    def normgrid(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """kornia's ``2 * x / [W - 1, H - 1] - 1``."""
        return 2.0 * (x / torch.tensor([W - 1, H - 1], device=x.device, dtype=x.dtype)) - 1.0

    def forward(self, x: torch.Tensor, pos: torch.Tensor, H: int, W: int) -> torch.Tensor:
        grid = self.normgrid(pos, H, W).to(x.dtype)  # [B, N, 2]
        if self.mode not in ("bilinear", "nearest"):
            out = F.grid_sample(x, grid.unsqueeze(-2), mode=self.mode, align_corners=False)
            return out.permute(0, 2, 3, 1).squeeze(-2)
        height, width = x.shape[-2:]
        # grid_sample's unnormalisation with align_corners=False: (g + 1) * size / 2 - 0.5.
        scale = torch.tensor([width / 2, height / 2], device=x.device, dtype=x.dtype)
        xy = (grid + 1) * scale - 0.5
        if self.mode == "bilinear":
            return sample_descriptors(x, xy, padding="zeros")
        nearest = xy.round().long()  # half to even, as grid_sample's nearbyint
        col, row = nearest[..., 0], nearest[..., 1]
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        flat = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)  # [B, N]
        values = torch.gather(x.flatten(2), 2, flat[:, None].expand(-1, x.shape[1], -1))  # [B, C, N]
        return (values * inside[:, None].to(x.dtype)).transpose(1, 2)


# ---- swapping heads -----------------------------------------------------------------------------


def accelerate(model: torch.nn.Module) -> torch.nn.Module:
    """Swap, in place, every head of ``model`` (a kornia model or a module holding them) that tusk
    implements, and return ``model``:

    - ``kornia.feature.aliked.DKD`` submodules (ALIKED's ``dkd``) -> :class:`DKD`, same settings,
      device and dtype;
    - ``kornia.feature.DISK``: its ``forward`` calls :func:`heatmap_to_keypoints` (the rest of the
      forward is kornia 0.9's);
    - ``kornia.feature.XFeat``: ``_nms`` -> :func:`xfeat_nms`. Its ``InterpolateSparse2d``
      modules stay kornia's: at XFeat's sizes (a few thousand points read from single-channel
      1/1 and 1/8 maps) one ``grid_sample`` call is faster on CPU than tusk's
      ``sample_descriptors`` with its validation (benchmarks/RESULTS.md, ``xfeat-interpolate``);
      :class:`InterpolateSparse2d` is there to swap in by hand.

    Outputs do not change (see the module docstring). Raises ``TypeError`` if ``model`` holds
    none of these (an already accelerated model is returned as is).
    """
    from kornia.feature import DISK, XFeat
    from kornia.feature.aliked.aliked import DKD as KorniaDKD

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, KorniaDKD):
        raise TypeError("a DKD cannot be replaced in place: build tusk.integrations.kornia.DKD with its settings "
                        "instead")
    found = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, KorniaDKD):
                replacement = DKD(child.radius, child.top_k, child.scores_th, child.n_limit)
                replacement.temperature = child.temperature
                setattr(parent, name, replacement.to(child.hw_grid.device, child.hw_grid.dtype))
                found += 1
            elif isinstance(child, DKD):
                found += 1
    for module in model.modules():
        if isinstance(module, DISK):
            module.forward = functools.partial(_disk_forward, module)  # picklable, unlike a bound method
            found += 1
        elif isinstance(module, XFeat):
            module._nms = xfeat_nms
            found += 1
    if found == 0:
        raise TypeError(f"{type(model).__name__} holds no head tusk replaces (kornia's ALIKED/DKD, DISK, XFeat)")
    return model
