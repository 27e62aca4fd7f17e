"""Benchmark SUITS (MIND-SSC or learned features) against itk-elastix on real multi-modal image pairs.

Data: the script reads ``../shared/data/`` relative to the repository root
(default path ``<repo>/../shared/data``; override with ``--data``). See
``benchmarks/README.md`` for the files, their sources and licences.

Benchmarks
----------
1. BrainWeb T1/PD, 2D (``itk_examples_brainweb_slices/``): the T1 slice is
   fixed; the PD slice, deformed by
   ``itk_suits.demo.known_deformation(pd, magnitude=8, control_spacing=40,
   seed=s)`` for the benchmark seeds 10-14, is moving. Against the known
   fixed-to-moving field (mm): mean and 95th-percentile displacement error
   inside the head (fixed T1 above 10 % of its maximum), the initial error
   ``|true field|``, folding (% of voxels with a Jacobian determinant <= 0,
   whole image and inside the head) and the standard deviation of the log
   Jacobian determinant (SDlogJ).
2. Spinal cord, 3D (``sct_testing_data/``): T2w fixed against T1w moving and
   against T2* moving, each with its manual cord segmentation. Cord Dice on
   the fixed grid before registration (moving labels resampled with the
   identity) and after (moving labels resampled through each method's
   transform), both nearest neighbour; Dice is also given inside the moving
   image's field of view (the T2* scan covers 9 slices of 7.5 mm only);
   folding and SDlogJ of each displacement field.

Methods: ``itk_suits.register(fixed, moving, features=F, threads=T)`` for
each feature choice F of ``--features`` (default ``mind``; e.g. ``mind
pretrained mind+pretrained`` adds the shipped model and MIND + the shipped
model, or give model folders), with the library's default schedule (the T2*
pair is also run with ``grid_spacings=(8, 5, 3)``); a model that cannot
describe a case (a 2D model on the 3D spine) is reported as skipped, and ``itk_suits.evaluation.run_elastix(fixed,
moving, threads=T)`` with elastix's default affine and B-spline maps. No
parameter of either method is tuned here.

Timing: both methods get the same thread count T (``--threads``; SimpleITK's
and ITK's global thread counts are set to T as well). Per case and method one
warm-up run is excluded, then ``--repeats`` runs are timed with a wall clock
around the whole call (what a user waits for: registration, warped image,
transform and displacement field); the median and minimum are reported, and
the ratio of the SUITS median to the elastix median. Each method's own
``seconds`` is kept in the JSON file too. Accuracy is measured on the output
of the last timed run.

Usage::

    python benchmarks/bench_registration.py                 # full run, 1 thread
    python benchmarks/bench_registration.py --quick         # 1 seed, 1 repeat (smoke check)
    python benchmarks/bench_registration.py --threads 2 --output /tmp/bench.json
    python benchmarks/bench_registration.py --features mind pretrained mind+pretrained
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # benchmark this checkout, installed or not

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

import itk_suits  # noqa: E402
from support import number, set_threads, table, versions  # noqa: E402
from itk_suits.demo import known_deformation  # noqa: E402
from itk_suits.evaluation import (  # noqa: E402
    dice,
    displacement_error,
    folding_percentage,
    log_jacobian_std,
    run_elastix,
)
from itk_suits.errors import ParameterError  # noqa: E402
from itk_suits.features import get_feature_extractor  # noqa: E402
from itk_suits.interop.images import resample  # noqa: E402
from itk_suits.interop.transforms import displacement_field_from_index  # noqa: E402

DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "registration.json"

#: Seeds of the known deformations. Seeds 0-9 are kept for development and the demo.
BENCHMARK_SEEDS = (10, 11, 12, 13, 14)
#: Largest displacement (voxels = mm) and control spacing (voxels) of the known deformation.
DEFORMATION_MAGNITUDE = 8.0
DEFORMATION_CONTROL_SPACING = 40.0
#: Fixed T1 voxels above this fraction of the maximum are "inside the head".
HEAD_THRESHOLD = 0.1
#: Control-point spacings (fixed voxels) of the extra SUITS run on the T2* pair.
T2S_GRID_SPACINGS = (8, 5, 3)

BRAINWEB = "itk_examples_brainweb_slices"
SPINE = "sct_testing_data"
SPINE_FIXED = ("t2/t2.nii.gz", "t2/t2_seg-manual.nii.gz")
SPINE_MOVING = {
    "T2w <- T1w": ("t1/t1w.nii.gz", "t1/t1w_seg-manual.nii.gz"),
    "T2w <- T2*": ("t2s/t2s.nii.gz", "t2s/t2s_seg.nii.gz"),
}


# --- data ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One registration problem and what its results are scored against.

    ``kind`` is ``"brainweb"`` (scored with ``true_field`` and ``mask``, the
    head) or ``"spine"`` (scored with the label maps; ``mask`` is the moving
    field of view on the fixed grid).
    """

    name: str
    kind: str
    fixed: sitk.Image
    moving: sitk.Image
    mask: sitk.Image
    true_field: Optional[sitk.Image] = None
    fixed_labels: Optional[sitk.Image] = None
    moving_labels: Optional[sitk.Image] = None
    suits_variants: dict = field(default_factory=lambda: {"": {}})


