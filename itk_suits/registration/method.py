"""The ITK-style registration object: ``New()``, ``Set...``, observers, ``Update()``, ``Get...``.

The path of one registration: the inputs are read once into SimpleITK images
that keep their geometry; the moving image is resampled onto the fixed grid
with the initial transform (identity, image centres, moments, or any
ITK/SimpleITK transform); features are computed; the multi-scale B-spline
descent estimates a voxel displacement on the fixed grid; it becomes a
displacement field in millimetres and a ``DisplacementFieldTransform`` of the
caller's library, composed with the initial transform.

``Update()`` is three steps: prepare the pair (inputs, initial transform,
features), descend (:func:`~itk_suits.registration.batch.descend`) and finish
the pair (field -> transforms -> :class:`RegistrationResult`).
:func:`update_together` runs the same steps for several pairs with one
batched descent.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from ..core import IterationInfo, resize, resolve_device
from ..errors import ParameterError, RegistrationError
from ..features import get_feature_extractor, resolved_features
from ..interop import images as image_io
from ..interop import transforms as transform_io
from ..schedule import resolved_metric
from . import inputs, resources
from .batch import BatchDescent, PreparedPair, descend
from .linear_stage import run_linear_stage
from .parameters import SINGLE_THREAD_VOXELS, RegistrationParameters
from .result import RegistrationResult, compose

__all__ = ["SuitsRegistrationMethod", "IterationEvent", "ScaleEvent", "EndEvent", "update_together"]


class IterationEvent:
    """Observer event after every descent iteration; callbacks get an :class:`~itk_suits.core.IterationInfo`."""


class ScaleEvent:
    """Observer event when a scale ends; callbacks get that scale's log entry (a dict)."""


class EndEvent:
    """Observer event when ``Update()`` finishes; callbacks get the :class:`RegistrationResult`."""


_EVENTS = (IterationEvent, ScaleEvent, EndEvent)


