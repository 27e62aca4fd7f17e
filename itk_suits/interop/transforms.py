"""Transforms and displacement fields at the package boundary.

Inside itk-suits transforms are ``SimpleITK.Transform`` objects that map fixed
points to moving points (ITK's convention). This module reads what users give
as an initial alignment (itk or SimpleITK transforms, transform files, or the
names ``"geometry"`` / ``"moments"``), turns the optimiser's voxel displacements
into physical displacement fields, and builds the transforms returned to the
caller in the caller's library.

Generic itk <-> SimpleITK conversion goes through an HDF5 transform file in a
private temporary directory, which stores parameters as doubles and so is
exact; displacement fields are converted through arrays instead.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import GeometryError, ParameterError, TransformError
from itk_suits.interop.images import check_kind, error_summary, itk_class_name, to_kind

TRANSFORM_SUFFIXES = (".tfm", ".txt", ".h5", ".hdf", ".hdf5", ".mat")

_CENTRING = {
    "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
    "moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
}
INITIAL_METHODS = ("identity",) + tuple(_CENTRING)

# Zero control points added on each side of every axis of an exported B-spline
# grid, so that the image lies strictly inside ITK's transform domain.
BSPLINE_DOMAIN_PADDING = 1


def is_itk_transform(obj: Any) -> bool:
    """Whether ``obj`` is an itk transform, decided without importing ``itk``."""
    return "Transform" in (itk_class_name(obj) or "")


def as_sitk_transform(obj: Any, ndim: int, name: str = "initial_transform") -> Optional[sitk.Transform]:
    """Convert a user transform to SimpleITK.

    Parameters
    ----------
    obj : None, SimpleITK.Transform, itk transform, str or os.PathLike
        Any itk transform (``itk.AffineTransform``, ``itk.Euler2DTransform``,
        an ``itk.CompositeTransform`` such as an elastix result converted with
        ``ConvertToItkTransform``...) or a transform file (.tfm, .txt, .h5,
        .hdf5, .mat). Maps fixed points to moving points.
    ndim : int
        Dimension of the images the transform applies to.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    SimpleITK.Transform or None
        ``obj`` itself for a SimpleITK transform, an exact conversion otherwise;
        None for None.

    Raises
    ------
    TransformError
        Unsupported object, missing or unreadable file, a transform SimpleITK
        cannot represent, or a dimension other than ``ndim``.
    """
    if obj is None:
        return None
    if isinstance(obj, sitk.Transform):
        transform = obj
    elif isinstance(obj, (str, os.PathLike)):
        transform = _read_transform(os.fspath(obj), name)
    elif is_itk_transform(obj):
        transform = _sitk_transform_from_itk(obj, name)
    else:
        raise TransformError(
            f"{name} must be a SimpleITK or itk transform or the path of a transform file, "
            f"not {type(obj).__module__}.{type(obj).__name__}"
        )
    if transform.GetDimension() != ndim:
        raise TransformError(f"{name} is a {transform.GetDimension()}D transform but the images are {ndim}D")
    return transform


def to_itk_transform(transform: sitk.Transform) -> Any:
    """Convert a SimpleITK transform to the equivalent itk transform (double precision).

    Composite transforms are rebuilt component by component in the same order;
    displacement field transforms are rebuilt from their field without a file.

    Parameters
    ----------
    transform : SimpleITK.Transform

    Returns
    -------
    itk.Transform
        E.g. ``itk.AffineTransform[itk.D, ndim]``, ``itk.CompositeTransform[itk.D, ndim]``.

    Raises
    ------
    TransformError
        ITK cannot read back the transform.
    """
    import itk

    transform = transform.Downcast()
    if isinstance(transform, sitk.CompositeTransform):
        composite = itk.CompositeTransform[itk.D, transform.GetDimension()].New()
        for index in range(transform.GetNumberOfTransforms()):
            composite.AddTransform(to_itk_transform(transform.GetNthTransform(index)))
        return composite
    if isinstance(transform, sitk.DisplacementFieldTransform):
        return displacement_field_transform(transform.GetDisplacementField(), "itk")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "transform.h5")
        sitk.WriteTransform(transform, path)
        try:
            return itk.transformread(path)[0]
        except RuntimeError as error:
            raise TransformError(
                f"ITK cannot represent the SimpleITK {transform.GetName()}: {error_summary(error)}"
            ) from error


def displacement_field_from_index(u_index: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Physical displacement field from displacements in voxel index units.

    Parameters
    ----------
    u_index : numpy.ndarray
        Shape ``(ndim, [D,] H, W)``: components in (x, y[, z]) order, in voxels
        of ``reference``'s grid, sampled at its voxels. Fixed voxel ``i`` maps
        to the moving point at continuous index ``i + u_index[:, i]``.
    reference : SimpleITK.Image
        The fixed image, whose grid the field lives on.

    Returns
    -------
    SimpleITK.Image
        ``sitkVectorFloat64`` image on ``reference``'s grid holding
        ``Direction @ diag(spacing) @ u`` in mm, ITK's (x, y[, z]) order: the
        field of a ``DisplacementFieldTransform``.

    Raises
    ------
    GeometryError
        ``u_index`` does not have shape ``(ndim, *reference array shape)``.
    """
    ndim = reference.GetDimension()
    expected = (ndim,) + tuple(reversed(reference.GetSize()))
    u = np.asarray(u_index, dtype=np.float64)
    if u.shape != expected:
        raise GeometryError(
            f"index displacement has shape {u.shape}; the reference grid needs {expected} "
            f"(components, then the array shape of the reference image)"
        )
    millimetres = np.einsum("ij,j...->...i", _index_to_physical(reference), u)
    field = sitk.GetImageFromArray(np.ascontiguousarray(millimetres), isVector=True)
    field.CopyInformation(reference)
    return field


