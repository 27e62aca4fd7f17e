"""Tensor-only SUITS engine: B-spline grids, warping, the descent step, the grid optimizer.

The schedule (:class:`Scale`) and its defaults live in :mod:`itk_suits.schedule`.

Nothing here knows of ITK, SimpleITK or files; 2D and 3D share every code path.
"""

from .bspline import BSplineGrid, basis_matrix, control_grid_shape, cubic_bspline
from .descent import confidence_floor, descent_step
from .device import resolve_device
from .optimizer import (
    BSplineDescentStep,
    DescentSettings,
    EarlyStopping,
    GridAdam,
    IterationInfo,
    MultiScaleDescent,
    adam_learning_rate,
)
from .random_field import random_smooth_displacement
from ..schedule import Scale
from .warp import identity_grid, invert_displacement, resize, spatial_gradient, warp

__all__ = [
    "BSplineGrid",
    "basis_matrix",
    "control_grid_shape",
    "cubic_bspline",
    "confidence_floor",
    "descent_step",
    "resolve_device",
    "BSplineDescentStep",
    "adam_learning_rate",
    "DescentSettings",
    "EarlyStopping",
    "GridAdam",
    "IterationInfo",
    "MultiScaleDescent",
    "Scale",
    "random_smooth_displacement",
    "identity_grid",
    "invert_displacement",
    "resize",
    "spatial_gradient",
    "warp",
]
