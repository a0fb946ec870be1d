"""Public op: alpha compositing of per-keypoint renderings."""
from __future__ import annotations

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import check_float, check_ndim, check_same, check_size


def alpha_composite(
    rgb: torch.Tensor, alpha_logits: torch.Tensor, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend per-keypoint renderings with a softmax over keypoints.

    ``alpha = softmax_k(alpha_logits)``, ``image = sum_k alpha_k * rgb_k``. The fused kernels
    make one pass over memory, recompute the softmax in backward instead of saving it, skip the
    work of an output that receives no gradient (usually ``alpha``), and read ``rgb`` /
    ``alpha_logits`` that are strided over ``(B, K, C)`` in place as long as each ``H x W``
    plane is contiguous (e.g. ``out[:, :, :3]`` and ``out[:, :, 3:]`` of one decoder output).

    Args:
        rgb: ``[B, K, C, H, W]`` per-keypoint renderings (e.g. decoder RGB outputs).
        alpha_logits: ``[B, K, 1, H, W]`` per-keypoint alpha logits.
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        ``(image [B, C, H, W], alpha [B, K, 1, H, W])``; the argmax of ``alpha`` over K is the
        per-pixel object mask.

    Example:
        >>> image, alpha = alpha_composite(torch.ones(1, 2, 3, 4, 4), torch.zeros(1, 2, 1, 4, 4))
        >>> float(image.mean()), float(alpha.mean())
        (1.0, 0.5)
    """
    rgb = check_float("rgb", rgb)
    alpha_logits = check_float("alpha_logits", alpha_logits)
    check_ndim("rgb", rgb, 5, "[B, K, C, H, W]")
    check_ndim("alpha_logits", alpha_logits, 5, "[B, K, 1, H, W]")
    check_size("alpha_logits", alpha_logits, 2, 1, "[B, K, 1, H, W]")
    expected = (rgb.shape[0], rgb.shape[1], 1, rgb.shape[3], rgb.shape[4])
    if tuple(alpha_logits.shape) != expected:
        raise ValueError(f"alpha_logits must have shape [B, K, 1, H, W] = {expected} to match rgb, got {tuple(alpha_logits.shape)}")
    if rgb.shape[1] == 0:
        raise ValueError(f"rgb must have at least one keypoint (K >= 1), got shape {tuple(rgb.shape)}")
    check_same(("rgb", "alpha_logits"), (rgb, alpha_logits))
    name = resolve_backend("alpha_composite", backend, rgb)
    if name == "reference":
        return reference.alpha_composite(rgb, alpha_logits)
    # No .contiguous(): the kernels read (B, K, C)-strided inputs whose H x W planes are
    # contiguous in place, e.g. rgb / alpha channel slices of one decoder output.
    image, alpha = kernel_namespace(name).alpha_composite(rgb, alpha_logits)
    return image, alpha


def _register_cpp() -> None:
    @torch.library.register_fake("tusk::alpha_composite")
    def _(rgb, alpha_logits):
        batch, _, channels, height, width = rgb.shape
        return rgb.new_empty((batch, channels, height, width)), torch.empty_like(alpha_logits)

    @torch.library.register_fake("tusk::alpha_composite_backward")
    def _(grad_image, grad_alpha, rgb, alpha_logits, output_mask):
        grad_rgb = torch.empty_like(rgb) if output_mask[0] else rgb.new_empty((0,))
        grad_logits = torch.empty_like(alpha_logits) if output_mask[1] else alpha_logits.new_empty((0,))
        return grad_rgb, grad_logits

    def setup_context(ctx, inputs, output):
        rgb, alpha_logits = inputs
        # alpha is recomputed in backward (one exp per element) instead of being kept alive.
        ctx.save_for_backward(rgb, alpha_logits)
        # An unused output (usually alpha) then arrives as None instead of a zero tensor.
        ctx.set_materialize_grads(False)

    def backward(ctx, grad_image, grad_alpha):
        rgb, alpha_logits = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1]]
        if grad_image is None and grad_alpha is None:
            return None, None
        grad_rgb, grad_logits = torch.ops.tusk.alpha_composite_backward(
            None if grad_image is None else grad_image.contiguous(),
            None if grad_alpha is None else grad_alpha.contiguous(),
            rgb, alpha_logits, mask,
        )
        return (grad_rgb if mask[0] else None), (grad_logits if mask[1] else None)

    torch.library.register_autograd("tusk::alpha_composite", backward, setup_context=setup_context)


if cpp_available():
    _register_cpp()