#: Voxels of the dense field evaluated at once by :func:`displacement_field_from_grid`.
_SLAB_VOXELS = 2**21


def displacement_field_from_grid(control_grid: np.ndarray, grid_spacing, reference: sitk.Image) -> sitk.Image:
    """The physical displacement field of a cubic B-spline control grid on ``reference``'s grid.

    The same field as :func:`displacement_field_from_index` of the grid's dense
    voxel displacement, evaluated slab by slab along the first array axis, so
    that no full-size intermediate array exists besides the output (a
    512x512x300 field is 1.8 GiB in float64).

    Parameters
    ----------
    control_grid : numpy.ndarray
        ``(ndim, *control grid shape)`` coefficients in voxels of ``reference``,
        components (x, y[, z]); control point ``k`` at voxel ``(k - 1) * s``.
    grid_spacing : sequence of float
        Control-point spacing ``s`` in voxels, array order.
    reference : SimpleITK.Image
        The fixed image.

    Returns
    -------
    SimpleITK.Image
        ``sitkVectorFloat64`` on ``reference``'s grid, mm, ITK's (x, y[, z]) order.
    """
    import torch

    from itk_suits.core.bspline import BSplineGrid, apply_along_axes

    ndim = reference.GetDimension()
    shape = tuple(reversed(reference.GetSize()))
    coefficients = torch.from_numpy(np.asarray(control_grid, dtype=np.float64))[None]
    grid = BSplineGrid(shape, grid_spacing, dtype=torch.float64)
    if coefficients.shape[1:] != (ndim,) + grid.shape:
        raise GeometryError(f"control grid of shape {tuple(control_grid.shape)} does not fit a {shape} reference "
                            f"with control spacing {tuple(grid_spacing)} (expected {(ndim,) + grid.shape})")
    to_physical = _index_to_physical(reference)
    millimetres = np.empty(shape + (ndim,), dtype=np.float64)
    slab = max(1, _SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))
    for start in range(0, shape[0], slab):
        rows = grid.matrices[0][start:start + slab]
        u = apply_along_axes(coefficients, [rows] + grid.matrices[1:])[0].numpy()
        millimetres[start:start + slab] = np.einsum("ij,j...->...i", to_physical, u)
    field = sitk.GetImageFromArray(millimetres, isVector=True)
    del millimetres
    field.CopyInformation(reference)
    return field


