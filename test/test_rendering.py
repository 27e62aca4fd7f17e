"""CT rendered from label maps: HU per tissue, determinism, geometry, unknown labels, the synthetic body."""

import numpy as np
import pytest
import SimpleITK as sitk

from itk_suits.errors import InputImageError, ParameterError
from itk_suits.training.rendering import LABEL_TABLES, PHASES, TISSUES, render_ct

SPACING = (2.0, 2.0, 3.0)
#: WORD labels of the spheres: liver, spleen, left kidney, right kidney, bladder, and one no table knows.
SPHERES = {1: ((-40, -10, 0), 30), 2: ((55, 20, 0), 18), 3: ((40, 45, -10), 15), 4: ((-40, 45, -10), 15),
           14: ((0, -20, -45), 14), 99: ((0, -50, 20), 12)}


def word_like(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), origin=(-120.0, -100.0, -75.0)) -> sitk.Image:
    """A WORD-style label map in LPS (x left, y posterior): spheres of organs, no body."""
    size = (120, 100, 50)
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    array = np.zeros(size[::-1], np.uint8)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    points = np.asarray(origin) + (np.reshape(direction, (3, 3)) @ (index * SPACING).T).T
    for label, (centre, radius) in SPHERES.items():
        inside = np.linalg.norm(points - centre, axis=1) <= radius
        array[tuple(index[inside][:, ::-1].T)] = label
    labelled = sitk.GetImageFromArray(array)
    labelled.CopyInformation(image)
    return labelled


@pytest.fixture(scope="module")
def labels():
    return word_like()


def interior(labels: sitk.Image, value: int) -> np.ndarray:
    """The voxels of ``value`` at least 2 voxels from its border (where partial volume does not reach)."""
    mask = sitk.BinaryErode(sitk.Equal(labels, value), [2, 2, 2])
    return sitk.GetArrayFromImage(mask) > 0


@pytest.mark.parametrize("phase", PHASES)
def test_every_labelled_tissue_lies_in_its_range(labels, phase):
    ct = sitk.GetArrayFromImage(render_ct(labels, "word", seed=3, phase=phase, noise_hu=10.0))
    for value in (1, 2, 3, 4, 14):
        low, high = TISSUES[LABEL_TABLES["word"][value]].ranges[phase]
        median = float(np.median(ct[interior(labels, value)]))
        assert low - 5 <= median <= high + 5, (value, phase, median, (low, high))
    # the phase shows: kidneys enhance by far more than 50 HU after contrast
    if phase != "non-contrast":
        assert np.median(ct[interior(labels, 3)]) > TISSUES["kidney"].ranges["non-contrast"][1] + 50


def test_the_same_seed_gives_the_same_image(labels):
    first = sitk.GetArrayFromImage(render_ct(labels, "word", seed=7))
    again = render_ct(labels, "word", seed=7)
    other = sitk.GetArrayFromImage(render_ct(labels, "word", seed=8))
    assert np.array_equal(first, sitk.GetArrayFromImage(again))
    assert not np.allclose(first, other)
    assert again.GetMetaData("ct_phase") in PHASES and again.GetMetaData("ct_source") == "word"


def test_geometry_is_kept_on_an_oblique_reflected_grid():
    direction = tuple(np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]).ravel())
    oblique = word_like(direction=direction, origin=(-100.0, 120.0, 75.0))
    ct = render_ct(oblique, "word", seed=1, phase="portal-venous")
    assert ct.GetSize() == oblique.GetSize() and ct.GetSpacing() == oblique.GetSpacing()
    assert np.allclose(ct.GetOrigin(), oblique.GetOrigin()) and np.allclose(ct.GetDirection(), direction)
    liver = interior(oblique, 1)
    assert 95 <= np.median(sitk.GetArrayFromImage(ct)[liver]) <= 135
    coarse = render_ct(oblique, "word", seed=1, spacing=(4.0, 4.0, 6.0))
    assert coarse.GetSize() == (60, 50, 25) and np.allclose(coarse.GetDirection(), direction)
    # the same physical extent: the outer corners of the first voxels coincide
    first_corner = np.asarray(oblique.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))
    assert np.allclose(coarse.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)), first_corner)


def test_unknown_labels_are_soft_tissue_or_an_error(labels):
    ct = sitk.GetArrayFromImage(render_ct(labels, "word", seed=2, phase="non-contrast", noise_hu=5.0))
    low, high = TISSUES["soft_tissue"].ranges["non-contrast"]
    assert low - 5 <= np.median(ct[interior(labels, 99)]) <= high + 5
    with pytest.raises(ParameterError, match=r"labels \[99\]"):
        render_ct(labels, "word", seed=2, unknown="error")
    with pytest.raises(ParameterError, match="source"):
        render_ct(labels, "ct", seed=2)
    with pytest.raises(ParameterError, match="phase"):
        render_ct(labels, "word", seed=2, phase="venous")
    with pytest.raises(InputImageError):
        render_ct(np.zeros((4, 4, 4)), "word", seed=2)


def test_organ_only_maps_get_a_body_with_air_outside(labels):
    ct = sitk.GetArrayFromImage(render_ct(labels, "word", seed=4, noise_hu=0.0))
    background = sitk.GetArrayFromImage(labels) == 0
    assert ct[0, 0, 0] <= -990  # a corner, far outside the organs
    body = background & (ct > -900)
    assert body.sum() > 0.2 * (~background).sum()
    assert (ct[body] < -60).mean() > 0.1  # fat
    assert (ct[body] > 600).sum() > 0  # cortical bone of the synthetic spine
    # the spine lies posterior (+y in LPS) of the kidneys' centroid: bone voxels' mean y index above it
    bone_y = np.nonzero(ct > 600)[1].mean()
    kidney_y = np.nonzero(np.isin(sitk.GetArrayFromImage(labels), (3, 4)))[1].mean()
    assert bone_y > kidney_y
    bare = sitk.GetArrayFromImage(render_ct(labels, "word", seed=4, noise_hu=0.0, body=False))
    assert np.all(bare[background & interior(sitk.Cast(labels == 0, sitk.sitkUInt8), 1)] <= -990)


def test_icrp110_labels_map_to_their_tissues():
    array = np.zeros((20, 30, 30), np.uint8)
    array[:, 5:25, 5:25] = 117  # residual tissue: adipose
    array[:, 10:20, 8:14] = 95  # liver
    array[:, 10:20, 16:22] = 52  # lumbar spine spongiosa
    labels = sitk.GetImageFromArray(array)
    labels.SetSpacing((2.0, 2.0, 2.0))
    ct = sitk.GetArrayFromImage(render_ct(labels, "icrp110", seed=0, phase="portal-venous", noise_hu=5.0))
    assert np.median(ct[2:-2, 12:18, 9:13]) == pytest.approx(115, abs=20)
    assert 150 <= np.median(ct[2:-2, 12:18, 17:21]) <= 350
    assert np.median(ct[2:-2, 6:9, 6:24]) < -70
    assert np.median(ct[:, 0, :]) <= -990  # label 0 of a whole-body phantom is air; no body is added
