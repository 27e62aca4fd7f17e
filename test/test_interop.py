"""The physical-space boundary: itk / SimpleITK / numpy / files in and out, geometry kept exactly."""

import os
import subprocess
import sys

import itk
import numpy as np
import pytest
import SimpleITK as sitk

import itk_suits
from itk_suits.errors import (
    GeometryError,
    InputImageError,
    ParameterError,
    PixelTypeError,
    TransformError,
)
from itk_suits.interop import (
    as_sitk_image,
    as_sitk_transform,
    check_intensity_image,
    check_same_grid,
    compose,
    displacement_field_from_index,
    displacement_field_transform,
    index_displacement_from_field,
    initial_transform,
    resample,
    same_grid,
    to_itk_transform,
    to_kind,
)


def _rotation(ndim, degrees):
    """Rotation by ``degrees`` about z (3D) or in the plane (2D)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    matrix = np.eye(ndim)
    matrix[:2, :2] = [[c, -s], [s, c]]
    return matrix


# (ndim, spacing, origin, direction): oblique and 90-degree permuted axes, anisotropic spacing.
GEOMETRIES = {
    "2d-oblique": (2, (0.7, 1.3), (-12.5, 40.25), _rotation(2, 30)),
    "2d-permuted": (2, (0.7, 1.3), (3.0, -7.0), np.array([[0.0, -1.0], [1.0, 0.0]])),
    "3d-oblique": (3, (0.7, 1.3, 2.5), (-12.5, 40.25, 7.0), _rotation(3, 30)),
    "3d-permuted": (3, (0.7, 1.3, 2.5), (3.0, -7.0, 11.0), np.roll(np.eye(3), 1, axis=0)),
}
SHAPES = {2: (9, 11), 3: (5, 9, 11)}

# SWIG-generated itk modules trigger this on import under recent Python versions.
pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning")


@pytest.fixture(params=sorted(GEOMETRIES))
def geometry(request):
    return GEOMETRIES[request.param]


def _sitk_image(ndim, spacing, origin, direction, dtype=np.float32, seed=0):
    array = np.random.default_rng(seed).uniform(0, 100, SHAPES[ndim]).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple(np.ravel(direction)))
    return image


def _itk_image(array, spacing, origin, direction):
    image = itk.image_from_array(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(itk.matrix_from_array(np.asarray(direction, dtype=np.float64)))
    return image


def _geometry(image):
    """(spacing, origin, direction matrix) of an itk or SimpleITK image."""
    if isinstance(image, sitk.Image):
        ndim = image.GetDimension()
        direction = np.reshape(image.GetDirection(), (ndim, ndim))
    else:
        direction = itk.array_from_matrix(image.GetDirection())
    return np.array(image.GetSpacing()), np.array(image.GetOrigin()), direction


def _assert_same_geometry(a, b):
    for value_a, value_b in zip(_geometry(a), _geometry(b)):
        np.testing.assert_allclose(value_a, value_b, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- images


def test_itk_sitk_numpy_itk_round_trip_keeps_values_and_geometry(geometry):
    ndim, spacing, origin, direction = geometry
    array = np.random.default_rng(1).normal(size=SHAPES[ndim]).astype(np.float32)
    original = _itk_image(array, spacing, origin, direction)

    image, kind = as_sitk_image(original, name="fixed")
    assert kind == "itk"
    _assert_same_geometry(original, image)
    np.testing.assert_array_equal(to_kind(image, "numpy"), array)

    back = to_kind(image, "itk")
    assert itk.template(back)[1] == (itk.F, ndim)
    _assert_same_geometry(original, back)
    np.testing.assert_array_equal(itk.array_from_image(back), array)
    index = [1] * ndim
    np.testing.assert_allclose(
        back.TransformIndexToPhysicalPoint(index), original.TransformIndexToPhysicalPoint(index), atol=1e-12
    )


def test_numpy_geometry_is_read_in_xyz_order(geometry):
    ndim, spacing, origin, direction = geometry
    array = np.arange(np.prod(SHAPES[ndim]), dtype=np.float32).reshape(SHAPES[ndim])
    image, kind = as_sitk_image(array, name="moving", spacing=spacing, origin=origin, direction=direction)
    assert kind == "numpy"
    assert image.GetSize() == tuple(reversed(array.shape))
    index = (2, 3, 1)[:ndim]  # (x, y[, z])
    expected = np.asarray(origin) + direction @ (np.asarray(spacing) * index)
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(index), expected, atol=1e-12)
    assert image[index] == array[tuple(reversed(index))]


def test_numpy_defaults_are_unit_spacing_zero_origin_identity_direction():
    image, _ = as_sitk_image(np.ones((4, 5, 6), np.int16), name="fixed")
    assert image.GetSpacing() == (1.0, 1.0, 1.0)
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    assert image.GetDirection() == tuple(np.eye(3).ravel())
    assert image.GetPixelID() == sitk.sitkInt16


def test_uint8_labels_keep_their_pixel_type_through_every_kind():
    labels = np.random.default_rng(2).integers(0, 5, size=(6, 7, 8)).astype(np.uint8)
    original = _itk_image(labels, (0.7, 1.3, 2.5), (1.0, 2.0, 3.0), _rotation(3, 30))
    image, _ = as_sitk_image(original, name="fixed_labels")
    assert image.GetPixelID() == sitk.sitkUInt8
    assert to_kind(image, "numpy").dtype == np.uint8
    back = to_kind(image, "itk")
    assert itk.template(back)[1] == (itk.UC, 3)
    np.testing.assert_array_equal(itk.array_from_image(back), labels)


def test_itk_region_start_index_moves_the_origin_so_voxels_keep_their_position():
    full = _itk_image(np.arange(80, dtype=np.float32).reshape(8, 10), (0.7, 1.3), (5.0, -3.0), _rotation(2, 30))
    region = itk.ImageRegion[2]()
    region.SetIndex([3, 2])
    region.SetSize([4, 5])
    extract = itk.ExtractImageFilter.New(full, ExtractionRegion=region)
    extract.SetDirectionCollapseToSubmatrix()
    extract.Update()
    crop = extract.GetOutput()  # keeps the full image's origin; its buffer starts at index (3, 2)
    assert list(crop.GetBufferedRegion().GetIndex()) == [3, 2]
    image, _ = as_sitk_image(crop, name="fixed")
    np.testing.assert_allclose(
        image.TransformIndexToPhysicalPoint((0, 0)), full.TransformIndexToPhysicalPoint([3, 2]), atol=1e-12
    )
    assert image[0, 0] == full.GetPixel([3, 2])


def test_to_kind_gives_each_library_its_own_type():
    image = _sitk_image(3, (0.7, 1.3, 2.5), (0.0, 1.0, 2.0), _rotation(3, 30))
    assert to_kind(image, "sitk") is image
    array = to_kind(image, "numpy")
    assert isinstance(array, np.ndarray) and array.shape == (5, 9, 11)
    as_itk = to_kind(image, "itk")
    assert isinstance(as_itk, itk.Image[itk.F, 3])
    with pytest.raises(ParameterError, match="'itk', 'sitk', 'numpy'"):
        to_kind(image, "vtk")


@pytest.mark.parametrize(
    "dtype, itk_pixel",
    [(np.int8, "SS"), (np.int16, "SS"), (np.uint16, "US"), (np.int32, "SI"), (np.int64, "D"), (np.float64, "D")],
)
def test_to_kind_itk_holds_every_value_in_a_wrapped_pixel_type(dtype, itk_pixel):
    values = np.array([[-100, 0, 7], [3, 100, -1]]).astype(dtype)
    out = to_kind(sitk.GetImageFromArray(values), "itk")
    assert itk.template(out)[1] == (getattr(itk, itk_pixel), 2)
    np.testing.assert_array_equal(itk.array_from_image(out), values)


def test_to_kind_vector_images_are_itk_vector_images_and_numpy_last_axis(geometry):
    ndim, spacing, origin, direction = geometry
    u = np.random.default_rng(3).normal(size=(ndim,) + SHAPES[ndim])
    field = displacement_field_from_index(u, _sitk_image(ndim, spacing, origin, direction))
    as_itk = to_kind(field, "itk")
    assert itk.template(as_itk)[1] == (itk.Vector[itk.D, ndim], ndim)
    _assert_same_geometry(as_itk, field)
    as_numpy = to_kind(field, "numpy")
    assert as_numpy.shape == SHAPES[ndim] + (ndim,)
    np.testing.assert_array_equal(itk.array_from_image(as_itk), as_numpy)


def test_paths_are_read_with_their_pixel_type_and_geometry(tmp_path):
    image = _sitk_image(3, (0.7, 1.3, 2.5), (1.0, 2.0, 3.0), _rotation(3, 30), dtype=np.int16)
    path = tmp_path / "image.nrrd"
    sitk.WriteImage(image, str(path))
    for given in (path, str(path)):
        read, kind = as_sitk_image(given, name="fixed")
        assert kind == "sitk"
        assert read.GetPixelID() == sitk.sitkInt16
        assert same_grid(read, image, tol=1e-9)


def test_missing_image_file_error_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.nii.gz"
    with pytest.raises(InputImageError, match="moving: no image file at .*nowhere.nii.gz"):
        as_sitk_image(missing, name="moving")


def test_unreadable_image_file_error_names_the_path(tmp_path):
    path = tmp_path / "notes.nii"
    path.write_text("not an image")
    with pytest.raises(InputImageError, match="cannot read .*notes.nii"):
        as_sitk_image(path, name="fixed")


def test_vector_and_rgb_images_are_refused_with_a_conversion_hint():
    vector = sitk.Image([5, 6], sitk.sitkVectorFloat32, 2)
    with pytest.raises(PixelTypeError, match="fixed has 2 components.*VectorIndexSelectionCast"):
        as_sitk_image(vector, name="fixed")
    rgb = itk.image_from_array(np.zeros((6, 5, 3), np.uint8), is_vector=True)
    assert "RGB" in type(rgb).__name__
    with pytest.raises(PixelTypeError, match="3 components.*luminance"):
        as_sitk_image(rgb, name="moving")


def test_non_scalar_images_pass_when_scalars_are_not_required():
    rgb = itk.image_from_array(np.arange(90, dtype=np.uint8).reshape(6, 5, 3), is_vector=True)
    image, kind = as_sitk_image(rgb, name="overlay", require_scalar=False)
    assert (kind, image.GetNumberOfComponentsPerPixel(), image.GetSize()) == ("itk", 3, (5, 6))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), np.arange(90).reshape(6, 5, 3))


def test_complex_images_are_refused_with_a_modulus_hint():
    with pytest.raises(PixelTypeError, match="complex.*ComplexToModulus"):
        as_sitk_image(np.ones((4, 5), np.complex64), name="fixed")


@pytest.mark.parametrize("pixel", ["B", "complex"])
def test_itk_pixel_types_without_numpy_equivalent_are_refused_with_a_cast_hint(pixel):
    pixel_type = itk.B if pixel == "B" else itk.complex[itk.F]
    image = itk.Image[pixel_type, 2].New()
    image.SetRegions([4, 4])
    image.Allocate()
    with pytest.raises(PixelTypeError, match="moving: the pixel type .* itk.cast_image_filter"):
        as_sitk_image(image, name="moving")


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (7,)])
def test_dimensions_other_than_2_or_3_are_refused(shape):
    with pytest.raises(InputImageError, match=f"fixed has {len(shape)} dimensions.*2D and 3D"):
        as_sitk_image(np.ones(shape, np.float32), name="fixed")
    if len(shape) == 4:
        with pytest.raises(InputImageError, match=r"image\[:, :, :, 0\]"):
            as_sitk_image(sitk.Image([3, 4, 5, 6], sitk.sitkFloat32), name="fixed")


def test_single_slice_3d_image_is_not_squeezed_but_refused_with_the_slice_to_extract():
    with pytest.raises(InputImageError, match=r"one voxel thick along z.*image\[:, :, 0\].*array\[0\]"):
        as_sitk_image(np.ones((1, 8, 9), np.float32), name="fixed")
    with pytest.raises(InputImageError, match=r"along x.*array\[:, :, 0\]"):
        as_sitk_image(sitk.Image([1, 8, 9], sitk.sitkFloat32), name="moving")


def test_empty_image_is_refused():
    with pytest.raises(InputImageError, match="moving is empty"):
        as_sitk_image(np.ones((0, 5), np.float32), name="moving")


def test_bad_inputs_and_geometry_arguments_are_refused_by_name():
    with pytest.raises(InputImageError, match="fixed must be an itk.Image"):
        as_sitk_image([[1.0, 2.0]], name="fixed")
    with pytest.raises(ParameterError, match="only used with numpy arrays"):
        as_sitk_image(sitk.Image([4, 4], sitk.sitkFloat32), name="fixed", spacing=(1.0, 1.0))
    with pytest.raises(GeometryError, match="spacing must be positive"):
        as_sitk_image(np.ones((4, 4)), name="fixed", spacing=(1.0, 0.0))
    with pytest.raises(GeometryError, match="origin needs 3 finite numbers"):
        as_sitk_image(np.ones((4, 4, 4)), name="fixed", origin=(1.0, 2.0))
    with pytest.raises(GeometryError, match="singular"):
        as_sitk_image(np.ones((4, 4)), name="fixed", direction=[[1, 0], [1, 0]])
    with pytest.raises(PixelTypeError, match="dtype <U1"):
        as_sitk_image(np.array([["a", "b"], ["c", "d"]]), name="fixed")


def test_nan_and_infinite_voxels_are_refused():
    array = np.random.default_rng(4).random((6, 7)).astype(np.float32)
    array[2, 3], array[4, 4] = np.nan, np.inf
    with pytest.raises(InputImageError, match="fixed has 2 NaN or infinite voxel"):
        check_intensity_image(sitk.GetImageFromArray(array), "fixed")


def test_constant_image_is_refused_as_lacking_contrast():
    with pytest.raises(InputImageError, match="moving is constant.*needs contrast"):
        check_intensity_image(sitk.GetImageFromArray(np.full((6, 7), 3.0)), "moving")
    check_intensity_image(sitk.GetImageFromArray(np.eye(6)), "moving")


def test_mask_on_another_grid_is_refused_with_each_difference_listed():
    fixed = _sitk_image(3, (0.7, 1.3, 2.5), (1.0, 2.0, 3.0), _rotation(3, 30))
    mask = sitk.Image(fixed.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(fixed)
    assert same_grid(fixed, mask)
    check_same_grid(fixed, mask, "fixed", "fixed_mask")

    mask.SetOrigin((1.5, 2.0, 3.0))
    mask.SetSpacing((0.7, 1.3, 2.0))
    assert not same_grid(fixed, mask)
    with pytest.raises(GeometryError) as error:
        check_same_grid(fixed, mask, "fixed", "fixed_mask")
    message = str(error.value)
    assert "fixed_mask does not lie on the voxel grid of fixed" in message
    assert "origin" in message and "up to 0.5 mm" in message
    assert "spacing" in message and "size" not in message and "direction" not in message
    assert "Resample" in message

    smaller = sitk.Image([4, 4, 4], sitk.sitkUInt8)
    with pytest.raises(GeometryError, match=r"size \(11, 9, 5\) vs \(4, 4, 4\).*direction"):
        check_same_grid(fixed, smaller, "fixed", "fixed_mask")


def test_grid_tolerance_is_relative_to_the_voxel_size():
    fixed = _sitk_image(2, (0.7, 1.3), (1.0, 2.0), np.eye(2))
    shifted = sitk.Image(fixed)
    shifted.SetOrigin((1.0 + 0.5e-4 * 0.7, 2.0))
    assert same_grid(fixed, shifted)
    shifted.SetOrigin((1.0 + 2e-4 * 0.7, 2.0))
    assert not same_grid(fixed, shifted)


def test_nearest_resampling_keeps_labels_integer_and_within_the_label_set():
    labels = sitk.GetImageFromArray(np.random.default_rng(5).integers(0, 4, size=(12, 13)).astype(np.uint8))
    shift = sitk.TranslationTransform(2, (0.4, -0.3))
    out = resample(labels, labels, shift, "nearest")
    assert out.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(out))) <= {0, 1, 2, 3}
    same = resample(labels, labels, None, "linear")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(same), sitk.GetArrayViewFromImage(labels))


def test_resample_rejects_unknown_interpolator_and_wrong_transform_dimension():
    image = sitk.Image([5, 5], sitk.sitkFloat32)
    with pytest.raises(ParameterError, match="'linear', 'nearest', 'bspline'"):
        resample(image, image, None, "cubic")
    with pytest.raises(TransformError, match="2D images with a 3D transform"):
        resample(image, image, sitk.Euler3DTransform())


def test_sitk_and_numpy_users_never_import_itk():
    code = (
        "import sys, numpy as np, SimpleITK as sitk\n"
        "from itk_suits.interop import as_sitk_image, to_kind, compose, displacement_field_from_index,"
        " displacement_field_transform\n"
        "image, kind = as_sitk_image(np.random.rand(6, 7), name='fixed')\n"
        "as_sitk_image(sitk.Image([4, 4], sitk.sitkFloat32), name='moving')\n"
        "field = displacement_field_from_index(np.zeros((2, 6, 7)), image)\n"
        "compose(sitk.Euler2DTransform(), displacement_field_transform(field, kind), kind)\n"
        "to_kind(image, kind)\n"
        "assert 'itk' not in sys.modules, 'itk was imported'\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_package_raises_no_bare_builtin_errors_on_purpose():
    """Every ``raise`` of a built-in error type in the package would escape ``except SuitsError``."""
    import ast
    import pathlib

    builtin = {"ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError", "Exception", "AssertionError"}
    offenders = []
    for path in pathlib.Path(itk_suits.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in builtin:
                offenders.append(f"{path.name}:{node.lineno} raises {node.exc.func.id}")
    assert not offenders, offenders


# ---------------------------------------------------------------- displacement fields


def _random_index_displacement(ndim, seed=6):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, size=(ndim,) + SHAPES[ndim])


def test_displacement_field_maps_fixed_voxels_to_index_plus_u(geometry):
    ndim, spacing, origin, direction = geometry
    reference = _sitk_image(ndim, spacing, origin, direction)
    u = _random_index_displacement(ndim)
    field = displacement_field_from_index(u, reference)
    assert field.GetPixelID() == sitk.sitkVectorFloat64
    assert same_grid(field, reference, tol=1e-12)

    sitk_transform = displacement_field_transform(field, "sitk")
    itk_transform = displacement_field_transform(field, "itk")
    assert isinstance(itk_transform, itk.DisplacementFieldTransform[itk.D, ndim])
    assert field.GetSize() == reference.GetSize(), "the caller's field must not be emptied"

    rng = np.random.default_rng(7)
    for _ in range(10):
        index = tuple(int(rng.integers(0, n)) for n in reference.GetSize())
        point = reference.TransformIndexToPhysicalPoint(index)
        shifted_index = np.add(index, u[(slice(None),) + tuple(reversed(index))])
        expected = reference.TransformContinuousIndexToPhysicalPoint(shifted_index.tolist())
        np.testing.assert_allclose(sitk_transform.TransformPoint(point), expected, atol=1e-9)
        np.testing.assert_allclose(list(itk_transform.TransformPoint(point)), expected, atol=1e-9)


def test_itk_and_sitk_field_transforms_agree_between_voxels():
    ndim, spacing, origin, direction = GEOMETRIES["3d-oblique"]
    reference = _sitk_image(ndim, spacing, origin, direction)
    field = displacement_field_from_index(_random_index_displacement(ndim), reference)
    sitk_transform = displacement_field_transform(field, "numpy")
    itk_transform = displacement_field_transform(field, "itk")
    assert isinstance(sitk_transform, sitk.DisplacementFieldTransform)
    for continuous_index in ([1.3, 2.7, 1.5], [5.5, 4.25, 2.9], [9.1, 0.6, 3.2]):
        point = reference.TransformContinuousIndexToPhysicalPoint(continuous_index)
        np.testing.assert_allclose(
            list(itk_transform.TransformPoint(point)), sitk_transform.TransformPoint(point), atol=1e-9
        )


def test_index_displacement_from_field_inverts_displacement_field_from_index(geometry):
    ndim, spacing, origin, direction = geometry
    reference = _sitk_image(ndim, spacing, origin, direction)
    u = _random_index_displacement(ndim)
    recovered = index_displacement_from_field(displacement_field_from_index(u, reference))
    assert recovered.shape == u.shape
    np.testing.assert_allclose(recovered, u, atol=1e-12)


def test_displacement_field_shape_and_components_are_checked():
    reference = sitk.Image([11, 9], sitk.sitkFloat32)
    with pytest.raises(GeometryError, match=r"needs \(2, 9, 11\)"):
        displacement_field_from_index(np.zeros((2, 11, 9)), reference)
    with pytest.raises(GeometryError, match="needs 2 components"):
        displacement_field_transform(sitk.Image([11, 9], sitk.sitkVectorFloat64, 3), "sitk")
    with pytest.raises(ParameterError, match="unknown output kind"):
        displacement_field_transform(sitk.Image([11, 9], sitk.sitkVectorFloat64, 2), "torch")


# ---------------------------------------------------------------- transforms


def _itk_affine_3d():
    affine = itk.AffineTransform[itk.D, 3].New()
    affine.SetMatrix(itk.matrix_from_array(np.array([[1.1, 0.2, 0.0], [-0.1, 0.9, 0.3], [0.05, 0.0, 1.2]])))
    affine.SetTranslation([4.0, -2.0, 7.5])
    affine.SetCenter([10.0, 20.0, -5.0])
    return affine


POINTS_3D = [(0.0, 0.0, 0.0), (12.5, -3.0, 40.0), (-7.0, 22.0, 1.5)]


def test_itk_affine_becomes_a_sitk_transform_mapping_points_identically():
    affine = _itk_affine_3d()
    converted = as_sitk_transform(affine, 3)
    assert isinstance(converted, sitk.AffineTransform)
    for point in POINTS_3D:
        np.testing.assert_allclose(converted.TransformPoint(point), list(affine.TransformPoint(point)), atol=1e-12)


def test_itk_euler_2d_and_itk_composite_convert_exactly():
    euler = itk.Euler2DTransform[itk.D].New()
    euler.SetAngle(0.4)
    euler.SetCenter([3.0, 4.0])
    euler.SetTranslation([1.0, -2.0])
    scale = itk.ScaleTransform[itk.D, 2].New()
    scale.SetScale([1.5, 0.5])
    composite = itk.CompositeTransform[itk.D, 2].New()
    composite.AddTransform(euler)
    composite.AddTransform(scale)
    base_class_handle = composite.GetNthTransform(0)  # an itk.Transform, as elastix's ConvertToItkTransform returns
    assert type(base_class_handle).__name__ == "itkTransformD22"
    for transform in (euler, composite, base_class_handle):
        converted = as_sitk_transform(transform, 2)
        for point in [(0.0, 0.0), (10.0, -5.0), (-3.5, 8.25)]:
            expected = list(transform.TransformPoint(point))
            np.testing.assert_allclose(converted.TransformPoint(point), expected, atol=1e-12)


def test_sitk_transform_passes_through_and_none_stays_none():
    euler = sitk.Euler2DTransform()
    assert as_sitk_transform(euler, 2) is euler
    assert as_sitk_transform(None, 3) is None


def test_transform_of_the_wrong_dimension_is_refused():
    with pytest.raises(TransformError, match="initial_transform is a 3D transform but the images are 2D"):
        as_sitk_transform(_itk_affine_3d(), 2)
    with pytest.raises(TransformError, match="is a 2D transform but the images are 3D"):
        as_sitk_transform(sitk.Euler2DTransform(), 3)


def test_transform_files_are_read_and_missing_or_unreadable_files_named(tmp_path):
    affine = sitk.AffineTransform(2)
    affine.SetMatrix((1.0, 0.3, -0.2, 0.9))
    affine.SetTranslation((2.0, 3.0))
    for suffix in (".tfm", ".h5"):
        path = tmp_path / f"initial{suffix}"
        sitk.WriteTransform(affine, str(path))
        read = as_sitk_transform(path, 2)
        np.testing.assert_allclose(read.TransformPoint((1.0, 2.0)), affine.TransformPoint((1.0, 2.0)), atol=1e-12)
    with pytest.raises(TransformError, match="no transform file at .*absent.tfm"):
        as_sitk_transform(tmp_path / "absent.tfm", 2)
    parameters = tmp_path / "TransformParameters.0.txt"
    parameters.write_text('(Transform "EulerTransform")\n(NumberOfParameters 3)\n')
    with pytest.raises(TransformError, match="TransformParameters.0.txt.*ConvertToItkTransform"):
        as_sitk_transform(parameters, 2)


def test_unsupported_transform_objects_are_refused():
    with pytest.raises(TransformError, match="must be a SimpleITK or itk transform"):
        as_sitk_transform(np.eye(3), 2)


def test_to_itk_transform_keeps_affine_and_composite_with_field_exact():
    ndim, spacing, origin, direction = GEOMETRIES["3d-oblique"]
    reference = _sitk_image(ndim, spacing, origin, direction)
    field = displacement_field_from_index(_random_index_displacement(3), reference)
    field = displacement_field_transform(field, "sitk")
    affine = as_sitk_transform(_itk_affine_3d(), 3)
    composite = sitk.CompositeTransform([affine, field])
    for transform in (affine, composite):
        converted = to_itk_transform(transform)
        for index in ([1.0, 2.0, 1.0], [4.5, 3.2, 2.7]):
            point = reference.TransformContinuousIndexToPhysicalPoint(index)
            expected = transform.TransformPoint(point)
            np.testing.assert_allclose(list(converted.TransformPoint(point)), expected, atol=1e-9)
    assert isinstance(to_itk_transform(composite), itk.CompositeTransform[itk.D, 3])


@pytest.mark.parametrize("kind", ["sitk", "numpy", "itk"])
def test_compose_applies_the_deformable_part_first(kind):
    rotation = sitk.Euler2DTransform((0.0, 0.0), np.pi / 2)
    shift = sitk.TranslationTransform(2, (5.0, 0.0))
    point = (1.0, 2.0)
    deformable_first = rotation.TransformPoint(shift.TransformPoint(point))
    initial_first = shift.TransformPoint(rotation.TransformPoint(point))
    assert not np.allclose(deformable_first, initial_first)

    composite = compose(rotation, shift, kind)
    expected_type = itk.CompositeTransform[itk.D, 2] if kind == "itk" else sitk.CompositeTransform
    assert isinstance(composite, expected_type)
    np.testing.assert_allclose(list(composite.TransformPoint(point)), deformable_first, atol=1e-12)
    np.testing.assert_allclose(list(compose(None, shift, kind).TransformPoint(point)), (6.0, 2.0), atol=1e-12)


@pytest.mark.parametrize("kind", ["sitk", "itk"])
def test_composing_with_a_composite_initial_transform_can_be_written_and_read_back(kind, tmp_path):
    reference = _sitk_image(3, (0.7, 1.3, 2.5), (1.0, -2.0, 3.0), _rotation(3, 30))
    field = displacement_field_from_index(_random_index_displacement(3), reference)
    initial = sitk.CompositeTransform([sitk.TranslationTransform(3, (2.0, -1.0, 0.5)),
                                       sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.1, -0.2, 0.3)])
    if kind == "itk":
        initial = to_itk_transform(initial)  # itk composite, as elastix's ConvertToItkTransform gives
    composite = compose(initial, displacement_field_transform(field, kind), kind)
    path = tmp_path / "composed.h5"
    if kind == "itk":
        itk.transformwrite([composite], str(path))
        again = itk.transformread(str(path))[0]
    else:
        sitk.WriteTransform(composite, str(path))
        again = sitk.ReadTransform(str(path))
    for index in ([0, 0, 0], [3.3, 4.1, 2.2], [7, 1, 5]):
        point = reference.TransformContinuousIndexToPhysicalPoint(index)
        np.testing.assert_allclose(list(again.TransformPoint(point)), list(composite.TransformPoint(point)),
                                   atol=1e-9)


def test_compose_accepts_itk_parts_and_checks_dimensions():
    reference = _sitk_image(3, (0.7, 1.3, 2.5), (0.0, 0.0, 0.0), _rotation(3, 30))
    field = displacement_field_from_index(_random_index_displacement(3), reference)
    affine = _itk_affine_3d()
    deformable = displacement_field_transform(field, "itk")
    point = reference.TransformContinuousIndexToPhysicalPoint([3.3, 4.1, 2.2])
    expected = list(affine.TransformPoint(deformable.TransformPoint(point)))
    np.testing.assert_allclose(list(compose(affine, deformable, "itk").TransformPoint(point)), expected, atol=1e-9)
    np.testing.assert_allclose(
        compose(affine, displacement_field_transform(field, "sitk"), "sitk").TransformPoint(point), expected, atol=1e-9
    )
    with pytest.raises(TransformError, match="initial is a 2D transform but the images are 3D"):
        compose(sitk.Euler2DTransform(), displacement_field_transform(field, "sitk"), "sitk")
    with pytest.raises(TransformError, match="initial is a 2D transform but the images are 3D"):
        compose(itk.Euler2DTransform[itk.D].New(), deformable, "itk")


# ---------------------------------------------------------------- initial alignment


def _blob(ndim, centre_index, spacing, origin, direction, background=0.0):
    shape = SHAPES[ndim]
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")  # (z,) y, x
    distance2 = sum((g - c) ** 2 for g, c in zip(grid, reversed(centre_index)))
    array = (background + 100.0 * np.exp(-distance2 / 2.0)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple(np.ravel(direction)))
    return image


def test_geometry_initialisation_maps_the_fixed_centre_to_the_moving_centre(geometry):
    ndim, spacing, origin, direction = geometry
    fixed = _sitk_image(ndim, spacing, origin, direction)
    moving = _sitk_image(ndim, tuple(s * 1.5 for s in spacing), tuple(o + 20.0 for o in origin), np.eye(ndim))

    def centre(image):
        return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])

    transform = initial_transform(fixed, moving, "geometry")
    assert isinstance(transform, sitk.Euler2DTransform if ndim == 2 else sitk.Euler3DTransform)
    np.testing.assert_allclose(transform.TransformPoint(centre(fixed)), centre(moving), atol=1e-9)
    np.testing.assert_allclose(transform.GetMatrix(), np.eye(ndim).ravel(), atol=1e-12)


def test_moments_initialisation_maps_centre_of_mass_even_on_negative_background(geometry):
    ndim, spacing, origin, direction = geometry
    fixed_centre, moving_centre = (3.0, 4.0, 2.0)[:ndim], (7.0, 5.0, 2.0)[:ndim]
    fixed = _blob(ndim, fixed_centre, spacing, origin, direction, background=-1000.0)
    moving = _blob(ndim, moving_centre, spacing, origin, direction)
    transform = initial_transform(fixed, moving, "moments")
    np.testing.assert_allclose(
        transform.TransformPoint(fixed.TransformContinuousIndexToPhysicalPoint(fixed_centre)),
        moving.TransformContinuousIndexToPhysicalPoint(moving_centre),
        atol=0.05,
    )


def test_initial_transform_names_paths_and_objects(tmp_path):
    fixed = sitk.Image([8, 8], sitk.sitkFloat32)
    assert initial_transform(fixed, fixed, None) is None
    assert initial_transform(fixed, fixed, "identity") is None
    euler = sitk.Euler2DTransform((1.0, 1.0), 0.3, (2.0, 0.0))
    path = tmp_path / "start.tfm"
    sitk.WriteTransform(euler, str(path))
    from_path = initial_transform(fixed, fixed, str(path))
    np.testing.assert_allclose(from_path.TransformPoint((3.0, 4.0)), euler.TransformPoint((3.0, 4.0)), atol=1e-12)
    assert initial_transform(fixed, fixed, euler) is euler
    with pytest.raises(ParameterError, match="unknown initial transform 'centre'.*'geometry', 'moments'"):
        initial_transform(fixed, fixed, "centre")
    with pytest.raises(TransformError, match="no transform file"):
        initial_transform(fixed, fixed, str(tmp_path / "missing.h5"))
    with pytest.raises(GeometryError, match="fixed is 2D but moving is 3D"):
        initial_transform(fixed, sitk.Image([8, 8, 8], sitk.sitkFloat32), "geometry")
