"""The itk-elastix baseline: register two SimpleITK images with elastix.

:func:`run_elastix` runs elastix (affine then B-spline, Mattes mutual
information, elastix's default parameter maps unless told otherwise) and
returns the result in the package's conventions: a warped moving image on the
fixed grid, a physical displacement field on the fixed grid (fixed point ``x``
maps to moving point ``x + field(x)``), and the elastix transform as a plain
SimpleITK transform. Only the registration itself is timed. It accepts the
same fixed mask and initial alignment as SUITS, so both start from one place.

:data:`METHOD_MAPS` names the two variants compared with SUITS: ``"elastix"``
(affine then B-spline) and ``"elastix-bspline"`` (B-spline only).

Requires the optional package itk-elastix (``pip install itk-elastix``).
"""

from __future__ import annotations

import numbers
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import SimpleITK as sitk

from itk_suits.errors import GeometryError, InputImageError, ParameterError, PixelTypeError, SuitsError
from itk_suits.interop.images import as_sitk_image, error_summary, to_kind
from itk_suits.interop.transforms import as_sitk_transform, to_itk_transform
from itk_suits.interop.transforms import initial_transform as initial_alignment

__all__ = ["ElastixResult", "METHOD_MAPS", "default_parameter_map", "run_elastix"]

DEFAULT_MAP_NAMES = ("translation", "rigid", "affine", "bspline")
DEFAULT_RESOLUTIONS = 4
DEFAULT_GRID_SPACING_MM = 10.0

#: Elastix stages of each baseline method, by method name (elastix's default maps).
METHOD_MAPS = {"elastix": ("affine", "bspline"), "elastix-bspline": ("bspline",)}


@dataclass(frozen=True)
class ElastixResult:
    """Outcome of :func:`run_elastix`.

    Attributes
    ----------
    warped : SimpleITK.Image
        Moving image resampled onto the fixed grid by elastix, float32.
    displacement_field : SimpleITK.Image
        Vector image (float64, one component per dimension) on the fixed grid
        holding physical displacements in mm: fixed point ``x`` maps to moving
        point ``x + displacement_field(x)``.
    transform : SimpleITK.Transform
        The elastix result as an ITK transform (a composite of the stages,
        e.g. affine and B-spline) mapping fixed points to moving points, usable
        with ``sitk.Resample(moving, fixed, transform)``.
    seconds : float
        Wall time of the elastix registration call alone, in seconds
        (conversions and the displacement field are not included).
    transform_parameter_maps : tuple of dict
        Elastix's final TransformParameters maps, one per stage (``{name:
        tuple of str}``), e.g. to write next to a report; empty when unknown.
    """

    warped: sitk.Image
    displacement_field: sitk.Image
    transform: sitk.Transform
    seconds: float
    transform_parameter_maps: tuple[dict[str, tuple[str, ...]], ...] = ()


def _import_itk():
    """The ``itk`` module with elastix; SuitsError naming the install command otherwise."""
    try:
        import itk

        itk.ElastixRegistrationMethod  # noqa: B018 - lazy attribute, fails without itk-elastix
    except (ImportError, AttributeError) as error:
        raise SuitsError(
            "the elastix baseline needs itk-elastix: pip install itk-elastix"
        ) from error
    return itk


def _parameter_values(name, value):
    """Elastix parameter value(s) as a tuple of strings (bool -> "true"/"false")."""
    values = value if isinstance(value, (list, tuple)) else (value,)
    converted = []
    for item in values:
        if isinstance(item, bool):
            converted.append("true" if item else "false")
        elif isinstance(item, (str, numbers.Real)):
            converted.append(str(item))
        else:
            raise ParameterError(
                f"elastix parameter {name!r} has a value of type {type(item).__name__}; "
                "use str, bool, int, float or a list of them."
            )
    return tuple(converted)


def _check_map_name(name: str) -> None:
    if name not in DEFAULT_MAP_NAMES:
        raise ParameterError(f"unknown elastix map {name!r}; choose one of {DEFAULT_MAP_NAMES}.")