def bspline_transform_from_index(coefficients: np.ndarray, grid_spacing, reference: sitk.Image) -> sitk.BSplineTransform:
    """The exact cubic ``BSplineTransform`` of a control grid in voxel units.

    The package's control point ``k`` of an axis sits at voxel ``(k - 1) * s``
    of the reference grid (see :mod:`itk_suits.core.bspline`). ITK's cubic
    B-spline transform puts its control point ``j`` at ``(j - 1)`` grid
    spacings from the transform domain origin along the domain direction, uses
    the same cardinal cubic B-spline kernel, and gives zero displacement to
    points outside its domain (continuous control index outside ``[1, n - 2)``
    for ``n`` control points per axis).

    A domain spanning exactly the control grid would start on the first slice,
    row and column of voxels (and, for some non-integer ``s``, end on the
    last), where rounding on oblique grids puts some voxels outside. The grid is therefore padded with
    ``BSPLINE_DOMAIN_PADDING`` zero control points on both sides of every axis
    and the domain origin moved back by as many control spacings: every voxel
    of the reference grid then lies at least that many control spacings inside
    the domain on every side, for any direction matrix. The control points keep
    their positions and a zero coefficient adds nothing, so the transform is
    the package's spline everywhere in the image extent.

    Parameters
    ----------
    coefficients : numpy.ndarray
        Shape ``(ndim, *control grid shape)``: components (x, y[, z]) in voxels
        of ``reference``, control grid axes in array order ([z,] y, x).
    grid_spacing : sequence of float
        Control-point spacing ``s`` per axis in voxels of ``reference``, array order.
    reference : SimpleITK.Image
        The fixed image.

    Returns
    -------
    SimpleITK.BSplineTransform
        Order 3, with ``n + 2 * BSPLINE_DOMAIN_PADDING`` control points along an
        axis that has ``n`` in ``coefficients`` (mesh size three fewer). The
        domain has ``reference``'s direction, starts ``BSPLINE_DOMAIN_PADDING``
        control spacings before voxel 0 and measures ``mesh size * s * voxel
        spacing`` mm along each axis; coefficients are in mm along ITK's
        (x, y[, z]) axes.

    Raises
    ------
    GeometryError
        ``coefficients`` is not a ``(ndim, ...)`` grid of ``reference``'s dimension.
    """
    ndim = reference.GetDimension()
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if coefficients.ndim != ndim + 1 or coefficients.shape[0] != ndim:
        raise GeometryError(f"control grid of shape {coefficients.shape} does not fit a {ndim}D reference")
    pad = BSPLINE_DOMAIN_PADDING
    padded = np.pad(coefficients, [(0, 0)] + [(pad, pad)] * ndim)
    to_physical = _index_to_physical(reference)
    control_spacing_xyz = np.asarray(grid_spacing, dtype=np.float64)[::-1]  # voxels
    mesh = np.asarray(padded.shape[1:][::-1]) - 3
    origin = np.asarray(reference.GetOrigin()) - to_physical @ (pad * control_spacing_xyz)
    transform = sitk.BSplineTransform(ndim, 3)
    transform.SetTransformDomainOrigin(origin.tolist())
    transform.SetTransformDomainDirection(reference.GetDirection())
    transform.SetTransformDomainPhysicalDimensions(
        (mesh * control_spacing_xyz * np.asarray(reference.GetSpacing())).tolist())
    transform.SetTransformDomainMeshSize(mesh.tolist())
    # parameters: every x coefficient (x index fastest), then every y, then z
    physical = np.einsum("ij,j...->i...", to_physical, padded)
    transform.SetParameters(physical.ravel().tolist())
    return transform


