"""Public op: Gaussian splatting of keypoint descriptors into dense maps."""
from __future__ import annotations

import math

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import check_choice, check_float, check_int, check_ndim, check_positive_float, check_same, check_size

REDUCTIONS = ("sum", "none")


def default_radius(variance: float) -> int:
    """Window half-size used when ``radius`` is None: ``max(1, ceil(4 * sqrt(variance)))``."""
    return max(1, math.ceil(4.0 * math.sqrt(variance)))


def splat_gaussians(
    xy: torch.Tensor,
    descriptors: torch.Tensor,
    weights: torch.Tensor | None,
    size: tuple[int, int],
    *,
    variance: float = 0.05,
    radius: int | None = None,
    normalize: bool = True,
    reduce: str = "sum",
    backend: str | None = None,
) -> torch.Tensor:
    """Render keypoint descriptors as truncated Gaussians.

    ``G_k(p) = exp(-|p - xy_k|^2 / (2 variance))`` for pixels ``p`` inside the image within the
    ``(2r+1)^2`` window centred on ``round(xy_k)`` (round half up), 0 elsewhere; with
    ``normalize`` each ``G_k`` is divided by its sum over that window. ``reduce="sum"`` gives
    ``sum_k w_k d_k G_k`` without materialising per-keypoint maps; ``reduce="none"`` keeps them.

    Args:
        xy: ``[B, K, 2]`` keypoints, pixel coordinates, x first.
        descriptors: ``[B, K, C]``.
        weights: ``[B, K]`` per-keypoint weights (e.g. detection scores) or None for all ones.
        size: ``(H, W)`` of the output map.
        variance: Gaussian variance in pixels^2, > 0 (default 0.05, as the official TUSK code).
        radius: window half-size ``r >= 0``; default ``max(1, ceil(4 sqrt(variance)))``.
        normalize: divide each Gaussian by its sum over the (clipped) window.
        reduce: ``"sum"`` -> ``[B, C, H, W]``; ``"none"`` -> ``[B, K, C, H, W]``.
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        The splatted map; gradients flow to ``xy``, ``descriptors`` and ``weights`` (the window
        position itself, a rounding, has no gradient).

    The compiled kernels touch only each keypoint's window: ``reduce="sum"`` never builds the
    ``[B, K, C, H, W]`` (or ``[B, K, H, W]``) maps, and the backward reads only the windows of
    the cotangent. A keypoint with a non-finite coordinate splats nothing there (the reference
    gives NaN maps for it when ``normalize=False``).

    Example:
        >>> out = splat_gaussians(torch.tensor([[[1.0, 1.0]]]), torch.ones(1, 1, 2), None, (3, 3))
        >>> out.shape, float(out.sum())
        (torch.Size([1, 2, 3, 3]), 2.0)
    """
    xy = check_float("xy", xy)
    descriptors = check_float("descriptors", descriptors)
    check_ndim("xy", xy, 3, "[B, K, 2]")
    check_size("xy", xy, 2, 2, "[B, K, 2]")
    check_ndim("descriptors", descriptors, 3, "[B, K, C]")
    if descriptors.shape[:2] != xy.shape[:2]:
        raise ValueError(
            f"descriptors must have shape [B, K, C] with B, K = {tuple(xy.shape[:2])} as xy, "
            f"got {tuple(descriptors.shape)}"
        )
    tensors, names = [xy, descriptors], ["xy", "descriptors"]
    if weights is not None:
        weights = check_float("weights", weights)
        if weights.shape != xy.shape[:2]:
            raise ValueError(f"weights must have shape [B, K] = {tuple(xy.shape[:2])}, got {tuple(weights.shape)}")
        tensors.append(weights)
        names.append("weights")
    check_same(names, tensors)
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise TypeError(f"size must be an (H, W) pair of ints, got {size!r}")
    height = check_int("size[0] (H)", size[0], minimum=1)
    width = check_int("size[1] (W)", size[1], minimum=1)
    variance = check_positive_float("variance", variance)
    radius = default_radius(variance) if radius is None else check_int("radius", radius, minimum=0)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
    check_choice("reduce", reduce, REDUCTIONS)

    name = resolve_backend("splat_gaussians", backend, xy)
    if name == "reference":
        return reference.splat_gaussians(
            xy, descriptors, weights, (height, width),
            variance=variance, radius=radius, normalize=normalize, reduce=reduce,
        )
    return kernel_namespace(name).splat_gaussians(
        xy.contiguous(), descriptors.contiguous(), None if weights is None else weights.contiguous(),
        height, width, variance, radius, normalize, reduce,
    )


def _register_cpp() -> None:
    @torch.library.register_fake("tusk::splat_gaussians")
    def _(xy, descriptors, weights, height, width, variance, radius, normalize, reduce):
        batch, k, channels = descriptors.shape
        if reduce == "sum":
            return descriptors.new_empty((batch, channels, height, width))
        return descriptors.new_empty((batch, k, channels, height, width))

    @torch.library.register_fake("tusk::splat_gaussians_backward")
    def _(grad, xy, descriptors, weights, height, width, variance, radius, normalize, reduce, output_mask):
        grad_xy = torch.empty_like(xy) if output_mask[0] else xy.new_empty((0,))
        grad_descriptors = torch.empty_like(descriptors) if output_mask[1] else descriptors.new_empty((0,))
        want_weights = output_mask[2] and weights is not None
        grad_weights = torch.empty_like(weights) if want_weights else xy.new_empty((0,))
        return grad_xy, grad_descriptors, grad_weights

    def setup_context(ctx, inputs, output):
        xy, descriptors, weights, *ctx.options = inputs
        # The forward output is not needed: the kernel recomputes each window from xy.
        ctx.save_for_backward(xy, descriptors, weights)

    def backward(ctx, grad):
        xy, descriptors, weights = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], weights is not None and ctx.needs_input_grad[2]]
        grad_xy, grad_descriptors, grad_weights = torch.ops.tusk.splat_gaussians_backward(
            grad.contiguous(), xy, descriptors, weights, *ctx.options, mask
        )
        return (
            grad_xy if mask[0] else None,
            grad_descriptors if mask[1] else None,
            grad_weights if mask[2] else None,
            None, None, None, None, None, None,
        )

    torch.library.register_autograd("tusk::splat_gaussians", backward, setup_context=setup_context)


if cpp_available():
    _register_cpp()