def _require(path: Path) -> Path:
    if not path.is_file():
        sys.exit(f"missing data file {path}: pass the data folder with --data (default {DEFAULT_DATA})")
    return path


def read_brainweb_slice(path: Path) -> sitk.Image:
    """Channel 0 of an RGB PNG slice as float32, spacing 1 mm, origin 0, identity direction."""
    image = sitk.VectorIndexSelectionCast(sitk.ReadImage(str(_require(path))), 0, sitk.sitkFloat32)
    image.SetSpacing((1.0, 1.0))
    image.SetOrigin((0.0, 0.0))
    image.SetDirection((1.0, 0.0, 0.0, 1.0))
    return image


def brainweb_cases(data: Path, seeds) -> list[Case]:
    """T1 fixed, PD deformed by a known field moving; one case per seed."""
    t1 = read_brainweb_slice(data / BRAINWEB / "BrainT1Slice.png")
    pd = read_brainweb_slice(data / BRAINWEB / "BrainProtonDensitySlice.png")
    maximum = float(sitk.GetArrayViewFromImage(t1).max())
    head = sitk.Cast(t1 > HEAD_THRESHOLD * maximum, sitk.sitkUInt8)
    cases = []
    for seed in seeds:
        moving, true_index = known_deformation(
            pd, magnitude=DEFORMATION_MAGNITUDE, control_spacing=DEFORMATION_CONTROL_SPACING, seed=seed
        )
        cases.append(Case(
            name=f"BrainWeb T1 <- PD seed {seed}", kind="brainweb", fixed=t1, moving=moving, mask=head,
            true_field=displacement_field_from_index(true_index, t1),
        ))
    return cases


