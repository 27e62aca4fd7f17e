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

Mutual information
------------------
With ``metric="mi"`` or ``"features+mi"`` the step includes the force of
Mattes mutual information (:mod:`.mutual_information`): at the working voxels
of the iteration, ``g_i = W dMI/dm_i grad m_i`` from the warped moving
intensity ``m`` (carried as one more channel of the moving level, so it is
warped with the features). Its raw size depends on the images' joint
histogram, so it is put in the feature step's units: at the first iteration
of each scale a factor per batch element is chosen that makes the mean force
magnitude over valid samples that of the feature step at the same samples
(:data:`~itk_suits.schedule.MI_STEP_SIZE` working voxels without features),
and kept for the scale. The force therefore still shrinks as the mutual
information approaches its maximum, the smoothness weights and Adam's ``eps``
keep their meaning, and a pair the features already align (the feature step
vanishes) gets no mutual information force: identity stays identity, where
the Parzen estimate alone would still pull intensities towards bin centres.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .bspline import BSplineGrid
from .channels import principal_channels
from .descent import confidence_floor, descent_step
from .mutual_information import intensity_range, mutual_information_force, to_bin_coordinates
from .sampling import Lattice, LatticeSampler, sampling_strides
from ..errors import ParameterError
from ..schedule import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_MI_BINS,
    DEFAULT_TOLERANCE,
    MI_STEP_SIZE,
    Scale,
    checked_metric,
)
from .warp import (
    central_differences,
    channels_last_table,
    identity_grid,
    interpolate_with_gradient,
    resize,
    voxel_to_normalized,
)

__all__ = [
    "DescentSettings",
    "EarlyStopping",
    "IterationInfo",
    "GridAdam",
    "smooth_control_grid",
    "smoothness_gradient",
    "level_shape",
    "BSplineDescentStep",
    "MovingLevel",
    "adam_learning_rate",
    "MultiScaleDescent",
]


@dataclass(frozen=True)
class DescentSettings:
    """Settings of the grid optimizer shared by all scales (inference and training).

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
    channels : int or None
        Feature channels kept: more are projected on the pair's leading
        principal components (see :mod:`.channels`). ``None``: all.
    samples : int or None
        Largest number of working voxels the step is computed at per iteration
        (:class:`MultiScaleDescent` only): a larger working level is thinned to a
        random strided lattice, drawn anew every iteration (see :mod:`.sampling`).
        ``None``: every voxel.
    seed : int
        Seed of the lattice offsets.
    metric : {"features", "mi", "features+mi"}
        What drives the grid (:class:`MultiScaleDescent` only): the feature
        step, the mutual information step, or the feature step plus each
        scale's :attr:`~itk_suits.schedule.Scale.mi_weight` times the mutual
        information step. ``"features"`` here: the tensor-level descent has no
        intensities unless it is given them (registration's default,
        :data:`~itk_suits.schedule.DEFAULT_METRIC`, is set where they are).
    mi_bins : int
        Histogram bins of the mutual information.
    """

    learning_rate: float = DEFAULT_LEARNING_RATE
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 0.01
    confidence: float = 0.1
    channels: int | None = None
    samples: int | None = None
    seed: int = 0
    metric: str = "features"
    mi_bins: int = DEFAULT_MI_BINS


