"""Public op: batched sort-based sliced Wasserstein distance."""
from __future__ import annotations

import torch

from . import reference
from ._backend import cpp_available, kernel_namespace, resolve_backend
from ._checks import check_float, check_int, check_same


def random_projections(
    channels: int, count: int, *, like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``[channels, count]`` directions uniform on the unit sphere (normalised Gaussian columns).

    Drawn on the generator's device (``like.device`` without one), then moved to ``like``.
    """
    device = generator.device if generator is not None else like.device
    theta = torch.randn(channels, count, generator=generator, device=device, dtype=like.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True).clamp_min(torch.finfo(like.dtype).tiny)
    return theta.to(like.device)


def sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    projections: int | torch.Tensor = 100,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Squared sliced 2-Wasserstein distance between equal-size point sets.

    ``SW = mean_p mean_i (sort(x theta_p)_i - sort(y theta_p)_i)^2``: each projection is sorted
    once per side. (The official TUSK loss is ``P`` times this.)

    Args:
        x, y: ``[..., N, C]`` point sets with the same shape; leading dims are independent problems.
        projections: number ``P`` of random directions (uniform on the sphere, drawn from
            ``generator``), or a ``[C, P]`` tensor of directions (gradients flow to it too).
        generator: random generator for the directions.
        backend: ``auto|reference|cpp|cuda|triton`` (default: ``TUSK_BACKEND`` or ``auto``).

    Returns:
        ``[...]`` distances; gradients flow to ``x`` and ``y`` through the sorted values.

    Example:
        >>> x = torch.randn(64, 8); float(sliced_wasserstein(x, x.flip(0)))
        0.0
    """
    x = check_float("x", x)
    y = check_float("y", y)
    if x.dim() < 2:
        raise ValueError(f"x must have shape [..., N, C], got {tuple(x.shape)}")
    if y.shape != x.shape:
        raise ValueError(f"y must have the same shape [..., N, C] as x = {tuple(x.shape)}, got {tuple(y.shape)}")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have N >= 1 points of C >= 1 channels, got shape {tuple(x.shape)}")
    check_same(("x", "y"), (x, y))
    channels = x.shape[-1]
    if isinstance(projections, torch.Tensor):
        theta = check_float("projections", projections)
        if theta.dim() != 2 or theta.shape[0] != channels or theta.shape[1] == 0:
            raise ValueError(f"projections must have shape [C, P] with C = {channels}, P >= 1, got {tuple(theta.shape)}")
        check_same(("x", "projections"), (x, theta))
    else:
        count = check_int("projections", projections, minimum=1)
        theta = random_projections(channels, count, like=x, generator=generator)

    name = resolve_backend("sliced_wasserstein", backend, x)
    if name == "reference":
        return reference.sliced_wasserstein(x, y, theta)
    lead = x.shape[:-2]
    flat_x = x.reshape(-1, *x.shape[-2:]).contiguous()
    flat_y = y.reshape(-1, *y.shape[-2:]).contiguous()
    distance, _, _ = kernel_namespace(name).sliced_wasserstein(flat_x, flat_y, theta.contiguous())
    return distance.reshape(lead)


def _register_cpp() -> None:
    @torch.library.register_fake("tusk::sliced_wasserstein")
    def _(x, y, projections):
        groups, points, _ = x.shape
        residual = (projections.shape[1], groups, points)
        return x.new_empty((groups,)), x.new_empty(residual), x.new_empty(residual)

    @torch.library.register_fake("tusk::sliced_wasserstein_backward")
    def _(grad, x, y, projections, x_residual, y_residual, output_mask):
        return tuple(
            torch.empty_like(t) if wanted else t.new_empty((0,))
            for t, wanted in zip((x, y, projections), output_mask)
        )

    def setup_context(ctx, inputs, output):
        _, x_residual, y_residual = output
        ctx.save_for_backward(*inputs, x_residual, y_residual)
        ctx.mark_non_differentiable(x_residual, y_residual)

    def backward(ctx, grad, _grad_x_residual, _grad_y_residual):
        mask = list(ctx.needs_input_grad[:3])
        grads = torch.ops.tusk.sliced_wasserstein_backward(grad, *ctx.saved_tensors, mask)
        return tuple(g if wanted else None for g, wanted in zip(grads, mask))

    torch.library.register_autograd("tusk::sliced_wasserstein", backward, setup_context=setup_context)


if cpp_available():
    _register_cpp()
