"""Tests of the figure helpers and of the bundled demo pair."""

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread

from itk_suits.sample_data import data_path, demo_pair
from itk_suits.errors import GeometryError, ParameterError
from itk_suits.visualization import (
    checkerboard,
    save_contour_overlay,
    save_registration_figure,
    warped_grid_image,
)


def _phantom(shape=(24, 20)):
    """Smooth blob image with a bright square, (y, x)."""
    y, x = np.indices(shape, dtype=np.float64)
    image = np.exp(-((y - shape[0] / 2) ** 2 + (x - shape[1] / 2) ** 2) / 40.0)
    image[4:8, 4:8] += 1.0
    return image


def test_checkerboard_alternates_tiles_of_a_and_b():
    rng = np.random.default_rng(1)
    a = (rng.random((16, 16)) > 0.5).astype(float)  # binary: windowing leaves it unchanged
    b = 1.0 - a
    board = checkerboard(a, b, tiles=4)
    tile_parity = np.kron(np.indices((4, 4)).sum(axis=0) % 2, np.ones((4, 4), dtype=int))
    np.testing.assert_array_equal(board[tile_parity == 0], a[tile_parity == 0])
    np.testing.assert_array_equal(board[tile_parity == 1], b[tile_parity == 1])


def test_checkerboard_windows_each_image_to_unit_range():
    a = np.linspace(-500.0, 3000.0, 400).reshape(20, 20)
    b = np.linspace(0.0, 1e-3, 400).reshape(20, 20)
    board = checkerboard(a, b, tiles=2)
    assert board.min() == 0.0 and board.max() == 1.0
    # both images are ramps of the same shape, so after windowing they agree
    np.testing.assert_allclose(board, checkerboard(b, a, tiles=2), atol=1e-12)


def test_checkerboard_splits_an_uneven_axis_into_near_equal_tiles():
    a = np.zeros((10, 7))
    a[::2] = 1.0  # binary: windowing leaves it unchanged
    board = checkerboard(a, 1.0 - a, tiles=3)
    # 7 columns in 3 tiles of 3, 2 and 2 columns: a, b, a
    np.testing.assert_array_equal(board[0], [1, 1, 1, 0, 0, 1, 1])
    # 10 rows in 3 tiles of 4, 3 and 3 rows: column 0 shows a, b, a
    np.testing.assert_array_equal(board[:, 0], [1, 0, 1, 0, 0, 1, 0, 0, 1, 0])


def test_checkerboard_rejects_mismatched_shapes_and_bad_tiles():
    with pytest.raises(GeometryError, match="b: shape"):
        checkerboard(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ParameterError, match="tiles"):
        checkerboard(np.zeros((4, 4)), np.zeros((4, 4)), tiles=0)


def test_warped_grid_of_zero_displacement_is_the_regular_grid():
    grid = warped_grid_image(np.zeros((2, 20, 30)), (20, 30), spacing_px=5)
    y, x = np.indices((20, 30))
    regular = ((y % 5 == 0) | (x % 5 == 0)).astype(float)
    np.testing.assert_array_equal(grid, regular)


def test_warped_grid_is_periodic_in_the_shift():
    shape = (20, 30)
    zero = warped_grid_image(np.zeros((2,) + shape), shape, spacing_px=8)
    one_period = np.stack([np.full(shape, 8.0), np.full(shape, -16.0)])
    half_period = np.stack([np.full(shape, 4.0), np.zeros(shape)])
    np.testing.assert_array_equal(warped_grid_image(one_period, shape, spacing_px=8), zero)
    assert not np.array_equal(warped_grid_image(half_period, shape, spacing_px=8), zero)


def test_warped_grid_follows_the_x_component_along_the_last_axis():
    shape = (16, 16)
    shift_x = np.stack([np.full(shape, 2.0), np.zeros(shape)])
    grid = warped_grid_image(shift_x, shape, spacing_px=8)
    # pixel x maps to x + 2, so vertical lines sit at x = 6 and 14
    np.testing.assert_array_equal(np.flatnonzero(grid[3] == 1.0), [6, 14])


def test_warped_grid_rejects_a_field_of_the_wrong_shape():
    with pytest.raises(GeometryError, match="displacement"):
        warped_grid_image(np.zeros((2, 10, 10)), (10, 12))


def _read_png(path):
    assert path.stat().st_size > 0
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    return pixels


