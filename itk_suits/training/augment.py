"""Random intensity augmentation: one MR network for many sequences, not one.

A network trained on one MR sequence (e.g. T2-SPIR) learns that sequence's
contrast: which organ is bright, which is dark. :func:`augment_intensities`
redraws the contrast of every training image, so that what stays constant,
and what the network has to learn, is the anatomy: shapes, positions, the
borders between tissues. In order:

1. the intensities are mapped linearly from their (0.5, 99.5) percentiles
   to [0, 1] and clipped;
2. a random **gamma** ``x ** g``, ``g`` log-uniform in :attr:`~IntensityAugmentation.gamma`;
3. a random **intensity curve** through ``curve_knots`` knots at equal steps
   of the input: monotonic (increasing, or with probability ``inverted``
   decreasing above the first knot, so that bright and dark tissues swap
   as between T2 and T1 while air stays dark), or with
   probability ``non_monotonic`` through knot values drawn independently
   (tissues of neighbouring intensities are sent to unrelated ones);
4. a smooth multiplicative **bias field** ``exp(b)``, ``b`` a cubic
   interpolation of random values on a coarse lattice, ``|b| <= bias``;
5. a Gaussian **blur** of ``sigma`` voxels, uniform in ``[0, blur]``;
6. **Rician noise** of standard deviation uniform in ``[0, noise]`` (as a
   fraction of the [0, 1] range): the magnitude of the image plus complex
   Gaussian noise.

The result is a float32 array of the input's shape. Every random choice comes
from the generator passed in, so a seed gives the same image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from itk_suits.checks import checked_number
from itk_suits.errors import InputImageError
from itk_suits.training.phantoms import gaussian_blur

__all__ = ["IntensityAugmentation", "augment_intensities"]

#: Percentiles (%) mapped to 0 and 1 before the curve is applied.
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class IntensityAugmentation:
    """How strongly :func:`augment_intensities` changes an image (see the module docstring).

    Attributes
    ----------
    gamma : (float, float)
        Range of the gamma exponent (log-uniform).
    curve_knots : int
        Knots of the intensity curve, at least 2 (2: linear).
    inverted : float
        Probability that a monotonic curve decreases.
    non_monotonic : float
        Probability of a non-monotonic curve.
    bias : float
        Largest log amplitude of the multiplicative bias field (0.3: a factor of 0.74 to 1.35).
    bias_lattice : int
        Points per axis of the lattice the bias field is interpolated from.
    blur : float
        Largest Gaussian sigma in voxels.
    noise : float
        Largest noise standard deviation, as a fraction of the [0, 1] range.
    """

    gamma: tuple = (0.6, 1.7)
    curve_knots: int = 5
    inverted: float = 0.25
    non_monotonic: float = 0.2
    bias: float = 0.3
    bias_lattice: int = 4
    blur: float = 1.0
    noise: float = 0.04

    def __post_init__(self):
        low, high = self.gamma
        checked_number(low, "gamma[0]", 0.0, above=True)
        checked_number(high, "gamma[1]", low)
        checked_number(self.curve_knots, "curve_knots", 2, integer=True)
        checked_number(self.bias_lattice, "bias_lattice", 2, integer=True)
        checked_number(self.inverted, "inverted", 0.0, 1.0)
        checked_number(self.non_monotonic, "non_monotonic", 0.0, 1.0)
        for name in ("bias", "blur", "noise"):
            checked_number(getattr(self, name), name, 0.0)


def _unit_range(array: np.ndarray) -> np.ndarray:
    low, high = np.percentile(array, PERCENTILES)
    if not high > low:
        raise InputImageError("the image is constant: there is no contrast to augment")
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def _curve(values: np.ndarray, knots: int, rng: np.random.Generator, settings: IntensityAugmentation) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, knots)
    if rng.random() < settings.non_monotonic:
        levels = rng.random(knots)
    else:
        levels = np.concatenate([[0.0], np.cumsum(rng.uniform(0.2, 1.0, knots - 1))])
        levels /= levels[-1]
        if rng.random() < settings.inverted:  # the darkest input (air) stays darkest
            levels[1:] = 1.0 - levels[1:] + levels[1]
    return np.interp(values, positions, levels)


def _bias_field(shape, rng: np.random.Generator, settings: IntensityAugmentation) -> np.ndarray:
    lattice = torch.from_numpy(rng.uniform(-1.0, 1.0, (1, 1) + (settings.bias_lattice,) * len(shape)))
    mode = "bicubic" if len(shape) == 2 else "trilinear"
    field = F.interpolate(lattice, size=tuple(shape), mode=mode, align_corners=True)[0, 0].numpy()
    field *= settings.bias * rng.random() / max(float(np.abs(field).max()), 1e-12)
    return np.exp(field)


def augment_intensities(array: np.ndarray, rng: np.random.Generator,
                        settings: IntensityAugmentation = IntensityAugmentation()) -> np.ndarray:
    """A random new contrast of an image (see the module docstring for the steps).

    Parameters
    ----------
    array : numpy.ndarray
        ``[y, x]`` or ``[z, y, x]`` intensities, any units; not constant.
    rng : numpy.random.Generator
        Source of every random choice.
    settings : IntensityAugmentation
        Ranges of the changes.

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``array``, values about in [0, 1] (noise and the
        bias field may leave it slightly).

    Raises
    ------
    InputImageError
        Not a finite 2D or 3D array, or a constant one.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3) or not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise InputImageError(f"augment_intensities needs a finite 2D or 3D numeric array, got shape {array.shape} "
                              f"of {array.dtype}")
    values = _unit_range(array.astype(np.float64))
    low, high = settings.gamma
    values = values ** np.exp(rng.uniform(np.log(low), np.log(high)))
    values = _curve(values, settings.curve_knots, rng, settings)
    values = values * _bias_field(array.shape, rng, settings)
    blur = settings.blur * rng.random()
    values = values.astype(np.float32)
    if blur >= 0.1:  # narrower kernels hardly change the image
        values = gaussian_blur(values, blur, radius=int(np.ceil(3 * blur)))
    noise = settings.noise * rng.random()
    real = values + rng.normal(0.0, noise, values.shape)
    imaginary = rng.normal(0.0, noise, values.shape)
    return np.sqrt(real ** 2 + imaginary ** 2).astype(np.float32)
