"""Tensor-only SUITS engine: B-spline grids, warping, the descent step, the grid optimizer.

Nothing here knows of ITK, SimpleITK or files; 2D and 3D share every code path.
"""

from .bspline import BSplineGrid, basis_matrix, control_grid_shape, cubic_bspline
from .descent import confidence_floor, descent_step
from .device import resolve_device
from .optimizer import (
    BSplineDescentModule,
    DescentSettings,
    GridAdam,
    IterationInfo,
    MultiScaleDescent,
    Scale,
    adam_learning_rate,
)
from .synthetic import random_smooth_displacement
from .warp import identity_grid, invert_displacement, resize, spatial_gradient, warp

__all__ = [
    "BSplineGrid",
    "basis_matrix",
    "control_grid_shape",
    "cubic_bspline",
    "confidence_floor",
    "descent_step",
    "resolve_device",
    "BSplineDescentModule",
    "adam_learning_rate",
    "DescentSettings",
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
