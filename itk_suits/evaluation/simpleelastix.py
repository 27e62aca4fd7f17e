"""The SimpleElastix baseline, run by a separate Python interpreter.

The ``SimpleITK-SimpleElastix`` wheel installs a package named ``SimpleITK``
and so replaces the plain SimpleITK that itk-suits uses. It therefore never
runs in this process: the user installs it into an environment of its own,

.. code-block:: bash

    python -m venv ~/simpleelastix
    ~/simpleelastix/bin/pip install SimpleITK-SimpleElastix
    export ITK_SUITS_SIMPLEELASTIX_PYTHON=~/simpleelastix/bin/python

and :func:`run_simpleelastix` writes the images to a temporary folder, runs
``_simpleelastix_worker.py`` (standard library and SimpleITK only) with that
interpreter, and reads the deformation field back (see
:mod:`itk_suits.evaluation.external`). :func:`find_simpleelastix` tells
whether such an interpreter is available, and why not; the probe is a
subprocess too, so nothing is imported here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any, Optional, Sequence, Union

import SimpleITK as sitk

from itk_suits.evaluation.elastix import (
    DEFAULT_GRID_SPACING_MM,
    DEFAULT_RESOLUTIONS,
    ElastixResult,
    check_inputs,
    check_parameter_files,
    check_parameter_maps,
    displacement_field_on,
)
from itk_suits.evaluation.external import ExternalMethod, PeerUnavailable, check_timeout, prealigned
from itk_suits.interop.images import check_same_grid
from itk_suits.interop.transforms import compose, displacement_field_transform
from itk_suits.interop.transforms import initial_transform as initial_alignment

__all__ = ["ENVIRONMENT_VARIABLE", "SimpleElastixUnavailable", "find_simpleelastix", "run_simpleelastix"]

#: Environment variable naming the Python interpreter of a SimpleElastix environment.
ENVIRONMENT_VARIABLE = "ITK_SUITS_SIMPLEELASTIX_PYTHON"


class SimpleElastixUnavailable(PeerUnavailable):
    """No Python interpreter with SimpleElastix is configured or usable; the message says why."""


SIMPLEELASTIX = ExternalMethod(
    label="SimpleElastix",
    variable=ENVIRONMENT_VARIABLE,
    probe="import SimpleITK; SimpleITK.ElastixImageFilter; print(getattr(SimpleITK, '__version__', 'unknown'))",
    worker="_simpleelastix_worker.py",
    how_to="install SimpleElastix into an environment of its own (it replaces SimpleITK wherever it is "
           "installed): python -m venv ~/simpleelastix && ~/simpleelastix/bin/pip install SimpleITK-SimpleElastix",
    unavailable=SimpleElastixUnavailable,
    error_log="elastix.log",
)


def find_simpleelastix(python: Optional[str] = None) -> tuple[Optional[str], str]:
    """The Python interpreter that runs SimpleElastix, or why there is none.

    Parameters
    ----------
    python : str, optional
        Interpreter to use (a path, or a command name looked up on ``PATH``).
        Default: the environment variable ``ITK_SUITS_SIMPLEELASTIX_PYTHON``.

    Returns
    -------
    interpreter : str or None
        Absolute path of an interpreter whose ``SimpleITK`` has
        ``ElastixImageFilter``; None when there is none.
    reason : str
        With an interpreter, the SimpleITK-SimpleElastix version found (for
        reports); without one, why not and how to configure it.

    Notes
    -----
    The interpreter is probed by running
    ``python -c "import SimpleITK; SimpleITK.ElastixImageFilter"`` in a
    subprocess (60 s limit); nothing is imported into this process.
    """
    return SIMPLEELASTIX.find(python)


def run_simpleelastix(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    python: Optional[str] = None,
    parameter_maps: Sequence[Union[str, Mapping[str, Any]]] = ("affine", "bspline"),
    fixed_mask: Optional[sitk.Image] = None,
    threads: Optional[int] = None,
    timeout: float = 600,
    parameter_files: Optional[Sequence[Union[str, os.PathLike]]] = None,
    initial_transform: Union[None, str, os.PathLike, sitk.Transform, Any] = None,
) -> ElastixResult:
    """Register ``moving`` to ``fixed`` with SimpleElastix in its own interpreter.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        Scalar 2D or 3D images of one dimension (sent as float32).
    python : str, optional
        Interpreter with SimpleElastix; default ``ITK_SUITS_SIMPLEELASTIX_PYTHON``
        (see :func:`find_simpleelastix`).
    parameter_maps : sequence of str or mapping, default ("affine", "bspline")
        As in :func:`~itk_suits.evaluation.run_elastix`: names of elastix's
        default maps (built by SimpleElastix with 4 resolutions and a 10 mm
        final B-spline spacing, like ``run_elastix``) or complete maps.
    fixed_mask : SimpleITK.Image, optional
        Scalar image in the fixed image's physical space; non-zero = inside.
    threads : int, optional
        Number of threads elastix may use; default: all cores.
    timeout : float, default 600
        Seconds after which the SimpleElastix process is stopped.
    parameter_files : sequence of path-like, optional
        Elastix parameter files; when given they replace ``parameter_maps``.
    initial_transform : None, str, path-like, SimpleITK or itk transform, optional
        Initial alignment with the same choices as SUITS (``"geometry"``,
        ``"moments"``, a transform or transform file). SimpleElastix takes no
        transform object, so, as SUITS does, the moving image is resampled
        once onto the fixed grid through it (linear, extended by its edge
        values) and registered from there; the returned transform is the
        composite of the initial transform and SimpleElastix's field.

    Returns
    -------
    ElastixResult
        ``transform``: a ``sitk.DisplacementFieldTransform`` built from
        transformix's deformation field on the fixed grid (composed with the
        initial transform when one is given); ``displacement_field``: that
        full mapping in mm on the fixed grid; ``warped``: ``moving``
        resampled through ``transform`` with cubic B-spline interpolation;
        ``seconds``: the ``ElastixImageFilter.Execute()`` time measured in the
        SimpleElastix process (interpreter start and file transfer excluded);
        ``transform_parameter_maps``: SimpleElastix's TransformParameters maps.

    Raises
    ------
    SimpleElastixUnavailable
        If no interpreter with SimpleElastix is configured or usable.
    InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError
        For invalid images, maps, files, threads, timeout or initial transform.
    SuitsError
        If SimpleElastix fails or runs past ``timeout``.
    """
    check_inputs(fixed, moving, fixed_mask, threads)
    timeout = check_timeout(timeout)
    if parameter_files is not None:
        stages, files = None, [os.path.abspath(path) for path in check_parameter_files(parameter_files)]
    else:
        stages, files = check_parameter_maps(parameter_maps), None
    initial = initial_alignment(fixed, moving, initial_transform)
    executable = SIMPLEELASTIX.require(python)

    job = {
        "parameter_maps": stages,
        "parameter_files": files,
        "threads": None if threads is None else int(threads),
        "resolutions": DEFAULT_RESOLUTIONS,
        "final_grid_spacing": DEFAULT_GRID_SPACING_MM,
    }
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    with tempfile.TemporaryDirectory(prefix="itk-suits-simpleelastix-") as folder:
        sitk.WriteImage(sitk.Cast(fixed, sitk.sitkFloat32), os.path.join(folder, "fixed.mha"))
        sitk.WriteImage(prealigned(fixed, moving, initial), os.path.join(folder, "moving.mha"))
        if fixed_mask is not None:
            sitk.WriteImage(sitk.Cast(fixed_mask != 0, sitk.sitkUInt8), os.path.join(folder, "fixed_mask.mha"))
        outcome = SIMPLEELASTIX.run(executable, folder, job, timeout)
        field = sitk.ReadImage(os.path.join(folder, "deformation_field.mha"))
    check_same_grid(fixed, field, "fixed", "the SimpleElastix deformation field")
    field = sitk.Cast(field, sitk.sitkVectorFloat64)
    field.CopyInformation(fixed)
    transform = displacement_field_transform(field, "sitk")
    if initial is not None:
        transform = compose(initial, transform, "sitk")
        field = displacement_field_on(transform, fixed)
    return ElastixResult(
        warped=sitk.Resample(moving, fixed, transform, sitk.sitkBSpline, 0.0, sitk.sitkFloat32),
        displacement_field=field,
        transform=transform,
        seconds=float(outcome["seconds"]),
        transform_parameter_maps=tuple(
            {key: tuple(values) for key, values in stage.items()} for stage in outcome["maps"]
        ),
    )
