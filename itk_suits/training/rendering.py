"""Synthetic CT in Hounsfield units rendered from organ label maps.

:func:`render_ct` turns a label map of one of three sources into a CT-like
image: every label is mapped to a tissue class (:data:`LABEL_TABLES`), every
tissue gets a mean HU drawn inside its range for the contrast phase
(:data:`TISSUES`), a smooth per-tissue texture, partial volume (a Gaussian
blur to the output resolution, then resampling onto the output grid) and
white scanner noise.

Sources and their label maps
----------------------------
``"word"``
    WORD (HiLab-git/WORD): 1 liver, 2 spleen, 3 left kidney, 4 right kidney,
    5 stomach, 6 gallbladder, 7 esophagus, 8 pancreas, 9 duodenum, 10 colon,
    11 intestine, 12 adrenal, 13 rectum, 14 bladder, 15/16 femoral heads.
``"amos"``
    AMOS: 1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder,
    5 esophagus, 6 liver, 7 stomach, 8 aorta, 9 IVC, 10 pancreas, 11/12
    right/left adrenal, 13 duodenum, 14 bladder, 15 prostate/uterus.
``"icrp110"``
    The ICRP Publication 110 adult reference voxel phantoms (organ IDs 1-140
    of ``P110_data_V1.2/*_organs.dat``, the same IDs for the male and the
    female phantom), mapped by organ name and medium to tissue classes.

WORD and AMOS label organs only: they have no body outline, no fat, muscle
or bone. For them :func:`render_ct` **synthesises a body** (``body=True``):
a vertebral body, spinal canal, posterior arch and paraspinal muscles
placed relative to the kidneys, a smooth body contour a few centimetres
outside the union of the organs and the spine, skin, subcutaneous fat and a
muscle wall under it, and fat between the organs; air (-1000 HU) outside.
These structures are invented, not anatomy of the subject; their sizes are
drawn from the seed. The ICRP phantoms label the whole body (skin, adipose,
muscle, skeleton, lungs), so nothing is synthesised for them.

Orientation
-----------
The spine is placed in the physical (x, y) plane of the image, posterior
meaning +y: the label map must be in the LPS patient frame that SimpleITK
uses (x towards the patient's left, y posterior, z superior). Checked on the
files of ``shared/data`` by organ centroids (liver at smaller x than spleen
and left kidney, kidneys at larger y than the liver, bladder below the
liver): the WORD test label maps and the AMOS map read with SimpleITK are in
LPS (direction identity resp. diag(1, -1, 1)); the ICRP NIfTI files, built
with an identity direction from arrays running right to left, front to back
and toes to vertex, are in LPS too (origin 0: far from the other sources,
which an initial transform must absorb). The CHAOS MR files are in LPS as
well, so rendered CT and CHAOS MR share one patient frame.

Hounsfield values
-----------------
Ranges per tissue and phase (non-contrast; late arterial, about 35 s after
injection; portal-venous, about 70 s) were chosen to cover the typical
values reported in:

* M. Hofer, *CT Teaching Manual*, Thieme (table of typical CT densities:
  fat about -100, water 0, liver, spleen, kidney, pancreas, muscle,
  blood and bone);
* K. T. Bae, "Intravenous contrast medium administration and scan timing at
  CT: considerations and approaches", *Radiology* 256(1):32-61, 2010
  (enhancement of the aorta, liver, pancreas, kidney cortex and medulla by
  phase: aorta 250+ HU arterial, liver enhancement about 50 HU portal-venous,
  cortico-medullary differentiation in the arterial phase);
* W. Schneider, T. Bortfeld, W. Schlegel, "Correlation between CT numbers
  and tissue parameters needed for Monte Carlo simulations of clinical dose
  distributions", *Phys. Med. Biol.* 45:459-478, 2000 (HU of adipose,
  muscle, skin, cartilage, spongiosa and cortical bone, lung).

They are plausible typical values, not a scanner model: no beam hardening,
no streaks, no oral contrast (bowel contents are water- to soft-tissue-like,
colon contents mixed with gas).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import InputImageError, ParameterError

__all__ = ["PHASES", "Tissue", "TISSUES", "LABEL_TABLES", "KIDNEY_LABELS", "SOURCES", "render_ct"]

#: Contrast phases, in the order a seed chooses among them.
PHASES = ("non-contrast", "arterial", "portal-venous")
#: Air outside the body and the lowest value of the output (HU).
AIR_HU = -1000.0
#: Output values are clipped to the range of 12-bit CT (HU).
HU_RANGE = (-1024.0, 3071.0)


@dataclass(frozen=True)
class Tissue:
    """HU range per contrast phase and the standard deviation of its texture.

    ``ranges`` maps each of :data:`PHASES` to ``(low, high)`` in HU: the mean of the tissue in one rendering is
    drawn uniformly in it. ``texture_hu`` is the standard deviation of the smooth texture added on top (HU).
    """

    ranges: Mapping[str, tuple[float, float]]
    texture_hu: float


def _same(low: float, high: float, texture: float) -> Tissue:
    return Tissue({phase: (low, high) for phase in PHASES}, texture)


def _phased(non_contrast, arterial, portal_venous, texture: float) -> Tissue:
    return Tissue(dict(zip(PHASES, (non_contrast, arterial, portal_venous))), texture)


#: Tissue classes and their HU (see the module docstring for the sources).
TISSUES: dict[str, Tissue] = {
    "air": _same(-1000.0, -1000.0, 0.0),
    "gas": _same(-1000.0, -900.0, 10.0),
    "lung": _same(-900.0, -800.0, 25.0),
    "adipose": _same(-120.0, -80.0, 10.0),
    "marrow": _same(-60.0, -10.0, 15.0),
    "fluid": _same(0.0, 20.0, 3.0),
    "bile": _same(0.0, 20.0, 3.0),
    "urine": _same(0.0, 15.0, 3.0),
    "skin": _same(30.0, 60.0, 8.0),
    "brain": _same(25.0, 45.0, 4.0),
    "cartilage": _same(80.0, 120.0, 8.0),
    "bone_spongiosa": _same(150.0, 350.0, 40.0),
    "bone_cortical": _same(700.0, 1200.0, 60.0),
    "teeth": _same(1500.0, 2500.0, 80.0),
    "soft_tissue": _phased((30.0, 50.0), (40.0, 60.0), (50.0, 80.0), 6.0),
    "muscle": _phased((40.0, 60.0), (50.0, 70.0), (55.0, 75.0), 6.0),
    "myocardium": _phased((40.0, 55.0), (100.0, 150.0), (90.0, 120.0), 6.0),
    "liver": _phased((50.0, 70.0), (70.0, 90.0), (100.0, 130.0), 6.0),
    "spleen": _phased((40.0, 55.0), (90.0, 130.0), (110.0, 130.0), 8.0),
    "kidney": _phased((25.0, 40.0), (110.0, 170.0), (140.0, 180.0), 10.0),
    "kidney_cortex": _phased((25.0, 40.0), (150.0, 220.0), (150.0, 190.0), 8.0),
    "kidney_medulla": _phased((25.0, 40.0), (60.0, 100.0), (130.0, 170.0), 8.0),
    "pancreas": _phased((35.0, 50.0), (100.0, 140.0), (80.0, 110.0), 8.0),
    "adrenal": _phased((20.0, 40.0), (50.0, 80.0), (50.0, 80.0), 8.0),
    "artery": _phased((35.0, 50.0), (250.0, 350.0), (150.0, 190.0), 5.0),
    "vein": _phased((35.0, 50.0), (60.0, 120.0), (140.0, 180.0), 5.0),
    "blood": _phased((35.0, 50.0), (150.0, 250.0), (140.0, 180.0), 5.0),
    "bowel_wall": _phased((30.0, 50.0), (70.0, 110.0), (80.0, 120.0), 8.0),
    "stomach": _phased((0.0, 30.0), (10.0, 40.0), (15.0, 45.0), 15.0),
    "bowel": _phased((10.0, 40.0), (20.0, 60.0), (30.0, 70.0), 20.0),
    "colon": _same(-60.0, 30.0, 50.0),
}


def _icrp110_table() -> dict[int, str]:
    """ICRP 110 organ ID -> tissue class (IDs and names of ``P110_data_V1.2/AM_organs.dat``, same for AF)."""
    cortical = [13, 16, 19, 22, 24, 26, 28, 31, 34, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55]
    groups = {
        "bone_cortical": cortical,
        "bone_spongiosa": [i + 1 for i in cortical],  # every cortical part is followed by its spongiosa
        "marrow": [15, 18, 21, 30, 33, 36],  # medullary cavities
        "cartilage": [57, 58, 59, 60],
        "brain": [61],
        "adipose": [62, 64, 116, 117, 118, 119],  # breast adipose, residual tissue (ICRP medium "adipose")
        "fluid": [66, 67, 68, 69],  # eyes
        "bile": [71],
        "bowel_wall": [70, 72, 74, 76, 78, 80, 82, 84, 86, 110, 137],  # walls, oesophagus, bladder wall
        "stomach": [73],
        "bowel": [75],
        "colon": [77, 79, 81, 83, 85],
        "myocardium": [87],
        "blood": [9, 10, 11, 12, 88, 96, 98],  # vessels, heart contents, the blood of the lungs
        "kidney_cortex": [89, 92],
        "kidney_medulla": [90, 93],
        "urine": [91, 94, 138],  # renal pelves, bladder contents
        "liver": [95],
        "lung": [97, 99],
        "muscle": [106, 107, 108, 109, 133],
        "pancreas": [113],
        "adrenal": [1, 2],
        "skin": [122, 123, 124, 125],
        "spleen": [127],
        "teeth": [128],
        "gas": [140],
    }
    table = {organ: tissue for tissue, organs in groups.items() for organ in organs}
    # airway walls, oral mucosa, lymph nodes, glands, gonads, prostate, uterus, spinal cord, ureters, thymus...
    for organ in range(1, 141):
        table.setdefault(organ, "soft_tissue")
    return table


#: Source -> label -> tissue class. Label 0 is background (air, or synthesised body for WORD and AMOS).
LABEL_TABLES: dict[str, dict[int, str]] = {
    "word": {1: "liver", 2: "spleen", 3: "kidney", 4: "kidney", 5: "stomach", 6: "bile", 7: "bowel_wall",
             8: "pancreas", 9: "bowel", 10: "colon", 11: "bowel", 12: "adrenal", 13: "colon", 14: "urine",
             15: "bone_spongiosa", 16: "bone_spongiosa"},
    "amos": {1: "spleen", 2: "kidney", 3: "kidney", 4: "bile", 5: "bowel_wall", 6: "liver", 7: "stomach",
             8: "artery", 9: "vein", 10: "pancreas", 11: "adrenal", 12: "adrenal", 13: "bowel", 14: "urine",
             15: "soft_tissue"},
    "icrp110": _icrp110_table(),
}
SOURCES = tuple(LABEL_TABLES)
#: Source -> labels of the kidneys (the synthetic spine is placed between them).
KIDNEY_LABELS = {"word": (3, 4), "amos": (2, 3), "icrp110": (89, 90, 91, 92, 93, 94)}
#: Sources whose label maps have no body: ``body=None`` synthesises one for them.
ORGANS_ONLY = ("word", "amos")

#: Sizes of the synthetic body (mm): ranges drawn from the seed.
SKIN_MM = 2.0
FAT_MM = (8.0, 30.0)
MUSCLE_MM = (8.0, 15.0)
BODY_SMOOTHING_MM = 12.0
#: Synthetic spine relative to the kidneys' mean centroid in the axial plane (mm, LPS: +y posterior):
#: vertebral body semi-axes (x, y), canal offset and radius, arch thickness, paraspinal muscles.
VERTEBRA_SEMI_AXES_MM = (22.0, 17.0)
VERTEBRA_OFFSET_MM = 5.0
CORTEX_MM = 2.0
CANAL_OFFSET_MM = 35.0
CANAL_RADIUS_MM = 9.0
ARCH_MM = 6.0
SPINOUS_LENGTH_MM = 30.0
PARASPINAL_OFFSET_MM = (38.0, 50.0)
PARASPINAL_SEMI_AXES_MM = (28.0, 22.0)
#: Texture correlation length (Gaussian sigma, mm).
TEXTURE_SIGMA_MM = 1.5
#: Scanner noise standard deviation drawn in this range (HU) unless given.
NOISE_HU = (8.0, 20.0)


def _physical_xy(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Physical x and y (mm) of every voxel, numpy order (z, y, x) or (y, x), float32."""
    ndim = image.GetDimension()
    direction = np.reshape(image.GetDirection(), (ndim, ndim))
    origin, spacing = np.asarray(image.GetOrigin()), np.asarray(image.GetSpacing())
    size = image.GetSize()
    coordinates = []
    for row in (0, 1):
        value = np.float32(origin[row])
        for axis in range(ndim):
            shape = [1] * ndim
            shape[ndim - 1 - axis] = size[axis]
            step = np.float32(direction[row, axis] * spacing[axis])
            value = value + (np.arange(size[axis], dtype=np.float32) * step).reshape(shape)
        coordinates.append(np.broadcast_to(value, tuple(size)[::-1]))
    return coordinates[0], coordinates[1]


