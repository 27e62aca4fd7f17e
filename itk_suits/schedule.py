"""The multi-scale schedule and its defaults: the one place they are written.

Registration, feature training and the command line all take their grid
spacings, iterations, smoothness weights, learning rate and early-stopping
tolerance from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .checks import checked_number, per_scale
from .errors import ParameterError

__all__ = [
    "Scale",
    "DEFAULT_GRID_SPACINGS",
    "DEFAULT_ITERATIONS",
    "COARSE_SMOOTHNESS",
    "FINE_SMOOTHNESS",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_TOLERANCE",
    "default_smoothness",
    "build_schedule",
    "checked_learning_rate",
    "checked_tolerance",
    "checked_samples",
    "checked_channels",
    "DEFAULT_SAMPLES",
    "DEFAULT_CHANNELS",
    "GRID_UNITS",
    "DEFAULT_GRID_UNIT",
    "WORKING_GRIDS",
    "DEFAULT_WORKING_GRID",
    "DEFAULT_LINEAR_LEVELS",
    "DEFAULT_LINEAR_ITERATIONS",
    "DEFAULT_LINEAR_SAMPLES",
    "DEFAULT_LINEAR_LEARNING_RATE",
    "LINEAR_VOXELS",
    "LINEAR_STAGES",
    "checked_linear",
    "METRICS",
    "DEFAULT_METRIC",
    "COARSE_MI_WEIGHT",
    "FINE_MI_WEIGHT",
    "default_mi_weight",
    "DEFAULT_MI_BINS",
    "MI_STEP_SIZE",
    "checked_metric",
    "resolved_metric",
    "checked_mi_bins",
]

#: Control-point spacing of each scale, coarse to fine, in :data:`DEFAULT_GRID_UNIT` (the paper's numbers).
DEFAULT_GRID_SPACINGS = (20.0, 10.0, 7.0)
#: Units of the control-point spacing: fixed-image voxels, or millimetres (as
#: elastix's ``FinalGridSpacingInPhysicalUnits``).
GRID_UNITS = ("voxel", "mm")
DEFAULT_GRID_UNIT = "voxel"
#: The voxel grid features and descent work on: the fixed image's own
#: (``"native"``), or about isotropic voxels where the fixed voxels are strongly
#: anisotropic (``"isotropic"``, e.g. 1.25 x 1.25 x 7.7 mm abdominal MR);
#: see :func:`itk_suits.registration.inputs.working_grid`.
WORKING_GRIDS = ("native", "isotropic")
DEFAULT_WORKING_GRID = "native"
#: Maximum descent iterations per scale (the paper's).
DEFAULT_ITERATIONS = 300
#: Smoothness weights of the coarse scales and of the finest one, calibrated on
#: development pairs (README, "Smoothness penalty"): below them folding
#: appears, above them accuracy drops slowly. The paper's 1:2 ratio.
COARSE_SMOOTHNESS = 0.2
FINE_SMOOTHNESS = 0.4
#: Grid Adam step in normalised [-1, 1] grid units (the paper's).
DEFAULT_LEARNING_RATE = 0.005
#: Early stopping: a scale ends when control points move less than this
#: fraction of Adam's full step per iteration.
DEFAULT_TOLERANCE = 0.1
#: Largest number of working voxels the descent step is computed at per
#: iteration; larger working levels are thinned to random strided lattices.
#: Calibrated on development data (benchmarks/README.md, "Speed"): 2D slices
#: up to 256x256 keep every voxel.
DEFAULT_SAMPLES = 2**16
#: Feature channels kept; richer features are projected on the pair's leading
#: principal components (MIND-SSC has 6 channels in 2D, 12 in 3D).
DEFAULT_CHANNELS = 6
#: What drives the control grid: the feature step, Mattes mutual information
#: of the intensities, or both (the feature step plus a weighted MI step);
#: ``"auto"`` is ``"features+mi"`` for volumes and ``"features"`` for 2D
#: images (:func:`resolved_metric`). In 3D the mutual information's global
#: intensity statistics tell organs apart across subjects, where local
#: self-similarity cannot, at a small cost in time; in 2D it took 2.5 times
#: as long and its gain across subjects did not hold on held-out slices
#: (README, "Which settings for which problem").
METRICS = ("auto", "features", "mi", "features+mi")
DEFAULT_METRIC = "auto"
#: Weights of the mutual information step added to the feature step with
#: ``metric="features+mi"`` on the coarse scales and on the finest one,
#: chosen on development pairs: at full weight on the finest scale the mutual
#: information pulls small structures off the features' alignment (spinal
#: cord T2w <- T1w 0.921 at 0.25, 0.906 at 1), while CT <- -> MR pairs of
#: different people gain from it (0.528 at 0.25, 0.581 at 1; README, "Which
#: settings for which problem").
COARSE_MI_WEIGHT = 1.0
FINE_MI_WEIGHT = 0.25
#: Histogram bins per image of the mutual information.
DEFAULT_MI_BINS = 32
#: Mean magnitude, in working voxels, the mutual information step is scaled to
#: at the start of each scale with ``metric="mi"`` (with features it takes the
#: feature step's mean magnitude instead, 0.06-0.07 voxel on development pairs
#: for MIND-SSC; at most 0.5 per channel). At 0.5
#: the MI step outweighs the smoothness penalty: on a development CHAOS MR pair
#: it folded (0.2 % of voxels) and never converged, with a lower Dice.
MI_STEP_SIZE = 0.1

# The linear (rigid, affine) stage before the B-spline one (see itk_suits.core.linear).
#: Resolution factors of its levels, coarse to fine (voxel size about this many
#: times the smallest voxel size of the working grid; thick slices are kept).
DEFAULT_LINEAR_LEVELS = (4, 2, 1)
#: Maximum iterations per level (a level usually ends earlier, on a plateau).
DEFAULT_LINEAR_ITERATIONS = (100, 60, 40)
#: Random fixed voxels compared per iteration.
DEFAULT_LINEAR_SAMPLES = 4096
#: Adam step per iteration in voxels of the level, halved on plateaus.
DEFAULT_LINEAR_LEARNING_RATE = 0.5
#: Largest working grid of the linear stage: larger feature grids are resized down.
LINEAR_VOXELS = 2**21
#: The values of the ``linear`` parameter that run a linear stage.
LINEAR_STAGES = ("rigid", "affine")

# Sanity limits: beyond them a value is a typo, not a setting.
_MAX_SPACING = 10_000.0
_MAX_ITERATIONS = 1_000_000
_MAX_SMOOTHNESS = 1_000.0
_MAX_MI_WEIGHT = 1_000.0


@dataclass(frozen=True)
class Scale:
    """One stage of the multi-scale schedule.

    Attributes
    ----------
    grid_spacing : float or tuple of float
        Control-point spacing in full-resolution voxels: one value for every
        axis, or one per axis in array order.
    iterations : int
        Maximum number of descent iterations.
    smoothness : float
        Weight ``w`` of the smoothness penalty (dimensionless: penalty gradient
        in voxels per voxel of deviation).
    mi_weight : float
        Weight of the mutual information step added to the feature step when
        the metric is ``"features+mi"`` (0: this scale follows the features alone
        and no mutual information is computed); ignored by the other metrics.
    resolution : tuple of int or None
        Downsampling factor of the working level per axis (array order);
        ``None`` picks about five working voxels per control spacing.
    """

    grid_spacing: float | tuple[float, ...]
    iterations: int
    smoothness: float
    mi_weight: float = COARSE_MI_WEIGHT
    resolution: tuple[int, ...] | None = None


def default_smoothness(scales: int) -> tuple[float, ...]:
    """:data:`COARSE_SMOOTHNESS` on every scale but the finest, :data:`FINE_SMOOTHNESS` on the finest."""
    return (COARSE_SMOOTHNESS,) * (scales - 1) + (FINE_SMOOTHNESS,)


def default_mi_weight(scales: int) -> tuple[float, ...]:
    """:data:`COARSE_MI_WEIGHT` on every scale but the finest, :data:`FINE_MI_WEIGHT` on the finest."""
    return (COARSE_MI_WEIGHT,) * (scales - 1) + (FINE_MI_WEIGHT,)


def build_schedule(
    grid_spacings: float | Sequence[float] | None = None,
    iterations: int | Sequence[int] | None = None,
    smoothness: float | Sequence[float] | None = None,
    mi_weight: float | Sequence[float] | None = None,
) -> tuple[Scale, ...]:
    """The checked schedule; ``None`` takes the default of that setting.

    Parameters
    ----------
    grid_spacings : float or sequence of float, optional
        Control-point spacing per scale in fixed voxels, at least 2; the number
        of scales (default :data:`DEFAULT_GRID_SPACINGS`).
    iterations : int or sequence of int, optional
        Maximum iterations per scale, or one number for all
        (default :data:`DEFAULT_ITERATIONS`).
    smoothness : float or sequence of float, optional
        Smoothness weight per scale, or one for all (default
        :func:`default_smoothness`).
    mi_weight : float or sequence of float, optional
        Weight of the mutual information step per scale, or one for all, at
        least 0 (default :func:`default_mi_weight`).

    Raises
    ------
    ParameterError
        A value that is not a finite number in range, or a count that does not
        match the number of scales.
    """
    spacings = per_scale(DEFAULT_GRID_SPACINGS if grid_spacings is None else grid_spacings,
                         "grid_spacings", None, minimum=2, maximum=_MAX_SPACING)
    count = len(spacings)
    counts = per_scale(DEFAULT_ITERATIONS if iterations is None else iterations, "iterations", count,
                       minimum=0, maximum=_MAX_ITERATIONS, integer=True)
    weights = per_scale(default_smoothness(count) if smoothness is None else smoothness, "smoothness", count,
                        minimum=0, maximum=_MAX_SMOOTHNESS)
    mi_weights = per_scale(default_mi_weight(count) if mi_weight is None else mi_weight, "mi_weight", count,
                           minimum=0, maximum=_MAX_MI_WEIGHT)
    return tuple(Scale(float(s), int(n), float(w), float(m))
                 for s, n, w, m in zip(spacings, counts, weights, mi_weights))


def checked_learning_rate(value) -> float:
    """A grid Adam step in normalised grid units: positive and at most 0.5 (a quarter of the image per step)."""
    return checked_number(value, "learning_rate", 0, 0.5, above=True)


def checked_tolerance(value) -> float:
    """An early-stopping tolerance: a fraction of Adam's full step in [0, 1]."""
    return checked_number(value, "tolerance", 0, 1)


