"""Control spacings in millimetres and the about-isotropic working grid of anisotropic images."""

import math

import numpy as np
import pytest
import SimpleITK as sitk

import itk_suits
from itk_suits.errors import InputImageError, ParameterError
from itk_suits.registration import inputs

from conftest import phantom, voxel_points
from test_registration import interior, known_pair


def _image(array, spacing, origin=(0.0, 0.0, 0.0), angle_deg=0.0, reflect=False):
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin(origin[: array.ndim])
    a = math.radians(angle_deg)
    direction = np.eye(array.ndim)
    direction[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    if reflect:
        direction[:, -1] *= -1
    image.SetDirection(direction.ravel().tolist())
    return image


@pytest.mark.parametrize("size, spacing", [((256, 256, 35), (1.25, 1.25, 7.7)), ((120, 90, 40), (0.7, 0.9, 3.0))])
def test_isotropic_working_grid_has_about_cubic_voxels_and_no_more_of_them(size, spacing):
    grid = inputs.working_grid(size, spacing, "isotropic")
    assert max(grid.voxel_size) / min(grid.voxel_size) < 1.05
    assert grid.voxels <= max(int(np.prod(size)), inputs.ISOTROPIC_MIN_VOXELS) * 1.05
    # same extent, corner-aligned
    for n, s, m, v in zip(reversed(size), reversed(spacing), grid.shape, grid.voxel_size):
        assert (m - 1) * v == pytest.approx((n - 1) * s)


def test_a_thin_stack_of_few_slices_is_upsampled_to_its_in_plane_spacing():
    grid = inputs.working_grid((49, 54, 9), (0.5, 0.5, 7.5), "isotropic")
    assert grid.voxel_size == pytest.approx((0.5, 0.5, 0.5))
    assert grid.shape == (121, 54, 49)
    assert grid.factors[0] == pytest.approx(1 / 15)


@pytest.mark.parametrize("mode", ["native", "isotropic"])
def test_isotropic_voxels_keep_their_grid(mode):
    grid = inputs.working_grid((69, 69, 64), (1.5, 1.5, 1.5), mode)
    assert grid.shape == (64, 69, 69) and grid.factors == (1.0, 1.0, 1.0)
    assert inputs.working_grid((256, 256, 35), (1.25, 1.25, 7.7), "native").shape == (35, 256, 256)


def test_control_spacing_in_millimetres_is_the_same_physical_length_on_every_axis():
    grid = inputs.working_grid((100, 80, 30), (1.0, 2.0, 5.0), "native")
    assert grid.control_spacing(10.0, "mm") == pytest.approx((2.0, 5.0, 10.0))
    assert grid.control_spacing(10.0, "voxel") == pytest.approx((10.0, 10.0, 10.0))
    iso = inputs.working_grid((100, 80, 30), (1.0, 2.0, 5.0), "isotropic")
    in_mm = np.asarray(iso.control_spacing(10.0, "mm")) * np.asarray(iso.voxel_size)
    assert in_mm == pytest.approx([10.0, 10.0, 10.0])
    # voxel units stay fixed-image voxels whatever the working grid
    in_voxels = np.asarray(iso.control_spacing(10.0, "voxel")) * np.asarray(iso.voxel_size)
    assert in_voxels == pytest.approx([50.0, 20.0, 10.0])


def test_millimetre_spacings_give_the_requested_physical_control_spacing():
    fixed, moving, _ = known_pair((20, 40, 44), 1.5, seed=3)
    spacing = (1.0, 1.5, 3.0)  # x, y, z
    result = itk_suits.register(_image(fixed, spacing), _image(moving, spacing), grid_spacings=(24, 12),
                                grid_unit="mm", iterations=(20, 20))
    control_mm = np.asarray(result.control_spacing)[::-1] * np.asarray(spacing)  # x, y, z
    assert control_mm == pytest.approx([12.0, 12.0, 12.0])
    assert [entry["grid_spacing"] for entry in result.log] == [24.0, 12.0]
    assert {entry["grid_unit"] for entry in result.log} == {"mm"}


def test_isotropic_working_grid_is_exactly_the_native_one_on_isotropic_voxels():
    fixed, moving, _ = known_pair((24, 28, 32), 2.0, seed=5)
    options = dict(grid_spacings=(12, 8), iterations=(20, 20))
    native = itk_suits.register(fixed, moving, working_grid="native", **options)
    iso = itk_suits.register(fixed, moving, working_grid="isotropic", **options)
    np.testing.assert_array_equal(native.displacement_field, iso.displacement_field)


def test_anisotropic_pair_registers_on_the_isotropic_grid_and_the_field_is_on_every_fixed_voxel():
    # a smooth known field on a fine isotropic anatomy, then every 4th slice kept: 1 x 1 x 4 mm voxels
    fixed, moving, u = known_pair((48, 40, 44), 2.5, seed=8)
    fixed, moving, u = fixed[::4], moving[::4], u[:, ::4]
    spacing, origin = (1.0, 1.0, 4.0), (5.0, -7.0, 12.0)
    f = _image(fixed, spacing, origin, angle_deg=20, reflect=True)
    m = _image(moving, spacing, origin, angle_deg=20, reflect=True)
    result = itk_suits.register(f, m, working_grid="isotropic", grid_unit="mm", grid_spacings=(16, 8),
                                iterations=(60, 60))
    field = result.displacement_field
    assert field.GetSize() == f.GetSize() and field.GetOrigin() == pytest.approx(f.GetOrigin())
    assert field.GetDirection() == pytest.approx(f.GetDirection())
    # the transform maps every fixed voxel as the field says
    points = voxel_points(f)
    mapped = np.array([result.transform.TransformPoint(p) for p in points.tolist()])
    np.testing.assert_allclose(mapped - points, sitk.GetArrayFromImage(field).reshape(-1, 3), atol=1e-4)
    # the known in-plane displacement (voxels = mm in plane) is mostly recovered
    estimate = np.moveaxis(sitk.GetArrayFromImage(field), -1, 0)
    direction = np.reshape(f.GetDirection(), (3, 3)) @ np.diag(spacing)
    truth = np.einsum("ij,j...->i...", direction, u * np.asarray([1.0, 1.0, 1.0 / 4.0])[:, None, None, None])
    inside = interior(fixed.shape, margin=2)
    before = np.linalg.norm(truth[:2], axis=0)[inside].mean()
    after = np.linalg.norm((estimate - truth)[:2], axis=0)[inside].mean()
    assert after < 0.6 * before, (before, after)


def test_millimetre_spacing_larger_than_the_image_is_refused():
    image = _image(phantom((10, 40, 40), seed=1), (1.0, 1.0, 2.0))
    with pytest.raises(InputImageError, match="mm"):
        itk_suits.register(image, image, grid_spacings=(30, 10), grid_unit="mm")


@pytest.mark.parametrize("name, value", [("grid_unit", "voxels"), ("grid_unit", None), ("working_grid", "iso")])
def test_unknown_units_and_working_grids_are_named(name, value):
    image = phantom((40, 40), seed=1)
    with pytest.raises(ParameterError, match=name):
        itk_suits.register(image, image, **{name: value})


def test_scale_observers_see_the_spacing_as_given():
    fixed, moving, _ = known_pair((20, 40, 44), 1.5, seed=3)
    method = itk_suits.SuitsRegistrationMethod.New(_image(fixed, (1.0, 1.5, 3.0)), _image(moving, (1.0, 1.5, 3.0)),
                                                   grid_spacings=(24, 12), grid_unit="mm", iterations=(5, 5))
    seen = []
    method.AddObserver(itk_suits.ScaleEvent, lambda entry: seen.append((entry["grid_spacing"], entry["grid_unit"])))
    method.Update()
    assert seen == [(24.0, "mm"), (12.0, "mm")]
