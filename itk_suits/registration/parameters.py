"""The parameters of one registration, their defaults and their validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..checks import checked_choice, checked_number
from ..features.model import checked_modalities
from ..schedule import (
    DEFAULT_CHANNELS,
    DEFAULT_GRID_SPACINGS,
    DEFAULT_GRID_UNIT,
    DEFAULT_WORKING_GRID,
    GRID_UNITS,
    WORKING_GRIDS,
    DEFAULT_ITERATIONS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_METRIC,
    DEFAULT_MI_BINS,
    DEFAULT_SAMPLES,
    DEFAULT_TOLERANCE,
    Scale,
    build_schedule,
    checked_channels,
    checked_learning_rate,
    checked_linear,
    checked_metric,
    checked_mi_bins,
    checked_samples,
    checked_tolerance,
)

__all__ = ["RegistrationParameters", "SINGLE_THREAD_VOXELS"]

#: Images with fewer voxels run on one CPU thread unless ``threads`` is given.
SINGLE_THREAD_VOXELS = 2**18
#: More torch threads than this is a typo, not a setting.
_MAX_THREADS = 4096


@dataclass(frozen=True)
class RegistrationParameters:
    """Everything that controls one SUITS registration.

    Attributes
    ----------
    features : str
        Feature extractor: ``"auto"`` (default: MIND-SSC, or where the
        ``modalities`` are named and a shipped model knows both, what measured
        best for them; see :func:`itk_suits.features.resolved_features`),
        ``"mind"`` (MIND-SSC), ``"intensity"`` (normalised intensities,
        mono-modal only), a learned model folder, or several joined with ``+``
        (e.g. ``"mind+my_model/"``); see :func:`itk_suits.features.get_feature_extractor`.
    modalities : (str, str) or None
        The modality of the fixed and of the moving image, e.g. ``("mr",
        "ct")``: a learned model with one network per modality describes each
        image with the network of its modality, and needs them named; a model
        refuses a modality it has no network for. MIND-SSC, intensities and
        modality-agnostic networks describe every modality alike and accept
        any name. ``None``: not named.
    grid_spacings : float or tuple of float
        Control-point spacing of each scale in ``grid_unit``, coarse to fine,
        at least 2 (default :data:`~itk_suits.schedule.DEFAULT_GRID_SPACINGS`).
    grid_unit : {"voxel", "mm"}
        Unit of ``grid_spacings``: fixed-image voxels (a spacing of 10 is 10
        voxels along every axis, whatever their size) or millimetres (the same
        physical spacing along every axis, as elastix's
        ``FinalGridSpacingInPhysicalUnits``).
    working_grid : {"native", "isotropic"}
        The voxel grid features and descent work on: the fixed image's own, or
        about isotropic voxels where the fixed voxels are strongly anisotropic
        (see :func:`~itk_suits.registration.inputs.working_grid`). The result
        is on the fixed grid either way.
    iterations : int or tuple of int
        Maximum iterations per scale, or one number for all
        (default :data:`~itk_suits.schedule.DEFAULT_ITERATIONS`).
    smoothness : float, tuple of float or None
        Smoothness penalty weight per scale (see :mod:`itk_suits.core.optimizer`);
        ``None``: :data:`~itk_suits.schedule.COARSE_SMOOTHNESS` on every scale but
        the finest, :data:`~itk_suits.schedule.FINE_SMOOTHNESS` on the finest.
    learning_rate : float
        Grid optimizer step in normalised [-1, 1] grid units, in (0, 0.5].
    tolerance : float
        Early stopping: a scale ends when control points move less than this
        fraction of the full Adam step per iteration (``0`` runs every
        iteration), in [0, 1].
    samples : int or None
        Largest number of working voxels the step is computed at per iteration
        (at least 64); larger working levels are thinned to random strided
        lattices drawn anew every iteration, as elastix samples its metric.
        ``None``: every voxel (default :data:`~itk_suits.schedule.DEFAULT_SAMPLES`).
    channels : int or None
        Feature channels kept: richer features are projected on the pair's
        leading principal components. ``None``: all (default
        :data:`~itk_suits.schedule.DEFAULT_CHANNELS`).
    seed : int
        Seed of every random choice of the descent (the sampled lattices and the
        voxels that estimate the principal components).
    initial_transform : None, str or transform
        ``None``/``"identity"``, ``"geometry"`` (image centres), ``"moments"``
        (centres of mass), an itk or SimpleITK transform (e.g. an elastix affine
        converted to ITK) or a transform file path. It maps fixed to moving
        physical points and is composed into the result.
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda[:N]"``.
    threads : int or None
        CPU threads for torch during the registration. ``None``: one thread for
        images under :data:`SINGLE_THREAD_VOXELS` voxels (small tensor operations
        gain nothing from threads, and a busy machine makes extra threads
        dramatically slower), torch's own setting for larger ones.
    linear : str or None
        Linear stage between the initial transform and the B-spline stage, on the
        same features: ``None`` (or ``"none"``: no linear stage, the default),
        ``"rigid"`` or ``"affine"`` (rigid, then affine); see
        :mod:`itk_suits.core.linear`.
    metric : str
        What drives the grid: ``"features"`` (the feature step), ``"mi"``
        (Mattes mutual information of the intensities; no features are
        computed), ``"features+mi"`` (the feature step plus ``mi_weight`` times
        the mutual information step) or ``"auto"`` (the default:
        ``"features+mi"`` for volumes, ``"features"`` for 2D images; see
        :func:`~itk_suits.schedule.resolved_metric`). The result's parameters
        hold the metric that ran.
    mi_weight : float or sequence of float
        Weight of the mutual information step with ``"features+mi"``, at least 0,
        one for all scales or one per scale (default
        :func:`~itk_suits.schedule.default_mi_weight`); a scale of weight 0 follows
        the features alone and computes no mutual information.
    mi_bins : int
        Histogram bins of the mutual information, in [4, 1024]
        (default :data:`~itk_suits.schedule.DEFAULT_MI_BINS`).
    """

    features: Any = "auto"
    modalities: Any = None
    grid_spacings: Any = DEFAULT_GRID_SPACINGS
    grid_unit: str = DEFAULT_GRID_UNIT
    working_grid: str = DEFAULT_WORKING_GRID
    iterations: Any = DEFAULT_ITERATIONS
    smoothness: Any = None
    learning_rate: float = DEFAULT_LEARNING_RATE
    tolerance: float = DEFAULT_TOLERANCE
    samples: int | None = DEFAULT_SAMPLES
    channels: int | None = DEFAULT_CHANNELS
    seed: int = 0
    initial_transform: Any = None
    device: Any = "auto"
    threads: int | None = None
    linear: str | None = None
    metric: str = DEFAULT_METRIC
    mi_weight: Any = None
    mi_bins: int = DEFAULT_MI_BINS

    def validated(self) -> "RegistrationParameters":
        """A copy with every setting checked and the schedule as tuples, one value per scale.

        Raises
        ------
        ParameterError
            Naming the first number that is not finite, not in its range or not a
            number. ``features`` and ``device`` are checked where they are
            resolved (:func:`~itk_suits.features.get_feature_extractor`,
            :func:`~itk_suits.core.resolve_device`).
        ModalityError
            ``modalities`` is not two modality names.
        """
        schedule = build_schedule(self.grid_spacings, self.iterations, self.smoothness, self.mi_weight)
        threads = None if self.threads is None else checked_number(
            self.threads, "threads", 1, _MAX_THREADS, integer=True)
        return replace(
            self,
            modalities=checked_modalities(self.modalities),
            grid_spacings=tuple(s.grid_spacing for s in schedule),
            grid_unit=checked_choice(self.grid_unit, "grid_unit", GRID_UNITS),
            working_grid=checked_choice(self.working_grid, "working_grid", WORKING_GRIDS),
            iterations=tuple(s.iterations for s in schedule),
            smoothness=tuple(s.smoothness for s in schedule),
            learning_rate=checked_learning_rate(self.learning_rate),
            tolerance=checked_tolerance(self.tolerance),
            samples=checked_samples(self.samples),
            channels=checked_channels(self.channels),
            seed=checked_number(self.seed, "seed", 0, 2**62, integer=True),
            threads=threads,
            linear=checked_linear(self.linear),
            metric=checked_metric(self.metric),
            mi_weight=tuple(s.mi_weight for s in schedule),
            mi_bins=checked_mi_bins(self.mi_bins),
        )

    def schedule(self) -> list[Scale]:
        """The multi-scale schedule of the descent (of validated parameters)."""
        return [Scale(s, n, w, m) for s, n, w, m in zip(self.grid_spacings, self.iterations, self.smoothness,
                                                        self.mi_weight)]

    def to_dict(self) -> dict:
        """JSON-ready values; objects (transforms, extractors) are named by their type."""
        values = asdict(self)
        for name, value in values.items():
            if not (value is None or isinstance(value, (str, int, float, tuple, list))):
                values[name] = f"<{type(value).__module__}.{type(value).__name__}>"
            elif isinstance(value, tuple):
                values[name] = list(value)
        return values
