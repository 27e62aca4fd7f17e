"""Training pairs from two modalities of unpaired subjects, or from synthetic phantoms.

:func:`training_pairs` turns images and label maps of a *fixed* and a *moving*
modality (different subjects, as in the paper: 7 CT and 7 MR slices give
7 x 7 = 49 pairs) into :class:`~itk_suits.training.trainer.TrainingPair`
tensors:

1. every image and label map is read with
   :func:`~itk_suits.interop.as_sitk_image` (paths, itk, SimpleITK, numpy);
2. each fixed image (and its labels) is resampled onto an isotropic grid of
   ``spacing`` mm covering the same field of view, when asked;
3. each moving image is resampled onto its fixed partner's grid through the
   initial alignment (:func:`~itk_suits.interop.initial_transform`; linear,
   filled with the moving image's minimum outside its field of view), its
   labels with nearest neighbour, after mapping their values onto the fixed
   numbering (``label_mapping``);
4. for 2D training from 3D volumes (``slice_axis``), a few slices of each
   resampled pair are cut through the labelled region
   (:func:`~itk_suits.interop.datasets.slice_pair`);
5. the label maps become signed distance maps
   (:func:`~itk_suits.training.sdm.signed_distance_maps`, distances in mm) of
   the same label list for every image;
6. images and SDMs are cropped or padded (edge values repeated) about the
   centre to a common ``shape``, when asked.

:func:`~itk_suits.interop.datasets.folder_images` and
:func:`~itk_suits.interop.datasets.dataset_json_images` list the files of a
modality in a folder or in a Learn2Reg ``dataset.json``;
:func:`synthetic_training_pairs` makes pairs of synthetic modalities
(:mod:`.phantoms`).
"""

from __future__ import annotations

import itertools
import numbers
from typing import Mapping, Sequence

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from itk_suits.errors import GeometryError, InputImageError, ParameterError, PixelTypeError
from itk_suits.interop.datasets import RegistrationPair, index_axis_along, slice_pair
from itk_suits.interop import as_sitk_image, check_same_grid, initial_transform, resample
from itk_suits.training.sdm import signed_distance_maps
from itk_suits.training.phantoms import synthetic_pair
from itk_suits.training.trainer import TrainingPair

__all__ = [
    "SLICE_AXES",
    "synthetic_training_pairs",
    "training_pairs",
]

#: Names of the physical axes a slice can be normal to.
SLICE_AXES = {"x": 0, "y": 1, "z": 2}


def _image_list(images, name: str) -> list:
    if not isinstance(images, (list, tuple)):
        raise ParameterError(
            f"{name} must be a list of images (paths, itk, SimpleITK or numpy), got {type(images).__name__}; "
            "wrap a single image in a list"
        )
    return list(images)


def _read_label_map(obj, image: sitk.Image, name: str, image_name: str) -> np.ndarray:
    """Integer label array of a label map on ``image``'s grid (float maps with integer values accepted)."""
    labels, _ = as_sitk_image(obj, name=name)
    if isinstance(obj, np.ndarray) and labels.GetSize() == image.GetSize():
        labels.CopyInformation(image)  # a numpy label map takes the geometry of its image
    check_same_grid(image, labels, image_name, name)
    array = sitk.GetArrayFromImage(labels)
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise PixelTypeError(f"{name} holds non-integer values; a label map holds integer labels")
        array = array.astype(np.int64)
    if array.dtype.kind not in "biu" or (array.size and array.min() < 0):
        raise PixelTypeError(f"{name} must hold non-negative integer labels, got dtype {array.dtype}")
    return array.astype(np.int64)