def field_of_view(moving: sitk.Image, fixed: sitk.Image) -> sitk.Image:
    """Fixed voxels inside the moving image (identity transform), as a uint8 mask."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    return resample(ones, fixed, None, "nearest")


def spine_cases(data: Path) -> list[Case]:
    """T2w fixed against T1w and T2* moving, with their manual cord segmentations."""
    fixed = sitk.ReadImage(str(_require(data / SPINE / SPINE_FIXED[0])))
    fixed_labels = sitk.ReadImage(str(_require(data / SPINE / SPINE_FIXED[1])))
    cases = []
    for name, (image_path, label_path) in SPINE_MOVING.items():
        moving = sitk.ReadImage(str(_require(data / SPINE / image_path)))
        variants = {"": {}}
        if "T2*" in name:
            variants[f" grid {T2S_GRID_SPACINGS}"] = {"grid_spacings": T2S_GRID_SPACINGS}
        cases.append(Case(
            name=f"Spine {name}", kind="spine", fixed=fixed, moving=moving,
            mask=field_of_view(moving, fixed), fixed_labels=fixed_labels,
            moving_labels=sitk.ReadImage(str(_require(data / SPINE / label_path))),
            suits_variants=variants,
        ))
    return cases


# --- methods ---------------------------------------------------------------------------------------


@dataclass
class Output:
    """What the scoring needs from one registration: field (mm, fixed grid) and transform."""

    displacement_field: sitk.Image
    transform: sitk.Transform
    reported_seconds: float


def suits_name(features: str) -> str:
    """Method name of SUITS with ``features``: ``SUITS-MIND``, ``SUITS-MIND+pretrained``, ``SUITS-<folder name>``."""
    parts = [part if part in ("mind", "pretrained") else Path(part).name for part in features.split("+")]
    return "SUITS-" + "+".join("MIND" if part == "mind" else part for part in parts)


def unusable_features(features: str, ndim: int) -> Optional[str]:
    """Why ``features`` cannot describe ``ndim``-D images (e.g. no shipped 3D model), or None."""
    try:
        get_feature_extractor(features).channels(ndim)
    except ParameterError as error:
        return str(error)
    return None


def suits_method(threads: int, features: str, **parameters) -> Callable[[sitk.Image, sitk.Image], Output]:
    """SUITS with ``features``; ``parameters`` go to :func:`itk_suits.register` unchanged."""
    def run(fixed, moving):
        result = itk_suits.register(fixed, moving, features=features, threads=threads, **parameters)
        return Output(result.displacement_field, result.transform, result.seconds)
    return run


def elastix_method(threads: int, fixed_mask: Optional[sitk.Image] = None) -> Callable[[sitk.Image, sitk.Image], Output]:
    """itk-elastix with its default affine and B-spline maps (optionally a fixed mask)."""
    def run(fixed, moving):
        result = run_elastix(fixed, moving, threads=threads, fixed_mask=fixed_mask)
        return Output(result.displacement_field, result.transform, result.seconds)
    return run


def timed_runs(method, case: Case, repeats: int) -> tuple[Output, list[float], list[float]]:
    """One warm-up run, then ``repeats`` timed runs; the last output and the times in seconds."""
    method(case.fixed, case.moving)
    wall, reported = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        output = method(case.fixed, case.moving)
        wall.append(time.perf_counter() - start)
        reported.append(output.reported_seconds)
    return output, wall, reported


# --- scoring ---------------------------------------------------------------------------------------


def regularity(displacement: sitk.Image, mask: sitk.Image) -> dict:
    """Folding (%) and SDlogJ of a field in mm, over the whole grid and inside ``mask``."""
    return {
        "folding_percent": folding_percentage(displacement),
        "folding_percent_mask": folding_percentage(displacement, mask),
        "sdlogj": log_jacobian_std(displacement),
        "sdlogj_mask": log_jacobian_std(displacement, mask),
    }


def cord_dice(case: Case, transform: Optional[sitk.Transform]) -> dict:
    """Cord Dice on the fixed grid and inside the moving field of view."""
    warped = resample(case.moving_labels, case.fixed_labels, transform, "nearest")
    return {
        "dice": dice(case.fixed_labels, warped, labels=[1])[1],
        "dice_fov": dice(sitk.Mask(case.fixed_labels, case.mask), sitk.Mask(warped, case.mask), labels=[1])[1],
    }


def score_initial(case: Case) -> dict:
    """The unregistered state: error ``|u_true|`` and the true field's regularity, or the initial Dice."""
    if case.kind == "brainweb":
        zero = sitk.Image(case.true_field.GetSize(), sitk.sitkVectorFloat64)
        zero.CopyInformation(case.true_field)
        error = displacement_error(zero, case.true_field, case.mask)
        return {"error_mean_mm": error["mean"], "error_p95_mm": error["p95"],
                **regularity(case.true_field, case.mask)}
    return cord_dice(case, None)


def score(case: Case, output: Output) -> dict:
    """Regularity of the estimated field, plus its error against the truth or the cord Dice."""
    scores = regularity(output.displacement_field, case.mask)
    if case.kind == "brainweb":
        error = displacement_error(output.displacement_field, case.true_field, case.mask)
        scores.update(error_mean_mm=error["mean"], error_p95_mm=error["p95"], error_max_mm=error["max"])
    else:
        scores.update(cord_dice(case, output.transform))
    return scores


