"""register() and SuitsRegistrationMethod: accuracy, physical space, transforms, bad input."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import itk_suits
from itk_suits.core import invert_displacement, random_smooth_displacement, warp
from itk_suits.errors import GeometryError, InputImageError, ParameterError, PixelTypeError

from conftest import itk_mapped_points, phantom, remap_nonmonotonic, voxel_points

FAST = dict(grid_spacings=(12, 8, 6), iterations=(80, 80, 80))


def deform(array, u):
    """Moving array whose voxel p + u(p) shows what the fixed voxel p shows."""
    tensor = torch.from_numpy(array)[None, None]
    return warp(tensor, invert_displacement(u)).numpy()[0, 0]


def known_pair(shape, magnitude, seed, remap=False):
    """(fixed, moving, true voxel displacement); ``remap`` gives the moving image another
    'modality': a non-monotonic remapping of the intensities of a piecewise-constant anatomy."""
    fixed = phantom(shape, seed=seed, blobs=16, smooth=not remap)
    u = random_smooth_displacement(shape, magnitude, control_spacing=24, seed=seed + 10)
    moving = deform(remap_nonmonotonic(fixed) if remap else fixed, u)
    return fixed, moving.astype(np.float32), u[0].numpy()


def interior(shape, margin=4):
    return tuple(slice(margin, n - margin) for n in shape)


def mean_error(field_xyz, u_true, spacing=1.0):
    """Mean Euclidean error (voxels) in the interior between an (*shape, ndim) field and (ndim, *shape) truth."""
    estimate = np.moveaxis(field_xyz, -1, 0) / spacing
    return np.linalg.norm(estimate - u_true, axis=0)[interior(u_true.shape[1:])].mean()


def test_identity_stays_identity():
    image = phantom((64, 72), seed=1)
    result = itk_suits.register(image, image, **FAST)
    assert np.abs(result.displacement_field).max() < 0.05


@pytest.mark.parametrize("remap", [False, True], ids=["mono-modal", "multi-modal"])
def test_known_displacement_is_recovered_2d(remap):
    fixed, moving, u = known_pair((80, 88), 4.0, seed=2, remap=remap)
    result = itk_suits.register(fixed, moving, **FAST)
    before = np.linalg.norm(u, axis=0)[interior(fixed.shape)].mean()
    after = mean_error(result.displacement_field, u)
    assert after < 0.35 * before, (before, after)


@pytest.mark.parametrize("remap", [False, True], ids=["mono-modal", "multi-modal"])
def test_known_displacement_is_recovered_3d(remap):
    fixed, moving, u = known_pair((28, 32, 36), 2.5, seed=4, remap=remap)
    result = itk_suits.register(fixed, moving, grid_spacings=(12, 8, 6), iterations=(40, 40, 40))
    before = np.linalg.norm(u, axis=0)[interior(fixed.shape)].mean()
    after = mean_error(result.displacement_field, u)
    assert after < 0.5 * before, (before, after)


def _oblique_sitk(array, spacing, origin, angle_deg):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    a = math.radians(angle_deg)
    if array.ndim == 2:
        image.SetDirection((math.cos(a), -math.sin(a), math.sin(a), math.cos(a)))
    else:
        image.SetDirection((math.cos(a), -math.sin(a), 0, math.sin(a), math.cos(a), 0, 0, 0, 1))
    return image


def test_displacement_field_is_in_physical_units_with_oblique_anisotropic_geometry():
    fixed, moving, u = known_pair((80, 88), 4.0, seed=2)
    spacing, origin = (0.8, 1.7), (-31.0, 12.5)
    f = _oblique_sitk(fixed, spacing, origin, 30)
    m = _oblique_sitk(moving, spacing, origin, 30)
    result = itk_suits.register(f, m, **FAST)
    field = np.moveaxis(sitk.GetArrayFromImage(result.displacement_field), -1, 0)  # (2, *shape) mm
    matrix = np.array(f.GetDirection()).reshape(2, 2) @ np.diag(spacing)
    # the descent works in voxels: the physical field is Direction @ diag(spacing) @ the voxel field
    in_voxels = np.moveaxis(itk_suits.register(fixed, moving, **FAST).displacement_field, -1, 0)
    np.testing.assert_allclose(field, np.einsum("ij,j...->i...", matrix, in_voxels), atol=1e-3)
    truth = np.einsum("ij,j...->i...", matrix, u)
    error = np.linalg.norm(field - truth, axis=0)[interior(fixed.shape)].mean()
    before = np.linalg.norm(truth, axis=0)[interior(fixed.shape)].mean()
    assert error < 0.35 * before
    assert result.displacement_field.GetOrigin() == pytest.approx(origin)
    assert result.displacement_field.GetDirection() == pytest.approx(f.GetDirection())


@pytest.fixture(scope="module")
def oblique_pair_3d():
    fixed, moving, _ = known_pair((24, 30, 34), 2.0, seed=6)
    spacing, origin = (0.9, 1.3, 2.1), (10.0, -20.0, 5.0)
    return _oblique_sitk(fixed, spacing, origin, 25), _oblique_sitk(moving, (1.1, 1.0, 1.9), (11.0, -19.0, 4.0), 20)


def test_sitk_warped_equals_sitk_resampling_with_the_transform(oblique_pair_3d):
    fixed, moving = oblique_pair_3d
    result = itk_suits.register(fixed, moving, grid_spacings=(10, 6), iterations=(20, 20))
    assert isinstance(result.transform, sitk.Transform)
    expected = sitk.Resample(moving, fixed, result.transform, sitk.sitkLinear, 0.0)
    assert result.warped.GetSpacing() == pytest.approx(fixed.GetSpacing())
    assert result.warped.GetOrigin() == pytest.approx(fixed.GetOrigin())
    assert result.warped.GetDirection() == pytest.approx(fixed.GetDirection())
    np.testing.assert_allclose(sitk.GetArrayFromImage(result.warped), sitk.GetArrayFromImage(expected), atol=1e-5)


def test_itk_warped_equals_itk_resampling_with_the_transform(oblique_pair_3d, tmp_path):
    itk = pytest.importorskip("itk")
    from itk_suits.interop.images import to_kind

    fixed, moving = (to_kind(image, "itk") for image in oblique_pair_3d)
    result = itk_suits.register(fixed, moving, grid_spacings=(10, 6), iterations=(20, 20))
    expected = itk.resample_image_filter(moving, transform=result.transform, use_reference_image=True,
                                         reference_image=fixed)
    warped = result.warped
    np.testing.assert_allclose(itk.array_from_image(warped), itk.array_from_image(expected), atol=1e-4)
    np.testing.assert_allclose(np.array(warped.GetSpacing()), np.array(fixed.GetSpacing()))
    np.testing.assert_allclose(itk.array_from_matrix(warped.GetDirection()), itk.array_from_matrix(fixed.GetDirection()))
    # written to disk and read back, the transform warps identically
    path = str(tmp_path / "suits.h5")
    itk.transformwrite([result.transform], path)
    reread = itk.transformread(path)[0]
    again = itk.resample_image_filter(moving, transform=reread, use_reference_image=True, reference_image=fixed)
    np.testing.assert_allclose(itk.array_from_image(again), itk.array_from_image(expected), atol=1e-4)


def test_sitk_transform_written_and_read_back_warps_identically(oblique_pair_3d, tmp_path):
    fixed, moving = oblique_pair_3d
    result = itk_suits.register(fixed, moving, grid_spacings=(10, 6), iterations=(20, 20))
    path = str(tmp_path / "suits.tfm.h5")
    sitk.WriteTransform(result.transform, path)
    again = sitk.Resample(moving, fixed, sitk.ReadTransform(path), sitk.sitkLinear, 0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(result.warped), atol=1e-5)


def test_numpy_in_numpy_out_and_label_warping_keeps_integers():
    fixed, moving, _ = known_pair((64, 72), 3.0, seed=7)
    result = itk_suits.register(fixed, moving, spacing=(1.5, 1.5), **FAST)
    assert isinstance(result.warped, np.ndarray) and result.warped.shape == fixed.shape
    assert result.displacement_field.shape == (*fixed.shape, 2)
    labels = (moving > 0.5).astype(np.uint8) * 3
    warped_labels = result.warp(labels, interpolator="nearest", spacing=(1.5, 1.5))
    assert warped_labels.dtype == np.uint8 and set(np.unique(warped_labels)) <= {0, 3}


def test_moments_initialisation_recovers_a_large_shift():
    fixed = phantom((72, 80), seed=8)
    moving = np.zeros_like(fixed)
    moving[:, 15:] = fixed[:, :-15]  # 15 voxels along x: beyond what the descent can find alone
    f, m = sitk.GetImageFromArray(fixed), sitk.GetImageFromArray(moving)
    result = itk_suits.register(f, m, initial_transform="moments", **FAST)
    assert isinstance(result.transform, sitk.CompositeTransform)
    point = (40.0, 36.0)
    mapped = result.transform.TransformPoint(point)
    assert abs(mapped[0] - point[0] - 15) < 1.5 and abs(mapped[1] - point[1]) < 1.5


def test_given_initial_transform_is_composed_into_the_result():
    fixed = phantom((64, 72), seed=9)
    shift = sitk.TranslationTransform(2, (6.0, -4.0))
    moving = sitk.Resample(sitk.GetImageFromArray(fixed), shift.GetInverse())  # moving(x + t) = fixed(x)
    result = itk_suits.register(sitk.GetImageFromArray(fixed), moving, initial_transform=shift, **FAST)
    mapped = result.transform.TransformPoint((30.0, 30.0))
    assert mapped == pytest.approx((36.0, 26.0), abs=0.5)


def test_object_api_matches_function_and_calls_observers():
    fixed, moving, _ = known_pair((64, 72), 3.0, seed=11)
    method = itk_suits.SuitsRegistrationMethod.New(fixed, moving)
    method.SetGridSpacings(FAST["grid_spacings"])
    method.SetNumberOfIterations(FAST["iterations"])
    seen, scales, ended = [], [], []
    method.AddObserver(itk_suits.IterationEvent, seen.append)
    method.AddObserver(itk_suits.ScaleEvent, scales.append)
    method.AddObserver(itk_suits.EndEvent, ended.append)
    method.Update()
    assert len(scales) == 3 and len(ended) == 1 and len(seen) == sum(s["iterations"] for s in scales)
    function = itk_suits.register(fixed, moving, **FAST)
    np.testing.assert_allclose(method.GetOutput(), function.warped, atol=1e-5)


def test_fixed_mask_confines_the_descent():
    fixed = phantom((64, 72), seed=12)
    u = random_smooth_displacement(fixed.shape, 4.0, control_spacing=24, seed=13)
    u[..., :44] = 0.0  # only the right part of the image is deformed
    moving = deform(fixed, u)
    mask = np.zeros(fixed.shape, np.uint8)
    mask[:, :36] = 1  # ... and the mask sees only the undeformed left part
    masked = np.linalg.norm(itk_suits.register(fixed, moving, fixed_mask=mask, **FAST).displacement_field, axis=-1)
    unmasked = np.linalg.norm(itk_suits.register(fixed, moving, **FAST).displacement_field, axis=-1)
    assert unmasked[:, 50:].mean() > 1.0
    assert masked.max() < 0.2


# ---------------------------------------------------------------- bad input
def test_dimension_mismatch_is_a_clear_error():
    with pytest.raises(GeometryError, match="2D.*3D"):
        itk_suits.register(phantom((40, 40)), phantom((24, 24, 24)), **FAST)


def test_rgb_images_are_refused_with_a_conversion_hint():
    rgb = sitk.Compose([sitk.GetImageFromArray(phantom((40, 40)))] * 3)
    with pytest.raises(PixelTypeError, match="VectorIndexSelectionCast|luminance"):
        itk_suits.register(rgb, rgb, **FAST)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 40), np.float32), "empty"),
    (np.full((40, 40), 3.0, np.float32), "constant"),
    (np.where(np.eye(40) > 0, np.nan, 1.0).astype(np.float32), "NaN"),
    (np.where(np.eye(40) > 0, np.inf, 1.0).astype(np.float32), "inf"),
])
def test_unusable_images_are_refused(bad, match):
    with pytest.raises(InputImageError, match=match):
        itk_suits.register(bad, phantom((40, 40)), **FAST)


def test_images_smaller_than_the_coarsest_grid_are_refused():
    with pytest.raises(InputImageError, match="smaller than the coarsest"):
        itk_suits.register(phantom((16, 40)), phantom((16, 40)))


def test_mask_on_another_grid_is_refused():
    image = phantom((40, 40))
    with pytest.raises(GeometryError, match="fixed_mask"):
        itk_suits.register(image, image, fixed_mask=np.ones((40, 41), np.uint8), **FAST)


def test_unknown_feature_name_is_refused():
    with pytest.raises(ParameterError, match="mind"):
        itk_suits.register(phantom((40, 40)), phantom((40, 40)), features="sift", **FAST)


def test_cuda_without_a_gpu_is_a_clear_error_and_auto_falls_back():
    image = phantom((40, 40))
    result = itk_suits.register(image, image, device="auto", grid_spacings=(8,), iterations=(5,))
    assert result.device == ("cuda" if torch.cuda.is_available() else "cpu") or result.device.startswith("cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA"):
            itk_suits.register(image, image, device="cuda", **FAST)


def test_bspline_transform_maps_points_like_the_displacement_field(oblique_pair_3d):
    fixed, moving = oblique_pair_3d
    result = itk_suits.register(fixed, moving, grid_spacings=(10, 6), iterations=(20, 20),
                                initial_transform="geometry")
    bspline = result.bspline_transform()
    assert isinstance(bspline, sitk.CompositeTransform)
    grid = (fixed.GetSize(), fixed.GetOrigin(), fixed.GetSpacing(), fixed.GetDirection())
    np.testing.assert_allclose(  # every fixed voxel
        sitk.GetArrayFromImage(sitk.TransformToDisplacementField(bspline, sitk.sitkVectorFloat64, *grid)),
        sitk.GetArrayFromImage(sitk.TransformToDisplacementField(result.transform, sitk.sitkVectorFloat64, *grid)),
        rtol=0, atol=1e-4)
    resampled = sitk.Resample(moving, fixed, bspline, sitk.sitkLinear, 0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(result.warped), atol=1e-3)


def test_itk_bspline_transform_matches_the_itk_displacement_field_transform(oblique_pair_3d):
    pytest.importorskip("itk")
    from itk_suits.interop.images import to_kind

    fixed, moving = (to_kind(image, "itk") for image in oblique_pair_3d)
    result = itk_suits.register(fixed, moving, grid_spacings=(10, 6), iterations=(20, 20))
    bspline = result.bspline_transform()
    assert "BSpline" in type(bspline).__name__ or "BSpline" in bspline.GetNameOfClass()
    points = voxel_points(oblique_pair_3d[0])
    np.testing.assert_allclose(itk_mapped_points(bspline, points), itk_mapped_points(result.transform, points),
                               rtol=0, atol=1e-4)


def _three_pairs():
    """Three registrations of one fixed size that converge after different numbers of iterations:
    small, medium and large deformations, one multi-modal, one with a fixed mask, one with an
    initial translation (so a moving field of view)."""
    methods = []
    for seed, magnitude in ((1, 1.0), (2, 3.0), (3, 5.0)):
        fixed, moving, _ = known_pair((56, 64), magnitude, seed=seed, remap=seed == 2)
        method = itk_suits.SuitsRegistrationMethod.New(fixed, moving, grid_spacings=(12, 6), iterations=(60, 60))
        if seed == 2:
            method.SetFixedMask((fixed > 0.05).astype(np.uint8))
        if seed == 1:
            method.SetInitialTransform(sitk.TranslationTransform(2, (0.5, -0.5)))
        methods.append(method)
    return methods


def test_a_batch_of_pairs_gives_the_fields_of_separate_runs():
    from itk_suits.registration import update_together

    separate = _three_pairs()
    for method in separate:
        method.Update()
    together = update_together(_three_pairs())
    iterations = []
    for alone, batched in zip(separate, together):
        assert isinstance(batched, itk_suits.RegistrationResult), batched
        alone = alone.GetResult()
        assert [e["iterations"] for e in batched.log] == [e["iterations"] for e in alone.log]
        np.testing.assert_allclose(batched.index_displacement, alone.index_displacement, rtol=0, atol=1e-4)
        iterations.append(tuple(e["iterations"] for e in alone.log))
    # the pairs stop at different iterations, so converged pairs are frozen while the others go on
    assert len(set(iterations)) == 3, iterations
    assert any(n < 60 for counts in iterations for n in counts), iterations


def test_a_pair_that_fails_in_a_batch_does_not_stop_the_others():
    from itk_suits.registration import update_together

    methods = _three_pairs()[:2]
    constant = np.full((56, 64), 3.0, np.float32)
    methods.insert(1, itk_suits.SuitsRegistrationMethod.New(constant, constant, grid_spacings=(12, 6)))
    outcomes = update_together(methods)
    assert isinstance(outcomes[1], InputImageError) and "constant" in str(outcomes[1])
    assert all(isinstance(outcome, itk_suits.RegistrationResult) for outcome in outcomes[::2])
    assert methods[0].GetResult() is outcomes[0]
