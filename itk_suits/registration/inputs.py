"""Reading and checking the images of a registration, and handing them to the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from ..checks import checked_choice
from ..errors import GeometryError, InputImageError
from ..schedule import WORKING_GRIDS
from ..interop import images as image_io

__all__ = [
    "read_pair", "read_fixed_mask", "check_size", "field_of_view", "to_tensor", "feature_grid", "WorkingGrid",
    "working_grid",
]

#: Largest number of voxels features are computed on; a larger fixed image is
#: described on a coarser grid of the same extent (every axis reduced by the
#: same whole factor), which bounds the memory of the features and of the
#: descent. The field is still evaluated, exactly, on every fixed voxel.
FEATURE_VOXELS = 2**24

#: Voxels whose largest spacing exceeds their smallest by more than this factor
#: are "strongly anisotropic": an ``"isotropic"`` working grid resamples them.
ANISOTROPY = 1.5

#: An isotropic working grid may have this many voxels even when the fixed
#: image has fewer (thin-slice stacks of few voxels are upsampled across slices).
ISOTROPIC_MIN_VOXELS = 2**20

#: Voxels of the moving field of view given up at its edge, so that descriptor
#: patches straddling the edge stay out of the descent.
FIELD_OF_VIEW_EROSION = 3


def read_pair(fixed: Any, moving: Any, spacing=None, moving_spacing=None) -> tuple[sitk.Image, sitk.Image, str]:
    """Checked float32 fixed and moving images and the library of the caller (``"itk"``, ``"sitk"``, ``"numpy"``).

    Parameters
    ----------
    fixed, moving : itk.Image, SimpleITK.Image, numpy.ndarray or path
        Scalar 2D or 3D images.
    spacing, moving_spacing : sequence of float, optional
        Spacing (x, y[, z], mm) of numpy inputs; the moving one defaults to the fixed one.

    Raises
    ------
    InputImageError, PixelTypeError, GeometryError
        Missing, unreadable, non-scalar, empty, constant or non-finite images, or
        images of different dimensions.
    """
    if fixed is None or moving is None:
        raise InputImageError("set both the fixed and the moving image before Update()")
    fixed_image, kind = image_io.as_sitk_image(fixed, name="fixed", spacing=spacing)
    moving_image, _ = image_io.as_sitk_image(
        moving, name="moving", spacing=moving_spacing if moving_spacing is not None else spacing)
    if fixed_image.GetDimension() != moving_image.GetDimension():
        raise GeometryError(
            f"fixed is {fixed_image.GetDimension()}D but moving is {moving_image.GetDimension()}D: "
            "register images of the same dimension (extract a slice, or register the volumes)"
        )
    image_io.check_intensity_image(fixed_image, "fixed")
    image_io.check_intensity_image(moving_image, "moving")
    return sitk.Cast(fixed_image, sitk.sitkFloat32), sitk.Cast(moving_image, sitk.sitkFloat32), kind


def read_fixed_mask(mask: Any, fixed: sitk.Image, spacing=None) -> sitk.Image | None:
    """The fixed mask as float32 0/1 on the fixed grid (``None`` stays ``None``).

    Raises
    ------
    GeometryError
        The mask is not on the fixed grid.
    InputImageError
        The mask has no non-zero voxel.
    """
    if mask is None:
        return None
    image, _ = image_io.as_sitk_image(mask, name="fixed_mask", spacing=spacing)
    image_io.check_same_grid(fixed, image, "fixed", "fixed_mask")
    image = sitk.Cast(image != 0, sitk.sitkFloat32)
    if sitk.GetArrayViewFromImage(image).max() == 0:
        raise InputImageError("fixed_mask is empty (no non-zero voxel): nothing to register")
    return image


def check_size(fixed: sitk.Image, spacings: Sequence[float], unit: str = "voxel") -> None:
    """Refuse a fixed image smaller than the coarsest control spacing along an axis.

    Parameters
    ----------
    fixed : SimpleITK.Image
        The fixed image.
    spacings : sequence of float
        Control-point spacing per scale.
    unit : {"voxel", "mm"}
        Unit of ``spacings``: fixed-image voxels, or millimetres (compared with
        the image's physical extent).

    Raises
    ------
    InputImageError
        With the image size, the spacing and grid spacings that would fit.
    """
    coarsest = max(spacings)
    if unit == "mm":
        extent = [n * s for n, s in zip(fixed.GetSize(), fixed.GetSpacing())]
        if any(e < coarsest for e in extent):
            raise InputImageError(
                f"fixed image extent {tuple(round(e, 1) for e in extent)} mm is smaller than the coarsest "
                f"control-point spacing ({coarsest:g} mm) along an axis: pass smaller grid_spacings, e.g. "
                f"grid_spacings=({max(2.0, round(min(extent) / 2, 1)):g}, ...)"
            )
        return
    if any(n < coarsest for n in fixed.GetSize()):
        raise InputImageError(
            f"fixed image size {fixed.GetSize()} is smaller than the coarsest control-point spacing "
            f"({coarsest:g} voxels) along an axis: pass smaller grid_spacings, e.g. "
            f"grid_spacings=({max(2, min(fixed.GetSize()) // 2)}, ...)"
        )


def field_of_view(moving: sitk.Image, fixed: sitk.Image, initial: sitk.Transform | None) -> sitk.Image | None:
    """Where the moving image, resampled onto the fixed grid, has real data (float32 0/1).

    Eroded by :data:`FIELD_OF_VIEW_EROSION` voxels; ``None`` when that is everywhere.
    """
    ones = sitk.Image(moving.GetSize(), sitk.sitkFloat32) + 1.0
    ones.CopyInformation(moving)
    covered = image_io.resample(ones, fixed, initial, "nearest") > 0.5
    radius = [FIELD_OF_VIEW_EROSION] * fixed.GetDimension()
    covered = sitk.BinaryErode(covered, radius, sitk.sitkBox, 0, 1, False)
    if sitk.GetArrayViewFromImage(covered).min() == 1:
        return None
    return sitk.Cast(covered, sitk.sitkFloat32)


def to_tensor(image: sitk.Image, device: torch.device) -> torch.Tensor:
    """A scalar image as a float32 tensor ``[1, 1, *array shape]`` on ``device``."""
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    return torch.from_numpy(array)[None, None].to(device)


def feature_grid(shape: Sequence[int], limit: int | None = None) -> tuple[tuple[int, ...], int]:
    """The grid features are computed on for a fixed image of array shape ``shape``.

    ``limit`` defaults to :data:`FEATURE_VOXELS`.

    Returns
    -------
    shape : tuple of int
        Array shape of the feature grid: ``round((n - 1) / r) + 1`` voxels per axis,
        spanning the same extent (corner-aligned), at most ``limit`` voxels.
    reduction : int
        ``r``: fixed voxels per feature voxel (1 when ``shape`` is within the limit).
    """
    limit = FEATURE_VOXELS if limit is None else limit
    shape = tuple(int(n) for n in shape)
    reduction = 1
    reduced = shape
    while int(np.prod(reduced)) > limit:
        reduction += 1
        reduced = tuple(max(2, int(round((n - 1) / reduction)) + 1) for n in shape)
    return reduced, reduction



@dataclass(frozen=True)
class WorkingGrid:
    """The voxel grid features and descent work on, spanning the fixed image's extent.

    It shares the fixed image's origin, direction and extent (corner-aligned:
    its first and last voxels are the fixed image's first and last), with its
    own number of voxels per axis.

    Attributes
    ----------
    shape : tuple of int
        Array shape (z, y, x order).
    factors : tuple of float
        Fixed voxels per working voxel along each axis, array order
        (``(n - 1) / (m - 1)``; above 1 where the working grid is coarser, below
        1 where it is finer).
    voxel_size : tuple of float
        Working voxel size in millimetres, array order.
    """

    shape: tuple[int, ...]
    factors: tuple[float, ...]
    voxel_size: tuple[float, ...]

    @property
    def voxels(self) -> int:
        return int(np.prod(self.shape))

    def control_spacing(self, spacing: float, unit: str) -> tuple[float, ...]:
        """A control-point spacing in working voxels per axis (array order).

        ``spacing`` is in fixed-image voxels (``unit="voxel"``) or millimetres (``"mm"``).
        """
        if unit == "mm":
            return tuple(spacing / v for v in self.voxel_size)
        return tuple(spacing / f for f in self.factors)


def working_grid(size: Sequence[int], spacing: Sequence[float], mode: str = "native",
                 limit: int | None = None) -> WorkingGrid:
    """The working grid of a fixed image of ``size`` voxels and ``spacing`` mm (both x, y[, z] order).

    ``"native"`` is the fixed voxel grid itself. ``"isotropic"`` resamples
    strongly anisotropic voxels (largest spacing over smallest above
    :data:`ANISOTROPY`) to about isotropic ones: the finest spacing, no finer
    than the smallest fixed spacing, that keeps the voxel count at most that
    of the fixed image or :data:`ISOTROPIC_MIN_VOXELS`, whichever is larger
    (1.25 x 1.25 x 7.7 mm abdominal MR becomes about 2.3 mm isotropic with
    the same number of voxels; a 0.5 x 0.5 x 7.5 mm stack of a few slices
    becomes 0.5 mm isotropic). Either way, a grid of more than ``limit``
    voxels (default :data:`FEATURE_VOXELS`) is coarsened by a whole factor
    (see :func:`feature_grid`).
    """
    checked_choice(mode, "working_grid", WORKING_GRIDS)
    size = [int(n) for n in size][::-1]
    spacing = [float(s) for s in spacing][::-1]
    shape = tuple(size)
    if mode == "isotropic" and len(size) > 1 and max(spacing) > ANISOTROPY * min(spacing):
        extent = [(n - 1) * s for n, s in zip(size, spacing)]
        budget = max(int(np.prod(size)), ISOTROPIC_MIN_VOXELS)
        step = max(min(spacing), (float(np.prod([e for e in extent if e > 0])) / budget) ** (1.0 / len(size)))
        shape = tuple(max(2, int(round(e / step)) + 1) if n > 1 else 1 for n, e in zip(size, extent))
    shape, _ = feature_grid(shape, limit)
    factors = tuple((n - 1) / (m - 1) if m > 1 else 1.0 for n, m in zip(size, shape))
    return WorkingGrid(shape, factors, tuple(s * f for s, f in zip(spacing, factors)))
