"""Speed and scale: SUITS against itk-elastix on the same thread count, and time and peak memory against volume size.

One run measures, with the same number of CPU threads for both methods
(``--threads``, default 1), the wall-clock time of ``itk_suits.register`` and
of ``itk_suits.evaluation.run_elastix`` together with their accuracy on real
image pairs, then the time and peak host memory of both on synthetic volumes
of growing size. Data: ``../shared/data/`` relative to the repository root
(``--data``); see ``benchmarks/README.md`` for the files and their licences.

Benchmarks
----------
1. BrainWeb 2D (``itk_examples_brainweb_slices/``, read as in
   ``bench_registration.py``): T1 fixed, PD deformed by
   ``itk_suits.demo.known_deformation(pd, magnitude=8, control_spacing=40,
   seed=s)`` moving, seeds 10-14 (0-9 are for development and the demo).
   Mean and 95th-percentile displacement error inside the head (mm) against
   the known field, folding (% of voxels with a Jacobian determinant <= 0).
   No initial transform; elastix: its default affine + B-spline maps.
2. Prostate MR <- transrectal ultrasound 3D (``prostate_mr_us/``, 108 pairs
   of the same patients). The MR (``moving_images/obsNNN``, 69x69x64 at 1.5 mm,
   0.30 M voxels) is the *fixed* image and the ultrasound
   (``fixed_images/obsNNN``, 47x63x44) the *moving* one, so that the fixed grid
   has about 0.3 M voxels. Split: obs000-obs053 are for development, obs054-
   obs107 are held out for benchmarks; default pairs obs060, obs070, obs080,
   obs090, obs100 (``--pairs``). Both methods start from the same initial
   transform, ``"geometry"`` (image centres, ``itk_suits.interop.transforms.
   initial_transform``); elastix: its default B-spline map (Mattes mutual
   information, 4 resolutions, FinalGridSpacingInPhysicalUnits 10 mm; SUITS's
   finest control spacing is 7 voxels = 10.5 mm here). Labels are 4D
   (channel 0 the gland, channels 1 and up corresponding landmark regions, 2-5
   per pair): gland Dice (moving labels warped with nearest neighbour), target
   registration error (TRE: distance in mm between the centroid of each fixed
   landmark and the centroid of the corresponding moving landmark warped onto
   the fixed grid with linear interpolation, mean over the landmarks), folding.
   "initial" is the state after the common initial transform.
3. CHAOS abdominal MR T2-SPIR 3D, inter-subject (``chaos_mr_t2/``, 256x256x
   (31-46) at 1.25x1.25x7.7 mm, about 2.3 M voxels; labels 1 liver, 2 right
   kidney, 3 left kidney, 4 spleen). Split: subjects 1-22 are for development,
   31-39 are held out for benchmarks; default pairs (fixed:moving) 31:32, 33:34,
   36:37 (``--chaos-pairs``). Both methods start from the initial transform
   ``"moments"`` (centres of mass); elastix: its default affine + B-spline
   maps. Mean organ Dice over the four organs (nearest-neighbour warped
   labels) before (after the initial transform) and after, folding.
4. Scale: synthetic 3D volumes shaped like 512x512x300 at 1 mm (``--scale-sizes``
   in millions of voxels, default 0.1 0.5 2 5 20; ``--large`` adds 512x512x300,
   78.6 M voxels): random blobs (``bench_gpu.phantom``), the moving image the
   same anatomy under a non-monotonic intensity map (another "modality")
   deformed by ``known_deformation``. Each registration runs in a fresh
   process (this script with ``--worker``) that reads the two images,
   registers them once after a tiny warm-up registration (a 32-voxel crop, to
   load the libraries), and reads its peak resident memory right after: the
   **peak host memory of the whole registration process, including its
   imports and the two input images** (also reported: the same reading just
   before the timed call). On Linux the reading is ``VmHWM`` of
   ``/proc/self/status``, not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``:
   a process started by ``subprocess`` inherits its parent's ``ru_maxrss``
   (Linux keeps the peak of the replaced address space across ``exec``), so
   ``ru_maxrss`` would report at least the size of this benchmark; it is kept
   in the JSON file for reference. elastix runs its default B-spline map and
   only up to ``--elastix-max-voxels`` (default 25 M: up to the 20 M volume,
   324x324x190 mm, about the field of view of a CHAOS volume; elastix's
   B-spline time follows its control grid, i.e. the field of view, more than
   the voxel count: subsampling a CHAOS pair did not shorten it; 512x512x300
   has four times the control points of the 20 M volume). The mean
   displacement error against the known field (on a strided lattice of about
   200,000 voxels) shows that each run registered. A PNG plot of time and peak
   memory against voxel count (log-log) is saved beside the JSON file.

Timing: ``--threads`` for both methods (torch via ``threads=``, elastix via
``threads=``; SimpleITK's and ITK's global thread counts too). Before anything
is timed, each method registers a tiny phantom once (the first elastix call
loads ITK's modules, about 20 s). Then, per benchmark and method, one warm-up
run on the benchmark's first case is discarded (not with ``--quick``), and
``--repeats`` runs (default 3) are timed with a wall clock around the whole
call (registration, warped image, transform and displacement field); the
median and minimum are reported, and SUITS's median over elastix's median of
the same case. Accuracy is scored on the last timed run. In the scale part
each repeat is a fresh process, timed around the registration call only.

Targets, printed as PASS / FAIL / not measured: SUITS/elastix time <= 0.3 at
equal or better accuracy on the prostate and CHAOS benchmarks (mean of the
per-pair ratios; mean Dice and mean TRE no worse than elastix's as printed,
Dice to 3 decimals and TRE to 0.01 mm); SUITS/elastix time <= 0.1 on BrainWeb
2D; peak host memory of SUITS on 512x512x300 below 8 GiB.

``--suits-option KEY=VALUE`` (repeatable, values read with
``ast.literal_eval``) adds a second SUITS method with these ``register``
parameters to the same run, e.g. ``--suits-option samples=None
--suits-option channels=None`` for the dense behaviour before sampling.

Usage::

    python benchmarks/bench_speed.py                                   # everything but 512x512x300, 1 thread
    python benchmarks/bench_speed.py --large --output /tmp/speed.json  # with 512x512x300 (long)
    python benchmarks/bench_speed.py --quick                           # smoke check, about 1.5 minutes
    python benchmarks/bench_speed.py --quick --skip-elastix --parts scale
    python benchmarks/bench_speed.py --suits-option samples=None --suits-option channels=None
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
sys.path.insert(0, str(REPOSITORY))  # benchmark this checkout, installed or not

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

#: A ``--worker`` process (one registration of the scale part, whose peak memory is the measurement)
#: imports only what its method needs; everything else is imported by the benchmark itself.
WORKER = __name__ == "__main__" and sys.argv[1:2] == ["--worker"]
if not WORKER:
    import bench_registration  # noqa: E402
    import itk_suits  # noqa: E402
    from bench_gpu import DEFORMATION_CONTROL_SPACING, DEFORMATION_MAGNITUDE, NOISE, phantom, phantom_case  # noqa: E402
    from itk_suits.demo import known_deformation  # noqa: E402
    from itk_suits.evaluation import default_parameter_map, dice, folding_percentage, run_elastix  # noqa: E402
    from itk_suits.evaluation.report import json_ready  # noqa: E402
    from itk_suits.interop.images import resample  # noqa: E402
    from itk_suits.interop.transforms import initial_transform as initial_alignment  # noqa: E402
    from support import means, number, set_threads, table, versions  # noqa: E402

DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "speed.json"
PARTS = ("brainweb", "prostate", "chaos", "scale")

#: BrainWeb: benchmark seeds of the known deformation (0-9 are for development and the demo).
BRAINWEB_SEEDS = (10, 11, 12, 13, 14)
#: Prostate: obs000-obs053 are for development, obs054-obs107 are the benchmark part.
PROSTATE = "prostate_mr_us"
PROSTATE_PAIRS = 108
PROSTATE_FIRST_BENCHMARK_PAIR = 54
DEFAULT_PROSTATE_PAIRS = ("obs060", "obs070", "obs080", "obs090", "obs100")
#: CHAOS: subjects 1-22 are for development, 31-39 are the benchmark part; pairs are (fixed, moving).
CHAOS = "chaos_mr_t2"
CHAOS_BENCHMARK_SUBJECTS = (31, 32, 33, 34, 36, 37, 38, 39)
DEFAULT_CHAOS_PAIRS = ((31, 32), (33, 34), (36, 37))
CHAOS_ORGANS = {1: "liver", 2: "right kidney", 3: "left kidney", 4: "spleen"}

#: Scale part: sizes in millions of voxels, each shaped like LARGE_SIZE (x, y, z) at 1 mm.
DEFAULT_SCALE_SIZES = (0.1, 0.5, 2.0, 5.0, 20.0)
LARGE_SIZE = (512, 512, 300)
MEMORY_TARGET_GIB = 8.0
DEFAULT_ELASTIX_MAX_VOXELS = 25_000_000
#: Seed of the scale phantoms and their known deformations (other benchmarks use 0-14 and 20).
SCALE_SEED = 30
#: The error against the known field is taken on about this many voxels (a strided lattice).
ERROR_SAMPLES = 200_000
#: Every side of a scale volume at least this (the coarsest control spacing of the default schedule).
MINIMUM_SIDE = 20
#: The worker's warm-up registration runs on a crop of at most this many voxels per side.
WARM_UP_SIDE = 32

#: Targets: SUITS median / elastix median at most this, per benchmark.
RATIO_TARGETS = {"brainweb": 0.1, "prostate": 0.3, "chaos": 0.3}

#: --quick: tiny scale sizes (about 41x41x24 and 63x63x37), elastix's iterations capped, elastix on the
#: smallest scale volume only, CHAOS subsampled by 4 in plane (64x64xZ) and SUITS only (elastix's B-spline
#: stage takes over a minute on the CHAOS field of view even with 10 iterations per resolution).
QUICK_SCALE_SIZES = (0.04, 0.15)
QUICK_ELASTIX_ITERATIONS = 20
QUICK_ELASTIX_MAX_VOXELS = 50_000
QUICK_CHAOS_SHRINK = (4, 4, 1)

#: elastix's stages per benchmark (elastix's default maps through run_elastix).
ELASTIX_MAPS = {"brainweb": ("affine", "bspline"), "prostate": ("bspline",), "chaos": ("affine", "bspline"),
                "scale": ("bspline",)}
#: The common initial transform of both methods per benchmark (None: identity).
INITIAL = {"brainweb": None, "prostate": "geometry", "chaos": "moments", "scale": None}


# --- parsing ---------------------------------------------------------------------------------------


def parse_suits_options(items) -> dict:
    """``["samples=None", "grid_spacings=(8, 5, 3)"]`` -> ``{"samples": None, "grid_spacings": (8, 5, 3)}``.

    Values are read with ``ast.literal_eval``; a bare word that is no literal stays a string
    (``features=mind``). Raises ValueError for an item without ``=`` or with the key ``threads``.
    """
    options = {}
    for item in items or ():
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key.isidentifier():
            raise ValueError(f"--suits-option {item!r} is not of the form KEY=VALUE")
        if key == "threads":
            raise ValueError("--suits-option threads=...: both methods get --threads")
        try:
            options[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            options[key] = text.strip()
    return options


def scale_size(text: str) -> tuple[int, int, int]:
    """``"2"`` or ``"2M"`` (millions of voxels, shaped like 512x512x300) or ``"64x64x40"`` -> (x, y, z)."""
    if "x" in text.lower():
        try:
            size = tuple(int(part) for part in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"scale size {text!r} is not of the form 64x64x40 or 2M") from None
        if len(size) != 3:
            raise ValueError(f"scale size {text!r} must have 3 sides")
    else:
        try:
            millions = float(text[:-1] if text.upper().endswith("M") else text)
        except ValueError:
            raise ValueError(f"scale size {text!r} is not of the form 64x64x40 or 2M") from None
        factor = (millions * 1e6 / math.prod(LARGE_SIZE)) ** (1 / 3) if millions > 0 else 0.0
        size = tuple(int(round(side * factor)) for side in LARGE_SIZE)
    if min(size) < MINIMUM_SIDE:
        raise ValueError(f"scale size {text!r} gives {'x'.join(map(str, size))}: every side must be at least "
                         f"{MINIMUM_SIDE} voxels (the coarsest control spacing of the default schedule)")
    return size


def prostate_pair(text: str) -> str:
    """``"obs060"`` or ``"60"`` -> ``"obs060"``; ValueError outside obs000-obs107."""
    digits = text[3:] if text.startswith("obs") else text
    if not digits.isdigit() or not 0 <= int(digits) < PROSTATE_PAIRS:
        raise ValueError(f"prostate pair {text!r}: expected obs000 to obs{PROSTATE_PAIRS - 1:03d}")
    return f"obs{int(digits):03d}"


def chaos_pair(text: str) -> tuple[int, int]:
    """``"31:32"`` (fixed subject 31, moving subject 32) -> ``(31, 32)``."""
    fixed, separator, moving = text.partition(":")
    if not separator or not fixed.isdigit() or not moving.isdigit() or fixed == moving:
        raise ValueError(f"CHAOS pair {text!r} is not of the form FIXED:MOVING, e.g. 31:32")
    return int(fixed), int(moving)


def size_name(size) -> str:
    return "x".join(map(str, size))


# --- the worker: one scale registration in a fresh process ----------------------------------------


def ru_maxrss_gib() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in GiB (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def peak_gib() -> float:
    """Peak resident memory of this process so far, GiB.

    On Linux ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own address space: a
    process started by ``subprocess`` inherits the parent's ``ru_maxrss`` (Linux keeps the largest resident
    size of the replaced address space across ``exec``), so ``ru_maxrss`` would report at least the size of
    the benchmark that started it. Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return ru_maxrss_gib()


