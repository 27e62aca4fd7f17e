"""Known smooth deformations for tests, demos and benchmarks."""

from __future__ import annotations

from typing import Sequence

import torch

from .bspline import BSplineGrid

__all__ = ["random_smooth_displacement"]


def random_smooth_displacement(
    shape: Sequence[int],
    magnitude: float,
    control_spacing: float = 32.0,
    seed: int = 0,
) -> torch.Tensor:
    """A random smooth, fold-free voxel displacement field.

    Random cubic B-spline coefficients (uniform in ``[-1, 1]``) on a coarse
    grid, scaled so that the largest displacement is ``magnitude`` voxels.

    Parameters
    ----------
    shape : sequence of int
        Image size, array order (z, y, x).
    magnitude : float
        Largest displacement length in voxels.
    control_spacing : float
        Control-point spacing in voxels: the larger, the smoother.
    seed : int
        Seed of the random coefficients.

    Returns
    -------
    torch.Tensor
        ``[1, ndim, *shape]`` float32, components (x, y[, z]).
    """
    generator = torch.Generator().manual_seed(seed)
    grid = BSplineGrid(shape, control_spacing)
    coefficients = torch.rand((1, grid.ndim, *grid.shape), generator=generator) * 2.0 - 1.0
    field = grid.dense(coefficients)
    peak = field.norm(dim=1).max()
    return field * (magnitude / peak)
