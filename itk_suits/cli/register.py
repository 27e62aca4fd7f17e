"""``itk-suits register``: register two image files and write the result."""

from __future__ import annotations

import argparse

from .common import (
    REGISTRATION_OPTIONS,
    add_registration_options,
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
    parser.add_argument("--fixed-mask", metavar="PATH", help="mask file on the fixed grid (non-zero = use)")
    add_registration_options(parser)
    add_run_options(parser)
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.registration import register

    options = given(arguments, "fixed_mask", *REGISTRATION_OPTIONS)
    result = register(arguments.fixed, arguments.moving, progress=not arguments.quiet, **options)
    files = result.save(arguments.output, overwrite=arguments.overwrite)
    print_files(files)
    print(schedule_line(result.seconds, result.device, [entry["iterations"] for entry in result.log]))
    return 0