def benchmark_case(case: Case, features: list[str], threads: int, repeats: int,
                   progress: Callable[[str], None]) -> dict:
    """Initial scores, then every method's scores and times (or its error message, or why it was skipped)."""
    rows = {"initial": score_initial(case)}
    methods = {}
    for choice in features:
        reason = unusable_features(choice, case.fixed.GetDimension())
        for suffix, parameters in case.suits_variants.items():
            if reason is None:
                methods[suits_name(choice) + suffix] = suits_method(threads, choice, **parameters)
            else:
                rows[suits_name(choice) + suffix] = {"skipped": reason}
    suits_methods = list(methods)
    methods["elastix"] = elastix_method(threads)
    if case.kind == "spine":
        # SUITS ignores voxels outside the moving field of view; this gives elastix the same information
        methods["elastix, mask = moving FOV"] = elastix_method(threads, fixed_mask=case.mask)
    for name, method in methods.items():
        progress(f"{case.name}: {name} ({repeats} timed run(s) after 1 warm-up)")
        try:
            output, wall, reported = timed_runs(method, case, repeats)
        except Exception as error:  # a failing method is a result to report, not a crash
            rows[name] = {"error": f"{type(error).__name__}: {error}"}
            progress(f"    FAILED: {rows[name]['error']}")
            continue
        rows[name] = {
            **score(case, output),
            "seconds": wall, "median_seconds": statistics.median(wall), "min_seconds": min(wall),
            "reported_seconds": reported, "median_reported_seconds": statistics.median(reported),
        }
    elastix_median = rows["elastix"].get("median_seconds")
    for name in suits_methods:
        if elastix_median and "median_seconds" in rows[name]:
            rows[name]["ratio_to_elastix"] = rows[name]["median_seconds"] / elastix_median
    return {"case": case.name, "kind": case.kind, "fixed_size": list(case.fixed.GetSize()),
            "moving_size": list(case.moving.GetSize()), "methods": rows}


# --- report ----------------------------------------------------------------------------------------






def _times(row: dict) -> list[str]:
    return [number(row.get("median_seconds")), number(row.get("min_seconds")),
            number(row.get("ratio_to_elastix"))]


def _not_run(row: dict) -> bool:
    return "error" in row or "skipped" in row


def _failed(name: str, row: dict, columns: int) -> list[str]:
    return [name, "FAILED (below)" if "error" in row else "skipped (below)"] + [""] * (columns - 2)


def failures(results: list[dict]) -> list[str]:
    """One line per failed or skipped method: case, method and the reason on one line."""
    return [f"{'FAILED' if 'error' in row else 'SKIPPED'}  {result['case']} / {name}: "
            f"{' '.join(row.get('error', row.get('skipped', '')).split())}"
            for result in results for name, row in result["methods"].items() if _not_run(row)]


#: Row label of the unregistered state in the BrainWeb table.
_BRAINWEB_LABELS = {"initial": "initial |true|"}


def brainweb_table(results: list[dict]) -> str:
    header = ["case", "method", "err mean mm", "err p95 mm", "fold %", "fold % head", "SDlogJ head",
              "t median s", "t min s", "SUITS/elastix"]
    lines = []
    for result in results:
        for name, row in result["methods"].items():
            label = _BRAINWEB_LABELS.get(name, name)
            if _not_run(row):
                lines.append([result["case"]] + _failed(label, row, len(header) - 1))
                continue
            lines.append([result["case"], label, number(row["error_mean_mm"]), number(row["error_p95_mm"]),
                          number(row["folding_percent"], 3), number(row["folding_percent_mask"], 3),
                          number(row["sdlogj_mask"], 3)] + _times(row))
    for name, row in brainweb_means(results).items():
        lines.append(["BrainWeb mean over seeds", _BRAINWEB_LABELS.get(name, name), number(row["error_mean_mm"]), number(row["error_p95_mm"]),
                      number(row["folding_percent"], 3), number(row["folding_percent_mask"], 3),
                      number(row["sdlogj_mask"], 3)] + _times(row))
    return table(header, lines)