class SuitsRegistrationMethod:
    """ITK-style SUITS registration object.

    Parameters
    ----------
    fixed, moving : itk.Image, SimpleITK.Image, numpy.ndarray or path, optional
        The images (also settable with :meth:`SetFixedImage`, :meth:`SetMovingImage`).
    **parameters
        Any field of :class:`RegistrationParameters`.

    Examples
    --------
    >>> method = SuitsRegistrationMethod.New(fixed, moving)      # doctest: +SKIP
    >>> method.SetFeatures("mind")                               # doctest: +SKIP
    >>> method.AddObserver(IterationEvent, lambda info: None)    # doctest: +SKIP
    >>> method.Update()                                          # doctest: +SKIP
    >>> warped, transform = method.GetOutput(), method.GetTransform()  # doctest: +SKIP
    """

    def __init__(self, fixed=None, moving=None, **parameters) -> None:
        self._fixed = fixed
        self._moving = moving
        self._fixed_mask = None
        self._spacing = None
        self._moving_spacing = None
        try:
            self._parameters = RegistrationParameters(**parameters)
        except TypeError as error:
            raise ParameterError(f"{error}; the parameters are {list(RegistrationParameters.__dataclass_fields__)}") \
                from None
        self._observers: dict[int, tuple[type, Callable]] = {}
        self._next_tag = 0
        self._result: RegistrationResult | None = None

    @classmethod
    def New(cls, fixed=None, moving=None, **parameters) -> "SuitsRegistrationMethod":
        """Create a registration method, optionally with its images and parameters."""
        return cls(fixed, moving, **parameters)

    # --- inputs -----------------------------------------------------------------
    def SetFixedImage(self, image) -> None:
        self._fixed = image
        self._result = None

    def SetMovingImage(self, image) -> None:
        self._moving = image
        self._result = None

    def SetFixedMask(self, mask) -> None:
        """Restrict the descent to the non-zero voxels of a mask on the fixed grid."""
        self._fixed_mask = mask
        self._result = None

    def SetSpacing(self, spacing, moving_spacing=None) -> None:
        """Spacing (x, y[, z] order, mm) of numpy inputs; the moving one defaults to the fixed one."""
        self._spacing = spacing
        self._moving_spacing = moving_spacing
        self._result = None

    def _set(self, **change) -> None:
        self._parameters = replace(self._parameters, **change)
        self._result = None

    def SetInitialTransform(self, transform) -> None:
        self._set(initial_transform=transform)

    def SetFeatures(self, features: str) -> None:
        self._set(features=features)

    def SetModalities(self, modalities) -> None:
        """The modalities of the fixed and the moving image, e.g. ``("mr", "ct")`` (``None``: not named).

        A learned model with one network per modality describes each image
        with the network of its modality (see :class:`RegistrationParameters`).
        """
        self._set(modalities=modalities)

    def GetModalities(self):
        """The modalities as set (``None`` when not named)."""
        return self._parameters.modalities

    def SetGridSpacings(self, spacings: Sequence[float]) -> None:
        self._set(grid_spacings=spacings)

    def SetGridUnit(self, unit: str) -> None:
        """Unit of the grid spacings: ``"voxel"`` (fixed-image voxels) or ``"mm"``."""
        self._set(grid_unit=unit)

    def SetWorkingGrid(self, working_grid: str) -> None:
        """``"native"`` (the fixed voxels) or ``"isotropic"`` (about isotropic voxels where they are anisotropic)."""
        self._set(working_grid=working_grid)

    def SetNumberOfIterations(self, iterations: Sequence[int]) -> None:
        self._set(iterations=iterations)

    def SetSmoothnessWeights(self, weights: Sequence[float]) -> None:
        self._set(smoothness=weights)

    def SetLearningRate(self, learning_rate: float) -> None:
        self._set(learning_rate=learning_rate)

    def SetTolerance(self, tolerance: float) -> None:
        self._set(tolerance=tolerance)

    def SetNumberOfSpatialSamples(self, samples: int | None) -> None:
        """Largest number of voxels per iteration (``None``: every voxel)."""
        self._set(samples=samples)

    def SetNumberOfFeatureChannels(self, channels: int | None) -> None:
        """Feature channels kept after projection on principal components (``None``: all)."""
        self._set(channels=channels)

    def SetMetric(self, metric: str) -> None:
        """``"auto"`` (default: ``"features+mi"`` in 3D, ``"features"`` in 2D), ``"features"``, ``"mi"`` or ``"features+mi"``."""
        self._set(metric=metric)

    def SetMutualInformationWeight(self, weight) -> None:
        """Weight of the mutual information step with ``metric="features+mi"``: one, or one per scale."""
        self._set(mi_weight=weight)

    def SetRandomSeed(self, seed: int) -> None:
        self._set(seed=seed)

    def SetLinearStage(self, linear: str | None) -> None:
        """Linear stage before the B-spline one: ``None``/``"none"``, ``"rigid"`` or ``"affine"``."""
        self._set(linear=linear)

    def SetDevice(self, device: str) -> None:
        self._set(device=device)

    def SetNumberOfThreads(self, threads: int | None) -> None:
        self._set(threads=threads)

    def GetParameters(self) -> RegistrationParameters:
        return self._parameters

    # --- observers --------------------------------------------------------------
    def AddObserver(self, event: type, callback: Callable) -> int:
        """Call ``callback`` on ``event`` (:class:`IterationEvent`, :class:`ScaleEvent`, :class:`EndEvent`).

        Returns
        -------
        int
            A tag for :meth:`RemoveObserver`.
        """
        if event not in _EVENTS:
            raise ParameterError(f"unknown event {event!r}; use one of {[e.__name__ for e in _EVENTS]}")
        if not callable(callback):
            raise ParameterError("callback must be callable")
        tag = self._next_tag
        self._observers[tag] = (event, callback)
        self._next_tag += 1
        return tag

    def RemoveObserver(self, tag: int) -> None:
        self._observers.pop(tag, None)

    def _invoke(self, event: type, payload) -> None:
        for kind, callback in list(self._observers.values()):
            if kind is event:
                callback(payload)

    # --- outputs ----------------------------------------------------------------
    def GetResult(self) -> RegistrationResult:
        if self._result is None:
            raise ParameterError("no result yet: call Update() first")
        return self._result

    def GetOutput(self):
        """The warped moving image (in the caller's library)."""
        return self.GetResult().warped

    def GetTransform(self):
        """The fixed-to-moving transform (in the caller's library)."""
        return self.GetResult().transform

    def GetDisplacementField(self):
        """The displacement field in millimetres on the fixed grid."""
        return self.GetResult().displacement_field

    # --- the work -----------------------------------------------------------------
    def Update(self) -> None:
        """Run the registration (a no-op when nothing changed since the last run).

        Raises
        ------
        InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError
            Inputs or parameters that cannot be registered, before any work.
        ResourceError
            The registration cannot fit in memory (checked before, and caught during the run).
        RegistrationError
            The descent produced a non-finite displacement.
        """
        if self._result is not None:
            return
        prepared = self._prepare()
        batch = descend([prepared], callback=self._on_iteration, scale_callback=self._on_scale)
        self._finish(prepared, batch, 0)

    def _on_iteration(self, info: IterationInfo) -> None:
        self._invoke(IterationEvent, info)

    def _on_scale(self, entry: dict) -> None:
        self._invoke(ScaleEvent, entry)

    def _prepare(self) -> PreparedPair:
        """Read and check the inputs, resolve the initial transform, compute the features.

        Raises
        ------
        InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError, ResourceError
            As :meth:`Update`, before the descent.
        """
        start = time.perf_counter()
        parameters = self._parameters.validated()
        fixed, moving, kind = inputs.read_pair(self._fixed, self._moving, self._spacing, self._moving_spacing)
        parameters = replace(parameters, metric=resolved_metric(parameters.metric, fixed.GetDimension()),
                             features=resolved_features(parameters.features, fixed.GetDimension(),
                                                        parameters.modalities))
        mask = inputs.read_fixed_mask(self._fixed_mask, fixed, self._spacing)
        # metric="mi" needs no features; the mutual information adds the intensity as one channel
        extractor = None if parameters.metric == "mi" else get_feature_extractor(parameters.features)
        fixed_modality, moving_modality = parameters.modalities or (None, None)
        uses_mi = parameters.metric != "features"
        inputs.check_size(fixed, parameters.grid_spacings, parameters.grid_unit)
        device = resolve_device(parameters.device)
        channels = (0 if extractor is None else extractor.channels(fixed.GetDimension())) + int(uses_mi)
        if extractor is not None:  # a model without a network for either image is refused before any work
            extractor.check_modality("fixed", fixed_modality, fixed.GetDimension())
            extractor.check_modality("moving", moving_modality, fixed.GetDimension())
        working = inputs.working_grid(fixed.GetSize(), fixed.GetSpacing(), parameters.working_grid)
        resources.check_memory(fixed.GetSize(), channels, device, working.voxels)
        initial = transform_io.initial_transform(fixed, moving, parameters.initial_transform)
        # the moving image on the fixed grid, extended by its edge values, and where it has data
        moving_on_fixed = image_io.resample(moving, fixed, initial, "linear", extrapolate=True)
        moving_mask = inputs.field_of_view(moving, fixed, initial)

        threads = parameters.threads
        if threads is None:
            threads = resources.default_threads(int(np.prod(fixed.GetSize())), device, SINGLE_THREAD_VOXELS)

        def on_grid(image: sitk.Image | None) -> torch.Tensor | None:
            return None if image is None else resize(inputs.to_tensor(image, device), working.shape)

        with resources.torch_threads(threads), torch.no_grad(), \
                resources.out_of_memory_guard(fixed.GetSize(), channels, device):
            fixed_intensity = on_grid(fixed)
            fixed_features = None if extractor is None else extractor(fixed_intensity, role="fixed",
                                                                       modality=fixed_modality)
            fixed_mask = on_grid(mask)

            def describe_moving() -> tuple:
                """The moving image's intensities (when the metric needs them), features and field of view."""
                intensity = on_grid(moving_on_fixed)
                features = None if extractor is None else extractor(intensity, role="moving",
                                                                    modality=moving_modality)
                return (intensity if uses_mi else None), features, on_grid(moving_mask)

            moving_intensity, moving_features, moving_fov = describe_moving()
            if not uses_mi:
                fixed_intensity = None
            linear = None
            if parameters.linear is not None:
                linear = run_linear_stage(parameters, fixed, working, initial, fixed_features, moving_features,
                                          fixed_intensity, moving_intensity, fixed_mask, moving_fov)
                initial = linear.transform
                moving_on_fixed = image_io.resample(moving, fixed, initial, "linear", extrapolate=True)
                moving_mask = inputs.field_of_view(moving, fixed, initial)
                moving_intensity, moving_features, moving_fov = describe_moving()
        return PreparedPair(
            parameters=parameters, fixed=fixed, moving=moving, kind=kind, initial=initial,
            moving_on_fixed=moving_on_fixed, device=device, threads=threads, channels=channels,
            fixed_features=fixed_features, moving_features=moving_features,
            fixed_mask=fixed_mask, moving_mask=moving_fov, working=working,
            seconds=time.perf_counter() - start, linear_log=None if linear is None else linear.log,
            fixed_intensity=fixed_intensity, moving_intensity=moving_intensity,
        )

    def _finish(self, prepared: PreparedPair, batch: BatchDescent, element: int) -> RegistrationResult:
        """Turn element ``element`` of a finished descent into this method's result.

        Raises
        ------
        RegistrationError
            The displacement of this element is not finite.
        """
        start = time.perf_counter()
        parameters, fixed, moving, kind = prepared.parameters, prepared.fixed, prepared.moving, prepared.kind
        initial = prepared.initial
        control_grid = batch.descent.coefficients[element]
        if not bool(torch.isfinite(control_grid).all()):
            raise RegistrationError(
                f"the descent produced a non-finite displacement with features={parameters.features!r}: "
                "check that the feature model describes these images (e.g. extract_features), or use "
                "features='mind'"
            )
        control_grid = control_grid.cpu().numpy().astype(np.float64)
        spacing = batch.descent.grid_spacing
        # the transforms hold the only dense copies of the field (built without intermediate copies)
        field_image = transform_io.displacement_field_from_grid(control_grid, spacing, fixed)
        if kind == "itk":
            field_itk = transform_io.displacement_field_transform(field_image, "itk")
        deformable = transform_io.displacement_field_transform(field_image, "sitk", consume=True)
        sitk_transform = compose(initial, deformable, "sitk")
        if kind == "itk":
            given = parameters.initial_transform if parameters.linear is None else None
            initial_out = None if initial is None else _initial_for_itk(given, initial)
            transform = compose(initial_out, field_itk, "itk")
        else:
            transform = sitk_transform
        warped = image_io.resample(moving, fixed, sitk_transform, "linear")
        self._result = RegistrationResult(
            warped=image_io.to_kind(warped, kind),
            transform=transform,
            log=batch.descent.element_log(element),
            seconds=prepared.seconds + batch.seconds + time.perf_counter() - start,
            device=str(prepared.device),
            kind=kind,
            parameters=parameters,
            fixed_image=fixed,
            moving_image=moving,
            moving_on_fixed=prepared.moving_on_fixed,
            sitk_transform=sitk_transform,
            control_grid=control_grid,
            control_spacing=spacing,
            initial_transform=initial,
            linear_transform=None if prepared.linear_log is None else (initial_out if kind == "itk" else initial),
            linear_log=prepared.linear_log,
        )
        self._invoke(EndEvent, self._result)
        return self._result


