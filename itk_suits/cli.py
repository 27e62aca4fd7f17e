"""The ``itk-suits`` command line.

Subcommands::

    itk-suits register FIXED MOVING -o OUT [options]   register two image files
    itk-suits demo [-o DIR] [options]                  BrainWeb T1/PD demo with a known deformation
    itk-suits features IMAGE -o FEATS [options]        feature image (MIND or a learned model)
    itk-suits export WEIGHTS -o MODEL_DIR              torch feature weights -> ONNX model folder
    itk-suits compare FIXED MOVING -o DIR [options]    compare methods on two image files (report)
    itk-suits evaluate --dataset JSON -o DIR [options] compare methods over many pairs (report)
    itk-suits train --fixed-dir DIR ... -o MODEL_DIR   learn features from labelled images -> model folder

Each subcommand is added to the parser by an ``_add_<name>`` function that
sets its handler; a handler takes the parsed arguments and returns the exit
code. User errors (:class:`~itk_suits.errors.SuitsError`, and files that
exist or cannot be written) are reported as one ``itk-suits: error: ...``
line on stderr with exit code 2. The registration modules import torch, so
they are imported inside the handlers: ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from itk_suits import __version__
from itk_suits.errors import SuitsError

__all__ = ["main", "build_parser"]

_PROG = "itk-suits"
_ERROR_EXIT = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``itk-suits`` with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="SUITS multi-modal deformable registration for ITK and SimpleITK images.",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_register(subparsers)
    _add_demo(subparsers)
    _add_features(subparsers)
    _add_export(subparsers)
    _add_compare(subparsers)
    _add_evaluate(subparsers)
    _add_train(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``itk-suits`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return exit_request.code if isinstance(exit_request.code, int) else _ERROR_EXIT
    try:
        return arguments.handler(arguments)
    except (SuitsError, OSError) as error:
        print(f"{_PROG}: error: {_message(error)}", file=sys.stderr)
        return _ERROR_EXIT
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130


def _message(error: Exception) -> str:
    """One line for an error: its text, or for a bare OSError its reason and file."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split())


# --- shared options -----------------------------------------------------------------


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options of every subcommand that runs a registration."""
    parser.add_argument("--iterations", nargs="+", type=int, metavar="N",
                        help="maximum iterations per scale, or one number for all scales (default: 300 300 300)")
    parser.add_argument("--device", help="'auto' (CUDA when present, default), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's setting)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _given(arguments: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` given on the command line (the others keep the library defaults)."""
    values = {name: getattr(arguments, name) for name in names}
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items() if v is not None}


