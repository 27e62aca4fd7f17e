"""itk-suits: SUITS multi-modal deformable registration for ITK and SimpleITK.

>>> import itk_suits
>>> result = itk_suits.register(fixed, moving)            # doctest: +SKIP
>>> result.warped, result.transform, result.displacement_field  # doctest: +SKIP
"""

from .errors import GeometryError, InputImageError, ParameterError, PixelTypeError, SuitsError, TransformError
from .extract import SuitsFeatureImageFilter, extract_features
from .registration import (
    EndEvent,
    IterationEvent,
    RegistrationParameters,
    RegistrationResult,
    ScaleEvent,
    SuitsRegistrationMethod,
    register,
)
from .training.api import train_features

__version__ = "0.1.0"

__all__ = [
    "register",
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
    "TransformError",
    "__version__",
]
