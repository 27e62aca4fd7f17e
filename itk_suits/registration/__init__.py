"""SUITS registration for ITK, SimpleITK and numpy users.

Two faces on one engine, as in ITKElastix: the object
:class:`SuitsRegistrationMethod` (``New()``, ``Set...``, ``Update()``,
``GetOutput()``, observers) for pipelines, and the function :func:`register`
for scripts, which is a thin wrapper around the object.

Modules: :mod:`.parameters` (the settings and their checks), :mod:`.inputs`
(reading and checking images), :mod:`.resources` (memory, threads),
:mod:`.method` (the object, and several pairs as one batch),
:mod:`.batch` (the descent of prepared pairs), :mod:`.result` (what comes back, and saving it),
:mod:`.progress` and :mod:`.api` (``register``).
"""

from .api import register
from .method import EndEvent, IterationEvent, ScaleEvent, SuitsRegistrationMethod, update_together
from .parameters import SINGLE_THREAD_VOXELS, RegistrationParameters
from .result import RegistrationResult

__all__ = [
    "register",
    "SuitsRegistrationMethod",
    "RegistrationParameters",
    "RegistrationResult",
    "IterationEvent",
    "ScaleEvent",
    "EndEvent",
    "update_together",
    "SINGLE_THREAD_VOXELS",
]