def _mask_image(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def _distance_outside(mask: np.ndarray, reference: sitk.Image) -> np.ndarray:
    """Distance in mm to ``mask`` (negative inside), on the grid of ``reference``."""
    distance = sitk.SignedMaurerDistanceMap(_mask_image(mask, reference), insideIsPositive=False,
                                            squaredDistance=False, useImageSpacing=True)
    return sitk.GetArrayFromImage(distance)


def _ellipse(x, y, centre, semi_axes) -> np.ndarray:
    return ((x - centre[0]) / semi_axes[0]) ** 2 + ((y - centre[1]) / semi_axes[1]) ** 2 <= 1.0


def _synthetic_body(tissue: np.ndarray, kidneys: np.ndarray, names: list[str], reference: sitk.Image,
                    rng: np.random.Generator) -> None:
    """Fill the unlabelled voxels of ``tissue`` (index into ``names``) with a synthetic body, in place."""
    index = {name: names.index(name) for name in ("air", "adipose", "skin", "muscle", "bone_cortical",
                                                   "bone_spongiosa", "fluid")}
    organs = tissue != index["air"]
    if not organs.any():
        return
    x, y = _physical_xy(reference)
    anchor = kidneys if kidneys.any() else organs
    centre_x, centre_y = float(x[anchor].mean()), float(y[anchor].mean())
    if not kidneys.any():  # no kidney in the map: behind the organs' centroid
        centre_y = float(np.percentile(y[organs], 80))
    vertebra_centre = (centre_x, centre_y + VERTEBRA_OFFSET_MM)
    canal_centre = (centre_x, vertebra_centre[1] + CANAL_OFFSET_MM)
    vertebra = _ellipse(x, y, vertebra_centre, VERTEBRA_SEMI_AXES_MM)
    spongiosa = _ellipse(x, y, vertebra_centre, [a - CORTEX_MM for a in VERTEBRA_SEMI_AXES_MM])
    canal = _ellipse(x, y, canal_centre, (CANAL_RADIUS_MM, CANAL_RADIUS_MM))
    arch_radius = CANAL_RADIUS_MM + ARCH_MM
    arch = _ellipse(x, y, canal_centre, (arch_radius, arch_radius)) & ~canal
    arch |= (np.abs(x - centre_x) <= ARCH_MM / 2) & (y >= canal_centre[1]) & \
        (y <= canal_centre[1] + arch_radius + SPINOUS_LENGTH_MM)
    paraspinal = np.zeros_like(organs)
    for side in (-1.0, 1.0):
        paraspinal |= _ellipse(x, y, (centre_x + side * PARASPINAL_OFFSET_MM[0], centre_y + PARASPINAL_OFFSET_MM[1]),
                               PARASPINAL_SEMI_AXES_MM)
    del x, y
    fat = rng.uniform(*FAT_MM)
    muscle = rng.uniform(*MUSCLE_MM)
    margin = SKIN_MM + fat + muscle + rng.uniform(5.0, 15.0)
    solid = organs | vertebra | arch | canal | paraspinal
    body = (_distance_outside(solid, reference) <= margin).astype(np.float32)
    body_image = sitk.GetImageFromArray(body)
    body_image.CopyInformation(reference)
    body = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(body_image, BODY_SMOOTHING_MM)) > 0.5
    depth = -_distance_outside(body, reference)  # mm inside the body surface
    free = ~organs
    layers = [(body, "adipose"), (paraspinal, "muscle"), (depth <= SKIN_MM + fat + muscle, "muscle"),
              (depth <= SKIN_MM + fat, "adipose"), (depth <= SKIN_MM, "skin"), (vertebra | arch, "bone_cortical"),
              (spongiosa, "bone_spongiosa"), (canal, "fluid"), (~body, "air")]
    for where, name in layers:  # later layers win; organs are never overwritten
        tissue[where & free & (body if name != "air" else True)] = index[name]


