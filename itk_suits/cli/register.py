"""``itk-suits register``: register two image files and write the result."""

from __future__ import annotations

import argparse

from .common import (
    LEARNING_RATE_HELP,
    SMOOTHNESS_HELP,
    SPACINGS_HELP,
    add_run_options,
    check_output_directory,
    given,
    print_files,
    schedule_line,
)


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "register",
        help="register a moving image file to a fixed image file",
        description="Register MOVING onto FIXED with SUITS and write warped.nii.gz, displacement.nii.gz "
                    "(mm), transform.h5 (fixed-to-moving, readable by ITK and SimpleITK), "
                    "checkerboard.png and parameters.json into OUT.",
    )
    parser.add_argument("fixed", metavar="FIXED", help="fixed image file (any format SimpleITK reads)")
    parser.add_argument("moving", metavar="MOVING", help="moving image file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    parser.add_argument("--features", help="'mind' (MIND-SSC, multi-modal, default), 'intensity', "
                                           "'pretrained', a model folder, or e.g. 'mind+DIR'")
    parser.add_argument("--fixed-mask", metavar="PATH", help="mask file on the fixed grid (non-zero = use)")
    parser.add_argument("--initial-transform", metavar="TRANSFORM",
                        help="'identity' (default), 'geometry' (image centres), 'moments' "
                             "(centres of mass) or a transform file")
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="VOXELS", help=SPACINGS_HELP)
    parser.add_argument("--smoothness", nargs="+", type=float, metavar="WEIGHT", help=SMOOTHNESS_HELP)
    parser.add_argument("--learning-rate", type=float, metavar="RATE", help=LEARNING_RATE_HELP)
    add_run_options(parser)
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.registration import register

    options = given(arguments, "features", "fixed_mask", "initial_transform", "grid_spacings",
                    "iterations", "smoothness", "learning_rate", "device", "threads")
    result = register(arguments.fixed, arguments.moving, progress=not arguments.quiet, **options)
    files = result.save(arguments.output, overwrite=arguments.overwrite)
    print_files(files)
    print(schedule_line(result.seconds, result.device, [entry["iterations"] for entry in result.log]))
    return 0