def _read_modality(images, label_maps, role: str) -> list[tuple[sitk.Image, np.ndarray]]:
    """(float32 image, label array) per subject of one modality."""
    images = _image_list(images, f"{role}_images")
    label_maps = _image_list(label_maps, f"{role}_labels")
    if not images:
        raise ParameterError(f"{role}_images is empty; training needs at least one image per modality")
    if len(label_maps) != len(images):
        raise ParameterError(
            f"{role}_images holds {len(images)} image(s) but {role}_labels {len(label_maps)} label map(s); "
            "give one label map per image, in the same order"
        )
    subjects = []
    for index, (obj, labels) in enumerate(zip(images, label_maps)):
        name = f"{role}_images[{index}]"
        image, _ = as_sitk_image(obj, name=name)
        image = sitk.Cast(image, sitk.sitkFloat32)
        subjects.append((image, _read_label_map(labels, image, f"{role}_labels[{index}]", name)))
    return subjects


def _check_dimensions(fixed, moving, slice_axis) -> int:
    """The images' common dimension; GeometryError for a 2D/3D mix."""
    dimensions = {}
    for role, subjects in (("fixed", fixed), ("moving", moving)):
        for index, (image, _) in enumerate(subjects):
            dimensions.setdefault(image.GetDimension(), f"{role}_images[{index}]")
    if len(dimensions) > 1:
        raise GeometryError(
            f"the training images mix 2D and 3D: {dimensions[2]} is 2D but {dimensions[3]} is 3D; "
            "train on one dimension (slice_axis cuts 2D slices from 3D volumes)"
        )
    ndim = next(iter(dimensions))
    if slice_axis is not None and ndim != 3:
        raise ParameterError("slice_axis cuts slices from 3D volumes, but the training images are 2D")
    return ndim


def _label_mapping(label_mapping) -> dict[int, int] | None:
    """``{moving value: fixed value}`` with integer keys (JSON-style string keys accepted)."""
    if label_mapping is None:
        return None
    if not isinstance(label_mapping, Mapping):
        raise ParameterError(
            f"label_mapping must map moving label values to fixed ones, e.g. {{3: 1, 5: 2}}, got {label_mapping!r}"
        )
    mapping = {}
    for key, value in label_mapping.items():
        try:
            moving, fixed = int(key), int(value)
        except (TypeError, ValueError):
            raise ParameterError(f"label_mapping entry {key!r}: {value!r} is not a pair of integer labels") from None
        if moving <= 0 or fixed < 0 or str(key).strip() != str(moving) or isinstance(value, float) and value != fixed:
            raise ParameterError(
                f"label_mapping entry {key!r}: {value!r} must map a positive moving label to a fixed label "
                "(0 drops it)"
            )
        mapping[moving] = fixed
    return mapping


def _map_labels(array: np.ndarray, mapping: dict[int, int] | None) -> np.ndarray:
    """Moving labels in the fixed numbering; labels the mapping does not name become background."""
    if mapping is None:
        return array
    mapped = np.zeros_like(array)
    for moving, fixed in mapping.items():
        mapped[array == moving] = fixed
    return mapped


