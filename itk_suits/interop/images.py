"""Images at the package boundary: itk, SimpleITK, numpy and files in, the caller's library out.

Inside itk-suits every physical image is a ``SimpleITK.Image``. This module turns
what a user passes (``itk.Image``, ``SimpleITK.Image``, ``numpy.ndarray`` plus
geometry, or an image file path) into one, with origin, spacing and direction
kept exactly, checks that it can be registered, and converts results back to
the caller's library with :func:`to_kind`.

Geometry follows ITK: spacing, origin and direction are given in (x, y[, z])
order, while numpy arrays are indexed (z,) y, x. ``itk`` is imported only when
an itk object is met, so SimpleITK and numpy users never pay its import time.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import (
    GeometryError,
    InputImageError,
    ParameterError,
    PixelTypeError,
    TransformError,
)

KINDS = ("itk", "sitk", "numpy")

INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}

_AXES = "xyz"

_LABEL_MAP_IDS = frozenset(
    (sitk.sitkLabelUInt8, sitk.sitkLabelUInt16, sitk.sitkLabelUInt32, sitk.sitkLabelUInt64)
)
_COMPLEX_IDS = frozenset((sitk.sitkComplexFloat32, sitk.sitkComplexFloat64))

# numpy dtype of a scalar SimpleITK image -> name of the itk pixel type that holds
# every value exactly (itk's wheels wrap no signed char and no signed 64-bit type;
# int64 goes to double, exact up to 2**53).
_ITK_SCALAR_TYPES = {
    "uint8": "UC",
    "int8": "SS",
    "uint16": "US",
    "int16": "SS",
    "uint32": "UI",
    "int32": "SI",
    "uint64": "ULL",
    "int64": "D",
    "float32": "F",
    "float64": "D",
}


def itk_class_name(obj: Any) -> Optional[str]:
    """Name of the itk class of ``obj``, or None when ``obj`` is not an itk object.

    Decided from the object's type alone, without importing ``itk``.

    Parameters
    ----------
    obj : object
        Any object.

    Returns
    -------
    str or None
        For example ``"itkImageF3"`` or ``"itkAffineTransformD2"``.
    """
    cls = type(obj)
    if cls.__module__.split(".")[0] == "itk" and cls.__name__.startswith("itk"):
        return cls.__name__
    return None


def error_summary(error: Exception) -> str:
    """The informative part of a SimpleITK/ITK exception message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def check_kind(kind: str) -> None:
    """Raise ParameterError unless ``kind`` is one of ``"itk"``, ``"sitk"``, ``"numpy"``."""
    if kind not in KINDS:
        raise ParameterError(f"unknown output kind {kind!r}; expected one of {', '.join(map(repr, KINDS))}")