def _check_output_directory(directory: str, overwrite: bool) -> None:
    """Refuse before any work when ``directory`` is a file or, without ``overwrite``, not empty."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"output {directory} is a file, not a directory; choose a directory")
    if not overwrite and os.path.isdir(directory) and os.listdir(directory):
        raise FileExistsError(
            f"output directory {directory} is not empty; pass --overwrite to replace the "
            "itk-suits files in it, or choose another directory"
        )


def _print_files(files: dict) -> None:
    for path in files.values():
        print(f"wrote {path}")


def _schedule_line(seconds: float, device: str, iterations: Sequence[int]) -> str:
    return f"time: {seconds:.1f} s on {device}; iterations per scale: {' '.join(map(str, iterations))}"


# --- register -----------------------------------------------------------------------


def _add_register(subparsers) -> None:
    parser = subparsers.add_parser(
        "register",
        help="register a moving image file to a fixed image file",
        description="Register MOVING onto FIXED with SUITS and write warped.nii.gz, displacement.nii.gz "
                    "(mm), transform.h5 (fixed-to-moving, readable by ITK and SimpleITK) and "
                    "checkerboard.png into OUT.",
    )
    parser.add_argument("fixed", metavar="FIXED", help="fixed image file (any format SimpleITK reads)")
    parser.add_argument("moving", metavar="MOVING", help="moving image file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    parser.add_argument("--features", help="'mind' (MIND-SSC, multi-modal, default) or 'intensity'")
    parser.add_argument("--fixed-mask", metavar="PATH", help="mask file on the fixed grid (non-zero = use)")
    parser.add_argument("--initial-transform", metavar="TRANSFORM",
                        help="'identity' (default), 'geometry' (image centres), 'moments' "
                             "(centres of mass) or a transform file")
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="VOXELS",
                        help="control-point spacing per scale in fixed voxels (default: 20 10 7)")
    parser.add_argument("--smoothness", nargs="+", type=float, metavar="WEIGHT",
                        help="smoothness weight per scale, or one for all scales (default: 0.2 0.2 0.4)")
    parser.add_argument("--learning-rate", type=float, metavar="RATE",
                        help="grid Adam step in normalised grid units (default: 0.005)")
    _add_run_options(parser)
    parser.set_defaults(handler=_run_register)


def _run_register(arguments: argparse.Namespace) -> int:
    _check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.registration import register

    options = _given(arguments, "features", "fixed_mask", "initial_transform", "grid_spacings",
                     "iterations", "smoothness", "learning_rate", "device", "threads")
    result = register(arguments.fixed, arguments.moving, progress=not arguments.quiet, **options)
    files = result.save(arguments.output, overwrite=arguments.overwrite)
    _print_files(files)
    print(_schedule_line(result.seconds, result.device, [entry["iterations"] for entry in result.log]))
    return 0


# --- demo ---------------------------------------------------------------------------


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="register the bundled BrainWeb T1/PD slices with a known deformation",
        description="Deform the bundled BrainWeb PD slice by a known smooth field, register the T1 slice "
                    "to it with MIND features and report the displacement error in mm inside the head.",
    )
    parser.add_argument("-o", "--output", default="itk-suits-demo", metavar="DIR",
                        help="output directory (default: ./itk-suits-demo)")
    _add_run_options(parser)
    parser.set_defaults(handler=_run_demo)


def _run_demo(arguments: argparse.Namespace) -> int:
    _check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.demo import run_demo

    report = run_demo(arguments.output, overwrite=arguments.overwrite, progress=not arguments.quiet,
                      **_given(arguments, "iterations", "device", "threads"))
    before, after = report["error_before"], report["error_after"]
    print(f"displacement error before: mean {before['mean']:.2f} mm, p95 {before['p95']:.2f} mm"
          f" / after: mean {after['mean']:.2f} mm, p95 {after['p95']:.2f} mm")
    print(f"folding: {report['folding_percent']:.3f} % of voxels (Jacobian determinant <= 0)")
    print(_schedule_line(report["seconds"], report["device"], report["iterations"]))
    print(f"figure: {report['files']['demo.png']}")
    return 0


# --- features -----------------------------------------------------------------------


def _refuse_existing_file(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"output {path} exists; pass --overwrite to replace it, or choose another name")


def _add_features(subparsers) -> None:
    parser = subparsers.add_parser(
        "features",
        help="write the feature image of an image file",
        description="Compute the features registration compares (MIND-SSC or a learned model) and write "
                    "them as a vector image with the input's geometry, one component per channel.",
    )
    parser.add_argument("image", metavar="IMAGE", help="image file (any format SimpleITK reads)")
    parser.add_argument("-o", "--output", required=True, metavar="FEATS",
                        help="output vector image file, e.g. feats.nii.gz")
    parser.add_argument("--model", default="mind",
                        help="'mind' (default), 'intensity', 'pretrained', a model folder, or e.g. 'mind+DIR'")
    parser.add_argument("--modality", choices=("fixed", "moving"), default="fixed",
                        help="which network of a learned model to use (default: fixed)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present, default), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(handler=_run_features)


def _run_features(arguments: argparse.Namespace) -> int:
    _refuse_existing_file(arguments.output, arguments.overwrite)
    import SimpleITK as sitk

    from itk_suits.extract import extract_features

    features = extract_features(arguments.image, arguments.model, arguments.modality, device=arguments.device)
    sitk.WriteImage(features, arguments.output)
    print(f"wrote {arguments.output} ({features.GetNumberOfComponentsPerPixel()} channels, model {arguments.model})")
    return 0


# --- export -------------------------------------------------------------------------


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export torch feature weights to an ONNX model folder",
        description="Turn feature-network weights (a model.pt, or a training checkpoint holding them "
                    "under 'model') into a model folder: fixed.onnx and moving.onnx (or shared.onnx), "
                    "model.json with checksums, and model.pt. The folder works as "
                    "register(..., features=MODEL_DIR).",
    )
    parser.add_argument("weights", metavar="CHECKPOINT_OR_MODEL_PT", help="torch weights file")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--name", help="model name in the card (default: the one stored with the weights, "
                                       "else the folder name)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing model files")
    parser.set_defaults(handler=_run_export)


def _run_export(arguments: argparse.Namespace) -> int:
    from itk_suits.features.model import load_torch_weights, read_model_card
    from itk_suits.features.onnx import export_onnx

    pair, card_fields = load_torch_weights(arguments.weights)
    known = ("name", "description", "modalities", "training", "benchmark")
    fields = {key: card_fields[key] for key in known if key in card_fields}
    if arguments.name:
        fields["name"] = arguments.name
    directory = export_onnx(pair, arguments.output, overwrite=arguments.overwrite, **fields)
    card = read_model_card(directory)
    print(f"wrote {directory} ({card.ndim}D, {card.channels} channels, "
          f"{'shared network' if card.shared else 'fixed and moving networks'})")
    print(f"onnxruntime vs torch: max abs difference {card.onnx_max_abs_difference:.2e}")
    return 0


# --- compare and evaluate -------------------------------------------------------------


def _add_comparison_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``compare`` and ``evaluate``: the methods, their shared settings and the report."""
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="report directory: results.json, report.md, report.html, figures/")
    parser.add_argument("--methods", default="suits-mind,elastix", metavar="LIST",
                        help="comma-separated methods: suits-<features> (suits-mind, suits-pretrained, ...), "
                             "elastix (affine then B-spline), elastix-bspline, simpleelastix "
                             "(default: suits-mind,elastix)")
    parser.add_argument("--initial-transform", metavar="TRANSFORM",
                        help="initial alignment given to every method: 'identity' (default), 'geometry', "
                             "'moments' or a transform file")
    parser.add_argument("--repeats", type=int, default=1, metavar="N",
                        help="runs per method; the time reported is their median (default: 1)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for every method (default: each method's own default)")
    parser.add_argument("--iterations", nargs="+", type=int, metavar="N",
                        help="SUITS: maximum iterations per scale, or one number for all scales")
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="VOXELS",
                        help="SUITS: control-point spacing per scale in fixed voxels (default: 20 10 7)")
    parser.add_argument("--device", help="SUITS: 'auto' (CUDA when present, default), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--elastix-parameters", nargs="+", metavar="FILE",
                        help="elastix parameter files for the methods elastix and simpleelastix, "
                             "instead of elastix's default affine and B-spline maps")
    parser.add_argument("--simpleelastix-python", metavar="PYTHON",
                        help="interpreter of a separate environment with SimpleITK-SimpleElastix "
                             "(default: $ITK_SUITS_SIMPLEELASTIX_PYTHON)")
    parser.add_argument("--save-outputs", action="store_true",
                        help="also write each method's transform.h5, warped and warped label images")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _comparison_options(arguments: argparse.Namespace) -> dict:
    """Keyword arguments of ``compare``/``evaluate`` from the shared options."""
    files = arguments.elastix_parameters
    return {
        "methods": arguments.methods,
        "initial_transform": arguments.initial_transform,
        "repeats": arguments.repeats,
        "threads": arguments.threads,
        "suits_options": _given(arguments, "iterations", "grid_spacings", "device"),
        "elastix_maps": {method: files for method in ("elastix", "simpleelastix")} if files else None,
        "simpleelastix_python": arguments.simpleelastix_python,
        "save_outputs": arguments.save_outputs,
        "overwrite": arguments.overwrite,
        "progress": not arguments.quiet,
    }


