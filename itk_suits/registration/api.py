"""``register()``: the functional face of :class:`~itk_suits.registration.SuitsRegistrationMethod`."""

from __future__ import annotations

from typing import Callable, Sequence

from ..core import IterationInfo
from ..schedule import (
    DEFAULT_CHANNELS,
    DEFAULT_GRID_SPACINGS,
    DEFAULT_GRID_UNIT,
    DEFAULT_ITERATIONS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_METRIC,
    DEFAULT_SAMPLES,
    DEFAULT_TOLERANCE,
    DEFAULT_WORKING_GRID,
)
from .method import IterationEvent, SuitsRegistrationMethod
from .progress import registration_progress
from .result import RegistrationResult

__all__ = ["register"]


def register(
    fixed,
    moving,
    *,
    features: str = "auto",
    modalities: Sequence[str] | None = None,
    fixed_mask=None,
    initial_transform=None,
    grid_spacings: Sequence[float] = DEFAULT_GRID_SPACINGS,
    grid_unit: str = DEFAULT_GRID_UNIT,
    working_grid: str = DEFAULT_WORKING_GRID,
    iterations: Sequence[int] | int = DEFAULT_ITERATIONS,
    smoothness: Sequence[float] | float | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    tolerance: float = DEFAULT_TOLERANCE,
    samples: int | None = DEFAULT_SAMPLES,
    channels: int | None = DEFAULT_CHANNELS,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    linear: str | None = None,
    metric: str = DEFAULT_METRIC,
    mi_weight: float | Sequence[float] | None = None,
    spacing=None,
    moving_spacing=None,
    callback: Callable[[IterationInfo], None] | None = None,
    progress: bool = False,
) -> RegistrationResult:
    """Register ``moving`` onto ``fixed`` with SUITS (multi-scale B-spline descent).

    A thin wrapper around :class:`SuitsRegistrationMethod`.

    Parameters
    ----------
    fixed, moving : itk.Image, SimpleITK.Image, numpy.ndarray or path
        Scalar 2D or 3D images (any modality pair). Outputs come back in the
        library of ``fixed`` (file paths give SimpleITK objects).
    features : str
        ``"auto"`` (default: MIND-SSC, multi-modal; with ``modalities`` that a
        shipped model knows, e.g. ``("mr", "ct")`` for the abdomen, whichever of
        MIND-SSC, the model or both measured best), ``"mind"``, ``"intensity"``,
        a learned model (a shipped model's name or a model folder), or a
        ``+``-joined combination such as ``"mind+my_model/"``.
    modalities : (str, str), optional
        The modality of ``fixed`` and of ``moving``, e.g. ``("mr", "ct")``: a
        learned model with one network per modality describes each image with
        the network of its modality, and needs them named. MIND-SSC,
        intensities and modality-agnostic networks accept any names.
    fixed_mask : image, optional
        Non-zero where the descent may look; must lie on the fixed grid.
    initial_transform : None, "identity", "geometry", "moments", transform or path
        Pre-alignment, composed into the result (see :class:`RegistrationParameters`).
    grid_spacings, grid_unit, iterations, smoothness, learning_rate, tolerance
        The multi-scale schedule (see :class:`RegistrationParameters`); ``grid_unit``
        ``"voxel"`` or ``"mm"``.
    working_grid : {"native", "isotropic"}
        Features and descent on the fixed voxels, or on about isotropic voxels
        where the fixed ones are strongly anisotropic.
    samples, channels, seed
        Voxels per iteration, feature channels kept, seed of the random choices
        (see :class:`RegistrationParameters`).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    threads : int, optional
        torch CPU threads while registering (default: one for images under
        :data:`~itk_suits.registration.SINGLE_THREAD_VOXELS` voxels, torch's setting above).
    linear : {None, "none", "rigid", "affine"}
        Linear stage before the B-spline stage, on the same features (see
        :class:`RegistrationParameters`); ``result.linear_transform`` holds its result.
    metric : {"auto", "features", "mi", "features+mi"}
        The feature step, Mattes mutual information of the intensities, or
        the feature step plus ``mi_weight`` times the mutual information step;
        ``"auto"`` (default) is ``"features+mi"`` for volumes and
        ``"features"`` for 2D images (see :class:`RegistrationParameters`).
    mi_weight : float or sequence of float, optional
        Weight of the mutual information step with ``"features+mi"``, one
        for all scales or one per scale (0: that scale follows the features
        alone); default 1 on the coarse scales and 0.25 on the finest.
    spacing, moving_spacing : sequence of float, optional
        Spacing (x, y[, z], mm) of numpy inputs.
    callback : callable, optional
        Called with an :class:`~itk_suits.core.IterationInfo` every iteration.
    progress : bool
        Show progress on stderr: a bar on a terminal, a line per scale otherwise.

    Returns
    -------
    RegistrationResult
        ``warped``, ``transform``, ``displacement_field``, ``warp()``, ``save()``.

    Raises
    ------
    InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError
        For inputs that cannot be registered, with the reason and the fix.
    ModalityError
        ``modalities`` is not two names, the model has no network for one of
        them, or it has one network per modality and none are named.
    ResourceError
        Not enough memory for these images on this device.
    RegistrationError
        The descent produced no finite displacement.
    """
    method = SuitsRegistrationMethod.New(
        fixed, moving, features=features, modalities=modalities, grid_spacings=grid_spacings, grid_unit=grid_unit,
        working_grid=working_grid, iterations=iterations,
        smoothness=smoothness, learning_rate=learning_rate, tolerance=tolerance, samples=samples,
        channels=channels, seed=seed, initial_transform=initial_transform, device=device, threads=threads,
        linear=linear,
        metric=metric, mi_weight=mi_weight,
    )
    if fixed_mask is not None:
        method.SetFixedMask(fixed_mask)
    if spacing is not None or moving_spacing is not None:
        method.SetSpacing(spacing, moving_spacing)
    if callback is not None:
        method.AddObserver(IterationEvent, callback)
    with registration_progress(method, progress):
        method.Update()
    return method.GetResult()
