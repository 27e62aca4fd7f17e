"""Feature-learning losses of one presentation of a pair.

Both losses start from the pair's current control grid (its alignment state)
and return the loss of the feature networks together with the same loss for
*constant* features, whose descent step is zero. Their ratio is the collapse
signal: a ratio that does not fall clearly below one means the features have
learned nothing the constant ones do not: the step MSE is lowered most
cheaply by steps that vanish (a collapse minimum).

* :func:`step_matching_loss` is the paper's Algorithm 1: the mean squared
  difference between the descent step of the features and the descent step
  of the signed distance maps (SDMs), on the band ``|SDM| < band`` of the fixed
  or the warped moving SDMs; or, selectable, one minus their cosine, which has
  no collapse minimum.
* :func:`unrolled_alignment_loss` back-propagates through ``K`` (gradient-step)
  grid iterations driven by the features and scores the alignment they reach: the
  mean squared difference between the warped moving SDMs and the fixed SDMs
  over the whole image, so that steps outside the border band are supervised
  too.
* :func:`sdm_regression_loss` anchors the features in anatomy: each image's
  features regress the SDMs of merged label groups of that image
  (:func:`sdm_targets`). Both modalities then map to the same function of
  the anatomy, so the brightness constancy the descent step assumes holds at
  the right alignment by construction; its constant-feature loss is that of
  the best constant features (each target channel's variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.descent import confidence_floor
from ..core.optimizer import BSplineDescentStep, DescentSettings

__all__ = ["LossValue", "STEP_LOSSES", "sdm_fit", "sdm_regression_loss", "sdm_targets", "step_matching_loss",
           "unrolled_alignment_loss"]


@dataclass
class LossValue:
    """A loss (differentiable) and the loss of constant features (a float)."""

    loss: torch.Tensor
    constant: float

    @property
    def ratio(self) -> float:
        """``loss / constant``: below one only when the features beat constant ones."""
        return float(self.loss.detach()) / max(self.constant, 1e-12)


STEP_LOSSES = ("mse", "cosine")


def step_matching_loss(
    module: BSplineDescentStep,
    fixed_features: torch.Tensor,
    moving_features: torch.Tensor,
    fixed_sdm: torch.Tensor,
    moving_sdm: torch.Tensor,
    coefficients: torch.Tensor,
    settings: DescentSettings,
    band: float = 0.1,
    kind: str = "mse",
) -> LossValue:
    """Mismatch of the feature step and the SDM step on the organ-border band (Algorithm 1).

    ``kind="mse"`` is the paper's mean squared error. ``kind="cosine"`` is
    ``1 - cos`` of the two step fields over the band (one minus their
    band-weighted correlation): scale-invariant, like the grid optimizer that
    consumes the steps, so shrinking the feature step towards zero no longer
    lowers the loss (the collapse minimum of the MSE). Constant features score
    1 under it, uncorrelated ones about 1, perfect ones 0.

    Parameters
    ----------
    module : BSplineDescentStep
        The scale's descent module.
    fixed_features, moving_features : torch.Tensor
        Working-level features ``[1, C, *working]`` (tracked by autograd).
    fixed_sdm, moving_sdm : torch.Tensor
        Working-level SDMs ``[1, L + 1, *working]``.
    coefficients : torch.Tensor
        The pair's control grid (not tracked).
    settings : DescentSettings
        Supplies the confidence floor fraction.
    band : float
        Supervised where ``|fixed SDM| < band`` or ``|warped moving SDM| < band`` in
        any channel.
    kind : {"mse", "cosine"}
        The mismatch measure.
    """
    eps = confidence_floor(fixed_features.detach(), settings.confidence)
    feature_step = module.step(fixed_features, moving_features, coefficients, eps)
    with torch.no_grad():
        sdm_step = module.step(fixed_sdm, moving_sdm, coefficients, confidence_floor(fixed_sdm, settings.confidence))
        warped_sdm = module.warp(moving_sdm, coefficients)
        near = (fixed_sdm.abs() < band).any(dim=1, keepdim=True) | (warped_sdm.abs() < band).any(dim=1, keepdim=True)
        weight = near.to(feature_step)
        count = weight.sum().clamp(min=1.0) * feature_step.shape[1]
    if kind == "cosine":
        inner = (weight * feature_step * sdm_step).sum()
        norms = ((weight * feature_step**2).sum() * (weight * sdm_step**2).sum() + 1e-24).sqrt()
        return LossValue(1.0 - inner / norms, 1.0)
    constant = float((weight * sdm_step**2).sum() / count)
    loss = (weight * (feature_step - sdm_step) ** 2).sum() / count
    return LossValue(loss, constant)


def unrolled_alignment_loss(
    module: BSplineDescentStep,
    fixed_features: torch.Tensor,
    moving_features: torch.Tensor,
    fixed_sdm: torch.Tensor,
    moving_sdm: torch.Tensor,
    coefficients: torch.Tensor,
    smoothness: float,
    settings: DescentSettings,
    steps: int = 10,
    step_size: float = 2.0,
) -> tuple[LossValue, torch.Tensor]:
    """Alignment of the SDMs after ``steps`` differentiable grid iterations.

    The unrolled iterations are plain gradient steps on the control grid,
    ``c <- c - step_size * g`` with ``g`` the grid gradient (support-weighted mean
    descent step in voxels plus the smoothness gradient), not Adam steps: Adam
    divides each control point's gradient by its own running magnitude, so its
    first steps are sign-like and their derivative with respect to the features
    nearly vanishes, which starves the feature networks of signal. The loss is
    the mean squared difference between the warped moving SDMs and the fixed
    SDMs over the whole working level (supervising outside the border band
    too); the constant-feature loss is the same difference at the starting
    grid (constant features do not move it).

    Parameters
    ----------
    step_size : float
        Voxels of control-point motion per voxel of mean descent step (the mean
        step is at most half a voxel, so 2 moves at most one voxel per iteration).

    Returns
    -------
    (LossValue, torch.Tensor)
        The loss and the control grid reached (detached), so the caller can
        carry the pair's alignment state forward.
    """
    eps = confidence_floor(fixed_features.detach(), settings.confidence)
    current = coefficients.detach()
    for _ in range(steps):
        step = module.step(fixed_features, moving_features, current, eps)
        current = current - step_size * module.grid_gradient(step, current, smoothness)
    loss = ((module.warp(moving_sdm, current) - fixed_sdm) ** 2).mean()
    with torch.no_grad():
        constant = float(((module.warp(moving_sdm, coefficients) - fixed_sdm) ** 2).mean())
    return LossValue(loss, constant), current.detach()


def sdm_targets(sdm: torch.Tensor, channels: int) -> torch.Tensor:
    """The SDMs of merged label groups, one per feature channel.

    Channel ``c`` is the SDM of the union of the SDM channels ``k`` (the
    background first, then each label) with ``k % channels == c % (L + 1)``:
    with more SDM channels than feature channels, labels are merged round
    robin; with fewer, the groups repeat. The SDM of a union is the minimum of
    its members' (exact outside them, where it matters for alignment, as tanh
    is monotonic).

    Parameters
    ----------
    sdm : torch.Tensor
        ``[B, L + 1, *spatial]`` scaled signed distance maps in [-1, 1].
    channels : int
        Feature channels ``C``.

    Returns
    -------
    torch.Tensor
        ``[B, C, *spatial]``, the same device and dtype.
    """
    count = sdm.shape[1]
    groups = [[k for k in range(count) if k % channels == c % count] for c in range(channels)]
    return torch.cat([sdm[:, group].amin(dim=1, keepdim=True) for group in groups], dim=1)


def sdm_regression_loss(
    fixed_features: torch.Tensor,
    moving_features: torch.Tensor,
    fixed_sdm: torch.Tensor,
    moving_sdm: torch.Tensor,
) -> LossValue:
    """Mean squared difference between each image's features and its merged-label SDMs.

    Parameters
    ----------
    fixed_features, moving_features : torch.Tensor
        ``[1, C, *spatial]`` features of the fixed and the moving image (tracked).
    fixed_sdm, moving_sdm : torch.Tensor
        ``[1, L + 1, *spatial]`` SDMs of the same images on the same grid.

    Returns
    -------
    LossValue
        The mean over both images, voxels and channels; the constant loss is
        that of the best constant features (the mean per-channel variance of
        the targets), so the ratio is the fraction of the anatomy's variance
        the features miss.
    """
    fixed_loss, fixed_constant = sdm_fit(fixed_features, fixed_sdm)
    moving_loss, moving_constant = sdm_fit(moving_features, moving_sdm)
    return LossValue((fixed_loss + moving_loss) / 2, (fixed_constant + moving_constant) / 2)


def sdm_fit(features: torch.Tensor, sdm: torch.Tensor) -> tuple[torch.Tensor, float]:
    """How well one image's features regress its merged-label SDMs.

    Parameters
    ----------
    features : torch.Tensor
        ``[1, C, *spatial]`` features.
    sdm : torch.Tensor
        ``[1, L + 1, *spatial]`` SDMs of the same image on the same grid.

    Returns
    -------
    loss : torch.Tensor
        Scalar mean squared difference over voxels and channels (differentiable in ``features``).
    constant : float
        That of the best constant features: the mean per-channel variance of the targets.
    """
    target = sdm_targets(sdm, features.shape[1]).to(features)
    return ((features - target) ** 2).mean(), float(target.flatten(2).var(dim=2, unbiased=False).mean())