def _label_values(fixed, moving, labels) -> list[int]:
    """The supervised labels: ``labels``, or every label of any map; errors for labels found nowhere."""
    found = set()
    for _, array in fixed + moving:
        found.update(int(v) for v in np.unique(array) if v != 0)
    if not found:
        raise InputImageError(
            "no label map holds any label (every voxel is 0); training needs labelled structures"
            " (check label_mapping, which drops the moving labels it does not name)"
        )
    if labels is None:
        return sorted(found)
    if isinstance(labels, (str, bytes, Mapping)) or not np.iterable(labels):
        raise ParameterError(f"labels must be a list of positive integer labels, got {labels!r}")
    labels = list(labels)
    if not labels or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in labels):
        raise ParameterError(f"labels must be a non-empty list of positive integer labels, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ParameterError(f"labels has repeated values: {labels}")
    missing = sorted(set(int(v) for v in labels) - found)
    if missing:
        raise ParameterError(
            f"labels {missing} occur in no label map (found: {sorted(found)}); moving labels are counted "
            "after label_mapping"
        )
    return [int(v) for v in labels]


def _check_each_map_has_labels(subjects, values, role: str) -> None:
    for index, (_, array) in enumerate(subjects):
        if not np.isin(array, values).any():
            raise InputImageError(
                f"{role}_labels[{index}] holds none of the labels {values}; leave that image out, or map its "
                "labels (label_mapping)"
            )


def _isotropic(image: sitk.Image, labels: np.ndarray, spacing) -> tuple[sitk.Image, np.ndarray]:
    """Image (linear) and labels (nearest) on an isotropic ``spacing`` mm grid with the same centre."""
    if spacing is None:
        return image, labels
    ndim = image.GetDimension()
    size = np.array(image.GetSize())
    old = np.array(image.GetSpacing())
    new_size = [max(1, int(round(n * s / spacing))) for n, s in zip(size, old)]
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in size]))
    direction = np.reshape(image.GetDirection(), (ndim, ndim))
    origin = centre - direction @ ((np.array(new_size) - 1) / 2.0 * spacing)
    reference = sitk.Image(new_size, sitk.sitkFloat32)
    reference.SetSpacing((float(spacing),) * ndim)
    reference.SetOrigin(tuple(float(v) for v in origin))
    reference.SetDirection(image.GetDirection())
    label_image = sitk.GetImageFromArray(labels.astype(np.int32))
    label_image.CopyInformation(image)
    resampled_labels = resample(label_image, reference, interpolator="nearest")
    minimum = float(sitk.GetArrayViewFromImage(image).min())
    return (resample(image, reference, default_value=minimum), sitk.GetArrayFromImage(resampled_labels))


def _label_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.int32))
    image.CopyInformation(reference)
    return image


def _slice_numbers(fixed_labels: np.ndarray, moving_labels: np.ndarray, values, index_axis: int, count: int):
    """Up to ``count`` slice numbers along ``index_axis`` spread over the slices with labels in both maps."""
    array_axis = fixed_labels.ndim - 1 - index_axis
    others = tuple(a for a in range(fixed_labels.ndim) if a != array_axis)
    in_fixed = np.isin(fixed_labels, values).any(axis=others)
    in_moving = np.isin(moving_labels, values).any(axis=others)
    labelled = np.flatnonzero(in_fixed & in_moving)
    if labelled.size == 0:
        labelled = np.flatnonzero(in_fixed | in_moving)
    positions = ((np.arange(count) + 0.5) / count * labelled.size).astype(int)
    return sorted(set(int(labelled[p]) for p in positions))


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32))


def _crop_or_pad(tensor: torch.Tensor, shape) -> torch.Tensor:
    """``[1, C, *spatial]`` cropped or edge-padded about the centre to ``shape``."""
    if shape is None:
        return tensor
    for axis, target in enumerate(shape):
        dim = 2 + axis
        size = tensor.shape[dim]
        if size > target:
            tensor = tensor.narrow(dim, (size - target) // 2, target)
        elif size < target:
            pad = [0, 0] * (tensor.dim() - 2)
            before = (target - size) // 2
            position = 2 * (tensor.dim() - 1 - dim)
            pad[position], pad[position + 1] = before, target - size - before
            tensor = F.pad(tensor, pad, mode="replicate")
    return tensor.contiguous()


def _check_shape(shape, ndim: int):
    if shape is None:
        return None
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) != ndim or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 8 for n in shape
    ):
        raise ParameterError(
            f"shape must hold {ndim} sizes of at least 8 voxels (array order, the training dimension), got {shape!r}"
        )
    return tuple(int(n) for n in shape)


def _slice_axis_number(slice_axis) -> int | None:
    if slice_axis is None:
        return None
    if isinstance(slice_axis, str) and slice_axis in SLICE_AXES:
        return SLICE_AXES[slice_axis]
    if isinstance(slice_axis, numbers.Integral) and not isinstance(slice_axis, bool) and slice_axis in (0, 1, 2):
        return int(slice_axis)
    raise ParameterError(f"slice_axis must be 'x', 'y', 'z' (or 0, 1, 2), got {slice_axis!r}")


