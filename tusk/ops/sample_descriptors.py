"""Public op: bilinear descriptor sampling at keypoints."""
from __future__ import annotations

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import check_choice, check_float, check_ndim, check_same, check_size

PADDINGS = ("zeros", "border")


def sample_descriptors(
    features: torch.Tensor, xy: torch.Tensor, *, padding: str = "zeros", backend: str | None = None
) -> torch.Tensor:
    """Bilinearly sample a feature map at keypoints.

    Args:
        features: ``[B, C, H, W]`` feature map.
        xy: ``[B, K, 2]`` keypoints in pixels, x first, pixel centres at integers.
        padding: ``"zeros"`` (outside the image reads 0) or ``"border"`` (clamped to the edge).
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        ``[B, K, C]`` descriptors; gradients flow to ``features`` and ``xy``. Same values as
        ``grid_sample(features, to_normalized(xy, (H, W))[:, :, None], mode="bilinear",
        padding_mode=padding, align_corners=True)[..., 0].transpose(1, 2)``, except on a
        1-pixel axis, where grid_sample maps every coordinate onto the pixel and tusk keeps
        measuring in pixels. At exact integer coordinates the gradient w.r.t. ``xy`` is the
        right-hand derivative (see :mod:`tusk.ops.reference.sample_descriptors`).

    Determinism: the forward is deterministic everywhere. On CUDA the gradient w.r.t.
    ``features`` is accumulated with ``atomicAdd`` (keypoints sharing a pixel add in a
    run-dependent order, so its last bits may vary between runs); under
    ``torch.use_deterministic_algorithms(True)`` an ordered, bitwise-reproducible path is used.

    Example:
        >>> features = torch.arange(12.0).reshape(1, 1, 3, 4)
        >>> sample_descriptors(features, torch.tensor([[[1.5, 1.0]]]))
        tensor([[[5.5000]]])
    """
    features = check_float("features", features)
    xy = check_float("xy", xy)
    check_ndim("features", features, 4, "[B, C, H, W]")
    check_ndim("xy", xy, 3, "[B, K, 2]")
    check_size("xy", xy, 2, 2, "[B, K, 2]")
    check_size("xy", xy, 0, features.shape[0], "[B, K, 2] with B matching features")
    if features.shape[2] == 0 or features.shape[3] == 0:
        raise ValueError(f"features must have H, W >= 1, got shape {tuple(features.shape)}")
    check_same(("features", "xy"), (features, xy))
    check_choice("padding", padding, PADDINGS)
    name = resolve_backend("sample_descriptors", backend, features)
    if name == "reference":
        return reference.sample_descriptors(features, xy, padding=padding)
    return kernel_namespace(name).sample_descriptors(features.contiguous(), xy.contiguous(), padding)


def _register_cpp() -> None:
    @torch.library.register_fake("tusk::sample_descriptors")
    def _(features, xy, padding):
        return features.new_empty((features.shape[0], xy.shape[1], features.shape[1]))

    @torch.library.register_fake("tusk::sample_descriptors_backward")
    def _(grad, features, xy, padding, output_mask):
        grad_features = torch.empty_like(features) if output_mask[0] else features.new_empty((0,))
        grad_xy = torch.empty_like(xy) if output_mask[1] else xy.new_empty((0,))
        return grad_features, grad_xy

    def setup_context(ctx, inputs, output):
        features, xy, padding = inputs
        ctx.save_for_backward(features, xy)
        ctx.padding = padding

    def backward(ctx, grad):
        features, xy = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1]]
        grad_features, grad_xy = torch.ops.tusk.sample_descriptors_backward(
            grad.contiguous(), features, xy, ctx.padding, mask
        )
        return (grad_features if mask[0] else None), (grad_xy if mask[1] else None), None

    torch.library.register_autograd("tusk::sample_descriptors", backward, setup_context=setup_context)


if cpp_available():
    _register_cpp()
