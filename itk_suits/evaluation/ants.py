"""The ANTs SyN peer (antspyx), run by a separate Python interpreter.

antspyx pins numpy versions that clash with itk-suits's environment, so it
runs in an environment of its own:

.. code-block:: bash

    python -m venv ~/ants
    ~/ants/bin/pip install antspyx SimpleITK
    export ITK_SUITS_ANTS_PYTHON=~/ants/bin/python

:func:`run_ants` writes the images to a temporary folder, runs
``_ants_worker.py`` (antspyx and SimpleITK only) with that interpreter, and
reads back the composed forward transform as a displacement field on the
fixed grid.

:data:`METHOD_SETTINGS` names the two variants compared with SUITS:

``"ants"``
    ``ants.registration(type_of_transform="SyN")`` with antspyx's defaults:
    affine (Mattes MI, shrink 4x2x2x1) then SyN (Mattes MI, 32 bins,
    ``grad_step=0.2``, ``flow_sigma=3``, ``reg_iterations=(40, 20, 0)`` at
    shrink factors 4x2x1). The finest level has 0 iterations: the field is
    never refined at full resolution.
``"ants-full"``
    ``type_of_transform="SyNAggro"`` (affine with 100 iterations at full
    resolution) and ``reg_iterations=(100, 70, 50, 20)`` at shrink factors
    8x4x2x1 (those of ``antsRegistrationSyN.sh``), so SyN runs through the
    finest level; Mattes MI for both stages.

Both use the fixed mask in every stage and a fixed random seed.
"""

from __future__ import annotations

import numbers
import os
import tempfile
from typing import Any, Optional, Sequence, Union

import SimpleITK as sitk

from itk_suits.errors import ParameterError
from itk_suits.evaluation.elastix import ElastixResult, check_inputs
from itk_suits.evaluation.external import (
    ExternalMethod,
    PeerUnavailable,
    check_timeout,
    prealigned,
    result_from_field,
)
from itk_suits.interop.transforms import initial_transform as initial_alignment

__all__ = ["ANTS", "AntsUnavailable", "ENVIRONMENT_VARIABLE", "METHOD_SETTINGS", "find_ants", "run_ants"]

#: Environment variable naming the Python interpreter of an antspyx environment.
ENVIRONMENT_VARIABLE = "ITK_SUITS_ANTS_PYTHON"

#: ``run_ants`` keywords of each ANTs method, by method name (see the module docstring).
METHOD_SETTINGS = {
    "ants": {"transform": "SyN", "reg_iterations": None},
    "ants-full": {"transform": "SyNAggro", "reg_iterations": (100, 70, 50, 20)},
}


class AntsUnavailable(PeerUnavailable):
    """No Python interpreter with antspyx is configured or usable; the message says why."""


ANTS = ExternalMethod(
    label="ANTs",
    variable=ENVIRONMENT_VARIABLE,
    probe="import ants, SimpleITK; print(ants.__version__)",
    worker="_ants_worker.py",
    how_to="install antspyx into an environment of its own (it pins numpy): python -m venv ~/ants && "
           "~/ants/bin/pip install antspyx SimpleITK",
    unavailable=AntsUnavailable,
)


def find_ants(python: Optional[str] = None) -> tuple[Optional[str], str]:
    """The Python interpreter that runs antspyx, or why there is none.

    Parameters
    ----------
    python : str, optional
        Interpreter (a path or a command on ``PATH``); default: the
        environment variable ``ITK_SUITS_ANTS_PYTHON``.

    Returns
    -------
    interpreter : str or None
        Absolute path of an interpreter that imports ``ants`` and ``SimpleITK``; None when there is none.
    reason : str
        The antspyx version and path, or why there is none and how to configure it.
    """
    return ANTS.find(python)


def _check_iterations(reg_iterations) -> Optional[list[int]]:
    if reg_iterations is None:
        return None
    if isinstance(reg_iterations, (str, bytes)) or not isinstance(reg_iterations, Sequence) or not reg_iterations:
        raise ParameterError(f"reg_iterations must be a non-empty sequence of iteration counts, got {reg_iterations!r}.")
    for count in reg_iterations:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ParameterError(f"reg_iterations must hold non-negative integers, got {reg_iterations!r}.")
    return [int(count) for count in reg_iterations]


