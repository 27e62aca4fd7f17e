"""Registration methods that run in a Python interpreter of their own.

A peer whose package pins versions that clash with itk-suits's environment
(SimpleElastix replaces SimpleITK; antspyx pins numpy; convexadam pins
torch) is installed into a virtual environment of its own. Its runner here
finds that interpreter (an argument, else an environment variable), writes the
images to a temporary folder, runs a worker script of the same folder
(``_<name>_worker.py``) with that interpreter, and reads the result back.

:class:`ExternalMethod` holds what differs between peers (names, probe,
install hint); :func:`prealigned` and :func:`result_from_field` are the two
ends every field-returning peer shares: the initial alignment applied once
before the peer, and the peer's field turned into an
:class:`~itk_suits.evaluation.elastix.ElastixResult` afterwards.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional

import SimpleITK as sitk

from itk_suits.errors import ParameterError, SuitsError
from itk_suits.evaluation.elastix import ElastixResult, displacement_field_on, logged_error
from itk_suits.interop.images import check_same_grid, resample
from itk_suits.interop.transforms import compose, displacement_field_transform

__all__ = ["ExternalMethod", "PeerUnavailable", "check_timeout", "prealigned", "result_from_field"]

_PROBE_SECONDS = 60.0
_HERE = os.path.dirname(os.path.abspath(__file__))


class PeerUnavailable(SuitsError):
    """No Python interpreter with the peer method is configured or usable; the message says why."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def check_timeout(timeout) -> float:
    """``timeout`` as positive seconds; ParameterError otherwise."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ParameterError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    return float(timeout)


@dataclass(frozen=True)
class ExternalMethod:
    """One peer method run by a separate interpreter.

    Attributes
    ----------
    label : str
        Name in messages, e.g. ``"ANTs"``.
    variable : str
        Environment variable naming the interpreter, e.g. ``"ITK_SUITS_ANTS_PYTHON"``.
    probe : str
        Python code that fails without the peer and prints its version.
    worker : str
        File name of the worker script in this folder, run as ``python WORKER FOLDER``.
    how_to : str
        How to create the interpreter (shell commands), for error messages.
    unavailable : type
        :class:`PeerUnavailable` subclass raised when there is no interpreter.
    error_log : str, optional
        File the worker writes in its folder whose ``ERROR`` lines explain a
        failure better than its last line of output (elastix's log).
    """

    label: str
    variable: str
    probe: str
    worker: str
    how_to: str
    unavailable: type = PeerUnavailable
    error_log: Optional[str] = None

    def _hint(self) -> str:
        return f"{self.how_to}, then set {self.variable}=<that python> or pass python=..."

    def find(self, python: Optional[str] = None) -> tuple[Optional[str], str]:
        """The interpreter that runs the peer, or why there is none.

        Parameters
        ----------
        python : str, optional
            Interpreter (a path, or a command looked up on ``PATH``); default:
            the environment variable :attr:`variable`.

        Returns
        -------
        interpreter : str or None
            Absolute path of an interpreter that passes :attr:`probe`; None when there is none.
        reason : str
            With an interpreter, the peer's version and the path (for reports);
            without one, why not and how to configure it.

        Notes
        -----
        The probe runs in a subprocess (60 s limit): nothing is imported here.
        """
        candidate = python if python is not None else os.environ.get(self.variable, "")
        if not candidate:
            return None, f"no {self.label} interpreter is configured; {self._hint()}"
        executable = shutil.which(os.path.expanduser(os.fspath(candidate)))
        if executable is None:
            return None, (f"the {self.label} interpreter {candidate!r} does not exist or is not executable; "
                          f"{self._hint()}")
        executable = os.path.abspath(executable)
        try:
            probe = subprocess.run([executable, "-c", self.probe], capture_output=True, text=True,
                                   timeout=_PROBE_SECONDS, check=False, cwd=os.path.expanduser("~"))
        except subprocess.TimeoutExpired:
            return None, f"{executable} did not answer within {_PROBE_SECONDS:g} s when asked for {self.label}"
        except OSError as error:
            return None, f"{executable} cannot be run ({error}); {self._hint()}"
        if probe.returncode != 0:
            return None, f"{executable} has no {self.label} ({_last_line(probe.stderr)}); {self._hint()}"
        return executable, f"{self.label} {probe.stdout.strip()} at {executable}"

    def require(self, python: Optional[str] = None) -> str:
        """The interpreter of :meth:`find`; :attr:`unavailable` with the reason when there is none."""
        executable, reason = self.find(python)
        if executable is None:
            raise self.unavailable(f"{self.label} is not available: {reason}")
        return executable

    def run(self, executable: str, folder: str, job: dict, timeout: float,
            threads: Optional[int] = None) -> dict:
        """Write ``job.json`` to ``folder``, run the worker on it and return its ``result.json``.

        ``threads`` sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
        ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` for the worker. The worker
        runs in ``folder`` (so no file of the caller's working directory
        shadows a module of the peer's environment).

        Raises
        ------
        SuitsError
            If the worker fails (with the last line it printed) or runs past ``timeout``.
        """
        with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as file:
            json.dump(job, file)
        environment = dict(os.environ)
        if threads is not None:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
                environment[name] = str(int(threads))
        try:
            completed = subprocess.run(
                [executable, os.path.join(_HERE, self.worker), folder], capture_output=True, text=True,
                timeout=timeout, check=False, cwd=folder, env=environment,
            )
        except subprocess.TimeoutExpired as error:
            raise SuitsError(f"{self.label} did not finish within {timeout:g} s; pass a larger timeout") from error
        if completed.returncode != 0:
            logged = logged_error(os.path.join(folder, self.error_log)) if self.error_log else ""
            raise SuitsError(f"{self.label} failed: {logged or _last_line(completed.stderr)}")
        with open(os.path.join(folder, "result.json"), encoding="utf-8") as file:
            return json.load(file)


def prealigned(fixed: sitk.Image, moving: sitk.Image, initial: Optional[sitk.Transform]) -> sitk.Image:
    """The moving image as the peer gets it: float32, resampled once onto the fixed grid through ``initial``.

    Without an initial transform the moving image is returned as it is (cast
    to float32); with one, it is resampled linearly, extended by its edge
    values, as SUITS does.
    """
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    return moving if initial is None else resample(moving, fixed, initial, "linear", extrapolate=True)


def result_from_field(fixed: sitk.Image, moving: sitk.Image, field: sitk.Image,
                      initial: Optional[sitk.Transform], seconds: float, name: str) -> ElastixResult:
    """A peer's displacement field as the package's result, initial alignment included.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        The images given to the runner (``moving`` before :func:`prealigned`).
    field : SimpleITK.Image
        The peer's displacement field in mm, fixed point ``x`` -> ``x +
        field(x)`` in the pre-aligned moving image, on the fixed grid.
    initial : SimpleITK.Transform or None
        The initial alignment the moving image was resampled through.
    seconds : float
        The peer's own registration time.
    name : str
        What the field is, for a grid mismatch message.

    Returns
    -------
    ElastixResult
        ``transform``: a ``sitk.DisplacementFieldTransform`` on the fixed grid
        of the full mapping ``initial(x + field(x))``; ``displacement_field``:
        that mapping in mm on the fixed grid; ``warped``: ``moving`` resampled
        through it (cubic B-spline); ``transform_parameter_maps``: empty.

    Raises
    ------
    GeometryError
        If ``field`` is not on the fixed grid.
    """
    check_same_grid(fixed, field, "fixed", name)
    field = sitk.Cast(field, sitk.sitkVectorFloat64)
    field.CopyInformation(fixed)
    if initial is not None:
        field = displacement_field_on(compose(initial, displacement_field_transform(field, "sitk"), "sitk"), fixed)
    transform = displacement_field_transform(field, "sitk")
    return ElastixResult(
        warped=sitk.Resample(sitk.Cast(moving, sitk.sitkFloat32), fixed, transform, sitk.sitkBSpline, 0.0,
                             sitk.sitkFloat32),
        displacement_field=field,
        transform=transform,
        seconds=float(seconds),
    )
