"""Tests of itk_suits.evaluation: metrics in physical units and the elastix / SimpleElastix baselines."""

import os
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from itk_suits.errors import GeometryError, InputImageError, ParameterError, SuitsError
from itk_suits.evaluation import (
    METHOD_MAPS,
    SimpleElastixUnavailable,
    default_parameter_map,
    dice,
    displacement_error,
    find_simpleelastix,
    folding_percentage,
    hausdorff95,
    jacobian_determinant,
    label_table,
    log_jacobian_std,
    run_elastix,
    run_simpleelastix,
)
from itk_suits.evaluation.simpleelastix import ENVIRONMENT_VARIABLE


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


# --- HD95 and the label table ---------------------------------------------------


def offset_squares(shift, spacing):
    """Two 10x10 squares, the second shifted by ``shift`` voxels (x, y); label 1, spacing in mm."""
    reference = np.zeros((40, 40))
    test = np.zeros((40, 40))
    reference[10:20, 10:20] = 1
    test[10 + shift[1] : 20 + shift[1], 10 + shift[0] : 20 + shift[0]] = 1
    return label_image(reference, spacing), label_image(test, spacing)


def test_hd95_of_squares_offset_3_voxels_at_half_mm_is_1_5_mm():
    # 14 of the 36 surface voxels of either square lie 3 voxels from the other's surface,
    # the rest closer, so the 95th percentile is 3 voxels = 1.5 mm
    reference, test = offset_squares((3, 0), (0.5, 0.5))
    assert hausdorff95(reference, test) == {1: pytest.approx(1.5)}


def test_hd95_uses_the_spacing_of_the_shifted_axis():
    reference, test = offset_squares((0, 3), (0.5, 2.0))
    assert hausdorff95(reference, test)[1] == pytest.approx(6.0)
    reference, test = offset_squares((3, 0), (0.5, 2.0))
    assert hausdorff95(reference, test)[1] == pytest.approx(1.5)


def test_hd95_of_cubes_offset_along_thick_slices():
    reference = np.zeros((12, 20, 20), np.uint8)
    test = np.zeros_like(reference)
    reference[2:8, 5:15, 5:15] = 2
    test[4:10, 5:15, 5:15] = 2  # 2 slices of 3 mm
    images = []
    for array in (reference, test):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 3.0))
        images.append(image)
    assert hausdorff95(*images)[2] == pytest.approx(6.0)


def test_hd95_ignores_an_outlier_voxel_that_the_full_hausdorff_distance_counts():
    reference, test = offset_squares((0, 0), (1.0, 1.0))
    outlier = sitk.GetArrayFromImage(test)
    outlier[35, 35] = 1
    test = label_image(outlier)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(reference, test)
    assert hausdorff.GetHausdorffDistance() > 15.0
    assert hausdorff95(reference, test)[1] == 0.0


def test_hd95_counts_the_image_border_as_surface():
    reference = np.zeros((10, 10))
    test = np.zeros((10, 10))
    reference[:, :4] = 1  # touches three borders
    test[:, :6] = 1
    assert hausdorff95(label_image(reference), label_image(test))[1] == pytest.approx(2.0)


def test_hd95_of_missing_labels_is_inf_for_one_image_and_nan_for_both():
    reference, test = offset_squares((1, 0), (1.0, 1.0))
    only_reference = sitk.GetArrayFromImage(reference)
    only_reference[30:35, 30:35] = 5
    scores = hausdorff95(label_image(only_reference), test, labels=[1, 5, 7])
    assert np.isfinite(scores[1])
    assert scores[5] == float("inf")
    assert np.isnan(scores[7])


def test_hd95_refuses_images_on_different_grids():
    reference, _ = offset_squares((0, 0), (1.0, 1.0))
    _, test = offset_squares((0, 0), (1.0, 2.0))
    with pytest.raises(GeometryError):
        hausdorff95(reference, test)


def test_label_table_rows_hold_dice_hd95_and_physical_volumes():
    reference, test = offset_squares((3, 0), (0.5, 0.5))
    rows = label_table(reference, test, labels=[1, 2], names={1: "liver"})
    assert [row["label"] for row in rows] == [1, 2]
    liver, missing = rows
    assert liver["name"] == "liver" and missing["name"] == "label 2"
    assert liver["dice"] == pytest.approx(2 * 70 / 200)
    assert liver["hd95_mm"] == pytest.approx(1.5)
    assert liver["volume_reference_mm3"] == pytest.approx(100 * 0.25)
    assert liver["volume_test_mm3"] == pytest.approx(100 * 0.25)
    assert missing["volume_reference_mm3"] == 0.0 and np.isnan(missing["dice"])


def test_label_table_defaults_to_reference_labels_in_order():
    reference = np.zeros((20, 20))
    reference[2:6, 2:6] = 4
    reference[10:15, 10:15] = 1
    rows = label_table(label_image(reference), label_image(reference))
    assert [(row["label"], row["dice"], row["hd95_mm"]) for row in rows] == [(1, 1.0, 0.0), (4, 1.0, 0.0)]


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


def test_method_maps_name_the_affine_bspline_and_bspline_only_variants():
    assert METHOD_MAPS == {"elastix": ("affine", "bspline"), "elastix-bspline": ("bspline",)}