def _print_comparison(results: dict, directory: str) -> None:
    from itk_suits.evaluation.report import format_table

    print(format_table(results))
    print(f"report: {os.path.join(directory, 'report.html')} (also report.md; every number in results.json)")


def _add_compare(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="register two image files with several methods and write a comparison report",
        description="Register MOVING onto FIXED with each method (same fixed mask, same initial alignment, "
                    "same threads) and report Dice and HD95 per label of the warped moving labels, folding, "
                    "SDlogJ and runtime, with figures, in DIR.",
    )
    parser.add_argument("fixed", metavar="FIXED", help="fixed image file (any format SimpleITK reads)")
    parser.add_argument("moving", metavar="MOVING", help="moving image file")
    parser.add_argument("--fixed-labels", metavar="PATH", help="label map of the fixed image")
    parser.add_argument("--moving-labels", metavar="PATH", help="label map of the moving image")
    parser.add_argument("--fixed-mask", metavar="PATH", help="mask on the fixed grid (non-zero = use)")
    _add_comparison_options(parser)
    parser.set_defaults(handler=_run_compare)


def _run_compare(arguments: argparse.Namespace) -> int:
    _check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.evaluation.compare import compare

    results = compare(
        arguments.fixed, arguments.moving, fixed_labels=arguments.fixed_labels,
        moving_labels=arguments.moving_labels, fixed_mask=arguments.fixed_mask, output_dir=arguments.output,
        **_comparison_options(arguments),
    )
    _print_comparison(results, arguments.output)
    return 0