def default_parameter_map(
    name: str,
    *,
    resolutions: int = DEFAULT_RESOLUTIONS,
    final_grid_spacing: float = DEFAULT_GRID_SPACING_MM,
    overrides: Optional[Mapping[str, Any]] = None,
) -> dict[str, tuple[str, ...]]:
    """One of elastix's default parameter maps, optionally modified.

    Parameters
    ----------
    name : {"translation", "rigid", "affine", "bspline"}
        Transform of the map, as in ``itk.ParameterObject.GetDefaultParameterMap``.
    resolutions : int, default 4
        Number of pyramid levels (elastix adapts the B-spline grid schedule
        to it).
    final_grid_spacing : float, default 10.0
        B-spline control point spacing at the finest level, in mm (ignored by
        the other maps).
    overrides : mapping of str to value, optional
        Parameters to set or replace, e.g. ``{"MaximumNumberOfIterations": 50}``;
        values may be str, bool, int, float or lists of them.

    Returns
    -------
    dict of str to tuple of str
        The parameter map, ready for ``run_elastix(parameter_maps=[...])``.

    Raises
    ------
    ParameterError
        For an unknown map name, a non-positive resolution count or grid
        spacing, or an override value of an unsupported type.
    SuitsError
        If itk-elastix is not installed.

    Examples
    --------
    >>> quick = default_parameter_map("affine", resolutions=2,
    ...                               overrides={"MaximumNumberOfIterations": 50})
    >>> quick["Transform"]
    ('AffineTransform',)
    """
    _check_map_name(name)
    if isinstance(resolutions, bool) or not isinstance(resolutions, numbers.Integral) or resolutions < 1:
        raise ParameterError(f"resolutions must be a positive integer, got {resolutions!r}.")
    if not final_grid_spacing > 0:
        raise ParameterError(f"final_grid_spacing must be positive (mm), got {final_grid_spacing!r}.")
    itk = _import_itk()
    defaults = itk.ParameterObject.GetDefaultParameterMap(name, int(resolutions), float(final_grid_spacing))
    parameter_map = {key: tuple(values) for key, values in dict(defaults).items()}
    for key, value in (overrides or {}).items():
        parameter_map[key] = _parameter_values(key, value)
    return parameter_map


def check_parameter_files(parameter_files: Sequence[Union[str, os.PathLike]]) -> list[str]:
    """Paths of elastix parameter files, checked to exist.

    Raises
    ------
    ParameterError
        For an empty sequence or a missing file.
    """
    paths = [os.fspath(path) for path in parameter_files]
    if not paths:
        raise ParameterError("parameter_files is empty; give at least one elastix parameter file.")
    for path in paths:
        if not os.path.isfile(path):
            raise ParameterError(f"elastix parameter file {path!r} does not exist.")
    return paths


def check_parameter_maps(
    parameter_maps: Sequence[Union[str, Mapping[str, Any]]],
) -> list[Union[str, dict[str, tuple[str, ...]]]]:
    """Registration stages as default-map names or complete maps of string tuples.

    Parameters
    ----------
    parameter_maps : sequence of str or mapping
        As in :func:`run_elastix`.

    Returns
    -------
    list of str or dict
        Each name checked against :data:`DEFAULT_MAP_NAMES`; each mapping
        converted to ``{name: tuple of str}``.

    Raises
    ------
    ParameterError
        For an empty or non-sequence argument, an unknown name or an entry of
        another type.
    """
    if isinstance(parameter_maps, (str, Mapping)) or not parameter_maps:
        raise ParameterError(
            "parameter_maps must be a non-empty sequence of map names or mappings, "
            f"e.g. ('affine', 'bspline'); got {parameter_maps!r}."
        )
    stages = []
    for item in parameter_maps:
        if isinstance(item, str):
            _check_map_name(item)
            stages.append(item)
        elif isinstance(item, Mapping):
            stages.append({key: _parameter_values(key, value) for key, value in item.items()})
        else:
            raise ParameterError(
                f"each entry of parameter_maps must be a map name {DEFAULT_MAP_NAMES} "
                f"or a mapping of parameters, got {type(item).__name__}."
            )
    return stages