def as_sitk_image(
    obj: Any,
    *,
    name: str,
    spacing: Union[float, Sequence[float], None] = None,
    origin: Optional[Sequence[float]] = None,
    direction: Union[Sequence[float], np.ndarray, None] = None,
    require_scalar: bool = True,
) -> Tuple[sitk.Image, str]:
    """Convert a user image to a SimpleITK image, keeping its physical space.

    Parameters
    ----------
    obj : itk.Image, SimpleITK.Image, numpy.ndarray, str or os.PathLike
        The image. A numpy array is indexed ``[z,] y, x`` and always read as a
        scalar image with one array axis per image axis. A path is read with
        ``SimpleITK.ReadImage``.
    name : str
        Name of the argument, used in error messages (e.g. ``"fixed"``).
    spacing : float or sequence of float, optional
        Voxel size in mm, (x, y[, z]) order; numpy arrays only. A single number
        means isotropic. Default 1.
    origin : sequence of float, optional
        Physical position of the first voxel's centre, (x, y[, z]); numpy
        arrays only. Default 0.
    direction : sequence of float or array, optional
        Direction cosines, ``ndim * ndim`` values in row-major order or an
        ``(ndim, ndim)`` matrix whose columns are the image axes; numpy arrays
        only. Default identity.
    require_scalar : bool
        If True (default), vector, RGB and complex pixels are refused.

    Returns
    -------
    image : SimpleITK.Image
        2D or 3D image with the input's pixel type (numpy ``float16`` becomes
        ``float32``, ``bool`` becomes ``uint8`` and long double ``float64``, as
        SimpleITK has none of them; big-endian arrays are converted to the
        machine's byte order).
        A SimpleITK input is returned as is, not copied: do not modify it in place.
    kind : str
        The caller's library: ``"itk"``, ``"sitk"`` (also for paths) or ``"numpy"``.

    Raises
    ------
    InputImageError
        Unsupported object, missing or unreadable file, dimension other than 2
        or 3, an empty image, or a 3D image one voxel thick.
    PixelTypeError
        Non-scalar pixels while ``require_scalar``, label maps, non-numeric arrays.
    GeometryError
        Invalid spacing, origin or direction for a numpy array.
    ParameterError
        Geometry given for an object that carries its own.

    Examples
    --------
    >>> import numpy as np
    >>> image, kind = as_sitk_image(np.zeros((4, 5, 6), np.float32) + np.arange(6),
    ...                             name="fixed", spacing=(0.7, 1.3, 2.5))
    >>> image.GetSize(), image.GetSpacing(), kind
    ((6, 5, 4), (0.7, 1.3, 2.5), 'numpy')
    """
    if isinstance(obj, np.ndarray):
        image, kind = _image_from_array(obj, name, spacing, origin, direction), "numpy"
    else:
        if spacing is not None or origin is not None or direction is not None:
            raise ParameterError(
                f"{name}: spacing, origin and direction are only used with numpy arrays; "
                f"a {type(obj).__name__} carries its own geometry (set it on the image instead)"
            )
        if isinstance(obj, sitk.Image):
            image, kind = obj, "sitk"
        elif isinstance(obj, (str, os.PathLike)):
            image, kind = _read_image(obj, name), "sitk"
        elif (itk_class_name(obj) or "").startswith(("itkImage", "itkVectorImage")):
            image, kind = _image_from_itk(obj, name), "itk"
        else:
            raise InputImageError(
                f"{name} must be an itk.Image, a SimpleITK.Image, a numpy array or the path "
                f"of an image file, not {type(obj).__module__}.{type(obj).__name__}"
            )
    _check_pixel_type(image, name, require_scalar)
    _check_shape(image, name)
    return image, kind


def check_intensity_image(image: sitk.Image, name: str) -> None:
    """Check that an intensity image can drive a registration.

    Parameters
    ----------
    image : SimpleITK.Image
        Scalar image.
    name : str
        Name of the argument, used in error messages.

    Raises
    ------
    InputImageError
        Some voxels are NaN or infinite, or the image is constant.
    """
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InputImageError(
            f"{name} has {bad} NaN or infinite voxel(s) out of {array.size}; replace them "
            f"before registration, e.g. numpy.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0) "
            f"with the background value"
        )
    low, high = array.min(), array.max()
    if low == high:
        raise InputImageError(
            f"{name} is constant (every voxel is {low}); registration needs contrast: "
            f"check that the intended image, slice or window was loaded"
        )


#: File endings of formats that hold float images with many components per voxel.
VECTOR_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def check_vector_image_path(path: Union[str, os.PathLike], name: str) -> None:
    """Refuse a file name whose format cannot hold a float multi-channel image (PNG, JPEG...).

    Raises
    ------
    ParameterError
        Naming the file and the formats that work.
    """
    text = os.fspath(path).lower()
    if not text.endswith(VECTOR_IMAGE_SUFFIXES):
        raise ParameterError(
            f"{name} {os.fspath(path)!r}: a feature image has many float channels per voxel, which this "
            f"format cannot hold; write one of {', '.join(VECTOR_IMAGE_SUFFIXES)} (e.g. feats.nii.gz)"
        )


def geometry_record(image: sitk.Image) -> dict:
    """Size, spacing (mm), origin (mm) and row-major direction of ``image`` as JSON-ready lists, (x, y[, z])."""
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
    }


