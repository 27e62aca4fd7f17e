"""Sampled lattices: the descent step on a random strided subset of voxels."""

import math

import pytest
import torch
import torch.nn.functional as F

from itk_suits.core import DescentSettings, MultiScaleDescent, Scale, invert_displacement, warp
from itk_suits.core.bspline import BSplineGrid
from itk_suits.core.random_field import random_smooth_displacement
from itk_suits.core.sampling import LatticeSampler, sampling_strides
from itk_suits.core.warp import channels_last_table, interpolate_with_gradient
from itk_suits.features.mind import mind_ssc

from conftest import phantom


@pytest.mark.parametrize("shape, samples", [((37, 256, 256), 65536), ((31, 114, 116), 2**15), ((217, 181), 4096),
                                            ((8, 300, 300), 1000)])
def test_strides_keep_at_most_the_sample_budget_and_thin_the_longest_axes_first(shape, samples):
    strides = sampling_strides(shape, samples)
    kept = [math.ceil(n / k) for n, k in zip(shape, strides)]
    assert math.prod(kept) <= samples or min(kept) < 8
    assert all(n >= 4 for n in kept)
    short = shape.index(min(shape))
    assert strides[short] <= min(strides[a] for a in range(len(shape)) if a != short)
    assert sampling_strides(shape, None) == (1,) * len(shape)
    assert sampling_strides(shape, math.prod(shape)) == (1,) * len(shape)


@pytest.mark.parametrize("shape", [(7, 9), (5, 6, 8)])
def test_interpolation_equals_grid_sample_and_its_gradient_is_the_interpolants(shape):
    torch.manual_seed(0)
    image = torch.rand(2, 3, *shape, dtype=torch.float64)
    ndim = len(shape)
    sizes = torch.tensor(shape[::-1], dtype=torch.float64)
    points = torch.rand(2, 40, ndim, dtype=torch.float64) * (sizes + 2) - 1  # some beyond the border
    values, gradient = interpolate_with_gradient(channels_last_table(image), shape, points)
    grid = (points / (sizes - 1) * 2 - 1).reshape(2, 40, *([1] * (ndim - 1)), ndim)
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    torch.testing.assert_close(values, expected.reshape(2, 3, 40).movedim(1, -1))
    step = 1e-6
    for axis in range(ndim):
        offset = torch.zeros(ndim, dtype=torch.float64)
        offset[axis] = step
        ahead, _ = interpolate_with_gradient(channels_last_table(image), shape, points + offset)
        behind, _ = interpolate_with_gradient(channels_last_table(image), shape, points - offset)
        torch.testing.assert_close(gradient[axis], (ahead - behind) / (2 * step), atol=1e-6, rtol=0)


def test_lattices_cover_every_voxel_and_their_operators_are_rows_of_the_grid():
    grid = BSplineGrid((23, 30), 6.0)
    sampler = LatticeSampler(grid, (2, 3), torch.Generator().manual_seed(0))
    coefficients = torch.randn(1, 2, *grid.shape)
    dense = grid.dense(coefficients)
    seen = torch.zeros(23, 30, dtype=torch.bool)
    for _ in range(200):
        lattice = sampler.draw()
        torch.testing.assert_close(lattice.dense(coefficients), lattice.take(dense))
        seen[lattice.slices] = True
        coordinates = lattice.coordinates[0]
        rows, columns = torch.meshgrid(torch.arange(23)[lattice.slices[0]], torch.arange(30)[lattice.slices[1]],
                                       indexing="ij")
        assert torch.equal(coordinates[:, 0], columns.reshape(-1).float())
        assert torch.equal(coordinates[:, 1], rows.reshape(-1).float())
    assert seen.all()


def _known_pair(shape, seed):
    fixed = torch.from_numpy(phantom(shape, seed=seed))[None, None]
    truth = random_smooth_displacement(shape, 4.0, control_spacing=24, seed=seed + 10)
    return fixed, warp(fixed, invert_displacement(truth)), truth


def _error(fixed, moving, truth, samples, seed=0):
    schedule = [Scale(12, 150, 0.2), Scale(6, 150, 0.4)]
    with torch.no_grad():
        descent = MultiScaleDescent(mind_ssc(fixed), mind_ssc(moving), schedule,
                                    DescentSettings(samples=samples, seed=seed))
        estimate = descent.run()
    inner = (slice(None), slice(None)) + tuple(slice(4, n - 4) for n in fixed.shape[2:])
    return float((estimate - truth)[inner].norm(dim=1).mean()), descent.log


