"""Dataset readers shared by evaluation and training: Learn2Reg ``dataset.json``, folders, files.

For evaluation, registration pairs:

A :class:`RegistrationPair` holds the fixed and moving images of one
registration, their label maps and a fixed mask when there are any, and the
label names. The readers check up front that every file exists and return a
:class:`PairSequence` that reads a pair's files only when the pair is
accessed, so a cohort of 3D volumes never sits in memory at once.
:func:`slice_pair` turns a 3D pair into the 2D pair of the paper's
experiments (one slice of each volume).

For training, the images of one modality and their label maps:
:func:`folder_images` (a folder and a label folder, matched by file name)
and :func:`dataset_json_images` (the ``"training"`` list of a dataset.json,
grouped by modality).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import GeometryError, InputImageError, ParameterError
from itk_suits.interop.images import as_sitk_image, check_same_grid

__all__ = [
    "RegistrationPair",
    "PairSequence",
    "pair_from_files",
    "pairs_from_folders",
    "pairs_from_dataset_json",
    "slice_pair",
    "folder_images",
    "dataset_json_images",
]

PathLike = Union[str, os.PathLike]

#: File name endings read as images when listing a folder.
IMAGE_SUFFIXES = (
    ".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp",
)

# dataset.json folders: images -> (labels, masks), following the nnU-Net / Learn2Reg layout
_COMPANION_FOLDERS = {"imagesTr": ("labelsTr", "masksTr"), "imagesTs": ("labelsTs", "masksTs")}
_AXES = "xyz"
_ROLES = ("fixed", "moving", "fixed_labels", "moving_labels", "fixed_mask")
_AXIS_ALIGNMENT_TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class RegistrationPair:
    """One registration to evaluate: ``moving`` is to be aligned onto ``fixed``.

    Attributes
    ----------
    name : str
        Identifier of the pair, e.g. ``"case1_0001__case1_0000"`` (fixed name,
        two underscores, moving name); safe in file names.
    fixed, moving : SimpleITK.Image
        Scalar intensity images of one dimension (2D or 3D), pixel type as read.
    fixed_labels, moving_labels : SimpleITK.Image or None
        Label maps (0 = background) on the grid of ``fixed`` and ``moving``.
    fixed_mask : SimpleITK.Image or None
        Non-zero where the fixed image is to be registered, on ``fixed``'s grid.
    label_names : dict of int to str
        Names of the labels, e.g. ``{1: "liver"}``; may be empty.

    Raises
    ------
    InputImageError, PixelTypeError
        If an image is not a scalar 2D or 3D SimpleITK image.
    GeometryError
        If ``fixed`` and ``moving`` differ in dimension, or a label map or the
        mask does not lie on its image's grid.
    """

    name: str
    fixed: sitk.Image
    moving: sitk.Image
    fixed_labels: Optional[sitk.Image] = None
    moving_labels: Optional[sitk.Image] = None
    fixed_mask: Optional[sitk.Image] = None
    label_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role in _ROLES:
            image = getattr(self, role)
            if image is None and role in ("fixed", "moving"):
                raise InputImageError(f"pair {self.name!r} needs a {role} image")
            if image is None:
                continue
            if not isinstance(image, sitk.Image):
                raise InputImageError(
                    f"{role} of pair {self.name!r} must be a SimpleITK image, got {type(image).__name__}"
                )
            as_sitk_image(image, name=f"{role} of pair {self.name!r}")  # scalar, 2D or 3D, not empty
        if self.fixed.GetDimension() != self.moving.GetDimension():
            raise GeometryError(
                f"pair {self.name!r}: fixed is {self.fixed.GetDimension()}D but moving is "
                f"{self.moving.GetDimension()}D"
            )
        for image, role, companion in (
            (self.fixed, "fixed", "fixed_labels"),
            (self.moving, "moving", "moving_labels"),
            (self.fixed, "fixed", "fixed_mask"),
        ):
            if getattr(self, companion) is not None:
                check_same_grid(image, getattr(self, companion), f"{role} of pair {self.name!r}", companion)


@dataclass(frozen=True)
class _PairFiles:
    """File paths of one pair (None where there is no file)."""

    name: str
    fixed: str
    moving: str
    fixed_labels: Optional[str] = None
    moving_labels: Optional[str] = None
    fixed_mask: Optional[str] = None

    def paths(self) -> dict[str, str]:
        return {role: getattr(self, role) for role in _ROLES if getattr(self, role) is not None}

    def check_exist(self) -> None:
        for role, path in self.paths().items():
            if not os.path.isfile(path):
                raise InputImageError(f"{role.replace('_', ' ')} of pair {self.name!r}: no file at '{path}'")

    def load(self, label_names: Mapping[int, str]) -> RegistrationPair:
        images = {
            role: as_sitk_image(path, name=f"{role.replace('_', ' ')} of pair {self.name!r}")[0]
            for role, path in self.paths().items()
        }
        return RegistrationPair(name=self.name, label_names=dict(label_names), **images)


class PairSequence(SequenceABC):
    """Registration pairs whose files are read when a pair is accessed.

    Supports ``len()``, indexing (``pairs[0]`` reads that pair, each time it
    is accessed), slicing (another :class:`PairSequence`) and iteration.

    Attributes
    ----------
    names : list of str
        Names of the pairs, without reading any file.
    """

    def __init__(self, files: Sequence[_PairFiles], label_names: Optional[Mapping[int, str]] = None):
        self._files = list(files)
        self._label_names = dict(label_names or {})

    @property
    def names(self) -> list[str]:
        return [files.name for files in self._files]

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return PairSequence(self._files[index], self._label_names)
        return self._files[index].load(self._label_names)

    def __repr__(self) -> str:
        return f"PairSequence({len(self)} pairs: {', '.join(self.names[:3])}{', ...' if len(self) > 3 else ''})"


def file_stem(path: str) -> str:
    """File name without its image suffix (``.nii.gz`` counts as one)."""
    name = os.path.basename(path)
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def _pair_name(fixed: str, moving: str) -> str:
    return f"{file_stem(fixed)}__{file_stem(moving)}"


def _optional_path(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.fspath(path)


def pair_from_files(
    fixed: PathLike,
    moving: PathLike,
    fixed_labels: Optional[PathLike] = None,
    moving_labels: Optional[PathLike] = None,
    fixed_mask: Optional[PathLike] = None,
    *,
    name: Optional[str] = None,
    label_names: Optional[Mapping[int, str]] = None,
) -> RegistrationPair:
    """Read one registration pair from image files.

    Parameters
    ----------
    fixed, moving : path-like
        Scalar 2D or 3D images, any format SimpleITK reads.
    fixed_labels, moving_labels : path-like, optional
        Label maps on the grids of ``fixed`` and ``moving``.
    fixed_mask : path-like, optional
        Mask on the grid of ``fixed``.
    name : str, optional
        Name of the pair; default ``"<fixed name>__<moving name>"``.
    label_names : mapping of int to str, optional
        Names of the labels.

    Returns
    -------
    RegistrationPair

    Raises
    ------
    InputImageError
        For a missing or unreadable file, or an image that is not 2D or 3D.
    GeometryError
        For label maps or a mask that do not lie on their image's grid.
    """
    files = _PairFiles(
        name=name or _pair_name(os.fspath(fixed), os.fspath(moving)),
        fixed=os.fspath(fixed),
        moving=os.fspath(moving),
        fixed_labels=_optional_path(fixed_labels),
        moving_labels=_optional_path(moving_labels),
        fixed_mask=_optional_path(fixed_mask),
    )
    files.check_exist()
    return files.load(label_names or {})


def image_files(directory: Optional[PathLike], what: str) -> Optional[list[str]]:
    """Sorted image files of a folder (None for None); InputImageError when there are none."""
    if directory is None:
        return None
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise InputImageError(f"{what}: '{directory}' is not a folder")
    files = sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if not name.startswith(".")
        and name.lower().endswith(IMAGE_SUFFIXES)
        and os.path.isfile(os.path.join(directory, name))
    )
    if not files:
        raise InputImageError(f"{what}: '{directory}' holds no image file ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _matched(images: list[str], labels: Optional[list[str]], what: str) -> list[Optional[str]]:
    """Label file of each image, matched by sorted order (None everywhere without labels)."""
    if labels is None:
        return [None] * len(images)
    if len(labels) != len(images):
        raise ParameterError(
            f"{what} holds {len(labels)} image file(s) for {len(images)} image(s); labels are matched "
            "to images by sorted file name, so give exactly one label map per image"
        )
    return labels


def pairs_from_folders(
    fixed_dir: PathLike,
    moving_dir: PathLike,
    fixed_label_dir: Optional[PathLike] = None,
    moving_label_dir: Optional[PathLike] = None,
    all_pairs: bool = False,
) -> PairSequence:
    """Registration pairs from folders of images (and of label maps).

    Image files (:data:`IMAGE_SUFFIXES`) are sorted by name in each folder;
    label maps are matched to images by the same sorted order.

    Parameters
    ----------
    fixed_dir, moving_dir : path-like
        Folders of fixed and moving images (may be the same folder).
    fixed_label_dir, moving_label_dir : path-like, optional
        Folders with one label map per image of ``fixed_dir`` / ``moving_dir``.
    all_pairs : bool, default False
        False: the i-th fixed image with the i-th moving image (the folders
        must hold as many images). True: every fixed image with every moving
        image (e.g. 10 CT x 10 MR slices = 100 pairs, as in the paper),
        leaving out an image paired with itself when the folders are the same.

    Returns
    -------
    PairSequence
        Pairs named ``"<fixed name>__<moving name>"``, read when accessed.

    Raises
    ------
    InputImageError
        For a missing folder, a folder without images, or a missing file.
    ParameterError
        When the numbers of images and label maps, or of fixed and moving
        images (without ``all_pairs``), differ.
    """
    fixed = image_files(fixed_dir, "fixed_dir")
    moving = image_files(moving_dir, "moving_dir")
    fixed_labels = _matched(fixed, image_files(fixed_label_dir, "fixed_label_dir"), "fixed_label_dir")
    moving_labels = _matched(moving, image_files(moving_label_dir, "moving_label_dir"), "moving_label_dir")
    fixed_entries = list(zip(fixed, fixed_labels))
    moving_entries = list(zip(moving, moving_labels))
    if all_pairs:
        combinations = [
            (f, m) for f, m in itertools.product(fixed_entries, moving_entries)
            if os.path.abspath(f[0]) != os.path.abspath(m[0])
        ]
    elif len(fixed) != len(moving):
        raise ParameterError(
            f"fixed_dir holds {len(fixed)} image(s) but moving_dir {len(moving)}; pairs are matched by "
            "sorted file name, so give as many of each, or pass all_pairs=True for every combination"
        )
    else:
        combinations = list(zip(fixed_entries, moving_entries))
    files = [
        _PairFiles(_pair_name(f, m), f, m, f_labels, m_labels)
        for (f, f_labels), (m, m_labels) in combinations
    ]
    return PairSequence(files)


def companion_file(image: str, known: Mapping[str, str], kind: int) -> Optional[str]:
    """Label (kind 0) or mask (kind 1) file of ``image``: from the training list, else by folder name."""
    if image in known:
        return known[image]
    parts = image.split(os.sep)
    for position in range(len(parts) - 2, -1, -1):
        if parts[position] in _COMPANION_FOLDERS:
            candidate = os.sep.join(
                parts[:position] + [_COMPANION_FOLDERS[parts[position]][kind]] + parts[position + 1 :]
            )
            return candidate if os.path.isfile(candidate) else None
    return None


def _label_names(labels, path: str) -> dict[int, str]:
    """``{"0": "background", "1": "liver"}`` as ``{0: "background", 1: "liver"}``."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise ParameterError(f"{path}: 'labels' must map label values to names, e.g. {{\"1\": \"liver\"}}")
    names = {}
    for key, value in labels.items():
        try:
            label = int(key)
        except (TypeError, ValueError):
            raise ParameterError(f"{path}: 'labels' has the key {key!r}, which is not an integer label") from None
        if isinstance(value, str):
            names[label] = value
    return names


def read_dataset_json(path: PathLike) -> Mapping:
    """A Learn2Reg-style ``dataset.json`` as a mapping.

    Raises
    ------
    InputImageError
        If there is no file at ``path``.
    ParameterError
        If it is not valid JSON or does not hold a JSON object.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputImageError(f"no dataset file at '{path}'")
    try:
        with open(path, encoding="utf-8") as file:
            dataset = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ParameterError(f"{path} is not a valid JSON file: {error}") from error
    if not isinstance(dataset, Mapping):
        raise ParameterError(f"{path} must hold a JSON object (a Learn2Reg-style dataset description)")
    return dataset


def pairs_from_dataset_json(path: PathLike, split: str = "registration_val") -> PairSequence:
    """Registration pairs listed in a Learn2Reg-style ``dataset.json``.

    The file lists pairs under ``split`` as ``[{"fixed": ..., "moving": ...}]``
    and images under ``"training"`` as ``[{"image": ..., "label": ...,
    "mask": ...}]`` (label and mask optional); paths are relative to the
    json's folder. An image's label map is the one its training entry names,
    otherwise the file of the same name in ``labelsTr`` beside ``imagesTr``
    (``labelsTs`` beside ``imagesTs``) when it exists; the fixed mask likewise
    from ``"mask"`` or ``masksTr``. ``"labels": {"0": "background", "1":
    "liver"}`` gives the label names.

    Parameters
    ----------
    path : path-like
        The json file (e.g. ``AbdomenMRCT_dataset.json``).
    split : str, default "registration_val"
        Key of the pair list, e.g. ``"registration_test"`` or
        ``"training_paired_images"``.

    Returns
    -------
    PairSequence
        One pair per entry, named ``"<fixed name>__<moving name>"``, read
        when accessed.

    Raises
    ------
    InputImageError
        If the json or a file it names (directly or through a training
        entry) does not exist.
    ParameterError
        If the file is not valid JSON, has no list ``split`` (the message
        lists the splits it has), or an entry lacks ``"fixed"``/``"moving"``.
    """
    path = os.fspath(path)
    dataset = read_dataset_json(path)
    entries = dataset.get(split)
    if not isinstance(entries, list) or not entries:
        splits = [
            key for key, value in dataset.items()
            if isinstance(value, list) and value and all(isinstance(e, Mapping) and "fixed" in e for e in value)
        ]
        raise ParameterError(
            f"{path} has no pairs under {split!r}; its pair lists are: {', '.join(splits) or 'none'}"
        )
    root = os.path.dirname(os.path.abspath(path))

    def resolve(relative) -> str:
        return os.path.normpath(os.path.join(root, os.fspath(relative)))

    labels_of, masks_of = {}, {}
    for entry in dataset.get("training") or []:
        if isinstance(entry, Mapping) and "image" in entry:
            if entry.get("label"):
                labels_of[resolve(entry["image"])] = resolve(entry["label"])
            if entry.get("mask"):
                masks_of[resolve(entry["image"])] = resolve(entry["mask"])

    files = []
    for number, entry in enumerate(entries):
        if not (isinstance(entry, Mapping) and entry.get("fixed") and entry.get("moving")):
            raise ParameterError(f"{path}: entry {number} of {split!r} needs 'fixed' and 'moving' paths, got {entry!r}")
        fixed, moving = resolve(entry["fixed"]), resolve(entry["moving"])
        pair = _PairFiles(
            name=_pair_name(fixed, moving),
            fixed=fixed,
            moving=moving,
            fixed_labels=companion_file(fixed, labels_of, 0),
            moving_labels=companion_file(moving, labels_of, 0),
            fixed_mask=companion_file(fixed, masks_of, 1),
        )
        pair.check_exist()
        files.append(pair)
    return PairSequence(files, _label_names(dataset.get("labels"), path))


def index_axis_along(image: sitk.Image, axis: int, role: str) -> int:
    """Index axis of ``image`` that runs along physical ``axis``; GeometryError for oblique images."""
    direction = np.reshape(image.GetDirection(), (3, 3))
    rounded = np.round(direction)
    if np.abs(direction - rounded).max() > _AXIS_ALIGNMENT_TOLERANCE:
        raise GeometryError(
            f"{role} has an oblique direction {tuple(np.round(direction.ravel(), 4))}; slices of it lie in no "
            "plane of physical axes. Resample it onto an axis-aligned grid first, e.g. SimpleITK.Resample "
            "onto a reference image with an identity direction"
        )
    return int(np.argmax(np.abs(rounded[axis, :])))


def _extract(image: Optional[sitk.Image], axis: int, index_axis: int, index: int) -> Optional[sitk.Image]:
    """The 2D slice ``index`` along index axis ``index_axis``, in physical coordinates without ``axis``.

    Every pixel of the slice lies at its voxel's physical point with the
    coordinate along ``axis`` dropped (origin, spacing and direction kept);
    ``sitk.Extract`` alone would keep the volume's origin instead.
    """
    if image is None:
        return None
    size = list(image.GetSize())
    size[index_axis] = 0
    start = [0, 0, 0]
    start[index_axis] = index
    extracted = sitk.Extract(image, size, start, sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOIDENTITY)
    kept_rows = [row for row in range(3) if row != axis]
    kept_columns = [column for column in range(3) if column != index_axis]
    direction = np.round(np.reshape(image.GetDirection(), (3, 3)))[np.ix_(kept_rows, kept_columns)]
    extracted.SetDirection(tuple(direction.ravel()))
    origin = image.TransformIndexToPhysicalPoint(start)
    extracted.SetOrigin(tuple(origin[row] for row in kept_rows))
    return extracted


def _slice_index(image: sitk.Image, labels: Optional[sitk.Image], index_axis: int, index, role: str) -> int:
    """Slice number along ``index_axis`` chosen by ``index`` (None, int or "labels")."""
    count = image.GetSize()[index_axis]
    if index is None:
        return count // 2
    if isinstance(index, str):
        if index != "labels":
            raise ParameterError(f"index must be None, an integer or 'labels', got {index!r}")
        if labels is None:
            raise ParameterError(f"index='labels' needs the {role} label map, but the pair has none")
        statistics = sitk.LabelShapeStatisticsImageFilter()
        statistics.ComputePerimeterOff()
        statistics.Execute(sitk.Cast(labels != 0, sitk.sitkUInt8))
        if not statistics.HasLabel(1):
            raise InputImageError(f"index='labels': the {role} label map is empty")
        centroid = labels.TransformPhysicalPointToContinuousIndex(statistics.GetCentroid(1))
        return int(np.clip(round(centroid[index_axis]), 0, count - 1))
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ParameterError(f"index must be None, an integer or 'labels', got {index!r}")
    if not 0 <= index < count:
        raise ParameterError(f"slice index {index} is outside the {role} image, which has {count} slices there")
    return int(index)


def slice_pair(pair: RegistrationPair, axis: int = 2, index: Union[None, int, str] = None) -> RegistrationPair:
    """A 2D pair made of one slice of each volume of a 3D pair, as in the paper.

    Parameters
    ----------
    pair : RegistrationPair
        3D pair with axis-aligned volumes (direction a signed permutation, as
        for images read from NIfTI/DICOM without obliquity).
    axis : {0, 1, 2}, default 2
        Physical axis normal to the slice: 0 = x, 1 = y, 2 = z, in the
        images' physical (ITK, LPS for medical files) coordinates. For a
        patient scan 2 gives axial, 1 coronal (the paper's slices) and 0
        sagittal slices. Each volume is cut along the voxel axis that runs
        along this physical axis, whatever its storage order.
    index : None, int or "labels", default None
        Which slice, counted in voxels along that axis: None, each volume's
        middle slice; an int, that slice of both volumes; ``"labels"``, in
        each volume the slice through the centroid of its label map (all
        non-zero labels together; the pair must have both label maps).

    Returns
    -------
    RegistrationPair
        2D images, label maps and mask. Each pixel keeps its voxel's physical
        position with the ``axis`` coordinate dropped, and the in-plane
        spacing and direction; named ``"<name>_<x|y|z><fixed index>-<moving
        index>"``.

    Raises
    ------
    InputImageError
        If the pair is not 3D, or ``index="labels"`` meets an empty label map.
    GeometryError
        If a volume has an oblique direction.
    ParameterError
        For an axis other than 0, 1, 2, an index outside a volume, or
        ``index="labels"`` without label maps.
    """
    if pair.fixed.GetDimension() != 3:
        raise InputImageError(f"slice_pair needs a 3D pair; {pair.name!r} is {pair.fixed.GetDimension()}D")
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise ParameterError(f"axis must be 0 (x), 1 (y) or 2 (z), got {axis!r}")
    fixed_axis = index_axis_along(pair.fixed, axis, "fixed")
    moving_axis = index_axis_along(pair.moving, axis, "moving")
    fixed_index = _slice_index(pair.fixed, pair.fixed_labels, fixed_axis, index, "fixed")
    moving_index = _slice_index(pair.moving, pair.moving_labels, moving_axis, index, "moving")
    return RegistrationPair(
        name=f"{pair.name}_{_AXES[axis]}{fixed_index}-{moving_index}",
        fixed=_extract(pair.fixed, axis, fixed_axis, fixed_index),
        moving=_extract(pair.moving, axis, moving_axis, moving_index),
        fixed_labels=_extract(pair.fixed_labels, axis, fixed_axis, fixed_index),
        moving_labels=_extract(pair.moving_labels, axis, moving_axis, moving_index),
        fixed_mask=_extract(pair.fixed_mask, axis, fixed_axis, fixed_index),
        label_names=dict(pair.label_names),
    )


# --- training images: one modality per list -------------------------------------------

# nnU-Net / Learn2Reg file names end with the modality index: case_0001_0000.nii.gz
_MODALITY_SUFFIX = re.compile(r"_(\d{4})$")


def _missing_error(role: str, missing: list[str]) -> InputImageError:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return InputImageError(f"{role}: no label map for {shown}; label maps must have the same file name as their image")


def folder_images(directory, label_directory=None) -> tuple[list[str], list[str] | None]:
    """The image files of a folder and their label maps in another, matched by file name.

    Parameters
    ----------
    directory : path-like
        Folder of images (NIfTI, MHA/MHD, NRRD and the other formats
        :data:`IMAGE_SUFFIXES` names), sorted
        by name.
    label_directory : path-like, optional
        Folder holding, for every image, a label map of the same name (the
        file ending may differ, e.g. ``case1.nii.gz`` and ``case1.nrrd``).
        Files there without an image are ignored.

    Returns
    -------
    images : list of str
    labels : list of str or None
        Paths, in the order of ``images``; None without ``label_directory``.

    Raises
    ------
    InputImageError
        A folder is missing or holds no image, or an image has no label map.
    """
    images = image_files(directory, "image folder")
    if label_directory is None:
        return images, None
    by_name = {file_stem(path): path for path in image_files(label_directory, "label folder")}
    missing = [os.path.basename(path) for path in images if file_stem(path) not in by_name]
    if missing:
        raise _missing_error(os.fspath(label_directory), missing)
    return images, [by_name[file_stem(path)] for path in images]


def _modality_key(value, names: Mapping[str, str], path: str) -> str:
    """The modality index (as in the file names, e.g. "0") of a name or index."""
    if value is None:
        return None
    text = str(value)
    if text in names:
        return text
    for key, name in names.items():
        if name == text:
            return key
    raise ParameterError(
        f"{path} has no modality {value!r}; its modalities are "
        + ", ".join(f"{key} ({name})" for key, name in names.items())
    )


def dataset_json_images(path, fixed=None, moving=None) -> dict:
    """Training images and label maps of two modalities listed in a Learn2Reg-style ``dataset.json``.

    The ``"training"`` entries (``{"image": ..., "label": ...}``, paths
    relative to the json's folder) are grouped by modality: the 4-digit index
    that ends each file name (``AbdomenMRCT_0001_0000.nii.gz`` is modality 0),
    named by the ``"modality"`` (or nnU-Net's ``"channel_names"``) object
    (``{"0": "MR", "1": "CT"}``). An entry
    without ``"label"`` uses the file of the same name in ``labelsTr`` beside
    ``imagesTr``.

    Parameters
    ----------
    path : path-like
        The json file.
    fixed, moving : str or int, optional
        Modality (name or index) of the fixed and of the moving images.
        Default: the json's ``"registration_direction"``; else, with two
        modalities, the first fixed and the second moving; with one, that one
        for both.

    Returns
    -------
    dict
        ``fixed_images``, ``fixed_labels``, ``moving_images``,
        ``moving_labels`` (lists of paths) and ``modalities`` (``{"fixed":
        name, "moving": name}``): the keyword arguments of
        :func:`~itk_suits.training.api.train_features`, e.g.
        ``train_features(**dataset_json_images(path), out="my_model")``.

    Raises
    ------
    InputImageError
        Missing json, image or label file, or an image without a label map.
    ParameterError
        Invalid JSON, no ``"training"`` list, an unknown modality, or more
        than two modalities and no choice.
    """
    dataset = read_dataset_json(path)
    path = os.fspath(path)
    entries = dataset.get("training")
    if not isinstance(entries, list) or not entries:
        raise ParameterError(f"{path} has no 'training' list of images")
    root = os.path.dirname(os.path.abspath(path))
    modality_names = dataset.get("modality") or dataset.get("channel_names") or {}
    if not isinstance(modality_names, Mapping):
        raise ParameterError(f"{path}: 'modality' must map modality indices to names, e.g. {{\"0\": \"MR\"}}")
    names = {str(key): str(value) for key, value in modality_names.items()}
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for number, entry in enumerate(entries):
        if not (isinstance(entry, Mapping) and entry.get("image")):
            raise ParameterError(f"{path}: training entry {number} needs an 'image' path, got {entry!r}")
        image = os.path.normpath(os.path.join(root, os.fspath(entry["image"])))
        label = entry.get("label")
        label = os.path.normpath(os.path.join(root, os.fspath(label))) if label else companion_file(image, {}, 0)
        if not os.path.isfile(image):
            raise InputImageError(f"{path}: training entry {number}: no image file at '{image}'")
        if label is None:
            raise InputImageError(
                f"{path}: training entry {number} ('{image}') names no 'label' and labelsTr holds no file of "
                "its name; training needs a label map per image"
            )
        if not os.path.isfile(label):
            raise InputImageError(f"{path}: training entry {number}: no label file at '{label}'")
        match = _MODALITY_SUFFIX.search(file_stem(image))
        key = str(int(match.group(1))) if match else "0"
        names.setdefault(key, f"modality {key}")
        groups.setdefault(key, ([], []))
        groups[key][0].append(image)
        groups[key][1].append(label)
    direction = dataset.get("registration_direction") or {}
    fixed_key = _modality_key(fixed if fixed is not None else direction.get("fixed"), names, path)
    moving_key = _modality_key(moving if moving is not None else direction.get("moving"), names, path)
    present = sorted(groups, key=int)
    if fixed_key is None or moving_key is None:
        if len(present) > 2:
            raise ParameterError(
                f"{path} has {len(present)} modalities ({', '.join(names[k] for k in present)}); choose the fixed "
                "and the moving one"
            )
        defaults = present if len(present) == 2 else present * 2
        fixed_key = fixed_key if fixed_key is not None else defaults[0]
        moving_key = moving_key if moving_key is not None else defaults[1]
    for key in (fixed_key, moving_key):
        if key not in groups:
            raise ParameterError(f"{path} lists no training image of modality {names[key]} (index {key})")
    return {
        "fixed_images": list(groups[fixed_key][0]),
        "fixed_labels": list(groups[fixed_key][1]),
        "moving_images": list(groups[moving_key][0]),
        "moving_labels": list(groups[moving_key][1]),
        "modalities": {"fixed": names[fixed_key], "moving": names[moving_key]},
    }