def _centre_crop(image: sitk.Image, side: int) -> sitk.Image:
    size = [min(side, n) for n in image.GetSize()]
    start = [(n - s) // 2 for n, s in zip(image.GetSize(), size)]
    return sitk.RegionOfInterest(image, size, start)


def _worker_method(spec: dict) -> Callable[[sitk.Image, sitk.Image, bool], tuple[sitk.Image, float]]:
    """The registration of ``spec``: ``run(fixed, moving, warm_up)`` -> (displacement field in mm, own seconds)."""
    threads = spec["threads"]
    if spec["method"] == "suits":
        import itk_suits
        import torch

        torch.set_num_threads(threads)
        options = parse_suits_options(spec["options"])

        def run(fixed, moving, warm_up):
            parameters = {"threads": threads, **options, **({"iterations": 5} if warm_up else {})}
            result = itk_suits.register(fixed, moving, **parameters)
            return result.displacement_field, result.seconds
        return run

    import itk

    from itk_suits.evaluation.elastix import default_parameter_map, run_elastix

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)

    def run(fixed, moving, warm_up):
        overrides = {"MaximumNumberOfIterations": 2} if warm_up else spec["elastix_overrides"]
        maps = [default_parameter_map(name, overrides=overrides) for name in spec["elastix_maps"]]
        result = run_elastix(fixed, moving, parameter_maps=maps, threads=threads)
        return result.displacement_field, result.seconds
    return run