def _parameter_object(itk, parameter_maps, parameter_files):
    """An ``itk.ParameterObject`` from user files, or from map names and mappings."""
    parameter_object = itk.ParameterObject.New()
    if parameter_files is not None:
        parameter_object.ReadParameterFiles(check_parameter_files(parameter_files))
        return parameter_object
    for stage in check_parameter_maps(parameter_maps):
        parameter_object.AddParameterMap(default_parameter_map(stage) if isinstance(stage, str) else stage)
    return parameter_object


def check_inputs(fixed, moving, fixed_mask, threads) -> int:
    """Validate the images, mask and thread count of an elastix run; return the dimension.

    Raises
    ------
    InputImageError, PixelTypeError, GeometryError, ParameterError
        As documented in :func:`run_elastix`.
    """
    for name, image in (("fixed", fixed), ("moving", moving)):
        if not isinstance(image, sitk.Image):
            raise InputImageError(f"{name} must be a SimpleITK image, got {type(image).__name__}.")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise PixelTypeError(f"{name} must be a scalar image; extract one component first.")
        if image.GetDimension() not in (2, 3):
            raise InputImageError(f"{name} must be 2D or 3D, got {image.GetDimension()}D.")
    ndim = fixed.GetDimension()
    if moving.GetDimension() != ndim:
        raise GeometryError(f"fixed is {ndim}D but moving is {moving.GetDimension()}D.")
    if fixed_mask is not None:
        if not isinstance(fixed_mask, sitk.Image) or fixed_mask.GetNumberOfComponentsPerPixel() != 1:
            raise PixelTypeError("fixed_mask must be a scalar SimpleITK image (non-zero = inside).")
        if fixed_mask.GetDimension() != ndim:
            raise GeometryError(f"fixed_mask is {fixed_mask.GetDimension()}D but fixed is {ndim}D.")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1
    ):
        raise ParameterError(f"threads must be a positive integer or None, got {threads!r}.")
    return ndim


def logged_error(path: str) -> str:
    """The error lines of an elastix log (empty when there is none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            lines = [line.strip() for line in log]
    except OSError:
        return ""
    errors = [line for line in lines if "ERROR" in line.upper() or "Description:" in line]
    return " ".join(errors[-3:])


def displacement_field_on(transform: sitk.Transform, grid: sitk.Image) -> sitk.Image:
    """Physical displacement field (float64 vectors, mm) of ``transform`` on ``grid``'s voxels."""
    return sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        grid.GetSize(),
        grid.GetOrigin(),
        grid.GetSpacing(),
        grid.GetDirection(),
    )


