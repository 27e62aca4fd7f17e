"""Random strided subsets of a working level: the descent step on a fraction of the voxels.

Like elastix's random samplers, a large working level does not need every
voxel in every iteration: the B-spline adjoint averages the step over the
thousands of voxels each control point supports. A :class:`LatticeSampler`
keeps every ``k``-th voxel along each axis (``k`` chosen per axis so that at
most a given number of voxels remain, see :func:`sampling_strides`) and draws
a new random offset per axis every iteration, so that all voxels take part
over ``prod(k)`` iterations. The lattice is regular, so central differences
and the separable B-spline operators keep working on it: its basis matrices
are rows of the working level's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .bspline import BSplineGrid, apply_along_axes

__all__ = ["sampling_strides", "Lattice", "LatticeSampler"]


def sampling_strides(shape: Sequence[int], samples: int | None) -> tuple[int, ...]:
    """Per-axis strides (array order) leaving at most ``samples`` voxels of ``shape``.

    The axis with the most remaining voxels is thinned first, so strongly
    anisotropic levels (few thick slices) keep their short axis whole. ``None``
    keeps every voxel. Each axis keeps at least four voxels.
    """
    strides = [1] * len(shape)
    if samples is None:
        return tuple(strides)

    def kept(axis: int, stride: int) -> int:
        return math.ceil(shape[axis] / stride)

    while math.prod(kept(a, k) for a, k in enumerate(strides)) > samples:
        axis = max(range(len(shape)), key=lambda a: kept(a, strides[a]))
        if kept(axis, strides[axis] + 1) < 4:
            break
        strides[axis] += 1
    return tuple(strides)


@dataclass(frozen=True)
class Lattice:
    """One draw of a :class:`LatticeSampler`: where the step is computed this iteration.

    Attributes
    ----------
    slices : tuple of slice
        Spatial slices (array order) of the working level.
    matrices, transposed : list of torch.Tensor
        Per-axis B-spline basis matrices at the lattice ``[samples_i, points_i]`` and their transposes.
    support : float
        The largest summed weight of one control point over the lattice.
    coordinates : torch.Tensor
        ``[1, S, ndim]`` working-voxel coordinates of the ``S`` lattice voxels,
        components (x, y[, z]), in array order of the lattice.
    """

    slices: tuple
    matrices: list
    transposed: list
    support: float
    coordinates: torch.Tensor

    def take(self, image: torch.Tensor) -> torch.Tensor:
        """The lattice voxels of a working-level tensor ``[B, C, *working]``."""
        return image[(slice(None), slice(None)) + self.slices]

    def dense(self, coefficients: torch.Tensor) -> torch.Tensor:
        """The field of ``coefficients`` at the lattice, ``[B, ndim, *lattice]``."""
        return apply_along_axes(coefficients, self.matrices)

    def adjoint(self, field: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`dense`."""
        return apply_along_axes(field, self.transposed)


class LatticeSampler:
    """Draws random-offset strided lattices of a grid's working level.

    Parameters
    ----------
    grid : BSplineGrid
        The control grid and its working level.
    strides : sequence of int
        Per-axis strides, array order (see :func:`sampling_strides`).
    generator : torch.Generator
        Source of the offsets (seed it for reproducible registrations).
    """

    def __init__(self, grid: BSplineGrid, strides: Sequence[int], generator: torch.Generator) -> None:
        self.strides = tuple(int(k) for k in strides)
        self.generator = generator
        # rows o::k of each axis' basis matrix, for every offset o
        self._rows = [[matrix[offset::k].contiguous() for offset in range(k)]
                      for matrix, k in zip(grid.matrices, self.strides)]
        self._shape = grid.level_shape

    @property
    def active(self) -> bool:
        """Whether the lattice is thinner than the working level."""
        return any(k > 1 for k in self.strides)

    def draw(self) -> Lattice:
        """A lattice with a new random offset per axis."""
        return self.lattice([int(torch.randint(k, (1,), generator=self.generator)) for k in self.strides])

    def lattice(self, offsets: Sequence[int]) -> Lattice:
        """The lattice starting at ``offsets`` (array order, each below its stride)."""
        matrices = [rows[offset] for rows, offset in zip(self._rows, offsets)]
        support = 1.0
        for matrix in matrices:
            support *= float(matrix.sum(dim=0).max())
        device, dtype = matrices[0].device, matrices[0].dtype
        axes = [torch.arange(offset, n, k, device=device, dtype=dtype)
                for offset, n, k in zip(offsets, self._shape, self.strides)]
        mesh = torch.meshgrid(*axes, indexing="ij")
        return Lattice(
            slices=tuple(slice(offset, None, k) for offset, k in zip(offsets, self.strides)),
            matrices=matrices,
            transposed=[matrix.transpose(0, 1).contiguous() for matrix in matrices],
            support=support,
            coordinates=torch.stack([m.reshape(-1) for m in mesh[::-1]], dim=-1)[None],
        )