def to_kind(image: sitk.Image, kind: str) -> Any:
    """Convert a SimpleITK image to the caller's library.

    Parameters
    ----------
    image : SimpleITK.Image
        Scalar or vector image.
    kind : {"sitk", "itk", "numpy"}
        Target library.

    Returns
    -------
    SimpleITK.Image, itk.Image or numpy.ndarray
        ``"sitk"``: ``image`` itself. ``"itk"``: an ``itk.Image`` with the same
        geometry and the same pixel type where ITK's Python wheels wrap it
        (``int8`` becomes ``short``, ``int64`` becomes ``double``); vector
        images become ``itk.Image[itk.Vector[itk.D or itk.F, n], ndim]``
        (``itk.D`` for float64 components, ``itk.F`` otherwise), as ITK's
        displacement fields expect. ``"numpy"``: a copy of the voxels, shape
        ``([D,] H, W)``, or ``([D,] H, W, n)`` for ``n``-component images.

    Raises
    ------
    ParameterError
        Unknown ``kind``.
    PixelTypeError
        A pixel type ITK's Python wheels cannot hold (complex, vectors with
        other than 2 to 4 components).
    """
    check_kind(kind)
    if kind == "sitk":
        return image
    if kind == "numpy":
        return sitk.GetArrayFromImage(image)
    return _itk_image_from_sitk(image)


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    """Whether two images share one voxel grid.

    Parameters
    ----------
    a, b : SimpleITK.Image
        Images to compare.
    tol : float
        Origins may differ by ``tol`` times ``a``'s smallest spacing, spacings by
        ``tol`` times ``a``'s spacing, direction cosines by ``tol``.

    Returns
    -------
    bool
        True when dimension, size, origin, spacing and direction agree.
    """
    return not _grid_differences(a, b, tol)


def check_same_grid(a: sitk.Image, b: sitk.Image, name_a: str, name_b: str, tol: float = 1e-4) -> None:
    """Raise GeometryError unless ``b`` lies on ``a``'s voxel grid (see :func:`same_grid`).

    Raises
    ------
    GeometryError
        Lists which of dimension, size, origin, spacing and direction differ and by how much.
    """
    differences = _grid_differences(a, b, tol)
    if differences:
        raise GeometryError(
            f"{name_b} does not lie on the voxel grid of {name_a}: {'; '.join(differences)}. "
            f"Resample it onto {name_a}'s grid first, e.g. SimpleITK.Resample({name_b}, {name_a}, "
            f"SimpleITK.Transform(), SimpleITK.sitkNearestNeighbor) for a mask or label map"
        )


def resample(
    image: sitk.Image,
    reference: sitk.Image,
    transform: Optional[sitk.Transform] = None,
    interpolator: str = "linear",
    default_value: float = 0.0,
    extrapolate: bool = False,
) -> sitk.Image:
    """Resample an image onto a reference grid through a transform.

    Parameters
    ----------
    image : SimpleITK.Image
        Image to resample (moving space).
    reference : SimpleITK.Image
        Grid of the output (fixed space).
    transform : SimpleITK.Transform, optional
        Maps reference (fixed) points to ``image`` (moving) points. Identity if None.
    interpolator : {"linear", "nearest", "bspline"}
        Interpolation; use ``"nearest"`` for label maps.
    default_value : float
        Value of output voxels that map outside ``image``.
    extrapolate : bool
        Fill voxels outside ``image`` with its nearest edge value instead of
        ``default_value`` (no artificial edge for feature extraction).

    Returns
    -------
    SimpleITK.Image
        On ``reference``'s grid, with ``image``'s pixel type.

    Raises
    ------
    ParameterError
        Unknown interpolator.
    GeometryError
        ``image`` and ``reference`` differ in dimension.
    TransformError
        ``transform`` has another dimension.
    """
    if interpolator not in INTERPOLATORS:
        raise ParameterError(
            f"unknown interpolator {interpolator!r}; expected one of {', '.join(map(repr, INTERPOLATORS))}"
        )
    ndim = reference.GetDimension()
    if image.GetDimension() != ndim:
        raise GeometryError(f"cannot resample a {image.GetDimension()}D image onto a {ndim}D grid")
    if transform is None:
        transform = sitk.Transform(ndim, sitk.sitkIdentity)
    elif transform.GetDimension() != ndim:
        raise TransformError(f"cannot resample {ndim}D images with a {transform.GetDimension()}D transform")
    return sitk.Resample(
        image, reference, transform, INTERPOLATORS[interpolator], float(default_value), image.GetPixelID(),
        extrapolate,
    )