def brainweb_means(results: list[dict]) -> dict:
    """Per method, the mean of every number over the seeds where no run failed."""
    means = {}
    names = results[0]["methods"] if results else {}
    for name in names:
        rows = [result["methods"][name] for result in results]
        if any(_not_run(row) for row in rows):
            continue
        keys = [key for key, value in rows[0].items() if isinstance(value, float)]
        means[name] = {key: float(np.mean([row[key] for row in rows])) for key in keys}
    return means


def spine_table(results: list[dict]) -> str:
    header = ["case", "method", "cord Dice", "Dice in moving FOV", "fold %", "SDlogJ",
              "t median s", "t min s", "SUITS/elastix"]
    lines = []
    for result in results:
        for name, row in result["methods"].items():
            if _not_run(row):
                lines.append([result["case"]] + _failed(name, row, len(header) - 1))
                continue
            regular = [] if name == "initial" else [number(row["folding_percent"], 3), number(row["sdlogj"], 3)]
            lines.append([result["case"], name, number(row["dice"], 3), number(row["dice_fov"], 3)]
                         + (regular or ["-", "-"]) + _times(row))
    return table(header, lines)






def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with the benchmark data (default: <repo>/../shared/data)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both methods (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case and method (default 5)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file with every number (default {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    parser.add_argument("--features", nargs="+", default=["mind"],
                        help="SUITS feature choices to run, e.g. mind pretrained mind+pretrained ./my_model "
                             "(default: mind)")
    parser.add_argument("--quick", action="store_true", help="1 seed and 1 repeat: a smoke check")
    arguments = parser.parse_args(argv)
    if arguments.threads < 1 or arguments.repeats < 1:
        parser.error("--threads and --repeats must be positive")
    if arguments.output.exists() and not arguments.overwrite:
        parser.error(f"{arguments.output} exists; pass --overwrite to replace it or choose another --output")
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    seeds = BENCHMARK_SEEDS[:1] if arguments.quick else BENCHMARK_SEEDS
    repeats = 1 if arguments.quick else arguments.repeats
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    data = arguments.data.resolve()
    cpus = os.cpu_count()
    print(f"data: {data}  (default <repo>/../shared/data)")
    print(f"CPU count: {cpus}  threads per method: {arguments.threads}  repeats: {repeats} (+1 warm-up)  "
          f"load average: {os.getloadavg()[0]:.2f}")
    set_threads(arguments.threads)

    cases = brainweb_cases(data, seeds) + spine_cases(data)
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    results = [benchmark_case(case, arguments.features, arguments.threads, repeats, progress) for case in cases]
    brainweb = [r for r in results if r["kind"] == "brainweb"]
    spine = [r for r in results if r["kind"] == "spine"]
    report = {
        "command": command, "data": str(data), "cpu_count": cpus, "threads": arguments.threads,
        "repeats": repeats, "warm_up_runs": 1, "features": arguments.features, "quick": arguments.quick, "seeds": list(seeds),
        "deformation": {"magnitude_mm": DEFORMATION_MAGNITUDE, "control_spacing_voxels": DEFORMATION_CONTROL_SPACING},
        "load_average_end": os.getloadavg(), "versions": versions(), "platform": platform.platform(),
        "cases": results, "brainweb_means": brainweb_means(brainweb),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")

    print("\nBrainWeb T1 (fixed) <- deformed PD (moving), 2D, errors inside the head against the known field")
    print(brainweb_table(brainweb))
    print("\nSpinal cord, T2w fixed, 3D: manual cord segmentations")
    print(spine_table(spine))
    for line in failures(results):
        print(line)
    print(f"\ntimes: wall clock of the whole call, median and min of {repeats} run(s) after 1 warm-up; "
          f"{arguments.threads} thread(s) per method on a {cpus}-CPU machine "
          f"(load average at the end {os.getloadavg()[0]:.2f}: compare ratios, not absolute times)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"reproduce: {command}")
    print(f"all numbers: {arguments.output}")


if __name__ == "__main__":
    main()
