"""Thin-plate-spline warps: identity, exact affine recovery, interpolation, warping."""
import math

import pytest
import torch

from tusk.model.tps import (
    TpsParams, identity_grid, pad_size, random_tps, random_warp_grid, solve_tps, tps_grid, warp,
)


def test_identity_parameters_give_identity_grid():
    control, _ = random_tps(3, TpsParams(), generator=torch.Generator().manual_seed(0))
    grid = tps_grid(control, control, (9, 13))
    torch.testing.assert_close(grid, identity_grid((9, 13), batch=3), atol=1e-5, rtol=0)


def test_identity_warp_leaves_images_unchanged():
    images = torch.rand(2, 3, 10, 12)
    control, _ = random_tps(2, TpsParams(), generator=torch.Generator().manual_seed(1))
    pad = 2
    grid = tps_grid(control, control, (14, 16))
    torch.testing.assert_close(warp(images, grid, pad), images, atol=1e-5, rtol=0)


def test_known_affine_is_recovered():
    """Targets that are an affine map of the controls give exactly that affine map everywhere."""
    torch.manual_seed(0)
    control = torch.rand(2, 12, 2) * 2 - 1
    angle = 0.3
    matrix = torch.tensor([[1.1 * math.cos(angle), -math.sin(angle)], [math.sin(angle), 0.9 * math.cos(angle)]])
    shift = torch.tensor([0.05, -0.1])
    target = control @ matrix.T + shift
    coefficients = solve_tps(control, target)
    torch.testing.assert_close(coefficients[:, :12], torch.zeros(2, 12, 2), atol=1e-5, rtol=0)
    grid = tps_grid(control, target, (7, 8))
    expected = identity_grid((7, 8), batch=2) @ matrix.T + shift
    torch.testing.assert_close(grid, expected, atol=1e-5, rtol=0)


def test_grid_interpolates_control_points():
    """On a canvas whose pixel centres hit the control points, the grid equals the targets."""
    xs = torch.tensor([-1.0, 0.0, 1.0])
    control = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(1, 9, 2).double()
    target = control + torch.randn(1, 9, 2, dtype=torch.float64) * 0.1
    grid = tps_grid(control, target, (3, 3)).reshape(1, 9, 2)
    torch.testing.assert_close(grid, target)


def test_warp_translates_content():
    """A pure translation by one pixel (in normalised units) shifts the image by one pixel."""
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 4] = 1
    control = torch.rand(1, 6, 2) * 2 - 1
    step = 2 / 8  # one pixel of a 9-pixel canvas
    grid = tps_grid(control, control + torch.tensor([step, 0.0]), (9, 9))
    moved = warp(image, grid, 0)
    assert moved[0, 0, 4, 3] == pytest.approx(1, abs=1e-5)  # output(p) = input(p + 1px)
    assert moved.sum() == pytest.approx(1, abs=1e-5)


def test_random_tps_is_seeded_and_bounded():
    params = TpsParams(scale=0.95, scale_var=0.05, tps_scale=0.1, offset_scale=0.01, rot_scale=0.25)
    a = random_tps(4, params, generator=torch.Generator().manual_seed(3))
    b = random_tps(4, params, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    control, target = a
    assert control.shape == target.shape == (4, 16, 2)
    torch.testing.assert_close(control[:, 8:], target[:, 8:])  # border anchors stay put
    assert (target[:, :8] - control[:, :8]).abs().max() < 0.5
    grid = random_warp_grid(4, (20, 20), params, generator=torch.Generator().manual_seed(3))
    assert grid.shape == (4, 20, 20, 2) and grid.abs().max() < 1.3


def test_warp_padding_modes():
    images = torch.rand(1, 3, 10, 10)
    params = TpsParams()
    pad = pad_size((10, 10), params)
    assert pad == 2
    grid = random_warp_grid(1, (14, 14), params, generator=torch.Generator().manual_seed(0))
    reflected = warp(images, grid, pad, padding="reflection")
    constant = warp(images, grid, pad, padding="constant", value=0.0)
    assert reflected.shape == constant.shape == (1, 3, 10, 10)
    assert torch.isfinite(reflected).all()


def test_bad_params():
    with pytest.raises(ValueError, match="tps.padding"):
        TpsParams(padding="wrap").validate()
    with pytest.raises(ValueError, match="tps.rot_scale"):
        TpsParams(rot_scale=-1).validate()
