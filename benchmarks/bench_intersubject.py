"""Inter-subject registration: SUITS against itk-elastix across subjects, with development and held-out splits.

Every case has a development part (``--split dev``, for choosing defaults), a validation part
(``--split validation``: development subjects and CT label maps no feature model was trained on, for
choosing between trained models) and a held-out benchmark part (``--split benchmark``, run once to report). Data: ``../shared/data/`` relative to the repository root
(``--data``); see ``benchmarks/README.md`` ("Inter-subject: bench_intersubject.py") for the files.

Cases (``--cases``; fixed <- moving)
-----------------------------------
``chaos-3d``, ``chaos-2d``
    CHAOS T2-SPIR MR <- MR of another subject (labels 1 liver, 2 right kidney, 3 left kidney, 4 spleen).
    Development subjects 1-22, held-out subjects 31-39; consecutive pairs (:data:`CHAOS_PAIRS`).
``ct-mr-3d``, ``ct-mr-2d``
    CHAOS MR <- CT rendered from another subject's label map (:func:`itk_suits.training.rendering.render_ct`,
    seed = the pair's position in its list, phase chosen by the seed). The CT covers the liver, kidneys and
    spleen plus :data:`CT_MARGIN_MM` at :data:`CT_SPACING_MM` mm. Development: WORD subjects 0014-0057 ->
    CHAOS development MR; held-out: WORD subjects 0060-0131, AMOS 0013 and the ICRP 110 male and female
    phantoms -> CHAOS held-out MR (:data:`CT_PAIRS`). Dice on the four organs both label.
``prostate-3d``, ``prostate-2d``
    Prostate MR <- transrectal ultrasound of the same patient (read and scored as in ``bench_speed.py``:
    gland Dice and the TRE of landmark centroids). Development obs000-obs053, held-out obs054-obs107.

2D pairs are axial slices: for CHAOS and CT, each image's slice through the centroid of its kidneys
(labels 2 and 3); for the prostate, each image's slice through its gland centroid.

Methods (``--methods``, all with the same initial transform: ``moments`` for CHAOS and CT -> MR, image
centres (``geometry``) for the prostate; :data:`METHODS` is the table new peers are added to):
``none`` (the initial transform alone), ``elastix`` (run_elastix's default affine + B-spline), ``elastix-bspline``
(B-spline only), ``suits`` (``itk_suits.register`` defaults, with the case's modalities named: ``("mr", "mr")``,
``("mr", "ct")`` or ``("mr", "us")``, as a user would), and ``ants``, ``convexadam`` where
``itk_suits.evaluation`` provides ``run_ants`` / ``run_convexadam`` (skipped with a note otherwise). SUITS
variants: ``--variant NAME:KEY=VALUE,KEY=VALUE`` (repeatable) and ``--suits-option KEY=VALUE`` (repeatable,
one variant, as in ``bench_speed.py``); values read with ``ast.literal_eval``.

Metrics per pair and method: mean and per-organ Dice (moving labels warped with nearest neighbour), folding
(% of fixed-grid voxels with a Jacobian determinant <= 0), wall time (median of ``--repeats``), and every SUITS
method's median time over elastix's. JSON with every number beside the printed tables, and a PNG per case of
its first pair (one row per method: label contours and a checkerboard of fixed and warped moving).

Usage::

    python benchmarks/bench_intersubject.py --split dev
    python benchmarks/bench_intersubject.py --split dev --cases chaos-2d ct-mr-2d --variant mi:features=\\"mind\\"
    python benchmarks/bench_intersubject.py --split dev --quick --methods none suits
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
sys.path.insert(0, str(REPOSITORY))  # benchmark this checkout, installed or not
sys.path.insert(0, str(BENCHMARKS))

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

import itk_suits  # noqa: E402
from bench_speed import centroid, library_warm_up, parse_suits_options, prostate_scores, read_prostate  # noqa: E402
from itk_suits.evaluation import default_parameter_map, dice, folding_percentage, run_elastix  # noqa: E402
from itk_suits.evaluation.report import json_ready  # noqa: E402
from itk_suits.interop.images import resample  # noqa: E402
from itk_suits.interop.transforms import initial_transform as initial_alignment  # noqa: E402
from itk_suits.training.rendering import render_ct  # noqa: E402
from support import means, number, set_threads, table, versions  # noqa: E402

DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
SPLITS = ("dev", "validation", "benchmark")
CASES = ("chaos-2d", "ct-mr-2d", "prostate-2d", "prostate-3d", "chaos-3d", "ct-mr-3d")
DEFAULT_METHODS = ("none", "elastix", "elastix-bspline", "suits")

CHAOS = "chaos_mr_t2"
CHAOS_ORGANS = {1: "liver", 2: "right kidney", 3: "left kidney", 4: "spleen"}
CHAOS_KIDNEYS = (2, 3)
#: Development subjects and CT label maps never trained on (benchmarks/train_abdomen.py), for choosing between
#: trained feature models: ``--split validation``.
VALIDATION = {"chaos": (19, 20, 21, 22), "ct": ("word_0050", "word_0052", "word_0054", "word_0057")}
CHAOS_SUBJECTS = {"dev": (1, 2, 3, 5, 8, 10, 13, 15, 19, 20, 21, 22), "validation": VALIDATION["chaos"],
                  "benchmark": (31, 32, 33, 34, 36, 37, 38, 39)}
#: (fixed, moving) subject pairs: consecutive subjects of each split.
CHAOS_PAIRS = {split: tuple(zip(subjects[::2], subjects[1::2])) for split, subjects in CHAOS_SUBJECTS.items()}

#: CT label sources: name -> (file under the data folder, render_ct source, that source's labels of the four
#: CHAOS organs in CHAOS order: liver, right kidney, left kidney, spleen).
WORD_SUBJECTS = {"dev": ("0014", "0016", "0017", "0019", "0021", "0023", "0024", "0033", "0034", "0037", "0043",
                         "0050", "0052", "0054", "0057"),
                 "benchmark": ("0060", "0069", "0074", "0076", "0077", "0088", "0092", "0097", "0099", "0103",
                               "0110", "0120", "0124", "0129", "0131")}
CT_ORGANS = {"word": {1: (1,), 2: (4,), 3: (3,), 4: (2,)},
             "amos": {1: (6,), 2: (2,), 3: (3,), 4: (1,)},
             "icrp110": {1: (95,), 2: (92, 93, 94), 3: (89, 90, 91), 4: (127,)}}


def _ct_files() -> dict:
    files = {f"word_{s}": (f"word_ct_labels/word_{s}.nii.gz", "word") for subjects in WORD_SUBJECTS.values()
             for s in subjects}
    files["amos_0013"] = ("amos_ct_label/amos_0013_label.nii.gz", "amos")
    files["icrp110_AM"] = ("icrp110_phantoms/ICRP110_AM_organID.nii.gz", "icrp110")
    files["icrp110_AF"] = ("icrp110_phantoms/ICRP110_AF_organID.nii.gz", "icrp110")
    return files


CT_FILES = _ct_files()
#: (fixed CHAOS subject, moving CT label map) per split.
CT_PAIRS = {"dev": tuple(zip(CHAOS_SUBJECTS["dev"], [f"word_{s}" for s in WORD_SUBJECTS["dev"][:6]])),
            "validation": tuple(zip(VALIDATION["chaos"], VALIDATION["ct"])),
            "benchmark": ((31, "word_0060"), (32, "word_0069"), (33, "word_0074"), (34, "amos_0013"),
                          (36, "icrp110_AM"), (37, "icrp110_AF"))}
CT_SPACING_MM = 2.0
CT_MARGIN_MM = 20.0
#: The label map is cropped to the organs plus this much (x, y: room for the synthetic body; z) before rendering.
RENDER_MARGIN_MM = (90.0, 90.0, 30.0)

PROSTATE = "prostate_mr_us"
PROSTATE_PAIRS = {"dev": ("obs000", "obs010", "obs020", "obs030", "obs040", "obs050"),
                  "validation": ("obs005", "obs015", "obs025", "obs035", "obs045"),
                  "benchmark": ("obs060", "obs070", "obs080", "obs090", "obs100", "obs105")}

INITIAL = {"chaos": "moments", "ct-mr": "moments", "prostate": "geometry"}
#: ``--mr-contrast``: the CHAOS MR as it is, or through a fixed intensity curve (knots on the 0.5-99.5
#: percentile range -> output): "t1-like" keeps air dark and inverts the rest, so that fat (suppressed in
#: T2-SPIR) and the liver turn brighter than the spleen and kidneys and fluid turns dark, as in T1-weighted MR.
MR_CONTRASTS = {"t2-spir": None, "t1-like": ((0.0, 0.1, 0.3, 0.6, 1.0), (0.0, 0.9, 0.7, 0.4, 0.15))}

#: --quick: CHAOS subsampled (4, 4, 1), CT at 4 mm, elastix capped, one pair per case, one repeat.
QUICK_SHRINK = (4, 4, 1)
QUICK_CT_SPACING_MM = 4.0
QUICK_ELASTIX_ITERATIONS = 20
#: register() parameters a variant may not set: the benchmark sets them.
RESERVED = {"fixed", "moving", "threads", "initial_transform", "callback", "progress"}


class BenchmarkError(Exception):
    """A command-line value this benchmark cannot use."""


# --- pairs -----------------------------------------------------------------------------------------


@dataclass
class Pair:
    """One registration problem: images, the common initial transform, how a result is scored.

    ``score(transform, field)`` gives the numbers of one result; ``fixed_labels`` and ``moving_labels``
    (the first channel for the prostate) are drawn in the picture; ``modalities`` (fixed, moving), e.g.
    ``("mr", "ct")``, are passed to every SUITS method, as a user would name them.
    """

    name: str
    fixed: sitk.Image
    moving: sitk.Image
    initial: str
    fixed_labels: sitk.Image
    moving_labels: sitk.Image
    score: Callable[[Optional[sitk.Transform], Optional[sitk.Image]], dict]
    modalities: tuple
    notes: dict = field(default_factory=dict)


def organ_scores(fixed_labels, moving_labels, transform, displacement) -> dict:
    """Mean and per-organ Dice of the CHAOS organs, folding (None without a field)."""
    warped = resample(moving_labels, fixed_labels, transform, "nearest")
    organs = dice(fixed_labels, warped, labels=list(CHAOS_ORGANS))
    values = [v for v in organs.values() if not np.isnan(v)]
    return {"dice_mean": float(np.mean(values)) if values else float("nan"),
            **{f"dice_{name.replace(' ', '_')}": organs[label] for label, name in CHAOS_ORGANS.items()},
            "folding_percent": None if displacement is None else folding_percentage(displacement)}


def axial_slice(image: sitk.Image, k: int) -> sitk.Image:
    """Axial slice ``k`` (third index axis) as a 2D image with its in-plane geometry."""
    return image[:, :, int(k)]


def centroid_slice(labels: sitk.Image, values) -> int:
    """Index of the axial slice through the centroid of the voxels with a label in ``values``."""
    array = sitk.GetArrayViewFromImage(labels)
    z = np.nonzero(np.isin(array, list(values)))[0]
    if z.size == 0:
        raise BenchmarkError(f"no voxel with label {list(values)}: cannot choose the axial slice")
    return int(round(float(z.mean())))


def organ_pair(name, fixed, fixed_labels, moving, moving_labels, initial, two_d, modalities, notes=None) -> Pair:
    """A CHAOS-organ pair, 3D or reduced to each image's kidney-centroid slice."""
    if two_d:
        kf, km = centroid_slice(fixed_labels, CHAOS_KIDNEYS), centroid_slice(moving_labels, CHAOS_KIDNEYS)
        fixed, fixed_labels = axial_slice(fixed, kf), axial_slice(fixed_labels, kf)
        moving, moving_labels = axial_slice(moving, km), axial_slice(moving_labels, km)
        notes = {**(notes or {}), "fixed_slice": kf, "moving_slice": km}
    return Pair(name, fixed, moving, initial, fixed_labels, moving_labels,
                lambda t, f: organ_scores(fixed_labels, moving_labels, t, f), modalities, notes or {})


