"""Synthetic phantoms shared by the tests (generated in code, no data files)."""

import numpy as np
import pytest
import torch


def phantom(shape, seed=0, blobs=12, smooth=True):
    """A structured phantom in [0, 1], array order (z, y, x): sharp-edged ellipsoids
    of random intensity (organ-like) on a dark background, interleaved with smooth
    Gaussian blobs when ``smooth`` (a piecewise-constant anatomy otherwise)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = np.zeros(shape, np.float32)
    for index in range(blobs):
        centre = [rng.uniform(0.2 * n, 0.8 * n) for n in shape]
        width = [rng.uniform(0.05 * n, 0.15 * n) for n in shape]
        distance = sum(((g - c) / w) ** 2 for g, c, w in zip(grids, centre, width))
        if smooth and index % 2:
            image += rng.uniform(0.3, 1.0) * np.exp(-0.5 * distance)
        else:
            image[distance < 1.0] = rng.uniform(0.2, 1.0)
    return image / image.max()


def remap_nonmonotonic(image):
    """A non-monotonic intensity remapping (a 'different modality' of the same anatomy)."""
    return np.sin(3.0 * np.pi * image) ** 2 + 0.3 * image


def voxel_points(image):
    """Physical points of every voxel of a SimpleITK image: ``(N, ndim)`` in mm,
    (x, y[, z]) components, voxels in array order (x index fastest), so row ``i``
    matches row ``i`` of ``sitk.GetArrayFromImage(field).reshape(-1, ndim)``."""
    ndim = image.GetDimension()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in reversed(image.GetSize())], indexing="ij"), axis=-1)
    index_xyz = index.reshape(-1, ndim)[:, ::-1]
    to_physical = np.reshape(image.GetDirection(), (ndim, ndim)) @ np.diag(image.GetSpacing())
    return index_xyz @ to_physical.T + np.asarray(image.GetOrigin())


def itk_mapped_points(transform, points):
    """Images of ``points`` (``(N, ndim)``, mm) under an itk transform, ``(N, ndim)`` in mm."""
    return np.array([tuple(transform.TransformPoint(point)) for point in points.tolist()])


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small problems run fastest (and reproducibly) on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