def run_elastix(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    parameter_maps: Sequence[Union[str, Mapping[str, Any]]] = ("affine", "bspline"),
    fixed_mask: Optional[sitk.Image] = None,
    parameter_files: Optional[Sequence[Union[str, os.PathLike]]] = None,
    threads: Optional[int] = None,
    initial_transform: Union[None, str, os.PathLike, sitk.Transform, Any] = None,
) -> ElastixResult:
    """Register ``moving`` to ``fixed`` with itk-elastix.

    Parameters
    ----------
    fixed : SimpleITK.Image
        Scalar 2D or 3D image defining the output grid (cast to float32).
    moving : SimpleITK.Image
        Scalar image of the same dimension, any grid (cast to float32).
    parameter_maps : sequence of str or mapping, default ("affine", "bspline")
        Registration stages in order. A string names one of elastix's default
        maps (see :func:`default_parameter_map`; Mattes mutual information,
        4 resolutions); a mapping is a complete elastix parameter map, e.g.
        from :func:`default_parameter_map` with fewer iterations.
        ``("bspline",)`` gives the B-spline-only variant (see
        :data:`METHOD_MAPS`).
    fixed_mask : SimpleITK.Image, optional
        Scalar image in the fixed image's physical space; elastix samples the
        metric only where it is non-zero.
    parameter_files : sequence of path-like, optional
        Elastix parameter files; when given they replace ``parameter_maps``.
    threads : int, optional
        Number of threads elastix may use (its ``-threads`` option). Default:
        elastix's own choice (all cores).
    initial_transform : None, str, path-like, SimpleITK or itk transform, optional
        Initial alignment (fixed point -> moving point), with the same choices
        as SUITS's ``initial_transform``: ``"identity"``, ``"geometry"``,
        ``"moments"``, a transform or a transform file. It is handed to
        elastix as its initial transform (``SetInitialTransform``), which
        composes the stages onto it, so the returned transform, field and
        warped image are the full mapping including it.

    Returns
    -------
    ElastixResult
        Warped moving image, displacement field in mm on the fixed grid,
        transform (fixed point -> moving point, initial alignment included),
        registration wall time and elastix's TransformParameters maps.

    Raises
    ------
    InputImageError, PixelTypeError, GeometryError
        For images that are not scalar 2D/3D SimpleITK images of one dimension.
    ParameterError
        For unknown map names, missing parameter files or invalid ``threads``.
    TransformError
        For an initial transform that cannot be read or has another dimension.
    SuitsError
        If itk-elastix is not installed, or too old to take an initial transform.

    Examples
    --------
    >>> result = run_elastix(fixed, moving, threads=1, initial_transform="moments")  # doctest: +SKIP
    >>> sitk.Resample(moving_labels, fixed, result.transform,
    ...               sitk.sitkNearestNeighbor)  # doctest: +SKIP
    """
    ndim = check_inputs(fixed, moving, fixed_mask, threads)
    initial = initial_alignment(fixed, moving, initial_transform)
    itk = _import_itk()
    parameter_object = _parameter_object(itk, parameter_maps, parameter_files)

    fixed_itk = to_kind(sitk.Cast(fixed, sitk.sitkFloat32), "itk")
    moving_itk = to_kind(sitk.Cast(moving, sitk.sitkFloat32), "itk")
    image_type = itk.Image[itk.F, ndim]
    registration = itk.ElastixRegistrationMethod[image_type, image_type].New()
    registration.SetFixedImage(fixed_itk)
    registration.SetMovingImage(moving_itk)
    if fixed_mask is not None:
        registration.SetFixedMask(to_kind(sitk.Cast(fixed_mask != 0, sitk.sitkUInt8), "itk"))
    if initial is not None:
        if not hasattr(registration, "SetInitialTransform"):
            raise SuitsError(
                "this itk-elastix cannot take an initial transform object; "
                "upgrade it: pip install --upgrade itk-elastix"
            )
        registration.SetInitialTransform(to_itk_transform(initial))
    registration.SetParameterObject(parameter_object)
    registration.LogToConsoleOff()
    if threads is not None:
        registration.SetNumberOfThreads(int(threads))

    with tempfile.TemporaryDirectory(prefix="itk-suits-elastix-") as log_directory:
        registration.SetOutputDirectory(log_directory)
        registration.SetLogFileName("elastix.log")
        registration.LogToFileOn()
        start = time.perf_counter()
        try:
            registration.Update()
        except RuntimeError as error:
            reason = logged_error(os.path.join(log_directory, "elastix.log"))
            raise SuitsError(f"elastix failed: {reason or error_summary(error)}") from error
        seconds = time.perf_counter() - start

    warped, _ = as_sitk_image(registration.GetOutput(), name="elastix output")
    itk_transform = registration.ConvertToItkTransform(registration.GetCombinationTransform())
    transform = as_sitk_transform(itk_transform, ndim, name="elastix transform")
    result_maps = registration.GetTransformParameterObject()
    return ElastixResult(
        warped=warped,
        displacement_field=displacement_field_on(transform, fixed),
        transform=transform,
        seconds=seconds,
        transform_parameter_maps=tuple(
            {key: tuple(values) for key, values in dict(result_maps.GetParameterMap(index)).items()}
            for index in range(result_maps.GetNumberOfParameterMaps())
        ),
    )