_SLICE_AXES = {"x": 0, "y": 1, "z": 2}


def _slice_index(text: str):
    """``--slice-index``: a voxel index or ``labels``."""
    if text == "labels":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a slice number or 'labels', got {text!r}") from None


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare methods over the pairs of a dataset.json or of folders",
        description="Register every pair of a Learn2Reg-style dataset.json (or of matching image folders) "
                    "with each method and report the scores per pair and their means, with figures, in DIR.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="JSON", help="Learn2Reg-style dataset.json listing the pairs")
    source.add_argument("--fixed-dir", metavar="DIR", help="folder of fixed images (pairs by sorted name)")
    parser.add_argument("--split", default="registration_val",
                        help="pair list of the dataset.json (default: registration_val)")
    parser.add_argument("--moving-dir", metavar="DIR", help="folder of moving images (with --fixed-dir)")
    parser.add_argument("--fixed-label-dir", metavar="DIR", help="label maps of the fixed images")
    parser.add_argument("--moving-label-dir", metavar="DIR", help="label maps of the moving images")
    parser.add_argument("--all-pairs", action="store_true",
                        help="with folders: every fixed image with every moving image")
    parser.add_argument("--slice", choices=tuple(_SLICE_AXES), metavar="AXIS",
                        help="register 2D slices of 3D pairs, normal to the physical axis x, y or z")
    parser.add_argument("--slice-index", type=_slice_index, metavar="N",
                        help="with --slice: the slice number, or 'labels' for the slice through the labels' "
                             "centroid (default: the middle slice)")
    _add_comparison_options(parser)
    parser.set_defaults(handler=_run_evaluate)


