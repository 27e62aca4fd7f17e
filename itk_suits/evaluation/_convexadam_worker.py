"""Run ConvexAdam (the ``convexadam`` package) on images in a folder; executed by its interpreter.

Usage: ``python _convexadam_worker.py FOLDER``. ``FOLDER/job.json`` holds
``{"options": keyword arguments of convexAdam.convex_adam_MIND.convex_adam_pt,
"threads": int or null}``; ``FOLDER`` holds ``fixed.mha`` and ``moving.mha``
on one isotropic voxel grid (2D or 3D). Writes ``displacement_field.mha``
(physical displacements in mm on that grid, fixed point -> moving point) and
``result.json`` (``{"seconds": registration time}``).

``convex_adam_pt`` takes two arrays of one 3D shape and returns, per voxel,
the displacement in voxels along each array axis (array order, i.e. z, y, x
of the SimpleITK array): fixed voxel ``i`` matches moving voxel ``i + d``.
:func:`as_volume` stacks a 2D slice into such a volume and
:func:`physical_field` turns the voxel displacements into millimetres in
physical space. Those two use only numpy and SimpleITK; torch and convexAdam
are imported in :func:`main` alone. This file imports nothing of itk-suits.
"""

import json
import os
import sys
import time

# Run as a script, Python puts this folder first on sys.path; keep its modules out of the peer's imports.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

#: A 2D pair is stacked into this many ConvexAdam grid cells (``grid_sp`` slices each): its 3x3x3
#: smoothing of the coarse grid needs at least three.
STACK_CELLS = 4


def as_volume(array, depth):
    """A 3D array for ConvexAdam: a 3D array as it is, a 2D one stacked ``depth`` times along a new axis 0."""
    array = np.asarray(array, dtype=np.float32)
    return array if array.ndim == 3 else np.repeat(array[None], depth, axis=0)


def in_plane(displacement, ndim):
    """The ConvexAdam result for an image of ``ndim`` dimensions.

    Parameters
    ----------
    displacement : numpy.ndarray, shape (A, B, C, 3)
        Voxel displacements along the array axes of the volume of :func:`as_volume`.
    ndim : int
        Dimension of the image (2: keep the middle slice of the stack and its in-plane components).

    Returns
    -------
    numpy.ndarray, shape (*image array shape, ndim)
    """
    displacement = np.asarray(displacement, dtype=np.float64)
    if ndim == 3:
        return displacement
    return displacement[displacement.shape[0] // 2, :, :, 1:]


def physical_field(displacement, grid):
    """Voxel displacements in array order as a SimpleITK displacement field in mm.

    Parameters
    ----------
    displacement : numpy.ndarray, shape (*grid array shape, ndim)
        Displacement of each voxel in voxels along the array axes (the last
        axis in array order: z, y, x in 3D).
    grid : SimpleITK.Image
        The voxel grid the displacements were computed on.

    Returns
    -------
    SimpleITK.Image
        Vector image (float64) with ``grid``'s geometry: ``direction @
        diag(spacing) @ d_index`` with ``d_index`` the displacement in index
        order (x, y, z).
    """
    ndim = grid.GetDimension()
    index_to_physical = np.array(grid.GetDirection()).reshape(ndim, ndim) @ np.diag(grid.GetSpacing())
    millimetres = np.asarray(displacement, dtype=np.float64)[..., ::-1] @ index_to_physical.T
    field = sitk.GetImageFromArray(np.ascontiguousarray(millimetres), isVector=True)
    field.CopyInformation(grid)
    return field


def main(folder):
    with open(os.path.join(folder, "job.json"), encoding="utf-8") as file:
        job = json.load(file)
    import torch
    from convexAdam.convex_adam_MIND import convex_adam_pt

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    fixed = sitk.ReadImage(os.path.join(folder, "fixed.mha"))
    moving = sitk.ReadImage(os.path.join(folder, "moving.mha"))
    options = dict(job["options"])
    depth = STACK_CELLS * options["grid_sp"]
    volumes = [torch.from_numpy(as_volume(sitk.GetArrayFromImage(image), depth)) for image in (fixed, moving)]
    start = time.perf_counter()
    displacement = convex_adam_pt(volumes[0], volumes[1], device=torch.device("cpu"), dtype=torch.float32,
                                  **options)
    seconds = time.perf_counter() - start
    field = physical_field(in_plane(displacement, fixed.GetDimension()), fixed)
    sitk.WriteImage(field, os.path.join(folder, "displacement_field.mha"))
    with open(os.path.join(folder, "result.json"), "w", encoding="utf-8") as file:
        json.dump({"seconds": seconds}, file)


if __name__ == "__main__":
    main(sys.argv[1])
