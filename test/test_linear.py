"""The linear (rigid, affine) stage: recovery of known transforms, physical space, transform files, parameters."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F

import itk_suits
from itk_suits.core.linear import _Interpolation, linear_registration, rescale_voxel_matrix
from itk_suits.core.warp import channels_last_table
from itk_suits.errors import ParameterError
from itk_suits.interop import affine_from_voxel_matrix, compose_affine

from conftest import phantom, remap_nonmonotonic, voxel_points

# SWIG-generated itk modules trigger this on import under recent Python versions.
pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning")

#: Only the linear stage: the B-spline stage runs no iteration.
LINEAR_ONLY = dict(grid_spacings=(8,), iterations=0)
SHAPES = {2: (72, 80), 3: (26, 40, 44)}
SPACINGS = {2: (1.0, 1.4), 3: (1.0, 1.2, 2.0)}


def _rotation(ndim, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    matrix = np.eye(ndim)
    matrix[:2, :2] = [[c, -s], [s, c]]
    return matrix


def _image(array, spacing, origin=None, direction=None):
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.ravel(direction)))
    return image


def _centred_affine(image, matrix, translation):
    """``p -> matrix (p - c) + c + translation`` about the physical centre ``c`` of ``image``."""
    ndim = image.GetDimension()
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    transform = sitk.AffineTransform(ndim)
    transform.SetCenter(centre)
    transform.SetMatrix(np.ravel(matrix).tolist())
    transform.SetTranslation(list(translation))
    return transform


def _pair(ndim, matrix, translation, multimodal):
    """Fixed image, moving image and the true fixed -> moving transform."""
    fixed_array = phantom(SHAPES[ndim], seed=5, blobs=14, smooth=not multimodal)
    fixed = _image(fixed_array, SPACINGS[ndim])
    truth = _centred_affine(fixed, matrix, translation)
    source = _image(remap_nonmonotonic(fixed_array) if multimodal else fixed_array, SPACINGS[ndim])
    moving = sitk.Resample(source, fixed, truth.GetInverse(), sitk.sitkLinear, 0.0)  # moving(T p) = source(p)
    return fixed, moving, truth


def _point_error(fixed, transform, truth, margin=0.2):
    """Mean distance in fixed voxels between two transforms' images of the central fixed voxels."""
    ndim = fixed.GetDimension()
    points = voxel_points(fixed)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in reversed(fixed.GetSize())], indexing="ij"), -1)
    index = index.reshape(-1, ndim)[:, ::-1] / (np.array(fixed.GetSize()) - 1)
    central = np.all((index > margin) & (index < 1 - margin), axis=1)
    points = points[central]
    got = np.array([transform.TransformPoint(p) for p in points.tolist()])
    expected = np.array([truth.TransformPoint(p) for p in points.tolist()])
    return float(np.linalg.norm((got - expected) / np.array(fixed.GetSpacing()), axis=1).mean())


CASES = {
    "rigid": (lambda ndim: _rotation(ndim, 8.0), {2: (6.0, -3.0), 3: (6.0, -2.0, 3.0)}),
    "affine": (lambda ndim: np.diag([1.1] + [0.95] * (ndim - 1)) + 0.06 * np.eye(ndim, k=1),
               {2: (3.0, 4.0), 3: (3.0, -3.0, 2.0)}),
}


@pytest.mark.parametrize("ndim", [2, 3], ids=["2d", "3d"])
@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("features", ["intensity", "mind"], ids=["intensity", "mind-multimodal"])
def test_known_linear_transform_is_recovered(ndim, kind, features):
    matrix, translations = CASES[kind]
    fixed, moving, truth = _pair(ndim, matrix(ndim), translations[ndim], multimodal=features == "mind")
    before = _point_error(fixed, sitk.AffineTransform(ndim), truth)
    result = itk_suits.register(fixed, moving, features=features, linear=kind, **LINEAR_ONLY)
    assert isinstance(result.linear_transform, sitk.AffineTransform)
    after = _point_error(fixed, result.linear_transform, truth)
    assert before > 3 and after < 0.5, (before, after)
    assert [entry["stage"] for entry in result.linear_log][-1] == kind


@pytest.mark.parametrize("ndim", [2, 3], ids=["2d", "3d"])
@pytest.mark.parametrize("metric", ["mi", "features+mi"])
def test_mutual_information_drives_the_linear_stage_across_modalities(ndim, metric):
    matrix, translations = CASES["affine"]
    fixed, moving, truth = _pair(ndim, matrix(ndim), translations[ndim], multimodal=True)
    before = _point_error(fixed, sitk.AffineTransform(ndim), truth)
    result = itk_suits.register(fixed, moving, metric=metric, linear="affine", **LINEAR_ONLY)
    after = _point_error(fixed, result.linear_transform, truth)
    assert before > 3 and after < 0.5, (before, after)
    assert (result.linear_log[-1]["loss"] < 0) == (metric == "mi")  # minus the mutual information, or an SSD