def worker(spec: dict) -> int:
    """Register ``spec["moving"]`` onto ``spec["fixed"]`` once in this process and write to ``spec["result"]``:
    the wall time of the call, the peak memory of the process before and after it, the error on the known field."""
    record: dict = {}
    try:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(spec["threads"])
        fixed = sitk.ReadImage(spec["fixed"], sitk.sitkFloat32)
        moving = sitk.ReadImage(spec["moving"], sitk.sitkFloat32)
        run = _worker_method(spec)
        try:  # load the libraries and initialise them on a tiny crop: not timed
            run(_centre_crop(fixed, WARM_UP_SIDE), _centre_crop(moving, WARM_UP_SIDE), True)
        except Exception as error:  # noqa: BLE001 - the warm-up only loads libraries; the real run decides
            record["warm_up_error"] = f"{type(error).__name__}: {error}"
        record["peak_before_call_gib"] = peak_gib()
        start = time.perf_counter()
        displacement, own_seconds = run(fixed, moving, False)
        record["seconds"] = time.perf_counter() - start
        record["peak_rss_gib"] = peak_gib()
        record["ru_maxrss_gib"] = ru_maxrss_gib()  # for reference: includes the parent's peak on Linux
        record["reported_seconds"] = own_seconds
        if spec.get("truth"):
            stride = spec["stride"]
            truth = np.load(spec["truth"])
            estimate = sitk.GetArrayViewFromImage(displacement)[::stride, ::stride, ::stride]
            record["error_mean_mm"] = float(np.linalg.norm(estimate - truth, axis=-1).mean())
    except Exception as error:  # noqa: BLE001 - reported by the benchmark, which goes on
        record["error"] = f"{type(error).__name__}: {error}"
    Path(spec["result"]).write_text(json.dumps(record))
    return 1 if "error" in record else 0


# --- the real pairs --------------------------------------------------------------------------------


@dataclass
class Pair:
    """One registration problem of a benchmark, how it starts, and how a result is scored.

    ``score(output)`` scores a registration's ``Output`` (displacement field and transform);
    ``initial_scores`` is the state both methods start from (after the common initial transform).
    """

    name: str
    fixed: sitk.Image
    moving: sitk.Image
    initial: Optional[str]
    score: Callable[[object], dict]
    initial_scores: dict


def brainweb_pairs(data: Path, seeds) -> list[Pair]:
    """``bench_registration``'s BrainWeb cases: T1 fixed, PD deformed by a known field moving."""
    pairs = []
    for case in bench_registration.brainweb_cases(data, seeds):
        scores = bench_registration.score_initial(case)
        pairs.append(Pair(
            name=case.name.replace("BrainWeb T1 <- PD ", ""), fixed=case.fixed, moving=case.moving, initial=None,
            score=lambda output, case=case: bench_registration.score(case, output),
            initial_scores={"error_mean_mm": scores["error_mean_mm"], "error_p95_mm": scores["error_p95_mm"]},
        ))
    return pairs


def channels_of(path: Path, reference: sitk.Image) -> list[sitk.Image]:
    """The channels of a 4D label file (channel last in ITK order) as uint8 images on ``reference``'s grid."""
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # (channel, z, y, x)
    if array.ndim != 4 or array.shape[1:] != tuple(reference.GetSize())[::-1]:
        raise ValueError(f"{path}: expected 4D labels on the grid of its image "
                         f"{size_name(reference.GetSize())}, got array shape {array.shape}")
    images = []
    for channel in array:
        image = sitk.GetImageFromArray((channel > 0.5).astype(np.uint8))
        image.CopyInformation(reference)
        images.append(image)
    return images


def centroid(image: sitk.Image) -> Optional[np.ndarray]:
    """Intensity-weighted centroid in mm (physical, x y z), None for an empty image."""
    weights = sitk.GetArrayViewFromImage(image).astype(np.float64)
    total = weights.sum()
    if total <= 0:
        return None
    index = [float((weights.sum(axis=tuple(a for a in range(weights.ndim) if a != axis))
                    * np.arange(weights.shape[axis])).sum() / total) for axis in range(weights.ndim)]
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(index[::-1]))


def prostate_scores(fixed_labels, moving_labels, fixed_centroids, transform, field=None) -> dict:
    """Gland Dice, TRE of the landmark centroids (mm) and folding of one transform (fixed -> moving)."""
    gland = resample(moving_labels[0], fixed_labels[0], transform, "nearest")
    distances = []
    for target, landmark in zip(fixed_centroids, moving_labels[1:]):
        warped = resample(sitk.Cast(landmark, sitk.sitkFloat32), fixed_labels[0], transform, "linear")
        found = centroid(warped)
        distances.append(float("nan") if found is None or target is None else float(np.linalg.norm(found - target)))
    scores = {"dice": dice(fixed_labels[0], gland, labels=[1])[1], "tre_mm": distances,
              "tre_mean_mm": float(np.nanmean(distances)) if not all(map(math.isnan, distances)) else float("nan"),
              "landmarks": len(distances), "landmarks_lost": int(sum(map(math.isnan, distances)))}
    if field is not None:
        scores["folding_percent"] = folding_percentage(field)
    return scores


