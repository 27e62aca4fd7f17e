"""Synthetic multi-modal image pairs from label maps.

A modality is a random intensity per label (drawn independently per image),
a smooth multiplicative bias field, Gaussian noise and blur. Two images made
from the same anatomy with independent draws look like two modalities of it;
made from a deformed copy of the anatomy they form a registration pair whose
correspondence is known through the labels. The anatomy comes from real label
maps (any integer map) or from :func:`organ_phantom`, an abdomen-like
arrangement of organ-shaped blobs inside a body outline on a dark background.

All arrays are numpy, array order (z, y, x); nothing here knows ITK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core import invert_displacement, random_smooth_displacement, warp

__all__ = ["organ_phantom", "synthesize_modality", "deform_labels", "SyntheticPair", "synthetic_pair"]


def _coordinates(shape: Sequence[int]) -> list[np.ndarray]:
    return np.meshgrid(*[np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape], indexing="ij")


def _smooth_noise(shape: Sequence[int], rng: np.random.Generator, control: int = 6) -> np.ndarray:
    """Smooth random field in about [-1, 1]: random values on a coarse grid, upsampled."""
    coarse = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(1, 1) + (control,) * len(shape)).astype(np.float32))
    mode = "bicubic" if len(shape) == 2 else "trilinear"
    return F.interpolate(coarse, size=tuple(shape), mode=mode, align_corners=True)[0, 0].numpy()


def organ_phantom(shape: Sequence[int], organs: int = 6, seed: int = 0) -> np.ndarray:
    """An abdomen-like label map: organ-shaped blobs (labels 1..organs) in a body outline.

    The body (label 0 like the air around it) is an ellipse filling most of the
    field of view; each organ is an ellipsoid with a smoothly perturbed
    boundary, placed inside the body; later organs overwrite earlier ones.

    Returns
    -------
    numpy.ndarray
        uint8 label map of ``shape``; the body outline is stored as label
        ``organs + 1`` so that syntheses can give it its own intensity
        (callers drop it from the supervised labels as they wish).
    """
    rng = np.random.default_rng(seed)
    coordinates = _coordinates(shape)
    labels = np.zeros(shape, np.uint8)
    body = sum((c / r) ** 2 for c, r in zip(coordinates, rng.uniform(0.8, 0.95, len(shape))))
    labels[body < 1.0] = organs + 1
    for organ in range(1, organs + 1):
        centre = rng.uniform(-0.5, 0.5, len(shape))
        radii = rng.uniform(0.1, 0.28, len(shape))
        distance = np.sqrt(sum(((c - m) / r) ** 2 for c, m, r in zip(coordinates, centre, radii)))
        boundary = 1.0 + 0.25 * _smooth_noise(shape, rng)
        labels[(distance < boundary) & (body < 1.0)] = organ
    return labels


def synthesize_modality(
    labels: np.ndarray,
    seed: int = 0,
    noise: float = 0.03,
    bias: float = 0.3,
    blur: float = 0.7,
    background: float | None = None,
    modality_seed: int | None = None,
    jitter: float = 0.03,
) -> np.ndarray:
    """An image of the anatomy ``labels`` in a random 'modality'.

    By default every image draws its own intensity per label (a new modality
    per image, for modality-agnostic features). With ``modality_seed`` the
    intensity table is drawn from that seed instead, so images of different
    subjects share one modality (as CT or MR scans of a data set do), each
    with a small per-subject jitter of the table.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label map (0 = background).
    seed : int
        Seed of every random choice (intensities, bias, noise); with
        ``modality_seed``, of the jitter, bias and noise.
    noise : float
        Standard deviation of additive Gaussian noise, in units of the [0, 1] range.
    bias : float
        Strength of the smooth multiplicative bias field (0 = none).
    blur : float
        Gaussian blur sigma in voxels (0 = none).
    background : float, optional
        Intensity of label 0 (default: dark, random in [0, 0.1]).
    modality_seed : int, optional
        Seed of the intensity table shared by every image of one modality
        (default: the table is drawn from ``seed``).
    jitter : float
        With ``modality_seed``: standard deviation of the Gaussian per-subject
        change of each table entry, in units of the [0, 1] range.

    Returns
    -------
    numpy.ndarray
        float32 image of the same shape, roughly in [0, 1].
    """
    rng = np.random.default_rng(seed)
    count = int(labels.max()) + 1
    if modality_seed is None:
        values = rng.uniform(0.15, 1.0, count).astype(np.float32)
        values[0] = rng.uniform(0.0, 0.1) if background is None else background
    else:
        # background first: label l gets the same entry whatever the subject's largest label
        table = np.random.default_rng(modality_seed)
        dark = table.uniform(0.0, 0.1)
        values = table.uniform(0.15, 1.0, count).astype(np.float32)
        values[0] = dark if background is None else background
        values = values + rng.normal(0.0, jitter, count).astype(np.float32)
    image = values[labels]
    if bias > 0:
        image = image * (1.0 + bias * _smooth_noise(labels.shape, rng, control=4))
    if blur > 0:
        image = gaussian_blur(image, blur)
    if noise > 0:
        image = image + rng.normal(0.0, noise, labels.shape).astype(np.float32)
    return image.astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float, radius: int | None = None) -> np.ndarray:
    """``image`` (2D or 3D float32 array) convolved with a Gaussian of ``sigma`` voxels along every axis.

    The kernel reaches ``radius`` voxels (default ``max(1, round(3 sigma))``); edges are extended.
    """
    if radius is None:
        radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    ndim = image.ndim
    for axis in range(ndim):
        shape = [1, 1] + [1] * ndim
        shape[2 + axis] = kernel.numel()
        weight = kernel.reshape(shape)
        padding = [0] * ndim
        padding[axis] = radius
        pad = []
        for p in reversed(padding):
            pad += [p, p]
        out = F.pad(out, pad, mode="replicate")
        out = (F.conv2d if ndim == 2 else F.conv3d)(out, weight)
    return out[0, 0].numpy()


def deform_labels(labels: np.ndarray, magnitude: float, seed: int, control_spacing: float = 32.0):
    """Labels deformed by a random smooth field; returns (deformed labels, true displacement).

    The displacement ``u`` ``(ndim, *shape)`` (voxels, components x, y[, z]) maps a
    voxel ``p`` of the original to ``p + u(p)`` in the deformed map.
    """
    u = random_smooth_displacement(labels.shape, magnitude, control_spacing, seed)
    tensor = torch.from_numpy(labels.astype(np.float32))[None, None]
    deformed = warp(tensor, invert_displacement(u), mode="nearest")
    return deformed[0, 0].numpy().astype(labels.dtype), u[0].numpy()


@dataclass
class SyntheticPair:
    """A two-modality pair with labels (organs only; body and background are 0)."""

    fixed: np.ndarray
    fixed_labels: np.ndarray
    moving: np.ndarray
    moving_labels: np.ndarray


def synthetic_pair(
    shape: Sequence[int],
    seed: int,
    organs: int = 6,
    magnitude: float = 6.0,
    labels: np.ndarray | None = None,
    control_spacing: float = 32.0,
    modality_seeds: tuple[int, int] | None = None,
) -> SyntheticPair:
    """A multi-modal pair: anatomy (given or :func:`organ_phantom`), deformed copy, two modalities.

    The fixed and moving images get independent random modalities, or, with
    ``modality_seeds`` (fixed, moving), the intensity tables of those seeds
    (see :func:`synthesize_modality`: pairs sharing them are scans of two fixed
    modalities, like CT and MR of a data set); the moving anatomy is the fixed
    one deformed by a random smooth field of at most ``magnitude`` voxels with
    control points every ``control_spacing`` voxels.
    """
    anatomy = organ_phantom(shape, organs, seed) if labels is None else labels
    moved, _ = deform_labels(anatomy, magnitude, seed + 1, control_spacing)
    fixed_table, moving_table = modality_seeds or (None, None)
    fixed = synthesize_modality(anatomy, seed + 2, modality_seed=fixed_table)
    moving = synthesize_modality(moved, seed + 3, modality_seed=moving_table)
    organs_only = organs if labels is None else int(anatomy.max())

    def keep(label_map):
        return np.where(label_map <= organs_only, label_map, 0).astype(np.uint8)

    return SyntheticPair(fixed, keep(anatomy), moving, keep(moved))
