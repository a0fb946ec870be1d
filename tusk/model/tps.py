"""Random thin-plate-spline (TPS) warps for the equivariance loss (paper Eq. 4).

Coordinates here are normalised, ``[-1, 1]`` across the canvas with ``-1``/``+1`` on the
centres of the border pixels (``align_corners=True``, the package convention).

A TPS maps control points ``c_i`` to targets ``t_i`` with the smoothest interpolant

    f(p) = a_0 + A p + sum_i w_i U(|p - c_i|^2),   U(d) = d log d   (= r^2 log r^2),

whose coefficients solve ``[[U(|c_i - c_j|^2), P], [P^T, 0]] [w; a] = [t; 0]`` with
``P = [1, x, y]``. A warp *samples* its input at ``f(p)`` for every output pixel ``p``:
``warped(p) = input(f(p))``, so content at ``t_i`` moves to ``c_i``. An affine target
(``t = M c + b``) gives ``w = 0`` and reproduces the affine map exactly.

:func:`random_tps` draws the official code's distribution: 8 jittered inner points moved by a
random per-axis scale, rotation, offsets and small independent displacements, plus 8 fixed
anchors near the canvas border that do not move (so the warp stays inside the canvas).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Inner control points before jitter (two squares) and border anchors that never move.
_INNER = ((-0.7, -0.7), (0.7, -0.7), (-0.7, 0.7), (0.7, 0.7), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (-0.5, -0.5))
_ANCHORS = ((-0.99, -0.99), (0.0, -0.99), (0.99, -0.99), (0.99, 0.0), (0.99, 0.99), (0.0, 0.99), (-0.99, 0.99), (-0.95, 0.0))
_JITTER = 0.1


@dataclass
class TpsParams:
    """Strength of a random warp (uniform ranges, normalised units).

    Attributes:
        scale: mean zoom factor applied to the inner points (< 1 moves them inwards).
        scale_var: half-range of the per-axis scale around ``scale``.
        tps_scale: half-range of the independent per-point displacements (the non-rigid part).
        offset_scale: half-range of the two offsets (zoom centre and rotation centre).
        rot_scale: half-range of the rotation angle, radians.
        pad_fraction: the canvas is padded by ``int(H * pad_fraction)`` before warping (official
            1/5), so content warped in from outside the image is padding, not zeros.
        padding: ``"reflection"`` or ``"constant"`` padding of images (maps always reflect).
        pad_value: value of constant padding.
    """

    scale: float = 0.9
    scale_var: float = 0.05
    tps_scale: float = 0.05
    offset_scale: float = 0.05
    rot_scale: float = 0.25
    pad_fraction: float = 0.2
    padding: str = "reflection"
    pad_value: float = 0.0

    def validate(self) -> None:
        if self.padding not in ("reflection", "constant"):
            raise ValueError(f"tps.padding must be 'reflection' or 'constant', got {self.padding!r}")
        for name in ("scale_var", "tps_scale", "offset_scale", "rot_scale", "pad_fraction"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"tps.{name} must be >= 0, got {getattr(self, name)!r}")
        if not float(self.scale) > 0:
            raise ValueError(f"tps.scale must be > 0, got {self.scale!r}")


def _uniform(shape, half_range: float, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
    """Uniform in ``[-half_range, half_range)``."""
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * half_range


def random_tps(batch: int, params: TpsParams, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch`` random warps.

    Random numbers are drawn on the CPU from ``generator`` (so a seeded generator gives the same
    warps on every device), then moved to ``device``.

    Returns:
        ``(control [B, 16, 2], target [B, 16, 2])`` normalised (x, y) points.
    """
    inner = torch.tensor(_INNER, dtype=dtype).expand(batch, -1, -1)
    control = inner + _uniform(inner.shape, _JITTER, generator, dtype)
    shift = _uniform(control.shape, params.tps_scale, generator, dtype)
    zoom_centre = _uniform((batch, 1, 2), params.offset_scale, generator, dtype)
    turn_centre = _uniform((batch, 1, 2), params.offset_scale, generator, dtype)
    zoom = params.scale + _uniform((batch, 1, 2), params.scale_var, generator, dtype)
    angle = _uniform((batch,), params.rot_scale, generator, dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # [B, 2, 2]
    zoomed = zoom * (control + shift - zoom_centre) + zoom_centre
    target = (zoomed - turn_centre) @ rotation.transpose(1, 2) + turn_centre
    anchors = torch.tensor(_ANCHORS, dtype=dtype).expand(batch, -1, -1)
    control = torch.cat((control, anchors), dim=1)
    target = torch.cat((target, anchors), dim=1)
    return control.to(device), target.to(device)


def _kernel(d2: torch.Tensor) -> torch.Tensor:
    """TPS radial basis ``U(d2) = d2 log d2`` with ``U(0) = 0``."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-30)), torch.zeros_like(d2))


def _affine_basis(points: torch.Tensor) -> torch.Tensor:
    """``[..., N, 2] -> [..., N, 3]`` rows ``(1, x, y)``."""
    return torch.cat((torch.ones_like(points[..., :1]), points), dim=-1)


def solve_tps(control: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """TPS coefficients ``[B, N + 3, 2]``: N radial weights then the 3 affine rows.

    Args:
        control, target: ``[B, N, 2]`` (N >= 3 points, not all collinear).
    """
    batch, n, _ = control.shape
    radial = _kernel(torch.cdist(control, control).pow(2))  # [B, N, N]
    basis = _affine_basis(control)  # [B, N, 3]
    zeros = control.new_zeros(batch, 3, 3)
    system = torch.cat((torch.cat((radial, basis), 2), torch.cat((basis.transpose(1, 2), zeros), 2)), 1)
    rhs = torch.cat((target, control.new_zeros(batch, 3, 2)), 1)
    return torch.linalg.solve(system, rhs)


def identity_grid(size: tuple[int, int], *, batch: int = 1, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B, H, W, 2]`` normalised (x, y) coordinates of every pixel centre."""
    height, width = size
    ys = torch.linspace(-1, 1, height, dtype=dtype, device=device)
    xs = torch.linspace(-1, 1, width, dtype=dtype, device=device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [H, W, 2]
    return grid.expand(batch, height, width, 2)


def tps_grid(control: torch.Tensor, target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W, 2]`` sampling grid of the TPS through ``control -> target`` (for ``grid_sample``
    with ``align_corners=True``)."""
    coefficients = solve_tps(control, target)  # [B, N + 3, 2]
    batch, n, _ = control.shape
    points = identity_grid(size, batch=batch, dtype=control.dtype, device=control.device).reshape(batch, -1, 2)
    radial = _kernel(torch.cdist(points, control).pow(2))  # [B, HW, N]
    mapped = radial @ coefficients[:, :n] + _affine_basis(points) @ coefficients[:, n:]
    return mapped.reshape(batch, size[0], size[1], 2)


def pad_size(size: tuple[int, int], params: TpsParams) -> int:
    """Padding (pixels on each side) of an ``(H, W)`` canvas before warping."""
    return int(size[0] * params.pad_fraction)


def random_warp_grid(batch: int, size: tuple[int, int], params: TpsParams, *,
                     generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B, H, W, 2]`` grids of ``batch`` random warps of an ``(H, W)`` canvas (usually the
    padded image, see :func:`pad_size`)."""
    control, target = random_tps(batch, params, generator=generator, dtype=dtype, device=device)
    return tps_grid(control, target, size)


def pad_canvas(x: torch.Tensor, pad: int, *, padding: str = "reflection", value: float = 0.0) -> torch.Tensor:
    """Pad ``x [B, C, H, W]`` by ``pad`` pixels on each side (reflection or a constant)."""
    if pad <= 0:
        return x
    if padding == "reflection":
        # Reflection needs pad < size; on tiny maps fall back to replicating the border.
        mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
        return F.pad(x, (pad, pad, pad, pad), mode=mode)
    return F.pad(x, (pad, pad, pad, pad), mode="constant", value=value)


def resample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``x`` sampled bilinearly at ``grid`` (normalised, ``align_corners=True``; samples that
    fall off the canvas reflect back into it)."""
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=True)


def crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Remove ``pad`` pixels from each side of ``x [..., H, W]``."""
    if pad <= 0:
        return x
    return x[..., pad:x.shape[-2] - pad, pad:x.shape[-1] - pad]


def warp(x: torch.Tensor, grid: torch.Tensor, pad: int, *, padding: str = "reflection",
         value: float = 0.0) -> torch.Tensor:
    """Warp ``x [B, C, H, W]`` by ``grid [B, H + 2 pad, W + 2 pad, 2]``: pad, resample the padded
    canvas, crop the centre ``H x W`` back."""
    return crop(resample(pad_canvas(x, pad, padding=padding, value=value), grid), pad)


__all__ = [
    "TpsParams", "crop", "identity_grid", "pad_canvas", "pad_size", "random_tps", "random_warp_grid",
    "resample", "solve_tps", "tps_grid", "warp",
]
