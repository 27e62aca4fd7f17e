"""Cubic B-spline control grids and their dense displacement fields.

A control grid with spacing ``s`` (in voxels of the full-resolution fixed
grid) places control point ``k`` of an axis at voxel coordinate
``(k - 1) * s``: one point before the image, and enough after it that every
voxel has its four supporting points. The dense field is the tensor product of
one 1-D cubic B-spline *basis matrix* per axis, which is exact for any
(non-integer) spacing and for any sampling of the image extent (a
downsampled working level samples the same extent with fewer voxels). The
transpose of the same matrices is the adjoint used to turn a dense descent
step into a control-grid gradient.

All fields here are ``[B, ndim, *spatial]`` tensors with spatial axes in
array order (z, y, x) and vector components in grid_sample order (x, y, z).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = [
    "cubic_bspline",
    "control_grid_shape",
    "basis_matrix",
    "BSplineGrid",
    "apply_along_axes",
]


def cubic_bspline(t: torch.Tensor) -> torch.Tensor:
    """Cardinal cubic B-spline kernel ``B3(t)``, support ``|t| < 2``, sums to one."""
    a = t.abs()
    inner = (4.0 - 6.0 * a**2 + 3.0 * a**3) / 6.0
    outer = (2.0 - a).clamp(min=0.0) ** 3 / 6.0
    return torch.where(a < 1.0, inner, outer)


def control_grid_shape(shape: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
    """Number of control points per axis covering an image of ``shape`` voxels.

    Parameters
    ----------
    shape : sequence of int
        Image size in array order (z, y, x).
    spacing : sequence of float
        Control-point spacing per axis in voxels, array order.

    Notes
    -----
    A spacing converted between grids of the same extent (e.g. 7 fixed voxels
    as ``7 / (189 / 94)`` working voxels) can divide the extent a hair short
    of a whole number in floating point; such ratios count as whole, so that
    both grids get the same control points.
    """
    return tuple(int(math.floor((n - 1) / s + _WHOLE_TOLERANCE)) + 4 for n, s in zip(shape, spacing))


#: Ratios of extent to spacing this close below a whole number are that number (round-off).
_WHOLE_TOLERANCE = 1e-9


def basis_matrix(
    size: int,
    samples: int,
    spacing: float,
    points: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Cubic B-spline weights of ``points`` control points at ``samples`` positions.

    The ``samples`` positions span the full-resolution extent ``[0, size - 1]``
    evenly (the corner-aligned convention of ``grid_sample(align_corners=True)``),
    so ``samples == size`` is the full-resolution image and fewer samples a
    downsampled working level of the same extent.

    Returns
    -------
    torch.Tensor
        ``[samples, points]``; row ``i`` holds the weights of every control point
        at sample ``i`` (four of them non-zero).
    """
    step = (size - 1) / (samples - 1) if samples > 1 else 0.0
    x = torch.arange(samples, dtype=torch.float64, device=device) * step
    k = torch.arange(points, dtype=torch.float64, device=device)
    t = x[:, None] / spacing - (k[None, :] - 1.0)
    return cubic_bspline(t).to(dtype)


def apply_along_axes(field: torch.Tensor, matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multiply each trailing spatial axis of ``field`` by one matrix.

    ``field`` is ``[..., n_1, ..., n_d]`` and ``matrices[i]`` is ``[m_i, n_i]``; the
    result is ``[..., m_1, ..., m_d]``. This is the separable tensor-product
    operator that maps control grids to dense fields (or, with transposed
    matrices, dense fields to control grids).
    """
    ndim = len(matrices)
    out = field
    for axis, matrix in enumerate(matrices):
        dim = out.ndim - ndim + axis
        out = torch.movedim(torch.movedim(out, dim, -1) @ matrix.transpose(0, 1), -1, dim)
    return out


class BSplineGrid:
    """A cubic B-spline control grid over a fixed image, sampled at one working level.

    Parameters
    ----------
    image_shape : sequence of int
        Full-resolution fixed image size, array order (z, y, x).
    spacing : float or sequence of float
        Control-point spacing in full-resolution voxels (one value or one per
        axis in array order).
    level_shape : sequence of int, optional
        Size of the working level the dense field is evaluated on; defaults to
        ``image_shape``. It must cover the same extent (corner-aligned).
    device, dtype
        Where and how the basis matrices live.

    Attributes
    ----------
    shape : tuple of int
        Control grid size, array order.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        spacing: float | Sequence[float],
        level_shape: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.image_shape = tuple(int(n) for n in image_shape)
        ndim = len(self.image_shape)
        if isinstance(spacing, (int, float)):
            spacing = (float(spacing),) * ndim
        self.spacing = tuple(float(s) for s in spacing)
        self.level_shape = tuple(level_shape) if level_shape is not None else self.image_shape
        self.shape = control_grid_shape(self.image_shape, self.spacing)
        self.matrices = [
            basis_matrix(n, m, s, p, dtype=dtype, device=device)
            for n, m, s, p in zip(self.image_shape, self.level_shape, self.spacing, self.shape)
        ]
        self._transposed = [m.transpose(0, 1).contiguous() for m in self.matrices]
        support = 1.0
        for matrix in self.matrices:
            support *= float(matrix.sum(dim=0).max())
        self.support = support

    @property
    def ndim(self) -> int:
        return len(self.image_shape)

    def zeros(self, batch: int = 1) -> torch.Tensor:
        """A zero control grid ``[batch, ndim, *shape]``."""
        device = self.matrices[0].device
        return torch.zeros((batch, self.ndim, *self.shape), device=device, dtype=self.matrices[0].dtype)

    def dense(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Dense field ``[B, ndim, *level_shape]`` from control coefficients ``[B, ndim, *shape]``."""
        return apply_along_axes(coefficients, self.matrices)

    def adjoint(self, field: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`dense`: ``[B, ndim, *level_shape]`` to ``[B, ndim, *shape]``."""
        return apply_along_axes(field, self._transposed)

    def refine_matrices(self, finer: "BSplineGrid") -> list[torch.Tensor]:
        """Per-axis least-squares maps from this grid's coefficients to ``finer``'s.

        The dense field of the refined coefficients is the best fit (exact when
        this spacing is an integer multiple of the finer one) of this grid's
        dense field on the full-resolution voxels.
        """
        maps = []
        for n, s_old, p_old, s_new, p_new in zip(
            self.image_shape, self.spacing, self.shape, finer.spacing, finer.shape
        ):
            old = basis_matrix(n, n, s_old, p_old, dtype=torch.float64)
            new = basis_matrix(n, n, s_new, p_new, dtype=torch.float64)
            refine = torch.linalg.pinv(new) @ old
            maps.append(refine.to(self.matrices[0]))
        return maps

    def refine(self, coefficients: torch.Tensor, finer: "BSplineGrid") -> torch.Tensor:
        """Coefficients of ``finer`` reproducing this grid's field (see :meth:`refine_matrices`)."""
        return apply_along_axes(coefficients, self.refine_matrices(finer))