def _image_from_array(array: np.ndarray, name: str, spacing, origin, direction) -> sitk.Image:
    """SimpleITK image from a ``[z,] y, x`` array and (x, y[, z]) geometry."""
    _check_dimension(array.ndim, name)
    if array.dtype.kind not in "biufc":
        raise PixelTypeError(f"{name} is a numpy array of dtype {array.dtype}, not a numeric image")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype.itemsize > 8 and array.dtype.kind == "f":
        array = array.astype(np.float64)  # long double: SimpleITK's widest real type is float64
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))  # big-endian data from a file
    ndim = array.ndim
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(_spacing_values(spacing, ndim, name))
    image.SetOrigin(_vector_values(origin, ndim, name, "origin", default=0.0))
    image.SetDirection(_direction_values(direction, ndim, name))
    return image


def _spacing_values(spacing, ndim: int, name: str) -> Tuple[float, ...]:
    if spacing is not None and np.ndim(spacing) == 0:
        spacing = [spacing] * ndim
    values = _vector_values(spacing, ndim, name, "spacing", default=1.0)
    if min(values) <= 0:
        raise GeometryError(f"{name}: spacing must be positive, got {_fmt(values)}")
    return values


def _vector_values(values, ndim: int, name: str, what: str, default: float) -> Tuple[float, ...]:
    """``ndim`` finite floats in (x, y[, z]) order, ``default`` everywhere if None."""
    if values is None:
        return (default,) * ndim
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size != ndim or not np.isfinite(array).all():
        raise GeometryError(
            f"{name}: {what} needs {ndim} finite numbers in (x, y{', z' if ndim == 3 else ''}) "
            f"order for a {ndim}D array, got {values!r}"
        )
    return tuple(float(v) for v in array)


def _direction_values(direction, ndim: int, name: str) -> Tuple[float, ...]:
    if direction is None:
        return tuple(np.eye(ndim).ravel())
    matrix = np.asarray(direction, dtype=np.float64)
    if matrix.size != ndim * ndim or not np.isfinite(matrix).all():
        raise GeometryError(
            f"{name}: direction needs {ndim * ndim} finite numbers (a {ndim}x{ndim} matrix), got {direction!r}"
        )
    matrix = matrix.reshape(ndim, ndim)
    if abs(np.linalg.det(matrix)) < 1e-6:
        raise GeometryError(f"{name}: direction matrix {matrix.tolist()} is singular")
    return tuple(float(v) for v in matrix.ravel())


def _read_image(path: Union[str, os.PathLike], name: str) -> sitk.Image:
    filename = os.fspath(path)
    if os.path.isdir(filename):
        raise InputImageError(
            f"{name}: '{filename}' is a directory, not an image file; read a DICOM series with "
            f"SimpleITK.ImageSeriesReader and pass the image"
        )
    if not os.path.isfile(filename):
        raise InputImageError(f"{name}: no image file at '{filename}'")
    try:
        return sitk.ReadImage(filename)
    except RuntimeError as error:
        raise InputImageError(f"{name}: SimpleITK cannot read '{filename}': {error_summary(error)}") from error


def _image_from_itk(image: Any, name: str) -> sitk.Image:
    """Copy an itk image's voxels and geometry into a SimpleITK image (no file round trip)."""
    import itk

    ndim = image.GetImageDimension()
    _check_dimension(ndim, name)
    try:
        array = itk.array_view_from_image(image)
    except RuntimeError as error:
        raise PixelTypeError(
            f"{name}: the pixel type of {type(image).__name__} has no numpy equivalent; cast it first, "
            f"e.g. itk.cast_image_filter(image, ttype=(type(image), itk.Image[itk.F, {ndim}])), or take "
            f"the modulus of a complex image with itk.complex_to_modulus_image_filter(image)"
        ) from error
    converted = sitk.GetImageFromArray(array, isVector=image.GetNumberOfComponentsPerPixel() > 1)
    spacing = np.array(image.GetSpacing(), dtype=np.float64)
    direction = itk.array_from_matrix(image.GetDirection())
    # SimpleITK grids start at index 0: move the origin to the first buffered voxel.
    start = np.array(image.GetBufferedRegion().GetIndex(), dtype=np.float64)
    origin = np.array(image.GetOrigin(), dtype=np.float64) + direction @ (spacing * start)
    converted.SetSpacing(tuple(spacing))
    converted.SetOrigin(tuple(origin))
    converted.SetDirection(tuple(direction.ravel()))
    return converted