def run_ants(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    transform: str = "SyN",
    reg_iterations: Optional[Sequence[int]] = None,
    fixed_mask: Optional[sitk.Image] = None,
    initial_transform: Union[None, str, os.PathLike, sitk.Transform, Any] = None,
    threads: Optional[int] = 1,
    random_seed: int = 1,
    timeout: float = 600,
    python: Optional[str] = None,
) -> ElastixResult:
    """Register ``moving`` to ``fixed`` with ``ants.registration`` in its own interpreter.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        Scalar 2D or 3D images of one dimension (sent as float32).
    transform : str, default "SyN"
        antspyx's ``type_of_transform``, e.g. ``"SyN"`` or ``"SyNAggro"``.
    reg_iterations : sequence of int, optional
        SyN iterations per level, coarse to fine (level ``i`` of ``n`` at
        shrink factor ``2**(n-1-i)``); default: antspyx's ``(40, 20, 0)``,
        whose finest level does nothing.
    fixed_mask : SimpleITK.Image, optional
        Scalar image in the fixed image's physical space (non-zero = inside);
        the metric mask of every stage.
    initial_transform : None, str, path-like, SimpleITK or itk transform, optional
        Initial alignment with the same choices as SUITS. As for SimpleElastix,
        the moving image is resampled once onto the fixed grid through it
        (linear, extended by its edge values) and registered from there; the
        result includes it.
    threads : int or None, default 1
        ITK threads of ANTs (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``); None: all cores.
    random_seed : int, default 1
        ANTs's ``--random-seed`` (the affine stage samples the metric at random).
    timeout : float, default 600
        Seconds after which the ANTs process is stopped.
    python : str, optional
        Interpreter with antspyx; default ``ITK_SUITS_ANTS_PYTHON`` (see :func:`find_ants`).

    Returns
    -------
    ElastixResult
        ``transform``: a ``sitk.DisplacementFieldTransform`` on the fixed grid
        (fixed point -> moving point, mm, initial alignment included) of ANTs's
        composed forward transforms; ``displacement_field``: that field;
        ``warped``: ``moving`` resampled through it (cubic B-spline);
        ``seconds``: the ``ants.registration`` time in the ANTs process
        (interpreter start, file transfer and composing excluded);
        ``transform_parameter_maps``: empty.

    Raises
    ------
    AntsUnavailable
        If no interpreter with antspyx is configured or usable.
    InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError
        For invalid images, options or initial transform.
    SuitsError
        If ANTs fails or runs past ``timeout``.
    """
    check_inputs(fixed, moving, fixed_mask, threads)
    timeout = check_timeout(timeout)
    if not isinstance(transform, str) or not transform:
        raise ParameterError(f"transform must be an antspyx type_of_transform such as 'SyN', got {transform!r}.")
    iterations = _check_iterations(reg_iterations)
    if isinstance(random_seed, bool) or not isinstance(random_seed, numbers.Integral):
        raise ParameterError(f"random_seed must be an integer, got {random_seed!r}.")
    initial = initial_alignment(fixed, moving, initial_transform)
    executable = ANTS.require(python)

    job = {"type_of_transform": transform, "reg_iterations": iterations, "random_seed": int(random_seed)}
    with tempfile.TemporaryDirectory(prefix="itk-suits-ants-") as folder:
        sitk.WriteImage(sitk.Cast(fixed, sitk.sitkFloat32), os.path.join(folder, "fixed.mha"))
        sitk.WriteImage(prealigned(fixed, moving, initial), os.path.join(folder, "moving.mha"))
        if fixed_mask is not None:
            sitk.WriteImage(sitk.Cast(fixed_mask != 0, sitk.sitkUInt8), os.path.join(folder, "fixed_mask.mha"))
        outcome = ANTS.run(executable, folder, job, timeout, threads)
        field = sitk.ReadImage(os.path.join(folder, "displacement_field.mha"))
    return result_from_field(fixed, moving, field, initial, outcome["seconds"], "the ANTs displacement field")