def read_prostate(folder: Path, name: str) -> tuple[sitk.Image, sitk.Image, list, list]:
    """MR (``moving_images/``), ultrasound (``fixed_images/``) and their label channels (0 gland, 1.. landmarks)."""
    mr = sitk.ReadImage(str(folder / "moving_images" / f"{name}.nii.gz"), sitk.sitkFloat32)
    us = sitk.ReadImage(str(folder / "fixed_images" / f"{name}.nii.gz"), sitk.sitkFloat32)
    mr_labels = channels_of(folder / "moving_labels" / f"{name}.nii.gz", mr)
    us_labels = channels_of(folder / "fixed_labels" / f"{name}.nii.gz", us)
    if len(mr_labels) != len(us_labels):
        raise ValueError(f"{name}: {len(mr_labels)} MR label channels but {len(us_labels)} ultrasound channels")
    return mr, us, mr_labels, us_labels


def prostate_pairs(data: Path, names) -> list[Pair]:
    """MR fixed (``moving_images/``), ultrasound moving (``fixed_images/``), labels channel 0 gland, 1.. landmarks."""
    folder = data / PROSTATE
    pairs = []
    for name in names:
        mr, us, mr_labels, us_labels = read_prostate(folder, name)
        targets = [centroid(label) for label in mr_labels[1:]]

        def score(output, mr_labels=mr_labels, us_labels=us_labels, targets=targets):
            return prostate_scores(mr_labels, us_labels, targets, output.transform, output.displacement_field)

        start = initial_alignment(mr, us, INITIAL["prostate"])
        pairs.append(Pair(name=f"{name}{'' if int(name[3:]) >= PROSTATE_FIRST_BENCHMARK_PAIR else ' (dev)'}",
                          fixed=mr, moving=us, initial=INITIAL["prostate"], score=score,
                          initial_scores=prostate_scores(mr_labels, us_labels, targets, start)))
    return pairs


def chaos_scores(fixed_labels, moving_labels, transform, field=None) -> dict:
    warped = resample(moving_labels, fixed_labels, transform, "nearest")
    organs = dice(fixed_labels, warped, labels=list(CHAOS_ORGANS))
    scores = {"dice_mean": float(np.nanmean(list(organs.values()))),
              **{f"dice_{name.replace(' ', '_')}": organs[label] for label, name in CHAOS_ORGANS.items()}}
    if field is not None:
        scores["folding_percent"] = folding_percentage(field)
    return scores


def chaos_pairs(data: Path, pairs, shrink=None) -> list[Pair]:
    """Subject pairs (fixed, moving) of CHAOS T2-SPIR; ``shrink`` subsamples every image (``--quick``)."""
    folder = data / CHAOS

    def read(kind, subject, pixel):
        image = sitk.ReadImage(str(folder / f"{kind}_{subject}.nii.gz"), pixel)
        return sitk.Shrink(image, shrink) if shrink else image

    result = []
    for fixed_subject, moving_subject in pairs:
        fixed, moving = read("image", fixed_subject, sitk.sitkFloat32), read("image", moving_subject, sitk.sitkFloat32)
        fixed_labels = read("label", fixed_subject, sitk.sitkUInt8)
        moving_labels = read("label", moving_subject, sitk.sitkUInt8)

        def score(output, fixed_labels=fixed_labels, moving_labels=moving_labels):
            return chaos_scores(fixed_labels, moving_labels, output.transform, output.displacement_field)

        start = initial_alignment(fixed, moving, INITIAL["chaos"])
        development = not {fixed_subject, moving_subject} <= set(CHAOS_BENCHMARK_SUBJECTS)
        result.append(Pair(name=f"{fixed_subject} <- {moving_subject}{' (dev)' if development else ''}",
                           fixed=fixed, moving=moving,
                           initial=INITIAL["chaos"], score=score,
                           initial_scores=chaos_scores(fixed_labels, moving_labels, start)))
    return result


def missing_data(data: Path, part: str, arguments) -> list[Path]:
    """The files of ``part`` that are not in ``data``."""
    if part == "brainweb":
        files = [data / bench_registration.BRAINWEB / name
                 for name in ("BrainT1Slice.png", "BrainProtonDensitySlice.png")]
    elif part == "prostate":
        files = [data / PROSTATE / folder / f"{name}.nii.gz" for name in arguments.pairs
                 for folder in ("fixed_images", "moving_images", "fixed_labels", "moving_labels")]
    elif part == "chaos":
        files = [data / CHAOS / f"{kind}_{subject}.nii.gz" for pair in arguments.chaos_pairs for subject in pair
                 for kind in ("image", "label")]
    else:
        files = []
    return [path for path in files if not path.is_file()]


# --- methods and timing ----------------------------------------------------------------------------


def suits_name(options: dict) -> str:
    return "SUITS" + ("" if not options else " " + " ".join(f"{k}={v!r}" for k, v in options.items()))


def elastix_name(maps) -> str:
    return "elastix " + " + ".join({"affine": "affine", "bspline": "B-spline"}.get(m, m) for m in maps)


def elastix_maps(names, quick: bool):
    """Map names for run_elastix; with ``--quick`` the same default maps with their iterations capped."""
    if not quick:
        return tuple(names)
    return tuple(default_parameter_map(name, overrides={"MaximumNumberOfIterations": QUICK_ELASTIX_ITERATIONS})
                 for name in names)


def methods_for(part: str, variants: list[dict], threads: int, skip_elastix: bool, quick: bool) -> dict:
    """Name -> ``run(fixed, moving)`` returning an ``Output``, SUITS variants first, then elastix."""
    initial = INITIAL[part]
    methods = {}
    for options in variants:
        def suits(fixed, moving, options=options):
            result = itk_suits.register(fixed, moving, **{"threads": threads, "initial_transform": initial, **options})
            return bench_registration.Output(result.displacement_field, result.transform, result.seconds)
        methods[suits_name(options)] = suits
    if not skip_elastix:
        maps = elastix_maps(ELASTIX_MAPS[part], quick)

        def elastix(fixed, moving):
            result = run_elastix(fixed, moving, parameter_maps=maps, threads=threads, initial_transform=initial)
            return bench_registration.Output(result.displacement_field, result.transform, result.seconds)
        methods[elastix_name(ELASTIX_MAPS[part])] = elastix
    return methods


