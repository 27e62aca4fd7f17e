"""Registration evaluation: metrics, the elastix, SimpleElastix, ANTs and ConvexAdam peers, and the comparison
driver with its reports (``compare``, ``evaluate``); the dataset readers of
:mod:`itk_suits.interop.datasets` are re-exported for convenience."""

from itk_suits.evaluation.ants import AntsUnavailable, find_ants, run_ants
from itk_suits.evaluation.compare import compare, evaluate
from itk_suits.evaluation.convexadam import ConvexAdamUnavailable, find_convexadam, run_convexadam
from itk_suits.evaluation.external import PeerUnavailable
from itk_suits.interop.datasets import (
    PairSequence,
    RegistrationPair,
    pair_from_files,
    pairs_from_dataset_json,
    pairs_from_folders,
    slice_pair,
)
from itk_suits.evaluation.elastix import METHOD_MAPS, ElastixResult, default_parameter_map, run_elastix
from itk_suits.evaluation.metrics import (
    dice,
    displacement_error,
    folding_percentage,
    hausdorff95,
    jacobian_determinant,
    label_table,
    log_jacobian_std,
)
from itk_suits.evaluation.simpleelastix import SimpleElastixUnavailable, find_simpleelastix, run_simpleelastix

__all__ = [
    "compare",
    "evaluate",
    "ElastixResult",
    "METHOD_MAPS",
    "default_parameter_map",
    "run_elastix",
    "SimpleElastixUnavailable",
    "find_simpleelastix",
    "run_simpleelastix",
    "PeerUnavailable",
    "AntsUnavailable",
    "find_ants",
    "run_ants",
    "ConvexAdamUnavailable",
    "find_convexadam",
    "run_convexadam",
    "dice",
    "displacement_error",
    "folding_percentage",
    "hausdorff95",
    "jacobian_determinant",
    "label_table",
    "log_jacobian_std",
    "PairSequence",
    "RegistrationPair",
    "pair_from_files",
    "pairs_from_dataset_json",
    "pairs_from_folders",
    "slice_pair",
]
