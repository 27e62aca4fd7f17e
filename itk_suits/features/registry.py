"""Named feature extractors: the feature spaces registration compares images in."""

from abc import ABC, abstractmethod

import torch

from itk_suits.errors import ParameterError
from itk_suits.features.mind import check_image_batch, mind_ssc

# Percentiles (in %) that :class:`IntensityFeatures` maps to 0 and 1.
_INTENSITY_PERCENTILES = (0.5, 99.5)


class FeatureExtractor(ABC):
    """Maps a batch of images to feature channels on the same grid.

    Subclasses set :attr:`name` and implement :meth:`channels` and :meth:`__call__`.
    Fixed and moving images are compared channel by channel, so both must go through
    extractors with the same number of channels.
    """

    name = ""

    @abstractmethod
    def channels(self, ndim):
        """Number of feature channels for ``ndim``-dimensional images (2 or 3)."""

    @abstractmethod
    def __call__(self, image):
        """Features of ``image``.

        Parameters
        ----------
        image : torch.Tensor
            ``[B, 1, H, W]`` or ``[B, 1, D, H, W]`` intensities, any device.

        Returns
        -------
        torch.Tensor
            ``[B, C, H, W]`` or ``[B, C, D, H, W]`` float32 on the device of ``image``,
            ``C = self.channels(ndim)``.
        """

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def _check_ndim(ndim):
    if ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim!r}")


class MindFeatures(FeatureExtractor):
    """MIND-SSC self-similarity descriptor with its default parameters (multi-modal).

    6 channels in 2D, 12 in 3D, values in (0, 1]; see :func:`mind_ssc`.
    """

    name = "mind"

    def channels(self, ndim):
        _check_ndim(ndim)
        return 6 if ndim == 2 else 12

    def __call__(self, image):
        return mind_ssc(image)


class IntensityFeatures(FeatureExtractor):
    """The image itself, robustly scaled to [0, 1] (mono-modal pairs).

    Each batch item is mapped linearly so that its 0.5th percentile becomes 0 and its
    99.5th percentile 1 (nearest-rank percentiles), then clipped to [0, 1]. An image
    whose two percentiles coincide becomes all zeros. One channel.
    """

    name = "intensity"

    def channels(self, ndim):
        _check_ndim(ndim)
        return 1

    def __call__(self, image):
        image = check_image_batch(image)
        flat = image.flatten(1)
        count = flat.shape[1]
        low, high = (
            flat.kthvalue(1 + round(percent / 100 * (count - 1)), dim=1).values
            for percent in _INTENSITY_PERCENTILES
        )
        spread = high - low
        scale = torch.where(spread > 0, 1.0 / spread, torch.zeros_like(spread))
        shape = (-1,) + (1,) * (image.dim() - 1)
        return ((image - low.view(shape)) * scale.view(shape)).clamp(0.0, 1.0)


_EXTRACTORS = {extractor.name: extractor for extractor in (MindFeatures, IntensityFeatures)}


def available_features():
    """Names accepted by :func:`get_feature_extractor`, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_EXTRACTORS)


def get_feature_extractor(name):
    """The feature extractor registered under ``name``.

    Parameters
    ----------
    name : str
        One of :func:`available_features`: ``"mind"`` (MIND-SSC, multi-modal) or
        ``"intensity"`` (robustly normalised intensities, mono-modal). Case-insensitive.

    Returns
    -------
    FeatureExtractor

    Raises
    ------
    ParameterError
        ``name`` is not a registered name.

    Examples
    --------
    >>> from itk_suits.features import get_feature_extractor
    >>> get_feature_extractor("mind").channels(3)
    12
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in _EXTRACTORS:
        raise ParameterError(
            f"unknown feature extractor {name!r}; features must be one of "
            f"{', '.join(repr(known) for known in available_features())}"
        )
    return _EXTRACTORS[key]()
