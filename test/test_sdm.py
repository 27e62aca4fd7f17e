"""Signed distance maps of label maps (the supervision of feature learning)."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from itk_suits.core import descent_step
from itk_suits.errors import InputImageError, ParameterError, PixelTypeError
from itk_suits.training import signed_distance_maps


def _disk(shape=(48, 48), centre=(24.0, 24.0), radius=10.0, label=1):
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    labels = np.zeros(shape, np.uint8)
    labels[distance <= radius] = label
    return labels, distance


def test_disk_is_negative_inside_and_positive_outside():
    labels, _ = _disk()
    maps = signed_distance_maps(labels, [1])
    inside, outside = labels == 1, labels == 0
    assert maps.shape == (2, 48, 48) and maps.dtype == np.float32
    assert (maps[1][inside] <= 0).all() and (maps[1][outside] > 0).all()
    # the background channel is the mirror image: positive inside the disk
    assert (maps[0][inside] > 0).all() and (maps[0][outside] <= 0).all()
    assert maps[1].min() < -0.05 and maps[1].max() > 0.1


def test_disk_value_is_tanh_of_alpha_times_distance_in_mm():
    spacing = 1.5
    labels, distance = _disk(radius=10.0)
    maps = signed_distance_maps(labels, [1], spacing=(spacing, spacing), alpha=0.01)
    outside = labels == 0
    recovered = np.arctanh(maps[1][outside]) / 0.01  # mm
    analytic = (distance[outside] - 10.0) * spacing
    # ITK measures to the centres of the boundary voxels: within one voxel of the true circle
    assert np.abs(recovered - analytic).max() <= spacing * 1.01


def test_half_plane_distances_are_exact_with_anisotropic_spacing():
    labels = np.zeros((30, 40), np.int32)
    labels[:, :20] = 3      # columns 0..19 (x)
    labels[:12, :] += 4     # rows 0..11 (y): a second label, 7 where both overlap
    spacing = (0.7, 2.0)    # x, y in mm
    maps = signed_distance_maps(labels, [3], spacing=spacing, alpha=0.02)
    x = np.arange(40)
    # boundary voxels (inside, touching the outside) at x = 19 have d = 0; one x step = 0.7 mm
    np.testing.assert_allclose(np.arctanh(maps[1][20]) / 0.02, (x - 19) * 0.7, atol=1e-3)
    maps_y = signed_distance_maps(labels >= 4, [1], spacing=spacing, alpha=0.02)
    y = np.arange(30)
    np.testing.assert_allclose(np.arctanh(maps_y[1][:, 30]) / 0.02, (y - 11) * 2.0, atol=1e-3)


def test_missing_label_is_constant_outside_and_full_label_constant_inside():
    labels, _ = _disk()
    maps = signed_distance_maps(labels, [1, 5])
    assert np.all(maps[2] == 1.0)
    full = signed_distance_maps(np.full((10, 12), 2, np.uint8), [2])
    assert np.all(full[1] == -1.0) and np.all(full[0] == 1.0)  # background absent: +1


def test_channels_follow_labels_list_and_background_excludes_listed_labels_only():
    labels = np.zeros((40, 40), np.uint8)
    labels[5:15, 5:15] = 1
    labels[25:35, 25:35] = 2
    labels[25:35, 5:15] = 9  # not listed: counts as background
    maps = signed_distance_maps(labels, [2, 1])
    assert maps[1][30, 30] < 0 and maps[1][10, 10] > 0   # channel 1 is label 2
    assert maps[2][10, 10] < 0 and maps[2][30, 30] > 0   # channel 2 is label 1
    assert maps[0][30, 10] < 0                           # label 9 lies in the background


def test_simpleitk_input_uses_its_spacing_in_3d():
    labels, _ = _disk(shape=(16, 20, 24), centre=(8, 10, 12), radius=5)
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((0.5, 1.0, 3.0))
    from_sitk = signed_distance_maps(image, [1])
    from_numpy = signed_distance_maps(labels, [1], spacing=(0.5, 1.0, 3.0))
    np.testing.assert_array_equal(from_sitk, from_numpy)
    assert not np.array_equal(from_numpy, signed_distance_maps(labels, [1]))
    with pytest.raises(ParameterError, match="spacing"):
        signed_distance_maps(image, [1], spacing=1.0)


@pytest.mark.parametrize("alpha", [0.003, 0.01])
def test_sdm_step_of_a_shifted_half_plane_is_independent_of_alpha(alpha):
    """In tanh's linear range a shift of s voxels gives a step s / (1 + s**2) in every channel,
    so the channel mean (what the descent step takes) equals it too, whatever alpha."""
    shift = 2
    fixed = np.zeros((24, 60), np.uint8)
    fixed[:, :30] = 1
    fixed[:, 45:] = 2
    moving = np.roll(fixed, shift, axis=1)
    moving[:, :shift] = 1
    labels_list = [1, 2]
    F = torch.from_numpy(signed_distance_maps(fixed, labels_list, alpha=alpha))[None]
    M = torch.from_numpy(signed_distance_maps(moving, labels_list, alpha=alpha))[None]
    step = descent_step(F, M, eps=1e-12)
    interior = step[0, 0, 4:-4, 5:25]  # x component, away from the image edges
    expected = shift / (1 + shift**2)
    np.testing.assert_allclose(interior.numpy(), expected, atol=0.02)
    assert step[0, 1].abs().max() < 1e-6  # nothing along y


@pytest.mark.parametrize(
    "labels, labels_list, error",
    [
        (np.zeros((8, 8), np.float32), [1], PixelTypeError),
        (np.zeros((8,), np.uint8), [1], InputImageError),
        (np.zeros((8, 8), np.uint8), [0, 1], ParameterError),
        (np.zeros((8, 8), np.uint8), [1, 1], ParameterError),
        (np.zeros((8, 8), np.uint8), [1.5], ParameterError),
        ([[0, 1]], [1], InputImageError),
    ],
    ids=["float-labels", "1d", "zero-in-list", "repeated", "non-integer-label", "list"],
)
def test_bad_input_raises_package_errors(labels, labels_list, error):
    with pytest.raises(error):
        signed_distance_maps(labels, labels_list)


def test_bad_alpha_and_spacing_are_refused():
    labels = np.zeros((8, 8), np.uint8)
    with pytest.raises(ParameterError, match="alpha"):
        signed_distance_maps(labels, [1], alpha=0)
    with pytest.raises(ParameterError, match="spacing"):
        signed_distance_maps(labels, [1], spacing=(1.0, -1.0))