def _tissue_map(labels: np.ndarray, source: str, unknown: str) -> tuple[np.ndarray, list[str]]:
    """Tissue index per voxel (uint8) and the tissue names the indices refer to."""
    table = LABEL_TABLES[source]
    names = list(TISSUES)
    tissue = np.full(labels.shape, names.index("air"), dtype=np.uint8)
    present = [int(v) for v in np.unique(labels) if v != 0]
    missing = [v for v in present if v not in table]
    if missing and unknown == "error":
        raise ParameterError(f"labels {missing} are not in the {source!r} label table (known: "
                             f"{min(table)}-{max(table)}); pass unknown='soft_tissue' to render them as soft tissue")
    for value in present:
        tissue[labels == value] = names.index(table.get(value, unknown))
    return tissue, names


def _output_grid(image: sitk.Image, spacing: Optional[Sequence[float]]) -> sitk.Image:
    """An empty grid over the extent of ``image`` with ``spacing`` (same origin corner and direction)."""
    if spacing is None:
        return image
    ndim = image.GetDimension()
    spacing = [float(s) for s in (spacing if np.ndim(spacing) else [spacing] * ndim)]
    if len(spacing) != ndim or min(spacing) <= 0:
        raise ParameterError(f"spacing: expected {ndim} positive values in mm, got {spacing}")
    old = np.asarray(image.GetSpacing())
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), old, spacing)]
    direction = np.reshape(image.GetDirection(), (ndim, ndim))
    corner = np.asarray(image.GetOrigin()) - direction @ (old / 2)  # the outer corner of the first voxel
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(tuple(corner + direction @ (np.asarray(spacing) / 2)))
    return grid


