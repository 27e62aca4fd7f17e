"""Linear (rigid and affine) registration of feature images on one voxel grid.

The moving features ``M`` are already on the fixed grid (resampled with the
initial transform), so the stage estimates a small linear correction
``x -> L x + b`` in voxels of that grid: the fixed voxel ``x`` shows what ``M``
shows at ``L x + b``.

Parametrisation
---------------
In millimetres about the centre ``c`` of the grid, along its voxel axes:
``y = s * (x - c)`` (``s`` the voxel size per axis), mapped to ``A y + t``.
The frame is the physical one up to the image's (orthonormal) direction, so a
rotation here is a true rotation in physical space even for anisotropic
voxels. Rigid: ``A = exp(K(w / r))`` with ``K`` the skew-symmetric matrix of
one angle (2D) or an axis-angle vector (3D); affine: ``A = A0 + P / r``.
``r`` is the root-mean-square distance of the grid's voxels from its centre,
so every parameter (``w``, ``P`` and the translation ``t``) is a
displacement in mm at a typical image point and Adam's steps are balanced
between them. ``kind="affine"`` runs the rigid stage first and starts the
affine one from its result, as elastix does.

Each stage is multi-resolution: at every level the features are smoothed and
resized so that the voxel size is about ``factor`` times the smallest one
(thick slices are not reduced further), a random subset of the fixed voxels
(drawn with a seeded generator, like elastix's random sampler) is compared
with the moving features linearly interpolated at their mapped positions
(the values of ``grid_sample`` with ``align_corners=True`` and border
padding, differentiable in the parameters through autograd), and samples that map outside
the moving field of view get zero weight. The Adam step halves when the
smoothed loss stops improving and a level ends after a few halvings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ..schedule import (
    DEFAULT_LINEAR_ITERATIONS,
    DEFAULT_LINEAR_LEARNING_RATE,
    DEFAULT_LINEAR_LEVELS,
    DEFAULT_LINEAR_SAMPLES,
    LINEAR_STAGES,
)
from .mutual_information import mutual_information
from .optimizer import GridAdam
from .warp import channels_last_table, interpolate_with_gradient, resize

__all__ = [
    "negative_mutual_information",
    "LinearRegistration",
    "mean_squared_difference",
    "linear_registration",
    "rescale_voxel_matrix",
]

#: A similarity to minimise: ``(fixed [B, S, C], moving [B, S, C], weights [B, S]) -> [B]``.
Similarity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# Plateau control of one level: the EMA weight of the loss, the iterations without a
# relative improvement of _IMPROVEMENT that halve the step, and the halvings that end a level.
_SMOOTHING = 0.8
_PATIENCE = 8
_IMPROVEMENT = 1e-3
_HALVINGS = 3
# Adam's denominator floor in loss per mm of parameter: far below any real gradient.
_ADAM_EPS = 1e-12


def mean_squared_difference(fixed: torch.Tensor, moving: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean over samples of the mean squared feature difference over channels.

    Parameters
    ----------
    fixed, moving : torch.Tensor
        ``[B, S, C]`` feature samples.
    weights : torch.Tensor
        ``[B, S]`` non-negative sample weights (0: invalid sample).

    Returns
    -------
    torch.Tensor
        ``[B]``; 0 for an element without valid samples.
    """
    squared = (fixed - moving).square().mean(dim=-1)
    return (squared * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-12)