def _check_spacing(spacing):
    if spacing is None:
        return None
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Real) or not 0 < spacing < float("inf"):
        raise ParameterError(f"spacing must be a positive isotropic voxel size in mm, got {spacing!r}")
    return float(spacing)


def training_pairs(
    fixed_images,
    fixed_labels,
    moving_images,
    moving_labels,
    *,
    labels=None,
    label_mapping=None,
    spacing=None,
    shape=None,
    slice_axis=None,
    slices=5,
    all_pairs=True,
    initial="geometry",
) -> list[TrainingPair]:
    """Training pairs of a fixed and a moving modality (see the module docstring for the steps).

    Parameters
    ----------
    fixed_images, moving_images : list
        Images of each modality: paths, ``itk.Image``, ``SimpleITK.Image`` or
        numpy arrays (``[z,] y, x``, 1 mm voxels). Subjects need not correspond.
    fixed_labels, moving_labels : list
        One label map per image, on its grid (numpy label maps take their
        image's geometry). Integer labels, 0 background.
    labels : list of int, optional
        Labels to supervise, in the fixed numbering (default: every label found
        in any map). A label found in no map is an error.
    label_mapping : dict, optional
        ``{moving label: fixed label}``: the moving labels in the fixed
        numbering, e.g. ``{"6": 1}`` when the moving data set calls the liver
        6 and the fixed one 1. Moving labels it does not name become
        background.
    spacing : float, optional
        Isotropic voxel size in mm to resample the fixed images to (the paper:
        1.5); default their own grids.
    shape : sequence of int, optional
        Common size (array order, the training dimension) to crop or pad
        every pair to, about its centre.
    slice_axis : {"x", "y", "z"} or {0, 1, 2}, optional
        Train in 2D on slices of 3D volumes normal to this physical axis
        (``"y"`` coronal as in the paper, ``"z"`` axial).
    slices : int
        Slices per pair, spread over the slices labelled in both label maps
        (with ``slice_axis``).
    all_pairs : bool
        Every fixed image with every moving image (default); False pairs the
        i-th of each (as many of each needed).
    initial : None, str or transform
        Initial alignment of each moving image to its fixed partner, as in
        :func:`~itk_suits.interop.initial_transform` (default ``"geometry"``:
        image centres).

    Returns
    -------
    list of TrainingPair
        In order fixed image, moving image, slice. SDM channel ``k`` is the
        background for ``k = 0``, else label ``labels[k - 1]``.

    Raises
    ------
    ParameterError
        Not lists, counts that differ, bad ``labels``, ``label_mapping``,
        ``spacing``, ``shape``, ``slice_axis`` or ``slices``.
    InputImageError, PixelTypeError
        Unreadable images, non-integer label maps, a label map without any of
        the labels, no labels at all.
    GeometryError
        2D and 3D images mixed, label maps off their image's grid, oblique
        volumes with ``slice_axis``.

    Examples
    --------
    >>> pairs = training_pairs(ct_paths, ct_label_paths, mr_paths, mr_label_paths,
    ...                        spacing=1.5, slice_axis="y")           # doctest: +SKIP
    """
    spacing = _check_spacing(spacing)
    axis = _slice_axis_number(slice_axis)
    if isinstance(slices, bool) or not isinstance(slices, numbers.Integral) or slices < 1:
        raise ParameterError(f"slices must be a positive integer, got {slices!r}")
    fixed = _read_modality(fixed_images, fixed_labels, "fixed")
    moving = _read_modality(moving_images, moving_labels, "moving")
    ndim = _check_dimensions(fixed, moving, axis)
    shape = _check_shape(shape, 2 if axis is not None else ndim)
    mapping = _label_mapping(label_mapping)
    moving = [(image, _map_labels(array, mapping)) for image, array in moving]
    values = _label_values(fixed, moving, labels)
    _check_each_map_has_labels(fixed, values, "fixed")
    _check_each_map_has_labels(moving, values, "moving")
    if all_pairs:
        combinations = list(itertools.product(range(len(fixed)), range(len(moving))))
    elif len(fixed) != len(moving):
        raise ParameterError(
            f"all_pairs=False pairs the i-th fixed with the i-th moving image, but there are {len(fixed)} fixed "
            f"and {len(moving)} moving images; give as many of each, or use all_pairs=True"
        )
    else:
        combinations = [(i, i) for i in range(len(fixed))]

    grids = [_isotropic(image, array, spacing) for image, array in fixed]
    sdm_cache: dict = {}

    def sdm(labels_image: sitk.Image, key=None) -> torch.Tensor:
        if key is not None and key in sdm_cache:
            return sdm_cache[key]
        result = _tensor(signed_distance_maps(labels_image, values))[None]
        if key is not None:
            sdm_cache[key] = result
        return result

    pairs = []
    for i, j in combinations:
        fixed_image, fixed_array = grids[i]
        moving_image, moving_array = moving[j]
        transform = initial_transform(fixed_image, moving_image, initial)
        minimum = float(sitk.GetArrayViewFromImage(moving_image).min())
        moved = resample(moving_image, fixed_image, transform, default_value=minimum)
        moved_labels = resample(_label_image(moving_array, moving_image), fixed_image, transform, "nearest")
        fixed_label_image = _label_image(fixed_array, fixed_image)
        if axis is None:
            parts = [(fixed_image, fixed_label_image, moved, moved_labels, (i,))]
        else:
            volume = RegistrationPair(f"{i}-{j}", fixed_image, moved, fixed_label_image, moved_labels)
            index_axis = index_axis_along(fixed_image, axis, f"fixed_images[{i}]")
            chosen = _slice_numbers(fixed_array, sitk.GetArrayViewFromImage(moved_labels), values, index_axis, slices)
            parts = []
            for number in chosen:
                cut = slice_pair(volume, axis=axis, index=number)
                parts.append((cut.fixed, cut.fixed_labels, cut.moving, cut.moving_labels, (i, number)))
        for fixed_part, fixed_labels_part, moving_part, moving_labels_part, key in parts:
            pairs.append(TrainingPair(
                fixed=_crop_or_pad(_tensor(sitk.GetArrayViewFromImage(fixed_part))[None, None], shape),
                moving=_crop_or_pad(_tensor(sitk.GetArrayViewFromImage(moving_part))[None, None], shape),
                fixed_sdm=_crop_or_pad(sdm(fixed_labels_part, key), shape),
                moving_sdm=_crop_or_pad(sdm(moving_labels_part), shape),
            ))
    return pairs


