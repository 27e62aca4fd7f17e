"""Exceptions raised by itk-suits.

Every error a user can provoke with bad input is a :class:`SuitsError`, so
``except itk_suits.SuitsError`` catches all of them; the subclasses also derive
from the matching built-in exception (``ValueError``, ``TypeError``) so generic
handlers keep working.
"""


class SuitsError(Exception):
    """Base class of every exception raised on purpose by itk-suits."""


class InputImageError(SuitsError, ValueError):
    """An input image cannot be registered as given (empty, NaN, wrong shape...)."""


class PixelTypeError(SuitsError, TypeError):
    """An input image has a pixel type itk-suits does not accept (vector, RGB, complex)."""


class GeometryError(SuitsError, ValueError):
    """Images, masks or fields do not share the physical space they must share."""


class ParameterError(SuitsError, ValueError):
    """A registration parameter is out of range or unknown (feature name, schedule...)."""


class ModalityError(ParameterError):
    """Features cannot tell which network describes an image: a modality the model has no network for,
    no modality named for a model with one network per modality, or a malformed modality name."""


class TransformError(SuitsError, ValueError):
    """A transform cannot be read, converted or composed."""


class ResourceError(SuitsError, MemoryError):
    """A registration does not fit in the memory of its device (host RAM or GPU)."""


class RegistrationError(SuitsError, RuntimeError):
    """A registration ran but produced no usable result (e.g. a non-finite displacement)."""
