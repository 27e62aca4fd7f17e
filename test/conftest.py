"""Synthetic phantoms shared by the tests (generated in code, no data files)."""

import numpy as np
import pytest
import torch


def phantom(shape, seed=0, blobs=12):
    """A smooth structured phantom in [0, 1]: random Gaussian blobs of random
    intensity on a dark background, array order (z, y, x)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = np.zeros(shape, np.float32)
    for _ in range(blobs):
        centre = [rng.uniform(0.2 * n, 0.8 * n) for n in shape]
        width = [rng.uniform(0.06 * n, 0.16 * n) for n in shape]
        distance = sum(((g - c) / w) ** 2 for g, c, w in zip(grids, centre, width))
        image += rng.uniform(0.3, 1.0) * np.exp(-0.5 * distance)
    return image / image.max()


def remap_nonmonotonic(image):
    """A non-monotonic intensity remapping (a 'different modality' of the same anatomy)."""
    return np.sin(3.0 * np.pi * image) ** 2 + 0.3 * image


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small problems run fastest (and reproducibly) on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