def checked_samples(value) -> int | None:
    """A sample budget per iteration: ``None`` (every voxel) or a whole number of at least 64."""
    return None if value is None else checked_number(value, "samples", 64, 2**40, integer=True)


def checked_channels(value) -> int | None:
    """A number of feature channels to keep: ``None`` (all) or a whole number of at least 1."""
    return None if value is None else checked_number(value, "channels", 1, 4096, integer=True)


def checked_linear(value) -> str | None:
    """A linear stage: ``None`` (``"none"`` too), ``"rigid"`` or ``"affine"``."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str) and value.lower() in LINEAR_STAGES:
        return value.lower()
    raise ParameterError(f"linear must be None, 'none', 'rigid' or 'affine', not {value!r}")


def resolved_metric(metric: str, ndim: int) -> str:
    """The metric a registration of ``ndim``-dimensional images runs: ``"auto"`` resolved, others as given."""
    if metric != "auto":
        return metric
    return "features+mi" if ndim == 3 else "features"


def checked_metric(value) -> str:
    """One of :data:`METRICS`."""
    if value not in METRICS:
        raise ParameterError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {value!r}")
    return value


def checked_mi_bins(value) -> int:
    """A number of histogram bins: a whole number in [4, 1024]."""
    return checked_number(value, "mi_bins", 4, 1024, integer=True)
