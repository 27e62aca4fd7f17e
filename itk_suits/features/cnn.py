"""The SUITS feature network (Blendowski & Heinrich, MIDL 2019) and its input normalisation.

:class:`FeatureCNN` maps one image to 8 feature channels on the same grid with
seven convolutions, (kernel, output channels) = (7, 4) (7, 6) (5, 6) (5, 8)
(5, 8) (3, 8) (3, 8). Each of the first six is followed by GroupNorm with two
groups and tanh; the last one learns a bias and has neither norm nor
activation, so the features are unbounded.

Design decisions where the paper is silent:

* **No bias in the first six convolutions.** The paper gives a bias to the
  last layer only; before a GroupNorm a bias would mostly be removed with the
  group mean, and GroupNorm's own per-channel shift takes its place.
* **"Same" padding by replicating edge voxels**, as MIND-SSC does: zero padding
  would paint an artificial edge along the image border, a feature at the same
  place in the fixed and the moving image that holds the displacement at zero
  near the border.
* **Input normalisation outside the network**: every image is mapped linearly
  so that its 0.5th intensity percentile becomes 0 and its 99.5th percentile
  1, then clipped to [0, 1] (:func:`normalize_intensities`). It runs in torch
  before the torch network and before the ONNX network alike, so both paths see
  the same input; the model card records the percentiles. Percentiles do not
  export to ONNX as a plain graph, which is why the exported network starts at
  the first convolution.

:class:`FeatureUNet` is a small U-Net (two poolings, about 0.12 M
parameters in 2D and 0.35 M in 3D) for the same job, with a larger field of
view; :data:`ARCHITECTURES` names both.

:class:`FeaturePair` holds the networks of a registration: one per role
(``"fixed"`` and ``"moving"``) or one shared by both (``shared=True``), of
one architecture, and applies the normalisation, so ``pair(image, role)``
takes raw intensities.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from itk_suits.errors import InputImageError, ParameterError
from itk_suits.features.mind import check_image_batch

__all__ = [
    "ARCHITECTURES",
    "LAYERS",
    "GROUPS",
    "ROLES",
    "PERCENTILES",
    "FeatureCNN",
    "FeaturePair",
    "FeatureUNet",
    "FeatureUNet4",
    "check_architecture",
    "check_role",
    "normalize_intensities",
]

#: (kernel size, output channels) of the seven convolutions, as in the paper.
LAYERS = ((7, 4), (7, 6), (5, 6), (5, 8), (5, 8), (3, 8), (3, 8))
#: Groups of every GroupNorm.
GROUPS = 2
#: The roles an image can play in a registration.
ROLES = ("fixed", "moving")
#: Intensity percentiles (in %) that :func:`normalize_intensities` maps to 0 and 1.
PERCENTILES = (0.5, 99.5)


def check_role(role):
    """Return ``role`` if it is ``"fixed"`` or ``"moving"``, else raise :class:`ParameterError`."""
    if role not in ROLES:
        raise ParameterError(
            f"role must be 'fixed' or 'moving' (the role of the image in the registration), "
            f"got {role!r}"
        )
    return role


def _check_ndim(ndim):
    if isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral) or ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim!r}")
    return int(ndim)


def normalize_intensities(image, percentiles=PERCENTILES):
    """Robust linear scaling of each image to [0, 1].

    Each batch item is mapped linearly so that its ``percentiles[0]``-th
    intensity percentile becomes 0 and its ``percentiles[1]``-th becomes 1
    (nearest-rank percentiles over all voxels), then clipped to [0, 1]. An
    image whose two percentiles coincide becomes all zeros.

    Parameters
    ----------
    image : torch.Tensor
        ``[B, 1, H, W]`` or ``[B, 1, D, H, W]`` intensities, any device.
    percentiles : tuple of float
        Lower and upper percentile in %, ``0 <= low < high <= 100``.

    Returns
    -------
    torch.Tensor
        Same shape, float32, on the device of ``image``, values in [0, 1].

    Raises
    ------
    InputImageError, PixelTypeError
        ``image`` is not a finite real ``[B, 1, ...]`` tensor.
    ParameterError
        Percentiles out of order or out of [0, 100].
    """
    image = check_image_batch(image)
    low_percent, high_percent = (float(p) for p in percentiles)
    if not 0.0 <= low_percent < high_percent <= 100.0:
        raise ParameterError(
            f"percentiles must satisfy 0 <= low < high <= 100, got {tuple(percentiles)}"
        )
    flat = image.flatten(1)
    count = flat.shape[1]
    low, high = (
        flat.kthvalue(1 + round(percent / 100.0 * (count - 1)), dim=1).values
        for percent in (low_percent, high_percent)
    )
    spread = high - low
    scale = torch.where(spread > 0, 1.0 / spread, torch.zeros_like(spread))
    shape = (-1,) + (1,) * (image.dim() - 1)
    return ((image - low.view(shape)) * scale.view(shape)).clamp(0.0, 1.0)


class FeatureCNN(nn.Module):
    """The paper's seven-layer feature network for the images of one role (fixed or moving), 2D or 3D.

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimension of the images.

    Attributes
    ----------
    ndim : int
    out_channels : int
        8, the number of feature channels.

    Notes
    -----
    The input is expected already normalised (see :func:`normalize_intensities`);
    :class:`FeaturePair` does that. Learned parameters: 6,312 in 2D, 31,648 in 3D.

    Examples
    --------
    >>> import torch
    >>> FeatureCNN(ndim=2)(torch.rand(1, 1, 20, 30)).shape
    torch.Size([1, 8, 20, 30])
    """

    #: The architecture as a model card states it.
    description = (
        "FeatureCNN (Blendowski & Heinrich 2019): convolutions (kernel, channels) "
        + " ".join(f"({k},{c})" for k, c in LAYERS)
        + f", replicate 'same' padding, GroupNorm({GROUPS}) + tanh after the first six, bias on the last only"
    )

    def __init__(self, ndim=2):
        super().__init__()
        self.ndim = _check_ndim(ndim)
        convolution = nn.Conv2d if self.ndim == 2 else nn.Conv3d
        layers = []
        in_channels = 1
        for index, (kernel, out_channels) in enumerate(LAYERS):
            last = index == len(LAYERS) - 1
            layers.append(
                convolution(
                    in_channels,
                    out_channels,
                    kernel,
                    padding=kernel // 2,
                    padding_mode="replicate",
                    bias=last,
                )
            )
            if not last:
                layers += [nn.GroupNorm(GROUPS, out_channels), nn.Tanh()]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, image):
        """Features of a normalised image batch.

        Parameters
        ----------
        image : torch.Tensor
            ``[B, 1, H, W]`` (2D) or ``[B, 1, D, H, W]`` (3D), float32.

        Returns
        -------
        torch.Tensor
            ``[B, 8, *spatial]``.
        """
        _check_input(self, image)
        return self.layers(image)


def _check_input(network, image):
    if image.dim() != network.ndim + 2 or image.shape[1] != 1:
        raise InputImageError(
            f"this {type(network).__name__} is {network.ndim}D and needs images of shape "
            f"[B, 1, {'D, ' if network.ndim == 3 else ''}H, W], got {list(image.shape)}"
        )


class FeatureUNet(nn.Module):
    """A small U-Net feature network, 2D or 3D: a larger field of view than :class:`FeatureCNN`.

    ``levels`` levels (full, 1/2, 1/4, ... resolution) of two 3-voxel
    convolutions each, ``width``, ``2 width``, ``4 width``, ... channels, every
    one followed by GroupNorm(2) and LeakyReLU(0.2); max pooling (ceil mode,
    so odd sizes work) on the way down, nearest-neighbour upsampling to the
    skip connection's size and concatenation on the way up; a 1-voxel
    convolution with bias gives the 8 feature channels. Replicate padding, as
    :class:`FeatureCNN`. Each level doubles the field of view: about 40 voxels
    with three levels, about 90 with four.

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimension.
    width : int
        Channels of the full-resolution level (16 with three levels: 118,424
        parameters in 2D, 353,720 in 3D).
    levels : int
        Resolution levels, at least 2 (3: architecture ``"unet"``; 4:
        ``"unet4"``, 487,832 parameters in 2D, 1,460,408 in 3D).

    Examples
    --------
    >>> import torch
    >>> FeatureUNet(ndim=2)(torch.rand(1, 1, 21, 30)).shape
    torch.Size([1, 8, 21, 30])
    """

    def __init__(self, ndim=2, width=16, levels=3):
        super().__init__()
        self.ndim = _check_ndim(ndim)
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ParameterError(f"levels must be an integer of at least 2, got {levels!r}")
        self.out_channels = LAYERS[-1][1]
        widths = tuple(width * 2 ** level for level in range(levels))
        #: The architecture as a model card states it.
        self.description = (
            f"FeatureUNet: {levels} levels of two 3-voxel convolutions {widths} channels, GroupNorm({GROUPS}) + "
            "LeakyReLU(0.2), max pooling down, nearest upsampling and skip concatenation up, a 1-voxel output "
            f"convolution with bias to {self.out_channels} channels, replicate padding"
        )
        self.down = nn.ModuleList([self._block(1 if level == 0 else widths[level - 1], widths[level])
                                   for level in range(levels - 1)])
        self.bottom = self._block(widths[-2], widths[-1])
        self.up = nn.ModuleList([self._block(widths[level + 1] + widths[level], widths[level])
                                 for level in reversed(range(levels - 1))])
        self.head = (nn.Conv2d if self.ndim == 2 else nn.Conv3d)(widths[0], self.out_channels, 1)

    def _block(self, in_channels, out_channels):
        convolution = nn.Conv2d if self.ndim == 2 else nn.Conv3d
        layers = []
        for channels in (in_channels, out_channels):
            layers += [convolution(channels, out_channels, 3, padding=1, padding_mode="replicate", bias=False),
                       nn.GroupNorm(GROUPS, out_channels), nn.LeakyReLU(0.2)]
        return nn.Sequential(*layers)

    def forward(self, image):
        """Features of a normalised image batch, ``[B, 1, *spatial]`` -> ``[B, 8, *spatial]``."""
        _check_input(self, image)
        pool = F.max_pool2d if self.ndim == 2 else F.max_pool3d
        skips = []
        features = image
        for block in self.down:
            features = block(features)
            skips.append(features)
            features = pool(features, 2, ceil_mode=True)
        features = self.bottom(features)
        for block, skip in zip(self.up, reversed(skips)):
            features = F.interpolate(features, size=skip.shape[2:], mode="nearest")
            features = block(torch.cat([features, skip], dim=1))
        return self.head(features)


class FeatureUNet4(FeatureUNet):
    """:class:`FeatureUNet` with four levels: a field of view of about 90 voxels (a whole abdominal slice at 2-3 mm)."""

    def __init__(self, ndim=2, width=16):
        super().__init__(ndim, width, levels=4)


#: Feature network architectures by name (:class:`FeaturePair`'s ``architecture``).
ARCHITECTURES = {"featurecnn": FeatureCNN, "unet": FeatureUNet, "unet4": FeatureUNet4}


def check_architecture(architecture):
    """Return ``architecture`` (lowercased) if it names one of :data:`ARCHITECTURES`, else raise :class:`ParameterError`."""
    key = architecture.lower() if isinstance(architecture, str) else None
    if key not in ARCHITECTURES:
        raise ParameterError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    return key


class FeaturePair(nn.Module):
    """The feature networks of a registration: one per role, or one shared by both.

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimension.
    shared : bool
        One network for fixed and moving images (modality-agnostic features)
        instead of one per role.
    percentiles : tuple of float
        Input normalisation (see :func:`normalize_intensities`).
    architecture : {"featurecnn", "unet", "unet4"}
        The network of each role: the paper's :class:`FeatureCNN`, the
        small :class:`FeatureUNet` or its four-level form :class:`FeatureUNet4`.

    Attributes
    ----------
    networks : torch.nn.ModuleDict
        ``{"fixed": network, "moving": network}``, or ``{"shared": network}``.

    Examples
    --------
    >>> import torch
    >>> pair = FeaturePair(ndim=2)
    >>> pair(torch.rand(1, 1, 24, 24) * 1000, role="moving").shape
    torch.Size([1, 8, 24, 24])
    """

    def __init__(self, ndim=2, shared=False, percentiles=PERCENTILES, architecture="featurecnn"):
        super().__init__()
        self.ndim = _check_ndim(ndim)
        self.shared = bool(shared)
        self.percentiles = tuple(float(p) for p in percentiles)
        self.architecture = check_architecture(architecture)
        names = ("shared",) if self.shared else ROLES
        self.networks = nn.ModuleDict({name: ARCHITECTURES[self.architecture](self.ndim) for name in names})

    @property
    def out_channels(self):
        """Number of feature channels (8)."""
        return next(iter(self.networks.values())).out_channels

    def network(self, role="fixed"):
        """The network (:class:`FeatureCNN` or :class:`FeatureUNet`) that computes features of ``role`` images."""
        check_role(role)
        return self.networks["shared" if self.shared else role]

    def forward(self, image, role="fixed"):
        """Features of raw intensities: normalisation, then the role's network.

        Parameters
        ----------
        image : torch.Tensor
            ``[B, 1, *spatial]`` intensities in any range, on the networks' device.
        role : {"fixed", "moving"}
            Which network to use (the same one when shared).

        Returns
        -------
        torch.Tensor
            ``[B, 8, *spatial]``.
        """
        network = self.network(role)
        return network(normalize_intensities(image, self.percentiles))

    def extra_repr(self):
        return (f"ndim={self.ndim}, shared={self.shared}, percentiles={self.percentiles}, "
                f"architecture={self.architecture!r}")