def contrast_curve(array: np.ndarray, contrast: str) -> np.ndarray:
    """``array``'s (0.5, 99.5) percentile range mapped through the curve of ``contrast`` (a key of
    :data:`MR_CONTRASTS` other than ``"t2-spir"``): values in [0, 1]."""
    low, high = np.percentile(array, (0.5, 99.5))
    return np.interp(np.clip((array - low) / max(high - low, 1e-12), 0, 1), *MR_CONTRASTS[contrast])


def mr_contrast(image: sitk.Image, contrast: str) -> sitk.Image:
    """The CHAOS T2-SPIR image as it is (``"t2-spir"``) or mapped through :data:`MR_CONTRASTS`'s curve."""
    if MR_CONTRASTS[contrast] is None:
        return image
    curve = contrast_curve(sitk.GetArrayViewFromImage(image), contrast)
    result = sitk.GetImageFromArray((1000 * curve).astype(np.float32))
    result.CopyInformation(image)
    return result


def read_chaos(data: Path, subject: int, shrink, contrast: str = "t2-spir"):
    def read(kind, pixel):
        image = sitk.ReadImage(str(data / CHAOS / f"{kind}_{subject}.nii.gz"), pixel)
        return sitk.Shrink(image, shrink) if shrink else image
    return mr_contrast(read("image", sitk.sitkFloat32), contrast), read("label", sitk.sitkUInt8)


