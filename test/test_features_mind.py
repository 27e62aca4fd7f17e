"""MIND-SSC descriptor and the feature extractor registry."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from itk_suits.errors import InputImageError, ParameterError
from itk_suits.features import available_features, get_feature_extractor, mind_ssc

# Neighbour pairs in channel order, as documented in mind_ssc (unit offsets, array axes).
PAIRS_2D = [
    ((1, 0), (-1, 0)),
    ((1, 0), (0, 1)),
    ((1, 0), (0, -1)),
    ((-1, 0), (0, 1)),
    ((-1, 0), (0, -1)),
    ((0, 1), (0, -1)),
]


def _random_image(shape, seed=0):
    """Smoothed noise with structure at several scales, values in about [0, 1]."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random(shape), 1.0)
    return torch.from_numpy(noise + 0.2 * rng.random(shape)).float()[None, None]


def _square_phantom(size=48, lo=12, hi=36):
    image = torch.zeros(1, 1, size, size)
    image[..., lo:hi, lo:hi] = 100.0
    return image


def _reference_mind_2d(image, radius, dilation):
    """The definition written out with numpy/scipy; valid away from the image border."""
    array = image[0, 0].double().numpy()

    def shifted(offset):
        # value at x is I(x + offset)
        return np.roll(array, [-dilation * c for c in offset], axis=(0, 1))

    distance = np.stack(
        [
            ndimage.uniform_filter((shifted(p) - shifted(q)) ** 2, size=2 * radius + 1)
            for p, q in PAIRS_2D
        ]
    )
    distance -= distance.min(axis=0)
    variance = distance.mean(axis=0)
    variance = np.clip(variance, 1e-3 * variance.mean(), 1e3 * variance.mean())
    return np.exp(-distance / variance)


@pytest.mark.parametrize(
    "shape, channels",
    [((2, 1, 20, 17), 6), ((1, 1, 9, 12, 10), 12)],
)
def test_channel_count_and_grid_match_the_input(shape, channels):
    image = torch.rand(shape)
    features = mind_ssc(image)
    assert features.shape == (shape[0], channels) + shape[2:]
    assert features.dtype == torch.float32
    assert get_feature_extractor("mind").channels(len(shape) - 2) == channels
    assert get_feature_extractor("mind")(image).shape == features.shape


def test_matches_the_definition_in_the_interior():
    image = _random_image((40, 36))
    radius, dilation = 1, 2
    margin = dilation + radius
    interior = (slice(margin, -margin), slice(margin, -margin))
    expected = _reference_mind_2d(image, radius, dilation)[(slice(None),) + interior]
    features = mind_ssc(image, radius=radius, dilation=dilation)[0].double().numpy()
    np.testing.assert_allclose(features[(slice(None),) + interior], expected, atol=1e-4)


@pytest.mark.parametrize(
    "image",
    [
        _random_image((32, 30)),
        torch.rand(2, 1, 12, 11, 10),
        torch.full((1, 1, 16, 16), 7.5),
        torch.zeros(1, 1, 8, 9, 10),
        torch.rand(1, 1, 16, 16) * 1e-6,
        torch.rand(1, 1, 16, 16) * 1e30,
    ],
    ids=["2d-random", "3d-random", "constant", "zero", "tiny-values", "huge-values"],
)
def test_values_are_finite_in_unit_interval_and_max_one_per_voxel(image):
    features = mind_ssc(image)
    assert torch.isfinite(features).all()
    assert features.min() > 0
    assert features.max() <= 1
    assert torch.equal(features.amax(dim=1), torch.ones_like(features[:, 0]))


def test_images_without_structure_give_all_ones():
    for image in (torch.full((1, 1, 10, 12), -1024.0), torch.zeros(2, 1, 6, 7, 8)):
        assert torch.equal(mind_ssc(image), torch.ones_like(mind_ssc(image)))


@pytest.mark.parametrize("scale, offset", [(-2.5, 10.0), (0.01, -0.05), (40.0, 1000.0)])
@pytest.mark.parametrize("shape", [(48, 44), (16, 14, 12)])
def test_invariant_to_affine_intensity_change(shape, scale, offset):
    image = _random_image(shape)
    torch.testing.assert_close(
        mind_ssc(scale * image + offset), mind_ssc(image), atol=2e-4, rtol=0
    )


