"""The interface every feature extractor implements.

A registration computes fixed features with ``extractor(image, role="fixed",
modality=...)`` and moving features with ``role="moving"``. The modality
(``"ct"``, ``"mr"``, or ``None`` when the caller named none) describes the
image, the role its place in the registration; learned models hold one network
per modality (or per role), hand-crafted features ignore both.
"""

from abc import ABC, abstractmethod

from itk_suits.features.model import checked_modality

__all__ = ["FeatureExtractor"]


class FeatureExtractor(ABC):
    """Maps a batch of images to feature channels on the same grid.

    Subclasses set :attr:`name` and implement :meth:`channels` and :meth:`__call__`.
    Fixed and moving images are compared channel by channel, so the fixed and the
    moving variant of an extractor give the same number of channels.
    """

    name = ""

    @abstractmethod
    def channels(self, ndim):
        """Number of feature channels for ``ndim``-dimensional images (2 or 3).

        Raises
        ------
        ParameterError
            ``ndim`` is not 2 or 3, or the extractor cannot describe such images
            (a 2D model asked about 3D images).
        """

    def check_modality(self, role, modality, ndim=None):
        """Refuse, before any work, an image these features cannot describe.

        The default accepts every modality: hand-crafted features are the
        same for all images.

        Parameters
        ----------
        role : {"fixed", "moving"}
            The image's role in the registration.
        modality : str or None
            Its modality as the caller named it (``None``: not named).
        ndim : {2, 3}, optional
            The image dimension, where the answer depends on it.

        Raises
        ------
        ModalityError
            A learned model has no network for this modality, or needs one
            named (see :func:`~itk_suits.features.model.select_network`).
        """
        if modality is not None:
            checked_modality(modality)

    @abstractmethod
    def __call__(self, image, role="fixed", modality=None):
        """Features of ``image``.

        Parameters
        ----------
        image : torch.Tensor
            ``[B, 1, H, W]`` or ``[B, 1, D, H, W]`` intensities, any device.
        role : {"fixed", "moving"}
            The role of the image in the registration.
        modality : str, optional
            The image's modality (e.g. ``"ct"``): learned models with one
            network per modality use that one (see :meth:`check_modality`).

        Returns
        -------
        torch.Tensor
            ``[B, C, H, W]`` or ``[B, C, D, H, W]`` float32 on the device of ``image``,
            ``C = self.channels(ndim)``.
        """

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"
