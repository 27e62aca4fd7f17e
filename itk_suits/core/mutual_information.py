"""Mattes mutual information of sampled intensities, and the force it exerts on a displacement.

The joint histogram is a Parzen-window estimate (Mattes et al. 2003, as in
ITK's ``MattesMutualInformationImageToImageMetricv4``): each sample adds a
cubic B-spline kernel centred on its moving bin coordinate and a zero-order
(box) or cubic B-spline kernel centred on its fixed bin coordinate. The
kernel's derivative is continuous, so the mutual information is a smooth
function of the moving values, differentiated here by autograd.

Intensities enter as bin coordinates in ``[0, bins - 1]``
(:func:`intensity_range`, :func:`to_bin_coordinates`); the histogram has one
padding bin on either side, so a cubic kernel centred anywhere in that range
keeps its whole mass.
"""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["intensity_range", "to_bin_coordinates", "mutual_information", "mutual_information_force"]

#: Voxels at most used to estimate the intensity percentiles of one image.
_RANGE_SAMPLES = 2**20


def intensity_range(image: torch.Tensor, mask: torch.Tensor | None = None,
                    percentiles: tuple[float, float] = (0.5, 99.5)) -> torch.Tensor:
    """Robust intensity range of each image: its low and high percentiles.

    Parameters
    ----------
    image : torch.Tensor
        ``[B, 1, *spatial]`` intensities.
    mask : torch.Tensor, optional
        ``[B, 1, *spatial]``: only voxels where it exceeds 0.5 count (all when
        ``None``, or when an image's mask is empty).
    percentiles : tuple of float
        Low and high percentile, in [0, 100].

    Returns
    -------
    torch.Tensor
        ``[B, 2]``: low and high value per image (high > low).
    """
    quantiles = torch.tensor([p / 100.0 for p in percentiles], device=image.device, dtype=image.dtype)
    ranges = []
    for b in range(image.shape[0]):
        values = image[b].reshape(-1)
        if mask is not None:
            inside = values[mask[b].reshape(-1) > 0.5]
            values = inside if inside.numel() else values
        step = max(1, values.numel() // _RANGE_SAMPLES)  # torch.quantile has a size limit
        low, high = torch.quantile(values[::step], quantiles)
        ranges.append(torch.stack([low, torch.maximum(high, low + 1e-6 * (low.abs() + 1.0))]))
    return torch.stack(ranges)


def to_bin_coordinates(image: torch.Tensor, value_range: torch.Tensor, bins: int) -> torch.Tensor:
    """Intensities ``[B, 1, *spatial]`` mapped linearly from ``value_range`` ``[B, 2]`` onto
    ``[0, bins - 1]``, clamped."""
    shape = (-1,) + (1,) * (image.ndim - 1)
    low, high = value_range[:, 0].reshape(shape), value_range[:, 1].reshape(shape)
    return ((image - low) / (high - low) * (bins - 1)).clamp_(0.0, bins - 1.0)


def _cubic_weights(coordinate: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The four histogram bins (padded index) a cubic kernel at ``coordinate`` reaches, and its weights.

    ``coordinate`` ``[B, N]`` in [0, bins - 1]; returns the padded index of the
    first bin ``[B, N]`` (long) and four weight tensors ``[B, N]`` summing to one.
    """
    base = coordinate.detach().floor().clamp_(0, None)
    t = coordinate - base  # in [0, 1]; bins base - 1 .. base + 2 at distances 1 + t, t, 1 - t, 2 - t
    s = 1.0 - t
    t2, s2 = t * t, s * s
    t3, s3 = t2 * t, s2 * s
    weights = [s3 / 6.0, 0.5 * t3 - t2 + 2.0 / 3.0, 0.5 * s3 - s2 + 2.0 / 3.0, t3 / 6.0]
    return base.long(), weights  # padded index of bin base - 1 is base


def _cubic_derivatives(coordinate: torch.Tensor) -> list[torch.Tensor]:
    """Derivatives with respect to ``coordinate`` of the four weights of :func:`_cubic_weights`."""
    t = coordinate - coordinate.floor().clamp_(0, None)
    s = 1.0 - t
    return [-0.5 * s * s, t * (1.5 * t - 2.0), s * (2.0 - 1.5 * s), 0.5 * t * t]


def _joint_histogram(fixed: torch.Tensor, moving: torch.Tensor, weights: torch.Tensor, bins: int,
                     fixed_kernel: str) -> torch.Tensor:
    """Unnormalised Parzen joint histogram ``[B, bins + 3, bins + 3]`` (fixed, moving), padded bins."""
    batch, count = moving.shape
    size = bins + 3  # one padding bin below 0, two above bins - 1 (the kernel's last bin may carry zero weight)
    offset = (torch.arange(batch, device=moving.device) * size * size)[:, None]
    moving_base, moving_weights = _cubic_weights(moving)
    if fixed_kernel == "box":
        fixed_terms = [(fixed.detach().round().long() + 1, weights)]
    elif fixed_kernel == "cubic":
        fixed_base, fixed_weights = _cubic_weights(fixed.detach())
        fixed_terms = [(fixed_base + i, w * weights) for i, w in enumerate(fixed_weights)]
    else:
        raise ParameterError(f"fixed_kernel must be 'box' or 'cubic', got {fixed_kernel!r}")
    histogram = moving.new_zeros(batch * size * size)
    for fixed_index, fixed_weight in fixed_terms:
        for j, moving_weight in enumerate(moving_weights):
            index = offset + fixed_index * size + moving_base + j
            histogram = histogram.index_add(0, index.reshape(-1), (fixed_weight * moving_weight).reshape(-1))
    return histogram.reshape(batch, size, size)


def _entropy_sum(p: torch.Tensor, dims) -> torch.Tensor:
    """``sum p log p`` over ``dims`` (zero where ``p`` is zero)."""
    return (p * torch.log(p.clamp_min(1e-30))).sum(dim=dims)


def mutual_information(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    weights: torch.Tensor | None = None,
    bins: int = 32,
    fixed_kernel: str = "box",
) -> torch.Tensor:
    """Mattes mutual information of paired samples, one value per batch element.

    Parameters
    ----------
    fixed, moving : torch.Tensor
        ``[B, N]`` sample values in bin coordinates, in ``[0, bins - 1]``
        (see :func:`to_bin_coordinates`); differentiable w.r.t. ``moving``.
    weights : torch.Tensor, optional
        ``[B, N]`` non-negative sample weights (0: the sample is ignored).
    bins : int
        Histogram bins per image.
    fixed_kernel : {"box", "cubic"}
        Parzen kernel on the fixed side: zero-order (as ITK) or cubic B-spline.

    Returns
    -------
    torch.Tensor
        ``[B]`` mutual information in nats (0 for a batch element without weight).
    """
    if weights is None:
        weights = torch.ones_like(moving)
    joint = _joint_histogram(fixed, moving, weights, bins, fixed_kernel)
    total = joint.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    joint = joint / total
    return (_entropy_sum(joint, (1, 2)) - _entropy_sum(joint.sum(dim=2), 1) - _entropy_sum(joint.sum(dim=1), 1))


def mutual_information_force(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    gradients: list[torch.Tensor],
    weights: torch.Tensor,
    bins: int = 32,
) -> torch.Tensor:
    """The displacement change that increases the mutual information, per sample.

    ``g_i = W * dMI/dm_i * grad m_i`` with ``W`` the total sample weight, so
    that the force does not shrink as more samples share the histogram.

    ``dMI/dm_i`` is taken in closed form from the joint probabilities ``p``
    (box kernel on the fixed side, as :func:`mutual_information`'s default):
    every sample's kernel weights sum to one, so the total weight and the fixed
    marginal do not depend on ``m_i``, and
    ``W dMI/dm_i = w_i sum_j (log p[f_i, j] - log p_m[j]) dK_j(m_i)/dm_i`` over
    the four moving bins ``j`` its cubic kernel ``K`` reaches (about twice as
    fast as differentiating :func:`mutual_information` by autograd).

    Parameters
    ----------
    fixed, moving : torch.Tensor
        ``[B, 1, *spatial]`` fixed and warped moving values in bin coordinates.
    gradients : list of torch.Tensor
        ``ndim`` tensors ``[B, 1, *spatial]``: derivatives of the warped moving
        values along x, y[, z] in voxels (bin coordinates per voxel).
    weights : torch.Tensor
        ``[B, 1, *spatial]`` in [0, 1]: where samples count (fixed mask times
        moving field of view).
    bins : int
        Histogram bins.

    Returns
    -------
    torch.Tensor
        ``[B, ndim, *spatial]``, components (x, y[, z]); zero where ``weights`` is.
    """
    batch = moving.shape[0]
    size = bins + 3
    flat_fixed = fixed.detach().reshape(batch, -1)
    values = moving.detach().reshape(batch, -1)
    flat_weights = weights.detach().reshape(batch, -1).to(values)
    joint = _joint_histogram(flat_fixed, values, flat_weights, bins, "box")
    joint = joint / joint.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    # d MI / d p(f, m) less the terms that every sample's unit kernel mass cancels
    log_ratio = torch.log(joint.clamp_min(1e-30)) - torch.log(joint.sum(dim=1, keepdim=True).clamp_min(1e-30))
    # each sample's first cell (padded bins), formed in floating point: exact for these whole numbers, and
    # integer arithmetic on large tensors is several times slower here
    first = ((flat_fixed.round() + 1.0) * size + values.floor().clamp_(0, None)).long()
    table = log_ratio.reshape(batch, -1)
    derivative = torch.zeros_like(values)
    for j, kernel in enumerate(_cubic_derivatives(values)):
        derivative += torch.gather(table, 1, first + j) * kernel
    derivative = (derivative * flat_weights).reshape(moving.shape)
    return torch.cat([derivative * gradient for gradient in gradients], dim=1) * weights