@pytest.mark.parametrize("initial", ["transform", "file"])
def test_elastix_result_includes_the_initial_transform(tmp_path, initial):
    require_elastix()
    fixed = blob_phantom(np.zeros(2))
    moving = blob_phantom(TRANSLATION_MM)
    # 1 mm off the truth: elastix refines it, the result must hold the whole mapping
    guess = sitk.TranslationTransform(2, tuple(TRANSLATION_MM + np.array([0.8, -0.6])))
    if initial == "file":
        sitk.WriteTransform(guess, str(tmp_path / "initial.tfm"))
        guess = str(tmp_path / "initial.tfm")
    result = run_elastix(
        fixed, moving, parameter_maps=quick_maps("affine", "bspline"), threads=1, initial_transform=guess
    )
    field = sitk.GetArrayFromImage(result.displacement_field)[interior(fixed)]
    np.testing.assert_allclose(np.median(field, axis=0), TRANSLATION_MM, atol=0.5)
    resampled = sitk.Resample(moving, fixed, result.transform, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(resampled)[interior(fixed)],
        sitk.GetArrayFromImage(result.warped)[interior(fixed)],
        atol=1e-3,
    )


def test_elastix_with_initial_translation_matches_elastix_without(translated_pair):
    fixed, moving, without = translated_pair
    with_initial = run_elastix(
        fixed,
        moving,
        parameter_maps=quick_maps("affine", "bspline"),
        threads=1,
        initial_transform=sitk.TranslationTransform(2, tuple(TRANSLATION_MM)),
    )
    difference = sitk.GetArrayFromImage(with_initial.displacement_field) - sitk.GetArrayFromImage(
        without.displacement_field
    )
    assert np.median(np.linalg.norm(difference[interior(fixed)], axis=-1)) < 0.5


def test_elastix_reports_its_transform_parameter_maps(translated_pair):
    _, _, result = translated_pair
    transforms = [stage["Transform"] for stage in result.transform_parameter_maps]
    assert transforms == [("AffineTransform",), ("BSplineTransform",)]


# --- SimpleElastix in its own interpreter ---------------------------------------


def test_missing_simpleelastix_configuration_is_reported_with_the_fix(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    interpreter, reason = find_simpleelastix()
    assert interpreter is None
    assert ENVIRONMENT_VARIABLE in reason and "SimpleITK-SimpleElastix" in reason
    fixed = blob_phantom(np.zeros(2))
    with pytest.raises(SimpleElastixUnavailable, match=ENVIRONMENT_VARIABLE):
        run_simpleelastix(fixed, fixed)


def test_nonexistent_simpleelastix_interpreter_is_reported(tmp_path):
    missing = str(tmp_path / "no-such-python")
    interpreter, reason = find_simpleelastix(missing)
    assert interpreter is None and missing in reason
    with pytest.raises(SimpleElastixUnavailable, match="does not exist"):
        run_simpleelastix(blob_phantom(np.zeros(2)), blob_phantom(np.zeros(2)), python=missing)


@pytest.mark.skipif(hasattr(sitk, "ElastixImageFilter"), reason="this SimpleITK is SimpleElastix")
def test_plain_simpleitk_interpreter_is_not_simpleelastix_and_probe_imports_nothing():
    modules = set(sys.modules)
    interpreter, reason = find_simpleelastix(sys.executable)
    assert interpreter is None
    assert "ElastixImageFilter" in reason
    assert set(sys.modules) == modules


def test_simpleelastix_worker_imports_only_the_standard_library_and_simpleitk():
    import ast

    from itk_suits.evaluation import simpleelastix

    worker = os.path.join(os.path.dirname(simpleelastix.__file__), "_simpleelastix_worker.py")
    with open(worker, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {"json", "os", "sys", "time", "SimpleITK"}


def test_simpleelastix_rejects_bad_options_before_looking_for_it(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    fixed = blob_phantom(np.zeros(2))
    with pytest.raises(ParameterError):
        run_simpleelastix(fixed, fixed, parameter_maps=("demons",))
    with pytest.raises(ParameterError):
        run_simpleelastix(fixed, fixed, timeout=0)


def require_simpleelastix():
    interpreter, reason = find_simpleelastix()
    if interpreter is None:
        pytest.skip(f"SimpleElastix not configured: {reason}")
    return interpreter


def test_simpleelastix_recovers_translation_on_the_fixed_grid():
    require_simpleelastix()
    fixed, moving = blob_phantom(np.zeros(2)), blob_phantom(TRANSLATION_MM)
    result = run_simpleelastix(fixed, moving, threads=1)
    field = sitk.GetArrayFromImage(result.displacement_field)
    assert result.displacement_field.GetSize() == fixed.GetSize()
    np.testing.assert_allclose(np.median(field[interior(fixed)], axis=0), TRANSLATION_MM, atol=0.5)
    point = fixed.TransformIndexToPhysicalPoint((32, 28))
    np.testing.assert_allclose(
        np.array(result.transform.TransformPoint(point)) - point, field[28, 32], atol=1e-6
    )
    assert result.seconds > 0


def test_simpleelastix_result_includes_the_initial_transform():
    require_simpleelastix()
    fixed, moving = blob_phantom(np.zeros(2)), blob_phantom(TRANSLATION_MM)
    guess = sitk.TranslationTransform(2, tuple(TRANSLATION_MM + np.array([0.8, -0.6])))
    result = run_simpleelastix(fixed, moving, threads=1, initial_transform=guess)
    field = sitk.GetArrayFromImage(result.displacement_field)[interior(fixed)]
    np.testing.assert_allclose(np.median(field, axis=0), TRANSLATION_MM, atol=0.5)
