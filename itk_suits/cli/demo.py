"""``itk-suits demo``: the bundled BrainWeb pair with a known deformation."""

from __future__ import annotations

import argparse

from .common import add_run_options, check_output_directory, given, schedule_line


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="register the bundled BrainWeb T1/PD slices with a known deformation",
        description="Deform the bundled BrainWeb PD slice by a known smooth field, register the T1 slice "
                    "to it with MIND features and report the displacement error in mm inside the head.",
    )
    parser.add_argument("-o", "--output", default="itk-suits-demo", metavar="DIR",
                        help="output directory (default: ./itk-suits-demo)")
    add_run_options(parser)
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.demo import run_demo

    report = run_demo(arguments.output, overwrite=arguments.overwrite, progress=not arguments.quiet,
                      **given(arguments, "iterations", "device", "threads"))
    before, after = report["error_before"], report["error_after"]
    print(f"displacement error before: mean {before['mean']:.2f} mm, p95 {before['p95']:.2f} mm"
          f" / after: mean {after['mean']:.2f} mm, p95 {after['p95']:.2f} mm")
    print(f"folding: {report['folding_percent']:.3f} % of voxels (Jacobian determinant <= 0)")
    print(schedule_line(report["seconds"], report["device"], report["iterations"]))
    print(f"figure: {report['files']['demo.png']}")
    return 0
