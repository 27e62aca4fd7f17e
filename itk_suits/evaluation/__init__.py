"""Registration evaluation: overlap and field-regularity metrics, and the itk-elastix baseline."""

from itk_suits.evaluation.elastix import ElastixResult, default_parameter_map, run_elastix
from itk_suits.evaluation.metrics import (
    dice,
    displacement_error,
    folding_percentage,
    jacobian_determinant,
    log_jacobian_std,
)

__all__ = [
    "ElastixResult",
    "default_parameter_map",
    "run_elastix",
    "dice",
    "displacement_error",
    "folding_percentage",
    "jacobian_determinant",
    "log_jacobian_std",
]