def chaos_case(data: Path, pairs, two_d: bool, shrink, contrast: str) -> list[Pair]:
    result = []
    for fixed_subject, moving_subject in pairs:
        fixed, fixed_labels = read_chaos(data, fixed_subject, shrink, contrast)
        moving, moving_labels = read_chaos(data, moving_subject, shrink, contrast)
        result.append(organ_pair(f"{fixed_subject} <- {moving_subject}", fixed, fixed_labels, moving,
                                 moving_labels, INITIAL["chaos"], two_d, ("mr", "mr")))
    return result


def crop_physical(image: sitk.Image, low, high) -> sitk.Image:
    """The part of ``image`` inside the physical box [low, high] (mm, any direction)."""
    corners = [image.TransformPhysicalPointToContinuousIndex([float(c) for c in (x, y, z)])
               for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
    first = np.clip(np.floor(np.min(corners, axis=0)).astype(int), 0, None)
    last = np.minimum(np.ceil(np.max(corners, axis=0)).astype(int), np.asarray(image.GetSize()) - 1)
    return sitk.RegionOfInterest(image, [int(v) for v in last - first + 1], [int(v) for v in first])


def physical_box(labels: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Physical bounding box (mm) of the non-zero voxels."""
    index = np.argwhere(sitk.GetArrayViewFromImage(labels) > 0)
    corners = [labels.TransformContinuousIndexToPhysicalPoint([float(v) for v in c[::-1]])
               for c in (index.min(axis=0), index.max(axis=0))]
    return np.min(corners, axis=0), np.max(corners, axis=0)


def organ_map(labels: sitk.Image, source: str) -> sitk.Image:
    """The liver, kidneys and spleen of a CT label map of ``source`` (:data:`CT_ORGANS`) in CHAOS numbering."""
    array = sitk.GetArrayViewFromImage(labels)
    organs = np.zeros(array.shape, np.uint8)
    for chaos_label, values in CT_ORGANS[source].items():
        organs[np.isin(array, values)] = chaos_label
    image = sitk.GetImageFromArray(organs)
    image.CopyInformation(labels)
    return image


def render_around_organs(data: Path, name: str, seed: int, spacing: float) -> tuple[sitk.Image, sitk.Image, tuple]:
    """CT rendered from the label map ``name`` (:data:`CT_FILES`) in its liver, kidneys and spleen plus
    :data:`RENDER_MARGIN_MM`, those four organs in CHAOS labels on the CT grid, and their physical bounding
    box (low, high) in the label map (the contrast phase is the CT's ``ct_phase`` metadata)."""
    path, source = CT_FILES[name]
    labels = sitk.ReadImage(str(data / path))
    organ_image = organ_map(labels, source)
    low, high = physical_box(organ_image)
    render_margin = np.asarray(RENDER_MARGIN_MM)
    ct = render_ct(crop_physical(labels, low - render_margin, high + render_margin), source, seed,
                   spacing=[spacing] * 3)
    return ct, resample(organ_image, ct, None, "nearest"), (low, high)


@lru_cache(maxsize=16)
def rendered_ct(data: Path, name: str, seed: int, spacing: float) -> tuple[sitk.Image, sitk.Image, str]:
    """CT rendered from the label map ``name`` (:func:`render_around_organs`) cropped to the four organs plus
    :data:`CT_MARGIN_MM`, the organs on that grid, and the contrast phase."""
    ct, organs, (low, high) = render_around_organs(data, name, seed, spacing)
    box = (low - CT_MARGIN_MM, high + CT_MARGIN_MM)
    return crop_physical(ct, *box), crop_physical(organs, *box), ct.GetMetaData("ct_phase")


def ct_mr_case(data: Path, pairs, two_d: bool, shrink, spacing: float, contrast: str) -> list[Pair]:
    result = []
    for seed, (fixed_subject, name) in enumerate(pairs):
        fixed, fixed_labels = read_chaos(data, fixed_subject, shrink, contrast)
        ct, ct_labels, phase = rendered_ct(data, name, seed, spacing)
        notes = {"ct_seed": seed, "ct_phase": phase, "ct_size": list(ct.GetSize()),
                 "initial_dice_mean": {method: organ_scores(fixed_labels, ct_labels,
                                                            initial_alignment(fixed, ct, method), None)["dice_mean"]
                                       for method in ("moments", "geometry")}}
        result.append(organ_pair(f"{fixed_subject} <- {name} CT ({phase})", fixed, fixed_labels, ct, ct_labels,
                                 INITIAL["ct-mr"], two_d, ("mr", "ct"), notes))
    return result


def prostate_case(data: Path, names, two_d: bool) -> list[Pair]:
    """MR fixed, ultrasound moving; 2D: each image's slice through its gland centroid."""
    folder = data / PROSTATE
    result = []
    for name in names:
        mr, us, mr_labels, us_labels = read_prostate(folder, name)
        notes = {}
        if two_d:
            kf, km = centroid_slice(mr_labels[0], (1,)), centroid_slice(us_labels[0], (1,))
            mr, us = axial_slice(mr, kf), axial_slice(us, km)
            mr_labels = [axial_slice(label, kf) for label in mr_labels]
            us_labels = [axial_slice(label, km) for label in us_labels]
            notes = {"fixed_slice": kf, "moving_slice": km}
        targets = [centroid(label) for label in mr_labels[1:]]

        def score(transform, displacement, mr_labels=mr_labels, us_labels=us_labels, targets=targets):
            scores = prostate_scores(mr_labels, us_labels, targets, transform, displacement)
            scores.setdefault("folding_percent", None)
            return scores

        result.append(Pair(name, mr, us, INITIAL["prostate"], mr_labels[0], us_labels[0], score, ("mr", "us"),
                           notes))
    return result


def case_pairs(case: str, arguments) -> list[Pair]:
    family, dims = case.rsplit("-", 1)
    two_d, split = dims == "2d", arguments.split
    limit = arguments.pairs_limit_3d if (not two_d and arguments.pairs_limit_3d) else arguments.pairs_limit
    shrink = QUICK_SHRINK if arguments.quick else None
    if family == "chaos":
        return chaos_case(arguments.data, CHAOS_PAIRS[split][:limit], two_d, shrink, arguments.mr_contrast)
    if family == "ct-mr":
        spacing = QUICK_CT_SPACING_MM if arguments.quick else CT_SPACING_MM
        return ct_mr_case(arguments.data, CT_PAIRS[split][:limit], two_d, shrink, spacing, arguments.mr_contrast)
    return prostate_case(arguments.data, PROSTATE_PAIRS[split][:limit], two_d)


def case_files(case: str, split: str, limit: Optional[int]) -> list[Path]:
    """The data files a case reads (relative to the data folder)."""
    family = case.rsplit("-", 1)[0]
    if family == "chaos":
        subjects = [s for pair in CHAOS_PAIRS[split][:limit] for s in pair]
    elif family == "ct-mr":
        subjects = [fixed for fixed, _ in CT_PAIRS[split][:limit]]
    else:
        return [Path(PROSTATE) / folder / f"{name}.nii.gz" for name in PROSTATE_PAIRS[split][:limit]
                for folder in ("fixed_images", "moving_images", "fixed_labels", "moving_labels")]
    files = [Path(CHAOS) / f"{kind}_{s}.nii.gz" for s in subjects for kind in ("image", "label")]
    if family == "ct-mr":
        files += [Path(CT_FILES[name][0]) for _, name in CT_PAIRS[split][:limit]]
    return files


# --- methods ---------------------------------------------------------------------------------------


@dataclass
class Output:
    """A registration's result as the benchmark scores it: the transform (fixed -> moving point, None for
    identity) and its displacement field on the fixed grid (None for the initial transform alone)."""

    transform: Optional[sitk.Transform]
    displacement_field: Optional[sitk.Image]


class MethodUnavailable(Exception):
    """A method of the table cannot run in this installation (its runner is not importable)."""


def _none(settings):
    def run(fixed, moving, initial, modalities):
        return Output(initial_alignment(fixed, moving, initial), None)
    return run


def _elastix(maps):
    def make(settings):
        overrides = {"MaximumNumberOfIterations": QUICK_ELASTIX_ITERATIONS} if settings["quick"] else None
        parameter_maps = [default_parameter_map(name, overrides=overrides) for name in maps]

        def run(fixed, moving, initial, modalities):
            result = run_elastix(fixed, moving, parameter_maps=parameter_maps, threads=settings["threads"],
                                 initial_transform=initial)
            return Output(result.transform, result.displacement_field)
        return run
    return make


def _peer(runner: str, finder: str):
    """A peer runner of ``itk_suits.evaluation`` (run_elastix's call signature and result fields), run
    where ``finder`` finds its interpreter (``ITK_SUITS_ANTS_PYTHON``, ``ITK_SUITS_CONVEXADAM_PYTHON``)."""
    def make(settings):
        import itk_suits.evaluation as evaluation

        function = getattr(evaluation, runner, None)
        if function is None:
            raise MethodUnavailable(f"itk_suits.evaluation has no {runner} in this version")
        interpreter, reason = getattr(evaluation, finder)()
        if interpreter is None:
            raise MethodUnavailable(reason)

        def run(fixed, moving, initial, modalities):
            result = function(fixed, moving, threads=settings["threads"], initial_transform=initial)
            return Output(result.transform, result.displacement_field)
        return run
    return make


def suits_method(options: dict):
    def make(settings):
        def run(fixed, moving, initial, modalities):
            result = itk_suits.register(fixed, moving, threads=settings["threads"], initial_transform=initial,
                                        **{"modalities": modalities, **options})
            return Output(result.transform, result.displacement_field)
        return run
    return make


#: Method name -> factory(settings) -> run(fixed, moving, initial, modalities) -> Output. Peers are added here by name.
METHODS: dict[str, Callable] = {
    "none": _none,
    "elastix": _elastix(("affine", "bspline")),
    "elastix-bspline": _elastix(("bspline",)),
    "suits": suits_method({}),
    "ants": _peer("run_ants", "find_ants"),
    "convexadam": _peer("run_convexadam", "find_convexadam"),
}
#: Whose median time every SUITS method is divided by (the first that ran).
REFERENCES = ("elastix", "elastix-bspline")


def _split_top_level(text: str) -> list[str]:
    """``"a=1,b=(2, 3)"`` -> ``["a=1", "b=(2, 3)"]``: commas inside brackets or quotes do not split."""
    parts, depth, quote, current = [], 0, None, ""
    for character in text:
        if quote:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
        elif character == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += character
    return parts + [current] if current.strip() else parts


def check_register_options(name: str, options: dict) -> None:
    """BenchmarkError naming the option for a key ``itk_suits.register`` of this version does not take."""
    accepted = set(inspect.signature(itk_suits.register).parameters) - RESERVED
    for key in options:
        if key in RESERVED:
            raise BenchmarkError(f"variant {name!r}: {key} is set by the benchmark for every method")
        if key not in accepted:
            raise BenchmarkError(f"variant {name!r}: itk_suits.register {itk_suits.__version__} has no option "
                                 f"{key!r}; it takes {', '.join(sorted(accepted))}")


def parse_variant(text: str) -> tuple[str, dict]:
    """``"mi:features=mind,iterations=50"`` -> ``("mi", {"features": "mind", "iterations": 50})``."""
    name, separator, body = text.partition(":")
    name = name.strip()
    if not separator or not name or name in METHODS:
        raise BenchmarkError(f"--variant {text!r} is not of the form NAME:KEY=VALUE,KEY=VALUE with a new NAME "
                             f"(not one of {', '.join(METHODS)})")
    try:
        options = parse_suits_options(_split_top_level(body))
    except ValueError as error:
        raise BenchmarkError(f"--variant {text!r}: {error}") from None
    check_register_options(name, options)
    return name, options


# --- running ---------------------------------------------------------------------------------------


def run_case(case: str, pairs: list[Pair], methods: dict, suits_names, repeats: int, progress,
             saved=lambda results: None) -> tuple[list[dict], dict]:
    """Every method on every pair: scores of the last timed run, times, ratios; the first pair's outputs."""
    results, first = [], {}
    for index, pair in enumerate(pairs):
        rows = {}
        for name, method in methods.items():
            progress(f"{case} {pair.name}: {name} ({repeats} timed run(s))")
            try:
                wall = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    output = method(pair.fixed, pair.moving, pair.initial, pair.modalities)
                    wall.append(time.perf_counter() - start)
                rows[name] = {**pair.score(output.transform, output.displacement_field), "seconds": wall,
                              "median_seconds": statistics.median(wall)}
                if index == 0:
                    first[name] = output
            except Exception as error:  # noqa: BLE001 - a failing method is a result, not a crash
                rows[name] = {"error": f"{type(error).__name__}: {error}"}
                progress(f"    FAILED: {rows[name]['error']}")
        add_ratios(rows, suits_names)
        results.append({"pair": pair.name, "fixed_size": list(pair.fixed.GetSize()),
                        "moving_size": list(pair.moving.GetSize()), "fixed_voxels": int(np.prod(pair.fixed.GetSize())),
                        "initial_transform": pair.initial, **pair.notes, "methods": rows})
        saved(results)
    return results, first


def add_ratios(rows: dict, suits_names) -> None:
    """``ratio_to_elastix`` on the rows of ``suits_names``: median time over the reference's (:data:`REFERENCES`)."""
    reference = next((rows[name]["median_seconds"] for name in REFERENCES
                      if "median_seconds" in rows.get(name, {})), None)
    for name in suits_names:
        if reference and "median_seconds" in rows.get(name, {}):
            rows[name]["ratio_to_elastix"] = rows[name]["median_seconds"] / reference


def save_picture(path: Path, title: str, pair: Pair, outputs: dict) -> Optional[Path]:
    """One row per method: fixed with fixed (solid) and warped moving (dashed) label contours; checkerboard."""
    if not outputs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from itk_suits.visualization import checkerboard

    fixed = sitk.GetArrayFromImage(pair.fixed)
    fixed_labels = sitk.GetArrayFromImage(pair.fixed_labels)
    k = int(np.argmax((fixed_labels > 0).reshape(fixed_labels.shape[0], -1).sum(axis=1))) if fixed.ndim == 3 else None
    show = (lambda a: a[k]) if k is not None else (lambda a: a)
    aspect = pair.fixed.GetSpacing()[1] / pair.fixed.GetSpacing()[0]
    figure, axes = plt.subplots(len(outputs), 2, figsize=(8, 4 * len(outputs)), squeeze=False)
    for row, (name, output) in zip(axes, outputs.items()):
        warped = sitk.GetArrayFromImage(resample(pair.moving, pair.fixed, output.transform, "linear",
                                                 float(np.min(sitk.GetArrayViewFromImage(pair.moving)))))
        warped_labels = sitk.GetArrayFromImage(resample(pair.moving_labels, pair.fixed_labels, output.transform,
                                                        "nearest"))
        row[0].imshow(show(fixed), cmap="gray", aspect=aspect)
        for labels, style in ((fixed_labels, "solid"), (warped_labels, "dashed")):
            values = [v for v in np.unique(show(labels)) if v]
            if values:
                row[0].contour(show(labels), levels=np.asarray(values) - 0.5, linestyles=style, linewidths=1,
                               colors=[plt.cm.tab10(int(v) % 10) for v in values])
        row[0].set_title(f"{name}: fixed, labels fixed (solid) / warped (dashed)", fontsize=8)
        row[1].imshow(checkerboard(show(fixed), show(warped)), cmap="gray", aspect=aspect)
        row[1].set_title(f"{name}: checkerboard fixed / warped moving", fontsize=8)
        for axis in row:
            axis.set_axis_off()
    figure.suptitle(f"{title}: {pair.name}" + (f" (axial slice {k})" if k is not None else ""), fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


# --- report ----------------------------------------------------------------------------------------


def organ_columns(row: dict) -> list[str]:
    return [number(row.get("dice_mean"), 3)] + [number(row.get(f"dice_{n.replace(' ', '_')}"), 3)
                                                 for n in CHAOS_ORGANS.values()]


def prostate_columns(row: dict) -> list[str]:
    lost = f" ({int(row['landmarks_lost'])} lost)" if row.get("landmarks_lost") else ""
    return [number(row.get("dice"), 3), number(row.get("tre_mean_mm")) + lost]


def case_table(case: str, results: list[dict], summary: dict) -> str:
    organs = not case.startswith("prostate")
    header = ["pair", "method"] + (["mean Dice", *CHAOS_ORGANS.values()] if organs else ["gland Dice", "TRE mm"]) \
        + ["fold %", "t median s", "SUITS/elastix"]
    columns = organ_columns if organs else prostate_columns
    lines = []
    for label, rows in [(r["pair"], r["methods"]) for r in results] + \
            ([(f"mean of {len(results)}", summary)] if len(results) > 1 else []):
        for name, row in rows.items():
            if "error" in row or "failed_pairs" in row:
                what = "FAILED" if "error" in row else f"failed on {row['failed_pairs']} pair(s)"
                lines.append([label, name, what] + [""] * (len(header) - 3))
            else:
                lines.append([label, name] + columns(row) + [number(row.get("folding_percent"), 3),
                                                              number(row.get("median_seconds"), 1),
                                                              number(row.get("ratio_to_elastix"), 3)])
    return table(header, lines)


# --- main ------------------------------------------------------------------------------------------


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=SPLITS, required=True,
                        help="dev: the development part; benchmark: the held-out part (report it, do not tune on it)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder (default <repo>/../shared/data)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="cases (default all)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS),
                        help=f"methods (default {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="an extra SUITS method with these register() options (repeatable)")
    parser.add_argument("--suits-option", action="append", default=[], metavar="KEY=VALUE",
                        help="register() option of one extra SUITS method, as in bench_speed.py (repeatable)")
    parser.add_argument("--mr-contrast", choices=list(MR_CONTRASTS), default="t2-spir",
                        help="the CHAOS MR as it is (T2-SPIR, default) or through a T1-like intensity curve")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every method (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per pair and method (median; default 1)")
    parser.add_argument("--pairs-limit", type=int, help="at most this many pairs per case")
    parser.add_argument("--pairs-limit-3d", type=int, help="at most this many pairs per 3D case (overrides)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one pair per case, CHAOS subsampled by 4 in plane, CT at 4 mm, elastix at "
                             f"{QUICK_ELASTIX_ITERATIONS} iterations per resolution, one repeat, no warm-up")
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/intersubject-SPLIT.json); "
                                                    "the PNGs go beside it")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    arguments = parser.parse_args(argv)
    if arguments.threads < 1 or arguments.repeats < 1:
        parser.error("--threads and --repeats must be positive")
    try:
        arguments.variants = dict(parse_variant(text) for text in arguments.variant)
        if arguments.suits_option:
            options = parse_suits_options(arguments.suits_option)
            name = "suits " + " ".join(f"{k}={v!r}" for k, v in options.items())
            check_register_options(name, options)
            arguments.variants[name] = options
    except (BenchmarkError, ValueError) as error:
        parser.error(str(error))
    if arguments.quick:
        arguments.pairs_limit, arguments.pairs_limit_3d, arguments.repeats = 1, None, 1
    arguments.output = arguments.output or REPOSITORY / "benchmarks" / "results" / f"intersubject-{arguments.split}.json"
    if arguments.output.exists() and not arguments.overwrite:
        parser.error(f"{arguments.output} exists; pass --overwrite or choose another --output")
    arguments.data = arguments.data.resolve()
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(sys.argv[:1] + (sys.argv[1:] if argv is None else list(argv)))
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    set_threads(arguments.threads)
    settings = {"threads": arguments.threads, "quick": arguments.quick}
    methods, notes = {}, []
    table_entries = {name: METHODS[name] for name in arguments.methods}
    table_entries.update({name: suits_method(options) for name, options in arguments.variants.items()})
    for name, make in table_entries.items():
        try:
            methods[name] = make(settings)
        except (MethodUnavailable, ImportError) as error:
            notes.append(f"NOT RUN  {name}: {error}")
    report = {"command": command, "complete": False, "split": arguments.split, "mr_contrast": arguments.mr_contrast,
              "data": str(arguments.data),
              "cpu_count": os.cpu_count(), "threads": arguments.threads, "repeats": arguments.repeats,
              "quick": arguments.quick, "methods": list(methods),
              "variants": {n: {k: repr(v) for k, v in o.items()} for n, o in arguments.variants.items()},
              "initial_transforms": INITIAL, "load_average_start": os.getloadavg(), "platform": platform.platform(),
              "versions": versions(), "notes": notes, "cases": {}}
    arguments.output.parent.mkdir(parents=True, exist_ok=True)

    def save():
        arguments.output.write_text(json.dumps(json_ready(report), indent=2) + "\n")

    save()
    elastix_used = any(name.startswith("elastix") for name in methods)
    library_warm_up([o for n, o in arguments.variants.items() if n in methods] + ([{}] if "suits" in methods else []),
                    arguments.threads, not elastix_used, progress)
    for case in arguments.cases:
        limit = arguments.pairs_limit_3d if case.endswith("3d") and arguments.pairs_limit_3d else arguments.pairs_limit
        missing = [path for path in case_files(case, arguments.split, limit) if not (arguments.data / path).is_file()]
        if missing:
            report["cases"][case] = {"skipped": f"no data: {missing[0]} is missing"}
            notes.append(f"NOT MEASURED  {case}: {arguments.data / missing[0]} is missing")
            continue
        progress(f"{case}: reading the pairs")
        try:
            pairs = case_pairs(case, arguments)
        except (BenchmarkError, RuntimeError, ValueError) as error:  # a data problem: the other cases go on
            report["cases"][case] = {"skipped": f"{type(error).__name__}: {error}"}
            notes.append(f"NOT MEASURED  {case}: {' '.join(str(error).split())[:300]}")
            save()
            continue
        def saved(results, case=case):
            report["cases"][case] = {"pairs": results, "complete": False}
            save()

        results, first = run_case(case, pairs, methods, ["suits", *arguments.variants], arguments.repeats, progress,
                                  saved)
        picture = save_picture(arguments.output.with_name(f"{arguments.output.stem}-{case}.png"), case, pairs[0],
                               first)
        report["cases"][case] = {"pairs": results, "means": means(results),
                                 "picture": str(picture) if picture else None}
        save()
    report["complete"] = True
    report["load_average_end"] = os.getloadavg()
    save()

    for case, entry in report["cases"].items():
        if "pairs" in entry:
            print(f"\n{case} ({arguments.split} split; fixed <- moving; initial transform "
                  f"{entry['pairs'][0]['initial_transform']} for every method)")
            print(case_table(case, entry["pairs"], entry["means"]))
            if entry["picture"]:
                print(f"picture: {entry['picture']}")
    for result in [r for entry in report["cases"].values() for r in entry.get("pairs", [])]:
        for name, row in result["methods"].items():
            if "error" in row:
                notes.append(f"FAILED  {result['pair']} / {name}: {' '.join(row['error'].split())[:300]}")
    for line in notes:
        print(line)
    print(f"\n{arguments.threads} thread(s) per method on a {os.cpu_count()}-CPU machine, median of "
          f"{arguments.repeats} run(s); load average {report['load_average_start'][0]:.2f} at the start, "
          f"{report['load_average_end'][0]:.2f} at the end (compare ratios, not absolute times)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"reproduce: {command}")
    print(f"all numbers: {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
