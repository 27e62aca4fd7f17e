"""Signed distance maps of label maps: the supervision of SUITS feature learning.

For a label map and a list of labels, :func:`signed_distance_maps` returns one
channel for the background and one per label,

    SDM_l(x) = tanh(alpha * d_l(x)),   alpha = 0.01 per mm by default,

where ``d_l`` is ITK's signed Maurer distance (``SignedMaurerDistanceMap`` with
the image spacing) in **millimetres**: **negative inside** the label, **positive
outside**, 0 on the label's boundary voxels (its voxels that touch the outside),
one spacing on the outside voxels next to them. With alpha = 0.01 the maps are
almost linear within a few centimetres of a boundary (tanh(0.1) = 0.0997 at
10 mm) and saturate towards -1 / +1 far away. The background is every voxel
that carries none of the listed labels. A label absent from an image gives a
constant channel of +1 (everywhere outside), so that every image of a data set
has the same channels in the same order; a label that fills the whole image
gives -1.

How the channels enter the descent step
---------------------------------------
The SDM stream uses the same descent step as the feature stream
(:func:`itk_suits.core.descent_step`): each of the ``L + 1`` channels gives
``delta_c = (F_c - M_c) grad(M_c) / ((M_c - F_c)**2 + |grad(M_c)|**2 + eps)`` and
the step is the **mean** over channels, not the sum. In tanh's linear range a
channel misaligned by ``s`` voxels along its boundary normal gives
``delta_c = s / (1 + s**2)`` whatever alpha is: at most half a voxel, like each
feature channel. The feature step is a mean over its channels too, so the mean
keeps the target Δ_SDM on the scale the features can reach; a sum would grow
with the label count, beyond what 8 feature channels can produce, and the
regression would chase an unreachable target. The mean still depends mildly
on the label count (channels of distant labels point in other directions and
partly cancel), which is why training supervises only near boundaries
(``|SDM| < 0.1``, i.e. within about 10 mm at alpha = 0.01).
"""

from __future__ import annotations

import numbers

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import InputImageError, ParameterError, PixelTypeError

__all__ = ["DEFAULT_ALPHA", "signed_distance_maps"]

#: Scale of the tanh in 1/mm, as in the paper.
DEFAULT_ALPHA = 0.01


def _label_array(labels, spacing):
    """Integer label array (array order) and spacing (x, y[, z]) of a label map."""
    if isinstance(labels, sitk.Image):
        if spacing is not None:
            raise ParameterError("spacing is only used with numpy label maps; a SimpleITK image carries its own")
        if labels.GetNumberOfComponentsPerPixel() != 1:
            raise PixelTypeError("labels must be a scalar label image, not a vector image")
        array, spacing = sitk.GetArrayFromImage(labels), labels.GetSpacing()
    elif isinstance(labels, np.ndarray):
        array = labels
        ndim = array.ndim
        spacing = (1.0,) * ndim if spacing is None else spacing
        spacing = (float(spacing),) * ndim if np.ndim(spacing) == 0 else tuple(float(s) for s in spacing)
    else:
        raise InputImageError(
            f"labels must be a SimpleITK image or a numpy array, not {type(labels).__name__}"
        )
    if array.ndim not in (2, 3) or array.size == 0:
        raise InputImageError(f"labels must be a non-empty 2D or 3D label map, got shape {array.shape}")
    if array.dtype.kind not in "biu":
        raise PixelTypeError(
            f"labels must hold integer labels, got dtype {array.dtype}; convert with array.astype(int) "
            "(or SimpleITK.Cast(labels, SimpleITK.sitkUInt16))"
        )
    if len(spacing) != array.ndim or min(spacing) <= 0 or not np.all(np.isfinite(spacing)):
        raise ParameterError(
            f"spacing must hold {array.ndim} positive numbers in (x, y[, z]) order, got {spacing}"
        )
    return array, spacing


def _check_labels_list(labels_list):
    values = list(labels_list)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise ParameterError(f"labels_list must hold integer labels, got {labels_list!r}")
    values = [int(v) for v in values]
    if 0 in values:
        raise ParameterError("labels_list must not contain 0: the background channel is always the first one")
    if len(set(values)) != len(values):
        raise ParameterError(f"labels_list has repeated labels: {values}")
    return values


def _tanh_distance(region, spacing, alpha):
    """tanh(alpha * signed distance in mm) of a boolean region (negative inside)."""
    if not region.any():
        return np.ones(region.shape, np.float32)
    if region.all():
        return -np.ones(region.shape, np.float32)
    image = sitk.GetImageFromArray(region.astype(np.uint8))
    image.SetSpacing(spacing)
    distance = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return np.tanh(alpha * sitk.GetArrayViewFromImage(distance)).astype(np.float32)


def signed_distance_maps(labels, labels_list, spacing=None, alpha=DEFAULT_ALPHA):
    """tanh-scaled signed distance maps of the background and each label.

    Parameters
    ----------
    labels : SimpleITK.Image or numpy.ndarray
        Integer label map, 2D or 3D (numpy arrays indexed ``[z,] y, x``).
    labels_list : sequence of int
        The labels to describe, in channel order (0 not allowed: the
        background is always channel 0). Use the same list for every image of
        a data set so that channels correspond.
    spacing : float or sequence of float, optional
        Voxel size in mm, (x, y[, z]) order; numpy arrays only (default 1).
    alpha : float
        Scale of the tanh in 1/mm.

    Returns
    -------
    numpy.ndarray
        ``[len(labels_list) + 1, *array_shape]`` float32 in [-1, 1]: channel 0 the
        background (voxels with none of the listed labels), channel ``i`` label
        ``labels_list[i - 1]``; ``tanh(alpha * d)`` with ``d`` the signed distance
        in mm, negative inside. Constant +1 for a label absent from the image.

    Raises
    ------
    InputImageError, PixelTypeError
        Not a 2D/3D integer label map.
    ParameterError
        Bad ``labels_list``, ``spacing`` or ``alpha``.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((32, 32), np.uint8); labels[8:24, 8:24] = 1
    >>> maps = signed_distance_maps(labels, [1, 2], spacing=(0.5, 0.5))
    >>> maps.shape, float(maps[2].min())                  # label 2 is absent: all +1
    ((3, 32, 32), 1.0)
    """
    array, spacing = _label_array(labels, spacing)
    values = _check_labels_list(labels_list)
    if not (isinstance(alpha, numbers.Real) and alpha > 0 and np.isfinite(alpha)):
        raise ParameterError(f"alpha must be a positive number (1/mm), got {alpha!r}")
    background = ~np.isin(array, values)
    regions = [background] + [array == value for value in values]
    return np.stack([_tanh_distance(region, spacing, float(alpha)) for region in regions])
