"""Random intensity augmentation of training images (itk_suits.training.augment)."""

import numpy as np
import pytest

from itk_suits.errors import InputImageError, ParameterError
from itk_suits.training.augment import IntensityAugmentation, augment_intensities

#: Curve, gamma and nothing else: the output is a function of the input intensity.
CURVE_ONLY = dict(bias=0.0, blur=0.0, noise=0.0)


def _ramp(shape=(24, 30)):
    return np.linspace(0.0, 500.0, int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("shape", [(24, 30), (6, 10, 12)])
def test_shape_dtype_and_range(shape):
    result = augment_intensities(np.random.default_rng(0).random(shape) * 1000, np.random.default_rng(1))
    assert result.shape == shape and result.dtype == np.float32
    assert np.all(np.isfinite(result)) and result.min() >= 0 and result.max() < 2


def test_same_seed_same_image_other_seed_other_image():
    image = _ramp()
    first = augment_intensities(image, np.random.default_rng(5))
    np.testing.assert_array_equal(first, augment_intensities(image, np.random.default_rng(5)))
    assert np.abs(first - augment_intensities(image, np.random.default_rng(6))).max() > 0.05


def test_monotonic_curves_keep_the_order_of_intensities():
    settings = IntensityAugmentation(inverted=0.0, non_monotonic=0.0, **CURVE_ONLY)
    image = _ramp()
    for seed in range(10):
        result = augment_intensities(image, np.random.default_rng(seed), settings).ravel()
        assert np.all(np.diff(result) >= -1e-6)
        assert result[-1] - result[0] > 0.5


def test_inverted_curves_swap_bright_and_dark_but_keep_air_dark():
    settings = IntensityAugmentation(inverted=1.0, non_monotonic=0.0, **CURVE_ONLY)
    image = _ramp()
    for seed in range(10):
        result = augment_intensities(image, np.random.default_rng(seed), settings).ravel()
        assert result[0] == pytest.approx(0.0, abs=1e-6)  # the darkest input stays darkest
        middle, brightest = result[result.size // 2], result[-1]
        assert brightest < middle  # above the first knot the curve decreases


def test_non_monotonic_curves_break_the_order():
    settings = IntensityAugmentation(non_monotonic=1.0, curve_knots=7, **CURVE_ONLY)
    orders_broken = [np.any(np.diff(augment_intensities(_ramp(), np.random.default_rng(seed), settings).ravel())
                            < -1e-3) for seed in range(10)]
    assert sum(orders_broken) >= 8


def test_bias_field_is_smooth_and_bounded():
    settings = IntensityAugmentation(gamma=(1.0, 1.0), curve_knots=2, inverted=0.0, non_monotonic=0.0,
                                     bias=0.3, blur=0.0, noise=0.0)
    image = np.full((40, 40), 100.0)
    image[:, :4] = 0.0  # a contrast for the percentiles: the rest maps to 1
    ratios = [augment_intensities(image, np.random.default_rng(seed), settings)[:, 4:] for seed in range(5)]
    assert all(np.exp(-0.3) - 1e-5 <= r.min() and r.max() <= np.exp(0.3) + 1e-5 for r in ratios)
    assert max(float(r.max() - r.min()) for r in ratios) > 0.05
    assert all(np.abs(np.diff(r, axis=1)).max() < 0.05 for r in ratios)  # smooth: no jumps between voxels


def test_noise_and_blur_change_a_flat_region():
    settings = IntensityAugmentation(gamma=(1.0, 1.0), curve_knots=2, inverted=0.0, non_monotonic=0.0,
                                     bias=0.0, blur=0.0, noise=0.2)
    image = np.zeros((50, 50))
    image[:, 25:] = 100.0
    spreads = [augment_intensities(image, np.random.default_rng(seed), settings)[:, 30:].std() for seed in range(5)]
    assert max(spreads) > 0.02


@pytest.mark.parametrize("bad", [np.zeros((10, 10)), np.ones(5), np.ones((2, 2, 2, 2)),
                                 np.array([[1.0, np.nan], [0.0, 2.0]])])
def test_bad_images_are_refused(bad):
    with pytest.raises(InputImageError):
        augment_intensities(bad, np.random.default_rng(0))


@pytest.mark.parametrize("settings", [dict(gamma=(0.0, 1.0)), dict(gamma=(2.0, 1.0)), dict(curve_knots=1),
                                      dict(inverted=1.5), dict(non_monotonic=-0.1), dict(bias=-1.0),
                                      dict(noise=float("nan")), dict(bias_lattice=1)])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ParameterError):
        IntensityAugmentation(**settings)