def test_registration_figure_2d_with_field_writes_a_taller_png_than_without(tmp_path):
    fixed = _phantom()
    moving = np.roll(fixed, 2, axis=1)
    field = np.zeros((2,) + fixed.shape)
    field[0] = 2.0
    without = _read_png(save_registration_figure(tmp_path / "a.png", fixed, moving, fixed))
    with_field = _read_png(
        save_registration_figure(tmp_path / "sub" / "b.png", fixed, moving, fixed, field, title="t")
    )
    # four panels in one row versus six panels in two rows
    assert with_field.shape[0] / with_field.shape[1] > 1.5 * without.shape[0] / without.shape[1]


def test_registration_figure_shows_the_middle_slice_of_a_3d_volume(tmp_path):
    fixed, moving = _phantom(), np.roll(_phantom(), 3, axis=0)
    other = np.random.default_rng(0).random(fixed.shape)

    def volume(middle):
        return np.stack([other, middle, other])

    flat = _read_png(save_registration_figure(tmp_path / "2d.png", fixed, moving, fixed))
    middle = _read_png(
        save_registration_figure(tmp_path / "3d.png", volume(fixed), volume(moving), volume(fixed))
    )
    first = _read_png(
        save_registration_figure(
            tmp_path / "first.png",
            np.stack([fixed, other]),
            np.stack([moving, other]),
            np.stack([fixed, other]),
            slice_index=0,
        )
    )
    np.testing.assert_array_equal(middle, flat)
    np.testing.assert_array_equal(first, flat)


def test_registration_figure_3d_with_field(tmp_path):
    volume = np.stack([_phantom()] * 5)
    field = np.zeros((3,) + volume.shape)
    field[2] = 1.5
    _read_png(save_registration_figure(tmp_path / "f.png", volume, volume, volume, field))
    with pytest.raises(GeometryError, match="displacement"):
        save_registration_figure(tmp_path / "g.png", volume, volume, volume, field[:2])


def test_figures_refuse_to_overwrite_without_flag(tmp_path):
    image = _phantom()
    path = save_registration_figure(tmp_path / "r.png", image, image, image)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_registration_figure(path, image, image * 2.0, image)
    assert path.read_bytes() == before
    save_registration_figure(path, image, -image, image, overwrite=True)
    assert path.read_bytes() != before

    labels = {"fixed labels": (image > 0.5).astype(int)}
    overlay = save_contour_overlay(tmp_path / "c.png", image, labels)
    with pytest.raises(FileExistsError):
        save_contour_overlay(overlay, image, labels)
    save_contour_overlay(overlay, image, labels, overwrite=True)


def test_contour_overlay_writes_png_for_2d_and_3d(tmp_path):
    image = _phantom((30, 30))
    fixed_labels = (image > 0.3).astype(int) + (image > 0.8)
    moved_labels = np.roll(fixed_labels, 2, axis=1)
    maps = {"fixed labels": fixed_labels, "warped moving labels": moved_labels}
    _read_png(save_contour_overlay(tmp_path / "c2.png", image, maps))
    maps_3d = {name: np.stack([m] * 3) for name, m in maps.items()}
    _read_png(save_contour_overlay(tmp_path / "c3.png", np.stack([image] * 3), maps_3d))
    with pytest.raises(GeometryError, match="label_maps"):
        save_contour_overlay(tmp_path / "c4.png", image, {"bad": fixed_labels[:-1]})


def test_demo_pair_is_the_bundled_brainweb_t1_and_pd():
    t1, pd = demo_pair()
    for image, name in ((t1, "brainweb_t1.png"), (pd, "brainweb_pd.png")):
        assert image.GetPixelID() == sitk.sitkFloat32
        assert image.GetSize() == (181, 217)
        assert image.GetSpacing() == (1.0, 1.0)
        stored = sitk.GetArrayFromImage(sitk.ReadImage(str(data_path(name))))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), stored.astype(np.float32))
    t1_array, pd_array = sitk.GetArrayFromImage(t1), sitk.GetArrayFromImage(pd)
    assert (t1_array.min(), t1_array.max()) == (0.0, 214.0)
    assert (pd_array.min(), pd_array.max()) == (0.0, 251.0)
    # sums of the original 8-bit values (channel 0 of ITK's RGB example PNGs)
    assert t1_array.astype(np.int64).sum() == 2673952
    assert pd_array.astype(np.int64).sum() == 4860107
    assert not np.array_equal(t1_array, pd_array)


def test_data_path_names_the_choices_for_an_unknown_file():
    with pytest.raises(ParameterError, match="brainweb_t1.png"):
        data_path("missing.png")