def negative_mutual_information(bins: int) -> Similarity:
    """A similarity to minimise: minus the Mattes mutual information of one channel of bin coordinates.

    The samples' only channel holds intensities in bin coordinates
    (:func:`~itk_suits.core.mutual_information.to_bin_coordinates`).
    """
    def similarity(fixed: torch.Tensor, moving: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return -mutual_information(fixed[..., 0], moving[..., 0], weights, bins)

    return similarity


@dataclass
class LinearRegistration:
    """The outcome of :func:`linear_registration`.

    Attributes
    ----------
    matrix : torch.Tensor
        ``[B, ndim, ndim + 1]`` float64: fixed voxel ``x`` (x, y[, z] order, voxels
        of the input grid) maps to ``matrix[:, :, :ndim] @ x + matrix[:, :, ndim]``
        in voxels of the moving features.
    log : list of dict
        Per stage and level: ``stage``, ``factor``, ``shape`` (array order),
        ``iterations`` and ``loss`` (smoothed, at the end; one per element), ``seconds``.
    seconds : float
        Wall time, the resolution pyramid included.
    """

    matrix: torch.Tensor
    log: list
    seconds: float


def linear_registration(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    spacing: Sequence[float],
    kind: str = "rigid",
    fixed_mask: torch.Tensor | None = None,
    moving_mask: torch.Tensor | None = None,
    levels: Sequence[float] = DEFAULT_LINEAR_LEVELS,
    iterations: int | Sequence[int] = DEFAULT_LINEAR_ITERATIONS,
    learning_rate: float = DEFAULT_LINEAR_LEARNING_RATE,
    samples: int | None = DEFAULT_LINEAR_SAMPLES,
    seed: int = 0,
    similarity: Similarity = mean_squared_difference,
) -> LinearRegistration:
    """Multi-resolution rigid or affine registration of features on one voxel grid.

    Parameters
    ----------
    fixed, moving : torch.Tensor
        ``[B, C, *spatial]`` features (2 or 3 spatial axes, each at least 2 voxels);
        ``moving`` already on the fixed grid.
    spacing : sequence of float
        Voxel size of the grid in mm, (x, y[, z]) order.
    kind : {"rigid", "affine"}
        ``"affine"`` runs the rigid stage first and refines its result.
    fixed_mask, moving_mask : torch.Tensor, optional
        ``[B, 1, *spatial]``: where the fixed features count, and the moving field
        of view (non-zero where the moving image has data).
    levels : sequence of float
        Resolution factors, coarse to fine (1: the input grid).
    iterations : int or sequence of int
        Maximum iterations per level, or one number for all.
    learning_rate : float
        Adam step per iteration in voxels of the level (its smallest voxel size).
    samples : int or None
        Random fixed voxels per iteration; levels with fewer voxels (or ``None``)
        use every voxel.
    seed : int
        Seed of the sample draws.
    similarity : callable
        ``(fixed [B, S, C], moving [B, S, C], weights [B, S]) -> [B]`` to minimise,
        differentiable in ``moving`` (e.g. ``lambda f, m, w: -mutual_information(f, m, w)``).

    Returns
    -------
    LinearRegistration
    """
    if kind not in LINEAR_STAGES:
        raise ParameterError(f"linear registration kind must be one of {LINEAR_STAGES}, not {kind!r}")
    ndim = fixed.ndim - 2
    counts = [int(iterations)] * len(levels) if isinstance(iterations, int) else [int(n) for n in iterations]
    frame = _Frame(fixed.shape[2:], spacing, fixed.device)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    batch = fixed.shape[0]
    matrix = torch.eye(ndim, dtype=torch.float64, device=fixed.device).repeat(batch, 1, 1)
    translation = torch.zeros(batch, ndim, dtype=torch.float64, device=fixed.device)
    log = []
    began = time.perf_counter()
    pyramid = _pyramid(fixed, moving, fixed_mask, moving_mask, frame, levels)
    with torch.enable_grad():
        for stage in LINEAR_STAGES[: LINEAR_STAGES.index(kind) + 1]:
            model = _Rigid(ndim, frame.radius) if stage == "rigid" else _Affine(matrix, frame.radius)
            parameters = model.start(translation)
            for factor, count, level in zip(levels, counts, pyramid):
                start = time.perf_counter()
                steps, losses = _optimise(model, parameters, level, count, learning_rate * level.voxel_mm,
                                          samples, generator, similarity)
                log.append({"stage": stage, "factor": float(factor), "shape": list(level.shape),
                            "iterations": steps, "loss": losses, "seconds": time.perf_counter() - start})
            matrix, translation = (value.detach() for value in model(parameters))
    return LinearRegistration(matrix=frame.voxel_matrix(matrix, translation), log=log,
                              seconds=time.perf_counter() - began)


def rescale_voxel_matrix(matrix: torch.Tensor, shape: Sequence[int], new_shape: Sequence[int]) -> torch.Tensor:
    """The voxel matrix of :func:`linear_registration` on another grid of the same (corner-aligned) extent.

    Parameters
    ----------
    matrix : torch.Tensor
        ``[B, ndim, ndim + 1]`` on a grid of array shape ``shape``.
    shape, new_shape : sequence of int
        Array shapes ([z,] y, x) of the two grids; voxel ``0`` and ``n - 1`` of
        each axis coincide.

    Returns
    -------
    torch.Tensor
        ``[B, ndim, ndim + 1]`` mapping voxels of the new grid the same way.
    """
    ratio = [(m - 1) / (n - 1) for n, m in zip(shape[::-1], new_shape[::-1])]
    scale = torch.tensor(ratio, dtype=matrix.dtype, device=matrix.device)
    linear = scale[:, None] * matrix[..., :-1] / scale[None, :]
    return torch.cat([linear, (scale * matrix[..., -1])[..., None]], dim=-1)


class _Frame:
    """The millimetre frame about the grid centre: voxel <-> mm about the centre."""

    def __init__(self, shape: Sequence[int], spacing: Sequence[float], device) -> None:
        self.shape = tuple(int(n) for n in shape)
        sizes = torch.tensor([float(n) for n in shape[::-1]], dtype=torch.float64, device=device)
        self.spacing = torch.tensor([float(s) for s in spacing], dtype=torch.float64, device=device)
        self.centre = (sizes - 1) / 2
        self.half_extent = self.centre * self.spacing  # mm from the centre to voxel n - 1
        # root-mean-square distance of the voxels from the centre, mm (the parameter scale)
        self.radius = float(torch.sqrt(((sizes.square() - 1) / 12 * self.spacing.square()).sum()).clamp(min=1.0))

    def voxel_matrix(self, matrix: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """``[B, ndim, ndim + 1]`` voxel mapping of ``y -> matrix @ y + translation`` (mm about the centre)."""
        s, c = self.spacing, self.centre
        linear = matrix * s[None, None, :] / s[None, :, None]
        offset = c - linear @ c + translation / s
        return torch.cat([linear, offset[..., None]], dim=-1)


class _Rigid:
    """``A = exp(K(w / r))``, ``w`` one angle (2D) or an axis-angle vector (3D) in mm at radius ``r``.

    Parameters ``[B, rotations + ndim]``: ``w``, then the translation in mm.
    """

    def __init__(self, ndim: int, radius: float) -> None:
        self.ndim, self.radius = ndim, radius
        self.rotations = 1 if ndim == 2 else 3

    def start(self, translation: torch.Tensor) -> torch.Tensor:
        rotation = torch.zeros(translation.shape[0], self.rotations, dtype=translation.dtype,
                               device=translation.device)
        return torch.cat([rotation, translation], dim=1).requires_grad_(True)

    def __call__(self, parameters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = parameters[:, : self.rotations] / self.radius
        zero = torch.zeros_like(angles[:, 0])
        if self.ndim == 2:
            rows = [[zero, -angles[:, 0]], [angles[:, 0], zero]]
        else:
            x, y, z = angles.unbind(dim=1)
            rows = [[zero, -z, y], [z, zero, -x], [-y, x, zero]]
        skew = torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
        return torch.linalg.matrix_exp(skew), parameters[:, self.rotations:]


class _Affine:
    """``A = A0 + P / r``, ``P`` in mm at radius ``r``.

    Parameters ``[B, ndim * ndim + ndim]``: ``P`` row by row, then the translation in mm.
    """

    def __init__(self, matrix: torch.Tensor, radius: float) -> None:
        self.matrix, self.radius = matrix, radius
        self.ndim = matrix.shape[-1]

    def start(self, translation: torch.Tensor) -> torch.Tensor:
        change = torch.zeros(translation.shape[0], self.ndim * self.ndim, dtype=translation.dtype,
                             device=translation.device)
        return torch.cat([change, translation], dim=1).requires_grad_(True)

    def __call__(self, parameters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.ndim * self.ndim
        change = parameters[:, :count].reshape(-1, self.ndim, self.ndim)
        return self.matrix + change / self.radius, parameters[:, count:]


def _level_shape(shape: Sequence[int], spacing: Sequence[float], factor: float) -> tuple[int, ...]:
    """Array shape of the level whose voxel size is about ``factor`` times the smallest one.

    ``spacing`` in array order; axes already coarser than that keep their voxels.
    """
    target = factor * min(spacing)
    return tuple(max(2, int(round((n - 1) * s / target)) + 1) if s < target else int(n)
                 for n, s in zip(shape, spacing))


class _Level:
    """The features of one resolution level and the fixed voxels that may be sampled.

    ``moving`` carries the moving field of view as its last channel when there is one.
    """

    def __init__(self, fixed, moving, fixed_mask, has_field_of_view: bool, frame: _Frame, spacing) -> None:
        self.shape = tuple(fixed.shape[2:])
        self.fixed, self.moving, self.fixed_mask = fixed, moving, fixed_mask
        self.has_field_of_view = has_field_of_view
        self.frame = frame
        self.voxel_mm = min(s * (n - 1) / (m - 1) for s, n, m in zip(spacing, frame.shape, self.shape))
        self._table = channels_last_table(fixed)  # [B, N, C]
        self._moving_table = channels_last_table(moving)  # [B, N, C (+ 1)]
        # voxels from the centre to the last voxel, (x, y[, z])
        self._half_size = torch.tensor([(n - 1) / 2 for n in self.shape[::-1]], dtype=torch.float64,
                                       device=fixed.device)
        self.candidates = None if fixed_mask is None else \
            [torch.nonzero(valid).squeeze(1) for valid in fixed_mask.flatten(1) > 0.5]

    def coarser(self, shape: Sequence[int], spacing) -> "_Level":
        """The level of ``shape`` resized from this one."""
        mask = None if self.fixed_mask is None else resize(self.fixed_mask, shape)
        return _Level(resize(self.fixed, shape), resize(self.moving, shape), mask, self.has_field_of_view,
                      self.frame, spacing)

    def draw(self, samples: int | None, generator: torch.Generator) -> torch.Tensor:
        """``[B, S]`` indices of level voxels: every (valid) voxel, or ``samples`` drawn at random."""
        count = self._table.shape[1]
        batch = self.fixed.shape[0]
        device = self.fixed.device
        if self.candidates is None:
            if samples is None or count <= samples:
                return torch.arange(count, device=device).expand(batch, count)
            return torch.randint(count, (batch, samples), generator=generator).to(device)
        drawn = []
        size = samples if samples is not None else max(len(c) for c in self.candidates)
        for candidates in self.candidates:
            if len(candidates) == 0:  # nothing valid: any voxel, the weights will not count it
                candidates = torch.zeros(1, dtype=torch.long, device=device)
            drawn.append(candidates[torch.randint(len(candidates), (size,), generator=generator).to(device)])
        return torch.stack(drawn)

    def positions(self, index: torch.Tensor) -> torch.Tensor:
        """``[B, S, ndim]`` mm positions about the centre (x, y[, z]) of the level voxels ``index``."""
        coordinates = []
        for n in self.shape[::-1]:  # x is the fastest axis
            coordinates.append(index % n)
            index = torch.div(index, n, rounding_mode="floor")
        return (torch.stack(coordinates, dim=-1) / self._half_size - 1.0) * self.frame.half_extent

    def compare(self, model, parameters: torch.Tensor, index: torch.Tensor, similarity: Similarity) -> torch.Tensor:
        """The similarity ``[B]`` of the fixed voxels ``index`` and the moving features at their mapped points."""
        matrix, translation = model(parameters)
        mapped = self.positions(index) @ matrix.transpose(1, 2) + translation[:, None, :]
        voxels = ((mapped / self.frame.half_extent + 1.0) * self._half_size).to(self.moving.dtype)
        sampled = _Interpolation.apply(self._moving_table, self.shape, voxels)  # [B, S, C (+ 1)]
        with torch.no_grad():
            limit = torch.tensor([n - 1.0 for n in self.shape[::-1]], dtype=voxels.dtype, device=voxels.device)
            weights = ((voxels >= 0) & (voxels <= limit)).all(dim=-1).to(sampled)
            if self.has_field_of_view:
                weights = weights * (sampled[..., -1] > 0.5).to(sampled)
        moving = sampled[..., :-1] if self.has_field_of_view else sampled
        fixed = torch.stack([table.index_select(0, i) for table, i in zip(self._table, index)]).to(moving)
        return similarity(fixed, moving, weights)


class _Interpolation(torch.autograd.Function):
    """Linear interpolation of a channels-last table at points, differentiable in the points.

    The values of ``grid_sample(..., padding_mode="border", align_corners=True)``
    and the exact derivative of that interpolant
    (:func:`~itk_suits.core.warp.interpolate_with_gradient`): eight rows per
    point instead of eight reads per channel, several times faster than
    ``grid_sample`` and its backward pass on large 3D feature images.
    """

    @staticmethod
    def forward(ctx, table, shape, positions):
        values, gradient = interpolate_with_gradient(table, shape, positions)
        ctx.save_for_backward(torch.stack(gradient, dim=-1))  # [B, S, C, ndim]
        return values

    @staticmethod
    def backward(ctx, upstream):
        (gradient,) = ctx.saved_tensors
        return None, None, (upstream[..., None] * gradient).sum(dim=2)


def _pyramid(fixed, moving, fixed_mask, moving_mask, frame: _Frame, factors: Sequence[float]) -> list[_Level]:
    """The levels of ``factors``, each resized from the next finer one (the finest from the input)."""
    spacing = frame.spacing.tolist()[::-1]  # array order
    if moving_mask is not None:
        moving = torch.cat([moving, moving_mask.to(moving)], dim=1)
    finest = _Level(fixed, moving, None if fixed_mask is None else fixed_mask.to(fixed), moving_mask is not None,
                    frame, spacing)
    shapes = [_level_shape(frame.shape, spacing, float(f)) for f in factors]
    built = {frame.shape: finest}
    for shape in sorted(set(shapes), key=math.prod, reverse=True):
        if shape not in built:
            finer = min((level for level in built.values() if all(a >= b for a, b in zip(level.shape, shape))),
                        key=lambda level: math.prod(level.shape))
            built[shape] = finer.coarser(shape, spacing)
    return [built[shape] for shape in shapes]


def _optimise(model, parameters, level: _Level, iterations: int, step_mm: float, samples, generator,
              similarity) -> tuple[list, list]:
    """Adam on ``parameters`` ``[B, P]`` (in place) at one level.

    Each element's step halves when its smoothed loss has not improved for
    :data:`_PATIENCE` iterations, and the element stops after
    :data:`_HALVINGS` halvings. Returns the iterations run and the final
    smoothed loss, one per element.
    """
    batch = parameters.shape[0]
    optimizer = GridAdam(parameters.data, torch.ones(parameters.shape[1]), eps=_ADAM_EPS)
    rates = torch.full((batch, 1), step_mm, dtype=parameters.dtype, device=parameters.device)
    optimizer.learning_rate = rates
    smoothed, best = [math.nan] * batch, [math.nan] * batch
    waited, halvings, steps = [0] * batch, [0] * batch, [0] * batch
    active = torch.ones(batch, dtype=torch.bool)
    for _ in range(iterations):
        if not bool(active.any()):
            break
        parameters.grad = None
        loss = level.compare(model, parameters, level.draw(samples, generator), similarity)
        loss.sum().backward()
        optimizer.step(parameters.grad, active.to(parameters.device))
        for b, value in enumerate(loss.detach().tolist()):
            if not active[b]:
                continue
            steps[b] += 1
            smoothed[b] = value if steps[b] == 1 else _SMOOTHING * smoothed[b] + (1 - _SMOOTHING) * value
            if steps[b] == 1 or smoothed[b] < best[b] - _IMPROVEMENT * abs(best[b]):
                best[b], waited[b] = smoothed[b], 0
                continue
            waited[b] += 1
            if waited[b] >= _PATIENCE:
                waited[b], halvings[b] = 0, halvings[b] + 1
                rates[b] *= 0.5
                active[b] = halvings[b] <= _HALVINGS
    return steps, smoothed
