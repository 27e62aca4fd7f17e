"""Warping images with voxel displacement fields, and image derivatives.

Displacements are ``[B, ndim, *spatial]`` in voxel units, components in
(x, y[, z]) order; the fixed voxel ``p`` samples the moving image at ``p + u(p)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "identity_grid",
    "voxel_to_normalized",
    "warp",
    "central_differences",
    "central_difference",
    "spatial_gradient",
    "resize",
    "invert_displacement",
    "channels_last_table",
    "interpolate_with_gradient",
]


def identity_grid(shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised sampling grid of the identity, ``[1, *shape, ndim]`` in (x, y[, z]) order."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) if n > 1
            else torch.zeros(1, device=device, dtype=dtype) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)[None]


def voxel_to_normalized(shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Factors turning voxel displacements into normalised ones, ``[ndim]`` in (x, y[, z]) order."""
    factors = [2.0 / (n - 1) if n > 1 else 0.0 for n in shape[::-1]]
    return torch.tensor(factors, device=device, dtype=dtype)


def warp(
    image: torch.Tensor,
    displacement: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "border",
    grid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample ``image`` at ``p + displacement(p)``.

    Parameters
    ----------
    image : torch.Tensor
        ``[B, C, *spatial]`` on the same grid as the displacement.
    displacement : torch.Tensor
        ``[B, ndim, *spatial]`` in voxels, components (x, y[, z]).
    mode, padding_mode
        As in :func:`torch.nn.functional.grid_sample` (``"bilinear"`` is
        trilinear in 3D).
    grid : torch.Tensor, optional
        A precomputed :func:`identity_grid` of the spatial shape (saves an
        allocation in loops).

    Returns
    -------
    torch.Tensor
        ``[B, C, *spatial]``.
    """
    shape = image.shape[2:]
    if grid is None:
        grid = identity_grid(shape, image.device, image.dtype)
    scale = voxel_to_normalized(shape, image.device, image.dtype)
    offset = torch.movedim(displacement, 1, -1) * scale
    return F.grid_sample(image, grid + offset, mode=mode, padding_mode=padding_mode, align_corners=True)


def central_differences(image: torch.Tensor) -> list[torch.Tensor]:
    """Central differences in voxel units, half one-sided differences at the border.

    The border values equal central differences of the image extended by
    replication. Without autograd the differences are written into
    preallocated outputs (this runs in the descent loop); with autograd the
    same values come from differentiable slicing.

    Parameters
    ----------
    image : torch.Tensor
        ``[B, C, *spatial]`` with 2 or 3 spatial axes, each at least 2 voxels.

    Returns
    -------
    list of torch.Tensor
        ``ndim`` tensors ``[B, C, *spatial]``, derivatives along x, y[, z] in that order.
    """
    return [central_difference(image, dim) for dim in range(image.ndim - 1, 1, -1)]  # x is the last array axis


def central_difference(image: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`central_differences` along one array dimension ``dim`` (2 is the first spatial axis)."""
    n = image.shape[dim]
    if n < 2:
        return torch.zeros_like(image)
    if torch.is_grad_enabled() and image.requires_grad:
        forward = torch.cat([image.narrow(dim, 1, n - 1), image.narrow(dim, n - 1, 1)], dim=dim)
        backward = torch.cat([image.narrow(dim, 0, 1), image.narrow(dim, 0, n - 1)], dim=dim)
        return (forward - backward) * 0.5
    out = torch.empty_like(image)
    if n > 2:
        torch.sub(image.narrow(dim, 2, n - 2), image.narrow(dim, 0, n - 2), out=out.narrow(dim, 1, n - 2))
    torch.sub(image.narrow(dim, 1, 1), image.narrow(dim, 0, 1), out=out.narrow(dim, 0, 1))
    torch.sub(image.narrow(dim, n - 1, 1), image.narrow(dim, n - 2, 1), out=out.narrow(dim, n - 1, 1))
    return out.mul_(0.5)


def spatial_gradient(image: torch.Tensor) -> torch.Tensor:
    """:func:`central_differences` stacked: ``[B, C, ndim, *spatial]``, components (x, y[, z])."""
    return torch.stack(central_differences(image), dim=2)


def resize(image: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Resample ``[B, C, *spatial]`` to ``shape`` over the same (corner-aligned) extent.

    Downsampling averages first (area pooling to the nearest integer factor)
    so that coarse levels do not alias.
    """
    shape = tuple(int(n) for n in shape)
    if tuple(image.shape[2:]) == shape:
        return image
    factors = [max(1, int(n // m)) for n, m in zip(image.shape[2:], shape)]
    if any(f > 1 for f in factors):
        image = _box_smooth(image, factors)
    mode = "bilinear" if image.ndim == 4 else "trilinear"
    return F.interpolate(image, size=shape, mode=mode, align_corners=True)


def _box_smooth(image: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Separable box filter of width ``factor`` per axis, same size output."""
    ndim = image.ndim - 2
    out = image
    for axis, factor in enumerate(factors):
        if factor <= 1:
            continue
        dim = 2 + axis
        left = (factor - 1) // 2
        right = factor - 1 - left
        pad = [0, 0] * ndim
        pad[2 * (ndim - 1 - axis)] = left
        pad[2 * (ndim - 1 - axis) + 1] = right
        padded = F.pad(out, pad, mode="replicate")
        cumulative = torch.cumsum(padded, dim=dim)
        zero = torch.zeros_like(cumulative.narrow(dim, 0, 1))
        cumulative = torch.cat([zero, cumulative], dim=dim)
        n = out.shape[dim]
        out = (cumulative.narrow(dim, factor, n) - cumulative.narrow(dim, 0, n)) / factor
    return out


def invert_displacement(displacement: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """Inverse of a smooth voxel displacement field by fixed-point iteration.

    Solves ``v(q) = -u(q + v(q))`` so that ``p + u(p) = q`` implies
    ``q + v(q) = p``; converges for fields whose Jacobian stays well away from
    folding (contraction ``|grad u| < 1``).

    Parameters
    ----------
    displacement : torch.Tensor
        ``[B, ndim, *spatial]`` in voxels.
    iterations : int
        Fixed-point iterations.
    """
    grid = identity_grid(displacement.shape[2:], displacement.device, displacement.dtype)
    inverse = -displacement
    for _ in range(iterations):
        inverse = -warp(displacement, inverse, grid=grid)
    return inverse


def channels_last_table(image: torch.Tensor) -> torch.Tensor:
    """``[B, C, *spatial]`` as a contiguous ``[B, N, C]`` table, one row of channels per voxel.

    :func:`interpolate_with_gradient` reads whole rows, so each corner of an
    interpolation costs one memory access instead of one per channel.
    """
    batch, channels = image.shape[:2]
    return torch.movedim(image, 1, -1).reshape(batch, -1, channels).contiguous()


def interpolate_with_gradient(
    table: torch.Tensor, shape: Sequence[int], positions: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Linear interpolation (bi- or trilinear) of an image and its gradient at scattered points.

    The values equal ``grid_sample(..., mode="bilinear", padding_mode="border",
    align_corners=True)``; the gradient is the exact derivative of the same
    interpolant (within the voxel cell that holds the point).

    Parameters
    ----------
    table : torch.Tensor
        ``[B, N, C]`` image as a :func:`channels_last_table` of a grid of ``shape``.
    shape : sequence of int
        The grid's spatial size, array order (z, y, x); each axis at least 2.
    positions : torch.Tensor
        ``[B, S, ndim]`` points in voxel coordinates of the grid, components (x, y[, z]);
        points outside are clamped to the border.

    Returns
    -------
    values : torch.Tensor
        ``[B, S, C]``.
    gradient : list of torch.Tensor
        ``ndim`` tensors ``[B, S, C]``: derivatives along x, y[, z] in voxels (zero
        across the border, where the clamped interpolant is flat).
    """
    batch, voxels, channels = table.shape
    ndim = len(shape)
    sizes = torch.tensor([float(n) for n in shape[::-1]], device=positions.device, dtype=positions.dtype)
    clamped = torch.minimum(positions.clamp(min=0.0), sizes - 1.0)
    inside = (positions >= 0) & (positions <= sizes - 1.0)
    base = torch.minimum(clamped.floor(), sizes - 2.0)
    fraction = clamped - base
    base = base.long()
    strides = [1]
    for n in shape[::-1][:-1]:
        strides.append(strides[-1] * int(n))
    origin = sum(base[..., axis] * strides[axis] for axis in range(ndim))
    origin = origin + (torch.arange(batch, device=table.device) * voxels)[:, None]
    rows = table.reshape(batch * voxels, channels)
    # the 2**ndim corner values, corner bits in (x, y[, z]) order
    corners = []
    for corner in range(2**ndim):
        index = origin + sum(strides[axis] for axis in range(ndim) if (corner >> axis) & 1)
        corners.append(rows.index_select(0, index.reshape(-1)).reshape(batch, -1, channels))
    # separable interpolation, one axis at a time: each pass halves the corners, interpolates the
    # derivatives found so far, and adds the derivative along its own axis
    derivatives = [[] for _ in corners]
    for axis in range(ndim):
        weight = fraction[..., axis, None]
        merged, merged_derivatives = [], []
        for low, high, low_d, high_d in zip(corners[0::2], corners[1::2], derivatives[0::2], derivatives[1::2]):
            merged.append(torch.lerp(low, high, weight))
            merged_derivatives.append([torch.lerp(a, b, weight) for a, b in zip(low_d, high_d)] + [high - low])
        corners, derivatives = merged, merged_derivatives
    values, gradient = corners[0], derivatives[0]
    for axis in range(ndim):
        gradient[axis].mul_(inside[..., axis, None].to(values))
    return values, gradient

