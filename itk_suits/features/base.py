"""The interface every feature extractor implements.

A registration computes fixed features with ``extractor(image, role="fixed")``
and moving features with ``role="moving"``; learned models may hold one
network per role, hand-crafted features ignore the role.
"""

from abc import ABC, abstractmethod

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

    @abstractmethod
    def __call__(self, image, role="fixed"):
        """Features of ``image``.

        Parameters
        ----------
        image : torch.Tensor
            ``[B, 1, H, W]`` or ``[B, 1, D, H, W]`` intensities, any device.
        role : {"fixed", "moving"}
            The role of the image in the registration: learned models use the
            network trained for it.

        Returns
        -------
        torch.Tensor
            ``[B, C, H, W]`` or ``[B, C, D, H, W]`` float32 on the device of ``image``,
            ``C = self.channels(ndim)``.
        """

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"
