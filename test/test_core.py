"""The tensor engine: B-spline grids, warping, the descent step and the grid optimizer."""

import pytest
import torch

from itk_suits.core import (
    BSplineGrid,
    DescentSettings,
    GridAdam,
    MultiScaleDescent,
    Scale,
    descent_step,
    invert_displacement,
    random_smooth_displacement,
    spatial_gradient,
    warp,
)
from itk_suits.core.bspline import basis_matrix
from itk_suits.core.optimizer import smoothness_gradient
from itk_suits.features.mind import mind_ssc

from conftest import phantom


@pytest.mark.parametrize("spacing", [7.0, 10.0, 13.7])
def test_bspline_basis_is_a_partition_of_unity(spacing):
    matrix = basis_matrix(50, 50, spacing, BSplineGrid((50,), spacing).shape[0])
    assert torch.allclose(matrix.sum(dim=1), torch.ones(50), atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 33), (12, 20, 17)])
def test_bspline_reproduces_linear_fields(shape):
    grid = BSplineGrid(shape, 6.5)
    coordinates = [torch.arange(n, dtype=torch.float32) for n in grid.shape]
    mesh = torch.meshgrid(*coordinates, indexing="ij")
    # control point k sits at voxel (k - 1) * spacing: a linear function of the position
    control_x = (mesh[-1] - 1.0) * 6.5 * 0.1 + 2.0
    coefficients = torch.stack([control_x] * len(shape))[None]
    dense = grid.dense(coefficients)[0, 0]
    expected = torch.arange(shape[-1], dtype=torch.float32) * 0.1 + 2.0
    assert torch.allclose(dense, expected.expand_as(dense), atol=1e-4)


def test_bspline_adjoint_is_the_transpose():
    grid = BSplineGrid((30, 41), 7.0, level_shape=(15, 21))
    c = torch.randn(1, 2, *grid.shape, dtype=torch.float32)
    f = torch.randn(1, 2, 15, 21)
    assert torch.allclose((grid.dense(c) * f).sum(), (c * grid.adjoint(f)).sum(), rtol=1e-4)


def test_refining_an_integer_multiple_spacing_is_exact():
    coarse, fine = BSplineGrid((61, 47), 20.0), BSplineGrid((61, 47), 10.0)
    c = torch.randn(1, 2, *coarse.shape)
    assert torch.allclose(coarse.dense(c), fine.dense(coarse.refine(c, fine)), atol=1e-4)


def test_refining_to_a_non_divisor_spacing_stays_close():
    coarse, fine = BSplineGrid((61, 47), 10.0), BSplineGrid((61, 47), 7.0)
    c = torch.randn(1, 2, *coarse.shape)
    error = (coarse.dense(c) - fine.dense(coarse.refine(c, fine))).abs().max()
    assert error < 0.05 * coarse.dense(c).abs().max()


def test_warp_samples_at_p_plus_u():
    image = torch.arange(20.0).repeat(10, 1)[None, None]  # value = x
    u = torch.zeros(1, 2, 10, 20)
    u[:, 0] = 1.5  # +1.5 voxel in x
    warped = warp(image, u)
    assert torch.allclose(warped[0, 0, :, :15], image[0, 0, :, :15] + 1.5, atol=1e-4)


def test_spatial_gradient_of_a_ramp_is_its_slope_in_xyz_order():
    z, y, x = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), torch.arange(8.0), indexing="ij")
    image = (2 * x - 3 * y + 0.5 * z)[None, None]
    gradient = spatial_gradient(image)[0, 0, :, 1:-1, 1:-1, 1:-1]
    for component, slope in enumerate((2.0, -3.0, 0.5)):
        assert torch.allclose(gradient[component], torch.full_like(gradient[component], slope))


def test_descent_step_points_towards_the_match():
    x = torch.arange(64.0)
    fixed = torch.exp(-0.5 * ((x - 30) / 5) ** 2).repeat(8, 1)[None, None]
    moving = torch.exp(-0.5 * ((x - 33) / 5) ** 2).repeat(8, 1)[None, None]
    # fixed voxel p matches moving p + 3: the step on u_x must be positive near the blob
    step = descent_step(fixed, moving, eps=1e-6)
    assert step[0, 0, :, 25:36].mean() > 0.1
    assert step[0, 1].abs().max() < 1e-6


def test_inverted_displacement_composes_to_identity():
    u = random_smooth_displacement((48, 56), 5.0, control_spacing=24, seed=3)
    v = invert_displacement(u)
    composed = v + warp(u, v)  # q -> q + v(q) -> q + v + u(q + v)
    assert composed[..., 8:-8, 8:-8].abs().max() < 0.05


def test_grid_adam_moves_about_learning_rate_per_iteration():
    parameters = torch.zeros(1, 2, 5, 5)
    optimizer = GridAdam(parameters, torch.tensor([0.5, 0.25]), eps=1e-8)
    for _ in range(10):
        optimizer.step(-torch.ones_like(parameters))
    assert torch.allclose(parameters[:, 0], torch.full((1, 5, 5), 5.0), rtol=1e-3)
    assert torch.allclose(parameters[:, 1], torch.full((1, 5, 5), 2.5), rtol=1e-3)


def test_smoothness_penalty_ignores_affine_fields_and_damps_checkerboards():
    mesh = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    affine = torch.stack([0.3 * mesh[1] + 0.1 * mesh[0] + 2, -0.2 * mesh[0] + 1])[None]
    assert smoothness_gradient(affine, 1.0)[..., 2:-2, 2:-2].abs().max() < 1e-5
    checker = ((mesh[0] + mesh[1]) % 2 * 2 - 1).expand(1, 2, 9, 9)
    gradient = smoothness_gradient(checker, 1.0)
    assert (gradient * checker)[..., 2:-2, 2:-2].min() > 0  # pushes the pattern back


SCHEDULE_2D = [Scale(12, 150, 0.2), Scale(6, 150, 0.4)]


def _register_tensors(fixed, moving, schedule, features=mind_ssc):
    with torch.no_grad():
        descent = MultiScaleDescent(features(fixed), features(moving), schedule, DescentSettings())
        return descent.run()


def test_identity_stays_identity_at_the_tensor_level():
    image = torch.from_numpy(phantom((64, 72), seed=1))[None, None]
    u = _register_tensors(image, image, SCHEDULE_2D)
    assert u.abs().max() < 0.05