def _pairs(arguments: argparse.Namespace):
    """The pairs named by ``evaluate``'s options, sliced when asked."""
    from itk_suits.errors import ParameterError
    from itk_suits.evaluation import datasets

    if arguments.slice is None and arguments.slice_index is not None:
        raise ParameterError("--slice-index needs --slice (the axis normal to the slices)")
    folder_options = ("moving_dir", "fixed_label_dir", "moving_label_dir")
    if arguments.dataset is not None:
        given = [f"--{name.replace('_', '-')}" for name in folder_options if getattr(arguments, name)]
        if given or arguments.all_pairs:
            options = ", ".join(given + ["--all-pairs"] * arguments.all_pairs)
            raise ParameterError(f"{options}: folder options work with --fixed-dir, not with --dataset")
        pairs = datasets.pairs_from_dataset_json(arguments.dataset, split=arguments.split)
    else:
        if arguments.moving_dir is None:
            raise ParameterError("--fixed-dir needs --moving-dir (the folder of moving images)")
        pairs = datasets.pairs_from_folders(
            arguments.fixed_dir, arguments.moving_dir, arguments.fixed_label_dir, arguments.moving_label_dir,
            all_pairs=arguments.all_pairs,
        )
    if arguments.slice is None:
        return pairs
    axis = _SLICE_AXES[arguments.slice]
    return (datasets.slice_pair(pair, axis=axis, index=arguments.slice_index) for pair in pairs)


def _run_evaluate(arguments: argparse.Namespace) -> int:
    _check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.evaluation.compare import evaluate

    results = evaluate(_pairs(arguments), output_dir=arguments.output, **_comparison_options(arguments))
    _print_comparison(results, arguments.output)
    return 0


# --- train --------------------------------------------------------------------------