def _itk_image_from_sitk(image: sitk.Image) -> Any:
    import itk

    ndim = image.GetDimension()
    components = image.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayViewFromImage(image)
    if image.GetPixelID() in _COMPLEX_IDS:
        raise PixelTypeError(f"ITK's Python wheels hold no complex {ndim}D images; convert the magnitude instead")
    if components == 1:
        pixel = getattr(itk, _ITK_SCALAR_TYPES[array.dtype.name])
    elif 2 <= components <= 4:
        pixel = itk.Vector[itk.D if array.dtype == np.float64 else itk.F, components]
    else:
        raise PixelTypeError(
            f"ITK's Python wheels hold vector images with 2 to 4 components, not {components}"
        )
    converted = itk.Image[pixel, ndim].New()
    converted.SetRegions(list(image.GetSize()))
    converted.Allocate()
    itk.array_view_from_image(converted)[...] = array
    converted.SetSpacing(image.GetSpacing())
    converted.SetOrigin(image.GetOrigin())
    converted.SetDirection(itk.matrix_from_array(np.reshape(image.GetDirection(), (ndim, ndim))))
    return converted


def _check_dimension(ndim: int, name: str) -> None:
    if ndim in (2, 3):
        return
    hint = ""
    if ndim == 4:
        hint = "; extract a 3D volume first, e.g. image[:, :, :, 0] with SimpleITK or array[0] with numpy"
    raise InputImageError(f"{name} has {ndim} dimensions; itk-suits registers 2D and 3D images{hint}")


def _check_pixel_type(image: sitk.Image, name: str, require_scalar: bool) -> None:
    pixel = image.GetPixelIDTypeAsString()
    if image.GetPixelID() in _LABEL_MAP_IDS:
        raise PixelTypeError(
            f"{name} is a SimpleITK label map ({pixel}); convert it to a label image with "
            f"SimpleITK.LabelMapToLabel(image)"
        )
    if not require_scalar:
        return
    if image.GetPixelID() in _COMPLEX_IDS:
        raise PixelTypeError(
            f"{name} has complex pixels ({pixel}); register the magnitude instead: "
            f"SimpleITK.ComplexToModulus(image), or numpy.abs(array)"
        )
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:
        raise PixelTypeError(
            f"{name} has {components} components per pixel ({pixel}); registration needs one "
            f"intensity per voxel. Select a component with SimpleITK.VectorIndexSelectionCast(image, 0) "
            f"(array[..., 0] in numpy), or convert an RGB image to luminance, e.g. "
            f"0.299 * R + 0.587 * G + 0.114 * B"
        )


def _check_shape(image: sitk.Image, name: str) -> None:
    ndim = image.GetDimension()
    _check_dimension(ndim, name)
    size = image.GetSize()
    if 0 in size:
        raise InputImageError(f"{name} is empty: its size is {size} voxels (x, y{', z' if ndim == 3 else ''})")
    if ndim == 3 and 1 in size:
        axis = size.index(1)
        sitk_index = ", ".join("0" if i == axis else ":" for i in range(3))
        numpy_index = ", ".join("0" if i == axis else ":" for i in reversed(range(3))).rstrip(", :")
        raise InputImageError(
            f"{name} is a 3D image one voxel thick along {_AXES[axis]} (size {size}); it is not "
            f"reduced to 2D silently. Extract the slice and register in 2D, e.g. image[{sitk_index}] "
            f"with SimpleITK or array[{numpy_index}] with numpy"
        )


def _grid_differences(a: sitk.Image, b: sitk.Image, tol: float) -> list:
    """Human-readable list of the ways ``b``'s grid differs from ``a``'s."""
    if a.GetDimension() != b.GetDimension():
        return [f"dimension {a.GetDimension()} vs {b.GetDimension()}"]
    differences = []
    if a.GetSize() != b.GetSize():
        differences.append(f"size {a.GetSize()} vs {b.GetSize()}")
    spacing_a = np.array(a.GetSpacing())
    checks = (
        ("origin", a.GetOrigin(), b.GetOrigin(), tol * spacing_a.min(), " mm"),
        ("spacing", a.GetSpacing(), b.GetSpacing(), tol * spacing_a, " mm"),
        ("direction", a.GetDirection(), b.GetDirection(), tol, ""),
    )
    for what, value_a, value_b, tolerance, unit in checks:
        gap = np.abs(np.subtract(value_a, value_b))
        if np.any(gap > tolerance):
            differences.append(f"{what} {_fmt(value_a)} vs {_fmt(value_b)} (up to {gap.max():.4g}{unit} apart)")
    return differences


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
