"""The physical-space boundary: user images and transforms in, the caller's library out.

Everything the user passes (``itk``, ``SimpleITK``, ``numpy`` plus geometry, file
paths) becomes a SimpleITK image or transform here, with origin, spacing and
direction kept exactly; results go back with :func:`to_kind`,
:func:`displacement_field_transform` and :func:`compose`.
"""

from itk_suits.interop.images import (
    as_sitk_image,
    check_intensity_image,
    check_same_grid,
    resample,
    same_grid,
    to_kind,
)
from itk_suits.interop.transforms import (
    affine_from_voxel_matrix,
    compose_affine,
    as_sitk_transform,
    compose,
    displacement_field_from_index,
    displacement_field_transform,
    index_displacement_from_field,
    initial_transform,
    to_itk_transform,
)

__all__ = [
    "affine_from_voxel_matrix",
    "compose_affine",
    "as_sitk_image",
    "as_sitk_transform",
    "check_intensity_image",
    "check_same_grid",
    "compose",
    "displacement_field_from_index",
    "displacement_field_transform",
    "index_displacement_from_field",
    "initial_transform",
    "resample",
    "same_grid",
    "to_itk_transform",
    "to_kind",
]