def _label_pair(text: str) -> tuple[int, int]:
    """``--label-mapping``: ``MOVING:FIXED``."""
    try:
        moving, fixed = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MOVING:FIXED label values, e.g. 6:1, got {text!r}") from None
    return moving, fixed


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="learn SUITS features from labelled images of two modalities",
        description="Train the feature networks (the paper's Algorithm 1, or the unrolled mode) on every fixed "
                    "image paired with every moving image (unpaired subjects; label maps supervise through "
                    "signed distance maps) and write MODEL_DIR: fixed.onnx and moving.onnx (or shared.onnx), "
                    "model.json, model.pt, checkpoint.pt, training_log.csv and loss.png. An interrupted run "
                    "continues from its checkpoint when started again with the same options.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--fixed-dir", metavar="DIR", help="folder of fixed-modality images")
    source.add_argument("--dataset", metavar="JSON", help="Learn2Reg-style dataset.json: its 'training' images")
    source.add_argument("--synthetic", type=int, metavar="N",
                        help="N pairs of synthetic organ phantoms in random modalities (modality-agnostic)")
    parser.add_argument("--anatomy", nargs="+", metavar="LABEL_MAP",
                        help="with --synthetic: cut the anatomy from these label maps (e.g. FreeSurfer aseg; "
                             "2D pairs from 3D maps are random slices) instead of organ phantoms")
    parser.add_argument("--new-pairs", action="store_true",
                        help="with --synthetic: draw N new pairs every epoch (features that generalise instead "
                             "of fitting N pairs)")
    parser.add_argument("--fixed-label-dir", metavar="DIR", help="label maps of the fixed images (same file names)")
    parser.add_argument("--moving-dir", metavar="DIR", help="folder of moving-modality images (with --fixed-dir)")
    parser.add_argument("--moving-label-dir", metavar="DIR", help="label maps of the moving images")
    parser.add_argument("--modalities", nargs=2, metavar=("FIXED", "MOVING"),
                        help="with --dataset: the fixed and moving modality (name or index; default: the json's "
                             "registration_direction, else its first two)")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--mode", choices=("algorithm1", "unrolled"),
                        help="step matching as in the paper (default) or unrolled descent")
    parser.add_argument("--step-loss", choices=("mse", "cosine"),
                        help="algorithm1's step mismatch: the paper's MSE (default) or 1 - cosine")
    parser.add_argument("--shared", action="store_true", help="one network for both modalities")
    parser.add_argument("--spacing", type=float, metavar="MM", help="resample to this isotropic voxel size")
    parser.add_argument("--shape", nargs="+", type=int, metavar="N",
                        help="crop/pad every pair to this size (array order); with --synthetic the phantom size "
                             "(default 128 128)")
    parser.add_argument("--slice-axis", choices=tuple(_SLICE_AXES),
                        help="train 2D networks on slices of 3D volumes normal to this physical axis")
    parser.add_argument("--slices", type=int, metavar="N", help="slices per pair with --slice-axis (default: 5)")
    parser.add_argument("--labels", nargs="+", type=int, metavar="LABEL",
                        help="labels to supervise (default: every label found)")
    parser.add_argument("--label-mapping", nargs="+", type=_label_pair, metavar="MOVING:FIXED",
                        help="moving label values in the fixed numbering, e.g. 6:1 7:2 (others are dropped)")
    parser.add_argument("--iterations", nargs="+", type=int, metavar="N",
                        help="grid iterations per pair and scale, or one number for all scales (default: 300 300 300)")
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="VOXELS",
                        help="control-point spacing per scale in voxels (default: 20 10 7)")
    parser.add_argument("--smoothness", nargs="+", type=float, metavar="WEIGHT",
                        help="smoothness weight per scale, or one for all (default: 0.2 0.2 0.4)")
    parser.add_argument("--epochs", type=int, metavar="N", help="passes over the whole schedule (default: 1)")
    parser.add_argument("--device", help="'auto' (CUDA when present, default), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of every random choice (default: 0)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="feature updates between checkpoints (default: 50; also after every scale)")
    parser.add_argument("--name", help="model name in the card (default: the folder name)")
    parser.add_argument("--no-resume", action="store_true",
                        help="refuse to continue an interrupted run in MODEL_DIR")
    parser.add_argument("--overwrite", action="store_true", help="train again into a folder with a model or checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_train)


def _per_scale(values, count: int, option: str) -> list:
    """One value per scale from ``values`` (one value means every scale)."""
    from itk_suits.errors import ParameterError

    if len(values) == 1:
        return list(values) * count
    if len(values) != count:
        raise ParameterError(f"{option} needs one value or one per scale ({count}), got {len(values)}")
    return list(values)


def _train_scales(arguments: argparse.Namespace):
    """The schedule from --grid-spacings, --iterations and --smoothness (None: the library default).

    The number of scales is that of the first of these options given with several values, else the
    default's; options left out take the default's values of those scales.
    """
    options = {"--grid-spacings": arguments.grid_spacings, "--iterations": arguments.iterations,
               "--smoothness": arguments.smoothness}
    if all(values is None for values in options.values()):
        return None
    from itk_suits.errors import ParameterError
    from itk_suits.training import TrainingSettings

    defaults = TrainingSettings().scales
    count = next((len(v) for v in options.values() if v is not None and len(v) > 1), len(defaults))
    if arguments.grid_spacings is None and count > len(defaults):
        raise ParameterError(f"{count} scales need --grid-spacings (the default has {len(defaults)} scales)")
    fallback = [defaults[min(i, len(defaults) - 1)] for i in range(count)]
    spacings = _per_scale(arguments.grid_spacings or [s.grid_spacing for s in fallback], count, "--grid-spacings")
    iterations = _per_scale(arguments.iterations or [s.iterations for s in fallback], count, "--iterations")
    smoothness = _per_scale(arguments.smoothness or [s.smoothness for s in fallback], count, "--smoothness")
    return list(zip(spacings, iterations, smoothness))


def _train_command(arguments: argparse.Namespace) -> str:
    """The ``itk-suits train`` command line of ``arguments`` (the options given), for the model card."""
    import shlex

    words = [_PROG, "train"]
    for dest, value in vars(arguments).items():
        if dest in ("command", "handler") or value is None or value is False:
            continue
        words.append("-o" if dest == "output" else "--" + dest.replace("_", "-"))
        if isinstance(value, list):
            words += [":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value]
        elif value is not True:
            words.append(str(value))
    return shlex.join(words)


def _run_train(arguments: argparse.Namespace) -> int:
    import numpy as np

    from itk_suits.errors import ParameterError
    from itk_suits.training import data as training_data
    from itk_suits.training.api import train_features, train_on_pairs
    from itk_suits.training.trainer import TrainingSettings

    options = {
        "settings": TrainingSettings(**_given(arguments, "step_loss")),
        "scales": _train_scales(arguments), "resume": not arguments.no_resume, "overwrite": arguments.overwrite,
        "progress": not arguments.quiet, "shared": arguments.shared, "command": _train_command(arguments),
        **_given(arguments, "mode", "epochs", "device", "seed", "checkpoint_every", "name"),
    }
    data_options = _given(arguments, "spacing", "slice_axis", "slices", "labels")
    if arguments.label_mapping is not None:
        data_options["label_mapping"] = dict(arguments.label_mapping)
    folder_options = ("fixed_label_dir", "moving_dir", "moving_label_dir")
    given = [f"--{name.replace('_', '-')}" for name in folder_options if getattr(arguments, name) is not None]
    if arguments.fixed_dir is None and given:
        raise ParameterError(f"{', '.join(given)} only go with --fixed-dir")
    if arguments.dataset is None and arguments.modalities is not None:
        raise ParameterError("--modalities only goes with --dataset")
    synthetic_only = [name for name in ("anatomy", "new_pairs") if getattr(arguments, name)]
    if synthetic_only and arguments.synthetic is None:
        raise ParameterError(f"--{synthetic_only[0].replace('_', '-')} only goes with --synthetic")
    if arguments.synthetic is not None:
        if data_options:
            raise ParameterError("--synthetic makes its own phantoms (size --shape); it takes no "
                                 + ", ".join(f"--{k.replace('_', '-')}" for k in data_options))
        shape = tuple(arguments.shape or (128, 128))

        def pairs_of_epoch(epoch):
            seed = int(np.random.SeedSequence([arguments.seed or 0, epoch]).generate_state(1)[0])
            return training_data.synthetic_training_pairs(arguments.synthetic, shape, seed=seed,
                                                          label_maps=arguments.anatomy)

        directory = train_on_pairs(
            pairs_of_epoch if arguments.new_pairs else pairs_of_epoch(0), arguments.output,
            modalities={"fixed": "synthetic", "moving": "synthetic"},
            data={"synthetic_pairs": arguments.synthetic, "shape": list(shape),
                  "anatomy": arguments.anatomy or "organ phantoms (6 organs)"}, **options,
        )
    else:
        if arguments.dataset is not None:
            images = training_data.dataset_json_images(arguments.dataset, *(arguments.modalities or ()))
        else:
            for option in ("moving_dir", "fixed_label_dir", "moving_label_dir"):
                if getattr(arguments, option) is None:
                    raise ParameterError(f"--fixed-dir needs --{option.replace('_', '-')} (training needs the "
                                         "moving images and label maps of both modalities)")
            fixed, fixed_labels = training_data.folder_images(arguments.fixed_dir, arguments.fixed_label_dir)
            moving, moving_labels = training_data.folder_images(arguments.moving_dir, arguments.moving_label_dir)
            images = {"fixed_images": fixed, "fixed_labels": fixed_labels, "moving_images": moving,
                      "moving_labels": moving_labels}
        if arguments.shape is not None:
            data_options["shape"] = arguments.shape
        directory = train_features(**images, out=arguments.output, **data_options, **options)
    from itk_suits.features.model import read_model_card

    training = read_model_card(directory).training
    print(f"wrote {directory}")
    print(f"trained on {training['device']}: {training['updates']} feature updates in {training['seconds']:.1f} s; "
          f"final mean loss ratio to constant features {training['final_mean_ratio']:.3f} (below 1: learned)")
    return 0