def render_ct(
    label_map: sitk.Image,
    source: str,
    seed: int,
    *,
    phase: Optional[str] = None,
    spacing: Optional[Sequence[float]] = None,
    noise_hu: Optional[float] = None,
    body: Optional[bool] = None,
    unknown: str = "soft_tissue",
) -> sitk.Image:
    """Render a CT image in Hounsfield units from a label map.

    Parameters
    ----------
    label_map : SimpleITK.Image
        Integer label map, 2D or 3D, in the LPS patient frame (see the module docstring), labels of ``source``.
    source : {"word", "amos", "icrp110"}
        Which label table applies (:data:`LABEL_TABLES`).
    seed : int
        Seeds every random choice: the phase (unless given), the mean HU of every tissue inside its range,
        the texture, the synthetic body's sizes, the scanner noise. The same seed gives the same image.
    phase : {"non-contrast", "arterial", "portal-venous"}, optional
        Contrast phase; default: chosen from :data:`PHASES` by ``seed``.
    spacing : float or sequence of float, optional
        Output voxel size in mm (x, y[, z]); the output covers the extent of ``label_map`` with the same
        direction. Partial volume: before resampling, the tissue image is blurred with a Gaussian whose
        full width at half maximum is the output voxel size (less what the input voxel already averages).
        Default: the grid of ``label_map`` (blur of one voxel's width).
    noise_hu : float, optional
        Standard deviation of the white scanner noise added on the output grid (HU); default drawn in
        :data:`NOISE_HU` from the seed.
    body : bool, optional
        Synthesise a body around the organs (spine, paraspinal muscles, muscle wall, subcutaneous fat, skin;
        invented, see the module docstring). Default: True for the organ-only sources ``"word"`` and
        ``"amos"``, False for ``"icrp110"``.
    unknown : str
        Tissue of labels missing from the table (a key of :data:`TISSUES`, default ``"soft_tissue"``), or
        ``"error"`` to raise.

    Returns
    -------
    SimpleITK.Image
        float32 CT in HU (clipped to [-1024, 3071]) on the output grid, with the metadata keys
        ``"ct_source"``, ``"ct_phase"`` and ``"ct_seed"``.

    Raises
    ------
    ParameterError
        Unknown ``source``, ``phase`` or ``unknown``; a bad ``spacing``; labels outside the table with
        ``unknown="error"``.
    InputImageError
        ``label_map`` is not a scalar 2D or 3D image.
    """
    if source not in LABEL_TABLES:
        raise ParameterError(f"source {source!r}: expected one of {', '.join(map(repr, SOURCES))}")
    if phase is not None and phase not in PHASES:
        raise ParameterError(f"phase {phase!r}: expected None or one of {', '.join(map(repr, PHASES))}")
    if unknown != "error" and unknown not in TISSUES:
        raise ParameterError(f"unknown={unknown!r}: expected 'error' or a tissue of TISSUES ({', '.join(TISSUES)})")
    if not isinstance(label_map, sitk.Image) or label_map.GetDimension() not in (2, 3) \
            or label_map.GetNumberOfComponentsPerPixel() != 1:
        raise InputImageError("label_map: expected a scalar 2D or 3D SimpleITK image of integer labels")
    rng = np.random.default_rng(seed)
    phase = phase if phase is not None else PHASES[int(rng.integers(len(PHASES)))]
    labels = sitk.GetArrayFromImage(label_map)
    if not np.issubdtype(labels.dtype, np.integer):
        labels = np.rint(labels).astype(np.int32)
    tissue, names = _tissue_map(labels, source, unknown)
    if source in ORGANS_ONLY if body is None else body:
        _synthetic_body(tissue, np.isin(labels, KIDNEY_LABELS[source]), names, label_map, rng)
    del labels

    means = np.array([rng.uniform(*TISSUES[name].ranges[phase]) for name in names], dtype=np.float32)
    textures = np.array([TISSUES[name].texture_hu for name in names], dtype=np.float32)
    hu = means[tissue]
    white = sitk.GetImageFromArray(rng.standard_normal(tissue.shape, dtype=np.float32))
    white.CopyInformation(label_map)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(white, TEXTURE_SIGMA_MM))
    smooth /= max(float(smooth.std()), 1e-6)
    hu += textures[tissue] * smooth
    del smooth, white, tissue

    image = sitk.GetImageFromArray(hu)
    image.CopyInformation(label_map)
    grid = _output_grid(label_map, spacing)
    old, new = np.asarray(label_map.GetSpacing()), np.asarray(grid.GetSpacing())
    sigma = np.sqrt(np.maximum(new**2 - (old**2 if spacing is not None else 0.0), 0.0)) / 2.3548
    if sigma.max() > 0:
        image = sitk.SmoothingRecursiveGaussian(image, [float(max(s, 1e-3)) for s in sigma])
    if spacing is not None:
        image = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)
    noise = float(noise_hu) if noise_hu is not None else float(rng.uniform(*NOISE_HU))
    array = sitk.GetArrayFromImage(image)
    array += noise * rng.standard_normal(array.shape, dtype=np.float32)
    np.clip(array, *HU_RANGE, out=array)
    output = sitk.GetImageFromArray(array)
    output.CopyInformation(image)
    for key, value in (("ct_source", source), ("ct_phase", phase), ("ct_seed", str(seed))):
        output.SetMetaData(key, value)
    return output
