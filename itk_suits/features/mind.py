"""MIND-SSC: the modality independent neighbourhood descriptor, self-similarity context.

Heinrich et al., "Towards realtime multimodal fusion for image-guided interventions
using self-similarity contexts", MICCAI 2013. Each voxel is described by how similar
pairs of patches around it are to each other, so the descriptor depends on local
structure and not on how a modality maps tissue to intensity.
"""

import numbers
from itertools import combinations

import torch
import torch.nn.functional as F

from itk_suits.errors import InputImageError, ParameterError, PixelTypeError

# The variance estimate is clamped to this range around its image mean, so that flat
# regions and single strong edges do not dominate the descriptor.
_VARIANCE_CLAMP = (1e-3, 1e3)
# Added to the variance so that an image without any structure (constant, zero) has a
# finite descriptor (all ones); in units of the squared intensity range of the image.
_VARIANCE_EPS = 1e-12
# exp(-80) is still a normal float32: the exponent is capped there so that no
# descriptor value underflows to zero.
_MAX_EXPONENT = 80.0


def check_image_batch(image, argument="image"):
    """Check that ``image`` is a batch of single-channel 2D or 3D images.

    Parameters
    ----------
    image : torch.Tensor
        ``[B, 1, H, W]`` or ``[B, 1, D, H, W]``, real-valued and finite.
    argument : str
        Name of the argument, used in error messages.

    Returns
    -------
    torch.Tensor
        ``image`` as float32 on its own device (the same tensor if it already is).

    Raises
    ------
    InputImageError
        Not a tensor, wrong number of dimensions, not one channel, empty, or not finite.
    PixelTypeError
        Complex or boolean values.
    """
    if not isinstance(image, torch.Tensor):
        raise InputImageError(
            f"{argument} must be a torch.Tensor of shape [B, 1, H, W] or [B, 1, D, H, W], "
            f"got {type(image).__name__}"
        )
    if image.dim() not in (4, 5) or image.shape[1] != 1:
        raise InputImageError(
            f"{argument} must have shape [B, 1, H, W] (2D) or [B, 1, D, H, W] (3D), got "
            f"{list(image.shape)}; add batch and channel axes with image[None, None]"
        )
    if image.numel() == 0:
        raise InputImageError(f"{argument} is empty (shape {list(image.shape)})")
    if image.is_complex() or image.dtype == torch.bool:
        raise PixelTypeError(
            f"{argument} must hold real scalar intensities, got dtype {image.dtype}"
        )
    image = image.float()
    if not bool(torch.isfinite(image).all()):
        raise InputImageError(
            f"{argument} contains NaN or infinite values; replace them before feature "
            "extraction"
        )
    return image


def _ssc_pairs(ndim):
    """Neighbour pairs of the self-similarity context, one per output channel.

    Neighbours are the unit offsets ``+e_a`` and ``-e_a`` along each array axis ``a``
    (order z, y, x in 3D; y, x in 2D). 3D uses the 12 pairs of neighbours on different
    axes (distance sqrt(2)); 2D uses all 6 pairs of its 4 neighbours (4 diagonal and 2
    opposite).

    Returns
    -------
    list of tuple
        ``(p, q)`` unit offsets, each a tuple of ``ndim`` ints, in channel order.
    """
    neighbours = []
    for axis in range(ndim):
        for sign in (1, -1):
            offset = [0] * ndim
            offset[axis] = sign
            neighbours.append((axis, tuple(offset)))
    return [
        (p, q)
        for (axis_p, p), (axis_q, q) in combinations(neighbours, 2)
        if ndim == 2 or axis_p != axis_q
    ]