def update_together(methods: Sequence[SuitsRegistrationMethod]) -> list:
    """Run several registrations whose fixed images have the same size as one batched descent.

    Each method is prepared on its own (inputs, initial transform, features),
    the features are stacked into one ``[B, C, *spatial]`` batch for one
    multi-scale descent (early stopping per pair, so each field is that of a
    run of its own), and each method is finished on its own; afterwards
    ``method.GetResult()`` works as after ``Update()``. Observers of every
    method receive the batch's iteration and scale events. Meant for GPUs,
    where the pairs of a batch share the device's parallelism; the features of
    the whole batch are on the device at once.

    Parameters
    ----------
    methods : sequence of SuitsRegistrationMethod
        Registrations with equal parameters except the initial transform and
        the modalities, and
        fixed images of the same size (checked after preparation).

    Returns
    -------
    list
        Per method, its :class:`RegistrationResult` or the exception that
        stopped it: a pair that fails (bad input, a non-finite field) does not
        stop the others. A batch that fails as a whole (out of memory,
        different sizes) is run again one pair at a time.
    """
    outcomes: list = [None] * len(methods)
    prepared = []
    for index, method in enumerate(methods):
        if method._result is not None:
            outcomes[index] = method._result
            continue
        try:
            prepared.append((index, method._prepare()))
        except Exception as error:  # noqa: BLE001 - recorded for this pair; the others go on
            outcomes[index] = error
    if not prepared:
        return outcomes

    def on_iteration(info: IterationInfo) -> None:
        for _, method in members:
            method._on_iteration(info)

    def on_scale(entry: dict) -> None:
        for _, method in members:
            method._on_scale(entry)

    members = [(index, methods[index]) for index, _ in prepared]
    try:
        batch = descend([pair for _, pair in prepared], callback=on_iteration, scale_callback=on_scale)
    except Exception as error:  # noqa: BLE001
        if len(prepared) == 1:
            outcomes[prepared[0][0]] = error
            return outcomes
        for index, _ in prepared:  # the batch as a whole failed: each pair alone
            outcomes[index] = update_together([methods[index]])[0]
        return outcomes
    for element, (index, pair) in enumerate(prepared):
        try:
            outcomes[index] = methods[index]._finish(pair, batch, element)
        except Exception as error:  # noqa: BLE001
            outcomes[index] = error
    return outcomes


def _initial_for_itk(given, initial: sitk.Transform):
    """The user's own itk transform when one was given, else the computed one converted."""
    if type(given).__module__.startswith("itk"):
        return given
    return transform_io.to_itk_transform(initial)
