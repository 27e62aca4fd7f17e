"""SUITS registration for ITK, SimpleITK and numpy users.

Two faces on one engine, as in ITKElastix: the object
:class:`SuitsRegistrationMethod` (``New()``, ``Set...``, ``Update()``,
``GetOutput()``, observers) for pipelines, and the function :func:`register`
for scripts, which is a thin wrapper around the object.

The path of one registration: the inputs are read once into SimpleITK images
that keep their geometry; the moving image is resampled onto the fixed grid
with the initial transform (identity, image centres, moments, or any
ITK/SimpleITK transform); features are computed; the multi-scale B-spline
descent estimates a voxel displacement on the fixed grid; it becomes a
displacement field in millimetres and a ``DisplacementFieldTransform`` of the
caller's library, composed with the initial transform.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from .core import DescentSettings, IterationInfo, MultiScaleDescent, Scale, resolve_device
from .errors import GeometryError, InputImageError, ParameterError
from .features import get_feature_extractor
from .interop import images as image_io
from .interop import transforms as transform_io

__all__ = [
    "RegistrationParameters",
    "RegistrationResult",
    "SuitsRegistrationMethod",
    "IterationEvent",
    "ScaleEvent",
    "EndEvent",
    "register",
]


class IterationEvent:
    """Observer event after every descent iteration; callbacks get an :class:`IterationInfo`."""


class ScaleEvent:
    """Observer event after every scale; callbacks get that scale's log entry (a dict)."""


class EndEvent:
    """Observer event when ``Update()`` finishes; callbacks get the :class:`RegistrationResult`."""


_EVENTS = (IterationEvent, ScaleEvent, EndEvent)

#: Default smoothness weights, calibrated on synthetic phantoms and development
#: pairs (see README, "Smoothness penalty"): below them folding appears, above
#: them accuracy drops slowly.
COARSE_SMOOTHNESS = 0.2
FINE_SMOOTHNESS = 0.4

#: Images with fewer voxels run on one CPU thread unless ``threads`` is given.
SINGLE_THREAD_VOXELS = 2**18

#: Bytes of working memory per voxel and feature channel (features, warped
#: copies, gradients, step), used to refuse registrations that cannot fit.
_BYTES_PER_VOXEL_CHANNEL = 4 * 12


@dataclass(frozen=True)
class RegistrationParameters:
    """Everything that controls one SUITS registration.

    Attributes
    ----------
    features : str
        Feature extractor: ``"mind"`` (MIND-SSC), ``"intensity"`` (normalised
        intensities, mono-modal only), a learned model folder, or several joined
        with ``+`` (e.g. ``"mind+my_model/"``); see :func:`itk_suits.features.get_feature_extractor`.
    grid_spacings : tuple of float
        Control-point spacing of each scale in fixed-image voxels, coarse to fine.
    iterations : tuple of int
        Maximum iterations per scale.
    smoothness : float, tuple of float or None
        Smoothness penalty weight per scale (see :mod:`itk_suits.core.optimizer`);
        ``None``: :data:`COARSE_SMOOTHNESS` on every scale but the finest,
        :data:`FINE_SMOOTHNESS` on the finest (the paper's 1:2 ratio).
    learning_rate : float
        Grid optimizer step in normalised [-1, 1] grid units.
    tolerance : float
        Early stopping: a scale ends when control points move less than this
        fraction of the full Adam step per iteration (``0`` runs every iteration).
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
    """

    features: str = "mind"
    grid_spacings: tuple[float, ...] = (20.0, 10.0, 7.0)
    iterations: int | tuple[int, ...] = 300
    smoothness: float | tuple[float, ...] | None = None
    learning_rate: float = 0.005
    tolerance: float = 0.1
    initial_transform: Any = None
    device: str = "auto"
    threads: int | None = None

    def validated(self) -> "RegistrationParameters":
        """A copy with tuples normalised, or :class:`ParameterError` naming the bad value."""
        spacings = _as_tuple(self.grid_spacings, float, "grid_spacings")
        iterations = _as_tuple(self.iterations, int, "iterations", len(spacings))
        smoothness = self.smoothness
        if smoothness is None:
            smoothness = (COARSE_SMOOTHNESS,) * (len(spacings) - 1) + (FINE_SMOOTHNESS,)
        smoothness = _as_tuple(smoothness, float, "smoothness", len(spacings))
        if any(s < 2 for s in spacings):
            raise ParameterError(f"grid_spacings must be at least 2 voxels, got {spacings}")
        if any(n < 0 for n in iterations):
            raise ParameterError(f"iterations must be non-negative, got {iterations}")
        if any(w < 0 for w in smoothness):
            raise ParameterError(f"smoothness weights must be non-negative, got {smoothness}")
        if not self.learning_rate > 0:
            raise ParameterError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.threads is not None and int(self.threads) < 1:
            raise ParameterError(f"threads must be a positive integer or None, got {self.threads}")
        return replace(self, grid_spacings=spacings, iterations=iterations, smoothness=smoothness)

    def schedule(self) -> list[Scale]:
        """The multi-scale schedule of the descent."""
        return [Scale(s, n, w) for s, n, w in zip(self.grid_spacings, self.iterations, self.smoothness)]