def _check_int(argument, value, minimum):
    """Return ``value`` as an int, or raise :class:`ParameterError` naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ParameterError(f"{argument} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _box_sum(values, radius):
    """Sum over ``(2 * radius + 1)**d`` boxes without padding (separable, one axis at a time).

    Parameters
    ----------
    values : torch.Tensor
        ``[B, C, *spatial]``.
    radius : int
        Half width of the box in voxels.

    Returns
    -------
    torch.Tensor
        ``[B, C, *(n - 2 * radius for n in spatial)]``.
    """
    if radius == 0:
        return values
    for axis in range(2, values.dim()):
        length = values.shape[axis] - 2 * radius
        total = values.narrow(axis, 0, length) + values.narrow(axis, 1, length)
        for start in range(2, 2 * radius + 1):
            total += values.narrow(axis, start, length)
        values = total
    return values


def mind_ssc(image, radius=1, dilation=2):
    """MIND-SSC descriptor of a batch of 2D or 3D images.

    For each pair ``(p, q)`` of neighbour offsets at distance ``dilation`` voxels along
    the array axes, ``D_pq(x)`` is the mean of ``(I(x + p) - I(x + q))**2`` over a
    ``(2 * radius + 1)**d`` patch around ``x``. ``D`` minus its per-voxel minimum over
    the channels is divided by a local variance ``V`` (the per-voxel mean over the
    channels, clamped per image to ``[1e-3, 1e3]`` times its image mean) and mapped
    through ``exp(-D / V)``. The channel holding the minimum is exactly 1, so every
    voxel's descriptor already has maximum 1 over its channels.

    Intensities are scaled by their range first; as the descriptor is invariant to
    ``a * I + b`` this only fixes the scale of the small constant that keeps images
    without structure finite. Borders are handled by replicating edge voxels.

    Parameters
    ----------
    image : torch.Tensor
        ``[B, 1, H, W]`` (2D) or ``[B, 1, D, H, W]`` (3D) intensities, any real dtype
        (computed in float32), any device. Differentiable.
    radius : int
        Half width of the patch (box filter) in voxels, ``>= 0``.
    dilation : int
        Distance of the neighbour offsets from the centre voxel in voxels, ``>= 1``.

    Returns
    -------
    torch.Tensor
        ``[B, 6, H, W]`` in 2D or ``[B, 12, D, H, W]`` in 3D, float32, on the device of
        ``image``, values in ``(0, 1]``. Constant images give all ones.
        The channels follow the pairs ``(n_i, n_j)``, ``i < j``, of the neighbours
        ``n = (+z, -z, +y, -y, +x, -x)`` (3D) or ``(+y, -y, +x, -x)`` (2D) in order of
        ``i``, then ``j``; 3D leaves out the pairs on one axis.

    Raises
    ------
    InputImageError, PixelTypeError
        ``image`` is not a finite real ``[B, 1, ...]`` tensor (see
        :func:`check_image_batch`).
    ParameterError
        ``radius`` or ``dilation`` out of range.

    Examples
    --------
    >>> import torch
    >>> from itk_suits.features import mind_ssc
    >>> mind_ssc(torch.rand(1, 1, 32, 32)).shape
    torch.Size([1, 6, 32, 32])
    """
    image = check_image_batch(image)
    radius = _check_int("radius", radius, minimum=0)
    dilation = _check_int("dilation", dilation, minimum=1)
    ndim = image.dim() - 2
    size = image.shape[2:]

    # Range normalisation per batch item; a constant image is left as it is.
    lowest, highest = torch.aminmax(image.flatten(1), dim=1)
    value_range = highest - lowest
    value_range = torch.where(value_range > 0, value_range, torch.ones_like(value_range))
    image = image / value_range.view(-1, *([1] * (ndim + 1)))

    # D_pq(x) = B_v(x + p) with v = q - p and B_v = box((I(y) - I(y + v))**2): D is
    # symmetric in p and q, so each pair is ordered to make v canonical (first nonzero
    # component positive), and pairs sharing v share one box-filtered map. B_v is
    # needed on the domain grown by `dilation`, its squared differences on the domain
    # grown by `dilation + radius`, and those read the image up to `2 * dilation`
    # further.
    pairs = []
    for p, q in _ssc_pairs(ndim):
        v = tuple(b - a for a, b in zip(p, q))
        if next(c for c in v if c) < 0:
            p, q, v = q, p, tuple(-c for c in v)
        pairs.append((p, v))
    vectors = sorted({v for _, v in pairs})

    grow = dilation + radius
    margin = grow + 2 * dilation
    padded = F.pad(image, [margin] * (2 * ndim), mode="replicate")

    def window(shift, extent):
        """Slice of ``padded`` of size ``n + 2 * extent`` per axis, moved by ``shift``."""
        return padded[
            (Ellipsis,)
            + tuple(
                slice(margin - extent + s, margin + n + extent + s) for s, n in zip(shift, size)
            )
        ]

    centre = window((0,) * ndim, grow)
    squared = torch.cat(
        [(centre - window([dilation * c for c in v], grow)).square() for v in vectors], dim=1
    )
    boxed = _box_sum(squared, radius)

    channels = []
    for p, v in pairs:
        k = vectors.index(v)
        channels.append(
            boxed[
                (slice(None), slice(k, k + 1))
                + tuple(
                    slice(dilation * (1 + s), dilation * (1 + s) + n) for s, n in zip(p, size)
                )
            ]
        )
    distance = torch.cat(channels, dim=1)

    # The box filter's 1 / (2 * radius + 1)**d cancels in distance / variance.
    # exponent = distance * w - minimum * w with w = -1 / variance: both products round
    # the same way, so the exponent is <= 0 and exactly 0 on the channel holding the
    # minimum. Subtraction, clamp and exp run in place on the fresh product (none of them
    # needs its input for the gradient).
    minimum = distance.amin(dim=1, keepdim=True)
    # mean(distance) - minimum can round below zero where all channels are equal.
    variance = (distance.mean(dim=1, keepdim=True) - minimum).clamp_(min=0.0)
    image_mean = variance.flatten(1).mean(dim=1).view(-1, *([1] * (ndim + 1)))
    variance = torch.minimum(
        torch.maximum(variance, _VARIANCE_CLAMP[0] * image_mean), _VARIANCE_CLAMP[1] * image_mean
    )
    weight = -1.0 / (variance + _VARIANCE_EPS)
    exponent = (distance * weight).sub_(minimum * weight)
    return exponent.clamp_(min=-_MAX_EXPONENT).exp_()