def index_displacement_from_field(field: sitk.Image) -> np.ndarray:
    """Displacements in voxel index units from a physical displacement field.

    The inverse of :func:`displacement_field_from_index`.

    Parameters
    ----------
    field : SimpleITK.Image
        Vector image with ``ndim`` components in mm, (x, y[, z]) order.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(ndim, [D,] H, W)``, components (x, y[, z]) in voxels of ``field``'s grid.

    Raises
    ------
    GeometryError
        ``field`` does not have ``ndim`` components.
    """
    _check_field(field)
    millimetres = sitk.GetArrayViewFromImage(field).astype(np.float64)
    return np.ascontiguousarray(np.einsum("ij,...j->i...", np.linalg.inv(_index_to_physical(field)), millimetres))


def displacement_field_transform(field: sitk.Image, kind: str, consume: bool = False) -> Any:
    """Displacement field transform in the caller's library.

    Parameters
    ----------
    field : SimpleITK.Image
        Vector image with ``ndim`` components in mm (see
        :func:`displacement_field_from_index`). Not modified unless ``consume``.
    kind : {"sitk", "numpy", "itk"}
        Caller's library; numpy callers get a SimpleITK transform.
    consume : bool
        SimpleITK only: hand a ``sitkVectorFloat64`` ``field`` over to the
        transform without a copy (``field`` is left empty), for fields too large
        to hold twice.

    Returns
    -------
    SimpleITK.DisplacementFieldTransform or itk.DisplacementFieldTransform[itk.D, ndim]
        ``x -> x + field(x)`` with linear interpolation of the field.

    Raises
    ------
    GeometryError
        ``field`` does not have ``ndim`` components.
    ParameterError
        Unknown ``kind``.
    """
    check_kind(kind)
    _check_field(field)
    if consume and kind != "itk" and field.GetPixelID() == sitk.sitkVectorFloat64:
        return sitk.DisplacementFieldTransform(field)  # the constructor takes the image over
    # Cast always returns a new image: the SimpleITK constructor empties the image it is given.
    field64 = sitk.Cast(field, sitk.sitkVectorFloat64)
    if kind != "itk":
        return sitk.DisplacementFieldTransform(field64)
    import itk

    transform = itk.DisplacementFieldTransform[itk.D, field.GetDimension()].New()
    transform.SetDisplacementField(to_kind(field64, "itk"))
    return transform


def compose(initial: Any, deformable: Any, kind: str) -> Any:
    """Composite transform ``T(x) = initial(deformable(x))``: the deformable part acts first.

    Composite parts (e.g. an elastix result from ``ConvertToItkTransform``) are
    flattened into one queue, so the result can be written to a transform file
    (ITK writes a composite transform only as the first transform of a file).

    Parameters
    ----------
    initial : SimpleITK.Transform, itk transform or None
        The initial alignment (fixed -> moving); None for none.
    deformable : SimpleITK.Transform or itk transform
        The deformable part, e.g. from :func:`displacement_field_transform`.
    kind : {"sitk", "numpy", "itk"}
        Caller's library; numpy callers get a SimpleITK transform.

    Returns
    -------
    SimpleITK.CompositeTransform or itk.CompositeTransform[itk.D, ndim]

    Raises
    ------
    TransformError
        The two transforms differ in dimension, or one cannot be converted.
    ParameterError
        Unknown ``kind``.
    """
    check_kind(kind)
    ndim = _dimension(deformable)
    parts = [("initial", initial), ("deformable", deformable)]
    parts = [(name, part) for name, part in parts if part is not None]
    if kind != "itk":
        composite = sitk.CompositeTransform([as_sitk_transform(part, ndim, name) for name, part in parts])
        composite.FlattenTransform()
        return composite
    import itk

    composite = itk.CompositeTransform[itk.D, ndim].New()
    for name, part in parts:
        if not (is_itk_transform(part) and itk.template(part)[1][0] is itk.D):
            part = to_itk_transform(as_sitk_transform(part, ndim, name))
        elif _dimension(part) != ndim:
            raise TransformError(f"{name} is a {_dimension(part)}D transform but the images are {ndim}D")
        composite.AddTransform(part)
    composite.FlattenTransformQueue()
    return composite