def _anatomy_crop(label_map: np.ndarray, shape, rng: np.random.Generator) -> np.ndarray:
    """A random ``shape`` window of ``label_map`` (a slice through it when ``shape`` has fewer axes).

    The slice (normal to a random axis) is drawn among those with at least half
    the labelled voxels of the fullest one; the window is centred on a random
    labelled voxel, and padded with background where it leaves the map.
    """
    array = label_map
    while array.ndim > len(shape):
        axis = int(rng.integers(array.ndim))
        filled = np.count_nonzero(array, axis=tuple(a for a in range(array.ndim) if a != axis))
        index = int(rng.choice(np.flatnonzero(filled >= 0.5 * filled.max())))
        array = np.take(array, index, axis=axis)
    centre = np.argwhere(array > 0)[int(rng.integers(np.count_nonzero(array)))]
    window = np.zeros(shape, array.dtype)
    source, target = [], []
    for c, size, n in zip(centre, shape, array.shape):
        low = int(c) - size // 2
        source.append(slice(max(low, 0), min(low + size, n)))
        target.append(slice(max(low, 0) - low, min(low + size, n) - low))
    window[tuple(target)] = array[tuple(source)]
    return window


def _read_anatomies(label_maps, ndim: int) -> list[np.ndarray]:
    """Label maps (paths, itk, SimpleITK or numpy) as consecutive integer arrays of at least ``ndim`` axes."""
    anatomies = []
    for index, obj in enumerate(_image_list(label_maps, "label_maps")):
        name = f"label_maps[{index}]"
        image, _ = as_sitk_image(obj, name=name)
        array = _read_label_map(image, image, name, name)
        if array.ndim < ndim:
            raise GeometryError(f"{name} is {array.ndim}D; {ndim}D training anatomy needs {ndim}D or 3D maps")
        if not array.any():
            raise InputImageError(f"{name} holds no label; anatomy needs labelled structures")
        anatomies.append(np.unique(array, return_inverse=True)[1].reshape(array.shape).astype(np.int32))
    if not anatomies:
        raise ParameterError("label_maps is empty; give at least one label map or leave it None")
    return anatomies