def _as_tuple(value, kind, name, length=None):
    values = (value,) if np.isscalar(value) else tuple(value)
    if length is not None and len(values) == 1 and length > 1:
        values = values * length
    if not values or (length is not None and len(values) != length):
        raise ParameterError(
            f"{name} needs one value per scale ({length} scales from grid_spacings), got {value!r}"
            if length else f"{name} needs at least one value, got {value!r}"
        )
    try:
        return tuple(kind(v) for v in values)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{name} must hold numbers, got {value!r}") from error


@dataclass
class RegistrationResult:
    """The outcome of a registration, in the caller's library.

    Attributes
    ----------
    warped : itk.Image, SimpleITK.Image or numpy.ndarray
        The moving image resampled onto the fixed grid with :attr:`transform`
        (linear interpolation); same origin, spacing and direction as the fixed image.
    transform : itk or SimpleITK transform
        Maps fixed physical points to moving physical points: a
        ``DisplacementFieldTransform``, or a ``CompositeTransform`` (initial
        transform after the displacement) when an initial transform was used.
        numpy callers get a SimpleITK transform.
    displacement_field : itk.Image, SimpleITK.Image or numpy.ndarray
        Physical displacement in millimetres on the fixed grid (vector image;
        numpy: ``(*shape, ndim)`` with components x, y[, z]).
        :meth:`bspline_transform` gives the same mapping as an exact B-spline transform.
    log : list of dict
        Per scale: grid spacing, control points, iterations run, convergence, seconds.
    seconds : float
        Wall time of the whole registration.
    device : str
        The torch device the descent ran on.
    """

    warped: Any
    transform: Any
    displacement_field: Any
    log: list
    seconds: float
    device: str
    kind: str  # "itk", "sitk" or "numpy": the library of the outputs
    fixed_image: sitk.Image = field(repr=False)
    moving_image: sitk.Image = field(repr=False)
    moving_on_fixed: sitk.Image = field(repr=False)
    sitk_transform: sitk.Transform = field(repr=False)
    index_displacement: np.ndarray = field(repr=False)
    control_grid: np.ndarray = field(repr=False)
    control_spacing: tuple = field(repr=False)
    initial_transform: sitk.Transform | None = field(repr=False)

    def warp(self, image, interpolator: str = "linear", default_value: float = 0.0, spacing=None):
        """Resample another image of the moving subject onto the fixed grid.

        Parameters
        ----------
        image : itk.Image, SimpleITK.Image, numpy.ndarray or path
            An image in the moving image's physical space (e.g. its label map).
        interpolator : {"linear", "nearest", "bspline"}
            ``"nearest"`` for label maps (the pixel type is kept).
        default_value : float
            Value outside the moving image.
        spacing : sequence of float, optional
            Spacing of a numpy ``image`` (x, y[, z] order).

        Returns
        -------
        Same library as ``image`` (numpy in, numpy out).
        """
        moving, kind = image_io.as_sitk_image(image, name="image", spacing=spacing)
        if moving.GetDimension() != self.fixed_image.GetDimension():
            raise GeometryError(
                f"image is {moving.GetDimension()}D but the registration is "
                f"{self.fixed_image.GetDimension()}D"
            )
        warped = image_io.resample(moving, self.fixed_image, self.sitk_transform, interpolator, default_value)
        return image_io.to_kind(warped, kind)

    def bspline_transform(self):
        """The same mapping as :attr:`transform` with an exact cubic ``BSplineTransform``.

        The finest control grid written as an ITK B-spline transform (a few
        hundred coefficients instead of a dense field), composed with the
        initial transform when there is one; in the caller's library.
        """
        bspline = transform_io.bspline_transform_from_index(self.control_grid, self.control_spacing, self.fixed_image)
        kind = "itk" if self.kind == "itk" else "sitk"
        if kind == "itk":
            bspline = transform_io.to_itk_transform(bspline)
        return _compose(self.initial_transform, bspline, kind)

    def save(self, directory, overwrite: bool = False) -> dict:
        """Write the warped image, the displacement field, the transform and a checkerboard PNG.

        Files: ``warped.nii.gz``, ``displacement.nii.gz`` (mm), ``transform.h5``
        (readable by ``itk.transformread`` and ``sitk.ReadTransform``) and
        ``checkerboard.png``. Existing files are never replaced unless
        ``overwrite`` is true.

        Returns
        -------
        dict
            Name to path of every file written.
        """
        from .visualization import save_registration_figure

        directory = os.fspath(directory)
        paths = {name: os.path.join(directory, name) for name in
                 ("warped.nii.gz", "displacement.nii.gz", "transform.h5", "checkerboard.png")}
        existing = [p for p in paths.values() if os.path.exists(p)]
        if existing and not overwrite:
            raise FileExistsError(f"not overwriting {existing}; pass overwrite=True (CLI: --overwrite)")
        os.makedirs(directory, exist_ok=True)
        warped = image_io.resample(self.moving_image, self.fixed_image, self.sitk_transform)
        sitk.WriteImage(warped, paths["warped.nii.gz"])
        field_image = transform_io.displacement_field_from_index(self.index_displacement, self.fixed_image)
        sitk.WriteImage(field_image, paths["displacement.nii.gz"])
        sitk.WriteTransform(self.sitk_transform, paths["transform.h5"])
        save_registration_figure(
            paths["checkerboard.png"],
            sitk.GetArrayFromImage(self.fixed_image),
            sitk.GetArrayFromImage(self.moving_on_fixed),
            sitk.GetArrayFromImage(warped),
            displacement=self.index_displacement,
            title="SUITS registration",
            overwrite=overwrite,
        )
        return paths