def test_identity_stays_identity():
    image = _image(phantom(SHAPES[3], seed=2), SPACINGS[3])
    result = itk_suits.register(image, image, linear="affine", **LINEAR_ONLY)
    assert _point_error(image, result.linear_transform, sitk.AffineTransform(3), margin=0.0) < 0.1


def test_linear_stage_lowers_the_error_of_the_whole_registration():
    fixed, moving, truth = _pair(2, _rotation(2, 10.0) * 1.08, (7.0, -5.0), multimodal=False)
    schedule = dict(grid_spacings=(12, 8), iterations=(60, 60), features="intensity")
    without = itk_suits.register(fixed, moving, **schedule)
    with_linear = itk_suits.register(fixed, moving, linear="affine", **schedule)
    error_without = _point_error(fixed, without.transform, truth)
    error_with = _point_error(fixed, with_linear.transform, truth)
    assert error_with < 0.5 * error_without, (error_without, error_with)
    assert without.linear_transform is None and without.linear_log is None


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_transforms_round_trip_through_files(tmp_path, suffix):
    import itk

    fixed, moving, _ = _pair(2, _rotation(2, 5.0), (3.0, 2.0), multimodal=False)
    initial = sitk.Euler2DTransform((40.0, 50.0), 0.02, (1.0, -2.0))
    result = itk_suits.register(fixed, moving, linear="rigid", initial_transform=initial,
                                grid_spacings=(10,), iterations=10)
    points = voxel_points(fixed)[::37]
    for name, transform in (("linear", result.linear_transform), ("whole", result.transform)):
        path = str(tmp_path / f"{name}{suffix}")
        sitk.WriteTransform(transform, path)
        again = sitk.ReadTransform(path)
        np.testing.assert_allclose([again.TransformPoint(p) for p in points.tolist()],
                                   [transform.TransformPoint(p) for p in points.tolist()], atol=1e-6)
    itk_fixed = itk.image_from_array(sitk.GetArrayFromImage(fixed))
    itk_fixed.SetSpacing(fixed.GetSpacing())
    itk_moving = itk.image_from_array(sitk.GetArrayFromImage(moving))
    itk_moving.SetSpacing(moving.GetSpacing())
    itk_result = itk_suits.register(itk_fixed, itk_moving, linear="rigid", initial_transform=initial,
                                    grid_spacings=(10,), iterations=10)
    for name, transform in (("linear", itk_result.linear_transform), ("whole", itk_result.transform)):
        path = str(tmp_path / f"itk-{name}{suffix}")
        itk.transformwrite([transform], path)
        again = itk.transformread(path)[0]
        np.testing.assert_allclose([tuple(again.TransformPoint(p)) for p in points.tolist()],
                                   [tuple(transform.TransformPoint(p)) for p in points.tolist()], atol=1e-6)
    # the itk and SimpleITK results are the same mapping
    np.testing.assert_allclose([tuple(itk_result.linear_transform.TransformPoint(p)) for p in points.tolist()],
                               [result.linear_transform.TransformPoint(p) for p in points.tolist()], atol=1e-6)


@pytest.mark.parametrize("bad", ["bspline", "rigid+affine", 1, True])
def test_bad_linear_values_are_refused(bad):
    with pytest.raises(ParameterError, match="linear must be None, 'none', 'rigid' or 'affine'"):
        itk_suits.register(np.ones((32, 32)), np.ones((32, 32)), linear=bad)


def test_linear_none_is_accepted_and_set_by_the_method():
    method = itk_suits.SuitsRegistrationMethod.New()
    method.SetLinearStage("none")
    assert method.GetParameters().validated().linear is None
    method.SetLinearStage("Affine")
    assert method.GetParameters().validated().linear == "affine"


# ------------------------------------------------------------------ physical space of the voxel matrix

GEOMETRIES = {
    "2d": ((9, 11), (0.7, 1.3), (-12.5, 40.25), _rotation(2, 30) @ np.diag([1.0, -1.0])),
    "3d": ((5, 9, 11), (0.7, 1.3, 2.5), (-12.5, 40.25, 7.0), _rotation(3, 30) @ np.diag([1.0, 1.0, -1.0])),
}


