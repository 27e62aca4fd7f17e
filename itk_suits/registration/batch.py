"""One descent for one or several prepared pairs: what a registration hands to the engine.

A registration is three steps (:class:`~itk_suits.registration.SuitsRegistrationMethod`):
prepare a pair (read and check the inputs, the initial transform, the
features), run the multi-scale descent, and finish the pair (the field
becomes transforms and a result). :func:`descend` is the middle step for a
list of prepared pairs whose fixed images have the same size: their features
are stacked into one batch ``[B, C, *spatial]`` and run as one
:class:`~itk_suits.core.MultiScaleDescent`, where early stopping is decided
per pair, so each pair gets the field of a run of its own. A single
registration is a batch of one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import SimpleITK as sitk
import torch

from ..core import DescentSettings, EarlyStopping, IterationInfo, MultiScaleDescent
from ..errors import ParameterError
from . import resources
from .inputs import WorkingGrid
from .parameters import RegistrationParameters

__all__ = ["PreparedPair", "BatchDescent", "descend"]


@dataclass
class PreparedPair:
    """Everything one pair needs before the descent, and what its result is built from.

    Attributes
    ----------
    parameters : RegistrationParameters
        Validated parameters.
    fixed, moving : SimpleITK.Image
        The float32 inputs as read (geometry kept).
    kind : {"itk", "sitk", "numpy"}
        The library of the caller's fixed image.
    initial : SimpleITK.Transform or None
        The initial alignment, fixed -> moving physical points.
    moving_on_fixed : SimpleITK.Image
        The moving image resampled onto the fixed grid with the initial transform.
    device : torch.device
        Where the descent runs.
    threads : int or None
        torch CPU threads of the run (``None``: unchanged).
    channels : int
        Feature channels.
    fixed_features, moving_features : torch.Tensor or None
        ``[1, C, *working.shape]`` features on the working grid (the fixed grid,
        a coarser one of the same extent for large images, or an about isotropic
        one); handed over to the descent (``None`` afterwards).
    fixed_mask, moving_mask : torch.Tensor or None
        ``[1, 1, *working.shape]``: the fixed mask and the moving field of view on
        the working grid (``None``: everywhere).
    working : WorkingGrid
        The grid of the features and the descent.
    seconds : float
        Wall time of the preparation.
    linear_log : list of dict or None
        The log of the linear stage (``None``: none ran); ``initial`` then includes it.
    fixed_intensity, moving_intensity : torch.Tensor or None
        ``[1, 1, *feature grid]``: the fixed image and the moving image on the
        fixed grid, when the metric uses the mutual information (handed over
        to the descent like the features).
    """

    parameters: RegistrationParameters
    fixed: sitk.Image
    moving: sitk.Image
    kind: str
    initial: sitk.Transform | None
    moving_on_fixed: sitk.Image
    device: torch.device
    threads: int | None
    channels: int
    fixed_features: torch.Tensor | None
    moving_features: torch.Tensor | None
    fixed_mask: torch.Tensor | None
    moving_mask: torch.Tensor | None
    working: WorkingGrid
    seconds: float
    linear_log: list | None = None
    fixed_intensity: torch.Tensor | None = None
    moving_intensity: torch.Tensor | None = None


@dataclass
class BatchDescent:
    """The outcome of :func:`descend`.

    Attributes
    ----------
    descent : MultiScaleDescent
        The finished descent: ``coefficients`` ``[B, ndim, *grid]`` (voxels),
        ``grid_spacing``, ``log`` and ``element_log(b)``.
    seconds : float
        Wall time of the descent, shared by the pairs of the batch.
    """

    descent: MultiScaleDescent
    seconds: float


def _batch_settings(pair: PreparedPair) -> tuple:
    """What must be equal for pairs to share a descent."""
    p = pair.parameters
    return (tuple(pair.fixed.GetSize()), pair.working, str(pair.device), pair.channels, p.grid_spacings,
            p.grid_unit, p.iterations, p.smoothness, p.learning_rate, p.tolerance, p.metric, p.mi_weight, p.mi_bins)


def _stacked(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """``[B, ...]`` from ``[1, ...]`` tensors (a batch of one is not copied); ``None`` for ``None``s."""
    if tensors[0] is None:
        return None
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def _stacked_masks(masks: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor | None:
    """``[B, 1, ...]`` masks, ones for the pairs without one; ``None`` when no pair has one."""
    if all(mask is None for mask in masks):
        return None
    ones = torch.ones_like(like[:1, :1])
    return _stacked([ones if mask is None else mask for mask in masks])


def _report_scale(entry: dict, parameters: RegistrationParameters, callback: Callable[[dict], None] | None) -> None:
    """Give a finished scale's log entry the control spacing as the caller gave it, then pass it on."""
    entry.update(grid_spacing=parameters.grid_spacings[entry["scale"]], grid_unit=parameters.grid_unit)
    if callback is not None:
        callback(entry)