class SuitsRegistrationMethod:
    """ITK-style SUITS registration object.

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
        self._parameters = RegistrationParameters(**parameters)
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

    def SetGridSpacings(self, spacings: Sequence[float]) -> None:
        self._set(grid_spacings=spacings)

    def SetNumberOfIterations(self, iterations: Sequence[int]) -> None:
        self._set(iterations=iterations)

    def SetSmoothnessWeights(self, weights: Sequence[float]) -> None:
        self._set(smoothness=weights)

    def SetLearningRate(self, learning_rate: float) -> None:
        self._set(learning_rate=learning_rate)

    def SetTolerance(self, tolerance: float) -> None:
        self._set(tolerance=tolerance)

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
        """Run the registration (a no-op when nothing changed since the last run)."""
        if self._result is not None:
            return
        start = time.perf_counter()
        parameters = self._parameters.validated()
        fixed, moving, mask, kind = self._read_inputs()
        extractor = get_feature_extractor(parameters.features)
        _check_size(fixed, parameters.grid_spacings)
        device = resolve_device(parameters.device)
        _check_memory(fixed, extractor.channels(fixed.GetDimension()), device)
        initial = transform_io.initial_transform(fixed, moving, parameters.initial_transform)
        # the moving image on the fixed grid, extended by its edge values, and where it has data
        moving_on_fixed = image_io.resample(moving, fixed, initial, "linear", extrapolate=True)
        moving_mask = _field_of_view(moving, fixed, initial)

        threads = parameters.threads
        if threads is None and device.type == "cpu" and np.prod(fixed.GetSize()) < SINGLE_THREAD_VOXELS:
            threads = 1
        with _torch_threads(threads), torch.no_grad():
            descent = MultiScaleDescent(
                extractor(_to_tensor(fixed, device)),
                extractor(_to_tensor(moving_on_fixed, device), modality="moving"),
                parameters.schedule(),
                DescentSettings(learning_rate=parameters.learning_rate, tolerance=parameters.tolerance),
                fixed_mask=None if mask is None else _to_tensor(mask, device),
                moving_mask=None if moving_mask is None else _to_tensor(moving_mask, device),
                callback=lambda info: self._invoke(IterationEvent, info),
            )
            displacement = descent.run()[0].cpu().numpy().astype(np.float64)
            control_grid = descent.coefficients[0].cpu().numpy().astype(np.float64)
        for entry in descent.log:
            self._invoke(ScaleEvent, entry)

        field_image = transform_io.displacement_field_from_index(displacement, fixed)
        sitk_transform = _compose(initial, transform_io.displacement_field_transform(field_image, "sitk"), "sitk")
        if kind == "itk":
            initial_out = None if initial is None else _initial_for_itk(parameters.initial_transform, initial)
            transform = _compose(initial_out, transform_io.displacement_field_transform(field_image, "itk"), "itk")
        else:
            transform = sitk_transform
        warped = image_io.resample(moving, fixed, sitk_transform, "linear")
        self._result = RegistrationResult(
            warped=image_io.to_kind(warped, kind),
            transform=transform,
            displacement_field=image_io.to_kind(field_image, kind),
            log=descent.log,
            seconds=time.perf_counter() - start,
            device=str(device),
            kind=kind,
            fixed_image=fixed,
            moving_image=moving,
            moving_on_fixed=moving_on_fixed,
            sitk_transform=sitk_transform,
            index_displacement=displacement,
            control_grid=control_grid,
            control_spacing=descent.grid_spacing,
            initial_transform=initial,
        )
        self._invoke(EndEvent, self._result)

    def _read_inputs(self) -> tuple[sitk.Image, sitk.Image, sitk.Image | None, str]:
        """Checked float32 fixed and moving images, the fixed mask and the caller's library."""
        if self._fixed is None or self._moving is None:
            raise InputImageError("set both the fixed and the moving image before Update()")
        fixed, kind = image_io.as_sitk_image(self._fixed, name="fixed", spacing=self._spacing)
        moving_spacing = self._moving_spacing if self._moving_spacing is not None else self._spacing
        moving, _ = image_io.as_sitk_image(self._moving, name="moving", spacing=moving_spacing)
        _check_pair(fixed, moving)
        image_io.check_intensity_image(fixed, "fixed")
        image_io.check_intensity_image(moving, "moving")
        fixed = sitk.Cast(fixed, sitk.sitkFloat32)
        moving = sitk.Cast(moving, sitk.sitkFloat32)
        return fixed, moving, self._read_mask(fixed), kind

    def _read_mask(self, fixed: sitk.Image) -> sitk.Image | None:
        if self._fixed_mask is None:
            return None
        mask, _ = image_io.as_sitk_image(self._fixed_mask, name="fixed_mask", spacing=self._spacing)
        image_io.check_same_grid(fixed, mask, "fixed", "fixed_mask")
        mask = sitk.Cast(mask != 0, sitk.sitkFloat32)
        if sitk.GetArrayViewFromImage(mask).max() == 0:
            raise InputImageError("fixed_mask is empty (no non-zero voxel): nothing to register")
        return mask


