"""Registration quality measures in physical units, for 2D and 3D SimpleITK images.

Label overlap and surface distance (:func:`dice`, :func:`hausdorff95`, both
per label in :func:`label_table`), regularity of a displacement field
(:func:`jacobian_determinant`, :func:`folding_percentage`,
:func:`log_jacobian_std`) and accuracy against a known field
(:func:`displacement_error`).

A displacement field is a SimpleITK vector image whose pixel at fixed point
``x`` holds the physical displacement ``u(x)`` in millimetres, components in
ITK's (x, y[, z]) order: the fixed point ``x`` maps to the moving point
``x + u(x)``. Fields may have any spacing and direction; every derivative is
taken with respect to physical coordinates.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import InputImageError, PixelTypeError
from itk_suits.interop.images import check_same_grid

__all__ = [
    "dice",
    "hausdorff95",
    "label_table",
    "jacobian_determinant",
    "folding_percentage",
    "log_jacobian_std",
    "displacement_error",
]

_DET_FLOOR = 1e-9


def _field_array(field, name="field"):
    """Displacements of a vector image as float64, shape ``(*size[::-1], ndim)``, in mm."""
    if not isinstance(field, sitk.Image):
        raise InputImageError(f"{name} must be a SimpleITK vector image, got {type(field).__name__}.")
    ndim = field.GetDimension()
    if field.GetNumberOfComponentsPerPixel() != ndim or ndim not in (2, 3):
        raise PixelTypeError(
            f"{name} must be a 2D or 3D vector image with one component per dimension "
            f"(a displacement field), got {ndim}D with "
            f"{field.GetNumberOfComponentsPerPixel()} component(s) per pixel."
        )
    return sitk.GetArrayViewFromImage(field).astype(np.float64)


def _mask_array(mask, grid, name="mask"):
    """Boolean array of the non-zero voxels of ``mask`` (None: everything) on ``grid``."""
    if mask is None:
        return np.ones(grid.GetSize()[::-1], dtype=bool)
    if not isinstance(mask, sitk.Image) or mask.GetNumberOfComponentsPerPixel() != 1:
        raise PixelTypeError(f"{name} must be a scalar SimpleITK image (non-zero = inside).")
    check_same_grid(grid, mask, "the field", name)
    inside = sitk.GetArrayViewFromImage(mask) != 0
    if not inside.any():
        raise InputImageError(f"{name} is empty: it must contain at least one non-zero voxel.")
    return inside


def _label_array(image, name):
    """Labels of a scalar image as an int64 array; PixelTypeError for non-integral values."""
    if not isinstance(image, sitk.Image) or image.GetNumberOfComponentsPerPixel() != 1:
        raise PixelTypeError(f"{name} must be a scalar SimpleITK label image.")
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise PixelTypeError(
                f"{name} holds non-integer values; pass a label map "
                "(cast with sitk.Cast(image, sitk.sitkUInt16) if it is one)."
            )
    return values.astype(np.int64)


def dice(
    reference: sitk.Image, test: sitk.Image, labels: Optional[Iterable[int]] = None
) -> dict[int, float]:
    """Dice overlap per label between two label maps on the same grid.

    Parameters
    ----------
    reference : SimpleITK.Image
        Scalar label map (integer values; 0 is background), 2D or 3D.
    test : SimpleITK.Image
        Scalar label map on the same grid as ``reference`` (e.g. warped
        moving labels).
    labels : iterable of int, optional
        Labels to measure. Default: every non-zero label present in
        ``reference``.

    Returns
    -------
    dict of int to float
        ``2 |R ∩ T| / (|R| + |T|)`` per label, in [0, 1]. A label absent from
        both images has no defined overlap and gives NaN (so that averaging
        with ``numpy.nanmean`` skips it).

    Raises
    ------
    GeometryError
        If the two images do not share size, origin, spacing and direction.
    PixelTypeError
        If an image is not a scalar image with integral values.
    """
    reference_labels = _label_array(reference, "reference")
    test_labels = _label_array(test, "test")
    check_same_grid(reference, test, "reference", "test")
    if labels is None:
        labels = np.unique(reference_labels[reference_labels != 0])
    scores = {}
    for label in labels:
        in_reference = reference_labels == label
        in_test = test_labels == label
        total = int(in_reference.sum()) + int(in_test.sum())
        overlap = int(np.count_nonzero(in_reference & in_test))
        scores[int(label)] = 2.0 * overlap / total if total else float("nan")
    return scores


def _label_mask(image: sitk.Image, label: int) -> sitk.Image:
    """Binary uint8 mask of ``label`` padded with one background voxel on every side.

    The padding makes the image border part of a label's surface (a structure
    cut by the field of view ends there), which ``sitk.LabelContour`` would
    otherwise ignore; it keeps the physical position of every voxel.
    """
    mask = sitk.BinaryThreshold(image, float(label), float(label), 1, 0)
    pad = [1] * image.GetDimension()
    return sitk.ConstantPad(mask, pad, pad, 0)


def _surface_distances(surface: sitk.Image) -> np.ndarray:
    """Distance in mm from every voxel centre to the nearest voxel of ``surface`` (0 on it)."""
    distance = sitk.SignedMaurerDistanceMap(
        surface, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    # inside a surface more than one voxel thick the map is negative: those voxels are on it
    return np.maximum(sitk.GetArrayViewFromImage(distance), 0.0)


def hausdorff95(
    reference: sitk.Image, test: sitk.Image, labels: Optional[Iterable[int]] = None
) -> dict[int, float]:
    """Symmetric 95th-percentile Hausdorff distance (HD95) per label, in mm.

    The surface of a label is the set of its voxels with a face neighbour
    outside it (``sitk.LabelContour``; the image border counts as outside).
    For every surface voxel of one image, the distance to the nearest surface
    voxel of the other is read from ``sitk.SignedMaurerDistanceMap`` in
    physical units (spacing taken into account); HD95 is the larger of the two
    directed 95th percentiles (linear interpolation between voxels), as in
    the Learn2Reg evaluation.

    Parameters
    ----------
    reference : SimpleITK.Image
        Scalar label map (integer values; 0 is background), 2D or 3D.
    test : SimpleITK.Image
        Scalar label map on the same grid as ``reference``.
    labels : iterable of int, optional
        Labels to measure. Default: every non-zero label present in
        ``reference``.

    Returns
    -------
    dict of int to float
        HD95 in mm per label, >= 0. A label present in only one of the two
        images has no surface to measure against and gives ``inf``; a label
        absent from both gives NaN (skipped by ``numpy.nanmean``).

    Raises
    ------
    GeometryError
        If the two images do not share size, origin, spacing and direction.
    PixelTypeError
        If an image is not a scalar image with integral values.

    Examples
    --------
    >>> hausdorff95(fixed_labels, warped_labels)  # doctest: +SKIP
    {1: 1.5, 2: 3.0}
    """
    reference_labels = _label_array(reference, "reference")
    test_labels = _label_array(test, "test")
    check_same_grid(reference, test, "reference", "test")
    in_reference = set(np.unique(reference_labels).tolist())
    in_test = set(np.unique(test_labels).tolist())
    if labels is None:
        labels = sorted(in_reference - {0})
    distances = {}
    for label in (int(label) for label in labels):
        if label not in in_reference and label not in in_test:
            distances[label] = float("nan")
        elif label not in in_reference or label not in in_test:
            distances[label] = float("inf")
        else:
            surfaces = [
                sitk.LabelContour(_label_mask(image, label), fullyConnected=False, backgroundValue=0)
                for image in (reference, test)
            ]
            on_surface = [sitk.GetArrayViewFromImage(surface) != 0 for surface in surfaces]
            to_surface = [_surface_distances(surface) for surface in surfaces]
            distances[label] = float(
                max(
                    np.percentile(to_surface[0][on_surface[1]], 95),
                    np.percentile(to_surface[1][on_surface[0]], 95),
                )
            )
    return distances


def _label_volume(image: sitk.Image, label: int) -> float:
    """Physical size of ``label`` in ``image`` (mm^3 in 3D, mm^2 in 2D); 0 when absent."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.ComputePerimeterOff()
    statistics.Execute(sitk.BinaryThreshold(image, float(label), float(label), 1, 0))
    return statistics.GetPhysicalSize(1) if statistics.HasLabel(1) else 0.0