@pytest.mark.parametrize("shift", [(3, -2), (1, 2, -3)])
def test_shifting_the_image_shifts_the_descriptor_in_the_interior(shift):
    ndim = len(shift)
    size = 40 if ndim == 2 else 20
    large = _random_image((size + 8,) * ndim, seed=3)
    start = tuple(4 + s for s in shift)
    original = large[(Ellipsis,) + tuple(slice(4, 4 + size) for _ in shift)]
    shifted = large[(Ellipsis,) + tuple(slice(b, b + size) for b in start)]
    # shifted(x) = original(x + shift): descriptors agree on the overlap, away from
    # the borders where replicate padding differs.
    margin = 2 + 1  # dilation + radius of the defaults
    inside_shifted = tuple(
        slice(margin + max(-s, 0), size - margin - max(s, 0)) for s in shift
    )
    inside_original = tuple(
        slice(sl.start + s, sl.stop + s) for sl, s in zip(inside_shifted, shift)
    )
    torch.testing.assert_close(
        mind_ssc(shifted)[(Ellipsis,) + inside_shifted],
        mind_ssc(original)[(Ellipsis,) + inside_original],
        atol=1e-3,
        rtol=0,
    )


def test_square_edges_differ_from_flat_interior():
    features = mind_ssc(_square_phantom())[0]
    flat_inside, flat_outside = features[:, 24, 24], features[:, 2, 40]
    left_edge, top_edge = features[:, 24, 12], features[:, 12, 24]
    assert torch.equal(flat_inside, torch.ones(6))
    assert torch.equal(flat_outside, torch.ones(6))
    for edge in (left_edge, top_edge):
        assert edge.min() < 0.5
        assert (edge - flat_inside).abs().sum() > 1.0
    # the descriptor knows the edge's orientation
    assert (left_edge - top_edge).abs().sum() > 1.0


def test_gradient_is_finite_and_no_grad_gives_same_values():
    image = _random_image((24, 22)).requires_grad_(True)
    features = mind_ssc(image)
    (features * torch.linspace(0, 1, 22)).sum().backward()
    assert torch.isfinite(image.grad).all()
    assert image.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(mind_ssc(image), features.detach())
    constant = torch.ones(1, 1, 8, 8, requires_grad=True)
    mind_ssc(constant).sum().backward()
    assert torch.isfinite(constant.grad).all()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"image": torch.rand(16, 16)}, InputImageError),
        ({"image": torch.rand(1, 2, 16, 16)}, InputImageError),
        ({"image": torch.full((1, 1, 8, 8), float("nan"))}, InputImageError),
        ({"image": np.zeros((1, 1, 8, 8))}, InputImageError),
        ({"image": torch.rand(1, 1, 8, 8), "radius": -1}, ParameterError),
        ({"image": torch.rand(1, 1, 8, 8), "dilation": 0}, ParameterError),
    ],
    ids=["no-batch-axes", "two-channels", "nan", "numpy", "radius", "dilation"],
)
def test_bad_input_raises_package_errors(kwargs, error):
    with pytest.raises(error):
        mind_ssc(**kwargs)


def test_unknown_feature_name_lists_known_names():
    with pytest.raises(ParameterError, match="mind"):
        get_feature_extractor("mutual-information")
    assert available_features() == ["intensity", "mind"]
    assert get_feature_extractor(" MIND ").name == "mind"


def test_intensity_features_map_robust_range_to_unit_interval():
    extractor = get_feature_extractor("intensity")
    assert extractor.channels(2) == extractor.channels(3) == 1
    image = torch.linspace(-500.0, 1500.0, 1000).reshape(1, 1, 10, 10, 10)
    image[0, 0, 0, 0, 0] = 1e6  # outlier above the 99.5th percentile
    features = extractor(image)
    assert features.shape == image.shape
    assert features.min() == 0 and features.max() == 1
    # the bulk of the range stays linear: the median maps to about one half
    assert abs(features.median().item() - 0.5) < 0.01
    assert torch.equal(extractor(torch.full((1, 1, 5, 5), 3.0)), torch.zeros(1, 1, 5, 5))
