"""itk-suits: SUITS multi-modal deformable registration for ITK and SimpleITK.

>>> import itk_suits
>>> result = itk_suits.register(fixed, moving)            # doctest: +SKIP
>>> result.warped, result.transform, result.displacement_field  # doctest: +SKIP

The public names below are imported on first use, so ``import itk_suits``
(and ``itk-suits --help``) costs nothing until a registration, a feature
extraction or a training run is asked for.
"""

from ._version import __version__
from .errors import (
    GeometryError,
    InputImageError,
    ModalityError,
    ParameterError,
    PixelTypeError,
    SuitsError,
    TransformError,
)

#: Public name -> the module that defines it.
_LAZY = {
    "register": "registration",
    "SuitsRegistrationMethod": "registration",
    "RegistrationParameters": "registration",
    "RegistrationResult": "registration",
    "IterationEvent": "registration",
    "ScaleEvent": "registration",
    "EndEvent": "registration",
    "extract_features": "extract",
    "SuitsFeatureImageFilter": "extract",
    "train_features": "training.api",
    "register_many": "cohort",
}

__all__ = [
    "register",
    "register_many",
    "extract_features",
    "train_features",
    "SuitsFeatureImageFilter",
    "SuitsRegistrationMethod",
    "RegistrationParameters",
    "RegistrationResult",
    "IterationEvent",
    "ScaleEvent",
    "EndEvent",
    "SuitsError",
    "InputImageError",
    "PixelTypeError",
    "GeometryError",
    "ParameterError",
    "ModalityError",
    "TransformError",
    "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