def _compose(initial, deformable, kind):
    return deformable if initial is None else transform_io.compose(initial, deformable, kind)


def _initial_for_itk(given, initial: sitk.Transform):
    """The user's own itk transform when one was given, else the computed one converted."""
    if type(given).__module__.startswith("itk"):
        return given
    return transform_io.to_itk_transform(initial)


def _check_pair(fixed: sitk.Image, moving: sitk.Image) -> None:
    if fixed.GetDimension() != moving.GetDimension():
        raise GeometryError(
            f"fixed is {fixed.GetDimension()}D but moving is {moving.GetDimension()}D: "
            "register images of the same dimension (extract a slice, or register the volumes)"
        )


def _check_size(fixed: sitk.Image, spacings: Sequence[float]) -> None:
    coarsest = max(spacings)
    small = [n for n in fixed.GetSize() if n < coarsest]
    if small:
        raise InputImageError(
            f"fixed image size {fixed.GetSize()} is smaller than the coarsest control-point spacing "
            f"({coarsest:g} voxels) along an axis: pass smaller grid_spacings, e.g. "
            f"grid_spacings=({max(2, min(fixed.GetSize()) // 2)}, ...)"
        )


def _check_memory(fixed: sitk.Image, channels: int, device: torch.device) -> None:
    need = int(np.prod(fixed.GetSize())) * channels * _BYTES_PER_VOXEL_CHANNEL
    if device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[0]
    else:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > available:
        raise InputImageError(
            f"out-of-memory risk: registering a {fixed.GetSize()} image with {channels} feature channels "
            f"needs about {need / 2**30:.1f} GiB on {device}, {available / 2**30:.1f} GiB are free; "
            "downsample the images (e.g. sitk.Shrink) or crop them"
        )