def descend(
    pairs: Sequence[PreparedPair],
    callback: Callable[[IterationInfo], None] | None = None,
    scale_callback: Callable[[dict], None] | None = None,
) -> BatchDescent:
    """Run one multi-scale descent for prepared pairs of the same fixed size and schedule.

    Parameters
    ----------
    pairs : sequence of PreparedPair
        One or more pairs; their features are handed over (set to ``None``).
    callback, scale_callback : callable, optional
        Called with the batch's :class:`~itk_suits.core.IterationInfo` every
        iteration, and with the batch's log entry when a scale ends.

    Returns
    -------
    BatchDescent
        Element ``b`` of the batch is ``pairs[b]``.

    Raises
    ------
    ParameterError
        The pairs differ in fixed size, device, feature channels or schedule.
    ResourceError
        The batch does not fit in memory (checked before, and caught during the run).
    """
    first = pairs[0]
    if any(_batch_settings(pair) != _batch_settings(first) for pair in pairs):
        raise ParameterError("pairs run as one batch need the same fixed image size, device, features and schedule")
    size, channels, device = first.fixed.GetSize(), first.channels * len(pairs), first.device
    if len(pairs) > 1:
        resources.check_memory(size, channels, device)
    start = time.perf_counter()
    with resources.torch_threads(first.threads), torch.no_grad(), \
            resources.out_of_memory_guard(size, channels, device):
        fixed = _stacked([pair.fixed_features for pair in pairs])
        moving = _stacked([pair.moving_features for pair in pairs])
        fixed_intensity = _stacked([pair.fixed_intensity for pair in pairs])
        moving_intensity = _stacked([pair.moving_intensity for pair in pairs])
        for pair in pairs:
            pair.fixed_features = pair.moving_features = pair.fixed_intensity = pair.moving_intensity = None
        like = fixed if fixed is not None else fixed_intensity
        parameters = first.parameters
        # control spacings in working voxels per axis
        schedule = [replace(scale, grid_spacing=first.working.control_spacing(scale.grid_spacing, parameters.grid_unit))
                    for scale in parameters.schedule()]
        descent = MultiScaleDescent(
            fixed,
            moving,
            schedule,
            DescentSettings(learning_rate=parameters.learning_rate, channels=parameters.channels,
                            samples=parameters.samples, seed=parameters.seed, metric=parameters.metric,
                            mi_bins=parameters.mi_bins),
            EarlyStopping(tolerance=parameters.tolerance),
            fixed_mask=_stacked_masks([pair.fixed_mask for pair in pairs], like),
            moving_mask=_stacked_masks([pair.moving_mask for pair in pairs], like),
            callback=callback,
            scale_callback=lambda entry: _report_scale(entry, parameters, scale_callback),
            output_shape=tuple(reversed(size)),
            fixed_intensity=fixed_intensity,
            moving_intensity=moving_intensity,
        )
        del fixed, moving, like, fixed_intensity, moving_intensity  # the descent holds what it needs
        descent.run(dense=False)
        # the result needs only the control grids
        descent.fixed_features = descent.moving_features = descent.fixed_bins = descent.moving_bins = None
    return BatchDescent(descent, time.perf_counter() - start)