def synthetic_training_pairs(
    count: int,
    shape,
    seed: int = 0,
    organs: int = 6,
    magnitude: float = 6.0,
    label_maps=None,
    supervised_labels: int = 16,
):
    """Pairs of two synthetic modalities of one anatomy (:func:`~.synthetic.synthetic_pair`).

    Each pair is an anatomy and a smoothly deformed copy of it, each in its
    own random 'modality' (an intensity per label, bias field, noise, blur), so
    correspondence is known through the labels; every pair has other anatomy
    and other modalities. For modality-agnostic features and tests.

    The anatomy is an abdomen-like organ phantom, or, with ``label_maps``, a
    random window of a random one of them (for 2D pairs from 3D maps, of a
    random slice normal to a random axis): real label maps such as FreeSurfer
    segmentations or tissue maps. Every structure of the window gets its own
    intensity; the ``supervised_labels`` largest ones get signed distance maps.

    Parameters
    ----------
    count : int
        Number of pairs.
    shape : sequence of int
        Image size, array order (2D or 3D); 1 mm voxels (label maps are used
        voxel for voxel, whatever their spacing).
    seed : int
        Seeds every random choice (pair ``k`` uses the ``k``-th seed drawn from
        ``numpy.random.SeedSequence(seed)``).
    organs : int
        Organ labels per phantom (the SDMs have ``organs + 1`` channels);
        without ``label_maps`` only.
    magnitude : float
        Largest displacement of the random deformation, in voxels.
    label_maps : list, optional
        Integer label maps (paths, itk, SimpleITK or numpy; 0 = background) of
        the training dimension or 3D.
    supervised_labels : int
        With ``label_maps``: structures per pair that get an SDM channel (the
        largest in the fixed window); the SDMs have up to this many + 1 channels.

    Returns
    -------
    list of TrainingPair
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ParameterError(f"count must be a positive integer, got {count!r}")
    if isinstance(supervised_labels, bool) or not isinstance(supervised_labels, numbers.Integral) \
            or supervised_labels < 1:
        raise ParameterError(f"supervised_labels must be a positive integer, got {supervised_labels!r}")
    shape = tuple(shape)
    anatomies = None if label_maps is None else _read_anatomies(label_maps, len(shape))
    pairs = []
    for pair_seed in np.random.SeedSequence(seed).generate_state(count):
        if anatomies is None:
            pair = synthetic_pair(shape, seed=int(pair_seed), organs=organs, magnitude=magnitude)
            values = list(range(1, organs + 1))
        else:
            rng = np.random.default_rng(int(pair_seed))
            window = _anatomy_crop(anatomies[int(rng.integers(len(anatomies)))], shape, rng)
            pair = synthetic_pair(shape, seed=int(pair_seed), magnitude=magnitude, labels=window)
            present, sizes = np.unique(pair.fixed_labels[pair.fixed_labels > 0], return_counts=True)
            values = sorted(int(v) for v in present[np.argsort(sizes)[::-1][:supervised_labels]])
        pairs.append(TrainingPair(
            fixed=_tensor(pair.fixed)[None, None],
            moving=_tensor(pair.moving)[None, None],
            fixed_sdm=_tensor(signed_distance_maps(pair.fixed_labels, values))[None],
            moving_sdm=_tensor(signed_distance_maps(pair.moving_labels, values))[None],
        ))
    return pairs
