"""The grid optimizer: Adam on B-spline control points driven by descent steps.

Units
-----
Control coefficients are stored in voxels of the full-resolution fixed grid.
The learning rate is given, as in the paper, in normalised grid units (the
[-1, 1] extent of each axis): ``0.005`` moves a control point by about
``0.005 * (N - 1) / 2`` voxels per iteration along an axis of ``N`` voxels.
Adam normalises the gradient, so this is the step size whatever the
magnitude of the descent step; its ``eps`` (in voxels of mean step) keeps
control points whose support sees almost no image evidence (beyond the image
edge, in flat background) from running away at full speed.

The gradient of the control grid is the negated descent step pulled back
through the B-spline adjoint, divided by the support of one control point
(so it is the support-weighted mean step, in voxels), plus the gradient of
the smoothness penalty ``w / 2 * ||c - S c||**2`` on the control
coefficients ``c`` (voxels), ``S`` a separable [1, 2, 1] / 4 smoothing over
neighbouring control points. The penalty is zero for affine fields and
strongest for checkerboard patterns, the source of folding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .bspline import BSplineGrid
from .descent import confidence_floor, descent_step
from .warp import identity_grid, resize, voxel_to_normalized

__all__ = [
    "Scale",
    "DescentSettings",
    "IterationInfo",
    "GridAdam",
    "smooth_control_grid",
    "smoothness_gradient",
    "level_shape",
    "MultiScaleDescent",
]


@dataclass(frozen=True)
class Scale:
    """One stage of the multi-scale schedule.

    Attributes
    ----------
    grid_spacing : float
        Control-point spacing in full-resolution voxels.
    iterations : int
        Maximum number of descent iterations.
    smoothness : float
        Weight ``w`` of the smoothness penalty (dimensionless: penalty gradient
        in voxels per voxel of deviation).
    resolution : tuple of int or None
        Downsampling factor of the working level per axis (array order);
        ``None`` picks about five working voxels per control spacing.
    """

    grid_spacing: float
    iterations: int
    smoothness: float
    resolution: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DescentSettings:
    """Settings of the grid optimizer shared by all scales.

    Attributes
    ----------
    learning_rate : float
        Adam step in normalised [-1, 1] grid units per iteration.
    betas : tuple of float
        Adam moment decay rates.
    adam_eps : float
        Adam denominator floor in voxels of mean descent step.
    confidence : float
        Confidence floor of the descent step as a fraction of the mean squared
        fixed-feature gradient norm (see :func:`confidence_floor`).
    tolerance : float
        Early stopping: a scale ends when the largest control-point movement per
        iteration, averaged over the last ``check_every`` iterations, falls below
        this fraction of Adam's full step (``learning_rate`` in voxels): the
        points have stopped travelling and only oscillate about their optimum.
        ``0`` disables early stopping.
    check_every : int
        Iterations between convergence checks.
    """

    learning_rate: float = 0.005
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 0.01
    confidence: float = 0.1
    tolerance: float = 0.1
    check_every: int = 10


@dataclass
class IterationInfo:
    """What an iteration observer receives."""

    scale: int
    scales: int
    iteration: int
    iterations: int
    grid_spacing: float
    movement: float = math.nan  # fraction of the full Adam step per iteration at the last check
    elapsed: float = 0.0  # seconds since the start of the run


class GridAdam:
    """Adam on a control grid with a per-component learning rate in voxels.

    Parameters
    ----------
    parameters : torch.Tensor
        ``[B, ndim, *shape]`` control coefficients, updated in place.
    learning_rate : torch.Tensor
        ``[ndim]`` step size in voxels per component.
    betas, eps
        Adam settings; ``eps`` in gradient units (voxels).
    """

    def __init__(self, parameters: torch.Tensor, learning_rate: torch.Tensor, betas=(0.9, 0.999), eps=0.01):
        self.parameters = parameters
        shape = (1, -1) + (1,) * (parameters.ndim - 2)
        self.learning_rate = learning_rate.reshape(shape).to(parameters)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.first = torch.zeros_like(parameters)
        self.second = torch.zeros_like(parameters)
        self.steps = 0

    def step(self, gradient: torch.Tensor) -> None:
        """One Adam update of the parameters with ``gradient`` (same shape)."""
        self.steps += 1
        self.first.mul_(self.beta1).add_(gradient, alpha=1.0 - self.beta1)
        self.second.mul_(self.beta2).addcmul_(gradient, gradient, value=1.0 - self.beta2)
        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        denominator = (self.second / correction2).sqrt_().add_(self.eps)
        update = self.first / denominator
        self.parameters.sub_(update.mul_(self.learning_rate / correction1))


def smooth_control_grid(coefficients: torch.Tensor) -> torch.Tensor:
    """Separable [1, 2, 1] / 4 smoothing of ``[B, ndim, *shape]`` over control points."""
    ndim = coefficients.ndim - 2
    out = coefficients
    for axis in range(ndim):
        dim = 2 + axis
        pad = [0, 0] * ndim
        pad[2 * (ndim - 1 - axis)] = 1
        pad[2 * (ndim - 1 - axis) + 1] = 1
        padded = F.pad(out, pad, mode="replicate")
        n = out.shape[dim]
        out = 0.25 * padded.narrow(dim, 0, n) + 0.5 * padded.narrow(dim, 1, n) + 0.25 * padded.narrow(dim, 2, n)
    return out


def smoothness_gradient(coefficients: torch.Tensor, weight: float) -> torch.Tensor:
    """Gradient of ``weight / 2 * ||c - S c||**2`` (``S`` treated as symmetric)."""
    deviation = coefficients - smooth_control_grid(coefficients)
    return weight * (deviation - smooth_control_grid(deviation))


def level_shape(shape: Sequence[int], factors: Sequence[int]) -> tuple[int, ...]:
    """Size of a working level covering ``shape`` with downsampling ``factors``."""
    return tuple(max(2, int(round((n - 1) / f)) + 1) if n > 1 else 1 for n, f in zip(shape, factors))


def _auto_resolution(shape: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
    """About five working voxels per control spacing, never fewer than eight voxels per axis."""
    return tuple(max(1, min(int(s // 5), (n - 1) // 7)) for n, s in zip(shape, spacing))


class MultiScaleDescent:
    """SUITS inference: multi-scale B-spline descent with the grid optimizer.

    Parameters
    ----------
    fixed_features, moving_features : torch.Tensor
        ``[B, C, *spatial]`` features of the fixed image and of the moving image
        resampled onto the fixed grid (full resolution).
    scales : sequence of Scale
        The schedule, coarse to fine.
    settings : DescentSettings
        Optimizer settings.
    fixed_mask : torch.Tensor, optional
        ``[B, 1, *spatial]`` in {0, 1}: where the fixed image is trusted.
    moving_mask : torch.Tensor, optional
        ``[B, 1, *spatial]`` in [0, 1] on the fixed grid: where the resampled
        moving features are valid (its field of view); it is warped along with
        the features.
    callback : callable, optional
        Called with an :class:`IterationInfo` after every iteration.
    """

    def __init__(
        self,
        fixed_features: torch.Tensor,
        moving_features: torch.Tensor,
        scales: Sequence[Scale],
        settings: DescentSettings = DescentSettings(),
        fixed_mask: torch.Tensor | None = None,
        moving_mask: torch.Tensor | None = None,
        callback: Callable[[IterationInfo], None] | None = None,
    ) -> None:
        self.fixed_features = fixed_features
        self.moving_features = moving_features
        self.scales = list(scales)
        self.settings = settings
        self.fixed_mask = fixed_mask
        self.moving_mask = moving_mask
        self.callback = callback
        self.log: list[dict] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.fixed_features.shape[2:])

    def run(self) -> torch.Tensor:
        """Register; returns the dense displacement ``[B, ndim, *spatial]`` in voxels."""
        shape = self.shape
        ndim = len(shape)
        batch = self.fixed_features.shape[0]
        device, dtype = self.fixed_features.device, self.fixed_features.dtype
        # Adam's step per component: normalised units times half the extent in voxels.
        half_extent = torch.tensor([(n - 1) / 2.0 for n in shape[::-1]], dtype=dtype)
        learning_rate = self.settings.learning_rate * half_extent
        start = time.perf_counter()
        grid = coefficients = None
        for index, scale in enumerate(self.scales):
            spacing = (float(scale.grid_spacing),) * ndim
            factors = scale.resolution or _auto_resolution(shape, spacing)
            working = level_shape(shape, factors)
            finer = BSplineGrid(shape, spacing, working, device=device, dtype=dtype)
            coefficients = finer.zeros(batch) if grid is None else grid.refine(coefficients, finer)
            grid = finer
            scale_start = time.perf_counter()
            done, movement = self._run_scale(index, scale, grid, coefficients, working, learning_rate, start)
            self.log.append({
                "scale": index,
                "grid_spacing": scale.grid_spacing,
                "control_points": list(grid.shape),
                "working_shape": list(working),
                "iterations": done,
                "converged": done < scale.iterations,
                "movement": movement,
                "seconds": time.perf_counter() - scale_start,
            })
        full = BSplineGrid(shape, grid.spacing, device=device, dtype=dtype)
        return full.dense(coefficients)

    def _run_scale(self, index, scale, grid, coefficients, working, learning_rate, start):
        settings = self.settings
        fixed = resize(self.fixed_features, working)
        moving = resize(self.moving_features, working)
        channels = moving.shape[1]
        if self.moving_mask is not None:
            moving = torch.cat([moving, resize(self.moving_mask, working)], dim=1)
        fixed_valid = None if self.fixed_mask is None else (resize(self.fixed_mask, working) > 0.5).to(fixed)
        eps = confidence_floor(fixed, settings.confidence)
        identity = identity_grid(working, fixed.device, fixed.dtype)
        # voxel displacement (full resolution) -> normalised offset, and working-voxel step -> full-res voxels
        to_normalized = voxel_to_normalized(self.shape, fixed.device, fixed.dtype)
        to_full = torch.tensor(
            [(n - 1) / (m - 1) if m > 1 else 1.0 for n, m in zip(self.shape[::-1], working[::-1])],
            device=fixed.device, dtype=fixed.dtype,
        ).reshape((1, -1) + (1,) * len(working))
        optimizer = GridAdam(coefficients, learning_rate, settings.betas, settings.adam_eps)
        previous = coefficients.clone()
        full_step = float(learning_rate.max())
        movement = math.nan
        iteration = 0
        for iteration in range(1, scale.iterations + 1):
            displacement = grid.dense(coefficients)
            sampling = identity + torch.movedim(displacement, 1, -1) * to_normalized
            warped = F.grid_sample(moving, sampling, mode="bilinear", padding_mode="border", align_corners=True)
            valid = fixed_valid
            if self.moving_mask is not None:
                moving_valid = (warped[:, channels:] > 0.999).to(fixed)
                warped = warped[:, :channels]
                valid = moving_valid if valid is None else valid * moving_valid
            step = descent_step(fixed, warped, eps, valid) * to_full
            gradient = grid.adjoint(step).div_(-grid.support)
            if scale.smoothness > 0:
                gradient += smoothness_gradient(coefficients, scale.smoothness)
            optimizer.step(gradient)
            if iteration % settings.check_every == 0:
                movement = float((coefficients - previous).abs().max()) / (settings.check_every * full_step)
                previous.copy_(coefficients)
                if movement < settings.tolerance:
                    self._notify(index, scale, iteration, movement, start)
                    break
            self._notify(index, scale, iteration, movement, start)
        return iteration, movement

    def _notify(self, index, scale, iteration, movement, start):
        if self.callback is not None:
            self.callback(IterationInfo(
                scale=index, scales=len(self.scales), iteration=iteration, iterations=scale.iterations,
                grid_spacing=scale.grid_spacing, movement=movement, elapsed=time.perf_counter() - start,
            ))
