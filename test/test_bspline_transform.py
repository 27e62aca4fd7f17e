"""The control grid exported as an ITK B-spline transform maps every fixed voxel like the dense field."""

import itk
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from itk_suits.core import BSplineGrid
from itk_suits.interop import displacement_field_from_index, to_itk_transform
from itk_suits.interop.transforms import bspline_transform_from_index

from conftest import itk_mapped_points, voxel_points

# SWIG-generated itk modules trigger this on import under recent Python versions.
pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning")

TOLERANCE_MM = 1e-4


def _random_direction(ndim, seed, reflected=False):
    """A random orthonormal direction matrix (a rotation about an arbitrary axis),
    composed with a reflection (determinant -1) when ``reflected``."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) < 0) != reflected:
        q[:, 0] = -q[:, 0]
    return q


def _rotation_about_z(degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Control spacings a hair above (n - 1) / k voxels (n voxels along the axis) end the
# control grid's span on the last slice, row and column: the high faces of an
# unpadded transform domain.
_SPAN_ENDS_ON_LAST_VOXEL = tuple(float(np.nextafter((n - 1) / k, np.inf)) for n, k in ((11, 3), (13, 5), (17, 3)))

# name: (array shape, spacing in mm (x first), origin in mm, direction, control spacing in voxels (array order))
GEOMETRIES = {
    "3d-rotated": ((11, 13, 17), (0.7, 1.3, 2.9), (-12.5, 40.25, 7.0), _random_direction(3, 1), (4.0, 3.5, 5.25)),
    "3d-reflected": ((11, 13, 17), (0.7, 1.3, 2.9), (31.0, -8.5, -60.0), _random_direction(3, 2, True), (4.0, 3.5, 5.25)),
    "3d-30-degrees-about-z": ((11, 13, 17), (0.7, 1.3, 2.9), (-12.5, 40.25, 7.0), _rotation_about_z(30), (4.0, 3.0, 5.0)),
    "3d-span-ends-on-last-voxel": (
        (11, 13, 17), (0.7, 1.3, 2.9), (-12.5, 40.25, 7.0), _random_direction(3, 0), _SPAN_ENDS_ON_LAST_VOXEL
    ),
    "2d-rotated": ((13, 17), (0.7, 1.3), (-12.5, 40.25), _random_direction(2, 3), (3.5, 4.0)),
    "2d-reflected": ((13, 17), (0.7, 1.3), (31.0, -8.5), _random_direction(2, 4, True), (3.5, 4.0)),
}


@pytest.fixture(params=sorted(GEOMETRIES))
def exported(request):
    """(fixed image, displacement field, B-spline transform) of one random control grid.

    Every coefficient lies in [0.5, 1.5] voxels, so every voxel, the border ones
    included, moves by 0.5 to 1.5 voxels along each axis: a voxel the transform
    leaves unmoved is off by more than the tolerance.
    """
    shape, spacing, origin, direction, control_spacing = GEOMETRIES[request.param]
    ndim = len(shape)
    fixed = sitk.Image(list(reversed(shape)), sitk.sitkFloat32)
    fixed.SetSpacing(spacing)
    fixed.SetOrigin(origin)
    fixed.SetDirection(tuple(np.ravel(direction)))
    grid = BSplineGrid(shape, control_spacing, dtype=torch.float64)
    coefficients = np.random.default_rng(5).uniform(0.5, 1.5, size=(ndim,) + grid.shape)
    index_displacement = grid.dense(torch.from_numpy(coefficients)[None])[0].numpy()
    field = displacement_field_from_index(index_displacement, fixed)
    return fixed, field, bspline_transform_from_index(coefficients, grid.spacing, fixed)


def test_sitk_bspline_transform_moves_every_fixed_voxel_like_the_displacement_field(exported):
    fixed, field, bspline = exported
    bspline_field = sitk.TransformToDisplacementField(
        bspline, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(), fixed.GetSpacing(), fixed.GetDirection()
    )
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(bspline_field), sitk.GetArrayFromImage(field), rtol=0, atol=TOLERANCE_MM
    )


def test_itk_bspline_transform_moves_every_fixed_voxel_like_the_displacement_field(exported):
    fixed, field, bspline = exported
    ndim = fixed.GetDimension()
    transform = to_itk_transform(bspline)
    assert isinstance(transform, itk.BSplineTransform[itk.D, ndim, 3])
    points = voxel_points(fixed)
    expected = points + sitk.GetArrayFromImage(field).reshape(-1, ndim)
    np.testing.assert_allclose(itk_mapped_points(transform, points), expected, rtol=0, atol=TOLERANCE_MM)
