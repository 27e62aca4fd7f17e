"""Feature images for ITK, SimpleITK and numpy users.

Two faces on one computation, as for registration: the ITK-style object
:class:`SuitsFeatureImageFilter` (``New()``, ``SetInput``, ``SetModel``,
``SetModality``, ``SetRole``, ``Update()``, ``GetOutput()``) and the function
:func:`extract_features`, a thin wrapper around it. The output is a vector
image with one component per feature channel, on the input's grid (origin,
spacing and direction kept), in the caller's library.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from .core import resolve_device
from .errors import InputImageError
from .features import get_feature_extractor
from .features.cnn import check_role
from .features.model import checked_modality
from .interop import images as image_io

__all__ = ["SuitsFeatureImageFilter", "extract_features"]


def _itk_vector_image(image: sitk.Image):
    """An ``itk.VectorImage[itk.F, ndim]`` with the voxels and geometry of a SimpleITK vector image."""
    import itk

    ndim = image.GetDimension()
    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image), dtype=np.float32)
    converted = itk.image_from_array(array, is_vector=True)
    converted.SetSpacing(image.GetSpacing())
    converted.SetOrigin(image.GetOrigin())
    converted.SetDirection(itk.matrix_from_array(np.reshape(image.GetDirection(), (ndim, ndim))))
    return converted


class SuitsFeatureImageFilter:
    """ITK-style filter: an image in, its feature image out.

    Parameters
    ----------
    image : itk.Image, SimpleITK.Image, numpy.ndarray or path, optional
        Scalar 2D or 3D image.
    model : str, os.PathLike or FeaturePair
        ``"mind"``, ``"intensity"``, ``"pretrained"``, a shipped model's
        name, a model folder, or a ``"+"`` combination such as
        ``"mind+my_model/"`` (see :func:`~itk_suits.features.get_feature_extractor`).
    modality : str, optional
        The image's modality (``"ct"``, ``"mr"``...): a learned model with one
        network per modality uses that one, and needs it named. Ignored by
        MIND-SSC, intensities and modality-agnostic networks.
    role : {"fixed", "moving"}
        The image's role: which network of a model trained for fixed and
        moving images (without modality names) describes it.
    spacing : sequence of float, optional
        Spacing (x, y[, z], mm) of a numpy image.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.

    Examples
    --------
    >>> features = SuitsFeatureImageFilter.New(image)          # doctest: +SKIP
    >>> features.SetModel("mind")                              # doctest: +SKIP
    >>> features.Update()                                      # doctest: +SKIP
    >>> vector_image = features.GetOutput()                    # doctest: +SKIP
    """

    def __init__(self, image=None, model="mind", role="fixed", spacing=None, device="auto", modality=None) -> None:
        self._input = image
        self._model = model
        self._role = check_role(role)
        self._modality = None if modality is None else checked_modality(modality)
        self._spacing = spacing
        self._device = device
        self._output = None

    @classmethod
    def New(cls, image=None, **options) -> "SuitsFeatureImageFilter":
        """Create a filter, optionally with its input and options (see the class)."""
        return cls(image, **options)

    def SetInput(self, image) -> None:
        self._input = image
        self._output = None

    def GetInput(self):
        return self._input

    def SetModel(self, model) -> None:
        self._model = model
        self._output = None

    def GetModel(self):
        return self._model

    def SetRole(self, role: str) -> None:
        self._role = check_role(role)
        self._output = None

    def GetRole(self) -> str:
        return self._role

    def SetModality(self, modality: str | None) -> None:
        """The image's modality (e.g. ``"ct"``), or ``None``: see the class."""
        self._modality = None if modality is None else checked_modality(modality)
        self._output = None

    def GetModality(self) -> str | None:
        return self._modality

    def SetSpacing(self, spacing) -> None:
        """Spacing (x, y[, z] order, mm) of a numpy input."""
        self._spacing = spacing
        self._output = None

    def SetDevice(self, device: str) -> None:
        self._device = device
        self._output = None

    def Update(self) -> None:
        """Compute the feature image (a no-op when nothing changed since the last run)."""
        if self._output is not None:
            return
        if self._input is None:
            raise InputImageError("set the input image before Update()")
        image, kind = image_io.as_sitk_image(self._input, name="image", spacing=self._spacing)
        extractor = get_feature_extractor(self._model)
        # refuse a model of another dimension or without a network for this image before any work
        extractor.channels(image.GetDimension())
        extractor.check_modality(self._role, self._modality, image.GetDimension())
        device = resolve_device(self._device)
        array = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkFloat32))
        with torch.no_grad():
            features = extractor(torch.from_numpy(array)[None, None].to(device), role=self._role,
                                 modality=self._modality)
        channels_last = np.moveaxis(features[0].cpu().numpy(), 0, -1)
        output = sitk.GetImageFromArray(np.ascontiguousarray(channels_last), isVector=True)
        output.CopyInformation(image)
        self._output = _itk_vector_image(output) if kind == "itk" else image_io.to_kind(output, kind)

    def GetOutput(self):
        """The feature image in the input's library.

        Returns
        -------
        itk.VectorImage, SimpleITK.Image or numpy.ndarray
            ``itk.VectorImage[itk.F, ndim]`` for itk input; a SimpleITK
            ``sitkVectorFloat32`` image for SimpleITK images and paths; a
            ``(*shape, C)`` float32 array for numpy input. One component per
            feature channel, the input's origin, spacing and direction.
        """
        if self._output is None:
            raise InputImageError("no output yet: call Update() first")
        return self._output


def extract_features(image, model="mind", role="fixed", *, modality=None, spacing=None, device="auto"):
    """Feature image of ``image``, as the registration sees it.

    Parameters
    ----------
    image : itk.Image, SimpleITK.Image, numpy.ndarray or path
        Scalar 2D or 3D image.
    model : str, os.PathLike or FeaturePair
        ``"mind"`` (default), ``"intensity"``, ``"pretrained"``, a shipped
        model's name, a model folder, or a ``"+"`` combination such as
        ``"mind+my_model/"``.
    role : {"fixed", "moving"}
        The image's role in a registration: which network of a model trained
        for fixed and moving images without modality names describes it.
    modality : str, optional
        The image's modality (e.g. ``"ct"``): which network of a model with
        one network per modality describes it (needed for such a model).
    spacing : sequence of float, optional
        Spacing (x, y[, z], mm) of a numpy image.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Returns
    -------
    itk.VectorImage, SimpleITK.Image or numpy.ndarray
        One component per channel, on the input's grid (see
        :meth:`SuitsFeatureImageFilter.GetOutput`).

    Raises
    ------
    SuitsError
        Bad image, unknown or invalid model, a model of another dimension.
    ModalityError
        The model has no network for ``modality``, or has one per modality
        and ``modality`` is not given.

    Examples
    --------
    >>> import numpy as np, itk_suits
    >>> itk_suits.extract_features(np.random.rand(32, 40), "mind").shape
    (32, 40, 6)
    >>> itk_suits.extract_features("ct.nii.gz", "mind+ct_mr_model/", modality="ct")  # doctest: +SKIP
    """
    feature_filter = SuitsFeatureImageFilter.New(image, model=model, role=role, modality=modality,
                                                 spacing=spacing, device=device)
    feature_filter.Update()
    return feature_filter.GetOutput()