def label_table(
    reference: sitk.Image,
    test: sitk.Image,
    labels: Optional[Iterable[int]] = None,
    names: Optional[Mapping[int, str]] = None,
) -> list[dict]:
    """Dice, HD95 and volumes per label, one row per label.

    Parameters
    ----------
    reference : SimpleITK.Image
        Scalar label map (e.g. the fixed labels), 2D or 3D.
    test : SimpleITK.Image
        Scalar label map on the same grid (e.g. the warped moving labels).
    labels : iterable of int, optional
        Labels to report, in this order. Default: every non-zero label
        present in ``reference``, ascending.
    names : mapping of int to str, optional
        Label names (e.g. ``RegistrationPair.label_names``); a label without
        one is named ``"label <n>"``.

    Returns
    -------
    list of dict
        One dict per label with keys ``label`` (int), ``name`` (str),
        ``dice`` (see :func:`dice`), ``hd95_mm`` (see :func:`hausdorff95`),
        ``volume_reference_mm3`` and ``volume_test_mm3`` (physical size from
        ``sitk.LabelShapeStatisticsImageFilter``: mm^3 for 3D images, mm^2
        for 2D ones; 0 for an absent label).

    Raises
    ------
    GeometryError
        If the two images do not share size, origin, spacing and direction.
    PixelTypeError
        If an image is not a scalar image with integral values.
    """
    overlap = dice(reference, test, labels)
    distance = hausdorff95(reference, test, list(overlap))
    names = names or {}
    return [
        {
            "label": label,
            "name": names.get(label, f"label {label}"),
            "dice": overlap[label],
            "hd95_mm": distance[label],
            "volume_reference_mm3": _label_volume(reference, label),
            "volume_test_mm3": _label_volume(test, label),
        }
        for label in overlap
    ]