def _field_of_view(moving: sitk.Image, fixed: sitk.Image, initial) -> sitk.Image | None:
    """Where the moving image, resampled onto the fixed grid, has real data (eroded by 3 voxels).

    ``None`` when that is everywhere. The erosion keeps descriptor patches that
    straddle the edge of the moving field of view out of the descent.
    """
    ones = sitk.Image(moving.GetSize(), sitk.sitkFloat32) + 1.0
    ones.CopyInformation(moving)
    covered = image_io.resample(ones, fixed, initial, "nearest") > 0.5
    covered = sitk.BinaryErode(covered, [3] * fixed.GetDimension(), sitk.sitkBox, 0, 1, False)
    if sitk.GetArrayViewFromImage(covered).min() == 1:
        return None
    return sitk.Cast(covered, sitk.sitkFloat32)


def _to_tensor(image: sitk.Image, device: torch.device) -> torch.Tensor:
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    return torch.from_numpy(array)[None, None].to(device)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def register(
    fixed,
    moving,
    *,
    features: str = "mind",
    fixed_mask=None,
    initial_transform=None,
    grid_spacings: Sequence[float] = (20, 10, 7),
    iterations: Sequence[int] | int = 300,
    smoothness: Sequence[float] | float | None = None,
    learning_rate: float = 0.005,
    tolerance: float = 0.1,
    device: str = "auto",
    threads: int | None = None,
    spacing=None,
    moving_spacing=None,
    callback: Callable[[IterationInfo], None] | None = None,
    progress: bool = False,
) -> RegistrationResult:
    """Register ``moving`` onto ``fixed`` with SUITS (multi-scale B-spline descent).

    Parameters
    ----------
    fixed, moving : itk.Image, SimpleITK.Image, numpy.ndarray or path
        Scalar 2D or 3D images (any modality pair). Outputs come back in the
        library of ``fixed`` (file paths give SimpleITK objects).
    features : str
        ``"mind"`` (MIND-SSC, multi-modal, default), ``"intensity"``, a learned
        model folder, or a ``+``-joined combination such as ``"mind+my_model/"``.
    fixed_mask : image, optional
        Non-zero where the descent may look; must lie on the fixed grid.
    initial_transform : None, "identity", "geometry", "moments", transform or path
        Pre-alignment, composed into the result (see :class:`RegistrationParameters`).
    grid_spacings, iterations, smoothness, learning_rate, tolerance
        The multi-scale schedule (see :class:`RegistrationParameters`).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    threads : int, optional
        torch CPU threads while registering (default: one for images under
        :data:`SINGLE_THREAD_VOXELS` voxels, torch's setting above).
    spacing, moving_spacing : sequence of float, optional
        Spacing (x, y[, z], mm) of numpy inputs.
    callback : callable, optional
        Called with an :class:`~itk_suits.core.IterationInfo` every iteration.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    RegistrationResult
        ``warped``, ``transform``, ``displacement_field``, ``warp()``, ``save()``.

    Raises
    ------
    InputImageError, PixelTypeError, GeometryError, ParameterError, TransformError
        For inputs that cannot be registered, with the reason and the fix.
    """
    method = SuitsRegistrationMethod.New(
        fixed, moving, features=features, grid_spacings=grid_spacings, iterations=iterations,
        smoothness=smoothness, learning_rate=learning_rate, tolerance=tolerance,
        initial_transform=initial_transform, device=device, threads=threads,
    )
    if fixed_mask is not None:
        method.SetFixedMask(fixed_mask)
    if spacing is not None or moving_spacing is not None:
        method.SetSpacing(spacing, moving_spacing)
    if callback is not None:
        method.AddObserver(IterationEvent, callback)
    with _progress_bar(method, progress):
        method.Update()
    return method.GetResult()


@contextlib.contextmanager
def _progress_bar(method: SuitsRegistrationMethod, enabled: bool):
    """A tqdm bar over all iterations of all scales, fed by an iteration observer."""
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    parameters = method.GetParameters().validated()
    bar = tqdm(total=sum(parameters.iterations), unit="it", desc="SUITS")
    state = {"done": 0, "scale": 0}

    def advance(info: IterationInfo) -> None:
        done = sum(parameters.iterations[: info.scale]) + info.iteration
        bar.update(done - state["done"])
        state["done"] = done
        bar.set_postfix(scale=f"{info.scale + 1}/{info.scales}", spacing=info.grid_spacing)

    tag = method.AddObserver(IterationEvent, advance)
    try:
        yield
        bar.update(sum(parameters.iterations) - state["done"])  # scales that stopped early
    finally:
        bar.close()
        method.RemoveObserver(tag)
