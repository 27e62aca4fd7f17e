"""The descent step of the B-spline descent module (the paper's eq. 1-3).

For each feature channel ``c`` the linearised sum of squared differences with a
locally adaptive step penalty ``lambda = (M_c - F_c)**2`` (Vercauteren et al.
2009) has the closed-form minimiser

    delta_c = (F_c - M_c) * grad(M_c) / (lambda + |grad(M_c)|**2 + eps)

and the step is the mean of ``delta_c`` over channels (Guimond et al. 2002).
``M`` is the moving feature image already warped by the current
displacement, ``grad`` its derivative in voxels, so ``delta`` is in voxels and
at most half a voxel per channel. ``eps`` is the confidence floor: where the
features are flat (gradient and difference both tiny) the step fades to zero
instead of becoming a full-size random force.

Every operation is differentiable, so the same function serves inference
(under ``torch.no_grad``) and training of the feature networks.
"""

from __future__ import annotations

import torch

from .warp import central_difference, central_differences

__all__ = ["descent_step", "confidence_floor"]


def descent_step(
    fixed: torch.Tensor,
    moving_warped: torch.Tensor,
    eps: float | torch.Tensor,
    valid: torch.Tensor | None = None,
    gradients: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per-voxel descent direction for the displacement (eq. 3, channel mean).

    Parameters
    ----------
    fixed : torch.Tensor
        Fixed features ``F``, ``[B, C, *spatial]``.
    moving_warped : torch.Tensor
        Moving features warped onto the fixed grid, ``[B, C, *spatial]``.
    eps : float or torch.Tensor
        Confidence floor added to the denominator, in squared feature units
        (a tensor broadcastable to ``[B, C, *spatial]`` for one value per image).
    valid : torch.Tensor, optional
        ``[B, 1, *spatial]`` weights in [0, 1]: where the step is trusted (the
        fixed mask times the moving field of view). The step is multiplied by it.
    gradients : list of torch.Tensor, optional
        ``ndim`` tensors ``[B, C, *spatial]``: the derivatives of ``M`` along x,
        y[, z] in voxels, when they come from elsewhere (the moving features'
        derivatives warped along with them, on sampled lattices); by default the
        central differences of ``moving_warped``.

    Returns
    -------
    torch.Tensor
        ``[B, ndim, *spatial]`` in voxels, components (x, y[, z]): the change of
        the displacement ``u`` that lowers the dissimilarity.
    """
    if gradients is None:
        gradients = central_differences(moving_warped)
    difference = fixed - moving_warped
    denominator = difference.square().add_(eps)
    for gradient in gradients:
        denominator.addcmul_(gradient, gradient)
    ratio = difference / denominator
    step = torch.stack([(ratio * gradient).mean(dim=1) for gradient in gradients], dim=1)
    if valid is not None:
        step = step * valid
    return step


def confidence_floor(features: torch.Tensor, fraction: float) -> torch.Tensor:
    """Confidence floor ``eps`` as a fraction of the mean squared gradient norm.

    Scaling the floor with the features' own gradient energy makes the step
    independent of the feature units (MIND in [0, 1], learned features of any
    range).

    Parameters
    ----------
    features : torch.Tensor
        ``[B, C, *spatial]``, usually the fixed features.
    fraction : float
        Multiplier of the mean ``|grad F|**2``.

    Returns
    -------
    torch.Tensor
        ``[B, 1, ...]`` broadcastable per-image floor.
    """
    # one axis at a time: no [B, C, ndim, ...] stack of derivatives (large images)
    mean_energy = sum(central_difference(features, dim).square().flatten(1).mean(dim=1, keepdim=True)
                      for dim in range(2, features.ndim))
    shape = (features.shape[0], 1) + (1,) * (features.ndim - 2)
    return (fraction * mean_energy).reshape(shape) + 1e-12