def jacobian_determinant(field: sitk.Image) -> np.ndarray:
    """Determinant of the Jacobian of the mapping ``x -> x + u(x)`` at every voxel.

    Derivatives are central differences in index space (one-sided on the
    border), mapped to physical coordinates with
    ``inverse(Direction @ diag(spacing))``, so the result is exact for affine
    fields on grids with anisotropic spacing and oblique directions.
    (``sitk.DisplacementFieldJacobianDeterminant`` ignores the direction.)

    Parameters
    ----------
    field : SimpleITK.Image
        Displacement field, vector image with ``ndim`` components in mm,
        2D or 3D, at least 2 voxels along every axis.

    Returns
    -------
    numpy.ndarray
        ``det(I + du/dx)``, float64, shape ``field.GetSize()[::-1]`` (z, y, x
        order). Values <= 0 mark folding; 1 means volume preserved.

    Raises
    ------
    PixelTypeError
        If ``field`` is not a displacement field.
    InputImageError
        If an axis has a single voxel (no derivative can be taken).
    """
    displacement = _field_array(field)
    ndim = field.GetDimension()
    if min(field.GetSize()) < 2:
        raise InputImageError(
            f"field has size {field.GetSize()}; the Jacobian needs at least 2 voxels along every axis."
        )
    # np.gradient differentiates along array axes (z, y, x); index axis k is array axis ndim-1-k.
    index_gradient = np.stack(
        [np.gradient(displacement, axis=ndim - 1 - k) for k in range(ndim)], axis=-1
    )  # [..., component c, index axis k] = du_c / dk
    index_to_physical = np.reshape(field.GetDirection(), (ndim, ndim)) @ np.diag(field.GetSpacing())
    physical_gradient = index_gradient @ np.linalg.inv(index_to_physical)
    return np.linalg.det(np.eye(ndim) + physical_gradient)


def folding_percentage(field: sitk.Image, mask: Optional[sitk.Image] = None) -> float:
    """Percentage of voxels where the mapping folds (Jacobian determinant <= 0).

    Parameters
    ----------
    field : SimpleITK.Image
        Displacement field in mm (see :func:`jacobian_determinant`).
    mask : SimpleITK.Image, optional
        Scalar image on the field's grid; only its non-zero voxels count.

    Returns
    -------
    float
        Folded voxels in percent of the voxels considered, in [0, 100].

    Raises
    ------
    GeometryError
        If ``mask`` is not on the field's grid.
    InputImageError
        If ``mask`` is empty.
    """
    inside = _mask_array(mask, field)
    determinant = jacobian_determinant(field)[inside]
    return float(100.0 * np.count_nonzero(determinant <= 0) / determinant.size)


def log_jacobian_std(field: sitk.Image, mask: Optional[sitk.Image] = None) -> float:
    """Standard deviation of the log Jacobian determinant (SDlogJ), a smoothness measure.

    Determinants are clipped to 1e-9 before the logarithm so folded voxels
    count as strongly compressed instead of producing NaN.

    Parameters
    ----------
    field : SimpleITK.Image
        Displacement field in mm (see :func:`jacobian_determinant`).
    mask : SimpleITK.Image, optional
        Scalar image on the field's grid; only its non-zero voxels count.

    Returns
    -------
    float
        ``std(log(clip(det, 1e-9)))``, dimensionless; 0 for any affine field.

    Raises
    ------
    GeometryError
        If ``mask`` is not on the field's grid.
    InputImageError
        If ``mask`` is empty.
    """
    inside = _mask_array(mask, field)
    determinant = jacobian_determinant(field)[inside]
    return float(np.std(np.log(np.clip(determinant, _DET_FLOOR, None))))


def displacement_error(
    field: sitk.Image, reference_field: sitk.Image, mask: Optional[sitk.Image] = None
) -> dict[str, float]:
    """Euclidean distance in mm between two displacement fields, voxel by voxel.

    Parameters
    ----------
    field : SimpleITK.Image
        Estimated displacement field in mm.
    reference_field : SimpleITK.Image
        Ground-truth displacement field in mm on the same grid.
    mask : SimpleITK.Image, optional
        Scalar image on the same grid; only its non-zero voxels count.

    Returns
    -------
    dict
        ``{"mean": float, "p95": float, "max": float}``, the mean, 95th
        percentile and maximum of ``|field(x) - reference_field(x)|`` in mm.

    Raises
    ------
    GeometryError
        If the fields or the mask do not share one grid.
    PixelTypeError
        If an input is not a displacement field.
    """
    estimate = _field_array(field)
    truth = _field_array(reference_field, "reference_field")
    check_same_grid(field, reference_field, "field", "reference_field")
    inside = _mask_array(mask, field)
    error = np.linalg.norm(estimate - truth, axis=-1)[inside]
    return {
        "mean": float(error.mean()),
        "p95": float(np.percentile(error, 95)),
        "max": float(error.max()),
    }