def test_a_sampled_descent_recovers_a_known_displacement_as_well_as_the_dense_one():
    fixed, moving, truth = _known_pair((72, 80), seed=3)
    dense, _ = _error(fixed, moving, truth, None)
    sampled, log = _error(fixed, moving, truth, 1500)
    assert log[-1]["sampling_strides"] != [1, 1]  # the finest scale really was sampled
    initial = float(truth[..., 4:-4, 4:-4].norm(dim=1).mean())
    assert dense < 0.3 * initial
    assert sampled < 1.2 * dense + 0.05, (dense, sampled)


def test_the_lattice_seed_makes_a_sampled_registration_reproducible():
    fixed, moving, truth = _known_pair((48, 52), seed=4)
    first, _ = _error(fixed, moving, truth, 500, seed=7)
    again, _ = _error(fixed, moving, truth, 500, seed=7)
    other, _ = _error(fixed, moving, truth, 500, seed=8)
    assert first == again and first != other


def test_principal_channels_keep_the_dominant_directions_and_leave_few_channels_alone():
    from itk_suits.core.channels import principal_channels

    torch.manual_seed(0)
    signal = torch.randn(1, 2, 30, 40)
    mixing = torch.randn(12, 2)
    fixed = torch.einsum("kc,bc...->bk...", mixing, signal) + 0.01 * torch.randn(1, 12, 30, 40)
    moving = fixed.roll(1, dims=-1)
    few_fixed, few_moving, kept = principal_channels(fixed, moving, 2)
    assert few_fixed.shape == (1, 2, 30, 40) and few_moving.shape == (1, 2, 30, 40)
    assert kept > 0.99  # two directions hold nearly all the variance of a rank-2 mixture
    # one basis for both images: the projection commutes with the shift
    torch.testing.assert_close(few_moving, few_fixed.roll(1, dims=-1), atol=1e-4, rtol=0)
    same_fixed, same_moving, kept = principal_channels(fixed, moving, 12)
    assert same_fixed is fixed and same_moving is moving and kept == 1.0


def test_large_3d_registrations_sample_and_project_by_default_and_not_when_asked():
    import numpy as np

    import itk_suits

    image = phantom((40, 72, 80), seed=5)
    moving = np.roll(image, 2, axis=2)
    sampled = itk_suits.register(image, moving, grid_spacings=(12, 8), iterations=(20, 20))
    assert sampled.log[-1]["sampling_strides"] != [1, 1, 1]
    assert sampled.parameters.channels == 6
    dense = itk_suits.register(image, moving, grid_spacings=(12, 8), iterations=(20, 20), samples=None)
    assert all(entry["sampling_strides"] == [1, 1, 1] for entry in dense.log)


def test_large_images_are_described_on_a_coarser_grid_and_the_field_covers_every_voxel(monkeypatch):
    import numpy as np

    import itk_suits
    from itk_suits.registration import inputs

    image = phantom((48, 64), seed=6, blobs=16)
    moving = np.roll(image, 3, axis=1)  # moving voxel p + 3 x shows fixed voxel p
    monkeypatch.setattr(inputs, "FEATURE_VOXELS", 1000)
    result = itk_suits.register(image, moving, spacing=(0.5, 0.8), grid_spacings=(16, 10), iterations=(100, 100))
    assert result.log[-1]["working_shape"] == [25, 33]  # features and descent on every second voxel
    field = result.displacement_field  # mm, (48, 64, 2), on every fixed voxel
    assert field.shape == (48, 64, 2)
    inner = field[8:-8, 8:-8]
    assert abs(np.median(inner[..., 0]) - 3 * 0.5) < 0.3 and abs(np.median(inner[..., 1])) < 0.3
    np.testing.assert_allclose(np.asarray(result.control_spacing), (10.0, 10.0), rtol=0.05)  # in fixed voxels


def test_a_coarser_feature_grid_whose_spacing_divides_the_extent_gets_its_transform(monkeypatch):
    """7 fixed voxels are 7 / (189 / 94) feature voxels on a 190-voxel axis halved: in floating point that
    spacing divides the 94-voxel extent a hair short of 27 times; the grids must still agree."""
    import numpy as np

    import itk_suits
    from itk_suits.core import control_grid_shape
    from itk_suits.registration import inputs

    for n in range(20, 400):
        for reduction in (2, 3, 4):
            m = int(round((n - 1) / reduction)) + 1
            assert control_grid_shape((m,), (7.0 / ((n - 1) / (m - 1)),)) == control_grid_shape((n,), (7.0,))
    image = phantom((190, 24), seed=7, blobs=12)
    monkeypatch.setattr(inputs, "FEATURE_VOXELS", 190 * 24 // 2)
    result = itk_suits.register(image, np.roll(image, 2, axis=0), grid_spacings=(7,), iterations=5)
    assert result.log[-1]["working_shape"] == [95, 13]
    assert result.displacement_field.shape == (190, 24, 2)