@pytest.mark.parametrize("initial", ["none", "euler", "field"])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_voxel_matrix_becomes_the_physical_transform(name, initial):
    shape, spacing, origin, direction = GEOMETRIES[name]
    ndim = len(shape)
    fixed = _image(np.zeros(shape), spacing, origin, direction)
    rng = np.random.default_rng(3)
    matrix = np.concatenate([np.eye(ndim) + 0.1 * rng.normal(size=(ndim, ndim)), rng.normal(size=(ndim, 1))], 1)
    if initial == "none":
        first = None
    elif initial == "euler":
        first = sitk.Euler2DTransform((1.0, 2.0), 0.3, (4.0, -1.0)) if ndim == 2 else \
            sitk.Euler3DTransform((1.0, 2.0, 0.0), 0.1, -0.2, 0.3, (4.0, -1.0, 2.0))
    else:
        field = _image(np.zeros(shape), spacing, origin, direction)
        field = sitk.Compose([sitk.Cast(field + float(k + 1), sitk.sitkFloat64) for k in range(ndim)])
        field.CopyInformation(fixed)
        first = sitk.DisplacementFieldTransform(field)
    composed = compose_affine(first, affine_from_voxel_matrix(matrix, fixed))
    expected_type = sitk.CompositeTransform if initial == "field" else sitk.AffineTransform
    assert isinstance(composed, expected_type)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, ndim)[:, ::-1]
    for x in index.astype(float):
        mapped_index = matrix[:, :ndim] @ x + matrix[:, ndim]
        on_fixed = fixed.TransformContinuousIndexToPhysicalPoint(mapped_index.tolist())
        expected = on_fixed if first is None else first.TransformPoint(on_fixed)
        got = composed.TransformPoint(fixed.TransformContinuousIndexToPhysicalPoint(x.tolist()))
        np.testing.assert_allclose(got, expected, atol=1e-9)


def test_resampling_with_the_transform_equals_the_voxel_matrix_warp():
    shape, spacing, origin, direction = GEOMETRIES["3d"]
    fixed = _image(np.random.default_rng(0).uniform(size=shape), spacing, origin, direction)
    matrix = np.concatenate([_rotation(3, 4.0), np.array([[0.3], [-0.2], [0.1]])], axis=1)
    affine = affine_from_voxel_matrix(matrix, fixed)
    resampled = sitk.GetArrayFromImage(sitk.Resample(fixed, fixed, affine, sitk.sitkLinear, -1.0))
    # the voxel-matrix warp of the same image with grid_sample (align_corners, zeros outside -> -1 here)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)[..., ::-1].astype(float)
    mapped = index @ matrix[:, :3].T + matrix[:, 3]
    grid = torch.from_numpy(2 * mapped / (np.array(shape[::-1]) - 1) - 1)[None]
    image = torch.from_numpy(sitk.GetArrayFromImage(fixed).astype(np.float64))[None, None]
    warped = F.grid_sample(image, grid, align_corners=True, padding_mode="zeros")[0, 0].numpy()
    inside = np.all((mapped >= 0) & (mapped <= np.array(shape[::-1]) - 1), axis=-1)
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(resampled[inside], warped[inside], atol=1e-5)


# ------------------------------------------------------------------ the tensor engine


def test_interpolation_gradient_equals_grid_sample_autograd():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 6, 7, 8, dtype=torch.float64)
    points = (torch.rand(1, 50, 3, dtype=torch.float64) * torch.tensor([7.0, 6.0, 5.0])).requires_grad_(True)
    values = _Interpolation.apply(channels_last_table(image), (6, 7, 8), points)
    weights = torch.rand_like(values)
    (values * weights).sum().backward()
    ours = points.grad.clone()
    points.grad = None
    grid = (points / torch.tensor([7.0, 6.0, 5.0]) * 2 - 1).reshape(1, 50, 1, 1, 3)
    reference = F.grid_sample(image, grid, align_corners=True, padding_mode="border").reshape(1, 3, 50)
    (reference.transpose(1, 2) * weights).sum().backward()
    torch.testing.assert_close(values, reference.transpose(1, 2))
    torch.testing.assert_close(ours, points.grad)


def test_matrix_on_the_full_grid_maps_like_on_the_working_grid():
    fixed = torch.from_numpy(phantom((40, 44), seed=3))[None, None]
    moving = torch.roll(fixed, shifts=(2, 3), dims=(2, 3))
    result = linear_registration(fixed, moving, (1.0, 1.0), levels=(2, 1), iterations=60)
    full = rescale_voxel_matrix(result.matrix, (40, 44), (79, 87))
    np.testing.assert_allclose(full[0, :, 2].numpy(), [6.0, 4.0], atol=0.4)
    np.testing.assert_allclose(full[0, :, :2].numpy(), np.eye(2), atol=0.02)


def test_the_similarity_can_be_replaced():
    calls = []

    def absolute_difference(fixed, moving, weights):
        calls.append(fixed.shape)
        return ((fixed - moving).abs().mean(-1) * weights).sum(1) / weights.sum(1)

    fixed = torch.from_numpy(phantom((40, 44), seed=3))[None, None]
    moving = torch.roll(fixed, shifts=(2, -3), dims=(2, 3))
    result = linear_registration(fixed, moving, (1.0, 1.0), levels=(2, 1), iterations=60,
                                 similarity=absolute_difference)
    assert calls
    np.testing.assert_allclose(result.matrix[0, :, 2].numpy(), [-3.0, 2.0], atol=0.3)