def library_warm_up(variants: list[dict], threads: int, skip_elastix: bool, progress) -> None:
    """One tiny registration per method before anything is timed: imports and library initialisation."""
    case = phantom_case((32, 28, 24))
    progress("warm-up: a tiny registration per method (loads and initialises the libraries; not timed)")
    for options in variants:
        try:
            itk_suits.register(case.fixed, case.moving, **{"threads": threads, **options, "iterations": 5})
        except itk_suits.SuitsError as error:  # e.g. a 2D model: the variant's first timed run loads it
            progress(f"    warm-up of {options} skipped: {' '.join(str(error).split())[:200]}")
    if not skip_elastix:
        run_elastix(case.fixed, case.moving, threads=threads,
                    parameter_maps=[default_parameter_map("bspline", overrides={"MaximumNumberOfIterations": 2})])


def benchmark(part: str, pairs: list[Pair], methods: dict, repeats: int, warm_up: bool, progress, saved) -> list[dict]:
    """Every method on every pair: scores of the last of ``repeats`` timed runs, times, ratios to elastix."""
    results = []
    for index, pair in enumerate(pairs):
        rows = {"initial": dict(pair.initial_scores)}
        for name, method in methods.items():
            progress(f"{part} {pair.name}: {name} ({'1 warm-up + ' if warm_up and index == 0 else ''}"
                     f"{repeats} timed run(s))")
            try:
                if warm_up and index == 0:
                    method(pair.fixed, pair.moving)
                wall, reported = [], []
                for _ in range(repeats):
                    start = time.perf_counter()
                    output = method(pair.fixed, pair.moving)
                    wall.append(time.perf_counter() - start)
                    reported.append(output.reported_seconds)
                rows[name] = {**pair.score(output), "seconds": wall, "median_seconds": statistics.median(wall),
                              "min_seconds": min(wall), "reported_seconds": reported}
            except Exception as error:  # noqa: BLE001 - a failing method is a result, not a crash
                rows[name] = {"error": f"{type(error).__name__}: {error}"}
                progress(f"    FAILED: {rows[name]['error']}")
        add_ratios(rows)
        results.append({"pair": pair.name, "fixed_size": list(pair.fixed.GetSize()),
                        "moving_size": list(pair.moving.GetSize()),
                        "fixed_voxels": int(np.prod(pair.fixed.GetSize())), "initial_transform": pair.initial,
                        "methods": rows})
        saved(results)
    return results


def add_ratios(rows: dict) -> None:
    """``ratio_to_elastix`` = median time / elastix's median time, on every SUITS row."""
    reference = next((row.get("median_seconds") for name, row in rows.items() if name.startswith("elastix")), None)
    for name, row in rows.items():
        if name.startswith("SUITS") and reference and "median_seconds" in row:
            row["ratio_to_elastix"] = row["median_seconds"] / reference


def scale_phantom(size, folder: Path, seed: int = SCALE_SEED) -> dict:
    """Write the fixed and moving volumes of ``size`` (x, y, z at 1 mm) and a strided sample of the true field."""
    rng = np.random.default_rng(seed)
    anatomy = phantom(tuple(size)[::-1], rng)
    other_modality = ((np.sin(3.0 * np.pi * anatomy) ** 2 + 0.3 * anatomy) / 1.3).astype(np.float32)
    side = min(size)
    moving, true_index = known_deformation(
        sitk.GetImageFromArray(other_modality), magnitude=max(1.5, DEFORMATION_MAGNITUDE * side),
        control_spacing=max(10.0, DEFORMATION_CONTROL_SPACING * side), seed=seed)
    del other_modality
    stride = max(1, round((math.prod(size) / ERROR_SAMPLES) ** (1 / 3)))
    # spacing 1 mm and identity direction: voxel displacements are mm; (3, z, y, x) -> (z, y, x, 3)
    truth = np.ascontiguousarray(np.moveaxis(true_index[:, ::stride, ::stride, ::stride], 0, -1), np.float32)
    del true_index
    anatomy += NOISE * rng.standard_normal(anatomy.shape, dtype=np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(anatomy), str(folder / "fixed.mha"))
    del anatomy
    moving_array = sitk.GetArrayFromImage(moving)
    del moving
    moving_array += NOISE * rng.standard_normal(moving_array.shape, dtype=np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(moving_array), str(folder / "moving.mha"))
    np.save(folder / "truth.npy", truth)
    return {"fixed": str(folder / "fixed.mha"), "moving": str(folder / "moving.mha"),
            "truth": str(folder / "truth.npy"), "stride": stride,
            "initial_error_mean_mm": float(np.linalg.norm(truth, axis=-1).mean())}


def run_worker(spec: dict, folder: Path) -> dict:
    """One registration in a fresh process (``--worker``); its record, or the reason it gave none."""
    spec = {**spec, "result": str(folder / "result.json")}
    Path(spec["result"]).unlink(missing_ok=True)
    start = time.perf_counter()
    finished = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                              capture_output=True, text=True)
    process_seconds = time.perf_counter() - start
    result = Path(spec["result"])
    if result.is_file():
        record = json.loads(result.read_text())
    else:
        how = (f"killed by signal {-finished.returncode}" + (" (out of memory?)" if finished.returncode == -9 else "")
               if finished.returncode < 0 else f"exit status {finished.returncode}")
        tail = " ".join(finished.stderr.strip().splitlines()[-3:])
        record = {"error": f"worker {how}, no result{': ' + tail if tail else ''}"}
    record["process_seconds"] = process_seconds
    return record


def scale_benchmark(sizes, variants: list[dict], arguments, repeats: int, elastix_max: int, progress,
                    saved) -> list[dict]:
    """Per size and method: ``repeats`` fresh processes; median time, peak memory (max), error on the truth."""
    records = []
    overrides = {"MaximumNumberOfIterations": QUICK_ELASTIX_ITERATIONS} if arguments.quick else None
    methods = [(suits_name(options), {"method": "suits", "options": list(raw)})
               for options, raw in variants]
    elastix = elastix_name(ELASTIX_MAPS["scale"])
    for size in sizes:
        voxels = math.prod(size)
        with tempfile.TemporaryDirectory(prefix="bench-speed-") as temporary:
            folder = Path(temporary)
            progress(f"scale {size_name(size)}: making the phantom ({voxels:,} voxels)")
            volume = scale_phantom(size, folder)
            plan = list(methods)
            if not arguments.skip_elastix:
                plan.append((elastix, {"method": "elastix", "elastix_maps": list(ELASTIX_MAPS["scale"]),
                                       "elastix_overrides": overrides}))
            for name, method in plan:
                record = {"size": list(size), "voxels": voxels, "method": name,
                          "initial_error_mean_mm": volume["initial_error_mean_mm"]}
                if method["method"] == "elastix" and voxels > elastix_max:
                    record["skipped"] = f"above --elastix-max-voxels {elastix_max:,}"
                    records.append(record)
                    continue
                progress(f"scale {size_name(size)}: {name} ({repeats} fresh process(es))")
                spec = {**method, "threads": arguments.threads, "fixed": volume["fixed"], "moving": volume["moving"],
                        "truth": volume["truth"], "stride": volume["stride"]}
                runs = [run_worker(spec, folder) for _ in range(repeats)]
                failed = [run for run in runs if "error" in run]
                if failed:
                    record["error"] = failed[0]["error"]
                    progress(f"    FAILED: {record['error']}")
                else:
                    wall = [run["seconds"] for run in runs]
                    record.update(seconds=wall, median_seconds=statistics.median(wall), min_seconds=min(wall),
                                  peak_rss_gib=max(run["peak_rss_gib"] for run in runs),
                                  peak_before_call_gib=statistics.median(run["peak_before_call_gib"] for run in runs),
                                  error_mean_mm=statistics.median(run["error_mean_mm"] for run in runs))
                record["runs"] = runs
                records.append(record)
                saved(records)
        reference = next((r.get("median_seconds") for r in records
                          if r["size"] == list(size) and r["method"] == elastix), None)
        for record in records:
            if record["size"] == list(size) and record["method"].startswith("SUITS") and reference \
                    and "median_seconds" in record:
                record["ratio_to_elastix"] = record["median_seconds"] / reference
        saved(records)
    return records


