"""``itk-suits compare`` (one pair) and ``itk-suits evaluate`` (a dataset): methods side by side in a report."""

from __future__ import annotations

import argparse
import os

from .common import (DEVICE_HELP, SLICE_AXES, SPACINGS_HELP, add_metric_option, add_modalities_option,
                     check_output_directory, given)


def add(subparsers) -> None:
    _add_compare(subparsers)
    _add_evaluate(subparsers)


def _add_comparison_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``compare`` and ``evaluate``: the methods, their shared settings and the report."""
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="report directory: results.json, report.md, report.html, figures/")
    parser.add_argument("--methods", default="suits-mind,elastix", metavar="LIST",
                        help="comma-separated methods: suits-<features> (suits-mind, suits-pretrained, ...), "
                             "elastix (affine then B-spline), elastix-bspline, simpleelastix, ants (antspyx SyN "
                             "defaults), ants-full (SyN through the finest level), convexadam "
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
                        help="SUITS: " + SPACINGS_HELP)
    parser.add_argument("--device", help="SUITS: " + DEVICE_HELP)
    add_metric_option(parser)
    add_modalities_option(parser)
    parser.add_argument("--elastix-parameters", nargs="+", metavar="FILE",
                        help="elastix parameter files for the methods elastix and simpleelastix, "
                             "instead of elastix's default affine and B-spline maps")
    parser.add_argument("--simpleelastix-python", metavar="PYTHON",
                        help="interpreter of a separate environment with SimpleITK-SimpleElastix "
                             "(default: $ITK_SUITS_SIMPLEELASTIX_PYTHON)")
    parser.add_argument("--ants-python", metavar="PYTHON",
                        help="interpreter of a separate environment with antspyx (default: $ITK_SUITS_ANTS_PYTHON)")
    parser.add_argument("--convexadam-python", metavar="PYTHON",
                        help="interpreter of a separate environment with convexadam "
                             "(default: $ITK_SUITS_CONVEXADAM_PYTHON)")
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
        "suits_options": given(arguments, "iterations", "grid_spacings", "device", "metric", "modalities"),
        "elastix_maps": {method: files for method in ("elastix", "simpleelastix")} if files else None,
        "simpleelastix_python": arguments.simpleelastix_python,
        "ants_python": arguments.ants_python,
        "convexadam_python": arguments.convexadam_python,
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
    check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.evaluation.compare import compare

    results = compare(
        arguments.fixed, arguments.moving, fixed_labels=arguments.fixed_labels,
        moving_labels=arguments.moving_labels, fixed_mask=arguments.fixed_mask, output_dir=arguments.output,
        **_comparison_options(arguments),
    )
    _print_comparison(results, arguments.output)
    return 0


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
    parser.add_argument("--slice", choices=tuple(SLICE_AXES), metavar="AXIS",
                        help="register 2D slices of 3D pairs, normal to the physical axis x, y or z")
    parser.add_argument("--slice-index", type=_slice_index, metavar="N",
                        help="with --slice: the slice number, or 'labels' for the slice through the labels' "
                             "centroid (default: the middle slice)")
    _add_comparison_options(parser)
    parser.set_defaults(handler=_run_evaluate)


def _pairs(arguments: argparse.Namespace):
    """The pairs named by ``evaluate``'s options, sliced when asked."""
    from itk_suits.errors import ParameterError
    from itk_suits.interop import datasets

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
    axis = SLICE_AXES[arguments.slice]
    return (datasets.slice_pair(pair, axis=axis, index=arguments.slice_index) for pair in pairs)


def _run_evaluate(arguments: argparse.Namespace) -> int:
    check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.evaluation.compare import evaluate

    results = evaluate(_pairs(arguments), output_dir=arguments.output, **_comparison_options(arguments))
    _print_comparison(results, arguments.output)
    return 0
