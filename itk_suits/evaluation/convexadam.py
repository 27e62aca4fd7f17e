"""The ConvexAdam peer (the ``convexadam`` package, MIND-SSC), run by a separate Python interpreter.

convexadam brings its own torch, nibabel and scikit-learn; it runs in an
environment of its own (install a CPU torch first, an unpinned one pulls a
CUDA build of several GB):

.. code-block:: bash

    python -m venv ~/convexadam
    ~/convexadam/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    ~/convexadam/bin/pip install convexadam SimpleITK
    export ITK_SUITS_CONVEXADAM_PYTHON=~/convexadam/bin/python

ConvexAdam works on one voxel grid in voxel units: both images must share
it, and its smoothing and search range count voxels whatever their size.
:func:`run_convexadam` therefore resamples both images onto an isotropic
working grid covering the fixed image (same origin and direction; spacing:
the geometric mean of the fixed spacing unless given, so the voxel count
stays that of the fixed image; each size rounded up to a multiple of
``lcm(grid_sp, grid_sp_adam)``), runs ``convex_adam_pt`` with the package's
MIND-SSC defaults (:data:`DEFAULT_OPTIONS`) in ``_convexadam_worker.py``,
and maps its field back: voxels to millimetres in physical space, then onto
the fixed grid. A 2D pair is stacked into a volume of ``4 * grid_sp``
identical slices and the middle slice's in-plane displacement kept.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import ParameterError
from itk_suits.evaluation.elastix import ElastixResult, check_inputs, displacement_field_on
from itk_suits.evaluation.external import ExternalMethod, PeerUnavailable, check_timeout, result_from_field
from itk_suits.interop.images import check_same_grid, resample
from itk_suits.interop.transforms import displacement_field_transform
from itk_suits.interop.transforms import initial_transform as initial_alignment

__all__ = [
    "CONVEXADAM",
    "ConvexAdamUnavailable",
    "DEFAULT_OPTIONS",
    "ENVIRONMENT_VARIABLE",
    "find_convexadam",
    "run_convexadam",
    "working_grid",
]

#: Environment variable naming the Python interpreter of a convexadam environment.
ENVIRONMENT_VARIABLE = "ITK_SUITS_CONVEXADAM_PYTHON"

#: ``convex_adam_pt`` defaults of convexadam 0.2 (MIND-SSC radius 1, dilation 2; coupled convex
#: search on a 6-voxel grid, +-4 grid steps; 80 Adam iterations on a 2-voxel grid, diffusion weight 1.25;
#: inverse consistency). Voxel units throughout.
DEFAULT_OPTIONS = {
    "mind_r": 1,
    "mind_d": 2,
    "lambda_weight": 1.25,
    "grid_sp": 6,
    "disp_hw": 4,
    "selected_niter": 80,
    "selected_smooth": 0,
    "grid_sp_adam": 2,
    "ic": True,
}


class ConvexAdamUnavailable(PeerUnavailable):
    """No Python interpreter with convexadam is configured or usable; the message says why."""


CONVEXADAM = ExternalMethod(
    label="ConvexAdam",
    variable=ENVIRONMENT_VARIABLE,
    probe="import importlib.metadata as m, convexAdam.convex_adam_MIND, SimpleITK; print(m.version('convexadam'))",
    worker="_convexadam_worker.py",
    how_to="install convexadam into an environment of its own (it brings its own torch): python -m venv "
           "~/convexadam && ~/convexadam/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu "
           "&& ~/convexadam/bin/pip install convexadam SimpleITK",
    unavailable=ConvexAdamUnavailable,
)


def find_convexadam(python: Optional[str] = None) -> tuple[Optional[str], str]:
    """The Python interpreter that runs convexadam, or why there is none.

    Parameters
    ----------
    python : str, optional
        Interpreter (a path or a command on ``PATH``); default: the
        environment variable ``ITK_SUITS_CONVEXADAM_PYTHON``.

    Returns
    -------
    interpreter : str or None
        Absolute path of an interpreter that imports ``convexAdam`` and ``SimpleITK``; None when there is none.
    reason : str
        The convexadam version and path, or why there is none and how to configure it.
    """
    return CONVEXADAM.find(python)


def _checked_options(options: Optional[Mapping[str, Any]]) -> dict:
    merged = dict(DEFAULT_OPTIONS)
    unknown = set(options or {}) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ParameterError(f"unknown ConvexAdam options {sorted(unknown)}; use {sorted(DEFAULT_OPTIONS)}.")
    merged.update(options or {})
    for name in ("mind_r", "mind_d", "grid_sp", "disp_hw", "selected_niter", "selected_smooth", "grid_sp_adam"):
        value = merged[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ParameterError(f"ConvexAdam option {name} must be a non-negative integer, got {value!r}.")
    if merged["grid_sp"] < 1 or merged["grid_sp_adam"] < 1:
        raise ParameterError("ConvexAdam options grid_sp and grid_sp_adam must be at least 1 voxel.")
    if not isinstance(merged["lambda_weight"], numbers.Real) or merged["lambda_weight"] < 0:
        raise ParameterError(f"ConvexAdam option lambda_weight must be >= 0, got {merged['lambda_weight']!r}.")
    merged["ic"] = bool(merged["ic"])
    return merged


def working_grid(fixed: sitk.Image, spacing: Optional[float] = None, multiple: int = 6) -> sitk.Image:
    """The isotropic voxel grid ConvexAdam registers on (an empty float32 image).

    Parameters
    ----------
    fixed : SimpleITK.Image
        The fixed image; the grid shares its origin and direction and covers it.
    spacing : float, optional
        Isotropic spacing in mm; default: the geometric mean of the fixed
        spacing (the voxel count stays about that of the fixed image).
    multiple : int, default 6
        Each size is rounded up to a multiple of it (ConvexAdam pools by its
        grid spacings and needs whole cells).

    Returns
    -------
    SimpleITK.Image
        Size ``ceil(size * fixed spacing / spacing / multiple) * multiple`` per axis.

    Raises
    ------
    ParameterError
        For a non-positive spacing.
    """
    fixed_spacing = np.array(fixed.GetSpacing())
    if spacing is None:
        spacing = float(np.exp(np.log(fixed_spacing).mean()))
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Real) or not spacing > 0:
        raise ParameterError(f"spacing must be a positive isotropic spacing in mm, got {spacing!r}.")
    extent = np.array(fixed.GetSize()) * fixed_spacing / spacing
    size = [int(math.ceil(round(value, 6) / multiple)) * multiple for value in extent]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetOrigin(fixed.GetOrigin())
    grid.SetDirection(fixed.GetDirection())
    grid.SetSpacing([float(spacing)] * fixed.GetDimension())
    return grid


def run_convexadam(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    initial_transform: Union[None, str, os.PathLike, sitk.Transform, Any] = None,
    spacing: Optional[float] = None,
    options: Optional[Mapping[str, Any]] = None,
    threads: Optional[int] = 1,
    timeout: float = 600,
    python: Optional[str] = None,
) -> ElastixResult:
    """Register ``moving`` to ``fixed`` with ConvexAdam (MIND-SSC) in its own interpreter.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        Scalar 2D or 3D images of one dimension, any spacing and direction.
    initial_transform : None, str, path-like, SimpleITK or itk transform, optional
        Initial alignment with the same choices as SUITS; the moving image is
        resampled through it onto the working grid, and the result includes it.
    spacing : float, optional
        Isotropic spacing (mm) of the working grid (see :func:`working_grid`).
    options : mapping, optional
        ``convex_adam_pt`` keywords replacing :data:`DEFAULT_OPTIONS`, e.g.
        ``{"selected_niter": 40}`` (voxel units of the working grid).
    threads : int or None, default 1
        torch CPU threads of the ConvexAdam process; None: torch's default.
    timeout : float, default 600
        Seconds after which the ConvexAdam process is stopped.
    python : str, optional
        Interpreter with convexadam; default ``ITK_SUITS_CONVEXADAM_PYTHON``
        (see :func:`find_convexadam`).

    Returns
    -------
    ElastixResult
        ``transform``: a ``sitk.DisplacementFieldTransform`` on the fixed grid
        (fixed point -> moving point, mm, initial alignment included);
        ``displacement_field``: that field; ``warped``: ``moving`` resampled
        through it (cubic B-spline); ``seconds``: the ``convex_adam_pt`` time
        in the ConvexAdam process (interpreter start, resampling and file
        transfer excluded); ``transform_parameter_maps``: empty.

    Raises
    ------
    ConvexAdamUnavailable
        If no interpreter with convexadam is configured or usable.
    InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError
        For invalid images, options or initial transform.
    SuitsError
        If ConvexAdam fails or runs past ``timeout``.

    Notes
    -----
    ConvexAdam takes masks of both images; with a fixed mask alone there is
    none to give, so this runner takes no mask.
    """
    check_inputs(fixed, moving, None, threads)
    timeout = check_timeout(timeout)
    settings = _checked_options(options)
    grid = working_grid(fixed, spacing, math.lcm(settings["grid_sp"], settings["grid_sp_adam"]))
    initial = initial_alignment(fixed, moving, initial_transform)
    executable = CONVEXADAM.require(python)

    job = {"options": settings, "threads": None if threads is None else int(threads)}
    with tempfile.TemporaryDirectory(prefix="itk-suits-convexadam-") as folder:
        for name, image, transform in (("fixed", fixed, None), ("moving", moving, initial)):
            on_grid = resample(sitk.Cast(image, sitk.sitkFloat32), grid, transform, "linear", extrapolate=True)
            sitk.WriteImage(on_grid, os.path.join(folder, f"{name}.mha"))
        outcome = CONVEXADAM.run(executable, folder, job, timeout, threads)
        field = sitk.ReadImage(os.path.join(folder, "displacement_field.mha"))
    check_same_grid(grid, field, "the ConvexAdam working grid", "the ConvexAdam field")
    on_fixed = displacement_field_on(displacement_field_transform(field, "sitk"), fixed)
    return result_from_field(fixed, moving, on_fixed, initial, outcome["seconds"], "the ConvexAdam field")
