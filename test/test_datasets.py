"""Tests of itk_suits.interop.datasets: pairs from dataset.json, folders and files; 2D slices."""

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from itk_suits.errors import GeometryError, InputImageError, ParameterError
from itk_suits.evaluation import (
    PairSequence,
    RegistrationPair,
    pair_from_files,
    pairs_from_dataset_json,
    pairs_from_folders,
    slice_pair,
)

SIZE = (8, 10, 12)  # x, y, z


def volume(seed, spacing=(1.0, 1.5, 2.0), origin=(3.0, -4.0, 10.0), direction=None, labels=False):
    """A small 3D image (random intensities) or label map (a box of label 1, one of label 2)."""
    rng = np.random.default_rng(seed)
    if labels:
        array = np.zeros(SIZE[::-1], np.uint8)
        array[2:6, 3:7, 1:4] = 1
        array[7:10, 2:5, 4:7] = 2
    else:
        array = rng.uniform(0, 100, SIZE[::-1]).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, float).ravel()))
    return image


def write(image, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.fixture
def learn2reg(tmp_path):
    """A dataset.json with two subjects: labels of one listed in "training", of the other found in labelsTr."""
    for subject in ("0001", "0002"):
        write(volume(int(subject)), tmp_path / "imagesTr" / f"case_{subject}_0000.nii.gz")
        write(volume(int(subject), labels=True), tmp_path / "labelsTr" / f"case_{subject}_0000.nii.gz")
    write(volume(0) > 50, tmp_path / "masksTr" / "case_0002_0000.nii.gz")
    dataset = {
        "name": "tiny",
        "labels": {"0": "background", "1": "liver", "2": "spleen"},
        "training": [{"image": "./imagesTr/case_0001_0000.nii.gz", "label": "./labelsTr/case_0001_0000.nii.gz"}],
        "registration_val": [
            {"fixed": "./imagesTr/case_0002_0000.nii.gz", "moving": "./imagesTr/case_0001_0000.nii.gz"}
        ],
    }
    path = tmp_path / "tiny_dataset.json"
    path.write_text(json.dumps(dataset))
    return path


# --- dataset.json -------------------------------------------------------------


def test_dataset_json_pairs_have_images_labels_mask_and_names(learn2reg):
    pairs = pairs_from_dataset_json(learn2reg)
    assert isinstance(pairs, PairSequence) and len(pairs) == 1
    assert pairs.names == ["case_0002_0000__case_0001_0000"]
    pair = pairs[0]
    assert pair.label_names == {0: "background", 1: "liver", 2: "spleen"}
    assert pair.fixed.GetSize() == SIZE and pair.fixed.GetSpacing() == (1.0, 1.5, 2.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(pair.moving), sitk.GetArrayFromImage(volume(1)))
    assert pair.fixed_labels is not None and pair.moving_labels is not None
    assert set(np.unique(sitk.GetArrayFromImage(pair.moving_labels))) == {0, 1, 2}
    assert pair.fixed_mask is not None


def test_dataset_json_without_the_split_lists_the_splits_it_has(learn2reg):
    with pytest.raises(ParameterError, match="registration_val"):
        pairs_from_dataset_json(learn2reg, split="registration_test")


def test_dataset_json_naming_a_missing_image_fails_when_read(learn2reg):
    dataset = json.loads(learn2reg.read_text())
    dataset["registration_val"].append({"fixed": "./imagesTr/case_0003_0000.nii.gz", "moving": "./x.nii.gz"})
    learn2reg.write_text(json.dumps(dataset))
    with pytest.raises(InputImageError, match="case_0003_0000"):
        pairs_from_dataset_json(learn2reg)


def test_dataset_json_that_is_not_json_is_a_parameter_error(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text("{not json")
    with pytest.raises(ParameterError, match="JSON"):
        pairs_from_dataset_json(path)
    with pytest.raises(InputImageError):
        pairs_from_dataset_json(tmp_path / "missing.json")


def test_pairs_are_read_only_when_accessed(learn2reg, tmp_path):
    pairs = pairs_from_dataset_json(learn2reg)
    os.remove(tmp_path / "imagesTr" / "case_0001_0000.nii.gz")
    assert len(pairs) == 1 and len(pairs[:1]) == 1
    with pytest.raises(InputImageError, match="case_0001_0000"):
        pairs[0]


# --- folders and files --------------------------------------------------------


@pytest.fixture
def folders(tmp_path):
    for index in range(3):
        write(volume(index), tmp_path / "ct" / f"ct_{index}.mha")
        write(volume(index, labels=True), tmp_path / "ct_labels" / f"ct_{index}_seg.mha")
        write(volume(10 + index), tmp_path / "mr" / f"mr_{index}.mha")
    (tmp_path / "ct" / "notes.txt").write_text("not an image")
    return tmp_path


def test_folders_pair_by_sorted_order_with_matching_labels(folders):
    pairs = pairs_from_folders(folders / "ct", folders / "mr", fixed_label_dir=folders / "ct_labels")
    assert pairs.names == ["ct_0__mr_0", "ct_1__mr_1", "ct_2__mr_2"]
    second = pairs[1]
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(second.fixed_labels), sitk.GetArrayFromImage(volume(1, labels=True))
    )
    assert second.moving_labels is None


def test_folders_all_pairs_gives_every_combination_without_self_pairs(folders):
    assert len(pairs_from_folders(folders / "ct", folders / "mr", all_pairs=True)) == 9
    same = pairs_from_folders(folders / "ct", folders / "ct", all_pairs=True)
    assert len(same) == 6 and "ct_0__ct_0" not in same.names


def test_folders_with_unmatched_counts_are_refused(folders):
    os.remove(folders / "mr" / "mr_2.mha")
    with pytest.raises(ParameterError, match="all_pairs"):
        pairs_from_folders(folders / "ct", folders / "mr")
    with pytest.raises(ParameterError, match="label"):
        pairs_from_folders(folders / "mr", folders / "ct", fixed_label_dir=folders / "ct_labels")
    with pytest.raises(InputImageError):
        pairs_from_folders(folders / "nowhere", folders / "mr")


def test_pair_from_files_refuses_labels_on_another_grid(tmp_path):
    fixed = write(volume(0), tmp_path / "fixed.nii.gz")
    moving = write(volume(1), tmp_path / "moving.nii.gz")
    shifted = write(volume(0, labels=True, origin=(0.0, 0.0, 0.0)), tmp_path / "labels.nii.gz")
    pair = pair_from_files(fixed, moving, label_names={1: "liver"})
    assert pair.name == "fixed__moving" and pair.label_names == {1: "liver"}
    with pytest.raises(GeometryError, match="fixed_labels"):
        pair_from_files(fixed, moving, fixed_labels=shifted)
    with pytest.raises(InputImageError, match="moving"):
        pair_from_files(fixed, tmp_path / "absent.nii.gz")


# --- 2D slices ------------------------------------------------------------------

PERMUTED = [[0, 0, 1], [-1, 0, 0], [0, 1, 0]]  # index i -> physical -y, j -> z, k -> x


def assert_slice_keeps_positions(volume_image, slice_image, axis):
    """Every pixel lies at its voxel's physical point with coordinate ``axis`` dropped, same value."""
    kept = [row for row in range(3) if row != axis]
    values = sitk.GetArrayViewFromImage(slice_image)
    for index in [(0, 0), (slice_image.GetWidth() - 1, 0), (2, slice_image.GetHeight() - 1), (3, 4)]:
        point_2d = np.array(slice_image.TransformIndexToPhysicalPoint(index))
        candidates = [
            v for v in np.ndindex(*volume_image.GetSize())
            if np.allclose(np.array(volume_image.TransformIndexToPhysicalPoint(v))[kept], point_2d)
        ]
        voxel_values = {float(volume_image[candidate]) for candidate in candidates}
        assert float(values[index[::-1]]) in voxel_values


@pytest.mark.parametrize("direction", [None, PERMUTED], ids=["identity", "permuted"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_keep_in_plane_geometry_and_values(direction, axis):
    fixed = volume(0, direction=direction)
    labels = volume(0, labels=True, direction=direction)
    pair = RegistrationPair("p", fixed, volume(1, direction=direction), fixed_labels=labels)
    sliced = slice_pair(pair, axis=axis, index=3)
    assert sliced.fixed.GetDimension() == 2 and sliced.fixed_labels.GetDimension() == 2
    assert np.allclose(np.abs(np.linalg.det(np.reshape(sliced.fixed.GetDirection(), (2, 2)))), 1.0)
    assert_slice_keeps_positions(fixed, sliced.fixed, axis)
    # the slice plane is the one at index 3 along the voxel axis that runs along `axis`
    normal = np.argmax(np.abs(np.reshape(fixed.GetDirection(), (3, 3))[axis]))
    expected = sitk.GetArrayFromImage(fixed).take(3, axis=2 - normal)
    assert sorted(sitk.GetArrayFromImage(sliced.fixed).ravel()) == sorted(expected.ravel())


def test_middle_slice_by_default_and_centroid_slice_on_request():
    labels = volume(0, labels=True)
    pair = RegistrationPair("p", volume(0), volume(1), fixed_labels=labels, moving_labels=labels)
    assert slice_pair(pair).name == "p_z6-6"
    # 48 voxels of label 1 at z 2..5 (x 1..3), 27 of label 2 at z 7..9 (x 4..6):
    # centroid z = (48 * 3.5 + 27 * 8) / 75 = 5.12, x = (48 * 2 + 27 * 5) / 75 = 3.08
    assert slice_pair(pair, axis=2, index="labels").name == "p_z5-5"
    assert slice_pair(pair, axis=0, index="labels").name == "p_x3-3"


def test_slicing_refuses_what_it_cannot_cut():
    pair = RegistrationPair("p", volume(0), volume(1))
    with pytest.raises(ParameterError):
        slice_pair(pair, axis=3)
    with pytest.raises(ParameterError, match="slices"):
        slice_pair(pair, axis=2, index=12)
    with pytest.raises(ParameterError, match="label"):
        slice_pair(pair, index="labels")
    tilt = np.cos(0.2), np.sin(0.2)
    oblique = [[1, 0, 0], [0, tilt[0], -tilt[1]], [0, tilt[1], tilt[0]]]
    with pytest.raises(GeometryError, match="oblique"):
        slice_pair(RegistrationPair("p", volume(0, direction=oblique), volume(1)))
    flat = slice_pair(pair)
    with pytest.raises(InputImageError, match="3D"):
        slice_pair(flat)


def test_pair_refuses_mixed_dimensions_and_non_sitk_images():
    with pytest.raises(GeometryError):
        RegistrationPair("p", volume(0), slice_pair(RegistrationPair("q", volume(0), volume(1))).moving)
    with pytest.raises(InputImageError, match="SimpleITK"):
        RegistrationPair("p", np.zeros((4, 4)), volume(1))