def plot_scale(records: list[dict], path: Path, threads: int) -> bool:
    """Time and peak memory against voxel count, log-log, one line per method; False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [record for record in records if "median_seconds" in record]
    if not measured:
        return False
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    for method in dict.fromkeys(record["method"] for record in measured):
        rows = sorted((r for r in measured if r["method"] == method), key=lambda r: r["voxels"])
        voxels = [r["voxels"] for r in rows]
        time_axis.plot(voxels, [r["median_seconds"] for r in rows], "o-", label=method)
        memory_axis.plot(voxels, [r["peak_rss_gib"] for r in rows], "o-", label=method)
    memory_axis.axhline(MEMORY_TARGET_GIB, color="grey", linestyle="--", label=f"{MEMORY_TARGET_GIB:g} GiB target")
    for axis, label in ((time_axis, "median time (s)"), (memory_axis, "peak host memory of the process (GiB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("voxels")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(f"Synthetic 3D volumes, {threads} thread{'' if threads == 1 else 's'}; each run a fresh process "
                    "(memory includes imports and the images)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


# --- report ----------------------------------------------------------------------------------------


def _times(row: dict) -> list[str]:
    return [number(row.get("median_seconds")), number(row.get("min_seconds")), number(row.get("ratio_to_elastix"))]


def _method_lines(label: str, rows: dict, columns: Callable[[dict], list[str]], width: int) -> list[list[str]]:
    lines = []
    for name, row in rows.items():
        if "error" in row:
            lines.append([label, name, "FAILED (below)"] + [""] * (width - 3))
        elif "failed_pairs" in row:
            lines.append([label, name, f"failed on {row['failed_pairs']} pair(s)"] + [""] * (width - 3))
        else:
            lines.append([label, name] + columns(row) + (["-", "-", "-"] if name == "initial" else _times(row)))
    return lines


def part_table(results: list[dict], summary: dict, header: list[str], columns) -> str:
    header = header + ["t median s", "t min s", "SUITS/elastix"]
    lines = []
    for result in results:
        lines += _method_lines(result["pair"], result["methods"], columns, len(header))
    if len(results) > 1:
        lines += _method_lines(f"mean of {len(results)}", summary, columns, len(header))
    return table(header, lines)


def _folding(row: dict) -> str:
    return number(row.get("folding_percent"), 3)


def brainweb_columns(row: dict) -> list[str]:
    return [number(row.get("error_mean_mm")), number(row.get("error_p95_mm")), _folding(row)]


def prostate_columns(row: dict) -> list[str]:
    lost = f" ({int(row['landmarks_lost'])} lost)" if row.get("landmarks_lost") else ""
    return [number(row.get("dice"), 3), number(row.get("tre_mean_mm")) + lost, _folding(row)]


def chaos_columns(row: dict) -> list[str]:
    return [number(row.get("dice_mean"), 3)] + [number(row.get(f"dice_{name.replace(' ', '_')}"), 3)
                                                 for name in CHAOS_ORGANS.values()] + [_folding(row)]


def scale_table(records: list[dict]) -> str:
    header = ["size", "voxels", "method", "t median s", "t min s", "peak GiB", "before call GiB",
              "error mm (initial)", "SUITS/elastix"]
    lines = []
    for record in records:
        start = [size_name(record["size"]), f"{record['voxels']:,}", record["method"]]
        if "skipped" in record:
            lines.append(start + ["not run"] + [""] * 5)
        elif "error" in record:
            lines.append(start + ["FAILED (below)"] + [""] * 5)
        else:
            lines.append(start + [number(record["median_seconds"]), number(record["min_seconds"]),
                                  number(record["peak_rss_gib"]), number(record["peak_before_call_gib"]),
                                  f"{record['error_mean_mm']:.2f} ({record['initial_error_mean_mm']:.2f})",
                                  number(record.get("ratio_to_elastix"))])
    return table(header, lines)


def remarks(report: dict) -> list[str]:
    lines = []
    for part in ("brainweb", "prostate", "chaos"):
        for result in report.get(part, {}).get("pairs", []):
            lines += [f"FAILED  {part} {result['pair']} / {name}: {' '.join(row['error'].split())}"
                      for name, row in result["methods"].items() if "error" in row]
    for r in report.get("scale", {}).get("records", []):
        if "error" in r:
            lines.append(f"FAILED  scale {size_name(r['size'])} / {r['method']}: {' '.join(r['error'].split())}")
        elif "skipped" in r:
            lines.append(f"NOT RUN  scale {size_name(r['size'])} / {r['method']}: {r['skipped']}")
    return lines


#: Accuracy columns of the 3D targets: (key, larger is better, decimals compared).
ACCURACY = {"prostate": [("dice", True, 3), ("tre_mean_mm", False, 2)], "chaos": [("dice_mean", True, 3)],
            "brainweb": []}


def ratio_verdict(part: str, report: dict, suits: str, arguments) -> str:
    """PASS / FAIL / not measured for SUITS/elastix <= target (and accuracy no worse, 3D) on ``part``."""
    target = RATIO_TARGETS[part]
    if part not in arguments.parts:
        return "not measured (not in --parts)"
    if "skipped" in report.get(part, {}):
        return f"not measured ({report[part]['skipped']})"
    if arguments.skip_elastix:
        return "not measured (--skip-elastix)"
    summary = report[part]["means"]
    elastix = elastix_name(ELASTIX_MAPS[part])
    if elastix not in summary:
        return "not measured (elastix did not run)"
    if "failed_pairs" in summary.get(suits, {}) or "failed_pairs" in summary.get(elastix, {}):
        return "not measured (a method failed on a pair, see below)"
    ratio = summary[suits]["ratio_to_elastix"]
    problems = [] if ratio <= target else [f"ratio {ratio:.3f} > {target}"]
    for key, larger, digits in ACCURACY[part]:
        ours, theirs = round(summary[suits][key], digits), round(summary[elastix][key], digits)
        if (ours < theirs) if larger else (ours > theirs):
            problems.append(f"{key} {ours} against elastix {theirs}")
    accuracy = ", ".join(f"{key} {summary[suits][key]:.{digits}f} vs {summary[elastix][key]:.{digits}f}"
                         for key, _, digits in ACCURACY[part])
    measured = f"ratio {ratio:.3f}" + (f"; {accuracy}" if accuracy else "")
    if arguments.quick:
        return f"not measured (--quick caps elastix at {QUICK_ELASTIX_ITERATIONS} iterations; smoke check: {measured})"
    return ("PASS" if not problems else "FAIL (" + "; ".join(problems) + ")") + f": {measured}"


def memory_verdict(report: dict, suits: str) -> str:
    rows = [r for r in report.get("scale", {}).get("records", [])
            if r["size"] == list(LARGE_SIZE) and r["method"] == suits]
    if not rows:
        return f"not measured ({size_name(LARGE_SIZE)} not run: pass --large)"
    row = rows[0]
    if "error" in row:
        return f"not measured (the run failed: {' '.join(row['error'].split())[:200]})"
    peak = row["peak_rss_gib"]
    return f"{'PASS' if peak < MEMORY_TARGET_GIB else 'FAIL'}: peak {peak:.2f} GiB"


def targets(report: dict, variants: list[str], arguments) -> dict:
    verdicts = {}
    for suits in variants:
        verdicts[suits] = {
            **{f"{part} SUITS/elastix <= {RATIO_TARGETS[part]}" + (" at equal or better accuracy"
                                                                   if ACCURACY[part] else ""):
               ratio_verdict(part, report, suits, arguments) for part in ("prostate", "chaos", "brainweb")},
            f"{size_name(LARGE_SIZE)} peak host memory < {MEMORY_TARGET_GIB:g} GiB": memory_verdict(report, suits),
        }
    return verdicts


# --- main ------------------------------------------------------------------------------------------


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with the benchmark data (default: <repo>/../shared/data)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of both methods (default 1)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per case and method (default 3; 1 with --quick)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help=f"benchmarks to run (default: all of {' '.join(PARTS)})")
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PROSTATE_PAIRS),
                        help="prostate pairs, obs054-obs107 are the benchmark part "
                             f"(default {' '.join(DEFAULT_PROSTATE_PAIRS)})")
    parser.add_argument("--chaos-pairs", nargs="+", metavar="FIXED:MOVING",
                        default=[f"{a}:{b}" for a, b in DEFAULT_CHAOS_PAIRS],
                        help="CHAOS subject pairs, subjects 31-39 are the benchmark part "
                             f"(default {' '.join(f'{a}:{b}' for a, b in DEFAULT_CHAOS_PAIRS)})")
    parser.add_argument("--scale-sizes", nargs="+", metavar="SIZE",
                        help="synthetic volumes in millions of voxels shaped like 512x512x300 (e.g. 0.1 2M), "
                             f"or XxYxZ (default {' '.join(map(str, DEFAULT_SCALE_SIZES))}; "
                             f"--quick {' '.join(map(str, QUICK_SCALE_SIZES))})")
    parser.add_argument("--large", action="store_true",
                        help=f"add the {size_name(LARGE_SIZE)} volume ({math.prod(LARGE_SIZE) / 1e6:.1f} M voxels; "
                             "long, and needs the memory)")
    parser.add_argument("--elastix-max-voxels", type=int,
                        help=f"largest scale volume elastix runs on (default {DEFAULT_ELASTIX_MAX_VOXELS:,}; "
                             f"--quick {QUICK_ELASTIX_MAX_VOXELS:,})")
    parser.add_argument("--skip-elastix", action="store_true", help="run SUITS only")
    parser.add_argument("--suits-option", action="append", default=[], metavar="KEY=VALUE",
                        help="register() parameter of a second SUITS method in the same run (repeatable; "
                             "values read with ast.literal_eval), e.g. samples=None")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 1 seed, 1 prostate pair, 1 CHAOS pair subsampled by 4 in plane "
                             "(SUITS only), "
                             "tiny scale sizes, 1 repeat, no warm-up on the cases, elastix capped at "
                             f"{QUICK_ELASTIX_ITERATIONS} iterations per resolution; missing data is skipped")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file with every number, the PNG plot beside it "
                             f"(default {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file and plot")
    arguments = parser.parse_args(argv)
    if arguments.threads < 1 or arguments.repeats < 1:
        parser.error("--threads and --repeats must be positive")
    try:
        arguments.options = parse_suits_options(arguments.suits_option)
        arguments.pairs = [prostate_pair(pair) for pair in arguments.pairs]
        arguments.chaos_pairs = [chaos_pair(pair) for pair in arguments.chaos_pairs]
        sizes = arguments.scale_sizes or (QUICK_SCALE_SIZES if arguments.quick else DEFAULT_SCALE_SIZES)
        arguments.sizes = [scale_size(str(size)) for size in sizes] + ([LARGE_SIZE] if arguments.large else [])
    except ValueError as error:
        parser.error(str(error))
    if arguments.elastix_max_voxels is None:
        arguments.elastix_max_voxels = QUICK_ELASTIX_MAX_VOXELS if arguments.quick else DEFAULT_ELASTIX_MAX_VOXELS
    if arguments.quick:
        arguments.repeats = 1
        arguments.pairs = arguments.pairs[:1]
        arguments.chaos_pairs = arguments.chaos_pairs[:1]
    arguments.plot = arguments.output.with_suffix(".png")
    existing = [path for path in (arguments.output, arguments.plot) if path.exists()]
    if existing and not arguments.overwrite:
        parser.error(f"{' and '.join(map(str, existing))} exist(s); pass --overwrite to replace or choose another "
                     "--output")
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    data = arguments.data.resolve()
    cpus = os.cpu_count()
    seeds = BRAINWEB_SEEDS[:1] if arguments.quick else BRAINWEB_SEEDS
    warm_up = not arguments.quick
    variants = [{}] + ([arguments.options] if arguments.options else [])
    names = [suits_name(options) for options in variants]
    print(f"data: {data}  (default <repo>/../shared/data)")
    print(f"CPU count: {cpus}  threads per method: {arguments.threads}  repeats: {arguments.repeats}"
          f"{' (+1 warm-up per benchmark and method)' if warm_up else ' (--quick: no warm-up on the cases)'}  "
          f"load average: {os.getloadavg()[0]:.2f}")

    notes: list[str] = []
    for part in ("brainweb", "prostate", "chaos"):
        missing = missing_data(data, part, arguments) if part in arguments.parts else []
        if missing and not arguments.quick:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            sys.exit(f"missing data for {part}: {missing[0]}{more}; pass the data folder with --data, "
                     f"or leave {part} out of --parts")
    set_threads(arguments.threads)
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    report = {
        "command": command, "complete": False, "data": str(data), "cpu_count": cpus, "threads": arguments.threads,
        "repeats": arguments.repeats, "warm_up": "one run per benchmark and method on its first case" if warm_up
        else "none (--quick)", "quick": arguments.quick, "parts": arguments.parts, "suits_methods": names,
        "suits_options": {name: {k: repr(v) for k, v in options.items()} for name, options in zip(names, variants)},
        "skip_elastix": arguments.skip_elastix,
        "elastix_maps": {part: list(maps) for part, maps in ELASTIX_MAPS.items()},
        "elastix_quick_iterations": QUICK_ELASTIX_ITERATIONS if arguments.quick else None,
        "initial_transforms": INITIAL, "load_average_start": os.getloadavg(), "platform": platform.platform(),
        "versions": versions(),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)

    def save():
        arguments.output.write_text(json.dumps(json_ready(report), indent=2) + "\n")

    save()
    library_warm_up(variants, arguments.threads, arguments.skip_elastix, progress)
    if not arguments.skip_elastix:
        report["elastix_parameter_maps"] = {name: default_parameter_map(name) for name in ("affine", "bspline")}

    readers = {
        "brainweb": lambda: brainweb_pairs(data, seeds),
        "prostate": lambda: prostate_pairs(data, arguments.pairs),
        "chaos": lambda: chaos_pairs(data, arguments.chaos_pairs, QUICK_CHAOS_SHRINK if arguments.quick else None),
    }
    for part in ("brainweb", "prostate", "chaos"):
        if part not in arguments.parts:
            continue
        missing = missing_data(data, part, arguments)
        if missing:
            report[part] = {"skipped": f"no data: {missing[0]} is missing"}
            notes.append(f"NOT MEASURED  {part}: {missing[0]} is missing (--quick goes on without it)")
            continue
        progress(f"{part}: reading the pairs")
        pairs = readers[part]()
        skip_elastix = arguments.skip_elastix or (arguments.quick and part == "chaos")
        if skip_elastix and not arguments.skip_elastix:
            notes.append("NOT RUN  chaos / elastix: --quick runs SUITS only on CHAOS (elastix's B-spline stage "
                         "takes over a minute on its field of view)")
        methods = methods_for(part, variants, arguments.threads, skip_elastix, arguments.quick)
        report[part] = {"pairs": []}

        def saved(results, part=part):
            report[part]["pairs"] = results
            save()

        results = benchmark(part, pairs, methods, arguments.repeats, warm_up, progress, saved)
        report[part]["means"] = means(results)
        save()

    if "scale" in arguments.parts:
        report["scale"] = {"sizes": [list(size) for size in arguments.sizes],
                           "elastix_max_voxels": arguments.elastix_max_voxels, "records": []}

        def saved_scale(records):
            report["scale"]["records"] = records
            save()

        raw = [[]] + ([arguments.suits_option] if arguments.options else [])
        scale_benchmark(arguments.sizes, list(zip(variants, raw)), arguments, arguments.repeats,
                        arguments.elastix_max_voxels, progress, saved_scale)
        if plot_scale(report["scale"]["records"], arguments.plot, arguments.threads):
            report["scale"]["plot"] = str(arguments.plot)

    report["targets"] = targets(report, names, arguments)
    report["complete"] = True
    report["load_average_end"] = os.getloadavg()
    save()

    headers = {
        "brainweb": (["seed", "method", "err mean mm", "err p95 mm", "fold %"], brainweb_columns,
                     "BrainWeb T1 (fixed) <- deformed PD (moving), 2D: error inside the head against the known field"),
        "prostate": (["pair", "method", "gland Dice", "TRE mm", "fold %"], prostate_columns,
                     "Prostate MR (fixed) <- ultrasound (moving), 3D, initial transform 'geometry' for both: "
                     "gland Dice, TRE of landmark centroids"),
        "chaos": (["pair", "method", "mean Dice"] + list(CHAOS_ORGANS.values()) + ["fold %"], chaos_columns,
                  "CHAOS T2-SPIR, inter-subject (fixed <- moving), 3D, initial transform 'moments' for both: organ Dice"
                  + (" [--quick: subsampled by 4 in plane]" if arguments.quick else "")),
    }
    for part, (header, columns, title) in headers.items():
        if part in report and "pairs" in report[part]:
            print(f"\n{title}")
            print(part_table(report[part]["pairs"], report[part]["means"], header, columns))
    if "scale" in report:
        print("\nScale: synthetic 3D volumes, each run a fresh process; peak = peak resident memory of that process "
              "(imports, a tiny warm-up, the two images, the registration and its outputs); 'before call' = the "
              "same just before the timed call; error: mean |u - u_true| on a voxel lattice (initial |u_true|)")
        print(scale_table(report["scale"]["records"]))
        if "plot" in report["scale"]:
            print(f"plot: {report['scale']['plot']}")
    for line in remarks(report) + notes:
        print(line)
    print("\nTargets")
    for suits, verdicts in report["targets"].items():
        for target, verdict in verdicts.items():
            print(f"  {suits}: {target}: {verdict}")
    print(f"\ntimes: wall clock of the whole call (scale: of the registration call in a fresh process), median and "
          f"min of {arguments.repeats} run(s); {arguments.threads} thread(s) per method on a {cpus}-CPU machine "
          f"(load average at the end {os.getloadavg()[0]:.2f}: compare ratios, not absolute times)")
    if not arguments.skip_elastix:
        print("elastix: default maps of run_elastix (Mattes mutual information, 4 resolutions, B-spline "
              "FinalGridSpacingInPhysicalUnits 10 mm): affine + B-spline on BrainWeb and CHAOS, B-spline on the "
              "prostate and the scale volumes" + (f"; --quick: at most {QUICK_ELASTIX_ITERATIONS} iterations per "
                                                   "resolution" if arguments.quick else ""))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"reproduce: {command}")
    print(f"all numbers: {arguments.output}")
    return 0


if __name__ == "__main__":
    if WORKER:
        if len(sys.argv) != 3:
            sys.exit("usage: bench_speed.py --worker JSON")
        sys.exit(worker(json.loads(sys.argv[2])))
    sys.exit(main())
