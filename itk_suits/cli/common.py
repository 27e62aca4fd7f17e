"""What the subcommands share: option groups, output checks and printing."""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from itk_suits.schedule import (
    COARSE_SMOOTHNESS,
    DEFAULT_CHANNELS,
    DEFAULT_SAMPLES,
    DEFAULT_GRID_SPACINGS,
    DEFAULT_GRID_UNIT,
    DEFAULT_ITERATIONS,
    DEFAULT_LEARNING_RATE,
    COARSE_MI_WEIGHT,
    DEFAULT_METRIC,
    FINE_MI_WEIGHT,
    DEFAULT_WORKING_GRID,
    FINE_SMOOTHNESS,
    GRID_UNITS,
    METRICS,
    WORKING_GRIDS,
)

PROG = "itk-suits"
#: Physical axes a slice can be normal to.
SLICE_AXES = {"x": 0, "y": 1, "z": 2}
DEVICE_HELP = "'auto' (CUDA when present, default), 'cpu' or 'cuda[:N]'"
ITERATIONS_HELP = (f"maximum iterations per scale, or one number for all scales "
                   f"(default: {DEFAULT_ITERATIONS} on every scale)")
SPACINGS_HELP = ("control-point spacing per scale, in --grid-unit (default: "
                 + " ".join(f"{s:g}" for s in DEFAULT_GRID_SPACINGS) + ")")
SMOOTHNESS_HELP = (f"smoothness weight per scale, or one for all scales (default: {COARSE_SMOOTHNESS:g} "
                   f"on the coarse scales, {FINE_SMOOTHNESS:g} on the finest)")
LEARNING_RATE_HELP = f"grid Adam step in normalised grid units (default: {DEFAULT_LEARNING_RATE:g})"


def one_line(error: BaseException) -> str:
    """One line for an error: its text, for a bare OSError its reason and file, for an
    ITK/SimpleITK exception its informative last line."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and any("ERROR" in line or "itk::" in line for line in lines):
        return lines[-1]
    return " ".join(lines) or type(error).__name__


def add_modalities_option(parser: argparse.ArgumentParser) -> None:
    """``--modalities FIXED MOVING``: the images' modalities, for models with one network per modality."""
    parser.add_argument("--modalities", nargs=2, metavar=("FIXED", "MOVING"),
                        help="modalities of the fixed and the moving image, e.g. 'mr ct': a learned model with "
                             "one network per modality uses the network of each image's modality (ignored by "
                             "MIND-SSC and modality-agnostic features)")


def add_metric_option(parser: argparse.ArgumentParser) -> None:
    """``--metric``: what drives the B-spline grid."""
    parser.add_argument("--metric", choices=METRICS,
                        help=f"what drives the grid: the feature step, Mattes mutual information of the "
                             f"intensities, or both; 'auto': both for volumes, the features for 2D images "
                             f"(default: {DEFAULT_METRIC})")


def add_registration_options(parser: argparse.ArgumentParser, initial_transform_note: str = "") -> None:
    """The features and the schedule of the subcommands that register with SUITS."""
    parser.add_argument("--features", help="'auto' (default: MIND-SSC, or with --modalities that a shipped "
                                           "model knows what measured best for them), 'mind' (MIND-SSC, "
                                           "multi-modal), 'intensity', "
                                           "'pretrained', a shipped model's name, a model folder, or e.g. "
                                           "'mind+DIR'")
    add_modalities_option(parser)
    parser.add_argument("--initial-transform", metavar="TRANSFORM",
                        help="'identity' (default), 'geometry' (image centres), 'moments' "
                             "(centres of mass) or a transform file" + initial_transform_note)
    parser.add_argument("--linear", choices=("none", "rigid", "affine"),
                        help="linear stage before the B-spline stage: 'none' (default), 'rigid', or 'affine' "
                             "(rigid, then affine)")
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="SPACING", help=SPACINGS_HELP)
    parser.add_argument("--grid-unit", choices=GRID_UNITS,
                        help=f"unit of --grid-spacings: fixed-image voxels or millimetres (default: {DEFAULT_GRID_UNIT})")
    parser.add_argument("--working-grid", choices=WORKING_GRIDS,
                        help="features and descent on the fixed voxels, or on about isotropic voxels where they are "
                             f"strongly anisotropic (default: {DEFAULT_WORKING_GRID})")
    parser.add_argument("--smoothness", nargs="+", type=float, metavar="WEIGHT", help=SMOOTHNESS_HELP)
    parser.add_argument("--learning-rate", type=float, metavar="RATE", help=LEARNING_RATE_HELP)
    parser.add_argument("--samples", type=_count_or_all, metavar="N|all",
                        help=f"voxels per iteration; larger working levels are thinned to random lattices "
                             f"(default: {DEFAULT_SAMPLES}; 'all': every voxel)")
    parser.add_argument("--channels", type=_count_or_all, metavar="N|all",
                        help=f"feature channels kept, on the pair's principal components (default: "
                             f"{DEFAULT_CHANNELS}; 'all': every channel)")
    add_metric_option(parser)
    parser.add_argument("--mi-weight", nargs="+", type=float, metavar="WEIGHT",
                        help=f"weight of the mutual information step with --metric features+mi, per scale or one "
                             f"for all scales (default: {COARSE_MI_WEIGHT:g} coarse, {FINE_MI_WEIGHT:g} finest)")


def _count_or_all(text: str):
    """A whole number, or ``"all"`` (no limit)."""
    if text == "all":
        return ALL
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'all', got {text!r}") from None


#: The value of an option given as ``all``: the library's ``None`` (no limit).
ALL = "all"


#: The options of :func:`add_registration_options` and :func:`add_run_options` that are registration parameters.
REGISTRATION_OPTIONS = ("features", "modalities", "initial_transform", "linear", "grid_spacings", "grid_unit", "working_grid",
                        "iterations", "smoothness", "learning_rate", "samples", "channels", "device", "threads",
                        "metric", "mi_weight")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options of every subcommand that runs a registration."""
    parser.add_argument("--iterations", nargs="+", type=int, metavar="N", help=ITERATIONS_HELP)
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's setting)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def given(arguments: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` given on the command line (the others keep the library defaults)."""
    values = {name: getattr(arguments, name) for name in names}
    return {name: tuple(v) if isinstance(v, list) else None if v is ALL else v
            for name, v in values.items() if v is not None}


def check_output_directory(directory: str, overwrite: bool) -> None:
    """Refuse before any work when ``directory`` is a file, not writable or, without ``overwrite``, not empty."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"output {directory} is a file, not a directory; choose a directory")
    if not overwrite and os.path.isdir(directory) and os.listdir(directory):
        raise FileExistsError(
            f"output directory {directory} is not empty; pass --overwrite to replace the "
            "itk-suits files in it, or choose another directory"
        )
    check_writable(directory)


def check_writable(path: str) -> None:
    """Refuse before any work when the nearest existing folder of ``path`` cannot be written."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: the folder {folder} is not writable; choose another output")


def refuse_existing_file(path: str, overwrite: bool) -> None:
    """Refuse an existing output file without ``overwrite``, and an output in an unwritable folder."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"output {path} exists; pass --overwrite to replace it, or choose another name")
    check_writable(os.path.dirname(path) or ".")


def print_files(files: dict) -> None:
    for path in files.values():
        print(f"wrote {path}")


def schedule_line(seconds: float, device: str, iterations: Sequence[int]) -> str:
    return f"time: {seconds:.1f} s on {device}; iterations per scale: {' '.join(map(str, iterations))}"