#: SimpleITK transforms that are one matrix and one offset (composed by matrix product).
_LINEAR_TRANSFORMS = tuple(getattr(sitk, name) for name in (
    "AffineTransform", "Euler2DTransform", "Euler3DTransform", "Similarity2DTransform", "Similarity3DTransform",
    "TranslationTransform", "VersorTransform", "VersorRigid3DTransform", "ScaleTransform",
    "ScaleVersor3DTransform", "ScaleSkewVersor3DTransform", "ComposeScaleSkewVersor3DTransform",
) if hasattr(sitk, name))


def affine_from_voxel_matrix(matrix: np.ndarray, reference: sitk.Image) -> sitk.AffineTransform:
    """The physical ``AffineTransform`` of a linear map between voxels of one grid.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(ndim, ndim + 1)``: voxel ``x`` of ``reference`` (x, y[, z] order) maps
        to the continuous index ``matrix[:, :ndim] @ x + matrix[:, ndim]`` of the
        same grid (e.g. :func:`~itk_suits.core.linear.linear_registration` on the
        fixed grid, where the moving image was resampled with the initial transform).
    reference : SimpleITK.Image
        The grid: its origin, spacing and direction.

    Returns
    -------
    SimpleITK.AffineTransform
        The physical point of voxel ``x`` -> the physical point of index ``matrix @ [x, 1]``.

    Raises
    ------
    GeometryError
        ``matrix`` does not have shape ``(ndim, ndim + 1)``.
    """
    ndim = reference.GetDimension()
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (ndim, ndim + 1):
        raise GeometryError(f"a {ndim}D voxel matrix has shape {(ndim, ndim + 1)}, not {matrix.shape}")
    to_physical = _index_to_physical(reference)
    origin = np.asarray(reference.GetOrigin())
    linear = to_physical @ matrix[:, :ndim] @ np.linalg.inv(to_physical)
    translation = origin + to_physical @ matrix[:, ndim] - linear @ origin
    return sitk.AffineTransform(linear.ravel().tolist(), translation.tolist())


def compose_affine(initial: Optional[sitk.Transform], affine: sitk.AffineTransform) -> sitk.Transform:
    """One transform ``p -> initial(affine(p))``.

    Parameters
    ----------
    initial : SimpleITK.Transform or None
        The initial alignment (fixed -> moving).
    affine : SimpleITK.AffineTransform
        Acts first (e.g. from :func:`affine_from_voxel_matrix`).

    Returns
    -------
    SimpleITK.Transform
        An ``AffineTransform`` (the matrix product) when ``initial`` is None or
        one matrix and offset (affine, Euler, similarity, translation, versor...),
        a ``CompositeTransform`` otherwise.
    """
    if initial is None:
        return sitk.AffineTransform(affine)
    initial = initial.Downcast()
    if not isinstance(initial, _LINEAR_TRANSFORMS):
        return compose(initial, affine, "sitk")
    ndim = affine.GetDimension()
    offset = np.asarray(initial.TransformPoint((0.0,) * ndim))
    columns = [np.asarray(initial.TransformPoint(tuple(np.eye(ndim)[axis]))) - offset for axis in range(ndim)]
    first = np.reshape(affine.GetMatrix(), (ndim, ndim))
    matrix = np.stack(columns, axis=1)
    # affine(p) = first @ (p - centre) + centre + translation
    centre, shift = np.asarray(affine.GetCenter()), np.asarray(affine.GetTranslation())
    first_offset = centre + shift - first @ centre
    return sitk.AffineTransform((matrix @ first).ravel().tolist(), (matrix @ first_offset + offset).tolist())