@dataclass(frozen=True)
class EarlyStopping:
    """When a scale of :class:`MultiScaleDescent` stops before its last iteration.

    Attributes
    ----------
    tolerance : float
        A scale ends when the largest control-point movement per iteration,
        averaged over the last ``check_every`` iterations, falls below this
        fraction of Adam's full step (``learning_rate`` in voxels): the points
        have stopped travelling and only oscillate about their optimum. ``0``
        disables early stopping.
    check_every : int
        Iterations between convergence checks.
    """

    tolerance: float = DEFAULT_TOLERANCE
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

    def step(self, gradient: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One Adam update of the parameters with ``gradient`` (same shape).

        Parameters
        ----------
        gradient : torch.Tensor
            ``[B, ndim, *shape]``, like the parameters.
        active : torch.Tensor, optional
            ``[B]`` booleans: only these batch elements change; the others keep
            their coefficients exactly (``None``: all change).
        """
        self.steps += 1
        self.first.mul_(self.beta1).add_(gradient, alpha=1.0 - self.beta1)
        self.second.mul_(self.beta2).addcmul_(gradient, gradient, value=1.0 - self.beta2)
        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        denominator = (self.second / correction2).sqrt_().add_(self.eps)
        update = (self.first / denominator).mul_(self.learning_rate / correction1)
        if active is not None:
            update = torch.where(active.reshape((-1,) + (1,) * (update.ndim - 1)), update, torch.zeros_like(update))
        self.parameters.sub_(update)


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


@dataclass(frozen=True)
class MovingLevel:
    """The moving features of one scale, with their field of view, as the descent reads them.

    Attributes
    ----------
    image : torch.Tensor
        ``[B, C + i + m, *working]``: the ``C`` feature channels, then (when
        ``intensity``) the moving intensity in histogram bin coordinates, then
        (when ``mask``) the field-of-view channel; warped whole by
        ``grid_sample`` at every working voxel.
    table : torch.Tensor or None
        The same as a ``[B, N, C + m]`` channels-last table (see
        :func:`~itk_suits.core.warp.interpolate_with_gradient`), for sampled lattices.
    channels : int
        ``C``.
    mask : bool
        The last channel is the moving field of view.
    intensity : bool
        Channel ``C`` is the moving intensity (for the mutual information).
    """

    image: torch.Tensor
    table: torch.Tensor | None
    channels: int
    mask: bool = False
    intensity: bool = False


class BSplineDescentStep:
    """The paper's B-spline descent module (Fig. 1, block C) at one scale.

    A plain object, not a ``torch.nn.Module``: it holds no trainable weights.
    It owns the control grid of one scale and the working level it is evaluated
    on, and turns features and control coefficients into the descent step and
    the control-grid gradient. Everything is differentiable with respect to the
    features and the coefficients, so inference (under ``torch.no_grad``) and
    feature training share it.

    Parameters
    ----------
    image_shape : sequence of int
        Full-resolution fixed image size, array order.
    grid_spacing : float or sequence of float
        Control-point spacing in full-resolution voxels: one value, or one per
        axis in array order.
    resolution : tuple of int, optional
        Downsampling factor of the working level per axis (default: about five
        working voxels per control spacing).
    device, dtype
        Where the grid and the level live.
    samples : int, optional
        Largest number of working voxels per step; a larger level is thinned to
        random strided lattices (:attr:`sampler`, see :mod:`.sampling`).
    seed : int
        Seed of the lattice offsets.
    """

    def __init__(self, image_shape, grid_spacing: float, resolution=None, device=None, dtype=torch.float32,
                 samples: int | None = None, seed: int = 0):
        self.image_shape = tuple(int(n) for n in image_shape)
        ndim = len(self.image_shape)
        spacing = _per_axis(grid_spacing, ndim)
        factors = resolution or _auto_resolution(self.image_shape, spacing)
        self.working = level_shape(self.image_shape, factors)
        self.grid = BSplineGrid(self.image_shape, spacing, self.working, device=device, dtype=dtype)
        self._identity = None  # the working level's sampling grid, built on first use
        # full-resolution voxel displacement -> normalised offset; working-voxel step -> full-resolution voxels
        self.to_normalized = voxel_to_normalized(self.image_shape, device, dtype)
        self.to_full = torch.tensor(
            [(n - 1) / (m - 1) if m > 1 else 1.0 for n, m in zip(self.image_shape[::-1], self.working[::-1])],
            device=device, dtype=dtype,
        ).reshape((1, -1) + (1,) * ndim)
        self.sampler = LatticeSampler(self.grid, sampling_strides(self.working, samples),
                                      torch.Generator().manual_seed(seed))
        self.mi_normaliser = None  # [B]: mutual information force -> working voxels, set on first use

    def level(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` ``[B, C, *image_shape]`` resampled to the working level."""
        return resize(image, self.working)

    def moving_level(self, features: torch.Tensor | None, mask: torch.Tensor | None = None,
                     intensity: torch.Tensor | None = None) -> MovingLevel:
        """What :meth:`step` warps every iteration, built once per scale.

        Parameters
        ----------
        features : torch.Tensor or None
            Working-level moving features ``[B, C, *working]`` (``None``: no feature step).
        mask : torch.Tensor, optional
            ``[B, 1, *working]`` moving field of view; samples it leaves get no step.
        intensity : torch.Tensor, optional
            ``[B, 1, *working]`` moving intensity in histogram bin coordinates
            (:func:`~itk_suits.core.mutual_information.to_bin_coordinates`): the
            step includes the mutual information force.
        """
        image = torch.cat([t for t in (features, intensity, mask) if t is not None], dim=1)
        table = channels_last_table(image) if self.sampler.active else None
        channels = 0 if features is None else features.shape[1]
        return MovingLevel(image, table, channels, mask is not None, intensity is not None)

    def warp(self, moving: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """Working-level ``moving`` sampled through the field of ``coefficients`` at every working voxel."""
        if self._identity is None:
            self._identity = identity_grid(self.working, coefficients.device, coefficients.dtype)
        displacement = self.grid.dense(coefficients)
        sampling = self._identity + torch.movedim(displacement, 1, -1) * self.to_normalized
        return F.grid_sample(moving, sampling, mode="bilinear", padding_mode="border", align_corners=True)

    def step(
        self,
        fixed: torch.Tensor | None,
        moving: torch.Tensor | MovingLevel,
        coefficients: torch.Tensor,
        eps: float | torch.Tensor,
        fixed_valid: torch.Tensor | None = None,
        lattice: Lattice | None = None,
        fixed_intensity: torch.Tensor | None = None,
        mi_weight: float = 1.0,
        mi_bins: int = DEFAULT_MI_BINS,
    ) -> torch.Tensor:
        """Descent step ``[B, ndim, *working]`` (or ``*lattice``) in full-resolution voxels.

        The feature step (when the moving level has feature channels) plus
        ``mi_weight`` times the mutual information step (when it carries the
        intensity; see the module notes); the mutual information step alone
        when there are no features.

        Parameters
        ----------
        fixed : torch.Tensor or None
            Working-level fixed features ``[B, C, *working]`` (``None`` without features).
        moving : torch.Tensor or MovingLevel
            Working-level moving features ``[B, C, *working]`` (not yet warped),
            or :meth:`moving_level` of them (with a field of view; needed with a
            ``lattice``).
        coefficients : torch.Tensor
            Control coefficients ``[B, ndim, *grid.shape]`` in voxels.
        eps : float or torch.Tensor
            Confidence floor (see :func:`confidence_floor`).
        fixed_valid : torch.Tensor, optional
            ``[B, 1, *working]`` where the fixed features are trusted.
        lattice : Lattice, optional
            Compute the step only at these voxels (a draw of :attr:`sampler`); the
            moving features and their derivatives there come from the linear
            interpolant (:func:`~itk_suits.core.warp.interpolate_with_gradient`).
        fixed_intensity : torch.Tensor, optional
            ``[B, 1, *working]`` fixed intensity in bin coordinates (needed when
            the moving level carries the intensity).
        mi_weight : float
            Weight of the mutual information step when there are features too.
        mi_bins : int
            Histogram bins of the bin coordinates.
        """
        if isinstance(moving, torch.Tensor):
            moving = MovingLevel(moving, None, moving.shape[1])
        derivatives = None
        if lattice is None:
            warped = self.warp(moving.image, coefficients)
        else:
            fixed, fixed_valid, fixed_intensity = (None if t is None else lattice.take(t)
                                                   for t in (fixed, fixed_valid, fixed_intensity))
            shape = (fixed if fixed is not None else fixed_intensity).shape[2:]
            warped, derivatives = self._sample(moving.table, coefficients, lattice, shape)
        valid = fixed_valid
        if moving.mask:
            inside = (warped[:, -1:] > 0.999).to(warped)
            valid = inside if valid is None else valid * inside
        channels = moving.channels
        step = None
        if channels:
            step = descent_step(fixed, warped[:, :channels], eps, valid,
                                None if derivatives is None else [d[:, :channels] for d in derivatives])
        if moving.intensity:
            intensity = warped[:, channels:channels + 1]
            gradients = (central_differences(intensity) if derivatives is None
                         else [d[:, channels:channels + 1] for d in derivatives])
            weights = torch.ones_like(intensity) if valid is None else valid
            force = mutual_information_force(fixed_intensity, intensity, gradients, weights, mi_bins)
            if self.mi_normaliser is None:
                size = MI_STEP_SIZE if step is None else _mean_magnitude(step, weights)
                mean = _mean_magnitude(force, weights)
                self.mi_normaliser = torch.where(mean > 0, size / mean.clamp_min(1e-30), torch.zeros_like(mean))
            information = force * self.mi_normaliser.reshape((-1,) + (1,) * (force.ndim - 1))
            step = information if step is None else step + mi_weight * information
        return step * self.to_full

    def _sample(self, table, coefficients, lattice, lattice_shape):
        """Warped moving channels and their voxel derivatives at the lattice, ``[B, C, *lattice]`` each."""
        displacement = lattice.dense(coefficients) / self.to_full  # working voxels
        positions = lattice.coordinates + torch.movedim(displacement, 1, -1).reshape(
            displacement.shape[0], -1, displacement.shape[1])
        values, gradient = interpolate_with_gradient(table, self.working, positions)

        def image(samples):
            return torch.movedim(samples, -1, 1).reshape(samples.shape[0], -1, *lattice_shape)

        return image(values), [image(derivative) for derivative in gradient]

    def grid_gradient(self, step: torch.Tensor, coefficients: torch.Tensor, smoothness: float,
                      lattice: Lattice | None = None) -> torch.Tensor:
        """Control-grid gradient: the negated step (at every working voxel, or at ``lattice``)
        through the B-spline adjoint, per unit support, plus the smoothness penalty's gradient."""
        if lattice is None:
            gradient = self.grid.adjoint(step) / -self.grid.support
        else:
            gradient = lattice.adjoint(step) / -lattice.support
        if smoothness > 0:
            gradient = gradient + smoothness_gradient(coefficients, smoothness)
        return gradient


def adam_learning_rate(image_shape, learning_rate: float) -> torch.Tensor:
    """Adam step per component ``[ndim]`` (x, y[, z]) in voxels for a rate in normalised grid units."""
    return torch.tensor([learning_rate * (n - 1) / 2.0 for n in tuple(image_shape)[::-1]])


class MultiScaleDescent:
    """SUITS inference: multi-scale B-spline descent with the grid optimizer.

    Parameters
    ----------
    fixed_features, moving_features : torch.Tensor or None
        ``[B, C, *spatial]`` features of the fixed image and of the moving image
        resampled onto the fixed grid (full resolution); not used (may be
        ``None``) with ``settings.metric == "mi"``.
    scales : sequence of Scale
        The schedule, coarse to fine.
    settings : DescentSettings
        Optimizer settings.
    stopping : EarlyStopping
        When a scale ends early.
    fixed_mask : torch.Tensor, optional
        ``[B, 1, *spatial]`` in {0, 1}: where the fixed image is trusted.
    moving_mask : torch.Tensor, optional
        ``[B, 1, *spatial]`` in [0, 1] on the fixed grid: where the resampled
        moving features are valid (its field of view); it is warped along with
        the features.
    callback : callable, optional
        Called with an :class:`IterationInfo` after every iteration.
    scale_callback : callable, optional
        Called with a scale's log entry (see :attr:`log`) when the scale ends.
    output_shape : sequence of int, optional
        The grid (array order, same extent, corner-aligned) on which :meth:`run`
        returns the field and in whose voxels :attr:`coefficients` and
        :attr:`grid_spacing` are given, when the features lie on a coarser one
        (large images); default: the features' grid.
    fixed_intensity, moving_intensity : torch.Tensor, optional
        ``[B, 1, *spatial]`` intensities of the fixed image and of the moving
        image on the fixed grid, on the features' grid: needed when
        ``settings.metric`` uses the mutual information. Each is mapped once to
        histogram bins between its 0.5 and 99.5 percentiles (within the fixed
        mask, the moving field of view).

    Attributes
    ----------
    log : list of dict
        Per finished scale: ``scale``, ``grid_spacing``, ``control_points``,
        ``working_shape``, ``sampling_strides`` (per axis, array order: 1 where
        every voxel is used), ``iterations`` run, ``converged`` (stopped early),
        ``movement`` (last convergence measure) and ``seconds``. For a batch,
        ``iterations`` is how long the scale ran (its slowest element),
        ``converged`` whether every element stopped early and ``movement`` the
        largest of the last measures; :meth:`element_log` gives one element's.

    Notes
    -----
    Early stopping is decided per batch element: an element whose control
    points have stopped travelling is frozen (its coefficients no longer
    change) while the others continue, and the scale ends when every element
    has stopped or the iterations are spent. A batch of pairs therefore gives
    the fields of separate runs of each pair.
    """

    def __init__(
        self,
        fixed_features: torch.Tensor,
        moving_features: torch.Tensor,
        scales: Sequence[Scale],
        settings: DescentSettings = DescentSettings(),
        stopping: EarlyStopping = EarlyStopping(),
        fixed_mask: torch.Tensor | None = None,
        moving_mask: torch.Tensor | None = None,
        callback: Callable[[IterationInfo], None] | None = None,
        scale_callback: Callable[[dict], None] | None = None,
        output_shape: Sequence[int] | None = None,
        fixed_intensity: torch.Tensor | None = None,
        moving_intensity: torch.Tensor | None = None,
    ) -> None:
        checked_metric(settings.metric)
        self.fixed_bins = self.moving_bins = None
        if settings.metric != "features":
            if fixed_intensity is None or moving_intensity is None:
                raise ParameterError(f"metric={settings.metric!r} needs the fixed and moving intensities")
            self.fixed_bins = to_bin_coordinates(
                fixed_intensity, intensity_range(fixed_intensity, fixed_mask), settings.mi_bins)
            self.moving_bins = to_bin_coordinates(
                moving_intensity, intensity_range(moving_intensity, moving_mask), settings.mi_bins)
        if settings.metric == "mi":
            fixed_features = moving_features = None
        elif settings.channels is not None:
            fixed_features, moving_features, self.kept_variance = principal_channels(
                fixed_features, moving_features, settings.channels, seed=settings.seed)
        self.fixed_features = fixed_features
        self.moving_features = moving_features
        self.scales = list(scales)
        self.settings = settings
        self.stopping = stopping
        self.fixed_mask = fixed_mask
        self.moving_mask = moving_mask
        self.callback = callback
        self.scale_callback = scale_callback
        self.output_shape = tuple(output_shape) if output_shape is not None else None
        self.log: list[dict] = []
        self._elements: list[dict] = []  # per scale: "iterations" and "movement", one value per element

    @property
    def _reference(self) -> torch.Tensor:
        """A fixed-grid input: its batch size, spatial shape, device and dtype are the run's."""
        return self.fixed_features if self.fixed_features is not None else self.fixed_bins

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._reference.shape[2:])

    def run(self, dense: bool = True) -> torch.Tensor | None:
        """Register; returns the dense displacement ``[B, ndim, *output_shape]`` in output voxels.

        With ``dense=False`` only :attr:`coefficients` and :attr:`grid_spacing` are
        set and nothing is returned (the field of a large image need not exist twice).
        """
        shape = self.shape
        batch = self._reference.shape[0]
        device, dtype = self._reference.device, self._reference.dtype
        learning_rate = adam_learning_rate(shape, self.settings.learning_rate).to(dtype)
        start = time.perf_counter()
        self.log, self._elements = [], []
        module = coefficients = None
        for index, scale in enumerate(self.scales):
            finer = BSplineDescentStep(shape, scale.grid_spacing, scale.resolution, device, dtype,
                                       samples=self.settings.samples, seed=self.settings.seed + index)
            coefficients = finer.grid.zeros(batch) if module is None else module.grid.refine(coefficients, finer.grid)
            module = finer
            scale_start = time.perf_counter()
            done, movement = self._run_scale(index, scale, module, coefficients, learning_rate, start)
            self._elements.append({"iterations": done, "movement": movement})
            self.log.append({
                "scale": index,
                "grid_spacing": scale.grid_spacing if isinstance(scale.grid_spacing, (int, float))
                else list(scale.grid_spacing),
                "control_points": list(module.grid.shape),
                "working_shape": list(module.working),
                "sampling_strides": list(module.sampler.strides),
                "iterations": max(done),
                "converged": max(done) < scale.iterations,
                "movement": _largest(movement),
                "seconds": time.perf_counter() - scale_start,
            })
            if self.scale_callback is not None:
                self.scale_callback(self.log[-1])
        output = self.output_shape or shape
        # feature voxels -> output voxels, per component (x, y[, z]) and per axis (array order)
        factors = [(n - 1) / (m - 1) if m > 1 else 1.0 for n, m in zip(output, shape)]
        to_output = torch.tensor(factors[::-1], device=device, dtype=dtype).reshape((1, -1) + (1,) * len(shape))
        self.coefficients = coefficients * to_output
        self.grid_spacing = tuple(s * f for s, f in zip(module.grid.spacing, factors))
        if not dense:
            return None
        return BSplineGrid(output, self.grid_spacing, device=device, dtype=dtype).dense(self.coefficients)

    def element_log(self, element: int) -> list[dict]:
        """The :attr:`log` of batch element ``element``: its own iterations, convergence and movement.

        For a batch of one it equals :attr:`log`.
        """
        entries = []
        for entry, scale, own in zip(self.log, self.scales, self._elements):
            iterations = own["iterations"][element]
            entries.append({**entry, "iterations": iterations, "converged": iterations < scale.iterations,
                            "movement": own["movement"][element]})
        return entries

    def _run_scale(self, index, scale, module, coefficients, learning_rate, start):
        """Run one scale; returns the iterations run and the last movement measure, one per element."""
        settings, stopping = self.settings, self.stopping
        def level(image):
            return None if image is None else module.level(image)

        # with features, a scale of weight 0 follows them alone and computes no mutual information
        information = self.fixed_bins is not None and (self.fixed_features is None or scale.mi_weight > 0)
        fixed, fixed_intensity = level(self.fixed_features), level(self.fixed_bins) if information else None
        moving = module.moving_level(level(self.moving_features), level(self.moving_mask),
                                     level(self.moving_bins) if information else None)
        fixed_valid = None if self.fixed_mask is None else (level(self.fixed_mask) > 0.5).to(moving.image)
        eps = 0.0 if fixed is None else confidence_floor(fixed, settings.confidence)
        optimizer = GridAdam(coefficients, learning_rate, settings.betas, settings.adam_eps)
        sampled = module.sampler.active
        # on sampled lattices the iterates jitter about the optimum: convergence is judged on, and the
        # scale returns, their running average (Polyak averaging)
        tracked = coefficients.clone() if sampled else coefficients
        previous = tracked.clone()
        full_step = float(learning_rate.max())
        batch = coefficients.shape[0]
        done = [scale.iterations] * batch
        movement = [math.nan] * batch
        stopped = [False] * batch
        active = None  # None: every element moves; else [B] booleans
        for iteration in range(1, scale.iterations + 1):
            lattice = module.sampler.draw() if sampled else None
            step = module.step(fixed, moving, coefficients, eps, fixed_valid, lattice, fixed_intensity,
                               scale.mi_weight, settings.mi_bins)
            optimizer.step(module.grid_gradient(step, coefficients, scale.smoothness, lattice), active)
            if sampled:
                weight = _AVERAGING if active is None else _AVERAGING * active.to(tracked).reshape(
                    (-1,) + (1,) * (tracked.ndim - 1))
                tracked.lerp_(coefficients, weight)
            if iteration % stopping.check_every == 0:
                largest = (tracked - previous).abs().flatten(1).amax(dim=1).tolist()
                previous.copy_(tracked)
                for element in range(batch):
                    if not stopped[element]:
                        movement[element] = largest[element] / (stopping.check_every * full_step)
                        if movement[element] < stopping.tolerance:
                            stopped[element], done[element] = True, iteration
                if all(stopped):
                    self._notify(index, scale, iteration, _largest(movement), start)
                    break
                if any(stopped):
                    active = torch.tensor([not s for s in stopped], device=coefficients.device)
            self._notify(index, scale, iteration, _largest(movement), start)
        if sampled:
            coefficients.copy_(tracked)
        return done, movement

    def _notify(self, index, scale, iteration, movement, start):
        if self.callback is not None:
            self.callback(IterationInfo(
                scale=index, scales=len(self.scales), iteration=iteration, iterations=scale.iterations,
                grid_spacing=scale.grid_spacing, movement=movement, elapsed=time.perf_counter() - start,
            ))


def _mean_magnitude(vectors: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean length ``[B]`` of the vectors ``[B, ndim, *spatial]`` over the samples ``weights`` ``[B, 1, *spatial]`` keeps."""
    length = vectors.square().sum(dim=1, keepdim=True).sqrt() * weights
    return length.flatten(1).sum(dim=1) / weights.flatten(1).sum(dim=1).clamp_min(1.0)


#: Weight of the newest iterate in the running average of a sampled scale (an average over about
#: ten iterations).
_AVERAGING = 0.1


def _per_axis(spacing: float | Sequence[float], ndim: int) -> tuple[float, ...]:
    """A control spacing as one float per axis."""
    if isinstance(spacing, (int, float)):
        return (float(spacing),) * ndim
    return tuple(float(s) for s in spacing)


def _largest(values: Sequence[float]) -> float:
    """The largest of per-element measures, NaN when none was measured."""
    measured = [v for v in values if not math.isnan(v)]
    return max(measured) if measured else math.nan
