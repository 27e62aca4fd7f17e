"""Tests of itk_suits.evaluation: metrics in physical units and the itk-elastix baseline."""

import sys

import numpy as np
import pytest
import SimpleITK as sitk

from itk_suits.errors import GeometryError, InputImageError, ParameterError, SuitsError
from itk_suits.evaluation import (
    default_parameter_map,
    dice,
    displacement_error,
    folding_percentage,
    jacobian_determinant,
    log_jacobian_std,
    run_elastix,
)


def rotation(ndim, angle):
    """Oblique direction matrix: rotation by ``angle`` about z (3D: then tilted about x)."""
    c, s = np.cos(angle), np.sin(angle)
    if ndim == 2:
        return np.array([[c, -s], [s, c]])
    about_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return about_x @ about_z


def grid(ndim, size, spacing, origin, direction):
    """Geometry of a test grid and the physical points of its voxels, shape (*size[::-1], ndim)."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1)
    index = np.transpose(index, tuple(reversed(range(ndim))) + (ndim,))  # to numpy order (z, y, x)
    points = np.asarray(origin) + index @ (direction @ np.diag(spacing)).T
    return points


def field_image(displacement, spacing, origin, direction):
    """SimpleITK vector image of physical displacements (array order (z,) y, x, component)."""
    image = sitk.GetImageFromArray(displacement.astype(np.float64), isVector=True)
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetDirection(tuple(np.asarray(direction, dtype=np.float64).ravel()))
    return image


def oblique_affine_field(ndim, matrix):
    """Field u(x) = (A - I) x on an oblique, anisotropic grid; returns (field, grid points)."""
    size = (12, 10, 8)[:ndim]
    spacing = (0.6, 1.7, 2.9)[:ndim]
    origin = (4.0, -7.5, 2.0)[:ndim]
    direction = rotation(ndim, 0.6)
    points = grid(ndim, size, spacing, origin, direction)
    displacement = points @ (np.asarray(matrix) - np.eye(ndim)).T
    return field_image(displacement, spacing, origin, direction), points


def bump_field():
    """2D field compressing x around the centre so strongly (factor 1 - 2) that it folds there."""
    spacing, origin, direction = (1.0, 1.5), (0.0, 0.0), np.eye(2)
    points = grid(2, (40, 30), spacing, origin, direction)
    offset = points[..., 0] - 20.0
    displacement = np.zeros(points.shape)
    displacement[..., 0] = -2.0 * offset * np.exp(-(offset**2) / (2 * 3.0**2))
    return field_image(displacement, spacing, origin, direction), points


def label_image(array, spacing=(1.0, 1.0)):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def mask_like(field, inside):
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(field)
    return mask


# --- Dice -------------------------------------------------------------------


def test_dice_of_offset_squares_matches_hand_count():
    reference = np.zeros((30, 30))
    test = np.zeros((30, 30))
    reference[5:15, 5:15] = 1  # 100 voxels
    test[5:15, 7:17] = 1  # shifted 2 voxels in x: 80 shared
    reference[20:24, 20:24] = 3  # label missing from test
    scores = dice(label_image(reference), label_image(test), labels=[1, 2, 3])
    assert scores[1] == pytest.approx(2 * 80 / 200)
    assert np.isnan(scores[2]), "a label absent from both images has undefined Dice"
    assert scores[3] == 0.0


def test_dice_defaults_to_reference_labels():
    reference = np.zeros((20, 20))
    reference[2:6, 2:6] = 1
    reference[10:15, 10:15] = 4
    scores = dice(label_image(reference), label_image(reference))
    assert scores == {1: 1.0, 4: 1.0}


def test_dice_refuses_images_on_different_grids():
    labels = np.zeros((20, 20))
    labels[5:10, 5:10] = 1
    with pytest.raises(GeometryError):
        dice(label_image(labels), label_image(labels, spacing=(1.0, 2.0)))


# --- Jacobian determinant -----------------------------------------------------


@pytest.mark.parametrize(
    "matrix",
    [
        [[1.2, 0.3], [-0.1, 0.9]],
        [[1.1, 0.2, -0.1], [0.05, 0.8, 0.3], [-0.2, 0.1, 1.3]],
    ],
    ids=["2d", "3d"],
)
def test_jacobian_of_affine_field_is_det_a_on_oblique_anisotropic_grid(matrix):
    field, _ = oblique_affine_field(len(matrix), matrix)
    determinant = jacobian_determinant(field)
    assert determinant.shape == field.GetSize()[::-1]
    np.testing.assert_allclose(determinant, np.linalg.det(matrix), rtol=1e-9)


def test_affine_field_has_zero_log_jacobian_spread_and_no_folding():
    field, _ = oblique_affine_field(3, np.diag([1.3, 0.7, 1.1]))
    assert log_jacobian_std(field) == pytest.approx(0.0, abs=1e-9)
    assert folding_percentage(field) == 0.0


def test_folding_is_zero_for_identity():
    field, _ = oblique_affine_field(2, np.eye(2))
    assert folding_percentage(field) == 0.0
    assert log_jacobian_std(field) == pytest.approx(0.0, abs=1e-12)


def test_folding_detects_folded_region_and_respects_mask():
    field, points = bump_field()
    distance = np.abs(points[..., 0] - 20.0)
    assert 0.0 < folding_percentage(field) < 100.0
    assert folding_percentage(field, mask=mask_like(field, distance <= 1.0)) == 100.0
    assert folding_percentage(field, mask=mask_like(field, distance >= 8.0)) == 0.0
    assert log_jacobian_std(field) > 0.5


def test_reflection_folds_everywhere():
    field, _ = oblique_affine_field(2, [[-1.0, 0.0], [0.0, 1.0]])
    assert folding_percentage(field) == 100.0


def test_empty_mask_is_refused():
    field, points = bump_field()
    with pytest.raises(InputImageError):
        folding_percentage(field, mask=mask_like(field, np.zeros(points.shape[:-1], bool)))


# --- Displacement error -------------------------------------------------------


def test_displacement_error_of_constant_offset_is_its_length():
    zero, points = oblique_affine_field(3, np.eye(3))
    offset = np.array([3.0, -4.0, 12.0])  # length 13 mm
    shifted = field_image(
        np.broadcast_to(offset, points.shape), zero.GetSpacing(), zero.GetOrigin(), zero.GetDirection()
    )
    error = displacement_error(shifted, zero)
    assert error == pytest.approx({"mean": 13.0, "p95": 13.0, "max": 13.0})


def test_displacement_error_counts_only_inside_mask():
    bump, points = bump_field()
    zero = field_image(np.zeros(points.shape), bump.GetSpacing(), bump.GetOrigin(), bump.GetDirection())
    wrong = np.zeros(points.shape)
    wrong[:15, :, 1] = 2.0  # 2 mm error in the first 15 rows only
    estimate = field_image(wrong, zero.GetSpacing(), zero.GetOrigin(), zero.GetDirection())
    inside = np.zeros(points.shape[:-1], bool)
    inside[15:] = True
    assert displacement_error(estimate, zero, mask=mask_like(zero, inside))["max"] == 0.0
    assert displacement_error(estimate, zero)["mean"] == pytest.approx(1.0)


def test_displacement_error_refuses_fields_on_different_grids():
    field_2d, _ = bump_field()
    other, _ = oblique_affine_field(2, np.eye(2))
    with pytest.raises(GeometryError):
        displacement_error(field_2d, other)


# --- itk-elastix baseline -----------------------------------------------------

TRANSLATION_MM = np.array([3.0, -2.0])


def blob_phantom(shift_mm):
    """Smooth 2D phantom on an oblique, anisotropic grid; its content is translated by ``shift_mm``.

    Intensity is a sum of Gaussian blobs defined in physical coordinates, so
    ``blob_phantom(t)(x + t) == blob_phantom(0)(x)`` exactly.
    """
    size, spacing, origin = (64, 56), (1.0, 1.5), (-30.0, 5.0)
    direction = rotation(2, np.deg2rad(20))
    points = grid(2, size, spacing, origin, direction) - shift_mm
    rng = np.random.default_rng(7)
    centre = np.asarray(origin) + direction @ (np.array(size) * spacing / 2)
    centres = centre + rng.uniform(-28, 28, size=(40, 2))
    widths = rng.uniform(3.0, 6.0, size=40)
    heights = rng.uniform(0.3, 1.0, size=40)
    values = np.zeros(points.shape[:-1])
    for c, w, h in zip(centres, widths, heights):
        values += h * np.exp(-np.sum((points - c) ** 2, axis=-1) / (2 * w**2))
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple(direction.ravel()))
    return image


def require_elastix():
    """The itk module, skipping the test when itk-elastix is not installed."""
    itk = pytest.importorskip("itk")
    if not hasattr(itk, "ElastixRegistrationMethod"):
        pytest.skip("itk-elastix is not installed")
    return itk


def quick_maps(*names):
    return [
        default_parameter_map(name, resolutions=2, overrides={"MaximumNumberOfIterations": 50})
        for name in names
    ]


@pytest.fixture(scope="module")
def translated_pair():
    require_elastix()
    fixed = blob_phantom(np.zeros(2))
    moving = blob_phantom(TRANSLATION_MM)
    return fixed, moving, run_elastix(fixed, moving, parameter_maps=quick_maps("affine", "bspline"), threads=1)


def interior(image, margin=12):
    inside = np.zeros(image.GetSize()[::-1], bool)
    inside[margin:-margin, margin:-margin] = True
    return inside


def test_elastix_recovers_translation_with_fixed_to_moving_sign(translated_pair):
    fixed, _, result = translated_pair
    field = sitk.GetArrayFromImage(result.displacement_field)[interior(fixed)]
    np.testing.assert_allclose(np.median(field, axis=0), TRANSLATION_MM, atol=0.5)
    assert result.seconds > 0


def test_elastix_field_and_warped_image_lie_on_fixed_grid(translated_pair):
    fixed, _, result = translated_pair
    for image in (result.warped, result.displacement_field):
        assert image.GetSize() == fixed.GetSize()
        assert np.allclose(image.GetOrigin(), fixed.GetOrigin())
        assert np.allclose(image.GetSpacing(), fixed.GetSpacing())
        assert np.allclose(image.GetDirection(), fixed.GetDirection())


def test_elastix_warped_image_equals_resampling_with_returned_transform(translated_pair):
    fixed, moving, result = translated_pair
    resampled = sitk.Resample(moving, fixed, result.transform, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    inside = interior(fixed)
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(resampled)[inside], sitk.GetArrayFromImage(result.warped)[inside], atol=1e-3
    )


def test_elastix_field_matches_transform_at_voxel_centres(translated_pair):
    fixed, _, result = translated_pair
    field = sitk.GetArrayFromImage(result.displacement_field)
    for index in [(10, 12), (32, 28), (50, 40)]:
        point = np.array(fixed.TransformIndexToPhysicalPoint(index))
        expected = np.array(result.transform.TransformPoint(tuple(point))) - point
        np.testing.assert_allclose(field[index[::-1]], expected, atol=1e-6)


def test_elastix_parameter_file_replaces_maps(tmp_path):
    itk = require_elastix()
    parameter_object = itk.ParameterObject.New()
    parameter_object.AddParameterMap(quick_maps("translation")[0])
    path = str(tmp_path / "translation.txt")
    parameter_object.WriteParameterFile(path)
    fixed, moving = blob_phantom(np.zeros(2)), blob_phantom(TRANSLATION_MM)
    result = run_elastix(fixed, moving, parameter_maps=("bspline",), parameter_files=[path], threads=1)
    np.testing.assert_allclose(result.transform.TransformPoint((0.0, 30.0)), (3.0, 28.0), atol=0.3)


def test_elastix_rejects_unknown_map_name():
    require_elastix()
    fixed = blob_phantom(np.zeros(2))
    with pytest.raises(ParameterError):
        run_elastix(fixed, fixed, parameter_maps=("demons",))


def test_missing_itk_elastix_is_a_suits_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "itk", None)
    fixed = blob_phantom(np.zeros(2))
    with pytest.raises(SuitsError, match="pip install itk-elastix"):
        run_elastix(fixed, fixed)