def initial_transform(
    fixed: sitk.Image, moving: sitk.Image, method: Union[None, str, os.PathLike, Any]
) -> Optional[sitk.Transform]:
    """Initial alignment of the moving image to the fixed image.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        Scalar images of the same dimension.
    method : None, str, os.PathLike, SimpleITK.Transform or itk transform
        None or ``"identity"``: no initial transform. ``"geometry"``: a rigid
        (Euler) transform aligning the centres of the two images' extents.
        ``"moments"``: aligning the centres of mass of the intensities above
        each image's minimum (so that e.g. CT air at -1000 HU weighs nothing).
        The rotation is identity in both cases. Anything else is read with
        :func:`as_sitk_transform` (a transform or a transform file).

    Returns
    -------
    SimpleITK.Transform or None
        Maps fixed points to moving points.

    Raises
    ------
    ParameterError
        A string that is neither a method name nor a transform file path.
    GeometryError
        ``fixed`` and ``moving`` differ in dimension.
    TransformError
        From :func:`as_sitk_transform`.
    """
    ndim = fixed.GetDimension()
    if moving.GetDimension() != ndim:
        raise GeometryError(f"fixed is {ndim}D but moving is {moving.GetDimension()}D")
    if method is None or (isinstance(method, str) and method == "identity"):
        return None
    if isinstance(method, str) and method in _CENTRING:
        weights = _mass if method == "moments" else _as_float
        euler = sitk.Euler2DTransform() if ndim == 2 else sitk.Euler3DTransform()
        return sitk.CenteredTransformInitializer(
            weights(fixed), weights(moving), euler, _CENTRING[method]
        ).Downcast()
    if isinstance(method, str) and not _looks_like_path(method):
        raise ParameterError(
            f"unknown initial transform {method!r}; expected None, "
            f"{', '.join(map(repr, INITIAL_METHODS))}, an itk or SimpleITK transform, "
            f"or the path of a transform file ({', '.join(TRANSFORM_SUFFIXES)})"
        )
    return as_sitk_transform(method, ndim)


def _read_transform(path: str, name: str) -> sitk.Transform:
    if not os.path.isfile(path):
        raise TransformError(f"{name}: no transform file at '{path}'")
    try:
        return sitk.ReadTransform(path).Downcast()
    except RuntimeError as error:
        raise TransformError(
            f"{name}: '{path}' is not a transform file ITK can read ({error_summary(error)}). "
            f"ITK reads .tfm/.txt, .h5/.hdf5 and .mat transform files; for an elastix result pass "
            f"the itk transform from registration.ConvertToItkTransform("
            f"registration.GetCombinationTransform()) instead of its TransformParameters file"
        ) from error


def _sitk_transform_from_itk(transform: Any, name: str) -> sitk.Transform:
    import itk

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "transform.h5")
        try:
            itk.transformwrite([transform], path)
            return sitk.ReadTransform(path).Downcast()
        except (RuntimeError, TypeError) as error:
            raise TransformError(
                f"{name}: cannot convert the itk {type(transform).__name__} to SimpleITK "
                f"({error_summary(error)})"
            ) from error


def _dimension(transform: Any) -> int:
    if isinstance(transform, sitk.Transform):
        return transform.GetDimension()
    if is_itk_transform(transform):
        return transform.GetInputSpaceDimension()
    raise TransformError(f"expected a SimpleITK or itk transform, not {type(transform).__name__}")


def _check_field(field: sitk.Image) -> None:
    ndim = field.GetDimension()
    if field.GetNumberOfComponentsPerPixel() != ndim:
        raise GeometryError(
            f"a {ndim}D displacement field needs {ndim} components per voxel, "
            f"got {field.GetNumberOfComponentsPerPixel()} ({field.GetPixelIDTypeAsString()})"
        )


def _index_to_physical(image: sitk.Image) -> np.ndarray:
    """``Direction @ diag(spacing)``: maps index offsets (x, y[, z]) to mm."""
    ndim = image.GetDimension()
    return np.reshape(image.GetDirection(), (ndim, ndim)) @ np.diag(image.GetSpacing())


def _as_float(image: sitk.Image) -> sitk.Image:
    return sitk.Cast(image, sitk.sitkFloat32)


def _mass(image: sitk.Image) -> sitk.Image:
    """Non-negative mass for a centre of mass: intensities minus the image minimum."""
    image = _as_float(image)
    return image - float(sitk.GetArrayViewFromImage(image).min())


def _looks_like_path(text: str) -> bool:
    return os.path.splitext(text)[1].lower() in TRANSFORM_SUFFIXES or os.path.exists(text)
